/*
 * threadpool.c - a tiny fork-join pool over pthreads for the CPU backend.
 *
 * ft_pool_run(fn, ctx, ntasks) calls fn(ctx, i) for i in [0, ntasks) on the
 * pool's threads and the caller's thread, and returns when all are done.
 * Tasks are handed out by an atomic counter, so which thread runs a task
 * varies between runs; callers make results independent of that by having
 * each task own a disjoint piece of the output and reduce in a fixed order
 * (this is what makes training bit-reproducible for a given thread count).
 *
 * The pool is process-wide and created on first use with ft_pool_threads()
 * threads: FT_NUM_THREADS, else the number of online CPUs. Nested calls
 * (fn calling ft_pool_run) run serially on the calling thread.
 */
#include "cpu_int.h"

#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#define POOL_MAX_THREADS 256

struct pool {
	pthread_mutex_t mu;
	pthread_cond_t work_cv;
	pthread_cond_t done_cv;
	int nthreads; /* including the caller */
	pthread_t th[POOL_MAX_THREADS];
	/* the current job */
	void (*fn)(void *ctx, int i);
	void *ctx;
	int ntasks;
	atomic_int next;
	int running; /* workers still inside the job */
	unsigned long generation;
};

static struct pool g_pool;
static pthread_once_t g_pool_once = PTHREAD_ONCE_INIT;
static _Thread_local int t_in_pool;
static int g_threads_override;

static void run_tasks(struct pool *p)
{
	for (;;) {
		int i = atomic_fetch_add(&p->next, 1);
		if (i >= p->ntasks)
			break;
		p->fn(p->ctx, i);
	}
}

static void *worker_main(void *arg)
{
	struct pool *p = arg;
	unsigned long seen = 0;
	t_in_pool = 1;
	pthread_mutex_lock(&p->mu);
	for (;;) {
		while (p->generation == seen)
			pthread_cond_wait(&p->work_cv, &p->mu);
		seen = p->generation;
		pthread_mutex_unlock(&p->mu);
		run_tasks(p);
		pthread_mutex_lock(&p->mu);
		if (--p->running == 0)
			pthread_cond_signal(&p->done_cv);
	}
	return NULL;
}

int ft_pool_threads(void)
{
	if (g_threads_override > 0)
		return g_threads_override;
	const char *s = getenv("FT_NUM_THREADS");
	long n = s ? strtol(s, NULL, 10) : 0;
	if (n <= 0)
		n = sysconf(_SC_NPROCESSORS_ONLN);
	if (n <= 0)
		n = 1;
	return (int)FT_MIN(n, POOL_MAX_THREADS);
}

void ft_pool_set_threads(int n)
{
	/* Only before first use. */
	g_threads_override = n;
}

static void pool_init(void)
{
	struct pool *p = &g_pool;
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->work_cv, NULL);
	pthread_cond_init(&p->done_cv, NULL);
	p->nthreads = ft_pool_threads();
	for (int i = 1; i < p->nthreads; i++) {
		if (pthread_create(&p->th[i], NULL, worker_main, p) != 0) {
			p->nthreads = i;
			break;
		}
		pthread_detach(p->th[i]);
	}
}

void ft_pool_run(void (*fn)(void *ctx, int i), void *ctx, int ntasks)
{
	if (ntasks <= 0)
		return;
	pthread_once(&g_pool_once, pool_init);
	struct pool *p = &g_pool;
	if (t_in_pool || p->nthreads == 1 || ntasks == 1) {
		for (int i = 0; i < ntasks; i++)
			fn(ctx, i);
		return;
	}
	pthread_mutex_lock(&p->mu);
	p->fn = fn;
	p->ctx = ctx;
	p->ntasks = ntasks;
	atomic_store(&p->next, 0);
	p->running = p->nthreads - 1;
	p->generation++;
	pthread_cond_broadcast(&p->work_cv);
	pthread_mutex_unlock(&p->mu);

	t_in_pool = 1;
	run_tasks(p);
	t_in_pool = 0;

	pthread_mutex_lock(&p->mu);
	while (p->running > 0)
		pthread_cond_wait(&p->done_cv, &p->mu);
	pthread_mutex_unlock(&p->mu);
}
