/*
 * sample.c - the next token from a row of logits (the rules are written in
 * ft/sample.h). Greedy and temperature / top-p sampling are the exact steps
 * generation always took (so a seed gives the same text as before); top-k,
 * the penalties and the log-probabilities are the OpenAI parameters ft-serve
 * adds.
 */
#include "ft/sample.h"

#include <math.h>

struct ft_sample_cand {
	float p;
	int32_t id;
};

static int cand_cmp(const void *a, const void *b)
{
	const struct ft_sample_cand *x = a, *y = b;
	if (x->p != y->p)
		return x->p > y->p ? -1 : 1;
	return x->id - y->id;
}

enum ft_rc ft_sampling_check(const struct ft_sampling *s, struct ft_err *err)
{
	static const struct {
		const char *name;
		size_t off;
		double lo, hi;
	} ranges[] = {
		{ "temperature", offsetof(struct ft_sampling, temperature), 0, 2 },
		{ "top_p", offsetof(struct ft_sampling, top_p), 0, 1 },
		{ "frequency_penalty", offsetof(struct ft_sampling, frequency_penalty), -2, 2 },
		{ "presence_penalty", offsetof(struct ft_sampling, presence_penalty), -2, 2 },
	};
	for (size_t i = 0; i < FT_ARRAY_LEN(ranges); i++) {
		double v = *(const double *)(const void *)((const char *)s + ranges[i].off);
		if (!(v >= ranges[i].lo && v <= ranges[i].hi) ||
		    (ranges[i].off == offsetof(struct ft_sampling, top_p) && v == 0)) {
			ft_failf(err, FT_EINVAL, "invalid_value",
				 "\"%s\" must be in %s%g, %g] (got %g)", ranges[i].name,
				 v == 0 && ranges[i].lo == 0 ? "(" : "[", ranges[i].lo,
				 ranges[i].hi, v);
			ft_err_param(err, ranges[i].name);
			return FT_EINVAL;
		}
	}
	if (s->top_k < 0) {
		ft_failf(err, FT_EINVAL, "invalid_value", "\"top_k\" must be >= 0 (got %d)",
			 s->top_k);
		ft_err_param(err, "top_k");
		return FT_EINVAL;
	}
	if (s->top_logprobs < 0 || s->top_logprobs > FT_SAMPLE_MAX_TOP) {
		ft_failf(err, FT_EINVAL, "invalid_value",
			 "\"top_logprobs\" must be between 0 and %d (got %d)", FT_SAMPLE_MAX_TOP,
			 s->top_logprobs);
		ft_err_param(err, "top_logprobs");
		return FT_EINVAL;
	}
	return FT_OK;
}

enum ft_rc ft_sampler_init(struct ft_sampler *sm, int V, const struct ft_sampling *s, uint64_t seed,
			   struct ft_err *err)
{
	memset(sm, 0, sizeof(*sm));
	enum ft_rc rc = ft_sampling_check(s, err);
	if (rc)
		return rc;
	sm->V = V;
	sm->s = *s;
	ft_rng_seed(&sm->rng, seed);
	sm->counts = calloc((size_t)V, sizeof(*sm->counts));
	sm->work = malloc(sizeof(float) * (size_t)V);
	sm->cand = malloc(sizeof(*sm->cand) * (size_t)V);
	if (!sm->counts || !sm->work || !sm->cand) {
		ft_sampler_release(sm);
		return ft_failf(err, FT_ENOMEM, NULL, "out of memory for a sampler");
	}
	return FT_OK;
}

void ft_sampler_release(struct ft_sampler *sm)
{
	free(sm->counts);
	free(sm->work);
	free(sm->cand);
	memset(sm, 0, sizeof(*sm));
}

/* logits with the penalties applied (logits itself when there are none). */
static const float *penalised(struct ft_sampler *sm, const float *logits)
{
	const struct ft_sampling *s = &sm->s;
	if (s->frequency_penalty == 0 && s->presence_penalty == 0)
		return logits;
	for (int v = 0; v < sm->V; v++) {
		uint32_t c = sm->counts[v];
		sm->work[v] = c ? logits[v] - (float)(s->frequency_penalty * c) -
					      (float)s->presence_penalty
				: logits[v];
	}
	return sm->work;
}

/* The log-probabilities of the choice and of the top tokens. */
static void logprobs(struct ft_sampler *sm, const float *l, struct ft_sample_out *out)
{
	int V = sm->V, k = sm->s.top_logprobs;
	float mx = l[0];
	for (int v = 1; v < V; v++)
		mx = fmaxf(mx, l[v]);
	double sum = 0;
	for (int v = 0; v < V; v++)
		sum += exp((double)(l[v] - mx));
	float lse = mx + (float)log(sum);
	out->logprob = l[out->id] - lse;
	/* the k largest, by insertion (k <= 20) */
	out->n_top = 0;
	for (int v = 0; v < V && k > 0; v++) {
		int n = out->n_top;
		if (n == k && l[v] <= l[out->top_ids[n - 1]])
			continue;
		int at = n < k ? n : k - 1;
		while (at > 0 && l[out->top_ids[at - 1]] < l[v]) {
			if (at < k)
				out->top_ids[at] = out->top_ids[at - 1];
			at--;
		}
		out->top_ids[at] = v;
		if (n < k)
			out->n_top++;
	}
	for (int i = 0; i < out->n_top; i++)
		out->top_logprobs[i] = l[out->top_ids[i]] - lse;
}

void ft_sample(struct ft_sampler *sm, const float *logits, struct ft_sample_out *out)
{
	const struct ft_sampling *s = &sm->s;
	int V = sm->V;
	const float *l = penalised(sm, logits);
	int best = 0;
	for (int v = 1; v < V; v++)
		if (l[v] > l[best])
			best = v;
	out->id = best;
	if (s->temperature > 0) {
		struct ft_sample_cand *cand = sm->cand;
		double sum = 0;
		for (int v = 0; v < V; v++) {
			cand[v].p = expf((l[v] - l[best]) / (float)s->temperature);
			cand[v].id = v;
			sum += cand[v].p;
		}
		qsort(cand, (size_t)V, sizeof(*cand), cand_cmp);
		int n = s->top_k > 0 && s->top_k < V ? s->top_k : V;
		if (n < V) { /* the top-k's mass is what top_p cuts and draws from */
			sum = 0;
			for (int i = 0; i < n; i++)
				sum += cand[i].p;
		}
		double top = s->top_p > 0 && s->top_p < 1 ? s->top_p : 1.0, cum = 0;
		int keep = 0;
		while (keep < n) {
			cum += cand[keep].p / sum;
			keep++;
			if (cum >= top)
				break;
		}
		double r = ft_rng_uniform(&sm->rng) * cum, acc = 0;
		out->id = cand[keep - 1].id;
		for (int i = 0; i < keep; i++) {
			acc += cand[i].p / sum;
			if (r < acc) {
				out->id = cand[i].id;
				break;
			}
		}
	}
	if (s->logprobs || s->top_logprobs > 0)
		logprobs(sm, l, out);
	sm->counts[out->id]++;
}
