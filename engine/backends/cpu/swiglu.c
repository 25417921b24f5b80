/*
 * swiglu.c - the gated MLP activation of Llama: out = silu(gate) * up,
 *   silu(x) = x * sigmoid(x)
 * Backward, with s = sigmoid(gate):
 *   dup   += dout * silu(gate)
 *   dgate += dout * up * s * (1 + gate * (1 - s))
 */
#include "cpu_int.h"

#include <math.h>

#define CHUNK 256 /* e^-gate of this many at a time (vexp.c) */

/* e[i] = exp(-gate[i]) */
static void exp_neg(float *e, const float *gate, size_t n)
{
	for (size_t i = 0; i < n; i++)
		e[i] = -gate[i];
	ft_cpu_expf_n(e, e, n);
}

static void swiglu_fwd_serial(float *out, const float *gate, const float *up, size_t n)
{
	float e[CHUNK];
	for (size_t c = 0; c < n; c += CHUNK) {
		size_t m = FT_MIN((size_t)CHUNK, n - c);
		exp_neg(e, gate + c, m);
		for (size_t i = 0; i < m; i++)
			out[c + i] = gate[c + i] / (1.0f + e[i]) * up[c + i];
	}
}

/* A prefill's activation (rows x 1536 for SmolLM2) is split over the
 * threads; every element is computed alone, so the split changes no bit. */
#define PART (64 * CHUNK)
struct swiglu_job {
	float *out;
	const float *gate, *up;
	size_t n;
};

static void swiglu_fwd_task(void *ctx, int t)
{
	const struct swiglu_job *j = ctx;
	size_t at = (size_t)t * PART;
	swiglu_fwd_serial(j->out + at, j->gate + at, j->up + at, FT_MIN((size_t)PART, j->n - at));
}

void ft_cpu_swiglu_fwd(float *out, const float *gate, const float *up, size_t n)
{
	if (n <= PART) {
		swiglu_fwd_serial(out, gate, up, n);
		return;
	}
	struct swiglu_job j = { out, gate, up, n };
	ft_pool_run(swiglu_fwd_task, &j, (int)((n + PART - 1) / PART));
}

void ft_cpu_swiglu_bwd(float *dgate, float *dup, const float *dout, const float *gate,
		       const float *up, size_t n)
{
	float e[CHUNK];
	for (size_t c = 0; c < n; c += CHUNK) {
		size_t m = FT_MIN((size_t)CHUNK, n - c);
		exp_neg(e, gate + c, m);
		for (size_t k = 0; k < m; k++) {
			size_t i = c + k;
			float g = gate[i], s = 1.0f / (1.0f + e[k]);
			dup[i] += dout[i] * g * s;
			dgate[i] += dout[i] * up[i] * s * (1.0f + g * (1.0f - s));
		}
	}
}
