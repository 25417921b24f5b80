/*
 * redis.c - a hiredis context that reconnects on I/O errors.
 */
#include <ctype.h>

#include "ft/redis.h"

struct ft_redis {
	redisContext *c;
	char host[256];
	int port;
	int db;
	char password[256];
	int timeout_ms;
	unsigned connects;
};

static enum ft_rc parse_url(struct ft_redis *r, const char *url, struct ft_err *err)
{
	const char *p, *at, *slash, *colon, *hostend;
	if (strncmp(url, "redis://", 8) != 0)
		return ft_failf(err, FT_EINVAL, "invalid_config",
				"redis url must start with redis:// (got \"%s\")", url);
	p = url + 8;
	slash = strchr(p, '/');
	hostend = slash ? slash : p + strlen(p);
	at = memchr(p, '@', (size_t)(hostend - p));
	if (at) {
		const char *pw = p;
		if (*pw == ':')
			pw++;
		else if (memchr(p, ':', (size_t)(at - p)))
			pw = (const char *)memchr(p, ':', (size_t)(at - p)) + 1;
		if ((size_t)(at - pw) >= sizeof(r->password))
			return ft_failf(err, FT_EINVAL, "invalid_config",
					"redis password too long");
		memcpy(r->password, pw, (size_t)(at - pw));
		r->password[at - pw] = '\0';
		p = at + 1;
	}
	colon = memchr(p, ':', (size_t)(hostend - p));
	const char *hend = colon ? colon : hostend;
	if (hend == p || (size_t)(hend - p) >= sizeof(r->host))
		return ft_failf(err, FT_EINVAL, "invalid_config", "redis url \"%s\": bad host",
				url);
	memcpy(r->host, p, (size_t)(hend - p));
	r->host[hend - p] = '\0';
	r->port = 6379;
	if (colon) {
		char *end;
		long port = strtol(colon + 1, &end, 10);
		if (end != hostend || port < 1 || port > 65535)
			return ft_failf(err, FT_EINVAL, "invalid_config",
					"redis url \"%s\": bad port", url);
		r->port = (int)port;
	}
	r->db = 0;
	if (slash && slash[1]) {
		char *end;
		long db = strtol(slash + 1, &end, 10);
		if (*end || db < 0 || db > 1000000)
			return ft_failf(err, FT_EINVAL, "invalid_config",
					"redis url \"%s\": bad database number", url);
		r->db = (int)db;
	}
	return FT_OK;
}

static enum ft_rc do_connect(struct ft_redis *r, struct ft_err *err)
{
	struct timeval tv = { r->timeout_ms / 1000, (r->timeout_ms % 1000) * 1000 };
	redisReply *rep;

	if (r->c) {
		redisFree(r->c);
		r->c = NULL;
	}
	r->c = redisConnectWithTimeout(r->host, r->port, tv);
	if (!r->c || r->c->err) {
		ft_failf(err, FT_EUNAVAIL, "redis_unavailable", "cannot connect to Redis at %s:%d",
			 r->host, r->port);
		ft_err_detailf(err, "%s", r->c ? r->c->errstr : "out of memory");
		goto fail;
	}
	redisSetTimeout(r->c, tv);
	if (r->password[0]) {
		rep = redisCommand(r->c, "AUTH %s", r->password);
		if (!rep || rep->type == REDIS_REPLY_ERROR) {
			ft_failf(err, FT_EAUTH, "redis_auth", "Redis refused the password");
			if (rep)
				freeReplyObject(rep);
			goto fail;
		}
		freeReplyObject(rep);
	}
	if (r->db) {
		rep = redisCommand(r->c, "SELECT %d", r->db);
		if (!rep || rep->type == REDIS_REPLY_ERROR) {
			ft_failf(err, FT_EREDIS, "redis_error", "Redis SELECT %d failed", r->db);
			if (rep)
				freeReplyObject(rep);
			goto fail;
		}
		freeReplyObject(rep);
	}
	r->connects++;
	return FT_OK;
fail:
	if (r->c) {
		redisFree(r->c);
		r->c = NULL;
	}
	return err ? err->rc : FT_EUNAVAIL;
}

struct ft_redis *ft_redis_new(const char *url, int timeout_ms, struct ft_err *err)
{
	struct ft_redis *r = ft_xcalloc(1, sizeof(*r));
	r->timeout_ms = timeout_ms > 0 ? timeout_ms : 2000;
	if (parse_url(r, url, err) || do_connect(r, err)) {
		ft_redis_free(r);
		return NULL;
	}
	return r;
}

void ft_redis_free(struct ft_redis *r)
{
	if (!r)
		return;
	if (r->c)
		redisFree(r->c);
	free(r);
}

unsigned ft_redis_connects(const struct ft_redis *r)
{
	return r->connects;
}

static redisReply *check_reply(struct ft_redis *r, redisReply *rep, struct ft_err *err)
{
	if (rep && rep->type == REDIS_REPLY_ERROR) {
		ft_failf(err, FT_EREDIS, "redis_error", "Redis error: %.*s", (int)rep->len,
			 rep->str);
		freeReplyObject(rep);
		return NULL;
	}
	if (!rep) {
		ft_failf(err, FT_EUNAVAIL, "redis_unavailable", "Redis connection failed");
		ft_err_detailf(err, "%s", r->c ? r->c->errstr : "not connected");
	}
	return rep;
}

/* Connect when there is no live context; false (err filled) when that fails. */
static bool ensure_connected(struct ft_redis *r, struct ft_err *err)
{
	struct ft_err cerr;
	if (r->c && !r->c->err)
		return true;
	ft_err_clear(&cerr);
	if (do_connect(r, &cerr) == FT_OK)
		return true;
	if (err && !ft_err_is_set(err))
		*err = cerr;
	return false;
}

redisReply *ft_redis_cmdargv(struct ft_redis *r, unsigned flags, struct ft_err *err, int argc,
			     const char **argv, const size_t *argvlen)
{
	redisReply *rep = NULL;
	for (int attempt = 0; attempt < 2; attempt++) {
		if (!ensure_connected(r, err))
			return NULL;
		rep = redisCommandArgv(r->c, argc, argv, argvlen);
		if (rep || !(flags & FT_REDIS_RETRY))
			break;
		/* I/O error: drop the context; retry once on a fresh one. */
		redisFree(r->c);
		r->c = NULL;
	}
	return check_reply(r, rep, err);
}

redisReply *ft_redis_cmd(struct ft_redis *r, unsigned flags, struct ft_err *err, const char *fmt,
			 ...)
{
	redisReply *rep = NULL;
	va_list ap;
	for (int attempt = 0; attempt < 2; attempt++) {
		if (!ensure_connected(r, err))
			return NULL;
		va_start(ap, fmt);
		rep = redisvCommand(r->c, fmt, ap);
		va_end(ap);
		if (rep || !(flags & FT_REDIS_RETRY))
			break;
		redisFree(r->c);
		r->c = NULL;
	}
	return check_reply(r, rep, err);
}
