/*
 * ft/pg.h - PostgreSQL: a fixed-size connection pool over libpq and
 * helpers that turn libpq failures into struct ft_err.
 *
 * A connection taken with ft_pg_pool_get() belongs to the caller until
 * ft_pg_pool_put(). A broken connection (server restarted) is reset when it
 * is next taken. Put back a connection with an open transaction and the pool
 * rolls it back first.
 */
#ifndef FT_PG_H
#define FT_PG_H

#include <libpq-fe.h>

#include "ft/err.h"

struct ft_pg_pool;

struct ft_pg_pool *ft_pg_pool_new(const char *conninfo, int size, struct ft_err *err);
void ft_pg_pool_free(struct ft_pg_pool *pool);
/* Wait up to timeout_ms for a free connection; NULL and FT_EUNAVAIL when
 * none came or the server cannot be reached. */
PGconn *ft_pg_pool_get(struct ft_pg_pool *pool, int timeout_ms, struct ft_err *err);
void ft_pg_pool_put(struct ft_pg_pool *pool, PGconn *conn);
int ft_pg_pool_size(const struct ft_pg_pool *pool);

/* PQexecParams with text parameters. Returns the result (caller PQclear()s)
 * on PGRES_COMMAND_OK / PGRES_TUPLES_OK, else NULL with err filled: code
 * "db_error" (or "db_conflict" for unique violations, FT_ECONFLICT), the
 * server's message in detail and the SQLSTATE in hint. */
PGresult *ft_pg_exec(PGconn *conn, struct ft_err *err, const char *sql, int nparams,
		     const char *const *params);

/* The same as a named prepared statement: planning costs more than running
 * a point lookup. A connection that does not know the statement yet (new
 * or reset) answers 26000; then it is prepared and run again. Must not be
 * used inside a transaction (the failed first try would abort it). */
PGresult *ft_pg_exec_prepared(PGconn *conn, struct ft_err *err, const char *name, const char *sql,
			      int nparams, const char *const *params);

/* Run a statement that returns no rows; FT_OK or the error. */
enum ft_rc ft_pg_command(PGconn *conn, struct ft_err *err, const char *sql, int nparams,
			 const char *const *params);

/* The SQLSTATE of the last failed ft_pg_exec on err, e.g. "23505", or "". */
const char *ft_pg_sqlstate(const struct ft_err *err);

#endif
