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
 * What a unit is and how a step's gradients come from it is the job's
 * objective (train_int.h): supervised fine-tuning (objective_sft.c) or DPO
 * (objective_dpo.c); the loop above is the same for both.
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
#include "ft/clock.h"
#include "ft/events.h"
#include "ft/fs.h"
#include "ft/mem_estimate.h"
#include "ft/rng.h"
#include "ft/trainer.h"
#include "train_int.h"

#include <math.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
	(void)sig;
	g_stop = 1;
}

/* ---- progress lines ---- */

/* Write one progress line: {"type": <line>, fields...} (ft/events.h), in
 * the order the fields were set, strings escaped, whatever its length. */
static void emit(int fd, enum ft_line type, json_t *fields_new)
{
	json_t *o = json_pack("{s:s}", "type", ft_line_type(type));
	json_object_update(o, fields_new);
	json_decref(fields_new);
	char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(17));
	json_decref(o);
	if (!s)
		return;
	size_t n = strlen(s);
	s[n] = '\n'; /* over the terminator: the line is written by length */
	for (size_t off = 0; off < n + 1;) {
		ssize_t w = write(fd, s + off, n + 1 - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			break;
		off += (size_t)w;
	}
	free(s);
}

json_t *ft_run_jnum(double x)
{
	return isfinite(x) ? json_real(x) : json_null();
}

/* x rounded to `digits` decimals (rates and times in progress lines). */
static json_t *jround(double x, int digits)
{
	double f = pow(10.0, digits);
	return ft_run_jnum(round(x * f) / f);
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

int ft_run_micro_units(const struct run *r, long mi, const size_t **units)
{
	size_t first = (size_t)mi * r->job->batch_size;
	*units = r->order + first;
	return (int)FT_MIN((size_t)r->job->batch_size, r->n_units - first);
}

uint64_t ft_run_drop_seed(const struct run *r, long epoch, long mi)
{
	return ft_rng_derive(r->job->seed, FT_RNG_DROPOUT,
			     (uint64_t)(epoch * r->micro_per_epoch + mi));
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

/* ---- evaluation ---- */

/* Keep a line's metrics for the "done" line: those whose names start with
 * one of prefixes (the last line of each kind wins). */
static void keep_final(struct run *r, json_t *line, const char *const *prefixes)
{
	const char *k;
	json_t *v;
	json_object_foreach(line, k, v)
	{
		for (const char *const *p = prefixes; *p; p++)
			if (strncmp(k, *p, strlen(*p)) == 0) {
				json_object_set(r->final, k, v);
				break;
			}
	}
}

/* An "eval" line: the loss and the objective's metrics. */
static void emit_eval(struct run *r, long step, const struct eval_result *e, bool best)
{
	static const char *const kept[] = { "eval_", NULL };
	json_t *o = json_pack("{s:I, s:o}", "step", (json_int_t)step, "eval_loss",
			      ft_run_jnum(e->loss));
	r->obj->fields(r, "eval_", e, o);
	json_object_set_new(o, "best", json_boolean(best));
	keep_final(r, o, kept);
	emit(r->fd, FT_LINE_EVAL, o);
}

static enum ft_rc save_checkpoint(struct run *r, struct ft_err *err)
{
	r->st.data_epoch = r->st.step / r->steps_per_epoch;
	r->st.data_micro = (r->st.step % r->steps_per_epoch) * r->job->grad_accum;
	enum ft_rc rc = ft_ckpt_save(r->ckpt_dir, r->be, r->tp, r->ntp, r->m, r->v,
				     r->has_best ? r->best : NULL, &r->st, err);
	if (!rc && r->job->method != FT_METHOD_FULL) {
		/* the weights as a PEFT folder too, so that a stored checkpoint can
		 * become a model version (a promotion) without the trainer */
		char dir[4300];
		snprintf(dir, sizeof dir, "%s/adapter", r->ckpt_dir);
		rc = ft_model_lora_save_peft(r->model, dir, r->job->model, err);
	}
	if (!rc)
		emit(r->fd, FT_LINE_CHECKPOINT,
		     json_pack("{s:I, s:s}", "step", (json_int_t)r->st.step, "path", r->ckpt_dir));
	return rc;
}

static enum ft_rc apply_step(struct run *r, double *gnorm, double *lr, long tokens);

/* One optimizer step: the objective's gradients over the step's
 * micro-batches, then clipping and AdamW; the step's mean loss. */
static enum ft_rc train_step(struct run *r, double *loss, double *gnorm, double *lr, long *tokens,
			     struct ft_err *err)
{
	const struct ft_train_job *j = r->job;
	long step = r->st.step, epoch = step / r->steps_per_epoch;
	long first = (step % r->steps_per_epoch) * j->grad_accum;
	long last = FT_MIN(first + j->grad_accum, r->micro_per_epoch);
	epoch_order(r, epoch);
	enum ft_rc rc = r->obj->step(r, epoch, first, last, loss, tokens, err);
	return rc ? rc : apply_step(r, gnorm, lr, *tokens);
}

/* Clip, AdamW, count the step. */
static enum ft_rc apply_step(struct run *r, double *gnorm, double *lr, long tokens)
{
	const struct ft_train_job *j = r->job;
	const struct ft_backend *be = ft_model_backend(r->model);
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
		emit(r->fd, FT_LINE_ARTIFACT,
		     json_pack("{s:s, s:s}", "kind", "adapter", "path", dir));
		if (!j->save_merged)
			return FT_OK;
		ft_model_lora_merge(r->model);
	}
	snprintf(dir, sizeof dir, "%s/model", j->output_dir);
	rc = ft_model_save_hf(r->model, dir, j->model, err);
	if (!rc)
		emit(r->fd, FT_LINE_ARTIFACT,
		     json_pack("{s:s, s:s}", "kind", "model", "path", dir));
	return rc;
}

static enum ft_rc run_loop(struct run *r, struct ft_err *err)
{
	const struct ft_train_job *j = r->job;
	uint64_t t_start = ft_time_mono_ns();
	long first_step = r->st.step;
	bool evaluated_last = false;
	enum ft_rc rc = FT_OK;
	if (r->has_val && j->eval_on_start && r->st.step == 0) {
		/* The starting point's held-out loss (for LoRA: the base model, since
		 * B = 0). Logged only: it does not take part in early stopping. */
		struct eval_result e;
		if ((rc = r->obj->evaluate(r, &e, err)))
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
		json_t *o = json_pack("{s:I, s:I, s:o, s:o}", "step", (json_int_t)r->st.step,
				      "total_steps", (json_int_t)r->total_steps, "epoch",
				      ft_run_jnum((double)r->st.step / (double)r->steps_per_epoch),
				      "train_loss", ft_run_jnum(loss));
		r->obj->fields(r, "", NULL, o);
		json_object_set_new(o, "learning_rate", ft_run_jnum(lr));
		json_object_set_new(o, "grad_norm", ft_run_jnum(gnorm));
		json_object_set_new(o, "tokens_per_second", jround(dt > 0 ? tokens / dt : 0.0, 1));
		json_object_set_new(o, "eta_seconds",
				    jround(avg * (double)(r->total_steps - r->st.step), 1));
		static const char *const kept[] = { "train_loss", "rewards/", "logps/", NULL };
		keep_final(r, o, kept);
		emit(r->fd, FT_LINE_STEP, o);
		evaluated_last = false;
		if (r->has_val && j->eval_steps > 0 && r->st.step % j->eval_steps == 0) {
			struct eval_result e;
			if ((rc = r->obj->evaluate(r, &e, err)))
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
				emit(r->fd, FT_LINE_EARLY_STOP,
				     json_pack("{s:I, s:I, s:o}", "step", (json_int_t)r->st.step,
					       "best_step", (json_int_t)r->st.best_step,
					       "best_eval_loss",
					       ft_run_jnum(r->st.best_eval_loss)));
				break;
			}
		}
		bool stop_now = g_stop || (r->opts->stop_after_steps > 0 &&
					   r->st.step >= r->opts->stop_after_steps);
		if ((j->save_steps > 0 && r->st.step % j->save_steps == 0) || stop_now)
			if ((rc = save_checkpoint(r, err)))
				return rc;
		if (stop_now) {
			emit(r->fd, FT_LINE_INTERRUPTED,
			     json_pack("{s:I, s:s}", "step", (json_int_t)r->st.step, "checkpoint",
				       r->ckpt_dir));
			return FT_OK;
		}
	}
	if (r->has_val && !evaluated_last) {
		struct eval_result e;
		if ((rc = r->obj->evaluate(r, &e, err)))
			return rc;
		emit_eval(r, r->st.step, &e, e.loss < r->st.best_eval_loss);
		if (e.loss < r->st.best_eval_loss && j->early_stopping_patience > 0) {
			r->st.best_eval_loss = e.loss;
			r->st.best_step = r->st.step;
			copy_trainable(r, r->best, false);
			r->has_best = true;
		}
	}
	/* the adapter's settings before write_outputs may merge it away */
	json_t *hp = ft_train_job_hparams_json(j, ft_model_lora(r->model));
	if ((rc = save_checkpoint(r, err)) || (rc = write_outputs(r, err))) {
		json_decref(hp);
		return rc;
	}
	json_object_set_new(r->final, "step", json_integer((json_int_t)r->st.step));
	emit(r->fd, FT_LINE_DONE,
	     json_pack("{s:I, s:I, s:o, s:s, s:O, s:o}", "step", (json_int_t)r->st.step,
		       "tokens_seen", (json_int_t)r->st.tokens_seen, "seconds",
		       jround((ft_time_mono_ns() - t_start) * 1e-9, 3), "trainer_version",
		       ft_trainer_version(), "metrics", r->final, "hyperparameters", hp));
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
	struct ft_mem_job mj;
	ft_train_job_mem(j, &mc, 1, &mj);
	if ((rc = ft_mem_job_check(&mj, err)))
		return rc;
	struct ft_mem_estimate e;
	ft_mem_estimate(&mj, &e);
	return ft_mem_estimate_check(&mj, &e, free_b, err);
}

/* LoRA on the CPU: the frozen base's weights packed once for the forward's
 * GEMM (ft_model_pack, f32: the bits of the unpacked product, so losses and
 * adapters are unchanged), instead of each forward re-packing every weight
 * it multiplies by (a transposing copy per weight per micro-batch: about 8%
 * of a SmolLM2-135M step at 250 tokens, docs/performance.md). The copy costs
 * the base's size again in memory: skipped when that is not free twice over,
 * and FT_TRAIN_PACK=0 turns it off. */
static enum ft_rc pack_frozen_base(struct ft_model *m, const struct ft_backend *be, bool bf16,
				   struct ft_err *err)
{
	const char *env = getenv("FT_TRAIN_PACK");
	if (bf16 && !be->pw_bf16)
		fprintf(stderr,
			"ft-train: warning: base_dtype bf16: the %s backend has no bf16 "
			"weights (a CPU with AVX512-BF16 has); the base stays fp32 (the start "
			"line's base_dtype)\n",
			be->name);
	if (!be->host_memory || !be->pw_pack || (env && strcmp(env, "0") == 0))
		return FT_OK;
	const struct ft_model_config *c = ft_model_config(m);
	size_t C = (size_t)c->hidden_size, q = (size_t)c->num_heads * (size_t)c->head_dim,
	       kv = (size_t)c->num_kv_heads * (size_t)c->head_dim;
	size_t per_layer = 2 * C * q + 2 * C * kv + 3 * C * (size_t)c->intermediate_size;
	size_t bytes =
		sizeof(float) * ((size_t)c->vocab_size * C + per_layer * (size_t)c->num_layers);
	long pages = sysconf(_SC_AVPHYS_PAGES), pg = sysconf(_SC_PAGESIZE);
	if (pages > 0 && pg > 0 && (size_t)pages * (size_t)pg / 2 < bytes)
		return FT_OK;
	return ft_model_pack(m, bf16 && be->pw_bf16 ? FT_PW_BF16 : FT_PW_F32, err);
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

/* A checkpoint's record of layers_to_transform (FNV-1a over the layer
 * bitmap; 0 for every layer), so a resume with other layers is refused. */
static uint64_t layers_digest(const struct ft_lora_config *lc)
{
	if (!lc->some_layers)
		return 0;
	uint64_t h = UINT64_C(0xcbf29ce484222325);
	for (size_t i = 0; i < FT_ARRAY_LEN(lc->layers); i++)
		for (int b = 0; b < 64; b += 8)
			h = (h ^ ((lc->layers[i] >> b) & 0xff)) * UINT64_C(0x100000001b3);
	return h ? h : 1;
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
	if (!rc && lora && j->method != FT_METHOD_QLORA)
		rc = pack_frozen_base(r.model, r.be, j->base_bf16, err);
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
		/* max_eval_samples: the file's first rows (DPO: pairs, two rows each) */
		size_t keep = (size_t)j->max_eval_samples;
		if (keep && j->objective == FT_OBJ_DPO && keep < ft_pairs_count(&r.val))
			r.val.n = 2 * keep;
		else if (keep && j->objective != FT_OBJ_DPO && keep < r.val.n_units)
			r.val.n = r.val.unit_first[r.val.n_units = keep];
	}
	r.obj = j->objective == FT_OBJ_DPO ? &ft_objective_dpo : &ft_objective_sft;
	r.n_units = r.obj->units(&r.train);
	r.order = calloc(r.n_units, sizeof(size_t));
	if (!r.order) {
		rc = ft_failf(err, FT_ENOMEM, NULL, "out of memory");
		goto free_order;
	}
	if ((rc = r.obj->setup(&r, err)))
		goto free_order;
	r.micro_per_epoch = (long)((r.n_units + j->batch_size - 1) / j->batch_size);
	r.steps_per_epoch = (r.micro_per_epoch + j->grad_accum - 1) / j->grad_accum;
	r.total_steps = j->max_steps > 0 ? j->max_steps : (long)j->n_epochs * r.steps_per_epoch;
	r.warmup = j->warmup_steps > 0 ? j->warmup_steps
				       : (long)ceil(j->warmup_ratio * (double)r.total_steps);
	r.st = (struct ft_ckpt_state){ .seed = j->seed,
				       .method = j->method,
				       .lora_r = lora ? j->lora.r : 0,
				       .lora_targets = lora ? j->lora.targets : 0,
				       .lora_layers = lora ? layers_digest(&j->lora) : 0,
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
	const char *packed = ft_model_pack_name(r.model);
	emit(r.fd, FT_LINE_START,
	     json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:i, s:I, s:I, s:s, s:s}", "method",
		       mnames[j->method], "objective", r.obj->name, "trainable_parameters",
		       (json_int_t)r.ntrain, "total_steps", (json_int_t)r.total_steps,
		       "steps_per_epoch", (json_int_t)r.steps_per_epoch, "first_step",
		       (json_int_t)r.st.step, "threads", ft_pool_threads(), "base_bytes_f32",
		       (json_int_t)ft_model_f32_bytes(r.model), "base_bytes_nf4",
		       (json_int_t)ft_model_nf4_bytes(r.model), "device", r.be->name, "base_dtype",
		       packed && strcmp(packed, "bf16") == 0 ? "bf16" : "fp32"));

	struct sigaction sa = { 0 }, old_term, old_int;
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	g_stop = 0;
	sigaction(SIGTERM, &sa, &old_term);
	sigaction(SIGINT, &sa, &old_int);
	r.final = json_object();
	rc = run_loop(&r, err);
	sigaction(SIGTERM, &old_term, NULL);
	sigaction(SIGINT, &old_int, NULL);
free_order:
	if (r.obj)
		r.obj->release(&r);
	free(r.order);
	ft_mbatch_release(&r.mb);
free_rows:
	ft_rows_release(&r.train);
	ft_rows_release(&r.val);
free_opt:
	r.be->free(r.opt_mem);
free_model:
	ft_model_free(r.model);
	json_decref(r.final);
	return rc;
}
