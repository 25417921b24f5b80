/*
 * test_lang.c - the language of a text by its script and the refusal
 * matcher (ft/textmetrics.h, eval/src/lang.c), by hand.
 */
#include "ft/textmetrics.h"
#include "ftest.h"

static enum ft_text_lang lang(const char *s)
{
	return ft_text_lang_detect(s, strlen(s));
}

FT_TEST(scripts)
{
	FT_CHECK(lang("Where is my order #MP123?") == FT_LANG_EN);
	FT_CHECK(lang("Où est ma commande ?") == FT_LANG_EN); /* the Latin script */
	FT_CHECK(lang("我的订单在哪里？") == FT_LANG_ZH);
	FT_CHECK(lang("注文はどこですか") == FT_LANG_JA); /* kana among Han */
	FT_CHECK(lang("東京の天気") == FT_LANG_JA); /* one kana is enough */
	FT_CHECK(lang("주문이 어디에 있나요?") == FT_LANG_KO);
	FT_CHECK(lang("Где мой заказ?") == FT_LANG_RU);
	FT_CHECK(lang("أين طلبي؟") == FT_LANG_AR);
	FT_CHECK(lang("12345 !!! ???") == FT_LANG_OTHER);
	FT_CHECK(lang("") == FT_LANG_OTHER);
	/* mixed: the larger count wins; invalid bytes are skipped */
	FT_CHECK(lang("订单 order number 是多少") == FT_LANG_EN);
	FT_CHECK(lang("退货 ok") == FT_LANG_EN);
	FT_CHECK(lang("退货退款 ok") == FT_LANG_ZH);
	FT_CHECK(ft_text_lang_detect("ab\xff\xfe\xc0\xaf", 6) == FT_LANG_EN);
	enum ft_text_lang l;
	FT_CHECK(ft_text_lang_parse("ja", &l) && l == FT_LANG_JA);
	FT_CHECK(!ft_text_lang_parse("jp", &l));
	FT_CHECK_STR(ft_text_lang_code(FT_LANG_OTHER), "other");
}

FT_TEST(refusals)
{
	struct ft_err err;
	bool hit;
	const char *const *en = ft_text_refusal_defaults(FT_LANG_EN);
	ft_err_clear(&err);
	FT_CHECK(ft_text_refusal_match("I'M SORRY,  but I can't share that.", en, 100, &hit,
				       &err) == FT_OK);
	FT_CHECK(hit);
	FT_CHECK(ft_text_refusal_match("I’m sorry, but I can’t do that", en, 100, &hit, &err) ==
		 FT_OK);
	FT_CHECK(hit);
	FT_CHECK(ft_text_refusal_match("Sorry for the delay! Your refund is on its way.", en, 100,
				       &hit, &err) == FT_OK);
	FT_CHECK(!hit);
	const char *const *zh = ft_text_refusal_defaults(FT_LANG_ZH);
	FT_CHECK(ft_text_refusal_match("抱歉，我无法提供这个信息。", zh, 100, &hit, &err) == FT_OK);
	FT_CHECK(hit);
	FT_CHECK(ft_text_refusal_defaults(FT_LANG_KO)[0] == NULL);
	const char *own[] = { "NOT ALLOWED" };
	FT_CHECK(ft_text_refusal_match("that is not   allowed here", own, 1, &hit, &err) == FT_OK);
	FT_CHECK(hit);
	FT_CHECK(ft_text_refusal_match("bad \xff utf-8", own, 1, &hit, &err) == FT_EINVAL);
}

FT_TEST_MAIN()
