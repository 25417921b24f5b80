/*
 * experiments.c - A/B experiments, their judgments, and feedback on
 * answers (docs/api.md "Experiments"; the statistics: docs/evaluation.md).
 *
 *   POST /v1/experiments                    {"name", "arms": [{"name", "model", "weight"}], ...}
 *   GET  /v1/experiments                    the team's, newest first
 *   GET  /v1/experiments/{id}
 *   POST /v1/experiments/{id}/start         draft or paused -> running
 *   POST /v1/experiments/{id}/pause         running -> paused
 *   POST /v1/experiments/{id}/stop          -> stopped (for good)
 *   GET  /v1/experiments/{id}/assignment    ?user=U | ?request=R: the arm (ft/experiment.h)
 *   POST /v1/experiments/{id}/judgments     a person's pairwise judgment
 *   POST /v1/experiments/{id}/judge         an LLM judge's, asked in both orders by
 *                                           ft-scheduler (pending until then)
 *   GET  /v1/experiments/{id}/judgments
 *   GET  /v1/experiments/{id}/results       what the scheduler's leader last computed
 *   .../{id}/replays[/{rid}]                a prompt set sent through the arms (replays.c)
 *   POST /v1/feedback                       {"response_id", "thumbs", "resolved", "escalated"}
 *   GET  /v1/feedback/{response_id}
 *
 * Nothing here computes a statistic: results are computed by the leader on
 * a period (scheduler/src/experiments.c) and read back. Arms are model
 * versions of the caller's team (NAME/N, NAME@ALIAS, ft:BASE:JOB through
 * resolve.c); an alias is resolved when the experiment is created and
 * again when it starts, then pinned. The endpoint is named by id only: it
 * must be one of the team's (the endpoints table is the deployments work's).
 * Every refusal names its field ("arms", "arms[1].weight", "arm_a",
 * "response_b", "judge.url", ...); another team's experiment, response or
 * version is not found, as one that does not exist.
 */
#include "api_int.h"
#include "ft/experiment.h"
#include "ft/judge.h"

#define TEXT_MAX (256u << 10) /* bytes of a prompt or answer in a judgment */

#define EXP_COLS                                                                                 \
	"x.id, x.name, x.description, x.endpoint_id, x.assignment, x.status, x.stop_reason,"     \
	" x.alpha, x.power, x.bootstrap_rounds, x.seed, x.guardrails::text,"                     \
	" x.judge::text, x.judge_api_key_sealed IS NOT NULL,"                                    \
	" extract(epoch from x.created_at)::bigint, extract(epoch from x.started_at)::bigint,"   \
	" extract(epoch from x.ended_at)::bigint,"                                               \
	" (SELECT coalesce(jsonb_agg(jsonb_build_object('position', a.position, 'name', a.name," \
	"   'model', a.model, 'model_version_id', a.model_version_id, 'version',"                \
	"   CASE WHEN v.id IS NULL THEN NULL ELSE jsonb_build_object('model', v.name,"           \
	"   'version', v.version) END, 'weight', a.weight, 'status', a.status,"                  \
	"   'stop_reason', a.stop_reason, 'stopped_at', extract(epoch from"                      \
	"   a.stopped_at)::bigint) ORDER BY a.position), '[]')::text"                            \
	"   FROM experiment_arms a LEFT JOIN model_versions v ON v.id = a.model_version_id"      \
	"   WHERE a.experiment_id = x.id)"

static json_t *experiment_json(const PGresult *res, int i)
{
	json_t *e = json_object();
	json_object_set_new(e, "id", json_string(PQgetvalue(res, i, 0)));
	json_object_set_new(e, "object", json_string("experiment"));
	json_object_set_new(e, "name", json_string(PQgetvalue(res, i, 1)));
	json_object_set_new(e, "description", json_string(PQgetvalue(res, i, 2)));
	json_object_set_new(e, "endpoint_id", api_text_or_null(res, i, 3));
	json_object_set_new(e, "assignment", json_string(PQgetvalue(res, i, 4)));
	json_object_set_new(e, "status", json_string(PQgetvalue(res, i, 5)));
	json_object_set_new(e, "stop_reason", api_text_or_null(res, i, 6));
	json_object_set_new(e, "alpha", json_real(strtod(PQgetvalue(res, i, 7), NULL)));
	json_object_set_new(e, "power", json_real(strtod(PQgetvalue(res, i, 8), NULL)));
	json_object_set_new(e, "bootstrap_rounds", json_integer(atoi(PQgetvalue(res, i, 9))));
	json_object_set_new(e, "seed", json_integer(strtoll(PQgetvalue(res, i, 10), NULL, 10)));
	json_object_set_new(e, "guardrails", api_jsonb(res, i, 11));
	json_t *judge = api_jsonb(res, i, 12);
	if (json_is_object(judge)) /* the key itself is never shown */
		json_object_set_new(judge, "api_key_set",
				    json_boolean(PQgetvalue(res, i, 13)[0] == 't'));
	json_object_set_new(e, "judge", judge);
	json_object_set_new(e, "created_at", api_epoch(res, i, 14));
	json_object_set_new(e, "started_at", api_epoch(res, i, 15));
	json_object_set_new(e, "ended_at", api_epoch(res, i, 16));
	json_object_set_new(e, "arms", api_jsonb(res, i, 17));
	return e;
}

static enum ft_rc experiment_answer(struct api_req *r, const char *id)
{
	PGresult *res = api_db(
		r, "SELECT " EXP_COLS " FROM experiments x WHERE x.id = $1 AND x.team_id = $2", 2,
		(const char *[]){ id, r->team_id });
	if (!res)
		return r->err.rc;
	if (PQntuples(res) == 0)
		return api_not_found(r, "experiment", id);
	r->resp = api_own(r, experiment_json(res, 0));
	return FT_OK;
}

/* ---- create ---- */

struct arm_spec {
	const char *name, *model;
	double weight;
	struct api_model_target t;
};

/* An arm's model: a version of the caller's team. */
static enum ft_rc resolve_arm(struct api_req *r, const char *model, const char *param,
			      struct api_model_target *t)
{
	if (api_model_resolve(r, model, param, t)) {
		r->err.rc = FT_EINVAL; /* a field of the body names nothing: 400 */
		return FT_EINVAL;
	}
	if (t->kind != TARGET_VERSION)
		return api_bad(r, param, "not_a_version",
			       "\"%s\" is %s: an arm is a model version (NAME/N, NAME@ALIAS, "
			       "ft:BASE:JOB)",
			       model, t->kind == TARGET_BASE ? "a base model" : "a checkpoint");
	return FT_OK;
}

static enum ft_rc parse_arms(struct api_req *r, json_t *arms, struct arm_spec **out, int *n_out)
{
	static const char *const keys[] = { "name", "model", "weight", NULL };
	int n = (int)json_array_size(arms);
	double w[FT_EXP_MAX_ARMS];
	if (n < 2 || n > FT_EXP_MAX_ARMS)
		return ft_experiment_weights_check(w, n, &r->err); /* names "arms": how many */
	struct arm_spec *a = api_alloc(r->arena, (size_t)n * sizeof(*a));
	for (int i = 0; i < n; i++) {
		json_t *o = json_array_get(arms, (size_t)i);
		const char *p = api_printf(r->arena, "arms[%d]", i);
		if (!json_is_object(o))
			return api_bad(r, p, "invalid_type", "\"%s\" must be an object (got %s)", p,
				       ft_json_type_name(o));
		if (api_check_keys(r, o, p, keys))
			return FT_EINVAL;
		if (ft_json_get_str(o, "name", FT_JSON_REQUIRED, &a[i].name, &r->err) ||
		    ft_json_get_str(o, "model", FT_JSON_REQUIRED | FT_JSON_NONEMPTY, &a[i].model,
				    &r->err) ||
		    ft_json_get_num(o, "weight", FT_JSON_REQUIRED, -1e300, 1e300, &a[i].weight,
				    &r->err)) {
			ft_json_err_nest(&r->err, p);
			return FT_EINVAL;
		}
		if (!ft_experiment_arm_name_ok(a[i].name))
			return api_bad(
				r, api_printf(r->arena, "%s.name", p), "invalid_value",
				"\"%s.name\" must be 1 to 32 of A-Z a-z 0-9 . _ - (starting with "
				"a letter or digit)",
				p);
		for (int k = 0; k < i; k++)
			if (strcmp(a[k].name, a[i].name) == 0)
				return api_bad(
					r, api_printf(r->arena, "%s.name", p), "duplicate_arm",
					"arms %d and %d are both named \"%s\"", k, i, a[i].name);
		w[i] = a[i].weight;
	}
	if (ft_experiment_weights_check(w, n, &r->err))
		return FT_EINVAL;
	for (int i = 0; i < n; i++)
		if (resolve_arm(r, a[i].model, api_printf(r->arena, "arms[%d].model", i), &a[i].t))
			return FT_EINVAL;
	*out = a;
	*n_out = n;
	return FT_OK;
}

/* guardrails: {max_error_rate, max_p95_latency_ms, min_requests}, stored
 * with every key (null: that guardrail is off). */
static enum ft_rc parse_guardrails(struct api_req *r, json_t *g, json_t **out)
{
	static const char *const keys[] = { "max_error_rate", "max_p95_latency_ms", "min_requests",
					    NULL };
	double err_rate = -1, p95 = -1;
	long long min_req = 100;
	if (g && !json_is_null(g) && !json_is_object(g))
		return api_bad(r, "guardrails", "invalid_type",
			       "\"guardrails\" must be an object (got %s)", ft_json_type_name(g));
	if (json_is_object(g) && api_check_keys(r, g, "guardrails", keys))
		return FT_EINVAL;
	if (json_is_object(g) &&
	    (ft_json_get_num(g, "max_error_rate", FT_JSON_NULL_OK, 0, 1, &err_rate, &r->err) ||
	     ft_json_get_num(g, "max_p95_latency_ms", FT_JSON_NULL_OK, 1, 3.6e6, &p95, &r->err) ||
	     ft_json_get_int(g, "min_requests", FT_JSON_NULL_OK, 10, 1000000000, &min_req,
			     &r->err))) {
		ft_json_err_nest(&r->err, "guardrails");
		return FT_EINVAL;
	}
	*out = json_pack("{s:o, s:o, s:I}", "max_error_rate",
			 err_rate >= 0 ? json_real(err_rate) : json_null(), "max_p95_latency_ms",
			 p95 >= 0 ? json_real(p95) : json_null(), "min_requests",
			 (json_int_t)min_req);
	return FT_OK;
}

/* judge: {url, model, prompt, max_tokens, api_key} of an experiment or an
 * evaluation (api_int.h); the stored object keeps the prompt used (the
 * default when none is given), never the key. */
enum ft_rc api_judge_parse(struct api_req *r, json_t *j, json_t **out, const char **api_key)
{
	static const char *const keys[] = {
		"url", "model", "prompt", "max_tokens", "api_key", NULL
	};
	const char *url, *model, *prompt = ft_judge_default_prompt;
	long long max_tokens = 512;
	*out = NULL;
	*api_key = NULL;
	if (!j || json_is_null(j))
		return FT_OK;
	if (!json_is_object(j))
		return api_bad(r, "judge", "invalid_type", "\"judge\" must be an object (got %s)",
			       ft_json_type_name(j));
	if (api_check_keys(r, j, "judge", keys))
		return FT_EINVAL;
	if (ft_json_get_str(j, "url", FT_JSON_REQUIRED | FT_JSON_NONEMPTY, &url, &r->err) ||
	    ft_json_get_str(j, "model", FT_JSON_REQUIRED | FT_JSON_NONEMPTY, &model, &r->err) ||
	    ft_json_get_str(j, "prompt", FT_JSON_NULL_OK | FT_JSON_NONEMPTY, &prompt, &r->err) ||
	    ft_json_get_str(j, "api_key", FT_JSON_NULL_OK | FT_JSON_NONEMPTY, api_key, &r->err) ||
	    ft_json_get_int(j, "max_tokens", FT_JSON_NULL_OK, 16, 4096, &max_tokens, &r->err)) {
		ft_json_err_nest(&r->err, "judge");
		return FT_EINVAL;
	}
	if ((strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0) ||
	    !api_valid_text(url, 2048) || strchr(url, ' '))
		return api_bad(r, "judge.url", "invalid_value",
			       "\"judge.url\" must be an http:// or https:// URL (the API's base, "
			       "such as https://host/v1)");
	if (!api_valid_text(model, 256))
		return api_bad(r, "judge.model", "invalid_value",
			       "\"judge.model\" must be printable text of at most 256 bytes");
	if (*api_key && !api_valid_text(*api_key, 1024))
		return api_bad(r, "judge.api_key", "invalid_value",
			       "\"judge.api_key\" must be printable text of at most 1024 bytes");
	if (ft_judge_prompt_check(prompt, &r->err) || api_json_clean(r, j, "judge"))
		return FT_EINVAL;
	*out = json_pack("{s:s, s:s, s:s, s:I}", "url", url, "model", model, "prompt", prompt,
			 "max_tokens", (json_int_t)max_tokens);
	return FT_OK;
}

enum ft_rc h_experiments_create(struct api_req *r)
{
	static const char *const keys[] = {
		"name",	 "description",	     "endpoint_id", "assignment", "arms",  "alpha",
		"power", "bootstrap_rounds", "seed",	    "guardrails", "judge", NULL
	};
	json_t *b, *arms, *guard = NULL, *judge = NULL;
	const char *name, *desc = "", *endpoint = NULL, *assignment = "user", *api_key = NULL;
	double alpha = 0.05, power = 0.8;
	long long rounds = 1000, seed = 0;
	struct arm_spec *a = NULL;
	int n = 0;
	if (api_body_object(r, false, &b) || api_check_keys(r, b, NULL, keys) ||
	    ft_json_get_str(b, "name", FT_JSON_REQUIRED | FT_JSON_NONEMPTY, &name, &r->err) ||
	    ft_json_get_str(b, "description", FT_JSON_NULL_OK, &desc, &r->err) ||
	    ft_json_get_str(b, "endpoint_id", FT_JSON_NULL_OK, &endpoint, &r->err) ||
	    ft_json_get_str(b, "assignment", FT_JSON_NULL_OK, &assignment, &r->err) ||
	    ft_json_get_arr(b, "arms", FT_JSON_REQUIRED, &arms, &r->err) ||
	    ft_json_get_num(b, "alpha", FT_JSON_NULL_OK, 1e-6, 0.2, &alpha, &r->err) ||
	    ft_json_get_num(b, "power", FT_JSON_NULL_OK, 0.5, 0.999, &power, &r->err) ||
	    ft_json_get_int(b, "bootstrap_rounds", FT_JSON_NULL_OK, 100, 10000, &rounds, &r->err) ||
	    ft_json_get_int(b, "seed", FT_JSON_NULL_OK, 0, INT64_MAX, &seed, &r->err))
		return FT_EINVAL;
	if (!api_valid_text(name, 256))
		return api_bad(r, "name", "invalid_value",
			       "\"name\" must be printable text of at most 256 bytes");
	if (strlen(desc) > 4096 ||
	    api_json_clean(r, json_object_get(b, "description"), "description"))
		return api_bad(r, "description", "invalid_value",
			       "\"description\" must be at most 4096 bytes without NUL");
	if (strcmp(assignment, "user") != 0 && strcmp(assignment, "request") != 0)
		return api_bad(r, "assignment", "invalid_value",
			       "\"assignment\" must be \"user\" (sticky by the request's user) or "
			       "\"request\"");
	if (parse_arms(r, arms, &a, &n) ||
	    parse_guardrails(r, json_object_get(b, "guardrails"), &guard))
		return FT_EINVAL;
	api_own(r, guard);
	if (api_judge_parse(r, json_object_get(b, "judge"), &judge, &api_key))
		return FT_EINVAL;
	api_own(r, judge);
	if (endpoint) {
		PGresult *res =
			ft_id_valid(FT_ID_ENDPOINT, endpoint)
				? api_db(r,
					 "SELECT 1 FROM endpoints WHERE id = $1 AND team_id = $2",
					 2, (const char *[]){ endpoint, r->team_id })
				: NULL;
		if (ft_id_valid(FT_ID_ENDPOINT, endpoint) && !res)
			return r->err.rc;
		if (!res || PQntuples(res) == 0)
			return api_bad(r, "endpoint_id", "endpoint_not_found",
				       "endpoint \"%.64s\" does not exist", endpoint);
	}
	char id[FT_ID_MAX], al[32], pw[32], rd[16], sd[24];
	ft_id_new(FT_ID_EXPERIMENT, id);
	if (api_key && api_seal_secret(r, id, api_key, "judge.api_key", &api_key))
		return r->err.rc;
	snprintf(al, sizeof(al), "%.17g", alpha);
	snprintf(pw, sizeof(pw), "%.17g", power);
	snprintf(rd, sizeof(rd), "%lld", rounds);
	snprintf(sd, sizeof(sd), "%lld", seed);
	char *gtext = json_dumps(guard, JSON_COMPACT),
	     *jtext = judge ? json_dumps(judge, JSON_COMPACT) : NULL;
	api_defer(r->arena, free, gtext);
	api_defer(r->arena, free, jtext);
	const char *p[] = { id, r->team_id, name, desc,	 endpoint, assignment, al,
			    pw, rd,	    sd,	  gtext, jtext,	   api_key };
	if (api_db_begin(r) ||
	    api_db_cmd(
		    r,
		    "INSERT INTO experiments (id, team_id, name, description, endpoint_id,"
		    " assignment, alpha, power, bootstrap_rounds, seed, guardrails, judge,"
		    " judge_api_key_sealed) VALUES ($1, $2, $3, $4, $5, $6, $7::float8, $8::float8,"
		    " $9::int, $10::bigint, $11::jsonb, $12::jsonb, $13)",
		    13, p))
		return r->err.rc;
	for (int i = 0; i < n; i++) {
		char pos[8], w[32];
		snprintf(pos, sizeof(pos), "%d", i);
		snprintf(w, sizeof(w), "%.17g", a[i].weight);
		const char *q[] = { id, pos, a[i].name, a[i].model, a[i].t.version_id, w };
		if (api_db_cmd(r,
			       "INSERT INTO experiment_arms (experiment_id, position, name, model,"
			       " model_version_id, weight) VALUES ($1, $2::int, $3, $4, $5,"
			       " $6::float8)",
			       6, q))
			return r->err.rc;
	}
	if (experiment_answer(r, id) || api_db_commit(r))
		return r->err.rc;
	r->obj_type = "experiment";
	r->obj_id = api_strdup(r->arena, id);
	return FT_OK;
}

enum ft_rc h_experiments_list(struct api_req *r)
{
	long limit;
	const char *after;
	if (api_page_args(r, FT_ID_EXPERIMENT, &limit, &after))
		return FT_EINVAL;
	char lim[16];
	snprintf(lim, sizeof(lim), "%ld", limit + 1);
	PGresult *res =
		api_db(r,
		       "SELECT " EXP_COLS " FROM experiments x"
		       " WHERE x.team_id = $1 AND ($2::text IS NULL OR (x.created_at, x.id) <"
		       " (SELECT created_at, id FROM experiments WHERE id = $2 AND team_id = $1))"
		       " ORDER BY x.created_at DESC, x.id DESC LIMIT $3::int",
		       3, (const char *[]){ r->team_id, after, lim });
	if (!res)
		return r->err.rc;
	json_t *data = json_array();
	for (int i = 0; i < PQntuples(res); i++)
		json_array_append_new(data, experiment_json(res, i));
	r->resp = api_own(r, api_list(data, limit));
	return FT_OK;
}

enum ft_rc h_experiments_get(struct api_req *r)
{
	if (!ft_id_valid(FT_ID_EXPERIMENT, r->params[0]))
		return api_not_found(r, "experiment", r->params[0]);
	return experiment_answer(r, r->params[0]);
}

/* ---- life cycle ---- */

/* The experiment row locked (its status into *status), or not found. */
static enum ft_rc lock_experiment(struct api_req *r, const char *id, const char **status)
{
	if (!ft_id_valid(FT_ID_EXPERIMENT, id))
		return api_not_found(r, "experiment", id);
	if (api_db_begin(r))
		return r->err.rc;
	PGresult *res = api_db(
		r, "SELECT status FROM experiments WHERE id = $1 AND team_id = $2 FOR UPDATE", 2,
		(const char *[]){ id, r->team_id });
	if (!res)
		return r->err.rc;
	if (PQntuples(res) == 0)
		return api_not_found(r, "experiment", id);
	*status = api_strdup(r->arena, PQgetvalue(res, 0, 0));
	return FT_OK;
}

/* draft -> running: every arm's reference resolved again (an alias may
 * have moved since the experiment was made), then pinned. */
static enum ft_rc pin_arms(struct api_req *r, const char *id)
{
	PGresult *res =
		api_db(r,
		       "SELECT position, model FROM experiment_arms WHERE experiment_id = $1"
		       " ORDER BY position",
		       1, (const char *[]){ id });
	if (!res)
		return r->err.rc;
	int n = PQntuples(res);
	char **models = api_alloc(r->arena, (size_t)(n ? n : 1) * sizeof(char *));
	for (int i = 0; i < n; i++)
		models[i] = api_strdup(r->arena, PQgetvalue(res, i, 1));
	for (int i = 0; i < n; i++) {
		struct api_model_target t;
		char pos[8];
		snprintf(pos, sizeof(pos), "%d", i);
		if (resolve_arm(r, models[i], api_printf(r->arena, "arms[%d].model", i), &t)) {
			r->err.rc = FT_ECONFLICT; /* the stored arm no longer resolves */
			return FT_ECONFLICT;
		}
		if (api_db_cmd(r,
			       "UPDATE experiment_arms SET model_version_id = $3"
			       " WHERE experiment_id = $1 AND position = $2::int",
			       3, (const char *[]){ id, pos, t.version_id }))
			return r->err.rc;
	}
	return FT_OK;
}

struct transition {
	const char *action, *from[3], *to;
};

static const struct transition transitions[] = {
	{ "start", { "draft", "paused", NULL }, "running" },
	{ "pause", { "running", NULL, NULL }, "paused" },
	{ "stop", { "draft", "running", "paused" }, "stopped" },
};

static enum ft_rc move(struct api_req *r, const struct transition *t)
{
	const char *id = r->params[0], *status = "", *reason = NULL;
	json_t *b;
	static const char *const stop_keys[] = { "reason", NULL };
	static const char *const no_keys[] = { NULL };
	bool stop = strcmp(t->to, "stopped") == 0;
	if (api_body_object(r, true, &b) ||
	    api_check_keys(r, b, NULL, stop ? stop_keys : no_keys) ||
	    ft_json_get_str(b, "reason", FT_JSON_NULL_OK, &reason, &r->err))
		return FT_EINVAL;
	if (reason && !api_valid_text(reason, 1024))
		return api_bad(r, "reason", "invalid_value",
			       "\"reason\" must be printable text of at most 1024 bytes");
	if (lock_experiment(r, id, &status))
		return r->err.rc;
	bool ok = false;
	for (int i = 0; i < 3 && t->from[i]; i++)
		ok |= strcmp(t->from[i], status) == 0;
	if (!ok)
		return ft_failf(&r->err, FT_ECONFLICT, "experiment_state",
				"experiment \"%s\" is %s: it cannot %s", id, status, t->action);
	if (strcmp(status, "draft") == 0 && strcmp(t->to, "running") == 0 && pin_arms(r, id))
		return r->err.rc;
	if (api_db_cmd(
		    r,
		    "UPDATE experiments SET status = $2, updated_at = now(),"
		    " started_at = CASE WHEN $2 = 'running' THEN coalesce(started_at, now())"
		    "   ELSE started_at END,"
		    " ended_at = CASE WHEN $2 = 'stopped' THEN now() END,"
		    " stop_reason = CASE WHEN $2 = 'stopped' THEN coalesce($3, 'stopped by a user')"
		    "   END WHERE id = $1",
		    3, (const char *[]){ id, t->to, reason }) ||
	    experiment_answer(r, id) || api_db_commit(r))
		return r->err.rc;
	r->obj_type = "experiment";
	r->obj_id = id;
	return FT_OK;
}

enum ft_rc h_experiments_start(struct api_req *r)
{
	return move(r, &transitions[0]);
}

enum ft_rc h_experiments_pause(struct api_req *r)
{
	return move(r, &transitions[1]);
}

enum ft_rc h_experiments_stop(struct api_req *r)
{
	return move(r, &transitions[2]);
}

/* ---- assignment ---- */

enum ft_rc h_experiments_assignment(struct api_req *r)
{
	const char *id = r->params[0], *user = api_query(r, "user"),
		   *request = api_query(r, "request");
	if (!ft_id_valid(FT_ID_EXPERIMENT, id))
		return api_not_found(r, "experiment", id);
	PGresult *res =
		api_db(r,
		       "SELECT x.assignment, x.status, a.position, a.name, a.weight,"
		       " a.status = 'active', a.model, a.model_version_id"
		       " FROM experiments x JOIN experiment_arms a ON a.experiment_id = x.id"
		       " WHERE x.id = $1 AND x.team_id = $2 ORDER BY a.position",
		       2, (const char *[]){ id, r->team_id });
	if (!res)
		return r->err.rc;
	int n = PQntuples(res);
	if (n == 0)
		return api_not_found(r, "experiment", id);
	bool sticky = strcmp(PQgetvalue(res, 0, 0), "user") == 0 && user && *user;
	const char *key = sticky ? user : request;
	const char *param = sticky && !request ? "user" : "request";
	if (!key || !*key || !api_valid_text(key, 512))
		return api_bad(
			r, param, "invalid_value",
			strcmp(PQgetvalue(res, 0, 0), "user") == 0
				? "give ?user= (the request's user: sticky) or ?request= (its "
				  "id), printable, at most 512 bytes"
				: "this experiment assigns each request on its own: give "
				  "?request= (the request's id), printable, at most 512 bytes");
	double w[FT_EXP_MAX_ARMS];
	bool active[FT_EXP_MAX_ARMS];
	for (int i = 0; i < n && i < FT_EXP_MAX_ARMS; i++) {
		w[i] = strtod(PQgetvalue(res, i, 4), NULL);
		active[i] = PQgetvalue(res, i, 5)[0] == 't';
	}
	int arm = ft_experiment_assign(id, key, w, active, FT_MIN(n, FT_EXP_MAX_ARMS));
	json_t *o = json_pack("{s:s, s:s, s:s, s:b, s:f}", "object", "experiment.assignment",
			      "experiment", id, "status", PQgetvalue(res, 0, 1), "sticky", sticky,
			      "u", ft_experiment_hash(id, "", key));
	if (arm < 0) {
		json_object_set_new(o, "arm", json_null());
	} else {
		char label[FT_EXP_LABEL_MAX];
		ft_experiment_arm_label(id, PQgetvalue(res, arm, 3), label, sizeof(label));
		json_object_set_new(o, "arm", json_string(PQgetvalue(res, arm, 3)));
		json_object_set_new(o, "position", json_integer(arm));
		json_object_set_new(o, "label", json_string(label));
		json_object_set_new(o, "model", json_string(PQgetvalue(res, arm, 6)));
		json_object_set_new(o, "model_version_id", api_text_or_null(res, arm, 7));
	}
	r->resp = api_own(r, o);
	return FT_OK;
}

/* ---- judgments ---- */

#define JDG_COLS                                                                                \
	"j.id, a.name, b.name, j.source, j.judge, j.status, j.outcome, j.response_a,"           \
	" j.response_b, j.prompt, j.answer_a, j.answer_b, j.verdicts::text, j.comment,"         \
	" j.attempts, j.error, extract(epoch from j.created_at)::bigint,"                       \
	" extract(epoch from j.decided_at)::bigint, j.experiment_id"                            \
	" FROM judgments j"                                                                     \
	" JOIN experiment_arms a ON a.experiment_id = j.experiment_id AND a.position = j.arm_a" \
	" JOIN experiment_arms b ON b.experiment_id = j.experiment_id AND b.position = j.arm_b"

static json_t *judgment_json(const PGresult *res, int i)
{
	json_t *o = json_object();
	static const char *const names[] = { "id",	   "arm_a",  "arm_b",	 "source",
					     "judge",	   "status", "outcome",	 "response_a",
					     "response_b", "prompt", "answer_a", "answer_b" };
	for (int k = 0; k < (int)FT_ARRAY_LEN(names); k++)
		json_object_set_new(o, names[k], api_text_or_null(res, i, k));
	json_object_set_new(o, "object", json_string("experiment.judgment"));
	json_object_set_new(o, "verdicts", api_jsonb(res, i, 12));
	json_object_set_new(o, "comment", api_text_or_null(res, i, 13));
	json_object_set_new(o, "attempts", json_integer(atoi(PQgetvalue(res, i, 14))));
	json_object_set_new(o, "error", api_text_or_null(res, i, 15));
	json_object_set_new(o, "created_at", api_epoch(res, i, 16));
	json_object_set_new(o, "decided_at", api_epoch(res, i, 17));
	json_object_set_new(o, "experiment", json_string(PQgetvalue(res, i, 18)));
	return o;
}

/* An arm by name: its position, or a 400 naming param. */
static enum ft_rc arm_position(struct api_req *r, const char *id, const char *name,
			       const char *param, int *pos)
{
	PGresult *res = api_db(r,
			       "SELECT position FROM experiment_arms WHERE experiment_id = $1"
			       " AND name = $2",
			       2, (const char *[]){ id, name });
	if (!res)
		return r->err.rc;
	if (PQntuples(res) == 0)
		return api_bad(r, param, "arm_not_found", "the experiment has no arm \"%.64s\"",
			       name);
	*pos = atoi(PQgetvalue(res, 0, 0));
	return FT_OK;
}

/* A response (request_log's id) the team may judge: its own, or one of
 * its deployments' (by id, the deployments work's table). It must have
 * been answered by the named arm when the log says which. *prompt and
 * *completion get its texts when they were logged (NULL otherwise). */
static enum ft_rc check_response(struct api_req *r, const char *exp, const char *id,
				 const char *param, const char *arm, const char **prompt,
				 const char **completion)
{
	if (!api_valid_text(id, 128))
		return api_bad(r, param, "invalid_value", "\"%s\" must be a response id", param);
	PGresult *res =
		api_db(r,
		       "SELECT experiment_arm, prompt, completion FROM request_log WHERE id = $1"
		       " AND (team_id = $2 OR (team_id IS NULL AND deployment_id IN"
		       "   (SELECT d.id FROM deployments d WHERE d.team_id = $2)))",
		       2, (const char *[]){ id, r->team_id });
	if (!res)
		return r->err.rc;
	if (PQntuples(res) == 0) {
		ft_failf(&r->err, FT_ENOTFOUND, "response_not_found", "no response \"%s\"", id);
		ft_err_param(&r->err, param);
		return FT_ENOTFOUND;
	}
	char want[FT_EXP_LABEL_MAX];
	ft_experiment_arm_label(exp, arm, want, sizeof(want));
	if (!PQgetisnull(res, 0, 0) && strcmp(PQgetvalue(res, 0, 0), want) != 0)
		return api_bad(r, param, "wrong_arm",
			       "response \"%s\" was answered by \"%s\", not by arm \"%s\" of this "
			       "experiment",
			       id, PQgetvalue(res, 0, 0), arm);
	if (prompt)
		*prompt =
			PQgetisnull(res, 0, 1) ? NULL : api_strdup(r->arena, PQgetvalue(res, 0, 1));
	if (completion)
		*completion =
			PQgetisnull(res, 0, 2) ? NULL : api_strdup(r->arena, PQgetvalue(res, 0, 2));
	return FT_OK;
}

struct judgment_in {
	const char *arm_a, *arm_b, *winner, *response_a, *response_b, *prompt, *answer_a, *answer_b,
		*comment, *judge;
	int a, b;
};

static enum ft_rc text_field(struct api_req *r, json_t *b, const char *key, size_t max,
			     const char **out)
{
	if (ft_json_get_str(b, key, FT_JSON_NULL_OK, out, &r->err))
		return FT_EINVAL;
	if (*out && (strlen(*out) > max || api_json_clean(r, json_object_get(b, key), key)))
		return api_bad(r, key, "invalid_value",
			       "\"%s\" must be at most %zu bytes without NUL", key, max);
	return FT_OK;
}

/* The fields both kinds of judgment share, checked; the experiment must be
 * running or paused. */
static enum ft_rc judgment_parse(struct api_req *r, json_t *b, const char *id, bool llm,
				 struct judgment_in *in)
{
	const char *status;
	memset(in, 0, sizeof(*in));
	if (ft_json_get_str(b, "arm_a", FT_JSON_REQUIRED | FT_JSON_NONEMPTY, &in->arm_a, &r->err) ||
	    ft_json_get_str(b, "arm_b", FT_JSON_REQUIRED | FT_JSON_NONEMPTY, &in->arm_b, &r->err) ||
	    ft_json_get_str(b, "response_a", FT_JSON_NULL_OK | FT_JSON_NONEMPTY, &in->response_a,
			    &r->err) ||
	    ft_json_get_str(b, "response_b", FT_JSON_NULL_OK | FT_JSON_NONEMPTY, &in->response_b,
			    &r->err) ||
	    text_field(r, b, "prompt", TEXT_MAX, &in->prompt) ||
	    text_field(r, b, "answer_a", TEXT_MAX, &in->answer_a) ||
	    text_field(r, b, "answer_b", TEXT_MAX, &in->answer_b) ||
	    (!llm && (ft_json_get_str(b, "winner", FT_JSON_REQUIRED, &in->winner, &r->err) ||
		      text_field(r, b, "comment", 4096, &in->comment) ||
		      text_field(r, b, "judge", 256, &in->judge))))
		return FT_EINVAL;
	static const char *const outcomes[] = { "a", "b", "tie", "both_bad" };
	bool known = llm;
	for (size_t i = 0; !llm && i < FT_ARRAY_LEN(outcomes); i++)
		known |= strcmp(outcomes[i], in->winner) == 0;
	if (!known)
		return api_bad(r, "winner", "invalid_value",
			       "\"winner\" must be \"a\", \"b\", \"tie\" or \"both_bad\"");
	PGresult *res = api_db(r, "SELECT status FROM experiments WHERE id = $1 AND team_id = $2",
			       2, (const char *[]){ id, r->team_id });
	if (!res)
		return r->err.rc;
	if (PQntuples(res) == 0)
		return api_not_found(r, "experiment", id);
	status = api_strdup(r->arena, PQgetvalue(res, 0, 0));
	if (strcmp(status, "running") != 0 && strcmp(status, "paused") != 0)
		return ft_failf(&r->err, FT_ECONFLICT, "experiment_state",
				"experiment \"%s\" is %s: judgments are taken while it runs or is "
				"paused",
				id, status);
	if (arm_position(r, id, in->arm_a, "arm_a", &in->a) ||
	    arm_position(r, id, in->arm_b, "arm_b", &in->b))
		return r->err.rc;
	if (in->a == in->b)
		return api_bad(r, "arm_b", "invalid_value",
			       "\"arm_a\" and \"arm_b\" are the same arm");
	const char *pa = NULL, *ca = NULL, *cb = NULL;
	if ((in->response_a &&
	     check_response(r, id, in->response_a, "response_a", in->arm_a, &pa, &ca)) ||
	    (in->response_b &&
	     check_response(r, id, in->response_b, "response_b", in->arm_b, NULL, &cb)))
		return r->err.rc;
	if (in->response_a && in->response_b && strcmp(in->response_a, in->response_b) == 0)
		return api_bad(r, "response_b", "invalid_value",
			       "\"response_a\" and \"response_b\" are the same response");
	/* texts not given: the logged ones, when the log kept them */
	if (!in->prompt)
		in->prompt = pa;
	if (!in->answer_a)
		in->answer_a = ca;
	if (!in->answer_b)
		in->answer_b = cb;
	return FT_OK;
}

static enum ft_rc judgment_answer(struct api_req *r, const char *jid)
{
	PGresult *res =
		api_db(r, "SELECT " JDG_COLS " WHERE j.id = $1", 1, (const char *[]){ jid });
	if (!res)
		return r->err.rc;
	r->resp = api_own(r, judgment_json(res, 0));
	return FT_OK;
}

enum ft_rc h_judgments_create(struct api_req *r)
{
	static const char *const keys[] = { "arm_a",	  "arm_b",  "winner",	"response_a",
					    "response_b", "prompt", "answer_a", "answer_b",
					    "comment",	  "judge",  NULL };
	const char *id = r->params[0];
	json_t *b;
	struct judgment_in in;
	if (!ft_id_valid(FT_ID_EXPERIMENT, id))
		return api_not_found(r, "experiment", id);
	if (api_body_object(r, false, &b) || api_check_keys(r, b, NULL, keys) ||
	    judgment_parse(r, b, id, false, &in))
		return r->err.rc;
	char jid[FT_ID_MAX], a[8], bb[8];
	ft_id_new(FT_ID_JUDGMENT, jid);
	snprintf(a, sizeof(a), "%d", in.a);
	snprintf(bb, sizeof(bb), "%d", in.b);
	const char *judge = in.judge ? in.judge : api_printf(r->arena, "key:%s", r->key_id);
	const char *p[] = { jid,
			    id,
			    a,
			    bb,
			    judge,
			    in.winner,
			    in.response_a,
			    in.response_b,
			    in.prompt,
			    in.answer_a,
			    in.answer_b,
			    in.comment };
	if (api_db_cmd(r,
		       "INSERT INTO judgments (id, experiment_id, arm_a, arm_b, source, judge,"
		       " status, outcome, response_a, response_b, prompt, answer_a, answer_b,"
		       " comment, decided_at) VALUES ($1, $2, $3::int, $4::int, 'human', $5,"
		       " 'done', $6, $7, $8, $9, $10, $11, $12, now())",
		       12, p) ||
	    judgment_answer(r, jid))
		return r->err.rc;
	r->obj_type = "experiment.judgment";
	r->obj_id = api_strdup(r->arena, jid);
	return FT_OK;
}

/* An LLM judge's judgment: stored pending; ft-scheduler's judge thread
 * asks the experiment's judge in both orders (ft/judge.h). */
enum ft_rc h_judgments_llm(struct api_req *r)
{
	static const char *const keys[] = { "arm_a",  "arm_b",	  "response_a", "response_b",
					    "prompt", "answer_a", "answer_b",	NULL };
	const char *id = r->params[0];
	json_t *b;
	struct judgment_in in;
	if (!ft_id_valid(FT_ID_EXPERIMENT, id))
		return api_not_found(r, "experiment", id);
	if (api_body_object(r, false, &b) || api_check_keys(r, b, NULL, keys) ||
	    judgment_parse(r, b, id, true, &in))
		return r->err.rc;
	PGresult *res = api_db(r, "SELECT judge->>'model' FROM experiments WHERE id = $1", 1,
			       (const char *[]){ id });
	if (!res)
		return r->err.rc;
	if (PQgetisnull(res, 0, 0))
		return ft_failf(&r->err, FT_ECONFLICT, "no_judge",
				"experiment \"%s\" has no judge: give \"judge\" when creating it",
				id);
	const char *model = api_strdup(r->arena, PQgetvalue(res, 0, 0));
	static const char *const need[] = { "prompt", "answer_a", "answer_b" };
	const char *have[] = { in.prompt, in.answer_a, in.answer_b };
	for (size_t i = 0; i < FT_ARRAY_LEN(need); i++)
		if (!have[i])
			return api_bad(r, need[i], "missing_field",
				       "\"%s\" is required (or a response whose text was logged)",
				       need[i]);
	char jid[FT_ID_MAX], a[8], bb[8];
	ft_id_new(FT_ID_JUDGMENT, jid);
	snprintf(a, sizeof(a), "%d", in.a);
	snprintf(bb, sizeof(bb), "%d", in.b);
	const char *p[] = { jid,	   id,	      a,	   bb,	       model, in.response_a,
			    in.response_b, in.prompt, in.answer_a, in.answer_b };
	if (api_db_cmd(r,
		       "INSERT INTO judgments (id, experiment_id, arm_a, arm_b, source, judge,"
		       " status, response_a, response_b, prompt, answer_a, answer_b,"
		       " next_attempt_at) VALUES ($1, $2, $3::int, $4::int, 'llm', $5, 'pending',"
		       " $6, $7, $8, $9, $10, now())",
		       10, p) ||
	    judgment_answer(r, jid))
		return r->err.rc;
	r->status = 202;
	r->obj_type = "experiment.judgment";
	r->obj_id = api_strdup(r->arena, jid);
	return FT_OK;
}

enum ft_rc h_judgments_list(struct api_req *r)
{
	long limit;
	const char *after, *id = r->params[0];
	if (!ft_id_valid(FT_ID_EXPERIMENT, id))
		return api_not_found(r, "experiment", id);
	if (api_page_args(r, FT_ID_JUDGMENT, &limit, &after))
		return FT_EINVAL;
	PGresult *res = api_db(r, "SELECT 1 FROM experiments WHERE id = $1 AND team_id = $2", 2,
			       (const char *[]){ id, r->team_id });
	if (!res)
		return r->err.rc;
	if (PQntuples(res) == 0)
		return api_not_found(r, "experiment", id);
	char lim[16];
	snprintf(lim, sizeof(lim), "%ld", limit + 1);
	res = api_db(r,
		     "SELECT " JDG_COLS " WHERE j.experiment_id = $1 AND ($2::text IS NULL OR"
		     " (j.created_at, j.id) < (SELECT created_at, id FROM judgments"
		     "   WHERE id = $2 AND experiment_id = $1))"
		     " ORDER BY j.created_at DESC, j.id DESC LIMIT $3::int",
		     3, (const char *[]){ id, after, lim });
	if (!res)
		return r->err.rc;
	json_t *data = json_array();
	for (int i = 0; i < PQntuples(res); i++)
		json_array_append_new(data, judgment_json(res, i));
	r->resp = api_own(r, api_list(data, limit));
	return FT_OK;
}

/* ---- results ---- */

enum ft_rc h_experiments_results(struct api_req *r)
{
	const char *id = r->params[0];
	if (!ft_id_valid(FT_ID_EXPERIMENT, id))
		return api_not_found(r, "experiment", id);
	PGresult *res = api_db(r,
			       "SELECT x.status, extract(epoch from x.started_at)::bigint,"
			       " extract(epoch from er.computed_at)::bigint, er.results::text"
			       " FROM experiments x"
			       " LEFT JOIN experiment_results er ON er.experiment_id = x.id"
			       " WHERE x.id = $1 AND x.team_id = $2",
			       2, (const char *[]){ id, r->team_id });
	if (!res)
		return r->err.rc;
	if (PQntuples(res) == 0)
		return api_not_found(r, "experiment", id);
	json_t *o = api_jsonb(res, 0, 3);
	if (!json_is_object(o)) { /* not computed yet: the leader does, on its period */
		json_decref(o);
		o = json_object();
	}
	json_object_set_new(o, "object", json_string("experiment.results"));
	json_object_set_new(o, "experiment", json_string(id));
	json_object_set_new(o, "status", json_string(PQgetvalue(res, 0, 0)));
	json_object_set_new(o, "computed_at", api_epoch(res, 0, 2));
	r->resp = api_own(r, o);
	return FT_OK;
}

/* ---- feedback ---- */

static enum ft_rc feedback_answer(struct api_req *r, const char *response)
{
	PGresult *res = api_db(r,
			       "SELECT f.response_id, f.thumbs, f.resolved, f.escalated, f.comment,"
			       " extract(epoch from f.created_at)::bigint, extract(epoch from "
			       "f.updated_at)::bigint,"
			       " rl.experiment_arm FROM feedback f LEFT JOIN request_log rl ON "
			       "rl.id = f.response_id"
			       " WHERE f.response_id = $1 AND f.team_id = $2",
			       2, (const char *[]){ response, r->team_id });
	if (!res)
		return r->err.rc;
	if (PQntuples(res) == 0)
		return api_not_found(r, "feedback for response", response);
	json_t *o = json_pack(
		"{s:s, s:s, s:o, s:o, s:o, s:o, s:o, s:o}", "object", "feedback", "response_id",
		PQgetvalue(res, 0, 0), "thumbs", api_text_or_null(res, 0, 1), "resolved",
		PQgetisnull(res, 0, 2) ? json_null()
				       : json_boolean(PQgetvalue(res, 0, 2)[0] == 't'),
		"escalated",
		PQgetisnull(res, 0, 3) ? json_null()
				       : json_boolean(PQgetvalue(res, 0, 3)[0] == 't'),
		"comment", api_text_or_null(res, 0, 4), "created_at", api_epoch(res, 0, 5),
		"updated_at", api_epoch(res, 0, 6));
	char exp[FT_ID_MAX], arm[FT_EXP_ARM_NAME_MAX + 1];
	if (!PQgetisnull(res, 0, 7) && ft_experiment_arm_label_parse(PQgetvalue(res, 0, 7), exp,
								     sizeof(exp), arm, sizeof(arm)))
		json_object_set_new(o, "experiment",
				    json_pack("{s:s, s:s}", "id", exp, "arm", arm));
	else
		json_object_set_new(o, "experiment", json_null());
	r->resp = api_own(r, o);
	return FT_OK;
}

enum ft_rc h_feedback_create(struct api_req *r)
{
	static const char *const keys[] = { "response_id", "thumbs",  "resolved",
					    "escalated",   "comment", NULL };
	json_t *b;
	const char *response, *thumbs = NULL, *comment = NULL;
	if (api_body_object(r, false, &b) || api_check_keys(r, b, NULL, keys) ||
	    ft_json_get_str(b, "response_id", FT_JSON_REQUIRED | FT_JSON_NONEMPTY, &response,
			    &r->err) ||
	    ft_json_get_str(b, "thumbs", FT_JSON_NULL_OK, &thumbs, &r->err) ||
	    text_field(r, b, "comment", 4096, &comment))
		return FT_EINVAL;
	static const char *const flags[] = { "resolved", "escalated" };
	const char *fv[2] = { NULL, NULL };
	for (int i = 0; i < 2; i++) {
		json_t *v = json_object_get(b, flags[i]);
		if (v && !json_is_null(v) && !json_is_boolean(v))
			return api_bad(r, flags[i], "invalid_type",
				       "\"%s\" must be true or false (got %s)", flags[i],
				       ft_json_type_name(v));
		if (json_is_boolean(v))
			fv[i] = json_is_true(v) ? "true" : "false";
	}
	if (thumbs && strcmp(thumbs, "up") != 0 && strcmp(thumbs, "down") != 0)
		return api_bad(r, "thumbs", "invalid_value",
			       "\"thumbs\" must be \"up\" or \"down\"");
	if (!thumbs && !fv[0] && !fv[1] && !comment)
		return api_bad(r, "thumbs", "missing_field",
			       "give at least one of \"thumbs\", \"resolved\", \"escalated\", "
			       "\"comment\"");
	if (!api_valid_text(response, 128))
		return api_bad(r, "response_id", "invalid_value",
			       "\"response_id\" must be a response id");
	PGresult *res = api_db(
		r,
		"SELECT 1 FROM request_log WHERE id = $1 AND (team_id = $2 OR (team_id IS NULL"
		" AND deployment_id IN (SELECT d.id FROM deployments d WHERE d.team_id = $2)))",
		2, (const char *[]){ response, r->team_id });
	if (!res)
		return r->err.rc;
	if (PQntuples(res) == 0) {
		ft_failf(&r->err, FT_ENOTFOUND, "response_not_found", "no response \"%s\"",
			 response);
		ft_err_param(&r->err, "response_id");
		return FT_ENOTFOUND;
	}
	/* given fields replace the stored ones; the others are kept */
	const char *p[] = { response, r->team_id, thumbs, fv[0], fv[1], comment, r->key_id };
	if (api_db_cmd(r,
		       "INSERT INTO feedback (response_id, team_id, thumbs, resolved, escalated,"
		       " comment, key_id) VALUES ($1, $2, $3, $4::boolean, $5::boolean, $6, $7)"
		       " ON CONFLICT (response_id) DO UPDATE SET"
		       " thumbs = coalesce(EXCLUDED.thumbs, feedback.thumbs),"
		       " resolved = coalesce(EXCLUDED.resolved, feedback.resolved),"
		       " escalated = coalesce(EXCLUDED.escalated, feedback.escalated),"
		       " comment = coalesce(EXCLUDED.comment, feedback.comment),"
		       " key_id = EXCLUDED.key_id, updated_at = now()"
		       " WHERE feedback.team_id = EXCLUDED.team_id",
		       7, p) ||
	    feedback_answer(r, response))
		return r->err.rc;
	r->obj_type = "feedback";
	r->obj_id = api_strdup(r->arena, response);
	return FT_OK;
}

enum ft_rc h_feedback_get(struct api_req *r)
{
	if (!api_valid_text(r->params[0], 128))
		return api_not_found(r, "feedback for response", r->params[0]);
	return feedback_answer(r, r->params[0]);
}
