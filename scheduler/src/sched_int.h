/*
 * sched_int.h - private to scheduler/.
 */
#ifndef FT_SCHED_INT_H
#define FT_SCHED_INT_H

#include "ft/scheduler.h"
#include "ft/wire.h"

struct sched_worker {
	char id[96];
	int gpus;
	int64_t gpu_mem;
	int slots;
	bool draining;
	int used_gpus; /* from PostgreSQL: active jobs on it */
	int used_jobs;
};

struct sched {
	const struct ft_sched_opts *o;
	PGconn *pg; /* holds the leader lock too */
	struct ft_redis *redis;
	bool leader;
	bool group_ready;
	struct sched_worker *workers;
	size_t n_workers;
	/* statistics for /metrics (read by the metrics thread: atomics) */
	uint64_t dispatched, requeued, persisted;
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

/* webhooks.c: the delivery thread */
void sched_webhooks_start(const struct ft_sched_opts *o);
void sched_webhooks_stop(void);

/* persist.c */
enum ft_rc sched_persist_events(struct sched *s, struct ft_err *err);

/* helpers shared by both */
PGresult *sched_q(struct sched *s, struct ft_err *err, const char *sql, int n,
		  const char *const *params);
enum ft_rc sched_tx(struct sched *s, const char *what, struct ft_err *err);
/* Record a transition and an event for it (inside the caller's transaction). */
enum ft_rc sched_note_transition(struct sched *s, const char *job, const char *from, const char *to,
				 int attempt, const char *reason, struct ft_err *err);

#endif
