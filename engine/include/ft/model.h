/*
 * ft/model.h - a Llama-family decoder (Llama, Mistral, Qwen2) in fp32 on a
 * backend (ft/backend.h), with its forward and backward pass, LoRA adapters
 * on any of its linear layers, and greedy / sampled generation.
 *
 * Memory (llm.c's malloc_and_point_parameters): the base weights are ONE
 * allocation and every tensor points into it; so are the gradients (only
 * when the base trains, i.e. full fine-tuning), the LoRA weights and their
 * gradients, and the activations. Frozen tensors have no gradient memory.
 *
 * Tensors are listed in a table of struct ft_param with their Hugging Face
 * names ("model.layers.0.self_attn.q_proj.weight") or, for LoRA, PEFT's
 * ("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"); the
 * loaders, the optimizer, checkpoints and the writers all walk that table.
 *
 * Ownership: ft_model_new / ft_model_load return a model freed with
 * ft_model_free. Pointers into the model live as long as it. Tensor data
 * (struct ft_param's data and grad, the logits) is BACKEND memory
 * (ft/backend.h): host code reads it with ft_model_read, or directly only
 * when the backend's host_memory is true (the CPU).
 */
#ifndef FT_MODEL_H
#define FT_MODEL_H

#include "ft/backend.h"
#include "ft/gguf.h"
#include "ft/model_config.h"
#include "ft/safetensors.h"

/* The linear layers of a decoder block, in Hugging Face's names. */
enum ft_linear {
	FT_LIN_Q = 0,
	FT_LIN_K,
	FT_LIN_V,
	FT_LIN_O,
	FT_LIN_GATE,
	FT_LIN_UP,
	FT_LIN_DOWN,
	FT_LIN_COUNT
};
/* "q_proj", ... ; and "self_attn" / "mlp" for the module it sits in. */
const char *ft_linear_name(enum ft_linear l);
bool ft_linear_parse(const char *name, enum ft_linear *out);

struct ft_lora_config {
	unsigned targets; /* bit (1 << enum ft_linear) per adapted linear */
	int r;
	double alpha;
	double dropout;
	bool rslora; /* scale alpha / sqrt(r) instead of alpha / r */
	/* peft's layers_to_transform: with some_layers, only the layers whose
	 * bit is set (ft_lora_layer) are adapted; otherwise every layer */
	bool some_layers;
	uint64_t layers[FT_MAX_LAYERS / 64];
};
/* alpha / r, or alpha / sqrt(r) with rsLoRA. */
double ft_lora_scale(const struct ft_lora_config *lc);
/* Whether layer l is adapted. */
static inline bool ft_lora_layer(const struct ft_lora_config *lc, int l)
{
	return !lc->some_layers ||
	       (l >= 0 && l < FT_MAX_LAYERS && (lc->layers[l / 64] >> (l % 64) & 1));
}
/* The layers named exist in a model of num_layers (the adapter's check when
 * it is built, and ft-api's when a job is created on a known base). */
enum ft_rc ft_lora_layers_check(const struct ft_lora_config *lc, int num_layers,
				struct ft_err *err);
/* How many of the first num_layers layers are adapted. */
int ft_lora_layer_count(const struct ft_lora_config *lc, int num_layers);
/* layers_to_transform as peft writes it (an integer or a list of layer
 * indices, null or absent: every layer) into lc; key names it in errors.
 * The one reading of that field: the job file, the API and PEFT folders. */
enum ft_rc ft_lora_layers_parse(const json_t *v, const char *key, struct ft_lora_config *lc,
				struct ft_err *err);
/* A PEFT adapter_config.json (the fields above; targets are left 0: a
 * folder's come from its tensors). Refuses what we do not implement (DoRA,
 * LoRA biases, rank or alpha patterns, modules_to_save, Conv1D layouts,
 * a layers_pattern other than "layers") naming the field. */
enum ft_rc ft_peft_config_parse(const char *text, size_t len, struct ft_lora_config *lc,
				struct ft_err *err);
/* The adapted layers as peft's layers_to_transform: a sorted list, or null
 * when every layer is adapted. */
json_t *ft_lora_layers_json(const struct ft_lora_config *lc);

/* One tensor of the table. grad is NULL when it does not train. */
struct ft_param {
	char name[128];
	float *data;
	float *grad;
	int ndim;
	int64_t shape[2];
	size_t n;
	bool decay; /* weight decay applies (not norms, not biases) */
};

/* A batch of B rows of T tokens. targets[b,t] is the token to predict at
 * position t (already shifted; -100 = not trained); pos restarts at 0 for
 * each packed document and doc tells documents apart (attention never
 * crosses a document). pos and doc may be NULL: 0..T-1 and one document. */
struct ft_batch {
	int B, T;
	const int32_t *ids;
	const int32_t *targets;
	const int32_t *pos;
	const int32_t *doc;
};

struct ft_model;

/* Load DIR (config.json + safetensors, one file or sharded) as fp32; DIR
 * may also be a GGUF file (ft/gguf.h), dequantised. */
enum ft_rc ft_model_load(const char *model_dir, const struct ft_backend *be, struct ft_model **out,
			 struct ft_err *err);
/* QLoRA: load DIR with the 7 decoder linears of every layer held in NF4
 * (ft/nf4.h): weights the folder stores in bitsandbytes' 4-bit format are
 * read as they are, the others are quantised at load, one at a time
 * (double_quant: bitsandbytes' compress_statistics). Embeddings, norms and
 * lm_head stay fp32. ft_model_load reads a folder where any linear is stored
 * in the 4-bit format this way too (quantising those that are not). */
enum ft_rc ft_model_load_nf4(const char *model_dir, const struct ft_backend *be, bool double_quant,
			     struct ft_model **out, struct ft_err *err);
/* Bytes of the NF4 weights (0 when the model has none) and of the fp32 ones. */
size_t ft_model_nf4_bytes(const struct ft_model *m);
size_t ft_model_f32_bytes(const struct ft_model *m);
/* Packs the decoder's linears and lm_head for inference in fmt (F32: the
 * same values, laid out for the backend's GEMM, logits bit-identical to
 * the unpacked model's; Q8_0: quantised as GGUF's Q8_0 by llama.cpp's
 * reference rule). The packed copies are what the forward multiplies by
 * (ft-serve, generate, and the CPU trainer's LoRA on an F32-packed frozen
 * base: the same bits; BF16: bf16 arithmetic, the input gradient too, for a
 * LoRA's base_dtype "bf16"); the base's own weights must not change while packed
 * (full fine-tuning of a packed model is a programming error; a LoRA merge
 * unpacks first). FT_EINVAL when the backend cannot
 * pack, the model is NF4 or a Q8_0 row is not a multiple of 32; FT_ENOMEM.
 * ft_model_pack_bytes: the packed weights' bytes (0 when not packed). */
enum ft_rc ft_model_pack(struct ft_model *m, enum ft_pw_fmt fmt, struct ft_err *err);
size_t ft_model_pack_bytes(const struct ft_model *m);
/* The packed format's name ("f32", "bf16", "q8_0"), or NULL when not packed. */
const char *ft_model_pack_name(const struct ft_model *m);
/* Frees the packed copies (the forward multiplies by the fp32 weights
 * again): before the weights change, as a LoRA merge changes them. */
void ft_model_unpack(struct ft_model *m);
/* "f32" / "q8_0" <-> enum ft_pw_fmt; false for another name. */
bool ft_pw_fmt_parse(const char *name, enum ft_pw_fmt *out);
const char *ft_pw_fmt_name(enum ft_pw_fmt fmt);
/* A model with zeroed weights for a config (tests, benchmarks). */
enum ft_rc ft_model_new(const struct ft_model_config *cfg, const struct ft_backend *be,
			struct ft_model **out, struct ft_err *err);
void ft_model_free(struct ft_model *m);
const struct ft_model_config *ft_model_config(const struct ft_model *m);
const struct ft_backend *ft_model_backend(const struct ft_model *m);

/* Load a PEFT LoRA adapter folder (adapter_config.json +
 * adapter_model.safetensors) onto the model; it must have no adapters yet. */
enum ft_rc ft_model_lora_load_peft(struct ft_model *m, const char *dir, struct ft_err *err);
/* Write the adapters as a PEFT folder peft's PeftModel.from_pretrained loads.
 * base_model (may be NULL) goes to "base_model_name_or_path". */
enum ft_rc ft_model_lora_save_peft(struct ft_model *m, const char *dir, const char *base_model,
				   struct ft_err *err);
/* Write the (merged) model as a Hugging Face folder: the weights in one
 * dtype (F32, F16 or BF16), as model.safetensors or, past max_shard_bytes,
 * as shards with model.safetensors.index.json (transformers' layout);
 * config.json (the base's, with "torch_dtype" saying the dtype written),
 * the tokenizer files, the chat template and generation_config.json copied
 * from base_dir (may be NULL; a GGUF base gets tokenizer files made from its
 * metadata; a generation config is written from config.json when the base
 * has none). progress (may be NULL) is called after each
 * weights file with the bytes written so far and in all. */
struct ft_hf_save_opts {
	enum ft_dtype dtype; /* FT_DTYPE_F32 (0), FT_DTYPE_F16 or FT_DTYPE_BF16 */
	uint64_t max_shard_bytes; /* 0: one file */
	void (*progress)(void *ud, const char *file, uint64_t done, uint64_t total);
	void *ud;
};
enum ft_rc ft_model_save_hf_opts(struct ft_model *m, const char *dir, const char *base_dir,
				 const struct ft_hf_save_opts *o, struct ft_err *err);
/* ft_model_save_hf_opts in F32, one file. */
enum ft_rc ft_model_save_hf(struct ft_model *m, const char *dir, const char *base_dir,
			    struct ft_err *err);

/* GGUF for llama.cpp (model_gguf.c has the layout): the model's base
 * weights (adapters merged by ft_model_lora_merge are part of them, others
 * are not) in a file type (ft/gguf.h's table), its tokenizer and chat
 * template from base_dir (a folder or a GGUF); or the model's own LoRA
 * adapter as a GGUF LoRA (ftype F32 or F16). name: general.name (NULL:
 * the base folder's name). An NF4 base is written from its fp32
 * dequantisation. */
struct ft_gguf_save_opts {
	enum ft_gguf_ftype ftype;
	const char *name;
	ft_gguf_progress_fn progress; /* may be NULL */
	void *ud;
};
enum ft_rc ft_model_save_gguf(struct ft_model *m, const char *path, const char *base_dir,
			      const struct ft_gguf_save_opts *o, struct ft_err *err);
enum ft_rc ft_model_lora_save_gguf(struct ft_model *m, const char *path,
				   const struct ft_gguf_save_opts *o, struct ft_err *err);

/* Full fine-tuning: allocate gradients for every base tensor. */
enum ft_rc ft_model_train_base(struct ft_model *m, struct ft_err *err);
/* Add LoRA adapters (A, B zero; see ft_model_lora_init). Base stays frozen. */
enum ft_rc ft_model_lora_add(struct ft_model *m, const struct ft_lora_config *lc,
			     struct ft_err *err);
const struct ft_lora_config *ft_model_lora(const struct ft_model *m); /* NULL: none */
/* peft's init: A ~ U(-1/sqrt(in), 1/sqrt(in)) from the job seed, B = 0. */
void ft_model_lora_init(struct ft_model *m, uint64_t seed);
/* Enable / disable the adapters in the forward pass (generation, DPO ref). */
void ft_model_lora_enable(struct ft_model *m, bool on);
/* Fold scale * B A into the base weights and drop the adapters. An NF4
 * base is dequantised to fp32 first (the merged model is fp32). */
void ft_model_lora_merge(struct ft_model *m);

/* Activation checkpointing: every-th layer (0, 1 * every, 2 * every, ...)
 * keeps only its input in the forward pass and is recomputed in backward
 * (1 = every layer, 0 = off). Same gradients, bit for bit; saves that
 * layer's activations for one more forward per step. */
void ft_model_set_checkpointing(struct ft_model *m, int every);
/* on: ft_model_forward with targets computes the logits (and backward their
 * gradient) of the rows that have a target only, when the output layer is
 * frozen and the backend's memory is the host's: a prompt's positions cost
 * no vocabulary-wide product (for SFT with answer-only loss, about half the
 * rows). The same loss and gradients, bit for bit (the backends add the
 * rows' losses in row order); ft_model_logits is then not available. Off by
 * default. */
void ft_model_set_loss_rows_only(struct ft_model *m, bool on);
/* Bytes of activation memory planned for the last batch shape (0 before
 * the first forward). */
size_t ft_model_activation_bytes(const struct ft_model *m);

/* The tensor tables: base (HF names) and LoRA (PEFT names). */
struct ft_param *ft_model_params(struct ft_model *m, size_t *count);
struct ft_param *ft_model_lora_params(struct ft_model *m, size_t *count);
/* The tensors that train (LoRA's when adapters exist, else the base's when
 * ft_model_train_base was called). */
struct ft_param *ft_model_trainable(struct ft_model *m, size_t *count);

/* Forward. With targets and grad_scale != 0, the logits are turned into
 * their gradient (grad_scale * d loss_sum / d logits) ready for backward;
 * st (may be NULL) gets the loss sum, trained tokens and correct argmaxes.
 * lora_rng: seed for the LoRA dropout masks of this call (ignored without
 * dropout or when grad_scale is 0, i.e. evaluation). */
enum ft_rc ft_model_forward(struct ft_model *m, const struct ft_batch *b, float grad_scale,
			    uint64_t lora_rng, struct ft_ce_stats *st, struct ft_err *err);
/* Logits of the last forward, [B*T, vocab] (before the loss turned them
 * into gradients), in BACKEND memory (ft/backend.h): read them on the host
 * with ft_model_read. */
const float *ft_model_logits(const struct ft_model *m);
/* Copy n floats of a model tensor t (backend memory: logits, a struct
 * ft_param's data or grad) to host[n]. */
void ft_model_read(const struct ft_model *m, float *host, const float *t, size_t n);
/* Backward of the last forward (which must have had grad_scale != 0):
 * accumulates into the gradients of the trainable tensors. */
void ft_model_backward(struct ft_model *m, const struct ft_batch *b);
void ft_model_zero_grad(struct ft_model *m);

/* Sequence-level losses (DPO), in three calls per micro-batch:
 *   ft_model_forward_keep      a training forward (LoRA dropout masks drawn
 *                              from lora_rng) that keeps the logits;
 *   ft_model_row_logps         logp[r] = sum over row r's trained positions
 *                              of log softmax(logits)[target] (b->targets);
 *   ft_model_logits_grad_rows  logits of row r -> scale[r] * (softmax -
 *                              onehot) on its trained positions, 0 elsewhere;
 * then ft_model_backward. b must be the batch of the forward. */
enum ft_rc ft_model_forward_keep(struct ft_model *m, const struct ft_batch *b, uint64_t lora_rng,
				 struct ft_err *err);
void ft_model_row_logps(struct ft_model *m, const struct ft_batch *b, double *logp);
void ft_model_logits_grad_rows(struct ft_model *m, const struct ft_batch *b, const float *scale);

/* ---- several adapters over one base (serving) ----
 * Besides its own adapter (slot 0: ft_model_lora_add / _load_peft, the one
 * that trains), a model holds adapters loaded for serving in slots 1, 2, ...
 * (frozen, each with its own rank, alpha and targets). A cached step gives
 * each row a slot (struct ft_step's adapter), so one batch can mix them. */
/* Load a PEFT adapter folder into a free slot >= 1; *slot gets it. */
enum ft_rc ft_model_adapter_load_peft(struct ft_model *m, const char *dir, int *slot,
				      struct ft_err *err);
void ft_model_adapter_unload(struct ft_model *m, int slot); /* slot >= 1 */
/* The config of the adapter in slot (NULL when empty); the slots in use
 * are below ft_model_adapter_slots. */
const struct ft_lora_config *ft_model_adapter(const struct ft_model *m, int slot);
int ft_model_adapter_slots(const struct ft_model *m);

/* ---- cached inference: the KV cache and the step ----
 * A KV cache holds n_slots sequences of up to max_len positions each: per
 * layer, the keys and values (after RoPE) of every position already run.
 * ft_model_step runs n rows (tokens) through the same layer forward as
 * training; row i is token ids[i] of the sequence in cache slot slot[i] at
 * position pos[i]. Its k and v are stored at (slot, pos) and its query
 * attends to positions 0 .. pos[i] of that slot (the last sliding_window
 * only). Rows are taken in order: pos[i] may be at most the slot's length
 * so far (the positions it holds, counting earlier rows of the same step),
 * and the slot then holds positions 0 .. pos[i]. So a prompt is prefilled
 * as one step of its rows (or several chunks), and each generated token is
 * one row of a later step, beside the rows of other sequences. A run of
 * rows that starts a sequence (positions 0, 1, ..., of one slot) attends
 * within itself as the training forward does; other rows attend to the
 * cache one by one.
 * adapter: per row, the adapter slot (-1: the base alone); NULL: every row
 * uses the own adapter while enabled. logits_rows: the rows whose next-token
 * logits are wanted, in that order (NULL: every row); ft_model_step_logits
 * gives them, [n_logits, vocab], in backend memory (ft_model_read). */
struct ft_kv_cache;
enum ft_rc ft_kv_cache_new(const struct ft_model *m, int n_slots, int max_len,
			   struct ft_kv_cache **out, struct ft_err *err);
void ft_kv_cache_free(struct ft_kv_cache *kv);
/* Forget a slot's positions (its sequence ended; the slot is free). */
void ft_kv_cache_reset(struct ft_kv_cache *kv, int slot);
/* Keep only a slot's first len positions (fewer than it holds; more is a
 * no-op): the next row of the slot may be at position len. ft-serve reuses
 * a finished sequence's slot for a prompt that shares those tokens (its
 * prefix cache): the rows after them attend to the kept keys and values as
 * a prefill chunk starting at len does. */
void ft_kv_cache_truncate(struct ft_kv_cache *kv, int slot, int len);
/* Make slot dst hold the first len positions of slot src (at most what
 * src holds; dst's own positions are dropped; src is unchanged). ft-serve
 * starts a prompt from the start another slot holds, busy or free (its
 * prefix cache): the copied keys and values are the ones src computed, so
 * dst then continues as a truncated src would. */
void ft_kv_cache_copy(struct ft_kv_cache *kv, int dst, int src, int len);
/* Positions a slot holds; bytes of the cache. */
int ft_kv_cache_len(const struct ft_kv_cache *kv, int slot);
size_t ft_kv_cache_bytes(const struct ft_kv_cache *kv);
/* Bytes a cache of n_slots x max_len takes for this model's config. */
size_t ft_kv_cache_size(const struct ft_model_config *c, int n_slots, int max_len);

struct ft_step {
	int n;
	const int32_t *ids, *pos, *slot;
	const int32_t *adapter;
	const int32_t *logits_rows;
	int n_logits;
};
enum ft_rc ft_model_step(struct ft_model *m, struct ft_kv_cache *kv, const struct ft_step *s,
			 struct ft_err *err);
const float *ft_model_step_logits(const struct ft_model *m);
/* The last step's final hidden states, after the final norm (what the
 * lm_head multiplies; Hugging Face's hidden_states[-1]), [n, hidden] for
 * every row of the step in its order, in backend memory. */
const float *ft_model_step_hidden(const struct ft_model *m);

#endif
