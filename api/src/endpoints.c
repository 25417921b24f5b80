/*
 * endpoints.c - /v1/endpoints: the inference servers a team publishes model
 * versions to (docs/deployments.md; the kinds: ft/deploy.h).
 *
 *   POST   /v1/endpoints              {name, kind, url, api_key}      admin
 *   GET    /v1/endpoints              the team's, newest first         viewer
 *   GET    /v1/endpoints/{endpoint}   one (an id or a name)            viewer
 *   POST   /v1/endpoints/{endpoint}   {name, url, api_key} to change   admin
 *   DELETE /v1/endpoints/{endpoint}   refused while deployments live   admin
 *
 * The api_key is the endpoint's own bearer token (ft-serve's serve_token,
 * vLLM's --api-key). It is sealed before it is stored (ft/crypto.h's secret
 * box under secret_key, the endpoint's id as associated data), only the
 * scheduler's controller opens it, and no answer contains it: an endpoint
 * says "has_api_key". Writing endpoints is an admin's, as webhooks are: an
 * endpoint makes the platform send requests, with a credential, to a URL.
 * The URL passes the SSRF guard webhooks use (ft/webhook.h), with
 * endpoint_allow_http and endpoint_allow_cidrs; the controller checks it
 * again at every call.
 */
#include <ctype.h>

#include "ft/deploy.h"
#include "ft/webhook.h"
#include "api_int.h"

#define EP_COLS                                                                                 \
	"e.id, e.name, e.kind, e.url, e.api_key_sealed IS NOT NULL, e.health, e.health_reason," \
	" extract(epoch from e.checked_at)::bigint, extract(epoch from e.created_at)::bigint,"  \
	" extract(epoch from e.updated_at)::bigint, (SELECT count(*) FROM deployments d"        \
	" WHERE d.endpoint_id = e.id AND d.status <> 'stopped')"

static json_t *endpoint_json(const PGresult *res, int i)
{
	json_t *e = json_object();
	json_object_set_new(e, "id", json_string(PQgetvalue(res, i, 0)));
	json_object_set_new(e, "object", json_string("endpoint"));
	json_object_set_new(e, "name", json_string(PQgetvalue(res, i, 1)));
	json_object_set_new(e, "kind", json_string(PQgetvalue(res, i, 2)));
	json_object_set_new(e, "url", json_string(PQgetvalue(res, i, 3)));
	json_object_set_new(e, "has_api_key", json_boolean(PQgetvalue(res, i, 4)[0] == 't'));
	json_object_set_new(e, "health", json_string(PQgetvalue(res, i, 5)));
	json_object_set_new(e, "health_reason", api_text_or_null(res, i, 6));
	json_object_set_new(e, "checked_at", api_epoch(res, i, 7));
	json_object_set_new(e, "created_at", api_epoch(res, i, 8));
	json_object_set_new(e, "updated_at", api_epoch(res, i, 9));
	json_object_set_new(e, "deployments", json_integer(atoi(PQgetvalue(res, i, 10))));
	return e;
}

static bool name_valid(const char *s)
{
	size_t n = strlen(s);
	if (n < 1 || n > 64 || !isalnum((unsigned char)s[0]))
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && !strchr("._-", *s))
			return false;
	return true;
}

enum ft_rc api_endpoint_find(struct api_req *r, const char *ref, char id[FT_ID_MAX], char kind[16])
{
	if (!ref || !(ft_id_valid(FT_ID_ENDPOINT, ref) || name_valid(ref)))
		return api_not_found(r, "endpoint", ref ? ref : "");
	const char *p[] = { r->team_id, ref };
	PGresult *res = api_db(
		r, "SELECT id, kind FROM endpoints WHERE team_id = $1 AND (id = $2 OR name = $2)",
		2, p);
	if (!res)
		return r->err.rc;
	if (PQntuples(res) == 0)
		return api_not_found(r, "endpoint", ref);
	ft_strlcpy(id, PQgetvalue(res, 0, 0), FT_ID_MAX);
	if (kind)
		ft_strlcpy(kind, PQgetvalue(res, 0, 1), 16);
	return FT_OK;
}

static enum ft_rc answer(struct api_req *r, const char *id)
{
	const char *p[] = { id, r->team_id };
	PGresult *res = api_db(
		r, "SELECT " EP_COLS " FROM endpoints e WHERE e.id = $1 AND e.team_id = $2", 2, p);
	if (!res)
		return r->err.rc;
	if (PQntuples(res) == 0)
		return api_not_found(r, "endpoint", id);
	r->resp = api_own(r, endpoint_json(res, 0));
	r->obj_type = "endpoint";
	r->obj_id = api_strdup(r->arena, id);
	return FT_OK;
}

/* The url field: the server's base URL (without /v1), checked by the SSRF
 * guard; a trailing '/' is dropped. */
static enum ft_rc check_url(struct api_req *r, const char *url, const char **out)
{
	if (!api_valid_text(url, 2048))
		return api_bad(r, "url", "invalid_url",
			       "\"url\" must be printable text of at most 2048 bytes");
	size_t n = strlen(url);
	char *u = api_strdup(r->arena, url);
	while (n > 0 && u[n - 1] == '/')
		u[--n] = '\0';
	if (strchr(u, '?') || strchr(u, '#') || (n >= 3 && strcmp(u + n - 3, "/v1") == 0))
		return api_bad(
			r, "url", "invalid_url",
			"\"url\" is the server's base URL, without /v1, a query or a fragment "
			"(http://host:8000)");
	char pin[320];
	struct ft_err e;
	ft_err_clear(&e);
	if (ft_webhook_check_url(u, r->ctx->endpoint_allow_http, r->ctx->endpoint_allow_cidrs, pin,
				 &e))
		return api_bad(r, "url", "invalid_url", "\"url\": %s",
			       strncmp(e.msg, "webhook ", 8) == 0 ? e.msg + 8
								  : e.msg); /* shared words */
	*out = u;
	return FT_OK;
}

/* api_key: a string (sealed into *sealed), or null (*sealed NULL, *clear
 * true); absent leaves both. */
static enum ft_rc check_key(struct api_req *r, json_t *b, const char *id, const char **sealed,
			    bool *clear)
{
	json_t *v = json_object_get(b, "api_key");
	*sealed = NULL;
	*clear = false;
	if (!v)
		return FT_OK;
	if (json_is_null(v)) {
		*clear = true;
		return FT_OK;
	}
	const char *k = json_string_value(v);
	if (!k || !*k || !api_valid_text(k, FT_SECRETBOX_MAX))
		return api_bad(r, "api_key", "invalid_value",
			       "\"api_key\" must be printable text of 1 to %d bytes, or null",
			       FT_SECRETBOX_MAX);
	return api_seal_secret(r, id, k, "api_key", sealed);
}

enum ft_rc h_endpoints_create(struct api_req *r)
{
	static const char *const keys[] = { "name", "kind", "url", "api_key", NULL };
	json_t *b;
	const char *name, *kind, *url, *sealed;
	bool clear;
	if (api_body_object(r, false, &b) || api_check_keys(r, b, NULL, keys) ||
	    ft_json_get_str(b, "name", FT_JSON_REQUIRED | FT_JSON_NONEMPTY, &name, &r->err) ||
	    ft_json_get_str(b, "kind", FT_JSON_REQUIRED | FT_JSON_NONEMPTY, &kind, &r->err) ||
	    ft_json_get_str(b, "url", FT_JSON_REQUIRED | FT_JSON_NONEMPTY, &url, &r->err))
		return r->err.rc ? r->err.rc : FT_EINVAL;
	if (!name_valid(name))
		return api_bad(
			r, "name", "invalid_value",
			"\"name\" must be 1 to 64 of A-Z a-z 0-9 . _ -, starting with a letter "
			"or a digit");
	if (!ft_endpoint_kind_find(kind))
		return api_bad(r, "kind", "invalid_value",
			       "\"kind\" must be one of \"ftserve\", \"vllm\", \"llamacpp\"");
	char id[FT_ID_MAX];
	ft_id_new(FT_ID_ENDPOINT, id);
	if (check_url(r, url, &url) || check_key(r, b, id, &sealed, &clear))
		return r->err.rc;
	const char *p[] = { id, r->team_id, name, kind, url, sealed };
	PGresult *res =
		api_db(r,
		       "INSERT INTO endpoints (id, team_id, name, kind, url, api_key_sealed)"
		       " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (team_id, name) DO NOTHING"
		       " RETURNING id",
		       6, p);
	if (!res)
		return r->err.rc;
	if (PQntuples(res) == 0) {
		ft_failf(&r->err, FT_ECONFLICT, "endpoint_exists",
			 "the team has an endpoint named \"%s\" already", name);
		ft_err_param(&r->err, "name");
		return FT_ECONFLICT;
	}
	return answer(r, id);
}

enum ft_rc h_endpoints_list(struct api_req *r)
{
	return api_list_newest(r, FT_ID_ENDPOINT, "endpoints e", "e.team_id", r->team_id, EP_COLS,
			       endpoint_json);
}

enum ft_rc h_endpoints_get(struct api_req *r)
{
	char id[FT_ID_MAX];
	if (api_endpoint_find(r, r->params[0], id, NULL))
		return r->err.rc;
	return answer(r, id);
}

enum ft_rc h_endpoints_update(struct api_req *r)
{
	static const char *const keys[] = { "name", "url", "api_key", "kind", NULL };
	char id[FT_ID_MAX], kind[16];
	json_t *b;
	const char *name = NULL, *url = NULL, *sealed = NULL, *new_kind = NULL;
	bool clear = false;
	if (api_body_object(r, false, &b) || api_check_keys(r, b, NULL, keys) ||
	    ft_json_get_str(b, "name", FT_JSON_NULL_OK | FT_JSON_NONEMPTY, &name, &r->err) ||
	    ft_json_get_str(b, "url", FT_JSON_NULL_OK | FT_JSON_NONEMPTY, &url, &r->err) ||
	    ft_json_get_str(b, "kind", FT_JSON_NULL_OK, &new_kind, &r->err))
		return r->err.rc ? r->err.rc : FT_EINVAL;
	if (api_endpoint_find(r, r->params[0], id, kind))
		return r->err.rc;
	if (new_kind && strcmp(new_kind, kind) != 0)
		return api_bad(r, "kind", "invalid_value",
			       "an endpoint's \"kind\" cannot change; create another endpoint");
	if (name && !name_valid(name))
		return api_bad(
			r, "name", "invalid_value",
			"\"name\" must be 1 to 64 of A-Z a-z 0-9 . _ -, starting with a letter "
			"or a digit");
	if ((url && check_url(r, url, &url)) || check_key(r, b, id, &sealed, &clear))
		return r->err.rc;
	const char *p[] = { id, name, url, sealed, clear ? "t" : "f" };
	PGresult *res =
		api_db(r,
		       "UPDATE endpoints SET name = coalesce($2, name), url = coalesce($3, url),"
		       " api_key_sealed = CASE WHEN $5::bool THEN NULL ELSE coalesce($4, "
		       "api_key_sealed) END,"
		       " health = CASE WHEN $3 IS NULL AND $4 IS NULL AND NOT $5::bool THEN health"
		       "   ELSE 'unknown' END, updated_at = now()"
		       " WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM endpoints o WHERE o.team_id ="
		       "   endpoints.team_id AND o.name = $2 AND o.id <> $1) RETURNING id",
		       5, p);
	if (!res)
		return r->err.rc;
	if (PQntuples(res) == 0) {
		ft_failf(&r->err, FT_ECONFLICT, "endpoint_exists",
			 "the team has an endpoint named \"%s\" already", name);
		ft_err_param(&r->err, "name");
		return FT_ECONFLICT;
	}
	return answer(r, id);
}

enum ft_rc h_endpoints_delete(struct api_req *r)
{
	char id[FT_ID_MAX];
	if (api_db_begin(r) || api_endpoint_find(r, r->params[0], id, NULL))
		return r->err.rc;
	const char *p[] = { id };
	/* the row lock waits for a deployment being created on it (its foreign
	 * key takes a share lock) and keeps new ones out until the delete */
	PGresult *res = api_db(r, "SELECT id FROM endpoints WHERE id = $1 FOR UPDATE", 1, p);
	if (res)
		res = api_db(r,
			     "SELECT string_agg(id, ', ' ORDER BY id) FROM deployments"
			     " WHERE endpoint_id = $1 AND status <> 'stopped'",
			     1, p);
	if (!res)
		return r->err.rc;
	if (!PQgetisnull(res, 0, 0))
		return ft_failf(&r->err, FT_ECONFLICT, "endpoint_in_use",
				"endpoint \"%s\" still serves deployment(s) %s; delete them first",
				r->params[0], PQgetvalue(res, 0, 0));
	if (api_db_cmd(r, "DELETE FROM endpoints WHERE id = $1", 1, p) || api_db_commit(r))
		return r->err.rc;
	r->resp = api_own(
		r, json_pack("{s:s, s:s, s:b}", "id", id, "object", "endpoint", "deleted", 1));
	r->obj_type = "endpoint";
	r->obj_id = api_strdup(r->arena, id);
	return FT_OK;
}
