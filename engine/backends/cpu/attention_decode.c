/*
 * attention_decode.c - one query row against a sequence's KV cache
 * (generation and serving; ft/backend.h's attention_decode and
 * attention_decode_rows).
 *
 * Math, per head h of KV group g (GQA), cache rows j = j0..pos:
 *   s_j = (q_h . k_j) / sqrt(hd)
 *   p_j = exp(s_j - max s) / sum_j exp(s_j - max s)      (the sum in double)
 *   out_h = sum_j p_j v_j
 * The dot product runs in 8-wide partial sums combined in one fixed order,
 * so a row's result does not depend on the rows beside it or on the thread
 * that computes it. attention_decode_rows gives the pool one task per
 * (row, KV group): the group's heads read the same keys and values.
 */
#include <math.h>
#include <pthread.h>

#include "cpu_int.h"

/* Heads h0..h1 of one query row (they share KV group g) against the cache
 * rows j0..pos. The score is a dot product over hd in 8-wide partial sums
 * (one fixed order, whatever the batch), the softmax sums in double. */
static void decode_heads(float *restrict out, float *restrict scores, const float *restrict q,
			 const float *restrict kc, const float *restrict vc, int j0, int pos,
			 int h0, int h1, int g, int kd, int hd)
{
	typedef float v8 __attribute__((vector_size(32)));
	float scale = 1.0f / sqrtf((float)hd);
	int hv = hd / 8 * 8;
	for (int h = h0; h < h1; h++) {
		const float *qh = q + (size_t)h * hd;
		float mx = -INFINITY;
		for (int j = j0; j <= pos; j++) {
			const float *kj = kc + (size_t)j * kd + (size_t)g * hd;
			v8 acc = { 0 };
			for (int d = 0; d < hv; d += 8) {
				v8 x, y;
				memcpy(&x, qh + d, sizeof x);
				memcpy(&y, kj + d, sizeof y);
				acc += x * y;
			}
			float s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) +
				  ((acc[2] + acc[6]) + (acc[3] + acc[7]));
			for (int d = hv; d < hd; d++)
				s += qh[d] * kj[d];
			scores[j] = s * scale;
			mx = fmaxf(mx, scores[j]);
		}
		for (int j = j0; j <= pos; j++)
			scores[j] -= mx;
		ft_cpu_expf_n(scores + j0, scores + j0, (size_t)(pos + 1 - j0));
		double sum = 0;
		for (int j = j0; j <= pos; j++)
			sum += scores[j];
		float *o = out + (size_t)h * hd;
		memset(o, 0, sizeof(float) * (size_t)hd);
		for (int j = j0; j <= pos; j++) {
			float p = (float)(scores[j] / sum);
			const float *vj = vc + (size_t)j * kd + (size_t)g * hd;
			for (int d = 0; d < hd; d++)
				o[d] += p * vj[d];
		}
	}
}

void ft_cpu_attention_decode(float *out, float *scores, const float *q, const float *kc,
			     const float *vc, int j0, int pos, int nh, int nkv, int hd)
{
	int per = nh / nkv;
	for (int g = 0; g < nkv; g++)
		decode_heads(out, scores, q, kc, vc, j0, pos, g * per, (g + 1) * per, g, nkv * hd,
			     hd);
}

struct decode_rows {
	float *out;
	const float *q;
	const float *const *kc, *const *vc;
	const int *j0, *pos;
	int nh, nkv, hd;
};

/* Each thread's scores, freed when the thread exits (a key's destructor:
 * ft-serve's loop thread runs these too, and ends before the process). */
static _Thread_local float *scores;
static _Thread_local size_t cap;
static pthread_key_t scores_key;
static pthread_once_t scores_once = PTHREAD_ONCE_INIT;

static void scores_key_make(void)
{
	FT_ASSERT(pthread_key_create(&scores_key, free) == 0);
}

static void decode_rows_task(void *ctx, int t)
{
	const struct decode_rows *d = ctx;
	int i = t / d->nkv, g = t % d->nkv, per = d->nh / d->nkv;
	size_t need = (size_t)d->pos[i] + 1;
	if (cap < need) {
		free(scores);
		cap = FT_MAX(need, 4096);
		scores = malloc(cap * sizeof(float));
		FT_ASSERT(scores);
		pthread_once(&scores_once, scores_key_make);
		pthread_setspecific(scores_key, scores);
	}
	size_t qd = (size_t)d->nh * d->hd;
	decode_heads(d->out + i * qd, scores, d->q + i * qd, d->kc[i], d->vc[i], d->j0[i],
		     d->pos[i], g * per, (g + 1) * per, g, d->nkv * d->hd, d->hd);
}

void ft_cpu_attention_decode_rows(int n, float *out, const float *q, const float *const *kc,
				  const float *const *vc, const int *j0, const int *pos, int nh,
				  int nkv, int hd)
{
	struct decode_rows d = { out, q, kc, vc, j0, pos, nh, nkv, hd };
	ft_pool_run(decode_rows_task, &d, n * nkv);
}
