/*
 * mem_estimate.c - bytes a training job needs on each GPU (CUDA backend:
 * bf16 weights and activations, fp32 master weights, gradients and AdamW
 * state for what trains).
 *
 * Shapes: C hidden, I intermediate, L layers, V vocabulary, nh / nkv heads,
 * hd head dim, qd = nh hd, kvd = nkv hd; P parameters
 * (ft_model_config_param_count), Pt trainable parameters; tokens
 * n = batch_size x seq_len; G GPUs.
 *
 *   Pt          full: P.  LoRA / QLoRA: sum over adapted layers (all, or
 *               layers_to_transform) and adapted linears [OC, IC] of r (IC + OC)
 *   weights     LoRA / full: 2 P (bf16)      + LoRA/QLoRA: 2 Pt (bf16 adapter copies)
 *               QLoRA: every linear of the blocks in NF4 (n/2 bytes), one uint8
 *               scale per 64 weights, one fp32 per 256 scales, one fp32 offset
 *               per tensor (bitsandbytes' double quantisation); everything
 *               else (embeddings, norms, lm_head) bf16
 *   gradients   4 Pt
 *   optimizer   12 S, S = Pt, or under ZeRO-1 the padded shard
 *               ceil(Pt / (G 64)) 64 (ft_dp_shard): master copy + m + v
 *   activations per token and layer, what backward reads (bf16 unless noted):
 *                 layer input, norm-1 output, attention output residual,
 *                 norm-2 output             4 C
 *                 q (after RoPE), attention output      2 qd
 *                 k (after RoPE), v                     2 kvd
 *                 gate, up, silu(gate) * up             3 I
 *                 two rstd + nh lse values, fp32        4 (2 + nh) bytes
 *                 LoRA: per adapted linear its rank-r intermediate, and
 *                 with dropout its dropped input (IC); counted in every
 *                 layer (an upper bound under layers_to_transform)
 *               A = 2 (4C + 2qd + 2kvd + 3I + lora) + 4 (2 + nh)
 *               no checkpointing:          n L A
 *               checkpoint every k layers: n (ceil(L / k) 2C + k A)
 *               (the kept layer inputs, plus one span of k layers recomputed
 *               during backward)
 *   logits      rows x V x 4, rows = logits_chunk or n
 *   workspace   2 n (3 I + 2 C) (backward's widest working set: the MLP's
 *               dgate, dup, dh and two C-wide gradient streams)
 *               + 32 MiB cuBLASLt workspace
 *               + QLoRA: the largest dequantised linear, bf16 (2 C I)
 *   runtime     1 GiB (CUDA context, cuBLASLt), + 512 MiB with G > 1 (NCCL)
 * The per-token term is what grows with batch_size and seq_len; the rest is
 * fixed by the model and method.
 * With fp32 (the path ft-train runs on "device": "cuda" until the bf16 one
 * is wired): every "2" above for bf16 storage becomes 4, the trained
 * tensors are their own master copy (weights count them once, optimizer
 * 8 S for the moments), and QLoRA's dequantised slice is at most 32 MiB
 * (cuda/matmul_nf4.cu).
 */
#include "ft/mem_estimate.h"
#include "ft/dp.h"
#include "ft/model.h"

#define GIB (1024.0 * 1024.0 * 1024.0)
#define LT_WORKSPACE ((uint64_t)32 << 20)
#define RUNTIME ((uint64_t)1 << 30)
#define RUNTIME_NCCL ((uint64_t)512 << 20)

/* [OC, IC] of a linear of a block. */
static void lin_shape(const struct ft_model_config *c, enum ft_linear l, uint64_t *oc, uint64_t *ic)
{
	uint64_t C = (uint64_t)c->hidden_size, I = (uint64_t)c->intermediate_size;
	uint64_t qd = (uint64_t)c->num_heads * (uint64_t)c->head_dim;
	uint64_t kvd = (uint64_t)c->num_kv_heads * (uint64_t)c->head_dim;
	switch (l) {
	case FT_LIN_Q: *oc = qd, *ic = C; break;
	case FT_LIN_K:
	case FT_LIN_V: *oc = kvd, *ic = C; break;
	case FT_LIN_O: *oc = C, *ic = qd; break;
	case FT_LIN_GATE:
	case FT_LIN_UP: *oc = I, *ic = C; break;
	default: *oc = C, *ic = I; break; /* down */
	}
}

/* Bytes of one NF4 tensor of n weights with double-quantised scales. */
static uint64_t nf4_bytes(uint64_t n)
{
	uint64_t blocks = (n + 63) / 64, blocks2 = (blocks + 255) / 256;
	return (n + 1) / 2 + blocks + 4 * blocks2 + 4;
}

static uint64_t ceil_div(uint64_t a, uint64_t b)
{
	return (a + b - 1) / b;
}

enum ft_rc ft_mem_job_check(const struct ft_mem_job *j, struct ft_err *err)
{
	const struct {
		const char *name;
		long v, min;
	} f[] = {
		{ "batch_size", j->batch_size, 1 },
		{ "seq_len", j->seq_len, 1 },
		{ "gpus", j->gpus, 1 },
		{ "checkpoint_every", j->checkpoint_every, 0 },
		{ "logits_chunk", j->logits_chunk, 0 },
		{ "lora.r", j->method == FT_MEM_FULL ? 1 : j->lora_r, 1 },
	};
	for (size_t i = 0; i < FT_ARRAY_LEN(f); i++)
		if (f[i].v < f[i].min)
			return ft_failf(err, FT_EINVAL, "invalid_estimate",
					"\"%s\" must be >= %ld (got %ld)", f[i].name, f[i].min,
					f[i].v);
	if (!j->model || j->model->num_layers < 1 || j->model->hidden_size < 1)
		return ft_failf(err, FT_EINVAL, "invalid_estimate", "the model's shape is missing");
	if (j->method != FT_MEM_FULL && j->lora_targets == 0)
		return ft_failf(err, FT_EINVAL, "invalid_estimate",
				"\"lora.target_modules\" must name at least one linear");
	return FT_OK;
}

void ft_mem_estimate(const struct ft_mem_job *j, struct ft_mem_estimate *e)
{
	const struct ft_model_config *c = j->model;
	uint64_t C = (uint64_t)c->hidden_size, I = (uint64_t)c->intermediate_size;
	uint64_t L = (uint64_t)c->num_layers, V = (uint64_t)c->vocab_size;
	uint64_t nh = (uint64_t)c->num_heads;
	uint64_t qd = nh * (uint64_t)c->head_dim;
	uint64_t kvd = (uint64_t)c->num_kv_heads * (uint64_t)c->head_dim;
	uint64_t n = (uint64_t)j->batch_size * (uint64_t)j->seq_len;
	bool adapters = j->method != FT_MEM_FULL;
	uint64_t La = j->lora_layers > 0 ? FT_MIN((uint64_t)j->lora_layers, L) : L;
	uint64_t es = j->fp32 ? 4 : 2; /* bytes per stored weight / activation */

	memset(e, 0, sizeof(*e));
	e->params = ft_model_config_param_count(c);

	/* trainable parameters and the adapters' activations per token and layer */
	uint64_t lora_elems = 0, linear_params = 0, nf4 = 0;
	for (int l = 0; l < FT_LIN_COUNT; l++) {
		uint64_t oc, ic;
		lin_shape(c, (enum ft_linear)l, &oc, &ic);
		linear_params += oc * ic;
		nf4 += nf4_bytes(oc * ic);
		if (adapters && (j->lora_targets & (1u << l))) {
			e->trainable += La * (uint64_t)j->lora_r * (ic + oc);
			lora_elems += (uint64_t)j->lora_r + (j->lora_dropout ? ic : 0);
		}
	}
	if (!adapters)
		e->trainable = e->params;

	if (j->method == FT_MEM_QLORA)
		e->weights = L * nf4 + es * (e->params - L * linear_params);
	else
		e->weights = es * e->params;
	if (adapters)
		e->weights += es * e->trainable;

	e->gradients = 4 * e->trainable;
	uint64_t opt_elems = e->trainable;
	if (j->zero1 && j->gpus > 1) {
		struct ft_dp_shard s;
		ft_dp_shard_compute(e->trainable, j->gpus, 0, &s);
		opt_elems = s.shard_len;
	}
	e->optimizer = (j->fp32 ? 8 : 12) * opt_elems;

	uint64_t A = es * (4 * C + 2 * qd + 2 * kvd + 3 * I + lora_elems) + 4 * (2 + nh);
	if (j->checkpoint_every > 0) {
		uint64_t k = FT_MIN((uint64_t)j->checkpoint_every, L);
		e->activations = n * (ceil_div(L, k) * es * C + k * A);
	} else {
		e->activations = n * L * A;
	}
	uint64_t rows = j->logits_chunk > 0 ? FT_MIN((uint64_t)j->logits_chunk, n) : n;
	e->logits = rows * V * 4;
	e->workspace = es * n * (3 * I + 2 * C) + LT_WORKSPACE;
	if (j->method == FT_MEM_QLORA)
		e->workspace += j->fp32 ? FT_MIN(4 * C * I, (uint64_t)32 << 20) : 2 * C * I;
	e->runtime = RUNTIME + (j->gpus > 1 ? RUNTIME_NCCL : 0);
	e->total = e->weights + e->gradients + e->optimizer + e->activations + e->logits +
		   e->workspace + e->runtime;
}

void ft_mem_estimate_format(const struct ft_mem_estimate *e, char *buf, size_t size)
{
	snprintf(buf, size,
		 "job needs %.1f GiB on each GPU (weights %.1f, gradients %.1f, optimizer %.1f, "
		 "activations %.1f, logits %.1f, workspace %.1f, runtime %.1f)",
		 (double)e->total / GIB, (double)e->weights / GIB, (double)e->gradients / GIB,
		 (double)e->optimizer / GIB, (double)e->activations / GIB, (double)e->logits / GIB,
		 (double)e->workspace / GIB, (double)e->runtime / GIB);
}

enum ft_rc ft_mem_estimate_check(const struct ft_mem_job *j, const struct ft_mem_estimate *e,
				 uint64_t free_bytes, struct ft_err *err)
{
	if (e->total <= free_bytes)
		return FT_OK;
	char what[256];
	ft_mem_estimate_format(e, what, sizeof(what));
	/* the cheapest remedy first: checkpointing costs compute, not quality */
	const char *fix;
	if (j->checkpoint_every == 0 && e->activations > e->total / 4)
		fix = "enable gradient_checkpointing or lower batch_size";
	else if (e->activations + e->logits > e->total / 4)
		fix = "lower batch_size or max_seq_len";
	else if (j->method == FT_MEM_FULL && !(j->zero1 && j->gpus > 1))
		fix = "use LoRA, or shard the optimizer with ZeRO-1 over more GPUs";
	else if (j->method == FT_MEM_LORA)
		fix = "use QLoRA (a 4-bit base) or a GPU with more memory";
	else
		fix = "use a GPU with more memory";
	return ft_failf(err, FT_ELIMIT, "gpu_memory", "%s but the GPU has %.1f GiB free; %s", what,
			(double)free_bytes / GIB, fix);
}
