/*
 * model_int.h - the inside of struct ft_model (model.c), shared with the
 * loaders and writers (model_io.c), the loop (train.c) and generation.
 */
#ifndef FT_MODEL_INT_H
#define FT_MODEL_INT_H

#include "ft/model.h"
#include "ft/nf4.h"

/* RoPE frequency parameters (from struct ft_model_config). */
struct ft_rope_params {
	enum ft_rope_type type;
	double theta, factor, low_freq_factor, high_freq_factor;
	int original_max_pos;
};

/* rope_tables.c: inv_freq[hd/2]; cos/sin tables [max_pos][hd/2]. */
void ft_rope_inv_freq(float *inv_freq, int hd, const struct ft_rope_params *rp);
void ft_rope_tables(float *cos_t, float *sin_t, int max_pos, int hd,
		    const struct ft_rope_params *rp);

/* One decoder block's weights (pointers into the model's blocks). */
struct ft_layer {
	float *ln1, *ln2;
	float *w[FT_LIN_COUNT];
	float *b[FT_LIN_COUNT]; /* NULL when the linear has no bias */
	struct ft_nf4 *q[FT_LIN_COUNT]; /* QLoRA: the NF4 weight (w[k] is NULL then) */
	struct ft_pw *pw[FT_LIN_COUNT]; /* inference: the packed weight (ft_model_pack) */
};

/* One LoRA adapter over the base (lora.c). Slot 0 of the model's table is
 * the model's own adapter: the one that trains, that ft_model_lora and the
 * PEFT writer mean, and that rows without an adapter index use while
 * enabled. Slots 1.. hold adapters loaded for serving (frozen). Weights are
 * one allocation; a[l * FT_LIN_COUNT + k] points at layer l's linear k
 * (NULL where that linear is not adapted), b likewise. */
struct ft_adapter {
	struct ft_lora_config cfg;
	float s; /* ft_lora_scale */
	float *mem, *grads_mem; /* grads_mem: slot 0 when it trains, else NULL */
	size_t total;
	struct ft_param *params;
	size_t n_params;
	float **a, **b;
	/* a served (frozen) adapter's A and B packed once (ft_adapter_pack):
	 * a decode step repacked them per call, which halved its speed */
	struct ft_pw **pa, **pb;
	size_t n_packed; /* entries of pa and pb (layers x linears) */
};
static inline float *ft_adapter_a(const struct ft_adapter *ad, int l, enum ft_linear k)
{
	return ad->a[(size_t)l * FT_LIN_COUNT + k];
}
static inline float *ft_adapter_b(const struct ft_adapter *ad, int l, enum ft_linear k)
{
	return ad->b[(size_t)l * FT_LIN_COUNT + k];
}

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

/* Work rows of cached inference (ft_model_step): one set shared by every
 * layer, sized for the largest step seen; res alternates between two
 * buffers (a layer's input and output). */
struct ft_step_work {
	int cap; /* rows */
	int scores_cap, logits_cap; /* floats of scores; rows of logits */
	float *mem;
	struct ft_layer_act act;
	float *res2, *lnf, *rstdf, *gathered, *logits, *scores, *lora_u;
	int32_t *ids, *pos, *zeros; /* backend copies of the step's rows */
	int32_t *ids_h, *pos_h; /* host staging (NULL on a host-memory backend) */
	int n_logits;
	/* the decode rows of a layer (attention_decode_rows): host arrays of
	 * cap, and backend rows of cap * q width to gather them when the rows
	 * are not consecutive */
	int *dec_idx, *dec_j0, *dec_pos;
	const float **dec_k, **dec_v;
	float *dec_q, *dec_out;
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
	/* ft_model_pack: the linears and lm_head packed for inference (the
	 * model then only runs forward) */
	struct ft_pw *lm_head_pw;
	bool packed;
	enum ft_pw_fmt pack_fmt;

	/* LoRA adapters: ads[0] the model's own (NULL when none), ads[1..]
	 * those loaded for serving (NULL where unloaded) */
	struct ft_adapter **ads;
	int n_ads, cap_ads;
	bool lora_on; /* the own adapter applies to rows without an index */
	int max_r; /* the largest rank of any adapter loaded so far */
	struct ft_step_work step;

	/* activations for an act_B x act_T batch */
	float *act_mem, *scratch_mem;
	size_t act_n;
	int act_B, act_T;
	struct ft_layer_act *acts;
	float *res_final, *lnf, *rstdf, *logits;
	/* ft_model_set_loss_rows_only: the last forward's logits are those of
	 * the n_head_rows rows head_rows (with targets head_tgt), compacted;
	 * -1: of every row */
	bool loss_rows_only;
	int n_head_rows, head_cap;
	int32_t *head_rows, *head_tgt;
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
/* Gradient of a tensor of the own adapter (same offset in its gradient block). */
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

/* How one run of the layer forward goes: which rows it reads and writes,
 * how they attend, and which adapter each row uses. The same layer code
 * serves training (the batch's rows attend within their document; the
 * activations are kept for backward), evaluation, and cached inference
 * (each row attends to its sequence in the KV cache; the work rows are
 * shared by every layer). */
struct ft_layer_run {
	struct ft_layer_act *a; /* a->res: the layer's input rows */
	float *next; /* the output rows; NULL: stop before the down projection */
	int N;
	const int32_t *pos; /* [N] positions (backend memory) */
	/* attention within the batch: B x T rows, doc ids (backend memory) */
	int B, T;
	const int32_t *doc;
	/* or against the KV cache (ft_model_step) */
	struct ft_kv_cache *kv;
	const struct ft_step *step;
	/* LoRA: row_ad[N] (host) the adapter slot of each row (-1: none), or
	 * NULL: every row uses the own adapter while enabled; lora_u scratch for
	 * the adapter's u [N, max r] (NULL: the training plan's a->lu) */
	const int32_t *row_ad;
	float *lora_u;
	bool train; /* draw LoRA dropout (the own adapter, training only) */
	uint64_t lora_rng;
};

/* One layer's forward (model.c): THE decoder layer, for every caller. */
void ft_model_layer_fwd(struct ft_model *m, int l, const struct ft_layer_run *run);
/* step.c: the attention of a cached run: store each row's k, v in its
 * sequence's cache slot, then attend to that slot's positions. */
void ft_model_attend_cached(struct ft_model *m, int l, const struct ft_layer_run *run);
/* step.c: release the step work rows. */
void ft_model_step_free(struct ft_model *m);

/* The model's own adapter (slot 0), or NULL. */
static inline struct ft_adapter *ft_model_own(const struct ft_model *m)
{
	return m->n_ads ? m->ads[0] : NULL;
}

/* lora.c: the adapter path of linear k of layer l (see its top comment):
 * out[N,OC] += s * (dropout(in) A^T) B^T. u [N, r] receives s * x A^T (kept
 * for backward in training); lx, when not NULL, is the dropout input
 * buffer [N, in] (training with dropout only; drop_seed draws the mask). */
void ft_lora_fwd(struct ft_model *m, const struct ft_adapter *ad, int l, enum ft_linear k,
		 float *out, const float *in, int N, float *u, float *lx, uint64_t drop_seed);
/* Backward of the own adapter's path, from the saved u (and lx). */
void ft_lora_bwd(struct ft_model *m, int l, enum ft_linear k, float *din, const float *dout,
		 const float *in, int N);
void ft_adapter_free(const struct ft_backend *be, struct ft_adapter *ad);
/* A frozen adapter's A and B packed as F32 inference weights (the bits of
 * the unpacked products; nothing when the backend cannot or it trains). */
enum ft_rc ft_adapter_pack(struct ft_model *m, struct ft_adapter *ad, struct ft_err *err);
/* pack.c: one [OC, IC] weight (backend memory) packed; NULL with err set */
struct ft_pw *ft_model_pack_one(const struct ft_model *m, float *w, int OC, int IC,
				enum ft_pw_fmt fmt, const char *what, struct ft_err *err);
/* A new adapter with zeroed weights (and gradients when trainable) for the
 * linears lc->targets of every layer. */
enum ft_rc ft_adapter_new(struct ft_model *m, const struct ft_lora_config *lc, bool trainable,
			  struct ft_adapter **out, struct ft_err *err);
/* Put ad in slot (growing the table); the slot must be free. */
enum ft_rc ft_model_adapter_put(struct ft_model *m, int slot, struct ft_adapter *ad,
				struct ft_err *err);

void ft_model_linear_dims(const struct ft_model_config *c, enum ft_linear l, int *in, int *out);

#endif
