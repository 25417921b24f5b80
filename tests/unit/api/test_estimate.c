/*
 * test_estimate.c - the GPU memory estimate behind admission, against
 * hand-computed values for a Llama-3.1-8B-shaped model (8,030,261,248
 * parameters, hidden 4096, 32 layers).
 */
#include "../../../api/src/api_int.h"
#include "ftest.h"

FT_TEST(estimate_matches_hand_computation)
{
	long long P = 8030261248LL;
	/* LoRA, batch 4: 2P + 0.08P + 4*2048*4096*98*2 + 2^30 */
	long long lora = (long long)(2.0 * P + 0.08 * P + 4.0 * 2048 * 4096 * 98 * 2) + (1LL << 30);
	FT_CHECK_INT(api_estimate_gpu_mem(P, 4096, 32, "lora", 4), lora);
	/* 16.06 + 0.64 + 6.58 + 1.07 = about 24.35 GB: fits one 80 GB GPU */
	FT_CHECK(lora > 24300000000LL && lora < 24400000000LL);
	/* Full fine-tuning, batch 1: 18P + 1*2048*4096*98*2 + 2^30, about 147 GB */
	long long full = (long long)(18.0 * P + 2048.0 * 4096 * 98 * 2) + (1LL << 30);
	FT_CHECK_INT(api_estimate_gpu_mem(P, 4096, 32, "none", 1), full);
	FT_CHECK(full > 140000000000LL);
	/* QLoRA needs less than LoRA for the same shape. */
	FT_CHECK(api_estimate_gpu_mem(P, 4096, 32, "qlora", 4) < lora);
}

FT_TEST_MAIN()
