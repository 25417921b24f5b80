/*
 * matmul_nf4.cu - the linear layer with a frozen NF4 weight (QLoRA), the
 * CUDA twin of ../cpu/matmul_nf4.c:
 *   forward   out[n,o]  = sum_i inp[n,i] w[o,i] + bias[o]
 *   backward  dinp[n,i] += sum_o dout[n,o] w[o,i]      (no weight gradient)
 * with w = deq(W) [OC, IC] (ft/nf4.h, nf4.cu):
 *   w[e] = NF4[code(e)] * absmax(e / 64),  e = o * IC + i,
 *   absmax(b) = absmax[b], or with double quantisation
 *             = code2[qabsmax[b]] * nested_absmax[b / 256] + offset.
 * Every pointer inside struct ft_nf4 is a device pointer (code2 included);
 * the struct itself is host memory.
 *
 * The weight is never dequantised whole: rows [o0, o0 + ro) of w go into a
 * scratch of at most SCRATCH_ELEMS floats (ro * IC), then one cuBLASLt GEMM
 * (ft_cuda_gemm, true fp32) uses that slice:
 *   forward   out[:, o0:o0+ro]  = inp w[o0:o0+ro, :]^T      (ldd = OC)
 *   backward  dinp             += dout[:, o0:o0+ro] w[o0:o0+ro, :]
 * Column-major views as in matmul.cu: the slice is cm [IC, ro] (ld IC).
 * The row slices are byte aligned because IC is even (asserted), so the
 * packed codes of a slice start at byte o0 * IC / 2.
 */
#include "cuda_int.cuh"
#include "ft/nf4.h"

#define SCRATCH_ELEMS ((size_t)8 << 20) /* 32 MiB of fp32 */

extern "C" const float ft_nf4_codebook[16];

__constant__ float nf4m_code[16];

/* out[j] for elements e0 + j, j < n (n even, e0 even) */
__global__ static void nf4_slice_kernel(float *out, const uint8_t *packed, const float *absmax,
					const uint8_t *qabsmax, const float *code2,
					const float *nested, float offset, size_t e0, size_t n)
{
	for (size_t j = blockIdx.x * (size_t)blockDim.x + threadIdx.x; j < n / 2;
	     j += (size_t)blockDim.x * gridDim.x) {
		size_t e = e0 + 2 * j, b = e / FT_NF4_BLOCK;
		float a = qabsmax ? code2[qabsmax[b]] * nested[b / FT_NF4_BLOCK2] + offset
				  : absmax[b];
		uint8_t q = packed[e / 2];
		out[2 * j] = nf4m_code[q >> 4] * a;
		out[2 * j + 1] = nf4m_code[q & 15] * a;
	}
}

static void dequant_rows(float *dst, const struct ft_nf4 *w, int64_t o0, int64_t ro)
{
	size_t e0 = (size_t)o0 * (size_t)w->cols, n = (size_t)ro * (size_t)w->cols;
	FT_CUDA_CHECK(cudaMemcpyToSymbol(nf4m_code, ft_nf4_codebook, sizeof(float) * 16));
	nf4_slice_kernel<<<ft_cuda_blocks(n / 2, 256), 256>>>(
		dst, w->packed, w->absmax, w->nested ? w->qabsmax : nullptr, w->code2,
		w->nested_absmax, w->offset, e0, n);
	FT_CUDA_LAUNCHED();
}

/* out[n, o] += bias[o] */
__global__ static void nf4_bias_kernel(float *out, const float *bias, int N, int OC)
{
	size_t total = (size_t)N * OC;
	for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total;
	     i += (size_t)blockDim.x * gridDim.x)
		out[i] += bias[i % OC];
}

/* rows of w per slice: as many as fit the scratch, at least one */
static int slice_rows(const struct ft_nf4 *w)
{
	size_t r = SCRATCH_ELEMS / (size_t)w->cols;
	return (int)(r < 1 ? 1 : r > (size_t)w->rows ? (size_t)w->rows : r);
}

extern "C" void ft_cuda_matmul_nf4_fwd(float *out, const float *inp, const struct ft_nf4 *w,
				       const float *bias, int N, int IC, int OC)
{
	FT_CUDA_ASSERT(w->rows == OC && w->cols == IC && IC % 2 == 0);
	int rs = slice_rows(w);
	float *s = (float *)ft_cuda_scratch(sizeof(float) * (size_t)rs * IC);
	for (int o0 = 0; o0 < OC; o0 += rs) {
		int ro = OC - o0 < rs ? OC - o0 : rs;
		dequant_rows(s, w, o0, ro);
		/* out^T[o0:o0+ro, :] = (s cm [IC, ro], T) (inp cm [IC, N], N) */
		ft_cuda_gemm(CUDA_R_32F, true, false, ro, N, IC, s, IC, inp, IC, out + o0, OC,
			     false);
	}
	if (bias) {
		size_t total = (size_t)N * OC;
		nf4_bias_kernel<<<ft_cuda_blocks(total, 256), 256>>>(out, bias, N, OC);
		FT_CUDA_LAUNCHED();
	}
}

extern "C" void ft_cuda_matmul_nf4_bwd_input(float *dinp, const float *dout, const struct ft_nf4 *w,
					     int N, int IC, int OC)
{
	FT_CUDA_ASSERT(w->rows == OC && w->cols == IC && IC % 2 == 0);
	int rs = slice_rows(w);
	float *s = (float *)ft_cuda_scratch(sizeof(float) * (size_t)rs * IC);
	for (int o0 = 0; o0 < OC; o0 += rs) {
		int ro = OC - o0 < rs ? OC - o0 : rs;
		dequant_rows(s, w, o0, ro);
		/* dinp^T [IC, N] += (s cm [IC, ro], N) (dout^T rows o0.. cm [ro, N] ld OC, N) */
		ft_cuda_gemm(CUDA_R_32F, false, false, IC, N, ro, s, IC, dout + o0, OC, dinp, IC,
			     true);
	}
}
