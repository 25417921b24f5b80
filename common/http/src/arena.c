/*
 * arena.c - the per-request arena: bump allocation from a chain of blocks
 * plus a list of cleanup hooks run newest first when the request ends
 * (nginx's ngx_pool_cleanup_add, h2o's memory pools).
 */
#include "ft/http.h"

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

struct ft_arena {
	struct block *blocks;
	struct cleanup *cleanups;
};

struct ft_arena *ft_arena_new(void)
{
	return ft_xcalloc(1, sizeof(struct ft_arena));
}

void ft_arena_free(struct ft_arena *a)
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

void *ft_arena_alloc(struct ft_arena *a, size_t n)
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

char *ft_arena_strdup(struct ft_arena *a, const char *s)
{
	size_t n = strlen(s) + 1;
	char *d = ft_arena_alloc(a, n);
	memcpy(d, s, n);
	return d;
}

char *ft_arena_printf(struct ft_arena *a, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	FT_ASSERT(n >= 0);
	char *s = ft_arena_alloc(a, (size_t)n + 1);
	va_start(ap, fmt);
	vsnprintf(s, (size_t)n + 1, fmt, ap);
	va_end(ap);
	return s;
}

void ft_arena_defer(struct ft_arena *a, void (*fn)(void *), void *p)
{
	struct cleanup *c = ft_arena_alloc(a, sizeof(*c));
	c->fn = fn;
	c->p = p;
	c->next = a->cleanups;
	a->cleanups = c;
}
