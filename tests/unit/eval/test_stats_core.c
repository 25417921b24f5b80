/*
 * test_stats_core.c - fteval's numerics against values worked by hand or
 * from closed forms: the generator's seeding, normal and chi-square tails,
 * numpy's quantile, the Kolmogorov tails that have formulas, Wilson.
 */
#include "ft/stats.h"
#include "ftest.h"

#include <math.h>

#define NEAR(a, b, tol) (fabs((a) - (b)) <= (tol))

FT_TEST(rng_seeding_is_splitmix64)
{
	/* splitmix64 from state 0: its published first four outputs */
	struct ft_rng r;
	ft_rng_seed(&r, 0);
	FT_CHECK(r.s[0] == 0xe220a8397b1dcdafull);
	FT_CHECK(r.s[1] == 0x6e789e6aa1b965f4ull);
	FT_CHECK(r.s[2] == 0x06c45d188009454full);
	FT_CHECK(r.s[3] == 0xf88bb8a8724c81ecull);
	/* xoshiro256**: result = rotl(s1 * 5, 7) * 9 */
	uint64_t x = 0x6e789e6aa1b965f4ull * 5;
	uint64_t want = ((x << 7) | (x >> 57)) * 9;
	FT_CHECK(ft_rng_u64(&r) == want);
}

FT_TEST(rng_below_stays_in_range)
{
	struct ft_rng r;
	ft_rng_seed(&r, 7);
	int hist[3] = { 0 };
	for (int i = 0; i < 30000; i++) {
		uint64_t v = ft_rng_below(&r, 3);
		FT_CHECK(v < 3);
		hist[v]++;
		FT_CHECK(ft_rng_below(&r, 1) == 0);
	}
	for (int i = 0; i < 3; i++) /* 10000 expected, sd 82 */
		FT_CHECK(abs(hist[i] - 10000) < 500);
	double u = ft_rng_uniform(&r);
	FT_CHECK(u >= 0 && u < 1);
}

FT_TEST(normal_tails_and_inverse)
{
	FT_CHECK(NEAR(ft_stats_norm_ppf(0.975), 1.959963984540054, 1e-14));
	FT_CHECK(NEAR(ft_stats_norm_ppf(0.8), 0.8416212335729143, 1e-14));
	FT_CHECK(NEAR(ft_stats_norm_ppf(0.5), 0.0, 1e-15));
	FT_CHECK(NEAR(ft_stats_norm_ppf(1e-10), -6.361340902404056, 1e-12));
	FT_CHECK(NEAR(ft_stats_norm_ppf(0.3), -0.5244005127080409, 1e-15));
	FT_CHECK(isnan(ft_stats_norm_ppf(1.5)));
	FT_CHECK(ft_stats_norm_ppf(0) == -INFINITY);
	/* scipy: -38.4674; the density underflows there, so the start (4.5e-4 off) stays */
	double tiny = ft_stats_norm_ppf(5e-324);
	FT_CHECK(isfinite(tiny) && NEAR(tiny, -38.4674, 1e-2));
	for (double p = 0.001; p < 1; p += 0.0497)
		FT_CHECK(NEAR(ft_stats_norm_cdf(ft_stats_norm_ppf(p)), p, 1e-15));
	FT_CHECK(NEAR(ft_stats_norm_sf(1.959963984540054), 0.025, 1e-16));
}

FT_TEST(chi2_closed_forms)
{
	/* dof 2: exp(-x/2); dof 1: erfc(sqrt(x/2)) */
	double xs[] = { 0.001, 0.5, 1, 2.5, 4, 10, 40, 100 };
	for (size_t i = 0; i < FT_ARRAY_LEN(xs); i++) {
		double x = xs[i];
		FT_CHECK(NEAR(ft_stats_chi2_sf(x, 2), exp(-x / 2), 1e-15 * fmax(1, exp(-x / 2))));
		FT_CHECK(NEAR(ft_stats_chi2_sf(x, 1), erfc(sqrt(x / 2)), 1e-14));
	}
	FT_CHECK(ft_stats_chi2_sf(0, 3) == 1.0);
	FT_CHECK(ft_stats_chi2_sf(-1, 3) == 1.0);
	FT_CHECK(isnan(ft_stats_chi2_sf(1, 0)));
}

FT_TEST(quantile_is_numpy_linear)
{
	double v[] = { 1, 2, 3, 4 };
	FT_CHECK(ft_stats_quantile(v, 4, 0.5) == 2.5);
	FT_CHECK(ft_stats_quantile(v, 4, 0.25) == 1.75); /* h = 0.75 */
	FT_CHECK(ft_stats_quantile(v, 4, 0) == 1);
	FT_CHECK(ft_stats_quantile(v, 4, 1) == 4);
	FT_CHECK(ft_stats_quantile(v, 1, 0.3) == 1);
	double w[] = { 3, 1, 2 };
	ft_stats_sort(w, 3);
	FT_CHECK(w[0] == 1 && w[1] == 2 && w[2] == 3);
}

FT_TEST(kolmogorov_tails_with_formulas)
{
	/* d <= 1/(2n): 1; (1/2n, 1/n]: 1 - n!/n^n (2nd - 1)^n; d >= 1 - 1/n: 2 (1 - d)^n */
	FT_CHECK(ft_stats_kolmogorov_sf(4, 0.1) == 1.0);
	FT_CHECK(NEAR(ft_stats_kolmogorov_sf(2, 0.4), 1.0 - 0.5 * 0.36, 1e-15));
	FT_CHECK(NEAR(ft_stats_kolmogorov_sf(3, 0.9), 2 * 0.001, 1e-15));
	FT_CHECK(ft_stats_kolmogorov_sf(5, 1.0) == 0.0);
	/* n = 1: D_1 = max(U, 1 - U) is uniform on [1/2, 1]: P(D >= d) = 2 (1 - d) */
	FT_CHECK(NEAR(ft_stats_kolmogorov_sf(1, 0.7), 0.6, 1e-15));
	/* large n: the Kolmogorov limit 2 sum (-1)^(k-1) exp(-2 k^2 z^2), z = 1.36 */
	double z = 1.36, lim = 0;
	for (int k = 1; k < 50; k++)
		lim += 2 * ((k % 2) ? 1 : -1) * exp(-2.0 * k * k * z * z);
	double n = 1e6;
	FT_CHECK(NEAR(ft_stats_kolmogorov_sf((long)n, z / sqrt(n)), lim, 2e-3));
	FT_CHECK(isnan(ft_stats_kolmogorov_sf(0, 0.5)));
}

FT_TEST(wilson_interval)
{
	double lo, hi, z = 1.959963984540054, z2 = z * z;
	FT_CHECK(ft_stats_wilson(0, 10, 0.95, &lo, &hi, NULL) == FT_OK);
	FT_CHECK(lo == 0 && NEAR(hi, z2 / (10 + z2), 1e-15)); /* k = 0: z^2 / (n + z^2) */
	FT_CHECK(ft_stats_wilson(10, 10, 0.95, &lo, &hi, NULL) == FT_OK);
	FT_CHECK(hi == 1 && NEAR(lo, 10 / (10 + z2), 1e-15));
	FT_CHECK(ft_stats_wilson(5, 10, 0.95, &lo, &hi, NULL) == FT_OK);
	FT_CHECK(NEAR(lo + hi, 1.0, 1e-15)); /* symmetric about 1/2 */
	FT_CHECK(NEAR(hi - lo, z * sqrt(z2 + 10) / (10 + z2), 1e-15));
	struct ft_err err = { 0 };
	FT_CHECK(ft_stats_wilson(11, 10, 0.95, &lo, &hi, &err) == FT_EINVAL);
	FT_CHECK_STR(err.msg, "wilson: \"k\" must be between 0 and n = 10 (got 11)");
}

FT_TEST_MAIN()
