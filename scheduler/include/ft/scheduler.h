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

struct ft_store;

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
	struct ft_store *store; /* the artifact store (may be NULL: no collection) */
	int gc_interval_s; /* collect unreferenced blobs this often (0: never) */
	int gc_grace_s; /* a blob younger than this is never collected */
	volatile int
		*gc_now; /* set non-zero: collect at the next tick (then cleared); may be NULL */
	/* the deployment controller (deploy.c, docs/deployments.md) */
	int deploy_interval_ms; /* its period (a notification wakes it sooner) */
	int deploy_timeout_ms; /* one load or unload */
	int deploy_probe_timeout_ms; /* one health check */
	const char *deploy_dir; /* adapters unpacked for vllm endpoints; NULL: none */
	bool endpoint_allow_http;
	const char *endpoint_allow_cidrs;
	const unsigned char *secret_key; /* 32 bytes (secret_key), NULL when unset */
	int export_max_attempts; /* of the exports it queues (job_max_attempts) */
	int experiment_interval_ms; /* the leader computes experiments' results this often */
	int drift_interval_ms; /* and drift windows */
	int drift_grace_s; /* a window is computed this long after it ends */
	int request_log_retention_days; /* older request_log rows are deleted (0: never) */
	bool judge_allow_http; /* the LLM judge: plain http URLs */
	const char *judge_allow_cidrs; /* special addresses the judge may be at */
	int judge_timeout_ms; /* one call's time limit */
	int judge_backoff_ms; /* first retry delay; doubles per attempt up to 1 h */
	int judge_max_attempts; /* then the judgment fails */
	int replay_timeout_ms; /* replays (replay.c): one arm's answer's time limit */
	int replay_backoff_ms; /* first retry delay; doubles per attempt up to 1 h */
	int replay_max_attempts; /* then the replay fails */
	volatile int *stop; /* set non-zero to stop the loop */
};

/* Run until *opts->stop; returns FT_OK on a clean stop. */
enum ft_rc ft_sched_run(const struct ft_sched_opts *opts, struct ft_err *err);

#endif
