/*
 * judge.c - the LLM judge thread: pending LLM judgments decided by a judge,
 * any OpenAI-compatible endpoint, asked in both orders (ft/judge.h says
 * what is sent, read and combined). Two kinds: an experiment's pairwise
 * judgments (POST /v1/experiments/{id}/judge: arm A's answer against arm
 * B's), and an evaluation's (POST /v1/evals with a judge: each model's
 * answer to a row against the row's reference answer; persist.c makes them
 * when the model's result arrives).
 *
 * Every ft-scheduler process runs one judge thread with its own PostgreSQL
 * connection, as webhooks.c does. A judgment is claimed by moving its
 * next_attempt_at past the time two calls can take and counting the
 * attempt (FOR UPDATE SKIP LOCKED: two threads never take the same one);
 * the calls are made with no transaction open; the result is written only
 * if the judgment is still pending at that attempt (a claim that outlived
 * its lease is superseded, never doubled). The URL is checked by the SSRF
 * guard of webhooks (ft/webhook.h) against judge_allow_http and
 * judge_allow_cidrs, and the connection pinned to the checked address.
 * The judge's api_key is stored sealed by ft-api; it is opened here with
 * secret_key (ft/crypto.h) for the two calls and wiped after.
 * A call that fails (network, HTTP status, a reply without a verdict) is
 * retried after judge_backoff_ms * 2^(attempt - 1), up to
 * judge_max_attempts; then the judgment fails with the last error.
 */
#include <pthread.h>

#include <curl/curl.h>

#include "ft/crypto.h"
#include "ft/judge.h"
#include "ft/webhook.h"
#include "sched_int.h"

static size_t collect(char *p, size_t size, size_t n, void *ud)
{
	struct ft_buf *b = ud;
	return ft_buf_add(b, p, size * n) ? 0 : size * n; /* over the cap: the transfer stops */
}

/* One call: the reply's content into out, or an error message into why. */
static bool ask(const struct ft_sched_opts *o, const char *url, const char *api_key,
		const char *body, struct ft_buf *out, char *why, size_t n)
{
	struct ft_err err;
	char pin[320], full[2200], auth[1100];
	struct curl_slist *hdrs = NULL, *resolve = NULL;
	struct ft_buf reply = FT_BUF_INIT(FT_JUDGE_REPLY_MAX);
	bool ok = false;
	ft_err_clear(&err);
	why[0] = '\0';
	size_t l = strlen(url);
	snprintf(full, sizeof(full), "%.*s/chat/completions",
		 (int)(l && url[l - 1] == '/' ? l - 1 : l), url);
	if (ft_webhook_check_url(full, o->judge_allow_http, o->judge_allow_cidrs, pin, &err)) {
		snprintf(why, n, "the judge's URL is refused: %s", err.msg);
		return false;
	}
	hdrs = curl_slist_append(hdrs, "content-type: application/json");
	hdrs = curl_slist_append(hdrs, "user-agent: ftplat-judge/1");
	if (api_key) {
		snprintf(auth, sizeof(auth), "authorization: Bearer %s", api_key);
		hdrs = curl_slist_append(hdrs, auth);
	}
	resolve = curl_slist_append(resolve, pin);
	CURL *c = curl_easy_init();
	if (!c || !hdrs || !resolve) {
		snprintf(why, n, "out of memory");
		goto out;
	}
	curl_easy_setopt(c, CURLOPT_URL, full);
	curl_easy_setopt(c, CURLOPT_RESOLVE, resolve);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, o->judge_allow_http ? "http,https" : "https");
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)o->judge_timeout_ms);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)FT_MIN(o->judge_timeout_ms, 5000));
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &reply);
	CURLcode cr = curl_easy_perform(c);
	long status = 0;
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	if (cr != CURLE_OK) {
		snprintf(why, n, "the judge did not answer: %s", curl_easy_strerror(cr));
		goto out;
	}
	if (status < 200 || status > 299) {
		snprintf(why, n, "the judge answered HTTP %ld", status);
		goto out;
	}
	ft_buf_reset(out);
	if (ft_judge_reply_content(ft_buf_str(&reply), reply.len, out, &err)) {
		snprintf(why, n, "%s", err.msg);
		goto out;
	}
	ok = true;
out:
	if (c)
		curl_easy_cleanup(c);
	curl_slist_free_all(hdrs);
	curl_slist_free_all(resolve);
	ft_buf_release(&reply);
	return ok;
}

/* Ask both orders; the outcome, or why not. verdicts gets both replies'
 * verdicts and texts. */
static const char *judge_both(const struct ft_sched_opts *o, const PGresult *r, json_t *verdicts,
			      bool *consistent, char *why, size_t n)
{
	const char *url = PQgetvalue(r, 0, 5), *model = PQgetvalue(r, 0, 6);
	const char *tmpl = PQgetvalue(r, 0, 7);
	int max_tokens = atoi(PQgetvalue(r, 0, 8));
	char *key = NULL; /* the sealed api_key, opened (ft/crypto.h) */
	if (!PQgetisnull(r, 0, 9)) {
		struct ft_err err;
		size_t kn;
		ft_err_clear(&err);
		if (!o->secret_key) {
			snprintf(why, n,
				 "ft-scheduler has no secret_key to open the judge's api_key");
			return NULL;
		}
		if (ft_secretbox_open(o->secret_key, PQgetvalue(r, 0, 11), PQgetvalue(r, 0, 9),
				      &key, &kn, &err)) {
			snprintf(why, n,
				 "the judge's api_key does not open with ft-scheduler's secret_key "
				 "(give the same secret_key to ft-api and ft-scheduler)");
			return NULL;
		}
	}
	const char *q = PQgetvalue(r, 0, 2), *a = PQgetvalue(r, 0, 3), *b = PQgetvalue(r, 0, 4);
	struct ft_buf prompt = FT_BUF_INIT(4u << 20), reply = FT_BUF_INIT(FT_JUDGE_REPLY_MAX);
	enum ft_judge_verdict v[2] = { FT_JUDGE_NONE, FT_JUDGE_NONE };
	const char *outcome = NULL;
	for (int order = 0; order < 2; order++) {
		if (ft_judge_prompt_render(tmpl, q, order ? b : a, order ? a : b, &prompt)) {
			snprintf(why, n, "the judge's prompt is too long");
			goto out;
		}
		json_t *req = ft_judge_request(model, ft_buf_str(&prompt), max_tokens);
		char *body = json_dumps(req, JSON_COMPACT);
		json_decref(req);
		bool ok = body && ask(o, url, key, body, &reply, why, n);
		free(body);
		if (!ok)
			goto out;
		v[order] = ft_judge_verdict_parse(ft_buf_str(&reply), reply.len);
		static const char *const names[] = { "A", "B", "C" };
		json_array_append_new(
			verdicts,
			json_pack("{s:s, s:o, s:s#}", "first", order ? "arm_b" : "arm_a", "verdict",
				  v[order] == FT_JUDGE_NONE ? json_null()
							    : json_string(names[v[order]]),
				  "reply", ft_buf_str(&reply), FT_MIN(reply.len, 4096)));
		if (v[order] == FT_JUDGE_NONE) {
			snprintf(why, n,
				 "the judge's answer holds no verdict ([[A]], [[B]] or [[C]])");
			goto out;
		}
	}
	outcome = ft_judge_combine(v[0], v[1], consistent);
out:
	ft_buf_release(&prompt);
	ft_buf_release(&reply);
	ft_secretbox_free(key);
	return outcome;
}

static long long backoff_ms(const struct ft_sched_opts *o, int attempts)
{
	return ft_backoff_ms(o->judge_backoff_ms, attempts, 3600LL * 1000, 100, 100);
}

/* The two kinds of judgment the thread decides. Both claims return the
 * same columns: 0 the key (a judgment's id, an evaluation's id), 1 the
 * attempt, 2 the question, 3 answer A, 4 answer B, 5-8 the judge's url,
 * model, prompt and max_tokens, 9 its sealed api_key, 10 whether there is
 * a judge, 11 the id the key is sealed for; an evaluation's judgment adds
 * 12 its model's position and 13 its row, passed on to the updates as
 * their last two parameters. An evaluation's answer A is the model's
 * answer and B the reference: "a" is a win, "b" a loss. */
struct kind {
	const char *what, *claim, *done, *retry;
	int extra; /* key columns after the 12 shared ones */
	const char *outcome_a, *outcome_b;
};

static const struct kind kinds[] = {
	{ "judgment",
	  "WITH due AS (SELECT j.id FROM judgments j WHERE j.status = 'pending'"
	  "   AND j.next_attempt_at <= now() ORDER BY j.next_attempt_at"
	  "   LIMIT 1 FOR UPDATE SKIP LOCKED)"
	  " UPDATE judgments j SET attempts = j.attempts + 1,"
	  "   next_attempt_at = now() + $1::int * interval '1 millisecond'"
	  " FROM due, experiments x WHERE j.id = due.id AND x.id = j.experiment_id"
	  " RETURNING j.id, j.attempts, coalesce(j.prompt, ''), coalesce(j.answer_a, ''),"
	  "   coalesce(j.answer_b, ''), x.judge->>'url', x.judge->>'model',"
	  "   x.judge->>'prompt', coalesce(x.judge->>'max_tokens', '512'),"
	  "   x.judge_api_key_sealed, x.judge IS NOT NULL, x.id",
	  "UPDATE judgments SET status = 'done', outcome = $3, verdicts = $4::jsonb,"
	  " error = NULL, decided_at = now(), next_attempt_at = NULL"
	  " WHERE id = $1 AND status = 'pending' AND attempts = $2::int",
	  "UPDATE judgments SET verdicts = $3::jsonb, error = $4,"
	  " status = CASE WHEN $6::boolean THEN 'failed' ELSE 'pending' END,"
	  " next_attempt_at = CASE WHEN $6::boolean THEN NULL"
	  "   ELSE now() + $5::bigint * interval '1 millisecond' END"
	  " WHERE id = $1 AND status = 'pending' AND attempts = $2::int",
	  0, "a", "b" },
	{ "evaluation judgment",
	  "WITH due AS (SELECT j.eval_id, j.position, j.row_index FROM eval_judgments j"
	  "   WHERE j.status = 'pending' AND j.next_attempt_at <= now()"
	  "   ORDER BY j.next_attempt_at LIMIT 1 FOR UPDATE SKIP LOCKED)"
	  " UPDATE eval_judgments j SET attempts = j.attempts + 1,"
	  "   next_attempt_at = now() + $1::int * interval '1 millisecond'"
	  " FROM due, evals e, eval_models m"
	  " WHERE (j.eval_id, j.position, j.row_index) = (due.eval_id, due.position, due.row_index)"
	  "   AND e.id = j.eval_id AND m.eval_id = j.eval_id AND m.position = j.position"
	  " RETURNING j.eval_id, j.attempts, coalesce(m.rows->j.row_index->>'question', ''),"
	  "   coalesce(m.rows->j.row_index->>'answer', ''),"
	  "   coalesce(m.rows->j.row_index->>'reference', ''), e.judge->>'url',"
	  "   e.judge->>'model', e.judge->>'prompt', coalesce(e.judge->>'max_tokens', '512'),"
	  "   e.judge_api_key_sealed, e.judge IS NOT NULL, e.id, j.position, j.row_index",
	  "UPDATE eval_judgments SET status = 'done', outcome = $3, verdicts = $4::jsonb,"
	  " error = NULL, decided_at = now(), next_attempt_at = NULL"
	  " WHERE eval_id = $1 AND position = $5::int AND row_index = $6::int"
	  "   AND status = 'pending' AND attempts = $2::int",
	  "UPDATE eval_judgments SET verdicts = $3::jsonb, error = $4,"
	  " status = CASE WHEN $6::boolean THEN 'failed' ELSE 'pending' END,"
	  " next_attempt_at = CASE WHEN $6::boolean THEN NULL"
	  "   ELSE now() + $5::bigint * interval '1 millisecond' END"
	  " WHERE eval_id = $1 AND position = $7::int AND row_index = $8::int"
	  "   AND status = 'pending' AND attempts = $2::int",
	  2, "win", "loss" },
};

/* Claim and decide one due judgment of kind k; false when none was due. */
static bool judge_next(const struct ft_sched_opts *o, PGconn *pg, const struct kind *k)
{
	struct ft_err err;
	char lease[32];
	ft_err_clear(&err);
	snprintf(lease, sizeof(lease), "%d", 2 * o->judge_timeout_ms + 30000);
	PGresult *r = ft_pg_exec(pg, &err, k->claim, 1, (const char *[]){ lease });
	if (!r || PQntuples(r) == 0) {
		if (err.rc)
			ft_warn("%ss: %s", k->what, err.msg);
		PQclear(r);
		return false;
	}
	const char *id = PQgetvalue(r, 0, 0);
	const char *x1 = k->extra ? PQgetvalue(r, 0, 12) : NULL,
		   *x2 = k->extra ? PQgetvalue(r, 0, 13) : NULL;
	int attempt = atoi(PQgetvalue(r, 0, 1));
	char why[600] = "", att[16], delay[32];
	bool consistent = false;
	json_t *verdicts = json_array();
	const char *outcome = PQgetvalue(r, 0, 10)[0] == 't'
				      ? judge_both(o, r, verdicts, &consistent, why, sizeof(why))
				      : (snprintf(why, sizeof(why), "there is no judge"), NULL);
	if (outcome)
		outcome = strcmp(outcome, "a") == 0   ? k->outcome_a
			  : strcmp(outcome, "b") == 0 ? k->outcome_b
						      : outcome;
	snprintf(att, sizeof(att), "%d", attempt);
	snprintf(delay, sizeof(delay), "%lld", backoff_ms(o, attempt));
	json_t *vd = json_pack("{s:o, s:b}", "orders", verdicts, "consistent", consistent);
	char *vtext = json_dumps(vd, JSON_COMPACT);
	json_decref(vd);
	if (outcome)
		ft_pg_command(pg, &err, k->done, 4 + k->extra,
			      (const char *[]){ id, att, outcome, vtext, x1, x2 });
	else
		ft_pg_command(pg, &err, k->retry, 6 + k->extra,
			      (const char *[]){ id, att, vtext, why, delay,
						attempt >= o->judge_max_attempts ? "t" : "f", x1,
						x2 });
	if (!outcome)
		ft_warn("%s %s, attempt %d: %s", k->what, id, attempt, why);
	if (err.rc) /* not recorded: the claim's lease runs out and it is asked again */
		ft_warn("%s %s: %s", k->what, id, err.msg);
	free(vtext);
	PQclear(r);
	return true;
}

/* One judgment of any kind decided; false when none was due. */
static bool judge_any(const struct ft_sched_opts *o, PGconn *pg)
{
	bool any = false;
	for (size_t k = 0; k < FT_ARRAY_LEN(kinds); k++)
		any |= judge_next(o, pg, &kinds[k]);
	return any;
}

static struct sched_loop loop = { .next = judge_any };

void sched_judge_start(const struct ft_sched_opts *o)
{
	sched_loop_start(&loop, o);
}

void sched_judge_stop(void)
{
	sched_loop_stop(&loop);
}
