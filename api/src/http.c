/*
 * http.c - libmicrohttpd glue: the access handler state machine, request
 * bodies with a cap, and the one place where errors become HTTP.
 *
 * libmicrohttpd calls the access handler several times per request:
 *   1st call, no data   route, authenticate, rate-limit, size check by
 *                       Content-Length; create the request arena;
 *   calls with data     JSON bodies: append to a capped buffer; uploads:
 *                       feed the multipart parser, which streams to the store;
 *                       after an error the rest of the body is read and dropped
 *                       (so the client sees the answer, not a reset);
 *   last call, no data  idempotency, the handler, audit, the response.
 * The "completed" callback frees the arena (and so aborts an unfinished
 * upload and returns the PostgreSQL connection).
 *
 * Error body (OpenAI's shape plus "line"):
 *   {"error":{"type":"invalid_request_error","code":"invalid_type",
 *             "message":"\"n_epochs\" must be an integer (got string)",
 *             "param":"hyperparameters.n_epochs","line":null}}
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "api_int.h"

#define DISCARD_MAX (256ull << 20) /* drop the connection past this much refused body */

static const struct {
	enum ft_rc rc;
	int status;
} rc_status[] = {
	{ FT_OK, 200 },	       { FT_EINVAL, 400 },    { FT_ENOMEM, 500 }, { FT_EIO, 500 },
	{ FT_ENOTFOUND, 404 }, { FT_ECONFLICT, 409 }, { FT_EAUTH, 401 },  { FT_EPERM, 403 },
	{ FT_ELIMIT, 413 },    { FT_EDB, 500 },	      { FT_EREDIS, 503 }, { FT_EUNAVAIL, 503 },
	{ FT_EFORMAT, 400 },   { FT_EINTERNAL, 500 },
};

/* Codes whose status differs from their rc's. */
static const struct {
	const char *code;
	int status;
} code_status[] = {
	{ "rate_limit_exceeded", 429 },
	{ "method_not_allowed", 405 },
	{ "idempotency_key_reused", 422 },
};

static const struct {
	int status;
	const char *type;
} status_type[] = {
	{ 400, "invalid_request_error" }, { 401, "authentication_error" },
	{ 403, "permission_error" },	  { 404, "not_found_error" },
	{ 405, "invalid_request_error" }, { 409, "conflict_error" },
	{ 413, "invalid_request_error" }, { 422, "invalid_request_error" },
	{ 429, "rate_limit_error" },	  { 503, "service_unavailable_error" },
};

static int error_status(const struct ft_err *e)
{
	for (size_t i = 0; i < FT_ARRAY_LEN(code_status); i++)
		if (strcmp(e->code, code_status[i].code) == 0)
			return code_status[i].status;
	/* Safety net: data and integrity errors from PostgreSQL are the
	 * caller's input, never a server fault. */
	if (e->rc == FT_EDB && (strncmp(e->hint, "22", 2) == 0 || strncmp(e->hint, "23", 2) == 0))
		return 400;
	for (size_t i = 0; i < FT_ARRAY_LEN(rc_status); i++)
		if (rc_status[i].rc == e->rc)
			return rc_status[i].status;
	return 500;
}

static const char *error_type(int status)
{
	for (size_t i = 0; i < FT_ARRAY_LEN(status_type); i++)
		if (status_type[i].status == status)
			return status_type[i].type;
	return status >= 500 ? "server_error" : "invalid_request_error";
}

/* The one place where an ft_err becomes an HTTP status and body. */
static void error_to_response(struct api_req *r)
{
	struct ft_err *e = &r->err;
	if (!ft_err_is_set(e))
		ft_failf(e, FT_EINTERNAL, "internal_error", "handler failed without saying why");
	int status = error_status(e);
	if (status >= 500) {
		ft_logf(FT_LOG_ERROR, "api", NULL, "%s %s: %s (%s) %s", r->method, r->url, e->msg,
			e->code, e->detail);
	}
	if (status == 400 && e->rc == FT_EDB) {
		/* A constraint the handler did not check first: say which. */
		ft_strlcpy(e->code, "invalid_value", sizeof(e->code));
		snprintf(e->msg, sizeof(e->msg), "a value is out of range: %s", e->detail);
	}
	json_t *err = json_object();
	json_object_set_new(err, "type", json_string(error_type(status)));
	json_object_set_new(err, "code", json_string(e->code[0] ? e->code : ft_rc_name(e->rc)));
	json_object_set_new(err, "message", json_string(e->msg));
	json_object_set_new(err, "param", e->param[0] ? json_string(e->param) : json_null());
	json_object_set_new(err, "line", e->line ? json_integer(e->line) : json_null());
	r->resp = api_own(r, json_pack("{s:o}", "error", err));
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

static enum MHD_Result queue(struct api_req *r)
{
	struct MHD_Response *resp;
	if (r->responded)
		return MHD_YES;
	r->responded = true;
	if (r->resp_fd >= 0 && r->status < 300) {
		resp = MHD_create_response_from_fd64(r->resp_fd_size, r->resp_fd);
		r->resp_fd = -1; /* MHD closes it */
		if (!resp)
			return MHD_NO;
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
					r->resp_type ? r->resp_type : "application/octet-stream");
	} else {
		struct ft_buf b;
		ft_buf_init(&b, 64u << 20);
		if (r->resp && ft_json_dump_buf(r->resp, &b)) {
			ft_buf_release(&b);
			return MHD_NO;
		}
		size_t len = b.len;
		char *body = ft_buf_take(&b);
		ft_buf_release(&b);
		if (!body)
			return MHD_NO;
		resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
		if (!resp) {
			free(body);
			return MHD_NO;
		}
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
	}
	if (r->retry_after > 0) {
		char v[32];
		snprintf(v, sizeof(v), "%ld", r->retry_after);
		MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, v);
	}
	enum MHD_Result ok = MHD_queue_response(r->conn, (unsigned)r->status, resp);
	MHD_destroy_response(resp);
	return ok;
}

static void req_free(void *p)
{
	struct api_req *r = p;
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
		char *body = json_dumps(r->resp, JSON_COMPACT);
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
	const char *cl = api_header(r, MHD_HTTP_HEADER_CONTENT_LENGTH);
	unsigned long long len = cl ? strtoull(cl, NULL, 10) : 0;
	uint64_t cap =
		(r->route->flags & RT_UPLOAD) ? r->ctx->max_upload + (1u << 20) : API_JSON_MAX;
	if (len > cap)
		return ft_failf(&r->err, FT_ELIMIT,
				(r->route->flags & RT_UPLOAD) ? "file_too_large" : "body_too_large",
				"the request body (%llu bytes) is larger than the limit of %" PRIu64
				" bytes",
				len, (r->route->flags & RT_UPLOAD) ? r->ctx->max_upload : cap);
	if (!(r->route->flags & RT_UPLOAD))
		return FT_OK;
	if (api_header(r, "Idempotency-Key")) {
		if (ft_sha256_init(&r->body_sha))
			return ft_failf(&r->err, FT_EINTERNAL, NULL, "cannot start SHA-256");
		r->body_sha_on = true;
	}
	return api_upload_begin(r);
}

static void body_data(struct api_req *r, const char *data, size_t n)
{
	if (r->failed) {
		r->discarded += n;
		return;
	}
	if (r->route->flags & RT_UPLOAD) {
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
		if (first_call(r)) {
			r->failed = true;
			const char *cl = api_header(r, MHD_HTTP_HEADER_CONTENT_LENGTH);
			const char *te = api_header(r, MHD_HTTP_HEADER_TRANSFER_ENCODING);
			const char *expect = api_header(r, MHD_HTTP_HEADER_EXPECT);
			bool no_body = (!cl || strcmp(cl, "0") == 0) && !te;
			if (no_body || expect) {
				finish(r);
				return queue(r);
			}
		}
		return MHD_YES;
	}
	if (*upload_data_size) {
		body_data(r, upload_data, *upload_data_size);
		*upload_data_size = 0;
		return r->discarded > DISCARD_MAX ? MHD_NO : MHD_YES;
	}
	if (r->responded)
		return MHD_YES;
	finish(r);
	return queue(r);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	FT_UNUSED(cls);
	FT_UNUSED(conn);
	FT_UNUSED(toe);
	struct api_req *r = *con_cls;
	if (r) {
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
				  struct ft_err *err)
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
		MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ERROR_LOG, (uint16_t)port,
		NULL, NULL, on_access, ctx, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL,
		MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa, MHD_OPTION_THREAD_POOL_SIZE,
		(unsigned)threads, MHD_OPTION_NOTIFY_COMPLETED, on_completed, ctx,
		MHD_OPTION_CONNECTION_TIMEOUT, 120u, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
		(size_t)(256u << 10), MHD_OPTION_LISTENING_ADDRESS_REUSE, 1u, MHD_OPTION_END);
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
