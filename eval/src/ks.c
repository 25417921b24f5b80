/*
 * ks.c - the two-sample Kolmogorov-Smirnov test, as scipy.stats.ks_2samp
 * with alternative="two-sided", method="auto".
 *
 * Statistic: D = max |F_x(v) - F_y(v)| over every value v of either
 * sample, F the empirical CDF counting values <= v; each difference is
 * count_x / nx - count_y / ny in doubles, as scipy forms it.
 *
 * p-value, exact when max(nx, ny) <= 10000 (scipy's MAX_AUTO_N), with
 * g = gcd(nx, ny), L = nx ny / g and h = round(D L) (half to even), so that
 * D = h / L exactly; then P(D >= h / L) under the null, from lattice paths
 * (0,0) -> (m,n), m >= n, a step in x for each value of the larger sample:
 *   m = n:  2 sum_{j>=1} (-1)^(j+1) C(2n, n - jh) / C(2n, n)   (Hodges 1958,
 *           eq. 2.3), as 2 A_1 (1 - A_2 (1 - A_3 (...))) with
 *           A_j = C(2n, n - jh) / C(2n, n - (j-1)h) = prod_{i<h} (n-a-i)/(n+a+i+1),
 *           a = (j-1)h, which needs no large binomials;
 *   m != n: the share R(m, n) of paths that leave the band
 *           |(n/g) x - (m/g) y| < h, by the recursion over the grid
 *           R = 1 outside the band, R(0,0) = 0,
 *           R(x,y) = (x R(x-1,y) + y R(x,y-1)) / (x + y) inside it
 *           (Viehmann 2021, arXiv:2102.08037: the complement of Hodges'
 *           inside method, which keeps every value in [0, 1]); only the
 *           band's cells are computed, one column at a time.
 * A result outside [0, 1] falls back to the asymptotic value, as scipy does.
 * Otherwise asymptotic: kstwo.sf(D, round(m n / (m + n))) (kolmogorov.c).
 */
#include "stats_int.h"

#define KS_MAX_EXACT_N 10000

static long gcd_l(long a, long b)
{
	while (b) {
		long t = a % b;
		a = b;
		b = t;
	}
	return a;
}

static double prob_outside_square(long n, long h)
{
	double p = 0;
	for (long j = n / h; j >= 0; j--) {
		double a = 1.0;
		long off = j * h;
		for (long i = 0; i < h; i++)
			a = (double)(n - off - i) * a / (double)(n + off + i + 1);
		p = a * (1.0 - p);
	}
	return 2.0 * p;
}

/* R(m, n) of the band recursion; NaN when out of memory. */
static double prob_outside_band(long m, long n, long g, long h)
{
	if (m < n) {
		long t = m;
		m = n;
		n = t;
	}
	long mg = m / g, ng = n / g;
	double *prev = malloc((size_t)(n + 1) * sizeof *prev);
	double *cur = malloc((size_t)(n + 1) * sizeof *cur);
	if (!prev || !cur) {
		free(prev);
		free(cur);
		return NAN;
	}
	/* column x = 0: inside while mg * y < h; R(0,0) = 0 and R stays 0 inside */
	long plo = 0, phi = (h - 1) / mg;
	if (phi > n)
		phi = n;
	for (long y = plo; y <= phi; y++)
		prev[y] = 0.0;
	double result = 1.0;
	for (long x = 1; x <= m; x++) {
		long a = ng * x - h; /* inside: a < mg y < ng x + h */
		long lo = a < 0 ? 0 : a / mg + 1;
		long hi = (ng * x + h - 1) / mg;
		if (hi > n)
			hi = n;
		if (lo > hi)
			goto done; /* every path has left the band */
		double left = 1.0; /* R(x, lo - 1): outside when lo > 0 */
		for (long y = lo; y <= hi; y++) {
			double up = (y >= plo && y <= phi) ? prev[y] : 1.0; /* R(x-1, y) */
			double yl = y > 0 ? (y == lo ? left : cur[y - 1]) : 0.0;
			cur[y] = ((double)x * up + (double)y * yl) / (double)(x + y);
		}
		double *t = prev;
		prev = cur;
		cur = t;
		plo = lo;
		phi = hi;
	}
	result = (n >= plo && n <= phi) ? prev[n] : 1.0;
done:
	free(prev);
	free(cur);
	return result;
}

enum ft_rc ft_drift_ks_2samp(const double *x, size_t nx, const double *y, size_t ny,
			     struct ft_drift_ks *out, struct ft_err *err)
{
	enum ft_rc rc = ft_stats_check_sample(x, nx, "ks_2samp: the first sample", err);
	if (!rc)
		rc = ft_stats_check_sample(y, ny, "ks_2samp: the second sample", err);
	if (rc)
		return rc;
	double *sx = ft_stats_sorted_copy(x, nx), *sy = ft_stats_sorted_copy(y, ny);
	if (!sx || !sy) {
		free(sx);
		free(sy);
		return ft_failf(err, FT_ENOMEM, NULL, "ks_2samp: out of memory");
	}
	/* walk both sorted samples; after all copies of a value, compare the CDFs */
	double maxs = 0, mins = 0;
	size_t i = 0, j = 0;
	while (i < nx || j < ny) {
		double v = (j >= ny || (i < nx && sx[i] <= sy[j])) ? sx[i] : sy[j];
		while (i < nx && sx[i] <= v)
			i++;
		while (j < ny && sy[j] <= v)
			j++;
		double diff = (double)i / (double)nx - (double)j / (double)ny;
		if (diff > maxs)
			maxs = diff;
		if (diff < mins)
			mins = diff;
	}
	free(sx);
	free(sy);
	double neg = -mins > 1 ? 1 : -mins;
	double d = neg > maxs ? neg : maxs;
	long n1 = (long)nx, n2 = (long)ny;
	double p = NAN;
	bool exact = false;
	if ((n1 > n2 ? n1 : n2) <= KS_MAX_EXACT_N) {
		long g = gcd_l(n1, n2);
		long lcm = (n1 / g) * n2;
		long h = (long)nearbyint(d * (double)lcm);
		double de = (double)h / (double)lcm;
		double pe;
		if (h == 0)
			pe = 1.0;
		else if (n1 == n2)
			pe = prob_outside_square(n1, h);
		else
			pe = prob_outside_band(n1, n2, g, h);
		if (pe >= 0 && pe <= 1) {
			d = de;
			p = pe;
			exact = true;
		} else {
			d = de; /* scipy keeps the rounded statistic when it falls back */
		}
	}
	if (!exact) {
		double m = (double)(n1 > n2 ? n1 : n2), n = (double)(n1 > n2 ? n2 : n1);
		double en = m * n / (m + n);
		p = ft_stats_kolmogorov_sf((long)nearbyint(en), d);
	}
	out->statistic = d;
	out->pvalue = p < 0 ? 0 : p > 1 ? 1 : p;
	out->exact = exact;
	return FT_OK;
}
