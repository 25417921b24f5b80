/*
 * test_dp_nccl.c - data parallelism over NCCL (ft/dp.h) against a host
 * reference: one thread per GPU, each a rank joined through the file
 * rendezvous.
 *
 *   1. all-reduce (average) of a gradient vector: every rank must hold the
 *      mean of all ranks' vectors (|err| <= 1e-6 |ref| + 1e-7);
 *   2. two ZeRO-1 steps (reduce-scatter, global norm from the shards,
 *      clipping to norm 1, AdamW on each rank's shard, all-gather of the
 *      bf16 weights) on n = 1000 parameters, a size that leaves padding in
 *      the last shard: every rank's full bf16 weights must equal the
 *      reference - the CPU backend's AdamW over the whole vector on the
 *      averaged, clipped gradients, rounded to bf16 - within one bf16 step
 *      (|err| <= 2^-7 |ref| + 1e-6), the fp32 master shard within
 *      1e-5 |ref| + 1e-6, and the squared global norm within 1e-6 relative.
 *
 * On GPUs it needs at least two devices (SKIP, exit 77, otherwise) and uses
 * up to four. With FT_CUDA_SIM (tests/gpu/sim/) three ranks run on the CPU
 * stand-ins of CUDA and NCCL.
 */
#include "ft/dp.h"
#include "ft/safetensors.h"

#include <math.h>
#include <pthread.h>
#include <unistd.h>

#ifndef FT_HAVE_NCCL
int main(void)
{
	printf("SKIP: this build has no NCCL\n");
	return 77;
}
#else

#define N 1000
#define STEPS 2
#define MAX_NORM 1.0

static int world;
static char rv_path[512];

static float grad_of(int rank, int step, int i)
{
	return sinf(0.1f * (float)i + (float)rank + 0.7f * (float)step) *
	       (1.0f + 0.5f * (float)rank);
}

static float param0(int i)
{
	return cosf(0.3f * (float)i);
}

static struct ft_adamw_args args_of(int step)
{
	struct ft_adamw_args a = { 1e-2, 0.9, 0.999, 1e-8, 0.01, step };
	return a;
}

struct rank_ctx {
	int rank;
	int fails;
	char why[256];
};

/* A setup failure ends the rank; a wrong value is recorded (the first one)
 * and the rank goes on, so that every rank still makes the same collective
 * calls in the same order. */
#define FATAL(c, ...)                                              \
	do {                                                       \
		(c)->fails++;                                      \
		snprintf((c)->why, sizeof((c)->why), __VA_ARGS__); \
		goto done;                                         \
	} while (0)
#define WRONG(c, ...)                                                      \
	do {                                                               \
		if ((c)->fails++ == 0)                                     \
			snprintf((c)->why, sizeof((c)->why), __VA_ARGS__); \
	} while (0)

static void *rank_main(void *p)
{
	struct rank_ctx *c = p;
	struct ft_err err;
	ft_err_clear(&err);
	struct ft_dp_rendezvous rv = { 0 };
	struct ft_dp *dp = NULL;
	float *g_dev = NULL, *master = NULL, *m = NULL, *v = NULL;
	ft_bf16 *w_dev = NULL;
	float *host = ft_xcalloc(N + 64 * 8, sizeof(float));
	ft_bf16 *wh = ft_xcalloc(N + 64 * 8, sizeof(ft_bf16));
	float *ref = ft_xcalloc(N, sizeof(float)), *rm = ft_xcalloc(N, sizeof(float));
	float *rvv = ft_xcalloc(N, sizeof(float)), *gavg = ft_xcalloc(N, sizeof(float));

	if (ft_dp_rendezvous_file(&rv, rv_path, &err))
		FATAL(c, "rendezvous: %s", err.msg);
	enum ft_rc rc = ft_dp_init(&dp, world, c->rank, c->rank, &rv, 20000, &err);
	rv.release(&rv);
	if (rc)
		FATAL(c, "init: %s", err.msg);

	/* 1. all-reduce mean */
	struct ft_dp_shard s;
	ft_dp_shard_compute(N, world, c->rank, &s);
	g_dev = ft_cuda_alloc(s.padded * sizeof(float), &err);
	if (!g_dev)
		FATAL(c, "alloc: %s", err.msg);
	for (int i = 0; i < N; i++)
		host[i] = grad_of(c->rank, 0, i);
	ft_cuda_upload(g_dev, host, N * sizeof(float));
	if (ft_dp_allreduce_mean(dp, g_dev, N, &err))
		FATAL(c, "all-reduce: %s", err.msg);
	ft_cuda_download(host, g_dev, N * sizeof(float));
	for (int i = 0; i < N; i++) {
		double want = 0;
		for (int r = 0; r < world; r++)
			want += grad_of(r, 0, i);
		want /= world;
		if (!(fabs(host[i] - want) <= 1e-6 * fabs(want) + 1e-7))
			WRONG(c, "all-reduce [%d]: got %.9g want %.9g", i, host[i], want);
	}

	/* 2. ZeRO-1 */
	w_dev = ft_cuda_alloc(s.padded * sizeof(ft_bf16), &err);
	master = ft_cuda_alloc(s.shard_len * sizeof(float), &err);
	m = ft_cuda_alloc(s.shard_len * sizeof(float), &err);
	v = ft_cuda_alloc(s.shard_len * sizeof(float), &err);
	if (!w_dev || !master || !m || !v)
		FATAL(c, "alloc: %s", err.msg);
	memset(host, 0, s.padded * sizeof(float));
	for (size_t i = 0; i < s.padded; i++)
		wh[i] = ft_f32_to_bf16(i < N ? param0((int)i) : 0.0f);
	ft_cuda_upload(w_dev, wh, s.padded * sizeof(ft_bf16));
	for (size_t i = 0; i < s.shard_len; i++)
		host[i] = i < s.len ? param0((int)(s.offset + i)) : 0.0f;
	ft_cuda_upload(master, host, s.shard_len * sizeof(float));
	ft_cuda_memset(m, 0, s.shard_len * sizeof(float));
	ft_cuda_memset(v, 0, s.shard_len * sizeof(float));
	for (int i = 0; i < N; i++)
		ref[i] = param0(i);
	double sumsq = 0, want_sumsq = 0;
	for (int step = 1; step <= STEPS; step++) {
		memset(host, 0, s.padded * sizeof(float)); /* padding stays zero */
		for (int i = 0; i < N; i++)
			host[i] = grad_of(c->rank, step, i);
		ft_cuda_upload(g_dev, host, s.padded * sizeof(float));
		if (ft_dp_zero1_reduce_scatter(dp, g_dev, &s, &err) ||
		    ft_dp_zero1_grad_sumsq(dp, g_dev, &s, &sumsq, &err))
			FATAL(c, "zero1: %s", err.msg);
		double norm = sqrt(sumsq);
		float clip = norm > MAX_NORM ? (float)(MAX_NORM / (norm + 1e-6)) : 1.0f;
		struct ft_adamw_args a = args_of(step);
		if (ft_dp_zero1_update(dp, g_dev, master, m, v, w_dev, &s, &a, clip, &err))
			FATAL(c, "zero1 update: %s", err.msg);
		/* the reference on the host */
		want_sumsq = 0;
		for (int i = 0; i < N; i++) {
			double t = 0;
			for (int r = 0; r < world; r++)
				t += grad_of(r, step, i);
			gavg[i] = (float)(t / world);
			want_sumsq += (double)gavg[i] * gavg[i];
		}
		double wn = sqrt(want_sumsq);
		float wclip = wn > MAX_NORM ? (float)(MAX_NORM / (wn + 1e-6)) : 1.0f;
		for (int i = 0; i < N; i++)
			gavg[i] *= wclip;
		ft_backend_cpu()->adamw(ref, gavg, rm, rvv, N, &a);
		if (!(fabs(sumsq - want_sumsq) <= 1e-6 * want_sumsq))
			WRONG(c, "step %d sumsq: got %.12g want %.12g", step, sumsq, want_sumsq);
	}
	ft_cuda_download(wh, w_dev, N * sizeof(ft_bf16));
	for (int i = 0; i < N; i++) {
		float got = ft_bf16_to_f32(wh[i]);
		if (!(fabsf(got - ref[i]) <= 0.0078125f * fabsf(ref[i]) + 1e-6f))
			WRONG(c, "weights [%d]: got %.7g want %.7g", i, got, ref[i]);
	}
	ft_cuda_download(host, master, s.len * sizeof(float));
	for (size_t i = 0; i < s.len; i++)
		if (!(fabsf(host[i] - ref[s.offset + i]) <=
		      1e-5f * fabsf(ref[s.offset + i]) + 1e-6f))
			WRONG(c, "master [%zu]: got %.9g want %.9g", s.offset + i, host[i],
			      ref[s.offset + i]);
done:
	ft_cuda_free(g_dev);
	ft_cuda_free(w_dev);
	ft_cuda_free(master);
	ft_cuda_free(m);
	ft_cuda_free(v);
	ft_dp_free(dp);
	ft_cuda_release();
	free(host), free(wh), free(ref), free(rm), free(rvv), free(gavg);
	return NULL;
}

int main(void)
{
	int n = ft_cuda_device_count();
	bool sim = getenv("FT_CUDA_SIM") != NULL;
	if (!sim && n < 2) {
		printf("SKIP: data parallelism needs 2 CUDA devices (%d visible)\n", n);
		return 77;
	}
	world = sim ? 3 : FT_MIN(n, 4);
	const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	char dir[400];
	snprintf(dir, sizeof(dir), "%s/ft-dp-nccl-XXXXXX", tmp);
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(rv_path, sizeof(rv_path), "%s/nccl.id", dir);
	pthread_t th[8];
	struct rank_ctx ctx[8];
	for (int r = 0; r < world; r++) {
		ctx[r] = (struct rank_ctx){ .rank = r };
		if (pthread_create(&th[r], NULL, rank_main, &ctx[r]) != 0) {
			perror("pthread_create");
			return 1;
		}
	}
	int fails = 0;
	for (int r = 0; r < world; r++) {
		pthread_join(th[r], NULL);
		if (ctx[r].fails) {
			fails++;
			printf("rank %d: FAIL: %s\n", r, ctx[r].why);
		}
	}
	rmdir(dir);
	printf("%d ranks: all-reduce and %d ZeRO-1 steps %s\n", world, STEPS,
	       fails ? "FAILED" : "match the host reference");
	return fails ? 1 : 0;
}
#endif
