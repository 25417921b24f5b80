/*
 * decide.c - when an experiment may stop: the judgments a fixed-horizon
 * test would need, and the sequential decision rule (formulas in
 * ft/stats.h and docs/evaluation.md).
 *
 * The mixture SPRT in logs:
 *   log Lambda_n = log B(s + a, n - s + a) - log B(a, a) + n log 2
 * Under H0 (A and B equally good: P(A wins) = P(B wins) = w, ties 1 - 2w)
 * one judgment multiplies the likelihood ratio of a fixed p by
 *   w (p / (1/2)) + w ((1 - p) / (1/2)) + (1 - 2w) sqrt(p (1 - p)) / (1/2)
 *   = 2w + (1 - 2w) 2 sqrt(p (1 - p)) <= 1
 * in expectation (a tie scores 1/2 each way), so every Lambda_n(p), and
 * their Beta mixture, is a nonnegative supermartingale starting at 1 and
 * P(sup_n Lambda_n >= 1/alpha) <= alpha (Ville 1939).
 */
#include "stats_int.h"

enum ft_rc ft_ab_judgments_needed(double p_obs, double n_obs, double alpha, double power,
				  struct ft_ab_needed *out, struct ft_err *err)
{
	if (!(p_obs >= 0 && p_obs <= 1))
		return ft_failf(err, FT_EINVAL, NULL,
				"judgments needed: the observed share must be in [0, 1] (got %g)",
				p_obs);
	if (!(n_obs >= 0) || !isfinite(n_obs))
		return ft_failf(err, FT_EINVAL, NULL,
				"judgments needed: the judgments so far must be >= 0 (got %g)",
				n_obs);
	if (!(alpha > 0 && alpha < 1) || !(power > 0 && power < 1))
		return ft_failf(err, FT_EINVAL, NULL,
				"judgments needed: alpha and power must be in (0, 1) (got %g, %g)",
				alpha, power);
	if (p_obs == 0.5 || p_obs == 0 || p_obs == 1) {
		*out = (struct ft_ab_needed){ INFINITY, INFINITY, false };
		return FT_OK;
	}
	double za = ft_stats_norm_ppf(1.0 - alpha / 2.0), zb = ft_stats_norm_ppf(power);
	double r = (za * 0.5 + zb * sqrt(p_obs * (1.0 - p_obs))) / (p_obs - 0.5);
	double total = r * r;
	double more = ceil(total) - n_obs;
	*out = (struct ft_ab_needed){ total, more > 0 ? more : 0, true };
	return FT_OK;
}

enum ft_rc ft_ab_msprt(double score_a, double n, const struct ft_ab_msprt_opts *o,
		       struct ft_ab_decision *out, struct ft_err *err)
{
	if (!(n >= 0) || !isfinite(n) || !(score_a >= 0 && score_a <= n))
		return ft_failf(err, FT_EINVAL, NULL,
				"decision: need 0 <= score <= judgments (got %g of %g)", score_a,
				n);
	if (!(o->alpha > 0 && o->alpha < 1) || !(o->prior_a > 0) || !isfinite(o->prior_a))
		return ft_failf(err, FT_EINVAL, NULL,
				"decision: alpha must be in (0, 1) and the prior's a > 0");
	double a = o->prior_a;
	out->p_hat = n > 0 ? score_a / n : NAN;
	out->log_lambda = ft_lbeta(score_a + a, n - score_a + a) - ft_lbeta(a, a) + n * M_LN2;
	out->log_threshold = -log(o->alpha);
	out->decided = out->log_lambda >= out->log_threshold;
	out->winner = !out->decided ? -1 : score_a * 2 > n ? 0 : score_a * 2 < n ? 1 : -1;
	if (out->winner < 0)
		out->decided = false; /* Lambda is smallest at s = n/2: cannot happen, kept safe */
	return FT_OK;
}
