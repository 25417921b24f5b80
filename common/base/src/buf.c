/*
 * buf.c - struct ft_buf: growable, capped, always NUL-terminated.
 * Growth doubles the capacity (at least 64 bytes) but never allocates more
 * than max+1 bytes.
 */
#include "ft/buf.h"

void ft_buf_init(struct ft_buf *b, size_t max)
{
	b->ptr = NULL;
	b->len = 0;
	b->cap = 0;
	b->max = max;
}

void ft_buf_release(struct ft_buf *b)
{
	free(b->ptr);
	b->ptr = NULL;
	b->len = b->cap = 0;
}

void ft_buf_reset(struct ft_buf *b)
{
	b->len = 0;
	if (b->ptr)
		b->ptr[0] = '\0';
}

enum ft_rc ft_buf_grow(struct ft_buf *b, size_t n)
{
	size_t need, ncap;
	char *p;

	if (n > b->max || b->len > b->max - n)
		return FT_ELIMIT;
	need = b->len + n + 1; /* room for the NUL */
	if (need <= b->cap)
		return FT_OK;
	ncap = b->cap ? b->cap : 64;
	while (ncap < need) {
		if (ncap > SIZE_MAX / 2) {
			ncap = need;
			break;
		}
		ncap *= 2;
	}
	if (ncap > b->max + 1)
		ncap = b->max + 1;
	p = realloc(b->ptr, ncap);
	if (!p)
		return FT_ENOMEM;
	if (!b->ptr)
		p[0] = '\0';
	b->ptr = p;
	b->cap = ncap;
	return FT_OK;
}

enum ft_rc ft_buf_add(struct ft_buf *b, const void *mem, size_t n)
{
	enum ft_rc rc = ft_buf_grow(b, n);
	if (rc)
		return rc;
	if (n)
		memcpy(b->ptr + b->len, mem, n);
	b->len += n;
	b->ptr[b->len] = '\0';
	return FT_OK;
}

enum ft_rc ft_buf_addstr(struct ft_buf *b, const char *s)
{
	return ft_buf_add(b, s, strlen(s));
}

enum ft_rc ft_buf_addch(struct ft_buf *b, char c)
{
	return ft_buf_add(b, &c, 1);
}

enum ft_rc ft_buf_vaddf(struct ft_buf *b, const char *fmt, va_list ap)
{
	va_list ap2;
	int n;
	enum ft_rc rc;

	va_copy(ap2, ap);
	n = vsnprintf(NULL, 0, fmt, ap2);
	va_end(ap2);
	if (n < 0)
		return FT_EINVAL;
	rc = ft_buf_grow(b, (size_t)n);
	if (rc)
		return rc;
	vsnprintf(b->ptr + b->len, (size_t)n + 1, fmt, ap);
	b->len += (size_t)n;
	return FT_OK;
}

enum ft_rc ft_buf_addf(struct ft_buf *b, const char *fmt, ...)
{
	va_list ap;
	enum ft_rc rc;
	va_start(ap, fmt);
	rc = ft_buf_vaddf(b, fmt, ap);
	va_end(ap);
	return rc;
}

void ft_buf_truncate(struct ft_buf *b, size_t len)
{
	if (len < b->len) {
		b->len = len;
		b->ptr[len] = '\0';
	}
}

char *ft_buf_take(struct ft_buf *b)
{
	char *p = b->ptr;
	if (!p) {
		p = malloc(1);
		if (p)
			p[0] = '\0';
	}
	b->ptr = NULL;
	b->len = b->cap = 0;
	return p;
}
