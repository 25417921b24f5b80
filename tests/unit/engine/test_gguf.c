/*
 * test_gguf.c - the GGUF reader on hand-built files: every value type and
 * the tensor layout, one file per error (each message asserted: truncation
 * at every byte, a wrong magic, unsupported versions, counts, lengths and
 * offsets beyond the file, a 2^40-byte string, unknown types), blocks
 * dequantised by hand, the metadata as a model config (Llama and Qwen2,
 * tied or not, Llama 3 rope scaling found back from rope_freqs), llama.cpp's
 * Q/K row order undone, and tokenizers built from tokenizer.ggml.* (a
 * byte-level one with merges, a SentencePiece one with merges recovered
 * from scores).
 *
 * The peer checks (bit-identical dequantisation against the gguf package,
 * logits against transformers, tokenizers against the tokenizers package,
 * the real SmolLM2 file) are in tests/system/test_gguf_peer.py.
 */
#include <math.h>
#include <unistd.h>

#include "ftest.h"
#include "ft/gguf.h"
#include "ft/tokenizer.h"

/* ---- a GGUF builder ---- */

struct gb {
	struct ft_buf kv, ti, data;
	uint64_t n_kv, n_t;
	uint32_t align;
};

static void put(struct ft_buf *b, const void *p, size_t n)
{
	FT_ASSERT(ft_buf_add(b, p, n) == FT_OK);
}

static void u32(struct ft_buf *b, uint32_t v)
{
	uint8_t x[4] = { (uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24) };
	put(b, x, 4);
}

static void u64(struct ft_buf *b, uint64_t v)
{
	u32(b, (uint32_t)v);
	u32(b, (uint32_t)(v >> 32));
}

static void str(struct ft_buf *b, const char *s)
{
	u64(b, strlen(s));
	put(b, s, strlen(s));
}

static void f32(struct ft_buf *b, float f)
{
	uint32_t v;
	memcpy(&v, &f, 4);
	u32(b, v);
}

static void gb_init(struct gb *g)
{
	memset(g, 0, sizeof(*g));
	ft_buf_init(&g->kv, 1 << 26);
	ft_buf_init(&g->ti, 1 << 20);
	ft_buf_init(&g->data, 1 << 26);
	g->align = 32;
}

static void gb_release(struct gb *g)
{
	ft_buf_release(&g->kv);
	ft_buf_release(&g->ti);
	ft_buf_release(&g->data);
}

static void kv_head(struct gb *g, const char *key, uint32_t type)
{
	str(&g->kv, key);
	u32(&g->kv, type);
	g->n_kv++;
}

static void kv_str(struct gb *g, const char *key, const char *v)
{
	kv_head(g, key, FT_GGUF_STRING);
	str(&g->kv, v);
}

static void kv_u32(struct gb *g, const char *key, uint32_t v)
{
	kv_head(g, key, FT_GGUF_UINT32);
	u32(&g->kv, v);
}

static void kv_f32(struct gb *g, const char *key, float v)
{
	kv_head(g, key, FT_GGUF_FLOAT32);
	f32(&g->kv, v);
}

static void kv_bool(struct gb *g, const char *key, bool v)
{
	kv_head(g, key, FT_GGUF_BOOL);
	put(&g->kv, &(uint8_t){ v }, 1);
}

static void kv_strs(struct gb *g, const char *key, const char *const *v, size_t n)
{
	kv_head(g, key, FT_GGUF_ARRAY);
	u32(&g->kv, FT_GGUF_STRING);
	u64(&g->kv, n);
	for (size_t i = 0; i < n; i++)
		str(&g->kv, v[i]);
}

static void kv_i32s(struct gb *g, const char *key, const int32_t *v, size_t n)
{
	kv_head(g, key, FT_GGUF_ARRAY);
	u32(&g->kv, FT_GGUF_INT32);
	u64(&g->kv, n);
	for (size_t i = 0; i < n; i++)
		u32(&g->kv, (uint32_t)v[i]);
}

static void kv_f32s(struct gb *g, const char *key, const float *v, size_t n)
{
	kv_head(g, key, FT_GGUF_ARRAY);
	u32(&g->kv, FT_GGUF_FLOAT32);
	u64(&g->kv, n);
	for (size_t i = 0; i < n; i++)
		f32(&g->kv, v[i]);
}

/* A tensor: ne as GGUF orders it (ne[0] fastest), data bytes appended
 * at the next aligned offset (data may be NULL: zeros). */
static void tensor(struct gb *g, const char *name, int nd, const uint64_t *ne, uint32_t type,
		   const void *data, size_t nbytes)
{
	while (g->data.len % g->align)
		put(&g->data, "", 1);
	str(&g->ti, name);
	u32(&g->ti, (uint32_t)nd);
	for (int d = 0; d < nd; d++)
		u64(&g->ti, ne[d]);
	u32(&g->ti, type);
	u64(&g->ti, g->data.len);
	g->n_t++;
	for (size_t i = 0; i < nbytes; i++)
		put(&g->data, data ? (const uint8_t *)data + i : (const uint8_t *)"", 1);
}

static void tensor_f32(struct gb *g, const char *name, uint64_t ne0, uint64_t ne1, const float *v)
{
	uint64_t ne[2] = { ne0, ne1 };
	size_t n = (size_t)(ne0 * ne1);
	struct ft_buf b = FT_BUF_INIT(1 << 26);
	for (size_t i = 0; i < n; i++)
		f32(&b, v ? v[i] : 0.5f);
	tensor(g, name, ne1 > 1 ? 2 : 1, ne, FT_GGML_F32, b.ptr, n * 4);
	ft_buf_release(&b);
}

/* The whole file into out (reset first). */
static void gb_file(struct gb *g, struct ft_buf *out, uint32_t version)
{
	ft_buf_reset(out);
	put(out, "GGUF", 4);
	u32(out, version);
	u64(out, g->n_t);
	u64(out, g->n_kv);
	put(out, g->kv.ptr, g->kv.len);
	put(out, g->ti.ptr, g->ti.len);
	while (g->n_t && out->len % g->align)
		put(out, "", 1);
	put(out, g->data.ptr, g->data.len);
}

/* Parse bytes; the message ("" on success) stays valid until the next call. */
static const char *parse_msg(const void *p, size_t n)
{
	static struct ft_err err;
	struct ft_gguf *g = NULL;
	ft_err_clear(&err);
	enum ft_rc rc = ft_gguf_parse(p, n, "m.gguf", &g, &err);
	ft_gguf_close(g);
	FT_ASSERT(rc == FT_OK || (g == NULL && err.msg[0]));
	return rc == FT_OK ? "" : err.msg;
}

static bool has(const char *msg, const char *part)
{
	if (strstr(msg, part))
		return true;
	fprintf(stderr, "message \"%s\" lacks \"%s\"\n", msg, part);
	return false;
}

/* A small valid file: every value type, two tensors, alignment 64. */
static void sample(struct gb *g)
{
	gb_init(g);
	g->align = 64;
	kv_str(g, "general.architecture", "llama");
	kv_u32(g, "general.alignment", 64);
	kv_head(g, "i8", FT_GGUF_INT8);
	put(&g->kv, &(uint8_t){ 0xFE }, 1);
	kv_head(g, "u16", FT_GGUF_UINT16);
	put(&g->kv, (uint8_t[]){ 0x34, 0x12 }, 2);
	kv_head(g, "i16", FT_GGUF_INT16);
	put(&g->kv, (uint8_t[]){ 0xFF, 0xFF }, 2);
	kv_head(g, "i32", FT_GGUF_INT32);
	u32(&g->kv, (uint32_t)-7);
	kv_f32(g, "f32", 0.25f);
	kv_bool(g, "flag", true);
	kv_head(g, "u64", FT_GGUF_UINT64);
	u64(&g->kv, 1ull << 40);
	kv_head(g, "i64", FT_GGUF_INT64);
	u64(&g->kv, (uint64_t)-3);
	kv_head(g, "f64", FT_GGUF_FLOAT64);
	double d = -1.5;
	uint64_t db;
	memcpy(&db, &d, 8);
	u64(&g->kv, db);
	static const char *const words[] = { "a", "", "xyz" };
	kv_strs(g, "words", words, 3);
	kv_i32s(g, "ints", (int32_t[]){ 1, -2, 3 }, 3);
	kv_f32s(g, "floats", (float[]){ 0.5f, -2.0f }, 2);
	tensor_f32(g, "a", 3, 2, (float[]){ 1, 2, 3, 4, 5, 6 });
	uint8_t q8[34] = { 0x00, 0x38 }; /* d = 0.5 */
	for (int i = 0; i < 32; i++)
		q8[2 + i] = (uint8_t)(int8_t)(i - 16);
	tensor(g, "b", 1, (uint64_t[]){ 32 }, FT_GGML_Q8_0, q8, sizeof q8);
}

/* ---- the reader ---- */

FT_TEST(reads_every_value_type_and_tensor)
{
	struct gb g;
	struct ft_buf f = FT_BUF_INIT(1 << 20);
	struct ft_err err;
	struct ft_gguf *m;
	sample(&g);
	gb_file(&g, &f, 3);
	ft_err_clear(&err);
	FT_CHECK_INT(ft_gguf_parse((const uint8_t *)f.ptr, f.len, "m.gguf", &m, &err), FT_OK);
	FT_CHECK_INT(ft_gguf_version(m), 3);
	FT_CHECK_INT(ft_gguf_alignment(m), 64);
	FT_CHECK_INT(ft_gguf_kv_count(m), 14);
	FT_CHECK_STR(ft_gguf_kv_at(m, 0)->key, "general.architecture");
	FT_CHECK_STR(ft_gguf_kv_find(m, "general.architecture")->str, "llama");
	FT_CHECK_INT(ft_gguf_arr_int(&(struct ft_gguf_kv){ .type = FT_GGUF_ARRAY,
							   .elem = FT_GGUF_INT8,
							   .n = 1,
							   .data = ft_gguf_kv_find(m, "i8")->data },
				     0),
		     -2);
	const struct ft_gguf_kv *kv = ft_gguf_kv_find(m, "u16");
	FT_CHECK(kv && kv->type == FT_GGUF_UINT16 && kv->data[0] == 0x34);
	kv = ft_gguf_kv_find(m, "words");
	FT_CHECK(kv && kv->type == FT_GGUF_ARRAY && kv->elem == FT_GGUF_STRING && kv->n == 3);
	uint64_t len;
	const char *s = ft_gguf_arr_str(kv, 2, &len);
	FT_CHECK(len == 3 && memcmp(s, "xyz", 3) == 0);
	s = ft_gguf_arr_str(kv, 1, &len);
	FT_CHECK_INT(len, 0);
	kv = ft_gguf_kv_find(m, "ints");
	FT_CHECK_INT(ft_gguf_arr_int(kv, 1), -2);
	FT_CHECK(ft_gguf_arr_num(kv, 2) == 3.0);
	FT_CHECK(ft_gguf_arr_num(ft_gguf_kv_find(m, "floats"), 1) == -2.0);
	FT_CHECK(ft_gguf_kv_find(m, "nope") == NULL);
	/* typed getters through the key table */
	const char *arch = NULL;
	FT_CHECK_INT(ft_gguf_get_str(m, FT_GGUF_KEY_ARCHITECTURE, FT_JSON_REQUIRED, &arch, &err),
		     FT_OK);
	FT_CHECK_STR(arch, "llama");
	long long v = -1;
	FT_CHECK_INT(ft_gguf_get_int(m, FT_GGUF_KEY_ALIGNMENT, 0, 0, 100, &v, &err), FT_OK);
	FT_CHECK_INT(v, 64);
	FT_CHECK_INT(ft_gguf_get_int(m, FT_GGUF_KEY_BLOCK_COUNT, 0, 0, 100, &v, &err), FT_OK);
	FT_CHECK_INT(v, 64); /* absent: untouched */
	FT_CHECK_INT(
		ft_gguf_get_int(m, FT_GGUF_KEY_BLOCK_COUNT, FT_JSON_REQUIRED, 0, 100, &v, &err),
		FT_EFORMAT);
	FT_CHECK_STR(err.msg, "m.gguf: metadata \"llama.block_count\" is required");
	ft_err_clear(&err);
	FT_CHECK_INT(ft_gguf_get_int(m, FT_GGUF_KEY_ALIGNMENT, 0, 0, 10, &v, &err), FT_EFORMAT);
	FT_CHECK_STR(err.msg, "m.gguf: metadata \"general.alignment\" is 64, out of range [0, 10]");
	/* tensors */
	FT_CHECK_INT(ft_gguf_tensor_count(m), 2);
	const struct ft_gguf_tensor *t = ft_gguf_tensor_find(m, "a");
	FT_CHECK(t && t->n_dims == 2 && t->ne[0] == 3 && t->ne[1] == 2 && t->nelem == 6);
	FT_CHECK(t->type == FT_GGML_F32 && t->offset == 0 && t->nbytes == 24);
	FT_CHECK(((uintptr_t)(t->data - (const uint8_t *)f.ptr)) % 64 == 0);
	float out[32];
	FT_CHECK_INT(ft_gguf_tensor_to_f32(m, t, out, &err), FT_OK);
	FT_CHECK(out[0] == 1 && out[5] == 6);
	t = ft_gguf_tensor_find(m, "b");
	FT_CHECK(t && t->offset == 64 && t->nbytes == 34);
	FT_CHECK_INT(ft_gguf_tensor_to_f32(m, t, out, &err), FT_OK);
	for (int i = 0; i < 32; i++)
		FT_CHECK(out[i] == 0.5f * (float)(i - 16));
	ft_gguf_close(m);
	ft_buf_release(&f);
	gb_release(&g);
}

FT_TEST(truncation_at_every_byte_is_an_error)
{
	struct gb g;
	struct ft_buf f = FT_BUF_INIT(1 << 20);
	sample(&g);
	gb_file(&g, &f, 3);
	for (size_t n = 0; n < f.len; n++) {
		const char *msg = parse_msg(f.ptr, n);
		if (!(strstr(msg, "truncated") || strstr(msg, "past the end") ||
		      strstr(msg, "cannot hold") || (n < 4 && strstr(msg, "not a GGUF")))) {
			fprintf(stderr, "prefix %zu: \"%s\"\n", n, msg);
			FT_CHECK(!"a clear truncation message");
		}
	}
	FT_CHECK_STR(parse_msg(f.ptr, f.len), "");
	FT_CHECK_STR(parse_msg(f.ptr, 10),
		     "m.gguf: truncated: the tensor count at byte 8 needs 8 bytes, 2 left");
	ft_buf_release(&f);
	gb_release(&g);
}

FT_TEST(header_errors_name_the_problem)
{
	struct gb g;
	struct ft_buf f = FT_BUF_INIT(1 << 20);
	sample(&g);
	gb_file(&g, &f, 3);
	char *b = f.ptr;
	FT_CHECK_STR(parse_msg("GGML\3\0\0\0", 8),
		     "m.gguf: not a GGUF file (the magic is not \"GGUF\"; the file starts 47 47 "
		     "4d 4c )");
	FT_CHECK_STR(parse_msg("", 0),
		     "m.gguf: not a GGUF file (the magic is not \"GGUF\"; the file starts empty)");
	b[4] = 1;
	FT_CHECK_STR(parse_msg(b, f.len),
		     "m.gguf: GGUF version 1 is not supported (versions 2 and 3 are)");
	b[4] = 0, b[7] = 3;
	FT_CHECK_STR(parse_msg(b, f.len), "m.gguf: a big-endian GGUF (version 3) is not supported");
	b[4] = 2, b[7] = 0;
	FT_CHECK_STR(parse_msg(b, f.len), ""); /* version 2: same layout */
	/* counts beyond what the file holds: checked before any allocation */
	memcpy(b + 16, "\xff\xff\xff\xff\xff\xff\xff\x7f", 8);
	FT_CHECK(has(parse_msg(b, f.len), "the header counts 9223372036854775807 metadata entries; "
					  "the file's"));
	memcpy(b + 16, "\x0e\0\0\0\0\0\0\0", 8);
	memcpy(b + 8, "\0\0\0\0\0\x10\0\0", 8);
	FT_CHECK(has(parse_msg(b, f.len), "the header counts 17592186044416 tensors"));
	ft_buf_release(&f);
	gb_release(&g);
}

/* One kv or tensor variation per case, each message asserted. */
FT_TEST(metadata_and_tensor_errors)
{
	struct ft_buf f = FT_BUF_INIT(1 << 20);
	struct gb g;
	const char *msg;

	gb_init(&g); /* a string of 2^40 bytes */
	kv_head(&g, "general.name", FT_GGUF_STRING);
	u64(&g.kv, 1ull << 40);
	put(&g.kv, "abc", 3);
	gb_file(&g, &f, 3);
	FT_CHECK_STR(parse_msg(f.ptr, f.len),
		     "m.gguf: the string value of \"general.name\" at byte 48: string of "
		     "1099511627776 bytes runs past the end of the file (3 bytes left)");
	gb_release(&g);

	gb_init(&g); /* a key of 2^40 bytes */
	u64(&g.kv, 1ull << 40);
	g.n_kv = 1;
	put(&g.kv, "general.nameXYZW", 16);
	gb_file(&g, &f, 3);
	FT_CHECK_STR(parse_msg(f.ptr, f.len),
		     "m.gguf: metadata key 0 at byte 24: string of 1099511627776 bytes runs past "
		     "the end of the file (16 bytes left)");
	gb_release(&g);

	gb_init(&g);
	kv_head(&g, "x", 13);
	u32(&g.kv, 0);
	gb_file(&g, &f, 3);
	FT_CHECK_STR(parse_msg(f.ptr, f.len), "m.gguf: metadata \"x\" has unknown value type 13");
	gb_release(&g);

	gb_init(&g);
	kv_head(&g, "x", FT_GGUF_ARRAY);
	u32(&g.kv, FT_GGUF_ARRAY);
	u64(&g.kv, 0);
	gb_file(&g, &f, 3);
	FT_CHECK_STR(parse_msg(f.ptr, f.len),
		     "m.gguf: metadata \"x\" is an array of arrays (not supported)");
	gb_release(&g);

	gb_init(&g);
	kv_head(&g, "x", FT_GGUF_ARRAY);
	u32(&g.kv, FT_GGUF_UINT32);
	u64(&g.kv, 1ull << 62);
	u32(&g.kv, 1);
	gb_file(&g, &f, 3);
	FT_CHECK_STR(parse_msg(f.ptr, f.len),
		     "m.gguf: metadata \"x\": 4611686018427387904 UINT32 elements run past the "
		     "end of the file (4 bytes left)");
	gb_release(&g);

	gb_init(&g);
	kv_head(&g, "x", FT_GGUF_ARRAY);
	u32(&g.kv, FT_GGUF_STRING);
	u64(&g.kv, 3);
	str(&g.kv, "a");
	gb_file(&g, &f, 3);
	FT_CHECK(has(parse_msg(f.ptr, f.len), "metadata \"x\": 3 strings run past the end"));
	gb_release(&g);

	gb_init(&g);
	kv_u32(&g, "dup", 1);
	kv_u32(&g, "dup", 2);
	gb_file(&g, &f, 3);
	FT_CHECK_STR(parse_msg(f.ptr, f.len), "m.gguf: metadata key \"dup\" appears twice");
	gb_release(&g);

	gb_init(&g);
	kv_u32(&g, "general.alignment", 48);
	gb_file(&g, &f, 3);
	FT_CHECK_STR(parse_msg(f.ptr, f.len),
		     "m.gguf: \"general.alignment\" is 48 (must be a power of two)");
	gb_release(&g);

	gb_init(&g); /* unknown tensor type */
	tensor(&g, "w", 1, (uint64_t[]){ 4 }, 99, NULL, 16);
	gb_file(&g, &f, 3);
	FT_CHECK_STR(parse_msg(f.ptr, f.len), "m.gguf: tensor \"w\" has unknown type 99");
	gb_release(&g);

	gb_init(&g); /* removed ggml type ids are unknown too */
	tensor(&g, "w", 1, (uint64_t[]){ 32 }, 4, NULL, 20);
	gb_file(&g, &f, 3);
	FT_CHECK_STR(parse_msg(f.ptr, f.len), "m.gguf: tensor \"w\" has unknown type 4");
	gb_release(&g);

	gb_init(&g);
	tensor(&g, "w", 5, (uint64_t[]){ 1, 1, 1, 1, 1 }, FT_GGML_F32, NULL, 4);
	gb_file(&g, &f, 3);
	FT_CHECK_STR(parse_msg(f.ptr, f.len), "m.gguf: tensor \"w\" has 5 dimensions (1 to 4)");
	gb_release(&g);

	gb_init(&g);
	tensor(&g, "w", 1, (uint64_t[]){ 16 }, FT_GGML_Q8_0, NULL, 34);
	gb_file(&g, &f, 3);
	FT_CHECK_STR(parse_msg(f.ptr, f.len),
		     "m.gguf: tensor \"w\": its first dimension 16 is not a multiple of the Q8_0 "
		     "block (32)");
	gb_release(&g);

	gb_init(&g);
	tensor(&g, "w", 2, (uint64_t[]){ 1ull << 40, 1ull << 40 }, FT_GGML_F32, NULL, 4);
	gb_file(&g, &f, 3);
	FT_CHECK_STR(parse_msg(f.ptr, f.len), "m.gguf: tensor \"w\": its 2 dimensions overflow");
	gb_release(&g);

	gb_init(&g); /* data beyond the file */
	tensor(&g, "w", 1, (uint64_t[]){ 64 }, FT_GGML_F32, NULL, 200);
	gb_file(&g, &f, 3);
	FT_CHECK_STR(parse_msg(f.ptr, f.len),
		     "m.gguf: tensor \"w\": its 256 bytes at data offset 0 run past the end of the "
		     "file (the data section holds 200 bytes)");
	gb_release(&g);

	gb_init(&g); /* offset beyond the file */
	tensor(&g, "w", 1, (uint64_t[]){ 1 }, FT_GGML_F32, NULL, 4);
	memcpy(g.ti.ptr + g.ti.len - 8, "\0\x01\0\0\0\0\0\x01", 8);
	gb_file(&g, &f, 3);
	FT_CHECK(has(parse_msg(f.ptr, f.len), "its 4 bytes at data offset 72057594037928192 run "
					      "past the end"));
	gb_release(&g);

	gb_init(&g);
	tensor(&g, "w", 1, (uint64_t[]){ 1 }, FT_GGML_F32, NULL, 64);
	g.ti.ptr[g.ti.len - 8] = 4;
	gb_file(&g, &f, 3);
	FT_CHECK_STR(parse_msg(f.ptr, f.len),
		     "m.gguf: tensor \"w\": data offset 4 is not a multiple of the alignment 32");
	gb_release(&g);

	gb_init(&g);
	tensor(&g, "a", 1, (uint64_t[]){ 16 }, FT_GGML_F32, NULL, 64);
	tensor(&g, "b", 1, (uint64_t[]){ 8 }, FT_GGML_F32, NULL, 32);
	g.ti.ptr[g.ti.len - 8] = 32; /* b starts inside a */
	gb_file(&g, &f, 3);
	FT_CHECK_STR(parse_msg(f.ptr, f.len),
		     "m.gguf: tensors \"a\" and \"b\" overlap in the file");
	gb_release(&g);

	gb_init(&g);
	tensor(&g, "a", 1, (uint64_t[]){ 8 }, FT_GGML_F32, NULL, 32);
	tensor(&g, "a", 1, (uint64_t[]){ 8 }, FT_GGML_F32, NULL, 32);
	gb_file(&g, &f, 3);
	FT_CHECK_STR(parse_msg(f.ptr, f.len), "m.gguf: tensor \"a\" appears twice");
	gb_release(&g);

	gb_init(&g);
	tensor(&g, "0123456789012345678901234567890123456789012345678901234567890123", 1,
	       (uint64_t[]){ 8 }, FT_GGML_F32, NULL, 32);
	gb_file(&g, &f, 3);
	FT_CHECK_STR(parse_msg(f.ptr, f.len),
		     "m.gguf: tensor info 0 has a name of 64 bytes (1 to 63)");
	gb_release(&g);

	/* a type the reader knows but does not dequantise */
	gb_init(&g);
	tensor(&g, "iq", 1, (uint64_t[]){ 256 }, 16, NULL, 66);
	gb_file(&g, &f, 3);
	struct ft_gguf *m;
	struct ft_err err;
	ft_err_clear(&err);
	FT_CHECK_INT(ft_gguf_parse((const uint8_t *)f.ptr, f.len, "m.gguf", &m, &err), FT_OK);
	float out[256];
	FT_CHECK_INT(ft_gguf_tensor_to_f32(m, ft_gguf_tensor_at(m, 0), out, &err), FT_EFORMAT);
	msg = err.msg;
	FT_CHECK(has(msg, "tensor \"iq\" has type IQ2_XXS, which ftplat does not dequantise"));
	ft_gguf_close(m);
	gb_release(&g);
	ft_buf_release(&f);
}

FT_TEST(open_names_the_file)
{
	struct ft_err err;
	struct ft_gguf *m;
	ft_err_clear(&err);
	FT_CHECK_INT(ft_gguf_open("/nonexistent/m.gguf", &m, &err), FT_ENOTFOUND);
	FT_CHECK(has(err.msg, "cannot open \"/nonexistent/m.gguf\""));
	char path[] = "/tmp/ftgguf-XXXXXX";
	int fd = mkstemp(path);
	FT_CHECK(fd >= 0);
	FT_CHECK(write(fd, "GGUF\3\0\0", 7) == 7);
	close(fd);
	ft_err_clear(&err);
	FT_CHECK(ft_gguf_path_is_file(path));
	FT_CHECK(!ft_gguf_path_is_file("/tmp"));
	FT_CHECK_INT(ft_gguf_open(path, &m, &err), FT_EFORMAT);
	char want[128];
	snprintf(want, sizeof want, "%s: truncated: the version at byte 4 needs 4 bytes, 3 left",
		 path);
	FT_CHECK_STR(err.msg, want);
	unlink(path);
}

/* ---- dequantisation by hand ---- */

FT_TEST(dequantise_blocks_by_hand)
{
	float y[256];
	/* Q4_0: d = 2 (F16 0x4000); qs 0x21: low nibble 1, high 2 */
	uint8_t q40[18] = { 0x00, 0x40 };
	memset(q40 + 2, 0x21, 16);
	FT_CHECK(ft_ggml_dequant(FT_GGML_Q4_0, q40, 32, y));
	FT_CHECK(y[0] == (1 - 8) * 2.0f && y[15] == -14.0f && y[16] == (2 - 8) * 2.0f);
	/* Q4_1: d = 1, m = -1 (0xBC00); low 3, high 15 */
	uint8_t q41[20] = { 0x00, 0x3C, 0x00, 0xBC };
	memset(q41 + 4, 0xF3, 16);
	FT_CHECK(ft_ggml_dequant(FT_GGML_Q4_1, q41, 32, y));
	FT_CHECK(y[3] == 2.0f && y[20] == 14.0f);
	/* Q5_0: d = 0.5; qh bit e set for odd e adds 16; ql 0 */
	uint8_t q50[22] = { 0x00, 0x38, 0xAA, 0xAA, 0xAA, 0xAA };
	FT_CHECK(ft_ggml_dequant(FT_GGML_Q5_0, q50, 32, y));
	FT_CHECK(y[0] == -8.0f && y[1] == 0.0f && y[31] == 0.0f && y[30] == -8.0f);
	/* Q5_1: d = 1, m = 0.5 (0x3800), qh all set, ql 1 -> 17 + 0.5 */
	uint8_t q51[24] = { 0x00, 0x3C, 0x00, 0x38, 0xFF, 0xFF, 0xFF, 0xFF };
	memset(q51 + 8, 0x11, 16);
	FT_CHECK(ft_ggml_dequant(FT_GGML_Q5_1, q51, 32, y));
	FT_CHECK(y[0] == 17.5f && y[31] == 17.5f);
	/* Q2_K: scales 0x21 (scale 1, min 2), d = 1, dmin = 0.25; qs 0xE4
	 * holds 0,1,2,3 in its four crumbs: element 32 s + l has crumb s */
	uint8_t q2k[84];
	memset(q2k, 0x21, 16);
	memset(q2k + 16, 0xE4, 64);
	q2k[80] = 0x00, q2k[81] = 0x3C, q2k[82] = 0x00, q2k[83] = 0x34;
	FT_CHECK(ft_ggml_dequant(FT_GGML_Q2_K, q2k, 256, y));
	FT_CHECK(y[0] == -0.5f && y[32] == 0.5f && y[64] == 1.5f && y[96] == 2.5f &&
		 y[128] == -0.5f);
	/* unknown and non-dequantised types, partial blocks */
	FT_CHECK(!ft_ggml_dequant(99, q2k, 256, y));
	FT_CHECK(!ft_ggml_dequant(16, q2k, 256, y));
	FT_CHECK(!ft_ggml_dequant(FT_GGML_Q8_0, q2k, 16, y));
	FT_CHECK_STR(ft_ggml_type_info(FT_GGML_Q6_K)->name, "Q6_K");
	FT_CHECK_INT(ft_ggml_type_info(FT_GGML_Q6_K)->bytes, 210);
	FT_CHECK(ft_ggml_type_info(5) == NULL);
}

/* ---- a model ---- */

/* A Llama-shaped GGUF: hidden 8, 2 heads (head_dim 4), kv heads kv, 1 layer,
 * vocab 6, F32 tensors; q_proj row r of head h holds r everywhere. */
static void tiny_model(struct gb *g, const char *arch, int kv, bool tied, bool bias)
{
	char k[96];
	gb_init(g);
	kv_str(g, "general.architecture", arch);
#define AK(s) (snprintf(k, sizeof k, "%s.%s", arch, s), k)
	kv_u32(g, AK("context_length"), 128);
	kv_u32(g, AK("embedding_length"), 8);
	kv_u32(g, AK("block_count"), 1);
	kv_u32(g, AK("feed_forward_length"), 12);
	kv_u32(g, AK("attention.head_count"), 2);
	kv_u32(g, AK("attention.head_count_kv"), (uint32_t)kv);
	kv_f32(g, AK("attention.layer_norm_rms_epsilon"), 1e-5f);
	kv_f32(g, AK("rope.freq_base"), 10000.0f);
	kv_u32(g, AK("rope.dimension_count"), 4);
#undef AK
	kv_u32(g, "tokenizer.ggml.bos_token_id", 1);
	kv_u32(g, "tokenizer.ggml.eos_token_id", 2);
	float q[128];
	for (int r = 0; r < 16; r++)
		for (int c = 0; c < 8; c++)
			q[r * 8 + c] = (float)r;
	tensor_f32(g, "token_embd.weight", 8, 6, NULL);
	tensor_f32(g, "output_norm.weight", 8, 1, NULL);
	if (!tied)
		tensor_f32(g, "output.weight", 8, 6, NULL);
	tensor_f32(g, "blk.0.attn_norm.weight", 8, 1, NULL);
	tensor_f32(g, "blk.0.ffn_norm.weight", 8, 1, NULL);
	tensor_f32(g, "blk.0.attn_q.weight", 8, 8, q);
	tensor_f32(g, "blk.0.attn_k.weight", 8, (uint64_t)kv * 4, q);
	tensor_f32(g, "blk.0.attn_v.weight", 8, (uint64_t)kv * 4, NULL);
	tensor_f32(g, "blk.0.attn_output.weight", 8, 8, NULL);
	if (bias) {
		tensor_f32(g, "blk.0.attn_q.bias", 8, 1, (float[]){ 0, 1, 2, 3, 4, 5, 6, 7 });
		tensor_f32(g, "blk.0.attn_k.bias", (uint64_t)kv * 4, 1, NULL);
		tensor_f32(g, "blk.0.attn_v.bias", (uint64_t)kv * 4, 1, NULL);
	}
	tensor_f32(g, "blk.0.ffn_gate.weight", 8, 12, NULL);
	tensor_f32(g, "blk.0.ffn_up.weight", 8, 12, NULL);
	tensor_f32(g, "blk.0.ffn_down.weight", 12, 8, NULL);
}

static struct ft_gguf *open_gb(struct gb *g, struct ft_buf *f)
{
	struct ft_err err;
	struct ft_gguf *m = NULL;
	ft_err_clear(&err);
	gb_file(g, f, 3);
	if (ft_gguf_parse((const uint8_t *)f->ptr, f->len, "m.gguf", &m, &err))
		fprintf(stderr, "%s\n", err.msg);
	return m;
}

FT_TEST(llama_config_and_row_order)
{
	struct gb g;
	struct ft_buf f = FT_BUF_INIT(1 << 20);
	struct ft_err err;
	struct ft_model_config c;
	tiny_model(&g, "llama", 1, true, false);
	struct ft_gguf *m = open_gb(&g, &f);
	FT_CHECK(m);
	ft_err_clear(&err);
	FT_CHECK_INT(ft_gguf_model_config(m, &c, &err), FT_OK);
	FT_CHECK_STR(c.architecture, "LlamaForCausalLM");
	FT_CHECK(c.vocab_size == 6 && c.hidden_size == 8 && c.intermediate_size == 12);
	FT_CHECK(c.num_layers == 1 && c.num_heads == 2 && c.num_kv_heads == 1 && c.head_dim == 4);
	FT_CHECK(c.max_position_embeddings == 128 && c.rms_norm_eps == 1e-5 &&
		 c.rope_theta == 10000);
	FT_CHECK(c.tie_word_embeddings && !c.qkv_bias && !c.o_bias && !c.mlp_bias);
	FT_CHECK(c.bos_token_id == 1 && c.n_eos == 1 && c.eos_token_ids[0] == 2);
	FT_CHECK(c.rope_type == FT_ROPE_DEFAULT);
	/* llama.cpp's order undone: HF row j*2 + i of a head is stored row 2i + j */
	float q[64];
	FT_CHECK_INT(
		ft_gguf_hf_to_f32(m, &c, "model.layers.0.self_attn.q_proj.weight", q, 64, &err),
		FT_OK);
	static const int want[8] = { 0, 2, 1, 3, 4, 6, 5, 7 };
	for (int r = 0; r < 8; r++)
		FT_CHECK(q[r * 8] == (float)want[r] && q[r * 8 + 7] == (float)want[r]);
	float k[32];
	FT_CHECK_INT(
		ft_gguf_hf_to_f32(m, &c, "model.layers.0.self_attn.k_proj.weight", k, 32, &err),
		FT_OK);
	for (int r = 0; r < 4; r++)
		FT_CHECK(k[r * 8] == (float)want[r]);
	int nd;
	int64_t shape[2];
	FT_CHECK(ft_gguf_hf_find(m, "model.layers.0.mlp.down_proj.weight", &nd, shape));
	FT_CHECK(nd == 2 && shape[0] == 8 && shape[1] == 12);
	FT_CHECK(ft_gguf_hf_find(m, "lm_head.weight", &nd, shape) == NULL);
	FT_CHECK(ft_gguf_hf_find(m, "model.layers.01.mlp.down_proj.weight", &nd, shape) == NULL);
	FT_CHECK_INT(
		ft_gguf_hf_to_f32(m, &c, "model.layers.0.self_attn.q_proj.weight", q, 63, &err),
		FT_EFORMAT);
	FT_CHECK(has(err.msg, "has 64 values, expected 63"));
	ft_gguf_close(m);
	gb_release(&g);

	/* Qwen2: biases on q/k/v, untied, rows in Hugging Face order already */
	tiny_model(&g, "qwen2", 2, false, true);
	m = open_gb(&g, &f);
	FT_CHECK(m);
	ft_err_clear(&err);
	FT_CHECK_INT(ft_gguf_model_config(m, &c, &err), FT_OK);
	FT_CHECK_STR(c.architecture, "Qwen2ForCausalLM");
	FT_CHECK(!c.tie_word_embeddings && c.qkv_bias && !c.o_bias && c.num_kv_heads == 2);
	FT_CHECK_INT(ft_gguf_hf_to_f32(m, &c, "model.layers.0.self_attn.q_proj.bias", q, 8, &err),
		     FT_OK);
	for (int r = 0; r < 8; r++)
		FT_CHECK(q[r] == (float)r);
	ft_gguf_close(m);
	gb_release(&g);
	ft_buf_release(&f);
}

static const char *config_msg(struct gb *g, struct ft_buf *f)
{
	static struct ft_err err;
	struct ft_model_config c;
	struct ft_gguf *m = open_gb(g, f);
	FT_ASSERT(m);
	ft_err_clear(&err);
	enum ft_rc rc = ft_gguf_model_config(m, &c, &err);
	ft_gguf_close(m);
	gb_release(g);
	return rc ? err.msg : "";
}

FT_TEST(config_errors_name_the_key_or_tensor)
{
	struct gb g;
	struct ft_buf f = FT_BUF_INIT(1 << 20);
	tiny_model(&g, "gemma2", 1, true, false);
	FT_CHECK_STR(config_msg(&g, &f),
		     "m.gguf: architecture \"gemma2\" is not supported (supported: llama, qwen2)");
	tiny_model(&g, "llama", 1, true, false);
	tensor_f32(&g, "blk.0.attn_q_norm.weight", 4, 1, NULL);
	FT_CHECK_STR(config_msg(&g, &f),
		     "m.gguf: tensor \"blk.0.attn_q_norm.weight\" is not part of a llama model as "
		     "ftplat reads it");
	tiny_model(&g, "llama", 1, true, false);
	tensor_f32(&g, "blk.7.ffn_up.weight", 8, 12, NULL);
	FT_CHECK_STR(config_msg(&g, &f),
		     "m.gguf: tensor \"blk.7.ffn_up.weight\" is beyond the 1 blocks");
	tiny_model(&g, "llama", 1, true, false);
	kv_u32(&g, "llama.vocab_size", 7);
	FT_CHECK_STR(config_msg(&g, &f),
		     "m.gguf: metadata \"llama.vocab_size\" is 7 but token_embd.weight has 6 rows");
	tiny_model(&g, "llama", 3, true, false);
	FT_CHECK(has(config_msg(&g, &f), "is not a multiple of \"num_key_value_heads\" (3)"));
	tiny_model(&g, "llama", 1, true, false);
	kv_str(&g, "llama.rope.scaling.type", "yarn");
	FT_CHECK_STR(config_msg(&g, &f),
		     "m.gguf: metadata \"llama.rope.scaling.type\" is \"yarn\" (ftplat reads none, "
		     "linear, and Llama 3's rope_freqs.weight)");
	tiny_model(&g, "llama", 1, true, false);
	kv_head(&g, "llama.block_count", FT_GGUF_STRING); /* a duplicate, of the wrong type */
	str(&g.kv, "1");
	struct ft_err err;
	gb_file(&g, &f, 3);
	struct ft_gguf *m;
	ft_err_clear(&err);
	FT_CHECK_INT(ft_gguf_parse((const uint8_t *)f.ptr, f.len, "m.gguf", &m, &err), FT_EFORMAT);
	FT_CHECK_STR(err.msg, "m.gguf: metadata key \"llama.block_count\" appears twice");
	gb_release(&g);
	tiny_model(&g, "llama", 1, true, false);
	kv_str(&g, "llama.attention.key_length", "4");
	FT_CHECK_STR(config_msg(&g, &f), "m.gguf: metadata \"llama.attention.key_length\" must be "
					 "an integer (got STRING)");
	ft_buf_release(&f);
}

FT_TEST(rope_scaling_from_metadata_and_rope_freqs)
{
	struct gb g;
	struct ft_buf f = FT_BUF_INIT(1 << 20);
	struct ft_err err;
	struct ft_model_config c;
	tiny_model(&g, "llama", 1, true, false);
	kv_str(&g, "llama.rope.scaling.type", "linear");
	kv_f32(&g, "llama.rope.scaling.factor", 4.0f);
	struct ft_gguf *m = open_gb(&g, &f);
	ft_err_clear(&err);
	FT_CHECK_INT(ft_gguf_model_config(m, &c, &err), FT_OK);
	FT_CHECK(c.rope_type == FT_ROPE_LINEAR && c.rope_factor == 4.0);
	ft_gguf_close(m);
	gb_release(&g);

	/* rope_freqs written by convert_hf_to_gguf.py's formula, head_dim 64,
	 * theta 500000: Llama 3.1's (8, 1, 4, 8192), then (16, 2, 8, 4096),
	 * which the fit finds as the equivalent (16, 1, 4, 2048) */
	static const double cases[2][5] = { { 8, 1, 4, 8192, 8192 }, { 16, 2, 8, 4096, 2048 } };
	for (int k = 0; k < 3; k++) {
		float fr[32];
		const double *p = cases[k < 2 ? k : 0];
		for (int i = 0; i < 32; i++) {
			double freq = 1.0 / pow(500000.0, (2.0 * i) / 64);
			double wl = 2 * M_PI / freq;
			double s = (p[3] / wl - p[1]) / (p[2] - p[1]);
			fr[i] = (float)(wl < p[3] / p[2]   ? 1
					: wl > p[3] / p[1] ? p[0]
							   : 1 / ((1 - s) / p[0] + s));
		}
		if (k == 2)
			fr[3] = 1.5f; /* not Llama 3's shape */
		gb_init(&g);
		kv_str(&g, "general.architecture", "llama");
		kv_u32(&g, "llama.context_length", 131072);
		kv_u32(&g, "llama.embedding_length", 128);
		kv_u32(&g, "llama.block_count", 1);
		kv_u32(&g, "llama.feed_forward_length", 8);
		kv_u32(&g, "llama.attention.head_count", 2);
		kv_f32(&g, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
		kv_f32(&g, "llama.rope.freq_base", 500000.0f);
		tensor_f32(&g, "token_embd.weight", 128, 4, NULL);
		tensor_f32(&g, "rope_freqs.weight", 32, 1, fr);
		m = open_gb(&g, &f);
		ft_err_clear(&err);
		if (k == 2) {
			FT_CHECK_INT(ft_gguf_model_config(m, &c, &err), FT_EINVAL);
			FT_CHECK_STR(err.msg,
				     "m.gguf: tensor \"rope_freqs.weight\" does not follow "
				     "Llama 3's rope scaling (the only frequency scaling "
				     "ftplat reads from a GGUF)");
		} else {
			FT_CHECK_INT(ft_gguf_model_config(m, &c, &err), FT_OK);
			FT_CHECK(c.rope_type == FT_ROPE_LLAMA3 && c.rope_factor == p[0]);
			FT_CHECK(c.rope_low_freq_factor == 1);
			FT_CHECK(c.rope_high_freq_factor == 4);
			FT_CHECK_INT(c.rope_original_max_pos, (int)p[4]);
		}
		ft_gguf_close(m);
		gb_release(&g);
	}
	ft_buf_release(&f);
}

/* ---- tokenizers ---- */

static struct ft_tokenizer *tok_of(struct gb *g, struct ft_buf *f, const char **msg)
{
	static struct ft_err err;
	struct ft_tokenizer *t = NULL;
	struct ft_gguf *m = open_gb(g, f);
	FT_ASSERT(m);
	ft_err_clear(&err);
	ft_gguf_tokenizer(m, &t, &err);
	ft_gguf_close(m);
	gb_release(g);
	*msg = err.msg;
	return t;
}

static bool ids_are(struct ft_tokenizer *t, const char *text, unsigned flags, const int32_t *want,
		    size_t n)
{
	struct ft_ids ids = { 0 };
	struct ft_err err;
	ft_err_clear(&err);
	bool ok = ft_tokenizer_encode(t, text, strlen(text), flags, &ids, &err) == FT_OK &&
		  ids.len == n && memcmp(ids.v, want, n * sizeof(int32_t)) == 0;
	if (!ok) {
		fprintf(stderr, "\"%s\" ->", text);
		for (size_t i = 0; i < ids.len; i++)
			fprintf(stderr, " %d", ids.v[i]);
		fprintf(stderr, "\n");
	}
	ft_ids_release(&ids);
	return ok;
}

FT_TEST(byte_level_tokenizer_from_metadata)
{
	static const char *const toks[] = { "a",
					    "b",
					    "ab",
					    "\xc4\xa0",
					    "\xc4\xa0"
					    "a",
					    "<|end|>",
					    "1",
					    "2",
					    "12" };
	static const char *const merges[] = { "a b", "\xc4\xa0 a", "1 2" };
	struct gb g;
	struct ft_buf f = FT_BUF_INIT(1 << 20);
	const char *msg;
	gb_init(&g);
	kv_str(&g, "tokenizer.ggml.model", "gpt2");
	kv_str(&g, "tokenizer.ggml.pre", "smollm");
	kv_strs(&g, "tokenizer.ggml.tokens", toks, 9);
	kv_i32s(&g, "tokenizer.ggml.token_type", (int32_t[]){ 1, 1, 1, 1, 1, 3, 1, 1, 1 }, 9);
	kv_strs(&g, "tokenizer.ggml.merges", merges, 3);
	kv_u32(&g, "tokenizer.ggml.eos_token_id", 5);
	kv_str(&g, "tokenizer.chat_template", "{{ x }}");
	struct ft_tokenizer *t = tok_of(&g, &f, &msg);
	FT_CHECK(t);
	FT_CHECK(ids_are(t, "ab a<|end|>", FT_TOK_SPLIT_SPECIAL, (int32_t[]){ 2, 4, 5 }, 3));
	/* smollm splits digits one by one: the "1 2" merge never applies */
	FT_CHECK(ids_are(t, "12", 0, (int32_t[]){ 6, 7 }, 2));
	FT_CHECK_INT(ft_tokenizer_eos_id(t), 5);
	FT_CHECK(ft_tokenizer_is_special(t, 5) && !ft_tokenizer_adds_bos(t));
	FT_CHECK_STR(ft_tokenizer_chat_template(t), "{{ x }}");
	ft_tokenizer_free(t);

	gb_init(&g);
	kv_str(&g, "tokenizer.ggml.model", "gpt2");
	kv_str(&g, "tokenizer.ggml.pre", "gpt-2");
	kv_strs(&g, "tokenizer.ggml.tokens", toks, 9);
	kv_strs(&g, "tokenizer.ggml.merges", merges, 3);
	t = tok_of(&g, &f, &msg);
	FT_CHECK(t && ids_are(t, "12", 0, (int32_t[]){ 8 }, 1)); /* gpt-2 keeps "12" whole */
	ft_tokenizer_free(t);

	gb_init(&g);
	kv_str(&g, "tokenizer.ggml.model", "gpt2");
	kv_str(&g, "tokenizer.ggml.pre", "tekken");
	kv_strs(&g, "tokenizer.ggml.tokens", toks, 9);
	kv_strs(&g, "tokenizer.ggml.merges", merges, 3);
	FT_CHECK(!tok_of(&g, &f, &msg));
	FT_CHECK_STR(msg, "m.gguf: pre-tokenizer \"tekken\" (tokenizer.ggml.pre) is not one ftplat "
			  "knows (gpt-2, llama-bpe (llama3, llama-v3), qwen2, deepseek-r1-qwen, "
			  "smollm, starcoder)");

	gb_init(&g);
	kv_str(&g, "tokenizer.ggml.model", "bert");
	kv_strs(&g, "tokenizer.ggml.tokens", toks, 9);
	FT_CHECK(!tok_of(&g, &f, &msg));
	FT_CHECK_STR(msg,
		     "m.gguf: tokenizer model \"bert\" (tokenizer.ggml.model) is not supported "
		     "(gpt2, llama)");

	gb_init(&g);
	kv_str(&g, "tokenizer.ggml.model", "gpt2");
	kv_str(&g, "tokenizer.ggml.pre", "gpt-2");
	kv_strs(&g, "tokenizer.ggml.tokens", toks, 9);
	kv_strs(&g, "tokenizer.ggml.merges", (const char *const[]){ "ab" }, 1);
	FT_CHECK(!tok_of(&g, &f, &msg));
	FT_CHECK_STR(msg,
		     "m.gguf: tokenizer.ggml.merges[0] is not two tokens separated by a space");
	ft_buf_release(&f);
}

FT_TEST(sentencepiece_tokenizer_merges_from_scores)
{
	/* "ab" (score -4) merges before "▁ab" (-5); "▁a" (-6) is the worst
	 * merge: "▁ab" wins over "▁a" + "b". "c" falls back to its byte. */
	static const char *const toks[] = { "<unk>",
					    "<s>",
					    "</s>",
					    "\xe2\x96\x81",
					    "a",
					    "b",
					    "ab",
					    "\xe2\x96\x81"
					    "ab",
					    "\xe2\x96\x81"
					    "a",
					    "<0x63>" };
	static const float scores[] = { 0, 0, 0, -1, -2, -3, -4, -5, -6, 0 };
	struct gb g;
	struct ft_buf f = FT_BUF_INIT(1 << 20);
	const char *msg;
	gb_init(&g);
	kv_str(&g, "tokenizer.ggml.model", "llama");
	kv_strs(&g, "tokenizer.ggml.tokens", toks, 10);
	kv_f32s(&g, "tokenizer.ggml.scores", scores, 10);
	kv_i32s(&g, "tokenizer.ggml.token_type", (int32_t[]){ 2, 3, 3, 1, 1, 1, 1, 1, 1, 6 }, 10);
	kv_u32(&g, "tokenizer.ggml.bos_token_id", 1);
	kv_u32(&g, "tokenizer.ggml.eos_token_id", 2);
	kv_u32(&g, "tokenizer.ggml.unknown_token_id", 0);
	struct ft_tokenizer *t = tok_of(&g, &f, &msg);
	FT_CHECK(t);
	unsigned all = FT_TOK_SPLIT_SPECIAL | FT_TOK_ADD_SPECIAL;
	FT_CHECK(ids_are(t, "ab", all, (int32_t[]){ 1, 7 }, 2));
	FT_CHECK(ids_are(t, "ab c", 0, (int32_t[]){ 7, 3, 9 }, 3));
	FT_CHECK(ids_are(t, "ab</s>", FT_TOK_SPLIT_SPECIAL, (int32_t[]){ 7, 2 }, 2));
	FT_CHECK(ft_tokenizer_adds_bos(t) && ft_tokenizer_bos_id(t) == 1);
	struct ft_buf out = FT_BUF_INIT(1024);
	struct ft_err err;
	ft_err_clear(&err);
	FT_CHECK_INT(ft_tokenizer_decode(t, (int32_t[]){ 1, 7, 3, 9 }, 4, FT_TOK_SKIP_SPECIAL, &out,
					 &err),
		     FT_OK);
	FT_CHECK_STR(ft_buf_str(&out), "ab c");
	ft_buf_release(&out);
	ft_tokenizer_free(t);

	gb_init(&g); /* without scores nor merges there is no merge order */
	kv_str(&g, "tokenizer.ggml.model", "llama");
	kv_strs(&g, "tokenizer.ggml.tokens", toks, 10);
	FT_CHECK(!tok_of(&g, &f, &msg));
	FT_CHECK_STR(msg, "m.gguf: a llama tokenizer needs tokenizer.ggml.merges or "
			  "tokenizer.ggml.scores");
	gb_init(&g);
	kv_str(&g, "tokenizer.ggml.model", "llama");
	kv_strs(&g, "tokenizer.ggml.tokens", toks, 10);
	kv_f32s(&g, "tokenizer.ggml.scores", scores, 9);
	FT_CHECK(!tok_of(&g, &f, &msg));
	FT_CHECK(has(msg, "must have one entry per token (10)"));
	ft_buf_release(&f);
}

FT_TEST_MAIN()
