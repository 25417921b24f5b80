/*
 * ft-scheduler - see ft/scheduler.h. Configuration from ft/config.h
 * (database_url, redis_url, lease_ms, log_level); SIGTERM / SIGINT stop it.
 */
#include <signal.h>
#include <unistd.h>

#include "ft/scheduler.h"

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
	signal(SIGPIPE, SIG_IGN);

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
		.stop = &stop,
	};
	ft_info("ft-scheduler %s starting", name);
	enum ft_rc rc = ft_sched_run(&o, &err);
	if (rc)
		fprintf(stderr, "ft-scheduler: %s\n", err.msg);
	ft_config_release(&cfg);
	return rc ? 1 : 0;
}
