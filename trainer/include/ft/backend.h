/*
 * ft/backend.h - the compute operations a trainer backend provides.
 *
 * The model (trainer/src/model.c) is written once against this table; the
 * CPU backend (trainer/src/cpu/, fp32, the reference) fills it, and the CUDA
 * backend fills its own and is tested op by op against the CPU one.
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

#define FT_IGNORE_INDEX (-100)

struct ft_nf4; /* ft/nf4.h: a 4-bit NF4 weight (QLoRA's frozen base) */

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

/* Threads used by the CPU backend: FT_NUM_THREADS or the online CPUs. */
int ft_pool_threads(void);
/* Override the thread count; only before the first op runs. */
void ft_pool_set_threads(int n);

#endif
