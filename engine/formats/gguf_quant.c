/*
 * gguf_quant.c - fp32 to ggml's tensor types, bit for bit as llama.cpp's
 * reference quantisers (ggml-quants.c, quantize_row_*_ref: what
 * llama_model_quantize runs without an importance matrix, and what the
 * gguf package's numpy quantize reproduces for Q4_0, Q5_0 and Q8_0), and
 * the table of which type each tensor of a file type gets (ft/gguf.h).
 *
 * Block layouts are gguf_dequant.c's; here is how each block is chosen.
 * All arithmetic is fp32 with one rounding per operation in the order
 * written (the file is built with -ffp-contract=off, as ggml's base
 * library is built without FMA), "round" is round-half-to-even of a value
 * below 2^22 (llama.cpp's nearest_int) unless said otherwise, and F16(v)
 * is the round-to-nearest-even half of v.
 *
 * Q8_0 (32): a = max |x|; d = a / 127; q = roundf(x * (1/d)) (half away
 *            from zero; 0 when d = 0); stored d = F16(d).
 * Q4_0 (32): m = the first x of largest |x|; d = m / -8; q = min(15,
 *            trunc(x * (1/d) + 8.5)); stored F16(d). Q5_0 the same with
 *            -16, 16.5 and 31, the fifth bits in qh.
 * Q4_K (256 = 8 sub-blocks of 32, each x ~ s * q - m with q in 0..15):
 *   1. per sub-block, weights w = sqrt(mean x^2) + |x|, and a least-squares
 *      search (fit_sub below): start from the range [min(x, 0), max x]
 *      split in 15 steps, then try 21 step counts 14 + 0.1 k (k = 0..20)
 *      over the same range, each time refitting scale s and offset -m to
 *      its levels by weighted least squares (m clamped to >= 0); keep the
 *      levels of the smallest weighted squared error;
 *   2. the 8 scales and 8 offsets are themselves quantised to 6 bits
 *      against d = F16(max s / 63) and dmin = F16(max m / 63);
 *   3. every element is re-rounded against its sub-block's 6-bit scale
 *      and offset: q = clamp(round((x + dmin*ms) / (d*sc)), 0, 15).
 * Q6_K (256 = 16 sub-blocks of 16, x ~ s * (q - 32) with q in 0..63):
 *   1. per sub-block, s from fit_sym: levels at scale -32/m (m the first
 *      x of largest |x|), refitted by least squares weighted by x^2, and
 *      18 more step sizes (32 + 0.1 k, k = -9..9 but 0), kept when the
 *      fit improves;
 *   2. d = F16(1 / (-128 / S)) for S the sub-block scale of largest |s|,
 *      each scale to int8 round(s * -128 / S) (at most 127);
 *   3. every element re-rounded: q = clamp(round(x / (d * sc)), -32, 31) + 32.
 * A sub-block whose quantised scale is 0 keeps the levels of step 1.
 */
#include <math.h>

#include "ft/gguf.h"

/* llama.cpp's nearest_int: round half to even through the float adder
 * (valid for |v| < 2^22, which every caller below respects). */
static inline int round_even(float v)
{
	float t = v + 12582912.f; /* 1.5 * 2^23: the integer lands in the low mantissa bits */
	uint32_t b;
	memcpy(&b, &t, 4);
	return (int)(b & 0x007fffff) - 0x00400000;
}

/* C's float to int8 conversion (truncation) for what a block can hold; a
 * value outside int8 (only from non-finite or subnormal-scaled input,
 * where C leaves the conversion undefined and llama.cpp's result is
 * arbitrary) is clamped, NaN is 0. */
static inline int trunc_i8(float v)
{
	if (!(v > -129.0f))
		return v != v ? 0 : -128;
	if (!(v < 128.0f))
		return 127;
	return (int8_t)v;
}

static inline int clampi(int v, int lo, int hi)
{
	return v < lo ? lo : v > hi ? hi : v;
}

static inline void put_f16(uint8_t *p, float v)
{
	uint16_t h = ft_f32_to_f16(v);
	p[0] = (uint8_t)h;
	p[1] = (uint8_t)(h >> 8);
}

static inline float get_f16(const uint8_t *p)
{
	return ft_f16_to_f32((uint16_t)(p[0] | p[1] << 8));
}

/* ---- element types ---- */

static void q_f32(const float *x, uint64_t n, uint8_t *y)
{
	memcpy(y, x, n * sizeof(float)); /* little-endian hosts only (ft/base.h) */
}

static void q_f16(const float *x, uint64_t n, uint8_t *y)
{
	for (uint64_t i = 0; i < n; i++)
		put_f16(y + 2 * i, x[i]);
}

static void q_bf16(const float *x, uint64_t n, uint8_t *y)
{
	for (uint64_t i = 0; i < n; i++) {
		uint16_t h = ft_f32_to_bf16(x[i]);
		y[2 * i] = (uint8_t)h;
		y[2 * i + 1] = (uint8_t)(h >> 8);
	}
}

/* ---- 32-element blocks ---- */

static void q_q8_0(const float *x, uint8_t *y)
{
	float a = 0;
	for (int j = 0; j < 32; j++)
		a = fabsf(x[j]) > a ? fabsf(x[j]) : a;
	float d = a / 127, id = d != 0 ? 1.0f / d : 0.0f;
	put_f16(y, d);
	for (int j = 0; j < 32; j++)
		y[2 + j] = (uint8_t)(int8_t)trunc_i8(roundf(x[j] * id));
}

/* The first element of largest magnitude (its sign matters). */
static float signed_absmax(const float *x, int n)
{
	float a = 0, m = 0;
	for (int j = 0; j < n; j++)
		if (a < fabsf(x[j])) {
			a = fabsf(x[j]);
			m = x[j];
		}
	return m;
}

static void q_q4_0(const float *x, uint8_t *y)
{
	float d = signed_absmax(x, 32) / -8, id = d != 0 ? 1.0f / d : 0.0f;
	put_f16(y, d);
	for (int j = 0; j < 16; j++) {
		int lo = trunc_i8(x[j] * id + 8.5f), hi = trunc_i8(x[16 + j] * id + 8.5f);
		lo = clampi(lo, 0, 15); /* below 0 only from non-finite input */
		hi = clampi(hi, 0, 15);
		y[2 + j] = (uint8_t)(lo | hi << 4);
	}
}

static void q_q5_0(const float *x, uint8_t *y)
{
	float d = signed_absmax(x, 32) / -16, id = d != 0 ? 1.0f / d : 0.0f;
	uint32_t qh = 0;
	put_f16(y, d);
	for (int j = 0; j < 16; j++) {
		int lo = trunc_i8(x[j] * id + 16.5f), hi = trunc_i8(x[16 + j] * id + 16.5f);
		lo = clampi(lo, 0, 31);
		hi = clampi(hi, 0, 31);
		y[6 + j] = (uint8_t)((lo & 0x0F) | (hi & 0x0F) << 4);
		qh |= (uint32_t)(lo >> 4 & 1) << j | (uint32_t)(hi >> 4 & 1) << (j + 16);
	}
	for (int k = 0; k < 4; k++)
		y[2 + k] = (uint8_t)(qh >> (8 * k));
}

/* ---- Q4_K ---- */

/* One sub-block of 32 as s * q - m, q in 0..15 (step 1 at the top). L gets
 * the levels; returns s and sets *m. */
static float fit_sub(const float *x, const float *w, uint8_t *L, float *m)
{
	enum { N = 32, NMAX = 15, NSTEP = 20 };
	uint8_t aux[N];
	float lo = x[0], hi = x[0], sw = w[0], sx = sw * x[0];
	for (int i = 1; i < N; i++) {
		if (x[i] < lo)
			lo = x[i];
		if (x[i] > hi)
			hi = x[i];
		sw += w[i];
		sx += w[i] * x[i];
	}
	if (lo > 0)
		lo = 0;
	if (hi == lo) {
		memset(L, 0, N);
		*m = -lo;
		return 0.f;
	}
	float iscale = NMAX / (hi - lo), scale = 1 / iscale, best = 0;
	for (int i = 0; i < N; i++) {
		L[i] = (uint8_t)clampi(round_even(iscale * (x[i] - lo)), 0, NMAX);
		float diff = scale * L[i] + lo - x[i];
		best += w[i] * (diff * diff);
	}
	for (int k = 0; k <= NSTEP; k++) {
		iscale = (-1.f + 0.1f * k + NMAX) / (hi - lo);
		float sl = 0, sl2 = 0, sxl = 0;
		for (int i = 0; i < N; i++) {
			int l = clampi(round_even(iscale * (x[i] - lo)), 0, NMAX);
			aux[i] = (uint8_t)l;
			sl += w[i] * l;
			sl2 += w[i] * l * l;
			sxl += w[i] * l * x[i];
		}
		float det = sw * sl2 - sl * sl;
		if (!(det > 0))
			continue;
		float s = (sw * sxl - sx * sl) / det, mn = (sl2 * sx - sl * sxl) / det;
		if (mn > 0) {
			mn = 0;
			s = sxl / sl2;
		}
		float e = 0;
		for (int i = 0; i < N; i++) {
			float diff = s * aux[i] + mn - x[i];
			e += w[i] * (diff * diff);
		}
		if (e < best) {
			memcpy(L, aux, N);
			best = e;
			scale = s;
			lo = mn;
		}
	}
	*m = -lo;
	return scale;
}

/* Sub-block j's 6-bit scale and offset in the 12 packed bytes. */
static void k4_get(const uint8_t *s, int j, int *sc, int *mn)
{
	if (j < 4) {
		*sc = s[j] & 63;
		*mn = s[j + 4] & 63;
	} else {
		*sc = (s[j + 4] & 0x0F) | (s[j - 4] >> 6) << 4;
		*mn = (s[j + 4] >> 4) | (s[j] >> 6) << 4;
	}
}

static void q_q4_k(const float *x, uint8_t *y)
{
	uint8_t L[256], *sc = y + 4, *qs = y + 16;
	float w[32], scales[8], mins[8], max_s = 0, max_m = 0;
	for (int j = 0; j < 8; j++) {
		const float *xs = x + 32 * j;
		float sq = 0;
		for (int l = 0; l < 32; l++)
			sq += xs[l] * xs[l];
		float av = sqrtf(sq / 32);
		for (int l = 0; l < 32; l++)
			w[l] = av + fabsf(xs[l]);
		scales[j] = fit_sub(xs, w, L + 32 * j, &mins[j]);
		if (scales[j] > max_s)
			max_s = scales[j];
		if (mins[j] > max_m)
			max_m = mins[j];
	}
	float inv_s = max_s > 0 ? 63.f / max_s : 0.f, inv_m = max_m > 0 ? 63.f / max_m : 0.f;
	memset(sc, 0, 12);
	for (int j = 0; j < 8; j++) {
		uint8_t ls = (uint8_t)round_even(inv_s * scales[j]),
			lm = (uint8_t)round_even(inv_m * mins[j]);
		ls = ls < 63 ? ls : 63;
		lm = lm < 63 ? lm : 63;
		if (j < 4) {
			sc[j] = ls;
			sc[j + 4] = lm;
		} else {
			sc[j + 4] = (uint8_t)((ls & 0x0F) | (lm & 0x0F) << 4);
			sc[j - 4] |= (uint8_t)((ls >> 4) << 6);
			sc[j] |= (uint8_t)((lm >> 4) << 6);
		}
	}
	put_f16(y, max_s / 63.f);
	put_f16(y + 2, max_m / 63.f);
	for (int j = 0; j < 8; j++) {
		int s, mn;
		k4_get(sc, j, &s, &mn);
		float d = get_f16(y) * s;
		if (d == 0)
			continue;
		float dm = get_f16(y + 2) * mn;
		for (int i = 0; i < 32; i++)
			L[32 * j + i] =
				(uint8_t)clampi(round_even((x[32 * j + i] + dm) / d), 0, 15);
	}
	for (int h = 0; h < 4; h++)
		for (int l = 0; l < 32; l++)
			qs[32 * h + l] = (uint8_t)(L[64 * h + l] | L[64 * h + l + 32] << 4);
}

/* ---- Q6_K ---- */

/* One sub-block of 16 as s * (q - 32) (step 1 at the top); L gets q. */
static float fit_sym(const float *x, int8_t *L)
{
	enum { N = 16, NMAX = 32 };
	float amax = 0, m = 0;
	for (int i = 0; i < N; i++)
		if (fabsf(x[i]) > amax) {
			amax = fabsf(x[i]);
			m = x[i];
		}
	if (amax < 1e-15f) {
		memset(L, 0, N);
		return 0.f;
	}
	float iscale = -NMAX / m, slx = 0, sl2 = 0;
	for (int i = 0; i < N; i++) {
		int l = clampi(round_even(iscale * x[i]), -NMAX, NMAX - 1);
		L[i] = (int8_t)(l + NMAX);
		float w = x[i] * x[i];
		slx += w * x[i] * l;
		sl2 += w * l * l;
	}
	float scale = sl2 != 0 ? slx / sl2 : 0.0f, best = scale * slx;
	for (int k = -9; k <= 9; k++) {
		if (k == 0)
			continue;
		iscale = -(NMAX + 0.1f * k) / m;
		slx = sl2 = 0;
		for (int i = 0; i < N; i++) {
			int l = clampi(round_even(iscale * x[i]), -NMAX, NMAX - 1);
			float w = x[i] * x[i];
			slx += w * x[i] * l;
			sl2 += w * l * l;
		}
		if (sl2 > 0 && slx * slx > best * sl2) {
			for (int i = 0; i < N; i++)
				L[i] = (int8_t)(NMAX +
						clampi(round_even(iscale * x[i]), -NMAX, NMAX - 1));
			scale = slx / sl2;
			best = scale * slx;
		}
	}
	return scale;
}

static void q_q6_k(const float *x, uint8_t *y)
{
	int8_t L[256];
	float scales[16], max_s = 0, max_abs = 0;
	uint8_t *ql = y, *qh = y + 128;
	int8_t *sc = (int8_t *)(y + 192);
	for (int b = 0; b < 16; b++) {
		scales[b] = fit_sym(x + 16 * b, L + 16 * b);
		if (fabsf(scales[b]) > max_abs) {
			max_abs = fabsf(scales[b]);
			max_s = scales[b];
		}
	}
	if (max_abs < 1e-15f) {
		memset(y, 0, 210);
		return;
	}
	float iscale = -128.f / max_s;
	put_f16(y + 208, 1 / iscale);
	for (int b = 0; b < 16; b++) {
		int v = round_even(iscale * scales[b]);
		sc[b] = (int8_t)(v < 127 ? v : 127);
	}
	for (int b = 0; b < 16; b++) {
		float d = get_f16(y + 208) * sc[b];
		if (d == 0)
			continue;
		for (int i = 0; i < 16; i++)
			L[16 * b + i] =
				(int8_t)(clampi(round_even(x[16 * b + i] / d), -32, 31) + 32);
	}
	/* element e = 128 h + 32 k + l: low nibble in ql[64 h + 32 (k & 1) + l]
	 * (high half when k >= 2), two high bits at 2k of qh[32 h + l] */
	for (int h = 0; h < 2; h++) {
		const int8_t *q = L + 128 * h;
		for (int l = 0; l < 32; l++) {
			ql[64 * h + l] = (uint8_t)((q[l] & 0x0F) | (q[l + 64] & 0x0F) << 4);
			ql[64 * h + l + 32] =
				(uint8_t)((q[l + 32] & 0x0F) | (q[l + 96] & 0x0F) << 4);
			qh[32 * h + l] = (uint8_t)(q[l] >> 4 | (q[l + 32] >> 4) << 2 |
						   (q[l + 64] >> 4) << 4 | (q[l + 96] >> 4) << 6);
		}
	}
}

static const struct {
	uint32_t type;
	void (*block)(const float *x, uint8_t *y); /* one block */
	void (*run)(const float *x, uint64_t n, uint8_t *y); /* element types */
} quant[] = {
	{ FT_GGML_F32, NULL, q_f32 },	{ FT_GGML_F16, NULL, q_f16 },
	{ FT_GGML_BF16, NULL, q_bf16 }, { FT_GGML_Q8_0, q_q8_0, NULL },
	{ FT_GGML_Q4_0, q_q4_0, NULL }, { FT_GGML_Q5_0, q_q5_0, NULL },
	{ FT_GGML_Q4_K, q_q4_k, NULL }, { FT_GGML_Q6_K, q_q6_k, NULL },
};

bool ft_ggml_quant(uint32_t type, const float *src, uint64_t nelem, void *dst)
{
	const struct ft_ggml_type_info *ti = ft_ggml_type_info(type);
	if (!ti || !ti->quant || nelem % ti->block)
		return false;
	for (size_t i = 0; i < FT_ARRAY_LEN(quant); i++) {
		if (quant[i].type != type)
			continue;
		if (quant[i].run) {
			quant[i].run(src, nelem, dst);
			return true;
		}
		uint8_t *d = dst;
		for (uint64_t k = 0; k < nelem / ti->block; k++)
			quant[i].block(src + k * ti->block, d + k * ti->bytes);
		return true;
	}
	return false;
}

/* ---- file types (the table of ft/gguf.h) ---- */

static const struct ftype_def {
	enum ft_gguf_ftype ft;
	const char *name;
	uint32_t weight; /* 2-D weights */
	uint32_t output; /* output.weight, a tied token_embd; 0 (F32) when not quantised */
	uint32_t more_bits; /* attn_v / ffn_down of the use_more_bits blocks (weight: none) */
	bool quantised; /* llama.cpp picks types per tensor (ggml_is_quantized) */
} ftypes[] = {
	{ FT_GGUF_FTYPE_F32, "F32", FT_GGML_F32, FT_GGML_F32, FT_GGML_F32, false },
	{ FT_GGUF_FTYPE_F16, "F16", FT_GGML_F16, FT_GGML_F16, FT_GGML_F16, false },
	{ FT_GGUF_FTYPE_Q8_0, "Q8_0", FT_GGML_Q8_0, FT_GGML_Q8_0, FT_GGML_Q8_0, true },
	{ FT_GGUF_FTYPE_Q4_0, "Q4_0", FT_GGML_Q4_0, FT_GGML_Q6_K, FT_GGML_Q4_0, true },
	{ FT_GGUF_FTYPE_Q4_K_M, "Q4_K_M", FT_GGML_Q4_K, FT_GGML_Q6_K, FT_GGML_Q6_K, true },
};

/* A type whose block does not divide the row: what llama.cpp falls back to. */
static const struct {
	uint32_t from, to;
} fallbacks[] = {
	{ FT_GGML_Q4_K, FT_GGML_Q5_0 },
	{ FT_GGML_Q6_K, FT_GGML_Q8_0 },
};

static const struct ftype_def *ftype_def(enum ft_gguf_ftype ft)
{
	for (size_t i = 0; i < FT_ARRAY_LEN(ftypes); i++)
		if (ftypes[i].ft == ft)
			return &ftypes[i];
	return NULL;
}

bool ft_gguf_ftype_parse(const char *name, enum ft_gguf_ftype *out)
{
	for (size_t i = 0; name && i < FT_ARRAY_LEN(ftypes); i++)
		if (strcmp(ftypes[i].name, name) == 0) {
			*out = ftypes[i].ft;
			return true;
		}
	return false;
}

const char *ft_gguf_ftype_name(enum ft_gguf_ftype ft)
{
	const struct ftype_def *d = ftype_def(ft);
	return d ? d->name : "?";
}

const char *ft_gguf_ftype_names(void)
{
	return "F32, F16, Q8_0, Q4_0, Q4_K_M";
}

static bool fits(uint32_t type, uint64_t ne0)
{
	return ne0 % ft_ggml_type_info(type)->block == 0;
}

/* llama.cpp's use_more_bits(i, n). */
static bool more_bits(int i, int n)
{
	return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2;
}

uint32_t ft_gguf_ftype_tensor_type(enum ft_gguf_ftype ft, enum ft_gguf_role role, uint64_t ne0,
				   bool one_d, int layer, int n_layers, bool tied)
{
	const struct ftype_def *d = ftype_def(ft);
	FT_ASSERT(d);
	if (one_d)
		return FT_GGML_F32;
	if (!d->quantised)
		return d->weight;
	uint32_t t = d->weight;
	if (role == FT_GGUF_ROLE_OUTPUT || (tied && role == FT_GGUF_ROLE_TOKEN_EMBD))
		t = fits(d->weight, ne0) ? d->output : FT_GGML_Q8_0;
	else if ((role == FT_GGUF_ROLE_ATTN_V || role == FT_GGUF_ROLE_FFN_DOWN) &&
		 more_bits(layer, n_layers))
		t = d->more_bits;
	if (fits(t, ne0))
		return t;
	for (size_t i = 0; i < FT_ARRAY_LEN(fallbacks); i++)
		if (fallbacks[i].from == t)
			t = fallbacks[i].to;
	return fits(t, ne0) ? t : FT_GGML_F16;
}
