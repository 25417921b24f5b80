/*
 * backend_cuda.cu - the CUDA backend's op table (ft/backend.h), its
 * per-thread context (device, cuBLASLt handle + workspace, scratch) and the
 * device memory helpers. Each op lives in its own file beside this one,
 * math at the top.
 *
 * Context life: ft_cuda_init(device) on the thread that will issue the ops
 * (one thread per GPU); ft_backend_cuda() initialises device 0 when the
 * thread has no context yet; ft_cuda_release() frees it.
 */
#include <mutex>

#include "cuda_int.cuh"

#define LT_WORKSPACE_BYTES ((size_t)32 << 20) /* cuBLASLt's advice for Hopper */

static thread_local struct ft_cuda_ctx t_ctx = { -1, nullptr, nullptr, 0, nullptr, 0, 0, 0 };

struct ft_cuda_ctx *ft_cuda_ctx(void)
{
	FT_CUDA_ASSERT(t_ctx.device >= 0 && "call ft_cuda_init (or ft_backend_cuda) first");
	return &t_ctx;
}

void *ft_cuda_scratch(size_t bytes)
{
	struct ft_cuda_ctx *c = ft_cuda_ctx();
	if (bytes > c->scratch_bytes) {
		size_t want = bytes + bytes / 4;
		FT_CUDA_CHECK(cudaDeviceSynchronize()); /* earlier ops may still read it */
		FT_CUDA_CHECK(cudaFree(c->scratch));
		c->scratch = nullptr;
		FT_CUDA_CHECK(cudaMalloc(&c->scratch, want));
		c->scratch_bytes = want;
	}
	return c->scratch;
}

extern "C" enum ft_rc ft_cuda_init(int device, struct ft_err *err)
{
	int n = 0;
	cudaError_t e = cudaGetDeviceCount(&n);
	if (e != cudaSuccess || n == 0)
		return ft_failf(err, FT_EUNAVAIL, "no_cuda_device", "no CUDA device (%s)",
				e != cudaSuccess ? cudaGetErrorString(e) : "the driver lists none");
	if (device < 0 || device >= n)
		return ft_failf(err, FT_EINVAL, "bad_cuda_device",
				"CUDA device %d does not exist (%d present)", device, n);
	if (t_ctx.device == device)
		return FT_OK;
	if (t_ctx.device >= 0)
		ft_cuda_release();
	FT_CUDA_CHECK(cudaSetDevice(device));
	cudaDeviceProp prop;
	FT_CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
	t_ctx.sm_count = prop.multiProcessorCount;
	t_ctx.smem_optin = prop.sharedMemPerBlockOptin;
	FT_CUBLAS_CHECK(cublasLtCreate(&t_ctx.lt));
	e = cudaMalloc(&t_ctx.lt_ws, LT_WORKSPACE_BYTES);
	if (e != cudaSuccess) {
		cublasLtDestroy(t_ctx.lt);
		return ft_failf(
			err, FT_ENOMEM, "cuda_oom",
			"cannot allocate the cuBLASLt workspace (%zu bytes) on CUDA device %d: %s",
			LT_WORKSPACE_BYTES, device, cudaGetErrorString(e));
	}
	t_ctx.lt_ws_bytes = LT_WORKSPACE_BYTES;
	t_ctx.device = device;
	return FT_OK;
}

extern "C" void ft_cuda_release(void)
{
	if (t_ctx.device < 0)
		return;
	FT_CUDA_CHECK(cudaDeviceSynchronize());
	FT_CUDA_CHECK(cudaFree(t_ctx.lt_ws));
	FT_CUDA_CHECK(cudaFree(t_ctx.scratch));
	FT_CUBLAS_CHECK(cublasLtDestroy(t_ctx.lt));
	t_ctx = { -1, nullptr, nullptr, 0, nullptr, 0, 0, 0 };
}

extern "C" enum ft_rc ft_cuda_mem_info(size_t *free_bytes, size_t *total_bytes, struct ft_err *err)
{
	cudaError_t e = cudaMemGetInfo(free_bytes, total_bytes);
	if (e != cudaSuccess)
		return ft_failf(err, FT_EUNAVAIL, "no_cuda_device", "cannot read GPU memory: %s",
				cudaGetErrorString(e));
	return FT_OK;
}

extern "C" void *ft_cuda_alloc(size_t bytes, struct ft_err *err)
{
	void *p = nullptr;
	cudaError_t e = cudaMalloc(&p, bytes ? bytes : 1);
	if (e != cudaSuccess) {
		(void)cudaGetLastError(); /* clear the sticky-free error state */
		ft_failf(err, FT_ENOMEM, "cuda_oom", "cannot allocate %zu bytes on the GPU: %s",
			 bytes, cudaGetErrorString(e));
		return nullptr;
	}
	return p;
}

extern "C" void ft_cuda_free(void *dev)
{
	FT_CUDA_CHECK(cudaFree(dev));
}

extern "C" void ft_cuda_upload(void *dev_dst, const void *host_src, size_t bytes)
{
	FT_CUDA_CHECK(cudaMemcpy(dev_dst, host_src, bytes, cudaMemcpyHostToDevice));
}

extern "C" void ft_cuda_download(void *host_dst, const void *dev_src, size_t bytes)
{
	FT_CUDA_CHECK(cudaMemcpy(host_dst, dev_src, bytes, cudaMemcpyDeviceToHost));
}

extern "C" void ft_cuda_memset(void *dev_dst, int byte, size_t bytes)
{
	FT_CUDA_CHECK(cudaMemset(dev_dst, byte, bytes));
}

extern "C" void ft_cuda_sync(void)
{
	FT_CUDA_CHECK(cudaDeviceSynchronize());
}

__global__ static void f32_to_bf16_kernel(__nv_bfloat16 *out, const float *in, size_t n)
{
	for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
	     i += (size_t)blockDim.x * gridDim.x)
		out[i] = __float2bfloat16_rn(in[i]);
}

__global__ static void bf16_to_f32_kernel(float *out, const __nv_bfloat16 *in, size_t n)
{
	for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
	     i += (size_t)blockDim.x * gridDim.x)
		out[i] = __bfloat162float(in[i]);
}

extern "C" void ft_cuda_f32_to_bf16(ft_bf16 *out, const float *in, size_t n)
{
	if (n == 0)
		return;
	f32_to_bf16_kernel<<<ft_cuda_blocks(n, 256), 256>>>((__nv_bfloat16 *)out, in, n);
	FT_CUDA_LAUNCHED();
}

extern "C" void ft_cuda_bf16_to_f32(float *out, const ft_bf16 *in, size_t n)
{
	if (n == 0)
		return;
	bf16_to_f32_kernel<<<ft_cuda_blocks(n, 256), 256>>>(out, (const __nv_bfloat16 *)in, n);
	FT_CUDA_LAUNCHED();
}

/* Filled by member name at first use (C++17 has no designated initialisers),
 * so members added to struct ft_backend later stay NULL until written. */
static struct ft_backend cuda_backend;

static void fill_table(struct ft_backend *b)
{
	b->name = "cuda";
	b->host_memory = false;
	b->alloc = ft_cuda_be_alloc;
	b->free = ft_cuda_free;
	b->upload = ft_cuda_upload;
	b->download = ft_cuda_download;
	b->zero = ft_cuda_be_zero;
	b->copy = ft_cuda_be_copy;
	b->mem_info = ft_cuda_be_mem_info;
	b->add = ft_cuda_add;
	b->dropout_fwd = ft_cuda_dropout_fwd;
	b->dropout_bwd = ft_cuda_dropout_bwd;
	b->attention_decode = ft_cuda_attention_decode;
	b->matmul_fwd = ft_cuda_matmul_fwd;
	b->matmul_bwd = ft_cuda_matmul_bwd;
	b->matmul_nf4_fwd = ft_cuda_matmul_nf4_fwd;
	b->matmul_nf4_bwd_input = ft_cuda_matmul_nf4_bwd_input;
	b->rmsnorm_fwd = ft_cuda_rmsnorm_fwd;
	b->rmsnorm_bwd = ft_cuda_rmsnorm_bwd;
	b->rope_fwd = ft_cuda_rope_fwd;
	b->rope_bwd = ft_cuda_rope_bwd;
	b->attention_fwd = ft_cuda_attention_fwd;
	b->attention_bwd = ft_cuda_attention_bwd;
	b->swiglu_fwd = ft_cuda_swiglu_fwd;
	b->swiglu_bwd = ft_cuda_swiglu_bwd;
	b->embedding_fwd = ft_cuda_embedding_fwd;
	b->embedding_bwd = ft_cuda_embedding_bwd;
	b->cross_entropy = ft_cuda_cross_entropy;
	b->adamw = ft_cuda_adamw;
	b->sumsq = ft_cuda_sumsq;
	b->scale = ft_cuda_scale;
}

extern "C" const struct ft_backend *ft_backend_cuda(struct ft_err *err)
{
	if (t_ctx.device < 0 && ft_cuda_init(0, err) != FT_OK)
		return nullptr;
	static std::once_flag once;
	std::call_once(once, fill_table, &cuda_backend);
	return &cuda_backend;
}
