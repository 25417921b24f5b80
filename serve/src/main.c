/*
 * main.c - ft-serve: `ft-serve [--config FILE] [--adapter NAME=DIR ...]`.
 * The configuration (docs/configuration.md, keys serve_*) names the base
 * model (a Hugging Face folder or a .gguf), the port, the batching limits,
 * the bearer token, the database whose API keys it accepts, the Redis that
 * receives the request log, and what the log says of the base (its
 * registry version, deployment, whether texts are logged), and whether
 * adapters may come from the platform's store (serve_store); adapters
 * named on the command line are loaded at start, others through POST
 * /v1/load_lora_adapter. SIGTERM / SIGINT stop it: running requests end,
 * the request log gets a few seconds to reach Redis, the process exits 0.
 */
#include <libgen.h>
#include <signal.h>
#include <unistd.h>

#include "ft/clock.h"
#include "ft/config.h"
#include "ft/crypto.h"
#include "ft/fs.h"
#include "ft/log.h"
#include "ft/registry.h"
#include "serve_int.h"

#define LOG_FLUSH_MS 5000

static volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
	FT_UNUSED(sig);
	g_stop = 1;
}

/* The base model's id: serve_name, else the folder's (or file's) name. */
static void base_name(const struct ft_config *cfg, const char *model, char *out, size_t n)
{
	const char *name = ft_config_str(cfg, "serve_name");
	if (name && *name) {
		ft_strlcpy(out, name, n);
		return;
	}
	char tmp[4096];
	ft_strlcpy(tmp, model, sizeof tmp);
	size_t l = strlen(tmp);
	while (l > 1 && tmp[l - 1] == '/')
		tmp[--l] = 0;
	ft_strlcpy(out, basename(tmp), n);
	char *dot = strstr(out, ".gguf");
	if (dot && dot[5] == 0)
		*dot = 0;
}

/* An optional id-valued key (serve_version_id, serve_deployment_id). */
static bool id_key(const struct ft_config *cfg, const char *key, const char *prefix, char *out,
		   size_t n)
{
	const char *v = ft_config_str(cfg, key);
	if (!v || !*v)
		return true;
	if (!ft_id_valid(prefix, v)) {
		fprintf(stderr, "ft-serve: %s must be an id \"%s-\" and 24 letters or digits\n",
			key, prefix);
		return false;
	}
	ft_strlcpy(out, v, n);
	return true;
}

int main(int argc, char **argv)
{
	/* --adapter NAME=DIR may repeat: take them out before the common parser */
	char *adapters[32];
	int n_ad = 0, n_left = 1;
	char *left[64] = { argv[0] };
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--adapter") == 0 && i + 1 < argc && n_ad < 32) {
			adapters[n_ad++] = argv[++i];
			continue;
		}
		if (n_left < 63)
			left[n_left++] = argv[i];
	}
	struct ft_config cfg;
	int rc = ft_config_daemon_start(n_left, left, "ft-serve", "serve", &cfg);
	if (rc >= 0)
		return rc;
	struct ft_err err;
	ft_err_clear(&err);
	const char *model = ft_config_str(&cfg, "serve_model");
	if (!model || !*model) {
		fprintf(stderr, "ft-serve: serve_model (FT_SERVE_MODEL) names no model\n");
		ft_config_release(&cfg);
		return 1;
	}
	struct srv_ctx ctx = { 0 };
	pthread_mutex_init(&ctx.mu, NULL);
	pthread_mutex_init(&ctx.meta_mu, NULL);
	pthread_mutex_init(&ctx.load_mu, NULL);
	pthread_mutex_init(&ctx.exp_mu, NULL);
	ctx.max_body = (size_t)ft_config_int(&cfg, "serve_max_body_bytes");
	ctx.started_ms = (uint64_t)ft_time_wall_ms();
	base_name(&cfg, model, ctx.model_name, sizeof ctx.model_name);
	ft_strlcpy(ctx.base.name, ctx.model_name, sizeof ctx.base.name);
	ctx.base.log_texts = ft_config_bool(&cfg, "serve_log_texts");
	ctx.embed_percent = (int)ft_config_int(&cfg, "serve_embed_percent");
	rc = 1;
	if (!id_key(&cfg, "serve_version_id", FT_ID_VERSION, ctx.base.version,
		    sizeof ctx.base.version) ||
	    !id_key(&cfg, "serve_deployment_id", FT_ID_DEPLOYMENT, ctx.base.deployment,
		    sizeof ctx.base.deployment))
		goto release_cfg;
	const char *token = ft_config_str(&cfg, "serve_token");
	if (token && *token)
		ft_sha256_hex(token, strlen(token), ctx.token_hash);
	const char *db = ft_config_str(&cfg, "serve_database_url");
	if (db && *db) {
		ctx.auth =
			srv_auth_new(db, ft_config_str(&cfg, "serve_redis_url"),
				     (uint64_t)ft_config_int(&cfg, "key_cache_ttl_s") * 1000, &err);
		if (!ctx.auth) {
			fprintf(stderr, "ft-serve: serve_database_url: %s\n", err.msg);
			goto release_cfg;
		}
	}
	const char *redis = ft_config_str(&cfg, "serve_redis_url");
	if (redis && *redis)
		ctx.log = srv_reqlog_new(redis, (size_t)ft_config_int(&cfg, "serve_log_queue"),
					 (size_t)ft_config_int(&cfg, "serve_log_queue_mb") << 20);
	if (ft_config_bool(&cfg, "serve_store")) {
		ctx.store = ft_store_open_config(&cfg, &err);
		if (!ctx.store) {
			fprintf(stderr, "ft-serve: serve_store: %s\n", err.msg);
			goto release_cfg;
		}
	}
	const char *cache = ft_config_str(&cfg, "serve_cache_dir");
	if (!cache || !*cache)
		cache = getenv("TMPDIR") && *getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	ft_strlcpy(ctx.cache_dir, cache, sizeof ctx.cache_dir);
	if (ctx.store && ft_mkdir_p(ctx.cache_dir, &err)) { /* made as the workers' cache_dir is */
		fprintf(stderr, "ft-serve: serve_cache_dir: %s\n", err.msg);
		goto release_cfg;
	}
	struct ft_srv_opts o;
	ft_srv_opts_default(&o);
	o.model_dir = model;
	o.device = ft_config_str(&cfg, "serve_device");
	o.weights = ft_config_str(&cfg, "serve_weights");
	o.max_seqs = (int)ft_config_int(&cfg, "serve_max_seqs");
	o.max_len = (int)ft_config_int(&cfg, "serve_max_len");
	o.prefill_chunk = (int)ft_config_int(&cfg, "serve_prefill_chunk");
	o.max_queue = (int)ft_config_int(&cfg, "serve_max_queue");
	o.max_adapters = (int)ft_config_int(&cfg, "serve_max_adapters");
	o.prefix_cache = ft_config_bool(&cfg, "serve_prefix_cache");
	if (ft_srv_new(&o, &ctx.srv, &err)) {
		fprintf(stderr, "ft-serve: %s\n", err.msg);
		goto release_cfg;
	}
	for (int i = 0; i < n_ad; i++) {
		char *eq = strchr(adapters[i], '=');
		if (!eq) {
			fprintf(stderr, "ft-serve: --adapter takes NAME=DIR (got \"%s\")\n",
				adapters[i]);
			goto free_srv;
		}
		*eq = 0;
		struct srv_meta m = { 0 };
		ft_strlcpy(m.name, adapters[i], sizeof m.name);
		if (srv_adapter_add(&ctx, &m, eq + 1, &err)) {
			fprintf(stderr, "ft-serve: adapter \"%s\": %s\n", adapters[i], err.msg);
			goto free_srv;
		}
	}
	struct MHD_Daemon *d = srv_http_start(&ctx, ft_config_str(&cfg, "serve_addr"),
					      (int)ft_config_int(&cfg, "serve_port"), &err);
	if (!d) {
		fprintf(stderr, "ft-serve: %s\n", err.msg);
		goto free_srv;
	}
	ft_logf(FT_LOG_INFO, "serve", NULL,
		"serving %s as \"%s\" on %s:%ld (%d sequences of %d); API keys %s, request log %s",
		model, ctx.model_name, ft_config_str(&cfg, "serve_addr"),
		ft_config_int(&cfg, "serve_port"), o.max_seqs, ft_srv_max_len(ctx.srv),
		ctx.auth ? "on" : "off", ctx.log ? "on" : "off");
	struct sigaction sa = { 0 };
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	while (!g_stop)
		pause();
	ft_logf(FT_LOG_INFO, "serve", NULL, "stopping");
	ft_srv_free(ctx.srv); /* running requests end, their streams close */
	ctx.srv = NULL;
	MHD_stop_daemon(d); /* every request completes: its record is queued */
	rc = 0;
free_srv:
	ft_srv_free(ctx.srv);
release_cfg:
	srv_reqlog_free(ctx.log, LOG_FLUSH_MS);
	srv_auth_free(ctx.auth);
	ft_store_free(ctx.store);
	free(ctx.metas);
	free(ctx.exps);
	pthread_mutex_destroy(&ctx.exp_mu);
	pthread_mutex_destroy(&ctx.load_mu);
	pthread_mutex_destroy(&ctx.meta_mu);
	pthread_mutex_destroy(&ctx.mu);
	ft_config_release(&cfg);
	return rc;
}
