/*
 * jobs.c - /v1/fine_tuning/jobs, OpenAI-compatible, with our extensions.
 *
 * Create checks synchronously what it can (the model is visible to the
 * team, the files belong to it, the first example's format fits the
 * method, hyperparameters are in range) and writes the job, its first
 * transition and its first event in one transaction. The validator
 * threads (validator.c) then check every line and move the job to queued
 * or to failed with the line-numbered report as its error.
 *
 * Request fields (unknown ones are refused with 400 naming them):
 *   model, training_file, validation_file, method {type, supervised|dpo:
 *   {hyperparameters}}, hyperparameters (legacy), suffix, seed, metadata,
 *   integrations (null or []), and ours: adapter (none|lora|qlora),
 *   lora {r, alpha, dropout, target_modules}, gpus, priority.
 *
 * Status as shown to OpenAI clients: our "dispatched" reads "queued" and
 * "cancelling" reads "running"; the exact state is in "state".
 */
#include <unistd.h>

#include "api_int.h"

#define JOB_COLS                                                                                 \
	"id, model, training_file_id, validation_file_id, method, adapter, "                     \
	"hyperparameters::text, "                                                                \
	"suffix, seed, metadata::text, status, priority, requested_gpus, attempt, worker_id, "   \
	"error::text, fine_tuned_model, trained_tokens, latest_metrics::text, "                  \
	"extract(epoch from estimated_finish)::bigint, extract(epoch from created_at)::bigint, " \
	"extract(epoch from finished_at)::bigint, team_id, max_attempts"

static const struct {
	const char *state, *openai;
} status_map[] = {
	{ "validating_files", "validating_files" },
	{ "queued", "queued" },
	{ "dispatched", "queued" },
	{ "running", "running" },
	{ "cancelling", "running" },
	{ "succeeded", "succeeded" },
	{ "failed", "failed" },
	{ "cancelled", "cancelled" },
};

static const char *openai_status(const char *s)
{
	for (size_t i = 0; i < FT_ARRAY_LEN(status_map); i++)
		if (strcmp(status_map[i].state, s) == 0)
			return status_map[i].openai;
	return s;
}

static json_t *hp_or_auto(json_t *hp, const char *k)
{
	json_t *v = json_object_get(hp, k);
	return v ? json_incref(v) : json_string("auto");
}

static json_t *job_json(const PGresult *res, int i)
{
	json_t *j = json_object();
	json_t *hp = api_jsonb(res, i, 6);
	const char *method = PQgetvalue(res, i, 4);
	json_object_set_new(j, "id", json_string(PQgetvalue(res, i, 0)));
	json_object_set_new(j, "object", json_string("fine_tuning.job"));
	json_object_set_new(j, "created_at", api_epoch(res, i, 20));
	json_object_set_new(j, "error", api_jsonb(res, i, 15));
	json_object_set_new(j, "fine_tuned_model", api_text_or_null(res, i, 16));
	json_object_set_new(j, "finished_at", api_epoch(res, i, 21));
	json_t *pub =
		json_pack("{s:o,s:o,s:o}", "n_epochs", hp_or_auto(hp, "n_epochs"), "batch_size",
			  hp_or_auto(hp, "batch_size"), "learning_rate_multiplier",
			  hp_or_auto(hp, "learning_rate_multiplier"));
	json_object_set_new(j, "hyperparameters", json_deep_copy(pub));
	/* the method's hyperparameters: OpenAI's, then every one of ours set */
	json_t *mhp = json_deep_copy(pub);
	if (strcmp(method, "dpo") == 0)
		json_object_set_new(mhp, "beta", hp_or_auto(hp, "beta"));
	const char *hk;
	json_t *hv;
	json_object_foreach(hp, hk, hv)
	{
		if (strcmp(hk, "lora") != 0 && !json_object_get(mhp, hk))
			json_object_set(mhp, hk, hv);
	}
	json_object_set_new(
		j, "method",
		json_pack("{s:s,s:{s:o}}", "type", method, method, "hyperparameters", mhp));
	json_decref(pub);
	json_object_set_new(j, "model", json_string(PQgetvalue(res, i, 1)));
	json_object_set_new(j, "organization_id", json_string(PQgetvalue(res, i, 22)));
	json_object_set_new(j, "result_files", json_array());
	json_object_set_new(j, "seed", json_integer(strtoll(PQgetvalue(res, i, 8), NULL, 10)));
	json_object_set_new(j, "status", json_string(openai_status(PQgetvalue(res, i, 10))));
	json_object_set_new(j, "trained_tokens",
			    PQgetisnull(res, i, 17)
				    ? json_null()
				    : json_integer(strtoll(PQgetvalue(res, i, 17), NULL, 10)));
	json_object_set_new(j, "training_file", json_string(PQgetvalue(res, i, 2)));
	json_object_set_new(j, "validation_file", api_text_or_null(res, i, 3));
	json_object_set_new(j, "estimated_finish", api_epoch(res, i, 19));
	json_object_set_new(j, "integrations", json_array());
	json_object_set_new(j, "metadata", api_jsonb(res, i, 9));
	json_object_set_new(j, "user_provided_suffix", api_text_or_null(res, i, 7));
	/* ours */
	json_object_set_new(j, "state", json_string(PQgetvalue(res, i, 10)));
	json_object_set_new(j, "adapter", json_string(PQgetvalue(res, i, 5)));
	json_t *lora = json_object_get(hp, "lora");
	json_object_set_new(j, "lora", lora ? json_incref(lora) : json_null());
	json_object_set_new(j, "gpus", json_integer(strtoll(PQgetvalue(res, i, 12), NULL, 10)));
	json_object_set_new(j, "priority", json_integer(strtoll(PQgetvalue(res, i, 11), NULL, 10)));
	json_object_set_new(j, "attempt", json_integer(strtoll(PQgetvalue(res, i, 13), NULL, 10)));
	json_object_set_new(j, "max_attempts",
			    json_integer(strtoll(PQgetvalue(res, i, 23), NULL, 10)));
	json_object_set_new(j, "worker", api_text_or_null(res, i, 14));
	json_object_set_new(j, "latest_metrics", api_jsonb(res, i, 18));
	json_decref(hp);
	return j;
}

/* ---- request checking -------------------------------------------------- */

/* The hyperparameters a job accepts. OpenAI's (n_epochs, batch_size,
 * learning_rate_multiplier, and beta for dpo) also take "auto"; ours pass
 * to the trainer's job file as they are (docs/trainer.md), with the
 * trainer's own ranges, so a job the API accepts never fails there on one. */
enum hp_kind { HP_INT, HP_NUM, HP_BOOL, HP_BOOL_OR_INT, HP_CHOICE };

struct hp_rule {
	const char *name;
	enum hp_kind kind;
	double min, max;
	const char *method; /* NULL: any */
	bool openai; /* "auto" allowed */
	const char *const *choices; /* HP_CHOICE */
};

static const char *const schedulers[] = { "linear", "cosine", "constant", "constant_with_warmup",
					  NULL };

static const struct hp_rule hp_rules[] = {
	{ "n_epochs", HP_INT, 1, 50, NULL, true, NULL },
	{ "batch_size", HP_INT, 1, 256, NULL, true, NULL },
	{ "learning_rate_multiplier", HP_NUM, 1e-6, 100, NULL, true, NULL },
	{ "beta", HP_NUM, 1e-6, 2, "dpo", true, NULL },
	{ "label_smoothing", HP_NUM, 0, 0.5, "dpo", false, NULL },
	{ "learning_rate", HP_NUM, 0, 10, NULL, false, NULL },
	{ "lr_scheduler_type", HP_CHOICE, 0, 0, NULL, false, schedulers },
	{ "warmup_steps", HP_INT, 0, 1e9, NULL, false, NULL },
	{ "warmup_ratio", HP_NUM, 0, 1, NULL, false, NULL },
	{ "weight_decay", HP_NUM, 0, 10, NULL, false, NULL },
	{ "max_grad_norm", HP_NUM, 0, 1e9, NULL, false, NULL },
	{ "gradient_accumulation_steps", HP_INT, 1, 4096, NULL, false, NULL },
	{ "max_steps", HP_INT, 1, 1e9, NULL, false, NULL },
	{ "max_seq_length", HP_INT, 2, 1 << 20, NULL, false, NULL },
	{ "packing", HP_BOOL, 0, 0, "supervised", false, NULL },
	{ "shuffle", HP_BOOL, 0, 0, NULL, false, NULL },
	{ "gradient_checkpointing", HP_BOOL_OR_INT, 0, 1 << 20, NULL, false, NULL },
	{ "eval_steps", HP_INT, 0, 1e9, NULL, false, NULL },
	{ "eval_on_start", HP_BOOL, 0, 0, NULL, false, NULL },
	{ "early_stopping_patience", HP_INT, 0, 1e6, NULL, false, NULL },
	{ "save_steps", HP_INT, 0, 1e9, NULL, false, NULL },
};

static const char *const hp_kind_names[] = {
	[HP_INT] = "an integer",     [HP_NUM] = "a number",
	[HP_BOOL] = "true or false", [HP_BOOL_OR_INT] = "true, false or an integer",
	[HP_CHOICE] = "a string",
};

static bool hp_type_ok(const struct hp_rule *rule, const json_t *v)
{
	switch (rule->kind) {
	case HP_INT: return json_is_integer(v);
	case HP_NUM: return json_is_number(v);
	case HP_BOOL: return json_is_boolean(v);
	case HP_BOOL_OR_INT: return json_is_boolean(v) || json_is_integer(v);
	default: return json_is_string(v);
	}
}

/* Copy the hyperparameters in src (each in range, or "auto" for OpenAI's)
 * into dst. */
static enum ft_rc check_hp(struct api_req *r, json_t *src, const char *param, const char *method,
			   json_t *dst)
{
	if (!json_is_object(src)) {
		ft_failf(&r->err, FT_EINVAL, "invalid_type", "\"%s\" must be an object (got %s)",
			 param, ft_json_type_name(src));
		ft_err_param(&r->err, param);
		return FT_EINVAL;
	}
	const char *k;
	json_t *v;
	json_object_foreach(src, k, v)
	{
		const struct hp_rule *rule = NULL;
		char p[128];
		snprintf(p, sizeof(p), "%s.%s", param, k);
		for (size_t i = 0; i < FT_ARRAY_LEN(hp_rules); i++)
			if (strcmp(hp_rules[i].name, k) == 0)
				rule = &hp_rules[i];
		if (!rule || (rule->method && strcmp(rule->method, method) != 0)) {
			if (rule)
				ft_failf(&r->err, FT_EINVAL, "unknown_field",
					 "unknown field \"%s\" (only for method \"%s\")", p,
					 rule->method);
			else
				ft_failf(&r->err, FT_EINVAL, "unknown_field",
					 "unknown field \"%s\"", p);
			ft_err_param(&r->err, p);
			return FT_EINVAL;
		}
		if (json_is_null(v))
			continue;
		if (rule->openai && json_is_string(v) &&
		    strcmp(json_string_value(v), "auto") == 0) {
			json_object_set(dst, k, v);
			continue;
		}
		if (!hp_type_ok(rule, v)) {
			ft_failf(&r->err, FT_EINVAL, "invalid_type", "\"%s\" must be %s%s (got %s)",
				 p, rule->openai ? "\"auto\" or " : "", hp_kind_names[rule->kind],
				 ft_json_type_name(v));
			ft_err_param(&r->err, p);
			return FT_EINVAL;
		}
		if (rule->kind == HP_CHOICE) {
			const char *const *c = rule->choices;
			while (*c && strcmp(*c, json_string_value(v)) != 0)
				c++;
			if (!*c) {
				char all[256];
				size_t n = 0;
				for (c = rule->choices; *c && n < sizeof(all); c++)
					n += (size_t)snprintf(all + n, sizeof(all) - n, "%s%s",
							      c == rule->choices ? "" : ", ", *c);
				ft_failf(&r->err, FT_EINVAL, "invalid_value",
					 "\"%s\" must be one of %s (got \"%.64s\")", p, all,
					 json_string_value(v));
				ft_err_param(&r->err, p);
				return FT_EINVAL;
			}
		} else if (!json_is_boolean(v)) {
			double x = json_number_value(v);
			if (!(x >= rule->min && x <= rule->max)) {
				ft_failf(&r->err, FT_EINVAL, "out_of_range",
					 "\"%s\" must be between %g and %g (got %g)", p, rule->min,
					 rule->max, x);
				ft_err_param(&r->err, p);
				return FT_EINVAL;
			}
		}
		json_object_set(dst, k, v);
	}
	return FT_OK;
}

static enum ft_rc check_method(struct api_req *r, json_t *m, const char **type, json_t *hp)
{
	static const char *const keys[] = { "type", "supervised", "dpo", NULL };
	if (!json_is_object(m)) {
		ft_failf(&r->err, FT_EINVAL, "invalid_type",
			 "\"method\" must be an object (got %s)", ft_json_type_name(m));
		ft_err_param(&r->err, "method");
		return FT_EINVAL;
	}
	if (api_check_keys(r, m, "method", keys))
		return FT_EINVAL;
	if (ft_json_get_str(m, "type", FT_JSON_REQUIRED, type, &r->err)) {
		ft_json_err_nest(&r->err, "method");
		return FT_EINVAL;
	}
	if (strcmp(*type, "supervised") && strcmp(*type, "dpo")) {
		ft_failf(&r->err, FT_EINVAL, "invalid_value",
			 "\"method.type\" must be \"supervised\" or \"dpo\"");
		ft_err_param(&r->err, "method.type");
		return FT_EINVAL;
	}
	const char *other = strcmp(*type, "dpo") == 0 ? "supervised" : "dpo";
	json_t *o = json_object_get(m, other);
	if (o && !json_is_null(o)) {
		ft_failf(&r->err, FT_EINVAL, "invalid_value",
			 "\"method.%s\" does not go with method type \"%s\"", other, *type);
		ft_err_param(&r->err, api_printf(r->arena, "method.%s", other));
		return FT_EINVAL;
	}
	json_t *sub = json_object_get(m, *type);
	if (!sub || json_is_null(sub))
		return FT_OK;
	char param[64];
	snprintf(param, sizeof(param), "method.%s", *type);
	static const char *const subkeys[] = { "hyperparameters", NULL };
	if (!json_is_object(sub)) {
		ft_failf(&r->err, FT_EINVAL, "invalid_type", "\"%s\" must be an object (got %s)",
			 param, ft_json_type_name(sub));
		ft_err_param(&r->err, param);
		return FT_EINVAL;
	}
	if (api_check_keys(r, sub, param, subkeys))
		return FT_EINVAL;
	json_t *h = json_object_get(sub, "hyperparameters");
	if (!h || json_is_null(h))
		return FT_OK;
	return check_hp(r, h, api_printf(r->arena, "%s.hyperparameters", param), *type, hp);
}

static enum ft_rc check_lora(struct api_req *r, json_t *l, json_t *hp)
{
	static const char *const keys[] = { "r", "alpha", "dropout", "target_modules", NULL };
	long long rank = 16;
	double alpha = 32, dropout = 0.05;
	json_t *out = json_object();
	json_object_set_new(hp, "lora", out);
	if (l && !json_is_null(l)) {
		if (!json_is_object(l)) {
			ft_failf(&r->err, FT_EINVAL, "invalid_type",
				 "\"lora\" must be an object (got %s)", ft_json_type_name(l));
			ft_err_param(&r->err, "lora");
			return FT_EINVAL;
		}
		if (api_check_keys(r, l, "lora", keys) ||
		    ft_json_get_int(l, "r", FT_JSON_NULL_OK, 1, 1024, &rank, &r->err) ||
		    ft_json_get_num(l, "alpha", FT_JSON_NULL_OK, 1e-6, 65536, &alpha, &r->err) ||
		    ft_json_get_num(l, "dropout", FT_JSON_NULL_OK, 0, 0.95, &dropout, &r->err)) {
			ft_json_err_nest(&r->err, "lora");
			return FT_EINVAL;
		}
		json_t *t = json_object_get(l, "target_modules");
		if (t && !json_is_null(t)) {
			size_t i;
			json_t *x;
			bool ok = json_is_array(t) && json_array_size(t) > 0 &&
				  json_array_size(t) <= 32;
			json_array_foreach(t, i, x)
			{
				if (!json_is_string(x) || json_string_length(x) == 0 ||
				    !api_valid_text(json_string_value(x), 64))
					ok = false;
			}
			if (!ok) {
				ft_failf(&r->err, FT_EINVAL, "invalid_type",
					 "\"lora.target_modules\" must be a list of 1 to 32 module "
					 "names");
				ft_err_param(&r->err, "lora.target_modules");
				return FT_EINVAL;
			}
			json_object_set(out, "target_modules", t);
		}
	}
	json_object_set_new(out, "r", json_integer(rank));
	json_object_set_new(out, "alpha", json_real(alpha));
	json_object_set_new(out, "dropout", json_real(dropout));
	return FT_OK;
}

static enum ft_rc check_metadata(struct api_req *r, json_t *m)
{
	const char *k;
	json_t *v;
	if (!json_is_object(m) || json_object_size(m) > 16) {
		ft_failf(&r->err, FT_EINVAL, "invalid_type",
			 "\"metadata\" must be an object of at most 16 string values");
		ft_err_param(&r->err, "metadata");
		return FT_EINVAL;
	}
	json_object_foreach(m, k, v)
	{
		if (strlen(k) == 0 || strlen(k) > 64 || !api_valid_text(k, 64) ||
		    !json_is_string(v) || json_string_length(v) > 512 ||
		    !api_valid_text(json_string_value(v), 512)) {
			ft_failf(&r->err, FT_EINVAL, "invalid_value",
				 "\"metadata\" keys must be 1 to 64 characters and values strings "
				 "of at most 512");
			ft_err_param(&r->err, "metadata");
			return FT_EINVAL;
		}
	}
	return FT_OK;
}

/* The file row for a job's training or validation file: belongs to the team. */
static const char *team_file(struct api_req *r, const char *param, const char *id)
{
	if (!ft_id_valid(FT_ID_FILE, id)) {
		ft_failf(&r->err, FT_EINVAL, "invalid_file", "\"%s\" must be a file id (file-...)",
			 param);
		ft_err_param(&r->err, param);
		return NULL;
	}
	const char *p[] = { id, r->team_id };
	PGresult *res = api_db(r,
			       "SELECT sha256 FROM files WHERE id = $1 AND team_id = $2 "
			       "AND deleted_at IS NULL AND purpose = 'fine-tune'",
			       2, p);
	if (!res)
		return NULL;
	if (PQntuples(res) == 0) {
		ft_failf(&r->err, FT_EINVAL, "file_not_found", "%s \"%s\" does not exist", param,
			 id);
		ft_err_param(&r->err, param);
		return NULL;
	}
	return PQgetvalue(res, 0, 0);
}

/* Detect the format of the first non-blank line; FT_DS_UNKNOWN when it
 * cannot be told (the asynchronous validation will say why). */
static enum ft_ds_format sniff_format(struct api_req *r, const char *sha)
{
	char key[FT_STORE_KEY_MAX];
	struct ft_err e;
	ft_err_clear(&e);
	ft_store_key_for(sha, key);
	int fd = ft_store_open_read(r->ctx->store, key, NULL, &e);
	if (fd < 0)
		return FT_DS_UNKNOWN;
	size_t cap = 1u << 20, len = 0;
	char *buf = malloc(cap);
	enum ft_ds_format f = FT_DS_UNKNOWN;
	if (!buf)
		goto close_fd;
	while (len < cap) {
		ssize_t n = read(fd, buf + len, cap - len);
		if (n <= 0)
			break;
		len += (size_t)n;
		if (memchr(buf + len - (size_t)n, '\n', (size_t)n))
			break;
	}
	size_t start = 0;
	while (start < len) {
		char *nl = memchr(buf + start, '\n', len - start);
		size_t end = nl ? (size_t)(nl - buf) : len;
		json_t *v = ft_json_parse(buf + start, end - start, NULL);
		bool blank = true;
		for (size_t i = start; i < end; i++)
			if (!strchr(" \t\r", buf[i]))
				blank = false;
		if (!blank) {
			f = ft_ds_format_detect(v);
			json_decref(v);
			break;
		}
		json_decref(v);
		if (!nl)
			break;
		start = end + 1;
	}
	free(buf);
close_fd:
	close(fd);
	return f;
}

static enum ft_rc check_file_format(struct api_req *r, const char *param, const char *id,
				    const char *sha, const char *method)
{
	enum ft_ds_format f = sniff_format(r, sha);
	if (f == FT_DS_UNKNOWN || ft_ds_format_fits(f, method))
		return FT_OK;
	ft_failf(&r->err, FT_EINVAL, "invalid_file_format",
		 "%s \"%s\" line 1 is in format \"%s\", which cannot train with method \"%s\"%s",
		 param, id, ft_ds_format_name(f), method,
		 strcmp(method, "dpo") == 0
			 ? " (dpo needs \"prompt\"/\"chosen\"/\"rejected\" or \"preferred_output\")"
			 : " (use method \"dpo\" for preference data)");
	ft_err_param(&r->err, param);
	ft_err_line(&r->err, 1);
	return FT_EINVAL;
}

enum ft_rc api_job_event(PGconn *db, const char *job_id, const char *level, const char *type,
			 const char *message, const char *data_json, struct ft_err *err)
{
	char id[FT_ID_MAX];
	ft_id_new(FT_ID_EVENT, id);
	const char *p[] = { id, job_id, level, type, message, data_json };
	return ft_pg_command(
		db, err,
		"INSERT INTO job_events (id, job_id, attempt, level, type, message, data) "
		"SELECT $1, $2, attempt, $3, $4, $5, $6::jsonb FROM jobs WHERE id = $2",
		6, p);
}

/* The job as this transaction sees it (what the caller just did, before the
 * validator threads can move it on). */
static enum ft_rc job_in_tx(struct api_req *r, const char *id)
{
	const char *p[] = { id };
	PGresult *res = api_db(r, "SELECT " JOB_COLS " FROM jobs WHERE id = $1", 1, p);
	if (!res)
		return r->err.rc;
	r->resp = api_own(r, job_json(res, 0));
	return FT_OK;
}

static enum ft_rc job_by_id(struct api_req *r, const char *id)
{
	if (!ft_id_valid(FT_ID_JOB, id))
		return api_not_found(r, "fine-tuning job", id);
	const char *p[] = { id, r->team_id };
	PGresult *res = api_db_prepared(
		r, "ft_job_get", "SELECT " JOB_COLS " FROM jobs WHERE id = $1 AND team_id = $2", 2,
		p);
	if (!res)
		return r->err.rc;
	if (PQntuples(res) == 0)
		return api_not_found(r, "fine-tuning job", id);
	r->resp = api_own(r, job_json(res, 0));
	return FT_OK;
}

enum ft_rc h_jobs_create(struct api_req *r)
{
	static const char *const keys[] = { "model",
					    "training_file",
					    "validation_file",
					    "method",
					    "hyperparameters",
					    "suffix",
					    "seed",
					    "metadata",
					    "integrations",
					    "adapter",
					    "lora",
					    "gpus",
					    "priority",
					    NULL };
	json_t *b;
	const char *model = NULL, *tf = NULL, *vf = NULL, *suffix = NULL, *method = "supervised";
	const char *adapter = "lora";
	long long seed = -1, gpus = 0, priority = 0;
	if (api_body_object(r, false, &b) || api_check_keys(r, b, NULL, keys) ||
	    ft_json_get_str(b, "model", FT_JSON_REQUIRED | FT_JSON_NONEMPTY, &model, &r->err) ||
	    ft_json_get_str(b, "training_file", FT_JSON_REQUIRED | FT_JSON_NONEMPTY, &tf,
			    &r->err) ||
	    ft_json_get_str(b, "validation_file", FT_JSON_NULL_OK, &vf, &r->err) ||
	    ft_json_get_str(b, "suffix", FT_JSON_NULL_OK, &suffix, &r->err) ||
	    ft_json_get_int(b, "seed", FT_JSON_NULL_OK, 0, 2147483647, &seed, &r->err) ||
	    ft_json_get_str(b, "adapter", FT_JSON_NULL_OK, &adapter, &r->err) ||
	    ft_json_get_int(b, "gpus", FT_JSON_NULL_OK, 0, 64, &gpus, &r->err) ||
	    ft_json_get_int(b, "priority", FT_JSON_NULL_OK, -100, 100, &priority, &r->err))
		return FT_EINVAL;
	if (!api_valid_text(model, 256)) {
		ft_failf(&r->err, FT_EINVAL, "invalid_value", "\"model\" is not a model name");
		ft_err_param(&r->err, "model");
		return FT_EINVAL;
	}
	if (suffix && (strlen(suffix) > 64 || !api_valid_text(suffix, 64))) {
		ft_failf(&r->err, FT_EINVAL, "invalid_value",
			 "\"suffix\" must be at most 64 printable characters");
		ft_err_param(&r->err, "suffix");
		return FT_EINVAL;
	}
	if (strcmp(adapter, "lora") && strcmp(adapter, "qlora") && strcmp(adapter, "none")) {
		ft_failf(&r->err, FT_EINVAL, "invalid_value",
			 "\"adapter\" must be \"lora\", \"qlora\" or \"none\"");
		ft_err_param(&r->err, "adapter");
		return FT_EINVAL;
	}
	json_t *integ = json_object_get(b, "integrations");
	if (integ && !json_is_null(integ) &&
	    !(json_is_array(integ) && json_array_size(integ) == 0)) {
		ft_failf(&r->err, FT_EINVAL, "unsupported", "\"integrations\" are not supported");
		ft_err_param(&r->err, "integrations");
		return FT_EINVAL;
	}
	json_t *hp = api_own(r, json_object());
	json_t *m = json_object_get(b, "method");
	if (m && !json_is_null(m) && check_method(r, m, &method, hp))
		return FT_EINVAL;
	json_t *legacy = json_object_get(b, "hyperparameters");
	if (legacy && !json_is_null(legacy)) {
		json_t *tmp = api_own(r, json_object());
		if (check_hp(r, legacy, "hyperparameters", method, tmp))
			return FT_EINVAL;
		const char *k;
		json_t *v;
		json_object_foreach(tmp, k, v)
		{
			if (!json_object_get(hp, k))
				json_object_set(hp, k, v);
		}
	}
	json_t *lora = json_object_get(b, "lora");
	if (strcmp(adapter, "none") == 0) {
		if (lora && !json_is_null(lora)) {
			ft_failf(&r->err, FT_EINVAL, "invalid_value",
				 "\"lora\" needs adapter \"lora\" or \"qlora\"");
			ft_err_param(&r->err, "lora");
			return FT_EINVAL;
		}
	} else if (check_lora(r, lora, hp)) {
		return FT_EINVAL;
	}
	json_t *meta = json_object_get(b, "metadata");
	if (meta && json_is_null(meta))
		meta = NULL;
	if (meta && check_metadata(r, meta))
		return FT_EINVAL;

	/* What exists and belongs to the team. */
	const char *pm[] = { model, r->team_id };
	PGresult *mres = api_db(r,
				"SELECT id, parameter_count, coalesce(config->>'hidden_size', '0'),"
				" coalesce(config->>'num_hidden_layers', '0') FROM base_models"
				" WHERE name = $1 AND (team_id IS NULL OR team_id = $2)",
				2, pm);
	if (!mres)
		return r->err.rc;
	if (PQntuples(mres) == 0) {
		ft_failf(&r->err, FT_EINVAL, "model_not_found",
			 "model \"%s\" does not exist; list the base models with GET /v1/models",
			 model);
		ft_err_param(&r->err, "model");
		return FT_EINVAL;
	}
	const char *tsha = team_file(r, "training_file", tf);
	if (!tsha)
		return r->err.rc;
	const char *vsha = NULL;
	if (vf && !(vsha = team_file(r, "validation_file", vf)))
		return r->err.rc;
	if (check_file_format(r, "training_file", tf, tsha, method) ||
	    (vf && check_file_format(r, "validation_file", vf, vsha, method)))
		return FT_EINVAL;

	if (seed < 0) {
		uint32_t s;
		ft_random_bytes(&s, sizeof(s));
		seed = s & 0x7fffffff;
	}
	char id[FT_ID_MAX], seed_s[24], gpus_s[8], prio_s[8];
	ft_id_new(FT_ID_JOB, id);
	snprintf(seed_s, sizeof(seed_s), "%lld", seed);
	snprintf(gpus_s, sizeof(gpus_s), "%lld", gpus);
	snprintf(prio_s, sizeof(prio_s), "%lld", priority);
	char *hp_s = json_dumps(hp, JSON_COMPACT);
	char *meta_s = meta ? json_dumps(meta, JSON_COMPACT) : NULL;
	api_defer(r->arena, free, hp_s);
	if (meta_s)
		api_defer(r->arena, free, meta_s);
	const char *meta_p = meta_s ? meta_s : "{}";
	char attempts_s[16], mem_s[24];
	snprintf(attempts_s, sizeof(attempts_s), "%d", r->ctx->job_max_attempts);
	json_t *bs = json_object_get(hp, "batch_size");
	snprintf(mem_s, sizeof(mem_s), "%lld",
		 api_estimate_gpu_mem(strtoll(PQgetvalue(mres, 0, 1), NULL, 10),
				      atol(PQgetvalue(mres, 0, 2)), atol(PQgetvalue(mres, 0, 3)),
				      adapter,
				      json_is_integer(bs) ? (long)json_integer_value(bs) : 4));
	const char *p[] = { id,	    r->team_id, model,	    PQgetvalue(mres, 0, 0),
			    tf,	    vf,		method,	    adapter,
			    hp_s,   suffix,	seed_s,	    meta_p,
			    prio_s, gpus_s,	attempts_s, mem_s };
	if (api_db_begin(r) ||
	    api_db_cmd(
		    r,
		    "INSERT INTO jobs (id, team_id, model, base_model_id, training_file_id, "
		    "validation_file_id, method, adapter, hyperparameters, suffix, seed, metadata, "
		    "priority, requested_gpus, max_attempts, est_gpu_mem_bytes) VALUES ($1, $2, "
		    "$3, "
		    "$4, $5, $6, $7, $8, $9::jsonb, $10, $11::bigint, $12::jsonb, $13::int, "
		    "$14::int, "
		    "$15::int, $16::bigint)",
		    16, p) ||
	    api_db_cmd(
		    r,
		    "INSERT INTO job_transitions (job_id, from_status, to_status, attempt, reason) "
		    "VALUES ($1, NULL, 'validating_files', 0, 'created')",
		    1, p) ||
	    api_job_event(r->db, id, "info", "message",
			  api_printf(r->arena, "Created fine-tuning job: %s", id), NULL, &r->err) ||
	    api_job_event(r->db, id, "info", "message",
			  api_printf(r->arena, "Validating training file: %s", tf), NULL,
			  &r->err) ||
	    job_in_tx(r, id) || api_db_commit(r))
		return r->err.rc;
	api_validators_kick(r->ctx);
	r->obj_type = "fine_tuning.job";
	r->obj_id = api_strdup(r->arena, id);
	return FT_OK;
}

/* The GPU memory a job will need, for the scheduler's admission: a rough,
 * deliberately simple model of the CUDA backend (bf16 compute):
 *   weights      P x 2 bytes (bf16); QLoRA: P x 0.55 (NF4 + scales)
 *   training     full: P x 16 (fp32 master copy, gradient, two AdamW moments);
 *                LoRA / QLoRA: 0.5 % of P trained, x 16
 *   activations  batch x 2048 (the trainer's max_seq_length) x hidden
 *                x (2 x layers + 34) x 2 bytes
 *   overhead     1 GiB (CUDA context, cuBLAS workspace)
 * hidden and layers come from the model's config.json (0 when unknown). */
long long api_estimate_gpu_mem(long long params, long hidden, long layers, const char *adapter,
			       long batch)
{
	double p = (double)params, w, t;
	bool qlora = strcmp(adapter, "qlora") == 0, full = strcmp(adapter, "none") == 0;
	w = qlora ? p * 0.55 : p * 2;
	t = full ? p * 16 : p * 0.005 * 16;
	double act = (double)batch * 2048.0 * (double)hidden * (double)(2 * layers + 34) * 2.0;
	return (long long)(w + t + act) + (1LL << 30);
}

enum ft_rc h_jobs_list(struct api_req *r)
{
	return api_list_newest(r, FT_ID_JOB, "jobs", "team_id", r->team_id, JOB_COLS, job_json);
}

enum ft_rc h_jobs_get(struct api_req *r)
{
	return job_by_id(r, r->params[0]);
}

enum ft_rc h_jobs_cancel(struct api_req *r)
{
	const char *id = r->params[0];
	json_t *b;
	if (api_body_object(r, true, &b) ||
	    api_check_keys(r, b, NULL, (const char *const[]){ NULL }))
		return FT_EINVAL;
	if (!ft_id_valid(FT_ID_JOB, id))
		return api_not_found(r, "fine-tuning job", id);
	const char *p[] = { id, r->team_id };
	if (api_db_begin(r))
		return r->err.rc;
	PGresult *res = api_db(r,
			       "SELECT status, attempt FROM jobs WHERE id = $1 AND team_id = $2 "
			       "FOR UPDATE",
			       2, p);
	if (!res)
		return r->err.rc;
	if (PQntuples(res) == 0)
		return api_not_found(r, "fine-tuning job", id);
	const char *from = api_strdup(r->arena, PQgetvalue(res, 0, 0));
	const char *attempt = api_strdup(r->arena, PQgetvalue(res, 0, 1));
	const char *to;
	if (strcmp(from, "validating_files") == 0 || strcmp(from, "queued") == 0)
		to = "cancelled";
	else if (strcmp(from, "dispatched") == 0 || strcmp(from, "running") == 0)
		to = "cancelling";
	else if (strcmp(from, "cancelling") == 0)
		to = NULL;
	else
		return ft_failf(&r->err, FT_ECONFLICT, "job_not_cancellable",
				"job \"%s\" has already %s", id, from);
	if (to) {
		const char *q[] = { id, from, to, attempt };
		if (api_db_cmd(r,
			       "UPDATE jobs SET status = $3, updated_at = now(), "
			       "finished_at = CASE WHEN $3 = 'cancelled' THEN now() END "
			       "WHERE id = $1 AND status = $2",
			       3, q) ||
		    api_db_cmd(r,
			       "INSERT INTO job_transitions (job_id, from_status, to_status, "
			       "attempt, reason) "
			       "VALUES ($1, $2, $3, $4::int, 'cancelled by the user')",
			       4, q) ||
		    api_job_event(r->db, id, "info", "status",
				  strcmp(to, "cancelled") == 0
					  ? "Job cancelled"
					  : "Cancelling job: waiting for the worker to stop",
				  NULL, &r->err))
			return r->err.rc;
	}
	if (job_in_tx(r, id) || api_db_commit(r))
		return r->err.rc;
	r->obj_type = "fine_tuning.job";
	r->obj_id = id;
	return FT_OK;
}

static enum ft_rc job_visible(struct api_req *r, const char *id)
{
	if (!ft_id_valid(FT_ID_JOB, id))
		return api_not_found(r, "fine-tuning job", id);
	const char *p[] = { id, r->team_id };
	PGresult *res = api_db(r, "SELECT 1 FROM jobs WHERE id = $1 AND team_id = $2", 2, p);
	if (!res)
		return r->err.rc;
	if (PQntuples(res) == 0)
		return api_not_found(r, "fine-tuning job", id);
	return FT_OK;
}

enum ft_rc h_jobs_events(struct api_req *r)
{
	long limit;
	const char *after, *id = r->params[0];
	if (job_visible(r, id) || api_page_args(r, FT_ID_EVENT, &limit, &after))
		return r->err.rc;
	char lim[16];
	snprintf(lim, sizeof(lim), "%ld", limit + 1);
	const char *p[] = { id, after, lim };
	PGresult *res = api_db(r,
			       "SELECT id, extract(epoch from created_at)::bigint, level, message, "
			       "data::text, type FROM job_events WHERE job_id = $1 "
			       "AND ($2::text IS NULL OR seq < "
			       "  (SELECT seq FROM job_events WHERE id = $2 AND job_id = $1)) "
			       "ORDER BY seq DESC LIMIT $3::int",
			       3, p);
	if (!res)
		return r->err.rc;
	json_t *data = json_array();
	for (int i = 0; i < PQntuples(res); i++) {
		json_t *e = json_object();
		json_object_set_new(e, "id", json_string(PQgetvalue(res, i, 0)));
		json_object_set_new(e, "object", json_string("fine_tuning.job.event"));
		json_object_set_new(e, "created_at", api_epoch(res, i, 1));
		json_object_set_new(e, "level", json_string(PQgetvalue(res, i, 2)));
		json_object_set_new(e, "message", json_string(PQgetvalue(res, i, 3)));
		json_object_set_new(e, "data", api_jsonb(res, i, 4));
		json_object_set_new(e, "type", json_string(PQgetvalue(res, i, 5)));
		json_array_append_new(data, e);
	}
	r->resp = api_own(r, api_list(data, limit));
	return FT_OK;
}

enum ft_rc h_jobs_checkpoints(struct api_req *r)
{
	long limit;
	const char *after, *id = r->params[0];
	if (job_visible(r, id) || api_page_args(r, FT_ID_CHECKPOINT, &limit, &after))
		return r->err.rc;
	char lim[16];
	snprintf(lim, sizeof(lim), "%ld", limit + 1);
	const char *p[] = { id, after, lim };
	PGresult *res =
		api_db(r,
		       "SELECT c.id, extract(epoch from c.created_at)::bigint, c.step, "
		       "c.metrics::text, j.model, coalesce(j.suffix, ''), j.team_id "
		       "FROM checkpoints c JOIN jobs j ON j.id = c.job_id WHERE c.job_id = $1 "
		       "AND ($2::text IS NULL OR (c.created_at, c.id) < "
		       "  (SELECT created_at, id FROM checkpoints WHERE id = $2 AND job_id = $1)) "
		       "ORDER BY c.created_at DESC, c.id DESC LIMIT $3::int",
		       3, p);
	if (!res)
		return r->err.rc;
	json_t *data = json_array();
	for (int i = 0; i < PQntuples(res); i++) {
		json_t *c = json_object();
		long long step = strtoll(PQgetvalue(res, i, 2), NULL, 10);
		json_t *metrics = api_jsonb(res, i, 3);
		if (!json_is_object(metrics)) {
			json_decref(metrics);
			metrics = json_object();
		}
		json_object_set_new(metrics, "step", json_integer(step));
		json_object_set_new(c, "id", json_string(PQgetvalue(res, i, 0)));
		json_object_set_new(c, "object", json_string("fine_tuning.job.checkpoint"));
		json_object_set_new(c, "created_at", api_epoch(res, i, 1));
		json_object_set_new(c, "fine_tuned_model_checkpoint",
				    json_sprintf("ft:%s:%s:%s:ckpt-step-%lld",
						 PQgetvalue(res, i, 4), PQgetvalue(res, i, 6),
						 PQgetvalue(res, i, 5), step));
		json_object_set_new(c, "fine_tuning_job_id", json_string(id));
		json_object_set_new(c, "metrics", metrics);
		json_object_set_new(c, "step_number", json_integer(step));
		json_array_append_new(data, c);
	}
	r->resp = api_own(r, api_list(data, limit));
	return FT_OK;
}
