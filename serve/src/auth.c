/*
 * auth.c - who may call ft-serve.
 *
 *   serve_token          serve_database_url   a request is let in when
 *   unset                unset                always (the operator: no authentication)
 *   set                  unset                it carries the token
 *   unset                set                  it carries a valid platform API key
 *   set                  set                  it carries either
 *
 * The token is the endpoint's own credential (the operator, or ft-api
 * driving a deployment): every route, every model. A platform API key is
 * checked exactly as ft-api checks it (common/services ft/apikey.h: the
 * same parse, cache, hash comparison, revocation and expiry, and the same
 * LISTEN ft_api_keys listener, here on a thread of its own that also sweeps
 * the cache); its team becomes the request's team: adapters loaded for
 * another team are invisible to it (404 model_not_found, as a name that does
 * not exist), and loading or unloading adapters needs the token.
 *
 * How long a revoked key keeps working: until its NOTIFY arrives (the
 * listener applies it within milliseconds), at most key_cache_ttl_s when
 * notifications are lost.
 *
 * A platform key's requests count against its rate_limit_per_min with
 * ft-api's own code (ft/usage.h): one window per key and minute, shared
 * through serve_redis_url with ft-api and every other ft-serve on that
 * Redis (a key's calls to the API and to inference count together); over
 * it, 429 rate_limit_exceeded with Retry-After. The same thread writes the
 * keys' last_used_at. The endpoint's token has no limit.
 */
#include "ft/clock.h"
#include "ft/crypto.h"
#include "ft/log.h"
#include "ft/pg.h"
#include "ft/usage.h"
#include "serve_int.h"

#define TICK_MS 250
#define SWEEP_MS 10000
#define SYNC_MS 1000

struct srv_auth {
	struct ft_apikeys *keys;
	struct ft_pg_pool *pg;
	struct ft_apikey_listener *listener;
	struct ft_usage *usage; /* the keys' rate counts and last use */
	pthread_t thread;
	bool started;
	bool stop; /* atomic */
};

static void *watch_main(void *arg)
{
	struct srv_auth *a = arg;
	uint64_t next_sweep = ft_time_mono_ms() + SWEEP_MS, next_sync = 0;
	while (!__atomic_load_n(&a->stop, __ATOMIC_ACQUIRE)) {
		ft_apikey_listener_poll(a->listener, TICK_MS);
		if (ft_time_mono_ms() >= next_sync) {
			ft_usage_sync(a->usage);
			ft_usage_flush_last_used(a->usage, a->pg);
			next_sync = ft_time_mono_ms() + SYNC_MS;
		}
		if (ft_time_mono_ms() >= next_sweep) {
			ft_apikeys_sweep(a->keys);
			next_sweep = ft_time_mono_ms() + SWEEP_MS;
		}
	}
	ft_usage_flush_last_used(a->usage, a->pg);
	return NULL;
}

struct srv_auth *srv_auth_new(const char *database_url, const char *redis_url, uint64_t ttl_ms,
			      struct ft_err *err)
{
	struct srv_auth *a = ft_xcalloc(1, sizeof(*a));
	a->pg = ft_pg_pool_new(database_url, 4, err);
	if (!a->pg) {
		free(a);
		return NULL;
	}
	a->keys = ft_apikeys_new(ttl_ms, 100000);
	a->usage = ft_usage_new(redis_url, "serve");
	a->listener = ft_apikey_listener_new(database_url, a->keys, "ft-serve");
	if (pthread_create(&a->thread, NULL, watch_main, a) == 0)
		a->started = true;
	else
		ft_logf(FT_LOG_WARN, "serve", NULL,
			"no key listener thread: cached keys live %" PRIu64 " s", ttl_ms / 1000);
	return a;
}

void srv_auth_free(struct srv_auth *a)
{
	if (!a)
		return;
	__atomic_store_n(&a->stop, true, __ATOMIC_RELEASE);
	if (a->started)
		pthread_join(a->thread, NULL);
	ft_apikey_listener_free(a->listener);
	ft_usage_free(a->usage);
	ft_apikeys_free(a->keys);
	ft_pg_pool_free(a->pg);
	free(a);
}

/* The lookup's connection, taken from the pool for this request. */
struct lookup {
	struct ft_pg_pool *pool;
	PGconn *conn;
};

static PGconn *lookup_db(void *ctx, struct ft_err *err)
{
	struct lookup *l = ctx;
	if (!l->conn)
		l->conn = ft_pg_pool_get(l->pool, 5000, err);
	return l->conn;
}

static bool token_ok(const struct srv_ctx *c, const char *h)
{
	if (!c->token_hash[0] || !h || strncmp(h, "Bearer ", 7) != 0)
		return false;
	char hex[FT_SHA256_HEX_LEN + 1];
	ft_sha256_hex(h + 7, strlen(h + 7), hex);
	return ft_ct_equal(hex, c->token_hash, FT_SHA256_HEX_LEN);
}

enum ft_rc srv_auth_check(struct srv_req *r)
{
	struct srv_ctx *c = r->ctx;
	const char *h = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
						    MHD_HTTP_HEADER_AUTHORIZATION);
	r->privileged = false;
	r->team[0] = 0;
	if (!c->token_hash[0] && !c->auth) {
		r->privileged = true;
		return FT_OK;
	}
	if (token_ok(c, h)) {
		r->privileged = true;
		return FT_OK;
	}
	if (!c->auth)
		return ft_failf(&r->err, FT_EAUTH, "invalid_api_key",
				"a valid \"Authorization: Bearer <token>\" header is needed");
	struct lookup l = { c->auth->pg, NULL };
	struct ft_apikey_info k;
	enum ft_rc rc = ft_apikey_verify(c->auth->keys, h, lookup_db, &l, &k, &r->err);
	if (l.conn)
		ft_pg_pool_put(l.pool, l.conn);
	if (rc)
		return rc;
	ft_strlcpy(r->team, k.team_id, sizeof r->team);
	if (!ft_usage_rate(c->auth->usage, k.key_id, k.rate_limit_per_min, &r->retry_after))
		return ft_failf(&r->err, FT_ELIMIT, "rate_limit_exceeded",
				"rate limit of %ld requests per minute exceeded; retry in %ld s",
				k.rate_limit_per_min, r->retry_after);
	r->retry_after = 0;
	return FT_OK;
}
