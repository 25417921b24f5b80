/*
 * test_cuda_kernels.c - every op of the CUDA backend against the CPU
 * reference backend (llm.c's dev/cuda checks, ggml's test-backend-ops):
 * random inputs, the same op on both, element-wise comparison.
 *
 * Without a CUDA device it prints "SKIP: no CUDA device (<reason>)" and
 * exits 77, which CTest reports as skipped (SKIP_RETURN_CODE 77).
 *
 * Tolerances, per element, ref = CPU result, got = GPU result:
 *   fp32 paths   |got - ref| <= 1e-4 * rms(ref) + 1e-4 * |ref|
 *                (same math, different summation order; cuBLASLt runs true
 *                fp32, CUBLAS_COMPUTE_32F, no TF32)
 *   bf16 paths   |got - ref| <= 0.02 * rms(ref) + 0.079 * |ref|
 *                (llm.c test_gpt2.cu's relative 0.079 for bf16, plus an
 *                absolute floor of 2 % of the tensor's RMS for values near
 *                zero); the CPU runs on the same bf16-rounded inputs.
 *   statistics   cross-entropy loss sum relative 1e-5 (fp32) / 1e-2 (bf16),
 *                trained-token count exact, correct count exact (fp32).
 * Usage: test_cuda_kernels [case]   (no argument: all cases)
 * With FT_CUDA_SIM=1 (the CPU simulator, tests/gpu/sim/) the attention,
 * RMSNorm and cross-entropy shapes shrink (T = 40 to 100, 40 rows, V = 5000)
 * so that the simulated threads finish in seconds.
 */
#include "ft/backend_cuda.h"
#include "ft/nf4.h"
#include "ft/safetensors.h"

#include <math.h>

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static float frand(void) /* uniform in [-1, 1) */
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (float)((rng_state >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f;
}

static float *rnd(size_t n, float scale)
{
	float *x = ft_xmalloc(n * sizeof(float) + 1);
	for (size_t i = 0; i < n; i++)
		x[i] = frand() * scale;
	return x;
}

static float *dup_f(const float *x, size_t n)
{
	float *y = ft_xmalloc(n * sizeof(float) + 1);
	memcpy(y, x, n * sizeof(float));
	return y;
}

/* Round to bf16 in place (the CPU then sees exactly what the GPU stores). */
static void round_bf16(float *x, size_t n)
{
	for (size_t i = 0; i < n; i++)
		x[i] = ft_bf16_to_f32(ft_f32_to_bf16(x[i]));
}

static void *dev_alloc(size_t bytes)
{
	struct ft_err err;
	ft_err_clear(&err);
	void *p = ft_cuda_alloc(bytes, &err);
	if (!p) {
		fprintf(stderr, "%s\n", err.msg);
		exit(1);
	}
	return p;
}

static float *up_f(const float *x, size_t n)
{
	float *d = dev_alloc(n * sizeof(float));
	ft_cuda_upload(d, x, n * sizeof(float));
	return d;
}

static ft_bf16 *up_b(const float *x, size_t n)
{
	ft_bf16 *h = ft_xmalloc(n * sizeof(ft_bf16) + 1), *d = dev_alloc(n * sizeof(ft_bf16));
	for (size_t i = 0; i < n; i++)
		h[i] = ft_f32_to_bf16(x[i]);
	ft_cuda_upload(d, h, n * sizeof(ft_bf16));
	free(h);
	return d;
}

static void *up_i(const int32_t *x, size_t n)
{
	void *d = dev_alloc(n * sizeof(int32_t));
	ft_cuda_upload(d, x, n * sizeof(int32_t));
	return d;
}

static float *down_f(const float *d, size_t n)
{
	float *h = ft_xmalloc(n * sizeof(float) + 1);
	ft_cuda_download(h, d, n * sizeof(float));
	return h;
}

static float *down_b(const ft_bf16 *d, size_t n)
{
	ft_bf16 *h = ft_xmalloc(n * sizeof(ft_bf16) + 1);
	float *f = ft_xmalloc(n * sizeof(float) + 1);
	ft_cuda_download(h, d, n * sizeof(ft_bf16));
	for (size_t i = 0; i < n; i++)
		f[i] = ft_bf16_to_f32(h[i]);
	free(h);
	return f;
}

/* Compare; frees got. Returns 1 on failure. */
static int check(const char *what, float *got, const float *ref, size_t n, bool bf16)
{
	double ss = 0;
	for (size_t i = 0; i < n; i++)
		ss += (double)ref[i] * ref[i];
	double rms = n ? sqrt(ss / (double)n) : 0;
	double thr = bf16 ? 0.02 * rms : 1e-4 * rms, rel = bf16 ? 0.079 : 1e-4;
	double worst = 0;
	size_t bad = 0, at = 0;
	for (size_t i = 0; i < n; i++) {
		double d = fabs((double)got[i] - ref[i]), lim = thr + rel * fabs(ref[i]);
		if (!(d <= lim)) { /* NaN fails too */
			if (bad == 0)
				at = i;
			bad++;
		}
		if (d / (lim > 0 ? lim : 1e-30) > worst)
			worst = d / (lim > 0 ? lim : 1e-30);
	}
	printf("  %-34s n=%-9zu max err/tolerance %.3f %s\n", what, n, worst, bad ? "FAIL" : "ok");
	if (bad)
		printf("    %zu bad, first at %zu: got %.7g want %.7g\n", bad, at, got[at],
		       ref[at]);
	free(got);
	return bad ? 1 : 0;
}

static const struct ft_backend *cpu;
static bool sim; /* FT_CUDA_SIM: smaller shapes */

/* ---- cases; each returns the number of failed checks ---- */

static int case_matmul(bool bf16, int N, int IC, int OC)
{
	int fails = 0;
	float *inp = rnd((size_t)N * IC, 1), *w = rnd((size_t)OC * IC, 0.1f), *b = rnd(OC, 1);
	float *out = rnd((size_t)N * OC, 1), *dout = rnd((size_t)N * OC, 1);
	float *dinp = rnd((size_t)N * IC, 1), *dw = rnd((size_t)OC * IC, 1), *db = rnd(OC, 1);
	if (bf16) {
		round_bf16(inp, (size_t)N * IC);
		round_bf16(w, (size_t)OC * IC);
		round_bf16(b, OC);
		round_bf16(out, (size_t)N * OC);
		round_bf16(dout, (size_t)N * OC);
		round_bf16(dinp, (size_t)N * IC);
	}
	float *r_out = dup_f(out, (size_t)N * OC), *r_dinp = dup_f(dinp, (size_t)N * IC);
	float *r_dw = dup_f(dw, (size_t)OC * IC), *r_db = dup_f(db, OC);
	cpu->matmul_fwd(r_out, inp, w, b, N, IC, OC, true);
	cpu->matmul_bwd(r_dinp, r_dw, r_db, dout, inp, w, N, IC, OC);
	float *g_dw = up_f(dw, (size_t)OC * IC), *g_db = up_f(db, OC);
	char name[64];
	if (!bf16) {
		float *g_inp = up_f(inp, (size_t)N * IC), *g_w = up_f(w, (size_t)OC * IC);
		float *g_b = up_f(b, OC), *g_out = up_f(out, (size_t)N * OC);
		float *g_dout = up_f(dout, (size_t)N * OC), *g_dinp = up_f(dinp, (size_t)N * IC);
		ft_cuda_matmul_fwd(g_out, g_inp, g_w, g_b, N, IC, OC, true);
		ft_cuda_matmul_bwd(g_dinp, g_dw, g_db, g_dout, g_inp, g_w, N, IC, OC);
		snprintf(name, sizeof(name), "matmul f32 %dx%dx%d out", N, IC, OC);
		fails += check(name, down_f(g_out, (size_t)N * OC), r_out, (size_t)N * OC, false);
		fails += check("  dinp", down_f(g_dinp, (size_t)N * IC), r_dinp, (size_t)N * IC,
			       false);
		ft_cuda_free(g_inp);
		ft_cuda_free(g_w);
		ft_cuda_free(g_b);
		ft_cuda_free(g_out);
		ft_cuda_free(g_dout);
		ft_cuda_free(g_dinp);
	} else {
		ft_bf16 *g_inp = up_b(inp, (size_t)N * IC), *g_w = up_b(w, (size_t)OC * IC);
		ft_bf16 *g_b = up_b(b, OC), *g_out = up_b(out, (size_t)N * OC);
		ft_bf16 *g_dout = up_b(dout, (size_t)N * OC), *g_dinp = up_b(dinp, (size_t)N * IC);
		ft_cuda_matmul_fwd_bf16(g_out, g_inp, g_w, g_b, N, IC, OC, true);
		ft_cuda_matmul_bwd_bf16(g_dinp, g_dw, g_db, g_dout, g_inp, g_w, N, IC, OC);
		snprintf(name, sizeof(name), "matmul bf16 %dx%dx%d out", N, IC, OC);
		fails += check(name, down_b(g_out, (size_t)N * OC), r_out, (size_t)N * OC, true);
		fails += check("  dinp", down_b(g_dinp, (size_t)N * IC), r_dinp, (size_t)N * IC,
			       true);
		ft_cuda_free(g_inp);
		ft_cuda_free(g_w);
		ft_cuda_free(g_b);
		ft_cuda_free(g_out);
		ft_cuda_free(g_dout);
		ft_cuda_free(g_dinp);
	}
	fails += check("  dw", down_f(g_dw, (size_t)OC * IC), r_dw, (size_t)OC * IC, bf16);
	fails += check("  dbias", down_f(g_db, OC), r_db, OC, bf16);
	ft_cuda_free(g_dw);
	ft_cuda_free(g_db);
	free(inp), free(w), free(b), free(out), free(dout), free(dinp), free(dw), free(db);
	free(r_out), free(r_dinp), free(r_dw), free(r_db);
	return fails;
}

static int case_rmsnorm(bool bf16)
{
	int N = sim ? 40 : 300, C = 1000, fails = 0;
	size_t n = (size_t)N * C;
	float *a = rnd(n, 2), *b2 = rnd(n, 1), *w = rnd(C, 1), *dout = rnd(n, 1);
	float *dinp = rnd(n, 1), *dw = rnd(C, 1);
	if (bf16) {
		round_bf16(a, n);
		round_bf16(b2, n);
		round_bf16(w, C);
		round_bf16(dout, n);
		round_bf16(dinp, n);
	}
	/* reference: res = a + b (rounded like the GPU stores it), then the norm */
	float *res = ft_xmalloc(n * sizeof(float));
	for (size_t i = 0; i < n; i++)
		res[i] = a[i] + b2[i];
	if (bf16)
		round_bf16(res, n);
	float *r_out = ft_xmalloc(n * sizeof(float)), *r_rstd = ft_xmalloc((size_t)N * 4);
	float *r_dinp = dup_f(dinp, n), *r_dw = dup_f(dw, C);
	cpu->rmsnorm_fwd(r_out, r_rstd, res, w, N, C, 1e-5f);
	cpu->rmsnorm_bwd(r_dinp, r_dw, dout, res, w, r_rstd, N, C);
	float *g_rstd = dev_alloc((size_t)N * 4), *g_dw = up_f(dw, C);
	if (!bf16) {
		float *g_a = up_f(a, n), *g_b = up_f(b2, n), *g_w = up_f(w, C);
		float *g_out = dev_alloc(n * 4), *g_res = dev_alloc(n * 4);
		float *g_dout = up_f(dout, n), *g_dinp = up_f(dinp, n);
		ft_cuda_rmsnorm_residual_fwd(g_res, g_out, g_rstd, g_a, g_b, g_w, N, C, 1e-5f);
		fails += check("rmsnorm+residual f32 res", down_f(g_res, n), res, n, false);
		fails += check("  out", down_f(g_out, n), r_out, n, false);
		ft_cuda_rmsnorm_fwd(g_out, g_rstd, g_res, g_w, N, C, 1e-5f);
		fails += check("rmsnorm f32 out", down_f(g_out, n), r_out, n, false);
		fails += check("  rstd", down_f(g_rstd, N), r_rstd, N, false);
		ft_cuda_rmsnorm_bwd(g_dinp, g_dw, g_dout, g_res, g_w, g_rstd, N, C);
		fails += check("  dinp", down_f(g_dinp, n), r_dinp, n, false);
		ft_cuda_free(g_a), ft_cuda_free(g_b), ft_cuda_free(g_w), ft_cuda_free(g_out);
		ft_cuda_free(g_res), ft_cuda_free(g_dout), ft_cuda_free(g_dinp);
	} else {
		ft_bf16 *g_a = up_b(a, n), *g_b = up_b(b2, n), *g_w = up_b(w, C);
		ft_bf16 *g_out = dev_alloc(n * 2), *g_res = dev_alloc(n * 2);
		ft_bf16 *g_dout = up_b(dout, n), *g_dinp = up_b(dinp, n);
		ft_cuda_rmsnorm_residual_fwd_bf16(g_res, g_out, g_rstd, g_a, g_b, g_w, N, C, 1e-5f);
		fails += check("rmsnorm+residual bf16 res", down_b(g_res, n), res, n, true);
		fails += check("  out", down_b(g_out, n), r_out, n, true);
		ft_cuda_rmsnorm_fwd_bf16(g_out, g_rstd, g_res, g_w, N, C, 1e-5f);
		fails += check("rmsnorm bf16 out", down_b(g_out, n), r_out, n, true);
		fails += check("  rstd", down_f(g_rstd, N), r_rstd, N, true);
		ft_cuda_rmsnorm_bwd_bf16(g_dinp, g_dw, g_dout, g_res, g_w, g_rstd, N, C);
		fails += check("  dinp", down_b(g_dinp, n), r_dinp, n, true);
		ft_cuda_free(g_a), ft_cuda_free(g_b), ft_cuda_free(g_w), ft_cuda_free(g_out);
		ft_cuda_free(g_res), ft_cuda_free(g_dout), ft_cuda_free(g_dinp);
	}
	fails += check("  dw", down_f(g_dw, C), r_dw, C, bf16);
	ft_cuda_free(g_rstd), ft_cuda_free(g_dw);
	free(a), free(b2), free(w), free(dout), free(dinp), free(dw), free(res);
	free(r_out), free(r_rstd), free(r_dinp), free(r_dw);
	return fails;
}

static int case_rope(bool bf16)
{
	int N = 96, heads = 6, hd = 64, max_pos = 128, h2 = hd / 2, fails = 0;
	size_t n = (size_t)N * heads * hd;
	float *cs = ft_xmalloc((size_t)max_pos * h2 * 4),
	      *sn = ft_xmalloc((size_t)max_pos * h2 * 4);
	for (int p = 0; p < max_pos; p++)
		for (int i = 0; i < h2; i++) {
			float a = (float)p * powf(10000.0f, -2.0f * (float)i / (float)hd);
			cs[p * h2 + i] = cosf(a);
			sn[p * h2 + i] = sinf(a);
		}
	int32_t *pos = ft_xmalloc((size_t)N * 4);
	for (int i = 0; i < N; i++)
		pos[i] = i < 40 ? i : (i - 40) * 2; /* two packed documents, positions restart */
	float *x = rnd(n, 1), *dx = rnd(n, 1);
	if (bf16) {
		round_bf16(x, n);
		round_bf16(dx, n);
	}
	float *r_x = dup_f(x, n), *r_dx = dup_f(dx, n);
	cpu->rope_fwd(r_x, cs, sn, pos, N, heads, hd);
	cpu->rope_bwd(r_dx, cs, sn, pos, N, heads, hd);
	float *g_cs = up_f(cs, (size_t)max_pos * h2), *g_sn = up_f(sn, (size_t)max_pos * h2);
	int32_t *g_pos = up_i(pos, N);
	if (!bf16) {
		float *g_x = up_f(x, n), *g_dx = up_f(dx, n);
		ft_cuda_rope_fwd(g_x, g_cs, g_sn, g_pos, N, heads, hd);
		ft_cuda_rope_bwd(g_dx, g_cs, g_sn, g_pos, N, heads, hd);
		fails += check("rope f32 fwd", down_f(g_x, n), r_x, n, false);
		fails += check("  bwd", down_f(g_dx, n), r_dx, n, false);
		ft_cuda_free(g_x), ft_cuda_free(g_dx);
	} else {
		ft_bf16 *g_x = up_b(x, n), *g_dx = up_b(dx, n);
		ft_cuda_rope_fwd_bf16(g_x, g_cs, g_sn, g_pos, N, heads, hd);
		ft_cuda_rope_bwd_bf16(g_dx, g_cs, g_sn, g_pos, N, heads, hd);
		fails += check("rope bf16 fwd", down_b(g_x, n), r_x, n, true);
		fails += check("  bwd", down_b(g_dx, n), r_dx, n, true);
		ft_cuda_free(g_x), ft_cuda_free(g_dx);
	}
	ft_cuda_free(g_cs), ft_cuda_free(g_sn), ft_cuda_free(g_pos);
	free(cs), free(sn), free(pos), free(x), free(dx), free(r_x), free(r_dx);
	return fails;
}

static int case_swiglu(bool bf16)
{
	size_t n = 123457;
	int fails = 0;
	float *gate = rnd(n, 4), *up = rnd(n, 2), *dout = rnd(n, 1), *dg = rnd(n, 1),
	      *du = rnd(n, 1);
	if (bf16) {
		round_bf16(gate, n), round_bf16(up, n), round_bf16(dout, n);
		round_bf16(dg, n), round_bf16(du, n);
	}
	float *r_out = ft_xmalloc(n * 4), *r_dg = dup_f(dg, n), *r_du = dup_f(du, n);
	cpu->swiglu_fwd(r_out, gate, up, n);
	cpu->swiglu_bwd(r_dg, r_du, dout, gate, up, n);
	if (!bf16) {
		float *g_g = up_f(gate, n), *g_u = up_f(up, n), *g_o = dev_alloc(n * 4);
		float *g_do = up_f(dout, n), *g_dg = up_f(dg, n), *g_du = up_f(du, n);
		ft_cuda_swiglu_fwd(g_o, g_g, g_u, n);
		ft_cuda_swiglu_bwd(g_dg, g_du, g_do, g_g, g_u, n);
		fails += check("swiglu f32 out", down_f(g_o, n), r_out, n, false);
		fails += check("  dgate", down_f(g_dg, n), r_dg, n, false);
		fails += check("  dup", down_f(g_du, n), r_du, n, false);
		ft_cuda_free(g_g), ft_cuda_free(g_u), ft_cuda_free(g_o);
		ft_cuda_free(g_do), ft_cuda_free(g_dg), ft_cuda_free(g_du);
	} else {
		ft_bf16 *g_g = up_b(gate, n), *g_u = up_b(up, n), *g_o = dev_alloc(n * 2);
		ft_bf16 *g_do = up_b(dout, n), *g_dg = up_b(dg, n), *g_du = up_b(du, n);
		ft_cuda_swiglu_fwd_bf16(g_o, g_g, g_u, n);
		ft_cuda_swiglu_bwd_bf16(g_dg, g_du, g_do, g_g, g_u, n);
		fails += check("swiglu bf16 out", down_b(g_o, n), r_out, n, true);
		fails += check("  dgate", down_b(g_dg, n), r_dg, n, true);
		fails += check("  dup", down_b(g_du, n), r_du, n, true);
		ft_cuda_free(g_g), ft_cuda_free(g_u), ft_cuda_free(g_o);
		ft_cuda_free(g_do), ft_cuda_free(g_dg), ft_cuda_free(g_du);
	}
	free(gate), free(up), free(dout), free(dg), free(du), free(r_out), free(r_dg), free(r_du);
	return fails;
}

static int case_embedding(bool bf16)
{
	int N = 500, C = 384, V = 50, fails = 0; /* V small: ids repeat, atomics collide */
	int32_t *ids = ft_xmalloc((size_t)N * 4);
	for (int i = 0; i < N; i++)
		ids[i] = (int32_t)FT_MIN(V - 1, (int)((frand() + 1.0f) * 0.5f * (float)V));
	float *wte = rnd((size_t)V * C, 1), *dout = rnd((size_t)N * C, 1),
	      *dwte = rnd((size_t)V * C, 1);
	if (bf16) {
		round_bf16(wte, (size_t)V * C);
		round_bf16(dout, (size_t)N * C);
	}
	float *r_out = ft_xmalloc((size_t)N * C * 4), *r_dwte = dup_f(dwte, (size_t)V * C);
	cpu->embedding_fwd(r_out, ids, wte, N, C);
	cpu->embedding_bwd(r_dwte, dout, ids, N, C);
	int32_t *g_ids = up_i(ids, N);
	float *g_dwte = up_f(dwte, (size_t)V * C);
	if (!bf16) {
		float *g_wte = up_f(wte, (size_t)V * C), *g_out = dev_alloc((size_t)N * C * 4);
		float *g_dout = up_f(dout, (size_t)N * C);
		ft_cuda_embedding_fwd(g_out, g_ids, g_wte, N, C);
		ft_cuda_embedding_bwd(g_dwte, g_dout, g_ids, N, C);
		fails += check("embedding f32 fwd", down_f(g_out, (size_t)N * C), r_out,
			       (size_t)N * C, false);
		ft_cuda_free(g_wte), ft_cuda_free(g_out), ft_cuda_free(g_dout);
	} else {
		ft_bf16 *g_wte = up_b(wte, (size_t)V * C), *g_out = dev_alloc((size_t)N * C * 2);
		ft_bf16 *g_dout = up_b(dout, (size_t)N * C);
		ft_cuda_embedding_fwd_bf16(g_out, g_ids, g_wte, N, C);
		ft_cuda_embedding_bwd_bf16(g_dwte, g_dout, g_ids, N, C);
		fails += check("embedding bf16 fwd", down_b(g_out, (size_t)N * C), r_out,
			       (size_t)N * C, true);
		ft_cuda_free(g_wte), ft_cuda_free(g_out), ft_cuda_free(g_dout);
	}
	fails += check("  dwte", down_f(g_dwte, (size_t)V * C), r_dwte, (size_t)V * C, bf16);
	ft_cuda_free(g_ids), ft_cuda_free(g_dwte);
	free(ids), free(wte), free(dout), free(dwte), free(r_out), free(r_dwte);
	return fails;
}

static int case_cross_entropy(bool bf16)
{
	int N = 12, V = sim ? 5000 : 128256, fails = 0; /* Llama 3's vocabulary */
	size_t n = (size_t)N * V;
	float *logits = rnd(n, 8);
	if (bf16)
		round_bf16(logits, n);
	int32_t *tgt = ft_xmalloc((size_t)N * 4);
	for (int i = 0; i < N; i++)
		tgt[i] = i % 4 == 3 ? FT_IGNORE_INDEX
				    : (int32_t)((unsigned)(i * 7919 + 13) % (unsigned)V);
	/* one row whose target is its argmax, so n_correct is not trivially 0 */
	logits[(size_t)1 * V + tgt[1]] = 40.0f;
	float gs = 1.0f / 9.0f; /* 9 trained rows */
	struct ft_ce_stats r = { 0, 0, 0 }, g = { 0, 0, 0 };
	float *ref = dup_f(logits, n);
	cpu->cross_entropy(ref, tgt, N, V, gs, &r);
	int32_t *g_tgt = up_i(tgt, N);
	if (!bf16) {
		float *g_l = up_f(logits, n);
		ft_cuda_cross_entropy(g_l, g_tgt, N, V, gs, &g);
		fails += check("cross-entropy f32 dlogits", down_f(g_l, n), ref, n, false);
		ft_cuda_free(g_l);
	} else {
		ft_bf16 *g_l = up_b(logits, n);
		ft_cuda_cross_entropy_bf16(g_l, g_tgt, N, V, gs, &g);
		fails += check("cross-entropy bf16 dlogits", down_b(g_l, n), ref, n, true);
		ft_cuda_free(g_l);
	}
	/* evaluation (grad_scale 0): same statistics, logits untouched */
	struct ft_ce_stats ge = { 0, 0, 0 };
	if (!bf16) {
		float *g_l = up_f(logits, n);
		ft_cuda_cross_entropy(g_l, g_tgt, N, V, 0.0f, &ge);
		fails += check("  eval leaves logits", down_f(g_l, n), logits, n, false);
		ft_cuda_free(g_l);
		bool same = fabs(ge.loss_sum - g.loss_sum) <= 1e-9 * fabs(g.loss_sum) &&
			    ge.n_tokens == g.n_tokens && ge.n_correct == g.n_correct;
		printf("  %-34s %s\n", "  eval stats = training stats", same ? "ok" : "FAIL");
		fails += !same;
	}
	double rel = fabs(g.loss_sum - r.loss_sum) / fabs(r.loss_sum);
	bool ok = rel <= (bf16 ? 1e-2 : 1e-5) && g.n_tokens == r.n_tokens &&
		  (bf16 || g.n_correct == r.n_correct);
	printf("  %-34s loss %.6f vs %.6f (rel %.2g), tokens %ld/%ld, correct %ld/%ld %s\n",
	       "  stats", g.loss_sum, r.loss_sum, rel, g.n_tokens, r.n_tokens, g.n_correct,
	       r.n_correct, ok ? "ok" : "FAIL");
	fails += !ok;
	ft_cuda_free(g_tgt);
	free(logits), free(tgt), free(ref);
	return fails;
}

static int att_case(bool bf16, int B, int T, int nh, int nkv, int hd, int window)
{
	int fails = 0;
	size_t nq = (size_t)B * T * nh * hd, nk = (size_t)B * T * nkv * hd, nl = (size_t)B * nh * T;
	float *q = rnd(nq, 1), *k = rnd(nk, 1), *v = rnd(nk, 1), *dout = rnd(nq, 1);
	float *dq = rnd(nq, 1), *dk = rnd(nk, 1), *dv = rnd(nk, 1);
	if (bf16) {
		round_bf16(q, nq), round_bf16(k, nk), round_bf16(v, nk), round_bf16(dout, nq);
		round_bf16(dq, nq), round_bf16(dk, nk), round_bf16(dv, nk);
	}
	/* packed documents: row b holds documents of lengths T/3, T/2, rest */
	int32_t *doc = ft_xmalloc((size_t)B * T * 4);
	for (int b = 0; b < B; b++)
		for (int t = 0; t < T; t++)
			doc[b * T + t] = b == 0 ? (t < T / 3 ? 0 : t < T / 3 + T / 2 ? 1 : 2) : 0;
	float *r_out = ft_xmalloc(nq * 4), *r_lse = ft_xmalloc(nl * 4);
	float *r_dq = dup_f(dq, nq), *r_dk = dup_f(dk, nk), *r_dv = dup_f(dv, nk);
	cpu->attention_fwd(r_out, r_lse, q, k, v, doc, window, B, T, nh, nkv, hd);
	cpu->attention_bwd(r_dq, r_dk, r_dv, dout, r_lse, q, k, v, doc, window, B, T, nh, nkv, hd);
	int32_t *g_doc = up_i(doc, (size_t)B * T);
	float *g_lse = dev_alloc(nl * 4);
	char name[96];
	snprintf(name, sizeof(name), "attention %s T=%d %d/%d hd=%d W=%d out",
		 bf16 ? "bf16" : "f32", T, nh, nkv, hd, window);
	if (!bf16) {
		float *g_q = up_f(q, nq), *g_k = up_f(k, nk), *g_v = up_f(v, nk);
		float *g_o = dev_alloc(nq * 4), *g_do = up_f(dout, nq), *g_dq = up_f(dq, nq);
		float *g_dk = up_f(dk, nk), *g_dv = up_f(dv, nk);
		ft_cuda_attention_fwd(g_o, g_lse, g_q, g_k, g_v, g_doc, window, B, T, nh, nkv, hd);
		ft_cuda_attention_bwd(g_dq, g_dk, g_dv, g_do, g_lse, g_q, g_k, g_v, g_doc, window,
				      B, T, nh, nkv, hd);
		fails += check(name, down_f(g_o, nq), r_out, nq, false);
		fails += check("  lse", down_f(g_lse, nl), r_lse, nl, false);
		fails += check("  dq", down_f(g_dq, nq), r_dq, nq, false);
		fails += check("  dk", down_f(g_dk, nk), r_dk, nk, false);
		fails += check("  dv", down_f(g_dv, nk), r_dv, nk, false);
		ft_cuda_free(g_q), ft_cuda_free(g_k), ft_cuda_free(g_v), ft_cuda_free(g_o);
		ft_cuda_free(g_do), ft_cuda_free(g_dq), ft_cuda_free(g_dk), ft_cuda_free(g_dv);
	} else {
		ft_bf16 *g_q = up_b(q, nq), *g_k = up_b(k, nk), *g_v = up_b(v, nk);
		ft_bf16 *g_o = dev_alloc(nq * 2), *g_do = up_b(dout, nq), *g_dq = up_b(dq, nq);
		ft_bf16 *g_dk = up_b(dk, nk), *g_dv = up_b(dv, nk);
		ft_cuda_attention_fwd_bf16(g_o, g_lse, g_q, g_k, g_v, g_doc, window, B, T, nh, nkv,
					   hd);
		ft_cuda_attention_bwd_bf16(g_dq, g_dk, g_dv, g_do, g_lse, g_q, g_k, g_v, g_doc,
					   window, B, T, nh, nkv, hd);
		fails += check(name, down_b(g_o, nq), r_out, nq, true);
		fails += check("  lse", down_f(g_lse, nl), r_lse, nl, true);
		fails += check("  dq", down_b(g_dq, nq), r_dq, nq, true);
		fails += check("  dk", down_b(g_dk, nk), r_dk, nk, true);
		fails += check("  dv", down_b(g_dv, nk), r_dv, nk, true);
		ft_cuda_free(g_q), ft_cuda_free(g_k), ft_cuda_free(g_v), ft_cuda_free(g_o);
		ft_cuda_free(g_do), ft_cuda_free(g_dq), ft_cuda_free(g_dk), ft_cuda_free(g_dv);
	}
	ft_cuda_free(g_doc), ft_cuda_free(g_lse);
	free(q), free(k), free(v), free(dout), free(dq), free(dk), free(dv), free(doc);
	free(r_out), free(r_lse), free(r_dq), free(r_dk), free(r_dv);
	return fails;
}

static int case_attention(bool bf16)
{
	int fails = 0;
	if (sim)
		return att_case(bf16, 2, 64, 4, 2, 32, 0) + att_case(bf16, 1, 100, 2, 1, 40, 30) +
		       att_case(bf16, 1, 50, 2, 1, 32, 1) + att_case(bf16, 1, 40, 2, 2, 160, 0);
	fails += att_case(bf16, 2, 256, 8, 2, 64, 0); /* GQA 4:1, doc mask */
	fails += att_case(bf16, 2, 256, 8, 2, 64, 50); /* + sliding window */
	fails += att_case(bf16, 1, 1024, 4, 1, 128, 0); /* Llama head dim, MQA */
	fails += att_case(bf16, 1, 1024, 4, 2, 128, 300);
	fails += att_case(bf16, 1, 100, 2, 2, 40, 0); /* odd sizes: T % 32, hd % 32 != 0 */
	fails += att_case(bf16, 1, 100, 2, 1, 64, 1); /* window 1: each query sees itself */
	return fails;
}

static int case_adamw(void)
{
	size_t n = 100003;
	int fails = 0;
	float *p = rnd(n, 1), *g = rnd(n, 0.1f), *m = rnd(n, 0.01f), *v = rnd(n, 0.01f);
	for (size_t i = 0; i < n; i++)
		v[i] = fabsf(v[i]);
	struct ft_adamw_args a = { 1e-3, 0.9, 0.999, 1e-8, 0.01, 7 };
	float *rp = dup_f(p, n), *rm = dup_f(m, n), *rv = dup_f(v, n);
	cpu->adamw(rp, g, rm, rv, n, &a);
	float *gp = up_f(p, n), *gg = up_f(g, n), *gm = up_f(m, n), *gv = up_f(v, n);
	ft_bf16 *copy = dev_alloc(n * 2);
	ft_cuda_adamw_bf16copy(gp, gg, gm, gv, n, &a, copy);
	fails += check("adamw param", down_f(gp, n), rp, n, false);
	fails += check("  m", down_f(gm, n), rm, n, false);
	fails += check("  v", down_f(gv, n), rv, n, false);
	float *rb = dup_f(rp, n);
	round_bf16(rb, n);
	fails += check("  bf16 copy", down_b(copy, n), rb, n, true);
	/* global norm and scale */
	double r_ss = cpu->sumsq(g, n), g_ss = ft_cuda_sumsq(gg, n);
	bool ok = fabs(g_ss - r_ss) <= 1e-9 * r_ss;
	printf("  %-34s %.12g vs %.12g %s\n", "sumsq (double)", g_ss, r_ss, ok ? "ok" : "FAIL");
	fails += !ok;
	cpu->scale(g, n, 0.37f);
	ft_cuda_scale(gg, n, 0.37f);
	fails += check("scale", down_f(gg, n), g, n, false);
	ft_cuda_free(gp), ft_cuda_free(gg), ft_cuda_free(gm), ft_cuda_free(gv), ft_cuda_free(copy);
	free(p), free(g), free(m), free(v), free(rp), free(rm), free(rv), free(rb);
	return fails;
}

/* NF4: the reference is the format's definition written out on the host. */
static int case_nf4(void)
{
	size_t n = 64 * 1000, nb = n / FT_NF4_BLOCK, nb2 = (nb + FT_NF4_BLOCK2 - 1) / FT_NF4_BLOCK2;
	int fails = 0;
	uint8_t *packed = ft_xmalloc(n / 2), *qabs = ft_xmalloc(nb);
	float *absmax = ft_xmalloc(nb * 4), *code2 = ft_xmalloc(256 * 4),
	      *abs2 = ft_xmalloc(nb2 * 4);
	for (size_t i = 0; i < n / 2; i++)
		packed[i] = (uint8_t)((frand() + 1.0f) * 128.0f);
	for (size_t b = 0; b < nb; b++) {
		absmax[b] = fabsf(frand()) * 0.1f;
		qabs[b] = (uint8_t)((frand() + 1.0f) * 128.0f);
	}
	for (int c = 0; c < 256; c++)
		code2[c] = (float)(c - 128) / 128.0f;
	for (size_t b = 0; b < nb2; b++)
		abs2[b] = 0.05f + fabsf(frand()) * 0.01f;
	float offset = 0.031f;
	float *ref = ft_xmalloc(n * 4), *ref_dq = ft_xmalloc(n * 4);
	for (size_t i = 0; i < n; i++) {
		int code = i % 2 == 0 ? packed[i / 2] >> 4 : packed[i / 2] & 15;
		size_t b = i / FT_NF4_BLOCK;
		ref[i] = ft_nf4_codebook[code] * absmax[b];
		ref_dq[i] =
			ft_nf4_codebook[code] * (code2[qabs[b]] * abs2[b / FT_NF4_BLOCK2] + offset);
	}
	uint8_t *g_packed = dev_alloc(n / 2), *g_qabs = dev_alloc(nb);
	float *g_abs = up_f(absmax, nb), *g_code2 = up_f(code2, 256), *g_abs2 = up_f(abs2, nb2);
	ft_cuda_upload(g_packed, packed, n / 2);
	ft_cuda_upload(g_qabs, qabs, nb);
	float *g_f = dev_alloc(n * 4);
	ft_bf16 *g_b = dev_alloc(n * 2);
	ft_cuda_nf4_dequant_f32(g_f, g_packed, g_abs, n);
	fails += check("nf4 dequant f32", down_f(g_f, n), ref, n, false);
	ft_cuda_nf4_dequant_bf16(g_b, g_packed, g_abs, n);
	fails += check("nf4 dequant bf16", down_b(g_b, n), ref, n, true);
	ft_cuda_nf4_dequant_dq_bf16(g_b, g_packed, g_qabs, g_code2, g_abs2, offset, n);
	fails += check("nf4 dequant double-quant bf16", down_b(g_b, n), ref_dq, n, true);
	ft_cuda_free(g_packed), ft_cuda_free(g_qabs), ft_cuda_free(g_abs), ft_cuda_free(g_code2);
	ft_cuda_free(g_abs2), ft_cuda_free(g_f), ft_cuda_free(g_b);
	free(packed), free(qabs), free(absmax), free(code2), free(abs2), free(ref), free(ref_dq);
	return fails;
}

/* The other flag combinations: no bias, out overwritten (accumulate false,
 * out starts as garbage), backward with only dinp (frozen weight, no bias). */
static int case_matmul_plain(void)
{
	int N = 33, IC = 64, OC = 48, fails = 0;
	float *inp = rnd((size_t)N * IC, 1), *w = rnd((size_t)OC * IC, 0.1f);
	float *dout = rnd((size_t)N * OC, 1), *dinp = rnd((size_t)N * IC, 1);
	float *r_out = ft_xmalloc((size_t)N * OC * 4), *r_dinp = dup_f(dinp, (size_t)N * IC);
	cpu->matmul_fwd(r_out, inp, w, NULL, N, IC, OC, false);
	cpu->matmul_bwd(r_dinp, NULL, NULL, dout, inp, w, N, IC, OC);
	float *g_inp = up_f(inp, (size_t)N * IC), *g_w = up_f(w, (size_t)OC * IC);
	float *g_out = dev_alloc((size_t)N * OC * 4), *g_dout = up_f(dout, (size_t)N * OC);
	float *g_dinp = up_f(dinp, (size_t)N * IC);
	ft_cuda_memset(g_out, 0xff, (size_t)N * OC * 4); /* NaN: must be overwritten */
	ft_cuda_matmul_fwd(g_out, g_inp, g_w, NULL, N, IC, OC, false);
	ft_cuda_matmul_bwd(g_dinp, NULL, NULL, g_dout, g_inp, g_w, N, IC, OC);
	fails += check("matmul f32 no bias, overwrite", down_f(g_out, (size_t)N * OC), r_out,
		       (size_t)N * OC, false);
	fails +=
		check("  dinp only", down_f(g_dinp, (size_t)N * IC), r_dinp, (size_t)N * IC, false);
	ft_cuda_free(g_inp), ft_cuda_free(g_w), ft_cuda_free(g_out), ft_cuda_free(g_dout);
	ft_cuda_free(g_dinp);
	free(inp), free(w), free(dout), free(dinp), free(r_out), free(r_dinp);
	return fails;
}

/* The QLoRA linear: the CPU backend's NF4 ops against ours on a weight
 * quantised by ft_nf4_quantize (with and without double quantisation),
 * the struct's arrays copied to the device. OC is larger than one slice
 * of rows only on a GPU (SCRATCH_ELEMS / IC rows per slice). */
static int case_matmul_nf4_one(bool nested, int N, int IC, int OC)
{
	int fails = 0;
	float *w = rnd((size_t)OC * IC, 0.1f), *inp = rnd((size_t)N * IC, 1), *b = rnd(OC, 1);
	float *dout = rnd((size_t)N * OC, 1), *dinp = rnd((size_t)N * IC, 1);
	size_t bytes = ft_nf4_layout(OC, IC, nested);
	void *mem = aligned_alloc(16, bytes);
	struct ft_nf4 q;
	struct ft_err err;
	ft_nf4_point(&q, mem, OC, IC, nested);
	FT_ASSERT(ft_nf4_quantize(&q, w, &err) == FT_OK);
	float *r_out = ft_xmalloc((size_t)N * OC * 4), *r_dinp = dup_f(dinp, (size_t)N * IC);
	cpu->matmul_nf4_fwd(r_out, inp, &q, b, N, IC, OC);
	cpu->matmul_nf4_bwd_input(r_dinp, dout, &q, N, IC, OC);
	/* the same struct with device arrays (one block, same offsets) */
	uint8_t *g_mem = dev_alloc(bytes);
	ft_cuda_upload(g_mem, mem, bytes);
	struct ft_nf4 g = q;
	g.packed = g_mem + (q.packed - (uint8_t *)mem);
	g.absmax = q.absmax ? (float *)(g_mem + ((uint8_t *)q.absmax - (uint8_t *)mem)) : NULL;
	g.qabsmax = q.qabsmax ? g_mem + (q.qabsmax - (uint8_t *)mem) : NULL;
	g.nested_absmax = q.nested_absmax
				  ? (float *)(g_mem + ((uint8_t *)q.nested_absmax - (uint8_t *)mem))
				  : NULL;
	float *g_code2 = up_f(ft_nf4_dynamic_map, 256);
	g.code2 = g_code2;
	float *g_inp = up_f(inp, (size_t)N * IC), *g_b = up_f(b, OC);
	float *g_out = dev_alloc((size_t)N * OC * 4), *g_dout = up_f(dout, (size_t)N * OC);
	float *g_dinp = up_f(dinp, (size_t)N * IC);
	ft_cuda_memset(g_out, 0xff, (size_t)N * OC * 4); /* NaN: must be overwritten */
	ft_cuda_matmul_nf4_fwd(g_out, g_inp, &g, g_b, N, IC, OC);
	ft_cuda_matmul_nf4_bwd_input(g_dinp, g_dout, &g, N, IC, OC);
	char name[80];
	snprintf(name, sizeof(name), "matmul nf4%s %dx%dx%d out", nested ? " double-quant" : "", N,
		 IC, OC);
	fails += check(name, down_f(g_out, (size_t)N * OC), r_out, (size_t)N * OC, false);
	fails += check("  dinp", down_f(g_dinp, (size_t)N * IC), r_dinp, (size_t)N * IC, false);
	ft_cuda_free(g_mem), ft_cuda_free(g_code2), ft_cuda_free(g_inp);
	ft_cuda_free(g_b), ft_cuda_free(g_out), ft_cuda_free(g_dout), ft_cuda_free(g_dinp);
	free(w), free(inp), free(b), free(dout), free(dinp), free(mem), free(r_out), free(r_dinp);
	return fails;
}

static int case_matmul_nf4(void)
{
	return case_matmul_nf4_one(false, 37, 128, 72) + case_matmul_nf4_one(true, 40, 320, 264) +
	       (sim ? 0 : case_matmul_nf4_one(true, 256, 4096, 4096));
}

static int case_matmul_all(void)
{
	if (case_matmul_plain())
		return 1;
	return case_matmul(false, 64, 256, 192) + case_matmul(false, 37, 100, 77) +
	       case_matmul(true, 64, 256, 192) + case_matmul(true, 40, 96, 72);
}

#define BOTH(f)                            \
	static int f##_all(void)           \
	{                                  \
		return f(false) + f(true); \
	}
BOTH(case_rmsnorm)
BOTH(case_rope)
BOTH(case_swiglu)
BOTH(case_embedding)
BOTH(case_cross_entropy)
BOTH(case_attention)

static const struct {
	const char *name;
	int (*fn)(void);
} cases[] = {
	{ "matmul", case_matmul_all },
	{ "rmsnorm", case_rmsnorm_all },
	{ "rope", case_rope_all },
	{ "swiglu", case_swiglu_all },
	{ "embedding", case_embedding_all },
	{ "cross_entropy", case_cross_entropy_all },
	{ "attention", case_attention_all },
	{ "adamw", case_adamw },
	{ "nf4", case_nf4 },
	{ "matmul_nf4", case_matmul_nf4 },
};

int main(int argc, char **argv)
{
	struct ft_err err;
	ft_err_clear(&err);
	if (!ft_backend_cuda(&err)) { /* err: "no CUDA device (<the driver's reason>)" */
		printf("SKIP: %s\n", err.msg);
		return 77;
	}
	cpu = ft_backend_cpu();
	sim = getenv("FT_CUDA_SIM") != NULL;
	int failed = 0, ran = 0;
	for (size_t i = 0; i < FT_ARRAY_LEN(cases); i++) {
		if (argc > 1 && strcmp(argv[1], cases[i].name) != 0)
			continue;
		printf("%s\n", cases[i].name);
		int f = cases[i].fn();
		ran++;
		failed += f != 0;
	}
	if (ran == 0) {
		fprintf(stderr, "test_cuda_kernels: unknown case \"%s\"\n", argv[1]);
		return 2;
	}
	ft_cuda_release();
	printf("%d of %d cases failed\n", failed, ran);
	return failed ? 1 : 0;
}
