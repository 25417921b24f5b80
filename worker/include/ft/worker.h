/*
 * ft/worker.h - ft-worker: registers its GPUs, heartbeats, takes
 * assignments from its Redis inbox, runs ft-train as a child process per
 * job, forwards the trainer's progress lines as events (ft/wire.h), stores
 * checkpoints and outputs in the artifact store, and obeys cancel. It never
 * talks to PostgreSQL.
 */
#ifndef FT_WORKER_H
#define FT_WORKER_H

#include "ft/common.h"

struct ft_store;

struct ft_worker_opts {
	const char *id;
	const char *redis_url;
	/* the artifact store (ft/registry.h: local or s3), borrowed: inputs are
	 * fetched from it into cache_dir, checkpoints and outputs put into it */
	struct ft_store *store;
	const char *cache_dir; /* this host's input cache (worker/src/cache.c) */
	uint64_t cache_max_bytes;
	const char *work_dir; /* scratch: one folder per job attempt */
	const char *trainer; /* path of ft-train */
	int gpus; /* -1: detect */
	int slots; /* CPU jobs at once when gpus == 0 */
	int heartbeat_ms;
	int checkpoint_steps; /* save_steps given to jobs that set none */
	int drain_ack_ms; /* draining, jobs ended: longest wait for the last acknowledgements */
	volatile int *stop; /* set: drain (checkpoint, hand back) and exit */
	const char *metrics_addr;
	int metrics_port; /* -1: no /metrics; 0: any free port */
};

enum ft_rc ft_worker_run(const struct ft_worker_opts *opts, struct ft_err *err);

/* GPUs through NVML when libnvidia-ml is present; 0 otherwise. */
int ft_worker_detect_gpus(int64_t *mem_per_gpu, char names[][96], int max_names);

#endif
