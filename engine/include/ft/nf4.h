/*
 * ft/nf4.h - 4-bit NormalFloat (NF4) weights as bitsandbytes stores them
 * (QLoRA, Dettmers et al. 2023), and their serialisation in a state dict.
 *
 * A weight W [rows, cols] (row-major, n = rows * cols elements) becomes:
 *   packed[ceil(n/2)]   two 4-bit codes per byte, element 2i in the HIGH
 *                       nibble, element 2i+1 in the low one (odd n: the
 *                       last low nibble is 7, the code of 0.0)
 *   absmax[nb]          one fp32 scale per block of 64 consecutive elements
 *                       (nb = ceil(n/64)); W[i] ~ ft_nf4_code[q[i]] * absmax[i/64]
 * With double quantisation (bitsandbytes' compress_statistics) absmax is
 * itself quantised: offset = mean(absmax) (fp32), and absmax - offset is
 * quantised blockwise to 8 bits in blocks of 256 with the signed dynamic
 * map (ft_nf4_dynamic_map): qabsmax[nb] (u8) + nested_absmax[ceil(nb/256)]
 * (fp32); absmax[b] = dynamic_map[qabsmax[b]] * nested_absmax[b/256] + offset.
 * The exact arithmetic (bit-identical to bitsandbytes 0.50 on the CPU) is
 * written at the top of engine/formats/nf4.c.
 *
 * State-dict names for a weight NAME (transformers' Linear4bit, safetensors):
 *   | tensor                                 | dtype | shape          |
 *   |----------------------------------------|-------|----------------|
 *   | NAME                                   | U8    | [ceil(n/2), 1] |
 *   | NAME.absmax                            | U8 (double quant) or F32 | [nb] |
 *   | NAME.quant_map                         | F32   | [16]           |
 *   | NAME.nested_absmax                     | F32   | [ceil(nb/256)] (double quant) |
 *   | NAME.nested_quant_map                  | F32   | [256] (double quant; must be the dynamic map) |
 *   | NAME.quant_state.bitsandbytes__nf4     | U8    | [len]: UTF-8 JSON |
 * The JSON (QuantState.as_dict(packed=True)): {"quant_type": "nf4",
 * "blocksize": 64, "dtype": "float32"|"bfloat16"|"float16", "shape": [rows,
 * cols], and with double quant "nested_blocksize": 256, "nested_dtype":
 * "float32", "nested_offset": <offset>}.
 *
 * Memory: struct ft_nf4 does not own its arrays; ft_nf4_layout tells how
 * many bytes one weight needs and ft_nf4_point lays it out in memory the
 * caller owns (the model puts all its NF4 weights in one allocation).
 */
#ifndef FT_NF4_H
#define FT_NF4_H

#include "ft/base.h"
#include "ft/buf.h"
#include "ft/err.h"
#include "ft/json.h"

struct ft_st_writer;
struct ft_st_set;

#define FT_NF4_BLOCK 64
#define FT_NF4_NESTED_BLOCK 256

/* bitsandbytes' NF4 codebook (the 16 fp32 values, sorted). */
extern const float ft_nf4_code[16];
/* bitsandbytes' create_dynamic_map(signed=True) (256 fp32 values, sorted). */
extern const float ft_nf4_dynamic_map[256];

struct ft_nf4 {
	int64_t rows, cols;
	size_t n, nblocks, nnested;
	bool nested; /* double quantisation */
	int src_dtype; /* enum ft_dtype the weight came in (the JSON "dtype") */
	uint8_t *packed; /* [ceil(n/2)] */
	float *absmax; /* [nblocks] when !nested */
	uint8_t *qabsmax; /* [nblocks] when nested */
	float *nested_absmax; /* [nnested] when nested */
	const float *code2; /* the nested map: ft_nf4_dynamic_map (the only one read) */
	float offset;
};

/* Bytes one [rows, cols] weight takes (a multiple of 16). */
size_t ft_nf4_layout(int64_t rows, int64_t cols, bool nested);
/* Point q's arrays into mem (ft_nf4_layout bytes, 16-byte aligned). */
void ft_nf4_point(struct ft_nf4 *q, void *mem, int64_t rows, int64_t cols, bool nested);

/* Quantise w[rows*cols] into q (already pointed). Non-finite weights are
 * an error naming the element (bitsandbytes would propagate NaN). */
enum ft_rc ft_nf4_quantize(struct ft_nf4 *q, const float *w, struct ft_err *err);
/* The fp32 scale of block b. */
float ft_nf4_block_scale(const struct ft_nf4 *q, size_t b);
/* Dequantise rows [r0, r0+nr), columns [c0, c0+nc) into dst (row stride ld). */
void ft_nf4_dequant_tile(const struct ft_nf4 *q, int64_t r0, int64_t nr, int64_t c0, int64_t nc,
			 float *dst, int64_t ld);
/* Dequantise the whole weight into dst[n]. */
void ft_nf4_dequant(const struct ft_nf4 *q, float *dst);

/* The quant_state JSON, parsed and checked. */
struct ft_nf4_state {
	int64_t rows, cols;
	int dtype; /* enum ft_dtype: F32, BF16 or F16 */
	bool nested;
	float offset;
};
/* Parse the bytes of NAME.quant_state.bitsandbytes__nf4. Only nf4 with
 * blocksize 64 (and nested_blocksize 256, nested_dtype float32) is read;
 * anything else is an error naming the field. */
enum ft_rc ft_nf4_state_parse(const char *text, size_t len, struct ft_nf4_state *st,
			      struct ft_err *err);
/* The JSON text for q, as Python's json.dumps writes the dict. */
enum ft_rc ft_nf4_state_json(const struct ft_nf4 *q, struct ft_buf *out);

/* Does set hold NAME as a bitsandbytes 4-bit weight? */
bool ft_nf4_st_has(const struct ft_st_set *set, const char *name);
/* Read NAME's state (the JSON) from set, checking the shape is [rows, cols]. */
enum ft_rc ft_nf4_st_state(const struct ft_st_set *set, const char *name, int64_t rows,
			   int64_t cols, struct ft_nf4_state *st, struct ft_err *err);
/* Read NAME from set into q (pointed with st's shape and nested flag). */
enum ft_rc ft_nf4_st_read(const struct ft_st_set *set, const char *name,
			  const struct ft_nf4_state *st, struct ft_nf4 *q, struct ft_err *err);
/* Add NAME's tensors to w. The data must live until ft_st_writer_write;
 * json (from ft_nf4_state_json) too. */
enum ft_rc ft_nf4_st_add(struct ft_st_writer *w, const char *name, const struct ft_nf4 *q,
			 const struct ft_buf *json, struct ft_err *err);

#endif
