/*
 * ft/train.h - a training job: its JSON configuration and the loop that
 * runs it (trainer/src/train.c). The job file is documented field by field
 * in docs/trainer.md; ft_train_job_parse validates it and names the field in
 * every error ("hyperparameters.batch_size" must be an integer >= 1).
 */
#ifndef FT_TRAIN_H
#define FT_TRAIN_H

#include "ft/model.h"

enum ft_method { FT_METHOD_LORA = 0, FT_METHOD_FULL, FT_METHOD_QLORA };
enum ft_sched { FT_SCHED_LINEAR = 0, FT_SCHED_COSINE, FT_SCHED_CONSTANT };
/* The loss: next-token cross-entropy, or DPO over preference pairs. */
enum ft_objective { FT_OBJ_SUPERVISED = 0, FT_OBJ_DPO };

struct ft_train_job {
	char model[4096]; /* Hugging Face folder */
	char train_file[4096]; /* JSONL rows (SFT) or preference pairs (DPO) */
	char validation_file[4096]; /* "" when none */
	char output_dir[4096];
	enum ft_method method;
	enum ft_objective objective;
	struct ft_lora_config lora;
	bool double_quant; /* QLoRA: "qlora.double_quant" (default true) */
	char init_adapter[4096]; /* LoRA: start from this PEFT adapter ("" = peft's init) */
	char chat_template[32]; /* "" = the tokenizer's own (chat data only) */
	/* hyperparameters */
	int n_epochs;
	int batch_size;
	int grad_accum;
	long max_steps; /* > 0 overrides n_epochs */
	double learning_rate;
	enum ft_sched scheduler;
	long warmup_steps;
	double warmup_ratio;
	double weight_decay;
	double beta1, beta2, eps;
	double max_grad_norm; /* <= 0: no clipping */
	int max_seq_len; /* rows are truncated to this */
	bool packing;
	int grad_ckpt; /* activation checkpointing: recompute every k-th layer (0: off) */
	bool shuffle;
	uint64_t seed;
	long eval_steps; /* 0: evaluate only at the end */
	bool eval_on_start; /* evaluate before the first step too (the base model's loss) */
	int early_stopping_patience; /* 0: off */
	long save_steps; /* 0: checkpoint only on SIGTERM and at the end */
	bool save_merged; /* LoRA: also write a merged model folder */
	int threads; /* 0: FT_NUM_THREADS or all cores */
	char device[16]; /* "cpu" (default) | "cuda": ft_backend_select */
	/* DPO (objective dpo) */
	double dpo_beta; /* 0.1 */
	double dpo_label_smoothing; /* 0: trl's sigmoid loss; > 0: cDPO */
};

/* Defaults, then the JSON text. Unknown fields are errors. */
enum ft_rc ft_train_job_parse(const char *json_text, size_t len, struct ft_train_job *job,
			      struct ft_err *err);
enum ft_rc ft_train_job_load(const char *path, struct ft_train_job *job, struct ft_err *err);

struct ft_train_opts {
	int progress_fd; /* JSON lines go here (default 1) */
	const char *resume_dir; /* a checkpoint folder, or NULL */
	long stop_after_steps; /* > 0: checkpoint and stop after this many steps (tests) */
};

/* The learning-rate factor of 0-based optimizer step `step` (transformers'
 * get_{linear,cosine,constant}_schedule_with_warmup lambdas). */
double ft_train_lr_factor(enum ft_sched s, long step, long warmup, long total);

/* Run the job. Returns FT_OK also when stopped by SIGTERM/SIGINT after
 * writing a checkpoint (the last progress line says "interrupted"). */
enum ft_rc ft_train_run(const struct ft_train_job *job, const struct ft_train_opts *opts,
			struct ft_err *err);

#endif
