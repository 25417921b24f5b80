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
 *   3. terminal transitions queue webhook deliveries in the same transaction.
 * After COMMIT the entry is XACKed and its seq added to
 * ft:evack:<job>:<attempt>; the worker re-sends events whose seq is not
 * there yet, so a Redis wipe loses nothing the worker still holds.
 */
#include <jansson.h>

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

/* Queue a webhook delivery for every enabled endpoint of the team that
 * subscribes to `type`. */
static enum ft_rc queue_webhooks(struct sched *s, const char *team, const char *type,
				 json_t *payload, struct ft_err *err)
{
	const char *p[] = { team, type };
	PGresult *r = sched_q(
		s, err,
		"SELECT id FROM webhooks WHERE team_id = $1 AND enabled AND $2 = ANY(events)", 2,
		p);
	if (!r)
		return err->rc;
	char *body = json_dumps(payload, JSON_COMPACT);
	enum ft_rc rc = FT_OK;
	for (int i = 0; i < PQntuples(r) && !rc; i++) {
		char id[FT_ID_MAX];
		ft_id_new(FT_ID_DELIVERY, id);
		const char *q[] = { id, PQgetvalue(r, i, 0), type, body };
		rc = ft_pg_command(
			s->pg, err,
			"INSERT INTO webhook_deliveries (id, webhook_id, event_type, payload)"
			" VALUES ($1, $2, $3, $4::jsonb)",
			4, q);
	}
	free(body);
	PQclear(r);
	return rc;
}

static enum ft_rc set_status(struct sched *s, const char *job, const char *from, const char *to,
			     int attempt, const char *extra_sql, int n_extra,
			     const char *const *extra, const char *reason, struct ft_err *err)
{
	/* extra_sql is a fixed SET fragment using $3.. parameters. */
	char sql[1024];
	const char *p[8] = { job, to };
	for (int i = 0; i < n_extra && i < 6; i++)
		p[2 + i] = extra[i];
	snprintf(sql, sizeof(sql),
		 "UPDATE jobs SET status = $2, updated_at = now()%s%s WHERE id = $1",
		 extra_sql ? ", " : "", extra_sql ? extra_sql : "");
	if (ft_pg_command(s->pg, err, sql, 2 + n_extra, p))
		return err->rc;
	return sched_note_transition(s, job, from, to, attempt, reason, err);
}

static void event_message(const char *kind, const json_t *data, char *out, size_t n)
{
	if (strcmp(kind, "progress") == 0) {
		char loss[64] = "";
		fmt_num(loss, sizeof(loss), json_object_get(data, "train_loss"));
		json_int_t step = json_integer_value(json_object_get(data, "step"));
		json_int_t total = json_integer_value(json_object_get(data, "total_steps"));
		if (total)
			snprintf(out, n, "Step %lld/%lld: training loss=%s", (long long)step,
				 (long long)total, loss);
		else
			snprintf(out, n, "Step %lld: training loss=%s", (long long)step, loss);
	} else if (strcmp(kind, "eval") == 0) {
		/* DPO evaluations report reward accuracy instead of token accuracy */
		json_t *rw = json_object_get(data, "eval_rewards/accuracies");
		char loss[64] = "", acc[64] = "";
		fmt_num(loss, sizeof(loss), json_object_get(data, "eval_loss"));
		fmt_num(acc, sizeof(acc), rw ? rw : json_object_get(data, "eval_token_accuracy"));
		snprintf(out, n, "Step %lld: validation loss=%s, %s accuracy=%s",
			 (long long)json_integer_value(json_object_get(data, "step")), loss,
			 rw ? "reward" : "token", acc);
	} else if (strcmp(kind, "started") == 0) {
		snprintf(out, n, "Fine-tuning job started");
	} else if (strcmp(kind, "checkpoint") == 0) {
		snprintf(out, n, "Checkpoint saved at step %lld",
			 (long long)json_integer_value(json_object_get(data, "step")));
	} else if (strcmp(kind, "succeeded") == 0) {
		snprintf(out, n, "The job has successfully completed");
	} else if (strcmp(kind, "cancelled") == 0) {
		snprintf(out, n, "The job was cancelled");
	} else if (strcmp(kind, "artifact") == 0) {
		snprintf(out, n, "Saved %s", jstr(data, "kind") ? jstr(data, "kind") : "artifact");
	} else {
		const char *m = jstr(data, "message");
		snprintf(out, n, "%s", m ? m : kind);
	}
}

static enum ft_rc add_artifact(struct sched *s, const char *team, const char *job, const char *kind,
			       const json_t *data, char *art_id, struct ft_err *err)
{
	char bytes[32];
	const char *sha = jstr(data, "manifest");
	if (!sha)
		return ft_failf(err, FT_EINVAL, NULL, "%s event without a manifest", kind);
	snprintf(bytes, sizeof(bytes), "%lld",
		 (long long)json_integer_value(json_object_get(data, "bytes")));
	ft_id_new(FT_ID_ARTIFACT, art_id);
	char key[128];
	snprintf(key, sizeof(key), "sha256/%.2s/%s", sha, sha + 2);
	const char *p[] = { art_id, team, kind, sha, bytes, key, job };
	return ft_pg_command(s->pg, err,
			     "INSERT INTO artifacts (id, team_id, kind, sha256, bytes, "
			     "storage_key, format, job_id)"
			     " VALUES ($1, $2, $3, $4, $5::bigint, $6, 'manifest', $7)",
			     7, p);
}

/* Apply one event; returns FT_OK also for events that are stale or seen. */
static enum ft_rc apply(struct sched *s, json_t *ev, struct ft_err *err)
{
	const char *id = jstr(ev, "id"), *job = jstr(ev, "job"), *kind = jstr(ev, "kind");
	json_t *data = json_object_get(ev, "data");
	int attempt = (int)json_integer_value(json_object_get(ev, "attempt"));
	char att[16], msg[512], *datatext = NULL;
	PGresult *r = NULL;

	if (!id || !ft_id_valid(FT_ID_EVENT, id) || !job || !kind || attempt < 1) {
		ft_warn("dropping a malformed event");
		return FT_OK;
	}
	snprintf(att, sizeof(att), "%d", attempt);
	event_message(kind, data, msg, sizeof(msg));
	datatext = json_dumps(data ? data : json_object(), JSON_COMPACT | JSON_ENCODE_ANY);
	const char *level = strcmp(kind, "failed") == 0 ? "error" : "info";
	const char *type =
		strcmp(kind, "progress") == 0 || strcmp(kind, "eval") == 0 ? "metrics" : "message";

	if (sched_tx(s, "BEGIN", err))
		goto fail;
	r = sched_q(
		s, err,
		"SELECT status, attempt, team_id, max_attempts FROM jobs WHERE id = $1 FOR UPDATE",
		1, (const char *[]){ job });
	if (!r)
		goto fail;
	if (PQntuples(r) != 1) {
		ft_warn("event %s for unknown job %s dropped", id, job);
		PQclear(r);
		free(datatext);
		return sched_tx(s, "ROLLBACK", err);
	}
	char status[32], team[FT_ID_MAX];
	ft_strlcpy(status, PQgetvalue(r, 0, 0), sizeof(status));
	ft_strlcpy(team, PQgetvalue(r, 0, 2), sizeof(team));
	int cur_attempt = atoi(PQgetvalue(r, 0, 1)), max_attempts = atoi(PQgetvalue(r, 0, 3));
	PQclear(r);

	const char *pe[] = { id, job, att, level, type, msg, datatext };
	r = sched_q(s, err,
		    "INSERT INTO job_events (id, job_id, attempt, level, type, message, data)"
		    " VALUES ($1, $2, $3::int, $4, $5, $6, $7::jsonb) ON CONFLICT (id) DO NOTHING "
		    "RETURNING 1",
		    7, pe);
	if (!r)
		goto fail;
	bool fresh = PQntuples(r) == 1;
	PQclear(r);
	r = NULL;
	bool current = attempt == cur_attempt;
	bool active = strcmp(status, "dispatched") == 0 || strcmp(status, "running") == 0 ||
		      strcmp(status, "cancelling") == 0;
	if (!fresh || !current) {
		free(datatext);
		return sched_tx(s, "COMMIT", err);
	}

	if (strcmp(kind, "started") == 0) {
		if (strcmp(status, "dispatched") == 0 &&
		    set_status(s, job, status, "running", attempt,
			       "started_at = coalesce(started_at, now())", 0, NULL,
			       "training started", err))
			goto fail;
	} else if (strcmp(kind, "progress") == 0) {
		char f[8][64];
		static const char *const keys[] = {
			"epoch",	   "train_loss",	 "learning_rate",
			"grad_norm",	   "tokens_per_second",	 "eval_loss",
			"eval_perplexity", "eval_token_accuracy"
		};
		const char *pm[12] = { job, att, NULL };
		char step[32];
		snprintf(step, sizeof(step), "%lld",
			 (long long)json_integer_value(json_object_get(data, "step")));
		pm[2] = step;
		for (int i = 0; i < 8; i++) {
			fmt_num(f[i], sizeof(f[i]), json_object_get(data, keys[i]));
			pm[3 + i] = f[i][0] ? f[i] : NULL;
		}
		pm[11] = datatext;
		if (ft_pg_command(s->pg, err,
				  "INSERT INTO job_metrics (job_id, attempt, step, epoch, "
				  "train_loss, learning_rate,"
				  " grad_norm, tokens_per_second, eval_loss, eval_perplexity, "
				  "eval_token_accuracy, extra)"
				  " VALUES ($1, $2::int, $3::int, $4::float8, $5::float8, "
				  "$6::float8, $7::float8,"
				  " $8::float8, $9::float8, $10::float8, $11::float8, $12::jsonb)"
				  " ON CONFLICT DO NOTHING",
				  12, pm))
			goto fail;
		char eta[32];
		fmt_num(eta, sizeof(eta), json_object_get(data, "eta_seconds"));
		const char *pu[] = { job, datatext, eta[0] ? eta : NULL };
		if (ft_pg_command(
			    s->pg, err,
			    "UPDATE jobs SET latest_metrics = $2::jsonb, updated_at = now(),"
			    " estimated_finish = CASE WHEN $3::float8 IS NULL THEN estimated_finish"
			    " ELSE now() + $3::float8 * interval '1 second' END WHERE id = $1",
			    3, pu))
			goto fail;
	} else if (strcmp(kind, "eval") == 0) {
		char step[32], f[3][64];
		static const char *const keys[] = { "eval_loss", "eval_perplexity",
						    "eval_token_accuracy" };
		snprintf(step, sizeof(step), "%lld",
			 (long long)json_integer_value(json_object_get(data, "step")));
		const char *pv[6] = { job, att, step };
		for (int i = 0; i < 3; i++) {
			fmt_num(f[i], sizeof(f[i]), json_object_get(data, keys[i]));
			pv[3 + i] = f[i][0] ? f[i] : NULL;
		}
		if (ft_pg_command(s->pg, err,
				  "INSERT INTO job_metrics (job_id, attempt, step, eval_loss, "
				  "eval_perplexity,"
				  " eval_token_accuracy) VALUES ($1, $2::int, $3::int, $4::float8, "
				  "$5::float8, $6::float8)"
				  " ON CONFLICT (job_id, attempt, step) DO UPDATE SET eval_loss = "
				  "EXCLUDED.eval_loss,"
				  " eval_perplexity = EXCLUDED.eval_perplexity,"
				  " eval_token_accuracy = EXCLUDED.eval_token_accuracy",
				  6, pv))
			goto fail;
	} else if (strcmp(kind, "checkpoint") == 0 || strcmp(kind, "artifact") == 0) {
		char art[FT_ID_MAX], ck[FT_ID_MAX], step[32];
		bool ckpt = kind[0] == 'c';
		const char *akind = ckpt ? "checkpoint" : jstr(data, "kind");
		if (!akind || add_artifact(s, team, job, akind, data, art, err))
			goto fail;
		if (ckpt) {
			ft_id_new(FT_ID_CHECKPOINT, ck);
			snprintf(step, sizeof(step), "%lld",
				 (long long)json_integer_value(json_object_get(data, "step")));
			json_t *m = json_object_get(data, "metrics");
			char *mt = json_dumps(m ? m : json_object(), JSON_COMPACT);
			const char *pc[] = { ck, job, att, step, art, mt };
			enum ft_rc rc =
				ft_pg_command(s->pg, err,
					      "INSERT INTO checkpoints (id, job_id, attempt, step, "
					      "artifact_id, metrics)"
					      " VALUES ($1, $2, $3::int, $4::int, $5, $6::jsonb)"
					      " ON CONFLICT (job_id, step) DO NOTHING",
					      6, pc);
			free(mt);
			if (rc)
				goto fail;
		}
	} else if (strcmp(kind, "succeeded") == 0 && active) {
		const char *model = jstr(data, "fine_tuned_model");
		char tokens[32] = "";
		if (json_is_integer(json_object_get(data, "trained_tokens")))
			snprintf(tokens, sizeof(tokens), "%lld",
				 (long long)json_integer_value(
					 json_object_get(data, "trained_tokens")));
		const char *x[] = { model, tokens[0] ? tokens : NULL };
		if (set_status(
			    s, job, status, "succeeded", attempt,
			    "finished_at = now(), lease_expires_at = NULL, fine_tuned_model = $3,"
			    " trained_tokens = $4::bigint",
			    2, x, "succeeded", err))
			goto fail;
		json_t *pl = json_pack("{s:s, s:s, s:{s:s}}", "type", "fine_tuning.job.succeeded",
				       "id", id, "data", "id", job);
		enum ft_rc rc = queue_webhooks(s, team, "fine_tuning.job.succeeded", pl, err);
		json_decref(pl);
		if (rc)
			goto fail;
	} else if (strcmp(kind, "failed") == 0 && active) {
		bool user = json_is_true(json_object_get(data, "user_error"));
		const char *m = jstr(data, "message");
		if (strcmp(status, "cancelling") == 0) {
			if (set_status(s, job, status, "cancelled", attempt,
				       "finished_at = now(), lease_expires_at = NULL", 0, NULL,
				       "cancelled", err))
				goto fail;
		} else if (user || attempt >= max_attempts) {
			json_t *e = json_pack("{s:s, s:s, s:n}", "code",
					      user ? "invalid_training" : "training_failed",
					      "message", m ? m : "training failed", "param");
			char *et = json_dumps(e, JSON_COMPACT);
			json_decref(e);
			const char *x[] = { et };
			enum ft_rc rc = set_status(
				s, job, status, "failed", attempt,
				"finished_at = now(), lease_expires_at = NULL, error = $3::jsonb",
				1, x, m ? m : "failed", err);
			free(et);
			if (rc)
				goto fail;
			json_t *pl =
				json_pack("{s:s, s:s, s:{s:s}}", "type", "fine_tuning.job.failed",
					  "id", id, "data", "id", job);
			rc = queue_webhooks(s, team, "fine_tuning.job.failed", pl, err);
			json_decref(pl);
			if (rc)
				goto fail;
		} else if (set_status(
				   s, job, status, "queued", attempt,
				   "worker_id = NULL, lease_expires_at = NULL, queued_at = now()",
				   0, NULL, m ? m : "attempt failed; retrying", err)) {
			goto fail;
		}
	} else if (strcmp(kind, "cancelled") == 0 && active) {
		if (set_status(s, job, status, "cancelled", attempt,
			       "finished_at = now(), lease_expires_at = NULL", 0, NULL, "cancelled",
			       err))
			goto fail;
		json_t *pl = json_pack("{s:s, s:s, s:{s:s}}", "type", "fine_tuning.job.cancelled",
				       "id", id, "data", "id", job);
		enum ft_rc rc = queue_webhooks(s, team, "fine_tuning.job.cancelled", pl, err);
		json_decref(pl);
		if (rc)
			goto fail;
	} else if (strcmp(kind, "handback") == 0 && active) {
		/* The worker is draining: requeue without using up an attempt. */
		const char *to = strcmp(status, "cancelling") == 0 ? "cancelled" : "queued";
		if (set_status(s, job, status, to, attempt,
			       to[0] == 'c' ? "finished_at = now(), worker_id = NULL, "
					      "lease_expires_at = NULL"
					    : "worker_id = NULL, lease_expires_at = NULL, "
					      "queued_at = now(),"
					      " max_attempts = max_attempts + 1",
			       0, NULL, "worker draining: handed back", err))
			goto fail;
	}
	free(datatext);
	return sched_tx(s, "COMMIT", err);
fail:
	free(datatext);
	PQclear(r);
	PQclear(PQexec(s->pg, "ROLLBACK"));
	return err->rc;
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
