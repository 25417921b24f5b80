/*
 * tokenizer_nfc.c - Unicode NFC for the "NFC" normalizer (UAX #15):
 *   1. full canonical decomposition of every character (table from
 *      unicode_tables.c; Hangul syllables by arithmetic);
 *   2. canonical ordering: each run of non-starters is stably sorted by
 *      combining class;
 *   3. canonical composition: a character composes with the last starter
 *      when nothing between them blocks it (a character in between with a
 *      class >= its own, or a starter), using the primary composites table
 *      (composition exclusions left out by the generator) and Hangul L+V,
 *      LV+T arithmetic.
 * Fast path: text whose code points are all below U+0300 is already NFC.
 *
 * Also the Lowercase normalizer: each character mapped on its own (Rust's
 * char::to_lowercase), from the generated table.
 */
#include "tokenizer_int.h"

enum {
	SBASE = 0xAC00,
	LBASE = 0x1100,
	VBASE = 0x1161,
	TBASE = 0x11A7,
	LCOUNT = 19,
	VCOUNT = 21,
	TCOUNT = 28,
	NCOUNT = VCOUNT * TCOUNT,
	SCOUNT = LCOUNT * NCOUNT,
};

static unsigned ccc(uint32_t cp)
{
	size_t lo = 0, hi = ft_uni_ccc_nruns;
	if (cp < 0x300)
		return 0;
	while (hi - lo > 1) {
		size_t mid = lo + (hi - lo) / 2;
		if (ft_uni_ccc_start[mid] <= cp)
			lo = mid;
		else
			hi = mid;
	}
	return ft_uni_ccc_val[lo];
}

static const struct ft_uni_decomp *decomp_of(uint32_t cp)
{
	size_t lo = 0, hi = ft_uni_ndecomp;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (ft_uni_decomp[mid].cp == cp)
			return &ft_uni_decomp[mid];
		if (ft_uni_decomp[mid].cp < cp)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/* The primary composite of a b, or 0. */
static uint32_t compose(uint32_t a, uint32_t b)
{
	if (a >= LBASE && a < LBASE + LCOUNT && b >= VBASE && b < VBASE + VCOUNT)
		return SBASE + ((a - LBASE) * VCOUNT + (b - VBASE)) * TCOUNT;
	if (a >= SBASE && a < SBASE + SCOUNT && (a - SBASE) % TCOUNT == 0 && b > TBASE &&
	    b < TBASE + TCOUNT)
		return a + (b - TBASE);
	size_t lo = 0, hi = ft_uni_ncomp;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct ft_uni_comp *c = &ft_uni_comp[mid];
		if (c->a == a && c->b == b)
			return c->c;
		if (c->a < a || (c->a == a && c->b < b))
			lo = mid + 1;
		else
			hi = mid;
	}
	return 0;
}

struct cps {
	uint32_t *v;
	size_t n, cap;
};

static enum ft_rc push(struct cps *c, uint32_t cp)
{
	if (c->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 256;
		uint32_t *v = realloc(c->v, cap * sizeof(*v));
		if (!v)
			return FT_ENOMEM;
		c->v = v;
		c->cap = cap;
	}
	c->v[c->n++] = cp;
	return FT_OK;
}

enum ft_rc ft_uni_nfc(const char *s, size_t n, struct ft_buf *out)
{
	size_t i;
	for (i = 0; i < n; i++)
		if ((unsigned char)s[i] >= 0xCC) /* lead bytes of U+0300 and above */
			break;
	if (i == n)
		return ft_buf_add(out, s, n) ? FT_ENOMEM : FT_OK;

	struct cps d = { 0 };
	enum ft_rc rc = FT_OK;
	for (i = 0; i < n && !rc;) {
		uint32_t cp;
		i += ft_utf8_next(s + i, n - i, &cp);
		const struct ft_uni_decomp *dc;
		if (cp >= SBASE && cp < SBASE + SCOUNT) {
			uint32_t si = cp - SBASE;
			rc = push(&d, LBASE + si / NCOUNT);
			if (!rc)
				rc = push(&d, VBASE + (si % NCOUNT) / TCOUNT);
			if (!rc && si % TCOUNT)
				rc = push(&d, TBASE + si % TCOUNT);
		} else if ((dc = decomp_of(cp))) {
			for (size_t k = 0; k < dc->len && !rc; k++)
				rc = push(&d, ft_uni_decomp_pool[dc->off + k]);
		} else {
			rc = push(&d, cp);
		}
	}
	if (rc)
		goto out;
	/* canonical ordering: insertion sort inside each run of non-starters */
	for (i = 1; i < d.n; i++) {
		unsigned c = ccc(d.v[i]);
		if (c == 0)
			continue;
		size_t k = i;
		uint32_t x = d.v[i];
		while (k > 0 && ccc(d.v[k - 1]) > c) {
			d.v[k] = d.v[k - 1];
			k--;
		}
		d.v[k] = x;
	}
	/* composition */
	if (d.n) {
		size_t starter = 0, w = 1;
		unsigned last = ccc(d.v[0]) ? 256 : 0;
		for (i = 1; i < d.n; i++) {
			uint32_t ch = d.v[i], c;
			unsigned cl = ccc(ch);
			if ((last < cl || last == 0) && (c = compose(d.v[starter], ch)) != 0) {
				d.v[starter] = c;
				continue;
			}
			if (cl == 0)
				starter = w;
			last = cl;
			d.v[w++] = ch;
		}
		d.n = w;
	}
	for (i = 0; i < d.n && !rc; i++) {
		char u[4];
		rc = ft_buf_add(out, u, ft_utf8_put(d.v[i], u)) ? FT_ENOMEM : FT_OK;
	}
out:
	free(d.v);
	return rc;
}

enum ft_rc ft_uni_lowercase(const char *s, size_t n, struct ft_buf *out)
{
	for (size_t i = 0; i < n;) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x80) {
			if (ft_buf_addch(out, (char)(c >= 'A' && c <= 'Z' ? c + 32 : c)))
				return FT_ENOMEM;
			i++;
			continue;
		}
		uint32_t cp;
		size_t l = ft_utf8_next(s + i, n - i, &cp), lo = 0, hi = ft_uni_nlower;
		const struct ft_uni_lower *hit = NULL;
		while (lo < hi) {
			size_t mid = lo + (hi - lo) / 2;
			if (ft_uni_lower[mid].cp == cp) {
				hit = &ft_uni_lower[mid];
				break;
			}
			if (ft_uni_lower[mid].cp < cp)
				lo = mid + 1;
			else
				hi = mid;
		}
		if (!hit) {
			if (ft_buf_add(out, s + i, l))
				return FT_ENOMEM;
		} else {
			for (size_t k = 0; k < 3 && hit->to[k]; k++) {
				char u[4];
				if (ft_buf_add(out, u, ft_utf8_put(hit->to[k], u)))
					return FT_ENOMEM;
			}
		}
		i += l;
	}
	return FT_OK;
}
