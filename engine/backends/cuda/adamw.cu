/*
 * adamw.cu - torch.optim.AdamW (decoupled weight decay) on fp32 master
 * weights, step t >= 1, elementwise:
 *   p  = p * (1 - lr * wd)
 *   m  = m + (g - m) * (1 - beta1)             (torch's lerp)
 *   v  = v * beta2 + (1 - beta2) * g * g
 *   p  = p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
 * The scalars are computed on the host in double (as the CPU backend), the
 * update in fp32; optionally the new p is also written as bf16 (the copy
 * the bf16 forward reads).
 *
 * Global norm helpers (torch.nn.utils.clip_grad_norm_):
 *   sumsq = sum_i x_i^2   in double: a fixed grid of SUMSQ_BLOCKS blocks,
 *           each sums a grid-stride slice into a double partial (block
 *           reduction in a fixed tree), the partials are added on the host in
 *           block order - the same result on every run;
 *   scale: x_i *= s.
 */
#include "cuda_int.cuh"

#define SUMSQ_BLOCKS 512
#define SUMSQ_THREADS 256

struct adamw_k {
	float decay, b1, b2, step_size, bc2_sqrt, eps;
};

__global__ static void adamw_kernel(float *p, const float *g, float *m, float *v, size_t n,
				    struct adamw_k k, __nv_bfloat16 *copy)
{
	for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
	     i += (size_t)blockDim.x * gridDim.x) {
		float gi = g[i];
		float pi = p[i] * k.decay;
		float mi = m[i] + (gi - m[i]) * (1.0f - k.b1);
		float vi = v[i] * k.b2 + (1.0f - k.b2) * gi * gi;
		float denom = sqrtf(vi) / k.bc2_sqrt + k.eps;
		pi = pi - k.step_size * (mi / denom);
		p[i] = pi;
		m[i] = mi;
		v[i] = vi;
		if (copy)
			copy[i] = __float2bfloat16_rn(pi);
	}
}

static struct adamw_k adamw_scalars(const struct ft_adamw_args *a)
{
	double bc1 = 1.0 - pow(a->beta1, (double)a->step);
	double bc2 = 1.0 - pow(a->beta2, (double)a->step);
	struct adamw_k k;
	k.decay = (float)(1.0 - a->lr * a->weight_decay);
	k.b1 = (float)a->beta1;
	k.b2 = (float)a->beta2;
	k.step_size = (float)(a->lr / bc1);
	k.bc2_sqrt = (float)sqrt(bc2);
	k.eps = (float)a->eps;
	return k;
}

extern "C" void ft_cuda_adamw_bf16copy(float *param, const float *grad, float *m, float *v,
				       size_t n, const struct ft_adamw_args *a, ft_bf16 *copy)
{
	FT_CUDA_ASSERT(a->step >= 1);
	if (n == 0)
		return;
	adamw_kernel<<<ft_cuda_blocks(n, 256), 256>>>(param, grad, m, v, n, adamw_scalars(a),
						      (__nv_bfloat16 *)copy);
	FT_CUDA_LAUNCHED();
}

extern "C" void ft_cuda_adamw(float *param, const float *grad, float *m, float *v, size_t n,
			      const struct ft_adamw_args *a)
{
	ft_cuda_adamw_bf16copy(param, grad, m, v, n, a, nullptr);
}

__global__ static void sumsq_kernel(double *part, const float *x, size_t n)
{
	__shared__ double sh[SUMSQ_THREADS];
	double s = 0.0;
	for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
	     i += (size_t)blockDim.x * gridDim.x)
		s += (double)x[i] * x[i];
	sh[threadIdx.x] = s;
	__syncthreads();
	for (int w = SUMSQ_THREADS / 2; w > 0; w >>= 1) {
		if ((int)threadIdx.x < w)
			sh[threadIdx.x] += sh[threadIdx.x + w];
		__syncthreads();
	}
	if (threadIdx.x == 0)
		part[blockIdx.x] = sh[0];
}

extern "C" double ft_cuda_sumsq(const float *x, size_t n)
{
	if (n == 0)
		return 0.0;
	double *part = (double *)ft_cuda_scratch(SUMSQ_BLOCKS * sizeof(double));
	sumsq_kernel<<<SUMSQ_BLOCKS, SUMSQ_THREADS>>>(part, x, n);
	FT_CUDA_LAUNCHED();
	double host[SUMSQ_BLOCKS];
	FT_CUDA_CHECK(cudaMemcpy(host, part, sizeof(host), cudaMemcpyDeviceToHost));
	double s = 0.0;
	for (int b = 0; b < SUMSQ_BLOCKS; b++)
		s += host[b];
	return s;
}

__global__ static void scale_kernel(float *x, size_t n, float s)
{
	for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
	     i += (size_t)blockDim.x * gridDim.x)
		x[i] *= s;
}

extern "C" void ft_cuda_scale(float *x, size_t n, float s)
{
	if (n == 0)
		return;
	scale_kernel<<<ft_cuda_blocks(n, 256), 256>>>(x, n, s);
	FT_CUDA_LAUNCHED();
}
