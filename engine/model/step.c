/*
 * step.c - cached inference: the KV cache and ft_model_step, which runs a
 * batch of token rows from many sequences through THE layer forward
 * (model.c ft_model_layer_fwd) with each row attending to its own
 * sequence's cached keys and values.
 *
 * For row i (token x of the sequence in slot s at position p), per layer l:
 *   k_i, v_i  = the layer's k and v projections of the row, after RoPE
 *   K[l][s][p] = k_i, V[l][s][p] = v_i                    (stored first)
 *   att_i     = softmax(q_i K[l][s][j0..p]^T / sqrt(hd)) V[l][s][j0..p]
 *               (j0 = p - window + 1 with a sliding window, else 0)
 * Every row's k, v are stored before any row attends, so rows of the same
 * sequence in one step see each other causally (a prompt prefilled in one
 * step). A run of rows at positions 0, 1, ..., n-1 of one slot attends
 * within itself with the batched attention op (the training forward's),
 * which is the same softmax over the same keys; other rows use the decode
 * op against the cache. The rest of the layer (norms, projections with each
 * row's adapter, SwiGLU, residuals) is the training forward's code.
 *
 * Cache layout (backend memory): k and v [layers][n_slots][max_len][nkv*hd]
 * floats; the length of each slot is kept on the host.
 *
 * Work rows: one set of activations shared by every layer (nothing is kept
 * for a backward), two residual buffers used in turn as a layer's input and
 * output, sized for the largest step seen (model_int.h struct ft_step_work).
 */
#include "model_int.h"

struct ft_kv_cache {
	const struct ft_backend *be;
	int n_slots, max_len, layers, kd;
	float *k, *v;
	int *len;
};

size_t ft_kv_cache_size(const struct ft_model_config *c, int n_slots, int max_len)
{
	return 2 * sizeof(float) * (size_t)c->num_layers * (size_t)n_slots * (size_t)max_len *
	       (size_t)c->num_kv_heads * (size_t)c->head_dim;
}

enum ft_rc ft_kv_cache_new(const struct ft_model *m, int n_slots, int max_len,
			   struct ft_kv_cache **out, struct ft_err *err)
{
	const struct ft_model_config *c = &m->cfg;
	if (n_slots < 1 || max_len < 1)
		return ft_failf(err, FT_EINVAL, NULL,
				"a KV cache needs at least one slot of one position (got %d x %d)",
				n_slots, max_len);
	if (max_len > m->rope_max)
		return ft_failf(err, FT_EINVAL, NULL,
				"a KV cache of %d positions is longer than the model's %d", max_len,
				m->rope_max);
	struct ft_kv_cache *kv = calloc(1, sizeof(*kv));
	size_t half = ft_kv_cache_size(c, n_slots, max_len) / 2;
	if (kv) {
		kv->be = m->be;
		kv->n_slots = n_slots;
		kv->max_len = max_len;
		kv->layers = c->num_layers;
		kv->kd = c->num_kv_heads * c->head_dim;
		kv->k = m->be->alloc(half);
		kv->v = m->be->alloc(half);
		kv->len = calloc((size_t)n_slots, sizeof(int));
	}
	if (!kv || !kv->k || !kv->v || !kv->len) {
		ft_kv_cache_free(kv);
		return ft_failf(err, FT_ENOMEM, NULL, "out of memory for a KV cache of %.1f MB",
				2 * half * 1e-6);
	}
	*out = kv;
	return FT_OK;
}

void ft_kv_cache_free(struct ft_kv_cache *kv)
{
	if (!kv)
		return;
	kv->be->free(kv->k);
	kv->be->free(kv->v);
	free(kv->len);
	free(kv);
}

void ft_kv_cache_reset(struct ft_kv_cache *kv, int slot)
{
	if (slot >= 0 && slot < kv->n_slots)
		kv->len[slot] = 0;
}

void ft_kv_cache_truncate(struct ft_kv_cache *kv, int slot, int len)
{
	if (slot >= 0 && slot < kv->n_slots && len >= 0 && len < kv->len[slot])
		kv->len[slot] = len;
}

/* Start of slot s of layer l in a cache tensor. */
static float *slot_rows(const struct ft_kv_cache *kv, float *t, int l, int s)
{
	return t + ((size_t)l * kv->n_slots + (size_t)s) * kv->max_len * kv->kd;
}

void ft_kv_cache_copy(struct ft_kv_cache *kv, int dst, int src, int len)
{
	if (dst < 0 || dst >= kv->n_slots || src < 0 || src >= kv->n_slots || dst == src ||
	    len < 0 || len > kv->len[src])
		return;
	size_t bytes = (size_t)len * (size_t)kv->kd * sizeof(float);
	for (int l = 0; l < kv->layers && bytes > 0; l++) {
		kv->be->copy(slot_rows(kv, kv->k, l, dst), slot_rows(kv, kv->k, l, src), bytes);
		kv->be->copy(slot_rows(kv, kv->v, l, dst), slot_rows(kv, kv->v, l, src), bytes);
	}
	kv->len[dst] = len;
}

int ft_kv_cache_len(const struct ft_kv_cache *kv, int slot)
{
	return slot >= 0 && slot < kv->n_slots ? kv->len[slot] : 0;
}

size_t ft_kv_cache_bytes(const struct ft_kv_cache *kv)
{
	return 2 * sizeof(float) * (size_t)kv->layers * (size_t)kv->n_slots * (size_t)kv->max_len *
	       (size_t)kv->kd;
}

void ft_model_attend_cached(struct ft_model *m, int l, const struct ft_layer_run *run)
{
	const struct ft_model_config *c = &m->cfg;
	const struct ft_backend *be = m->be;
	struct ft_kv_cache *kv = run->kv;
	const struct ft_step *s = run->step;
	struct ft_layer_act *a = run->a;
	int nh = c->num_heads, nkv = c->num_kv_heads, hd = c->head_dim, W = c->sliding_window;
	size_t kd = (size_t)kv->kd, qd = (size_t)nh * hd;
	for (int i = 0; i < s->n; i++) {
		size_t at = (size_t)s->pos[i] * kd;
		be->copy(slot_rows(kv, kv->k, l, s->slot[i]) + at, a->k + i * kd,
			 kd * sizeof(float));
		be->copy(slot_rows(kv, kv->v, l, s->slot[i]) + at, a->v + i * kd,
			 kd * sizeof(float));
	}
	/* decode rows go to attention_decode_rows together (their results do
	 * not depend on it): their indices, caches and ranges collected here */
	int nd = 0, *di = m->step.dec_idx, *dj0 = m->step.dec_j0, *dpos = m->step.dec_pos;
	const float **dk = m->step.dec_k, **dv = m->step.dec_v;
	for (int i = 0, j; i < s->n; i = j) {
		j = i + 1;
		if (s->pos[i] == 0) /* a sequence starts here: rows 0, 1, ... of one slot */
			while (j < s->n && s->slot[j] == s->slot[i] &&
			       s->pos[j] == s->pos[j - 1] + 1)
				j++;
		if (j - i > 1) {
			be->attention_fwd(a->att + i * qd, a->lse, a->q + i * qd, a->k + i * kd,
					  a->v + i * kd, m->step.zeros, W, 1, j - i, nh, nkv, hd);
			continue;
		}
		int p = s->pos[i], j0 = W > 0 ? FT_MAX(0, p - W + 1) : 0;
		if (!be->attention_decode_rows) {
			be->attention_decode(a->att + i * qd, m->step.scores, a->q + i * qd,
					     slot_rows(kv, kv->k, l, s->slot[i]),
					     slot_rows(kv, kv->v, l, s->slot[i]), j0, p, nh, nkv,
					     hd);
			continue;
		}
		di[nd] = i, dj0[nd] = j0, dpos[nd] = p;
		dk[nd] = slot_rows(kv, kv->k, l, s->slot[i]);
		dv[nd] = slot_rows(kv, kv->v, l, s->slot[i]);
		nd++;
	}
	if (nd == 0)
		return;
	/* the rows are consecutive in most steps (all decoding); else gathered */
	bool contiguous = di[nd - 1] - di[0] == nd - 1;
	float *qg = contiguous ? a->q + di[0] * qd : m->step.dec_q;
	float *og = contiguous ? a->att + di[0] * qd : m->step.dec_out;
	if (!contiguous)
		for (int r = 0; r < nd; r++)
			be->copy(qg + r * qd, a->q + di[r] * qd, qd * sizeof(float));
	be->attention_decode_rows(nd, og, qg, dk, dv, dj0, dpos, nh, nkv, hd);
	if (!contiguous)
		for (int r = 0; r < nd; r++)
			be->copy(a->att + di[r] * qd, og + r * qd, qd * sizeof(float));
}

void ft_model_step_free(struct ft_model *m)
{
	struct ft_step_work *w = &m->step;
	const struct ft_backend *be = m->be;
	be->free(w->mem);
	be->free(w->logits);
	be->free(w->ids);
	be->free(w->pos);
	be->free(w->zeros);
	free(w->ids_h);
	free(w->pos_h);
	free(w->dec_idx);
	free(w->dec_j0);
	free(w->dec_pos);
	free(w->dec_k);
	free(w->dec_v);
	memset(w, 0, sizeof(*w));
}

/* Work rows for n rows against caches of up to max_len positions, and
 * logits for n_logits rows. */
static enum ft_rc ensure_step(struct ft_model *m, int n, int max_len, int n_logits,
			      struct ft_err *err)
{
	const struct ft_model_config *c = &m->cfg;
	const struct ft_backend *be = m->be;
	struct ft_step_work *w = &m->step;
	if (w->cap < n || w->scores_cap < max_len + 1) {
		int cap = FT_MAX(n, w->cap), scap = FT_MAX(max_len + 1, w->scores_cap);
		ft_model_step_free(m);
		size_t N = (size_t)cap, C = c->hidden_size, I = c->intermediate_size;
		size_t qd = (size_t)c->num_heads * c->head_dim;
		size_t kd = (size_t)c->num_kv_heads * c->head_dim;
		size_t r = (size_t)FT_MAX(m->max_r, 1);
		size_t per_row = 7 * C + 3 + 4 * qd + 2 * kd + c->num_heads + 3 * I + C + r;
		w->mem = be->alloc((N * per_row + (size_t)scap) * sizeof(float));
		w->ids = be->alloc(N * sizeof(int32_t));
		w->pos = be->alloc(N * sizeof(int32_t));
		w->zeros = ft_dev_calloc(be, N * sizeof(int32_t));
		bool ok = w->mem && w->ids && w->pos && w->zeros;
		if (ok && !be->host_memory)
			ok = (w->ids_h = malloc(N * sizeof(int32_t))) &&
			     (w->pos_h = malloc(N * sizeof(int32_t)));
		ok = ok && (w->dec_idx = malloc(N * sizeof(int))) &&
		     (w->dec_j0 = malloc(N * sizeof(int))) &&
		     (w->dec_pos = malloc(N * sizeof(int))) &&
		     (w->dec_k = malloc(N * sizeof(float *))) &&
		     (w->dec_v = malloc(N * sizeof(float *)));
		if (!ok) {
			ft_model_step_free(m);
			return ft_failf(err, FT_ENOMEM, NULL, "out of memory for a step of %d rows",
					cap);
		}
		float *p = w->mem;
#define TAKE(field, count) (w->field = p, p += (count))
		TAKE(act.res, N * C);
		TAKE(res2, N * C);
		TAKE(act.ln1, N * C);
		TAKE(act.rstd1, N);
		TAKE(act.q, N * qd);
		TAKE(act.k, N * kd);
		TAKE(act.v, N * kd);
		TAKE(act.lse, N * c->num_heads);
		TAKE(act.att, N * qd);
		TAKE(act.mid, N * C);
		TAKE(act.ln2, N * C);
		TAKE(act.rstd2, N);
		TAKE(act.gate, N * I);
		TAKE(act.up, N * I);
		TAKE(act.h, N * I);
		TAKE(lnf, N * C);
		TAKE(rstdf, N);
		TAKE(gathered, N * C);
		TAKE(lora_u, N * r);
		TAKE(dec_q, N * qd);
		TAKE(dec_out, N * qd);
		TAKE(scores, (size_t)scap);
#undef TAKE
		w->cap = cap;
		w->scores_cap = scap;
	}
	if (w->logits_cap < n_logits) {
		be->free(w->logits);
		w->logits = be->alloc((size_t)n_logits * c->vocab_size * sizeof(float));
		w->logits_cap = w->logits ? n_logits : 0;
		if (!w->logits)
			return ft_failf(err, FT_ENOMEM, NULL,
					"out of memory for the logits of %d rows (%.1f MB)",
					n_logits, (double)n_logits * c->vocab_size * 4e-6);
	}
	return FT_OK;
}

/* Every row's token, slot, position and adapter are checked before
 * anything runs; the slots' lengths are then advanced row by row. */
static enum ft_rc check_step(const struct ft_model *m, const struct ft_kv_cache *kv,
			     const struct ft_step *s, int *len, struct ft_err *err)
{
	const struct ft_model_config *c = &m->cfg;
	if (s->n < 1)
		return ft_failf(err, FT_EINVAL, NULL, "a step needs at least one row");
	if (kv->layers != c->num_layers || kv->kd != c->num_kv_heads * c->head_dim)
		return ft_failf(err, FT_EINVAL, NULL, "the KV cache was made for another model");
	memcpy(len, kv->len, sizeof(int) * (size_t)kv->n_slots);
	for (int i = 0; i < s->n; i++) {
		int id = s->ids[i], sl = s->slot[i], p = s->pos[i];
		if (id < 0 || id >= c->vocab_size)
			return ft_failf(err, FT_EINVAL, NULL,
					"token id %d is outside the vocabulary (size %d)", id,
					c->vocab_size);
		if (sl < 0 || sl >= kv->n_slots)
			return ft_failf(err, FT_EINVAL, NULL, "row %d: no cache slot %d (of %d)", i,
					sl, kv->n_slots);
		if (p < 0 || p >= kv->max_len)
			return ft_failf(err, FT_EINVAL, NULL,
					"row %d: position %d is beyond the cache's %d positions", i,
					p, kv->max_len);
		if (p > len[sl])
			return ft_failf(err, FT_EINVAL, NULL,
					"row %d: position %d of slot %d follows a gap (the slot "
					"holds %d positions)",
					i, p, sl, len[sl]);
		len[sl] = p + 1;
		if (s->adapter && s->adapter[i] >= 0 &&
		    (s->adapter[i] >= m->n_ads || !m->ads[s->adapter[i]]))
			return ft_failf(err, FT_EINVAL, NULL, "row %d: no adapter in slot %d", i,
					s->adapter[i]);
	}
	for (int i = 0; s->logits_rows && i < s->n_logits; i++)
		if (s->logits_rows[i] < 0 || s->logits_rows[i] >= s->n)
			return ft_failf(err, FT_EINVAL, NULL,
					"logits row %d is not a row of the step",
					s->logits_rows[i]);
	return FT_OK;
}

/* The step's int arrays as the ops read them (the host arrays on the CPU). */
static const int32_t *step_ints(const struct ft_model *m, int32_t *dev, const int32_t *src, int n)
{
	if (m->be->host_memory)
		return src;
	m->be->upload(dev, src, (size_t)n * sizeof(int32_t));
	return dev;
}

enum ft_rc ft_model_step(struct ft_model *m, struct ft_kv_cache *kv, const struct ft_step *s,
			 struct ft_err *err)
{
	const struct ft_model_config *c = &m->cfg;
	const struct ft_backend *be = m->be;
	int n = s->n, C = c->hidden_size;
	int n_logits = s->logits_rows ? s->n_logits : n;
	int *len = malloc(sizeof(int) * (size_t)kv->n_slots);
	if (!len)
		return ft_failf(err, FT_ENOMEM, NULL, "out of memory");
	enum ft_rc rc = check_step(m, kv, s, len, err);
	if (!rc)
		rc = ensure_step(m, n, kv->max_len, FT_MAX(n_logits, 1), err);
	if (rc) {
		free(len);
		return rc;
	}
	struct ft_step_work *w = &m->step;
	const int32_t *ids = step_ints(m, w->ids, s->ids, n);
	const int32_t *pos = step_ints(m, w->pos, s->pos, n);
	float *x = w->act.res, *y = w->res2;
	be->embedding_fwd(x, ids, m->wte, n, C);
	for (int l = 0; l < c->num_layers; l++) {
		struct ft_layer_act a = w->act;
		a.res = x;
		struct ft_layer_run run = { 0 };
		run.a = &a;
		run.next = y;
		run.N = n;
		run.pos = pos;
		run.kv = kv;
		run.step = s;
		run.row_ad = s->adapter;
		run.lora_u = w->lora_u;
		ft_model_layer_fwd(m, l, &run);
		float *t = x;
		x = y;
		y = t;
	}
	memcpy(kv->len, len, sizeof(int) * (size_t)kv->n_slots);
	free(len);
	be->rmsnorm_fwd(w->lnf, w->rstdf, x, m->norm, n, C, (float)c->rms_norm_eps);
	const float *src = w->lnf;
	if (s->logits_rows) {
		for (int i = 0; i < n_logits; i++)
			be->copy(w->gathered + (size_t)i * C,
				 w->lnf + (size_t)s->logits_rows[i] * C, sizeof(float) * (size_t)C);
		src = w->gathered;
	}
	if (n_logits > 0 && m->lm_head_pw)
		be->matmul_pw_fwd(w->logits, src, m->lm_head_pw, NULL, n_logits, C, c->vocab_size);
	else if (n_logits > 0)
		be->matmul_fwd(w->logits, src, m->lm_head, NULL, n_logits, C, c->vocab_size, false);
	w->n_logits = n_logits;
	return FT_OK;
}

const float *ft_model_step_logits(const struct ft_model *m)
{
	return m->step.logits;
}

const float *ft_model_step_hidden(const struct ft_model *m)
{
	return m->step.lnf;
}
