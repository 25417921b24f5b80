/*
 * teams.c - /v1/teams and /v1/keys. A key sees its own team only; keys
 * are managed by the team's admins. A new key is shown once, in the
 * response that creates it (an idempotent replay of that request answers
 * the key without it); afterwards only its prefix is.
 */
#include "api_int.h"

#define TEAM_COLS                                                        \
	"id, name, quota_gpus, max_concurrent_jobs, fair_share_weight, " \
	"extract(epoch from created_at)::bigint"
#define KEY_COLS                                                                             \
	"id, team_id, name, prefix, role, rate_limit_per_min, "                              \
	"extract(epoch from created_at)::bigint, extract(epoch from last_used_at)::bigint, " \
	"extract(epoch from expires_at)::bigint, extract(epoch from revoked_at)::bigint"

static json_t *team_json(const PGresult *res, int i)
{
	return json_pack("{s:s,s:s,s:s,s:I,s:I,s:f,s:o}", "id", PQgetvalue(res, i, 0), "object",
			 "team", "name", PQgetvalue(res, i, 1), "quota_gpus",
			 (json_int_t)strtoll(PQgetvalue(res, i, 2), NULL, 10),
			 "max_concurrent_jobs",
			 (json_int_t)strtoll(PQgetvalue(res, i, 3), NULL, 10), "fair_share_weight",
			 strtod(PQgetvalue(res, i, 4), NULL), "created_at", api_epoch(res, i, 5));
}

enum ft_rc h_teams_list(struct api_req *r)
{
	long limit;
	const char *after;
	if (api_page_args(r, FT_ID_TEAM, &limit, &after))
		return FT_EINVAL;
	const char *p[] = { r->team_id, after };
	PGresult *res = api_db(r,
			       "SELECT " TEAM_COLS " FROM teams WHERE id = $1 "
			       "AND ($2::text IS NULL OR id < $2)",
			       2, p);
	if (!res)
		return r->err.rc;
	json_t *data = json_array();
	for (int i = 0; i < PQntuples(res); i++)
		json_array_append_new(data, team_json(res, i));
	r->resp = api_own(r, api_list(data, limit));
	return FT_OK;
}

enum ft_rc h_teams_get(struct api_req *r)
{
	const char *id = r->params[0];
	if (!ft_id_valid(FT_ID_TEAM, id) || strcmp(id, r->team_id) != 0)
		return api_not_found(r, "team", id);
	const char *p[] = { id };
	PGresult *res = api_db(r, "SELECT " TEAM_COLS " FROM teams WHERE id = $1", 1, p);
	if (!res)
		return r->err.rc;
	if (PQntuples(res) == 0)
		return api_not_found(r, "team", id);
	r->resp = api_own(r, team_json(res, 0));
	return FT_OK;
}

static json_t *key_json(const PGresult *res, int i)
{
	json_t *k = json_object();
	json_object_set_new(k, "id", json_string(PQgetvalue(res, i, 0)));
	json_object_set_new(k, "object", json_string("api_key"));
	json_object_set_new(k, "team_id", json_string(PQgetvalue(res, i, 1)));
	json_object_set_new(k, "name", json_string(PQgetvalue(res, i, 2)));
	json_object_set_new(k, "prefix", json_sprintf("ftk-%s", PQgetvalue(res, i, 3)));
	json_object_set_new(k, "role", json_string(PQgetvalue(res, i, 4)));
	json_object_set_new(k, "rate_limit_per_min",
			    json_integer(strtoll(PQgetvalue(res, i, 5), NULL, 10)));
	json_object_set_new(k, "created_at", api_epoch(res, i, 6));
	json_object_set_new(k, "last_used_at", api_epoch(res, i, 7));
	json_object_set_new(k, "expires_at", api_epoch(res, i, 8));
	json_object_set_new(k, "revoked_at", api_epoch(res, i, 9));
	return k;
}

enum ft_rc h_keys_create(struct api_req *r)
{
	static const char *const keys[] = { "name", "role", "rate_limit_per_min", "expires_at",
					    NULL };
	json_t *b;
	const char *name = "", *role_s = "member";
	long long rl = 600, expires = 0;
	enum api_role role;
	if (api_body_object(r, false, &b) || api_check_keys(r, b, NULL, keys) ||
	    ft_json_get_str(b, "name", FT_JSON_NULL_OK, &name, &r->err) ||
	    ft_json_get_str(b, "role", FT_JSON_NULL_OK, &role_s, &r->err) ||
	    ft_json_get_int(b, "rate_limit_per_min", FT_JSON_NULL_OK, 1, 1000000, &rl, &r->err) ||
	    ft_json_get_int(b, "expires_at", FT_JSON_NULL_OK, 1, 253402300799LL, &expires, &r->err))
		return FT_EINVAL;
	if (!api_valid_text(name, 128)) {
		ft_failf(&r->err, FT_EINVAL, "invalid_value",
			 "\"name\" must be at most 128 printable characters");
		ft_err_param(&r->err, "name");
		return FT_EINVAL;
	}
	if (!api_role_parse(role_s, &role)) {
		ft_failf(&r->err, FT_EINVAL, "invalid_value",
			 "\"role\" must be \"viewer\", \"member\" or \"admin\"");
		ft_err_param(&r->err, "role");
		return FT_EINVAL;
	}
	char kid[FT_ID_MAX], key[80], exp[32];
	snprintf(exp, sizeof(exp), "%lld", expires);
	const char *pe[] = { exp };
	PGresult *ts = api_db(r, "SELECT to_timestamp($1::bigint)::text", 1, pe);
	if (!ts)
		return r->err.rc;
	if (api_key_create(r->db, r->team_id, name, role, (long)rl,
			   expires ? PQgetvalue(ts, 0, 0) : NULL, kid, key, &r->err))
		return r->err.rc;
	const char *p[] = { kid };
	PGresult *res = api_db(r, "SELECT " KEY_COLS " FROM api_keys WHERE id = $1", 1, p);
	if (!res)
		return r->err.rc;
	json_t *k = key_json(res, 0);
	json_object_set_new(k, "key", json_string(key));
	r->secret_field = "key"; /* not in what an idempotent replay answers */
	/* A lookup of this prefix cached as "no such key" (someone guessed it)
	 * must not outlive the key's creation; other processes hear the
	 * trigger's NOTIFY. */
	ft_apikeys_invalidate(r->ctx->keys, PQgetvalue(res, 0, 3));
	r->obj_type = "api_key";
	r->obj_id = api_strdup(r->arena, kid);
	r->resp = api_own(r, k);
	return FT_OK;
}

enum ft_rc h_keys_list(struct api_req *r)
{
	return api_list_newest(r, FT_ID_KEY, "api_keys", "team_id", r->team_id, KEY_COLS, key_json);
}

enum ft_rc h_keys_get(struct api_req *r)
{
	const char *id = r->params[0];
	if (!ft_id_valid(FT_ID_KEY, id))
		return api_not_found(r, "key", id);
	const char *p[] = { id, r->team_id };
	PGresult *res =
		api_db(r, "SELECT " KEY_COLS " FROM api_keys WHERE id = $1 AND team_id = $2", 2, p);
	if (!res)
		return r->err.rc;
	if (PQntuples(res) == 0)
		return api_not_found(r, "key", id);
	r->resp = api_own(r, key_json(res, 0));
	return FT_OK;
}

/* POST /v1/keys/{id} {"name", "rate_limit_per_min", "expires_at"}: what
 * may change of a key that is not revoked (its role and secret may not:
 * make a new key). expires_at null keeps it, 0 removes it. Every server
 * holding the key in its cache drops it at the trigger's NOTIFY, so a new
 * rate limit holds in ft-api and ft-serve within milliseconds. */
enum ft_rc h_keys_update(struct api_req *r)
{
	static const char *const keys[] = { "name", "rate_limit_per_min", "expires_at", NULL };
	const char *id = r->params[0];
	if (!ft_id_valid(FT_ID_KEY, id))
		return api_not_found(r, "key", id);
	json_t *b;
	const char *name = NULL;
	long long rl = 0, expires = -1;
	if (api_body_object(r, false, &b) || api_check_keys(r, b, NULL, keys) ||
	    ft_json_get_str(b, "name", FT_JSON_NULL_OK, &name, &r->err) ||
	    ft_json_get_int(b, "rate_limit_per_min", FT_JSON_NULL_OK, 1, 1000000, &rl, &r->err) ||
	    ft_json_get_int(b, "expires_at", FT_JSON_NULL_OK, 0, 253402300799LL, &expires, &r->err))
		return FT_EINVAL;
	if (name && !api_valid_text(name, 128)) {
		ft_failf(&r->err, FT_EINVAL, "invalid_value",
			 "\"name\" must be at most 128 printable characters");
		ft_err_param(&r->err, "name");
		return FT_EINVAL;
	}
	char rls[24], exp[24];
	snprintf(rls, sizeof(rls), "%lld", rl);
	snprintf(exp, sizeof(exp), "%lld", expires);
	const char *p[] = { id, r->team_id, name, rl ? rls : NULL, expires >= 0 ? exp : NULL };
	PGresult *res =
		api_db(r,
		       "UPDATE api_keys SET name = coalesce($3, name),"
		       " rate_limit_per_min = coalesce($4::int, rate_limit_per_min),"
		       " expires_at = CASE WHEN $5::bigint IS NULL THEN expires_at"
		       "  WHEN $5::bigint = 0 THEN NULL ELSE to_timestamp($5::bigint) END"
		       " WHERE id = $1 AND team_id = $2 AND revoked_at IS NULL RETURNING " KEY_COLS,
		       5, p);
	if (!res)
		return r->err.rc;
	if (PQntuples(res) == 0) {
		const char *q[] = { id, r->team_id };
		PGresult *k =
			api_db(r, "SELECT 1 FROM api_keys WHERE id = $1 AND team_id = $2", 2, q);
		if (!k)
			return r->err.rc;
		if (PQntuples(k) == 0)
			return api_not_found(r, "key", id);
		ft_failf(&r->err, FT_ECONFLICT, "key_revoked",
			 "key %s is revoked: it cannot be changed", id);
		return FT_ECONFLICT;
	}
	ft_apikeys_invalidate(r->ctx->keys, PQgetvalue(res, 0, 3));
	r->obj_type = "api_key";
	r->obj_id = id;
	r->resp = api_own(r, key_json(res, 0));
	return FT_OK;
}

enum ft_rc h_keys_delete(struct api_req *r)
{
	const char *id = r->params[0];
	if (!ft_id_valid(FT_ID_KEY, id))
		return api_not_found(r, "key", id);
	const char *p[] = { id, r->team_id };
	PGresult *res = api_db(r,
			       "UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) "
			       "WHERE id = $1 AND team_id = $2 RETURNING prefix",
			       2, p);
	if (!res)
		return r->err.rc;
	if (PQntuples(res) == 0)
		return api_not_found(r, "key", id);
	/* Committed (autocommit): this process stops accepting the key now;
	 * the others when the trigger's NOTIFY reaches them (ft/apikey.h). */
	ft_apikeys_invalidate(r->ctx->keys, PQgetvalue(res, 0, 0));
	r->obj_type = "api_key";
	r->obj_id = id;
	r->resp =
		api_own(r, json_pack("{s:s,s:s,s:b}", "id", id, "object", "api_key", "deleted", 1));
	return FT_OK;
}

/* GET /v1/me: the calling key, its role and its team; what a client (the
 * console) needs to know which actions to offer. */
enum ft_rc h_me(struct api_req *r)
{
	const char *p[] = { r->team_id, r->key_id };
	PGresult *res = api_db(r,
			       "SELECT " TEAM_COLS ", (SELECT name FROM api_keys WHERE id = $2) "
			       "FROM teams WHERE id = $1",
			       2, p);
	if (!res)
		return r->err.rc;
	if (PQntuples(res) == 0)
		return api_not_found(r, "team", r->team_id);
	r->resp = api_own(r, json_pack("{s:s,s:s,s:s,s:s,s:o}", "object", "caller", "key_id",
				       r->key_id, "key_name", PQgetvalue(res, 0, 6), "role",
				       api_role_name(r->role), "team", team_json(res, 0)));
	return FT_OK;
}
