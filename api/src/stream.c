/*
 * stream.c - live job events: GET /v1/fine_tuning/jobs/{id}/events?stream=true
 * answers text/event-stream (server-sent events).
 *
 * What goes out, in this order:
 *   retry: 3000                          (how long a browser waits to reconnect)
 *   id: <event id>  data: <event JSON>   every event of the job, oldest first,
 *                                        after the one named by Last-Event-ID
 *                                        (the same JSON as the list route)
 *   : heartbeat                          a comment when nothing was sent for
 *                                        stream_heartbeat_ms
 *   event: end  data: {"status": ...}    once the job is terminal and every
 *                                        event before that has been sent; then
 *                                        the response ends
 *
 * Event order is commit order: every writer of job_events (the scheduler's
 * persister, cancel, the validator) inserts while holding the job's row
 * lock, so within a job the identity column seq grows in commit order and
 * "seq > last sent" never skips a late commit.
 *
 * How a stream waits without holding a thread. libmicrohttpd's worker
 * threads each serve many connections, so the content reader must never
 * block. It polls PostgreSQL (one indexed query, up to 100 events); when
 * there is nothing to send it suspends its connection and registers a wake
 * time with the hub, one thread that resumes due connections; the reader
 * then polls again. MHD_suspend_connection is called from the reader, which
 * libmicrohttpd allows, and MHD_resume_connection from the hub, under the
 * hub's lock, only for streams in its list: a suspended connection cannot be
 * closed, and a stream leaves the list when its response is freed.
 * Shutdown: api_streams_stop() marks the hub stopping and resumes all;
 * readers then end their responses; only then may MHD_stop_daemon run.
 *
 * A chat stream (POST /v1/deployments/{id}/chat/completions, deployments.c)
 * is the same response fed by another source: a thread of its own calls the
 * deployment's endpoint (ft_endpoint_call, ft/deploy.h) with "stream": true
 * and appends what arrives, the endpoint's own server-sent events, to the
 * chat's buffer under the chat's lock; the reader moves it out, and when
 * there is nothing yet suspends like a job stream but wakes every
 * CHAT_POLL_MS. The thread never touches the connection. The chat is freed
 * by whichever lets go last, the thread or the response; a response freed
 * first (the client left) makes the thread's transfer stop at once.
 *
 * Ownership: struct api_stream is malloc'd (it outlives the request's
 * arena) and owned by its libmicrohttpd response (freed by its free callback).
 */
#include <pthread.h>

#include "ft/crypto.h"
#include "ft/deploy.h"
#include "api_int.h"

#define STREAM_BATCH 100
#define STREAM_OUT_MAX (8u << 20)
#define CHAT_POLL_MS 25 /* how often a waiting chat looks for new tokens */
#define CHAT_TIMEOUT_MS 300000L /* one whole answer */
#define CHAT_MAX_LIVE 32 /* chats in flight in this process */

struct api_chat {
	pthread_mutex_t mu;
	struct ft_buf out; /* the endpoint's bytes not yet taken by the reader */
	bool done; /* the call is over: out holds the rest */
	volatile int abandoned; /* the response is gone: stop the transfer */
	int refs; /* the thread and the stream */
	char *url, *pin, *key, *body;
	bool allow_http;
};

static int live_chats; /* atomic */

struct api_streams {
	struct ft_pg_pool *pg;
	long poll_ms, heartbeat_ms;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool stopping, joined;
	struct api_stream *waiting; /* suspended, with a wake time */
	pthread_t thread;
};

struct api_stream {
	struct api_streams *hub;
	struct MHD_Connection *conn;
	char job_id[FT_ID_MAX];
	long long last_seq;
	struct ft_buf out;
	size_t out_off;
	uint64_t next_heartbeat_ms;
	uint64_t wake_ms;
	bool waiting, finished;
	struct api_chat *chat; /* a chat stream: its source instead of job_events */
	struct api_stream *next;
};

static void chat_release(struct api_chat *c, bool abandon)
{
	pthread_mutex_lock(&c->mu);
	if (abandon)
		c->abandoned = 1;
	int left = --c->refs;
	pthread_mutex_unlock(&c->mu);
	if (left)
		return;
	pthread_mutex_destroy(&c->mu);
	ft_buf_release(&c->out);
	ft_secretbox_free(c->key);
	free(c->url);
	free(c->pin);
	free(c->body);
	free(c);
}

static void *hub_main(void *arg)
{
	struct api_streams *h = arg;
	pthread_mutex_lock(&h->mu);
	while (!h->stopping) {
		uint64_t now = ft_time_mono_ms(), next = now + 1000;
		for (struct api_stream **pp = &h->waiting; *pp;) {
			struct api_stream *s = *pp;
			if (s->wake_ms <= now) {
				*pp = s->next;
				s->waiting = false;
				MHD_resume_connection(s->conn);
			} else {
				next = FT_MIN(next, s->wake_ms);
				pp = &s->next;
			}
		}
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		uint64_t wait_ms = next > now ? next - now : 1;
		ts.tv_sec += (time_t)(wait_ms / 1000);
		ts.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&h->cv, &h->mu, &ts);
	}
	pthread_mutex_unlock(&h->mu);
	return NULL;
}

struct api_streams *api_streams_start(struct ft_pg_pool *pg, long poll_ms, long heartbeat_ms)
{
	struct api_streams *h = ft_xcalloc(1, sizeof(*h));
	pthread_condattr_t ca;
	h->pg = pg;
	h->poll_ms = poll_ms;
	h->heartbeat_ms = heartbeat_ms;
	pthread_mutex_init(&h->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&h->cv, &ca);
	pthread_condattr_destroy(&ca);
	if (pthread_create(&h->thread, NULL, hub_main, h) != 0) {
		pthread_cond_destroy(&h->cv);
		pthread_mutex_destroy(&h->mu);
		free(h);
		return NULL;
	}
	return h;
}

void api_streams_stop(struct api_streams *h)
{
	if (!h || h->joined)
		return;
	pthread_mutex_lock(&h->mu);
	h->stopping = true;
	for (struct api_stream *s = h->waiting; s; s = s->next) {
		s->waiting = false;
		MHD_resume_connection(s->conn);
	}
	h->waiting = NULL;
	pthread_cond_signal(&h->cv);
	pthread_mutex_unlock(&h->mu);
	pthread_join(h->thread, NULL);
	h->joined = true;
	/* chat threads see their responses go (abandoned) and end their
	 * transfers; give them a moment so none outlives the process's exit */
	for (int i = 0; i < 500 && __atomic_load_n(&live_chats, __ATOMIC_SEQ_CST) > 0; i++)
		ft_sleep_ms(10);
	/* The hub's memory stays: streams still finishing read h->stopping.
	 * It is freed by api_streams_free after MHD_stop_daemon. */
}

void api_streams_free(struct api_streams *h)
{
	if (!h)
		return;
	pthread_cond_destroy(&h->cv);
	pthread_mutex_destroy(&h->mu);
	free(h);
}

/* Event types as stored (job_events.type) and as OpenAI's clients know
 * them: "message" and "metrics" only, so a status change is a message
 * whose data says {"status": ...} (every writer puts it there). */
static const struct {
	const char *stored, *shown;
} event_types[] = {
	{ "message", "message" },
	{ "metrics", "metrics" },
	{ "status", "message" },
};

static const char *event_type(const char *stored)
{
	for (size_t i = 0; i < FT_ARRAY_LEN(event_types); i++)
		if (strcmp(event_types[i].stored, stored) == 0)
			return event_types[i].shown;
	return "message";
}

json_t *api_event_json(const PGresult *res, int i, int c)
{
	json_t *e = json_object();
	json_object_set_new(e, "id", json_string(PQgetvalue(res, i, c)));
	json_object_set_new(e, "object", json_string("fine_tuning.job.event"));
	json_object_set_new(e, "created_at", api_epoch(res, i, c + 1));
	json_object_set_new(e, "level", json_string(PQgetvalue(res, i, c + 2)));
	json_object_set_new(e, "message", json_string(PQgetvalue(res, i, c + 3)));
	json_object_set_new(e, "data", api_jsonb(res, i, c + 4));
	json_object_set_new(e, "type", json_string(event_type(PQgetvalue(res, i, c + 5))));
	return e;
}

/* Append to the pending output; a stream that cannot (over STREAM_OUT_MAX,
 * out of memory) ends rather than skip an event. */
static void emit(struct api_stream *s, const char *fmt, ...) FT_PRINTF(2, 3);
static void emit(struct api_stream *s, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	enum ft_rc rc = ft_buf_vaddf(&s->out, fmt, ap);
	va_end(ap);
	if (rc) {
		ft_logf(FT_LOG_ERROR, "api", NULL, "event stream of %s: output too large",
			s->job_id);
		s->finished = true;
	}
}

static bool terminal(const char *status)
{
	static const char *const t[] = { "succeeded", "failed", "cancelled" };
	for (size_t i = 0; i < FT_ARRAY_LEN(t); i++)
		if (strcmp(status, t[i]) == 0)
			return true;
	return false;
}

/* Append the next events (and the end marker once the job is over) to
 * s->out. A database failure is logged and retried at the next poll. */
static void poll_events(struct api_stream *s)
{
	struct ft_err err;
	ft_err_clear(&err);
	PGconn *db = ft_pg_pool_get(s->hub->pg, 5000, &err);
	if (!db) {
		ft_logf(FT_LOG_WARN, "api", NULL, "event stream of %s: %s", s->job_id, err.msg);
		return;
	}
	char after[32], lim[16];
	snprintf(after, sizeof(after), "%lld", s->last_seq);
	snprintf(lim, sizeof(lim), "%d", STREAM_BATCH);
	const char *p[] = { s->job_id, after, lim };
	/* One statement, so one snapshot: a terminal status comes with every
	 * event committed before it. */
	PGresult *res = ft_pg_exec(
		db, &err,
		"SELECT j.status, e.seq, e.id, extract(epoch from e.created_at)::bigint, "
		"e.level, e.message, e.data::text, e.type FROM jobs j LEFT JOIN LATERAL "
		"(SELECT * FROM job_events WHERE job_id = j.id AND seq > $2::bigint "
		"ORDER BY seq LIMIT $3::int) e ON true WHERE j.id = $1 ORDER BY e.seq",
		3, p);
	ft_pg_pool_put(s->hub->pg, db);
	if (!res) {
		ft_logf(FT_LOG_WARN, "api", NULL, "event stream of %s: %s %s", s->job_id, err.msg,
			err.detail);
		return;
	}
	int n = PQntuples(res), sent = 0;
	for (int i = 0; i < n && !s->finished; i++) {
		if (PQgetisnull(res, i, 1))
			continue;
		json_t *e = api_event_json(res, i, 2);
		char *text = json_dumps(e, JSON_COMPACT);
		json_decref(e);
		if (text)
			emit(s, "id: %s\ndata: %s\n\n", PQgetvalue(res, i, 2), text);
		else
			s->finished = true;
		free(text);
		s->last_seq = strtoll(PQgetvalue(res, i, 1), NULL, 10);
		sent++;
	}
	if (s->finished) {
		/* cut short above: the client reconnects with Last-Event-ID */
	} else if (n == 0) {
		/* the job is gone (its team was deleted): end */
		emit(s, "event: end\ndata: {\"status\":null}\n\n");
		s->finished = true;
	} else if (sent < STREAM_BATCH && terminal(PQgetvalue(res, 0, 0))) {
		emit(s, "event: end\ndata: {\"status\":\"%s\"}\n\n", PQgetvalue(res, 0, 0));
		s->finished = true;
	}
	PQclear(res);
}

static ssize_t take(struct api_stream *s, char *buf, size_t max)
{
	size_t n = FT_MIN(max, s->out.len - s->out_off);
	memcpy(buf, s->out.ptr + s->out_off, n);
	s->out_off += n;
	if (s->out_off == s->out.len) {
		ft_buf_reset(&s->out);
		s->out_off = 0;
	}
	s->next_heartbeat_ms = ft_time_mono_ms() + (uint64_t)s->hub->heartbeat_ms;
	return (ssize_t)n;
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct api_stream *s = cls;
	struct api_streams *h = s->hub;
	FT_UNUSED(pos);
	if (s->out_off < s->out.len)
		return take(s, buf, max);
	if (s->finished)
		return MHD_CONTENT_READER_END_OF_STREAM;
	if (s->chat) {
		pthread_mutex_lock(&s->chat->mu);
		bool done = s->chat->done;
		if (s->chat->out.len && ft_buf_add(&s->out, s->chat->out.ptr, s->chat->out.len))
			done = true; /* cannot hold it: end rather than cut the answer silently */
		ft_buf_reset(&s->chat->out);
		pthread_mutex_unlock(&s->chat->mu);
		s->finished = done;
	} else {
		poll_events(s);
	}
	if (s->out.len)
		return take(s, buf, max);
	if (s->finished)
		return MHD_CONTENT_READER_END_OF_STREAM;
	uint64_t now = ft_time_mono_ms();
	if (now >= s->next_heartbeat_ms) {
		emit(s, ": heartbeat\n\n");
		return take(s, buf, max);
	}
	pthread_mutex_lock(&h->mu);
	if (h->stopping) {
		pthread_mutex_unlock(&h->mu);
		return MHD_CONTENT_READER_END_OF_STREAM;
	}
	s->wake_ms =
		FT_MIN(now + (uint64_t)(s->chat ? CHAT_POLL_MS : h->poll_ms), s->next_heartbeat_ms);
	s->waiting = true;
	s->next = h->waiting;
	h->waiting = s;
	MHD_suspend_connection(s->conn);
	pthread_cond_signal(&h->cv);
	pthread_mutex_unlock(&h->mu);
	return 0; /* nothing now: the hub resumes the connection at wake_ms */
}

static void stream_free(void *cls)
{
	struct api_stream *s = cls;
	struct api_streams *h = s->hub;
	pthread_mutex_lock(&h->mu);
	for (struct api_stream **pp = &h->waiting; *pp; pp = &(*pp)->next) {
		if (*pp == s) {
			*pp = s->next;
			break;
		}
	}
	pthread_mutex_unlock(&h->mu);
	if (s->chat)
		chat_release(s->chat, true);
	ft_buf_release(&s->out);
	free(s);
}

static void stream_drop(void *p)
{
	struct api_req *r = p;
	if (r->stream) { /* never handed to libmicrohttpd (an error came later) */
		if (r->stream->chat)
			chat_release(r->stream->chat, true);
		ft_buf_release(&r->stream->out);
		free(r->stream);
		r->stream = NULL;
	}
}

enum ft_rc api_stream_job_events(struct api_req *r, const char *job_id, long long after_seq)
{
	struct api_streams *h = r->ctx->streams;
	if (!h)
		return ft_failf(&r->err, FT_EUNAVAIL, "streams_unavailable",
				"live event streams are off on this server");
	struct api_stream *s = ft_xcalloc(1, sizeof(*s));
	s->hub = h;
	s->conn = r->conn;
	s->last_seq = after_seq;
	ft_strlcpy(s->job_id, job_id, sizeof(s->job_id));
	ft_buf_init(&s->out, STREAM_OUT_MAX);
	emit(s, "retry: 3000\n\n");
	r->stream = s;
	api_defer(r->arena, stream_drop, r);
	return FT_OK;
}

static bool chat_sink(const char *p, size_t n, void *ud)
{
	struct api_chat *c = ud;
	pthread_mutex_lock(&c->mu);
	bool ok = !c->abandoned && ft_buf_add(&c->out, p, n) == FT_OK;
	pthread_mutex_unlock(&c->mu);
	return ok;
}

static void *chat_main(void *arg)
{
	struct api_chat *c = arg;
	const struct ft_endpoint_target t = { c->url, c->pin, c->key, c->allow_http };
	struct ft_endpoint_answer a = { .body = FT_BUF_INIT(64u << 10),
					.sink = chat_sink,
					.sink_ud = c };
	ft_endpoint_call(&t, "POST", "/v1/chat/completions", c->body, CHAT_TIMEOUT_MS,
			 &c->abandoned, "ftplat-api/1", &a);
	ft_buf_release(&a.body);
	pthread_mutex_lock(&c->mu);
	if (a.error[0] && !c->abandoned) {
		/* the status went out with the first byte: the failure is an event,
		 * OpenAI's error object as a stream carries it */
		char msg[600];
		snprintf(msg, sizeof(msg), "the endpoint %s: %s",
			 a.status ? "refused the chat" : "is unreachable", a.error);
		json_t *e = json_pack("{s:{s:s, s:s, s:s}}", "error", "type", "api_error", "code",
				      "endpoint_error", "message", msg);
		char *text = e ? json_dumps(e, JSON_COMPACT) : NULL;
		if (!text || ft_buf_addf(&c->out, "data: %s\n\n", text))
			ft_logf(FT_LOG_WARN, "api", NULL, "a chat's error could not be sent: %s",
				msg);
		free(text);
		json_decref(e);
	}
	c->done = true;
	pthread_mutex_unlock(&c->mu);
	chat_release(c, false);
	__atomic_sub_fetch(&live_chats, 1, __ATOMIC_SEQ_CST);
	return NULL;
}

enum ft_rc api_stream_chat(struct api_req *r, const struct ft_endpoint_target *t, char *key,
			   const char *body)
{
	struct api_streams *h = r->ctx->streams;
	if (!h) {
		ft_secretbox_free(key);
		return ft_failf(&r->err, FT_EUNAVAIL, "streams_unavailable",
				"streamed answers are off on this server");
	}
	if (__atomic_add_fetch(&live_chats, 1, __ATOMIC_SEQ_CST) > CHAT_MAX_LIVE) {
		__atomic_sub_fetch(&live_chats, 1, __ATOMIC_SEQ_CST);
		ft_secretbox_free(key);
		return ft_failf(&r->err, FT_EUNAVAIL, "server_busy",
				"%d chats are in flight on this server: try again shortly",
				CHAT_MAX_LIVE);
	}
	struct api_chat *c = ft_xcalloc(1, sizeof(*c));
	pthread_mutex_init(&c->mu, NULL);
	ft_buf_init(&c->out, STREAM_OUT_MAX);
	c->refs = 2;
	c->url = ft_xstrdup(t->url);
	c->pin = ft_xstrdup(t->pin);
	c->key = key;
	c->body = ft_xstrdup(body);
	c->allow_http = t->allow_http;
	struct api_stream *s = ft_xcalloc(1, sizeof(*s));
	s->hub = h;
	s->conn = r->conn;
	s->chat = c;
	ft_buf_init(&s->out, STREAM_OUT_MAX);
	pthread_t th;
	pthread_attr_t at;
	pthread_attr_init(&at);
	pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
	int err = pthread_create(&th, &at, chat_main, c);
	pthread_attr_destroy(&at);
	if (err) {
		__atomic_sub_fetch(&live_chats, 1, __ATOMIC_SEQ_CST);
		c->refs = 1; /* no thread: the stream's reference only */
		chat_release(c, true);
		ft_buf_release(&s->out);
		free(s);
		return ft_failf(&r->err, FT_EUNAVAIL, "server_busy",
				"no thread for the chat: try again shortly");
	}
	r->stream = s;
	api_defer(r->arena, stream_drop, r);
	return FT_OK;
}

struct MHD_Response *api_stream_response(struct api_req *r)
{
	struct api_stream *s = r->stream;
	struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16u << 10,
								      stream_read, s, stream_free);
	if (!resp)
		return NULL; /* stream_drop frees s with the request */
	r->stream = NULL;
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
	MHD_add_response_header(resp, "X-Accel-Buffering", "no");
	return resp;
}
