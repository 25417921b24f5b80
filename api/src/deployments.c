/*
 * deployments.c - /v1/deployments: a model version on an endpoint
 * (docs/deployments.md). ft-api only records what is wanted; the
 * scheduler's controller (scheduler/src/deploy.c) makes it true and writes
 * the state back: loads and unloads, health, llama.cpp's exports.
 *
 *   POST   /v1/deployments        {endpoint, model, log_texts, gguf_type}   member
 *   GET    /v1/deployments        ?endpoint=ID|NAME&status=S, newest first  viewer
 *   GET    /v1/deployments/{id}                                              viewer
 *   DELETE /v1/deployments/{id}   stops it (the controller unloads it)      member
 *   POST   /v1/deployments/{id}/chat/completions   a chat, streamed from its endpoint  member
 *
 * model goes through the one resolver (resolve.c) and must name a version
 * of the team: "support-bot/3" and "ft:BASE:JOB" deploy that version;
 * "support-bot@production" (or @latest) deploys whatever the alias names,
 * and follows it when it moves. A version answers under its served name
 * (the SQL function ft_version_served_name: its job's ft: name, else
 * NAME/N) and, deployed by alias, also under NAME@ALIAS. Another team's
 * endpoint or model is the same 400 as one that does not exist; another
 * team's deployment id is a 404.
 */
#include "ft/crypto.h"
#include "ft/deploy.h"
#include "ft/webhook.h"
#include "api_int.h"

#define DEP_COLS                                                                               \
	"d.id, d.endpoint_id, e.name, e.kind, d.model, rm.name, d.alias, d.model_version_id,"  \
	" v.version, ft_version_served_name(d.model_version_id), d.loaded_version_id,"         \
	" d.status, d.status_reason, d.log_texts, d.gguf_type, d.llamacpp::text, d.unloaded,"  \
	" extract(epoch from d.created_at)::bigint, extract(epoch from d.updated_at)::bigint," \
	" extract(epoch from d.ready_at)::bigint, extract(epoch from d.stopped_at)::bigint,"   \
	" v.name"
#define DEP_FROM                                                           \
	" FROM deployments d JOIN endpoints e ON e.id = d.endpoint_id"     \
	" LEFT JOIN registered_models rm ON rm.id = d.registered_model_id" \
	" LEFT JOIN model_versions v ON v.id = d.model_version_id"

static json_t *deployment_json(const PGresult *res, int i)
{
	json_t *d = json_object(), *names = json_array();
	const char *kind = PQgetvalue(res, i, 3);
	json_object_set_new(d, "id", json_string(PQgetvalue(res, i, 0)));
	json_object_set_new(d, "object", json_string("deployment"));
	json_object_set_new(d, "endpoint",
			    json_pack("{s:s, s:s, s:s}", "id", PQgetvalue(res, i, 1), "name",
				      PQgetvalue(res, i, 2), "kind", kind));
	json_object_set_new(d, "model", json_string(PQgetvalue(res, i, 4)));
	json_object_set_new(d, "registered_model", api_text_or_null(res, i, 5));
	json_object_set_new(d, "alias", api_text_or_null(res, i, 6));
	if (PQgetisnull(res, i, 7)) {
		json_object_set_new(d, "version", json_null());
	} else {
		json_object_set_new(d, "version",
				    json_pack("{s:s, s:s, s:i, s:s}", "id", PQgetvalue(res, i, 7),
					      "model", PQgetvalue(res, i, 21), "version",
					      atoi(PQgetvalue(res, i, 8)), "served_name",
					      PQgetvalue(res, i, 9)));
		json_array_append_new(names, json_string(PQgetvalue(res, i, 9)));
	}
	if (!PQgetisnull(res, i, 6) && !PQgetisnull(res, i, 5)) {
		char alias[FT_NAME_MAX + FT_ALIAS_MAX + 2];
		snprintf(alias, sizeof(alias), "%s@%s", PQgetvalue(res, i, 5),
			 PQgetvalue(res, i, 6));
		/* llama-server answers under one name (--alias): the alias's */
		if (strcmp(kind, "llamacpp") == 0)
			json_array_clear(names);
		json_array_append_new(names, json_string(alias));
	}
	json_object_set_new(d, "served_names", names);
	json_object_set_new(d, "loaded_version_id", api_text_or_null(res, i, 10));
	json_object_set_new(d, "status", json_string(PQgetvalue(res, i, 11)));
	json_object_set_new(d, "status_reason", api_text_or_null(res, i, 12));
	json_object_set_new(d, "log_texts", json_boolean(PQgetvalue(res, i, 13)[0] == 't'));
	json_object_set_new(d, "gguf_type",
			    strcmp(kind, "llamacpp") == 0 ? json_string(PQgetvalue(res, i, 14))
							  : json_null());
	json_object_set_new(d, "llamacpp", api_jsonb(res, i, 15));
	json_object_set_new(d, "unloaded", json_boolean(PQgetvalue(res, i, 16)[0] == 't'));
	json_object_set_new(d, "created_at", api_epoch(res, i, 17));
	json_object_set_new(d, "updated_at", api_epoch(res, i, 18));
	json_object_set_new(d, "ready_at", api_epoch(res, i, 19));
	json_object_set_new(d, "stopped_at", api_epoch(res, i, 20));
	return d;
}

static enum ft_rc answer(struct api_req *r, const char *id)
{
	const char *p[] = { id, r->team_id };
	PGresult *res =
		api_db(r, "SELECT " DEP_COLS DEP_FROM " WHERE d.id = $1 AND d.team_id = $2", 2, p);
	if (!res)
		return r->err.rc;
	if (PQntuples(res) == 0)
		return api_not_found(r, "deployment", id);
	r->resp = api_own(r, deployment_json(res, 0));
	r->obj_type = "deployment";
	r->obj_id = api_strdup(r->arena, id);
	return FT_OK;
}

/* gguf_type: one of ft/deploy.h's, for llamacpp endpoints only. */
static enum ft_rc check_gguf_type(struct api_req *r, const char *t, bool llamacpp)
{
	if (!t)
		return FT_OK;
	if (!llamacpp)
		return api_bad(r, "gguf_type", "invalid_value",
			       "\"gguf_type\" is for llamacpp endpoints (the base's GGUF type)");
	for (const char *const *g = ft_deploy_gguf_types; *g; g++)
		if (strcmp(*g, t) == 0)
			return FT_OK;
	return api_bad(r, "gguf_type", "invalid_value",
		       "\"gguf_type\" must be one of F32, F16, Q8_0, Q4_0, Q4_K_M (got \"%.32s\")",
		       t);
}

enum ft_rc h_deployments_create(struct api_req *r)
{
	static const char *const keys[] = { "endpoint", "model", "log_texts", "gguf_type", NULL };
	json_t *b;
	const char *ep_ref, *model, *gguf_type = NULL;
	bool log_texts = false;
	if (api_body_object(r, false, &b) || api_check_keys(r, b, NULL, keys) ||
	    ft_json_get_str(b, "endpoint", FT_JSON_REQUIRED | FT_JSON_NONEMPTY, &ep_ref, &r->err) ||
	    ft_json_get_str(b, "model", FT_JSON_REQUIRED | FT_JSON_NONEMPTY, &model, &r->err) ||
	    ft_json_get_bool(b, "log_texts", FT_JSON_NULL_OK, &log_texts, &r->err) ||
	    ft_json_get_str(b, "gguf_type", FT_JSON_NULL_OK, &gguf_type, &r->err))
		return r->err.rc ? r->err.rc : FT_EINVAL;
	char ep[FT_ID_MAX], kind[16];
	if (api_endpoint_find(r, ep_ref, ep, kind)) {
		if (r->err.rc != FT_ENOTFOUND)
			return r->err.rc;
		ft_err_clear(&r->err);
		r->not_found = false;
		return api_bad(r, "endpoint", "endpoint_not_found",
			       "endpoint \"%.64s\" does not exist (GET /v1/endpoints lists them)",
			       api_valid_text(ep_ref, 64) ? ep_ref : "?");
	}
	const struct ft_endpoint_kind *k = ft_endpoint_kind_find(kind);
	bool llamacpp = k->drive == FT_DRIVE_GGUF_EXPORTS;
	if (check_gguf_type(r, gguf_type, llamacpp))
		return FT_EINVAL;
	struct api_model_target *t = api_alloc(r->arena, sizeof(*t));
	if (api_model_resolve(r, model, "model", t)) {
		r->err.rc = FT_EINVAL; /* a field of the body names nothing: 400, as exports' */
		return FT_EINVAL;
	}
	if (t->kind != TARGET_VERSION)
		return api_bad(
			r, "model", "not_a_version",
			t->kind == TARGET_BASE
				? "\"%s\" is a base model: an endpoint serves its base itself; "
				  "deploy model versions (NAME@ALIAS, NAME/N, ft:BASE:JOB)"
				: "\"%s\" is a checkpoint: promote it to a version first (POST "
				  "/v1/registry/models/{name}/versions)",
			model);
	if (!llamacpp && strcmp(t->version_kind, "adapter") != 0)
		return api_bad(
			r, "model", "not_an_adapter",
			"%s/%d is a whole model (full fine-tuning): a %s endpoint loads LoRA "
			"adapters over its base; deploy it to a llamacpp endpoint, or serve its "
			"merged export as a base",
			t->model, t->version, kind);
	struct ft_model_ref ref;
	bool malformed;
	ft_model_ref_parse(model, &ref, &malformed);
	const char *alias = ref.kind == FT_REF_ALIAS ? ref.alias : NULL;
	/* the names it will answer under fit ft-serve's names (127 bytes) */
	const char *pv[] = { t->version_id };
	PGresult *res = api_db(r, "SELECT ft_version_served_name($1)", 1, pv);
	if (!res)
		return r->err.rc;
	if (strlen(PQgetvalue(res, 0, 0)) > 127 ||
	    (alias && strlen(t->model) + 1 + strlen(alias) > 127))
		return api_bad(r, "model", "name_too_long",
			       "\"%s\" would be served under a name longer than 127 bytes", model);
	char id[FT_ID_MAX];
	ft_id_new(FT_ID_DEPLOYMENT, id);
	const char *p[] = { id,
			    r->team_id,
			    ep,
			    model,
			    t->model_id[0] ? t->model_id : NULL,
			    alias,
			    t->version_id,
			    log_texts ? "t" : "f",
			    gguf_type ? gguf_type : "Q8_0" };
	res = api_db(
		r,
		"INSERT INTO deployments (id, team_id, endpoint_id, model, registered_model_id,"
		" alias, model_version_id, log_texts, gguf_type)"
		" VALUES ($1, $2, $3, $4, $5, $6, $7, $8::bool, $9)"
		" ON CONFLICT (endpoint_id, model) WHERE status <> 'stopped' DO NOTHING"
		" RETURNING id",
		9, p);
	if (!res)
		return r->err.rc;
	if (PQntuples(res) == 0) {
		ft_failf(&r->err, FT_ECONFLICT, "deployment_exists",
			 "\"%s\" is deployed on endpoint \"%s\" already", model, ep_ref);
		ft_err_param(&r->err, "model");
		return FT_ECONFLICT;
	}
	return answer(r, id);
}

enum ft_rc h_deployments_list(struct api_req *r)
{
	long limit;
	const char *after, *ep_ref = api_query(r, "endpoint"), *status = api_query(r, "status");
	char ep[FT_ID_MAX] = "";
	if (api_page_args(r, FT_ID_DEPLOYMENT, &limit, &after))
		return FT_EINVAL;
	if (status && !ft_deployment_state_valid(status))
		return api_bad(
			r, "status", "invalid_value",
			"\"status\" must be one of pending, loading, ready, failed, stopped");
	if (ep_ref && api_endpoint_find(r, ep_ref, ep, NULL))
		return r->err.rc;
	char lim[16];
	snprintf(lim, sizeof(lim), "%ld", limit + 1);
	const char *p[] = { r->team_id, after, lim, ep_ref ? ep : NULL, status };
	PGresult *res =
		api_db(r,
		       "SELECT " DEP_COLS DEP_FROM
		       " WHERE d.team_id = $1 AND ($4::text IS NULL OR d.endpoint_id = $4)"
		       " AND ($5::text IS NULL OR d.status = $5)"
		       " AND ($2::text IS NULL OR (d.created_at, d.id) <"
		       " (SELECT created_at, id FROM deployments WHERE id = $2 AND team_id = $1))"
		       " ORDER BY d.created_at DESC, d.id DESC LIMIT $3::int",
		       5, p);
	if (!res)
		return r->err.rc;
	json_t *data = json_array();
	for (int i = 0; i < PQntuples(res); i++)
		json_array_append_new(data, deployment_json(res, i));
	r->resp = api_own(r, api_list(data, limit));
	return FT_OK;
}

enum ft_rc h_deployments_get(struct api_req *r)
{
	if (!ft_id_valid(FT_ID_DEPLOYMENT, r->params[0]))
		return api_not_found(r, "deployment", r->params[0]);
	return answer(r, r->params[0]);
}

enum ft_rc h_deployments_delete(struct api_req *r)
{
	const char *id = r->params[0];
	if (!ft_id_valid(FT_ID_DEPLOYMENT, id))
		return api_not_found(r, "deployment", id);
	const char *p[] = { id, r->team_id };
	PGresult *res =
		api_db(r,
		       "UPDATE deployments SET status = 'stopped', stopped_at = now(),"
		       " status_reason = NULL, updated_at = now()"
		       " WHERE id = $1 AND team_id = $2 AND status <> 'stopped' RETURNING id",
		       2, p);
	if (!res)
		return r->err.rc;
	/* stopping a stopped deployment changes nothing: the same answer */
	return answer(r, id);
}

/* ---- chat through a deployment (the console's playground) ---- */

/* POST /v1/deployments/{id}/chat/completions: an OpenAI chat request sent
 * to the deployment's endpoint with the endpoint's sealed credential, so a
 * browser that may talk only to ft-api (the console's CSP) can chat with
 * it. "model" is one of the deployment's served names (default: the
 * first). The answer is always a stream: the endpoint's own server-sent
 * events (chat.completion.chunk ... [DONE]), passed on as they arrive by a
 * thread that holds no libmicrohttpd thread (stream.c); a failure after
 * the first byte is an event {"error": {...}}. */
enum ft_rc h_deployments_chat(struct api_req *r)
{
	const char *id = r->params[0];
	if (!ft_id_valid(FT_ID_DEPLOYMENT, id))
		return api_not_found(r, "deployment", id);
	json_t *b;
	if (api_body_object(r, false, &b))
		return r->err.rc;
	if (!json_is_array(json_object_get(b, "messages")) ||
	    json_array_size(json_object_get(b, "messages")) == 0)
		return api_bad(r, "messages", "invalid_value",
			       "\"messages\" must be a non-empty list of chat messages");
	const json_t *stream = json_object_get(b, "stream");
	if (stream && !json_is_true(stream) && !json_is_null(stream))
		return api_bad(r, "stream", "invalid_value",
			       "this route streams its answer: \"stream\" must be true or absent");
	json_object_set_new(b, "stream", json_true());
	const char *p[] = { id, r->team_id };
	PGresult *res = api_db(r,
			       "SELECT " DEP_COLS ", e.url, e.api_key_sealed, e.id" DEP_FROM
			       " WHERE d.id = $1 AND d.team_id = $2",
			       2, p);
	if (!res)
		return r->err.rc;
	if (PQntuples(res) == 0)
		return api_not_found(r, "deployment", id);
	r->obj_type = "deployment";
	r->obj_id = api_strdup(r->arena, id);
	if (strcmp(PQgetvalue(res, 0, 11), "ready") != 0)
		return ft_failf(&r->err, FT_ECONFLICT, "deployment_not_ready",
				"deployment %s is %s: it answers once it is ready", id,
				PQgetvalue(res, 0, 11));
	json_t *d = api_own(r, deployment_json(res, 0));
	const json_t *names = json_object_get(d, "served_names");
	const json_t *model = json_object_get(b, "model");
	if (model && !json_is_null(model)) {
		bool served = false;
		for (size_t i = 0; json_is_string(model) && i < json_array_size(names); i++)
			served = served || json_equal(model, json_array_get(names, i));
		if (!served)
			return api_bad(
				r, "model", "model_not_served",
				"\"model\" must be one of the names deployment %s answers under",
				id);
	} else if (json_array_size(names) > 0) {
		json_object_set(b, "model", json_array_get(names, 0));
	} else {
		return ft_failf(&r->err, FT_ECONFLICT, "deployment_not_ready",
				"deployment %s answers under no name yet", id);
	}
	char pin[320];
	if (ft_webhook_check_url(PQgetvalue(res, 0, 22), r->ctx->endpoint_allow_http,
				 r->ctx->endpoint_allow_cidrs, pin, &r->err))
		return ft_failf(&r->err, FT_EUNAVAIL, "endpoint_refused",
				"the endpoint's URL is refused by this server's endpoint settings");
	char *key = NULL;
	size_t key_n = 0;
	if (!PQgetisnull(res, 0, 23)) {
		struct ft_err e;
		ft_err_clear(&e);
		if (!r->ctx->has_secret_key ||
		    ft_secretbox_open(r->ctx->secret_key, PQgetvalue(res, 0, 24),
				      PQgetvalue(res, 0, 23), &key, &key_n, &e))
			return ft_failf(&r->err, FT_EUNAVAIL, "secret_key_unset",
					"the endpoint's api_key does not open with this server's "
					"secret_key");
	}
	char *body = json_dumps(b, JSON_COMPACT);
	if (!body) {
		ft_secretbox_free(key);
		return ft_failf(&r->err, FT_ENOMEM, NULL, "out of memory");
	}
	const struct ft_endpoint_target t = { PQgetvalue(res, 0, 22), pin, NULL,
					      r->ctx->endpoint_allow_http };
	enum ft_rc rc = api_stream_chat(r, &t, key, body); /* key is the chat's now */
	free(body);
	return rc;
}
