/*
 * main.c - the ft-api program.
 *
 *   ft-api [--config FILE] [serve]             run the REST API
 *   ft-api [--config FILE] admin create-team NAME
 *   ft-api [--config FILE] admin create-key --team TEAM --role ROLE [--name N]
 *   ft-api [--config FILE] admin register-model --name N --path DIR|MODEL.gguf [--team TEAM]
 *                                               [--description TEXT]
 *
 * Configuration (common/config): listen_addr, listen_port, store_backend, store_dir, s3_*,
 * database_url, redis_url, api_threads, pg_pool_size, max_upload_bytes,
 * log_level, and the limits on clients (body_timeout_s, min_body_rate,
 * upload_max_per_key, upload_max_per_ip, max_connections,
 * max_connections_per_ip, idle_timeout_s), key_cache_ttl_s, tmp_sweep_s,
 * webui_dir, stream_poll_ms and stream_heartbeat_ms. create-key prints the
 * key once, on stdout, as the last line.
 */
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include "ft/metrics.h"
#include "api_int.h"
#include "ft/usage.h"

extern const char ft_api_openapi_json[];
extern const size_t ft_api_openapi_json_len;

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
	FT_UNUSED(sig);
	stop_flag = 1;
}

static int usage(void)
{
	fprintf(stderr, "usage: ft-api [--config FILE] [serve]\n"
			"       ft-api [--config FILE] admin create-team NAME\n"
			"       ft-api [--config FILE] admin create-key --team TEAM --role "
			"viewer|member|admin [--name N]\n"
			"       ft-api [--config FILE] admin register-model --name N --path "
			"DIR|MODEL.gguf [--team TEAM] [--description TEXT]\n");
	return 2;
}

#define LINGER_MAX 256 /* connections closing gracefully at once (linger.c) */
/* Descriptors beside the connections: lingering sockets, the pools, the
 * store's files, the listener. */
#define SPARE_FDS (LINGER_MAX + 128)

/* Raise the open-files limit to what max_connections needs (up to the hard
 * limit); returns the connections that fit. */
static unsigned open_files_for(unsigned max_connections)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl))
		return max_connections;
	rlim_t want = (rlim_t)max_connections + SPARE_FDS;
	if (rl.rlim_cur < want) {
		rl.rlim_cur =
			rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want ? want : rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
		(void)getrlimit(RLIMIT_NOFILE, &rl);
	}
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < want) {
		unsigned fit =
			rl.rlim_cur > SPARE_FDS + 16 ? (unsigned)(rl.rlim_cur - SPARE_FDS) : 16;
		ft_logf(FT_LOG_WARN, "api", NULL,
			"max_connections %u lowered to %u: the open-files limit is %llu",
			max_connections, fit, (unsigned long long)rl.rlim_cur);
		return fit;
	}
	return max_connections;
}

static int serve(struct ft_config *cfg)
{
	struct ft_err err;
	struct api_ctx ctx = { 0 };
	int rc = 1;
	ft_err_clear(&err);
	int threads = (int)ft_config_int(cfg, "api_threads");
	const char *secret = ft_config_str(cfg, "secret_key");
	if (secret && *secret) {
		if (ft_secretbox_key_parse(secret, ctx.secret_key, &err))
			goto fail;
		ctx.has_secret_key = true;
	}
	/* one connection per worker thread, the two validators, the background thread */
	int pool = FT_MAX((int)ft_config_int(cfg, "pg_pool_size"), threads + 3);
	ctx.pg = ft_pg_pool_new(ft_config_str(cfg, "database_url"), pool, &err);
	if (!ctx.pg)
		goto fail;
	ctx.store = ft_store_open_config(cfg, &err);
	if (!ctx.store)
		goto free_pg;
	/* Temporaries whose writer died (this process's last run, killed): */
	int swept = ft_store_sweep_tmp(ctx.store, 0);
	if (swept)
		ft_logf(FT_LOG_INFO, "api", NULL, "removed %d abandoned temporary uploads", swept);
	ctx.key_cache_ttl_ms = (uint64_t)ft_config_int(cfg, "key_cache_ttl_s") * 1000;
	ctx.keys = ft_apikeys_new(ctx.key_cache_ttl_ms, 100000);
	ctx.usage = ft_usage_new(ft_config_str(cfg, "redis_url"), "api");
	ctx.linger = api_linger_new(LINGER_MAX, 5000);
	ctx.max_upload = (uint64_t)ft_config_int(cfg, "max_upload_bytes");
	ctx.upload_max_per_key = ft_config_int(cfg, "upload_max_per_key");
	ctx.upload_max_per_ip = ft_config_int(cfg, "upload_max_per_ip");
	ctx.body_timeout_s = (unsigned)ft_config_int(cfg, "body_timeout_s");
	ctx.min_body_rate = (uint64_t)ft_config_int(cfg, "min_body_rate");
	ctx.idle_timeout_s = (unsigned)ft_config_int(cfg, "idle_timeout_s");
	ctx.tmp_sweep_ms = (uint64_t)ft_config_int(cfg, "tmp_sweep_s") * 1000;
	struct api_conn_limits lim = {
		.max_connections = open_files_for((unsigned)ft_config_int(cfg, "max_connections")),
		.max_connections_per_ip = (unsigned)ft_config_int(cfg, "max_connections_per_ip"),
	};
	ctx.webhook_allow_http = ft_config_bool(cfg, "webhook_allow_http");
	ctx.job_max_attempts = (int)ft_config_int(cfg, "job_max_attempts");
	ctx.storage_quota = (uint64_t)ft_config_int(cfg, "storage_quota_bytes");
	ctx.webhook_allow_cidrs = ft_config_str(cfg, "webhook_allow_cidrs");
	ctx.endpoint_allow_http = ft_config_bool(cfg, "endpoint_allow_http");
	ctx.endpoint_allow_cidrs = ft_config_str(cfg, "endpoint_allow_cidrs");
	ctx.openapi_json = ft_api_openapi_json;
	ctx.openapi_len = ft_api_openapi_json_len;
	char webui[4096];
	ctx.webui_fd = -1;
	if (api_console_dir(ft_config_str(cfg, "webui_dir"), webui, sizeof(webui)))
		ctx.webui_fd = open(webui, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (ctx.webui_fd < 0)
		ft_logf(FT_LOG_WARN, "api", NULL,
			"the web console is off: no index.html in \"%s\" (set webui_dir)", webui);
	ctx.streams = api_streams_start(ctx.pg, ft_config_int(cfg, "stream_poll_ms"),
					ft_config_int(cfg, "stream_heartbeat_ms"));
	if (!ctx.streams)
		ft_logf(FT_LOG_WARN, "api", NULL, "live event streams are off: no thread");

	struct sigaction sa = { 0 };
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	api_validators_start(&ctx, 2);
	struct api_background *bg = api_background_start(&ctx, ft_config_str(cfg, "database_url"));
	struct MHD_Daemon *d =
		api_http_start(&ctx, ft_config_str(cfg, "listen_addr"),
			       (int)ft_config_int(cfg, "listen_port"), threads, &lim, &err);
	if (!d)
		goto stop_validators;
	struct ft_metrics_server *ms = NULL;
	if (ft_config_int(cfg, "metrics_port") >= 0) {
		ms = ft_metrics_server_new(ft_config_str(cfg, "metrics_addr"),
					   (int)ft_config_int(cfg, "metrics_port"),
					   api_metrics_render, NULL, &err);
		if (!ms) {
			api_streams_stop(ctx.streams);
			MHD_stop_daemon(d);
			goto stop_validators;
		}
		ft_logf(FT_LOG_INFO, "api", NULL, "metrics on http://%s:%d/metrics",
			ft_config_str(cfg, "metrics_addr"), ft_metrics_server_port(ms));
	}
	ft_logf(FT_LOG_INFO, "api", NULL, "listening on %s:%d (%d threads, %s store %s)",
		ft_config_str(cfg, "listen_addr"), api_http_port(d), threads,
		ft_store_backend(ctx.store),
		strcmp(ft_store_backend(ctx.store), "s3") == 0 ? ft_config_str(cfg, "s3_bucket")
							       : ft_config_str(cfg, "store_dir"));
	if (ctx.webui_fd >= 0)
		ft_logf(FT_LOG_INFO, "api", NULL, "web console on http://%s:%d/ (files from %s)",
			ft_config_str(cfg, "listen_addr"), api_http_port(d), webui);
	while (!stop_flag)
		pause();
	ft_logf(FT_LOG_INFO, "api", NULL, "stopping");
	api_streams_stop(ctx.streams); /* no suspended connection may outlive the daemon */
	MHD_stop_daemon(d);
	ft_metrics_server_free(ms);
	rc = 0;
stop_validators:
	api_background_stop(bg);
	api_streams_stop(ctx.streams);
	api_streams_free(ctx.streams);
	if (ctx.webui_fd >= 0)
		close(ctx.webui_fd);
	api_validators_stop(&ctx);
	api_linger_free(ctx.linger);
	ft_usage_free(ctx.usage);
	ft_apikeys_free(ctx.keys);
	ft_store_free(ctx.store);
free_pg:
	ft_pg_pool_free(ctx.pg);
fail:
	if (rc)
		fprintf(stderr, "ft-api: %s%s%s\n", err.msg, err.detail[0] ? ": " : "", err.detail);
	return rc;
}

/* --flag VALUE lookup in argv[from..]. */
static const char *flag(int argc, char **argv, int from, const char *name)
{
	for (int i = from; i + 1 < argc; i++)
		if (strcmp(argv[i], name) == 0)
			return argv[i + 1];
	return NULL;
}

/* A team given by id or by name. */
static bool team_lookup(PGconn *db, const char *team, char out[FT_ID_MAX], struct ft_err *err)
{
	const char *p[] = { team };
	PGresult *r = ft_pg_exec(db, err, "SELECT id FROM teams WHERE id = $1 OR name = $1", 1, p);
	if (!r)
		return false;
	bool ok = PQntuples(r) == 1;
	if (ok)
		ft_strlcpy(out, PQgetvalue(r, 0, 0), FT_ID_MAX);
	else
		ft_failf(err, FT_ENOTFOUND, "not_found", "no team \"%s\"", team);
	PQclear(r);
	return ok;
}

static int admin(struct ft_config *cfg, int argc, char **argv, int i)
{
	struct ft_err err;
	ft_err_clear(&err);
	if (i >= argc)
		return usage();
	const char *cmd = argv[i];
	PGconn *db = PQconnectdb(ft_config_str(cfg, "database_url"));
	int rc = 1;
	if (PQstatus(db) != CONNECTION_OK) {
		fprintf(stderr, "ft-api admin: cannot connect to PostgreSQL: %s",
			PQerrorMessage(db));
		PQfinish(db);
		return 1;
	}
	char team[FT_ID_MAX];
	if (strcmp(cmd, "create-team") == 0) {
		if (i + 1 >= argc) {
			rc = usage();
			goto finish;
		}
		char id[FT_ID_MAX];
		ft_id_new(FT_ID_TEAM, id);
		const char *p[] = { id, argv[i + 1] };
		if (ft_pg_command(db, &err, "INSERT INTO teams (id, name) VALUES ($1, $2)", 2, p))
			goto fail;
		printf("%s\n", id);
		rc = 0;
	} else if (strcmp(cmd, "create-key") == 0) {
		const char *t = flag(argc, argv, i, "--team"),
			   *role_s = flag(argc, argv, i, "--role");
		const char *name = flag(argc, argv, i, "--name");
		enum api_role role;
		if (!t || !role_s) {
			rc = usage();
			goto finish;
		}
		if (!api_role_parse(role_s, &role)) {
			ft_failf(&err, FT_EINVAL, NULL,
				 "unknown role \"%s\" (viewer, member or admin)", role_s);
			goto fail;
		}
		char kid[FT_ID_MAX], key[80];
		if (!team_lookup(db, t, team, &err) ||
		    api_key_create(db, team, name ? name : "", role, 600, NULL, kid, key, &err))
			goto fail;
		printf("%s\n%s\n", kid, key);
		rc = 0;
	} else if (strcmp(cmd, "register-model") == 0) {
		const char *name = flag(argc, argv, i, "--name"),
			   *path = flag(argc, argv, i, "--path");
		const char *t = flag(argc, argv, i, "--team");
		const char *desc = flag(argc, argv, i, "--description");
		char id[FT_ID_MAX];
		if (!name || !path) {
			rc = usage();
			goto finish;
		}
		if ((t && !team_lookup(db, t, team, &err)) ||
		    api_model_register(db, t ? team : NULL, name, path, desc, id, &err))
			goto fail;
		printf("%s\n", id);
		rc = 0;
	} else {
		fprintf(stderr, "ft-api admin: unknown command \"%s\"\n", cmd);
		rc = usage();
	}
	goto finish;
fail:
	fprintf(stderr, "ft-api admin %s: %s%s%s\n", cmd, err.msg, err.detail[0] ? ": " : "",
		err.detail);
finish:
	PQfinish(db);
	return rc;
}

int main(int argc, char **argv)
{
	struct ft_config cfg;
	struct ft_err err;
	const char *config_path = NULL;
	int i = 1;
	ft_err_clear(&err);
	if (i + 1 < argc && strcmp(argv[i], "--config") == 0) {
		config_path = argv[i + 1];
		i += 2;
	}
	if (i < argc && (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0))
		return usage();
	if (ft_config_load(&cfg, config_path, &err)) {
		fprintf(stderr, "ft-api: %s\n", err.msg);
		return 2;
	}
	enum ft_log_level lvl = FT_LOG_INFO;
	ft_log_level_parse(ft_config_str(&cfg, "log_level"), &lvl);
	ft_log_init("api", lvl);
	int rc;
	if (i >= argc || strcmp(argv[i], "serve") == 0)
		rc = serve(&cfg);
	else if (strcmp(argv[i], "admin") == 0)
		rc = admin(&cfg, argc, argv, i + 1);
	else
		rc = usage();
	ft_config_release(&cfg);
	return rc;
}
