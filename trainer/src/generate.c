/*
 * generate.c - text generation with a KV cache: greedy, or sampling with a
 * temperature and top-p (nucleus), with or without LoRA adapters.
 *
 * The prompt runs as one batch through the model's forward; its keys and
 * values (after RoPE) fill the first rows of each layer's cache. Each new
 * token then runs the decoder on one row: its k and v are appended to the
 * cache and its query attends to positions 0..pos of it (and, with a
 * sliding window W, to the last W only).
 * Sampling: p = softmax(logits / temperature); keep the most probable tokens
 * whose cumulative probability first reaches top_p (at least one),
 * renormalise and draw with the generation seed (xoshiro256**, rng.c).
 *
 * Memory: the cache and the decoder's work rows are backend memory; the
 * host uploads each new token and its position, and downloads one row of
 * logits per token (on the CPU the row is read in place).
 */
#include "ft/generate.h"
#include "model_int.h"
#include "rng_int.h"

#include <math.h>

struct kv {
	float *k, *v; /* [layers][max_len][nkv*hd] */
};

/* One linear on one row, with its LoRA path when enabled. */
static void lin1(struct ft_model *m, int l, enum ft_linear k, float *out, const float *in,
		 float *tmp)
{
	int IC, OC;
	ft_model_linear_dims(&m->cfg, k, &IC, &OC);
	struct ft_layer *L = &m->layers[l];
	ft_model_linear_base(m, l, k, out, in, 1);
	if (L->lora_a[k] && m->lora_on) {
		m->be->matmul_fwd(tmp, in, L->lora_a[k], NULL, 1, IC, m->lora.r, false);
		m->be->scale(tmp, (size_t)m->lora.r, m->lora_s);
		m->be->matmul_fwd(out, tmp, L->lora_b[k], NULL, 1, m->lora.r, OC, true);
	}
}

struct work {
	float *x, *ln, *q, *k, *v, *att, *mid, *gate, *up, *h, *tmp, *logits, *scores, *rstd;
	int32_t *tok; /* [2]: the token and its position */
};

static void decode_step(struct ft_model *m, struct kv *cache, int max_len, int32_t token,
			int32_t pos, struct work *w)
{
	const struct ft_model_config *c = &m->cfg;
	const struct ft_backend *be = m->be;
	int C = c->hidden_size, I = c->intermediate_size, nh = c->num_heads;
	int nkv = c->num_kv_heads, hd = c->head_dim, kd = nkv * hd;
	int32_t tp[2] = { token, pos };
	be->upload(w->tok, tp, sizeof tp);
	const int32_t *dpos = w->tok + 1;
	be->embedding_fwd(w->x, w->tok, m->wte, 1, C);
	for (int l = 0; l < c->num_layers; l++) {
		struct ft_layer *L = &m->layers[l];
		float *kc = cache->k + (size_t)l * max_len * kd;
		float *vc = cache->v + (size_t)l * max_len * kd;
		be->rmsnorm_fwd(w->ln, w->rstd, w->x, L->ln1, 1, C, (float)c->rms_norm_eps);
		lin1(m, l, FT_LIN_Q, w->q, w->ln, w->tmp);
		lin1(m, l, FT_LIN_K, kc + (size_t)pos * kd, w->ln, w->tmp);
		lin1(m, l, FT_LIN_V, vc + (size_t)pos * kd, w->ln, w->tmp);
		be->rope_fwd(w->q, m->rope_cos, m->rope_sin, dpos, 1, nh, hd);
		be->rope_fwd(kc + (size_t)pos * kd, m->rope_cos, m->rope_sin, dpos, 1, nkv, hd);
		int j0 = c->sliding_window > 0 ? FT_MAX(0, pos - c->sliding_window + 1) : 0;
		be->attention_decode(w->att, w->scores, w->q, kc, vc, j0, pos, nh, nkv, hd);
		lin1(m, l, FT_LIN_O, w->mid, w->att, w->tmp);
		be->add(w->mid, w->x, (size_t)C);
		be->rmsnorm_fwd(w->ln, w->rstd, w->mid, L->ln2, 1, C, (float)c->rms_norm_eps);
		lin1(m, l, FT_LIN_GATE, w->gate, w->ln, w->tmp);
		lin1(m, l, FT_LIN_UP, w->up, w->ln, w->tmp);
		be->swiglu_fwd(w->h, w->gate, w->up, (size_t)I);
		lin1(m, l, FT_LIN_DOWN, w->x, w->h, w->tmp);
		be->add(w->x, w->mid, (size_t)C);
	}
	be->rmsnorm_fwd(w->ln, w->rstd, w->x, m->norm, 1, C, (float)c->rms_norm_eps);
	be->matmul_fwd(w->logits, w->ln, m->lm_head, NULL, 1, C, c->vocab_size, false);
}

struct cand {
	float p;
	int32_t id;
};

static int cand_cmp(const void *a, const void *b)
{
	const struct cand *x = a, *y = b;
	if (x->p != y->p)
		return x->p > y->p ? -1 : 1;
	return x->id - y->id;
}

static int32_t pick(const float *logits, int V, const struct ft_gen_opts *o, struct ft_rng *g,
		    struct cand *cand)
{
	int best = 0;
	for (int v = 1; v < V; v++)
		if (logits[v] > logits[best])
			best = v;
	if (o->temperature <= 0)
		return best;
	double sum = 0;
	for (int v = 0; v < V; v++) {
		cand[v].p = expf((logits[v] - logits[best]) / (float)o->temperature);
		cand[v].id = v;
		sum += cand[v].p;
	}
	qsort(cand, (size_t)V, sizeof(*cand), cand_cmp);
	double top = o->top_p > 0 && o->top_p < 1 ? o->top_p : 1.0, cum = 0;
	int keep = 0;
	while (keep < V) {
		cum += cand[keep].p / sum;
		keep++;
		if (cum >= top)
			break;
	}
	double r = ft_rng_uniform(g) * cum, acc = 0;
	for (int i = 0; i < keep; i++) {
		acc += cand[i].p / sum;
		if (r < acc)
			return cand[i].id;
	}
	return cand[keep - 1].id;
}

enum ft_rc ft_generate(struct ft_model *m, const int32_t *prompt, size_t n_prompt,
		       const struct ft_gen_opts *o, struct ft_ids_out *out, struct ft_err *err)
{
	const struct ft_model_config *c = &m->cfg;
	const struct ft_backend *be = m->be;
	int kd = c->num_kv_heads * c->head_dim, V = c->vocab_size;
	long max_len = (long)n_prompt + o->max_new_tokens;
	if (n_prompt == 0)
		return ft_failf(err, FT_EINVAL, NULL, "the prompt is empty");
	if (max_len > m->rope_max)
		return ft_failf(err, FT_EINVAL, NULL,
				"prompt (%zu tokens) plus max_new_tokens (%d) exceed the model's "
				"%d positions",
				n_prompt, o->max_new_tokens, m->rope_max);
	for (size_t i = 0; i < n_prompt; i++)
		if (prompt[i] < 0 || prompt[i] >= V)
			return ft_failf(err, FT_EINVAL, NULL,
					"prompt token %d is outside the vocabulary (size %d)",
					prompt[i], V);
	struct kv cache;
	size_t csz = (size_t)c->num_layers * max_len * kd;
	cache.k = be->alloc(csz * sizeof(float));
	cache.v = be->alloc(csz * sizeof(float));
	size_t ws = (size_t)c->hidden_size * 4 + (size_t)c->num_heads * c->head_dim * 2 +
		    (size_t)kd * 2 + (size_t)c->intermediate_size * 3 + 4096 + (size_t)V +
		    (size_t)max_len + 1;
	float *wmem = be->alloc(ws * sizeof(float));
	int32_t *tok = be->alloc(2 * sizeof(int32_t));
	/* the host's copy of one row of logits (not needed on the CPU) */
	float *hlog = be->host_memory ? NULL : malloc(sizeof(float) * (size_t)V);
	struct cand *cand = malloc(sizeof(*cand) * (size_t)V);
	out->ids = malloc(sizeof(int32_t) * (size_t)(o->max_new_tokens + 1));
	out->n = 0;
	enum ft_rc rc = FT_OK;
	if (!cache.k || !cache.v || !wmem || !tok || (!be->host_memory && !hlog) || !cand ||
	    !out->ids) {
		rc = ft_failf(err, FT_ENOMEM, NULL, "out of memory for generation");
		goto free_all;
	}
	struct work w;
	float *p = wmem;
	w.x = p, p += c->hidden_size;
	w.ln = p, p += c->hidden_size;
	w.mid = p, p += c->hidden_size;
	w.q = p, p += (size_t)c->num_heads * c->head_dim;
	w.att = p, p += (size_t)c->num_heads * c->head_dim;
	w.k = p, p += kd;
	w.v = p, p += kd;
	w.gate = p, p += c->intermediate_size;
	w.up = p, p += c->intermediate_size;
	w.h = p, p += c->intermediate_size;
	w.tmp = p, p += 4096;
	w.logits = p, p += V;
	w.rstd = p, p += 1;
	w.scores = p;
	w.tok = tok;
	if (m->has_lora && m->lora.r > 4096) {
		rc = ft_failf(err, FT_EINVAL, NULL, "LoRA rank too large for generation");
		goto free_all;
	}
	struct ft_rng g;
	ft_rng_seed(&g, o->seed);
	/* prefill: one forward over the prompt; its k, v (after RoPE) are the
	 * first rows of the cache and its last logits pick the first token */
	struct ft_batch pb = { 1, (int)n_prompt, prompt, NULL, NULL, NULL };
	if ((rc = ft_model_forward(m, &pb, 0.0f, 0, NULL, err)))
		goto free_all;
	for (int l = 0; l < c->num_layers; l++) {
		be->copy(cache.k + (size_t)l * max_len * kd, m->acts[l].k,
			 sizeof(float) * n_prompt * (size_t)kd);
		be->copy(cache.v + (size_t)l * max_len * kd, m->acts[l].v,
			 sizeof(float) * n_prompt * (size_t)kd);
	}
	be->copy(w.logits, m->logits + (n_prompt - 1) * (size_t)V, sizeof(float) * (size_t)V);
	/* the host reads the logits row in place on the CPU, else a download */
	const float *row = be->host_memory ? w.logits : hlog;
	int32_t pos = (int32_t)n_prompt;
	for (int t = 0; t < o->max_new_tokens; t++) {
		if (!be->host_memory)
			be->download(hlog, w.logits, sizeof(float) * (size_t)V);
		int32_t next = pick(row, V, o, &g, cand);
		out->ids[out->n++] = next;
		bool eos = false;
		for (int e = 0; e < c->n_eos; e++)
			eos |= next == c->eos_token_ids[e];
		if (eos || t + 1 == o->max_new_tokens)
			break;
		decode_step(m, &cache, (int)max_len, next, pos++, &w);
	}
free_all:
	be->free(cache.k);
	be->free(cache.v);
	be->free(wmem);
	be->free(tok);
	free(hlog);
	free(cand);
	if (rc) {
		free(out->ids);
		out->ids = NULL;
		out->n = 0;
	}
	return rc;
}
