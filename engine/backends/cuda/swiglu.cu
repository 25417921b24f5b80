/*
 * swiglu.cu - the gated MLP activation of Llama, elementwise over n:
 *   out = silu(gate) * up,   silu(x) = x * sigmoid(x)
 * Backward, with s = sigmoid(gate):
 *   dup   += dout * silu(gate)
 *   dgate += dout * up * s * (1 + gate * (1 - s))
 * One thread per element (grid-stride), fp32 math.
 */
#include "cuda_int.cuh"

template <typename S>
__global__ static void swiglu_fwd_kernel(S *out, const S *gate, const S *up, size_t n)
{
	for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
	     i += (size_t)blockDim.x * gridDim.x) {
		float g = ld(gate[i]);
		out[i] = st<S>(g / (1.0f + expf(-g)) * ld(up[i]));
	}
}

template <typename S>
__global__ static void swiglu_bwd_kernel(S *dgate, S *dup, const S *dout, const S *gate,
					 const S *up, size_t n)
{
	for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
	     i += (size_t)blockDim.x * gridDim.x) {
		float g = ld(gate[i]), s = 1.0f / (1.0f + expf(-g)), d = ld(dout[i]);
		dup[i] = st<S>(ld(dup[i]) + d * g * s);
		dgate[i] = st<S>(ld(dgate[i]) + d * ld(up[i]) * s * (1.0f + g * (1.0f - s)));
	}
}

typedef __nv_bfloat16 bf;

template <typename S> static void swiglu_fwd(S *out, const S *gate, const S *up, size_t n)
{
	if (n == 0)
		return;
	swiglu_fwd_kernel<S><<<ft_cuda_blocks(n, 256), 256>>>(out, gate, up, n);
	FT_CUDA_LAUNCHED();
}

template <typename S>
static void swiglu_bwd(S *dgate, S *dup, const S *dout, const S *gate, const S *up, size_t n)
{
	if (n == 0)
		return;
	swiglu_bwd_kernel<S><<<ft_cuda_blocks(n, 256), 256>>>(dgate, dup, dout, gate, up, n);
	FT_CUDA_LAUNCHED();
}

extern "C" void ft_cuda_swiglu_fwd(float *out, const float *gate, const float *up, size_t n)
{
	swiglu_fwd<float>(out, gate, up, n);
}

extern "C" void ft_cuda_swiglu_bwd(float *dgate, float *dup, const float *dout, const float *gate,
				   const float *up, size_t n)
{
	swiglu_bwd<float>(dgate, dup, dout, gate, up, n);
}

extern "C" void ft_cuda_swiglu_fwd_bf16(ft_bf16 *out, const ft_bf16 *gate, const ft_bf16 *up,
					size_t n)
{
	swiglu_fwd<bf>((bf *)out, (const bf *)gate, (const bf *)up, n);
}

extern "C" void ft_cuda_swiglu_bwd_bf16(ft_bf16 *dgate, ft_bf16 *dup, const ft_bf16 *dout,
					const ft_bf16 *gate, const ft_bf16 *up, size_t n)
{
	swiglu_bwd<bf>((bf *)dgate, (bf *)dup, (const bf *)dout, (const bf *)gate, (const bf *)up,
		       n);
}
