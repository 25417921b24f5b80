/*
 * config.c - the configuration table and its loader. To add a key: add a
 * row to `keys` and a row to docs/configuration.md (a test checks that the
 * two agree).
 */
#include <ctype.h>

#include "ft/config.h"
#include "ft/log.h"

static const struct ft_config_key keys[] = {
	{ "database_url", FT_CFG_STR, "postgresql://localhost/ftplat", 0, 0,
	  "PostgreSQL connection string (libpq URI or key=value form)" },
	{ "redis_url", FT_CFG_STR, "redis://127.0.0.1:6379/0", 0, 0,
	  "Redis URL: redis://[:password@]host[:port][/db]" },
	{ "listen_addr", FT_CFG_STR, "127.0.0.1", 0, 0, "address ft-api listens on" },
	{ "listen_port", FT_CFG_INT, "8080", 1, 65535, "TCP port ft-api listens on" },
	{ "store_dir", FT_CFG_STR, "./ftplat-store", 0, 0,
	  "root of the local artifact store; with store_backend = s3, where transfers are staged" },
	{ "store_backend", FT_CFG_STR, "local", 0, 0,
	  "local (blobs under store_dir) or s3 (an S3-compatible object store)" },
	{ "s3_endpoint", FT_CFG_STR, NULL, 0, 0,
	  "URL of the S3-compatible server (path-style), e.g. https://s3.example.com" },
	{ "s3_bucket", FT_CFG_STR, NULL, 0, 0, "bucket that holds the blobs (must exist)" },
	{ "s3_region", FT_CFG_STR, "us-east-1", 0, 0, "region named in the SigV4 signature" },
	{ "s3_access_key", FT_CFG_STR, NULL, 0, 0, "S3 access key id" },
	{ "s3_secret_key", FT_CFG_STR, NULL, 0, 0,
	  "S3 secret key (prefer the environment or a Secret to the file)" },
	{ "s3_prefix", FT_CFG_STR, "", 0, 0,
	  "prefix of every key in the bucket, e.g. \"ftplat/\" ([A-Za-z0-9._/-])" },
	{ "s3_multipart_mb", FT_CFG_INT, "64", 5, 5120,
	  "blobs larger than this many MiB are uploaded in parts of this size" },
	{ "s3_attempts", FT_CFG_INT, "5", 1, 20,
	  "tries per S3 request (5xx answers and connection errors are retried)" },
	{ "s3_backoff_ms", FT_CFG_INT, "200", 1, 60000,
	  "first S3 retry delay; doubles per try, jittered, capped at 30 s" },
	{ "s3_sweep_min_age_s", FT_CFG_INT, "86400", 0, 31536000,
	  "S3 store: multipart uploads younger than this are never swept (S3 cannot tell a live "
	  "writer's from an abandoned one)" },
	{ "serve_model", FT_CFG_STR, NULL, 0, 0,
	  "ft-serve: the base model, a Hugging Face folder or a .gguf file" },
	{ "serve_name", FT_CFG_STR, NULL, 0, 0,
	  "ft-serve: the base model's id in /v1/models (default: the folder's name)" },
	{ "serve_addr", FT_CFG_STR, "127.0.0.1", 0, 0, "address ft-serve listens on" },
	{ "serve_port", FT_CFG_INT, "8090", 1, 65535, "TCP port ft-serve listens on" },
	{ "serve_device", FT_CFG_STR, "cpu", 0, 0, "ft-serve: cpu or cuda" },
	{ "serve_weights", FT_CFG_STR, "f32", 0, 0,
	  "ft-serve: the base's weights as served: f32, or q8_0 (llama.cpp's Q8_0 arithmetic)" },
	{ "serve_max_seqs", FT_CFG_INT, "16", 1, 4096,
	  "ft-serve: sequences generated at once (KV cache slots)" },
	{ "serve_max_len", FT_CFG_INT, "2048", 16, 1048576,
	  "ft-serve: positions per sequence, prompt and completion (capped by the model's)" },
	{ "serve_prefill_chunk", FT_CFG_INT, "256", 1, 1048576,
	  "ft-serve: prompt tokens read per batched step, over all sequences" },
	{ "serve_max_queue", FT_CFG_INT, "256", 0, 1000000,
	  "ft-serve: requests waiting for a slot; beyond it requests get 429" },
	{ "serve_max_adapters", FT_CFG_INT, "8", 1, 1024,
	  "ft-serve: LoRA adapters resident at once (least recently used unloaded)" },
	{ "serve_prefix_cache", FT_CFG_BOOL, "true", 0, 0,
	  "ft-serve: reuse the keys and values a finished request left, or a running one holds, "
	  "for a prompt that starts with the same tokens" },
	{ "serve_token", FT_CFG_STR, NULL, 0, 0,
	  "ft-serve: the bearer token clients must send (unset: no authentication)" },
	{ "serve_max_body_bytes", FT_CFG_INT, "8388608", 1024, 1073741824,
	  "ft-serve: largest request body" },
	{ "serve_database_url", FT_CFG_STR, NULL, 0, 0,
	  "ft-serve: PostgreSQL whose API keys ft-serve accepts (unset: no platform keys)" },
	{ "serve_redis_url", FT_CFG_STR, NULL, 0, 0,
	  "ft-serve: Redis that receives the request log (unset: no request log)" },
	{ "serve_log_queue", FT_CFG_INT, "100000", 1, 10000000,
	  "ft-serve: request log records held while Redis is away; beyond it the oldest are "
	  "dropped" },
	{ "serve_log_queue_mb", FT_CFG_INT, "256", 1, 1048576,
	  "ft-serve: MiB those held records may take; beyond it the oldest are dropped" },
	{ "serve_log_texts", FT_CFG_BOOL, "false", 0, 0,
	  "ft-serve: the request log keeps the prompt and completion texts of the base model's "
	  "requests" },
	{ "serve_embed_percent", FT_CFG_INT, "25", 0, 100,
	  "ft-serve: share of requests (by a hash of their id) whose prompt embedding the "
	  "request log keeps, for embedding drift" },
	{ "serve_version_id", FT_CFG_STR, NULL, 0, 0,
	  "ft-serve: the registry version (mv-...) the base model's requests are logged under" },
	{ "serve_deployment_id", FT_CFG_STR, NULL, 0, 0,
	  "ft-serve: the deployment (dep-...) the base model's requests are logged under" },
	{ "serve_store", FT_CFG_BOOL, "false", 0, 0,
	  "ft-serve: load adapters named \"store:sha256:<manifest>\" from the artifact store "
	  "(store_backend, store_dir, s3_*)" },
	{ "serve_cache_dir", FT_CFG_STR, NULL, 0, 0,
	  "ft-serve: where an adapter from the store is unpacked while it loads (default: $TMPDIR "
	  "or /tmp)" },
	{ "secret_key", FT_CFG_STR, NULL, 0, 0,
	  "ft-api and ft-scheduler: 64 hex characters that seal endpoint credentials at rest "
	  "(AES-256-GCM); the same on every host" },
	{ "deploy_interval_ms", FT_CFG_INT, "10000", 100, 3600000,
	  "ft-scheduler: the deployment controller's period (health checks, loads; a change wakes "
	  "it "
	  "at once)" },
	{ "deploy_timeout_ms", FT_CFG_INT, "120000", 100, 3600000,
	  "ft-scheduler: time limit of one adapter load or unload on an endpoint" },
	{ "deploy_probe_timeout_ms", FT_CFG_INT, "5000", 100, 600000,
	  "ft-scheduler: time limit of one health check of an endpoint" },
	{ "deploy_dir", FT_CFG_STR, NULL, 0, 0,
	  "ft-scheduler: folder the controller unpacks adapters into for vllm endpoints, which "
	  "must read it at the same path (unset: vllm deployments fail)" },
	{ "endpoint_allow_http", FT_CFG_BOOL, "false", 0, 0,
	  "plain-http endpoint URLs (an inference server on a private network)" },
	{ "endpoint_allow_cidrs", FT_CFG_STR, "", 0, 0,
	  "comma-separated CIDRs of special addresses endpoints may be at (admin)" },
	{ "log_level", FT_CFG_STR, "info", 0, 0, "debug | info | warn | error" },
	{ "pg_pool_size", FT_CFG_INT, "8", 1, 256, "PostgreSQL connections per process" },
	{ "api_threads", FT_CFG_INT, "8", 1, 1024, "ft-api worker threads" },
	{ "max_upload_bytes", FT_CFG_INT, "536870912", 1, 1L << 40,
	  "largest accepted upload, in bytes" },
	{ "body_timeout_s", FT_CFG_INT, "15", 1, 3600,
	  "ft-api drops a request body that sends nothing for this long" },
	{ "min_body_rate", FT_CFG_INT, "1024", 0, 1L << 30,
	  "bytes/s a request body must average after its first body_timeout_s (0: no minimum)" },
	{ "upload_max_per_key", FT_CFG_INT, "4", 1, 100000,
	  "uploads one API key may have in flight at once" },
	{ "upload_max_per_ip", FT_CFG_INT, "16", 1, 100000,
	  "uploads one client address may have in flight at once" },
	{ "max_connections", FT_CFG_INT, "1000", 16, 1000000,
	  "connections ft-api holds open at once" },
	{ "max_connections_per_ip", FT_CFG_INT, "128", 0, 1000000,
	  "connections one client address may hold open (0: no limit)" },
	{ "idle_timeout_s", FT_CFG_INT, "60", 1, 3600,
	  "ft-api closes a connection that sends nothing for this long between requests" },
	{ "key_cache_ttl_s", FT_CFG_INT, "30", 0, 3600,
	  "longest time ft-api and ft-serve trust a cached API key without rereading it (0: no "
	  "cache)" },
	{ "tmp_sweep_s", FT_CFG_INT, "300", 1, 86400,
	  "how often ft-api removes temporary uploads that no live process is writing" },
	{ "migrations_dir", FT_CFG_STR, NULL, 0, 0,
	  "folder of NNNN_name.up.sql / .down.sql files for ft-migrate" },
	{ "worker_id", FT_CFG_STR, NULL, 0, 0, "stable id of this worker (default: generated)" },
	{ "heartbeat_ms", FT_CFG_INT, "2000", 100, 600000, "worker heartbeat period" },
	{ "lease_ms", FT_CFG_INT, "15000", 500, 3600000,
	  "how long a dispatched job stays leased without a heartbeat" },
	{ "metrics_addr", FT_CFG_STR, "127.0.0.1", 0, 0,
	  "address of the /metrics endpoint of ft-scheduler and ft-worker" },
	{ "metrics_port", FT_CFG_INT, "-1", -1, 65535,
	  "port of that /metrics endpoint (-1: none, 0: any free port)" },
	{ "job_max_attempts", FT_CFG_INT, "3", 1, 100,
	  "attempts a job gets (a lost worker or a failed run uses one) before it fails" },
	{ "sched_tick_ms", FT_CFG_INT, "200", 10, 60000, "scheduler loop period" },
	{ "worker_slots", FT_CFG_INT, "1", 1, 64,
	  "concurrent CPU jobs a worker without GPUs takes" },
	{ "worker_gpus", FT_CFG_INT, "-1", -1, 64,
	  "GPUs a worker offers (-1: detect with NVML, 0 without)" },
	{ "trainer_path", FT_CFG_STR, NULL, 0, 0,
	  "the ft-train program a worker runs (default: next to ft-worker)" },
	{ "work_dir", FT_CFG_STR, "./ftplat-work", 0, 0, "a worker's scratch folder for jobs" },
	{ "cache_dir", FT_CFG_STR, "./ftplat-cache", 0, 0,
	  "a worker's cache of job inputs fetched from the store (one worker per folder)" },
	{ "cache_max_mb", FT_CFG_INT, "20480", 1, 1073741824,
	  "a worker's cache size cap in MiB (least recently used inputs go first; inputs of "
	  "running jobs stay)" },
	{ "checkpoint_steps", FT_CFG_INT, "50", 1, 1000000,
	  "a worker's jobs checkpoint every this many steps unless the job says otherwise" },
	{ "drain_ack_ms", FT_CFG_INT, "15000", 0, 3600000,
	  "how long a draining worker, its jobs ended, waits for the scheduler to acknowledge "
	  "their last events before it exits anyway" },
	{ "webhook_allow_http", FT_CFG_BOOL, "false", 0, 0,
	  "allow plain-http webhook URLs (development only)" },
	{ "webhook_allow_cidrs", FT_CFG_STR, "", 0, 0,
	  "comma-separated CIDRs of special addresses webhooks may reach (admin)" },
	{ "webhook_backoff_ms", FT_CFG_INT, "5000", 1, 3600000,
	  "first webhook retry delay; doubles per attempt up to 12 h" },
	{ "webhook_timeout_ms", FT_CFG_INT, "10000", 100, 120000,
	  "one webhook attempt's time limit" },
	{ "webhook_max_age_hours", FT_CFG_INT, "72", 1, 720,
	  "a webhook delivery still failing after this long is abandoned" },
	{ "webui_dir", FT_CFG_STR, NULL, 0, 0,
	  "folder of the web console's files (default: the install's share/ftplat/webui, "
	  "else the source tree's webui/)" },
	{ "stream_poll_ms", FT_CFG_INT, "500", 20, 60000,
	  "how often a live event stream looks for new job events" },
	{ "stream_heartbeat_ms", FT_CFG_INT, "15000", 100, 300000,
	  "an idle live event stream sends a comment this often" },
	{ "gc_interval_s", FT_CFG_INT, "3600", 0, 604800,
	  "ft-scheduler collects blobs nothing references this often (0: never)" },
	{ "gc_grace_s", FT_CFG_INT, "86400", 0, 31536000,
	  "a blob younger than this is never collected (covers uploads and stores in flight)" },
	{ "experiment_interval_ms", FT_CFG_INT, "60000", 100, 86400000,
	  "ft-scheduler's leader computes A/B experiments' results this often" },
	{ "drift_interval_ms", FT_CFG_INT, "60000", 100, 86400000,
	  "ft-scheduler's leader computes drift windows of monitored deployments this often" },
	{ "request_log_retention_days", FT_CFG_INT, "30", 0, 36500,
	  "ft-scheduler's leader deletes request log rows older than this (0: keep them all); "
	  "it keeps those of experiments whose results are not final and drift references" },
	{ "drift_grace_s", FT_CFG_INT, "120", 0, 86400,
	  "a drift window is computed this long after it ends (the request log's delay)" },
	{ "judge_allow_http", FT_CFG_BOOL, "false", 0, 0,
	  "allow plain-http URLs for experiments' LLM judges (development only)" },
	{ "judge_allow_cidrs", FT_CFG_STR, "", 0, 0,
	  "comma-separated CIDRs of special addresses LLM judges may be at (admin)" },
	{ "judge_timeout_ms", FT_CFG_INT, "60000", 100, 600000,
	  "one call to an LLM judge's time limit" },
	{ "judge_backoff_ms", FT_CFG_INT, "10000", 1, 3600000,
	  "first retry delay of an LLM judgment; doubles per attempt up to 1 h" },
	{ "judge_max_attempts", FT_CFG_INT, "5", 1, 100,
	  "attempts an LLM judgment gets before it fails" },
	{ "replay_timeout_ms", FT_CFG_INT, "120000", 100, 3600000,
	  "one answer of an arm to a replayed prompt: its time limit" },
	{ "replay_backoff_ms", FT_CFG_INT, "10000", 1, 3600000,
	  "first retry delay of a replay whose call failed; doubles per attempt up to 1 h" },
	{ "replay_max_attempts", FT_CFG_INT, "5", 1, 100,
	  "attempts a replay gets before it fails with the last error" },
	{ "storage_quota_bytes", FT_CFG_INT, "0", 0, 1L << 60,
	  "stored bytes a team may have (files, checkpoints, models, exports); 0: no quota; "
	  "a team's own quota replaces it" },
};

const struct ft_config_key *ft_config_keys(size_t *count)
{
	*count = FT_ARRAY_LEN(keys);
	return keys;
}

static int key_index(const char *name)
{
	for (size_t i = 0; i < FT_ARRAY_LEN(keys); i++)
		if (strcmp(keys[i].name, name) == 0)
			return (int)i;
	return -1;
}

static bool parse_bool(const char *s, bool *out)
{
	static const char *const yes[] = { "1", "true", "yes", "on" };
	static const char *const no[] = { "0", "false", "no", "off" };
	for (size_t i = 0; i < FT_ARRAY_LEN(yes); i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*out = true;
			return true;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*out = false;
			return true;
		}
	}
	return false;
}

static bool parse_long(const char *s, long *out)
{
	char *end;
	long v;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end)
		return false;
	*out = v;
	return true;
}

static enum ft_rc check_value(const struct ft_config_key *k, const char *value, const char *origin,
			      struct ft_err *err)
{
	long v;
	bool bv;
	switch (k->type) {
	case FT_CFG_STR: return FT_OK;
	case FT_CFG_INT:
		if (!parse_long(value, &v))
			return ft_failf(err, FT_EINVAL, "invalid_config",
					"config %s: \"%s\" must be an integer (got \"%s\")", origin,
					k->name, value);
		if (v < k->min || v > k->max)
			return ft_failf(err, FT_EINVAL, "invalid_config",
					"config %s: \"%s\" must be between %ld and %ld (got %ld)",
					origin, k->name, k->min, k->max, v);
		return FT_OK;
	case FT_CFG_BOOL:
		if (!parse_bool(value, &bv))
			return ft_failf(err, FT_EINVAL, "invalid_config",
					"config %s: \"%s\" must be true or false (got \"%s\")",
					origin, k->name, value);
		return FT_OK;
	}
	return FT_EINTERNAL;
}

static void store(struct ft_config *cfg, int i, const char *value, const char *origin)
{
	free(cfg->values[i]);
	free(cfg->origin[i]);
	cfg->values[i] = value ? ft_xstrdup(value) : NULL;
	cfg->origin[i] = ft_xstrdup(origin);
}

enum ft_rc ft_config_set(struct ft_config *cfg, const char *key, const char *value,
			 const char *origin, struct ft_err *err)
{
	int i = key_index(key);
	if (i < 0)
		return ft_failf(err, FT_EINVAL, "invalid_config", "config %s: unknown key \"%s\"",
				origin, key);
	if (check_value(&keys[i], value, origin, err))
		return FT_EINVAL;
	store(cfg, i, value, origin);
	return FT_OK;
}

static char *trim(char *s)
{
	char *e;
	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

static enum ft_rc load_file(struct ft_config *cfg, const char *path, struct ft_err *err)
{
	FILE *f = fopen(path, "r");
	char line[4096], origin[64];
	long lineno = 0;
	enum ft_rc rc = FT_OK;

	if (!f)
		return ft_failf(err, FT_EIO, "invalid_config", "config file \"%s\": %s", path,
				strerror(errno));
	while (fgets(line, sizeof(line), f)) {
		char *key, *value, *eq;
		lineno++;
		snprintf(origin, sizeof(origin), "line %ld", lineno);
		if (!strchr(line, '\n') && !feof(f)) {
			rc = ft_failf(err, FT_EINVAL, "invalid_config",
				      "config line %ld: longer than %zu bytes", lineno,
				      sizeof(line) - 2);
			break;
		}
		key = trim(line);
		if (*key == '\0' || *key == '#')
			continue;
		eq = strchr(key, '=');
		if (!eq) {
			rc = ft_failf(err, FT_EINVAL, "invalid_config",
				      "config line %ld: expected key = value", lineno);
			break;
		}
		*eq = '\0';
		key = trim(key);
		value = trim(eq + 1);
		size_t vl = strlen(value);
		if (vl >= 2 && value[0] == '"' && value[vl - 1] == '"') {
			value[vl - 1] = '\0';
			value++;
		}
		rc = ft_config_set(cfg, key, value, origin, err);
		if (rc)
			break;
	}
	if (rc == FT_OK && ferror(f))
		rc = ft_failf(err, FT_EIO, "invalid_config", "config file \"%s\": read error",
			      path);
	fclose(f);
	if (rc)
		ft_err_detailf(err, "in %s", path);
	return rc;
}

enum ft_rc ft_config_load(struct ft_config *cfg, const char *path, struct ft_err *err)
{
	size_t n = FT_ARRAY_LEN(keys);
	enum ft_rc rc;

	cfg->values = ft_xcalloc(n, sizeof(char *));
	cfg->origin = ft_xcalloc(n, sizeof(char *));
	for (size_t i = 0; i < n; i++)
		store(cfg, (int)i, keys[i].def, "default");

	if (!path)
		path = getenv("FT_CONFIG");
	if (path && *path) {
		rc = load_file(cfg, path, err);
		if (rc)
			goto fail;
	}
	for (size_t i = 0; i < n; i++) {
		char env[96];
		const char *v;
		size_t j;
		snprintf(env, sizeof(env), "FT_%s", keys[i].name);
		for (j = 3; env[j]; j++)
			env[j] = (char)toupper((unsigned char)env[j]);
		v = getenv(env);
		if (!v)
			continue;
		char origin[128];
		snprintf(origin, sizeof(origin), "env %s", env);
		rc = ft_config_set(cfg, keys[i].name, v, origin, err);
		if (rc)
			goto fail;
	}
	return FT_OK;
fail:
	ft_config_release(cfg);
	return rc;
}

void ft_config_release(struct ft_config *cfg)
{
	if (!cfg->values)
		return;
	for (size_t i = 0; i < FT_ARRAY_LEN(keys); i++) {
		free(cfg->values[i]);
		free(cfg->origin[i]);
	}
	free(cfg->values);
	free(cfg->origin);
	cfg->values = cfg->origin = NULL;
}

static int must_index(const char *key)
{
	int i = key_index(key);
	FT_ASSERT(i >= 0 && "unknown config key");
	return i;
}

const char *ft_config_str(const struct ft_config *cfg, const char *key)
{
	return cfg->values[must_index(key)];
}

long ft_config_int(const struct ft_config *cfg, const char *key)
{
	int i = must_index(key);
	long v = 0;
	FT_ASSERT(keys[i].type == FT_CFG_INT);
	if (cfg->values[i])
		FT_ASSERT(parse_long(cfg->values[i], &v));
	return v;
}

bool ft_config_bool(const struct ft_config *cfg, const char *key)
{
	int i = must_index(key);
	bool v = false;
	FT_ASSERT(keys[i].type == FT_CFG_BOOL);
	if (cfg->values[i])
		FT_ASSERT(parse_bool(cfg->values[i], &v));
	return v;
}

const char *ft_config_origin(const struct ft_config *cfg, const char *key)
{
	return cfg->origin[must_index(key)];
}

int ft_config_daemon_start(int argc, char **argv, const char *prog, const char *component,
			   struct ft_config *cfg)
{
	const char *path = NULL;
	struct ft_err err;
	enum ft_log_level lvl = FT_LOG_INFO;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
			path = argv[++i];
		} else {
			bool help = strcmp(argv[i], "--help") == 0;
			fprintf(help ? stdout : stderr, "usage: %s [--config FILE]\n", prog);
			return help ? 0 : 2;
		}
	}
	ft_err_clear(&err);
	if (ft_config_load(cfg, path, &err)) {
		fprintf(stderr, "%s: %s\n", prog, err.msg);
		return 1;
	}
	ft_log_level_parse(ft_config_str(cfg, "log_level"), &lvl);
	ft_log_init(component, lvl);
	return -1;
}
