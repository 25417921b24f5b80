/*
 * api_int.h - declarations private to api/.
 *
 * A request (struct api_req) lives from the first call of libmicrohttpd's
 * access handler to its "request completed" callback. Everything it
 * allocates comes from its arena (struct api_arena) or is registered there
 * with a cleanup hook (PGresult, json_t, a store writer), so handlers never
 * free by hand and an aborted connection leaks nothing.
 *
 * A handler fills r->resp (a JSON value the request then owns) and
 * r->status, or returns an ft_rc with r->err filled. Errors become HTTP in
 * exactly one place: http.c's error writer (table rc -> status).
 */
#ifndef FT_API_INT_H
#define FT_API_INT_H

#include <microhttpd.h>
#include <pthread.h>

#include "ft/api.h"
#include "ft/http.h"
#include "ft/apikey.h"
#include "ft/common.h"
#include "ft/modelref.h"
#include "ft/registry.h"
#include "ft/mem_estimate.h"
#include "ft/train.h"

/* ---- arena: common/http's (ft/http.h), under ft-api's short names ---- */
#define api_arena ft_arena
static inline struct ft_arena *api_arena_new(void)
{
	return ft_arena_new();
}
static inline void api_arena_free(struct ft_arena *a)
{
	ft_arena_free(a);
}
static inline void *api_alloc(struct ft_arena *a, size_t n)
{
	return ft_arena_alloc(a, n);
}
static inline char *api_strdup(struct ft_arena *a, const char *s)
{
	return ft_arena_strdup(a, s);
}
#define api_printf ft_arena_printf
static inline void api_defer(struct ft_arena *a, void (*fn)(void *), void *p)
{
	ft_arena_defer(a, fn, p);
}

/* ---- server-wide state ---------------------------------------------- */
enum api_role { ROLE_NONE = 0, ROLE_VIEWER = 1, ROLE_MEMBER = 2, ROLE_ADMIN = 3 };
const char *api_role_name(enum api_role r);
bool api_role_parse(const char *s, enum api_role *out);

struct ft_usage;
struct api_linger;
struct api_background;
struct api_redis_pool;
struct api_streams;
struct api_stream;

struct api_ctx {
	struct ft_pg_pool *pg;
	struct ft_store *store;
	struct ft_apikeys *keys; /* ft/apikey.h: the shared key cache */
	struct ft_usage *usage; /* ft/usage.h: rates, upload slots, last use */
	struct api_linger *linger; /* linger.c: connections closed gracefully */
	uint64_t max_upload;
	long upload_max_per_key, upload_max_per_ip;
	unsigned body_timeout_s; /* a body silent this long is dropped */
	uint64_t min_body_rate; /* bytes/s a body averages after body_timeout_s */
	unsigned idle_timeout_s;
	uint64_t key_cache_ttl_ms;
	uint64_t tmp_sweep_ms;
	int job_max_attempts; /* attempts a job gets before it fails */
	uint64_t storage_quota; /* a team's stored bytes unless its row says (0: none) */
	bool webhook_allow_http; /* plain-http webhook URLs (development) */
	const char *webhook_allow_cidrs; /* special addresses webhooks may reach */
	bool endpoint_allow_http; /* plain-http endpoint URLs (a private network) */
	const char *endpoint_allow_cidrs; /* special addresses endpoints may be at */
	bool has_secret_key; /* secret_key is set: endpoint credentials can be sealed */
	unsigned char secret_key[FT_SECRETBOX_KEY_LEN];
	const char *openapi_json; /* served at /v1/openapi.json */
	size_t openapi_len;
	/* the web console (console.c): an O_PATH descriptor of webui_dir, -1 when off */
	int webui_fd;
	/* live event streams (stream.c); NULL: ?stream=true answers 503 */
	struct api_streams *streams;
	/* validator threads */
	pthread_mutex_t vmu;
	pthread_cond_t vcv;
	bool vstop;
	int n_validators;
	pthread_t validators[8];
};

/* ---- requests --------------------------------------------------------- */
#define API_MAX_PARAMS 4
#define API_MAX_HEADERS 8
#define API_JSON_MAX (1u << 20)

struct api_route;
struct upload;

struct api_req {
	struct api_arena *arena;
	struct api_ctx *ctx;
	struct MHD_Connection *conn;
	const char *method, *url;
	const struct api_route *route;
	const char *params[API_MAX_PARAMS];

	char addr[64]; /* the client's address, "" when unknown */

	/* caller, after auth */
	char team_id[FT_ID_MAX];
	char key_id[FT_ID_MAX];
	enum api_role role;

	/* body */
	struct ft_buf raw;
	struct ft_sha256 body_sha;
	bool body_sha_on;
	bool failed; /* an error is recorded */
	bool responded; /* a response was queued (or written, see answer_now) */
	bool body_expected; /* Content-Length > 0 or chunked */
	uint64_t body_len; /* Content-Length, 0 when absent */
	bool early; /* answered before its body was read: close gracefully */
	uint64_t body_bytes, body_t0_ns; /* for the minimum body rate */
	struct upload *up; /* multipart uploads */
	bool upload_slots; /* holds a slot of its key and of its address */
	json_t *body; /* parsed JSON body (owned via arena) */

	PGconn *db; /* taken lazily, put back at completion */

	/* response */
	int status;
	json_t *resp;
	int resp_fd; /* >= 0: stream this file instead of JSON */
	uint64_t resp_fd_size; /* bytes to send */
	uint64_t resp_fd_off; /* from this offset of the file (a Range) */
	const char *resp_hdrs[API_MAX_HEADERS][2]; /* extra response headers (api_resp_header) */
	int n_resp_hdrs;
	const char *resp_type;
	struct api_stream *stream; /* != NULL: a live event stream instead (stream.c) */
	long retry_after;
	struct ft_err err;

	uint64_t t0_ns; /* when the request arrived (metrics) */

	/* A field of r->resp shown once: left out of the stored response that an
	 * idempotent replay answers (the key of POST /v1/keys, webhook secrets). */
	const char *secret_field;

	/* idempotency and audit */
	const char *idem_key;
	bool idem_reserved;
	const char *obj_type, *obj_id;
	bool not_found; /* api_not_found answered: audited as a denial */
};

typedef enum ft_rc (*api_handler)(struct api_req *r);

enum api_route_flags {
	RT_PUBLIC = 1 << 0, /* no key needed */
	RT_UPLOAD = 1 << 1, /* multipart body streamed by files.c */
	RT_WRITE = 1 << 2, /* audited; Idempotency-Key honoured on POST */
};

struct api_route {
	const char *method;
	const char *pattern; /* "/v1/files/{id}/content"; a final "{*}" takes the rest */
	api_handler handler;
	unsigned flags;
	enum api_role role; /* least role allowed */
	const char *action; /* audit name: "files.create" */
};

size_t api_route_count(void);
const struct api_route *api_route_at(size_t i);
size_t api_route_index(const struct api_route *r);

/* ---- metrics.c --------------------------------------------------------- */
void api_metrics_begin(void);
void api_metrics_end(const struct api_route *route, int status, uint64_t ns);
void api_metrics_render(struct ft_buf *out, void *ud);

const struct api_route *api_route_find(const char *method, const char *url, struct api_req *r,
				       bool *method_mismatch);

/* ---- helpers (util.c) ------------------------------------------------- */
/* Query with the request's connection; the result is freed with the request. */
PGresult *api_db(struct api_req *r, const char *sql, int n, const char *const *params);
PGresult *api_db_prepared(struct api_req *r, const char *name, const char *sql, int n,
			  const char *const *params);
/* The request's connection (taken from the pool on first use), or NULL
 * with r->err filled. */
PGconn *api_db_conn(struct api_req *r);
enum ft_rc api_db_cmd(struct api_req *r, const char *sql, int n, const char *const *params);
enum ft_rc api_db_begin(struct api_req *r);
enum ft_rc api_db_commit(struct api_req *r);
/* Put the request's connection back to the pool unless a transaction is open. */
void api_db_release(struct api_req *r);
json_t *api_own(struct api_req *r, json_t *v); /* decref'd with the request */
const char *api_query(struct api_req *r, const char *name);
const char *api_header(struct api_req *r, const char *name);
/* The JSON body as an object; "{}" when allowed and empty. */
enum ft_rc api_body_object(struct api_req *r, bool allow_empty, json_t **out);
enum ft_rc api_check_keys(struct api_req *r, json_t *obj, const char *prefix,
			  const char *const *allowed);
/* limit (1..100, default 20) and after (an id of prefix, or NULL). */
enum ft_rc api_page_args(struct api_req *r, const char *id_prefix, long *limit, const char **after);
/* {"object":"list","data":[...],"has_more":..,"first_id","last_id"}; drops the
 * extra row fetched to learn has_more. */
json_t *api_list(json_t *data, long limit);
/* A list endpoint: rows of table whose owner_col = owner, newest first,
 * keyset-paginated on (created_at, id) with ?limit and ?after (an id with
 * id_prefix), each row made JSON by row_fn; sets r->resp. */
enum ft_rc api_list_newest(struct api_req *r, const char *id_prefix, const char *table,
			   const char *owner_col, const char *owner, const char *cols,
			   json_t *(*row_fn)(const PGresult *res, int row));
/* The same, with one more condition on the rows (the caller's constant SQL,
 * whose one parameter is $4 = where_arg). */
enum ft_rc api_list_newest_where(struct api_req *r, const char *id_prefix, const char *table,
				 const char *owner_col, const char *owner, const char *where,
				 const char *where_arg, const char *cols,
				 json_t *(*row_fn)(const PGresult *res, int row));
/* Unix seconds of a timestamptz column rendered with extract(epoch ...). */
json_t *api_epoch(const PGresult *res, int row, int col);
json_t *api_text_or_null(const PGresult *res, int row, int col);
json_t *api_jsonb(const PGresult *res, int row, int col); /* parsed, or null */
/* Reject strings with NUL characters anywhere inside (jsonb cannot hold them). */
enum ft_rc api_json_clean(struct api_req *r, json_t *v, const char *param);
enum ft_rc api_not_found(struct api_req *r, const char *what, const char *id);
/* Add a response header (copied into the arena; at most 8), sent with any
 * answer, errors included. */
void api_resp_header(struct api_req *r, const char *name, const char *value);
bool api_valid_text(const char *s, size_t max); /* UTF-8, no control chars, <= max bytes */
/* An LLM judge object ({url, model, prompt, max_tokens, api_key}; NULL or
 * null: none) checked into *out (without the key) and *api_key
 * (experiments.c; experiments and evaluations take the same). */
enum ft_rc api_judge_parse(struct api_req *r, json_t *j, json_t **out, const char **api_key);
/* A 400 (FT_EINVAL) naming param (NULL: none) with code and the message
 * (util.c); every handler's field refusals go through it. */
enum ft_rc api_bad(struct api_req *r, const char *param, const char *code, const char *fmt, ...)
	FT_PRINTF(4, 5);
/* plain sealed under secret_key for the row id (util.c); 503 without one */
enum ft_rc api_seal_secret(struct api_req *r, const char *id, const char *plain, const char *param,
			   const char **sealed);
void api_audit(struct api_req *r, const char *outcome);

/* The team's fine-tune file `id` (the body's "file") opened from the
 * store into *fp (util.c). A malformed id is a 400 and an unknown one
 * `missing` (FT_EINVAL: 400, FT_ENOTFOUND: 404), both naming "file";
 * FT_OK with *fp NULL: the store cannot be read now (the caller decides). */
enum ft_rc api_team_file_open(struct api_req *r, const char *id, enum ft_rc missing, FILE **fp);

/* A kind of queued work with the same states as evaluations and exports
 * (queued, dispatched, running, cancelling, then an end), for the one
 * cancel both take (util.c). Names are the code's, never a caller's. */
struct api_work_kind {
	const char *what; /* in messages: "evaluation", "export" */
	const char *id_prefix; /* FT_ID_EVAL, FT_ID_EXPORT */
	const char *table; /* evals, exports */
	const char *transitions; /* eval_transitions: (<fk>, from_status, ...) */
	const char *fk; /* eval_id */
	const char *not_cancellable; /* the 409's code */
};
/* POST .../{id}/cancel's first half: the (empty) body checked, a
 * transaction begun, the row locked; queued -> cancelled at once,
 * dispatched or running -> cancelling (the worker stops ft-train, the
 * scheduler pushes the cancel), cancelling stays; an ended one is a 409.
 * The caller answers with the row and commits. */
enum ft_rc api_work_cancel(struct api_req *r, const struct api_work_kind *k, const char *id);

/* ---- auth.c (keys themselves: ft/apikey.h) ----------------------------- */
enum ft_rc api_authenticate(struct api_req *r);
/* Make a new key: writes the full key (shown once) and stores its hash. */
enum ft_rc api_key_create(PGconn *db, const char *team_id, const char *name, enum api_role role,
			  long rate_limit, const char *expires_at, char key_id[FT_ID_MAX],
			  char key_out[80], struct ft_err *err);

/* ---- ratelimit.c ------------------------------------------------------ */
/* FT_OK or FT_ELIMIT (429) with r->retry_after; in memory, no round trip. */
enum ft_rc api_rate_check(struct api_req *r, long per_min);
/* A slot of the request's key and of its address for an upload, or
 * FT_ELIMIT (429, "too_many_uploads"); given back by api_upload_slots_give. */
enum ft_rc api_upload_slots_take(struct api_req *r);
void api_upload_slots_give(struct api_req *r);
/* Background (background.c): counts to and from Redis; last_used_at. */
void api_rate_sync(struct api_ctx *ctx);
void api_usage_flush_last_used(struct api_ctx *ctx);

/* ---- background.c ----------------------------------------------------- */
struct api_background *api_background_start(struct api_ctx *ctx, const char *conninfo);
void api_background_stop(struct api_background *bg);

/* ---- linger.c --------------------------------------------------------- */
/* Connections answered before their request body was read are not closed
 * outright (a close with unread input sends a reset, which can destroy the
 * answer before the client reads it): the socket is handed over here, its
 * write side shut, and what the client still sends is read and dropped
 * until it closes or linger_ms pass. */
struct api_linger *api_linger_new(int max_fds, unsigned linger_ms);
void api_linger_free(struct api_linger *l);
/* Takes fd (a dup of the connection's socket); closes it at once when full. */
void api_linger_add(struct api_linger *l, int fd);

/* ---- files.c (uploads) ---------------------------------------------- */
enum ft_rc api_upload_begin(struct api_req *r);
enum ft_rc api_upload_data(struct api_req *r, const char *data, size_t n);
/* The body is complete: flush the multipart parser, so every part (and its
 * share of the Idempotency-Key hash) is seen before the handler runs. */
void api_upload_end(struct api_req *r);

/* ---- console.c (the web console's static files) ------------------------ */
/* The folder to serve: webui_dir when set, else the install's
 * <exe>/../share/ftplat/webui, else the source tree's webui/. Writes it to
 * out and returns true when it holds index.html. */
bool api_console_dir(const char *configured, char *out, size_t size);
/* The content type of a console path relative to webui_dir ("js/app.js"),
 * or NULL when the path is refused: empty or too long, a segment that is
 * empty, starts with '.', or has a character outside [A-Za-z0-9._-], or an
 * extension without a known type. */
const char *api_console_path_type(const char *path);
/* The Content-Security-Policy every console file is served with. */
extern const char api_console_csp[];

/* ---- stream.c (live job events, text/event-stream) ------------------ */
struct api_streams *api_streams_start(struct ft_pg_pool *pg, long poll_ms, long heartbeat_ms);
/* Ends every stream (resuming the suspended ones): call before
 * MHD_stop_daemon; api_streams_free after it. */
void api_streams_stop(struct api_streams *h);
void api_streams_free(struct api_streams *h);
/* Makes r's response a stream of job_id's events with seq > after_seq. */
enum ft_rc api_stream_job_events(struct api_req *r, const char *job_id, long long after_seq);
/* A chat streamed from an inference endpoint (deployments.c): t is copied,
 * key (opened, or NULL) is taken and freed with the chat. */
struct ft_endpoint_target;
enum ft_rc api_stream_chat(struct api_req *r, const struct ft_endpoint_target *t, char *key,
			   const char *body);
struct MHD_Response *api_stream_response(struct api_req *r);
/* An event row (id, created_at epoch, level, message, data::text, type) as JSON. */
json_t *api_event_json(const PGresult *res, int row, int col0);

/* ---- validator.c ------------------------------------------------------ */
void api_validators_start(struct api_ctx *ctx, int n);
void api_validators_stop(struct api_ctx *ctx);
void api_validators_kick(struct api_ctx *ctx);

/* ---- models.c --------------------------------------------------------- */
/* Read a Hugging Face model folder: architecture, parameter count, template. */
enum ft_rc api_model_inspect(const char *dir, char arch[128], long long *params,
			     char **chat_template, json_t **config, struct ft_err *err);
enum ft_rc api_model_register(PGconn *db, const char *team_id, const char *name, const char *dir,
			      const char *description, char id_out[FT_ID_MAX], struct ft_err *err);

/* ---- resolve.c: THE resolver of model references (ft/modelref.h) ------- */
enum api_target_kind { TARGET_BASE = 0, TARGET_VERSION, TARGET_CHECKPOINT };
struct api_model_target {
	enum api_target_kind kind;
	/* every kind: the base model */
	char base_id[FT_ID_MAX], base_name[260], base_sha256[65];
	char base_config[16384]; /* config.json as registered (the memory estimate) */
	/* TARGET_VERSION */
	char model_id[FT_ID_MAX], model[FT_NAME_MAX + 1], version_id[FT_ID_MAX];
	int version;
	char version_kind[16]; /* "adapter" | "merged" */
	/* TARGET_VERSION, TARGET_CHECKPOINT: the folder, and the job it came from */
	char artifact_id[FT_ID_MAX], artifact_sha256[65], job_id[FT_ID_MAX];
	/* TARGET_CHECKPOINT */
	char checkpoint_id[FT_ID_MAX];
	long step;
};
/* What text names for the caller's team; FT_ENOTFOUND (code
 * "model_not_found", err->param = param) when nothing, another team's
 * objects included. */
enum ft_rc api_model_resolve(struct api_req *r, const char *text, const char *param,
			     struct api_model_target *t);

/* ---- registry.c, exports.c, artifacts.c ---------------------------------- */
/* A Range header (one "bytes=" range) over a file of size bytes: OK with
 * [*first, *last] inside it, BAD when unsatisfiable (416), NONE when absent,
 * several, or a syntax we do not read (the whole file is sent). */
enum api_range { API_RANGE_NONE = 0, API_RANGE_OK, API_RANGE_BAD };
enum api_range api_range_parse(const char *h, uint64_t size, uint64_t *first, uint64_t *last);
/* The team's stored bytes and quota (0: none); FT_ELIMIT with code
 * "storage_quota_exceeded" (413) when adding more bytes would pass it. */
enum ft_rc api_quota_check(struct api_req *r, uint64_t adding, const char *param);
/* Delete a model version (refused while an alias, a deployment, an
 * experiment, a child version, a running export or job needs it) with what only
 * it used; in the caller's transaction. */
enum ft_rc api_version_delete(struct api_req *r, const char *version_id);
/* A version as JSON (the registry's shape, lineage included). */
json_t *api_version_json_by_id(struct api_req *r, const char *version_id);

/* ---- endpoints.c ---------------------------------------------------------- */
/* The caller's endpoint named ref (an ep- id or its name): its id and kind
 * (kind may be NULL); a 404 otherwise, another team's included. */
enum ft_rc api_endpoint_find(struct api_req *r, const char *ref, char id[FT_ID_MAX], char kind[16]);

/* ---- handlers --------------------------------------------------------- */
enum ft_rc h_openapi(struct api_req *r);
enum ft_rc h_health(struct api_req *r);
enum ft_rc h_health_live(struct api_req *r);
enum ft_rc h_console_index(struct api_req *r);
enum ft_rc h_console_file(struct api_req *r);
enum ft_rc h_me(struct api_req *r);
enum ft_rc h_audit_list(struct api_req *r);
enum ft_rc h_jobs_estimate(struct api_req *r);
enum ft_rc h_files_create(struct api_req *r);
enum ft_rc h_files_list(struct api_req *r);
enum ft_rc h_files_get(struct api_req *r);
enum ft_rc h_files_delete(struct api_req *r);
enum ft_rc h_files_content(struct api_req *r);
enum ft_rc h_jobs_create(struct api_req *r);
/* GPU memory a job needs (bytes), for admission; the model is in jobs.c. */
enum ft_rc h_jobs_list(struct api_req *r);
enum ft_rc h_jobs_get(struct api_req *r);
enum ft_rc h_jobs_cancel(struct api_req *r);
enum ft_rc h_jobs_pause(struct api_req *r);
enum ft_rc h_jobs_resume(struct api_req *r);
enum ft_rc h_jobs_events(struct api_req *r);
enum ft_rc h_jobs_checkpoints(struct api_req *r);
enum ft_rc h_datasets_create(struct api_req *r);
enum ft_rc h_datasets_list(struct api_req *r);
enum ft_rc h_datasets_get(struct api_req *r);
enum ft_rc h_models_create(struct api_req *r);
enum ft_rc h_models_list(struct api_req *r);
enum ft_rc h_jobs_hparams(struct api_req *r);
enum ft_rc h_models_get(struct api_req *r);
enum ft_rc h_teams_list(struct api_req *r);
enum ft_rc h_teams_get(struct api_req *r);
enum ft_rc h_keys_create(struct api_req *r);
enum ft_rc h_keys_list(struct api_req *r);
enum ft_rc h_keys_get(struct api_req *r);
enum ft_rc h_keys_update(struct api_req *r);
enum ft_rc h_keys_delete(struct api_req *r);
enum ft_rc h_webhooks_create(struct api_req *r);
enum ft_rc h_webhooks_list(struct api_req *r);
enum ft_rc h_webhooks_get(struct api_req *r);
enum ft_rc h_webhooks_delete(struct api_req *r);
enum ft_rc h_webhooks_rotate(struct api_req *r);
enum ft_rc h_webhooks_deliveries(struct api_req *r);
enum ft_rc h_webhooks_redeliver(struct api_req *r);
enum ft_rc h_models_delete(struct api_req *r);
enum ft_rc h_reg_models_list(struct api_req *r);
enum ft_rc h_reg_models_create(struct api_req *r);
enum ft_rc h_reg_models_get(struct api_req *r);
enum ft_rc h_reg_models_update(struct api_req *r);
enum ft_rc h_reg_models_delete(struct api_req *r);
enum ft_rc h_reg_versions_list(struct api_req *r);
enum ft_rc h_reg_versions_create(struct api_req *r);
enum ft_rc h_reg_versions_get(struct api_req *r);
enum ft_rc h_reg_versions_update(struct api_req *r);
enum ft_rc h_reg_versions_delete(struct api_req *r);
enum ft_rc h_reg_versions_artifacts(struct api_req *r);
enum ft_rc h_reg_aliases_list(struct api_req *r);
enum ft_rc h_reg_aliases_set(struct api_req *r);
enum ft_rc h_reg_aliases_delete(struct api_req *r);
enum ft_rc h_reg_alias_history(struct api_req *r);
enum ft_rc h_reg_usage(struct api_req *r);
enum ft_rc h_exports_create(struct api_req *r);
enum ft_rc h_exports_list(struct api_req *r);
enum ft_rc h_exports_get(struct api_req *r);
enum ft_rc h_exports_cancel(struct api_req *r);
enum ft_rc h_exports_events(struct api_req *r);
enum ft_rc h_exports_formats(struct api_req *r);
enum ft_rc h_artifacts_get(struct api_req *r);
enum ft_rc h_artifacts_file(struct api_req *r);
enum ft_rc h_endpoints_create(struct api_req *r);
enum ft_rc h_endpoints_list(struct api_req *r);
enum ft_rc h_endpoints_get(struct api_req *r);
enum ft_rc h_endpoints_update(struct api_req *r);
enum ft_rc h_endpoints_delete(struct api_req *r);
enum ft_rc h_deployments_create(struct api_req *r);
enum ft_rc h_deployments_list(struct api_req *r);
enum ft_rc h_deployments_get(struct api_req *r);
enum ft_rc h_deployments_delete(struct api_req *r);
enum ft_rc h_deployments_chat(struct api_req *r);
/* evals.c */
enum ft_rc h_evals_create(struct api_req *r);
enum ft_rc h_evals_list(struct api_req *r);
enum ft_rc h_evals_get(struct api_req *r);
enum ft_rc h_evals_cancel(struct api_req *r);
enum ft_rc h_evals_events(struct api_req *r);
/* experiments.c */
enum ft_rc h_experiments_create(struct api_req *r);
enum ft_rc h_experiments_list(struct api_req *r);
enum ft_rc h_experiments_get(struct api_req *r);
enum ft_rc h_experiments_start(struct api_req *r);
enum ft_rc h_experiments_pause(struct api_req *r);
enum ft_rc h_experiments_stop(struct api_req *r);
enum ft_rc h_experiments_assignment(struct api_req *r);
enum ft_rc h_experiments_results(struct api_req *r);
enum ft_rc h_judgments_create(struct api_req *r);
enum ft_rc h_judgments_llm(struct api_req *r);
enum ft_rc h_judgments_list(struct api_req *r);
enum ft_rc h_feedback_create(struct api_req *r);
enum ft_rc h_feedback_get(struct api_req *r);
/* replays.c */
enum ft_rc h_replays_create(struct api_req *r);
enum ft_rc h_replays_list(struct api_req *r);
enum ft_rc h_replays_get(struct api_req *r);
/* drift.c */
enum ft_rc h_drift_list(struct api_req *r);
enum ft_rc h_drift_set(struct api_req *r);
enum ft_rc h_drift_get(struct api_req *r);
enum ft_rc h_drift_delete(struct api_req *r);
enum ft_rc h_drift_windows(struct api_req *r);

/* ---- http.c ----------------------------------------------------------- */
/* A Content-Type header that names JSON: application/json or
 * application/<something>+json, any case, with or without parameters. */
#define api_media_is_json ft_http_media_is_json

struct api_conn_limits {
	unsigned max_connections, max_connections_per_ip; /* per ip 0: none */
};
struct MHD_Daemon *api_http_start(struct api_ctx *ctx, const char *addr, int port, int threads,
				  const struct api_conn_limits *lim, struct ft_err *err);
int api_http_port(struct MHD_Daemon *d);

/* jobs.c: the trainer's parse of a platform job (the object the worker will
 * write, with placeholder paths): what it will do with the job's data. */
enum ft_rc api_job_trainer_view(const char *method, const char *adapter, json_t *hp,
				bool has_validation, struct ft_train_job *tj, struct ft_err *err);
/* jobs.c: validation outcome, in the caller's transaction. */
enum ft_rc api_job_event(PGconn *db, const char *job_id, const char *level, const char *type,
			 const char *message, const char *data_json, struct ft_err *err);

#endif
