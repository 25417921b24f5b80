/*
 * lora.c - LoRA adapters on the decoder's linear layers (peft's Linear).
 *
 * For a linear y = x W^T + b with W [out, in], rank r and scale s
 * (alpha / r, or alpha / sqrt(r) with rsLoRA):
 *   forward   u = s * dropout(x) A^T            A [r, in]     (u saved, [N, r])
 *             y += u B^T                        B [out, r]
 *   backward  dB += dy^T u
 *             du  = s * dy B
 *             dA += du^T dropout(x)
 *             dx += (du A) * mask / (1 - p)     (the dropout mask, drawn again)
 * Dropout is nn.Dropout(p) on the adapter's input only: keep with
 * probability 1 - p and scale by 1 / (1 - p); its mask is a function of
 * (the forward's seed, layer, linear), so backward redraws it instead of
 * storing it. Evaluation forwards never drop.
 * peft's layers_to_transform adapts only the layers listed (the others'
 * a / b pointers stay NULL); with nothing else training, backward stops at
 * the lowest adapted layer (model.c backward_stop).
 * Init (peft's default): A ~ U(-1/sqrt(in), 1/sqrt(in)), the bound that
 * kaiming_uniform_(a=sqrt(5)) gives; B = 0. Merging folds s B A into W.
 * The adapters' weights and gradients are one allocation each, named as
 * peft saves them (base_model.model.model.layers.<i>.<module>.<linear>.lora_A.weight).
 *
 * Several adapters over one base (serving): the model keeps a table of
 * them (struct ft_adapter, model_int.h); slot 0 is the model's own (the one
 * that trains), the others are loaded frozen. A forward may give each row
 * an adapter index; model.c groups consecutive rows of the same adapter and
 * runs this file's forward on each group, so a batch that mixes adapters
 * computes, row for row, what each row computes alone.
 */
#include "model_int.h"
#include "ft/rng.h"

#include <math.h>

double ft_lora_scale(const struct ft_lora_config *lc)
{
	return lc->rslora ? lc->alpha / sqrt((double)lc->r) : lc->alpha / lc->r;
}

enum ft_rc ft_lora_layers_parse(const json_t *v, const char *key, struct ft_lora_config *lc,
				struct ft_err *err)
{
	lc->some_layers = false;
	memset(lc->layers, 0, sizeof lc->layers);
	if (!v || json_is_null(v))
		return FT_OK;
	bool one = json_is_integer(v);
	size_t n = one ? 1 : json_is_array(v) ? json_array_size(v) : 0;
	if (!one && (!json_is_array(v) || n == 0)) {
		ft_failf(err, FT_EINVAL, "invalid_type",
			 "\"%s\" must be a layer index or a non-empty list of them (got %s)", key,
			 ft_json_type_name(v));
		ft_err_param(err, key);
		return FT_EINVAL;
	}
	for (size_t i = 0; i < n; i++) {
		const json_t *x = one ? v : json_array_get(v, i);
		json_int_t l = json_is_integer(x) ? json_integer_value(x) : -1;
		if (l < 0 || l >= FT_MAX_LAYERS) {
			if (one)
				ft_failf(err, FT_EINVAL, "invalid_value",
					 "\"%s\" must be a layer index from 0 to %d", key,
					 FT_MAX_LAYERS - 1);
			else
				ft_failf(err, FT_EINVAL, "invalid_value",
					 "\"%s\"[%zu] must be a layer index from 0 to %d", key, i,
					 FT_MAX_LAYERS - 1);
			ft_err_param(err, key);
			return FT_EINVAL;
		}
		lc->layers[l / 64] |= UINT64_C(1) << (l % 64);
	}
	lc->some_layers = true;
	return FT_OK;
}

int ft_lora_layer_count(const struct ft_lora_config *lc, int num_layers)
{
	int n = 0;
	for (int l = 0; l < num_layers; l++)
		n += ft_lora_layer(lc, l);
	return n;
}

json_t *ft_lora_layers_json(const struct ft_lora_config *lc)
{
	if (!lc->some_layers)
		return json_null();
	json_t *a = json_array();
	for (int l = 0; l < FT_MAX_LAYERS; l++)
		if (ft_lora_layer(lc, l))
			json_array_append_new(a, json_integer(l));
	return a;
}

static enum ft_rc check_config(const struct ft_lora_config *lc, int num_layers, struct ft_err *err)
{
	if (lc->r <= 0 || lc->r > 4096)
		return ft_failf(err, FT_EINVAL, NULL, "\"r\" must be between 1 and 4096 (got %d)",
				lc->r);
	if (!(lc->dropout >= 0 && lc->dropout < 1))
		return ft_failf(err, FT_EINVAL, NULL, "\"lora_dropout\" must be in [0, 1) (got %g)",
				lc->dropout);
	if (!(lc->targets & ((1u << FT_LIN_COUNT) - 1)))
		return ft_failf(err, FT_EINVAL, NULL, "\"target_modules\" names no linear layer");
	return ft_lora_layers_check(lc, num_layers, err);
}

enum ft_rc ft_lora_layers_check(const struct ft_lora_config *lc, int num_layers, struct ft_err *err)
{
	if (!lc->some_layers)
		return FT_OK;
	for (int l = num_layers; l < FT_MAX_LAYERS; l++)
		if (ft_lora_layer(lc, l))
			return ft_failf(err, FT_EINVAL, "invalid_value",
					"\"layers_to_transform\" names layer %d, but the model's "
					"layers are 0 to %d",
					l, num_layers - 1);
	for (int l = 0; l < num_layers; l++)
		if (ft_lora_layer(lc, l))
			return FT_OK;
	return ft_failf(err, FT_EINVAL, "invalid_value", "\"layers_to_transform\" names no layer");
}

void ft_adapter_free(const struct ft_backend *be, struct ft_adapter *ad)
{
	if (!ad)
		return;
	for (size_t i = 0; ad->pa && i < ad->n_packed; i++) {
		be->pw_free(ad->pa[i]);
		be->pw_free(ad->pb[i]);
	}
	free(ad->pa);
	free(ad->pb);
	be->free(ad->mem);
	be->free(ad->grads_mem);
	free(ad->params);
	free(ad->a);
	free(ad->b);
	free(ad);
}

enum ft_rc ft_adapter_new(struct ft_model *m, const struct ft_lora_config *lc, bool trainable,
			  struct ft_adapter **adp, struct ft_err *err)
{
	const struct ft_model_config *c = &m->cfg;
	enum ft_rc rc = check_config(lc, c->num_layers, err);
	if (rc)
		return rc;
	size_t nk = (size_t)c->num_layers * FT_LIN_COUNT;
	struct ft_adapter *ad = calloc(1, sizeof(*ad));
	if (!ad || !(ad->a = calloc(nk, sizeof(float *))) ||
	    !(ad->b = calloc(nk, sizeof(float *)))) {
		ft_adapter_free(m->be, ad);
		return ft_failf(err, FT_ENOMEM, NULL, "out of memory for LoRA adapters");
	}
	struct ft_slotlist l = { 0 };
	for (int i = 0; i < c->num_layers; i++) {
		for (int k = 0; k < FT_LIN_COUNT; k++) {
			if (!(lc->targets & (1u << k)) || !ft_lora_layer(lc, i))
				continue;
			int in, out;
			ft_model_linear_dims(c, (enum ft_linear)k, &in, &out);
			size_t at = (size_t)i * FT_LIN_COUNT + (size_t)k;
			ft_slot_add(&l, &ad->a[at], true, 2, lc->r, in,
				    "base_model.model.model.layers.%d.%s.%s.lora_A.weight", i,
				    ft_linear_module((enum ft_linear)k),
				    ft_linear_name((enum ft_linear)k));
			ft_slot_add(&l, &ad->b[at], true, 2, out, lc->r,
				    "base_model.model.model.layers.%d.%s.%s.lora_B.weight", i,
				    ft_linear_module((enum ft_linear)k),
				    ft_linear_name((enum ft_linear)k));
		}
	}
	ad->mem = ft_slots_point(&l, m->be);
	ad->params = l.p;
	ad->n_params = l.n;
	ad->total = l.total;
	free(l.slot);
	if (trainable)
		ad->grads_mem = ft_dev_calloc(m->be, (l.total ? l.total : 1) * sizeof(float));
	if (!ad->mem || (trainable && !ad->grads_mem)) {
		ft_adapter_free(m->be, ad);
		return ft_failf(err, FT_ENOMEM, NULL, "out of memory for LoRA adapters");
	}
	for (size_t i = 0; trainable && i < ad->n_params; i++)
		ad->params[i].grad = ad->grads_mem + (ad->params[i].data - ad->mem);
	ad->cfg = *lc;
	ad->s = (float)ft_lora_scale(lc);
	*adp = ad;
	return FT_OK;
}

enum ft_rc ft_model_adapter_put(struct ft_model *m, int slot, struct ft_adapter *ad,
				struct ft_err *err)
{
	if (slot >= m->cap_ads) {
		int cap = FT_MAX(slot + 1, m->cap_ads ? 2 * m->cap_ads : 4);
		struct ft_adapter **t = realloc(m->ads, (size_t)cap * sizeof(*t));
		if (!t)
			return ft_failf(err, FT_ENOMEM, NULL,
					"out of memory for the adapter table");
		for (int i = m->cap_ads; i < cap; i++)
			t[i] = NULL;
		m->ads = t;
		m->cap_ads = cap;
	}
	FT_ASSERT(!m->ads[slot]);
	m->ads[slot] = ad;
	m->n_ads = FT_MAX(m->n_ads, slot + 1);
	if (ad->cfg.r > m->max_r) {
		m->max_r = ad->cfg.r;
		m->step.cap = 0; /* re-plan the step work rows: u grows */
	}
	return FT_OK;
}

int ft_model_adapter_slots(const struct ft_model *m)
{
	return m->n_ads;
}

const struct ft_lora_config *ft_model_adapter(const struct ft_model *m, int slot)
{
	return slot >= 0 && slot < m->n_ads && m->ads[slot] ? &m->ads[slot]->cfg : NULL;
}

void ft_model_adapter_unload(struct ft_model *m, int slot)
{
	if (slot <= 0 || slot >= m->n_ads || !m->ads[slot])
		return;
	ft_adapter_free(m->be, m->ads[slot]);
	m->ads[slot] = NULL;
	while (m->n_ads > 1 && !m->ads[m->n_ads - 1])
		m->n_ads--;
}

enum ft_rc ft_model_lora_add(struct ft_model *m, const struct ft_lora_config *lc,
			     struct ft_err *err)
{
	if (ft_model_own(m))
		return ft_failf(err, FT_ECONFLICT, NULL, "the model already has LoRA adapters");
	struct ft_adapter *ad;
	enum ft_rc rc = ft_adapter_new(m, lc, true, &ad, err);
	if (rc)
		return rc;
	if ((rc = ft_model_adapter_put(m, 0, ad, err))) {
		ft_adapter_free(m->be, ad);
		return rc;
	}
	m->act_n = 0; /* re-plan activations: LoRA adds some */
	return FT_OK;
}

void ft_model_lora_init(struct ft_model *m, uint64_t seed)
{
	/* peft: kaiming_uniform_(A, a=sqrt(5)) -> U(-1/sqrt(in), 1/sqrt(in)); B = 0 */
	struct ft_adapter *ad = ft_model_own(m);
	struct ft_rng r;
	ft_rng_seed(&r, ft_rng_derive(seed, FT_RNG_LORA_INIT, 0));
	for (size_t i = 0; ad && i < ad->n_params; i++) {
		struct ft_param *p = &ad->params[i];
		bool is_a = strstr(p->name, ".lora_A.") != NULL;
		double bound = 1.0 / sqrt((double)p->shape[1]);
		float *h = ft_dev_map(m->be, p->data, p->n * sizeof(float), false);
		FT_ASSERT(h); /* one tensor's staging; out of memory aborts as ft_xmalloc */
		for (size_t j = 0; j < p->n; j++)
			h[j] = is_a ? (float)((2.0 * ft_rng_uniform(&r) - 1.0) * bound) : 0.0f;
		ft_dev_unmap(m->be, p->data, h, p->n * sizeof(float), true);
	}
}

const struct ft_lora_config *ft_model_lora(const struct ft_model *m)
{
	return ft_model_adapter(m, 0);
}

void ft_model_lora_enable(struct ft_model *m, bool on)
{
	m->lora_on = on;
}

struct ft_param *ft_model_lora_params(struct ft_model *m, size_t *count)
{
	struct ft_adapter *ad = ft_model_own(m);
	*count = ad ? ad->n_params : 0;
	return ad ? ad->params : NULL;
}

float *ft_model_lora_grad(const struct ft_model *m, const float *p)
{
	struct ft_adapter *ad = ft_model_own(m);
	if (!ad || !ad->grads_mem || !p)
		return NULL;
	return ad->grads_mem + (p - ad->mem);
}

void ft_model_lora_merge(struct ft_model *m)
{
	struct ft_adapter *ad = ft_model_own(m);
	if (!ad)
		return;
	/* an NF4 base merges into its dequantisation (fails only out of memory,
	 * which aborts here as ft_xcalloc below does) */
	struct ft_err err;
	ft_err_clear(&err);
	ft_model_unpack(m); /* the packed copies would keep the unmerged weights */
	FT_ASSERT(ft_model_nf4_to_f32(m, &err) == FT_OK);
	const struct ft_model_config *c = &m->cfg;
	const struct ft_backend *be = m->be;
	int r = ad->cfg.r;
	for (int i = 0; i < c->num_layers; i++) {
		struct ft_layer *L = &m->layers[i];
		for (int k = 0; k < FT_LIN_COUNT; k++) {
			float *la = ft_adapter_a(ad, i, (enum ft_linear)k);
			float *lb = ft_adapter_b(ad, i, (enum ft_linear)k);
			if (!la)
				continue;
			int in, out;
			ft_model_linear_dims(c, (enum ft_linear)k, &in, &out);
			/* W[out,in] += s * B[out,r] A[r,in], on the host (once, at the
			 * end: staged one weight at a time when memory is not the host's) */
			size_t nw = (size_t)out * in, na = (size_t)r * in, nb = (size_t)out * r;
			float *w = ft_dev_map(be, L->w[k], nw * sizeof(float), true);
			float *a = ft_dev_map(be, la, na * sizeof(float), true);
			float *b = ft_dev_map(be, lb, nb * sizeof(float), true);
			FT_ASSERT(w && a && b);
			float *tmp = ft_xcalloc(nw, sizeof(float));
			ft_cpu_sgemm(out, in, r, b, r, false, a, in, false, tmp, in, false);
			for (size_t j = 0; j < nw; j++)
				w[j] += ad->s * tmp[j];
			free(tmp);
			ft_dev_unmap(be, lb, b, nb * sizeof(float), false);
			ft_dev_unmap(be, la, a, na * sizeof(float), false);
			ft_dev_unmap(be, L->w[k], w, nw * sizeof(float), true);
		}
	}
	ft_adapter_free(be, ad);
	m->ads[0] = NULL;
	while (m->n_ads > 0 && !m->ads[m->n_ads - 1])
		m->n_ads--;
	m->act_n = 0;
}

/* The dropout mask of linear k of layer l for seed (n elements, 1 = kept),
 * drawn on the host into the backend's mask buffer. */
static const uint8_t *drop_mask(struct ft_model *m, float p, uint64_t seed, int l, enum ft_linear k,
				size_t n)
{
	uint8_t *h = m->be->host_memory ? m->drop_mask : m->drop_h;
	struct ft_rng rng;
	ft_rng_seed(&rng, ft_rng_derive(seed, (uint64_t)l, (uint64_t)k));
	for (size_t i = 0; i < n; i++)
		h[i] = ft_rng_uniform(&rng) >= p;
	if (!m->be->host_memory)
		m->be->upload(m->drop_mask, h, n);
	return m->drop_mask;
}

enum ft_rc ft_adapter_pack(struct ft_model *m, struct ft_adapter *ad, struct ft_err *err)
{
	const struct ft_backend *be = m->be;
	if (!be->pw_pack || !be->matmul_pw_fwd_add || ad->grads_mem || ad->pa)
		return FT_OK; /* nothing to gain, or it trains */
	size_t nk = (size_t)m->cfg.num_layers * FT_LIN_COUNT;
	ad->pa = calloc(nk, sizeof(*ad->pa));
	ad->pb = calloc(nk, sizeof(*ad->pb));
	if (!ad->pa || !ad->pb)
		return ft_failf(err, FT_ENOMEM, NULL, "out of memory packing a LoRA adapter");
	ad->n_packed = nk;
	for (size_t at = 0; at < nk; at++) {
		if (!ad->a[at])
			continue;
		int IC, OC, r = ad->cfg.r;
		ft_model_linear_dims(&m->cfg, (enum ft_linear)(at % FT_LIN_COUNT), &IC, &OC);
		ad->pa[at] = ft_model_pack_one(m, ad->a[at], r, IC, FT_PW_F32, "a LoRA A", err);
		if (!ad->pa[at])
			return err->rc;
		ad->pb[at] = ft_model_pack_one(m, ad->b[at], OC, r, FT_PW_F32, "a LoRA B", err);
		if (!ad->pb[at])
			return err->rc;
	}
	return FT_OK;
}

void ft_lora_fwd(struct ft_model *m, const struct ft_adapter *ad, int l, enum ft_linear k,
		 float *out, const float *in, int N, float *u, float *lx, uint64_t drop_seed)
{
	const struct ft_backend *be = m->be;
	int IC, OC;
	ft_model_linear_dims(&m->cfg, k, &IC, &OC);
	const float *x = in;
	if (lx) {
		/* nn.Dropout(p): keep with probability 1-p, scale kept by 1/(1-p);
		 * the mask is a function of (seed, layer, linear) and is drawn
		 * again in backward */
		float p = (float)ad->cfg.dropout, keep = 1.0f / (1.0f - p);
		size_t n = (size_t)N * IC;
		be->dropout_fwd(lx, in, drop_mask(m, p, drop_seed, l, k, n), n, keep);
		x = lx;
	}
	int r = ad->cfg.r;
	size_t at = (size_t)l * FT_LIN_COUNT + k;
	if (ad->pa && ad->pa[at]) { /* the same products, the weights packed once */
		be->matmul_pw_fwd(u, x, ad->pa[at], NULL, N, IC, r);
		be->scale(u, (size_t)N * r, ad->s);
		be->matmul_pw_fwd_add(out, u, ad->pb[at], N, r, OC);
		return;
	}
	be->matmul_fwd(u, x, ft_adapter_a(ad, l, k), NULL, N, IC, r, false);
	be->scale(u, (size_t)N * r, ad->s);
	be->matmul_fwd(out, u, ft_adapter_b(ad, l, k), NULL, N, r, OC, true);
}

void ft_lora_bwd(struct ft_model *m, int l, enum ft_linear k, float *din, const float *dout,
		 const float *in, int N)
{
	const struct ft_backend *be = m->be;
	const struct ft_adapter *ad = ft_model_own(m);
	struct ft_layer_act *a = &m->acts[l];
	float *la = ft_adapter_a(ad, l, k), *lb = ft_adapter_b(ad, l, k);
	int IC, OC;
	ft_model_linear_dims(&m->cfg, k, &IC, &OC);
	int r = ad->cfg.r;
	float *du = m->s.du;
	be->zero(du, sizeof(float) * (size_t)N * r);
	/* y += u B^T: dB += dout^T u; du = dout B */
	be->matmul_bwd(du, ft_model_lora_grad(m, lb), NULL, dout, a->lu[k], lb, N, r, OC);
	/* u = s x A^T: dA += s du^T x; dx += s du A */
	be->scale(du, (size_t)N * r, ad->s);
	if (!a->lx[k]) {
		be->matmul_bwd(din, ft_model_lora_grad(m, la), NULL, du, in, la, N, IC, r);
		return;
	}
	float *dx = m->s.dx;
	size_t n = (size_t)N * IC;
	be->zero(dx, sizeof(float) * n);
	be->matmul_bwd(dx, ft_model_lora_grad(m, la), NULL, du, a->lx[k], la, N, IC, r);
	float p = (float)ad->cfg.dropout, keep = 1.0f / (1.0f - p);
	be->dropout_bwd(din, dx, drop_mask(m, p, m->drop_seed, l, k, n), n, keep);
}
