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
#include <math.h>
#include <pthread.h>

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
	int nc; /* columns of C per task (a multiple of NR, at most NC) */
	const struct ft_pw *pw; /* B is this packed weight (transposed) instead */
};

/* A packed F32 inference weight (struct ft_pw, cpu_int.h) is B = w^T in
 * the GEMM: its panels of NR output columns are laid out as pack_b lays out
 * a block, for the whole of IC at once, f[panel][IC][NR] (columns past OC
 * zero), so the micro-kernel streams them where they lie. */
/* Each thread's packing buffers: one allocation (apack, then bpack), made
 * on the thread's first tile and freed when the thread exits (a key's
 * destructor), so a thread that is not the pool's (ft-serve's loop thread,
 * which runs tiles too) leaves nothing behind. */
static _Thread_local float *t_apack, *t_bpack;
static pthread_key_t pack_key;
static pthread_once_t pack_once = PTHREAD_ONCE_INIT;

static void pack_key_make(void)
{
	FT_ASSERT(pthread_key_create(&pack_key, free) == 0);
}

/* apack: for each panel of MR rows, kc x MR floats, k-major; zero padded. */
static void pack_a(const struct gemm *g, float *ap, int i0, int mc, int k0, int kc)
{
	for (int ip = 0; ip < mc; ip += MR) {
		int mr = FT_MIN(MR, mc - ip);
		if (!g->ta && mr == MR) {
			/* k outer: the panel is written in order, the six rows
			 * read as six sequential streams (r outer wrote it with a
			 * stride of MR floats, six passes over it: 8% of a LoRA
			 * step's time at SmolLM2's size on an AVX2 CPU) */
			const float *s0 = g->a + (size_t)(i0 + ip) * g->lda + k0;
			const float *s1 = s0 + g->lda, *s2 = s1 + g->lda, *s3 = s2 + g->lda;
			const float *s4 = s3 + g->lda, *s5 = s4 + g->lda;
			for (int k = 0; k < kc; k++) {
				float *d = ap + (size_t)k * MR;
				d[0] = s0[k];
				d[1] = s1[k];
				d[2] = s2[k];
				d[3] = s3[k];
				d[4] = s4[k];
				d[5] = s5[k];
			}
		} else if (!g->ta) {
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

/* micro_kernel for a whole MR x NR block of C (row stride ldc), stored or
 * added in place: c = acc or c + acc, the operations of gemm_tile's own
 * store loop (the same bits), without the round trip through c_out and
 * its scalar loop (about 3% of a LoRA step at 250 tokens). */
static void micro_kernel_c(int kc, const float *restrict ap, const float *restrict bp,
			   float *restrict c, size_t ldc, bool add)
{
	float acc[MR][NR];
	micro_kernel(kc, ap, bp, acc);
	for (int r = 0; r < MR; r++, c += ldc) {
		vf a0, a1, x0, x1;
		memcpy(&a0, &acc[r][0], sizeof a0);
		memcpy(&a1, &acc[r][VW], sizeof a1);
		if (add) {
			memcpy(&x0, c, sizeof x0);
			memcpy(&x1, c + VW, sizeof x1);
			a0 = x0 + a0;
			a1 = x1 + a1;
		}
		memcpy(c, &a0, sizeof a0);
		memcpy(c + VW, &a1, sizeof a1);
	}
}

/* The same for the first R rows of the panel (R < MR): the same sums in
 * the same order, without the work of the zero rows. */
#define MICRO_KERNEL_ROWS(R)                                                                     \
	static void micro_kernel_##R(int kc, const float *restrict ap, const float *restrict bp, \
				     float c_out[MR][NR])                                        \
	{                                                                                        \
		vf c[R][2];                                                                      \
		memset(c, 0, sizeof c);                                                          \
		for (int k = 0; k < kc; k++) {                                                   \
			vf b0, b1;                                                               \
			memcpy(&b0, bp, sizeof b0);                                              \
			memcpy(&b1, bp + VW, sizeof b1);                                         \
			for (int r = 0; r < R; r++) {                                            \
				c[r][0] += ap[r] * b0;                                           \
				c[r][1] += ap[r] * b1;                                           \
			}                                                                        \
			ap += MR;                                                                \
			bp += NR;                                                                \
		}                                                                                \
		for (int r = 0; r < R; r++) {                                                    \
			memcpy(&c_out[r][0], &c[r][0], sizeof(vf));                              \
			memcpy(&c_out[r][VW], &c[r][1], sizeof(vf));                             \
		}                                                                                \
	}
MICRO_KERNEL_ROWS(1)
MICRO_KERNEL_ROWS(2)
MICRO_KERNEL_ROWS(3)
MICRO_KERNEL_ROWS(4)
MICRO_KERNEL_ROWS(5)

static void (*const micro_kernels[MR + 1])(int, const float *restrict, const float *restrict,
					   float[MR][NR]) = {
	NULL,		micro_kernel_1, micro_kernel_2, micro_kernel_3,
	micro_kernel_4, micro_kernel_5, micro_kernel,
};

static void gemm_tile(void *ctx, int t)
{
	const struct gemm *g = ctx;
	int i0 = (t / g->tiles_n) * g->mt, j0 = (t % g->tiles_n) * g->nc;
	int mt = FT_MIN(g->mt, g->M - i0), nc = FT_MIN(g->nc, g->N - j0);
	if (!t_apack) { /* MC * KC floats keep bpack 64-byte aligned */
		t_apack = aligned_alloc(64, sizeof(float) * (MC + NC) * KC);
		FT_ASSERT(t_apack);
		t_bpack = t_apack + MC * KC;
		pthread_once(&pack_once, pack_key_make);
		pthread_setspecific(pack_key, t_apack);
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
		 * task's MC-row blocks (a packed F32 weight is used in place:
		 * panel p of the block at bblk + p * bstep) */
		const float *bblk = t_bpack;
		size_t bstep = (size_t)kc * NR;
		if (!g->pw) {
			pack_b(g, t_bpack, j0, nc, k0, kc);
		} else {
			bblk = g->pw->f + ((size_t)j0 / NR * g->pw->ic + k0) * NR;
			bstep = (size_t)g->pw->ic * NR;
		}
		for (int ib = i0; ib < i0 + mt; ib += MC) {
			int mc = FT_MIN(MC, i0 + mt - ib);
			pack_a(g, t_apack, ib, mc, k0, kc);
			for (int jp = 0; jp < nc; jp += NR) {
				int nr = FT_MIN(NR, nc - jp);
				const float *bp = bblk + (size_t)(jp / NR) * bstep;
				for (int ip = 0; ip < mc; ip += MR) {
					int mr = FT_MIN(MR, mc - ip);
					const float *ap = t_apack + (size_t)(ip / MR) * kc * MR;
					if (mr == MR && nr == NR) {
						micro_kernel_c(kc, ap, bp,
							       g->c + (size_t)(ib + ip) * g->ldc +
								       j0 + jp,
							       (size_t)g->ldc, add);
						continue;
					}
					float acc[MR][NR];
					micro_kernels[mr](kc, ap, bp, acc);
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

static void run_gemm(struct gemm *gp);

void ft_cpu_sgemm(int M, int N, int K, const float *a, int lda, bool transA, const float *b,
		  int ldb, bool transB, float *c, int ldc, bool accumulate)
{
	if (M <= 0 || N <= 0)
		return;
	struct gemm g = { M,	  N, K,	  a,	      b, lda, ldb, transA,
			  transB, c, ldc, accumulate, 0, 0,   NC,  NULL };
	run_gemm(&g);
}

/* Tiles of g (its nc set) run on the pool. */
static void run_gemm(struct gemm *gp)
{
	struct gemm g = *gp;
	int M = g.M, N = g.N;
	g.tiles_n = (N + g.nc - 1) / g.nc;
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
	struct gemm g = { M,	  N, K,	  a,	      b, lda, ldb, transA,
			  transB, c, ldc, accumulate, 0, 0,   NC,  NULL };
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

/* ---- inference weights (struct ft_pw above) ---- */

struct ft_pw *ft_cpu_pw_pack(enum ft_pw_fmt fmt, const void *src, int OC, int IC)
{
	if (OC <= 0 || IC <= 0 || (fmt == FT_PW_Q8_0 && IC % 32))
		return NULL;
	struct ft_pw *w = calloc(1, sizeof(*w));
	if (!w)
		return NULL;
	*w = (struct ft_pw){ .fmt = fmt, .oc = OC, .ic = IC };
	if (fmt == FT_PW_BF16) {
		if (!ft_cpu_bf16_pack(w, src)) {
			ft_cpu_pw_free(w);
			return NULL;
		}
		return w;
	}
	if (fmt == FT_PW_Q8_0) {
		if (!ft_cpu_q8_pack(w, src)) {
			ft_cpu_pw_free(w);
			return NULL;
		}
		return w;
	}
	w->panels = (OC + NR - 1) / NR;
	w->bytes = (size_t)w->panels * IC * NR * sizeof(float);
	w->f = aligned_alloc(64, w->bytes);
	if (!w->f) {
		ft_cpu_pw_free(w);
		return NULL;
	}
	for (int p = 0; p < w->panels; p++)
		for (int j = 0; j < NR; j++) {
			int o = p * NR + j;
			for (int k = 0; k < IC; k++)
				w->f[((size_t)p * IC + k) * NR + j] =
					o < OC ? ((const float *)src)[(size_t)o * IC + k] : 0;
		}
	return w;
}

void ft_cpu_pw_free(struct ft_pw *w)
{
	if (!w)
		return;
	free(w->f);
	free(w->q);
	free(w->d);
	free(w->bf);
	free(w->bft);
	free(w);
}

size_t ft_cpu_pw_bytes(const struct ft_pw *w)
{
	return w ? w->bytes : 0;
}

#define PW_SERIAL_MACS (1 << 16)

/* out (+)= inp w^T, w an F32 packed weight */
static void pw_gemm(float *out, const float *inp, const struct ft_pw *w, int N, int IC, int OC,
		    bool accumulate)
{
	struct gemm g = {
		N, OC, IC, inp, NULL, IC, 0, false, true, out, OC, accumulate, 0, 0, NC, w
	};
	/* Columns per task: whole NC blocks when there are enough of them for
	 * every thread, else fewer panels per task (a decode step's few rows
	 * would otherwise leave threads idle). Sums do not depend on it. */
	int want = 2 * ft_pool_threads(), panels = w->panels;
	if ((OC + NC - 1) / NC < want)
		g.nc = FT_MAX(1, (panels + want - 1) / want) * NR;
	/* A product this small runs on the calling thread, as one task: the
	 * hand-off to the pool and back costs more than its multiply-adds (a
	 * served adapter's B in a decode step: rank x 1536 per row, twice per
	 * layer and linear with A). Same tiles' sums, so the same bits. */
	if ((int64_t)N * IC * OC <= PW_SERIAL_MACS)
		g.nc = panels * NR;
	run_gemm(&g);
}

void ft_cpu_matmul_pw_fwd_add(float *out, const float *inp, const struct ft_pw *w, int N, int IC,
			      int OC)
{
	FT_ASSERT(w->oc == OC && w->ic == IC && w->fmt == FT_PW_F32);
	if (N > 0)
		pw_gemm(out, inp, w, N, IC, OC, true);
}

void ft_cpu_matmul_pw_fwd(float *out, const float *inp, const struct ft_pw *w, const float *bias,
			  int N, int IC, int OC)
{
	FT_ASSERT(w->oc == OC && w->ic == IC);
	if (N <= 0)
		return;
	if (w->fmt == FT_PW_Q8_0)
		ft_cpu_matmul_q8_fwd(out, inp, w, N);
	else if (w->fmt == FT_PW_BF16)
		ft_cpu_matmul_bf16_fwd(out, inp, w, N);
	else
		pw_gemm(out, inp, w, N, IC, OC, false);
	if (bias)
		for (int n = 0; n < N; n++)
			for (int o = 0; o < OC; o++)
				out[(size_t)n * OC + o] += bias[o];
}

/* q8_0 weights of one input in one hand-off (matmul_q8.c); anything else,
 * one call each: the same bits either way (each output row depends on its
 * input row and the weights only). */
void ft_cpu_matmul_pw_fwd_multi(float *const *out, const float *inp, const struct ft_pw *const *w,
				const float *const *bias, int n, int N, int IC)
{
	FT_ASSERT(n >= 1 && n <= FT_PW_MULTI_MAX);
	bool q8 = true;
	for (int i = 0; i < n; i++)
		q8 &= w[i]->fmt == FT_PW_Q8_0 && w[i]->ic == IC;
	if (!q8 || N <= 0) {
		for (int i = 0; i < n; i++)
			ft_cpu_matmul_pw_fwd(out[i], inp, w[i], bias[i], N, IC, w[i]->oc);
		return;
	}
	ft_cpu_matmul_q8_fwd_multi(out, inp, w, n, N);
	for (int i = 0; i < n; i++)
		if (bias[i])
			for (int r = 0; r < N; r++)
				for (int o = 0; o < w[i]->oc; o++)
					out[i][(size_t)r * w[i]->oc + o] += bias[i][o];
}
