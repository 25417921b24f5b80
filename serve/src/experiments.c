/*
 * experiments.c - routing by A/B experiment: the deployment controller
 * (scheduler/src/deploy.c) pushes each experiment of this endpoint in
 * ft/experiment.h's JSON, and a request whose model is
 * "experiment:<id or name>" is served by the arm ft/experiment.h's one
 * rule picks (the code ft-api's GET /v1/experiments/{id}/assignment runs).
 *
 *   GET  /v1/experiments         the experiments held, as pushed (token only)
 *   POST /v1/load_experiment     one experiment, added or replaced by id
 *   POST /v1/unload_experiment   {"id"}
 *
 * A request routed by an experiment: the arm's model (an adapter a
 * deployment loaded, named as the endpoint serves its version) answers;
 * the answer carries X-Ft-Experiment (the id) and X-Ft-Experiment-Arm (the
 * arm's name), streamed or not, errors after routing included; the request
 * log's experiment_arm is "<id>:<arm>" while the experiment runs (a paused
 * one's requests go to its first active arm and are not its traffic); the
 * answer's "model" is the name the request gave, as for any model.
 *
 * A name resolves among the experiments the caller may see (its team's;
 * the endpoint's token sees all): an id exactly, else the name, one not
 * stopped before stopped ones; two live ones of a name are ambiguous.
 */
#include "ft/json.h"
#include "ft/log.h"
#include "serve_int.h"

enum ft_rc srv_experiments_list(struct srv_req *r)
{
	struct srv_ctx *c = r->ctx;
	json_t *data = json_array();
	pthread_mutex_lock(&c->exp_mu);
	for (size_t i = 0; i < c->n_exps; i++)
		json_array_append_new(data, ft_experiment_spec_json(&c->exps[i]));
	pthread_mutex_unlock(&c->exp_mu);
	r->resp = json_pack("{s:s, s:o}", "object", "list", "data", data);
	r->status = 200;
	return FT_OK;
}

static struct ft_exp_spec *exp_of(struct srv_ctx *c, const char *id)
{
	for (size_t i = 0; i < c->n_exps; i++)
		if (strcmp(c->exps[i].id, id) == 0)
			return &c->exps[i];
	return NULL;
}

enum ft_rc srv_experiment_load(struct srv_req *r)
{
	json_t *b;
	struct ft_exp_spec spec;
	if (srv_body(r, &b) || ft_experiment_spec_parse(b, &spec, &r->err))
		return r->err.rc ? r->err.rc : FT_EINVAL;
	struct srv_ctx *c = r->ctx;
	pthread_mutex_lock(&c->exp_mu);
	struct ft_exp_spec *e = exp_of(c, spec.id);
	bool full = !e && c->n_exps >= SRV_MAX_EXPERIMENTS;
	if (!e && !full) {
		c->exps = realloc(c->exps, (c->n_exps + 1) * sizeof(*c->exps));
		FT_ASSERT(c->exps != NULL);
		e = &c->exps[c->n_exps++];
	}
	if (e)
		*e = spec;
	pthread_mutex_unlock(&c->exp_mu);
	if (full)
		return ft_failf(&r->err, FT_ELIMIT, "too_many_experiments",
				"this server holds %d experiments already: unload one first",
				SRV_MAX_EXPERIMENTS);
	ft_logf(FT_LOG_INFO, "serve", NULL, "experiment %s (\"%s\") %s, %d arms", spec.id,
		spec.name, ft_exp_status_names[spec.status], spec.n);
	r->resp = json_pack("{s:s, s:s}", "status", "loaded", "id", spec.id);
	r->status = 200;
	return FT_OK;
}

enum ft_rc srv_experiment_unload(struct srv_req *r)
{
	json_t *b;
	const char *id = NULL;
	if (srv_body(r, &b) || ft_json_get_str(b, "id", FT_JSON_REQUIRED, &id, &r->err))
		return r->err.rc ? r->err.rc : FT_EINVAL;
	struct srv_ctx *c = r->ctx;
	pthread_mutex_lock(&c->exp_mu);
	struct ft_exp_spec *e = exp_of(c, id);
	if (e)
		*e = c->exps[--c->n_exps];
	pthread_mutex_unlock(&c->exp_mu);
	if (!e) {
		ft_failf(&r->err, FT_ENOTFOUND, "experiment_not_found",
			 "this server holds no experiment \"%.64s\"", id);
		ft_err_param(&r->err, "id");
		return FT_ENOTFOUND;
	}
	r->resp = json_pack("{s:s, s:s}", "status", "unloaded", "id", id);
	r->status = 200;
	return FT_OK;
}

/* The experiment a name resolves to for team (NULL: every one), copied
 * into out; 0 found, 1 none, 2 ambiguous (*n_named live ones share it). */
static int resolve(struct srv_ctx *c, const char *name, const char *team, struct ft_exp_spec *out,
		   int *n_named)
{
	int found = -1, live = 0;
	bool by_id = ft_id_valid(FT_ID_EXPERIMENT, name);
	pthread_mutex_lock(&c->exp_mu);
	for (size_t i = 0; i < c->n_exps; i++) {
		const struct ft_exp_spec *e = &c->exps[i];
		if (team && strcmp(e->team, team) != 0)
			continue;
		if (by_id ? strcmp(e->id, name) != 0 : strcmp(e->name, name) != 0)
			continue;
		bool is_live = e->status != FT_EXP_STOPPED;
		live += is_live;
		/* a live one before a stopped one; among stopped, the last pushed */
		if (found < 0 || is_live || c->exps[found].status == FT_EXP_STOPPED)
			found = (int)i;
	}
	if (found >= 0)
		*out = c->exps[found];
	pthread_mutex_unlock(&c->exp_mu);
	*n_named = live;
	return found < 0 ? 1 : live > 1 ? 2 : 0;
}

enum ft_rc srv_experiment_route(struct srv_req *r, const char *user, const char **model)
{
	const char *m = *model;
	size_t np = strlen(FT_EXP_MODEL_PREFIX);
	if (strncmp(m, FT_EXP_MODEL_PREFIX, np) != 0)
		return FT_OK;
	const char *name = m + np;
	struct ft_exp_spec x;
	int n_named;
	int found = resolve(r->ctx, name, r->privileged ? NULL : r->team, &x, &n_named);
	if (found == 1) {
		ft_failf(&r->err, FT_ENOTFOUND, "experiment_not_found",
			 "no experiment \"%.256s\" routes on this server: \"model\": "
			 "\"experiment:<id or name>\" names one of your team's experiments on this "
			 "endpoint",
			 name);
		ft_err_param(&r->err, "model");
		return FT_ENOTFOUND;
	}
	if (found == 2) {
		ft_failf(&r->err, FT_EINVAL, "ambiguous_experiment",
			 "%d experiments on this server are named \"%.256s\": name one by its id "
			 "(\"experiment:exp-…\")",
			 n_named, name);
		ft_err_param(&r->err, "model");
		return FT_EINVAL;
	}
	if (x.status == FT_EXP_DRAFT || x.status == FT_EXP_STOPPED) {
		ft_failf(&r->err, FT_ECONFLICT,
			 x.status == FT_EXP_DRAFT ? "experiment_not_started" : "experiment_stopped",
			 x.status == FT_EXP_DRAFT
				 ? "experiment \"%s\" (%s) has not started: start it (POST "
				   "/v1/experiments/%s/start on the platform's API) first"
				 : "experiment \"%s\" (%s) is stopped: it routes no more requests "
				   "(name a model instead, or start another experiment)",
			 x.name, x.id, x.id);
		ft_err_param(&r->err, "model");
		return FT_ECONFLICT;
	}
	bool counted;
	int arm = ft_experiment_spec_route(&x, user, r->rec->id, &counted);
	if (arm < 0)
		return ft_failf(&r->err, FT_EUNAVAIL, "no_active_arm",
				"experiment \"%s\" (%s) has no active arm with traffic", x.name,
				x.id);
	const struct ft_exp_arm *a = &x.arms[arm];
	ft_strlcpy(r->exp_id, x.id, sizeof r->exp_id);
	ft_strlcpy(r->exp_arm, a->name, sizeof r->exp_arm);
	pthread_mutex_lock(&r->rec->mu);
	/* the router's label replaces any X-Experiment-Arm the request carried */
	if (!counted || !ft_experiment_arm_label(x.id, a->name, r->rec->arm, sizeof r->rec->arm))
		r->rec->arm[0] = '\0';
	pthread_mutex_unlock(&r->rec->mu);
	if (!a->model[0])
		return ft_failf(
			&r->err, FT_EUNAVAIL, "arm_unavailable",
			"arm \"%s\" of experiment \"%s\" (%s) has no model version any more",
			a->name, x.name, x.id);
	*model = ft_arena_strdup(r->arena, a->model);
	return FT_OK;
}
