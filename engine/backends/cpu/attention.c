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
 * Queries go in blocks of QB rows; block [i0, i1) only meets keys [j0, i1),
 * j0 the first key its first row may see (its document's start when the
 * row's document ids are non-decreasing, as packing makes them, and the
 * sliding window's edge), so the causal upper triangle and earlier packed
 * documents are skipped at block granularity: about half the T x T work for
 * one long document, much less for packed short ones. Each block is a few
 * GEMMs (ft_cpu_sgemm with strided operands, on the task's thread) with the
 * element mask applied inside the block. The QB x T scratch is per task.
 */
#include "cpu_int.h"

#include <math.h>

#define QB 64 /* query rows per block */

struct att_ctx {
	float *out, *lse, *dq, *dk, *dv;
	const float *q, *k, *v, *dout, *clse;
	const int32_t *doc;
	int window, B, T, nh, nkv, hd;
};

static inline bool allowed(const struct att_ctx *c, const int32_t *doc, int i, int j)
{
	return j <= i && doc[j] == doc[i] && (c->window <= 0 || i - j < c->window);
}

/* lo[i]: no key before lo[i] is allowed for query i (or any later query):
 * the start of i's run of equal document ids when the ids never decrease
 * along the row, else 0; raised to the window's edge. */
static void key_floor(const struct att_ctx *c, const int32_t *doc, int *lo)
{
	bool sorted = true;
	for (int i = 1; i < c->T && sorted; i++)
		sorted = doc[i] >= doc[i - 1];
	for (int i = 0; i < c->T; i++) {
		lo[i] = !sorted ? 0 : i > 0 && doc[i] == doc[i - 1] ? lo[i - 1] : i;
		if (c->window > 0 && i - c->window + 1 > lo[i])
			lo[i] = i - c->window + 1;
	}
}

/* Probabilities of query rows [i0, i1) over keys [j0, i1) into P (row
 * stride nk = i1 - j0); with lse_out the forward (computes lse), else the
 * backward (recomputes P from the saved lse). */
static void probs(const struct att_ctx *c, const int32_t *doc, const float *q, const float *k,
		  int i0, int i1, int j0, float *P, float *lse_out, const float *lse_in)
{
	int hd = c->hd, qs = c->nh * hd, ks = c->nkv * hd, nk = i1 - j0;
	float scale = 1.0f / sqrtf((float)hd);
	ft_cpu_sgemm(i1 - i0, nk, hd, q + (size_t)i0 * qs, qs, false, k + (size_t)j0 * ks, ks, true,
		     P, nk, false);
	for (int i = i0; i < i1; i++) {
		float *pr = P + (size_t)(i - i0) * nk;
		if (!lse_out) {
			for (int j = j0; j < i1; j++)
				pr[j - j0] = allowed(c, doc, i, j) ? pr[j - j0] * scale - lse_in[i]
								   : -INFINITY;
			ft_cpu_expf_n(pr, pr, (size_t)nk); /* e^-inf = 0 */
			continue;
		}
		float mx = -INFINITY;
		for (int j = j0; j < i1; j++) {
			float s = allowed(c, doc, i, j) ? pr[j - j0] * scale : -INFINITY;
			pr[j - j0] = s;
			mx = s > mx ? s : mx;
		}
		for (int j = j0; j < i1; j++)
			pr[j - j0] -= mx; /* -inf stays -inf, whose e^ is 0 */
		ft_cpu_expf_n(pr, pr, (size_t)nk);
		double sum = 0;
		for (int j = j0; j < i1; j++)
			sum += pr[j - j0];
		float inv = (float)(1.0 / sum);
		for (int j = j0; j < i1; j++)
			pr[j - j0] *= inv;
		lse_out[i] = mx + (float)log(sum);
	}
}

static void att_fwd_task(void *p, int task)
{
	const struct att_ctx *c = p;
	int b = task / c->nh, h = task % c->nh, g = h / (c->nh / c->nkv);
	int T = c->T, hd = c->hd, qs = c->nh * hd, ks = c->nkv * hd;
	const int32_t *doc = c->doc + (size_t)b * T;
	float *P = malloc(sizeof(float) * (size_t)QB * T);
	int *lo = malloc(sizeof(int) * (size_t)T);
	FT_ASSERT(P && lo);
	key_floor(c, doc, lo);
	const float *q = c->q + (size_t)b * T * qs + (size_t)h * hd;
	const float *k = c->k + (size_t)b * T * ks + (size_t)g * hd;
	const float *v = c->v + (size_t)b * T * ks + (size_t)g * hd;
	float *o = c->out + (size_t)b * T * qs + (size_t)h * hd;
	float *lse = c->lse + ((size_t)b * c->nh + h) * T;
	for (int i0 = 0; i0 < T; i0 += QB) {
		int i1 = FT_MIN(T, i0 + QB), j0 = lo[i0], nk = i1 - j0;
		probs(c, doc, q, k, i0, i1, j0, P, lse, NULL);
		ft_cpu_sgemm(i1 - i0, hd, nk, P, nk, false, v + (size_t)j0 * ks, ks, false,
			     o + (size_t)i0 * qs, qs, false);
	}
	free(lo);
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
	float *P = malloc(sizeof(float) * (size_t)QB * T);
	float *dS = malloc(sizeof(float) * (size_t)QB * T);
	int *lo = malloc(sizeof(int) * (size_t)T);
	FT_ASSERT(P && dS && lo);
	key_floor(c, doc, lo);
	const float *k = c->k + (size_t)b * T * ks + (size_t)g * hd;
	const float *v = c->v + (size_t)b * T * ks + (size_t)g * hd;
	float *dk = c->dk + (size_t)b * T * ks + (size_t)g * hd;
	float *dv = c->dv + (size_t)b * T * ks + (size_t)g * hd;
	for (int h = g * group; h < (g + 1) * group; h++) {
		const float *q = c->q + (size_t)b * T * qs + (size_t)h * hd;
		const float *dout = c->dout + (size_t)b * T * qs + (size_t)h * hd;
		const float *lse = c->clse + ((size_t)b * c->nh + h) * T;
		float *dq = c->dq + (size_t)b * T * qs + (size_t)h * hd;
		for (int i0 = 0; i0 < T; i0 += QB) {
			int i1 = FT_MIN(T, i0 + QB), j0 = lo[i0], nk = i1 - j0, nq = i1 - i0;
			probs(c, doc, q, k, i0, i1, j0, P, NULL, lse);
			/* dP = dout V^T, then dS = P (dP - rowsum(P dP)) / sqrt(hd) */
			ft_cpu_sgemm(nq, nk, hd, dout + (size_t)i0 * qs, qs, false,
				     v + (size_t)j0 * ks, ks, true, dS, nk, false);
			for (int r = 0; r < nq; r++) {
				const float *pr = P + (size_t)r * nk;
				float *ds = dS + (size_t)r * nk;
				double pdp = 0;
				for (int j = 0; j < nk; j++)
					pdp += (double)pr[j] * ds[j];
				for (int j = 0; j < nk; j++)
					ds[j] = pr[j] * (ds[j] - (float)pdp) * scale;
			}
			ft_cpu_sgemm(nk, hd, nq, P, nk, true, dout + (size_t)i0 * qs, qs, false,
				     dv + (size_t)j0 * ks, ks, true);
			ft_cpu_sgemm(nq, hd, nk, dS, nk, false, k + (size_t)j0 * ks, ks, false,
				     dq + (size_t)i0 * qs, qs, true);
			ft_cpu_sgemm(nk, hd, nq, dS, nk, true, q + (size_t)i0 * qs, qs, false,
				     dk + (size_t)j0 * ks, ks, true);
		}
	}
	free(lo);
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
