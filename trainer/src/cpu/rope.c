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
#include "../engine_int.h"

#include <math.h>

void ft_rope_inv_freq(float *inv_freq, int hd, const struct ft_rope_params *rp)
{
	for (int i = 0; i < hd / 2; i++) {
		float expo = (float)(2 * i) / (float)hd;
		float f = (float)(1.0 / pow(rp->theta, (double)expo));
		if (rp->type == FT_ROPE_LINEAR) {
			f = (float)(f / rp->factor);
		} else if (rp->type == FT_ROPE_LLAMA3) {
			double low_wl = rp->original_max_pos / rp->low_freq_factor;
			double high_wl = rp->original_max_pos / rp->high_freq_factor;
			float wavelen = (float)(2 * M_PI) / f;
			float scaled = wavelen > low_wl ? (float)(f / rp->factor) : f;
			if (!(wavelen < high_wl) && !(wavelen > low_wl)) {
				float s = (float)(((double)rp->original_max_pos / wavelen -
						   rp->low_freq_factor) /
						  (rp->high_freq_factor - rp->low_freq_factor));
				scaled = (1 - s) * scaled / (float)rp->factor + s * scaled;
			}
			f = scaled;
		}
		inv_freq[i] = f;
	}
}

void ft_rope_tables(float *cos_t, float *sin_t, int max_pos, int hd,
		    const struct ft_rope_params *rp)
{
	int h2 = hd / 2;
	float inv[1024];
	FT_ASSERT(h2 <= 1024);
	ft_rope_inv_freq(inv, hd, rp);
	for (int p = 0; p < max_pos; p++)
		for (int i = 0; i < h2; i++) {
			float a = (float)p * inv[i];
			cos_t[(size_t)p * h2 + i] = cosf(a);
			sin_t[(size_t)p * h2 + i] = sinf(a);
		}
}

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
