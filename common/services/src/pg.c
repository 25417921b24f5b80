/*
 * pg.c - a fixed pool of libpq connections guarded by one mutex and a
 * condition variable. Connections are opened lazily; a connection whose
 * status is bad is reset (PQreset) when taken.
 */
#include <pthread.h>

#include "ft/clock.h"
#include "ft/pg.h"

struct ft_pg_pool {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	char *conninfo;
	int size;
	PGconn **conns; /* NULL until first opened */
	bool *busy;
};

struct ft_pg_pool *ft_pg_pool_new(const char *conninfo, int size, struct ft_err *err)
{
	struct ft_pg_pool *p;
	if (size < 1 || size > 1024) {
		ft_failf(err, FT_EINVAL, "invalid_config", "pool size must be 1..1024 (got %d)",
			 size);
		return NULL;
	}
	p = ft_xcalloc(1, sizeof(*p));
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cv, NULL);
	p->conninfo = ft_xstrdup(conninfo);
	p->size = size;
	p->conns = ft_xcalloc((size_t)size, sizeof(PGconn *));
	p->busy = ft_xcalloc((size_t)size, sizeof(bool));
	return p;
}

void ft_pg_pool_free(struct ft_pg_pool *p)
{
	if (!p)
		return;
	for (int i = 0; i < p->size; i++)
		if (p->conns[i])
			PQfinish(p->conns[i]);
	free(p->conns);
	free(p->busy);
	free(p->conninfo);
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->cv);
	free(p);
}

int ft_pg_pool_size(const struct ft_pg_pool *p)
{
	return p->size;
}

static bool conn_ok(PGconn *c)
{
	return c && PQstatus(c) == CONNECTION_OK;
}

/* Open or repair slot i (called without the lock; the slot is ours). */
static enum ft_rc ensure_conn(struct ft_pg_pool *p, int i, struct ft_err *err)
{
	if (!p->conns[i]) {
		p->conns[i] = PQconnectdb(p->conninfo);
	} else if (!conn_ok(p->conns[i])) {
		PQreset(p->conns[i]);
	}
	if (!conn_ok(p->conns[i])) {
		ft_failf(err, FT_EUNAVAIL, "db_unavailable", "cannot connect to PostgreSQL");
		ft_err_detailf(err, "%s",
			       p->conns[i] ? PQerrorMessage(p->conns[i]) : "out of memory");
		if (p->conns[i]) {
			PQfinish(p->conns[i]);
			p->conns[i] = NULL;
		}
		return FT_EUNAVAIL;
	}
	return FT_OK;
}

PGconn *ft_pg_pool_get(struct ft_pg_pool *p, int timeout_ms, struct ft_err *err)
{
	struct ft_deadline dl = ft_deadline_in_ms(timeout_ms > 0 ? (uint64_t)timeout_ms : 0);
	int slot = -1;

	pthread_mutex_lock(&p->mu);
	for (;;) {
		/* Prefer an already-open idle connection. */
		for (int i = 0; i < p->size && slot < 0; i++)
			if (!p->busy[i] && p->conns[i])
				slot = i;
		for (int i = 0; i < p->size && slot < 0; i++)
			if (!p->busy[i])
				slot = i;
		if (slot >= 0 || ft_deadline_passed(dl))
			break;
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		uint64_t left = ft_deadline_left_ms(dl);
		ts.tv_sec += (time_t)(left / 1000);
		ts.tv_nsec += (long)(left % 1000) * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&p->cv, &p->mu, &ts);
	}
	if (slot >= 0)
		p->busy[slot] = true;
	pthread_mutex_unlock(&p->mu);

	if (slot < 0) {
		ft_failf(err, FT_EUNAVAIL, "db_busy",
			 "no free PostgreSQL connection within %d ms (pool of %d)", timeout_ms,
			 p->size);
		return NULL;
	}
	if (ensure_conn(p, slot, err)) {
		pthread_mutex_lock(&p->mu);
		p->busy[slot] = false;
		pthread_cond_signal(&p->cv);
		pthread_mutex_unlock(&p->mu);
		return NULL;
	}
	return p->conns[slot];
}

void ft_pg_pool_put(struct ft_pg_pool *p, PGconn *conn)
{
	if (!conn)
		return;
	if (PQtransactionStatus(conn) != PQTRANS_IDLE && PQstatus(conn) == CONNECTION_OK) {
		PGresult *r = PQexec(conn, "ROLLBACK");
		PQclear(r);
	}
	pthread_mutex_lock(&p->mu);
	for (int i = 0; i < p->size; i++) {
		if (p->conns[i] == conn) {
			FT_ASSERT(p->busy[i]);
			p->busy[i] = false;
			pthread_cond_signal(&p->cv);
			pthread_mutex_unlock(&p->mu);
			return;
		}
	}
	pthread_mutex_unlock(&p->mu);
	FT_ASSERT(!"connection does not belong to this pool");
}

PGresult *ft_pg_exec(PGconn *conn, struct ft_err *err, const char *sql, int nparams,
		     const char *const *params)
{
	PGresult *r = PQexecParams(conn, sql, nparams, NULL, params, NULL, NULL, 0);
	ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
	if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
		return r;

	const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
	const char *primary = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
	if (!state)
		state = PQstatus(conn) == CONNECTION_OK ? "" : "08006";
	if (strcmp(state, "23505") == 0)
		ft_failf(err, FT_ECONFLICT, "db_conflict", "already exists");
	else if (strncmp(state, "08", 2) == 0 || PQstatus(conn) != CONNECTION_OK)
		ft_failf(err, FT_EUNAVAIL, "db_unavailable", "lost the PostgreSQL connection");
	else
		ft_failf(err, FT_EDB, "db_error", "database error");
	ft_err_detailf(err, "%s", primary ? primary : PQerrorMessage(conn));
	ft_err_hintf(err, "%s", state);
	PQclear(r);
	return NULL;
}

PGresult *ft_pg_exec_prepared(PGconn *conn, struct ft_err *err, const char *name, const char *sql,
			      int nparams, const char *const *params)
{
	for (int attempt = 0; attempt < 2; attempt++) {
		PGresult *r = PQexecPrepared(conn, name, nparams, params, NULL, NULL, 0);
		ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
		if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK)
			return r;
		const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
		bool unknown = state && strcmp(state, "26000") == 0;
		PQclear(r);
		if (!unknown || attempt)
			break;
		PGresult *prep = PQprepare(conn, name, sql, nparams, NULL);
		bool ok = prep && PQresultStatus(prep) == PGRES_COMMAND_OK;
		PQclear(prep);
		if (!ok)
			break;
	}
	/* Say why, the usual way. */
	return ft_pg_exec(conn, err, sql, nparams, params);
}

enum ft_rc ft_pg_command(PGconn *conn, struct ft_err *err, const char *sql, int nparams,
			 const char *const *params)
{
	struct ft_err local;
	ft_err_clear(&local);
	PGresult *r = ft_pg_exec(conn, err ? err : &local, sql, nparams, params);
	if (!r)
		return err ? err->rc : local.rc;
	PQclear(r);
	return FT_OK;
}

const char *ft_pg_sqlstate(const struct ft_err *err)
{
	if (!err || (err->rc != FT_EDB && err->rc != FT_ECONFLICT && err->rc != FT_EUNAVAIL))
		return "";
	return err->hint;
}
