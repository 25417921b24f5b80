/*
 * ft-worker - see ft/worker.h. SIGTERM / SIGINT drain: running trainers
 * get SIGTERM (they checkpoint), their jobs are handed back, then it exits.
 */
#include <libgen.h>
#include <signal.h>
#include <unistd.h>

#include "ft/registry.h"
#include "ft/worker.h"

static volatile int stop;

static void on_signal(int sig)
{
	FT_UNUSED(sig);
	stop = 1;
}

int main(int argc, char **argv)
{
	struct ft_config cfg = { 0 };
	struct ft_err err;
	char id[FT_ID_MAX + 64], trainer[PATH_MAX];

	int st = ft_config_daemon_start(argc, argv, "ft-worker", "worker", &cfg);
	if (st >= 0)
		return st;
	ft_err_clear(&err);
	/* before anything slow (opening an S3 store): a SIGTERM that comes
	 * while the worker starts is a drain of nothing, not a kill */
	struct sigaction sa = { 0 };
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (ft_config_str(&cfg, "worker_id"))
		ft_strlcpy(id, ft_config_str(&cfg, "worker_id"), sizeof(id));
	else
		ft_id_new(FT_ID_WORKER, id);
	if (ft_config_str(&cfg, "trainer_path")) {
		ft_strlcpy(trainer, ft_config_str(&cfg, "trainer_path"), sizeof(trainer));
	} else {
		/* ft-train next to this program (build tree: ../trainer/ft-train). */
		char self[PATH_MAX] = "";
		ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
		self[n > 0 ? n : 0] = '\0';
		char *dir = dirname(self);
		snprintf(trainer, sizeof(trainer), "%s/ft-train", dir);
		if (access(trainer, X_OK) != 0)
			snprintf(trainer, sizeof(trainer), "%s/../trainer/ft-train", dir);
	}
	/* The same store as ft-api's (store_backend: a local folder, or an S3
	 * bucket with store_dir as this host's staging folder); inputs are
	 * fetched from it into this host's cache_dir. */
	struct ft_store *store = ft_store_open_config(&cfg, &err);
	if (!store) {
		fprintf(stderr, "ft-worker: %s\n", err.msg);
		ft_config_release(&cfg);
		return 1;
	}
	struct ft_worker_opts o = {
		.id = id,
		.redis_url = ft_config_str(&cfg, "redis_url"),
		.store = store,
		.cache_dir = ft_config_str(&cfg, "cache_dir"),
		.cache_max_bytes = (uint64_t)ft_config_int(&cfg, "cache_max_mb") << 20,
		.work_dir = ft_config_str(&cfg, "work_dir"),
		.trainer = trainer,
		.gpus = (int)ft_config_int(&cfg, "worker_gpus"),
		.slots = (int)ft_config_int(&cfg, "worker_slots"),
		.heartbeat_ms = (int)ft_config_int(&cfg, "heartbeat_ms"),
		.checkpoint_steps = (int)ft_config_int(&cfg, "checkpoint_steps"),
		.drain_ack_ms = (int)ft_config_int(&cfg, "drain_ack_ms"),
		.stop = &stop,
		.metrics_addr = ft_config_str(&cfg, "metrics_addr"),
		.metrics_port = (int)ft_config_int(&cfg, "metrics_port"),
	};
	enum ft_rc rc = ft_worker_run(&o, &err);
	if (rc)
		fprintf(stderr, "ft-worker: %s\n", err.msg);
	ft_store_free(store);
	ft_config_release(&cfg);
	return rc ? 1 : 0;
}
