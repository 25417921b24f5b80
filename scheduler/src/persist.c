/*
 * persist.c - the worker event stream into PostgreSQL.
 *
 * The leader reads ft:events through consumer group "persist" under the
 * fixed consumer name "leader", so a new leader first re-reads what the old
 * one read but never acknowledged. Each event is applied in one transaction:
 *   1. INSERT INTO job_events … ON CONFLICT (id) DO NOTHING: an event seen
 *      before changes nothing (at-least-once delivery, exactly-once effect);
 *   2. the job row is locked; the event's effect is applied only when its
 *      attempt is the job's current attempt and the job is in a state the
 *      event may move it from (fencing: a stale worker cannot move a job);
 *   3. terminal transitions queue webhook deliveries in the same transaction
 *      (and a job's success creates its model version: registry.c).
 * Events of exports (an ftexp- "job") and of evaluations (fteval-) go to
 * their own tables and handlers (sched_kinds; ft/events.h says what each
 * does).
 * After COMMIT the entry is XACKed and its seq added to
 * ft:evack:<job>:<attempt>; the worker re-sends events whose seq is not
 * there yet, so a Redis wipe loses nothing the worker still holds.
 */
#include <jansson.h>

#include "ft/events.h"
#include "ft/webhook.h"
#include "sched_int.h"

#define CONSUMER "leader"

static enum ft_rc ensure_group(struct sched *s, struct ft_err *err)
{
	if (s->group_ready)
		return FT_OK;
	struct ft_err e;
	ft_err_clear(&e);
	redisReply *r = ft_redis_cmd(s->redis, FT_REDIS_RETRY, &e, "XGROUP CREATE %s %s 0 MKSTREAM",
				     FT_WIRE_EVENTS, FT_WIRE_EVENTS_GROUP);
	if (!r && !strstr(e.msg, "BUSYGROUP")) {
		*err = e;
		return e.rc;
	}
	if (r)
		freeReplyObject(r);
	s->group_ready = true;
	return FT_OK;
}

static const char *jstr(const json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

static void fmt_num(char *out, size_t n, const json_t *v)
{
	if (json_is_number(v))
		snprintf(out, n, "%.17g", json_number_value(v));
	else
		out[0] = '\0';
}

/* An event being applied, inside its transaction, with its job (or
 * export) row locked. */
struct applied {
	const struct sched_kind *k;
	const char *id, *job, *att, *datatext;
	const char *evtext; /* the event row's data: datatext, less an evaluation's rows */
	enum ft_ev ev;
	const json_t *data;
	char status[32], team[FT_ID_MAX];
	int attempt, max_attempts;
};

static enum ft_rc set_status(struct sched *s, const struct applied *a, const char *to,
			     const char *extra_sql, int n_extra, const char *const *extra,
			     const char *reason, struct ft_err *err)
{
	/* extra_sql is a fixed SET fragment using $3.. parameters. */
	char sql[1024];
	const char *p[8] = { a->job, to };
	for (int i = 0; i < n_extra && i < 6; i++)
		p[2 + i] = extra[i];
	snprintf(sql, sizeof(sql),
		 "UPDATE %s SET status = $2, updated_at = now()%s%s WHERE id = $1", a->k->table,
		 extra_sql ? ", " : "", extra_sql ? extra_sql : "");
	if (ft_pg_command(s->pg, err, sql, 2 + n_extra, p))
		return err->rc;
	return sched_note_transition(s, a->k, a->job, a->status, to, a->attempt, reason, err);
}

/* The job_events message of an event (OpenAI's wording where it has one). */
static void event_message(enum ft_ev ev, const char *kind, const json_t *data, char *out, size_t n)
{
	char loss[64] = "", acc[64] = "";
	json_int_t step = json_integer_value(json_object_get(data, "step"));
	switch (ev) {
	case FT_EV_PROGRESS: {
		const char *stage = jstr(data, "stage");
		if (stage) { /* an export's line */
			json_int_t done = json_integer_value(json_object_get(data, "done_bytes"));
			json_int_t all = json_integer_value(json_object_get(data, "total_bytes"));
			if (jstr(data, "file"))
				snprintf(out, n, "%s: %s (%lld of %lld bytes)", stage,
					 jstr(data, "file"), (long long)done, (long long)all);
			else
				snprintf(out, n, "%s", stage);
			return;
		}
		json_int_t total = json_integer_value(json_object_get(data, "total_steps"));
		fmt_num(loss, sizeof(loss), json_object_get(data, "train_loss"));
		if (total)
			snprintf(out, n, "Step %lld/%lld: training loss=%s", (long long)step,
				 (long long)total, loss);
		else
			snprintf(out, n, "Step %lld: training loss=%s", (long long)step, loss);
		return;
	}
	case FT_EV_EVAL: {
		/* DPO evaluations report reward accuracy instead of token accuracy */
		json_t *rw = json_object_get(data, "eval_rewards/accuracies");
		fmt_num(loss, sizeof(loss), json_object_get(data, "eval_loss"));
		fmt_num(acc, sizeof(acc), rw ? rw : json_object_get(data, "eval_token_accuracy"));
		snprintf(out, n, "Step %lld: validation loss=%s, %s accuracy=%s", (long long)step,
			 loss, rw ? "reward" : "token", acc);
		return;
	}
	case FT_EV_STARTED: snprintf(out, n, "Fine-tuning job started"); return;
	case FT_EV_CHECKPOINT:
		snprintf(out, n, "Checkpoint saved at step %lld", (long long)step);
		return;
	case FT_EV_SUCCEEDED: snprintf(out, n, "The job has successfully completed"); return;
	case FT_EV_CANCELLED: snprintf(out, n, "The job was cancelled"); return;
	case FT_EV_HANDBACK:
		snprintf(out, n, "The trainer stopped after a checkpoint: %s",
			 jstr(data, "reason") ? jstr(data, "reason") : "handed back");
		return;
	case FT_EV_ARTIFACT:
		snprintf(out, n, "Saved %s", jstr(data, "kind") ? jstr(data, "kind") : "artifact");
		return;
	case FT_EV_RESULT: { /* an evaluation's model */
		const json_t *m = json_object_get(data, "metrics");
		char ppl[64], rouge[64], bleu[64];
		fmt_num(ppl, sizeof(ppl), json_object_get(m, "perplexity"));
		fmt_num(rouge, sizeof(rouge),
			json_object_get(json_object_get(m, "rouge_l"), "fmeasure"));
		fmt_num(bleu, sizeof(bleu), json_object_get(json_object_get(m, "bleu"), "score"));
		snprintf(out, n, "Evaluated %s: perplexity=%s, ROUGE-L F=%s, BLEU=%s",
			 jstr(data, "name") ? jstr(data, "name") : "a model", ppl, rouge, bleu);
		return;
	}
	default: {
		const char *m = jstr(data, "message");
		snprintf(out, n, "%s", m ? m : kind);
	}
	}
}

/* A stored folder's artifact row (and its files): a job's (job_id set) or
 * an export's (metadata {"export_id"}). */
static enum ft_rc add_artifact(struct sched *s, const struct applied *a, const char *kind,
			       char *art_id, struct ft_err *err)
{
	char bytes[32];
	const char *sha = jstr(a->data, "manifest");
	if (!sha || strlen(sha) != 64)
		return ft_failf(err, FT_EINVAL, NULL, "%s event without a manifest", kind);
	snprintf(bytes, sizeof(bytes), "%lld",
		 (long long)json_integer_value(json_object_get(a->data, "bytes")));
	ft_id_new(FT_ID_ARTIFACT, art_id);
	char key[128];
	snprintf(key, sizeof(key), "sha256/%.2s/%s", sha, sha + 2);
	const char *p[] = { art_id,
			    a->team,
			    kind,
			    sha,
			    bytes,
			    key,
			    a->k->work == FT_WORK_EXPORT ? NULL : a->job,
			    a->k->work == FT_WORK_EXPORT ? a->job : NULL };
	if (ft_pg_command(s->pg, err,
			  "INSERT INTO artifacts (id, team_id, kind, sha256, bytes, "
			  "storage_key, format, job_id, metadata)"
			  " VALUES ($1, $2, $3, $4, $5::bigint, $6, 'manifest', $7,"
			  " CASE WHEN $8::text IS NULL THEN '{}'::jsonb"
			  " ELSE jsonb_build_object('export_id', $8::text) END)",
			  8, p))
		return err->rc;
	return sched_artifact_files(s, art_id, json_object_get(a->data, "files"), err);
}

/* The payload of an export's webhook: its model version, format, and the
 * artifact or the error. */
static json_t *export_payload(struct sched *s, const char *id, struct ft_err *err)
{
	PGresult *r = sched_q(s, err,
			      "SELECT v.name, v.version, e.format, e.artifact_id, e.error::text,"
			      " coalesce(a.sha256, ''), coalesce(a.bytes, 0)"
			      " FROM exports e JOIN model_versions v ON v.id = e.model_version_id"
			      " LEFT JOIN artifacts a ON a.id = e.artifact_id WHERE e.id = $1",
			      1, (const char *[]){ id });
	if (!r || PQntuples(r) != 1) {
		PQclear(r);
		return NULL;
	}
	json_t *d = json_pack("{s:s, s:s, s:i, s:s}", "id", id, "model", PQgetvalue(r, 0, 0),
			      "version", atoi(PQgetvalue(r, 0, 1)), "format", PQgetvalue(r, 0, 2));
	if (!PQgetisnull(r, 0, 3))
		json_object_set_new(d, "artifact",
				    json_pack("{s:s, s:s, s:I}", "id", PQgetvalue(r, 0, 3),
					      "sha256", PQgetvalue(r, 0, 5), "bytes",
					      (json_int_t)strtoll(PQgetvalue(r, 0, 6), NULL, 10)));
	if (!PQgetisnull(r, 0, 4))
		json_object_set_new(d, "error", json_loads(PQgetvalue(r, 0, 4), 0, NULL));
	PQclear(r);
	return d;
}

/* The payload of an evaluation's webhook: its status, its models side by
 * side with their metrics (no rows), or the error. */
static json_t *eval_payload(struct sched *s, const char *id, struct ft_err *err)
{
	PGresult *r = sched_q(
		s, err,
		"SELECT e.name, e.status, e.file_id, e.error::text,"
		" (SELECT coalesce(jsonb_agg(jsonb_build_object('model', m.model,"
		"   'model_version_id', m.model_version_id, 'metrics', m.result)"
		"   ORDER BY m.position), '[]') FROM eval_models m WHERE m.eval_id = e.id)::text"
		" FROM evals e WHERE e.id = $1",
		1, (const char *[]){ id });
	if (!r || PQntuples(r) != 1) {
		PQclear(r);
		return NULL;
	}
	json_t *d = json_pack("{s:s, s:s, s:s, s:s, s:o}", "id", id, "name", PQgetvalue(r, 0, 0),
			      "status", PQgetvalue(r, 0, 1), "file_id", PQgetvalue(r, 0, 2),
			      "models", json_loads(PQgetvalue(r, 0, 4), 0, NULL));
	if (!PQgetisnull(r, 0, 3))
		json_object_set_new(d, "error", json_loads(PQgetvalue(r, 0, 3), 0, NULL));
	PQclear(r);
	return d;
}

enum ft_rc sched_work_webhook(struct sched *s, const struct sched_kind *k, const char *id,
			      const char *team, enum ft_ev ev, const char *event_id,
			      struct ft_err *err)
{
	const char *type = ft_events[ev].webhook[k->work];
	if (!type)
		return FT_OK;
	json_t *d = k->work == FT_WORK_EXPORT ? export_payload(s, id, err)
		    : k->work == FT_WORK_EVAL ? eval_payload(s, id, err)
					      : json_pack("{s:s}", "id", id);
	if (!d)
		return ft_err_is_set(err) ? err->rc : FT_OK;
	json_t *pl = json_pack("{s:s, s:s, s:o}", "type", type, "id", event_id, "data", d);
	enum ft_rc rc = ft_webhook_queue(s->pg, team, type, pl, err);
	json_decref(pl);
	return rc;
}

static enum ft_rc webhook(struct sched *s, const struct applied *a, struct ft_err *err)
{
	return sched_work_webhook(s, a->k, a->job, a->team, a->ev, a->id, err);
}

/* Words of the status events, by kind of work. */
static const struct {
	const char *started_reason, *started, *succeeded;
} words[FT_WORK_COUNT] = {
	[FT_WORK_JOB] = { "training started", NULL, NULL },
	[FT_WORK_EXPORT] = { "export started", "Export started",
			     "The export has successfully completed" },
	[FT_WORK_EVAL] = { "evaluation started", "Evaluation started",
			   "The evaluation has successfully completed" },
};

static enum ft_rc on_started(struct sched *s, const struct applied *a, struct ft_err *err)
{
	return set_status(s, a, "running", "started_at = coalesce(started_at, now())", 0, NULL,
			  words[a->k->work].started_reason, err);
}

static enum ft_rc on_progress(struct sched *s, const struct applied *a, struct ft_err *err)
{
	static const char *const keys[] = {
		"epoch",	   "train_loss",	 "learning_rate",
		"grad_norm",	   "tokens_per_second",	 "eval_loss",
		"eval_perplexity", "eval_token_accuracy"
	};
	char f[8][64], step[32], eta[32];
	const char *pm[12] = { a->job, a->att, step };
	snprintf(step, sizeof(step), "%lld",
		 (long long)json_integer_value(json_object_get(a->data, "step")));
	for (int i = 0; i < 8; i++) {
		fmt_num(f[i], sizeof(f[i]), json_object_get(a->data, keys[i]));
		pm[3 + i] = f[i][0] ? f[i] : NULL;
	}
	pm[11] = a->datatext;
	if (ft_pg_command(
		    s->pg, err,
		    "INSERT INTO job_metrics (job_id, attempt, step, epoch, train_loss, "
		    "learning_rate, grad_norm, tokens_per_second, eval_loss, "
		    "eval_perplexity, eval_token_accuracy, extra)"
		    " VALUES ($1, $2::int, $3::int, $4::float8, $5::float8, $6::float8,"
		    " $7::float8, $8::float8, $9::float8, $10::float8, $11::float8, $12::jsonb)"
		    " ON CONFLICT DO NOTHING",
		    12, pm))
		return err->rc;
	fmt_num(eta, sizeof(eta), json_object_get(a->data, "eta_seconds"));
	const char *pu[] = { a->job, a->datatext, eta[0] ? eta : NULL };
	return ft_pg_command(
		s->pg, err,
		"UPDATE jobs SET latest_metrics = $2::jsonb, updated_at = now(),"
		" estimated_finish = CASE WHEN $3::float8 IS NULL THEN estimated_finish"
		" ELSE now() + $3::float8 * interval '1 second' END WHERE id = $1",
		3, pu);
}

static enum ft_rc on_eval(struct sched *s, const struct applied *a, struct ft_err *err)
{
	static const char *const keys[] = { "eval_loss", "eval_perplexity", "eval_token_accuracy" };
	char step[32], f[3][64];
	snprintf(step, sizeof(step), "%lld",
		 (long long)json_integer_value(json_object_get(a->data, "step")));
	const char *pv[6] = { a->job, a->att, step };
	for (int i = 0; i < 3; i++) {
		fmt_num(f[i], sizeof(f[i]), json_object_get(a->data, keys[i]));
		pv[3 + i] = f[i][0] ? f[i] : NULL;
	}
	return ft_pg_command(s->pg, err,
			     "INSERT INTO job_metrics (job_id, attempt, step, eval_loss, "
			     "eval_perplexity, eval_token_accuracy)"
			     " VALUES ($1, $2::int, $3::int, $4::float8, $5::float8, $6::float8)"
			     " ON CONFLICT (job_id, attempt, step) DO UPDATE SET"
			     " eval_loss = EXCLUDED.eval_loss,"
			     " eval_perplexity = EXCLUDED.eval_perplexity,"
			     " eval_token_accuracy = EXCLUDED.eval_token_accuracy",
			     6, pv);
}

/* checkpoint and artifact: the stored folder's row (and the checkpoint's). */
static enum ft_rc on_stored(struct sched *s, const struct applied *a, struct ft_err *err)
{
	char art[FT_ID_MAX], ck[FT_ID_MAX], step[32];
	bool ckpt = a->ev == FT_EV_CHECKPOINT;
	const char *akind = ckpt ? "checkpoint" : jstr(a->data, "kind");
	if (!akind)
		return ft_failf(err, FT_EINVAL, NULL, "artifact event without a kind");
	if (add_artifact(s, a, akind, art, err))
		return err->rc;
	if (!ckpt)
		return FT_OK;
	ft_id_new(FT_ID_CHECKPOINT, ck);
	snprintf(step, sizeof(step), "%lld",
		 (long long)json_integer_value(json_object_get(a->data, "step")));
	json_t *m = json_object_get(a->data, "metrics");
	char *mt = json_dumps(m ? m : json_object(), JSON_COMPACT);
	const char *pc[] = { ck, a->job, a->att, step, art, mt };
	enum ft_rc rc = ft_pg_command(s->pg, err,
				      "INSERT INTO checkpoints (id, job_id, attempt, step, "
				      "artifact_id, metrics)"
				      " VALUES ($1, $2, $3::int, $4::int, $5, $6::jsonb)"
				      " ON CONFLICT (job_id, step) DO NOTHING",
				      6, pc);
	free(mt);
	return rc;
}

/* A succeeded job's step metrics as OpenAI's results file: step_metrics.csv
 * (purpose "fine-tune-results"; OpenAI's five columns first, empty where a
 * step has no value: we compute no training accuracy; then ours), one row
 * per step, the latest attempt's where a resumed job ran a step twice. The
 * blob goes to the store, the files row and jobs.result_file_id in the
 * event's transaction (a blob left by a rolled-back one is collected by
 * gc.c). No store configured: no file. */
static enum ft_rc results_file(struct sched *s, const struct applied *a, struct ft_err *err)
{
	if (!s->store || a->k->work != FT_WORK_JOB)
		return FT_OK;
	PGresult *r =
		sched_q(s, err,
			"SELECT DISTINCT ON (step) step, train_loss, eval_loss,"
			" eval_token_accuracy, learning_rate, grad_norm, tokens_per_second, epoch"
			" FROM job_metrics WHERE job_id = $1 ORDER BY step, attempt DESC",
			1, (const char *[]){ a->job });
	if (!r)
		return err->rc;
	struct ft_store_writer *w = NULL;
	enum ft_rc rc = ft_store_writer_new(s->store, 0, &w, err);
	static const char head[] = "step,train_loss,train_accuracy,valid_loss,"
				   "valid_mean_token_accuracy,learning_rate,grad_norm,"
				   "tokens_per_second,epoch\n";
	if (!rc)
		rc = ft_store_writer_write(w, head, sizeof(head) - 1, err);
	for (int i = 0; !rc && i < PQntuples(r); i++) {
		char line[512];
		size_t n = 0;
		/* columns: step, train_loss, (train_accuracy), eval_loss, ... */
		static const int col[] = { 0, 1, -1, 2, 3, 4, 5, 6, 7 };
		for (size_t c = 0; c < FT_ARRAY_LEN(col); c++) {
			const char *v = col[c] < 0 || PQgetisnull(r, i, col[c])
						? ""
						: PQgetvalue(r, i, col[c]);
			n += (size_t)snprintf(line + n, sizeof(line) - n, "%s%s", c ? "," : "", v);
		}
		n += (size_t)snprintf(line + n, sizeof(line) - n, "\n");
		rc = ft_store_writer_write(w, line, FT_MIN(n, sizeof(line) - 1), err);
	}
	PQclear(r);
	char sha[FT_SHA256_HEX_LEN + 1], key[FT_STORE_KEY_MAX], id[FT_ID_MAX], bytes[32];
	uint64_t nb = 0;
	if (rc) {
		ft_store_writer_abort(w);
		return rc;
	}
	if (ft_store_writer_commit(w, sha, key, &nb, err))
		return err->rc;
	ft_id_new(FT_ID_FILE, id);
	snprintf(bytes, sizeof(bytes), "%llu", (unsigned long long)nb);
	const char *p[] = { id, a->team, bytes, sha, a->job };
	return ft_pg_command(
		s->pg, err,
		"WITH f AS (INSERT INTO files (id, team_id, filename, purpose, bytes,"
		" sha256, status) VALUES ($1, $2, 'step_metrics.csv', 'fine-tune-results',"
		" $3::bigint, $4, 'processed') RETURNING id)"
		" UPDATE jobs SET result_file_id = (SELECT id FROM f) WHERE id = $5",
		5, p);
}

static enum ft_rc on_succeeded(struct sched *s, const struct applied *a, struct ft_err *err)
{
	const char *model = jstr(a->data, "fine_tuned_model");
	char tokens[32] = "";
	if (json_is_integer(json_object_get(a->data, "trained_tokens")))
		snprintf(tokens, sizeof(tokens), "%lld",
			 (long long)json_integer_value(json_object_get(a->data, "trained_tokens")));
	const char *x[] = { model, tokens[0] ? tokens : NULL };
	if (set_status(s, a, "succeeded",
		       "finished_at = now(), lease_expires_at = NULL, fine_tuned_model = $3,"
		       " trained_tokens = $4::bigint",
		       2, x, "succeeded", err) ||
	    sched_version_from_job(s, a->job, a->id, a->data, err) || results_file(s, a, err))
		return err->rc;
	return webhook(s, a, err);
}

/* A failure ends a cancelling job, fails the job on a user error or its last
 * attempt, and otherwise queues it again (a pausing one: pauses it; resumed,
 * it starts from its last checkpoint). */
static enum ft_rc on_failed(struct sched *s, const struct applied *a, struct ft_err *err)
{
	bool user = json_is_true(json_object_get(a->data, "user_error"));
	const char *m = jstr(a->data, "message");
	if (strcmp(a->status, "cancelling") == 0)
		return set_status(s, a, "cancelled", "finished_at = now(), lease_expires_at = NULL",
				  0, NULL, "cancelled", err);
	if (!user && a->attempt < a->max_attempts && strcmp(a->status, "pausing") == 0)
		return set_status(s, a, "paused", "worker_id = NULL, lease_expires_at = NULL", 0,
				  NULL, m ? m : "attempt failed while pausing", err);
	if (!user && a->attempt < a->max_attempts)
		return set_status(s, a, "queued",
				  "worker_id = NULL, lease_expires_at = NULL, queued_at = now()", 0,
				  NULL, m ? m : "attempt failed; retrying", err);
	char what[64];
	snprintf(what, sizeof(what), "%s failed",
		 a->k->work == FT_WORK_JOB ? "training" : a->k->what);
	json_t *e = json_pack("{s:s, s:s, s:n}", "code", a->k->fail_codes[user], "message",
			      m ? m : what, "param");
	char *et = json_dumps(e, JSON_COMPACT);
	json_decref(e);
	const char *x[] = { et };
	enum ft_rc rc = set_status(
		s, a, "failed", "finished_at = now(), lease_expires_at = NULL, error = $3::jsonb",
		1, x, m ? m : "failed", err);
	free(et);
	return rc ? rc : webhook(s, a, err);
}

static enum ft_rc on_cancelled(struct sched *s, const struct applied *a, struct ft_err *err)
{
	if (set_status(s, a, "cancelled", "finished_at = now(), lease_expires_at = NULL", 0, NULL,
		       "cancelled", err))
		return err->rc;
	return webhook(s, a, err);
}

/* The worker stopped the trainer after a checkpoint (it is draining, or the
 * user paused the job): requeue, or pause, without using up an attempt. */
static enum ft_rc on_handback(struct sched *s, const struct applied *a, struct ft_err *err)
{
	if (strcmp(a->status, "cancelling") == 0)
		return set_status(s, a, "cancelled",
				  "finished_at = now(), worker_id = NULL, lease_expires_at = NULL",
				  0, NULL, "worker draining: handed back", err);
	if (strcmp(a->status, "pausing") == 0)
		return set_status(s, a, "paused",
				  "worker_id = NULL, lease_expires_at = NULL,"
				  " max_attempts = max_attempts + 1",
				  0, NULL, "paused by the user: handed back", err);
	return set_status(s, a, "queued",
			  "worker_id = NULL, lease_expires_at = NULL, queued_at = now(),"
			  " max_attempts = max_attempts + 1",
			  0, NULL, "worker draining: handed back", err);
}

/* ---- exports ---- */

/* progress: the "export" line (stage, file, bytes) as the export's progress. */
static enum ft_rc on_export_progress(struct sched *s, const struct applied *a, struct ft_err *err)
{
	return ft_pg_command(s->pg, err,
			     "UPDATE exports SET progress = $2::jsonb, updated_at = now()"
			     " WHERE id = $1",
			     2, (const char *[]){ a->job, a->datatext });
}

/* artifact: the export's folder (its format's artifacts.kind). */
static enum ft_rc on_export_artifact(struct sched *s, const struct applied *a, struct ft_err *err)
{
	char art[FT_ID_MAX];
	const char *kind = jstr(a->data, "kind");
	if (!kind)
		return ft_failf(err, FT_EINVAL, NULL, "artifact event without a kind");
	if (add_artifact(s, a, kind, art, err))
		return err->rc;
	/* an earlier attempt's folder (stored, then its worker was lost before
	 * it said "succeeded") is replaced: one artifact per export */
	PGresult *r = sched_q(s, err,
			      "WITH old AS (SELECT artifact_id FROM exports WHERE id = $1)"
			      " UPDATE exports SET artifact_id = $2 WHERE id = $1"
			      " RETURNING (SELECT artifact_id FROM old)",
			      2, (const char *[]){ a->job, art });
	if (!r)
		return err->rc;
	enum ft_rc rc = FT_OK;
	if (PQntuples(r) == 1 && !PQgetisnull(r, 0, 0))
		rc = ft_pg_command(
			s->pg, err,
			"DELETE FROM artifacts a WHERE a.id = $1"
			" AND NOT EXISTS (SELECT 1 FROM exports WHERE artifact_id = a.id)"
			" AND NOT EXISTS (SELECT 1 FROM model_versions WHERE artifact_id = a.id)",
			1, (const char *[]){ PQgetvalue(r, 0, 0) });
	PQclear(r);
	return rc;
}

/* succeeded: done when its folder is stored (the artifact event comes
 * first in the stream); an export said to succeed without one is retried. */
static enum ft_rc on_export_succeeded(struct sched *s, const struct applied *a, struct ft_err *err)
{
	PGresult *r = sched_q(s, err, "SELECT artifact_id IS NOT NULL FROM exports WHERE id = $1",
			      1, (const char *[]){ a->job });
	if (!r)
		return err->rc;
	bool stored = PQntuples(r) == 1 && PQgetvalue(r, 0, 0)[0] == 't';
	PQclear(r);
	if (!stored) {
		if (a->attempt < a->max_attempts)
			return set_status(s, a, "queued",
					  "worker_id = NULL, lease_expires_at = NULL, queued_at = "
					  "now()",
					  0, NULL, "the export's folder was not stored; retrying",
					  err);
		if (set_status(
			    s, a, "failed",
			    "finished_at = now(), lease_expires_at = NULL, error = "
			    "jsonb_build_object('code', 'export_failed', 'message', "
			    "'the export finished but its folder was not stored', 'param', NULL)",
			    0, NULL, "failed", err))
			return err->rc;
		struct applied f = *a;
		f.ev = FT_EV_FAILED;
		return webhook(s, &f, err);
	}
	if (set_status(s, a, "succeeded", "finished_at = now(), lease_expires_at = NULL", 0, NULL,
		       "succeeded", err))
		return err->rc;
	return webhook(s, a, err);
}

/* ---- evaluations ---- */

static enum ft_rc on_eval_progress(struct sched *s, const struct applied *a, struct ft_err *err)
{
	return ft_pg_command(
		s->pg, err,
		"UPDATE evals SET progress = $2::jsonb, updated_at = now() WHERE id = $1", 2,
		(const char *[]){ a->job, a->datatext });
}

/* result: one model's metrics and rows (a retried attempt overwrites them). */
static enum ft_rc on_eval_result(struct sched *s, const struct applied *a, struct ft_err *err)
{
	json_t *pos = json_object_get(a->data, "model");
	if (!json_is_integer(pos) || !json_is_object(json_object_get(a->data, "metrics")) ||
	    !json_is_array(json_object_get(a->data, "rows")))
		return ft_failf(err, FT_EINVAL, NULL, "result event without model, metrics, rows");
	/* With a judge, one pending judgment per row (judge.c decides them);
	 * a retried attempt's result sets them pending again. */
	return ft_pg_command(
		s->pg, err,
		"WITH m AS (UPDATE eval_models SET result = $2::jsonb->'metrics',"
		"   rows = $2::jsonb->'rows', completed_at = now()"
		"   WHERE eval_id = $1 AND position = ($2::jsonb->>'model')::int"
		"   RETURNING eval_id, position, jsonb_array_length(rows) AS n)"
		" INSERT INTO eval_judgments (eval_id, position, row_index, next_attempt_at)"
		" SELECT m.eval_id, m.position, g, now() FROM m JOIN evals e ON e.id = m.eval_id"
		"   CROSS JOIN generate_series(0, m.n - 1) g WHERE e.judge IS NOT NULL"
		" ON CONFLICT (eval_id, position, row_index) DO UPDATE SET status = 'pending',"
		"   outcome = NULL, verdicts = NULL, attempts = 0, next_attempt_at = now(),"
		"   error = NULL, decided_at = NULL",
		2, (const char *[]){ a->job, a->datatext });
}

/* succeeded: done when every model has its result (the result lines come
 * first in the stream); one said to succeed without them is retried. */
static enum ft_rc on_eval_succeeded(struct sched *s, const struct applied *a, struct ft_err *err)
{
	PGresult *r = sched_q(s, err,
			      "SELECT count(*) FILTER (WHERE result IS NULL) FROM eval_models"
			      " WHERE eval_id = $1",
			      1, (const char *[]){ a->job });
	if (!r)
		return err->rc;
	bool complete = PQntuples(r) == 1 && atoi(PQgetvalue(r, 0, 0)) == 0;
	PQclear(r);
	if (!complete) {
		if (a->attempt < a->max_attempts)
			return set_status(s, a, "queued",
					  "worker_id = NULL, lease_expires_at = NULL, queued_at = "
					  "now()",
					  0, NULL,
					  "the evaluation ended without every result; retrying",
					  err);
		if (set_status(s, a, "failed",
			       "finished_at = now(), lease_expires_at = NULL, error = "
			       "jsonb_build_object('code', 'eval_failed', 'message', "
			       "'the evaluation ended without every model''s result', 'param', "
			       "NULL)",
			       0, NULL, "failed", err))
			return err->rc;
		struct applied f = *a;
		f.ev = FT_EV_FAILED;
		return webhook(s, &f, err);
	}
	if (set_status(s, a, "succeeded", "finished_at = now(), lease_expires_at = NULL", 0, NULL,
		       "succeeded", err))
		return err->rc;
	return webhook(s, a, err);
}

/* What each event does beyond its events-table row (ft/events.h's table),
 * for jobs, exports and evaluations. */
typedef enum ft_rc (*handler_fn)(struct sched *, const struct applied *, struct ft_err *);
static const handler_fn handlers[FT_WORK_COUNT][FT_EV_COUNT] = {
	{
		[FT_EV_STARTED] = on_started,
		[FT_EV_PROGRESS] = on_progress,
		[FT_EV_EVAL] = on_eval,
		[FT_EV_CHECKPOINT] = on_stored,
		[FT_EV_ARTIFACT] = on_stored,
		[FT_EV_SUCCEEDED] = on_succeeded,
		[FT_EV_FAILED] = on_failed,
		[FT_EV_CANCELLED] = on_cancelled,
		[FT_EV_HANDBACK] = on_handback,
	},
	{
		[FT_EV_STARTED] = on_started,
		[FT_EV_PROGRESS] = on_export_progress,
		[FT_EV_ARTIFACT] = on_export_artifact,
		[FT_EV_SUCCEEDED] = on_export_succeeded,
		[FT_EV_FAILED] = on_failed,
		[FT_EV_CANCELLED] = on_cancelled,
		[FT_EV_HANDBACK] = on_handback,
	},
	{
		[FT_EV_STARTED] = on_started,
		[FT_EV_PROGRESS] = on_eval_progress,
		[FT_EV_RESULT] = on_eval_result,
		[FT_EV_SUCCEEDED] = on_eval_succeeded,
		[FT_EV_FAILED] = on_failed,
		[FT_EV_CANCELLED] = on_cancelled,
		[FT_EV_HANDBACK] = on_handback,
	},
};

/* Lock the event's job and store the event (once). *apply_it: the event is
 * new, of the current attempt, and its job is in a state it may move. */
static enum ft_rc record(struct sched *s, struct applied *a, const char *kind, bool known,
			 bool *apply_it, struct ft_err *err)
{
	char msg[512], sql[512];
	*apply_it = false;
	snprintf(sql, sizeof(sql),
		 "SELECT status, attempt, team_id, max_attempts FROM %s WHERE id = $1 FOR UPDATE",
		 a->k->table);
	PGresult *r = sched_q(s, err, sql, 1, (const char *[]){ a->job });
	if (!r)
		return err->rc;
	if (PQntuples(r) != 1) {
		ft_warn("event %s for unknown %s %s dropped", a->id, a->k->what, a->job);
		PQclear(r);
		return FT_OK;
	}
	ft_strlcpy(a->status, PQgetvalue(r, 0, 0), sizeof(a->status));
	ft_strlcpy(a->team, PQgetvalue(r, 0, 2), sizeof(a->team));
	int cur_attempt = atoi(PQgetvalue(r, 0, 1));
	a->max_attempts = atoi(PQgetvalue(r, 0, 3));
	PQclear(r);

	const struct ft_ev_def *d = known ? &ft_events[a->ev] : NULL;
	event_message(known ? a->ev : FT_EV_COUNT, kind, a->data, msg, sizeof(msg));
	if (known && a->ev == FT_EV_STARTED && words[a->k->work].started)
		snprintf(msg, sizeof(msg), "%s", words[a->k->work].started);
	if (known && a->ev == FT_EV_SUCCEEDED && words[a->k->work].succeeded)
		snprintf(msg, sizeof(msg), "%s", words[a->k->work].succeeded);
	const char *pe[] = {
		a->id, a->job,	 a->att, d ? d->level : "info", d ? d->type : "message",
		msg,   a->evtext
	};
	snprintf(sql, sizeof(sql),
		 "INSERT INTO %s (id, %s, attempt, level, type, message, data)"
		 " VALUES ($1, $2, $3::int, $4, $5, $6, $7::jsonb) ON CONFLICT (id) DO NOTHING "
		 "RETURNING 1",
		 a->k->events, a->k->fk);
	r = sched_q(s, err, sql, 7, pe);
	if (!r)
		return err->rc;
	bool fresh = PQntuples(r) == 1;
	PQclear(r);
	*apply_it = fresh && a->attempt == cur_attempt && d &&
		    (!d->moves_from || (d->moves_from & ft_job_state_bit(a->status)));
	return FT_OK;
}

/* Apply one event; returns FT_OK also for events that are stale or seen. */
static enum ft_rc apply(struct sched *s, json_t *ev, struct ft_err *err)
{
	struct applied a = { 0 };
	const char *kind = jstr(ev, "kind");
	a.id = jstr(ev, "id");
	a.job = jstr(ev, "job");
	a.data = json_object_get(ev, "data");
	a.attempt = (int)json_integer_value(json_object_get(ev, "attempt"));
	a.k = sched_kind_of(a.job);
	if (!a.id || !ft_id_valid(FT_ID_EVENT, a.id) || !a.k || !kind || a.attempt < 1) {
		ft_warn("dropping a malformed event");
		return FT_OK;
	}
	char att[16];
	snprintf(att, sizeof(att), "%d", a.attempt);
	a.att = att;
	bool known = ft_ev_find(kind, &a.ev), apply_it;
	char *datatext =
		json_dumps(a.data ? a.data : json_object(), JSON_COMPACT | JSON_ENCODE_ANY);
	a.datatext = datatext;
	/* an evaluation's result line carries every answer: its events row
	 * keeps the metrics only (the rows go to eval_models) */
	char *slimtext = NULL;
	if (known && a.ev == FT_EV_RESULT && json_is_object(a.data)) {
		json_t *slim = json_copy((json_t *)(uintptr_t)a.data);
		json_object_del(slim, "rows");
		slimtext = json_dumps(slim, JSON_COMPACT);
		json_decref(slim);
	}
	a.evtext = slimtext ? slimtext : datatext;
	enum ft_rc rc = sched_tx(s, "BEGIN", err);
	if (!rc)
		rc = record(s, &a, kind, known, &apply_it, err);
	if (!rc && apply_it && handlers[a.k->work][a.ev])
		rc = handlers[a.k->work][a.ev](s, &a, err);
	free(datatext);
	free(slimtext);
	if (rc) {
		PQclear(PQexec(s->pg, "ROLLBACK"));
		return rc;
	}
	return sched_tx(s, "COMMIT", err);
}

static enum ft_rc read_batch(struct sched *s, const char *from, size_t *count, struct ft_err *err)
{
	redisReply *r = ft_redis_cmd(s->redis, FT_REDIS_RETRY, err,
				     "XREADGROUP GROUP %s %s COUNT 256 STREAMS %s %s",
				     FT_WIRE_EVENTS_GROUP, CONSUMER, FT_WIRE_EVENTS, from);
	*count = 0;
	if (!r) {
		if (strstr(err->msg, "NOGROUP"))
			s->group_ready = false; /* Redis was wiped: recreate next tick */
		return err->rc;
	}
	if (r->type != REDIS_REPLY_ARRAY || r->elements == 0) {
		freeReplyObject(r);
		return FT_OK;
	}
	redisReply *entries = r->element[0]->element[1];
	for (size_t i = 0; i < entries->elements; i++) {
		redisReply *e = entries->element[i];
		const char *sid = e->element[0]->str;
		redisReply *fields = e->element[1];
		json_t *ev = NULL;
		for (size_t f = 0; f + 1 < fields->elements; f += 2)
			if (strcmp(fields->element[f]->str, "e") == 0)
				ev = json_loadb(fields->element[f + 1]->str,
						fields->element[f + 1]->len, 0, NULL);
		if (ev && apply(s, ev, err)) {
			json_decref(ev);
			freeReplyObject(r);
			return err->rc; /* not acked: retried next tick */
		}
		redisReply *a = ft_redis_cmd(s->redis, FT_REDIS_RETRY, err, "XACK %s %s %s",
					     FT_WIRE_EVENTS, FT_WIRE_EVENTS_GROUP, sid);
		if (a)
			freeReplyObject(a);
		if (ev && json_is_string(json_object_get(ev, "job"))) {
			redisReply *k = ft_redis_cmd(
				s->redis, FT_REDIS_RETRY, err, "SADD %s%s:%lld %lld",
				FT_WIRE_EVACK_KEY, jstr(ev, "job"),
				(long long)json_integer_value(json_object_get(ev, "attempt")),
				(long long)json_integer_value(json_object_get(ev, "seq")));
			if (k)
				freeReplyObject(k);
			k = ft_redis_cmd(
				s->redis, FT_REDIS_RETRY, err, "EXPIRE %s%s:%lld 3600",
				FT_WIRE_EVACK_KEY, jstr(ev, "job"),
				(long long)json_integer_value(json_object_get(ev, "attempt")));
			if (k)
				freeReplyObject(k);
		}
		json_decref(ev);
		__atomic_add_fetch(&s->persisted, 1, __ATOMIC_RELAXED);
		(*count)++;
	}
	freeReplyObject(r);
	return FT_OK;
}

enum ft_rc sched_persist_events(struct sched *s, struct ft_err *err)
{
	size_t n;
	if (ensure_group(s, err))
		return err->rc;
	/* What this consumer name read before (maybe a previous leader) but did
	 * not acknowledge, then new entries; a bounded number of batches per tick. */
	for (int i = 0; i < 8; i++) {
		if (read_batch(s, "0", &n, err))
			return err->rc;
		if (n == 0)
			break;
	}
	for (int i = 0; i < 16; i++) {
		if (read_batch(s, ">", &n, err))
			return err->rc;
		if (n == 0)
			break;
	}
	return FT_OK;
}
