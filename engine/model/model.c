/*
 * model.c - the Llama-family decoder: parameters, forward, backward, LoRA.
 *
 * Forward (per token row; B*T = N rows; C hidden, I intermediate, V vocab):
 *   x_0      = wte[ids]
 *   for each layer l:
 *     a      = rmsnorm(x_l; ln1)
 *     q,k,v  = a Wq^T (+bq), a Wk^T (+bk), a Wv^T (+bv)      each + LoRA
 *     q,k    = rope(q, pos), rope(k, pos)
 *     o      = attention(q, k, v; causal, same document)      (GQA)
 *     m      = x_l + o Wo^T                                    + LoRA
 *     c      = rmsnorm(m; ln2)
 *     x_l+1  = m + (silu(c Wg^T) * (c Wu^T)) Wd^T              each + LoRA
 *   logits   = rmsnorm(x_L; norm) W_head^T    (W_head = wte when tied)
 * A LoRA-adapted linear adds  s * (dropout(x) A^T) B^T,  A [r, in], B [out, r],
 * s = alpha / r (or alpha / sqrt(r) with rsLoRA), as peft's Linear does
 * (lora.c).
 *
 * Backward walks the same steps in reverse; every backend op accumulates
 * into its gradients, so the residual stream's gradient dres is carried
 * through each rmsnorm backward (which adds the branch's contribution).
 *
 * QLoRA: the decoder linears' weights are NF4 (ft/nf4.h) in one block of
 * their own and the fp32 block holds the rest (embeddings, norms, biases,
 * lm_head); the backend's matmul_nf4 ops dequantise tiles on the fly.
 *
 * Memory, one allocation each (llm.c's malloc_and_point_parameters): base
 * weights; NF4 weights (QLoRA); base gradients (full fine-tuning only);
 * LoRA weights; LoRA gradients; activations (saved for backward, sized for the largest batch
 * seen); backward scratch. All of it is backend memory (ft/backend.h): the
 * host reaches it through the backend's upload / download / zero / copy
 * and its ops (the residual adds are the add op), never by dereferencing;
 * on the CPU (host_memory) the staging helpers hand out the memory itself.
 * Each forward uploads the batch's ids, targets, positions and doc ids.
 */
#include "ft/model.h"
#include "model_int.h"
#include "ft/rng.h"

#include <math.h>

static const char *const linear_names[FT_LIN_COUNT] = {
	"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj",
};

const char *ft_linear_name(enum ft_linear l)
{
	return l < FT_LIN_COUNT ? linear_names[l] : "?";
}

bool ft_linear_parse(const char *name, enum ft_linear *out)
{
	for (int i = 0; i < FT_LIN_COUNT; i++)
		if (strcmp(name, linear_names[i]) == 0) {
			*out = (enum ft_linear)i;
			return true;
		}
	return false;
}

const char *ft_linear_module(enum ft_linear l)
{
	return l <= FT_LIN_O ? "self_attn" : "mlp";
}

/* in / out features of a linear. */
void ft_model_linear_dims(const struct ft_model_config *c, enum ft_linear l, int *in, int *out)
{
	int C = c->hidden_size, I = c->intermediate_size;
	int qd = c->num_heads * c->head_dim, kd = c->num_kv_heads * c->head_dim;
	switch (l) {
	case FT_LIN_Q: *in = C, *out = qd; break;
	case FT_LIN_K: *in = C, *out = kd; break;
	case FT_LIN_V: *in = C, *out = kd; break;
	case FT_LIN_O: *in = qd, *out = C; break;
	case FT_LIN_GATE: *in = C, *out = I; break;
	case FT_LIN_UP: *in = C, *out = I; break;
	default: *in = I, *out = C; break;
	}
}

static bool linear_has_bias(const struct ft_model_config *c, enum ft_linear l)
{
	if (l <= FT_LIN_V)
		return c->qkv_bias;
	if (l == FT_LIN_O)
		return c->o_bias;
	return c->mlp_bias;
}

static void free_acts(struct ft_model *m);

/* ---- the parameter table: record (name, shape, slot), then one block ---- */

void ft_slot_add(struct ft_slotlist *l, float **slot, bool decay, int ndim, int64_t d0, int64_t d1,
		 const char *fmt, ...)
{
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 64;
		l->p = realloc(l->p, l->cap * sizeof(*l->p));
		l->slot = realloc(l->slot, l->cap * sizeof(*l->slot));
		FT_ASSERT(l->p && l->slot);
	}
	struct ft_param *p = &l->p[l->n];
	memset(p, 0, sizeof(*p));
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(p->name, sizeof(p->name), fmt, ap);
	va_end(ap);
	p->ndim = ndim;
	p->shape[0] = d0;
	p->shape[1] = ndim > 1 ? d1 : 0;
	p->n = (size_t)d0 * (size_t)(ndim > 1 ? d1 : 1);
	p->decay = decay;
	l->slot[l->n] = slot;
	l->total += p->n;
	l->n++;
}

/* Allocate one block and point every slot (and p->data) into it. */
float *ft_slots_point(struct ft_slotlist *l, const struct ft_backend *be)
{
	float *mem = ft_dev_calloc(be, (l->total ? l->total : 1) * sizeof(float));
	if (!mem)
		return NULL;
	size_t off = 0;
	for (size_t i = 0; i < l->n; i++) {
		l->p[i].data = mem + off;
		*l->slot[i] = mem + off;
		off += l->p[i].n;
	}
	return mem;
}

static enum ft_rc build_base(struct ft_model *m, struct ft_err *err)
{
	const struct ft_model_config *c = &m->cfg;
	struct ft_slotlist l = { 0 };
	m->layers = calloc((size_t)c->num_layers, sizeof(*m->layers));
	if (!m->layers)
		return ft_failf(err, FT_ENOMEM, NULL, "out of memory for %d layers", c->num_layers);
	ft_slot_add(&l, &m->wte, true, 2, c->vocab_size, c->hidden_size,
		    "model.embed_tokens.weight");
	for (int i = 0; i < c->num_layers; i++) {
		struct ft_layer *L = &m->layers[i];
		ft_slot_add(&l, &L->ln1, false, 1, c->hidden_size, 0,
			    "model.layers.%d.input_layernorm.weight", i);
		for (int k = 0; k < FT_LIN_COUNT; k++) {
			int in, out;
			ft_model_linear_dims(c, (enum ft_linear)k, &in, &out);
			if (!m->nf4)
				ft_slot_add(&l, &L->w[k], true, 2, out, in,
					    "model.layers.%d.%s.%s.weight", i,
					    ft_linear_module((enum ft_linear)k), linear_names[k]);
			if (linear_has_bias(c, (enum ft_linear)k))
				ft_slot_add(&l, &L->b[k], false, 1, out, 0,
					    "model.layers.%d.%s.%s.bias", i,
					    ft_linear_module((enum ft_linear)k), linear_names[k]);
			if (k == FT_LIN_O)
				ft_slot_add(&l, &L->ln2, false, 1, c->hidden_size, 0,
					    "model.layers.%d.post_attention_layernorm.weight", i);
		}
	}
	ft_slot_add(&l, &m->norm, false, 1, c->hidden_size, 0, "model.norm.weight");
	if (!c->tie_word_embeddings)
		ft_slot_add(&l, &m->lm_head, true, 2, c->vocab_size, c->hidden_size,
			    "lm_head.weight");
	m->params_mem = ft_slots_point(&l, m->be);
	m->params = l.p;
	m->n_params = l.n;
	m->params_total = l.total;
	free(l.slot);
	if (!m->params_mem)
		return ft_failf(err, FT_ENOMEM, NULL,
				"out of memory for %zu parameters (%.1f GB in fp32)", l.total,
				l.total * 4e-9);
	if (c->tie_word_embeddings)
		m->lm_head = m->wte;
	return FT_OK;
}

enum ft_rc ft_model_new(const struct ft_model_config *cfg, const struct ft_backend *be,
			struct ft_model **out, struct ft_err *err)
{
	return ft_model_create(cfg, be, false, out, err);
}

enum ft_rc ft_model_create(const struct ft_model_config *cfg, const struct ft_backend *be, bool nf4,
			   struct ft_model **out, struct ft_err *err)
{
	struct ft_model *m = calloc(1, sizeof(*m));
	if (!m)
		return ft_failf(err, FT_ENOMEM, NULL, "out of memory");
	m->cfg = *cfg;
	m->be = be;
	m->nf4 = nf4;
	m->lora_on = true;
	m->n_head_rows = -1;
	enum ft_rc rc = build_base(m, err);
	if (rc)
		goto fail_model;
	m->rope_max = cfg->max_position_embeddings > 0 ? cfg->max_position_embeddings : 2048;
	size_t tsz = (size_t)m->rope_max * (cfg->head_dim / 2) * sizeof(float);
	m->rope_cos = be->alloc(tsz);
	m->rope_sin = be->alloc(tsz);
	float *hcos = m->rope_cos ? ft_dev_map(be, m->rope_cos, tsz, false) : NULL;
	float *hsin = m->rope_sin ? ft_dev_map(be, m->rope_sin, tsz, false) : NULL;
	if (!hcos || !hsin) {
		ft_dev_unmap(be, m->rope_cos, hcos, tsz, false);
		ft_dev_unmap(be, m->rope_sin, hsin, tsz, false);
		rc = ft_failf(err, FT_ENOMEM, NULL, "out of memory for rope tables");
		goto fail_model;
	}
	struct ft_rope_params rp = { cfg->rope_type,
				     cfg->rope_theta,
				     cfg->rope_factor,
				     cfg->rope_low_freq_factor,
				     cfg->rope_high_freq_factor,
				     cfg->rope_original_max_pos };
	ft_rope_tables(hcos, hsin, m->rope_max, cfg->head_dim, &rp);
	ft_dev_unmap(be, m->rope_cos, hcos, tsz, true);
	ft_dev_unmap(be, m->rope_sin, hsin, tsz, true);
	*out = m;
	return FT_OK;
fail_model:
	ft_model_free(m);
	return rc;
}

void ft_model_free(struct ft_model *m)
{
	if (!m)
		return;
	const struct ft_backend *be = m->be;
	be->free(m->params_mem);
	be->free(m->nf4_mem);
	be->free(m->nf4_map);
	free(m->nf4_w);
	ft_model_unpack(m);
	free(m->head_rows);
	free(m->head_tgt);
	be->free(m->grads_mem);
	free(m->params);
	free(m->layers);
	for (int i = 0; i < m->n_ads; i++)
		ft_adapter_free(be, m->ads[i]);
	free(m->ads);
	free_acts(m);
	ft_model_step_free(m);
	be->free(m->rope_cos);
	be->free(m->rope_sin);
	free(m);
}

const struct ft_model_config *ft_model_config(const struct ft_model *m)
{
	return &m->cfg;
}

const struct ft_backend *ft_model_backend(const struct ft_model *m)
{
	return m->be;
}

struct ft_param *ft_model_params(struct ft_model *m, size_t *count)
{
	*count = m->n_params;
	return m->params;
}

struct ft_param *ft_model_trainable(struct ft_model *m, size_t *count)
{
	if (ft_model_own(m))
		return ft_model_lora_params(m, count);
	if (m->grads_mem)
		return ft_model_params(m, count);
	*count = 0;
	return NULL;
}

/* Gradient pointer of a base tensor: same offset in the gradient block. */
static float *gptr(const struct ft_model *m, const float *p)
{
	if (!m->grads_mem || !p)
		return NULL;
	return m->grads_mem + (p - m->params_mem);
}

enum ft_rc ft_model_train_base(struct ft_model *m, struct ft_err *err)
{
	if (m->grads_mem)
		return FT_OK;
	if (m->nf4)
		return ft_failf(
			err, FT_EINVAL, NULL,
			"the base model is quantised to 4 bits (NF4): it cannot be fine-tuned "
			"in full; train LoRA adapters on it (method \"qlora\")");
	m->grads_mem = ft_dev_calloc(m->be, m->params_total * sizeof(float));
	if (!m->grads_mem)
		return ft_failf(err, FT_ENOMEM, NULL, "out of memory for %zu gradients",
				m->params_total);
	for (size_t i = 0; i < m->n_params; i++)
		m->params[i].grad = gptr(m, m->params[i].data);
	return FT_OK;
}

/* ---- NF4 weights (QLoRA) ---- */

enum ft_rc ft_model_nf4_alloc(struct ft_model *m, const bool *nested, struct ft_err *err)
{
	const struct ft_model_config *c = &m->cfg;
	size_t nw = (size_t)c->num_layers * FT_LIN_COUNT, total = 0;
	FT_ASSERT(m->nf4 && !m->nf4_mem);
	for (size_t i = 0; i < nw; i++) {
		int in, out;
		ft_model_linear_dims(c, (enum ft_linear)(i % FT_LIN_COUNT), &in, &out);
		total += ft_nf4_layout(out, in, nested[i]);
	}
	m->nf4_w = calloc(nw, sizeof(*m->nf4_w));
	m->nf4_mem = m->be->alloc(total);
	m->nf4_map = m->be->alloc(sizeof ft_nf4_dynamic_map);
	if (!m->nf4_w || !m->nf4_mem || !m->nf4_map)
		return ft_failf(err, FT_ENOMEM, NULL, "out of memory for the NF4 weights (%.1f MB)",
				total * 1e-6);
	m->be->upload(m->nf4_map, ft_nf4_dynamic_map, sizeof ft_nf4_dynamic_map);
	m->nf4_bytes = total;
	uint8_t *p = m->nf4_mem;
	for (size_t i = 0; i < nw; i++) {
		int in, out;
		enum ft_linear k = (enum ft_linear)(i % FT_LIN_COUNT);
		ft_model_linear_dims(c, k, &in, &out);
		ft_nf4_point(&m->nf4_w[i], p, out, in, nested[i]);
		if (nested[i]) /* the ops read the map where they read the weight */
			m->nf4_w[i].code2 = m->be->host_memory ? ft_nf4_dynamic_map : m->nf4_map;
		m->layers[i / FT_LIN_COUNT].q[k] = &m->nf4_w[i];
		p += ft_nf4_layout(out, in, nested[i]);
	}
	return FT_OK;
}

enum ft_rc ft_model_nf4_map(const struct ft_model *m, const struct ft_nf4 *q, struct ft_nf4 *hq,
			    bool fetch, struct ft_err *err)
{
	if (m->be->host_memory) {
		*hq = *q;
		return FT_OK;
	}
	size_t bytes = ft_nf4_layout(q->rows, q->cols, q->nested);
	void *h = ft_dev_map(m->be, q->packed, bytes, fetch);
	if (!h)
		return ft_failf(err, FT_ENOMEM, NULL, "out of memory for one NF4 weight");
	ft_nf4_point(hq, h, q->rows, q->cols, q->nested);
	hq->src_dtype = q->src_dtype;
	hq->offset = q->offset;
	return FT_OK;
}

void ft_model_nf4_unmap(const struct ft_model *m, struct ft_nf4 *q, struct ft_nf4 *hq, bool store)
{
	q->src_dtype = hq->src_dtype;
	q->offset = hq->offset;
	if (m->be->host_memory)
		return;
	ft_dev_unmap(m->be, q->packed, hq->packed, ft_nf4_layout(q->rows, q->cols, q->nested),
		     store);
}

size_t ft_model_nf4_bytes(const struct ft_model *m)
{
	return m->nf4 ? m->nf4_bytes : 0;
}

size_t ft_model_f32_bytes(const struct ft_model *m)
{
	return m->params_total * sizeof(float);
}

enum ft_rc ft_model_nf4_to_f32(struct ft_model *m, struct ft_err *err)
{
	if (!m->nf4)
		return FT_OK;
	/* build the fp32 table again, with the linears, and move every tensor */
	float *old_mem = m->params_mem;
	struct ft_param *old_p = m->params;
	size_t old_n = m->n_params, old_total = m->params_total;
	struct ft_layer *old_layers = m->layers;
	m->nf4 = false;
	m->params_mem = NULL, m->params = NULL, m->layers = NULL;
	enum ft_rc rc = build_base(m, err);
	if (rc) {
		m->be->free(m->params_mem);
		free(m->params);
		free(m->layers);
		m->params_mem = old_mem, m->params = old_p, m->n_params = old_n;
		m->params_total = old_total;
		m->layers = old_layers;
		m->nf4 = true;
		return rc;
	}
	for (size_t i = 0, j = 0; i < m->n_params; i++) {
		struct ft_param *p = &m->params[i];
		if (j < old_n && strcmp(old_p[j].name, p->name) == 0) {
			m->be->copy(p->data, old_p[j].data, p->n * sizeof(float));
			j++;
		}
	}
	for (int l = 0; l < m->cfg.num_layers && !rc; l++)
		for (int k = 0; k < FT_LIN_COUNT && !rc; k++) {
			/* dequantise on the host, one weight at a time */
			int in, out;
			ft_model_linear_dims(&m->cfg, (enum ft_linear)k, &in, &out);
			float *w = m->layers[l].w[k];
			size_t bytes = (size_t)in * out * sizeof(float);
			struct ft_nf4 hq;
			float *hw = ft_dev_map(m->be, w, bytes, false);
			if (!hw || (rc = ft_model_nf4_map(m, old_layers[l].q[k], &hq, true, err))) {
				ft_dev_unmap(m->be, w, hw, bytes, false);
				rc = ft_failf(err, FT_ENOMEM, NULL, "out of memory");
				break;
			}
			ft_nf4_dequant(&hq, hw);
			ft_model_nf4_unmap(m, old_layers[l].q[k], &hq, false);
			ft_dev_unmap(m->be, w, hw, bytes, true);
		}
	if (rc) { /* back to the NF4 model */
		m->be->free(m->params_mem);
		free(m->params);
		free(m->layers);
		m->params_mem = old_mem, m->params = old_p, m->n_params = old_n;
		m->params_total = old_total;
		m->layers = old_layers;
		m->nf4 = true;
		return rc;
	}
	m->be->free(old_mem);
	free(old_p);
	free(old_layers);
	m->be->free(m->nf4_mem);
	m->be->free(m->nf4_map);
	free(m->nf4_w);
	m->nf4_mem = NULL;
	m->nf4_map = NULL;
	m->nf4_w = NULL;
	m->nf4_bytes = 0;
	return FT_OK;
}

/* ---- activations ---- */

/* Hands out consecutive pieces of a block; with no block it only counts. */
struct cursor {
	float *base;
	size_t off;
};

static float *take(struct cursor *cur, size_t n)
{
	float *p = cur->base ? cur->base + cur->off : NULL;
	cur->off += n;
	return p;
}

/* Lay out (or size, when base is NULL) the activations for B x T. */
static size_t plan_acts(struct ft_model *m, int B, int T, float *base)
{
	const struct ft_model_config *c = &m->cfg;
	size_t N = (size_t)B * T, C = c->hidden_size, I = c->intermediate_size;
	size_t qd = (size_t)c->num_heads * c->head_dim, kd = (size_t)c->num_kv_heads * c->head_dim;
	const struct ft_adapter *own = ft_model_own(m);
	size_t r = own ? (size_t)own->cfg.r : 0;
	bool drop = own && own->cfg.dropout > 0;
	struct cursor cur0 = { base, 0 }, *cur = &cur0;
	/* Activation checkpointing: a recomputed layer keeps only its input
	 * (res) and borrows the rest from one shared set, which backward fills
	 * again by re-running that layer's forward just before it needs it. */
	struct ft_layer_act shared = { 0 };
	bool have_shared = false;
	for (int l = 0; l < c->num_layers; l++) {
		struct ft_layer_act *a = base ? &m->acts[l] : &(struct ft_layer_act){ 0 };
		a->res = take(cur, N * C);
		if (ft_model_layer_recomputed(m, l) && have_shared) {
			float *res = a->res;
			*a = shared;
			a->res = res;
			continue;
		}
		a->ln1 = take(cur, N * C);
		a->rstd1 = take(cur, N);
		a->q = take(cur, N * qd);
		a->k = take(cur, N * kd);
		a->v = take(cur, N * kd);
		a->lse = take(cur, (size_t)B * c->num_heads * T);
		a->att = take(cur, N * qd);
		a->mid = take(cur, N * C);
		a->ln2 = take(cur, N * C);
		a->rstd2 = take(cur, N);
		a->gate = take(cur, N * I);
		a->up = take(cur, N * I);
		a->h = take(cur, N * I);
		for (int k = 0; k < FT_LIN_COUNT; k++) {
			a->lu[k] = a->lx[k] = NULL;
			if (!own || !ft_adapter_a(own, l, (enum ft_linear)k))
				continue;
			int in, out;
			ft_model_linear_dims(c, (enum ft_linear)k, &in, &out);
			a->lu[k] = take(cur, N * r);
			if (drop)
				a->lx[k] = take(cur, N * in);
		}
		if (ft_model_layer_recomputed(m, l)) {
			shared = *a;
			have_shared = true;
		}
	}
	float *res_final = take(cur, N * C);
	float *lnf = take(cur, N * C);
	float *rstdf = take(cur, N);
	float *logits = take(cur, N * c->vocab_size);
	if (base) {
		m->res_final = res_final;
		m->lnf = lnf;
		m->rstdf = rstdf;
		m->logits = logits;
	}
	return cur->off;
}

void ft_model_set_checkpointing(struct ft_model *m, int every)
{
	m->ckpt_every = every > 0 ? every : 0;
	m->act_n = 0; /* re-plan */
}

size_t ft_model_activation_bytes(const struct ft_model *m)
{
	return m->act_n * sizeof(float);
}

/* Activations, scratch and the batch's arrays (backend memory, but acts
 * and the staging buffers). */
static void free_acts(struct ft_model *m)
{
	const struct ft_backend *be = m->be;
	be->free(m->act_mem);
	be->free(m->scratch_mem);
	be->free(m->pos);
	be->free(m->doc);
	be->free(m->ids_d);
	be->free(m->tgt_d);
	be->free(m->drop_mask);
	free(m->acts);
	free(m->pos_h);
	free(m->doc_h);
	free(m->drop_h);
	m->act_mem = m->scratch_mem = NULL;
	m->pos = m->doc = m->pos_h = m->doc_h = m->ids_d = m->tgt_d = NULL;
	m->drop_mask = m->drop_h = NULL;
	m->acts = NULL;
}

static enum ft_rc ensure_acts(struct ft_model *m, int B, int T, struct ft_err *err)
{
	const struct ft_model_config *c = &m->cfg;
	const struct ft_backend *be = m->be;
	if (m->act_n && m->act_B == B && m->act_T == T)
		return FT_OK;
	free_acts(m);
	m->acts = calloc((size_t)c->num_layers, sizeof(*m->acts));
	size_t n = plan_acts(m, B, T, NULL);
	m->act_mem = be->alloc(n * sizeof(float));
	/* backward scratch: dres, dln, dq, dk, dv, datt, dgate, dup, dh, du, dx */
	size_t N = (size_t)B * T, C = c->hidden_size, I = c->intermediate_size;
	size_t qd = (size_t)c->num_heads * c->head_dim, kd = (size_t)c->num_kv_heads * c->head_dim;
	const struct ft_adapter *own = ft_model_own(m);
	size_t maxin = FT_MAX(FT_MAX(C, I), qd), r = own ? (size_t)own->cfg.r : 1;
	size_t sn = N * (2 * C + qd + 2 * kd + qd + 3 * I + r + maxin);
	m->scratch_mem = be->alloc(sn * sizeof(float));
	size_t ib = N * sizeof(int32_t);
	bool ok = m->acts && m->act_mem && m->scratch_mem;
	ok = ok && (m->pos = be->alloc(ib)) && (m->doc = be->alloc(ib));
	if (ok && !be->host_memory)
		ok = (m->pos_h = malloc(ib)) && (m->doc_h = malloc(ib)) &&
		     (m->ids_d = be->alloc(ib)) && (m->tgt_d = be->alloc(ib));
	if (ok && own && own->cfg.dropout > 0) {
		ok = (m->drop_mask = be->alloc(N * maxin)) != NULL;
		if (ok && !be->host_memory)
			ok = (m->drop_h = malloc(N * maxin)) != NULL;
	}
	if (!ok) {
		free_acts(m);
		m->act_n = 0;
		return ft_failf(err, FT_ENOMEM, NULL,
				"out of memory for activations of a %d x %d batch (%.1f GB)", B, T,
				(n + sn) * 4e-9);
	}
	plan_acts(m, B, T, m->act_mem);
	struct cursor sc = { m->scratch_mem, 0 }, *cur = &sc;
	m->s.dres = take(cur, N * C);
	m->s.dln = take(cur, N * C);
	m->s.dq = take(cur, N * qd);
	m->s.dk = take(cur, N * kd);
	m->s.dv = take(cur, N * kd);
	m->s.datt = take(cur, N * qd);
	m->s.dgate = take(cur, N * I);
	m->s.dup = take(cur, N * I);
	m->s.dh = take(cur, N * I);
	m->s.du = take(cur, N * r);
	m->s.dx = take(cur, N * maxin);
	m->act_n = n;
	m->act_B = B;
	m->act_T = T;
	return FT_OK;
}

/* ---- one linear layer with its optional LoRA path ---- */

void ft_model_linear_base(struct ft_model *m, int l, enum ft_linear k, float *out, const float *in,
			  int N)
{
	struct ft_layer *L = &m->layers[l];
	int IC, OC;
	ft_model_linear_dims(&m->cfg, k, &IC, &OC);
	if (L->pw[k])
		m->be->matmul_pw_fwd(out, in, L->pw[k], L->b[k], N, IC, OC);
	else if (L->q[k])
		m->be->matmul_nf4_fwd(out, in, L->q[k], L->b[k], N, IC, OC);
	else
		m->be->matmul_fwd(out, in, L->w[k], L->b[k], N, IC, OC, false);
}

/* out[N,OC] += each row's adapter path for linear k of layer l. */
static void linear_lora(struct ft_model *m, int l, enum ft_linear k, float *out, const float *in,
			const struct ft_layer_run *run)
{
	int N = run->N;
	if (!run->row_ad) {
		const struct ft_adapter *ad = m->lora_on ? ft_model_own(m) : NULL;
		if (ad && ft_adapter_a(ad, l, k))
			ft_lora_fwd(m, ad, l, k, out, in, N,
				    run->lora_u ? run->lora_u : run->a->lu[k],
				    run->train ? run->a->lx[k] : NULL, run->lora_rng);
		return;
	}
	/* mixed adapters: each run of consecutive rows with one adapter */
	int IC, OC;
	ft_model_linear_dims(&m->cfg, k, &IC, &OC);
	for (int i0 = 0, i1; i0 < N; i0 = i1) {
		int s = run->row_ad[i0];
		for (i1 = i0 + 1; i1 < N && run->row_ad[i1] == s;)
			i1++;
		const struct ft_adapter *ad = s >= 0 && s < m->n_ads ? m->ads[s] : NULL;
		if (!ad || !ft_adapter_a(ad, l, k))
			continue;
		ft_lora_fwd(m, ad, l, k, out + (size_t)i0 * OC, in + (size_t)i0 * IC, i1 - i0,
			    run->lora_u, NULL, 0);
	}
}

/* out[N,OC] = in W^T + b (+ each row's adapter path) for linear k of layer l. */
static void linear_fwd(struct ft_model *m, int l, enum ft_linear k, float *out, const float *in,
		       const struct ft_layer_run *run)
{
	ft_model_linear_base(m, l, k, out, in, run->N);
	linear_lora(m, l, k, out, in, run);
}

/* linear_fwd of n linears that read the same input (q, k, v; gate, up):
 * packed inference weights go to the backend together (matmul_pw_fwd_multi:
 * one pass over the input, one hand-off to the threads, the same bits). */
static void linears_fwd(struct ft_model *m, int l, const enum ft_linear *k, float *const *out,
			int n, const float *in, const struct ft_layer_run *run)
{
	struct ft_layer *L = &m->layers[l];
	bool together = m->be->matmul_pw_fwd_multi && n <= FT_PW_MULTI_MAX;
	for (int i = 0; i < n && together; i++)
		together = L->pw[k[i]] != NULL;
	if (!together) {
		for (int i = 0; i < n; i++)
			linear_fwd(m, l, k[i], out[i], in, run);
		return;
	}
	const struct ft_pw *w[FT_PW_MULTI_MAX];
	const float *b[FT_PW_MULTI_MAX];
	int IC, OC;
	ft_model_linear_dims(&m->cfg, k[0], &IC, &OC);
	for (int i = 0; i < n; i++) {
		w[i] = L->pw[k[i]];
		b[i] = L->b[k[i]];
	}
	m->be->matmul_pw_fwd_multi(out, in, w, b, n, run->N, IC);
	for (int i = 0; i < n; i++)
		linear_lora(m, l, k[i], out[i], in, run);
}

static void linear_bwd(struct ft_model *m, int l, enum ft_linear k, float *din, const float *dout,
		       const float *in, int N)
{
	const struct ft_backend *be = m->be;
	struct ft_layer *L = &m->layers[l];
	int IC, OC;
	ft_model_linear_dims(&m->cfg, k, &IC, &OC);
	if (L->q[k])
		be->matmul_nf4_bwd_input(din, dout, L->q[k], N, IC, OC); /* frozen: no dW */
	else if (L->pw[k] && m->pack_fmt == FT_PW_BF16)
		be->matmul_pw_bwd_input(din, dout, L->pw[k], N, IC, OC); /* a bf16 base: frozen */
	else
		be->matmul_bwd(din, gptr(m, L->w[k]), gptr(m, L->b[k]), dout, in, L->w[k], N, IC,
			       OC);
	const struct ft_adapter *own = ft_model_own(m);
	if (own && ft_adapter_a(own, l, k) && m->lora_on)
		ft_lora_bwd(m, l, k, din, dout, in, N);
}

/* ---- forward / backward ---- */

/* Layer l's forward (the math at the top of this file) from run->a->res
 * into run->next. With next NULL (the recomputation of a checkpointed layer
 * in backward) it stops before the down projection's base matmul: backward
 * needs h and the LoRA path's saved u, not the next layer's input. */
void ft_model_layer_fwd(struct ft_model *m, int l, const struct ft_layer_run *run)
{
	const struct ft_model_config *c = &m->cfg;
	const struct ft_backend *be = m->be;
	int N = run->N, C = c->hidden_size, I = c->intermediate_size;
	int nh = c->num_heads, nkv = c->num_kv_heads, hd = c->head_dim;
	struct ft_layer *L = &m->layers[l];
	struct ft_layer_act *a = run->a;
	be->rmsnorm_fwd(a->ln1, a->rstd1, a->res, L->ln1, N, C, (float)c->rms_norm_eps);
	linears_fwd(m, l, (const enum ft_linear[]){ FT_LIN_Q, FT_LIN_K, FT_LIN_V },
		    (float *const[]){ a->q, a->k, a->v }, 3, a->ln1, run);
	be->rope_fwd(a->q, m->rope_cos, m->rope_sin, run->pos, N, nh, hd);
	be->rope_fwd(a->k, m->rope_cos, m->rope_sin, run->pos, N, nkv, hd);
	if (run->kv)
		ft_model_attend_cached(m, l, run);
	else
		be->attention_fwd(a->att, a->lse, a->q, a->k, a->v, run->doc, c->sliding_window,
				  run->B, run->T, nh, nkv, hd);
	linear_fwd(m, l, FT_LIN_O, a->mid, a->att, run);
	be->add(a->mid, a->res, (size_t)N * C);
	be->rmsnorm_fwd(a->ln2, a->rstd2, a->mid, L->ln2, N, C, (float)c->rms_norm_eps);
	linears_fwd(m, l, (const enum ft_linear[]){ FT_LIN_GATE, FT_LIN_UP },
		    (float *const[]){ a->gate, a->up }, 2, a->ln2, run);
	be->swiglu_fwd(a->h, a->gate, a->up, (size_t)N * I);
	if (!run->next) {
		/* the down projection's LoRA path saves u (and its dropout
		 * input) for backward; its output goes to scratch */
		const struct ft_adapter *own = ft_model_own(m);
		if (own && ft_adapter_a(own, l, FT_LIN_DOWN) && m->lora_on) {
			be->zero(m->s.dx, sizeof(float) * (size_t)N * C);
			ft_lora_fwd(m, own, l, FT_LIN_DOWN, m->s.dx, a->h, N, a->lu[FT_LIN_DOWN],
				    run->train ? a->lx[FT_LIN_DOWN] : NULL, run->lora_rng);
		}
		return;
	}
	linear_fwd(m, l, FT_LIN_DOWN, run->next, a->h, run);
	be->add(run->next, a->mid, (size_t)N * C);
}

/* The run of a training-plan layer (its saved activations, the batch's
 * positions and documents). */
static struct ft_layer_run batch_run(struct ft_model *m, int l, int B, int T, uint64_t lora_rng,
				     bool train, bool to_next)
{
	const struct ft_model_config *c = &m->cfg;
	struct ft_layer_run run = { 0 };
	run.a = &m->acts[l];
	run.next = !to_next ? NULL : l + 1 < c->num_layers ? m->acts[l + 1].res : m->res_final;
	run.N = B * T;
	run.pos = m->pos;
	run.B = B;
	run.T = T;
	run.doc = m->doc;
	run.train = train;
	run.lora_rng = lora_rng;
	return run;
}

/* Everything up to the final norm (m->lnf); train draws the LoRA dropout
 * masks. */
static enum ft_rc forward_body(struct ft_model *m, const struct ft_batch *b, bool train,
			       uint64_t lora_rng, struct ft_err *err)
{
	const struct ft_model_config *c = &m->cfg;
	const struct ft_backend *be = m->be;
	int B = b->B, T = b->T, N = B * T, C = c->hidden_size;
	if (B <= 0 || T <= 0)
		return ft_failf(err, FT_EINVAL, NULL, "empty batch (%d x %d)", B, T);
	enum ft_rc rc = ensure_acts(m, B, T, err);
	if (rc)
		return rc;
	m->n_head_rows = -1;
	/* positions and documents: given, or 0..T-1 in one document; filled
	 * on the host (in place on the CPU), then uploaded */
	int32_t *pos = be->host_memory ? m->pos : m->pos_h;
	int32_t *doc = be->host_memory ? m->doc : m->doc_h;
	for (int i = 0; i < N; i++) {
		pos[i] = b->pos ? b->pos[i] : i % T;
		doc[i] = b->doc ? b->doc[i] : 0;
		if (b->ids[i] < 0 || b->ids[i] >= c->vocab_size)
			return ft_failf(err, FT_EINVAL, NULL,
					"token id %d is outside the vocabulary (size %d)",
					b->ids[i], c->vocab_size);
		if (pos[i] < 0 || pos[i] >= m->rope_max)
			return ft_failf(err, FT_EINVAL, NULL,
					"position %d is beyond the model's %d positions", pos[i],
					m->rope_max);
		if (b->targets && b->targets[i] != FT_IGNORE_INDEX &&
		    (b->targets[i] < 0 || b->targets[i] >= c->vocab_size))
			return ft_failf(err, FT_EINVAL, NULL,
					"label %d is outside the vocabulary (size %d)",
					b->targets[i], c->vocab_size);
	}
	if (!be->host_memory) {
		be->upload(m->pos, pos, sizeof(int32_t) * (size_t)N);
		be->upload(m->doc, doc, sizeof(int32_t) * (size_t)N);
	}
	m->ids = ft_model_batch_ints(m, m->ids_d, b->ids, (size_t)N);
	m->tgt = b->targets ? ft_model_batch_ints(m, m->tgt_d, b->targets, (size_t)N) : NULL;
	m->drop_seed = lora_rng;
	be->embedding_fwd(m->acts[0].res, m->ids, m->wte, N, C);
	for (int l = 0; l < c->num_layers; l++) {
		struct ft_layer_run run = batch_run(m, l, B, T, lora_rng, train, true);
		ft_model_layer_fwd(m, l, &run);
	}
	be->rmsnorm_fwd(m->lnf, m->rstdf, m->res_final, m->norm, N, C, (float)c->rms_norm_eps);
	return FT_OK;
}

/* logits[n] = x[n] W_head^T for n rows */
static void head_fwd(struct ft_model *m, const float *x, int n)
{
	const struct ft_model_config *c = &m->cfg;
	if (m->lm_head_pw)
		m->be->matmul_pw_fwd(m->logits, x, m->lm_head_pw, NULL, n, c->hidden_size,
				     c->vocab_size);
	else
		m->be->matmul_fwd(m->logits, x, m->lm_head, NULL, n, c->hidden_size, c->vocab_size,
				  false);
}

static enum ft_rc forward_logits(struct ft_model *m, const struct ft_batch *b, bool train,
				 uint64_t lora_rng, struct ft_err *err)
{
	enum ft_rc rc = forward_body(m, b, train, lora_rng, err);
	if (!rc)
		head_fwd(m, m->lnf, b->B * b->T);
	return rc;
}

void ft_model_set_loss_rows_only(struct ft_model *m, bool on)
{
	m->loss_rows_only = on;
}

/* ft_model_set_loss_rows_only's selection for batch b (N rows): true with
 * head_rows / head_tgt / n_head_rows set when it applies and leaves rows
 * out. */
static bool head_rows_select(struct ft_model *m, const struct ft_batch *b, int N)
{
	if (!m->loss_rows_only || !m->be->host_memory || !b->targets || gptr(m, m->lm_head))
		return false;
	int n = 0;
	for (int i = 0; i < N; i++)
		n += b->targets[i] != FT_IGNORE_INDEX;
	if (n == N)
		return false;
	if (N > m->head_cap) {
		int32_t *r = realloc(m->head_rows, sizeof(int32_t) * (size_t)N);
		if (r)
			m->head_rows = r;
		int32_t *t = r ? realloc(m->head_tgt, sizeof(int32_t) * (size_t)N) : NULL;
		if (t)
			m->head_tgt = t;
		if (!r || !t)
			return false; /* (all rows then: the same result) */
		m->head_cap = N;
	}
	n = 0;
	for (int i = 0; i < N; i++)
		if (b->targets[i] != FT_IGNORE_INDEX) {
			m->head_rows[n] = i;
			m->head_tgt[n++] = b->targets[i];
		}
	m->n_head_rows = n;
	return true;
}

enum ft_rc ft_model_forward(struct ft_model *m, const struct ft_batch *b, float grad_scale,
			    uint64_t lora_rng, struct ft_ce_stats *st, struct ft_err *err)
{
	const struct ft_backend *be = m->be;
	bool train = grad_scale != 0.0f && b->targets;
	m->fwd_train = false;
	int N = b->B * b->T, C = m->cfg.hidden_size;
	enum ft_rc rc = forward_body(m, b, train, lora_rng, err);
	if (rc)
		return rc;
	struct ft_ce_stats local = { 0 };
	if (head_rows_select(m, b, N)) {
		/* the rows with a target, gathered into the (idle) dx scratch */
		int n = m->n_head_rows;
		for (int i = 0; i < n; i++)
			memcpy(m->s.dx + (size_t)i * C, m->lnf + (size_t)m->head_rows[i] * C,
			       sizeof(float) * (size_t)C);
		head_fwd(m, m->s.dx, n);
		if (n > 0)
			be->cross_entropy(m->logits, m->head_tgt, n, m->cfg.vocab_size, grad_scale,
					  st ? st : &local);
		m->fwd_train = train;
		return FT_OK;
	}
	head_fwd(m, m->lnf, N);
	if (b->targets) {
		be->cross_entropy(m->logits, m->tgt, N, m->cfg.vocab_size, grad_scale,
				  st ? st : &local);
		m->fwd_train = train;
	}
	return FT_OK;
}

const float *ft_model_logits(const struct ft_model *m)
{
	FT_ASSERT(m->n_head_rows < 0); /* every row's, not a compacted few */
	return m->logits;
}

void ft_model_read(const struct ft_model *m, float *host, const float *t, size_t n)
{
	m->be->download(host, t, n * sizeof(float));
}

const int32_t *ft_model_batch_ints(const struct ft_model *m, int32_t *dev, const int32_t *src,
				   size_t n)
{
	if (m->be->host_memory)
		return src;
	m->be->upload(dev, src, n * sizeof(int32_t));
	return dev;
}

/* ---- sequence-level losses (DPO): logits kept, then turned into gradients ---- */

enum ft_rc ft_model_forward_keep(struct ft_model *m, const struct ft_batch *b, uint64_t lora_rng,
				 struct ft_err *err)
{
	m->fwd_train = false;
	return forward_logits(m, b, true, lora_rng, err);
}

void ft_model_row_logps(struct ft_model *m, const struct ft_batch *b, double *logp)
{
	int T = b->T, V = m->cfg.vocab_size;
	FT_ASSERT(b->targets && m->act_B == b->B && m->act_T == T && m->n_head_rows < 0);
	/* the forward may have had no targets (logits only): upload them */
	const int32_t *tgt = ft_model_batch_ints(m, m->tgt_d, b->targets, (size_t)b->B * T);
	for (int r = 0; r < b->B; r++) {
		struct ft_ce_stats st = { 0 };
		m->be->cross_entropy(m->logits + (size_t)r * T * V, tgt + (size_t)r * T, T, V, 0.0f,
				     &st);
		logp[r] = -st.loss_sum;
	}
}

void ft_model_logits_grad_rows(struct ft_model *m, const struct ft_batch *b, const float *scale)
{
	int T = b->T, V = m->cfg.vocab_size;
	FT_ASSERT(b->targets && m->act_B == b->B && m->act_T == T && m->n_head_rows < 0);
	const int32_t *tgt = ft_model_batch_ints(m, m->tgt_d, b->targets, (size_t)b->B * T);
	for (int r = 0; r < b->B; r++) {
		float *x = m->logits + (size_t)r * T * V;
		struct ft_ce_stats st = { 0 };
		if (scale[r] == 0.0f) /* the op leaves logits as they are for a zero scale */
			m->be->zero(x, sizeof(float) * (size_t)T * V);
		else
			m->be->cross_entropy(x, tgt + (size_t)r * T, T, V, scale[r], &st);
	}
	m->fwd_train = true;
}

void ft_model_zero_grad(struct ft_model *m)
{
	if (m->grads_mem)
		m->be->zero(m->grads_mem, m->params_total * sizeof(float));
	const struct ft_adapter *own = ft_model_own(m);
	if (own && own->grads_mem)
		m->be->zero(own->grads_mem, own->total * sizeof(float));
}

/* The lowest layer backward must reach: the first adapted one when only the
 * own adapter trains (peft's layers_to_transform; below it nothing has a
 * gradient), else 0. */
static int backward_stop(const struct ft_model *m)
{
	const struct ft_adapter *own = ft_model_own(m);
	if (m->grads_mem || !own || !own->grads_mem || !m->lora_on)
		return 0;
	for (int l = 0; l < m->cfg.num_layers; l++)
		for (int k = 0; k < FT_LIN_COUNT; k++)
			if (ft_adapter_a(own, l, (enum ft_linear)k))
				return l;
	return 0;
}

void ft_model_backward(struct ft_model *m, const struct ft_batch *b)
{
	const struct ft_model_config *c = &m->cfg;
	const struct ft_backend *be = m->be;
	int B = b->B, T = b->T, N = B * T, C = c->hidden_size, I = c->intermediate_size;
	int nh = c->num_heads, nkv = c->num_kv_heads, hd = c->head_dim;
	size_t qd = (size_t)nh * hd, kd = (size_t)nkv * hd;
	struct ft_scratch *s = &m->s;
	FT_ASSERT(m->fwd_train && m->act_B == B && m->act_T == T);

	/* logits = lnf W_head^T; the logits buffer holds d loss / d logits */
	be->zero(s->dln, sizeof(float) * (size_t)N * C);
	if (m->n_head_rows >= 0) { /* those of the rows with a target (frozen head) */
		int n = m->n_head_rows;
		be->zero(s->dx, sizeof(float) * (size_t)n * C);
		if (m->lm_head_pw && m->pack_fmt == FT_PW_BF16)
			be->matmul_pw_bwd_input(s->dx, m->logits, m->lm_head_pw, n, C,
						c->vocab_size);
		else
			be->matmul_bwd(s->dx, NULL, NULL, m->logits, NULL, m->lm_head, n, C,
				       c->vocab_size);
		for (int i = 0; i < n; i++)
			memcpy(s->dln + (size_t)m->head_rows[i] * C, s->dx + (size_t)i * C,
			       sizeof(float) * (size_t)C);
	} else if (m->lm_head_pw && m->pack_fmt == FT_PW_BF16 && !gptr(m, m->lm_head)) {
		be->matmul_pw_bwd_input(s->dln, m->logits, m->lm_head_pw, N, C, c->vocab_size);
	} else {
		be->matmul_bwd(s->dln, gptr(m, m->lm_head), NULL, m->logits, m->lnf, m->lm_head, N,
			       C, c->vocab_size);
	}
	be->zero(s->dres, sizeof(float) * (size_t)N * C);
	be->rmsnorm_bwd(s->dres, gptr(m, m->norm), s->dln, m->res_final, m->norm, m->rstdf, N, C);

	for (int l = c->num_layers - 1, stop = backward_stop(m); l >= stop; l--) {
		struct ft_layer *L = &m->layers[l];
		struct ft_layer_act *a = &m->acts[l];
		if (ft_model_layer_recomputed(m, l)) {
			struct ft_layer_run run = batch_run(m, l, B, T, m->drop_seed, true, false);
			ft_model_layer_fwd(m, l, &run);
		}
		/* x_l+1 = mid + down(h): dres is d x_l+1, and passes to mid as is */
		be->zero(s->dh, sizeof(float) * (size_t)N * I);
		linear_bwd(m, l, FT_LIN_DOWN, s->dh, s->dres, a->h, N);
		be->zero(s->dgate, sizeof(float) * (size_t)N * I);
		be->zero(s->dup, sizeof(float) * (size_t)N * I);
		be->swiglu_bwd(s->dgate, s->dup, s->dh, a->gate, a->up, (size_t)N * I);
		be->zero(s->dln, sizeof(float) * (size_t)N * C);
		linear_bwd(m, l, FT_LIN_GATE, s->dln, s->dgate, a->ln2, N);
		linear_bwd(m, l, FT_LIN_UP, s->dln, s->dup, a->ln2, N);
		be->rmsnorm_bwd(s->dres, gptr(m, L->ln2), s->dln, a->mid, L->ln2, a->rstd2, N, C);
		/* mid = x_l + o(att): dres is now d mid */
		be->zero(s->datt, sizeof(float) * (size_t)N * qd);
		linear_bwd(m, l, FT_LIN_O, s->datt, s->dres, a->att, N);
		be->zero(s->dq, sizeof(float) * (size_t)N * qd);
		be->zero(s->dk, sizeof(float) * (size_t)N * kd);
		be->zero(s->dv, sizeof(float) * (size_t)N * kd);
		be->attention_bwd(s->dq, s->dk, s->dv, s->datt, a->lse, a->q, a->k, a->v, m->doc,
				  c->sliding_window, B, T, nh, nkv, hd);
		be->rope_bwd(s->dq, m->rope_cos, m->rope_sin, m->pos, N, nh, hd);
		be->rope_bwd(s->dk, m->rope_cos, m->rope_sin, m->pos, N, nkv, hd);
		be->zero(s->dln, sizeof(float) * (size_t)N * C);
		linear_bwd(m, l, FT_LIN_Q, s->dln, s->dq, a->ln1, N);
		linear_bwd(m, l, FT_LIN_K, s->dln, s->dk, a->ln1, N);
		linear_bwd(m, l, FT_LIN_V, s->dln, s->dv, a->ln1, N);
		be->rmsnorm_bwd(s->dres, gptr(m, L->ln1), s->dln, a->res, L->ln1, a->rstd1, N, C);
	}
	if (m->grads_mem) {
		/* transformers builds embed_tokens as nn.Embedding(..., padding_idx =
		 * pad_token_id): the pad token's row gets no gradient from the input
		 * side (a tied lm_head still gives it one). Drop those positions'
		 * gradient before scattering it, so ours is the same. */
		int pad = m->cfg.pad_token_id;
		if (pad >= 0)
			for (int n = 0; n < N; n++)
				if (b->ids[n] == pad)
					be->zero(s->dres + (size_t)n * C,
						 sizeof(float) * (size_t)C);
		be->embedding_bwd(gptr(m, m->wte), s->dres, m->ids, N, C);
	}
}
