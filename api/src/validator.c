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

static enum ft_rc validate_blob(struct api_ctx *ctx, const char *sha, const char *method,
				json_t **report, struct ft_err *err)
{
	char key[FT_STORE_KEY_MAX];
	ft_store_key_for(sha, key);
	int fd = ft_store_open_read(ctx->store, key, NULL, err);
	if (fd < 0)
		return err->rc;
	enum ft_rc rc = ft_api_validate_fd(fd, method, report, err);
	close(fd);
	return rc;
}

/* The job's error when a file fails: the first line error, and the report. */
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
	json_object_set_new(e, "message",
			    json_sprintf("%s %s%s", label, msg ? msg : "is invalid", more));
	json_object_set_new(e, "param", json_string(param));
	json_object_set_new(e, "line",
			    line && json_integer_value(line) > 0 ? json_incref(line) : json_null());
	json_object_set(e, "report", report);
	return e;
}

/* One job; returns true when there was one. */
static bool one_job(struct api_ctx *ctx, PGconn *db)
{
	struct ft_err err;
	ft_err_clear(&err);
	bool found = false;
	json_t *treport = NULL, *vreport = NULL, *error = NULL;
	if (ft_pg_command(db, &err, "BEGIN", 0, NULL))
		goto log;
	PGresult *res =
		ft_pg_exec(db, &err,
			   "SELECT j.id, j.method, j.training_file_id, tf.sha256, "
			   "j.validation_file_id, vf.sha256 "
			   "FROM jobs j JOIN files tf ON tf.id = j.training_file_id "
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
	char id[FT_ID_MAX], method[16], tsha[80], vsha[80];
	bool has_v = !PQgetisnull(res, 0, 4);
	ft_strlcpy(id, PQgetvalue(res, 0, 0), sizeof(id));
	ft_strlcpy(method, PQgetvalue(res, 0, 1), sizeof(method));
	ft_strlcpy(tsha, PQgetvalue(res, 0, 3), sizeof(tsha));
	ft_strlcpy(vsha, has_v ? PQgetvalue(res, 0, 5) : "", sizeof(vsha));
	PQclear(res);

	struct ft_err verr;
	ft_err_clear(&verr);
	if (validate_blob(ctx, tsha, method, &treport, &verr)) {
		error = json_pack("{s:s,s:s,s:s}", "code", "file_unreadable", "message", verr.msg,
				  "param", "training_file");
	} else if (!json_is_true(json_object_get(treport, "valid"))) {
		error = file_error("training_file", "training file", treport);
	} else if (has_v) {
		if (validate_blob(ctx, vsha, method, &vreport, &verr))
			error = json_pack("{s:s,s:s,s:s}", "code", "file_unreadable", "message",
					  verr.msg, "param", "validation_file");
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
		    api_job_event(db, id, "error", "status", p[2], NULL, &err)) {
			free(e);
			goto log;
		}
		free(e);
	} else {
		json_t *data = json_object();
		json_object_set(data, "format", json_object_get(treport, "format"));
		json_object_set(data, "n_examples", json_object_get(treport, "n_examples"));
		if (vreport)
			json_object_set(data, "validation_examples",
					json_object_get(vreport, "n_examples"));
		char *d = json_dumps(data, JSON_COMPACT);
		json_decref(data);
		const char *p[] = { id };
		if (ft_pg_command(db, &err,
				  "UPDATE jobs SET status = 'queued', queued_at = now(), "
				  "updated_at = now() "
				  "WHERE id = $1 AND status = 'validating_files'",
				  1, p) ||
		    ft_pg_command(
			    db, &err,
			    "INSERT INTO job_transitions (job_id, from_status, to_status, attempt, "
			    "reason) "
			    "SELECT id, 'validating_files', 'queued', attempt, 'files validated' "
			    "FROM jobs WHERE id = $1",
			    1, p) ||
		    api_job_event(db, id, "info", "status",
				  "Files validated, moving job to queued state", d, &err)) {
			free(d);
			goto log;
		}
		free(d);
	}
	if (ft_pg_command(db, &err, "COMMIT", 0, NULL))
		goto log;
	ft_logf(FT_LOG_INFO, "api", id, "validation: job %s", error ? "failed" : "queued");
	goto release;
log:
	ft_logf(FT_LOG_WARN, "api", NULL, "validator: %s: %s", err.msg, err.detail);
release:
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
	PGresult *res =
		ft_pg_exec(db, &err,
			   "SELECT d.id, f.sha256 FROM datasets d JOIN files f ON f.id = d.file_id "
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
	char id[FT_ID_MAX], sha[80];
	ft_strlcpy(id, PQgetvalue(res, 0, 0), sizeof(id));
	ft_strlcpy(sha, PQgetvalue(res, 0, 1), sizeof(sha));
	PQclear(res);
	struct ft_err verr;
	ft_err_clear(&verr);
	if (validate_blob(ctx, sha, NULL, &report, &verr)) {
		report = json_pack("{s:n,s:b,s:i,s:i,s:i,s:[{s:i,s:s,s:s}],s:{},s:[]}", "format",
				   "valid", 0, "n_lines", 0, "n_examples", 0, "n_errors", 1,
				   "errors", "line", 0, "code", "file_unreadable", "message",
				   verr.msg, "stats", "preview");
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
