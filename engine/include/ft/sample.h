/*
 * ft/sample.h - choosing the next token from a row of logits: the one
 * sampler of generation (ft/generate.h) and of ft-serve.
 *
 *   l_v      = logits[v] - frequency_penalty * count[v]
 *                        - presence_penalty * (count[v] > 0)   (OpenAI's rule;
 *              count = times v was generated so far in this sequence)
 *   greedy   (temperature 0): the first v with the largest l_v
 *   sampling p_v = exp((l_v - max l) / temperature), sorted by p descending
 *            (ties: lower id first); keep the first top_k (0: all), then the
 *            shortest prefix whose mass reaches top_p of the kept mass (at
 *            least one); draw r = uniform * kept mass from the request's
 *            generator (ft/rng.h) and take the first token whose running
 *            mass passes r
 *   logprob  log_softmax(l)_v of the chosen token (before temperature), and
 *            with top_logprobs = k the k most likely tokens and theirs
 *
 * Memory: struct ft_sampler holds the scratch of one vocabulary (candidates,
 * counts); one per sequence being generated. Caller owns everything.
 */
#ifndef FT_SAMPLE_H
#define FT_SAMPLE_H

#include "ft/base.h"
#include "ft/err.h"
#include "ft/rng.h"

#define FT_SAMPLE_MAX_TOP 20 /* OpenAI's limit on top_logprobs */

struct ft_sampling {
	double temperature; /* 0: greedy */
	double top_p; /* (0, 1]; 1: no nucleus cut */
	int top_k; /* 0: no cut */
	double frequency_penalty, presence_penalty; /* [-2, 2] */
	bool logprobs;
	int top_logprobs; /* 0 .. FT_SAMPLE_MAX_TOP */
};

struct ft_sample_out {
	int32_t id;
	float logprob; /* when logprobs */
	int n_top;
	int32_t top_ids[FT_SAMPLE_MAX_TOP];
	float top_logprobs[FT_SAMPLE_MAX_TOP];
};

struct ft_sampler {
	int V;
	struct ft_sampling s;
	struct ft_rng rng;
	uint32_t *counts; /* [V] times each token was generated */
	float *work; /* [V] penalised logits */
	struct ft_sample_cand *cand; /* [V] */
};

/* A sampler for a vocabulary of V with settings s and generator seed. */
enum ft_rc ft_sampler_init(struct ft_sampler *sm, int V, const struct ft_sampling *s, uint64_t seed,
			   struct ft_err *err);
void ft_sampler_release(struct ft_sampler *sm);
/* FT_EINVAL naming the field ("temperature", "top_p", ...) when out of range. */
enum ft_rc ft_sampling_check(const struct ft_sampling *s, struct ft_err *err);
/* Choose the next token from logits[V] (host memory) and count it. */
void ft_sample(struct ft_sampler *sm, const float *logits, struct ft_sample_out *out);

#endif
