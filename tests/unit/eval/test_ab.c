/*
 * test_ab.c - pairwise judgments: the table, Bradley-Terry (closed forms
 * for two arms, symmetry for a cycle), the bootstrap's degenerate cases,
 * the judgments-needed formula and the mixture SPRT, all by hand.
 */
#include "ft/stats.h"
#include "ftest.h"

#include <math.h>

#define NEAR(a, b, tol) (fabs((a) - (b)) <= (tol))

static struct ft_ab_judgment J(int a, int b, enum ft_ab_outcome o) {
	return (struct ft_ab_judgment){ a, b, o };
}

FT_TEST(table_counts_ties_half)
{
	struct ft_ab_judgment j[] = { J(0, 1, FT_AB_WIN_A), J(1, 0, FT_AB_WIN_A),
				      J(0, 1, FT_AB_TIE), J(1, 2, FT_AB_BOTH_BAD) };
	struct ft_ab_table t;
	FT_CHECK(ft_ab_table_build(&t, 3, j, 4, NULL) == FT_OK);
	FT_CHECK(t.score[0][1] == 1.5 && t.score[1][0] == 1.5 && t.n[0][1] == 3);
	FT_CHECK(ft_ab_table_win_frac(&t, 0, 1) == 0.5);
	FT_CHECK(ft_ab_table_win_frac(&t, 1, 2) == 0.5);
	FT_CHECK(isnan(ft_ab_table_win_frac(&t, 0, 2)));
	FT_CHECK(ft_ab_table_win_rate(&t, 1) == 2.0 / 4.0);
	enum ft_ab_outcome o;
	FT_CHECK(ft_ab_outcome_parse("both_bad", &o) && o == FT_AB_BOTH_BAD);
	FT_CHECK(!ft_ab_outcome_parse("draw", &o));
	FT_CHECK_STR(ft_ab_outcome_name(FT_AB_TIE), "tie");
}

FT_TEST(table_rejects_bad_judgments)
{
	struct ft_ab_table t;
	struct ft_err err = { 0 };
	struct ft_ab_judgment bad[] = { J(0, 1, FT_AB_WIN_A), J(0, 5, FT_AB_WIN_A) };
	FT_CHECK(ft_ab_table_build(&t, 3, bad, 2, &err) == FT_EINVAL);
	FT_CHECK_STR(err.msg, "judgment 1: arms must be between 0 and 2 (got 0 and 5)");
	ft_err_clear(&err);
	FT_CHECK(ft_ab_table_build(&t, 1, bad, 1, &err) == FT_EINVAL);
	FT_CHECK_STR(err.msg, "an experiment needs 2 to 16 arms (got 1)");
}

FT_TEST(bt_two_arms_is_the_logit_of_the_share)
{
	/* 3 of 4 for A: theta_A - theta_B = ln 3, ratings 1000 +- 200 log10 3 */
	struct ft_ab_judgment j[] = { J(0, 1, FT_AB_WIN_A), J(1, 0, FT_AB_WIN_B),
				      J(0, 1, FT_AB_WIN_A), J(0, 1, FT_AB_WIN_B) };
	struct ft_ab_table t;
	struct ft_ab_bt bt;
	struct ft_ab_bt_opts o = FT_AB_BT_OPTS_DEFAULT;
	FT_CHECK(ft_ab_table_build(&t, 2, j, 4, NULL) == FT_OK);
	FT_CHECK(ft_ab_bt_fit(&t, &o, &bt, NULL) == FT_OK);
	FT_CHECK(NEAR(bt.theta[0] - bt.theta[1], log(3.0), 1e-12));
	FT_CHECK(NEAR(bt.theta[0] + bt.theta[1], 0, 1e-15));
	FT_CHECK(NEAR(bt.rating[0], 1000 + 200 * log10(3.0), 1e-9));
	FT_CHECK(NEAR(ft_ab_bt_win_prob(&bt, 0, 1), 0.75, 1e-12));
	/* anchored: arm 1 at 1500, the difference kept */
	o.anchor = 1;
	o.anchor_rating = 1500;
	FT_CHECK(ft_ab_bt_fit(&t, &o, &bt, NULL) == FT_OK);
	FT_CHECK(bt.rating[1] == 1500);
	FT_CHECK(NEAR(bt.rating[0], 1500 + 400 * log10(3.0), 1e-9));
}

FT_TEST(bt_cycle_is_symmetric)
{
	/* A beats B, B beats C, C beats A, each 2-1: every theta is 0 */
	struct ft_ab_judgment j[9];
	int k = 0;
	for (int a = 0; a < 3; a++) {
		int b = (a + 1) % 3;
		j[k++] = J(a, b, FT_AB_WIN_A);
		j[k++] = J(b, a, FT_AB_WIN_B);
		j[k++] = J(a, b, FT_AB_WIN_B);
	}
	struct ft_ab_table t;
	struct ft_ab_bt bt;
	struct ft_ab_bt_opts o = FT_AB_BT_OPTS_DEFAULT;
	FT_CHECK(ft_ab_table_build(&t, 3, j, 9, NULL) == FT_OK);
	FT_CHECK(ft_ab_bt_fit(&t, &o, &bt, NULL) == FT_OK);
	for (int i = 0; i < 3; i++)
		FT_CHECK(NEAR(bt.rating[i], 1000, 1e-9));
}

FT_TEST(bt_unbounded_names_the_arms)
{
	struct ft_ab_judgment j[] = { J(0, 1, FT_AB_WIN_A), J(1, 0, FT_AB_WIN_B),
				      J(1, 2, FT_AB_TIE) };
	struct ft_ab_table t;
	struct ft_ab_bt bt;
	struct ft_ab_bt_opts o = FT_AB_BT_OPTS_DEFAULT;
	struct ft_err err = { 0 };
	FT_CHECK(ft_ab_table_build(&t, 3, j, 3, NULL) == FT_OK);
	FT_CHECK(ft_ab_bt_fit(&t, &o, &bt, &err) == FT_EINVAL);
	FT_CHECK_STR(err.code, "ratings_unbounded");
	FT_CHECK_STR(err.msg, "the bradley-terry ratings are unbounded: arms {1, 2} never won or "
			      "tied against the other arms (more judgments needed)");
	ft_err_clear(&err);
	FT_CHECK(ft_ab_table_build(&t, 4, j, 3, NULL) == FT_OK);
	FT_CHECK(ft_ab_bt_fit(&t, &o, &bt, &err) == FT_EINVAL);
	FT_CHECK(strstr(err.msg, "arm 3 has no judgments") != NULL);
}

FT_TEST(bootstrap_of_one_judgment)
{
	/* every resample is the same win: win rate 1, and no finite rating */
	struct ft_ab_judgment j[] = { J(0, 1, FT_AB_WIN_A) };
	struct ft_ab_bootstrap_opts o = { 5, 50, FT_AB_BT_OPTS_DEFAULT };
	struct ft_ab_bootstrap b;
	FT_CHECK(ft_ab_bootstrap_run(2, j, 1, &o, &b, NULL) == FT_OK);
	FT_CHECK(b.win_rate[0].lo == 1 && b.win_rate[0].median == 1 && b.win_rate[0].hi == 1);
	FT_CHECK(b.win_rate[1].hi == 0 && b.win_rate[1].rounds == 50);
	FT_CHECK(b.unbounded_rounds == 50);
	FT_CHECK(b.rating[0].rounds == 0 && isnan(b.rating[0].median));
}

FT_TEST(bootstrap_of_ties)
{
	struct ft_ab_judgment j[] = { J(0, 1, FT_AB_TIE), J(1, 0, FT_AB_TIE),
				      J(0, 1, FT_AB_BOTH_BAD) };
	struct ft_ab_bootstrap_opts o = { 5, 40, FT_AB_BT_OPTS_DEFAULT };
	struct ft_ab_bootstrap b;
	FT_CHECK(ft_ab_bootstrap_run(2, j, 3, &o, &b, NULL) == FT_OK);
	FT_CHECK(b.unbounded_rounds == 0);
	FT_CHECK(b.win_rate[0].lo == 0.5 && b.win_rate[0].hi == 0.5);
	FT_CHECK(NEAR(b.rating[0].lo, 1000, 1e-9) && NEAR(b.rating[1].hi, 1000, 1e-9));
	FT_CHECK(NEAR(b.win_prob[0][1].median, 0.5, 1e-12));
	struct ft_err err = { 0 };
	o.rounds = 0;
	FT_CHECK(ft_ab_bootstrap_run(2, j, 3, &o, &b, &err) == FT_EINVAL);
	FT_CHECK_STR(err.msg, "bootstrap: rounds must be between 1 and 100000 (got 0)");
	/* bad fit options fail the run; they are not "unbounded" rounds */
	ft_err_clear(&err);
	o.rounds = 10;
	o.bt.scale = 0;
	FT_CHECK(ft_ab_bootstrap_run(2, j, 3, &o, &b, &err) == FT_EINVAL);
	FT_CHECK_STR(err.msg, "bootstrap round 0: bradley-terry: scale must be > 0, base > 1, the "
			      "anchor an arm");
}

FT_TEST(bootstrap_is_reproducible)
{
	struct ft_ab_judgment j[] = { J(0, 1, FT_AB_WIN_A), J(0, 1, FT_AB_WIN_B),
				      J(1, 0, FT_AB_TIE), J(0, 1, FT_AB_WIN_A),
				      J(1, 0, FT_AB_WIN_B) };
	struct ft_ab_bootstrap_opts o = { 11, 100, FT_AB_BT_OPTS_DEFAULT };
	struct ft_ab_bootstrap a, b;
	FT_CHECK(ft_ab_bootstrap_run(2, j, 5, &o, &a, NULL) == FT_OK);
	FT_CHECK(ft_ab_bootstrap_run(2, j, 5, &o, &b, NULL) == FT_OK);
	FT_CHECK(memcmp(&a, &b, sizeof a) == 0);
	o.seed = 12;
	FT_CHECK(ft_ab_bootstrap_run(2, j, 5, &o, &b, NULL) == FT_OK);
	FT_CHECK(a.win_rate[0].median != b.win_rate[0].median ||
		 a.win_rate[0].lo != b.win_rate[0].lo || a.unbounded_rounds != b.unbounded_rounds);
}

FT_TEST(judgments_needed_by_hand)
{
	/* ((1.959964 / 2 + 0.841621 sqrt(0.24)) / 0.1)^2 = 193.8473 */
	struct ft_ab_needed n;
	FT_CHECK(ft_ab_judgments_needed(0.6, 50, 0.05, 0.8, &n, NULL) == FT_OK);
	FT_CHECK(NEAR(n.total, 193.84728588314744, 1e-9));
	FT_CHECK(n.more == 144 && n.reachable);
	FT_CHECK(ft_ab_judgments_needed(0.4, 500, 0.05, 0.8, &n, NULL) == FT_OK);
	FT_CHECK(n.more == 0);
	FT_CHECK(ft_ab_judgments_needed(0.5, 10, 0.05, 0.8, &n, NULL) == FT_OK);
	FT_CHECK(!n.reachable && isinf(n.more));
}

FT_TEST(msprt_by_hand)
{
	struct ft_ab_msprt_opts o = FT_AB_MSPRT_OPTS_DEFAULT;
	struct ft_ab_decision d;
	/* n = 0: Lambda = 1 */
	FT_CHECK(ft_ab_msprt(0, 0, &o, &d, NULL) == FT_OK);
	FT_CHECK(NEAR(d.log_lambda, 0, 1e-12) && !d.decided && d.winner == -1);
	/* one win: B(a+1, a) / B(a, a) = 1/2, times 2: Lambda = 1 */
	FT_CHECK(ft_ab_msprt(1, 1, &o, &d, NULL) == FT_OK);
	FT_CHECK(NEAR(d.log_lambda, 0, 1e-12));
	/* uniform prior, 10 of 10: Lambda = B(11, 1) 2^10 = 1024 / 11 > 20 */
	o.prior_a = 1;
	FT_CHECK(ft_ab_msprt(10, 10, &o, &d, NULL) == FT_OK);
	FT_CHECK(NEAR(d.log_lambda, log(1024.0 / 11.0), 1e-12));
	FT_CHECK(NEAR(d.log_threshold, log(20.0), 1e-15));
	FT_CHECK(d.decided && d.winner == 0);
	FT_CHECK(ft_ab_msprt(0, 10, &o, &d, NULL) == FT_OK);
	FT_CHECK(d.decided && d.winner == 1);
	/* 4 of 10: Lambda = B(5, 7) 2^10 = 1024 / 2310 */
	FT_CHECK(ft_ab_msprt(4, 10, &o, &d, NULL) == FT_OK);
	FT_CHECK(NEAR(d.log_lambda, log(1024.0 / 2310.0), 1e-12) && !d.decided);
	struct ft_err err = { 0 };
	FT_CHECK(ft_ab_msprt(11, 10, &o, &d, &err) == FT_EINVAL);
	FT_CHECK_STR(err.msg, "decision: need 0 <= score <= judgments (got 11 of 10)");
}

FT_TEST_MAIN()
