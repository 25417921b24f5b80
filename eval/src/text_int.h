/*
 * text_int.h - what the text metrics share: code-point strings, the UTF-8
 * codec, Python's whitespace, and a token interner.
 */
#ifndef FT_TEXT_INT_H
#define FT_TEXT_INT_H

#include "ft/textmetrics.h"

/* A growable array of code points (capped at FT_TEXT_MAX_BYTES * 4 entries). */
struct cps {
	uint32_t *v;
	size_t len, cap;
};

void cps_release(struct cps *c);
enum ft_rc cps_push(struct cps *c, uint32_t cp);
enum ft_rc cps_append(struct cps *c, const uint32_t *v, size_t n);

/* Decode NUL-terminated UTF-8 into out (appended). `what` names the input
 * in errors ("hypothesis 3"). */
enum ft_rc ft_text_decode(const char *s, const char *what, struct cps *out, struct ft_err *err);
/* Append the UTF-8 encoding of v[0..n-1] to b. */
enum ft_rc ft_text_encode(const uint32_t *v, size_t n, struct ft_buf *b);

/* Python's str.isspace() (the set str.split() and str.strip() use). */
bool ft_text_is_space(uint32_t cp);

/* Tokens as (start, length) spans into a code-point string. */
struct span {
	size_t at, len;
};

/* Split on Python whitespace (str.split()); *spans is malloc'd. */
enum ft_rc ft_text_split(const struct cps *c, struct span **spans, size_t *n, struct ft_err *err);

/* Token ids: equal code-point sequences get equal ids (0, 1, 2, ...). */
struct interner {
	struct entry {
		size_t at, len; /* in pool */
		uint64_t hash;
		uint32_t id;
	} * tab;
	size_t cap, count;
	struct cps pool;
};

void interner_release(struct interner *in);
/* id of v[0..n-1], adding it when new; -1 when out of memory */
long interner_id(struct interner *in, const uint32_t *v, size_t n);

/* Tokenize into spans over *out (tokens separated by one space in out).
 * Used by both the metric and the *_tokenize API. */
enum ft_rc ft_text_bleu_tokens(const char *text, const char *what, enum ft_bleu_tokenizer tok,
			       struct cps *out, struct ft_err *err);
enum ft_rc ft_text_rouge_tokens(const char *text, const char *what, enum ft_rouge_tokenizer tok,
				struct cps *out, struct ft_err *err);

#endif
