/*
 * apikey.c - API keys: the format, the cache, the check, the listener
 * (ft/apikey.h says what each guarantees).
 *
 * The cache: one entry per key prefix, holding what PostgreSQL said about
 * it (the stored SHA-256, the key's id, team, role, rate limit, expiry,
 * whether it is revoked), or that no key has that prefix ("absent", so a
 * client repeating an unknown key does not reach the database either). A
 * fixed array of buckets under striped mutexes; expired entries are
 * removed as they are met and by ft_apikeys_sweep().
 */
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <strings.h>
#include <time.h>

#include "ft/apikey.h"
#include "ft/clock.h"
#include "ft/log.h"
#include "ft/pg.h"

#define N_BUCKETS 4096u
#define N_STRIPES 64u
#define RECONNECT_MS 2000

static const char b62[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/* ---- the format ---- */

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

static void hash_hex(const char *key, size_t n, char out[FT_APIKEY_HASH_LEN + 1])
{
	unsigned char d[FT_SHA256_LEN];
	ft_sha256_digest(key, n, d);
	out[0] = '\\';
	out[1] = 'x';
	ft_hex_encode(d, sizeof(d), out + 2);
}

void ft_apikey_generate(char key[FT_APIKEY_LEN + 1], char prefix[FT_APIKEY_PREFIX_LEN + 1],
			char hash[FT_APIKEY_HASH_LEN + 1])
{
	char secret[FT_APIKEY_SECRET_LEN + 1];
	random_b62(prefix, FT_APIKEY_PREFIX_LEN);
	random_b62(secret, FT_APIKEY_SECRET_LEN);
	snprintf(key, FT_APIKEY_LEN + 1, "%s%s%s", FT_APIKEY_TAG, prefix, secret);
	hash_hex(key, FT_APIKEY_LEN, hash);
}

enum ft_rc ft_apikey_parse(const char *h, char prefix[FT_APIKEY_PREFIX_LEN + 1],
			   char hash[FT_APIKEY_HASH_LEN + 1], struct ft_err *err)
{
	if (!h || !*h)
		return ft_failf(err, FT_EAUTH, "missing_api_key",
				"no API key: send \"Authorization: Bearer ftk-...\"");
	if (strncasecmp(h, "Bearer ", 7) != 0)
		return ft_failf(err, FT_EAUTH, "invalid_api_key",
				"the Authorization header must be \"Bearer <key>\"");
	const char *key = h + 7;
	while (*key == ' ')
		key++;
	if (strlen(key) != FT_APIKEY_LEN || strncmp(key, FT_APIKEY_TAG, 4) != 0 ||
	    !is_b62(key + 4, FT_APIKEY_PREFIX_LEN + FT_APIKEY_SECRET_LEN))
		return ft_failf(
			err, FT_EAUTH, "invalid_api_key",
			"the API key is malformed (expected ftk- and 44 letters or digits)");
	memcpy(prefix, key + 4, FT_APIKEY_PREFIX_LEN);
	prefix[FT_APIKEY_PREFIX_LEN] = 0;
	hash_hex(key, FT_APIKEY_LEN, hash);
	return FT_OK;
}

/* ---- the cache ---- */

struct kc_entry {
	struct kc_entry *next;
	char prefix[FT_APIKEY_PREFIX_LEN + 1];
	bool found, stale;
	uint64_t loaded_ms;
	struct ft_apikey_info info;
};

struct ft_apikeys {
	uint64_t ttl_ms;
	size_t max_entries;
	size_t n_entries; /* atomic */
	uint64_t gen; /* atomic; bumped by every invalidation */
	pthread_mutex_t mu[N_STRIPES];
	struct kc_entry *buckets[N_BUCKETS];
};

static uint32_t hash_prefix(const char *s)
{
	uint32_t h = 2166136261u; /* FNV-1a */
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h;
}

struct ft_apikeys *ft_apikeys_new(uint64_t ttl_ms, size_t max_entries)
{
	struct ft_apikeys *kc = ft_xcalloc(1, sizeof(*kc));
	kc->ttl_ms = ttl_ms;
	kc->max_entries = max_entries;
	for (size_t i = 0; i < N_STRIPES; i++)
		pthread_mutex_init(&kc->mu[i], NULL);
	return kc;
}

void ft_apikeys_free(struct ft_apikeys *kc)
{
	if (!kc)
		return;
	for (size_t b = 0; b < N_BUCKETS; b++) {
		for (struct kc_entry *e = kc->buckets[b], *n; e; e = n) {
			n = e->next;
			free(e);
		}
	}
	for (size_t i = 0; i < N_STRIPES; i++)
		pthread_mutex_destroy(&kc->mu[i]);
	free(kc);
}

uint64_t ft_apikeys_ttl_ms(const struct ft_apikeys *kc)
{
	return kc->ttl_ms;
}

static bool fresh(const struct ft_apikeys *kc, const struct kc_entry *e, uint64_t now)
{
	return !e->stale && now - e->loaded_ms < kc->ttl_ms;
}

/* Unlink and free the entries of bucket b that are no longer fresh
 * (stripe lock held). */
static void prune_bucket(struct ft_apikeys *kc, uint32_t b, uint64_t now)
{
	for (struct kc_entry **pp = &kc->buckets[b]; *pp;) {
		struct kc_entry *e = *pp;
		if (fresh(kc, e, now)) {
			pp = &e->next;
			continue;
		}
		*pp = e->next;
		free(e);
		__atomic_sub_fetch(&kc->n_entries, 1, __ATOMIC_RELAXED);
	}
}

enum ft_apikey_hit ft_apikeys_get(struct ft_apikeys *kc, const char *prefix,
				  struct ft_apikey_info *out, uint64_t *gen)
{
	*gen = __atomic_load_n(&kc->gen, __ATOMIC_ACQUIRE);
	if (!kc->ttl_ms)
		return FT_APIKEY_MISS;
	uint32_t b = hash_prefix(prefix) % N_BUCKETS;
	uint64_t now = ft_time_mono_ms();
	enum ft_apikey_hit res = FT_APIKEY_MISS;
	pthread_mutex_lock(&kc->mu[b % N_STRIPES]);
	for (struct kc_entry *e = kc->buckets[b]; e; e = e->next) {
		if (strcmp(e->prefix, prefix) != 0)
			continue;
		if (fresh(kc, e, now)) {
			res = e->found ? FT_APIKEY_FOUND : FT_APIKEY_ABSENT;
			if (e->found)
				*out = e->info;
		}
		break;
	}
	pthread_mutex_unlock(&kc->mu[b % N_STRIPES]);
	return res;
}

void ft_apikeys_put(struct ft_apikeys *kc, const char *prefix, uint64_t gen,
		    const struct ft_apikey_info *info)
{
	if (!kc->ttl_ms)
		return;
	uint32_t b = hash_prefix(prefix) % N_BUCKETS;
	uint64_t now = ft_time_mono_ms();
	pthread_mutex_lock(&kc->mu[b % N_STRIPES]);
	/* Under the stripe lock, an invalidation of this prefix either came
	 * before (the generation moved: do not store what may be stale) or
	 * comes after (and will find the entry). */
	if (__atomic_load_n(&kc->gen, __ATOMIC_ACQUIRE) != gen)
		goto unlock;
	prune_bucket(kc, b, now);
	struct kc_entry *e = NULL;
	for (e = kc->buckets[b]; e; e = e->next)
		if (strcmp(e->prefix, prefix) == 0)
			break;
	if (!e) {
		if (__atomic_load_n(&kc->n_entries, __ATOMIC_RELAXED) >= kc->max_entries)
			goto unlock;
		e = ft_xcalloc(1, sizeof(*e));
		ft_strlcpy(e->prefix, prefix, sizeof(e->prefix));
		e->next = kc->buckets[b];
		kc->buckets[b] = e;
		__atomic_add_fetch(&kc->n_entries, 1, __ATOMIC_RELAXED);
	}
	e->found = info != NULL;
	if (info)
		e->info = *info;
	else
		memset(&e->info, 0, sizeof(e->info));
	e->stale = false;
	e->loaded_ms = now;
unlock:
	pthread_mutex_unlock(&kc->mu[b % N_STRIPES]);
}

void ft_apikeys_invalidate(struct ft_apikeys *kc, const char *prefix)
{
	uint32_t b = hash_prefix(prefix) % N_BUCKETS;
	pthread_mutex_lock(&kc->mu[b % N_STRIPES]);
	__atomic_add_fetch(&kc->gen, 1, __ATOMIC_ACQ_REL);
	for (struct kc_entry *e = kc->buckets[b]; e; e = e->next)
		if (strcmp(e->prefix, prefix) == 0)
			e->stale = true;
	pthread_mutex_unlock(&kc->mu[b % N_STRIPES]);
}

void ft_apikeys_invalidate_all(struct ft_apikeys *kc)
{
	for (uint32_t s = 0; s < N_STRIPES; s++)
		pthread_mutex_lock(&kc->mu[s]);
	__atomic_add_fetch(&kc->gen, 1, __ATOMIC_ACQ_REL);
	for (uint32_t b = 0; b < N_BUCKETS; b++)
		for (struct kc_entry *e = kc->buckets[b]; e; e = e->next)
			e->stale = true;
	for (uint32_t s = N_STRIPES; s-- > 0;)
		pthread_mutex_unlock(&kc->mu[s]);
}

size_t ft_apikeys_sweep(struct ft_apikeys *kc)
{
	uint64_t now = ft_time_mono_ms();
	for (uint32_t b = 0; b < N_BUCKETS; b++) {
		pthread_mutex_lock(&kc->mu[b % N_STRIPES]);
		prune_bucket(kc, b, now);
		pthread_mutex_unlock(&kc->mu[b % N_STRIPES]);
	}
	return __atomic_load_n(&kc->n_entries, __ATOMIC_RELAXED);
}

/* ---- verifying ---- */

/* What PostgreSQL says about prefix: *found false when no key has it. */
static enum ft_rc key_load(PGconn *c, const char *prefix, struct ft_apikey_info *info, bool *found,
			   struct ft_err *err)
{
	const char *p[] = { prefix };
	PGresult *res = ft_pg_exec_prepared(
		c, err, "ft_auth_key",
		"SELECT id, team_id, key_hash, role, rate_limit_per_min, revoked_at IS NOT NULL, "
		"coalesce(extract(epoch from expires_at)::bigint, 0) "
		"FROM api_keys WHERE prefix = $1",
		1, p);
	if (!res)
		return err->rc;
	*found = PQntuples(res) == 1;
	if (*found) {
		memset(info, 0, sizeof(*info));
		ft_strlcpy(info->key_id, PQgetvalue(res, 0, 0), sizeof(info->key_id));
		ft_strlcpy(info->team_id, PQgetvalue(res, 0, 1), sizeof(info->team_id));
		ft_strlcpy(info->hash, PQgetvalue(res, 0, 2), sizeof(info->hash));
		ft_strlcpy(info->role, PQgetvalue(res, 0, 3), sizeof(info->role));
		info->rate_limit_per_min = strtol(PQgetvalue(res, 0, 4), NULL, 10);
		info->revoked = PQgetvalue(res, 0, 5)[0] == 't';
		info->expires_at = strtoll(PQgetvalue(res, 0, 6), NULL, 10);
	}
	PQclear(res);
	return FT_OK;
}

enum ft_rc ft_apikey_verify(struct ft_apikeys *kc, const char *authorization, ft_apikey_db_fn db,
			    void *db_ctx, struct ft_apikey_info *out, struct ft_err *err)
{
	char prefix[FT_APIKEY_PREFIX_LEN + 1], hash[FT_APIKEY_HASH_LEN + 1];
	memset(out, 0, sizeof(*out));
	if (ft_apikey_parse(authorization, prefix, hash, err))
		return err->rc;
	struct ft_apikey_info k;
	uint64_t gen;
	enum ft_apikey_hit hit = ft_apikeys_get(kc, prefix, &k, &gen);
	if (hit == FT_APIKEY_MISS) {
		bool found = false;
		PGconn *c = db(db_ctx, err);
		if (!c || key_load(c, prefix, &k, &found, err))
			return err->rc ? err->rc : FT_EUNAVAIL;
		ft_apikeys_put(kc, prefix, gen, found ? &k : NULL);
		hit = found ? FT_APIKEY_FOUND : FT_APIKEY_ABSENT;
	}
	if (hit != FT_APIKEY_FOUND || strlen(k.hash) != FT_APIKEY_HASH_LEN ||
	    !ft_ct_equal(k.hash, hash, FT_APIKEY_HASH_LEN))
		return ft_failf(err, FT_EAUTH, "invalid_api_key", "the API key is not valid");
	*out = k;
	if (k.revoked)
		return ft_failf(err, FT_EAUTH, "key_revoked", "the API key was revoked");
	if (k.expires_at && (long long)time(NULL) >= k.expires_at)
		return ft_failf(err, FT_EAUTH, "key_expired", "the API key has expired");
	return FT_OK;
}

/* ---- the listener ---- */

struct ft_apikey_listener {
	struct ft_apikeys *kc;
	char *conninfo, *who;
	PGconn *conn;
	uint64_t retry_ms;
	bool warned;
};

struct ft_apikey_listener *ft_apikey_listener_new(const char *conninfo, struct ft_apikeys *kc,
						  const char *who)
{
	struct ft_apikey_listener *l = ft_xcalloc(1, sizeof(*l));
	l->kc = kc;
	l->conninfo = ft_xstrdup(conninfo);
	l->who = ft_xstrdup(who);
	return l;
}

void ft_apikey_listener_free(struct ft_apikey_listener *l)
{
	if (!l)
		return;
	if (l->conn)
		PQfinish(l->conn);
	free(l->conninfo);
	free(l->who);
	free(l);
}

bool ft_apikey_listener_up(const struct ft_apikey_listener *l)
{
	return l->conn != NULL;
}

static void listen_close(struct ft_apikey_listener *l)
{
	if (!l->conn)
		return;
	PQfinish(l->conn);
	l->conn = NULL;
	l->retry_ms = ft_time_mono_ms() + RECONNECT_MS;
	/* Notifications may be missed until the next LISTEN: trust nothing. */
	ft_apikeys_invalidate_all(l->kc);
}

static void listen_open(struct ft_apikey_listener *l)
{
	char app[96];
	snprintf(app, sizeof(app), "%s key listener", l->who);
	const char *const kw[] = { "dbname", "connect_timeout", "application_name", NULL };
	const char *const val[] = { l->conninfo, "5", app, NULL };
	l->conn = PQconnectdbParams(kw, val, 1);
	PGresult *r = NULL;
	if (PQstatus(l->conn) == CONNECTION_OK)
		r = PQexec(l->conn, "LISTEN " FT_APIKEY_CHANNEL);
	bool ok = r && PQresultStatus(r) == PGRES_COMMAND_OK;
	PQclear(r);
	if (ok) {
		if (l->warned)
			ft_logf(FT_LOG_INFO, NULL, NULL, "key listener: listening again");
		l->warned = false;
		/* Changes made while nobody listened are unknown. */
		ft_apikeys_invalidate_all(l->kc);
		return;
	}
	if (!l->warned)
		ft_logf(FT_LOG_WARN, NULL, NULL,
			"key listener: cannot LISTEN (%s); cached keys live at most %" PRIu64
			" s meanwhile",
			l->conn ? PQerrorMessage(l->conn) : "out of memory", l->kc->ttl_ms / 1000);
	l->warned = true;
	PQfinish(l->conn);
	l->conn = NULL;
	l->retry_ms = ft_time_mono_ms() + RECONNECT_MS;
}

/* Apply every notification that has arrived. */
static void listen_drain(struct ft_apikey_listener *l)
{
	if (!PQconsumeInput(l->conn)) {
		ft_logf(FT_LOG_WARN, NULL, NULL, "key listener: %s", PQerrorMessage(l->conn));
		l->warned = true;
		listen_close(l);
		return;
	}
	PGnotify *n;
	while ((n = PQnotifies(l->conn))) {
		if (strcmp(n->extra, "*") == 0)
			ft_apikeys_invalidate_all(l->kc);
		else
			ft_apikeys_invalidate(l->kc, n->extra);
		PQfreemem(n);
	}
}

void ft_apikey_listener_poll(struct ft_apikey_listener *l, int timeout_ms)
{
	if (!l->conn && ft_time_mono_ms() >= l->retry_ms)
		listen_open(l);
	struct pollfd pfd = { .fd = l->conn ? PQsocket(l->conn) : -1, .events = POLLIN };
	int rc = poll(&pfd, 1, timeout_ms);
	if (l->conn && rc > 0)
		listen_drain(l);
}
