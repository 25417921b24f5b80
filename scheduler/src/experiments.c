/*
 * experiments.c - the leader's periodic computation of A/B experiment
 * results (never on a request), with the statistics of fteval (ft/stats.h;
 * formulas and peers in docs/evaluation.md), into experiment_results.
 *
 * Every experiment_interval_ms, for each experiment that runs or is
 * paused, and once more for one stopped since its last computation, in one
 * transaction:
 *   judgments   the done ones (arm_a, arm_b, outcome) in decision order:
 *               the table, the win matrix, win rates, Bradley-Terry ratings
 *               (or why they do not exist yet), the seeded bootstrap's 95%
 *               intervals (seed and rounds are the experiment's); each arm
 *               against the control (arm 0) by the mixture SPRT at
 *               alpha / (k - 1) and the judgments still needed at the
 *               experiment's power. Recomputed only when the judgments
 *               changed (their count and last decision); else kept.
 *   traffic     request_log rows labelled "<experiment>:<arm>"
 *               (ft/experiment.h) since the start: requests, errors (HTTP
 *               5xx or finish_reason "error") with a Wilson interval, and
 *               latency percentiles (PostgreSQL's percentile_cont)
 *   feedback    thumbs up rate, resolved rate, escalated rate per arm with
 *               Wilson intervals, from feedback joined to request_log
 *   guardrails  (running only) an active arm with at least min_requests
 *               whose error rate's Wilson 95% lower bound is above
 *               max_error_rate, or whose p95 latency is above
 *               max_p95_latency_ms, is stopped, with the webhook
 *               experiment.arm.stopped; the last active arm never is
 *   decisions   a comparison decided for the first time queues the webhook
 *               experiment.decided
 */
#include <math.h>

#include "ft/experiment.h"
#include "ft/stats.h"
#include "ft/webhook.h"
#include "sched_int.h"

static json_t *num(double v)
{
	return isfinite(v) ? json_real(v) : json_null();
}

static json_t *interval(const struct ft_ab_interval *iv)
{
	return json_pack("{s:o, s:o, s:o, s:i}", "lo", num(iv->lo), "median", num(iv->median), "hi",
			 num(iv->hi), "rounds", iv->rounds);
}

static json_t *wilson(double k, double n)
{
	double lo = NAN, hi = NAN;
	if (n > 0)
		ft_stats_wilson(k, n, 0.95, &lo, &hi, NULL);
	return json_pack("{s:o, s:o, s:[o, o], s:I}", "rate", num(n > 0 ? k / n : NAN), "count",
			 json_integer((json_int_t)k), "interval", num(lo), num(hi), "n",
			 (json_int_t)n);
}

struct arm {
	char name[FT_EXP_ARM_NAME_MAX + 1], label[FT_EXP_LABEL_MAX];
	bool active;
	json_t *o; /* the arm's object in the results */
};

struct exp {
	const char *id, *team, *status, *guardrails, *prev;
	double alpha, power;
	int rounds;
	uint64_t seed;
	int k;
	struct arm arms[FT_EXP_MAX_ARMS];
};

/* The judgments' sections: rebuilt when the judgments changed, else taken
 * from the previous results. */
static enum ft_rc judgments_part(struct sched *s, struct exp *x, json_t *res, const json_t *prev,
				 struct ft_err *err)
{
	PGresult *r = sched_q(s, err,
			      "SELECT arm_a, arm_b, outcome FROM judgments"
			      " WHERE experiment_id = $1 AND status = 'done'"
			      " ORDER BY decided_at, id",
			      1, (const char *[]){ x->id });
	if (!r)
		return err->rc;
	PGresult *c = sched_q(s, err,
			      "SELECT count(*) FILTER (WHERE status = 'done'),"
			      " count(*) FILTER (WHERE status = 'pending'),"
			      " count(*) FILTER (WHERE status = 'failed'),"
			      " coalesce(max(decided_at)::text, '') FROM judgments"
			      " WHERE experiment_id = $1",
			      1, (const char *[]){ x->id });
	if (!c) {
		PQclear(r);
		return err->rc;
	}
	size_t n = (size_t)PQntuples(r);
	char fp[160];
	snprintf(fp, sizeof(fp), "%zu@%s#%d", n, PQgetvalue(c, 0, 3), x->rounds);
	json_t *jo = json_pack("{s:I, s:I, s:I, s:s}", "done", (json_int_t)n, "pending",
			       (json_int_t)atoll(PQgetvalue(c, 0, 1)), "failed",
			       (json_int_t)atoll(PQgetvalue(c, 0, 2)), "fingerprint", fp);
	PQclear(c);
	json_object_set_new(res, "judgments", jo);
	const json_t *pj = json_object_get(prev, "judgments");
	if (pj &&
	    json_equal(json_object_get(pj, "fingerprint"), json_object_get(jo, "fingerprint"))) {
		static const char *const keep[] = { "win_matrix", "win_prob",	 "ratings",
						    "bootstrap",  "comparisons", "arm_stats" };
		for (size_t i = 0; i < FT_ARRAY_LEN(keep); i++)
			json_object_set(res, keep[i], json_object_get(prev, keep[i]));
		PQclear(r);
		return FT_OK;
	}
	struct ft_ab_judgment *js = ft_xcalloc(n ? n : 1, sizeof(*js));
	for (size_t i = 0; i < n; i++) {
		js[i].a = atoi(PQgetvalue(r, (int)i, 0));
		js[i].b = atoi(PQgetvalue(r, (int)i, 1));
		if (!ft_ab_outcome_parse(PQgetvalue(r, (int)i, 2), &js[i].outcome))
			js[i].outcome = FT_AB_TIE; /* the table's CHECK allows no other */
	}
	PQclear(r);
	int k = x->k;
	struct ft_ab_table t;
	struct ft_err e;
	ft_err_clear(&e);
	enum ft_rc rc = ft_ab_table_build(&t, k, js, n, err);
	if (rc) {
		free(js);
		return rc;
	}
	json_t *wm = json_array(), *arm_stats = json_array();
	for (int i = 0; i < k; i++) {
		json_t *row = json_array();
		for (int j = 0; j < k; j++)
			json_array_append_new(row, i == j ? json_null()
							  : num(ft_ab_table_win_frac(&t, i, j)));
		json_array_append_new(wm, row);
		double nn = 0;
		for (int j = 0; j < k; j++)
			nn += t.n[i][j];
		json_array_append_new(arm_stats,
				      json_pack("{s:I, s:o}", "judgments", (json_int_t)nn,
						"win_rate", num(ft_ab_table_win_rate(&t, i))));
	}
	json_object_set_new(res, "win_matrix", wm);
	json_object_set_new(res, "arm_stats", arm_stats);
	/* Bradley-Terry: the fit, or why it does not exist yet */
	struct ft_ab_bt_opts bo = FT_AB_BT_OPTS_DEFAULT;
	struct ft_ab_bt bt;
	if (n && ft_ab_bt_fit(&t, &bo, &bt, &e) == FT_OK) {
		json_t *ratings = json_array(), *wp = json_array();
		for (int i = 0; i < k; i++) {
			json_array_append_new(ratings, num(bt.rating[i]));
			json_t *row = json_array();
			for (int j = 0; j < k; j++)
				json_array_append_new(row,
						      i == j ? json_null()
							     : num(ft_ab_bt_win_prob(&bt, i, j)));
			json_array_append_new(wp, row);
		}
		json_object_set_new(res, "ratings",
				    json_pack("{s:o, s:n, s:i}", "rating", ratings, "error",
					      "iterations", bt.iterations));
		json_object_set_new(res, "win_prob", wp);
	} else {
		json_object_set_new(res, "ratings",
				    json_pack("{s:n, s:s}", "rating", "error",
					      n ? e.msg : "there are no judgments yet"));
		json_object_set_new(res, "win_prob", json_null());
	}
	/* the seeded bootstrap */
	if (n) {
		struct ft_ab_bootstrap_opts bso = { x->seed, x->rounds, FT_AB_BT_OPTS_DEFAULT };
		struct ft_ab_bootstrap *bs = ft_xcalloc(1, sizeof(*bs));
		ft_err_clear(&e);
		if (ft_ab_bootstrap_run(k, js, n, &bso, bs, &e) == FT_OK) {
			json_t *ri = json_array(), *wi = json_array(), *pi = json_array();
			for (int i = 0; i < k; i++) {
				json_array_append_new(ri, interval(&bs->rating[i]));
				json_array_append_new(wi, interval(&bs->win_rate[i]));
				json_t *row = json_array();
				for (int j = 0; j < k; j++)
					json_array_append_new(
						row, i == j ? json_null()
							    : interval(&bs->win_prob[i][j]));
				json_array_append_new(pi, row);
			}
			json_object_set_new(res, "bootstrap",
					    json_pack("{s:I, s:i, s:i, s:o, s:o, s:o}", "seed",
						      (json_int_t)x->seed, "rounds", bs->rounds,
						      "unbounded_rounds", bs->unbounded_rounds,
						      "rating", ri, "win_rate", wi, "win_prob",
						      pi));
		} else {
			json_object_set_new(res, "bootstrap", json_pack("{s:s}", "error", e.msg));
		}
		free(bs);
	} else {
		json_object_set_new(res, "bootstrap", json_null());
	}
	/* each arm against the control: the mixture SPRT at alpha / (k - 1) */
	json_t *cmp = json_array();
	double a_c = x->alpha / (double)(k - 1);
	for (int i = 1; i < k; i++) {
		double nn = t.n[i][0], sc = t.score[i][0];
		json_t *o = json_pack("{s:s, s:s, s:I, s:o, s:f}", "arm", x->arms[i].name,
				      "control", x->arms[0].name, "judgments", (json_int_t)nn,
				      "share", num(nn > 0 ? sc / nn : NAN), "alpha", a_c);
		struct ft_ab_msprt_opts mo = { a_c, 12.0 };
		struct ft_ab_decision d;
		ft_err_clear(&e);
		if (ft_ab_msprt(sc, nn, &mo, &d, &e) == FT_OK) {
			json_object_set_new(o, "log_lambda", num(d.log_lambda));
			json_object_set_new(o, "log_threshold", num(d.log_threshold));
			json_object_set_new(o, "decided", json_boolean(d.decided));
			json_object_set_new(o, "winner",
					    !d.decided	    ? json_null()
					    : d.winner == 0 ? json_string(x->arms[i].name)
							    : json_string(x->arms[0].name));
		} else {
			json_object_set_new(o, "decided", json_false());
			json_object_set_new(o, "winner", json_null());
		}
		struct ft_ab_needed nd;
		ft_err_clear(&e);
		if (nn > 0 && ft_ab_judgments_needed(sc / nn, nn, a_c, x->power, &nd, &e) == FT_OK)
			json_object_set_new(o, "judgments_needed",
					    json_pack("{s:o, s:o, s:b}", "total", num(nd.total),
						      "more", num(nd.more), "reachable",
						      nd.reachable));
		else
			json_object_set_new(o, "judgments_needed", json_null());
		json_array_append_new(cmp, o);
	}
	json_object_set_new(res, "comparisons", cmp);
	free(js);
	return FT_OK;
}

/* Requests, errors and latency per arm, from the request log. */
static enum ft_rc traffic_part(struct sched *s, struct exp *x, struct ft_err *err)
{
	PGresult *r =
		sched_q(s, err,
			"SELECT r.experiment_arm, count(*),"
			" count(*) FILTER (WHERE r.status >= 500 OR r.finish_reason = 'error'),"
			" percentile_cont(0.5) WITHIN GROUP (ORDER BY r.latency_ms),"
			" percentile_cont(0.95) WITHIN GROUP (ORDER BY r.latency_ms)"
			" FROM request_log r, experiments x WHERE x.id = $1"
			" AND r.created_at >= coalesce(x.started_at, x.created_at)"
			" AND r.experiment_arm LIKE $1 || ':%' GROUP BY 1",
			1, (const char *[]){ x->id });
	if (!r)
		return err->rc;
	for (int a = 0; a < x->k; a++) {
		double n = 0, e = 0, p50 = NAN, p95 = NAN;
		for (int i = 0; i < PQntuples(r); i++)
			if (strcmp(PQgetvalue(r, i, 0), x->arms[a].label) == 0) {
				n = strtod(PQgetvalue(r, i, 1), NULL);
				e = strtod(PQgetvalue(r, i, 2), NULL);
				p50 = PQgetisnull(r, i, 3) ? NAN
							   : strtod(PQgetvalue(r, i, 3), NULL);
				p95 = PQgetisnull(r, i, 4) ? NAN
							   : strtod(PQgetvalue(r, i, 4), NULL);
			}
		json_object_set_new(x->arms[a].o, "requests", json_integer((json_int_t)n));
		json_object_set_new(x->arms[a].o, "errors", wilson(e, n));
		json_object_set_new(x->arms[a].o, "latency_ms",
				    json_pack("{s:o, s:o}", "p50", num(p50), "p95", num(p95)));
	}
	PQclear(r);
	return FT_OK;
}

static enum ft_rc feedback_part(struct sched *s, struct exp *x, struct ft_err *err)
{
	PGresult *r =
		sched_q(s, err,
			"SELECT rl.experiment_arm,"
			" count(*) FILTER (WHERE f.thumbs = 'up'), count(*) FILTER (WHERE f.thumbs "
			"IS NOT NULL),"
			" count(*) FILTER (WHERE f.resolved), count(*) FILTER (WHERE f.resolved IS "
			"NOT NULL),"
			" count(*) FILTER (WHERE f.escalated), count(*) FILTER (WHERE f.escalated "
			"IS NOT NULL)"
			" FROM feedback f JOIN request_log rl ON rl.id = f.response_id"
			" WHERE f.team_id = $2 AND rl.experiment_arm LIKE $1 || ':%' GROUP BY 1",
			2, (const char *[]){ x->id, x->team });
	if (!r)
		return err->rc;
	for (int a = 0; a < x->k; a++) {
		double v[6] = { 0 };
		for (int i = 0; i < PQntuples(r); i++)
			if (strcmp(PQgetvalue(r, i, 0), x->arms[a].label) == 0)
				for (int c = 0; c < 6; c++)
					v[c] = strtod(PQgetvalue(r, i, c + 1), NULL);
		json_object_set_new(x->arms[a].o, "feedback",
				    json_pack("{s:o, s:o, s:o}", "thumbs_up", wilson(v[0], v[1]),
					      "resolved", wilson(v[2], v[3]), "escalated",
					      wilson(v[4], v[5])));
	}
	PQclear(r);
	return FT_OK;
}

static enum ft_rc queue_webhook(struct sched *s, const char *team, const char *type,
				json_t *data_new, struct ft_err *err)
{
	char evid[FT_ID_MAX];
	ft_id_new(FT_ID_EVENT, evid);
	json_t *pl = json_pack("{s:s, s:s, s:o}", "type", type, "id", evid, "data", data_new);
	enum ft_rc rc = ft_webhook_queue(s->pg, team, type, pl, err);
	json_decref(pl);
	return rc;
}

/* Guardrails: stop an active arm past a threshold (not the last one). */
static enum ft_rc guardrails_part(struct sched *s, struct exp *x, json_t *res, struct ft_err *err)
{
	json_t *g = json_loads(x->guardrails, 0, NULL);
	json_object_set_new(res, "guardrails", g ? json_incref(g) : json_object());
	if (strcmp(x->status, "running") != 0 || !g) {
		json_decref(g);
		return FT_OK;
	}
	double max_err = json_is_number(json_object_get(g, "max_error_rate"))
				 ? json_number_value(json_object_get(g, "max_error_rate"))
				 : NAN;
	double max_p95 = json_is_number(json_object_get(g, "max_p95_latency_ms"))
				 ? json_number_value(json_object_get(g, "max_p95_latency_ms"))
				 : NAN;
	double min_req = json_is_integer(json_object_get(g, "min_requests"))
				 ? (double)json_integer_value(json_object_get(g, "min_requests"))
				 : 100;
	json_decref(g);
	int active = 0;
	for (int a = 0; a < x->k; a++)
		active += x->arms[a].active;
	enum ft_rc rc = FT_OK;
	for (int a = 0; a < x->k && !rc && active > 1; a++) {
		json_t *o = x->arms[a].o;
		double n = (double)json_integer_value(json_object_get(o, "requests"));
		if (!x->arms[a].active || n < min_req)
			continue;
		json_t *ev = json_object_get(json_object_get(o, "errors"), "interval");
		double lo = json_number_value(json_array_get(ev, 0));
		double rate =
			json_number_value(json_object_get(json_object_get(o, "errors"), "rate"));
		double p95 =
			json_number_value(json_object_get(json_object_get(o, "latency_ms"), "p95"));
		char reason[256] = "";
		if (isfinite(max_err) && lo > max_err)
			snprintf(reason, sizeof(reason),
				 "guardrail: error rate %.4f (95%% interval from %.4f) over %.0f "
				 "requests is above max_error_rate %.4g",
				 rate, lo, n, max_err);
		else if (isfinite(max_p95) &&
			 json_is_number(json_object_get(json_object_get(o, "latency_ms"), "p95")) &&
			 p95 > max_p95)
			snprintf(reason, sizeof(reason),
				 "guardrail: p95 latency %.1f ms over %.0f requests is above "
				 "max_p95_latency_ms %.4g",
				 p95, n, max_p95);
		if (!reason[0])
			continue;
		char pos[8];
		snprintf(pos, sizeof(pos), "%d", a);
		rc = ft_pg_command(
			s->pg, err,
			"UPDATE experiment_arms SET status = 'stopped', stop_reason = $3,"
			" stopped_at = now() WHERE experiment_id = $1 AND position = $2::int"
			" AND status = 'active'",
			3, (const char *[]){ x->id, pos, reason });
		if (!rc)
			rc = queue_webhook(s, x->team, "experiment.arm.stopped",
					   json_pack("{s:s, s:s, s:s, s:I, s:o, s:o}", "experiment",
						     x->id, "arm", x->arms[a].name, "reason",
						     reason, "requests", (json_int_t)n,
						     "error_rate", num(rate), "p95_latency_ms",
						     num(p95)),
					   err);
		x->arms[a].active = false;
		json_object_set_new(o, "status", json_string("stopped"));
		json_object_set_new(o, "stop_reason", json_string(reason));
		active--;
		ft_info("experiment %s: arm %s stopped (%s)", x->id, x->arms[a].name, reason);
	}
	return rc;
}

/* experiment.decided for a comparison decided since the last results. */
static enum ft_rc decisions_part(struct sched *s, struct exp *x, json_t *res, const json_t *prev,
				 struct ft_err *err)
{
	size_t i;
	json_t *c;
	json_array_foreach(json_object_get(res, "comparisons"), i, c)
	{
		if (!json_is_true(json_object_get(c, "decided")))
			continue;
		const json_t *pc = json_array_get(json_object_get(prev, "comparisons"), i);
		if (pc && json_is_true(json_object_get(pc, "decided")))
			continue;
		if (queue_webhook(s, x->team, "experiment.decided",
				  json_pack("{s:s, s:O, s:O, s:O, s:O, s:O, s:O}", "experiment",
					    x->id, "arm", json_object_get(c, "arm"), "control",
					    json_object_get(c, "control"), "winner",
					    json_object_get(c, "winner"), "judgments",
					    json_object_get(c, "judgments"), "share",
					    json_object_get(c, "share"), "alpha",
					    json_object_get(c, "alpha")),
				  err))
			return err->rc;
	}
	return FT_OK;
}

static enum ft_rc compute_one(struct sched *s, PGresult *er, int row, struct ft_err *err)
{
	struct exp x = {
		.id = PQgetvalue(er, row, 0),
		.team = PQgetvalue(er, row, 1),
		.status = PQgetvalue(er, row, 2),
		.alpha = strtod(PQgetvalue(er, row, 3), NULL),
		.power = strtod(PQgetvalue(er, row, 4), NULL),
		.rounds = atoi(PQgetvalue(er, row, 5)),
		.seed = strtoull(PQgetvalue(er, row, 6), NULL, 10),
		.guardrails = PQgetvalue(er, row, 7),
		.prev = PQgetisnull(er, row, 8) ? NULL : PQgetvalue(er, row, 8),
	};
	json_t *prev = x.prev ? json_loads(x.prev, 0, NULL) : NULL;
	json_t *res = json_object(), *arms = json_array();
	enum ft_rc rc = sched_tx(s, "BEGIN", err);
	PGresult *r = rc ? NULL
			 : sched_q(s, err,
				   "SELECT position, name, model, model_version_id, weight, status,"
				   " stop_reason FROM experiment_arms WHERE experiment_id = $1"
				   " ORDER BY position FOR UPDATE",
				   1, (const char *[]){ x.id });
	if (!r) {
		rc = err->rc;
		goto out;
	}
	x.k = FT_MIN(PQntuples(r), FT_EXP_MAX_ARMS);
	for (int i = 0; i < x.k; i++) {
		struct arm *a = &x.arms[i];
		ft_strlcpy(a->name, PQgetvalue(r, i, 1), sizeof(a->name));
		ft_experiment_arm_label(x.id, a->name, a->label, sizeof(a->label));
		a->active = strcmp(PQgetvalue(r, i, 5), "active") == 0;
		a->o = json_pack(
			"{s:s, s:i, s:s, s:o, s:f, s:s, s:o}", "name", a->name, "position", i,
			"model", PQgetvalue(r, i, 2), "model_version_id",
			PQgetisnull(r, i, 3) ? json_null() : json_string(PQgetvalue(r, i, 3)),
			"weight", strtod(PQgetvalue(r, i, 4), NULL), "status", PQgetvalue(r, i, 5),
			"stop_reason",
			PQgetisnull(r, i, 6) ? json_null() : json_string(PQgetvalue(r, i, 6)));
		json_array_append_new(arms, a->o);
	}
	PQclear(r);
	json_object_set_new(res, "arms", arms);
	if (x.k < 2) {
		rc = ft_failf(err, FT_EINVAL, NULL, "experiment %s has %d arm(s)", x.id, x.k);
		goto out;
	}
	if ((rc = judgments_part(s, &x, res, prev, err)) || (rc = traffic_part(s, &x, err)) ||
	    (rc = feedback_part(s, &x, err)) || (rc = guardrails_part(s, &x, res, err)) ||
	    (rc = decisions_part(s, &x, res, prev, err)))
		goto out;
	/* the arms' judgment statistics beside their traffic and feedback */
	for (int i = 0; i < x.k; i++) {
		json_t *st = json_array_get(json_object_get(res, "arm_stats"), (size_t)i);
		json_object_update(x.arms[i].o, st ? st : json_object());
	}
	json_object_set_new(
		res, "decision_rule",
		json_pack(
			"{s:s, s:f, s:f, s:f, s:s}", "rule",
			"mixture sequential probability ratio test of P(arm beats control) = 1/2, "
			"Beta(12, 12) mixture (docs/evaluation.md)",
			"alpha", x.alpha, "alpha_per_comparison", x.alpha / (double)(x.k - 1),
			"prior_a", 12.0, "false_positive_rate",
			"at most alpha_per_comparison for each comparison however often the "
			"results are looked at (Ville's inequality), so at most alpha for the "
			"experiment (Bonferroni)"));
	char *text = json_dumps(res, JSON_COMPACT);
	char nj[32];
	snprintf(nj, sizeof(nj), "%lld",
		 (long long)json_integer_value(
			 json_object_get(json_object_get(res, "judgments"), "done")));
	rc = ft_pg_command(
		s->pg, err,
		"INSERT INTO experiment_results (experiment_id, computed_at, n_judgments,"
		" results) VALUES ($1, now(), $2::int, $3::jsonb)"
		" ON CONFLICT (experiment_id) DO UPDATE SET computed_at = now(),"
		" n_judgments = EXCLUDED.n_judgments, results = EXCLUDED.results",
		3, (const char *[]){ x.id, nj, text });
	free(text);
out:
	if (!rc)
		rc = sched_tx(s, "COMMIT", err);
	else
		PQclear(PQexec(s->pg, "ROLLBACK"));
	json_decref(res);
	json_decref(prev);
	return rc;
}

enum ft_rc sched_experiments(struct sched *s, struct ft_err *err)
{
	uint64_t now = ft_time_mono_ms();
	if (s->exp_last_ms && now - s->exp_last_ms < (uint64_t)s->o->experiment_interval_ms)
		return FT_OK;
	s->exp_last_ms = now;
	PGresult *r = sched_q(
		s, err,
		"SELECT x.id, x.team_id, x.status, x.alpha, x.power, x.bootstrap_rounds, x.seed,"
		" x.guardrails::text, er.results::text FROM experiments x"
		" LEFT JOIN experiment_results er ON er.experiment_id = x.id"
		" WHERE " SCHED_EXPERIMENT_OPEN_SQL " ORDER BY er.computed_at NULLS FIRST LIMIT 50",
		0, NULL);
	if (!r)
		return err->rc;
	enum ft_rc rc = FT_OK;
	for (int i = 0; i < PQntuples(r); i++) {
		struct ft_err e;
		ft_err_clear(&e);
		if (compute_one(s, r, i, &e)) {
			ft_warn("experiment %s: results not computed: %s", PQgetvalue(r, i, 0),
				e.msg);
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
