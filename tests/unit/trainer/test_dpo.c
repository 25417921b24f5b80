/*
 * test_dpo.c - the DPO loss, its coefficients and metrics on numbers worked
 * out by hand (below), the pre-tokenized pair rows, and the model's
 * sequence-level gradient path (ft_model_forward_keep, ft_model_row_logps,
 * ft_model_logits_grad_rows) against central finite differences of the DPO
 * loss. tests/system/test_dpo_peer.py holds the whole loop to trl + PyTorch.
 *
 * Hand computation, beta = 0.5, two pairs (scale = 1/2):
 *   pair 1: pi_c -3, pi_r -5, ref_c -4, ref_r -4
 *     z = 0.5 ((-3 + 5) - 0) = 1;   loss = log(1 + e^-1) = 0.31326168751822286
 *     dl/dz = -sigmoid(-1) = -0.2689414213699951
 *     coef_c = 1/2 * 0.5 * dl/dz = -0.06723535534249878, coef_r = +0.0672...
 *     rewards: chosen 0.5 (-3 + 4) = 0.5, rejected 0.5 (-5 + 4) = -0.5
 *   pair 2: pi_c -6, pi_r -2, ref_c -5, ref_r -2.5
 *     z = 0.5 ((-6 + 2) - (-5 + 2.5)) = -0.75; loss = log(1 + e^0.75) = 1.1368710061148999
 *     dl/dz = -sigmoid(0.75) = -0.679178699175393; coef_c = -0.16979467479384824
 *     rewards: chosen -0.5, rejected 0.25 (chosen is not ahead)
 *   means: loss 0.7250663468165613, rewards/chosen 0, rewards/rejected -0.125,
 *   accuracies 0.5, margins 0.125, logps/chosen -4.5, logps/rejected -3.5
 * Label smoothing 0.25 on pair 1 alone (scale 1):
 *   loss = 0.75 log(1 + e^-1) + 0.25 log(1 + e^1) = 0.5632616875182228
 *   dl/dz = -0.75 sigmoid(-1) + 0.25 sigmoid(1) = -0.018941421369995104
 */
#include "ftest.h"
#include "ft/model.h"
#include "ft/train.h"
#include "../../../trainer/train/dpo_int.h"

#include <math.h>

#define NEAR(a, b) (fabs((a) - (b)) <= 1e-12 * fmax(1.0, fabs(b)))

FT_TEST(two_pairs_loss_coefficients_and_metrics)
{
	const double pi_c[] = { -3, -6 }, pi_r[] = { -5, -2 }, ref_c[] = { -4, -5 },
		     ref_r[] = { -4, -2.5 };
	double coef[4];
	struct ft_dpo_sums s = { 0 };
	ft_dpo_pairs(pi_c, pi_r, ref_c, ref_r, 2, 0.5, 0.0, 0.5, coef, &s);
	FT_CHECK_INT(s.n, 2);
	FT_CHECK(NEAR(coef[0], -0.06723535534249878));
	FT_CHECK(NEAR(coef[1], -0.16979467479384824));
	FT_CHECK(NEAR(coef[2], 0.06723535534249878));
	FT_CHECK(NEAR(coef[3], 0.16979467479384824));
	struct ft_dpo_metrics m;
	ft_dpo_metrics(&s, &m);
	FT_CHECK(NEAR(m.loss, 0.7250663468165613));
	FT_CHECK(NEAR(m.chosen, 0.0));
	FT_CHECK(NEAR(m.rejected, -0.125));
	FT_CHECK(NEAR(m.accuracy, 0.5));
	FT_CHECK(NEAR(m.margin, 0.125));
	FT_CHECK(NEAR(m.logp_chosen, -4.5));
	FT_CHECK(NEAR(m.logp_rejected, -3.5));
}

FT_TEST(label_smoothing)
{
	const double pi_c[] = { -3 }, pi_r[] = { -5 }, ref_c[] = { -4 }, ref_r[] = { -4 };
	double coef[2];
	struct ft_dpo_sums s = { 0 };
	ft_dpo_pairs(pi_c, pi_r, ref_c, ref_r, 1, 0.5, 0.25, 1.0, coef, &s);
	FT_CHECK(NEAR(s.loss, 0.5632616875182228));
	FT_CHECK(NEAR(coef[0], 0.5 * -0.018941421369995104));
	FT_CHECK(NEAR(coef[1], -0.5 * -0.018941421369995104));
}

FT_TEST(sums_accumulate_across_calls_and_metrics_without_pairs_are_nan)
{
	/* gradient accumulation: micro-batches add to one set of sums */
	const double pi_c[] = { -3, -6 }, pi_r[] = { -5, -2 }, ref_c[] = { -4, -5 },
		     ref_r[] = { -4, -2.5 };
	struct ft_dpo_sums s = { 0 };
	ft_dpo_pairs(pi_c, pi_r, ref_c, ref_r, 1, 0.5, 0.0, 0.5, NULL, &s);
	ft_dpo_pairs(pi_c + 1, pi_r + 1, ref_c + 1, ref_r + 1, 1, 0.5, 0.0, 0.5, NULL, &s);
	struct ft_dpo_metrics m;
	ft_dpo_metrics(&s, &m);
	FT_CHECK(NEAR(m.loss, 0.7250663468165613));
	FT_CHECK(NEAR(m.margin, 0.125));
	struct ft_dpo_sums none = { 0 };
	ft_dpo_metrics(&none, &m);
	FT_CHECK(isnan(m.loss) && isnan(m.accuracy));
}

FT_TEST(extreme_margins_stay_finite)
{
	/* z = +-2000: logsigmoid(-2000) = -2000 exactly in double, no overflow */
	const double pi_c[] = { 0, -4000 }, pi_r[] = { -4000, 0 }, zero[] = { 0, 0 };
	double coef[4];
	struct ft_dpo_sums s = { 0 };
	ft_dpo_pairs(pi_c, pi_r, zero, zero, 2, 0.5, 0.0, 1.0, coef, &s);
	FT_CHECK(NEAR(s.loss, 2000.0));
	FT_CHECK(coef[0] == 0.0 || fabs(coef[0]) < 1e-300);
	FT_CHECK(NEAR(coef[1], -0.5)); /* beta * -sigmoid(2000) */
	FT_CHECK(s.correct == 1.0);
}

FT_TEST(pretokenized_pairs_layout_and_truncation)
{
	const char *text =
		"{\"prompt_ids\": [1, 2], \"chosen_ids\": [3, 4, 5], \"rejected_ids\": [6]}\n"
		"\n"
		"{\"prompt_ids\": [7], \"chosen_ids\": [8], \"rejected_ids\": [9, 10]}\n";
	struct ft_rows r;
	struct ft_err err;
	ft_err_clear(&err);
	FT_CHECK(ft_pairs_parse(text, strlen(text), "p.jsonl", 11, 4, &r, &err) == FT_OK);
	FT_CHECK_INT(ft_pairs_count(&r), 2);
	FT_CHECK_INT(r.n_units, 4); /* one unit per sequence: no packing */
	/* row 0: prompt + chosen cut to 4 tokens; row 1: prompt + rejected */
	static const int32_t ids[] = { 1, 2, 3, 4, 1, 2, 6, 7, 8, 7, 9, 10 };
	static const int32_t lab[] = { -100, -100, 3, 4, -100, -100, 6, -100, 8, -100, 9, 10 };
	static const size_t off[] = { 0, 4, 7, 9, 12 };
	for (int i = 0; i < 5; i++)
		FT_CHECK_INT(r.off[i], off[i]);
	for (int i = 0; i < 12; i++) {
		FT_CHECK_INT(r.ids[i], ids[i]);
		FT_CHECK_INT(r.labels[i], lab[i]);
	}
	ft_rows_release(&r);
}

FT_TEST(bad_pair_rows_name_their_line)
{
	static const struct {
		const char *row, *msg;
	} cases[] = {
		{ "{\"prompt_ids\": [1], \"chosen_ids\": [70], \"rejected_ids\": [2]}",
		  "p.jsonl line 3: \"chosen_ids\"[0] = 70 is not a token id of the model (0 to "
		  "10)" },
		{ "{\"prompt_ids\": [1], \"chosen_ids\": [], \"rejected_ids\": [2]}",
		  "p.jsonl line 3: \"chosen_ids\" must hold at least 1 token id" },
		{ "{\"prompt_ids\": [1], \"chosen_ids\": [3], \"rejected_ids\": [2.5]}",
		  "p.jsonl line 3: \"rejected_ids\"[0] must be an integer (got number)" },
		{ "[1, 2]", "p.jsonl line 3: a row must be an object (got list)" },
		{ "{\"input_ids\": [1, 2]}",
		  "p.jsonl line 3: \"input_ids\" rows are for supervised training" },
		{ "{\"prompt_ids\": [1], \"chosen_ids\": [3]", "p.jsonl line 3: " },
	};
	for (size_t i = 0; i < FT_ARRAY_LEN(cases); i++) {
		char text[512];
		snprintf(text, sizeof text,
			 "{\"prompt_ids\": [1], \"chosen_ids\": [3], \"rejected_ids\": [2]}\n"
			 "   \n%s\n",
			 cases[i].row);
		struct ft_rows r;
		struct ft_err err;
		ft_err_clear(&err);
		FT_CHECK(ft_pairs_parse(text, strlen(text), "p.jsonl", 11, 64, &r, &err) != FT_OK);
		if (strncmp(err.msg, cases[i].msg, strlen(cases[i].msg)) != 0)
			fprintf(stderr, "got: %s\nwant: %s\n", err.msg, cases[i].msg);
		FT_CHECK(strncmp(err.msg, cases[i].msg, strlen(cases[i].msg)) == 0);
		FT_CHECK_INT(err.line, 3);
		FT_CHECK(r.ids == NULL && r.n == 0); /* nothing half-built */
	}
	struct ft_rows r;
	FT_CHECK(ft_pairs_parse("\n", 1, "e.jsonl", 11, 64, &r, NULL) == FT_EINVAL);
}

/* ---- the job file ---- */

static enum ft_rc parse_job(const char *hp, const char *objective, struct ft_train_job *j,
			    struct ft_err *e)
{
	char text[512];
	snprintf(text, sizeof text,
		 "{\"model\":\"m\",\"train_file\":\"t\",\"output_dir\":\"o\","
		 "\"objective\":\"%s\",\"hyperparameters\":%s}",
		 objective, hp);
	ft_err_clear(e);
	return ft_train_job_parse(text, strlen(text), j, e);
}

FT_TEST(job_objective_beta_and_label_smoothing)
{
	struct ft_train_job j;
	struct ft_err e;
	FT_CHECK(parse_job("{}", "dpo", &j, &e) == FT_OK);
	FT_CHECK_INT(j.objective, FT_OBJ_DPO);
	FT_CHECK(j.dpo_beta == 0.1 && j.dpo_label_smoothing == 0.0); /* trl's defaults */
	FT_CHECK(parse_job("{\"beta\":\"auto\",\"label_smoothing\":0.2}", "dpo", &j, &e) == FT_OK);
	FT_CHECK(j.dpo_beta == 0.1 && j.dpo_label_smoothing == 0.2);
	FT_CHECK(parse_job("{\"beta\":0.25}", "dpo", &j, &e) == FT_OK);
	FT_CHECK(j.dpo_beta == 0.25);
	FT_CHECK(parse_job("{}", "sft", &j, &e) == FT_OK);
	FT_CHECK_INT(j.objective, FT_OBJ_SUPERVISED);

	static const struct {
		const char *hp, *objective, *msg, *param;
	} bad[] = {
		{ "{\"beta\":0.2}", "supervised", "\"beta\" is a DPO hyperparameter",
		  "hyperparameters.beta" },
		{ "{\"label_smoothing\":0.6}", "dpo",
		  "\"label_smoothing\" must be between 0 and 0.5",
		  "hyperparameters.label_smoothing" },
		{ "{\"beta\":\"big\"}", "dpo", "\"beta\" must be \"auto\" or a number",
		  "hyperparameters.beta" },
		{ "{\"packing\":true}", "dpo", "\"packing\" does not go with DPO",
		  "hyperparameters.packing" },
		{ "{}", "kto", "\"objective\" must be \"supervised\" or \"dpo\" (got \"kto\")",
		  "objective" },
	};
	for (size_t i = 0; i < FT_ARRAY_LEN(bad); i++) {
		FT_CHECK(parse_job(bad[i].hp, bad[i].objective, &j, &e) == FT_EINVAL);
		if (!strstr(e.msg, bad[i].msg) || strcmp(e.param, bad[i].param) != 0)
			fprintf(stderr, "got: %s (%s)\nwant: %s (%s)\n", e.msg, e.param, bad[i].msg,
				bad[i].param);
		FT_CHECK(strstr(e.msg, bad[i].msg) != NULL);
		FT_CHECK_STR(e.param, bad[i].param);
	}
}

/* ---- the model's sequence-level gradient against finite differences ---- */

static uint64_t rs = 0x9e3779b97f4a7c15ull;
static float frand(void)
{
	rs ^= rs << 13;
	rs ^= rs >> 7;
	rs ^= rs << 17;
	return (float)((rs >> 40) / (double)(1ull << 24)) * 2.0f - 1.0f;
}

/* Two pairs, one batch of 4 rows of 5: chosen rows first, right-padded. */
static const int32_t ids[20] = { 1, 2, 3, 4, 0, 5, 6, 7, 0, 0, 1, 2, 8, 0, 0, 5, 6, 9, 10, 0 };
static const int32_t tg[20] = { -100, 3, 4,    -100, -100, -100, 7, -100, -100, -100,
				-100, 8, -100, -100, -100, -100, 9, 10,	  -100, -100 };
static const struct ft_batch batch = { 4, 5, ids, tg, NULL, NULL };
static const double ref[4] = { -6.0, -3.5, -5.0, -7.25 };

static double dpo_loss(struct ft_model *m)
{
	struct ft_batch nb = batch;
	nb.targets = NULL;
	double pi[4];
	FT_ASSERT(ft_model_forward(m, &nb, 0.0f, 0, NULL, NULL) == FT_OK);
	ft_model_row_logps(m, &batch, pi);
	struct ft_dpo_sums s = { 0 };
	ft_dpo_pairs(pi, pi + 2, ref, ref + 2, 2, 0.7, 0.1, 0.5, NULL, &s);
	return s.loss / 2.0;
}

FT_TEST(sequence_gradient_matches_finite_differences)
{
	struct ft_model_config c = { 0 };
	c.vocab_size = 11;
	c.hidden_size = 8;
	c.intermediate_size = 12;
	c.num_layers = 1;
	c.num_heads = 2;
	c.num_kv_heads = 1;
	c.head_dim = 4;
	c.max_position_embeddings = 16;
	c.rms_norm_eps = 1e-6;
	c.rope_theta = 10000;
	c.pad_token_id = -1;
	c.bos_token_id = -1;
	struct ft_model *m;
	FT_CHECK(ft_model_new(&c, ft_backend_cpu(), &m, NULL) == FT_OK);
	FT_CHECK(ft_model_train_base(m, NULL) == FT_OK);
	size_t np;
	struct ft_param *ps = ft_model_params(m, &np);
	for (size_t t = 0; t < np; t++)
		for (size_t i = 0; i < ps[t].n; i++)
			ps[t].data[i] =
				strstr(ps[t].name, "norm") ? 1.0f + 0.2f * frand() : 0.6f * frand();
	/* analytic: forward keeping the logits, coefficients, logits -> gradients */
	double pi[4], coef[4];
	float scale[4];
	ft_model_zero_grad(m);
	FT_CHECK(ft_model_forward_keep(m, &batch, 3, NULL) == FT_OK);
	ft_model_row_logps(m, &batch, pi);
	struct ft_dpo_sums s = { 0 };
	ft_dpo_pairs(pi, pi + 2, ref, ref + 2, 2, 0.7, 0.1, 0.5, coef, &s);
	for (int k = 0; k < 4; k++)
		scale[k] = (float)-coef[k];
	ft_model_logits_grad_rows(m, &batch, scale);
	ft_model_backward(m, &batch);
	FT_CHECK(fabs(s.loss / 2.0 - dpo_loss(m)) < 1e-6); /* same loss either way */
	const float h = 1e-2f;
	bool ok = true;
	for (size_t t = 0; t < np && ok; t++) {
		size_t step = ps[t].n > 5 ? ps[t].n / 5 : 1;
		for (size_t i = 0; i < ps[t].n && ok; i += step) {
			float old = ps[t].data[i];
			ps[t].data[i] = old + h;
			double lp = dpo_loss(m);
			ps[t].data[i] = old - h;
			double lm = dpo_loss(m);
			ps[t].data[i] = old;
			double fd = (lp - lm) / (2.0 * h), an = ps[t].grad[i];
			if (fabs(fd - an) > 1e-3 + 3e-2 * fabs(an)) {
				fprintf(stderr, "%s[%zu]: finite difference %.6g, analytic %.6g\n",
					ps[t].name, i, fd, an);
				ok = false;
			}
		}
	}
	ft_model_free(m);
	FT_CHECK(ok);
}

FT_TEST_MAIN()
