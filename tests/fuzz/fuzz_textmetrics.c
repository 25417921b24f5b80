/*
 * fuzz_textmetrics.c - the text metrics on arbitrary bytes (model answers,
 * references and fact spellings come from users and models): the input is
 * split at its first two NUL bytes into target, prediction and a fact
 * spelling, and each goes through ROUGE-L and BLEU with every tokenizer
 * and the facts matcher. Nothing may crash; a failure always says why; on
 * success the scores are in range.
 */
#include "ft/textmetrics.h"

#include <math.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 1 << 16)
		return 0;
	char *buf = ft_xmalloc(size + 3);
	memcpy(buf, data, size);
	buf[size] = buf[size + 1] = buf[size + 2] = 0;
	const char *parts[3];
	size_t at = 0;
	for (int i = 0; i < 3; i++) { /* at most three NUL-separated strings */
		parts[i] = buf + at;
		at += strlen(buf + at) + 1;
		if (at > size + 2)
			at = size + 2;
	}
	struct ft_err err;
	for (int t = 0; t < 2; t++) {
		struct ft_rouge r;
		ft_err_clear(&err);
		if (ft_text_rouge_l(parts[0], parts[1], (enum ft_rouge_tokenizer)t, &r, &err) ==
		    FT_OK)
			FT_ASSERT(r.fmeasure >= 0 && r.fmeasure <= 1 && r.precision <= 1 &&
				  r.recall <= 1);
		else
			FT_ASSERT(err.msg[0]);
		struct ft_bleu b;
		const char *refs[2] = { parts[0], parts[2] };
		ft_err_clear(&err);
		if (ft_text_bleu_corpus(&parts[1], 1, refs, 2, (enum ft_bleu_tokenizer)t, &b,
					&err) == FT_OK)
			FT_ASSERT(b.score >= 0 && b.score <= 100 + 1e-9 && b.bp >= 0 && b.bp <= 1);
		else
			FT_ASSERT(err.msg[0]);
	}
	const char *sp[] = { parts[2], parts[0] };
	struct ft_text_fact f = { sp, 2 };
	bool found;
	size_t n = 0;
	ft_err_clear(&err);
	if (ft_text_facts_match(parts[1], &f, 1, &found, &n, &err) == FT_OK)
		FT_ASSERT(n == (size_t)found);
	else
		FT_ASSERT(err.msg[0]);
	free(buf);
	return 0;
}
