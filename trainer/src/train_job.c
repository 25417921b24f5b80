/*
 * train_job.c - the job file of `ft-train train --config job.json`.
 *
 * Shape (every field documented in docs/trainer.md; unknown fields are
 * errors, so a typo never silently trains with a default):
 *   {
 *     "model": "DIR",  "train_file": "rows.jsonl",  "validation_file": "val.jsonl",
 *     "output_dir": "DIR",  "method": "lora" | "full",  "seed": 42,  "threads": 0,
 *     "device": "cpu" | "cuda",
 *     "objective": "supervised" (the default) | "dpo",
 *     "lora": { "r": 8, "alpha": 16, "dropout": 0.05, "target_modules": [...] | "all-linear",
 *               "use_rslora": false },
 *     "hyperparameters": { "n_epochs": 3, "batch_size": 4, "learning_rate": 2e-4, ...,
 *                          "beta": 0.1, "label_smoothing": 0 (dpo only) }
 *   }
 * OpenAI's names are accepted beside ours: n_epochs (= epochs), batch_size,
 * learning_rate_multiplier (scales the method's default learning rate), and
 * "auto" for any of the three and for beta; training_file (= train_file).
 */
#include "ft/train.h"
#include "io_int.h"

#include <math.h>

#define DEFAULT_LR_LORA 2e-4
#define DEFAULT_LR_FULL 2e-5

static void defaults(struct ft_train_job *j)
{
	memset(j, 0, sizeof(*j));
	j->method = FT_METHOD_LORA;
	j->double_quant = true;
	j->lora = (struct ft_lora_config){ (1u << FT_LIN_Q) | (1u << FT_LIN_V), 8, 16.0, 0.05,
					   false };
	j->n_epochs = 3;
	j->batch_size = 4;
	j->grad_accum = 1;
	j->learning_rate = -1; /* the method's default */
	j->scheduler = FT_SCHED_LINEAR;
	j->weight_decay = 0.0;
	j->beta1 = 0.9;
	j->beta2 = 0.999;
	j->eps = 1e-8;
	j->max_grad_norm = 1.0;
	j->max_seq_len = 2048;
	j->shuffle = true;
	j->seed = 42;
	j->dpo_beta = 0.1; /* trl's DPOConfig and OpenAI's default */
}

static enum ft_rc get_path(const json_t *o, const char *key, unsigned flags, char *out,
			   size_t outsz, struct ft_err *err)
{
	const char *s = NULL;
	enum ft_rc rc = ft_json_get_str(o, key, flags | FT_JSON_NONEMPTY, &s, err);
	if (rc || !s)
		return rc;
	if (ft_strlcpy(out, s, outsz) >= outsz) {
		ft_failf(err, FT_EINVAL, "invalid_value", "\"%s\" is longer than %zu bytes", key,
			 outsz - 1);
		ft_err_param(err, key);
		return FT_EINVAL;
	}
	return FT_OK;
}

/* An integer, or the string "auto" (leaves *out as it is). */
static enum ft_rc get_int_auto(const json_t *o, const char *key, long long lo, long long hi,
			       long long *out, struct ft_err *err)
{
	json_t *v = json_object_get(o, key);
	if (v && json_is_string(v) && strcmp(json_string_value(v), "auto") == 0)
		return FT_OK;
	return ft_json_get_int(o, key, FT_JSON_NULL_OK, lo, hi, out, err);
}

/* gradient_checkpointing: false (off), true (every layer) or k >= 1 (layers
 * 0, k, 2k, ... recompute their activations in backward). */
static enum ft_rc get_checkpointing(const json_t *o, int *out, struct ft_err *err)
{
	json_t *v = json_object_get(o, "gradient_checkpointing");
	if (json_is_boolean(v)) {
		*out = json_is_true(v) ? 1 : 0;
		return FT_OK;
	}
	if (v && !json_is_null(v) && !json_is_integer(v)) {
		ft_failf(
			err, FT_EINVAL, "invalid_type",
			"\"hyperparameters.gradient_checkpointing\" must be true, false or a layer "
			"interval (got %s)",
			ft_json_type_name(v));
		ft_err_param(err, "gradient_checkpointing");
		return FT_EINVAL;
	}
	long long k = *out;
	enum ft_rc rc =
		ft_json_get_int(o, "gradient_checkpointing", FT_JSON_NULL_OK, 0, 1 << 20, &k, err);
	if (rc == FT_OK)
		*out = (int)k;
	return rc;
}

static enum ft_rc get_num_auto(const json_t *o, const char *key, double lo, double hi, double *out,
			       struct ft_err *err)
{
	json_t *v = json_object_get(o, key);
	if (v && json_is_string(v) && strcmp(json_string_value(v), "auto") == 0)
		return FT_OK;
	return ft_json_get_num(o, key, FT_JSON_NULL_OK, lo, hi, out, err);
}

static enum ft_rc parse_lora(const json_t *o, struct ft_lora_config *lc, struct ft_err *err)
{
	static const char *const keys[] = {
		"r",	      "alpha", "lora_alpha", "dropout", "lora_dropout", "target_modules",
		"use_rslora", NULL
	};
	long long r = lc->r;
	enum ft_rc rc;
	if ((rc = ft_json_check_keys(o, keys, err)) ||
	    (rc = ft_json_get_int(o, "r", FT_JSON_NULL_OK, 1, 4096, &r, err)) ||
	    (rc = ft_json_get_num(o, "alpha", FT_JSON_NULL_OK, 1e-9, 1e9, &lc->alpha, err)) ||
	    (rc = ft_json_get_num(o, "lora_alpha", FT_JSON_NULL_OK, 1e-9, 1e9, &lc->alpha, err)) ||
	    (rc = ft_json_get_num(o, "dropout", FT_JSON_NULL_OK, 0, 0.99, &lc->dropout, err)) ||
	    (rc = ft_json_get_num(o, "lora_dropout", FT_JSON_NULL_OK, 0, 0.99, &lc->dropout,
				  err)) ||
	    (rc = ft_json_get_bool(o, "use_rslora", FT_JSON_NULL_OK, &lc->rslora, err)))
		return rc;
	lc->r = (int)r;
	json_t *t = json_object_get(o, "target_modules");
	if (!t || json_is_null(t))
		return FT_OK;
	if (json_is_string(t)) {
		if (strcmp(json_string_value(t), "all-linear") != 0) {
			ft_failf(err, FT_EINVAL, "invalid_value",
				 "\"target_modules\" must be a list of names or \"all-linear\" "
				 "(got \"%s\")",
				 json_string_value(t));
			ft_err_param(err, "target_modules");
			return FT_EINVAL;
		}
		lc->targets = (1u << FT_LIN_COUNT) - 1;
		return FT_OK;
	}
	if (!json_is_array(t) || json_array_size(t) == 0) {
		ft_failf(err, FT_EINVAL, "invalid_type",
			 "\"target_modules\" must be a non-empty list or \"all-linear\" (got %s)",
			 ft_json_type_name(t));
		ft_err_param(err, "target_modules");
		return FT_EINVAL;
	}
	lc->targets = 0;
	size_t i;
	json_t *v;
	json_array_foreach(t, i, v)
	{
		enum ft_linear l;
		const char *name = json_is_string(v) ? json_string_value(v) : "";
		const char *dot = strrchr(name, '.');
		if (!ft_linear_parse(dot ? dot + 1 : name, &l)) {
			ft_failf(err, FT_EINVAL, "invalid_value",
				 "\"target_modules\"[%zu] must be one of q_proj, k_proj, v_proj, "
				 "o_proj, gate_proj, up_proj, down_proj",
				 i);
			ft_err_param(err, "target_modules");
			return FT_EINVAL;
		}
		lc->targets |= 1u << l;
	}
	return FT_OK;
}

static const struct {
	const char *name;
	enum ft_sched s;
} scheds[] = {
	{ "linear", FT_SCHED_LINEAR },
	{ "cosine", FT_SCHED_COSINE },
	{ "constant", FT_SCHED_CONSTANT },
	{ "constant_with_warmup", FT_SCHED_CONSTANT },
};

static enum ft_rc parse_hparams(const json_t *o, struct ft_train_job *j, bool *lr_given,
				double *mult, struct ft_err *err)
{
	static const char *const keys[] = { "n_epochs",
					    "epochs",
					    "batch_size",
					    "gradient_accumulation_steps",
					    "max_steps",
					    "learning_rate",
					    "learning_rate_multiplier",
					    "lr_scheduler_type",
					    "warmup_steps",
					    "warmup_ratio",
					    "weight_decay",
					    "adam_beta1",
					    "adam_beta2",
					    "adam_epsilon",
					    "max_grad_norm",
					    "max_seq_length",
					    "packing",
					    "gradient_checkpointing",
					    "shuffle",
					    "eval_steps",
					    "eval_on_start",
					    "early_stopping_patience",
					    "save_steps",
					    "beta",
					    "label_smoothing",
					    NULL };
	long long ep = j->n_epochs, bs = j->batch_size, ga = j->grad_accum, ms = j->max_steps;
	long long ws = j->warmup_steps, sl = j->max_seq_len, es = j->eval_steps,
		  pat = j->early_stopping_patience, ss = j->save_steps;
	double lr = j->learning_rate;
	const char *sched = NULL;
	enum ft_rc rc;
	if ((rc = ft_json_check_keys(o, keys, err)) ||
	    (rc = get_int_auto(o, "n_epochs", 1, 1000, &ep, err)) ||
	    (rc = ft_json_get_int(o, "epochs", FT_JSON_NULL_OK, 1, 1000, &ep, err)) ||
	    (rc = get_int_auto(o, "batch_size", 1, 4096, &bs, err)) ||
	    (rc = ft_json_get_int(o, "gradient_accumulation_steps", FT_JSON_NULL_OK, 1, 4096, &ga,
				  err)) ||
	    (rc = ft_json_get_int(o, "max_steps", FT_JSON_NULL_OK, -1, 1000000000, &ms, err)) ||
	    (rc = ft_json_get_num(o, "learning_rate", FT_JSON_NULL_OK, 0, 10, &lr, err)) ||
	    (rc = get_num_auto(o, "learning_rate_multiplier", 1e-6, 1e4, mult, err)) ||
	    (rc = ft_json_get_str(o, "lr_scheduler_type", FT_JSON_NULL_OK, &sched, err)) ||
	    (rc = ft_json_get_int(o, "warmup_steps", FT_JSON_NULL_OK, 0, 1000000000, &ws, err)) ||
	    (rc = ft_json_get_num(o, "warmup_ratio", FT_JSON_NULL_OK, 0, 1, &j->warmup_ratio,
				  err)) ||
	    (rc = ft_json_get_num(o, "weight_decay", FT_JSON_NULL_OK, 0, 10, &j->weight_decay,
				  err)) ||
	    (rc = ft_json_get_num(o, "adam_beta1", FT_JSON_NULL_OK, 0, 0.999999, &j->beta1, err)) ||
	    (rc = ft_json_get_num(o, "adam_beta2", FT_JSON_NULL_OK, 0, 0.99999999, &j->beta2,
				  err)) ||
	    (rc = ft_json_get_num(o, "adam_epsilon", FT_JSON_NULL_OK, 0, 1, &j->eps, err)) ||
	    (rc = ft_json_get_num(o, "max_grad_norm", FT_JSON_NULL_OK, 0, 1e9, &j->max_grad_norm,
				  err)) ||
	    (rc = ft_json_get_int(o, "max_seq_length", FT_JSON_NULL_OK, 2, 1 << 20, &sl, err)) ||
	    (rc = ft_json_get_bool(o, "packing", FT_JSON_NULL_OK, &j->packing, err)) ||
	    (rc = get_checkpointing(o, &j->grad_ckpt, err)) ||
	    (rc = ft_json_get_bool(o, "shuffle", FT_JSON_NULL_OK, &j->shuffle, err)) ||
	    (rc = ft_json_get_bool(o, "eval_on_start", FT_JSON_NULL_OK, &j->eval_on_start, err)) ||
	    (rc = ft_json_get_int(o, "eval_steps", FT_JSON_NULL_OK, 0, 1000000000, &es, err)) ||
	    (rc = ft_json_get_int(o, "early_stopping_patience", FT_JSON_NULL_OK, 0, 1000000, &pat,
				  err)) ||
	    (rc = ft_json_get_int(o, "save_steps", FT_JSON_NULL_OK, 0, 1000000000, &ss, err)) ||
	    (rc = get_num_auto(o, "beta", 1e-6, 1e3, &j->dpo_beta, err)) ||
	    (rc = ft_json_get_num(o, "label_smoothing", FT_JSON_NULL_OK, 0, 0.5,
				  &j->dpo_label_smoothing, err)))
		return rc;
	static const char *const dpo_only[] = { "beta", "label_smoothing" };
	for (size_t i = 0; i < FT_ARRAY_LEN(dpo_only); i++) {
		json_t *v = json_object_get(o, dpo_only[i]);
		if (j->objective != FT_OBJ_DPO && v && !json_is_null(v)) {
			ft_failf(err, FT_EINVAL, "invalid_value",
				 "\"%s\" is a DPO hyperparameter: set \"objective\": \"dpo\" or "
				 "remove it",
				 dpo_only[i]);
			ft_err_param(err, dpo_only[i]);
			return FT_EINVAL;
		}
	}
	*lr_given = lr >= 0;
	j->n_epochs = (int)ep, j->batch_size = (int)bs, j->grad_accum = (int)ga;
	j->max_steps = ms, j->learning_rate = lr, j->warmup_steps = ws, j->max_seq_len = (int)sl;
	j->eval_steps = es, j->early_stopping_patience = (int)pat, j->save_steps = ss;
	if (sched) {
		size_t i;
		for (i = 0; i < FT_ARRAY_LEN(scheds); i++)
			if (strcmp(sched, scheds[i].name) == 0)
				break;
		if (i == FT_ARRAY_LEN(scheds)) {
			ft_failf(err, FT_EINVAL, "invalid_value",
				 "\"lr_scheduler_type\" must be linear, cosine or constant (got "
				 "\"%s\")",
				 sched);
			ft_err_param(err, "lr_scheduler_type");
			return FT_EINVAL;
		}
		j->scheduler = scheds[i].s;
	}
	return FT_OK;
}

enum ft_rc ft_train_job_parse(const char *text, size_t len, struct ft_train_job *j,
			      struct ft_err *err)
{
	static const char *const keys[] = {
		"model",   "train_file",  "training_file", "validation_file", "output_dir",
		"method",  "lora",	  "adapter",	   "hyperparameters", "seed",
		"threads", "save_merged", "init_adapter",  "objective",	      "qlora",
		"device",  NULL
	};
	defaults(j);
	json_t *root = ft_json_parse(text, len, err);
	if (!root)
		return FT_EINVAL;
	enum ft_rc rc;
	const char *method = NULL;
	long long seed = 42, threads = 0;
	json_t *lora = NULL, *hp = NULL, *qlora = NULL;
	bool lr_given = false;
	double mult = 1.0;
	if (!json_is_object(root)) {
		rc = ft_failf(err, FT_EINVAL, "invalid_type", "the job must be an object (got %s)",
			      ft_json_type_name(root));
		goto free_root;
	}
	if ((rc = ft_json_check_keys(root, keys, err)) ||
	    (rc = get_path(root, "model", FT_JSON_REQUIRED, j->model, sizeof j->model, err)) ||
	    (rc = get_path(root, "train_file", 0, j->train_file, sizeof j->train_file, err)) ||
	    (rc = get_path(root, "training_file", 0, j->train_file, sizeof j->train_file, err)) ||
	    (rc = get_path(root, "validation_file", FT_JSON_NULL_OK, j->validation_file,
			   sizeof j->validation_file, err)) ||
	    (rc = get_path(root, "output_dir", FT_JSON_REQUIRED, j->output_dir,
			   sizeof j->output_dir, err)) ||
	    (rc = get_path(root, "init_adapter", FT_JSON_NULL_OK, j->init_adapter,
			   sizeof j->init_adapter, err)) ||
	    (rc = get_path(root, "chat_template", FT_JSON_NULL_OK, j->chat_template,
			   sizeof j->chat_template, err)) ||
	    (rc = ft_json_get_str(root, "method", FT_JSON_NULL_OK, &method, err)) ||
	    (rc = ft_json_get_int(root, "seed", FT_JSON_NULL_OK, 0, INT64_MAX, &seed, err)) ||
	    (rc = ft_json_get_int(root, "threads", FT_JSON_NULL_OK, 0, 256, &threads, err)) ||
	    (rc = ft_json_get_bool(root, "save_merged", FT_JSON_NULL_OK, &j->save_merged, err)) ||
	    (rc = ft_json_get_obj(root, "lora", FT_JSON_NULL_OK, &lora, err)) ||
	    (rc = ft_json_get_obj(root, "hyperparameters", FT_JSON_NULL_OK, &hp, err)) ||
	    (rc = ft_json_get_obj(root, "qlora", FT_JSON_NULL_OK, &qlora, err)))
		goto free_root;
	if (!lora && (rc = ft_json_get_obj(root, "adapter", FT_JSON_NULL_OK, &lora, err)))
		goto free_root;
	const char *objective = NULL, *device = NULL;
	if ((rc = ft_json_get_str(root, "objective", FT_JSON_NULL_OK, &objective, err)) ||
	    (rc = ft_json_get_str(root, "device", FT_JSON_NULL_OK, &device, err)))
		goto free_root;
	if (device && strcmp(device, "cpu") != 0 && strcmp(device, "cuda") != 0) {
		rc = ft_failf(err, FT_EINVAL, "invalid_value",
			      "\"device\" must be \"cpu\" or \"cuda\" (got \"%s\")", device);
		ft_err_param(err, "device");
		goto free_root;
	}
	ft_strlcpy(j->device, device ? device : "cpu", sizeof j->device);
	if (objective && strcmp(objective, "dpo") == 0) {
		j->objective = FT_OBJ_DPO;
	} else if (objective && strcmp(objective, "supervised") != 0 &&
		   strcmp(objective, "sft") != 0) {
		rc = ft_failf(err, FT_EINVAL, "invalid_value",
			      "\"objective\" must be \"supervised\" or \"dpo\" (got \"%s\")",
			      objective);
		ft_err_param(err, "objective");
		goto free_root;
	}
	if (!j->train_file[0]) {
		rc = ft_failf(err, FT_EINVAL, "missing_field", "\"train_file\" is required");
		ft_err_param(err, "train_file");
		goto free_root;
	}
	j->seed = (uint64_t)seed;
	j->threads = (int)threads;
	if (method && strcmp(method, "lora") == 0) {
		j->method = FT_METHOD_LORA;
		j->double_quant = true;
	} else if (method && strcmp(method, "full") == 0) {
		j->method = FT_METHOD_FULL;
	} else if (method && strcmp(method, "qlora") == 0) {
		j->method = FT_METHOD_QLORA;
	} else if (method) {
		rc = ft_failf(err, FT_EINVAL, "invalid_value",
			      "\"method\" must be \"lora\", \"qlora\" or \"full\" (got \"%s\")",
			      method);
		ft_err_param(err, "method");
		goto free_root;
	}
	if (qlora) {
		static const char *const qkeys[] = { "double_quant", NULL };
		if ((rc = ft_json_check_keys(qlora, qkeys, err)) ||
		    (rc = ft_json_get_bool(qlora, "double_quant", FT_JSON_NULL_OK, &j->double_quant,
					   err))) {
			ft_json_err_nest(err, "qlora");
			goto free_root;
		}
		if (j->method != FT_METHOD_QLORA) {
			rc = ft_failf(err, FT_EINVAL, "invalid_value",
				      "\"qlora\" is set but \"method\" is not \"qlora\"");
			ft_err_param(err, "qlora");
			goto free_root;
		}
	}
	if (lora && (rc = parse_lora(lora, &j->lora, err))) {
		ft_json_err_nest(err, "lora");
		goto free_root;
	}
	if (hp && (rc = parse_hparams(hp, j, &lr_given, &mult, err))) {
		ft_json_err_nest(err, "hyperparameters");
		goto free_root;
	}
	if (j->objective == FT_OBJ_DPO && j->packing) {
		rc = ft_failf(
			err, FT_EINVAL, "invalid_value",
			"\"hyperparameters.packing\" does not go with objective \"dpo\" (each "
			"pair is scored as two whole sequences): remove it");
		ft_err_param(err, "hyperparameters.packing");
		goto free_root;
	}
	if (!lr_given)
		j->learning_rate = j->method == FT_METHOD_FULL ? DEFAULT_LR_FULL : DEFAULT_LR_LORA;
	j->learning_rate *= mult;
free_root:
	json_decref(root);
	return rc;
}

enum ft_rc ft_train_job_load(const char *path, struct ft_train_job *job, struct ft_err *err)
{
	struct ft_buf b;
	ft_buf_init(&b, 1 << 20);
	enum ft_rc rc = ft_read_file(path, &b, err);
	if (!rc) {
		rc = ft_train_job_parse(ft_buf_str(&b), b.len, job, err);
		if (rc)
			ft_err_prefixf(err, "%s: ", path);
	}
	ft_buf_release(&b);
	return rc;
}
