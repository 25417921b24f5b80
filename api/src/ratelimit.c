/*
 * ratelimit.c - per-key rate limits: a fixed one-minute window in Redis.
 *
 *   key                         value        ttl
 *   ft:rl:<key id>:<unix min>   INCR count   61 s (set when the count is 1)
 *
 * Over rate_limit_per_min in the current minute: 429 with Retry-After set
 * to the seconds left in the window. Redis is for motion only: when it is
 * down, requests are let through (fail open) and a warning is logged at
 * most every 10 seconds.
 */
#include <time.h>

#include "api_int.h"

struct slot {
	pthread_mutex_t mu;
	struct ft_redis *r;
	uint64_t retry_at_ms; /* do not reconnect before */
};

struct api_redis_pool {
	char *url;
	int size;
	unsigned next;
	pthread_mutex_t log_mu;
	uint64_t last_log_ms;
	struct slot slots[];
};

struct api_redis_pool *api_redis_pool_new(const char *url, int size)
{
	struct api_redis_pool *p = ft_xcalloc(1, sizeof(*p) + (size_t)size * sizeof(struct slot));
	p->url = ft_xstrdup(url);
	p->size = size;
	pthread_mutex_init(&p->log_mu, NULL);
	for (int i = 0; i < size; i++)
		pthread_mutex_init(&p->slots[i].mu, NULL);
	return p;
}

void api_redis_pool_free(struct api_redis_pool *p)
{
	if (!p)
		return;
	for (int i = 0; i < p->size; i++) {
		ft_redis_free(p->slots[i].r);
		pthread_mutex_destroy(&p->slots[i].mu);
	}
	pthread_mutex_destroy(&p->log_mu);
	free(p->url);
	free(p);
}

static void warn_open(struct api_redis_pool *p, const struct ft_err *e)
{
	uint64_t now = ft_time_mono_ms();
	pthread_mutex_lock(&p->log_mu);
	if (!p->last_log_ms || now - p->last_log_ms >= 10000) {
		p->last_log_ms = now;
		ft_logf(FT_LOG_WARN, "api", NULL,
			"rate limiter: Redis unavailable, letting requests through: %s", e->msg);
	}
	pthread_mutex_unlock(&p->log_mu);
}

enum ft_rc api_rate_check(struct api_req *r, long per_min)
{
	struct api_redis_pool *p = r->ctx->redis;
	if (!p)
		return FT_OK;
	unsigned i = __atomic_fetch_add(&p->next, 1, __ATOMIC_RELAXED) % (unsigned)p->size;
	struct slot *s = &p->slots[i];
	struct ft_err e;
	long long count = -1;
	time_t now = time(NULL);
	ft_err_clear(&e);
	pthread_mutex_lock(&s->mu);
	if (!s->r && ft_time_mono_ms() >= s->retry_at_ms) {
		s->r = ft_redis_new(p->url, 200, &e);
		if (!s->r)
			s->retry_at_ms = ft_time_mono_ms() + 2000;
	}
	if (s->r) {
		char key[FT_ID_MAX + 48];
		snprintf(key, sizeof(key), "ft:rl:%s:%lld", r->key_id, (long long)(now / 60));
		redisReply *rep = ft_redis_cmd(s->r, 0, &e, "INCR %s", key);
		if (rep && rep->type == REDIS_REPLY_INTEGER) {
			count = rep->integer;
			if (count == 1) {
				redisReply *x =
					ft_redis_cmd(s->r, FT_REDIS_RETRY, &e, "EXPIRE %s 61", key);
				freeReplyObject(x);
			}
		}
		freeReplyObject(rep);
		if (count < 0 && !ft_err_is_set(&e))
			ft_failf(&e, FT_EREDIS, NULL, "unexpected reply to INCR");
	} else if (!ft_err_is_set(&e)) {
		ft_failf(&e, FT_EREDIS, NULL, "not connected (retrying every 2 s)");
	}
	pthread_mutex_unlock(&s->mu);
	if (count < 0) {
		warn_open(p, &e);
		return FT_OK;
	}
	if (count > per_min) {
		r->retry_after = 60 - (long)(now % 60);
		return ft_failf(&r->err, FT_ELIMIT, "rate_limit_exceeded",
				"rate limit of %ld requests per minute exceeded; retry in %ld s",
				per_min, r->retry_after);
	}
	return FT_OK;
}
