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
#include <sched.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define pool_relax() _mm_pause()
#else
#define pool_relax() ((void)0)
#endif

#define POOL_MAX_THREADS 256
#define POOL_SPIN_US 100 /* FT_POOL_SPIN_US; 0 sleeps at once */

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
	atomic_int running; /* workers still inside the job */
	atomic_ulong generation;
	long spin_ns; /* FT_POOL_SPIN_US: how long a waiter polls before it sleeps */
	atomic_long spin_now; /* spin_ns, or 0 while other work wants the CPUs */
	long next_look_ns; /* when the caller next reads the run queue */
	double others; /* runnable tasks not ours, smoothed */
	int ncpu;
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

static long now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000L + ts.tv_nsec;
}

/* Polls done() for up to spin_ns; true when it came true meanwhile. A
 * decode step hands the threads ~150 jobs of tens of microseconds each: a
 * futex sleep and wake-up per job (an IPI on a VM) was a quarter of the
 * step, so waiters poll for a short while before they sleep. */
static bool spin_until(const struct pool *p, bool (*done)(const struct pool *, unsigned long),
		       unsigned long arg)
{
	long spin = atomic_load_explicit(&p->spin_now, memory_order_relaxed);
	if (spin <= 0)
		return done(p, arg);
	long end = now_ns() + spin;
	for (int k = 0;; k++) {
		if (done(p, arg))
			return true;
		pool_relax();
		if ((k & 63) == 63 && now_ns() > end)
			return done(p, arg);
	}
}

static bool new_job(const struct pool *p, unsigned long seen)
{
	return atomic_load_explicit(&p->generation, memory_order_acquire) != seen;
}

static bool all_done(const struct pool *p, unsigned long unused)
{
	(void)unused;
	return atomic_load_explicit(&p->running, memory_order_acquire) == 0;
}

/* The CPUs this process may use: its affinity mask, cut to its cgroup's
 * CPU quota (cgroup v2's cpu.max, "QUOTA PERIOD" or "max PERIOD"), as a
 * container's limit shows there and not in the online count. */
static int cpus_allowed(void)
{
	int n = (int)sysconf(_SC_NPROCESSORS_ONLN);
#ifdef __linux__
	cpu_set_t set;
	if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0)
		n = CPU_COUNT(&set);
	FILE *f = fopen("/sys/fs/cgroup/cpu.max", "r");
	if (f) {
		char quota[32];
		long period = 0;
		if (fscanf(f, "%31s %ld", quota, &period) == 2 && strcmp(quota, "max") != 0 &&
		    period > 0) {
			long q = strtol(quota, NULL, 10);
			if (q > 0)
				n = FT_MIN(n, (int)((q + period - 1) / period));
		}
		fclose(f);
	}
#endif
	return n > 0 ? n : 1;
}

/* Polling only pays while every thread of the pool has a CPU of its own: a
 * poller that shares its CPU with other work takes that CPU from the thread
 * it waits for (measured: one busy process beside a one-stream decode on 2
 * CPUs, 52 tok/s sleeping, 32 polling). So every 10 ms the caller reads the
 * number of runnable tasks (/proc/loadavg's fourth field), takes off its
 * own (the pool's threads when they poll, else the caller), smooths it, and
 * polls only while the rest leaves a CPU for each thread. */
static void look_at_run_queue(struct pool *p)
{
	long t = now_ns();
	if (p->spin_ns <= 0 || t < p->next_look_ns)
		return;
	p->next_look_ns = t + 10000000L;
	FILE *f = fopen("/proc/loadavg", "r");
	if (!f)
		return;
	double a1, a5, a15;
	int running = 0, total = 0;
	int n = fscanf(f, "%lf %lf %lf %d/%d", &a1, &a5, &a15, &running, &total);
	fclose(f);
	if (n != 5)
		return;
	int ours = atomic_load(&p->spin_now) > 0 ? p->nthreads : 1;
	double others = running > ours ? running - ours : 0;
	p->others = 0.9 * p->others + 0.1 * others;
	bool room = p->others + p->nthreads <= p->ncpu + 0.75;
	atomic_store_explicit(&p->spin_now, room ? p->spin_ns : 0, memory_order_relaxed);
}

static void *worker_main(void *arg)
{
	struct pool *p = arg;
	unsigned long seen = 0;
	t_in_pool = 1;
	for (;;) {
		if (!spin_until(p, new_job, seen)) {
			pthread_mutex_lock(&p->mu);
			while (atomic_load(&p->generation) == seen)
				pthread_cond_wait(&p->work_cv, &p->mu);
			pthread_mutex_unlock(&p->mu);
		}
		seen = atomic_load_explicit(&p->generation, memory_order_acquire);
		run_tasks(p);
		pthread_mutex_lock(&p->mu);
		if (atomic_fetch_sub(&p->running, 1) == 1)
			pthread_cond_signal(&p->done_cv);
		pthread_mutex_unlock(&p->mu);
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
	const char *spin = getenv("FT_POOL_SPIN_US");
	p->spin_ns = 1000L * (spin ? strtol(spin, NULL, 10) : POOL_SPIN_US);
	p->ncpu = cpus_allowed();
	atomic_store(&p->spin_now, 0); /* until the first look */
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
	look_at_run_queue(p);
	pthread_mutex_lock(&p->mu);
	p->fn = fn;
	p->ctx = ctx;
	p->ntasks = ntasks;
	atomic_store(&p->next, 0);
	atomic_store(&p->running, p->nthreads - 1);
	atomic_fetch_add_explicit(&p->generation, 1, memory_order_release);
	pthread_cond_broadcast(&p->work_cv);
	pthread_mutex_unlock(&p->mu);

	t_in_pool = 1;
	run_tasks(p);
	t_in_pool = 0;

	if (spin_until(p, all_done, 0))
		return;
	pthread_mutex_lock(&p->mu);
	while (atomic_load(&p->running) > 0)
		pthread_cond_wait(&p->done_cv, &p->mu);
	pthread_mutex_unlock(&p->mu);
}
