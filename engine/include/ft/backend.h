/*
 * ft/backend.h - the memory and compute operations a trainer backend provides.
 *
 * The model (engine/model/model.c) is written once against this table; the
 * CPU backend (engine/backends/cpu/, fp32, the reference) fills it, and the CUDA
 * backend fills its own and is tested op by op against the CPU one.
 *
 * Memory rules (every backend, every caller):
 *  - every tensor the ops are given lives in BACKEND memory, from ->alloc:
 *    weights, gradients, LoRA tensors, activations, scratch, RoPE tables,
 *    optimizer moments, NF4 blocks, and the int32 ids / targets / positions
 *    / doc ids of a batch. Pointer arithmetic inside an allocation is fine
 *    (tensors are offsets into blocks); dereferencing one from host code is
 *    not;
 *  - host code reaches backend memory only through ->upload, ->download,
 *    ->zero and ->copy (loaders and writers stage one tensor at a time in a
 *    host buffer); ops return host results only where their signature says
 *    so (sumsq's value, cross_entropy's struct ft_ce_stats), and take their
 *    small host arguments (struct ft_adamw_args, struct ft_nf4's header) by
 *    host pointer;
 *  - host_memory true (the CPU backend) says backend pointers ARE host
 *    pointers: callers may then read and write them directly instead of
 *    staging (the fast paths; no copies on the CPU);
 *  - the guarded CPU backend (ft_backend_cpu_guarded) keeps this honest
 *    without a GPU: host_memory is false and its memory is mprotect'ed
 *    PROT_NONE except while one of its own operations runs, so host code
 *    that dereferences backend memory dies with SIGSEGV, and its ops abort
 *    when a tensor argument is host memory.
 *
 * Conventions, for every op:
 *  - tensors are dense, row-major, fp32; "N" is the number of token rows
 *    (batch * sequence), "C"/"IC"/"OC" channel counts;
 *  - activations of a linear layer are [N, IC] -> [N, OC] and its weight is
 *    [OC, IC] as in torch.nn.Linear (y = x W^T + b);
 *  - backward ops ACCUMULATE (+=) into every gradient they are given
 *    (dinp, dweight, dbias), as llm.c does, so that residual branches and
 *    LoRA paths sum naturally; a NULL gradient pointer is skipped (frozen);
 *  - attention tensors q, k, v, out are [B*T, heads*head_dim] (the layout the
 *    projections produce); lse is [B, heads, T], the log-sum-exp of each
 *    query's scores, all backward needs to recompute the probabilities;
 *  - ids and targets are int32; target -100 means "not trained" (PyTorch's
 *    ignore_index).
 * Each op's math is written at the top of its CPU source file.
 */
#ifndef FT_BACKEND_H
#define FT_BACKEND_H

#include "ft/base.h"
#include "ft/err.h"

#define FT_IGNORE_INDEX (-100)

struct ft_nf4; /* ft/nf4.h: a 4-bit NF4 weight (QLoRA's frozen base) */
struct ft_pw; /* a frozen weight packed for inference (pw_pack); opaque */
#define FT_PW_MULTI_MAX 4 /* weights matmul_pw_fwd_multi takes at once */

/* Formats of an inference weight (pw_pack's input):
 *   F32   float [OC][IC], the weight as the model holds it; the packed
 *         linear gives the same bits as matmul_fwd on it;
 *   Q8_0  GGUF's Q8_0 blocks, row after row: per 32 inputs of an output
 *         row an fp16 scale d and 32 int8 q, w = d * q (34 bytes; IC a
 *         multiple of 32). The packed linear gives the same bits as
 *         matmul_fwd on the dequantised weight;
 *   BF16  float [OC][IC] as F32, kept rounded to bf16 (nearest even): the
 *         packed linear multiplies bf16-rounded inputs by it with fp32
 *         sums (a bf16 base; offered where pw_bf16 is true), and has an
 *         input gradient (matmul_pw_bwd_input). */
enum ft_pw_fmt { FT_PW_F32, FT_PW_Q8_0, FT_PW_BF16 };

/* Result of the cross-entropy op over the rows it was given. */
struct ft_ce_stats {
	double loss_sum; /* sum of -log p(target) over trained rows */
	long n_tokens; /* trained rows (target != -100) */
	long n_correct; /* trained rows whose argmax equals the target */
};

/* Hyperparameters of one AdamW step (torch.optim.AdamW). */
struct ft_adamw_args {
	double lr, beta1, beta2, eps, weight_decay;
	long step; /* 1-based step count, for bias correction */
};

struct ft_backend {
	const char *name;

	/* ---- memory (the rules at the top) ---- */
	bool host_memory; /* backend pointers are host pointers (the CPU) */
	/* bytes of backend memory, 64-byte aligned, NOT initialised; NULL when
	 * out of memory. alloc(0) returns a pointer free accepts. */
	void *(*alloc)(size_t bytes);
	void (*free)(void *dev); /* NULL is ignored */
	void (*upload)(void *dev, const void *host, size_t bytes);
	void (*download)(void *host, const void *dev, size_t bytes);
	void (*zero)(void *dev, size_t bytes);
	void (*copy)(void *dev_dst, const void *dev_src, size_t bytes);
	/* Free and total bytes of the device (NULL: no limit worth checking,
	 * the CPU); train checks its memory estimate against it first. */
	bool (*mem_info)(size_t *free_bytes, size_t *total_bytes);

	/* ---- the model's small elementwise glue (cpu/glue.c) ---- */
	/* y[n] += x[n] (residual adds) */
	void (*add)(float *y, const float *x, size_t n);
	/* LoRA dropout with a mask the host drew (u8, 1 = kept):
	 * fwd: out[i] = mask[i] ? in[i] * keep : 0;  bwd: din[i] += mask[i] ? dout[i] * keep */
	void (*dropout_fwd)(float *out, const float *in, const uint8_t *mask, size_t n, float keep);
	void (*dropout_bwd)(float *din, const float *dout, const uint8_t *mask, size_t n,
			    float keep);
	/* Generation: one query q[nh*hd] against the KV cache rows j0..pos
	 * (kc, vc [>= pos+1, nkv*hd]); out[nh*hd]; scores is scratch of
	 * pos + 1 floats. softmax(q k_j / sqrt(hd)) v_j per head (GQA). */
	void (*attention_decode)(float *out, float *scores, const float *q, const float *kc,
				 const float *vc, int j0, int pos, int nh, int nkv, int hd);
	/* The same for n rows at once, each against its own cache (kc[i], vc[i]:
	 * a HOST array of backend pointers), rows j0[i]..pos[i] (host arrays);
	 * q and out are [n, nh*hd]. Each row's result is the one
	 * attention_decode gives it. NULL: the model calls attention_decode
	 * row by row. */
	void (*attention_decode_rows)(int n, float *out, const float *q, const float *const *kc,
				      const float *const *vc, const int *j0, const int *pos, int nh,
				      int nkv, int hd);

	/* out[N,OC] = (accumulate ? out : 0) + inp[N,IC] w[OC,IC]^T + bias[OC] */
	void (*matmul_fwd)(float *out, const float *inp, const float *w, const float *bias, int N,
			   int IC, int OC, bool accumulate);
	/* dinp += dout w; dw += dout^T inp; dbias += sum_rows dout */
	void (*matmul_bwd)(float *dinp, float *dw, float *dbias, const float *dout,
			   const float *inp, const float *w, int N, int IC, int OC);

	/* The same linear with a frozen NF4 weight w [OC, IC] (QLoRA): the
	 * weight is dequantised a tile at a time into per-thread scratch, never
	 * whole. There is no weight gradient (the base is frozen). */
	void (*matmul_nf4_fwd)(float *out, const float *inp, const struct ft_nf4 *w,
			       const float *bias, int N, int IC, int OC);
	/* dinp[N,IC] += dout[N,OC] deq(w) */
	void (*matmul_nf4_bwd_input)(float *dinp, const float *dout, const struct ft_nf4 *w, int N,
				     int IC, int OC);

	/* Inference weights (ft-serve, generate; NULL where the backend has
	 * none): pw_pack copies a frozen weight w [OC, IC] given in fmt, in
	 * HOST memory, into the backend's own layout (NULL when out of
	 * memory); matmul_pw_fwd is matmul_fwd with it (not accumulating):
	 * each output row's bits do not depend on N, so a sequence decoded in
	 * a batch gets exactly what it gets alone. pw_bytes: its size. */
	struct ft_pw *(*pw_pack)(enum ft_pw_fmt fmt, const void *w, int OC, int IC);
	void (*pw_free)(struct ft_pw *w);
	size_t (*pw_bytes)(const struct ft_pw *w);
	void (*matmul_pw_fwd)(float *out, const float *inp, const struct ft_pw *w,
			      const float *bias, int N, int IC, int OC);
	/* out += inp w^T for an F32 packed weight: the bits of matmul_fwd
	 * accumulating (a served adapter's B, packed once at load instead of
	 * per call). NULL: not offered. */
	void (*matmul_pw_fwd_add)(float *out, const float *inp, const struct ft_pw *w, int N,
				  int IC, int OC);
	/* dinp[N,IC] += dout[N,OC] w for a BF16 packed weight, in its
	 * arithmetic (dout rounded to bf16, fp32 sums): a frozen bf16 base's
	 * input gradient. pw_bf16: the backend packs BF16 at all. */
	void (*matmul_pw_bwd_input)(float *dinp, const float *dout, const struct ft_pw *w, int N,
				    int IC, int OC);
	bool pw_bf16;
	/* n (<= FT_PW_MULTI_MAX) matmul_pw_fwd of one input: out[i] = inp
	 * w[i]^T + bias[i] (bias[i] may be NULL), the bits n calls give, in
	 * one pass over the input and one hand-off to the threads (a decode
	 * step's q/k/v and gate/up). NULL: the caller makes n calls. */
	void (*matmul_pw_fwd_multi)(float *const *out, const float *inp,
				    const struct ft_pw *const *w, const float *const *bias, int n,
				    int N, int IC);

	/* out = inp * rsqrt(mean(inp^2) + eps) * w; rstd[N] saved for backward */
	void (*rmsnorm_fwd)(float *out, float *rstd, const float *inp, const float *w, int N, int C,
			    float eps);
	void (*rmsnorm_bwd)(float *dinp, float *dw, const float *dout, const float *inp,
			    const float *w, const float *rstd, int N, int C);

	/* In place rotate-half RoPE of x[N, heads*hd] at positions pos[N], with
	 * cos/sin tables [max_pos, hd/2]; backward applies the inverse rotation. */
	void (*rope_fwd)(float *x, const float *cos_t, const float *sin_t, const int32_t *pos,
			 int N, int heads, int hd);
	void (*rope_bwd)(float *dx, const float *cos_t, const float *sin_t, const int32_t *pos,
			 int N, int heads, int hd);

	/* Causal grouped-query attention; a query sees keys at earlier or equal
	 * positions of the same document (doc[B*T]; packing boundaries) and,
	 * when window > 0, fewer than window positions back (Mistral). The
	 * T x T probabilities are never stored: backward recomputes them from
	 * q, k and lse (memory O(T) per head, as flash attention). */
	void (*attention_fwd)(float *out, float *lse, const float *q, const float *k,
			      const float *v, const int32_t *doc, int window, int B, int T, int nh,
			      int nkv, int hd);
	void (*attention_bwd)(float *dq, float *dk, float *dv, const float *dout, const float *lse,
			      const float *q, const float *k, const float *v, const int32_t *doc,
			      int window, int B, int T, int nh, int nkv, int hd);

	/* out = silu(gate) * up, elementwise over n */
	void (*swiglu_fwd)(float *out, const float *gate, const float *up, size_t n);
	void (*swiglu_bwd)(float *dgate, float *dup, const float *dout, const float *gate,
			   const float *up, size_t n);

	/* out[N,C] = wte[ids[n]] ; dwte[ids[n]] += dout[n] */
	void (*embedding_fwd)(float *out, const int32_t *ids, const float *wte, int N, int C);
	void (*embedding_bwd)(float *dwte, const float *dout, const int32_t *ids, int N, int C);

	/* Softmax cross-entropy of logits[N,V] against targets[N]. Adds to *st.
	 * When grad_scale != 0 the logits are replaced by their gradient
	 * grad_scale * (softmax - onehot) (rows with target -100 become 0). */
	void (*cross_entropy)(float *logits, const int32_t *targets, int N, int V, float grad_scale,
			      struct ft_ce_stats *st);

	/* One torch.optim.AdamW step over n parameters. */
	void (*adamw)(float *param, const float *grad, float *m, float *v, size_t n,
		      const struct ft_adamw_args *a);
	/* Sum of squares of x[n], in double. */
	double (*sumsq)(const float *x, size_t n);
	/* x[n] *= s */
	void (*scale)(float *x, size_t n, float s);
};

/* The CPU reference backend (always available). */
const struct ft_backend *ft_backend_cpu(void);
/* The same kernels on mprotect-guarded memory (tests; see the top). */
const struct ft_backend *ft_backend_cpu_guarded(void);

/* The backend of a device name: "cpu" (also NULL or ""), "cuda", or the
 * test hook "cpu-guarded". The environment variable FT_BACKEND, when set
 * and not empty, replaces the name (tests run whole jobs on cpu-guarded).
 * "cuda" without the CUDA backend compiled in, or without a GPU, is an
 * FT_EINVAL error naming the device. */
enum ft_rc ft_backend_select(const char *device, const struct ft_backend **out, struct ft_err *err);
/* The CUDA backend's getter (ft/backend_cuda.h's ft_backend_cuda), given by
 * a program that links the CUDA backend (ft-train does at startup when
 * built with it); until then "cuda" is refused as not built in. */
void ft_backend_set_cuda(const struct ft_backend *(*get)(struct ft_err *err));

/* Threads used by the CPU backend: FT_NUM_THREADS or the online CPUs. */
int ft_pool_threads(void);
/* Override the thread count; only before the first op runs. */
void ft_pool_set_threads(int n);

/* Host views of backend memory (devmem.c), the one pattern host code uses
 * to read or fill a tensor: ft_dev_map gives a host pointer to bytes at
 * dev: dev itself on a host-memory backend (no copy), else a malloc'd
 * staging copy, downloaded when fetch. NULL only when out of memory.
 * ft_dev_unmap ends the view: uploads the copy when store, then frees it
 * (nothing on the CPU). */
void *ft_dev_map(const struct ft_backend *be, void *dev, size_t bytes, bool fetch);
void ft_dev_unmap(const struct ft_backend *be, void *dev, void *host, size_t bytes, bool store);
/* alloc + zero; NULL when out of memory. */
void *ft_dev_calloc(const struct ft_backend *be, size_t bytes);

/* Host-side GEMM (the CPU backend's, threaded), for work done on the host
 * on host memory such as merging adapters: C[M,N] = (accumulate ? C : 0) +
 * op(A)[M,K] op(B)[K,N], op(A)(i,k) = transA ? a[k*lda + i] : a[i*lda + k]. */
void ft_cpu_sgemm(int M, int N, int K, const float *a, int lda, bool transA, const float *b,
		  int ldb, bool transB, float *c, int ldc, bool accumulate);

#endif
