/*
 * openai.c - ft-serve's routes, in OpenAI's shapes (their openai-python
 * types are what tests/system/test_serve.py validates against):
 *
 *   POST /v1/chat/completions   messages rendered by the model's chat
 *                               template (the engine's, exactly as in
 *                               training) with the generation prompt
 *   POST /v1/completions        a prompt string, encoded as training does
 *   GET  /v1/models             the base and every resident adapter (parent:
 *                               the base)
 *   POST /v1/load_lora_adapter, /v1/unload_lora_adapter (vLLM's names;
 *                               a folder here, or one in the platform's store)
 *   GET  /health, /metrics
 *
 * Parameters: model, max_tokens / max_completion_tokens, temperature (1 by
 * default, as OpenAI), top_p, top_k, stop (a string or up to 4), seed,
 * frequency_penalty, presence_penalty, logprobs, top_logprobs, n (1 only),
 * user, stream, stream_options.include_usage. Unknown ones are refused by
 * name, as everything invalid is (400, the field in "param").
 *
 * A generation is shared by the HTTP thread that answers and the batching
 * loop that produces tokens (struct gen, reference-counted): the loop's
 * callbacks append text (or whole SSE events) under gen->mu, the HTTP side
 * waits for them. A client that goes away cancels its sequence at once.
 * The generation holds a reference on the request log's record
 * (reqlog.c) and hands it what only it knows (usage, time to first token,
 * the finish reason, the completion's text) when it is freed.
 *
 * Models: the base and each resident adapter have metadata (struct
 * srv_meta: team, registry version, deployment, whether texts are logged),
 * the base's from the configuration, an adapter's from the extra fields of
 * POST /v1/load_lora_adapter. A caller with a platform API key sees and
 * uses the base, the adapters without a team and its own team's; any other
 * name is 404 model_not_found, as a name that does not exist.
 */
#include <poll.h>
#include <sys/socket.h>

#include "ft/clock.h"
#include "ft/crypto.h"
#include "ft/deploy.h"
#include "ft/fs.h"
#include "ft/id.h"
#include "ft/json.h"
#include "ft/log.h"
#include "ft/registry.h"
#include "ft/reqlog.h"
#include "serve_int.h"

struct gen {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int refs;
	struct srv_ctx *ctx;
	uint64_t srv_id;
	bool chat, stream, include_usage, logprobs;
	int top_logprobs;
	char id[64], model[160];
	long created;
	struct srv_text text;
	struct ft_buf delta; /* scratch */
	struct ft_buf content; /* non-stream: the whole text */
	struct ft_buf sse; /* stream: events not read yet */
	json_t *lp; /* logprobs entries (chat: content[]; completions: the lists) */
	bool role_sent, done, hung_up;
	struct ft_srv_done d;
	uint64_t t0, t_last;
	const char *stops[4]; /* = own[] */
	char *own[4];
	int n_stops;
	struct srv_rec *rec; /* a reference on the request log's record */
};

static void gen_unref(struct gen *g)
{
	pthread_mutex_lock(&g->mu);
	int left = --g->refs;
	pthread_mutex_unlock(&g->mu);
	if (left)
		return;
	if (g->rec) {
		pthread_mutex_lock(&g->rec->mu);
		if (g->rec->meta.log_texts && !g->rec->completion)
			g->rec->completion = ft_xstrdup(ft_buf_str(&g->text.full));
		pthread_mutex_unlock(&g->rec->mu);
		srv_rec_unref(g->rec);
	}
	srv_text_release(&g->text);
	ft_buf_release(&g->delta);
	ft_buf_release(&g->content);
	ft_buf_release(&g->sse);
	json_decref(g->lp);
	for (int i = 0; i < g->n_stops; i++)
		free(g->own[i]);
	pthread_mutex_destroy(&g->mu);
	pthread_cond_destroy(&g->cv);
	free(g);
}

/* ---- the SSE events (stream) ---- */

static void sse_json(struct gen *g, json_t *o)
{
	char *s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (s) {
		ft_buf_addf_or_drop(&g->sse, "data: %s\n\n", s);
		free(s);
	}
}

/* A chunk with one choice: delta (chat) or text (completions), the
 * finish reason (NULL: null) and logprobs (may be NULL). */
static void sse_chunk(struct gen *g, const char *text, const char *finish, json_t *lp)
{
	json_t *choice = json_pack("{s:i}", "index", 0);
	if (g->chat) {
		json_t *delta = json_object();
		if (!g->role_sent) {
			json_object_set_new(delta, "role", json_string("assistant"));
			g->role_sent = true;
		}
		if (text)
			json_object_set_new(delta, "content", json_string(text));
		json_object_set_new(choice, "delta", delta);
	} else {
		json_object_set_new(choice, "text", json_string(text ? text : ""));
	}
	json_object_set_new(choice, "logprobs", lp ? lp : json_null());
	json_object_set_new(choice, "finish_reason", finish ? json_string(finish) : json_null());
	json_t *o = json_pack("{s:s, s:s, s:I, s:s, s:[o]}", "id", g->id, "object",
			      g->chat ? "chat.completion.chunk" : "text_completion", "created",
			      (json_int_t)g->created, "model", g->model, "choices", choice);
	if (g->chat)
		json_object_set_new(o, "system_fingerprint", json_string("ftplat"));
	sse_json(g, o);
}

static json_t *usage_json(const struct ft_srv_done *d)
{
	/* prompt_tokens_details.cached_tokens: OpenAI's name for the prompt
	 * tokens read from a cache (here ft-serve's prefix cache, core.c) */
	return json_pack("{s:i, s:i, s:i, s:{s:i}}", "prompt_tokens", d->prompt_tokens,
			 "completion_tokens", d->completion_tokens, "total_tokens",
			 d->prompt_tokens + d->completion_tokens, "prompt_tokens_details",
			 "cached_tokens", d->cached_tokens);
}

/* ---- logprobs ---- */

static json_t *token_text(const struct ft_tokenizer *tok, int32_t id)
{
	struct ft_buf b;
	ft_buf_init(&b, 1 << 16);
	struct ft_err e;
	ft_err_clear(&e);
	(void)ft_tokenizer_decode(tok, &id, 1, 0, &b, &e);
	json_t *s = json_stringn(ft_buf_str(&b), b.len);
	if (!s) /* part of a UTF-8 character: shown as its bytes */
		s = json_string("\xef\xbf\xbd");
	ft_buf_release(&b);
	return s;
}

static json_t *bytes_of(json_t *s)
{
	json_t *a = json_array();
	const unsigned char *p = (const unsigned char *)json_string_value(s);
	for (size_t i = 0; i < json_string_length(s); i++)
		json_array_append_new(a, json_integer(p[i]));
	return a;
}

/* The logprobs of one token, as chat (an entry of content[]) or, for
 * completions, appended to the four parallel lists in g->lp. */
static json_t *logprob_entry(struct gen *g, const struct ft_sample_out *t)
{
	const struct ft_tokenizer *tok = ft_srv_tokenizer(g->ctx->srv);
	json_t *text = token_text(tok, t->id);
	if (g->chat) {
		json_t *tops = json_array();
		for (int i = 0; i < t->n_top; i++) {
			json_t *tt = token_text(tok, t->top_ids[i]);
			json_array_append_new(tops, json_pack("{s:O, s:f, s:o}", "token", tt,
							      "logprob", (double)t->top_logprobs[i],
							      "bytes", bytes_of(tt)));
			json_decref(tt);
		}
		json_t *e = json_pack("{s:O, s:f, s:o, s:o}", "token", text, "logprob",
				      (double)t->logprob, "bytes", bytes_of(text), "top_logprobs",
				      tops);
		json_decref(text);
		return e;
	}
	json_t *tops = json_object();
	for (int i = 0; i < t->n_top; i++) {
		json_t *tt = token_text(tok, t->top_ids[i]);
		json_object_set_new(tops, json_string_value(tt), json_real(t->top_logprobs[i]));
		json_decref(tt);
	}
	return json_pack("{s:o, s:f, s:o}", "token", text, "logprob", (double)t->logprob, "top",
			 tops);
}

/* ---- the loop's callbacks (loop thread) ---- */

static bool on_token(void *ctx, const struct ft_sample_out *t)
{
	struct gen *g = ctx;
	uint64_t now = ft_time_mono_ns();
	srv_hist_add(g->ctx, g->t_last ? &g->ctx->itl : &g->ctx->ttft,
		     (double)(now - (g->t_last ? g->t_last : g->t0)) * 1e-9);
	if (!g->t_last) {
		pthread_mutex_lock(&g->rec->mu);
		g->rec->ttft_ms = (double)(now - g->rec->t0_ns) * 1e-6;
		pthread_mutex_unlock(&g->rec->mu);
	}
	pthread_mutex_lock(&g->mu);
	g->t_last = now;
	srv_text_push(&g->text, t->id, &g->delta);
	json_t *lp = g->logprobs && !g->text.stopped ? logprob_entry(g, t) : NULL;
	if (g->stream) {
		if (g->delta.len || lp) {
			json_t *l = NULL;
			if (lp && g->chat) {
				l = json_pack("{s:[o]}", "content", lp);
			} else if (lp) {
				l = json_pack("{s:[O], s:[O], s:[O], s:[]}", "tokens",
					      json_object_get(lp, "token"), "token_logprobs",
					      json_object_get(lp, "logprob"), "top_logprobs",
					      json_object_get(lp, "top"), "text_offset");
				json_decref(lp);
			}
			sse_chunk(g, ft_buf_str(&g->delta), NULL, l);
			pthread_cond_signal(&g->cv);
		}
	} else {
		ft_buf_add_or_drop(&g->content, g->delta.ptr ? g->delta.ptr : "", g->delta.len);
		if (lp)
			json_array_append_new(g->lp, lp);
	}
	bool go_on = !g->text.stopped && !g->hung_up;
	pthread_mutex_unlock(&g->mu);
	return go_on;
}

static void on_done(void *ctx, const struct ft_srv_done *d)
{
	struct gen *g = ctx;
	struct ft_srv_done dd = *d;
	pthread_mutex_lock(&g->mu);
	/* a sequence whose client left, stopped by on_token before the cancel
	 * reached the loop, was cancelled all the same */
	if (dd.finish == FT_FINISH_STOP && g->hung_up && !g->text.stopped)
		dd.finish = FT_FINISH_CANCELLED;
	pthread_mutex_unlock(&g->mu);
	d = &dd;
	srv_hist_add(g->ctx, &g->ctx->e2e, d->total_ms * 1e-3);
	pthread_mutex_lock(&g->rec->mu); /* what the usage says, as the client sees it */
	g->rec->admitted = true;
	g->rec->prompt_tokens = d->prompt_tokens;
	g->rec->completion_tokens = d->completion_tokens;
	g->rec->prompt_byte_tokens = d->prompt_byte_tokens;
	g->rec->completion_byte_tokens = d->completion_byte_tokens;
	if (d->embedding && !g->rec->embedding &&
	    d->embedding_dim <= FT_RL_EMBEDDING_MAX) { /* float32 little-endian, base64 */
		size_t nb = sizeof(float) * (size_t)d->embedding_dim;
		unsigned char *raw = ft_xmalloc(nb);
		for (int k = 0; k < d->embedding_dim; k++) {
			uint32_t u;
			memcpy(&u, &d->embedding[k], 4);
			for (int b = 0; b < 4; b++)
				raw[4 * k + b] = (unsigned char)(u >> (8 * b));
		}
		g->rec->embedding = ft_xmalloc(4 * ((nb + 2) / 3) + 1);
		ft_base64_encode(raw, nb, g->rec->embedding);
		free(raw);
	}
	g->rec->finish = ft_srv_finish_name(d->finish);
	g->rec->end_ns = ft_time_mono_ns();
	pthread_mutex_unlock(&g->rec->mu);
	pthread_mutex_lock(&g->mu);
	g->d = *d;
	srv_text_flush(&g->text, &g->delta);
	if (g->stream && d->finish != FT_FINISH_ERROR && d->finish != FT_FINISH_CANCELLED) {
		if (g->delta.len)
			sse_chunk(g, ft_buf_str(&g->delta), NULL, NULL);
		sse_chunk(g, NULL, ft_srv_finish_name(d->finish), NULL);
		if (g->include_usage) {
			json_t *o =
				json_pack("{s:s, s:s, s:I, s:s, s:[], s:o}", "id", g->id, "object",
					  g->chat ? "chat.completion.chunk" : "text_completion",
					  "created", (json_int_t)g->created, "model", g->model,
					  "choices", "usage", usage_json(d));
			sse_json(g, o);
		}
		ft_buf_addstr_or_drop(&g->sse, "data: [DONE]\n\n");
	} else if (g->stream) {
		struct ft_err e;
		ft_err_clear(&e);
		ft_failf(&e, FT_EINTERNAL, "generation_failed", "%s",
			 d->error[0] ? d->error : "the generation was cancelled");
		sse_json(g, ft_http_error_json(&e, 500));
		ft_buf_addstr_or_drop(&g->sse, "data: [DONE]\n\n");
	} else {
		ft_buf_add_or_drop(&g->content, g->delta.ptr ? g->delta.ptr : "", g->delta.len);
	}
	g->done = true;
	pthread_cond_broadcast(&g->cv);
	pthread_mutex_unlock(&g->mu);
	pthread_mutex_lock(&g->ctx->mu);
	if (d->finish == FT_FINISH_ERROR)
		g->ctx->requests_failed++;
	else
		g->ctx->requests_ok++;
	pthread_mutex_unlock(&g->ctx->mu);
	gen_unref(g);
}

/* ---- request parameters ---- */

static enum ft_rc bad(struct srv_req *r, const char *param, const char *fmt, ...) FT_PRINTF(3, 4);
static enum ft_rc bad(struct srv_req *r, const char *param, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	ft_vfailf(&r->err, FT_EINVAL, "invalid_value", fmt, ap);
	va_end(ap);
	ft_err_param(&r->err, param);
	return FT_EINVAL;
}

/* ---- models' metadata ---- */

/* The caller's team for scoping: NULL for the endpoint's operator (the
 * token, or no authentication configured), who may use every model. */
static const char *scope(const struct srv_req *r)
{
	return r->privileged ? NULL : r->team;
}

static bool visible(const struct srv_meta *m, const char *team)
{
	return !team || !m->team[0] || strcmp(m->team, team) == 0;
}

static struct srv_meta *meta_of(struct srv_ctx *c, const char *name)
{
	for (size_t i = 0; i < c->n_metas; i++)
		if (strcmp(c->metas[i].name, name) == 0)
			return &c->metas[i];
	return NULL;
}

bool srv_meta_find(struct srv_ctx *c, const char *name, const char *team, struct srv_meta *out,
		   bool *adapter)
{
	*adapter = false;
	if (strcmp(name, c->model_name) == 0) {
		*out = c->base;
		return true;
	}
	pthread_mutex_lock(&c->meta_mu);
	struct srv_meta *m = meta_of(c, name);
	bool ok = m && visible(m, team);
	if (ok)
		*out = *m;
	pthread_mutex_unlock(&c->meta_mu);
	*adapter = ok;
	return ok && ft_srv_has_adapter(c->srv, name);
}

/* Forget the metadata of name and of every adapter no longer resident (an
 * LRU unload), so the table holds at most the resident ones. */
static void meta_forget(struct srv_ctx *c, const char *name)
{
	pthread_mutex_lock(&c->meta_mu);
	for (size_t i = 0; i < c->n_metas;) {
		if (strcmp(c->metas[i].name, name) == 0 ||
		    !ft_srv_has_adapter(c->srv, c->metas[i].name))
			c->metas[i] = c->metas[--c->n_metas];
		else
			i++;
	}
	pthread_mutex_unlock(&c->meta_mu);
}

static void meta_put(struct srv_ctx *c, const struct srv_meta *m)
{
	pthread_mutex_lock(&c->meta_mu);
	struct srv_meta *e = meta_of(c, m->name);
	if (!e) {
		c->metas = realloc(c->metas, (c->n_metas + 1) * sizeof(*c->metas));
		FT_ASSERT(c->metas != NULL);
		e = &c->metas[c->n_metas++];
	}
	*e = *m;
	pthread_mutex_unlock(&c->meta_mu);
}

enum ft_rc srv_adapter_add(struct srv_ctx *c, const struct srv_meta *m, const char *dir,
			   struct ft_err *err)
{
	pthread_mutex_lock(&c->load_mu);
	meta_forget(c, m->name); /* an adapter of that name evicted earlier */
	enum ft_rc rc = ft_srv_adapter_load(c->srv, m->name, dir, err);
	if (!rc)
		meta_put(c, m);
	pthread_mutex_unlock(&c->load_mu);
	return rc;
}

/* The model a request names: the base (NULL adapter) or a resident adapter
 * the caller may use, directly or as the arm an experiment routes it to
 * ("experiment:<id or name>", experiments.c); its metadata goes into the
 * request log's record. *name stays the name the request gave. */
static enum ft_rc pick_model(struct srv_req *r, json_t *b, const char **adapter, const char **name)
{
	const char *m = NULL;
	if (ft_json_get_str(b, "model", FT_JSON_REQUIRED | FT_JSON_NONEMPTY, &m, &r->err))
		return FT_EINVAL;
	*name = m;
	*adapter = NULL;
	struct srv_meta meta;
	bool is_adapter;
	pthread_mutex_lock(&r->rec->mu);
	r->rec->model = ft_xstrdup(m);
	pthread_mutex_unlock(&r->rec->mu);
	const char *serve = m; /* an experiment's arm: its model */
	if (srv_experiment_route(r, json_string_value(json_object_get(b, "user")), &serve))
		return r->err.rc;
	if (!srv_meta_find(r->ctx, serve, scope(r), &meta, &is_adapter)) {
		if (r->exp_arm[0])
			ft_failf(&r->err, FT_EUNAVAIL, "arm_unavailable",
				 "arm \"%s\" of experiment %s is served by \"%.100s\", which this "
				 "server has not loaded: deploy that version on this endpoint",
				 r->exp_arm, r->exp_id, serve);
		else
			ft_failf(&r->err, FT_ENOTFOUND, "model_not_found",
				 "the model \"%.100s\" does not exist on this server; GET "
				 "/v1/models lists them",
				 m);
		ft_err_param(&r->err, "model");
		return r->err.rc;
	}
	if (is_adapter)
		*adapter = serve;
	pthread_mutex_lock(&r->rec->mu);
	r->rec->meta = meta;
	r->rec->adapter = is_adapter;
	pthread_mutex_unlock(&r->rec->mu);
	return FT_OK;
}

static enum ft_rc num_param(struct srv_req *r, json_t *b, const char *k, double lo, double hi,
			    double *out)
{
	json_t *v = json_object_get(b, k);
	if (!v || json_is_null(v))
		return FT_OK;
	if (!json_is_number(v))
		return bad(r, k, "\"%s\" must be a number (got %s)", k, ft_json_type_name(v));
	double x = json_number_value(v);
	if (!(x >= lo && x <= hi))
		return bad(r, k, "\"%s\" must be between %g and %g (got %g)", k, lo, hi, x);
	*out = x;
	return FT_OK;
}

static enum ft_rc int_param(struct srv_req *r, json_t *b, const char *k, long long lo, long long hi,
			    long long *out)
{
	json_t *v = json_object_get(b, k);
	if (!v || json_is_null(v))
		return FT_OK;
	if (!json_is_integer(v))
		return bad(r, k, "\"%s\" must be an integer (got %s)", k, ft_json_type_name(v));
	long long x = json_integer_value(v);
	if (x < lo || x > hi)
		return bad(r, k, "\"%s\" must be between %lld and %lld (got %lld)", k, lo, hi, x);
	*out = x;
	return FT_OK;
}

/* Everything but the prompt: sampling, limits, stop strings, streaming. */
static enum ft_rc common_params(struct srv_req *r, json_t *b, struct gen *g, struct ft_srv_req *q)
{
	struct ft_sampling *s = &q->sampling;
	double temp = 1.0, top_p = 1.0, fp = 0, pp = 0;
	long long top_k = 0, n = 1, seed = -1, top_lp = 0, max_tok = -1;
	int max_len = ft_srv_max_len(r->ctx->srv);
	if (num_param(r, b, "temperature", 0, 2, &temp) || num_param(r, b, "top_p", 0, 1, &top_p) ||
	    num_param(r, b, "frequency_penalty", -2, 2, &fp) ||
	    num_param(r, b, "presence_penalty", -2, 2, &pp) ||
	    int_param(r, b, "top_k", -1, 1 << 20, &top_k) || int_param(r, b, "n", 1, 128, &n) ||
	    int_param(r, b, "seed", INT64_MIN, INT64_MAX, &seed) ||
	    int_param(r, b, "max_tokens", 1, max_len, &max_tok) ||
	    int_param(r, b, "max_completion_tokens", 1, max_len, &max_tok))
		return FT_EINVAL;
	if (top_p == 0)
		return bad(r, "top_p", "\"top_p\" must be above 0");
	if (n != 1)
		return bad(r, "n", "\"n\" must be 1: this server returns one choice per request");
	json_t *lp = json_object_get(b, "logprobs");
	if (g->chat) {
		if (lp && !json_is_null(lp) && !json_is_boolean(lp))
			return bad(r, "logprobs", "\"logprobs\" must be true or false (got %s)",
				   ft_json_type_name(lp));
		g->logprobs = json_is_true(lp);
		if (int_param(r, b, "top_logprobs", 0, FT_SAMPLE_MAX_TOP, &top_lp))
			return FT_EINVAL;
		if (top_lp && !g->logprobs)
			return bad(r, "top_logprobs", "\"top_logprobs\" needs \"logprobs\": true");
	} else {
		if (int_param(r, b, "logprobs", 0, 5, &top_lp))
			return FT_EINVAL;
		g->logprobs = lp && !json_is_null(lp);
	}
	json_t *stream = json_object_get(b, "stream");
	if (stream && !json_is_null(stream) && !json_is_boolean(stream))
		return bad(r, "stream", "\"stream\" must be true or false");
	g->stream = json_is_true(stream);
	json_t *so = json_object_get(b, "stream_options");
	if (so && !json_is_null(so)) {
		if (!json_is_object(so))
			return bad(r, "stream_options", "\"stream_options\" must be an object");
		g->include_usage = json_is_true(json_object_get(so, "include_usage"));
	}
	json_t *stop = json_object_get(b, "stop");
	if (json_is_string(stop)) {
		if (json_string_length(stop))
			g->stops[g->n_stops] = g->own[g->n_stops] =
				ft_xstrdup(json_string_value(stop)),
			g->n_stops++;
	} else if (json_is_array(stop)) {
		size_t i;
		json_t *x;
		if (json_array_size(stop) > 4)
			return bad(r, "stop", "\"stop\" holds at most 4 strings");
		json_array_foreach(stop, i, x)
		{
			if (!json_is_string(x))
				return bad(r, "stop",
					   "\"stop\" must be a string or a list of strings");
			if (json_string_length(x))
				g->stops[g->n_stops] = g->own[g->n_stops] =
					ft_xstrdup(json_string_value(x)),
				g->n_stops++;
		}
	} else if (stop && !json_is_null(stop)) {
		return bad(r, "stop", "\"stop\" must be a string or a list of strings");
	}
	json_t *ie = json_object_get(b, "ignore_eos");
	if (ie && !json_is_null(ie) && !json_is_boolean(ie))
		return bad(r, "ignore_eos", "\"ignore_eos\" must be true or false");
	q->ignore_eos = json_is_true(ie);
	json_t *user = json_object_get(b, "user");
	if (user && !json_is_null(user) && !json_is_string(user))
		return bad(r, "user", "\"user\" must be a string");
	*s = (struct ft_sampling){ .temperature = temp,
				   .top_p = top_p,
				   .top_k = top_k < 0 ? 0 : (int)top_k,
				   .frequency_penalty = fp,
				   .presence_penalty = pp,
				   .logprobs = g->logprobs,
				   .top_logprobs = (int)top_lp };
	uint64_t sd = (uint64_t)seed;
	if (seed < 0)
		ft_random_bytes(&sd, sizeof sd);
	q->seed = sd;
	q->max_tokens = max_tok > 0 ? (int)max_tok : max_len;
	return FT_OK;
}

/* The keys each route accepts: anything else is a typo worth a 400. */
static enum ft_rc check_keys(struct srv_req *r, json_t *b, bool chat)
{
	static const char *const common[] = { "model",
					      "max_tokens",
					      "max_completion_tokens",
					      "temperature",
					      "top_p",
					      "top_k",
					      "stop",
					      "seed",
					      "frequency_penalty",
					      "presence_penalty",
					      "logprobs",
					      "top_logprobs",
					      "n",
					      "user",
					      "stream",
					      "stream_options",
					      "messages",
					      "prompt",
					      "ignore_eos",
					      NULL };
	const char *k;
	json_t *v;
	json_object_foreach(b, k, v)
	{
		bool ok = false;
		for (const char *const *c = common; *c && !ok; c++)
			ok = strcmp(*c, k) == 0;
		if (ok &&
		    ((chat && strcmp(k, "prompt") == 0) || (!chat && strcmp(k, "messages") == 0)))
			ok = false;
		if (!ok) {
			ft_failf(&r->err, FT_EINVAL, "unknown_field", "unknown field \"%.64s\"", k);
			ft_err_param(&r->err, k);
			return FT_EINVAL;
		}
	}
	return FT_OK;
}

/* messages -> the prompt's ids: rendered by the model's template with the
 * generation prompt, then encoded with special tokens recognised (as the
 * training rows are: trainer/data/dataset_tok.c). */
static enum ft_rc chat_prompt(struct srv_req *r, json_t *b, struct ft_ids *ids, char **text)
{
	const struct ft_chat_template *t = ft_srv_template(r->ctx->srv);
	if (!t) {
		ft_failf(&r->err, FT_EINVAL, "no_chat_template",
			 "this model has no chat template: use /v1/completions");
		return FT_EINVAL;
	}
	json_t *msgs = json_object_get(b, "messages");
	if (!json_is_array(msgs) || json_array_size(msgs) == 0)
		return bad(r, "messages", "\"messages\" must be a non-empty list");
	size_t n = json_array_size(msgs);
	struct ft_chat_msg *m = ft_arena_alloc(r->arena, n * sizeof(*m));
	for (size_t i = 0; i < n; i++) {
		json_t *x = json_array_get(msgs, i);
		char p[48];
		snprintf(p, sizeof p, "messages[%zu]", i);
		const char *role = json_string_value(json_object_get(x, "role"));
		json_t *c = json_object_get(x, "content");
		if (!json_is_object(x) || !role)
			return bad(r, p, "\"%s\" must be an object with a \"role\"", p);
		if (!strcmp(role, "system") || !strcmp(role, "developer"))
			m[i].role = FT_CHAT_SYSTEM;
		else if (!strcmp(role, "user"))
			m[i].role = FT_CHAT_USER;
		else if (!strcmp(role, "assistant"))
			m[i].role = FT_CHAT_ASSISTANT;
		else
			return bad(r, p,
				   "\"%s.role\" must be system, user or assistant (got \"%.32s\")",
				   p, role);
		if (json_is_string(c)) {
			m[i].content = json_string_value(c);
			m[i].len = json_string_length(c);
		} else if (json_is_array(c)) { /* text parts, joined */
			struct ft_buf tb;
			ft_buf_init(&tb, 16u << 20);
			size_t k;
			json_t *part;
			json_array_foreach(c, k, part)
			{
				const char *ty = json_string_value(json_object_get(part, "type"));
				const char *tx = json_string_value(json_object_get(part, "text"));
				if (!ty || strcmp(ty, "text") || !tx) {
					ft_buf_release(&tb);
					return bad(r, p, "\"%s.content\" parts must be text parts",
						   p);
				}
				ft_buf_addstr_or_drop(&tb, tx);
			}
			m[i].content = ft_arena_strdup(r->arena, ft_buf_str(&tb));
			m[i].len = tb.len;
			ft_buf_release(&tb);
		} else {
			return bad(r, p, "\"%s.content\" must be a string or a list of text parts",
				   p);
		}
		m[i].weight = -1;
	}
	struct ft_chat_render rd;
	ft_chat_render_init(&rd);
	enum ft_rc rc =
		ft_chat_render_messages(t, m, n, FT_CHAT_ADD_GENERATION_PROMPT, &rd, &r->err);
	if (!rc)
		rc = ft_tokenizer_encode(ft_srv_tokenizer(r->ctx->srv), ft_buf_str(&rd.text),
					 rd.text.len, FT_TOK_SPLIT_SPECIAL, ids, &r->err);
	if (!rc && text)
		*text = ft_xstrdup(ft_buf_str(&rd.text));
	ft_chat_render_release(&rd);
	return rc;
}

/* "prompt": a string (encoded with the model's special tokens added), or
 * token ids as OpenAI takes them (a list of integers, used as they are;
 * the request log then has no prompt text). */
static enum ft_rc completion_prompt(struct srv_req *r, json_t *b, struct ft_ids *ids, char **text)
{
	json_t *p = json_object_get(b, "prompt");
	if (json_is_array(p) && json_array_size(p) > 0) {
		int V = ft_srv_config(r->ctx->srv)->vocab_size;
		size_t i;
		json_t *x;
		json_array_foreach(p, i, x)
		{
			if (!json_is_integer(x) || json_integer_value(x) < 0 ||
			    json_integer_value(x) >= V) {
				ft_ids_release(ids);
				return bad(
					r, "prompt",
					"\"prompt\" as token ids must hold integers from 0 to %d "
					"(item %zu is not one)",
					V - 1, i);
			}
			if (ft_ids_push(ids, (int32_t)json_integer_value(x)))
				return ft_failf(&r->err, FT_ENOMEM, NULL, "out of memory");
		}
		return FT_OK;
	}
	if (!json_is_string(p))
		return bad(r, "prompt", "\"prompt\" must be a string or a list of token ids");
	if (text)
		*text = ft_xstrdup(json_string_value(p));
	return ft_tokenizer_encode(ft_srv_tokenizer(r->ctx->srv), json_string_value(p),
				   json_string_length(p), FT_TOK_SPLIT_SPECIAL | FT_TOK_ADD_SPECIAL,
				   ids, &r->err);
}

/* ---- answering ---- */

/* Did the client close its end? (poll for hang-up without reading) */
static bool client_gone(struct MHD_Connection *c)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
	if (!ci)
		return false;
	struct pollfd pf = { ci->connect_fd, POLLRDHUP, 0 };
	return poll(&pf, 1, 0) > 0 && (pf.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

static json_t *final_json(struct gen *g)
{
	const char *finish = ft_srv_finish_name(g->d.finish);
	json_t *choice = json_pack("{s:i, s:s}", "index", 0, "finish_reason", finish);
	if (g->chat) {
		json_object_set_new(choice, "message",
				    json_pack("{s:s, s:s%, s:n}", "role", "assistant", "content",
					      ft_buf_str(&g->content), g->content.len, "refusal"));
		json_object_set_new(choice, "logprobs",
				    g->logprobs ? json_pack("{s:O}", "content", g->lp)
						: json_null());
	} else {
		json_object_set_new(choice, "text",
				    json_stringn(ft_buf_str(&g->content), g->content.len));
		json_t *l = json_null();
		if (g->logprobs) {
			json_t *toks = json_array(), *lps = json_array(), *tops = json_array(),
			       *offs = json_array();
			size_t i, off = 0;
			json_t *e;
			json_array_foreach(g->lp, i, e)
			{
				json_array_append(toks, json_object_get(e, "token"));
				json_array_append(lps, json_object_get(e, "logprob"));
				json_array_append(tops, json_object_get(e, "top"));
				json_array_append_new(offs, json_integer((json_int_t)off));
				off += json_string_length(json_object_get(e, "token"));
			}
			l = json_pack("{s:o, s:o, s:o, s:o}", "tokens", toks, "token_logprobs", lps,
				      "top_logprobs", tops, "text_offset", offs);
		}
		json_object_set_new(choice, "logprobs", l);
	}
	json_t *o = json_pack("{s:s, s:s, s:I, s:s, s:[o], s:o}", "id", g->id, "object",
			      g->chat ? "chat.completion" : "text_completion", "created",
			      (json_int_t)g->created, "model", g->model, "choices", choice, "usage",
			      usage_json(&g->d));
	if (g->chat)
		json_object_set_new(o, "system_fingerprint", json_string("ftplat"));
	return o;
}

/* MHD reads the SSE stream from here (its connection thread): wait for
 * events, hand them over, end after [DONE]. */
static ssize_t sse_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	FT_UNUSED(pos);
	struct gen *g = cls;
	pthread_mutex_lock(&g->mu);
	while (g->sse.len == 0 && !g->done)
		pthread_cond_wait(&g->cv, &g->mu);
	ssize_t n;
	if (g->sse.len == 0) {
		n = MHD_CONTENT_READER_END_OF_STREAM;
	} else {
		size_t take = FT_MIN(max, g->sse.len);
		memcpy(buf, g->sse.ptr, take);
		memmove(g->sse.ptr, g->sse.ptr + take, g->sse.len - take);
		ft_buf_truncate(&g->sse, g->sse.len - take);
		n = (ssize_t)take;
	}
	pthread_mutex_unlock(&g->mu);
	return n;
}

/* The stream ends (finished, or the client went away): cancel if running. */
static void sse_free(void *cls)
{
	struct gen *g = cls;
	pthread_mutex_lock(&g->mu);
	bool running = !g->done;
	g->hung_up = true;
	pthread_mutex_unlock(&g->mu);
	if (running) {
		ft_srv_cancel(g->ctx->srv, g->srv_id);
		pthread_mutex_lock(&g->rec->mu);
		g->rec->client_gone = true;
		pthread_mutex_unlock(&g->rec->mu);
		pthread_mutex_lock(&g->ctx->mu);
		g->ctx->disconnects++;
		pthread_mutex_unlock(&g->ctx->mu);
	}
	gen_unref(g);
}

static enum ft_rc generate(struct srv_req *r, bool chat)
{
	json_t *b;
	struct srv_rec *rec = r->rec;
	if (srv_body(r, &b))
		return r->err.rc;
	pthread_mutex_lock(&rec->mu);
	rec->stream = json_is_true(json_object_get(b, "stream"));
	pthread_mutex_unlock(&rec->mu);
	if (check_keys(r, b, chat))
		return FT_EINVAL;
	const char *adapter, *name;
	if (pick_model(r, b, &adapter, &name))
		return r->err.rc;
	struct gen *g = calloc(1, sizeof(*g));
	if (!g)
		return ft_failf(&r->err, FT_ENOMEM, NULL, "out of memory");
	pthread_mutex_init(&g->mu, NULL);
	pthread_cond_init(&g->cv, NULL);
	g->refs = 1;
	g->ctx = r->ctx;
	g->chat = chat;
	g->lp = json_array();
	ft_buf_init(&g->delta, 16u << 20);
	ft_buf_init(&g->content, 64u << 20);
	ft_buf_init(&g->sse, 64u << 20);
	ft_strlcpy(g->model, name, sizeof g->model);
	ft_strlcpy(g->id, rec->id, sizeof g->id);
	srv_rec_ref(rec);
	g->rec = rec;
	g->created = (long)(rec->created_ms / 1000);
	struct ft_srv_req q = { .adapter = adapter,
				.on_token = on_token,
				.on_done = on_done,
				.ctx = g,
				.embed = srv_rec_embed(rec) };
	struct ft_ids ids = { 0 };
	enum ft_rc rc = common_params(r, b, g, &q);
	char *text = NULL, **want = rec->meta.log_texts ? &text : NULL;
	if (!rc)
		rc = chat ? chat_prompt(r, b, &ids, want) : completion_prompt(r, b, &ids, want);
	pthread_mutex_lock(&rec->mu);
	rec->prompt = text;
	pthread_mutex_unlock(&rec->mu);
	srv_text_init(&g->text, ft_srv_tokenizer(r->ctx->srv), g->stops, (size_t)g->n_stops);
	if (rc) {
		ft_ids_release(&ids);
		gen_unref(g);
		return rc;
	}
	q.prompt = ids.v;
	q.n_prompt = ids.len;
	q.max_tokens = FT_MIN(q.max_tokens, ft_srv_max_len(r->ctx->srv) - (int)ids.len);
	if (q.max_tokens < 1)
		q.max_tokens = 1; /* the prompt alone fills the context: refused below */
	g->t0 = ft_time_mono_ns();
	g->refs = 2; /* this request and the loop's on_done */
	rc = ft_srv_submit(r->ctx->srv, &q, &g->srv_id, &r->err);
	ft_ids_release(&ids);
	if (rc) {
		g->refs = 1;
		gen_unref(g);
		return rc;
	}
	if (g->stream) {
		r->stream = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, sse_read, g,
							      sse_free);
		if (!r->stream) {
			sse_free(g);
			return ft_failf(&r->err, FT_ENOMEM, NULL, "out of memory");
		}
		r->status = 200;
		return FT_OK;
	}
	pthread_mutex_lock(&g->mu);
	while (!g->done) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 100 * 1000000L;
		if (ts.tv_nsec >= 1000000000L)
			ts.tv_sec++, ts.tv_nsec -= 1000000000L;
		pthread_cond_timedwait(&g->cv, &g->mu, &ts);
		if (!g->done && !g->hung_up && client_gone(r->conn)) {
			g->hung_up = true;
			ft_srv_cancel(r->ctx->srv, g->srv_id);
			pthread_mutex_lock(&rec->mu);
			rec->client_gone = true;
			pthread_mutex_unlock(&rec->mu);
		}
	}
	pthread_mutex_unlock(&g->mu);
	if (g->d.finish == FT_FINISH_ERROR || g->d.finish == FT_FINISH_CANCELLED) {
		rc = ft_failf(&r->err, g->d.finish == FT_FINISH_ERROR ? FT_EINTERNAL : FT_EUNAVAIL,
			      "generation_failed", "%s",
			      g->d.error[0] ? g->d.error : "the generation was cancelled");
	} else {
		r->resp = final_json(g);
		r->status = 200;
	}
	gen_unref(g);
	return rc;
}

enum ft_rc srv_chat(struct srv_req *r)
{
	return generate(r, true);
}

enum ft_rc srv_completions(struct srv_req *r)
{
	return generate(r, false);
}

enum ft_rc srv_models(struct srv_req *r)
{
	char names[64][128];
	int n = ft_srv_adapters(r->ctx->srv, names, 64);
	long created = (long)(r->ctx->started_ms / 1000);
	json_t *data = json_array();
	json_array_append_new(data, json_pack("{s:s, s:s, s:I, s:s, s:n, s:i}", "id",
					      r->ctx->model_name, "object", "model", "created",
					      (json_int_t)created, "owned_by", "ftplat", "parent",
					      "max_model_len", ft_srv_max_len(r->ctx->srv)));
	for (int i = 0; i < n && i < 64; i++) {
		struct srv_meta m;
		bool is_adapter;
		if (!srv_meta_find(r->ctx, names[i], scope(r), &m, &is_adapter))
			continue; /* another team's */
		json_array_append_new(data,
				      json_pack("{s:s, s:s, s:I, s:s, s:s, s:i}", "id", names[i],
						"object", "model", "created", (json_int_t)created,
						"owned_by", "ftplat", "parent", r->ctx->model_name,
						"max_model_len", ft_srv_max_len(r->ctx->srv)));
	}
	r->resp = json_pack("{s:s, s:o}", "object", "list", "data", data);
	r->status = 200;
	return FT_OK;
}

/* An optional id field of the load body: absent, or an id with prefix. */
static enum ft_rc id_field(struct srv_req *r, json_t *b, const char *key, const char *prefix,
			   char *out, size_t n)
{
	const char *v = NULL;
	if (ft_json_get_str(b, key, FT_JSON_NULL_OK, &v, &r->err))
		return FT_EINVAL;
	if (!v)
		return FT_OK;
	if (!ft_id_valid(prefix, v))
		return bad(r, key, "\"%s\" must be an id \"%s-\" followed by 24 letters or digits",
			   key, prefix);
	ft_strlcpy(out, v, n);
	return FT_OK;
}

/* lora_path "store:sha256:<manifest>": the folder is unpacked from the
 * platform's store (serve_store) into a fresh folder under serve_cache_dir,
 * loaded (the engine keeps nothing of the files) and removed. The answers
 * name no server path: the store's own errors stay in the log. */
static enum ft_rc load_from_store(struct srv_req *r, const struct srv_meta *m, const char *manifest)
{
	struct srv_ctx *c = r->ctx;
	if (!c->store)
		return bad(r, "lora_path",
			   "\"lora_path\" names the platform's store, which this server does not "
			   "read (serve_store)");
	char dir[4096];
	snprintf(dir, sizeof dir, "%s/ft-serve-adapter-XXXXXX", c->cache_dir);
	if (!mkdtemp(dir)) {
		ft_logf(FT_LOG_ERROR, "serve", NULL, "cannot make a folder under %s: %s",
			c->cache_dir, strerror(errno));
		return ft_failf(&r->err, FT_EINTERNAL, "cache_unavailable",
				"the server cannot unpack adapters now (serve_cache_dir)");
	}
	struct ft_err e;
	ft_err_clear(&e);
	enum ft_rc rc = ft_store_get_dir(c->store, manifest, dir, &e);
	if (rc) {
		ft_logf(FT_LOG_WARN, "serve", NULL, "adapter \"%s\" from the store (%.12s…): %s",
			m->name, manifest, e.msg);
		if (rc == FT_ENOTFOUND || rc == FT_EFORMAT) {
			ft_failf(&r->err, FT_EINVAL, "invalid_adapter",
				 "\"lora_path\": the store holds no folder with manifest %.12s…%s",
				 manifest, rc == FT_EFORMAT ? " that reads whole" : "");
			ft_err_param(&r->err, "lora_path");
		} else {
			ft_failf(&r->err, FT_EUNAVAIL, "store_unavailable",
				 "the platform's store could not be read; try again");
		}
	} else if ((rc = srv_adapter_add(c, m, dir, &r->err))) {
		if (rc == FT_EIO || rc == FT_ENOTFOUND || rc == FT_EFORMAT) {
			ft_err_clear(&r->err);
			ft_failf(&r->err, FT_EINVAL, "invalid_adapter",
				 "\"lora_path\" is not a PEFT adapter folder of this base model");
			ft_err_param(&r->err, "lora_path");
		}
	}
	ft_err_clear(&e);
	if (ft_remove_tree(dir, &e))
		ft_logf(FT_LOG_WARN, "serve", NULL, "%s", e.msg);
	if (rc)
		return r->err.rc;
	r->resp = json_pack("{s:s, s:s}", "status", "loaded", "lora_name", m->name);
	r->status = 200;
	return FT_OK;
}

/* vLLM's body ({lora_name, lora_path}) and what the request log needs to
 * know of the adapter: team_id (only that team's keys may use it),
 * version_id, deployment_id, log_texts. lora_path is a folder on this
 * server, or "store:sha256:<manifest>" (load_from_store). */
enum ft_rc srv_load_adapter(struct srv_req *r)
{
	static const char *const keys[] = { "lora_name",     "lora_path", "team_id", "version_id",
					    "deployment_id", "log_texts", NULL };
	json_t *b;
	const char *name = NULL, *path = NULL;
	struct srv_meta m = { 0 };
	if (srv_body(r, &b) || ft_json_check_keys(b, keys, &r->err) ||
	    ft_json_get_str(b, "lora_name", FT_JSON_REQUIRED | FT_JSON_NONEMPTY, &name, &r->err) ||
	    ft_json_get_str(b, "lora_path", FT_JSON_REQUIRED | FT_JSON_NONEMPTY, &path, &r->err) ||
	    id_field(r, b, "team_id", FT_ID_TEAM, m.team, sizeof m.team) ||
	    id_field(r, b, "version_id", FT_ID_VERSION, m.version, sizeof m.version) ||
	    id_field(r, b, "deployment_id", FT_ID_DEPLOYMENT, m.deployment, sizeof m.deployment) ||
	    ft_json_get_bool(b, "log_texts", FT_JSON_NULL_OK, &m.log_texts, &r->err))
		return r->err.rc ? r->err.rc : FT_EINVAL;
	if (strcmp(name, r->ctx->model_name) == 0)
		return bad(r, "lora_name", "\"lora_name\" is the base model's name");
	if (strlen(name) >= sizeof m.name)
		return bad(r, "lora_name", "\"lora_name\" must be 1 to 127 bytes");
	ft_strlcpy(m.name, name, sizeof m.name);
	char manifest[65];
	if (ft_store_ref_parse(path, manifest))
		return load_from_store(r, &m, manifest);
	if (srv_adapter_add(r->ctx, &m, path, &r->err)) {
		if (r->err.rc == FT_EIO || r->err.rc == FT_ENOTFOUND || r->err.rc == FT_EFORMAT) {
			/* name no server path: the folder is the caller's own */
			ft_err_clear(&r->err);
			ft_failf(&r->err, FT_EINVAL, "invalid_adapter",
				 "\"lora_path\" is not a PEFT adapter folder of this base model");
			ft_err_param(&r->err, "lora_path");
		}
		return r->err.rc;
	}
	r->resp = json_pack("{s:s, s:s}", "status", "loaded", "lora_name", name);
	r->status = 200;
	return FT_OK;
}

enum ft_rc srv_unload_adapter(struct srv_req *r)
{
	json_t *b;
	const char *name = NULL;
	if (srv_body(r, &b) ||
	    ft_json_get_str(b, "lora_name", FT_JSON_REQUIRED | FT_JSON_NONEMPTY, &name, &r->err))
		return r->err.rc ? r->err.rc : FT_EINVAL;
	pthread_mutex_lock(&r->ctx->load_mu);
	enum ft_rc rc = ft_srv_adapter_unload(r->ctx->srv, name, &r->err);
	if (!rc)
		meta_forget(r->ctx, name);
	pthread_mutex_unlock(&r->ctx->load_mu);
	if (rc)
		return rc;
	r->resp = json_pack("{s:s, s:s}", "status", "unloaded", "lora_name", name);
	r->status = 200;
	return FT_OK;
}

enum ft_rc srv_health(struct srv_req *r)
{
	r->resp = json_pack("{s:s}", "status", "ok");
	r->status = 200;
	return FT_OK;
}
