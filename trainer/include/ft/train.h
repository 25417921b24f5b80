/*
 * ft/train.h - a training job: its JSON configuration and the loop that
 * runs it (trainer/train/train.c). The job file is documented field by field
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
	bool base_bf16; /* "base_dtype": "bf16": a LoRA's frozen base packed in bf16 (CPU) */
	int grad_ckpt; /* activation checkpointing: recompute every k-th layer (0: off) */
	bool shuffle;
	uint64_t seed;
	long eval_steps; /* 0: evaluate only at the end */
	long max_eval_samples; /* > 0: evaluate on the first this many rows (DPO: pairs) */
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

/* ---- the platform's jobs ----
 * What a platform job (a row of ft-api's jobs table) becomes as an ft-train
 * job file: the worker writes it to job.json, and ft-api parses the same
 * object (with placeholder paths) when the job is created, so the trainer's
 * parser judges every job before it is queued. */
struct ft_job_spec {
	const char *model_dir, *train_file, *validation_file /* NULL: none */, *output_dir;
	const char *adapter; /* "none" (full fine-tuning), "lora", "qlora"; NULL: lora */
	const char *method; /* "supervised" or "dpo" */
	json_t *seed; /* an integer, or NULL */
	json_t *hyperparameters; /* the platform's: hyperparameters plus "lora" */
	long save_steps; /* > 0: checkpoint period when the job sets none */
	bool eval_on_start; /* with a validation file, unless the job says */
	/* a PEFT folder the LoRA starts from (continued training of a model
	 * version), or NULL */
	const char *init_adapter;
};
/* A new job object for ft_train_job_parse; NULL when a field has the wrong
 * type (err says which). */
json_t *ft_train_job_from_spec(const struct ft_job_spec *s, struct ft_err *err);

/* Every hyperparameter the job runs with, resolved (defaults applied, the
 * learning-rate multiplier folded into learning_rate), under hparams.def's
 * names, with "method", "objective", "seed" and the adapter's "lora" (lc:
 * the adapter actually trained, which init_adapter may have set; NULL for
 * full fine-tuning). The "done" line carries it; a model version records it. */
json_t *ft_train_job_hparams_json(const struct ft_train_job *j, const struct ft_lora_config *lc);

/* The GPU memory estimate's view of a job (ft/mem_estimate.h): the path the
 * job runs (today the fp32 path on CUDA), DPO's doubled rows, the sequence
 * cut to the model's positions. train checks it against the GPU's free
 * memory, ft-train estimate prints it, ft-api stores it with the job and the
 * scheduler places GPU jobs by it. gpus: the data-parallel degree. */
struct ft_mem_job;
void ft_train_job_mem(const struct ft_train_job *j, const struct ft_model_config *mc, int gpus,
		      struct ft_mem_job *out);

/* ---- hyperparameters: one table for the trainer, ft-api and the console
 * (hparams.c, where the table is written out) ---- */
enum ft_hp_kind { FT_HP_INT = 0, FT_HP_NUM, FT_HP_BOOL, FT_HP_BOOL_OR_INT, FT_HP_CHOICE };
enum ft_hp_flags {
	FT_HP_AUTO = 1 << 0, /* "auto" is accepted (OpenAI's) */
	FT_HP_DPO = 1 << 1, /* DPO jobs only */
	FT_HP_SFT = 1 << 2, /* supervised jobs only */
	FT_HP_ALIAS = 1 << 3, /* another name of the row above; not listed */
};
struct ft_hparam {
	const char *name;
	enum ft_hp_kind kind;
	double min, max;
	unsigned flags;
	const char *const *choices; /* FT_HP_CHOICE, NULL-terminated */
	const char *default_text;
	const char *help; /* one line, for forms and docs */
};
extern const struct ft_hparam ft_hparams[];
extern const size_t ft_n_hparams;
const struct ft_hparam *ft_hparam_find(const char *name);
/* Check one value (null passes): its name is known and fits the objective
 * (dpo or not), its type and range. err->param is prefix.name. */
enum ft_rc ft_hparam_check(const char *name, const json_t *v, bool dpo, const char *prefix,
			   struct ft_err *err);
/* Every field of an object. */
enum ft_rc ft_hparams_check(json_t *hp, bool dpo, const char *prefix, struct ft_err *err);
/* The table as JSON: [{name, type, minimum, maximum, choices, auto, method,
 * default, description}], aliases left out. */
json_t *ft_hparams_json(void);

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
