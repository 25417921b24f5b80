/*
 * test_step.c - one forward for training, generation and serving
 * (engine/model/step.c, ft/model.h "cached inference").
 *
 * The reference is the training forward (ft_model_forward on the whole
 * prefix: the code tests/system/test_engine_peer.py holds to PyTorch within
 * 1e-4). Cached inference must give the same logits:
 *   - one token at a time through a KV cache, and the prompt prefilled in
 *     one step, with no adapter, with the model's own adapter, and with the
 *     Mistral sliding window;
 *   - a step mixing three sequences (two adapters loaded from PEFT folders
 *     and none) gives each row the logits it gets alone, and those equal
 *     the training forward of a model that carries that adapter as its own;
 *   - batched generation (ft_generate_batch: prompts of different lengths,
 *     the own adapter or none per prompt, in waves) gives each prompt
 *     exactly the tokens ft_generate gives it alone, greedy and sampled.
 * The GEMM sums every output element in a fixed order whatever the number
 * of rows (cpu/matmul.c), so the only differences allowed come from the
 * attention (blocked online softmax in training, one row at a time in
 * decode): max |a - b| <= 2e-5 on logits of magnitude ~1 (fp32). Rows of a
 * mixed step and the same rows alone must agree exactly.
 */
#include "ftest.h"
#include "ft/generate.h"
#include "ft/model.h"

#include <math.h>
#include <unistd.h>

static uint64_t rs;
static float frand(void)
{
	rs ^= rs << 13;
	rs ^= rs >> 7;
	rs ^= rs << 17;
	return (float)((rs >> 40) / (double)(1ull << 24)) * 2.0f - 1.0f;
}

static struct ft_model_config tiny(int window)
{
	struct ft_model_config c = { 0 };
	c.vocab_size = 29;
	c.hidden_size = 32;
	c.intermediate_size = 40;
	c.num_layers = 3;
	c.num_heads = 4;
	c.num_kv_heads = 2;
	c.head_dim = 8;
	c.max_position_embeddings = 64;
	c.rms_norm_eps = 1e-6;
	c.rope_theta = 10000;
	c.tie_word_embeddings = true;
	c.qkv_bias = true;
	c.pad_token_id = -1;
	c.bos_token_id = -1;
	c.sliding_window = window;
	return c;
}

static void fill(struct ft_param *ps, size_t n, uint64_t seed, float scale)
{
	rs = seed;
	for (size_t t = 0; t < n; t++)
		for (size_t i = 0; i < ps[t].n; i++)
			ps[t].data[i] = strstr(ps[t].name, "norm") ? 1.0f + 0.1f * frand()
								   : scale * frand();
}

static struct ft_model *base(int window)
{
	struct ft_model_config c = tiny(window);
	struct ft_model *m;
	FT_ASSERT(ft_model_new(&c, ft_backend_cpu(), &m, NULL) == FT_OK);
	size_t n;
	struct ft_param *ps = ft_model_params(m, &n);
	fill(ps, n, 0x9e3779b97f4a7c15ull, 0.3f);
	return m;
}

static void add_adapter(struct ft_model *m, int r, unsigned targets, uint64_t seed)
{
	struct ft_lora_config lc = {
		.targets = targets, .r = r, .alpha = 2.0 * r, .dropout = 0.0, .rslora = false
	};
	FT_ASSERT(ft_model_lora_add(m, &lc, NULL) == FT_OK);
	size_t n;
	struct ft_param *ps = ft_model_lora_params(m, &n);
	fill(ps, n, seed, 0.4f); /* B random too, so the adapter changes the logits */
}

#define L 17
static const int32_t prompt[L] = { 3, 17, 9, 28, 1, 0, 22, 5, 5, 14, 11, 2, 26, 8, 19, 7, 4 };

/* Training-forward logits of prompt[0..len) [len, V]. */
static float *train_logits(struct ft_model *m, const int32_t *ids, int len)
{
	int V = ft_model_config(m)->vocab_size;
	struct ft_batch b = { 1, len, ids, NULL, NULL, NULL };
	FT_ASSERT(ft_model_forward(m, &b, 0.0f, 0, NULL, NULL) == FT_OK);
	float *out = ft_xcalloc((size_t)len * V, sizeof(float));
	ft_model_read(m, out, ft_model_logits(m), (size_t)len * V);
	return out;
}

static double maxdiff(const float *a, const float *b, size_t n)
{
	double d = 0;
	for (size_t i = 0; i < n; i++)
		d = fmax(d, fabs((double)a[i] - b[i]));
	return d;
}

/* Cached logits of ids[0..len) [len, V]: the first `prefill` tokens in one
 * step, then one token per step; adapter -2: the own adapter (no index). */
static float *cached_alone(struct ft_model *m, const int32_t *ids, int len, int adapter,
			   int prefill)
{
	int V = ft_model_config(m)->vocab_size;
	struct ft_kv_cache *kv;
	FT_ASSERT(ft_kv_cache_new(m, 2, 40, &kv, NULL) == FT_OK);
	float *out = ft_xcalloc((size_t)len * V, sizeof(float));
	int32_t pos[40], slot[40], ad[40];
	for (int i = 0; i < 40; i++)
		pos[i] = i, slot[i] = 1, ad[i] = adapter;
	for (int p = 0; p < len;) {
		int n = p == 0 && prefill > 1 ? prefill : 1;
		struct ft_step st = {
			n, ids + p, pos + p, slot, adapter == -2 ? NULL : ad, NULL, 0
		};
		FT_ASSERT(ft_model_step(m, kv, &st, NULL) == FT_OK);
		ft_model_read(m, out + (size_t)p * V, ft_model_step_logits(m), (size_t)n * V);
		p += n;
	}
	FT_ASSERT(ft_kv_cache_len(kv, 1) == len && ft_kv_cache_len(kv, 0) == 0);
	ft_kv_cache_free(kv);
	return out;
}

static void check_prefix(int *ftest_failed, struct ft_model *m, const char *what)
{
	int V = ft_model_config(m)->vocab_size;
	float *ref = train_logits(m, prompt, L);
	float *one = cached_alone(m, prompt, L, -2, 1);
	/* the prompt in one step, every row's logits */
	struct ft_kv_cache *kv;
	FT_ASSERT(ft_kv_cache_new(m, 1, L, &kv, NULL) == FT_OK);
	int32_t pos[L], slot[L];
	for (int i = 0; i < L; i++)
		pos[i] = i, slot[i] = 0;
	struct ft_step st = { L, prompt, pos, slot, NULL, NULL, 0 };
	FT_ASSERT(ft_model_step(m, kv, &st, NULL) == FT_OK);
	float *pre = ft_xcalloc((size_t)L * V, sizeof(float));
	ft_model_read(m, pre, ft_model_step_logits(m), (size_t)L * V);
	double d1 = maxdiff(ref, one, (size_t)L * V), d2 = maxdiff(ref, pre, (size_t)L * V);
	printf("%s: max |train - cached one by one| %.3g, |train - prefill| %.3g\n", what, d1, d2);
	ft_kv_cache_free(kv);
	free(ref);
	free(one);
	free(pre);
	FT_CHECK(d1 <= 2e-5);
	FT_CHECK(d2 <= 2e-5);
}

FT_TEST(cached_logits_equal_training_forward_base)
{
	struct ft_model *m = base(0);
	check_prefix(ftest_failed, m, "base");
	ft_model_free(m);
}

FT_TEST(cached_logits_equal_training_forward_lora)
{
	struct ft_model *m = base(0);
	add_adapter(m, 4, (1u << FT_LIN_Q) | (1u << FT_LIN_V) | (1u << FT_LIN_DOWN), 11);
	check_prefix(ftest_failed, m, "own adapter");
	/* disabled, the adapter is gone from the cached path too */
	ft_model_lora_enable(m, false);
	check_prefix(ftest_failed, m, "own adapter disabled");
	ft_model_free(m);
}

FT_TEST(cached_logits_equal_training_forward_window)
{
	struct ft_model *m = base(5);
	check_prefix(ftest_failed, m, "sliding window 5");
	ft_model_free(m);
}

/* A slot that held one prompt, cut back to the 9 tokens another prompt
 * shares with it: the other prompt's remaining rows, run after the kept
 * ones, give the logits of that prompt prefilled alone (within the 2e-5 of
 * a chunked prefill); cutting to more than it holds changes nothing. */
FT_TEST(a_truncated_slot_continues_another_prompt_with_the_same_prefix)
{
	struct ft_model *m = base(0);
	add_adapter(m, 4, (1u << FT_LIN_Q) | (1u << FT_LIN_UP), 13);
	int V = ft_model_config(m)->vocab_size;
	int32_t other[L];
	memcpy(other, prompt, sizeof other);
	for (int i = 9; i < L; i++)
		other[i] = (prompt[i] + 5) % 30;
	struct ft_kv_cache *kv;
	FT_ASSERT(ft_kv_cache_new(m, 2, 40, &kv, NULL) == FT_OK);
	int32_t pos[L], slot[L];
	for (int i = 0; i < L; i++)
		pos[i] = i, slot[i] = 1;
	struct ft_step st = { L, prompt, pos, slot, NULL, NULL, 0 };
	FT_ASSERT(ft_model_step(m, kv, &st, NULL) == FT_OK);
	ft_kv_cache_truncate(kv, 1, L + 3);
	FT_CHECK_INT(ft_kv_cache_len(kv, 1), L);
	ft_kv_cache_truncate(kv, 1, 9);
	FT_CHECK_INT(ft_kv_cache_len(kv, 1), 9);
	struct ft_step rest = { L - 9, other + 9, pos + 9, slot, NULL, NULL, 0 };
	FT_ASSERT(ft_model_step(m, kv, &rest, NULL) == FT_OK);
	FT_CHECK_INT(ft_kv_cache_len(kv, 1), L);
	float *got = ft_xcalloc((size_t)(L - 9) * V, sizeof(float));
	ft_model_read(m, got, ft_model_step_logits(m), (size_t)(L - 9) * V);
	float *ref = train_logits(m, other, L);
	double d = maxdiff(ref + (size_t)9 * V, got, (size_t)(L - 9) * V);
	printf("max |prefilled alone - after a kept prefix of 9| %.3g\n", d);
	FT_CHECK(d <= 2e-5);
	free(got);
	free(ref);
	ft_kv_cache_free(kv);
	ft_model_free(m);
}

/* ft-serve's prefix cache across slots: slot 0 runs one prompt; slot 1,
 * which held other tokens, takes the first 9 positions of slot 0 and runs
 * the rest of another prompt that shares them: its logits are that prompt's
 * prefilled alone (the 2e-5 of a chunked prefill), and slot 0 is untouched
 * (its next token's logits are the training forward's). A copy of more than
 * the source holds, or onto itself, changes nothing. */
FT_TEST(a_slot_continues_from_the_prefix_copied_from_another)
{
	struct ft_model *m = base(0);
	add_adapter(m, 4, (1u << FT_LIN_K) | (1u << FT_LIN_DOWN), 17);
	int V = ft_model_config(m)->vocab_size;
	int32_t other[L + 1], longer[L + 1];
	memcpy(other, prompt, sizeof(int32_t) * L);
	memcpy(longer, prompt, sizeof(int32_t) * L);
	for (int i = 9; i < L; i++)
		other[i] = (prompt[i] + 7) % 30;
	longer[L] = 12;
	struct ft_kv_cache *kv;
	FT_ASSERT(ft_kv_cache_new(m, 2, 40, &kv, NULL) == FT_OK);
	int32_t pos[L + 1], s0[L + 1], s1[L + 1];
	for (int i = 0; i <= L; i++)
		pos[i] = i, s0[i] = 0, s1[i] = 1;
	struct ft_step a = { L, prompt, pos, s0, NULL, NULL, 0 };
	FT_ASSERT(ft_model_step(m, kv, &a, NULL) == FT_OK);
	struct ft_step junk = { 5, other + 11, pos, s1, NULL, NULL, 0 };
	FT_ASSERT(ft_model_step(m, kv, &junk, NULL) == FT_OK);
	ft_kv_cache_copy(kv, 1, 0, L + 1); /* more than slot 0 holds */
	ft_kv_cache_copy(kv, 0, 0, 3); /* onto itself */
	FT_CHECK_INT(ft_kv_cache_len(kv, 1), 5);
	FT_CHECK_INT(ft_kv_cache_len(kv, 0), L);
	ft_kv_cache_copy(kv, 1, 0, 9);
	FT_CHECK_INT(ft_kv_cache_len(kv, 1), 9);
	FT_CHECK_INT(ft_kv_cache_len(kv, 0), L);
	struct ft_step rest = { L - 9, other + 9, pos + 9, s1, NULL, NULL, 0 };
	FT_ASSERT(ft_model_step(m, kv, &rest, NULL) == FT_OK);
	float *got = ft_xcalloc((size_t)(L - 9) * V, sizeof(float));
	ft_model_read(m, got, ft_model_step_logits(m), (size_t)(L - 9) * V);
	float *ref = train_logits(m, other, L);
	double d = maxdiff(ref + (size_t)9 * V, got, (size_t)(L - 9) * V);
	struct ft_step next = { 1, longer + L, pos + L, s0, NULL, NULL, 0 };
	FT_ASSERT(ft_model_step(m, kv, &next, NULL) == FT_OK);
	float *got0 = ft_xcalloc((size_t)V, sizeof(float));
	ft_model_read(m, got0, ft_model_step_logits(m), (size_t)V);
	float *ref0 = train_logits(m, longer, L + 1);
	double d0 = maxdiff(ref0 + (size_t)L * V, got0, (size_t)V);
	printf("max |prefilled alone - after 9 positions copied| %.3g, |source slot's next| %.3g\n",
	       d, d0);
	FT_CHECK(d <= 2e-5);
	FT_CHECK(d0 <= 2e-5);
	FT_CHECK_INT(ft_kv_cache_len(kv, 1), L);
	FT_CHECK_INT(ft_kv_cache_len(kv, 0), L + 1);
	free(got);
	free(ref);
	free(got0);
	free(ref0);
	ft_kv_cache_free(kv);
	ft_model_free(m);
}

FT_TEST(generate_continues_the_training_forward_greedily)
{
	/* each greedy token is the argmax of the training forward's last row */
	struct ft_model *m = base(0);
	add_adapter(m, 2, 1u << FT_LIN_O, 5);
	struct ft_gen_opts o = { 8, 0.0, 1.0, 1 };
	struct ft_ids_out out;
	FT_ASSERT(ft_generate(m, prompt, 6, &o, &out, NULL) == FT_OK);
	int32_t seq[6 + 8];
	memcpy(seq, prompt, sizeof(int32_t) * 6);
	int V = ft_model_config(m)->vocab_size;
	for (size_t t = 0; t < out.n; t++) {
		float *lg = train_logits(m, seq, 6 + (int)t);
		const float *row = lg + (size_t)(5 + t) * V;
		int best = 0;
		for (int v = 1; v < V; v++)
			if (row[v] > row[best])
				best = v;
		free(lg);
		FT_CHECK_INT(out.ids[t], best);
		seq[6 + t] = out.ids[t];
	}
	FT_CHECK_INT(out.n, 8);
	free(out.ids);
	ft_model_free(m);
}

FT_TEST(generate_batch_equals_each_prompt_alone)
{
	/* five prompts of different lengths, with the own adapter (slot 0) or the
	 * base alone (-1), in waves of 2 and all at once, greedy and sampled:
	 * each sequence gets exactly what ft_generate gives it alone (seed + i) */
	struct ft_model *m = base(0);
	add_adapter(m, 4, (1u << FT_LIN_Q) | (1u << FT_LIN_V) | (1u << FT_LIN_DOWN), 11);
	struct ft_gen_prompt p[5] = { { prompt, 7 },
				      { prompt + 2, 3 },
				      { prompt + 5, 9 },
				      { prompt + 1, 1 },
				      { prompt + 4, 12 } };
	int32_t ad[5] = { 0, -1, 0, -1, 0 };
	struct ft_gen_opts modes[2] = { { 6, 0.0, 1.0, 3 }, { 6, 0.8, 0.9, 7 } };
	int differ = 0;
	for (int mode = 0; mode < 2; mode++) {
		struct ft_ids_out alone[5];
		for (int i = 0; i < 5; i++) {
			struct ft_gen_opts o = modes[mode];
			o.seed += (uint64_t)i;
			ft_model_lora_enable(m, ad[i] == 0);
			FT_ASSERT(ft_generate(m, p[i].ids, p[i].n, &o, &alone[i], NULL) == FT_OK);
		}
		ft_model_lora_enable(m, true);
		for (int max_batch = 0; max_batch <= 2; max_batch += 2) {
			struct ft_ids_out out[5];
			FT_ASSERT(ft_generate_batch(m, p, 5, ad, max_batch, &modes[mode], out,
						    NULL) == FT_OK);
			for (int i = 0; i < 5; i++) {
				FT_CHECK_INT(out[i].n, 6);
				FT_CHECK(out[i].n == alone[i].n &&
					 memcmp(out[i].ids, alone[i].ids,
						sizeof(int32_t) * out[i].n) == 0);
				free(out[i].ids);
			}
		}
		/* the adapter matters: prompt 0 without it answers otherwise */
		struct ft_ids_out base0;
		ft_model_lora_enable(m, false);
		FT_ASSERT(ft_generate(m, p[0].ids, p[0].n, &modes[mode], &base0, NULL) == FT_OK);
		ft_model_lora_enable(m, true);
		differ += memcmp(base0.ids, alone[0].ids, sizeof(int32_t) * 6) != 0;
		free(base0.ids);
		for (int i = 0; i < 5; i++)
			free(alone[i].ids);
	}
	FT_CHECK(differ > 0);
	/* NULL adapters: every row uses the own adapter, as ft_generate does */
	struct ft_ids_out own[5], one;
	FT_ASSERT(ft_generate_batch(m, p, 5, NULL, 0, &modes[0], own, NULL) == FT_OK);
	struct ft_gen_opts o = modes[0];
	o.seed += 2;
	FT_ASSERT(ft_generate(m, p[2].ids, p[2].n, &o, &one, NULL) == FT_OK);
	FT_CHECK(memcmp(own[2].ids, one.ids, sizeof(int32_t) * 6) == 0);
	free(one.ids);
	for (int i = 0; i < 5; i++)
		free(own[i].ids);
	/* a bad prompt is named by its number, and nothing is returned */
	struct ft_err err;
	ft_err_clear(&err);
	struct ft_gen_prompt bad[3] = { { prompt, 4 }, { prompt, 2 }, { prompt, 0 } };
	struct ft_ids_out out[3];
	FT_CHECK(ft_generate_batch(m, bad, 3, NULL, 0, &modes[0], out, &err) == FT_EINVAL);
	FT_CHECK(strstr(err.msg, "prompt 3: the prompt is empty") != NULL);
	FT_CHECK(out[0].ids == NULL && out[0].n == 0);
	ft_err_clear(&err);
	struct ft_gen_prompt far = { prompt, L };
	struct ft_gen_opts longer = { 100, 0.0, 1.0, 0 };
	FT_CHECK(ft_generate_batch(m, &far, 1, NULL, 0, &longer, out, &err) == FT_EINVAL);
	FT_CHECK(strstr(err.msg, "exceed the model's 64 positions") != NULL);
	ft_model_free(m);
}

FT_TEST(mixed_adapters_in_one_step_match_each_row_alone)
{
	char d1[] = "/tmp/ftstep-a1-XXXXXX", d2[] = "/tmp/ftstep-a2-XXXXXX";
	FT_ASSERT(mkdtemp(d1) && mkdtemp(d2));
	/* two adapters of different ranks and targets, trained "elsewhere" */
	unsigned t1 = (1u << FT_LIN_Q) | (1u << FT_LIN_V);
	unsigned t2 = (1u << FT_LIN_COUNT) - 1;
	struct ft_model *m1 = base(0), *m2 = base(0), *srv = base(0);
	add_adapter(m1, 4, t1, 21);
	add_adapter(m2, 8, t2, 22);
	FT_ASSERT(ft_model_lora_save_peft(m1, d1, NULL, NULL) == FT_OK);
	FT_ASSERT(ft_model_lora_save_peft(m2, d2, NULL, NULL) == FT_OK);
	int s1, s2;
	FT_ASSERT(ft_model_adapter_load_peft(srv, d1, &s1, NULL) == FT_OK);
	FT_ASSERT(ft_model_adapter_load_peft(srv, d2, &s2, NULL) == FT_OK);
	FT_CHECK_INT(s1, 1);
	FT_CHECK_INT(s2, 2);
	FT_CHECK(ft_model_lora(srv) == NULL && ft_model_adapter(srv, 2)->r == 8);
	int V = ft_model_config(srv)->vocab_size;

	/* references: each sequence alone (cached: the same 5-token prefill,
	 * then one token per step), and the training forward of
	 * a model that carries the adapter as its own */
	const int32_t *seq[3] = { prompt, prompt + 3, prompt + 1 };
	int ad[3] = { s1, s2, -1 }, len = 12;
	float *alone[3], *train[3];
	struct ft_model *owners[3] = { m1, m2, NULL };
	struct ft_model *plain = base(0);
	for (int q = 0; q < 3; q++) {
		alone[q] = cached_alone(srv, seq[q], len, ad[q], 5);
		train[q] = train_logits(owners[q] ? owners[q] : plain, seq[q], len);
	}
	/* together: prefill 5 tokens of each in one step (rows interleaved by
	 * sequence, adapters in runs), then one token of each per step */
	struct ft_kv_cache *kv;
	FT_ASSERT(ft_kv_cache_new(srv, 3, 40, &kv, NULL) == FT_OK);
	float *mixed[3];
	for (int q = 0; q < 3; q++)
		mixed[q] = ft_xcalloc((size_t)len * V, sizeof(float));
	int32_t ids[15], pos[15], slot[15], rad[15];
	for (int q = 0, i = 0; q < 3; q++)
		for (int p = 0; p < 5; p++, i++)
			ids[i] = seq[q][p], pos[i] = p, slot[i] = 2 - q, rad[i] = ad[q];
	struct ft_step st = { 15, ids, pos, slot, rad, NULL, 0 };
	FT_ASSERT(ft_model_step(srv, kv, &st, NULL) == FT_OK);
	float *lg = ft_xcalloc((size_t)15 * V, sizeof(float));
	ft_model_read(srv, lg, ft_model_step_logits(srv), (size_t)15 * V);
	for (int q = 0; q < 3; q++)
		memcpy(mixed[q], lg + (size_t)q * 5 * V, sizeof(float) * 5 * (size_t)V);
	for (int p = 5; p < len; p++) {
		/* the rows in another order each step: the last sequence first */
		for (int i = 0; i < 3; i++) {
			int q = (i + p) % 3;
			ids[i] = seq[q][p], pos[i] = p, slot[i] = 2 - q, rad[i] = ad[q];
		}
		int32_t want[2] = { 2, 0 }; /* logits of two rows, in this order */
		struct ft_step s3 = { 3, ids, pos, slot, rad, want, 2 };
		FT_ASSERT(ft_model_step(srv, kv, &s3, NULL) == FT_OK);
		ft_model_read(srv, lg, ft_model_step_logits(srv), (size_t)2 * V);
		memcpy(mixed[(2 + p) % 3] + (size_t)p * V, lg, sizeof(float) * (size_t)V);
		memcpy(mixed[p % 3] + (size_t)p * V, lg + V, sizeof(float) * (size_t)V);
		/* the third row's logits again, alone in a step of its own slot */
		int q = (1 + p) % 3;
		int32_t id1 = seq[q][p], p1 = p, sl1 = 2 - q, a1 = ad[q];
		struct ft_step s1r = { 1, &id1, &p1, &sl1, &a1, NULL, 0 };
		FT_ASSERT(ft_model_step(srv, kv, &s1r, NULL) == FT_OK);
		ft_model_read(srv, mixed[q] + (size_t)p * V, ft_model_step_logits(srv), (size_t)V);
	}
	for (int q = 0; q < 3; q++) {
		double da = maxdiff(mixed[q], alone[q], (size_t)len * V);
		double dt = maxdiff(mixed[q], train[q], (size_t)len * V);
		double dr = maxdiff(alone[q], train[q], (size_t)len * V);
		printf("sequence %d (adapter slot %d): |mixed - alone| %.3g, |mixed - training| "
		       "%.3g, "
		       "|alone - training| %.3g\n",
		       q, ad[q], da, dt, dr);
		FT_CHECK(da == 0.0);
		FT_CHECK(dt <= 2e-5);
	}
	/* the adapters matter: sequence 0 with adapter 1 differs from the base */
	float *b0 = train_logits(plain, seq[0], len);
	FT_CHECK(maxdiff(b0, train[0], (size_t)len * V) > 1e-2);
	free(b0);
	/* bad rows are refused before anything runs */
	struct ft_err err;
	ft_err_clear(&err);
	int32_t bad_ad = 5, p0 = 0, s0 = 0, id0 = 1;
	struct ft_step sb = { 1, &id0, &p0, &s0, &bad_ad, NULL, 0 };
	FT_CHECK(ft_model_step(srv, kv, &sb, &err) == FT_EINVAL);
	FT_CHECK(strstr(err.msg, "no adapter in slot 5") != NULL);
	int32_t gap = 30;
	struct ft_step sg = { 1, &id0, &gap, &s0, NULL, NULL, 0 };
	ft_err_clear(&err);
	FT_CHECK(ft_model_step(srv, kv, &sg, &err) == FT_EINVAL);
	FT_CHECK(strstr(err.msg, "follows a gap") != NULL);
	/* unloading frees the slot for the next adapter */
	ft_model_adapter_unload(srv, s1);
	FT_CHECK(ft_model_adapter(srv, s1) == NULL);
	int s3;
	FT_ASSERT(ft_model_adapter_load_peft(srv, d1, &s3, NULL) == FT_OK);
	FT_CHECK_INT(s3, 1);

	ft_kv_cache_free(kv);
	free(lg);
	for (int q = 0; q < 3; q++) {
		free(alone[q]);
		free(train[q]);
		free(mixed[q]);
	}
	ft_model_free(m1);
	ft_model_free(m2);
	ft_model_free(srv);
	ft_model_free(plain);
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf %s %s", d1, d2);
	FT_ASSERT(system(cmd) == 0);
}

FT_TEST_MAIN()
