/*
 * bootstrap.c - seeded bootstrap intervals for an experiment: each arm's
 * Bradley-Terry rating, its win rate, and the fitted P(i beats j).
 *
 * The resampling scheme is the contract with the Python replay
 * (tests/system/stats_peer.py) and is stated in ft/stats.h: one generator
 * seeded once, rounds in order, n draws of below(n) per round. Values are
 * kept per round and sorted at the end (rounds x (2k + k^2) doubles, at
 * most 100000 rounds).
 */
#include "stats_int.h"

#define MAX_ROUNDS 100000

static void interval_of(double *v, int n, struct ft_ab_interval *out)
{
	out->rounds = n;
	if (n == 0) {
		out->lo = out->median = out->hi = NAN;
		return;
	}
	ft_stats_sort(v, (size_t)n);
	out->lo = ft_stats_quantile(v, (size_t)n, 0.025);
	out->median = ft_stats_quantile(v, (size_t)n, 0.5);
	out->hi = ft_stats_quantile(v, (size_t)n, 0.975);
}

enum ft_rc ft_ab_bootstrap_run(int k, const struct ft_ab_judgment *j, size_t n,
			       const struct ft_ab_bootstrap_opts *o, struct ft_ab_bootstrap *out,
			       struct ft_err *err)
{
	if (o->rounds < 1 || o->rounds > MAX_ROUNDS)
		return ft_failf(err, FT_EINVAL, NULL,
				"bootstrap: rounds must be between 1 and %d (got %d)", MAX_ROUNDS,
				o->rounds);
	if (n == 0)
		return ft_failf(err, FT_EINVAL, NULL, "bootstrap: there are no judgments");
	struct ft_ab_table t;
	enum ft_rc rc = ft_ab_table_build(&t, k, j, n, err); /* validates every judgment */
	if (rc)
		return rc;
	int R = o->rounds, per = 2 * k + k * k;
	double *vals = malloc((size_t)R * (size_t)per * sizeof *vals);
	int *cnt = calloc((size_t)per, sizeof *cnt);
	if (!vals || !cnt) {
		free(vals);
		free(cnt);
		return ft_failf(err, FT_ENOMEM, NULL, "bootstrap: out of memory for %d rounds", R);
	}
	/* series s (0..per-1) holds its values at vals[s * R + 0..cnt[s]-1]:
	 * ratings 0..k-1, win rates k..2k-1, win probabilities 2k + i k + j */
	memset(out, 0, sizeof *out);
	out->k = k;
	out->rounds = R;
	struct ft_rng rng;
	ft_rng_seed(&rng, o->seed);
	for (int r = 0; r < R; r++) {
		memset(&t, 0, sizeof t);
		t.k = k;
		for (size_t d = 0; d < n; d++)
			ft_ab_table_add(&t, &j[ft_rng_below(&rng, n)]);
		for (int i = 0; i < k; i++) {
			double w = ft_ab_table_win_rate(&t, i);
			if (!isnan(w))
				vals[(size_t)(k + i) * R + cnt[k + i]++] = w;
		}
		struct ft_ab_bt bt;
		struct ft_err e2 = { 0 };
		rc = ft_ab_bt_fit(&t, &o->bt, &bt, &e2);
		if (rc == FT_EINVAL && strcmp(e2.code, "ratings_unbounded") == 0) {
			out->unbounded_rounds++;
			continue;
		}
		if (rc) {
			ft_failf(err, rc, NULL, "bootstrap round %d: %s", r, e2.msg);
			goto fail;
		}
		for (int i = 0; i < k; i++) {
			vals[(size_t)i * R + cnt[i]++] = bt.rating[i];
			for (int q = 0; q < k; q++) {
				int s = 2 * k + i * k + q;
				vals[(size_t)s * R + cnt[s]++] = ft_ab_bt_win_prob(&bt, i, q);
			}
		}
	}
	for (int i = 0; i < k; i++) {
		interval_of(vals + (size_t)i * R, cnt[i], &out->rating[i]);
		interval_of(vals + (size_t)(k + i) * R, cnt[k + i], &out->win_rate[i]);
		for (int q = 0; q < k; q++) {
			int s = 2 * k + i * k + q;
			interval_of(vals + (size_t)s * R, cnt[s], &out->win_prob[i][q]);
		}
	}
	free(vals);
	free(cnt);
	return FT_OK;
fail:
	free(vals);
	free(cnt);
	return rc;
}
