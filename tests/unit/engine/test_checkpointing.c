/*
 * test_checkpointing.c - activation checkpointing recomputes a layer's
 * forward inside backward; the gradients must be BIT-identical to the run
 * that kept every activation (same ops, same order, same dropout masks,
 * which are a function of (seed, layer, linear)), and the activation memory
 * must shrink by exactly the recomputed layers' share.
 *
 * Expected sizes by hand for the tiny model below (floats, B=2, T=6, N=12,
 * C=16, I=24, qd=16, kd=8, nh=4; no LoRA): one layer keeps
 *   res 192 + ln1 192 + rstd1 12 + q 192 + k 96 + v 96 + lse 48 + att 192
 *   + mid 192 + ln2 192 + rstd2 12 + gate 288 + up 288 + h 288 = 2280,
 * of which a recomputed layer keeps only res (192); the head keeps
 *   res_final 192 + lnf 192 + rstdf 12 + logits 12*13 = 552.
 * 4 layers, off:          4 * 2280 + 552                  = 9672 floats
 * every layer (every=1):  4 * 192 + (2280 - 192) + 552    = 3408 floats
 * every 2nd (0 and 2):    2 * 2280 + 2 * 192 + 2088 + 552 = 7584 floats
 */
#include "ftest.h"
#include "ft/model.h"

#include <math.h>

static uint64_t rs = 0x9e3779b97f4a7c15ull;
static float frand(void)
{
	rs ^= rs << 13;
	rs ^= rs >> 7;
	rs ^= rs << 17;
	return (float)((rs >> 40) / (double)(1ull << 24)) * 2.0f - 1.0f;
}

static struct ft_model_config tiny(void)
{
	struct ft_model_config c = { 0 };
	c.vocab_size = 13;
	c.hidden_size = 16;
	c.intermediate_size = 24;
	c.num_layers = 4;
	c.num_heads = 4;
	c.num_kv_heads = 2;
	c.head_dim = 4;
	c.max_position_embeddings = 32;
	c.rms_norm_eps = 1e-6;
	c.rope_theta = 10000;
	c.pad_token_id = -1;
	c.bos_token_id = -1;
	return c;
}

static const int32_t ids[12] = { 1, 5, 7, 2, 9, 3, 4, 12, 0, 6, 8, 11 };
static const int32_t tg[12] = { 5, 7, -100, 9, 3, 4, 12, 0, -100, 8, 11, 2 };
static const int32_t pos[12] = { 0, 1, 2, 0, 1, 2, 0, 1, 2, 3, 4, 5 };
static const int32_t doc[12] = { 0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0 };
static const struct ft_batch batch = { 2, 6, ids, tg, pos, doc };

/* A model with the same random weights every time (the generator restarts). */
static struct ft_model *build(bool lora, int every)
{
	struct ft_model_config c = tiny();
	struct ft_model *m;
	FT_ASSERT(ft_model_new(&c, ft_backend_cpu(), &m, NULL) == FT_OK);
	rs = 0x9e3779b97f4a7c15ull;
	size_t np;
	struct ft_param *ps = ft_model_params(m, &np);
	for (size_t t = 0; t < np; t++)
		for (size_t i = 0; i < ps[t].n; i++)
			ps[t].data[i] =
				strstr(ps[t].name, "norm") ? 1.0f + 0.2f * frand() : 0.5f * frand();
	if (lora) {
		struct ft_lora_config lc = { .targets = (1u << FT_LIN_COUNT) - 1,
					     .r = 2,
					     .alpha = 4.0,
					     .dropout = 0.25,
					     .rslora = false };
		FT_ASSERT(ft_model_lora_add(m, &lc, NULL) == FT_OK);
		size_t nl;
		struct ft_param *lp = ft_model_lora_params(m, &nl);
		for (size_t t = 0; t < nl; t++)
			for (size_t i = 0; i < lp[t].n; i++)
				lp[t].data[i] = 0.5f * frand();
	} else {
		FT_ASSERT(ft_model_train_base(m, NULL) == FT_OK);
	}
	ft_model_set_checkpointing(m, every);
	return m;
}

/* Gradients (all trainable tensors, concatenated) and the loss of one step. */
static float *grads_of(struct ft_model *m, size_t *n, double *loss)
{
	struct ft_ce_stats st = { 0 };
	ft_model_zero_grad(m);
	FT_ASSERT(ft_model_forward(m, &batch, 0.1f, 1234, &st, NULL) == FT_OK);
	ft_model_backward(m, &batch);
	*loss = st.loss_sum;
	size_t np, total = 0;
	struct ft_param *ps = ft_model_trainable(m, &np);
	for (size_t t = 0; t < np; t++)
		total += ps[t].n;
	float *g = malloc(total * sizeof(float)), *p = g;
	FT_ASSERT(g);
	for (size_t t = 0; t < np; t++, p += ps[t - 1].n)
		memcpy(p, ps[t].grad, ps[t].n * sizeof(float));
	*n = total;
	return g;
}

static bool same_gradients(bool lora)
{
	size_t n0, n1, n2;
	double l0, l1, l2;
	struct ft_model *m0 = build(lora, 0), *m1 = build(lora, 1), *m2 = build(lora, 2);
	float *g0 = grads_of(m0, &n0, &l0), *g1 = grads_of(m1, &n1, &l1),
	      *g2 = grads_of(m2, &n2, &l2);
	bool ok = n0 == n1 && n0 == n2 && n0 > 0 && l0 == l1 && l0 == l2 &&
		  memcmp(g0, g1, n0 * sizeof(float)) == 0 &&
		  memcmp(g0, g2, n0 * sizeof(float)) == 0;
	double norm = 0;
	for (size_t i = 0; i < n0; i++)
		norm += (double)g0[i] * g0[i];
	ok = ok && norm > 0; /* the comparison is of real gradients */
	if (!ok)
		fprintf(stderr, "loss %.9g / %.9g / %.9g, %zu / %zu / %zu gradients\n", l0, l1, l2,
			n0, n1, n2);
	free(g0), free(g1), free(g2);
	ft_model_free(m0), ft_model_free(m1), ft_model_free(m2);
	return ok;
}

FT_TEST(full_finetune_same_gradients)
{
	FT_CHECK(same_gradients(false));
}

FT_TEST(lora_with_dropout_same_gradients)
{
	FT_CHECK(same_gradients(true));
}

FT_TEST(activation_memory_by_hand)
{
	size_t n;
	double l;
	int every[3] = { 0, 1, 2 };
	size_t want[3] = { 9672, 3408, 7584 };
	for (int i = 0; i < 3; i++) {
		struct ft_model *m = build(false, every[i]);
		free(grads_of(m, &n, &l));
		FT_CHECK_INT(ft_model_activation_bytes(m), want[i] * sizeof(float));
		ft_model_free(m);
	}
}

FT_TEST_MAIN()
