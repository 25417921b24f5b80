/*
 * ft/cuda_check.h - CUDA error checks that carry file and line (llm.c's
 * cudaCheck). Only included from .cu files.
 */
#ifndef FT_CUDA_CHECK_H
#define FT_CUDA_CHECK_H

#include <cstdio>
#include <cstdlib>
#include <cuda_runtime.h>

static inline void ft_cuda_check_(cudaError_t e, const char *file, int line)
{
	if (e != cudaSuccess) {
		std::fprintf(stderr, "%s:%d: CUDA error: %s\n", file, line, cudaGetErrorString(e));
		std::exit(EXIT_FAILURE);
	}
}
#define FT_CUDA_CHECK(call) ft_cuda_check_((call), __FILE__, __LINE__)

#endif
