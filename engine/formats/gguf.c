/*
 * gguf.c - the GGUF reader: the header, the metadata, the tensor infos,
 * and the tables of ft/gguf.h (value types, ggml types, keys, tensor names).
 *
 * Reading is two passes over the header (ft/gguf.h has the layout):
 *
 *   1. walk: every length, count and type is checked against the bytes
 *      left in the file, nothing is allocated; the walk sums the bytes the
 *      copies will need (keys, tensor names, scalar strings) and the number
 *      of string-array elements;
 *   2. fill: one allocation for the kv and tensor records, one for the
 *      NUL-terminated copies, one for the offsets of string-array elements
 *      (each bounded by the file size, which pass 1 proved holds them),
 *      then the same walk again writing them.
 *
 * Then the file-level rules: unique keys (sorted index), general.alignment
 * (a power of two), the data section start, every tensor's bytes inside the
 * file and aligned, unique tensor names, no two tensors overlapping.
 * Errors name the file, the thing, and the byte offset where it sits.
 */
#include <fcntl.h>
#include <math.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ft/gguf.h"

#define GGUF_MAGIC "GGUF"
#define GGUF_DEFAULT_ALIGNMENT 32
#define GGUF_MAX_DIMS 4
#define GGUF_MAX_NAME 64 /* ggml's GGML_MAX_NAME: names are shorter */
#define GGUF_MAX_KEY (1u << 16)

/* ---- tables ---- */

static const struct {
	const char *name;
	uint32_t size; /* 0: variable */
} vtypes[FT_GGUF_VTYPE_COUNT] = {
	[FT_GGUF_UINT8] = { "UINT8", 1 },     [FT_GGUF_INT8] = { "INT8", 1 },
	[FT_GGUF_UINT16] = { "UINT16", 2 },   [FT_GGUF_INT16] = { "INT16", 2 },
	[FT_GGUF_UINT32] = { "UINT32", 4 },   [FT_GGUF_INT32] = { "INT32", 4 },
	[FT_GGUF_FLOAT32] = { "FLOAT32", 4 }, [FT_GGUF_BOOL] = { "BOOL", 1 },
	[FT_GGUF_STRING] = { "STRING", 0 },   [FT_GGUF_ARRAY] = { "ARRAY", 0 },
	[FT_GGUF_UINT64] = { "UINT64", 8 },   [FT_GGUF_INT64] = { "INT64", 8 },
	[FT_GGUF_FLOAT64] = { "FLOAT64", 8 },
};

const char *ft_gguf_vtype_name(enum ft_gguf_vtype t)
{
	return (unsigned)t < FT_GGUF_VTYPE_COUNT ? vtypes[t].name : "?";
}

/* Every ggml type (llama.cpp's ggml.h, gguf-py's GGML_QUANT_SIZES); ids
 * 4, 5 and 31..33, 36..38 were removed from ggml and are unknown here. */
static const struct ft_ggml_type_info ggml_types[] = {
	[0] = { "F32", 1, 4, true, true },	     [1] = { "F16", 1, 2, true, true },
	[2] = { "Q4_0", 32, 18, true, true },	     [3] = { "Q4_1", 32, 20, true, false },
	[6] = { "Q5_0", 32, 22, true, true },	     [7] = { "Q5_1", 32, 24, true, false },
	[8] = { "Q8_0", 32, 34, true, true },	     [9] = { "Q8_1", 32, 40, false, false },
	[10] = { "Q2_K", 256, 84, true, false },     [11] = { "Q3_K", 256, 110, true, false },
	[12] = { "Q4_K", 256, 144, true, true },     [13] = { "Q5_K", 256, 176, true, false },
	[14] = { "Q6_K", 256, 210, true, true },     [15] = { "Q8_K", 256, 292, false, false },
	[16] = { "IQ2_XXS", 256, 66, false, false }, [17] = { "IQ2_XS", 256, 74, false, false },
	[18] = { "IQ3_XXS", 256, 98, false, false }, [19] = { "IQ1_S", 256, 50, false, false },
	[20] = { "IQ4_NL", 32, 18, false, false },   [21] = { "IQ3_S", 256, 110, false, false },
	[22] = { "IQ2_S", 256, 82, false, false },   [23] = { "IQ4_XS", 256, 136, false, false },
	[24] = { "I8", 1, 1, false, false },	     [25] = { "I16", 1, 2, false, false },
	[26] = { "I32", 1, 4, false, false },	     [27] = { "I64", 1, 8, false, false },
	[28] = { "F64", 1, 8, false, false },	     [29] = { "IQ1_M", 256, 56, false, false },
	[30] = { "BF16", 1, 2, true, true },	     [34] = { "TQ1_0", 256, 54, false, false },
	[35] = { "TQ2_0", 256, 66, false, false },   [39] = { "MXFP4", 32, 17, false, false },
	[40] = { "NVFP4", 64, 36, false, false },    [41] = { "Q1_0", 128, 18, false, false },
};

const struct ft_ggml_type_info *ft_ggml_type_info(uint32_t type)
{
	if (type >= FT_ARRAY_LEN(ggml_types) || !ggml_types[type].name)
		return NULL;
	return &ggml_types[type];
}

const struct ft_gguf_key_def ft_gguf_keys[FT_GGUF_KEY_COUNT] = {
	[FT_GGUF_KEY_ARCHITECTURE] = { "general.architecture", FT_GGUF_STRING, 0,
				       "architectures, model_type" },
	[FT_GGUF_KEY_ALIGNMENT] = { "general.alignment", FT_GGUF_UINT32, 0, "(file layout)" },
	[FT_GGUF_KEY_NAME] = { "general.name", FT_GGUF_STRING, 0, "(shown only)" },
	[FT_GGUF_KEY_TYPE] = { "general.type", FT_GGUF_STRING, 0, "(model or adapter)" },
	[FT_GGUF_KEY_FILE_TYPE] = { "general.file_type", FT_GGUF_UINT32, 0, "(llama_ftype)" },
	[FT_GGUF_KEY_QUANT_VERSION] = { "general.quantization_version", FT_GGUF_UINT32, 0,
					"(block layouts)" },
	[FT_GGUF_KEY_ADAPTER_TYPE] = { "adapter.type", FT_GGUF_STRING, 0, "peft_type" },
	[FT_GGUF_KEY_ADAPTER_LORA_ALPHA] = { "adapter.lora.alpha", FT_GGUF_FLOAT32, 0,
					     "lora_alpha" },
	[FT_GGUF_KEY_CONTEXT_LENGTH] = { "{arch}.context_length", FT_GGUF_UINT32, 0,
					 "max_position_embeddings" },
	[FT_GGUF_KEY_EMBEDDING_LENGTH] = { "{arch}.embedding_length", FT_GGUF_UINT32, 0,
					   "hidden_size" },
	[FT_GGUF_KEY_BLOCK_COUNT] = { "{arch}.block_count", FT_GGUF_UINT32, 0,
				      "num_hidden_layers" },
	[FT_GGUF_KEY_FEED_FORWARD_LENGTH] = { "{arch}.feed_forward_length", FT_GGUF_UINT32, 0,
					      "intermediate_size" },
	[FT_GGUF_KEY_HEAD_COUNT] = { "{arch}.attention.head_count", FT_GGUF_UINT32, 0,
				     "num_attention_heads" },
	[FT_GGUF_KEY_HEAD_COUNT_KV] = { "{arch}.attention.head_count_kv", FT_GGUF_UINT32, 0,
					"num_key_value_heads" },
	[FT_GGUF_KEY_KEY_LENGTH] = { "{arch}.attention.key_length", FT_GGUF_UINT32, 0, "head_dim" },
	[FT_GGUF_KEY_VALUE_LENGTH] = { "{arch}.attention.value_length", FT_GGUF_UINT32, 0,
				       "head_dim" },
	[FT_GGUF_KEY_RMS_EPS] = { "{arch}.attention.layer_norm_rms_epsilon", FT_GGUF_FLOAT32, 0,
				  "rms_norm_eps" },
	[FT_GGUF_KEY_VOCAB_SIZE] = { "{arch}.vocab_size", FT_GGUF_UINT32, 0, "vocab_size" },
	[FT_GGUF_KEY_ROPE_DIMENSION_COUNT] = { "{arch}.rope.dimension_count", FT_GGUF_UINT32, 0,
					       "head_dim" },
	[FT_GGUF_KEY_ROPE_FREQ_BASE] = { "{arch}.rope.freq_base", FT_GGUF_FLOAT32, 0,
					 "rope_theta" },
	[FT_GGUF_KEY_ROPE_SCALING_TYPE] = { "{arch}.rope.scaling.type", FT_GGUF_STRING, 0,
					    "rope_scaling.rope_type" },
	[FT_GGUF_KEY_ROPE_SCALING_FACTOR] = { "{arch}.rope.scaling.factor", FT_GGUF_FLOAT32, 0,
					      "rope_scaling.factor" },
	[FT_GGUF_KEY_ROPE_SCALING_ORIG_CTX] = { "{arch}.rope.scaling.original_context_length",
						FT_GGUF_UINT32, 0,
						"rope_scaling.original_max_position_embeddings" },
	[FT_GGUF_KEY_ROPE_SCALE_LINEAR] = { "{arch}.rope.scale_linear", FT_GGUF_FLOAT32, 0,
					    "rope_scaling.factor (linear)" },
	[FT_GGUF_KEY_TOK_MODEL] = { "tokenizer.ggml.model", FT_GGUF_STRING, 0, "model.type" },
	[FT_GGUF_KEY_TOK_PRE] = { "tokenizer.ggml.pre", FT_GGUF_STRING, 0, "pre_tokenizer" },
	[FT_GGUF_KEY_TOK_TOKENS] = { "tokenizer.ggml.tokens", FT_GGUF_ARRAY, FT_GGUF_STRING,
				     "model.vocab" },
	[FT_GGUF_KEY_TOK_TOKEN_TYPE] = { "tokenizer.ggml.token_type", FT_GGUF_ARRAY, FT_GGUF_INT32,
					 "added_tokens" },
	[FT_GGUF_KEY_TOK_SCORES] = { "tokenizer.ggml.scores", FT_GGUF_ARRAY, FT_GGUF_FLOAT32,
				     "model.merges (order)" },
	[FT_GGUF_KEY_TOK_MERGES] = { "tokenizer.ggml.merges", FT_GGUF_ARRAY, FT_GGUF_STRING,
				     "model.merges" },
	[FT_GGUF_KEY_TOK_BOS_ID] = { "tokenizer.ggml.bos_token_id", FT_GGUF_UINT32, 0,
				     "bos_token, bos_token_id" },
	[FT_GGUF_KEY_TOK_EOS_ID] = { "tokenizer.ggml.eos_token_id", FT_GGUF_UINT32, 0,
				     "eos_token, eos_token_id" },
	[FT_GGUF_KEY_TOK_UNK_ID] = { "tokenizer.ggml.unknown_token_id", FT_GGUF_UINT32, 0,
				     "unk_token" },
	[FT_GGUF_KEY_TOK_PAD_ID] = { "tokenizer.ggml.padding_token_id", FT_GGUF_UINT32, 0,
				     "pad_token, pad_token_id" },
	[FT_GGUF_KEY_TOK_ADD_BOS] = { "tokenizer.ggml.add_bos_token", FT_GGUF_BOOL, 0,
				      "post_processor (BOS)" },
	[FT_GGUF_KEY_TOK_ADD_EOS] = { "tokenizer.ggml.add_eos_token", FT_GGUF_BOOL, 0,
				      "post_processor (EOS)" },
	[FT_GGUF_KEY_TOK_ADD_SPACE_PREFIX] = { "tokenizer.ggml.add_space_prefix", FT_GGUF_BOOL, 0,
					       "Metaspace prepend_scheme" },
	[FT_GGUF_KEY_CHAT_TEMPLATE] = { "tokenizer.chat_template", FT_GGUF_STRING, 0,
					"chat_template" },
};

#define W FT_GGUF_ROLE_WEIGHT
const struct ft_gguf_tensor_name ft_gguf_tensor_names[] = {
	{ "token_embd.weight", "model.embed_tokens.weight", FT_GGUF_ROWS_HF,
	  FT_GGUF_ROLE_TOKEN_EMBD },
	{ "output_norm.weight", "model.norm.weight", FT_GGUF_ROWS_HF, W },
	{ "output.weight", "lm_head.weight", FT_GGUF_ROWS_HF, FT_GGUF_ROLE_OUTPUT },
	{ "blk.%d.attn_norm.weight", "model.layers.%d.input_layernorm.weight", FT_GGUF_ROWS_HF, W },
	{ "blk.%d.ffn_norm.weight", "model.layers.%d.post_attention_layernorm.weight",
	  FT_GGUF_ROWS_HF, W },
	{ "blk.%d.attn_q.weight", "model.layers.%d.self_attn.q_proj.weight", FT_GGUF_ROWS_Q, W },
	{ "blk.%d.attn_q.bias", "model.layers.%d.self_attn.q_proj.bias", FT_GGUF_ROWS_Q, W },
	{ "blk.%d.attn_k.weight", "model.layers.%d.self_attn.k_proj.weight", FT_GGUF_ROWS_K, W },
	{ "blk.%d.attn_k.bias", "model.layers.%d.self_attn.k_proj.bias", FT_GGUF_ROWS_K, W },
	{ "blk.%d.attn_v.weight", "model.layers.%d.self_attn.v_proj.weight", FT_GGUF_ROWS_HF,
	  FT_GGUF_ROLE_ATTN_V },
	{ "blk.%d.attn_v.bias", "model.layers.%d.self_attn.v_proj.bias", FT_GGUF_ROWS_HF, W },
	{ "blk.%d.attn_output.weight", "model.layers.%d.self_attn.o_proj.weight", FT_GGUF_ROWS_HF,
	  W },
	{ "blk.%d.attn_output.bias", "model.layers.%d.self_attn.o_proj.bias", FT_GGUF_ROWS_HF, W },
	{ "blk.%d.ffn_gate.weight", "model.layers.%d.mlp.gate_proj.weight", FT_GGUF_ROWS_HF, W },
	{ "blk.%d.ffn_gate.bias", "model.layers.%d.mlp.gate_proj.bias", FT_GGUF_ROWS_HF, W },
	{ "blk.%d.ffn_up.weight", "model.layers.%d.mlp.up_proj.weight", FT_GGUF_ROWS_HF, W },
	{ "blk.%d.ffn_up.bias", "model.layers.%d.mlp.up_proj.bias", FT_GGUF_ROWS_HF, W },
	{ "blk.%d.ffn_down.weight", "model.layers.%d.mlp.down_proj.weight", FT_GGUF_ROWS_HF,
	  FT_GGUF_ROLE_FFN_DOWN },
	{ "blk.%d.ffn_down.bias", "model.layers.%d.mlp.down_proj.bias", FT_GGUF_ROWS_HF, W },
};
#undef W
const size_t ft_gguf_tensor_names_count = FT_ARRAY_LEN(ft_gguf_tensor_names);

/* Match name against a table pattern with at most one "%d" (a layer
 * number written without leading zeros). */
static bool match_pattern(const char *pat, const char *name, int *layer)
{
	const char *d = strstr(pat, "%d");
	*layer = -1;
	if (!d)
		return strcmp(pat, name) == 0;
	size_t pre = (size_t)(d - pat);
	if (strncmp(pat, name, pre) != 0)
		return false;
	const char *p = name + pre;
	long v = 0;
	size_t nd = 0;
	while (p[nd] >= '0' && p[nd] <= '9' && nd < 6)
		v = v * 10 + (p[nd++] - '0');
	if (nd == 0 || (nd > 1 && p[0] == '0') || (p[nd] >= '0' && p[nd] <= '9'))
		return false;
	if (strcmp(p + nd, d + 2) != 0)
		return false;
	*layer = (int)v;
	return true;
}

const struct ft_gguf_tensor_name *ft_gguf_tensor_name_find(const char *name, bool gguf_side,
							   int *layer)
{
	for (size_t i = 0; i < ft_gguf_tensor_names_count; i++) {
		const struct ft_gguf_tensor_name *r = &ft_gguf_tensor_names[i];
		if (match_pattern(gguf_side ? r->gguf : r->hf, name, layer))
			return r;
	}
	return NULL;
}

void ft_gguf_tensor_name_format(const char *pat, int layer, char *buf, size_t size)
{
	const char *d = strstr(pat, "%d");
	if (!d)
		snprintf(buf, size, "%s", pat);
	else
		snprintf(buf, size, "%.*s%d%s", (int)(d - pat), pat, layer, d + 2);
}

/* ---- the object ---- */

struct ft_gguf {
	char *name;
	const uint8_t *base;
	size_t size;
	void *map; /* ft_gguf_open: the mapping (munmap'd by close) */
	uint32_t version;
	uint32_t alignment;
	uint64_t data_off;
	struct ft_gguf_kv *kv;
	size_t n_kv;
	struct ft_gguf_tensor *t;
	size_t n_t;
	uint32_t *kv_sorted; /* kv indices by key */
	uint32_t *t_sorted; /* tensor indices by name */
	char *blob; /* the NUL-terminated copies */
	uint64_t *offs; /* offsets of string-array elements */
	char arch[64]; /* general.architecture, "" when absent or not a short string */
};

/* ---- the walk ---- */

struct walk {
	const struct ft_gguf *g;
	const uint8_t *p;
	size_t size, off;
	struct ft_err *err;
	/* pass 1 sums, pass 2 fill pointers */
	uint64_t blob_bytes, n_strs;
	bool fill;
	char *blob;
	uint64_t *offs;
};

static enum ft_rc bad(struct walk *w, const char *fmt, ...) FT_PRINTF(2, 3);
static enum ft_rc bad(struct walk *w, const char *fmt, ...)
{
	char msg[400];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	return ft_failf(w->err, FT_EFORMAT, "invalid_gguf", "%s: %s", w->g->name, msg);
}

static uint64_t left(const struct walk *w)
{
	return w->size - w->off;
}

/* Truncation: what was being read, where, and how much is left. */
static enum ft_rc need(struct walk *w, uint64_t n, const char *what, const char *name)
{
	if (n <= left(w))
		return FT_OK;
	return bad(w, "truncated: %s%s%s%s at byte %zu needs %" PRIu64 " bytes, %" PRIu64 " left",
		   what, name ? " \"" : "", name ? name : "", name ? "\"" : "", w->off, n, left(w));
}

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t le64(const uint8_t *p)
{
	return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32;
}

static enum ft_rc rd32(struct walk *w, uint32_t *v, const char *what, const char *name)
{
	if (need(w, 4, what, name))
		return FT_EFORMAT;
	*v = le32(w->p + w->off);
	w->off += 4;
	return FT_OK;
}

static enum ft_rc rd64(struct walk *w, uint64_t *v, const char *what, const char *name)
{
	if (need(w, 8, what, name))
		return FT_EFORMAT;
	*v = le64(w->p + w->off);
	w->off += 8;
	return FT_OK;
}

/* A string: its length is checked against the bytes left before it is
 * trusted for anything; *raw points at its bytes in the file. With copy, a
 * NUL-terminated copy is counted (pass 1) or made into *out (pass 2). */
static enum ft_rc rd_str(struct walk *w, const char *what, const char *name, bool copy,
			 const char **raw, const char **out, uint64_t *len)
{
	uint64_t n;
	size_t at = w->off;
	if (rd64(w, &n, what, name))
		return FT_EFORMAT;
	if (n > left(w))
		return bad(w,
			   "%s%s%s%s at byte %zu: string of %" PRIu64
			   " bytes runs past the end of the file (%" PRIu64 " bytes left)",
			   what, name ? " \"" : "", name ? name : "", name ? "\"" : "", at, n,
			   left(w));
	if (len)
		*len = n;
	if (raw)
		*raw = (const char *)w->p + w->off;
	if (copy && !w->fill)
		w->blob_bytes += n + 1;
	if (copy && w->fill) {
		memcpy(w->blob, w->p + w->off, n);
		w->blob[n] = 0;
		*out = w->blob;
		w->blob += n + 1;
	}
	w->off += n;
	return FT_OK;
}

/* A key or tensor name for messages: at most 80 bytes, control bytes as '?'. */
static void msg_name(const char *raw, uint64_t len, char out[96])
{
	size_t n = len > 80 ? 80 : (size_t)len, k = 0;
	for (size_t i = 0; i < n; i++)
		out[k++] = (unsigned char)raw[i] < 0x20 ? '?' : raw[i];
	if (len > n) {
		memcpy(out + k, "...", 3);
		k += 3;
	}
	out[k] = 0;
}

/* One value of type t (not an array) for key (messages). */
static enum ft_rc skip_scalar(struct walk *w, enum ft_gguf_vtype t, const char *key)
{
	return need(w, vtypes[t].size, "the value of", key) ? FT_EFORMAT
							    : (w->off += vtypes[t].size, FT_OK);
}

static enum ft_rc walk_kv(struct walk *w, struct ft_gguf_kv *kv, size_t i)
{
	char what[64], kname[96];
	const char *key = NULL, *raw = NULL;
	uint64_t klen = 0;
	uint32_t t;
	snprintf(what, sizeof what, "metadata key %zu", i);
	if (rd_str(w, what, NULL, true, &raw, &key, &klen))
		return FT_EFORMAT;
	if (klen == 0 || klen >= GGUF_MAX_KEY)
		return bad(w, "%s at byte %zu has a key of %" PRIu64 " bytes (1 to %u)", what,
			   w->off - (size_t)klen - 8, klen, GGUF_MAX_KEY - 1);
	if (memchr(raw, 0, (size_t)klen))
		return bad(w, "%s holds a NUL byte", what);
	if (w->fill)
		kv->key = key;
	msg_name(raw, klen, kname);
	if (rd32(w, &t, "the value type of", kname))
		return FT_EFORMAT;
	if (t >= FT_GGUF_VTYPE_COUNT)
		return bad(w, "metadata \"%s\" has unknown value type %u", kname, t);
	if (w->fill) {
		kv->type = (enum ft_gguf_vtype)t;
		kv->n = 1;
		kv->data = w->p + w->off;
	}
	if (t == FT_GGUF_STRING) {
		const char *s = NULL;
		uint64_t len = 0;
		if (rd_str(w, "the string value of", kname, true, NULL, &s, &len))
			return FT_EFORMAT;
		if (w->fill) {
			kv->str = s;
			kv->len = len;
		}
		return FT_OK;
	}
	if (t != FT_GGUF_ARRAY)
		return skip_scalar(w, (enum ft_gguf_vtype)t, kname);
	uint32_t et;
	uint64_t n;
	if (rd32(w, &et, "the element type of", kname) || rd64(w, &n, "the length of", kname))
		return FT_EFORMAT;
	if (et >= FT_GGUF_VTYPE_COUNT)
		return bad(w, "metadata \"%s\" is an array of unknown type %u", kname, et);
	if (et == FT_GGUF_ARRAY)
		return bad(w, "metadata \"%s\" is an array of arrays (not supported)", kname);
	if (w->fill) {
		kv->elem = (enum ft_gguf_vtype)et;
		kv->n = n;
		kv->data = w->p + w->off;
	}
	if (et != FT_GGUF_STRING) {
		if (n > left(w) / vtypes[et].size)
			return bad(w,
				   "metadata \"%s\": %" PRIu64 " %s elements run past the end of "
				   "the file (%" PRIu64 " bytes left)",
				   kname, n, vtypes[et].name, left(w));
		w->off += (size_t)(n * vtypes[et].size);
		return FT_OK;
	}
	/* each string takes at least its 8-byte length */
	if (n > left(w) / 8)
		return bad(w,
			   "metadata \"%s\": %" PRIu64 " strings run past the end of the file "
			   "(%" PRIu64 " bytes left)",
			   kname, n, left(w));
	if (w->fill)
		kv->str_off = w->offs;
	else
		w->n_strs += n;
	size_t start = w->off;
	for (uint64_t k = 0; k < n; k++) {
		if (w->fill)
			*w->offs++ = w->off - start;
		if (rd_str(w, "an element of", kname, false, NULL, NULL, NULL))
			return FT_EFORMAT;
	}
	return FT_OK;
}

static enum ft_rc walk_tensor(struct walk *w, struct ft_gguf_tensor *t, size_t i)
{
	char what[64], tname[96];
	const char *name = NULL, *raw = NULL;
	uint64_t nlen = 0;
	uint32_t nd, type;
	snprintf(what, sizeof what, "tensor info %zu", i);
	if (rd_str(w, what, NULL, true, &raw, &name, &nlen))
		return FT_EFORMAT;
	if (nlen == 0 || nlen >= GGUF_MAX_NAME)
		return bad(w, "%s has a name of %" PRIu64 " bytes (1 to %d)", what, nlen,
			   GGUF_MAX_NAME - 1);
	if (memchr(raw, 0, (size_t)nlen))
		return bad(w, "%s: the name holds a NUL byte", what);
	msg_name(raw, nlen, tname);
	if (rd32(w, &nd, "the dimension count of", tname))
		return FT_EFORMAT;
	if (nd < 1 || nd > GGUF_MAX_DIMS)
		return bad(w, "tensor \"%s\" has %u dimensions (1 to %d)", tname, nd,
			   GGUF_MAX_DIMS);
	uint64_t ne[GGUF_MAX_DIMS] = { 1, 1, 1, 1 }, nelem = 1;
	for (uint32_t d = 0; d < nd; d++) {
		if (rd64(w, &ne[d], "a dimension of", tname))
			return FT_EFORMAT;
		if (ne[d] > INT64_MAX || __builtin_mul_overflow(nelem, ne[d], &nelem) ||
		    nelem > INT64_MAX)
			return bad(w, "tensor \"%s\": its %u dimensions overflow", tname, nd);
	}
	if (rd32(w, &type, "the type of", tname))
		return FT_EFORMAT;
	const struct ft_ggml_type_info *ti = ft_ggml_type_info(type);
	if (!ti)
		return bad(w, "tensor \"%s\" has unknown type %u", tname, type);
	if (ne[0] % ti->block)
		return bad(w,
			   "tensor \"%s\": its first dimension %" PRIu64
			   " is not a multiple of the %s block (%u)",
			   tname, ne[0], ti->name, ti->block);
	uint64_t off;
	if (rd64(w, &off, "the data offset of", tname))
		return FT_EFORMAT;
	uint64_t nbytes = nelem / ti->block * ti->bytes;
	if (nelem && nbytes / ti->bytes != nelem / ti->block)
		return bad(w, "tensor \"%s\" is too large", tname);
	if (w->fill) {
		t->name = name;
		t->type = type;
		t->n_dims = (int)nd;
		memcpy(t->ne, ne, sizeof ne);
		t->nelem = nelem;
		t->nbytes = nbytes;
		t->offset = off;
	}
	return FT_OK;
}

static enum ft_rc walk_all(struct walk *w, uint64_t n_kv, uint64_t n_t, struct ft_gguf *g)
{
	w->off = 24;
	for (uint64_t i = 0; i < n_kv; i++)
		if (walk_kv(w, w->fill ? &g->kv[i] : NULL, (size_t)i))
			return FT_EFORMAT;
	for (uint64_t i = 0; i < n_t; i++)
		if (walk_tensor(w, w->fill ? &g->t[i] : NULL, (size_t)i))
			return FT_EFORMAT;
	return FT_OK;
}

/* ---- file-level checks ---- */

static int cmp_kv(const void *a, const void *b, void *ctx)
{
	const struct ft_gguf *g = ctx;
	return strcmp(g->kv[*(const uint32_t *)a].key, g->kv[*(const uint32_t *)b].key);
}

static int cmp_t(const void *a, const void *b, void *ctx)
{
	const struct ft_gguf *g = ctx;
	return strcmp(g->t[*(const uint32_t *)a].name, g->t[*(const uint32_t *)b].name);
}

static int cmp_off(const void *a, const void *b, void *ctx)
{
	const struct ft_gguf *g = ctx;
	uint64_t x = g->t[*(const uint32_t *)a].offset, y = g->t[*(const uint32_t *)b].offset;
	return x < y ? -1 : x > y;
}

static enum ft_rc check_file(struct walk *w, struct ft_gguf *g)
{
	for (size_t i = 0; i < g->n_kv; i++)
		g->kv_sorted[i] = (uint32_t)i;
	qsort_r(g->kv_sorted, g->n_kv, sizeof(uint32_t), cmp_kv, g);
	for (size_t i = 1; i < g->n_kv; i++)
		if (strcmp(g->kv[g->kv_sorted[i]].key, g->kv[g->kv_sorted[i - 1]].key) == 0)
			return bad(w, "metadata key \"%s\" appears twice",
				   g->kv[g->kv_sorted[i]].key);
	const struct ft_gguf_kv *a = ft_gguf_kv_find(g, "general.alignment");
	g->alignment = GGUF_DEFAULT_ALIGNMENT;
	if (a) {
		if (a->type != FT_GGUF_UINT32)
			return bad(w, "\"general.alignment\" must be a UINT32 (got %s)",
				   ft_gguf_vtype_name(a->type));
		uint32_t v = le32(a->data);
		if (v == 0 || (v & (v - 1)) || v > (1u << 30))
			return bad(w, "\"general.alignment\" is %u (must be a power of two)", v);
		g->alignment = v;
	}
	const struct ft_gguf_kv *arch = ft_gguf_kv_find(g, "general.architecture");
	if (arch && arch->type == FT_GGUF_STRING && arch->len < sizeof g->arch &&
	    strlen(arch->str) == arch->len)
		ft_strlcpy(g->arch, arch->str, sizeof g->arch);

	uint64_t end = w->off, pad = (g->alignment - end % g->alignment) % g->alignment;
	g->data_off = end + pad;
	if (g->n_t && g->data_off > g->size)
		return bad(w,
			   "truncated: the tensor data starts at byte %" PRIu64
			   " but the file has %zu bytes",
			   g->data_off, g->size);
	uint64_t room = g->n_t ? g->size - g->data_off : 0;
	for (size_t i = 0; i < g->n_t; i++) {
		struct ft_gguf_tensor *t = &g->t[i];
		if (t->offset % g->alignment)
			return bad(w,
				   "tensor \"%s\": data offset %" PRIu64
				   " is not a multiple of the alignment %u",
				   t->name, t->offset, g->alignment);
		if (t->offset > room || t->nbytes > room - t->offset)
			return bad(w,
				   "tensor \"%s\": its %" PRIu64 " bytes at data offset %" PRIu64
				   " run past the end of the file (the data section holds %" PRIu64
				   " bytes)",
				   t->name, t->nbytes, t->offset, room);
		t->data = g->base + g->data_off + t->offset;
		g->t_sorted[i] = (uint32_t)i;
	}
	qsort_r(g->t_sorted, g->n_t, sizeof(uint32_t), cmp_t, g);
	for (size_t i = 1; i < g->n_t; i++)
		if (strcmp(g->t[g->t_sorted[i]].name, g->t[g->t_sorted[i - 1]].name) == 0)
			return bad(w, "tensor \"%s\" appears twice", g->t[g->t_sorted[i]].name);
	/* overlap: by offset, each must end where or before the next starts */
	uint32_t *by_off = malloc((g->n_t + 1) * sizeof(uint32_t));
	if (!by_off)
		return ft_failf(w->err, FT_ENOMEM, NULL, "%s: out of memory", g->name);
	memcpy(by_off, g->t_sorted, g->n_t * sizeof(uint32_t));
	qsort_r(by_off, g->n_t, sizeof(uint32_t), cmp_off, g);
	enum ft_rc rc = FT_OK;
	for (size_t i = 1; i < g->n_t && !rc; i++) {
		const struct ft_gguf_tensor *p = &g->t[by_off[i - 1]], *q = &g->t[by_off[i]];
		if (p->offset + p->nbytes > q->offset)
			rc = bad(w, "tensors \"%s\" and \"%s\" overlap in the file", p->name,
				 q->name);
	}
	free(by_off);
	return rc;
}

void ft_gguf_close(struct ft_gguf *g)
{
	if (!g)
		return;
	if (g->map)
		munmap(g->map, g->size);
	free(g->name);
	free(g->kv);
	free(g->t);
	free(g->kv_sorted);
	free(g->t_sorted);
	free(g->blob);
	free(g->offs);
	free(g);
}

static enum ft_rc parse(struct ft_gguf *g, struct ft_err *err)
{
	struct walk w = { .g = g, .p = g->base, .size = g->size, .err = err };
	if (g->size < 4 || memcmp(g->base, GGUF_MAGIC, 4) != 0) {
		char got[16] = "";
		for (size_t i = 0; i < 4 && i < g->size; i++)
			snprintf(got + 3 * i, sizeof got - 3 * i, "%02x ", g->base[i]);
		bad(&w, "not a GGUF file (the magic is not \"GGUF\"; the file starts %s)",
		    g->size ? got : "empty");
		ft_err_hintf(err, "a model is a Hugging Face folder or a .gguf file");
		return FT_EFORMAT;
	}
	w.off = 4;
	uint32_t v;
	uint64_t n_t, n_kv;
	if (rd32(&w, &v, "the version", NULL))
		return FT_EFORMAT;
	if (v != 2 && v != 3) {
		uint32_t sw = __builtin_bswap32(v);
		if (sw == 2 || sw == 3)
			return bad(&w, "a big-endian GGUF (version %u) is not supported", sw);
		return bad(&w, "GGUF version %u is not supported (versions 2 and 3 are)", v);
	}
	g->version = v;
	if (rd64(&w, &n_t, "the tensor count", NULL) || rd64(&w, &n_kv, "the metadata count", NULL))
		return FT_EFORMAT;
	/* the smallest kv is 8 + 1 + 4 + 1 bytes; the smallest tensor info 8 + 1 + 4 + 8 + 4 + 8 */
	if (n_kv > left(&w) / 14)
		return bad(&w,
			   "the header counts %" PRIu64 " metadata entries; the file's %" PRIu64
			   " remaining bytes cannot hold them",
			   n_kv, left(&w));
	if (n_t > left(&w) / 33)
		return bad(&w,
			   "the header counts %" PRIu64 " tensors; the file's %" PRIu64
			   " remaining bytes cannot hold them",
			   n_t, left(&w));
	if (walk_all(&w, n_kv, n_t, g))
		return FT_EFORMAT;
	/* pass 2: everything below is bounded by the file size (pass 1) */
	g->n_kv = (size_t)n_kv;
	g->n_t = (size_t)n_t;
	g->kv = calloc(g->n_kv + 1, sizeof(*g->kv));
	g->t = calloc(g->n_t + 1, sizeof(*g->t));
	g->kv_sorted = calloc(g->n_kv + 1, sizeof(uint32_t));
	g->t_sorted = calloc(g->n_t + 1, sizeof(uint32_t));
	g->blob = malloc((size_t)w.blob_bytes + 1);
	g->offs = malloc(((size_t)w.n_strs + 1) * sizeof(uint64_t));
	if (!g->kv || !g->t || !g->kv_sorted || !g->t_sorted || !g->blob || !g->offs)
		return ft_failf(err, FT_ENOMEM, NULL, "%s: out of memory for the header", g->name);
	w.fill = true;
	w.blob = g->blob;
	w.offs = g->offs;
	if (walk_all(&w, n_kv, n_t, g))
		return FT_EFORMAT;
	return check_file(&w, g);
}

static struct ft_gguf *gguf_new(const char *name, struct ft_err *err)
{
	struct ft_gguf *g = calloc(1, sizeof(*g));
	if (g && !(g->name = strdup(name))) {
		free(g);
		g = NULL;
	}
	if (!g)
		ft_failf(err, FT_ENOMEM, NULL, "out of memory");
	return g;
}

enum ft_rc ft_gguf_parse(const uint8_t *buf, size_t len, const char *name, struct ft_gguf **out,
			 struct ft_err *err)
{
	*out = NULL;
	struct ft_gguf *g = gguf_new(name ? name : "gguf", err);
	if (!g)
		return FT_ENOMEM;
	g->base = buf;
	g->size = len;
	enum ft_rc rc = parse(g, err);
	if (rc) {
		ft_gguf_close(g);
		return rc;
	}
	*out = g;
	return FT_OK;
}

enum ft_rc ft_gguf_open(const char *path, struct ft_gguf **out, struct ft_err *err)
{
	*out = NULL;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return ft_failf(err, errno == ENOENT ? FT_ENOTFOUND : FT_EIO, NULL,
				"cannot open \"%s\": %s", path, strerror(errno));
	struct stat st;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return ft_failf(err, FT_EINVAL, NULL, "\"%s\" is not a regular file", path);
	}
	struct ft_gguf *g = gguf_new(path, err);
	if (!g) {
		close(fd);
		return FT_ENOMEM;
	}
	enum ft_rc rc = FT_OK;
	g->size = (size_t)st.st_size;
	if (g->size == 0) {
		static const uint8_t none[1];
		g->base = none;
	} else {
		void *m = mmap(NULL, g->size, PROT_READ, MAP_PRIVATE, fd, 0);
		if (m == MAP_FAILED) {
			rc = ft_failf(err, FT_EIO, NULL, "cannot map \"%s\": %s", path,
				      strerror(errno));
			goto fail;
		}
		g->map = m;
		g->base = m;
	}
	if ((rc = parse(g, err)))
		goto fail;
	close(fd);
	*out = g;
	return FT_OK;
fail:
	close(fd);
	ft_gguf_close(g);
	return rc;
}

bool ft_gguf_path_is_file(const char *path)
{
	struct stat st;
	return path && stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* ---- lookups ---- */

uint32_t ft_gguf_version(const struct ft_gguf *g)
{
	return g->version;
}

uint32_t ft_gguf_alignment(const struct ft_gguf *g)
{
	return g->alignment;
}

const char *ft_gguf_name(const struct ft_gguf *g)
{
	return g->name;
}

size_t ft_gguf_kv_count(const struct ft_gguf *g)
{
	return g->n_kv;
}

const struct ft_gguf_kv *ft_gguf_kv_at(const struct ft_gguf *g, size_t i)
{
	return i < g->n_kv ? &g->kv[i] : NULL;
}

/* The index (into the array that `sorted` orders by name) of the entry
 * named `name`, found by binary search; -1 when there is none. */
static ptrdiff_t find_sorted(const uint32_t *sorted, size_t n, const char *name,
			     const char *(*name_of)(const struct ft_gguf *, uint32_t),
			     const struct ft_gguf *g)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(name_of(g, sorted[mid]), name);
		if (c == 0)
			return (ptrdiff_t)sorted[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

static const char *kv_key(const struct ft_gguf *g, uint32_t i)
{
	return g->kv[i].key;
}

static const char *tensor_name(const struct ft_gguf *g, uint32_t i)
{
	return g->t[i].name;
}

const struct ft_gguf_kv *ft_gguf_kv_find(const struct ft_gguf *g, const char *key)
{
	ptrdiff_t i = find_sorted(g->kv_sorted, g->n_kv, key, kv_key, g);
	return i < 0 ? NULL : &g->kv[i];
}

size_t ft_gguf_tensor_count(const struct ft_gguf *g)
{
	return g->n_t;
}

const struct ft_gguf_tensor *ft_gguf_tensor_at(const struct ft_gguf *g, size_t i)
{
	return i < g->n_t ? &g->t[i] : NULL;
}

const struct ft_gguf_tensor *ft_gguf_tensor_find(const struct ft_gguf *g, const char *name)
{
	ptrdiff_t i = find_sorted(g->t_sorted, g->n_t, name, tensor_name, g);
	return i < 0 ? NULL : &g->t[i];
}

const char *ft_gguf_arr_str(const struct ft_gguf_kv *kv, uint64_t i, uint64_t *len)
{
	FT_ASSERT(kv->type == FT_GGUF_ARRAY && kv->elem == FT_GGUF_STRING && i < kv->n);
	const uint8_t *p = kv->data + kv->str_off[i];
	*len = le64(p);
	return (const char *)p + 8;
}

/* A scalar of an integer or boolean type at p. */
static int64_t int_at(enum ft_gguf_vtype t, const uint8_t *p)
{
	switch (t) {
	default: ft_assert_fail("an integer type", __FILE__, __LINE__, __func__);
	case FT_GGUF_UINT8:
	case FT_GGUF_BOOL: return p[0];
	case FT_GGUF_INT8: return (int8_t)p[0];
	case FT_GGUF_UINT16: return (uint16_t)(p[0] | p[1] << 8);
	case FT_GGUF_INT16: return (int16_t)(uint16_t)(p[0] | p[1] << 8);
	case FT_GGUF_UINT32: return le32(p);
	case FT_GGUF_INT32: return (int32_t)le32(p);
	case FT_GGUF_UINT64: /* values above INT64_MAX read as negative: out of any range */
	case FT_GGUF_INT64: return (int64_t)le64(p);
	}
}

static bool is_int(enum ft_gguf_vtype t)
{
	return t <= FT_GGUF_INT32 || t == FT_GGUF_UINT64 || t == FT_GGUF_INT64;
}

static bool is_num(enum ft_gguf_vtype t)
{
	return is_int(t) || t == FT_GGUF_FLOAT32 || t == FT_GGUF_FLOAT64;
}

static double num_at(enum ft_gguf_vtype t, const uint8_t *p)
{
	if (t == FT_GGUF_FLOAT32) {
		uint32_t b = le32(p);
		float f;
		memcpy(&f, &b, 4);
		return f;
	}
	if (t == FT_GGUF_FLOAT64) {
		uint64_t b = le64(p);
		double d;
		memcpy(&d, &b, 8);
		return d;
	}
	if (t == FT_GGUF_UINT64)
		return (double)le64(p);
	return (double)int_at(t, p);
}

int64_t ft_gguf_arr_int(const struct ft_gguf_kv *kv, uint64_t i)
{
	FT_ASSERT(kv->type == FT_GGUF_ARRAY && (is_int(kv->elem) || kv->elem == FT_GGUF_BOOL) &&
		  i < kv->n);
	return int_at(kv->elem, kv->data + i * vtypes[kv->elem].size);
}

double ft_gguf_arr_num(const struct ft_gguf_kv *kv, uint64_t i)
{
	FT_ASSERT(kv->type == FT_GGUF_ARRAY && is_num(kv->elem) && i < kv->n);
	return num_at(kv->elem, kv->data + i * vtypes[kv->elem].size);
}

/* ---- typed getters by table key ---- */

const char *ft_gguf_key_name(const struct ft_gguf *g, enum ft_gguf_key k, char *buf, size_t size)
{
	const char *n = ft_gguf_keys[k].name;
	if (strncmp(n, "{arch}", 6) == 0)
		snprintf(buf, size, "%s%s", g->arch[0] ? g->arch : "(no architecture)", n + 6);
	else
		snprintf(buf, size, "%s", n);
	return buf;
}

static enum ft_rc lookup(const struct ft_gguf *g, enum ft_gguf_key k, unsigned flags,
			 const struct ft_gguf_kv **kv, char *name, size_t size, struct ft_err *err)
{
	ft_gguf_key_name(g, k, name, size);
	*kv = ft_gguf_kv_find(g, name);
	if (!*kv && (flags & FT_JSON_REQUIRED))
		return ft_failf(err, FT_EFORMAT, "missing_key", "%s: metadata \"%s\" is required",
				g->name, name);
	return FT_OK;
}

static enum ft_rc wrong_type(const struct ft_gguf *g, const char *name, const char *want,
			     const struct ft_gguf_kv *kv, struct ft_err *err)
{
	if (kv->type == FT_GGUF_ARRAY)
		return ft_failf(err, FT_EFORMAT, "invalid_gguf",
				"%s: metadata \"%s\" must be %s (got an array of %s)", g->name,
				name, want, ft_gguf_vtype_name(kv->elem));
	return ft_failf(err, FT_EFORMAT, "invalid_gguf", "%s: metadata \"%s\" must be %s (got %s)",
			g->name, name, want, ft_gguf_vtype_name(kv->type));
}

enum ft_rc ft_gguf_get_str(const struct ft_gguf *g, enum ft_gguf_key k, unsigned flags,
			   const char **out, struct ft_err *err)
{
	const struct ft_gguf_kv *kv;
	char name[160];
	if (lookup(g, k, flags, &kv, name, sizeof name, err))
		return FT_EFORMAT;
	if (!kv)
		return FT_OK;
	if (kv->type != FT_GGUF_STRING)
		return wrong_type(g, name, "a string", kv, err);
	if (strlen(kv->str) != kv->len)
		return ft_failf(err, FT_EFORMAT, "invalid_gguf",
				"%s: metadata \"%s\" holds a NUL byte", g->name, name);
	*out = kv->str;
	return FT_OK;
}

enum ft_rc ft_gguf_get_int(const struct ft_gguf *g, enum ft_gguf_key k, unsigned flags,
			   long long min, long long max, long long *out, struct ft_err *err)
{
	const struct ft_gguf_kv *kv;
	char name[160];
	if (lookup(g, k, flags, &kv, name, sizeof name, err))
		return FT_EFORMAT;
	if (!kv)
		return FT_OK;
	if (!is_int(kv->type))
		return wrong_type(g, name, "an integer", kv, err);
	int64_t v = int_at(kv->type, kv->data);
	if (v < min || v > max || (kv->type == FT_GGUF_UINT64 && le64(kv->data) > INT64_MAX))
		return ft_failf(err, FT_EFORMAT, "invalid_gguf",
				"%s: metadata \"%s\" is %" PRId64 ", out of range [%lld, %lld]",
				g->name, name, v, min, max);
	*out = v;
	return FT_OK;
}

enum ft_rc ft_gguf_get_num(const struct ft_gguf *g, enum ft_gguf_key k, unsigned flags, double min,
			   double max, double *out, struct ft_err *err)
{
	const struct ft_gguf_kv *kv;
	char name[160];
	if (lookup(g, k, flags, &kv, name, sizeof name, err))
		return FT_EFORMAT;
	if (!kv)
		return FT_OK;
	if (!is_num(kv->type))
		return wrong_type(g, name, "a number", kv, err);
	double v = num_at(kv->type, kv->data);
	if (!(v >= min && v <= max))
		return ft_failf(err, FT_EFORMAT, "invalid_gguf",
				"%s: metadata \"%s\" is %g, out of range [%g, %g]", g->name, name,
				v, min, max);
	*out = v;
	return FT_OK;
}

enum ft_rc ft_gguf_get_bool(const struct ft_gguf *g, enum ft_gguf_key k, unsigned flags, bool *out,
			    struct ft_err *err)
{
	const struct ft_gguf_kv *kv;
	char name[160];
	if (lookup(g, k, flags, &kv, name, sizeof name, err))
		return FT_EFORMAT;
	if (!kv)
		return FT_OK;
	if (kv->type != FT_GGUF_BOOL)
		return wrong_type(g, name, "a boolean", kv, err);
	*out = kv->data[0] != 0;
	return FT_OK;
}

enum ft_rc ft_gguf_get_arr(const struct ft_gguf *g, enum ft_gguf_key k, unsigned flags,
			   const struct ft_gguf_kv **out, struct ft_err *err)
{
	const struct ft_gguf_kv *kv;
	char name[160];
	enum ft_gguf_vtype want = ft_gguf_keys[k].elem;
	if (lookup(g, k, flags, &kv, name, sizeof name, err))
		return FT_EFORMAT;
	if (!kv)
		return FT_OK;
	const char *what = want == FT_GGUF_STRING    ? "an array of strings"
			   : want == FT_GGUF_FLOAT32 ? "an array of numbers"
						     : "an array of integers";
	bool ok = kv->type == FT_GGUF_ARRAY && (want == FT_GGUF_STRING ? kv->elem == FT_GGUF_STRING
						: want == FT_GGUF_FLOAT32 ? is_num(kv->elem)
									  : is_int(kv->elem));
	if (!ok)
		return wrong_type(g, name, what, kv, err);
	*out = kv;
	return FT_OK;
}

enum ft_rc ft_gguf_tensor_to_f32(const struct ft_gguf *g, const struct ft_gguf_tensor *t,
				 float *dst, struct ft_err *err)
{
	const struct ft_ggml_type_info *ti = ft_ggml_type_info(t->type);
	if (!ti || !ti->dequant)
		return ft_failf(err, FT_EFORMAT, "unsupported_type",
				"%s: tensor \"%s\" has type %s, which ftplat does not dequantise "
				"(F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K..Q6_K)",
				g->name, t->name, ti ? ti->name : "?");
	if (!ft_ggml_dequant(t->type, t->data, t->nelem, dst))
		return ft_failf(err, FT_EINTERNAL, NULL, "%s: tensor \"%s\": dequantisation failed",
				g->name, t->name);
	return FT_OK;
}
