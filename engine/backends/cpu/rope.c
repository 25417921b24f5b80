/*
 * rope.c - rotary position embedding, rotate-half form (transformers'
 * apply_rotary_pos_emb), on each head of x[N, heads*hd] in place:
 *   for i < hd/2, angle a = pos * inv_freq[i]:
 *     y[i]        = x[i] cos a - x[i+hd/2] sin a
 *     y[i+hd/2]   = x[i+hd/2] cos a + x[i] sin a
 * The backward is the transposed rotation (angle -a) applied to dy.
 *
 * inv_freq (transformers' rope init functions, computed in fp32 as there):
 *   default  inv_freq[i] = 1 / theta^(2i/hd)
 *   linear   inv_freq[i] /= factor
 *   llama3   (_compute_llama3_parameters) with wavelen = 2 pi / inv_freq,
 *            low_wl = orig_max_pos / low_freq_factor,
 *            high_wl = orig_max_pos / high_freq_factor:
 *              wavelen > low_wl            -> inv_freq / factor
 *              wavelen < high_wl           -> inv_freq
 *              otherwise (medium)          -> (1 - s) inv_freq / factor + s inv_freq,
 *                 s = (orig_max_pos / wavelen - low_freq_factor)
 *                     / (high_freq_factor - low_freq_factor)
 * Tables cos_t/sin_t[pos][hd/2] are precomputed for positions 0..max_pos-1.
 */
#include "cpu_int.h"

#include <math.h>

static void rotate(float *x, const float *cos_t, const float *sin_t, const int32_t *pos, int N,
		   int heads, int hd, float sign)
{
	int h2 = hd / 2;
	for (int n = 0; n < N; n++) {
		const float *c = cos_t + (size_t)pos[n] * h2, *s = sin_t + (size_t)pos[n] * h2;
		for (int h = 0; h < heads; h++) {
			float *v = x + ((size_t)n * heads + h) * hd;
			for (int i = 0; i < h2; i++) {
				float x1 = v[i], x2 = v[i + h2], si = sign * s[i];
				v[i] = x1 * c[i] - x2 * si;
				v[i + h2] = x2 * c[i] + x1 * si;
			}
		}
	}
}

void ft_cpu_rope_fwd(float *x, const float *cos_t, const float *sin_t, const int32_t *pos, int N,
		     int heads, int hd)
{
	rotate(x, cos_t, sin_t, pos, N, heads, hd, 1.0f);
}

void ft_cpu_rope_bwd(float *dx, const float *cos_t, const float *sin_t, const int32_t *pos, int N,
		     int heads, int hd)
{
	rotate(dx, cos_t, sin_t, pos, N, heads, hd, -1.0f);
}
