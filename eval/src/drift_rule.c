/*
 * drift_rule.c - when a window's drift is an alert: the thresholds table
 * (one source for their names, defaults and ranges: the API's per-
 * deployment settings validate against it) and the three checks.
 *
 * Why both an effect size and a p-value: a p-value alone alerts on
 * negligible shifts once windows are large (10000 prompts make a 2% length
 * change "significant"), an effect size alone on noise when windows are
 * small. The p-value cut-offs are per window and per metric: with three
 * metrics and 24 hourly windows a day, 0.001 each gives about one false
 * alarm in two weeks from the tests alone, and the effect-size floor makes
 * that rarer still (tests/sim/sim_drift.c prints the measured rate).
 */
#include "stats_int.h"

#include <math.h>
#include <stddef.h>

static const struct threshold {
	const char *key;
	size_t off;
	double def, lo, hi;
} thresholds[] = {
	{ "psi_min", offsetof(struct ft_drift_thresholds, psi_min), 0.25, 0.0, 10.0 },
	{ "ks_p_max", offsetof(struct ft_drift_thresholds, ks_p_max), 0.001, 1e-12, 1.0 },
	{ "js_min", offsetof(struct ft_drift_thresholds, js_min), 0.1, 0.0, 1.0 },
	{ "chi2_p_max", offsetof(struct ft_drift_thresholds, chi2_p_max), 0.001, 1e-12, 1.0 },
	{ "auc_min", offsetof(struct ft_drift_thresholds, auc_min), 0.55, 0.5, 1.0 },
	{ "perm_alpha", offsetof(struct ft_drift_thresholds, perm_alpha), 0.001, 1e-5, 0.5 },
	{ "rate_diff_min", offsetof(struct ft_drift_thresholds, rate_diff_min), 0.05, 0.001, 1.0 },
};

static double *field(struct ft_drift_thresholds *t, const struct threshold *d)
{
	return (double *)(void *)((char *)t + d->off);
}

void ft_drift_thresholds_default(struct ft_drift_thresholds *t)
{
	for (size_t i = 0; i < FT_ARRAY_LEN(thresholds); i++)
		*field(t, &thresholds[i]) = thresholds[i].def;
}

enum ft_rc ft_drift_thresholds_set(struct ft_drift_thresholds *t, const char *key, double value,
				   struct ft_err *err)
{
	for (size_t i = 0; i < FT_ARRAY_LEN(thresholds); i++) {
		const struct threshold *d = &thresholds[i];
		if (strcmp(key, d->key) != 0)
			continue;
		if (!(value >= d->lo && value <= d->hi))
			return ft_failf(err, FT_EINVAL, NULL,
					"drift threshold \"%s\" must be between %g and %g (got %g)",
					key, d->lo, d->hi, value);
		*field(t, d) = value;
		return FT_OK;
	}
	char known[256];
	size_t off = 0;
	for (size_t i = 0; i < FT_ARRAY_LEN(thresholds); i++)
		off += (size_t)snprintf(known + off, sizeof(known) - off, "%s%s", i ? ", " : "",
					thresholds[i].key);
	ft_failf(err, FT_EINVAL, NULL, "unknown drift threshold \"%s\"", key);
	ft_err_hintf(err, "known: %s", known);
	return FT_EINVAL;
}

double ft_drift_threshold_value(const struct ft_drift_thresholds *t, int i)
{
	if (i < 0 || (size_t)i >= FT_ARRAY_LEN(thresholds))
		return NAN;
	double v;
	memcpy(&v, (const char *)t + thresholds[i].off, sizeof(v));
	return v;
}

const char *ft_drift_threshold_key(int i)
{
	return i >= 0 && (size_t)i < FT_ARRAY_LEN(thresholds) ? thresholds[i].key : NULL;
}

enum ft_rc ft_drift_numeric_check(const struct ft_drift_bins *bins, const double *ref, size_t nref,
				  const double *cur, size_t ncur,
				  const struct ft_drift_thresholds *t, struct ft_drift_numeric *out,
				  struct ft_err *err)
{
	enum ft_rc rc = ft_drift_ks_2samp(ref, nref, cur, ncur, &out->ks, err);
	if (!rc)
		rc = ft_drift_wasserstein(ref, nref, cur, ncur, &out->wasserstein, err);
	if (rc)
		return rc;
	double counts[FT_DRIFT_MAX_BINS];
	ft_drift_bins_count(bins, cur, ncur, counts);
	out->psi = ft_drift_psi(bins->ref_counts, counts, bins->n_bins);
	out->js = ft_drift_js_distance(bins->ref_counts, counts, bins->n_bins);
	out->band = ft_drift_psi_band(out->psi);
	out->alert = out->psi >= t->psi_min && out->ks.pvalue < t->ks_p_max;
	return FT_OK;
}

enum ft_rc ft_drift_categorical_check(const double *ref_counts, const double *cur_counts, int k,
				      const struct ft_drift_thresholds *t,
				      struct ft_drift_categorical *out, struct ft_err *err)
{
	enum ft_rc rc = ft_drift_chi2_test(ref_counts, cur_counts, k, &out->chi2, err);
	if (rc)
		return rc;
	out->js = ft_drift_js_distance(ref_counts, cur_counts, k);
	out->psi = k <= FT_DRIFT_MAX_BINS ? ft_drift_psi(ref_counts, cur_counts, k) : NAN;
	out->alert = out->js >= t->js_min && out->chi2.pvalue < t->chi2_p_max;
	return FT_OK;
}

enum ft_rc ft_drift_rate_check(double ref_k, double ref_n, double cur_k, double cur_n,
			       const struct ft_drift_thresholds *t, struct ft_drift_rate *out,
			       struct ft_err *err)
{
	if (!(ref_n > 0) || !(cur_n > 0) || !(ref_k >= 0 && ref_k <= ref_n) ||
	    !(cur_k >= 0 && cur_k <= cur_n))
		return ft_failf(
			err, FT_EINVAL, NULL,
			"rate: need 0 <= k <= n and n > 0 on both sides (got %g of %g, %g of "
			"%g)",
			ref_k, ref_n, cur_k, cur_n);
	const double r[2] = { ref_k, ref_n - ref_k }, c[2] = { cur_k, cur_n - cur_k };
	enum ft_rc rc = ft_drift_chi2_test(r, c, 2, &out->chi2, err);
	if (rc)
		return rc;
	out->ref_rate = ref_k / ref_n;
	out->cur_rate = cur_k / cur_n;
	out->diff = out->cur_rate - out->ref_rate;
	out->alert = fabs(out->diff) >= t->rate_diff_min && out->chi2.pvalue < t->chi2_p_max;
	return FT_OK;
}

enum ft_rc ft_drift_embedding_check(const double *ref, size_t nref, const double *cur, size_t ncur,
				    int dim, uint64_t seed, const struct ft_drift_thresholds *t,
				    struct ft_drift_embedding *out, struct ft_err *err)
{
	struct ft_drift_domain_opts o = FT_DRIFT_DOMAIN_OPTS_DEFAULT;
	o.seed = seed;
	o.alpha = t->perm_alpha;
	/* enough permutations that p <= perm_alpha is reached with room to spare:
	 * p >= 1 / (B + 1), so B + 1 >= 2 / perm_alpha (1999 at the default) */
	double need = ceil(2.0 / t->perm_alpha) - 1.0;
	if (need > o.permutations)
		o.permutations = (int)need;
	enum ft_rc rc =
		ft_drift_domain_classifier(ref, nref, cur, ncur, dim, &o, &out->domain, err);
	if (!rc)
		rc = ft_drift_cosine_centroids(ref, nref, cur, ncur, dim, &out->cosine, err);
	if (rc)
		return rc;
	out->alert = out->domain.auc >= t->auc_min && out->domain.pvalue <= t->perm_alpha;
	return FT_OK;
}
