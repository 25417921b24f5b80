/*
 * registry.c - the model registry (docs/registry.md): registered models,
 * their versions with lineage, aliases with their history, promotions of
 * checkpoints, deletion, and the team's stored bytes.
 *
 *   GET    /v1/registry/models                               registered models
 *   POST   /v1/registry/models                               create one (no versions yet)
 *   GET    /v1/registry/models/{name}                        one, with its aliases
 *   POST   /v1/registry/models/{name}                        description, tags
 *   DELETE /v1/registry/models/{name}                        one with no versions left
 *   GET    /v1/registry/models/{name}/versions               versions, newest first
 *   POST   /v1/registry/models/{name}/versions               promote a checkpoint into it
 *   GET    /v1/registry/models/{name}/versions/{version}     one (a number, an alias, latest)
 *   POST   /v1/registry/models/{name}/versions/{version}     description, tags
 *   DELETE /v1/registry/models/{name}/versions/{version}     refused while needed
 *   GET    /v1/registry/models/{name}/versions/{version}/artifacts
 *   GET    /v1/registry/models/{name}/aliases                the aliases
 *   POST   /v1/registry/models/{name}/aliases/{alias}        set or move (protected: admin)
 *   DELETE /v1/registry/models/{name}/aliases/{alias}        remove (protected: admin)
 *   GET    /v1/registry/models/{name}/alias_history          every change, newest first
 *   GET    /v1/registry/usage                                stored bytes and quota
 *
 * Versions are created by the scheduler when a job succeeds
 * (scheduler/src/registry.c) and here by promotions. Every alias change is
 * one transaction that locks the registered model's row: concurrent moves
 * are serialized, each lands in model_alias_history with the version it
 * really replaced, and "expect_version" makes a move conditional (409 when
 * the alias points elsewhere). "latest" is not stored: it is the highest
 * version, so it moves by itself.
 */
#include <unistd.h>

#include "ft/webhook.h"
#include "api_int.h"

/* ---- small helpers ------------------------------------------------------ */

static enum ft_rc conflict(struct api_req *r, const char *code, const char *fmt, ...)
	FT_PRINTF(3, 4);
static enum ft_rc conflict(struct api_req *r, const char *code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	ft_vfailf(&r->err, FT_ECONFLICT, code, fmt, ap);
	va_end(ap);
	return FT_ECONFLICT;
}

/* description (<= 4096 characters) and tags ({string: string}, <= 32 keys
 * of <= 64 characters, values <= 256) of an update or a promotion. */
static enum ft_rc check_desc_tags(struct api_req *r, json_t *b, const char **desc, json_t **tags)
{
	*desc = NULL;
	*tags = NULL;
	if (ft_json_get_str(b, "description", FT_JSON_NULL_OK, desc, &r->err))
		return FT_EINVAL;
	if (*desc && !api_valid_text(*desc, 4096)) {
		/* newlines are allowed in a description */
		for (const char *p = *desc; *p; p++)
			if ((unsigned char)*p < 0x20 && *p != '\n' && *p != '\t')
				return api_bad(
					r, "description", "invalid_value",
					"\"description\" must be at most 4096 bytes of text");
		if (strlen(*desc) > 4096)
			return api_bad(r, "description", "invalid_value",
				       "\"description\" must be at most 4096 bytes of text");
	}
	json_t *t = json_object_get(b, "tags");
	if (!t || json_is_null(t))
		return FT_OK;
	const char *k;
	json_t *v;
	if (!json_is_object(t) || json_object_size(t) > 32)
		return api_bad(r, "tags", "invalid_type",
			       "\"tags\" must be an object of at most 32 string values");
	json_object_foreach(t, k, v)
	{
		if (!*k || !api_valid_text(k, 64) || !json_is_string(v) ||
		    !api_valid_text(json_string_value(v), 256))
			return api_bad(
				r, "tags", "invalid_value",
				"\"tags\" keys must be 1 to 64 characters and values strings of "
				"at most 256");
	}
	*tags = t;
	return FT_OK;
}

/* The registered model {name} of the team (FOR UPDATE: lock its row). */
static const char *model_row(struct api_req *r, const char *name, bool lock)
{
	if (!ft_registered_name_valid(name)) {
		api_not_found(r, "registered model", name);
		return NULL;
	}
	const char *p[] = { r->team_id, name };
	PGresult *res =
		api_db(r,
		       lock ? "SELECT id FROM registered_models WHERE team_id = $1 AND name = "
			      "$2 FOR UPDATE"
			    : "SELECT id FROM registered_models WHERE team_id = $1 AND name = $2",
		       2, p);
	if (!res)
		return NULL;
	if (PQntuples(res) == 0) {
		api_not_found(r, "registered model", name);
		return NULL;
	}
	return PQgetvalue(res, 0, 0);
}

/* ---- JSON of the registry's objects ------------------------------------- */

#define RM_COLS                                                                              \
	"rm.id, rm.name, rm.description, rm.tags::text, extract(epoch from "                 \
	"rm.created_at)::bigint,"                                                            \
	" extract(epoch from rm.updated_at)::bigint,"                                        \
	" (SELECT max(version) FROM model_versions WHERE registered_model_id = rm.id),"      \
	" (SELECT count(*) FROM model_versions WHERE registered_model_id = rm.id),"          \
	" (SELECT coalesce(jsonb_object_agg(a.alias, v.version), '{}') FROM model_aliases a" \
	"   JOIN model_versions v ON v.id = a.version_id WHERE a.registered_model_id = "     \
	"rm.id)::text"

static json_t *rm_json(const PGresult *res, int i)
{
	json_t *m = json_object();
	json_object_set_new(m, "id", json_string(PQgetvalue(res, i, 0)));
	json_object_set_new(m, "object", json_string("registered_model"));
	json_object_set_new(m, "name", json_string(PQgetvalue(res, i, 1)));
	json_object_set_new(m, "description", json_string(PQgetvalue(res, i, 2)));
	json_object_set_new(m, "tags", api_jsonb(res, i, 3));
	json_object_set_new(m, "created_at", api_epoch(res, i, 4));
	json_object_set_new(m, "updated_at", api_epoch(res, i, 5));
	json_object_set_new(m, "latest_version", api_epoch(res, i, 6));
	json_object_set_new(m, "versions", api_epoch(res, i, 7));
	json_object_set_new(m, "aliases", api_jsonb(res, i, 8));
	return m;
}

/* Columns of a version, in the order version_json reads them. */
enum {
	V_ID,
	V_NAME,
	V_VERSION,
	V_KIND,
	V_STATUS,
	V_DESC,
	V_TAGS,
	V_SOURCE,
	V_CREATED,
	V_JOB,
	V_ATTEMPT,
	V_CKPT,
	V_CKPT_STEP,
	V_PARENT,
	V_PARENT_NAME,
	V_PARENT_VERSION,
	V_BASE,
	V_BASE_NAME,
	V_BASE_SHA,
	V_TF,
	V_TF_SHA,
	V_VF,
	V_VF_SHA,
	V_DATASET,
	V_STATS,
	V_METHOD,
	V_ADAPTER,
	V_HP,
	V_METRICS,
	V_TRAINER,
	V_TOKENS,
	V_ART,
	V_ART_KIND,
	V_ART_SHA,
	V_ART_BYTES,
	V_ART_FILES,
	V_ALIASES,
	V_LATEST,
	V_FT_NAME,
};

#define VERSION_COLS                                                                           \
	"v.id, v.name, v.version, v.kind, v.status, v.description, v.tags::text, v.source,"    \
	" extract(epoch from v.created_at)::bigint, v.job_id, v.attempt, v.checkpoint_id,"     \
	" (SELECT step FROM checkpoints WHERE id = v.checkpoint_id), v.parent_version_id,"     \
	" pv.name, pv.version, v.base_model_id, b.name, v.base_model_sha256,"                  \
	" v.training_file_id, v.training_file_sha256, v.validation_file_id,"                   \
	" v.validation_file_sha256, v.dataset_id, v.dataset_stats::text, v.method, v.adapter," \
	" v.hyperparameters::text, v.metrics::text, v.trainer_version, v.trained_tokens,"      \
	" a.id, a.kind, a.sha256, a.bytes,"                                                    \
	" (SELECT coalesce(jsonb_agg(jsonb_build_object('path', f.path, 'sha256', f.sha256,"   \
	"   'bytes', f.bytes) ORDER BY f.path), '[]') FROM artifact_files f"                   \
	"   WHERE f.artifact_id = a.id)::text,"                                                \
	" (SELECT coalesce(jsonb_agg(al.alias ORDER BY al.alias), '[]') FROM model_aliases al" \
	"   WHERE al.version_id = v.id)::text,"                                                \
	" v.version = (SELECT max(version) FROM model_versions"                                \
	"   WHERE registered_model_id = v.registered_model_id),"                               \
	" j.fine_tuned_model"
#define VERSION_FROM                                                          \
	" FROM model_versions v JOIN base_models b ON b.id = v.base_model_id" \
	" JOIN artifacts a ON a.id = v.artifact_id"                           \
	" LEFT JOIN model_versions pv ON pv.id = v.parent_version_id"         \
	" LEFT JOIN jobs j ON j.id = v.job_id"

static json_t *id_or_null(const PGresult *res, int i, int col)
{
	return api_text_or_null(res, i, col);
}

static json_t *int_or_null(const PGresult *res, int i, int col)
{
	return api_epoch(res, i, col); /* an integer column, or null */
}

/* An artifact's digest and files: {id, kind, sha256, bytes, files: [...]}. */
static json_t *artifact_brief(const PGresult *res, int i)
{
	json_t *files = api_jsonb(res, i, V_ART_FILES);
	size_t k;
	json_t *f;
	json_array_foreach(files, k, f)
	{
		json_object_set_new(f, "url",
				    json_sprintf("/v1/registry/artifacts/%s/files/%s",
						 PQgetvalue(res, i, V_ART),
						 json_string_value(json_object_get(f, "path"))));
	}
	return json_pack("{s:s, s:s, s:s, s:I, s:o}", "id", PQgetvalue(res, i, V_ART), "kind",
			 PQgetvalue(res, i, V_ART_KIND), "sha256", PQgetvalue(res, i, V_ART_SHA),
			 "bytes", (json_int_t)strtoll(PQgetvalue(res, i, V_ART_BYTES), NULL, 10),
			 "files", files);
}

static json_t *file_ref(const PGresult *res, int i, int id_col, int sha_col)
{
	if (PQgetisnull(res, i, id_col))
		return json_null();
	return json_pack("{s:s, s:o}", "id", PQgetvalue(res, i, id_col), "sha256",
			 api_text_or_null(res, i, sha_col));
}

static json_t *version_json(const PGresult *res, int i)
{
	json_t *v = json_object();
	const char *name = PQgetvalue(res, i, V_NAME);
	int n = atoi(PQgetvalue(res, i, V_VERSION));
	json_t *aliases = api_jsonb(res, i, V_ALIASES);
	if (PQgetvalue(res, i, V_LATEST)[0] == 't')
		json_array_append_new(aliases, json_string("latest"));
	json_object_set_new(v, "id", json_string(PQgetvalue(res, i, V_ID)));
	json_object_set_new(v, "object", json_string("model_version"));
	json_object_set_new(v, "model", json_string(name));
	json_object_set_new(v, "version", json_integer(n));
	json_object_set_new(v, "ref", json_sprintf("%s/%d", name, n));
	json_object_set_new(v, "kind", json_string(PQgetvalue(res, i, V_KIND)));
	json_object_set_new(v, "status", json_string(PQgetvalue(res, i, V_STATUS)));
	json_object_set_new(v, "description", json_string(PQgetvalue(res, i, V_DESC)));
	json_object_set_new(v, "tags", api_jsonb(res, i, V_TAGS));
	json_object_set_new(v, "aliases", aliases);
	json_object_set_new(v, "source", json_string(PQgetvalue(res, i, V_SOURCE)));
	json_object_set_new(v, "fine_tuned_model",
			    strcmp(PQgetvalue(res, i, V_SOURCE), "job") == 0
				    ? api_text_or_null(res, i, V_FT_NAME)
				    : json_null());
	json_object_set_new(v, "created_at", api_epoch(res, i, V_CREATED));
	json_object_set_new(v, "artifact", artifact_brief(res, i));

	json_t *l = json_object();
	json_object_set_new(l, "job",
			    PQgetisnull(res, i, V_JOB)
				    ? json_null()
				    : json_pack("{s:s, s:o}", "id", PQgetvalue(res, i, V_JOB),
						"attempt", int_or_null(res, i, V_ATTEMPT)));
	json_object_set_new(l, "checkpoint",
			    PQgetisnull(res, i, V_CKPT)
				    ? json_null()
				    : json_pack("{s:s, s:o}", "id", PQgetvalue(res, i, V_CKPT),
						"step", int_or_null(res, i, V_CKPT_STEP)));
	json_object_set_new(l, "parent_version",
			    PQgetisnull(res, i, V_PARENT)
				    ? json_null()
				    : json_pack("{s:s, s:o, s:o}", "id",
						PQgetvalue(res, i, V_PARENT), "model",
						api_text_or_null(res, i, V_PARENT_NAME), "version",
						int_or_null(res, i, V_PARENT_VERSION)));
	json_object_set_new(l, "base_model",
			    json_pack("{s:s, s:s, s:o}", "id", PQgetvalue(res, i, V_BASE), "name",
				      PQgetvalue(res, i, V_BASE_NAME), "sha256",
				      api_text_or_null(res, i, V_BASE_SHA)));
	json_object_set_new(l, "training_file", file_ref(res, i, V_TF, V_TF_SHA));
	json_object_set_new(l, "validation_file", file_ref(res, i, V_VF, V_VF_SHA));
	json_object_set_new(l, "dataset", id_or_null(res, i, V_DATASET));
	json_object_set_new(l, "dataset_stats", api_jsonb(res, i, V_STATS));
	json_object_set_new(l, "method", api_text_or_null(res, i, V_METHOD));
	json_object_set_new(l, "adapter", api_text_or_null(res, i, V_ADAPTER));
	json_object_set_new(l, "hyperparameters", api_jsonb(res, i, V_HP));
	json_object_set_new(l, "metrics", api_jsonb(res, i, V_METRICS));
	json_object_set_new(l, "trainer_version", api_text_or_null(res, i, V_TRAINER));
	json_object_set_new(l, "trained_tokens", int_or_null(res, i, V_TOKENS));
	json_object_set_new(v, "lineage", l);
	return v;
}

json_t *api_version_json_by_id(struct api_req *r, const char *version_id)
{
	const char *p[] = { version_id };
	PGresult *res = api_db(r, "SELECT " VERSION_COLS VERSION_FROM " WHERE v.id = $1", 1, p);
	if (!res || PQntuples(res) != 1)
		return NULL;
	return version_json(res, 0);
}

/* ---- registered models ---------------------------------------------------- */

enum ft_rc h_reg_models_list(struct api_req *r)
{
	return api_list_newest(r, FT_ID_REGMODEL, "registered_models rm", "team_id", r->team_id,
			       RM_COLS, rm_json);
}

static enum ft_rc model_answer(struct api_req *r, const char *name)
{
	const char *p[] = { r->team_id, name };
	PGresult *res = api_db(r,
			       "SELECT " RM_COLS " FROM registered_models rm"
			       " WHERE rm.team_id = $1 AND rm.name = $2",
			       2, p);
	if (!res)
		return r->err.rc;
	if (PQntuples(res) == 0)
		return api_not_found(r, "registered model", name);
	r->resp = api_own(r, rm_json(res, 0));
	return FT_OK;
}

enum ft_rc h_reg_models_get(struct api_req *r)
{
	if (!ft_registered_name_valid(r->params[0]))
		return api_not_found(r, "registered model", r->params[0]);
	return model_answer(r, r->params[0]);
}

/* POST /v1/registry/models {"name", "description", "tags"}: a registered
 * model without versions yet (jobs create theirs as they succeed). */
enum ft_rc h_reg_models_create(struct api_req *r)
{
	static const char *const keys[] = { "name", "description", "tags", NULL };
	json_t *b, *tags;
	const char *desc, *name;
	if (api_body_object(r, false, &b) || api_check_keys(r, b, NULL, keys) ||
	    ft_json_get_str(b, "name", FT_JSON_REQUIRED | FT_JSON_NONEMPTY, &name, &r->err) ||
	    check_desc_tags(r, b, &desc, &tags))
		return FT_EINVAL;
	if (!ft_registered_name_valid(name))
		return api_bad(
			r, "name", "invalid_value",
			"a registered model's name is 1 to 128 of A-Z a-z 0-9 . _ - (starting "
			"with a letter or digit)");
	char id[FT_ID_MAX];
	ft_id_new(FT_ID_REGMODEL, id);
	char *tags_s = tags ? json_dumps(tags, JSON_COMPACT) : NULL;
	if (tags_s)
		api_defer(r->arena, free, tags_s);
	const char *p[] = { id, r->team_id, name, desc, tags_s };
	PGresult *res =
		api_db(r,
		       "INSERT INTO registered_models (id, team_id, name, description, tags)"
		       " VALUES ($1, $2, $3, coalesce($4, ''), coalesce($5::jsonb, '{}'))"
		       " ON CONFLICT (team_id, name) DO NOTHING RETURNING id",
		       5, p);
	if (!res)
		return r->err.rc;
	if (PQntuples(res) == 0)
		return conflict(r, "model_exists", "registered model \"%s\" already exists", name);
	r->obj_type = "registered_model";
	r->obj_id = api_strdup(r->arena, id);
	return model_answer(r, name);
}

enum ft_rc h_reg_models_update(struct api_req *r)
{
	static const char *const keys[] = { "description", "tags", NULL };
	json_t *b, *tags;
	const char *desc;
	if (api_body_object(r, false, &b) || api_check_keys(r, b, NULL, keys) ||
	    check_desc_tags(r, b, &desc, &tags))
		return FT_EINVAL;
	const char *id = model_row(r, r->params[0], false);
	if (!id)
		return r->err.rc;
	char *tags_s = tags ? json_dumps(tags, JSON_COMPACT) : NULL;
	if (tags_s)
		api_defer(r->arena, free, tags_s);
	const char *p[] = { id, desc, tags_s };
	if (api_db_cmd(r,
		       "UPDATE registered_models SET description = coalesce($2, description),"
		       " tags = coalesce($3::jsonb, tags), updated_at = now() WHERE id = $1",
		       3, p))
		return r->err.rc;
	r->obj_type = "registered_model";
	r->obj_id = api_strdup(r->arena, id);
	return model_answer(r, r->params[0]);
}

enum ft_rc h_reg_models_delete(struct api_req *r)
{
	if (api_db_begin(r))
		return r->err.rc;
	const char *id = model_row(r, r->params[0], true);
	if (!id)
		return r->err.rc;
	const char *p[] = { id };
	PGresult *res = api_db(
		r, "SELECT count(*) FROM model_versions WHERE registered_model_id = $1", 1, p);
	if (!res)
		return r->err.rc;
	if (atoi(PQgetvalue(res, 0, 0)) > 0)
		return conflict(
			r, "model_has_versions",
			"registered model \"%s\" still has %s version(s); delete them first",
			r->params[0], PQgetvalue(res, 0, 0));
	if (api_db_cmd(r, "DELETE FROM registered_models WHERE id = $1", 1, p) || api_db_commit(r))
		return r->err.rc;
	r->obj_type = "registered_model";
	r->obj_id = api_strdup(r->arena, id);
	r->resp = api_own(r, json_pack("{s:s, s:s, s:s, s:b}", "id", id, "object",
				       "registered_model", "name", r->params[0], "deleted", 1));
	return FT_OK;
}

/* ---- versions ---------------------------------------------------------------- */

/* "{name}/{version}" of the path, through the one resolver: the version
 * number, an alias or "latest". 404 when it names nothing. */
static enum ft_rc path_version(struct api_req *r, struct api_model_target **out)
{
	const char *name = r->params[0], *ver = r->params[1];
	if (!ft_registered_name_valid(name) || !api_valid_text(ver, 64))
		return api_not_found(r, "model version", name);
	bool number = ver[0] >= '1' && ver[0] <= '9';
	for (const char *c = ver; number && *c; c++)
		number = *c >= '0' && *c <= '9';
	char *ref = api_printf(r->arena, "%s%c%s", name, number ? '/' : '@', ver);
	struct api_model_target *t = api_alloc(r->arena, sizeof(*t));
	struct ft_model_ref parsed;
	bool malformed;
	ft_model_ref_parse(ref, &parsed, &malformed);
	if (parsed.kind != FT_REF_VERSION && parsed.kind != FT_REF_ALIAS)
		return api_not_found(r, "model version", ref);
	if (api_model_resolve(r, ref, NULL, t) || t->kind != TARGET_VERSION) {
		ft_err_clear(&r->err);
		return api_not_found(r, "model version", ref);
	}
	*out = t;
	return FT_OK;
}

enum ft_rc h_reg_versions_list(struct api_req *r)
{
	long limit;
	const char *after;
	if (api_page_args(r, FT_ID_VERSION, &limit, &after))
		return FT_EINVAL;
	const char *rm = model_row(r, r->params[0], false);
	if (!rm)
		return r->err.rc;
	char lim[16];
	snprintf(lim, sizeof(lim), "%ld", limit + 1);
	const char *p[] = { rm, after, lim };
	PGresult *res = api_db(r,
			       "SELECT " VERSION_COLS VERSION_FROM
			       " WHERE v.registered_model_id = $1 AND ($2::text IS NULL OR"
			       " v.version < (SELECT version FROM model_versions WHERE id = $2"
			       "   AND registered_model_id = $1))"
			       " ORDER BY v.version DESC LIMIT $3::int",
			       3, p);
	if (!res)
		return r->err.rc;
	json_t *data = json_array();
	for (int i = 0; i < PQntuples(res); i++)
		json_array_append_new(data, version_json(res, i));
	r->resp = api_own(r, api_list(data, limit));
	return FT_OK;
}

enum ft_rc h_reg_versions_get(struct api_req *r)
{
	struct api_model_target *t;
	if (path_version(r, &t))
		return r->err.rc;
	json_t *v = api_version_json_by_id(r, t->version_id);
	if (!v)
		return r->err.rc ? r->err.rc : api_not_found(r, "model version", t->version_id);
	r->resp = api_own(r, v);
	return FT_OK;
}

enum ft_rc h_reg_versions_update(struct api_req *r)
{
	static const char *const keys[] = { "description", "tags", NULL };
	json_t *b, *tags;
	const char *desc;
	struct api_model_target *t;
	if (api_body_object(r, false, &b) || api_check_keys(r, b, NULL, keys) ||
	    check_desc_tags(r, b, &desc, &tags))
		return FT_EINVAL;
	if (path_version(r, &t))
		return r->err.rc;
	char *tags_s = tags ? json_dumps(tags, JSON_COMPACT) : NULL;
	if (tags_s)
		api_defer(r->arena, free, tags_s);
	const char *p[] = { t->version_id, desc, tags_s };
	if (api_db_cmd(r,
		       "UPDATE model_versions SET description = coalesce($2, description),"
		       " tags = coalesce($3::jsonb, tags) WHERE id = $1",
		       3, p))
		return r->err.rc;
	r->obj_type = "model_version";
	r->obj_id = api_strdup(r->arena, t->version_id);
	r->resp = api_own(r, api_version_json_by_id(r, t->version_id));
	return r->resp ? FT_OK : r->err.rc;
}

enum ft_rc api_version_delete(struct api_req *r, const char *version_id)
{
	const char *p[] = { version_id };
	/* lock the registered model: alias changes wait, and see it gone */
	PGresult *res =
		api_db(r,
		       "SELECT rm.id, v.name, v.version, v.artifact_id FROM model_versions v"
		       " JOIN registered_models rm ON rm.id = v.registered_model_id"
		       " WHERE v.id = $1 FOR UPDATE OF rm, v",
		       1, p);
	if (!res)
		return r->err.rc;
	if (PQntuples(res) == 0)
		return api_not_found(r, "model version", version_id);
	const char *ref =
		api_printf(r->arena, "%s/%s", PQgetvalue(res, 0, 1), PQgetvalue(res, 0, 2));
	const char *art = api_strdup(r->arena, PQgetvalue(res, 0, 3));
	/* what still needs it, in the order a user would act on it */
	res = api_db(
		r,
		"SELECT"
		" (SELECT string_agg(alias, ', ' ORDER BY alias) FROM model_aliases"
		"   WHERE version_id = $1),"
		" (SELECT string_agg(id, ', ' ORDER BY id) FROM deployments"
		"   WHERE (model_version_id = $1 OR loaded_version_id = $1)"
		"   AND NOT (status = 'stopped' AND unloaded)),"
		" (SELECT string_agg(DISTINCT x.id, ', ') FROM experiments x"
		"   JOIN experiment_arms a ON a.experiment_id = x.id"
		"   WHERE a.model_version_id = $1 AND x.status <> 'stopped'),"
		" (SELECT string_agg(name || '/' || version, ', ' ORDER BY name, version)"
		"   FROM model_versions WHERE parent_version_id = $1),"
		" (SELECT string_agg(id, ', ' ORDER BY id) FROM exports"
		"   WHERE model_version_id = $1"
		"   AND status IN ('queued', 'dispatched', 'running', 'cancelling')),"
		" (SELECT string_agg(id, ', ' ORDER BY id) FROM jobs WHERE parent_version_id = $1"
		"   AND status NOT IN ('succeeded', 'failed', 'cancelled')),"
		" (SELECT string_agg(DISTINCT e.id, ', ') FROM evals e"
		"   JOIN eval_models m ON m.eval_id = e.id WHERE m.model_version_id = $1"
		"   AND e.status IN ('queued', 'dispatched', 'running', 'cancelling'))",
		1, p);
	if (!res)
		return r->err.rc;
	static const struct {
		const char *what, *does;
	} why[] = {
		{ "alias(es)", "point at it; move or remove them first" },
		{ "deployment(s)", "serve it; delete them (and let them unload) first" },
		{ "experiment(s)", "compare it; stop them first" },
		{ "version(s)", "continue from it (their lineage names it)" },
		{ "export(s)", "of it are running; cancel them or wait" },
		{ "job(s)", "continue training from it; cancel them or wait" },
		{ "evaluation(s)", "of it are running; cancel them or wait" },
	};
	for (int k = 0; k < (int)FT_ARRAY_LEN(why); k++)
		if (!PQgetisnull(res, 0, k))
			return conflict(r, "version_in_use", "cannot delete %s: %s %s %s", ref,
					why[k].what, PQgetvalue(res, 0, k), why[k].does);
	/* the version's artifact and its exports' go with it, unless another row
	 * still names them (a checkpoint, another version, a base model); their
	 * blobs are collected later by ft-scheduler when nothing names them */
	res = api_db(r,
		     "SELECT coalesce(jsonb_agg(artifact_id), '[]')::text FROM exports"
		     " WHERE model_version_id = $1 AND artifact_id IS NOT NULL",
		     1, p);
	if (!res)
		return r->err.rc;
	const char *arts = api_strdup(r->arena, PQgetvalue(res, 0, 0));
	const char *q[] = { art, arts };
	if (api_db_cmd(r, "DELETE FROM model_versions WHERE id = $1", 1, p) ||
	    api_db_cmd(r,
		       "DELETE FROM artifacts a WHERE (a.id = $1 OR a.id IN (SELECT"
		       "   jsonb_array_elements_text($2::jsonb)))"
		       " AND NOT EXISTS (SELECT 1 FROM checkpoints WHERE artifact_id = a.id)"
		       " AND NOT EXISTS (SELECT 1 FROM model_versions WHERE artifact_id = a.id)"
		       " AND NOT EXISTS (SELECT 1 FROM base_models WHERE artifact_id = a.id)"
		       " AND NOT EXISTS (SELECT 1 FROM exports WHERE artifact_id = a.id)",
		       2, q))
		return r->err.rc;
	return FT_OK;
}

enum ft_rc h_reg_versions_delete(struct api_req *r)
{
	struct api_model_target *t;
	if (path_version(r, &t) || api_db_begin(r) || api_version_delete(r, t->version_id) ||
	    api_db_commit(r))
		return r->err.rc;
	r->obj_type = "model_version";
	r->obj_id = api_strdup(r->arena, t->version_id);
	r->resp = api_own(r, json_pack("{s:s, s:s, s:s, s:i, s:b}", "id", t->version_id, "object",
				       "model_version", "model", t->model, "version", t->version,
				       "deleted", 1));
	return FT_OK;
}

/* ---- promotions ------------------------------------------------------------- */

/* The adapter/ files of a checkpoint's folder as a manifest of their own
 * (paths without "adapter/"), stored: the promoted version's artifact. The
 * files' blobs are the checkpoint's, so nothing is copied. */
static enum ft_rc adapter_manifest(struct api_req *r, const char *ckpt_art, const char *job,
				   char art_id[FT_ID_MAX])
{
	const char *p[] = { ckpt_art };
	PGresult *res = api_db(r,
			       "SELECT substr(path, 9), sha256, bytes FROM artifact_files"
			       " WHERE artifact_id = $1 AND path LIKE 'adapter/%' ORDER BY path",
			       1, p);
	if (!res)
		return r->err.rc;
	if (PQntuples(res) == 0)
		return api_bad(
			r, "checkpoint", "checkpoint_not_promotable",
			"the checkpoint holds no adapter folder (it is from a full fine-tuning "
			"job, or from a trainer that did not write one)");
	json_t *files = json_array();
	uint64_t total = 0;
	for (int i = 0; i < PQntuples(res); i++) {
		json_int_t n = strtoll(PQgetvalue(res, i, 2), NULL, 10);
		total += (uint64_t)n;
		json_array_append_new(files,
				      json_pack("{s:s, s:s, s:I}", "path", PQgetvalue(res, i, 0),
						"sha256", PQgetvalue(res, i, 1), "bytes", n));
	}
	json_t *m =
		api_own(r, json_pack("{s:s, s:o}", "format", "ftplat-manifest-1", "files", files));
	/* the worker's manifest format and serialisation (worker/src/store.c) */
	char *text = json_dumps(m, JSON_COMPACT | JSON_SORT_KEYS);
	if (!text)
		return ft_failf(&r->err, FT_ENOMEM, NULL, "out of memory");
	api_defer(r->arena, free, text);
	struct ft_store_writer *w;
	char sha[65], key[FT_STORE_KEY_MAX], bytes[32];
	uint64_t mb;
	if (ft_store_writer_new(r->ctx->store, 0, &w, &r->err))
		return r->err.rc;
	if (ft_store_writer_write(w, text, strlen(text), &r->err)) {
		ft_store_writer_abort(w);
		return r->err.rc;
	}
	if (ft_store_writer_commit(w, sha, key, &mb, &r->err))
		return r->err.rc;
	ft_id_new(FT_ID_ARTIFACT, art_id);
	snprintf(bytes, sizeof(bytes), "%" PRIu64, total);
	char *files_s = json_dumps(files, JSON_COMPACT);
	api_defer(r->arena, free, files_s);
	const char *q[] = { art_id, r->team_id, sha, bytes, key, job, files_s };
	if (api_db_cmd(
		    r,
		    "INSERT INTO artifacts (id, team_id, kind, sha256, bytes, storage_key, format,"
		    " job_id, metadata) VALUES ($1, $2, 'adapter', $3, $4::bigint, $5,"
		    " 'manifest', $6, '{\"promoted\": true}')",
		    6, q) ||
	    api_db_cmd(r,
		       "INSERT INTO artifact_files (artifact_id, path, sha256, bytes)"
		       " SELECT $1, f.path, f.sha256, f.bytes FROM jsonb_to_recordset($2::jsonb)"
		       " AS f(path text, sha256 text, bytes bigint)",
		       2, (const char *[]){ art_id, files_s }))
		return r->err.rc;
	return FT_OK;
}

/* The registered model's id (created on first use, its row locked) and its
 * next version number. */
static enum ft_rc take_version(struct api_req *r, const char *name, const char **rm_id,
			       int *version)
{
	char id[FT_ID_MAX];
	ft_id_new(FT_ID_REGMODEL, id);
	const char *p[] = { id, r->team_id, name };
	PGresult *res =
		api_db(r,
		       "INSERT INTO registered_models (id, team_id, name) VALUES ($1, $2, $3)"
		       " ON CONFLICT (team_id, name) DO UPDATE SET updated_at = now()"
		       " RETURNING id",
		       3, p);
	if (!res)
		return r->err.rc;
	*rm_id = api_strdup(r->arena, PQgetvalue(res, 0, 0));
	res = api_db(
		r,
		"UPDATE registered_models SET next_version = next_version + 1, updated_at = now()"
		" WHERE id = $1 RETURNING next_version - 1",
		1, (const char *[]){ *rm_id });
	if (!res)
		return r->err.rc;
	*version = atoi(PQgetvalue(res, 0, 0));
	return FT_OK;
}

/* POST /v1/registry/models/{name}/versions {"checkpoint": "ftckpt-..." or
 * "ft:BASE:JOB:ckpt-step-N", "description", "tags"}: the checkpoint's
 * adapter becomes the next version of the registered model {name}. */
enum ft_rc h_reg_versions_create(struct api_req *r)
{
	static const char *const keys[] = { "checkpoint", "description", "tags", NULL };
	json_t *b, *tags;
	const char *desc, *ck = NULL, *name = r->params[0];
	if (api_body_object(r, false, &b) || api_check_keys(r, b, NULL, keys) ||
	    ft_json_get_str(b, "checkpoint", FT_JSON_REQUIRED | FT_JSON_NONEMPTY, &ck, &r->err) ||
	    check_desc_tags(r, b, &desc, &tags))
		return FT_EINVAL;
	if (!ft_registered_name_valid(name))
		return api_not_found(r, "registered model", name);
	/* the registered model first: another team's name is a 404, as on
	 * every route that names an object in its path */
	if (!model_row(r, name, false))
		return r->err.rc;
	const char *ckpt_id = ck;
	if (!ft_id_valid(FT_ID_CHECKPOINT, ck)) {
		struct api_model_target *t = api_alloc(r->arena, sizeof(*t));
		if (api_model_resolve(r, ck, "checkpoint", t)) {
			r->err.rc = FT_EINVAL;
			return FT_EINVAL;
		}
		if (t->kind != TARGET_CHECKPOINT)
			return api_bad(
				r, "checkpoint", "invalid_value",
				"\"checkpoint\" must be a checkpoint id (ftckpt-...) or name "
				"(ft:BASE:JOB:ckpt-step-N)");
		ckpt_id = api_strdup(r->arena, t->checkpoint_id);
	}
	const char *p[] = { ckpt_id, r->team_id };
	PGresult *res =
		api_db(r,
		       "SELECT c.artifact_id, c.job_id, j.adapter, c.attempt, c.metrics::text"
		       " FROM checkpoints c JOIN jobs j ON j.id = c.job_id"
		       " WHERE c.id = $1 AND j.team_id = $2",
		       2, p);
	if (!res)
		return r->err.rc;
	if (PQntuples(res) == 0)
		return api_bad(r, "checkpoint", "checkpoint_not_found",
			       "checkpoint \"%s\" does not exist", ck);
	if (strcmp(PQgetvalue(res, 0, 2), "none") == 0)
		return api_bad(
			r, "checkpoint", "checkpoint_not_promotable",
			"checkpoint \"%s\" is from a full fine-tuning job: only LoRA and QLoRA "
			"checkpoints can be promoted",
			ck);
	const char *ckpt_art = api_strdup(r->arena, PQgetvalue(res, 0, 0));
	const char *job = api_strdup(r->arena, PQgetvalue(res, 0, 1));
	const char *attempt = api_strdup(r->arena, PQgetvalue(res, 0, 3));
	const char *metrics = api_strdup(r->arena, PQgetvalue(res, 0, 4));
	char art[FT_ID_MAX], mv[FT_ID_MAX], ver[16];
	const char *rm = NULL;
	int version = 0;
	char *tags_s = tags ? json_dumps(tags, JSON_COMPACT) : NULL;
	if (tags_s)
		api_defer(r->arena, free, tags_s);
	if (api_db_begin(r) || !model_row(r, name, true) ||
	    adapter_manifest(r, ckpt_art, job, art) || take_version(r, name, &rm, &version))
		return r->err.rc;
	ft_id_new(FT_ID_VERSION, mv);
	snprintf(ver, sizeof(ver), "%d", version);
	const char *q[] = { mv, name, ver, art, metrics, rm, ckpt_id, attempt, job, desc, tags_s };
	if (api_db_cmd(
		    r,
		    "INSERT INTO model_versions (id, team_id, name, version, kind, base_model_id,"
		    " parent_version_id, job_id, dataset_id, artifact_id, status, metrics,"
		    " registered_model_id, source, checkpoint_id, attempt, base_model_sha256,"
		    " training_file_id, training_file_sha256, validation_file_id,"
		    " validation_file_sha256, method, adapter, hyperparameters, dataset_stats,"
		    " description, tags)"
		    " SELECT $1, j.team_id, $2, $3::int, 'adapter', j.base_model_id,"
		    " j.parent_version_id, j.id, (SELECT d.id FROM datasets d"
		    "   WHERE d.file_id = j.training_file_id AND d.team_id = j.team_id"
		    "   ORDER BY d.created_at DESC, d.id DESC LIMIT 1),"
		    " $4, 'ready', $5::jsonb, $6, 'checkpoint', $7, $8::int, b.sha256,"
		    " j.training_file_id, tf.sha256, j.validation_file_id, vf.sha256, j.method,"
		    " j.adapter, j.hyperparameters, j.data_stats, coalesce($10, ''),"
		    " coalesce($11::jsonb, '{}')"
		    " FROM jobs j JOIN base_models b ON b.id = j.base_model_id"
		    " JOIN files tf ON tf.id = j.training_file_id"
		    " LEFT JOIN files vf ON vf.id = j.validation_file_id WHERE j.id = $9",
		    11, q))
		return r->err.rc;
	char evid[FT_ID_MAX];
	ft_id_new(FT_ID_EVENT, evid);
	json_t *pl =
		api_own(r, json_pack("{s:s, s:s, s:{s:s, s:s, s:i, s:s, s:s, s:s, s:s}}", "type",
				     "model.version.created", "id", evid, "data", "id", mv, "model",
				     name, "version", version, "kind", "adapter", "source",
				     "checkpoint", "job", job, "checkpoint", ckpt_id));
	if (ft_webhook_queue(r->db, r->team_id, "model.version.created", pl, &r->err))
		return r->err.rc;
	json_t *v = api_version_json_by_id(r, mv);
	if (!v || api_db_commit(r))
		return r->err.rc ? r->err.rc : FT_EINTERNAL;
	r->resp = api_own(r, v);
	r->obj_type = "model_version";
	r->obj_id = api_strdup(r->arena, mv);
	return FT_OK;
}

/* ---- artifacts of a version ------------------------------------------------- */

enum ft_rc h_reg_versions_artifacts(struct api_req *r)
{
	struct api_model_target *t;
	if (path_version(r, &t))
		return r->err.rc;
	const char *p[] = { t->version_id };
	PGresult *res = api_db(
		r,
		"SELECT a.id, a.kind, a.sha256, a.bytes, extract(epoch from a.created_at)::bigint,"
		" e.id, e.format, e.options::text,"
		" (SELECT coalesce(jsonb_agg(jsonb_build_object('path', f.path, 'sha256', f.sha256,"
		"   'bytes', f.bytes) ORDER BY f.path), '[]') FROM artifact_files f"
		"   WHERE f.artifact_id = a.id)::text"
		" FROM artifacts a LEFT JOIN exports e ON e.artifact_id = a.id"
		" WHERE a.id = (SELECT artifact_id FROM model_versions WHERE id = $1)"
		"   OR a.id IN (SELECT artifact_id FROM exports WHERE model_version_id = $1"
		"     AND artifact_id IS NOT NULL)"
		" ORDER BY a.created_at, a.id",
		1, p);
	if (!res)
		return r->err.rc;
	json_t *data = json_array();
	for (int i = 0; i < PQntuples(res); i++) {
		json_t *files = api_jsonb(res, i, 8);
		size_t k;
		json_t *f;
		json_array_foreach(files, k, f)
		{
			json_object_set_new(
				f, "url",
				json_sprintf("/v1/registry/artifacts/%s/files/%s",
					     PQgetvalue(res, i, 0),
					     json_string_value(json_object_get(f, "path"))));
		}
		json_t *a = json_pack("{s:s, s:s, s:s, s:s, s:I, s:o, s:o}", "id",
				      PQgetvalue(res, i, 0), "object", "artifact", "kind",
				      PQgetvalue(res, i, 1), "sha256", PQgetvalue(res, i, 2),
				      "bytes", (json_int_t)strtoll(PQgetvalue(res, i, 3), NULL, 10),
				      "created_at", api_epoch(res, i, 4), "files", files);
		json_object_set_new(a, "export",
				    PQgetisnull(res, i, 5)
					    ? json_null()
					    : json_pack("{s:s, s:s, s:o}", "id",
							PQgetvalue(res, i, 5), "format",
							PQgetvalue(res, i, 6), "options",
							api_jsonb(res, i, 7)));
		json_array_append_new(data, a);
	}
	r->resp = api_own(
		r, json_pack("{s:s, s:o, s:b}", "object", "list", "data", data, "has_more", 0));
	return FT_OK;
}

/* ---- aliases ------------------------------------------------------------------- */

static json_t *alias_json(const char *model, const char *alias, int version, bool prot,
			  const char *updated)
{
	return json_pack("{s:s, s:s, s:s, s:i, s:b, s:I}", "object", "model_alias", "model", model,
			 "alias", alias, "version", version, "protected", prot, "updated_at",
			 (json_int_t)strtoll(updated, NULL, 10));
}

enum ft_rc h_reg_aliases_list(struct api_req *r)
{
	const char *rm = model_row(r, r->params[0], false);
	if (!rm)
		return r->err.rc;
	const char *p[] = { rm };
	PGresult *res = api_db(r,
			       "SELECT a.alias, v.version, a.protected,"
			       " extract(epoch from a.updated_at)::bigint FROM model_aliases a"
			       " JOIN model_versions v ON v.id = a.version_id"
			       " WHERE a.registered_model_id = $1 ORDER BY a.alias",
			       1, p);
	if (!res)
		return r->err.rc;
	json_t *data = json_array();
	for (int i = 0; i < PQntuples(res); i++)
		json_array_append_new(data, alias_json(r->params[0], PQgetvalue(res, i, 0),
						       atoi(PQgetvalue(res, i, 1)),
						       PQgetvalue(res, i, 2)[0] == 't',
						       PQgetvalue(res, i, 3)));
	r->resp = api_own(
		r, json_pack("{s:s, s:o, s:b}", "object", "list", "data", data, "has_more", 0));
	return FT_OK;
}

static enum ft_rc check_alias_name(struct api_req *r, const char *alias)
{
	if (strcmp(alias, "latest") == 0)
		return api_bad(
			r, "alias", "reserved_alias",
			"\"latest\" is the highest version and moves by itself; it cannot be "
			"set or removed");
	if (!ft_alias_valid(alias))
		return api_bad(r, "alias", "invalid_value",
			       "an alias is 1 to 64 of a-z 0-9 _ - starting with a letter");
	return FT_OK;
}

/* A history row and, when the version changed, the model.alias.moved
 * webhook; in the caller's transaction. */
static enum ft_rc note_alias(struct api_req *r, const char *rm, const char *alias,
			     const char *action, int from, int to)
{
	char fs[16], ts[16];
	snprintf(fs, sizeof(fs), "%d", from);
	snprintf(ts, sizeof(ts), "%d", to);
	const char *p[] = {
		rm, alias, action, from ? fs : NULL, to ? ts : NULL, r->key_id[0] ? r->key_id : NULL
	};
	if (api_db_cmd(r,
		       "INSERT INTO model_alias_history (registered_model_id, alias, action,"
		       " from_version, to_version, key_id)"
		       " VALUES ($1, $2, $3, $4::int, $5::int, $6)",
		       6, p))
		return r->err.rc;
	if (from == to)
		return FT_OK;
	char evid[FT_ID_MAX];
	ft_id_new(FT_ID_EVENT, evid);
	json_t *pl = api_own(r, json_pack("{s:s, s:s, s:{s:s, s:s, s:o, s:o}}", "type",
					  "model.alias.moved", "id", evid, "data", "model",
					  r->params[0], "alias", alias, "from_version",
					  from ? json_integer(from) : json_null(), "to_version",
					  to ? json_integer(to) : json_null()));
	return ft_webhook_queue(r->db, r->team_id, "model.alias.moved", pl, &r->err);
}

static enum ft_rc need_admin_for(struct api_req *r, const char *alias, const char *why)
{
	if (r->role >= ROLE_ADMIN)
		return FT_OK;
	ft_failf(&r->err, FT_EPERM, "protected_alias", "alias \"%s\" %s: this needs the admin role",
		 alias, why);
	return FT_EPERM;
}

/* POST .../aliases/{alias} {"version": N, "expect_version": M | 0 | null,
 * "protected": bool | null}. */
enum ft_rc h_reg_aliases_set(struct api_req *r)
{
	static const char *const keys[] = { "version", "expect_version", "protected", NULL };
	json_t *b;
	long long want, expect = -1;
	int prot = -1;
	const char *alias = r->params[1];
	if (api_body_object(r, false, &b) || api_check_keys(r, b, NULL, keys) ||
	    ft_json_get_int(b, "version", FT_JSON_REQUIRED, 1, 2147483647, &want, &r->err) ||
	    ft_json_get_int(b, "expect_version", FT_JSON_NULL_OK, 0, 2147483647, &expect, &r->err))
		return FT_EINVAL;
	json_t *pj = json_object_get(b, "protected");
	if (pj && !json_is_null(pj)) {
		if (!json_is_boolean(pj))
			return api_bad(r, "protected", "invalid_type",
				       "\"protected\" must be true or false (got %s)",
				       ft_json_type_name(pj));
		prot = json_is_true(pj);
	}
	if (!ft_registered_name_valid(r->params[0]))
		return api_not_found(r, "registered model", r->params[0]);
	if (check_alias_name(r, alias))
		return FT_EINVAL;
	if (api_db_begin(r))
		return r->err.rc;
	const char *rm = model_row(r, r->params[0], true);
	if (!rm)
		return r->err.rc;
	char ws[16];
	snprintf(ws, sizeof(ws), "%lld", want);
	PGresult *res = api_db(r,
			       "SELECT id FROM model_versions WHERE registered_model_id = $1"
			       " AND version = $2::int",
			       2, (const char *[]){ rm, ws });
	if (!res)
		return r->err.rc;
	if (PQntuples(res) == 0)
		return api_bad(r, "version", "version_not_found", "\"%s\" has no version %lld",
			       r->params[0], want);
	const char *vid = api_strdup(r->arena, PQgetvalue(res, 0, 0));
	res = api_db(r,
		     "SELECT v.version, a.protected FROM model_aliases a"
		     " JOIN model_versions v ON v.id = a.version_id"
		     " WHERE a.registered_model_id = $1 AND a.alias = $2",
		     2, (const char *[]){ rm, alias });
	if (!res)
		return r->err.rc;
	int from = PQntuples(res) ? atoi(PQgetvalue(res, 0, 0)) : 0;
	bool was_prot = PQntuples(res) && PQgetvalue(res, 0, 1)[0] == 't';
	if (was_prot && need_admin_for(r, alias, "is protected"))
		return FT_EPERM;
	if (prot >= 0 && prot != was_prot &&
	    need_admin_for(r, alias,
			   prot ? "would become protected" : "would stop being protected"))
		return FT_EPERM;
	if (expect >= 0 && expect != from) {
		if (from)
			return conflict(r, "alias_moved",
					"alias \"%s\" points at version %d, not %lld: it was moved "
					"meanwhile",
					alias, from, expect);
		return conflict(r, "alias_moved",
				"alias \"%s\" does not exist (expected version %lld)", alias,
				expect);
	}
	bool now_prot = prot >= 0 ? prot : was_prot;
	res = api_db(r,
		     "INSERT INTO model_aliases (registered_model_id, alias, version_id, protected)"
		     " VALUES ($1, $2, $3, $4::boolean)"
		     " ON CONFLICT (registered_model_id, alias) DO UPDATE SET version_id = $3,"
		     " protected = $4::boolean, updated_at = now()"
		     " RETURNING extract(epoch from updated_at)::bigint",
		     4, (const char *[]){ rm, alias, vid, now_prot ? "true" : "false" });
	if (!res)
		return r->err.rc;
	const char *updated = api_strdup(r->arena, PQgetvalue(res, 0, 0));
	if (from != (int)want && note_alias(r, rm, alias, "set", from, (int)want))
		return r->err.rc;
	if (now_prot != was_prot &&
	    note_alias(r, rm, alias, now_prot ? "protected" : "unprotected", (int)want, (int)want))
		return r->err.rc;
	if (api_db_commit(r))
		return r->err.rc;
	r->obj_type = "model_alias";
	r->obj_id = api_strdup(r->arena, rm);
	r->resp = api_own(r, alias_json(r->params[0], alias, (int)want, now_prot, updated));
	return FT_OK;
}

enum ft_rc h_reg_aliases_delete(struct api_req *r)
{
	const char *alias = r->params[1];
	if (!ft_registered_name_valid(r->params[0]))
		return api_not_found(r, "registered model", r->params[0]);
	if (check_alias_name(r, alias))
		return FT_EINVAL;
	if (api_db_begin(r))
		return r->err.rc;
	const char *rm = model_row(r, r->params[0], true);
	if (!rm)
		return r->err.rc;
	PGresult *res = api_db(r,
			       "SELECT v.version, a.protected FROM model_aliases a"
			       " JOIN model_versions v ON v.id = a.version_id"
			       " WHERE a.registered_model_id = $1 AND a.alias = $2",
			       2, (const char *[]){ rm, alias });
	if (!res)
		return r->err.rc;
	if (PQntuples(res) == 0)
		return api_not_found(r, "alias", alias);
	int from = atoi(PQgetvalue(res, 0, 0));
	if (PQgetvalue(res, 0, 1)[0] == 't' && need_admin_for(r, alias, "is protected"))
		return FT_EPERM;
	if (api_db_cmd(r, "DELETE FROM model_aliases WHERE registered_model_id = $1 AND alias = $2",
		       2, (const char *[]){ rm, alias }) ||
	    note_alias(r, rm, alias, "removed", from, 0) || api_db_commit(r))
		return r->err.rc;
	r->obj_type = "model_alias";
	r->obj_id = api_strdup(r->arena, rm);
	r->resp = api_own(r, json_pack("{s:s, s:s, s:s, s:b}", "object", "model_alias", "model",
				       r->params[0], "alias", alias, "deleted", 1));
	return FT_OK;
}

/* GET .../alias_history[?alias=A][&limit=N][&after=ID]: newest first; ID is
 * a history row's "id" (an integer). */
enum ft_rc h_reg_alias_history(struct api_req *r)
{
	const char *alias = api_query(r, "alias"), *after = api_query(r, "after");
	const char *l = api_query(r, "limit");
	long limit = 20;
	if (l) {
		char *end;
		errno = 0;
		limit = strtol(l, &end, 10);
		if (errno || end == l || *end || limit < 1 || limit > 100)
			return api_bad(r, "limit", "invalid_value",
				       "\"limit\" must be an integer from 1 to 100");
	}
	if (after) {
		bool ok = *after && strlen(after) < 19;
		for (const char *c = after; ok && *c; c++)
			ok = *c >= '0' && *c <= '9';
		if (!ok)
			return api_bad(
				r, "after", "invalid_cursor",
				"\"after\" must be the id of a history entry of a previous page");
	}
	if (alias && !ft_alias_valid(alias))
		return api_bad(r, "alias", "invalid_value",
			       "an alias is 1 to 64 of a-z 0-9 _ - starting with a letter");
	const char *rm = model_row(r, r->params[0], false);
	if (!rm)
		return r->err.rc;
	char lim[16];
	snprintf(lim, sizeof(lim), "%ld", limit + 1);
	const char *p[] = { rm, alias, after, lim };
	PGresult *res =
		api_db(r,
		       "SELECT id, alias, action, from_version, to_version, key_id,"
		       " extract(epoch from created_at)::bigint FROM model_alias_history"
		       " WHERE registered_model_id = $1 AND ($2::text IS NULL OR alias = $2)"
		       " AND ($3::bigint IS NULL OR id < $3::bigint)"
		       " ORDER BY id DESC LIMIT $4::int",
		       4, p);
	if (!res)
		return r->err.rc;
	json_t *data = json_array();
	for (int i = 0; i < PQntuples(res); i++)
		json_array_append_new(
			data,
			json_pack("{s:s, s:s, s:s, s:s, s:o, s:o, s:o, s:o}", "id",
				  PQgetvalue(res, i, 0), "object", "model_alias.change", "alias",
				  PQgetvalue(res, i, 1), "action", PQgetvalue(res, i, 2),
				  "from_version", api_epoch(res, i, 3), "to_version",
				  api_epoch(res, i, 4), "key_id", api_text_or_null(res, i, 5),
				  "created_at", api_epoch(res, i, 6)));
	r->resp = api_own(r, api_list(data, limit));
	return FT_OK;
}

/* ---- storage and quota ------------------------------------------------------- */

/* Bytes a team stores: its files (not deleted) and its artifacts (each
 * counted whole, even when blobs are shared). */
static enum ft_rc usage(struct api_req *r, uint64_t *used, uint64_t *quota)
{
	PGresult *res =
		api_db(r,
		       "SELECT (SELECT coalesce(sum(bytes), 0) FROM files WHERE team_id = $1"
		       "   AND deleted_at IS NULL)"
		       " + (SELECT coalesce(sum(bytes), 0) FROM artifacts WHERE team_id = $1),"
		       " (SELECT storage_quota_bytes FROM teams WHERE id = $1)",
		       1, (const char *[]){ r->team_id });
	if (!res)
		return r->err.rc;
	*used = strtoull(PQgetvalue(res, 0, 0), NULL, 10);
	*quota = PQgetisnull(res, 0, 1) ? r->ctx->storage_quota
					: strtoull(PQgetvalue(res, 0, 1), NULL, 10);
	return FT_OK;
}

enum ft_rc api_quota_check(struct api_req *r, uint64_t adding, const char *param)
{
	uint64_t used = 0, quota = 0;
	if (usage(r, &used, &quota))
		return r->err.rc;
	if (!quota || used + adding <= quota)
		return FT_OK;
	ft_failf(&r->err, FT_ELIMIT, "storage_quota_exceeded",
		 "the team stores %" PRIu64 " bytes of its quota of %" PRIu64
		 " and this needs about %" PRIu64
		 " more; delete model versions, exports or files (GET /v1/registry/usage)",
		 used, quota, adding);
	if (param)
		ft_err_param(&r->err, param);
	return FT_ELIMIT;
}

enum ft_rc h_reg_usage(struct api_req *r)
{
	uint64_t used = 0, quota = 0;
	if (usage(r, &used, &quota))
		return r->err.rc;
	r->resp = api_own(r, json_pack("{s:s, s:I, s:o}", "object", "storage_usage", "stored_bytes",
				       (json_int_t)used, "quota_bytes",
				       quota ? json_integer((json_int_t)quota) : json_null()));
	return FT_OK;
}
