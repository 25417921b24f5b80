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
 *               "use_rslora": false, "layers_to_transform": null | [i, ...] },
 *     "hyperparameters": { "n_epochs": 3, "batch_size": 4, "learning_rate": 2e-4, ...,
 *                          "beta": 0.1, "label_smoothing": 0 (dpo only) }
 *   }
 * OpenAI's names are accepted beside ours: n_epochs (= epochs), batch_size,
 * learning_rate_multiplier (scales the method's default learning rate), and
 * "auto" for any of the three and for beta; training_file (= train_file).
 */
#include "ft/chat.h"
#include "ft/train.h"
#include "ft/fs.h"
#include "ft/mem_estimate.h"

#include <math.h>

#define DEFAULT_LR_LORA 2e-4
#define DEFAULT_LR_FULL 2e-5

static void defaults(struct ft_train_job *j)
{
	memset(j, 0, sizeof(*j));
	j->method = FT_METHOD_LORA;
	j->double_quant = true;
	j->lora = (struct ft_lora_config){ .targets = (1u << FT_LIN_Q) | (1u << FT_LIN_V),
					   .r = 8,
					   .alpha = 16.0,
					   .dropout = 0.05,
					   .rslora = false };
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

static enum ft_rc parse_lora(const json_t *o, struct ft_lora_config *lc, struct ft_err *err)
{
	static const char *const keys[] = { "r",
					    "alpha",
					    "lora_alpha",
					    "dropout",
					    "lora_dropout",
					    "target_modules",
					    "use_rslora",
					    "layers_to_transform",
					    NULL };
	long long r = lc->r;
	enum ft_rc rc;
	if ((rc = ft_json_check_keys(o, keys, err)) ||
	    (rc = ft_json_get_int(o, "r", FT_JSON_NULL_OK, 1, 4096, &r, err)) ||
	    (rc = ft_json_get_num(o, "alpha", FT_JSON_NULL_OK, 1e-9, 1e9, &lc->alpha, err)) ||
	    (rc = ft_json_get_num(o, "lora_alpha", FT_JSON_NULL_OK, 1e-9, 1e9, &lc->alpha, err)) ||
	    (rc = ft_json_get_num(o, "dropout", FT_JSON_NULL_OK, 0, 0.99, &lc->dropout, err)) ||
	    (rc = ft_json_get_num(o, "lora_dropout", FT_JSON_NULL_OK, 0, 0.99, &lc->dropout,
				  err)) ||
	    (rc = ft_json_get_bool(o, "use_rslora", FT_JSON_NULL_OK, &lc->rslora, err)) ||
	    (rc = ft_lora_layers_parse(json_object_get(o, "layers_to_transform"),
				       "layers_to_transform", lc, err)))
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

/* A value of the hyperparameters object, already checked against the table
 * (hparams.c): absent, null and "auto" leave *out as it is. */
static void hp_int(const json_t *o, const char *k, long long *out)
{
	json_t *v = json_object_get(o, k);
	if (json_is_integer(v))
		*out = json_integer_value(v);
}

static void hp_num(const json_t *o, const char *k, double *out)
{
	json_t *v = json_object_get(o, k);
	if (json_is_number(v))
		*out = json_number_value(v);
}

static void hp_bool(const json_t *o, const char *k, bool *out)
{
	json_t *v = json_object_get(o, k);
	if (json_is_boolean(v))
		*out = json_is_true(v);
}

static enum ft_rc parse_hparams(json_t *o, struct ft_train_job *j, bool *lr_given, double *mult,
				struct ft_err *err)
{
	enum ft_rc rc = ft_hparams_check(o, j->objective == FT_OBJ_DPO, "hyperparameters", err);
	if (rc)
		return rc;
	long long ep = j->n_epochs, bs = j->batch_size, ga = j->grad_accum, ms = j->max_steps;
	long long ws = j->warmup_steps, sl = j->max_seq_len, es = j->eval_steps,
		  pat = j->early_stopping_patience, ss = j->save_steps, ck = j->grad_ckpt;
	double lr = j->learning_rate;
	hp_int(o, "n_epochs", &ep);
	hp_int(o, "epochs", &ep);
	hp_int(o, "batch_size", &bs);
	hp_int(o, "gradient_accumulation_steps", &ga);
	hp_int(o, "max_steps", &ms);
	hp_num(o, "learning_rate", &lr);
	hp_num(o, "learning_rate_multiplier", mult);
	hp_int(o, "warmup_steps", &ws);
	hp_num(o, "warmup_ratio", &j->warmup_ratio);
	hp_num(o, "weight_decay", &j->weight_decay);
	hp_num(o, "adam_beta1", &j->beta1);
	hp_num(o, "adam_beta2", &j->beta2);
	hp_num(o, "adam_epsilon", &j->eps);
	hp_num(o, "max_grad_norm", &j->max_grad_norm);
	hp_int(o, "max_seq_length", &sl);
	hp_bool(o, "packing", &j->packing);
	const char *bd = json_string_value(json_object_get(o, "base_dtype"));
	if (bd)
		j->base_bf16 = strcmp(bd, "bf16") == 0;
	json_t *gc = json_object_get(o, "gradient_checkpointing");
	if (json_is_boolean(gc)) /* true: every layer; false: off; k: layers 0, k, 2k, ... */
		ck = json_is_true(gc) ? 1 : 0;
	hp_int(o, "gradient_checkpointing", &ck);
	hp_bool(o, "shuffle", &j->shuffle);
	hp_bool(o, "eval_on_start", &j->eval_on_start);
	hp_int(o, "eval_steps", &es);
	long long mes = j->max_eval_samples;
	hp_int(o, "max_eval_samples", &mes);
	j->max_eval_samples = mes;
	hp_int(o, "early_stopping_patience", &pat);
	hp_int(o, "save_steps", &ss);
	hp_num(o, "beta", &j->dpo_beta);
	hp_num(o, "label_smoothing", &j->dpo_label_smoothing);
	*lr_given = lr >= 0;
	j->n_epochs = (int)ep, j->batch_size = (int)bs, j->grad_accum = (int)ga;
	j->max_steps = ms, j->learning_rate = lr, j->warmup_steps = ws, j->max_seq_len = (int)sl;
	j->eval_steps = es, j->early_stopping_patience = (int)pat, j->save_steps = ss;
	j->grad_ckpt = (int)ck;
	const char *sched = json_string_value(json_object_get(o, "lr_scheduler_type"));
	for (size_t i = 0; sched && i < FT_ARRAY_LEN(scheds); i++)
		if (strcmp(sched, scheds[i].name) == 0)
			j->scheduler = scheds[i].s;
	return FT_OK;
}

enum ft_rc ft_train_job_parse(const char *text, size_t len, struct ft_train_job *j,
			      struct ft_err *err)
{
	static const char *const keys[] = {
		"model",	   "train_file", "training_file", "validation_file",
		"output_dir",	   "method",	 "lora",	  "adapter",
		"hyperparameters", "seed",	 "threads",	  "save_merged",
		"init_adapter",	   "objective",	 "qlora",	  "device",
		"chat_template",   NULL
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
	if (j->chat_template[0]) {
		/* a name we render (the tokenizer's bos / eos do not matter here) */
		struct ft_chat_template *ct = NULL;
		if (ft_chat_template_new(j->chat_template, NULL, NULL, &ct, NULL)) {
			rc = ft_failf(err, FT_EINVAL, "unknown_template",
				      "\"chat_template\" \"%s\" is not a template ftplat renders",
				      j->chat_template);
			ft_err_hintf(err, "name one of: %s", ft_chat_template_names());
			ft_err_param(err, "chat_template");
			goto free_root;
		}
		ft_chat_template_free(ct);
	}
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
	if (hp && (rc = parse_hparams(hp, j, &lr_given, &mult, err)))
		goto free_root;
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

json_t *ft_train_job_from_spec(const struct ft_job_spec *s, struct ft_err *err)
{
	json_t *hp = json_deep_copy(s->hyperparameters);
	if (!json_is_object(hp)) {
		json_decref(hp);
		hp = json_object();
	}
	/* periodic checkpoints are what a job resumes from when its worker is lost */
	if (s->save_steps > 0 && !json_object_get(hp, "save_steps"))
		json_object_set_new(hp, "save_steps", json_integer(s->save_steps));
	/* the platform shows the held-out loss before training too */
	if (s->validation_file && s->eval_on_start && !json_object_get(hp, "eval_on_start"))
		json_object_set_new(hp, "eval_on_start", json_true());
	json_t *lora = json_incref(json_object_get(hp, "lora"));
	json_object_del(hp, "lora");
	const char *adapter = s->adapter ? s->adapter : "lora";
	json_t *t =
		json_pack("{s:s, s:s, s:s, s:s, s:o}", "model", s->model_dir, "train_file",
			  s->train_file, "output_dir", s->output_dir, "method",
			  strcmp(adapter, "none") == 0 ? "full" : adapter, "hyperparameters", hp);
	if (!t) {
		json_decref(lora);
		ft_failf(err, FT_EINVAL, NULL, "the job has fields of the wrong type");
		return NULL;
	}
	if (s->seed && !json_is_null(s->seed))
		json_object_set(t, "seed", s->seed);
	if (s->validation_file)
		json_object_set_new(t, "validation_file", json_string(s->validation_file));
	if (json_is_object(lora))
		json_object_set(t, "lora", lora);
	json_decref(lora);
	if (s->method && strcmp(s->method, "dpo") == 0)
		json_object_set_new(t, "objective", json_string("dpo"));
	if (s->init_adapter)
		json_object_set_new(t, "init_adapter", json_string(s->init_adapter));
	return t;
}

void ft_train_job_mem(const struct ft_train_job *j, const struct ft_model_config *mc, int gpus,
		      struct ft_mem_job *out)
{
	int seq = mc->max_position_embeddings > 0
			  ? FT_MIN(j->max_seq_len, mc->max_position_embeddings)
			  : j->max_seq_len;
	*out = (struct ft_mem_job){
		.model = mc,
		.method = j->method == FT_METHOD_FULL	 ? FT_MEM_FULL
			  : j->method == FT_METHOD_QLORA ? FT_MEM_QLORA
							 : FT_MEM_LORA,
		.lora_r = j->lora.r,
		.lora_targets = j->lora.targets,
		.lora_layers = ft_lora_layer_count(&j->lora, mc->num_layers),
		.lora_dropout = j->lora.dropout > 0,
		/* DPO runs chosen and rejected together: twice the rows */
		.batch_size = j->batch_size * (j->objective == FT_OBJ_DPO ? 2 : 1),
		.seq_len = seq,
		.checkpoint_every = j->grad_ckpt,
		.gpus = gpus > 0 ? gpus : 1,
		.fp32 = true, /* "device": "cuda" runs the fp32 path today */
	};
}

/* The hyperparameters a job runs with, every one resolved (defaults, the
 * learning-rate multiplier folded in), under the names of hparams.def:
 * what a model version records as its lineage. */
json_t *ft_train_job_hparams_json(const struct ft_train_job *j, const struct ft_lora_config *lc)
{
	static const char *const methods[] = {
		[FT_METHOD_LORA] = "lora", [FT_METHOD_FULL] = "full", [FT_METHOD_QLORA] = "qlora"
	};
	const char *sched = "linear";
	for (size_t i = 0; i < FT_ARRAY_LEN(scheds); i++)
		if (scheds[i].s == j->scheduler) {
			sched = scheds[i].name;
			break;
		}
	json_t *o = json_object();
	json_object_set_new(o, "method", json_string(methods[j->method]));
	json_object_set_new(o, "objective",
			    json_string(j->objective == FT_OBJ_DPO ? "dpo" : "supervised"));
	json_object_set_new(o, "seed", json_integer((json_int_t)j->seed));
	json_object_set_new(o, "n_epochs", json_integer(j->n_epochs));
	json_object_set_new(o, "batch_size", json_integer(j->batch_size));
	json_object_set_new(o, "gradient_accumulation_steps", json_integer(j->grad_accum));
	json_object_set_new(o, "max_steps", json_integer(j->max_steps > 0 ? j->max_steps : 0));
	json_object_set_new(o, "learning_rate", json_real(j->learning_rate));
	json_object_set_new(o, "lr_scheduler_type", json_string(sched));
	json_object_set_new(o, "warmup_steps", json_integer(j->warmup_steps));
	json_object_set_new(o, "warmup_ratio", json_real(j->warmup_ratio));
	json_object_set_new(o, "weight_decay", json_real(j->weight_decay));
	json_object_set_new(o, "adam_beta1", json_real(j->beta1));
	json_object_set_new(o, "adam_beta2", json_real(j->beta2));
	json_object_set_new(o, "adam_epsilon", json_real(j->eps));
	json_object_set_new(o, "max_grad_norm", json_real(j->max_grad_norm));
	json_object_set_new(o, "max_seq_length", json_integer(j->max_seq_len));
	json_object_set_new(o, "packing", json_boolean(j->packing));
	json_object_set_new(o, "base_dtype", json_string(j->base_bf16 ? "bf16" : "fp32"));
	json_object_set_new(o, "gradient_checkpointing", json_integer(j->grad_ckpt));
	json_object_set_new(o, "shuffle", json_boolean(j->shuffle));
	json_object_set_new(o, "eval_steps", json_integer(j->eval_steps));
	json_object_set_new(o, "max_eval_samples", json_integer(j->max_eval_samples));
	json_object_set_new(o, "eval_on_start", json_boolean(j->eval_on_start));
	json_object_set_new(o, "early_stopping_patience", json_integer(j->early_stopping_patience));
	json_object_set_new(o, "save_steps", json_integer(j->save_steps));
	if (j->objective == FT_OBJ_DPO) {
		json_object_set_new(o, "beta", json_real(j->dpo_beta));
		json_object_set_new(o, "label_smoothing", json_real(j->dpo_label_smoothing));
	}
	if (lc && j->method != FT_METHOD_FULL) {
		json_t *t = json_array();
		for (int k = 0; k < FT_LIN_COUNT; k++)
			if (lc->targets & (1u << k))
				json_array_append_new(
					t, json_string(ft_linear_name((enum ft_linear)k)));
		json_object_set_new(o, "lora",
				    json_pack("{s:i, s:f, s:f, s:o, s:b, s:o}", "r", lc->r, "alpha",
					      lc->alpha, "dropout", lc->dropout, "target_modules",
					      t, "use_rslora", lc->rslora, "layers_to_transform",
					      ft_lora_layers_json(lc)));
	}
	if (j->method == FT_METHOD_QLORA)
		json_object_set_new(o, "qlora",
				    json_pack("{s:b}", "double_quant", j->double_quant));
	return o;
}
