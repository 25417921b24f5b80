/*
 * sse.c - a parser of text/event-stream (server-sent events), fed with
 * bytes as they arrive (the format: ft/client.h, WHATWG HTML "Server-sent
 * events" 9.2.6). ft_client_stream reads a response into it.
 */
#include "ft/client.h"

void ft_sse_init(struct ft_sse_parser *p)
{
	memset(p, 0, sizeof(*p));
	ft_buf_init(&p->line, FT_SSE_LINE_MAX);
	ft_buf_init(&p->data, FT_SSE_DATA_MAX);
	p->retry_ms = -1;
}

void ft_sse_release(struct ft_sse_parser *p)
{
	ft_buf_release(&p->line);
	ft_buf_release(&p->data);
}

static void dispatch(struct ft_sse_parser *p, ft_sse_fn fn, void *ud)
{
	if (p->has_data) {
		struct ft_sse_event ev = { p->event[0] ? p->event : "message", p->id,
					   ft_buf_str(&p->data), p->data.len };
		if (fn(&ev, ud))
			p->stopped = true;
	}
	ft_buf_reset(&p->data);
	p->has_data = false;
	p->event[0] = '\0';
}

/* One complete line (without its end). */
static enum ft_rc line(struct ft_sse_parser *p, ft_sse_fn fn, void *ud)
{
	const char *s = ft_buf_str(&p->line);
	size_t n = p->line.len;
	if (n == 0) {
		dispatch(p, fn, ud);
		return FT_OK;
	}
	if (s[0] == ':')
		return FT_OK;
	const char *colon = memchr(s, ':', n);
	size_t fl = colon ? (size_t)(colon - s) : n;
	const char *v = colon ? colon + 1 : s + n;
	size_t vl = (size_t)(s + n - v);
	if (vl && *v == ' ') {
		v++;
		vl--;
	}
	if (fl == 4 && memcmp(s, "data", 4) == 0) {
		if ((p->has_data && ft_buf_addch(&p->data, '\n')) || ft_buf_add(&p->data, v, vl))
			return FT_ELIMIT;
		p->has_data = true;
	} else if (fl == 5 && memcmp(s, "event", 5) == 0) {
		size_t k = FT_MIN(vl, sizeof(p->event) - 1);
		memcpy(p->event, v, k);
		p->event[k] = '\0';
	} else if (fl == 2 && memcmp(s, "id", 2) == 0) {
		if (!memchr(v, '\0', vl) && vl < sizeof(p->id)) {
			memcpy(p->id, v, vl);
			p->id[vl] = '\0';
		}
	} else if (fl == 5 && memcmp(s, "retry", 5) == 0) {
		long ms = 0;
		size_t i = 0;
		while (i < vl && v[i] >= '0' && v[i] <= '9' && ms < 100000000L)
			ms = ms * 10 + (v[i++] - '0');
		if (vl && i == vl)
			p->retry_ms = ms;
	}
	return FT_OK;
}

enum ft_rc ft_sse_feed(struct ft_sse_parser *p, const char *buf, size_t n, ft_sse_fn fn, void *ud)
{
	for (size_t i = 0; i < n && !p->stopped; i++) {
		char c = buf[i];
		if (p->after_cr) {
			p->after_cr = false;
			if (c == '\n')
				continue; /* the LF of a CRLF */
		}
		if (c == '\r' || c == '\n') {
			p->after_cr = c == '\r';
			enum ft_rc rc = line(p, fn, ud);
			ft_buf_reset(&p->line);
			if (rc)
				return rc;
			continue;
		}
		if (ft_buf_addch(&p->line, c))
			return FT_ELIMIT;
	}
	return FT_OK;
}
