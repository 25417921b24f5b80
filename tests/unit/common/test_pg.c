/*
 * test_pg.c - the connection pool against the real PostgreSQL started by
 * tests/run.sh (FT_DATABASE_URL). Skips when no server is configured.
 */
#include <pthread.h>

#include "ft/pg.h"
#include "ftest.h"

static const char *db_url(void)
{
	return getenv("FT_DATABASE_URL");
}

FT_TEST(pg_pool_query_and_errors)
{
	struct ft_err e;
	if (!db_url())
		FT_SKIP("FT_DATABASE_URL not set");
	ft_err_clear(&e);
	struct ft_pg_pool *p = ft_pg_pool_new(db_url(), 2, &e);
	FT_CHECK(p != NULL);
	PGconn *c = ft_pg_pool_get(p, 1000, &e);
	FT_CHECK(c != NULL);
	const char *params[] = { "20", "22" };
	PGresult *r = ft_pg_exec(c, &e, "SELECT $1::int + $2::int", 2, params);
	FT_CHECK(r != NULL);
	FT_CHECK_STR(PQgetvalue(r, 0, 0), "42");
	PQclear(r);

	/* A unique violation is a conflict with the SQLSTATE kept. */
	FT_CHECK(ft_pg_command(c, &e, "CREATE TEMP TABLE t (k int PRIMARY KEY)", 0, NULL) == FT_OK);
	FT_CHECK(ft_pg_command(c, &e, "INSERT INTO t VALUES (1)", 0, NULL) == FT_OK);
	FT_CHECK(ft_pg_command(c, &e, "INSERT INTO t VALUES (1)", 0, NULL) == FT_ECONFLICT);
	FT_CHECK_STR(ft_pg_sqlstate(&e), "23505");
	ft_err_clear(&e);
	FT_CHECK(ft_pg_command(c, &e, "SELEC 1", 0, NULL) == FT_EDB);
	FT_CHECK_STR(ft_pg_sqlstate(&e), "42601");
	FT_CHECK(strstr(e.detail, "syntax error") != NULL);

	/* An open transaction is rolled back when the connection goes back. */
	ft_err_clear(&e);
	FT_CHECK(ft_pg_command(c, &e, "BEGIN", 0, NULL) == FT_OK);
	ft_pg_pool_put(p, c);
	c = ft_pg_pool_get(p, 1000, &e);
	FT_CHECK(c != NULL);
	FT_CHECK(PQtransactionStatus(c) == PQTRANS_IDLE);
	ft_pg_pool_put(p, c);
	ft_pg_pool_free(p);
}

FT_TEST(pg_pool_exhaustion_times_out)
{
	struct ft_err e;
	if (!db_url())
		FT_SKIP("FT_DATABASE_URL not set");
	ft_err_clear(&e);
	struct ft_pg_pool *p = ft_pg_pool_new(db_url(), 1, &e);
	PGconn *a = ft_pg_pool_get(p, 1000, &e);
	FT_CHECK(a != NULL);
	PGconn *b = ft_pg_pool_get(p, 50, &e);
	FT_CHECK(b == NULL);
	FT_CHECK(e.rc == FT_EUNAVAIL);
	FT_CHECK_STR(e.code, "db_busy");
	ft_pg_pool_put(p, a);
	ft_pg_pool_free(p);
}

FT_TEST(pg_pool_recovers_killed_connection)
{
	struct ft_err e;
	if (!db_url())
		FT_SKIP("FT_DATABASE_URL not set");
	ft_err_clear(&e);
	struct ft_pg_pool *p = ft_pg_pool_new(db_url(), 2, &e);
	PGconn *victim = ft_pg_pool_get(p, 1000, &e);
	PGconn *killer = ft_pg_pool_get(p, 1000, &e);
	FT_CHECK(victim && killer);
	char pid[32];
	snprintf(pid, sizeof(pid), "%d", PQbackendPID(victim));
	const char *params[] = { pid };
	PGresult *r = ft_pg_exec(killer, &e, "SELECT pg_terminate_backend($1::int)", 1, params);
	FT_CHECK(r != NULL);
	PQclear(r);
	/* The victim notices on its next query... */
	r = ft_pg_exec(victim, &e, "SELECT 1", 0, NULL);
	FT_CHECK(r == NULL);
	ft_pg_pool_put(p, victim);
	/* ...and the pool hands out a working connection again. */
	ft_err_clear(&e);
	PGconn *again = ft_pg_pool_get(p, 1000, &e);
	FT_CHECK(again != NULL);
	r = ft_pg_exec(again, &e, "SELECT 7", 0, NULL);
	FT_CHECK(r != NULL);
	FT_CHECK_STR(PQgetvalue(r, 0, 0), "7");
	PQclear(r);
	ft_pg_pool_put(p, again);
	ft_pg_pool_put(p, killer);
	ft_pg_pool_free(p);
}

struct worker_arg {
	struct ft_pg_pool *p;
	int ok;
};

static void *hammer(void *arg)
{
	struct worker_arg *w = arg;
	for (int i = 0; i < 50; i++) {
		struct ft_err e;
		ft_err_clear(&e);
		PGconn *c = ft_pg_pool_get(w->p, 5000, &e);
		if (!c)
			continue;
		PGresult *r = ft_pg_exec(c, &e, "SELECT 1", 0, NULL);
		if (r) {
			w->ok++;
			PQclear(r);
		}
		ft_pg_pool_put(w->p, c);
	}
	return NULL;
}

FT_TEST(pg_pool_shared_by_threads)
{
	struct ft_err e;
	if (!db_url())
		FT_SKIP("FT_DATABASE_URL not set");
	ft_err_clear(&e);
	struct ft_pg_pool *p = ft_pg_pool_new(db_url(), 3, &e);
	pthread_t t[8];
	struct worker_arg w[8];
	for (int i = 0; i < 8; i++) {
		w[i].p = p;
		w[i].ok = 0;
		pthread_create(&t[i], NULL, hammer, &w[i]);
	}
	int total = 0;
	for (int i = 0; i < 8; i++) {
		pthread_join(t[i], NULL);
		total += w[i].ok;
	}
	FT_CHECK_INT(total, 400);
	ft_pg_pool_free(p);
}

FT_TEST_MAIN()
