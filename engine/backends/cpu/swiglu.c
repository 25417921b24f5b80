/*
 * swiglu.c - the gated MLP activation of Llama: out = silu(gate) * up,
 *   silu(x) = x * sigmoid(x)
 * Backward, with s = sigmoid(gate):
 *   dup   += dout * silu(gate)
 *   dgate += dout * up * s * (1 + gate * (1 - s))
 */
#include "cpu_int.h"

#include <math.h>

void ft_cpu_swiglu_fwd(float *out, const float *gate, const float *up, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		float g = gate[i];
		out[i] = g / (1.0f + expf(-g)) * up[i];
	}
}

void ft_cpu_swiglu_bwd(float *dgate, float *dup, const float *dout, const float *gate,
		       const float *up, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		float g = gate[i], s = 1.0f / (1.0f + expf(-g));
		dup[i] += dout[i] * g * s;
		dgate[i] += dout[i] * up[i] * s * (1.0f + g * (1.0f - s));
	}
}
