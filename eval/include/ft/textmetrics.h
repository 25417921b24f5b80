/*
 * ft/textmetrics.h - text metrics for offline evaluation jobs and the
 * quickstart: ROUGE-L as rouge-score computes it, corpus BLEU as sacrebleu
 * computes it, and the "contains every required fact" matcher.
 *
 * Inputs are NUL-terminated UTF-8; invalid UTF-8 (overlong forms,
 * surrogates, past U+10FFFF) is FT_EINVAL naming the input and the byte
 * offset. A text is at most FT_TEXT_MAX_BYTES; ROUGE-L, which is quadratic,
 * takes at most FT_TEXT_MAX_TOKENS tokens per side (FT_ELIMIT past that).
 * Nothing returned points into the inputs; token lists come back in a
 * caller's struct ft_buf (tokens joined by one space).
 * docs/evaluation.md gives the rules and their peers in detail.
 */
#ifndef FT_TEXTMETRICS_H
#define FT_TEXTMETRICS_H

#include "ft/buf.h"
#include "ft/err.h"

#define FT_TEXT_MAX_BYTES (4 << 20)
#define FT_TEXT_MAX_TOKENS 20000

/* ROUGE-L tokenizers.
 * DEFAULT  rouge-score's tokenize(): Python's str.lower(), then the maximal
 *          runs of [a-z0-9] are the tokens; everything else separates them.
 *          Every non-ASCII character is dropped (rouge-score's behaviour:
 *          Chinese text has no tokens at all), except the two whose
 *          lowercase is ASCII: U+212A KELVIN SIGN is "k" and U+0130 is "i"
 *          followed by a separator (its lowercase is i + U+0307).
 * CJK      DEFAULT, after folding fullwidth ASCII (U+FF01-U+FF5E) to ASCII,
 *          and each Han, kana or Hangul character (U+3040-U+30FF,
 *          U+31F0-U+31FF, U+3400-U+4DBF, U+4E00-U+9FFF, U+AC00-U+D7AF,
 *          U+F900-U+FAFF, U+20000-U+2FA1F) is a token of its own: ROUGE-L
 *          over characters for Chinese and Japanese, over words for the
 *          ASCII parts of mixed text. Checked against rouge-score given a
 *          tokenizer object with the same rule. */
enum ft_rouge_tokenizer {
	FT_ROUGE_TOK_DEFAULT,
	FT_ROUGE_TOK_CJK,
};

struct ft_rouge {
	double precision, recall, fmeasure;
};

/* rouge_scorer.RougeScorer(["rougeL"]).score(target, prediction): LCS
 * length l over the token lists; precision l / |prediction|, recall
 * l / |target|, F = 2PR / (P + R); all 0 when either side has no tokens. */
enum ft_rc ft_text_rouge_l(const char *target, const char *prediction, enum ft_rouge_tokenizer tok,
			   struct ft_rouge *out, struct ft_err *err);
enum ft_rc ft_text_rouge_tokenize(const char *text, enum ft_rouge_tokenizer tok, struct ft_buf *out,
				  struct ft_err *err);

/* BLEU tokenizers, sacrebleu's:
 * 13A  mteval-v13a: drop "<skipped>" and "-\n", "\n" -> " ", the entities
 *      &quot; &amp; &lt; &gt; (in that order), then the regexp rules of
 *      tokenizer_re.py on " line ", then split on whitespace.
 * ZH   strip, put spaces around each character sacrebleu's tokenizer_zh
 *      counts as Chinese (its table as Python reads it: the two five-digit
 *      entries '\u20000' and '\u2f800' are four-digit escapes followed by a
 *      digit, so it covers U+2001-U+2A6D, punctuation and symbols included,
 *      and no ideograph past U+FFFF), then the same regexp rules. */
enum ft_bleu_tokenizer {
	FT_BLEU_TOK_13A,
	FT_BLEU_TOK_ZH,
};

#define FT_BLEU_MAX_ORDER 4

/* sacrebleu.BLEU(tokenize=...).corpus_score(hyps, [refs...]) with the
 * defaults: case-sensitive, "exp" smoothing, max order 4, no effective
 * order. score is 0..100. */
struct ft_bleu {
	double score, bp;
	double precisions[FT_BLEU_MAX_ORDER];
	long counts[FT_BLEU_MAX_ORDER], totals[FT_BLEU_MAX_ORDER];
	long sys_len, ref_len;
};

/* hyps[0..n-1]; refs[r * n + i] is reference r (0..n_refs-1) of segment i,
 * NULL where a segment has fewer references; each segment needs one. */
enum ft_rc ft_text_bleu_corpus(const char *const *hyps, size_t n, const char *const *refs,
			       size_t n_refs, enum ft_bleu_tokenizer tok, struct ft_bleu *out,
			       struct ft_err *err);
enum ft_rc ft_text_bleu_tokenize(const char *text, enum ft_bleu_tokenizer tok, struct ft_buf *out,
				 struct ft_err *err);

/* Required facts. A fact is a list of accepted spellings ("30 days",
 * "thirty days", "30天"); the answer contains it when it contains any
 * spelling after both are folded:
 *   - fullwidth forms to ASCII (U+FF01-U+FF5E -> U+0021-U+007E, U+3000 ->
 *     space) and U+FFE0-U+FFE6 to their narrow signs (yen, pound, ...);
 *   - case: A-Z, Latin-1 (U+00C0-U+00DE but U+00D7), Greek (U+0391-U+03A9)
 *     and Cyrillic (U+0400-U+042F) capitals to small letters;
 *   - every run of whitespace to one space, none at either end.
 * A spelling that begins (ends) with an ASCII letter or digit must not be
 * preceded (followed) by one: "30 days" is not found in "130 days", and
 * "¥99" not in "¥999"; other characters (Chinese) match anywhere. */
struct ft_text_fact {
	const char *const *spellings;
	size_t n;
};

/* found[i] (when found is not NULL) says whether fact i was found; *n_found
 * counts them. The answer contains every fact when *n_found == n_facts. */
enum ft_rc ft_text_facts_match(const char *answer, const struct ft_text_fact *facts, size_t n_facts,
			       bool *found, size_t *n_found, struct ft_err *err);
/* The folding above, for display and tests. */
enum ft_rc ft_text_fold(const char *text, struct ft_buf *out, struct ft_err *err);

/* The language of a text by its script (lang.c has the table): the script
 * most of its letters are in, "ja" for Han with any kana; "en" stands for
 * the Latin script, "other" for no letters. Invalid UTF-8 is skipped. */
enum ft_text_lang {
	FT_LANG_EN = 0,
	FT_LANG_ZH,
	FT_LANG_JA,
	FT_LANG_KO,
	FT_LANG_RU,
	FT_LANG_AR,
	FT_LANG_OTHER,
	FT_LANG_COUNT
};
const char *ft_text_lang_code(enum ft_text_lang l); /* "en", "zh", ... */
bool ft_text_lang_parse(const char *code, enum ft_text_lang *out);
enum ft_text_lang ft_text_lang_detect(const char *text, size_t n);

/* Refusals: does the answer, folded as above, contain one of the phrases
 * (folded)? phrases[0..n), a NULL entry ends it early. The defaults per
 * language are a NULL-terminated list (empty for languages without). */
const char *const *ft_text_refusal_defaults(enum ft_text_lang l);
enum ft_rc ft_text_refusal_match(const char *text, const char *const *phrases, size_t n, bool *hit,
				 struct ft_err *err);

#endif
