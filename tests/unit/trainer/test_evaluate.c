/*
 * test_evaluate.c - the evaluation file's rows and options (ft/evaluate.h):
 * what a row must be (a conversation ending with the reference, a prompt
 * before it, facts as strings or lists of spellings) and every refusal with
 * its line and field; the options table's defaults, values and errors.
 * The metrics themselves are checked end to end against rouge-score,
 * sacrebleu and PyTorch (tests/system/test_evals.py).
 */
#include "ft/evaluate.h"
#include "ftest.h"

static enum ft_rc parse(const char *line, long lineno, struct ft_eval_row *r, struct ft_err *err)
{
	enum ft_data_format fmt = FT_FMT_UNKNOWN;
	ft_err_clear(err);
	return ft_eval_row_parse(line, strlen(line), lineno, &fmt, r, err);
}

#define CONV                                                                                       \
	"\"messages\":[{\"role\":\"user\",\"content\":\"q\"},{\"role\":\"assistant\",\"content\":" \
	"\"ref\"}]"

FT_TEST(rows_with_and_without_facts)
{
	struct ft_eval_row r;
	struct ft_err err;
	ft_eval_row_init(&r);
	FT_CHECK(parse("{" CONV "}", 1, &r, &err) == FT_OK);
	FT_CHECK(r.n_prompt == 1 && !r.has_facts && r.n_facts == 0);
	FT_CHECK(parse("{" CONV ",\"required_facts\":[[\"30 days\",\"30天\"],\"¥99\"]}", 2, &r,
		       &err) == FT_OK);
	FT_CHECK(r.has_facts && r.n_facts == 2);
	FT_CHECK(r.facts[0].n == 2 && r.facts[1].n == 1);
	FT_CHECK_STR(r.facts[0].spellings[1], "30天");
	FT_CHECK_STR(r.facts[1].spellings[0], "¥99");
	FT_CHECK(parse("{" CONV ",\"required_facts\":[]}", 3, &r, &err) == FT_OK);
	FT_CHECK(r.has_facts && r.n_facts == 0);
	FT_CHECK(parse("{\"conversations\":[{\"from\":\"human\",\"value\":\"q\"},{\"from\":\"gpt\","
		       "\"value\":\"a\"}]}",
		       4, &r, &err) == FT_OK);
	FT_CHECK(r.n_prompt == 1);
	ft_eval_row_release(&r);
}

FT_TEST(refusals_name_the_line_and_the_field)
{
	static const struct {
		const char *line, *code, *param, *msg;
	} cases[] = {
		{ "{\"prompt\":\"q\",\"completion\":\"a\"}", "wrong_format", "",
		  "line 7: an evaluation file holds conversations (\"messages\" or "
		  "\"conversations\"), not prompt_completion rows" },
		{ "{\"messages\":[{\"role\":\"user\",\"content\":\"q\"},{\"role\":\"assistant\","
		  "\"content\":\"a\"},{\"role\":\"user\",\"content\":\"more?\"}]}",
		  "no_reference", "messages",
		  "line 7: the last message of \"messages\" must be the assistant's reference "
		  "answer (got user)" },
		{ "{\"messages\":[{\"role\":\"system\",\"content\":\"s\"},{\"role\":\"assistant\","
		  "\"content\":\"a\"}]}",
		  NULL, NULL, NULL }, /* a system prompt alone asks nothing: refused below */
		{ "{" CONV ",\"required_facts\":\"30 days\"}", "invalid_type", "required_facts",
		  "line 7: \"required_facts\" must be a list (got string)" },
		{ "{" CONV ",\"required_facts\":[3]}", "invalid_type", "required_facts",
		  "line 7: \"required_facts\"[0] must be a string or a list of spellings (got "
		  "integer)" },
		{ "{" CONV ",\"required_facts\":[[]]}", "invalid_value", "required_facts",
		  "line 7: \"required_facts\"[0] must hold 1 to 16 spellings (got 0)" },
		{ "{" CONV ",\"required_facts\":[[\"a\",\"  \"]]}", "invalid_value",
		  "required_facts", "line 7: \"required_facts\"[0][1] is empty" },
		{ "{" CONV ",\"required_facts\":[\"a\\u0000b\"]}", "invalid_value",
		  "required_facts", "line 7: \"required_facts\"[0] holds a NUL character" },
		{ "{" CONV ",\"required_facts\":[[\"x\",false]]}", "invalid_type", "required_facts",
		  "line 7: \"required_facts\"[0][1] must be a string (got boolean)" },
		{ "{\"messages\":[{\"role\":\"user\",\"content\":\"q\"},{\"role\":\"assistant\","
		  "\"content\":\"a\\u0000\"}]}",
		  "invalid_value", "messages",
		  "line 7: the reference answer holds a NUL character" },
	};
	struct ft_eval_row r;
	struct ft_err err;
	ft_eval_row_init(&r);
	for (size_t i = 0; i < FT_ARRAY_LEN(cases); i++) {
		FT_CHECK(parse(cases[i].line, 7, &r, &err) == FT_EINVAL);
		FT_CHECK(err.line == 7);
		if (!cases[i].code) {
			FT_CHECK_STR(err.code, "no_prompt");
			continue;
		}
		FT_CHECK_STR(err.code, cases[i].code);
		FT_CHECK_STR(err.param, cases[i].param);
		FT_CHECK_STR(err.msg, cases[i].msg);
	}
	/* more facts than the cap */
	struct ft_buf b = FT_BUF_INIT(1 << 16);
	FT_CHECK(ft_buf_addstr(&b, "{" CONV ",\"required_facts\":[") == FT_OK);
	for (int i = 0; i <= FT_EVAL_MAX_FACTS; i++)
		FT_CHECK(ft_buf_addf(&b, "%s\"f%d\"", i ? "," : "", i) == FT_OK);
	FT_CHECK(ft_buf_addstr(&b, "]}") == FT_OK);
	FT_CHECK(parse(ft_buf_str(&b), 2, &r, &err) == FT_EINVAL);
	FT_CHECK_STR(err.msg, "line 2: \"required_facts\" holds 65 facts; at most 64");
	ft_buf_release(&b);
	/* the dataset's own checks come first, with their codes */
	FT_CHECK(parse("{\"messages\":[]}", 3, &r, &err) == FT_EINVAL);
	FT_CHECK(err.line == 3 && err.code[0]);
	ft_eval_row_release(&r);
}

FT_TEST(options_defaults_values_and_errors)
{
	struct ft_eval_opts o;
	struct ft_err err;
	ft_err_clear(&err);
	FT_CHECK(ft_eval_opts_parse(NULL, &o, &err) == FT_OK);
	FT_CHECK(o.max_new_tokens == 256 && o.max_rows == 1000);
	FT_CHECK(o.rouge_tok == FT_ROUGE_TOK_CJK && o.bleu_tok == FT_BLEU_TOK_ZH);
	json_t *v = json_pack("{s:i, s:s, s:s, s:n}", "max_new_tokens", 12, "rouge_tokenizer",
			      "default", "bleu_tokenizer", "13a", "max_rows");
	FT_CHECK(ft_eval_opts_parse(v, &o, &err) == FT_OK);
	FT_CHECK(o.max_new_tokens == 12 && o.max_rows == 1000);
	FT_CHECK(o.rouge_tok == FT_ROUGE_TOK_DEFAULT && o.bleu_tok == FT_BLEU_TOK_13A);
	json_t *j = ft_eval_opts_json(&o);
	char *s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
	FT_CHECK_STR(s, "{\"bleu_tokenizer\":\"13a\",\"max_new_tokens\":12,\"max_rows\":1000,"
			"\"rouge_tokenizer\":\"default\"}");
	free(s);
	json_decref(j);
	json_decref(v);
	static const struct {
		const char *json, *param, *msg;
	} bad[] = {
		{ "{\"max_new_tokens\":0}", "options.max_new_tokens",
		  "\"options.max_new_tokens\" must be an integer from 1 to 4096" },
		{ "{\"max_rows\":\"5\"}", "options.max_rows",
		  "\"options.max_rows\" must be an integer from 1 to 10000" },
		{ "{\"bleu_tokenizer\":\"intl\"}", "options.bleu_tokenizer",
		  "\"options.bleu_tokenizer\" must be \"13a\" or \"zh\"" },
		{ "{\"temperature\":1}", "options.temperature",
		  "unknown option \"temperature\" (options: max_new_tokens, rouge_tokenizer, "
		  "bleu_tokenizer, max_rows)" },
		{ "[1]", "options", "\"options\" must be an object (got list)" },
	};
	for (size_t i = 0; i < FT_ARRAY_LEN(bad); i++) {
		json_t *x = json_loads(bad[i].json, 0, NULL);
		ft_err_clear(&err);
		FT_CHECK(ft_eval_opts_parse(x, &o, &err) == FT_EINVAL);
		FT_CHECK_STR(err.param, bad[i].param);
		FT_CHECK_STR(err.msg, bad[i].msg);
		json_decref(x);
	}
}

FT_TEST_MAIN()
