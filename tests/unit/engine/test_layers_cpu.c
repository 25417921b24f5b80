/*
 * test_layers_cpu.c - each CPU layer's backward checked against central
 * finite differences of its own forward, and the blocked GEMM against a
 * naive triple loop (all transpositions, odd sizes).
 *
 * Method: for a random upstream gradient R, the scalar L = sum(out * R)
 * (in double) has dL/dx = backward(R). For up to 24 sampled elements of each
 * input, (L(x + h) - L(x - h)) / 2h with h = 1e-2 is compared with the
 * analytic gradient: |fd - an| <= 2e-3 + 2e-2 |an| (fp32 forward; the
 * tolerance is the rounding of L at this h, not a looseness of the math).
 */
#include "ftest.h"
#include "ft/backend.h"
#include "../../../engine/model/model_int.h"
#include "../../../engine/backends/cpu/cpu_int.h"

#include <math.h>

static uint64_t rng_state = 88172645463325252ull;
static float frand(void) /* uniform in [-1, 1) */
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (float)((rng_state >> 40) / (double)(1ull << 24)) * 2.0f - 1.0f;
}
static float *rnd(size_t n, float s)
{
	float *x = ft_xmalloc(n * sizeof(float));
	for (size_t i = 0; i < n; i++)
		x[i] = frand() * s;
	return x;
}
static float *zeros(size_t n)
{
	return ft_xcalloc(n, sizeof(float));
}
static double dotp(const float *a, const float *b, size_t n)
{
	double s = 0;
	for (size_t i = 0; i < n; i++)
		s += (double)a[i] * b[i];
	return s;
}

typedef double (*loss_fn)(void *ctx);

/* Compare an[] with finite differences of f over x[]; returns false on mismatch. */
static bool fd_check(const char *what, loss_fn f, void *ctx, float *x, const float *an, size_t n)
{
	const float h = 1e-2f;
	size_t step = n > 24 ? n / 24 : 1;
	for (size_t i = 0; i < n; i += step) {
		float old = x[i];
		x[i] = old + h;
		double lp = f(ctx);
		x[i] = old - h;
		double lm = f(ctx);
		x[i] = old;
		double fd = (lp - lm) / (2.0 * h);
		if (fabs(fd - an[i]) > 2e-3 + 2e-2 * fabs(an[i])) {
			fprintf(stderr, "%s[%zu]: finite difference %.6g, analytic %.6g\n", what, i,
				fd, an[i]);
			return false;
		}
	}
	return true;
}

FT_TEST(sgemm_matches_naive)
{
	const struct ft_backend *be = ft_backend_cpu();
	int N = 37, IC = 301, OC = 45;
	float *x = rnd((size_t)N * IC, 1), *w = rnd((size_t)OC * IC, 1), *b = rnd(OC, 1);
	float *out = rnd((size_t)N * OC, 1), *dout = rnd((size_t)N * OC, 1);
	float *dx = rnd((size_t)N * IC, 1), *dw = rnd((size_t)OC * IC, 1), *db = rnd(OC, 1);
	float *dx0 = ft_xmalloc(sizeof(float) * N * IC), *dw0 = ft_xmalloc(sizeof(float) * OC * IC);
	float *db0 = ft_xmalloc(sizeof(float) * OC);
	memcpy(dx0, dx, sizeof(float) * N * IC);
	memcpy(dw0, dw, sizeof(float) * OC * IC);
	memcpy(db0, db, sizeof(float) * OC);
	be->matmul_fwd(out, x, w, b, N, IC, OC, false);
	be->matmul_bwd(dx, dw, db, dout, x, w, N, IC, OC);
	for (int n = 0; n < N; n++)
		for (int o = 0; o < OC; o++) {
			double s = b[o];
			for (int i = 0; i < IC; i++)
				s += (double)x[n * IC + i] * w[o * IC + i];
			FT_CHECK(fabs(s - out[n * OC + o]) < 1e-4 * (1 + fabs(s)));
		}
	for (int n = 0; n < N; n++)
		for (int i = 0; i < IC; i++) {
			double s = dx0[n * IC + i];
			for (int o = 0; o < OC; o++)
				s += (double)dout[n * OC + o] * w[o * IC + i];
			FT_CHECK(fabs(s - dx[n * IC + i]) < 1e-4 * (1 + fabs(s)));
		}
	for (int o = 0; o < OC; o++) {
		double sb = db0[o];
		for (int i = 0; i < IC; i++) {
			double s = dw0[o * IC + i];
			for (int n = 0; n < N; n++)
				s += (double)dout[n * OC + o] * x[n * IC + i];
			FT_CHECK(fabs(s - dw[o * IC + i]) < 1e-4 * (1 + fabs(s)));
		}
		for (int n = 0; n < N; n++)
			sb += dout[n * OC + o];
		FT_CHECK(fabs(sb - db[o]) < 1e-4 * (1 + fabs(sb)));
	}
	free(x), free(w), free(b), free(out), free(dout), free(dx), free(dw), free(db);
	free(dx0), free(dw0), free(db0);
}

/* ---- rmsnorm ---- */
struct rms_t {
	float *x, *w, *out, *rstd, *R;
	int N, C;
};
static double rms_loss(void *p)
{
	struct rms_t *t = p;
	ft_backend_cpu()->rmsnorm_fwd(t->out, t->rstd, t->x, t->w, t->N, t->C, 1e-5f);
	return dotp(t->out, t->R, (size_t)t->N * t->C);
}
FT_TEST(rmsnorm_gradients)
{
	struct rms_t t = { .N = 5, .C = 24 };
	size_t n = (size_t)t.N * t.C;
	t.x = rnd(n, 1), t.w = rnd(t.C, 1), t.out = zeros(n), t.rstd = zeros(t.N), t.R = rnd(n, 1);
	float *dx = zeros(n), *dw = zeros(t.C);
	rms_loss(&t);
	ft_backend_cpu()->rmsnorm_bwd(dx, dw, t.R, t.x, t.w, t.rstd, t.N, t.C);
	bool ok = fd_check("dx", rms_loss, &t, t.x, dx, n) &&
		  fd_check("dw", rms_loss, &t, t.w, dw, t.C);
	/* hand value: x = [3, 4], w = 1 -> rms = sqrt(12.5 + eps) */
	float x2[2] = { 3, 4 }, w2[2] = { 1, 1 }, o2[2], r2;
	ft_backend_cpu()->rmsnorm_fwd(o2, &r2, x2, w2, 1, 2, 0.0f);
	free(t.x), free(t.w), free(t.out), free(t.rstd), free(t.R), free(dx), free(dw);
	FT_CHECK(ok);
	FT_CHECK(fabsf(o2[0] - 3.0f / sqrtf(12.5f)) < 1e-6f);
}

/* ---- rope ---- */
struct rope_t {
	float *x, *y, *cs, *sn, *R;
	int32_t *pos;
	int N, H, hd;
};
static double rope_loss(void *p)
{
	struct rope_t *t = p;
	size_t n = (size_t)t->N * t->H * t->hd;
	memcpy(t->y, t->x, n * sizeof(float));
	ft_backend_cpu()->rope_fwd(t->y, t->cs, t->sn, t->pos, t->N, t->H, t->hd);
	return dotp(t->y, t->R, n);
}
FT_TEST(rope_gradients_and_llama3_frequencies)
{
	struct rope_t t = { .N = 6, .H = 2, .hd = 8 };
	size_t n = (size_t)t.N * t.H * t.hd;
	struct ft_rope_params rp = { FT_ROPE_DEFAULT, 10000.0, 1, 1, 1, 0 };
	t.cs = zeros(16 * 4), t.sn = zeros(16 * 4);
	ft_rope_tables(t.cs, t.sn, 16, t.hd, &rp);
	int32_t pos[6] = { 0, 1, 2, 0, 1, 7 };
	t.pos = pos;
	t.x = rnd(n, 1), t.y = zeros(n), t.R = rnd(n, 1);
	float *dx = zeros(n);
	memcpy(dx, t.R, n * sizeof(float));
	ft_backend_cpu()->rope_bwd(dx, t.cs, t.sn, t.pos, t.N, t.H, t.hd);
	bool ok = fd_check("dx", rope_loss, &t, t.x, dx, n);
	/* position 0 is the identity; position 1, frequency 0: angle 1 rad */
	rope_loss(&t);
	bool id0 = t.y[0] == t.x[0] && t.y[5] == t.x[5];
	float y1 = t.x[16] * cosf(1.0f) - t.x[20] * sinf(1.0f);
	bool rot1 = fabsf(t.y[16] - y1) < 1e-6f;
	/* llama3 (Llama 3.1 defaults, hd 128): transformers gives inv_freq[0] = 1,
	 * inv_freq[63] = 1/500000^(126/128)/8 (low frequency), and the medium
	 * band interpolates. Values from _compute_llama3_parameters. */
	struct ft_rope_params l3 = { FT_ROPE_LLAMA3, 500000.0, 8.0, 1.0, 4.0, 8192 };
	float inv[64];
	ft_rope_inv_freq(inv, 128, &l3);
	float want63 = (float)(1.0 / pow(500000.0, 126.0 / 128.0) / 8.0);
	free(t.cs), free(t.sn), free(t.x), free(t.y), free(t.R), free(dx);
	FT_CHECK(ok);
	FT_CHECK(id0);
	FT_CHECK(rot1);
	FT_CHECK(inv[0] == 1.0f);
	FT_CHECK(fabsf(inv[63] - want63) < 1e-6f * want63 + 1e-12f);
	/* from transformers 5.23, _compute_llama3_parameters with the config
	 * above: element 30 = 0.0013718936825 (medium band, smoothed), element
	 * 40 = 3.428102354519e-05 (low band, divided by the factor) */
	FT_CHECK(fabsf(inv[30] - 0.0013718936825f) < 1e-5f * 0.00137f);
	FT_CHECK(fabsf(inv[40] - 3.428102354519e-05f) < 1e-5f * 3.43e-5f);
}

/* ---- attention ---- */
struct att_t {
	float *q, *k, *v, *out, *lse, *R;
	int32_t *doc;
	int window, B, T, nh, nkv, hd;
};
static double att_loss(void *p)
{
	struct att_t *t = p;
	ft_backend_cpu()->attention_fwd(t->out, t->lse, t->q, t->k, t->v, t->doc, t->window, t->B,
					t->T, t->nh, t->nkv, t->hd);
	return dotp(t->out, t->R, (size_t)t->B * t->T * t->nh * t->hd);
}
FT_TEST(attention_gradients_gqa_with_packing)
{
	struct att_t t = { .B = 2, .T = 7, .nh = 4, .nkv = 2, .hd = 8 };
	size_t nq = (size_t)t.B * t.T * t.nh * t.hd, nk = (size_t)t.B * t.T * t.nkv * t.hd;
	int32_t doc[14] = { 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0 };
	t.doc = doc;
	t.q = rnd(nq, 1), t.k = rnd(nk, 1), t.v = rnd(nk, 1), t.R = rnd(nq, 1);
	t.out = zeros(nq), t.lse = zeros((size_t)t.B * t.nh * t.T);
	float *dq = zeros(nq), *dk = zeros(nk), *dv = zeros(nk);
	att_loss(&t);
	ft_backend_cpu()->attention_bwd(dq, dk, dv, t.R, t.lse, t.q, t.k, t.v, t.doc, t.window, t.B,
					t.T, t.nh, t.nkv, t.hd);
	bool ok = fd_check("dq", att_loss, &t, t.q, dq, nq) &&
		  fd_check("dk", att_loss, &t, t.k, dk, nk) &&
		  fd_check("dv", att_loss, &t, t.v, dv, nk);
	/* packing: the first token of document 1 (row 3) sees only itself, so
	 * its output for head 0 is exactly v[3] of kv head 0 */
	att_loss(&t);
	bool self_only = true;
	for (int d = 0; d < t.hd; d++)
		self_only &= t.out[3 * t.nh * t.hd + d] == t.v[3 * t.nkv * t.hd + d];
	free(t.q), free(t.k), free(t.v), free(t.R), free(t.out), free(t.lse);
	free(dq), free(dk), free(dv);
	FT_CHECK(ok);
	FT_CHECK(self_only);
}

FT_TEST(attention_sliding_window_gradients)
{
	/* window 2: position i sees i-1 and i only */
	struct att_t t = { .window = 2, .B = 1, .T = 6, .nh = 2, .nkv = 1, .hd = 4 };
	size_t nq = (size_t)t.T * t.nh * t.hd, nk = (size_t)t.T * t.nkv * t.hd;
	int32_t doc[6] = { 0 };
	t.doc = doc;
	t.q = rnd(nq, 1), t.k = rnd(nk, 1), t.v = rnd(nk, 1), t.R = rnd(nq, 1);
	t.out = zeros(nq), t.lse = zeros((size_t)t.nh * t.T);
	float *dq = zeros(nq), *dk = zeros(nk), *dv = zeros(nk);
	att_loss(&t);
	ft_backend_cpu()->attention_bwd(dq, dk, dv, t.R, t.lse, t.q, t.k, t.v, t.doc, t.window, t.B,
					t.T, t.nh, t.nkv, t.hd);
	bool ok = fd_check("dq", att_loss, &t, t.q, dq, nq) &&
		  fd_check("dk", att_loss, &t, t.k, dk, nk) &&
		  fd_check("dv", att_loss, &t, t.v, dv, nk);
	/* hand value: at position 5, head 0 mixes only v[4] and v[5] with
	 * weights softmax(q5.k4, q5.k5) / sqrt(4) */
	att_loss(&t);
	float s4 = 0, s5 = 0;
	for (int d = 0; d < 4; d++) {
		s4 += t.q[5 * 8 + d] * t.k[4 * 4 + d] / 2.0f;
		s5 += t.q[5 * 8 + d] * t.k[5 * 4 + d] / 2.0f;
	}
	float p4 = 1.0f / (1.0f + expf(s5 - s4));
	float want = p4 * t.v[4 * 4 + 0] + (1 - p4) * t.v[5 * 4 + 0];
	bool hand = fabsf(t.out[5 * 8 + 0] - want) < 1e-5f;
	free(t.q), free(t.k), free(t.v), free(t.R), free(t.out), free(t.lse);
	free(dq), free(dk), free(dv);
	FT_CHECK(ok);
	FT_CHECK(hand);
}

/* ---- vector exp (vexp.c: AVX-512, AVX2 + FMA, or glibc) ---- */
/* Every result is e^x correctly rounded to float, glibc's exp in double the
 * reference: equal to (float)exp(x), or, only where e^x lies next to a
 * rounding boundary, within half an ulp of it (a tie either way); the range
 * ends and the specials as expf gives them; an element's bits do not depend
 * on where it sits (tail or vector body). */
FT_TEST(expf_n_is_correctly_rounded)
{
	enum { N = 200003 };
	float *x = malloc(N * sizeof(float)), *y = malloc(N * sizeof(float));
	for (int i = 0; i < N; i++) /* -120 .. 110, plus every 97th a tiny value */
		x[i] = i % 97 ? -120.0f + 230.0f * (float)i / (float)N : (float)(i % 7) * 1e-7f;
	ft_cpu_expf_n(y, x, N);
	int bad = 0, ties = 0;
	for (int i = 0; i < N; i++) {
		double e = exp((double)x[i]);
		float want = (float)e;
		if (y[i] == want)
			continue;
		double ulp = (double)nextafterf(want, INFINITY) - (double)want;
		if (isfinite(want) && fabs((double)y[i] - e) <= 0.5 * ulp * (1 + 1e-6))
			ties++;
		else if (bad++ < 5)
			fprintf(stderr, "exp(%a): %a, want %a\n", (double)x[i], (double)y[i],
				(double)want);
	}
	FT_CHECK(bad == 0);
	FT_CHECK(ties < 10);
	float sx[7] = { -INFINITY, INFINITY, NAN, -200.0f, 200.0f, 0.0f, -0.0f }, sy[7];
	ft_cpu_expf_n(sy, sx, 7);
	FT_CHECK(sy[0] == 0.0f && isinf(sy[1]) && sy[1] > 0 && isnan(sy[2]));
	FT_CHECK(sy[3] == 0.0f && isinf(sy[4]) && sy[5] == 1.0f && sy[6] == 1.0f);
	for (int n = 1; n <= 17; n++) { /* each element alone equals it in a run */
		float run[17], one;
		ft_cpu_expf_n(run, x + 1000, (size_t)n);
		for (int i = 0; i < n; i++) {
			ft_cpu_expf_n(&one, x + 1000 + i, 1);
			FT_CHECK(memcmp(&one, &run[i], sizeof one) == 0);
		}
	}
	free(x), free(y);
}

/* ---- swiglu ---- */
struct sw_t {
	float *g, *u, *out, *R;
	size_t n;
};
static double sw_loss(void *p)
{
	struct sw_t *t = p;
	ft_backend_cpu()->swiglu_fwd(t->out, t->g, t->u, t->n);
	return dotp(t->out, t->R, t->n);
}
FT_TEST(swiglu_gradients)
{
	struct sw_t t = { .n = 50 };
	t.g = rnd(t.n, 3), t.u = rnd(t.n, 1), t.out = zeros(t.n), t.R = rnd(t.n, 1);
	float *dg = zeros(t.n), *du = zeros(t.n);
	ft_backend_cpu()->swiglu_bwd(dg, du, t.R, t.g, t.u, t.n);
	bool ok = fd_check("dgate", sw_loss, &t, t.g, dg, t.n) &&
		  fd_check("dup", sw_loss, &t, t.u, du, t.n);
	float g1 = 1.0f, u1 = 2.0f, o1;
	ft_backend_cpu()->swiglu_fwd(&o1, &g1, &u1, 1);
	free(t.g), free(t.u), free(t.out), free(t.R), free(dg), free(du);
	FT_CHECK(ok);
	FT_CHECK(fabsf(o1 - 2.0f / (1.0f + expf(-1.0f))) < 1e-6f); /* silu(1) * 2 */
}

/* ---- embedding ---- */
struct emb_t {
	float *wte, *out, *R;
	int32_t *ids;
	int N, C;
};
static double emb_loss(void *p)
{
	struct emb_t *t = p;
	ft_backend_cpu()->embedding_fwd(t->out, t->ids, t->wte, t->N, t->C);
	return dotp(t->out, t->R, (size_t)t->N * t->C);
}
FT_TEST(embedding_gradients)
{
	int32_t ids[5] = { 3, 1, 3, 0, 2 };
	struct emb_t t = { .ids = ids, .N = 5, .C = 6 };
	t.wte = rnd(4 * 6, 1), t.out = zeros(30), t.R = rnd(30, 1);
	float *dw = zeros(24);
	ft_backend_cpu()->embedding_bwd(dw, t.R, ids, 5, 6);
	bool ok = fd_check("dwte", emb_loss, &t, t.wte, dw, 24);
	free(t.wte), free(t.out), free(t.R), free(dw);
	FT_CHECK(ok);
}

/* ---- cross-entropy ---- */
struct ce_t {
	float *logits, *work;
	int32_t *tg;
	int N, V;
};
static double ce_loss(void *p)
{
	struct ce_t *t = p;
	struct ft_ce_stats st = { 0 };
	memcpy(t->work, t->logits, sizeof(float) * t->N * t->V);
	ft_backend_cpu()->cross_entropy(t->work, t->tg, t->N, t->V, 0.0f, &st);
	return st.loss_sum / (double)st.n_tokens;
}
FT_TEST(cross_entropy_gradients_and_ignore_index)
{
	int32_t tg[4] = { 2, -100, 0, 4 };
	struct ce_t t = { .tg = tg, .N = 4, .V = 5 };
	t.logits = rnd(20, 2), t.work = zeros(20);
	float *g = zeros(20);
	memcpy(g, t.logits, sizeof(float) * 20);
	struct ft_ce_stats st = { 0 };
	ft_backend_cpu()->cross_entropy(g, tg, 4, 5, 1.0f / 3.0f, &st);
	bool ok = fd_check("dlogits", ce_loss, &t, t.logits, g, 20);
	bool ignored_zero = true;
	for (int v = 0; v < 5; v++)
		ignored_zero &= g[5 + v] == 0.0f;
	/* hand value: uniform logits over V=4 -> loss ln 4 */
	float u[4] = { 0, 0, 0, 0 };
	int32_t t1 = 1;
	struct ft_ce_stats su = { 0 };
	ft_backend_cpu()->cross_entropy(u, &t1, 1, 4, 0.0f, &su);
	free(t.logits), free(t.work), free(g);
	FT_CHECK(ok);
	FT_CHECK(ignored_zero);
	FT_CHECK_INT(st.n_tokens, 3);
	FT_CHECK(fabs(su.loss_sum - log(4.0)) < 1e-9);
	FT_CHECK_INT(su.n_correct, 0); /* argmax of a tie is the first: 0 != 1 */
}

/* ---- adamw: two steps against values from torch.optim.AdamW ---- */
FT_TEST(adamw_matches_torch)
{
	/* torch: p = [1.0, -2.0], AdamW(lr=0.1, betas=(0.9, 0.999), eps=1e-8,
	 * weight_decay=0.01); grads [0.5, -1.0] then [0.25, 2.0]:
	 * after step 1: [0.899000, -1.898000]; after step 2:
	 * [0.804883, -1.932712] (printed by torch 2.15, float32) */
	float p[2] = { 1.0f, -2.0f }, m[2] = { 0 }, v[2] = { 0 };
	float g1[2] = { 0.5f, -1.0f }, g2[2] = { 0.25f, 2.0f };
	struct ft_adamw_args a = { 0.1, 0.9, 0.999, 1e-8, 0.01, 1 };
	ft_backend_cpu()->adamw(p, g1, m, v, 2, &a);
	FT_CHECK(fabsf(p[0] - 0.899f) < 1e-6f && fabsf(p[1] + 1.898f) < 1e-6f);
	a.step = 2;
	ft_backend_cpu()->adamw(p, g2, m, v, 2, &a);
	FT_CHECK(fabsf(p[0] - 0.804883f) < 2e-6f);
	FT_CHECK(fabsf(p[1] + 1.932712f) < 2e-6f);
}

FT_TEST_MAIN()
