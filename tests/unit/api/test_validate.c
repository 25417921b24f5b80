/*
 * test_validate.c - ft-api's adapter over ftdata's validator (ft/api.h): the
 * report keeps the API's documented shape, and every verdict, code, message
 * and line in it is the one ftdata's own report (struct ft_data_report, what
 * `ft-train validate` prints) holds for the same bytes. Counts and
 * characters are worked out by hand from the files written here.
 */
#include "ft/api.h"
#include "ftest.h"

/* The adapter's report and ftdata's for the same text. */
static json_t *validate(const char *text, const struct ft_api_validate_opts *o,
			struct ft_data_report *rep)
{
	json_t *report = NULL;
	struct ft_err e;
	struct ft_data_opts d;
	ft_err_clear(&e);
	FILE *f = fmemopen((void *)(uintptr_t)text, strlen(text), "rb");
	FT_ASSERT(f);
	FT_ASSERT(ft_api_validate_file(f, o, &report, &e) == FT_OK);
	fclose(f);
	ft_data_opts_default(&d);
	d.method = o->method;
	d.template_name = o->template_name;
	d.max_seq_len = o->tok ? o->max_seq_len : 0;
	f = fmemopen((void *)(uintptr_t)text, strlen(text), "rb");
	FT_ASSERT(f);
	FT_ASSERT(ft_data_validate_file(f, o->tok, NULL, &d, rep, &e) == FT_OK);
	fclose(f);
	return report;
}

static long long num(json_t *o, const char *k)
{
	return json_integer_value(json_object_get(o, k));
}

/* Every error of the report is ftdata's issue, line 0 shown as null. */
static void same_errors(json_t *r, const struct ft_data_report *rep, int *ftest_failed)
{
	json_t *errors = json_object_get(r, "errors");
	FT_CHECK_INT(num(r, "n_errors"), rep->n_errors);
	FT_CHECK_INT(json_array_size(errors), rep->n_issues);
	FT_CHECK(json_is_boolean(json_object_get(r, "valid")));
	FT_CHECK(json_is_true(json_object_get(r, "valid")) == (rep->n_errors == 0));
	FT_CHECK_INT(num(r, "n_lines"), rep->lines);
	FT_CHECK_INT(num(r, "n_examples"), rep->rows_ok);
	for (size_t i = 0; i < rep->n_issues; i++) {
		json_t *e = json_array_get(errors, i);
		FT_CHECK_STR(json_string_value(json_object_get(e, "code")), rep->issues[i].code);
		FT_CHECK_STR(json_string_value(json_object_get(e, "message")), rep->issues[i].msg);
		if (rep->issues[i].line > 0)
			FT_CHECK_INT(num(e, "line"), rep->issues[i].line);
		else
			FT_CHECK(json_is_null(json_object_get(e, "line")));
	}
}

#define CHECK_SAME_ERRORS(r, rep)                  \
	do {                                       \
		same_errors(r, rep, ftest_failed); \
		if (*ftest_failed)                 \
			return;                    \
	} while (0)

FT_TEST(report_is_ftdatas_in_the_api_shape)
{
	struct ft_data_report *rep = ft_xcalloc(1, sizeof(*rep));
	const struct ft_api_validate_opts o = { .method = FT_METHOD_SFT };
	json_t *r = validate(
		"{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"},{\"role\":\"assistant\","
		"\"content\":\"yo\"}]}\n"
		"\n"
		"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}\n"
		"{\"messages\": \"nope\"}\n"
		"not json\n"
		"{\"messages\":[{\"role\":\"tool\",\"content\":\"x\"}]}\n"
		"[1]\n"
		"{\"prompt\":\"q\",\"chosen\":\"a\",\"rejected\":\"b\"}\n"
		"{\"messages\":[{\"role\":\"system\",\"content\":\"caf\xc3\xa9\"},{\"role\":"
		"\"user\","
		"\"content\":\"q\"},{\"role\":\"assistant\",\"content\":\"a\",\"weight\":1}]}\n",
		&o, rep);
	FT_CHECK(r != NULL);
	CHECK_SAME_ERRORS(r, rep);
	FT_CHECK_INT(num(r, "n_errors"), 7);
	FT_CHECK_STR(json_string_value(json_object_get(r, "format")), "messages");
	FT_CHECK_STR(json_string_value(json_object_get(r, "method")), "supervised");
	FT_CHECK(json_is_null(json_object_get(r, "template")));
	json_t *first = json_array_get(json_object_get(r, "errors"), 0);
	FT_CHECK_INT(num(first, "line"), 2);
	FT_CHECK_STR(json_string_value(json_object_get(first, "code")), "blank_line");
	/* two good rows: "hi" + "yo" = 4 characters, "café" + "q" + "a" = 6 */
	json_t *st = json_object_get(r, "stats");
	FT_CHECK_INT(num(st, "total_chars"), 10);
	FT_CHECK_INT(num(st, "max_chars"), 6);
	FT_CHECK(json_real_value(json_object_get(st, "mean_chars")) == 5.0);
	FT_CHECK_INT(num(st, "n_messages"), 5);
	json_t *roles = json_object_get(st, "roles");
	FT_CHECK_INT(num(roles, "system"), 1);
	FT_CHECK_INT(num(roles, "user"), 2);
	FT_CHECK_INT(num(roles, "assistant"), 2);
	static const char *const token_fields[] = { "tokens_total", "tokens_trained", "max_len",
						    "mean_len", "max_seq_len" };
	for (size_t i = 0; i < FT_ARRAY_LEN(token_fields); i++)
		FT_CHECK(json_is_null(json_object_get(st, token_fields[i])));
	json_t *preview = json_object_get(r, "preview");
	FT_CHECK_INT(json_array_size(preview), 2);
	FT_CHECK_STR(json_string_value(json_array_get(preview, 0)), "user: hi\nassistant: yo\n");
	FT_CHECK_STR(json_string_value(json_array_get(preview, 1)),
		     "system: café\nuser: q\nassistant: a\n");
	json_decref(r);
	free(rep);
}

FT_TEST(file_level_errors_have_no_line)
{
	struct ft_data_report *rep = ft_xcalloc(1, sizeof(*rep));
	const struct ft_api_validate_opts o = { .method = FT_METHOD_AUTO };
	json_t *r = validate("", &o, rep);
	CHECK_SAME_ERRORS(r, rep);
	FT_CHECK_STR(json_string_value(json_object_get(
			     json_array_get(json_object_get(r, "errors"), 0), "code")),
		     "empty_file");
	FT_CHECK(json_is_null(json_object_get(r, "format")));
	FT_CHECK(json_is_null(json_object_get(r, "method")));
	json_decref(r);
	/* the format and method of a dataset come from its first valid row */
	r = validate("{\"input\":{\"messages\":[{\"role\":\"user\",\"content\":\"a\"}]},"
		     "\"preferred_output\":[{\"role\":\"assistant\",\"content\":\"b\"}],"
		     "\"non_preferred_output\":[{\"role\":\"assistant\",\"content\":\"c\"}]}",
		     &o, rep);
	CHECK_SAME_ERRORS(r, rep);
	FT_CHECK(json_is_true(json_object_get(r, "valid")));
	FT_CHECK_STR(json_string_value(json_object_get(r, "format")), "openai_dpo");
	FT_CHECK_STR(json_string_value(json_object_get(r, "method")), "dpo");
	json_decref(r);
	free(rep);
}

/* A byte-level tokenizer (byte b is token b, GPT-2's printable mapping) with
 * the chatml special tokens, so a chat row has as many tokens as ftdata
 * counts; too_long follows max_seq_len. */
static struct ft_tokenizer *tokenizer(void)
{
	struct ft_buf b = FT_BUF_INIT(1 << 20);
	struct ft_tokenizer *tok = NULL;
	struct ft_err err;
	unsigned n = 0;
	bool ok =
		ft_buf_addstr(&b, "{\"added_tokens\":[{\"id\":256,\"content\":\"<|im_start|>\","
				  "\"special\":true,\"normalized\":false},{\"id\":257,"
				  "\"content\":\"<|im_end|>\",\"special\":true,\"normalized\":"
				  "false}],\"pre_tokenizer\":{\"type\":\"ByteLevel\","
				  "\"add_prefix_space\":false,\"use_regex\":true},\"decoder\":"
				  "{\"type\":\"ByteLevel\"},\"model\":{\"type\":\"BPE\",\"vocab\":"
				  "{") == FT_OK;
	for (unsigned x = 0; x < 256 && ok; x++) {
		bool printable = (x >= 33 && x <= 126) || (x >= 161 && x <= 172) || x >= 174;
		ok = ft_buf_addf(&b, "%s\"\\u%04x\":%u", x ? "," : "", printable ? x : 256 + n++,
				 x) == FT_OK;
	}
	ok = ok && ft_buf_addstr(&b, "},\"merges\":[]}}") == FT_OK;
	ft_err_clear(&err);
	FT_ASSERT(ok && ft_tokenizer_parse(b.ptr, b.len, &tok, &err) == FT_OK);
	ft_buf_release(&b);
	return tok;
}

FT_TEST(token_checks_with_the_models_tokenizer)
{
	struct ft_tokenizer *tok = tokenizer();
	struct ft_data_report *rep = ft_xcalloc(1, sizeof(*rep));
	const char *text =
		"{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"},{\"role\":\"assistant\","
		"\"content\":\"yo\"}]}\n"
		"{\"messages\":[{\"role\":\"user\",\"content\":\"a much longer question\"},"
		"{\"role\":\"assistant\",\"content\":\"and its answer\"}]}\n"
		"{\"messages\":[{\"role\":\"user\",\"content\":\"q\"},{\"role\":\"assistant\","
		"\"content\":\"a\",\"weight\":0}]}\n";
	struct ft_api_validate_opts o = {
		.method = FT_METHOD_SFT, .tok = tok, .template_name = "chatml", .max_seq_len = 40
	};
	json_t *r = validate(text, &o, rep);
	CHECK_SAME_ERRORS(r, rep);
	/* chatml: "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\nyo<|im_end|>\n"
	 * is 4 special tokens and 7 + 1 + 12 + 1 bytes: 25 tokens, of which
	 * "yo<|im_end|>" (3) are trained; the second row is 4 special tokens and
	 * 27 + 1 + 24 + 1 bytes: 57 tokens */
	FT_CHECK_INT(num(r, "n_errors"), 2);
	json_t *errors = json_object_get(r, "errors");
	FT_CHECK_STR(json_string_value(json_object_get(json_array_get(errors, 0), "message")),
		     "line 2: 57 tokens after tokenization, longer than the limit of 40 "
		     "(max_seq_len)");
	FT_CHECK_STR(json_string_value(json_object_get(json_array_get(errors, 1), "code")),
		     "no_trained_tokens");
	FT_CHECK_INT(num(json_array_get(errors, 1), "line"), 3);
	FT_CHECK_STR(json_string_value(json_object_get(r, "template")), "chatml");
	json_t *st = json_object_get(r, "stats");
	FT_CHECK_INT(num(st, "tokens_total"), 25);
	FT_CHECK_INT(num(st, "tokens_trained"), 3);
	FT_CHECK_INT(num(st, "max_len"), 25);
	FT_CHECK(json_real_value(json_object_get(st, "mean_len")) == 25.0);
	FT_CHECK_INT(num(st, "max_seq_len"), 40);
	json_decref(r);
	/* without a limit the long row passes */
	o.max_seq_len = 0;
	r = validate(text, &o, rep);
	CHECK_SAME_ERRORS(r, rep);
	FT_CHECK_INT(num(r, "n_errors"), 1);
	FT_CHECK_INT(num(json_object_get(r, "stats"), "tokens_total"), 25 + 57);
	FT_CHECK(json_is_null(json_object_get(json_object_get(r, "stats"), "max_seq_len")));
	json_decref(r);
	free(rep);
	ft_tokenizer_free(tok);
}

FT_TEST(method_names)
{
	enum ft_data_method m = FT_METHOD_AUTO;
	FT_CHECK(ft_api_method_parse("supervised", &m) && m == FT_METHOD_SFT);
	FT_CHECK(ft_api_method_parse("dpo", &m) && m == FT_METHOD_DPO);
	FT_CHECK(!ft_api_method_parse("sft", &m));
	FT_CHECK(!ft_api_method_parse(NULL, &m));
}

FT_TEST_MAIN()
