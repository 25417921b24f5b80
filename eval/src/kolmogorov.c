/*
 * kolmogorov.c - P(D_n >= d) for the one-sample two-sided Kolmogorov-
 * Smirnov statistic D_n = sup |F_n - F| of n draws: the asymptotic branch
 * of the two-sample test (ks.c) evaluates it at n = round(nx ny / (nx + ny)).
 *
 * Which method for which (n, d) is the choice of Simard and L'Ecuyer (2011,
 * "Computing the two-sided Kolmogorov-Smirnov distribution", JSS 39(11)),
 * with the cut-offs scipy.stats.kstwo uses, so that both pick the same
 * formula for the same input (t = n d):
 *
 *   d >= 1                        0
 *   t <= 1/2                      1
 *   t <= 1       Ruben-Gambino    1 - n!/n^n (2t - 1)^n
 *   t >= n - 1   Ruben-Gambino    2 (1 - d)^n
 *   d >= 1/2     exact            2 P(D+_n >= d)
 *   n <= 140:
 *     n d^2 <= 4                  1 - P(D_n < d) by Durbin's matrix
 *                                 (scipy uses Pomeranz's recursion above
 *                                 n d^2 = 0.754693; both are exact)
 *     else       Miller           2 P(D+_n >= d)
 *   n > 140:
 *     n d^2 >= 370                0
 *     n d^2 >= 2.2  Miller        2 P(D+_n >= d)
 *     n <= 100000 and n d^1.5 <= 1.4
 *                                 1 - P(D_n < d) by Durbin's matrix
 *     else       Pelz-Good        1 - (K0 + K1/sqrt n + K2/n + K3/n^1.5)
 *
 * P(D+_n >= d), the one-sided (Smirnov) tail, is the Birnbaum-Tingey sum
 *   d * sum_{v=0}^{floor(n(1-d))} C(n,v) (1 - d - v/n)^(n-v) (d + v/n)^(v-1)
 * whose terms are all positive; each is formed in logs.
 *
 * Durbin's matrix (Marsaglia, Tsang and Wang 2003): with k = ceil(n d),
 * h = k - n d and m = 2k - 1, H is m x m with
 *   H[i][j] = 1/(i - j + 1)!  for i - j + 1 >= 0, else 0,
 *   H[i][0] = (1 - h^(i+1)) / (i+1)!,  H[m-1][j] = (1 - h^(m-j)) / (m-j)!,
 *   H[m-1][0] = (1 - 2 h^m + max(0, 2h - 1)^m) / m!,
 * and P(D_n < d) = n!/n^n (H^n)[k-1][k-1]. H^n is formed by squaring with
 * a power-of-two exponent carried beside the matrix.
 *
 * Pelz-Good (1976): with z = d sqrt(n), q = exp(-pi^2 / (8 z^2)),
 * m = 2j - 1 over j = 1..ceil(16 z / pi) and r_j = exp(-pi^2 j^2 / (2 z^2)):
 *   K0 = sqrt(2pi)/z                sum q^(m^2)
 *   K1 = sqrt(2pi)/(6 z^4)          sum (pi^2 m^2/4 - z^2) q^(m^2)
 *   K2 = sqrt(2pi)/(72 z^7)         sum (6z^6 + 2z^4 + (2z^4 - 5z^2) pi^2 m^2/4
 *                                        + (1 - 2z^2) pi^4 m^4/16) q^(m^2)
 *        - pi^2 sqrt(2pi)/(36 z^3)  sum j^2 r_j
 *   K3 = sqrt(2pi)/(6480 z^10)      sum (-30z^6 - 90z^8 + (135z^4 - 96z^6) pi^2 m^2/4
 *                                        + (212z^4 - 60z^2) pi^4 m^4/16
 *                                        + (5 - 30z^2) pi^6 m^6/64) q^(m^2)
 *        + pi^2 sqrt(2pi)/(216 z^6) sum (3z^2 - pi^2 j^2) j^2 r_j
 */
#include "stats_int.h"

#define SCALE_EXP 128

static double clip01(double p)
{
	return p < 0 ? 0 : p > 1 ? 1 : p;
}

/* P(D+_n >= d), 0 < d < 1. */
static double smirnov_sf(long n, double d)
{
	if (n == 1)
		return 1.0 - d;
	if (-2.0 * (double)n * d * d < -708.39641853226410622)
		return 0.0; /* below the smallest double: scipy returns 0 too */
	double nd = (double)n;
	long vmax = (long)floor(nd * (1.0 - d));
	if (vmax > n)
		vmax = n;
	double lnf = ft_lgam(nd + 1.0), sum = 0;
	for (long v = 0; v <= vmax; v++) {
		double a = (double)(n - v) / nd - d; /* 1 - d - v/n */
		double b = d + (double)v / nd;
		if (a <= 0)
			break; /* the term with 1 - d - v/n = 0 is 0 */
		double lt = lnf - ft_lgam((double)v + 1.0) - ft_lgam(nd - (double)v + 1.0) +
			    (double)(n - v) * log(a) + (double)(v - 1) * log(b);
		sum += exp(lt);
	}
	return clip01(d * sum);
}

/* C = A B for m x m row-major matrices. */
static void matmul(const double *a, const double *b, double *c, int m)
{
	for (int i = 0; i < m; i++) {
		double *ci = c + (size_t)i * m;
		for (int j = 0; j < m; j++)
			ci[j] = 0;
		for (int k = 0; k < m; k++) {
			double aik = a[(size_t)i * m + k];
			if (aik == 0)
				continue;
			const double *bk = b + (size_t)k * m;
			for (int j = 0; j < m; j++)
				ci[j] += aik * bk[j];
		}
	}
}

/* P(D_n < d) by Durbin's matrix; NaN when out of memory. */
static double durbin_cdf(long n, double d)
{
	double nd = (double)n * d;
	if (d >= 1.0)
		return 1.0;
	if (nd <= 0.5)
		return 0.0;
	int k = (int)ceil(nd);
	double h = k - nd;
	int m = 2 * k - 1;
	size_t mm = (size_t)m * m;
	double *buf = calloc(3 * mm + (size_t)m + 1, sizeof *buf);
	if (!buf)
		return NAN;
	double *H = buf, *P = buf + mm, *T = buf + 2 * mm, *f = buf + 3 * mm; /* f[j] = 1/j! */
	f[0] = 1.0;
	for (int j = 1; j <= m; j++)
		f[j] = f[j - 1] / j;
	for (int i = 0; i < m; i++)
		for (int j = 0; j < m; j++)
			H[(size_t)i * m + j] = i - j + 1 >= 0 ? f[i - j + 1] : 0.0;
	for (int i = 0; i < m; i++) {
		H[(size_t)i * m] = (1.0 - pow(h, i + 1)) * f[i + 1];
		H[(size_t)(m - 1) * m + i] = (1.0 - pow(h, m - i)) * f[m - i];
	}
	H[(size_t)(m - 1) * m] = (1.0 - 2.0 * pow(h, m) + pow(fmax(0.0, 2.0 * h - 1.0), m)) * f[m];
	/* P = H^n with exponents: P * 2^pe, H * 2^he */
	for (int i = 0; i < m; i++)
		P[(size_t)i * m + i] = 1.0;
	long pe = 0, he = 0;
	for (long e = n; e > 0; e >>= 1) {
		if (e & 1) {
			matmul(P, H, T, m);
			memcpy(P, T, mm * sizeof *P);
			pe += he;
		}
		if (e > 1) {
			matmul(H, H, T, m);
			memcpy(H, T, mm * sizeof *H);
			he *= 2;
			if (fabs(H[(size_t)(k - 1) * m + (k - 1)]) > 0x1p128) {
				for (size_t i = 0; i < mm; i++)
					H[i] = ldexp(H[i], -SCALE_EXP);
				he += SCALE_EXP;
			}
		}
	}
	double p = P[(size_t)(k - 1) * m + (k - 1)];
	free(buf);
	for (long i = 1; i <= n; i++) { /* times n!/n^n */
		p = (double)i * p / (double)n;
		if (fabs(p) < 0x1p-128) {
			p = ldexp(p, SCALE_EXP);
			pe -= SCALE_EXP;
		}
	}
	return ldexp(p, (int)pe);
}

static double pelz_good_cdf(long n, double d)
{
	if (d <= 0)
		return 0.0;
	if (d >= 1)
		return 1.0;
	const double pi2 = M_PI * M_PI, pi4 = pi2 * pi2, pi6 = pi4 * pi2;
	const double s2pi = sqrt(2.0 * M_PI);
	double z = sqrt((double)n) * d;
	double z2 = z * z, z4 = z2 * z2, z6 = z4 * z2, z8 = z4 * z4;
	double qlog = -pi2 / 8.0 / z2;
	if (qlog < -708)
		return 0.0;
	int kmax = (int)ceil(16.0 * z / M_PI);
	double s0 = 0, s1 = 0, s2 = 0, s3 = 0, e2 = 0, e3 = 0;
	for (int j = kmax; j >= 1; j--) {
		double m = 2.0 * j - 1.0, m2 = m * m, m4 = m2 * m2, m6 = m4 * m2;
		double w = exp(qlog * m2);
		s0 += w;
		s1 += (pi2 * m2 / 4.0 - z2) * w;
		s2 += (6 * z6 + 2 * z4 + (2 * z4 - 5 * z2) * pi2 * m2 / 4.0 +
		       (1 - 2 * z2) * pi4 * m4 / 16.0) *
		      w;
		s3 += (-30 * z6 - 90 * z8 + (135 * z4 - 96 * z6) * pi2 * m2 / 4.0 +
		       (212 * z4 - 60 * z2) * pi4 * m4 / 16.0 + (5 - 30 * z2) * pi6 * m6 / 64.0) *
		      w;
		double jj = (double)j * j, r = exp(-pi2 * jj / 2.0 / z2);
		e2 += jj * r;
		e3 += (3 * z2 - pi2 * jj) * jj * r;
	}
	double k0 = s2pi / z * s0;
	double k1 = s2pi / (6 * z4) * s1;
	double k2 = s2pi / (72 * z6 * z) * s2 - pi2 * s2pi / (36 * z2 * z) * e2;
	double k3 = s2pi / (6480 * z8 * z2) * s3 + pi2 * s2pi / (216 * z6) * e3;
	double sn = sqrt((double)n);
	return k0 + k1 / sn + k2 / (double)n + k3 / ((double)n * sn);
}

double ft_stats_kolmogorov_sf(long n, double d)
{
	if (n <= 0 || isnan(d))
		return NAN;
	if (d >= 1.0)
		return 0.0;
	if (d <= 0.0)
		return 1.0;
	double nd = (double)n, t = nd * d;
	if (t <= 1.0) {
		if (t <= 0.5)
			return 1.0;
		double cdf = exp(ft_lgam(nd + 1.0) - nd * log(nd) + nd * log(2.0 * t - 1.0));
		return clip01(1.0 - cdf);
	}
	if (t >= nd - 1.0)
		return clip01(2.0 * pow(1.0 - d, nd));
	if (d >= 0.5)
		return clip01(2.0 * smirnov_sf(n, d));
	double ndd = t * d;
	if (n <= 140) {
		if (ndd <= 4.0)
			return clip01(1.0 - durbin_cdf(n, d));
		return clip01(2.0 * smirnov_sf(n, d));
	}
	if (ndd >= 370.0)
		return 0.0;
	if (ndd >= 2.2)
		return clip01(2.0 * smirnov_sf(n, d));
	double cdf;
	if (n <= 100000 && nd * pow(d, 1.5) <= 1.4)
		cdf = durbin_cdf(n, d);
	else
		cdf = pelz_good_cdf(n, d);
	return clip01(1.0 - cdf);
}
