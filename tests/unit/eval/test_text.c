/*
 * test_text.c - ROUGE-L, BLEU and the facts matcher on sentences worked by
 * hand: the tokenizers' rules one by one, an LCS, BLEU's smoothing and
 * brevity penalty, folding and word boundaries, and the UTF-8 errors.
 */
#include "ft/textmetrics.h"
#include "ftest.h"

#include <math.h>

#define NEAR(a, b, tol) (fabs((a) - (b)) <= (tol))

static const char *rouge_toks(const char *s, enum ft_rouge_tokenizer t, struct ft_buf *b)
{
	ft_buf_reset(b);
	return ft_text_rouge_tokenize(s, t, b, NULL) == FT_OK ? ft_buf_str(b) : "(error)";
}

static const char *bleu_toks(const char *s, enum ft_bleu_tokenizer t, struct ft_buf *b)
{
	ft_buf_reset(b);
	return ft_text_bleu_tokenize(s, t, b, NULL) == FT_OK ? ft_buf_str(b) : "(error)";
}

FT_TEST(rouge_tokenizers)
{
	struct ft_buf b = FT_BUF_INIT(1 << 20);
	FT_CHECK_STR(rouge_toks("Hello, WORLD-42!", FT_ROUGE_TOK_DEFAULT, &b), "hello world 42");
	/* KELVIN SIGN lowers to k; U+0130 to i + a combining dot (a separator) */
	FT_CHECK_STR(rouge_toks("\xe2\x84\xaa"
				"elvin \xc4\xb0stanbul",
				FT_ROUGE_TOK_DEFAULT, &b),
		     "kelvin i stanbul");
	FT_CHECK_STR(rouge_toks("您好 caf\xc3\xa9", FT_ROUGE_TOK_DEFAULT, &b), "caf");
	FT_CHECK_STR(rouge_toks("您好ABC１２ caf\xc3\xa9", FT_ROUGE_TOK_CJK, &b),
		     "您 好 abc12 caf");
	FT_CHECK_STR(rouge_toks("ありがとう감사", FT_ROUGE_TOK_CJK, &b), "あ り が と う 감 사");
	ft_buf_release(&b);
}

FT_TEST(rouge_l_by_hand)
{
	struct ft_rouge r;
	/* LCS of 6 and 5 tokens is 5: P = 1, R = 5/6, F = 10/11 */
	FT_CHECK(ft_text_rouge_l("The cat sat on the mat.", "the cat on the mat",
				 FT_ROUGE_TOK_DEFAULT, &r, NULL) == FT_OK);
	FT_CHECK(r.precision == 1 && NEAR(r.recall, 5.0 / 6, 1e-15) &&
		 NEAR(r.fmeasure, 10.0 / 11, 1e-15));
	FT_CHECK(ft_text_rouge_l("a b c", "", FT_ROUGE_TOK_DEFAULT, &r, NULL) == FT_OK);
	FT_CHECK(r.precision == 0 && r.recall == 0 && r.fmeasure == 0);
	/* Chinese: no tokens by default, characters with CJK: LCS 3 of 4 and 5 */
	FT_CHECK(ft_text_rouge_l("退货申请", "申请退货", FT_ROUGE_TOK_DEFAULT, &r, NULL) == FT_OK);
	FT_CHECK(r.fmeasure == 0);
	FT_CHECK(ft_text_rouge_l("三十天内退货", "三十天退货", FT_ROUGE_TOK_CJK, &r, NULL) ==
		 FT_OK);
	FT_CHECK(r.precision == 1 && NEAR(r.recall, 5.0 / 6, 1e-15));
}

FT_TEST(bleu_13a_rules)
{
	struct ft_buf b = FT_BUF_INIT(1 << 20);
	FT_CHECK_STR(bleu_toks("Hello, world!", FT_BLEU_TOK_13A, &b), "Hello , world !");
	/* rule 4 splits a dash after a digit; rules 2-3 keep 3.5 and 1,299.00 */
	FT_CHECK_STR(bleu_toks("3.5-4.0 kg", FT_BLEU_TOK_13A, &b), "3.5 - 4.0 kg");
	FT_CHECK_STR(bleu_toks("$1,299.00 (tax)", FT_BLEU_TOK_13A, &b), "$ 1,299.00 ( tax )");
	FT_CHECK_STR(bleu_toks("end. a,b", FT_BLEU_TOK_13A, &b), "end . a , b");
	/* <skipped>, "-\n", "\n", then the entities in order (so "&amp;lt;" ends
	 * as "<"); the apostrophe is kept */
	FT_CHECK_STR(bleu_toks("it's &amp;lt; x<skipped> co-\nop\nnow  ", FT_BLEU_TOK_13A, &b),
		     "it's < x coop now");
	/* Python's whitespace: U+3000 and U+00A0 split tokens */
	FT_CHECK_STR(bleu_toks("a\xe3\x80\x80"
			       "b\xc2\xa0"
			       "c",
			       FT_BLEU_TOK_13A, &b),
		     "a b c");
	ft_buf_release(&b);
}

FT_TEST(bleu_zh_rules)
{
	struct ft_buf b = FT_BUF_INIT(1 << 20);
	FT_CHECK_STR(bleu_toks("你好，世界", FT_BLEU_TOK_ZH, &b), "你 好 ， 世 界");
	/* sacrebleu's table as Python reads it: U+2014 counts, U+20000 does not */
	FT_CHECK_STR(bleu_toks("a\xe2\x80\x94"
			       "b \xf0\xa0\x80\x80"
			       "c",
			       FT_BLEU_TOK_ZH, &b),
		     "a \xe2\x80\x94 b \xf0\xa0\x80\x80"
		     "c");
	FT_CHECK_STR(bleu_toks("满¥99包邮。", FT_BLEU_TOK_ZH, &b), "满 ¥99 包 邮 。");
	ft_buf_release(&b);
}

FT_TEST(bleu_by_hand)
{
	struct ft_bleu s;
	const char *h1[] = { "the cat sat on the mat" }, *r1[] = { "the cat sat on the mat" };
	FT_CHECK(ft_text_bleu_corpus(h1, 1, r1, 1, FT_BLEU_TOK_13A, &s, NULL) == FT_OK);
	FT_CHECK(NEAR(s.score, 100, 1e-12) && s.bp == 1 && s.sys_len == 6);
	/* "a b c d" vs "a b x d": 3/4, 1/3, then exp smoothing 100/(2*2), 100/(4*1) */
	const char *h2[] = { "a b c d" }, *r2[] = { "a b x d" };
	FT_CHECK(ft_text_bleu_corpus(h2, 1, r2, 1, FT_BLEU_TOK_13A, &s, NULL) == FT_OK);
	FT_CHECK(s.counts[0] == 3 && s.counts[1] == 1 && s.counts[2] == 0 && s.totals[3] == 1);
	FT_CHECK(NEAR(s.precisions[2], 25, 1e-12) && NEAR(s.precisions[3], 25, 1e-12));
	FT_CHECK(NEAR(s.score, 25 * sqrt(2.0), 1e-12));
	/* too short: bp = exp(1 - 6/2); no 3-grams: precision 0, score 0 */
	const char *h3[] = { "the cat" };
	FT_CHECK(ft_text_bleu_corpus(h3, 1, r1, 1, FT_BLEU_TOK_13A, &s, NULL) == FT_OK);
	FT_CHECK(NEAR(s.bp, exp(-2.0), 1e-15) && s.score == 0);
	/* two references: counts clip at the larger count, the closer length wins */
	const char *h4[] = { "b b b" }, *r4[] = { "b a a a a", "b b" };
	FT_CHECK(ft_text_bleu_corpus(h4, 1, r4, 2, FT_BLEU_TOK_13A, &s, NULL) == FT_OK);
	FT_CHECK(s.counts[0] == 2 && s.counts[1] == 1 && s.ref_len == 2);
	struct ft_err err = { 0 };
	const char *none[] = { NULL };
	FT_CHECK(ft_text_bleu_corpus(h1, 1, none, 1, FT_BLEU_TOK_13A, &s, &err) == FT_EINVAL);
	FT_CHECK_STR(err.msg, "segment 0 has no reference");
}

static bool has(const char *answer, const char *spelling)
{
	const char *sp[] = { spelling };
	struct ft_text_fact f = { sp, 1 };
	size_t n = 0;
	return ft_text_facts_match(answer, &f, 1, NULL, &n, NULL) == FT_OK && n == 1;
}

FT_TEST(facts_fold_and_boundaries)
{
	FT_CHECK(has("Refunds within 30 days.", "30 days"));
	FT_CHECK(!has("Refunds within 130 days.", "30 days"));
	FT_CHECK(has("Refunds within ３０　Days.", "30 DAYS")); /* fullwidth digits and space */
	FT_CHECK(!has("It costs ¥999.", "¥99"));
	FT_CHECK(has("It costs ￥99.", "¥99"));
	FT_CHECK(has("满99包邮", "99")); /* a Chinese neighbour is no word */
	FT_CHECK(has("签收后30天内", "30天"));
	FT_CHECK(has("ΑΘΗΝΑ and ÉTÉ, МОСКВА", "αθηνα"));
	FT_CHECK(has("ΑΘΗΝΑ and ÉTÉ, МОСКВА", "été"));
	FT_CHECK(has("ΑΘΗΝΑ and ÉTÉ, МОСКВА", "москва"));
	FT_CHECK(has("spread \t\n out", "spread out"));
	const char *a[] = { "thirty days", "30 days" }, *b[] = { "tags" }, *c[] = { "receipt" };
	struct ft_text_fact facts[] = { { a, 2 }, { b, 1 }, { c, 1 } };
	bool found[3];
	size_t n;
	FT_CHECK(ft_text_facts_match("Return with tags within 30 days.", facts, 3, found, &n,
				     NULL) == FT_OK);
	FT_CHECK(found[0] && found[1] && !found[2] && n == 2);
	struct ft_buf fb = FT_BUF_INIT(1024);
	FT_CHECK(ft_text_fold("  Ａｂ\xe3\x80\x80 C  ", &fb, NULL) == FT_OK);
	FT_CHECK_STR(ft_buf_str(&fb), "ab c");
	ft_buf_release(&fb);
}

FT_TEST(invalid_utf8_is_named)
{
	struct ft_err err = { 0 };
	struct ft_rouge r;
	FT_CHECK(ft_text_rouge_l("abc\xff", "abc", FT_ROUGE_TOK_DEFAULT, &r, &err) == FT_EINVAL);
	FT_CHECK_STR(err.msg, "the target is not valid UTF-8 (byte 3)");
	ft_err_clear(&err);
	const char *h[] = { "\xc0\xaf" }, *ref[] = { "x" }; /* overlong "/" */
	struct ft_bleu s;
	FT_CHECK(ft_text_bleu_corpus(h, 1, ref, 1, FT_BLEU_TOK_13A, &s, &err) == FT_EINVAL);
	FT_CHECK_STR(err.msg, "hypothesis 0 is not valid UTF-8 (byte 0)");
	ft_err_clear(&err);
	const char *sp[] = { "ok\xed\xa0\x80" }; /* a surrogate */
	struct ft_text_fact f = { sp, 1 };
	size_t n;
	FT_CHECK(ft_text_facts_match("ok", &f, 1, NULL, &n, &err) == FT_EINVAL);
	FT_CHECK_STR(err.msg, "fact 0 spelling 0 is not valid UTF-8 (byte 2)");
	ft_err_clear(&err);
	const char *blank[] = { " \t" };
	f.spellings = blank;
	FT_CHECK(ft_text_facts_match("ok", &f, 1, NULL, &n, &err) == FT_EINVAL);
	FT_CHECK_STR(err.msg, "fact 0 spelling 0 is empty");
}

FT_TEST(rouge_token_limit)
{
	size_t n = FT_TEXT_MAX_TOKENS + 1;
	char *s = malloc(2 * n + 1);
	FT_CHECK(s != NULL);
	for (size_t i = 0; i < n; i++) {
		s[2 * i] = 'a';
		s[2 * i + 1] = ' ';
	}
	s[2 * n] = 0;
	struct ft_err err = { 0 };
	struct ft_rouge r;
	enum ft_rc rc = ft_text_rouge_l(s, "a", FT_ROUGE_TOK_DEFAULT, &r, &err);
	free(s);
	FT_CHECK(rc == FT_ELIMIT);
	FT_CHECK_STR(err.msg, "the target has 20001 tokens (ROUGE-L takes at most 20000)");
}

FT_TEST_MAIN()
