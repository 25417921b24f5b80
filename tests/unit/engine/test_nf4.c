/*
 * test_nf4.c - NF4 by hand: the codebook (the QLoRA paper's values as
 * bitsandbytes stores them), the nibble order, one block worked out on
 * paper, bitsandbytes' tie and padding rules, double quantisation of two
 * scales, the quant_state JSON (the text json.dumps wrote for a
 * bitsandbytes QuantState, byte for byte) with its errors, and the NF4
 * matmul ops giving the same bits as the fp32 ones on the dequantised weight. The peer test
 * tests/system/test_qlora_peer.py compares whole tensors with bitsandbytes.
 */
#include "ftest.h"
#include "ft/backend.h"
#include "ft/nf4.h"

#include <math.h>

/* bitsandbytes' NF4 values, printed by Python (repr of each fp32). */
static const double nf4_ref[16] = {
	-1.0,
	-0.6961928009986877,
	-0.5250730514526367,
	-0.39491748809814453,
	-0.28444138169288635,
	-0.18477343022823334,
	-0.09105003625154495,
	0.0,
	0.07958029955625534,
	0.16093020141124725,
	0.24611230194568634,
	0.33791524171829224,
	0.44070982933044434,
	0.5626170039176941,
	0.7229568362236023,
	1.0,
};

FT_TEST(nf4_codebook_is_bitsandbytes)
{
	for (int i = 0; i < 16; i++)
		FT_CHECK((double)ft_nf4_code[i] == nf4_ref[i]);
	/* create_dynamic_map(signed=True): sorted, 0 at 127, 1 at the top */
	FT_CHECK(ft_nf4_dynamic_map[0] == -0.99296875f);
	FT_CHECK(ft_nf4_dynamic_map[127] == 0.0f);
	FT_CHECK(ft_nf4_dynamic_map[128] == 0x1.27476ep-21f); /* 5.5e-07 in fp32 means */
	FT_CHECK(ft_nf4_dynamic_map[255] == 1.0f);
	for (int i = 1; i < 256; i++)
		FT_CHECK(ft_nf4_dynamic_map[i - 1] <= ft_nf4_dynamic_map[i]);
}

struct q {
	struct ft_nf4 q;
	void *mem;
};

static void qnew(struct q *x, int64_t rows, int64_t cols, bool nested)
{
	x->mem = aligned_alloc(16, ft_nf4_layout(rows, cols, nested));
	FT_ASSERT(x->mem);
	ft_nf4_point(&x->q, x->mem, rows, cols, nested);
}

FT_TEST(nf4_one_block_by_hand)
{
	/* absmax 2: s = w / 2. -2 -> -1 (code 0); 2 -> 1 (15); 0 -> 7;
	 * 1 -> 0.5, below the midpoint of 0.4407 and 0.5626 (0.5017): 12;
	 * 0.2 -> 0.1, below the midpoint of 0.0796 and 0.1609 (0.1203): 8 */
	float w[64] = { 2.0f, -2.0f, 0.0f, 1.0f, 0.2f };
	struct q x;
	struct ft_err err;
	ft_err_clear(&err);
	qnew(&x, 1, 64, false);
	FT_CHECK(ft_nf4_quantize(&x.q, w, &err) == FT_OK);
	FT_CHECK(x.q.absmax[0] == 2.0f);
	/* first element in the HIGH nibble */
	FT_CHECK(x.q.packed[0] == 0xF0);
	FT_CHECK(x.q.packed[1] == 0x7C);
	FT_CHECK(x.q.packed[2] == 0x87);
	for (int i = 3; i < 32; i++)
		FT_CHECK(x.q.packed[i] == 0x77);
	float d[64];
	ft_nf4_dequant(&x.q, d);
	FT_CHECK(d[0] == 2.0f && d[1] == -2.0f && d[2] == 0.0f);
	FT_CHECK(d[3] == 0x1.c3497p-2f * 2.0f); /* 0.44070982933044434 * 2 */
	FT_CHECK(d[4] == 0x1.45f5fep-4f * 2.0f); /* 0.07958029955625534 * 2 */
	free(x.mem);
}

FT_TEST(nf4_ties_take_the_lower_code_and_odd_n_pads_with_zero)
{
	/* 3 elements: one partial block (a division by the absmax, 1 here) */
	float mid = (ft_nf4_code[11] + ft_nf4_code[12]) / 2.0f;
	float w[3] = { 1.0f, mid, nextafterf(mid, 2.0f) };
	struct q x;
	struct ft_err err;
	ft_err_clear(&err);
	qnew(&x, 1, 3, false);
	FT_CHECK(ft_nf4_quantize(&x.q, w, &err) == FT_OK);
	FT_CHECK(x.q.packed[0] == ((15 << 4) | 11)); /* on the midpoint: the lower code */
	FT_CHECK(x.q.packed[1] == ((12 << 4) | 7)); /* the pad nibble is the code of 0.0 */
	free(x.mem);
	/* an all-zero partial block stores absmax 1e-38 (clamped), a full one 0 */
	float z[70] = { 0 };
	qnew(&x, 1, 70, false);
	FT_CHECK(ft_nf4_quantize(&x.q, z, &err) == FT_OK);
	FT_CHECK(x.q.absmax[0] == 0.0f && x.q.absmax[1] == 1e-38f);
	free(x.mem);
}

FT_TEST(nf4_double_quantisation_of_two_scales)
{
	/* block scales 2 and 4: offset = 3, a = [-1, 1], nested absmax 1;
	 * -1 -> table index 0 -> map[0] = -0.99296875; 1 -> index 65535 -> 255 (1.0) */
	float w[128] = { 0 };
	w[0] = 2.0f;
	w[64] = -4.0f;
	struct q x;
	struct ft_err err;
	ft_err_clear(&err);
	qnew(&x, 2, 64, true);
	FT_CHECK(ft_nf4_quantize(&x.q, w, &err) == FT_OK);
	FT_CHECK(x.q.offset == 3.0f);
	FT_CHECK(x.q.nested_absmax[0] == 1.0f);
	FT_CHECK(x.q.qabsmax[0] == 0 && x.q.qabsmax[1] == 255);
	FT_CHECK(ft_nf4_block_scale(&x.q, 0) == -0.99296875f + 3.0f);
	FT_CHECK(ft_nf4_block_scale(&x.q, 1) == 4.0f);
	free(x.mem);
	/* non-finite weights are refused */
	w[5] = NAN;
	qnew(&x, 2, 64, true);
	FT_CHECK(ft_nf4_quantize(&x.q, w, &err) == FT_EINVAL);
	FT_CHECK(strstr(err.msg, "element 5") != NULL);
	free(x.mem);
}

FT_TEST(nf4_quant_state_json)
{
	/* json.dumps of bitsandbytes' QuantState for a [3, 100] fp32 weight */
	static const char want[] =
		"{\"quant_type\": \"nf4\", \"blocksize\": 64, \"dtype\": \"float32\", \"shape\": "
		"[3, 100], \"nested_blocksize\": 256, \"nested_dtype\": \"float32\", "
		"\"nested_offset\": 2.4379239082336426}";
	struct q x;
	qnew(&x, 3, 100, true);
	x.q.offset = 2.4379239082336426f;
	struct ft_buf b = FT_BUF_INIT(4096);
	FT_CHECK(ft_nf4_state_json(&x.q, &b) == FT_OK);
	FT_CHECK_STR(ft_buf_str(&b), want);
	struct ft_nf4_state st;
	struct ft_err err;
	ft_err_clear(&err);
	FT_CHECK(ft_nf4_state_parse(b.ptr, b.len, &st, &err) == FT_OK);
	FT_CHECK(st.rows == 3 && st.cols == 100 && st.nested && st.offset == x.q.offset);
	ft_buf_release(&b);
	free(x.mem);
	/* Python's repr for whole numbers and small ones */
	qnew(&x, 1, 64, true);
	x.q.offset = 2.0f;
	b = (struct ft_buf)FT_BUF_INIT(4096);
	FT_CHECK(ft_nf4_state_json(&x.q, &b) == FT_OK);
	FT_CHECK(strstr(ft_buf_str(&b), "\"nested_offset\": 2.0}") != NULL);
	ft_buf_reset(&b);
	x.q.offset = 1e-05f;
	FT_CHECK(ft_nf4_state_json(&x.q, &b) == FT_OK);
	FT_CHECK(strstr(ft_buf_str(&b), "\"nested_offset\": 9.999999747378752e-06}") != NULL);
	ft_buf_release(&b);
	free(x.mem);
}

FT_TEST(nf4_matmul_equals_fp32_matmul_on_the_dequantised_weight)
{
	/* The NF4 ops dequantise 64 x 256 tiles and reduce in chunks of 256 in
	 * increasing order, as the fp32 GEMM does: the results are the same bits
	 * as matmul_fwd / matmul_bwd on the dequantised weight. Sizes cross the
	 * tile (OC 130 > 64) and chunk (IC 300 > 256) edges; N is odd. */
	enum { N = 7, IC = 300, OC = 130 };
	const struct ft_backend *be = ft_backend_cpu();
	float *w = malloc(sizeof(float) * OC * IC), *wd = malloc(sizeof(float) * OC * IC);
	float x[N * IC], dy[N * OC], bias[OC], y1[N * OC], y2[N * OC], dx1[N * IC], dx2[N * IC];
	uint32_t s = 12345;
	for (int i = 0; i < OC * IC; i++) {
		s = s * 1103515245u + 12345u;
		w[i] = ((float)(s >> 8) / 16777216.0f - 0.5f) * 0.2f;
	}
	for (int i = 0; i < N * IC; i++)
		x[i] = dx1[i] = dx2[i] = (float)((i * 37) % 101) / 50.0f - 1.0f;
	for (int i = 0; i < N * OC; i++)
		dy[i] = (float)((i * 13) % 29) / 14.0f - 1.0f;
	for (int i = 0; i < OC; i++)
		bias[i] = 0.01f * (float)i;
	struct q qq;
	struct ft_err err;
	ft_err_clear(&err);
	qnew(&qq, OC, IC, true);
	FT_CHECK(ft_nf4_quantize(&qq.q, w, &err) == FT_OK);
	ft_nf4_dequant(&qq.q, wd);
	be->matmul_fwd(y1, x, wd, bias, N, IC, OC, false);
	be->matmul_nf4_fwd(y2, x, &qq.q, bias, N, IC, OC);
	FT_CHECK(memcmp(y1, y2, sizeof y1) == 0);
	be->matmul_bwd(dx1, NULL, NULL, dy, x, wd, N, IC, OC);
	be->matmul_nf4_bwd_input(dx2, dy, &qq.q, N, IC, OC);
	FT_CHECK(memcmp(dx1, dx2, sizeof dx1) == 0);
	free(qq.mem);
	free(w);
	free(wd);
}

static const char *parse_msg(const char *text)
{
	static struct ft_err err;
	struct ft_nf4_state st;
	ft_err_clear(&err);
	if (ft_nf4_state_parse(text, strlen(text), &st, &err) == FT_OK)
		return "";
	return err.msg;
}

FT_TEST(nf4_quant_state_errors)
{
	FT_CHECK_STR(parse_msg("{\"quant_type\": \"fp4\", \"blocksize\": 64, \"dtype\": "
			       "\"float32\", \"shape\": [2, 64]}"),
		     "quant_state: \"quant_type\" must be \"nf4\" (got \"fp4\")");
	FT_CHECK_STR(parse_msg("{\"quant_type\": \"nf4\", \"blocksize\": 128, \"dtype\": "
			       "\"float32\", \"shape\": [2, 64]}"),
		     "quant_state: \"blocksize\" must be 64 (got 128)");
	FT_CHECK_STR(parse_msg("{\"quant_type\": \"nf4\", \"blocksize\": 64, \"dtype\": "
			       "\"int8\", \"shape\": [2, 64]}"),
		     "quant_state: \"dtype\" must be float32, bfloat16 or float16 (got \"int8\")");
	FT_CHECK_STR(parse_msg("{\"quant_type\": \"nf4\", \"blocksize\": 64, \"dtype\": "
			       "\"float32\", \"shape\": [128]}"),
		     "quant_state: \"shape\" must be [rows, columns]");
	FT_CHECK_STR(parse_msg("{\"quant_type\": \"nf4\", \"blocksize\": 64, \"dtype\": "
			       "\"float32\", \"shape\": [2, 64], \"nested_blocksize\": 256}"),
		     "quant_state: \"nested_dtype\" must be \"float32\"");
	FT_CHECK(strstr(parse_msg("[1, 2]"), "must be a JSON object") != NULL);
	FT_CHECK(strstr(parse_msg("{\"quant_type\": \"nf4\", \"x\": 1}"), "unknown field \"x\"") !=
		 NULL);
}

FT_TEST_MAIN()
