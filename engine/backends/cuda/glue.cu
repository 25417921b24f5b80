/*
 * glue.cu - the memory operations and the small elementwise glue of
 * struct ft_backend (ft/backend.h; the CPU twins are in ../cpu/glue.c):
 *   add               y[i] += x[i]
 *   dropout_fwd       out[i] = mask[i] ? in[i] * keep : 0
 *   dropout_bwd       din[i] += mask[i] ? dout[i] * keep : 0
 *   attention_decode  for each head h (kv group g = h / (nh / nkv)):
 *                       s_j = (q_h . k_j,g) / sqrt(hd)        j0 <= j <= pos
 *                       p_j = exp(s_j - max s) / sum_j exp(s_j - max s)
 *                       out_h = sum_j p_j v_j,g
 *                     one block per head; the scores live in the op's
 *                     device scratch (nh rows; the caller's `scores` buffer,
 *                     one row, is for the CPU's serial loop), the sum in
 *                     double as the CPU does.
 * Elementwise kernels: one thread per element, grid-stride.
 */
#include "cuda_int.cuh"

#define DEC_THREADS 128

__global__ static void add_kernel(float *y, const float *x, size_t n)
{
	for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
	     i += (size_t)blockDim.x * gridDim.x)
		y[i] += x[i];
}

__global__ static void dropout_fwd_kernel(float *out, const float *in, const uint8_t *mask,
					  size_t n, float keep)
{
	for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
	     i += (size_t)blockDim.x * gridDim.x)
		out[i] = mask[i] ? in[i] * keep : 0.0f;
}

__global__ static void dropout_bwd_kernel(float *din, const float *dout, const uint8_t *mask,
					  size_t n, float keep)
{
	for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
	     i += (size_t)blockDim.x * gridDim.x)
		if (mask[i])
			din[i] += dout[i] * keep;
}

__global__ static void decode_kernel(float *out, float *scores, const float *q, const float *kc,
				     const float *vc, int j0, int pos, int nh, int nkv, int hd)
{
	__shared__ float smax[DEC_THREADS];
	__shared__ double ssum[DEC_THREADS];
	int h = blockIdx.x, g = h / (nh / nkv), kd = nkv * hd, t = threadIdx.x;
	float scale = 1.0f / sqrtf((float)hd);
	const float *qh = q + (size_t)h * hd;
	float *sc = scores + (size_t)h * (pos + 1);
	float mx = -INFINITY;
	for (int j = j0 + t; j <= pos; j += DEC_THREADS) {
		const float *kj = kc + (size_t)j * kd + (size_t)g * hd;
		float s = 0.0f;
		for (int d = 0; d < hd; d++)
			s += qh[d] * kj[d];
		sc[j] = s * scale;
		mx = fmaxf(mx, sc[j]);
	}
	smax[t] = mx;
	__syncthreads();
	for (int w = DEC_THREADS / 2; w > 0; w /= 2) {
		if (t < w)
			smax[t] = fmaxf(smax[t], smax[t + w]);
		__syncthreads();
	}
	mx = smax[0];
	double sum = 0.0;
	for (int j = j0 + t; j <= pos; j += DEC_THREADS) {
		float e = expf(sc[j] - mx);
		sc[j] = e;
		sum += e;
	}
	ssum[t] = sum;
	__syncthreads();
	for (int w = DEC_THREADS / 2; w > 0; w /= 2) {
		if (t < w)
			ssum[t] += ssum[t + w];
		__syncthreads();
	}
	float inv = (float)(1.0 / ssum[0]);
	for (int d = t; d < hd; d += DEC_THREADS) {
		float o = 0.0f;
		for (int j = j0; j <= pos; j++)
			o += sc[j] * vc[(size_t)j * kd + (size_t)g * hd + d];
		out[(size_t)h * hd + d] = o * inv;
	}
}

extern "C" void *ft_cuda_be_alloc(size_t bytes)
{
	struct ft_err err;
	ft_err_clear(&err);
	return ft_cuda_alloc(bytes, &err);
}

extern "C" void ft_cuda_be_zero(void *dev, size_t bytes)
{
	if (bytes)
		ft_cuda_memset(dev, 0, bytes);
}

extern "C" void ft_cuda_be_copy(void *dst, const void *src, size_t bytes)
{
	if (bytes)
		FT_CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToDevice));
}

extern "C" bool ft_cuda_be_mem_info(size_t *free_bytes, size_t *total_bytes)
{
	struct ft_err err;
	ft_err_clear(&err);
	return ft_cuda_mem_info(free_bytes, total_bytes, &err) == FT_OK;
}

extern "C" void ft_cuda_add(float *y, const float *x, size_t n)
{
	if (n == 0)
		return;
	add_kernel<<<ft_cuda_blocks(n, 256), 256>>>(y, x, n);
	FT_CUDA_LAUNCHED();
}

extern "C" void ft_cuda_dropout_fwd(float *out, const float *in, const uint8_t *mask, size_t n,
				    float keep)
{
	if (n == 0)
		return;
	dropout_fwd_kernel<<<ft_cuda_blocks(n, 256), 256>>>(out, in, mask, n, keep);
	FT_CUDA_LAUNCHED();
}

extern "C" void ft_cuda_dropout_bwd(float *din, const float *dout, const uint8_t *mask, size_t n,
				    float keep)
{
	if (n == 0)
		return;
	dropout_bwd_kernel<<<ft_cuda_blocks(n, 256), 256>>>(din, dout, mask, n, keep);
	FT_CUDA_LAUNCHED();
}

extern "C" void ft_cuda_attention_decode(float *out, float *scores, const float *q, const float *kc,
					 const float *vc, int j0, int pos, int nh, int nkv, int hd)
{
	(void)scores; /* one row; the heads run at once here */
	float *sc = (float *)ft_cuda_scratch(sizeof(float) * (size_t)nh * (pos + 1));
	decode_kernel<<<nh, DEC_THREADS>>>(out, sc, q, kc, vc, j0, pos, nh, nkv, hd);
	FT_CUDA_LAUNCHED();
}
