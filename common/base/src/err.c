/*
 * err.c - struct ft_err, the rc names, and the few helpers from ft/base.h.
 */
#include "ft/err.h"

static const char *const rc_names[FT_RC_COUNT] = {
	[FT_OK] = "ok",
	[FT_EINVAL] = "invalid",
	[FT_ENOMEM] = "out_of_memory",
	[FT_EIO] = "io_error",
	[FT_ENOTFOUND] = "not_found",
	[FT_ECONFLICT] = "conflict",
	[FT_EAUTH] = "unauthenticated",
	[FT_EPERM] = "forbidden",
	[FT_ELIMIT] = "limit_exceeded",
	[FT_EDB] = "db_error",
	[FT_EREDIS] = "redis_error",
	[FT_EUNAVAIL] = "unavailable",
	[FT_EFORMAT] = "bad_format",
	[FT_EINTERNAL] = "internal_error",
};

const char *ft_rc_name(enum ft_rc rc)
{
	if ((unsigned)rc >= FT_RC_COUNT)
		return "unknown";
	return rc_names[rc];
}

void ft_assert_fail(const char *expr, const char *file, int line, const char *func)
{
	fprintf(stderr, "%s:%d: %s: assertion failed: %s\n", file, line, func, expr);
	fflush(stderr);
	abort();
}

void *ft_xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p) {
		fprintf(stderr, "fatal: out of memory allocating %zu bytes\n", n);
		abort();
	}
	return p;
}

void *ft_xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);
	if (!p) {
		fprintf(stderr, "fatal: out of memory allocating %zu x %zu bytes\n", n, size);
		abort();
	}
	return p;
}

char *ft_xstrdup(const char *s)
{
	size_t n = strlen(s) + 1;
	char *p = ft_xmalloc(n);
	memcpy(p, s, n);
	return p;
}

size_t ft_strlcpy(char *dst, const char *src, size_t dstsz)
{
	size_t n = strlen(src);
	if (dstsz) {
		size_t c = n < dstsz - 1 ? n : dstsz - 1;
		memcpy(dst, src, c);
		dst[c] = '\0';
	}
	return n;
}

void ft_err_clear(struct ft_err *e)
{
	if (e)
		memset(e, 0, sizeof(*e));
}

enum ft_rc ft_vfailf(struct ft_err *e, enum ft_rc rc, const char *code, const char *fmt, va_list ap)
{
	FT_ASSERT(rc != FT_OK);
	if (!e || e->rc != FT_OK)
		return rc;
	e->rc = rc;
	ft_strlcpy(e->code, code ? code : ft_rc_name(rc), sizeof(e->code));
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	return rc;
}

enum ft_rc ft_failf(struct ft_err *e, enum ft_rc rc, const char *code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	ft_vfailf(e, rc, code, fmt, ap);
	va_end(ap);
	return rc;
}

void ft_err_detailf(struct ft_err *e, const char *fmt, ...)
{
	va_list ap;
	if (!e || e->detail[0])
		return;
	va_start(ap, fmt);
	vsnprintf(e->detail, sizeof(e->detail), fmt, ap);
	va_end(ap);
}

void ft_err_hintf(struct ft_err *e, const char *fmt, ...)
{
	va_list ap;
	if (!e || e->hint[0])
		return;
	va_start(ap, fmt);
	vsnprintf(e->hint, sizeof(e->hint), fmt, ap);
	va_end(ap);
}

void ft_err_param(struct ft_err *e, const char *param)
{
	if (e && !e->param[0] && param)
		ft_strlcpy(e->param, param, sizeof(e->param));
}

void ft_err_line(struct ft_err *e, long line)
{
	if (e && !e->line)
		e->line = line;
}

void ft_err_prefixf(struct ft_err *e, const char *fmt, ...)
{
	char prefix[256];
	va_list ap;
	size_t plen, mlen, cap;
	if (!e || e->rc == FT_OK)
		return;
	va_start(ap, fmt);
	vsnprintf(prefix, sizeof(prefix), fmt, ap);
	va_end(ap);
	/* Shift the message right and put the prefix in front; what does not
	 * fit is cut from the end of the message. */
	cap = sizeof(e->msg) - 1;
	plen = FT_MIN(strlen(prefix), cap);
	mlen = FT_MIN(strlen(e->msg), cap - plen);
	memmove(e->msg + plen, e->msg, mlen);
	memcpy(e->msg, prefix, plen);
	e->msg[plen + mlen] = '\0';
}
