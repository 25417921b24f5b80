/*
 * http.c - ft-serve's HTTP: libmicrohttpd with a thread per connection (a
 * streaming answer blocks in its reader until the batching loop has more),
 * a route table, who may call (auth.c), JSON bodies with a cap, and errors
 * through common/http's one mapping (ft/http.h), so they read as ft-api's
 * do.
 *
 * A request's life: the first call notes the arrival time; body chunks
 * append to a capped buffer; the last call finds the route, checks the
 * caller (the endpoint's token or a platform API key), starts the request
 * log's record on a generation route (its id is the response's "id" and
 * every answer's x-request-id header), and runs the handler, which fills
 * r->resp (a JSON object), r->stream (an SSE response) or r->err. The
 * record is let go when libmicrohttpd says the request is complete.
 */
#include <arpa/inet.h>

#include "ft/clock.h"
#include "ft/log.h"
#include "ft/reqlog.h"
#include "serve_int.h"

enum route_flags {
	RT_PUBLIC = 1 << 0, /* no credential needed (health, metrics) */
	RT_BODY = 1 << 1, /* takes a JSON body */
	RT_OPERATOR = 1 << 2, /* the endpoint's token only (adapters in and out) */
	RT_LOG_CHAT = 1 << 3, /* a generation: one request log record (chat) */
	RT_LOG_COMPLETION = 1 << 4, /* the same, completions */
};

static const struct route {
	const char *method, *pattern;
	enum ft_rc (*fn)(struct srv_req *r);
	unsigned flags;
} routes[] = {
	{ "POST", "/v1/chat/completions", srv_chat, RT_BODY | RT_LOG_CHAT },
	{ "POST", "/v1/completions", srv_completions, RT_BODY | RT_LOG_COMPLETION },
	{ "GET", "/v1/models", srv_models, 0 },
	{ "POST", "/v1/load_lora_adapter", srv_load_adapter, RT_BODY | RT_OPERATOR },
	{ "POST", "/v1/unload_lora_adapter", srv_unload_adapter, RT_BODY | RT_OPERATOR },
	{ "GET", "/v1/experiments", srv_experiments_list, RT_OPERATOR },
	{ "POST", "/v1/load_experiment", srv_experiment_load, RT_BODY | RT_OPERATOR },
	{ "POST", "/v1/unload_experiment", srv_experiment_unload, RT_BODY | RT_OPERATOR },
	{ "GET", "/health", srv_health, RT_PUBLIC },
	{ "GET", "/metrics", srv_metrics_route, RT_PUBLIC },
};

static const struct route *find_route(const char *method, const char *url, bool *wrong_method)
{
	*wrong_method = false;
	for (size_t i = 0; i < FT_ARRAY_LEN(routes); i++) {
		if (!ft_http_route_match(routes[i].pattern, url, NULL, NULL, 0))
			continue;
		if (strcmp(routes[i].method, method) == 0)
			return &routes[i];
		*wrong_method = true;
	}
	return NULL;
}

enum ft_rc srv_body(struct srv_req *r, json_t **out)
{
	const char *ct =
		MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
	if (!ft_http_media_is_json(ct))
		return ft_failf(&r->err, FT_EINVAL, "invalid_content_type",
				"the body must be JSON sent as \"Content-Type: application/json\"");
	json_error_t je;
	json_t *b = json_loadb(r->body.ptr ? r->body.ptr : "", r->body.len, JSON_REJECT_DUPLICATES,
			       &je);
	if (!b) {
		ft_failf(&r->err, FT_EINVAL, "invalid_json",
			 "the body is not valid JSON: %s at line %d, column %d", je.text, je.line,
			 je.column);
		return FT_EINVAL;
	}
	ft_arena_defer(r->arena, (void (*)(void *))json_decref, b);
	if (!json_is_object(b))
		return ft_failf(&r->err, FT_EINVAL, "invalid_json",
				"the body must be a JSON object");
	*out = b;
	return FT_OK;
}

/* Queue resp with status; a generation's answer carries its record's id
 * as x-request-id (and, routed by an experiment, the experiment and its
 * arm), and its record learns the status. */
static enum MHD_Result queue(struct srv_req *r, int status, struct MHD_Response *resp)
{
	if (r->exp_arm[0]) {
		MHD_add_response_header(resp, "X-Ft-Experiment", r->exp_id);
		MHD_add_response_header(resp, "X-Ft-Experiment-Arm", r->exp_arm);
	}
	if (r->rec) {
		MHD_add_response_header(resp, "x-request-id", r->rec->id);
		pthread_mutex_lock(&r->rec->mu);
		r->rec->status = status;
		pthread_mutex_unlock(&r->rec->mu);
	}
	enum MHD_Result ret = MHD_queue_response(r->conn, (unsigned)status, resp);
	MHD_destroy_response(resp);
	return ret;
}

static enum MHD_Result send_json(struct srv_req *r, int status, json_t *o)
{
	char *s = json_dumps(o, JSON_COMPACT);
	if (!s)
		s = ft_xstrdup("{}");
	struct MHD_Response *resp =
		MHD_create_response_from_buffer(strlen(s), s, MHD_RESPMEM_MUST_FREE);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
	if (status == 429 && r->retry_after > 0) {
		char ra[24];
		snprintf(ra, sizeof ra, "%ld", r->retry_after);
		MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, ra);
	}
	return queue(r, status, resp);
}

static enum MHD_Result send_error(struct srv_req *r)
{
	struct ft_err *e = &r->err;
	if (!ft_err_is_set(e))
		ft_failf(e, FT_EINTERNAL, "internal_error",
			 "the handler failed without saying why");
	int status = ft_http_error_status(e);
	if (status >= 500)
		ft_logf(FT_LOG_ERROR, "serve", NULL, "%s %s: %s", r->method, r->url, e->msg);
	if (r->rec) {
		pthread_mutex_lock(&r->rec->mu);
		ft_strlcpy(r->rec->error_code, e->code[0] ? e->code : ft_rc_name(e->rc),
			   sizeof r->rec->error_code);
		if (!r->rec->end_ns)
			r->rec->end_ns = ft_time_mono_ns();
		pthread_mutex_unlock(&r->rec->mu);
	}
	json_t *o = ft_http_error_json(e, status);
	enum MHD_Result ret = send_json(r, status, o);
	json_decref(o);
	return ret;
}

/* The A/B arm a request carries (header X-Experiment-Arm), checked as the
 * request log's table says. */
static enum ft_rc take_arm(struct srv_req *r)
{
	const char *arm = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "X-Experiment-Arm");
	if (!arm)
		return FT_OK;
	if (!ft_reqlog_text_ok(FT_RL_EXPERIMENT_ARM, arm))
		return ft_failf(&r->err, FT_EINVAL, "invalid_value",
				"the X-Experiment-Arm header must be 1 to 64 letters, digits or "
				"._:@/+-");
	ft_strlcpy(r->rec->arm, arm, sizeof r->rec->arm);
	return FT_OK;
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn, const char *url,
				 const char *method, const char *version, const char *data,
				 size_t *size, void **con_cls)
{
	FT_UNUSED(version);
	struct srv_ctx *ctx = cls;
	struct srv_req *r = *con_cls;
	if (!r) { /* first call: headers only */
		struct ft_arena *a = ft_arena_new();
		r = ft_arena_alloc(a, sizeof(*r));
		r->arena = a;
		r->ctx = ctx;
		r->conn = conn;
		r->method = ft_arena_strdup(a, method);
		r->url = ft_arena_strdup(a, url);
		r->t0_ns = ft_time_mono_ns();
		r->created_ms = ft_time_wall_ms();
		ft_buf_init(&r->body, ctx->max_body);
		ft_err_clear(&r->err);
		*con_cls = r;
		return MHD_YES;
	}
	if (*size) { /* a piece of the body */
		if (!r->body_too_large && ft_buf_add(&r->body, data, *size))
			r->body_too_large = true;
		*size = 0;
		return MHD_YES;
	}
	bool wrong;
	const struct route *rt = find_route(r->method, r->url, &wrong);
	if (!rt) {
		ft_failf(&r->err, wrong ? FT_EINVAL : FT_ENOTFOUND,
			 wrong ? "method_not_allowed" : "not_found",
			 "%s %s is not a route of ft-serve", r->method, r->url);
		return send_error(r);
	}
	if (!(rt->flags & RT_PUBLIC) && srv_auth_check(r))
		return send_error(r);
	if ((rt->flags & RT_OPERATOR) && !r->privileged) {
		ft_failf(&r->err, FT_EPERM, "permission_denied",
			 "%s needs the endpoint's token, not an API key", r->url);
		return send_error(r);
	}
	if (rt->flags & (RT_LOG_CHAT | RT_LOG_COMPLETION)) {
		r->rec = srv_rec_new(r, (rt->flags & RT_LOG_CHAT) != 0);
		if (take_arm(r))
			return send_error(r);
	}
	if (r->body_too_large) {
		ft_failf(&r->err, FT_ELIMIT, "body_too_large", "the body is larger than %zu bytes",
			 ctx->max_body);
		return send_error(r);
	}
	if (rt->fn(r))
		return send_error(r);
	if (r->stream) {
		MHD_add_response_header(r->stream, MHD_HTTP_HEADER_CONTENT_TYPE,
					"text/event-stream");
		MHD_add_response_header(r->stream, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
		return queue(r, r->status, r->stream);
	}
	if (json_is_string(r->resp)) { /* plain text (metrics) */
		const char *s = json_string_value(r->resp);
		struct MHD_Response *resp = MHD_create_response_from_buffer(
			strlen(s), (void *)(uintptr_t)s, MHD_RESPMEM_MUST_COPY);
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
					"text/plain; version=0.0.4");
		return queue(r, r->status, resp);
	}
	return send_json(r, r->status, r->resp);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	FT_UNUSED(cls);
	FT_UNUSED(conn);
	FT_UNUSED(toe);
	struct srv_req *r = *con_cls;
	if (!r)
		return;
	srv_rec_unref(r->rec); /* the request log's record, if the generation is done too */
	json_decref(r->resp);
	ft_buf_release(&r->body);
	ft_arena_free(r->arena);
	*con_cls = NULL;
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
	FT_UNUSED(cls);
	char line[512];
	vsnprintf(line, sizeof line, fmt, ap);
	size_t n = strlen(line);
	while (n && line[n - 1] == '\n')
		line[--n] = 0;
	ft_logf(FT_LOG_DEBUG, "serve", NULL, "libmicrohttpd: %s", line);
}

struct MHD_Daemon *srv_http_start(struct srv_ctx *ctx, const char *addr, int port,
				  struct ft_err *err)
{
	struct sockaddr_in sa = { 0 };
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	if (inet_pton(AF_INET, addr, &sa.sin_addr) != 1) {
		ft_failf(err, FT_EINVAL, "invalid_config",
			 "serve_addr \"%s\" is not an IPv4 address", addr);
		return NULL;
	}
	struct MHD_Daemon *d = MHD_start_daemon(
		MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG,
		0, NULL, NULL, on_access, ctx, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL,
		MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa, MHD_OPTION_NOTIFY_COMPLETED,
		on_completed, ctx, MHD_OPTION_CONNECTION_TIMEOUT, 300u, MHD_OPTION_CONNECTION_LIMIT,
		1024u, MHD_OPTION_LISTENING_ADDRESS_REUSE, 1u, MHD_OPTION_END);
	if (!d)
		ft_failf(err, FT_EIO, "listen_failed", "cannot listen on %s:%d", addr, port);
	return d;
}
