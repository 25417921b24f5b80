/*
 * ft/backend_cuda.h - the CUDA backend (engine/backends/cuda/): the struct ft_backend
 * of ft/backend.h on an NVIDIA GPU, plus device memory helpers and bf16
 * entry points.
 *
 * Built whenever nvcc exists (FT_HAVE_CUDA is then defined for the targets
 * that link fttrainer_cuda); it needs a GPU only to run.
 *
 * Rules:
 *  - every tensor pointer given to these functions and to the ops of
 *    ft_backend_cuda() is a DEVICE pointer (ft_cuda_alloc); ids, targets,
 *    positions and doc ids too. Host memory is touched only by
 *    ft_cuda_upload / ft_cuda_download and by the ops' host results
 *    (sumsq's return value, cross-entropy's struct ft_ce_stats);
 *  - the fp32 table has exactly the semantics of the CPU reference backend
 *    (same formulas, same accumulate rules, NULL gradient = frozen) and is
 *    tested op by op against it (tests/gpu/test_cuda_kernels.c);
 *  - the _bf16 entry points store weights and activations as bfloat16
 *    (ft_bf16: the bits of torch.bfloat16) and compute and accumulate in
 *    fp32; weight gradients, statistics (rstd, lse) and optimizer state stay
 *    fp32 (AdamW keeps fp32 master weights and can write a bf16 copy);
 *  - one host thread drives one GPU: ft_cuda_init binds the calling thread
 *    to a device and gives it its own cuBLASLt handle, workspace and
 *    scratch; ops run in order on the default stream;
 *  - a CUDA or cuBLAS failure inside an op is a programmer error and aborts
 *    with file and line (ft/cuda_check.h); what can fail for outside reasons
 *    (no device, out of memory) returns enum ft_rc with struct ft_err.
 */
#ifndef FT_BACKEND_CUDA_H
#define FT_BACKEND_CUDA_H

#include "ft/backend.h"
#include "ft/err.h"

typedef uint16_t ft_bf16; /* bfloat16 bits, round-to-nearest-even from fp32 */

/* ---- devices and memory ---- */

/* CUDA devices visible to this process (0 when none or no driver). */
int ft_cuda_device_count(void);
/* Bind the calling thread to `device`, create its cuBLASLt handle and
 * workspace. Fails with a reason when no such device exists. */
enum ft_rc ft_cuda_init(int device, struct ft_err *err);
/* Free the calling thread's handle, workspace and scratch. */
void ft_cuda_release(void);
/* The fp32 op table on the calling thread's device (device 0 when the
 * thread has not called ft_cuda_init). NULL, with the reason in err, when
 * no CUDA device is present. */
const struct ft_backend *ft_backend_cuda(struct ft_err *err);
/* Free and total memory of the current device. */
enum ft_rc ft_cuda_mem_info(size_t *free_bytes, size_t *total_bytes, struct ft_err *err);

/* Device allocation; NULL with an out-of-memory error naming the size. */
void *ft_cuda_alloc(size_t bytes, struct ft_err *err);
void ft_cuda_free(void *dev);
void ft_cuda_upload(void *dev_dst, const void *host_src, size_t bytes);
void ft_cuda_download(void *host_dst, const void *dev_src, size_t bytes);
void ft_cuda_memset(void *dev_dst, int byte, size_t bytes);
void ft_cuda_sync(void);
/* Device-side conversions (round to nearest even, as torch's .to()). */
void ft_cuda_f32_to_bf16(ft_bf16 *out, const float *in, size_t n);
void ft_cuda_bf16_to_f32(float *out, const ft_bf16 *in, size_t n);

/* The table's memory entries (glue.cu): alloc without an error struct
 * (NULL when out of memory), zero, device-to-device copy. */
void *ft_cuda_be_alloc(size_t bytes);
void ft_cuda_be_zero(void *dev, size_t bytes);
void ft_cuda_be_copy(void *dev_dst, const void *dev_src, size_t bytes);
bool ft_cuda_be_mem_info(size_t *free_bytes, size_t *total_bytes);

/* ---- the fp32 ops of the table (semantics: ft/backend.h) ---- */
void ft_cuda_matmul_fwd(float *out, const float *inp, const float *w, const float *bias, int N,
			int IC, int OC, bool accumulate);
void ft_cuda_matmul_bwd(float *dinp, float *dw, float *dbias, const float *dout, const float *inp,
			const float *w, int N, int IC, int OC);
void ft_cuda_rmsnorm_fwd(float *out, float *rstd, const float *inp, const float *w, int N, int C,
			 float eps);
void ft_cuda_rmsnorm_bwd(float *dinp, float *dw, const float *dout, const float *inp,
			 const float *w, const float *rstd, int N, int C);
void ft_cuda_rope_fwd(float *x, const float *cos_t, const float *sin_t, const int32_t *pos, int N,
		      int heads, int hd);
void ft_cuda_rope_bwd(float *dx, const float *cos_t, const float *sin_t, const int32_t *pos, int N,
		      int heads, int hd);
void ft_cuda_attention_fwd(float *out, float *lse, const float *q, const float *k, const float *v,
			   const int32_t *doc, int window, int B, int T, int nh, int nkv, int hd);
void ft_cuda_attention_bwd(float *dq, float *dk, float *dv, const float *dout, const float *lse,
			   const float *q, const float *k, const float *v, const int32_t *doc,
			   int window, int B, int T, int nh, int nkv, int hd);
void ft_cuda_swiglu_fwd(float *out, const float *gate, const float *up, size_t n);
void ft_cuda_swiglu_bwd(float *dgate, float *dup, const float *dout, const float *gate,
			const float *up, size_t n);
void ft_cuda_embedding_fwd(float *out, const int32_t *ids, const float *wte, int N, int C);
void ft_cuda_embedding_bwd(float *dwte, const float *dout, const int32_t *ids, int N, int C);
void ft_cuda_cross_entropy(float *logits, const int32_t *targets, int N, int V, float grad_scale,
			   struct ft_ce_stats *st);
void ft_cuda_adamw(float *param, const float *grad, float *m, float *v, size_t n,
		   const struct ft_adamw_args *a);
double ft_cuda_sumsq(const float *x, size_t n);
void ft_cuda_scale(float *x, size_t n, float s);

/* The model's glue (glue.cu; semantics: ft/backend.h) */
void ft_cuda_add(float *y, const float *x, size_t n);
void ft_cuda_dropout_fwd(float *out, const float *in, const uint8_t *mask, size_t n, float keep);
void ft_cuda_dropout_bwd(float *din, const float *dout, const uint8_t *mask, size_t n, float keep);
void ft_cuda_attention_decode(float *out, float *scores, const float *q, const float *kc,
			      const float *vc, int j0, int pos, int nh, int nkv, int hd);

/* Fused residual add + RMSNorm (the pre-norm block boundary):
 *   res = a + b;  out = rmsnorm(res) * w;  rstd saved
 * res may alias a or b. Backward is ft_cuda_rmsnorm_bwd on res (the caller
 * adds the residual branch's gradient itself). */
void ft_cuda_rmsnorm_residual_fwd(float *res, float *out, float *rstd, const float *a,
				  const float *b, const float *w, int N, int C, float eps);

/* ---- bf16 storage, fp32 compute (same math as the fp32 ops) ---- */
/* GEMMs: bf16 operands, fp32 accumulation; dw and dbias are fp32 (they
 * accumulate over micro-batches), dinp is bf16. */
void ft_cuda_matmul_fwd_bf16(ft_bf16 *out, const ft_bf16 *inp, const ft_bf16 *w,
			     const ft_bf16 *bias, int N, int IC, int OC, bool accumulate);
void ft_cuda_matmul_bwd_bf16(ft_bf16 *dinp, float *dw, float *dbias, const ft_bf16 *dout,
			     const ft_bf16 *inp, const ft_bf16 *w, int N, int IC, int OC);
void ft_cuda_rmsnorm_fwd_bf16(ft_bf16 *out, float *rstd, const ft_bf16 *inp, const ft_bf16 *w,
			      int N, int C, float eps);
void ft_cuda_rmsnorm_bwd_bf16(ft_bf16 *dinp, float *dw, const ft_bf16 *dout, const ft_bf16 *inp,
			      const ft_bf16 *w, const float *rstd, int N, int C);
void ft_cuda_rmsnorm_residual_fwd_bf16(ft_bf16 *res, ft_bf16 *out, float *rstd, const ft_bf16 *a,
				       const ft_bf16 *b, const ft_bf16 *w, int N, int C, float eps);
void ft_cuda_rope_fwd_bf16(ft_bf16 *x, const float *cos_t, const float *sin_t, const int32_t *pos,
			   int N, int heads, int hd);
void ft_cuda_rope_bwd_bf16(ft_bf16 *dx, const float *cos_t, const float *sin_t, const int32_t *pos,
			   int N, int heads, int hd);
void ft_cuda_attention_fwd_bf16(ft_bf16 *out, float *lse, const ft_bf16 *q, const ft_bf16 *k,
				const ft_bf16 *v, const int32_t *doc, int window, int B, int T,
				int nh, int nkv, int hd);
void ft_cuda_attention_bwd_bf16(ft_bf16 *dq, ft_bf16 *dk, ft_bf16 *dv, const ft_bf16 *dout,
				const float *lse, const ft_bf16 *q, const ft_bf16 *k,
				const ft_bf16 *v, const int32_t *doc, int window, int B, int T,
				int nh, int nkv, int hd);
void ft_cuda_swiglu_fwd_bf16(ft_bf16 *out, const ft_bf16 *gate, const ft_bf16 *up, size_t n);
void ft_cuda_swiglu_bwd_bf16(ft_bf16 *dgate, ft_bf16 *dup, const ft_bf16 *dout, const ft_bf16 *gate,
			     const ft_bf16 *up, size_t n);
void ft_cuda_embedding_fwd_bf16(ft_bf16 *out, const int32_t *ids, const ft_bf16 *wte, int N, int C);
void ft_cuda_embedding_bwd_bf16(float *dwte, const ft_bf16 *dout, const int32_t *ids, int N, int C);
/* Logits bf16; the gradient is written in place in bf16. */
void ft_cuda_cross_entropy_bf16(ft_bf16 *logits, const int32_t *targets, int N, int V,
				float grad_scale, struct ft_ce_stats *st);
/* AdamW on fp32 master weights; when copy is not NULL it receives the
 * updated parameters in bf16 (the weights the next forward reads). */
void ft_cuda_adamw_bf16copy(float *param, const float *grad, float *m, float *v, size_t n,
			    const struct ft_adamw_args *a, ft_bf16 *copy);

/* ---- NF4 (bitsandbytes' 4-bit NormalFloat, QLoRA) ----
 * n weights, two 4-bit codes per byte, the first element in the HIGH nibble;
 * blocks of 64 weights share one absmax:
 *   w[i] = NF4[code(i)] * absmax[i / 64]
 * Double-quantised absmax (bnb's compress_statistics): the absmax are uint8
 * codes through a 256-value map, in blocks of 256 with an fp32 scale each,
 * plus one offset:
 *   absmax[b] = code2[qabsmax[b]] * absmax2[b / 256] + offset
 * n must be a multiple of 2 (bnb pads the packed tensor). */
#define FT_NF4_BLOCK 64
#define FT_NF4_BLOCK2 256
/* The QLoRA linear (matmul_nf4.cu; semantics: ft/backend.h's matmul_nf4_*
 * ops): every array inside *w is a device pointer, code2 included. */
struct ft_nf4;
void ft_cuda_matmul_nf4_fwd(float *out, const float *inp, const struct ft_nf4 *w, const float *bias,
			    int N, int IC, int OC);
void ft_cuda_matmul_nf4_bwd_input(float *dinp, const float *dout, const struct ft_nf4 *w, int N,
				  int IC, int OC);
extern const float ft_nf4_codebook[16];
void ft_cuda_nf4_dequant_bf16(ft_bf16 *out, const uint8_t *packed, const float *absmax, size_t n);
void ft_cuda_nf4_dequant_f32(float *out, const uint8_t *packed, const float *absmax, size_t n);
void ft_cuda_nf4_dequant_dq_bf16(ft_bf16 *out, const uint8_t *packed, const uint8_t *qabsmax,
				 const float *code2, const float *absmax2, float offset, size_t n);

#endif
