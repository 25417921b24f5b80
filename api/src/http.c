/*
 * http.c - libmicrohttpd glue: the access handler state machine, request
 * bodies with a cap, and the one place where errors become HTTP.
 *
 * libmicrohttpd calls the access handler several times per request:
 *   1st call, no data   route, authenticate (the key cache: no database
 *                       round trip on a hit), role, rate limit, size check
 *                       by Content-Length, content type, upload slots; create
 *                       the request arena. A database connection used here
 *                       (a cache miss) goes back to the pool before any body
 *                       is read. A refusal is answered at once, body or not;
 *                       the connection is then closed gracefully (linger.c);
 *   calls with data     JSON bodies: append to a capped buffer; uploads:
 *                       feed the multipart parser, which streams to the
 *                       store. A body over its cap, malformed, or slower than
 *                       min_body_rate is answered at once (answer_now);
 *                       a body silent for body_timeout_s is dropped;
 *   last call, no data  idempotency, the handler, audit, the response.
 * The "completed" callback frees the arena (and so aborts an unfinished
 * upload, deleting its temporary file, gives back its upload slots and
 * returns the PostgreSQL connection), however the request ended.
 *
 * libmicrohttpd can queue a response only on the first or the last call;
 * in mid-body answer_now() writes the error response on the socket itself
 * and ends the connection (the one place that does).
 *
 * A response is JSON (r->resp), a file (r->resp_fd: uploads' content, the
 * console's files), or a live event stream (r->stream, stream.c), which
 * outlives the handler: it is owned by its libmicrohttpd response and
 * suspends the connection between polls.
 *
 * Error body (OpenAI's shape plus "line"):
 *   {"error":{"type":"invalid_request_error","code":"invalid_type",
 *             "message":"\"n_epochs\" must be an integer (got string)",
 *             "param":"hyperparameters.n_epochs","line":null}}
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "api_int.h"

#define UPLOAD_OVERHEAD (1u << 20) /* multipart framing allowed beyond max_upload */
/* libmicrohttpd's memory per connection (headers, the read buffer that
 * body data passes through): it clears the whole of it for every request
 * on a kept-alive connection, so bigger costs every GET a memset. */
#define CONN_MEMORY (64u << 10)

/* The one place where an ft_err becomes an HTTP status and body. */
static void error_to_response(struct api_req *r)
{
	struct ft_err *e = &r->err;
	if (!ft_err_is_set(e))
		ft_failf(e, FT_EINTERNAL, "internal_error", "handler failed without saying why");
	int status = ft_http_error_status(e);
	if (status >= 500) {
		ft_logf(FT_LOG_ERROR, "api", NULL, "%s %s: %s (%s) %s", r->method, r->url, e->msg,
			e->code, e->detail);
	}
	if (status == 400 && e->rc == FT_EDB) {
		/* A constraint the handler did not check first: say which. */
		ft_strlcpy(e->code, "invalid_value", sizeof(e->code));
		snprintf(e->msg, sizeof(e->msg), "a value is out of range: %s", e->detail);
	}
	r->resp = api_own(r, ft_http_error_json(e, status));
	r->status = status;
	r->resp_fd = -1;
}

static void fail(struct api_req *r, enum ft_rc rc, const char *code, const char *fmt, ...)
	FT_PRINTF(4, 5);
static void fail(struct api_req *r, enum ft_rc rc, const char *code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	ft_vfailf(&r->err, rc, code, fmt, ap);
	va_end(ap);
	r->failed = true;
}

/* The JSON body of r->resp, malloc'd; NULL when out of memory. */
static char *resp_body(struct api_req *r, size_t *len)
{
	struct ft_buf b;
	ft_buf_init(&b, 64u << 20);
	if (r->resp && ft_json_dump_buf(r->resp, &b)) {
		ft_buf_release(&b);
		return NULL;
	}
	*len = b.len;
	char *body = ft_buf_take(&b);
	ft_buf_release(&b);
	return body;
}

static enum MHD_Result queue(struct api_req *r)
{
	struct MHD_Response *resp;
	if (r->responded)
		return MHD_YES;
	r->responded = true;
	if (r->stream && r->status < 300) {
		resp = api_stream_response(r); /* owns the stream now */
		if (!resp)
			return MHD_NO;
	} else if (r->resp_fd >= 0 && r->status < 300) {
		resp = MHD_create_response_from_fd_at_offset64(r->resp_fd_size, r->resp_fd,
							       r->resp_fd_off);
		r->resp_fd = -1; /* MHD closes it */
		if (!resp)
			return MHD_NO;
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
					r->resp_type ? r->resp_type : "application/octet-stream");
	} else if (r->status == 304) {
		resp = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
		if (!resp)
			return MHD_NO;
	} else {
		size_t len;
		char *body = resp_body(r, &len);
		if (!body)
			return MHD_NO;
		resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
		if (!resp) {
			free(body);
			return MHD_NO;
		}
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
	}
	MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
	for (int i = 0; i < r->n_resp_hdrs; i++)
		MHD_add_response_header(resp, r->resp_hdrs[i][0], r->resp_hdrs[i][1]);
	if (r->retry_after > 0) {
		char v[32];
		snprintf(v, sizeof(v), "%ld", r->retry_after);
		MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, v);
	}
	/* A client that failed authentication gets its answer and nothing more
	 * on this connection. */
	if (r->status == 401)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
	enum MHD_Result ok = MHD_queue_response(r->conn, (unsigned)r->status, resp);
	MHD_destroy_response(resp);
	return ok;
}

/* The connection's socket, duplicated for linger.c; -1 when unknown. */
static int conn_fd_dup(struct api_req *r)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
	return ci && ci->connect_fd >= 0 ? fcntl(ci->connect_fd, F_DUPFD_CLOEXEC, 3) : -1;
}

/* Write all of p to a non-blocking socket, waiting at most 200 ms for room
 * (a few hundred bytes fit unless the client left earlier answers unread):
 * a worker thread must not be held by a client that does not read. */
static bool write_all(int fd, const char *p, size_t n)
{
	uint64_t deadline = ft_time_mono_ms() + 200;
	while (n) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w > 0) {
			p += w;
			n -= (size_t)w;
			continue;
		}
		if (w < 0 && errno != EAGAIN && errno != EINTR)
			return false;
		uint64_t now = ft_time_mono_ms();
		if (now >= deadline)
			return false;
		struct pollfd pfd = { .fd = fd, .events = POLLOUT };
		(void)poll(&pfd, 1, (int)(deadline - now));
	}
	return true;
}

static void req_free(void *p)
{
	struct api_req *r = p;
	api_upload_slots_give(r);
	if (r->db)
		ft_pg_pool_put(r->ctx->pg, r->db);
	if (r->resp_fd >= 0)
		close(r->resp_fd);
	ft_buf_release(&r->raw);
	if (r->body_sha_on)
		ft_sha256_release(&r->body_sha);
}

/* ---- idempotency ------------------------------------------------------- */

/* FT_OK: go on (reserved or no key); FT_ECONFLICT with r->resp set: replay. */
static enum ft_rc idem_begin(struct api_req *r, bool *replayed)
{
	*replayed = false;
	const char *key = api_header(r, "Idempotency-Key");
	if (!key || strcmp(r->method, "POST") != 0 || !(r->route->flags & RT_WRITE))
		return FT_OK;
	if (!*key || !api_valid_text(key, 255)) {
		ft_failf(&r->err, FT_EINVAL, "invalid_idempotency_key",
			 "the Idempotency-Key header must be 1 to 255 printable characters");
		return FT_EINVAL;
	}
	unsigned char d[FT_SHA256_LEN];
	char hex[FT_SHA256_HEX_LEN + 1];
	if (r->body_sha_on) {
		ft_sha256_final(&r->body_sha, d);
		r->body_sha_on = false;
	} else {
		ft_sha256_digest(r->raw.ptr ? r->raw.ptr : "", r->raw.len, d);
	}
	ft_hex_encode(d, sizeof(d), hex);
	const char *p[] = { r->team_id, key, r->method, r->url, hex };
	for (int attempt = 0; attempt < 2; attempt++) {
		PGresult *res = api_db(
			r,
			"INSERT INTO idempotency_keys (team_id, key, method, path, request_sha256) "
			"VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING RETURNING 1",
			5, p);
		if (!res)
			return r->err.rc;
		if (PQntuples(res) == 1) {
			r->idem_key = api_strdup(r->arena, key);
			r->idem_reserved = true;
			return FT_OK;
		}
		res = api_db(r,
			     "SELECT method, path, request_sha256, response_status, "
			     "response_body::text, "
			     "created_at < now() - interval '60 seconds' "
			     "FROM idempotency_keys WHERE team_id = $1 AND key = $2",
			     2, p);
		if (!res)
			return r->err.rc;
		if (PQntuples(res) == 0)
			continue; /* deleted meanwhile: try again */
		if (strcmp(PQgetvalue(res, 0, 0), r->method) ||
		    strcmp(PQgetvalue(res, 0, 1), r->url) || strcmp(PQgetvalue(res, 0, 2), hex)) {
			ft_failf(&r->err, FT_EINVAL, "idempotency_key_reused",
				 "Idempotency-Key \"%s\" was used with a different request; use a "
				 "new key",
				 key);
			return FT_EINVAL;
		}
		if (PQgetisnull(res, 0, 3)) {
			if (strcmp(PQgetvalue(res, 0, 5), "t") == 0) {
				/* The first attempt died; take the key over. */
				const char *q[] = { r->team_id, key };
				if (api_db_cmd(r,
					       "DELETE FROM idempotency_keys WHERE team_id = $1 "
					       "AND key = $2 "
					       "AND response_status IS NULL",
					       2, q))
					return r->err.rc;
				continue;
			}
			ft_failf(&r->err, FT_ECONFLICT, "idempotency_key_in_progress",
				 "a request with Idempotency-Key \"%s\" is still running; retry "
				 "later",
				 key);
			return FT_ECONFLICT;
		}
		r->status = atoi(PQgetvalue(res, 0, 3));
		r->resp = api_own(r, json_loads(PQgetvalue(res, 0, 4), 0, NULL));
		*replayed = true;
		return FT_OK;
	}
	ft_failf(&r->err, FT_ECONFLICT, "idempotency_key_in_progress",
		 "Idempotency-Key \"%s\" is contended; retry later", key);
	return FT_ECONFLICT;
}

static void idem_end(struct api_req *r)
{
	if (!r->idem_reserved)
		return;
	struct ft_err saved = r->err;
	ft_err_clear(&r->err);
	if (r->status >= 500 || !r->resp) {
		const char *p[] = { r->team_id, r->idem_key };
		api_db_cmd(r, "DELETE FROM idempotency_keys WHERE team_id = $1 AND key = $2", 2, p);
	} else {
		char st[16];
		json_t *stored = r->resp;
		if (r->secret_field && json_object_get(r->resp, r->secret_field)) {
			/* shown once: a replay answers the object without it */
			stored = api_own(r, json_copy(r->resp));
			json_object_del(stored, r->secret_field);
		}
		char *body = json_dumps(stored, JSON_COMPACT);
		snprintf(st, sizeof(st), "%d", r->status);
		const char *p[] = { r->team_id, r->idem_key, st, body };
		api_db_cmd(r,
			   "UPDATE idempotency_keys SET response_status = $3, response_body = $4 "
			   "WHERE team_id = $1 AND key = $2",
			   4, p);
		free(body);
	}
	r->err = saved;
}

/* ---- the access handler ------------------------------------------------ */

/* Inactivity allowed on this connection: body_timeout_s while a body is
 * coming, idle_timeout_s otherwise. */
static void set_timeout(struct api_req *r, unsigned secs)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CONNECTION_TIMEOUT);
	if (!ci || ci->connection_timeout != secs)
		MHD_set_connection_option(r->conn, MHD_CONNECTION_OPTION_TIMEOUT, secs);
}

static enum ft_rc first_call(struct api_req *r)
{
	bool wrong_method;
	r->route = api_route_find(r->method, r->url, r, &wrong_method);
	if (!r->route) {
		if (wrong_method)
			return ft_failf(&r->err, FT_EINVAL, "method_not_allowed",
					"%s is not allowed on %s", r->method, r->url);
		return ft_failf(&r->err, FT_ENOTFOUND, "unknown_route", "no route %s %s", r->method,
				r->url);
	}
	if (!(r->route->flags & RT_PUBLIC)) {
		enum ft_rc rc = api_authenticate(r);
		if (rc)
			return rc;
		if (r->role < r->route->role)
			return ft_failf(&r->err, FT_EPERM, "insufficient_role",
					"this needs the %s role; the key has %s",
					api_role_name(r->route->role), api_role_name(r->role));
	}
	bool upload = r->route->flags & RT_UPLOAD;
	uint64_t cap = upload ? r->ctx->max_upload + UPLOAD_OVERHEAD : API_JSON_MAX;
	if (r->body_len > cap)
		return ft_failf(&r->err, FT_ELIMIT, upload ? "file_too_large" : "body_too_large",
				"the request body (%" PRIu64
				" bytes) is larger than the limit of %" PRIu64 " bytes",
				r->body_len, upload ? r->ctx->max_upload : cap);
	if (r->body_expected && !upload && strcmp(r->method, "POST") == 0 &&
	    !api_media_is_json(api_header(r, MHD_HTTP_HEADER_CONTENT_TYPE))) {
		const char *ct = api_header(r, MHD_HTTP_HEADER_CONTENT_TYPE);
		if (ct && api_valid_text(ct, 100))
			return ft_failf(&r->err, FT_EINVAL, "invalid_content_type",
					"the body must be JSON sent as \"Content-Type: "
					"application/json\" (got \"%s\")",
					ct);
		return ft_failf(&r->err, FT_EINVAL, "invalid_content_type",
				"the body must be JSON sent as \"Content-Type: application/json\"");
	}
	set_timeout(r, r->body_expected ? r->ctx->body_timeout_s : r->ctx->idle_timeout_s);
	r->body_t0_ns = ft_time_mono_ns();
	if (!upload)
		return FT_OK;
	if (api_upload_slots_take(r))
		return r->err.rc;
	if (api_header(r, "Idempotency-Key")) {
		if (ft_sha256_init(&r->body_sha))
			return ft_failf(&r->err, FT_EINTERNAL, NULL, "cannot start SHA-256");
		r->body_sha_on = true;
	}
	return api_upload_begin(r);
}

static void body_data(struct api_req *r, const char *data, size_t n)
{
	r->body_bytes += n;
	uint64_t elapsed = ft_time_mono_ns() - r->body_t0_ns;
	uint64_t grace = (uint64_t)r->ctx->body_timeout_s * 1000000000ull;
	if (r->ctx->min_body_rate && elapsed > grace &&
	    (double)r->body_bytes * 1e9 / (double)elapsed < (double)r->ctx->min_body_rate) {
		fail(r, FT_EINVAL, "body_too_slow",
		     "the request body arrived at %.0f bytes/s, below the minimum of %" PRIu64
		     " bytes/s",
		     (double)r->body_bytes * 1e9 / (double)elapsed, r->ctx->min_body_rate);
		return;
	}
	if (r->route->flags & RT_UPLOAD) {
		if (r->body_bytes > r->ctx->max_upload + UPLOAD_OVERHEAD) {
			fail(r, FT_ELIMIT, "file_too_large",
			     "the request body is larger than the limit of %" PRIu64 " bytes",
			     r->ctx->max_upload);
			return;
		}
		if (api_upload_data(r, data, n))
			r->failed = true;
		return;
	}
	if (ft_buf_add(&r->raw, data, n))
		fail(r, FT_ELIMIT, "body_too_large",
		     "the request body is larger than the limit of %u bytes", API_JSON_MAX);
}

static void finish(struct api_req *r)
{
	bool replayed = false;
	if (!r->failed && r->route && (r->route->flags & RT_UPLOAD))
		api_upload_end(r); /* the last part reaches the hash before idem_begin */
	if (!r->failed && r->route) {
		if (idem_begin(r, &replayed))
			r->failed = true;
	}
	if (!r->failed && !replayed) {
		r->status = 200;
		enum ft_rc rc = r->route->handler(r);
		if (rc || ft_err_is_set(&r->err))
			r->failed = true;
	}
	/* A handler that failed inside a transaction leaves it open or aborted:
	 * undo it before the idempotency and audit writes below. */
	if (r->db && PQtransactionStatus(r->db) != PQTRANS_IDLE) {
		PGresult *rb = PQexec(r->db, "ROLLBACK");
		PQclear(rb);
	}
	if (r->failed)
		error_to_response(r);
	if (!replayed)
		idem_end(r);
	if (r->route && !(r->route->flags & RT_PUBLIC) &&
	    (((r->route->flags & RT_WRITE) && r->status < 500) || r->status == 401 ||
	     r->status == 403 || r->status == 429 || (r->status == 404 && r->not_found)))
		api_audit(r, r->status < 400 ? "allowed" : "denied");
}

/* Answer a request whose body went wrong in mid-stream, now: libmicrohttpd
 * cannot queue a response until the body ends, so the response goes on
 * the socket from here and the connection ends (MHD_NO); linger.c drains
 * what the client still sends, so that it reads the answer. */
static enum MHD_Result answer_now(struct api_req *r)
{
	finish(r);
	api_db_release(r);
	r->responded = true;
	size_t len;
	char *body = resp_body(r, &len);
	int fd = body ? conn_fd_dup(r) : -1;
	if (fd >= 0) {
		char head[512], ra[48] = "";
		if (r->retry_after > 0)
			snprintf(ra, sizeof(ra), "Retry-After: %ld\r\n", r->retry_after);
		const char *reason = MHD_get_reason_phrase_for((unsigned)r->status);
		int hl = snprintf(head, sizeof(head),
				  "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
				  "Content-Length: %zu\r\n%sConnection: close\r\n\r\n",
				  r->status, reason && *reason ? reason : "Error", len, ra);
		if (write_all(fd, head, (size_t)hl) && write_all(fd, body, len))
			api_linger_add(r->ctx->linger, fd);
		else
			close(fd);
	}
	free(body);
	return MHD_NO;
}

static void req_start(struct api_req *r)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	if (ci && ci->client_addr && ci->client_addr->sa_family == AF_INET) {
		struct sockaddr_in sin;
		memcpy(&sin, ci->client_addr, sizeof(sin));
		inet_ntop(AF_INET, &sin.sin_addr, r->addr, sizeof(r->addr));
	}
	const char *cl = api_header(r, MHD_HTTP_HEADER_CONTENT_LENGTH);
	const char *te = api_header(r, MHD_HTTP_HEADER_TRANSFER_ENCODING);
	r->body_len = cl ? strtoull(cl, NULL, 10) : 0;
	r->body_expected = r->body_len > 0 || te;
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn, const char *url,
				 const char *method, const char *version, const char *upload_data,
				 size_t *upload_data_size, void **con_cls)
{
	struct api_ctx *ctx = cls;
	struct api_req *r = *con_cls;
	FT_UNUSED(version);
	if (!r) {
		struct api_arena *a = api_arena_new();
		r = api_alloc(a, sizeof(*r));
		r->arena = a;
		r->ctx = ctx;
		r->conn = conn;
		r->resp_fd = -1;
		r->method = api_strdup(a, method);
		r->url = api_strdup(a, url);
		r->t0_ns = ft_time_mono_ns();
		api_metrics_begin();
		ft_buf_init(&r->raw, API_JSON_MAX);
		api_defer(a, req_free, r);
		*con_cls = r;
		req_start(r);
		enum ft_rc rc = first_call(r);
		api_db_release(r); /* never held while a body comes in */
		if (rc) {
			/* Refused: answered now, before any body is read; with a body
			 * pending, libmicrohttpd then closes the connection, and
			 * on_completed hands it to linger.c. */
			r->failed = true;
			r->early = r->body_expected;
			finish(r);
			api_db_release(r);
			return queue(r);
		}
		return MHD_YES;
	}
	if (*upload_data_size) {
		if (r->responded)
			return MHD_NO;
		body_data(r, upload_data, *upload_data_size);
		*upload_data_size = 0;
		return r->failed ? answer_now(r) : MHD_YES;
	}
	if (r->responded)
		return MHD_YES;
	finish(r);
	return queue(r);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	struct api_ctx *ctx = cls;
	FT_UNUSED(conn); /* r->conn */
	struct api_req *r = *con_cls;
	if (r) {
		if (r->early && toe == MHD_REQUEST_TERMINATED_COMPLETED_OK)
			api_linger_add(ctx->linger, conn_fd_dup(r));
		api_metrics_end(r->route, r->status, ft_time_mono_ns() - r->t0_ns);
		api_arena_free(r->arena);
	}
	*con_cls = NULL;
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap) FT_PRINTF(2, 0);
static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
	char line[512];
	FT_UNUSED(cls);
	vsnprintf(line, sizeof(line), fmt, ap);
	size_t n = strlen(line);
	while (n && line[n - 1] == '\n')
		line[--n] = 0;
	ft_logf(FT_LOG_WARN, "api", NULL, "libmicrohttpd: %s", line);
}

struct MHD_Daemon *api_http_start(struct api_ctx *ctx, const char *addr, int port, int threads,
				  const struct api_conn_limits *lim, struct ft_err *err)
{
	struct sockaddr_in sa = { 0 };
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	if (inet_pton(AF_INET, addr, &sa.sin_addr) != 1) {
		ft_failf(err, FT_EINVAL, "invalid_config",
			 "listen_addr \"%s\" is not an IPv4 address", addr);
		return NULL;
	}
	struct MHD_Daemon *d = MHD_start_daemon(
		MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ERROR_LOG |
			MHD_ALLOW_SUSPEND_RESUME,
		(uint16_t)port, NULL, NULL, on_access, ctx, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log,
		NULL, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa, MHD_OPTION_THREAD_POOL_SIZE,
		(unsigned)threads, MHD_OPTION_NOTIFY_COMPLETED, on_completed, ctx,
		MHD_OPTION_CONNECTION_TIMEOUT, ctx->idle_timeout_s, MHD_OPTION_CONNECTION_LIMIT,
		lim->max_connections, MHD_OPTION_PER_IP_CONNECTION_LIMIT,
		lim->max_connections_per_ip, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
		(size_t)CONN_MEMORY, MHD_OPTION_LISTENING_ADDRESS_REUSE, 1u, MHD_OPTION_END);
	if (!d)
		ft_failf(err, FT_EIO, "listen_failed", "cannot listen on %s:%d: %s", addr, port,
			 strerror(errno));
	return d;
}

int api_http_port(struct MHD_Daemon *d)
{
	const union MHD_DaemonInfo *i = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
	return i ? i->port : 0;
}
