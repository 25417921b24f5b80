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
#include "ft/common.h"
#include "ft/registry.h"

/* ---- arena ---------------------------------------------------------- */
struct api_arena;
struct api_arena *api_arena_new(void);
void api_arena_free(struct api_arena *a); /* runs cleanups, newest first */
void *api_alloc(struct api_arena *a, size_t n); /* zeroed; aborts on OOM (small sizes only) */
char *api_strdup(struct api_arena *a, const char *s);
char *api_printf(struct api_arena *a, const char *fmt, ...) FT_PRINTF(2, 3);
void api_defer(struct api_arena *a, void (*fn)(void *), void *p);

/* ---- server-wide state ---------------------------------------------- */
enum api_role { ROLE_NONE = 0, ROLE_VIEWER = 1, ROLE_MEMBER = 2, ROLE_ADMIN = 3 };
const char *api_role_name(enum api_role r);
bool api_role_parse(const char *s, enum api_role *out);

struct api_redis_pool;

struct api_ctx {
	struct ft_pg_pool *pg;
	struct ft_store *store;
	struct api_redis_pool *redis; /* NULL: no rate limiting */
	uint64_t max_upload;
	int job_max_attempts; /* attempts a job gets before it fails */
	bool webhook_allow_http; /* plain-http webhook URLs (development) */
	const char *webhook_allow_cidrs; /* special addresses webhooks may reach */
	const char *openapi_json; /* served at /v1/openapi.json */
	size_t openapi_len;
	/* validator threads */
	pthread_mutex_t vmu;
	pthread_cond_t vcv;
	bool vstop;
	int n_validators;
	pthread_t validators[8];
};

/* ---- requests --------------------------------------------------------- */
#define API_MAX_PARAMS 2
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

	/* caller, after auth */
	char team_id[FT_ID_MAX];
	char key_id[FT_ID_MAX];
	enum api_role role;

	/* body */
	struct ft_buf raw;
	struct ft_sha256 body_sha;
	bool body_sha_on;
	bool failed; /* an error is recorded; the rest of the body is discarded */
	bool responded; /* a response was queued */
	uint64_t discarded;
	struct upload *up; /* multipart uploads */
	json_t *body; /* parsed JSON body (owned via arena) */

	PGconn *db; /* taken lazily, put back at completion */

	/* response */
	int status;
	json_t *resp;
	int resp_fd; /* >= 0: stream this file instead of JSON */
	uint64_t resp_fd_size;
	const char *resp_type;
	long retry_after;
	struct ft_err err;

	uint64_t t0_ns; /* when the request arrived (metrics) */

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
	const char *pattern; /* "/v1/files/{id}/content" */
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
enum ft_rc api_db_cmd(struct api_req *r, const char *sql, int n, const char *const *params);
enum ft_rc api_db_begin(struct api_req *r);
enum ft_rc api_db_commit(struct api_req *r);
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
/* Unix seconds of a timestamptz column rendered with extract(epoch ...). */
json_t *api_epoch(const PGresult *res, int row, int col);
json_t *api_text_or_null(const PGresult *res, int row, int col);
json_t *api_jsonb(const PGresult *res, int row, int col); /* parsed, or null */
/* Reject strings with NUL characters anywhere inside (jsonb cannot hold them). */
enum ft_rc api_json_clean(struct api_req *r, json_t *v, const char *param);
enum ft_rc api_not_found(struct api_req *r, const char *what, const char *id);
bool api_valid_text(const char *s, size_t max); /* UTF-8, no control chars, <= max bytes */
void api_audit(struct api_req *r, const char *outcome);

/* ---- auth.c ----------------------------------------------------------- */
enum ft_rc api_authenticate(struct api_req *r);
/* Make a new key: writes the full key (shown once) and stores its hash. */
enum ft_rc api_key_create(PGconn *db, const char *team_id, const char *name, enum api_role role,
			  long rate_limit, const char *expires_at, char key_id[FT_ID_MAX],
			  char key_out[80], struct ft_err *err);

/* ---- ratelimit.c ------------------------------------------------------ */
struct api_redis_pool *api_redis_pool_new(const char *url, int size);
void api_redis_pool_free(struct api_redis_pool *p);
/* FT_OK or FT_ELIMIT with r->retry_after; fails open when Redis is down. */
enum ft_rc api_rate_check(struct api_req *r, long per_min);

/* ---- files.c (uploads) ---------------------------------------------- */
enum ft_rc api_upload_begin(struct api_req *r);
enum ft_rc api_upload_data(struct api_req *r, const char *data, size_t n);
/* The body is complete: flush the multipart parser, so every part (and its
 * share of the Idempotency-Key hash) is seen before the handler runs. */
void api_upload_end(struct api_req *r);

/* ---- validator.c ------------------------------------------------------ */
void api_validators_start(struct api_ctx *ctx, int n);
void api_validators_stop(struct api_ctx *ctx);
void api_validators_kick(struct api_ctx *ctx);

/* ---- models.c --------------------------------------------------------- */
/* Read a Hugging Face model folder: architecture, parameter count, template. */
enum ft_rc api_model_inspect(const char *dir, char arch[128], long long *params,
			     char **chat_template, json_t **config, struct ft_err *err);
enum ft_rc api_model_register(PGconn *db, const char *team_id, const char *name, const char *dir,
			      char id_out[FT_ID_MAX], struct ft_err *err);

/* ---- handlers --------------------------------------------------------- */
enum ft_rc h_openapi(struct api_req *r);
enum ft_rc h_files_create(struct api_req *r);
enum ft_rc h_files_list(struct api_req *r);
enum ft_rc h_files_get(struct api_req *r);
enum ft_rc h_files_delete(struct api_req *r);
enum ft_rc h_files_content(struct api_req *r);
enum ft_rc h_jobs_create(struct api_req *r);
/* GPU memory a job needs (bytes), for admission; the model is in jobs.c. */
long long api_estimate_gpu_mem(long long params, long hidden, long layers, const char *adapter,
			       long batch);
enum ft_rc h_jobs_list(struct api_req *r);
enum ft_rc h_jobs_get(struct api_req *r);
enum ft_rc h_jobs_cancel(struct api_req *r);
enum ft_rc h_jobs_events(struct api_req *r);
enum ft_rc h_jobs_checkpoints(struct api_req *r);
enum ft_rc h_datasets_create(struct api_req *r);
enum ft_rc h_datasets_list(struct api_req *r);
enum ft_rc h_datasets_get(struct api_req *r);
enum ft_rc h_models_create(struct api_req *r);
enum ft_rc h_models_list(struct api_req *r);
enum ft_rc h_models_get(struct api_req *r);
enum ft_rc h_teams_list(struct api_req *r);
enum ft_rc h_teams_get(struct api_req *r);
enum ft_rc h_keys_create(struct api_req *r);
enum ft_rc h_keys_list(struct api_req *r);
enum ft_rc h_keys_get(struct api_req *r);
enum ft_rc h_keys_delete(struct api_req *r);
enum ft_rc h_webhooks_create(struct api_req *r);
enum ft_rc h_webhooks_list(struct api_req *r);
enum ft_rc h_webhooks_get(struct api_req *r);
enum ft_rc h_webhooks_delete(struct api_req *r);
enum ft_rc h_webhooks_rotate(struct api_req *r);
enum ft_rc h_webhooks_deliveries(struct api_req *r);
enum ft_rc h_webhooks_redeliver(struct api_req *r);

/* ---- http.c ----------------------------------------------------------- */
struct MHD_Daemon *api_http_start(struct api_ctx *ctx, const char *addr, int port, int threads,
				  struct ft_err *err);
int api_http_port(struct MHD_Daemon *d);

/* jobs.c: validation outcome, in the caller's transaction. */
enum ft_rc api_job_event(PGconn *db, const char *job_id, const char *level, const char *type,
			 const char *message, const char *data_json, struct ft_err *err);

#endif
