/*
 * sim_drift.c - drift alerts against a known truth (issue 17).
 *
 * Synthetic traffic with a reference (2000 requests; 400 embeddings) and
 * hourly windows of 300 requests (150 embeddings sampled): prompt lengths
 * round(exp(4 + 0.6 z)) tokens, a language mix en/zh/ja/other of
 * 0.65/0.25/0.07/0.03, and 16-dimensional embeddings around four topic
 * centroids (weights 0.4/0.3/0.2/0.1, unit noise). Each of three scenarios
 * runs 48 unshifted hours and then, from hour 48, one shift:
 *   length     prompts 50% longer (mu + ln 1.5)
 *   language   en 0.45, zh 0.45
 *   topic      a fifth topic takes 45% of the traffic
 * Every window goes through the library's three checks with the default
 * thresholds (ft_drift_thresholds_default). Printed per scenario: the first
 * alerting hour and which checks alerted at hour 48; overall: the false
 * alarms over the 3 x 48 unshifted windows, per check and in all, and the
 * same over 10 further seeds of 48 unshifted hours (one more reference
 * each) for a tighter false-alarm rate. Never timed;
 * tests/system/test_stats_sim.py asserts.
 */
#include "ft/stats.h"

#include <math.h>

enum { N_REF = 2000, N_REF_EMB = 400, N_WIN = 300, N_WIN_EMB = 150, DIM = 16, TOPICS = 5 };
enum { LANGS = 4, HOURS = 48, SHIFTED = 4, NULL_SEEDS = 10 };

enum scenario { NONE, LENGTH, LANGUAGE, TOPIC };
static const char *const scenario_names[] = { "none", "length", "language", "topic" };

struct traffic {
	double mu; /* log-length mean */
	double lang[LANGS];
	double topic[TOPICS];
};

static const struct traffic base = { 4.0, { 0.65, 0.25, 0.07, 0.03 }, { 0.4, 0.3, 0.2, 0.1, 0.0 } };

static struct ft_rng rng;
static double centroid[TOPICS][DIM];

static int pick(const double *p, int k)
{
	double u = ft_rng_uniform(&rng), c = 0;
	for (int i = 0; i < k - 1; i++) {
		c += p[i];
		if (u < c)
			return i;
	}
	return k - 1;
}

static void sample(const struct traffic *t, int n, int n_emb, double *len, double *lang,
		   double *emb)
{
	for (int i = 0; i < LANGS; i++)
		lang[i] = 0;
	for (int i = 0; i < n; i++) {
		len[i] = fmax(1.0, round(exp(t->mu + 0.6 * ft_rng_normal(&rng))));
		lang[pick(t->lang, LANGS)] += 1.0;
	}
	for (int i = 0; i < n_emb; i++) {
		int k = pick(t->topic, TOPICS);
		for (int d = 0; d < DIM; d++)
			emb[i * DIM + d] = centroid[k][d] + ft_rng_normal(&rng);
	}
}

static struct traffic shifted(enum scenario s)
{
	struct traffic t = base;
	if (s == LENGTH)
		t.mu += log(1.5);
	if (s == LANGUAGE) {
		t.lang[0] = 0.45;
		t.lang[1] = 0.45;
	}
	if (s == TOPIC) {
		for (int k = 0; k < TOPICS - 1; k++)
			t.topic[k] *= 0.55;
		t.topic[TOPICS - 1] = 0.45;
	}
	return t;
}

static double ref_len[N_REF], ref_lang[LANGS], ref_emb[N_REF_EMB * DIM];
static double win_len[N_WIN], win_lang[LANGS], win_emb[N_WIN_EMB * DIM];
static struct ft_drift_bins bins;

static void new_world(uint64_t seed)
{
	ft_rng_seed(&rng, seed);
	for (int k = 0; k < TOPICS; k++)
		for (int d = 0; d < DIM; d++)
			centroid[k][d] = 0.8 * ft_rng_normal(&rng);
	sample(&base, N_REF, N_REF_EMB, ref_len, ref_lang, ref_emb);
	FT_ASSERT(ft_drift_bins_fit(&bins, ref_len, N_REF, 10, NULL) == FT_OK);
}

/* the three checks on one window; bit 0 numeric, 1 categorical, 2 embedding */
static int window(const struct traffic *t, uint64_t seed, const struct ft_drift_thresholds *th,
		  bool print, const char *label)
{
	sample(t, N_WIN, N_WIN_EMB, win_len, win_lang, win_emb);
	struct ft_drift_numeric num;
	struct ft_drift_categorical cat;
	struct ft_drift_embedding emb;
	struct ft_err err = { 0 };
	if (ft_drift_numeric_check(&bins, ref_len, N_REF, win_len, N_WIN, th, &num, &err) ||
	    ft_drift_categorical_check(ref_lang, win_lang, LANGS, th, &cat, &err) ||
	    ft_drift_embedding_check(ref_emb, N_REF_EMB, win_emb, N_WIN_EMB, DIM, seed, th, &emb,
				     &err)) {
		fprintf(stderr, "sim_drift: %s\n", err.msg);
		exit(1);
	}
	if (print)
		printf("drift.%s psi %.3f ks_p %.3g js %.3f chi2_p %.3g auc %.3f perm_p %.4f "
		       "threshold %.3f cosine %.3f\n",
		       label, num.psi, num.ks.pvalue, cat.js, cat.chi2.pvalue, emb.domain.auc,
		       emb.domain.pvalue, emb.domain.threshold, emb.cosine);
	return (num.alert ? 1 : 0) | (cat.alert ? 2 : 0) | (emb.alert ? 4 : 0);
}

static const char *const check_names[] = { "numeric", "categorical", "embedding" };

int main(void)
{
	struct ft_drift_thresholds th;
	ft_drift_thresholds_default(&th);
	int fa[3] = { 0 }, fa_windows = 0, windows = 0;
	for (enum scenario s = LENGTH; s <= TOPIC; s++) {
		new_world(1000 + (uint64_t)s);
		struct traffic shift = shifted(s);
		int first = -1, at48 = 0, unshifted_alerts = 0;
		for (int h = 0; h < HOURS + SHIFTED; h++) {
			char label[64];
			snprintf(label, sizeof label, "%s.hour%d", scenario_names[s], h);
			int a = window(h < HOURS ? &base : &shift, (uint64_t)(s * 100 + h), &th,
				       h == HOURS - 1 || h == HOURS, label);
			if (h < HOURS) {
				windows++;
				fa_windows += a != 0;
				unshifted_alerts += a != 0;
				for (int c = 0; c < 3; c++)
					fa[c] += (a >> c) & 1;
			}
			if (a && first < 0)
				first = h;
			if (h == HOURS)
				at48 = a;
		}
		printf("drift.%s.first_alert_hour %d  (shift introduced at hour %d)\n",
		       scenario_names[s], first, HOURS);
		printf("drift.%s.unshifted_alerts %d  (of %d windows)\n", scenario_names[s],
		       unshifted_alerts, HOURS);
		printf("drift.%s.alerts_at_shift", scenario_names[s]);
		for (int c = 0; c < 3; c++)
			if ((at48 >> c) & 1)
				printf(" %s", check_names[c]);
		printf("\n");
	}
	printf("drift.false_alarm_rate %.4f  (%d/%d unshifted windows raised an alert)\n",
	       (double)fa_windows / windows, fa_windows, windows);
	for (int c = 0; c < 3; c++)
		printf("drift.false_alarms.%s %d\n", check_names[c], fa[c]);
	/* further unshifted days for the rate */
	int more = 0, more_windows = 0, more_fa[3] = { 0 };
	for (int seed = 0; seed < NULL_SEEDS; seed++) {
		new_world(5000 + (uint64_t)seed);
		for (int h = 0; h < HOURS; h++) {
			int a = window(&base, (uint64_t)(9000 + seed * 100 + h), &th, false, "");
			more += a != 0;
			for (int c = 0; c < 3; c++)
				more_fa[c] += (a >> c) & 1;
			more_windows++;
		}
	}
	printf("drift.false_alarm_rate_null_days %.4f  (%d/%d windows over %d more seeded days)\n",
	       (double)more / more_windows, more, more_windows, NULL_SEEDS);
	for (int c = 0; c < 3; c++)
		printf("drift.false_alarms_null_days.%s %d\n", check_names[c], more_fa[c]);
	return 0;
}
