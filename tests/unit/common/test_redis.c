/*
 * test_redis.c - the reconnecting Redis helper against the real Redis
 * started by tests/run.sh (FT_REDIS_URL).
 */
#include "ft/redis.h"
#include "ftest.h"

static const char *redis_url(void)
{
	return getenv("FT_REDIS_URL");
}

FT_TEST(redis_commands_and_errors)
{
	struct ft_err e;
	if (!redis_url())
		FT_SKIP("FT_REDIS_URL not set");
	ft_err_clear(&e);
	struct ft_redis *r = ft_redis_new(redis_url(), 2000, &e);
	FT_CHECK(r != NULL);
	redisReply *rep = ft_redis_cmd(r, 0, &e, "SET %s %b", "ft:test:bin", "a\0b", (size_t)3);
	FT_CHECK(rep && rep->type == REDIS_REPLY_STATUS);
	freeReplyObject(rep);
	const char *argv[] = { "GET", "ft:test:bin" };
	rep = ft_redis_cmdargv(r, FT_REDIS_RETRY, &e, 2, argv, NULL);
	FT_CHECK(rep && rep->type == REDIS_REPLY_STRING && rep->len == 3);
	FT_CHECK(memcmp(rep->str, "a\0b", 3) == 0);
	freeReplyObject(rep);
	/* A Redis error reply becomes FT_EREDIS with the server's words. */
	rep = ft_redis_cmd(r, 0, &e, "INCR %s", "ft:test:bin");
	FT_CHECK(rep == NULL);
	FT_CHECK(e.rc == FT_EREDIS);
	FT_CHECK(strstr(e.msg, "not an integer") != NULL);
	ft_err_clear(&e);
	rep = ft_redis_cmd(r, 0, &e, "DEL %s", "ft:test:bin");
	freeReplyObject(rep);
	ft_redis_free(r);
}

FT_TEST(redis_reconnects_after_client_kill)
{
	struct ft_err e;
	if (!redis_url())
		FT_SKIP("FT_REDIS_URL not set");
	ft_err_clear(&e);
	struct ft_redis *r = ft_redis_new(redis_url(), 2000, &e);
	struct ft_redis *admin = ft_redis_new(redis_url(), 2000, &e);
	FT_CHECK(r && admin);
	FT_CHECK_INT(ft_redis_connects(r), 1);
	redisReply *rep = ft_redis_cmd(r, 0, &e, "CLIENT ID");
	FT_CHECK(rep && rep->type == REDIS_REPLY_INTEGER);
	long long id = rep->integer;
	freeReplyObject(rep);
	rep = ft_redis_cmd(admin, 0, &e, "CLIENT KILL ID %lld", id);
	FT_CHECK(rep && rep->integer == 1);
	freeReplyObject(rep);

	/* An idempotent command is retried on a new connection. */
	rep = ft_redis_cmd(r, FT_REDIS_RETRY, &e, "PING");
	FT_CHECK(rep != NULL);
	FT_CHECK_STR(rep->str, "PONG");
	freeReplyObject(rep);
	FT_CHECK_INT(ft_redis_connects(r), 2);

	/* Without RETRY the failure is reported, and the next call reconnects. */
	rep = ft_redis_cmd(r, 0, &e, "CLIENT ID");
	id = rep->integer;
	freeReplyObject(rep);
	rep = ft_redis_cmd(admin, 0, &e, "CLIENT KILL ID %lld", id);
	freeReplyObject(rep);
	ft_err_clear(&e);
	rep = ft_redis_cmd(r, 0, &e, "PING");
	FT_CHECK(rep == NULL);
	FT_CHECK(e.rc == FT_EUNAVAIL);
	ft_err_clear(&e);
	rep = ft_redis_cmd(r, 0, &e, "PING");
	FT_CHECK(rep != NULL);
	freeReplyObject(rep);
	FT_CHECK_INT(ft_redis_connects(r), 3);
	ft_redis_free(r);
	ft_redis_free(admin);
}

FT_TEST(redis_bad_urls_and_unreachable)
{
	struct ft_err e;
	ft_err_clear(&e);
	FT_CHECK(ft_redis_new("http://x", 100, &e) == NULL);
	FT_CHECK(strstr(e.msg, "redis://") != NULL);
	ft_err_clear(&e);
	FT_CHECK(ft_redis_new("redis://127.0.0.1:99999", 100, &e) == NULL);
	FT_CHECK(strstr(e.msg, "bad port") != NULL);
	ft_err_clear(&e);
	/* Port 1 on loopback: nothing listens there. */
	FT_CHECK(ft_redis_new("redis://127.0.0.1:1/0", 200, &e) == NULL);
	FT_CHECK(e.rc == FT_EUNAVAIL);
	FT_CHECK(strstr(e.msg, "127.0.0.1:1") != NULL);
}

FT_TEST_MAIN()
