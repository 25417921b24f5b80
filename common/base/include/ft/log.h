/*
 * ft/log.h - JSON-lines logging to stderr.
 *
 * One line per record, written with a single write(2) so lines from threads
 * and processes do not interleave:
 *   {"ts":"2026-11-23T06:30:00.123Z","level":"info","component":"api",
 *    "job":"ftjob-...","msg":"..."}
 * "job" is present only when a job id is given.
 */
#ifndef FT_LOG_H
#define FT_LOG_H

#include "ft/base.h"

enum ft_log_level { FT_LOG_DEBUG = 0, FT_LOG_INFO, FT_LOG_WARN, FT_LOG_ERROR };

/* Set the component name used when a call passes NULL, and the minimum level. */
void ft_log_init(const char *component, enum ft_log_level min);
/* Parse "debug" | "info" | "warn" | "error"; false when unknown. */
bool ft_log_level_parse(const char *s, enum ft_log_level *out);
/* Redirect output (tests); fd -1 restores stderr. */
void ft_log_set_fd(int fd);

void ft_logf(enum ft_log_level level, const char *component, const char *job_id, const char *fmt,
	     ...) FT_PRINTF(4, 5);

#define ft_debug(...) ft_logf(FT_LOG_DEBUG, NULL, NULL, __VA_ARGS__)
#define ft_info(...) ft_logf(FT_LOG_INFO, NULL, NULL, __VA_ARGS__)
#define ft_warn(...) ft_logf(FT_LOG_WARN, NULL, NULL, __VA_ARGS__)
#define ft_error(...) ft_logf(FT_LOG_ERROR, NULL, NULL, __VA_ARGS__)

#endif
