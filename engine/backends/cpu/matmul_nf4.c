/*
 * matmul_nf4.c - the linear layer with a frozen NF4 weight (QLoRA).
 *
 * Math (w = deq(W) [OC, IC], ft/nf4.h: w[o,i] = code[q[o,i]] * absmax(block)):
 *   forward   out[n,o]  = sum_i inp[n,i] w[o,i] + bias[o]
 *   backward  dinp[n,i] += sum_o dout[n,o] w[o,i]
 * No weight gradient: the base is frozen.
 *
 * The weight is never dequantised whole. Each task of the thread pool owns
 * a tile of the OUTPUT columns (TO rows of w for forward, TI columns of w
 * for backward), walks the reduction dimension in chunks of KC, dequantises
 * the chunk's TO x KC (or KC x TI) piece of w into a per-thread scratch of
 * 64 KB and multiplies it with the serial GEMM of matmul.c. Every output
 * element is summed in the same order whatever the thread count (chunks in
 * increasing order), so results are bit-reproducible.
 */
#include <pthread.h>

#include "cpu_int.h"
#include "ft/nf4.h"

#define TO 64 /* forward: rows of w (output columns) per task */
#define TI 64 /* backward: columns of w (input columns) per task */
#define KC 256 /* reduction chunk */

/* Each thread's scratch, freed when the thread exits (a key's destructor). */
static _Thread_local float *t_scratch;
static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;

static void scratch_key_make(void)
{
	FT_ASSERT(pthread_key_create(&scratch_key, free) == 0);
}

static float *scratch(void)
{
	if (!t_scratch) {
		t_scratch = aligned_alloc(64, sizeof(float) * FT_MAX(TO, TI) * KC);
		FT_ASSERT(t_scratch);
		pthread_once(&scratch_once, scratch_key_make);
		pthread_setspecific(scratch_key, t_scratch);
	}
	return t_scratch;
}

struct job {
	float *out;
	const float *in;
	const struct ft_nf4 *w;
	int N, IC, OC;
};

static void fwd_task(void *ctx, int t)
{
	const struct job *j = ctx;
	int o0 = t * TO, to = FT_MIN(TO, j->OC - o0);
	float *s = scratch();
	for (int k0 = 0; k0 < j->IC; k0 += KC) {
		int kc = FT_MIN(KC, j->IC - k0);
		ft_nf4_dequant_tile(j->w, o0, to, k0, kc, s, kc);
		/* out[:, o0:o0+to] (+)= in[:, k0:k0+kc] s^T */
		ft_cpu_sgemm_serial(j->N, to, kc, j->in + k0, j->IC, false, s, kc, true,
				    j->out + o0, j->OC, k0 > 0);
	}
}

void ft_cpu_matmul_nf4_fwd(float *out, const float *inp, const struct ft_nf4 *w, const float *bias,
			   int N, int IC, int OC)
{
	FT_ASSERT(w->rows == OC && w->cols == IC);
	struct job j = { out, inp, w, N, IC, OC };
	ft_pool_run(fwd_task, &j, (OC + TO - 1) / TO);
	if (bias)
		for (int n = 0; n < N; n++)
			for (int o = 0; o < OC; o++)
				out[(size_t)n * OC + o] += bias[o];
}

static void bwd_task(void *ctx, int t)
{
	const struct job *j = ctx;
	int i0 = t * TI, ti = FT_MIN(TI, j->IC - i0);
	float *s = scratch();
	for (int k0 = 0; k0 < j->OC; k0 += KC) {
		int kc = FT_MIN(KC, j->OC - k0);
		ft_nf4_dequant_tile(j->w, k0, kc, i0, ti, s, ti);
		/* dinp[:, i0:i0+ti] += dout[:, k0:k0+kc] s */
		ft_cpu_sgemm_serial(j->N, ti, kc, j->in + k0, j->OC, false, s, ti, false,
				    j->out + i0, j->IC, true);
	}
}

void ft_cpu_matmul_nf4_bwd_input(float *dinp, const float *dout, const struct ft_nf4 *w, int N,
				 int IC, int OC)
{
	FT_ASSERT(w->rows == OC && w->cols == IC);
	struct job j = { dinp, dout, w, N, IC, OC };
	ft_pool_run(bwd_task, &j, (IC + TI - 1) / TI);
}
