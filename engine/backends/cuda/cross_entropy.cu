/*
 * cross_entropy.cu - softmax cross-entropy over the vocabulary, per row,
 * without ever storing probabilities:
 *   lse    = log sum_v exp(logits[v])
 *   loss   = lse - logits[target]                  (rows with target -100: none)
 *   dlogit = grad_scale * (softmax(logits) - onehot(target))   (written in place)
 * One block per row. Pass 1: each thread walks its strided slice of the
 * vocabulary keeping an online (max m, sum s of exp(x - m)) pair and its first
 * maximal index; the pairs are merged in a fixed tree
 *   (m1,s1) + (m2,s2) = (M, s1 exp(m1 - M) + s2 exp(m2 - M)),  M = max(m1, m2)
 * and the argmax keeps the smallest index among equal maxima (torch.argmax).
 * Pass 2 (grad_scale != 0) overwrites each logit with its gradient. Rows
 * whose target is -100 get a zero gradient row; a target outside [0, V) is
 * treated the same way (the CPU backend would read out of bounds).
 * Per-row loss (double), trained flag and correct flag go to device scratch
 * and are summed on the host in row order, so the statistics are the same
 * on every run.
 */
#include "cuda_int.cuh"

#define CE_THREADS 512

struct ce_row {
	double loss;
	int trained, correct;
};

template <typename S>
__global__ static void ce_kernel(S *logits, const int32_t *targets, int V, float grad_scale,
				 struct ce_row *rows)
{
	__shared__ float sm[CE_THREADS], ss[CE_THREADS], sv[CE_THREADS];
	__shared__ int si[CE_THREADS];
	size_t row = blockIdx.x;
	S *x = logits + row * (size_t)V;
	int tgt = targets[row];
	bool trained = tgt != FT_IGNORE_INDEX && tgt >= 0 && tgt < V;
	int tid = threadIdx.x;
	if (!trained) {
		if (grad_scale != 0.0f)
			for (int v = tid; v < V; v += blockDim.x)
				x[v] = st<S>(0.0f);
		if (tid == 0)
			rows[row] = { 0.0, 0, 0 };
		return;
	}
	float m = -INFINITY, s = 0.0f, best = -INFINITY;
	int arg = 0x7fffffff;
	for (int v = tid; v < V; v += blockDim.x) {
		float xv = ld(x[v]);
		if (xv > best) {
			best = xv;
			arg = v;
		}
		if (xv > m) {
			s = s * expf(m - xv) + 1.0f;
			m = xv;
		} else if (m != -INFINITY) {
			s += expf(xv - m);
		}
	}
	sm[tid] = m;
	ss[tid] = s;
	sv[tid] = best;
	si[tid] = arg;
	__syncthreads();
	for (int w = CE_THREADS / 2; w > 0; w >>= 1) {
		if (tid < w) {
			float m1 = sm[tid], m2 = sm[tid + w], M = fmaxf(m1, m2);
			float s1 = ss[tid], s2 = ss[tid + w];
			ss[tid] = M == -INFINITY ? 0.0f : s1 * expf(m1 - M) + s2 * expf(m2 - M);
			sm[tid] = M;
			float v2 = sv[tid + w];
			int i2 = si[tid + w];
			if (v2 > sv[tid] || (v2 == sv[tid] && i2 < si[tid])) {
				sv[tid] = v2;
				si[tid] = i2;
			}
		}
		__syncthreads();
	}
	float lse = sm[0] + logf(ss[0]);
	if (tid == 0) {
		rows[row].loss = (double)lse - (double)ld(x[tgt]);
		rows[row].trained = 1;
		rows[row].correct = si[0] == tgt;
	}
	if (grad_scale == 0.0f)
		return;
	__syncthreads(); /* x[tgt] is read above before anyone overwrites it */
	for (int v = tid; v < V; v += blockDim.x) {
		float g = expf(ld(x[v]) - lse) * grad_scale;
		if (v == tgt)
			g -= grad_scale;
		x[v] = st<S>(g);
	}
}

template <typename S>
static void cross_entropy(S *logits, const int32_t *targets, int N, int V, float grad_scale,
			  struct ft_ce_stats *st)
{
	if (N <= 0 || V <= 0)
		return;
	struct ce_row *rows = (struct ce_row *)ft_cuda_scratch((size_t)N * sizeof(struct ce_row));
	ce_kernel<S><<<N, CE_THREADS>>>(logits, targets, V, grad_scale, rows);
	FT_CUDA_LAUNCHED();
	struct ce_row *host = (struct ce_row *)malloc((size_t)N * sizeof(struct ce_row));
	FT_CUDA_ASSERT(host);
	FT_CUDA_CHECK(
		cudaMemcpy(host, rows, (size_t)N * sizeof(struct ce_row), cudaMemcpyDeviceToHost));
	for (int n = 0; n < N; n++) {
		st->loss_sum += host[n].loss;
		st->n_tokens += host[n].trained;
		st->n_correct += host[n].correct;
	}
	free(host);
}

extern "C" void ft_cuda_cross_entropy(float *logits, const int32_t *targets, int N, int V,
				      float grad_scale, struct ft_ce_stats *st)
{
	cross_entropy<float>(logits, targets, N, V, grad_scale, st);
}

extern "C" void ft_cuda_cross_entropy_bf16(ft_bf16 *logits, const int32_t *targets, int N, int V,
					   float grad_scale, struct ft_ce_stats *st)
{
	cross_entropy<__nv_bfloat16>((__nv_bfloat16 *)logits, targets, N, V, grad_scale, st);
}
