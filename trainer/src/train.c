/*
 * train.c - the training loop: one readable driver (llm.c's train_gpt2.c).
 *
 *   load the model (QLoRA: decoder linears in NF4); add LoRA (peft's init
 *   from the job seed) or train all;
 *   load the rows; steps_per_epoch = ceil(ceil(units / batch) / accum)
 *   for step = first .. total-1:
 *     epoch's order = a permutation drawn from (seed, epoch) (or file order)
 *     micro-batches of this step: accum consecutive batches of that order
 *     loss scale = 1 / (trained tokens of ALL the step's micro-batches), so
 *       the gradient is that of the mean over the step's trained tokens
 *     forward + backward per micro-batch (dropout seed = (seed, micro index))
 *     grad_norm = ||g||_2 over all trainable tensors; clip to max_grad_norm
 *       (torch.nn.utils.clip_grad_norm_: g *= max / (norm + 1e-6) if < 1)
 *     lr = learning_rate * schedule(step)  (transformers' get_*_schedule_with_warmup:
 *       warmup w: step / max(1, w) for step < w; then
 *       linear:   max(0, (total - step) / max(1, total - w))
 *       cosine:   max(0, 0.5 (1 + cos(pi * (step - w) / max(1, total - w))))
 *       constant: 1)
 *     AdamW on every trainable tensor (no decay on norms and biases)
 *     progress line; evaluation every eval_steps (early stopping); checkpoint
 *     every save_steps; on SIGTERM/SIGINT: checkpoint and stop
 *   final evaluation; outputs: PEFT adapter (LoRA), merged / full HF folder.
 *
 * DPO (objective dpo; the loss and its metrics in dpo.c): the units are
 * preference pairs; a micro-batch of P pairs is ONE batch of 2P rows
 * (the P prompt + chosen sequences, then the P prompt + rejected ones,
 * right-padded: trl's concatenated forward). Per micro-batch:
 *     ref  = reference log-probs: the same model with its adapters off (LoRA,
 *            QLoRA: an evaluation forward), or, for full fine-tuning, those
 *            computed before training from the starting weights (kept for
 *            the run; on --resume computed again from the model folder
 *            before the checkpoint's weights are loaded, so they are the same)
 *     pi   = policy log-probs from a training forward that keeps its logits
 *     coef = d (loss / pairs of the step) / d pi; the logits of each row
 *            become -coef * (softmax - onehot); backward as for SFT.
 *
 * Everything the next step computes follows from (weights, AdamW moments,
 * step, seed), all in the checkpoint, and every op sums in a fixed order:
 * a run stopped at step k and resumed gives bit-identical losses.
 *
 * Memory: the model, its gradients and the AdamW moments live on the job's
 * backend ("device"; ft/backend.h); the loop touches them only through the
 * backend's ops (sumsq, scale, adamw, copy), and checkpoints stage them.
 *
 * Progress: one JSON object per line on progress_fd (docs/trainer.md).
 */
#include "ft/train.h"
#include "ft/mem_estimate.h"
#include "checkpoint_int.h"
#include "dpo_int.h"
#include "io_int.h"
#include "model_int.h"
#include "rng_int.h"
#include "rows_int.h"

#include <math.h>
#include <signal.h>
#include <unistd.h>

static volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
	(void)sig;
	g_stop = 1;
}

/* ---- progress lines ---- */

static void emit(int fd, const char *fmt, ...) FT_PRINTF(2, 3);
static void emit(int fd, const char *fmt, ...)
{
	char line[2048];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof line - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	n = FT_MIN(n, (int)sizeof line - 2);
	line[n++] = '\n';
	for (int off = 0; off < n;) {
		ssize_t w = write(fd, line + off, (size_t)(n - off));
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;
		off += (int)w;
	}
}

/* A JSON number, or null for inf/nan. */
static const char *num(char *buf, size_t sz, double x)
{
	if (!isfinite(x))
		return "null";
	snprintf(buf, sz, "%.17g", x);
	return buf;
}

/* ---- schedule ---- */

double ft_train_lr_factor(enum ft_sched s, long step, long warmup, long total)
{
	if (step < warmup)
		return (double)step / (double)FT_MAX(1, warmup);
	if (s == FT_SCHED_CONSTANT)
		return 1.0;
	double left = (double)FT_MAX(1, total - warmup);
	if (s == FT_SCHED_LINEAR)
		return FT_MAX(0.0, (double)(total - step) / left);
	double progress = (double)(step - warmup) / left;
	return FT_MAX(0.0, 0.5 * (1.0 + cos(M_PI * 0.5 * 2.0 * progress)));
}

/* ---- state of a run ---- */

struct run {
	const struct ft_train_job *job;
	const struct ft_train_opts *opts;
	struct ft_model *model;
	struct ft_param *tp; /* trainable tensors */
	size_t ntp, ntrain; /* tensors, floats */
	const struct ft_backend *be;
	float *opt_mem; /* m | v | best, one block (backend memory) */
	float *m, *v, *best;
	struct ft_rows train, val;
	bool has_val;
	size_t *order;
	long order_epoch;
	long micro_per_epoch, steps_per_epoch, total_steps, warmup;
	struct ft_ckpt_state st;
	bool has_best;
	struct ft_mbatch mb;
	int fd;
	char ckpt_dir[4200];
	/* DPO */
	bool dpo;
	size_t n_units; /* what an epoch goes over: train units, or pairs for DPO */
	double *ref_train, *ref_val; /* full fine-tuning: reference log-probs per row */
	double *dpo_buf; /* a micro-batch's ref | pi | coef, 2P each */
	float *dpo_scale; /* 2P */
	size_t *dpo_rows; /* 2P */
	struct ft_dpo_metrics step_dpo; /* of the last step */
};

/* What an evaluation reports: SFT loss and token accuracy, or DPO's metrics. */
struct eval_result {
	double loss, acc;
	struct ft_dpo_metrics dpo;
};

static void epoch_order(struct run *r, long epoch)
{
	if (r->order_epoch == epoch)
		return;
	size_t n = r->n_units;
	for (size_t i = 0; i < n; i++)
		r->order[i] = i;
	if (r->job->shuffle) {
		/* Fisher-Yates from the epoch's stream */
		struct ft_rng g;
		ft_rng_seed(&g, ft_rng_derive(r->job->seed, FT_RNG_SHUFFLE, (uint64_t)epoch));
		for (size_t i = n; i > 1; i--) {
			size_t j = (size_t)ft_rng_below(&g, i);
			size_t t = r->order[i - 1];
			r->order[i - 1] = r->order[j];
			r->order[j] = t;
		}
	}
	r->order_epoch = epoch;
}

/* Units of micro-batch mi of the current epoch's order. */
static int micro_units(const struct run *r, long mi, const size_t **units)
{
	size_t first = (size_t)mi * r->job->batch_size;
	*units = r->order + first;
	return (int)FT_MIN((size_t)r->job->batch_size, r->n_units - first);
}

static void copy_trainable(struct run *r, float *dst, bool to_model)
{
	size_t off = 0;
	for (size_t i = 0; i < r->ntp; i++) {
		if (to_model)
			r->be->copy(r->tp[i].data, dst + off, r->tp[i].n * sizeof(float));
		else
			r->be->copy(dst + off, r->tp[i].data, r->tp[i].n * sizeof(float));
		off += r->tp[i].n;
	}
}

/* ---- DPO ---- */

/* Build the micro-batch of pairs[0..P): their chosen rows, then their
 * rejected rows. */
static void dpo_build(struct run *r, const struct ft_rows *rows, const size_t *pairs, int P)
{
	for (int k = 0; k < P; k++) {
		r->dpo_rows[k] = 2 * pairs[k];
		r->dpo_rows[P + k] = 2 * pairs[k] + 1;
	}
	ft_mbatch_build(&r->mb, rows, r->dpo_rows, 2 * P);
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
		double *ref = r->dpo_buf;
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
	double *ref = r->dpo_buf, *pi = ref + 2 * P, *coef = pi + 2 * P;
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
		r->dpo_scale[k] = (float)-coef[k];
	ft_model_logits_grad_rows(r->model, &r->mb.b, r->dpo_scale);
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
		rc = dpo_micro(r, &r->val, r->ref_val, idx, P, false, 0, 0.0, &sums, err);
	}
	free(idx);
	ft_dpo_metrics(&sums, &e->dpo);
	e->loss = e->dpo.loss;
	e->acc = NAN;
	return rc;
}

/* ---- evaluation ---- */

static enum ft_rc evaluate(struct run *r, struct eval_result *e, struct ft_err *err)
{
	if (r->dpo)
		return dpo_evaluate(r, e, err);
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

/* The DPO metrics as JSON fields after a comma: ,"<prefix>rewards/chosen":...
 * (nothing for SFT). */
static void dpo_fields(const struct run *r, const char *prefix, const struct ft_dpo_metrics *d,
		       char *out, size_t n)
{
	char b[6][40];
	out[0] = 0;
	if (!r->dpo)
		return;
	snprintf(out, n,
		 ",\"%srewards/chosen\":%s,\"%srewards/rejected\":%s,\"%srewards/accuracies\":%s,"
		 "\"%srewards/margins\":%s,\"%slogps/chosen\":%s,\"%slogps/rejected\":%s",
		 prefix, num(b[0], sizeof b[0], d->chosen), prefix,
		 num(b[1], sizeof b[1], d->rejected), prefix, num(b[2], sizeof b[2], d->accuracy),
		 prefix, num(b[3], sizeof b[3], d->margin), prefix,
		 num(b[4], sizeof b[4], d->logp_chosen), prefix,
		 num(b[5], sizeof b[5], d->logp_rejected));
}

/* An "eval" line: SFT's loss, perplexity and token accuracy, or DPO's loss
 * and metrics with the eval_ prefix. */
static void emit_eval(struct run *r, long step, const struct eval_result *e, bool best)
{
	char b1[40], b2[40], b3[40], extra[700];
	if (r->dpo) {
		dpo_fields(r, "eval_", &e->dpo, extra, sizeof extra);
		emit(r->fd, "{\"type\":\"eval\",\"step\":%ld,\"eval_loss\":%s%s,\"best\":%s}", step,
		     num(b1, sizeof b1, e->loss), extra, best ? "true" : "false");
		return;
	}
	emit(r->fd,
	     "{\"type\":\"eval\",\"step\":%ld,\"eval_loss\":%s,\"eval_perplexity\":%s,"
	     "\"eval_token_accuracy\":%s,\"best\":%s}",
	     step, num(b1, sizeof b1, e->loss), num(b2, sizeof b2, exp(e->loss)),
	     num(b3, sizeof b3, e->acc), best ? "true" : "false");
}

static enum ft_rc save_checkpoint(struct run *r, struct ft_err *err)
{
	r->st.data_epoch = r->st.step / r->steps_per_epoch;
	r->st.data_micro = (r->st.step % r->steps_per_epoch) * r->job->grad_accum;
	enum ft_rc rc = ft_ckpt_save(r->ckpt_dir, r->be, r->tp, r->ntp, r->m, r->v,
				     r->has_best ? r->best : NULL, &r->st, err);
	if (!rc)
		emit(r->fd, "{\"type\":\"checkpoint\",\"step\":%ld,\"path\":\"%s\"}", r->st.step,
		     r->ckpt_dir);
	return rc;
}

static enum ft_rc apply_step(struct run *r, double *gnorm, double *lr, long tokens);

/* DPO's gradient of one optimizer step: the mean loss over its pairs. */
static enum ft_rc dpo_step_grads(struct run *r, long epoch, long first, long last, double *loss,
				 long *tokens, struct ft_err *err)
{
	const struct ft_train_job *j = r->job;
	long pairs = 0;
	for (long mi = first; mi < last; mi++) {
		const size_t *u;
		pairs += micro_units(r, mi, &u);
	}
	struct ft_dpo_sums sums = { 0 };
	ft_model_zero_grad(r->model);
	*tokens = 0;
	for (long mi = first; mi < last; mi++) {
		const size_t *u;
		int P = micro_units(r, mi, &u);
		uint64_t drop = ft_rng_derive(j->seed, FT_RNG_DROPOUT,
					      (uint64_t)(epoch * r->micro_per_epoch + mi));
		enum ft_rc rc = dpo_micro(r, &r->train, r->ref_train, u, P, true, drop,
					  1.0 / (double)FT_MAX(1, pairs), &sums, err);
		if (rc)
			return rc;
		*tokens += r->mb.n_tokens;
	}
	ft_dpo_metrics(&sums, &r->step_dpo);
	*loss = r->step_dpo.loss;
	return FT_OK;
}

/* One optimizer step; returns the mean loss over its trained tokens. */
static enum ft_rc train_step(struct run *r, double *loss, double *gnorm, double *lr, long *tokens,
			     struct ft_err *err)
{
	const struct ft_train_job *j = r->job;
	long step = r->st.step, epoch = step / r->steps_per_epoch;
	long first = (step % r->steps_per_epoch) * j->grad_accum;
	long last = FT_MIN(first + j->grad_accum, r->micro_per_epoch);
	epoch_order(r, epoch);
	if (r->dpo) {
		enum ft_rc rc = dpo_step_grads(r, epoch, first, last, loss, tokens, err);
		if (rc)
			return rc;
		return apply_step(r, gnorm, lr, *tokens);
	}

	long trained = 0;
	for (long mi = first; mi < last; mi++) {
		const size_t *u;
		int n = micro_units(r, mi, &u);
		trained += ft_rows_trained(&r->train, u, n);
	}
	float scale = 1.0f / (float)FT_MAX(1, trained);
	struct ft_ce_stats st = { 0 };
	ft_model_zero_grad(r->model);
	*tokens = 0;
	for (long mi = first; mi < last; mi++) {
		const size_t *u;
		int n = micro_units(r, mi, &u);
		ft_mbatch_build(&r->mb, &r->train, u, n);
		uint64_t drop = ft_rng_derive(j->seed, FT_RNG_DROPOUT,
					      (uint64_t)(epoch * r->micro_per_epoch + mi));
		enum ft_rc rc = ft_model_forward(r->model, &r->mb.b, scale, drop, &st, err);
		if (rc)
			return rc;
		ft_model_backward(r->model, &r->mb.b);
		*tokens += r->mb.n_tokens;
	}
	*loss = st.n_tokens ? st.loss_sum / (double)st.n_tokens : 0.0;
	return apply_step(r, gnorm, lr, *tokens);
}

/* Clip, AdamW, count the step. */
static enum ft_rc apply_step(struct run *r, double *gnorm, double *lr, long tokens)
{
	const struct ft_train_job *j = r->job;
	const struct ft_backend *be = r->model->be;
	long step = r->st.step;
	double ss = 0;
	for (size_t i = 0; i < r->ntp; i++)
		ss += be->sumsq(r->tp[i].grad, r->tp[i].n);
	*gnorm = sqrt(ss);
	if (j->max_grad_norm > 0) {
		double coef = j->max_grad_norm / (*gnorm + 1e-6);
		if (coef < 1.0)
			for (size_t i = 0; i < r->ntp; i++)
				be->scale(r->tp[i].grad, r->tp[i].n, (float)coef);
	}
	*lr = j->learning_rate * ft_train_lr_factor(j->scheduler, step, r->warmup, r->total_steps);
	struct ft_adamw_args a = { *lr, j->beta1, j->beta2, j->eps, 0.0, step + 1 };
	size_t off = 0;
	for (size_t i = 0; i < r->ntp; i++) {
		a.weight_decay = r->tp[i].decay ? j->weight_decay : 0.0;
		be->adamw(r->tp[i].data, r->tp[i].grad, r->m + off, r->v + off, r->tp[i].n, &a);
		off += r->tp[i].n;
	}
	r->st.step++;
	r->st.tokens_seen += tokens;
	return FT_OK;
}

static enum ft_rc write_outputs(struct run *r, struct ft_err *err)
{
	const struct ft_train_job *j = r->job;
	char dir[4200];
	enum ft_rc rc;
	if (j->early_stopping_patience > 0 && r->has_best)
		copy_trainable(r, r->best, true);
	if (j->method != FT_METHOD_FULL) {
		snprintf(dir, sizeof dir, "%s/adapter", j->output_dir);
		rc = ft_model_lora_save_peft(r->model, dir, j->model, err);
		if (rc)
			return rc;
		emit(r->fd, "{\"type\":\"artifact\",\"kind\":\"adapter\",\"path\":\"%s\"}", dir);
		if (!j->save_merged)
			return FT_OK;
		ft_model_lora_merge(r->model);
	}
	snprintf(dir, sizeof dir, "%s/model", j->output_dir);
	rc = ft_model_save_hf(r->model, dir, j->model, err);
	if (!rc)
		emit(r->fd, "{\"type\":\"artifact\",\"kind\":\"model\",\"path\":\"%s\"}", dir);
	return rc;
}

static enum ft_rc run_loop(struct run *r, struct ft_err *err)
{
	const struct ft_train_job *j = r->job;
	char b1[40], b2[40], b3[40], b4[40], b5[40];
	uint64_t t_start = ft_time_mono_ns();
	long first_step = r->st.step;
	bool evaluated_last = false;
	enum ft_rc rc = FT_OK;
	if (r->has_val && j->eval_on_start && r->st.step == 0) {
		/* The starting point's held-out loss (for LoRA: the base model, since
		 * B = 0). Logged only: it does not take part in early stopping. */
		struct eval_result e;
		if ((rc = evaluate(r, &e, err)))
			return rc;
		emit_eval(r, 0, &e, false);
	}
	while (r->st.step < r->total_steps) {
		double loss, gnorm, lr;
		long tokens;
		uint64_t t0 = ft_time_mono_ns();
		rc = train_step(r, &loss, &gnorm, &lr, &tokens, err);
		if (rc)
			return rc;
		double dt = (ft_time_mono_ns() - t0) * 1e-9;
		double avg =
			(ft_time_mono_ns() - t_start) * 1e-9 / (double)(r->st.step - first_step);
		char extra[700];
		dpo_fields(r, "", &r->step_dpo, extra, sizeof extra);
		emit(r->fd,
		     "{\"type\":\"step\",\"step\":%ld,\"total_steps\":%ld,\"epoch\":%s,"
		     "\"train_loss\":%s%s,\"learning_rate\":%s,\"grad_norm\":%s,"
		     "\"tokens_per_second\":%.1f,\"eta_seconds\":%.1f}",
		     r->st.step, r->total_steps,
		     num(b1, sizeof b1, (double)r->st.step / (double)r->steps_per_epoch),
		     num(b2, sizeof b2, loss), extra, num(b3, sizeof b3, lr),
		     num(b4, sizeof b4, gnorm), dt > 0 ? tokens / dt : 0.0,
		     avg * (double)(r->total_steps - r->st.step));
		evaluated_last = false;
		if (r->has_val && j->eval_steps > 0 && r->st.step % j->eval_steps == 0) {
			struct eval_result e;
			if ((rc = evaluate(r, &e, err)))
				return rc;
			evaluated_last = true;
			bool better = e.loss < r->st.best_eval_loss;
			if (better) {
				r->st.best_eval_loss = e.loss;
				r->st.best_step = r->st.step;
				r->st.bad_evals = 0;
				if (j->early_stopping_patience > 0) {
					copy_trainable(r, r->best, false);
					r->has_best = true;
				}
			} else {
				r->st.bad_evals++;
			}
			emit_eval(r, r->st.step, &e, better);
			if (j->early_stopping_patience > 0 &&
			    r->st.bad_evals >= j->early_stopping_patience) {
				emit(r->fd,
				     "{\"type\":\"early_stop\",\"step\":%ld,\"best_step\":%ld,"
				     "\"best_eval_loss\":%s}",
				     r->st.step, r->st.best_step,
				     num(b5, sizeof b5, r->st.best_eval_loss));
				break;
			}
		}
		bool stop_now = g_stop || (r->opts->stop_after_steps > 0 &&
					   r->st.step >= r->opts->stop_after_steps);
		if ((j->save_steps > 0 && r->st.step % j->save_steps == 0) || stop_now)
			if ((rc = save_checkpoint(r, err)))
				return rc;
		if (stop_now) {
			emit(r->fd, "{\"type\":\"interrupted\",\"step\":%ld,\"checkpoint\":\"%s\"}",
			     r->st.step, r->ckpt_dir);
			return FT_OK;
		}
	}
	if (r->has_val && !evaluated_last) {
		struct eval_result e;
		if ((rc = evaluate(r, &e, err)))
			return rc;
		emit_eval(r, r->st.step, &e, e.loss < r->st.best_eval_loss);
		if (e.loss < r->st.best_eval_loss && j->early_stopping_patience > 0) {
			r->st.best_eval_loss = e.loss;
			r->st.best_step = r->st.step;
			copy_trainable(r, r->best, false);
			r->has_best = true;
		}
	}
	if ((rc = save_checkpoint(r, err)) || (rc = write_outputs(r, err)))
		return rc;
	emit(r->fd, "{\"type\":\"done\",\"step\":%ld,\"tokens_seen\":%ld,\"seconds\":%.3f}",
	     r->st.step, r->st.tokens_seen, (ft_time_mono_ns() - t_start) * 1e-9);
	return FT_OK;
}

/* Pre-tokenized rows, or any dataset format through the tokenizer; for
 * DPO, preference pairs (dpo_int.h). */
/* On a device with a memory limit (the GPU), the job's estimate
 * (ft/mem_estimate.h, the fp32 path the model runs) against the free
 * memory, before anything is allocated: a job that cannot fit fails here
 * with the breakdown and what to change, not with an allocation failure
 * half way through loading. */
static enum ft_rc check_device_memory(const struct ft_train_job *j, const struct ft_backend *be,
				      struct ft_err *err)
{
	size_t free_b = 0, total_b = 0;
	if (!be->mem_info || !be->mem_info(&free_b, &total_b))
		return FT_OK;
	struct ft_model_config mc;
	enum ft_rc rc = ft_model_config_load(j->model, &mc, err);
	if (rc)
		return rc;
	int seq = mc.max_position_embeddings > 0
			  ? FT_MIN(j->max_seq_len, mc.max_position_embeddings)
			  : j->max_seq_len;
	struct ft_mem_job mj = {
		.model = &mc,
		.method = j->method == FT_METHOD_FULL	 ? FT_MEM_FULL
			  : j->method == FT_METHOD_QLORA ? FT_MEM_QLORA
							 : FT_MEM_LORA,
		.lora_r = j->lora.r,
		.lora_targets = j->lora.targets,
		.lora_dropout = j->lora.dropout > 0,
		/* DPO runs chosen and rejected together: twice the rows */
		.batch_size = j->batch_size * (j->objective == FT_OBJ_DPO ? 2 : 1),
		.seq_len = seq,
		.checkpoint_every = j->grad_ckpt,
		.gpus = 1,
		.fp32 = true,
	};
	if ((rc = ft_mem_job_check(&mj, err)))
		return rc;
	struct ft_mem_estimate e;
	ft_mem_estimate(&mj, &e);
	return ft_mem_estimate_check(&mj, &e, free_b, err);
}

static enum ft_rc load_rows(const struct ft_train_job *j, const char *path, int vocab, int max_len,
			    bool packing, struct ft_rows *rows, struct ft_err *err)
{
	if (j->objective == FT_OBJ_DPO)
		return ft_pairs_load(path, j->model, j->chat_template[0] ? j->chat_template : NULL,
				     vocab, max_len, rows, err);
	if (ft_rows_is_pretokenized(path))
		return ft_rows_load(path, vocab, max_len, packing, rows, err);
	return ft_rows_load_dataset(path, j->model, j->chat_template[0] ? j->chat_template : NULL,
				    vocab, max_len, packing, rows, err);
}

enum ft_rc ft_train_run(const struct ft_train_job *j, const struct ft_train_opts *opts,
			struct ft_err *err)
{
	struct run r = { .job = j, .opts = opts, .fd = opts->progress_fd, .order_epoch = -1 };
	enum ft_rc rc;
	if (j->threads > 0)
		ft_pool_set_threads(j->threads);
	snprintf(r.ckpt_dir, sizeof r.ckpt_dir, "%s/checkpoint", j->output_dir);
	if ((rc = ft_mkdir_p(j->output_dir, err)))
		return rc;
	bool lora = j->method != FT_METHOD_FULL;
	if ((rc = ft_backend_select(j->device, &r.be, err)))
		return rc;
	if ((rc = check_device_memory(j, r.be, err)))
		return rc;
	rc = j->method == FT_METHOD_QLORA
		     ? ft_model_load_nf4(j->model, r.be, j->double_quant, &r.model, err)
		     : ft_model_load(j->model, r.be, &r.model, err);
	if (rc)
		return rc;
	const struct ft_model_config *c = ft_model_config(r.model);
	if (lora && j->init_adapter[0]) {
		rc = ft_model_lora_load_peft(r.model, j->init_adapter, err);
	} else if (lora) {
		rc = ft_model_lora_add(r.model, &j->lora, err);
		if (!rc)
			ft_model_lora_init(r.model, j->seed);
	} else {
		rc = ft_model_train_base(r.model, err);
	}
	if (rc)
		goto free_model;
	ft_model_set_checkpointing(r.model, j->grad_ckpt);
	r.tp = ft_model_trainable(r.model, &r.ntp);
	for (size_t i = 0; i < r.ntp; i++)
		r.ntrain += r.tp[i].n;
	size_t nbest = j->early_stopping_patience > 0 ? r.ntrain : 0;
	r.opt_mem = ft_dev_calloc(r.be, (2 * r.ntrain + nbest + 1) * sizeof(float));
	if (!r.opt_mem) {
		rc = ft_failf(err, FT_ENOMEM, NULL, "out of memory for the optimizer state");
		goto free_model;
	}
	r.m = r.opt_mem;
	r.v = r.m + r.ntrain;
	r.best = nbest ? r.v + r.ntrain : NULL;

	int max_len =
		FT_MIN(j->max_seq_len, c->max_position_embeddings > 0 ? c->max_position_embeddings
								      : j->max_seq_len);
	if ((rc = load_rows(j, j->train_file, c->vocab_size, max_len, j->packing, &r.train, err)))
		goto free_opt;
	if (j->validation_file[0]) {
		rc = load_rows(j, j->validation_file, c->vocab_size, max_len, false, &r.val, err);
		if (rc)
			goto free_rows;
		r.has_val = true;
	}
	r.dpo = j->objective == FT_OBJ_DPO;
	r.n_units = r.dpo ? ft_pairs_count(&r.train) : r.train.n_units;
	r.order = calloc(r.n_units, sizeof(size_t));
	if (r.dpo) {
		size_t bs = (size_t)j->batch_size;
		r.dpo_buf = calloc(6 * bs, sizeof(double));
		r.dpo_scale = calloc(2 * bs, sizeof(float));
		r.dpo_rows = calloc(2 * bs, sizeof(size_t));
	}
	if (!r.order || (r.dpo && (!r.dpo_buf || !r.dpo_scale || !r.dpo_rows))) {
		rc = ft_failf(err, FT_ENOMEM, NULL, "out of memory");
		goto free_order;
	}
	/* Full-fine-tuning DPO: the reference is the starting model, so its
	 * log-probs are computed now, before a checkpoint's weights replace it. */
	if (r.dpo && !ft_model_lora(r.model)) {
		if ((rc = dpo_precompute(&r, &r.train, &r.ref_train, err)) ||
		    (r.has_val && (rc = dpo_precompute(&r, &r.val, &r.ref_val, err))))
			goto free_order;
	}
	r.micro_per_epoch = (long)((r.n_units + j->batch_size - 1) / j->batch_size);
	r.steps_per_epoch = (r.micro_per_epoch + j->grad_accum - 1) / j->grad_accum;
	r.total_steps = j->max_steps > 0 ? j->max_steps : (long)j->n_epochs * r.steps_per_epoch;
	r.warmup = j->warmup_steps > 0 ? j->warmup_steps
				       : (long)ceil(j->warmup_ratio * (double)r.total_steps);
	r.st = (struct ft_ckpt_state){ .seed = j->seed,
				       .method = j->method,
				       .lora_r = lora ? j->lora.r : 0,
				       .lora_targets = lora ? j->lora.targets : 0,
				       .best_eval_loss = INFINITY };
	if (opts->resume_dir) {
		struct ft_ckpt_state want = r.st;
		rc = ft_ckpt_load(opts->resume_dir, r.be, r.tp, r.ntp, r.m, r.v, r.best,
				  &r.has_best, &want, &r.st, err);
		if (rc)
			goto free_order;
	}
	static const char *const mnames[] = {
		[FT_METHOD_LORA] = "lora", [FT_METHOD_FULL] = "full", [FT_METHOD_QLORA] = "qlora"
	};
	emit(r.fd,
	     "{\"type\":\"start\",\"method\":\"%s\",\"objective\":\"%s\","
	     "\"trainable_parameters\":%zu,\"total_steps\":%ld,\"steps_per_epoch\":%ld,"
	     "\"first_step\":%ld,\"threads\":%d,\"base_bytes_f32\":%zu,\"base_bytes_nf4\":%zu,"
	     "\"device\":\"%s\"}",
	     mnames[j->method], r.dpo ? "dpo" : "supervised", r.ntrain, r.total_steps,
	     r.steps_per_epoch, r.st.step, ft_pool_threads(), ft_model_f32_bytes(r.model),
	     ft_model_nf4_bytes(r.model), r.be->name);

	struct sigaction sa = { 0 }, old_term, old_int;
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	g_stop = 0;
	sigaction(SIGTERM, &sa, &old_term);
	sigaction(SIGINT, &sa, &old_int);
	rc = run_loop(&r, err);
	sigaction(SIGTERM, &old_term, NULL);
	sigaction(SIGINT, &old_int, NULL);
free_order:
	free(r.order);
	free(r.dpo_buf);
	free(r.dpo_scale);
	free(r.dpo_rows);
	free(r.ref_train);
	free(r.ref_val);
	ft_mbatch_release(&r.mb);
free_rows:
	ft_rows_release(&r.train);
	ft_rows_release(&r.val);
free_opt:
	r.be->free(r.opt_mem);
free_model:
	ft_model_free(r.model);
	return rc;
}
