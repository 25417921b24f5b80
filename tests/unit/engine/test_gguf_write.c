/*
 * test_gguf_write.c - the GGUF writer and what exports build on it: every
 * value type and tensor layout read back by the reader, the writer's
 * refusals, quantised blocks worked out by hand (Q8_0, Q4_0, Q5_0, and
 * Q4_K / Q6_K on inputs their grids hold exactly), llama.cpp's per-tensor
 * type rules for Q4_0 / Q8_0 / Q4_K_M (the expected types derived by hand
 * from src/llama-quant.cpp), a model written and loaded back (llama.cpp's
 * Q/K row order applied for Llama, not for Qwen2), the tokenizer written
 * as tokenizer.ggml.* and built back, a LoRA adapter in llama.cpp's
 * layout, and the Ollama templates.
 *
 * The peers (the gguf package reading every tensor, Q4_0 / Q8_0 blocks
 * against gguf.quants.quantize, Q4_K_M against llama.cpp's own quantiser,
 * llama.cpp generating from the files) are tests/system/test_gguf_export.py
 * and test_llamacpp_peer.py.
 */
#include <math.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ftest.h"
#include "ft/chat.h"
#include "ft/gguf.h"
#include "ft/model.h"
#include "ft/rng.h"
#include "ft/tokenizer.h"

#define TINY FT_SOURCE_ROOT "/data/models/ftplat-tiny-cs"

static const char *tmpdir(void)
{
	static char dir[512];
	const char *base = getenv("TMPDIR");
	snprintf(dir, sizeof dir, "%s/ftgw-XXXXXX", base && *base ? base : "/tmp");
	FT_ASSERT(mkdtemp(dir));
	return dir;
}

/* ---- the writer ---- */

struct blob {
	const void *p;
	uint64_t n;
};

static enum ft_rc fill_copy(void *ctx, void *dst, uint64_t nbytes, struct ft_err *err)
{
	const struct blob *b = ctx;
	FT_UNUSED(err);
	FT_ASSERT(b->n == nbytes);
	memcpy(dst, b->p, nbytes);
	return FT_OK;
}

static enum ft_rc fill_fail(void *ctx, void *dst, uint64_t nbytes, struct ft_err *err)
{
	FT_UNUSED(ctx), FT_UNUSED(dst), FT_UNUSED(nbytes);
	return ft_failf(err, FT_EIO, NULL, "the source went away");
}

FT_TEST(writer_roundtrip_every_value_type)
{
	char path[600];
	snprintf(path, sizeof path, "%s/v.gguf", tmpdir());
	struct ft_gguf_writer *w = ft_gguf_writer_new();
	struct ft_err err;
	ft_err_clear(&err);
	uint8_t u8 = 200;
	int8_t i8 = -100;
	uint16_t u16 = 60000;
	int16_t i16 = -30000;
	uint32_t u32 = 4000000000u, align = 64;
	int32_t i32 = -2000000000;
	float f32 = 0.1f;
	bool yes = true;
	uint64_t u64 = UINT64_C(18000000000000000000);
	int64_t i64 = INT64_C(-9000000000000000000);
	double f64 = -1e300;
	int32_t ints[3] = { -1, 0, 7 };
	float floats[2] = { 1.5f, -0.25f };
	bool bools[3] = { true, false, true };
	const char *strs[3] = { "a", "", "b\0c" };
	uint64_t lens[3] = { 1, 0, 3 };
	FT_CHECK(ft_gguf_writer_arch(w, "llama", &err) == FT_OK);
	FT_CHECK(ft_gguf_writer_key(w, FT_GGUF_KEY_ALIGNMENT, &align, &err) == FT_OK);
	FT_CHECK(ft_gguf_writer_kv(w, "t.u8", FT_GGUF_UINT8, &u8, &err) == FT_OK);
	FT_CHECK(ft_gguf_writer_kv(w, "t.i8", FT_GGUF_INT8, &i8, &err) == FT_OK);
	FT_CHECK(ft_gguf_writer_kv(w, "t.u16", FT_GGUF_UINT16, &u16, &err) == FT_OK);
	FT_CHECK(ft_gguf_writer_kv(w, "t.i16", FT_GGUF_INT16, &i16, &err) == FT_OK);
	FT_CHECK(ft_gguf_writer_kv(w, "t.u32", FT_GGUF_UINT32, &u32, &err) == FT_OK);
	FT_CHECK(ft_gguf_writer_kv(w, "t.i32", FT_GGUF_INT32, &i32, &err) == FT_OK);
	FT_CHECK(ft_gguf_writer_kv(w, "t.f32", FT_GGUF_FLOAT32, &f32, &err) == FT_OK);
	FT_CHECK(ft_gguf_writer_kv(w, "t.bool", FT_GGUF_BOOL, &yes, &err) == FT_OK);
	FT_CHECK(ft_gguf_writer_kv(w, "t.str", FT_GGUF_STRING, "héllo", &err) == FT_OK);
	FT_CHECK(ft_gguf_writer_kv(w, "t.u64", FT_GGUF_UINT64, &u64, &err) == FT_OK);
	FT_CHECK(ft_gguf_writer_kv(w, "t.i64", FT_GGUF_INT64, &i64, &err) == FT_OK);
	FT_CHECK(ft_gguf_writer_kv(w, "t.f64", FT_GGUF_FLOAT64, &f64, &err) == FT_OK);
	FT_CHECK(ft_gguf_writer_arr(w, "t.ints", FT_GGUF_INT32, ints, NULL, 3, &err) == FT_OK);
	FT_CHECK(ft_gguf_writer_arr(w, "t.floats", FT_GGUF_FLOAT32, floats, NULL, 2, &err) ==
		 FT_OK);
	FT_CHECK(ft_gguf_writer_arr(w, "t.bools", FT_GGUF_BOOL, bools, NULL, 3, &err) == FT_OK);
	FT_CHECK(ft_gguf_writer_arr(w, "t.strs", FT_GGUF_STRING, strs, lens, 3, &err) == FT_OK);
	FT_CHECK(ft_gguf_writer_arr(w, "t.empty", FT_GGUF_STRING, strs, NULL, 0, &err) == FT_OK);
	FT_CHECK(ft_gguf_writer_key(w, FT_GGUF_KEY_BLOCK_COUNT, &u32, &err) == FT_OK);
	FT_CHECK(ft_gguf_writer_has(w, "llama.block_count") && !ft_gguf_writer_has(w, "nope"));
	/* tensors: 3 F32 (at 0), [2, 32] F16 (ne {32, 2}, at 64), two Q8_0 blocks (at 192) */
	float a[3] = { 1, -2, 3.5f };
	uint16_t h[64];
	uint8_t q[2 * 34];
	for (int i = 0; i < 64; i++)
		h[i] = ft_f32_to_f16((float)i / 8);
	for (int i = 0; i < 68; i++)
		q[i] = (uint8_t)(i * 7);
	struct blob ba = { a, sizeof a }, bh = { h, sizeof h }, bq = { q, sizeof q };
	uint64_t ne_a[1] = { 3 }, ne_h[2] = { 32, 2 }, ne_q[2] = { 32, 2 };
	FT_CHECK(ft_gguf_writer_tensor(w, "a", FT_GGML_F32, 1, ne_a, fill_copy, &ba, &err) ==
		 FT_OK);
	FT_CHECK(ft_gguf_writer_tensor(w, "h", FT_GGML_F16, 2, ne_h, fill_copy, &bh, &err) ==
		 FT_OK);
	FT_CHECK(ft_gguf_writer_tensor(w, "q", FT_GGML_Q8_0, 2, ne_q, fill_copy, &bq, &err) ==
		 FT_OK);
	uint64_t size = ft_gguf_writer_size(w);
	FT_CHECK(ft_gguf_writer_write(w, path, NULL, NULL, &err) == FT_OK);
	ft_gguf_writer_free(w);
	struct stat st;
	FT_CHECK(stat(path, &st) == 0 && (uint64_t)st.st_size == size);

	struct ft_gguf *g;
	FT_CHECK(ft_gguf_open(path, &g, &err) == FT_OK);
	FT_CHECK_INT(ft_gguf_version(g), 3);
	FT_CHECK_INT(ft_gguf_alignment(g), 64);
	FT_CHECK_INT(ft_gguf_kv_count(g), 20);
	FT_CHECK_STR(ft_gguf_kv_at(g, 0)->key, "general.architecture"); /* in the order set */
	FT_CHECK_STR(ft_gguf_kv_at(g, 19)->key, "llama.block_count");
	const struct ft_gguf_kv *kv;
	FT_CHECK((kv = ft_gguf_kv_find(g, "t.u8")) && kv->type == FT_GGUF_UINT8 &&
		 kv->data[0] == 200);
	FT_CHECK((kv = ft_gguf_kv_find(g, "t.i16")) && kv->type == FT_GGUF_INT16 &&
		 (int16_t)(kv->data[0] | kv->data[1] << 8) == -30000);
	FT_CHECK((kv = ft_gguf_kv_find(g, "t.str")) && kv->type == FT_GGUF_STRING &&
		 strcmp(kv->str, "héllo") == 0);
	FT_CHECK((kv = ft_gguf_kv_find(g, "t.f64")) && kv->type == FT_GGUF_FLOAT64);
	double d;
	memcpy(&d, kv->data, 8);
	FT_CHECK(d == -1e300);
	FT_CHECK((kv = ft_gguf_kv_find(g, "t.u64")) && memcmp(kv->data, &u64, 8) == 0);
	FT_CHECK((kv = ft_gguf_kv_find(g, "t.ints")) && kv->elem == FT_GGUF_INT32 && kv->n == 3 &&
		 ft_gguf_arr_int(kv, 0) == -1 && ft_gguf_arr_int(kv, 2) == 7);
	FT_CHECK((kv = ft_gguf_kv_find(g, "t.floats")) && ft_gguf_arr_num(kv, 1) == -0.25);
	FT_CHECK((kv = ft_gguf_kv_find(g, "t.bools")) && kv->elem == FT_GGUF_BOOL &&
		 ft_gguf_arr_int(kv, 0) == 1 && ft_gguf_arr_int(kv, 1) == 0);
	uint64_t l;
	FT_CHECK((kv = ft_gguf_kv_find(g, "t.strs")) && kv->n == 3);
	FT_CHECK(memcmp(ft_gguf_arr_str(kv, 2, &l), "b\0c", 3) == 0 && l == 3);
	FT_CHECK(ft_gguf_arr_str(kv, 1, &l) && l == 0);
	FT_CHECK((kv = ft_gguf_kv_find(g, "t.empty")) && kv->n == 0);
	const struct ft_gguf_tensor *t = ft_gguf_tensor_find(g, "h");
	FT_CHECK(t && t->type == FT_GGML_F16 && t->n_dims == 2 && t->ne[0] == 32 && t->ne[1] == 2);
	FT_CHECK(memcmp(t->data, h, sizeof h) == 0);
	t = ft_gguf_tensor_find(g, "q");
	FT_CHECK(t && t->offset % 64 == 0 && t->offset == 192 && memcmp(t->data, q, sizeof q) == 0);
	t = ft_gguf_tensor_find(g, "a");
	FT_CHECK(t && t->offset == 0 && memcmp(t->data, a, sizeof a) == 0);
	FT_CHECK((uintptr_t)(t->data - (const uint8_t *)ft_gguf_tensor_at(g, 0)->data) == 0);
	ft_gguf_close(g);
	unlink(path);
}

FT_TEST(writer_refuses_and_leaves_no_file)
{
	struct ft_gguf_writer *w = ft_gguf_writer_new();
	struct ft_err err;
	uint32_t v = 3, a = 48;
	uint64_t ne[2] = { 48, 2 }, zero[1] = { 0 }, one[1] = { 32 };
	char path[600], name[80];
	ft_err_clear(&err);
	FT_CHECK(ft_gguf_writer_kv(w, "k", FT_GGUF_UINT32, &v, &err) == FT_OK);
	FT_CHECK(ft_gguf_writer_kv(w, "k", FT_GGUF_UINT32, &v, &err) == FT_EINVAL);
	FT_CHECK_STR(err.msg, "gguf writer: metadata \"k\" set twice");
	ft_err_clear(&err);
	FT_CHECK(ft_gguf_writer_key(w, FT_GGUF_KEY_ALIGNMENT, &a, &err) == FT_EINVAL);
	ft_err_clear(&err);
	FT_CHECK(ft_gguf_writer_tensor(w, "x", FT_GGML_Q8_0, 2, ne, fill_fail, NULL, &err) ==
		 FT_EINVAL);
	FT_CHECK_STR(err.msg, "gguf writer: tensor \"x\": a row of 48 is not a multiple of Q8_0's "
			      "block of 32");
	ft_err_clear(&err);
	FT_CHECK(ft_gguf_writer_tensor(w, "x", FT_GGML_F32, 1, zero, fill_fail, NULL, &err) ==
		 FT_EINVAL);
	ft_err_clear(&err);
	memset(name, 'n', sizeof name);
	name[70] = 0;
	FT_CHECK(ft_gguf_writer_tensor(w, name, FT_GGML_F32, 1, one, fill_fail, NULL, &err) ==
		 FT_EINVAL);
	ft_err_clear(&err);
	FT_CHECK(ft_gguf_writer_tensor(w, "x", 4, 1, one, fill_fail, NULL, &err) == FT_EINVAL);
	ft_err_clear(&err);
	FT_CHECK(ft_gguf_writer_tensor(w, "x", FT_GGML_F32, 1, one, fill_fail, NULL, &err) ==
		 FT_OK);
	FT_CHECK(ft_gguf_writer_tensor(w, "x", FT_GGML_F32, 1, one, fill_fail, NULL, &err) ==
		 FT_EINVAL);
	ft_err_clear(&err);
	/* a fill that fails: the error names the tensor, and no file (nor temporary) is left */
	const char *dir = tmpdir();
	snprintf(path, sizeof path, "%s/f.gguf", dir);
	FT_CHECK(ft_gguf_writer_write(w, path, NULL, NULL, &err) == FT_EIO);
	FT_CHECK_STR(err.msg, "tensor \"x\": the source went away");
	FT_CHECK(rmdir(dir) == 0); /* empty */
	ft_err_clear(&err);
	FT_CHECK(ft_gguf_writer_write(w, "/nonexistent-dir/x.gguf", NULL, NULL, &err) == FT_EIO);
	FT_CHECK(strstr(err.msg, "cannot create") != NULL);
	ft_gguf_writer_free(w);
}

/* ---- quantised blocks by hand ---- */

static uint16_t f16_at(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

FT_TEST(q8_0_q4_0_q5_0_blocks_by_hand)
{
	float x[32] = { 0 };
	uint8_t y[34];
	/* Q8_0: max |x| = 127 makes d = 1 and 1/d = 1; q = roundf(x), halves away from 0 */
	x[0] = 127, x[1] = -127, x[2] = 2.5f, x[3] = -2.5f, x[4] = 0.49f, x[5] = -126.5f;
	FT_CHECK(ft_ggml_quant(FT_GGML_Q8_0, x, 32, y));
	FT_CHECK_INT(f16_at(y), 0x3C00); /* 1.0 */
	const int8_t want8[6] = { 127, -127, 3, -3, 0, -127 };
	for (int i = 0; i < 6; i++)
		FT_CHECK_INT((int8_t)y[2 + i], want8[i]);
	FT_CHECK_INT(y[2 + 31], 0);
	/* Q4_0: d = (first x of largest |x|) / -8 = -8 / -8 = 1; q = min(15, trunc(x + 8.5)) */
	memset(x, 0, sizeof x);
	x[0] = 3, x[1] = -8, x[2] = 8, x[3] = -0.6f, x[16] = 0.5f, x[17] = -7.9f;
	FT_CHECK(ft_ggml_quant(FT_GGML_Q4_0, x, 32, y));
	FT_CHECK_INT(f16_at(y), 0x3C00);
	/* byte j: element j low, element 16 + j high */
	FT_CHECK_INT(y[2 + 0], 11 | 9 << 4); /* 3 -> 11, 0.5 -> 9 */
	FT_CHECK_INT(y[2 + 1], 0 | 0 << 4); /* -8 -> 0, -7.9 -> trunc(0.6) = 0 */
	FT_CHECK_INT(y[2 + 2], 15 | 8 << 4); /* 8 -> 16 -> 15, 0 -> 8 */
	FT_CHECK_INT(y[2 + 3], 7 | 8 << 4); /* -0.6 -> trunc(7.9) = 7 */
	/* the sign of the largest matters: -8 first gives d = 1, 8 first gives d = -1 */
	x[1] = 8, x[2] = -8;
	FT_CHECK(ft_ggml_quant(FT_GGML_Q4_0, x, 32, y));
	FT_CHECK_INT(f16_at(y), 0xBC00); /* -1.0 */
	FT_CHECK_INT(y[2 + 0] & 15, 5); /* 3 * -1 + 8.5 -> 5 */
	/* Q5_0: d = -16 / -16 = 1, q = min(31, trunc(x + 16.5)), the fifth bits in qh */
	uint8_t z[22];
	memset(x, 0, sizeof x);
	x[0] = -16, x[1] = 15, x[2] = 16, x[3] = 3, x[16] = -1;
	FT_CHECK(ft_ggml_quant(FT_GGML_Q5_0, x, 32, z));
	FT_CHECK_INT(f16_at(z), 0x3C00);
	/* q: 0, 31, 31, 19, then 16 everywhere else, 15 at element 16 */
	uint32_t qh =
		(uint32_t)z[2] | (uint32_t)z[3] << 8 | (uint32_t)z[4] << 16 | (uint32_t)z[5] << 24;
	uint32_t want_qh = 0;
	const int q5[32] = { 0,	 31, 31, 19, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16,
			     15, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16 };
	for (int e = 0; e < 32; e++)
		want_qh |= (uint32_t)(q5[e] >> 4) << e;
	FT_CHECK_INT(qh, want_qh);
	for (int j = 0; j < 16; j++)
		FT_CHECK_INT(z[6 + j], (q5[j] & 15) | (q5[16 + j] & 15) << 4);
	/* zeros stay zeros; a length that is not a whole block is refused */
	memset(x, 0, sizeof x);
	FT_CHECK(ft_ggml_quant(FT_GGML_Q8_0, x, 32, y) && f16_at(y) == 0 && y[2] == 0);
	FT_CHECK(!ft_ggml_quant(FT_GGML_Q8_0, x, 16, y));
	FT_CHECK(!ft_ggml_quant(FT_GGML_Q4_1, x, 32, y)); /* read, not written */
}

FT_TEST(k_quants_on_their_grids)
{
	float x[256], back[256];
	uint8_t y[210];
	/* Q6_K: integers in [-32, 31], each sub-block of 16 starting with -32. Its
	 * first element of largest |x| is -32, so the first step is 1 and the
	 * levels are x itself, whose least-squares scale is exactly 1 (and no
	 * other step fits better). So S = 1, d = F16(1 / (-128 / 1)) = -2^-7
	 * (0xA000), every scale round(-128 * 1) = -128, d * sc = 1: exact. */
	for (int i = 0; i < 256; i++)
		x[i] = i % 16 == 0 ? -32.0f : (float)((i * 7) % 63 - 31);
	FT_CHECK(ft_ggml_quant(FT_GGML_Q6_K, x, 256, y));
	FT_CHECK_INT(f16_at(y + 208), 0xA000);
	for (int b = 0; b < 16; b++)
		FT_CHECK_INT((int8_t)y[192 + b], -128);
	FT_CHECK(ft_ggml_dequant(FT_GGML_Q6_K, y, 256, back));
	for (int i = 0; i < 256; i++)
		FT_CHECK(back[i] == x[i]);
	/* all zero: the whole block is zero bytes */
	memset(x, 0, sizeof x);
	FT_CHECK(ft_ggml_quant(FT_GGML_Q6_K, x, 256, y));
	for (int i = 0; i < 210; i++)
		FT_CHECK_INT(y[i], 0);
	/* Q4_K: x = q in 0..15 (offset 0): every sub-block's range [0, 15] in 15
	 * steps fits with error 0, so scales are 1, offsets 0: d = F16(1/63),
	 * dmin = 0, 6-bit scales 63, and the levels are x itself */
	uint8_t k[144];
	for (int i = 0; i < 256; i++)
		x[i] = (float)(i % 16);
	FT_CHECK(ft_ggml_quant(FT_GGML_Q4_K, x, 256, k));
	FT_CHECK_INT(f16_at(k), ft_f32_to_f16(1.0f / 63.0f));
	FT_CHECK_INT(f16_at(k + 2), 0);
	for (int j = 0; j < 4; j++) /* low 6 bits: scale, min; high 2: those of 4 + j */
		FT_CHECK(k[4 + j] == (63 | 3 << 6) && k[8 + j] == 0);
	for (int j = 0; j < 4; j++)
		FT_CHECK_INT(k[12 + j], 15); /* sub-blocks 4..7: low nibbles of 63 and 0 */
	for (int i = 0; i < 128; i++) /* byte 32 h + l: elements 64 h + l (low), + 32 (high) */
		FT_CHECK_INT(k[16 + i], (i % 16) | (i % 16) << 4);
	FT_CHECK(ft_ggml_dequant(FT_GGML_Q4_K, k, 256, back));
	float step = ft_f16_to_f32(f16_at(k)) * 63;
	for (int i = 0; i < 256; i++)
		FT_CHECK(back[i] == step * x[i]);
	/* random data: dequantised within each sub-block's step (Gaussian, sd 1) */
	struct ft_rng r;
	ft_rng_seed(&r, 7);
	double se4 = 0, se6 = 0;
	for (int rep = 0; rep < 64; rep++) {
		for (int i = 0; i < 256; i++)
			x[i] = (float)ft_rng_normal(&r);
		FT_CHECK(ft_ggml_quant(FT_GGML_Q4_K, x, 256, k) &&
			 ft_ggml_dequant(FT_GGML_Q4_K, k, 256, back));
		for (int i = 0; i < 256; i++)
			se4 += (x[i] - back[i]) * (x[i] - back[i]);
		FT_CHECK(ft_ggml_quant(FT_GGML_Q6_K, x, 256, y) &&
			 ft_ggml_dequant(FT_GGML_Q6_K, y, 256, back));
		for (int i = 0; i < 256; i++)
			se6 += (x[i] - back[i]) * (x[i] - back[i]);
	}
	/* measured 0.0706 and 0.0174 (a 32-element range in 15 steps is ~0.27,
	 * rms ~0.08 if uniform; 16 elements in 63 steps ~0.07, ~0.02): the
	 * bands catch a quantiser off by a factor, the peers the exact bits */
	double rms4 = sqrt(se4 / (64 * 256)), rms6 = sqrt(se6 / (64 * 256));
	printf("rms error, N(0, 1): Q4_K %.4f, Q6_K %.4f\n", rms4, rms6);
	FT_CHECK(rms4 < 0.08 && rms4 > 0.06);
	FT_CHECK(rms6 < 0.02 && rms6 > 0.015);
}

/* ---- llama.cpp's per-tensor types ---- */

FT_TEST(ftype_tensor_types_as_llama_quantize)
{
	enum ft_gguf_ftype ft;
	FT_CHECK(ft_gguf_ftype_parse("Q4_K_M", &ft) && ft == FT_GGUF_FTYPE_Q4_K_M);
	FT_CHECK(ft_gguf_ftype_parse("F16", &ft) && ft == 1);
	FT_CHECK(!ft_gguf_ftype_parse("Q4_K_S", &ft) && !ft_gguf_ftype_parse("q4_k_m", &ft));
	FT_CHECK_STR(ft_gguf_ftype_name(FT_GGUF_FTYPE_Q8_0), "Q8_0");
	/* SmolLM2-135M: 30 blocks, hidden 576 (not a multiple of 256, a multiple of
	 * 32), intermediate 1536 (a multiple of 256), tied embeddings. use_more_bits
	 * for n = 30: i < 3, i >= 26, or (i - 3) % 3 == 2 */
	const int more[] = { 0, 1, 2, 5, 8, 11, 14, 17, 20, 23, 26, 27, 28, 29 };
	const enum ft_gguf_ftype km = FT_GGUF_FTYPE_Q4_K_M;
	for (int i = 0, k = 0; i < 30; i++) {
		bool mb = k < 14 && more[k] == i;
		k += mb;
		/* attn_v: Q6_K or Q4_K, neither fits 576: Q8_0 or Q5_0 */
		FT_CHECK_INT(
			ft_gguf_ftype_tensor_type(km, FT_GGUF_ROLE_ATTN_V, 576, false, i, 30, true),
			mb ? FT_GGML_Q8_0 : FT_GGML_Q5_0);
		/* ffn_down's rows are 1536 long: Q6_K or Q4_K as chosen */
		FT_CHECK_INT(ft_gguf_ftype_tensor_type(km, FT_GGUF_ROLE_FFN_DOWN, 1536, false, i,
						       30, true),
			     mb ? FT_GGML_Q6_K : FT_GGML_Q4_K);
		FT_CHECK_INT(
			ft_gguf_ftype_tensor_type(km, FT_GGUF_ROLE_WEIGHT, 576, false, i, 30, true),
			FT_GGML_Q5_0);
	}
	/* tied embeddings take the output's type: 576 % 256 -> Q8_0; untied: the default */
	FT_CHECK_INT(
		ft_gguf_ftype_tensor_type(km, FT_GGUF_ROLE_TOKEN_EMBD, 576, false, -1, 30, true),
		FT_GGML_Q8_0);
	FT_CHECK_INT(
		ft_gguf_ftype_tensor_type(km, FT_GGUF_ROLE_TOKEN_EMBD, 576, false, -1, 30, false),
		FT_GGML_Q5_0);
	FT_CHECK_INT(
		ft_gguf_ftype_tensor_type(km, FT_GGUF_ROLE_TOKEN_EMBD, 512, false, -1, 30, false),
		FT_GGML_Q4_K);
	FT_CHECK_INT(ft_gguf_ftype_tensor_type(km, FT_GGUF_ROLE_OUTPUT, 512, false, -1, 30, false),
		     FT_GGML_Q6_K);
	/* norms and biases */
	FT_CHECK_INT(ft_gguf_ftype_tensor_type(km, FT_GGUF_ROLE_WEIGHT, 576, true, 0, 30, true),
		     FT_GGML_F32);
	/* the ftplat-tiny-cs shapes: 4 blocks (more bits: 2, 3), rows of 256 and 688 */
	FT_CHECK_INT(ft_gguf_ftype_tensor_type(km, FT_GGUF_ROLE_ATTN_V, 256, false, 1, 4, true),
		     FT_GGML_Q4_K);
	FT_CHECK_INT(ft_gguf_ftype_tensor_type(km, FT_GGUF_ROLE_ATTN_V, 256, false, 2, 4, true),
		     FT_GGML_Q6_K);
	FT_CHECK_INT(ft_gguf_ftype_tensor_type(km, FT_GGUF_ROLE_FFN_DOWN, 688, false, 3, 4, true),
		     FT_GGML_F16); /* Q6_K -> Q8_0 -> 688 % 32 -> F16 */
	/* Q4_0: the output (a tied embedding) Q6_K, else Q4_0 */
	FT_CHECK_INT(ft_gguf_ftype_tensor_type(FT_GGUF_FTYPE_Q4_0, FT_GGUF_ROLE_TOKEN_EMBD, 256,
					       false, -1, 4, true),
		     FT_GGML_Q6_K);
	FT_CHECK_INT(ft_gguf_ftype_tensor_type(FT_GGUF_FTYPE_Q4_0, FT_GGUF_ROLE_TOKEN_EMBD, 576,
					       false, -1, 4, true),
		     FT_GGML_Q8_0);
	FT_CHECK_INT(ft_gguf_ftype_tensor_type(FT_GGUF_FTYPE_Q4_0, FT_GGUF_ROLE_ATTN_V, 576, false,
					       0, 30, true),
		     FT_GGML_Q4_0);
	FT_CHECK_INT(ft_gguf_ftype_tensor_type(FT_GGUF_FTYPE_Q4_0, FT_GGUF_ROLE_WEIGHT, 688, false,
					       0, 4, true),
		     FT_GGML_F16);
	/* Q8_0 everywhere it fits; F16 and F32 files convert every 2-D weight */
	FT_CHECK_INT(ft_gguf_ftype_tensor_type(FT_GGUF_FTYPE_Q8_0, FT_GGUF_ROLE_OUTPUT, 576, false,
					       -1, 4, false),
		     FT_GGML_Q8_0);
	FT_CHECK_INT(ft_gguf_ftype_tensor_type(FT_GGUF_FTYPE_F16, FT_GGUF_ROLE_FFN_DOWN, 688, false,
					       0, 4, true),
		     FT_GGML_F16);
	FT_CHECK_INT(ft_gguf_ftype_tensor_type(FT_GGUF_FTYPE_F32, FT_GGUF_ROLE_WEIGHT, 7, false, 0,
					       4, true),
		     FT_GGML_F32);
}

/* ---- a model written and read back ---- */

static void fill_random(struct ft_param *ps, size_t n, uint64_t seed)
{
	struct ft_rng r;
	ft_rng_seed(&r, seed);
	for (size_t t = 0; t < n; t++)
		for (size_t i = 0; i < ps[t].n; i++)
			ps[t].data[i] = (float)(0.05 * ft_rng_normal(&r));
}

static struct ft_model *tiny_model(enum ft_arch arch)
{
	struct ft_model_config c;
	struct ft_model *m;
	FT_ASSERT(ft_model_config_load(TINY, &c, NULL) == FT_OK);
	if (arch == FT_ARCH_QWEN2) {
		c.arch = FT_ARCH_QWEN2;
		ft_strlcpy(c.architecture, "Qwen2ForCausalLM", sizeof c.architecture);
		c.qkv_bias = true;
	}
	FT_ASSERT(ft_model_new(&c, ft_backend_cpu(), &m, NULL) == FT_OK);
	size_t n;
	struct ft_param *ps = ft_model_params(m, &n);
	fill_random(ps, n, 11);
	return m;
}

static const struct ft_param *param(struct ft_model *m, const char *name)
{
	size_t n;
	struct ft_param *ps = ft_model_params(m, &n);
	for (size_t i = 0; i < n; i++)
		if (strcmp(ps[i].name, name) == 0)
			return &ps[i];
	return NULL;
}

static void check_roundtrip(int *ftest_failed, enum ft_arch arch)
{
	struct ft_model *m = tiny_model(arch), *back;
	struct ft_err err;
	char path[600];
	ft_err_clear(&err);
	snprintf(path, sizeof path, "%s/m.gguf", tmpdir());
	struct ft_gguf_save_opts o = { FT_GGUF_FTYPE_F32, "roundtrip", NULL, NULL };
	FT_CHECK(ft_model_save_gguf(m, path, TINY, &o, &err) == FT_OK);
	/* the reader's model is the model: config and every tensor, bit for bit */
	FT_CHECK(ft_model_load(path, ft_backend_cpu(), &back, &err) == FT_OK);
	const struct ft_model_config *a = ft_model_config(m), *b = ft_model_config(back);
	FT_CHECK(a->arch == b->arch && a->hidden_size == b->hidden_size &&
		 a->num_layers == b->num_layers && a->num_kv_heads == b->num_kv_heads &&
		 a->head_dim == b->head_dim && a->rms_norm_eps == b->rms_norm_eps &&
		 a->qkv_bias == b->qkv_bias && b->tie_word_embeddings);
	size_t n, nb;
	struct ft_param *pa = ft_model_params(m, &n), *pb = ft_model_params(back, &nb);
	FT_CHECK(n == nb);
	for (size_t i = 0; i < n; i++) {
		FT_CHECK_STR(pa[i].name, pb[i].name);
		FT_CHECK(memcmp(pa[i].data, pb[i].data, pa[i].n * sizeof(float)) == 0);
	}
	/* in the file itself: llama's q rows in rotary order (stored row 2i + j of a
	 * head = HF row j * 32 + i, head_dim 64), qwen2's as they are */
	struct ft_gguf *g;
	FT_CHECK(ft_gguf_open(path, &g, &err) == FT_OK);
	const struct ft_gguf_tensor *t = ft_gguf_tensor_find(g, "blk.1.attn_q.weight");
	const struct ft_param *q = param(m, "model.layers.1.self_attn.q_proj.weight");
	FT_CHECK(t && q && t->type == FT_GGML_F32 && t->ne[0] == 256 && t->ne[1] == 256);
	const float *stored = (const float *)t->data;
	for (int h = 0; h < 4; h++)
		for (int i = 0; i < 32; i++)
			for (int j = 0; j < 2; j++) {
				int srow =
					h * 64 + (arch == FT_ARCH_QWEN2 ? j * 32 + i : 2 * i + j);
				int hrow = h * 64 + j * 32 + i;
				FT_CHECK(memcmp(stored + srow * 256, q->data + hrow * 256, 1024) ==
					 0);
			}
	const struct ft_gguf_kv *kv = ft_gguf_kv_find(g, "general.architecture");
	FT_CHECK_STR(kv->str, arch == FT_ARCH_QWEN2 ? "qwen2" : "llama");
	FT_CHECK_STR(ft_gguf_kv_find(g, "general.name")->str, "roundtrip");
	FT_CHECK(ft_gguf_tensor_find(g, "output.weight") == NULL); /* tied */
	FT_CHECK((ft_gguf_tensor_find(g, "blk.0.attn_k.bias") != NULL) == (arch == FT_ARCH_QWEN2));
	ft_gguf_close(g);
	ft_model_free(back);
	ft_model_free(m);
	unlink(path);
}

FT_TEST(model_roundtrip_llama_rows_in_rotary_order)
{
	check_roundtrip(ftest_failed, FT_ARCH_LLAMA);
}

FT_TEST(model_roundtrip_qwen2_rows_as_they_are)
{
	check_roundtrip(ftest_failed, FT_ARCH_QWEN2);
}

FT_TEST(model_quantised_types_in_the_file)
{
	struct ft_model *m = tiny_model(FT_ARCH_LLAMA);
	struct ft_err err;
	char path[600];
	ft_err_clear(&err);
	snprintf(path, sizeof path, "%s/q.gguf", tmpdir());
	struct ft_gguf_save_opts o = { FT_GGUF_FTYPE_Q4_K_M, NULL, NULL, NULL };
	FT_CHECK(ft_model_save_gguf(m, path, TINY, &o, &err) == FT_OK);
	struct ft_gguf *g;
	FT_CHECK(ft_gguf_open(path, &g, &err) == FT_OK);
	static const struct {
		const char *name;
		uint32_t type;
	} want[] = {
		{ "token_embd.weight", FT_GGML_Q6_K },	   { "blk.0.attn_v.weight", FT_GGML_Q4_K },
		{ "blk.2.attn_v.weight", FT_GGML_Q6_K },   { "blk.0.ffn_down.weight", FT_GGML_F16 },
		{ "blk.0.attn_norm.weight", FT_GGML_F32 }, { "blk.3.ffn_up.weight", FT_GGML_Q4_K },
	};
	for (size_t i = 0; i < FT_ARRAY_LEN(want); i++) {
		const struct ft_gguf_tensor *t = ft_gguf_tensor_find(g, want[i].name);
		FT_CHECK(t && t->type == want[i].type);
	}
	FT_CHECK_STR(ft_gguf_kv_find(g, "general.name")->str, "ftplat-tiny-cs");
	const struct ft_gguf_kv *ft = ft_gguf_kv_find(g, "general.file_type");
	FT_CHECK(ft && ft->type == FT_GGUF_UINT32 && ft->data[0] == 15);
	/* what the reader gives back is the dequantised quantisation of the weight */
	const struct ft_param *p = param(m, "model.layers.0.mlp.up_proj.weight");
	const struct ft_gguf_tensor *t = ft_gguf_tensor_find(g, "blk.0.ffn_up.weight");
	float *want_deq = ft_xmalloc(p->n * sizeof(float)), *got = ft_xmalloc(p->n * sizeof(float));
	uint8_t *qb = ft_xmalloc(t->nbytes);
	FT_CHECK(ft_ggml_quant(FT_GGML_Q4_K, p->data, p->n, qb) &&
		 memcmp(qb, t->data, t->nbytes) == 0);
	FT_CHECK(ft_ggml_dequant(FT_GGML_Q4_K, qb, p->n, want_deq));
	FT_CHECK(ft_gguf_tensor_to_f32(g, t, got, &err) == FT_OK);
	FT_CHECK(memcmp(want_deq, got, p->n * sizeof(float)) == 0);
	free(want_deq);
	free(got);
	free(qb);
	ft_gguf_close(g);
	ft_model_free(m);
	unlink(path);
}

FT_TEST(model_with_a_nan_is_refused)
{
	struct ft_model *m = tiny_model(FT_ARCH_LLAMA);
	struct ft_err err;
	char path[600];
	ft_err_clear(&err);
	const char *dir = tmpdir();
	snprintf(path, sizeof path, "%s/n.gguf", dir);
	size_t n;
	struct ft_param *ps = ft_model_params(m, &n);
	ps[2].data[5] = NAN; /* blk.0.attn_q.weight */
	struct ft_gguf_save_opts o = { FT_GGUF_FTYPE_Q8_0, NULL, NULL, NULL };
	FT_CHECK(ft_model_save_gguf(m, path, TINY, &o, &err) == FT_EINVAL);
	FT_CHECK_STR(err.msg, "tensor \"blk.0.attn_q.weight\": holds NaN at element 5: nothing to "
			      "export");
	FT_CHECK(rmdir(dir) == 0); /* nothing left behind */
	ft_model_free(m);
}

/* ---- the tokenizer ---- */

FT_TEST(tokenizer_written_and_built_back)
{
	struct ft_tokenizer *tok, *back;
	struct ft_err err;
	char path[600];
	ft_err_clear(&err);
	FT_CHECK(ft_tokenizer_load(TINY, &tok, &err) == FT_OK);
	struct ft_gguf_writer *w = ft_gguf_writer_new();
	FT_CHECK(ft_gguf_writer_arch(w, "llama", &err) == FT_OK);
	FT_CHECK(ft_gguf_tokenizer_put(w, tok, 4100, &err) == FT_OK);
	snprintf(path, sizeof path, "%s/t.gguf", tmpdir());
	FT_CHECK(ft_gguf_writer_write(w, path, NULL, NULL, &err) == FT_OK);
	ft_gguf_writer_free(w);
	struct ft_gguf *g;
	FT_CHECK(ft_gguf_open(path, &g, &err) == FT_OK);
	const struct ft_gguf_kv *kv;
	FT_CHECK_STR(ft_gguf_kv_find(g, "tokenizer.ggml.model")->str, "gpt2");
	FT_CHECK_STR(ft_gguf_kv_find(g, "tokenizer.ggml.pre")->str, "llama-bpe");
	FT_CHECK((kv = ft_gguf_kv_find(g, "tokenizer.ggml.tokens")) && kv->n == 4100);
	uint64_t l;
	FT_CHECK(memcmp(ft_gguf_arr_str(kv, 1, &l), "<|im_start|>", 12) == 0 && l == 12);
	FT_CHECK(memcmp(ft_gguf_arr_str(kv, 4097, &l), "[PAD4097]", 9) == 0 && l == 9);
	FT_CHECK((kv = ft_gguf_kv_find(g, "tokenizer.ggml.token_type")) && kv->n == 4100);
	FT_CHECK(ft_gguf_arr_int(kv, 0) == 3 && ft_gguf_arr_int(kv, 2) == 3 &&
		 ft_gguf_arr_int(kv, 3) == 1 && ft_gguf_arr_int(kv, 4099) == 5);
	FT_CHECK((kv = ft_gguf_kv_find(g, "tokenizer.ggml.merges")) && kv->n == 3837);
	FT_CHECK((kv = ft_gguf_kv_find(g, "tokenizer.ggml.eos_token_id")) && kv->data[0] == 2);
	FT_CHECK(ft_gguf_kv_find(g, "tokenizer.ggml.bos_token_id") == NULL);
	FT_CHECK((kv = ft_gguf_kv_find(g, "tokenizer.ggml.add_bos_token")) && kv->data[0] == 0);
	FT_CHECK((kv = ft_gguf_kv_find(g, "tokenizer.chat_template")) &&
		 strcmp(kv->str, ft_tokenizer_chat_template(tok)) == 0);
	/* built back by the reader, it encodes and decodes as the original */
	FT_CHECK(ft_gguf_tokenizer(g, &back, &err) == FT_OK);
	static const char *const texts[] = {
		"<|im_start|>user\nWhere is my order #12345?<|im_end|>\n",
		"Grüße aus Köln! 100 € — 3.5 kg, ok?  \n\n  x",
		"   leading spaces and\ttabs",
	};
	for (size_t i = 0; i < FT_ARRAY_LEN(texts); i++) {
		struct ft_ids x = { 0 }, y = { 0 };
		unsigned f = FT_TOK_SPLIT_SPECIAL | FT_TOK_ADD_SPECIAL;
		FT_CHECK(ft_tokenizer_encode(tok, texts[i], strlen(texts[i]), f, &x, &err) ==
			 FT_OK);
		FT_CHECK(ft_tokenizer_encode(back, texts[i], strlen(texts[i]), f, &y, &err) ==
			 FT_OK);
		FT_CHECK(x.len == y.len && x.len > 3 && memcmp(x.v, y.v, x.len * 4) == 0);
		ft_ids_release(&x);
		ft_ids_release(&y);
	}
	FT_CHECK(ft_tokenizer_eos_id(back) == 2 && ft_tokenizer_pad_id(back) == 0 &&
		 !ft_tokenizer_adds_bos(back));
	ft_tokenizer_free(back);
	ft_gguf_close(g);
	ft_tokenizer_free(tok);
	unlink(path);
}

/* ---- LoRA ---- */

FT_TEST(lora_in_llama_cpp_layout)
{
	struct ft_model *m = tiny_model(FT_ARCH_LLAMA);
	struct ft_err err;
	char path[600];
	ft_err_clear(&err);
	struct ft_lora_config lc = { .targets = 1u << FT_LIN_Q | 1u << FT_LIN_V | 1u << FT_LIN_DOWN,
				     .r = 4,
				     .alpha = 8.0,
				     .dropout = 0.0,
				     .rslora = true };
	FT_CHECK(ft_model_lora_add(m, &lc, &err) == FT_OK);
	size_t n;
	struct ft_param *lp = ft_model_lora_params(m, &n);
	fill_random(lp, n, 5);
	snprintf(path, sizeof path, "%s/a.gguf", tmpdir());
	struct ft_gguf_save_opts o = { FT_GGUF_FTYPE_F32, "adapter", NULL, NULL };
	FT_CHECK(ft_model_lora_save_gguf(m, path, &o, &err) == FT_OK);
	struct ft_gguf *g;
	FT_CHECK(ft_gguf_open(path, &g, &err) == FT_OK);
	FT_CHECK_STR(ft_gguf_kv_find(g, "general.type")->str, "adapter");
	FT_CHECK_STR(ft_gguf_kv_find(g, "adapter.type")->str, "lora");
	FT_CHECK_STR(ft_gguf_kv_find(g, "general.architecture")->str, "llama");
	const struct ft_gguf_kv *alpha = ft_gguf_kv_find(g, "adapter.lora.alpha");
	float av;
	memcpy(&av, alpha->data, 4);
	/* rsLoRA scales by alpha / sqrt(r) = 4; llama.cpp by alpha' / r: alpha' = 16 */
	FT_CHECK(alpha->type == FT_GGUF_FLOAT32 && av == 16.0f);
	FT_CHECK_INT(ft_gguf_tensor_count(g), 4 * 3 * 2);
	const struct ft_gguf_tensor *a = ft_gguf_tensor_find(g, "blk.3.attn_q.weight.lora_a"),
				    *b = ft_gguf_tensor_find(g, "blk.3.attn_q.weight.lora_b"),
				    *vb = ft_gguf_tensor_find(g, "blk.3.attn_v.weight.lora_b"),
				    *db = ft_gguf_tensor_find(g, "blk.3.ffn_down.weight.lora_a");
	FT_CHECK(a && a->ne[0] == 256 && a->ne[1] == 4); /* A [r, in] */
	FT_CHECK(b && b->ne[0] == 4 && b->ne[1] == 256); /* B [out, r] */
	FT_CHECK(vb && vb->ne[0] == 4 && vb->ne[1] == 128); /* kv heads 2 x 64 */
	FT_CHECK(db && db->ne[0] == 688 && db->ne[1] == 4);
	const struct ft_param *pa = NULL, *pb = NULL, *pvb = NULL;
	for (size_t i = 0; i < n; i++) {
		if (strcmp(lp[i].name,
			   "base_model.model.model.layers.3.self_attn.q_proj.lora_A.weight") == 0)
			pa = &lp[i];
		if (strcmp(lp[i].name,
			   "base_model.model.model.layers.3.self_attn.q_proj.lora_B.weight") == 0)
			pb = &lp[i];
		if (strcmp(lp[i].name,
			   "base_model.model.model.layers.3.self_attn.v_proj.lora_B.weight") == 0)
			pvb = &lp[i];
	}
	FT_CHECK(pa && pb && pvb);
	FT_CHECK(memcmp(a->data, pa->data, pa->n * 4) == 0); /* A as it is */
	FT_CHECK(memcmp(vb->data, pvb->data, pvb->n * 4) == 0);
	const float *sb = (const float *)b->data; /* B's rows in rotary order */
	for (int h = 0; h < 4; h++)
		for (int i = 0; i < 32; i++)
			for (int j = 0; j < 2; j++)
				FT_CHECK(memcmp(sb + (h * 64 + 2 * i + j) * 4,
						pb->data + (h * 64 + j * 32 + i) * 4, 16) == 0);
	ft_gguf_close(g);
	/* quantised adapters are not a llama.cpp LoRA format we write */
	o.ftype = FT_GGUF_FTYPE_Q8_0;
	FT_CHECK(ft_model_lora_save_gguf(m, path, &o, &err) == FT_EINVAL);
	ft_model_free(m);
	unlink(path);
}

/* ---- Ollama ---- */

FT_TEST(ollama_templates)
{
	struct ft_chat_template *t;
	struct ft_buf b = FT_BUF_INIT(1 << 16);
	const char *stops[8];
	FT_CHECK(ft_chat_template_new("chatml", NULL, "<|im_end|>", &t, NULL) == FT_OK);
	FT_CHECK(ft_chat_template_ollama(t, false, &b) == FT_OK);
	FT_CHECK_STR(
		ft_buf_str(&b),
		"{{ range $i, $_ := .Messages }}{{ $last := eq (len (slice $.Messages $i)) 1 }}"
		"<|im_start|>{{ .Role }}\n{{ .Content }}"
		"{{ if or (ne .Role \"assistant\") (not $last) }}<|im_end|>\n{{ end }}"
		"{{ if and $last (ne .Role \"assistant\") }}<|im_start|>assistant\n{{ end }}"
		"{{ end }}");
	FT_CHECK_INT(ft_chat_template_stops(t, stops, 8), 2);
	FT_CHECK_STR(stops[0], "<|im_end|>");
	FT_CHECK_STR(stops[1], "<|im_start|>");
	ft_chat_template_free(t);
	/* BOS text: written unless llama.cpp adds it; "{{" in it escaped */
	FT_CHECK(ft_chat_template_new("llama3", "<{{bos}}>", "<|eot_id|>", &t, NULL) == FT_OK);
	ft_buf_reset(&b);
	FT_CHECK(ft_chat_template_ollama(t, false, &b) == FT_OK);
	FT_CHECK(strncmp(ft_buf_str(&b), "<{{ \"{{\" }}bos}}>{{ range", 25) == 0);
	ft_buf_reset(&b);
	FT_CHECK(ft_chat_template_ollama(t, true, &b) == FT_OK);
	FT_CHECK(strncmp(ft_buf_str(&b), "{{ range", 8) == 0);
	ft_chat_template_free(t);
	/* llama2: per-turn BOS, the first one's condition a constant */
	FT_CHECK(ft_chat_template_new("llama2", "<s>", "</s>", &t, NULL) == FT_OK);
	ft_buf_reset(&b);
	FT_CHECK(ft_chat_template_ollama(t, true, &b) == FT_OK);
	FT_CHECK(strstr(ft_buf_str(&b), "{{ if or false (gt $i 1)") != NULL);
	FT_CHECK(strstr(ft_buf_str(&b), "}}<s>{{ end }}[INST] ") != NULL);
	FT_CHECK_INT(ft_chat_template_stops(t, stops, 8), 2);
	FT_CHECK_STR(stops[1], "</s>");
	ft_chat_template_free(t);
	ft_buf_release(&b);
}

FT_TEST_MAIN()
