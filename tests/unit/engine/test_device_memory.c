/*
 * test_device_memory.c - the guarded CPU backend really traps host access
 * to its memory (so tests/system/test_device_memory.py, which runs whole
 * jobs on it, cannot pass vacuously), its operations give the CPU's values,
 * and device names select backends.
 *
 * A trap is checked in a forked child: its SIGSEGV handler exits 42 when
 * the faulting address is the guarded one (43 for any other fault); a
 * child that survives the access exits 0. An op given a host tensor must
 * abort (SIGABRT).
 */
#include "ftest.h"
#include "ft/model.h"

#include <math.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *volatile g_lo, *volatile g_hi;

static void on_segv(int sig, siginfo_t *si, void *ctx)
{
	(void)sig, (void)ctx;
	const char *a = si->si_addr;
	_exit(a >= g_lo && a < g_hi ? 42 : 43);
}

enum access { READ_IT, WRITE_IT };

/* Exit status of a child that touches p[0..bytes) from host code. */
static int child_touch(const void *p, size_t bytes, enum access how)
{
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		struct sigaction sa = { 0 };
		sa.sa_sigaction = on_segv;
		sa.sa_flags = SA_SIGINFO;
		sigemptyset(&sa.sa_mask);
		sigaction(SIGSEGV, &sa, NULL);
		sigaction(SIGBUS, &sa, NULL);
		g_lo = p;
		g_hi = (const char *)p + bytes;
		volatile float *f = (volatile float *)(uintptr_t)p;
		if (how == WRITE_IT)
			f[1] = 1.0f;
		else if (f[1] == 12345.0f)
			_exit(1);
		_exit(0);
	}
	int st = 0;
	if (pid < 0 || waitpid(pid, &st, 0) != pid)
		return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 100 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
}

FT_TEST(guarded_memory_traps_host_reads_and_writes)
{
	const struct ft_backend *be = ft_backend_cpu_guarded();
	FT_CHECK(!be->host_memory);
	float *p = be->alloc(1000 * sizeof(float));
	FT_CHECK(p != NULL);
	FT_CHECK_INT(child_touch(p, 1000 * sizeof(float), WRITE_IT), 42);
	FT_CHECK_INT(child_touch(p, 1000 * sizeof(float), READ_IT), 42);
	/* the same accesses on the plain CPU backend's memory are fine */
	const struct ft_backend *cpu = ft_backend_cpu();
	float *q = cpu->alloc(1000 * sizeof(float));
	FT_CHECK(cpu->host_memory && q != NULL);
	FT_CHECK_INT(child_touch(q, 1000 * sizeof(float), WRITE_IT), 0);
	cpu->free(q);
	be->free(p);
}

FT_TEST(guarded_ops_compute_as_the_cpu)
{
	const struct ft_backend *be = ft_backend_cpu_guarded();
	float *x = be->alloc(4 * sizeof(float)), *y = be->alloc(4 * sizeof(float));
	const float hx[4] = { 1, 2, 3, 4 }, hy[4] = { 0.5f, -1, 10, 0 };
	float out[4];
	be->upload(x, hx, sizeof hx);
	be->upload(y, hy, sizeof hy);
	be->add(y, x, 4); /* y = 1.5, 1, 13, 4 */
	be->download(out, y, sizeof out);
	FT_CHECK(out[0] == 1.5f && out[1] == 1.0f && out[2] == 13.0f && out[3] == 4.0f);
	FT_CHECK(be->sumsq(y, 4) == 2.25 + 1 + 169 + 16);
	be->copy(x, y, sizeof hx);
	be->zero(y, 2 * sizeof(float));
	be->download(out, y, sizeof out);
	FT_CHECK(out[0] == 0 && out[1] == 0 && out[2] == 13.0f && out[3] == 4.0f);
	be->download(out, x, sizeof out);
	FT_CHECK(out[0] == 1.5f && out[3] == 4.0f);
	/* dropout with a host-drawn mask: kept * 2, dropped 0; backward adds */
	uint8_t *mask = be->alloc(4);
	const uint8_t hm[4] = { 1, 0, 1, 0 };
	be->upload(mask, hm, sizeof hm);
	be->dropout_fwd(y, x, mask, 4, 2.0f);
	be->download(out, y, sizeof out);
	FT_CHECK(out[0] == 3.0f && out[1] == 0 && out[2] == 26.0f && out[3] == 0);
	be->dropout_bwd(y, x, mask, 4, 2.0f);
	be->download(out, y, sizeof out);
	FT_CHECK(out[0] == 6.0f && out[1] == 0 && out[2] == 52.0f && out[3] == 0);
	/* and the memory is still guarded after the ops */
	FT_CHECK_INT(child_touch(y, 4 * sizeof(float), READ_IT), 42);
	be->free(mask);
	be->free(x);
	be->free(y);
}

/* An op given a host pointer where a tensor belongs aborts (the other half
 * of the rule: what a GPU could not read). */
FT_TEST(guarded_ops_refuse_host_tensors)
{
	const struct ft_backend *be = ft_backend_cpu_guarded();
	float *y = be->alloc(4 * sizeof(float));
	float host[4] = { 1, 2, 3, 4 };
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		int fd = open("/dev/null", O_WRONLY); /* the abort message is expected */
		dup2(fd, 2);
		be->add(y, host, 4);
		_exit(0);
	}
	int st = 0;
	FT_CHECK(pid > 0 && waitpid(pid, &st, 0) == pid);
	FT_CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT);
	/* and the same call on backend memory is fine */
	float *x = be->alloc(4 * sizeof(float));
	be->upload(x, host, sizeof host);
	be->add(y, x, 4);
	be->free(x);
	be->free(y);
}

FT_TEST(model_tensors_live_in_guarded_memory)
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
	c.pad_token_id = -1;
	c.bos_token_id = -1;
	struct ft_model *mg, *mc;
	FT_CHECK(ft_model_new(&c, ft_backend_cpu_guarded(), &mg, NULL) == FT_OK);
	FT_CHECK(ft_model_new(&c, ft_backend_cpu(), &mc, NULL) == FT_OK);
	size_t np, npc;
	struct ft_param *pg = ft_model_params(mg, &np), *pc = ft_model_params(mc, &npc);
	FT_CHECK(np == npc);
	/* the same weights in both (uploaded to the guarded one) */
	for (size_t i = 0; i < np; i++) {
		for (size_t j = 0; j < pc[i].n; j++)
			pc[i].data[j] = 0.3f * sinf((float)(i * 131 + j));
		ft_backend_cpu_guarded()->upload(pg[i].data, pc[i].data, pc[i].n * sizeof(float));
	}
	const int32_t ids[6] = { 1, 5, 7, 2, 9, 3 }, tg[6] = { 5, 7, -100, 9, 3, 4 };
	struct ft_batch b = { 2, 3, ids, tg, NULL, NULL };
	struct ft_ce_stats sg = { 0 }, sc = { 0 };
	FT_CHECK(ft_model_forward(mg, &b, 0.0f, 0, &sg, NULL) == FT_OK);
	FT_CHECK(ft_model_forward(mc, &b, 0.0f, 0, &sc, NULL) == FT_OK);
	FT_CHECK(sg.n_tokens == 5 && sg.loss_sum == sc.loss_sum);
	/* the logits and the weights are out of the host's reach ... */
	FT_CHECK_INT(child_touch(ft_model_logits(mg), 6 * 13 * sizeof(float), READ_IT), 42);
	FT_CHECK_INT(child_touch(pg[0].data, pg[0].n * sizeof(float), WRITE_IT), 42);
	/* ... and read through the backend they are the CPU's, bit for bit */
	float lg[6 * 13];
	ft_model_read(mg, lg, ft_model_logits(mg), 6 * 13);
	FT_CHECK(memcmp(lg, ft_model_logits(mc), sizeof lg) == 0);
	ft_model_free(mg);
	ft_model_free(mc);
}

FT_TEST(device_names_select_backends)
{
	const struct ft_backend *be = NULL;
	struct ft_err err;
	unsetenv("FT_BACKEND");
	FT_CHECK(ft_backend_select(NULL, &be, NULL) == FT_OK && be == ft_backend_cpu());
	FT_CHECK(ft_backend_select("cpu", &be, NULL) == FT_OK && be == ft_backend_cpu());
	FT_CHECK(ft_backend_select("cpu-guarded", &be, NULL) == FT_OK &&
		 be == ft_backend_cpu_guarded());
	ft_err_clear(&err);
	FT_CHECK(ft_backend_select("tpu", &be, &err) == FT_EINVAL);
	FT_CHECK_STR(err.msg, "device \"tpu\" is unknown: use \"cpu\" or \"cuda\"");
#ifndef FT_HAVE_CUDA
	ft_err_clear(&err);
	FT_CHECK(ft_backend_select("cuda", &be, &err) == FT_EINVAL);
	FT_CHECK_STR(err.msg, "device \"cuda\" is not available: this ft-train was built without "
			      "the CUDA backend");
#endif
	setenv("FT_BACKEND", "cpu-guarded", 1);
	be = NULL;
	FT_CHECK(ft_backend_select("cpu", &be, NULL) == FT_OK && be == ft_backend_cpu_guarded());
	unsetenv("FT_BACKEND");
}

FT_TEST_MAIN()
