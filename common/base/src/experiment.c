/*
 * experiment.c - ft/experiment.h: the assignment hash, the weights' rule
 * and the request log's arm label.
 */
#include "ft/experiment.h"
#include "ft/crypto.h"
#include "ft/id.h"

#include "ft/json.h"

#include <ctype.h>
#include <math.h>

double ft_experiment_hash(const char *experiment_id, const char *salt, const char *key)
{
	struct ft_sha256 h;
	unsigned char d[FT_SHA256_LEN];
	FT_ASSERT(ft_sha256_init(&h) == FT_OK);
	ft_sha256_update(&h, experiment_id, strlen(experiment_id));
	ft_sha256_update(&h, "", 1);
	ft_sha256_update(&h, salt, strlen(salt));
	ft_sha256_update(&h, key, strlen(key));
	ft_sha256_final(&h, d);
	uint64_t x = 0;
	for (int i = 0; i < 8; i++)
		x = x << 8 | d[i];
	return (double)(x >> 11) * 0x1.0p-53;
}

/* The first arm whose cumulative weight passes u among those taken. */
static int pick(double u, const double *w, const bool *take, int n)
{
	double total = 0, c = 0;
	int last = -1;
	for (int i = 0; i < n; i++)
		if (take[i] && w[i] > 0)
			total += w[i], last = i;
	if (last < 0)
		return -1;
	for (int i = 0; i < n; i++) {
		if (!take[i] || w[i] <= 0)
			continue;
		c += w[i];
		if (u * total < c)
			return i;
	}
	return last; /* rounding: u * total just below total */
}

int ft_experiment_assign(const char *experiment_id, const char *key, const double *weights,
			 const bool *active, int n)
{
	bool all[FT_EXP_MAX_ARMS];
	if (n < 1 || n > FT_EXP_MAX_ARMS)
		return -1;
	for (int i = 0; i < n; i++)
		all[i] = true;
	int arm = pick(ft_experiment_hash(experiment_id, "", key), weights, all, n);
	if (arm >= 0 && active[arm])
		return arm;
	return pick(ft_experiment_hash(experiment_id, "1", key), weights, active, n);
}

enum ft_rc ft_experiment_weights_check(const double *w, int n, struct ft_err *err)
{
	if (n < 2 || n > FT_EXP_MAX_ARMS) {
		ft_failf(err, FT_EINVAL, "invalid_value",
			 "\"arms\" must list 2 to %d arms (got %d)", FT_EXP_MAX_ARMS, n);
		ft_err_param(err, "arms");
		return FT_EINVAL;
	}
	double sum = 0;
	for (int i = 0; i < n; i++) {
		if (!isfinite(w[i]) || w[i] < 0 || w[i] > 1) {
			char p[32];
			snprintf(p, sizeof(p), "arms[%d].weight", i);
			ft_failf(err, FT_EINVAL, "invalid_value",
				 "\"%s\" must be a number from 0 to 1", p);
			ft_err_param(err, p);
			return FT_EINVAL;
		}
		sum += w[i];
	}
	if (fabs(sum - 1.0) > FT_EXP_WEIGHT_TOLERANCE) {
		ft_failf(err, FT_EINVAL, "invalid_weights",
			 "the arms' weights must sum to 1 (they sum to %.17g)", sum);
		ft_err_param(err, "arms");
		return FT_EINVAL;
	}
	return FT_OK;
}

bool ft_experiment_arm_name_ok(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > FT_EXP_ARM_NAME_MAX || !isalnum((unsigned char)s[0]))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && !strchr("._-", s[i]))
			return false;
	return true;
}

bool ft_experiment_arm_label(const char *experiment_id, const char *arm, char *out, size_t n)
{
	int w = snprintf(out, n, "%s:%s", experiment_id, arm);
	if (w > 0 && (size_t)w < n)
		return true;
	if (n)
		out[0] = '\0'; /* never a label cut short */
	return false;
}

bool ft_experiment_arm_label_parse(const char *label, char *experiment_id, size_t n_id, char *arm,
				   size_t n_arm)
{
	const char *c = strchr(label, ':');
	if (!c || (size_t)(c - label) >= n_id || strlen(c + 1) >= n_arm)
		return false;
	memcpy(experiment_id, label, (size_t)(c - label));
	experiment_id[c - label] = '\0';
	snprintf(arm, n_arm, "%s", c + 1);
	return ft_id_valid(FT_ID_EXPERIMENT, experiment_id) && ft_experiment_arm_name_ok(arm);
}

/* ---- the experiment as an endpoint routes by it ---- */

const char *const ft_exp_status_names[] = { "draft", "running", "paused", "stopped" };

static enum ft_rc spec_bad(struct ft_err *err, const char *param, const char *fmt, ...)
	FT_PRINTF(3, 4);
static enum ft_rc spec_bad(struct ft_err *err, const char *param, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	ft_vfailf(err, FT_EINVAL, "invalid_value", fmt, ap);
	va_end(ap);
	ft_err_param(err, param);
	return FT_EINVAL;
}

static bool printable(const char *s, size_t max)
{
	size_t n = strlen(s);
	if (n == 0 || n > max)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return false;
	return true;
}

static enum ft_rc spec_arm(const json_t *o, int i, struct ft_exp_arm *a, struct ft_err *err)
{
	static const char *const keys[] = { "name", "model", "weight", "status", NULL };
	char p[32];
	snprintf(p, sizeof(p), "arms[%d]", i);
	if (!json_is_object(o))
		return spec_bad(err, p, "\"%s\" must be an object (got %s)", p,
				ft_json_type_name(o));
	const char *name = NULL, *model = NULL, *status = NULL;
	if (ft_json_check_keys(o, keys, err) ||
	    ft_json_get_str(o, "name", FT_JSON_REQUIRED, &name, err) ||
	    ft_json_get_str(o, "model", FT_JSON_NULL_OK, &model, err) ||
	    ft_json_get_num(o, "weight", FT_JSON_REQUIRED, 0, 1, &a->weight, err) ||
	    ft_json_get_str(o, "status", FT_JSON_REQUIRED, &status, err)) {
		ft_json_err_nest(err, p);
		return FT_EINVAL;
	}
	char q[48];
	if (!ft_experiment_arm_name_ok(name)) {
		snprintf(q, sizeof(q), "%s.name", p);
		return spec_bad(err, q, "\"%s\" must be 1 to 32 of A-Z a-z 0-9 . _ -", q);
	}
	if (model && *model && !printable(model, FT_EXP_MODEL_MAX - 1)) {
		snprintf(q, sizeof(q), "%s.model", p);
		return spec_bad(err, q, "\"%s\" must be printable, at most %d bytes", q,
				FT_EXP_MODEL_MAX - 1);
	}
	if (strcmp(status, "active") != 0 && strcmp(status, "stopped") != 0) {
		snprintf(q, sizeof(q), "%s.status", p);
		return spec_bad(err, q, "\"%s\" must be \"active\" or \"stopped\"", q);
	}
	ft_strlcpy(a->name, name, sizeof(a->name));
	ft_strlcpy(a->model, model ? model : "", sizeof(a->model));
	a->active = strcmp(status, "active") == 0;
	return FT_OK;
}

enum ft_rc ft_experiment_spec_parse(const json_t *o, struct ft_exp_spec *out, struct ft_err *err)
{
	static const char *const keys[] = { "id",     "team_id", "name", "assignment",
					    "status", "arms",	 NULL };
	const char *id, *team, *name, *assignment, *status;
	json_t *arms;
	memset(out, 0, sizeof(*out));
	if (!json_is_object(o))
		return spec_bad(err, NULL, "an experiment must be a JSON object (got %s)",
				ft_json_type_name(o));
	if (ft_json_check_keys(o, keys, err) ||
	    ft_json_get_str(o, "id", FT_JSON_REQUIRED, &id, err) ||
	    ft_json_get_str(o, "team_id", FT_JSON_REQUIRED, &team, err) ||
	    ft_json_get_str(o, "name", FT_JSON_REQUIRED, &name, err) ||
	    ft_json_get_str(o, "assignment", FT_JSON_REQUIRED, &assignment, err) ||
	    ft_json_get_str(o, "status", FT_JSON_REQUIRED, &status, err) ||
	    ft_json_get_arr(o, "arms", FT_JSON_REQUIRED, &arms, err))
		return FT_EINVAL;
	if (!ft_id_valid(FT_ID_EXPERIMENT, id))
		return spec_bad(err, "id", "\"id\" must be an experiment id (exp-…)");
	if (!ft_id_valid(FT_ID_TEAM, team))
		return spec_bad(err, "team_id", "\"team_id\" must be a team id (team-…)");
	if (!printable(name, FT_EXP_NAME_MAX))
		return spec_bad(err, "name", "\"name\" must be printable, 1 to %d bytes",
				FT_EXP_NAME_MAX);
	if (strcmp(assignment, "user") != 0 && strcmp(assignment, "request") != 0)
		return spec_bad(err, "assignment",
				"\"assignment\" must be \"user\" or \"request\"");
	int st = -1;
	for (int i = 0; i <= FT_EXP_STOPPED; i++)
		if (strcmp(status, ft_exp_status_names[i]) == 0)
			st = i;
	if (st < 0)
		return spec_bad(err, "status",
				"\"status\" must be draft, running, paused or stopped");
	int n = (int)json_array_size(arms);
	double w[FT_EXP_MAX_ARMS] = { 0 }; /* the count check reads none; gcc cannot tell */
	if (n < 2 || n > FT_EXP_MAX_ARMS)
		return ft_experiment_weights_check(w, n, err);
	for (int i = 0; i < n; i++) {
		if (spec_arm(json_array_get(arms, (size_t)i), i, &out->arms[i], err))
			return FT_EINVAL;
		for (int k = 0; k < i; k++)
			if (strcmp(out->arms[k].name, out->arms[i].name) == 0) {
				char q[48];
				snprintf(q, sizeof(q), "arms[%d].name", i);
				return spec_bad(err, q, "arms %d and %d are both named \"%s\"", k,
						i, out->arms[i].name);
			}
		w[i] = out->arms[i].weight;
	}
	if (ft_experiment_weights_check(w, n, err))
		return FT_EINVAL;
	ft_strlcpy(out->id, id, sizeof(out->id));
	ft_strlcpy(out->team, team, sizeof(out->team));
	ft_strlcpy(out->name, name, sizeof(out->name));
	out->sticky = strcmp(assignment, "user") == 0;
	out->status = (enum ft_exp_status)st;
	out->n = n;
	return FT_OK;
}

json_t *ft_experiment_spec_json(const struct ft_exp_spec *s)
{
	json_t *arms = json_array();
	for (int i = 0; i < s->n; i++) {
		const struct ft_exp_arm *a = &s->arms[i];
		json_array_append_new(
			arms, json_pack("{s:s, s:o, s:f, s:s}", "name", a->name, "model",
					a->model[0] ? json_string(a->model) : json_null(), "weight",
					a->weight, "status", a->active ? "active" : "stopped"));
	}
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:o}", "id", s->id, "team_id", s->team, "name",
			 s->name, "assignment", s->sticky ? "user" : "request", "status",
			 ft_exp_status_names[s->status], "arms", arms);
}

int ft_experiment_spec_route(const struct ft_exp_spec *s, const char *user, const char *request_id,
			     bool *counted)
{
	*counted = false;
	if (s->status == FT_EXP_PAUSED) {
		for (int i = 0; i < s->n; i++)
			if (s->arms[i].active)
				return i;
		return -1;
	}
	if (s->status != FT_EXP_RUNNING)
		return -1;
	double w[FT_EXP_MAX_ARMS];
	bool active[FT_EXP_MAX_ARMS];
	for (int i = 0; i < s->n; i++) {
		w[i] = s->arms[i].weight;
		active[i] = s->arms[i].active;
	}
	const char *key = s->sticky && user && *user ? user : request_id;
	int arm = ft_experiment_assign(s->id, key, w, active, s->n);
	*counted = arm >= 0;
	return arm;
}
