/*
 * exports.c - exports of model versions: jobs of their own kind that
 * ft-scheduler dispatches to a worker, which runs the format's ft-train
 * command (ft/exports.h) and stores the folder it writes as an artifact of
 * the version. Never run inside ft-api.
 *
 *   POST /v1/registry/exports               {"model": REF, "format", "options", "priority"}
 *   GET  /v1/registry/exports[?model=REF]   the team's (one version's), newest first
 *   GET  /v1/registry/exports/{id}          status, progress, the artifact when done
 *   POST /v1/registry/exports/{id}/cancel
 *   GET  /v1/registry/exports/{id}/events   newest first
 *   GET  /v1/registry/export_formats        ft/exports.h's table
 *
 * REF goes through the one resolver (resolve.c): "bot@production",
 * "bot/3", "ft:BASE:JOB"; it must name a version of the caller's team.
 * Every refusal names its field: "model" (nothing, another team's, a base
 * model, a checkpoint), "format" (unknown, or not for this kind of
 * version), "options.<name>" (unknown, a value the format cannot write).
 */
#include "api_int.h"
#include "ft/exports.h"

#define EXPORT_COLS                                                                             \
	"e.id, v.name, v.version, e.model_version_id, e.format, e.options::text, e.status,"     \
	" e.attempt, e.max_attempts, e.worker_id, e.progress::text, e.error::text,"             \
	" e.artifact_id, a.sha256, a.bytes, extract(epoch from e.created_at)::bigint,"          \
	" extract(epoch from e.started_at)::bigint, extract(epoch from e.finished_at)::bigint," \
	" e.priority"
#define EXPORT_FROM                                                          \
	" FROM exports e JOIN model_versions v ON v.id = e.model_version_id" \
	" LEFT JOIN artifacts a ON a.id = e.artifact_id"

static json_t *export_json(const PGresult *res, int i)
{
	json_t *e = json_object();
	json_object_set_new(e, "id", json_string(PQgetvalue(res, i, 0)));
	json_object_set_new(e, "object", json_string("model.export"));
	json_object_set_new(e, "model", json_string(PQgetvalue(res, i, 1)));
	json_object_set_new(e, "version", json_integer(atoi(PQgetvalue(res, i, 2))));
	json_object_set_new(e, "model_version_id", json_string(PQgetvalue(res, i, 3)));
	json_object_set_new(e, "format", json_string(PQgetvalue(res, i, 4)));
	json_object_set_new(e, "options", api_jsonb(res, i, 5));
	json_object_set_new(e, "status", json_string(PQgetvalue(res, i, 6)));
	json_object_set_new(e, "attempt", json_integer(atoi(PQgetvalue(res, i, 7))));
	json_object_set_new(e, "max_attempts", json_integer(atoi(PQgetvalue(res, i, 8))));
	json_object_set_new(e, "worker", api_text_or_null(res, i, 9));
	json_object_set_new(e, "progress", api_jsonb(res, i, 10));
	json_object_set_new(e, "error", api_jsonb(res, i, 11));
	json_object_set_new(
		e, "artifact",
		PQgetisnull(res, i, 12)
			? json_null()
			: json_pack("{s:s, s:s, s:I}", "id", PQgetvalue(res, i, 12), "sha256",
				    PQgetvalue(res, i, 13), "bytes",
				    (json_int_t)strtoll(PQgetvalue(res, i, 14), NULL, 10)));
	json_object_set_new(e, "created_at", api_epoch(res, i, 15));
	json_object_set_new(e, "started_at", api_epoch(res, i, 16));
	json_object_set_new(e, "finished_at", api_epoch(res, i, 17));
	json_object_set_new(e, "priority", json_integer(atoi(PQgetvalue(res, i, 18))));
	return e;
}

static enum ft_rc export_answer(struct api_req *r, const char *id)
{
	const char *p[] = { id, r->team_id };
	PGresult *res = api_db(
		r, "SELECT " EXPORT_COLS EXPORT_FROM " WHERE e.id = $1 AND e.team_id = $2", 2, p);
	if (!res)
		return r->err.rc;
	if (PQntuples(res) == 0)
		return api_not_found(r, "export", id);
	r->resp = api_own(r, export_json(res, 0));
	return FT_OK;
}

/* Bytes an export will store, roughly, for the quota: the merged model's
 * weights in the dtype asked (fp32: 4 bytes a parameter, else 2). */
static uint64_t estimate_bytes(struct api_req *r, const char *base_id, json_t *options)
{
	PGresult *res = api_db(r, "SELECT parameter_count FROM base_models WHERE id = $1", 1,
			       (const char *[]){ base_id });
	if (!res || PQntuples(res) != 1)
		return 0;
	uint64_t params = strtoull(PQgetvalue(res, 0, 0), NULL, 10);
	const char *dtype = json_string_value(json_object_get(options, "dtype"));
	return params * (dtype && strcmp(dtype, "fp32") == 0 ? 4 : 2);
}

enum ft_rc h_exports_create(struct api_req *r)
{
	static const char *const keys[] = { "model", "format", "options", "priority", NULL };
	json_t *b;
	const char *model, *format;
	long long priority = 0;
	if (api_body_object(r, false, &b) || api_check_keys(r, b, NULL, keys) ||
	    ft_json_get_str(b, "model", FT_JSON_REQUIRED | FT_JSON_NONEMPTY, &model, &r->err) ||
	    ft_json_get_str(b, "format", FT_JSON_REQUIRED | FT_JSON_NONEMPTY, &format, &r->err) ||
	    ft_json_get_int(b, "priority", FT_JSON_NULL_OK, -100, 100, &priority, &r->err))
		return FT_EINVAL;
	const struct ft_export_format *f = ft_export_format_find(format);
	if (!f) {
		char names[256];
		ft_export_format_names(names, sizeof(names));
		ft_failf(&r->err, FT_EINVAL, "unknown_format",
			 "format \"%.64s\" is not one we export (formats: %s)", format, names);
		ft_err_param(&r->err, "format");
		return FT_EINVAL;
	}
	json_t *options = json_object_get(b, "options");
	if (ft_export_options_check(f, options, &r->err) || api_json_clean(r, options, "options"))
		return FT_EINVAL;
	struct api_model_target *t = api_alloc(r->arena, sizeof(*t));
	if (api_model_resolve(r, model, "model", t)) {
		r->err.rc = FT_EINVAL; /* a field of the body names nothing: 400, as jobs' */
		return FT_EINVAL;
	}
	if (t->kind != TARGET_VERSION) {
		ft_failf(&r->err, FT_EINVAL, "not_a_version",
			 t->kind == TARGET_BASE
				 ? "\"%s\" is a base model: exports are of model versions (NAME/N, "
				   "NAME@ALIAS, ft:BASE:JOB)"
				 : "\"%s\" is a checkpoint: promote it to a version first (POST "
				   "/v1/registry/models/{name}/versions)",
			 model);
		ft_err_param(&r->err, "model");
		return FT_EINVAL;
	}
	bool adapter = strcmp(t->version_kind, "adapter") == 0;
	unsigned need = adapter ? FT_EXPORT_TAKES_ADAPTER : FT_EXPORT_TAKES_MODEL;
	if (!(f->takes & need)) {
		ft_failf(&r->err, FT_EINVAL, "format_not_applicable",
			 "format \"%s\" cannot be made from %s/%d: it is %s", f->name, t->model,
			 t->version, adapter ? "an adapter" : "a whole model (full fine-tuning)");
		ft_err_param(&r->err, "format");
		return FT_EINVAL;
	}
	/* the format's own say on this base (ft/exports.h: a GGUF type a model
	 * cannot be quantised to, ...) */
	if (f->check && f->check(options, t->base_config, &r->err)) {
		r->err.rc = FT_EINVAL;
		return FT_EINVAL;
	}
	if (api_quota_check(r, estimate_bytes(r, t->base_id, options), "model"))
		return r->err.rc;
	char id[FT_ID_MAX], prio[16], att[16];
	ft_id_new(FT_ID_EXPORT, id);
	snprintf(prio, sizeof(prio), "%lld", priority);
	snprintf(att, sizeof(att), "%d", r->ctx->job_max_attempts);
	char *opts = json_is_object(options) ? json_dumps(options, JSON_COMPACT) : strdup("{}");
	api_defer(r->arena, free, opts);
	/* options are kept as given; null ones (ft-train's default) dropped */
	const char *p[] = { id, r->team_id, t->version_id, f->name, opts, prio, att };
	char evid[FT_ID_MAX];
	ft_id_new(FT_ID_EVENT, evid);
	const char *msg = api_printf(r->arena, "Created export %s of %s/%d as %s", id, t->model,
				     t->version, f->name);
	if (api_db_begin(r) ||
	    api_db_cmd(r,
		       "INSERT INTO exports (id, team_id, model_version_id, format, options,"
		       " priority, max_attempts)"
		       " VALUES ($1, $2, $3, $4, jsonb_strip_nulls($5::jsonb), $6::int, $7::int)",
		       7, p) ||
	    api_db_cmd(r,
		       "INSERT INTO export_transitions (export_id, from_status, to_status, attempt,"
		       " reason) VALUES ($1, NULL, 'queued', 0, 'created')",
		       1, p) ||
	    api_db_cmd(r,
		       "INSERT INTO export_events (id, export_id, attempt, level, type, message)"
		       " VALUES ($1, $2, 0, 'info', 'message', $3)",
		       3, (const char *[]){ evid, id, msg }) ||
	    export_answer(r, id) || api_db_commit(r))
		return r->err.rc;
	r->obj_type = "model.export";
	r->obj_id = api_strdup(r->arena, id);
	return FT_OK;
}

/* The version "?model=REF" names (the one resolver), or NULL without it. */
static enum ft_rc list_filter(struct api_req *r, const char **version_id)
{
	const char *model = api_query(r, "model");
	*version_id = NULL;
	if (!model)
		return FT_OK;
	struct api_model_target *t = api_alloc(r->arena, sizeof(*t));
	if (api_model_resolve(r, model, "model", t)) {
		r->err.rc = FT_EINVAL; /* a filter that names nothing: 400, as create's */
		return FT_EINVAL;
	}
	if (t->kind != TARGET_VERSION) {
		ft_failf(&r->err, FT_EINVAL, "not_a_version",
			 "\"%.300s\" is not a model version: exports are of model versions "
			 "(NAME/N, NAME@ALIAS, ft:BASE:JOB)",
			 model);
		ft_err_param(&r->err, "model");
		return FT_EINVAL;
	}
	*version_id = api_strdup(r->arena, t->version_id);
	return FT_OK;
}

enum ft_rc h_exports_list(struct api_req *r)
{
	long limit;
	const char *after, *version_id;
	if (api_page_args(r, FT_ID_EXPORT, &limit, &after) || list_filter(r, &version_id))
		return FT_EINVAL;
	char lim[16];
	snprintf(lim, sizeof(lim), "%ld", limit + 1);
	const char *p[] = { r->team_id, after, lim, version_id };
	PGresult *res =
		api_db(r,
		       "SELECT " EXPORT_COLS EXPORT_FROM
		       " WHERE e.team_id = $1 AND ($2::text IS NULL OR (e.created_at, e.id) <"
		       " (SELECT created_at, id FROM exports WHERE id = $2 AND team_id = $1))"
		       " AND ($4::text IS NULL OR e.model_version_id = $4)"
		       " ORDER BY e.created_at DESC, e.id DESC LIMIT $3::int",
		       4, p);
	if (!res)
		return r->err.rc;
	json_t *data = json_array();
	for (int i = 0; i < PQntuples(res); i++)
		json_array_append_new(data, export_json(res, i));
	r->resp = api_own(r, api_list(data, limit));
	return FT_OK;
}

enum ft_rc h_exports_get(struct api_req *r)
{
	if (!ft_id_valid(FT_ID_EXPORT, r->params[0]))
		return api_not_found(r, "export", r->params[0]);
	return export_answer(r, r->params[0]);
}

static const struct api_work_kind export_work = { "export",    FT_ID_EXPORT,
						  "exports",   "export_transitions",
						  "export_id", "export_not_cancellable" };

enum ft_rc h_exports_cancel(struct api_req *r)
{
	const char *id = r->params[0];
	if (api_work_cancel(r, &export_work, id) || export_answer(r, id) || api_db_commit(r))
		return r->err.rc;
	r->obj_type = "model.export";
	r->obj_id = id;
	return FT_OK;
}

enum ft_rc h_exports_events(struct api_req *r)
{
	long limit;
	const char *after, *id = r->params[0];
	if (!ft_id_valid(FT_ID_EXPORT, id))
		return api_not_found(r, "export", id);
	if (api_page_args(r, FT_ID_EVENT, &limit, &after))
		return r->err.rc;
	PGresult *res = api_db(r, "SELECT 1 FROM exports WHERE id = $1 AND team_id = $2", 2,
			       (const char *[]){ id, r->team_id });
	if (!res)
		return r->err.rc;
	if (PQntuples(res) == 0)
		return api_not_found(r, "export", id);
	char lim[16];
	snprintf(lim, sizeof(lim), "%ld", limit + 1);
	const char *p[] = { id, after, lim };
	res = api_db(
		r,
		"SELECT id, extract(epoch from created_at)::bigint, level, message, data::text,"
		" type FROM export_events WHERE export_id = $1"
		" AND ($2::text IS NULL OR seq < (SELECT seq FROM export_events"
		"   WHERE id = $2 AND export_id = $1))"
		" ORDER BY seq DESC LIMIT $3::int",
		3, p);
	if (!res)
		return r->err.rc;
	json_t *data = json_array();
	for (int i = 0; i < PQntuples(res); i++)
		json_array_append_new(
			data,
			json_pack("{s:s, s:s, s:o, s:s, s:s, s:o, s:s}", "id",
				  PQgetvalue(res, i, 0), "object", "model.export.event",
				  "created_at", api_epoch(res, i, 1), "level",
				  PQgetvalue(res, i, 2), "message", PQgetvalue(res, i, 3), "data",
				  api_jsonb(res, i, 4), "type", PQgetvalue(res, i, 5)));
	r->resp = api_own(r, api_list(data, limit));
	return FT_OK;
}

enum ft_rc h_exports_formats(struct api_req *r)
{
	r->resp = api_own(
		r, json_pack("{s:s, s:o}", "object", "list", "data", ft_export_formats_json()));
	return FT_OK;
}
