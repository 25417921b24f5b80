/*
 * sched_int.h - private to scheduler/.
 */
#ifndef FT_SCHED_INT_H
#define FT_SCHED_INT_H

#include <jansson.h>
#include <pthread.h>

#include "ft/events.h"
#include "ft/registry.h"
#include "ft/scheduler.h"
#include "ft/wire.h"

struct sched_worker {
	char id[96];
	int gpus;
	int64_t gpu_mem;
	int slots;
	bool draining;
	int used_gpus; /* from PostgreSQL: active jobs on it */
	int used_jobs; /* jobs, exports and evaluations */
	int used_cpu_work; /* exports and evaluations */
};

/* The three kinds of work the scheduler dispatches (enum ft_work):
 * fine-tuning jobs, exports (ft/exports.h) and evaluations (ft-train eval).
 * All have the same life cycle columns (status, attempt, max_attempts,
 * worker_id, lease_expires_at, queued_at, started_at, finished_at, error,
 * updated_at), events and transitions of their own; dispatch, leases,
 * reaping, cancels and persistence run over all of them through this
 * table. Table and column names are constants spliced into SQL, never
 * input. */
struct sched_kind {
	enum ft_work work;
	const char *what; /* "job" | "export" | "evaluation" (logs, reasons) */
	const char *title; /* "Job" | "Export" | "Evaluation" (event messages) */
	const char *prefix; /* FT_ID_JOB | FT_ID_EXPORT | FT_ID_EVAL */
	const char *table, *events, *transitions, *fk;
	/* CPU work: placed on a CPU slot (a GPU worker runs at most its slots'
	 * worth), not counted against the team's max_concurrent_jobs */
	bool cpu;
	/* the failed event's error codes: {not the input's fault, the input's} */
	const char *fail_codes[2];
};
extern const struct sched_kind sched_kinds[FT_WORK_COUNT];
/* The kind of an id by its prefix, or NULL. */
const struct sched_kind *sched_kind_of(const char *id);

struct sched {
	const struct ft_sched_opts *o;
	struct ft_store *store; /* the artifact store (manifests, collection); may be NULL */
	PGconn *pg; /* holds the leader lock too */
	struct ft_redis *redis;
	bool leader;
	bool group_ready;
	bool rl_group_ready; /* the request log's consumer group (reqlog.c) */
	struct sched_worker *workers;
	size_t n_workers;
	/* statistics for /metrics (read by the metrics thread: atomics) */
	uint64_t dispatched, requeued, persisted;
	uint64_t gc_runs, gc_blobs, gc_bytes, versions;
	uint64_t gc_last_ms; /* monotonic time of the last collection */
	bool gc_off; /* the store cannot be collected (said once) */
	uint64_t rl_persisted, rl_duplicates, rl_malformed; /* request log records */
	uint64_t rl_expired; /* request_log rows deleted by the retention */
	uint64_t rl_retention_last_ms; /* monotonic time of the last retention pass */
	bool rl_retention_more; /* the last pass stopped with rows left to delete */
	uint64_t exp_last_ms; /* monotonic time of the last experiments' results */
	uint64_t drift_last_ms; /* and of the last drift windows */
	/* queued -> dispatched latency histogram, seconds */
	uint64_t lat_buckets[12];
	double lat_sum;
	uint64_t lat_count;
};

/* Upper bounds of the latency histogram buckets, seconds (+Inf last). */
extern const double sched_lat_bounds[11];
void sched_observe_latency(struct sched *s, double seconds);

/* dispatch.c */
enum ft_rc sched_read_workers(struct sched *s, struct ft_err *err);
enum ft_rc sched_renew_leases(struct sched *s, struct ft_err *err);
enum ft_rc sched_reap(struct sched *s, struct ft_err *err);
enum ft_rc sched_dispatch(struct sched *s, struct ft_err *err);
enum ft_rc sched_push_cancels(struct sched *s, struct ft_err *err);

/* sched.c: a side thread of the scheduler (webhook deliveries, the LLM
 * judge, replays): its own PostgreSQL connection, made again 500 ms after
 * a failure; next() called while it finds work, then 200 ms of rest;
 * until *o->stop. */
struct sched_loop {
	const struct ft_sched_opts *o;
	bool (*next)(const struct ft_sched_opts *o, PGconn *pg);
	pthread_t th;
};
void sched_loop_start(struct sched_loop *l, const struct ft_sched_opts *o);
void sched_loop_stop(struct sched_loop *l);

/* webhooks.c: the delivery thread */
void sched_webhooks_start(const struct ft_sched_opts *o);
void sched_webhooks_stop(void);
/* judge.c: the LLM judge thread */
void sched_judge_start(const struct ft_sched_opts *o);
void sched_judge_stop(void);
/* replay.c: the replay thread (prompt sets sent through experiments' arms) */
void sched_replay_start(const struct ft_sched_opts *o);
void sched_replay_stop(void);
/* experiments.c: the leader's periodic results of A/B experiments */
enum ft_rc sched_experiments(struct sched *s, struct ft_err *err);
/* drift.c: the leader's periodic drift windows of monitored deployments */
enum ft_rc sched_drift(struct sched *s, struct ft_err *err);

/* deploy.c: the deployment controller's thread (it acts while s->leader) */
void sched_deploy_start(struct sched *s);
/* An endpoint as ft-scheduler calls it (the controller, replays). */
struct sched_endpoint {
	char id[FT_ID_MAX], team[FT_ID_MAX], kind_name[16], url[2100];
	const struct ft_endpoint_kind *kind;
	char pin[320];
	char *api_key; /* opened; the caller wipes it with ft_secretbox_free */
	char why_not[600]; /* set: the endpoint cannot be called (key, URL) */
};
/* Fill ep from row i of r, the columns (id, team_id, kind, url,
 * api_key_sealed) of endpoints: its key opened with secret_key, its URL
 * checked by the SSRF guard (endpoint_allow_http, endpoint_allow_cidrs) and
 * pinned. False with ep->why_not when it cannot be called. */
bool sched_endpoint_prepare(const struct ft_sched_opts *o, struct sched_endpoint *ep,
			    const PGresult *r, int i);
void sched_deploy_stop(void);

/* persist.c */
enum ft_rc sched_persist_events(struct sched *s, struct ft_err *err);
/* The webhook of work that event ev moved (ft/events.h's table, by kind),
 * in the caller's transaction; nothing when the event has none. */
enum ft_rc sched_work_webhook(struct sched *s, const struct sched_kind *k, const char *id,
			      const char *team, enum ft_ev ev, const char *event_id,
			      struct ft_err *err);

/* registry.c: the model version of a job that just succeeded (in the
 * event's transaction, the job row locked): lineage, the registered model,
 * the model.version.created webhook. data is the succeeded event's. */
enum ft_rc sched_version_from_job(struct sched *s, const char *job, const char *event_id,
				  const json_t *data, struct ft_err *err);
/* The files of a stored folder (an event's "files") as artifact_files rows. */
enum ft_rc sched_artifact_files(struct sched *s, const char *artifact, const json_t *files,
				struct ft_err *err);

/* gc.c: the leader's periodic collection of blobs nothing references. */
enum ft_rc sched_gc(struct sched *s, struct ft_err *err);
/* One collection now, whatever the period (tests, ft-scheduler gc). */
enum ft_rc sched_gc_run(struct sched *s, struct ft_err *err);
/* reqlog.c: ft-serve's request log (ft:requests) into request_log */
enum ft_rc sched_persist_requests(struct sched *s, struct ft_err *err);
/* reqlog.c: the request log's retention (request_log_retention_days) */
enum ft_rc sched_request_log_retention(struct sched *s, struct ft_err *err);

/* The experiments (x, LEFT JOINed to experiment_results er) whose results
 * may still change: running or paused, or stopped and not computed since.
 * experiments.c computes them; the request log's retention keeps their
 * rows. */
#define SCHED_EXPERIMENT_OPEN_SQL                               \
	"(x.status IN ('running', 'paused')"                    \
	" OR (x.status = 'stopped' AND (er.computed_at IS NULL" \
	" OR er.computed_at < x.ended_at)))"

/* helpers shared by both */
PGresult *sched_q(struct sched *s, struct ft_err *err, const char *sql, int n,
		  const char *const *params);
enum ft_rc sched_tx(struct sched *s, const char *what, struct ft_err *err);
/* Record a transition and an event for it (inside the caller's transaction). */
enum ft_rc sched_note_transition(struct sched *s, const struct sched_kind *k, const char *id,
				 const char *from, const char *to, int attempt, const char *reason,
				 struct ft_err *err);

#endif
