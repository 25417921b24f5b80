/*
 * bt.c - pairwise judgments: the table of scores, the win matrix, win
 * rates, and the Bradley-Terry fit.
 *
 * Model: P(i beats j) = s(theta_i - theta_j), s the logistic function.
 * With S_ij = score of i against j (wins + ties/2) and N_ij the judgments
 * between them, the log-likelihood of the table is
 *   l(theta) = sum_{i != j} S_ij log s(theta_i - theta_j)
 * (a tie adds log s(d) / 2 + log s(-d) / 2: FastChat's compute_mle_elo,
 * which doubles wins and adds each tie once in both directions, has the
 * same maximiser). Its gradient and Hessian:
 *   g_i   = sum_j (S_ij - N_ij p_ij),             p_ij = s(theta_i - theta_j)
 *   H_ii  = -sum_j N_ij p_ij (1 - p_ij),  H_ij = N_ij p_ij (1 - p_ij).
 * l is unchanged by adding a constant to every theta, so the last arm is
 * held at 0 and Newton's method runs on the other k - 1 (where -H is
 * positive definite when the MLE exists), halving a step until l rises;
 * then theta is centred to sum 0, which is also where FastChat's L-BFGS
 * (started at 0, moving only along gradients, which sum to 0) ends.
 * Existence: the MLE is finite iff the directed graph "i scored against j"
 * (S_ij > 0) is strongly connected (Zermelo 1929; Ford 1957).
 */
#include "stats_int.h"

static const char *const outcome_names[FT_AB_OUTCOME_COUNT] = {
	[FT_AB_WIN_A] = "a",
	[FT_AB_WIN_B] = "b",
	[FT_AB_TIE] = "tie",
	[FT_AB_BOTH_BAD] = "both_bad",
};

/* score of arm a for each outcome (arm b gets 1 - it) */
static const double outcome_score_a[FT_AB_OUTCOME_COUNT] = {
	[FT_AB_WIN_A] = 1.0,
	[FT_AB_WIN_B] = 0.0,
	[FT_AB_TIE] = 0.5,
	[FT_AB_BOTH_BAD] = 0.5,
};

const char *ft_ab_outcome_name(enum ft_ab_outcome o)
{
	return (unsigned)o < FT_AB_OUTCOME_COUNT ? outcome_names[o] : "unknown";
}

bool ft_ab_outcome_parse(const char *name, enum ft_ab_outcome *out)
{
	for (int i = 0; i < FT_AB_OUTCOME_COUNT; i++)
		if (name && strcmp(name, outcome_names[i]) == 0) {
			*out = (enum ft_ab_outcome)i;
			return true;
		}
	return false;
}

enum ft_rc ft_ab_table_build(struct ft_ab_table *t, int k, const struct ft_ab_judgment *j, size_t n,
			     struct ft_err *err)
{
	if (k < 2 || k > FT_AB_MAX_ARMS)
		return ft_failf(err, FT_EINVAL, NULL, "an experiment needs 2 to %d arms (got %d)",
				FT_AB_MAX_ARMS, k);
	memset(t, 0, sizeof *t);
	t->k = k;
	for (size_t i = 0; i < n; i++) {
		const struct ft_ab_judgment *x = &j[i];
		if (x->a < 0 || x->a >= k || x->b < 0 || x->b >= k)
			return ft_failf(
				err, FT_EINVAL, NULL,
				"judgment %zu: arms must be between 0 and %d (got %d and %d)", i,
				k - 1, x->a, x->b);
		if (x->a == x->b)
			return ft_failf(err, FT_EINVAL, NULL,
					"judgment %zu compares arm %d with itself", i, x->a);
		if ((unsigned)x->outcome >= FT_AB_OUTCOME_COUNT)
			return ft_failf(err, FT_EINVAL, NULL, "judgment %zu: unknown outcome %d", i,
					(int)x->outcome);
		ft_ab_table_add(t, x);
	}
	return FT_OK;
}

void ft_ab_table_add(struct ft_ab_table *t, const struct ft_ab_judgment *x)
{
	double s = outcome_score_a[x->outcome];
	t->score[x->a][x->b] += s;
	t->score[x->b][x->a] += 1.0 - s;
	t->n[x->a][x->b] += 1.0;
	t->n[x->b][x->a] += 1.0;
}

double ft_ab_table_win_frac(const struct ft_ab_table *t, int i, int j)
{
	return t->n[i][j] > 0 ? t->score[i][j] / t->n[i][j] : NAN;
}

double ft_ab_table_win_rate(const struct ft_ab_table *t, int i)
{
	double s = 0, n = 0;
	for (int j = 0; j < t->k; j++) {
		s += t->score[i][j];
		n += t->n[i][j];
	}
	return n > 0 ? s / n : NAN;
}

bool ft_ab_bt_exists(const struct ft_ab_table *t, char *msg, size_t msgsz)
{
	int k = t->k;
	bool reach[FT_AB_MAX_ARMS][FT_AB_MAX_ARMS];
	for (int i = 0; i < k; i++)
		for (int j = 0; j < k; j++)
			reach[i][j] = i == j || t->score[i][j] > 0;
	for (int m = 0; m < k; m++) /* Warshall */
		for (int i = 0; i < k; i++)
			for (int j = 0; j < k; j++)
				reach[i][j] = reach[i][j] || (reach[i][m] && reach[m][j]);
	for (int i = 0; i < k; i++) {
		double n = 0;
		for (int j = 0; j < k; j++)
			n += t->n[i][j];
		if (n == 0) {
			snprintf(msg, msgsz, "arm %d has no judgments", i);
			return false;
		}
	}
	for (int i = 0; i < k; i++)
		for (int j = 0; j < k; j++)
			if (!reach[i][j]) {
				/* the arms reachable from i never scored against the rest */
				size_t off = (size_t)snprintf(msg, msgsz, "arms {");
				bool first = true;
				for (int x = 0; x < k && off < msgsz; x++)
					if (reach[i][x]) {
						off += (size_t)snprintf(msg + off, msgsz - off,
									"%s%d", first ? "" : ", ",
									x);
						first = false;
					}
				if (off < msgsz)
					snprintf(msg + off, msgsz - off,
						 "} never won or tied against the other arms");
				return false;
			}
	return true;
}

static double loglik(const struct ft_ab_table *t, const double *th)
{
	double l = 0;
	for (int i = 0; i < t->k; i++)
		for (int j = 0; j < t->k; j++)
			if (t->score[i][j] > 0) {
				double d = th[i] - th[j];
				/* log s(d) = -log(1 + e^-d), stable for both signs */
				l -= t->score[i][j] * (d > 0 ? log1p(exp(-d)) : -d + log1p(exp(d)));
			}
	return l;
}

static double logistic(double d)
{
	return d >= 0 ? 1.0 / (1.0 + exp(-d)) : exp(d) / (1.0 + exp(d));
}

enum ft_rc ft_ab_bt_fit(const struct ft_ab_table *t, const struct ft_ab_bt_opts *o,
			struct ft_ab_bt *out, struct ft_err *err)
{
	int k = t->k, m = k - 1;
	if (k < 2 || k > FT_AB_MAX_ARMS)
		return ft_failf(err, FT_EINVAL, NULL, "bradley-terry: 2 to %d arms (got %d)",
				FT_AB_MAX_ARMS, k);
	if (!(o->scale > 0) || !(o->base > 1) || !isfinite(o->init) || o->anchor >= k ||
	    !isfinite(o->anchor_rating))
		return ft_failf(err, FT_EINVAL, NULL,
				"bradley-terry: scale must be > 0, base > 1, the anchor an arm");
	char why[256];
	if (!ft_ab_bt_exists(t, why, sizeof why))
		return ft_failf(
			err, FT_EINVAL, "ratings_unbounded",
			"the bradley-terry ratings are unbounded: %s (more judgments needed)", why);
	double th[FT_AB_MAX_ARMS] = { 0 }, ntot = 0;
	for (int i = 0; i < k; i++)
		for (int j = 0; j < k; j++)
			ntot += t->n[i][j];
	double l = loglik(t, th);
	int it;
	for (it = 0; it < 100; it++) {
		double g[FT_AB_MAX_ARMS] = { 0 }, h[FT_AB_MAX_ARMS * FT_AB_MAX_ARMS] = { 0 };
		for (int i = 0; i < k; i++)
			for (int j = 0; j < k; j++) {
				if (i == j || t->n[i][j] == 0)
					continue;
				double p = logistic(th[i] - th[j]);
				g[i] += t->score[i][j] - t->n[i][j] * p;
				double w = t->n[i][j] * p * (1.0 - p);
				if (i < m && j < m)
					h[i * m + j] -= w; /* -H, off-diagonal */
				if (i < m)
					h[i * m + i] += w;
			}
		double gmax = 0;
		for (int i = 0; i < m; i++)
			gmax = fmax(gmax, fabs(g[i]));
		if (gmax < 1e-13 * ntot)
			break;
		/* Newton step: (-H) delta = g on the free arms */
		if (!ft_stats_cholesky_solve(h, g, m))
			return ft_failf(err, FT_EINTERNAL, NULL,
					"bradley-terry: the Hessian is singular");
		double step = 1.0, nl = l, trial[FT_AB_MAX_ARMS] = { 0 };
		for (int half = 0; half < 60; half++) {
			for (int i = 0; i < m; i++)
				trial[i] = th[i] + step * g[i];
			nl = loglik(t, trial);
			if (nl >= l - 1e-14 * fabs(l))
				break;
			step *= 0.5;
		}
		double dmax = 0;
		for (int i = 0; i < m; i++) {
			dmax = fmax(dmax, fabs(trial[i] - th[i]));
			th[i] = trial[i];
		}
		l = nl;
		if (dmax < 1e-15)
			break;
	}
	double mean = 0;
	for (int i = 0; i < k; i++)
		mean += th[i];
	mean /= k;
	memset(out, 0, sizeof *out);
	out->k = k;
	out->iterations = it;
	double f = o->scale / log(o->base);
	for (int i = 0; i < k; i++) {
		out->theta[i] = th[i] - mean;
		out->rating[i] = o->init + f * out->theta[i];
	}
	if (o->anchor >= 0) {
		double shift = o->anchor_rating - out->rating[o->anchor];
		for (int i = 0; i < k; i++)
			out->rating[i] += shift;
	}
	return FT_OK;
}

double ft_ab_bt_win_prob(const struct ft_ab_bt *bt, int i, int j)
{
	return logistic(bt->theta[i] - bt->theta[j]);
}
