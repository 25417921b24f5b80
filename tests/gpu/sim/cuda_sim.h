/*
 * cuda_sim.h - just enough of CUDA, cuBLASLt and cuda_bf16 to run the CUDA
 * backend's own sources on a CPU, for checking their logic where no GPU is
 * available (tests/gpu/sim/README.md). NOT a performance or memory-model
 * simulation: it checks indexing, masking, tiling, reductions, barrier
 * placement and the cuBLASLt layout mapping.
 *
 * Execution model: a launch runs its blocks one after another; the threads
 * of a block are cooperative fibers (ucontext) on the calling OS thread.
 * __syncthreads() and the warp shuffles are real barriers: a fiber waits
 * until every live thread of its block (or warp) has arrived; a barrier
 * that can never complete (divergent __syncthreads, a shuffle reached by
 * part of a warp) aborts with "deadlock". Because blocks run one at a
 * time, a function-scope `static` array is exactly a block's __shared__
 * array; dynamic shared memory comes from sim_dyn_smem().
 * Device memory is host memory; "device pointers" are plain pointers.
 */
#ifndef FT_CUDA_SIM_H
#define FT_CUDA_SIM_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- qualifiers ---- */
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static
#define __constant__

struct uint3 {
	unsigned x, y, z;
};
struct dim3 {
	unsigned x, y, z;
	dim3(unsigned a = 1, unsigned b = 1, unsigned c = 1) : x(a), y(b), z(c)
	{
	}
};
extern uint3 threadIdx, blockIdx;
extern dim3 blockDim, gridDim;

/* ---- runtime ---- */
typedef int cudaError_t;
enum { cudaSuccess = 0, cudaErrorNoDevice = 100 };
typedef void *cudaStream_t;
enum cudaMemcpyKind { cudaMemcpyHostToDevice, cudaMemcpyDeviceToHost, cudaMemcpyDeviceToDevice };
enum cudaFuncAttribute { cudaFuncAttributeMaxDynamicSharedMemorySize };
struct cudaDeviceProp {
	int multiProcessorCount;
	size_t sharedMemPerBlockOptin;
};
const char *cudaGetErrorString(cudaError_t e);
cudaError_t cudaGetDeviceCount(int *n);
cudaError_t cudaSetDevice(int d);
cudaError_t cudaGetDeviceProperties(cudaDeviceProp *p, int d);
cudaError_t cudaMalloc(void **p, size_t n);
template <typename T> cudaError_t cudaMalloc(T **p, size_t n)
{
	return cudaMalloc((void **)p, n);
}
cudaError_t cudaFree(void *p);
cudaError_t cudaMemcpy(void *d, const void *s, size_t n, cudaMemcpyKind k);
cudaError_t cudaMemset(void *d, int v, size_t n);
cudaError_t cudaMemset2D(void *d, size_t pitch, int v, size_t width, size_t height);
cudaError_t cudaMemGetInfo(size_t *fr, size_t *total);
cudaError_t cudaDeviceSynchronize(void);
cudaError_t cudaGetLastError(void);
template <typename T> cudaError_t cudaMemcpyToSymbol(T &sym, const void *src, size_t n)
{
	memcpy((void *)&sym, src, n);
	return cudaSuccess;
}
cudaError_t sim_func_smem(size_t bytes);
template <typename F> cudaError_t cudaFuncSetAttribute(F *, cudaFuncAttribute, int bytes)
{
	return sim_func_smem((size_t)bytes);
}

/* ---- bf16 ---- */
struct __nv_bfloat16 {
	uint16_t x;
};
static inline float __bfloat162float(__nv_bfloat16 b)
{
	uint32_t u = (uint32_t)b.x << 16;
	float f;
	memcpy(&f, &u, 4);
	return f;
}
static inline __nv_bfloat16 __float2bfloat16_rn(float f)
{
	uint32_t u;
	memcpy(&u, &f, 4);
	__nv_bfloat16 b;
	if ((u & 0x7fffffffu) > 0x7f800000u) { /* NaN: keep it a quiet NaN */
		b.x = (uint16_t)((u >> 16) | 0x40);
		return b;
	}
	u += 0x7fffu + ((u >> 16) & 1u); /* round to nearest even */
	b.x = (uint16_t)(u >> 16);
	return b;
}

/* ---- device intrinsics ---- */
static inline int min(int a, int b)
{
	return a < b ? a : b;
}
static inline int max(int a, int b)
{
	return a > b ? a : b;
}
static inline float rsqrtf(float x)
{
	return 1.0f / sqrtf(x);
}
void __syncthreads(void);
float sim_shfl(float v, int src_lane);
float __shfl_sync(unsigned mask, float v, int src_lane);
float __shfl_xor_sync(unsigned mask, float v, int lane_mask);
static inline float atomicAdd(float *p, float v)
{
	float old = *p; /* fibers are cooperative: nothing runs in between */
	*p = old + v;
	return old;
}
float *sim_dyn_smem(void);

/* ---- launches: prep.py rewrites k<<<cfg>>>(args) as sim_launch(sim_cfg(cfg), [&] { k(args); }) */
struct sim_config {
	dim3 grid, block;
	size_t smem;
};
static inline sim_config sim_cfg(dim3 g, dim3 b, size_t smem = 0)
{
	sim_config c = { g, b, smem };
	return c;
}
void sim_launch_fn(sim_config c, void (*fn)(void *), void *arg);
template <typename F> void sim_launch(sim_config c, F f)
{
	sim_launch_fn(
		c, [](void *p) { (*(F *)p)(); }, &f);
}

/* ---- cuBLASLt (the subset matmul.cu uses), a naive column-major GEMM ---- */
typedef int cublasStatus_t;
enum { CUBLAS_STATUS_SUCCESS = 0 };
typedef enum { CUDA_R_32F = 0, CUDA_R_16BF = 14 } cudaDataType_t;
typedef enum { CUBLAS_COMPUTE_32F = 68 } cublasComputeType_t;
typedef enum { CUBLAS_OP_N = 0, CUBLAS_OP_T = 1 } cublasOperation_t;
typedef enum {
	CUBLASLT_MATMUL_DESC_TRANSA,
	CUBLASLT_MATMUL_DESC_TRANSB
} cublasLtMatmulDescAttributes_t;
typedef enum {
	CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
	CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES,
	CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
	CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES,
	CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES
} cublasLtMatmulPreferenceAttributes_t;
struct sim_lt_desc {
	cublasOperation_t ta, tb;
};
struct sim_lt_layout {
	cudaDataType_t type;
	uint64_t rows, cols;
	int64_t ld;
};
typedef void *cublasLtHandle_t;
typedef sim_lt_desc *cublasLtMatmulDesc_t;
typedef sim_lt_layout *cublasLtMatrixLayout_t;
typedef void *cublasLtMatmulPreference_t;
struct cublasLtMatmulAlgo_t {
	int id;
};
struct cublasLtMatmulHeuristicResult_t {
	cublasLtMatmulAlgo_t algo;
};
cublasStatus_t cublasLtCreate(cublasLtHandle_t *h);
cublasStatus_t cublasLtDestroy(cublasLtHandle_t h);
cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t *d, cublasComputeType_t c,
					cudaDataType_t scale);
cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t d,
					      cublasLtMatmulDescAttributes_t a, const void *v,
					      size_t n);
cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t d);
cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t *l, cudaDataType_t t,
					  uint64_t rows, uint64_t cols, int64_t ld);
cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t l);
cublasStatus_t cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t *p);
cublasStatus_t cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t p,
						    cublasLtMatmulPreferenceAttributes_t a,
						    const void *v, size_t n);
cublasStatus_t cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t p);
cublasStatus_t cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t h, cublasLtMatmulDesc_t d,
					      cublasLtMatrixLayout_t a, cublasLtMatrixLayout_t b,
					      cublasLtMatrixLayout_t c, cublasLtMatrixLayout_t dd,
					      cublasLtMatmulPreference_t p, int req,
					      cublasLtMatmulHeuristicResult_t *r, int *found);
cublasStatus_t cublasLtMatmul(cublasLtHandle_t h, cublasLtMatmulDesc_t d, const void *alpha,
			      const void *A, cublasLtMatrixLayout_t la, const void *B,
			      cublasLtMatrixLayout_t lb, const void *beta, const void *C,
			      cublasLtMatrixLayout_t lc, void *D, cublasLtMatrixLayout_t ld,
			      const cublasLtMatmulAlgo_t *algo, void *ws, size_t wsn,
			      cudaStream_t s);

#endif
