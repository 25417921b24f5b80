/*
 * test_sse.c - ftctl's text/event-stream parser (cli/src/sse.c) on streams
 * worked out by hand from the WHATWG format, fed whole and byte by byte
 * (every split point must give the same events), plus its limits.
 */
#include "ft/client.h"
#include "ftest.h"

struct got {
	char text[4096];
	size_t n;
	int events;
	int stop_after;
};

static bool collect(const struct ft_sse_event *ev, void *ud)
{
	struct got *g = ud;
	g->n += (size_t)snprintf(g->text + g->n, sizeof(g->text) - g->n, "[%s|%s|%.*s]", ev->event,
				 ev->id, (int)ev->data_len, ev->data);
	g->events++;
	return g->stop_after && g->events >= g->stop_after;
}

static const char stream[] = "retry: 2500\r\n"
			     "\r\n"
			     ": heartbeat\n\n"
			     "id: ftevent-1\n"
			     "data: {\"a\":1}\n\n"
			     "data:no space\r"
			     "data:  two spaces\r\r"
			     "event: end\n"
			     "data\n"
			     "\n"
			     "id\n"
			     "data: after an empty id\n"
			     "unknown: field\n"
			     "\n"
			     "event: orphan\n\n"; /* no data: not dispatched */

static const char want[] = "[message|ftevent-1|{\"a\":1}]"
			   "[message|ftevent-1|no space\n two spaces]"
			   "[end|ftevent-1|]"
			   "[message||after an empty id]";

FT_TEST(sse_events_whole_and_split_everywhere)
{
	size_t n = sizeof(stream) - 1;
	for (size_t step = 0; step <= n; step++) {
		struct ft_sse_parser p;
		struct got g = { 0 };
		ft_sse_init(&p);
		if (step == 0) {
			FT_CHECK(ft_sse_feed(&p, stream, n, collect, &g) == FT_OK);
		} else {
			for (size_t i = 0; i < n; i += step)
				FT_CHECK(ft_sse_feed(&p, stream + i, FT_MIN(step, n - i), collect,
						     &g) == FT_OK);
		}
		FT_CHECK_STR(g.text, want);
		FT_CHECK(p.retry_ms == 2500);
		ft_sse_release(&p);
	}
}

FT_TEST(sse_callback_stops_and_limits_hold)
{
	struct ft_sse_parser p;
	struct got g = { .stop_after = 1 };
	ft_sse_init(&p);
	FT_CHECK(ft_sse_feed(&p, stream, sizeof(stream) - 1, collect, &g) == FT_OK);
	FT_CHECK(p.stopped && g.events == 1);
	ft_sse_release(&p);

	/* a line over FT_SSE_LINE_MAX without an end */
	size_t big = FT_SSE_LINE_MAX + 10;
	char *buf = malloc(big);
	FT_CHECK(buf != NULL);
	memset(buf, 'x', big);
	memcpy(buf, "data: ", 6);
	ft_sse_init(&p);
	struct got g2 = { 0 };
	FT_CHECK(ft_sse_feed(&p, buf, big, collect, &g2) == FT_ELIMIT);
	ft_sse_release(&p);
	free(buf);
	/* a retry that is not all digits is ignored */
	ft_sse_init(&p);
	FT_CHECK(ft_sse_feed(&p, "retry: 12a\n\n", 12, collect, &g2) == FT_OK);
	FT_CHECK(p.retry_ms == -1);
	ft_sse_release(&p);
}

FT_TEST_MAIN()
