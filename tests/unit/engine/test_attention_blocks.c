/*
 * test_attention_blocks.c - the CPU attention works in query blocks of 64
 * rows and skips keys a block can never see; check it against the plain
 * definition (every (i, j) pair, double precision, written out below) on
 * rows longer than one block: one long document, packed documents with
 * non-decreasing ids, ids that are NOT sorted (the block must then look at
 * every earlier key), and a sliding window. Forward out and lse, and every
 * backward gradient, within 2e-5 absolute + 1e-4 relative (fp32 sums of
 * up to 150 terms against double).
 */
#include "ftest.h"
#include "ft/backend.h"

#include <math.h>

enum { B = 2, T = 150, NH = 4, NKV = 2, HD = 8, QS = NH * HD, KS = NKV * HD };

static uint64_t rs = 0x2545f4914f6cdd1dull;
static float frand(void)
{
	rs ^= rs << 13;
	rs ^= rs >> 7;
	rs ^= rs << 17;
	return (float)((rs >> 40) / (double)(1ull << 24)) * 2.0f - 1.0f;
}

static bool ok_pair(const int32_t *doc, int window, int i, int j)
{
	return j <= i && doc[j] == doc[i] && (window <= 0 || i - j < window);
}

/* The definition: p = softmax over allowed j of q.k / sqrt(hd); out = p v;
 * backward as in attention.c's top comment, all in double. */
static void reference(const float *q, const float *k, const float *v, const float *dout,
		      const int32_t *doc, int window, double *out, double *lse, double *dq,
		      double *dk, double *dv)
{
	double scale = 1.0 / sqrt((double)HD);
	static double p[T][T], dp[T];
	for (int b = 0; b < B; b++)
		for (int h = 0; h < NH; h++) {
			int g = h / (NH / NKV);
			const int32_t *d = doc + b * T;
#define Q(i, x) q[((size_t)b * T + (i)) * QS + h * HD + (x)]
#define K(j, x) k[((size_t)b * T + (j)) * KS + g * HD + (x)]
#define V(j, x) v[((size_t)b * T + (j)) * KS + g * HD + (x)]
#define DO(i, x) dout[((size_t)b * T + (i)) * QS + h * HD + (x)]
			for (int i = 0; i < T; i++) {
				double mx = -INFINITY, sum = 0;
				for (int j = 0; j <= i; j++)
					if (ok_pair(d, window, i, j)) {
						double s = 0;
						for (int x = 0; x < HD; x++)
							s += (double)Q(i, x) * K(j, x);
						p[i][j] = s * scale;
						mx = fmax(mx, p[i][j]);
					}
				for (int j = 0; j < T; j++) {
					p[i][j] = j <= i && ok_pair(d, window, i, j)
							  ? exp(p[i][j] - mx)
							  : 0.0;
					sum += p[i][j];
				}
				for (int j = 0; j < T; j++)
					p[i][j] /= sum;
				lse[((size_t)b * NH + h) * T + i] = mx + log(sum);
				for (int x = 0; x < HD; x++) {
					double o = 0;
					for (int j = 0; j < T; j++)
						o += p[i][j] * V(j, x);
					out[((size_t)b * T + i) * QS + h * HD + x] = o;
				}
			}
			for (int i = 0; i < T; i++) {
				double pdp = 0;
				for (int j = 0; j < T; j++) {
					dp[j] = 0;
					for (int x = 0; x < HD; x++)
						dp[j] += (double)DO(i, x) * V(j, x);
					pdp += p[i][j] * dp[j];
				}
				for (int j = 0; j < T; j++) {
					double ds = p[i][j] * (dp[j] - pdp) * scale;
					for (int x = 0; x < HD; x++) {
						dv[((size_t)b * T + j) * KS + g * HD + x] +=
							p[i][j] * DO(i, x);
						dq[((size_t)b * T + i) * QS + h * HD + x] +=
							ds * K(j, x);
						dk[((size_t)b * T + j) * KS + g * HD + x] +=
							ds * Q(i, x);
					}
				}
			}
#undef Q
#undef K
#undef V
#undef DO
		}
}

static bool close_all(const char *what, const float *a, const double *ref, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (fabs(a[i] - ref[i]) > 2e-5 + 1e-4 * fabs(ref[i])) {
			fprintf(stderr, "%s[%zu]: ours %.8g, reference %.8g\n", what, i, a[i],
				ref[i]);
			return false;
		}
	return true;
}

static bool check(const int32_t *doc, int window)
{
	size_t nq = (size_t)B * T * QS, nk = (size_t)B * T * KS, nl = (size_t)B * NH * T;
	float *q = malloc(nq * 4), *k = malloc(nk * 4), *v = malloc(nk * 4), *dout = malloc(nq * 4);
	float *out = malloc(nq * 4), *lse = malloc(nl * 4), *dq = calloc(nq, 4),
	      *dk = calloc(nk, 4), *dv = calloc(nk, 4);
	double *rout = calloc(nq, 8), *rlse = calloc(nl, 8), *rdq = calloc(nq, 8),
	       *rdk = calloc(nk, 8), *rdv = calloc(nk, 8);
	FT_ASSERT(q && k && v && dout && out && lse && dq && dk && dv && rout && rlse && rdq &&
		  rdk && rdv);
	for (size_t i = 0; i < nq; i++)
		q[i] = 1.5f * frand(), dout[i] = frand();
	for (size_t i = 0; i < nk; i++)
		k[i] = 1.5f * frand(), v[i] = frand();
	const struct ft_backend *be = ft_backend_cpu();
	be->attention_fwd(out, lse, q, k, v, doc, window, B, T, NH, NKV, HD);
	be->attention_bwd(dq, dk, dv, dout, lse, q, k, v, doc, window, B, T, NH, NKV, HD);
	reference(q, k, v, dout, doc, window, rout, rlse, rdq, rdk, rdv);
	bool ok = close_all("out", out, rout, nq) && close_all("lse", lse, rlse, nl) &&
		  close_all("dq", dq, rdq, nq) && close_all("dk", dk, rdk, nk) &&
		  close_all("dv", dv, rdv, nk);
	free(q), free(k), free(v), free(dout), free(out), free(lse), free(dq), free(dk), free(dv);
	free(rout), free(rlse), free(rdq), free(rdk), free(rdv);
	return ok;
}

FT_TEST(one_long_document)
{
	static int32_t doc[B * T];
	FT_CHECK(check(doc, 0));
}

FT_TEST(packed_documents)
{
	/* row 0: documents of 40, 70 and 40 tokens; row 1: 3, 100 and 47 */
	static int32_t doc[B * T];
	for (int i = 0; i < T; i++) {
		doc[i] = i < 40 ? 0 : i < 110 ? 1 : 2;
		doc[T + i] = i < 3 ? 0 : i < 103 ? 1 : 2;
	}
	FT_CHECK(check(doc, 0));
}

FT_TEST(unsorted_document_ids)
{
	/* id 5 comes back after id 9: the later block must still see the
	 * first run of 5s */
	static int32_t doc[B * T];
	for (int i = 0; i < T; i++)
		doc[i] = doc[T + i] = i < 30 ? 5 : i < 90 ? 9 : 5;
	FT_CHECK(check(doc, 0));
}

FT_TEST(sliding_window_across_blocks)
{
	static int32_t doc[B * T];
	for (int i = 0; i < T; i++)
		doc[T + i] = i < 20 ? 0 : 1;
	FT_CHECK(check(doc, 37));
}

FT_TEST_MAIN()
