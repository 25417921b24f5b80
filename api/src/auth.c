/*
 * auth.c - ft-api's side of API keys. The key format, the check of a
 * presented key (cache, then one prepared SELECT, constant-time hash
 * comparison, revocation, expiry) and the cache itself are shared with
 * ft-serve in common/services (ft/apikey.h); here: creating a key, the
 * role a key carries, and the rate limit. last_used_at is written in the
 * background (ratelimit.c), not here.
 */
#include "api_int.h"

enum ft_rc api_key_create(PGconn *db, const char *team_id, const char *name, enum api_role role,
			  long rate_limit, const char *expires_at, char key_id[FT_ID_MAX],
			  char key_out[80], struct ft_err *err)
{
	char prefix[FT_APIKEY_PREFIX_LEN + 1], hash[FT_APIKEY_HASH_LEN + 1], rl[32];
	char key[FT_APIKEY_LEN + 1];
	ft_apikey_generate(key, prefix, hash);
	ft_strlcpy(key_out, key, 80);
	ft_id_new(FT_ID_KEY, key_id);
	snprintf(rl, sizeof(rl), "%ld", rate_limit);
	const char *p[] = { key_id, team_id,   name ? name : "", prefix, hash, api_role_name(role),
			    rl,	    expires_at };
	return ft_pg_command(db, err,
			     "INSERT INTO api_keys (id, team_id, name, prefix, key_hash, role, "
			     "rate_limit_per_min, expires_at) "
			     "VALUES ($1, $2, $3, $4, $5::bytea, $6, $7::int, $8::timestamptz)",
			     8, p);
}

static PGconn *request_db(void *ctx, struct ft_err *err)
{
	struct api_req *r = ctx;
	PGconn *c = api_db_conn(r);
	if (!c && err != &r->err)
		*err = r->err;
	return c;
}

enum ft_rc api_authenticate(struct api_req *r)
{
	struct ft_apikey_info k;
	const char *h = api_header(r, MHD_HTTP_HEADER_AUTHORIZATION);
	enum ft_rc rc = ft_apikey_verify(r->ctx->keys, h, request_db, r, &k, &r->err);
	/* A revoked or expired key is still known: the audit row names it. */
	ft_strlcpy(r->key_id, k.key_id, sizeof(r->key_id));
	ft_strlcpy(r->team_id, k.team_id, sizeof(r->team_id));
	if (rc)
		return rc;
	if (!api_role_parse(k.role, &r->role))
		return ft_failf(&r->err, FT_EINTERNAL, NULL, "key has an unknown role");
	return api_rate_check(r, k.rate_limit_per_min);
}
