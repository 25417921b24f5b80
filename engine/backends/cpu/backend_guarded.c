/*
 * backend_guarded.c - the guarded CPU backend: the CPU kernels on memory
 * that host code cannot touch (ft/backend.h, "Memory rules").
 *
 * host_memory is false, so the model takes its device paths (staging,
 * uploads, downloads) exactly as on a GPU. alloc maps whole pages
 * (mmap, PROT_NONE) and records the region in a registry; every operation
 * of the table - each op, and upload / download / zero / copy - is wrapped:
 *
 *   unprotect every live region (PROT_READ | PROT_WRITE)
 *   run the CPU backend's function
 *   protect every live region again (PROT_NONE)
 *
 * So a host loop that reads or writes backend memory outside an operation
 * dies with SIGSEGV, while the kernels, and therefore every result, are the
 * CPU backend's own: a job on this backend gives bit-identical losses.
 * The other half of the rule is checked too: every tensor argument of an op
 * (and the arrays inside an NF4 weight's header) must point into a live
 * region, and upload / download's host side must not; a violation aborts
 * naming the op and the argument.
 * Ops run on one host thread (the pool's workers only run inside an op).
 * The registry is a small array; mprotect costs two system calls per region
 * per operation, fine for the tiny models of the tests.
 */
#include "cpu_int.h"
#include "ft/nf4.h"

#include <pthread.h>
#include <sys/mman.h>
#include <unistd.h>

struct region {
	void *p;
	size_t len;
};

static struct {
	pthread_mutex_t mu;
	struct region *r;
	size_t n, cap;
} g_reg = { .mu = PTHREAD_MUTEX_INITIALIZER };

static size_t page_round(size_t bytes)
{
	size_t pg = (size_t)sysconf(_SC_PAGESIZE);
	size_t n = bytes ? bytes : 1;
	return (n + pg - 1) / pg * pg;
}

static void protect_all(int prot)
{
	for (size_t i = 0; i < g_reg.n; i++)
		FT_ASSERT(mprotect(g_reg.r[i].p, g_reg.r[i].len, prot) == 0);
}

static bool in_region(const void *p)
{
	const char *c = p;
	for (size_t i = 0; i < g_reg.n; i++)
		if (c >= (const char *)g_reg.r[i].p &&
		    c < (const char *)g_reg.r[i].p + g_reg.r[i].len)
			return true;
	return false;
}

/* Abort unless p (when not NULL) is backend memory, or host memory when
 * !dev. Called with the registry locked. */
static void need(const void *p, bool dev, const char *op, const char *arg)
{
	if (!p || in_region(p) == dev)
		return;
	fprintf(stderr, "guarded backend: %s: \"%s\" is %s memory\n", op, arg,
		dev ? "host, not backend" : "backend, not host");
	abort();
}
#define DEV(op, p) need((p), true, op, #p)
#define HOST(op, p) need((p), false, op, #p)

static void need_nf4(const struct ft_nf4 *w, const char *op)
{
	DEV(op, w->packed);
	DEV(op, w->absmax);
	DEV(op, w->qabsmax);
	DEV(op, w->nested_absmax);
	if (w->nested)
		DEV(op, w->code2);
}

/* Run one statement with every region readable and writable. */
#define GUARDED(checks, stmt)                        \
	do {                                         \
		pthread_mutex_lock(&g_reg.mu);       \
		checks;                              \
		protect_all(PROT_READ | PROT_WRITE); \
		stmt;                                \
		protect_all(PROT_NONE);              \
		pthread_mutex_unlock(&g_reg.mu);     \
	} while (0)

static void *g_alloc(size_t bytes)
{
	size_t len = page_round(bytes);
	void *p = mmap(NULL, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	pthread_mutex_lock(&g_reg.mu);
	if (g_reg.n == g_reg.cap) {
		size_t cap = g_reg.cap ? 2 * g_reg.cap : 64;
		struct region *r = realloc(g_reg.r, cap * sizeof(*r));
		if (!r) {
			pthread_mutex_unlock(&g_reg.mu);
			munmap(p, len);
			return NULL;
		}
		g_reg.r = r;
		g_reg.cap = cap;
	}
	g_reg.r[g_reg.n++] = (struct region){ p, len };
	pthread_mutex_unlock(&g_reg.mu);
	return p;
}

static void g_free(void *dev)
{
	if (!dev)
		return;
	pthread_mutex_lock(&g_reg.mu);
	for (size_t i = 0; i < g_reg.n; i++) {
		if (g_reg.r[i].p != dev)
			continue;
		FT_ASSERT(munmap(dev, g_reg.r[i].len) == 0);
		g_reg.r[i] = g_reg.r[--g_reg.n];
		pthread_mutex_unlock(&g_reg.mu);
		return;
	}
	pthread_mutex_unlock(&g_reg.mu);
	FT_ASSERT(!"guarded backend: free of a pointer it did not allocate");
}

static void g_upload(void *dev, const void *host, size_t bytes)
{
	GUARDED((DEV("upload", dev), HOST("upload", host)), ft_cpu_upload(dev, host, bytes));
}
static void g_download(void *host, const void *dev, size_t bytes)
{
	GUARDED((HOST("download", host), DEV("download", dev)), ft_cpu_download(host, dev, bytes));
}
static void g_zero(void *dev, size_t bytes)
{
	GUARDED((DEV("zero", dev)), ft_cpu_zero(dev, bytes));
}
static void g_copy(void *dst, const void *src, size_t bytes)
{
	GUARDED((DEV("copy", dst), DEV("copy", src)), ft_cpu_copy(dst, src, bytes));
}
static void g_add(float *y, const float *x, size_t n)
{
	GUARDED((DEV("add", y), DEV("add", x)), ft_cpu_add(y, x, n));
}
static void g_dropout_fwd(float *out, const float *in, const uint8_t *mask, size_t n, float keep)
{
	GUARDED((DEV("dropout_fwd", out), DEV("dropout_fwd", in), DEV("dropout_fwd", mask)),
		ft_cpu_dropout_fwd(out, in, mask, n, keep));
}
static void g_dropout_bwd(float *din, const float *dout, const uint8_t *mask, size_t n, float keep)
{
	GUARDED((DEV("dropout_bwd", din), DEV("dropout_bwd", dout), DEV("dropout_bwd", mask)),
		ft_cpu_dropout_bwd(din, dout, mask, n, keep));
}
static void g_attention_decode(float *out, float *scores, const float *q, const float *kc,
			       const float *vc, int j0, int pos, int nh, int nkv, int hd)
{
	GUARDED((DEV("attention_decode", out), DEV("attention_decode", scores),
		 DEV("attention_decode", q), DEV("attention_decode", kc),
		 DEV("attention_decode", vc)),
		ft_cpu_attention_decode(out, scores, q, kc, vc, j0, pos, nh, nkv, hd));
}
static void g_matmul_fwd(float *out, const float *inp, const float *w, const float *bias, int N,
			 int IC, int OC, bool accumulate)
{
	GUARDED((DEV("matmul_fwd", out), DEV("matmul_fwd", inp), DEV("matmul_fwd", w),
		 DEV("matmul_fwd", bias)),
		ft_cpu_matmul_fwd(out, inp, w, bias, N, IC, OC, accumulate));
}
static void g_matmul_bwd(float *dinp, float *dw, float *dbias, const float *dout, const float *inp,
			 const float *w, int N, int IC, int OC)
{
	GUARDED((DEV("matmul_bwd", dinp), DEV("matmul_bwd", dw), DEV("matmul_bwd", dbias),
		 DEV("matmul_bwd", dout), DEV("matmul_bwd", inp), DEV("matmul_bwd", w)),
		ft_cpu_matmul_bwd(dinp, dw, dbias, dout, inp, w, N, IC, OC));
}
static void g_matmul_nf4_fwd(float *out, const float *inp, const struct ft_nf4 *w,
			     const float *bias, int N, int IC, int OC)
{
	GUARDED((DEV("matmul_nf4_fwd", out), DEV("matmul_nf4_fwd", inp),
		 need_nf4(w, "matmul_nf4_fwd"), DEV("matmul_nf4_fwd", bias)),
		ft_cpu_matmul_nf4_fwd(out, inp, w, bias, N, IC, OC));
}
static void g_matmul_nf4_bwd_input(float *dinp, const float *dout, const struct ft_nf4 *w, int N,
				   int IC, int OC)
{
	GUARDED((DEV("matmul_nf4_bwd_input", dinp), DEV("matmul_nf4_bwd_input", dout),
		 need_nf4(w, "matmul_nf4_bwd_input")),
		ft_cpu_matmul_nf4_bwd_input(dinp, dout, w, N, IC, OC));
}
static void g_rmsnorm_fwd(float *out, float *rstd, const float *inp, const float *w, int N, int C,
			  float eps)
{
	GUARDED((DEV("rmsnorm_fwd", out), DEV("rmsnorm_fwd", rstd), DEV("rmsnorm_fwd", inp),
		 DEV("rmsnorm_fwd", w)),
		ft_cpu_rmsnorm_fwd(out, rstd, inp, w, N, C, eps));
}
static void g_rmsnorm_bwd(float *dinp, float *dw, const float *dout, const float *inp,
			  const float *w, const float *rstd, int N, int C)
{
	GUARDED((DEV("rmsnorm_bwd", dinp), DEV("rmsnorm_bwd", dw), DEV("rmsnorm_bwd", dout),
		 DEV("rmsnorm_bwd", inp), DEV("rmsnorm_bwd", w), DEV("rmsnorm_bwd", rstd)),
		ft_cpu_rmsnorm_bwd(dinp, dw, dout, inp, w, rstd, N, C));
}
static void g_rope_fwd(float *x, const float *cos_t, const float *sin_t, const int32_t *pos, int N,
		       int heads, int hd)
{
	GUARDED((DEV("rope_fwd", x), DEV("rope_fwd", cos_t), DEV("rope_fwd", sin_t),
		 DEV("rope_fwd", pos)),
		ft_cpu_rope_fwd(x, cos_t, sin_t, pos, N, heads, hd));
}
static void g_rope_bwd(float *dx, const float *cos_t, const float *sin_t, const int32_t *pos, int N,
		       int heads, int hd)
{
	GUARDED((DEV("rope_bwd", dx), DEV("rope_bwd", cos_t), DEV("rope_bwd", sin_t),
		 DEV("rope_bwd", pos)),
		ft_cpu_rope_bwd(dx, cos_t, sin_t, pos, N, heads, hd));
}
static void g_attention_fwd(float *out, float *lse, const float *q, const float *k, const float *v,
			    const int32_t *doc, int window, int B, int T, int nh, int nkv, int hd)
{
	GUARDED((DEV("attention_fwd", out), DEV("attention_fwd", lse), DEV("attention_fwd", q),
		 DEV("attention_fwd", k), DEV("attention_fwd", v), DEV("attention_fwd", doc)),
		ft_cpu_attention_fwd(out, lse, q, k, v, doc, window, B, T, nh, nkv, hd));
}
static void g_attention_bwd(float *dq, float *dk, float *dv, const float *dout, const float *lse,
			    const float *q, const float *k, const float *v, const int32_t *doc,
			    int window, int B, int T, int nh, int nkv, int hd)
{
	GUARDED((DEV("attention_bwd", dq), DEV("attention_bwd", dk), DEV("attention_bwd", dv),
		 DEV("attention_bwd", dout), DEV("attention_bwd", lse), DEV("attention_bwd", q),
		 DEV("attention_bwd", k), DEV("attention_bwd", v), DEV("attention_bwd", doc)),
		ft_cpu_attention_bwd(dq, dk, dv, dout, lse, q, k, v, doc, window, B, T, nh, nkv,
				     hd));
}
static void g_swiglu_fwd(float *out, const float *gate, const float *up, size_t n)
{
	GUARDED((DEV("swiglu_fwd", out), DEV("swiglu_fwd", gate), DEV("swiglu_fwd", up)),
		ft_cpu_swiglu_fwd(out, gate, up, n));
}
static void g_swiglu_bwd(float *dgate, float *dup, const float *dout, const float *gate,
			 const float *up, size_t n)
{
	GUARDED((DEV("swiglu_bwd", dgate), DEV("swiglu_bwd", dup), DEV("swiglu_bwd", dout),
		 DEV("swiglu_bwd", gate), DEV("swiglu_bwd", up)),
		ft_cpu_swiglu_bwd(dgate, dup, dout, gate, up, n));
}
static void g_embedding_fwd(float *out, const int32_t *ids, const float *wte, int N, int C)
{
	GUARDED((DEV("embedding_fwd", out), DEV("embedding_fwd", ids), DEV("embedding_fwd", wte)),
		ft_cpu_embedding_fwd(out, ids, wte, N, C));
}
static void g_embedding_bwd(float *dwte, const float *dout, const int32_t *ids, int N, int C)
{
	GUARDED((DEV("embedding_bwd", dwte), DEV("embedding_bwd", dout), DEV("embedding_bwd", ids)),
		ft_cpu_embedding_bwd(dwte, dout, ids, N, C));
}
static void g_cross_entropy(float *logits, const int32_t *targets, int N, int V, float grad_scale,
			    struct ft_ce_stats *st)
{
	GUARDED((DEV("cross_entropy", logits), DEV("cross_entropy", targets),
		 HOST("cross_entropy", st)),
		ft_cpu_cross_entropy(logits, targets, N, V, grad_scale, st));
}
static void g_adamw(float *param, const float *grad, float *m, float *v, size_t n,
		    const struct ft_adamw_args *a)
{
	GUARDED((DEV("adamw", param), DEV("adamw", grad), DEV("adamw", m), DEV("adamw", v),
		 HOST("adamw", a)),
		ft_cpu_adamw(param, grad, m, v, n, a));
}
static double g_sumsq(const float *x, size_t n)
{
	double s;
	GUARDED((DEV("sumsq", x)), s = ft_cpu_sumsq(x, n));
	return s;
}
static void g_scale(float *x, size_t n, float s)
{
	GUARDED((DEV("scale", x)), ft_cpu_scale(x, n, s));
}

static const struct ft_backend guarded_backend = {
	.name = "cpu-guarded",
	.host_memory = false,
	.alloc = g_alloc,
	.free = g_free,
	.upload = g_upload,
	.download = g_download,
	.zero = g_zero,
	.copy = g_copy,
	.add = g_add,
	.dropout_fwd = g_dropout_fwd,
	.dropout_bwd = g_dropout_bwd,
	.attention_decode = g_attention_decode,
	.matmul_fwd = g_matmul_fwd,
	.matmul_bwd = g_matmul_bwd,
	.matmul_nf4_fwd = g_matmul_nf4_fwd,
	.matmul_nf4_bwd_input = g_matmul_nf4_bwd_input,
	.rmsnorm_fwd = g_rmsnorm_fwd,
	.rmsnorm_bwd = g_rmsnorm_bwd,
	.rope_fwd = g_rope_fwd,
	.rope_bwd = g_rope_bwd,
	.attention_fwd = g_attention_fwd,
	.attention_bwd = g_attention_bwd,
	.swiglu_fwd = g_swiglu_fwd,
	.swiglu_bwd = g_swiglu_bwd,
	.embedding_fwd = g_embedding_fwd,
	.embedding_bwd = g_embedding_bwd,
	.cross_entropy = g_cross_entropy,
	.adamw = g_adamw,
	.sumsq = g_sumsq,
	.scale = g_scale,
};

const struct ft_backend *ft_backend_cpu_guarded(void)
{
	return &guarded_backend;
}
