/*
 * fuzz_sse.c - ftctl's text/event-stream parser (cli/src/sse.c) on
 * arbitrary bytes, fed whole and then in chunks whose sizes come from the
 * input: it must never crash, read out of bounds or leak, and both ways of
 * feeding must give the same events.
 */
#include "ft/client.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct acc {
	uint64_t hash;
	size_t events;
};

static bool on_event(const struct ft_sse_event *ev, void *ud)
{
	struct acc *a = ud;
	const char *parts[] = { ev->event, ev->id };
	for (size_t k = 0; k < 2; k++)
		for (const char *c = parts[k]; *c; c++)
			a->hash = (a->hash ^ (unsigned char)*c) * 1099511628211ull;
	for (size_t i = 0; i < ev->data_len; i++)
		a->hash = (a->hash ^ (unsigned char)ev->data[i]) * 1099511628211ull;
	a->hash ^= 0xff;
	a->events++;
	return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ft_sse_parser p;
	struct acc whole = { 14695981039346656037ull, 0 }, split = whole;
	ft_sse_init(&p);
	enum ft_rc rc1 = ft_sse_feed(&p, (const char *)data, size, on_event, &whole);
	ft_sse_release(&p);
	ft_sse_init(&p);
	enum ft_rc rc2 = FT_OK;
	size_t step = size ? (size_t)data[0] % 7 + 1 : 1;
	for (size_t i = 0; i < size && rc2 == FT_OK; i += step)
		rc2 = ft_sse_feed(&p, (const char *)data + i, FT_MIN(step, size - i), on_event,
				  &split);
	ft_sse_release(&p);
	FT_ASSERT(rc1 == rc2);
	if (rc1 == FT_OK)
		FT_ASSERT(whole.hash == split.hash && whole.events == split.events);
	return 0;
}
