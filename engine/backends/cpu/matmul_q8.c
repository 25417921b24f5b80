/*
 * matmul_q8.c - the linear with a Q8_0 inference weight, in llama.cpp's
 * arithmetic: 8-bit weights times 8-bit activations, summed in integers.
 *
 * Math, for an output o of row n (blocks b of 32 inputs):
 *   weights      w[o, 32b + i] = dw[o, b] * qw[o, 32b + i]     (GGUF's Q8_0)
 *   activations  x[n, 32b + i] ~ dx[n, b] * qx[n, 32b + i], quantised here
 *                as llama.cpp quantises them for a Q8_0 dot product:
 *                dx = max|x| / 127, qx = roundf(x * (1 / dx)) (dx kept in
 *                fp32; roundf worked in integer steps that vectorise)
 *   out[n, o]    = sum_b (dx[n, b] * dw[o, b]) * sum_i qx * qw + bias[o]
 * The inner sums are exact integers; the blocks are added in increasing b
 * with one fused multiply-add each, so a row's result depends on nothing
 * but that row (batching changes no bit), and the AVX-512 VNNI kernel and
 * the portable one give the same bits.
 *
 * VNNI's vpdpbusd multiplies unsigned by signed bytes: the activations are
 * stored as qx + 128 and the block's sum of weights times 128 is taken back
 * off (sw below), exactly.
 *
 * Packed layout (panels of 16 outputs, the lanes of one 512-bit register):
 *   q   [panel][IC/4][16][4] int8: four consecutive inputs of each output
 *   d   [panel][IC/32][16]  dw (float)
 *   sw  [panel][IC/32][16]  128 * sum of the block's 32 weights (int32)
 * Outputs past OC are zero weights.
 */
#include <math.h>
#include <pthread.h>

#include "cpu_int.h"

#if defined(__AVX512F__) && defined(__AVX512VNNI__)
#include <immintrin.h>
#define Q8_VNNI 1
#endif

#define P 16 /* outputs per panel */
#define RB 8 /* rows per pass over a panel */

static float f16_value(const uint8_t *p)
{
	uint16_t h = (uint16_t)(p[0] | p[1] << 8);
	uint32_t sign = (uint32_t)(h >> 15) << 31, e = (h >> 10) & 31, m = h & 1023;
	float v;
	if (e == 0)
		v = ldexpf((float)m, -24); /* subnormal (or zero) */
	else if (e == 31)
		v = m ? NAN : INFINITY;
	else
		v = ldexpf((float)(m | 1024), (int)e - 25);
	uint32_t bits;
	memcpy(&bits, &v, sizeof bits);
	bits |= sign;
	memcpy(&v, &bits, sizeof v);
	return v;
}

bool ft_cpu_q8_pack(struct ft_pw *w, const uint8_t *src)
{
	int IC = w->ic, nb = IC / 32;
	w->panels = (w->oc + P - 1) / P;
	size_t cells = (size_t)w->panels * P * IC;
	w->q = aligned_alloc(64, cells);
	w->d = aligned_alloc(64, cells / 32 * sizeof(float));
	w->sw = aligned_alloc(64, cells / 32 * sizeof(int32_t));
	if (!w->q || !w->d || !w->sw)
		return false;
	w->bytes = cells + cells / 32 * (sizeof(float) + sizeof(int32_t));
	for (int p = 0; p < w->panels; p++)
		for (int j = 0; j < P; j++) {
			int o = p * P + j;
			for (int b = 0; b < nb; b++) {
				/* GGUF Q8_0 block b of row o: fp16 d, 32 int8 */
				const uint8_t *blk = src + ((size_t)o * nb + b) * 34;
				int32_t sum = 0;
				for (int i = 0; i < 32; i++) {
					int k = 32 * b + i;
					int8_t q = o < w->oc ? (int8_t)blk[2 + i] : 0;
					w->q[(((size_t)p * (IC / 4) + k / 4) * P + j) * 4 + k % 4] =
						q;
					sum += q;
				}
				size_t at = ((size_t)p * nb + b) * P + j;
				w->d[at] = o < w->oc ? f16_value(blk) : 0;
				w->sw[at] = 128 * sum;
			}
		}
	return true;
}

/* The activations of N rows quantised: qx + 128 as bytes, dx per block. */
struct q8_act {
	uint8_t *q;
	float *d;
	size_t cap_q, cap_d;
};

/* roundf (half away from zero) for |t| < 2^23, in integer steps the
 * compiler vectorises: the truncation, then one up or down on the fraction
 * (t - trunc(t) is exact in float). */
static inline int round_half_away(float t)
{
	int r = (int)t;
	float frac = t - (float)r;
	return r + (frac >= 0.5f) - (frac <= -0.5f);
}

static void quantise_row(struct q8_act *a, const float *x, int n, int IC)
{
	int nb = IC / 32;
	for (int b = 0; b < nb; b++) {
		const float *v = x + (size_t)n * IC + 32 * b;
		float amax = 0;
		for (int i = 0; i < 32; i++) {
			float m = v[i] < 0 ? -v[i] : v[i];
			amax = m > amax ? m : amax;
		}
		float d = amax / 127.0f, id = d > 0 ? 1.0f / d : 0.0f;
		a->d[(size_t)n * nb + b] = d;
		uint8_t *q = a->q + (size_t)n * IC + 32 * b;
		for (int i = 0; i < 32; i++)
			q[i] = (uint8_t)(round_half_away(v[i] * id) + 128);
	}
}

struct quant_job {
	struct q8_act *a;
	const float *x;
	int N, IC;
};

static void quant_task(void *ctx, int t)
{
	const struct quant_job *j = ctx;
	quantise_row(j->a, j->x, t, j->IC);
}

struct q8_job {
	float *out;
	const struct ft_pw *w;
	const struct q8_act *a;
	int N, panels_per_task;
};

#ifdef Q8_VNNI
/* Rows r0..r0+nr (nr <= RB) of one panel. */
static void panel_rows(const struct q8_job *j, int p, int r0, int nr)
{
	const struct ft_pw *w = j->w;
	int IC = w->ic, nb = IC / 32, OC = w->oc;
	const int8_t *q = w->q + (size_t)p * (IC / 4) * P * 4;
	const float *dw = w->d + (size_t)p * nb * P;
	const int32_t *sw = w->sw + (size_t)p * nb * P;
	__m512 f[RB];
	for (int r = 0; r < RB; r++)
		f[r] = _mm512_setzero_ps();
	for (int b = 0; b < nb; b++) {
		__m512i s[RB];
		for (int r = 0; r < RB; r++)
			s[r] = _mm512_setzero_si512();
		for (int g = 0; g < 8; g++) {
			__m512i wv =
				_mm512_load_si512((const void *)(q + ((size_t)b * 8 + g) * 64));
			for (int r = 0; r < nr; r++) {
				int32_t a4;
				memcpy(&a4, j->a->q + (size_t)(r0 + r) * IC + 32 * b + 4 * g, 4);
				s[r] = _mm512_dpbusd_epi32(s[r], _mm512_set1_epi32(a4), wv);
			}
		}
		__m512i corr = _mm512_loadu_si512((const void *)(sw + (size_t)b * P));
		__m512 d = _mm512_loadu_ps(dw + (size_t)b * P);
		for (int r = 0; r < nr; r++) {
			__m512 sc = _mm512_mul_ps(
				d, _mm512_set1_ps(j->a->d[(size_t)(r0 + r) * nb + b]));
			__m512 v = _mm512_cvtepi32_ps(_mm512_sub_epi32(s[r], corr));
			f[r] = _mm512_fmadd_ps(v, sc, f[r]);
		}
	}
	int valid = FT_MIN(P, OC - p * P);
	for (int r = 0; r < nr; r++) {
		float tmp[P];
		_mm512_storeu_ps(tmp, f[r]);
		memcpy(j->out + (size_t)(r0 + r) * OC + (size_t)p * P, tmp, sizeof(float) * valid);
	}
}
#else
static void panel_rows(const struct q8_job *j, int p, int r0, int nr)
{
	const struct ft_pw *w = j->w;
	int IC = w->ic, nb = IC / 32, OC = w->oc;
	const int8_t *q = w->q + (size_t)p * (IC / 4) * P * 4;
	int valid = FT_MIN(P, OC - p * P);
	for (int r = 0; r < nr; r++) {
		const uint8_t *a = j->a->q + (size_t)(r0 + r) * IC;
		for (int l = 0; l < valid; l++) {
			float f = 0;
			for (int b = 0; b < nb; b++) {
				int32_t s = 0;
				for (int k = 32 * b; k < 32 * b + 32; k++)
					s += (int32_t)a[k] *
					     q[((size_t)(k / 4) * P + l) * 4 + k % 4];
				size_t at = ((size_t)p * nb + b) * P + l;
				float sc = w->d[at] * j->a->d[(size_t)(r0 + r) * nb + b];
				f = fmaf((float)(s - w->sw[at]), sc, f);
			}
			j->out[(size_t)(r0 + r) * OC + (size_t)p * P + l] = f;
		}
	}
}
#endif

static void q8_task(void *ctx, int t)
{
	const struct q8_job *j = ctx;
	int p0 = t * j->panels_per_task, p1 = FT_MIN(j->w->panels, p0 + j->panels_per_task);
	for (int p = p0; p < p1; p++)
		for (int r0 = 0; r0 < j->N; r0 += RB)
			panel_rows(j, p, r0, FT_MIN(RB, j->N - r0));
}

/* The calling thread's activation buffers, freed when it exits. */
static pthread_key_t act_key;
static pthread_once_t act_once = PTHREAD_ONCE_INIT;

static void act_free(void *p)
{
	struct q8_act *a = p;
	free(a->q);
	free(a->d);
	free(a);
}

static void act_key_make(void)
{
	FT_ASSERT(pthread_key_create(&act_key, act_free) == 0);
}

static struct q8_act *act_buffers(size_t need_q, size_t need_d)
{
	pthread_once(&act_once, act_key_make);
	struct q8_act *a = pthread_getspecific(act_key);
	if (!a) {
		a = calloc(1, sizeof(*a));
		FT_ASSERT(a);
		pthread_setspecific(act_key, a);
	}
	if (a->cap_q < need_q) {
		free(a->q);
		a->cap_q = FT_MAX(need_q, (size_t)1 << 16);
		a->q = malloc(a->cap_q);
		FT_ASSERT(a->q);
	}
	if (a->cap_d < need_d) {
		free(a->d);
		a->cap_d = FT_MAX(need_d, (size_t)1 << 11);
		a->d = malloc(a->cap_d * sizeof(float));
		FT_ASSERT(a->d);
	}
	return a;
}

/* The N input rows quantised into the calling thread's buffers. */
static struct q8_act *quantise_input(const float *inp, int N, int IC)
{
	size_t need_q = (size_t)N * IC;
	struct q8_act *a = act_buffers(need_q, need_q / 32);
	if (N <= RB) {
		for (int n = 0; n < N; n++)
			quantise_row(a, inp, n, IC);
	} else {
		struct quant_job qj = { a, inp, N, IC };
		ft_pool_run(quant_task, &qj, N);
	}
	return a;
}

void ft_cpu_matmul_q8_fwd(float *out, const float *inp, const struct ft_pw *w, int N)
{
	struct q8_act *a = quantise_input(inp, N, w->ic);
	int tasks = 4 * ft_pool_threads();
	struct q8_job j = { out, w, a, N, FT_MAX(1, (w->panels + tasks - 1) / tasks) };
	ft_pool_run(q8_task, &j, (w->panels + j.panels_per_task - 1) / j.panels_per_task);
}

/* Several weights of one input: the panels of all of them, in order, are
 * one list that the tasks split (a decode step's q, k and v are ~25 small
 * matrices' worth of hand-offs otherwise: each costs a futex wake-up and a
 * wait, comparable to the work itself at one row). */
struct q8_multi {
	struct q8_job j[FT_PW_MULTI_MAX];
	int start[FT_PW_MULTI_MAX + 1]; /* first panel of each weight in the list */
	int n, panels_per_task;
};

static void q8_multi_task(void *ctx, int t)
{
	const struct q8_multi *m = ctx;
	int g0 = t * m->panels_per_task, g1 = FT_MIN(m->start[m->n], g0 + m->panels_per_task);
	int i = 0;
	for (int g = g0; g < g1; g++) {
		while (g >= m->start[i + 1])
			i++;
		const struct q8_job *j = &m->j[i];
		for (int r0 = 0; r0 < j->N; r0 += RB)
			panel_rows(j, g - m->start[i], r0, FT_MIN(RB, j->N - r0));
	}
}

void ft_cpu_matmul_q8_fwd_multi(float *const *out, const float *inp, const struct ft_pw *const *w,
				int n, int N)
{
	FT_ASSERT(n >= 1 && n <= FT_PW_MULTI_MAX);
	struct q8_act *a = quantise_input(inp, N, w[0]->ic);
	struct q8_multi m = { .n = n };
	for (int i = 0; i < n; i++) {
		FT_ASSERT(w[i]->ic == w[0]->ic);
		m.j[i] = (struct q8_job){ out[i], w[i], a, N, 0 };
		m.start[i + 1] = m.start[i] + w[i]->panels;
	}
	int tasks = 4 * ft_pool_threads(), total = m.start[n];
	m.panels_per_task = FT_MAX(1, (total + tasks - 1) / tasks);
	ft_pool_run(q8_multi_task, &m, (total + m.panels_per_task - 1) / m.panels_per_task);
}
