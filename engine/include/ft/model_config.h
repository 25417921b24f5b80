/*
 * ft/model_config.h - a Hugging Face config.json for the Llama family
 * (LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM).
 *
 * What is read (names as in transformers):
 *   architectures[0], model_type, vocab_size, hidden_size, intermediate_size,
 *   num_hidden_layers, num_attention_heads, num_key_value_heads (default as
 *   in transformers: = heads for Llama, 8 for Mistral, 32 for Qwen2; null
 *   = heads), head_dim (default hidden/heads), max_position_embeddings,
 *   rms_norm_eps, rope_theta, rope_scaling {rope_type|type: "llama3" with
 *   factor, low_freq_factor, high_freq_factor, original_max_position_embeddings;
 *   or "linear" with factor}, tie_word_embeddings, attention_bias (Qwen2:
 *   always true for q/k/v, false for o), mlp_bias, hidden_act ("silu"),
 *   bos_token_id / eos_token_id (int or list), pad_token_id, torch_dtype,
 *   sliding_window (Mistral; Qwen2's use_sliding_window must be false).
 * Both transformers 4 (rope_theta + rope_scaling) and 5 (rope_parameters)
 * spellings are read; the table of keys and defaults is in model_config.c.
 * An unknown architecture, a missing required field, or inconsistent sizes
 * (hidden not divisible by heads, heads not divisible by kv heads) are clear
 * FT_EINVAL errors that name the field. Integers too big for 64 bits (what
 * Python writes for "no limit") are read as numbers (ft_json_parse_config).
 */
#ifndef FT_MODEL_CONFIG_H
#define FT_MODEL_CONFIG_H

#include "ft/base.h"
#include "ft/buf.h"
#include "ft/err.h"
#include "ft/json.h"

enum ft_arch { FT_ARCH_LLAMA = 0, FT_ARCH_MISTRAL, FT_ARCH_QWEN2 };
enum ft_rope_type { FT_ROPE_DEFAULT = 0, FT_ROPE_LINEAR, FT_ROPE_LLAMA3 };

#define FT_MAX_EOS_IDS 8
/* The most decoder layers a config may have (num_hidden_layers). */
#define FT_MAX_LAYERS 4096

struct ft_model_config {
	enum ft_arch arch;
	char architecture[64]; /* as written, e.g. "LlamaForCausalLM" */
	int vocab_size;
	int hidden_size;
	int intermediate_size;
	int num_layers;
	int num_heads;
	int num_kv_heads;
	int head_dim;
	int max_position_embeddings;
	double rms_norm_eps;
	double rope_theta;
	enum ft_rope_type rope_type;
	double rope_factor; /* linear and llama3 */
	double rope_low_freq_factor; /* llama3 */
	double rope_high_freq_factor; /* llama3 */
	int rope_original_max_pos; /* llama3 */
	bool tie_word_embeddings;
	bool qkv_bias; /* Qwen2, or attention_bias */
	bool o_bias; /* attention_bias (Llama) */
	bool mlp_bias;
	int bos_token_id; /* -1 when absent */
	int eos_token_ids[FT_MAX_EOS_IDS];
	int n_eos;
	int pad_token_id; /* -1 when absent */
	char torch_dtype[16];
	int sliding_window; /* Mistral: attention window, 0 = none */
};

enum ft_rc ft_model_config_parse(const char *json_text, size_t len, struct ft_model_config *out,
				 struct ft_err *err);
/* The same from a parsed config.json object (a GGUF's metadata is turned
 * into one, ft/gguf.h). */
enum ft_rc ft_model_config_from_json(const json_t *root, struct ft_model_config *out,
				     struct ft_err *err);
/* Reads DIR/config.json, or the metadata of DIR when it is a GGUF file. */
enum ft_rc ft_model_config_load(const char *model_dir, struct ft_model_config *out,
				struct ft_err *err);
/* Parameters in the matmuls, embeddings and norms (what a PyTorch
 * sum(p.numel()) gives for the model). */
uint64_t ft_model_config_param_count(const struct ft_model_config *c);
/* Write config.json text for a model (merged-model output). */
enum ft_rc ft_model_config_to_json(const struct ft_model_config *c, struct ft_buf *out);

#endif
