/*
 * ft/dp.h - data parallelism over N GPUs (NCCL), with ZeRO-1.
 *
 * Shape: one rank per GPU (a thread or a process each); every rank holds the
 * whole model and runs its own micro-batches; after backward the trainable
 * gradients, ONE flat fp32 buffer, are combined:
 *   plain DP   all-reduce (average) of the gradient buffer, then every rank
 *              runs the same AdamW step on all parameters;
 *   ZeRO-1     the optimizer state is sharded: rank r owns the contiguous
 *              shard [offset, offset + len) of the flat parameter vector
 *              (fp32 master weights, m, v for that shard only);
 *              reduce-scatter (average) leaves each rank the gradient of its
 *              shard, AdamW runs on the shard and writes the new bf16 weights
 *              into the shard's place in the full bf16 vector, all-gather
 *              gives every rank all the new weights.
 *
 * Shard arithmetic (plain C, here, unit-tested without a GPU): the flat
 * vector of n elements is padded to a multiple of world * FT_DP_ALIGN so
 * that every shard has the same length (NCCL's reduce-scatter and
 * all-gather need equal counts) and starts 256-byte aligned in fp32:
 *   padded    = ceil(n / (world * 64)) * world * 64
 *   shard_len = padded / world          offset = rank * shard_len
 *   len       = clamp(n - offset, 0, shard_len)   (real elements; the rest
 *               of the shard is padding, kept at zero)
 * Buffers handed to the collectives are `padded` elements long.
 *
 * The NCCL unique id (128 bytes, made by rank 0) reaches the other ranks
 * through a struct ft_dp_rendezvous: a table of functions, so that the
 * file-based one (local launches: all ranks on one machine or a shared
 * filesystem) can later be joined by a TCP or Redis one for workers on
 * several machines, without touching the NCCL code.
 *
 * Only ft_dp_shard_compute and the rendezvous are always built; the NCCL
 * functions exist when FT_HAVE_NCCL is defined (CUDA build with NCCL found).
 */
#ifndef FT_DP_H
#define FT_DP_H

#include "ft/backend.h"
#include "ft/err.h"

#define FT_DP_ALIGN 64 /* elements */
#define FT_DP_ID_BYTES 128 /* NCCL_UNIQUE_ID_BYTES */
#define FT_DP_MAX_WORLD 1024

struct ft_dp_shard {
	size_t padded; /* length of the padded flat vector */
	size_t shard_len; /* elements per rank (padded / world) */
	size_t offset; /* this rank's first element */
	size_t len; /* this rank's real (unpadded) elements, <= shard_len */
};

/* world in [1, FT_DP_MAX_WORLD], rank in [0, world). */
void ft_dp_shard_compute(size_t n, int world, int rank, struct ft_dp_shard *out);

/* ---- the unique-id exchange ---- */
struct ft_dp_rendezvous {
	/* rank 0: make the id available to the others */
	enum ft_rc (*publish)(struct ft_dp_rendezvous *r, const uint8_t id[FT_DP_ID_BYTES],
			      struct ft_err *err);
	/* ranks > 0: wait up to timeout_ms for the id */
	enum ft_rc (*fetch)(struct ft_dp_rendezvous *r, uint8_t id[FT_DP_ID_BYTES], int timeout_ms,
			    struct ft_err *err);
	/* after every rank joined: free the state (the publisher removes its file) */
	void (*release)(struct ft_dp_rendezvous *r);
	void *state;
};

/* File-based: publish writes PATH.tmp.<pid>, fsyncs and renames it to PATH
 * (readers never see a partial id); fetch polls for PATH every 10 ms. PATH
 * must be fresh for each launch (the launcher puts it in a folder of its
 * own), or a rank could join a previous launch's id. */
enum ft_rc ft_dp_rendezvous_file(struct ft_dp_rendezvous *r, const char *path, struct ft_err *err);

#ifdef FT_HAVE_NCCL
#include "ft/backend_cuda.h"

struct ft_dp;

/* Join the communicator: binds the calling thread to `device`
 * (ft_cuda_init), rank 0 makes the id and publishes it, the others fetch it
 * (timeout_ms), then all ranks call ncclCommInitRank (which returns when
 * every rank has joined). */
enum ft_rc ft_dp_init(struct ft_dp **out, int world, int rank, int device,
		      struct ft_dp_rendezvous *rv, int timeout_ms, struct ft_err *err);
void ft_dp_free(struct ft_dp *dp);
int ft_dp_world(const struct ft_dp *dp);
int ft_dp_rank(const struct ft_dp *dp);

/* grads[n] (device, fp32) <- the average over ranks, in place. */
enum ft_rc ft_dp_allreduce_mean(struct ft_dp *dp, float *grads, size_t n, struct ft_err *err);
/* The sum over ranks of a host double (global gradient norm from per-shard
 * sums of squares). */
enum ft_rc ft_dp_allreduce_sum_double(struct ft_dp *dp, double *x, struct ft_err *err);

/* One ZeRO-1 step (s from ft_dp_shard_compute(n, world, rank)):
 *   grads[padded]     device fp32, this rank's gradients; on return its shard
 *                     [offset, offset + shard_len) holds the average over ranks
 *                     (scaled by clip_scale, 1 = no clipping)
 *   master, m, v      device fp32 [shard_len]: this rank's shard of the fp32
 *                     weights and AdamW moments
 *   weights[padded]   device bf16, the full weights every rank computes with;
 *                     on return all ranks hold the updated values
 * Clipping: call ft_dp_zero1_grad_sumsq first for the global norm. */
enum ft_rc ft_dp_zero1_reduce_scatter(struct ft_dp *dp, float *grads, const struct ft_dp_shard *s,
				      struct ft_err *err);
/* Sum of squares of the averaged gradient over all shards (after
 * ft_dp_zero1_reduce_scatter): every rank gets the same value. */
enum ft_rc ft_dp_zero1_grad_sumsq(struct ft_dp *dp, const float *grads, const struct ft_dp_shard *s,
				  double *out, struct ft_err *err);
enum ft_rc ft_dp_zero1_update(struct ft_dp *dp, float *grads, float *master, float *m, float *v,
			      ft_bf16 *weights, const struct ft_dp_shard *s,
			      const struct ft_adamw_args *a, float clip_scale, struct ft_err *err);
#endif

#endif
