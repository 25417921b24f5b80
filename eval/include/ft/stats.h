/*
 * ft/stats.h - the statistics of A/B experiments and drift monitoring.
 *
 * Pure functions over arrays the caller owns: nothing here allocates what
 * it returns (results are plain structs filled in place), reads a clock,
 * or touches a file, the database or the network. The scheduler's leader
 * calls these on a period; ft-serve and the evaluation jobs call the text
 * metrics in ft/textmetrics.h. docs/evaluation.md gives every formula, the
 * choices made and which Python implementation each one is checked against
 * (tests/system/test_stats_peer.py); the sections below are in its order.
 *
 * Errors: actions return enum ft_rc and fill a caller's struct ft_err
 * (may be NULL); bad input (an arm out of range, an empty sample, a NaN)
 * is FT_EINVAL with a message naming the argument. Functions that return a
 * double return NaN where the value is undefined (no data), as documented.
 */
#ifndef FT_STATS_H
#define FT_STATS_H

#include "ft/err.h"
#include "ft/rng.h"

/* ------------------------------------------------------------------ */
/* Random numbers: the platform's one generator (ft/rng.h: xoshiro256**
 * seeded by four outputs of splitmix64(seed); below(n) Lemire's
 * multiply-shift with rejection; uniform (next >> 11) * 2^-53; normal
 * Box-Muller), written down there so that a Python test replays the same
 * draws the bootstrap, the train/test split and the permutations make
 * (tests/system/stats_peer.py). */

/* ------------------------------------------------------------------ */
/* Distributions and order statistics. */

double ft_stats_norm_cdf(double x);
double ft_stats_norm_sf(double x); /* 1 - cdf, accurate in the upper tail */
double ft_stats_norm_ppf(double p); /* inverse cdf; NaN outside (0, 1) */
/* Upper tail of the chi-square distribution: P(X >= x) with dof degrees. */
double ft_stats_chi2_sf(double x, double dof);
/* P(D_n >= d) of the one-sample two-sided Kolmogorov-Smirnov statistic:
 * scipy.stats.kstwo.sf(d, n), by the same choice of method per (n, d). */
double ft_stats_kolmogorov_sf(long n, double d);
/* Quantile q in [0, 1] of n >= 1 sorted values, numpy's default 'linear'
 * method (Hyndman-Fan type 7), computed the way numpy rounds. */
double ft_stats_quantile(const double *sorted, size_t n, double q);
void ft_stats_sort(double *v, size_t n); /* ascending; no NaN allowed */

/* Wilson score interval for k successes in n trials at confidence conf
 * (0.95: z = 1.959964): scipy.stats.binomtest(k, n).proportion_ci(conf,
 * method="wilson"). For feedback rates (thumbs up, resolved, escalated). */
enum ft_rc ft_stats_wilson(double k, double n, double conf, double *lo, double *hi,
			   struct ft_err *err);

/* ------------------------------------------------------------------ */
/* A/B experiments: pairwise judgments between arms 0..k-1.
 * An outcome is scored for arm a as 1 (a won), 0 (b won) or 1/2 (a tie or
 * "both bad", which FastChat's elo_analysis.py also counts as a tie). */
#define FT_AB_MAX_ARMS 16

enum ft_ab_outcome { FT_AB_WIN_A = 0, FT_AB_WIN_B, FT_AB_TIE, FT_AB_BOTH_BAD, FT_AB_OUTCOME_COUNT };

/* "a", "b", "tie", "both_bad": the names the API and the fixtures use. */
const char *ft_ab_outcome_name(enum ft_ab_outcome o);
bool ft_ab_outcome_parse(const char *name, enum ft_ab_outcome *out);

struct ft_ab_judgment {
	int a, b; /* arms, a != b */
	enum ft_ab_outcome outcome;
};

/* Sufficient statistics: score[i][j] = wins of i over j + ties / 2,
 * n[i][j] = n[j][i] = judgments between i and j. */
struct ft_ab_table {
	int k;
	double score[FT_AB_MAX_ARMS][FT_AB_MAX_ARMS];
	double n[FT_AB_MAX_ARMS][FT_AB_MAX_ARMS];
};

/* Fill t from judgments; every judgment is checked (arms in [0, k), a != b,
 * a known outcome) and the first bad one is named by its index. */
enum ft_rc ft_ab_table_build(struct ft_ab_table *t, int k, const struct ft_ab_judgment *j, size_t n,
			     struct ft_err *err);
/* The pairwise win matrix entry: score[i][j] / n[i][j]; NaN when i and j
 * were never compared. */
double ft_ab_table_win_frac(const struct ft_ab_table *t, int i, int j);
/* Arm i's win rate over all its judgments (ties half); NaN with none. */
double ft_ab_table_win_rate(const struct ft_ab_table *t, int i);

/* Bradley-Terry: P(i beats j) = 1 / (1 + exp(-(theta_i - theta_j))), the
 * maximum-likelihood fit of the table (FastChat's compute_mle_elo: an
 * unregularised logistic regression on the arm difference, ties as half a
 * win each way), by Newton's method. theta sums to zero; ratings are on the
 * Elo scale rating_i = init + scale / ln(base) * theta_i, then shifted so
 * that arm `anchor` has `anchor_rating` when anchor >= 0. The MLE exists
 * only when every arm can be reached from every other through "scored
 * against" edges (Zermelo; Ford 1957); otherwise the fit fails with
 * FT_EINVAL naming the arms that never won or tied against the rest. */
struct ft_ab_bt_opts {
	double scale; /* 400 */
	double base; /* 10 */
	double init; /* 1000 */
	int anchor; /* -1: ratings average to init */
	double anchor_rating;
};
#define FT_AB_BT_OPTS_DEFAULT                \
	{                                    \
		400.0, 10.0, 1000.0, -1, 0.0 \
	}

struct ft_ab_bt {
	int k;
	double theta[FT_AB_MAX_ARMS];
	double rating[FT_AB_MAX_ARMS];
	int iterations;
};

enum ft_rc ft_ab_bt_fit(const struct ft_ab_table *t, const struct ft_ab_bt_opts *o,
			struct ft_ab_bt *out, struct ft_err *err);
double ft_ab_bt_win_prob(const struct ft_ab_bt *bt, int i, int j);

/* The seeded bootstrap. Resampling scheme (replayed in Python):
 *   rng = ft_rng_seed(seed)
 *   for each of `rounds` rounds: draw n indices below(n) in order (the
 *     judgments, with replacement), build the table of those judgments,
 *     record each arm's win rate, and fit Bradley-Terry; a round whose MLE
 *     does not exist is counted in unbounded_rounds and adds no rating or
 *     win probability (its win rates still count)
 *   each interval: numpy-linear quantiles 0.025, 0.5, 0.975 of the values
 *     recorded (FastChat's bootstrap median and percentiles); `rounds` in
 *     the interval is how many values it is over (NaN bounds with none). */
struct ft_ab_interval {
	double lo, median, hi;
	int rounds;
};

struct ft_ab_bootstrap_opts {
	uint64_t seed;
	int rounds; /* 1..100000; FastChat uses 100-1000 */
	struct ft_ab_bt_opts bt;
};

struct ft_ab_bootstrap {
	int k, rounds, unbounded_rounds;
	struct ft_ab_interval rating[FT_AB_MAX_ARMS];
	struct ft_ab_interval win_rate[FT_AB_MAX_ARMS];
	struct ft_ab_interval win_prob[FT_AB_MAX_ARMS][FT_AB_MAX_ARMS]; /* BT P(i beats j) */
};

enum ft_rc ft_ab_bootstrap_run(int k, const struct ft_ab_judgment *j, size_t n,
			       const struct ft_ab_bootstrap_opts *o, struct ft_ab_bootstrap *out,
			       struct ft_err *err);

/* Judgments needed for a decision at a stated power: the fixed-horizon
 * size of a two-sided one-sample test of p = 1/2 at level alpha against the
 * observed share p (normal approximation):
 *   n = ((z_{1-alpha/2} * 1/2 + z_{power} * sqrt(p (1 - p))) / (p - 1/2))^2
 * `more` = max(0, ceil(n) - n_obs). When p = 1/2 (or 0 or 1) there is no
 * effect to power: total and more are +inf and reachable is false. */
struct ft_ab_needed {
	double total, more;
	bool reachable;
};

enum ft_rc ft_ab_judgments_needed(double p_obs, double n_obs, double alpha, double power,
				  struct ft_ab_needed *out, struct ft_err *err);

/* The decision rule: a mixture sequential probability ratio test (Robbins
 * 1970; Johari et al. 2017, "always valid p-values") of p = 1/2 for arm A
 * against arm B, with a Beta(a, a) mixture over p:
 *   Lambda_n = B(s + a, n - s + a) / B(a, a) * 2^n,   s = A's score (ties 1/2)
 * decide when Lambda_n >= 1 / alpha; the winner is the arm with share > 1/2.
 * Under no difference Lambda_n is a nonnegative supermartingale with mean
 * <= 1 whatever the tie rate, so by Ville's inequality the probability of
 * ever deciding, however often the leader looks, is at most alpha
 * (tests/sim/sim_ab.c measures it). For k > 2 arms compare each arm with
 * the control at alpha / (k - 1) (Bonferroni). */
struct ft_ab_msprt_opts {
	double alpha; /* 0.05 */
	double prior_a; /* 12: prior sd of p about 0.1 */
};
#define FT_AB_MSPRT_OPTS_DEFAULT \
	{                        \
		0.05, 12.0       \
	}

struct ft_ab_decision {
	double p_hat; /* s / n */
	double log_lambda, log_threshold; /* decided when log_lambda >= log_threshold */
	bool decided;
	int winner; /* 0 = A, 1 = B, -1 = none yet */
};

enum ft_rc ft_ab_msprt(double score_a, double n, const struct ft_ab_msprt_opts *o,
		       struct ft_ab_decision *out, struct ft_err *err);

/* ------------------------------------------------------------------ */
/* Drift: a reference sample against a window. Samples hold at most
 * FT_DRIFT_MAX_N values (the caller samples larger windows). */
#define FT_DRIFT_MAX_N 1000000
#define FT_DRIFT_MAX_BINS 100

/* Two-sample Kolmogorov-Smirnov: the statistic and the two-sided p-value
 * of scipy.stats.ks_2samp(x, y) with method="auto": exact when both
 * samples have at most 10000 values (Hodges' lattice-path counts), else
 * kstwo.sf(D, round(nx ny / (nx + ny))); exact is false when the
 * asymptotic p-value was used. */
struct ft_drift_ks {
	double statistic, pvalue;
	bool exact;
};

enum ft_rc ft_drift_ks_2samp(const double *x, size_t nx, const double *y, size_t ny,
			     struct ft_drift_ks *out, struct ft_err *err);

/* PSI binning: interior edges at the reference's quantiles k / n_bins
 * (numpy-linear), duplicates merged, the outer bins open; a value v falls
 * in bin #{edges <= v} (numpy.searchsorted(edges, v, "right")). */
struct ft_drift_bins {
	int n_bins;
	double edges[FT_DRIFT_MAX_BINS - 1]; /* n_bins - 1 of them */
	double ref_counts[FT_DRIFT_MAX_BINS];
};

enum ft_rc ft_drift_bins_fit(struct ft_drift_bins *b, const double *ref, size_t n, int n_bins,
			     struct ft_err *err);
void ft_drift_bins_count(const struct ft_drift_bins *b, const double *x, size_t n, double *counts);

/* PSI = sum (r_i - c_i) ln(r_i / c_i) over the shares of two count vectors;
 * a zero share becomes Evidently's epsilon (get_binned_data, feel_zeroes:
 * min nonzero share / 1e6 if that minimum is <= 1e-4, else 1e-4, per side).
 * NaN when either side has no counts. */
double ft_drift_psi(const double *ref_counts, const double *cur_counts, int k);

enum ft_drift_band { FT_DRIFT_STABLE, FT_DRIFT_MODERATE, FT_DRIFT_SIGNIFICANT };
/* < 0.1 stable, [0.1, 0.25) moderate, >= 0.25 significant. */
enum ft_drift_band ft_drift_psi_band(double psi);
const char *ft_drift_band_name(enum ft_drift_band b);

/* Jensen-Shannon distance (natural log) between two count vectors, each
 * normalised: scipy.spatial.distance.jensenshannon(p, q). NaN if empty. */
double ft_drift_js_distance(const double *p_counts, const double *q_counts, int k);

/* First Wasserstein distance between two samples:
 * scipy.stats.wasserstein_distance(x, y). */
enum ft_rc ft_drift_wasserstein(const double *x, size_t nx, const double *y, size_t ny, double *out,
				struct ft_err *err);

/* Chi-square test of homogeneity of two count vectors (a 2 x k table,
 * categories empty on both sides dropped, no continuity correction):
 * scipy.stats.chi2_contingency(table, correction=False). */
struct ft_drift_chi2 {
	double statistic, pvalue;
	int dof;
};

enum ft_rc ft_drift_chi2_test(const double *ref_counts, const double *cur_counts, int k,
			      struct ft_drift_chi2 *out, struct ft_err *err);

/* 1 - cos(mean of ref rows, mean of cur rows); rows are `dim` doubles. */
enum ft_rc ft_drift_cosine_centroids(const double *ref, size_t nref, const double *cur, size_t ncur,
				     int dim, double *out, struct ft_err *err);

/* Mann-Whitney: auc = U / (n0 n1) = P(pos > neg) + P(pos = neg) / 2 (the
 * ROC AUC of scoring `pos` above `neg`, midranks for ties) and the
 * two-sided asymptotic p-value with tie and continuity corrections:
 * scipy.stats.mannwhitneyu(pos, neg, method="asymptotic"). */
struct ft_drift_mw {
	double auc, pvalue;
};

enum ft_rc ft_drift_mann_whitney(const double *neg, size_t n0, const double *pos, size_t n1,
				 struct ft_drift_mw *out, struct ft_err *err);

/* Domain classifier: can a linear model tell window rows from reference
 * rows? Procedure (replayed in Python):
 *   rng = ft_rng_seed(seed)
 *   split: per class (reference first), Fisher-Yates shuffle of its row
 *     indices (for i = n-1 .. 1: swap(i, below(i + 1))); the first
 *     t = round(test_share * n) (clamped to 1..n-1) are test rows
 *   fit: L2 logistic regression on the train rows, intercept unpenalised,
 *     minimising mean log-loss + |w|^2 / (2 C n_train) (scikit-learn's
 *     LogisticRegression(C) objective), by Newton's method to |grad| < 1e-10
 *   auc: Mann-Whitney AUC of the test rows' scores (window = positive)
 *   permutations: the classifier fixed, B times choose which test rows are
 *     "window" (for i < t1: swap(i, i + below(T - i)) on 0..T-1, the first
 *     t1 positive); pvalue = (1 + #{perm auc >= auc}) / (B + 1) and
 *     threshold = numpy-linear quantile 1 - alpha of the B permutation AUCs.
 * Under no drift the test rows' labels are exchangeable given the fit, so
 * the permutation p-value is valid for any classifier. */
struct ft_drift_domain_opts {
	uint64_t seed;
	double test_share; /* 0.5 */
	double c; /* 1.0 */
	int permutations; /* 999 */
	double alpha; /* 0.001: the threshold's quantile is 1 - alpha */
};
#define FT_DRIFT_DOMAIN_OPTS_DEFAULT    \
	{                               \
		0, 0.5, 1.0, 999, 0.001 \
	}

struct ft_drift_domain {
	double auc, threshold, pvalue;
	int n_train, n_test;
	int iterations;
	double intercept;
	double weights[256]; /* the first min(dim, 256) weights */
};

enum ft_rc ft_drift_domain_classifier(const double *ref, size_t nref, const double *cur,
				      size_t ncur, int dim, const struct ft_drift_domain_opts *o,
				      struct ft_drift_domain *out, struct ft_err *err);

/* Alert thresholds per deployment, one table (drift_rule.c) gives each key
 * its default and range. An alert needs both a large effect and a small
 * p-value, so that big windows do not alert on negligible shifts and small
 * ones not on noise:
 *   numeric (token lengths)  psi >= psi_min and ks p < ks_p_max
 *   categorical (languages)  js >= js_min and chi-square p < chi2_p_max
 *   embeddings               auc >= auc_min and permutation p <= perm_alpha
 *   rates (refusals, ...)    |window rate - reference rate| >= rate_diff_min
 *                            and the 2 x 2 chi-square p < chi2_p_max */
struct ft_drift_thresholds {
	double psi_min; /* 0.25 */
	double ks_p_max; /* 0.001 */
	double js_min; /* 0.1 */
	double chi2_p_max; /* 0.001 */
	double auc_min; /* 0.55 */
	double perm_alpha; /* 0.001 */
	double rate_diff_min; /* 0.05: rates (refusals, cut by max_tokens) */
};

void ft_drift_thresholds_default(struct ft_drift_thresholds *t);
/* Set one threshold by key ("psi_min", ...); the error names the key and range. */
enum ft_rc ft_drift_thresholds_set(struct ft_drift_thresholds *t, const char *key, double value,
				   struct ft_err *err);
/* The keys, in table order, for listings; NULL past the end. */
const char *ft_drift_threshold_key(int i);
/* The value of key i (table order) in t; NaN past the end. */
double ft_drift_threshold_value(const struct ft_drift_thresholds *t, int i);

struct ft_drift_numeric {
	struct ft_drift_ks ks;
	double psi, wasserstein, js;
	enum ft_drift_band band;
	bool alert;
};

enum ft_rc ft_drift_numeric_check(const struct ft_drift_bins *bins, const double *ref, size_t nref,
				  const double *cur, size_t ncur,
				  const struct ft_drift_thresholds *t, struct ft_drift_numeric *out,
				  struct ft_err *err);

struct ft_drift_categorical {
	struct ft_drift_chi2 chi2;
	double js, psi;
	bool alert;
};

enum ft_rc ft_drift_categorical_check(const double *ref_counts, const double *cur_counts, int k,
				      const struct ft_drift_thresholds *t,
				      struct ft_drift_categorical *out, struct ft_err *err);

/* A rate (share of refusals, of answers cut by max_tokens): k of n in the
 * reference against k of n in the window, by the chi-square test of
 * homogeneity of the 2 x 2 table {k, n - k} (scipy.stats.chi2_contingency,
 * correction=False; p = 1 when neither side has any or both have only). */
struct ft_drift_rate {
	double ref_rate, cur_rate, diff; /* diff = cur - ref */
	struct ft_drift_chi2 chi2;
	bool alert;
};

enum ft_rc ft_drift_rate_check(double ref_k, double ref_n, double cur_k, double cur_n,
			       const struct ft_drift_thresholds *t, struct ft_drift_rate *out,
			       struct ft_err *err);

struct ft_drift_embedding {
	struct ft_drift_domain domain;
	double cosine;
	bool alert;
};

enum ft_rc ft_drift_embedding_check(const double *ref, size_t nref, const double *cur, size_t ncur,
				    int dim, uint64_t seed, const struct ft_drift_thresholds *t,
				    struct ft_drift_embedding *out, struct ft_err *err);

#endif
