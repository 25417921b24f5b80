/*
 * nf4.c - NF4 quantisation as bitsandbytes does it (ft/nf4.h gives the
 * format), bit-identical to bitsandbytes 0.50 on the CPU (the peer test
 * tests/system/test_qlora_peer.py checks packed bytes, absmax, nested values
 * and dequantised weights against it).
 *
 * All arithmetic is fp32 with round-to-nearest and no fused multiply-add
 * (this file is built with -ffp-contract=off).
 *
 * 4-bit codes (bitsandbytes' quantize_4bit, its "default" torch kernel):
 *   full blocks of 64:  absmax_b = max_i |w_i|
 *                       s_i = clamp(w_i * (1 / max(absmax_b, 1e-38)), -1, 1)
 *   a last partial block: absmax_b = max(max_i |w_i|, 1e-38)   (stored clamped)
 *                       s_i = clamp(w_i / absmax_b, -1, 1)       (a division)
 *   q_i = #{ j : bound_j < s_i },  bound_j = (code_j + code_j+1) / 2
 *         (torch.bucketize: a value exactly on a midpoint takes the LOWER code)
 *   byte k = q_2k << 4 | q_2k+1; an odd n pads with the code of 0.0 (7)
 * Dequantise: w_i = code[q_i] * absmax_b.
 *
 * Double quantisation (quantize_4bit(compress_statistics=True)):
 *   offset = mean(absmax) as torch computes it in fp32: the cascade sum of
 *            aten/src/ATen/native/cpu/SumKernel.cpp with 8-lane vectors
 *            (torch_sum below), divided by nb;
 *   a_b    = absmax_b - offset
 *   per block of 256: m = max |a_b| (nested_absmax); m == 0: every code 0;
 *            else v = clamp(a_b * (1 / m), -1, 1),
 *            idx = (uint16)(((v + 1) * 0.5) * 65535 + 0.5)   (truncated),
 *            qabsmax_b = lut[idx], where lut[i] is the index of the first
 *            midpoint (0.5 * (map_j + map_j+1)) not below -1 + 2i / 65535
 *            (bitsandbytes' CPU blockwise quantiser: a 65536-entry table
 *            instead of an exact nearest search);
 *   absmax_b = map[qabsmax_b] * nested_absmax_(b/256) + offset.
 * The map is create_dynamic_map(signed=True): 256 sorted fp32 values.
 */
#include "ft/nf4.h"
#include "ft/safetensors.h"
#include "ft/json.h"

#include <math.h>
#include <pthread.h>

const float ft_nf4_code[16] = {
	-1.0f,
	-0x1.647362p-1f, /* -0.6961928009986877 */
	-0x1.0cd66p-1f, /* -0.5250730514526367 */
	-0x1.94654p-2f, /* -0.39491748809814453 */
	-0x1.23449ap-2f, /* -0.28444138169288635 */
	-0x1.7a6a7ep-3f, /* -0.18477343022823334 */
	-0x1.74f0e2p-4f, /* -0.09105003625154495 */
	0.0f,
	0x1.45f5fep-4f, /* 0.07958029955625534 */
	0x1.4995c6p-3f, /* 0.16093020141124725 */
	0x1.f809bap-3f, /* 0.24611230194568634 */
	0x1.5a0674p-2f, /* 0.33791524171829224 */
	0x1.c3497p-2f, /* 0.44070982933044434 */
	0x1.200f56p-1f, /* 0.5626170039176941 */
	0x1.722766p-1f, /* 0.7229568362236023 */
	1.0f,
};

const float ft_nf4_dynamic_map[256] = {
	-0x1.fc66660000000p-1f,	 -0x1.f533340000000p-1f,
	-0x1.ee00000000000p-1f,	 -0x1.e6cccc0000000p-1f,
	-0x1.df999a0000000p-1f,	 -0x1.d866660000000p-1f,
	-0x1.d133340000000p-1f,	 -0x1.ca00000000000p-1f,
	-0x1.c2cccc0000000p-1f,	 -0x1.bb999a0000000p-1f,
	-0x1.b466660000000p-1f,	 -0x1.ad33340000000p-1f,
	-0x1.a600000000000p-1f,	 -0x1.9ecccc0000000p-1f,
	-0x1.97999a0000000p-1f,	 -0x1.9066660000000p-1f,
	-0x1.8933340000000p-1f,	 -0x1.8200000000000p-1f,
	-0x1.7acccc0000000p-1f,	 -0x1.73999a0000000p-1f,
	-0x1.6c66680000000p-1f,	 -0x1.6533340000000p-1f,
	-0x1.5e00000000000p-1f,	 -0x1.56cccc0000000p-1f,
	-0x1.4f999a0000000p-1f,	 -0x1.4866680000000p-1f,
	-0x1.4133340000000p-1f,	 -0x1.3a00000000000p-1f,
	-0x1.32cccc0000000p-1f,	 -0x1.2b999a0000000p-1f,
	-0x1.2466680000000p-1f,	 -0x1.1d33340000000p-1f,
	-0x1.1600000000000p-1f,	 -0x1.0ecccc0000000p-1f,
	-0x1.0799980000000p-1f,	 -0x1.0066660000000p-1f,
	-0x1.f266640000000p-2f,	 -0x1.e400000000000p-2f,
	-0x1.d599980000000p-2f,	 -0x1.c733340000000p-2f,
	-0x1.b8cccc0000000p-2f,	 -0x1.aa66660000000p-2f,
	-0x1.9c00000000000p-2f,	 -0x1.8d99980000000p-2f,
	-0x1.7f33340000000p-2f,	 -0x1.70cccc0000000p-2f,
	-0x1.6266660000000p-2f,	 -0x1.5400000000000p-2f,
	-0x1.4599980000000p-2f,	 -0x1.3733340000000p-2f,
	-0x1.28cccc0000000p-2f,	 -0x1.1a66680000000p-2f,
	-0x1.0c00000000000p-2f,	 -0x1.fb33320000000p-3f,
	-0x1.de66660000000p-3f,	 -0x1.c1999a0000000p-3f,
	-0x1.a4cccc0000000p-3f,	 -0x1.8800000000000p-3f,
	-0x1.6b33340000000p-3f,	 -0x1.4e66660000000p-3f,
	-0x1.31999a0000000p-3f,	 -0x1.14cccc0000000p-3f,
	-0x1.f000000000000p-4f,	 -0x1.b666680000000p-4f,
	-0x1.93d70a0000000p-4f,	 -0x1.8851ee0000000p-4f,
	-0x1.7cccce0000000p-4f,	 -0x1.7147ae0000000p-4f,
	-0x1.65c2900000000p-4f,	 -0x1.5a3d700000000p-4f,
	-0x1.4eb8540000000p-4f,	 -0x1.4333340000000p-4f,
	-0x1.37ae140000000p-4f,	 -0x1.2c28f60000000p-4f,
	-0x1.20a3d60000000p-4f,	 -0x1.151eba0000000p-4f,
	-0x1.09999a0000000p-4f,	 -0x1.fc28f60000000p-5f,
	-0x1.e51eba0000000p-5f,	 -0x1.ce147a0000000p-5f,
	-0x1.b70a3e0000000p-5f,	 -0x1.a000000000000p-5f,
	-0x1.88f5c20000000p-5f,	 -0x1.71eb860000000p-5f,
	-0x1.5ae1460000000p-5f,	 -0x1.43d70a0000000p-5f,
	-0x1.2cccce0000000p-5f,	 -0x1.15c2900000000p-5f,
	-0x1.fd70a40000000p-6f,	 -0x1.cf5c2a0000000p-6f,
	-0x1.a147ae0000000p-6f,	 -0x1.7333340000000p-6f,
	-0x1.451eba0000000p-6f,	 -0x1.170a3e0000000p-6f,
	-0x1.d1eb860000000p-7f,	 -0x1.75c2900000000p-7f,
	-0x1.3e76c80000000p-7f,	 -0x1.2c08300000000p-7f,
	-0x1.19999a0000000p-7f,	 -0x1.072b020000000p-7f,
	-0x1.e978d40000000p-8f,	 -0x1.c49ba60000000p-8f,
	-0x1.9fbe760000000p-8f,	 -0x1.7ae1480000000p-8f,
	-0x1.56041a0000000p-8f,	 -0x1.3126e80000000p-8f,
	-0x1.0c49ba0000000p-8f,	 -0x1.ced9140000000p-9f,
	-0x1.851eb80000000p-9f,	 -0x1.3b645a0000000p-9f,
	-0x1.e353f80000000p-10f, -0x1.4fdf3a0000000p-10f,
	-0x1.eecbfe0000000p-11f, -0x1.b3d07c0000000p-11f,
	-0x1.78d5000000000p-11f, -0x1.3dd9820000000p-11f,
	-0x1.02de020000000p-11f, -0x1.8fc5060000000p-12f,
	-0x1.19ce0a0000000p-12f, -0x1.47ae160000000p-13f,
	-0x1.743e960000000p-14f, -0x1.15df660000000p-14f,
	-0x1.6f00680000000p-15f, -0x1.64840c0000000p-16f,
	-0x1.040bfe0000000p-17f, -0x1.b435280000000p-19f,
	-0x1.27476e0000000p-21f, 0x0p+0f,
	0x1.27476e0000000p-21f,	 0x1.b435280000000p-19f,
	0x1.040bfe0000000p-17f,	 0x1.64840c0000000p-16f,
	0x1.6f00680000000p-15f,	 0x1.15df660000000p-14f,
	0x1.743e960000000p-14f,	 0x1.47ae160000000p-13f,
	0x1.19ce0a0000000p-12f,	 0x1.8fc5060000000p-12f,
	0x1.02de020000000p-11f,	 0x1.3dd9820000000p-11f,
	0x1.78d5000000000p-11f,	 0x1.b3d07c0000000p-11f,
	0x1.eecbfe0000000p-11f,	 0x1.4fdf3a0000000p-10f,
	0x1.e353f80000000p-10f,	 0x1.3b645a0000000p-9f,
	0x1.851eb80000000p-9f,	 0x1.ced9140000000p-9f,
	0x1.0c49ba0000000p-8f,	 0x1.3126e80000000p-8f,
	0x1.56041a0000000p-8f,	 0x1.7ae1480000000p-8f,
	0x1.9fbe760000000p-8f,	 0x1.c49ba60000000p-8f,
	0x1.e978d40000000p-8f,	 0x1.072b020000000p-7f,
	0x1.19999a0000000p-7f,	 0x1.2c08300000000p-7f,
	0x1.3e76c80000000p-7f,	 0x1.75c2900000000p-7f,
	0x1.d1eb860000000p-7f,	 0x1.170a3e0000000p-6f,
	0x1.451eba0000000p-6f,	 0x1.7333340000000p-6f,
	0x1.a147ae0000000p-6f,	 0x1.cf5c2a0000000p-6f,
	0x1.fd70a40000000p-6f,	 0x1.15c2900000000p-5f,
	0x1.2cccce0000000p-5f,	 0x1.43d70a0000000p-5f,
	0x1.5ae1460000000p-5f,	 0x1.71eb860000000p-5f,
	0x1.88f5c20000000p-5f,	 0x1.a000000000000p-5f,
	0x1.b70a3e0000000p-5f,	 0x1.ce147a0000000p-5f,
	0x1.e51eba0000000p-5f,	 0x1.fc28f60000000p-5f,
	0x1.09999a0000000p-4f,	 0x1.151eba0000000p-4f,
	0x1.20a3d60000000p-4f,	 0x1.2c28f60000000p-4f,
	0x1.37ae140000000p-4f,	 0x1.4333340000000p-4f,
	0x1.4eb8540000000p-4f,	 0x1.5a3d700000000p-4f,
	0x1.65c2900000000p-4f,	 0x1.7147ae0000000p-4f,
	0x1.7cccce0000000p-4f,	 0x1.8851ee0000000p-4f,
	0x1.93d70a0000000p-4f,	 0x1.b666680000000p-4f,
	0x1.f000000000000p-4f,	 0x1.14cccc0000000p-3f,
	0x1.31999a0000000p-3f,	 0x1.4e66660000000p-3f,
	0x1.6b33340000000p-3f,	 0x1.8800000000000p-3f,
	0x1.a4cccc0000000p-3f,	 0x1.c1999a0000000p-3f,
	0x1.de66660000000p-3f,	 0x1.fb33320000000p-3f,
	0x1.0c00000000000p-2f,	 0x1.1a66680000000p-2f,
	0x1.28cccc0000000p-2f,	 0x1.3733340000000p-2f,
	0x1.4599980000000p-2f,	 0x1.5400000000000p-2f,
	0x1.6266660000000p-2f,	 0x1.70cccc0000000p-2f,
	0x1.7f33340000000p-2f,	 0x1.8d99980000000p-2f,
	0x1.9c00000000000p-2f,	 0x1.aa66660000000p-2f,
	0x1.b8cccc0000000p-2f,	 0x1.c733340000000p-2f,
	0x1.d599980000000p-2f,	 0x1.e400000000000p-2f,
	0x1.f266640000000p-2f,	 0x1.0066660000000p-1f,
	0x1.0799980000000p-1f,	 0x1.0ecccc0000000p-1f,
	0x1.1600000000000p-1f,	 0x1.1d33340000000p-1f,
	0x1.2466680000000p-1f,	 0x1.2b999a0000000p-1f,
	0x1.32cccc0000000p-1f,	 0x1.3a00000000000p-1f,
	0x1.4133340000000p-1f,	 0x1.4866680000000p-1f,
	0x1.4f999a0000000p-1f,	 0x1.56cccc0000000p-1f,
	0x1.5e00000000000p-1f,	 0x1.6533340000000p-1f,
	0x1.6c66680000000p-1f,	 0x1.73999a0000000p-1f,
	0x1.7acccc0000000p-1f,	 0x1.8200000000000p-1f,
	0x1.8933340000000p-1f,	 0x1.9066660000000p-1f,
	0x1.97999a0000000p-1f,	 0x1.9ecccc0000000p-1f,
	0x1.a600000000000p-1f,	 0x1.ad33340000000p-1f,
	0x1.b466660000000p-1f,	 0x1.bb999a0000000p-1f,
	0x1.c2cccc0000000p-1f,	 0x1.ca00000000000p-1f,
	0x1.d133340000000p-1f,	 0x1.d866660000000p-1f,
	0x1.df999a0000000p-1f,	 0x1.e6cccc0000000p-1f,
	0x1.ee00000000000p-1f,	 0x1.f533340000000p-1f,
	0x1.fc66660000000p-1f,	 0x1.0000000000000p+0f,
};

/* ---- layout ---- */

static size_t round16(size_t n)
{
	return (n + 15) & ~(size_t)15;
}

static void dims(int64_t rows, int64_t cols, size_t *n, size_t *nb, size_t *nn)
{
	*n = (size_t)rows * (size_t)cols;
	*nb = (*n + FT_NF4_BLOCK - 1) / FT_NF4_BLOCK;
	*nn = (*nb + FT_NF4_NESTED_BLOCK - 1) / FT_NF4_NESTED_BLOCK;
}

size_t ft_nf4_layout(int64_t rows, int64_t cols, bool nested)
{
	size_t n, nb, nn;
	dims(rows, cols, &n, &nb, &nn);
	size_t sz = round16((n + 1) / 2);
	if (nested)
		return sz + round16(nb) + round16(nn * sizeof(float));
	return sz + round16(nb * sizeof(float));
}

void ft_nf4_point(struct ft_nf4 *q, void *mem, int64_t rows, int64_t cols, bool nested)
{
	uint8_t *p = mem;
	memset(q, 0, sizeof(*q));
	q->rows = rows;
	q->cols = cols;
	dims(rows, cols, &q->n, &q->nblocks, &q->nnested);
	q->nested = nested;
	q->src_dtype = FT_DTYPE_F32;
	q->packed = p;
	p += round16((q->n + 1) / 2);
	if (!nested) {
		q->absmax = (float *)(void *)p;
		q->nnested = 0;
		return;
	}
	q->qabsmax = p;
	p += round16(q->nblocks);
	q->nested_absmax = (float *)(void *)p;
	q->code2 = ft_nf4_dynamic_map;
}

/* ---- torch's fp32 sum (SumKernel.cpp cascade_sum, one thread) ---- */

static int64_t ceil_log2(int64_t x)
{
	if (x <= 2)
		return 1;
	int64_t b = 0;
	for (uint64_t v = (uint64_t)(x - 1); v; v >>= 1)
		b++;
	return b;
}

/* multi_row_sum with 4 columns: element (i, k) is x[i*rs + k*cs]. */
static void multi_row_sum(const float *x, size_t rs, size_t cs, int64_t size, float out[4])
{
	enum { LEVELS = 4 };
	int64_t lp = FT_MAX((int64_t)4, ceil_log2(size) / LEVELS);
	int64_t step = (int64_t)1 << lp, mask = step - 1;
	float acc[LEVELS][4] = { { 0 } };
	int64_t i = 0;
	while (i + step <= size) {
		for (int64_t j = 0; j < step; j++, i++)
			for (int k = 0; k < 4; k++)
				acc[0][k] += x[(size_t)i * rs + (size_t)k * cs];
		for (int j = 1; j < LEVELS; j++) {
			for (int k = 0; k < 4; k++) {
				acc[j][k] += acc[j - 1][k];
				acc[j - 1][k] = 0.0f;
			}
			if ((i & (mask << (j * lp))) != 0)
				break;
		}
	}
	for (; i < size; i++)
		for (int k = 0; k < 4; k++)
			acc[0][k] += x[(size_t)i * rs + (size_t)k * cs];
	for (int j = 1; j < LEVELS; j++)
		for (int k = 0; k < 4; k++)
			acc[0][k] += acc[j][k];
	memcpy(out, acc[0], sizeof(acc[0]));
}

/* row_sum: 4-way interleaved partial sums, then the leftovers. */
static float row_sum(const float *x, size_t stride, int64_t size)
{
	float p[4];
	int64_t si = size / 4;
	multi_row_sum(x, 4 * stride, stride, si, p);
	for (int64_t i = si * 4; i < size; i++)
		p[0] += x[(size_t)i * stride];
	for (int k = 1; k < 4; k++)
		p[0] += p[k];
	return p[0];
}

/* The vectorised inner sum with W-lane vectors is, lane by lane, row_sum
 * over every W-th element; then the tail, then the lanes in order. */
static float torch_sum(const float *x, size_t n)
{
	enum { W = 8 };
	if (n < W)
		return 0.0f + row_sum(x, 1, (int64_t)n);
	int64_t vs = (int64_t)(n / W);
	float fin = 0.0f, lanes[W];
	for (int l = 0; l < W; l++)
		lanes[l] = row_sum(x + l, W, vs);
	for (size_t k = (size_t)vs * W; k < n; k++)
		fin += x[k];
	for (int l = 0; l < W; l++)
		fin += lanes[l];
	return 0.0f + fin;
}

/* ---- the 8-bit lookup table for the nested map ---- */

static uint8_t g_lut[65536];
static pthread_once_t g_lut_once = PTHREAD_ONCE_INIT;

static void build_lut(void)
{
	float mid[255];
	for (int i = 0; i < 255; i++)
		mid[i] = 0.5f * (ft_nf4_dynamic_map[i] + ft_nf4_dynamic_map[i + 1]);
	int ci = 0;
	for (int i = 0; i < 65536; i++) {
		float v = -1.0f + (2.0f * (float)i) / 65535.0f;
		while (ci < 255 && mid[ci] < v)
			ci++;
		g_lut[i] = (uint8_t)ci;
	}
}

static uint16_t lut_index(float v)
{
	v = v < -1.0f ? -1.0f : v > 1.0f ? 1.0f : v;
	float t = (v + 1.0f) * 0.5f;
	t = t * 65535.0f;
	t = t + 0.5f;
	return (uint16_t)t;
}

/* ---- quantise / dequantise ---- */

/* #{ j : bounds[j] < s } over the 15 sorted bounds: a binary search */
static uint8_t nf4_code_of(float s, const float bounds[15])
{
	uint8_t q = 0;
	for (uint8_t step = 8; step; step >>= 1)
		if (bounds[q + step - 1] < s)
			q += step;
	return q;
}

static float clamp1(float x)
{
	return x < -1.0f ? -1.0f : x > 1.0f ? 1.0f : x;
}

enum ft_rc ft_nf4_quantize(struct ft_nf4 *q, const float *w, struct ft_err *err)
{
	for (size_t i = 0; i < q->n; i++)
		if (!isfinite(w[i]))
			return ft_failf(err, FT_EINVAL, "bad_tensor",
					"element %zu of a %" PRId64 " x %" PRId64
					" weight is not finite (%g); NF4 needs finite weights",
					i, q->rows, q->cols, (double)w[i]);
	float bounds[15];
	for (int j = 0; j < 15; j++)
		bounds[j] = (ft_nf4_code[j] + ft_nf4_code[j + 1]) / 2.0f;
	float *am = q->nested ? malloc(q->nblocks * sizeof(float)) : q->absmax;
	if (!am)
		return ft_failf(err, FT_ENOMEM, NULL, "out of memory for %zu NF4 scales",
				q->nblocks);
	size_t full = q->n / FT_NF4_BLOCK;
	memset(q->packed, 0, (q->n + 1) / 2);
	for (size_t b = 0; b < q->nblocks; b++) {
		size_t i0 = b * FT_NF4_BLOCK, i1 = FT_MIN(i0 + FT_NF4_BLOCK, q->n);
		float m = 0.0f;
		for (size_t i = i0; i < i1; i++)
			m = fmaxf(m, fabsf(w[i]));
		bool tail = b >= full;
		float mc = fmaxf(m, 1e-38f), r = 1.0f / mc;
		am[b] = tail ? mc : m;
		for (size_t i = i0; i < i1; i++) {
			float s = clamp1(tail ? w[i] / mc : w[i] * r);
			uint8_t c = nf4_code_of(s, bounds);
			q->packed[i >> 1] |= (uint8_t)((i & 1) ? c : c << 4);
		}
	}
	if (q->n & 1) /* bitsandbytes pads the scaled values with one 0.0 */
		q->packed[q->n >> 1] |= nf4_code_of(0.0f, bounds);
	if (!q->nested)
		return FT_OK;

	pthread_once(&g_lut_once, build_lut);
	float off = torch_sum(am, q->nblocks) / (float)q->nblocks;
	q->offset = off;
	for (size_t b = 0; b < q->nblocks; b++)
		am[b] = am[b] - off;
	for (size_t nb = 0; nb < q->nnested; nb++) {
		size_t i0 = nb * FT_NF4_NESTED_BLOCK;
		size_t i1 = FT_MIN(i0 + FT_NF4_NESTED_BLOCK, q->nblocks);
		float m = 0.0f;
		for (size_t i = i0; i < i1; i++)
			m = fmaxf(m, fabsf(am[i]));
		q->nested_absmax[nb] = m;
		if (m == 0.0f) {
			memset(q->qabsmax + i0, 0, i1 - i0);
			continue;
		}
		float inv = 1.0f / m;
		for (size_t i = i0; i < i1; i++)
			q->qabsmax[i] = g_lut[lut_index(am[i] * inv)];
	}
	free(am);
	return FT_OK;
}

float ft_nf4_block_scale(const struct ft_nf4 *q, size_t b)
{
	if (!q->nested)
		return q->absmax[b];
	float a = q->code2[q->qabsmax[b]] * q->nested_absmax[b / FT_NF4_NESTED_BLOCK];
	return a + q->offset;
}

void ft_nf4_dequant_tile(const struct ft_nf4 *q, int64_t r0, int64_t nr, int64_t c0, int64_t nc,
			 float *dst, int64_t ld)
{
	for (int64_t r = 0; r < nr; r++) {
		size_t i = (size_t)(r0 + r) * (size_t)q->cols + (size_t)c0;
		size_t end = i + (size_t)nc;
		float *d = dst + r * ld;
		while (i < end) {
			size_t b = i / FT_NF4_BLOCK;
			size_t stop = FT_MIN(end, (b + 1) * FT_NF4_BLOCK);
			float s = ft_nf4_block_scale(q, b);
			for (; i < stop; i++) {
				uint8_t byte = q->packed[i >> 1];
				*d++ = ft_nf4_code[(i & 1) ? byte & 15 : byte >> 4] * s;
			}
		}
	}
}

void ft_nf4_dequant(const struct ft_nf4 *q, float *dst)
{
	ft_nf4_dequant_tile(q, 0, q->rows, 0, q->cols, dst, q->cols);
}

/* ---- the quant_state JSON ---- */

static const struct {
	const char *name;
	int dtype;
} dtypes[] = {
	{ "float32", FT_DTYPE_F32 },
	{ "bfloat16", FT_DTYPE_BF16 },
	{ "float16", FT_DTYPE_F16 },
};

static enum ft_rc bad(struct ft_err *err, const char *field, const char *fmt, ...) FT_PRINTF(3, 4);
static enum ft_rc bad(struct ft_err *err, const char *field, const char *fmt, ...)
{
	char msg[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	ft_failf(err, FT_EFORMAT, "bad_quant_state", "quant_state: %s", msg);
	ft_err_param(err, field);
	return FT_EFORMAT;
}

enum ft_rc ft_nf4_state_parse(const char *text, size_t len, struct ft_nf4_state *st,
			      struct ft_err *err)
{
	static const char *const keys[] = {
		"quant_type",	    "blocksize",    "dtype",	     "shape",
		"nested_blocksize", "nested_dtype", "nested_offset", NULL
	};
	memset(st, 0, sizeof(*st));
	json_t *o = ft_json_parse(text, len, err);
	if (!o) {
		ft_err_prefixf(err, "quant_state: ");
		return FT_EFORMAT;
	}
	enum ft_rc rc;
	const char *qt = NULL, *dt = NULL, *ndt = NULL;
	long long bs = 0, nbs = 0;
	double off = 0;
	json_t *shape = NULL;
	if (!json_is_object(o)) {
		rc = bad(err, NULL, "must be a JSON object (got %s)", ft_json_type_name(o));
		goto free_json;
	}
	if ((rc = ft_json_check_keys(o, keys, err)) ||
	    (rc = ft_json_get_str(o, "quant_type", FT_JSON_REQUIRED, &qt, err)) ||
	    (rc = ft_json_get_int(o, "blocksize", FT_JSON_REQUIRED, 1, 1 << 20, &bs, err)) ||
	    (rc = ft_json_get_str(o, "dtype", FT_JSON_REQUIRED, &dt, err)) ||
	    (rc = ft_json_get_arr(o, "shape", FT_JSON_REQUIRED, &shape, err)) ||
	    (rc = ft_json_get_int(o, "nested_blocksize", FT_JSON_NULL_OK, 1, 1 << 20, &nbs, err)) ||
	    (rc = ft_json_get_str(o, "nested_dtype", FT_JSON_NULL_OK, &ndt, err)) ||
	    (rc = ft_json_get_num(o, "nested_offset", FT_JSON_NULL_OK, -3.4e38, 3.4e38, &off,
				  err))) {
		ft_err_prefixf(err, "quant_state: ");
		rc = FT_EFORMAT;
		goto free_json;
	}
	if (strcmp(qt, "nf4") != 0) {
		rc = bad(err, "quant_type", "\"quant_type\" must be \"nf4\" (got \"%s\")", qt);
		goto free_json;
	}
	if (bs != FT_NF4_BLOCK) {
		rc = bad(err, "blocksize", "\"blocksize\" must be %d (got %lld)", FT_NF4_BLOCK, bs);
		goto free_json;
	}
	size_t i;
	for (i = 0; i < FT_ARRAY_LEN(dtypes); i++)
		if (strcmp(dt, dtypes[i].name) == 0)
			break;
	if (i == FT_ARRAY_LEN(dtypes)) {
		rc = bad(err, "dtype",
			 "\"dtype\" must be float32, bfloat16 or float16 (got \"%s\")", dt);
		goto free_json;
	}
	st->dtype = dtypes[i].dtype;
	if (json_array_size(shape) != 2 || !json_is_integer(json_array_get(shape, 0)) ||
	    !json_is_integer(json_array_get(shape, 1))) {
		rc = bad(err, "shape", "\"shape\" must be [rows, columns]");
		goto free_json;
	}
	st->rows = (int64_t)json_integer_value(json_array_get(shape, 0));
	st->cols = (int64_t)json_integer_value(json_array_get(shape, 1));
	if (st->rows < 1 || st->cols < 1 || st->rows > (1 << 24) || st->cols > (1 << 24)) {
		rc = bad(err, "shape", "\"shape\" [%" PRId64 ", %" PRId64 "] is out of range",
			 st->rows, st->cols);
		goto free_json;
	}
	bool any = json_object_get(o, "nested_blocksize") || json_object_get(o, "nested_dtype") ||
		   json_object_get(o, "nested_offset");
	if (any) {
		if (nbs != FT_NF4_NESTED_BLOCK) {
			rc = bad(err, "nested_blocksize",
				 "\"nested_blocksize\" must be %d (got %lld)", FT_NF4_NESTED_BLOCK,
				 nbs);
			goto free_json;
		}
		if (!ndt || strcmp(ndt, "float32") != 0) {
			rc = bad(err, "nested_dtype", "\"nested_dtype\" must be \"float32\"");
			goto free_json;
		}
		if (!json_object_get(o, "nested_offset")) {
			rc = bad(err, "nested_offset", "\"nested_offset\" is required");
			goto free_json;
		}
		st->nested = true;
		st->offset = (float)off;
	}
free_json:
	json_decref(o);
	return rc;
}

/* A double as Python's repr writes it: the shortest digits that read back
 * the same, positional for exponents -4..15, else d.ddde[+-]XX. */
static enum ft_rc py_float(struct ft_buf *b, double x)
{
	char s[40];
	int p;
	for (p = 1; p < 17; p++) {
		snprintf(s, sizeof s, "%.*e", p - 1, x);
		if (strtod(s, NULL) == x)
			break;
	}
	snprintf(s, sizeof s, "%.*e", p - 1, x);
	int e = atoi(strchr(s, 'e') + 1);
	if (x == 0.0)
		return ft_buf_addstr(b, signbit(x) ? "-0.0" : "0.0");
	if (e < -4 || e >= 16) {
		/* strip the mantissa's trailing zeros: C keeps p digits exactly */
		return ft_buf_addstr(b, s);
	}
	int dec = FT_MAX(p - 1 - e, 0);
	snprintf(s, sizeof s, "%.*f", dec, x);
	enum ft_rc rc = ft_buf_addstr(b, s);
	return rc || dec ? rc : ft_buf_addstr(b, ".0");
}

enum ft_rc ft_nf4_state_json(const struct ft_nf4 *q, struct ft_buf *out)
{
	const char *dt = "float32";
	for (size_t i = 0; i < FT_ARRAY_LEN(dtypes); i++)
		if (dtypes[i].dtype == q->src_dtype)
			dt = dtypes[i].name;
	enum ft_rc rc =
		ft_buf_addf(out,
			    "{\"quant_type\": \"nf4\", \"blocksize\": %d, \"dtype\": \"%s\", "
			    "\"shape\": [%" PRId64 ", %" PRId64 "]",
			    FT_NF4_BLOCK, dt, q->rows, q->cols);
	if (!rc && q->nested) {
		rc = ft_buf_addf(out,
				 ", \"nested_blocksize\": %d, \"nested_dtype\": \"float32\", "
				 "\"nested_offset\": ",
				 FT_NF4_NESTED_BLOCK);
		if (!rc)
			rc = py_float(out, (double)q->offset);
	}
	return rc ? rc : ft_buf_addch(out, '}');
}

/* ---- state-dict tensors ---- */

#define QS_SUFFIX ".quant_state.bitsandbytes__nf4"

static const struct ft_st_tensor *part(const struct ft_st_set *set, const char *name,
				       const char *suffix)
{
	char full[512];
	if ((size_t)snprintf(full, sizeof full, "%s%s", name, suffix) >= sizeof full)
		return NULL;
	return ft_st_set_find(set, full);
}

bool ft_nf4_st_has(const struct ft_st_set *set, const char *name)
{
	return part(set, name, QS_SUFFIX) != NULL;
}

enum ft_rc ft_nf4_st_state(const struct ft_st_set *set, const char *name, int64_t rows,
			   int64_t cols, struct ft_nf4_state *st, struct ft_err *err)
{
	const struct ft_st_tensor *t = part(set, name, QS_SUFFIX);
	if (!t || t->dtype != FT_DTYPE_U8)
		return ft_failf(err, FT_EFORMAT, "bad_tensor",
				"tensor \"%s" QS_SUFFIX "\" is missing or not U8", name);
	enum ft_rc rc = ft_nf4_state_parse(t->data, (size_t)t->nbytes, st, err);
	if (rc) {
		ft_err_prefixf(err, "tensor \"%s\": ", name);
		return rc;
	}
	if (st->rows != rows || st->cols != cols)
		return ft_failf(err, FT_EFORMAT, "bad_tensor",
				"tensor \"%s\": quant_state shape [%" PRId64 ", %" PRId64
				"], expected [%" PRId64 ", %" PRId64 "]",
				name, st->rows, st->cols, rows, cols);
	return FT_OK;
}

/* A part that must exist with this dtype and element count. */
static enum ft_rc need(const struct ft_st_set *set, const char *name, const char *suffix,
		       enum ft_dtype dt, uint64_t nelem, const struct ft_st_tensor **out,
		       struct ft_err *err)
{
	const struct ft_st_tensor *t = part(set, name, suffix);
	if (!t)
		return ft_failf(err, FT_EFORMAT, "missing_tensor",
				"4-bit weight \"%s\" has no tensor \"%s%s\"", name, name, suffix);
	if (t->dtype != dt || t->nelem != nelem)
		return ft_failf(err, FT_EFORMAT, "bad_tensor",
				"tensor \"%s%s\" is %s with %" PRIu64 " elements, expected %s with "
				"%" PRIu64,
				name, suffix, ft_dtype_name(t->dtype), t->nelem, ft_dtype_name(dt),
				nelem);
	*out = t;
	return FT_OK;
}

static enum ft_rc finite_f32(const float *x, size_t n, const char *name, const char *suffix,
			     struct ft_err *err)
{
	for (size_t i = 0; i < n; i++)
		if (!isfinite(x[i]))
			return ft_failf(err, FT_EFORMAT, "bad_tensor",
					"tensor \"%s%s\" element %zu is not finite", name, suffix,
					i);
	return FT_OK;
}

enum ft_rc ft_nf4_st_read(const struct ft_st_set *set, const char *name,
			  const struct ft_nf4_state *st, struct ft_nf4 *q, struct ft_err *err)
{
	q->offset = st->offset;
	q->src_dtype = st->dtype;
	const struct ft_st_tensor *tw = NULL, *ta = NULL, *tm = NULL, *tn = NULL, *tnm = NULL;
	enum ft_rc rc;
	if ((rc = need(set, name, "", FT_DTYPE_U8, (q->n + 1) / 2, &tw, err)) ||
	    (rc = need(set, name, ".absmax", q->nested ? FT_DTYPE_U8 : FT_DTYPE_F32, q->nblocks,
		       &ta, err)) ||
	    (rc = need(set, name, ".quant_map", FT_DTYPE_F32, 16, &tm, err)))
		return rc;
	if (q->nested &&
	    ((rc = need(set, name, ".nested_absmax", FT_DTYPE_F32, q->nnested, &tn, err)) ||
	     (rc = need(set, name, ".nested_quant_map", FT_DTYPE_F32, 256, &tnm, err))))
		return rc;
	float map[16];
	memcpy(map, tm->data, sizeof map);
	if (memcmp(map, ft_nf4_code, sizeof map) != 0)
		return ft_failf(
			err, FT_EFORMAT, "bad_tensor",
			"tensor \"%s.quant_map\" is not the NF4 codebook (only bitsandbytes' "
			"standard nf4 is supported)",
			name);
	memcpy(q->packed, tw->data, (q->n + 1) / 2);
	if (!q->nested) {
		memcpy(q->absmax, ta->data, q->nblocks * sizeof(float));
		return finite_f32(q->absmax, q->nblocks, name, ".absmax", err);
	}
	float map2[256];
	memcpy(map2, tnm->data, sizeof map2);
	if (memcmp(map2, ft_nf4_dynamic_map, sizeof map2) != 0)
		return ft_failf(
			err, FT_EFORMAT, "bad_tensor",
			"tensor \"%s.nested_quant_map\" is not bitsandbytes' signed dynamic map "
			"(create_dynamic_map(signed=True))",
			name);
	memcpy(q->qabsmax, ta->data, q->nblocks);
	memcpy(q->nested_absmax, tn->data, q->nnested * sizeof(float));
	if ((rc = finite_f32(q->nested_absmax, q->nnested, name, ".nested_absmax", err)))
		return rc;
	return isfinite(q->offset)
		       ? FT_OK
		       : ft_failf(err, FT_EFORMAT, "bad_tensor",
				  "4-bit weight \"%s\": nested_offset is not finite", name);
}

enum ft_rc ft_nf4_st_add(struct ft_st_writer *w, const char *name, const struct ft_nf4 *q,
			 const struct ft_buf *json, struct ft_err *err)
{
	char full[512];
	int64_t shp[2] = { (int64_t)((q->n + 1) / 2), 1 };
	int64_t nb = (int64_t)q->nblocks, nn = (int64_t)q->nnested, c16 = 16, c256 = 256;
	int64_t jl = (int64_t)json->len;
	enum ft_rc rc = ft_st_writer_add(w, name, FT_DTYPE_U8, 2, shp, q->packed, err);
#define ADD(suffix, dt, shape, data)                                             \
	do {                                                                     \
		if (!rc) {                                                       \
			snprintf(full, sizeof full, "%s%s", name, suffix);       \
			rc = ft_st_writer_add(w, full, dt, 1, shape, data, err); \
		}                                                                \
	} while (0)
	if (q->nested) {
		ADD(".absmax", FT_DTYPE_U8, &nb, q->qabsmax);
		ADD(".nested_absmax", FT_DTYPE_F32, &nn, q->nested_absmax);
		ADD(".nested_quant_map", FT_DTYPE_F32, &c256, q->code2);
	} else {
		ADD(".absmax", FT_DTYPE_F32, &nb, q->absmax);
	}
	ADD(".quant_map", FT_DTYPE_F32, &c16, ft_nf4_code);
	ADD(QS_SUFFIX, FT_DTYPE_U8, &jl, json->ptr);
#undef ADD
	return rc;
}
