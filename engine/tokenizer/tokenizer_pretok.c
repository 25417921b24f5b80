/*
 * tokenizer_pretok.c - what the pre-tokenizers need: UTF-8 and Unicode
 * classes, span lists, the split regexes as hand-written matchers, literal
 * and regex splitting with the tokenizers package's delimiter behaviours,
 * and GPT-2's byte-to-character map.
 *
 * The regexes. The tokenizers package runs these through Oniguruma
 * (leftmost-first alternation, greedy with backtracking). Each matcher below
 * tries the alternatives in the pattern's order at one position and returns
 * the end of the first that matches, which is what the regex engine finds
 * there. \s is Oniguruma's Unicode \s (FT_UNI_WS), \p{L} / \p{N} the general
 * categories.
 *
 *   GPT-2:  's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 *   Llama3: (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
 *           ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
 *   Qwen2:  as Llama3 with \p{N} instead of \p{N}{1,3}
 *
 * The Whitespace pre-tokenizer's \w+|[^\w\s]+ is here too (TOK_RE_WORDS), with
 * Rust regex's \w (tok_is_word).
 *
 * Backtracking worked out by hand for the whitespace alternatives, with
 * r = the end of the whitespace run starting at pos:
 *   \s*[\r\n]+   ends just after the last CR or LF inside the run (fails if none);
 *   \s+(?!\S)    the whole run when it reaches the end of the text, else the run
 *                minus its last character (fails when that leaves nothing);
 *   \s+          the whole run.
 */
#include <ctype.h>
#include <pthread.h>

#include "tokenizer_int.h"

/* ---- Unicode ---- */

unsigned ft_uni_class(uint32_t cp)
{
	size_t lo = 0, hi = ft_uni_nruns;
	if (cp > 0x10FFFF)
		return 0;
	while (hi - lo > 1) {
		size_t mid = lo + (hi - lo) / 2;
		if (ft_uni_start[mid] <= cp)
			lo = mid;
		else
			hi = mid;
	}
	return ft_uni_flags[lo];
}

/* Classes of the first 128 code points, filled once. */
static uint16_t ascii_class[128];
static pthread_once_t ascii_once = PTHREAD_ONCE_INIT;
static void ascii_init(void)
{
	for (uint32_t c = 0; c < 128; c++)
		ascii_class[c] = (uint16_t)ft_uni_class(c);
}

static inline unsigned cls(uint32_t cp)
{
	return cp < 128 ? ascii_class[cp] : ft_uni_class(cp);
}

size_t ft_utf8_next(const char *s, size_t n, uint32_t *cp)
{
	const unsigned char *u = (const unsigned char *)s;
	if (u[0] < 0x80 || n < 2) {
		*cp = u[0];
		return 1;
	}
	if (u[0] < 0xE0) {
		*cp = ((uint32_t)(u[0] & 0x1F) << 6) | (u[1] & 0x3F);
		return 2;
	}
	if (u[0] < 0xF0 || n < 4) {
		if (n < 3) {
			*cp = u[0];
			return 1;
		}
		*cp = ((uint32_t)(u[0] & 0x0F) << 12) | ((uint32_t)(u[1] & 0x3F) << 6) |
		      (u[2] & 0x3F);
		return 3;
	}
	*cp = ((uint32_t)(u[0] & 0x07) << 18) | ((uint32_t)(u[1] & 0x3F) << 12) |
	      ((uint32_t)(u[2] & 0x3F) << 6) | (u[3] & 0x3F);
	return 4;
}

size_t ft_utf8_put(uint32_t cp, char out[4])
{
	if (cp < 0x80) {
		out[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = (char)(0xC0 | (cp >> 6));
		out[1] = (char)(0x80 | (cp & 0x3F));
		return 2;
	}
	if (cp < 0x10000) {
		out[0] = (char)(0xE0 | (cp >> 12));
		out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
		out[2] = (char)(0x80 | (cp & 0x3F));
		return 3;
	}
	out[0] = (char)(0xF0 | (cp >> 18));
	out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
	out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
	out[3] = (char)(0x80 | (cp & 0x3F));
	return 4;
}

/* Length of the well-formed sequence at s, or 0 with *bad = length of the
 * maximal ill-formed prefix to replace by one U+FFFD (Unicode 3.9, U+FFFD
 * substitution of maximal subparts). */
static size_t utf8_one(const unsigned char *s, size_t n, size_t *bad)
{
	unsigned char c = s[0];
	size_t need;
	unsigned char lo = 0x80, hi = 0xBF;
	if (c < 0x80)
		return 1;
	if (c >= 0xC2 && c <= 0xDF)
		need = 1;
	else if (c >= 0xE0 && c <= 0xEF) {
		need = 2;
		if (c == 0xE0)
			lo = 0xA0;
		else if (c == 0xED)
			hi = 0x9F;
	} else if (c >= 0xF0 && c <= 0xF4) {
		need = 3;
		if (c == 0xF0)
			lo = 0x90;
		else if (c == 0xF4)
			hi = 0x8F;
	} else {
		*bad = 1;
		return 0;
	}
	for (size_t i = 1; i <= need; i++) {
		if (i >= n || s[i] < lo || s[i] > hi) {
			*bad = i;
			return 0;
		}
		lo = 0x80;
		hi = 0xBF;
	}
	return need + 1;
}

bool ft_utf8_valid(const char *s, size_t n)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0, bad;
	while (i < n) {
		if (u[i] < 0x80) {
			i++;
			continue;
		}
		size_t k = utf8_one(u + i, n - i, &bad);
		if (!k)
			return false;
		i += k;
	}
	return true;
}

enum ft_rc ft_utf8_sanitize(const char *s, size_t n, struct ft_buf *out)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0, run = 0, bad = 0;
	while (i < n) {
		size_t k = utf8_one(u + i, n - i, &bad);
		if (k) {
			i += k;
			continue;
		}
		if (ft_buf_add(out, s + run, i - run) || ft_buf_add(out, "\xEF\xBF\xBD", 3))
			return FT_ENOMEM;
		i += bad;
		run = i;
	}
	return ft_buf_add(out, s + run, n - run) ? FT_ENOMEM : FT_OK;
}

/* ---- spans ---- */

void tok_pieces_init(struct tok_pieces *p)
{
	memset(p, 0, sizeof(*p));
	ft_buf_init(&p->text, (size_t)1 << 40);
}

void tok_pieces_release(struct tok_pieces *p)
{
	ft_buf_release(&p->text);
	free(p->v);
	memset(p, 0, sizeof(*p));
}

void tok_pieces_reset(struct tok_pieces *p)
{
	ft_buf_reset(&p->text);
	p->n = 0;
}

enum ft_rc tok_pieces_add(struct tok_pieces *p, const char *s, size_t len, int32_t id, bool first)
{
	if (p->n == p->cap) {
		size_t cap = p->cap ? 2 * p->cap : 16;
		struct tok_span *v = realloc(p->v, cap * sizeof(*v));
		if (!v)
			return FT_ENOMEM;
		p->v = v;
		p->cap = cap;
	}
	struct tok_span *sp = &p->v[p->n];
	sp->off = p->text.len;
	sp->len = 0;
	sp->id = id;
	sp->first = first;
	if (len && ft_buf_add(&p->text, s, len))
		return FT_ENOMEM;
	sp->len = len;
	p->n++;
	return FT_OK;
}

enum ft_rc tok_pieces_extend(struct tok_pieces *p, const char *s, size_t len)
{
	FT_ASSERT(p->n > 0);
	if (ft_buf_add(&p->text, s, len))
		return FT_ENOMEM;
	p->v[p->n - 1].len += len;
	return FT_OK;
}

/* ---- regex matchers ---- */

static const char *const pat_gpt2 =
	"'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
static const char *const pat_llama3 =
	"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
	"?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char *const pat_qwen2 =
	"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
	"?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

static const struct {
	const char *const *text;
	enum tok_regex re;
} known_patterns[] = {
	{ &pat_gpt2, TOK_RE_GPT2 },
	{ &pat_llama3, TOK_RE_LLAMA3 },
	{ &pat_qwen2, TOK_RE_QWEN2 },
};

const char *tok_regex_text(enum tok_regex re)
{
	for (size_t i = 0; i < FT_ARRAY_LEN(known_patterns); i++)
		if (known_patterns[i].re == re)
			return *known_patterns[i].text;
	return NULL;
}

bool tok_regex_lookup(const char *pattern, enum tok_regex *out)
{
	for (size_t i = 0; i < FT_ARRAY_LEN(known_patterns); i++)
		if (strcmp(pattern, *known_patterns[i].text) == 0) {
			*out = known_patterns[i].re;
			return true;
		}
	return false;
}

/* Class and length of the character at pos (pos < n). */
static inline unsigned at(const char *s, size_t n, size_t pos, uint32_t *cp, size_t *len)
{
	unsigned char c = (unsigned char)s[pos];
	if (c < 0x80) {
		*cp = c;
		*len = 1;
		return ascii_class[c];
	}
	*len = ft_utf8_next(s + pos, n - pos, cp);
	return cls(*cp);
}

#define OTHER(f) (!((f) & (FT_UNI_WS | FT_UNI_L | FT_UNI_N)))

/* End of the run of characters whose class has any of want (or, with
 * other, has none of WS/L/N), starting at pos; at most max characters. */
static size_t run_of(const char *s, size_t n, size_t pos, unsigned want, bool other, size_t max)
{
	uint32_t cp;
	size_t len, k = 0;
	while (pos < n && k < max) {
		unsigned f = at(s, n, pos, &cp, &len);
		if (other ? !OTHER(f) : !(f & want))
			break;
		pos += len;
		k++;
	}
	return pos;
}

/* 's|'t|'re|'ve|'m|'ll|'d at pos (s[pos] == '\''); ci: case-insensitive
 * (Unicode folding: U+017F LATIN SMALL LETTER LONG S folds to s). */
static size_t contraction(const char *s, size_t n, size_t pos, bool ci)
{
	size_t q = pos + 1;
	if (q >= n)
		return pos;
	unsigned char c = (unsigned char)s[q];
	unsigned char c2 = q + 1 < n ? (unsigned char)s[q + 1] : 0;
	if (ci) {
		if (c >= 'A' && c <= 'Z')
			c = (unsigned char)(c + 32);
		if (c2 >= 'A' && c2 <= 'Z')
			c2 = (unsigned char)(c2 + 32);
		if (c == 0xC5 && c2 == 0xBF) /* U+017F */
			return q + 2;
	}
	switch (c) {
	case 's':
	case 't':
	case 'm':
	case 'd': return q + 1;
	case 'r':
	case 'v': return c2 == 'e' ? q + 2 : pos;
	case 'l': return c2 == 'l' ? q + 2 : pos;
	default: return pos;
	}
}

/* The two \s alternatives shared by all patterns, after the others failed
 * at a whitespace character; crlf: try \s*[\r\n]+ first. */
static size_t space_tail(const char *s, size_t n, size_t pos, bool crlf)
{
	uint32_t cp;
	size_t len, p = pos, last = pos, after_crlf = 0;
	while (p < n) {
		unsigned f = at(s, n, p, &cp, &len);
		if (!(f & FT_UNI_WS))
			break;
		if (cp == '\r' || cp == '\n')
			after_crlf = p + len;
		last = p;
		p += len;
	}
	if (crlf && after_crlf)
		return after_crlf;
	if (p == n)
		return p; /* \s+(?!\S) at the end of the text */
	if (last > pos)
		return last; /* \s+(?!\S) backs off one character */
	return p; /* \s+ */
}

static size_t match_gpt2(const char *s, size_t n, size_t pos)
{
	uint32_t cp, cp2;
	size_t len, len2;
	unsigned f = at(s, n, pos, &cp, &len);
	if (cp == '\'') {
		size_t e = contraction(s, n, pos, false);
		if (e > pos)
			return e;
	}
	size_t q = pos;
	unsigned g = f;
	if (cp == ' ' && pos + 1 < n) {
		g = at(s, n, pos + 1, &cp2, &len2);
		q = pos + 1;
		if (!(g & (FT_UNI_L | FT_UNI_N)) && !OTHER(g)) {
			q = pos; /* " " then whitespace: only the \s alternatives remain */
			g = f;
		}
	}
	if (g & FT_UNI_L)
		return run_of(s, n, q, FT_UNI_L, false, SIZE_MAX);
	if (g & FT_UNI_N)
		return run_of(s, n, q, FT_UNI_N, false, SIZE_MAX);
	if (OTHER(g))
		return run_of(s, n, q, 0, true, SIZE_MAX);
	return space_tail(s, n, pos, false);
}

static size_t match_llama(const char *s, size_t n, size_t pos, size_t maxdigits)
{
	uint32_t cp, cp2;
	size_t len, len2;
	unsigned f = at(s, n, pos, &cp, &len);
	if (cp == '\'') {
		size_t e = contraction(s, n, pos, true);
		if (e > pos)
			return e;
	}
	/* [^\r\n\p{L}\p{N}]?\p{L}+ */
	if (f & FT_UNI_L)
		return run_of(s, n, pos, FT_UNI_L, false, SIZE_MAX);
	if (!(f & FT_UNI_N) && cp != '\r' && cp != '\n' && pos + len < n &&
	    (at(s, n, pos + len, &cp2, &len2) & FT_UNI_L))
		return run_of(s, n, pos + len, FT_UNI_L, false, SIZE_MAX);
	/* \p{N}{1,3} */
	if (f & FT_UNI_N)
		return run_of(s, n, pos, FT_UNI_N, false, maxdigits);
	/*  ?[^\s\p{L}\p{N}]+[\r\n]* */
	size_t q = SIZE_MAX;
	if (OTHER(f))
		q = pos;
	else if (cp == ' ' && pos + 1 < n && OTHER(at(s, n, pos + 1, &cp2, &len2)))
		q = pos + 1;
	if (q != SIZE_MAX) {
		size_t e = run_of(s, n, q, 0, true, SIZE_MAX);
		while (e < n && (s[e] == '\r' || s[e] == '\n'))
			e++;
		return e;
	}
	return space_tail(s, n, pos, true);
}

bool tok_is_word(uint32_t cp)
{
	if (ft_uni_class(cp) & (FT_UNI_L | FT_UNI_NL | FT_UNI_M | FT_UNI_ND | FT_UNI_PC))
		return true;
	/* Join_Control, and the symbols that are Other_Alphabetic */
	return cp == 0x200C || cp == 0x200D || (cp >= 0x24B6 && cp <= 0x24E9) ||
	       (cp >= 0x1F130 && cp <= 0x1F149) || (cp >= 0x1F150 && cp <= 0x1F169) ||
	       (cp >= 0x1F170 && cp <= 0x1F189);
}

/* \w+|[^\w\s]+ */
static size_t match_words(const char *s, size_t n, size_t pos)
{
	uint32_t cp;
	size_t len, p = pos;
	unsigned f = at(s, n, p, &cp, &len);
	bool word = tok_is_word(cp);
	if (!word && (f & FT_UNI_WS))
		return pos;
	while (p < n) {
		f = at(s, n, p, &cp, &len);
		if (word ? !tok_is_word(cp) : (tok_is_word(cp) || (f & FT_UNI_WS)))
			break;
		p += len;
	}
	return p;
}

size_t tok_regex_match_at(enum tok_regex re, const char *s, size_t n, size_t pos)
{
	pthread_once(&ascii_once, ascii_init);
	if (pos >= n)
		return pos;
	switch (re) {
	case TOK_RE_GPT2: return match_gpt2(s, n, pos);
	case TOK_RE_LLAMA3: return match_llama(s, n, pos, 3);
	case TOK_RE_QWEN2: return match_llama(s, n, pos, 1);
	case TOK_RE_WORDS: return match_words(s, n, pos);
	}
	return pos;
}

/* ---- splitting ---- */

/* Next match at or after pos: [*ms, *me); false when none. */
static bool find_next(const struct tok_pattern *pat, const char *s, size_t n, size_t pos,
		      size_t *ms, size_t *me)
{
	if (pat->is_class) {
		while (pos < n) {
			uint32_t cp;
			size_t l = ft_utf8_next(s + pos, n - pos, &cp);
			if ((ft_uni_class(cp) & pat->cls) ||
			    (pat->punct && cp < 128 && ispunct((int)cp))) {
				*ms = pos;
				*me = pos + l;
				return true;
			}
			pos += l;
		}
		return false;
	}
	if (pat->is_regex) {
		while (pos < n) {
			size_t e = tok_regex_match_at(pat->re, s, n, pos);
			if (e > pos) {
				*ms = pos;
				*me = e;
				return true;
			}
			uint32_t cp;
			pos += ft_utf8_next(s + pos, n - pos, &cp);
		}
		return false;
	}
	if (pat->lit_len == 0 || pos >= n)
		return false;
	const char *hit = memmem(s + pos, n - pos, pat->lit, pat->lit_len);
	if (!hit)
		return false;
	*ms = (size_t)(hit - s);
	*me = *ms + pat->lit_len;
	return true;
}

struct seg {
	size_t a, b;
	bool match;
};

static enum ft_rc emit(struct tok_pieces *out, const char *s, size_t a, size_t b, bool *first)
{
	if (b <= a)
		return FT_OK;
	enum ft_rc rc = tok_pieces_add(out, s + a, b - a, -1, *first);
	*first = false;
	return rc;
}

enum ft_rc tok_split(const struct tok_pattern *pat, enum tok_split_behavior b, bool invert,
		     const char *s, size_t n, bool first, struct tok_pieces *out)
{
	/* Walk the text as alternating (gap, match) segments; apply the behaviour
	 * with at most one pending piece [pa, pb). */
	size_t pos = 0, pa = 0, pb = 0;
	bool have = false, prev_match = false;
	enum ft_rc rc;
	while (pos < n) {
		size_t ms, me;
		struct seg segs[2];
		size_t k = 0;
		if (!find_next(pat, s, n, pos, &ms, &me)) {
			segs[k++] = (struct seg){ pos, n, false };
		} else {
			if (ms > pos)
				segs[k++] = (struct seg){ pos, ms, false };
			segs[k++] = (struct seg){ ms, me, true };
		}
		pos = segs[k - 1].b;
		for (size_t i = 0; i < k; i++) {
			struct seg g = segs[i];
			if (invert)
				g.match = !g.match;
			switch (b) {
			case TOK_SPLIT_REMOVED:
				if (!g.match && (rc = emit(out, s, g.a, g.b, &first)))
					return rc;
				break;
			case TOK_SPLIT_ISOLATED:
				if ((rc = emit(out, s, g.a, g.b, &first)))
					return rc;
				break;
			case TOK_SPLIT_CONTIGUOUS:
				if (have && g.match == prev_match) {
					pb = g.b;
				} else {
					if (have && (rc = emit(out, s, pa, pb, &first)))
						return rc;
					pa = g.a;
					pb = g.b;
					have = true;
				}
				break;
			case TOK_SPLIT_MERGED_PREV:
				if (have && g.match && !prev_match) {
					pb = g.b;
				} else {
					if (have && (rc = emit(out, s, pa, pb, &first)))
						return rc;
					pa = g.a;
					pb = g.b;
					have = true;
				}
				break;
			case TOK_SPLIT_MERGED_NEXT:
				/* A match starts a piece that the following gap joins. */
				if (have && !g.match && prev_match) {
					pb = g.b;
				} else {
					if (have && (rc = emit(out, s, pa, pb, &first)))
						return rc;
					pa = g.a;
					pb = g.b;
					have = true;
				}
				break;
			}
			prev_match = g.match;
		}
	}
	if (have && (rc = emit(out, s, pa, pb, &first)))
		return rc;
	return FT_OK;
}

/* ---- GPT-2 byte map ---- */

struct tok_bytemap tok_bytemap;
static pthread_once_t bytemap_once = PTHREAD_ONCE_INIT;

static void bytemap_build(void)
{
	int extra = 0;
	for (int i = 0; i < 324; i++)
		tok_bytemap.back[i] = -1;
	for (int b = 0; b < 256; b++) {
		bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) ||
				 (b >= 0xAE && b <= 0xFF);
		uint32_t cp = printable ? (uint32_t)b : (uint32_t)(256 + extra++);
		tok_bytemap.len[b] = (unsigned char)ft_utf8_put(cp, tok_bytemap.utf8[b]);
		tok_bytemap.back[cp] = (int16_t)b;
	}
}

void tok_bytemap_init(void)
{
	pthread_once(&bytemap_once, bytemap_build);
	pthread_once(&ascii_once, ascii_init);
}
