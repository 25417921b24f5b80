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
 *   lora {r, alpha, dropout, target_modules, layers_to_transform}, gpus, priority, registered_model.
 * "model" goes through the one resolver (resolve.c): a base model, or a
 * model version (NAME@ALIAS, NAME/N, ft:BASE:JOB) whose adapter the job
 * continues training from.
 *
 * Status as shown to OpenAI clients: our "dispatched" reads "queued" and
 * "cancelling" reads "running"; the exact state is in "state". "pausing"
 * and "paused" are OpenAI's own (POST .../pause and .../resume).
 */
#include <math.h>
#include <unistd.h>

#include "api_int.h"

#define JOB_COLS                                                                                 \
	"id, model, training_file_id, validation_file_id, method, adapter, "                     \
	"hyperparameters::text, "                                                                \
	"suffix, seed, metadata::text, status, priority, requested_gpus, attempt, worker_id, "   \
	"error::text, fine_tuned_model, trained_tokens, latest_metrics::text, "                  \
	"extract(epoch from estimated_finish)::bigint, extract(epoch from created_at)::bigint, " \
	"extract(epoch from finished_at)::bigint, team_id, max_attempts, registered_model, "     \
	"(SELECT mv.name || '/' || mv.version FROM model_versions mv "                           \
	"WHERE mv.id = jobs.parent_version_id), result_file_id"

static const struct {
	const char *state, *openai;
} status_map[] = {
	{ "validating_files", "validating_files" },
	{ "queued", "queued" },
	{ "dispatched", "queued" },
	{ "running", "running" },
	{ "cancelling", "running" },
	{ "pausing", "pausing" },
	{ "paused", "paused" },
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
	/* step_metrics.csv, written when it succeeded (the scheduler: persist.c) */
	json_t *rf = json_array();
	if (!PQgetisnull(res, i, 26))
		json_array_append_new(rf, json_string(PQgetvalue(res, i, 26)));
	json_object_set_new(j, "result_files", rf);
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
	/* the registry: the model its version goes to, the version it continues */
	json_object_set_new(j, "registered_model", api_text_or_null(res, i, 24));
	json_object_set_new(j, "parent_version", api_text_or_null(res, i, 25));
	json_decref(hp);
	return j;
}

/* ---- request checking -------------------------------------------------- */

/* Copy the hyperparameters in src into dst, each checked against the
 * trainer's own table (ft/train.h ft_hparams: names, types, ranges, the
 * methods they go with), so a job the API accepts never fails in the
 * trainer on one of them. */
static enum ft_rc check_hp(struct api_req *r, json_t *src, const char *param, const char *method,
			   json_t *dst)
{
	if (ft_hparams_check(src, strcmp(method, "dpo") == 0, param, &r->err))
		return FT_EINVAL;
	const char *k;
	json_t *v;
	json_object_foreach(src, k, v)
	{
		if (!json_is_null(v))
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
	static const char *const keys[] = {
		"r", "alpha", "dropout", "target_modules", "layers_to_transform", NULL
	};
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
		/* the trainer's reading (ft/model.h); the layers the base has are
		 * checked when the job loads it */
		json_t *lt = json_object_get(l, "layers_to_transform");
		struct ft_lora_config lc = { 0 };
		if (ft_lora_layers_parse(lt, "lora.layers_to_transform", &lc, &r->err))
			return FT_EINVAL;
		if (lc.some_layers)
			json_object_set_new(out, "layers_to_transform", ft_lora_layers_json(&lc));
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

/* The file's first row must fit the method: ftdata's own check
 * (ft_data_check_first_row), so the refusal is word for word the error the
 * validator would give that line. A file that cannot be read here, or whose
 * first row is not valid, is left to the validator threads to report. */
static enum ft_rc check_file_format(struct api_req *r, const char *param, const char *id,
				    const char *sha, const char *method)
{
	char key[FT_STORE_KEY_MAX];
	struct ft_err e;
	enum ft_data_method m;
	enum ft_data_format f;
	ft_err_clear(&e);
	if (!ft_api_method_parse(method, &m))
		return FT_OK; /* parse_create refused it already */
	ft_store_key_for(sha, key);
	int fd = ft_store_open_read(r->ctx->store, key, NULL, &e);
	if (fd < 0)
		return FT_OK;
	FILE *fp = fdopen(fd, "rb");
	if (!fp) {
		close(fd);
		return FT_OK;
	}
	enum ft_rc rc = ft_data_check_first_row(fp, m, &f, &e);
	fclose(fp);
	if (rc != FT_EINVAL)
		return FT_OK;
	ft_failf(&r->err, FT_EINVAL, e.code, "%s \"%s\" %s", param, id, e.msg);
	ft_err_param(&r->err, param);
	ft_err_line(&r->err, e.line);
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

/* A create (or estimate) request, once checked: everything the job row
 * needs, and the trainer's own reading of it. */
struct job_req {
	const char *model, *tf, *vf, *suffix, *method, *adapter, *registered_model;
	long long seed, gpus, priority;
	json_t *hp; /* the hyperparameters, "lora" inside (the job row's layout) */
	json_t *meta;
	const char *model_id; /* base_models.id */
	const struct api_model_target *target; /* what "model" resolved to */
	char rm[FT_NAME_MAX + 1]; /* the registered model its version goes to */
	struct ft_train_job *tj; /* the job as ft-train will read it (defaults applied) */
	long long mem; /* ft_train_job_mem's bytes per GPU; 0 when unknown */
};

static enum ft_rc check_job_fields(struct api_req *r, const struct job_req *q, json_t *b)
{
	if (!api_valid_text(q->model, 256)) {
		ft_failf(&r->err, FT_EINVAL, "invalid_value", "\"model\" is not a model name");
		ft_err_param(&r->err, "model");
		return FT_EINVAL;
	}
	if (q->suffix && (strlen(q->suffix) > 64 || !api_valid_text(q->suffix, 64))) {
		ft_failf(&r->err, FT_EINVAL, "invalid_value",
			 "\"suffix\" must be at most 64 printable characters");
		ft_err_param(&r->err, "suffix");
		return FT_EINVAL;
	}
	if (q->registered_model && !ft_registered_name_valid(q->registered_model)) {
		ft_failf(&r->err, FT_EINVAL, "invalid_value",
			 "\"registered_model\" must be 1 to 128 of A-Z a-z 0-9 . _ - starting with "
			 "a letter or a digit");
		ft_err_param(&r->err, "registered_model");
		return FT_EINVAL;
	}
	if (strcmp(q->adapter, "lora") && strcmp(q->adapter, "qlora") &&
	    strcmp(q->adapter, "none")) {
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
	return FT_OK;
}

/* The hyperparameters (method's, then the legacy top-level ones, against
 * the trainer's table) and the adapter's settings, into q->hp. */
static enum ft_rc check_job_hp(struct api_req *r, struct job_req *q, json_t *b)
{
	q->hp = api_own(r, json_object());
	json_t *m = json_object_get(b, "method");
	if (m && !json_is_null(m) && check_method(r, m, &q->method, q->hp))
		return FT_EINVAL;
	json_t *legacy = json_object_get(b, "hyperparameters");
	if (legacy && !json_is_null(legacy)) {
		json_t *tmp = api_own(r, json_object());
		if (check_hp(r, legacy, "hyperparameters", q->method, tmp))
			return FT_EINVAL;
		const char *k;
		json_t *v;
		json_object_foreach(tmp, k, v)
		{
			if (!json_object_get(q->hp, k))
				json_object_set(q->hp, k, v);
		}
	}
	json_t *lora = json_object_get(b, "lora");
	if (strcmp(q->adapter, "none") != 0)
		return check_lora(r, lora, q->hp);
	if (lora && !json_is_null(lora)) {
		ft_failf(&r->err, FT_EINVAL, "invalid_value",
			 "\"lora\" needs adapter \"lora\" or \"qlora\"");
		ft_err_param(&r->err, "lora");
		return FT_EINVAL;
	}
	return FT_OK;
}

/* The request's fields, their types and OpenAI's shape. */
static enum ft_rc parse_create(struct api_req *r, json_t *b, struct job_req *q)
{
	static const char *const keys[] = {
		"model",  "training_file", "validation_file", "method",		  "hyperparameters",
		"suffix", "seed",	   "metadata",	      "integrations",	  "adapter",
		"lora",	  "gpus",	   "priority",	      "registered_model", NULL
	};
	*q = (struct job_req){ .method = "supervised", .adapter = "lora", .seed = -1 };
	if (api_check_keys(r, b, NULL, keys) ||
	    ft_json_get_str(b, "model", FT_JSON_REQUIRED | FT_JSON_NONEMPTY, &q->model, &r->err) ||
	    ft_json_get_str(b, "training_file", FT_JSON_REQUIRED | FT_JSON_NONEMPTY, &q->tf,
			    &r->err) ||
	    ft_json_get_str(b, "validation_file", FT_JSON_NULL_OK, &q->vf, &r->err) ||
	    ft_json_get_str(b, "suffix", FT_JSON_NULL_OK, &q->suffix, &r->err) ||
	    ft_json_get_int(b, "seed", FT_JSON_NULL_OK, 0, 2147483647, &q->seed, &r->err) ||
	    ft_json_get_str(b, "adapter", FT_JSON_NULL_OK, &q->adapter, &r->err) ||
	    ft_json_get_int(b, "gpus", FT_JSON_NULL_OK, 0, 64, &q->gpus, &r->err) ||
	    ft_json_get_int(b, "priority", FT_JSON_NULL_OK, -100, 100, &q->priority, &r->err) ||
	    ft_json_get_str(b, "registered_model", FT_JSON_NULL_OK, &q->registered_model,
			    &r->err) ||
	    check_job_fields(r, q, b) || check_job_hp(r, q, b))
		return FT_EINVAL;
	q->meta = json_object_get(b, "metadata");
	if (q->meta && json_is_null(q->meta))
		q->meta = NULL;
	if (q->meta && check_metadata(r, q->meta))
		return FT_EINVAL;
	return FT_OK;
}

/* The trainer's own parser on the object the worker will write
 * (ft_train_job_from_spec): its verdict on the job, and what it will do with
 * the data (the validator threads read max_seq_len and chat_template). */
enum ft_rc api_job_trainer_view(const char *method, const char *adapter, json_t *hp,
				bool has_validation, struct ft_train_job *tj, struct ft_err *err)
{
	struct ft_job_spec spec = {
		.model_dir = "model",
		.train_file = "training_file",
		.validation_file = has_validation ? "validation_file" : NULL,
		.output_dir = "out",
		.adapter = adapter,
		.method = method,
		.hyperparameters = hp,
		.eval_on_start = true,
	};
	json_t *job = ft_train_job_from_spec(&spec, err);
	if (!job)
		return FT_EINVAL;
	char *text = json_dumps(job, JSON_COMPACT);
	json_decref(job);
	if (!text)
		return ft_failf(err, FT_ENOMEM, NULL, "out of memory");
	enum ft_rc rc = ft_train_job_parse(text, strlen(text), tj, err);
	free(text);
	return rc;
}

/* The trainer's verdict on the job and the GPU memory it needs on the model
 * (ft_train_job_mem: what train checks, what the scheduler places by; 0 when
 * the model's config cannot say). */
static enum ft_rc trainer_verdict(struct api_req *r, struct job_req *q, const char *model_config,
				  long long *mem)
{
	struct ft_train_job *tj = api_alloc(r->arena, sizeof(*tj));
	if (api_job_trainer_view(q->method, q->adapter, q->hp, q->vf != NULL, tj, &r->err))
		return FT_EINVAL;
	q->tj = tj;
	struct ft_model_config mc;
	struct ft_err e;
	ft_err_clear(&e);
	*mem = 0;
	if (ft_model_config_parse(model_config, strlen(model_config), &mc, &e) == FT_OK) {
		if (tj->method != FT_METHOD_FULL &&
		    ft_lora_layers_check(&tj->lora, mc.num_layers, &r->err)) {
			ft_err_param(&r->err, "lora.layers_to_transform");
			return FT_EINVAL;
		}
		struct ft_mem_job mj;
		struct ft_mem_estimate est;
		ft_train_job_mem(tj, &mc, (int)FT_MAX(q->gpus, 1), &mj);
		if (ft_mem_job_check(&mj, &e) == FT_OK) {
			ft_mem_estimate(&mj, &est);
			*mem = (long long)est.total;
		}
	}
	return FT_OK;
}

/* The job row, its first transition and events, in one transaction.
 * parent: the version it continues (or NULL); rm: its registered model. */
static enum ft_rc insert_job(struct api_req *r, const struct job_req *q, const char *base_id,
			     const char *parent, const char *rm, long long mem, char *id)
{
	long long seed = q->seed;
	if (seed < 0) {
		uint32_t s;
		ft_random_bytes(&s, sizeof(s));
		seed = s & 0x7fffffff;
	}
	char seed_s[24], gpus_s[8], prio_s[8], attempts_s[16], mem_s[24];
	ft_id_new(FT_ID_JOB, id);
	snprintf(seed_s, sizeof(seed_s), "%lld", seed);
	snprintf(gpus_s, sizeof(gpus_s), "%lld", q->gpus);
	snprintf(prio_s, sizeof(prio_s), "%lld", q->priority);
	snprintf(attempts_s, sizeof(attempts_s), "%d", r->ctx->job_max_attempts);
	snprintf(mem_s, sizeof(mem_s), "%lld", mem);
	char *hp_s = json_dumps(q->hp, JSON_COMPACT);
	char *meta_s = q->meta ? json_dumps(q->meta, JSON_COMPACT) : NULL;
	api_defer(r->arena, free, hp_s);
	if (meta_s)
		api_defer(r->arena, free, meta_s);
	const char *p[] = { id,	    r->team_id, q->model,   base_id,
			    q->tf,  q->vf,	q->method,  q->adapter,
			    hp_s,   q->suffix,	seed_s,	    meta_s ? meta_s : "{}",
			    prio_s, gpus_s,	attempts_s, mem ? mem_s : NULL,
			    rm,	    parent };
	if (api_db_begin(r) ||
	    api_db_cmd(r,
		       "INSERT INTO jobs (id, team_id, model, base_model_id, training_file_id, "
		       "validation_file_id, method, adapter, hyperparameters, suffix, seed, "
		       "metadata, priority, requested_gpus, max_attempts, est_gpu_mem_bytes, "
		       "registered_model, parent_version_id) "
		       "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb, $10, $11::bigint, "
		       "$12::jsonb, $13::int, $14::int, $15::int, $16::bigint, $17, $18)",
		       18, p) ||
	    api_db_cmd(r,
		       "INSERT INTO job_transitions (job_id, from_status, to_status, attempt, "
		       "reason) VALUES ($1, NULL, 'validating_files', 0, 'created')",
		       1, p) ||
	    api_job_event(r->db, id, "info", "message",
			  api_printf(r->arena, "Created fine-tuning job: %s", id), NULL, &r->err) ||
	    api_job_event(r->db, id, "info", "message",
			  api_printf(r->arena, "Validating training file: %s", q->tf), NULL,
			  &r->err) ||
	    job_in_tx(r, id) || api_db_commit(r))
		return r->err.rc;
	return FT_OK;
}

/* A job that names a version continues training it: the version must be
 * a LoRA adapter (its folder is where the adapter starts: the trainer's
 * init_adapter), the job an adapter job, and the adapter's shape is the
 * version's (a "lora" object would contradict it). A checkpoint is promoted
 * to a version first. */
static enum ft_rc check_continuation(struct api_req *r, const struct job_req *q,
				     const struct api_model_target *t, json_t *b)
{
	if (t->kind == TARGET_BASE)
		return FT_OK;
	const char *why = NULL, *param = "model";
	json_t *lora = json_object_get(b, "lora");
	if (t->kind == TARGET_CHECKPOINT) {
		why = "is a checkpoint: promote it to a version first (POST "
		      "/v1/registry/models/{name}/versions), then continue from that version";
	} else if (strcmp(t->version_kind, "adapter") != 0) {
		why = "is a whole fine-tuned model: continuing training is from LoRA versions "
		      "(adapters) only";
	} else if (strcmp(q->adapter, "none") == 0) {
		why = "is a LoRA adapter: continue it with adapter \"lora\" or \"qlora\"";
		param = "adapter";
	} else if (lora && !json_is_null(lora)) {
		why = "sets the adapter's r, alpha and target modules: continue it without "
		      "\"lora\"";
		param = "lora";
	}
	if (!why)
		return FT_OK;
	ft_failf(&r->err, FT_EINVAL, "invalid_model", "\"%s\" %s", q->model, why);
	ft_err_param(&r->err, param);
	return FT_EINVAL;
}

/* What create and estimate share: the fields, the model (a base model, or a
 * version to continue: resolve.c, ft/modelref.h), the trainer's verdict, the
 * files (they belong to the team, their format fits the method). Nothing
 * is written. */
static enum ft_rc job_prepare(struct api_req *r, struct job_req *q)
{
	json_t *b;
	if (api_body_object(r, false, &b))
		return r->err.rc;
	if (parse_create(r, b, q))
		return FT_EINVAL;
	struct api_model_target *t = api_alloc(r->arena, sizeof(*t));
	if (api_model_resolve(r, q->model, "model", t)) {
		r->err.rc = FT_EINVAL;
		return FT_EINVAL;
	}
	if (check_continuation(r, q, t, b))
		return FT_EINVAL;
	q->target = t;
	/* the registered model its version goes to: asked for; else the one it
	 * continues; else its suffix, else its base's name (ft/modelref.h) */
	if (q->registered_model)
		ft_strlcpy(q->rm, q->registered_model, sizeof(q->rm));
	else if (t->kind == TARGET_VERSION)
		ft_strlcpy(q->rm, t->model, sizeof(q->rm));
	else if (!(q->suffix && ft_registered_name_from(q->suffix, q->rm)) &&
		 !ft_registered_name_from(t->base_name, q->rm))
		ft_strlcpy(q->rm, "model", sizeof(q->rm));
	q->model_id = t->base_id;
	if (trainer_verdict(r, q, t->base_config, &q->mem))
		return r->err.rc;
	const char *tsha = team_file(r, "training_file", q->tf);
	if (!tsha)
		return r->err.rc;
	const char *vsha = NULL;
	if (q->vf && !(vsha = team_file(r, "validation_file", q->vf)))
		return r->err.rc;
	if (check_file_format(r, "training_file", q->tf, tsha, q->method) ||
	    (q->vf && check_file_format(r, "validation_file", q->vf, vsha, q->method)))
		return FT_EINVAL;
	return FT_OK;
}

/* POST /v1/fine_tuning/jobs: prepared as above, then the row; the
 * validator threads check every line next. */
enum ft_rc h_jobs_create(struct api_req *r)
{
	struct job_req q;
	char id[FT_ID_MAX];
	if (job_prepare(r, &q) || api_quota_check(r, 1, NULL) ||
	    insert_job(r, &q, q.model_id,
		       q.target->kind == TARGET_VERSION ? q.target->version_id : NULL, q.rm, q.mem,
		       id))
		return r->err.rc ? r->err.rc : FT_EINVAL;
	api_validators_kick(r->ctx);
	r->obj_type = "fine_tuning.job";
	r->obj_id = api_strdup(r->arena, id);
	return FT_OK;
}

/* GET /v1/fine_tuning/hyperparameters: the trainer's table (ft_hparams),
 * for forms and clients that want the ranges before they submit. */
enum ft_rc h_jobs_hparams(struct api_req *r)
{
	r->resp = api_own(r, json_pack("{s:s, s:o}", "object", "list", "data", ft_hparams_json()));
	return FT_OK;
}

static json_t *num_or_null(bool known, double v)
{
	return known ? json_integer((json_int_t)llround(v)) : json_null();
}

/* POST /v1/fine_tuning/jobs/estimate: the same body and checks as create,
 * nothing written. What the job will cost, each figure from its one source:
 *   gpu_memory_bytes   the trainer's estimate (ft_train_job_mem): what
 *                      train checks and the scheduler places by
 *   training_examples  the training file's newest valid dataset (its report)
 *   training_tokens    that dataset's stats.approx_tokens (validate.c)
 *   steps              the trainer's arithmetic: ceil(ceil(examples / batch)
 *                      / accumulation) x epochs, or max_steps; unknown with
 *                      packing (rows are then packed, not counted)
 *   total_tokens       training_tokens x epochs (x steps / epoch steps
 *                      under max_steps)
 *   tokens_per_second  the median of the steps measured on the team's 20
 *                      newest jobs of this base model, adapter and method
 *   seconds            total_tokens / tokens_per_second
 * A figure without its source is null (no dataset yet, no earlier job). */
enum ft_rc h_jobs_estimate(struct api_req *r)
{
	struct job_req q;
	if (job_prepare(r, &q))
		return r->err.rc ? r->err.rc : FT_EINVAL;
	/* the trainer's reading of the job: its defaults, not a copy of them */
	double epochs = q.tj->n_epochs, batch = q.tj->batch_size, accum = q.tj->grad_accum;
	double max_steps = q.tj->max_steps > 0 ? (double)q.tj->max_steps : 0;
	bool packing = q.tj->packing;
	const char *pd[] = { q.tf, r->team_id };
	PGresult *ds = api_db(r,
			      "SELECT id, (report->>'n_examples')::bigint, "
			      "(stats->>'approx_tokens')::bigint FROM datasets "
			      "WHERE file_id = $1 AND team_id = $2 AND status = 'valid' "
			      "ORDER BY validated_at DESC, id DESC LIMIT 1",
			      2, pd);
	if (!ds)
		return r->err.rc;
	const char *pt[] = { r->team_id, q.model_id, q.adapter, q.method };
	PGresult *tp = api_db(r,
			      "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY "
			      "tokens_per_second), count(*) FROM job_metrics "
			      "WHERE tokens_per_second > 0 AND job_id IN (SELECT id FROM jobs "
			      "WHERE team_id = $1 AND base_model_id = $2 AND adapter = $3 "
			      "AND method = $4 ORDER BY created_at DESC LIMIT 20)",
			      4, pt);
	if (!tp)
		return r->err.rc;
	bool have_ds = PQntuples(ds) == 1;
	bool have_ex = have_ds && !PQgetisnull(ds, 0, 1);
	bool have_tok = have_ds && !PQgetisnull(ds, 0, 2);
	double examples = have_ex ? strtod(PQgetvalue(ds, 0, 1), NULL) : 0;
	double tokens = have_tok ? strtod(PQgetvalue(ds, 0, 2), NULL) : 0;
	bool have_tps = !PQgetisnull(tp, 0, 0);
	double tps = have_tps ? strtod(PQgetvalue(tp, 0, 0), NULL) : 0;

	bool have_steps = have_ex && !packing && examples > 0;
	double epoch_steps = have_steps ? ceil(ceil(examples / batch) / accum) : 0;
	double steps = max_steps > 0 ? max_steps : epochs * epoch_steps;
	have_steps = have_steps || max_steps > 0;
	double total = epochs * tokens;
	bool have_total = have_tok;
	if (max_steps > 0) {
		have_total = have_tok && epoch_steps > 0;
		total = have_total ? tokens * max_steps / epoch_steps : 0;
	}
	json_t *e = json_object();
	json_object_set_new(e, "object", json_string("fine_tuning.job.estimate"));
	json_object_set_new(e, "model", json_string(q.model));
	json_object_set_new(e, "method", json_string(q.method));
	json_object_set_new(e, "adapter", json_string(q.adapter));
	json_object_set_new(
		e, "hyperparameters",
		json_pack("{s:I,s:I,s:I,s:o}", "n_epochs", (json_int_t)epochs, "batch_size",
			  (json_int_t)batch, "gradient_accumulation_steps", (json_int_t)accum,
			  "max_steps",
			  max_steps > 0 ? json_integer((json_int_t)max_steps) : json_null()));
	json_object_set_new(e, "gpu_memory_bytes", q.mem ? json_integer(q.mem) : json_null());
	json_object_set_new(e, "dataset",
			    have_ds ? json_string(PQgetvalue(ds, 0, 0)) : json_null());
	json_object_set_new(e, "training_examples", num_or_null(have_ex, examples));
	json_object_set_new(e, "training_tokens", num_or_null(have_tok, tokens));
	json_object_set_new(e, "steps", num_or_null(have_steps, steps));
	json_object_set_new(e, "total_tokens", num_or_null(have_total, total));
	json_object_set_new(e, "tokens_per_second", have_tps ? json_real(tps) : json_null());
	json_object_set_new(e, "throughput_samples",
			    json_integer(strtoll(PQgetvalue(tp, 0, 1), NULL, 10)));
	json_object_set_new(e, "seconds",
			    num_or_null(have_total && have_tps && tps > 0, total / tps));
	r->resp = api_own(r, e);
	return FT_OK;
}

/* ?metadata[KEY]=VALUE (any number; every pair must be in the job's
 * metadata) or ?metadata=null (jobs without metadata): OpenAI's filter of
 * the list, as its client sends it. */
struct meta_filter {
	struct api_req *r;
	json_t *want;
	bool null, bad;
};

static enum MHD_Result meta_arg(void *cls, enum MHD_ValueKind kind, const char *key,
				const char *value)
{
	(void)kind;
	struct meta_filter *f = cls;
	if (strcmp(key, "metadata") == 0) {
		f->null = true;
		f->bad |= !value || strcmp(value, "null") != 0;
	} else if (strncmp(key, "metadata[", 9) == 0) {
		size_t n = strlen(key);
		if (n < 11 || key[n - 1] != ']' || !value) {
			f->bad = true;
		} else {
			char *k = api_printf(f->r->arena, "%.*s", (int)(n - 10), key + 9);
			json_object_set_new(f->want, k, json_string(value));
		}
	}
	return MHD_YES;
}

enum ft_rc h_jobs_list(struct api_req *r)
{
	struct meta_filter f = { .r = r, .want = api_own(r, json_object()) };
	MHD_get_connection_values(r->conn, MHD_GET_ARGUMENT_KIND, meta_arg, &f);
	if (f.bad || (f.null && json_object_size(f.want) > 0)) {
		ft_failf(&r->err, FT_EINVAL, "invalid_value",
			 "filter by metadata as metadata[KEY]=VALUE (any number of keys), or "
			 "metadata=null for jobs without metadata");
		ft_err_param(&r->err, "metadata");
		return FT_EINVAL;
	}
	if (f.null)
		return api_list_newest_where(r, FT_ID_JOB, "jobs", "team_id", r->team_id,
					     "metadata = $4::jsonb", "{}", JOB_COLS, job_json);
	if (json_object_size(f.want) == 0)
		return api_list_newest(r, FT_ID_JOB, "jobs", "team_id", r->team_id, JOB_COLS,
				       job_json);
	if (check_metadata(r, f.want))
		return FT_EINVAL;
	char *dumped = json_dumps(f.want, JSON_COMPACT);
	const char *want = dumped ? api_strdup(r->arena, dumped) : NULL;
	free(dumped);
	if (!want)
		return ft_failf(&r->err, FT_ENOMEM, NULL, "out of memory");
	return api_list_newest_where(r, FT_ID_JOB, "jobs", "team_id", r->team_id,
				     "metadata @> $4::jsonb", want, JOB_COLS, job_json);
}

enum ft_rc h_jobs_get(struct api_req *r)
{
	return job_by_id(r, r->params[0]);
}

/* What cancel, pause and resume do to a job in each state: the state it
 * moves to (NULL: it stays, and the answer is the job as it is), or a 409
 * with the message's ending. One table, so the three stay consistent with
 * the life cycle in docs/architecture.md. */
enum job_action { JOB_CANCEL = 0, JOB_PAUSE, JOB_RESUME, JOB_ACTIONS };

static const struct {
	const char *from, *to[JOB_ACTIONS];
} job_moves[] = {
	/* { from, { cancel, pause, resume } } */
	{ "validating_files",
	  { "cancelled", "!is still validating its files; pause it once it is queued",
	    "!is not paused (it is validating its files)" } },
	{ "queued", { "cancelled", "paused", "!is not paused (it is queued)" } },
	{ "dispatched", { "cancelling", "pausing", "!is not paused (it is being dispatched)" } },
	{ "running", { "cancelling", "pausing", "!is not paused (it is running)" } },
	{ "cancelling", { NULL, "!is being cancelled", "!is being cancelled" } },
	{ "pausing", { "cancelling", NULL, "!is still pausing; resume it once it is paused" } },
	{ "paused", { "cancelled", NULL, "queued" } },
};

static const struct {
	const char *code, *reason;
} job_action_defs[JOB_ACTIONS] = {
	[JOB_CANCEL] = { "job_not_cancellable", "cancelled by the user" },
	[JOB_PAUSE] = { "job_not_pausable", "paused by the user" },
	[JOB_RESUME] = { "job_not_resumable", "resumed by the user" },
};

/* The job event of a move. */
static const char *job_move_message(const char *to)
{
	static const struct {
		const char *to, *message;
	} m[] = {
		{ "cancelled", "Job cancelled" },
		{ "cancelling", "Cancelling job: waiting for the worker to stop" },
		{ "paused", "Job paused" },
		{ "pausing",
		  "Pausing job: waiting for the worker to checkpoint and stop the trainer" },
		{ "queued", "Job resumed: queued again; it starts from its last checkpoint" },
	};
	for (size_t i = 0; i < FT_ARRAY_LEN(m); i++)
		if (strcmp(m[i].to, to) == 0)
			return m[i].message;
	return to;
}

/* POST /v1/fine_tuning/jobs/{id}/cancel | pause | resume: an empty body;
 * the row locked, moved by job_moves with its transition and event in one
 * transaction, and answered as it then is. A worker's trainer is stopped by
 * the scheduler (cancel and pause messages, dispatch.c); a paused job holds
 * no worker, and resumed it is queued and dispatched again from its last
 * checkpoint without using up an attempt (the scheduler's hand-back). */
static enum ft_rc job_move(struct api_req *r, enum job_action act)
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
	const char *to = NULL;
	bool known = false;
	for (size_t i = 0; i < FT_ARRAY_LEN(job_moves) && !known; i++)
		if (strcmp(job_moves[i].from, from) == 0)
			known = true, to = job_moves[i].to[act];
	if (!known) /* succeeded, failed, cancelled */
		return ft_failf(&r->err, FT_ECONFLICT, job_action_defs[act].code,
				"job \"%s\" has already %s", id, from);
	if (to && to[0] == '!')
		return ft_failf(&r->err, FT_ECONFLICT, job_action_defs[act].code, "job \"%s\" %s",
				id, to + 1);
	if (to) {
		const char *q[] = { id, from, to, attempt, job_action_defs[act].reason };
		if (api_db_cmd(r,
			       "UPDATE jobs SET status = $3, updated_at = now(), "
			       "finished_at = CASE WHEN $3 = 'cancelled' THEN now() END, "
			       "queued_at = CASE WHEN $3 = 'queued' THEN now() ELSE queued_at END "
			       "WHERE id = $1 AND status = $2",
			       3, q) ||
		    api_db_cmd(r,
			       "INSERT INTO job_transitions (job_id, from_status, to_status, "
			       "attempt, reason) "
			       "VALUES ($1, $2, $3, $4::int, $5)",
			       5, q) ||
		    api_job_event(r->db, id, "info", "status", job_move_message(to),
				  api_printf(r->arena, "{\"status\":\"%s\"}", to), &r->err))
			return r->err.rc;
	}
	if (job_in_tx(r, id) || api_db_commit(r))
		return r->err.rc;
	r->obj_type = "fine_tuning.job";
	r->obj_id = id;
	return FT_OK;
}

enum ft_rc h_jobs_cancel(struct api_req *r)
{
	return job_move(r, JOB_CANCEL);
}

enum ft_rc h_jobs_pause(struct api_req *r)
{
	return job_move(r, JOB_PAUSE);
}

enum ft_rc h_jobs_resume(struct api_req *r)
{
	return job_move(r, JOB_RESUME);
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

/* ?stream=true: the live stream (stream.c) after the event named by
 * Last-Event-ID, which must be one of this job's. */
static enum ft_rc jobs_events_stream(struct api_req *r, const char *id)
{
	if (api_query(r, "after") || api_query(r, "limit")) {
		ft_failf(&r->err, FT_EINVAL, "invalid_value",
			 "\"after\" and \"limit\" page the list; a stream starts at the first "
			 "event, or after the one named by the Last-Event-ID header");
		ft_err_param(&r->err, api_query(r, "after") ? "after" : "limit");
		return FT_EINVAL;
	}
	long long seq = 0;
	const char *last = api_header(r, "Last-Event-ID");
	if (last && *last) {
		const char *p[] = { last, id };
		PGresult *res = NULL;
		if (ft_id_valid(FT_ID_EVENT, last)) {
			res = api_db(r, "SELECT seq FROM job_events WHERE id = $1 AND job_id = $2",
				     2, p);
			if (!res)
				return r->err.rc;
		}
		if (!res || PQntuples(res) == 0) {
			ft_failf(&r->err, FT_EINVAL, "invalid_value",
				 "Last-Event-ID is not an event of job \"%s\"", id);
			ft_err_param(&r->err, "Last-Event-ID");
			return FT_EINVAL;
		}
		seq = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	}
	return api_stream_job_events(r, id, seq);
}

enum ft_rc h_jobs_events(struct api_req *r)
{
	long limit;
	const char *after, *id = r->params[0];
	const char *stream = api_query(r, "stream");
	if (stream && strcmp(stream, "true") && strcmp(stream, "false")) {
		ft_failf(&r->err, FT_EINVAL, "invalid_value",
			 "\"stream\" must be true or false (got \"%.32s\")", stream);
		ft_err_param(&r->err, "stream");
		return FT_EINVAL;
	}
	if (job_visible(r, id))
		return r->err.rc;
	if (stream && strcmp(stream, "true") == 0)
		return jobs_events_stream(r, id);
	if (api_page_args(r, FT_ID_EVENT, &limit, &after))
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
	for (int i = 0; i < PQntuples(res); i++)
		json_array_append_new(data, api_event_json(res, i, 0));
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
		       "c.metrics::text, b.name "
		       "FROM checkpoints c JOIN jobs j ON j.id = c.job_id "
		       "JOIN base_models b ON b.id = j.base_model_id WHERE c.job_id = $1 "
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
		/* the job's fine-tuned model's name and the step (ft/modelref.h) */
		char name[600];
		ft_model_ref_ckpt_name(PQgetvalue(res, i, 4), id, (long)step, name, sizeof(name));
		json_object_set_new(c, "fine_tuned_model_checkpoint", json_string(name));
		json_object_set_new(c, "fine_tuning_job_id", json_string(id));
		json_object_set_new(c, "metrics", metrics);
		json_object_set_new(c, "step_number", json_integer(step));
		json_array_append_new(data, c);
	}
	r->resp = api_own(r, api_list(data, limit));
	return FT_OK;
}
