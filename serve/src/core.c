/*
 * core.c - ft-serve's batching loop (the design is at the top of
 * ft/serve.h). One mutex guards the queue, the sequences' flags and the
 * adapter table; the loop holds it only to take work and to publish, never
 * while the model runs.
 */
#include "ft/serve.h"
#include "ft/clock.h"
#include "ft/dataset.h"

#include <pthread.h>

struct adapter {
	char name[128];
	int slot; /* the model's adapter slot */
	uint64_t last_used; /* step counter, for the LRU */
	int users; /* sequences running with it */
};

struct seq {
	uint64_t id;
	bool active, cancelled;
	struct ft_srv_req req;
	int32_t *prompt;
	size_t n_prompt;
	char adapter_name[128];
	int ad; /* model adapter slot, or -1 */
	struct adapter *ad_entry;
	int kv_slot;
	size_t prefilled; /* prompt tokens in the cache */
	int cached; /* of those, found there at admission (the prefix cache) */
	int32_t next; /* the token to feed (after the prompt) */
	int generated;
	struct ft_sampler sampler;
	uint64_t t_submit, t_first;
	bool started; /* left the queue */
	int prompt_bytes, completion_bytes; /* byte pieces */
	double *emb_sum; /* req.embed: sum of the prompt rows' hidden states */
	float *emb; /* their mean, once the prompt is in */
};

struct ft_srv {
	struct ft_srv_opts o;
	struct ft_model *model;
	struct ft_tokenizer *tok;
	struct ft_chat_template *tmpl;
	struct ft_kv_cache *kv;
	int V;

	pthread_mutex_t mu;
	pthread_cond_t cv;
	/* held while the model runs a step and while its adapter table changes
	 * (loading may grow it); taken after mu when both are held */
	pthread_mutex_t model_mu;
	pthread_t thread;
	bool stop;
	uint64_t next_id;
	/* queued then running: seqs[0..n) in submission order */
	struct seq **seqs;
	int n_seqs, cap_seqs;
	bool *slot_busy; /* [max_seqs] */
	/* what each KV slot holds, kept when its sequence ends (the prefix
	 * cache): held[k][0 .. ft_kv_cache_len(kv, k)) are its tokens, run
	 * with the model adapter slot held_ad[k] (-1: the base);
	 * held_used[k] the step it was last used at (for the LRU) */
	int32_t *held; /* [max_seqs][max_len] */
	int *held_ad;
	uint64_t *held_used;
	struct adapter *ads; /* [max_adapters]; an entry is in use when its name is set */
	int n_ads;
	struct ft_srv_stats st;
	uint64_t step_no;

	bool *byte_piece; /* [vocab]: ft_tokenizer_byte_pieces */
	size_t n_byte_piece;
	int C; /* hidden size */
	float *hidden_h; /* host copy of a hidden row (non-host backends) */

	/* the step being built (loop thread only) */
	int32_t *ids, *pos, *slot, *adx, *want;
	struct seq **row_seq;
	float *logits_h; /* host copy of a logits row (non-host backends) */
};

void ft_srv_opts_default(struct ft_srv_opts *o)
{
	*o = (struct ft_srv_opts){ .max_seqs = 16,
				   .max_len = 2048,
				   .prefill_chunk = 256,
				   .max_queue = 256,
				   .max_adapters = 8,
				   .prefix_cache = true };
}

const char *ft_srv_finish_name(enum ft_srv_finish f)
{
	static const char *const names[] = { "stop", "length", "cancelled", "error" };
	return (size_t)f < FT_ARRAY_LEN(names) ? names[f] : "error";
}

static double ms_since(uint64_t t0)
{
	return (double)(ft_time_mono_ns() - t0) * 1e-6;
}

/* ---- ending a sequence (loop thread; mu held) ---- */

static void finish(struct ft_srv *s, struct seq *q, enum ft_srv_finish f, const char *error)
{
	struct ft_srv_done d = { .finish = f,
				 .prompt_tokens = (int)q->n_prompt,
				 .cached_tokens = q->cached,
				 .completion_tokens = q->generated,
				 .prompt_byte_tokens = q->prompt_bytes,
				 .completion_byte_tokens = q->completion_bytes,
				 .embedding = q->emb,
				 .embedding_dim = q->emb ? s->C : 0,
				 .total_ms = ms_since(q->t_submit) };
	d.ttft_ms = q->t_first ? (double)(q->t_first - q->t_submit) * 1e-6 : d.total_ms;
	if (error)
		ft_strlcpy(d.error, error, sizeof d.error);
	if (q->kv_slot >= 0) {
		/* what the slot holds stays for a later prompt that starts with
		 * it; after an error it may not be what held[] says */
		if (f == FT_FINISH_ERROR || !s->o.prefix_cache)
			ft_kv_cache_reset(s->kv, q->kv_slot);
		s->held_used[q->kv_slot] = s->step_no;
		s->slot_busy[q->kv_slot] = false;
	}
	if (q->ad_entry)
		q->ad_entry->users--;
	q->active = false;
	q->req.on_done(q->req.ctx, &d);
}

static void drop_inactive(struct ft_srv *s)
{
	int n = 0;
	for (int i = 0; i < s->n_seqs; i++) {
		struct seq *q = s->seqs[i];
		if (q->active) {
			s->seqs[n++] = q;
			continue;
		}
		ft_sampler_release(&q->sampler);
		free(q->prompt);
		free(q->emb_sum);
		free(q->emb);
		free(q);
	}
	s->n_seqs = n;
}

/* ---- one step ---- */

/* How many of q's first prompt tokens slot k holds with q's adapter: at
 * most its prompt less one token (the last prompt row gives the first
 * token's logits); none for a request that wants its prompt's embedding
 * (every row's hidden state). */
static int held_start(const struct ft_srv *s, const struct seq *q, int k)
{
	int held = ft_kv_cache_len(s->kv, k), len = 0;
	if (s->o.prefix_cache && !q->emb_sum && held > 0 && s->held_ad[k] == q->ad) {
		const int32_t *t = s->held + (size_t)k * s->o.max_len;
		int most = FT_MIN(held, (int)q->n_prompt - 1);
		while (len < most && t[len] == q->prompt[len])
			len++;
	}
	return len;
}

/* The free slot for q: the one holding the longest start of its prompt,
 * else the least recently used (an empty one first). *keep: the positions
 * q starts from. *from: -1 when they are the slot's own, else a busy slot
 * holding a longer start (a sequence still running with the same system
 * prompt, or the same conversation), whose positions are copied in. */
static int pick_slot(const struct ft_srv *s, const struct seq *q, int *keep, int *from)
{
	int best = -1, best_len = -1, busy = -1, busy_len = 0;
	for (int k = 0; k < s->o.max_seqs; k++) {
		int held = ft_kv_cache_len(s->kv, k), len = held_start(s, q, k);
		if (s->slot_busy[k]) {
			if (len > busy_len)
				busy = k, busy_len = len;
			continue;
		}
		bool better = len > best_len;
		if (len == best_len) { /* the least recently used; empty before held */
			int bh = ft_kv_cache_len(s->kv, best);
			better = (held == 0) != (bh == 0) ? held == 0
							  : s->held_used[k] < s->held_used[best];
		}
		if (better)
			best = k, best_len = len;
	}
	*keep = FT_MAX(best_len, 0);
	*from = -1;
	if (busy_len > *keep)
		*keep = busy_len, *from = busy;
	return best;
}

/* Give queued sequences free slots; their adapters are resolved now (an
 * adapter unloaded while they waited ends them). */
static void admit(struct ft_srv *s)
{
	int n_free = 0;
	for (int k = 0; k < s->o.max_seqs; k++)
		n_free += !s->slot_busy[k];
	for (int i = 0; i < s->n_seqs && n_free > 0; i++) {
		struct seq *q = s->seqs[i];
		if (!q->active || q->started)
			continue;
		q->ad = -1;
		if (q->adapter_name[0]) {
			for (int a = 0; a < s->o.max_adapters; a++)
				if (s->ads[a].name[0] &&
				    strcmp(s->ads[a].name, q->adapter_name) == 0)
					q->ad_entry = &s->ads[a];
			if (!q->ad_entry) {
				finish(s, q, FT_FINISH_ERROR, "the adapter was unloaded");
				continue;
			}
			q->ad = q->ad_entry->slot;
			q->ad_entry->users++;
			q->ad_entry->last_used = s->step_no;
		}
		int keep, from, slot = pick_slot(s, q, &keep, &from);
		n_free--;
		if (from >= 0) {
			ft_kv_cache_copy(s->kv, slot, from, keep);
			memcpy(s->held + (size_t)slot * s->o.max_len,
			       s->held + (size_t)from * s->o.max_len,
			       sizeof(int32_t) * (size_t)keep);
		} else {
			ft_kv_cache_truncate(s->kv, slot, keep);
		}
		s->held_ad[slot] = q->ad;
		s->slot_busy[slot] = true;
		q->kv_slot = slot;
		q->prefilled = (size_t)keep;
		q->cached = keep;
		s->st.prompt_tokens_cached += (uint64_t)keep;
		s->st.prefix_hits += keep > 0;
		q->started = true;
	}
}

/* An adapter leaves its model slot (which another may take): the KV slots
 * its sequences left are forgotten. mu held; none of them is running. */
static void forget_adapter(struct ft_srv *s, int model_slot)
{
	for (int k = 0; k < s->o.max_seqs; k++)
		if (!s->slot_busy[k] && s->held_ad[k] == model_slot)
			ft_kv_cache_reset(s->kv, k);
}

/* Rows of this step (mu held: reads the sequences). Returns the row count;
 * *n_want the rows whose logits are needed. Rows are grouped by adapter
 * (each sequence's rows stay together and in order), so the LoRA path runs
 * once per adapter present. */
static int build_rows(struct ft_srv *s, int *n_want)
{
	int n = 0, budget = s->o.prefill_chunk;
	*n_want = 0;
	for (int pass = 0; pass < 2; pass++)
		for (int i = 0; i < s->n_seqs; i++) {
			struct seq *q = s->seqs[i];
			if (!q->active || !q->started || q->cancelled)
				continue;
			bool decoding = q->prefilled == q->n_prompt;
			if (pass == 0 && decoding) { /* generating: its last token */
				s->ids[n] = q->next;
				s->pos[n] = (int32_t)(q->n_prompt + (size_t)q->generated - 1);
				s->slot[n] = q->kv_slot;
				s->held[(size_t)q->kv_slot * s->o.max_len + (size_t)s->pos[n]] =
					q->next;
				s->adx[n] = q->ad;
				s->row_seq[n] = q;
				s->want[(*n_want)++] = n;
				n++;
			} else if (pass == 1 && !decoding && budget > 0) {
				size_t take = FT_MIN(q->n_prompt - q->prefilled, (size_t)budget);
				for (size_t t = 0; t < take; t++, n++) {
					s->ids[n] = q->prompt[q->prefilled + t];
					s->pos[n] = (int32_t)(q->prefilled + t);
					s->slot[n] = q->kv_slot;
					s->held[(size_t)q->kv_slot * s->o.max_len +
						(size_t)s->pos[n]] = s->ids[n];
					s->adx[n] = q->ad;
					s->row_seq[n] = q;
				}
				budget -= (int)take;
				if (q->prefilled + take == q->n_prompt)
					s->want[(*n_want)++] =
						n - 1; /* its first token comes now */
			}
		}
	return n;
}

/* Stable grouping of the rows by adapter slot (insertion sort on runs of a
 * sequence, which share an adapter); want[] follows the rows. */
static void group_by_adapter(struct ft_srv *s, int n, int n_want)
{
	bool mixed = false;
	for (int i = 1; i < n && !mixed; i++)
		mixed = s->adx[i] != s->adx[0];
	if (!mixed)
		return;
	int32_t *perm = ft_xmalloc(sizeof(int32_t) * (size_t)n);
	int k = 0;
	/* adapters in order of first appearance, -1 (none) included */
	for (int i = 0; i < n; i++) {
		bool seen = false;
		for (int j = 0; j < i && !seen; j++)
			seen = s->adx[j] == s->adx[i];
		if (seen)
			continue;
		for (int j = i; j < n; j++)
			if (s->adx[j] == s->adx[i])
				perm[k++] = j;
	}
	int32_t *tmp = ft_xmalloc(sizeof(int32_t) * (size_t)n * 4);
	struct seq **tq = ft_xmalloc(sizeof(*tq) * (size_t)n);
	int32_t *inv = ft_xmalloc(sizeof(int32_t) * (size_t)n);
	for (int i = 0; i < n; i++) {
		tmp[i] = s->ids[perm[i]];
		tmp[n + i] = s->pos[perm[i]];
		tmp[2 * n + i] = s->slot[perm[i]];
		tmp[3 * n + i] = s->adx[perm[i]];
		tq[i] = s->row_seq[perm[i]];
		inv[perm[i]] = i;
	}
	memcpy(s->ids, tmp, sizeof(int32_t) * (size_t)n);
	memcpy(s->pos, tmp + n, sizeof(int32_t) * (size_t)n);
	memcpy(s->slot, tmp + 2 * n, sizeof(int32_t) * (size_t)n);
	memcpy(s->adx, tmp + 3 * n, sizeof(int32_t) * (size_t)n);
	memcpy(s->row_seq, tq, sizeof(*tq) * (size_t)n);
	for (int i = 0; i < n_want; i++)
		s->want[i] = inv[s->want[i]];
	free(perm);
	free(tmp);
	free(tq);
	free(inv);
}

/* After the model ran: prompts advance, and every wanted row's sequence
 * samples its next token. mu held. */
static void publish(struct ft_srv *s, int n, int n_want, const float *logits, const float *hidden)
{
	const struct ft_backend *be = ft_model_backend(s->model);
	for (int r = 0; r < n; r++) {
		struct seq *q = s->row_seq[r];
		if (q->prefilled >= q->n_prompt)
			continue;
		if (q->emb_sum) { /* a prompt row of a sequence that wants its embedding */
			const float *h = hidden + (size_t)r * (size_t)s->C;
			if (!be->host_memory) {
				be->download(s->hidden_h, h, sizeof(float) * (size_t)s->C);
				h = s->hidden_h;
			}
			for (int k = 0; k < s->C; k++)
				q->emb_sum[k] += h[k];
		}
		if (++q->prefilled == q->n_prompt && q->emb_sum) {
			q->emb = ft_xmalloc(sizeof(float) * (size_t)s->C);
			for (int k = 0; k < s->C; k++)
				q->emb[k] = (float)(q->emb_sum[k] / (double)q->n_prompt);
		}
	}
	for (int w = 0; w < n_want; w++) {
		struct seq *q = s->row_seq[s->want[w]];
		if (!q->active)
			continue;
		if (q->cancelled) {
			finish(s, q, FT_FINISH_CANCELLED, NULL);
			continue;
		}
		const float *row = logits + (size_t)w * s->V;
		if (!be->host_memory) {
			be->download(s->logits_h, row, sizeof(float) * (size_t)s->V);
			row = s->logits_h;
		}
		struct ft_sample_out so;
		ft_sample(&q->sampler, row, &so);
		if (!q->t_first)
			q->t_first = ft_time_mono_ns();
		q->generated++;
		q->next = so.id;
		if ((size_t)so.id < s->n_byte_piece && s->byte_piece[so.id])
			q->completion_bytes++;
		s->st.tokens_generated++;
		bool eos = false;
		const struct ft_model_config *c = ft_model_config(s->model);
		for (int e = 0; e < c->n_eos && !q->req.ignore_eos; e++)
			eos |= so.id == c->eos_token_ids[e];
		bool go_on = eos ? true : q->req.on_token(q->req.ctx, &so);
		if (eos || !go_on)
			finish(s, q, FT_FINISH_STOP, NULL);
		else if (q->generated >= q->req.max_tokens ||
			 q->n_prompt + (size_t)q->generated >= (size_t)s->o.max_len)
			finish(s, q, FT_FINISH_LENGTH, NULL);
	}
}

static void *loop(void *arg)
{
	struct ft_srv *s = arg;
	pthread_mutex_lock(&s->mu);
	for (;;) {
		/* cancelled sequences that are not in a step end here */
		for (int i = 0; i < s->n_seqs; i++)
			if (s->seqs[i]->active && s->seqs[i]->cancelled)
				finish(s, s->seqs[i], FT_FINISH_CANCELLED, NULL);
		drop_inactive(s);
		if (s->stop)
			break;
		admit(s);
		drop_inactive(s);
		int n_want, n = build_rows(s, &n_want);
		if (n == 0) {
			pthread_cond_wait(&s->cv, &s->mu);
			continue;
		}
		group_by_adapter(s, n, n_want);
		s->step_no++;
		pthread_mutex_unlock(&s->mu);

		uint64_t t0 = ft_time_mono_ns();
		struct ft_step st = { n, s->ids, s->pos, s->slot, s->adx, s->want, n_want };
		struct ft_err err;
		ft_err_clear(&err);
		pthread_mutex_lock(&s->model_mu);
		enum ft_rc rc = ft_model_step(s->model, s->kv, &st, &err);
		pthread_mutex_unlock(&s->model_mu);

		pthread_mutex_lock(&s->mu);
		s->st.busy_seconds += (double)(ft_time_mono_ns() - t0) * 1e-9;
		s->st.steps++;
		if (rc) { /* a bug or out of memory: end the step's sequences */
			for (int r = 0; r < n; r++)
				if (s->row_seq[r]->active)
					finish(s, s->row_seq[r], FT_FINISH_ERROR, err.msg);
			continue;
		}
		publish(s, n, n_want, ft_model_step_logits(s->model),
			ft_model_step_hidden(s->model));
	}
	for (int i = 0; i < s->n_seqs; i++)
		if (s->seqs[i]->active)
			finish(s, s->seqs[i], FT_FINISH_CANCELLED, NULL);
	drop_inactive(s);
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

/* ---- life ---- */

/* The base packed for inference in the format asked for (ft_model_pack).
 * f32 on a backend without packed weights serves the weights as they are
 * (the same values). */
static enum ft_rc pack_weights(struct ft_srv *s, const struct ft_backend *be, const char *name,
			       struct ft_err *err)
{
	enum ft_pw_fmt fmt = FT_PW_F32;
	if (name && *name && !ft_pw_fmt_parse(name, &fmt))
		return ft_failf(err, FT_EINVAL, NULL,
				"serve_weights must be \"f32\", \"bf16\" or \"q8_0\" (got \"%s\")",
				name);
	if (fmt == FT_PW_F32 && !be->pw_pack)
		return FT_OK;
	return ft_model_pack(s->model, fmt, err);
}

enum ft_rc ft_srv_new(const struct ft_srv_opts *o, struct ft_srv **out, struct ft_err *err)
{
	struct ft_srv *s = calloc(1, sizeof(*s));
	if (!s)
		return ft_failf(err, FT_ENOMEM, NULL, "out of memory");
	s->o = *o;
	const struct ft_backend *be;
	enum ft_rc rc = ft_backend_select(o->device, &be, err);
	if (!rc)
		rc = ft_model_load(o->model_dir, be, &s->model, err);
	if (!rc)
		rc = pack_weights(s, be, o->weights, err);
	if (!rc)
		rc = ft_tokenizer_load(o->model_dir, &s->tok, err);
	if (rc)
		goto fail;
	struct ft_err e;
	ft_err_clear(&e);
	if (ft_data_template_pick(s->tok, NULL, &s->tmpl, &e))
		s->tmpl = NULL; /* completions only */
	const struct ft_model_config *c = ft_model_config(s->model);
	s->V = c->vocab_size;
	int max_pos = c->max_position_embeddings > 0 ? c->max_position_embeddings : 2048;
	s->o.max_len = FT_MIN(FT_MAX(o->max_len, 2), max_pos);
	s->o.max_seqs = FT_MAX(o->max_seqs, 1);
	s->o.prefill_chunk = FT_MAX(o->prefill_chunk, 1);
	s->o.max_adapters = FT_MAX(o->max_adapters, 1);
	if ((rc = ft_kv_cache_new(s->model, s->o.max_seqs, s->o.max_len, &s->kv, err)))
		goto fail;
	size_t rows = (size_t)s->o.max_seqs + (size_t)s->o.prefill_chunk;
	s->ids = calloc(rows, sizeof(int32_t));
	s->pos = calloc(rows, sizeof(int32_t));
	s->slot = calloc(rows, sizeof(int32_t));
	s->adx = calloc(rows, sizeof(int32_t));
	s->want = calloc(rows, sizeof(int32_t));
	s->row_seq = calloc(rows, sizeof(*s->row_seq));
	s->slot_busy = calloc((size_t)s->o.max_seqs, sizeof(bool));
	s->held = malloc(sizeof(int32_t) * (size_t)s->o.max_seqs * (size_t)s->o.max_len);
	s->held_ad = calloc((size_t)s->o.max_seqs, sizeof(int));
	s->held_used = calloc((size_t)s->o.max_seqs, sizeof(uint64_t));
	s->ads = calloc((size_t)s->o.max_adapters, sizeof(*s->ads));
	s->logits_h = be->host_memory ? NULL : malloc(sizeof(float) * (size_t)s->V);
	s->C = c->hidden_size;
	s->hidden_h = be->host_memory ? NULL : malloc(sizeof(float) * (size_t)s->C);
	s->byte_piece = ft_tokenizer_byte_pieces(s->tok);
	s->n_byte_piece = s->byte_piece ? ft_tokenizer_vocab_size(s->tok) : 0;
	if (!s->ids || !s->pos || !s->slot || !s->adx || !s->want || !s->row_seq || !s->slot_busy ||
	    !s->held || !s->held_ad || !s->held_used || !s->ads ||
	    (!be->host_memory && (!s->logits_h || !s->hidden_h)) || !s->byte_piece) {
		rc = ft_failf(err, FT_ENOMEM, NULL, "out of memory");
		goto fail;
	}
	s->st.max_seqs = s->o.max_seqs;
	s->st.kv_positions = (long)s->o.max_seqs * s->o.max_len;
	pthread_mutex_init(&s->mu, NULL);
	pthread_mutex_init(&s->model_mu, NULL);
	pthread_cond_init(&s->cv, NULL);
	if (pthread_create(&s->thread, NULL, loop, s) != 0) {
		rc = ft_failf(err, FT_EINTERNAL, NULL, "cannot start the batching thread");
		pthread_mutex_destroy(&s->mu);
		pthread_mutex_destroy(&s->model_mu);
		pthread_cond_destroy(&s->cv);
		goto fail;
	}
	*out = s;
	return FT_OK;
fail:
	ft_kv_cache_free(s->kv);
	ft_chat_template_free(s->tmpl);
	ft_tokenizer_free(s->tok);
	ft_model_free(s->model);
	free(s->ids), free(s->pos), free(s->slot), free(s->adx), free(s->want);
	free(s->row_seq), free(s->slot_busy), free(s->ads), free(s->logits_h);
	free(s->held), free(s->held_ad), free(s->held_used);
	free(s->hidden_h), free(s->byte_piece);
	free(s);
	return rc;
}

void ft_srv_free(struct ft_srv *s)
{
	if (!s)
		return;
	pthread_mutex_lock(&s->mu);
	s->stop = true;
	pthread_cond_signal(&s->cv);
	pthread_mutex_unlock(&s->mu);
	pthread_join(s->thread, NULL);
	pthread_mutex_destroy(&s->mu);
	pthread_mutex_destroy(&s->model_mu);
	pthread_cond_destroy(&s->cv);
	free(s->seqs);
	ft_kv_cache_free(s->kv);
	ft_chat_template_free(s->tmpl);
	ft_tokenizer_free(s->tok);
	ft_model_free(s->model);
	free(s->ids), free(s->pos), free(s->slot), free(s->adx), free(s->want);
	free(s->row_seq), free(s->slot_busy), free(s->ads), free(s->logits_h);
	free(s->held), free(s->held_ad), free(s->held_used);
	free(s->hidden_h), free(s->byte_piece);
	free(s);
}

const struct ft_model_config *ft_srv_config(const struct ft_srv *s)
{
	return ft_model_config(s->model);
}

const struct ft_tokenizer *ft_srv_tokenizer(const struct ft_srv *s)
{
	return s->tok;
}

const struct ft_chat_template *ft_srv_template(const struct ft_srv *s)
{
	return s->tmpl;
}

int ft_srv_max_len(const struct ft_srv *s)
{
	return s->o.max_len;
}

/* ---- requests ---- */

static struct adapter *find_adapter(struct ft_srv *s, const char *name)
{
	for (int a = 0; a < s->o.max_adapters; a++)
		if (s->ads[a].name[0] && strcmp(s->ads[a].name, name) == 0)
			return &s->ads[a];
	return NULL;
}

/* A free entry of the table, or NULL when all are in use. */
static struct adapter *free_entry(struct ft_srv *s)
{
	for (int a = 0; a < s->o.max_adapters; a++)
		if (!s->ads[a].name[0])
			return &s->ads[a];
	return NULL;
}

enum ft_rc ft_srv_submit(struct ft_srv *s, const struct ft_srv_req *r, uint64_t *id,
			 struct ft_err *err)
{
	if (r->n_prompt == 0) {
		ft_failf(err, FT_EINVAL, "invalid_value", "the prompt is empty");
		ft_err_param(err, "messages");
		return FT_EINVAL;
	}
	if (r->n_prompt >= (size_t)s->o.max_len) {
		ft_failf(err, FT_EINVAL, "context_length_exceeded",
			 "the prompt has %zu tokens; this model's context is %d", r->n_prompt,
			 s->o.max_len);
		ft_err_param(err, "messages");
		return FT_EINVAL;
	}
	if (r->max_tokens < 1) {
		ft_failf(err, FT_EINVAL, "invalid_value", "\"max_tokens\" must be >= 1 (got %d)",
			 r->max_tokens);
		ft_err_param(err, "max_tokens");
		return FT_EINVAL;
	}
	for (size_t i = 0; i < r->n_prompt; i++)
		if (r->prompt[i] < 0 || r->prompt[i] >= s->V) {
			ft_failf(err, FT_EINVAL, "invalid_value",
				 "prompt token %d is outside the vocabulary (size %d)",
				 r->prompt[i], s->V);
			ft_err_param(err, "prompt");
			return FT_EINVAL;
		}
	struct seq *q = calloc(1, sizeof(*q));
	if (!q)
		return ft_failf(err, FT_ENOMEM, NULL, "out of memory");
	enum ft_rc rc = ft_sampler_init(&q->sampler, s->V, &r->sampling, r->seed, err);
	if (rc) {
		free(q);
		return rc;
	}
	q->prompt = malloc(sizeof(int32_t) * r->n_prompt);
	if (!q->prompt) {
		ft_sampler_release(&q->sampler);
		free(q);
		return ft_failf(err, FT_ENOMEM, NULL, "out of memory");
	}
	memcpy(q->prompt, r->prompt, sizeof(int32_t) * r->n_prompt);
	q->n_prompt = r->n_prompt;
	for (size_t i = 0; i < r->n_prompt; i++)
		q->prompt_bytes +=
			(size_t)r->prompt[i] < s->n_byte_piece && s->byte_piece[r->prompt[i]];
	if (r->embed)
		q->emb_sum = ft_xcalloc((size_t)s->C, sizeof(double));
	q->req = *r;
	q->req.prompt = q->prompt;
	q->req.adapter = NULL;
	if (r->adapter)
		ft_strlcpy(q->adapter_name, r->adapter, sizeof q->adapter_name);
	q->kv_slot = -1;
	q->ad = -1;
	q->active = true;
	q->t_submit = ft_time_mono_ns();
	pthread_mutex_lock(&s->mu);
	int queued = 0;
	for (int i = 0; i < s->n_seqs; i++)
		queued += s->seqs[i]->active && !s->seqs[i]->started;
	if (r->adapter && !find_adapter(s, r->adapter)) {
		pthread_mutex_unlock(&s->mu);
		ft_failf(err, FT_ENOTFOUND, "model_not_found", "no adapter \"%s\" is loaded",
			 r->adapter);
		ft_err_param(err, "model");
		rc = FT_ENOTFOUND;
	} else if (queued >= s->o.max_queue) {
		pthread_mutex_unlock(&s->mu);
		rc = ft_failf(err, FT_ELIMIT, "server_busy",
			      "%d requests are waiting already; try again shortly", queued);
	} else if (s->n_seqs == s->cap_seqs &&
		   !(s->seqs = realloc(s->seqs,
				       sizeof(*s->seqs) *
					       (size_t)(s->cap_seqs = s->cap_seqs * 2 + 16)))) {
		pthread_mutex_unlock(&s->mu);
		rc = ft_failf(err, FT_ENOMEM, NULL, "out of memory");
	} else {
		q->id = ++s->next_id;
		*id = q->id;
		s->seqs[s->n_seqs++] = q;
		s->st.requests++;
		s->st.prompt_tokens += r->n_prompt;
		pthread_cond_signal(&s->cv);
		pthread_mutex_unlock(&s->mu);
		return FT_OK;
	}
	ft_sampler_release(&q->sampler);
	free(q->prompt);
	free(q->emb_sum);
	free(q);
	return rc;
}

void ft_srv_cancel(struct ft_srv *s, uint64_t id)
{
	pthread_mutex_lock(&s->mu);
	for (int i = 0; i < s->n_seqs; i++)
		if (s->seqs[i]->id == id)
			s->seqs[i]->cancelled = true;
	pthread_cond_signal(&s->cv);
	pthread_mutex_unlock(&s->mu);
}

/* ---- adapters ---- */

enum ft_rc ft_srv_adapter_load(struct ft_srv *s, const char *name, const char *dir,
			       struct ft_err *err)
{
	if (!name || !*name || strlen(name) >= sizeof(s->ads[0].name)) {
		ft_failf(err, FT_EINVAL, "invalid_value",
			 "an adapter needs a name of 1 to 127 bytes");
		ft_err_param(err, "lora_name");
		return FT_EINVAL;
	}
	pthread_mutex_lock(&s->mu);
	if (find_adapter(s, name)) {
		pthread_mutex_unlock(&s->mu);
		ft_failf(err, FT_ECONFLICT, "adapter_exists", "an adapter \"%s\" is loaded already",
			 name);
		ft_err_param(err, "lora_name");
		return FT_ECONFLICT;
	}
	struct adapter *victim = NULL, *e = free_entry(s);
	if (!e) { /* the least recently used, unused one */
		for (int a = 0; a < s->o.max_adapters; a++)
			if (s->ads[a].users == 0 &&
			    (!victim || s->ads[a].last_used < victim->last_used))
				victim = &s->ads[a];
		if (!victim) {
			pthread_mutex_unlock(&s->mu);
			return ft_failf(err, FT_ELIMIT, "server_busy",
					"all %d adapter places are in use by running requests",
					s->o.max_adapters);
		}
		pthread_mutex_lock(&s->model_mu);
		ft_model_adapter_unload(s->model, victim->slot);
		pthread_mutex_unlock(&s->model_mu);
		forget_adapter(s, victim->slot);
		memset(victim, 0, sizeof(*victim));
		s->n_ads--;
		e = victim;
	}
	int slot;
	pthread_mutex_lock(&s->model_mu); /* not during a step */
	enum ft_rc rc = ft_model_adapter_load_peft(s->model, dir, &slot, err);
	pthread_mutex_unlock(&s->model_mu);
	if (!rc) {
		memset(e, 0, sizeof(*e));
		ft_strlcpy(e->name, name, sizeof e->name);
		e->slot = slot;
		e->last_used = s->step_no;
		s->n_ads++;
	}
	pthread_mutex_unlock(&s->mu);
	return rc;
}

enum ft_rc ft_srv_adapter_unload(struct ft_srv *s, const char *name, struct ft_err *err)
{
	pthread_mutex_lock(&s->mu);
	struct adapter *a = find_adapter(s, name);
	enum ft_rc rc = FT_OK;
	if (!a) {
		ft_failf(err, FT_ENOTFOUND, "model_not_found", "no adapter \"%s\" is loaded", name);
		ft_err_param(err, "lora_name");
		rc = FT_ENOTFOUND;
	} else if (a->users) {
		rc = ft_failf(err, FT_ECONFLICT, "adapter_busy",
			      "adapter \"%s\" is in use by %d running requests", name, a->users);
	} else {
		pthread_mutex_lock(&s->model_mu);
		ft_model_adapter_unload(s->model, a->slot);
		pthread_mutex_unlock(&s->model_mu);
		forget_adapter(s, a->slot);
		memset(a, 0, sizeof(*a));
		s->n_ads--;
	}
	pthread_mutex_unlock(&s->mu);
	return rc;
}

int ft_srv_adapters(struct ft_srv *s, char (*names)[128], int max)
{
	pthread_mutex_lock(&s->mu);
	int n = 0;
	for (int a = 0; a < s->o.max_adapters; a++)
		if (s->ads[a].name[0] && n++ < max)
			ft_strlcpy(names[n - 1], s->ads[a].name, 128);
	pthread_mutex_unlock(&s->mu);
	return n;
}

bool ft_srv_has_adapter(struct ft_srv *s, const char *name)
{
	pthread_mutex_lock(&s->mu);
	bool has = find_adapter(s, name) != NULL;
	pthread_mutex_unlock(&s->mu);
	return has;
}

void ft_srv_stats(struct ft_srv *s, struct ft_srv_stats *out)
{
	pthread_mutex_lock(&s->mu);
	*out = s->st;
	out->queued = out->running = 0;
	out->kv_positions_used = 0;
	for (int i = 0; i < s->n_seqs; i++) {
		const struct seq *q = s->seqs[i];
		if (!q->active)
			continue;
		if (q->started) {
			out->running++;
			out->kv_positions_used += ft_kv_cache_len(s->kv, q->kv_slot);
		} else {
			out->queued++;
		}
	}
	pthread_mutex_unlock(&s->mu);
}
