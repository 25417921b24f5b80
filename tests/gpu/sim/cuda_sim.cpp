/*
 * cuda_sim.cpp - the CPU stand-in for the CUDA runtime and cuBLASLt that
 * cuda_sim.h declares: fiber scheduling of a block's threads with real
 * barriers, host memory as device memory, a naive GEMM behind cuBLASLt's
 * calls that checks the operand shapes it is given.
 */
#include "cuda_sim.h"

#include <ucontext.h>

#include <mutex>
#include <vector>

uint3 threadIdx, blockIdx;
dim3 blockDim, gridDim;

/* ---- fibers ----
 * A context switch is a stack switch: on x86-64 a few instructions saving the
 * callee-saved registers (glibc's swapcontext also makes a sigprocmask system
 * call per switch, which made the simulator ten times slower); elsewhere
 * ucontext. */
#if defined(__x86_64__)
extern "C" void sim_swap(void **save_sp, void *load_sp);
__asm__(".text\n"
	".globl sim_swap\n"
	".type sim_swap,@function\n"
	"sim_swap:\n"
	"\tpushq %rbp\n\tpushq %rbx\n\tpushq %r12\n\tpushq %r13\n\tpushq %r14\n\tpushq %r15\n"
	"\tmovq %rsp, (%rdi)\n"
	"\tmovq %rsi, %rsp\n"
	"\tpopq %r15\n\tpopq %r14\n\tpopq %r13\n\tpopq %r12\n\tpopq %rbx\n\tpopq %rbp\n"
	"\tret\n"
	".size sim_swap, .-sim_swap\n");
struct sim_ctx {
	void *sp;
};
#define SWITCH(from, to) sim_swap(&(from)->sp, (to)->sp)
#else
struct sim_ctx {
	ucontext_t uc;
};
#define SWITCH(from, to) swapcontext(&(from)->uc, &(to)->uc)
#endif
enum fstate { F_READY, F_WAIT_BLOCK, F_WAIT_WARP, F_DONE };
struct fiber {
	sim_ctx ctx;
	fstate st;
	unsigned tid;
};
static sim_ctx sched_ctx;
static std::vector<fiber> fibers;
static std::vector<char> stacks;
static int cur = -1;
static int live, block_arrived;
static std::vector<int> warp_live, warp_arrived;
static std::vector<float> shfl_buf;
static std::vector<int> shfl_parity;
static std::vector<float> dyn_smem;
static void (*k_fn)(void *);
static void *k_arg;
static size_t smem_allowed = 48 * 1024;
static const size_t STACK = 128 * 1024;

static void die(const char *what)
{
	fprintf(stderr, "cuda_sim: %s (block %u,%u,%u thread %u)\n", what, blockIdx.x, blockIdx.y,
		blockIdx.z, cur >= 0 ? fibers[cur].tid : 0u);
	abort();
}

static void yield_to_sched(void)
{
	SWITCH(&fibers[cur].ctx, &sched_ctx);
}

static void release_block(void)
{
	for (auto &f : fibers)
		if (f.st == F_WAIT_BLOCK)
			f.st = F_READY;
	block_arrived = 0;
}

static void release_warp(int w)
{
	for (auto &f : fibers)
		if (f.st == F_WAIT_WARP && (int)(f.tid / 32) == w)
			f.st = F_READY;
	warp_arrived[w] = 0;
}

void __syncthreads(void)
{
	if (warp_arrived[fibers[cur].tid / 32])
		die("__syncthreads while lanes of this warp wait in a shuffle");
	if (++block_arrived == live) {
		release_block();
		yield_to_sched();
		return;
	}
	fibers[cur].st = F_WAIT_BLOCK;
	yield_to_sched();
}

static void warp_sync(void)
{
	int w = (int)(fibers[cur].tid / 32);
	if (++warp_arrived[w] == warp_live[w]) {
		release_warp(w);
		yield_to_sched();
		return;
	}
	fibers[cur].st = F_WAIT_WARP;
	yield_to_sched();
}

float sim_shfl(float v, int src)
{
	unsigned tid = fibers[cur].tid, w = tid / 32;
	if (blockDim.x % 32 != 0)
		die("shuffle in a block that is not whole warps");
	/* two buffers used in turn: a lane can only write the other buffer again
	 * after the next shuffle's barrier, which every lane passes only once it
	 * has read this one; so one barrier per shuffle suffices */
	int par = shfl_parity[tid];
	shfl_parity[tid] ^= 1;
	float *buf = &shfl_buf[(size_t)par * shfl_buf.size() / 2];
	buf[tid] = v;
	warp_sync(); /* every lane has written */
	return buf[w * 32 + ((unsigned)src & 31u)];
}

float __shfl_sync(unsigned mask, float v, int src_lane)
{
	if (mask != 0xffffffffu)
		die("partial shuffle mask");
	return sim_shfl(v, src_lane);
}

float __shfl_xor_sync(unsigned mask, float v, int lane_mask)
{
	if (mask != 0xffffffffu)
		die("partial shuffle mask");
	return sim_shfl(v, (int)(fibers[cur].tid & 31u) ^ lane_mask);
}

float *sim_dyn_smem(void)
{
	return dyn_smem.data();
}

static void fiber_main(void)
{
	k_fn(k_arg);
	/* thread exit: it no longer takes part in barriers */
	int w = (int)(fibers[cur].tid / 32);
	fibers[cur].st = F_DONE;
	live--;
	warp_live[w]--;
	if (block_arrived > 0 && block_arrived == live)
		release_block();
	if (warp_arrived[w] > 0 && warp_arrived[w] == warp_live[w])
		release_warp(w);
	SWITCH(&fibers[cur].ctx, &sched_ctx);
	die("a finished fiber was resumed");
}

static void fiber_start(fiber &f, char *stack)
{
#if defined(__x86_64__)
	/* the frame sim_swap pops: six callee-saved registers, then the return
	 * address fiber_main; the slot above it keeps fiber_main's entry stack
	 * aligned as after a call (rsp % 16 == 8) */
	uintptr_t top = ((uintptr_t)(stack + STACK)) & ~(uintptr_t)15;
	void **sp = (void **)(top - 64);
	for (int i = 0; i < 6; i++)
		sp[i] = nullptr;
	sp[6] = (void *)fiber_main;
	sp[7] = nullptr;
	f.ctx.sp = sp;
#else
	getcontext(&f.ctx.uc);
	f.ctx.uc.uc_stack.ss_sp = stack;
	f.ctx.uc.uc_stack.ss_size = STACK;
	f.ctx.uc.uc_link = nullptr;
	makecontext(&f.ctx.uc, fiber_main, 0);
#endif
}

/* Ranks of the NCCL stand-in are threads: one launch at a time. */
static std::mutex launch_mu;

void sim_launch_fn(sim_config c, void (*fn)(void *), void *arg)
{
	std::lock_guard<std::mutex> lock(launch_mu);
	unsigned nt = c.block.x * c.block.y * c.block.z;
	if (nt == 0 || nt > 1024)
		die("bad block size");
	if (c.grid.y > 65535 || c.grid.z > 65535)
		die("grid y or z above 65535");
	if (c.smem > smem_allowed)
		die("dynamic shared memory above the allowed size (cudaFuncSetAttribute missing)");
	smem_allowed = 48 * 1024;
	k_fn = fn;
	k_arg = arg;
	blockDim = c.block;
	gridDim = c.grid;
	fibers.assign(nt, fiber());
	stacks.assign((size_t)nt * STACK, 0);
	warp_live.assign((nt + 31) / 32, 0);
	warp_arrived.assign((nt + 31) / 32, 0);
	shfl_buf.assign(2 * (size_t)(nt + 31) / 32 * 32, 0.0f);
	dyn_smem.assign(c.smem / sizeof(float) + 1, NAN); /* garbage-like start values */
	for (unsigned bz = 0; bz < c.grid.z; bz++)
		for (unsigned by = 0; by < c.grid.y; by++)
			for (unsigned bx = 0; bx < c.grid.x; bx++) {
				blockIdx = { bx, by, bz };
				live = (int)nt;
				block_arrived = 0;
				for (unsigned w = 0; w < (nt + 31) / 32; w++) {
					warp_live[w] = (int)(nt - w * 32 < 32 ? nt - w * 32 : 32);
					warp_arrived[w] = 0;
				}
				shfl_parity.assign(nt, 0);
				for (unsigned t = 0; t < nt; t++) {
					fiber &f = fibers[t];
					f.tid = t;
					f.st = F_READY;
					fiber_start(f, &stacks[(size_t)t * STACK]);
				}
				int done = 0;
				while (done < (int)nt) {
					bool ran = false;
					done = 0;
					for (unsigned t = 0; t < nt; t++) {
						if (fibers[t].st == F_DONE) {
							done++;
							continue;
						}
						if (fibers[t].st != F_READY)
							continue;
						cur = (int)t;
						unsigned tx = t % c.block.x,
							 ty = (t / c.block.x) % c.block.y;
						threadIdx = { tx, ty, t / (c.block.x * c.block.y) };
						SWITCH(&sched_ctx, &fibers[t].ctx);
						ran = true;
					}
					if (!ran && done < (int)nt)
						die("deadlock: every live thread waits at a "
						    "barrier that "
						    "cannot complete");
				}
				cur = -1;
			}
}

/* ---- runtime ---- */
const char *cudaGetErrorString(cudaError_t e)
{
	return e == cudaSuccess ? "no error" : "simulated error";
}
cudaError_t cudaGetDeviceCount(int *n)
{
	*n = 8; /* the NCCL stand-in runs one rank per "device" */
	return cudaSuccess;
}
cudaError_t cudaSetDevice(int)
{
	return cudaSuccess;
}
cudaError_t cudaGetDeviceProperties(cudaDeviceProp *p, int)
{
	p->multiProcessorCount = 132;
	p->sharedMemPerBlockOptin = 227 * 1024;
	return cudaSuccess;
}
cudaError_t cudaMalloc(void **p, size_t n)
{
	*p = malloc(n ? n : 1);
	if (*p) /* NaN bytes: a kernel that reads before writing shows up */
		memset(*p, 0xff, n);
	return *p ? cudaSuccess : 2;
}
cudaError_t cudaFree(void *p)
{
	free(p);
	return cudaSuccess;
}
cudaError_t cudaMemcpy(void *d, const void *s, size_t n, cudaMemcpyKind)
{
	memmove(d, s, n);
	return cudaSuccess;
}
cudaError_t cudaMemset(void *d, int v, size_t n)
{
	memset(d, v, n);
	return cudaSuccess;
}
cudaError_t cudaMemset2D(void *d, size_t pitch, int v, size_t width, size_t height)
{
	for (size_t r = 0; r < height; r++)
		memset((char *)d + r * pitch, v, width);
	return cudaSuccess;
}
/* An H100's 80 GiB with 70 free, or FT_CUDA_SIM_FREE_MIB free (tests of
 * what does not fit). */
cudaError_t cudaMemGetInfo(size_t *fr, size_t *total)
{
	const char *env = getenv("FT_CUDA_SIM_FREE_MIB");
	*fr = env ? (size_t)strtoull(env, NULL, 10) << 20 : (size_t)70 << 30;
	*total = (size_t)80 << 30;
	return cudaSuccess;
}
cudaError_t cudaDeviceSynchronize(void)
{
	return cudaSuccess;
}
cudaError_t cudaGetLastError(void)
{
	return cudaSuccess;
}
cudaError_t sim_func_smem(size_t bytes)
{
	if (bytes > 227 * 1024)
		return 1;
	smem_allowed = bytes;
	return cudaSuccess;
}

/* ---- cuBLASLt ---- */
static int lt_handle_dummy;
cublasStatus_t cublasLtCreate(cublasLtHandle_t *h)
{
	*h = &lt_handle_dummy;
	return 0;
}
cublasStatus_t cublasLtDestroy(cublasLtHandle_t)
{
	return 0;
}
cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t *d, cublasComputeType_t c,
					cudaDataType_t scale)
{
	if (c != CUBLAS_COMPUTE_32F || scale != CUDA_R_32F)
		return 7;
	*d = new sim_lt_desc{ CUBLAS_OP_N, CUBLAS_OP_N };
	return 0;
}
cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t d,
					      cublasLtMatmulDescAttributes_t a, const void *v,
					      size_t n)
{
	if (n != sizeof(cublasOperation_t))
		return 7;
	if (a == CUBLASLT_MATMUL_DESC_TRANSA)
		memcpy(&d->ta, v, n);
	else
		memcpy(&d->tb, v, n);
	return 0;
}
cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t d)
{
	delete d;
	return 0;
}
cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t *l, cudaDataType_t t,
					  uint64_t rows, uint64_t cols, int64_t ld)
{
	if (ld < (int64_t)rows) /* column-major: the leading dimension holds a column */
		return 7;
	*l = new sim_lt_layout{ t, rows, cols, ld };
	return 0;
}
cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t l)
{
	delete l;
	return 0;
}
cublasStatus_t cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t *p)
{
	*p = &lt_handle_dummy;
	return 0;
}
cublasStatus_t cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t,
						    cublasLtMatmulPreferenceAttributes_t a,
						    const void *v, size_t n)
{
	if (a != CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES) {
		uint32_t al;
		if (n != 4)
			return 7;
		memcpy(&al, v, 4);
		if (al == 0 || (al & (al - 1)) != 0)
			return 7;
	} else if (n != sizeof(size_t)) {
		return 7;
	}
	return 0;
}
cublasStatus_t cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t)
{
	return 0;
}
cublasStatus_t cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t, cublasLtMatmulDesc_t,
					      cublasLtMatrixLayout_t, cublasLtMatrixLayout_t,
					      cublasLtMatrixLayout_t, cublasLtMatrixLayout_t,
					      cublasLtMatmulPreference_t, int req,
					      cublasLtMatmulHeuristicResult_t *r, int *found)
{
	if (req < 1)
		return 7;
	r->algo.id = 1;
	*found = 1;
	return 0;
}

static float load(const void *p, cudaDataType_t t, size_t i)
{
	if (t == CUDA_R_32F)
		return ((const float *)p)[i];
	return __bfloat162float(((const __nv_bfloat16 *)p)[i]);
}

static void store(void *p, cudaDataType_t t, size_t i, float v)
{
	if (t == CUDA_R_32F)
		((float *)p)[i] = v;
	else
		((__nv_bfloat16 *)p)[i] = __float2bfloat16_rn(v);
}

cublasStatus_t cublasLtMatmul(cublasLtHandle_t, cublasLtMatmulDesc_t d, const void *alpha,
			      const void *A, cublasLtMatrixLayout_t la, const void *B,
			      cublasLtMatrixLayout_t lb, const void *beta, const void *C,
			      cublasLtMatrixLayout_t lc, void *D, cublasLtMatrixLayout_t ld,
			      const cublasLtMatmulAlgo_t *, void *, size_t, cudaStream_t)
{
	bool ta = d->ta == CUBLAS_OP_T, tb = d->tb == CUBLAS_OP_T;
	uint64_t m = ld->rows, n = ld->cols;
	uint64_t am = ta ? la->cols : la->rows, k = ta ? la->rows : la->cols;
	uint64_t bk = tb ? lb->cols : lb->rows, bn = tb ? lb->rows : lb->cols;
	if (am != m || bk != k || bn != n || lc->rows != m || lc->cols != n || C != D ||
	    la->type != lb->type) {
		fprintf(stderr,
			"cuda_sim: cublasLtMatmul shapes do not agree: D %llux%llu, op(A) "
			"%llux%llu, "
			"op(B) %llux%llu\n",
			(unsigned long long)m, (unsigned long long)n, (unsigned long long)am,
			(unsigned long long)k, (unsigned long long)bk, (unsigned long long)bn);
		abort();
	}
	float al = *(const float *)alpha, be = *(const float *)beta;
	for (uint64_t j = 0; j < n; j++)
		for (uint64_t i = 0; i < m; i++) {
			double s = 0;
			for (uint64_t p = 0; p < k; p++) {
				float a = load(A, la->type, ta ? p + i * la->ld : i + p * la->ld);
				float b = load(B, lb->type, tb ? j + p * lb->ld : p + j * lb->ld);
				s += (double)a * b;
			}
			size_t o = i + j * ld->ld;
			float prev = be != 0.0f ? load(C, lc->type, o) : 0.0f;
			store(D, ld->type, o, al * (float)s + be * prev);
		}
	return 0;
}
