/*
 * special.c - the distribution functions and order statistics the tests
 * need, plus the small numerical helpers shared inside fteval.
 *
 *   norm_cdf(x)  = erfc(-x / sqrt 2) / 2         (libm erfc: full precision in both tails)
 *   norm_ppf(p)  : Abramowitz-Stegun 26.2.23 as a start (error < 4.5e-4), then
 *                  Halley steps on norm_cdf until the step is below 1e-15 |x|
 *   chi2_sf(x,k) = Q(k/2, x/2), the regularised upper incomplete gamma:
 *                  the power series of P when x < a + 1, else the continued
 *                  fraction of Q evaluated by the modified Lentz method
 *   quantile     numpy 'linear': h = (n - 1) q, j = floor(h), g = h - j,
 *                  a + (b - a) g when g < 1/2, else b - (b - a)(1 - g)
 *                  (numpy's _lerp, which is exact at both ends)
 *   wilson       Newcombe (1998) eq. 3: centre (2k + z^2) / (2(n + z^2)),
 *                  half-width z sqrt(z^2 + 4k(1 - k/n)) / (2(n + z^2)),
 *                  clamped to 0 at k = 0 and 1 at k = n as scipy does.
 */
#include "stats_int.h"

double ft_stats_norm_cdf(double x)
{
	return 0.5 * erfc(-x / M_SQRT2);
}

double ft_stats_norm_sf(double x)
{
	return 0.5 * erfc(x / M_SQRT2);
}

double ft_stats_norm_ppf(double p)
{
	if (!(p > 0 && p < 1))
		return p == 0 ? -INFINITY : p == 1 ? INFINITY : NAN;
	/* work in the lower half; the upper half by symmetry */
	bool upper = p > 0.5;
	double q = upper ? 1.0 - p : p;
	double t = sqrt(-2.0 * log(q));
	double x = -(t - (2.515517 + t * (0.802853 + t * 0.010328)) /
				 (1.0 + t * (1.432788 + t * (0.189269 + t * 0.001308))));
	for (int i = 0; i < 8; i++) {
		double e = ft_stats_norm_cdf(x) - q;
		double u = e * sqrt(2.0 * M_PI) * exp(0.5 * x * x);
		double step = u / (1.0 + 0.5 * x * u);
		if (!isfinite(step))
			break; /* p below ~1e-300: the density underflows; keep the start */
		x -= step;
		if (fabs(step) <= 1e-15 * fabs(x))
			break;
	}
	return upper ? -x : x;
}

/* P(a, x) by its series, for x < a + 1. */
static double gamma_p_series(double a, double x)
{
	double term = 1.0 / a, sum = term;
	for (int n = 1; n < 100000; n++) {
		term *= x / (a + n);
		sum += term;
		if (fabs(term) < fabs(sum) * 1e-17)
			break;
	}
	return sum * exp(-x + a * log(x) - ft_lgam(a));
}

/* Q(a, x) by its continued fraction, for x >= a + 1. */
static double gamma_q_fraction(double a, double x)
{
	const double tiny = 1e-300;
	double b = x + 1.0 - a, c = 1.0 / tiny, d = 1.0 / b, h = d;
	for (int i = 1; i < 100000; i++) {
		double an = -i * (i - a);
		b += 2.0;
		d = an * d + b;
		if (fabs(d) < tiny)
			d = tiny;
		c = b + an / c;
		if (fabs(c) < tiny)
			c = tiny;
		d = 1.0 / d;
		double del = d * c;
		h *= del;
		if (fabs(del - 1.0) < 1e-16)
			break;
	}
	return exp(-x + a * log(x) - ft_lgam(a)) * h;
}

double ft_stats_chi2_sf(double x, double dof)
{
	if (!(dof > 0) || isnan(x))
		return NAN;
	if (x <= 0)
		return 1.0;
	if (isinf(x))
		return 0.0;
	double a = 0.5 * dof, hx = 0.5 * x;
	if (hx < a + 1.0)
		return 1.0 - gamma_p_series(a, hx);
	return gamma_q_fraction(a, hx);
}

double ft_stats_quantile(const double *v, size_t n, double q)
{
	FT_ASSERT(n >= 1);
	double h = (double)(n - 1) * q;
	if (!(h > 0))
		return v[0];
	if (h >= (double)(n - 1))
		return v[n - 1];
	double j = floor(h);
	size_t i = (size_t)j;
	double g = h - j, a = v[i], b = v[i + 1], diff = b - a;
	return g >= 0.5 ? b - diff * (1.0 - g) : a + diff * g;
}

static int cmp_double(const void *pa, const void *pb)
{
	double a = *(const double *)pa, b = *(const double *)pb;
	return (a > b) - (a < b);
}

void ft_stats_sort(double *v, size_t n)
{
	if (n > 1)
		qsort(v, n, sizeof *v, cmp_double);
}

double *ft_stats_sorted_copy(const double *x, size_t n)
{
	double *s = malloc((n ? n : 1) * sizeof *s);
	if (!s)
		return NULL;
	memcpy(s, x, n * sizeof *s);
	ft_stats_sort(s, n);
	return s;
}

enum ft_rc ft_stats_wilson(double k, double n, double conf, double *lo, double *hi,
			   struct ft_err *err)
{
	if (!(n >= 1) || !isfinite(n))
		return ft_failf(err, FT_EINVAL, NULL, "wilson: \"n\" must be at least 1 (got %g)",
				n);
	if (!(k >= 0 && k <= n))
		return ft_failf(err, FT_EINVAL, NULL,
				"wilson: \"k\" must be between 0 and n = %g (got %g)", n, k);
	if (!(conf > 0 && conf < 1))
		return ft_failf(err, FT_EINVAL, NULL,
				"wilson: the confidence level must be in (0, 1) (got %g)", conf);
	double z = ft_stats_norm_ppf(0.5 + 0.5 * conf);
	double denom = 2.0 * (n + z * z);
	double center = (2.0 * k + z * z) / denom;
	double q = 1.0 - k / n;
	double delta = z * sqrt(z * z + 4.0 * k * q) / denom;
	*lo = k == 0 ? 0.0 : center - delta;
	*hi = k == n ? 1.0 : center + delta;
	return FT_OK;
}

enum ft_rc ft_stats_check_sample(const double *x, size_t n, const char *what, struct ft_err *err)
{
	if (n == 0)
		return ft_failf(err, FT_EINVAL, NULL, "%s is empty", what);
	if (n > FT_DRIFT_MAX_N)
		return ft_failf(err, FT_ELIMIT, NULL, "%s has %zu values (at most %d; sample it)",
				what, n, FT_DRIFT_MAX_N);
	for (size_t i = 0; i < n; i++)
		if (!isfinite(x[i]))
			return ft_failf(err, FT_EINVAL, NULL, "%s[%zu] is not a finite number",
					what, i);
	return FT_OK;
}

enum ft_rc ft_stats_check_counts(const double *c, int k, int kmax, const char *what,
				 struct ft_err *err)
{
	if (k < 1 || k > kmax)
		return ft_failf(err, FT_EINVAL, NULL, "%s must have 1 to %d categories (got %d)",
				what, kmax, k);
	for (int i = 0; i < k; i++)
		if (!(c[i] >= 0) || !isfinite(c[i]))
			return ft_failf(err, FT_EINVAL, NULL,
					"%s[%d] must be a finite count >= 0 (got %g)", what, i,
					c[i]);
	return FT_OK;
}

struct ranked {
	double v;
	size_t i;
};

static int cmp_ranked(const void *pa, const void *pb)
{
	const struct ranked *a = pa, *b = pb;
	if (a->v != b->v)
		return (a->v > b->v) - (a->v < b->v);
	return (a->i > b->i) - (a->i < b->i);
}

enum ft_rc ft_stats_midranks(const double *v, size_t n, double *rank, double *tie_term,
			     struct ft_err *err)
{
	struct ranked *r = malloc((n ? n : 1) * sizeof *r);
	if (!r)
		return ft_failf(err, FT_ENOMEM, NULL, "out of memory ranking %zu values", n);
	for (size_t i = 0; i < n; i++)
		r[i] = (struct ranked){ v[i], i };
	qsort(r, n, sizeof *r, cmp_ranked);
	double ties = 0;
	for (size_t i = 0; i < n;) {
		size_t j = i + 1;
		while (j < n && r[j].v == r[i].v)
			j++;
		/* positions i..j-1 hold ranks i+1..j: their mean is (i + 1 + j) / 2 */
		double mid = 0.5 * ((double)(i + 1) + (double)j);
		for (size_t t = i; t < j; t++)
			rank[r[t].i] = mid;
		double t = (double)(j - i);
		ties += t * t * t - t;
		i = j;
	}
	if (tie_term)
		*tie_term = ties;
	free(r);
	return FT_OK;
}

bool ft_stats_cholesky_solve(double *a, double *b, int n)
{
	for (int j = 0; j < n; j++) {
		double d = a[j * n + j];
		for (int k = 0; k < j; k++)
			d -= a[j * n + k] * a[j * n + k];
		if (!(d > 0))
			return false;
		d = sqrt(d);
		a[j * n + j] = d;
		for (int i = j + 1; i < n; i++) {
			double s = a[i * n + j];
			for (int k = 0; k < j; k++)
				s -= a[i * n + k] * a[j * n + k];
			a[i * n + j] = s / d;
		}
	}
	for (int i = 0; i < n; i++) { /* L y = b */
		double s = b[i];
		for (int k = 0; k < i; k++)
			s -= a[i * n + k] * b[k];
		b[i] = s / a[i * n + i];
	}
	for (int i = n - 1; i >= 0; i--) { /* L^T x = y */
		double s = b[i];
		for (int k = i + 1; k < n; k++)
			s -= a[k * n + i] * b[k];
		b[i] = s / a[i * n + i];
	}
	return true;
}
