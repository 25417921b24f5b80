/*
 * ft/gguf.h - GGUF, llama.cpp's model file: the reader, dequantisation of
 * its tensor types to fp32, and a Llama / Qwen2 GGUF seen as what the
 * trainer reads from a Hugging Face folder (config, weights under their HF
 * names, tokenizer, chat template), plus `ft-train import` (a GGUF written
 * out as a Hugging Face folder); and the writer, the quantisers and the
 * per-tensor type rules of llama.cpp's file types (ft/model.h's
 * ft_model_save_gguf writes a model with them).
 *
 * File layout (little-endian; versions 2 and 3, which differ only in that
 * v3 may be big-endian, which is refused; version 1 used 32-bit counts):
 *
 * | field        | encoding                                 | checked                          |
 * |--------------|------------------------------------------|----------------------------------|
 * | magic        | "GGUF"                                   | exactly                          |
 * | version      | u32                                      | 2 or 3                           |
 * | n_tensors    | u64                                      | <= what the file can hold        |
 * | n_kv         | u64                                      | <= what the file can hold        |
 * | kv[n_kv]     | string key, u32 value type, value        | unique keys, known value types   |
 * | tensor infos | string name, u32 n_dims (1..4),          | unique names (< 64 bytes), known |
 * |              | u64 ne[n_dims], u32 ggml type, u64 offset| type, ne[0] a multiple of the    |
 * |              |                                          | block, sizes without overflow    |
 * | padding      | to general.alignment (default 32)        | alignment a power of two         |
 * | tensor data  | tensor i at data start + offset_i        | offset aligned, inside the file, |
 * |              |                                          | no two tensors overlapping       |
 *
 *   string = u64 byte length + bytes (no NUL); value = a scalar, a string,
 *   or an array: u32 element type + u64 count + the elements (arrays of
 *   arrays are refused). ne[0] is the fastest-varying dimension, so a
 *   PyTorch weight [out, in] is stored with ne = {in, out}.
 *
 * Every count, length and offset is checked against the bytes left in the
 * file BEFORE anything is allocated for it (a first pass walks the whole
 * header without allocating), so a corrupt or hostile header is an
 * FT_EFORMAT error naming the field and the offset, never a huge malloc.
 *
 * Value types (enum ft_gguf_vtype):
 *
 * | id | type    | bytes |   | id | type    | bytes         |
 * |----|---------|-------|---|----|---------|---------------|
 * |  0 | UINT8   | 1     |   |  7 | BOOL    | 1             |
 * |  1 | INT8    | 1     |   |  8 | STRING  | 8 + length    |
 * |  2 | UINT16  | 2     |   |  9 | ARRAY   | 12 + elements |
 * |  3 | INT16   | 2     |   | 10 | UINT64  | 8             |
 * |  4 | UINT32  | 4     |   | 11 | INT64   | 8             |
 * |  5 | INT32   | 4     |   | 12 | FLOAT64 | 8             |
 * |  6 | FLOAT32 | 4     |   |    |         |               |
 *
 * Tensor types: the table in gguf.c (ft_ggml_type_info) knows every ggml
 * type's block and byte size, so any file's layout can be checked; these
 * are the ones dequantised (gguf_dequant.c has each block layout), bit for
 * bit as the `gguf` Python package's numpy reference does:
 *
 * | type | name | block | bytes | type | name | block | bytes |
 * |------|------|-------|-------|------|------|-------|-------|
 * |  0   | F32  | 1     | 4     |  8   | Q8_0 | 32    | 34    |
 * |  1   | F16  | 1     | 2     | 10   | Q2_K | 256   | 84    |
 * | 30   | BF16 | 1     | 2     | 11   | Q3_K | 256   | 110   |
 * |  2   | Q4_0 | 32    | 18    | 12   | Q4_K | 256   | 144   |
 * |  3   | Q4_1 | 32    | 20    | 13   | Q5_K | 256   | 176   |
 * |  6   | Q5_0 | 32    | 22    | 14   | Q6_K | 256   | 210   |
 * |  7   | Q5_1 | 32    | 24    |      |      |       |       |
 *
 * The keys ftplat reads and its GGUF writer writes are the table
 * ft_gguf_keys[] below; the tensor names, ft_gguf_tensor_names[].
 *
 * Ownership: ft_gguf_open maps the file and returns an object freed with
 * ft_gguf_close; every pointer it hands out (keys, values, tensor data)
 * points into it and lives until then. ft_gguf_parse borrows the buffer it
 * is given, which must outlive the object.
 */
#ifndef FT_GGUF_H
#define FT_GGUF_H

#include "ft/base.h"
#include "ft/buf.h"
#include "ft/err.h"
#include "ft/json.h"
#include "ft/model_config.h"
#include "ft/safetensors.h"
#include "ft/tokenizer.h"

enum ft_gguf_vtype {
	FT_GGUF_UINT8 = 0,
	FT_GGUF_INT8 = 1,
	FT_GGUF_UINT16 = 2,
	FT_GGUF_INT16 = 3,
	FT_GGUF_UINT32 = 4,
	FT_GGUF_INT32 = 5,
	FT_GGUF_FLOAT32 = 6,
	FT_GGUF_BOOL = 7,
	FT_GGUF_STRING = 8,
	FT_GGUF_ARRAY = 9,
	FT_GGUF_UINT64 = 10,
	FT_GGUF_INT64 = 11,
	FT_GGUF_FLOAT64 = 12,
	FT_GGUF_VTYPE_COUNT
};
const char *ft_gguf_vtype_name(enum ft_gguf_vtype t); /* "UINT32", ...; "?" when unknown */

enum ft_ggml_type {
	FT_GGML_F32 = 0,
	FT_GGML_F16 = 1,
	FT_GGML_Q4_0 = 2,
	FT_GGML_Q4_1 = 3,
	FT_GGML_Q5_0 = 6,
	FT_GGML_Q5_1 = 7,
	FT_GGML_Q8_0 = 8,
	FT_GGML_Q2_K = 10,
	FT_GGML_Q3_K = 11,
	FT_GGML_Q4_K = 12,
	FT_GGML_Q5_K = 13,
	FT_GGML_Q6_K = 14,
	FT_GGML_BF16 = 30,
};

struct ft_ggml_type_info {
	const char *name; /* "Q4_K" */
	uint32_t block; /* elements per block */
	uint32_t bytes; /* bytes per block */
	bool dequant; /* ftplat dequantises it */
	bool quant; /* ftplat writes it (gguf_quant.c) */
};
/* The type's sizes, or NULL when the id is not a ggml type. */
const struct ft_ggml_type_info *ft_ggml_type_info(uint32_t type);
/* Dequantise nelem elements (a multiple of the block) of type from src
 * (nelem / block * bytes bytes) into dst. False when the type is not one
 * ftplat dequantises. */
bool ft_ggml_dequant(uint32_t type, const void *src, uint64_t nelem, float *dst);
/* Quantise (or convert) nelem floats, a multiple of the block, into dst
 * (nelem / block * bytes bytes) as llama.cpp's reference quantisers do
 * without an importance matrix (gguf_quant.c: F32, F16, BF16, Q8_0, Q4_0,
 * Q5_0, Q4_K, Q6_K, bit for bit). False when the type is not one ftplat
 * writes. Blocks never straddle rows when a row is a multiple of the
 * block, so a whole tensor is one call. */
bool ft_ggml_quant(uint32_t type, const float *src, uint64_t nelem, void *dst);

/* ---- metadata keys: one table for the reader and the writer ----
 *
 * "{arch}." stands for the value of general.architecture ("llama."). The
 * type is what a writer writes; the reader takes any integer type for an
 * integer key and any number for a float key, and checks the range. */
enum ft_gguf_key {
	FT_GGUF_KEY_ARCHITECTURE,
	FT_GGUF_KEY_ALIGNMENT,
	FT_GGUF_KEY_NAME,
	FT_GGUF_KEY_TYPE,
	FT_GGUF_KEY_FILE_TYPE,
	FT_GGUF_KEY_QUANT_VERSION,
	FT_GGUF_KEY_ADAPTER_TYPE,
	FT_GGUF_KEY_ADAPTER_LORA_ALPHA,
	FT_GGUF_KEY_CONTEXT_LENGTH,
	FT_GGUF_KEY_EMBEDDING_LENGTH,
	FT_GGUF_KEY_BLOCK_COUNT,
	FT_GGUF_KEY_FEED_FORWARD_LENGTH,
	FT_GGUF_KEY_HEAD_COUNT,
	FT_GGUF_KEY_HEAD_COUNT_KV,
	FT_GGUF_KEY_KEY_LENGTH,
	FT_GGUF_KEY_VALUE_LENGTH,
	FT_GGUF_KEY_RMS_EPS,
	FT_GGUF_KEY_VOCAB_SIZE,
	FT_GGUF_KEY_ROPE_DIMENSION_COUNT,
	FT_GGUF_KEY_ROPE_FREQ_BASE,
	FT_GGUF_KEY_ROPE_SCALING_TYPE,
	FT_GGUF_KEY_ROPE_SCALING_FACTOR,
	FT_GGUF_KEY_ROPE_SCALING_ORIG_CTX,
	FT_GGUF_KEY_ROPE_SCALE_LINEAR,
	FT_GGUF_KEY_TOK_MODEL,
	FT_GGUF_KEY_TOK_PRE,
	FT_GGUF_KEY_TOK_TOKENS,
	FT_GGUF_KEY_TOK_TOKEN_TYPE,
	FT_GGUF_KEY_TOK_SCORES,
	FT_GGUF_KEY_TOK_MERGES,
	FT_GGUF_KEY_TOK_BOS_ID,
	FT_GGUF_KEY_TOK_EOS_ID,
	FT_GGUF_KEY_TOK_UNK_ID,
	FT_GGUF_KEY_TOK_PAD_ID,
	FT_GGUF_KEY_TOK_ADD_BOS,
	FT_GGUF_KEY_TOK_ADD_EOS,
	FT_GGUF_KEY_TOK_ADD_SPACE_PREFIX,
	FT_GGUF_KEY_CHAT_TEMPLATE,
	FT_GGUF_KEY_COUNT
};

struct ft_gguf_key_def {
	const char *name; /* "general.alignment", "{arch}.block_count" */
	enum ft_gguf_vtype type; /* ARRAY for arrays */
	enum ft_gguf_vtype elem; /* arrays: the element type */
	const char *hf; /* what it becomes in a Hugging Face folder */
};
/*
 * | key                                       | type        | Hugging Face                              |
 * |-------------------------------------------|-------------|-------------------------------------------|
 * | general.architecture                      | STRING      | architectures / model_type (llama, qwen2) |
 * | general.alignment                         | UINT32      | (file layout; default 32)                 |
 * | general.name                              | STRING      | (shown only)                              |
 * | general.type                              | STRING      | "model", or "adapter" for a GGUF LoRA     |
 * | general.file_type                         | UINT32      | llama.cpp's llama_ftype (enum ft_gguf_ftype) |
 * | general.quantization_version              | UINT32      | 2 (ggml's block layouts) when quantised   |
 * | adapter.type                              | STRING      | "lora" (GGUF LoRA)                        |
 * | adapter.lora.alpha                        | FLOAT32     | adapter_config.json lora_alpha (rsLoRA: times sqrt(r)) |
 * | {arch}.context_length                     | UINT32      | max_position_embeddings                   |
 * | {arch}.embedding_length                   | UINT32      | hidden_size                               |
 * | {arch}.block_count                        | UINT32      | num_hidden_layers                         |
 * | {arch}.feed_forward_length                | UINT32      | intermediate_size                         |
 * | {arch}.attention.head_count               | UINT32      | num_attention_heads                       |
 * | {arch}.attention.head_count_kv            | UINT32      | num_key_value_heads (default: heads)      |
 * | {arch}.attention.key_length               | UINT32      | head_dim (default hidden / heads)         |
 * | {arch}.attention.value_length             | UINT32      | must equal head_dim                       |
 * | {arch}.attention.layer_norm_rms_epsilon   | FLOAT32     | rms_norm_eps                              |
 * | {arch}.vocab_size                         | UINT32      | vocab_size (must match token_embd)        |
 * | {arch}.rope.dimension_count               | UINT32      | must equal head_dim (no partial rotary)   |
 * | {arch}.rope.freq_base                     | FLOAT32     | rope_theta (default 10000)                |
 * | {arch}.rope.scaling.type                  | STRING      | rope_scaling.rope_type: none, linear      |
 * | {arch}.rope.scaling.factor                | FLOAT32     | rope_scaling.factor                       |
 * | {arch}.rope.scaling.original_context_length| UINT32     | (read with linear; not needed by it)      |
 * | {arch}.rope.scale_linear                  | FLOAT32     | older spelling of a linear factor         |
 * | tokenizer.ggml.model                      | STRING      | gpt2 (byte-level BPE), llama (SentencePiece BPE) |
 * | tokenizer.ggml.pre                        | STRING      | the pre-tokenizer (gguf_tokenizer.c table) |
 * | tokenizer.ggml.tokens                     | [STRING]    | model.vocab (id = index)                  |
 * | tokenizer.ggml.token_type                 | [INT32]     | added_tokens: 2 unknown, 3 control (special), 4 user-defined |
 * | tokenizer.ggml.scores                     | [FLOAT32]   | merge order when there are no merges      |
 * | tokenizer.ggml.merges                     | [STRING]    | model.merges ("a b")                      |
 * | tokenizer.ggml.bos_token_id (eos, unknown,| UINT32      | bos_token / eos_token / unk_token /       |
 * |   padding: ..._token_id)                  |             | pad_token, and config.json's ids          |
 * | tokenizer.ggml.add_bos_token / add_eos_token| BOOL      | the post-processor's BOS / EOS            |
 * | tokenizer.ggml.add_space_prefix           | BOOL        | Metaspace prepend_scheme first / never    |
 * | tokenizer.chat_template                   | STRING      | tokenizer_config.json chat_template       |
 */
extern const struct ft_gguf_key_def ft_gguf_keys[FT_GGUF_KEY_COUNT];

/* ---- tensor names: one table for the reader and the writer ----
 *
 * | GGUF                    | Hugging Face                                | rows    | role (quantisation) |
 * |-------------------------|---------------------------------------------|---------|---------------------|
 * | token_embd.weight       | model.embed_tokens.weight                   |         | token_embd          |
 * | output_norm.weight      | model.norm.weight                           |         | (1-D: F32)          |
 * | output.weight           | lm_head.weight (absent: tied embeddings)    |         | output              |
 * | blk.N.attn_norm.weight  | model.layers.N.input_layernorm.weight       |         | (1-D: F32)          |
 * | blk.N.ffn_norm.weight   | model.layers.N.post_attention_layernorm.weight |      | (1-D: F32)          |
 * | blk.N.attn_q.weight/bias| model.layers.N.self_attn.q_proj.weight/bias | Q order | weight              |
 * | blk.N.attn_k.weight/bias| model.layers.N.self_attn.k_proj.weight/bias | K order | weight              |
 * | blk.N.attn_v.weight/bias| model.layers.N.self_attn.v_proj.weight/bias |         | attn_v              |
 * | blk.N.attn_output.weight/bias| model.layers.N.self_attn.o_proj.*      |         | weight              |
 * | blk.N.ffn_gate.weight/bias| model.layers.N.mlp.gate_proj.*            |         | weight              |
 * | blk.N.ffn_up.weight/bias| model.layers.N.mlp.up_proj.*                |         | weight              |
 * | blk.N.ffn_down.weight/bias| model.layers.N.mlp.down_proj.*            |         | ffn_down            |
 * | rope_freqs.weight       | rope_scaling llama3 (fitted, see gguf_model.c) |      | (1-D: F32)          |
 *
 * Q / K order: llama.cpp's converter reorders the rows of q_proj and
 * k_proj of a "llama" model for its interleaved rotary (per head of
 * head_dim rows, HF row j * head_dim/2 + i is stored as row 2i + j; K uses
 * the KV heads); the reader undoes it and the writer applies it. Qwen2
 * files are stored in HF order. The role is what llama.cpp's quantiser
 * looks at (ft_gguf_ftype_tensor_type); biases and norms are 1-D and stay
 * F32.
 */
enum ft_gguf_rows { FT_GGUF_ROWS_HF = 0, FT_GGUF_ROWS_Q, FT_GGUF_ROWS_K };
enum ft_gguf_role {
	FT_GGUF_ROLE_WEIGHT = 0, /* a 2-D weight of a block */
	FT_GGUF_ROLE_TOKEN_EMBD,
	FT_GGUF_ROLE_OUTPUT,
	FT_GGUF_ROLE_ATTN_V,
	FT_GGUF_ROLE_FFN_DOWN,
};
struct ft_gguf_tensor_name {
	const char *gguf; /* "blk.%d.attn_q.weight": %d is the layer */
	const char *hf; /* "model.layers.%d.self_attn.q_proj.weight" */
	enum ft_gguf_rows rows;
	enum ft_gguf_role role;
};
extern const struct ft_gguf_tensor_name ft_gguf_tensor_names[];
extern const size_t ft_gguf_tensor_names_count;
/* The table row of a GGUF name (gguf_side) or a Hugging Face name, with
 * its layer (-1: none); NULL when the table has none. */
const struct ft_gguf_tensor_name *ft_gguf_tensor_name_find(const char *name, bool gguf_side,
							   int *layer);
/* The row's name on one side for a layer. */
void ft_gguf_tensor_name_format(const char *pattern, int layer, char *buf, size_t size);

/* ---- file types: which ggml type each tensor gets ----
 *
 * general.file_type is llama.cpp's llama_ftype; the ones ftplat writes and
 * the tensor types each gives, as llama.cpp's llama_model_quantize chooses
 * them for an F32 input without an importance matrix (src/llama-quant.cpp;
 * n = the number of blocks, "more bits" = use_more_bits(i, n): i < n/8 or
 * i >= 7n/8 or (i - n/8) % 3 == 2):
 *
 * | ftype (id)  | 1-D | weight | output, and token_embd when tied | token_embd (untied) | attn_v, ffn_down of block i |
 * |-------------|-----|--------|----------------------------------|---------------------|-----------------------------|
 * | F32 (0)     | F32 | F32    | F32                              | F32                 | F32                         |
 * | F16 (1)     | F32 | F16    | F16                              | F16                 | F16                         |
 * | Q4_0 (2)    | F32 | Q4_0   | Q6_K (Q8_0 when ne0 % 32)        | Q4_0                | Q4_0                        |
 * | Q8_0 (7)    | F32 | Q8_0   | Q8_0                             | Q8_0                | Q8_0                        |
 * | Q4_K_M (15) | F32 | Q4_K   | Q6_K (Q8_0 when ne0 % 256)       | Q4_K                | Q6_K with more bits, else Q4_K |
 *
 * then, when a row (ne0) is not a multiple of the chosen type's block:
 * Q4_K -> Q5_0, Q6_K -> Q8_0, and F16 when that still does not fit.
 */
enum ft_gguf_ftype {
	FT_GGUF_FTYPE_F32 = 0,
	FT_GGUF_FTYPE_F16 = 1,
	FT_GGUF_FTYPE_Q4_0 = 2,
	FT_GGUF_FTYPE_Q8_0 = 7,
	FT_GGUF_FTYPE_Q4_K_M = 15,
};
/* "F16", "Q4_K_M", ... -> the ftype; false when it is not one we write. */
bool ft_gguf_ftype_parse(const char *name, enum ft_gguf_ftype *out);
const char *ft_gguf_ftype_name(enum ft_gguf_ftype ft);
/* "F32, F16, Q8_0, Q4_0, Q4_K_M" for messages. */
const char *ft_gguf_ftype_names(void);
/* The ggml type of one tensor: its role, its row length ne0, whether it
 * is 1-D, its block (layer) i of n, and whether the model ties its
 * embeddings (no output.weight). */
uint32_t ft_gguf_ftype_tensor_type(enum ft_gguf_ftype ft, enum ft_gguf_role role, uint64_t ne0,
				   bool one_d, int layer, int n_layers, bool tied);

/* ---- the reader ---- */

struct ft_gguf_kv {
	const char *key; /* NUL-terminated copy */
	enum ft_gguf_vtype type;
	enum ft_gguf_vtype elem; /* arrays: element type */
	uint64_t n; /* arrays: element count; 1 otherwise */
	const uint8_t *data; /* the value in the file (an array: its first element) */
	const char *str; /* STRING: a NUL-terminated copy (the value may hold NUL: see len) */
	uint64_t len; /* STRING: byte length */
	const uint64_t *str_off; /* arrays of STRING: offset of element i's u64 length from data */
};

struct ft_gguf_tensor {
	const char *name; /* NUL-terminated copy */
	uint32_t type; /* enum ft_ggml_type */
	int n_dims;
	uint64_t ne[4]; /* ne[0] fastest; unused dimensions are 1 */
	uint64_t nelem, nbytes;
	uint64_t offset; /* from the start of the data section */
	const uint8_t *data;
};

struct ft_gguf;

/* Map and check a file. The error messages start with the path. */
enum ft_rc ft_gguf_open(const char *path, struct ft_gguf **out, struct ft_err *err);
/* Check a whole file held in buf (borrowed). name prefixes the messages. */
enum ft_rc ft_gguf_parse(const uint8_t *buf, size_t len, const char *name, struct ft_gguf **out,
			 struct ft_err *err);
void ft_gguf_close(struct ft_gguf *g);
/* A path the loaders should read as a GGUF: a regular file (a folder is a
 * Hugging Face folder). */
bool ft_gguf_path_is_file(const char *path);

uint32_t ft_gguf_version(const struct ft_gguf *g);
uint32_t ft_gguf_alignment(const struct ft_gguf *g);
const char *ft_gguf_name(const struct ft_gguf *g); /* as given to open / parse */
size_t ft_gguf_kv_count(const struct ft_gguf *g);
const struct ft_gguf_kv *ft_gguf_kv_at(const struct ft_gguf *g, size_t i); /* file order */
const struct ft_gguf_kv *ft_gguf_kv_find(const struct ft_gguf *g, const char *key);
size_t ft_gguf_tensor_count(const struct ft_gguf *g);
const struct ft_gguf_tensor *ft_gguf_tensor_at(const struct ft_gguf *g, size_t i); /* file order */
const struct ft_gguf_tensor *ft_gguf_tensor_find(const struct ft_gguf *g, const char *name);

/* Array elements (i < kv->n, element type as kv->elem; the getters below
 * check that). Strings are not NUL-terminated. */
const char *ft_gguf_arr_str(const struct ft_gguf_kv *kv, uint64_t i, uint64_t *len);
int64_t ft_gguf_arr_int(const struct ft_gguf_kv *kv, uint64_t i); /* integer or BOOL elements */
double ft_gguf_arr_num(const struct ft_gguf_kv *kv, uint64_t i); /* any number */

/* Typed getters by key (a table key, "{arch}." resolved). Absent: FT_OK
 * with *out untouched, or an error with FT_JSON_REQUIRED (the flag is
 * shared with ft/json.h). The wrong type or a value out of range is an
 * FT_EFORMAT error naming the key: `model.gguf: "llama.block_count" must be
 * an integer (got STRING)`. */
enum ft_rc ft_gguf_get_str(const struct ft_gguf *g, enum ft_gguf_key k, unsigned flags,
			   const char **out, struct ft_err *err);
enum ft_rc ft_gguf_get_int(const struct ft_gguf *g, enum ft_gguf_key k, unsigned flags,
			   long long min, long long max, long long *out, struct ft_err *err);
enum ft_rc ft_gguf_get_num(const struct ft_gguf *g, enum ft_gguf_key k, unsigned flags, double min,
			   double max, double *out, struct ft_err *err);
enum ft_rc ft_gguf_get_bool(const struct ft_gguf *g, enum ft_gguf_key k, unsigned flags, bool *out,
			    struct ft_err *err);
/* An array whose elements are strings (elem STRING), integers (elem
 * UINT32: any integer type) or numbers (elem FLOAT32: any number). */
enum ft_rc ft_gguf_get_arr(const struct ft_gguf *g, enum ft_gguf_key k, unsigned flags,
			   const struct ft_gguf_kv **out, struct ft_err *err);
/* The key's name in this file ("{arch}" resolved) in buf. */
const char *ft_gguf_key_name(const struct ft_gguf *g, enum ft_gguf_key k, char *buf, size_t size);

/* Dequantise a whole tensor into dst[t->nelem]. */
enum ft_rc ft_gguf_tensor_to_f32(const struct ft_gguf *g, const struct ft_gguf_tensor *t,
				 float *dst, struct ft_err *err);

/* ---- a Llama / Qwen2 GGUF as a Hugging Face model (gguf_model.c) ---- */

/* The config.json object the metadata describes (the keys in the table
 * above; tie_word_embeddings when there is no output.weight; attention and
 * MLP biases from the tensors present; bos / eos / pad from the tokenizer
 * ids). torch_dtype (may be NULL) is written as given. Every tensor must
 * be one the name table maps. Caller owns the result. */
enum ft_rc ft_gguf_config_json(const struct ft_gguf *g, const char *torch_dtype, json_t **out,
			       struct ft_err *err);
/* The same, parsed as config.json is (ft_model_config_from_json). */
enum ft_rc ft_gguf_model_config(const struct ft_gguf *g, struct ft_model_config *out,
				struct ft_err *err);
/* The GGUF tensor behind a Hugging Face tensor name (NULL: none), with its
 * shape in PyTorch order ([out, in]). */
const struct ft_gguf_tensor *ft_gguf_hf_find(const struct ft_gguf *g, const char *hf_name,
					     int *ndim, int64_t shape[2]);
/* Dequantise the tensor of a Hugging Face name into dst (nelem floats),
 * in Hugging Face row order. */
enum ft_rc ft_gguf_hf_to_f32(const struct ft_gguf *g, const struct ft_model_config *c,
			     const char *hf_name, float *dst, uint64_t nelem, struct ft_err *err);

/* llama.cpp's rope_freqs divisor of frequency i (0 .. head_dim/2 - 1) for
 * Llama 3 scaling (the formula at the top of gguf_model.c). */
double ft_gguf_llama3_divisor(double theta, int head_dim, int i, double factor, double low,
			      double high, double orig);

/* ---- tokenizer (gguf_tokenizer.c) ---- */

/* tokenizer.json and tokenizer_config.json as the metadata describes them
 * (either out may be NULL). Caller owns the results. */
enum ft_rc ft_gguf_tokenizer_json(const struct ft_gguf *g, json_t **tokenizer,
				  json_t **tokenizer_config, struct ft_err *err);
/* The tokenizer itself, built from those by the tokenizer.json loader. */
enum ft_rc ft_gguf_tokenizer(const struct ft_gguf *g, struct ft_tokenizer **out,
			     struct ft_err *err);

/* ---- the writer (gguf_write.c) ----
 *
 * Builds a GGUF v3 file in the layout above: metadata in the order it is
 * set, tensor infos in the order added, each tensor's data at the next
 * multiple of the alignment (general.alignment, written when it is not
 * the default 32). Values are copied when set; a tensor's bytes come from
 * its fill function when the file is written, one tensor at a time (so an
 * export holds one tensor in memory, not the model). The file appears
 * atomically (a temporary in the same folder, fsync, rename).
 *
 * Ownership: ft_gguf_writer_new returns an object freed with
 * ft_gguf_writer_free; fill contexts are borrowed until the write. */
struct ft_gguf_writer;
struct ft_gguf_writer *ft_gguf_writer_new(void);
void ft_gguf_writer_free(struct ft_gguf_writer *w);
/* general.architecture also names the "{arch}." keys of the table. */
enum ft_rc ft_gguf_writer_arch(struct ft_gguf_writer *w, const char *arch, struct ft_err *err);
/* A value by key name; a key set twice is an error. Scalars: val points
 * at a uint8_t .. double or bool of the type; STRING: val is a
 * NUL-terminated string. */
enum ft_rc ft_gguf_writer_kv(struct ft_gguf_writer *w, const char *key, enum ft_gguf_vtype type,
			     const void *val, struct ft_err *err);
/* An array of n scalars (vals: a C array of the element type) or strings
 * (vals: const char *const *, NUL-terminated each; lens may give their
 * lengths instead, for strings holding NUL bytes). */
enum ft_rc ft_gguf_writer_arr(struct ft_gguf_writer *w, const char *key, enum ft_gguf_vtype elem,
			      const void *vals, const uint64_t *lens, uint64_t n,
			      struct ft_err *err);
/* A table key ("{arch}." resolved) with the table's type. */
enum ft_rc ft_gguf_writer_key(struct ft_gguf_writer *w, enum ft_gguf_key k, const void *val,
			      struct ft_err *err);
enum ft_rc ft_gguf_writer_key_arr(struct ft_gguf_writer *w, enum ft_gguf_key k, const void *vals,
				  uint64_t n, struct ft_err *err);
bool ft_gguf_writer_has(const struct ft_gguf_writer *w, const char *key);

/* Fill dst (nbytes, the tensor's size in its type) with the tensor. */
typedef enum ft_rc (*ft_gguf_fill_fn)(void *ctx, void *dst, uint64_t nbytes, struct ft_err *err);
/* A tensor of a ggml type with n_dims (1..4) sizes ne (ne[0] fastest, a
 * multiple of the type's block). */
enum ft_rc ft_gguf_writer_tensor(struct ft_gguf_writer *w, const char *name, uint32_t type,
				 int n_dims, const uint64_t *ne, ft_gguf_fill_fn fill, void *ctx,
				 struct ft_err *err);
/* Progress while writing: tensors written so far of n, data bytes of total. */
typedef void (*ft_gguf_progress_fn)(void *ud, size_t done, size_t n, uint64_t bytes,
				    uint64_t total);
enum ft_rc ft_gguf_writer_write(struct ft_gguf_writer *w, const char *path,
				ft_gguf_progress_fn progress, void *ud, struct ft_err *err);
/* Bytes the file will have (header, padding and data). */
uint64_t ft_gguf_writer_size(const struct ft_gguf_writer *w);

/* The tokenizer's metadata (tokenizer.ggml.*, the chat template): the
 * inverse of ft_gguf_tokenizer_json (gguf_tokenizer.c). n_vocab: the
 * model's vocabulary (rows of token_embd), which may exceed the
 * tokenizer's (the extra ids become unused "[PAD<id>]" tokens). A
 * tokenizer llama.cpp has no pre-tokenizer for is an FT_EINVAL error
 * naming it. */
enum ft_rc ft_gguf_tokenizer_put(struct ft_gguf_writer *w, const struct ft_tokenizer *t,
				 int n_vocab, struct ft_err *err);

/* ---- import (gguf_model.c) ---- */

struct ft_gguf_import {
	enum ft_dtype dtype; /* FT_DTYPE_BF16 or FT_DTYPE_F32 */
	/* filled: */
	size_t n_tensors;
	uint64_t n_params;
	char architecture[64];
	char chat_template[32]; /* our template family, "" when none or unknown */
	char warning[512]; /* "" or why the chat template is not one we render */
};
/* Write out_dir as a Hugging Face folder: config.json, model.safetensors,
 * tokenizer.json, tokenizer_config.json, generation_config.json. Memory:
 * one tensor at a time. */
enum ft_rc ft_gguf_import(const char *gguf_path, const char *out_dir, struct ft_gguf_import *imp,
			  struct ft_err *err);
/* The tokenizer and generation files alone (a merged model of a GGUF base). */
enum ft_rc ft_gguf_write_side_files(const struct ft_gguf *g, const char *dir, struct ft_err *err);

#endif
