/*
 * glue.c - the CPU backend's memory operations and the small elementwise
 * ops the model's host code used to run as loops (ft/backend.h).
 *
 * Memory: host memory, 64-byte aligned (aligned_alloc); upload, download
 * and copy are memcpy, zero is memset.
 *
 *   add               y[i] += x[i]
 *   dropout_fwd       out[i] = mask[i] ? in[i] * keep : 0
 *   dropout_bwd       din[i] += dout[i] * keep      where mask[i]
 *   attention_decode  for each head h (kv group g = h / (nh / nkv)):
 *                       s_j = (q_h . k_j,g) / sqrt(hd)        j0 <= j <= pos
 *                       p_j = exp(s_j - max s) / sum_j exp(s_j - max s)
 *                       out_h = sum_j p_j v_j,g
 *                     (the scores' sum in double, as generation always did)
 * These are the exact loops the model, LoRA and generation ran on the host
 * before memory moved to the backend, and this file is compiled as those
 * were (no FMA contraction: trainer/CMakeLists.txt), so results did not
 * change by a bit.
 */
#include "cpu_int.h"

#include <math.h>

void *ft_cpu_alloc(size_t bytes)
{
	size_t n = (bytes + 63) & ~(size_t)63;
	return aligned_alloc(64, n ? n : 64);
}

void ft_cpu_free(void *dev)
{
	free(dev);
}

void ft_cpu_upload(void *dev, const void *host, size_t bytes)
{
	if (bytes)
		memcpy(dev, host, bytes);
}

void ft_cpu_download(void *host, const void *dev, size_t bytes)
{
	if (bytes)
		memcpy(host, dev, bytes);
}

void ft_cpu_zero(void *dev, size_t bytes)
{
	if (bytes)
		memset(dev, 0, bytes);
}

void ft_cpu_copy(void *dst, const void *src, size_t bytes)
{
	if (bytes && dst != src)
		memmove(dst, src, bytes);
}

void ft_cpu_add(float *y, const float *x, size_t n)
{
	for (size_t i = 0; i < n; i++)
		y[i] += x[i];
}

void ft_cpu_dropout_fwd(float *out, const float *in, const uint8_t *mask, size_t n, float keep)
{
	for (size_t i = 0; i < n; i++)
		out[i] = mask[i] ? in[i] * keep : 0.0f;
}

void ft_cpu_dropout_bwd(float *din, const float *dout, const uint8_t *mask, size_t n, float keep)
{
	for (size_t i = 0; i < n; i++)
		if (mask[i])
			din[i] += dout[i] * keep;
}

void ft_cpu_attention_decode(float *out, float *scores, const float *q, const float *kc,
			     const float *vc, int j0, int pos, int nh, int nkv, int hd)
{
	int kd = nkv * hd;
	float scale = 1.0f / sqrtf((float)hd);
	for (int h = 0; h < nh; h++) {
		int g = h / (nh / nkv);
		const float *qh = q + (size_t)h * hd;
		float mx = -INFINITY;
		for (int j = j0; j <= pos; j++) {
			const float *kj = kc + (size_t)j * kd + (size_t)g * hd;
			float s = 0;
			for (int d = 0; d < hd; d++)
				s += qh[d] * kj[d];
			scores[j] = s * scale;
			mx = fmaxf(mx, scores[j]);
		}
		double sum = 0;
		for (int j = j0; j <= pos; j++) {
			scores[j] = expf(scores[j] - mx);
			sum += scores[j];
		}
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
