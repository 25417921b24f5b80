/*
 * reqlog.c - the request log's writer: one record per answered request
 * (chat and completions, streamed or not, errors and disconnects too),
 * fields as common/services ft/reqlog.h lists them, onto the Redis stream
 * ft:requests (ft/wire.h) without the answer ever waiting on Redis.
 *
 * A record (struct srv_rec) is made when a generation route has let its
 * caller in, and is filled by whoever learns something: the HTTP side (the
 * model asked for, the status sent, the error's code), the generation (the
 * token counts the usage showed, time to first token, the finish reason,
 * the texts). Both hold a reference; the last to let go encodes it and
 * pushes it onto the queue:
 *
 *   request threads --push--> [ bounded queue ] --sender thread--> XADD ft:requests
 *
 * The queue holds at most max_records records and max_bytes bytes; when a
 * push would pass either, the oldest records are dropped and counted
 * (ftserve_request_log_dropped_total). The sender takes the oldest record,
 * XADDs it and only then forgets it; when Redis is away it puts the record
 * back and retries with a backoff (0.1 s doubling to 2 s), so records wait
 * in memory until Redis returns. An XADD retried after a lost reply can
 * add a record twice: the scheduler stores it once, by id. At shutdown the
 * sender gets a few seconds to empty the queue.
 */
#include "ft/clock.h"
#include "ft/crypto.h"
#include "ft/log.h"
#include "ft/redis.h"
#include "ft/reqlog.h"
#include "ft/wire.h"
#include "serve_int.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 2000

struct srv_reqlog {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	char *url;
	char **ring; /* max_records slots; head is the oldest */
	size_t cap, head, n, bytes, max_bytes;
	uint64_t sent, dropped;
	bool redis_up;
	bool stop;
	uint64_t flush_deadline_ms;
	pthread_t thread;
	bool started;
};

static void drop_oldest(struct srv_reqlog *q)
{
	char *old = q->ring[q->head];
	q->bytes -= strlen(old);
	free(old);
	q->head = (q->head + 1) % q->cap;
	q->n--;
	q->dropped++;
}

/* Push rec (owned) as the newest; the oldest go when the bounds say so. */
static void push(struct srv_reqlog *q, char *rec)
{
	size_t len = strlen(rec);
	pthread_mutex_lock(&q->mu);
	if (len > q->max_bytes) { /* could never fit */
		q->dropped++;
		free(rec);
		pthread_mutex_unlock(&q->mu);
		return;
	}
	while (q->n && (q->n == q->cap || q->bytes + len > q->max_bytes))
		drop_oldest(q);
	q->ring[(q->head + q->n) % q->cap] = rec;
	q->n++;
	q->bytes += len;
	pthread_cond_signal(&q->cv);
	pthread_mutex_unlock(&q->mu);
}

/* Put back, as the oldest, a record the sender could not send (unless the
 * queue filled meanwhile: then it is the one to drop). */
static void push_front(struct srv_reqlog *q, char *rec)
{
	size_t len = strlen(rec);
	if (q->n == q->cap || q->bytes + len > q->max_bytes) {
		free(rec);
		q->dropped++;
		return;
	}
	q->head = (q->head + q->cap - 1) % q->cap;
	q->ring[q->head] = rec;
	q->n++;
	q->bytes += len;
}

static void wait_ms(struct srv_reqlog *q, uint64_t ms)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += (time_t)(ms / 1000);
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L)
		ts.tv_sec++, ts.tv_nsec -= 1000000000L;
	pthread_cond_timedwait(&q->cv, &q->mu, &ts);
}

static bool xadd(struct srv_reqlog *q, struct ft_redis **r, const char *rec, bool *warned)
{
	struct ft_err err;
	ft_err_clear(&err);
	if (!*r)
		*r = ft_redis_new(q->url, 2000, &err);
	redisReply *rep = NULL;
	if (*r)
		rep = ft_redis_cmd(*r, FT_REDIS_RETRY, &err, "XADD %s * %s %s", FT_WIRE_REQUESTS,
				   FT_WIRE_REQUESTS_FIELD, rec);
	if (rep) {
		freeReplyObject(rep);
		if (*warned)
			ft_logf(FT_LOG_INFO, "serve", NULL, "request log: Redis is back");
		*warned = false;
		return true;
	}
	if (!*warned)
		ft_logf(FT_LOG_WARN, "serve", NULL,
			"request log: cannot XADD (%s); records wait in memory", err.msg);
	*warned = true;
	if (*r && err.rc != FT_EREDIS) { /* a broken connection: start afresh */
		ft_redis_free(*r);
		*r = NULL;
	}
	return false;
}

static void *sender_main(void *arg)
{
	struct srv_reqlog *q = arg;
	struct ft_redis *r = NULL;
	bool warned = false;
	uint64_t backoff = BACKOFF_MIN_MS;
	pthread_mutex_lock(&q->mu);
	for (;;) {
		if (q->stop && (q->n == 0 || ft_time_mono_ms() >= q->flush_deadline_ms))
			break;
		if (q->n == 0) {
			wait_ms(q, 1000);
			continue;
		}
		char *rec = q->ring[q->head];
		q->head = (q->head + 1) % q->cap;
		q->n--;
		q->bytes -= strlen(rec);
		pthread_mutex_unlock(&q->mu);
		bool ok = xadd(q, &r, rec, &warned);
		pthread_mutex_lock(&q->mu);
		q->redis_up = ok;
		if (ok) {
			free(rec);
			q->sent++;
			backoff = BACKOFF_MIN_MS;
			continue;
		}
		push_front(q, rec);
		if (!q->stop || ft_time_mono_ms() < q->flush_deadline_ms)
			wait_ms(q, backoff);
		backoff = FT_MIN(backoff * 2, BACKOFF_MAX_MS);
	}
	size_t left = q->n;
	pthread_mutex_unlock(&q->mu);
	if (left)
		ft_logf(FT_LOG_WARN, "serve", NULL, "request log: %zu records not sent at exit",
			left);
	ft_redis_free(r);
	return NULL;
}

struct srv_reqlog *srv_reqlog_new(const char *redis_url, size_t max_records, size_t max_bytes)
{
	struct srv_reqlog *q = ft_xcalloc(1, sizeof(*q));
	pthread_mutex_init(&q->mu, NULL);
	pthread_cond_init(&q->cv, NULL);
	q->url = ft_xstrdup(redis_url);
	q->cap = max_records;
	q->max_bytes = max_bytes;
	q->ring = ft_xcalloc(max_records, sizeof(*q->ring));
	if (pthread_create(&q->thread, NULL, sender_main, q) == 0)
		q->started = true;
	else
		ft_logf(FT_LOG_ERROR, "serve", NULL, "request log: no sender thread");
	return q;
}

void srv_reqlog_free(struct srv_reqlog *q, int flush_ms)
{
	if (!q)
		return;
	pthread_mutex_lock(&q->mu);
	q->stop = true;
	q->flush_deadline_ms = ft_time_mono_ms() + (uint64_t)flush_ms;
	pthread_cond_broadcast(&q->cv);
	pthread_mutex_unlock(&q->mu);
	if (q->started)
		pthread_join(q->thread, NULL);
	while (q->n) {
		free(q->ring[q->head]);
		q->head = (q->head + 1) % q->cap;
		q->n--;
	}
	free(q->ring);
	free(q->url);
	pthread_cond_destroy(&q->cv);
	pthread_mutex_destroy(&q->mu);
	free(q);
}

void srv_reqlog_stats(struct srv_reqlog *q, struct srv_reqlog_stats *out)
{
	pthread_mutex_lock(&q->mu);
	out->depth = q->n;
	out->bytes = q->bytes;
	out->sent = q->sent;
	out->dropped = q->dropped;
	out->redis_up = q->redis_up;
	pthread_mutex_unlock(&q->mu);
}

/* ---- records ---- */

struct srv_rec *srv_rec_new(struct srv_req *r, bool chat)
{
	struct srv_rec *rec = ft_xcalloc(1, sizeof(*rec));
	pthread_mutex_init(&rec->mu, NULL);
	rec->refs = 1;
	rec->ctx = r->ctx;
	rec->chat = chat;
	rec->t0_ns = r->t0_ns;
	rec->created_ms = r->created_ms;
	rec->ttft_ms = -1;
	ft_strlcpy(rec->team, r->team, sizeof rec->team);
	char rid[FT_ID_MAX];
	ft_id_new(FT_ID_EVENT, rid);
	snprintf(rec->id, sizeof rec->id, "%s-%s", chat ? "chatcmpl" : "cmpl",
		 rid + sizeof(FT_ID_EVENT)); /* the random part */
	return rec;
}

bool srv_rec_embed(const struct srv_rec *rec)
{
	if (!rec->ctx->log || rec->ctx->embed_percent <= 0)
		return false;
	unsigned char d[FT_SHA256_LEN];
	ft_sha256_digest(rec->id, strlen(rec->id), d);
	return (unsigned)(d[0] | d[1] << 8) % 100u < (unsigned)rec->ctx->embed_percent;
}

void srv_rec_ref(struct srv_rec *rec)
{
	pthread_mutex_lock(&rec->mu);
	rec->refs++;
	pthread_mutex_unlock(&rec->mu);
}

/* The record as ft/reqlog.h's table says, onto the queue. */
static void send_rec(struct srv_rec *rec)
{
	struct srv_ctx *c = rec->ctx;
	if (!c->log)
		return;
	uint64_t end = rec->end_ns ? rec->end_ns : ft_time_mono_ns();
	int status = rec->status ? rec->status : 499;
	if (rec->client_gone && !rec->stream)
		status = 499; /* nothing reached the client */
	struct ft_reqlog l;
	ft_reqlog_init(&l);
	ft_reqlog_set_str(&l, FT_RL_ID, rec->id);
	ft_reqlog_set_int(&l, FT_RL_CREATED_AT, rec->created_ms);
	ft_reqlog_set_str(&l, FT_RL_KIND, rec->chat ? "chat" : "completion");
	ft_reqlog_set_bool(&l, FT_RL_STREAM, rec->stream);
	ft_reqlog_set_str(&l, FT_RL_TEAM_ID, rec->team[0] ? rec->team : NULL);
	ft_reqlog_set_str(&l, FT_RL_MODEL, rec->model);
	ft_reqlog_set_str(&l, FT_RL_BASE_MODEL, c->model_name);
	ft_reqlog_set_str(&l, FT_RL_ADAPTER, rec->adapter ? rec->meta.name : NULL);
	ft_reqlog_set_str(&l, FT_RL_VERSION_ID, rec->meta.version[0] ? rec->meta.version : NULL);
	ft_reqlog_set_str(&l, FT_RL_DEPLOYMENT_ID,
			  rec->meta.deployment[0] ? rec->meta.deployment : NULL);
	ft_reqlog_set_str(&l, FT_RL_EXPERIMENT_ARM, rec->arm[0] ? rec->arm : NULL);
	if (rec->admitted) {
		ft_reqlog_set_int(&l, FT_RL_PROMPT_TOKENS, rec->prompt_tokens);
		ft_reqlog_set_int(&l, FT_RL_COMPLETION_TOKENS, rec->completion_tokens);
	}
	if (rec->ttft_ms >= 0)
		ft_reqlog_set_real(&l, FT_RL_TTFT_MS, rec->ttft_ms);
	ft_reqlog_set_real(&l, FT_RL_LATENCY_MS, (double)(end - rec->t0_ns) * 1e-6);
	ft_reqlog_set_str(&l, FT_RL_FINISH_REASON, rec->finish);
	ft_reqlog_set_int(&l, FT_RL_STATUS, status);
	ft_reqlog_set_str(&l, FT_RL_ERROR_CODE, rec->error_code[0] ? rec->error_code : NULL);
	if (rec->meta.log_texts) {
		ft_reqlog_set_str(&l, FT_RL_PROMPT, rec->prompt);
		ft_reqlog_set_str(&l, FT_RL_COMPLETION, rec->completion);
	}
	if (rec->admitted) {
		ft_reqlog_set_int(&l, FT_RL_PROMPT_BYTE_TOKENS, rec->prompt_byte_tokens);
		ft_reqlog_set_int(&l, FT_RL_COMPLETION_BYTE_TOKENS, rec->completion_byte_tokens);
	}
	ft_reqlog_set_str(&l, FT_RL_EMBEDDING, rec->embedding);
	struct ft_err err;
	ft_err_clear(&err);
	char *s = ft_reqlog_encode(&l, &err);
	if (!s) {
		ft_logf(FT_LOG_ERROR, "serve", NULL, "request log: %s", err.msg);
		return;
	}
	push(c->log, s);
}

void srv_rec_unref(struct srv_rec *rec)
{
	if (!rec)
		return;
	pthread_mutex_lock(&rec->mu);
	int left = --rec->refs;
	pthread_mutex_unlock(&rec->mu);
	if (left)
		return;
	send_rec(rec);
	free(rec->model);
	free(rec->prompt);
	free(rec->completion);
	free(rec->embedding);
	pthread_mutex_destroy(&rec->mu);
	free(rec);
}
