/*
 * ft/mem_estimate.h - the GPU memory a training job needs, before it runs.
 *
 * Plain C (runs everywhere): from the model's config.json shape, the method
 * and the run's shape it adds up what the CUDA backend keeps on each GPU.
 * The formulas are written out at the top of trainer/plan/mem_estimate.c;
 * `ft-train estimate --config job.json` prints the result. The breakdown:
 *
 *   weights      bf16 base weights (QLoRA: linear weights in NF4 with
 *                double-quantised block scales) + bf16 copies of what trains
 *   gradients    fp32, one per trainable parameter
 *   optimizer    fp32 master weights + AdamW's two moments (12 bytes per
 *                trainable parameter), sharded over the GPUs under ZeRO-1
 *   activations  what backward needs, per layer (all layers, or with
 *                checkpointing the kept layer inputs + one recomputed span)
 *   logits       the logits chunk, fp32, its gradient written in place
 *   workspace    backward's working set, QLoRA's dequantised weight, cuBLASLt
 *   runtime      CUDA context and library handles (+ NCCL with several GPUs)
 */
#ifndef FT_MEM_ESTIMATE_H
#define FT_MEM_ESTIMATE_H

#include "ft/model_config.h"

enum ft_mem_method { FT_MEM_LORA = 0, FT_MEM_QLORA, FT_MEM_FULL };

struct ft_mem_job {
	const struct ft_model_config *model;
	enum ft_mem_method method;
	int lora_r; /* LoRA / QLoRA rank */
	unsigned lora_targets; /* bit (1 << enum ft_linear) per adapted linear */
	int lora_layers; /* adapted layers (layers_to_transform); 0: every layer */
	bool lora_dropout; /* dropout > 0: each adapter keeps its dropped input */
	int batch_size; /* rows per micro-batch */
	int seq_len; /* tokens per row */
	int checkpoint_every; /* 0: no activation checkpointing; k: keep every k-th layer's input */
	int logits_chunk; /* rows of logits alive at once; 0: all batch_size * seq_len */
	int gpus; /* data-parallel degree, >= 1 */
	bool zero1; /* shard the optimizer state over the GPUs */
	bool fp32; /* the fp32 path (ft-train's "device": "cuda" today): weights,
		    * activations and workspace in 4 bytes, the trained tensors are
		    * their own master copy (optimizer: the two moments only) */
};

struct ft_mem_estimate {
	uint64_t weights, gradients, optimizer, activations, logits, workspace, runtime;
	uint64_t total; /* the sum of the above: bytes on EACH GPU */
	uint64_t params; /* parameters of the model */
	uint64_t trainable; /* parameters that train (adapters, or all) */
};

/* Fill *out. The job must be valid (positive sizes; ft_mem_job_check). */
void ft_mem_estimate(const struct ft_mem_job *job, struct ft_mem_estimate *out);
/* FT_EINVAL naming the field when the job's numbers are out of range. */
enum ft_rc ft_mem_job_check(const struct ft_mem_job *job, struct ft_err *err);

/* "job needs 55.5 GiB on each GPU (weights 15.0, gradients 0.2, optimizer 0.5,
 *  activations 34.1, logits 3.9, workspace 0.8, runtime 1.0)" - GiB, one decimal. */
void ft_mem_estimate_format(const struct ft_mem_estimate *e, char *buf, size_t size);
/* FT_ELIMIT when the job does not fit in free_bytes: the formatted estimate,
 * "but the GPU has N GiB free; " and what to change (enable
 * gradient_checkpointing, lower batch_size, ZeRO-1 over more GPUs, QLoRA). */
enum ft_rc ft_mem_estimate_check(const struct ft_mem_job *job, const struct ft_mem_estimate *e,
				 uint64_t free_bytes, struct ft_err *err);

#endif
