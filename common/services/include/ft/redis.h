/*
 * ft/redis.h - a Redis connection that reconnects.
 *
 * URL form: redis://[:password@]host[:port][/db]. A command that fails with
 * an I/O error (server restarted, connection killed) is retried once on a
 * fresh connection when the call says it is safe (FT_REDIS_RETRY); other
 * failures come back as FT_EREDIS with Redis's message. Not thread-safe:
 * one struct ft_redis per thread.
 */
#ifndef FT_REDIS_H
#define FT_REDIS_H

#include <hiredis/hiredis.h>

#include "ft/err.h"

struct ft_redis;

enum ft_redis_flags {
	FT_REDIS_RETRY = 1 << 0, /* idempotent: safe to send again after a reconnect */
};

struct ft_redis *ft_redis_new(const char *url, int timeout_ms, struct ft_err *err);
void ft_redis_free(struct ft_redis *r);

/* Run one command given as argv (binary safe). Returns the reply (caller
 * freeReplyObject()s) or NULL with err filled. A reply of type ERROR is
 * turned into FT_EREDIS and freed. */
redisReply *ft_redis_cmdargv(struct ft_redis *r, unsigned flags, struct ft_err *err, int argc,
			     const char **argv, const size_t *argvlen);
/* printf-style command (hiredis format: %s, %b, %d ...). */
redisReply *ft_redis_cmd(struct ft_redis *r, unsigned flags, struct ft_err *err, const char *fmt,
			 ...);

/* How many times this handle has (re)connected; for tests and metrics. */
unsigned ft_redis_connects(const struct ft_redis *r);

#endif
