/*
 * attention.c - causal grouped-query attention with document masking.
 *
 * For batch b, query head h (kv head g = h / (nh / nkv)), query position i:
 *   s[i,j] = q[i] . k[j] / sqrt(hd)           for allowed j, else -inf
 *   allowed(i,j) = j <= i and doc[b,j] == doc[b,i]   (packing boundaries)
 *                  and, with a sliding window W > 0, i - j < W (Mistral)
 *   lse[i] = log sum_j exp(s[i,j]);  p[i,j] = exp(s[i,j] - lse[i])
 *   out[i] = sum_j p[i,j] v[j]
 * Backward (p recomputed from q, k and lse, so only lse [B,nh,T] is saved):
 *   dv[j] += sum_i p[i,j] dout[i]
 *   dp[i,j] = dout[i] . v[j]
 *   ds[i,j] = p[i,j] (dp[i,j] - sum_j' p[i,j'] dp[i,j'])
 *   dq[i]  += sum_j ds[i,j] k[j] / sqrt(hd)
 *   dk[j]  += sum_i ds[i,j] q[i] / sqrt(hd)
 * The forward runs one task per (b, h); the backward one per (b, g) so that
 * each task owns the dk/dv rows it writes (no races, fixed summation order).
 * Both are written as GEMMs over the whole T x T block (ft_cpu_sgemm with
 * strided operands, run on the task's thread): computing the masked half too
 * is cheaper than a scalar loop over the causal half. The T x T scratch is
 * per task, never per layer.
 */
#include "cpu_int.h"

#include <math.h>

struct att_ctx {
	float *out, *lse, *dq, *dk, *dv;
	const float *q, *k, *v, *dout, *clse;
	const int32_t *doc;
	int window, B, T, nh, nkv, hd;
};

static inline bool allowed(const struct att_ctx *c, const int32_t *doc, int i, int j)
{
	return doc[j] == doc[i] && (c->window <= 0 || i - j < c->window);
}

/* S = Q K^T of one (b, h) into s [T, T]. */
static void scores(const struct att_ctx *c, int b, int h, float *s)
{
	int g = h / (c->nh / c->nkv), T = c->T, hd = c->hd, qs = c->nh * hd, ks = c->nkv * hd;
	const float *q = c->q + (size_t)b * T * qs + (size_t)h * hd;
	const float *k = c->k + (size_t)b * T * ks + (size_t)g * hd;
	ft_cpu_sgemm(T, T, hd, q, qs, false, k, ks, true, s, T, false);
}

static void att_fwd_task(void *p, int task)
{
	const struct att_ctx *c = p;
	int b = task / c->nh, h = task % c->nh, g = h / (c->nh / c->nkv);
	int T = c->T, hd = c->hd, qs = c->nh * hd, ks = c->nkv * hd;
	float scale = 1.0f / sqrtf((float)hd);
	const int32_t *doc = c->doc + (size_t)b * T;
	float *P = malloc(sizeof(float) * (size_t)T * T);
	FT_ASSERT(P);
	float *lse = c->lse + ((size_t)b * c->nh + h) * T;
	scores(c, b, h, P);
	for (int i = 0; i < T; i++) {
		float *pr = P + (size_t)i * T;
		float mx = -INFINITY;
		for (int j = 0; j <= i; j++) {
			pr[j] = allowed(c, doc, i, j) ? pr[j] * scale : -INFINITY;
			mx = pr[j] > mx ? pr[j] : mx;
		}
		double sum = 0;
		for (int j = 0; j <= i; j++) {
			float e = pr[j] == -INFINITY ? 0.0f : expf(pr[j] - mx);
			pr[j] = e;
			sum += e;
		}
		float inv = (float)(1.0 / sum);
		for (int j = 0; j <= i; j++)
			pr[j] *= inv;
		for (int j = i + 1; j < T; j++)
			pr[j] = 0.0f;
		lse[i] = mx + (float)log(sum);
	}
	const float *v = c->v + (size_t)b * T * ks + (size_t)g * hd;
	float *o = c->out + (size_t)b * T * qs + (size_t)h * hd;
	ft_cpu_sgemm(T, hd, T, P, T, false, v, ks, false, o, qs, false);
	free(P);
}

void ft_cpu_attention_fwd(float *out, float *lse, const float *q, const float *k, const float *v,
			  const int32_t *doc, int window, int B, int T, int nh, int nkv, int hd)
{
	struct att_ctx c = { .out = out,
			     .lse = lse,
			     .q = q,
			     .k = k,
			     .v = v,
			     .doc = doc,
			     .window = window,
			     .B = B,
			     .T = T,
			     .nh = nh,
			     .nkv = nkv,
			     .hd = hd };
	ft_pool_run(att_fwd_task, &c, B * nh);
}

static void att_bwd_task(void *p, int task)
{
	const struct att_ctx *c = p;
	int b = task / c->nkv, g = task % c->nkv, group = c->nh / c->nkv;
	int T = c->T, hd = c->hd, qs = c->nh * hd, ks = c->nkv * hd;
	float scale = 1.0f / sqrtf((float)hd);
	const int32_t *doc = c->doc + (size_t)b * T;
	float *P = malloc(sizeof(float) * (size_t)T * T);
	float *dS = malloc(sizeof(float) * (size_t)T * T);
	FT_ASSERT(P && dS);
	const float *k = c->k + (size_t)b * T * ks + (size_t)g * hd;
	const float *v = c->v + (size_t)b * T * ks + (size_t)g * hd;
	float *dk = c->dk + (size_t)b * T * ks + (size_t)g * hd;
	float *dv = c->dv + (size_t)b * T * ks + (size_t)g * hd;
	for (int h = g * group; h < (g + 1) * group; h++) {
		const float *q = c->q + (size_t)b * T * qs + (size_t)h * hd;
		const float *dout = c->dout + (size_t)b * T * qs + (size_t)h * hd;
		const float *lse = c->clse + ((size_t)b * c->nh + h) * T;
		float *dq = c->dq + (size_t)b * T * qs + (size_t)h * hd;
		scores(c, b, h, P);
		for (int i = 0; i < T; i++) {
			float *pr = P + (size_t)i * T;
			for (int j = 0; j <= i; j++)
				pr[j] = allowed(c, doc, i, j) ? expf(pr[j] * scale - lse[i]) : 0.0f;
			for (int j = i + 1; j < T; j++)
				pr[j] = 0.0f;
		}
		ft_cpu_sgemm(T, T, hd, dout, qs, false, v, ks, true, dS, T, false);
		for (int i = 0; i < T; i++) {
			const float *pr = P + (size_t)i * T;
			float *ds = dS + (size_t)i * T;
			double pdp = 0;
			for (int j = 0; j <= i; j++)
				pdp += (double)pr[j] * ds[j];
			for (int j = 0; j <= i; j++)
				ds[j] = pr[j] * (ds[j] - (float)pdp) * scale;
			for (int j = i + 1; j < T; j++)
				ds[j] = 0.0f;
		}
		ft_cpu_sgemm(T, hd, T, P, T, true, dout, qs, false, dv, ks, true);
		ft_cpu_sgemm(T, hd, T, dS, T, false, k, ks, false, dq, qs, true);
		ft_cpu_sgemm(T, hd, T, dS, T, true, q, qs, false, dk, ks, true);
	}
	free(P);
	free(dS);
}

void ft_cpu_attention_bwd(float *dq, float *dk, float *dv, const float *dout, const float *lse,
			  const float *q, const float *k, const float *v, const int32_t *doc,
			  int window, int B, int T, int nh, int nkv, int hd)
{
	struct att_ctx c = { .dq = dq,
			     .dk = dk,
			     .dv = dv,
			     .dout = dout,
			     .clse = lse,
			     .q = q,
			     .k = k,
			     .v = v,
			     .doc = doc,
			     .window = window,
			     .B = B,
			     .T = T,
			     .nh = nh,
			     .nkv = nkv,
			     .hd = hd };
	ft_pool_run(att_bwd_task, &c, B * nkv);
}
