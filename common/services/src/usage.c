/*
 * usage.c - ft/usage.h: keys' request rates (shared through Redis), uploads
 * in flight, keys' last use. Entries live in a fixed array of buckets under
 * striped mutexes, keyed by "k:<key id>" or "ip:<address>"; request threads
 * only add entries, and only the background thread frees idle ones, so it
 * may keep pointers to entries between its own locks.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ft/buf.h"
#include "ft/clock.h"
#include "ft/common.h"
#include "ft/log.h"
#include "ft/pg.h"
#include "ft/redis.h"
#include "ft/usage.h"

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

struct ft_usage {
	pthread_mutex_t mu[N_STRIPES];
	struct use *buckets[N_BUCKETS];
	/* the background thread's own */
	char *redis_url;
	char component[16]; /* of the warnings */
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

struct ft_usage *ft_usage_new(const char *redis_url, const char *component)
{
	struct ft_usage *u = ft_xcalloc(1, sizeof(*u));
	ft_strlcpy(u->component, component, sizeof(u->component));
	for (size_t i = 0; i < N_STRIPES; i++)
		pthread_mutex_init(&u->mu[i], NULL);
	if (redis_url && *redis_url)
		u->redis_url = ft_xstrdup(redis_url);
	return u;
}

void ft_usage_free(struct ft_usage *u)
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
static struct use *use_lock(struct ft_usage *u, const char *name, unsigned *stripe)
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

bool ft_usage_rate(struct ft_usage *u, const char *key_id, long per_min, long *retry_after)
{
	char name[80];
	unsigned s;
	time_t now = time(NULL);
	long long minute = (long long)now / 60;
	snprintf(name, sizeof(name), "k:%s", key_id);
	struct use *e = use_lock(u, name, &s);
	if (e->minute != minute) {
		e->minute = minute;
		e->local = e->pushed = e->remote = 0;
	}
	long count = ++e->local + e->remote;
	e->used_ms = ft_time_mono_ms();
	pthread_mutex_unlock(&u->mu[s]);
	*retry_after = 60 - (long)(now % 60);
	return count <= per_min;
}

bool ft_usage_slot_take(struct ft_usage *u, const char *name, long max)
{
	unsigned s;
	struct use *e = use_lock(u, name, &s);
	bool ok = e->inflight < max;
	if (ok)
		e->inflight++;
	pthread_mutex_unlock(&u->mu[s]);
	return ok;
}

void ft_usage_slot_give(struct ft_usage *u, const char *name)
{
	unsigned s;
	struct use *e = use_lock(u, name, &s);
	FT_ASSERT(e->inflight > 0);
	e->inflight--;
	pthread_mutex_unlock(&u->mu[s]);
}

/* ---- the background thread's side ---------------------------------------- */

static void warn_limited(struct ft_usage *u, const char *what, const struct ft_err *e)
{
	uint64_t now = ft_time_mono_ms();
	if (u->last_warn_ms && now - u->last_warn_ms < 10000)
		return;
	u->last_warn_ms = now;
	ft_logf(FT_LOG_WARN, u->component, NULL,
		"rate limiter: %s (%s); each process limits on its own count meanwhile", what,
		e->msg);
}

/* Free entries idle for a while (stripe lock held). */
static void gc_bucket(struct ft_usage *u, uint32_t b, uint64_t now_ms, long long minute)
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

static void push_batch(struct ft_usage *u, struct pending *p, int n)
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

void ft_usage_sync(struct ft_usage *u)
{
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

void ft_usage_flush_last_used(struct ft_usage *u, struct ft_pg_pool *pg)
{
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
	PGconn *db = ft_pg_pool_get(pg, 1000, &err);
	const char *p[] = { ft_buf_str(&ids) };
	if (!db ||
	    ft_pg_command(db, &err,
			  "UPDATE api_keys SET last_used_at = now() WHERE id = ANY($1::text[]) "
			  "AND (last_used_at IS NULL OR last_used_at < now() - interval "
			  "'60 seconds')",
			  1, p))
		ft_logf(FT_LOG_WARN, u->component, NULL, "last_used_at not written: %s %s", err.msg,
			err.detail);
	ft_pg_pool_put(pg, db);
release:
	ft_buf_release(&ids);
}
