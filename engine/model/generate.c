/*
 * generate.c - text generation with a KV cache: greedy, or sampling with a
 * temperature and top-p (nucleus), with or without LoRA adapters.
 *
 * Generation is the model's cached step (step.c), one cache slot per
 * sequence: a prompt is prefilled in one step of its rows (they attend
 * within themselves as in training, and fill the cache), then each new token
 * is one row that attends to the positions before it (with a sliding window
 * W, to the last W only). The decoder layer is the training forward's own.
 * A batch runs many sequences together: prefill steps of whole prompts (up
 * to PREFILL_ROWS rows), then one step per token with a row for every
 * unfinished sequence, so the weights are read once per step for all of
 * them. The step's rows do not interact (the GEMM sums each output in a
 * fixed order whatever the number of rows), so each sequence gets exactly
 * the tokens it gets alone; ft_generate is a batch of one.
 * The next token: ft/sample.h (greedy, or temperature and top-p), one
 * sampler per sequence seeded with the generation seed plus the sequence's
 * index in the batch.
 *
 * Memory: the cache (a wave of at most max_batch sequences) and the work
 * rows are backend memory; the host uploads each step's tokens and
 * positions, and downloads one row of logits per token (on the CPU the row
 * is read in place).
 */
#include "ft/generate.h"
#include "ft/sample.h"
#include "model_int.h"

#include <math.h>

/* A prefill step takes whole prompts, in order, up to this many rows (at
 * least one prompt, however long). */
#define PREFILL_ROWS 2048

static enum ft_rc check_prompts(const struct ft_model *m, const struct ft_gen_prompt *p, size_t n,
				const struct ft_gen_opts *o, struct ft_err *err)
{
	int V = m->cfg.vocab_size;
	for (size_t k = 0; k < n; k++) {
		char who[48] = "";
		if (n > 1)
			snprintf(who, sizeof(who), "prompt %zu: ", k + 1);
		if (p[k].n == 0)
			return ft_failf(err, FT_EINVAL, NULL, "%sthe prompt is empty", who);
		if ((long)p[k].n + o->max_new_tokens > m->rope_max)
			return ft_failf(err, FT_EINVAL, NULL,
					"%sprompt (%zu tokens) plus max_new_tokens (%d) exceed the "
					"model's %d positions",
					who, p[k].n, o->max_new_tokens, m->rope_max);
		for (size_t i = 0; i < p[k].n; i++)
			if (p[k].ids[i] < 0 || p[k].ids[i] >= V)
				return ft_failf(
					err, FT_EINVAL, NULL,
					"%sprompt token %d is outside the vocabulary (size %d)",
					who, p[k].ids[i], V);
	}
	return FT_OK;
}

/* One wave: sequences p[0..nb) in cache slots 0..nb-1; g[k] their RNGs. */
struct wave {
	const struct ft_gen_prompt *p;
	const int32_t *adapter; /* per sequence, or NULL */
	struct ft_ids_out *out;
	struct ft_sampler *sm;
	bool *done;
	int nb;
	/* step rows (host) */
	int32_t *ids, *pos, *slot, *ad, *lrow, *seq;
	float *hlog; /* one row of logits on the host (NULL on the CPU) */
};

/* Read the step's logits row r and pick sequence k's next token. */
static void take_token(struct ft_model *m, struct wave *w, int r, int k,
		       const struct ft_gen_opts *o)
{
	int V = m->cfg.vocab_size;
	const float *row = ft_model_step_logits(m) + (size_t)r * V;
	if (!m->be->host_memory) {
		m->be->download(w->hlog, row, sizeof(float) * (size_t)V);
		row = w->hlog;
	}
	struct ft_sample_out so;
	ft_sample(&w->sm[k], row, &so);
	int32_t next = so.id;
	struct ft_ids_out *out = &w->out[k];
	out->ids[out->n++] = next;
	bool eos = false;
	for (int e = 0; e < m->cfg.n_eos; e++)
		eos |= next == m->cfg.eos_token_ids[e];
	w->done[k] = eos || (int)out->n == o->max_new_tokens;
}

static enum ft_rc run_wave(struct ft_model *m, struct ft_kv_cache *kv, struct wave *w,
			   const struct ft_gen_opts *o, struct ft_err *err)
{
	enum ft_rc rc;
	/* prefill: whole prompts, as many as fit in PREFILL_ROWS rows per step;
	 * each prompt's rows are positions 0.. of its slot, so they attend within
	 * themselves as in training; the last row's logits pick the first token */
	for (int k0 = 0, k1; k0 < w->nb; k0 = k1) {
		size_t rows = w->p[k0].n;
		for (k1 = k0 + 1; k1 < w->nb && rows + w->p[k1].n <= PREFILL_ROWS; k1++)
			rows += w->p[k1].n;
		int32_t *ids = malloc(sizeof(int32_t) * 4 * rows);
		if (!ids)
			return ft_failf(err, FT_ENOMEM, NULL, "out of memory for generation");
		int32_t *pos = ids + rows, *slot = pos + rows, *ad = slot + rows;
		size_t r = 0;
		for (int k = k0; k < k1; k++) {
			for (size_t i = 0; i < w->p[k].n; i++, r++) {
				ids[r] = w->p[k].ids[i];
				pos[r] = (int32_t)i;
				slot[r] = k;
				ad[r] = w->adapter ? w->adapter[k] : -1;
			}
			w->lrow[k - k0] = (int32_t)r - 1;
		}
		struct ft_step st = { (int)rows, ids,	 pos, slot, w->adapter ? ad : NULL,
				      w->lrow,	 k1 - k0 };
		rc = ft_model_step(m, kv, &st, err);
		if (!rc)
			for (int k = k0; k < k1; k++)
				take_token(m, w, k - k0, k, o);
		free(ids);
		if (rc)
			return rc;
	}
	/* decode: one row per unfinished sequence per step */
	for (;;) {
		int n = 0;
		for (int k = 0; k < w->nb; k++) {
			if (w->done[k])
				continue;
			const struct ft_ids_out *out = &w->out[k];
			w->ids[n] = out->ids[out->n - 1];
			w->pos[n] = (int32_t)(w->p[k].n + out->n - 1);
			w->slot[n] = k;
			w->ad[n] = w->adapter ? w->adapter[k] : -1;
			w->seq[n++] = k;
		}
		if (n == 0)
			return FT_OK;
		struct ft_step st = {
			n, w->ids, w->pos, w->slot, w->adapter ? w->ad : NULL, NULL, 0
		};
		if ((rc = ft_model_step(m, kv, &st, err)))
			return rc;
		for (int r = 0; r < n; r++)
			take_token(m, w, r, w->seq[r], o);
	}
}

enum ft_rc ft_generate_batch(struct ft_model *m, const struct ft_gen_prompt *p, size_t n,
			     const int32_t *adapter, int max_batch, const struct ft_gen_opts *o,
			     struct ft_ids_out *out, struct ft_err *err)
{
	const struct ft_backend *be = m->be;
	int V = m->cfg.vocab_size;
	for (size_t k = 0; k < n; k++)
		out[k] = (struct ft_ids_out){ 0 };
	if (n == 0)
		return FT_OK;
	if (o->max_new_tokens < 1)
		return ft_failf(err, FT_EINVAL, NULL, "max_new_tokens must be at least 1 (got %d)",
				o->max_new_tokens);
	enum ft_rc rc = check_prompts(m, p, n, o, err);
	if (rc)
		return rc;
	size_t B = max_batch > 0 && (size_t)max_batch < n ? (size_t)max_batch : n;
	struct wave w = { 0 };
	w.sm = calloc(B, sizeof(*w.sm));
	w.done = malloc(sizeof(*w.done) * B);
	w.ids = malloc(sizeof(int32_t) * 6 * B);
	w.hlog = be->host_memory ? NULL : malloc(sizeof(float) * (size_t)V);
	bool ok = w.sm && w.done && w.ids && (be->host_memory || w.hlog);
	for (size_t k = 0; ok && k < n; k++)
		ok = (out[k].ids = malloc(sizeof(int32_t) * (size_t)o->max_new_tokens)) != NULL;
	if (!ok) {
		rc = ft_failf(err, FT_ENOMEM, NULL, "out of memory for generation");
		goto free_all;
	}
	w.pos = w.ids + B;
	w.slot = w.pos + B;
	w.ad = w.slot + B;
	w.lrow = w.ad + B;
	w.seq = w.lrow + B;
	for (size_t k0 = 0; k0 < n && !rc; k0 += B) {
		w.nb = (int)FT_MIN(B, n - k0);
		w.p = p + k0;
		w.adapter = adapter ? adapter + k0 : NULL;
		w.out = out + k0;
		size_t longest = 0;
		struct ft_sampling sp = { .temperature = o->temperature, .top_p = o->top_p };
		for (int k = 0; k < w.nb && !rc; k++) {
			ft_sampler_release(&w.sm[k]);
			rc = ft_sampler_init(&w.sm[k], V, &sp, o->seed + k0 + (uint64_t)k, err);
			w.done[k] = false;
			longest = FT_MAX(longest, w.p[k].n);
		}
		if (rc)
			break;
		struct ft_kv_cache *kv = NULL;
		rc = ft_kv_cache_new(m, w.nb, (int)longest + o->max_new_tokens, &kv, err);
		if (!rc)
			rc = run_wave(m, kv, &w, o, err);
		ft_kv_cache_free(kv);
	}
free_all:
	for (size_t k = 0; w.sm && k < B; k++)
		ft_sampler_release(&w.sm[k]);
	free(w.sm);
	free(w.done);
	free(w.ids);
	free(w.hlog);
	if (rc)
		for (size_t k = 0; k < n; k++) {
			free(out[k].ids);
			out[k] = (struct ft_ids_out){ 0 };
		}
	return rc;
}

enum ft_rc ft_generate(struct ft_model *m, const int32_t *prompt, size_t n_prompt,
		       const struct ft_gen_opts *o, struct ft_ids_out *out, struct ft_err *err)
{
	struct ft_gen_prompt p = { prompt, n_prompt };
	return ft_generate_batch(m, &p, 1, NULL, 1, o, out, err);
}
