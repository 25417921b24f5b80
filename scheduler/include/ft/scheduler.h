/*
 * ft/scheduler.h - ft-scheduler: one leader at a time (a PostgreSQL
 * advisory lock held on its connection) matches queued jobs to workers,
 * renews leases from worker heartbeats, requeues the jobs of lost workers,
 * pushes cancels, and persists the worker event stream into PostgreSQL.
 * See ft/wire.h for what travels through Redis.
 */
#ifndef FT_SCHEDULER_H
#define FT_SCHEDULER_H

#include "ft/common.h"

struct ft_sched_opts {
	const char *database_url;
	const char *redis_url;
	const char *name; /* this instance, for logs and the stream consumer */
	int tick_ms; /* loop period */
	int lease_ms; /* lease granted at dispatch and renewed per heartbeat */
	bool webhook_allow_http; /* plain http URLs (development only) */
	const char *webhook_allow_cidrs; /* special addresses an admin allows */
	int webhook_backoff_ms; /* first retry delay; doubles per attempt */
	int webhook_timeout_ms;
	int webhook_max_age_hours; /* then a delivery is abandoned */
	const char *metrics_addr;
	int metrics_port; /* -1: no /metrics; 0: any free port */
	volatile int *stop; /* set non-zero to stop the loop */
};

/* Run until *opts->stop; returns FT_OK on a clean stop. */
enum ft_rc ft_sched_run(const struct ft_sched_opts *opts, struct ft_err *err);

#endif
