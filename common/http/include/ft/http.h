/*
 * ft/http.h - what ft-api and ft-serve share of serving HTTP (library
 * fthttp: no libmicrohttpd here, each server drives its own connections):
 *
 *   the request arena   everything a request allocates comes from it or is
 *                       registered on it (ft_arena_defer) and is freed when
 *                       the request ends, however it ends (nginx's pools)
 *   route patterns      literal segments and "{x}" placeholders, matched
 *                       segment by segment, placeholders in order; a final
 *                       "{*}" takes the rest of the URL
 *   JSON bodies         the one Content-Type rule (application/json or
 *                       application/<x>+json, parameters ignored; 415 else)
 *   errors              THE mapping of a struct ft_err to an HTTP status and
 *                       OpenAI's error body {"error": {"type", "code",
 *                       "message", "param", "line"}}: by code when the code
 *                       says more than its rc (rate limits, busy servers,
 *                       content types), else by rc
 *
 * Ownership: ft_arena_new's arena is freed by ft_arena_free, which runs
 * the deferred cleanups newest first; ft_http_error_json returns a new
 * reference.
 */
#ifndef FT_HTTP_H
#define FT_HTTP_H

#include <jansson.h>

#include "ft/base.h"
#include "ft/err.h"

struct ft_arena;
struct ft_arena *ft_arena_new(void);
void ft_arena_free(struct ft_arena *a); /* runs cleanups, newest first */
void *ft_arena_alloc(struct ft_arena *a, size_t n); /* zeroed; aborts on OOM (small sizes) */
char *ft_arena_strdup(struct ft_arena *a, const char *s);
char *ft_arena_printf(struct ft_arena *a, const char *fmt, ...) FT_PRINTF(2, 3);
void ft_arena_defer(struct ft_arena *a, void (*fn)(void *), void *p);

/* Does url match pattern? params (when not NULL) get arena copies of the
 * placeholders' values, at most max_params of them. */
bool ft_http_route_match(const char *pattern, const char *url, struct ft_arena *a,
			 const char **params, int max_params);

/* A Content-Type that names JSON. */
bool ft_http_media_is_json(const char *content_type);

/* The status of an error, and OpenAI's type for a status
 * ("invalid_request_error", "rate_limit_error", ...). */
int ft_http_error_status(const struct ft_err *e);
const char *ft_http_error_type(int status);
/* {"error": {"type", "code", "message", "param", "line"}} */
json_t *ft_http_error_json(const struct ft_err *e, int status);

#endif
