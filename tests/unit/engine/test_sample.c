/*
 * test_sample.c - the next-token sampler (ft/sample.h) on logits whose
 * answers are worked out by hand: greedy ties, log-probabilities of a
 * two-token softmax, OpenAI's frequency / presence penalties, top-k and
 * top-p cuts, the drawn frequencies of a known distribution, and the range
 * checks that name the field.
 */
#include "ft/sample.h"
#include "ftest.h"

#include <math.h>

static struct ft_sampler mk(int V, struct ft_sampling s, uint64_t seed)
{
	struct ft_sampler sm;
	FT_ASSERT(ft_sampler_init(&sm, V, &s, seed, NULL) == FT_OK);
	return sm;
}

FT_TEST(greedy_takes_the_first_largest_and_logprobs_are_log_softmax)
{
	struct ft_sampler sm =
		mk(4, (struct ft_sampling){ .top_p = 1, .logprobs = true, .top_logprobs = 2 }, 1);
	const float l[4] = { 1.0f, 3.0f, 3.0f, 0.0f };
	struct ft_sample_out o;
	ft_sample(&sm, l, &o);
	FT_CHECK_INT(o.id, 1);
	/* log softmax: 3 - log(e^1 + 2 e^3 + e^0) */
	double lse = log(exp(1.0) + 2 * exp(3.0) + 1.0);
	FT_CHECK(fabs(o.logprob - (3.0 - lse)) < 1e-6);
	FT_CHECK_INT(o.n_top, 2);
	FT_CHECK(o.top_ids[0] == 1 && o.top_ids[1] == 2); /* ties: lower id first */
	FT_CHECK(fabs(o.top_logprobs[1] - (3.0 - lse)) < 1e-6);
	ft_sampler_release(&sm);
}

FT_TEST(penalties_follow_openai)
{
	/* frequency 1.0: after token 0 twice, its logit is 2.0 - 2 = 0 < 1.5 */
	struct ft_sampler sm =
		mk(2, (struct ft_sampling){ .top_p = 1, .frequency_penalty = 1.0 }, 1);
	const float l[2] = { 2.0f, 1.5f };
	struct ft_sample_out o;
	ft_sample(&sm, l, &o);
	FT_CHECK_INT(o.id, 0); /* 2.0 > 1.5 */
	ft_sample(&sm, l, &o);
	FT_CHECK_INT(o.id, 1); /* 2.0 - 1 = 1.0 < 1.5 */
	ft_sample(&sm, l, &o);
	FT_CHECK_INT(o.id, 0); /* 1.0 vs 1.5 - 1 = 0.5 */
	ft_sampler_release(&sm);
	/* presence 0.6: once is enough, a second time changes nothing */
	sm = mk(2, (struct ft_sampling){ .top_p = 1, .presence_penalty = 0.6 }, 1);
	ft_sample(&sm, l, &o);
	FT_CHECK_INT(o.id, 0);
	ft_sample(&sm, l, &o);
	FT_CHECK_INT(o.id, 1); /* 1.4 < 1.5 */
	ft_sample(&sm, l, &o);
	FT_CHECK_INT(o.id, 0); /* 1.4 vs 1.5 - 0.6 = 0.9: once each, once is enough */
	ft_sampler_release(&sm);
}

FT_TEST(top_k_and_top_p_cut_and_draws_follow_the_distribution)
{
	/* p = 0.5, 0.3, 0.2 at temperature 1 */
	const float l[3] = { logf(0.5f), logf(0.3f), logf(0.2f) };
	struct ft_sample_out o;
	struct ft_sampler k1 =
		mk(3, (struct ft_sampling){ .temperature = 1, .top_p = 1, .top_k = 1 }, 7);
	struct ft_sampler p5 = mk(3, (struct ft_sampling){ .temperature = 1, .top_p = 0.5 }, 7);
	for (int i = 0; i < 200; i++) {
		ft_sample(&k1, l, &o);
		FT_CHECK_INT(o.id, 0);
		ft_sample(&p5, l, &o);
		FT_CHECK_INT(o.id, 0); /* the first token alone reaches 0.5 */
	}
	/* top_p 0.8 keeps {0, 1}: draws 5/8 and 3/8; all: 0.5, 0.3, 0.2 */
	struct ft_sampler p8 = mk(3, (struct ft_sampling){ .temperature = 1, .top_p = 0.8 }, 11);
	struct ft_sampler all = mk(3, (struct ft_sampling){ .temperature = 1, .top_p = 1 }, 13);
	int n8[3] = { 0 }, na[3] = { 0 }, N = 40000;
	for (int i = 0; i < N; i++) {
		ft_sample(&p8, l, &o);
		n8[o.id]++;
		ft_sample(&all, l, &o);
		na[o.id]++;
	}
	/* binomial sd at N = 40000 is <= 0.0025: allow 4 sd */
	FT_CHECK(n8[2] == 0);
	FT_CHECK(fabs(n8[0] / (double)N - 0.625) < 0.01);
	FT_CHECK(fabs(na[0] / (double)N - 0.5) < 0.01 && fabs(na[1] / (double)N - 0.3) < 0.01 &&
		 fabs(na[2] / (double)N - 0.2) < 0.01);
	ft_sampler_release(&k1);
	ft_sampler_release(&p5);
	ft_sampler_release(&p8);
	ft_sampler_release(&all);
}

FT_TEST(ranges_name_the_field)
{
	static const struct {
		struct ft_sampling s;
		const char *param;
	} bad[] = {
		{ { .temperature = 2.5, .top_p = 1 }, "temperature" },
		{ { .temperature = 1, .top_p = 0 }, "top_p" },
		{ { .top_p = 1, .frequency_penalty = 3 }, "frequency_penalty" },
		{ { .top_p = 1, .presence_penalty = -2.5 }, "presence_penalty" },
		{ { .top_p = 1, .top_k = -1 }, "top_k" },
		{ { .top_p = 1, .top_logprobs = 21 }, "top_logprobs" },
	};
	for (size_t i = 0; i < FT_ARRAY_LEN(bad); i++) {
		struct ft_err e;
		ft_err_clear(&e);
		FT_CHECK(ft_sampling_check(&bad[i].s, &e) == FT_EINVAL);
		FT_CHECK_STR(e.param, bad[i].param);
	}
}

FT_TEST_MAIN()
