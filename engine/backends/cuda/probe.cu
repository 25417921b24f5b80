/*
 * probe.cu - the first CUDA source: a grid-stride y = a*x + y (SAXPY) and a
 * host wrapper. It exists so the suite proves the CUDA toolchain is wired
 * (compiles without a GPU) before the real backend lands; the wrapper also
 * reports whether a device is present.
 *
 *   y[i] <- a * x[i] + y[i]     for i in [0, n)
 */
#include "ft/cuda_check.h"

__global__ static void saxpy_kernel(int n, float a, const float *x, float *y)
{
	for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += blockDim.x * gridDim.x)
		y[i] = a * x[i] + y[i];
}

extern "C" int ft_cuda_device_count(void)
{
	int n = 0;
	if (cudaGetDeviceCount(&n) != cudaSuccess)
		return 0;
	return n;
}

/* y <- a*x + y on the device; x and y are host arrays of n floats.
 * Returns 0 on success, -1 when no device is present. */
extern "C" int ft_cuda_saxpy(int n, float a, const float *x, float *y)
{
	float *dx, *dy;
	if (ft_cuda_device_count() == 0)
		return -1;
	size_t bytes = (size_t)n * sizeof(float);
	FT_CUDA_CHECK(cudaMalloc(&dx, bytes));
	FT_CUDA_CHECK(cudaMalloc(&dy, bytes));
	FT_CUDA_CHECK(cudaMemcpy(dx, x, bytes, cudaMemcpyHostToDevice));
	FT_CUDA_CHECK(cudaMemcpy(dy, y, bytes, cudaMemcpyHostToDevice));
	saxpy_kernel<<<(n + 255) / 256, 256>>>(n, a, dx, dy);
	FT_CUDA_CHECK(cudaGetLastError());
	FT_CUDA_CHECK(cudaMemcpy(y, dy, bytes, cudaMemcpyDeviceToHost));
	FT_CUDA_CHECK(cudaFree(dx));
	FT_CUDA_CHECK(cudaFree(dy));
	return 0;
}
