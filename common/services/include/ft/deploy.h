/*
 * ft/deploy.h - deployments: the kinds of endpoint the platform publishes
 * model versions to, the states of a deployment, and the readers of what
 * an endpoint answers. ft-api checks requests against these tables, the
 * scheduler's controller (scheduler/src/deploy.c) drives endpoints by them,
 * docs/deployments.md says the same in words.
 *
 * | kind     | how versions get there                           | health check     |
 * |----------|--------------------------------------------------|------------------|
 * | ftserve  | POST /v1/load_lora_adapter, lora_path            | GET /v1/models   |
 * |          | "store:sha256:<manifest>" (ft-serve reads the    |                  |
 * |          | platform's store, serve_store)                   |                  |
 * | vllm     | POST /v1/load_lora_adapter, lora_path a folder   | GET /v1/models   |
 * |          | the controller unpacks into deploy_dir           |                  |
 * | llamacpp | GGUF exports (the base, and the adapter) queued  | GET /health      |
 * |          | by the controller, and the llama-server command  |                  |
 * |          | that serves them; nothing is loaded remotely     |                  |
 *
 * | state   | meaning                                                              |
 * |---------|----------------------------------------------------------------------|
 * | pending | created; the controller has not acted yet                            |
 * | loading | the controller is loading it (or, llamacpp, its exports are running) |
 * | ready   | the endpoint lists every name it answers under (llamacpp: the files  |
 * |         | and the command are ready)                                           |
 * | failed  | the endpoint is unreachable or refused the load; status_reason says  |
 * |         | why; the controller tries again every period                         |
 * | stopped | deleted by a user; the controller unloads its names (unloaded)      |
 *
 * An ftserve endpoint also gets the experiments on it (ft/experiment.h's
 * table: POST /v1/load_experiment, /v1/unload_experiment, listed by GET
 * /v1/experiments) and routes requests for "experiment:<id or name>".
 *
 * Both ftserve and vllm endpoints get vLLM's body {lora_name, lora_path}
 * and, for the request log, ft-serve's team_id, version_id, deployment_id
 * and log_texts (vLLM ignores fields it does not know).
 */
#ifndef FT_DEPLOY_H
#define FT_DEPLOY_H

#include "ft/buf.h"
#include "ft/err.h"

enum ft_endpoint_drive {
	FT_DRIVE_LORA_ROUTES = 0, /* vLLM's load/unload routes */
	FT_DRIVE_GGUF_EXPORTS, /* exports and a command; nothing remote */
};

struct ft_endpoint_kind {
	const char *name;
	enum ft_endpoint_drive drive;
	bool store_refs; /* lora_path "store:sha256:<manifest>" (else a folder in deploy_dir) */
	const char *probe; /* the health check's path */
	const char *help;
	bool experiments; /* routes by A/B experiment (POST /v1/load_experiment, ft/experiment.h) */
};

extern const struct ft_endpoint_kind ft_endpoint_kinds[];
extern const size_t ft_n_endpoint_kinds;
/* The row of a kind's name, or NULL. */
const struct ft_endpoint_kind *ft_endpoint_kind_find(const char *name);

extern const char *const ft_deployment_states[]; /* NULL-terminated, the table's order */
bool ft_deployment_state_valid(const char *s);

/* The GGUF types a llamacpp deployment's base may be exported as (ft/exports.h's gguf). */
extern const char *const ft_deploy_gguf_types[]; /* NULL-terminated */

/* lora_path of a folder in the store: "store:sha256:" + 64 lower-case hex. */
#define FT_STORE_REF_PREFIX "store:sha256:"
/* True and the manifest's hex in out when s is such a reference. */
bool ft_store_ref_parse(const char *s, char out[65]);

/* ---- what endpoints answer (outside input: fuzzed by fuzz_endpoint_answer) ---- */

#define FT_ENDPOINT_MAX_MODELS 4096
#define FT_ENDPOINT_NAME_MAX 512

/* The ids of GET /v1/models' answer ({"data": [{"id": ...}, ...]}), as
 * OpenAI, vLLM and ft-serve write it; *names (malloc'ed array of malloc'ed
 * strings) is the caller's to free with ft_endpoint_models_free. FT_EFORMAT
 * for anything else (not JSON, no "data" list, an entry without a string
 * id, more than FT_ENDPOINT_MAX_MODELS). */
enum ft_rc ft_endpoint_models_parse(const char *body, size_t n, char ***names, size_t *count,
				    struct ft_err *err);
void ft_endpoint_models_free(char **names, size_t count);

/* A short account of an error answer for a deployment's status_reason:
 * the message of OpenAI's {"error": {"message"}} (ft-serve), vLLM's
 * {"message"} or FastAPI's {"detail"}, else the start of the body; control
 * characters and invalid UTF-8 become '?', cut to n - 1 bytes at a
 * character boundary. Writes "" for an empty body. */
void ft_endpoint_error_text(const char *body, size_t len, char *out, size_t n);

/* ---- calling an endpoint (the deployment controller; ft-api's chat route) ---- */

/* Where and how: the base URL (no /v1), the address ft_webhook_check_url
 * pinned for it (a CURLOPT_RESOLVE entry: no second DNS answer is asked),
 * the opened bearer token or NULL, and whether plain http is allowed. */
struct ft_endpoint_target {
	const char *url, *pin, *api_key;
	bool allow_http;
};
struct ft_endpoint_answer {
	long status; /* 0: no answer */
	struct ft_buf body; /* capped by its limit: a longer answer is cut there */
	char error[400]; /* a transport error, or "HTTP n: the endpoint's message" */
	/* optional: a 2xx answer's bytes go here as they arrive (a stream)
	 * instead of into body; false ends the transfer */
	bool (*sink)(const char *p, size_t n, void *ud);
	void *sink_ud;
};
/* method path with a JSON body (or none), at most timeout_ms; a transfer
 * stops early when stop (may be NULL) becomes non-zero. Redirects are not
 * followed. Every header holding the token is wiped before it is freed. */
void ft_endpoint_call(const struct ft_endpoint_target *t, const char *method, const char *path,
		      const char *body, long timeout_ms, const volatile int *stop,
		      const char *user_agent, struct ft_endpoint_answer *a);

#endif
