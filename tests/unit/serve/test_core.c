/*
 * test_core.c - ft-serve's batching loop (ft/serve.h) on the bundled tiny
 * model (data/models/ftplat-tiny-cs) with two LoRA adapters of different
 * ranks and targets: many sequences with mixed adapters, submitted at once
 * and in waves, each get exactly the greedy tokens ft_generate (the
 * reference: engine/model/generate.c, the training forward's layer code)
 * gives them alone with that adapter as the model's own; plus cancellation,
 * the queue limit, unknown adapters, the LRU of resident adapters and the
 * checks that name the field.
 */
#include "ft/generate.h"
#include "ft/serve.h"
#include "ftest.h"

#include <pthread.h>
#include <unistd.h>

#define MODEL FT_SOURCE_ROOT "/data/models/ftplat-tiny-cs"
#define NREQ 12
#define MAXTOK 12

static uint64_t rs;
static float frand(void)
{
	rs ^= rs << 13;
	rs ^= rs >> 7;
	rs ^= rs << 17;
	return (float)((rs >> 40) / (double)(1ull << 24)) * 2.0f - 1.0f;
}

/* A PEFT adapter on the tiny model with random A and B (B non-zero, so it
 * changes the text), written to dir. */
static void make_adapter(const char *dir, int r, unsigned targets, uint64_t seed)
{
	struct ft_model *m;
	FT_ASSERT(ft_model_load(MODEL, ft_backend_cpu(), &m, NULL) == FT_OK);
	struct ft_lora_config lc = {
		.targets = targets, .r = r, .alpha = 2.0 * r, .dropout = 0.0, .rslora = false
	};
	FT_ASSERT(ft_model_lora_add(m, &lc, NULL) == FT_OK);
	size_t n;
	struct ft_param *ps = ft_model_lora_params(m, &n);
	rs = seed;
	for (size_t t = 0; t < n; t++)
		for (size_t i = 0; i < ps[t].n; i++)
			ps[t].data[i] = 0.15f * frand();
	FT_ASSERT(ft_model_lora_save_peft(m, dir, NULL, NULL) == FT_OK);
	ft_model_free(m);
}

/* ft_generate's greedy tokens for prompt with the adapter in dir (NULL: none). */
static void reference(const char *dir, const int32_t *prompt, size_t n, int max_new,
		      struct ft_ids_out *out)
{
	struct ft_model *m;
	FT_ASSERT(ft_model_load(MODEL, ft_backend_cpu(), &m, NULL) == FT_OK);
	if (dir)
		FT_ASSERT(ft_model_lora_load_peft(m, dir, NULL) == FT_OK);
	struct ft_gen_opts o = { max_new, 0.0, 1.0, 1 };
	FT_ASSERT(ft_generate(m, prompt, n, &o, out, NULL) == FT_OK);
	ft_model_free(m);
}

struct result {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int32_t ids[64];
	int n;
	bool done;
	struct ft_srv_done d;
	int stop_after; /* on_token says stop after this many (0: never) */
};

static bool on_token(void *ctx, const struct ft_sample_out *t)
{
	struct result *r = ctx;
	pthread_mutex_lock(&r->mu);
	if (r->n < 64)
		r->ids[r->n++] = t->id;
	bool go = !(r->stop_after && r->n >= r->stop_after);
	pthread_mutex_unlock(&r->mu);
	return go;
}

static void on_done(void *ctx, const struct ft_srv_done *d)
{
	struct result *r = ctx;
	pthread_mutex_lock(&r->mu);
	r->d = *d;
	r->done = true;
	pthread_cond_signal(&r->cv);
	pthread_mutex_unlock(&r->mu);
}

static void wait_done(struct result *r)
{
	pthread_mutex_lock(&r->mu);
	while (!r->done)
		pthread_cond_wait(&r->cv, &r->mu);
	pthread_mutex_unlock(&r->mu);
}

static void result_init(struct result *r)
{
	memset(r, 0, sizeof(*r));
	pthread_mutex_init(&r->mu, NULL);
	pthread_cond_init(&r->cv, NULL);
}

static struct ft_srv_req req_for(const char *adapter, const int32_t *p, size_t n, int max_tok,
				 struct result *r)
{
	struct ft_srv_req q = { .adapter = adapter,
				.prompt = p,
				.n_prompt = n,
				.max_tokens = max_tok,
				.sampling = { .top_p = 1 },
				.seed = 1,
				.on_token = on_token,
				.on_done = on_done,
				.ctx = r };
	return q;
}

/* Prompts of various lengths from the tokenizer's id range. */
static size_t prompt_of(int i, int32_t *p)
{
	size_t n = 3 + (size_t)(i * 7) % 29;
	for (size_t k = 0; k < n; k++)
		p[k] = (int32_t)(5 + (i * 131 + (int)k * 17) % 4000);
	return n;
}

static void run_batch(int *ftest_failed, int prefill_chunk, int max_seqs)
{
	char d1[] = "/tmp/ftsrv-a1-XXXXXX", d2[] = "/tmp/ftsrv-a2-XXXXXX";
	FT_ASSERT(mkdtemp(d1) && mkdtemp(d2));
	make_adapter(d1, 4, (1u << FT_LIN_Q) | (1u << FT_LIN_V), 3);
	make_adapter(d2, 8, (1u << FT_LIN_COUNT) - 1, 4);
	struct ft_srv_opts o;
	ft_srv_opts_default(&o);
	o.model_dir = MODEL;
	o.max_seqs = max_seqs;
	o.max_len = 128;
	o.prefill_chunk = prefill_chunk;
	struct ft_srv *s;
	struct ft_err e;
	ft_err_clear(&e);
	FT_ASSERT(ft_srv_new(&o, &s, &e) == FT_OK);
	FT_CHECK(ft_srv_adapter_load(s, "a1", d1, &e) == FT_OK);
	FT_CHECK(ft_srv_adapter_load(s, "a2", d2, &e) == FT_OK);
	static const char *names[3] = { "a1", "a2", NULL };
	const char *dirs[3] = { d1, d2, NULL };
	static struct result res[NREQ];
	int32_t prompts[NREQ][64];
	size_t lens[NREQ];
	uint64_t ids[NREQ];
	for (int i = 0; i < NREQ; i++) {
		lens[i] = prompt_of(i, prompts[i]);
		result_init(&res[i]);
		struct ft_srv_req q = req_for(names[i % 3], prompts[i], lens[i], MAXTOK, &res[i]);
		FT_CHECK(ft_srv_submit(s, &q, &ids[i], &e) == FT_OK);
		if (i == NREQ / 2) /* a second wave joins while the first generates */
			usleep(20000);
	}
	/* the references run after the server is idle: the CPU backend's thread
	 * pool serves one model at a time (ft-serve runs its model on one
	 * thread, the loop) */
	for (int i = 0; i < NREQ; i++)
		wait_done(&res[i]);
	int same = 0;
	for (int i = 0; i < NREQ; i++) {
		struct ft_ids_out ref;
		reference(dirs[i % 3], prompts[i], lens[i], MAXTOK, &ref);
		bool eq = (size_t)res[i].n == ref.n;
		for (size_t k = 0; eq && k < ref.n; k++)
			eq = res[i].ids[k] == ref.ids[k];
		if (!eq)
			fprintf(stderr, "request %d (adapter %s): %d tokens vs %zu alone\n", i,
				names[i % 3] ? names[i % 3] : "none", res[i].n, ref.n);
		same += eq;
		FT_CHECK_INT(res[i].d.prompt_tokens, lens[i]);
		FT_CHECK_INT(res[i].d.completion_tokens, res[i].n);
		FT_CHECK(res[i].d.finish == FT_FINISH_LENGTH || res[i].d.finish == FT_FINISH_STOP);
		free(ref.ids);
	}
	printf("prefill_chunk %d, %d slots: %d of %d requests token-identical to generating "
	       "alone\n",
	       prefill_chunk, max_seqs, same, NREQ);
	FT_CHECK_INT(same, NREQ);
	struct ft_srv_stats st;
	ft_srv_stats(s, &st);
	FT_CHECK_INT(st.running, 0);
	FT_CHECK_INT(st.kv_positions_used, 0);
	FT_CHECK(st.steps > 0);
	ft_srv_free(s);
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf %s %s", d1, d2);
	FT_ASSERT(system(cmd) == 0);
}

FT_TEST(mixed_adapters_batched_equal_generating_alone)
{
	run_batch(ftest_failed, 512, 16);
}

FT_TEST(chunked_prefill_and_few_slots_change_no_token)
{
	/* prompts read 5 tokens a step beside the generating sequences, and only
	 * 3 sequences fit at once: the rest wait in the queue */
	run_batch(ftest_failed, 5, 3);
}

FT_TEST(cancel_stop_queue_and_adapter_errors)
{
	struct ft_srv_opts o;
	ft_srv_opts_default(&o);
	o.model_dir = MODEL;
	o.max_seqs = 1;
	o.max_len = 64;
	o.max_queue = 2;
	o.max_adapters = 1;
	struct ft_srv *s;
	struct ft_err e;
	ft_err_clear(&e);
	FT_ASSERT(ft_srv_new(&o, &s, &e) == FT_OK);
	int32_t p[8] = { 10, 11, 12, 13, 14, 15, 16, 17 };
	/* the callback's "stop" ends a sequence with finish stop */
	struct result a;
	result_init(&a);
	a.stop_after = 2;
	struct ft_srv_req q = req_for(NULL, p, 8, 40, &a);
	uint64_t id;
	FT_CHECK(ft_srv_submit(s, &q, &id, &e) == FT_OK);
	wait_done(&a);
	FT_CHECK_INT(a.n, 2);
	FT_CHECK(a.d.finish == FT_FINISH_STOP);
	/* one slot busy with a long request, two queued, the fourth is refused */
	struct result b[4];
	uint64_t bid[4];
	for (int i = 0; i < 4; i++) {
		result_init(&b[i]);
		q = req_for(NULL, p, 8, 50, &b[i]);
		ft_err_clear(&e);
		enum ft_rc rc = ft_srv_submit(s, &q, &bid[i], &e);
		if (i < 3)
			FT_CHECK(rc == FT_OK);
		else
			FT_CHECK(rc == FT_ELIMIT && strcmp(e.code, "server_busy") == 0);
		if (i == 0)
			usleep(20000); /* let it take the slot */
	}
	for (int i = 0; i < 3; i++)
		ft_srv_cancel(s, bid[i]);
	for (int i = 0; i < 3; i++) {
		wait_done(&b[i]);
		FT_CHECK(b[i].d.finish == FT_FINISH_CANCELLED);
		FT_CHECK(b[i].n < 50);
	}
	struct ft_srv_stats st;
	ft_srv_stats(s, &st);
	FT_CHECK_INT(st.running + st.queued, 0);
	/* checks name the field */
	struct result c;
	result_init(&c);
	q = req_for("nope", p, 8, 4, &c);
	ft_err_clear(&e);
	FT_CHECK(ft_srv_submit(s, &q, &id, &e) == FT_ENOTFOUND);
	FT_CHECK_STR(e.param, "model");
	q = req_for(NULL, p, 8, 0, &c);
	ft_err_clear(&e);
	FT_CHECK(ft_srv_submit(s, &q, &id, &e) == FT_EINVAL);
	FT_CHECK_STR(e.param, "max_tokens");
	int32_t longp[64] = { 0 };
	q = req_for(NULL, longp, 64, 4, &c);
	ft_err_clear(&e);
	FT_CHECK(ft_srv_submit(s, &q, &id, &e) == FT_EINVAL);
	FT_CHECK_STR(e.code, "context_length_exceeded");
	q = req_for(NULL, p, 8, 4, &c);
	q.sampling.temperature = 3;
	ft_err_clear(&e);
	FT_CHECK(ft_srv_submit(s, &q, &id, &e) == FT_EINVAL);
	FT_CHECK_STR(e.param, "temperature");
	/* one resident adapter: loading a second evicts the unused first */
	char d1[] = "/tmp/ftsrv-l1-XXXXXX", d2[] = "/tmp/ftsrv-l2-XXXXXX";
	FT_ASSERT(mkdtemp(d1) && mkdtemp(d2));
	make_adapter(d1, 2, 1u << FT_LIN_O, 9);
	make_adapter(d2, 2, 1u << FT_LIN_O, 10);
	FT_CHECK(ft_srv_adapter_load(s, "x", d1, &e) == FT_OK);
	ft_err_clear(&e);
	FT_CHECK(ft_srv_adapter_load(s, "x", d1, &e) == FT_ECONFLICT);
	FT_CHECK(ft_srv_adapter_load(s, "y", d2, &e) == FT_OK);
	FT_CHECK(!ft_srv_has_adapter(s, "x") && ft_srv_has_adapter(s, "y"));
	ft_err_clear(&e);
	FT_CHECK(ft_srv_adapter_unload(s, "x", &e) == FT_ENOTFOUND);
	FT_CHECK(ft_srv_adapter_unload(s, "y", &e) == FT_OK);
	ft_srv_free(s);
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf %s %s", d1, d2);
	FT_ASSERT(system(cmd) == 0);
}

FT_TEST_MAIN()
