/*
 * matmul.cu - the linear layer on cuBLASLt (torch.nn.Linear, w[OC,IC]):
 *   forward   out[n,o]  = (accumulate ? out[n,o] : 0) + sum_i inp[n,i] w[o,i] + bias[o]
 *   backward  dinp[n,i] += sum_o dout[n,o] w[o,i]
 *             dw[o,i]   += sum_n dout[n,o] inp[n,i]
 *             dbias[o]  += sum_n dout[n,o]
 *
 * cuBLAS is column-major; a row-major X[R,C] is the column-major X^T[C,R]
 * with the same leading dimension C. Each product is then one call
 * D[m,n] = op(A)[m,k] op(B)[k,n] (+ D when accumulating), column-major:
 *   forward  out^T[OC,N]  = (w   is [IC,OC] cm, op T)   * (inp  [IC,N] cm, op N)
 *            m=OC n=N k=IC, lda=IC, ldb=IC, ldd=OC
 *   dinp     dinp^T[IC,N] = (w   [IC,OC] cm, op N)      * (dout [OC,N] cm, op N)
 *            m=IC n=N k=OC, lda=IC, ldb=OC, ldd=IC, beta=1
 *   dw       dw^T[IC,OC]  = (inp [IC,N] cm, op N)       * (dout [OC,N] cm, op T)
 *            m=IC n=OC k=N, lda=IC, ldb=OC, ldd=IC, beta=1
 * Types: fp32 operands with CUBLAS_COMPUTE_32F (true fp32, no TF32: the
 * CPU parity path); bf16 operands with fp32 accumulation, D in bf16
 * (activations) or fp32 (weight gradients). The bias and the bias gradient
 * are small kernels of their own (fp32 sums), so no epilogue constraint
 * (bias alignment, types) can bite.
 *
 * cuBLASLt's heuristic assumes 256-byte aligned pointers unless told; the
 * real alignment of each pointer is passed in the preference, so tensors
 * that start anywhere inside one big allocation are handled.
 */
#include "cuda_int.cuh"

/* Largest power of two (<= 256) dividing the address. */
static uint32_t align_of(const void *p)
{
	uintptr_t a = (uintptr_t)p;
	uint32_t al = 256;
	while (al > 1 && (a % al) != 0)
		al >>= 1;
	return al;
}

/* D[m,n] (+)= op(A) op(B), column-major, A/B of type ab, D of type cd. */
static void gemm(cudaDataType_t ab, cudaDataType_t cd, bool transa, bool transb, int m, int n,
		 int k, const void *A, int lda, const void *B, int ldb, void *D, int ldd,
		 bool accumulate)
{
	if (m <= 0 || n <= 0)
		return;
	struct ft_cuda_ctx *c = ft_cuda_ctx();
	float alpha = 1.0f, beta = accumulate ? 1.0f : 0.0f;
	if (k <= 0) { /* empty sum: D = beta * D */
		if (!accumulate)
			FT_CUDA_CHECK(cudaMemset2D(D, (size_t)ldd * (cd == CUDA_R_32F ? 4 : 2), 0,
						   (size_t)m * (cd == CUDA_R_32F ? 4 : 2), n));
		return;
	}
	cublasLtMatmulDesc_t op;
	cublasLtMatrixLayout_t la, lb, ld;
	cublasLtMatmulPreference_t pref;
	cublasOperation_t ta = transa ? CUBLAS_OP_T : CUBLAS_OP_N;
	cublasOperation_t tb = transb ? CUBLAS_OP_T : CUBLAS_OP_N;
	FT_CUBLAS_CHECK(cublasLtMatmulDescCreate(&op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
	FT_CUBLAS_CHECK(
		cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof(ta)));
	FT_CUBLAS_CHECK(
		cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof(tb)));
	/* stored shapes: A is m x k (or k x m when transposed), B k x n (or n x k) */
	FT_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&la, ab, transa ? k : m, transa ? m : k, lda));
	FT_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&lb, ab, transb ? n : k, transb ? k : n, ldb));
	FT_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&ld, cd, m, n, ldd));
	FT_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
	FT_CUBLAS_CHECK(
		cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
						     &c->lt_ws_bytes, sizeof(c->lt_ws_bytes)));
	uint32_t al[3] = { align_of(A), align_of(B), align_of(D) };
	FT_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
		pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &al[0], sizeof(al[0])));
	FT_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
		pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &al[1], sizeof(al[1])));
	FT_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
		pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &al[2], sizeof(al[2])));
	FT_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
		pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &al[2], sizeof(al[2])));
	cublasLtMatmulHeuristicResult_t h;
	int found = 0;
	FT_CUBLAS_CHECK(
		cublasLtMatmulAlgoGetHeuristic(c->lt, op, la, lb, ld, ld, pref, 1, &h, &found));
	if (found == 0) {
		fprintf(stderr,
			"cuBLASLt has no algorithm for m=%d n=%d k=%d lda=%d ldb=%d ldd=%d "
			"transa=%d transb=%d\n",
			m, n, k, lda, ldb, ldd, transa, transb);
		exit(EXIT_FAILURE);
	}
	FT_CUBLAS_CHECK(cublasLtMatmul(c->lt, op, &alpha, A, la, B, lb, &beta, D, ld, D, ld,
				       &h.algo, c->lt_ws, c->lt_ws_bytes, 0));
	FT_CUBLAS_CHECK(cublasLtMatmulPreferenceDestroy(pref));
	FT_CUBLAS_CHECK(cublasLtMatrixLayoutDestroy(ld));
	FT_CUBLAS_CHECK(cublasLtMatrixLayoutDestroy(lb));
	FT_CUBLAS_CHECK(cublasLtMatrixLayoutDestroy(la));
	FT_CUBLAS_CHECK(cublasLtMatmulDescDestroy(op));
}

void ft_cuda_gemm(cudaDataType_t type, bool transa, bool transb, int m, int n, int k, const void *A,
		  int lda, const void *B, int ldb, void *D, int ldd, bool accumulate)
{
	gemm(type, type, transa, transb, m, n, k, A, lda, B, ldb, D, ldd, accumulate);
}

/* out[n, o] += bias[o] */
template <typename S> __global__ static void add_bias_kernel(S *out, const S *bias, int N, int OC)
{
	size_t total = (size_t)N * OC;
	for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total;
	     i += (size_t)blockDim.x * gridDim.x)
		out[i] = st<S>(ld(out[i]) + ld(bias[i % OC]));
}

/* dbias[o] += sum_n dout[n, o]: block (32 x 8) sums 32 columns; each of the
 * 8 rows of threads takes every 8th row, then the 8 partials are added in
 * a fixed order (deterministic). */
template <typename S>
__global__ static void bias_grad_kernel(float *dbias, const S *dout, int N, int OC)
{
	__shared__ float part[8][33];
	int o = blockIdx.x * 32 + threadIdx.x;
	float s = 0.0f;
	if (o < OC)
		for (int n = threadIdx.y; n < N; n += 8)
			s += ld(dout[(size_t)n * OC + o]);
	part[threadIdx.y][threadIdx.x] = s;
	__syncthreads();
	if (threadIdx.y == 0 && o < OC) {
		float t = 0.0f;
		for (int r = 0; r < 8; r++)
			t += part[r][threadIdx.x];
		dbias[o] += t;
	}
}

template <typename S> static void add_bias(S *out, const S *bias, int N, int OC)
{
	size_t total = (size_t)N * OC;
	add_bias_kernel<S><<<ft_cuda_blocks(total, 256), 256>>>(out, bias, N, OC);
	FT_CUDA_LAUNCHED();
}

template <typename S> static void bias_grad(float *dbias, const S *dout, int N, int OC)
{
	dim3 block(32, 8);
	bias_grad_kernel<S><<<(OC + 31) / 32, block>>>(dbias, dout, N, OC);
	FT_CUDA_LAUNCHED();
}

extern "C" void ft_cuda_matmul_fwd(float *out, const float *inp, const float *w, const float *bias,
				   int N, int IC, int OC, bool accumulate)
{
	gemm(CUDA_R_32F, CUDA_R_32F, true, false, OC, N, IC, w, IC, inp, IC, out, OC, accumulate);
	if (bias && N > 0 && OC > 0)
		add_bias(out, bias, N, OC);
}

extern "C" void ft_cuda_matmul_bwd(float *dinp, float *dw, float *dbias, const float *dout,
				   const float *inp, const float *w, int N, int IC, int OC)
{
	if (dinp)
		gemm(CUDA_R_32F, CUDA_R_32F, false, false, IC, N, OC, w, IC, dout, OC, dinp, IC,
		     true);
	if (dw)
		gemm(CUDA_R_32F, CUDA_R_32F, false, true, IC, OC, N, inp, IC, dout, OC, dw, IC,
		     true);
	if (dbias && N > 0 && OC > 0)
		bias_grad(dbias, dout, N, OC);
}

extern "C" void ft_cuda_matmul_fwd_bf16(ft_bf16 *out, const ft_bf16 *inp, const ft_bf16 *w,
					const ft_bf16 *bias, int N, int IC, int OC, bool accumulate)
{
	gemm(CUDA_R_16BF, CUDA_R_16BF, true, false, OC, N, IC, w, IC, inp, IC, out, OC, accumulate);
	if (bias && N > 0 && OC > 0)
		add_bias((__nv_bfloat16 *)out, (const __nv_bfloat16 *)bias, N, OC);
}

extern "C" void ft_cuda_matmul_bwd_bf16(ft_bf16 *dinp, float *dw, float *dbias, const ft_bf16 *dout,
					const ft_bf16 *inp, const ft_bf16 *w, int N, int IC, int OC)
{
	if (dinp)
		gemm(CUDA_R_16BF, CUDA_R_16BF, false, false, IC, N, OC, w, IC, dout, OC, dinp, IC,
		     true);
	if (dw)
		gemm(CUDA_R_16BF, CUDA_R_32F, false, true, IC, OC, N, inp, IC, dout, OC, dw, IC,
		     true);
	if (dbias && N > 0 && OC > 0)
		bias_grad(dbias, (const __nv_bfloat16 *)dout, N, OC);
}
