/*
 * backend_select.c - a device name to its backend (ft/backend.h):
 *
 *   | name          | backend                                             |
 *   |---------------|-----------------------------------------------------|
 *   | "cpu" (or "") | ft_backend_cpu(), the reference                     |
 *   | "cuda"        | ft_backend_cuda() when the CUDA backend is compiled |
 *   |               | in (FT_HAVE_CUDA) and a GPU is present              |
 *   | "cpu-guarded" | ft_backend_cpu_guarded() (tests)                    |
 *
 * FT_BACKEND in the environment replaces the name (the tests run whole
 * jobs on cpu-guarded). ftengine does not link the CUDA backend (that
 * library depends on this one): a program built with it hands over the
 * getter with ft_backend_set_cuda (ft-train's main does).
 */
#include "ft/backend.h"

static const struct ft_backend *cpu(struct ft_err *err)
{
	(void)err;
	return ft_backend_cpu();
}

static const struct ft_backend *cpu_guarded(struct ft_err *err)
{
	(void)err;
	return ft_backend_cpu_guarded();
}

static const struct ft_backend *(*cuda_get)(struct ft_err *err);

void ft_backend_set_cuda(const struct ft_backend *(*get)(struct ft_err *err))
{
	cuda_get = get;
}

static const struct ft_backend *cuda(struct ft_err *err)
{
	if (cuda_get) {
		struct ft_err e;
		ft_err_clear(&e);
		const struct ft_backend *be = cuda_get(&e);
		if (!be) {
			ft_failf(err, FT_EINVAL, "no_device",
				 "device \"cuda\" is not available: %s", e.msg);
			return NULL;
		}
		return be;
	}
	ft_failf(err, FT_EINVAL, "no_device",
		 "device \"cuda\" is not available: this ft-train was built without the CUDA "
		 "backend");
	ft_err_hintf(err, "use \"device\": \"cpu\", or build on a machine with nvcc");
	return NULL;
}

static const struct {
	const char *name;
	const struct ft_backend *(*get)(struct ft_err *err);
} devices[] = {
	{ "cpu", cpu },
	{ "cuda", cuda },
	{ "cpu-guarded", cpu_guarded },
};

enum ft_rc ft_backend_select(const char *device, const struct ft_backend **out, struct ft_err *err)
{
	const char *env = getenv("FT_BACKEND");
	if (env && env[0])
		device = env;
	if (!device || !device[0])
		device = "cpu";
	for (size_t i = 0; i < FT_ARRAY_LEN(devices); i++) {
		if (strcmp(device, devices[i].name) != 0)
			continue;
		const struct ft_backend *be = devices[i].get(err);
		if (!be)
			return err ? err->rc : FT_EINVAL;
		if (!be->alloc || !be->upload || !be->download || !be->add)
			return ft_failf(err, FT_EINTERNAL, NULL,
					"the %s backend lacks the memory operations of "
					"ft/backend.h",
					be->name);
		*out = be;
		return FT_OK;
	}
	return ft_failf(err, FT_EINVAL, "invalid_value",
			"device \"%s\" is unknown: use \"cpu\" or \"cuda\"", device);
}
