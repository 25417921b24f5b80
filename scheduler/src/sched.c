/*
 * sched.c - the scheduler loop and leadership.
 *
 * Leadership is a session-level PostgreSQL advisory lock taken on the
 * scheduler's own connection: it is released the moment that session ends
 * (process killed, connection lost), and it does not depend on Redis, so a
 * Redis wipe never produces two leaders. Standbys poll for the lock every
 * tick. Every state change the leader makes is also guarded in SQL, so even
 * a brief overlap could not dispatch a job twice.
 *
 * One tick of the leader:
 *   1. persist events from the stream   (persist.c)
 *   2. read worker heartbeats            (dispatch.c)
 *   3. renew leases of what they run
 *   4. requeue the jobs of lost workers (lease expired)
 *   5. push cancels for cancelling jobs
 *   6. dispatch queued jobs
 */
#include "sched_int.h"

#define LEADER_LOCK_KEY "7346202"

PGresult *sched_q(struct sched *s, struct ft_err *err, const char *sql, int n,
		  const char *const *params)
{
	return ft_pg_exec(s->pg, err, sql, n, params);
}

enum ft_rc sched_tx(struct sched *s, const char *what, struct ft_err *err)
{
	return ft_pg_command(s->pg, err, what, 0, NULL);
}

enum ft_rc sched_note_transition(struct sched *s, const char *job, const char *from, const char *to,
				 int attempt, const char *reason, struct ft_err *err)
{
	char att[16], evid[FT_ID_MAX], msg[512];
	snprintf(att, sizeof(att), "%d", attempt);
	const char *p1[] = { job, from, to, att, reason };
	if (ft_pg_command(
		    s->pg, err,
		    "INSERT INTO job_transitions (job_id, from_status, to_status, attempt, reason)"
		    " VALUES ($1, $2, $3, $4::int, $5)",
		    5, p1))
		return FT_EDB;
	ft_id_new(FT_ID_EVENT, evid);
	snprintf(msg, sizeof(msg), "Job %s%s%s", to, reason && *reason ? ": " : "",
		 reason ? reason : "");
	const char *p2[] = { evid, job, att, msg, to };
	return ft_pg_command(
		s->pg, err,
		"INSERT INTO job_events (id, job_id, attempt, level, type, message, data)"
		" VALUES ($1, $2, $3::int, CASE WHEN $5 = 'failed' THEN 'error' ELSE 'info' END,"
		" 'status', $4, jsonb_build_object('status', $5::text))",
		5, p2);
}

static void drop_pg(struct sched *s)
{
	if (s->pg)
		PQfinish(s->pg);
	s->pg = NULL;
	if (s->leader)
		ft_warn("lost the PostgreSQL session: no longer leader");
	s->leader = false;
}

static bool ensure_pg(struct sched *s, struct ft_err *err)
{
	if (s->pg && PQstatus(s->pg) == CONNECTION_OK)
		return true;
	drop_pg(s);
	s->pg = PQconnectdb(s->o->database_url);
	if (PQstatus(s->pg) != CONNECTION_OK) {
		ft_failf(err, FT_EUNAVAIL, "db_unavailable", "cannot connect to PostgreSQL: %s",
			 PQerrorMessage(s->pg));
		drop_pg(s);
		return false;
	}
	PQclear(PQexec(s->pg, "SET client_min_messages = warning"));
	return true;
}

static void try_lead(struct sched *s)
{
	struct ft_err err;
	ft_err_clear(&err);
	PGresult *r = sched_q(s, &err, "SELECT pg_try_advisory_lock(" LEADER_LOCK_KEY ")", 0, NULL);
	if (!r)
		return;
	if (PQgetvalue(r, 0, 0)[0] == 't') {
		s->leader = true;
		s->group_ready = false;
		ft_info("%s is now the leader", s->o->name);
	}
	PQclear(r);
}

static void tick(struct sched *s)
{
	struct ft_err err;
	/* Each step reports its own failure and the tick goes on: a broken
	 * step must not starve the others (persisting events especially). */
	enum ft_rc (*const steps[])(struct sched *, struct ft_err *) = {
		sched_persist_events, sched_read_workers, sched_renew_leases,
		sched_reap,	      sched_push_cancels, sched_dispatch,
	};
	static const char *const names[] = { "persist", "workers", "renew",
					     "reap",	"cancel",  "dispatch" };
	for (size_t i = 0; i < FT_ARRAY_LEN(steps); i++) {
		ft_err_clear(&err);
		if (steps[i](s, &err)) {
			if (PQtransactionStatus(s->pg) != PQTRANS_IDLE)
				PQclear(PQexec(s->pg, "ROLLBACK"));
			ft_warn("%s: %s%s%s", names[i], err.msg, err.detail[0] ? ": " : "",
				err.detail);
			if (err.rc == FT_EUNAVAIL && PQstatus(s->pg) != CONNECTION_OK)
				return;
		}
	}
}

enum ft_rc ft_sched_run(const struct ft_sched_opts *o, struct ft_err *err)
{
	struct sched s = { 0 };
	s.o = o;
	while (!*o->stop) {
		struct ft_err e;
		ft_err_clear(&e);
		if (!ensure_pg(&s, &e)) {
			ft_warn("%s", e.msg);
			ft_sleep_ms(500);
			continue;
		}
		if (!s.redis) {
			s.redis = ft_redis_new(o->redis_url, 2000, &e);
			if (!s.redis) {
				ft_warn("%s", e.msg);
				ft_sleep_ms(500);
				continue;
			}
		}
		if (!s.leader)
			try_lead(&s);
		if (s.leader)
			tick(&s);
		ft_sleep_ms((uint64_t)o->tick_ms);
	}
	if (s.leader)
		ft_info("%s stops leading", o->name);
	drop_pg(&s);
	ft_redis_free(s.redis);
	free(s.workers);
	FT_UNUSED(err);
	return FT_OK;
}
