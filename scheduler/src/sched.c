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
 *   2. persist ft-serve's request log    (reqlog.c), and every 10 minutes
 *      delete its rows older than request_log_retention_days
 *   3. read worker heartbeats            (dispatch.c)
 *   4. renew leases of what they run
 *   5. requeue the jobs of lost workers (lease expired)
 *   6. push cancels for cancelling jobs, pauses for pausing ones
 *   7. dispatch queued jobs and exports
 *   8. every gc_interval_s: collect the blobs nothing references (gc.c)
 *   9. every experiment_interval_ms: A/B experiments' results (experiments.c)
 *  10. every drift_interval_ms: drift windows of monitored deployments (drift.c)
 * Jobs and exports go through the same steps (sched_kinds: their tables).
 * Beside the tick, on threads of their own: webhook deliveries (every
 * instance, webhooks.c) and the deployment controller (the leader only,
 * deploy.c), whose calls to inference servers must not hold up the tick.
 */
#include <stddef.h>

#include "ft/metrics.h"
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

const struct sched_kind sched_kinds[FT_WORK_COUNT] = {
	[FT_WORK_JOB] = { FT_WORK_JOB,
			  "job",
			  "Job",
			  FT_ID_JOB,
			  "jobs",
			  "job_events",
			  "job_transitions",
			  "job_id",
			  false,
			  { "training_failed", "invalid_training" } },
	[FT_WORK_EXPORT] = { FT_WORK_EXPORT,
			     "export",
			     "Export",
			     FT_ID_EXPORT,
			     "exports",
			     "export_events",
			     "export_transitions",
			     "export_id",
			     true,
			     { "export_failed", "invalid_export" } },
	[FT_WORK_EVAL] = { FT_WORK_EVAL,
			   "evaluation",
			   "Evaluation",
			   FT_ID_EVAL,
			   "evals",
			   "eval_events",
			   "eval_transitions",
			   "eval_id",
			   true,
			   { "eval_failed", "invalid_eval" } },
};

const struct sched_kind *sched_kind_of(const char *id)
{
	for (size_t i = 0; id && i < FT_ARRAY_LEN(sched_kinds); i++)
		if (ft_id_valid(sched_kinds[i].prefix, id))
			return &sched_kinds[i];
	return NULL;
}

enum ft_rc sched_note_transition(struct sched *s, const struct sched_kind *k, const char *id,
				 const char *from, const char *to, int attempt, const char *reason,
				 struct ft_err *err)
{
	char att[16], evid[FT_ID_MAX], msg[512], sql[512];
	snprintf(att, sizeof(att), "%d", attempt);
	const char *p1[] = { id, from, to, att, reason };
	snprintf(sql, sizeof(sql),
		 "INSERT INTO %s (%s, from_status, to_status, attempt, reason)"
		 " VALUES ($1, $2, $3, $4::int, $5)",
		 k->transitions, k->fk);
	if (ft_pg_command(s->pg, err, sql, 5, p1))
		return FT_EDB;
	ft_id_new(FT_ID_EVENT, evid);
	snprintf(msg, sizeof(msg), "%s %s%s%s", k->title, to, reason && *reason ? ": " : "",
		 reason ? reason : "");
	const char *p2[] = { evid, id, att, msg, to };
	snprintf(sql, sizeof(sql),
		 "INSERT INTO %s (id, %s, attempt, level, type, message, data)"
		 " VALUES ($1, $2, $3::int, CASE WHEN $5 = 'failed' THEN 'error' ELSE 'info' END,"
		 " 'status', $4, jsonb_build_object('status', $5::text))",
		 k->events, k->fk);
	return ft_pg_command(s->pg, err, sql, 5, p2);
}

const double sched_lat_bounds[11] = { 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 60 };

void sched_observe_latency(struct sched *s, double seconds)
{
	int b = 0;
	while (b < 11 && seconds > sched_lat_bounds[b])
		b++;
	__atomic_add_fetch(&s->lat_buckets[b], 1, __ATOMIC_RELAXED);
	__atomic_add_fetch(&s->lat_count, 1, __ATOMIC_RELAXED);
	s->lat_sum += seconds; /* one writer (the loop); a torn read only blurs a scrape */
}

static void counts_by_status(struct ft_buf *out, PGconn *pg, const char *sql, const char *name,
			     const char *help)
{
	PGresult *r = PQexec(pg, sql);
	ft_metrics_help(out, name, "gauge", help);
	for (int i = 0; PQresultStatus(r) == PGRES_TUPLES_OK && i < PQntuples(r); i++) {
		char labels[96];
		snprintf(labels, sizeof(labels), "status=\"%s\"", PQgetvalue(r, i, 0));
		ft_metrics_value(out, name, labels, strtod(PQgetvalue(r, i, 1), NULL));
	}
	PQclear(r);
}

/* Drift monitors: whether each alerts, and its latest hourly window's PSI
 * and refusal rate (labels: the deployment, the metric). */
static void drift_metrics(struct ft_buf *out, PGconn *pg)
{
	PGresult *r = PQexec(
		pg, "SELECT m.deployment_id, m.status = 'alert',"
		    " w.metrics->'prompt_tokens'->>'psi', w.metrics->'completion_tokens'->>'psi',"
		    " w.metrics->'refusals'->>'rate'"
		    " FROM drift_monitors m LEFT JOIN LATERAL (SELECT metrics FROM drift_windows"
		    "   WHERE deployment_id = m.deployment_id AND granularity = 'hour'"
		    "   ORDER BY window_start DESC LIMIT 1) w ON true ORDER BY 1 LIMIT 1000");
	bool ok = PQresultStatus(r) == PGRES_TUPLES_OK;
	ft_metrics_help(out, "ft_drift_alert", "gauge",
			"1 while a deployment's drift monitor alerts (monitor.drift.detected)");
	for (int i = 0; ok && i < PQntuples(r); i++) {
		char labels[96];
		snprintf(labels, sizeof(labels), "deployment=\"%s\"", PQgetvalue(r, i, 0));
		ft_metrics_value(out, "ft_drift_alert", labels, PQgetvalue(r, i, 1)[0] == 't');
	}
	static const struct {
		const char *name, *metric, *help;
		int col;
	} gauges[] = {
		{ "ft_drift_psi", "prompt_tokens", "PSI of the latest hourly drift window", 2 },
		{ "ft_drift_psi", "completion_tokens", NULL, 3 },
		{ "ft_drift_refusal_rate", NULL, "refusal rate of the latest hourly drift window",
		  4 },
	};
	for (size_t g = 0; g < FT_ARRAY_LEN(gauges); g++) {
		if (gauges[g].help)
			ft_metrics_help(out, gauges[g].name, "gauge", gauges[g].help);
		for (int i = 0; ok && i < PQntuples(r); i++) {
			char labels[128];
			if (PQgetisnull(r, i, gauges[g].col))
				continue;
			snprintf(labels, sizeof(labels), "deployment=\"%s\"%s%s%s",
				 PQgetvalue(r, i, 0), gauges[g].metric ? ",metric=\"" : "",
				 gauges[g].metric ? gauges[g].metric : "",
				 gauges[g].metric ? "\"" : "");
			ft_metrics_value(out, gauges[g].name, labels,
					 strtod(PQgetvalue(r, i, gauges[g].col), NULL));
		}
	}
	PQclear(r);
}

/* Runs on the metrics server's thread; reads PostgreSQL on its own connection. */
static void metrics(struct ft_buf *out, void *ud)
{
	struct sched *s = ud;
	PGconn *pg = PQconnectdb(s->o->database_url);
	if (PQstatus(pg) == CONNECTION_OK) {
		counts_by_status(out, pg, "SELECT status, count(*) FROM jobs GROUP BY 1", "ft_jobs",
				 "jobs by status");
		counts_by_status(out, pg,
				 "SELECT status, count(*) FROM webhook_deliveries GROUP BY 1",
				 "ft_webhook_deliveries", "webhook deliveries by status");
		counts_by_status(out, pg, "SELECT status, count(*) FROM exports GROUP BY 1",
				 "ft_exports", "exports by status");
		drift_metrics(out, pg);
		PGresult *r = PQexec(pg, "SELECT count(*) FROM jobs WHERE status = 'queued'");
		ft_metrics_help(out, "ft_queue_depth", "gauge", "jobs waiting for a worker");
		if (PQresultStatus(r) == PGRES_TUPLES_OK)
			ft_metrics_value(out, "ft_queue_depth", NULL,
					 strtod(PQgetvalue(r, 0, 0), NULL));
		PQclear(r);
	}
	PQfinish(pg);
	ft_metrics_help(out, "ft_scheduler_leader", "gauge", "1 when this instance leads");
	ft_metrics_value(out, "ft_scheduler_leader", NULL, s->leader ? 1 : 0);
	ft_metrics_help(out, "ft_workers", "gauge", "workers with a live heartbeat (as last seen)");
	ft_metrics_value(out, "ft_workers", NULL, (double)s->n_workers);
	/* the instance's counters: name, help, field of struct sched */
	static const struct {
		const char *name, *help;
		size_t off;
	} counters[] = {
		{ "ft_dispatched_total", "jobs dispatched by this instance",
		  offsetof(struct sched, dispatched) },
		{ "ft_requeued_total", "jobs requeued after a lost worker",
		  offsetof(struct sched, requeued) },
		{ "ft_events_persisted_total", "worker events persisted",
		  offsetof(struct sched, persisted) },
		{ "ft_model_versions_created_total",
		  "model versions created from succeeded jobs by this instance",
		  offsetof(struct sched, versions) },
		{ "ft_gc_runs_total", "collections of unreferenced blobs",
		  offsetof(struct sched, gc_runs) },
		{ "ft_gc_blobs_deleted_total", "unreferenced blobs removed from the store",
		  offsetof(struct sched, gc_blobs) },
		{ "ft_gc_bytes_deleted_total", "bytes of the blobs removed from the store",
		  offsetof(struct sched, gc_bytes) },
		{ "ft_request_log_persisted_total",
		  "request log records this instance stored in request_log",
		  offsetof(struct sched, rl_persisted) },
		{ "ft_request_log_duplicates_total",
		  "request log records read again and found stored already (no row added)",
		  offsetof(struct sched, rl_duplicates) },
		{ "ft_request_log_malformed_total",
		  "request log entries dropped because they break ft/reqlog.h's table",
		  offsetof(struct sched, rl_malformed) },
		{ "ft_request_log_expired_total",
		  "request_log rows deleted for being older than request_log_retention_days",
		  offsetof(struct sched, rl_expired) },
	};
	for (size_t i = 0; i < FT_ARRAY_LEN(counters); i++) {
		ft_metrics_help(out, counters[i].name, "counter", counters[i].help);
		ft_metrics_value(out, counters[i].name, NULL,
				 (double)__atomic_load_n((uint64_t *)((char *)s + counters[i].off),
							 __ATOMIC_RELAXED));
	}
	ft_metrics_help(out, "ft_dispatch_latency_seconds", "histogram",
			"time from queued to dispatched");
	uint64_t cum = 0;
	for (int b = 0; b < 12; b++) {
		char labels[48];
		cum += __atomic_load_n(&s->lat_buckets[b], __ATOMIC_RELAXED);
		if (b < 11)
			snprintf(labels, sizeof(labels), "le=\"%g\"", sched_lat_bounds[b]);
		else
			snprintf(labels, sizeof(labels), "le=\"+Inf\"");
		ft_metrics_value(out, "ft_dispatch_latency_seconds_bucket", labels, (double)cum);
	}
	ft_metrics_value(out, "ft_dispatch_latency_seconds_sum", NULL, s->lat_sum);
	ft_metrics_value(out, "ft_dispatch_latency_seconds_count", NULL,
			 (double)__atomic_load_n(&s->lat_count, __ATOMIC_RELAXED));
}

static void drop_pg(struct sched *s)
{
	if (s->pg)
		PQfinish(s->pg);
	s->pg = NULL;
	if (s->leader)
		ft_warn("lost the PostgreSQL session: no longer leader");
	__atomic_store_n(&s->leader, false, __ATOMIC_RELEASE); /* deploy.c reads it */
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
		__atomic_store_n(&s->leader, true, __ATOMIC_RELEASE);
		s->group_ready = false;
		s->rl_group_ready = false;
		ft_info("%s is now the leader", s->o->name);
	}
	PQclear(r);
}

static void tick(struct sched *s)
{
	struct ft_err err;
	/* Each step reports its own failure and the tick goes on: a broken
	 * step must not starve the others (persisting events especially). */
	static const struct {
		enum ft_rc (*fn)(struct sched *, struct ft_err *);
		const char *name; /* in the warning of a failed step */
	} steps[] = {
		{ sched_persist_events, "persist" },
		{ sched_persist_requests, "request log" },
		{ sched_request_log_retention, "request log retention" },
		{ sched_read_workers, "workers" },
		{ sched_renew_leases, "renew" },
		{ sched_reap, "reap" },
		{ sched_push_cancels, "cancel" },
		{ sched_dispatch, "dispatch" },
		{ sched_gc, "gc" },
		{ sched_experiments, "experiments" },
		{ sched_drift, "drift" },
	};
	for (size_t i = 0; i < FT_ARRAY_LEN(steps); i++) {
		ft_err_clear(&err);
		if (steps[i].fn(s, &err)) {
			if (PQtransactionStatus(s->pg) != PQTRANS_IDLE)
				PQclear(PQexec(s->pg, "ROLLBACK"));
			ft_warn("%s: %s%s%s", steps[i].name, err.msg, err.detail[0] ? ": " : "",
				err.detail);
			if (err.rc == FT_EUNAVAIL && PQstatus(s->pg) != CONNECTION_OK)
				return;
		}
	}
}

enum ft_rc ft_sched_run(const struct ft_sched_opts *o, struct ft_err *err)
{
	struct sched s = { 0 };
	struct ft_metrics_server *ms = NULL;
	s.o = o;
	s.store = o->store;
	s.gc_last_ms = ft_time_mono_ms();
	if (o->metrics_port >= 0) {
		ms = ft_metrics_server_new(o->metrics_addr, o->metrics_port, metrics, &s, err);
		if (!ms)
			return err->rc;
		ft_info("metrics on http://%s:%d/metrics", o->metrics_addr,
			ft_metrics_server_port(ms));
	}
	sched_webhooks_start(o);
	sched_deploy_start(&s);
	sched_judge_start(o);
	sched_replay_start(o);
	while (!*o->stop) {
		struct ft_err e;
		ft_err_clear(&e);
		ft_metrics_server_beat(ms);
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
	sched_deploy_stop();
	sched_webhooks_stop();
	sched_judge_stop();
	sched_replay_stop();
	ft_metrics_server_free(ms);
	ft_redis_free(s.redis);
	free(s.workers);
	return FT_OK;
}

static void *loop_thread(void *arg)
{
	const struct sched_loop *l = arg;
	PGconn *pg = NULL;
	while (!*l->o->stop) {
		if (!pg || PQstatus(pg) != CONNECTION_OK) {
			if (pg)
				PQfinish(pg);
			pg = PQconnectdb(l->o->database_url);
			if (PQstatus(pg) != CONNECTION_OK) {
				ft_sleep_ms(500);
				continue;
			}
		}
		if (!l->next(l->o, pg))
			ft_sleep_ms(200);
	}
	if (pg)
		PQfinish(pg);
	return NULL;
}

void sched_loop_start(struct sched_loop *l, const struct ft_sched_opts *o)
{
	l->o = o;
	pthread_create(&l->th, NULL, loop_thread, l);
}

void sched_loop_stop(struct sched_loop *l)
{
	pthread_join(l->th, NULL);
}
