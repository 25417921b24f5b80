/*
 * ft-scheduler - see ft/scheduler.h. Configuration from ft/config.h
 * (database_url, redis_url, lease_ms, log_level, gc_*, deploy_*, endpoint_*,
 * secret_key); SIGTERM / SIGINT stop
 * it; SIGUSR1 makes the leader collect unreferenced blobs at its next tick.
 */
#include <signal.h>
#include <unistd.h>

#include "ft/registry.h"
#include "ft/scheduler.h"

static volatile int stop, gc_now;

static void on_signal(int sig)
{
	if (sig == SIGUSR1)
		gc_now = 1; /* collect unreferenced blobs at the next tick (the leader) */
	else
		stop = 1;
}

int main(int argc, char **argv)
{
	struct ft_config cfg = { 0 };
	struct ft_err err;
	char name[128];

	int st = ft_config_daemon_start(argc, argv, "ft-scheduler", "scheduler", &cfg);
	if (st >= 0)
		return st;
	ft_err_clear(&err);
	char host[64] = "host";
	gethostname(host, sizeof(host) - 1);
	snprintf(name, sizeof(name), "%s:%d", host, (int)getpid());

	struct sigaction sa = { 0 };
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGUSR1, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	/* the artifact store: manifests to read and blobs to collect (gc.c).
	 * Scheduling does not need it: without one, nothing is collected. */
	struct ft_store *store = ft_store_open_config(&cfg, &err);
	if (!store)
		ft_warn("no artifact store (%s): unreferenced blobs will not be collected",
			err.msg);
	ft_err_clear(&err);
	static unsigned char secret_key[FT_SECRETBOX_KEY_LEN];
	const char *secret = ft_config_str(&cfg, "secret_key");
	if (secret && *secret && ft_secretbox_key_parse(secret, secret_key, &err)) {
		fprintf(stderr, "ft-scheduler: %s\n", err.msg);
		ft_store_free(store);
		ft_config_release(&cfg);
		return 1;
	}
	struct ft_sched_opts o = {
		.database_url = ft_config_str(&cfg, "database_url"),
		.redis_url = ft_config_str(&cfg, "redis_url"),
		.name = name,
		.tick_ms = (int)ft_config_int(&cfg, "sched_tick_ms"),
		.lease_ms = (int)ft_config_int(&cfg, "lease_ms"),
		.webhook_allow_http = ft_config_bool(&cfg, "webhook_allow_http"),
		.webhook_allow_cidrs = ft_config_str(&cfg, "webhook_allow_cidrs"),
		.webhook_backoff_ms = (int)ft_config_int(&cfg, "webhook_backoff_ms"),
		.webhook_timeout_ms = (int)ft_config_int(&cfg, "webhook_timeout_ms"),
		.webhook_max_age_hours = (int)ft_config_int(&cfg, "webhook_max_age_hours"),
		.metrics_addr = ft_config_str(&cfg, "metrics_addr"),
		.metrics_port = (int)ft_config_int(&cfg, "metrics_port"),
		.store = store,
		.gc_interval_s = (int)ft_config_int(&cfg, "gc_interval_s"),
		.gc_grace_s = (int)ft_config_int(&cfg, "gc_grace_s"),
		.gc_now = &gc_now,
		.deploy_interval_ms = (int)ft_config_int(&cfg, "deploy_interval_ms"),
		.deploy_timeout_ms = (int)ft_config_int(&cfg, "deploy_timeout_ms"),
		.deploy_probe_timeout_ms = (int)ft_config_int(&cfg, "deploy_probe_timeout_ms"),
		.deploy_dir = ft_config_str(&cfg, "deploy_dir"),
		.endpoint_allow_http = ft_config_bool(&cfg, "endpoint_allow_http"),
		.endpoint_allow_cidrs = ft_config_str(&cfg, "endpoint_allow_cidrs"),
		.secret_key = secret && *secret ? secret_key : NULL,
		.export_max_attempts = (int)ft_config_int(&cfg, "job_max_attempts"),
		.experiment_interval_ms = (int)ft_config_int(&cfg, "experiment_interval_ms"),
		.drift_interval_ms = (int)ft_config_int(&cfg, "drift_interval_ms"),
		.drift_grace_s = (int)ft_config_int(&cfg, "drift_grace_s"),
		.request_log_retention_days =
			(int)ft_config_int(&cfg, "request_log_retention_days"),
		.judge_allow_http = ft_config_bool(&cfg, "judge_allow_http"),
		.judge_allow_cidrs = ft_config_str(&cfg, "judge_allow_cidrs"),
		.judge_timeout_ms = (int)ft_config_int(&cfg, "judge_timeout_ms"),
		.judge_backoff_ms = (int)ft_config_int(&cfg, "judge_backoff_ms"),
		.judge_max_attempts = (int)ft_config_int(&cfg, "judge_max_attempts"),
		.replay_timeout_ms = (int)ft_config_int(&cfg, "replay_timeout_ms"),
		.replay_backoff_ms = (int)ft_config_int(&cfg, "replay_backoff_ms"),
		.replay_max_attempts = (int)ft_config_int(&cfg, "replay_max_attempts"),
		.stop = &stop,
	};
	ft_info("ft-scheduler %s starting", name);
	enum ft_rc rc = ft_sched_run(&o, &err);
	if (rc)
		fprintf(stderr, "ft-scheduler: %s\n", err.msg);
	ft_store_free(store);
	ft_config_release(&cfg);
	return rc ? 1 : 0;
}
