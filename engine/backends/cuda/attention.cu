/*
 * attention.cu - causal grouped-query attention with document masking and
 * an optional sliding window, flash-attention style: tiled over keys with an
 * online softmax, only lse [B, nh, T] saved, the backward recomputes the
 * probabilities; nothing of size T x T is ever stored.
 *
 * Math (as ../cpu/attention.c), batch b, query head h, kv head
 * g = h / (nh / nkv), query i, key j:
 *   allowed(i,j) = j <= i  and  doc[b,j] == doc[b,i]  and  (W <= 0 or i - j < W)
 *   s[i,j] = q[i] . k[j] / sqrt(hd)                 (allowed j only)
 *   lse[i] = log sum_j exp(s[i,j]);   p[i,j] = exp(s[i,j] - lse[i])
 *   out[i] = sum_j p[i,j] v[j]
 * Backward:
 *   dp[i,j] = dout[i] . v[j];   D[i] = sum_j p[i,j] dp[i,j]
 *   ds[i,j] = p[i,j] (dp[i,j] - D[i]) / sqrt(hd)
 *   dq[i] += sum_j ds[i,j] k[j];  dk[j] += sum_i ds[i,j] q[i];  dv[j] += sum_i p[i,j] dout[i]
 *
 * Online softmax (forward), per query, over key tiles t of 32 keys:
 *   m_t = max_j s,  M = max(m, m_t),  l = l exp(m - M) + sum_j exp(s - M),
 *   o = o exp(m - M) + sum_j exp(s - M) v[j],  m = M;  at the end out = o / l,
 *   lse = m + log l.  (Every query sees itself, so l > 0.)
 *
 * Work split (simple and race-free; every output row has one owner):
 *   forward and dq:  a block of 8 warps, one warp per query row of one head;
 *     K/V tiles of 32 keys are staged in shared memory and shared by the 8
 *     warps; lane L scores key L of the tile (rows padded to hd+1 floats, so
 *     the 32 lanes hit 32 banks), then the tile's probabilities are broadcast
 *     lane by lane (shuffles) while each lane accumulates its dims d = L,
 *     L+32, ... of the output row in registers.
 *   dq needs D first: the dq kernel walks the keys twice (D, then dq) and
 *     leaves D in scratch for the next kernel.
 *   dk, dv: a block of 8 warps, one warp per key row of one kv head; query
 *     tiles of 32 (q, dout, lse, D) are staged in shared memory; the warp
 *     loops over the nh / nkv query heads of its group, so no two warps
 *     write the same dk/dv row.
 * Tiles entirely left of the window or right of the diagonal are skipped.
 * Head dims up to 256 (the per-lane register arrays are sized by a template
 * parameter DPL = ceil(hd / 32) rounded up to 1, 2, 4 or 8).
 */
#include "cuda_int.cuh"

#define ATT_WARPS 8
#define ATT_TILE 32
#define ATT_THREADS (ATT_WARPS * 32)
#define ATT_MAX_HD 256

struct att_args {
	int T, nh, nkv, hd, window;
	float scale;
	const int32_t *doc;
};

__device__ __forceinline__ int doc_at(const int32_t *doc, size_t idx)
{
	return doc ? doc[idx] : 0;
}

__device__ __forceinline__ bool att_allowed(int i, int j, int di, int dj, int window)
{
	return j <= i && di == dj && (window <= 0 || i - j < window);
}

/* ---- forward ---- */
template <typename S, int DPL>
__global__ static void __launch_bounds__(ATT_THREADS)
	att_fwd_kernel(S *out, float *lse, const S *q, const S *k, const S *v, struct att_args a)
{
	extern __shared__ float smem[];
	const int hd = a.hd, hp = hd + 1;
	float *Ks = smem; /* [TILE][hd+1] */
	float *Vs = Ks + ATT_TILE * hp; /* [TILE][hd] */
	float *Qs = Vs + ATT_TILE * hd; /* [WARPS][hd] */
	int *kdoc = (int *)(Qs + ATT_WARPS * hd); /* [TILE] */

	const int b = blockIdx.z, h = blockIdx.y, g = h / (a.nh / a.nkv);
	const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
	const int T = a.T, i0 = blockIdx.x * ATT_WARPS, i = i0 + warp;
	const int ilast = min(T - 1, i0 + ATT_WARPS - 1);
	const bool valid = i < T;
	const size_t qs = (size_t)a.nh * hd, ks = (size_t)a.nkv * hd;

	float *qrow = Qs + warp * hd;
	if (valid)
		for (int d = lane; d < hd; d += 32)
			qrow[d] = ld(q[((size_t)b * T + i) * qs + (size_t)h * hd + d]);
	const int mydoc = valid ? doc_at(a.doc, (size_t)b * T + i) : 0;

	float m = -INFINITY, l = 0.0f, o[DPL];
#pragma unroll
	for (int t = 0; t < DPL; t++)
		o[t] = 0.0f;

	const int jlo = a.window > 0 ? max(0, i0 - a.window + 1) : 0;
	for (int tile = jlo / ATT_TILE; tile <= ilast / ATT_TILE; tile++) {
		const int j0 = tile * ATT_TILE;
		__syncthreads(); /* the previous tile is consumed */
		for (int idx = threadIdx.x; idx < ATT_TILE * hd; idx += blockDim.x) {
			int r = idx / hd, d = idx % hd, j = j0 + r;
			size_t off = ((size_t)b * T + j) * ks + (size_t)g * hd + d;
			Ks[r * hp + d] = j < T ? ld(k[off]) : 0.0f;
			Vs[r * hd + d] = j < T ? ld(v[off]) : 0.0f;
		}
		for (int r = threadIdx.x; r < ATT_TILE; r += blockDim.x)
			kdoc[r] = j0 + r < T ? doc_at(a.doc, (size_t)b * T + j0 + r) : 0;
		__syncthreads();
		if (!valid)
			continue;
		const int j = j0 + lane;
		const bool ok = j < T && att_allowed(i, j, mydoc, kdoc[lane], a.window);
		float s = -INFINITY;
		if (ok) {
			float dot = 0.0f;
			for (int d = 0; d < hd; d++)
				dot += qrow[d] * Ks[lane * hp + d];
			s = dot * a.scale;
		}
		const float mt = warp_max(s);
		if (mt == -INFINITY) /* nothing allowed in this tile (warp-uniform) */
			continue;
		const float mn = fmaxf(m, mt), corr = expf(m - mn);
		const float p = ok ? expf(s - mn) : 0.0f;
		l = l * corr + warp_sum(p);
#pragma unroll
		for (int t = 0; t < DPL; t++)
			o[t] *= corr;
		for (int jj = 0; jj < ATT_TILE; jj++) {
			const float pj = __shfl_sync(0xffffffffu, p, jj);
			if (pj == 0.0f)
				continue;
#pragma unroll
			for (int t = 0; t < DPL; t++) {
				int d = lane + 32 * t;
				if (d < hd)
					o[t] += pj * Vs[jj * hd + d];
			}
		}
		m = mn;
	}
	if (!valid)
		return;
	const float inv = 1.0f / l;
#pragma unroll
	for (int t = 0; t < DPL; t++) {
		int d = lane + 32 * t;
		if (d < hd)
			out[((size_t)b * T + i) * qs + (size_t)h * hd + d] = st<S>(o[t] * inv);
	}
	if (lane == 0)
		lse[((size_t)b * a.nh + h) * T + i] = m + logf(l);
}

/* ---- backward 1: D and dq, one warp per query row ---- */
template <typename S, int DPL>
__global__ static void __launch_bounds__(ATT_THREADS)
	att_bwd_dq_kernel(S *dq, float *Dbuf, const S *dout, const float *lse, const S *q,
			  const S *k, const S *v, struct att_args a)
{
	extern __shared__ float smem[];
	const int hd = a.hd, hp = hd + 1;
	float *Ks = smem; /* [TILE][hd+1] */
	float *Vs = Ks + ATT_TILE * hp; /* [TILE][hd+1] */
	float *Qs = Vs + ATT_TILE * hp; /* [WARPS][hd] */
	float *dOs = Qs + ATT_WARPS * hd; /* [WARPS][hd] */
	int *kdoc = (int *)(dOs + ATT_WARPS * hd); /* [TILE] */

	const int b = blockIdx.z, h = blockIdx.y, g = h / (a.nh / a.nkv);
	const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
	const int T = a.T, i0 = blockIdx.x * ATT_WARPS, i = i0 + warp;
	const int ilast = min(T - 1, i0 + ATT_WARPS - 1);
	const bool valid = i < T;
	const size_t qs = (size_t)a.nh * hd, ks = (size_t)a.nkv * hd;
	const size_t qoff = ((size_t)b * T + i) * qs + (size_t)h * hd;

	float *qrow = Qs + warp * hd, *dorow = dOs + warp * hd;
	if (valid)
		for (int d = lane; d < hd; d += 32) {
			qrow[d] = ld(q[qoff + d]);
			dorow[d] = ld(dout[qoff + d]);
		}
	const int mydoc = valid ? doc_at(a.doc, (size_t)b * T + i) : 0;
	const float li = valid ? lse[((size_t)b * a.nh + h) * T + i] : 0.0f;
	float D = 0.0f, acc[DPL];
#pragma unroll
	for (int t = 0; t < DPL; t++)
		acc[t] = 0.0f;

	const int jlo = a.window > 0 ? max(0, i0 - a.window + 1) : 0;
	for (int pass = 0; pass < 2; pass++) {
		for (int tile = jlo / ATT_TILE; tile <= ilast / ATT_TILE; tile++) {
			const int j0 = tile * ATT_TILE;
			__syncthreads();
			for (int idx = threadIdx.x; idx < ATT_TILE * hd; idx += blockDim.x) {
				int r = idx / hd, d = idx % hd, j = j0 + r;
				size_t off = ((size_t)b * T + j) * ks + (size_t)g * hd + d;
				Ks[r * hp + d] = j < T ? ld(k[off]) : 0.0f;
				Vs[r * hp + d] = j < T ? ld(v[off]) : 0.0f;
			}
			for (int r = threadIdx.x; r < ATT_TILE; r += blockDim.x)
				kdoc[r] = j0 + r < T ? doc_at(a.doc, (size_t)b * T + j0 + r) : 0;
			__syncthreads();
			if (!valid)
				continue;
			const int j = j0 + lane;
			const bool ok = j < T && att_allowed(i, j, mydoc, kdoc[lane], a.window);
			float p = 0.0f, dp = 0.0f;
			if (ok) {
				float s = 0.0f;
				for (int d = 0; d < hd; d++) {
					s += qrow[d] * Ks[lane * hp + d];
					dp += dorow[d] * Vs[lane * hp + d];
				}
				p = expf(s * a.scale - li);
			}
			if (pass == 0) {
				D += warp_sum(p * dp);
				continue;
			}
			const float ds = p * (dp - D) * a.scale;
			for (int jj = 0; jj < ATT_TILE; jj++) {
				const float dsj = __shfl_sync(0xffffffffu, ds, jj);
				if (dsj == 0.0f)
					continue;
#pragma unroll
				for (int t = 0; t < DPL; t++) {
					int d = lane + 32 * t;
					if (d < hd)
						acc[t] += dsj * Ks[jj * hp + d];
				}
			}
		}
	}
	if (!valid)
		return;
#pragma unroll
	for (int t = 0; t < DPL; t++) {
		int d = lane + 32 * t;
		if (d < hd)
			dq[qoff + d] = st<S>(ld(dq[qoff + d]) + acc[t]);
	}
	if (lane == 0)
		Dbuf[((size_t)b * a.nh + h) * T + i] = D;
}

/* ---- backward 2: dk and dv, one warp per key row of one kv head ---- */
template <typename S, int DPL>
__global__ static void __launch_bounds__(ATT_THREADS)
	att_bwd_dkv_kernel(S *dk, S *dv, const float *Dbuf, const S *dout, const float *lse,
			   const S *q, const S *k, const S *v, struct att_args a)
{
	extern __shared__ float smem[];
	const int hd = a.hd, hp = hd + 1;
	float *Qs = smem; /* [TILE][hd+1] */
	float *dOs = Qs + ATT_TILE * hp; /* [TILE][hd+1] */
	float *Kw = dOs + ATT_TILE * hp; /* [WARPS][hd] */
	float *Vw = Kw + ATT_WARPS * hd; /* [WARPS][hd] */
	float *qlse = Vw + ATT_WARPS * hd; /* [TILE] */
	float *qD = qlse + ATT_TILE; /* [TILE] */
	int *qdoc = (int *)(qD + ATT_TILE); /* [TILE] */

	const int b = blockIdx.z, g = blockIdx.y, group = a.nh / a.nkv;
	const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
	const int T = a.T, j0b = blockIdx.x * ATT_WARPS, j = j0b + warp;
	const int jlast = min(T - 1, j0b + ATT_WARPS - 1);
	const bool valid = j < T;
	const size_t qs = (size_t)a.nh * hd, ks = (size_t)a.nkv * hd;
	const size_t koff = ((size_t)b * T + j) * ks + (size_t)g * hd;

	float *krow = Kw + warp * hd, *vrow = Vw + warp * hd;
	if (valid)
		for (int d = lane; d < hd; d += 32) {
			krow[d] = ld(k[koff + d]);
			vrow[d] = ld(v[koff + d]);
		}
	const int mydoc = valid ? doc_at(a.doc, (size_t)b * T + j) : 0;
	float dka[DPL], dva[DPL];
#pragma unroll
	for (int t = 0; t < DPL; t++)
		dka[t] = dva[t] = 0.0f;

	/* queries that may see keys j0b..jlast: j0b .. jlast + W - 1 (or T - 1) */
	const int ihi = a.window > 0 ? min(T - 1, jlast + a.window - 1) : T - 1;
	for (int h = g * group; h < (g + 1) * group; h++) {
		for (int tile = j0b / ATT_TILE; tile <= ihi / ATT_TILE; tile++) {
			const int q0 = tile * ATT_TILE;
			__syncthreads();
			for (int idx = threadIdx.x; idx < ATT_TILE * hd; idx += blockDim.x) {
				int r = idx / hd, d = idx % hd, i = q0 + r;
				size_t off = ((size_t)b * T + i) * qs + (size_t)h * hd + d;
				Qs[r * hp + d] = i < T ? ld(q[off]) : 0.0f;
				dOs[r * hp + d] = i < T ? ld(dout[off]) : 0.0f;
			}
			for (int r = threadIdx.x; r < ATT_TILE; r += blockDim.x) {
				int i = q0 + r;
				size_t li = ((size_t)b * a.nh + h) * T + i;
				qlse[r] = i < T ? lse[li] : 0.0f;
				qD[r] = i < T ? Dbuf[li] : 0.0f;
				qdoc[r] = i < T ? doc_at(a.doc, (size_t)b * T + i) : 0;
			}
			__syncthreads();
			if (!valid)
				continue;
			const int i = q0 + lane;
			const bool ok = i < T && att_allowed(i, j, qdoc[lane], mydoc, a.window);
			float p = 0.0f, ds = 0.0f;
			if (ok) {
				float s = 0.0f, dp = 0.0f;
				for (int d = 0; d < hd; d++) {
					s += Qs[lane * hp + d] * krow[d];
					dp += dOs[lane * hp + d] * vrow[d];
				}
				p = expf(s * a.scale - qlse[lane]);
				ds = p * (dp - qD[lane]) * a.scale;
			}
			for (int ii = 0; ii < ATT_TILE; ii++) {
				const float pi = __shfl_sync(0xffffffffu, p, ii);
				const float dsi = __shfl_sync(0xffffffffu, ds, ii);
				if (pi == 0.0f && dsi == 0.0f)
					continue;
#pragma unroll
				for (int t = 0; t < DPL; t++) {
					int d = lane + 32 * t;
					if (d < hd) {
						dva[t] += pi * dOs[ii * hp + d];
						dka[t] += dsi * Qs[ii * hp + d];
					}
				}
			}
		}
	}
	if (!valid)
		return;
#pragma unroll
	for (int t = 0; t < DPL; t++) {
		int d = lane + 32 * t;
		if (d < hd) {
			dk[koff + d] = st<S>(ld(dk[koff + d]) + dka[t]);
			dv[koff + d] = st<S>(ld(dv[koff + d]) + dva[t]);
		}
	}
}

/* ---- launchers ---- */
static size_t fwd_smem(int hd)
{
	return sizeof(float) * ((size_t)ATT_TILE * (hd + 1) + (size_t)ATT_TILE * hd +
				(size_t)ATT_WARPS * hd) +
	       sizeof(int) * ATT_TILE;
}

static size_t dq_smem(int hd)
{
	return sizeof(float) * (2 * (size_t)ATT_TILE * (hd + 1) + 2 * (size_t)ATT_WARPS * hd) +
	       sizeof(int) * ATT_TILE;
}

static size_t dkv_smem(int hd)
{
	return sizeof(float) * (2 * (size_t)ATT_TILE * (hd + 1) + 2 * (size_t)ATT_WARPS * hd +
				2 * (size_t)ATT_TILE) +
	       sizeof(int) * ATT_TILE;
}

/* Allow `bytes` of dynamic shared memory for kernel f (above the default 48 KiB
 * only after opting in; H100 allows up to 227 KiB). */
template <typename F> static void smem_allow(F *f, size_t bytes)
{
	FT_CUDA_ASSERT(bytes <= ft_cuda_ctx()->smem_optin);
	if (bytes > 48 * 1024)
		FT_CUDA_CHECK(cudaFuncSetAttribute(f, cudaFuncAttributeMaxDynamicSharedMemorySize,
						   (int)bytes));
}

static struct att_args make_args(const int32_t *doc, int window, int T, int nh, int nkv, int hd)
{
	FT_CUDA_ASSERT(hd > 0 && hd <= ATT_MAX_HD);
	FT_CUDA_ASSERT(nkv > 0 && nh % nkv == 0);
	struct att_args a;
	a.T = T;
	a.nh = nh;
	a.nkv = nkv;
	a.hd = hd;
	a.window = window;
	a.scale = 1.0f / sqrtf((float)hd);
	a.doc = doc;
	return a;
}

template <typename S, int DPL>
static void att_fwd(S *out, float *lse, const S *q, const S *k, const S *v, struct att_args a,
		    int B)
{
	size_t sm = fwd_smem(a.hd);
	smem_allow(att_fwd_kernel<S, DPL>, sm);
	dim3 grid((a.T + ATT_WARPS - 1) / ATT_WARPS, a.nh, B);
	att_fwd_kernel<S, DPL><<<grid, ATT_THREADS, sm>>>(out, lse, q, k, v, a);
	FT_CUDA_LAUNCHED();
}

template <typename S, int DPL>
static void att_bwd(S *dq, S *dk, S *dv, const S *dout, const float *lse, const S *q, const S *k,
		    const S *v, struct att_args a, int B)
{
	float *Dbuf = (float *)ft_cuda_scratch(sizeof(float) * (size_t)B * a.nh * a.T);
	size_t sm = dq_smem(a.hd);
	smem_allow(att_bwd_dq_kernel<S, DPL>, sm);
	dim3 grid((a.T + ATT_WARPS - 1) / ATT_WARPS, a.nh, B);
	att_bwd_dq_kernel<S, DPL><<<grid, ATT_THREADS, sm>>>(dq, Dbuf, dout, lse, q, k, v, a);
	FT_CUDA_LAUNCHED();
	sm = dkv_smem(a.hd);
	smem_allow(att_bwd_dkv_kernel<S, DPL>, sm);
	dim3 grid2((a.T + ATT_WARPS - 1) / ATT_WARPS, a.nkv, B);
	att_bwd_dkv_kernel<S, DPL><<<grid2, ATT_THREADS, sm>>>(dk, dv, Dbuf, dout, lse, q, k, v, a);
	FT_CUDA_LAUNCHED();
}

template <typename S>
static void attention_fwd(S *out, float *lse, const S *q, const S *k, const S *v,
			  const int32_t *doc, int window, int B, int T, int nh, int nkv, int hd)
{
	if (B <= 0 || T <= 0 || nh <= 0)
		return;
	struct att_args a = make_args(doc, window, T, nh, nkv, hd);
	if (hd <= 32)
		att_fwd<S, 1>(out, lse, q, k, v, a, B);
	else if (hd <= 64)
		att_fwd<S, 2>(out, lse, q, k, v, a, B);
	else if (hd <= 128)
		att_fwd<S, 4>(out, lse, q, k, v, a, B);
	else
		att_fwd<S, 8>(out, lse, q, k, v, a, B);
}

template <typename S>
static void attention_bwd(S *dq, S *dk, S *dv, const S *dout, const float *lse, const S *q,
			  const S *k, const S *v, const int32_t *doc, int window, int B, int T,
			  int nh, int nkv, int hd)
{
	if (B <= 0 || T <= 0 || nh <= 0)
		return;
	FT_CUDA_ASSERT(dq && dk && dv);
	struct att_args a = make_args(doc, window, T, nh, nkv, hd);
	if (hd <= 32)
		att_bwd<S, 1>(dq, dk, dv, dout, lse, q, k, v, a, B);
	else if (hd <= 64)
		att_bwd<S, 2>(dq, dk, dv, dout, lse, q, k, v, a, B);
	else if (hd <= 128)
		att_bwd<S, 4>(dq, dk, dv, dout, lse, q, k, v, a, B);
	else
		att_bwd<S, 8>(dq, dk, dv, dout, lse, q, k, v, a, B);
}

typedef __nv_bfloat16 bf;

extern "C" void ft_cuda_attention_fwd(float *out, float *lse, const float *q, const float *k,
				      const float *v, const int32_t *doc, int window, int B, int T,
				      int nh, int nkv, int hd)
{
	attention_fwd<float>(out, lse, q, k, v, doc, window, B, T, nh, nkv, hd);
}

extern "C" void ft_cuda_attention_bwd(float *dq, float *dk, float *dv, const float *dout,
				      const float *lse, const float *q, const float *k,
				      const float *v, const int32_t *doc, int window, int B, int T,
				      int nh, int nkv, int hd)
{
	attention_bwd<float>(dq, dk, dv, dout, lse, q, k, v, doc, window, B, T, nh, nkv, hd);
}

extern "C" void ft_cuda_attention_fwd_bf16(ft_bf16 *out, float *lse, const ft_bf16 *q,
					   const ft_bf16 *k, const ft_bf16 *v, const int32_t *doc,
					   int window, int B, int T, int nh, int nkv, int hd)
{
	attention_fwd<bf>((bf *)out, lse, (const bf *)q, (const bf *)k, (const bf *)v, doc, window,
			  B, T, nh, nkv, hd);
}

extern "C" void ft_cuda_attention_bwd_bf16(ft_bf16 *dq, ft_bf16 *dk, ft_bf16 *dv,
					   const ft_bf16 *dout, const float *lse, const ft_bf16 *q,
					   const ft_bf16 *k, const ft_bf16 *v, const int32_t *doc,
					   int window, int B, int T, int nh, int nkv, int hd)
{
	attention_bwd<bf>((bf *)dq, (bf *)dk, (bf *)dv, (const bf *)dout, lse, (const bf *)q,
			  (const bf *)k, (const bf *)v, doc, window, B, T, nh, nkv, hd);
}
