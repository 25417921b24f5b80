/*
 * metrics.c - Prometheus counters of ft-api, served by the small metrics
 * server of common/ (ft/metrics.h) on metrics_addr:metrics_port:
 *   ft_api_requests_total{route, code}     answered requests by route and status class
 *   ft_api_request_seconds_sum{route}      time spent answering them
 *   ft_api_requests_in_flight              requests being handled now
 * A request that matched no route counts under route="unmatched". Counters
 * are relaxed atomics: a scrape may be a request behind, never torn.
 */
#include "ft/metrics.h"
#include "api_int.h"

#define ROUTES_MAX 64

static uint64_t counts[ROUTES_MAX + 1][6]; /* [route][status / 100], last row: unmatched */
static uint64_t nanos[ROUTES_MAX + 1];
static int64_t in_flight;

void api_metrics_begin(void)
{
	__atomic_add_fetch(&in_flight, 1, __ATOMIC_RELAXED);
}

void api_metrics_end(const struct api_route *route, int status, uint64_t ns)
{
	size_t i = route ? api_route_index(route) : ROUTES_MAX;
	if (i > ROUTES_MAX)
		i = ROUTES_MAX;
	int cls = status / 100;
	if (cls < 1 || cls > 5)
		cls = 0;
	__atomic_add_fetch(&counts[i][cls], 1, __ATOMIC_RELAXED);
	__atomic_add_fetch(&nanos[i], ns, __ATOMIC_RELAXED);
	__atomic_sub_fetch(&in_flight, 1, __ATOMIC_RELAXED);
}

void api_metrics_render(struct ft_buf *out, void *ud)
{
	FT_UNUSED(ud);
	char labels[256];
	size_t n = FT_MIN(api_route_count(), (size_t)ROUTES_MAX);
	ft_metrics_help(out, "ft_api_requests_total", "counter",
			"requests answered, by route and status class");
	for (size_t i = 0; i <= ROUTES_MAX; i++) {
		if (i >= n && i != ROUTES_MAX)
			continue;
		const struct api_route *rt = i < n ? api_route_at(i) : NULL;
		for (int c = 0; c < 6; c++) {
			uint64_t v = __atomic_load_n(&counts[i][c], __ATOMIC_RELAXED);
			if (!v)
				continue;
			snprintf(labels, sizeof(labels), "method=\"%s\",route=\"%s\",code=\"%s\"",
				 rt ? rt->method : "", rt ? rt->pattern : "unmatched",
				 c ? (const char *[]){ "", "1xx", "2xx", "3xx", "4xx", "5xx" }[c]
				   : "other");
			ft_metrics_value(out, "ft_api_requests_total", labels, (double)v);
		}
	}
	ft_metrics_help(out, "ft_api_request_seconds_sum", "counter",
			"seconds spent answering, by route");
	for (size_t i = 0; i < n; i++) {
		uint64_t v = __atomic_load_n(&nanos[i], __ATOMIC_RELAXED);
		if (!v)
			continue;
		snprintf(labels, sizeof(labels), "method=\"%s\",route=\"%s\"",
			 api_route_at(i)->method, api_route_at(i)->pattern);
		ft_metrics_value(out, "ft_api_request_seconds_sum", labels, (double)v * 1e-9);
	}
	ft_metrics_help(out, "ft_api_requests_in_flight", "gauge", "requests being handled");
	ft_metrics_value(out, "ft_api_requests_in_flight", NULL,
			 (double)__atomic_load_n(&in_flight, __ATOMIC_RELAXED));
}
