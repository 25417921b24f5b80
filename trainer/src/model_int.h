/*
 * model_int.h - the inside of struct ft_model (model.c), shared with the
 * loaders and writers (model_io.c), the loop (train.c) and generation.
 */
#ifndef FT_MODEL_INT_H
#define FT_MODEL_INT_H

#include "ft/model.h"
#include "ft/nf4.h"
#include "engine_int.h"
#include "cpu/cpu_int.h"

/* One decoder block's weights (pointers into the model's blocks). */
struct ft_layer {
	float *ln1, *ln2;
	float *w[FT_LIN_COUNT];
	float *b[FT_LIN_COUNT]; /* NULL when the linear has no bias */
	float *lora_a[FT_LIN_COUNT], *lora_b[FT_LIN_COUNT]; /* NULL: not adapted */
	struct ft_nf4 *q[FT_LIN_COUNT]; /* QLoRA: the NF4 weight (w[k] is NULL then) */
};

/* What one block's forward saves for its backward. */
struct ft_layer_act {
	float *res; /* [N,C] block input (residual stream) */
	float *ln1, *rstd1; /* [N,C], [N] */
	float *q, *k, *v; /* after RoPE */
	float *lse; /* [B,nh,T] attention log-sum-exp */
	float *att; /* [N,nh*hd] */
	float *mid; /* [N,C] residual after attention */
	float *ln2, *rstd2;
	float *gate, *up, *h; /* [N,I] */
	float *lu[FT_LIN_COUNT]; /* LoRA s * x A^T, [N,r] */
	float *lx[FT_LIN_COUNT]; /* LoRA dropout(x), [N,in] (only with dropout) */
};

struct ft_scratch {
	float *dres, *dln, *dq, *dk, *dv, *datt, *dgate, *dup, *dh, *du, *dx;
};

struct ft_model {
	struct ft_model_config cfg;
	const struct ft_backend *be;

	/* base weights: one block, tensors point into it */
	float *params_mem;
	size_t params_total;
	struct ft_param *params;
	size_t n_params;
	float *wte, *norm, *lm_head; /* lm_head == wte when tied */
	struct ft_layer *layers;
	float *grads_mem; /* full fine-tuning only; same layout as params_mem */
	/* QLoRA: the decoder linears in NF4, all in one block (nf4.h) */
	bool nf4;
	void *nf4_mem;
	size_t nf4_bytes;
	struct ft_nf4 *nf4_w; /* [num_layers * FT_LIN_COUNT] (host headers) */
	float *nf4_map; /* backend copy of ft_nf4_dynamic_map (the headers' code2) */

	/* LoRA */
	bool has_lora, lora_on;
	struct ft_lora_config lora;
	float lora_s;
	float *lora_mem, *lora_grads_mem;
	size_t lora_total;
	struct ft_param *lora_params;
	size_t n_lora_params;

	/* activations for an act_B x act_T batch */
	float *act_mem, *scratch_mem;
	size_t act_n;
	int act_B, act_T;
	struct ft_layer_act *acts;
	float *res_final, *lnf, *rstdf, *logits;
	struct ft_scratch s;
	/* the batch on the backend, [act_B * act_T] each: positions and doc ids
	 * (filled on the host: pos_h / doc_h staging, NULL on a host-memory
	 * backend), ids and targets (ids / tgt: what the ops read - the batch's
	 * own arrays on a host-memory backend, else ids_d / tgt_d uploaded) */
	int32_t *pos, *doc, *pos_h, *doc_h;
	int32_t *ids_d, *tgt_d;
	const int32_t *ids, *tgt;
	/* LoRA dropout masks drawn on the host (drop_h staging), [N * max in] */
	uint8_t *drop_mask, *drop_h;
	bool fwd_train;
	uint64_t drop_seed;
	int ckpt_every; /* activation checkpointing: layers l % ckpt_every == 0 (0: off) */

	/* RoPE tables [rope_max][hd/2] */
	float *rope_cos, *rope_sin;
	int rope_max;
};

/* The tensor table under construction: record (name, shape, slot), then
 * ft_slots_point allocates one block and points every slot into it. */
struct ft_slotlist {
	struct ft_param *p;
	float ***slot;
	size_t n, cap, total;
};
void ft_slot_add(struct ft_slotlist *l, float **slot, bool decay, int ndim, int64_t d0, int64_t d1,
		 const char *fmt, ...) FT_PRINTF(7, 8);
float *ft_slots_point(struct ft_slotlist *l, const struct ft_backend *be);
/* The batch's int32 arrays (n of them) as the ops read them: src itself on a
 * host-memory backend, else uploaded into dev. */
const int32_t *ft_model_batch_ints(const struct ft_model *m, int32_t *dev, const int32_t *src,
				   size_t n);
/* Host views of an NF4 weight that lives on the backend: a header over a
 * staging copy of its bytes (fetched or not), and the upload back. */
enum ft_rc ft_model_nf4_map(const struct ft_model *m, const struct ft_nf4 *q, struct ft_nf4 *hq,
			    bool fetch, struct ft_err *err);
void ft_model_nf4_unmap(const struct ft_model *m, struct ft_nf4 *q, struct ft_nf4 *hq, bool store);
/* Whether layer l's activations are recomputed in backward (checkpointed). */
static inline bool ft_model_layer_recomputed(const struct ft_model *m, int l)
{
	return m->ckpt_every > 0 && l % m->ckpt_every == 0;
}
/* "self_attn" or "mlp" */
const char *ft_linear_module(enum ft_linear l);
/* Gradient of a LoRA tensor (same offset in the gradient block). */
float *ft_model_lora_grad(const struct ft_model *m, const float *p);

/* A model whose decoder linears will be NF4 (nf4): their fp32 slots are
 * not allocated; ft_model_nf4_alloc lays out the NF4 block once the
 * per-weight double-quantisation flags (nested[l * FT_LIN_COUNT + k]) are known. */
enum ft_rc ft_model_create(const struct ft_model_config *cfg, const struct ft_backend *be, bool nf4,
			   struct ft_model **out, struct ft_err *err);
enum ft_rc ft_model_nf4_alloc(struct ft_model *m, const bool *nested, struct ft_err *err);
/* Replace the NF4 weights by their fp32 dequantisation (merging, writing). */
enum ft_rc ft_model_nf4_to_f32(struct ft_model *m, struct ft_err *err);
/* out[N,OC] = in W^T + b for linear k of layer l, fp32 or NF4 (no LoRA). */
void ft_model_linear_base(struct ft_model *m, int l, enum ft_linear k, float *out, const float *in,
			  int N);

/* lora.c: the adapter path of linear k of layer l (see its top comment). */
void ft_lora_fwd(struct ft_model *m, int l, enum ft_linear k, float *out, const float *in, int N,
		 uint64_t drop_seed, bool train);
void ft_lora_bwd(struct ft_model *m, int l, enum ft_linear k, float *din, const float *dout,
		 const float *in, int N);

void ft_model_linear_dims(const struct ft_model_config *c, enum ft_linear l, int *in, int *out);
/* peft's init: A ~ U(-1/sqrt(in), 1/sqrt(in)) from the job seed, B = 0. */
void ft_model_lora_init(struct ft_model *m, uint64_t seed);

#endif
