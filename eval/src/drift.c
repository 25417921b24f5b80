/*
 * drift.c - distances between a reference sample and a window.
 *
 *   PSI          sum_i (r_i - c_i) ln(r_i / c_i) over bin shares; bins are
 *                the reference's quantiles (deciles by default), so every
 *                reference bin holds about 1/n_bins of it and the bins stay
 *                fixed for the reference's life. Evidently's get_binned_data
 *                says "reference quantiles" but bins the pooled sample by
 *                Sturges equal-width edges; we follow the docstring (and the
 *                credit-scoring PSI, Siddiqi 2006) and take Evidently's
 *                epsilon for empty bins.
 *   Jensen-Shannon  sqrt((KL(p||m) + KL(q||m)) / 2), m = (p + q) / 2, natural log
 *   Wasserstein  integral |F_x - F_y| = sum over consecutive pooled values
 *                v_t < v_t+1 of |F_x(v_t) - F_y(v_t)| (v_t+1 - v_t)
 *   chi-square   sum (O - E)^2 / E, E = row total x column total / total,
 *                dof = (columns - 1), p = chi2_sf (special.c)
 *   cosine       1 - <a, b> / (|a| |b|) of the two centroids
 *   Mann-Whitney U = R_pos - n1 (n1 + 1) / 2 with midranks; AUC = U / (n0 n1);
 *                z = (max(U, n0 n1 - U) - n0 n1 / 2 - 1/2) / s,
 *                s^2 = n0 n1 / 12 ((n + 1) - sum(t^3 - t) / (n (n - 1))),
 *                p = min(1, 2 norm_sf(z))
 */
#include "stats_int.h"

enum ft_rc ft_drift_bins_fit(struct ft_drift_bins *b, const double *ref, size_t n, int n_bins,
			     struct ft_err *err)
{
	if (n_bins < 2 || n_bins > FT_DRIFT_MAX_BINS)
		return ft_failf(err, FT_EINVAL, NULL, "psi: bins must be between 2 and %d (got %d)",
				FT_DRIFT_MAX_BINS, n_bins);
	enum ft_rc rc = ft_stats_check_sample(ref, n, "psi: the reference", err);
	if (rc)
		return rc;
	double *s = ft_stats_sorted_copy(ref, n);
	if (!s)
		return ft_failf(err, FT_ENOMEM, NULL, "psi: out of memory");
	memset(b, 0, sizeof *b);
	int ne = 0;
	for (int i = 1; i < n_bins; i++) {
		double e = ft_stats_quantile(s, n, (double)i / (double)n_bins);
		if (ne == 0 || e != b->edges[ne - 1])
			b->edges[ne++] = e;
	}
	b->n_bins = ne + 1;
	free(s);
	ft_drift_bins_count(b, ref, n, b->ref_counts);
	return FT_OK;
}

/* number of edges <= v */
static int bin_of(const struct ft_drift_bins *b, double v)
{
	int lo = 0, hi = b->n_bins - 1;
	while (lo < hi) {
		int mid = (lo + hi) / 2;
		if (b->edges[mid] <= v)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

void ft_drift_bins_count(const struct ft_drift_bins *b, const double *x, size_t n, double *counts)
{
	for (int i = 0; i < b->n_bins; i++)
		counts[i] = 0;
	for (size_t i = 0; i < n; i++)
		counts[bin_of(b, x[i])] += 1.0;
}

/* shares of a count vector with Evidently's epsilon for zeros; false if empty */
static bool shares_filled(const double *c, int k, double *out)
{
	double tot = 0, minnz = INFINITY;
	for (int i = 0; i < k; i++)
		tot += c[i];
	if (!(tot > 0))
		return false;
	for (int i = 0; i < k; i++) {
		out[i] = c[i] / tot;
		if (out[i] != 0 && out[i] < minnz)
			minnz = out[i];
	}
	double eps = minnz <= 0.0001 ? minnz / 1e6 : 0.0001;
	for (int i = 0; i < k; i++)
		if (out[i] == 0)
			out[i] = eps;
	return true;
}

double ft_drift_psi(const double *ref_counts, const double *cur_counts, int k)
{
	double r[FT_DRIFT_MAX_BINS], c[FT_DRIFT_MAX_BINS];
	if (k < 1 || k > FT_DRIFT_MAX_BINS || !shares_filled(ref_counts, k, r) ||
	    !shares_filled(cur_counts, k, c))
		return NAN;
	double psi = 0;
	for (int i = 0; i < k; i++)
		psi += (r[i] - c[i]) * log(r[i] / c[i]);
	return psi;
}

enum ft_drift_band ft_drift_psi_band(double psi)
{
	return psi < 0.1 ? FT_DRIFT_STABLE : psi < 0.25 ? FT_DRIFT_MODERATE : FT_DRIFT_SIGNIFICANT;
}

const char *ft_drift_band_name(enum ft_drift_band b)
{
	static const char *const names[] = { "stable", "moderate", "significant" };
	return (unsigned)b < FT_ARRAY_LEN(names) ? names[b] : "unknown";
}

static double rel_entr(double x, double y)
{
	return x > 0 && y > 0 ? x * log(x / y) : 0.0;
}

double ft_drift_js_distance(const double *p, const double *q, int k)
{
	double sp = 0, sq = 0;
	for (int i = 0; i < k; i++) {
		sp += p[i];
		sq += q[i];
	}
	if (!(sp > 0) || !(sq > 0))
		return NAN;
	double left = 0, right = 0;
	for (int i = 0; i < k; i++) {
		double a = p[i] / sp, b = q[i] / sq, m = (a + b) / 2.0;
		left += rel_entr(a, m);
		right += rel_entr(b, m);
	}
	double js = (left + right) / 2.0;
	return sqrt(js > 0 ? js : 0);
}

enum ft_rc ft_drift_wasserstein(const double *x, size_t nx, const double *y, size_t ny, double *out,
				struct ft_err *err)
{
	enum ft_rc rc = ft_stats_check_sample(x, nx, "wasserstein: the first sample", err);
	if (!rc)
		rc = ft_stats_check_sample(y, ny, "wasserstein: the second sample", err);
	if (rc)
		return rc;
	double *sx = ft_stats_sorted_copy(x, nx), *sy = ft_stats_sorted_copy(y, ny);
	if (!sx || !sy) {
		free(sx);
		free(sy);
		return ft_failf(err, FT_ENOMEM, NULL, "wasserstein: out of memory");
	}
	/* walk the pooled values in order; i, j = counts <= the current value */
	double sum = 0;
	size_t i = 0, j = 0;
	double v = sx[0] < sy[0] ? sx[0] : sy[0];
	while (i < nx || j < ny) {
		while (i < nx && sx[i] <= v)
			i++;
		while (j < ny && sy[j] <= v)
			j++;
		if (i == nx && j == ny)
			break;
		double next = j >= ny || (i < nx && sx[i] < sy[j]) ? sx[i] : sy[j];
		sum += fabs((double)i / (double)nx - (double)j / (double)ny) * (next - v);
		v = next;
	}
	free(sx);
	free(sy);
	*out = sum;
	return FT_OK;
}

enum ft_rc ft_drift_chi2_test(const double *ref_counts, const double *cur_counts, int k,
			      struct ft_drift_chi2 *out, struct ft_err *err)
{
	enum ft_rc rc =
		ft_stats_check_counts(ref_counts, k, FT_DRIFT_MAX_N, "chi2: reference", err);
	if (!rc)
		rc = ft_stats_check_counts(cur_counts, k, FT_DRIFT_MAX_N, "chi2: window", err);
	if (rc)
		return rc;
	double r = 0, c = 0;
	int cols = 0;
	for (int i = 0; i < k; i++) {
		r += ref_counts[i];
		c += cur_counts[i];
		cols += ref_counts[i] + cur_counts[i] > 0;
	}
	if (!(r > 0) || !(c > 0))
		return ft_failf(err, FT_EINVAL, NULL, "chi2: the %s has no counts",
				r > 0 ? "window" : "reference");
	double tot = r + c, stat = 0;
	for (int i = 0; i < k; i++) {
		double col = ref_counts[i] + cur_counts[i];
		if (col == 0)
			continue;
		double er = r * col / tot, ec = c * col / tot;
		stat += (ref_counts[i] - er) * (ref_counts[i] - er) / er;
		stat += (cur_counts[i] - ec) * (cur_counts[i] - ec) / ec;
	}
	out->dof = cols - 1;
	out->statistic = out->dof > 0 ? stat : 0.0;
	out->pvalue = out->dof > 0 ? ft_stats_chi2_sf(stat, out->dof) : 1.0;
	return FT_OK;
}

enum ft_rc ft_drift_cosine_centroids(const double *ref, size_t nref, const double *cur, size_t ncur,
				     int dim, double *out, struct ft_err *err)
{
	if (dim < 1 || dim > 65536)
		return ft_failf(err, FT_EINVAL, NULL, "cosine: dim must be 1..65536 (got %d)", dim);
	enum ft_rc rc =
		ft_stats_check_sample(ref, nref * (size_t)dim, "cosine: the reference", err);
	if (!rc)
		rc = ft_stats_check_sample(cur, ncur * (size_t)dim, "cosine: the window", err);
	if (rc)
		return rc;
	double dot = 0, na = 0, nb = 0;
	for (int d = 0; d < dim; d++) {
		double a = 0, b = 0;
		for (size_t i = 0; i < nref; i++)
			a += ref[i * (size_t)dim + d];
		for (size_t i = 0; i < ncur; i++)
			b += cur[i * (size_t)dim + d];
		a /= (double)nref;
		b /= (double)ncur;
		dot += a * b;
		na += a * a;
		nb += b * b;
	}
	if (!(na > 0) || !(nb > 0))
		return ft_failf(err, FT_EINVAL, NULL, "cosine: a centroid is the zero vector");
	double dist = 1.0 - dot / sqrt(na * nb);
	*out = dist < 0 ? 0 : dist > 2 ? 2 : dist;
	return FT_OK;
}

enum ft_rc ft_drift_mann_whitney(const double *neg, size_t n0, const double *pos, size_t n1,
				 struct ft_drift_mw *out, struct ft_err *err)
{
	enum ft_rc rc = ft_stats_check_sample(neg, n0, "mann-whitney: the first sample", err);
	if (!rc)
		rc = ft_stats_check_sample(pos, n1, "mann-whitney: the second sample", err);
	if (rc)
		return rc;
	size_t n = n0 + n1;
	double *v = malloc(n * sizeof *v), *rank = malloc(n * sizeof *rank);
	if (!v || !rank) {
		rc = ft_failf(err, FT_ENOMEM, NULL, "mann-whitney: out of memory");
		goto out;
	}
	memcpy(v, pos, n1 * sizeof *v);
	memcpy(v + n1, neg, n0 * sizeof *v);
	double ties;
	rc = ft_stats_midranks(v, n, rank, &ties, err);
	if (rc)
		goto out;
	double r1 = 0;
	for (size_t i = 0; i < n1; i++)
		r1 += rank[i];
	double a = (double)n1, b = (double)n0, N = (double)n;
	double u = r1 - a * (a + 1.0) / 2.0;
	out->auc = u / (a * b);
	double umax = fmax(u, a * b - u);
	double s = sqrt(a * b / 12.0 * ((N + 1.0) - ties / (N * (N - 1.0))));
	if (!(s > 0)) {
		out->pvalue = 1.0; /* every value tied: no evidence either way */
	} else {
		double p = 2.0 * ft_stats_norm_sf((umax - a * b / 2.0 - 0.5) / s);
		out->pvalue = p > 1 ? 1 : p;
	}
out:
	free(v);
	free(rank);
	return rc;
}
