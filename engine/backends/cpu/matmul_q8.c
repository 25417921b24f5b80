/*
 * matmul_q8.c - the linear with a Q8_0 inference weight, in llama.cpp's
 * arithmetic: 8-bit weights times 8-bit activations, summed in integers.
 *
 * Math, for an output o of row n (blocks b of 32 inputs):
 *   weights      w[o, 32b + i] = dw[o, b] * qw[o, 32b + i]     (GGUF's Q8_0)
 *   activations  x[n, 32b + i] ~ dx[n, b] * qx[n, 32b + i], quantised here
 *                as llama.cpp quantises them for a Q8_0 dot product:
 *                dx = max|x| / 127, qx = roundf(x * (1 / dx)) (dx kept in
 *                fp32; roundf worked in integer steps that vectorise)
 *   out[n, o]    = sum_b (dx[n, b] * dw[o, b]) * sum_i qx * qw + bias[o]
 * The inner sums are exact integers; the blocks are added in increasing b
 * with one fused multiply-add each, so a row's result depends on nothing
 * but that row (batching changes no bit), and the AVX-512 VNNI kernel and
 * the portable one give the same bits (and so does the AVX2 kernel).
 *
 * VNNI's vpdpbusd multiplies unsigned by signed bytes: the weights are
 * stored as qw + 128 and the activation block's sum times 128 is taken back
 * off (sx below, one integer per row and block, kept with the activations),
 * exactly. A decode step of one row reads every weight byte once, so the
 * packed weight is what GGUF's block holds and no more: 32 bytes and an
 * fp16 scale per 32 inputs (an int32 correction per output and block, as
 * an earlier layout kept, was an eighth more bytes to read).
 *
 * Packed layout (panels of 16 outputs, the lanes of one 512-bit register):
 *   q   [panel][IC/4][16][4] uint8 qw + 128: four consecutive inputs of
 *       each output
 *   d   [panel][IC/32][16]  dw (fp16, as in the GGUF block)
 * Outputs past OC are zero weights.
 */
#include <math.h>
#include <pthread.h>

#include "cpu_int.h"

#if defined(__AVX512F__) || defined(__AVX2__)
#include <immintrin.h>
#endif
#if defined(__AVX512F__) && defined(__AVX512VNNI__)
#define Q8_VNNI 1
#elif defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
/* AVX2 (no AVX-512 VNNI): the same integer sums with vpmaddubsw, as
 * llama.cpp's AVX2 Q8_0 dot product does; the same bits */
#define Q8_AVX2 1
#endif
/* AMX (Sapphire Rapids on): 16 rows of a panel in one tile product per
 * block. The integer sums are the same exact integers, so the bits are
 * those of the VNNI kernel. FT_CPU_AMX=0 turns it off. */
#if defined(Q8_VNNI) && defined(__AMX_TILE__) && defined(__AMX_INT8__) && defined(__linux__)
#define Q8_AMX 1
#include <sys/syscall.h>
#include <unistd.h>
#endif

#define P 16 /* outputs per panel */
#define RB 8 /* rows per pass over a panel */
#ifndef Q8_PF
#define Q8_PF \
	8 /* blocks (512 bytes each) the one-row kernel prefetches ahead: measured 4 KB ahead best */
#endif

#if !defined(Q8_VNNI) && !defined(Q8_AVX2)
/* fp16 to float, exactly (the VNNI kernel's vcvtph2ps) */
static float f16_value(uint16_t h)
{
	uint32_t sign = (uint32_t)(h >> 15) << 31, e = (h >> 10) & 31, m = h & 1023;
	float v;
	if (e == 0)
		v = ldexpf((float)m, -24); /* subnormal (or zero) */
	else if (e == 31)
		v = m ? NAN : INFINITY;
	else
		v = ldexpf((float)(m | 1024), (int)e - 25);
	uint32_t bits;
	memcpy(&bits, &v, sizeof bits);
	bits |= sign;
	memcpy(&v, &bits, sizeof v);
	return v;
}
#endif

bool ft_cpu_q8_pack(struct ft_pw *w, const uint8_t *src)
{
	int IC = w->ic, nb = IC / 32;
	w->panels = (w->oc + P - 1) / P;
	size_t cells = (size_t)w->panels * P * IC;
	w->q = aligned_alloc(64, cells);
	/* aligned_alloc takes sizes that are multiples of the alignment */
	w->d = aligned_alloc(64, (cells / 32 * sizeof(uint16_t) + 63) / 64 * 64);
	if (!w->q || !w->d)
		return false;
	w->bytes = cells + cells / 32 * sizeof(uint16_t);
	for (int p = 0; p < w->panels; p++)
		for (int j = 0; j < P; j++) {
			int o = p * P + j;
			for (int b = 0; b < nb; b++) {
				/* GGUF Q8_0 block b of row o: fp16 d, 32 int8 */
				const uint8_t *blk = src + ((size_t)o * nb + b) * 34;
				for (int i = 0; i < 32; i++) {
					int k = 32 * b + i;
					int8_t q = o < w->oc ? (int8_t)blk[2 + i] : 0;
					w->q[(((size_t)p * (IC / 4) + k / 4) * P + j) * 4 + k % 4] =
						(uint8_t)(q + 128);
				}
				size_t at = ((size_t)p * nb + b) * P + j;
				w->d[at] = o < w->oc ? (uint16_t)(blk[0] | blk[1] << 8) : 0;
			}
		}
	return true;
}

/* The activations of N rows quantised: qx, and per block dx and
 * sx = 128 * sum of its qx. */
struct q8_act {
	int8_t *q;
	float *d;
	int32_t *sx;
	size_t cap_q, cap_d;
};

/* roundf (half away from zero) for |t| < 2^23, in integer steps the
 * compiler vectorises: the truncation, then one up or down on the fraction
 * (t - trunc(t) is exact in float). */
static inline int round_half_away(float t)
{
	int r = (int)t;
	float frac = t - (float)r;
	return r + (frac >= 0.5f) - (frac <= -0.5f);
}

static void quantise_row(struct q8_act *a, const float *x, int n, int IC)
{
	int nb = IC / 32;
	for (int b = 0; b < nb; b++) {
		const float *v = x + (size_t)n * IC + 32 * b;
		/* max |v| (the same value in any order; a scalar loop was 9% of
		 * a prefill) */
#ifdef __AVX512F__
		float amax = _mm512_reduce_max_ps(_mm512_max_ps(
			_mm512_abs_ps(_mm512_loadu_ps(v)), _mm512_abs_ps(_mm512_loadu_ps(v + 16))));
#else
		float amax = 0;
		for (int i = 0; i < 32; i++)
			amax = fmaxf(amax, fabsf(v[i]));
#endif
		float d = amax / 127.0f, id = d > 0 ? 1.0f / d : 0.0f;
		a->d[(size_t)n * nb + b] = d;
		int8_t *q = a->q + (size_t)n * IC + 32 * b;
		int32_t sum = 0;
		for (int i = 0; i < 32; i++) {
			q[i] = (int8_t)round_half_away(v[i] * id);
			sum += q[i];
		}
		a->sx[(size_t)n * nb + b] = 128 * sum;
	}
}

struct quant_job {
	struct q8_act *a;
	const float *x;
	int N, IC;
};

static void quant_task(void *ctx, int t)
{
	const struct quant_job *j = ctx;
	quantise_row(j->a, j->x, t, j->IC);
}

struct q8_job {
	float *out;
	const struct ft_pw *w;
	const struct q8_act *a;
	int N, panels_per_task;
};

#ifdef Q8_VNNI
/* Block b's integer sums of one row: sum_i qx * (qw + 128), in two chains
 * (vpdpbusd's latency, not the loads, bounds one chain of eight). */
static inline __m512i block_row1(const uint8_t *q, const int8_t *a)
{
	__m512i s0 = _mm512_setzero_si512(), s1 = _mm512_setzero_si512();
	for (int g = 0; g < 8; g += 2) {
		int32_t a0, a1;
		memcpy(&a0, a + 4 * g, 4);
		memcpy(&a1, a + 4 * g + 4, 4);
		s0 = _mm512_dpbusd_epi32(s0, _mm512_load_si512((const void *)(q + g * 64)),
					 _mm512_set1_epi32(a0));
		s1 = _mm512_dpbusd_epi32(s1, _mm512_load_si512((const void *)(q + g * 64 + 64)),
					 _mm512_set1_epi32(a1));
	}
	return _mm512_add_epi32(s0, s1);
}

/* Panel p's weights and the activations of rows from r0, as every kernel
 * below reads them. */
struct panel {
	int IC, nb; /* inputs, and their blocks of 32 */
	const uint8_t *q; /* the panel's weights, block after block of 512 */
	const uint16_t *dw; /* its fp16 scales, 16 per block */
	const int8_t *aq; /* row r0's activations (row stride IC) */
	const float *ad; /* its dx per block (row stride nb) */
	const int32_t *asx; /* its 128 * sum qx per block (row stride nb) */
};

static struct panel panel_at(const struct q8_job *j, int p, int r0)
{
	const struct ft_pw *w = j->w;
	int IC = w->ic, nb = IC / 32;
	return (struct panel){ IC,
			       nb,
			       w->q + (size_t)p * (IC / 4) * P * 4,
			       w->d + (size_t)p * nb * P,
			       j->a->q + (size_t)r0 * IC,
			       j->a->d + (size_t)r0 * nb,
			       j->a->sx + (size_t)r0 * nb };
}

static inline void prefetch_ahead(const struct panel *pn, int b)
{
	for (int l = 0; l < 8; l++)
		_mm_prefetch((const char *)(pn->q + (size_t)(b + Q8_PF) * 512 + 64 * l),
			     _MM_HINT_T0);
}

static inline __m512 block_scales(const struct panel *pn, int b)
{
	return _mm512_cvtph_ps(_mm256_loadu_si256((const void *)(pn->dw + (size_t)b * P)));
}

/* f + (s - sx) * (dw * dx) for row r's block b: the one rounding every
 * kernel (one row, a few, AMX's sixteen) gives, so that all have the same
 * bits. */
static inline __m512 scale_add(__m512 f, __m512i s, __m512 d, const struct panel *pn, int r, int b)
{
	size_t at = (size_t)r * pn->nb + b;
	__m512 sc = _mm512_mul_ps(d, _mm512_set1_ps(pn->ad[at]));
	__m512 v = _mm512_cvtepi32_ps(_mm512_sub_epi32(s, _mm512_set1_epi32(pn->asx[at])));
	return _mm512_fmadd_ps(v, sc, f);
}

/* Rows r0..r0+nr of the panel's 16 outputs into out (the last panel's
 * outputs past OC dropped). */
static void store_rows(const struct q8_job *j, int p, int r0, int nr, const __m512 *f)
{
	int OC = j->w->oc, valid = FT_MIN(P, OC - p * P);
	for (int r = 0; r < nr; r++) {
		float tmp[P];
		_mm512_storeu_ps(tmp, f[r]);
		memcpy(j->out + (size_t)(r0 + r) * OC + (size_t)p * P, tmp, sizeof(float) * valid);
	}
}

/* Rows r0..r0+nr (nr <= RB) of one panel. */
static void panel_rows(const struct q8_job *j, int p, int r0, int nr)
{
	struct panel pn = panel_at(j, p, r0);
	int IC = pn.IC, nb = pn.nb;
	const uint8_t *q = pn.q;
	const int8_t *aq = pn.aq;
	__m512 f[RB];
	for (int r = 0; r < RB; r++)
		f[r] = _mm512_setzero_ps();
	if (nr == 1) {
		for (int b = 0; b < nb; b++) {
			prefetch_ahead(&pn, b);
			__m512i s = block_row1(q + (size_t)b * 512, aq + 32 * b);
			f[0] = scale_add(f[0], s, block_scales(&pn, b), &pn, 0, b);
		}
	} else {
		for (int b = 0; b < nb; b++) {
			__m512i s[RB];
			for (int r = 0; r < RB; r++)
				s[r] = _mm512_setzero_si512();
			prefetch_ahead(&pn, b);
			for (int g = 0; g < 8; g++) {
				__m512i wv = _mm512_load_si512(
					(const void *)(q + ((size_t)b * 8 + g) * 64));
				for (int r = 0; r < nr; r++) {
					int32_t a4;
					memcpy(&a4, aq + (size_t)r * IC + 32 * b + 4 * g, 4);
					s[r] = _mm512_dpbusd_epi32(s[r], wv, _mm512_set1_epi32(a4));
				}
			}
			__m512 d = block_scales(&pn, b);
			for (int r = 0; r < nr; r++)
				f[r] = scale_add(f[r], s[r], d, &pn, r, b);
		}
	}
	store_rows(j, p, r0, nr, f);
}
#elif defined(Q8_AVX2)
/* R rows at a time (R <= 4), the panel's 16 outputs in two 8-lane halves.
 * The stored byte qw + 128 XOR 0x80 is qw; vpmaddubsw multiplies unsigned
 * by signed bytes, so |qw| (computed once, shared by the R rows) times qx
 * with qw's sign: products of at most 128 * 127 and pairs of at most
 * 32512, exact in its int16; vpmaddwd then adds the pairs into an int32 per
 * output and group of four inputs. Each row gets the same integer sums and
 * the same float operations as it would alone. */
static inline __attribute__((always_inline)) void rows_avx2(const struct q8_job *j, int p, int r0,
							    int R)
{
	const struct ft_pw *w = j->w;
	int IC = w->ic, nb = IC / 32, OC = w->oc;
	const uint8_t *q = w->q + (size_t)p * (IC / 4) * P * 4;
	const uint16_t *dw = w->d + (size_t)p * nb * P;
	int valid = FT_MIN(P, OC - p * P);
	const __m256i flip = _mm256_set1_epi8((char)0x80), ones = _mm256_set1_epi16(1);
	const int8_t *a[4];
	const float *ad[4];
	__m256 f[4][2];
	for (int r = 0; r < R; r++) {
		a[r] = j->a->q + (size_t)(r0 + r) * IC;
		ad[r] = j->a->d + (size_t)(r0 + r) * nb;
		f[r][0] = f[r][1] = _mm256_setzero_ps();
	}
	for (int b = 0; b < nb; b++) {
		const uint8_t *qb = q + (size_t)b * 512;
		__m256i s[4][2];
		for (int r = 0; r < R; r++)
			s[r][0] = s[r][1] = _mm256_setzero_si256();
		for (int g = 0; g < 8; g++) {
			__m256i w0 = _mm256_xor_si256(
				_mm256_load_si256((const void *)(qb + g * 64)), flip);
			__m256i w1 = _mm256_xor_si256(
				_mm256_load_si256((const void *)(qb + g * 64 + 32)), flip);
			__m256i u0 = _mm256_sign_epi8(w0, w0), u1 = _mm256_sign_epi8(w1, w1);
			for (int r = 0; r < R; r++) {
				int32_t a4;
				memcpy(&a4, a[r] + 32 * b + 4 * g, 4);
				__m256i av = _mm256_set1_epi32(a4);
				__m256i p0 = _mm256_maddubs_epi16(u0, _mm256_sign_epi8(av, w0));
				__m256i p1 = _mm256_maddubs_epi16(u1, _mm256_sign_epi8(av, w1));
				s[r][0] = _mm256_add_epi32(s[r][0], _mm256_madd_epi16(p0, ones));
				s[r][1] = _mm256_add_epi32(s[r][1], _mm256_madd_epi16(p1, ones));
			}
		}
		/* (s * (dw * dx)) + f, one rounding each: the portable kernel's
		 * fmaf */
		const uint16_t *db = dw + (size_t)b * P;
		__m256 w0 = _mm256_cvtph_ps(_mm_loadu_si128((const void *)db));
		__m256 w1 = _mm256_cvtph_ps(_mm_loadu_si128((const void *)(db + 8)));
		for (int r = 0; r < R; r++) {
			__m256 dx = _mm256_set1_ps(ad[r][b]);
			f[r][0] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s[r][0]),
						  _mm256_mul_ps(w0, dx), f[r][0]);
			f[r][1] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s[r][1]),
						  _mm256_mul_ps(w1, dx), f[r][1]);
		}
	}
	for (int r = 0; r < R; r++) {
		float tmp[P];
		_mm256_storeu_ps(tmp, f[r][0]);
		_mm256_storeu_ps(tmp + 8, f[r][1]);
		memcpy(j->out + (size_t)(r0 + r) * OC + (size_t)p * P, tmp, sizeof(float) * valid);
	}
}

static void panel_rows(const struct q8_job *j, int p, int r0, int nr)
{
	int r = 0;
	for (; r + 4 <= nr; r += 4)
		rows_avx2(j, p, r0 + r, 4);
	for (; r + 2 <= nr; r += 2)
		rows_avx2(j, p, r0 + r, 2);
	if (r < nr)
		rows_avx2(j, p, r0 + r, 1);
}
#else
static void panel_rows(const struct q8_job *j, int p, int r0, int nr)
{
	const struct ft_pw *w = j->w;
	int IC = w->ic, nb = IC / 32, OC = w->oc;
	const uint8_t *q = w->q + (size_t)p * (IC / 4) * P * 4;
	int valid = FT_MIN(P, OC - p * P);
	for (int r = 0; r < nr; r++) {
		const int8_t *a = j->a->q + (size_t)(r0 + r) * IC;
		for (int l = 0; l < valid; l++) {
			float f = 0;
			for (int b = 0; b < nb; b++) {
				int32_t s = 0;
				for (int k = 32 * b; k < 32 * b + 32; k++)
					s += (int32_t)a[k] *
					     ((int32_t)q[((size_t)(k / 4) * P + l) * 4 + k % 4] -
					      128);
				size_t at = ((size_t)p * nb + b) * P + l;
				float sc = f16_value(w->d[at]) * j->a->d[(size_t)(r0 + r) * nb + b];
				f = fmaf((float)s, sc, f);
			}
			j->out[(size_t)(r0 + r) * OC + (size_t)p * P + l] = f;
		}
	}
}
#endif

#ifdef Q8_AMX
static bool amx_ok;
static pthread_once_t amx_once = PTHREAD_ONCE_INIT;
static _Thread_local bool amx_configured;

static void amx_probe(void)
{
	const char *e = getenv("FT_CPU_AMX");
	if (e && strcmp(e, "0") == 0)
		return;
	/* Linux lends a process AMX's tile state only when asked
	 * (ARCH_REQ_XCOMP_PERM for XFEATURE_XTILEDATA); a kernel or VM
	 * without it says no and the VNNI kernel runs. */
	amx_ok = syscall(SYS_arch_prctl, 0x1023, 18) == 0;
}

/* The calling thread's tiles configured: 0 the 16 x 16 int32 sums, 1 the
 * 16 rows' 32 activation bytes of a block, 2 the block's weights (8 rows
 * of 16 outputs x 4 inputs: the packed panel's own layout); 3-5 the same
 * for the next block, whose product runs while this one's sums are
 * scaled. */
static bool amx_thread(void)
{
	pthread_once(&amx_once, amx_probe);
	if (!amx_ok)
		return false;
	if (!amx_configured) {
		struct {
			uint8_t palette, start_row, reserved[14];
			uint16_t colsb[16];
			uint8_t rows[16];
		} cfg;
		memset(&cfg, 0, sizeof cfg);
		cfg.palette = 1;
		cfg.colsb[0] = 64;
		cfg.rows[0] = 16;
		cfg.colsb[1] = 32;
		cfg.rows[1] = 16;
		cfg.colsb[2] = 64;
		cfg.rows[2] = 8;
		for (int t = 3; t < 6; t++) { /* 3-5: the same, for the next block */
			cfg.colsb[t] = cfg.colsb[t - 3];
			cfg.rows[t] = cfg.rows[t - 3];
		}
		_tile_loadconfig(&cfg);
		amx_configured = true;
	}
	return true;
}

/* Rows r0..r0+16 of one panel. */
static void panel_rows16_amx(const struct q8_job *j, int p, int r0)
{
	struct panel pn = panel_at(j, p, r0);
	int IC = pn.IC, nb = pn.nb;
	const uint8_t *q = pn.q;
	const int8_t *aq = pn.aq;
	int32_t c[16][P] __attribute__((aligned(64)));
	__m512 f[16];
	for (int r = 0; r < 16; r++)
		f[r] = _mm512_setzero_ps();
		/* Block b's sums (in c) scaled and added, in increasing b. */
#define AMX_SCALE(b)                                                                            \
	do {                                                                                    \
		__m512 d = block_scales(&pn, (b));                                              \
		_Pragma("GCC unroll 16") for (int r = 0; r < 16; r++) f[r] =                    \
			scale_add(f[r], _mm512_load_si512((const void *)c[r]), d, &pn, r, (b)); \
	} while (0)
	_tile_zero(0);
	_tile_loadd(1, aq, IC);
	_tile_loadd(2, q, 64);
	_tile_dpbsud(0, 1, 2);
	for (int b = 0; b < nb; b += 2) {
		if (b + 1 < nb) {
			_tile_zero(3);
			_tile_loadd(4, aq + 32 * (b + 1), IC);
			_tile_loadd(5, q + (size_t)(b + 1) * 512, 64);
			_tile_dpbsud(3, 4, 5);
		}
		_tile_stored(0, c, 64);
		AMX_SCALE(b);
		if (b + 1 >= nb)
			break;
		if (b + 2 < nb) {
			_tile_zero(0);
			_tile_loadd(1, aq + 32 * (b + 2), IC);
			_tile_loadd(2, q + (size_t)(b + 2) * 512, 64);
			_tile_dpbsud(0, 1, 2);
		}
		_tile_stored(3, c, 64);
		AMX_SCALE(b + 1);
	}
#undef AMX_SCALE
	store_rows(j, p, r0, 16, f);
}
#endif

/* Every row of panel p: sixteen at a time on AMX, the rest RB at a time. */
static void panel_all_rows(const struct q8_job *j, int p)
{
	int r0 = 0;
#ifdef Q8_AMX
	if (j->N >= 16 && amx_thread())
		for (; r0 + 16 <= j->N; r0 += 16)
			panel_rows16_amx(j, p, r0);
#endif
	for (; r0 < j->N; r0 += RB)
		panel_rows(j, p, r0, FT_MIN(RB, j->N - r0));
}

static void q8_task(void *ctx, int t)
{
	const struct q8_job *j = ctx;
	int p0 = t * j->panels_per_task, p1 = FT_MIN(j->w->panels, p0 + j->panels_per_task);
	for (int p = p0; p < p1; p++)
		panel_all_rows(j, p);
}

/* The calling thread's activation buffers, freed when it exits. */
static pthread_key_t act_key;
static pthread_once_t act_once = PTHREAD_ONCE_INIT;

static void act_free(void *p)
{
	struct q8_act *a = p;
	free(a->q);
	free(a->d);
	free(a->sx);
	free(a);
}

static void act_key_make(void)
{
	FT_ASSERT(pthread_key_create(&act_key, act_free) == 0);
}

static struct q8_act *act_buffers(size_t need_q, size_t need_d)
{
	pthread_once(&act_once, act_key_make);
	struct q8_act *a = pthread_getspecific(act_key);
	if (!a) {
		a = calloc(1, sizeof(*a));
		FT_ASSERT(a);
		pthread_setspecific(act_key, a);
	}
	if (a->cap_q < need_q) {
		free(a->q);
		a->cap_q = FT_MAX(need_q, (size_t)1 << 16);
		a->q = malloc(a->cap_q);
		FT_ASSERT(a->q);
	}
	if (a->cap_d < need_d) {
		free(a->d);
		free(a->sx);
		a->cap_d = FT_MAX(need_d, (size_t)1 << 11);
		a->d = malloc(a->cap_d * sizeof(float));
		a->sx = malloc(a->cap_d * sizeof(int32_t));
		FT_ASSERT(a->d && a->sx);
	}
	return a;
}

/* The N input rows quantised into the calling thread's buffers. */
static struct q8_act *quantise_input(const float *inp, int N, int IC)
{
	size_t need_q = (size_t)N * IC;
	struct q8_act *a = act_buffers(need_q, need_q / 32);
	if (N <= RB) {
		for (int n = 0; n < N; n++)
			quantise_row(a, inp, n, IC);
	} else {
		struct quant_job qj = { a, inp, N, IC };
		ft_pool_run(quant_task, &qj, N);
	}
	return a;
}

void ft_cpu_matmul_q8_fwd(float *out, const float *inp, const struct ft_pw *w, int N)
{
	struct q8_act *a = quantise_input(inp, N, w->ic);
	int tasks = 4 * ft_pool_threads();
	struct q8_job j = { out, w, a, N, FT_MAX(1, (w->panels + tasks - 1) / tasks) };
	ft_pool_run(q8_task, &j, (w->panels + j.panels_per_task - 1) / j.panels_per_task);
}

/* Several weights of one input: the panels of all of them, in order, are
 * one list that the tasks split (a decode step's q, k and v are ~25 small
 * matrices' worth of hand-offs otherwise: each costs a futex wake-up and a
 * wait, comparable to the work itself at one row). */
struct q8_multi {
	struct q8_job j[FT_PW_MULTI_MAX];
	int start[FT_PW_MULTI_MAX + 1]; /* first panel of each weight in the list */
	int n, panels_per_task;
};

static void q8_multi_task(void *ctx, int t)
{
	const struct q8_multi *m = ctx;
	int g0 = t * m->panels_per_task, g1 = FT_MIN(m->start[m->n], g0 + m->panels_per_task);
	int i = 0;
	for (int g = g0; g < g1; g++) {
		while (g >= m->start[i + 1])
			i++;
		panel_all_rows(&m->j[i], g - m->start[i]);
	}
}

void ft_cpu_matmul_q8_fwd_multi(float *const *out, const float *inp, const struct ft_pw *const *w,
				int n, int N)
{
	FT_ASSERT(n >= 1 && n <= FT_PW_MULTI_MAX);
	struct q8_act *a = quantise_input(inp, N, w[0]->ic);
	struct q8_multi m = { .n = n };
	for (int i = 0; i < n; i++) {
		FT_ASSERT(w[i]->ic == w[0]->ic);
		m.j[i] = (struct q8_job){ out[i], w[i], a, N, 0 };
		m.start[i + 1] = m.start[i] + w[i]->panels;
	}
	int tasks = 4 * ft_pool_threads(), total = m.start[n];
	m.panels_per_task = FT_MAX(1, (total + tasks - 1) / tasks);
	ft_pool_run(q8_multi_task, &m, (total + m.panels_per_task - 1) / m.panels_per_task);
}
