/*
 * ft/metrics.h - a Prometheus text endpoint (GET /metrics) on its own small
 * libmicrohttpd server, for processes that have no HTTP server of their own
 * (ft-scheduler, ft-worker). The callback appends the exposition text
 * (format 0.0.4) to the buffer; it runs on the server's thread.
 *
 * The same server answers GET /health for probes (systemd, Kubernetes):
 * 200 "ok" while the process's main loop calls ft_metrics_server_beat() at
 * least every FT_METRICS_STALE_MS, 503 once it has stopped doing so (a hung
 * loop). A process that never beats (ft-api, whose own port has /health)
 * always answers 200.
 */
#ifndef FT_METRICS_H
#define FT_METRICS_H

#include "ft/buf.h"
#include "ft/err.h"

typedef void (*ft_metrics_fn)(struct ft_buf *out, void *ud);

struct ft_metrics_server;

/* Listen on addr:port (port 0: a free port, see ft_metrics_server_port). */
struct ft_metrics_server *ft_metrics_server_new(const char *addr, int port, ft_metrics_fn fn,
						void *ud, struct ft_err *err);
int ft_metrics_server_port(const struct ft_metrics_server *s);
#define FT_METRICS_STALE_MS 30000
/* The main loop is alive (thread-safe; s may be NULL). */
void ft_metrics_server_beat(struct ft_metrics_server *s);
void ft_metrics_server_free(struct ft_metrics_server *s);

/* Helpers for the exposition format. */
void ft_metrics_help(struct ft_buf *out, const char *name, const char *type, const char *help);
void ft_metrics_value(struct ft_buf *out, const char *name, const char *labels, double v);

#endif
