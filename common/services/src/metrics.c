/*
 * metrics.c - GET /metrics and GET /health over libmicrohttpd (internal
 * polling thread).
 */
#include <arpa/inet.h>
#include <microhttpd.h>

#include "ft/clock.h"
#include "ft/metrics.h"

struct ft_metrics_server {
	struct MHD_Daemon *d;
	ft_metrics_fn fn;
	void *ud;
	int port;
	uint64_t beat_ms; /* monotonic; written by the main loop, read here */
};

void ft_metrics_server_beat(struct ft_metrics_server *s)
{
	if (s)
		__atomic_store_n(&s->beat_ms, ft_time_mono_ms(), __ATOMIC_RELAXED);
}

static enum MHD_Result answer(struct MHD_Connection *c, unsigned status, const char *text)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(
		strlen(text), (void *)(uintptr_t)text, MHD_RESPMEM_MUST_COPY);
	MHD_add_response_header(r, "Content-Type", "text/plain");
	enum MHD_Result ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

/* GET /health: 200 while the main loop has beaten within
 * FT_METRICS_STALE_MS, 503 naming how long ago it last did. */
static enum MHD_Result health(struct ft_metrics_server *s, struct MHD_Connection *c)
{
	char text[96];
	uint64_t beat = __atomic_load_n(&s->beat_ms, __ATOMIC_RELAXED);
	uint64_t age = beat ? ft_time_mono_ms() - beat : 0; /* 0: no loop watched */
	if (age <= FT_METRICS_STALE_MS)
		return answer(c, MHD_HTTP_OK, "ok\n");
	snprintf(text, sizeof(text), "stale: the main loop last ran %" PRIu64 " ms ago\n", age);
	return answer(c, MHD_HTTP_SERVICE_UNAVAILABLE, text);
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url,
			      const char *method, const char *version, const char *upload,
			      size_t *upload_size, void **con_cls)
{
	struct ft_metrics_server *s = cls;
	struct MHD_Response *r;
	enum MHD_Result ret;
	FT_UNUSED(version);
	FT_UNUSED(upload);
	FT_UNUSED(upload_size);
	FT_UNUSED(con_cls);
	if (strcmp(method, "GET") == 0 && strcmp(url, "/health") == 0)
		return health(s, c);
	if (strcmp(method, "GET") != 0 || strcmp(url, "/metrics") != 0) {
		static const char nf[] = "not found\n";
		r = MHD_create_response_from_buffer(sizeof(nf) - 1, (void *)(uintptr_t)nf,
						    MHD_RESPMEM_PERSISTENT);
		ret = MHD_queue_response(c, MHD_HTTP_NOT_FOUND, r);
		MHD_destroy_response(r);
		return ret;
	}
	struct ft_buf b = FT_BUF_INIT(16u << 20);
	s->fn(&b, s->ud);
	size_t len = b.len;
	char *text = ft_buf_take(&b);
	r = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
	MHD_add_response_header(r, "Content-Type", "text/plain; version=0.0.4");
	ret = MHD_queue_response(c, MHD_HTTP_OK, r);
	MHD_destroy_response(r);
	return ret;
}

struct ft_metrics_server *ft_metrics_server_new(const char *addr, int port, ft_metrics_fn fn,
						void *ud, struct ft_err *err)
{
	struct sockaddr_in sa = { 0 };
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	if (inet_pton(AF_INET, addr, &sa.sin_addr) != 1) {
		ft_failf(err, FT_EINVAL, "invalid_config",
			 "metrics address \"%s\" is not an IPv4 address", addr);
		return NULL;
	}
	struct ft_metrics_server *s = ft_xcalloc(1, sizeof(*s));
	s->fn = fn;
	s->ud = ud;
	s->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, 0, NULL, NULL,
				handle, s, MHD_OPTION_SOCK_ADDR, &sa, MHD_OPTION_CONNECTION_TIMEOUT,
				(unsigned int)10, MHD_OPTION_END);
	if (!s->d) {
		ft_failf(err, FT_EIO, NULL, "cannot listen for metrics on %s:%d", addr, port);
		free(s);
		return NULL;
	}
	const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
	s->port = info ? info->port : port;
	return s;
}

int ft_metrics_server_port(const struct ft_metrics_server *s)
{
	return s->port;
}

void ft_metrics_server_free(struct ft_metrics_server *s)
{
	if (!s)
		return;
	MHD_stop_daemon(s->d);
	free(s);
}

void ft_metrics_help(struct ft_buf *out, const char *name, const char *type, const char *help)
{
	(void)!ft_buf_addf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void ft_metrics_value(struct ft_buf *out, const char *name, const char *labels, double v)
{
	(void)!ft_buf_addf(out, "%s%s%s%s %.17g\n", name, labels && *labels ? "{" : "",
			   labels ? labels : "", labels && *labels ? "}" : "", v);
}
