/*
 * embedding.cu - token embedding lookup:
 *   out[n, :]        = wte[ids[n], :]
 *   dwte[ids[n], :] += dout[n, :]
 * Forward: one thread per element. Backward: one thread per element with
 * an fp32 atomicAdd into the row of its token (rows of a repeated token are
 * summed in whatever order the atomics land: the last bits may vary between
 * runs; the CPU sums in row order). dwte is fp32 in both variants.
 */
#include "cuda_int.cuh"

template <typename S>
__global__ static void emb_fwd_kernel(S *out, const int32_t *ids, const S *wte, int N, int C)
{
	size_t total = (size_t)N * C;
	for (size_t t = blockIdx.x * (size_t)blockDim.x + threadIdx.x; t < total;
	     t += (size_t)blockDim.x * gridDim.x) {
		size_t n = t / C, c = t % C;
		out[t] = wte[(size_t)ids[n] * C + c];
	}
}

template <typename S>
__global__ static void emb_bwd_kernel(float *dwte, const S *dout, const int32_t *ids, int N, int C)
{
	size_t total = (size_t)N * C;
	for (size_t t = blockIdx.x * (size_t)blockDim.x + threadIdx.x; t < total;
	     t += (size_t)blockDim.x * gridDim.x) {
		size_t n = t / C, c = t % C;
		atomicAdd(&dwte[(size_t)ids[n] * C + c], ld(dout[t]));
	}
}

typedef __nv_bfloat16 bf;

template <typename S> static void emb_fwd(S *out, const int32_t *ids, const S *wte, int N, int C)
{
	size_t total = (size_t)N * C;
	if (total == 0)
		return;
	emb_fwd_kernel<S><<<ft_cuda_blocks(total, 256), 256>>>(out, ids, wte, N, C);
	FT_CUDA_LAUNCHED();
}

template <typename S>
static void emb_bwd(float *dwte, const S *dout, const int32_t *ids, int N, int C)
{
	size_t total = (size_t)N * C;
	if (total == 0 || !dwte)
		return;
	emb_bwd_kernel<S><<<ft_cuda_blocks(total, 256), 256>>>(dwte, dout, ids, N, C);
	FT_CUDA_LAUNCHED();
}

extern "C" void ft_cuda_embedding_fwd(float *out, const int32_t *ids, const float *wte, int N,
				      int C)
{
	emb_fwd<float>(out, ids, wte, N, C);
}

extern "C" void ft_cuda_embedding_bwd(float *dwte, const float *dout, const int32_t *ids, int N,
				      int C)
{
	emb_bwd<float>(dwte, dout, ids, N, C);
}

extern "C" void ft_cuda_embedding_fwd_bf16(ft_bf16 *out, const int32_t *ids, const ft_bf16 *wte,
					   int N, int C)
{
	emb_fwd<bf>((bf *)out, ids, (const bf *)wte, N, C);
}

extern "C" void ft_cuda_embedding_bwd_bf16(float *dwte, const ft_bf16 *dout, const int32_t *ids,
					   int N, int C)
{
	emb_bwd<bf>(dwte, (const bf *)dout, ids, N, C);
}
