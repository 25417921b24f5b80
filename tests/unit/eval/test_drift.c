/*
 * test_drift.c - drift statistics on inputs small enough to work by hand:
 * KS paths, PSI with and without the epsilon, bins, JS, Wasserstein,
 * chi-square, cosine, Mann-Whitney, the domain classifier on separated
 * clusters, and the thresholds table.
 */
#include "ft/stats.h"
#include "ftest.h"

#include <math.h>

#define NEAR(a, b, tol) (fabs((a) - (b)) <= (tol))

FT_TEST(ks_exact_by_counting_paths)
{
	struct ft_drift_ks ks;
	/* D = 1 happens on 2 of the C(6, 3) = 20 orders */
	double x[] = { 1, 2, 3 }, y[] = { 4, 5, 6 };
	FT_CHECK(ft_drift_ks_2samp(x, 3, y, 3, &ks, NULL) == FT_OK);
	FT_CHECK(ks.statistic == 1 && NEAR(ks.pvalue, 0.1, 1e-15) && ks.exact);
	/* unequal sizes (the band recursion): 2 of C(5, 2) = 10 */
	FT_CHECK(ft_drift_ks_2samp(x, 2, y, 3, &ks, NULL) == FT_OK);
	FT_CHECK(ks.statistic == 1 && NEAR(ks.pvalue, 0.2, 1e-15) && ks.exact);
	/* identical: D = 0, p = 1 */
	FT_CHECK(ft_drift_ks_2samp(x, 3, x, 3, &ks, NULL) == FT_OK);
	FT_CHECK(ks.statistic == 0 && ks.pvalue == 1);
	/* ties: CDFs compared after every copy of a value; D = |2/4 - 0/2| at 1 */
	double t1[] = { 1, 1, 2, 2 }, t2[] = { 2, 2 };
	FT_CHECK(ft_drift_ks_2samp(t1, 4, t2, 2, &ks, NULL) == FT_OK);
	FT_CHECK(ks.statistic == 0.5);
	struct ft_err err = { 0 };
	FT_CHECK(ft_drift_ks_2samp(x, 0, y, 3, &ks, &err) == FT_EINVAL);
	FT_CHECK_STR(err.msg, "ks_2samp: the first sample is empty");
	double bad[] = { 1, NAN };
	ft_err_clear(&err);
	FT_CHECK(ft_drift_ks_2samp(x, 3, bad, 2, &ks, &err) == FT_EINVAL);
	FT_CHECK_STR(err.msg, "ks_2samp: the second sample[1] is not a finite number");
}

FT_TEST(psi_by_hand)
{
	/* shares 1/2, 1/2 against 1/4, 3/4: 1/4 ln 2 - 1/4 ln(2/3) = ln(3) / 4 */
	double r[] = { 50, 50 }, c[] = { 25, 75 };
	FT_CHECK(NEAR(ft_drift_psi(r, c, 2), log(3.0) / 4, 1e-15));
	FT_CHECK(ft_drift_psi_band(log(3.0) / 4) == FT_DRIFT_SIGNIFICANT);
	FT_CHECK(ft_drift_psi_band(0.1) == FT_DRIFT_MODERATE);
	FT_CHECK(ft_drift_psi_band(0.0999) == FT_DRIFT_STABLE);
	FT_CHECK_STR(ft_drift_band_name(FT_DRIFT_MODERATE), "moderate");
	/* an empty bin takes Evidently's 1e-4 (the smallest share, 1, is > 1e-4) */
	double r2[] = { 100, 0 }, c2[] = { 50, 50 };
	double want = 0.5 * log(2.0) + (1e-4 - 0.5) * log(1e-4 / 0.5);
	FT_CHECK(NEAR(ft_drift_psi(r2, c2, 2), want, 1e-14));
	/* ... or the smallest share / 1e6 when that share is <= 1e-4 */
	double r3[] = { 19999, 1, 0 }, c3[] = { 1, 1, 1 };
	double e = 1.0 / 20000 / 1e6, rs[] = { 19999.0 / 20000, 1.0 / 20000, e }, psi = 0;
	for (int i = 0; i < 3; i++)
		psi += (rs[i] - 1.0 / 3) * log(rs[i] / (1.0 / 3));
	FT_CHECK(NEAR(ft_drift_psi(r3, c3, 3), psi, 1e-12));
	double z[] = { 0, 0 };
	FT_CHECK(isnan(ft_drift_psi(z, c, 2)));
}

FT_TEST(bins_at_reference_quantiles)
{
	double ref[] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 };
	struct ft_drift_bins b;
	FT_CHECK(ft_drift_bins_fit(&b, ref, 10, 4, NULL) == FT_OK);
	FT_CHECK(b.n_bins == 4);
	FT_CHECK(b.edges[0] == 3.25 && b.edges[1] == 5.5 && b.edges[2] == 7.75);
	FT_CHECK(b.ref_counts[0] == 3 && b.ref_counts[1] == 2 && b.ref_counts[2] == 2 &&
		 b.ref_counts[3] == 3);
	double cur[] = { -100, 5.5, 7.75, 1000 }, cnt[4];
	ft_drift_bins_count(&b, cur, 4, cnt);
	/* an edge value goes to the bin above it; the outer bins are open */
	FT_CHECK(cnt[0] == 1 && cnt[1] == 0 && cnt[2] == 1 && cnt[3] == 2);
	double same[] = { 7, 7, 7, 7 };
	FT_CHECK(ft_drift_bins_fit(&b, same, 4, 10, NULL) == FT_OK);
	FT_CHECK(b.n_bins == 2 && b.edges[0] == 7 && b.ref_counts[0] == 0 && b.ref_counts[1] == 4);
}

FT_TEST(js_wasserstein_cosine_by_hand)
{
	double p[] = { 1, 0 }, q[] = { 0, 1 };
	FT_CHECK(NEAR(ft_drift_js_distance(p, q, 2), sqrt(log(2.0)), 1e-15));
	FT_CHECK(ft_drift_js_distance(p, p, 2) == 0);
	double w;
	double x[] = { 0, 1, 3 }, y[] = { 5, 6, 8 };
	FT_CHECK(ft_drift_wasserstein(x, 3, y, 3, &w, NULL) == FT_OK && NEAR(w, 5, 1e-15));
	double a[] = { 0 }, b[] = { 1, 2 };
	FT_CHECK(ft_drift_wasserstein(a, 1, b, 2, &w, NULL) == FT_OK && NEAR(w, 1.5, 1e-15));
	FT_CHECK(ft_drift_wasserstein(x, 3, x, 3, &w, NULL) == FT_OK && w == 0);
	double r1[] = { 1, 0, 1, 0 }, c1[] = { 0, 1 }, cos;
	FT_CHECK(ft_drift_cosine_centroids(r1, 2, c1, 1, 2, &cos, NULL) == FT_OK && cos == 1);
	double r2[] = { 1, 1 }, c2[] = { 2, 2 };
	FT_CHECK(ft_drift_cosine_centroids(r2, 1, c2, 1, 2, &cos, NULL) == FT_OK &&
		 NEAR(cos, 0, 1e-15));
}

FT_TEST(chi2_by_hand)
{
	/* 30/10 against 10/30: every expected count is 20, statistic 4 * 100 / 20 */
	double r[] = { 30, 10, 0 }, c[] = { 10, 30, 0 };
	struct ft_drift_chi2 t;
	FT_CHECK(ft_drift_chi2_test(r, c, 3, &t, NULL) == FT_OK);
	FT_CHECK(NEAR(t.statistic, 20, 1e-12) && t.dof == 1);
	FT_CHECK(NEAR(t.pvalue, erfc(sqrt(10.0)), 1e-18));
	double one_r[] = { 5, 0 }, one_c[] = { 7, 0 };
	FT_CHECK(ft_drift_chi2_test(one_r, one_c, 2, &t, NULL) == FT_OK);
	FT_CHECK(t.dof == 0 && t.pvalue == 1);
	struct ft_err err = { 0 };
	double neg[] = { 1, -1 };
	FT_CHECK(ft_drift_chi2_test(neg, c, 2, &t, &err) == FT_EINVAL);
	FT_CHECK_STR(err.msg, "chi2: reference[1] must be a finite count >= 0 (got -1)");
}

FT_TEST(mann_whitney_by_hand)
{
	struct ft_drift_mw mw;
	double neg[] = { 1, 2, 3 }, pos[] = { 4, 5, 6 };
	FT_CHECK(ft_drift_mann_whitney(neg, 3, pos, 3, &mw, NULL) == FT_OK);
	/* U = 9, mu = 4.5, s^2 = 9/12 * 7: z = 4 / sqrt(5.25) */
	FT_CHECK(mw.auc == 1.0);
	FT_CHECK(NEAR(mw.pvalue, erfc(4.0 / sqrt(5.25) / sqrt(2.0)), 1e-15));
	FT_CHECK(ft_drift_mann_whitney(neg, 2, neg, 2, &mw, NULL) == FT_OK);
	FT_CHECK(mw.auc == 0.5 && mw.pvalue == 1.0);
	FT_CHECK(ft_drift_mann_whitney(pos, 3, neg, 3, &mw, NULL) == FT_OK && mw.auc == 0);
}

FT_TEST(domain_classifier_separates_clusters)
{
	enum { N = 60, D = 3 };
	static double ref[N * D], cur[N * D], cur_same[N * D];
	struct ft_rng r;
	ft_rng_seed(&r, 1);
	for (int i = 0; i < N * D; i++) {
		ref[i] = ft_rng_normal(&r) + (i % D == 0 ? -4 : 0);
		cur[i] = ft_rng_normal(&r) + (i % D == 0 ? 4 : 0);
		cur_same[i] = ft_rng_normal(&r) + (i % D == 0 ? -4 : 0);
	}
	struct ft_drift_domain_opts o = FT_DRIFT_DOMAIN_OPTS_DEFAULT;
	o.permutations = 199;
	struct ft_drift_domain d;
	FT_CHECK(ft_drift_domain_classifier(ref, N, cur, N, D, &o, &d, NULL) == FT_OK);
	FT_CHECK(d.auc == 1.0);
	FT_CHECK(d.pvalue == 1.0 / 200); /* no relabelling of 60 test rows reaches 1 */
	FT_CHECK(d.n_train == 60 && d.n_test == 60);
	FT_CHECK(d.weights[0] > 0); /* the window is at +4 on the first axis */
	FT_CHECK(ft_drift_domain_classifier(ref, N, cur_same, N, D, &o, &d, NULL) == FT_OK);
	FT_CHECK(d.auc < 0.75 && d.pvalue > 0.001);
	struct ft_err err = { 0 };
	FT_CHECK(ft_drift_domain_classifier(ref, 1, cur, N, D, &o, &d, &err) == FT_EINVAL);
	FT_CHECK(strstr(err.msg, "needs 2 or more rows per side") != NULL);
}

FT_TEST(thresholds_table)
{
	struct ft_drift_thresholds t;
	ft_drift_thresholds_default(&t);
	FT_CHECK(t.psi_min == 0.25 && t.ks_p_max == 0.001 && t.js_min == 0.1 &&
		 t.chi2_p_max == 0.001 && t.auc_min == 0.55 && t.perm_alpha == 0.001 &&
		 t.rate_diff_min == 0.05);
	FT_CHECK(ft_drift_thresholds_set(&t, "psi_min", 0.1, NULL) == FT_OK && t.psi_min == 0.1);
	struct ft_err err = { 0 };
	FT_CHECK(ft_drift_thresholds_set(&t, "auc_min", 0.3, &err) == FT_EINVAL);
	FT_CHECK_STR(err.msg, "drift threshold \"auc_min\" must be between 0.5 and 1 (got 0.3)");
	ft_err_clear(&err);
	FT_CHECK(ft_drift_thresholds_set(&t, "psi", 0.3, &err) == FT_EINVAL);
	FT_CHECK_STR(err.msg, "unknown drift threshold \"psi\"");
	FT_CHECK_STR(err.hint, "known: psi_min, ks_p_max, js_min, chi2_p_max, auc_min, perm_alpha, "
			       "rate_diff_min");
	FT_CHECK_STR(ft_drift_threshold_key(0), "psi_min");
	FT_CHECK_STR(ft_drift_threshold_key(6), "rate_diff_min");
	FT_CHECK(ft_drift_threshold_key(7) == NULL);
	FT_CHECK(ft_drift_threshold_value(&t, 0) == 0.1 && ft_drift_threshold_value(&t, 6) == 0.05);
	FT_CHECK(isnan(ft_drift_threshold_value(&t, 7)));
}

FT_TEST(checks_need_effect_and_significance)
{
	struct ft_drift_thresholds t;
	ft_drift_thresholds_default(&t);
	/* a large language shift alerts; the same shares on tiny counts do not */
	double r[] = { 700, 250, 50 }, c[] = { 100, 180, 20 };
	struct ft_drift_categorical cat;
	FT_CHECK(ft_drift_categorical_check(r, c, 3, &t, &cat, NULL) == FT_OK);
	FT_CHECK(cat.alert && cat.js >= 0.1 && cat.chi2.pvalue < 0.001);
	double small[] = { 1, 2, 0 }, small_r[] = { 7, 2, 1 };
	FT_CHECK(ft_drift_categorical_check(small_r, small, 3, &t, &cat, NULL) == FT_OK);
	FT_CHECK(cat.js >= 0.1 && !cat.alert);
	/* lengths: a shift of the whole window alerts */
	static double ref[400], cur[200];
	for (int i = 0; i < 400; i++)
		ref[i] = i % 100;
	for (int i = 0; i < 200; i++)
		cur[i] = 50 + i % 100;
	struct ft_drift_bins b;
	struct ft_drift_numeric num;
	FT_CHECK(ft_drift_bins_fit(&b, ref, 400, 10, NULL) == FT_OK);
	FT_CHECK(ft_drift_numeric_check(&b, ref, 400, cur, 200, &t, &num, NULL) == FT_OK);
	FT_CHECK(num.alert && num.band == FT_DRIFT_SIGNIFICANT && NEAR(num.wasserstein, 50, 1e-9));
	FT_CHECK(ft_drift_numeric_check(&b, ref, 400, ref, 200, &t, &num, NULL) == FT_OK);
	FT_CHECK(!num.alert);
}

/* Rates by hand against scipy.stats.chi2_contingency([[30, 970], [45, 255]],
 * correction=False): statistic 61.126530612244906, p 5.352200731164309e-15
 * (printed by scipy 1.17.1). */
FT_TEST(rates)
{
	struct ft_drift_thresholds t;
	struct ft_drift_rate r;
	struct ft_err err;
	ft_drift_thresholds_default(&t);
	ft_err_clear(&err);
	FT_CHECK(ft_drift_rate_check(30, 1000, 45, 300, &t, &r, &err) == FT_OK);
	FT_CHECK(NEAR(r.ref_rate, 0.03, 1e-15) && NEAR(r.cur_rate, 0.15, 1e-15));
	FT_CHECK(NEAR(r.chi2.statistic, 61.126530612244906, 1e-9) && r.chi2.dof == 1);
	FT_CHECK(NEAR(r.chi2.pvalue / 5.352200731164309e-15, 1.0, 1e-9));
	FT_CHECK(r.alert);
	/* significant but small: no alert; large on tiny counts: no alert */
	FT_CHECK(ft_drift_rate_check(300, 100000, 400, 100000, &t, &r, &err) == FT_OK);
	FT_CHECK(NEAR(r.chi2.pvalue / 0.0001529214978477255, 1.0, 1e-9) && !r.alert);
	FT_CHECK(ft_drift_rate_check(0, 10, 2, 10, &t, &r, &err) == FT_OK && !r.alert);
	/* nothing on either side: p = 1 */
	FT_CHECK(ft_drift_rate_check(0, 100, 0, 50, &t, &r, &err) == FT_OK);
	FT_CHECK(r.chi2.pvalue == 1.0 && !r.alert);
	FT_CHECK(ft_drift_rate_check(5, 4, 0, 1, &t, &r, &err) == FT_EINVAL);
}

FT_TEST_MAIN()
