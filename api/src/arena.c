/*
 * arena.c - the per-request arena: bump allocation from a chain of blocks
 * plus a list of cleanup hooks run newest first when the request ends
 * (nginx's ngx_pool_cleanup_add, h2o's memory pools).
 */
#include "api_int.h"

#define BLOCK 8192

struct block {
	struct block *next;
	size_t used, size;
	max_align_t data[];
};

struct cleanup {
	struct cleanup *next;
	void (*fn)(void *);
	void *p;
};

struct api_arena {
	struct block *blocks;
	struct cleanup *cleanups;
};

struct api_arena *api_arena_new(void)
{
	return ft_xcalloc(1, sizeof(struct api_arena));
}

void api_arena_free(struct api_arena *a)
{
	if (!a)
		return;
	for (struct cleanup *c = a->cleanups; c; c = c->next)
		c->fn(c->p);
	for (struct block *b = a->blocks, *n; b; b = n) {
		n = b->next;
		free(b);
	}
	free(a);
}

void *api_alloc(struct api_arena *a, size_t n)
{
	n = (n + sizeof(max_align_t) - 1) / sizeof(max_align_t) * sizeof(max_align_t);
	struct block *b = a->blocks;
	if (!b || b->size - b->used < n) {
		size_t size = FT_MAX((size_t)BLOCK, n);
		b = ft_xmalloc(sizeof(*b) + size);
		b->size = size;
		b->used = 0;
		b->next = a->blocks;
		a->blocks = b;
	}
	void *p = (char *)b->data + b->used;
	b->used += n;
	memset(p, 0, n);
	return p;
}

char *api_strdup(struct api_arena *a, const char *s)
{
	size_t n = strlen(s) + 1;
	char *d = api_alloc(a, n);
	memcpy(d, s, n);
	return d;
}

char *api_printf(struct api_arena *a, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	FT_ASSERT(n >= 0);
	char *s = api_alloc(a, (size_t)n + 1);
	va_start(ap, fmt);
	vsnprintf(s, (size_t)n + 1, fmt, ap);
	va_end(ap);
	return s;
}

void api_defer(struct api_arena *a, void (*fn)(void *), void *p)
{
	struct cleanup *c = api_alloc(a, sizeof(*c));
	c->fn = fn;
	c->p = p;
	c->next = a->cleanups;
	a->cleanups = c;
}
