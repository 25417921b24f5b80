/*
 * drift.c - the leader's drift windows over ft-serve's request log, per
 * deployment with a monitor (POST /v1/drift/{deployment}), never on a
 * request. The statistics are fteval's (ft/stats.h, ft/textmetrics.h);
 * docs/evaluation.md ("Drift") gives them with their peers.
 *
 * Every drift_interval_ms, for each monitor:
 *   collecting  once the deployment has reference_requests requests in
 *               request_log, the first ones (by time, then id) are its
 *               reference: their token lengths, and counts of answers cut
 *               by max_tokens, refusals and prompt languages, kept in the
 *               monitor's row; reference_end is the last one's time.
 *   windows     hourly and daily windows (UTC, aligned) from the one
 *               holding reference_end, each computed once it has been over
 *               for drift_grace_s (the request log is persisted a little
 *               after a request ends); at most 48 per granularity a tick.
 *               A window holds the deployment's requests after the
 *               reference, at most 20000 of them (by id, a sample without
 *               bias since ids are random); with fewer than
 *               min_window_requests it is stored without metrics.
 *   per window  prompt and completion token lengths against the
 *               reference's (PSI on the reference's decile bins, KS, JS,
 *               Wasserstein: ft_drift_numeric_check), the share cut by
 *               max_tokens (finish_reason "length") and the refusal rate
 *               (answers holding one of their language's phrases) against
 *               the reference's (ft_drift_rate_check), and the language mix
 *               of the prompts (ft_drift_categorical_check); each with the
 *               monitor's thresholds. Refusals and languages need the texts,
 *               which ft-serve logs only when log_texts is on for the model.
 *   alerts      a window whose check alerts queues monitor.drift.detected
 *               (signed by the outbox); the monitor is "alert" while the
 *               latest window of either granularity alerts.
 *               The share of byte pieces among the prompts' and completions'
 *               tokens (ft_tokenizer_byte_pieces: text the vocabulary
 *               covers poorly) against the reference's (a rate check), and
 *               the sampled prompt embeddings (ft-serve's
 *               serve_embed_percent) against the reference's: centroid
 *               cosine distance and a domain classifier's AUC with its
 *               permutation threshold (ft_drift_embedding_check).
 */
#include <math.h>

#include "ft/crypto.h"
#include "ft/stats.h"
#include "ft/textmetrics.h"
#include "ft/webhook.h"
#include "sched_int.h"

#define WINDOW_MAX 20000 /* requests a window's sample holds */
#define WINDOW_MAX_TEXT "20000"
#define TEXT_BYTES "4000" /* of a prompt or completion read */

struct sample {
	double *prompt, *completion;
	size_t np, nc;
	double truncated, finished; /* finish_reason "length", any finish_reason */
	double lang[FT_LANG_COUNT]; /* prompts by language */
	double refusals, answers; /* completions that refuse, completions with text */
	double byte_tokens, tokens; /* byte pieces of prompts and completions, all their tokens */
	double *emb; /* [ne][dim] the sampled prompt embeddings */
	size_t ne;
	int dim;
};

static void sample_release(struct sample *s)
{
	free(s->prompt);
	free(s->completion);
	free(s->emb);
	memset(s, 0, sizeof(*s));
}

static json_t *num(double v)
{
	return isfinite(v) ? json_real(v) : json_null();
}

/* The refusal phrases of a language: the monitor's own, else the defaults. */
static bool refuses(const json_t *patterns, const char *text)
{
	enum ft_text_lang l = ft_text_lang_detect(text, strlen(text));
	const json_t *own = json_object_get(patterns, ft_text_lang_code(l));
	const char *phrases[64];
	size_t n = 0;
	if (json_is_array(own)) {
		for (size_t i = 0; i < json_array_size(own) && n < 64; i++)
			if (json_is_string(json_array_get(own, i)))
				phrases[n++] = json_string_value(json_array_get(own, i));
	} else {
		for (const char *const *p = ft_text_refusal_defaults(l); *p && n < 64; p++)
			phrases[n++] = *p;
	}
	bool hit = false;
	return n && ft_text_refusal_match(text, phrases, n, &hit, NULL) == FT_OK && hit;
}

/* A logged embedding (base64 of float32 little-endian, ft/reqlog.h) into
 * s->emb; one of another width than the first is skipped (the served
 * model changed). */
static void emb_add(struct sample *s, const char *b64, size_t len, size_t cap)
{
	size_t nb = len / 4 * 3;
	unsigned char *raw = ft_xmalloc(nb + 3);
	long got = ft_base64_decode(b64, len, raw, nb + 3);
	int dim = got > 0 && got % 4 == 0 ? (int)(got / 4) : 0;
	if (dim && (!s->dim || dim == s->dim)) {
		if (!s->emb) {
			s->dim = dim;
			s->emb = ft_xcalloc(cap ? cap : 1, sizeof(double) * (size_t)dim);
		}
		for (int k = 0; k < dim; k++) {
			uint32_t u = (uint32_t)raw[4 * k] | (uint32_t)raw[4 * k + 1] << 8 |
				     (uint32_t)raw[4 * k + 2] << 16 |
				     (uint32_t)raw[4 * k + 3] << 24;
			float f;
			memcpy(&f, &u, 4);
			s->emb[s->ne * (size_t)dim + (size_t)k] = f;
		}
		s->ne++;
	}
	free(raw);
}

/* Rows (prompt_tokens, completion_tokens, finish_reason, prompt,
 * completion, prompt_byte_tokens + completion_byte_tokens, the tokens
 * those count, embedding) into a sample. */
#define SAMPLE_COLS                                                                             \
	"prompt_tokens, completion_tokens, finish_reason, left(prompt, " TEXT_BYTES "),"        \
	" left(completion, " TEXT_BYTES "), prompt_byte_tokens + completion_byte_tokens,"       \
	" CASE WHEN prompt_byte_tokens IS NOT NULL THEN prompt_tokens + completion_tokens END," \
	" embedding"
static void sample_fill(struct sample *s, const PGresult *r, const json_t *patterns)
{
	int n = PQntuples(r);
	memset(s, 0, sizeof(*s));
	s->prompt = ft_xcalloc((size_t)(n ? n : 1), sizeof(double));
	s->completion = ft_xcalloc((size_t)(n ? n : 1), sizeof(double));
	for (int i = 0; i < n; i++) {
		if (!PQgetisnull(r, i, 0))
			s->prompt[s->np++] = strtod(PQgetvalue(r, i, 0), NULL);
		if (!PQgetisnull(r, i, 1))
			s->completion[s->nc++] = strtod(PQgetvalue(r, i, 1), NULL);
		if (!PQgetisnull(r, i, 2)) {
			s->finished++;
			s->truncated += strcmp(PQgetvalue(r, i, 2), "length") == 0;
		}
		if (!PQgetisnull(r, i, 3))
			s->lang[ft_text_lang_detect(PQgetvalue(r, i, 3),
						    (size_t)PQgetlength(r, i, 3))]++;
		if (!PQgetisnull(r, i, 4)) {
			s->answers++;
			s->refusals += refuses(patterns, PQgetvalue(r, i, 4));
		}
		if (!PQgetisnull(r, i, 5) && !PQgetisnull(r, i, 6)) {
			s->byte_tokens += strtod(PQgetvalue(r, i, 5), NULL);
			s->tokens += strtod(PQgetvalue(r, i, 6), NULL);
		}
		if (!PQgetisnull(r, i, 7))
			emb_add(s, PQgetvalue(r, i, 7), (size_t)PQgetlength(r, i, 7), (size_t)n);
	}
}

/* The reference as stored in drift_monitors.reference: the lengths and
 * the counts, and a summary for the API. */
static json_t *sample_json(const struct sample *s, long n)
{
	json_t *p = json_array(), *c = json_array(), *langs = json_object();
	for (size_t i = 0; i < s->np; i++)
		json_array_append_new(p, json_real(s->prompt[i]));
	for (size_t i = 0; i < s->nc; i++)
		json_array_append_new(c, json_real(s->completion[i]));
	for (int l = 0; l < FT_LANG_COUNT; l++)
		json_object_set_new(langs, ft_text_lang_code((enum ft_text_lang)l),
				    json_real(s->lang[l]));
	double mp = 0, mc = 0;
	for (size_t i = 0; i < s->np; i++)
		mp += s->prompt[i] / (double)s->np;
	for (size_t i = 0; i < s->nc; i++)
		mc += s->completion[i] / (double)s->nc;
	return json_pack("{s:o, s:o, s:{s:I, s:o, s:o, s:f, s:f, s:f, s:f, s:f, s:f, s:I, s:o}}",
			 "prompt_tokens", p, "completion_tokens", c, "summary", "requests",
			 (json_int_t)n, "prompt_tokens_mean", num(s->np ? mp : NAN),
			 "completion_tokens_mean", num(s->nc ? mc : NAN), "truncated", s->truncated,
			 "finished", s->finished, "refusals", s->refusals, "answers", s->answers,
			 "byte_tokens", s->byte_tokens, "tokens", s->tokens, "embeddings",
			 (json_int_t)s->ne, "languages", langs);
}

static void sample_from_json(struct sample *s, const json_t *ref)
{
	const json_t *p = json_object_get(ref, "prompt_tokens"),
		     *c = json_object_get(ref, "completion_tokens");
	const json_t *sum = json_object_get(ref, "summary");
	memset(s, 0, sizeof(*s));
	s->prompt = ft_xcalloc(json_array_size(p) + 1, sizeof(double));
	s->completion = ft_xcalloc(json_array_size(c) + 1, sizeof(double));
	for (size_t i = 0; i < json_array_size(p); i++)
		s->prompt[s->np++] = json_number_value(json_array_get(p, i));
	for (size_t i = 0; i < json_array_size(c); i++)
		s->completion[s->nc++] = json_number_value(json_array_get(c, i));
	s->truncated = json_number_value(json_object_get(sum, "truncated"));
	s->finished = json_number_value(json_object_get(sum, "finished"));
	s->refusals = json_number_value(json_object_get(sum, "refusals"));
	s->answers = json_number_value(json_object_get(sum, "answers"));
	s->byte_tokens = json_number_value(json_object_get(sum, "byte_tokens"));
	s->tokens = json_number_value(json_object_get(sum, "tokens"));
	for (int l = 0; l < FT_LANG_COUNT; l++)
		s->lang[l] =
			json_number_value(json_object_get(json_object_get(sum, "languages"),
							  ft_text_lang_code((enum ft_text_lang)l)));
}

static json_t *numeric(const double *ref, size_t nr, const double *cur, size_t nc,
		       const struct ft_drift_thresholds *t)
{
	struct ft_drift_bins bins;
	struct ft_drift_numeric m;
	struct ft_err e;
	ft_err_clear(&e);
	if (!nr || !nc)
		return json_null();
	if (ft_drift_bins_fit(&bins, ref, nr, 10, &e) ||
	    ft_drift_numeric_check(&bins, ref, nr, cur, nc, t, &m, &e))
		return json_pack("{s:s}", "error", e.msg);
	double mean = 0, rmean = 0;
	for (size_t i = 0; i < nc; i++)
		mean += cur[i] / (double)nc;
	for (size_t i = 0; i < nr; i++)
		rmean += ref[i] / (double)nr;
	return json_pack("{s:I, s:o, s:o, s:o, s:s, s:o, s:o, s:b, s:o, s:o, s:b}", "n",
			 (json_int_t)nc, "mean", num(mean), "reference_mean", num(rmean), "psi",
			 num(m.psi), "band", ft_drift_band_name(m.band), "ks_statistic",
			 num(m.ks.statistic), "ks_pvalue", num(m.ks.pvalue), "ks_exact", m.ks.exact,
			 "wasserstein", num(m.wasserstein), "js", num(m.js), "alert", m.alert);
}

static json_t *rate(double rk, double rn, double ck, double cn, const struct ft_drift_thresholds *t)
{
	struct ft_drift_rate m;
	struct ft_err e;
	ft_err_clear(&e);
	if (!(rn > 0) || !(cn > 0))
		return json_null();
	if (ft_drift_rate_check(rk, rn, ck, cn, t, &m, &e))
		return json_pack("{s:s}", "error", e.msg);
	return json_pack("{s:I, s:o, s:o, s:o, s:o, s:o, s:b}", "n", (json_int_t)cn, "rate",
			 num(m.cur_rate), "reference_rate", num(m.ref_rate), "diff", num(m.diff),
			 "chi2", num(m.chi2.statistic), "pvalue", num(m.chi2.pvalue), "alert",
			 m.alert);
}

static json_t *languages(const struct sample *ref, const struct sample *cur,
			 const struct ft_drift_thresholds *t)
{
	double rn = 0, cn = 0;
	for (int l = 0; l < FT_LANG_COUNT; l++)
		rn += ref->lang[l], cn += cur->lang[l];
	if (!(rn > 0) || !(cn > 0))
		return json_null();
	struct ft_drift_categorical m;
	struct ft_err e;
	ft_err_clear(&e);
	if (ft_drift_categorical_check(ref->lang, cur->lang, FT_LANG_COUNT, t, &m, &e))
		return json_pack("{s:s}", "error", e.msg);
	json_t *mix = json_object(), *rmix = json_object();
	for (int l = 0; l < FT_LANG_COUNT; l++) {
		const char *code = ft_text_lang_code((enum ft_text_lang)l);
		json_object_set_new(mix, code, json_real(cur->lang[l] / cn));
		json_object_set_new(rmix, code, json_real(ref->lang[l] / rn));
	}
	return json_pack("{s:I, s:o, s:o, s:o, s:o, s:o, s:o, s:i, s:b}", "n", (json_int_t)cn,
			 "mix", mix, "reference_mix", rmix, "js", num(m.js), "psi", num(m.psi),
			 "chi2", num(m.chi2.statistic), "pvalue", num(m.chi2.pvalue), "dof",
			 m.chi2.dof, "alert", m.alert);
}

/* The window's sampled prompt embeddings against the reference's: the
 * cosine distance between the centroids and the domain classifier's AUC
 * with its permutation threshold (ft_drift_embedding_check), seeded by
 * the deployment and the window's start so a recomputation agrees: the
 * first 8 bytes (big-endian) of SHA-256("<deployment id>|<start, unix s>"). */
#define EMB_MIN 10 /* embeddings each side needs */
static json_t *embeddings(const struct sample *ref, const struct sample *cur, const char *dep,
			  const char *start_epoch, const struct ft_drift_thresholds *t)
{
	if (ref->ne < EMB_MIN || cur->ne < EMB_MIN)
		return json_pack("{s:I, s:I, s:b}", "n", (json_int_t)cur->ne, "reference_n",
				 (json_int_t)ref->ne, "too_few", true);
	if (ref->dim != cur->dim)
		return json_pack("{s:s}", "error",
				 "the reference's embeddings and the window's differ in width");
	unsigned char d[FT_SHA256_LEN];
	char key[256];
	snprintf(key, sizeof(key), "%s|%s", dep, start_epoch); /* "dep-…|1767225600" */
	ft_sha256_digest(key, strlen(key), d);
	uint64_t seed = 0;
	for (int i = 0; i < 8; i++)
		seed = seed << 8 | d[i];
	struct ft_drift_embedding m;
	struct ft_err e;
	ft_err_clear(&e);
	if (ft_drift_embedding_check(ref->emb, ref->ne, cur->emb, cur->ne, cur->dim, seed, t, &m,
				     &e))
		return json_pack("{s:s}", "error", e.msg);
	return json_pack("{s:I, s:I, s:i, s:o, s:o, s:o, s:o, s:b}", "n", (json_int_t)cur->ne,
			 "reference_n", (json_int_t)ref->ne, "dim", cur->dim, "cosine",
			 num(m.cosine), "auc", num(m.domain.auc), "threshold",
			 num(m.domain.threshold), "pvalue", num(m.domain.pvalue), "alert", m.alert);
}

struct monitor {
	const char *dep, *team;
	json_t *thresholds, *patterns, *reference;
	int min_window;
	const char *ref_end; /* timestamptz as text */
	struct ft_drift_thresholds t;
};

/* One window: its metrics and alerts, the row, the webhook. *alerted
 * says whether it alerted. */
static enum ft_rc window(struct sched *s, struct monitor *m, const struct sample *ref,
			 const char *gran, const char *start, const char *end,
			 const char *start_epoch, bool *alerted, struct ft_err *err)
{
	const char *p[] = { m->dep, start, end, m->ref_end };
	PGresult *c = sched_q(s, err,
			      "SELECT count(*) FROM request_log WHERE deployment_id = $1"
			      " AND created_at >= $2::timestamptz AND created_at < $3::timestamptz"
			      " AND created_at > $4::timestamptz",
			      4, p);
	if (!c)
		return err->rc;
	long n = atol(PQgetvalue(c, 0, 0));
	PQclear(c);
	json_t *metrics = json_object(), *alerts = json_array();
	*alerted = false;
	if (n < m->min_window) {
		json_object_set_new(metrics, "too_few_requests", json_true());
	} else {
		PGresult *r = sched_q(
			s, err,
			"SELECT " SAMPLE_COLS " FROM request_log WHERE deployment_id = $1"
			" AND created_at >= $2::timestamptz AND created_at < $3::timestamptz"
			" AND created_at > $4::timestamptz ORDER BY id LIMIT " WINDOW_MAX_TEXT,
			4, p);
		if (!r) {
			json_decref(metrics);
			json_decref(alerts);
			return err->rc;
		}
		struct sample cur;
		sample_fill(&cur, r, m->patterns);
		PQclear(r);
		static const char *const names[] = { "prompt_tokens", "completion_tokens",
						     "truncated",     "refusals",
						     "languages",     "byte_pieces",
						     "embeddings" };
		json_t *vals[] = {
			numeric(ref->prompt, ref->np, cur.prompt, cur.np, &m->t),
			numeric(ref->completion, ref->nc, cur.completion, cur.nc, &m->t),
			rate(ref->truncated, ref->finished, cur.truncated, cur.finished, &m->t),
			rate(ref->refusals, ref->answers, cur.refusals, cur.answers, &m->t),
			languages(ref, &cur, &m->t),
			rate(ref->byte_tokens, ref->tokens, cur.byte_tokens, cur.tokens, &m->t),
			embeddings(ref, &cur, m->dep, start_epoch, &m->t),
		};
		for (size_t i = 0; i < FT_ARRAY_LEN(names); i++) {
			if (json_is_true(json_object_get(vals[i], "alert")))
				json_array_append_new(alerts, json_string(names[i]));
			json_object_set_new(metrics, names[i], vals[i]);
		}
		json_object_set_new(metrics, "sampled",
				    json_integer((json_int_t)FT_MIN(n, WINDOW_MAX)));
		sample_release(&cur);
		*alerted = json_array_size(alerts) > 0;
	}
	char *mt = json_dumps(metrics, JSON_COMPACT), *at = json_dumps(alerts, JSON_COMPACT);
	char ns[24];
	snprintf(ns, sizeof(ns), "%ld", n);
	const char *q[] = { m->dep, gran, start, end, ns, mt, *alerted ? "t" : "f", at };
	enum ft_rc rc = ft_pg_command(
		s->pg, err,
		"INSERT INTO drift_windows (deployment_id, granularity, window_start, window_end,"
		" n_requests, metrics, alert, alerts) VALUES ($1, $2, $3::timestamptz,"
		" $4::timestamptz, $5::int, $6::jsonb, $7::boolean,"
		" ARRAY(SELECT jsonb_array_elements_text($8::jsonb)))"
		" ON CONFLICT DO NOTHING",
		8, q);
	if (!rc && *alerted) {
		char evid[FT_ID_MAX];
		ft_id_new(FT_ID_EVENT, evid);
		PGresult *t = sched_q(s, err,
				      "SELECT extract(epoch from $1::timestamptz)::bigint,"
				      " extract(epoch from $2::timestamptz)::bigint",
				      2, (const char *[]){ start, end });
		if (!t) {
			rc = err->rc;
		} else {
			json_t *pl = json_pack(
				"{s:s, s:s, s:{s:s, s:s, s:I, s:I, s:I, s:O, s:O}}", "type",
				"monitor.drift.detected", "id", evid, "data", "deployment_id",
				m->dep, "granularity", gran, "window_start",
				(json_int_t)strtoll(PQgetvalue(t, 0, 0), NULL, 10), "window_end",
				(json_int_t)strtoll(PQgetvalue(t, 0, 1), NULL, 10), "n_requests",
				(json_int_t)n, "alerts", alerts, "metrics", metrics);
			PQclear(t);
			rc = ft_webhook_queue(s->pg, m->team, "monitor.drift.detected", pl, err);
			json_decref(pl);
		}
	}
	free(mt);
	free(at);
	json_decref(metrics);
	json_decref(alerts);
	return rc;
}

/* The reference, once the deployment has enough requests. */
static enum ft_rc take_reference(struct sched *s, struct monitor *m, int n_ref, struct ft_err *err)
{
	char lim[16];
	snprintf(lim, sizeof(lim), "%d", n_ref);
	PGresult *r = sched_q(s, err,
			      "SELECT " SAMPLE_COLS ", created_at FROM request_log"
			      " WHERE deployment_id = $1 ORDER BY created_at, id LIMIT $2::int",
			      2, (const char *[]){ m->dep, lim });
	if (!r)
		return err->rc;
	if (PQntuples(r) < n_ref) {
		PQclear(r);
		return FT_OK; /* still collecting */
	}
	struct sample ref;
	sample_fill(&ref, r, m->patterns);
	json_t *j = sample_json(&ref, n_ref);
	char *text = json_dumps(j, JSON_COMPACT);
	const char *p[] = { m->dep, PQgetvalue(r, n_ref - 1, 8), text };
	enum ft_rc rc = ft_pg_command(s->pg, err,
				      "UPDATE drift_monitors SET status = 'ok', reference_end = $2,"
				      " reference = $3::jsonb, updated_at = now()"
				      " WHERE deployment_id = $1 AND status = 'collecting'",
				      3, p);
	free(text);
	json_decref(j);
	sample_release(&ref);
	PQclear(r);
	if (!rc)
		ft_info("drift monitor %s: reference of %d requests taken", m->dep, n_ref);
	return rc;
}

static enum ft_rc windows(struct sched *s, struct monitor *m, struct ft_err *err)
{
	static const char *const grans[] = { "hour", "day" };
	struct sample ref;
	sample_from_json(&ref, m->reference);
	/* the reference's embeddings: its requests' (the first ones, as
	 * take_reference chose them), read again rather than kept in the row */
	json_t *sum = json_object_get(m->reference, "summary");
	char lim[24];
	snprintf(lim, sizeof(lim), "%lld",
		 (long long)json_integer_value(json_object_get(sum, "requests")));
	PGresult *er = sched_q(s, err,
			       "SELECT embedding FROM request_log WHERE deployment_id = $1"
			       " AND created_at <= $2::timestamptz ORDER BY created_at, id"
			       " LIMIT $3::int",
			       3, (const char *[]){ m->dep, m->ref_end, lim });
	if (!er) {
		sample_release(&ref);
		return err->rc;
	}
	for (int i = 0; i < PQntuples(er); i++)
		if (!PQgetisnull(er, i, 0))
			emb_add(&ref, PQgetvalue(er, i, 0), (size_t)PQgetlength(er, i, 0),
				(size_t)PQntuples(er));
	PQclear(er);
	enum ft_rc rc = FT_OK;
	bool any = false;
	char grace[16];
	snprintf(grace, sizeof(grace), "%d", s->o->drift_grace_s);
	for (int g = 0; g < 2 && !rc; g++) {
		const char *p[] = { m->dep, grans[g], m->ref_end, grace };
		PGresult *r = sched_q(
			s, err,
			"WITH b AS (SELECT coalesce((SELECT max(window_end) FROM drift_windows"
			"   WHERE deployment_id = $1 AND granularity = $2),"
			"   date_trunc($2, $3::timestamptz, 'UTC')) AS s)"
			" SELECT gs::text, (gs + ('1 ' || $2)::interval)::text,"
			" extract(epoch from gs)::bigint FROM b,"
			" generate_series(b.s, now() - $4::int * interval '1 second'"
			"   - ('1 ' || $2)::interval, ('1 ' || $2)::interval) gs"
			" ORDER BY gs LIMIT 48",
			4, p);
		if (!r) {
			rc = err->rc;
			break;
		}
		for (int i = 0; i < PQntuples(r) && !rc; i++) {
			bool a = false;
			rc = window(s, m, &ref, grans[g], PQgetvalue(r, i, 0), PQgetvalue(r, i, 1),
				    PQgetvalue(r, i, 2), &a, err);
			any = true;
		}
		PQclear(r);
	}
	sample_release(&ref);
	if (rc || !any)
		return rc;
	/* the state: alert while the latest window of either granularity alerts
	 * (the one computed now, or the last stored) */
	PGresult *r =
		sched_q(s, err,
			"SELECT DISTINCT ON (granularity) granularity, alert FROM drift_windows"
			" WHERE deployment_id = $1 ORDER BY granularity, window_start DESC",
			1, (const char *[]){ m->dep });
	if (!r)
		return err->rc;
	bool alert = false;
	for (int i = 0; i < PQntuples(r); i++)
		alert |= PQgetvalue(r, i, 1)[0] == 't';
	PQclear(r);
	return ft_pg_command(s->pg, err,
			     "UPDATE drift_monitors SET status = CASE WHEN $2::boolean THEN 'alert'"
			     " ELSE 'ok' END, alert_since = CASE WHEN $2::boolean"
			     " THEN coalesce(alert_since, now()) END, updated_at = now()"
			     " WHERE deployment_id = $1 AND status <> 'collecting'",
			     2, (const char *[]){ m->dep, alert ? "t" : "f" });
}

static enum ft_rc drift_one(struct sched *s, const PGresult *r, int i, struct ft_err *err)
{
	struct monitor m = {
		.dep = PQgetvalue(r, i, 0),
		.team = PQgetvalue(r, i, 1),
		.min_window = atoi(PQgetvalue(r, i, 4)),
		.ref_end = PQgetisnull(r, i, 8) ? NULL : PQgetvalue(r, i, 8),
	};
	m.thresholds = json_loads(PQgetvalue(r, i, 5), 0, NULL);
	m.patterns = json_loads(PQgetvalue(r, i, 6), 0, NULL);
	m.reference = PQgetisnull(r, i, 7) ? NULL : json_loads(PQgetvalue(r, i, 7), 0, NULL);
	ft_drift_thresholds_default(&m.t);
	const char *key;
	json_t *v;
	json_object_foreach(m.thresholds, key, v)
	{
		if (json_is_number(v))
			ft_drift_thresholds_set(&m.t, key, json_number_value(v), NULL);
	}
	enum ft_rc rc = sched_tx(s, "BEGIN", err);
	if (!rc)
		rc = strcmp(PQgetvalue(r, i, 2), "collecting") == 0 || !m.reference || !m.ref_end
			     ? take_reference(s, &m, atoi(PQgetvalue(r, i, 3)), err)
			     : windows(s, &m, err);
	if (!rc)
		rc = sched_tx(s, "COMMIT", err);
	else
		PQclear(PQexec(s->pg, "ROLLBACK"));
	json_decref(m.thresholds);
	json_decref(m.patterns);
	json_decref(m.reference);
	return rc;
}

enum ft_rc sched_drift(struct sched *s, struct ft_err *err)
{
	uint64_t now = ft_time_mono_ms();
	if (s->drift_last_ms && now - s->drift_last_ms < (uint64_t)s->o->drift_interval_ms)
		return FT_OK;
	s->drift_last_ms = now;
	PGresult *r = sched_q(s, err,
			      "SELECT deployment_id, team_id, status, reference_requests,"
			      " min_window_requests, thresholds::text, refusal_patterns::text,"
			      " reference::text, reference_end::text FROM drift_monitors"
			      " ORDER BY updated_at LIMIT 200",
			      0, NULL);
	if (!r)
		return err->rc;
	enum ft_rc rc = FT_OK;
	for (int i = 0; i < PQntuples(r); i++) {
		struct ft_err e;
		ft_err_clear(&e);
		if (drift_one(s, r, i, &e)) {
			ft_warn("drift monitor %s: %s", PQgetvalue(r, i, 0), e.msg);
			if (e.rc == FT_EUNAVAIL || e.rc == FT_EDB) {
				*err = e;
				rc = e.rc;
				break;
			}
		}
	}
	PQclear(r);
	return rc;
}
