/*
 * sim_ab.c - A/B statistics against a known truth (issue 17).
 *
 * Prints one "key value  (details)" line per measurement; never times
 * anything. tests/system/test_stats_sim.py runs it and asserts the bounds.
 *
 *   coverage   200 seeded experiments of 300 judgments between arms A and B
 *              with true P(A beats B) = 0.6 (no ties; then 0.5 / 0.2 / 0.3
 *              win / tie / loss, whose score is also 0.6; then an A/A test
 *              at 0.5): how often the bootstrap's 95% intervals (1000
 *              rounds) contain the truth, for A's win rate, the fitted
 *              P(A beats B) and A's rating (truth 1000 + 200 log10(1.5)
 *              with ratings centred on 1000).
 *   decision   2000 A/A experiments (20% ties) looked at after every
 *              judgment up to 1000: the mixture SPRT's false-positive rate
 *              (bound: alpha = 0.05), and for contrast a fixed-level z-test
 *              peeked at every 10 judgments; then 500 experiments at 0.6:
 *              how many the rule decides by 1000 judgments, and for A.
 *   power      2000 fixed-horizon tests at 0.6 with the size
 *              ft_ab_judgments_needed gives for power 0.8: the rejection
 *              rate should be about 0.8.
 */
#include "ft/stats.h"

#include <math.h>

static struct ft_rng rng;

static enum ft_ab_outcome draw(double p_a, double p_tie)
{
	double u = ft_rng_uniform(&rng);
	return u < p_a ? FT_AB_WIN_A : u < p_a + p_tie ? FT_AB_TIE : FT_AB_WIN_B;
}

static bool covers(const struct ft_ab_interval *iv, double truth)
{
	return iv->lo <= truth && truth <= iv->hi;
}

static int coverage(const char *name, double p_a, double p_tie, double truth, uint64_t seed)
{
	enum { RUNS = 200, N = 200, ROUNDS = 500 };
	static struct ft_ab_judgment j[N];
	static struct ft_ab_bootstrap b;
	double rating_truth = 1000.0 + 200.0 * log10(truth / (1.0 - truth));
	int c_rate = 0, c_prob = 0, c_rating = 0, unbounded = 0;
	ft_rng_seed(&rng, seed);
	for (int r = 0; r < RUNS; r++) {
		for (int i = 0; i < N; i++) {
			/* alternate sides so that arm order in a judgment carries no signal */
			enum ft_ab_outcome o = draw(p_a, p_tie);
			bool swap = i % 2;
			j[i].a = swap ? 1 : 0;
			j[i].b = swap ? 0 : 1;
			j[i].outcome = !swap		  ? o
				       : o == FT_AB_WIN_A ? FT_AB_WIN_B
				       : o == FT_AB_WIN_B ? FT_AB_WIN_A
							  : o;
		}
		struct ft_ab_bootstrap_opts o = { seed * 1000 + (uint64_t)r, ROUNDS,
						  FT_AB_BT_OPTS_DEFAULT };
		struct ft_err err = { 0 };
		if (ft_ab_bootstrap_run(2, j, N, &o, &b, &err)) {
			fprintf(stderr, "sim_ab: %s\n", err.msg);
			return 1;
		}
		c_rate += covers(&b.win_rate[0], truth);
		c_prob += covers(&b.win_prob[0][1], truth);
		c_rating += covers(&b.rating[0], rating_truth);
		unbounded += b.unbounded_rounds;
	}
	printf("ab.coverage.%s.win_rate %.4f  (%d/%d runs; truth %.2f; %d judgments, %d rounds)\n",
	       name, (double)c_rate / RUNS, c_rate, RUNS, truth, N, ROUNDS);
	printf("ab.coverage.%s.win_prob %.4f  (%d/%d runs)\n", name, (double)c_prob / RUNS, c_prob,
	       RUNS);
	printf("ab.coverage.%s.rating %.4f  (%d/%d runs; truth %.2f)\n", name,
	       (double)c_rating / RUNS, c_rating, RUNS, rating_truth);
	printf("ab.coverage.%s.unbounded_rounds %d\n", name, unbounded);
	return 0;
}

/* one sequential experiment: returns the judgment count at the decision
 * (0 if none by nmax); *winner = 0 for A. With peek_z, the rule is instead
 * |z| >= 1.96 at every 10th judgment. */
static int sequential(double p_a, double p_tie, int nmax, bool peek_z, int *winner)
{
	struct ft_ab_msprt_opts mo = FT_AB_MSPRT_OPTS_DEFAULT;
	double s = 0;
	for (int n = 1; n <= nmax; n++) {
		enum ft_ab_outcome o = draw(p_a, p_tie);
		s += o == FT_AB_WIN_A ? 1.0 : o == FT_AB_TIE ? 0.5 : 0.0;
		if (peek_z) {
			if (n % 10)
				continue;
			double z = (s - 0.5 * n) / (0.5 * sqrt((double)n));
			if (fabs(z) >= 1.959963984540054) {
				*winner = z > 0 ? 0 : 1;
				return n;
			}
			continue;
		}
		struct ft_ab_decision d;
		if (ft_ab_msprt(s, n, &mo, &d, NULL))
			return -1;
		if (d.decided) {
			*winner = d.winner;
			return n;
		}
	}
	*winner = -1;
	return 0;
}

static void decision(void)
{
	enum { RUNS = 1000, NMAX = 1000, POWER_RUNS = 300 };
	int fp = 0, fp_z = 0, w;
	ft_rng_seed(&rng, 424242);
	for (int r = 0; r < RUNS; r++)
		fp += sequential(0.4, 0.2, NMAX, false, &w) > 0;
	for (int r = 0; r < RUNS; r++)
		fp_z += sequential(0.4, 0.2, NMAX, true, &w) > 0;
	printf("ab.decision.fpr %.4f  (%d/%d A/A runs decided; alpha 0.05; looked after every "
	       "judgment up to %d)\n",
	       (double)fp / RUNS, fp, RUNS, NMAX);
	printf("ab.decision.fpr_peeking_z %.4f  (%d/%d: a fixed 5%% z-test looked at every 10 "
	       "judgments)\n",
	       (double)fp_z / RUNS, fp_z, RUNS);
	int decided = 0, for_a = 0;
	double nsum = 0;
	for (int r = 0; r < POWER_RUNS; r++) {
		int n = sequential(0.6, 0.0, NMAX, false, &w);
		if (n > 0) {
			decided++;
			for_a += w == 0;
			nsum += n;
		}
	}
	printf("ab.decision.power_0.6 %.4f  (%d/%d decided by %d judgments, mean %.0f)\n",
	       (double)decided / POWER_RUNS, decided, POWER_RUNS, NMAX,
	       decided ? nsum / decided : 0);
	printf("ab.decision.right_winner_0.6 %.4f  (%d/%d)\n",
	       decided ? (double)for_a / decided : 0.0, for_a, decided);
}

static void power(void)
{
	enum { RUNS = 1000 };
	struct ft_ab_needed need;
	if (ft_ab_judgments_needed(0.6, 0, 0.05, 0.8, &need, NULL))
		return;
	int n = (int)ceil(need.total), rejected = 0;
	ft_rng_seed(&rng, 777);
	for (int r = 0; r < RUNS; r++) {
		double s = 0;
		for (int i = 0; i < n; i++)
			s += draw(0.6, 0.0) == FT_AB_WIN_A;
		double z = (s - 0.5 * n) / (0.5 * sqrt((double)n));
		rejected += fabs(z) >= 1.959963984540054;
	}
	printf("ab.needed.n_0.6 %d  (judgments for power 0.8 at alpha 0.05)\n", n);
	printf("ab.needed.power %.4f  (%d/%d fixed-horizon tests at that size rejected)\n",
	       (double)rejected / RUNS, rejected, RUNS);
}

int main(void)
{
	if (coverage("p60", 0.6, 0.0, 0.6, 1) || coverage("p60_ties", 0.5, 0.2, 0.6, 2) ||
	    coverage("p50", 0.5, 0.0, 0.5, 3))
		return 1;
	decision();
	power();
	return 0;
}
