/*
 * rope_tables.c - the RoPE frequency tables of a model config, computed on
 * the host once per model and uploaded (every backend's rope op reads them).
 *
 *   inv_freq[i] = theta^(-2i/hd)                        i = 0 .. hd/2-1
 *   linear:  inv_freq[i] / factor
 *   llama3:  low-frequency components (wavelength > original_max_pos /
 *            low_freq_factor) divided by factor, high ones kept, and a
 *            smooth interpolation between (transformers'
 *            _compute_llama3_parameters)
 *   cos_t[p][i] = cos(p * inv_freq[i]), sin_t likewise, p < max_pos
 */
#include "model_int.h"

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
