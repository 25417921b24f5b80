/*
 * ratelimit.c - what keys and client addresses are doing, in memory, so
 * that a request costs no round trip: each key's requests in the current
 * minute, uploads in flight per key and per address, and when each key was
 * last used.
 *
 * Rate: a fixed one-minute window per key. Each ft-api counts its own
 * requests (local) and once a second the background thread (background.c)
 * adds what it counted since the last time to Redis, one EVAL for every key
 * active in the window:
 *
 *   key                         value                              ttl
 *   ft:rl:<key id>:<unix min>   INCRBY: the count of every ft-api  61 s
 *
 * and keeps what the others counted (remote = the total less what this
 * process pushed). A request is refused (429, Retry-After: the seconds left
 * in the minute) when local + remote exceeds rate_limit_per_min, so the
 * limit holds across processes give or take one second of the other
 * processes' requests. Without Redis each ft-api enforces the limit on its
 * own count (a warning at most every 10 s): losing Redis neither lets
 * everything through nor takes the API down.
 *
 * Uploads: POST /v1/files holds a slot of its key and one of its client
 * address from the first call to the end of the request, however it ends;
 * over upload_max_per_key or upload_max_per_ip it is refused with 429
 * before its body is read.
 *
 * Last use: api_keys.last_used_at is written by the background thread
 * (one UPDATE a second at most, for every key due): within a second of a
 * key's first use in this process, then at most every 30 s while it is
 * used, and by the database at most once a minute per key (the UPDATE's
 * own condition); never by a request.
 *
 * Entries live in a fixed array of buckets under striped mutexes, keyed by
 * "k:<key id>" or "ip:<address>"; request threads only add entries, and
 * only the background thread frees idle ones, so it may keep pointers to
 * entries between its own locks.
 */
#include <time.h>

#include "api_int.h"

#define N_BUCKETS 4096u
#define N_STRIPES 64u
#define SYNC_BATCH 256
#define IDLE_FREE_MS (5u * 60u * 1000u)
#define FLUSH_EVERY_MS 30000u /* last_used_at: at most this often per key */

struct use {
	struct use *next;
	char name[80]; /* "k:<key id>" or "ip:<address>" */
	long long minute; /* unix minute of the counts below */
	long local, pushed, remote;
	int inflight; /* uploads */
	uint64_t used_ms, flushed_ms; /* monotonic: last request, last last_used_at write */
};

struct api_usage {
	pthread_mutex_t mu[N_STRIPES];
	struct use *buckets[N_BUCKETS];
	/* the background thread's own */
	char *redis_url;
	struct ft_redis *redis;
	uint64_t redis_retry_ms;
	uint64_t last_warn_ms;
};

static const char sync_lua[] = "local out = {}\n"
			       "for i, k in ipairs(KEYS) do\n"
			       "  out[i] = redis.call('INCRBY', k, ARGV[i])\n"
			       "  redis.call('EXPIRE', k, 61)\n"
			       "end\n"
			       "return out\n";

static uint32_t hash_name(const char *s)
{
	uint32_t h = 2166136261u; /* FNV-1a */
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h;
}

struct api_usage *api_usage_new(const char *redis_url)
{
	struct api_usage *u = ft_xcalloc(1, sizeof(*u));
	for (size_t i = 0; i < N_STRIPES; i++)
		pthread_mutex_init(&u->mu[i], NULL);
	if (redis_url && *redis_url)
		u->redis_url = ft_xstrdup(redis_url);
	return u;
}

void api_usage_free(struct api_usage *u)
{
	if (!u)
		return;
	for (size_t b = 0; b < N_BUCKETS; b++) {
		for (struct use *e = u->buckets[b], *n; e; e = n) {
			n = e->next;
			free(e);
		}
	}
	for (size_t i = 0; i < N_STRIPES; i++)
		pthread_mutex_destroy(&u->mu[i]);
	ft_redis_free(u->redis);
	free(u->redis_url);
	free(u);
}

/* The entry named name, created when missing; returns with its stripe
 * locked (*stripe says which). */
static struct use *use_lock(struct api_usage *u, const char *name, unsigned *stripe)
{
	uint32_t b = hash_name(name) % N_BUCKETS;
	*stripe = b % N_STRIPES;
	pthread_mutex_lock(&u->mu[*stripe]);
	struct use *e;
	for (e = u->buckets[b]; e; e = e->next)
		if (strcmp(e->name, name) == 0)
			return e;
	e = ft_xcalloc(1, sizeof(*e));
	ft_strlcpy(e->name, name, sizeof(e->name));
	e->next = u->buckets[b];
	u->buckets[b] = e;
	return e;
}

enum ft_rc api_rate_check(struct api_req *r, long per_min)
{
	struct api_usage *u = r->ctx->usage;
	char name[80];
	unsigned s;
	time_t now = time(NULL);
	long long minute = (long long)now / 60;
	snprintf(name, sizeof(name), "k:%s", r->key_id);
	struct use *e = use_lock(u, name, &s);
	if (e->minute != minute) {
		e->minute = minute;
		e->local = e->pushed = e->remote = 0;
	}
	long count = ++e->local + e->remote;
	e->used_ms = ft_time_mono_ms();
	pthread_mutex_unlock(&u->mu[s]);
	if (count > per_min) {
		r->retry_after = 60 - (long)(now % 60);
		return ft_failf(&r->err, FT_ELIMIT, "rate_limit_exceeded",
				"rate limit of %ld requests per minute exceeded; retry in %ld s",
				per_min, r->retry_after);
	}
	return FT_OK;
}

/* One more upload for name if it has fewer than max; false when full. */
static bool slot_take(struct api_usage *u, const char *name, long max)
{
	unsigned s;
	struct use *e = use_lock(u, name, &s);
	bool ok = e->inflight < max;
	if (ok)
		e->inflight++;
	pthread_mutex_unlock(&u->mu[s]);
	return ok;
}

static void slot_give(struct api_usage *u, const char *name)
{
	unsigned s;
	struct use *e = use_lock(u, name, &s);
	FT_ASSERT(e->inflight > 0);
	e->inflight--;
	pthread_mutex_unlock(&u->mu[s]);
}

enum ft_rc api_upload_slots_take(struct api_req *r)
{
	struct api_usage *u = r->ctx->usage;
	char kname[80], iname[80];
	snprintf(kname, sizeof(kname), "k:%s", r->key_id);
	snprintf(iname, sizeof(iname), "ip:%s", r->addr);
	if (!slot_take(u, kname, r->ctx->upload_max_per_key)) {
		r->retry_after = 1;
		return ft_failf(&r->err, FT_ELIMIT, "too_many_uploads",
				"this key already has %ld uploads in progress; wait for one to "
				"finish",
				r->ctx->upload_max_per_key);
	}
	if (!slot_take(u, iname, r->ctx->upload_max_per_ip)) {
		slot_give(u, kname);
		r->retry_after = 1;
		return ft_failf(&r->err, FT_ELIMIT, "too_many_uploads",
				"this address already has %ld uploads in progress; wait for one "
				"to finish",
				r->ctx->upload_max_per_ip);
	}
	r->upload_slots = true;
	return FT_OK;
}

void api_upload_slots_give(struct api_req *r)
{
	if (!r->upload_slots)
		return;
	char name[80];
	snprintf(name, sizeof(name), "k:%s", r->key_id);
	slot_give(r->ctx->usage, name);
	snprintf(name, sizeof(name), "ip:%s", r->addr);
	slot_give(r->ctx->usage, name);
	r->upload_slots = false;
}

/* ---- the background thread's side ---------------------------------------- */

static void warn_limited(struct api_usage *u, const char *what, const struct ft_err *e)
{
	uint64_t now = ft_time_mono_ms();
	if (u->last_warn_ms && now - u->last_warn_ms < 10000)
		return;
	u->last_warn_ms = now;
	ft_logf(FT_LOG_WARN, "api", NULL,
		"rate limiter: %s (%s); each ft-api limits on its own count meanwhile", what,
		e->msg);
}

/* Free entries idle for a while (stripe lock held). */
static void gc_bucket(struct api_usage *u, uint32_t b, uint64_t now_ms, long long minute)
{
	for (struct use **pp = &u->buckets[b]; *pp;) {
		struct use *e = *pp;
		bool idle = e->inflight == 0 && e->minute < minute &&
			    now_ms - e->used_ms > IDLE_FREE_MS && e->used_ms <= e->flushed_ms;
		if (strncmp(e->name, "ip:", 3) == 0)
			idle = e->inflight == 0;
		if (!idle) {
			pp = &e->next;
			continue;
		}
		*pp = e->next;
		free(e);
	}
}

struct pending {
	struct use *e;
	long delta;
	long long minute;
};

static void push_batch(struct api_usage *u, struct pending *p, int n)
{
	const char *argv[3 + 2 * SYNC_BATCH];
	char keys[SYNC_BATCH][FT_ID_MAX + 48], deltas[SYNC_BATCH][24], nkeys[16];
	struct ft_err err;
	ft_err_clear(&err);
	snprintf(nkeys, sizeof(nkeys), "%d", n);
	argv[0] = "EVAL";
	argv[1] = sync_lua;
	argv[2] = nkeys;
	for (int i = 0; i < n; i++) {
		snprintf(keys[i], sizeof(keys[i]), "ft:rl:%s:%lld", p[i].e->name + 2, p[i].minute);
		snprintf(deltas[i], sizeof(deltas[i]), "%ld", p[i].delta);
		argv[3 + i] = keys[i];
		argv[3 + n + i] = deltas[i];
	}
	redisReply *rep = ft_redis_cmdargv(u->redis, 0, &err, 3 + 2 * n, argv, NULL);
	if (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements != (size_t)n) {
		if (!ft_err_is_set(&err))
			ft_failf(&err, FT_EREDIS, NULL,
				 "unexpected reply to the rate-limit script");
		warn_limited(u, "Redis unavailable", &err);
		freeReplyObject(rep);
		ft_redis_free(u->redis);
		u->redis = NULL;
		u->redis_retry_ms = ft_time_mono_ms() + 2000;
		return;
	}
	for (int i = 0; i < n; i++) {
		redisReply *x = rep->element[i];
		if (x->type != REDIS_REPLY_INTEGER)
			continue;
		uint32_t b = hash_name(p[i].e->name) % N_BUCKETS;
		pthread_mutex_lock(&u->mu[b % N_STRIPES]);
		if (p[i].e->minute == p[i].minute) {
			p[i].e->pushed += p[i].delta;
			long others = (long)x->integer - p[i].e->pushed;
			p[i].e->remote = others > 0 ? others : 0;
		}
		pthread_mutex_unlock(&u->mu[b % N_STRIPES]);
	}
	freeReplyObject(rep);
}

void api_rate_sync(struct api_ctx *ctx)
{
	struct api_usage *u = ctx->usage;
	long long minute = (long long)time(NULL) / 60;
	uint64_t now_ms = ft_time_mono_ms();
	bool redis = u->redis_url != NULL;
	if (redis && !u->redis && now_ms >= u->redis_retry_ms) {
		struct ft_err err;
		ft_err_clear(&err);
		u->redis = ft_redis_new(u->redis_url, 500, &err);
		if (!u->redis) {
			u->redis_retry_ms = now_ms + 2000;
			warn_limited(u, "Redis unavailable", &err);
		}
	}
	struct pending p[SYNC_BATCH];
	int n = 0;
	for (uint32_t b = 0; b < N_BUCKETS; b++) {
		pthread_mutex_lock(&u->mu[b % N_STRIPES]);
		gc_bucket(u, b, now_ms, minute);
		for (struct use *e = u->buckets[b]; e && u->redis; e = e->next) {
			if (strncmp(e->name, "k:", 2) != 0 || e->minute != minute || !e->local)
				continue;
			p[n].e = e;
			p[n].minute = e->minute;
			p[n].delta = e->local - e->pushed;
			if (++n == SYNC_BATCH) {
				pthread_mutex_unlock(&u->mu[b % N_STRIPES]);
				push_batch(u, p, n);
				n = 0;
				pthread_mutex_lock(&u->mu[b % N_STRIPES]);
			}
		}
		pthread_mutex_unlock(&u->mu[b % N_STRIPES]);
	}
	if (n && u->redis)
		push_batch(u, p, n);
}

void api_usage_flush_last_used(struct api_ctx *ctx)
{
	struct api_usage *u = ctx->usage;
	struct ft_buf ids;
	uint64_t now_ms = ft_time_mono_ms();
	ft_buf_init(&ids, 16u << 20);
	size_t n = 0;
	if (ft_buf_addch(&ids, '{'))
		goto release;
	for (uint32_t b = 0; b < N_BUCKETS; b++) {
		pthread_mutex_lock(&u->mu[b % N_STRIPES]);
		for (struct use *e = u->buckets[b]; e; e = e->next) {
			if (strncmp(e->name, "k:", 2) != 0 || e->used_ms <= e->flushed_ms ||
			    (e->flushed_ms && now_ms - e->flushed_ms < FLUSH_EVERY_MS))
				continue;
			/* key ids are [a-z0-9-] (ft_id_valid): no quoting needed */
			if (ft_buf_addf(&ids, "%s%s", n ? "," : "", e->name + 2))
				break;
			e->flushed_ms = now_ms;
			n++;
		}
		pthread_mutex_unlock(&u->mu[b % N_STRIPES]);
	}
	if (!n || ft_buf_addch(&ids, '}'))
		goto release;
	struct ft_err err;
	ft_err_clear(&err);
	PGconn *db = ft_pg_pool_get(ctx->pg, 1000, &err);
	const char *p[] = { ft_buf_str(&ids) };
	if (!db ||
	    ft_pg_command(db, &err,
			  "UPDATE api_keys SET last_used_at = now() WHERE id = ANY($1::text[]) "
			  "AND (last_used_at IS NULL OR last_used_at < now() - interval "
			  "'60 seconds')",
			  1, p))
		ft_logf(FT_LOG_WARN, "api", NULL, "last_used_at not written: %s %s", err.msg,
			err.detail);
	ft_pg_pool_put(ctx->pg, db);
release:
	ft_buf_release(&ids);
}
