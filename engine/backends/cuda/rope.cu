/*
 * rope.cu - rotary position embedding, rotate-half form (transformers'
 * apply_rotary_pos_emb), in place on each head of x[N, heads*hd]:
 *   for i < hd/2, with c = cos_t[pos[n], i], s = sin_t[pos[n], i]:
 *     y[i]        = x[i] c - x[i+hd/2] s
 *     y[i+hd/2]   = x[i+hd/2] c + x[i] s
 * Backward applies the transposed rotation (s -> -s) to dy.
 * The tables cos_t/sin_t [max_pos, hd/2] are fp32 on the device (the CPU's
 * ft_rope_tables, uploaded); positions come from the positions array, so
 * packed documents restart at 0. One thread per (row, head, pair).
 */
#include "cuda_int.cuh"

template <typename S>
__global__ static void rope_kernel(S *x, const float *cos_t, const float *sin_t, const int32_t *pos,
				   int N, int heads, int hd, float sign)
{
	int h2 = hd / 2;
	size_t total = (size_t)N * heads * h2;
	for (size_t t = blockIdx.x * (size_t)blockDim.x + threadIdx.x; t < total;
	     t += (size_t)blockDim.x * gridDim.x) {
		int i = (int)(t % h2);
		size_t nh = t / h2; /* n * heads + head */
		size_t n = nh / heads;
		size_t p = (size_t)pos[n] * h2 + i;
		float c = cos_t[p], s = sign * sin_t[p];
		S *v = x + nh * hd;
		float x1 = ld(v[i]), x2 = ld(v[i + h2]);
		v[i] = st<S>(x1 * c - x2 * s);
		v[i + h2] = st<S>(x2 * c + x1 * s);
	}
}

template <typename S>
static void rope(S *x, const float *cos_t, const float *sin_t, const int32_t *pos, int N, int heads,
		 int hd, float sign)
{
	FT_CUDA_ASSERT(hd % 2 == 0);
	size_t total = (size_t)N * heads * (hd / 2);
	if (total == 0)
		return;
	rope_kernel<S>
		<<<ft_cuda_blocks(total, 256), 256>>>(x, cos_t, sin_t, pos, N, heads, hd, sign);
	FT_CUDA_LAUNCHED();
}

typedef __nv_bfloat16 bf;

extern "C" void ft_cuda_rope_fwd(float *x, const float *cos_t, const float *sin_t,
				 const int32_t *pos, int N, int heads, int hd)
{
	rope<float>(x, cos_t, sin_t, pos, N, heads, hd, 1.0f);
}

extern "C" void ft_cuda_rope_bwd(float *dx, const float *cos_t, const float *sin_t,
				 const int32_t *pos, int N, int heads, int hd)
{
	rope<float>(dx, cos_t, sin_t, pos, N, heads, hd, -1.0f);
}

extern "C" void ft_cuda_rope_fwd_bf16(ft_bf16 *x, const float *cos_t, const float *sin_t,
				      const int32_t *pos, int N, int heads, int hd)
{
	rope<bf>((bf *)x, cos_t, sin_t, pos, N, heads, hd, 1.0f);
}

extern "C" void ft_cuda_rope_bwd_bf16(ft_bf16 *dx, const float *cos_t, const float *sin_t,
				      const int32_t *pos, int N, int heads, int hd)
{
	rope<bf>((bf *)dx, cos_t, sin_t, pos, N, heads, hd, -1.0f);
}
