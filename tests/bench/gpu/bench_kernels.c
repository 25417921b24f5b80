/*
 * bench_kernels.c - each CUDA backend op at Llama-3.1-8B shapes (bf16
 * storage), timed on the GPU and set against the H100 SXM's peaks: 989
 * TFLOP/s dense bf16 for the GEMMs and attention, 3.35 TB/s HBM3 for the
 * memory-bound ops. Prints milliseconds per call and the fraction of the
 * peak reached. Never fails on timing; without a device it prints SKIP and
 * exits 0. Not part of the test suite.
 *
 * Shapes: tokens n = B x T = 4 x 2048 = 8192, hidden 4096, MLP 14336,
 * 32 heads / 8 kv heads of 128, vocabulary 128256; attention at B 1, T 4096.
 * FLOPs: a [n, k] x [k, m] GEMM is 2nkm; causal attention forward
 * 2 * 2 * B * nh * T^2 * hd / 2 (QK^T and PV, half the square), backward
 * 2.5 x the forward (the usual flash-attention count: dq, dk, dv and the
 * recomputed scores). Bytes: what each op must read and write once.
 *
 * Run: build/tests/bench_gpu_kernels [iterations]   (default 20)
 */
#include "ft/backend_cuda.h"

#include <time.h>

#define PEAK_FLOPS 989e12
#define PEAK_BYTES 3.35e12

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void *dalloc(size_t bytes)
{
	struct ft_err err;
	ft_err_clear(&err);
	void *p = ft_cuda_alloc(bytes, &err);
	if (!p) {
		fprintf(stderr, "bench_kernels: %s\n", err.msg);
		exit(1);
	}
	ft_cuda_memset(p, 0, bytes); /* zeros: finite inputs for every op */
	return p;
}

static int iters = 20;

static void report(const char *name, double sec, double flops, double bytes)
{
	double ms = sec / iters * 1e3;
	printf("%-44s %9.3f ms", name, ms);
	if (flops > 0)
		printf("  %7.1f TFLOP/s  %5.1f%% of bf16 peak", flops / (sec / iters) / 1e12,
		       100.0 * flops / (sec / iters) / PEAK_FLOPS);
	if (bytes > 0)
		printf("  %7.0f GB/s  %5.1f%% of HBM peak", bytes / (sec / iters) / 1e9,
		       100.0 * bytes / (sec / iters) / PEAK_BYTES);
	printf("\n");
}

#define TIME(name, flops, bytes, call)                   \
	do {                                             \
		call; /* warm-up */                      \
		ft_cuda_sync();                          \
		double t0_ = now();                      \
		for (int it_ = 0; it_ < iters; it_++)    \
			call;                            \
		ft_cuda_sync();                          \
		report(name, now() - t0_, flops, bytes); \
	} while (0)

int main(int argc, char **argv)
{
	struct ft_err err;
	ft_err_clear(&err);
	if (!ft_backend_cuda(&err)) {
		printf("SKIP: %s\n", err.msg);
		return 0;
	}
	if (argc > 1)
		iters = atoi(argv[1]) > 0 ? atoi(argv[1]) : iters;
	const size_t n = 8192, C = 4096, I = 14336, V = 128256;
	const int nh = 32, nkv = 8, hd = 128, T = 4096;

	ft_bf16 *x = dalloc(n * I * 2), *w = dalloc(I * C * 2), *y = dalloc(n * I * 2);
	ft_bf16 *u = dalloc(n * I * 2), *xd = dalloc(n * C * 2);
	float *dw = dalloc(I * C * 4);
	TIME("matmul fwd bf16 [8192,4096]x[4096,14336]", 2.0 * n * C * I, 0,
	     ft_cuda_matmul_fwd_bf16(y, x, w, NULL, (int)n, (int)C, (int)I, false));
	TIME("matmul bwd bf16 (dinp + dw fp32)", 4.0 * n * C * I, 0,
	     ft_cuda_matmul_bwd_bf16(xd, dw, NULL, y, x, w, (int)n, (int)C, (int)I));

	float *rstd = dalloc(n * 4), *dwn = dalloc(C * 4);
	TIME("rmsnorm fwd bf16 [8192,4096]", 0, 2.0 * n * C * 2,
	     ft_cuda_rmsnorm_fwd_bf16(y, rstd, x, w, (int)n, (int)C, 1e-5f));
	TIME("rmsnorm+residual fwd bf16", 0, 4.0 * n * C * 2,
	     ft_cuda_rmsnorm_residual_fwd_bf16(y, y + n * C, rstd, x, x + n * C, w, (int)n, (int)C,
					       1e-5f));
	TIME("rmsnorm bwd bf16 (dinp + dw)", 0, 4.0 * n * C * 2,
	     ft_cuda_rmsnorm_bwd_bf16(xd, dwn, y, x, w, rstd, (int)n, (int)C));
	TIME("swiglu fwd bf16 [8192,14336]", 0, 3.0 * n * I * 2,
	     ft_cuda_swiglu_fwd_bf16(y, x, u, n * I));
	TIME("swiglu bwd bf16", 0, 7.0 * n * I * 2, ft_cuda_swiglu_bwd_bf16(x, u, y, x, u, n * I));

	/* attention: q [T, nh*hd], k, v [T, nkv*hd], B = 1 */
	ft_bf16 *q = dalloc((size_t)T * nh * hd * 2), *k = dalloc((size_t)T * nkv * hd * 2);
	ft_bf16 *v = dalloc((size_t)T * nkv * hd * 2), *o = dalloc((size_t)T * nh * hd * 2);
	ft_bf16 *dq = dalloc((size_t)T * nh * hd * 2), *dk = dalloc((size_t)T * nkv * hd * 2);
	ft_bf16 *dv = dalloc((size_t)T * nkv * hd * 2);
	float *lse = dalloc((size_t)nh * T * 4);
	int32_t *doc = dalloc((size_t)T * 4);
	double att_flops = 2.0 * 2.0 * nh * (double)T * T * hd / 2.0;
	TIME("attention fwd bf16 T=4096 32/8x128 causal", att_flops, 0,
	     ft_cuda_attention_fwd_bf16(o, lse, q, k, v, doc, 0, 1, T, nh, nkv, hd));
	TIME("attention bwd bf16", 2.5 * att_flops, 0,
	     ft_cuda_attention_bwd_bf16(dq, dk, dv, o, lse, q, k, v, doc, 0, 1, T, nh, nkv, hd));

	/* cross-entropy over a chunk of 2048 rows x 128256 (read + write in place) */
	const size_t rows = 2048;
	ft_bf16 *logits = dalloc(rows * V * 2);
	int32_t *tg = dalloc(rows * 4);
	struct ft_ce_stats st = { 0, 0, 0 };
	TIME("cross-entropy bf16 [2048,128256] + grad", 0, 3.0 * rows * V * 2,
	     ft_cuda_cross_entropy_bf16(logits, tg, (int)rows, (int)V, 1.0f, &st));

	/* AdamW over LoRA r16 all-linear on 8B: 41,943,040 parameters */
	const size_t np = 41943040;
	float *p = dalloc(np * 4), *g = dalloc(np * 4), *m = dalloc(np * 4), *vv = dalloc(np * 4);
	ft_bf16 *pc = dalloc(np * 2);
	struct ft_adamw_args a = { 1e-4, 0.9, 0.999, 1e-8, 0.0, 1 };
	TIME("adamw fp32 + bf16 copy, 41.9M params", 0, np * (4.0 * 4 + 3.0 * 4 + 2),
	     ft_cuda_adamw_bf16copy(p, g, m, vv, np, &a, pc));
	TIME("sumsq fp32, 41.9M", 0, np * 4.0, (void)ft_cuda_sumsq(g, np));

	/* NF4 dequantisation of one 14336 x 4096 MLP weight */
	uint8_t *packed = dalloc(I * C / 2);
	float *absmax = dalloc(I * C / 64 * 4);
	TIME("nf4 dequant -> bf16, 14336x4096", 0, I * C * (0.5 + 2.0 + 4.0 / 64),
	     ft_cuda_nf4_dequant_bf16(w, packed, absmax, I * C));
	ft_cuda_release();
	return 0;
}
