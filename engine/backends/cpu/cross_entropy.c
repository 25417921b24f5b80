/*
 * cross_entropy.c - softmax cross-entropy over the vocabulary, per row:
 *   lse    = log sum_v exp(logits[v])
 *   loss   = lse - logits[target]                  (rows with target -100: none)
 *   dlogit = grad_scale * (softmax(logits) - onehot(target))
 * The caller passes grad_scale = 1 / (trained tokens of the optimizer step),
 * which gives PyTorch's mean over trained positions (ignore_index -100).
 * Accuracy counts rows whose first maximal logit is the target (torch.argmax).
 * Rows are split into fixed chunks for the threads; the losses are then
 * added row by row in row order, so the sum does not depend on the chunks,
 * nor on rows without a target being left out (the trainer leaves them out:
 * ft_model_set_loss_rows_only) or not.
 */
#include "cpu_int.h"

#include <math.h>

#define CE_ROWS 16

struct ce_ctx {
	float *logits;
	const int32_t *targets;
	int N, V;
	float grad_scale;
	double *row_loss; /* [N] (rows with a target) */
	struct ft_ce_stats *part;
};

static void ce_task(void *p, int t)
{
	const struct ce_ctx *c = p;
	struct ft_ce_stats *st = &c->part[t];
	int n0 = t * CE_ROWS, n1 = FT_MIN(c->N, n0 + CE_ROWS);
	for (int n = n0; n < n1; n++) {
		float *x = c->logits + (size_t)n * c->V;
		int32_t tgt = c->targets[n];
		if (tgt == FT_IGNORE_INDEX) {
			if (c->grad_scale != 0.0f)
				memset(x, 0, sizeof(float) * (size_t)c->V);
			continue;
		}
		float mx = x[0];
		int arg = 0;
		for (int v = 1; v < c->V; v++)
			if (x[v] > mx) {
				mx = x[v];
				arg = v;
			}
		double sum = 0;
		for (int v = 0; v < c->V; v++)
			sum += exp((double)x[v] - mx);
		double lse = mx + log(sum);
		c->row_loss[n] = lse - x[tgt];
		st->n_tokens++;
		st->n_correct += arg == tgt;
		if (c->grad_scale != 0.0f) {
			for (int v = 0; v < c->V; v++)
				x[v] = (float)exp((double)x[v] - lse) * c->grad_scale;
			x[tgt] -= c->grad_scale;
		}
	}
}

void ft_cpu_cross_entropy(float *logits, const int32_t *targets, int N, int V, float grad_scale,
			  struct ft_ce_stats *st)
{
	int ntask = (N + CE_ROWS - 1) / CE_ROWS;
	struct ft_ce_stats *part = ft_xcalloc((size_t)FT_MAX(ntask, 1), sizeof(*part));
	double *row_loss = ft_xcalloc((size_t)FT_MAX(N, 1), sizeof(double));
	struct ce_ctx c = { logits, targets, N, V, grad_scale, row_loss, part };
	ft_pool_run(ce_task, &c, ntask);
	for (int t = 0; t < ntask; t++) {
		st->n_tokens += part[t].n_tokens;
		st->n_correct += part[t].n_correct;
	}
	for (int n = 0; n < N; n++)
		if (targets[n] != FT_IGNORE_INDEX)
			st->loss_sum += row_loss[n];
	free(row_loss);
	free(part);
}
