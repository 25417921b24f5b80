/*
 * train_int.h - the state of a training run (train.c, the loop) and the
 * objectives the loop drives (objective_sft.c, objective_dpo.c).
 *
 * The loop owns what every objective shares: the model and its trainable
 * tensors, AdamW, the schedule, the epoch's order of units and its
 * micro-batches, checkpoints, evaluation cadence, early stopping, progress
 * lines. An objective owns what it means to learn from a unit:
 *
 *   units      what an epoch goes over (SFT: rows or packed units of rows;
 *              DPO: preference pairs)
 *   setup      its own state once the data and model are loaded (DPO: the
 *              reference log-probs of full fine-tuning, buffers)
 *   step       the gradients of one optimizer step over micro-batches
 *              [first, last) of the epoch's order, and the step's loss
 *   evaluate   the loss (and metrics) on the validation rows
 *   fields     the metrics it adds to step and eval lines (ft/events.h)
 *   release    its state
 */
#ifndef FT_TRAIN_INT_H
#define FT_TRAIN_INT_H

#include "ft/train.h"
#include "checkpoint_int.h"
#include "dpo_int.h"
#include "../data/rows_int.h"

struct objective;

struct run {
	const struct ft_train_job *job;
	const struct ft_train_opts *opts;
	const struct objective *obj;
	void *obj_state; /* the objective's own (setup / release) */
	struct ft_model *model;
	struct ft_param *tp; /* trainable tensors */
	size_t ntp, ntrain; /* tensors, floats */
	const struct ft_backend *be;
	float *opt_mem; /* m | v | best, one block (backend memory) */
	float *m, *v, *best;
	struct ft_rows train, val;
	bool has_val;
	size_t n_units; /* what an epoch goes over (obj->units) */
	size_t *order;
	long order_epoch;
	long micro_per_epoch, steps_per_epoch, total_steps, warmup;
	struct ft_ckpt_state st;
	bool has_best;
	struct ft_mbatch mb;
	int fd;
	char ckpt_dir[4200];
	/* the final metrics the "done" line reports: train_loss and the
	 * objective's step metrics of the last step, the eval_* metrics of the
	 * last evaluation */
	json_t *final;
};

/* What an evaluation reports: the loss, SFT's token accuracy, DPO's metrics. */
struct eval_result {
	double loss, acc;
	struct ft_dpo_metrics dpo;
};

struct objective {
	const char *name; /* "supervised" | "dpo", as the start line says */
	size_t (*units)(const struct ft_rows *rows);
	enum ft_rc (*setup)(struct run *r, struct ft_err *err);
	enum ft_rc (*step)(struct run *r, long epoch, long first, long last, double *loss,
			   long *tokens, struct ft_err *err);
	enum ft_rc (*evaluate)(struct run *r, struct eval_result *e, struct ft_err *err);
	/* prefix "" with e NULL: the last step's metrics; "eval_" with e */
	void (*fields)(const struct run *r, const char *prefix, const struct eval_result *e,
		       json_t *o);
	void (*release)(struct run *r);
};
extern const struct objective ft_objective_sft, ft_objective_dpo;

/* train.c: units of micro-batch mi of the current epoch's order, and the
 * dropout seed of that micro-batch (a function of seed, epoch and mi, so a
 * resumed run draws the same masks). */
int ft_run_micro_units(const struct run *r, long mi, const size_t **units);
uint64_t ft_run_drop_seed(const struct run *r, long epoch, long mi);
/* A JSON number, or null for inf / nan. */
json_t *ft_run_jnum(double x);

#endif
