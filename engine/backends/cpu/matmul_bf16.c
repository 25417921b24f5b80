/*
 * matmul_bf16.c - a frozen weight kept in bf16 (FT_PW_BF16): the linear's
 * forward and its input gradient with bf16 operands and fp32 sums.
 *
 * Math (w[OC, IC]; bf16(x) rounds to the nearest even bf16, as torch's
 * x.to(torch.bfloat16) does):
 *   forward   out[n, o]   = sum_i bf16(inp[n, i]) bf16(w[o, i])   (+ bias)
 *   backward  dinp[n, i] += sum_o bf16(dout[n, o]) bf16(w[o, i])
 * A product of two bf16 is exact in fp32; the sums are fp32. This is the
 * arithmetic of a bf16 base model under autocast in PyTorch on a CPU (the
 * operands rounded, the accumulation wider), not fp32's: a training job asks
 * for it (base_dtype "bf16"), and ft-serve may serve in it.
 *
 * AVX512-BF16's vdpbf16ps adds two products per fp32 lane and instruction
 * (consecutive k of one column), twice the multiply-adds of an fp32 FMA, on
 * half the bytes. The GEMM is matmul.c's shape:
 *   - the weight is kept twice, each laid out as the GEMM's B operand in
 *     panels of NR = 32 columns with k in pairs, b[panel][K/2][32][2]
 *     (columns past the edge and an odd K's last row zero): for the
 *     forward B = w^T (K = IC, columns OC), for the input gradient B = w
 *     (K = OC, columns IC);
 *   - A (inp or dout) is rounded to bf16 once per call, row-major [M][Kp]
 *     with Kp = K rounded up to even (the pad zero);
 *   - C is cut into tiles of mt x nc, one task each; within a task K goes
 *     in chunks of KCP pairs in increasing order, each chunk's sum added to
 *     C: every element's order of operations is fixed, so results depend
 *     neither on the threads nor on M (a row's result is the same in any
 *     batch);
 *   - the micro-kernel keeps MR x 32 of C in 12 registers and per pair of
 *     k broadcasts one 32-bit pair of A per row against two vectors of B.
 * Without AVX512-BF16 in the build (-march=native on a CPU without it),
 * pw_pack refuses the format and the backend says so (pw_bf16 false).
 */
#include <pthread.h>

#include "cpu_int.h"

#if defined(__AVX512F__) && defined(__AVX512BF16__)
#define BF16_KERNEL 1
#include <immintrin.h>
#endif

#define MR 6
#define NR 32
#define KCP 128 /* pairs of k per chunk: a B panel chunk of 16 KB stays in L1 */
#define MT_MIN 48 /* rows per task at least (a multiple of MR) */
#define NC 256 /* columns per task at most (a multiple of NR) */

uint16_t ft_cpu_bf16_round(float f)
{
	uint32_t u;
	memcpy(&u, &f, sizeof u);
	uint32_t r = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
	return (u & 0x7fffffffu) > 0x7f800000u ? (uint16_t)((u >> 16) | 0x40u) : (uint16_t)r;
}

#ifdef BF16_KERNEL

/* Rows [r0, r1) of src [M][K] fp32 into dst [M][kp2] bf16 (kp2 even). */
struct round_job {
	const float *src;
	uint16_t *dst;
	int M, K, kp2, per;
};

static void round_rows(void *ctx, int t)
{
	const struct round_job *j = ctx;
	int r0 = t * j->per, r1 = FT_MIN(j->M, r0 + j->per);
	for (int r = r0; r < r1; r++) {
		const float *s = j->src + (size_t)r * j->K;
		uint16_t *d = j->dst + (size_t)r * j->kp2;
		for (int k = 0; k < j->K; k++)
			d[k] = ft_cpu_bf16_round(s[k]);
		if (j->kp2 > j->K)
			d[j->K] = 0;
	}
}

struct bgemm {
	int M, N, kp; /* kp: pairs of k */
	const uint16_t *a; /* [M][2 kp] */
	const uint16_t *b; /* panels of kp * 2 * NR */
	float *c;
	size_t ldc;
	bool accumulate;
	int mt, nc, tiles_n;
};

/* C[R][nr] (+)= A[R][2 kcp] B[2 kcp][32] for R <= MR rows (R a constant
 * after inlining), lda in bf16 elements. */
static inline __attribute__((always_inline)) void kernel(int R, int kcp, const uint16_t *a,
							 size_t lda, const uint16_t *b, float *c,
							 size_t ldc, int nr, bool add)
{
	__m512 acc[MR][2];
	for (int r = 0; r < R; r++)
		acc[r][0] = acc[r][1] = _mm512_setzero_ps();
	for (int p = 0; p < kcp; p++) {
		__m512bh b0 = (__m512bh)_mm512_load_si512(b + (size_t)p * 2 * NR);
		__m512bh b1 = (__m512bh)_mm512_load_si512(b + (size_t)p * 2 * NR + NR);
		for (int r = 0; r < R; r++) {
			int32_t v;
			memcpy(&v, a + (size_t)r * lda + 2 * (size_t)p, sizeof v);
			__m512bh av = (__m512bh)_mm512_set1_epi32(v);
			acc[r][0] = _mm512_dpbf16_ps(acc[r][0], av, b0);
			acc[r][1] = _mm512_dpbf16_ps(acc[r][1], av, b1);
		}
	}
	__mmask16 m0 = nr >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << nr) - 1);
	__mmask16 m1 = nr >= 32	 ? (__mmask16)0xffff
		       : nr > 16 ? (__mmask16)((1u << (nr - 16)) - 1)
				 : (__mmask16)0;
	for (int r = 0; r < R; r++, c += ldc) {
		__m512 x0 = acc[r][0], x1 = acc[r][1];
		if (add) {
			x0 = _mm512_add_ps(_mm512_maskz_loadu_ps(m0, c), x0);
			x1 = _mm512_add_ps(_mm512_maskz_loadu_ps(m1, c + 16), x1);
		}
		_mm512_mask_storeu_ps(c, m0, x0);
		_mm512_mask_storeu_ps(c + 16, m1, x1);
	}
}

static void kernel_rows(int R, int kcp, const uint16_t *a, size_t lda, const uint16_t *b, float *c,
			size_t ldc, int nr, bool add)
{
	switch (R) {
	case 6: kernel(6, kcp, a, lda, b, c, ldc, nr, add); break;
	case 5: kernel(5, kcp, a, lda, b, c, ldc, nr, add); break;
	case 4: kernel(4, kcp, a, lda, b, c, ldc, nr, add); break;
	case 3: kernel(3, kcp, a, lda, b, c, ldc, nr, add); break;
	case 2: kernel(2, kcp, a, lda, b, c, ldc, nr, add); break;
	default: kernel(1, kcp, a, lda, b, c, ldc, nr, add); break;
	}
}

static void bgemm_tile(void *ctx, int t)
{
	const struct bgemm *g = ctx;
	int i0 = (t / g->tiles_n) * g->mt, j0 = (t % g->tiles_n) * g->nc;
	int i1 = FT_MIN(g->M, i0 + g->mt), j1 = FT_MIN(g->N, j0 + g->nc);
	size_t lda = 2 * (size_t)g->kp, panel = (size_t)g->kp * 2 * NR;
	if (g->kp == 0) {
		for (int i = i0; i < i1 && !g->accumulate; i++)
			memset(g->c + (size_t)i * g->ldc + j0, 0,
			       sizeof(float) * (size_t)(j1 - j0));
		return;
	}
	for (int k0 = 0; k0 < g->kp; k0 += KCP) {
		int kcp = FT_MIN(KCP, g->kp - k0);
		bool add = g->accumulate || k0 > 0;
		for (int j = j0; j < j1; j += NR) {
			const uint16_t *bp = g->b + (size_t)(j / NR) * panel + (size_t)k0 * 2 * NR;
			int nr = FT_MIN(NR, j1 - j);
			for (int i = i0; i < i1; i += MR)
				kernel_rows(FT_MIN(MR, i1 - i), kcp,
					    g->a + (size_t)i * lda + 2 * k0, lda, bp,
					    g->c + (size_t)i * g->ldc + j, g->ldc, nr, add);
		}
	}
}

/* The calling thread's buffer for the rounded A, grown as needed and kept
 * (a fresh allocation per call faulted its pages in every time: 7% of a
 * LoRA step); freed when the thread exits. */
static _Thread_local uint16_t *t_abf;
static _Thread_local size_t t_abf_bytes;
static pthread_key_t abf_key;
static pthread_once_t abf_once = PTHREAD_ONCE_INIT;

static void abf_key_make(void)
{
	FT_ASSERT(pthread_key_create(&abf_key, free) == 0);
}

static uint16_t *abf_get(size_t bytes)
{
	if (bytes > t_abf_bytes) {
		free(t_abf);
		t_abf_bytes = (bytes + 65535) / 65536 * 65536;
		t_abf = aligned_alloc(64, t_abf_bytes);
		FT_ASSERT(t_abf);
		pthread_once(&abf_once, abf_key_make);
		pthread_setspecific(abf_key, t_abf);
	}
	return t_abf;
}

/* C[M][N] (+)= bf16(A[M][K]) B, B packed (panels of kp pairs) */
static void bgemm(float *c, const float *a, int M, int K, const uint16_t *b, int N, bool accumulate)
{
	int kp = (K + 1) / 2, threads = ft_pool_threads();
	uint16_t *abf = abf_get(sizeof(uint16_t) * (size_t)M * 2 * kp);
	struct round_job rj = { a, abf, M, K, 2 * kp, 0 };
	int rtasks = FT_MIN(M, 2 * threads);
	rj.per = (M + rtasks - 1) / rtasks;
	ft_pool_run(round_rows, &rj, (M + rj.per - 1) / rj.per);

	struct bgemm g = { .M = M,
			   .N = N,
			   .kp = kp,
			   .a = abf,
			   .b = b,
			   .c = c,
			   .ldc = (size_t)N,
			   .accumulate = accumulate };
	/* Columns per task: NC, or fewer panels when there are too few column
	 * blocks for the threads; rows: as many as leave about two tasks per
	 * thread (a B chunk is reused across them), whole MR blocks. */
	int want = 2 * threads, panels = (N + NR - 1) / NR;
	g.nc = NC;
	if ((N + NC - 1) / NC < want)
		g.nc = FT_MAX(1, (panels + want - 1) / want) * NR;
	g.tiles_n = (N + g.nc - 1) / g.nc;
	int row_tasks = FT_MAX(1, (want + g.tiles_n - 1) / g.tiles_n);
	int rows = (M + row_tasks - 1) / row_tasks;
	g.mt = FT_MAX(MT_MIN, (rows + MR - 1) / MR * MR);
	ft_pool_run(bgemm_tile, &g, ((M + g.mt - 1) / g.mt) * g.tiles_n);
}

/* b: panels of NR columns of B[K][N] with B[k][n] = src[n * sn + k * sk] */
static uint16_t *pack_b(const float *src, int K, int N, size_t sk, size_t sn)
{
	int kp = (K + 1) / 2, panels = (N + NR - 1) / NR;
	size_t n = (size_t)panels * kp * 2 * NR;
	uint16_t *b = aligned_alloc(64, (n * sizeof(uint16_t) + 63) / 64 * 64);
	if (!b)
		return NULL;
	for (int p = 0; p < panels; p++)
		for (int q = 0; q < kp; q++)
			for (int j = 0; j < NR; j++)
				for (int e = 0; e < 2; e++) {
					int col = p * NR + j, k = 2 * q + e;
					b[(((size_t)p * kp + q) * NR + j) * 2 + e] =
						col < N && k < K
							? ft_cpu_bf16_round(src[(size_t)col * sn +
										(size_t)k * sk])
							: 0;
				}
	return b;
}

bool ft_cpu_bf16_pack(struct ft_pw *w, const float *src)
{
	/* forward: B = w^T, B[k=i][n=o] = w[o][i]; input gradient: B = w,
	 * B[k=o][n=i] = w[o][i] */
	w->bf = pack_b(src, w->ic, w->oc, 1, (size_t)w->ic);
	w->bft = pack_b(src, w->oc, w->ic, (size_t)w->ic, 1);
	if (!w->bf || !w->bft)
		return false;
	w->bytes = sizeof(uint16_t) * 2 * NR *
		   ((size_t)((w->oc + NR - 1) / NR) * (size_t)((w->ic + 1) / 2) +
		    (size_t)((w->ic + NR - 1) / NR) * (size_t)((w->oc + 1) / 2));
	return true;
}

void ft_cpu_matmul_bf16_fwd(float *out, const float *inp, const struct ft_pw *w, int N)
{
	bgemm(out, inp, N, w->ic, w->bf, w->oc, false);
}

void ft_cpu_matmul_pw_bwd_input(float *dinp, const float *dout, const struct ft_pw *w, int N,
				int IC, int OC)
{
	FT_ASSERT(w->fmt == FT_PW_BF16 && w->ic == IC && w->oc == OC);
	if (N > 0)
		bgemm(dinp, dout, N, OC, w->bft, IC, true);
}

#else /* no AVX512-BF16 in this build */

bool ft_cpu_bf16_pack(struct ft_pw *w, const float *src)
{
	(void)w;
	(void)src;
	return false;
}

void ft_cpu_matmul_bf16_fwd(float *out, const float *inp, const struct ft_pw *w, int N)
{
	(void)out;
	(void)inp;
	(void)w;
	(void)N;
	FT_ASSERT(!"bf16 weights without AVX512-BF16");
}

void ft_cpu_matmul_pw_bwd_input(float *dinp, const float *dout, const struct ft_pw *w, int N,
				int IC, int OC)
{
	(void)dinp;
	(void)dout;
	(void)w;
	(void)N;
	(void)IC;
	(void)OC;
	FT_ASSERT(!"bf16 weights without AVX512-BF16");
}

#endif
