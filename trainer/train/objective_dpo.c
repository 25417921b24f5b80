/*
 * objective_dpo.c - Direct Preference Optimization as an objective of the
 * loop (train_int.h); the loss and its metrics are in dpo.c.
 *
 * The units are preference pairs; a micro-batch of P pairs is ONE batch of
 * 2P rows (the P prompt + chosen sequences, then the P prompt + rejected
 * ones, right-padded: trl's concatenated forward). Per micro-batch:
 *     ref  = reference log-probs: the same model with its adapters off (LoRA,
 *            QLoRA: an evaluation forward), or, for full fine-tuning, those
 *            computed before training from the starting weights (setup; kept
 *            for the run; on --resume computed again from the model folder
 *            before the checkpoint's weights are loaded, so they are the same)
 *     pi   = policy log-probs from a training forward that keeps its logits
 *     coef = d (loss / pairs of the step) / d pi; the logits of each row
 *            become -coef * (softmax - onehot); backward as for SFT.
 */
#include "train_int.h"

#include <math.h>

struct dpo_run {
	double *ref_train, *ref_val; /* full fine-tuning: reference log-probs per row */
	double *buf; /* a micro-batch's ref | pi | coef, 2P each */
	float *scale; /* 2P */
	size_t *rows; /* 2P */
	struct ft_dpo_metrics step; /* of the last step */
};

static struct dpo_run *D(const struct run *r)
{
	return r->obj_state;
}

static size_t dpo_units(const struct ft_rows *rows)
{
	return ft_pairs_count(rows);
}

/* Build the micro-batch of pairs[0..P): their chosen rows, then their
 * rejected rows. */
static void dpo_build(struct run *r, const struct ft_rows *rows, const size_t *pairs, int P)
{
	for (int k = 0; k < P; k++) {
		D(r)->rows[k] = 2 * pairs[k];
		D(r)->rows[P + k] = 2 * pairs[k] + 1;
	}
	ft_mbatch_build(&r->mb, rows, D(r)->rows, 2 * P);
}

/* Reference log-probs ref[2P] of the built micro-batch: precomputed (pre,
 * by row), or an evaluation forward with the adapters off. */
static enum ft_rc dpo_ref(struct run *r, const double *pre, const size_t *pairs, int P, double *ref,
			  struct ft_err *err)
{
	if (pre) {
		for (int k = 0; k < P; k++) {
			ref[k] = pre[2 * pairs[k]];
			ref[P + k] = pre[2 * pairs[k] + 1];
		}
		return FT_OK;
	}
	struct ft_batch nb = r->mb.b;
	nb.targets = NULL; /* logits only */
	ft_model_lora_enable(r->model, false);
	enum ft_rc rc = ft_model_forward(r->model, &nb, 0.0f, 0, NULL, err);
	ft_model_lora_enable(r->model, true);
	if (!rc)
		ft_model_row_logps(r->model, &r->mb.b, ref);
	return rc;
}

/* Full fine-tuning: the reference log-probs of every row of rows, from the
 * model as it is now (before training), batch_size pairs at a time. */
static enum ft_rc dpo_precompute(struct run *r, const struct ft_rows *rows, double **out,
				 struct ft_err *err)
{
	size_t n = ft_pairs_count(rows);
	size_t bs = (size_t)r->job->batch_size;
	double *pre = calloc(2 * n + 1, sizeof(double));
	size_t *idx = calloc(bs, sizeof(size_t));
	enum ft_rc rc = FT_OK;
	if (!pre || !idx) {
		rc = ft_failf(err, FT_ENOMEM, NULL, "out of memory for reference log-probs");
		goto free_idx;
	}
	for (size_t i = 0; i < n && !rc; i += bs) {
		int P = (int)FT_MIN(bs, n - i);
		for (int k = 0; k < P; k++)
			idx[k] = i + (size_t)k;
		dpo_build(r, rows, idx, P);
		double *ref = D(r)->buf;
		if ((rc = dpo_ref(r, NULL, idx, P, ref, err)))
			break;
		for (int k = 0; k < P; k++) {
			pre[2 * (i + k)] = ref[k];
			pre[2 * (i + k) + 1] = ref[P + k];
		}
	}
free_idx:
	free(idx);
	if (rc) {
		free(pre);
		return rc;
	}
	*out = pre;
	return FT_OK;
}

/* One micro-batch of P pairs: loss and metrics into sums; when train,
 * the gradient of scale * (sum of the pairs' losses) is accumulated. */
static enum ft_rc dpo_micro(struct run *r, const struct ft_rows *rows, const double *pre,
			    const size_t *pairs, int P, bool train, uint64_t drop, double scale,
			    struct ft_dpo_sums *sums, struct ft_err *err)
{
	const struct ft_train_job *j = r->job;
	double *ref = D(r)->buf, *pi = ref + 2 * P, *coef = pi + 2 * P;
	dpo_build(r, rows, pairs, P);
	enum ft_rc rc = dpo_ref(r, pre, pairs, P, ref, err);
	if (rc)
		return rc;
	if (train) {
		rc = ft_model_forward_keep(r->model, &r->mb.b, drop, err);
	} else {
		struct ft_batch nb = r->mb.b;
		nb.targets = NULL;
		rc = ft_model_forward(r->model, &nb, 0.0f, 0, NULL, err);
	}
	if (rc)
		return rc;
	ft_model_row_logps(r->model, &r->mb.b, pi);
	ft_dpo_pairs(pi, pi + P, ref, ref + P, P, j->dpo_beta, j->dpo_label_smoothing, scale,
		     train ? coef : NULL, sums);
	if (!train)
		return FT_OK;
	/* d loss / d logits = coef * (onehot - softmax) = -coef * (softmax - onehot) */
	for (int k = 0; k < 2 * P; k++)
		D(r)->scale[k] = (float)-coef[k];
	ft_model_logits_grad_rows(r->model, &r->mb.b, D(r)->scale);
	ft_model_backward(r->model, &r->mb.b);
	return FT_OK;
}

static enum ft_rc dpo_evaluate(struct run *r, struct eval_result *e, struct ft_err *err)
{
	struct ft_dpo_sums sums = { 0 };
	size_t n = ft_pairs_count(&r->val), bs = (size_t)r->job->batch_size;
	size_t *idx = calloc(bs, sizeof(size_t));
	enum ft_rc rc = FT_OK;
	if (!idx)
		return ft_failf(err, FT_ENOMEM, NULL, "out of memory");
	for (size_t i = 0; i < n && !rc; i += bs) {
		int P = (int)FT_MIN(bs, n - i);
		for (int k = 0; k < P; k++)
			idx[k] = i + (size_t)k;
		rc = dpo_micro(r, &r->val, D(r)->ref_val, idx, P, false, 0, 0.0, &sums, err);
	}
	free(idx);
	ft_dpo_metrics(&sums, &e->dpo);
	e->loss = e->dpo.loss;
	e->acc = NAN;
	return rc;
}

/* The DPO metrics on a line: "<prefix>rewards/chosen", ... (the last
 * step's on step lines, the evaluation's on eval lines). */
static void dpo_fields(const struct run *r, const char *prefix, const struct eval_result *e,
		       json_t *o)
{
	static const char *const names[6] = { "rewards/chosen",	    "rewards/rejected",
					      "rewards/accuracies", "rewards/margins",
					      "logps/chosen",	    "logps/rejected" };
	const struct ft_dpo_metrics *d = e ? &e->dpo : &D(r)->step;
	const double v[6] = { d->chosen, d->rejected,	 d->accuracy,
			      d->margin, d->logp_chosen, d->logp_rejected };
	for (int i = 0; i < 6; i++) {
		char key[64];
		snprintf(key, sizeof key, "%s%s", prefix, names[i]);
		json_object_set_new(o, key, ft_run_jnum(v[i]));
	}
}

/* DPO's gradient of one optimizer step: the mean loss over its pairs. */
static enum ft_rc dpo_step(struct run *r, long epoch, long first, long last, double *loss,
			   long *tokens, struct ft_err *err)
{
	long pairs = 0;
	for (long mi = first; mi < last; mi++) {
		const size_t *u;
		pairs += ft_run_micro_units(r, mi, &u);
	}
	struct ft_dpo_sums sums = { 0 };
	ft_model_zero_grad(r->model);
	*tokens = 0;
	for (long mi = first; mi < last; mi++) {
		const size_t *u;
		int P = ft_run_micro_units(r, mi, &u);
		uint64_t drop = ft_run_drop_seed(r, epoch, mi);
		enum ft_rc rc = dpo_micro(r, &r->train, D(r)->ref_train, u, P, true, drop,
					  1.0 / (double)FT_MAX(1, pairs), &sums, err);
		if (rc)
			return rc;
		*tokens += r->mb.n_tokens;
	}
	ft_dpo_metrics(&sums, &D(r)->step);
	*loss = D(r)->step.loss;
	return FT_OK;
}

static void dpo_release(struct run *r)
{
	struct dpo_run *d = r->obj_state;
	if (!d)
		return;
	free(d->buf);
	free(d->scale);
	free(d->rows);
	free(d->ref_train);
	free(d->ref_val);
	free(d);
	r->obj_state = NULL;
}

/* Buffers for batch_size pairs; for full fine-tuning the reference is the
 * starting model, so its log-probs are computed now, before a checkpoint's
 * weights replace it. */
static enum ft_rc dpo_setup(struct run *r, struct ft_err *err)
{
	size_t bs = (size_t)r->job->batch_size;
	struct dpo_run *d = calloc(1, sizeof(*d));
	r->obj_state = d;
	if (!d || !(d->buf = calloc(6 * bs, sizeof(double))) ||
	    !(d->scale = calloc(2 * bs, sizeof(float))) ||
	    !(d->rows = calloc(2 * bs, sizeof(size_t))))
		return ft_failf(err, FT_ENOMEM, NULL, "out of memory");
	if (ft_model_lora(r->model))
		return FT_OK;
	enum ft_rc rc = dpo_precompute(r, &r->train, &d->ref_train, err);
	if (!rc && r->has_val)
		rc = dpo_precompute(r, &r->val, &d->ref_val, err);
	return rc;
}

const struct objective ft_objective_dpo = {
	"dpo", dpo_units, dpo_setup, dpo_step, dpo_evaluate, dpo_fields, dpo_release,
};
