/*
 * fuzz_gguf_write.c - the GGUF writer on whatever the reader accepts: every
 * metadata value and tensor of a parsed file written back through
 * ft_gguf_writer (same keys, types, values, shapes and bytes), then read
 * again and compared; the tokenizer the reader builds from the metadata
 * written back as tokenizer.ggml.* (ft_gguf_tokenizer_put) and built
 * again, encoding a text to the same ids; and the quantisers on the
 * file's bytes seen as floats (NaN, infinities and subnormals included),
 * each block dequantised again. Errors are fine; crashes, leaks, undefined
 * behaviour and a round trip that changes anything are not.
 *
 * Seeds (corpus/gguf_write/): files of corpus/gguf (written by the gguf
 * package by make_gguf_corpus.py): byte-level and SentencePiece tokenizers,
 * every dequantised tensor type, rope_freqs, a version 2 file.
 */
#include <unistd.h>

#include "ft/fs.h"
#include "ft/gguf.h"
#include "ft/tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Bytes of a scalar of type t. */
static size_t scalar_size(enum ft_gguf_vtype t)
{
	switch (t) {
	case FT_GGUF_UINT8:
	case FT_GGUF_INT8:
	case FT_GGUF_BOOL: return 1;
	case FT_GGUF_UINT16:
	case FT_GGUF_INT16: return 2;
	case FT_GGUF_UINT32:
	case FT_GGUF_INT32:
	case FT_GGUF_FLOAT32: return 4;
	default: return 8;
	}
}

struct src {
	const struct ft_gguf_tensor *t;
};

static enum ft_rc fill_from(void *ctx, void *dst, uint64_t nbytes, struct ft_err *err)
{
	const struct ft_gguf_tensor *t = ((struct src *)ctx)->t;
	FT_UNUSED(err);
	FT_ASSERT(t->nbytes == nbytes);
	memcpy(dst, t->data, nbytes);
	return FT_OK;
}

/* One value of kv written with the writer's API (its element type kept). */
static enum ft_rc put_kv(struct ft_gguf_writer *w, const struct ft_gguf_kv *kv, struct ft_err *err)
{
	if (kv->type == FT_GGUF_STRING) {
		if (strlen(kv->str) != kv->len)
			return FT_EINVAL; /* a NUL inside: the scalar API takes C strings */
		return ft_gguf_writer_kv(w, kv->key, FT_GGUF_STRING, kv->str, err);
	}
	if (kv->type == FT_GGUF_BOOL) {
		bool b = kv->data[0] != 0;
		if (kv->data[0] > 1)
			return FT_EINVAL; /* would come back as 1 */
		return ft_gguf_writer_kv(w, kv->key, kv->type, &b, err);
	}
	if (kv->type != FT_GGUF_ARRAY) {
		uint64_t v = 0; /* aligned storage for the value's bytes */
		memcpy(&v, kv->data, scalar_size(kv->type));
		return ft_gguf_writer_kv(w, kv->key, kv->type, &v, err);
	}
	if (kv->elem == FT_GGUF_STRING) {
		const char **s = calloc(kv->n + 1, sizeof(*s));
		uint64_t *len = calloc(kv->n + 1, sizeof(*len));
		FT_ASSERT(s && len);
		for (uint64_t i = 0; i < kv->n; i++)
			s[i] = ft_gguf_arr_str(kv, i, &len[i]);
		enum ft_rc rc = ft_gguf_writer_arr(w, kv->key, FT_GGUF_STRING, s, len, kv->n, err);
		free(s);
		free(len);
		return rc;
	}
	if (kv->elem == FT_GGUF_BOOL) {
		bool *b = calloc(kv->n + 1, sizeof(*b));
		FT_ASSERT(b);
		enum ft_rc rc = FT_OK;
		for (uint64_t i = 0; i < kv->n && !rc; i++) {
			b[i] = kv->data[i] != 0;
			if (kv->data[i] > 1)
				rc = FT_EINVAL; /* would come back as 1 */
		}
		if (!rc)
			rc = ft_gguf_writer_arr(w, kv->key, FT_GGUF_BOOL, b, NULL, kv->n, err);
		free(b);
		return rc;
	}
	return ft_gguf_writer_arr(w, kv->key, kv->elem, kv->data, NULL, kv->n, err);
}

static bool same_kv(const struct ft_gguf_kv *a, const struct ft_gguf_kv *b)
{
	if (strcmp(a->key, b->key) != 0 || a->type != b->type || a->n != b->n)
		return false;
	if (a->type == FT_GGUF_STRING)
		return a->len == b->len && memcmp(a->str, b->str, a->len) == 0;
	if (a->type != FT_GGUF_ARRAY)
		return memcmp(a->data, b->data, scalar_size(a->type)) == 0;
	if (a->elem != b->elem)
		return false;
	if (a->elem != FT_GGUF_STRING)
		return memcmp(a->data, b->data, a->n * scalar_size(a->elem)) == 0;
	for (uint64_t i = 0; i < a->n; i++) {
		if (a->elem == FT_GGUF_STRING) {
			uint64_t la, lb;
			const char *sa = ft_gguf_arr_str(a, i, &la),
				   *sb = ft_gguf_arr_str(b, i, &lb);
			if (la != lb || memcmp(sa, sb, la) != 0)
				return false;
		}
	}
	return true;
}

/* Write g's metadata and tensors to path; read back and compare. */
static void roundtrip(const struct ft_gguf *g, const char *path)
{
	struct ft_err err;
	ft_err_clear(&err);
	struct ft_gguf_writer *w = ft_gguf_writer_new();
	struct src *srcs = calloc(ft_gguf_tensor_count(g) + 1, sizeof(*srcs));
	FT_ASSERT(w && srcs);
	for (size_t i = 0; i < ft_gguf_kv_count(g); i++) {
		const struct ft_gguf_kv *kv = ft_gguf_kv_at(g, i);
		if (strcmp(kv->key, "general.alignment") == 0) {
			uint32_t a = ft_gguf_alignment(g);
			if (ft_gguf_writer_key(w, FT_GGUF_KEY_ALIGNMENT, &a, &err) != FT_OK)
				goto out;
			continue;
		}
		if (put_kv(w, kv, &err) != FT_OK)
			goto out; /* a value the writer's C API cannot carry */
	}
	for (size_t i = 0; i < ft_gguf_tensor_count(g); i++) {
		const struct ft_gguf_tensor *t = ft_gguf_tensor_at(g, i);
		srcs[i].t = t;
		if (ft_gguf_writer_tensor(w, t->name, t->type, t->n_dims, t->ne, fill_from,
					  &srcs[i], &err) != FT_OK)
			goto out; /* e.g. a 0 dimension the reader lets through */
	}
	if (ft_gguf_writer_write(w, path, NULL, NULL, &err) != FT_OK)
		goto out;
	struct ft_gguf *b;
	FT_ASSERT(ft_gguf_open(path, &b, &err) == FT_OK);
	FT_ASSERT(ft_gguf_kv_count(b) == ft_gguf_kv_count(g));
	FT_ASSERT(ft_gguf_alignment(b) == ft_gguf_alignment(g));
	for (size_t i = 0; i < ft_gguf_kv_count(g); i++) {
		const struct ft_gguf_kv *x = ft_gguf_kv_at(g, i), *y = ft_gguf_kv_at(b, i);
		FT_ASSERT(same_kv(x, y));
	}
	FT_ASSERT(ft_gguf_tensor_count(b) == ft_gguf_tensor_count(g));
	for (size_t i = 0; i < ft_gguf_tensor_count(g); i++) {
		const struct ft_gguf_tensor *x = ft_gguf_tensor_at(g, i),
					    *y = ft_gguf_tensor_at(b, i);
		FT_ASSERT(strcmp(x->name, y->name) == 0 && x->type == y->type &&
			  x->nbytes == y->nbytes && memcmp(x->ne, y->ne, sizeof x->ne) == 0);
		FT_ASSERT(memcmp(x->data, y->data, x->nbytes) == 0);
	}
	ft_gguf_close(b);
out:
	ft_gguf_writer_free(w);
	free(srcs);
	unlink(path);
}

/* The reader's tokenizer written back and built again: the same ids. */
static void tokenizer_roundtrip(const struct ft_gguf *g, const char *path)
{
	struct ft_err err;
	struct ft_tokenizer *a = NULL, *b = NULL;
	struct ft_gguf *h = NULL;
	ft_err_clear(&err);
	if (ft_gguf_tokenizer(g, &a, &err) != FT_OK)
		return;
	struct ft_gguf_writer *w = ft_gguf_writer_new();
	FT_ASSERT(w);
	if (ft_gguf_writer_arch(w, "llama", &err) ||
	    ft_gguf_tokenizer_put(w, a, (int)ft_tokenizer_vocab_size(a), &err) ||
	    ft_gguf_writer_write(w, path, NULL, NULL, &err))
		goto out; /* a tokenizer llama.cpp has no pre-tokenizer for */
	FT_ASSERT(ft_gguf_open(path, &h, &err) == FT_OK);
	FT_ASSERT(ft_gguf_tokenizer(h, &b, &err) == FT_OK);
	static const char text[] = "Hello wor1d 12 \xe4\xbd\xa0\xe5\xa5\xbd <s></s> x\n\n  y";
	struct ft_ids x = { 0 }, y = { 0 };
	unsigned f = FT_TOK_SPLIT_SPECIAL | FT_TOK_ADD_SPECIAL;
	if (ft_tokenizer_encode(a, text, sizeof text - 1, f, &x, &err) == FT_OK) {
		FT_ASSERT(ft_tokenizer_encode(b, text, sizeof text - 1, f, &y, &err) == FT_OK);
		FT_ASSERT(x.len == y.len && memcmp(x.v, y.v, x.len * sizeof(int32_t)) == 0);
	}
	ft_ids_release(&x);
	ft_ids_release(&y);
out:
	ft_tokenizer_free(a);
	ft_tokenizer_free(b);
	ft_gguf_close(h);
	ft_gguf_writer_free(w);
	unlink(path);
}

/* The quantisers on the input's bytes as floats, dequantised again. */
static void quantise(const uint8_t *data, size_t size)
{
	static const uint32_t types[] = { FT_GGML_F16,	FT_GGML_BF16, FT_GGML_Q8_0, FT_GGML_Q4_0,
					  FT_GGML_Q5_0, FT_GGML_Q4_K, FT_GGML_Q6_K };
	size_t n = size / sizeof(float) / 256 * 256;
	if (n == 0 || n > (1u << 16))
		return;
	float *x = malloc(n * sizeof(float)), *y = malloc(n * sizeof(float));
	uint8_t *q = malloc(n * 4);
	FT_ASSERT(x && y && q);
	memcpy(x, data, n * sizeof(float));
	for (size_t i = 0; i < FT_ARRAY_LEN(types); i++) {
		FT_ASSERT(ft_ggml_quant(types[i], x, n, q));
		FT_ASSERT(ft_ggml_dequant(types[i], q, n, y));
	}
	free(x);
	free(y);
	free(q);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char path[64];
	snprintf(path, sizeof path, "/tmp/fuzz-gguf-write-%d.gguf", (int)getpid());
	quantise(data, size);
	struct ft_gguf *g = NULL;
	struct ft_err err;
	ft_err_clear(&err);
	if (ft_gguf_parse(data, size, "fuzz.gguf", &g, &err) != FT_OK)
		return 0;
	roundtrip(g, path);
	tokenizer_roundtrip(g, path);
	ft_gguf_close(g);
	return 0;
}
