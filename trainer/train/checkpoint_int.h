/*
 * checkpoint_int.h - training checkpoints (checkpoint.c).
 *
 * A checkpoint is one folder holding one file, DIR/checkpoint.safetensors,
 * written atomically (temp file, fsync, rename): a crash leaves the previous
 * checkpoint or the new one, never half of one.
 *
 * Tensors (F32), for every trainable tensor NAME in the model's table order
 * (HF names for full fine-tuning, PEFT names for LoRA):
 *   | tensor           | what                                        |
 *   |------------------|---------------------------------------------|
 *   | param/NAME       | the weights                                 |
 *   | adam_m/NAME      | AdamW first moment                          |
 *   | adam_v/NAME      | AdamW second moment                         |
 *   | best/NAME        | weights at the best evaluation (early stopping only) |
 * __metadata__ (all strings):
 *   | key             | what                                                |
 *   |-----------------|-----------------------------------------------------|
 *   | format          | "ftplat-checkpoint"                                 |
 *   | format_version  | FT_TRAINER_FORMAT_VERSION                           |
 *   | step            | optimizer steps done; the data position follows from it, the seed and the job (epoch = step / steps_per_epoch, the micro-batches of the next step are fixed) |
 *   | data_epoch, data_micro_batch | where the next step reads: epoch and the index of its first micro-batch in that epoch's order (informational: both follow from step) |
 *   | seed            | the job seed (all randomness derives from it: rng.c) |
 *   | rng             | "xoshiro256** + splitmix64 streams of seed": the generator state is not stored, every stream is re-derived from (seed, purpose, index) |
 *   | method          | "lora", "qlora" or "full" (a QLoRA base is not stored: it is quantised again, deterministically, or read again from the folder) |
 *   | lora_r, lora_targets | adapter shape, checked on resume              |
 *   | best_eval_loss  | %.17g, "inf" when none                              |
 *   | best_step, bad_evals | early-stopping state                          |
 *   | tokens_seen     | training tokens consumed so far                     |
 */
#ifndef FT_CHECKPOINT_INT_H
#define FT_CHECKPOINT_INT_H

#include "ft/model.h"

struct ft_ckpt_state {
	long step;
	uint64_t seed;
	int method; /* enum ft_method */
	int lora_r;
	unsigned lora_targets;
	uint64_t lora_layers; /* a digest of layers_to_transform; 0: every layer */
	double best_eval_loss;
	long best_step;
	int bad_evals;
	long tokens_seen;
	long data_epoch, data_micro; /* informational */
};

/* m, v and best (may be NULL) hold the tensors of ps back to back. All of
 * them (and ps' data) are memory of backend be (ft/backend.h): staged
 * through the host when it is not host memory. */
enum ft_rc ft_ckpt_save(const char *dir, const struct ft_backend *be, const struct ft_param *ps,
			size_t np, const float *m, const float *v, const float *best,
			const struct ft_ckpt_state *st, struct ft_err *err);
/* Restores the weights into ps and m, v, best (when the file has them; *has_best
 * tells). The state's seed/method/lora fields must match want's. */
enum ft_rc ft_ckpt_load(const char *dir, const struct ft_backend *be, struct ft_param *ps,
			size_t np, float *m, float *v, float *best, bool *has_best,
			const struct ft_ckpt_state *want, struct ft_ckpt_state *st,
			struct ft_err *err);

#endif
