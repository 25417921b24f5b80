/*
 * ft/err.h - the one error record.
 *
 * A caller that wants to know why an action failed passes a struct ft_err;
 * the callee fills it once with ft_failf(). The first failure wins (like
 * curl's Curl_failf): later calls on an already-failed record only return
 * the rc, so the root cause is not overwritten by the callers that unwind.
 *
 * Fields (PostgreSQL's errmsg / errdetail / errhint, plus what the API needs):
 *   rc      enum ft_rc class of the failure
 *   code    machine code, snake_case, stable for clients ("invalid_json")
 *   msg     one line, lower case, names the thing: `"model" must be a string`
 *   detail  optional second line (the server's own message, an offset)
 *   hint    optional: what to do about it
 *   param   optional: the offending request field ("hyperparameters.n_epochs")
 *   line    optional: 1-based line of a data file, 0 when not about a line
 *
 * An err pointer may be NULL when the caller does not care.
 */
#ifndef FT_ERR_H
#define FT_ERR_H

#include "ft/base.h"

struct ft_err {
	enum ft_rc rc;
	char code[48];
	char msg[512];
	char detail[512];
	char hint[256];
	char param[128];
	long line;
};

/* Reset to "no error". */
void ft_err_clear(struct ft_err *e);

/* Record a failure (unless one is already recorded) and return rc.
 * code may be NULL, then the rc name is used. */
enum ft_rc ft_failf(struct ft_err *e, enum ft_rc rc, const char *code, const char *fmt, ...)
	FT_PRINTF(4, 5);
enum ft_rc ft_vfailf(struct ft_err *e, enum ft_rc rc, const char *code, const char *fmt, va_list ap)
	FT_PRINTF(4, 0);

/* Decorate the recorded failure. Each keeps the first value set. */
void ft_err_detailf(struct ft_err *e, const char *fmt, ...) FT_PRINTF(2, 3);
void ft_err_hintf(struct ft_err *e, const char *fmt, ...) FT_PRINTF(2, 3);
void ft_err_param(struct ft_err *e, const char *param);
void ft_err_line(struct ft_err *e, long line);

/* Prefix the message ("loading config: " + msg); used when a lower layer
 * does not know the context. Always applies, even on an already-set error. */
void ft_err_prefixf(struct ft_err *e, const char *fmt, ...) FT_PRINTF(2, 3);

static inline bool ft_err_is_set(const struct ft_err *e)
{
	return e && e->rc != FT_OK;
}

#endif
