/*
 * gguf_dequant.c - ggml's tensor types to fp32, bit for bit as the `gguf`
 * Python package's numpy reference (gguf.quants.dequantize) computes them.
 *
 * Each block holds its scales as F16 (d, and dmin / m where there is one)
 * and packed integers q. Per type, with e the element index in the block
 * and all arithmetic in fp32, one rounding per operation, in this order
 * (the file is built with -ffp-contract=off so no FMA merges them):
 *
 * | type | block, bytes | layout (bytes)                      | value                        |
 * |------|--------------|-------------------------------------|------------------------------|
 * | Q4_0 | 32, 18       | d, qs[16]                           | d * (q - 8)                  |
 * | Q4_1 | 32, 20       | d, m, qs[16]                        | (d * q) + m                  |
 * | Q5_0 | 32, 22       | d, qh[4], qs[16]                    | d * (q - 16)                 |
 * | Q5_1 | 32, 24       | d, m, qh[4], qs[16]                 | (d * q) + m                  |
 * | Q8_0 | 32, 34       | d, int8 q[32]                       | q * d                        |
 * | Q2_K | 256, 84      | sc[16], qs[64], d, dmin             | (d*(sc&15)) * q - dmin*(sc>>4), per 16 |
 * | Q3_K | 256, 110     | hmask[32], qs[64], sc[12], d        | (d * (s6 - 32)) * q, per 16  |
 * | Q4_K | 256, 144     | d, dmin, sc[12], qs[128]            | (d*s) * q - dmin*m, per 32   |
 * | Q5_K | 256, 176     | d, dmin, sc[12], qh[32], qs[128]    | (d*s) * q - dmin*m, per 32   |
 * | Q6_K | 256, 210     | ql[128], qh[64], int8 sc[16], d     | (d * sc) * (q - 32), per 16  |
 *
 * Where the 4-bit halves go (Q4_0/1, Q5_0/1): element j < 16 is the low
 * nibble of qs[j], element 16 + j its high nibble; Q5's fifth bit of
 * element e is bit e of the u32 qh. In the K types a block of 256 is cut
 * into 128-element halves, each stepping through its bytes several times
 * with a growing shift; the functions below spell each index out.
 * F16 and BF16 convert exactly; F32 is copied.
 */
#include "ft/gguf.h"

static inline float h2f(const uint8_t *p)
{
	return ft_f16_to_f32((uint16_t)(p[0] | p[1] << 8));
}

static void dq_f32(const uint8_t *s, uint64_t n, float *y)
{
	for (uint64_t i = 0; i < n; i++) {
		uint32_t b = (uint32_t)s[4 * i] | (uint32_t)s[4 * i + 1] << 8 |
			     (uint32_t)s[4 * i + 2] << 16 | (uint32_t)s[4 * i + 3] << 24;
		memcpy(&y[i], &b, 4);
	}
}

static void dq_f16(const uint8_t *s, uint64_t n, float *y)
{
	for (uint64_t i = 0; i < n; i++)
		y[i] = h2f(s + 2 * i);
}

static void dq_bf16(const uint8_t *s, uint64_t n, float *y)
{
	for (uint64_t i = 0; i < n; i++)
		y[i] = ft_bf16_to_f32((uint16_t)(s[2 * i] | s[2 * i + 1] << 8));
}

/* Q4_0 / Q4_1 / Q5_0 / Q5_1: the 5-bit (or 4-bit) integer of element e. */
static inline int q45(const uint8_t *qs, uint32_t qh, bool five, int e)
{
	int q = e < 16 ? qs[e] & 0x0F : qs[e - 16] >> 4;
	if (five)
		q |= (int)((qh >> e) & 1) << 4;
	return q;
}

static void dq_q4_0(const uint8_t *b, float *y)
{
	float d = h2f(b);
	for (int e = 0; e < 32; e++)
		y[e] = d * (float)(q45(b + 2, 0, false, e) - 8);
}

static void dq_q4_1(const uint8_t *b, float *y)
{
	float d = h2f(b), m = h2f(b + 2);
	for (int e = 0; e < 32; e++)
		y[e] = d * (float)q45(b + 4, 0, false, e) + m;
}

static uint32_t u32le(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void dq_q5_0(const uint8_t *b, float *y)
{
	float d = h2f(b);
	uint32_t qh = u32le(b + 2);
	for (int e = 0; e < 32; e++)
		y[e] = d * (float)(q45(b + 6, qh, true, e) - 16);
}

static void dq_q5_1(const uint8_t *b, float *y)
{
	float d = h2f(b), m = h2f(b + 2);
	uint32_t qh = u32le(b + 4);
	for (int e = 0; e < 32; e++)
		y[e] = d * (float)q45(b + 8, qh, true, e) + m;
}

static void dq_q8_0(const uint8_t *b, float *y)
{
	float d = h2f(b);
	for (int e = 0; e < 32; e++)
		y[e] = (float)(int8_t)b[2 + e] * d;
}

/* 2-bit field s of byte half * 32 + l, for element e = half*128 + s*32 + l. */
static inline int crumb(const uint8_t *q, int e)
{
	return (q[(e / 128) * 32 + e % 32] >> (2 * ((e % 128) / 32))) & 3;
}

static void dq_q2_k(const uint8_t *b, float *y)
{
	const uint8_t *sc = b, *qs = b + 16;
	float d = h2f(b + 80), dmin = h2f(b + 82);
	for (int g = 0; g < 16; g++) {
		float dl = d * (float)(sc[g] & 0x0F), ml = dmin * (float)(sc[g] >> 4);
		for (int e = 16 * g; e < 16 * g + 16; e++)
			y[e] = dl * (float)crumb(qs, e) - ml;
	}
}

static void dq_q3_k(const uint8_t *b, float *y)
{
	const uint8_t *hmask = b, *qs = b + 32, *sc = b + 96;
	float d = h2f(b + 108);
	for (int g = 0; g < 16; g++) {
		int lo = (sc[g % 8] >> (4 * (g / 8))) & 0x0F;
		int hi = (sc[8 + g % 4] >> (2 * (g / 4))) & 0x03;
		float dl = d * (float)((lo | hi << 4) - 32);
		for (int e = 16 * g; e < 16 * g + 16; e++) {
			int h = (hmask[e % 32] >> (e / 32)) & 1;
			y[e] = dl * (float)(crumb(qs, e) - ((h ^ 1) << 2));
		}
	}
}

/* Q4_K / Q5_K: the 6-bit scale and min of sub-block j (0..7). */
static void scale_min(const uint8_t *s, int j, int *sc, int *mn)
{
	if (j < 4) {
		*sc = s[j] & 0x3F;
		*mn = s[4 + j] & 0x3F;
	} else {
		*sc = (s[8 + j - 4] & 0x0F) | ((s[j - 4] >> 2) & 0x30);
		*mn = (s[8 + j - 4] >> 4) | ((s[4 + j - 4] >> 2) & 0x30);
	}
}

static void dq_q45_k(const uint8_t *b, bool five, float *y)
{
	float d = h2f(b), dmin = h2f(b + 2);
	const uint8_t *s = b + 4, *qh = b + 16, *qs = five ? b + 48 : b + 16;
	for (int j = 0; j < 8; j++) {
		int sc, mn;
		scale_min(s, j, &sc, &mn);
		float dl = d * (float)sc, ml = dmin * (float)mn;
		for (int l = 0; l < 32; l++) {
			int q = (qs[(j / 2) * 32 + l] >> (4 * (j % 2))) & 0x0F;
			if (five)
				q |= ((qh[l] >> j) & 1) << 4;
			y[32 * j + l] = dl * (float)q - ml;
		}
	}
}

static void dq_q6_k(const uint8_t *b, float *y)
{
	const uint8_t *ql = b, *qh = b + 128;
	const int8_t *sc = (const int8_t *)(b + 192);
	float d = h2f(b + 208);
	for (int g = 0; g < 16; g++) {
		float dl = d * (float)sc[g];
		for (int e = 16 * g; e < 16 * g + 16; e++) {
			int lo = (ql[(e / 128) * 64 + e % 64] >> (4 * ((e % 128) / 64))) & 0x0F;
			int q = lo | crumb(qh, e) << 4;
			y[e] = dl * (float)(q - 32);
		}
	}
}

static void dq_q4_k(const uint8_t *b, float *y)
{
	dq_q45_k(b, false, y);
}

static void dq_q5_k(const uint8_t *b, float *y)
{
	dq_q45_k(b, true, y);
}

static const struct {
	uint32_t type;
	void (*block)(const uint8_t *b, float *y); /* one block */
	void (*run)(const uint8_t *s, uint64_t n, float *y); /* element types */
} dequant[] = {
	{ FT_GGML_F32, NULL, dq_f32 },	 { FT_GGML_F16, NULL, dq_f16 },
	{ FT_GGML_BF16, NULL, dq_bf16 }, { FT_GGML_Q4_0, dq_q4_0, NULL },
	{ FT_GGML_Q4_1, dq_q4_1, NULL }, { FT_GGML_Q5_0, dq_q5_0, NULL },
	{ FT_GGML_Q5_1, dq_q5_1, NULL }, { FT_GGML_Q8_0, dq_q8_0, NULL },
	{ FT_GGML_Q2_K, dq_q2_k, NULL }, { FT_GGML_Q3_K, dq_q3_k, NULL },
	{ FT_GGML_Q4_K, dq_q4_k, NULL }, { FT_GGML_Q5_K, dq_q5_k, NULL },
	{ FT_GGML_Q6_K, dq_q6_k, NULL },
};

bool ft_ggml_dequant(uint32_t type, const void *src, uint64_t nelem, float *dst)
{
	const struct ft_ggml_type_info *ti = ft_ggml_type_info(type);
	if (!ti || nelem % ti->block)
		return false;
	for (size_t i = 0; i < FT_ARRAY_LEN(dequant); i++) {
		if (dequant[i].type != type)
			continue;
		if (dequant[i].run) {
			dequant[i].run(src, nelem, dst);
			return true;
		}
		const uint8_t *s = src;
		for (uint64_t k = 0; k < nelem / ti->block; k++)
			dequant[i].block(s + k * ti->bytes, dst + k * ti->block);
		return true;
	}
	return false;
}
