/*
 * model_config.c - a Hugging Face config.json for Llama, Mistral and Qwen2.
 *
 * Keys read, with the default transformers (5.x) uses when a key is absent:
 *
 *   key                          llama        mistral      qwen2
 *   architectures[0]             picks the architecture; else model_type does
 *   vocab_size, hidden_size,     required     required     required
 *   intermediate_size,
 *   num_hidden_layers,
 *   num_attention_heads
 *   num_key_value_heads          = heads      8            32     (null: = heads)
 *   head_dim                     hidden / heads (then heads must divide hidden)
 *   max_position_embeddings      2048         131072       32768
 *   rms_norm_eps                 1e-6         1e-6         1e-6
 *   rope_theta                   10000        10000        10000
 *   bos_token_id                 1            1            none
 *   eos_token_id (int or list)   2            2            none
 *   pad_token_id                 none         none         none
 *   tie_word_embeddings          false        false        false
 *   attention_bias               q,k,v,o      -            q,k,v always; o never
 *   mlp_bias                     gate,up,down -            -
 *   hidden_act                   must be "silu"
 *   torch_dtype (or dtype)       kept as written
 *   sliding_window               -            4096 (null: none)
 *   use_sliding_window           -            -            must be false
 *
 * RoPE: transformers 4 writes "rope_theta" and "rope_scaling"; transformers
 * 5 writes "rope_parameters" holding both. Either is read; the type is
 * "rope_type" or the legacy "type": "default" (or null / absent) means
 * none, "linear" needs factor, "llama3" needs factor, low_freq_factor,
 * high_freq_factor and original_max_position_embeddings.
 *
 * Parameter count (what sum(p.numel() for p in model.parameters()) gives;
 * tied embeddings count once, rotary inv_freq is a buffer, not a parameter):
 *   E = vocab * hidden                          embed_tokens
 *   per layer: hidden * q + q_bias?q             q_proj, q = heads * head_dim
 *              2 * (hidden * kv + kv_bias?kv)    k_proj, v_proj, kv = kv_heads * head_dim
 *              q * hidden + o_bias?hidden        o_proj
 *              3 * hidden * inter + mlp_bias?(2 * inter + hidden)
 *              2 * hidden                        input and post-attention RMSNorm
 *   + hidden (final norm) + (tied ? 0 : E) (lm_head)
 */
#include <math.h>
#include <sys/stat.h>

#include <jansson.h>

#include "ft/gguf.h"
#include "ft/json.h"
#include "ft/model_config.h"

struct arch_info {
	enum ft_arch arch;
	const char *name;
	const char *model_type;
	int kv_default; /* 0: = num_attention_heads */
	int max_pos_default;
	int bos_default, eos_default; /* -1: none */
	bool attention_bias_key; /* "attention_bias" and "mlp_bias" are read */
	bool fixed_qkv_bias;
};

static const struct arch_info archs[] = {
	{ FT_ARCH_LLAMA, "LlamaForCausalLM", "llama", 0, 2048, 1, 2, true, false },
	{ FT_ARCH_MISTRAL, "MistralForCausalLM", "mistral", 8, 131072, 1, 2, false, false },
	{ FT_ARCH_QWEN2, "Qwen2ForCausalLM", "qwen2", 32, 32768, -1, -1, false, true },
};

#define SUPPORTED_ARCHS "LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM"
#define SUPPORTED_TYPES "llama, mistral, qwen2"
#define MAX_CONFIG_BYTES (4u << 20)

struct rope_info {
	const char *name;
	enum ft_rope_type type;
};

static const struct rope_info ropes[] = {
	{ "default", FT_ROPE_DEFAULT },
	{ "linear", FT_ROPE_LINEAR },
	{ "llama3", FT_ROPE_LLAMA3 },
};

static const struct arch_info *arch_by_name(const char *name)
{
	for (size_t i = 0; i < FT_ARRAY_LEN(archs); i++)
		if (strcmp(archs[i].name, name) == 0)
			return &archs[i];
	return NULL;
}

static const struct arch_info *arch_by_type(const char *type)
{
	for (size_t i = 0; i < FT_ARRAY_LEN(archs); i++)
		if (strcmp(archs[i].model_type, type) == 0)
			return &archs[i];
	return NULL;
}

static const struct arch_info *arch_info(enum ft_arch a)
{
	for (size_t i = 0; i < FT_ARRAY_LEN(archs); i++)
		if (archs[i].arch == a)
			return &archs[i];
	return NULL;
}

/* An int field within [min, max]; absent or null leaves *out. */
static enum ft_rc get_int(const json_t *o, const char *key, unsigned flags, long long min,
			  long long max, int *out, struct ft_err *err)
{
	long long v = *out;
	enum ft_rc rc = ft_json_get_int(o, key, flags | FT_JSON_NULL_OK, min, max, &v, err);
	if (!rc)
		*out = (int)v;
	return rc;
}

static enum ft_rc pick_arch(const json_t *root, const struct arch_info **out, struct ft_err *err)
{
	const char *type = NULL, *name = NULL;
	json_t *archs_v = NULL;
	const struct arch_info *a = NULL;
	enum ft_rc rc;

	rc = ft_json_get_str(root, "model_type", FT_JSON_NULL_OK, &type, err);
	if (rc)
		return rc;
	rc = ft_json_get_arr(root, "architectures", FT_JSON_NULL_OK, &archs_v, err);
	if (rc)
		return rc;
	if (archs_v && json_array_size(archs_v) > 0) {
		json_t *first = json_array_get(archs_v, 0);
		if (!json_is_string(first))
			return ft_failf(err, FT_EINVAL, "invalid_type",
					"\"architectures\"[0] must be a string (got %s)",
					ft_json_type_name(first));
		name = json_string_value(first);
		a = arch_by_name(name);
		if (!a)
			return ft_failf(
				err, FT_EINVAL, "unsupported_architecture",
				"unsupported architecture \"%s\" (supported: " SUPPORTED_ARCHS ")",
				name);
		if (type && strcmp(type, a->model_type) != 0)
			return ft_failf(
				err, FT_EINVAL, "inconsistent_config",
				"\"model_type\" is \"%s\" but architecture \"%s\" needs \"%s\"",
				type, name, a->model_type);
	} else if (type) {
		a = arch_by_type(type);
		if (!a)
			return ft_failf(err, FT_EINVAL, "unsupported_architecture",
					"unsupported model_type \"%s\" (supported: " SUPPORTED_TYPES
					")",
					type);
	} else {
		return ft_failf(err, FT_EINVAL, "missing_field",
				"\"architectures\" or \"model_type\" is required");
	}
	*out = a;
	return FT_OK;
}

/* RoPE: theta and scaling, from "rope_parameters" (transformers 5) or the
 * top-level "rope_theta" + "rope_scaling" (transformers 4). */
static enum ft_rc parse_rope(const json_t *root, struct ft_model_config *c, struct ft_err *err)
{
	json_t *params = NULL, *scaling = NULL;
	const char *type = NULL, *legacy = NULL;
	enum ft_rc rc;

	c->rope_theta = 10000.0;
	c->rope_type = FT_ROPE_DEFAULT;
	rc = ft_json_get_num(root, "rope_theta", FT_JSON_NULL_OK, 1e-3, 1e12, &c->rope_theta, err);
	if (rc)
		return rc;
	rc = ft_json_get_obj(root, "rope_parameters", FT_JSON_NULL_OK, &params, err);
	if (rc)
		return rc;
	rc = ft_json_get_obj(root, "rope_scaling", FT_JSON_NULL_OK, &scaling, err);
	if (rc)
		return rc;
	if (params) {
		rc = ft_json_get_num(params, "rope_theta", FT_JSON_NULL_OK, 1e-3, 1e12,
				     &c->rope_theta, err);
		if (rc) {
			ft_err_prefixf(err, "\"rope_parameters\": ");
			return rc;
		}
		if (!scaling)
			scaling = params;
	}
	if (!scaling)
		return FT_OK;

	const char *where = scaling == params ? "rope_parameters" : "rope_scaling";
	rc = ft_json_get_str(scaling, "rope_type", FT_JSON_NULL_OK, &type, err);
	rc = rc ? rc : ft_json_get_str(scaling, "type", FT_JSON_NULL_OK, &legacy, err);
	if (rc)
		goto prefix;
	if (!type)
		type = legacy;
	if (!type)
		type = "default";
	size_t i;
	for (i = 0; i < FT_ARRAY_LEN(ropes); i++)
		if (strcmp(ropes[i].name, type) == 0)
			break;
	if (i == FT_ARRAY_LEN(ropes))
		return ft_failf(err, FT_EINVAL, "unsupported_rope",
				"unsupported %s type \"%s\" (supported: default, linear, llama3)",
				where, type);
	c->rope_type = ropes[i].type;
	if (c->rope_type == FT_ROPE_DEFAULT)
		return FT_OK;
	rc = ft_json_get_num(scaling, "factor", FT_JSON_REQUIRED, 1e-6, 1e6, &c->rope_factor, err);
	if (rc || c->rope_type != FT_ROPE_LLAMA3)
		goto prefix;
	rc = ft_json_get_num(scaling, "low_freq_factor", FT_JSON_REQUIRED, 1e-6, 1e6,
			     &c->rope_low_freq_factor, err);
	rc = rc ? rc
		: ft_json_get_num(scaling, "high_freq_factor", FT_JSON_REQUIRED, 1e-6, 1e6,
				  &c->rope_high_freq_factor, err);
	rc = rc ? rc
		: get_int(scaling, "original_max_position_embeddings", FT_JSON_REQUIRED, 1,
			  INT32_MAX, &c->rope_original_max_pos, err);
	if (!rc && c->rope_high_freq_factor <= c->rope_low_freq_factor)
		rc = ft_failf(err, FT_EINVAL, "inconsistent_config",
			      "high_freq_factor (%g) must be greater than low_freq_factor (%g)",
			      c->rope_high_freq_factor, c->rope_low_freq_factor);
prefix:
	if (rc)
		ft_err_prefixf(err, "\"%s\": ", where);
	return rc;
}

static enum ft_rc parse_eos(const json_t *root, struct ft_model_config *c, struct ft_err *err)
{
	json_t *v = json_object_get(root, "eos_token_id"), *x;
	size_t i;
	if (!v)
		return FT_OK; /* the architecture's default stays */
	c->n_eos = 0;
	if (json_is_null(v))
		return FT_OK;
	if (json_is_integer(v)) {
		int id = -1;
		enum ft_rc rc = get_int(root, "eos_token_id", 0, 0, INT32_MAX, &id, err);
		if (rc)
			return rc;
		c->eos_token_ids[c->n_eos++] = id;
		return FT_OK;
	}
	if (!json_is_array(v))
		return ft_failf(
			err, FT_EINVAL, "invalid_type",
			"\"eos_token_id\" must be an integer or a list of integers (got %s)",
			ft_json_type_name(v));
	if (json_array_size(v) > FT_MAX_EOS_IDS)
		return ft_failf(err, FT_EINVAL, "out_of_range",
				"\"eos_token_id\" lists %zu ids (at most %d are supported)",
				json_array_size(v), FT_MAX_EOS_IDS);
	json_array_foreach(v, i, x)
	{
		if (!json_is_integer(x) || json_integer_value(x) < 0 ||
		    json_integer_value(x) > INT32_MAX)
			return ft_failf(err, FT_EINVAL, "invalid_type",
					"\"eos_token_id\"[%zu] must be a non-negative integer", i);
		c->eos_token_ids[c->n_eos++] = (int)json_integer_value(x);
	}
	return FT_OK;
}

static enum ft_rc parse_root(const json_t *root, struct ft_model_config *c, struct ft_err *err)
{
	const struct arch_info *a = NULL;
	const char *act = "silu", *dtype = NULL;
	bool head_dim_given;
	bool attn_bias = false;
	enum ft_rc rc;

	if (!json_is_object(root))
		return ft_failf(err, FT_EINVAL, "invalid_type", "must be a JSON object (got %s)",
				ft_json_type_name(root));
	rc = pick_arch(root, &a, err);
	if (rc)
		return rc;
	c->arch = a->arch;
	ft_strlcpy(c->architecture, a->name, sizeof(c->architecture));

	rc = get_int(root, "vocab_size", FT_JSON_REQUIRED, 1, 1 << 24, &c->vocab_size, err);
	rc = rc ? rc
		: get_int(root, "hidden_size", FT_JSON_REQUIRED, 1, 1 << 20, &c->hidden_size, err);
	rc = rc ? rc
		: get_int(root, "intermediate_size", FT_JSON_REQUIRED, 1, 1 << 22,
			  &c->intermediate_size, err);
	rc = rc ? rc
		: get_int(root, "num_hidden_layers", FT_JSON_REQUIRED, 1, FT_MAX_LAYERS,
			  &c->num_layers, err);
	rc = rc ? rc
		: get_int(root, "num_attention_heads", FT_JSON_REQUIRED, 1, 4096, &c->num_heads,
			  err);
	if (rc)
		return rc;

	c->num_kv_heads = a->kv_default ? a->kv_default : c->num_heads;
	if (json_is_null(json_object_get(root, "num_key_value_heads")))
		c->num_kv_heads = c->num_heads;
	rc = get_int(root, "num_key_value_heads", 0, 1, 4096, &c->num_kv_heads, err);
	if (rc)
		return rc;
	head_dim_given = json_is_integer(json_object_get(root, "head_dim"));
	c->head_dim = 0;
	rc = get_int(root, "head_dim", 0, 1, 1 << 16, &c->head_dim, err);
	if (rc)
		return rc;
	if (!head_dim_given) {
		if (c->hidden_size % c->num_heads != 0)
			return ft_failf(err, FT_EINVAL, "inconsistent_config",
					"\"hidden_size\" (%d) is not divisible by "
					"\"num_attention_heads\" (%d)",
					c->hidden_size, c->num_heads);
		c->head_dim = c->hidden_size / c->num_heads;
	}
	if (c->num_kv_heads > c->num_heads || c->num_heads % c->num_kv_heads != 0)
		return ft_failf(err, FT_EINVAL, "inconsistent_config",
				"\"num_attention_heads\" (%d) is not a multiple of "
				"\"num_key_value_heads\" (%d)",
				c->num_heads, c->num_kv_heads);

	c->max_position_embeddings = a->max_pos_default;
	rc = get_int(root, "max_position_embeddings", 0, 1, INT32_MAX, &c->max_position_embeddings,
		     err);
	c->rms_norm_eps = 1e-6;
	rc = rc ? rc
		: ft_json_get_num(root, "rms_norm_eps", FT_JSON_NULL_OK, 1e-30, 1.0,
				  &c->rms_norm_eps, err);
	rc = rc ? rc : parse_rope(root, c, err);
	if (rc)
		return rc;

	c->tie_word_embeddings = false;
	rc = ft_json_get_bool(root, "tie_word_embeddings", FT_JSON_NULL_OK, &c->tie_word_embeddings,
			      err);
	if (a->attention_bias_key) {
		rc = rc ? rc
			: ft_json_get_bool(root, "attention_bias", FT_JSON_NULL_OK, &attn_bias,
					   err);
		rc = rc ? rc
			: ft_json_get_bool(root, "mlp_bias", FT_JSON_NULL_OK, &c->mlp_bias, err);
	}
	if (rc)
		return rc;
	c->qkv_bias = a->fixed_qkv_bias || attn_bias;
	c->o_bias = attn_bias;

	rc = ft_json_get_str(root, "hidden_act", FT_JSON_NULL_OK, &act, err);
	if (rc)
		return rc;
	if (strcmp(act, "silu") != 0)
		return ft_failf(err, FT_EINVAL, "unsupported_activation",
				"unsupported \"hidden_act\" \"%s\" (supported: silu)", act);

	c->bos_token_id = a->bos_default;
	c->n_eos = 0;
	if (a->eos_default >= 0)
		c->eos_token_ids[c->n_eos++] = a->eos_default;
	c->pad_token_id = -1;
	if (json_is_null(json_object_get(root, "bos_token_id")))
		c->bos_token_id = -1;
	rc = get_int(root, "bos_token_id", 0, 0, INT32_MAX, &c->bos_token_id, err);
	rc = rc ? rc : get_int(root, "pad_token_id", 0, 0, INT32_MAX, &c->pad_token_id, err);
	rc = rc ? rc : parse_eos(root, c, err);
	if (rc)
		return rc;

	c->sliding_window = 0;
	if (a->arch == FT_ARCH_MISTRAL) {
		c->sliding_window = 4096;
		if (json_is_null(json_object_get(root, "sliding_window")))
			c->sliding_window = 0;
		rc = get_int(root, "sliding_window", 0, 1, INT32_MAX, &c->sliding_window, err);
		if (rc)
			return rc;
	}
	if (a->arch == FT_ARCH_QWEN2) {
		bool sw = false;
		rc = ft_json_get_bool(root, "use_sliding_window", FT_JSON_NULL_OK, &sw, err);
		if (rc)
			return rc;
		if (sw)
			return ft_failf(
				err, FT_EINVAL, "unsupported_config",
				"\"use_sliding_window\": true is not supported (set it to false)");
	}

	rc = ft_json_get_str(root, "torch_dtype", FT_JSON_NULL_OK, &dtype, err);
	if (!rc && !dtype)
		rc = ft_json_get_str(root, "dtype", FT_JSON_NULL_OK, &dtype, err);
	if (rc)
		return rc;
	if (dtype) {
		for (const char *p = dtype; *p; p++)
			if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_'))
				return ft_failf(err, FT_EINVAL, "invalid_value",
						"\"torch_dtype\" \"%s\" is not a dtype name",
						dtype);
		if (ft_strlcpy(c->torch_dtype, dtype, sizeof(c->torch_dtype)) >=
		    sizeof(c->torch_dtype))
			return ft_failf(err, FT_EINVAL, "invalid_value",
					"\"torch_dtype\" \"%s\" is too long", dtype);
	}
	return FT_OK;
}

enum ft_rc ft_model_config_parse(const char *json_text, size_t len, struct ft_model_config *out,
				 struct ft_err *err)
{
	struct ft_model_config c;
	json_t *root;
	enum ft_rc rc;

	memset(&c, 0, sizeof(c));
	root = ft_json_parse_config(json_text, len, err);
	if (!root) {
		ft_err_prefixf(err, "config.json: ");
		return FT_EINVAL;
	}
	rc = parse_root(root, &c, err);
	json_decref(root);
	if (rc) {
		ft_err_prefixf(err, "config.json: ");
		return rc;
	}
	*out = c;
	return FT_OK;
}

enum ft_rc ft_model_config_from_json(const json_t *root, struct ft_model_config *out,
				     struct ft_err *err)
{
	struct ft_model_config c;
	memset(&c, 0, sizeof(c));
	enum ft_rc rc = parse_root(root, &c, err);
	if (!rc)
		*out = c;
	return rc;
}

static enum ft_rc config_from_gguf(const char *path, struct ft_model_config *out,
				   struct ft_err *err)
{
	struct ft_gguf *g;
	enum ft_rc rc = ft_gguf_open(path, &g, err);
	if (rc)
		return rc;
	rc = ft_gguf_model_config(g, out, err);
	ft_gguf_close(g);
	return rc;
}

enum ft_rc ft_model_config_load(const char *model_dir, struct ft_model_config *out,
				struct ft_err *err)
{
	struct ft_buf path = FT_BUF_INIT(8192), text = FT_BUF_INIT(MAX_CONFIG_BYTES);
	char chunk[65536];
	enum ft_rc rc = FT_OK;
	FILE *fp;
	size_t k;

	if (ft_gguf_path_is_file(model_dir))
		return config_from_gguf(model_dir, out, err);
	if (ft_buf_addf(&path, "%s/config.json", model_dir))
		return ft_failf(err, FT_ELIMIT, NULL, "%s: path too long", model_dir);
	fp = fopen(path.ptr, "rb");
	if (!fp) {
		rc = ft_failf(err, errno == ENOENT ? FT_ENOTFOUND : FT_EIO, NULL,
			      "%s: cannot open: %s", path.ptr, strerror(errno));
		goto release_path;
	}
	while (!rc && (k = fread(chunk, 1, sizeof(chunk), fp)) > 0)
		if (ft_buf_add(&text, chunk, k))
			rc = ft_failf(err, FT_ELIMIT, NULL, "%s: larger than %u bytes", path.ptr,
				      MAX_CONFIG_BYTES);
	if (!rc && ferror(fp))
		rc = ft_failf(err, FT_EIO, NULL, "%s: read failed", path.ptr);
	fclose(fp);
	if (!rc) {
		rc = ft_model_config_parse(ft_buf_str(&text), text.len, out, err);
		if (rc)
			ft_err_detailf(err, "file: %s", path.ptr);
	}
	ft_buf_release(&text);
release_path:
	ft_buf_release(&path);
	return rc;
}

uint64_t ft_model_config_param_count(const struct ft_model_config *c)
{
	uint64_t h = (uint64_t)c->hidden_size, inter = (uint64_t)c->intermediate_size;
	uint64_t q = (uint64_t)c->num_heads * (uint64_t)c->head_dim;
	uint64_t kv = (uint64_t)c->num_kv_heads * (uint64_t)c->head_dim;
	uint64_t embed = (uint64_t)c->vocab_size * h;
	uint64_t layer = 0;

	layer += h * q + (c->qkv_bias ? q : 0);
	layer += 2 * (h * kv + (c->qkv_bias ? kv : 0));
	layer += q * h + (c->o_bias ? h : 0);
	layer += 3 * h * inter + (c->mlp_bias ? 2 * inter + h : 0);
	layer += 2 * h;
	return embed + (uint64_t)c->num_layers * layer + h + (c->tie_word_embeddings ? 0 : embed);
}

/* The shortest %g form that reads back as the same double, with ".0" added
 * to whole numbers so Python reads a float. */
static enum ft_rc add_double(struct ft_buf *b, double v)
{
	char s[40];
	for (int prec = 15; prec <= 17; prec++) {
		snprintf(s, sizeof(s), "%.*g", prec, v);
		if (strtod(s, NULL) == v)
			break;
	}
	if (!strpbrk(s, ".eEn"))
		return ft_buf_addf(b, "%s.0", s);
	return ft_buf_addstr(b, s);
}

enum ft_rc ft_model_config_to_json(const struct ft_model_config *c, struct ft_buf *out)
{
	const struct arch_info *a = arch_info(c->arch);
	enum ft_rc rc;

	if (!a || !isfinite(c->rms_norm_eps) || !isfinite(c->rope_theta) ||
	    !isfinite(c->rope_factor) || !isfinite(c->rope_low_freq_factor) ||
	    !isfinite(c->rope_high_freq_factor))
		return FT_EINVAL;
	/* Biases each architecture can express. */
	if (a->arch == FT_ARCH_LLAMA && c->qkv_bias != c->o_bias)
		return FT_EINVAL;
	if (a->arch == FT_ARCH_MISTRAL && (c->qkv_bias || c->o_bias || c->mlp_bias))
		return FT_EINVAL;
	if (a->arch == FT_ARCH_QWEN2 && (!c->qkv_bias || c->o_bias || c->mlp_bias))
		return FT_EINVAL;

	rc = ft_buf_addf(out,
			 "{\n  \"architectures\": [\"%s\"],\n  \"model_type\": \"%s\",\n"
			 "  \"vocab_size\": %d,\n  \"hidden_size\": %d,\n"
			 "  \"intermediate_size\": %d,\n  \"num_hidden_layers\": %d,\n"
			 "  \"num_attention_heads\": %d,\n  \"num_key_value_heads\": %d,\n"
			 "  \"head_dim\": %d,\n  \"max_position_embeddings\": %d,\n"
			 "  \"hidden_act\": \"silu\",\n  \"rms_norm_eps\": ",
			 a->name, a->model_type, c->vocab_size, c->hidden_size,
			 c->intermediate_size, c->num_layers, c->num_heads, c->num_kv_heads,
			 c->head_dim, c->max_position_embeddings);
	rc = rc ? rc : add_double(out, c->rms_norm_eps);
	rc = rc ? rc : ft_buf_addstr(out, ",\n  \"rope_theta\": ");
	rc = rc ? rc : add_double(out, c->rope_theta);
	rc = rc ? rc : ft_buf_addstr(out, ",\n  \"rope_scaling\": ");
	if (!rc && c->rope_type == FT_ROPE_DEFAULT)
		rc = ft_buf_addstr(out, "null");
	if (!rc && c->rope_type != FT_ROPE_DEFAULT) {
		rc = ft_buf_addf(out, "{\"rope_type\": \"%s\", \"factor\": ",
				 c->rope_type == FT_ROPE_LINEAR ? "linear" : "llama3");
		rc = rc ? rc : add_double(out, c->rope_factor);
		if (c->rope_type == FT_ROPE_LLAMA3) {
			rc = rc ? rc : ft_buf_addstr(out, ", \"low_freq_factor\": ");
			rc = rc ? rc : add_double(out, c->rope_low_freq_factor);
			rc = rc ? rc : ft_buf_addstr(out, ", \"high_freq_factor\": ");
			rc = rc ? rc : add_double(out, c->rope_high_freq_factor);
			rc = rc ? rc
				: ft_buf_addf(out, ", \"original_max_position_embeddings\": %d",
					      c->rope_original_max_pos);
		}
		rc = rc ? rc : ft_buf_addch(out, '}');
	}
	rc = rc ? rc
		: ft_buf_addf(out, ",\n  \"tie_word_embeddings\": %s",
			      c->tie_word_embeddings ? "true" : "false");
	if (a->attention_bias_key)
		rc = rc ? rc
			: ft_buf_addf(out, ",\n  \"attention_bias\": %s,\n  \"mlp_bias\": %s",
				      c->o_bias ? "true" : "false", c->mlp_bias ? "true" : "false");
	if (!rc && c->bos_token_id >= 0)
		rc = ft_buf_addf(out, ",\n  \"bos_token_id\": %d", c->bos_token_id);
	else if (!rc)
		rc = ft_buf_addstr(out, ",\n  \"bos_token_id\": null");
	rc = rc ? rc : ft_buf_addstr(out, ",\n  \"eos_token_id\": ");
	if (!rc && c->n_eos == 0)
		rc = ft_buf_addstr(out, "null");
	else if (!rc && c->n_eos == 1)
		rc = ft_buf_addf(out, "%d", c->eos_token_ids[0]);
	else if (!rc) {
		rc = ft_buf_addch(out, '[');
		for (int i = 0; i < c->n_eos && !rc; i++)
			rc = ft_buf_addf(out, "%s%d", i ? ", " : "", c->eos_token_ids[i]);
		rc = rc ? rc : ft_buf_addch(out, ']');
	}
	if (!rc && c->pad_token_id >= 0)
		rc = ft_buf_addf(out, ",\n  \"pad_token_id\": %d", c->pad_token_id);
	else if (!rc)
		rc = ft_buf_addstr(out, ",\n  \"pad_token_id\": null");
	if (!rc && a->arch == FT_ARCH_MISTRAL) {
		if (c->sliding_window > 0)
			rc = ft_buf_addf(out, ",\n  \"sliding_window\": %d", c->sliding_window);
		else
			rc = ft_buf_addstr(out, ",\n  \"sliding_window\": null");
	}
	if (!rc && a->arch == FT_ARCH_QWEN2)
		rc = ft_buf_addstr(out, ",\n  \"use_sliding_window\": false");
	if (!rc && c->torch_dtype[0]) {
		for (const char *p = c->torch_dtype; *p; p++)
			if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_'))
				return FT_EINVAL;
		rc = ft_buf_addf(out, ",\n  \"torch_dtype\": \"%s\"", c->torch_dtype);
	}
	return rc ? rc : ft_buf_addstr(out, "\n}\n");
}
