/*
 * cuda_int.cuh - private declarations of the CUDA backend (engine/backends/cuda/).
 *
 * One small .cu file per layer (math at its top), as in ../cpu/; this header
 * holds what they share:
 *   - the per-thread context (device, cuBLASLt handle and workspace, a
 *     scratch buffer that grows on demand): one host thread drives one GPU,
 *     so data parallelism may run one thread per GPU in one process;
 *   - storage types: every kernel is a template over its storage type S
 *     (float or __nv_bfloat16) and computes in fp32 (ld()/st() convert);
 *   - warp and block reductions, the launch-size helper, error checks.
 * Every launch goes to the legacy default stream, so ops run in program
 * order; ops that return host values (sumsq, cross-entropy statistics)
 * synchronise by copying their result back.
 */
#ifndef FT_CUDA_INT_CUH
#define FT_CUDA_INT_CUH

#include <cublasLt.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "ft/cuda_check.h"

extern "C" {
#include "ft/backend_cuda.h"
}

static inline void ft_cublas_check_(cublasStatus_t s, const char *file, int line)
{
	if (s != CUBLAS_STATUS_SUCCESS) {
		fprintf(stderr, "%s:%d: cuBLAS error %d\n", file, line, (int)s);
		exit(EXIT_FAILURE);
	}
}
#define FT_CUBLAS_CHECK(call) ft_cublas_check_((call), __FILE__, __LINE__)

/* Programmer errors in the CUDA backend: abort with file and line. */
#define FT_CUDA_ASSERT(e)                                                                         \
	do {                                                                                      \
		if (!(e)) {                                                                       \
			fprintf(stderr, "%s:%d: assertion failed: %s\n", __FILE__, __LINE__, #e); \
			exit(EXIT_FAILURE);                                                       \
		}                                                                                 \
	} while (0)

/* After every launch: report a bad configuration at its call site. */
#define FT_CUDA_LAUNCHED() FT_CUDA_CHECK(cudaGetLastError())

struct ft_cuda_ctx {
	int device; /* -1: this thread has not called ft_cuda_init */
	cublasLtHandle_t lt;
	void *lt_ws; /* cuBLASLt workspace */
	size_t lt_ws_bytes;
	void *scratch; /* grows on demand (ft_cuda_scratch) */
	size_t scratch_bytes;
	int sm_count;
	size_t smem_optin; /* largest dynamic shared memory a block may opt into */
};

/* The calling thread's context; aborts when ft_cuda_init was not called. */
struct ft_cuda_ctx *ft_cuda_ctx(void);
/* At least `bytes` of device scratch for the current op (contents undefined;
 * valid until the next call; synchronises when it has to grow). */
void *ft_cuda_scratch(size_t bytes);

/* Blocks for n elements at `threads` per block, capped for grid-stride loops. */
static inline unsigned ft_cuda_blocks(size_t n, unsigned threads)
{
	size_t b = (n + threads - 1) / threads;
	if (b == 0)
		b = 1;
	if (b > 65535u * 16u)
		b = 65535u * 16u;
	return (unsigned)b;
}

/* ---- storage types: load as fp32, store from fp32 ---- */
__device__ __forceinline__ float ld(float x)
{
	return x;
}
__device__ __forceinline__ float ld(__nv_bfloat16 x)
{
	return __bfloat162float(x);
}
template <typename S> __device__ __forceinline__ S st(float x);
template <> __device__ __forceinline__ float st<float>(float x)
{
	return x;
}
template <> __device__ __forceinline__ __nv_bfloat16 st<__nv_bfloat16>(float x)
{
	return __float2bfloat16_rn(x);
}

/* ---- reductions (blockDim.x a multiple of 32, at most 1024) ---- */
__device__ __forceinline__ float warp_sum(float v)
{
	for (int o = 16; o > 0; o >>= 1)
		v += __shfl_xor_sync(0xffffffffu, v, o);
	return v;
}
__device__ __forceinline__ float warp_max(float v)
{
	for (int o = 16; o > 0; o >>= 1)
		v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
	return v;
}
/* Sum over the block, returned to every thread. `sh` holds 32 floats; the
 * call contains __syncthreads, so every thread of the block must reach it. */
__device__ __forceinline__ float block_sum(float v, float *sh)
{
	int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
	v = warp_sum(v);
	__syncthreads(); /* sh may still be read by a previous reduction */
	if (lane == 0)
		sh[warp] = v;
	__syncthreads();
	v = lane < nw ? sh[lane] : 0.0f;
	return warp_sum(v);
}

/* ---- ops, one group per file (semantics: ft/backend.h, ft/backend_cuda.h) ---- */
/* matmul.cu */
void ft_cuda_gemm(cudaDataType_t type, bool transa, bool transb, int m, int n, int k, const void *A,
		  int lda, const void *B, int ldb, void *D, int ldd, bool accumulate);

#endif
