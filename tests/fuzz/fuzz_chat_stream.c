/*
 * fuzz_chat_stream.c - ftctl chat's reading of an endpoint's answer
 * (cli/src/client.c): arbitrary bytes through the event-stream parser, each
 * event's data through the chat chunk reader, as `ftctl chat` does. It must
 * never crash or leak; the text it gathers only grows, stays within its
 * cap, and "[DONE]" is the only data that ends it.
 */
#include "ft/client.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct acc {
	struct ft_buf text;
	size_t events;
};

static bool on_event(const struct ft_sse_event *ev, void *ud)
{
	struct acc *a = ud;
	struct ft_err e;
	bool done;
	size_t before = a->text.len;
	ft_err_clear(&e);
	enum ft_rc rc = ft_chat_chunk_parse(ev->data, ev->data_len, &a->text, &done, &e);
	FT_ASSERT(a->text.len >= before);
	FT_ASSERT(!done || (rc == FT_OK && ev->data_len == 6 && !memcmp(ev->data, "[DONE]", 6)));
	FT_ASSERT(rc == FT_OK || e.rc == rc);
	a->events++;
	return done || rc != FT_OK;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ft_sse_parser p;
	struct acc a = { .text = FT_BUF_INIT(1u << 16) };
	ft_sse_init(&p);
	ft_sse_feed(&p, (const char *)data, size, on_event, &a);
	ft_sse_release(&p);
	FT_ASSERT(a.text.len <= (1u << 16));
	ft_buf_release(&a.text);
	return 0;
}
