/*
 * replay.c - the replay thread: a prompt set sent through an experiment's
 * arms (POST /v1/experiments/{id}/replays; docs/evaluation.md "Replays";
 * the tables: migration 0010).
 *
 * Every ft-scheduler process runs one replay thread with its own
 * PostgreSQL connection, as judge.c does. A replay is claimed by counting
 * the attempt and moving its next_attempt_at past the time one call can
 * take (FOR UPDATE SKIP LOCKED: two threads never take the same one); the
 * lease is renewed before each call, and every write is guarded by the
 * attempt, so a claim that outlived its lease writes nothing more.
 *
 * One attempt, from the first row not yet answered by every arm (rows_sent):
 *
 *   for each row i, for each arm of the replay without an answer to i:
 *       POST /v1/chat/completions on the experiment's endpoint (its sealed
 *       token opened with secret_key, the URL checked and pinned as the
 *       deployment controller does: sched_endpoint_prepare), model the
 *       name the arm's version is served under, the row's prompt,
 *       temperature 0 (greedy), max_tokens; the answer kept
 *   then, in one transaction: rows_sent = i + 1 and, when the experiment
 *       has an LLM judge and the control (position 0) is among the arms,
 *       one pending judgment per other arm: arm_a the control, arm_b the
 *       arm, source 'llm', judge the judge's model; judge.c decides them
 *       and the leader's results count them. Without a judge only the
 *       answers are kept (GET .../replays/{rid}?rows=true shows them).
 *
 * A failed call (the endpoint away, an HTTP error, an answer without
 * content) is retried after replay_backoff_ms * 2^(attempt - 1), resuming
 * where it stopped, up to replay_max_attempts; then the replay fails with
 * the last error. What cannot get better fails at once: the experiment
 * stopped, its endpoint gone or not callable, an arm's version deleted.
 */
#include <pthread.h>

#include "ft/crypto.h"
#include "ft/deploy.h"
#include "ft/judge.h"
#include "sched_int.h"

#define MAX_ANSWER (4u << 20) /* an endpoint's answer we read */
#define QUESTION_MAX (1u << 20) /* bytes of the question a judgment keeps */

struct arm {
	int position;
	char name[64], served[320];
};

struct attempt {
	const struct ft_sched_opts *o;
	PGconn *pg;
	char id[FT_ID_MAX], att[16], lease[32];
	char experiment[FT_ID_MAX];
	int max_tokens, rows_sent, n_rows;
	char *judge; /* the judge's model; NULL: no judge */
	struct arm arms[16];
	int n_arms;
	struct sched_endpoint ep;
};

/* Renew the lease; false when this attempt no longer holds the replay. */
static bool renew(struct attempt *t)
{
	struct ft_err err;
	ft_err_clear(&err);
	PGresult *r = ft_pg_exec(
		t->pg, &err,
		"UPDATE experiment_replays SET next_attempt_at = now() + $3::int *"
		" interval '1 millisecond', updated_at = now()"
		" WHERE id = $1 AND attempts = $2::int AND status = 'running' RETURNING 1",
		3, (const char *[]){ t->id, t->att, t->lease });
	bool held = r && PQntuples(r) == 1;
	if (err.rc)
		ft_warn("replay %s: %s", t->id, err.msg);
	PQclear(r);
	return held;
}

/* The attempt ends: succeeded (why NULL), retried later, or failed. */
static void finish(struct attempt *t, const char *why, bool final)
{
	struct ft_err err;
	ft_err_clear(&err);
	char delay[32];
	snprintf(delay, sizeof(delay), "%lld",
		 ft_backoff_ms(t->o->replay_backoff_ms, atoi(t->att), 3600LL * 1000, 100, 100));
	if (!why)
		ft_pg_command(t->pg, &err,
			      "UPDATE experiment_replays SET status = 'succeeded', error = NULL,"
			      " next_attempt_at = NULL, finished_at = now(), updated_at = now()"
			      " WHERE id = $1 AND attempts = $2::int AND status = 'running'",
			      2, (const char *[]){ t->id, t->att });
	else
		ft_pg_command(
			t->pg, &err,
			"UPDATE experiment_replays SET error = $3,"
			" status = CASE WHEN $5::boolean THEN 'failed' ELSE 'running' END,"
			" next_attempt_at = CASE WHEN $5::boolean THEN NULL"
			"   ELSE now() + $4::bigint * interval '1 millisecond' END,"
			" finished_at = CASE WHEN $5::boolean THEN now() END, updated_at = now()"
			" WHERE id = $1 AND attempts = $2::int AND status = 'running'",
			5,
			(const char *[]){
				t->id, t->att, why, delay,
				final || atoi(t->att) >= t->o->replay_max_attempts ? "t" : "f" });
	if (why)
		ft_warn("replay %s, attempt %s: %s", t->id, t->att, why);
	if (err.rc) /* not recorded: the lease runs out and it is taken again */
		ft_warn("replay %s: %s", t->id, err.msg);
}

/* What the judge reads as the question: a single user turn as it is, a
 * longer conversation as "role: content" paragraphs. */
static char *question_text(json_t *msgs)
{
	struct ft_buf b = FT_BUF_INIT(QUESTION_MAX);
	size_t i;
	json_t *m;
	bool ok = true;
	if (json_array_size(msgs) == 1)
		return strdup(
			json_string_value(json_object_get(json_array_get(msgs, 0), "content")));
	json_array_foreach(msgs, i, m)
	{
		const char *role = json_string_value(json_object_get(m, "role"));
		const char *c = json_string_value(json_object_get(m, "content"));
		ok = ok && !(i && ft_buf_add(&b, "\n\n", 2)) &&
		     !ft_buf_add(&b, role, strlen(role)) && !ft_buf_add(&b, ": ", 2) &&
		     !ft_buf_add(&b, c, strlen(c));
	}
	char *s = strdup(ft_buf_str(&b)); /* cut at the cap when too long */
	ft_buf_release(&b);
	return s;
}

/* One arm's greedy answer to msgs into out, or why not. */
static bool answer(struct attempt *t, const struct arm *a, json_t *msgs, struct ft_buf *out,
		   char **finish_reason, char *why, size_t n)
{
	json_t *req = json_pack("{s:s, s:O, s:i, s:i}", "model", a->served, "messages", msgs,
				"temperature", 0, "max_tokens", t->max_tokens);
	char *body = req ? json_dumps(req, JSON_COMPACT) : NULL;
	json_decref(req);
	if (!body) {
		snprintf(why, n, "out of memory");
		return false;
	}
	const struct ft_endpoint_target tg = { t->ep.url, t->ep.pin, t->ep.api_key,
					       t->o->endpoint_allow_http };
	struct ft_endpoint_answer ans = { .body = FT_BUF_INIT(MAX_ANSWER) };
	ft_endpoint_call(&tg, "POST", "/v1/chat/completions", body, t->o->replay_timeout_ms,
			 t->o->stop, "ftplat-replay/1", &ans);
	free(body);
	bool ok = false;
	struct ft_err err;
	ft_err_clear(&err);
	if (ans.status < 200 || ans.status > 299) {
		snprintf(why, n, "arm \"%s\" (%s) did not answer: %s", a->name, a->served,
			 ans.error[0] ? ans.error : "no answer");
	} else if (ft_judge_reply_content(ft_buf_str(&ans.body), ans.body.len, out, &err)) {
		snprintf(why, n, "arm \"%s\" (%s): %s", a->name, a->served, err.msg);
	} else {
		json_t *o = json_loadb(ft_buf_str(&ans.body), ans.body.len, 0, NULL);
		const char *fr = json_string_value(json_object_get(
			json_array_get(json_object_get(o, "choices"), 0), "finish_reason"));
		*finish_reason = fr ? strdup(fr) : NULL;
		json_decref(o);
		ok = true;
	}
	ft_buf_release(&ans.body);
	return ok;
}

/* Row i answered by every arm that has not yet: false with why when a call
 * failed, or *lost when the lease was lost. */
static bool answer_row(struct attempt *t, int i, char **answers, char *why, size_t n, bool *lost)
{
	struct ft_err err;
	ft_err_clear(&err);
	char row[16];
	snprintf(row, sizeof(row), "%d", i);
	PGresult *r = ft_pg_exec(t->pg, &err,
				 "SELECT prompts->$2::int FROM experiment_replays WHERE id = $1", 2,
				 (const char *[]){ t->id, row });
	json_t *msgs = r && PQntuples(r) ? json_loads(PQgetvalue(r, 0, 0), 0, NULL) : NULL;
	PQclear(r);
	r = ft_pg_exec(t->pg, &err,
		       "SELECT position, answer FROM experiment_replay_answers WHERE replay_id = $1"
		       " AND row_index = $2::int",
		       2, (const char *[]){ t->id, row });
	if (!r) {
		json_decref(msgs);
		snprintf(why, n, "%s", err.msg);
		return false;
	}
	for (int k = 0; k < PQntuples(r); k++)
		for (int a = 0; a < t->n_arms; a++)
			if (t->arms[a].position == atoi(PQgetvalue(r, k, 0)) && !answers[a])
				answers[a] = strdup(PQgetvalue(r, k, 1));
	PQclear(r);
	bool ok = json_is_array(msgs);
	if (!ok)
		snprintf(why, n, "row %d has no prompt", i);
	struct ft_buf out = FT_BUF_INIT(FT_JUDGE_REPLY_MAX);
	for (int a = 0; ok && a < t->n_arms; a++) {
		if (answers[a])
			continue;
		char *fr = NULL, pos[8];
		if (!renew(t)) {
			*lost = true;
			ok = false;
			break;
		}
		ft_buf_reset(&out);
		if (!answer(t, &t->arms[a], msgs, &out, &fr, why, n)) {
			ok = false;
			break;
		}
		snprintf(pos, sizeof(pos), "%d", t->arms[a].position);
		answers[a] = strdup(ft_buf_str(&out));
		ft_pg_command(
			t->pg, &err,
			"INSERT INTO experiment_replay_answers (replay_id, row_index,"
			" position, answer, finish_reason) SELECT $1, $3::int, $4::int, $5, $6"
			" WHERE EXISTS (SELECT 1 FROM experiment_replays WHERE id = $1"
			"   AND attempts = $2::int AND status = 'running')"
			" ON CONFLICT DO NOTHING",
			6, (const char *[]){ t->id, t->att, row, pos, answers[a], fr });
		free(fr);
		if (err.rc) {
			snprintf(why, n, "%s", err.msg);
			ok = false;
		}
	}
	ft_buf_release(&out);
	json_decref(msgs);
	return ok;
}

/* Row i counted as sent and, with a judge, its judgments made: one
 * transaction guarded by the attempt and by rows_sent (never twice). */
static bool row_done(struct attempt *t, int i, char **answers, char *why, size_t n)
{
	struct ft_err err;
	ft_err_clear(&err);
	char row[16], next[16], nj[8];
	snprintf(row, sizeof(row), "%d", i);
	snprintf(next, sizeof(next), "%d", i + 1);
	int control = -1, judged = 0;
	for (int a = 0; a < t->n_arms; a++)
		if (t->arms[a].position == 0)
			control = a;
	if (t->judge && control >= 0)
		judged = t->n_arms - 1;
	snprintf(nj, sizeof(nj), "%d", judged);
	char *question = NULL;
	if (judged) {
		PGresult *r = ft_pg_exec(t->pg, &err,
					 "SELECT prompts->$2::int FROM experiment_replays"
					 " WHERE id = $1",
					 2, (const char *[]){ t->id, row });
		json_t *msgs = r && PQntuples(r) ? json_loads(PQgetvalue(r, 0, 0), 0, NULL) : NULL;
		PQclear(r);
		question = json_is_array(msgs) ? question_text(msgs) : NULL;
		json_decref(msgs);
		if (!question) {
			snprintf(why, n, "row %d: %s", i, err.rc ? err.msg : "no prompt");
			return false;
		}
	}
	bool ok = !ft_pg_command(t->pg, &err, "BEGIN", 0, NULL);
	PGresult *r = ok ? ft_pg_exec(t->pg, &err,
				      "UPDATE experiment_replays SET rows_sent = $4::int,"
				      " judgments_created = judgments_created + $5::int,"
				      " updated_at = now() WHERE id = $1 AND attempts = $2::int"
				      " AND status = 'running' AND rows_sent = $3::int RETURNING 1",
				      5, (const char *[]){ t->id, t->att, row, next, nj })
			 : NULL;
	ok = r != NULL;
	bool mine = r && PQntuples(r) == 1;
	PQclear(r);
	for (int a = 0; ok && mine && judged && a < t->n_arms; a++) {
		if (a == control)
			continue;
		char jid[FT_ID_MAX], pos[8];
		ft_id_new(FT_ID_JUDGMENT, jid);
		snprintf(pos, sizeof(pos), "%d", t->arms[a].position);
		ok = !ft_pg_command(
			t->pg, &err,
			"INSERT INTO judgments (id, experiment_id, arm_a, arm_b, source, judge,"
			" status, prompt, answer_a, answer_b, next_attempt_at) VALUES ($1, $2, 0,"
			" $3::int, 'llm', $4, 'pending', $5, $6, $7, now())",
			7,
			(const char *[]){ jid, t->experiment, pos, t->judge, question,
					  answers[control], answers[a] });
	}
	ok = ok && !ft_pg_command(t->pg, &err, "COMMIT", 0, NULL);
	if (!ok) {
		struct ft_err e2;
		ft_err_clear(&e2);
		ft_pg_command(t->pg, &e2, "ROLLBACK", 0, NULL);
		snprintf(why, n, "row %d: %s", i, err.msg);
	}
	free(question);
	return ok;
}

/* The arms and the endpoint of a claimed replay; false with why (final:
 * it cannot get better) when it cannot be sent. */
static bool load(struct attempt *t, const char *endpoint, char *why, size_t n, bool *final)
{
	struct ft_err err;
	ft_err_clear(&err);
	*final = true;
	PGresult *r =
		ft_pg_exec(t->pg, &err,
			   "SELECT a.position, a.name, ft_version_served_name(a.model_version_id)"
			   " FROM experiment_replays rp JOIN experiment_arms a ON a.experiment_id ="
			   " rp.experiment_id AND a.position = ANY(rp.arms) WHERE rp.id = $1"
			   " ORDER BY a.position",
			   1, (const char *[]){ t->id });
	if (!r) {
		*final = false;
		snprintf(why, n, "%s", err.msg);
		return false;
	}
	t->n_arms = FT_MIN(PQntuples(r), (int)FT_ARRAY_LEN(t->arms));
	for (int a = 0; a < t->n_arms; a++) {
		t->arms[a].position = atoi(PQgetvalue(r, a, 0));
		ft_strlcpy(t->arms[a].name, PQgetvalue(r, a, 1), sizeof(t->arms[a].name));
		ft_strlcpy(t->arms[a].served, PQgetvalue(r, a, 2), sizeof(t->arms[a].served));
		if (PQgetisnull(r, a, 2)) {
			snprintf(why, n, "arm \"%s\" has no version any more (it was deleted)",
				 t->arms[a].name);
			PQclear(r);
			return false;
		}
	}
	PQclear(r);
	if (!*endpoint) {
		snprintf(why, n, "the experiment has no endpoint_id any more");
		return false;
	}
	r = ft_pg_exec(t->pg, &err,
		       "SELECT id, team_id, kind, url, api_key_sealed FROM endpoints WHERE id = $1",
		       1, (const char *[]){ endpoint });
	if (!r || PQntuples(r) == 0) {
		*final = !r ? false : true;
		snprintf(why, n, "%s", r ? "the experiment's endpoint no longer exists" : err.msg);
		PQclear(r);
		return false;
	}
	bool ok = sched_endpoint_prepare(t->o, &t->ep, r, 0);
	PQclear(r);
	if (!ok)
		snprintf(why, n, "endpoint %s: %s", endpoint, t->ep.why_not);
	return ok;
}

/* Claim and run one due replay; false when none was due. */
static bool replay_next(const struct ft_sched_opts *o, PGconn *pg)
{
	struct ft_err err;
	ft_err_clear(&err);
	struct attempt t = { .o = o, .pg = pg };
	snprintf(t.lease, sizeof(t.lease), "%d", 2 * o->replay_timeout_ms + 30000);
	PGresult *r = ft_pg_exec(
		pg, &err,
		"WITH due AS (SELECT id FROM experiment_replays"
		"   WHERE status IN ('queued', 'running') AND next_attempt_at <= now()"
		"   ORDER BY next_attempt_at LIMIT 1 FOR UPDATE SKIP LOCKED)"
		" UPDATE experiment_replays rp SET attempts = rp.attempts + 1, status = 'running',"
		"   started_at = coalesce(rp.started_at, now()), updated_at = now(),"
		"   next_attempt_at = now() + $1::int * interval '1 millisecond'"
		" FROM due, experiments x WHERE rp.id = due.id AND x.id = rp.experiment_id"
		" RETURNING rp.id, rp.attempts, rp.experiment_id, rp.max_tokens, rp.rows_sent,"
		"   jsonb_array_length(rp.prompts), x.status, x.judge->>'model',"
		"   coalesce(x.endpoint_id, '')",
		1, (const char *[]){ t.lease });
	if (!r || PQntuples(r) == 0) {
		if (err.rc)
			ft_warn("replays: %s", err.msg);
		PQclear(r);
		return false;
	}
	ft_strlcpy(t.id, PQgetvalue(r, 0, 0), sizeof(t.id));
	ft_strlcpy(t.att, PQgetvalue(r, 0, 1), sizeof(t.att));
	ft_strlcpy(t.experiment, PQgetvalue(r, 0, 2), sizeof(t.experiment));
	t.max_tokens = atoi(PQgetvalue(r, 0, 3));
	t.rows_sent = atoi(PQgetvalue(r, 0, 4));
	t.n_rows = atoi(PQgetvalue(r, 0, 5));
	t.judge = PQgetisnull(r, 0, 7) ? NULL : strdup(PQgetvalue(r, 0, 7));
	char endpoint[FT_ID_MAX], why[700] = "";
	ft_strlcpy(endpoint, PQgetvalue(r, 0, 8), sizeof(endpoint));
	bool stopped = strcmp(PQgetvalue(r, 0, 6), "stopped") == 0, final = true, lost = false;
	PQclear(r);
	if (stopped) {
		finish(&t, "the experiment was stopped", true);
		goto out;
	}
	if (!load(&t, endpoint, why, sizeof(why), &final)) {
		finish(&t, why, final);
		goto out;
	}
	for (int i = t.rows_sent; i < t.n_rows && !*o->stop; i++) {
		char *answers[16] = { 0 };
		bool ok = answer_row(&t, i, answers, why, sizeof(why), &lost) &&
			  row_done(&t, i, answers, why, sizeof(why));
		for (int a = 0; a < t.n_arms; a++)
			free(answers[a]);
		if (lost)
			goto out; /* another attempt holds it now */
		if (!ok) {
			finish(&t, why, false);
			goto out;
		}
	}
	if (!*o->stop)
		finish(&t, NULL, false);
out:
	ft_secretbox_free(t.ep.api_key);
	free(t.judge);
	return true;
}

static struct sched_loop loop = { .next = replay_next };

void sched_replay_start(const struct ft_sched_opts *o)
{
	sched_loop_start(&loop, o);
}

void sched_replay_stop(void)
{
	sched_loop_stop(&loop);
}
