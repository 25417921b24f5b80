/*
 * validator.c - the validator threads: full validation of training files
 * and datasets, away from the request that created them.
 *
 * PostgreSQL is the queue: each round takes one job in validating_files
 * (or one dataset in validating) with SELECT ... FOR UPDATE SKIP LOCKED,
 * validates its files, and writes the outcome, the transition and the
 * event in the same transaction. Work is never held anywhere else, so a
 * crash or restart simply leaves the row for the next round. Creating a job
 * or a dataset wakes a thread at once; otherwise they poll every second.
 */
#include <time.h>
#include <unistd.h>

#include "api_int.h"

/* Validate one file of the store. A file that cannot be opened is named by
 * its id (the store's path goes to the log, never to the user). */
static enum ft_rc validate_blob(struct api_ctx *ctx, const char *sha, const char *label,
				const char *file_id, const struct ft_api_validate_opts *o,
				json_t **report, struct ft_err *err)
{
	char key[FT_STORE_KEY_MAX];
	struct ft_err e;
	ft_err_clear(&e);
	ft_store_key_for(sha, key);
	int fd = ft_store_open_read(ctx->store, key, NULL, &e);
	FILE *f = fd >= 0 ? fdopen(fd, "rb") : NULL;
	if (!f) {
		if (fd >= 0)
			close(fd);
		ft_logf(FT_LOG_WARN, "api", NULL, "validator: %s %s: %s", label, file_id,
			e.msg[0] ? e.msg : strerror(errno));
		return ft_failf(err, FT_EIO, "file_unreadable",
				"%s \"%s\" cannot be read from the store", label, file_id);
	}
	enum ft_rc rc = ft_api_validate_file(f, o, report, err);
	fclose(f);
	return rc;
}

/* What a job's files are validated with: its method and, when its base
 * model's folder (or GGUF file) is readable on this host, the model's
 * tokenizer and chat template with the job's max_seq_length as the trainer
 * will read them: `ft-train validate --model DIR --method M --max-seq-len N`
 * exactly. Otherwise the structure only (the trainer then finds the folder
 * missing and says so). */
struct job_check {
	struct ft_api_validate_opts o;
	struct ft_tokenizer *tok;
	struct ft_train_job *tj;
};

static void job_check_init(struct job_check *c, const char *job, const char *method,
			   const char *adapter, const char *hp_text, bool has_validation,
			   const char *model_dir)
{
	struct ft_err e;
	memset(c, 0, sizeof(*c));
	ft_err_clear(&e);
	if (!ft_api_method_parse(method, &c->o.method) || !*model_dir)
		return;
	json_t *hp = json_loads(hp_text, 0, NULL);
	c->tj = calloc(1, sizeof(*c->tj));
	if (!c->tj) {
		ft_failf(&e, FT_ENOMEM, NULL, "out of memory");
	} else if (api_job_trainer_view(method, adapter, hp, has_validation, c->tj, &e) == FT_OK &&
		   ft_tokenizer_load(model_dir, &c->tok, &e) == FT_OK) {
		c->o.tok = c->tok;
		c->o.template_name = c->tj->chat_template[0] ? c->tj->chat_template : NULL;
		c->o.max_seq_len = (size_t)c->tj->max_seq_len;
		c->o.truncate_long = true; /* as the trainer does: cut, not refused */
	}
	if (!c->tok)
		ft_logf(FT_LOG_INFO, "api", job,
			"validating the files without the model's tokenizer: %s", e.msg);
	json_decref(hp);
}

static void job_check_release(struct job_check *c)
{
	ft_tokenizer_free(c->tok);
	free(c->tj);
	memset(c, 0, sizeof(*c));
}

/* A warning event when rows of a file are longer than the job's
 * max_seq_length: the trainer cuts them (as OpenAI's fine-tuning does), so
 * they are not an error, but the user should know before paying for it. */
static enum ft_rc warn_truncated(PGconn *db, const char *id, const char *label, json_t *report,
				 const struct job_check *c, struct ft_err *err)
{
	json_t *n = json_object_get(json_object_get(report, "stats"), "rows_truncated");
	if (!json_is_integer(n) || json_integer_value(n) == 0)
		return FT_OK;
	char msg[256], data[96];
	snprintf(msg, sizeof msg,
		 "%lld rows of the %s are longer than max_seq_length (%zu tokens): the "
		 "trainer will cut them to that length",
		 (long long)json_integer_value(n), label, c->o.max_seq_len);
	snprintf(data, sizeof data, "{\"rows_truncated\":%lld,\"max_seq_length\":%zu}",
		 (long long)json_integer_value(n), c->o.max_seq_len);
	return api_job_event(db, id, "warn", "message", msg, data, err);
}

/* The job's error when a file fails: its first error, and the report. */
static json_t *file_error(const char *param, const char *label, json_t *report)
{
	json_t *first = json_array_get(json_object_get(report, "errors"), 0);
	json_t *line = json_object_get(first, "line");
	const char *msg = json_string_value(json_object_get(first, "message"));
	long n = (long)json_integer_value(json_object_get(report, "n_errors"));
	char more[64] = "";
	if (n > 1)
		snprintf(more, sizeof(more), " (and %ld more errors)", n - 1);
	json_t *e = json_object();
	json_object_set_new(e, "code", json_sprintf("invalid_%s", param));
	/* "training file line 3: ...", "training file: the file has no rows" */
	json_object_set_new(e, "message",
			    json_sprintf("%s%s %s%s", label, json_is_integer(line) ? "" : ":",
					 msg ? msg : "is invalid", more));
	json_object_set_new(e, "param", json_string(param));
	json_object_set_new(e, "line", json_is_integer(line) ? json_incref(line) : json_null());
	json_object_set(e, "report", report);
	return e;
}

static json_t *unreadable_error(const char *param, const struct ft_err *verr)
{
	return json_pack("{s:s,s:s,s:s,s:n}", "code", "file_unreadable", "message", verr->msg,
			 "param", param, "line");
}

/* One job; returns true when there was one. */
static bool one_job(struct api_ctx *ctx, PGconn *db)
{
	struct ft_err err;
	ft_err_clear(&err);
	bool found = false;
	json_t *treport = NULL, *vreport = NULL, *error = NULL;
	struct job_check check = { 0 };
	if (ft_pg_command(db, &err, "BEGIN", 0, NULL))
		goto log;
	PGresult *res =
		ft_pg_exec(db, &err,
			   "SELECT j.id, j.method, j.training_file_id, tf.sha256, "
			   "j.validation_file_id, vf.sha256, j.adapter, j.hyperparameters::text, "
			   "coalesce(b.source_path, '') "
			   "FROM jobs j JOIN files tf ON tf.id = j.training_file_id "
			   "JOIN base_models b ON b.id = j.base_model_id "
			   "LEFT JOIN files vf ON vf.id = j.validation_file_id "
			   "WHERE j.status = 'validating_files' ORDER BY j.created_at LIMIT 1 "
			   "FOR UPDATE OF j SKIP LOCKED",
			   0, NULL);
	if (!res)
		goto log;
	if (PQntuples(res) == 0) {
		PQclear(res);
		ft_pg_command(db, &err, "ROLLBACK", 0, NULL);
		return false;
	}
	found = true;
	char id[FT_ID_MAX], method[16], tid[FT_ID_MAX], tsha[80], vid[FT_ID_MAX], vsha[80];
	bool has_v = !PQgetisnull(res, 0, 4);
	ft_strlcpy(id, PQgetvalue(res, 0, 0), sizeof(id));
	ft_strlcpy(method, PQgetvalue(res, 0, 1), sizeof(method));
	ft_strlcpy(tid, PQgetvalue(res, 0, 2), sizeof(tid));
	ft_strlcpy(tsha, PQgetvalue(res, 0, 3), sizeof(tsha));
	ft_strlcpy(vid, has_v ? PQgetvalue(res, 0, 4) : "", sizeof(vid));
	ft_strlcpy(vsha, has_v ? PQgetvalue(res, 0, 5) : "", sizeof(vsha));
	job_check_init(&check, id, method, PQgetvalue(res, 0, 6), PQgetvalue(res, 0, 7), has_v,
		       PQgetvalue(res, 0, 8));
	PQclear(res);

	struct ft_err verr;
	ft_err_clear(&verr);
	if (validate_blob(ctx, tsha, "training file", tid, &check.o, &treport, &verr)) {
		error = unreadable_error("training_file", &verr);
	} else if (!json_is_true(json_object_get(treport, "valid"))) {
		error = file_error("training_file", "training file", treport);
	} else if (has_v) {
		if (validate_blob(ctx, vsha, "validation file", vid, &check.o, &vreport, &verr))
			error = unreadable_error("validation_file", &verr);
		else if (!json_is_true(json_object_get(vreport, "valid")))
			error = file_error("validation_file", "validation file", vreport);
	}
	if (error) {
		char *e = json_dumps(error, JSON_COMPACT);
		const char *p[] = { id, e, json_string_value(json_object_get(error, "message")) };
		if (ft_pg_command(
			    db, &err,
			    "UPDATE jobs SET status = 'failed', error = $2::jsonb, finished_at = "
			    "now(), "
			    "updated_at = now() WHERE id = $1 AND status = 'validating_files'",
			    2, p) ||
		    ft_pg_command(db, &err,
				  "INSERT INTO job_transitions (job_id, from_status, to_status, "
				  "attempt, reason) "
				  "SELECT id, 'validating_files', 'failed', attempt, $2 FROM jobs "
				  "WHERE id = $1",
				  2, (const char *[]){ id, p[2] }) ||
		    api_job_event(db, id, "error", "status", p[2], "{\"status\":\"failed\"}",
				  &err)) {
			free(e);
			goto log;
		}
		free(e);
	} else {
		json_t *data = json_object();
		json_object_set_new(data, "status", json_string("queued"));
		json_object_set(data, "format", json_object_get(treport, "format"));
		json_object_set(data, "n_examples", json_object_get(treport, "n_examples"));
		if (vreport)
			json_object_set(data, "validation_examples",
					json_object_get(vreport, "n_examples"));
		char *d = json_dumps(data, JSON_COMPACT);
		json_decref(data);
		/* the files' statistics, for the lineage of the job's model version */
		json_t *stats = json_pack("{s:{s:O?, s:O?, s:O?}}", "training_file", "format",
					  json_object_get(treport, "format"), "n_examples",
					  json_object_get(treport, "n_examples"), "stats",
					  json_object_get(treport, "stats"));
		if (vreport)
			json_object_set_new(stats, "validation_file",
					    json_pack("{s:O?, s:O?, s:O?}", "format",
						      json_object_get(vreport, "format"),
						      "n_examples",
						      json_object_get(vreport, "n_examples"),
						      "stats", json_object_get(vreport, "stats")));
		char *st = json_dumps(stats, JSON_COMPACT);
		json_decref(stats);
		const char *p[] = { id, st };
		if (ft_pg_command(db, &err,
				  "UPDATE jobs SET status = 'queued', queued_at = now(), "
				  "updated_at = now(), data_stats = $2::jsonb "
				  "WHERE id = $1 AND status = 'validating_files'",
				  2, p) ||
		    ft_pg_command(
			    db, &err,
			    "INSERT INTO job_transitions (job_id, from_status, to_status, attempt, "
			    "reason) "
			    "SELECT id, 'validating_files', 'queued', attempt, 'files validated' "
			    "FROM jobs WHERE id = $1",
			    1, p) ||
		    api_job_event(db, id, "info", "status",
				  "Files validated, moving job to queued state", d, &err) ||
		    warn_truncated(db, id, "training file", treport, &check, &err) ||
		    warn_truncated(db, id, "validation file", vreport, &check, &err)) {
			free(d);
			free(st);
			goto log;
		}
		free(d);
		free(st);
	}
	if (ft_pg_command(db, &err, "COMMIT", 0, NULL))
		goto log;
	ft_logf(FT_LOG_INFO, "api", id, "validation: job %s", error ? "failed" : "queued");
	goto release;
log:
	ft_logf(FT_LOG_WARN, "api", NULL, "validator: %s: %s", err.msg, err.detail);
release:
	job_check_release(&check);
	json_decref(treport);
	json_decref(vreport);
	json_decref(error);
	return found;
}

static bool one_dataset(struct api_ctx *ctx, PGconn *db)
{
	struct ft_err err;
	ft_err_clear(&err);
	json_t *report = NULL;
	bool found = false;
	if (ft_pg_command(db, &err, "BEGIN", 0, NULL))
		goto log;
	PGresult *res = ft_pg_exec(db, &err,
				   "SELECT d.id, f.sha256, d.file_id FROM datasets d "
				   "JOIN files f ON f.id = d.file_id "
				   "WHERE d.status = 'validating' ORDER BY d.created_at LIMIT 1 "
				   "FOR UPDATE OF d SKIP LOCKED",
				   0, NULL);
	if (!res)
		goto log;
	if (PQntuples(res) == 0) {
		PQclear(res);
		ft_pg_command(db, &err, "ROLLBACK", 0, NULL);
		return false;
	}
	found = true;
	char id[FT_ID_MAX], sha[80], fid[FT_ID_MAX];
	ft_strlcpy(id, PQgetvalue(res, 0, 0), sizeof(id));
	ft_strlcpy(sha, PQgetvalue(res, 0, 1), sizeof(sha));
	ft_strlcpy(fid, PQgetvalue(res, 0, 2), sizeof(fid));
	PQclear(res);
	struct ft_err verr;
	ft_err_clear(&verr);
	/* a dataset has no method and no model: any format, its structure */
	const struct ft_api_validate_opts o = { .method = FT_METHOD_AUTO };
	if (validate_blob(ctx, sha, "file", fid, &o, &report, &verr)) {
		/* the report of a file with that one error, in the same shape */
		struct ft_data_report *rep = calloc(1, sizeof(*rep));
		if (!rep)
			goto log;
		rep->n_errors = 1;
		rep->n_issues = 1;
		ft_strlcpy(rep->issues[0].code, "file_unreadable", sizeof(rep->issues[0].code));
		ft_strlcpy(rep->issues[0].msg, verr.msg, sizeof(rep->issues[0].msg));
		report = ft_api_report_json(rep);
		free(rep);
	}
	json_t *stats = json_object_get(report, "stats");
	char *st = json_dumps(stats ? stats : json_object(), JSON_COMPACT);
	json_object_del(report, "stats");
	char *rep = json_dumps(report, JSON_COMPACT);
	bool valid = json_is_true(json_object_get(report, "valid"));
	const char *fmt = json_string_value(json_object_get(report, "format"));
	const char *p[] = { id, valid ? "valid" : "invalid", fmt, rep, st };
	enum ft_rc rc =
		ft_pg_command(db, &err,
			      "UPDATE datasets SET status = $2, format = $3, report = $4::jsonb, "
			      "stats = $5::jsonb, validated_at = now() "
			      "WHERE id = $1 AND status = 'validating'",
			      5, p);
	free(st);
	free(rep);
	if (rc || ft_pg_command(db, &err, "COMMIT", 0, NULL))
		goto log;
	goto release;
log:
	ft_logf(FT_LOG_WARN, "api", NULL, "validator: %s: %s", err.msg, err.detail);
release:
	json_decref(report);
	return found;
}

static void *validator_main(void *arg)
{
	struct api_ctx *ctx = arg;
	for (;;) {
		pthread_mutex_lock(&ctx->vmu);
		bool stop = ctx->vstop;
		pthread_mutex_unlock(&ctx->vmu);
		if (stop)
			break;
		struct ft_err err;
		ft_err_clear(&err);
		bool busy = false;
		PGconn *db = ft_pg_pool_get(ctx->pg, 1000, &err);
		if (db) {
			busy = one_job(ctx, db);
			busy = one_dataset(ctx, db) || busy;
			ft_pg_pool_put(ctx->pg, db);
		}
		if (busy)
			continue;
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 1;
		pthread_mutex_lock(&ctx->vmu);
		if (!ctx->vstop)
			pthread_cond_timedwait(&ctx->vcv, &ctx->vmu, &ts);
		pthread_mutex_unlock(&ctx->vmu);
	}
	return NULL;
}

void api_validators_start(struct api_ctx *ctx, int n)
{
	pthread_mutex_init(&ctx->vmu, NULL);
	pthread_cond_init(&ctx->vcv, NULL);
	ctx->vstop = false;
	ctx->n_validators = 0;
	for (int i = 0; i < n && i < (int)FT_ARRAY_LEN(ctx->validators); i++) {
		if (pthread_create(&ctx->validators[i], NULL, validator_main, ctx) == 0)
			ctx->n_validators++;
	}
}

void api_validators_kick(struct api_ctx *ctx)
{
	pthread_mutex_lock(&ctx->vmu);
	pthread_cond_signal(&ctx->vcv);
	pthread_mutex_unlock(&ctx->vmu);
}

void api_validators_stop(struct api_ctx *ctx)
{
	pthread_mutex_lock(&ctx->vmu);
	ctx->vstop = true;
	pthread_cond_broadcast(&ctx->vcv);
	pthread_mutex_unlock(&ctx->vmu);
	for (int i = 0; i < ctx->n_validators; i++)
		pthread_join(ctx->validators[i], NULL);
	pthread_cond_destroy(&ctx->vcv);
	pthread_mutex_destroy(&ctx->vmu);
}
