/*
 * attention.c - causal grouped-query attention with document masking.
 *
 * For batch b, query head h (kv head g = h / (nh / nkv)), query position i:
 *   s[i,j] = q[i] . k[j] / sqrt(hd)           for allowed j, else -inf
 *   allowed(i,j) = j <= i and doc[b,j] == doc[b,i]   (packing boundaries)
 *   p[i,:] = softmax(s[i,:]);   out[i] = sum_j p[i,j] v[j]
 * Backward:
 *   dv[j] += sum_i p[i,j] dout[i]
 *   dp[i,j] = dout[i] . v[j]
 *   ds[i,j] = p[i,j] (dp[i,j] - sum_j' p[i,j'] dp[i,j'])
 *   dq[i]  += sum_j ds[i,j] k[j] / sqrt(hd)
 *   dk[j]  += sum_i ds[i,j] q[i] / sqrt(hd)
 * The forward runs one task per (b, h); the backward one per (b, g) so that
 * each task owns the dk/dv rows it writes (no races, fixed summation order).
 * probs[b,h,i,j] is stored for backward; masked entries are 0.
 */
#include "cpu_int.h"

#include <math.h>

struct att_ctx {
	float *out, *probs, *dq, *dk, *dv;
	const float *q, *k, *v, *dout, *cprobs;
	const int32_t *doc;
	int B, T, nh, nkv, hd;
};

static void att_fwd_task(void *p, int task)
{
	const struct att_ctx *c = p;
	int b = task / c->nh, h = task % c->nh, g = h / (c->nh / c->nkv);
	int T = c->T, hd = c->hd;
	size_t qs = (size_t)c->nh * hd, ks = (size_t)c->nkv * hd;
	float scale = 1.0f / sqrtf((float)hd);
	const int32_t *doc = c->doc + (size_t)b * T;
	for (int i = 0; i < T; i++) {
		const float *qi = c->q + ((size_t)b * T + i) * qs + (size_t)h * hd;
		float *pr = c->probs + (((size_t)b * c->nh + h) * T + i) * T;
		float mx = -INFINITY;
		for (int j = 0; j <= i; j++) {
			if (doc[j] != doc[i]) {
				pr[j] = -INFINITY;
				continue;
			}
			const float *kj = c->k + ((size_t)b * T + j) * ks + (size_t)g * hd;
			float s = 0;
			for (int d = 0; d < hd; d++)
				s += qi[d] * kj[d];
			s *= scale;
			pr[j] = s;
			mx = s > mx ? s : mx;
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
		float *o = c->out + ((size_t)b * T + i) * qs + (size_t)h * hd;
		for (int d = 0; d < hd; d++)
			o[d] = 0.0f;
		for (int j = 0; j <= i; j++) {
			if (pr[j] == 0.0f)
				continue;
			const float *vj = c->v + ((size_t)b * T + j) * ks + (size_t)g * hd;
			for (int d = 0; d < hd; d++)
				o[d] += pr[j] * vj[d];
		}
	}
}

void ft_cpu_attention_fwd(float *out, float *probs, const float *q, const float *k, const float *v,
			  const int32_t *doc, int B, int T, int nh, int nkv, int hd)
{
	struct att_ctx c = { .out = out,
			     .probs = probs,
			     .q = q,
			     .k = k,
			     .v = v,
			     .doc = doc,
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
	int T = c->T, hd = c->hd;
	size_t qs = (size_t)c->nh * hd, ks = (size_t)c->nkv * hd;
	float scale = 1.0f / sqrtf((float)hd);
	float *dp = malloc(sizeof(float) * (size_t)T);
	FT_ASSERT(dp);
	for (int h = g * group; h < (g + 1) * group; h++) {
		for (int i = 0; i < T; i++) {
			const float *pr = c->cprobs + (((size_t)b * c->nh + h) * T + i) * T;
			const float *doi = c->dout + ((size_t)b * T + i) * qs + (size_t)h * hd;
			const float *qi = c->q + ((size_t)b * T + i) * qs + (size_t)h * hd;
			float *dqi = c->dq + ((size_t)b * T + i) * qs + (size_t)h * hd;
			double pdp = 0;
			for (int j = 0; j <= i; j++) {
				if (pr[j] == 0.0f) {
					dp[j] = 0.0f;
					continue;
				}
				const float *vj = c->v + ((size_t)b * T + j) * ks + (size_t)g * hd;
				float *dvj = c->dv + ((size_t)b * T + j) * ks + (size_t)g * hd;
				float s = 0;
				for (int d = 0; d < hd; d++) {
					s += doi[d] * vj[d];
					dvj[d] += pr[j] * doi[d];
				}
				dp[j] = s;
				pdp += (double)pr[j] * s;
			}
			for (int j = 0; j <= i; j++) {
				if (pr[j] == 0.0f)
					continue;
				float ds = pr[j] * (dp[j] - (float)pdp) * scale;
				const float *kj = c->k + ((size_t)b * T + j) * ks + (size_t)g * hd;
				float *dkj = c->dk + ((size_t)b * T + j) * ks + (size_t)g * hd;
				for (int d = 0; d < hd; d++) {
					dqi[d] += ds * kj[d];
					dkj[d] += ds * qi[d];
				}
			}
		}
	}
	free(dp);
}

void ft_cpu_attention_bwd(float *dq, float *dk, float *dv, const float *dout, const float *probs,
			  const float *q, const float *k, const float *v, int B, int T, int nh,
			  int nkv, int hd)
{
	struct att_ctx c = { .dq = dq,
			     .dk = dk,
			     .dv = dv,
			     .dout = dout,
			     .cprobs = probs,
			     .q = q,
			     .k = k,
			     .v = v,
			     .B = B,
			     .T = T,
			     .nh = nh,
			     .nkv = nkv,
			     .hd = hd };
	ft_pool_run(att_bwd_task, &c, B * nkv);
}
