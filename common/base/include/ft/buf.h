/*
 * ft/buf.h - the one growable byte buffer, with a hard cap (curl's dynbuf).
 *
 * The contents are always NUL-terminated, so ptr can be used as a string
 * when no NUL was added. Growing past max fails with FT_ELIMIT and leaves
 * the buffer as it was. ptr is NULL until the first byte is added;
 * ft_buf_str() returns "" then.
 *
 *   struct ft_buf b;
 *   ft_buf_init(&b, 1 << 20);
 *   if (ft_buf_addf(&b, "%d", n)) goto fail;
 *   ...
 *   char *s = ft_buf_take(&b);   // caller now owns s, b is empty again
 *   ft_buf_release(&b);
 */
#ifndef FT_BUF_H
#define FT_BUF_H

#include "ft/base.h"

struct ft_buf {
	char *ptr;
	size_t len;
	size_t cap;
	size_t max; /* hard cap on len */
};

#define FT_BUF_INIT(maxlen)          \
	{                            \
		NULL, 0, 0, (maxlen) \
	}

void ft_buf_init(struct ft_buf *b, size_t max);
void ft_buf_release(struct ft_buf *b);
void ft_buf_reset(struct ft_buf *b); /* len = 0, keeps memory */

enum ft_rc ft_buf_add(struct ft_buf *b, const void *mem, size_t n) FT_WARN_UNUSED;
enum ft_rc ft_buf_addstr(struct ft_buf *b, const char *s) FT_WARN_UNUSED;
enum ft_rc ft_buf_addch(struct ft_buf *b, char c) FT_WARN_UNUSED;
enum ft_rc ft_buf_addf(struct ft_buf *b, const char *fmt, ...) FT_PRINTF(2, 3) FT_WARN_UNUSED;
enum ft_rc ft_buf_vaddf(struct ft_buf *b, const char *fmt, va_list ap)
	FT_PRINTF(2, 0) FT_WARN_UNUSED;
/* Make room for n more bytes without adding them. */
enum ft_rc ft_buf_grow(struct ft_buf *b, size_t n) FT_WARN_UNUSED;
/* Drop bytes from the end. */
void ft_buf_truncate(struct ft_buf *b, size_t len);

static inline const char *ft_buf_str(const struct ft_buf *b)
{
	return b->ptr ? b->ptr : "";
}

/* Move the contents out: returns a malloc'd NUL-terminated string (never
 * NULL unless out of memory) and leaves b empty with the same cap. */
char *ft_buf_take(struct ft_buf *b);

#endif
