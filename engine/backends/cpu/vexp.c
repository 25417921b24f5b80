/*
 * vexp.c - expf over an array, eight at a time (AVX-512 doubles; four with
 * AVX2 + FMA), for the softmax of attention and the SiLU of the MLP: glibc's
 * scalar expf was a tenth of a prefill (and 5% of a LoRA step at SmolLM2's
 * size on an AVX2-only CPU, before the AVX2 path).
 *
 * Math, in double precision, per element x (a float):
 *   k = round(x * 16 / ln 2),  r = x - k * ln2/16    (|r| <= ln2/32; ln2/16
 *                                                     in two parts, so r is
 *                                                     exact to ~1e-19)
 *   e^r by its Taylor series to r^6                  (truncation < 4e-16)
 *   e^x = 2^(k >> 4) * 2^((k & 15) / 16) * e^r        (a 16-entry table)
 * rounded once to float. The double result is within ~1e-15 of e^x, so the
 * float is e^x correctly rounded except when e^x lies within that of a
 * rounding boundary between two floats — what glibc's expf gives too, so
 * the two agree but for such rare ties. Below -110 the result is 0, above
 * 100 infinity (both as expf gives them; -inf gives 0), NaN stays NaN.
 * Each element's value depends on it alone (the tail goes through the same
 * vector code), so where an element sits never changes its bits.
 */
#include "cpu_int.h"

#include <math.h>

#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
#include <immintrin.h>

/* 2^(j/16), j = 0..15: the table of both vector paths */
static const double exp2_16th[16] = {
	0x1.0000000000000p+0, 0x1.0b5586cf9890fp+0, 0x1.172b83c7d517bp+0, 0x1.2387a6e756238p+0,
	0x1.306fe0a31b715p+0, 0x1.3dea64c123422p+0, 0x1.4bfdad5362a27p+0, 0x1.5ab07dd485429p+0,
	0x1.6a09e667f3bcdp+0, 0x1.7a11473eb0187p+0, 0x1.8ace5422aa0dbp+0, 0x1.9c49182a3f090p+0,
	0x1.ae89f995ad3adp+0, 0x1.c199bdd85529cp+0, 0x1.d5818dcfba487p+0, 0x1.ea4afa2a490dap+0,
};

#endif

#ifdef __AVX512F__

static inline __m256 exp8(__m256 xf)
{
	const __m512d t0 = _mm512_loadu_pd(exp2_16th), t1 = _mm512_loadu_pd(exp2_16th + 8);
	__m512d x0 = _mm512_cvtps_pd(xf);
	__mmask8 nan = _mm512_cmp_pd_mask(x0, x0, _CMP_UNORD_Q);
	__m512d x = _mm512_min_pd(_mm512_max_pd(x0, _mm512_set1_pd(-110.0)), _mm512_set1_pd(100.0));
	__m512d k = _mm512_roundscale_pd(_mm512_mul_pd(x, _mm512_set1_pd(0x1.71547652b82fep+4)),
					 _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
	__m512d r = _mm512_fnmadd_pd(k, _mm512_set1_pd(0x1.62e42fefa39efp-5), x);
	r = _mm512_fnmadd_pd(k, _mm512_set1_pd(0x1.abc9e3b39803fp-60), r);
	__m512d p = _mm512_set1_pd(1.0 / 720);
	p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(1.0 / 120));
	p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(1.0 / 24));
	p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(1.0 / 6));
	p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(0.5));
	p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(1.0));
	p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(1.0));
	__m256i ki = _mm512_cvtpd_epi32(k);
	__m512i j = _mm512_cvtepi32_epi64(_mm256_and_si256(ki, _mm256_set1_epi32(15)));
	__m512d e = _mm512_cvtepi32_pd(_mm256_srai_epi32(ki, 4));
	__m512d y = _mm512_scalef_pd(_mm512_mul_pd(p, _mm512_permutex2var_pd(t0, j, t1)), e);
	y = _mm512_mask_mov_pd(y, nan, x0);
	return _mm512_cvtpd_ps(y);
}

#define VEXP_LANES 8
static inline void vexp_block(float *y, const float *x)
{
	_mm256_storeu_ps(y, exp8(_mm256_loadu_ps(x)));
}
#elif defined(__AVX2__) && defined(__FMA__)

/* The same steps as the AVX-512 exp8, four doubles at a time: the table by a
 * gather, 2^(k >> 4) built in the exponent bits (|k >> 4| <= 160, a normal
 * double) instead of scalef; every operation is the same IEEE one, so the
 * two paths give the same bits. */
static inline __m128 exp4(__m128 xf)
{
	__m256d x0 = _mm256_cvtps_pd(xf);
	__m256d nan = _mm256_cmp_pd(x0, x0, _CMP_UNORD_Q);
	__m256d x = _mm256_min_pd(_mm256_max_pd(x0, _mm256_set1_pd(-110.0)), _mm256_set1_pd(100.0));
	__m256d k = _mm256_round_pd(_mm256_mul_pd(x, _mm256_set1_pd(0x1.71547652b82fep+4)),
				    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
	__m256d r = _mm256_fnmadd_pd(k, _mm256_set1_pd(0x1.62e42fefa39efp-5), x);
	r = _mm256_fnmadd_pd(k, _mm256_set1_pd(0x1.abc9e3b39803fp-60), r);
	__m256d p = _mm256_set1_pd(1.0 / 720);
	p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(1.0 / 120));
	p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(1.0 / 24));
	p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(1.0 / 6));
	p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(0.5));
	p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(1.0));
	p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(1.0));
	__m128i ki = _mm256_cvtpd_epi32(k);
	__m256d t = _mm256_i32gather_pd(exp2_16th, _mm_and_si128(ki, _mm_set1_epi32(15)), 8);
	__m256i e =
		_mm256_cvtepi32_epi64(_mm_add_epi32(_mm_srai_epi32(ki, 4), _mm_set1_epi32(1023)));
	__m256d two_e = _mm256_castsi256_pd(_mm256_slli_epi64(e, 52));
	__m256d y = _mm256_mul_pd(_mm256_mul_pd(p, t), two_e);
	y = _mm256_blendv_pd(y, x0, nan);
	return _mm256_cvtpd_ps(y);
}

#define VEXP_LANES 4
static inline void vexp_block(float *y, const float *x)
{
	_mm_storeu_ps(y, exp4(_mm_loadu_ps(x)));
}
#endif

#ifdef VEXP_LANES
void ft_cpu_expf_n(float *y, const float *x, size_t n)
{
	size_t i = 0;
	for (; i + VEXP_LANES <= n; i += VEXP_LANES)
		vexp_block(y + i, x + i);
	if (i < n) { /* the tail through the same code: its bits do not depend on where it sits */
		float tmp[VEXP_LANES] = { 0 };
		memcpy(tmp, x + i, sizeof(float) * (n - i));
		vexp_block(tmp, tmp);
		memcpy(y + i, tmp, sizeof(float) * (n - i));
	}
}
#else
void ft_cpu_expf_n(float *y, const float *x, size_t n)
{
	for (size_t i = 0; i < n; i++)
		y[i] = expf(x[i]);
}
#endif
