/*
 * cmd_estimate.c - `ft-train estimate`: the GPU memory a job needs
 * (ft/mem_estimate.h), before it is queued or launched.
 *
 *   estimate --config JOB [--gpu-mem-gib N] [--json] [--gpus N] [--zero1]
 *            [--gradient-checkpointing K] [--logits-chunk ROWS] [--qlora] [--bf16]
 *
 * The estimate is ft_train_job_mem's (ft/train.h): the one train checks
 * before allocating on a GPU, ft-api stores with every job and the
 * scheduler places GPU jobs by; it is of the path jobs run (fp32 on CUDA
 * today), and --bf16 shows the bf16 plan instead.
 *
 * The job file gives the model folder (its config.json only), the method,
 * LoRA rank / targets / dropout, batch_size and max_seq_len. The run's
 * shape beyond the job file comes from the options: --gpus (data-parallel
 * degree), --zero1, --gradient-checkpointing K (keep every K-th layer's
 * input, 1 = every layer), --logits-chunk, --qlora (the base in NF4).
 * The free memory compared against is --gpu-mem-gib, else the free memory
 * of CUDA device 0 when this build has CUDA and a device is present; with
 * neither, the estimate is printed without a verdict.
 *
 * Output: one line of text, or with --json
 *   {"total_bytes":..,"weights_bytes":..,"gradients_bytes":..,"optimizer_bytes":..,
 *    "activations_bytes":..,"logits_bytes":..,"workspace_bytes":..,"runtime_bytes":..,
 *    "params":..,"trainable_params":..,"free_bytes":..|null,"fits":true|false|null}
 * Exit: 0 fits (or no memory to compare with), 1 does not fit (the reason on
 * stderr), 2 bad command line, 3 bad job file or model config.
 */
#include "ft/mem_estimate.h"
#include "ft/trainer.h"
#ifdef FT_HAVE_CUDA
#include "ft/backend_cuda.h"
#endif

#include "cmd.h"

#include <math.h>

struct est_opts {
	const char *config;
	double gpu_mem_gib;
	bool json, zero1, qlora, bf16;
	long gpus, ckpt, chunk;
};

static int parse(int argc, char **argv, struct est_opts *o)
{
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--json") == 0) {
			o->json = true;
			continue;
		}
		if (strcmp(a, "--zero1") == 0) {
			o->zero1 = true;
			continue;
		}
		if (strcmp(a, "--qlora") == 0) {
			o->qlora = true;
			continue;
		}
		if (strcmp(a, "--bf16") == 0) {
			o->bf16 = true;
			continue;
		}
		if (i + 1 >= argc) {
			fprintf(stderr,
				"ft-train estimate: unknown option or missing value \"%s\"\n", a);
			return 2;
		}
		const char *v = argv[++i];
		char *end = NULL;
		errno = 0;
		if (strcmp(a, "--config") == 0) {
			o->config = v;
			continue;
		}
		if (strcmp(a, "--gpu-mem-gib") == 0) {
			o->gpu_mem_gib = strtod(v, &end);
			if (end == v || *end || errno ||
			    !(o->gpu_mem_gib > 0 && o->gpu_mem_gib < 1e6)) {
				fprintf(stderr,
					"ft-train estimate: \"--gpu-mem-gib\" must be a number of "
					"GiB > 0 "
					"(got \"%s\")\n",
					v);
				return 2;
			}
			continue;
		}
		long *dst = strcmp(a, "--gpus") == 0			 ? &o->gpus
			    : strcmp(a, "--gradient-checkpointing") == 0 ? &o->ckpt
			    : strcmp(a, "--logits-chunk") == 0		 ? &o->chunk
									 : NULL;
		if (!dst) {
			fprintf(stderr, "ft-train estimate: unknown option \"%s\"\n", a);
			return 2;
		}
		*dst = strtol(v, &end, 10);
		if (end == v || *end || errno || *dst < 0 || *dst > INT_MAX) {
			fprintf(stderr,
				"ft-train estimate: \"%s\" must be an integer >= 0 (got \"%s\")\n",
				a, v);
			return 2;
		}
	}
	if (!o->config) {
		fprintf(stderr, "ft-train estimate: \"--config\" is required\n");
		return 2;
	}
	if (o->gpus < 1) {
		fprintf(stderr, "ft-train estimate: \"--gpus\" must be >= 1\n");
		return 2;
	}
	return 0;
}

/* Free bytes to compare with: the option, else CUDA device 0, else 0 (unknown). */
static uint64_t free_memory(const struct est_opts *o)
{
	if (o->gpu_mem_gib > 0)
		return (uint64_t)llround(o->gpu_mem_gib * 1024.0 * 1024.0 * 1024.0);
#ifdef FT_HAVE_CUDA
	struct ft_err err;
	ft_err_clear(&err);
	size_t fr = 0, total = 0;
	if (ft_cuda_device_count() > 0 && ft_cuda_init(0, &err) == FT_OK &&
	    ft_cuda_mem_info(&fr, &total, &err) == FT_OK)
		return fr;
#endif
	return 0;
}

int cmd_estimate(int argc, char **argv)
{
	struct est_opts o = { .gpus = 1, .ckpt = -1 };
	int rc = parse(argc, argv, &o);
	if (rc)
		return rc;
	struct ft_err err;
	ft_err_clear(&err);
	struct ft_train_job *job = ft_xcalloc(1, sizeof(*job));
	struct ft_model_config mc;
	if (ft_train_job_load(o.config, job, &err) || ft_model_config_load(job->model, &mc, &err)) {
		fprintf(stderr, "ft-train estimate: %s\n", err.msg);
		free(job);
		return 3;
	}
	struct ft_mem_job mj;
	ft_train_job_mem(job, &mc, (int)o.gpus, &mj);
	if (o.qlora)
		mj.method = FT_MEM_QLORA;
	if (o.ckpt >= 0) /* the option replaces the job's own gradient_checkpointing */
		mj.checkpoint_every = (int)o.ckpt;
	mj.logits_chunk = (int)o.chunk;
	mj.zero1 = o.zero1;
	/* the path jobs run (fp32 on CUDA today: what train checks, ft-api stores
	 * and the scheduler places by), or with --bf16 the bf16 plan (docs/gpu.md) */
	if (o.bf16)
		mj.fp32 = false;
	free(job);
	if (ft_mem_job_check(&mj, &err)) {
		fprintf(stderr, "ft-train estimate: %s\n", err.msg);
		return 3;
	}
	struct ft_mem_estimate e;
	ft_mem_estimate(&mj, &e);
	uint64_t fr = free_memory(&o);
	bool fits = fr == 0 || ft_mem_estimate_check(&mj, &e, fr, &err) == FT_OK;
	if (o.json) {
		printf("{\"total_bytes\":%" PRIu64 ",\"weights_bytes\":%" PRIu64
		       ",\"gradients_bytes\":%" PRIu64 ",\"optimizer_bytes\":%" PRIu64
		       ",\"activations_bytes\":%" PRIu64 ",\"logits_bytes\":%" PRIu64
		       ",\"workspace_bytes\":%" PRIu64 ",\"runtime_bytes\":%" PRIu64
		       ",\"params\":%" PRIu64 ",\"trainable_params\":%" PRIu64,
		       e.total, e.weights, e.gradients, e.optimizer, e.activations, e.logits,
		       e.workspace, e.runtime, e.params, e.trainable);
		if (fr)
			printf(",\"free_bytes\":%" PRIu64 ",\"fits\":%s}\n", fr,
			       fits ? "true" : "false");
		else
			printf(",\"free_bytes\":null,\"fits\":null}\n");
	} else {
		char line[320];
		ft_mem_estimate_format(&e, line, sizeof(line));
		printf("%s\n", line);
	}
	if (!fits) {
		fprintf(stderr, "ft-train estimate: %s\n", err.msg);
		return 1;
	}
	return 0;
}
