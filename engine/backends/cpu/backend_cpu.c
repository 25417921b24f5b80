/*
 * backend_cpu.c - the CPU reference backend's op table (ft/backend.h).
 * Each op lives in its own file beside this one, math at the top.
 */
#include "cpu_int.h"

static const struct ft_backend cpu_backend = {
	.name = "cpu",
	.host_memory = true,
	.alloc = ft_cpu_alloc,
	.free = ft_cpu_free,
	.upload = ft_cpu_upload,
	.download = ft_cpu_download,
	.zero = ft_cpu_zero,
	.copy = ft_cpu_copy,
	.add = ft_cpu_add,
	.dropout_fwd = ft_cpu_dropout_fwd,
	.dropout_bwd = ft_cpu_dropout_bwd,
	.attention_decode = ft_cpu_attention_decode,
	.attention_decode_rows = ft_cpu_attention_decode_rows,
	.matmul_fwd = ft_cpu_matmul_fwd,
	.matmul_bwd = ft_cpu_matmul_bwd,
	.matmul_nf4_fwd = ft_cpu_matmul_nf4_fwd,
	.matmul_nf4_bwd_input = ft_cpu_matmul_nf4_bwd_input,
	.pw_pack = ft_cpu_pw_pack,
	.pw_free = ft_cpu_pw_free,
	.pw_bytes = ft_cpu_pw_bytes,
	.matmul_pw_fwd = ft_cpu_matmul_pw_fwd,
	.matmul_pw_fwd_multi = ft_cpu_matmul_pw_fwd_multi,
	.matmul_pw_fwd_add = ft_cpu_matmul_pw_fwd_add,
	.matmul_pw_bwd_input = ft_cpu_matmul_pw_bwd_input,
	.pw_bf16 = FT_CPU_BF16,
	.rmsnorm_fwd = ft_cpu_rmsnorm_fwd,
	.rmsnorm_bwd = ft_cpu_rmsnorm_bwd,
	.rope_fwd = ft_cpu_rope_fwd,
	.rope_bwd = ft_cpu_rope_bwd,
	.attention_fwd = ft_cpu_attention_fwd,
	.attention_bwd = ft_cpu_attention_bwd,
	.swiglu_fwd = ft_cpu_swiglu_fwd,
	.swiglu_bwd = ft_cpu_swiglu_bwd,
	.embedding_fwd = ft_cpu_embedding_fwd,
	.embedding_bwd = ft_cpu_embedding_bwd,
	.cross_entropy = ft_cpu_cross_entropy,
	.adamw = ft_cpu_adamw,
	.sumsq = ft_cpu_sumsq,
	.scale = ft_cpu_scale,
};

const struct ft_backend *ft_backend_cpu(void)
{
	return &cpu_backend;
}
