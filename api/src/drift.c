/*
 * drift.c - drift monitors of deployments: the settings a team gives, and
 * what ft-scheduler's leader computed (scheduler/src/drift.c; the
 * statistics and their peers: docs/evaluation.md "Drift").
 *
 *   GET    /v1/drift                              the team's monitors
 *   POST   /v1/drift/{deployment}                 create or change the monitor
 *          {"reference_requests", "min_window_requests", "thresholds": {key: number},
 *           "refusal_patterns": {lang: [phrase, ...]}, "reset"}
 *   GET    /v1/drift/{deployment}                 settings, state (collecting, ok, alert),
 *                                                 the reference and the latest windows
 *   GET    /v1/drift/{deployment}/windows         ?granularity=hour|day&limit=N&before=T
 *   DELETE /v1/drift/{deployment}
 *
 * A deployment is named by id; it must be one of the team's (the
 * deployments table is the deployments work's; only its id and team are
 * read here). Thresholds are fteval's table (ft_drift_thresholds_set: the
 * names, defaults and ranges), languages ft_text_lang_parse's codes. A
 * changed reference_requests, or "reset": true, starts the monitor over:
 * the reference is taken again (the deployment's first requests) and the
 * windows are computed anew.
 */
#include "api_int.h"
#include "ft/stats.h"
#include "ft/textmetrics.h"

#define MON_COLS                                                                  \
	"m.deployment_id, m.status, m.reference_requests, m.min_window_requests," \
	" m.thresholds::text, m.refusal_patterns::text, extract(epoch from "      \
	"m.alert_since)::bigint,"                                                 \
	" extract(epoch from m.reference_end)::bigint, m.reference->'summary',"   \
	" extract(epoch from m.created_at)::bigint, extract(epoch from m.updated_at)::bigint"

#define WIN_COLS                                                                             \
	"w.granularity, extract(epoch from w.window_start)::bigint,"                         \
	" extract(epoch from w.window_end)::bigint, w.n_requests, w.metrics::text, w.alert," \
	" array_to_json(w.alerts)::text, extract(epoch from w.computed_at)::bigint"

static json_t *window_json(const PGresult *res, int i, int c)
{
	return json_pack("{s:s, s:s, s:o, s:o, s:i, s:o, s:b, s:o, s:o}", "object", "drift.window",
			 "granularity", PQgetvalue(res, i, c), "window_start",
			 api_epoch(res, i, c + 1), "window_end", api_epoch(res, i, c + 2),
			 "n_requests", atoi(PQgetvalue(res, i, c + 3)), "metrics",
			 api_jsonb(res, i, c + 4), "alert", PQgetvalue(res, i, c + 5)[0] == 't',
			 "alerts", api_jsonb(res, i, c + 6), "computed_at",
			 api_epoch(res, i, c + 7));
}

static json_t *monitor_json(const PGresult *res, int i)
{
	json_t *m = json_object();
	json_object_set_new(m, "object", json_string("drift.monitor"));
	json_object_set_new(m, "deployment_id", json_string(PQgetvalue(res, i, 0)));
	json_object_set_new(m, "status", json_string(PQgetvalue(res, i, 1)));
	json_object_set_new(m, "reference_requests", json_integer(atoi(PQgetvalue(res, i, 2))));
	json_object_set_new(m, "min_window_requests", json_integer(atoi(PQgetvalue(res, i, 3))));
	json_object_set_new(m, "thresholds", api_jsonb(res, i, 4));
	json_object_set_new(m, "refusal_patterns", api_jsonb(res, i, 5));
	json_object_set_new(m, "alert_since", api_epoch(res, i, 6));
	json_object_set_new(m, "reference",
			    json_pack("{s:o, s:o}", "end", api_epoch(res, i, 7), "summary",
				      api_jsonb(res, i, 8)));
	json_object_set_new(m, "created_at", api_epoch(res, i, 9));
	json_object_set_new(m, "updated_at", api_epoch(res, i, 10));
	return m;
}

static enum ft_rc monitor_answer(struct api_req *r, const char *dep)
{
	PGresult *res =
		api_db(r,
		       "SELECT " MON_COLS
		       " FROM drift_monitors m WHERE m.deployment_id = $1 AND m.team_id = $2",
		       2, (const char *[]){ dep, r->team_id });
	if (!res)
		return r->err.rc;
	if (PQntuples(res) == 0)
		return api_not_found(r, "drift monitor for deployment", dep);
	json_t *m = api_own(r, monitor_json(res, 0));
	/* the latest window of each granularity */
	res = api_db(r,
		     "SELECT DISTINCT ON (w.granularity) " WIN_COLS " FROM drift_windows w"
		     " WHERE w.deployment_id = $1 ORDER BY w.granularity, w.window_start DESC",
		     1, (const char *[]){ dep });
	if (!res)
		return r->err.rc;
	json_t *latest = json_pack("{s:n, s:n}", "hour", "day");
	for (int i = 0; i < PQntuples(res); i++)
		json_object_set_new(latest, PQgetvalue(res, i, 0), window_json(res, i, 0));
	json_object_set_new(m, "latest", latest);
	r->resp = m;
	return FT_OK;
}

/* The deployment: one of the team's (by id; the deployments work's table). */
static enum ft_rc own_deployment(struct api_req *r, const char *dep)
{
	if (!ft_id_valid(FT_ID_DEPLOYMENT, dep))
		return api_not_found(r, "deployment", dep);
	PGresult *res = api_db(r, "SELECT 1 FROM deployments WHERE id = $1 AND team_id = $2", 2,
			       (const char *[]){ dep, r->team_id });
	if (!res)
		return r->err.rc;
	return PQntuples(res) ? FT_OK : api_not_found(r, "deployment", dep);
}

/* thresholds: fteval's table, every key filled in (given or default). */
static enum ft_rc parse_thresholds(struct api_req *r, json_t *v, json_t *old, json_t **out)
{
	struct ft_drift_thresholds t;
	ft_drift_thresholds_default(&t);
	json_t *srcs[2] = { old, v };
	for (int s = 0; s < 2; s++) {
		if (!srcs[s] || json_is_null(srcs[s]))
			continue;
		if (!json_is_object(srcs[s]))
			return api_bad(r, "thresholds", "invalid_value",
				       "\"thresholds\" must be an object (got %s)",
				       ft_json_type_name(srcs[s]));
		const char *key;
		json_t *x;
		json_object_foreach(srcs[s], key, x)
		{
			const char *p = api_printf(r->arena, "thresholds.%.64s", key);
			struct ft_err e;
			ft_err_clear(&e);
			if (!json_is_number(x))
				return api_bad(r, p, "invalid_value",
					       "\"%s\" must be a number (got %s)", p,
					       ft_json_type_name(x));
			if (ft_drift_thresholds_set(&t, key, json_number_value(x), &e)) {
				ft_failf(&r->err, FT_EINVAL, "invalid_value", "%s", e.msg);
				if (e.hint[0])
					ft_err_hintf(&r->err, "%s", e.hint);
				ft_err_param(&r->err, p);
				return FT_EINVAL;
			}
		}
	}
	*out = json_object();
	for (int i = 0; ft_drift_threshold_key(i); i++)
		json_object_set_new(*out, ft_drift_threshold_key(i),
				    json_real(ft_drift_threshold_value(&t, i)));
	return FT_OK;
}

/* refusal_patterns: {lang: [phrase, ...]} with known language codes. */
static enum ft_rc parse_patterns(struct api_req *r, json_t *v)
{
	if (!v || json_is_null(v))
		return FT_OK;
	if (!json_is_object(v))
		return api_bad(r, "refusal_patterns", "invalid_value",
			       "\"refusal_patterns\" must be an object (got %s)",
			       ft_json_type_name(v));
	const char *key;
	json_t *x;
	json_object_foreach(v, key, x)
	{
		const char *p = api_printf(r->arena, "refusal_patterns.%.16s", key);
		enum ft_text_lang l;
		if (!ft_text_lang_parse(key, &l))
			return api_bad(
				r, p, "invalid_value",
				"\"%s\": languages are en, zh, ja, ko, ru, ar, other (scripts: "
				"docs/evaluation.md)",
				p);
		size_t n = json_array_size(x);
		if (!json_is_array(x) || n > 64)
			return api_bad(r, p, "invalid_value",
				       "\"%s\" must be a list of at most 64 phrases", p);
		for (size_t i = 0; i < n; i++) {
			const char *s = json_string_value(json_array_get(x, i));
			if (!s || !*s || strlen(s) > 256 ||
			    strlen(s) != json_string_length(json_array_get(x, i)))
				return api_bad(
					r, p, "invalid_value",
					"\"%s\"[%zu] must be a phrase of 1 to 256 bytes without "
					"NUL",
					p, i);
		}
	}
	return FT_OK;
}

enum ft_rc h_drift_set(struct api_req *r)
{
	static const char *const keys[] = { "reference_requests",
					    "min_window_requests",
					    "thresholds",
					    "refusal_patterns",
					    "reset",
					    NULL };
	const char *dep = r->params[0];
	json_t *b;
	long long ref = -1, minw = -1;
	bool reset = false;
	if (api_body_object(r, true, &b) || api_check_keys(r, b, NULL, keys) ||
	    ft_json_get_int(b, "reference_requests", FT_JSON_NULL_OK, 50, 100000, &ref, &r->err) ||
	    ft_json_get_int(b, "min_window_requests", FT_JSON_NULL_OK, 10, 100000, &minw,
			    &r->err) ||
	    ft_json_get_bool(b, "reset", FT_JSON_NULL_OK, &reset, &r->err) ||
	    parse_patterns(r, json_object_get(b, "refusal_patterns")))
		return FT_EINVAL;
	if (own_deployment(r, dep) || api_db_begin(r))
		return r->err.rc;
	PGresult *res = api_db(r,
			       "SELECT reference_requests, thresholds::text FROM drift_monitors"
			       " WHERE deployment_id = $1 AND team_id = $2 FOR UPDATE",
			       2, (const char *[]){ dep, r->team_id });
	if (!res)
		return r->err.rc;
	bool exists = PQntuples(res) == 1;
	json_t *old = exists ? api_own(r, json_loads(PQgetvalue(res, 0, 1), 0, NULL)) : NULL;
	json_t *th = NULL;
	if (parse_thresholds(r, json_object_get(b, "thresholds"), old, &th))
		return FT_EINVAL;
	api_own(r, th);
	bool restart = reset || (exists && ref >= 0 && ref != atoll(PQgetvalue(res, 0, 0)));
	char *thtext = json_dumps(th, JSON_COMPACT);
	api_defer(r->arena, free, thtext);
	json_t *pat = json_object_get(b, "refusal_patterns");
	char *pattext = pat && !json_is_null(pat) ? json_dumps(pat, JSON_COMPACT) : NULL;
	api_defer(r->arena, free, pattext);
	char rs[24], mw[24];
	snprintf(rs, sizeof(rs), "%lld", ref);
	snprintf(mw, sizeof(mw), "%lld", minw);
	const char *p[] = { dep,    r->team_id, ref >= 0 ? rs : NULL, minw >= 0 ? mw : NULL,
			    thtext, pattext,	restart ? "t" : "f" };
	if (api_db_cmd(
		    r,
		    "INSERT INTO drift_monitors (deployment_id, team_id, reference_requests,"
		    " min_window_requests, thresholds, refusal_patterns)"
		    " VALUES ($1, $2, coalesce($3::int, 1000), coalesce($4::int, 30), $5::jsonb,"
		    " coalesce($6::jsonb, '{}'))"
		    " ON CONFLICT (deployment_id) DO UPDATE SET"
		    " reference_requests = coalesce($3::int, drift_monitors.reference_requests),"
		    " min_window_requests = coalesce($4::int, drift_monitors.min_window_requests),"
		    " thresholds = $5::jsonb,"
		    " refusal_patterns = coalesce($6::jsonb, drift_monitors.refusal_patterns),"
		    " status = CASE WHEN $7::boolean THEN 'collecting' ELSE drift_monitors.status "
		    "END,"
		    " reference_end = CASE WHEN $7::boolean THEN NULL"
		    "   ELSE drift_monitors.reference_end END,"
		    " reference = CASE WHEN $7::boolean THEN NULL ELSE drift_monitors.reference "
		    "END,"
		    " alert_since = CASE WHEN $7::boolean THEN NULL"
		    "   ELSE drift_monitors.alert_since END,"
		    " updated_at = now() WHERE drift_monitors.team_id = $2",
		    7, p) ||
	    (restart && api_db_cmd(r, "DELETE FROM drift_windows WHERE deployment_id = $1", 1,
				   (const char *[]){ dep })) ||
	    monitor_answer(r, dep) || api_db_commit(r))
		return r->err.rc;
	r->obj_type = "drift.monitor";
	r->obj_id = dep;
	return FT_OK;
}

enum ft_rc h_drift_get(struct api_req *r)
{
	if (!ft_id_valid(FT_ID_DEPLOYMENT, r->params[0]))
		return api_not_found(r, "drift monitor for deployment", r->params[0]);
	return monitor_answer(r, r->params[0]);
}

enum ft_rc h_drift_delete(struct api_req *r)
{
	const char *dep = r->params[0];
	if (!ft_id_valid(FT_ID_DEPLOYMENT, dep))
		return api_not_found(r, "drift monitor for deployment", dep);
	PGresult *res =
		api_db(r,
		       "DELETE FROM drift_monitors WHERE deployment_id = $1 AND team_id = $2"
		       " RETURNING 1",
		       2, (const char *[]){ dep, r->team_id });
	if (!res)
		return r->err.rc;
	if (PQntuples(res) == 0)
		return api_not_found(r, "drift monitor for deployment", dep);
	r->resp = api_own(r, json_pack("{s:s, s:s, s:b}", "object", "drift.monitor",
				       "deployment_id", dep, "deleted", 1));
	r->obj_type = "drift.monitor";
	r->obj_id = dep;
	return FT_OK;
}

enum ft_rc h_drift_list(struct api_req *r)
{
	PGresult *res = api_db(r,
			       "SELECT " MON_COLS " FROM drift_monitors m WHERE m.team_id = $1"
			       " ORDER BY m.created_at DESC, m.deployment_id DESC LIMIT 1000",
			       1, (const char *[]){ r->team_id });
	if (!res)
		return r->err.rc;
	json_t *data = json_array();
	for (int i = 0; i < PQntuples(res); i++)
		json_array_append_new(data, monitor_json(res, i));
	r->resp = api_own(
		r, json_pack("{s:s, s:o, s:b}", "object", "list", "data", data, "has_more", 0));
	return FT_OK;
}

enum ft_rc h_drift_windows(struct api_req *r)
{
	const char *dep = r->params[0], *gran = api_query(r, "granularity"),
		   *lim = api_query(r, "limit"), *before = api_query(r, "before");
	if (!gran)
		gran = "hour";
	if (strcmp(gran, "hour") != 0 && strcmp(gran, "day") != 0)
		return api_bad(r, "granularity", "invalid_value",
			       "\"granularity\" must be \"hour\" or \"day\"");
	char *end = NULL;
	long limit = lim ? strtol(lim, &end, 10) : 48;
	if (lim && (!*lim || *end || limit < 1 || limit > 1000))
		return api_bad(r, "limit", "invalid_value",
			       "\"limit\" must be an integer from 1 to 1000");
	long long bt = before ? strtoll(before, &end, 10) : 0;
	if (before && (!*before || *end || bt < 0))
		return api_bad(r, "before", "invalid_value",
			       "\"before\" must be a time in unix seconds");
	if (!ft_id_valid(FT_ID_DEPLOYMENT, dep))
		return api_not_found(r, "drift monitor for deployment", dep);
	PGresult *res =
		api_db(r, "SELECT 1 FROM drift_monitors WHERE deployment_id = $1 AND team_id = $2",
		       2, (const char *[]){ dep, r->team_id });
	if (!res)
		return r->err.rc;
	if (PQntuples(res) == 0)
		return api_not_found(r, "drift monitor for deployment", dep);
	char l[16], b[24];
	snprintf(l, sizeof(l), "%ld", limit + 1);
	snprintf(b, sizeof(b), "%lld", bt);
	res = api_db(r,
		     "SELECT " WIN_COLS " FROM drift_windows w WHERE w.deployment_id = $1"
		     " AND w.granularity = $2 AND ($3::bigint = 0 OR"
		     " w.window_start < to_timestamp($3::bigint))"
		     " ORDER BY w.window_start DESC LIMIT $4::int",
		     4, (const char *[]){ dep, gran, b, l });
	if (!res)
		return r->err.rc;
	json_t *data = json_array();
	int n = PQntuples(res);
	for (int i = 0; i < n && i < limit; i++)
		json_array_append_new(data, window_json(res, i, 0));
	r->resp = api_own(r, json_pack("{s:s, s:o, s:b}", "object", "list", "data", data,
				       "has_more", n > limit));
	return FT_OK;
}
