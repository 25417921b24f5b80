/*
 * objective_sft.c - supervised fine-tuning: next-token cross-entropy on the
 * trained tokens (train_int.h's objective interface).
 *
 *   units     the rows (or, with packing, units of rows) of the training file
 *   step      loss scale = 1 / (trained tokens of ALL the step's
 *             micro-batches), so the gradient is that of the mean over the
 *             step's trained tokens; forward + backward per micro-batch
 *   evaluate  mean loss and token accuracy over the validation rows
 *   fields    eval lines: eval_perplexity = exp(eval_loss), eval_token_accuracy
 */
#include "train_int.h"

#include <math.h>

static size_t sft_units(const struct ft_rows *rows)
{
	return rows->n_units;
}

static enum ft_rc sft_setup(struct run *r, struct ft_err *err)
{
	FT_UNUSED(err);
	/* only the loss's rows reach the output layer (when it is frozen) */
	ft_model_set_loss_rows_only(r->model, true);
	return FT_OK;
}

static enum ft_rc sft_step(struct run *r, long epoch, long first, long last, double *loss,
			   long *tokens, struct ft_err *err)
{
	long trained = 0;
	for (long mi = first; mi < last; mi++) {
		const size_t *u;
		int n = ft_run_micro_units(r, mi, &u);
		trained += ft_rows_trained(&r->train, u, n);
	}
	float scale = 1.0f / (float)FT_MAX(1, trained);
	struct ft_ce_stats st = { 0 };
	ft_model_zero_grad(r->model);
	*tokens = 0;
	for (long mi = first; mi < last; mi++) {
		const size_t *u;
		int n = ft_run_micro_units(r, mi, &u);
		ft_mbatch_build(&r->mb, &r->train, u, n);
		enum ft_rc rc = ft_model_forward(r->model, &r->mb.b, scale,
						 ft_run_drop_seed(r, epoch, mi), &st, err);
		if (rc)
			return rc;
		ft_model_backward(r->model, &r->mb.b);
		*tokens += r->mb.n_tokens;
	}
	*loss = st.n_tokens ? st.loss_sum / (double)st.n_tokens : 0.0;
	return FT_OK;
}

static enum ft_rc sft_evaluate(struct run *r, struct eval_result *e, struct ft_err *err)
{
	struct ft_ce_stats st = { 0 };
	size_t *idx = malloc(sizeof(size_t) * r->val.n_units);
	if (!idx)
		return ft_failf(err, FT_ENOMEM, NULL, "out of memory");
	for (size_t i = 0; i < r->val.n_units; i++)
		idx[i] = i;
	enum ft_rc rc = FT_OK;
	for (size_t i = 0; i < r->val.n_units && !rc; i += (size_t)r->job->batch_size) {
		int count = (int)FT_MIN((size_t)r->job->batch_size, r->val.n_units - i);
		ft_mbatch_build(&r->mb, &r->val, idx + i, count);
		rc = ft_model_forward(r->model, &r->mb.b, 0.0f, 0, &st, err);
	}
	free(idx);
	e->loss = st.n_tokens ? st.loss_sum / (double)st.n_tokens : NAN;
	e->acc = st.n_tokens ? (double)st.n_correct / (double)st.n_tokens : NAN;
	return rc;
}

static void sft_fields(const struct run *r, const char *prefix, const struct eval_result *e,
		       json_t *o)
{
	FT_UNUSED(r);
	FT_UNUSED(prefix);
	if (!e)
		return; /* step lines carry the loss only */
	json_object_set_new(o, "eval_perplexity", ft_run_jnum(exp(e->loss)));
	json_object_set_new(o, "eval_token_accuracy", ft_run_jnum(e->acc));
}

static void sft_release(struct run *r)
{
	FT_UNUSED(r);
}

const struct objective ft_objective_sft = {
	"supervised", sft_units, sft_setup, sft_step, sft_evaluate, sft_fields, sft_release,
};
