/*
 * cmd_gpus.c - the `--gpus N` option of `ft-train train`: launching on N
 * local GPUs (one rank per GPU, NCCL data parallelism, ft/dp.h).
 *
 * What it checks, in order, each with its own message:
 *   N = 0                 the CPU backend (the default)
 *   built without CUDA    "this ft-train was built without CUDA ..."
 *   no device visible     "no CUDA device (<driver's reason>)"
 *   N > devices           "asked for N GPUs but only M CUDA devices are visible"
 *   otherwise             the CUDA training loop is not wired into `train`
 *                         yet: the backend's kernels (engine/backends/cuda/) and the
 *                         NCCL layer exist as a library and are tested on
 *                         their own (tests/gpu/), so this says so rather than
 *                         silently training on the CPU.
 * Returns 0 for N = 0, else fills err (FT_EUNAVAIL) and returns its rc.
 */
#include "ft/trainer.h"
#ifdef FT_HAVE_CUDA
#include "ft/backend_cuda.h"
#endif

#include "cmd.h"

enum ft_rc cmd_gpus_check(long gpus, struct ft_err *err)
{
	if (gpus == 0)
		return FT_OK;
	if (gpus < 0 || gpus > 1024)
		return ft_failf(err, FT_EINVAL, "bad_gpus",
				"\"--gpus\" must be 0 to 1024 (got %ld)", gpus);
#ifndef FT_HAVE_CUDA
	return ft_failf(err, FT_EUNAVAIL, "no_cuda",
			"--gpus %ld: this ft-train was built without CUDA (nvcc was not found at "
			"build time); rebuild on a machine with the CUDA toolkit, or drop --gpus "
			"to train on the CPU",
			gpus);
#else
	int n = ft_cuda_device_count();
	if (n == 0) {
		struct ft_err why;
		ft_err_clear(&why);
		(void)ft_cuda_init(0, &why);
		return ft_failf(err, FT_EUNAVAIL, "no_cuda_device",
				"--gpus %ld: %s; drop --gpus to train on the CPU", gpus,
				ft_err_is_set(&why) ? why.msg : "no CUDA device");
	}
	if (gpus > n)
		return ft_failf(err, FT_EUNAVAIL, "too_few_gpus",
				"--gpus %ld: asked for %ld GPUs but only %d CUDA device%s visible",
				gpus, gpus, n, n == 1 ? " is" : "s are");
	return ft_failf(err, FT_EUNAVAIL, "cuda_loop_missing",
			"--gpus %ld: training on the CUDA backend is not wired into ft-train yet "
			"(the kernels and NCCL data parallelism exist as a library, tested by "
			"tests/gpu/); drop --gpus to train on the CPU",
			gpus);
#endif
}
