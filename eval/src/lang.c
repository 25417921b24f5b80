/*
 * lang.c - the language of a text by its script, and refusal phrases
 * (ft/textmetrics.h), for the drift windows' language mix and refusal rate.
 *
 * Language by script: every code point of the text is counted in one of
 *   latin     A-Z a-z, U+00C0-U+024F (but U+00D7, U+00F7)
 *   han       U+3400-U+4DBF, U+4E00-U+9FFF, U+F900-U+FAFF, U+20000-U+2FA1F
 *   kana      U+3040-U+30FF, U+31F0-U+31FF
 *   hangul    U+1100-U+11FF, U+3130-U+318F, U+AC00-U+D7AF
 *   cyrillic  U+0400-U+04FF
 *   arabic    U+0600-U+06FF, U+0750-U+077F
 * Japanese writes kana among its Han, Chinese never does: any kana with
 * kana + han the largest count is "ja". Otherwise the largest count names
 * the language: latin "en", han "zh", hangul "ko", cyrillic "ru", arabic
 * "ar"; no letter at all, "other". "en" therefore means the Latin script
 * (French and German count as "en"): a statement about scripts, which is
 * what a tokenizer's cost and a model's training mix depend on most.
 * Bytes that are not valid UTF-8 are skipped.
 *
 * Refusals: an answer refuses when, folded as the facts matcher folds
 * (ft_text_fold: full-width forms, case, whitespace), it contains one of
 * the phrases of its language (the defaults below, or a monitor's own).
 */
#include "text_int.h"

#include "ft/textmetrics.h"

static const char *const codes[FT_LANG_COUNT] = { "en", "zh", "ja", "ko", "ru", "ar", "other" };

const char *ft_text_lang_code(enum ft_text_lang l)
{
	return (unsigned)l < FT_LANG_COUNT ? codes[l] : "other";
}

bool ft_text_lang_parse(const char *code, enum ft_text_lang *out)
{
	for (int i = 0; code && i < FT_LANG_COUNT; i++)
		if (strcmp(codes[i], code) == 0) {
			*out = (enum ft_text_lang)i;
			return true;
		}
	return false;
}

enum script { LATIN, HAN, KANA, HANGUL, CYRILLIC, ARABIC, NONE };

static enum script script_of(uint32_t c)
{
	static const struct {
		uint32_t lo, hi;
		enum script s;
	} ranges[] = {
		{ 'A', 'Z', LATIN },	  { 'a', 'z', LATIN },	      { 0xC0, 0xD6, LATIN },
		{ 0xD8, 0xF6, LATIN },	  { 0xF8, 0x24F, LATIN },     { 0x400, 0x4FF, CYRILLIC },
		{ 0x600, 0x6FF, ARABIC }, { 0x750, 0x77F, ARABIC },   { 0x1100, 0x11FF, HANGUL },
		{ 0x3040, 0x30FF, KANA }, { 0x3130, 0x318F, HANGUL }, { 0x31F0, 0x31FF, KANA },
		{ 0x3400, 0x4DBF, HAN },  { 0x4E00, 0x9FFF, HAN },    { 0xAC00, 0xD7AF, HANGUL },
		{ 0xF900, 0xFAFF, HAN },  { 0x20000, 0x2FA1F, HAN },
	};
	for (size_t i = 0; i < FT_ARRAY_LEN(ranges); i++)
		if (c >= ranges[i].lo && c <= ranges[i].hi)
			return ranges[i].s;
	return NONE;
}

/* The next code point of s[0..n) at *i (advanced), or -1 for a byte that
 * does not start valid UTF-8 (skipped). */
static long next_cp(const unsigned char *s, size_t n, size_t *i)
{
	unsigned char b = s[*i];
	int len = b < 0x80	       ? 1
		  : (b & 0xE0) == 0xC0 ? 2
		  : (b & 0xF0) == 0xE0 ? 3
		  : (b & 0xF8) == 0xF0 ? 4
				       : 0;
	if (!len || *i + (size_t)len > n) {
		(*i)++;
		return -1;
	}
	uint32_t c = len == 1 ? b : b & (0x7F >> len);
	for (int k = 1; k < len; k++) {
		if ((s[*i + (size_t)k] & 0xC0) != 0x80) {
			(*i)++;
			return -1;
		}
		c = c << 6 | (s[*i + (size_t)k] & 0x3F);
	}
	static const uint32_t min[5] = { 0, 0, 0x80, 0x800, 0x10000 };
	if (c < min[len] || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) {
		(*i)++;
		return -1;
	}
	*i += (size_t)len;
	return (long)c;
}

enum ft_text_lang ft_text_lang_detect(const char *text, size_t n)
{
	size_t count[NONE + 1] = { 0 };
	for (size_t i = 0; i < n;) {
		long c = next_cp((const unsigned char *)text, n, &i);
		if (c >= 0)
			count[script_of((uint32_t)c)]++;
	}
	if (count[KANA] && count[KANA] + count[HAN] >= count[LATIN] &&
	    count[KANA] + count[HAN] >= count[HANGUL] &&
	    count[KANA] + count[HAN] >= count[CYRILLIC] &&
	    count[KANA] + count[HAN] >= count[ARABIC])
		return FT_LANG_JA;
	static const enum ft_text_lang of[] = { [LATIN] = FT_LANG_EN,
						[HAN] = FT_LANG_ZH,
						[HANGUL] = FT_LANG_KO,
						[CYRILLIC] = FT_LANG_RU,
						[ARABIC] = FT_LANG_AR };
	static const enum script order[] = { LATIN, HAN, HANGUL, CYRILLIC, ARABIC };
	enum script best = NONE;
	for (size_t k = 0; k < FT_ARRAY_LEN(order); k++)
		if (count[order[k]] && (best == NONE || count[order[k]] > count[best]))
			best = order[k];
	return best == NONE ? FT_LANG_OTHER : of[best];
}

/* Defaults: the phrases chat models start a refusal with, written folded
 * (lower case, straight apostrophes as typed; the matcher folds the
 * answer the same way). */
static const char *const refusals_en[] = { "i'm sorry, but i can't",   "i’m sorry, but i can’t",
					   "i am sorry, but i cannot", "i can't help with",
					   "i can’t help with",	       "i cannot help with",
					   "i can't assist with",      "i can’t assist with",
					   "i cannot assist with",     "i'm not able to help",
					   "i am unable to",	       "as an ai language model",
					   "i won't be able to",       NULL };
static const char *const refusals_zh[] = {
	"抱歉，我无法", "抱歉，我不能", "我无法提供", "我不能帮", "作为一个人工智能", "作为ai", NULL
};
static const char *const refusals_ja[] = { "申し訳ありませんが", "お答えできません",
					   "お手伝いできません", NULL };
static const char *const refusals_none[] = { NULL };

const char *const *ft_text_refusal_defaults(enum ft_text_lang l)
{
	switch (l) {
	case FT_LANG_EN: return refusals_en;
	case FT_LANG_ZH: return refusals_zh;
	case FT_LANG_JA: return refusals_ja;
	default: return refusals_none;
	}
}

enum ft_rc ft_text_refusal_match(const char *text, const char *const *phrases, size_t n, bool *hit,
				 struct ft_err *err)
{
	struct ft_buf a = FT_BUF_INIT(FT_TEXT_MAX_BYTES + 64), p = FT_BUF_INIT(FT_TEXT_MAX_BYTES);
	*hit = false;
	enum ft_rc rc = ft_text_fold(text, &a, err);
	for (size_t i = 0; !rc && !*hit && i < n && phrases[i]; i++) {
		ft_buf_reset(&p);
		rc = ft_text_fold(phrases[i], &p, err);
		*hit = !rc && p.len && strstr(ft_buf_str(&a), ft_buf_str(&p)) != NULL;
	}
	ft_buf_release(&a);
	ft_buf_release(&p);
	return rc;
}
