/*
 * test_mem_estimate.c - the GPU memory estimate against hand computations
 * (formulas at the top of trainer/plan/mem_estimate.c), for a
 * Llama-3.1-8B shape and a Llama-3.2-1B shape.
 *
 * Llama-3.1-8B: V 128256, C 4096, I 14336, L 32, 32 heads, 8 kv heads,
 * hd 128, untied. Per layer: q 4096*4096 = 16,777,216; k, v 4096*1024 =
 * 4,194,304 each; o 16,777,216; gate, up, down 4096*14336 = 58,720,256 each;
 * linears 218,103,808; norms 8192. P = 32 * (218,103,808 + 8192)
 * + 2 * 128256 * 4096 + 4096 = 8,030,261,248.
 *
 * Llama-3.2-1B: V 128256, C 2048, I 8192, L 16, 32 heads, 8 kv heads, hd 64,
 * tied. Per layer: linears 60,817,408, norms 4096. P = 16 * 60,821,504
 * + 128256 * 2048 + 2048 = 1,235,814,400.
 */
#include "ft/mem_estimate.h"
#include "ft/model.h"
#include "ftest.h"

static struct ft_model_config llama8b(void)
{
	struct ft_model_config c;
	memset(&c, 0, sizeof(c));
	c.vocab_size = 128256;
	c.hidden_size = 4096;
	c.intermediate_size = 14336;
	c.num_layers = 32;
	c.num_heads = 32;
	c.num_kv_heads = 8;
	c.head_dim = 128;
	return c;
}

static struct ft_model_config llama1b(void)
{
	struct ft_model_config c;
	memset(&c, 0, sizeof(c));
	c.vocab_size = 128256;
	c.hidden_size = 2048;
	c.intermediate_size = 8192;
	c.num_layers = 16;
	c.num_heads = 32;
	c.num_kv_heads = 8;
	c.head_dim = 64;
	c.tie_word_embeddings = true;
	return c;
}

#define ALL_LINEAR ((1u << FT_LIN_COUNT) - 1)

FT_TEST(llama8b_lora_r16_all_linear)
{
	struct ft_model_config c = llama8b();
	struct ft_mem_job j = { .model = &c,
				.method = FT_MEM_LORA,
				.lora_r = 16,
				.lora_targets = ALL_LINEAR,
				.batch_size = 4,
				.seq_len = 2048,
				.gpus = 1 };
	struct ft_err err;
	ft_err_clear(&err);
	FT_CHECK(ft_mem_job_check(&j, &err) == FT_OK);
	struct ft_mem_estimate e;
	ft_mem_estimate(&j, &e);
	FT_CHECK_INT(e.params, 8030261248LL);
	/* Pt = 32 * 16 * [(4096+4096) q + (4096+1024) k + (4096+1024) v + (4096+4096) o
	 *                 + 3 * (4096+14336) mlp] = 32 * 16 * 81,920 = 41,943,040 (peft prints
	 * the same for r=16 all-linear on Llama-3-8B) */
	FT_CHECK_INT(e.trainable, 41943040LL);
	/* weights: 2 P + 2 Pt = 16,060,522,496 + 83,886,080 */
	FT_CHECK_INT(e.weights, 16144408576LL);
	FT_CHECK_INT(e.gradients, 4LL * 41943040); /* 167,772,160 */
	FT_CHECK_INT(e.optimizer, 12LL * 41943040); /* 503,316,480 */
	/* A = 2 (4*4096 + 2*4096 + 2*1024 + 3*14336 + 7*16 rank) + 4 (2 + 32)
	 *   = 2 * 69,744 + 136 = 139,624 bytes per token per layer;
	 * n = 8192 tokens: 8192 * 32 * 139,624 = 36,601,593,856 */
	FT_CHECK_INT(e.activations, 36601593856LL);
	/* logits 8192 * 128256 * 4 */
	FT_CHECK_INT(e.logits, 4202692608LL);
	/* workspace 2 * 8192 * (3*14336 + 2*4096) + 32 MiB = 838,860,800 + 33,554,432 */
	FT_CHECK_INT(e.workspace, 872415232LL);
	FT_CHECK_INT(e.runtime, 1073741824LL);
	FT_CHECK_INT(e.total, 59565940736LL); /* 55.5 GiB */

	/* It does not fit 40 GiB: the message gives the breakdown and the remedy. */
	ft_err_clear(&err);
	FT_CHECK(ft_mem_estimate_check(&j, &e, 40ULL << 30, &err) == FT_ELIMIT);
	FT_CHECK_STR(err.msg,
		     "job needs 55.5 GiB on each GPU (weights 15.0, gradients 0.2, optimizer 0.5, "
		     "activations 34.1, logits 3.9, workspace 0.8, runtime 1.0) but the GPU has "
		     "40.0 GiB free; enable gradient_checkpointing or lower batch_size");
	ft_err_clear(&err);
	FT_CHECK(ft_mem_estimate_check(&j, &e, 80ULL << 30, &err) == FT_OK);

	/* Checkpointing every layer: n (32 * 2 * 4096 + 1 * 139,624) = 8192 * 401,768 */
	j.checkpoint_every = 1;
	ft_mem_estimate(&j, &e);
	FT_CHECK_INT(e.activations, 3291283456LL);
	/* every 4 layers: n (8 * 8192 + 4 * 139,624) = 8192 * 624,032 = 5,112,070,144 */
	j.checkpoint_every = 4;
	ft_mem_estimate(&j, &e);
	FT_CHECK_INT(e.activations, 5112070144LL);
	/* LoRA dropout keeps each adapter's dropped input: + 2 (6 * 4096 + 14336) = 77,824
	 * bytes per token per layer, over 32 layers and 8192 tokens with no checkpointing */
	j.checkpoint_every = 0;
	j.lora_dropout = true;
	ft_mem_estimate(&j, &e);
	FT_CHECK_INT(e.activations, 36601593856LL + 8192LL * 32 * 77824);
	/* layers_to_transform on 8 of the 32 layers: 8 * 16 * 81,920 = 10,485,760,
	 * a quarter of the adapter */
	j.lora_layers = 8;
	ft_mem_estimate(&j, &e);
	FT_CHECK_INT(e.trainable, 10485760LL);
	FT_CHECK_INT(e.weights, 16060522496LL + 2 * 10485760LL);
}

FT_TEST(llama8b_qlora_weights)
{
	struct ft_model_config c = llama8b();
	struct ft_mem_job j = { .model = &c,
				.method = FT_MEM_QLORA,
				.lora_r = 16,
				.lora_targets = ALL_LINEAR,
				.batch_size = 1,
				.seq_len = 2048,
				.checkpoint_every = 1,
				.gpus = 1 };
	struct ft_mem_estimate e;
	ft_mem_estimate(&j, &e);
	/* NF4 bytes of a tensor of n weights: n/2 + n/64 scales + 4 ceil(n/64/256) + 4 offset
	 *   q, o   16,777,216: 8,388,608 + 262,144 + 4,096 + 4 = 8,654,852
	 *   k, v    4,194,304: 2,097,152 +  65,536 + 1,024 + 4 = 2,163,716
	 *   mlp    58,720,256: 29,360,128 + 917,504 + 14,336 + 4 = 30,291,972
	 * per layer 2 * 8,654,852 + 2 * 2,163,716 + 3 * 30,291,972 = 112,513,052, x 32
	 * = 3,600,417,664; the rest bf16: 2 * (8,030,261,248 - 32 * 218,103,808)
	 * = 2,101,878,784; adapters 2 * 41,943,040 = 83,886,080 */
	FT_CHECK_INT(e.weights, 3600417664LL + 2101878784LL + 83886080LL);
	/* workspace adds one dequantised 4096 x 14336 linear in bf16: 117,440,512 */
	FT_CHECK_INT(e.workspace, 2LL * 2048 * (3 * 14336 + 2 * 4096) + 33554432 + 117440512);
	struct ft_mem_job lora = j;
	lora.method = FT_MEM_LORA;
	struct ft_mem_estimate el;
	ft_mem_estimate(&lora, &el);
	FT_CHECK(e.total < el.total);
}

FT_TEST(llama1b_full_zero1_two_gpus)
{
	struct ft_model_config c = llama1b();
	struct ft_mem_job j = { .model = &c,
				.method = FT_MEM_FULL,
				.batch_size = 8,
				.seq_len = 1024,
				.checkpoint_every = 1,
				.gpus = 2,
				.zero1 = true };
	struct ft_mem_estimate e;
	ft_mem_estimate(&j, &e);
	FT_CHECK_INT(e.params, 1235814400LL);
	FT_CHECK_INT(e.trainable, 1235814400LL);
	FT_CHECK_INT(e.weights, 2471628800LL); /* 2 P */
	FT_CHECK_INT(e.gradients, 4943257600LL); /* 4 P */
	/* shard: P / (2 * 64) = 9,654,800 exactly, so 617,907,200 per GPU; x 12 */
	FT_CHECK_INT(e.optimizer, 7414886400LL);
	/* A = 2 (4*2048 + 2*2048 + 2*512 + 3*8192) + 4 (2 + 32) = 75,912;
	 * n (16 * 2 * 2048 + 75,912) = 8192 * 141,448 = 1,158,742,016 */
	FT_CHECK_INT(e.activations, 1158742016LL);
	FT_CHECK_INT(e.logits, 4202692608LL);
	/* 2 * 8192 * (3*8192 + 2*2048) + 32 MiB = 469,762,048 + 33,554,432 */
	FT_CHECK_INT(e.workspace, 503316480LL);
	FT_CHECK_INT(e.runtime, 1610612736LL); /* 1 GiB + 512 MiB for NCCL */
	FT_CHECK_INT(e.total, 22305136640LL);
	/* without ZeRO-1 each GPU holds the whole optimizer: 12 P */
	j.zero1 = false;
	ft_mem_estimate(&j, &e);
	FT_CHECK_INT(e.optimizer, 14829772800LL);
	/* a logits chunk of 1024 rows: 1024 * 128256 * 4 */
	j.logits_chunk = 1024;
	ft_mem_estimate(&j, &e);
	FT_CHECK_INT(e.logits, 525336576LL);
}

FT_TEST(llama1b_full_fp32_path)
{
	/* ft-train's "device": "cuda" runs the fp32 path: 4-byte weights,
	 * activations and workspace; the weights are their own master copy */
	struct ft_model_config c = llama1b();
	struct ft_mem_job j = { .model = &c,
				.method = FT_MEM_FULL,
				.batch_size = 8,
				.seq_len = 1024,
				.checkpoint_every = 1,
				.gpus = 1,
				.fp32 = true };
	struct ft_mem_estimate e;
	ft_mem_estimate(&j, &e);
	FT_CHECK_INT(e.weights, 4943257600LL); /* 4 P */
	FT_CHECK_INT(e.gradients, 4943257600LL); /* 4 P */
	FT_CHECK_INT(e.optimizer, 9886515200LL); /* 8 P: m and v */
	/* A = 4 (4*2048 + 2*2048 + 2*512 + 3*8192) + 4 (2 + 32) = 151,688;
	 * n (16 * 4 * 2048 + 151,688) = 8192 * 282,760 = 2,316,369,920 */
	FT_CHECK_INT(e.activations, 2316369920LL);
	FT_CHECK_INT(e.logits, 4202692608LL); /* fp32 either way */
	/* 4 * 8192 * (3*8192 + 2*2048) + 32 MiB = 939,524,096 + 33,554,432 */
	FT_CHECK_INT(e.workspace, 973078528LL);
	FT_CHECK_INT(e.runtime, 1073741824LL);
}

FT_TEST(job_check_names_the_field)
{
	struct ft_model_config c = llama1b();
	struct ft_mem_job j = { .model = &c,
				.method = FT_MEM_LORA,
				.lora_r = 8,
				.lora_targets = 1,
				.batch_size = 0,
				.seq_len = 512,
				.gpus = 1 };
	struct ft_err err;
	ft_err_clear(&err);
	FT_CHECK(ft_mem_job_check(&j, &err) == FT_EINVAL);
	FT_CHECK_STR(err.msg, "\"batch_size\" must be >= 1 (got 0)");
	j.batch_size = 1;
	j.lora_targets = 0;
	ft_err_clear(&err);
	FT_CHECK(ft_mem_job_check(&j, &err) == FT_EINVAL);
	FT_CHECK_STR(err.msg, "\"lora.target_modules\" must name at least one linear");
}

FT_TEST_MAIN()
