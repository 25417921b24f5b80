/*
 * domain.c - embedding drift by a domain classifier (the procedure is in
 * ft/stats.h; Evidently's "model" embedding-drift method is the model).
 *
 * The classifier: rows x (dim values) with label y = 1 for the window,
 * 0 for the reference; z = w.x + b, p = s(z). Minimise over (w, b)
 *   L = (1/n) sum [log(1 + e^z) - y z] + lambda/2 |w|^2,  lambda = 1 / (C n)
 *   grad_w = (1/n) X^T (p - y) + lambda w,   grad_b = (1/n) sum (p - y)
 *   Hess   = (1/n) X~^T diag(p (1 - p)) X~ + lambda diag(1, .., 1, 0)
 * by Newton's method with step halving (L is strictly convex: lambda > 0
 * on w, and the intercept's curvature is positive while both classes are
 * present). The test rows' scores are z; only their order matters.
 */
#include "stats_int.h"

#define MAX_DIM 1024
#define MAX_ROWS 20000

static double log1pexp(double z)
{
	return z > 0 ? z + log1p(exp(-z)) : log1p(exp(z));
}

static double logistic(double z)
{
	return z >= 0 ? 1.0 / (1.0 + exp(-z)) : exp(z) / (1.0 + exp(z));
}

struct fit {
	int dim, n;
	const double *const *row; /* n rows */
	const double *y;
	double lambda;
};

static double objective(const struct fit *f, const double *w)
{
	double l = 0;
	for (int i = 0; i < f->n; i++) {
		double z = w[f->dim];
		for (int d = 0; d < f->dim; d++)
			z += w[d] * f->row[i][d];
		l += log1pexp(z) - f->y[i] * z;
	}
	l /= f->n;
	double r = 0;
	for (int d = 0; d < f->dim; d++)
		r += w[d] * w[d];
	return l + 0.5 * f->lambda * r;
}

/* Newton on (w, b) = w[0..dim]; returns iterations, -1 if it failed */
static int newton(const struct fit *f, double *w, double *work)
{
	int m = f->dim + 1;
	double *g = work, *h = work + m, *trial = h + (size_t)m * m;
	double obj = objective(f, w);
	for (int it = 0; it < 100; it++) {
		memset(g, 0, (size_t)m * sizeof *g);
		memset(h, 0, (size_t)m * m * sizeof *h);
		for (int i = 0; i < f->n; i++) {
			const double *x = f->row[i];
			double z = w[f->dim];
			for (int d = 0; d < f->dim; d++)
				z += w[d] * x[d];
			double p = logistic(z), r = p - f->y[i], s = p * (1.0 - p);
			for (int a = 0; a < m; a++) {
				double xa = a < f->dim ? x[a] : 1.0;
				g[a] += r * xa;
				double sxa = s * xa;
				for (int c = 0; c <= a; c++)
					h[a * m + c] += sxa * (c < f->dim ? x[c] : 1.0);
			}
		}
		double gmax = 0;
		for (int a = 0; a < m; a++) {
			g[a] /= f->n;
			if (a < f->dim)
				g[a] += f->lambda * w[a];
			gmax = fmax(gmax, fabs(g[a]));
			for (int c = 0; c <= a; c++) {
				h[a * m + c] /= f->n;
				h[c * m + a] = h[a * m + c];
			}
			if (a < f->dim)
				h[a * m + a] += f->lambda;
		}
		if (gmax < 1e-10)
			return it;
		if (!ft_stats_cholesky_solve(h, g, m))
			return -1;
		/* step halving; a rise within rounding of the objective counts as no rise */
		double step = 1.0, nobj = obj;
		for (int half = 0; half < 60; half++) {
			for (int a = 0; a < m; a++)
				trial[a] = w[a] - step * g[a];
			nobj = objective(f, trial);
			if (nobj <= obj + 1e-13 * fabs(obj))
				break;
			step *= 0.5;
		}
		memcpy(w, trial, (size_t)m * sizeof *w);
		obj = nobj;
	}
	return 100;
}

/* Fisher-Yates: for i = n-1 .. 1 swap(i, below(i + 1)) */
static void shuffle(struct ft_rng *rng, size_t *idx, size_t n)
{
	for (size_t i = 0; i < n; i++)
		idx[i] = i;
	for (size_t i = n; i-- > 1;) {
		size_t j = (size_t)ft_rng_below(rng, i + 1);
		size_t t = idx[i];
		idx[i] = idx[j];
		idx[j] = t;
	}
}

static size_t test_count(double share, size_t n)
{
	double t = floor(share * (double)n + 0.5);
	if (t < 1)
		t = 1;
	if (t > (double)(n - 1))
		t = (double)(n - 1);
	return (size_t)t;
}

enum ft_rc ft_drift_domain_classifier(const double *ref, size_t nref, const double *cur,
				      size_t ncur, int dim, const struct ft_drift_domain_opts *o,
				      struct ft_drift_domain *out, struct ft_err *err)
{
	if (dim < 1 || dim > MAX_DIM)
		return ft_failf(err, FT_EINVAL, NULL,
				"domain classifier: dim must be 1..%d (got %d)", MAX_DIM, dim);
	if (nref < 2 || ncur < 2 || nref + ncur > MAX_ROWS)
		return ft_failf(err, FT_EINVAL, NULL,
				"domain classifier: needs 2 or more rows per side and at most %d "
				"in all (got %zu and %zu; sample them)",
				MAX_ROWS, nref, ncur);
	if (!(o->test_share > 0 && o->test_share < 1) || !(o->c > 0) || !isfinite(o->c) ||
	    o->permutations < 1 || o->permutations > 1000000 || !(o->alpha > 0 && o->alpha < 1))
		return ft_failf(err, FT_EINVAL, NULL,
				"domain classifier: test_share and alpha must be in (0, 1), c > 0, "
				"permutations 1..1000000");
	enum ft_rc rc = ft_stats_check_sample(ref, nref * (size_t)dim,
					      "domain classifier: the reference", err);
	if (!rc)
		rc = ft_stats_check_sample(cur, ncur * (size_t)dim, "domain classifier: the window",
					   err);
	if (rc)
		return rc;

	size_t n = nref + ncur, m = (size_t)dim + 1;
	size_t *idx = malloc(n * sizeof *idx);
	const double **row = malloc(n * sizeof *row);
	double *y = malloc(n * sizeof *y), *score = malloc(n * sizeof *score);
	double *rank = malloc(n * sizeof *rank),
	       *perm = malloc((size_t)o->permutations * sizeof *perm);
	double *w = calloc(m, sizeof *w), *work = malloc((2 * m + m * m) * sizeof *work);
	size_t *pidx = malloc(n * sizeof *pidx);
	if (!idx || !row || !y || !score || !rank || !perm || !w || !work || !pidx) {
		rc = ft_failf(err, FT_ENOMEM, NULL, "domain classifier: out of memory");
		goto out;
	}
	struct ft_rng rng;
	ft_rng_seed(&rng, o->seed);
	/* split: train rows go to row[0..ntrain-1], test rows to row[ntrain..n-1]
	 * (reference test rows first, then window test rows) */
	size_t t0 = test_count(o->test_share, nref), t1 = test_count(o->test_share, ncur);
	size_t ntrain = n - t0 - t1, tr = 0, te = ntrain;
	shuffle(&rng, idx, nref);
	for (size_t i = 0; i < nref; i++) {
		size_t at = i < t0 ? te++ : tr++;
		row[at] = ref + idx[i] * (size_t)dim;
		y[at] = 0.0;
	}
	shuffle(&rng, idx, ncur);
	for (size_t i = 0; i < ncur; i++) {
		size_t at = i < t1 ? te++ : tr++;
		row[at] = cur + idx[i] * (size_t)dim;
		y[at] = 1.0;
	}
	struct fit f = { dim, (int)ntrain, row, y, 1.0 / (o->c * (double)ntrain) };
	int it = newton(&f, w, work);
	if (it < 0) {
		rc = ft_failf(err, FT_EINTERNAL, NULL, "domain classifier: the fit failed");
		goto out;
	}
	/* scores of the test rows, ranked once */
	size_t T = t0 + t1;
	for (size_t i = 0; i < T; i++) {
		const double *x = row[ntrain + i];
		double z = w[dim];
		for (int d = 0; d < dim; d++)
			z += w[d] * x[d];
		score[i] = z;
	}
	rc = ft_stats_midranks(score, T, rank, NULL, err);
	if (rc)
		goto out;
	double a = (double)t1, b = (double)t0, base = a * (a + 1.0) / 2.0;
	double r1 = 0;
	for (size_t i = t0; i < T; i++)
		r1 += rank[i];
	double auc = (r1 - base) / (a * b);
	/* permutations: choose which t1 test rows are "window" */
	int ge = 0;
	for (int p = 0; p < o->permutations; p++) {
		for (size_t i = 0; i < T; i++)
			pidx[i] = i;
		double s = 0;
		for (size_t i = 0; i < t1; i++) {
			size_t j = i + (size_t)ft_rng_below(&rng, T - i);
			size_t t = pidx[i];
			pidx[i] = pidx[j];
			pidx[j] = t;
			s += rank[pidx[i]];
		}
		perm[p] = (s - base) / (a * b);
		ge += perm[p] >= auc;
	}
	ft_stats_sort(perm, (size_t)o->permutations);
	memset(out, 0, sizeof *out);
	out->auc = auc;
	out->threshold = ft_stats_quantile(perm, (size_t)o->permutations, 1.0 - o->alpha);
	out->pvalue = (1.0 + ge) / (1.0 + o->permutations);
	out->n_train = (int)ntrain;
	out->n_test = (int)T;
	out->iterations = it;
	out->intercept = w[dim];
	for (int d = 0; d < dim && d < (int)FT_ARRAY_LEN(out->weights); d++)
		out->weights[d] = w[d];
out:
	free(idx);
	free(row);
	free(y);
	free(score);
	free(rank);
	free(perm);
	free(w);
	free(work);
	free(pidx);
	return rc;
}
