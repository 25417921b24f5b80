/*
 * auth.c - API keys.
 *
 * A key is "ftk-" + 12 base62 characters (the prefix, stored in clear and
 * unique: how a presented key is found) + 32 base62 characters of secret,
 * 48 characters in all (about 262 random bits). The database keeps only
 * SHA-256 of the whole key; the key itself is shown once, when created.
 * last_used_at is refreshed at most once a minute per key so that reads do
 * not turn into writes.
 */
#include "api_int.h"

#define KEY_TAG "ftk-"
#define PREFIX_LEN 12
#define SECRET_LEN 32
#define KEY_LEN (4 + PREFIX_LEN + SECRET_LEN)

static const char b62[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

static void random_b62(char *out, size_t n)
{
	size_t i = 0;
	while (i < n) {
		unsigned char b[64];
		ft_random_bytes(b, sizeof(b));
		for (size_t j = 0; j < sizeof(b) && i < n; j++)
			if (b[j] < 248) /* 248 = 4 * 62: no modulo bias */
				out[i++] = b62[b[j] % 62];
	}
	out[n] = 0;
}

static bool is_b62(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!s[i] || !strchr(b62, s[i]))
			return false;
	return true;
}

static void hash_hex(const char *key, char out[2 + FT_SHA256_HEX_LEN + 1])
{
	unsigned char d[FT_SHA256_LEN];
	ft_sha256_digest(key, strlen(key), d);
	out[0] = '\\';
	out[1] = 'x';
	ft_hex_encode(d, sizeof(d), out + 2);
}

enum ft_rc api_key_create(PGconn *db, const char *team_id, const char *name, enum api_role role,
			  long rate_limit, const char *expires_at, char key_id[FT_ID_MAX],
			  char key_out[80], struct ft_err *err)
{
	char prefix[PREFIX_LEN + 1], secret[SECRET_LEN + 1], hash[2 + FT_SHA256_HEX_LEN + 1];
	char rl[32];
	random_b62(prefix, PREFIX_LEN);
	random_b62(secret, SECRET_LEN);
	snprintf(key_out, 80, "%s%s%s", KEY_TAG, prefix, secret);
	hash_hex(key_out, hash);
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

enum ft_rc api_authenticate(struct api_req *r)
{
	const char *h = api_header(r, MHD_HTTP_HEADER_AUTHORIZATION);
	if (!h || !*h)
		return ft_failf(&r->err, FT_EAUTH, "missing_api_key",
				"no API key: send \"Authorization: Bearer ftk-...\"");
	if (strncasecmp(h, "Bearer ", 7) != 0)
		return ft_failf(&r->err, FT_EAUTH, "invalid_api_key",
				"the Authorization header must be \"Bearer <key>\"");
	const char *key = h + 7;
	while (*key == ' ')
		key++;
	if (strlen(key) != KEY_LEN || strncmp(key, KEY_TAG, 4) != 0 ||
	    !is_b62(key + 4, PREFIX_LEN + SECRET_LEN))
		return ft_failf(
			&r->err, FT_EAUTH, "invalid_api_key",
			"the API key is malformed (expected ftk- and 44 letters or digits)");
	char prefix[PREFIX_LEN + 1], hash[2 + FT_SHA256_HEX_LEN + 1];
	memcpy(prefix, key + 4, PREFIX_LEN);
	prefix[PREFIX_LEN] = 0;
	hash_hex(key, hash);
	const char *p[] = { prefix };
	PGresult *res = api_db_prepared(
		r, "ft_auth_key",
		"SELECT id, team_id, key_hash, role, rate_limit_per_min, "
		"revoked_at IS NOT NULL, "
		"expires_at IS NOT NULL AND expires_at <= now(), "
		"last_used_at IS NULL OR last_used_at < now() - interval '60 seconds' "
		"FROM api_keys WHERE prefix = $1",
		1, p);
	if (!res)
		return r->err.rc;
	if (PQntuples(res) != 1 || PQgetlength(res, 0, 2) != (int)strlen(hash) ||
	    !ft_ct_equal(PQgetvalue(res, 0, 2), hash, strlen(hash)))
		return ft_failf(&r->err, FT_EAUTH, "invalid_api_key", "the API key is not valid");
	ft_strlcpy(r->key_id, PQgetvalue(res, 0, 0), sizeof(r->key_id));
	ft_strlcpy(r->team_id, PQgetvalue(res, 0, 1), sizeof(r->team_id));
	if (PQgetvalue(res, 0, 5)[0] == 't')
		return ft_failf(&r->err, FT_EAUTH, "key_revoked", "the API key was revoked");
	if (PQgetvalue(res, 0, 6)[0] == 't')
		return ft_failf(&r->err, FT_EAUTH, "key_expired", "the API key has expired");
	if (!api_role_parse(PQgetvalue(res, 0, 3), &r->role))
		return ft_failf(&r->err, FT_EINTERNAL, NULL, "key has an unknown role");
	long per_min = strtol(PQgetvalue(res, 0, 4), NULL, 10);
	if (PQgetvalue(res, 0, 7)[0] == 't') {
		const char *q[] = { r->key_id };
		if (api_db_cmd(r, "UPDATE api_keys SET last_used_at = now() WHERE id = $1", 1, q))
			return r->err.rc;
	}
	return api_rate_check(r, per_min);
}
