/*
 * reqlog.c - ft-serve's request log (Redis stream ft:requests) into the
 * request_log table, exactly once.
 *
 * The leader reads the stream through consumer group "persist" under the
 * fixed consumer name "leader", as persist.c reads job events, so a new
 * leader first re-reads what the old one read but never acknowledged. One
 * batch (up to 256 entries):
 *   1. each entry's record is decoded and checked by the table of
 *      ft/reqlog.h; one that breaks it is dropped (logged, counted): no
 *      retry could make it valid;
 *   2. the batch's records go into PostgreSQL as one INSERT … ON CONFLICT
 *      (id) DO NOTHING, one transaction: a record seen before (a retried
 *      XADD, a batch re-read after a crash between COMMIT and XACK) adds
 *      nothing;
 *   3. after the COMMIT the entries are XACKed, then XDELed (the stream
 *      holds only what is not persisted yet).
 * If PostgreSQL refuses the batch for its data (not for a lost
 * connection), the records are inserted one by one and the one refused is
 * dropped, so a single bad record cannot hold back the stream. A lost
 * connection or Redis leaves the entries unacknowledged: the next tick
 * (or the next leader) reads them again.
 */
#include <jansson.h>

#include "ft/reqlog.h"
#include "sched_int.h"

#define CONSUMER "leader"
#define BATCH 256

static enum ft_rc ensure_group(struct sched *s, struct ft_err *err)
{
	if (s->rl_group_ready)
		return FT_OK;
	struct ft_err e;
	ft_err_clear(&e);
	redisReply *r = ft_redis_cmd(s->redis, FT_REDIS_RETRY, &e, "XGROUP CREATE %s %s 0 MKSTREAM",
				     FT_WIRE_REQUESTS, FT_WIRE_REQUESTS_GROUP);
	if (!r && !strstr(e.msg, "BUSYGROUP")) {
		*err = e;
		return e.rc;
	}
	if (r)
		freeReplyObject(r);
	s->rl_group_ready = true;
	return FT_OK;
}

/* The entries of one XREADGROUP answer. */
struct batch {
	size_t n; /* entries */
	const char *sid[BATCH];
	json_t *doc[BATCH]; /* NULL: nothing to store (malformed, or deleted) */
	struct ft_reqlog rec[BATCH];
};

static void batch_release(struct batch *b)
{
	for (size_t i = 0; i < b->n; i++)
		json_decref(b->doc[i]);
}

/* Decode entry e (an [id, [field, value, …]] pair) into slot i. */
static void take_entry(struct batch *b, size_t i, const redisReply *e)
{
	b->sid[i] = e->element[0]->str;
	b->doc[i] = NULL;
	const redisReply *fields = e->element[1];
	if (!fields || fields->type != REDIS_REPLY_ARRAY)
		return; /* deleted from the stream while pending: nothing left */
	const redisReply *val = NULL;
	for (size_t f = 0; f + 1 < fields->elements; f += 2)
		if (strcmp(fields->element[f]->str, FT_WIRE_REQUESTS_FIELD) == 0)
			val = fields->element[f + 1];
	struct ft_err e2;
	ft_err_clear(&e2);
	json_t *doc = val ? ft_json_parse(val->str, val->len, &e2) : NULL;
	if (doc && !ft_reqlog_decode(doc, &b->rec[i], &e2)) {
		b->doc[i] = doc;
		return;
	}
	json_decref(doc);
	ft_warn("request log entry %s dropped: %s", b->sid[i],
		val ? e2.msg : "no \"" FT_WIRE_REQUESTS_FIELD "\" field");
}

/* INSERT the given records in one statement; *added: rows new. */
static enum ft_rc insert(struct sched *s, struct ft_reqlog *const *recs, size_t n, long *added,
			 struct ft_err *err)
{
	struct ft_buf sql;
	ft_buf_init(&sql, 1u << 20);
	const char **params = ft_xcalloc(n * FT_RL_COUNT, sizeof(*params));
	struct ft_rl_scratch *scratch = ft_xcalloc(n, sizeof(*scratch));
	enum ft_rc rc = ft_reqlog_insert_sql(n, &sql);
	if (rc) {
		ft_failf(err, rc, NULL, "request log INSERT too large");
		goto out;
	}
	for (size_t i = 0; i < n; i++)
		ft_reqlog_params(recs[i], &scratch[i], params + i * FT_RL_COUNT);
	PGresult *r = sched_q(s, err, ft_buf_str(&sql), (int)(n * FT_RL_COUNT), params);
	if (!r) {
		rc = err->rc;
		goto out;
	}
	*added = strtol(PQcmdTuples(r), NULL, 10);
	PQclear(r);
out:
	free(scratch);
	free(params);
	ft_buf_release(&sql);
	return rc;
}

/* Did PostgreSQL refuse the data itself (not the connection)? */
static bool data_refused(struct sched *s, const struct ft_err *err)
{
	const char *st = ft_pg_sqlstate(err);
	return PQstatus(s->pg) == CONNECTION_OK &&
	       (strncmp(st, "22", 2) == 0 || strncmp(st, "23", 2) == 0);
}

/* Store the batch's records; on a data error, one by one, dropping the
 * ones refused. */
static enum ft_rc store(struct sched *s, struct batch *b, struct ft_err *err)
{
	struct ft_reqlog *recs[BATCH];
	size_t n = 0;
	for (size_t i = 0; i < b->n; i++)
		if (b->doc[i])
			recs[n++] = &b->rec[i];
	if (n == 0)
		return FT_OK;
	long added = 0;
	struct ft_err e;
	ft_err_clear(&e);
	if (!insert(s, recs, n, &added, &e)) {
		__atomic_add_fetch(&s->rl_persisted, (uint64_t)added, __ATOMIC_RELAXED);
		__atomic_add_fetch(&s->rl_duplicates, (uint64_t)(n - (size_t)added),
				   __ATOMIC_RELAXED);
		return FT_OK;
	}
	if (!data_refused(s, &e)) {
		*err = e;
		return e.rc;
	}
	for (size_t i = 0; i < n; i++) {
		ft_err_clear(&e);
		added = 0;
		if (!insert(s, &recs[i], 1, &added, &e)) {
			__atomic_add_fetch(added ? &s->rl_persisted : &s->rl_duplicates, 1,
					   __ATOMIC_RELAXED);
			continue;
		}
		if (!data_refused(s, &e)) {
			*err = e;
			return e.rc;
		}
		ft_warn("request log record %s refused by PostgreSQL: %s", recs[i]->v[FT_RL_ID].s,
			e.detail);
		__atomic_add_fetch(&s->rl_malformed, 1, __ATOMIC_RELAXED);
	}
	return FT_OK;
}

/* XACK then XDEL the batch's entries (both idempotent). */
static enum ft_rc forget(struct sched *s, const struct batch *b, struct ft_err *err)
{
	const char *argv[3 + BATCH];
	for (int verb = 0; verb < 2; verb++) {
		int argc = 0;
		argv[argc++] = verb ? "XDEL" : "XACK";
		argv[argc++] = FT_WIRE_REQUESTS;
		if (!verb)
			argv[argc++] = FT_WIRE_REQUESTS_GROUP;
		for (size_t i = 0; i < b->n; i++)
			argv[argc++] = b->sid[i];
		redisReply *r = ft_redis_cmdargv(s->redis, FT_REDIS_RETRY, err, argc, argv, NULL);
		if (!r)
			return err->rc;
		freeReplyObject(r);
	}
	return FT_OK;
}

static enum ft_rc read_batch(struct sched *s, const char *from, size_t *count, struct ft_err *err)
{
	*count = 0;
	redisReply *r = ft_redis_cmd(
		s->redis, FT_REDIS_RETRY, err, "XREADGROUP GROUP %s %s COUNT %d STREAMS %s %s",
		FT_WIRE_REQUESTS_GROUP, CONSUMER, BATCH, FT_WIRE_REQUESTS, from);
	if (!r) {
		if (strstr(err->msg, "NOGROUP"))
			s->rl_group_ready = false; /* Redis was wiped: recreate next tick */
		return err->rc;
	}
	if (r->type != REDIS_REPLY_ARRAY || r->elements == 0) {
		freeReplyObject(r);
		return FT_OK;
	}
	redisReply *entries = r->element[0]->element[1];
	if (entries->elements == 0) { /* "0" with nothing pending */
		freeReplyObject(r);
		return FT_OK;
	}
	struct batch *b = ft_xcalloc(1, sizeof(*b));
	for (size_t i = 0; i < entries->elements && i < BATCH; i++) {
		take_entry(b, i, entries->element[i]);
		b->n = i + 1;
		if (!b->doc[i] && entries->element[i]->element[1]->type == REDIS_REPLY_ARRAY)
			__atomic_add_fetch(&s->rl_malformed, 1, __ATOMIC_RELAXED);
	}
	enum ft_rc rc = store(s, b, err);
	if (!rc)
		rc = forget(s, b, err);
	if (!rc)
		*count = b->n;
	batch_release(b);
	free(b);
	freeReplyObject(r);
	return rc;
}

enum ft_rc sched_persist_requests(struct sched *s, struct ft_err *err)
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

/*
 * Retention. Every 10 minutes (at once on a new leader, and on the next
 * tick while a pass left rows behind) the leader deletes request_log rows
 * created more than request_log_retention_days ago, RETAIN_BATCH at a time
 * for at most RETAIN_BUDGET_MS a tick, so that a backlog never holds up
 * the tick. It keeps, whatever their age:
 *   - the rows of an experiment whose results may still change
 *     (SCHED_EXPERIMENT_OPEN_SQL): its traffic and feedback are counted
 *     from them;
 *   - a drift monitor's reference (its deployment's rows up to
 *     reference_end, whose embeddings drift.c reads again) and, while it
 *     collects one, all its deployment's rows.
 * Feedback on a deleted response is refused like feedback on an unknown
 * one; the drift windows and experiment results computed from deleted
 * rows stay as computed.
 */
#define RETAIN_BATCH "5000"
#define RETAIN_BUDGET_MS 1000
#define RETAIN_PERIOD_MS (10 * 60 * 1000)

enum ft_rc sched_request_log_retention(struct sched *s, struct ft_err *err)
{
	int days = s->o->request_log_retention_days;
	uint64_t start = ft_time_mono_ms();
	if (days <= 0)
		return FT_OK;
	if (s->rl_retention_last_ms && !s->rl_retention_more &&
	    start - s->rl_retention_last_ms < RETAIN_PERIOD_MS)
		return FT_OK;
	s->rl_retention_last_ms = start;
	s->rl_retention_more = false;
	char d[16];
	snprintf(d, sizeof(d), "%d", days);
	long total = 0;
	enum ft_rc rc = FT_OK;
	for (;;) {
		PGresult *r = sched_q(
			s, err,
			"DELETE FROM request_log WHERE id IN (SELECT r.id FROM request_log r"
			" WHERE r.created_at < now() - make_interval(days => $1::int)"
			" AND NOT EXISTS (SELECT 1 FROM drift_monitors m"
			"  WHERE m.deployment_id = r.deployment_id"
			"  AND (m.reference_end IS NULL OR r.created_at <= m.reference_end))"
			" AND NOT (r.experiment_arm IS NOT NULL AND EXISTS (SELECT 1 FROM "
			"experiments x"
			"  LEFT JOIN experiment_results er ON er.experiment_id = x.id"
			"  WHERE x.id = split_part(r.experiment_arm, ':', 1)"
			"  AND " SCHED_EXPERIMENT_OPEN_SQL "))"
			" LIMIT " RETAIN_BATCH ")",
			1, (const char *[]){ d });
		if (!r) {
			rc = err->rc;
			break;
		}
		long n = atol(PQcmdTuples(r));
		PQclear(r);
		total += n;
		__atomic_add_fetch(&s->rl_expired, (uint64_t)n, __ATOMIC_RELAXED);
		if (n < atol(RETAIN_BATCH))
			break;
		if (ft_time_mono_ms() - start >= RETAIN_BUDGET_MS) {
			s->rl_retention_more = true; /* the rest on the next tick */
			break;
		}
	}
	if (total > 0)
		ft_info("request log: %ld rows older than %d days deleted%s", total, days,
			s->rl_retention_more ? " (more next tick)" : "");
	return rc;
}
