/*
 * dispatch.c - workers, leases, reaping, cancels and placement.
 *
 * Placement (one pass per tick, greedy):
 *   candidates = queued jobs, ordered by priority (high first), then by the
 *   team's current share: active jobs / fair_share_weight (low first), then
 *   by queued_at (old first); the share is updated as jobs are placed, so
 *   teams interleave. A team at max_concurrent_jobs is skipped.
 *   A job asking for N > 0 GPUs goes to one worker (gang placement) with at
 *   least N free GPUs and, when the job has a memory estimate, at least that
 *   much memory on those N GPUs; among those the one left with the fewest
 *   free GPUs (best fit). A job asking for 0 GPUs goes to a worker with a
 *   free CPU slot (workers without GPUs offer `slots` of them).
 *   Jobs that fit nowhere wait; smaller jobs behind them may still go
 *   (backfill).
 * Exports and evaluations (sched_kinds) are candidates too: CPU work that
 * does not count against the team's max_concurrent_jobs, placed on a CPU
 * worker's free slot, or on a GPU worker running fewer of them than its CPU
 * slots.
 * Dispatch is a guarded UPDATE (status queued -> dispatched, attempt + 1 as
 * the fencing token, lease) committed before the assignment is pushed to
 * the worker's inbox: if the push is lost, the lease expires and the job is
 * queued again.
 */
#include <jansson.h>

#include "ft/webhook.h"
#include "sched_int.h"

#define ACTIVE "('dispatched', 'running', 'cancelling', 'pausing')"

static const char *jstr(json_t *o, const char *k, const char *def)
{
	const char *v = json_string_value(json_object_get(o, k));
	return v ? v : def;
}

enum ft_rc sched_read_workers(struct sched *s, struct ft_err *err)
{
	struct sched_worker *ws = NULL;
	size_t n = 0, cap = 0;
	char cursor[32] = "0";

	do {
		redisReply *r =
			ft_redis_cmd(s->redis, FT_REDIS_RETRY, err, "SCAN %s MATCH %s* COUNT 1000",
				     cursor, FT_WIRE_WORKER_KEY);
		if (!r)
			goto fail;
		if (r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
			freeReplyObject(r);
			ft_failf(err, FT_EREDIS, NULL, "unexpected SCAN reply");
			goto fail;
		}
		ft_strlcpy(cursor, r->element[0]->str, sizeof(cursor));
		redisReply *keys = r->element[1];
		for (size_t i = 0; i < keys->elements; i++) {
			redisReply *v = ft_redis_cmd(s->redis, FT_REDIS_RETRY, err, "GET %b",
						     keys->element[i]->str, keys->element[i]->len);
			if (!v) {
				freeReplyObject(r);
				goto fail;
			}
			json_t *hb = v->type == REDIS_REPLY_STRING
					     ? json_loadb(v->str, v->len, 0, NULL)
					     : NULL;
			freeReplyObject(v);
			if (!hb)
				continue; /* expired between SCAN and GET, or garbage */
			if (n == cap) {
				cap = cap ? cap * 2 : 16;
				ws = realloc(ws,
					     cap * sizeof(*ws)); /* small; abort-free path below */
				FT_ASSERT(ws);
			}
			struct sched_worker *w = &ws[n];
			memset(w, 0, sizeof(*w));
			ft_strlcpy(w->id, jstr(hb, "id", ""), sizeof(w->id));
			w->gpus = (int)json_integer_value(json_object_get(hb, "gpus"));
			w->gpu_mem = json_integer_value(json_object_get(hb, "gpu_mem"));
			w->slots = (int)json_integer_value(json_object_get(hb, "slots"));
			w->draining = json_is_true(json_object_get(hb, "draining"));
			if (w->id[0] && w->gpus >= 0 && w->slots >= 0)
				n++;
			json_decref(hb);
		}
		freeReplyObject(r);
	} while (strcmp(cursor, "0") != 0);

	free(s->workers);
	s->workers = ws;
	s->n_workers = n;
	return FT_OK;
fail:
	free(ws);
	return err->rc;
}

/* Extend the lease of every (job, attempt, worker) that a live heartbeat
 * lists as running. Heartbeats are re-read here rather than kept from
 * sched_read_workers so a worker that just died is not renewed. */
enum ft_rc sched_renew_leases(struct sched *s, struct ft_err *err)
{
	json_t *rows = json_array();
	enum ft_rc rc = FT_OK;
	for (size_t i = 0; i < s->n_workers; i++) {
		redisReply *v = ft_redis_cmd(s->redis, FT_REDIS_RETRY, err, "GET %s%s",
					     FT_WIRE_WORKER_KEY, s->workers[i].id);
		if (!v) {
			rc = err->rc;
			goto out;
		}
		json_t *hb =
			v->type == REDIS_REPLY_STRING ? json_loadb(v->str, v->len, 0, NULL) : NULL;
		freeReplyObject(v);
		size_t k;
		json_t *run;
		json_array_foreach(json_object_get(hb, "running"), k, run)
		{
			if (json_is_string(json_object_get(run, "job")) &&
			    json_is_integer(json_object_get(run, "attempt")))
				json_array_append_new(
					rows, json_pack("{s:O, s:O, s:s}", "job",
							json_object_get(run, "job"), "attempt",
							json_object_get(run, "attempt"), "worker",
							s->workers[i].id));
		}
		json_decref(hb);
	}
	if (json_array_size(rows)) {
		char *text = json_dumps(rows, JSON_COMPACT);
		char lease[32], sql[512];
		snprintf(lease, sizeof(lease), "%d", s->o->lease_ms);
		const char *p[] = { text, lease };
		for (size_t k = 0; k < FT_ARRAY_LEN(sched_kinds) && !rc; k++) {
			snprintf(sql, sizeof(sql),
				 "UPDATE %s j SET lease_expires_at = now() + $2::int * interval '1 "
				 "millisecond'"
				 " FROM jsonb_to_recordset($1::jsonb) AS h(job text, attempt int, "
				 "worker text)"
				 " WHERE j.id = h.job AND j.attempt = h.attempt AND j.worker_id = "
				 "h.worker AND j.status IN " ACTIVE,
				 sched_kinds[k].table);
			rc = ft_pg_command(s->pg, err, sql, 2, p);
		}
		free(text);
	}
out:
	json_decref(rows);
	return rc;
}

/* Work whose lease ran out: its worker stopped heartbeating. */
static enum ft_rc reap_kind(struct sched *s, const struct sched_kind *k, struct ft_err *err)
{
	char sql[2400];
	snprintf(
		sql, sizeof(sql),
		"WITH lost AS ("
		"  SELECT id, status AS old_status, attempt, max_attempts, worker_id FROM %s"
		"  WHERE (status IN " ACTIVE " AND lease_expires_at < now())"
		"     OR (status IN ('cancelling', 'pausing') AND worker_id IS NULL)"
		"  FOR UPDATE SKIP LOCKED)"
		" UPDATE %s j SET"
		"  status = CASE WHEN l.old_status = 'cancelling' THEN 'cancelled'"
		"                WHEN l.old_status = 'pausing' THEN 'paused'"
		"                WHEN l.attempt >= l.max_attempts THEN 'failed' ELSE 'queued' END,"
		"  worker_id = NULL, lease_expires_at = NULL,"
		"  queued_at = CASE WHEN l.old_status NOT IN ('cancelling', 'pausing') AND "
		"l.attempt < "
		"l.max_attempts"
		"                   THEN now() ELSE j.queued_at END,"
		"  finished_at = CASE WHEN l.old_status = 'cancelling' OR (l.old_status <> "
		"'pausing'"
		"                     AND l.attempt >= l.max_attempts)"
		"                     THEN now() END,"
		"  error = CASE WHEN l.old_status NOT IN ('cancelling', 'pausing')"
		"               AND l.attempt >= l.max_attempts"
		"          THEN jsonb_build_object('code', 'worker_lost', 'message',"
		"               format('worker %%s stopped responding; gave up after %%s attempts',"
		"                      l.worker_id, l.attempt), 'param', NULL)"
		"          ELSE j.error END,"
		"  updated_at = now()"
		" FROM lost l WHERE j.id = l.id"
		" RETURNING j.id, l.old_status, j.status, j.attempt, coalesce(l.worker_id, ''),"
		" j.team_id",
		k->table, k->table);
	if (sched_tx(s, "BEGIN", err))
		return err->rc;
	PGresult *r = sched_q(s, err, sql, 0, NULL);
	if (!r)
		goto fail;
	for (int i = 0; i < PQntuples(r); i++) {
		char reason[256];
		const char *to = PQgetvalue(r, i, 2);
		if (strcmp(to, "cancelled") == 0 || strcmp(to, "paused") == 0)
			snprintf(reason, sizeof(reason), "%s (worker %s stopped responding)", to,
				 PQgetvalue(r, i, 4));
		else
			snprintf(reason, sizeof(reason),
				 "worker %s stopped responding (attempt %s)", PQgetvalue(r, i, 4),
				 PQgetvalue(r, i, 3));
		char evid[FT_ID_MAX];
		ft_id_new(FT_ID_EVENT, evid);
		if (sched_note_transition(s, k, PQgetvalue(r, i, 0), PQgetvalue(r, i, 1), to,
					  atoi(PQgetvalue(r, i, 3)), reason, err) ||
		    (k->work != FT_WORK_JOB && strcmp(to, "failed") == 0 &&
		     sched_work_webhook(s, k, PQgetvalue(r, i, 0), PQgetvalue(r, i, 5),
					FT_EV_FAILED, evid, err))) {
			PQclear(r);
			goto fail;
		}
		if (strcmp(to, "queued") == 0)
			__atomic_add_fetch(&s->requeued, 1, __ATOMIC_RELAXED);
		ft_logf(FT_LOG_WARN, NULL, PQgetvalue(r, i, 0), "%s -> %s: %s", PQgetvalue(r, i, 1),
			to, reason);
	}
	PQclear(r);
	return sched_tx(s, "COMMIT", err);
fail:
	PQclear(PQexec(s->pg, "ROLLBACK"));
	return err->rc;
}

enum ft_rc sched_reap(struct sched *s, struct ft_err *err)
{
	for (size_t k = 0; k < FT_ARRAY_LEN(sched_kinds); k++)
		if (reap_kind(s, &sched_kinds[k], err))
			return err->rc;
	return FT_OK;
}

enum ft_rc sched_push_cancels(struct sched *s, struct ft_err *err)
{
	char sql[1024];
	size_t off = 0;
	for (size_t k = 0; k < FT_ARRAY_LEN(sched_kinds); k++)
		off += (size_t)snprintf(sql + off, sizeof(sql) - off,
					"%sSELECT id, attempt, worker_id, status FROM %s"
					" WHERE status IN ('cancelling', 'pausing')"
					" AND worker_id IS NOT NULL",
					k ? " UNION ALL " : "", sched_kinds[k].table);
	PGresult *r = sched_q(s, err, sql, 0, NULL);
	if (!r)
		return err->rc;
	for (int i = 0; i < PQntuples(r); i++) {
		const char *job = PQgetvalue(r, i, 0), *att = PQgetvalue(r, i, 1),
			   *wid = PQgetvalue(r, i, 2);
		/* cancelling: "cancel"; pausing (jobs only): "pause" */
		const char *type = strcmp(PQgetvalue(r, i, 3), "pausing") == 0 ? "pause" : "cancel";
		/* At most one such message per job attempt every 2 s. */
		redisReply *once = ft_redis_cmd(s->redis, FT_REDIS_RETRY, err,
						"SET ft:%ssent:%s:%s 1 NX PX 2000", type, job, att);
		if (!once)
			break;
		bool send = once->type == REDIS_REPLY_STATUS;
		freeReplyObject(once);
		if (!send)
			continue;
		json_t *m = json_pack("{s:s, s:s, s:i}", "type", type, "job", job, "attempt",
				      atoi(att));
		char *text = json_dumps(m, JSON_COMPACT);
		redisReply *p = ft_redis_cmd(s->redis, FT_REDIS_RETRY, err, "LPUSH %s%s %s",
					     FT_WIRE_INBOX_KEY, wid, text);
		free(text);
		json_decref(m);
		if (!p)
			break;
		freeReplyObject(p);
	}
	PQclear(r);
	return err->rc;
}

struct cand {
	const struct sched_kind *kind;
	char id[FT_ID_MAX];
	char team[FT_ID_MAX];
	int gpus;
	int64_t mem;
	int priority;
	bool done;
};

struct team_use {
	char team[FT_ID_MAX];
	int active;
	int limit;
	double weight;
};

static struct team_use *team_of(struct team_use *t, size_t n, const char *id)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(t[i].team, id) == 0)
			return &t[i];
	return NULL;
}

static struct sched_worker *worker_of(struct sched *s, const char *id)
{
	for (size_t i = 0; i < s->n_workers; i++)
		if (strcmp(s->workers[i].id, id) == 0)
			return &s->workers[i];
	return NULL;
}

static struct sched_worker *place(struct sched *s, const struct cand *c)
{
	struct sched_worker *best = NULL;
	if (c->kind->cpu && c->gpus == 0) {
		/* an export or an evaluation is CPU work: a CPU worker's free
		 * slot, else a GPU worker with fewer such running than its CPU
		 * slots */
		for (size_t i = 0; i < s->n_workers; i++) {
			struct sched_worker *w = &s->workers[i];
			bool fits = w->gpus == 0 ? w->used_jobs < FT_MAX(w->slots, 1)
						 : w->used_cpu_work < FT_MAX(w->slots, 1);
			if (!w->draining && fits &&
			    (!best || (best->gpus > 0 && w->gpus == 0) ||
			     (best->gpus == w->gpus && w->used_jobs < best->used_jobs)))
				best = w;
		}
		return best;
	}
	for (size_t i = 0; i < s->n_workers; i++) {
		struct sched_worker *w = &s->workers[i];
		if (w->draining)
			continue;
		if (c->gpus == 0) {
			if (w->gpus == 0 && w->used_jobs < FT_MAX(w->slots, 1) &&
			    (!best || w->used_jobs > best->used_jobs))
				best = w;
			continue;
		}
		int free_gpus = w->gpus - w->used_gpus;
		if (free_gpus < c->gpus)
			continue;
		/* est_gpu_mem_bytes is the trainer's estimate (ft_train_job_mem) of
		 * the bytes the job needs on EACH of its GPUs */
		if (c->mem > 0 && w->gpu_mem > 0 && w->gpu_mem < c->mem)
			continue;
		if (!best || free_gpus < best->gpus - best->used_gpus)
			best = w;
	}
	return best;
}

/* Build the assignment for a job just dispatched (inside the transaction). */
static json_t *job_assignment(struct sched *s, const char *job, int attempt, struct ft_err *err)
{
	const char *p[] = { job };
	PGresult *r = sched_q(
		s, err,
		"SELECT j.method, j.adapter, j.hyperparameters::text, j.seed, j.suffix, j.model,"
		" coalesce(b.source_path, ''), tf.sha256, vf.sha256, j.metadata::text,"
		" (SELECT a.sha256 FROM checkpoints c JOIN artifacts a ON a.id = c.artifact_id"
		"   WHERE c.job_id = j.id ORDER BY c.step DESC LIMIT 1),"
		" (SELECT c.step FROM checkpoints c WHERE c.job_id = j.id ORDER BY c.step DESC "
		"LIMIT 1),"
		" j.team_id, j.requested_gpus, b.name,"
		" (SELECT pa.sha256 FROM model_versions pv JOIN artifacts pa ON pa.id = "
		"pv.artifact_id"
		"   WHERE pv.id = j.parent_version_id AND pv.kind = 'adapter')"
		" FROM jobs j JOIN base_models b ON b.id = j.base_model_id"
		" JOIN files tf ON tf.id = j.training_file_id"
		" LEFT JOIN files vf ON vf.id = j.validation_file_id WHERE j.id = $1",
		1, p);
	if (!r)
		return NULL;
	if (PQntuples(r) != 1) {
		PQclear(r);
		ft_failf(err, FT_ENOTFOUND, NULL, "job %s vanished during dispatch", job);
		return NULL;
	}
	json_t *hp = json_loads(PQgetvalue(r, 0, 2), 0, NULL);
	json_t *meta = json_loads(PQgetvalue(r, 0, 9), 0, NULL);
	/* "model" is the base model's name: the fine-tuned model is named after
	 * it (ft/modelref.h), whatever reference the job gave ("bot@prod") */
	json_t *cfg = json_pack("{s:s, s:s, s:s, s:o, s:I, s:s, s:s, s:s?, s:o, s:i}", "job", job,
				"method", PQgetvalue(r, 0, 0), "adapter", PQgetvalue(r, 0, 1),
				"hyperparameters", hp ? hp : json_object(), "seed",
				(json_int_t)strtoll(PQgetvalue(r, 0, 3), NULL, 10), "model",
				PQgetvalue(r, 0, 14), "model_path", PQgetvalue(r, 0, 6), "suffix",
				PQgetisnull(r, 0, 4) ? NULL : PQgetvalue(r, 0, 4), "metadata",
				meta ? meta : json_object(), "gpus", atoi(PQgetvalue(r, 0, 13)));
	/* continued training: the parent version's adapter, from the store */
	json_t *inputs =
		json_pack("{s:s, s:s?, s:s?}", "training_file", PQgetvalue(r, 0, 7),
			  "validation_file", PQgetisnull(r, 0, 8) ? NULL : PQgetvalue(r, 0, 8),
			  "init_adapter", PQgetisnull(r, 0, 15) ? NULL : PQgetvalue(r, 0, 15));
	json_t *resume = PQgetisnull(r, 0, 10)
				 ? json_null()
				 : json_pack("{s:s, s:i}", "checkpoint", PQgetvalue(r, 0, 10),
					     "step", atoi(PQgetvalue(r, 0, 11)));
	json_t *m = json_pack("{s:s, s:s, s:i, s:s, s:o, s:o, s:o}", "type", "assign", "job", job,
			      "attempt", attempt, "team", PQgetvalue(r, 0, 12), "config", cfg,
			      "inputs", inputs, "resume", resume);
	PQclear(r);
	return m;
}

/* The assignment of an export just dispatched: the version's folders (an
 * adapter on its base, or a whole model) and the format's options
 * (ft/wire.h, ft/exports.h). */
static json_t *export_assignment(struct sched *s, const char *id, int attempt, struct ft_err *err)
{
	PGresult *r =
		sched_q(s, err,
			"SELECT e.format, e.options::text, e.team_id, v.kind, a.sha256, b.name,"
			" coalesce(b.source_path, ''), v.name, v.version"
			" FROM exports e JOIN model_versions v ON v.id = e.model_version_id"
			" JOIN artifacts a ON a.id = v.artifact_id JOIN base_models b ON b.id = "
			"v.base_model_id"
			" WHERE e.id = $1",
			1, (const char *[]){ id });
	if (!r)
		return NULL;
	if (PQntuples(r) != 1) {
		PQclear(r);
		ft_failf(err, FT_ENOTFOUND, NULL, "export %s vanished during dispatch", id);
		return NULL;
	}
	bool adapter = strcmp(PQgetvalue(r, 0, 3), "adapter") == 0;
	json_t *opts = json_loads(PQgetvalue(r, 0, 1), 0, NULL);
	json_t *m = json_pack("{s:s, s:s, s:s, s:i, s:s, s:{s:s, s:o, s:s, s:s, s:s, s:i},"
			      " s:{s:s?, s:s?}, s:n}",
			      "type", "assign", "kind", "export", "job", id, "attempt", attempt,
			      "team", PQgetvalue(r, 0, 2), "config", "format", PQgetvalue(r, 0, 0),
			      "options", opts ? opts : json_object(), "model", PQgetvalue(r, 0, 5),
			      "model_path", PQgetvalue(r, 0, 6), "registered_model",
			      PQgetvalue(r, 0, 7), "version", atoi(PQgetvalue(r, 0, 8)), "inputs",
			      "adapter", adapter ? PQgetvalue(r, 0, 4) : NULL, "model",
			      adapter ? NULL : PQgetvalue(r, 0, 4), "resume");
	PQclear(r);
	return m;
}

/* The evaluation just dispatched: its file, options and models, each a
 * base model's folder, or a version's folder from the store (an adapter on
 * its base, or a whole model) (ft/wire.h). */
static json_t *eval_assignment(struct sched *s, const char *id, int attempt, struct ft_err *err)
{
	PGresult *r = sched_q(s, err,
			      "SELECT e.team_id, e.options::text, f.sha256 FROM evals e"
			      " JOIN files f ON f.id = e.file_id WHERE e.id = $1",
			      1, (const char *[]){ id });
	if (!r)
		return NULL;
	if (PQntuples(r) != 1) {
		PQclear(r);
		ft_failf(err, FT_ENOTFOUND, NULL, "evaluation %s vanished during dispatch", id);
		return NULL;
	}
	json_t *opts = json_loads(PQgetvalue(r, 0, 1), 0, NULL);
	json_t *m =
		json_pack("{s:s, s:s, s:s, s:i, s:s, s:{s:o, s:[]}, s:{s:s, s:[]}, s:n}", "type",
			  "assign", "kind", "eval", "job", id, "attempt", attempt, "team",
			  PQgetvalue(r, 0, 0), "config", "options", opts ? opts : json_object(),
			  "models", "inputs", "file", PQgetvalue(r, 0, 2), "models", "resume");
	PQclear(r);
	r = sched_q(s, err,
		    "SELECT m.position, m.model, b.name, coalesce(b.source_path, ''), v.kind,"
		    " a.sha256 FROM eval_models m JOIN base_models b ON b.id = m.base_model_id"
		    " LEFT JOIN model_versions v ON v.id = m.model_version_id"
		    " LEFT JOIN artifacts a ON a.id = v.artifact_id"
		    " WHERE m.eval_id = $1 ORDER BY m.position",
		    1, (const char *[]){ id });
	if (!r) {
		json_decref(m);
		return NULL;
	}
	json_t *cm = json_object_get(json_object_get(m, "config"), "models");
	json_t *im = json_object_get(json_object_get(m, "inputs"), "models");
	for (int i = 0; i < PQntuples(r); i++) {
		bool version = !PQgetisnull(r, i, 4),
		     adapter = version && strcmp(PQgetvalue(r, i, 4), "adapter") == 0;
		json_array_append_new(
			cm, json_pack("{s:i, s:s, s:s, s:s}", "position", atoi(PQgetvalue(r, i, 0)),
				      "name", PQgetvalue(r, i, 1), "model", PQgetvalue(r, i, 2),
				      "model_path", PQgetvalue(r, i, 3)));
		json_array_append_new(im,
				      json_pack("{s:s?, s:s?}", "adapter",
						adapter ? PQgetvalue(r, i, 5) : NULL, "model",
						version && !adapter ? PQgetvalue(r, i, 5) : NULL));
	}
	PQclear(r);
	return m;
}

/* The assignment of each kind of work (enum ft_work). */
static json_t *(*const assignments[FT_WORK_COUNT])(struct sched *, const char *, int,
						   struct ft_err *) = {
	[FT_WORK_JOB] = job_assignment,
	[FT_WORK_EXPORT] = export_assignment,
	[FT_WORK_EVAL] = eval_assignment,
};

static enum ft_rc dispatch_one(struct sched *s, struct cand *c, struct sched_worker *w,
			       struct ft_err *err)
{
	char lease[32];
	snprintf(lease, sizeof(lease), "%d", s->o->lease_ms);
	const char *p[] = { c->id, w->id, lease };
	json_t *msg = NULL;
	char *text = NULL;
	int attempt;

	char sql[512];
	snprintf(sql, sizeof(sql),
		 "UPDATE %s SET status = 'dispatched', worker_id = $2, attempt = attempt + 1,"
		 " lease_expires_at = now() + $3::int * interval '1 millisecond', updated_at = "
		 "now() WHERE id = $1 AND status = 'queued' AND attempt < max_attempts"
		 " RETURNING attempt, extract(epoch from now() - queued_at)",
		 c->kind->table);
	if (sched_tx(s, "BEGIN", err))
		return err->rc;
	PGresult *r = sched_q(s, err, sql, 3, p);
	if (!r)
		goto fail;
	if (PQntuples(r) != 1) { /* someone else moved it: fine */
		PQclear(r);
		PQclear(PQexec(s->pg, "ROLLBACK"));
		return FT_OK;
	}
	attempt = atoi(PQgetvalue(r, 0, 0));
	double waited = PQgetisnull(r, 0, 1) ? 0 : strtod(PQgetvalue(r, 0, 1), NULL);
	PQclear(r);
	char reason[160];
	snprintf(reason, sizeof(reason), "dispatched to worker %s (attempt %d)", w->id, attempt);
	if (sched_note_transition(s, c->kind, c->id, "queued", "dispatched", attempt, reason, err))
		goto fail;
	msg = assignments[c->kind->work](s, c->id, attempt, err);
	if (!msg)
		goto fail;
	if (sched_tx(s, "COMMIT", err))
		goto fail;
	text = json_dumps(msg, JSON_COMPACT);
	json_decref(msg);
	redisReply *rr = ft_redis_cmd(s->redis, FT_REDIS_RETRY, err, "LPUSH %s%s %s",
				      FT_WIRE_INBOX_KEY, w->id, text);
	free(text);
	if (!rr) /* committed: the lease will expire and the job be requeued */
		return err->rc;
	freeReplyObject(rr);
	__atomic_add_fetch(&s->dispatched, 1, __ATOMIC_RELAXED);
	sched_observe_latency(s, waited);
	ft_logf(FT_LOG_INFO, NULL, c->id, "%s", reason);
	return FT_OK;
fail:
	json_decref(msg);
	PQclear(PQexec(s->pg, "ROLLBACK"));
	return err->rc;
}

enum ft_rc sched_dispatch(struct sched *s, struct ft_err *err)
{
	PGresult *used = NULL, *q = NULL;
	struct cand *c = NULL;
	struct team_use *teams = NULL;
	size_t nc = 0, nt = 0;
	enum ft_rc rc = FT_OK;

	if (s->n_workers == 0)
		return FT_OK;
	char sql[4096];
	size_t off = (size_t)snprintf(sql, sizeof(sql),
				      "SELECT worker_id, sum(requested_gpus), count(*),"
				      " count(*) FILTER (WHERE cpu) FROM (");
	for (size_t k = 0; k < FT_ARRAY_LEN(sched_kinds); k++)
		off += (size_t)snprintf(sql + off, sizeof(sql) - off,
					"%sSELECT worker_id, requested_gpus, %s AS cpu FROM %s"
					" WHERE status IN " ACTIVE " AND worker_id IS NOT NULL",
					k ? " UNION ALL " : "",
					sched_kinds[k].cpu ? "true" : "false",
					sched_kinds[k].table);
	snprintf(sql + off, sizeof(sql) - off, ") u GROUP BY worker_id");
	used = sched_q(s, err, sql, 0, NULL);
	if (!used)
		return err->rc;
	for (int i = 0; i < PQntuples(used); i++) {
		struct sched_worker *w = worker_of(s, PQgetvalue(used, i, 0));
		if (w) {
			w->used_gpus = atoi(PQgetvalue(used, i, 1));
			w->used_jobs = atoi(PQgetvalue(used, i, 2));
			w->used_cpu_work = atoi(PQgetvalue(used, i, 3));
		}
	}
	/* Queued work of every kind; CPU work (exports, evaluations) does not
	 * count against its team's max_concurrent_jobs (it is short) but takes
	 * a worker slot. Column 10 is the kind (enum ft_work). */
	off = 0;
	for (size_t k = 0; k < FT_ARRAY_LEN(sched_kinds); k++)
		off += (size_t)snprintf(
			sql + off, sizeof(sql) - off,
			"%sSELECT e.id, e.team_id, e.requested_gpus, %s, e.priority,"
			" t.max_concurrent_jobs, t.fair_share_weight,"
			" (SELECT count(*) FROM jobs a WHERE a.team_id = e.team_id"
			"  AND a.status IN " ACTIVE "), e.queued_at, %d"
			" FROM %s e JOIN teams t ON t.id = e.team_id WHERE e.status = 'queued'",
			k ? " UNION ALL " : "",
			k == FT_WORK_JOB ? "coalesce(e.est_gpu_mem_bytes, 0)" : "0", (int)k,
			sched_kinds[k].table);
	snprintf(sql + off, sizeof(sql) - off, " ORDER BY 5 DESC, 9, 1 LIMIT 1000");
	q = sched_q(s, err, sql, 0, NULL);
	if (!q) {
		rc = err->rc;
		goto out;
	}
	nc = (size_t)PQntuples(q);
	c = ft_xcalloc(nc ? nc : 1, sizeof(*c));
	teams = ft_xcalloc(nc ? nc : 1, sizeof(*teams));
	for (size_t i = 0; i < nc; i++) {
		ft_strlcpy(c[i].id, PQgetvalue(q, (int)i, 0), sizeof(c[i].id));
		ft_strlcpy(c[i].team, PQgetvalue(q, (int)i, 1), sizeof(c[i].team));
		c[i].gpus = atoi(PQgetvalue(q, (int)i, 2));
		c[i].mem = strtoll(PQgetvalue(q, (int)i, 3), NULL, 10);
		c[i].priority = atoi(PQgetvalue(q, (int)i, 4));
		c[i].kind = &sched_kinds[atoi(PQgetvalue(q, (int)i, 9)) % FT_WORK_COUNT];
		if (!team_of(teams, nt, c[i].team)) {
			struct team_use *t = &teams[nt++];
			ft_strlcpy(t->team, c[i].team, sizeof(t->team));
			t->limit = atoi(PQgetvalue(q, (int)i, 5));
			t->weight = strtod(PQgetvalue(q, (int)i, 6), NULL);
			t->active = atoi(PQgetvalue(q, (int)i, 7));
		}
	}
	for (;;) {
		/* Best remaining candidate: priority, then team share, then age
		 * (the query order). */
		struct cand *best = NULL;
		double best_share = 0;
		for (size_t i = 0; i < nc; i++) {
			if (c[i].done)
				continue;
			struct team_use *t = team_of(teams, nt, c[i].team);
			if (!c[i].kind->cpu && t->active >= t->limit) {
				c[i].done = true;
				continue;
			}
			double share = t->active / (t->weight > 0 ? t->weight : 1);
			if (!best || c[i].priority > best->priority ||
			    (c[i].priority == best->priority && share < best_share)) {
				best = &c[i];
				best_share = share;
			}
		}
		if (!best)
			break;
		best->done = true;
		struct sched_worker *w = place(s, best);
		if (!w)
			continue; /* waits; backfill the rest */
		rc = dispatch_one(s, best, w, err);
		if (rc)
			break;
		w->used_gpus += best->gpus;
		w->used_jobs++;
		if (best->kind->cpu)
			w->used_cpu_work++;
		else
			team_of(teams, nt, best->team)->active++;
	}
out:
	free(c);
	free(teams);
	PQclear(q);
	PQclear(used);
	return rc;
}
