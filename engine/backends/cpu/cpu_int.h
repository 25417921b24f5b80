/*
 * cpu_int.h - private declarations of the CPU backend (engine/backends/cpu/).
 * One function pair per layer file; ft_backend_cpu() (backend_cpu.c) puts
 * them in the struct ft_backend table. Semantics: ft/backend.h.
 */
#ifndef FT_CPU_INT_H
#define FT_CPU_INT_H

#include "ft/backend.h"

/* threadpool.c */
void ft_pool_run(void (*fn)(void *ctx, int i), void *ctx, int ntasks);

/* matmul.c: C[M,N] = (accumulate ? C : 0) + op(A)[M,K] op(B)[K,N], where
 * op(A)(i,k) = transA ? a[k*lda + i] : a[i*lda + k], likewise for B. */
/* ft_cpu_sgemm: ft/backend.h */
/* The same GEMM on the calling thread only (inside a pool task). */
void ft_cpu_sgemm_serial(int M, int N, int K, const float *a, int lda, bool transA, const float *b,
			 int ldb, bool transB, float *c, int ldc, bool accumulate);
void ft_cpu_matmul_fwd(float *out, const float *inp, const float *w, const float *bias, int N,
		       int IC, int OC, bool accumulate);
void ft_cpu_matmul_bwd(float *dinp, float *dw, float *dbias, const float *dout, const float *inp,
		       const float *w, int N, int IC, int OC);

/* An inference weight [OC, IC] (ft/backend.h's pw_*): F32 in the GEMM's
 * panels (matmul.c), or Q8_0 in 16-output panels for 8-bit dot products
 * (matmul_q8.c: the layout at its top). */
struct ft_pw {
	enum ft_pw_fmt fmt;
	int oc, ic, panels;
	float *f; /* F32 */
	uint8_t *q; /* Q8_0 (matmul_q8.c) */
	uint16_t *d;
	uint16_t *bf, *bft; /* BF16 (matmul_bf16.c): as B of the forward and of dinp */
	size_t bytes;
};
/* matmul_bf16.c: FT_PW_BF16 where the build has AVX512-BF16 */
#if defined(__AVX512F__) && defined(__AVX512BF16__)
#define FT_CPU_BF16 true
#else
#define FT_CPU_BF16 false
#endif
uint16_t ft_cpu_bf16_round(float f); /* to the nearest even bf16 (NaN stays NaN) */
bool ft_cpu_bf16_pack(struct ft_pw *w, const float *src); /* false: out of memory or no BF16 */
void ft_cpu_matmul_bf16_fwd(float *out, const float *inp, const struct ft_pw *w, int N);
void ft_cpu_matmul_pw_bwd_input(float *dinp, const float *dout, const struct ft_pw *w, int N,
				int IC, int OC);
/* matmul_q8.c: w's Q8_0 arrays from GGUF Q8_0 rows (false: out of memory) */
bool ft_cpu_q8_pack(struct ft_pw *w, const uint8_t *src);
/* out[N, OC] = inp[N, IC] w^T (no bias) */
void ft_cpu_matmul_q8_fwd(float *out, const float *inp, const struct ft_pw *w, int N);
void ft_cpu_matmul_q8_fwd_multi(float *const *out, const float *inp, const struct ft_pw *const *w,
				int n, int N);

/* matmul.c: inference weights (ft/backend.h's pw_*) */
struct ft_pw *ft_cpu_pw_pack(enum ft_pw_fmt fmt, const void *w, int OC, int IC);
void ft_cpu_pw_free(struct ft_pw *w);
size_t ft_cpu_pw_bytes(const struct ft_pw *w);
void ft_cpu_matmul_pw_fwd_multi(float *const *out, const float *inp, const struct ft_pw *const *w,
				const float *const *bias, int n, int N, int IC);
void ft_cpu_matmul_pw_fwd_add(float *out, const float *inp, const struct ft_pw *w, int N, int IC,
			      int OC);
void ft_cpu_matmul_pw_fwd(float *out, const float *inp, const struct ft_pw *w, const float *bias,
			  int N, int IC, int OC);

/* matmul_nf4.c */
void ft_cpu_matmul_nf4_fwd(float *out, const float *inp, const struct ft_nf4 *w, const float *bias,
			   int N, int IC, int OC);
void ft_cpu_matmul_nf4_bwd_input(float *dinp, const float *dout, const struct ft_nf4 *w, int N,
				 int IC, int OC);

/* rmsnorm.c */
void ft_cpu_rmsnorm_fwd(float *out, float *rstd, const float *inp, const float *w, int N, int C,
			float eps);
void ft_cpu_rmsnorm_bwd(float *dinp, float *dw, const float *dout, const float *inp, const float *w,
			const float *rstd, int N, int C);

/* rope.c */
void ft_cpu_rope_fwd(float *x, const float *cos_t, const float *sin_t, const int32_t *pos, int N,
		     int heads, int hd);
void ft_cpu_rope_bwd(float *dx, const float *cos_t, const float *sin_t, const int32_t *pos, int N,
		     int heads, int hd);

/* attention.c */
void ft_cpu_attention_fwd(float *out, float *lse, const float *q, const float *k, const float *v,
			  const int32_t *doc, int window, int B, int T, int nh, int nkv, int hd);
void ft_cpu_attention_bwd(float *dq, float *dk, float *dv, const float *dout, const float *lse,
			  const float *q, const float *k, const float *v, const int32_t *doc,
			  int window, int B, int T, int nh, int nkv, int hd);

/* vexp.c: y[i] = expf(x[i]) (y may be x), eight at a time where it can */
void ft_cpu_expf_n(float *y, const float *x, size_t n);

/* swiglu.c */
void ft_cpu_swiglu_fwd(float *out, const float *gate, const float *up, size_t n);
void ft_cpu_swiglu_bwd(float *dgate, float *dup, const float *dout, const float *gate,
		       const float *up, size_t n);

/* embedding.c */
void ft_cpu_embedding_fwd(float *out, const int32_t *ids, const float *wte, int N, int C);
void ft_cpu_embedding_bwd(float *dwte, const float *dout, const int32_t *ids, int N, int C);

/* cross_entropy.c */
void ft_cpu_cross_entropy(float *logits, const int32_t *targets, int N, int V, float grad_scale,
			  struct ft_ce_stats *st);

/* adamw.c */
void ft_cpu_adamw(float *param, const float *grad, float *m, float *v, size_t n,
		  const struct ft_adamw_args *a);
double ft_cpu_sumsq(const float *x, size_t n);
void ft_cpu_scale(float *x, size_t n, float s);

/* glue.c: memory and the elementwise glue */
void *ft_cpu_alloc(size_t bytes);
void ft_cpu_free(void *dev);
void ft_cpu_upload(void *dev, const void *host, size_t bytes);
void ft_cpu_download(void *host, const void *dev, size_t bytes);
void ft_cpu_zero(void *dev, size_t bytes);
void ft_cpu_copy(void *dst, const void *src, size_t bytes);
void ft_cpu_add(float *y, const float *x, size_t n);
void ft_cpu_dropout_fwd(float *out, const float *in, const uint8_t *mask, size_t n, float keep);
void ft_cpu_dropout_bwd(float *din, const float *dout, const uint8_t *mask, size_t n, float keep);
void ft_cpu_attention_decode(float *out, float *scores, const float *q, const float *kc,
			     const float *vc, int j0, int pos, int nh, int nkv, int hd);
void ft_cpu_attention_decode_rows(int n, float *out, const float *q, const float *const *kc,
				  const float *const *vc, const int *j0, const int *pos, int nh,
				  int nkv, int hd);

#endif
