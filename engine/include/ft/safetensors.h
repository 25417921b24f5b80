/*
 * ft/safetensors.h - read and write the safetensors format, and sharded
 * checkpoints (model.safetensors.index.json).
 *
 * File layout (https://huggingface.co/docs/safetensors):
 *   u64 little-endian  N = header length in bytes
 *   N bytes            JSON header: { "name": {"dtype": "F32", "shape": [..],
 *                      "data_offsets": [begin, end]}, ..., "__metadata__": {str: str} }
 *   rest               the byte buffer; offsets are relative to its start
 *
 * Reading maps the file (mmap) and validates the header before any tensor is
 * touched: header size cap, JSON shape, known dtype, shape product times the
 * dtype size equal to end - begin, offsets inside the buffer, no two tensors
 * overlapping, and (like the reference implementation) no gaps. Every
 * violation is an FT_EFORMAT error naming the file and the tensor.
 *
 * Ownership: ft_st_open returns a file the caller frees with ft_st_close;
 * tensor data pointers point into the mapping and live until then.
 */
#ifndef FT_SAFETENSORS_H
#define FT_SAFETENSORS_H

#include "ft/base.h"
#include "ft/buf.h"
#include "ft/err.h"
#include "ft/json.h"

enum ft_dtype {
	FT_DTYPE_F32 = 0,
	FT_DTYPE_F16,
	FT_DTYPE_BF16,
	FT_DTYPE_U8,
	FT_DTYPE_I8,
	FT_DTYPE_I32,
	FT_DTYPE_I64,
	FT_DTYPE_F64,
	FT_DTYPE_BOOL,
	FT_DTYPE_COUNT
};

#define FT_ST_MAX_DIMS 8
#define FT_ST_MAX_HEADER (100u << 20) /* 100 MB, as the reference implementation */

const char *ft_dtype_name(enum ft_dtype d); /* "F32", "BF16", ... */
size_t ft_dtype_size(enum ft_dtype d); /* bytes per element */
bool ft_dtype_parse(const char *s, enum ft_dtype *out);

struct ft_st_tensor {
	const char *name;
	enum ft_dtype dtype;
	int ndim;
	int64_t shape[FT_ST_MAX_DIMS];
	uint64_t nelem;
	const void *data; /* into the mapping; not aligned beyond 1 byte in general */
	uint64_t nbytes;
};

struct ft_st_file;

enum ft_rc ft_st_open(const char *path, struct ft_st_file **out, struct ft_err *err);
void ft_st_close(struct ft_st_file *f);
size_t ft_st_count(const struct ft_st_file *f);
const struct ft_st_tensor *ft_st_at(const struct ft_st_file *f, size_t i);
const struct ft_st_tensor *ft_st_find(const struct ft_st_file *f, const char *name);
/* __metadata__ value for key, or NULL. */
const char *ft_st_metadata(const struct ft_st_file *f, const char *key);
/* Every __metadata__ pair, sorted by key: returns the i-th key and sets
 * *value; NULL past the end. */
size_t ft_st_metadata_count(const struct ft_st_file *f);
const char *ft_st_metadata_at(const struct ft_st_file *f, size_t i, const char **value);

/* Parse and validate a header alone (used by the fuzzer and ft_st_open):
 * buf holds the whole file (or at least 8 + N bytes); file_size is the
 * real size, for offset checks. */
enum ft_rc ft_st_parse(const uint8_t *buf, size_t len, uint64_t file_size, struct ft_st_file **out,
		       struct ft_err *err);

/* One half-precision value to fp32, exactly (subnormals, inf, NaN kept). */
float ft_f16_to_f32(uint16_t h);
float ft_bf16_to_f32(uint16_t b);

/* Convert one tensor to fp32 (from F32, F16 or BF16) into dst[nelem]. */
enum ft_rc ft_st_to_f32(const struct ft_st_tensor *t, float *dst, struct ft_err *err);

/* fp32 to half precision, rounding to nearest even as torch's .to() does:
 * overflow gives inf, tiny values F16 subnormals or zero. NaN stays a quiet
 * NaN with its sign: F16 keeps the top payload bits (as x86 F16C and ARM
 * do), BF16 gives 0x7FC0 (torch's scalar path; its vector path gives 0xFFFF). */
uint16_t ft_f32_to_f16(float f);
uint16_t ft_f32_to_bf16(float f);
/* n floats into dst as little-endian F32, F16 or BF16 (n * dtype size
 * bytes); other dtypes are FT_EINVAL. */
enum ft_rc ft_st_from_f32(const float *src, uint64_t n, enum ft_dtype dtype, void *dst,
			  struct ft_err *err);

/* Writing: collect tensors (data is copied at write time, not before),
 * then write atomically (temp file, fsync, rename). Tensors are written
 * sorted by name, with 8-byte aligned offsets as the Python package does. */
struct ft_st_writer;
struct ft_st_writer *ft_st_writer_new(void);
void ft_st_writer_free(struct ft_st_writer *w);
enum ft_rc ft_st_writer_add(struct ft_st_writer *w, const char *name, enum ft_dtype dtype, int ndim,
			    const int64_t *shape, const void *data, struct ft_err *err);
/* A tensor whose bytes are made when the file is written: fill(ctx, dst,
 * nbytes) writes all nbytes into dst (a scratch buffer reused for every
 * such tensor), so a writer of many tensors holds one at a time. ctx must
 * live until ft_st_writer_write. */
typedef enum ft_rc (*ft_st_fill_fn)(void *ctx, void *dst, uint64_t nbytes, struct ft_err *err);
enum ft_rc ft_st_writer_add_fill(struct ft_st_writer *w, const char *name, enum ft_dtype dtype,
				 int ndim, const int64_t *shape, ft_st_fill_fn fill, void *ctx,
				 struct ft_err *err);
enum ft_rc ft_st_writer_meta(struct ft_st_writer *w, const char *key, const char *value,
			     struct ft_err *err);
enum ft_rc ft_st_writer_write(struct ft_st_writer *w, const char *path, struct ft_err *err);

/* A model folder's weights, one file or sharded: opens model.safetensors,
 * or (when there is none) model.safetensors.index.json and every shard it
 * names, each once. Lookup by tensor name across shards; ft_st_set_at goes
 * in name order. ft_st_at (one file) goes in file (offset) order. */
struct ft_st_set;
enum ft_rc ft_st_set_open(const char *model_dir, struct ft_st_set **out, struct ft_err *err);
void ft_st_set_close(struct ft_st_set *s);
const struct ft_st_tensor *ft_st_set_find(const struct ft_st_set *s, const char *name);
size_t ft_st_set_count(const struct ft_st_set *s);
const struct ft_st_tensor *ft_st_set_at(const struct ft_st_set *s, size_t i);

#endif
