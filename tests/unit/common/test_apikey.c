/*
 * test_apikey.c - the API keys shared by ft-api and ft-serve
 * (common/services/src/apikey.c): the key format (generated keys parse
 * back to their prefix and hash; malformed headers are refused with the
 * reason), and the in-process cache: hits, "no such key" entries, the ttl,
 * invalidation of one prefix and of all, the generation rule that keeps a
 * lookup racing with a revocation from caching what it read before it, and
 * the entry cap. Verification against PostgreSQL is exercised through the
 * servers (tests/system/test_api_access.py, test_serve_auth.py).
 */
#include <time.h>

#include "ft/apikey.h"
#include "ftest.h"

static struct ft_apikey_info info(const char *id, bool revoked)
{
	struct ft_apikey_info k = { 0 };
	ft_strlcpy(k.key_id, id, sizeof(k.key_id));
	ft_strlcpy(k.team_id, "team-x", sizeof(k.team_id));
	ft_strlcpy(k.hash, "\\x00ff", sizeof(k.hash));
	ft_strlcpy(k.role, "member", sizeof(k.role));
	k.rate_limit_per_min = 60;
	k.revoked = revoked;
	return k;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

FT_TEST(cache_hits_absent_entries_and_ttl)
{
	struct ft_apikeys *kc = ft_apikeys_new(300, 100);
	struct ft_apikey_info got, k = info("key-a", false);
	uint64_t gen;
	FT_CHECK(ft_apikeys_get(kc, "AAAAAAAAAAAA", &got, &gen) == FT_APIKEY_MISS);
	ft_apikeys_put(kc, "AAAAAAAAAAAA", gen, &k);
	FT_CHECK(ft_apikeys_get(kc, "AAAAAAAAAAAA", &got, &gen) == FT_APIKEY_FOUND);
	FT_CHECK_STR(got.key_id, "key-a");
	FT_CHECK_STR(got.hash, "\\x00ff");
	FT_CHECK_INT(got.rate_limit_per_min, 60);
	/* "no such key" is remembered too */
	FT_CHECK(ft_apikeys_get(kc, "BBBBBBBBBBBB", &got, &gen) == FT_APIKEY_MISS);
	ft_apikeys_put(kc, "BBBBBBBBBBBB", gen, NULL);
	FT_CHECK(ft_apikeys_get(kc, "BBBBBBBBBBBB", &got, &gen) == FT_APIKEY_ABSENT);
	/* past the ttl both are read again */
	sleep_ms(350);
	FT_CHECK(ft_apikeys_get(kc, "AAAAAAAAAAAA", &got, &gen) == FT_APIKEY_MISS);
	FT_CHECK(ft_apikeys_get(kc, "BBBBBBBBBBBB", &got, &gen) == FT_APIKEY_MISS);
	FT_CHECK_INT(ft_apikeys_sweep(kc), 0);
	ft_apikeys_free(kc);
}

FT_TEST(cache_invalidation_and_generations)
{
	struct ft_apikeys *kc = ft_apikeys_new(60000, 100);
	struct ft_apikey_info got, k = info("key-a", false);
	uint64_t gen, g2;
	FT_CHECK(ft_apikeys_get(kc, "AAAAAAAAAAAA", &got, &gen) == FT_APIKEY_MISS);
	ft_apikeys_put(kc, "AAAAAAAAAAAA", gen, &k);
	ft_apikeys_get(kc, "CCCCCCCCCCCC", &got, &g2);
	ft_apikeys_put(kc, "CCCCCCCCCCCC", g2, &k);
	ft_apikeys_invalidate(kc, "AAAAAAAAAAAA");
	FT_CHECK(ft_apikeys_get(kc, "AAAAAAAAAAAA", &got, &gen) == FT_APIKEY_MISS);
	FT_CHECK(ft_apikeys_get(kc, "CCCCCCCCCCCC", &got, &g2) == FT_APIKEY_FOUND);

	/* A lookup that began before a revocation (it read the key as valid)
	 * must not store that answer after the revocation. */
	uint64_t before;
	FT_CHECK(ft_apikeys_get(kc, "AAAAAAAAAAAA", &got, &before) == FT_APIKEY_MISS);
	ft_apikeys_invalidate(kc, "AAAAAAAAAAAA"); /* the NOTIFY arrives meanwhile */
	ft_apikeys_put(kc, "AAAAAAAAAAAA", before, &k);
	FT_CHECK(ft_apikeys_get(kc, "AAAAAAAAAAAA", &got, &gen) == FT_APIKEY_MISS);
	/* the next lookup (after the revocation) stores what it read */
	struct ft_apikey_info revoked = info("key-a", true);
	ft_apikeys_put(kc, "AAAAAAAAAAAA", gen, &revoked);
	FT_CHECK(ft_apikeys_get(kc, "AAAAAAAAAAAA", &got, &gen) == FT_APIKEY_FOUND);
	FT_CHECK(got.revoked);

	ft_apikeys_invalidate_all(kc);
	FT_CHECK(ft_apikeys_get(kc, "AAAAAAAAAAAA", &got, &gen) == FT_APIKEY_MISS);
	FT_CHECK(ft_apikeys_get(kc, "CCCCCCCCCCCC", &got, &gen) == FT_APIKEY_MISS);
	FT_CHECK_INT(ft_apikeys_sweep(kc), 0);
	ft_apikeys_free(kc);
}

FT_TEST(cache_caps_entries_and_ttl_zero_disables)
{
	struct ft_apikeys *kc = ft_apikeys_new(60000, 3);
	struct ft_apikey_info got, k = info("key-a", false);
	char prefix[16];
	uint64_t gen;
	for (int i = 0; i < 5; i++) {
		snprintf(prefix, sizeof(prefix), "P%011d", i);
		ft_apikeys_get(kc, prefix, &got, &gen);
		ft_apikeys_put(kc, prefix, gen, &k);
	}
	FT_CHECK_INT(ft_apikeys_sweep(kc), 3);
	FT_CHECK(ft_apikeys_get(kc, "P00000000000", &got, &gen) == FT_APIKEY_FOUND);
	FT_CHECK(ft_apikeys_get(kc, "P00000000004", &got, &gen) == FT_APIKEY_MISS);
	ft_apikeys_free(kc);

	kc = ft_apikeys_new(0, 100);
	ft_apikeys_get(kc, "AAAAAAAAAAAA", &got, &gen);
	ft_apikeys_put(kc, "AAAAAAAAAAAA", gen, &k);
	FT_CHECK(ft_apikeys_get(kc, "AAAAAAAAAAAA", &got, &gen) == FT_APIKEY_MISS);
	ft_apikeys_free(kc);
}

FT_TEST(format_generate_and_parse)
{
	char key[FT_APIKEY_LEN + 1], prefix[FT_APIKEY_PREFIX_LEN + 1], hash[FT_APIKEY_HASH_LEN + 1];
	char p2[FT_APIKEY_PREFIX_LEN + 1], h2[FT_APIKEY_HASH_LEN + 1], hdr[96];
	struct ft_err e;
	ft_apikey_generate(key, prefix, hash);
	FT_CHECK_INT(strlen(key), 48);
	FT_CHECK(strncmp(key, "ftk-", 4) == 0);
	FT_CHECK(strncmp(key + 4, prefix, 12) == 0);
	/* the stored hash is SHA-256 of the whole key, as PostgreSQL prints bytea */
	char hex[FT_SHA256_HEX_LEN + 1];
	ft_sha256_hex(key, strlen(key), hex);
	FT_CHECK(hash[0] == '\\' && hash[1] == 'x');
	FT_CHECK_STR(hash + 2, hex);
	/* "Bearer" in any case, spaces after it */
	snprintf(hdr, sizeof(hdr), "bEaReR   %s", key);
	ft_err_clear(&e);
	FT_CHECK(ft_apikey_parse(hdr, p2, h2, &e) == FT_OK);
	FT_CHECK_STR(p2, prefix);
	FT_CHECK_STR(h2, hash);
	/* two keys never share a prefix in practice (72 random bits) */
	char k2[FT_APIKEY_LEN + 1], pr2[FT_APIKEY_PREFIX_LEN + 1], hs2[FT_APIKEY_HASH_LEN + 1];
	ft_apikey_generate(k2, pr2, hs2);
	FT_CHECK(strcmp(pr2, prefix) != 0 && strcmp(hs2, hash) != 0);
}

FT_TEST(format_refusals_say_why)
{
	static const struct {
		const char *header, *code;
	} cases[] = {
		{ NULL, "missing_api_key" },
		{ "", "missing_api_key" },
		{ "Basic dXNlcjpwYXNz", "invalid_api_key" },
		{ "Bearer ftk-short", "invalid_api_key" },
		{ "Bearer sk-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
		  "invalid_api_key" },
		{ "Bearer ftk-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA!", "invalid_api_key" },
		{ "Bearer ftk-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "invalid_api_key" },
	};
	char p[FT_APIKEY_PREFIX_LEN + 1], h[FT_APIKEY_HASH_LEN + 1];
	for (size_t i = 0; i < FT_ARRAY_LEN(cases); i++) {
		struct ft_err e;
		ft_err_clear(&e);
		FT_CHECK(ft_apikey_parse(cases[i].header, p, h, &e) == FT_EAUTH);
		FT_CHECK_STR(e.code, cases[i].code);
	}
}

FT_TEST_MAIN()
