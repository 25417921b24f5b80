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
 * Everything the next step computes follows from (weights, AdamW moments,
 * step, seed), all in the checkpoint, and every op sums in a fixed order:
 * a run stopped at step k and resumed gives bit-identical losses.
 *
 * Progress: one JSON object per line on progress_fd (docs/trainer.md).
 */
#include "ft/train.h"
#include "checkpoint_int.h"
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
	float *opt_mem; /* m | v | best, one block */
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
};

static void epoch_order(struct run *r, long epoch)
{
	if (r->order_epoch == epoch)
		return;
	size_t n = r->train.n_units;
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
	return (int)FT_MIN((size_t)r->job->batch_size, r->train.n_units - first);
}

static void copy_trainable(struct run *r, float *dst, bool to_model)
{
	size_t off = 0;
	for (size_t i = 0; i < r->ntp; i++) {
		if (to_model)
			memcpy(r->tp[i].data, dst + off, r->tp[i].n * sizeof(float));
		else
			memcpy(dst + off, r->tp[i].data, r->tp[i].n * sizeof(float));
		off += r->tp[i].n;
	}
}

static enum ft_rc evaluate(struct run *r, double *loss, double *acc, struct ft_err *err)
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
	*loss = st.n_tokens ? st.loss_sum / (double)st.n_tokens : NAN;
	*acc = st.n_tokens ? (double)st.n_correct / (double)st.n_tokens : NAN;
	return rc;
}

static enum ft_rc save_checkpoint(struct run *r, struct ft_err *err)
{
	r->st.data_epoch = r->st.step / r->steps_per_epoch;
	r->st.data_micro = (r->st.step % r->steps_per_epoch) * r->job->grad_accum;
	enum ft_rc rc = ft_ckpt_save(r->ckpt_dir, r->tp, r->ntp, r->m, r->v,
				     r->has_best ? r->best : NULL, &r->st, err);
	if (!rc)
		emit(r->fd, "{\"type\":\"checkpoint\",\"step\":%ld,\"path\":\"%s\"}", r->st.step,
		     r->ckpt_dir);
	return rc;
}

/* One optimizer step; returns the mean loss over its trained tokens. */
static enum ft_rc train_step(struct run *r, double *loss, double *gnorm, double *lr, long *tokens,
			     struct ft_err *err)
{
	const struct ft_train_job *j = r->job;
	const struct ft_backend *be = r->model->be;
	long step = r->st.step, epoch = step / r->steps_per_epoch;
	long first = (step % r->steps_per_epoch) * j->grad_accum;
	long last = FT_MIN(first + j->grad_accum, r->micro_per_epoch);
	epoch_order(r, epoch);

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
	r->st.tokens_seen += *tokens;
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
		double el, ea;
		if ((rc = evaluate(r, &el, &ea, err)))
			return rc;
		emit(r->fd,
		     "{\"type\":\"eval\",\"step\":0,\"eval_loss\":%s,\"eval_perplexity\":%s,"
		     "\"eval_token_accuracy\":%s,\"best\":false}",
		     num(b1, sizeof b1, el), num(b2, sizeof b2, exp(el)), num(b3, sizeof b3, ea));
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
		emit(r->fd,
		     "{\"type\":\"step\",\"step\":%ld,\"total_steps\":%ld,\"epoch\":%s,"
		     "\"train_loss\":%s,\"learning_rate\":%s,\"grad_norm\":%s,"
		     "\"tokens_per_second\":%.1f,\"eta_seconds\":%.1f}",
		     r->st.step, r->total_steps,
		     num(b1, sizeof b1, (double)r->st.step / (double)r->steps_per_epoch),
		     num(b2, sizeof b2, loss), num(b3, sizeof b3, lr), num(b4, sizeof b4, gnorm),
		     dt > 0 ? tokens / dt : 0.0, avg * (double)(r->total_steps - r->st.step));
		evaluated_last = false;
		if (r->has_val && j->eval_steps > 0 && r->st.step % j->eval_steps == 0) {
			double el, ea;
			if ((rc = evaluate(r, &el, &ea, err)))
				return rc;
			evaluated_last = true;
			bool better = el < r->st.best_eval_loss;
			if (better) {
				r->st.best_eval_loss = el;
				r->st.best_step = r->st.step;
				r->st.bad_evals = 0;
				if (j->early_stopping_patience > 0) {
					copy_trainable(r, r->best, false);
					r->has_best = true;
				}
			} else {
				r->st.bad_evals++;
			}
			emit(r->fd,
			     "{\"type\":\"eval\",\"step\":%ld,\"eval_loss\":%s,"
			     "\"eval_perplexity\":%s,\"eval_token_accuracy\":%s,\"best\":%s}",
			     r->st.step, num(b1, sizeof b1, el), num(b2, sizeof b2, exp(el)),
			     num(b3, sizeof b3, ea), better ? "true" : "false");
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
		double el, ea;
		if ((rc = evaluate(r, &el, &ea, err)))
			return rc;
		emit(r->fd,
		     "{\"type\":\"eval\",\"step\":%ld,\"eval_loss\":%s,\"eval_perplexity\":%s,"
		     "\"eval_token_accuracy\":%s,\"best\":%s}",
		     r->st.step, num(b1, sizeof b1, el), num(b2, sizeof b2, exp(el)),
		     num(b3, sizeof b3, ea), el < r->st.best_eval_loss ? "true" : "false");
		if (el < r->st.best_eval_loss && j->early_stopping_patience > 0) {
			r->st.best_eval_loss = el;
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

/* Pre-tokenized rows, or any dataset format through the tokenizer. */
static enum ft_rc load_rows(const struct ft_train_job *j, const char *path, int vocab, int max_len,
			    bool packing, struct ft_rows *rows, struct ft_err *err)
{
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
	rc = j->method == FT_METHOD_QLORA
		     ? ft_model_load_nf4(j->model, ft_backend_cpu(), j->double_quant, &r.model, err)
		     : ft_model_load(j->model, ft_backend_cpu(), &r.model, err);
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
	r.tp = ft_model_trainable(r.model, &r.ntp);
	for (size_t i = 0; i < r.ntp; i++)
		r.ntrain += r.tp[i].n;
	size_t nbest = j->early_stopping_patience > 0 ? r.ntrain : 0;
	r.opt_mem = calloc(2 * r.ntrain + nbest + 1, sizeof(float));
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
	r.order = calloc(r.train.n_units, sizeof(size_t));
	if (!r.order) {
		rc = ft_failf(err, FT_ENOMEM, NULL, "out of memory");
		goto free_rows;
	}
	r.micro_per_epoch = (long)((r.train.n_units + j->batch_size - 1) / j->batch_size);
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
		rc = ft_ckpt_load(opts->resume_dir, r.tp, r.ntp, r.m, r.v, r.best, &r.has_best,
				  &want, &r.st, err);
		if (rc)
			goto free_order;
	}
	static const char *const mnames[] = {
		[FT_METHOD_LORA] = "lora", [FT_METHOD_FULL] = "full", [FT_METHOD_QLORA] = "qlora"
	};
	emit(r.fd,
	     "{\"type\":\"start\",\"method\":\"%s\",\"trainable_parameters\":%zu,"
	     "\"total_steps\":%ld,\"steps_per_epoch\":%ld,\"first_step\":%ld,\"threads\":%d,"
	     "\"base_bytes_f32\":%zu,\"base_bytes_nf4\":%zu}",
	     mnames[j->method], r.ntrain, r.total_steps, r.steps_per_epoch, r.st.step,
	     ft_pool_threads(), ft_model_f32_bytes(r.model), ft_model_nf4_bytes(r.model));

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
	ft_mbatch_release(&r.mb);
free_rows:
	ft_rows_release(&r.train);
	ft_rows_release(&r.val);
free_opt:
	free(r.opt_mem);
free_model:
	ft_model_free(r.model);
	return rc;
}
