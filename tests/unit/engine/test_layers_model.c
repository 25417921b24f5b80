/*
 * test_layers_model.c - the whole decoder's backward (full fine-tuning and
 * LoRA, GQA, qkv bias, untied and tied heads, packed documents) against
 * central finite differences of its forward loss.
 *
 * L = mean cross-entropy over trained tokens. For every tensor, a few sampled
 * elements are perturbed by h = 1e-2 and (L+ - L-) / 2h is compared with the
 * analytic gradient: |fd - an| <= 1e-3 + 3e-2 |an| (fp32 forward; the
 * peer test in tests/system/test_engine_peer.py holds the tight 1e-4 check
 * against PyTorch).
 */
#include "ftest.h"
#include "ft/model.h"
#include "../../../engine/model/model_int.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rs = 0x243f6a8885a308d3ull;
static float frand(void)
{
	rs ^= rs << 13;
	rs ^= rs >> 7;
	rs ^= rs << 17;
	return (float)((rs >> 40) / (double)(1ull << 24)) * 2.0f - 1.0f;
}

static struct ft_model_config tiny(bool tied, bool bias)
{
	struct ft_model_config c = { 0 };
	c.vocab_size = 13;
	c.hidden_size = 16;
	c.intermediate_size = 24;
	c.num_layers = 2;
	c.num_heads = 4;
	c.num_kv_heads = 2;
	c.head_dim = 4;
	c.max_position_embeddings = 32;
	c.rms_norm_eps = 1e-6;
	c.rope_theta = 10000;
	c.tie_word_embeddings = tied;
	c.pad_token_id = -1; /* no padding_idx: every embedding row gets its full gradient */
	c.bos_token_id = -1;
	c.qkv_bias = bias;
	return c;
}

static const int32_t ids[12] = { 1, 5, 7, 2, 9, 3, 4, 12, 0, 6, 8, 11 };
static const int32_t tg[12] = { 5, 7, -100, 9, 3, 4, 12, 0, -100, 8, 11, 2 };
static const int32_t pos[12] = { 0, 1, 2, 0, 1, 2, 0, 1, 2, 3, 4, 5 };
static const int32_t doc[12] = { 0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0 };
static const struct ft_batch batch = { 2, 6, ids, tg, pos, doc };

static double loss_of(struct ft_model *m)
{
	struct ft_ce_stats st = { 0 };
	FT_ASSERT(ft_model_forward(m, &batch, 0.0f, 0, &st, NULL) == FT_OK);
	return st.loss_sum / (double)st.n_tokens;
}

static bool check_all(struct ft_model *m, struct ft_param *ps, size_t np)
{
	struct ft_ce_stats st = { 0 };
	ft_model_zero_grad(m);
	FT_ASSERT(ft_model_forward(m, &batch, 1.0f / 10.0f, 7, &st, NULL) == FT_OK);
	FT_ASSERT(st.n_tokens == 10);
	ft_model_backward(m, &batch);
	const float h = 1e-2f;
	for (size_t t = 0; t < np; t++) {
		struct ft_param *p = &ps[t];
		size_t step = p->n > 6 ? p->n / 6 : 1;
		for (size_t i = 0; i < p->n; i += step) {
			float old = p->data[i];
			p->data[i] = old + h;
			double lp = loss_of(m);
			p->data[i] = old - h;
			double lm = loss_of(m);
			p->data[i] = old;
			double fd = (lp - lm) / (2.0 * h), an = p->grad[i];
			if (fabs(fd - an) > 1e-3 + 3e-2 * fabs(an)) {
				fprintf(stderr, "%s[%zu]: finite difference %.6g, analytic %.6g\n",
					p->name, i, fd, an);
				return false;
			}
		}
	}
	return true;
}

static void randomize(struct ft_param *ps, size_t np, float s)
{
	for (size_t t = 0; t < np; t++)
		for (size_t i = 0; i < ps[t].n; i++)
			ps[t].data[i] =
				strstr(ps[t].name, "norm") ? 1.0f + 0.2f * frand() : s * frand();
}

FT_TEST(full_finetune_gradients_untied_with_bias)
{
	struct ft_model_config c = tiny(false, true);
	struct ft_model *m;
	FT_CHECK(ft_model_new(&c, ft_backend_cpu(), &m, NULL) == FT_OK);
	FT_CHECK(ft_model_train_base(m, NULL) == FT_OK);
	size_t np;
	struct ft_param *ps = ft_model_params(m, &np);
	randomize(ps, np, 0.5f);
	bool ok = check_all(m, ps, np);
	ft_model_free(m);
	FT_CHECK(ok);
}

FT_TEST(full_finetune_gradients_tied)
{
	struct ft_model_config c = tiny(true, false);
	struct ft_model *m;
	FT_CHECK(ft_model_new(&c, ft_backend_cpu(), &m, NULL) == FT_OK);
	FT_CHECK(ft_model_train_base(m, NULL) == FT_OK);
	size_t np;
	struct ft_param *ps = ft_model_params(m, &np);
	randomize(ps, np, 0.5f);
	bool ok = check_all(m, ps, np);
	ft_model_free(m);
	FT_CHECK(ok);
}

FT_TEST(lora_gradients_all_linear)
{
	struct ft_model_config c = tiny(false, true);
	struct ft_model *m;
	FT_CHECK(ft_model_new(&c, ft_backend_cpu(), &m, NULL) == FT_OK);
	size_t np, nl;
	struct ft_param *ps = ft_model_params(m, &np);
	randomize(ps, np, 0.5f);
	struct ft_lora_config lc = { .targets = (1u << FT_LIN_COUNT) - 1,
				     .r = 3,
				     .alpha = 6.0,
				     .dropout = 0.0,
				     .rslora = false };
	FT_CHECK(ft_model_lora_add(m, &lc, NULL) == FT_OK);
	struct ft_param *lp = ft_model_lora_params(m, &nl);
	FT_CHECK_INT(nl, 2 * 7 * 2);
	FT_CHECK(ps[1].grad == NULL); /* frozen base: no gradient memory */
	randomize(lp, nl, 0.5f);
	bool ok = check_all(m, lp, nl);
	ft_model_free(m);
	FT_CHECK(ok);
}

/* LoRA gradients and loss of one forward/backward of batch; loss and every
 * adapter gradient copied out. */
static double lora_pass(struct ft_model *m, float *g, size_t ng)
{
	size_t nl, k = 0;
	struct ft_param *lp = ft_model_lora_params(m, &nl);
	struct ft_ce_stats st = { 0 };
	ft_model_zero_grad(m);
	FT_ASSERT(ft_model_forward(m, &batch, 1.0f / 10.0f, 7, &st, NULL) == FT_OK);
	FT_ASSERT(st.n_tokens == 10);
	ft_model_backward(m, &batch);
	for (size_t t = 0; t < nl; t++)
		for (size_t i = 0; i < lp[t].n && k < ng; i++)
			g[k++] = lp[t].grad[i];
	return st.loss_sum;
}

/* Training's two shortcuts on a frozen base change no gradient bit: the
 * output layer on the 10 rows with a target only (ft_model_set_loss_rows_only:
 * the loss is the same sum: cross_entropy adds the rows in row order), and
 * the base packed once for the forward (ft_model_pack f32: the same bits). */
FT_TEST(lora_loss_rows_only_and_packed_base_give_the_same_gradients)
{
	struct ft_model_config c = tiny(false, true);
	struct ft_model *m;
	FT_CHECK(ft_model_new(&c, ft_backend_cpu(), &m, NULL) == FT_OK);
	size_t np, nl, ng = 0;
	struct ft_param *ps = ft_model_params(m, &np);
	randomize(ps, np, 0.5f);
	struct ft_lora_config lc = { .targets = (1u << FT_LIN_COUNT) - 1,
				     .r = 3,
				     .alpha = 6.0,
				     .dropout = 0.0,
				     .rslora = false };
	FT_CHECK(ft_model_lora_add(m, &lc, NULL) == FT_OK);
	struct ft_param *lp = ft_model_lora_params(m, &nl);
	randomize(lp, nl, 0.5f);
	for (size_t t = 0; t < nl; t++)
		ng += lp[t].n;
	float *g0 = calloc(ng, sizeof(float)), *g1 = calloc(ng, sizeof(float)),
	      *g2 = calloc(ng, sizeof(float));
	FT_CHECK(g0 && g1 && g2);
	double l0 = lora_pass(m, g0, ng);
	ft_model_set_loss_rows_only(m, true);
	double l1 = lora_pass(m, g1, ng);
	FT_CHECK(m->n_head_rows == 10);
	FT_CHECK(ft_model_pack(m, FT_PW_F32, NULL) == FT_OK);
	double l2 = lora_pass(m, g2, ng);
	FT_CHECK(memcmp(g0, g1, ng * sizeof(float)) == 0);
	FT_CHECK(memcmp(g0, g2, ng * sizeof(float)) == 0);
	FT_CHECK(l1 == l0 && l2 == l0);
	free(g0);
	free(g1);
	free(g2);
	ft_model_free(m);
}

FT_TEST(lora_merge_gives_same_logits)
{
	struct ft_model_config c = tiny(false, true);
	struct ft_model *m;
	FT_CHECK(ft_model_new(&c, ft_backend_cpu(), &m, NULL) == FT_OK);
	size_t np, nl;
	struct ft_param *ps = ft_model_params(m, &np);
	randomize(ps, np, 0.5f);
	struct ft_lora_config lc = { .targets = (1u << FT_LIN_Q) | (1u << FT_LIN_DOWN),
				     .r = 2,
				     .alpha = 4.0,
				     .dropout = 0.0,
				     .rslora = true };
	FT_CHECK(ft_model_lora_add(m, &lc, NULL) == FT_OK);
	struct ft_param *lps = ft_model_lora_params(m, &nl);
	randomize(lps, nl, 0.5f);
	FT_CHECK(ft_model_forward(m, &batch, 0.0f, 0, NULL, NULL) == FT_OK);
	float before[12 * 13];
	memcpy(before, ft_model_logits(m), sizeof before);
	ft_model_lora_merge(m);
	FT_CHECK(ft_model_lora(m) == NULL);
	FT_CHECK(ft_model_forward(m, &batch, 0.0f, 0, NULL, NULL) == FT_OK);
	const float *after = ft_model_logits(m);
	double md = 0;
	for (int i = 0; i < 12 * 13; i++)
		md = fmax(md, fabs(before[i] - after[i]));
	ft_model_free(m);
	FT_CHECK(md < 1e-5);
}

FT_TEST(lora_dropout_gradients)
{
	/* with dropout, the mask is a function of the forward's seed: the
	 * finite differences are taken with the same mask by forwarding in
	 * train mode with the same seed */
	struct ft_model_config c = tiny(false, false);
	struct ft_model *m;
	FT_CHECK(ft_model_new(&c, ft_backend_cpu(), &m, NULL) == FT_OK);
	size_t np, nl;
	struct ft_param *ps = ft_model_params(m, &np);
	randomize(ps, np, 0.5f);
	struct ft_lora_config lc = { .targets = (1u << FT_LIN_V) | (1u << FT_LIN_UP),
				     .r = 2,
				     .alpha = 4.0,
				     .dropout = 0.3,
				     .rslora = false };
	FT_CHECK(ft_model_lora_add(m, &lc, NULL) == FT_OK);
	struct ft_param *lp = ft_model_lora_params(m, &nl);
	randomize(lp, nl, 0.5f);
	struct ft_ce_stats st = { 0 };
	ft_model_zero_grad(m);
	FT_CHECK(ft_model_forward(m, &batch, 0.1f, 42, &st, NULL) == FT_OK);
	ft_model_backward(m, &batch);
	const float h = 1e-2f;
	bool ok = true;
	for (size_t t = 0; t < nl && ok; t++)
		for (size_t i = 0; i < lp[t].n && ok; i += 3) {
			float old = lp[t].data[i];
			double l2[2];
			for (int sgn = 0; sgn < 2; sgn++) {
				struct ft_ce_stats s2 = { 0 };
				lp[t].data[i] = old + (sgn ? -h : h);
				/* grad_scale != 0 applies the mask; the logits then hold
				 * gradients, but the loss sum is what we need */
				FT_CHECK(ft_model_forward(m, &batch, 0.1f, 42, &s2, NULL) == FT_OK);
				l2[sgn] = s2.loss_sum / 10.0;
			}
			lp[t].data[i] = old;
			double fd = (l2[0] - l2[1]) / (2.0 * h), an = lp[t].grad[i];
			ok = fabs(fd - an) <= 1e-3 + 3e-2 * fabs(an);
			if (!ok)
				fprintf(stderr, "%s[%zu]: fd %g analytic %g\n", lp[t].name, i, fd,
					an);
		}
	ft_model_free(m);
	FT_CHECK(ok);
}

FT_TEST_MAIN()
