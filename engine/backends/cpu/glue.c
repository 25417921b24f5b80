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
 * (attention_decode moved to attention_decode.c, compiled as the kernels.)
 * These are the exact loops the model, LoRA and generation ran on the host
 * before memory moved to the backend, and this file is compiled as those
 * were (no FMA contraction: engine/CMakeLists.txt), so results did not
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
