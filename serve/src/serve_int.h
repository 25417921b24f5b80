/*
 * serve_int.h - the inside of the ft-serve program: its context, the
 * OpenAI routes (openai.c), incremental text with stop strings (text.c),
 * metrics (metrics.c), the HTTP layer (http.c), who may call (auth.c) and
 * the request log (reqlog.c).
 */
#ifndef FT_SERVE_INT_H
#define FT_SERVE_INT_H

#include <jansson.h>
#include <microhttpd.h>
#include <pthread.h>

#include "ft/apikey.h"
#include "ft/experiment.h"
#include "ft/http.h"
#include "ft/id.h"
#include "ft/serve.h"

/* Latency histograms (Prometheus buckets, seconds). */
#define SRV_NBUCKETS 12
struct srv_hist {
	uint64_t buckets[SRV_NBUCKETS]; /* cumulative at render time */
	uint64_t count;
	double sum;
};
extern const double srv_hist_bounds[SRV_NBUCKETS];

/* What the request log says about a model (the base's from the
 * configuration, an adapter's from POST /v1/load_lora_adapter), and who may
 * use it: an adapter with a team is for that team's keys only. */
struct srv_meta {
	char name[128];
	char team[FT_ID_MAX]; /* "" = every caller */
	char version[FT_ID_MAX]; /* "" = unknown */
	char deployment[FT_ID_MAX];
	bool log_texts;
};

struct srv_reqlog;
struct srv_auth;
struct ft_store;

struct srv_ctx {
	struct ft_srv *srv;
	char model_name[128]; /* the base model's id in /v1/models */
	char token_hash[65]; /* SHA-256 of the bearer token; "" = no token */
	struct srv_auth *auth; /* platform API keys (auth.c); NULL: none */
	struct srv_reqlog *log; /* the request log (reqlog.c); NULL: off */
	struct ft_store *store; /* the platform's artifact store (serve_store); NULL: off */
	char cache_dir[2048]; /* where store adapters are unpacked while they load */
	size_t max_body;
	int embed_percent; /* serve_embed_percent */
	uint64_t started_ms;
	pthread_mutex_t mu; /* the metrics below */
	struct srv_hist ttft, itl, e2e;
	uint64_t requests_ok, requests_failed, disconnects;
	/* models' metadata (openai.c): the base's, then the adapters' */
	pthread_mutex_t meta_mu;
	pthread_mutex_t load_mu; /* one adapter load or unload at a time */
	struct srv_meta base;
	struct srv_meta *metas;
	size_t n_metas;
	/* A/B experiments pushed by the deployment controller (experiments.c) */
	pthread_mutex_t exp_mu;
	struct ft_exp_spec *exps;
	size_t n_exps;
};

/* The request log's record of one request while it is answered
 * (reqlog.c). Reference-counted: the HTTP request holds one reference, a
 * generation another; the record is sent when the last one goes. Fields
 * after mu are written under it. */
struct srv_rec {
	pthread_mutex_t mu;
	int refs;
	struct srv_ctx *ctx;
	char id[64]; /* the response's id and x-request-id */
	bool chat;
	int64_t created_ms;
	uint64_t t0_ns, end_ns;
	char team[FT_ID_MAX];
	char arm[65];
	bool stream;
	char *model; /* as requested */
	struct srv_meta meta; /* the model it resolved to ("" name: none) */
	bool adapter; /* meta names an adapter (else the base) */
	char *prompt, *completion; /* texts, when meta.log_texts */
	bool admitted;
	int prompt_tokens, completion_tokens;
	int prompt_byte_tokens, completion_byte_tokens;
	char *embedding; /* base64 float32, when sampled (srv_rec_embed) */
	double ttft_ms; /* < 0: no token */
	const char *finish; /* NULL: no generation */
	int status; /* 0: none sent */
	bool client_gone;
	char error_code[48];
};

/* A request in flight (the arena owns it). */
struct srv_req {
	struct srv_ctx *ctx;
	struct MHD_Connection *conn;
	struct ft_arena *arena;
	const char *method, *url;
	struct ft_buf body;
	bool body_too_large;
	/* the answer */
	int status;
	json_t *resp;
	struct ft_err err;
	struct MHD_Response *stream; /* SSE: the response is made by a callback */
	uint64_t t0_ns; /* arrival */
	int64_t created_ms;
	/* the caller (auth.c) */
	bool privileged; /* the endpoint's token, or no authentication configured */
	char team[FT_ID_MAX]; /* a platform key's team ("" otherwise) */
	long retry_after; /* a 429's Retry-After, seconds (0: none) */
	struct srv_rec *rec; /* generation routes: the request log's record */
	/* routed by an experiment (experiments.c): the answer's headers */
	char exp_id[FT_ID_MAX];
	char exp_arm[FT_EXP_ARM_NAME_MAX + 1];
};

/* Appends whose failure (the buffer's cap) can only cut a long answer
 * short: the text stops growing, nothing else goes wrong. */
static inline void ft_buf_add_or_drop(struct ft_buf *b, const void *p, size_t n)
{
	if (ft_buf_add(b, p, n))
		return;
}
static inline void ft_buf_addstr_or_drop(struct ft_buf *b, const char *s)
{
	if (ft_buf_addstr(b, s))
		return;
}
#define ft_buf_addf_or_drop(b, ...)                \
	do {                                       \
		if (ft_buf_addf((b), __VA_ARGS__)) \
			break;                     \
	} while (0)

/* Incremental text of a generation: decoded, held back while it could be
 * the start of a stop string or an incomplete UTF-8 character. */
struct srv_text {
	const struct ft_tokenizer *tok;
	const char *const *stops;
	size_t n_stops;
	struct ft_ids ids;
	struct ft_buf full; /* everything decoded so far */
	size_t sent; /* bytes of full already handed out */
	bool stopped; /* a stop string was found: full is cut before it */
};
void srv_text_init(struct srv_text *t, const struct ft_tokenizer *tok, const char *const *stops,
		   size_t n_stops);
void srv_text_release(struct srv_text *t);
/* Add a token; returns the new text that may be shown (NUL-terminated in
 * out, which is reset), and sets t->stopped when a stop string ended it. */
void srv_text_push(struct srv_text *t, int32_t id, struct ft_buf *out);
/* At the end: whatever was held back (not a stop string after all). */
void srv_text_flush(struct srv_text *t, struct ft_buf *out);

/* openai.c */
enum ft_rc srv_chat(struct srv_req *r);
enum ft_rc srv_completions(struct srv_req *r);
enum ft_rc srv_models(struct srv_req *r);
enum ft_rc srv_load_adapter(struct srv_req *r);
enum ft_rc srv_unload_adapter(struct srv_req *r);
enum ft_rc srv_health(struct srv_req *r);
enum ft_rc srv_metrics_route(struct srv_req *r);

/* metrics.c */
void srv_hist_add(struct srv_ctx *c, struct srv_hist *h, double seconds);
void srv_metrics_text(struct srv_ctx *c, struct ft_buf *out);

/* auth.c: the endpoint's token and the platform's API keys */
/* redis_url (NULL or ""): where the keys' rate counts are shared with
 * ft-api and the other ft-serves (ft/usage.h); else counted here alone. */
struct srv_auth *srv_auth_new(const char *database_url, const char *redis_url, uint64_t ttl_ms,
			      struct ft_err *err);
void srv_auth_free(struct srv_auth *a);
/* Who is calling: fills r->operator / r->team, or FT_EAUTH in r->err. */
enum ft_rc srv_auth_check(struct srv_req *r);

/* reqlog.c: the queue to Redis and the records */
struct srv_reqlog *srv_reqlog_new(const char *redis_url, size_t max_records, size_t max_bytes);
/* Stops the sender after trying to send what is queued for up to flush_ms. */
void srv_reqlog_free(struct srv_reqlog *q, int flush_ms);
struct srv_reqlog_stats {
	size_t depth, bytes;
	uint64_t sent, dropped;
	bool redis_up;
};
void srv_reqlog_stats(struct srv_reqlog *q, struct srv_reqlog_stats *out);
struct srv_rec *srv_rec_new(struct srv_req *r, bool chat);
void srv_rec_ref(struct srv_rec *rec);
void srv_rec_unref(struct srv_rec *rec); /* the last one sends it */
/* Is this request's prompt embedding logged? serve_embed_percent of the
 * ids, by a hash of the id (reqlog.c). */
bool srv_rec_embed(const struct srv_rec *rec);

/* openai.c: models' metadata */
/* Load an adapter (m->name from dir) with its metadata. */
enum ft_rc srv_adapter_add(struct srv_ctx *c, const struct srv_meta *m, const char *dir,
			   struct ft_err *err);
/* The metadata of a model a caller may use (the base or a resident
 * adapter); false when there is none or it belongs to another team. */
bool srv_meta_find(struct srv_ctx *c, const char *name, const char *team, struct srv_meta *out,
		   bool *adapter);

/* experiments.c: routing by A/B experiment (ft/experiment.h) */
#define SRV_MAX_EXPERIMENTS 1024
enum ft_rc srv_experiments_list(struct srv_req *r);
enum ft_rc srv_experiment_load(struct srv_req *r);
enum ft_rc srv_experiment_unload(struct srv_req *r);
/* model "experiment:<id or name>": the arm's model into *model (the
 * arena's), the headers and the request log's arm set; other models are
 * left as they are (*model unchanged). */
enum ft_rc srv_experiment_route(struct srv_req *r, const char *user, const char **model);

/* http.c */
struct MHD_Daemon *srv_http_start(struct srv_ctx *ctx, const char *addr, int port,
				  struct ft_err *err);
/* The request's JSON body as an object (400 / 415 named otherwise). */
enum ft_rc srv_body(struct srv_req *r, json_t **out);

#endif
