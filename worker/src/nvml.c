/*
 * nvml.c - count GPUs through NVML, loaded at run time (dlopen), so one
 * ft-worker binary runs on machines with and without NVIDIA drivers.
 */
#include <dlfcn.h>

#include "worker_int.h"

typedef int (*nvml_init_fn)(void);
typedef int (*nvml_count_fn)(unsigned int *);
typedef int (*nvml_handle_fn)(unsigned int, void **);
typedef int (*nvml_name_fn)(void *, char *, unsigned int);
struct nvml_memory {
	unsigned long long total, free, used;
};
typedef int (*nvml_mem_fn)(void *, struct nvml_memory *);

int ft_worker_detect_gpus(int64_t *mem_per_gpu, char names[][96], int max_names)
{
	void *lib = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
	unsigned int count = 0;
	*mem_per_gpu = 0;
	if (!lib)
		return 0;
	nvml_init_fn init = (nvml_init_fn)dlsym(lib, "nvmlInit_v2");
	nvml_count_fn cnt = (nvml_count_fn)dlsym(lib, "nvmlDeviceGetCount_v2");
	nvml_handle_fn handle = (nvml_handle_fn)dlsym(lib, "nvmlDeviceGetHandleByIndex_v2");
	nvml_name_fn name = (nvml_name_fn)dlsym(lib, "nvmlDeviceGetName");
	nvml_mem_fn mem = (nvml_mem_fn)dlsym(lib, "nvmlDeviceGetMemoryInfo");
	if (!init || !cnt || init() != 0 || cnt(&count) != 0) {
		dlclose(lib);
		return 0;
	}
	for (unsigned int i = 0; i < count; i++) {
		void *h = NULL;
		struct nvml_memory m;
		if (!handle || handle(i, &h) != 0)
			continue;
		if ((int)i < max_names && name)
			name(h, names[i], 96);
		if (mem && mem(h, &m) == 0 &&
		    (*mem_per_gpu == 0 || (int64_t)m.total < *mem_per_gpu))
			*mem_per_gpu = (int64_t)m.total;
	}
	/* NVML stays loaded: the handles are only used here, and unloading a
	 * driver library at run time gains nothing. */
	return (int)count;
}
