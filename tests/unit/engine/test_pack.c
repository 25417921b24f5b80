/*
 * test_pack.c - a model's weights packed for inference (engine/model/pack.c,
 * the CPU backend's pw_* in cpu/matmul.c).
 *
 * The references are exact, so every comparison is bit for bit (memcmp):
 *   - f32: the packed model's logits equal the unpacked model's, prefilled
 *     and decoded through the KV cache;
 *   - q8_0 (8-bit weights times 8-bit activations, llama.cpp's arithmetic:
 *     cpu/matmul_q8.c): the linear equals, within 1e-6 relative, the same
 *     sums worked in double here from the GGUF blocks (ft_ggml_quant, the
 *     writer tests/system/test_gguf_peer.py holds to the gguf package) and
 *     activations quantised by llama.cpp's rule; the model's logits stay
 *     within 5% of the largest logit of the model holding the dequantised
 *     weights in fp32 (activation rounding), and differ from them;
 *   - a row's logits do not depend on the rows it is stepped with: three
 *     sequences decoded in one step get exactly what each gets alone;
 *   - the f32 matmul against a plain triple loop in double, within 1e-5
 *     relative (the GEMM sums in float), for row counts 1..13 and an
 *     output size that leaves a partial panel;
 *   - bf16 (cpu/matmul_bf16.c): the forward and the input gradient against
 *     the same triple loop over operands rounded to bf16 here (to nearest
 *     even, worked on the bits by hand), within 1e-5 relative, for an odd
 *     input size (a padded pair) and a partial panel; the rounding's ties,
 *     overflow to infinity and NaN seen through the forward exactly; a row's
 *     result does not depend on the rows beside it (bit for bit).
 */
#include "ftest.h"
#include "ft/gguf.h"
#include "ft/model.h"

#include <math.h>

static uint64_t rs;
static float frand(void)
{
	rs ^= rs << 13;
	rs ^= rs >> 7;
	rs ^= rs << 17;
	return (float)((rs >> 40) / (double)(1ull << 24)) * 2.0f - 1.0f;
}

/* Sizes that are multiples of 32 where Q8_0 needs them; a vocabulary that
 * leaves a partial panel of output columns. */
static struct ft_model_config cfg(void)
{
	struct ft_model_config c = { 0 };
	c.vocab_size = 71;
	c.hidden_size = 64;
	c.intermediate_size = 96;
	c.num_layers = 2;
	c.num_heads = 4;
	c.num_kv_heads = 2;
	c.head_dim = 16;
	c.max_position_embeddings = 64;
	c.rms_norm_eps = 1e-6;
	c.rope_theta = 10000;
	c.tie_word_embeddings = false;
	c.qkv_bias = true;
	c.pad_token_id = -1;
	c.bos_token_id = -1;
	return c;
}

static struct ft_model *model(void)
{
	struct ft_model_config c = cfg();
	struct ft_model *m;
	FT_ASSERT(ft_model_new(&c, ft_backend_cpu(), &m, NULL) == FT_OK);
	size_t n;
	struct ft_param *ps = ft_model_params(m, &n);
	rs = 0x9e3779b97f4a7c15ull;
	for (size_t t = 0; t < n; t++)
		for (size_t i = 0; i < ps[t].n; i++)
			ps[t].data[i] =
				strstr(ps[t].name, "norm") ? 1.0f + 0.1f * frand() : 0.3f * frand();
	return m;
}

/* The weights pack.c quantises (2-D, not the embedding) replaced by their
 * Q8_0 round trip. */
static void dequantised(struct ft_model *m)
{
	size_t n;
	struct ft_param *ps = ft_model_params(m, &n);
	for (size_t t = 0; t < n; t++) {
		if (ps[t].ndim != 2 || strstr(ps[t].name, "embed_tokens"))
			continue;
		uint8_t *q = ft_xcalloc(ps[t].n / 32, 34);
		FT_ASSERT(ft_ggml_quant(FT_GGML_Q8_0, ps[t].data, ps[t].n, q));
		FT_ASSERT(ft_ggml_dequant(FT_GGML_Q8_0, q, ps[t].n, ps[t].data));
		free(q);
	}
}

#define LEN 14
static const int32_t seqs[3][LEN] = {
	{ 3, 17, 9, 28, 1, 0, 22, 5, 5, 14, 11, 2, 26, 8 },
	{ 70, 1, 2, 40, 41, 42, 6, 7, 8, 9, 10, 69, 68, 0 },
	{ 12, 12, 12, 50, 33, 21, 4, 4, 19, 60, 61, 62, 3, 2 },
};

/* Logits [LEN, V] of the three sequences: each prefilled 5 tokens, then
 * decoded one token per step, either alone or all three in one step. */
static float *run(struct ft_model *m, bool together)
{
	int V = ft_model_config(m)->vocab_size;
	struct ft_kv_cache *kv;
	FT_ASSERT(ft_kv_cache_new(m, 3, 32, &kv, NULL) == FT_OK);
	float *out = ft_xcalloc((size_t)3 * LEN * V, sizeof(float));
	int32_t pos[LEN];
	for (int i = 0; i < LEN; i++)
		pos[i] = i;
	for (int q = 0; q < 3; q++) {
		int32_t slot[5] = { q, q, q, q, q };
		struct ft_step st = { 5, seqs[q], pos, slot, NULL, NULL, 0 };
		FT_ASSERT(ft_model_step(m, kv, &st, NULL) == FT_OK);
		ft_model_read(m, out + (size_t)q * LEN * V, ft_model_step_logits(m), (size_t)5 * V);
	}
	for (int p = 5; p < LEN; p++) {
		if (together) {
			int32_t ids[3], ps[3], sl[3];
			for (int q = 0; q < 3; q++)
				ids[q] = seqs[2 - q][p], ps[q] = p, sl[q] = 2 - q;
			struct ft_step st = { 3, ids, ps, sl, NULL, NULL, 0 };
			FT_ASSERT(ft_model_step(m, kv, &st, NULL) == FT_OK);
			float *lg = ft_xcalloc((size_t)3 * V, sizeof(float));
			ft_model_read(m, lg, ft_model_step_logits(m), (size_t)3 * V);
			for (int q = 0; q < 3; q++)
				memcpy(out + ((size_t)(2 - q) * LEN + p) * V, lg + (size_t)q * V,
				       sizeof(float) * (size_t)V);
			free(lg);
			continue;
		}
		for (int q = 0; q < 3; q++) {
			int32_t sl = q;
			struct ft_step st = { 1, &seqs[q][p], &pos[p], &sl, NULL, NULL, 0 };
			FT_ASSERT(ft_model_step(m, kv, &st, NULL) == FT_OK);
			ft_model_read(m, out + ((size_t)q * LEN + p) * V, ft_model_step_logits(m),
				      (size_t)V);
		}
	}
	ft_kv_cache_free(kv);
	return out;
}

static size_t n_logits(void)
{
	return (size_t)3 * LEN * cfg().vocab_size;
}

FT_TEST(f32_packed_logits_equal_unpacked)
{
	struct ft_model *plain = model(), *packed = model();
	FT_ASSERT(ft_model_pack(packed, FT_PW_F32, NULL) == FT_OK);
	FT_CHECK(ft_model_pack_bytes(packed) > 0 && ft_model_pack_bytes(plain) == 0);
	float *a = run(plain, false), *b = run(packed, false), *c = run(packed, true);
	FT_CHECK(memcmp(a, b, n_logits() * sizeof(float)) == 0);
	FT_CHECK(memcmp(a, c, n_logits() * sizeof(float)) == 0);
	free(a);
	free(b);
	free(c);
	ft_model_free(plain);
	ft_model_free(packed);
}

FT_TEST(q8_0_packed_logits_are_close_to_the_dequantised_weights_and_batch_free)
{
	struct ft_model *deq = model(), *packed = model();
	dequantised(deq);
	FT_ASSERT(ft_model_pack(packed, FT_PW_Q8_0, NULL) == FT_OK);
	float *a = run(deq, false), *b = run(packed, false), *c = run(packed, true);
	FT_CHECK(memcmp(b, c, n_logits() * sizeof(float)) == 0);
	double d = 0, mag = 0;
	for (size_t i = 0; i < n_logits(); i++) {
		d = fmax(d, fabs((double)a[i] - b[i]));
		mag = fmax(mag, fabs((double)a[i]));
	}
	printf("max |dequantised fp32 - q8_0 x q8_0| over the logits: %.3g (max |logit| %.3g)\n", d,
	       mag);
	FT_CHECK(d > 1e-6 && d < 0.05 * mag);
	free(a);
	free(b);
	free(c);
	ft_model_free(deq);
	ft_model_free(packed);
}

/* The Q8_0 linear's sums in double: GGUF blocks of the weight, the
 * activations quantised as llama.cpp does (d = max|x| / 127, q = round(x / d)).
 * Up to 37 rows, so that AMX's 16-row tiles and the rows after them run
 * where the CPU has AMX; every row has the bits it has alone. */
/* fp16 bits to float, exactly (subnormals included) */
static float f16_exact(uint16_t h)
{
	int e = (h >> 10) & 31, m = h & 1023;
	float v = e == 0 ? ldexpf((float)m, -24) : ldexpf((float)(m | 1024), e - 25);
	return h >> 15 ? -v : v;
}

/* One block of 32 inputs v against GGUF Q8_0 block bb (fp16 scale, 32
 * int8): the activations quantised as llama.cpp does (*dx = max|v| / 127,
 * q = round(v / *dx)) and the exact integer sum of q times the weights. */
static long block_sum(const float *v, const uint8_t *bb, float *dx)
{
	float amax = 0;
	for (int i = 0; i < 32; i++)
		amax = fmaxf(amax, fabsf(v[i]));
	*dx = amax / 127.0f;
	float id = *dx > 0 ? 1.0f / *dx : 0.0f;
	long s = 0;
	for (int i = 0; i < 32; i++)
		s += lroundf(v[i] * id) * (long)(signed char)bb[2 + i];
	return s;
}

FT_TEST(q8_0_matmul_equals_the_integer_sums)
{
	const struct ft_backend *be = ft_backend_cpu();
	enum { IC = 96, OC = 45, NMAX = 37 };
	float alone[NMAX][OC];
	float *w = ft_xcalloc((size_t)OC * IC, sizeof(float));
	float *x = ft_xcalloc((size_t)NMAX * IC, sizeof(float));
	float *y = ft_xcalloc((size_t)NMAX * OC, sizeof(float));
	float *wd = ft_xcalloc((size_t)OC * IC, sizeof(float));
	uint8_t *blk = ft_xcalloc((size_t)OC * IC / 32, 34);
	rs = 99;
	for (int i = 0; i < OC * IC; i++)
		w[i] = frand() * (i % 7 == 0 ? 3.0f : 0.5f);
	for (int i = 0; i < NMAX * IC; i++)
		x[i] = frand() * (i % 5 == 0 ? 2.0f : 1.0f);
	FT_ASSERT(ft_ggml_quant(FT_GGML_Q8_0, w, (uint64_t)OC * IC, blk));
	FT_ASSERT(ft_ggml_dequant(FT_GGML_Q8_0, blk, (uint64_t)OC * IC, wd));
	struct ft_pw *pw = be->pw_pack(FT_PW_Q8_0, blk, OC, IC);
	FT_ASSERT(pw);
	for (int n = 0; n < NMAX; n++)
		be->matmul_pw_fwd(alone[n], x + (size_t)n * IC, pw, NULL, 1, IC, OC);
	for (int N = 1; N <= NMAX; N += 4) {
		be->matmul_pw_fwd(y, x, pw, NULL, N, IC, OC);
		FT_CHECK(memcmp(y, alone, sizeof(float) * N * OC) == 0);
		double worst = 0, worst_fp = 0;
		for (int n = 0; n < N; n++)
			for (int o = 0; o < OC; o++) {
				double ref = 0, exact = 0;
				for (int b = 0; b < IC / 32; b++) {
					float dx;
					long s = block_sum(x + n * IC + 32 * b,
							   blk + ((size_t)o * (IC / 32) + b) * 34,
							   &dx);
					/* the block's scale: the dequantised weight over its int8 */
					float dw = 0;
					for (int i = 0; i < 32 && dw == 0; i++) {
						signed char q = (signed char)
							blk[((size_t)o * (IC / 32) + b) * 34 + 2 +
							    i];
						if (q)
							dw = wd[o * IC + 32 * b + i] / q;
					}
					ref += (double)dx * dw * s;
				}
				for (int i = 0; i < IC; i++)
					exact += (double)x[n * IC + i] * wd[o * IC + i];
				worst = fmax(worst, fabs(y[n * OC + o] - ref) / (fabs(ref) + 1));
				worst_fp = fmax(worst_fp,
						fabs(y[n * OC + o] - exact) / (fabs(exact) + 1));
			}
		printf("N %d: |q8 - integer sums| %.3g, |q8 - fp32 on dequantised weights| %.3g\n",
		       N, worst, worst_fp);
		FT_CHECK(worst < 1e-6);
		FT_CHECK(worst_fp < 0.1); /* 8-bit activations: ~0.4% per input */
		/* and the bits: whichever kernel ran (AVX-512 VNNI, AMX, AVX2 or
		 * portable), each output is f = fmaf(s_b, dw_b * dx_b, f) over the
		 * blocks in order, s_b the exact integer sum */
		int same = 0;
		for (int n = 0; n < N; n++)
			for (int o = 0; o < OC; o++) {
				float f = 0;
				for (int b = 0; b < IC / 32; b++) {
					const uint8_t *bb = blk + ((size_t)o * (IC / 32) + b) * 34;
					float dx;
					long sum = block_sum(x + n * IC + 32 * b, bb, &dx);
					float dw = f16_exact((uint16_t)(bb[0] | bb[1] << 8));
					f = fmaf((float)sum, dw * dx, f);
				}
				same += memcmp(&f, &y[n * OC + o], sizeof f) == 0;
			}
		FT_CHECK(same == N * OC);
	}
	be->pw_free(pw);
	free(w);
	free(x);
	free(y);
	free(wd);
	free(blk);
}

/* Three q8_0 weights of one input (q, k, v) in one call: each output has
 * the bits of its own call, biases added; a mix with an f32 weight falls
 * back to one call each, the same bits too. */
FT_TEST(q8_0_multi_equals_one_call_each)
{
	const struct ft_backend *be = ft_backend_cpu();
	enum { IC = 96, NMAX = 11 };
	static const int oc[3] = { 45, 16, 33 };
	float *x = ft_xcalloc((size_t)NMAX * IC, sizeof(float));
	rs = 5;
	for (int i = 0; i < NMAX * IC; i++)
		x[i] = frand();
	struct ft_pw *pw[3], *f32 = NULL;
	float *bias[3], *one[3], *many[3];
	for (int k = 0; k < 3; k++) {
		float *w = ft_xcalloc((size_t)oc[k] * IC, sizeof(float));
		uint8_t *blk = ft_xcalloc((size_t)oc[k] * IC / 32, 34);
		for (int i = 0; i < oc[k] * IC; i++)
			w[i] = frand();
		FT_ASSERT(ft_ggml_quant(FT_GGML_Q8_0, w, (uint64_t)oc[k] * IC, blk));
		pw[k] = be->pw_pack(FT_PW_Q8_0, blk, oc[k], IC);
		if (k == 1)
			f32 = be->pw_pack(FT_PW_F32, w, oc[k], IC);
		FT_ASSERT(pw[k]);
		bias[k] = k == 1 ? NULL : ft_xcalloc((size_t)oc[k], sizeof(float));
		for (int o = 0; bias[k] && o < oc[k]; o++)
			bias[k][o] = frand();
		one[k] = ft_xcalloc((size_t)NMAX * oc[k], sizeof(float));
		many[k] = ft_xcalloc((size_t)NMAX * oc[k], sizeof(float));
		free(w);
		free(blk);
	}
	for (int N = 1; N <= NMAX; N += 5) {
		for (int round = 0; round < 2; round++) {
			const struct ft_pw *use[3] = { pw[0], round ? f32 : pw[1], pw[2] };
			for (int k = 0; k < 3; k++)
				be->matmul_pw_fwd(one[k], x, use[k], bias[k], N, IC, oc[k]);
			be->matmul_pw_fwd_multi(many, x, use, (const float *const *)bias, 3, N, IC);
			for (int k = 0; k < 3; k++)
				FT_CHECK(memcmp(one[k], many[k],
						sizeof(float) * (size_t)N * oc[k]) == 0);
		}
	}
	for (int k = 0; k < 3; k++) {
		be->pw_free(pw[k]);
		free(bias[k]);
		free(one[k]);
		free(many[k]);
	}
	be->pw_free(f32);
	free(x);
}

FT_TEST(packed_matmul_matches_a_triple_loop)
{
	const struct ft_backend *be = ft_backend_cpu();
	enum { IC = 96, OC = 45 };
	float *w = ft_xcalloc((size_t)OC * IC, sizeof(float));
	float *bias = ft_xcalloc(OC, sizeof(float));
	float *x = ft_xcalloc((size_t)13 * IC, sizeof(float));
	float *y = ft_xcalloc((size_t)13 * OC, sizeof(float));
	rs = 77;
	for (int i = 0; i < OC * IC; i++)
		w[i] = frand();
	for (int i = 0; i < OC; i++)
		bias[i] = frand();
	for (int i = 0; i < 13 * IC; i++)
		x[i] = frand();
	struct ft_pw *pw = be->pw_pack(FT_PW_F32, w, OC, IC);
	FT_ASSERT(pw && be->pw_bytes(pw) >= sizeof(float) * OC * IC);
	for (int N = 1; N <= 13; N++) {
		be->matmul_pw_fwd(y, x, pw, bias, N, IC, OC);
		double worst = 0;
		for (int n = 0; n < N; n++)
			for (int o = 0; o < OC; o++) {
				double ref = bias[o];
				for (int i = 0; i < IC; i++)
					ref += (double)x[n * IC + i] * w[o * IC + i];
				worst = fmax(worst, fabs(y[n * OC + o] - ref) / (fabs(ref) + 1));
			}
		FT_CHECK(worst < 1e-5);
	}
	be->pw_free(pw);
	/* Q8_0 rows need IC a multiple of 32 */
	FT_CHECK(be->pw_pack(FT_PW_Q8_0, w, OC, 40) == NULL);
	free(w);
	free(bias);
	free(x);
	free(y);
}

/* fp32 -> bf16 -> fp32, to nearest even, by hand on the bits (NaN aside) */
static float bf16_value(float f)
{
	uint32_t u;
	memcpy(&u, &f, 4);
	uint32_t low = u & 0xffffu, keep = u >> 16;
	if (low > 0x8000u || (low == 0x8000u && (keep & 1u)))
		keep++;
	u = keep << 16;
	memcpy(&f, &u, 4);
	return f;
}

FT_TEST(bf16_matmul_and_input_gradient_match_a_triple_loop_on_rounded_operands)
{
	const struct ft_backend *be = ft_backend_cpu();
	enum { IC = 97, OC = 45, NMAX = 13 };
	float *w = ft_xcalloc((size_t)OC * IC, sizeof(float));
	if (!be->pw_bf16) { /* a build without AVX512-BF16 refuses the format */
		FT_CHECK(be->pw_pack(FT_PW_BF16, w, OC, IC) == NULL);
		free(w);
		return;
	}
	float *x = ft_xcalloc((size_t)NMAX * IC, sizeof(float));
	float *dy = ft_xcalloc((size_t)NMAX * OC, sizeof(float));
	float *y = ft_xcalloc((size_t)NMAX * OC, sizeof(float));
	float *dx = ft_xcalloc((size_t)NMAX * IC, sizeof(float));
	float *one = ft_xcalloc((size_t)OC, sizeof(float));
	rs = 91;
	for (int i = 0; i < OC * IC; i++)
		w[i] = frand() * 3;
	for (int i = 0; i < NMAX * IC; i++)
		x[i] = frand();
	for (int i = 0; i < NMAX * OC; i++)
		dy[i] = frand() * 0.01f;
	struct ft_pw *pw = be->pw_pack(FT_PW_BF16, w, OC, IC);
	FT_ASSERT(pw && be->pw_bytes(pw) >= 2 * sizeof(uint16_t) * OC * IC);
	for (int N = 1; N <= NMAX; N++) {
		be->matmul_pw_fwd(y, x, pw, NULL, N, IC, OC);
		for (int i = 0; i < N * IC; i++)
			dx[i] = 0.5f; /* the gradient is added to what is there */
		be->matmul_pw_bwd_input(dx, dy, pw, N, IC, OC);
		double worst_y = 0, worst_dx = 0;
		for (int n = 0; n < N; n++) {
			for (int o = 0; o < OC; o++) {
				double ref = 0, mag = 0;
				for (int i = 0; i < IC; i++) {
					double t = (double)bf16_value(x[n * IC + i]) *
						   bf16_value(w[o * IC + i]);
					ref += t, mag += fabs(t);
				}
				worst_y = fmax(worst_y, fabs(y[n * OC + o] - ref) / (mag + 1e-30));
			}
			for (int i = 0; i < IC; i++) {
				double ref = 0, mag = 0;
				for (int o = 0; o < OC; o++) {
					double t = (double)bf16_value(dy[n * OC + o]) *
						   bf16_value(w[o * IC + i]);
					ref += t, mag += fabs(t);
				}
				worst_dx = fmax(worst_dx,
						fabs(dx[n * IC + i] - 0.5 - ref) / (mag + 1e-30));
			}
		}
		FT_CHECK(worst_y < 1e-5 && worst_dx < 1e-5);
		/* the last row alone: the same bits as in the batch */
		be->matmul_pw_fwd(one, x + (size_t)(N - 1) * IC, pw, NULL, 1, IC, OC);
		FT_CHECK(memcmp(one, y + (size_t)(N - 1) * OC, sizeof(float) * OC) == 0);
	}
	be->pw_free(pw);

	/* the rounding, seen through y = 1 * w: ties to even, the first float
	 * past a tie, overflow to infinity, NaN */
	float t[6] = { 1.00390625f,  1.01171875f,   nextafterf(1.00390625f, 2.0f),
		       -1.00390625f, 3.4028235e38f, NAN };
	float want[5] = { 1.0f, 1.015625f, 1.0078125f, -1.0f, INFINITY };
	float in[2] = { 1.0f, 0.0f }, out[6];
	float wt[12] = { 0 };
	for (int o = 0; o < 6; o++)
		wt[o * 2] = t[o];
	pw = be->pw_pack(FT_PW_BF16, wt, 6, 2);
	FT_ASSERT(pw);
	be->matmul_pw_fwd(out, in, pw, NULL, 1, 2, 6);
	FT_CHECK(memcmp(out, want, sizeof want) == 0);
	FT_CHECK(isnan(out[5]));
	be->pw_free(pw);
	free(w);
	free(x);
	free(dy);
	free(y);
	free(dx);
	free(one);
}

FT_TEST(format_names)
{
	enum ft_pw_fmt f;
	FT_CHECK(ft_pw_fmt_parse("bf16", &f) && f == FT_PW_BF16);
	FT_CHECK(ft_pw_fmt_parse("q8_0", &f) && f == FT_PW_Q8_0);
	FT_CHECK(ft_pw_fmt_parse("f32", &f) && f == FT_PW_F32);
	FT_CHECK(!ft_pw_fmt_parse("q4_0", &f) && !ft_pw_fmt_parse(NULL, &f));
	FT_CHECK(strcmp(ft_pw_fmt_name(FT_PW_Q8_0), "q8_0") == 0);
}

FT_TEST_MAIN()
