/*
 * test_dataset.c - JSONL rows (ft/dataset.h): format detection, every
 * structural error code with its line number and message, the bounded line
 * reader, and the validator's issue list and counts (structure only; the
 * token-level checks are in test_dataset_tok.c).
 */
#include "ft/dataset.h"
#include "ftest.h"

/* Parse one line as line `lineno` of a file in format *fmt. */
static enum ft_rc parse(const char *line, long lineno, enum ft_data_format *fmt,
			struct ft_data_row *row, struct ft_err *err)
{
	ft_err_clear(err);
	return ft_data_row_parse(line, strlen(line), lineno, fmt, row, err);
}

FT_TEST(detects_every_format)
{
	static const struct {
		const char *line;
		enum ft_data_format want;
		size_t n_msgs;
		bool raw;
	} cases[] = {
		{ "{\"text\":\"hello\"}", FT_FMT_TEXT, 1, true },
		{ "{\"prompt\":\"2+2=\",\"completion\":\"4\"}", FT_FMT_PROMPT_COMPLETION, 2, true },
		{ "{\"instruction\":\"add\",\"input\":\"2 2\",\"output\":\"4\"}",
		  FT_FMT_INSTRUCTION, 3, true },
		{ "{\"instruction\":\"say hi\",\"output\":\"hi\"}", FT_FMT_INSTRUCTION, 3, true },
		{ "{\"messages\":[{\"role\":\"system\",\"content\":\"s\"},{\"role\":\"user\","
		  "\"content\":"
		  "\"u\"},{\"role\":\"assistant\",\"content\":\"a\",\"weight\":1}]}",
		  FT_FMT_MESSAGES, 3, false },
		{ "{\"conversations\":[{\"from\":\"human\",\"value\":\"u\"},{\"from\":\"gpt\","
		  "\"value\":"
		  "\"a\"}]}",
		  FT_FMT_SHAREGPT, 2, false },
		{ "{\"prompt\":\"q\",\"chosen\":\"good\",\"rejected\":\"bad\"}", FT_FMT_PREFERENCE,
		  1, true },
		{ "{\"prompt\":[{\"role\":\"user\",\"content\":\"q\"}],\"chosen\":[{\"role\":"
		  "\"assistant\","
		  "\"content\":\"good\"}],\"rejected\":[{\"role\":\"assistant\",\"content\":"
		  "\"bad\"}]}",
		  FT_FMT_PREFERENCE, 1, false },
		{ "{\"input\":{\"messages\":[{\"role\":\"user\",\"content\":\"q\"}]},\"preferred_"
		  "output\":"
		  "[{\"role\":\"assistant\",\"content\":\"good\"}],\"non_preferred_output\":[{"
		  "\"role\":"
		  "\"assistant\",\"content\":\"bad\"}]}",
		  FT_FMT_OPENAI_DPO, 1, false },
	};
	for (size_t i = 0; i < FT_ARRAY_LEN(cases); i++) {
		enum ft_data_format fmt = FT_FMT_UNKNOWN;
		struct ft_data_row row;
		struct ft_err err;
		ft_data_row_init(&row);
		if (parse(cases[i].line, 1, &fmt, &row, &err))
			fprintf(stderr, "case %zu: %s\n", i, err.msg);
		FT_CHECK(err.rc == FT_OK);
		FT_CHECK_INT(fmt, cases[i].want);
		FT_CHECK_INT(row.format, cases[i].want);
		FT_CHECK_INT(row.n_msgs, cases[i].n_msgs);
		FT_CHECK(row.raw == cases[i].raw);
		FT_CHECK_INT(row.line, 1);
		if (ft_data_format_is_preference(fmt)) {
			FT_CHECK_INT(row.n_chosen, 1);
			FT_CHECK(row.chosen[0].len == 4 &&
				 memcmp(row.chosen[0].content, "good", 4) == 0);
			FT_CHECK(row.rejected[0].len == 3 &&
				 memcmp(row.rejected[0].content, "bad", 3) == 0);
		}
		ft_data_row_release(&row);
	}
}

FT_TEST(rows_map_to_messages)
{
	enum ft_data_format fmt = FT_FMT_UNKNOWN;
	struct ft_data_row row;
	struct ft_err err;
	ft_data_row_init(&row);
	FT_CHECK(parse("{\"conversations\":[{\"from\":\"system\",\"value\":\"s\"},{\"from\":"
		       "\"human\","
		       "\"value\":\"u\"},{\"from\":\"gpt\",\"value\":\"a\",\"weight\":0}]}",
		       3, &fmt, &row, &err) == FT_OK);
	FT_CHECK_INT(row.msgs[0].role, FT_CHAT_SYSTEM);
	FT_CHECK_INT(row.msgs[1].role, FT_CHAT_USER);
	FT_CHECK_INT(row.msgs[2].role, FT_CHAT_ASSISTANT);
	FT_CHECK_INT(row.msgs[1].weight, -1);
	FT_CHECK_INT(row.msgs[2].weight, 0);
	fmt = FT_FMT_UNKNOWN;
	FT_CHECK(parse("{\"instruction\":\"add\",\"output\":\"4\"}", 1, &fmt, &row, &err) == FT_OK);
	FT_CHECK_INT(row.msgs[1].len, 0); /* no input */
	FT_CHECK_INT(row.msgs[2].role, FT_CHAT_ASSISTANT);
	ft_data_row_release(&row);
}

/* Every structural error: code, err.line and the whole message. */
FT_TEST(every_error_code_with_line)
{
	static const struct {
		enum ft_data_format fmt; /* the file's format so far */
		const char *line, *code, *msg;
	} cases[] = {
		{ FT_FMT_UNKNOWN, "   \t", "blank_line",
		  "line 7: blank line: every line must hold one JSON object (remove it)" },
		{ FT_FMT_UNKNOWN, "{\"text\":\"caf\xc3\"}", "invalid_utf8",
		  "line 7: not valid UTF-8 at byte offset 12 (byte 0xc3)" },
		{ FT_FMT_UNKNOWN, "{\"text\":\"\xed\xa0\x80\"}", "invalid_utf8", /* a surrogate */
		  "line 7: not valid UTF-8 at byte offset 9 (byte 0xed)" },
		{ FT_FMT_UNKNOWN, "{\"text\": \"a\",}", "invalid_json",
		  "line 7: invalid JSON at column 14: string or '}' expected near '}'" },
		{ FT_FMT_UNKNOWN, "[1,2]", "invalid_type",
		  "line 7: row must be a JSON object (got list)" },
		{ FT_FMT_UNKNOWN, "{\"foo\":1}", "unknown_format",
		  "line 7: row has none of the known fields: \"text\", \"prompt\"+\"completion\", "
		  "\"instruction\"+\"output\", \"messages\", \"conversations\", "
		  "\"prompt\"+\"chosen\"+\"rejected\", \"input\"+\"preferred_output\"+"
		  "\"non_preferred_output\"" },
		{ FT_FMT_MESSAGES, "{\"text\":\"x\"}", "mixed_formats",
		  "line 7: row is in the \"text\" format but the file is in the \"messages\" "
		  "format "
		  "(from its first valid row)" },
		{ FT_FMT_UNKNOWN, "{\"messages\":\"hi\"}", "invalid_type",
		  "line 7: \"messages\" must be a list (got string)" },
		{ FT_FMT_UNKNOWN, "{\"messages\":[]}", "empty_content",
		  "line 7: \"messages\" is an empty list" },
		{ FT_FMT_UNKNOWN, "{\"messages\":[\"hi\"]}", "invalid_type",
		  "line 7: \"messages[0]\" must be an object (got string)" },
		{ FT_FMT_UNKNOWN, "{\"messages\":[{\"content\":\"hi\"}]}", "missing_field",
		  "line 7: \"messages[0].role\" is required" },
		{ FT_FMT_UNKNOWN, "{\"messages\":[{\"role\":\"tool\",\"content\":\"x\"}]}",
		  "unknown_role",
		  "line 7: \"messages[0].role\" is \"tool\": must be one of system, user, "
		  "assistant" },
		{ FT_FMT_UNKNOWN, "{\"conversations\":[{\"from\":\"user\",\"value\":\"x\"}]}",
		  "unknown_role",
		  "line 7: \"conversations[0].from\" is \"user\": must be one of system, human, "
		  "gpt" },
		{ FT_FMT_UNKNOWN, "{\"messages\":[{\"role\":\"user\",\"content\":7}]}",
		  "invalid_type",
		  "line 7: \"messages[0].content\" must be a string (got integer)" },
		{ FT_FMT_UNKNOWN,
		  "{\"messages\":[{\"role\":\"user\",\"content\":\"q\"},{\"role\":\"assistant\","
		  "\"content\":\" \\n\"}]}",
		  "empty_content", "line 7: \"messages[1].content\" is empty" },
		{ FT_FMT_UNKNOWN,
		  "{\"messages\":[{\"role\":\"user\",\"content\":\"q\"},{\"role\":\"assistant\","
		  "\"content\":\"a\",\"weight\":0.5}]}",
		  "invalid_weight", "line 7: \"messages[1].weight\" must be 0 or 1 (got 0.5)" },
		{ FT_FMT_UNKNOWN,
		  "{\"messages\":[{\"role\":\"user\",\"content\":\"q\"},{\"role\":\"assistant\","
		  "\"content\":\"a\",\"weight\":\"1\"}]}",
		  "invalid_weight", "line 7: \"messages[1].weight\" must be 0 or 1 (got string)" },
		{ FT_FMT_UNKNOWN, "{\"messages\":[{\"role\":\"user\",\"content\":\"q\"}]}",
		  "no_assistant_turn",
		  "line 7: \"messages\" has no assistant message: nothing to train on" },
		{ FT_FMT_UNKNOWN, "{\"prompt\":\"q\"}", "missing_field",
		  "line 7: \"completion\" is required" },
		{ FT_FMT_UNKNOWN, "{\"text\":[\"a\"]}", "invalid_type",
		  "line 7: \"text\" must be a string (got list)" },
		{ FT_FMT_UNKNOWN, "{\"instruction\":\"x\",\"input\":3,\"output\":\"y\"}",
		  "invalid_type", "line 7: \"input\" must be a string (got integer)" },
		{ FT_FMT_UNKNOWN, "{\"prompt\":\"q\",\"chosen\":[],\"rejected\":\"b\"}",
		  "invalid_type",
		  "line 7: \"chosen\" must be a string like \"prompt\" (got list)" },
		{ FT_FMT_UNKNOWN,
		  "{\"prompt\":[{\"role\":\"user\",\"content\":\"q\"}],\"chosen\":[{\"role\":"
		  "\"user\","
		  "\"content\":\"g\"}],\"rejected\":[]}",
		  "no_assistant_turn",
		  "line 7: \"chosen\" has no assistant message: nothing to train on" },
		{ FT_FMT_UNKNOWN, "{\"input\":[],\"preferred_output\":[]}", "invalid_type",
		  "line 7: \"input\" must be an object (got list)" },
	};
	for (size_t i = 0; i < FT_ARRAY_LEN(cases); i++) {
		enum ft_data_format fmt = cases[i].fmt;
		struct ft_data_row row;
		struct ft_err err;
		ft_data_row_init(&row);
		FT_CHECK(parse(cases[i].line, 7, &fmt, &row, &err) == FT_EINVAL);
		if (strcmp(err.msg, cases[i].msg) != 0)
			fprintf(stderr, "case %zu\n", i);
		FT_CHECK_STR(err.code, cases[i].code);
		FT_CHECK_STR(err.msg, cases[i].msg);
		FT_CHECK_INT(err.line, 7);
		FT_CHECK_INT(fmt, cases[i].fmt); /* a bad row never sets the format */
		FT_CHECK(row.json == NULL && row.msgs == NULL);
	}
}

FT_TEST(reader_lines_crlf_last_line_and_cap)
{
	/* "a\r\n\nb" then a line of FT_DATA_MAX_LINE + 1 bytes, then "c" */
	size_t big = FT_DATA_MAX_LINE + 1;
	size_t n = 6 + big + 2;
	char *data = malloc(n);
	FT_CHECK(data);
	memcpy(data, "a\r\n\nb\n", 6);
	memset(data + 6, 'x', big);
	memcpy(data + 6 + big, "\nc", 2);
	FILE *f = fmemopen(data, n, "rb");
	FT_CHECK(f);
	struct ft_jsonl_reader r;
	struct ft_err err;
	bool eof;
	ft_err_clear(&err);
	FT_CHECK(ft_jsonl_reader_from_file(&r, f, &err) == FT_OK);
	FT_CHECK(ft_jsonl_reader_next(&r, &eof, &err) == FT_OK && !eof);
	FT_CHECK(r.lineno == 1 && r.line.len == 1 && r.line.ptr[0] == 'a');
	FT_CHECK(ft_jsonl_reader_next(&r, &eof, &err) == FT_OK && !eof);
	FT_CHECK(r.lineno == 2 && r.line.len == 0);
	FT_CHECK(ft_jsonl_reader_next(&r, &eof, &err) == FT_OK && !eof);
	FT_CHECK(r.lineno == 3 && r.line.len == 1 && r.line.ptr[0] == 'b');
	FT_CHECK(ft_jsonl_reader_next(&r, &eof, &err) == FT_ELIMIT);
	FT_CHECK_STR(err.code, "line_too_long");
	FT_CHECK_STR(err.msg,
		     "line 4: 16777217 bytes, longer than the limit of 16777216 bytes per line");
	FT_CHECK_INT(err.line, 4);
	ft_err_clear(&err);
	FT_CHECK(ft_jsonl_reader_next(&r, &eof, &err) == FT_OK && !eof);
	FT_CHECK(r.lineno == 5 && r.line.len == 1 && r.line.ptr[0] == 'c');
	FT_CHECK(ft_jsonl_reader_next(&r, &eof, &err) == FT_OK && eof);
	FT_CHECK(r.line.cap <= FT_DATA_MAX_LINE + 1); /* the buffer never grew past the cap */
	ft_jsonl_reader_close(&r);
	fclose(f);
	free(data);
}

static void validate_text(const char *text, struct ft_data_report *rep, enum ft_data_method m)
{
	struct ft_data_opts o;
	struct ft_err err;
	ft_data_opts_default(&o);
	o.method = m;
	o.val_fraction = 0.3;
	o.seed = 42;
	ft_err_clear(&err);
	FILE *f = fmemopen((void *)(uintptr_t)text, strlen(text), "rb");
	FT_ASSERT(f);
	FT_ASSERT(ft_data_validate_file(f, NULL, NULL, &o, rep, &err) == FT_OK);
	fclose(f);
}

FT_TEST(validator_counts_and_lists)
{
	struct ft_data_report *rep = ft_xcalloc(1, sizeof(*rep));
	validate_text(
		"{\"messages\":[{\"role\":\"system\",\"content\":\"s\"},{\"role\":\"user\","
		"\"content\":"
		"\"u\"},{\"role\":\"assistant\",\"content\":\"a\"}]}\n"
		"\n"
		"{\"text\":\"t\"}\n"
		"{\"messages\":[{\"role\":\"user\",\"content\":\"u\"},{\"role\":\"assistant\","
		"\"content\":\"a\"},{\"role\":\"user\",\"content\":\"u\"},{\"role\":\"assistant\","
		"\"content\":\"a\"}]}",
		rep, FT_METHOD_AUTO);
	FT_CHECK_INT(rep->lines, 4);
	FT_CHECK_INT(rep->rows_ok, 2);
	FT_CHECK_INT(rep->n_errors, 2);
	FT_CHECK_INT(rep->format, FT_FMT_MESSAGES);
	FT_CHECK_INT(rep->method, FT_METHOD_SFT);
	FT_CHECK_INT(rep->issues[0].line, 2);
	FT_CHECK_STR(rep->issues[0].code, "blank_line");
	FT_CHECK_INT(rep->issues[1].line, 3);
	FT_CHECK_STR(rep->issues[1].code, "mixed_formats");
	FT_CHECK_INT(rep->role_counts[FT_CHAT_SYSTEM], 1);
	FT_CHECK_INT(rep->role_counts[FT_CHAT_USER], 3);
	FT_CHECK_INT(rep->role_counts[FT_CHAT_ASSISTANT], 3);
	/* seed 42, fraction 0.3: line indices 0 (t) and 3 (v) */
	FT_CHECK_INT(rep->n_train, 1);
	FT_CHECK_INT(rep->n_val, 1);
	/* preference rows under --method sft */
	validate_text("{\"prompt\":\"q\",\"chosen\":\"g\",\"rejected\":\"b\"}\n", rep,
		      FT_METHOD_SFT);
	FT_CHECK_INT(rep->n_errors, 1);
	FT_CHECK_STR(rep->issues[0].code, "wrong_method");
	FT_CHECK_STR(rep->issues[0].msg, "line 1: rows in the \"preference\" format are for dpo "
					 "training, but the method is sft");
	validate_text("", rep, FT_METHOD_AUTO);
	FT_CHECK_INT(rep->n_errors, 1);
	FT_CHECK_STR(rep->issues[0].code, "empty_file");
	free(rep);
}

FT_TEST(validator_caps_the_list_not_the_count)
{
	struct ft_buf b = FT_BUF_INIT(1 << 20);
	for (int i = 0; i < 250; i++)
		FT_CHECK(ft_buf_addstr(&b, i % 2 ? "{\"text\":\"ok\"}\n" : "{\"text\":1}\n") ==
			 FT_OK);
	struct ft_data_report *rep = ft_xcalloc(1, sizeof(*rep));
	validate_text(ft_buf_str(&b), rep, FT_METHOD_AUTO);
	FT_CHECK_INT(rep->n_errors, 125);
	FT_CHECK_INT(rep->n_issues, FT_VALIDATE_MAX_ISSUES);
	FT_CHECK_INT(rep->issues[99].line, 199);
	FT_CHECK_INT(rep->rows_ok, 125);
	struct ft_buf t = FT_BUF_INIT(1 << 20);
	FT_CHECK(ft_data_report_text(rep, &t) == FT_OK);
	FT_CHECK(
		strstr(ft_buf_str(&t), "... and 25 more errors (only the first 100 are listed)\n"));
	ft_buf_release(&t);
	ft_buf_release(&b);
	free(rep);
}

FT_TEST_MAIN()
