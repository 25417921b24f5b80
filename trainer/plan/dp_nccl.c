/*
 * dp_nccl.c - data parallelism over NCCL (ft/dp.h): the communicator, the
 * gradient all-reduce (average) and ZeRO-1 (reduce-scatter, AdamW on the
 * shard, all-gather of the bf16 weights).
 *
 * All collectives run on the legacy default stream, the stream every CUDA
 * backend op uses, so they are ordered with the kernels around them without
 * events. ncclAvg (NCCL >= 2.10) divides by the world size inside the
 * reduction. In-place forms as NCCL defines them:
 *   reduce-scatter  recvbuff = sendbuff + rank * recvcount
 *   all-gather      sendbuff = recvbuff + rank * sendcount
 * NCCL failures are returned as FT_EUNAVAIL with NCCL's own message (a peer
 * died, a network problem), never as aborts.
 */
#include "ft/dp.h"

#include <nccl.h>

struct ft_dp {
	ncclComm_t comm;
	int world, rank, device;
	double *dscalar; /* one device double for scalar all-reduces */
};

#define NCCL_TRY(call, what)                                                                  \
	do {                                                                                  \
		ncclResult_t r_ = (call);                                                     \
		if (r_ != ncclSuccess)                                                        \
			return ft_failf(err, FT_EUNAVAIL, "nccl", "NCCL %s failed: %s", what, \
					ncclGetErrorString(r_));                              \
	} while (0)

enum ft_rc ft_dp_init(struct ft_dp **out, int world, int rank, int device,
		      struct ft_dp_rendezvous *rv, int timeout_ms, struct ft_err *err)
{
	*out = NULL;
	if (world < 1 || world > FT_DP_MAX_WORLD || rank < 0 || rank >= world)
		return ft_failf(err, FT_EINVAL, "dp_rank", "rank %d of %d is out of range", rank,
				world);
	enum ft_rc rc = ft_cuda_init(device, err);
	if (rc)
		return rc;
	ncclUniqueId id;
	_Static_assert(sizeof(id.internal) == FT_DP_ID_BYTES, "NCCL id size");
	if (rank == 0) {
		NCCL_TRY(ncclGetUniqueId(&id), "ncclGetUniqueId");
		if ((rc = rv->publish(rv, (const uint8_t *)id.internal, err)))
			return rc;
	} else if ((rc = rv->fetch(rv, (uint8_t *)id.internal, timeout_ms, err))) {
		return rc;
	}
	struct ft_dp *dp = calloc(1, sizeof(*dp));
	if (!dp)
		return ft_failf(err, FT_ENOMEM, NULL, "out of memory");
	dp->world = world;
	dp->rank = rank;
	dp->device = device;
	ncclResult_t r = ncclCommInitRank(&dp->comm, world, id, rank);
	if (r != ncclSuccess) {
		free(dp);
		return ft_failf(err, FT_EUNAVAIL, "nccl",
				"joining the NCCL group (rank %d of %d): %s", rank, world,
				ncclGetErrorString(r));
	}
	dp->dscalar = ft_cuda_alloc(sizeof(double), err);
	if (!dp->dscalar) {
		ncclCommDestroy(dp->comm);
		free(dp);
		return err ? err->rc : FT_ENOMEM;
	}
	*out = dp;
	return FT_OK;
}

void ft_dp_free(struct ft_dp *dp)
{
	if (!dp)
		return;
	ft_cuda_sync();
	ncclCommDestroy(dp->comm);
	ft_cuda_free(dp->dscalar);
	free(dp);
}

int ft_dp_world(const struct ft_dp *dp)
{
	return dp->world;
}

int ft_dp_rank(const struct ft_dp *dp)
{
	return dp->rank;
}

enum ft_rc ft_dp_allreduce_mean(struct ft_dp *dp, float *grads, size_t n, struct ft_err *err)
{
	if (dp->world == 1 || n == 0)
		return FT_OK;
	NCCL_TRY(ncclAllReduce(grads, grads, n, ncclFloat32, ncclAvg, dp->comm, 0),
		 "all-reduce of the gradients");
	return FT_OK;
}

enum ft_rc ft_dp_allreduce_sum_double(struct ft_dp *dp, double *x, struct ft_err *err)
{
	if (dp->world == 1)
		return FT_OK;
	ft_cuda_upload(dp->dscalar, x, sizeof(double));
	NCCL_TRY(ncclAllReduce(dp->dscalar, dp->dscalar, 1, ncclFloat64, ncclSum, dp->comm, 0),
		 "all-reduce of a scalar");
	ft_cuda_download(x, dp->dscalar, sizeof(double));
	return FT_OK;
}

enum ft_rc ft_dp_zero1_reduce_scatter(struct ft_dp *dp, float *grads, const struct ft_dp_shard *s,
				      struct ft_err *err)
{
	if (dp->world == 1)
		return FT_OK;
	NCCL_TRY(ncclReduceScatter(grads, grads + s->offset, s->shard_len, ncclFloat32, ncclAvg,
				   dp->comm, 0),
		 "reduce-scatter of the gradients");
	return FT_OK;
}

enum ft_rc ft_dp_zero1_grad_sumsq(struct ft_dp *dp, const float *grads, const struct ft_dp_shard *s,
				  double *out, struct ft_err *err)
{
	*out = s->len ? ft_cuda_sumsq(grads + s->offset, s->len) : 0.0;
	return ft_dp_allreduce_sum_double(dp, out, err);
}

enum ft_rc ft_dp_zero1_update(struct ft_dp *dp, float *grads, float *master, float *m, float *v,
			      ft_bf16 *weights, const struct ft_dp_shard *s,
			      const struct ft_adamw_args *a, float clip_scale, struct ft_err *err)
{
	if (s->len) {
		if (clip_scale != 1.0f)
			ft_cuda_scale(grads + s->offset, s->len, clip_scale);
		ft_cuda_adamw_bf16copy(master, grads + s->offset, m, v, s->len, a,
				       weights + s->offset);
	}
	if (dp->world == 1)
		return FT_OK;
	NCCL_TRY(ncclAllGather(weights + s->offset, weights, s->shard_len, ncclBfloat16, dp->comm,
			       0),
		 "all-gather of the weights");
	return FT_OK;
}
