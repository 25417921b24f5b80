/*
 * ft/base.h - what every ftplat source file gets first.
 *
 * Includes the standard headers the project leans on, defines the small
 * result enum every action returns, the assert macro, and finally pulls in
 * banned.h so that unsafe string functions fail to build anywhere after it.
 *
 * Memory rule for the whole code base (jq's jv.h style):
 *   - `_new` returns an object the caller owns and frees with `_free`;
 *   - `_init` / `_release` set up and tear down the contents of a struct the
 *     caller owns;
 *   - a function whose name ends in `_take` moves ownership out of its
 *     argument; one whose parameter is named `*_new` steals it.
 */
#ifndef FT_BASE_H
#define FT_BASE_H

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Result of an action. 0 is success; the human story is in struct ft_err. */
enum ft_rc {
	FT_OK = 0,
	FT_EINVAL, /* bad input from the caller or the user */
	FT_ENOMEM, /* allocation failed */
	FT_EIO, /* file or socket I/O failed */
	FT_ENOTFOUND, /* the named thing does not exist */
	FT_ECONFLICT, /* state does not allow it (already exists, wrong status) */
	FT_EAUTH, /* missing or bad credentials */
	FT_EPERM, /* authenticated, but not allowed */
	FT_ELIMIT, /* a size or rate limit was hit */
	FT_EDB, /* PostgreSQL error */
	FT_EREDIS, /* Redis error */
	FT_EUNAVAIL, /* a dependency is down; try again later */
	FT_EFORMAT, /* a file is not in the expected format */
	FT_EINTERNAL, /* a bug: should not happen */
	FT_RC_COUNT
};

/* Short lower-case name of a result ("invalid", "not_found", ...). */
const char *ft_rc_name(enum ft_rc rc);

#define FT_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define FT_MIN(a, b) ((a) < (b) ? (a) : (b))
#define FT_MAX(a, b) ((a) > (b) ? (a) : (b))
#define FT_UNUSED(x) ((void)(x))

#if defined(__GNUC__)
#define FT_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#define FT_NORETURN __attribute__((noreturn))
#define FT_WARN_UNUSED __attribute__((warn_unused_result))
#else
#define FT_PRINTF(fmt, args)
#define FT_NORETURN
#define FT_WARN_UNUSED
#endif

/* Programmer errors: abort with file and line. Always on, also in release. */
FT_NORETURN void ft_assert_fail(const char *expr, const char *file, int line, const char *func);
#define FT_ASSERT(e) ((e) ? (void)0 : ft_assert_fail(#e, __FILE__, __LINE__, __func__))

/* Allocation that aborts on failure, for small fixed-size bookkeeping only.
 * Anything whose size comes from outside input uses plain malloc and reports
 * FT_ENOMEM instead. */
void *ft_xmalloc(size_t n);
void *ft_xcalloc(size_t n, size_t size);
char *ft_xstrdup(const char *s);

/* Copy at most dstsz-1 bytes and NUL-terminate; returns strlen(src) so that
 * truncation is visible (result >= dstsz), like BSD strlcpy. */
size_t ft_strlcpy(char *dst, const char *src, size_t dstsz);

#include "ft/banned.h"

#endif
