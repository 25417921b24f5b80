/*
 * ft-eval-stats - run fteval's statistics and text metrics on JSON cases.
 *
 *   ft-eval-stats CASES.json      (or - for stdin)
 *
 * CASES.json is a list of cases, each an object {"name": ..., "op": ...,
 * <arguments>}; the output is a list with one object per case in order:
 * {"name": ..., "result": {...}} or {"name": ..., "error": "message"}.
 * NaN is written as null and infinities as the strings "inf" / "-inf";
 * reals carry 17 significant digits. tests/system/test_stats_peer.py runs
 * it on the case files in tests/data/stats/ and compares with the Python peers; the
 * operations and their arguments are the table `ops` below.
 */
#include "ft/json.h"
#include "ft/stats.h"
#include "ft/textmetrics.h"

#include <math.h>

#define CASES_MAX_BYTES (64 << 20)

static json_t *num(double v)
{
	if (isnan(v))
		return json_null();
	if (isinf(v))
		return json_string(v > 0 ? "inf" : "-inf");
	return json_real(v);
}

static json_t *num_list(const double *v, size_t n)
{
	json_t *a = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(a, num(v[i]));
	return a;
}

/* args[key] as a malloc'd array of numbers */
static enum ft_rc get_nums(const json_t *args, const char *key, double **out, size_t *n,
			   struct ft_err *err)
{
	json_t *a;
	enum ft_rc rc = ft_json_get_arr(args, key, FT_JSON_REQUIRED, &a, err);
	if (rc)
		return rc;
	size_t k = json_array_size(a);
	double *v = malloc((k ? k : 1) * sizeof *v);
	if (!v)
		return ft_failf(err, FT_ENOMEM, NULL, "out of memory reading \"%s\"", key);
	for (size_t i = 0; i < k; i++) {
		json_t *x = json_array_get(a, i);
		if (!json_is_number(x)) {
			free(v);
			return ft_failf(err, FT_EINVAL, NULL,
					"\"%s\"[%zu] must be a number (got %s)", key, i,
					ft_json_type_name(x));
		}
		v[i] = json_number_value(x);
	}
	*out = v;
	*n = k;
	return FT_OK;
}

/* args[key] as rows of `dim` numbers, flattened */
static enum ft_rc get_rows(const json_t *args, const char *key, double **out, size_t *rows,
			   int *dim, struct ft_err *err)
{
	json_t *a;
	enum ft_rc rc = ft_json_get_arr(args, key, FT_JSON_REQUIRED, &a, err);
	if (rc)
		return rc;
	size_t r = json_array_size(a);
	json_t *first = json_array_get(a, 0);
	size_t d = json_is_array(first) ? json_array_size(first) : 0;
	if (r == 0 || d == 0 || d > 65536)
		return ft_failf(err, FT_EINVAL, NULL, "\"%s\" must be a non-empty list of rows",
				key);
	double *v = malloc(r * d * sizeof *v);
	if (!v)
		return ft_failf(err, FT_ENOMEM, NULL, "out of memory reading \"%s\"", key);
	for (size_t i = 0; i < r; i++) {
		json_t *row = json_array_get(a, i);
		if (!json_is_array(row) || json_array_size(row) != d) {
			free(v);
			return ft_failf(err, FT_EINVAL, NULL,
					"\"%s\"[%zu] must be a row of %zu numbers", key, i, d);
		}
		for (size_t j = 0; j < d; j++) {
			json_t *x = json_array_get(row, j);
			if (!json_is_number(x)) {
				free(v);
				return ft_failf(err, FT_EINVAL, NULL,
						"\"%s\"[%zu][%zu] must be a number", key, i, j);
			}
			v[i * d + j] = json_number_value(x);
		}
	}
	*out = v;
	*rows = r;
	*dim = (int)d;
	return FT_OK;
}

static enum ft_rc get_u64(const json_t *args, const char *key, uint64_t *out, struct ft_err *err)
{
	long long v = 0;
	enum ft_rc rc = ft_json_get_int(args, key, FT_JSON_REQUIRED, 0, LLONG_MAX, &v, err);
	*out = (uint64_t)v;
	return rc;
}

/* ---- statistics ---- */

static enum ft_rc op_rng(const json_t *args, json_t *res, struct ft_err *err)
{
	uint64_t seed;
	long long n = 0, below = 0;
	enum ft_rc rc = get_u64(args, "seed", &seed, err);
	rc = rc ? rc : ft_json_get_int(args, "n", FT_JSON_REQUIRED, 1, 100000, &n, err);
	rc = rc ? rc : ft_json_get_int(args, "below", FT_JSON_REQUIRED, 1, LLONG_MAX, &below, err);
	if (rc)
		return rc;
	struct ft_rng r;
	ft_rng_seed(&r, seed);
	json_t *a = json_array();
	for (long long i = 0; i < n; i++)
		json_array_append_new(a,
				      json_integer((json_int_t)ft_rng_below(&r, (uint64_t)below)));
	json_object_set_new(res, "draws", a);
	ft_rng_seed(&r, seed);
	json_object_set_new(res, "uniform", num(ft_rng_uniform(&r)));
	return FT_OK;
}

static enum ft_rc op_special(const json_t *args, json_t *res, struct ft_err *err)
{
	double *x = NULL;
	size_t n = 0;
	double dof = 1;
	long long kn = 1;
	enum ft_rc rc = get_nums(args, "x", &x, &n, err);
	rc = rc ? rc : ft_json_get_num(args, "dof", 0, 1e-9, 1e9, &dof, err);
	rc = rc ? rc : ft_json_get_int(args, "n", 0, 1, 100000000, &kn, err);
	if (rc)
		goto out;
	json_t *cdf = json_array(), *ppf = json_array(), *chi2 = json_array(), *ks = json_array();
	for (size_t i = 0; i < n; i++) {
		json_array_append_new(cdf, num(ft_stats_norm_cdf(x[i])));
		json_array_append_new(ppf, num(ft_stats_norm_ppf(x[i])));
		json_array_append_new(chi2, num(ft_stats_chi2_sf(x[i], dof)));
		json_array_append_new(ks, num(ft_stats_kolmogorov_sf((long)kn, x[i])));
	}
	json_object_set_new(res, "norm_cdf", cdf);
	json_object_set_new(res, "norm_ppf", ppf);
	json_object_set_new(res, "chi2_sf", chi2);
	json_object_set_new(res, "kolmogorov_sf", ks);
out:
	free(x);
	return rc;
}

static enum ft_rc op_ks(const json_t *args, json_t *res, struct ft_err *err)
{
	double *x = NULL, *y = NULL;
	size_t nx = 0, ny = 0;
	struct ft_drift_ks ks;
	enum ft_rc rc = get_nums(args, "x", &x, &nx, err);
	rc = rc ? rc : get_nums(args, "y", &y, &ny, err);
	rc = rc ? rc : ft_drift_ks_2samp(x, nx, y, ny, &ks, err);
	if (!rc) {
		json_object_set_new(res, "statistic", num(ks.statistic));
		json_object_set_new(res, "pvalue", num(ks.pvalue));
		json_object_set_new(res, "exact", json_boolean(ks.exact));
	}
	free(x);
	free(y);
	return rc;
}

static enum ft_rc op_numeric(const json_t *args, json_t *res, struct ft_err *err)
{
	double *x = NULL, *y = NULL, w = 0;
	size_t nx = 0, ny = 0;
	long long bins = 10;
	struct ft_drift_bins b;
	enum ft_rc rc = get_nums(args, "ref", &x, &nx, err);
	rc = rc ? rc : get_nums(args, "cur", &y, &ny, err);
	rc = rc ? rc : ft_json_get_int(args, "bins", 0, 2, FT_DRIFT_MAX_BINS, &bins, err);
	rc = rc ? rc : ft_drift_bins_fit(&b, x, nx, (int)bins, err);
	rc = rc ? rc : ft_drift_wasserstein(x, nx, y, ny, &w, err);
	if (!rc) {
		double cur[FT_DRIFT_MAX_BINS];
		ft_drift_bins_count(&b, y, ny, cur);
		double psi = ft_drift_psi(b.ref_counts, cur, b.n_bins);
		json_object_set_new(res, "edges", num_list(b.edges, (size_t)b.n_bins - 1));
		json_object_set_new(res, "ref_counts", num_list(b.ref_counts, (size_t)b.n_bins));
		json_object_set_new(res, "cur_counts", num_list(cur, (size_t)b.n_bins));
		json_object_set_new(res, "psi", num(psi));
		json_object_set_new(res, "band",
				    json_string(ft_drift_band_name(ft_drift_psi_band(psi))));
		json_object_set_new(res, "js",
				    num(ft_drift_js_distance(b.ref_counts, cur, b.n_bins)));
		json_object_set_new(res, "wasserstein", num(w));
	}
	free(x);
	free(y);
	return rc;
}

static enum ft_rc op_counts(const json_t *args, json_t *res, struct ft_err *err)
{
	double *r = NULL, *c = NULL;
	size_t nr = 0, nc = 0;
	struct ft_drift_chi2 chi;
	enum ft_rc rc = get_nums(args, "ref_counts", &r, &nr, err);
	rc = rc ? rc : get_nums(args, "cur_counts", &c, &nc, err);
	if (!rc && (nr != nc || nr == 0 || nr > FT_DRIFT_MAX_BINS))
		rc = ft_failf(err, FT_EINVAL, NULL,
			      "\"ref_counts\" and \"cur_counts\" need the same 1..%d categories",
			      FT_DRIFT_MAX_BINS);
	rc = rc ? rc : ft_drift_chi2_test(r, c, (int)nr, &chi, err);
	if (!rc) {
		json_object_set_new(res, "psi", num(ft_drift_psi(r, c, (int)nr)));
		json_object_set_new(res, "js", num(ft_drift_js_distance(r, c, (int)nr)));
		json_object_set_new(res, "chi2", num(chi.statistic));
		json_object_set_new(res, "chi2_p", num(chi.pvalue));
		json_object_set_new(res, "dof", json_integer(chi.dof));
	}
	free(r);
	free(c);
	return rc;
}

static enum ft_rc op_mann_whitney(const json_t *args, json_t *res, struct ft_err *err)
{
	double *x = NULL, *y = NULL;
	size_t nx = 0, ny = 0;
	struct ft_drift_mw mw;
	enum ft_rc rc = get_nums(args, "neg", &x, &nx, err);
	rc = rc ? rc : get_nums(args, "pos", &y, &ny, err);
	rc = rc ? rc : ft_drift_mann_whitney(x, nx, y, ny, &mw, err);
	if (!rc) {
		json_object_set_new(res, "auc", num(mw.auc));
		json_object_set_new(res, "pvalue", num(mw.pvalue));
	}
	free(x);
	free(y);
	return rc;
}

static enum ft_rc op_embedding(const json_t *args, json_t *res, struct ft_err *err)
{
	double *r = NULL, *c = NULL, cos = 0;
	size_t nr = 0, nc = 0;
	int dr = 0, dc = 0;
	struct ft_drift_domain_opts o = FT_DRIFT_DOMAIN_OPTS_DEFAULT;
	long long perms = o.permutations;
	struct ft_drift_domain d;
	enum ft_rc rc = get_rows(args, "ref", &r, &nr, &dr, err);
	rc = rc ? rc : get_rows(args, "cur", &c, &nc, &dc, err);
	if (!rc && dr != dc)
		rc = ft_failf(err, FT_EINVAL, NULL, "\"ref\" and \"cur\" rows differ in length");
	rc = rc ? rc : get_u64(args, "seed", &o.seed, err);
	rc = rc ? rc : ft_json_get_num(args, "test_share", 0, 0, 1, &o.test_share, err);
	rc = rc ? rc : ft_json_get_num(args, "c", 0, 0, 1e12, &o.c, err);
	rc = rc ? rc : ft_json_get_num(args, "alpha", 0, 0, 1, &o.alpha, err);
	rc = rc ? rc : ft_json_get_int(args, "permutations", 0, 1, 1000000, &perms, err);
	o.permutations = (int)perms;
	rc = rc ? rc : ft_drift_cosine_centroids(r, nr, c, nc, dr, &cos, err);
	rc = rc ? rc : ft_drift_domain_classifier(r, nr, c, nc, dr, &o, &d, err);
	if (!rc) {
		json_object_set_new(res, "cosine", num(cos));
		json_object_set_new(res, "auc", num(d.auc));
		json_object_set_new(res, "threshold", num(d.threshold));
		json_object_set_new(res, "pvalue", num(d.pvalue));
		json_object_set_new(res, "intercept", num(d.intercept));
		json_object_set_new(res, "weights",
				    num_list(d.weights, (size_t)(dr < 256 ? dr : 256)));
		json_object_set_new(res, "n_train", json_integer(d.n_train));
		json_object_set_new(res, "n_test", json_integer(d.n_test));
	}
	free(r);
	free(c);
	return rc;
}

/* "judgments": [[a, b, "a" | "b" | "tie" | "both_bad"], ...] */
static enum ft_rc get_judgments(const json_t *args, struct ft_ab_judgment **out, size_t *n, int *k,
				struct ft_err *err)
{
	json_t *a;
	long long arms = 0;
	enum ft_rc rc = ft_json_get_int(args, "k", FT_JSON_REQUIRED, 2, FT_AB_MAX_ARMS, &arms, err);
	rc = rc ? rc : ft_json_get_arr(args, "judgments", FT_JSON_REQUIRED, &a, err);
	if (rc)
		return rc;
	size_t m = json_array_size(a);
	struct ft_ab_judgment *j = malloc((m ? m : 1) * sizeof *j);
	if (!j)
		return ft_failf(err, FT_ENOMEM, NULL, "out of memory");
	for (size_t i = 0; i < m; i++) {
		json_t *x = json_array_get(a, i);
		json_t *ja = json_array_get(x, 0), *jb = json_array_get(x, 1),
		       *jo = json_array_get(x, 2);
		if (!json_is_array(x) || json_array_size(x) != 3 || !json_is_integer(ja) ||
		    !json_is_integer(jb) || !json_is_string(jo) ||
		    !ft_ab_outcome_parse(json_string_value(jo), &j[i].outcome)) {
			free(j);
			return ft_failf(err, FT_EINVAL, NULL,
					"\"judgments\"[%zu] must be [arm, arm, "
					"\"a\"|\"b\"|\"tie\"|\"both_bad\"]",
					i);
		}
		j[i].a = (int)json_integer_value(ja);
		j[i].b = (int)json_integer_value(jb);
	}
	*out = j;
	*n = m;
	*k = (int)arms;
	return FT_OK;
}

static enum ft_rc get_bt_opts(const json_t *args, struct ft_ab_bt_opts *o, struct ft_err *err)
{
	long long anchor = -1;
	enum ft_rc rc = ft_json_get_int(args, "anchor", 0, -1, FT_AB_MAX_ARMS - 1, &anchor, err);
	rc = rc ? rc : ft_json_get_num(args, "anchor_rating", 0, -1e9, 1e9, &o->anchor_rating, err);
	o->anchor = (int)anchor;
	return rc;
}

static json_t *interval(const struct ft_ab_interval *v)
{
	return json_pack("{s:o, s:o, s:o, s:i}", "lo", num(v->lo), "median", num(v->median), "hi",
			 num(v->hi), "rounds", v->rounds);
}

static enum ft_rc op_ab(const json_t *args, json_t *res, struct ft_err *err)
{
	struct ft_ab_judgment *j = NULL;
	size_t n = 0;
	int k = 0;
	struct ft_ab_table t;
	struct ft_ab_bt_opts bo = FT_AB_BT_OPTS_DEFAULT;
	struct ft_ab_bt bt;
	enum ft_rc rc = get_judgments(args, &j, &n, &k, err);
	rc = rc ? rc : get_bt_opts(args, &bo, err);
	rc = rc ? rc : ft_ab_table_build(&t, k, j, n, err);
	if (rc)
		goto out;
	json_t *wm = json_array(), *wr = json_array();
	for (int a = 0; a < k; a++) {
		json_t *row = json_array();
		for (int b = 0; b < k; b++)
			json_array_append_new(row, num(ft_ab_table_win_frac(&t, a, b)));
		json_array_append_new(wm, row);
		json_array_append_new(wr, num(ft_ab_table_win_rate(&t, a)));
	}
	json_object_set_new(res, "win_matrix", wm);
	json_object_set_new(res, "win_rate", wr);
	struct ft_err e2 = { 0 };
	if (ft_ab_bt_fit(&t, &bo, &bt, &e2)) {
		json_object_set_new(res, "bt_error", json_string(e2.msg));
		goto out;
	}
	json_object_set_new(res, "theta", num_list(bt.theta, (size_t)k));
	json_object_set_new(res, "rating", num_list(bt.rating, (size_t)k));
	json_t *wp = json_array();
	for (int a = 0; a < k; a++) {
		json_t *row = json_array();
		for (int b = 0; b < k; b++)
			json_array_append_new(row, num(ft_ab_bt_win_prob(&bt, a, b)));
		json_array_append_new(wp, row);
	}
	json_object_set_new(res, "win_prob", wp);
out:
	free(j);
	return rc;
}

static enum ft_rc op_bootstrap(const json_t *args, json_t *res, struct ft_err *err)
{
	struct ft_ab_judgment *j = NULL;
	size_t n = 0;
	int k = 0;
	long long rounds = 0;
	struct ft_ab_bootstrap_opts o = { 0, 0, FT_AB_BT_OPTS_DEFAULT };
	struct ft_ab_bootstrap *b = malloc(sizeof *b);
	enum ft_rc rc = b ? FT_OK : ft_failf(err, FT_ENOMEM, NULL, "out of memory");
	rc = rc ? rc : get_judgments(args, &j, &n, &k, err);
	rc = rc ? rc : get_bt_opts(args, &o.bt, err);
	rc = rc ? rc : get_u64(args, "seed", &o.seed, err);
	rc = rc ? rc : ft_json_get_int(args, "rounds", FT_JSON_REQUIRED, 1, 100000, &rounds, err);
	o.rounds = (int)rounds;
	rc = rc ? rc : ft_ab_bootstrap_run(k, j, n, &o, b, err);
	if (!rc) {
		json_t *ra = json_array(), *wr = json_array(), *wp = json_array();
		for (int a = 0; a < k; a++) {
			json_array_append_new(ra, interval(&b->rating[a]));
			json_array_append_new(wr, interval(&b->win_rate[a]));
			json_t *row = json_array();
			for (int c = 0; c < k; c++)
				json_array_append_new(row, interval(&b->win_prob[a][c]));
			json_array_append_new(wp, row);
		}
		json_object_set_new(res, "rating", ra);
		json_object_set_new(res, "win_rate", wr);
		json_object_set_new(res, "win_prob", wp);
		json_object_set_new(res, "unbounded_rounds", json_integer(b->unbounded_rounds));
	}
	free(j);
	free(b);
	return rc;
}

static enum ft_rc op_decision(const json_t *args, json_t *res, struct ft_err *err)
{
	double k = 0, n = 0, conf = 0.95, alpha = 0.05, power = 0.8;
	struct ft_ab_msprt_opts mo = FT_AB_MSPRT_OPTS_DEFAULT;
	enum ft_rc rc = ft_json_get_num(args, "k", FT_JSON_REQUIRED, 0, 1e12, &k, err);
	rc = rc ? rc : ft_json_get_num(args, "n", FT_JSON_REQUIRED, 0, 1e12, &n, err);
	rc = rc ? rc : ft_json_get_num(args, "conf", 0, 0, 1, &conf, err);
	rc = rc ? rc : ft_json_get_num(args, "alpha", 0, 0, 1, &alpha, err);
	rc = rc ? rc : ft_json_get_num(args, "power", 0, 0, 1, &power, err);
	rc = rc ? rc : ft_json_get_num(args, "prior_a", 0, 0, 1e9, &mo.prior_a, err);
	mo.alpha = alpha;
	double lo = NAN, hi = NAN;
	struct ft_ab_needed need;
	struct ft_ab_decision d;
	rc = rc ? rc : ft_stats_wilson(k, n, conf, &lo, &hi, err);
	rc = rc ? rc : ft_ab_judgments_needed(k / n, n, alpha, power, &need, err);
	rc = rc ? rc : ft_ab_msprt(k, n, &mo, &d, err);
	if (!rc) {
		json_object_set_new(res, "wilson", json_pack("[o, o]", num(lo), num(hi)));
		json_object_set_new(res, "needed_total", num(need.total));
		json_object_set_new(res, "needed_more", num(need.more));
		json_object_set_new(res, "log_lambda", num(d.log_lambda));
		json_object_set_new(res, "log_threshold", num(d.log_threshold));
		json_object_set_new(res, "decided", json_boolean(d.decided));
		json_object_set_new(res, "winner", json_integer(d.winner));
	}
	return rc;
}

/* ---- text ---- */

static enum ft_rc tok_name(const json_t *args, const char *const *names, int count, int *out,
			   struct ft_err *err)
{
	const char *s = names[0];
	enum ft_rc rc = ft_json_get_str(args, "tokenizer", 0, &s, err);
	if (rc)
		return rc;
	for (int i = 0; i < count; i++)
		if (strcmp(s, names[i]) == 0) {
			*out = i;
			return FT_OK;
		}
	return ft_failf(err, FT_EINVAL, NULL, "unknown tokenizer \"%s\"", s);
}

static const char *const rouge_toks[] = { "default", "cjk" };
static const char *const bleu_toks[] = { "13a", "zh" };

static enum ft_rc op_rouge(const json_t *args, json_t *res, struct ft_err *err)
{
	const char *t = NULL, *p = NULL;
	int tok = 0;
	struct ft_rouge r;
	struct ft_buf bt = FT_BUF_INIT(FT_TEXT_MAX_BYTES * 4),
		      bp = FT_BUF_INIT(FT_TEXT_MAX_BYTES * 4);
	enum ft_rc rc = ft_json_get_str(args, "target", FT_JSON_REQUIRED, &t, err);
	rc = rc ? rc : ft_json_get_str(args, "prediction", FT_JSON_REQUIRED, &p, err);
	rc = rc ? rc : tok_name(args, rouge_toks, 2, &tok, err);
	rc = rc ? rc : ft_text_rouge_l(t, p, (enum ft_rouge_tokenizer)tok, &r, err);
	rc = rc ? rc : ft_text_rouge_tokenize(t, (enum ft_rouge_tokenizer)tok, &bt, err);
	rc = rc ? rc : ft_text_rouge_tokenize(p, (enum ft_rouge_tokenizer)tok, &bp, err);
	if (!rc) {
		json_object_set_new(res, "precision", num(r.precision));
		json_object_set_new(res, "recall", num(r.recall));
		json_object_set_new(res, "fmeasure", num(r.fmeasure));
		json_object_set_new(res, "target_tokens", json_string(ft_buf_str(&bt)));
		json_object_set_new(res, "prediction_tokens", json_string(ft_buf_str(&bp)));
	}
	ft_buf_release(&bt);
	ft_buf_release(&bp);
	return rc;
}

static enum ft_rc op_bleu(const json_t *args, json_t *res, struct ft_err *err)
{
	json_t *jh, *jr;
	int tok = 0;
	const char **hyps = NULL, **refs = NULL;
	enum ft_rc rc = ft_json_get_arr(args, "hyps", FT_JSON_REQUIRED, &jh, err);
	rc = rc ? rc : ft_json_get_arr(args, "refs", FT_JSON_REQUIRED, &jr, err);
	rc = rc ? rc : tok_name(args, bleu_toks, 2, &tok, err);
	if (rc)
		return rc;
	size_t n = json_array_size(jh), nr = json_array_size(jr);
	hyps = calloc(n ? n : 1, sizeof *hyps);
	refs = calloc((n ? n : 1) * (nr ? nr : 1), sizeof *refs);
	if (!hyps || !refs) {
		rc = ft_failf(err, FT_ENOMEM, NULL, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < n && !rc; i++) {
		hyps[i] = json_string_value(json_array_get(jh, i));
		if (!hyps[i])
			rc = ft_failf(err, FT_EINVAL, NULL, "\"hyps\"[%zu] must be a string", i);
	}
	for (size_t r = 0; r < nr && !rc; r++) {
		json_t *stream = json_array_get(jr, r);
		if (!json_is_array(stream) || json_array_size(stream) != n) {
			rc = ft_failf(err, FT_EINVAL, NULL, "\"refs\"[%zu] must list %zu strings",
				      r, n);
			break;
		}
		for (size_t i = 0; i < n; i++)
			refs[r * n + i] =
				json_string_value(json_array_get(stream, i)); /* null: none */
	}
	struct ft_bleu b;
	rc = rc ? rc : ft_text_bleu_corpus(hyps, n, refs, nr, (enum ft_bleu_tokenizer)tok, &b, err);
	if (!rc) {
		json_t *counts = json_array(), *totals = json_array();
		for (int k = 0; k < FT_BLEU_MAX_ORDER; k++) {
			json_array_append_new(counts, json_integer(b.counts[k]));
			json_array_append_new(totals, json_integer(b.totals[k]));
		}
		json_object_set_new(res, "score", num(b.score));
		json_object_set_new(res, "bp", num(b.bp));
		json_object_set_new(res, "precisions", num_list(b.precisions, FT_BLEU_MAX_ORDER));
		json_object_set_new(res, "counts", counts);
		json_object_set_new(res, "totals", totals);
		json_object_set_new(res, "sys_len", json_integer(b.sys_len));
		json_object_set_new(res, "ref_len", json_integer(b.ref_len));
		json_t *toks = json_array();
		for (size_t i = 0; i < n && !rc; i++) {
			struct ft_buf tb = FT_BUF_INIT(FT_TEXT_MAX_BYTES * 4);
			rc = ft_text_bleu_tokenize(hyps[i], (enum ft_bleu_tokenizer)tok, &tb, err);
			json_array_append_new(toks, json_string(ft_buf_str(&tb)));
			ft_buf_release(&tb);
		}
		json_object_set_new(res, "hyp_tokens", toks);
	}
out:
	free(hyps);
	free(refs);
	return rc;
}

static enum ft_rc op_facts(const json_t *args, json_t *res, struct ft_err *err)
{
	const char *answer = NULL;
	json_t *jf;
	enum ft_rc rc = ft_json_get_str(args, "answer", FT_JSON_REQUIRED, &answer, err);
	rc = rc ? rc : ft_json_get_arr(args, "facts", FT_JSON_REQUIRED, &jf, err);
	if (rc)
		return rc;
	size_t nf = json_array_size(jf), total = 0;
	for (size_t i = 0; i < nf; i++)
		total += json_array_size(json_array_get(jf, i));
	struct ft_text_fact *facts = calloc(nf ? nf : 1, sizeof *facts);
	const char **sp = calloc(total ? total : 1, sizeof *sp);
	bool *found = calloc(nf ? nf : 1, sizeof *found);
	struct ft_buf fb = FT_BUF_INIT(FT_TEXT_MAX_BYTES * 4);
	if (!facts || !sp || !found) {
		rc = ft_failf(err, FT_ENOMEM, NULL, "out of memory");
		goto out;
	}
	size_t at = 0;
	for (size_t i = 0; i < nf && !rc; i++) {
		json_t *f = json_array_get(jf, i);
		if (!json_is_array(f)) {
			rc = ft_failf(err, FT_EINVAL, NULL,
				      "\"facts\"[%zu] must be a list of strings", i);
			break;
		}
		facts[i].spellings = sp + at;
		facts[i].n = json_array_size(f);
		for (size_t k = 0; k < facts[i].n && !rc; k++) {
			sp[at] = json_string_value(json_array_get(f, k));
			if (!sp[at++])
				rc = ft_failf(err, FT_EINVAL, NULL,
					      "\"facts\"[%zu][%zu] must be a string", i, k);
		}
	}
	size_t n_found = 0;
	rc = rc ? rc : ft_text_facts_match(answer, facts, nf, found, &n_found, err);
	rc = rc ? rc : ft_text_fold(answer, &fb, err);
	if (!rc) {
		json_t *a = json_array();
		for (size_t i = 0; i < nf; i++)
			json_array_append_new(a, json_boolean(found[i]));
		json_object_set_new(res, "found", a);
		json_object_set_new(res, "all", json_boolean(n_found == nf));
		json_object_set_new(res, "folded", json_string(ft_buf_str(&fb)));
	}
out:
	ft_buf_release(&fb);
	free(facts);
	free(sp);
	free(found);
	return rc;
}

static const struct op {
	const char *name;
	enum ft_rc (*run)(const json_t *args, json_t *res, struct ft_err *err);
} ops[] = {
	{ "rng", op_rng },
	{ "special", op_special },
	{ "ks_2samp", op_ks },
	{ "numeric", op_numeric },
	{ "counts", op_counts },
	{ "mann_whitney", op_mann_whitney },
	{ "embedding", op_embedding },
	{ "ab", op_ab },
	{ "bootstrap", op_bootstrap },
	{ "decision", op_decision },
	{ "rouge_l", op_rouge },
	{ "bleu", op_bleu },
	{ "facts", op_facts },
};

static json_t *run_case(const json_t *c)
{
	const char *name = "", *opname = "";
	struct ft_err err = { 0 };
	json_t *res = json_object();
	enum ft_rc rc = ft_json_get_str(c, "name", 0, &name, &err);
	rc = rc ? rc : ft_json_get_str(c, "op", FT_JSON_REQUIRED, &opname, &err);
	const struct op *op = NULL;
	for (size_t i = 0; !rc && i < FT_ARRAY_LEN(ops); i++)
		if (strcmp(ops[i].name, opname) == 0)
			op = &ops[i];
	if (!rc && !op)
		rc = ft_failf(&err, FT_EINVAL, NULL, "unknown op \"%s\"", opname);
	if (!rc)
		rc = op->run(c, res, &err);
	json_t *out = json_pack("{s:s}", "name", name);
	if (rc) {
		json_decref(res);
		json_object_set_new(out, "error", json_string(err.msg));
	} else {
		json_object_set_new(out, "result", res);
	}
	return out;
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: ft-eval-stats CASES.json (or - for stdin)\n");
		return 2;
	}
	FILE *f = strcmp(argv[1], "-") == 0 ? stdin : fopen(argv[1], "rb");
	if (!f) {
		fprintf(stderr, "ft-eval-stats: cannot open %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	struct ft_buf in = FT_BUF_INIT(CASES_MAX_BYTES);
	char chunk[65536];
	size_t got;
	int status = 0;
	while ((got = fread(chunk, 1, sizeof chunk, f)) > 0)
		if (ft_buf_add(&in, chunk, got)) {
			fprintf(stderr, "ft-eval-stats: %s is larger than %d bytes\n", argv[1],
				CASES_MAX_BYTES);
			status = 1;
			break;
		}
	if (f != stdin)
		fclose(f);
	struct ft_err err = { 0 };
	json_t *cases = status ? NULL : ft_json_parse(ft_buf_str(&in), in.len, &err);
	ft_buf_release(&in);
	if (!status && !json_is_array(cases)) {
		fprintf(stderr, "ft-eval-stats: %s: %s\n", argv[1],
			cases ? "the top level must be a list of cases" : err.msg);
		status = 1;
	}
	if (!status) {
		json_t *out = json_array();
		for (size_t i = 0; i < json_array_size(cases); i++)
			json_array_append_new(out, run_case(json_array_get(cases, i)));
		char *s = json_dumps(out, JSON_REAL_PRECISION(17) | JSON_COMPACT);
		if (s)
			puts(s);
		else
			status = 1;
		free(s);
		json_decref(out);
	}
	json_decref(cases);
	return status;
}
