/*
 * rmsnorm.cu - RMSNorm (LlamaRMSNorm), per row of C channels:
 *   r      = 1 / sqrt(mean_i x_i^2 + eps)          (rstd[n], saved)
 *   y_i    = w_i * (x_i * r)
 * Backward, with g_i = dy_i * w_i:
 *   dx_j  += r * g_j - r^3 / C * x_j * sum_i g_i x_i
 *   dw_i  += sum_n dy_i * x_i * r
 * Fused residual variant (the pre-norm block boundary): res = a + b, then
 * the forward above on res (res is stored in the storage type and the norm
 * reads back the stored value, so it equals rmsnorm(res) exactly).
 *
 * Kernels: one block of 256 threads per row (fp32 block reduction); the
 * weight gradient is a separate kernel, one thread per channel over a chunk
 * of 256 rows, the chunk partials added with atomicAdd (fp32; order of the
 * chunks varies, so the last bits may differ between runs).
 */
#include "cuda_int.cuh"

#define RMS_THREADS 256
#define RMS_DW_ROWS 256

template <typename S>
__global__ static void rms_fwd_kernel(S *out, float *rstd, const S *inp, const S *w, int C,
				      float eps, S *res, const S *b)
{
	__shared__ float sh[32];
	size_t row = blockIdx.x;
	const S *x = inp + row * C;
	S *y = out + row * C;
	float ss = 0.0f;
	if (res) { /* res = inp + b, stored, then normalised */
		S *r = res + row * C;
		const S *bb = b + row * C;
		for (int i = threadIdx.x; i < C; i += blockDim.x) {
			S v = st<S>(ld(x[i]) + ld(bb[i]));
			r[i] = v;
			float f = ld(v);
			ss += f * f;
		}
		x = r;
	} else {
		for (int i = threadIdx.x; i < C; i += blockDim.x) {
			float f = ld(x[i]);
			ss += f * f;
		}
	}
	ss = block_sum(ss, sh);
	float r = 1.0f / sqrtf(ss / (float)C + eps);
	for (int i = threadIdx.x; i < C; i += blockDim.x)
		y[i] = st<S>(ld(w[i]) * (ld(x[i]) * r));
	if (threadIdx.x == 0)
		rstd[row] = r;
}

template <typename S>
__global__ static void rms_bwd_kernel(S *dinp, const S *dout, const S *inp, const S *w,
				      const float *rstd, int C)
{
	__shared__ float sh[32];
	size_t row = blockIdx.x;
	const S *x = inp + row * C, *dy = dout + row * C;
	S *dx = dinp + row * C;
	float r = rstd[row];
	float dot = 0.0f;
	for (int i = threadIdx.x; i < C; i += blockDim.x)
		dot += ld(dy[i]) * ld(w[i]) * ld(x[i]);
	dot = block_sum(dot, sh);
	float k = r * r * r * dot / (float)C;
	for (int i = threadIdx.x; i < C; i += blockDim.x)
		dx[i] = st<S>(ld(dx[i]) + r * ld(dy[i]) * ld(w[i]) - k * ld(x[i]));
}

template <typename S>
__global__ static void rms_dw_kernel(float *dw, const S *dout, const S *inp, const float *rstd,
				     int N, int C)
{
	int c = blockIdx.x * blockDim.x + threadIdx.x;
	int n0 = blockIdx.y * RMS_DW_ROWS, n1 = min(N, n0 + RMS_DW_ROWS);
	if (c >= C)
		return;
	float s = 0.0f;
	for (int n = n0; n < n1; n++)
		s += ld(dout[(size_t)n * C + c]) * ld(inp[(size_t)n * C + c]) * rstd[n];
	atomicAdd(&dw[c], s);
}

template <typename S>
static void rms_fwd(S *out, float *rstd, const S *inp, const S *w, int N, int C, float eps, S *res,
		    const S *b)
{
	if (N <= 0 || C <= 0)
		return;
	rms_fwd_kernel<S><<<N, RMS_THREADS>>>(out, rstd, inp, w, C, eps, res, b);
	FT_CUDA_LAUNCHED();
}

template <typename S>
static void rms_bwd(S *dinp, float *dw, const S *dout, const S *inp, const S *w, const float *rstd,
		    int N, int C)
{
	if (N <= 0 || C <= 0)
		return;
	if (dinp) {
		rms_bwd_kernel<S><<<N, RMS_THREADS>>>(dinp, dout, inp, w, rstd, C);
		FT_CUDA_LAUNCHED();
	}
	if (dw) {
		dim3 grid((C + 255) / 256, (N + RMS_DW_ROWS - 1) / RMS_DW_ROWS);
		FT_CUDA_ASSERT(grid.y <= 65535);
		rms_dw_kernel<S><<<grid, 256>>>(dw, dout, inp, rstd, N, C);
		FT_CUDA_LAUNCHED();
	}
}

typedef __nv_bfloat16 bf;

extern "C" void ft_cuda_rmsnorm_fwd(float *out, float *rstd, const float *inp, const float *w,
				    int N, int C, float eps)
{
	rms_fwd<float>(out, rstd, inp, w, N, C, eps, nullptr, nullptr);
}

extern "C" void ft_cuda_rmsnorm_bwd(float *dinp, float *dw, const float *dout, const float *inp,
				    const float *w, const float *rstd, int N, int C)
{
	rms_bwd<float>(dinp, dw, dout, inp, w, rstd, N, C);
}

extern "C" void ft_cuda_rmsnorm_residual_fwd(float *res, float *out, float *rstd, const float *a,
					     const float *b, const float *w, int N, int C,
					     float eps)
{
	rms_fwd<float>(out, rstd, a, w, N, C, eps, res, b);
}

extern "C" void ft_cuda_rmsnorm_fwd_bf16(ft_bf16 *out, float *rstd, const ft_bf16 *inp,
					 const ft_bf16 *w, int N, int C, float eps)
{
	rms_fwd<bf>((bf *)out, rstd, (const bf *)inp, (const bf *)w, N, C, eps, nullptr, nullptr);
}

extern "C" void ft_cuda_rmsnorm_bwd_bf16(ft_bf16 *dinp, float *dw, const ft_bf16 *dout,
					 const ft_bf16 *inp, const ft_bf16 *w, const float *rstd,
					 int N, int C)
{
	rms_bwd<bf>((bf *)dinp, dw, (const bf *)dout, (const bf *)inp, (const bf *)w, rstd, N, C);
}

extern "C" void ft_cuda_rmsnorm_residual_fwd_bf16(ft_bf16 *res, ft_bf16 *out, float *rstd,
						  const ft_bf16 *a, const ft_bf16 *b,
						  const ft_bf16 *w, int N, int C, float eps)
{
	rms_fwd<bf>((bf *)out, rstd, (const bf *)a, (const bf *)w, N, C, eps, (bf *)res,
		    (const bf *)b);
}
