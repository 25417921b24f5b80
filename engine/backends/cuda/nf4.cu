/*
 * nf4.cu - dequantisation of bitsandbytes' 4-bit NormalFloat (QLoRA).
 *
 * Storage (bnb.functional.quantize_4bit, quant_type "nf4", blocksize 64):
 *   packed[i/2]   two codes per byte, element i even in the HIGH nibble
 *                 (code = packed >> 4), i odd in the low one (packed & 15);
 *   absmax[b]     fp32 scale of block b = i / 64.
 *   w[i] = NF4[code(i)] * absmax[i / 64]
 * With double quantisation (compress_statistics=True) the absmax are
 * themselves blockwise 8-bit quantised in blocks of 256, plus a mean offset:
 *   absmax[b] = code2[qabsmax[b]] * absmax2[b / 256] + offset
 * where code2 is the 256-value dynamic map (quant_state.state2.code) and
 * absmax2 its per-block scales (state2.absmax).
 *
 * NF4 codebook: the 16 quantiles of N(0, 1) normalised to [-1, 1] with an
 * exact zero, as bitsandbytes lists them (functional.py get_4bit_type).
 * One thread per byte (two outputs).
 */
#include "cuda_int.cuh"

extern "C" const float ft_nf4_codebook[16] = {
	-1.0f,
	-0.6961928009986877f,
	-0.5250730514526367f,
	-0.39491748809814453f,
	-0.28444138169288635f,
	-0.18477343022823334f,
	-0.09105003625154495f,
	0.0f,
	0.07958029955625534f,
	0.16093020141124725f,
	0.24611230194568634f,
	0.33791524171829224f,
	0.44070982933044434f,
	0.5626170039176941f,
	0.7229568362236023f,
	1.0f,
};

__constant__ float nf4_code[16];

static void upload_codebook(void)
{
	/* once per thread's device; cheap (64 bytes) and idempotent */
	FT_CUDA_CHECK(cudaMemcpyToSymbol(nf4_code, ft_nf4_codebook, sizeof(ft_nf4_codebook)));
}

template <typename S>
__global__ static void nf4_kernel(S *out, const uint8_t *packed, const float *absmax,
				  const uint8_t *qabsmax, const float *code2, const float *absmax2,
				  float offset, size_t nbytes)
{
	for (size_t j = blockIdx.x * (size_t)blockDim.x + threadIdx.x; j < nbytes;
	     j += (size_t)blockDim.x * gridDim.x) {
		size_t i = 2 * j, b = i / FT_NF4_BLOCK; /* i and i+1 share a block (64 is even) */
		float a = qabsmax ? code2[qabsmax[b]] * absmax2[b / FT_NF4_BLOCK2] + offset
				  : absmax[b];
		uint8_t q = packed[j];
		out[i] = st<S>(nf4_code[q >> 4] * a);
		out[i + 1] = st<S>(nf4_code[q & 15] * a);
	}
}

template <typename S>
static void nf4(S *out, const uint8_t *packed, const float *absmax, const uint8_t *qabsmax,
		const float *code2, const float *absmax2, float offset, size_t n)
{
	FT_CUDA_ASSERT(n % 2 == 0);
	if (n == 0)
		return;
	upload_codebook();
	size_t nbytes = n / 2;
	nf4_kernel<S><<<ft_cuda_blocks(nbytes, 256), 256>>>(out, packed, absmax, qabsmax, code2,
							    absmax2, offset, nbytes);
	FT_CUDA_LAUNCHED();
}

typedef __nv_bfloat16 bf;

extern "C" void ft_cuda_nf4_dequant_bf16(ft_bf16 *out, const uint8_t *packed, const float *absmax,
					 size_t n)
{
	nf4<bf>((bf *)out, packed, absmax, nullptr, nullptr, nullptr, 0.0f, n);
}

extern "C" void ft_cuda_nf4_dequant_f32(float *out, const uint8_t *packed, const float *absmax,
					size_t n)
{
	nf4<float>(out, packed, absmax, nullptr, nullptr, nullptr, 0.0f, n);
}

extern "C" void ft_cuda_nf4_dequant_dq_bf16(ft_bf16 *out, const uint8_t *packed,
					    const uint8_t *qabsmax, const float *code2,
					    const float *absmax2, float offset, size_t n)
{
	nf4<bf>((bf *)out, packed, nullptr, qabsmax, code2, absmax2, offset, n);
}
