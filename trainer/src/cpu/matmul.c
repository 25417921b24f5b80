/*
 * matmul.c - the linear layer, and the one GEMM everything heavy runs on.
 *
 * Math (torch.nn.Linear, weight w[OC,IC]):
 *   forward   out[n,o]  = sum_i inp[n,i] w[o,i] + bias[o]
 *   backward  dinp[n,i] += sum_o dout[n,o] w[o,i]
 *             dw[o,i]   += sum_n dout[n,o] inp[n,i]
 *             dbias[o]  += sum_n dout[n,o]
 * Each is one call of C[M,N] (+)= op(A)[M,K] op(B)[K,N]:
 *   forward: A = inp,        B = w^T   (M=N rows, N=OC, K=IC)
 *   dinp:    A = dout,       B = w     (M=N rows, N=IC, K=OC)
 *   dw:      A = dout^T,     B = inp   (M=OC,     N=IC, K=N rows)
 *
 * The GEMM (the BLIS/GotoBLAS shape, kept small):
 *   - C is cut into tiles of mt x NC (mt a multiple of MC, as large as
 *     leaves about two tasks per thread); each tile is one task of the
 *     thread pool, so every element of C is owned by one thread and is
 *     summed in a fixed order (K in chunks of KC, in increasing order):
 *     results do not depend on scheduling (nor on mt);
 *   - per K chunk the task packs its block of B into panels of NR columns
 *     once, then for each MC-row block packs A into panels of MR rows
 *     (k-major), so the micro-kernel streams both from contiguous memory
 *     whatever the transposition of the operands;
 *   - the micro-kernel keeps an MR x NR block of C in registers (6 x 2
 *     vectors: 6 x 32 floats with AVX-512, 6 x 16 otherwise) and does one
 *     broadcast-multiply-add per element of A per k: GCC vector extensions,
 *     so it becomes AVX-512 or AVX2/FMA with -march=native and SSE without.
 * Packing buffers are per thread and kept between calls.
 */
#include "cpu_int.h"

/* VW floats per vector: 16 with AVX-512, else 8 (AVX2, or two SSE halves). */
#if defined(__AVX512F__)
#define VW 16
#else
#define VW 8
#endif
#define MR 6
#define NR (2 * VW)
#define MC 96
#define NC 256
#define KC 256

typedef float vf __attribute__((vector_size(VW * 4)));

struct gemm {
	int M, N, K;
	const float *a, *b;
	int lda, ldb;
	bool ta, tb;
	float *c;
	int ldc;
	bool accumulate;
	int tiles_n;
	int mt; /* rows of C per task (a multiple of MC) */
};

static _Thread_local float *t_apack, *t_bpack;

/* apack: for each panel of MR rows, kc x MR floats, k-major; zero padded. */
static void pack_a(const struct gemm *g, float *ap, int i0, int mc, int k0, int kc)
{
	for (int ip = 0; ip < mc; ip += MR) {
		int mr = FT_MIN(MR, mc - ip);
		if (!g->ta) {
			for (int r = 0; r < MR; r++) {
				if (r < mr) {
					const float *src =
						g->a + (size_t)(i0 + ip + r) * g->lda + k0;
					for (int k = 0; k < kc; k++)
						ap[k * MR + r] = src[k];
				} else {
					for (int k = 0; k < kc; k++)
						ap[k * MR + r] = 0.0f;
				}
			}
		} else {
			for (int k = 0; k < kc; k++) {
				const float *src = g->a + (size_t)(k0 + k) * g->lda + i0 + ip;
				for (int r = 0; r < MR; r++)
					ap[k * MR + r] = r < mr ? src[r] : 0.0f;
			}
		}
		ap += (size_t)kc * MR;
	}
}

/* bpack: for each panel of NR columns, kc x NR floats, k-major; zero padded. */
static void pack_b(const struct gemm *g, float *bp, int j0, int nc, int k0, int kc)
{
	for (int jp = 0; jp < nc; jp += NR) {
		int nr = FT_MIN(NR, nc - jp);
		if (!g->tb) {
			for (int k = 0; k < kc; k++) {
				const float *src = g->b + (size_t)(k0 + k) * g->ldb + j0 + jp;
				float *dst = bp + (size_t)k * NR;
				if (nr == NR) {
					memcpy(dst, src, NR * sizeof(float));
				} else {
					for (int j = 0; j < NR; j++)
						dst[j] = j < nr ? src[j] : 0.0f;
				}
			}
		} else {
			for (int j = 0; j < NR; j++) {
				if (j < nr) {
					const float *src =
						g->b + (size_t)(j0 + jp + j) * g->ldb + k0;
					for (int k = 0; k < kc; k++)
						bp[(size_t)k * NR + j] = src[k];
				} else {
					for (int k = 0; k < kc; k++)
						bp[(size_t)k * NR + j] = 0.0f;
				}
			}
		}
		bp += (size_t)kc * NR;
	}
}

/* c_out[MR][NR] = sum_k ap[k][:] (x) bp[k][:] */
static void micro_kernel(int kc, const float *restrict ap, const float *restrict bp,
			 float c_out[MR][NR])
{
	vf c00 = { 0 }, c01 = { 0 }, c10 = { 0 }, c11 = { 0 }, c20 = { 0 }, c21 = { 0 };
	vf c30 = { 0 }, c31 = { 0 }, c40 = { 0 }, c41 = { 0 }, c50 = { 0 }, c51 = { 0 };
	for (int k = 0; k < kc; k++) {
		vf b0, b1;
		memcpy(&b0, bp, sizeof b0);
		memcpy(&b1, bp + VW, sizeof b1);
		c00 += ap[0] * b0;
		c01 += ap[0] * b1;
		c10 += ap[1] * b0;
		c11 += ap[1] * b1;
		c20 += ap[2] * b0;
		c21 += ap[2] * b1;
		c30 += ap[3] * b0;
		c31 += ap[3] * b1;
		c40 += ap[4] * b0;
		c41 += ap[4] * b1;
		c50 += ap[5] * b0;
		c51 += ap[5] * b1;
		ap += MR;
		bp += NR;
	}
	const vf *acc[MR][2] = { { &c00, &c01 }, { &c10, &c11 }, { &c20, &c21 },
				 { &c30, &c31 }, { &c40, &c41 }, { &c50, &c51 } };
	for (int r = 0; r < MR; r++) {
		memcpy(&c_out[r][0], acc[r][0], sizeof(vf));
		memcpy(&c_out[r][VW], acc[r][1], sizeof(vf));
	}
}

static void gemm_tile(void *ctx, int t)
{
	const struct gemm *g = ctx;
	int i0 = (t / g->tiles_n) * g->mt, j0 = (t % g->tiles_n) * NC;
	int mt = FT_MIN(g->mt, g->M - i0), nc = FT_MIN(NC, g->N - j0);
	if (!t_apack) {
		t_apack = aligned_alloc(64, sizeof(float) * MC * KC);
		t_bpack = aligned_alloc(64, sizeof(float) * NC * KC);
		FT_ASSERT(t_apack && t_bpack);
	}
	if (g->K == 0) {
		for (int i = 0; i < mt && !g->accumulate; i++)
			memset(g->c + (size_t)(i0 + i) * g->ldc + j0, 0, sizeof(float) * nc);
		return;
	}
	for (int k0 = 0; k0 < g->K; k0 += KC) {
		int kc = FT_MIN(KC, g->K - k0);
		bool add = g->accumulate || k0 > 0;
		/* the B block is packed once per K chunk and serves all the
		 * task's MC-row blocks */
		pack_b(g, t_bpack, j0, nc, k0, kc);
		for (int ib = i0; ib < i0 + mt; ib += MC) {
			int mc = FT_MIN(MC, i0 + mt - ib);
			pack_a(g, t_apack, ib, mc, k0, kc);
			for (int jp = 0; jp < nc; jp += NR) {
				int nr = FT_MIN(NR, nc - jp);
				const float *bp = t_bpack + (size_t)(jp / NR) * kc * NR;
				for (int ip = 0; ip < mc; ip += MR) {
					int mr = FT_MIN(MR, mc - ip);
					float acc[MR][NR];
					micro_kernel(kc, t_apack + (size_t)(ip / MR) * kc * MR, bp,
						     acc);
					for (int r = 0; r < mr; r++) {
						float *crow = g->c +
							      (size_t)(ib + ip + r) * g->ldc + j0 +
							      jp;
						if (add)
							for (int j = 0; j < nr; j++)
								crow[j] += acc[r][j];
						else
							for (int j = 0; j < nr; j++)
								crow[j] = acc[r][j];
					}
				}
			}
		}
	}
}

void ft_cpu_sgemm(int M, int N, int K, const float *a, int lda, bool transA, const float *b,
		  int ldb, bool transB, float *c, int ldc, bool accumulate)
{
	if (M <= 0 || N <= 0)
		return;
	struct gemm g = { M, N, K, a, b, lda, ldb, transA, transB, c, ldc, accumulate, 0, 0 };
	g.tiles_n = (N + NC - 1) / NC;
	/* Rows per task: as many as leave about two tasks per thread, in whole
	 * MC blocks, so that a packed B block is reused as much as possible. */
	int want = 2 * ft_pool_threads(), row_tasks = (want + g.tiles_n - 1) / g.tiles_n;
	int rows = (M + row_tasks - 1) / row_tasks;
	g.mt = FT_MAX(MC, (rows + MC - 1) / MC * MC);
	int tiles = ((M + g.mt - 1) / g.mt) * g.tiles_n;
	ft_pool_run(gemm_tile, &g, tiles);
}

void ft_cpu_sgemm_serial(int M, int N, int K, const float *a, int lda, bool transA, const float *b,
			 int ldb, bool transB, float *c, int ldc, bool accumulate)
{
	if (M <= 0 || N <= 0)
		return;
	struct gemm g = { M, N, K, a, b, lda, ldb, transA, transB, c, ldc, accumulate, 0, 0 };
	g.tiles_n = (N + NC - 1) / NC;
	g.mt = (M + MC - 1) / MC * MC; /* one task per column block: B packed once */
	for (int t = 0; t < g.tiles_n; t++)
		gemm_tile(&g, t);
}

void ft_cpu_matmul_fwd(float *out, const float *inp, const float *w, const float *bias, int N,
		       int IC, int OC, bool accumulate)
{
	ft_cpu_sgemm(N, OC, IC, inp, IC, false, w, IC, true, out, OC, accumulate);
	if (bias)
		for (int n = 0; n < N; n++)
			for (int o = 0; o < OC; o++)
				out[(size_t)n * OC + o] += bias[o];
}

void ft_cpu_matmul_bwd(float *dinp, float *dw, float *dbias, const float *dout, const float *inp,
		       const float *w, int N, int IC, int OC)
{
	if (dinp)
		ft_cpu_sgemm(N, IC, OC, dout, OC, false, w, IC, false, dinp, IC, true);
	if (dw)
		ft_cpu_sgemm(OC, IC, N, dout, OC, true, inp, IC, false, dw, IC, true);
	if (dbias)
		for (int n = 0; n < N; n++)
			for (int o = 0; o < OC; o++)
				dbias[o] += dout[(size_t)n * OC + o];
}
