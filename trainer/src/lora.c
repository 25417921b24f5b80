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
 * Init (peft's default): A ~ U(-1/sqrt(in), 1/sqrt(in)), the bound that
 * kaiming_uniform_(a=sqrt(5)) gives; B = 0. Merging folds s B A into W.
 * The adapters' weights and gradients are one allocation each, named as
 * peft saves them (base_model.model.model.layers.<i>.<module>.<linear>.lora_A.weight).
 */
#include "model_int.h"
#include "rng_int.h"

#include <math.h>

double ft_lora_scale(const struct ft_lora_config *lc)
{
	return lc->rslora ? lc->alpha / sqrt((double)lc->r) : lc->alpha / lc->r;
}

enum ft_rc ft_model_lora_add(struct ft_model *m, const struct ft_lora_config *lc,
			     struct ft_err *err)
{
	const struct ft_model_config *c = &m->cfg;
	if (m->has_lora)
		return ft_failf(err, FT_ECONFLICT, NULL, "the model already has LoRA adapters");
	if (lc->r <= 0 || lc->r > 4096)
		return ft_failf(err, FT_EINVAL, NULL, "\"r\" must be between 1 and 4096 (got %d)",
				lc->r);
	if (!(lc->dropout >= 0 && lc->dropout < 1))
		return ft_failf(err, FT_EINVAL, NULL, "\"lora_dropout\" must be in [0, 1) (got %g)",
				lc->dropout);
	if (!(lc->targets & ((1u << FT_LIN_COUNT) - 1)))
		return ft_failf(err, FT_EINVAL, NULL, "\"target_modules\" names no linear layer");
	struct ft_slotlist l = { 0 };
	for (int i = 0; i < c->num_layers; i++) {
		struct ft_layer *L = &m->layers[i];
		for (int k = 0; k < FT_LIN_COUNT; k++) {
			if (!(lc->targets & (1u << k)))
				continue;
			int in, out;
			ft_model_linear_dims(c, (enum ft_linear)k, &in, &out);
			ft_slot_add(&l, &L->lora_a[k], true, 2, lc->r, in,
				    "base_model.model.model.layers.%d.%s.%s.lora_A.weight", i,
				    ft_linear_module((enum ft_linear)k),
				    ft_linear_name((enum ft_linear)k));
			ft_slot_add(&l, &L->lora_b[k], true, 2, out, lc->r,
				    "base_model.model.model.layers.%d.%s.%s.lora_B.weight", i,
				    ft_linear_module((enum ft_linear)k),
				    ft_linear_name((enum ft_linear)k));
		}
	}
	m->lora_mem = ft_slots_point(&l, m->be);
	m->lora_params = l.p;
	m->n_lora_params = l.n;
	m->lora_total = l.total;
	free(l.slot);
	m->lora_grads_mem = ft_dev_calloc(m->be, (l.total ? l.total : 1) * sizeof(float));
	if (!m->lora_mem || !m->lora_grads_mem)
		return ft_failf(err, FT_ENOMEM, NULL, "out of memory for LoRA adapters");
	for (size_t i = 0; i < m->n_lora_params; i++)
		m->lora_params[i].grad = ft_model_lora_grad(m, m->lora_params[i].data);
	m->lora = *lc;
	m->lora_s = (float)ft_lora_scale(lc);
	m->has_lora = true;
	m->act_n = 0; /* re-plan activations: LoRA adds some */
	return FT_OK;
}

void ft_model_lora_init(struct ft_model *m, uint64_t seed)
{
	/* peft: kaiming_uniform_(A, a=sqrt(5)) -> U(-1/sqrt(in), 1/sqrt(in)); B = 0 */
	struct ft_rng r;
	ft_rng_seed(&r, ft_rng_derive(seed, FT_RNG_LORA_INIT, 0));
	for (size_t i = 0; i < m->n_lora_params; i++) {
		struct ft_param *p = &m->lora_params[i];
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
	return m->has_lora ? &m->lora : NULL;
}

void ft_model_lora_enable(struct ft_model *m, bool on)
{
	m->lora_on = on;
}

void ft_model_lora_merge(struct ft_model *m)
{
	if (!m->has_lora)
		return;
	/* an NF4 base merges into its dequantisation (fails only out of memory,
	 * which aborts here as ft_xcalloc below does) */
	struct ft_err err;
	ft_err_clear(&err);
	FT_ASSERT(ft_model_nf4_to_f32(m, &err) == FT_OK);
	const struct ft_model_config *c = &m->cfg;
	const struct ft_backend *be = m->be;
	int r = m->lora.r;
	for (int i = 0; i < c->num_layers; i++) {
		struct ft_layer *L = &m->layers[i];
		for (int k = 0; k < FT_LIN_COUNT; k++) {
			if (!L->lora_a[k])
				continue;
			int in, out;
			ft_model_linear_dims(c, (enum ft_linear)k, &in, &out);
			/* W[out,in] += s * B[out,r] A[r,in], on the host (once, at the
			 * end: staged one weight at a time when memory is not the host's) */
			size_t nw = (size_t)out * in, na = (size_t)r * in, nb = (size_t)out * r;
			float *w = ft_dev_map(be, L->w[k], nw * sizeof(float), true);
			float *a = ft_dev_map(be, L->lora_a[k], na * sizeof(float), true);
			float *b = ft_dev_map(be, L->lora_b[k], nb * sizeof(float), true);
			FT_ASSERT(w && a && b);
			float *tmp = ft_xcalloc(nw, sizeof(float));
			ft_cpu_sgemm(out, in, r, b, r, false, a, in, false, tmp, in, false);
			for (size_t j = 0; j < nw; j++)
				w[j] += m->lora_s * tmp[j];
			free(tmp);
			ft_dev_unmap(be, L->lora_b[k], b, nb * sizeof(float), false);
			ft_dev_unmap(be, L->lora_a[k], a, na * sizeof(float), false);
			ft_dev_unmap(be, L->w[k], w, nw * sizeof(float), true);
			L->lora_a[k] = L->lora_b[k] = NULL;
		}
	}
	be->free(m->lora_mem);
	be->free(m->lora_grads_mem);
	free(m->lora_params);
	m->lora_mem = m->lora_grads_mem = NULL;
	m->lora_params = NULL;
	m->n_lora_params = 0;
	m->has_lora = false;
	m->act_n = 0;
}

/* The dropout mask of linear k of layer l for seed (n elements, 1 = kept),
 * drawn on the host into the backend's mask buffer. */
static const uint8_t *drop_mask(struct ft_model *m, uint64_t seed, int l, enum ft_linear k,
				size_t n)
{
	float p = (float)m->lora.dropout;
	uint8_t *h = m->be->host_memory ? m->drop_mask : m->drop_h;
	struct ft_rng rng;
	ft_rng_seed(&rng, ft_rng_derive(seed, (uint64_t)l, (uint64_t)k));
	for (size_t i = 0; i < n; i++)
		h[i] = ft_rng_uniform(&rng) >= p;
	if (!m->be->host_memory)
		m->be->upload(m->drop_mask, h, n);
	return m->drop_mask;
}

void ft_lora_fwd(struct ft_model *m, int l, enum ft_linear k, float *out, const float *in, int N,
		 uint64_t drop_seed, bool train)
{
	const struct ft_backend *be = m->be;
	struct ft_layer *L = &m->layers[l];
	struct ft_layer_act *a = &m->acts[l];
	int IC, OC;
	ft_model_linear_dims(&m->cfg, k, &IC, &OC);
	const float *x = in;
	if (a->lx[k] && train) {
		/* nn.Dropout(p): keep with probability 1-p, scale kept by 1/(1-p);
		 * the mask is a function of (seed, layer, linear) and is drawn
		 * again in backward */
		float keep = 1.0f / (1.0f - (float)m->lora.dropout);
		size_t n = (size_t)N * IC;
		be->dropout_fwd(a->lx[k], in, drop_mask(m, drop_seed, l, k, n), n, keep);
		x = a->lx[k];
	}
	int r = m->lora.r;
	be->matmul_fwd(a->lu[k], x, L->lora_a[k], NULL, N, IC, r, false);
	be->scale(a->lu[k], (size_t)N * r, m->lora_s);
	be->matmul_fwd(out, a->lu[k], L->lora_b[k], NULL, N, r, OC, true);
}

void ft_lora_bwd(struct ft_model *m, int l, enum ft_linear k, float *din, const float *dout,
		 const float *in, int N)
{
	const struct ft_backend *be = m->be;
	struct ft_layer *L = &m->layers[l];
	struct ft_layer_act *a = &m->acts[l];
	int IC, OC;
	ft_model_linear_dims(&m->cfg, k, &IC, &OC);
	int r = m->lora.r;
	float *du = m->s.du;
	be->zero(du, sizeof(float) * (size_t)N * r);
	/* y += u B^T: dB += dout^T u; du = dout B */
	be->matmul_bwd(du, ft_model_lora_grad(m, L->lora_b[k]), NULL, dout, a->lu[k], L->lora_b[k],
		       N, r, OC);
	/* u = s x A^T: dA += s du^T x; dx += s du A */
	be->scale(du, (size_t)N * r, m->lora_s);
	if (!a->lx[k]) {
		be->matmul_bwd(din, ft_model_lora_grad(m, L->lora_a[k]), NULL, du, in, L->lora_a[k],
			       N, IC, r);
		return;
	}
	float *dx = m->s.dx;
	size_t n = (size_t)N * IC;
	be->zero(dx, sizeof(float) * n);
	be->matmul_bwd(dx, ft_model_lora_grad(m, L->lora_a[k]), NULL, du, a->lx[k], L->lora_a[k], N,
		       IC, r);
	float keep = 1.0f / (1.0f - (float)m->lora.dropout);
	be->dropout_bwd(din, dx, drop_mask(m, m->drop_seed, l, k, n), n, keep);
}
