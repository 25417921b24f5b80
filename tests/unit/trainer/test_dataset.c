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

FT_TEST(reader_skips_a_byte_order_mark_at_the_start_only)
{
	/* "\xef\xbb\xbf" (a UTF-8 BOM, as Notepad saves) before the first row is
	 * not part of it; the same bytes at the start of a later line are kept
	 * (there they are a character of the row, which JSON then refuses) */
	static const char data[] = "\xef\xbb\xbf{\"text\":\"a\"}\n\xef\xbb\xbf{}";
	FILE *f = fmemopen((void *)(uintptr_t)data, sizeof data - 1, "rb");
	FT_CHECK(f);
	struct ft_jsonl_reader r;
	struct ft_err err;
	bool eof;
	ft_err_clear(&err);
	FT_CHECK(ft_jsonl_reader_from_file(&r, f, &err) == FT_OK);
	FT_CHECK(ft_jsonl_reader_next(&r, &eof, &err) == FT_OK && !eof);
	FT_CHECK_INT(r.line.len, 12);
	FT_CHECK(memcmp(r.line.ptr, "{\"text\":\"a\"}", 12) == 0);
	FT_CHECK(ft_jsonl_reader_next(&r, &eof, &err) == FT_OK && !eof);
	FT_CHECK_INT(r.line.len, 5);
	ft_jsonl_reader_close(&r);
	fclose(f);
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

/* Characters are code points, counted by hand: "café" 4, "日本" 2, "hé" 2. */
FT_TEST(validator_counts_characters_and_renders_a_preview)
{
	static const struct {
		const char *line, *preview;
		long chars;
	} cases[] = {
		{ "{\"text\":\"caf\xc3\xa9\"}", "text: café\n", 4 },
		{ "{\"prompt\":\"2+2=\",\"completion\":\"4\"}", "prompt: 2+2=\ncompletion: 4\n",
		  5 },
		{ "{\"instruction\":\"add\",\"output\":\"4\"}", "instruction: add\noutput: 4\n",
		  4 },
		{ "{\"instruction\":\"add\",\"input\":\"2 2\",\"output\":\"4\"}",
		  "instruction: add\ninput: 2 2\noutput: 4\n", 7 },
		{ "{\"messages\":[{\"role\":\"system\",\"content\":\"\xe6\x97\xa5\xe6\x9c\xac\"},"
		  "{\"role\":\"user\",\"content\":\"h\\u00e9\"},{\"role\":\"assistant\","
		  "\"content\":\"a\"}]}",
		  "system: 日本\nuser: hé\nassistant: a\n", 5 },
		{ "{\"conversations\":[{\"from\":\"human\",\"value\":\"u\"},{\"from\":\"gpt\","
		  "\"value\":\"a\"}]}",
		  "user: u\nassistant: a\n", 2 },
		{ "{\"prompt\":\"q\",\"chosen\":\"good\",\"rejected\":\"bad\"}",
		  "prompt: q\nchosen: good\nrejected: bad\n", 8 },
		{ "{\"input\":{\"messages\":[{\"role\":\"user\",\"content\":\"q\"}]},"
		  "\"preferred_output\":[{\"role\":\"assistant\",\"content\":\"good\"}],"
		  "\"non_preferred_output\":[{\"role\":\"assistant\",\"content\":\"bad\"}]}",
		  "user: q\nchosen: good\nrejected: bad\n", 8 },
	};
	struct ft_data_report *rep = ft_xcalloc(1, sizeof(*rep));
	for (size_t i = 0; i < FT_ARRAY_LEN(cases); i++) {
		char text[1024];
		snprintf(text, sizeof(text), "%s\n%s\n", cases[i].line, cases[i].line);
		validate_text(text, rep, FT_METHOD_AUTO);
		FT_CHECK_INT(rep->n_errors, 0);
		FT_CHECK_INT(rep->chars_total, 2 * cases[i].chars);
		FT_CHECK_INT(rep->chars_max, cases[i].chars);
		FT_CHECK(ft_data_report_mean_chars(rep) == (double)cases[i].chars);
		FT_CHECK_INT(rep->n_preview, 2);
		FT_CHECK_STR(rep->preview[0], cases[i].preview);
	}
	free(rep);
}

/* A content is cut at 300 bytes and a row at 1023, both on a character
 * boundary, "..." marking the cut; only the first three valid rows. */
FT_TEST(validator_preview_is_bounded_and_stays_utf8)
{
	struct ft_buf b = FT_BUF_INIT(1 << 20);
	struct ft_data_report *rep = ft_xcalloc(1, sizeof(*rep));
	/* "a" then 200 x "é" (2 bytes): byte 300 is the second byte of an "é" */
	bool ok = ft_buf_addstr(&b, "{\"text\":\"a") == FT_OK;
	for (int i = 0; i < 200; i++)
		ok = ok && ft_buf_addstr(&b, "\xc3\xa9") == FT_OK;
	ok = ok && ft_buf_addstr(&b, "\"}\n{\"text\":1}\n{\"text\":\"c\"}\n{\"text\":\"d\"}\n"
				     "{\"text\":\"e\"}\n") == FT_OK;
	validate_text(ft_buf_str(&b), rep, FT_METHOD_AUTO);
	ft_buf_reset(&b);
	FT_CHECK(ok);
	FT_CHECK_INT(rep->rows_ok, 4);
	FT_CHECK_INT(rep->n_preview, 3);
	/* "text: " + "a" + 149 x "é" (299 bytes) + "..." + "\n" */
	FT_CHECK_INT(strlen(rep->preview[0]), 6 + 299 + 3 + 1);
	FT_CHECK(strcmp(rep->preview[0] + 6 + 299, "...\n") == 0);
	FT_CHECK_INT(ft_data_utf8_invalid_at(rep->preview[0], strlen(rep->preview[0])),
		     strlen(rep->preview[0]));
	FT_CHECK_STR(rep->preview[1], "text: c\n"); /* the row after the bad one */
	FT_CHECK_STR(rep->preview[2], "text: d\n");
	FT_CHECK_INT(rep->chars_max, 201);
	FT_CHECK_INT(rep->chars_total, 201 + 3);

	ok = ft_buf_addstr(&b, "{\"messages\":[") == FT_OK;
	for (int i = 0; i < 8; i++)
		ok = ok && ft_buf_addf(&b,
				       "%s{\"role\":\"user\",\"content\":\"%0200d\"},"
				       "{\"role\":\"assistant\",\"content\":\"x\"}",
				       i ? "," : "", i) == FT_OK;
	ok = ok && ft_buf_addstr(&b, "]}\n") == FT_OK;
	validate_text(ft_buf_str(&b), rep, FT_METHOD_AUTO);
	ft_buf_release(&b);
	FT_CHECK(ok);
	FT_CHECK_INT(rep->rows_ok, 1);
	/* a user turn is "user: " + 200 digits + "\n" = 207 bytes, an assistant
	 * turn "assistant: x\n" 13: four pairs are 880 bytes, and the fifth user
	 * turn is cut at 1023 - 3 bytes, "..." making 1023 */
	FT_CHECK_INT(strlen(rep->preview[0]), FT_VALIDATE_PREVIEW_BYTES - 1);
	FT_CHECK_STR(rep->preview[0] + FT_VALIDATE_PREVIEW_BYTES - 4, "...");
	FT_CHECK(strncmp(rep->preview[0] + 880, "user: 0000", 10) == 0);
	FT_CHECK_INT(rep->chars_max, 8 * 201);
	free(rep);
}

/* A message that quotes data and is cut inside a character (a role is quoted
 * to 40 bytes) is made valid UTF-8 again, so the JSON report can hold it. */
FT_TEST(validator_messages_are_utf8)
{
	struct ft_data_report *rep = ft_xcalloc(1, sizeof(*rep));
	validate_text(
		"{\"messages\":[{\"role\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\xc3\xa9\","
		"\"content\":\"x\"}]}\n",
		rep, FT_METHOD_AUTO);
	FT_CHECK_STR(rep->issues[0].code, "unknown_role");
	FT_CHECK_STR(
		rep->issues[0].msg,
		"line 1: \"messages[0].role\" is \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa?\": "
		"must be one of system, user, assistant");
	json_t *j = ft_data_report_json(rep);
	FT_CHECK(j != NULL);
	json_decref(j);
	free(rep);
}

static enum ft_rc first_row(const char *text, enum ft_data_method m, enum ft_data_format *fmt,
			    struct ft_err *err)
{
	FILE *f = fmemopen((void *)(uintptr_t)text, strlen(text), "rb");
	FT_ASSERT(f);
	ft_err_clear(err);
	enum ft_rc rc = ft_data_check_first_row(f, m, fmt, err);
	fclose(f);
	return rc;
}

FT_TEST(first_row_check_is_the_validators_method_check)
{
	const char *pref = "\n \r\n{\"prompt\":\"q\",\"chosen\":\"g\",\"rejected\":\"b\"}\n"
			   "{\"text\":\"t\"}\n";
	enum ft_data_format fmt;
	struct ft_err err;
	FT_CHECK(first_row(pref, FT_METHOD_SFT, &fmt, &err) == FT_EINVAL);
	FT_CHECK_INT(fmt, FT_FMT_PREFERENCE);
	FT_CHECK_STR(err.code, "wrong_method");
	FT_CHECK_INT(err.line, 3);
	/* the same words as the validator gives that line */
	struct ft_data_report *rep = ft_xcalloc(1, sizeof(*rep));
	validate_text(pref, rep, FT_METHOD_SFT);
	FT_CHECK_INT(rep->issues[2].line, 3);
	FT_CHECK_STR(rep->issues[2].msg, err.msg);
	FT_CHECK_STR(err.msg, "line 3: rows in the \"preference\" format are for dpo training, "
			      "but the method is sft");
	free(rep);
	FT_CHECK(first_row(pref, FT_METHOD_DPO, &fmt, &err) == FT_OK);
	FT_CHECK_INT(fmt, FT_FMT_PREFERENCE);
	/* a first row that is not valid is the validator's to report */
	FT_CHECK(first_row("{\"prompt\":\"q\",\"chosen\":1}\n", FT_METHOD_SFT, &fmt, &err) ==
		 FT_OK);
	FT_CHECK_INT(fmt, FT_FMT_UNKNOWN);
	FT_CHECK(first_row("", FT_METHOD_SFT, &fmt, &err) == FT_OK);
	FT_CHECK_INT(fmt, FT_FMT_UNKNOWN);
	/* past 100 blank lines the file is left to the validator */
	char many[256 + 64];
	memset(many, '\n', 150);
	snprintf(many + 150, sizeof(many) - 150,
		 "{\"prompt\":\"q\",\"chosen\":\"g\",\"rejected\":\"b\"}\n");
	FT_CHECK(first_row(many, FT_METHOD_SFT, &fmt, &err) == FT_OK);
	FT_CHECK_INT(fmt, FT_FMT_UNKNOWN);
	FT_CHECK(first_row(many + 60, FT_METHOD_SFT, &fmt, &err) == FT_EINVAL);
	FT_CHECK_INT(err.line, 91);
	/* a UTF-8 byte order mark starts the file, not the row */
	FT_CHECK(first_row("\xef\xbb\xbf{\"text\":\"t\"}\n", FT_METHOD_DPO, &fmt, &err) ==
		 FT_EINVAL);
	FT_CHECK_INT(err.line, 1);
	FT_CHECK_INT(fmt, FT_FMT_TEXT);
}

FT_TEST(format_table)
{
	FT_CHECK_INT(ft_data_format_method(FT_FMT_TEXT), FT_METHOD_SFT);
	FT_CHECK_INT(ft_data_format_method(FT_FMT_OPENAI_DPO), FT_METHOD_DPO);
	FT_CHECK_INT(ft_data_format_method(FT_FMT_UNKNOWN), FT_METHOD_AUTO);
	FT_CHECK(!ft_data_format_is_preference(FT_FMT_SHAREGPT));
	json_t *row = json_loads("{\"prompt\":\"p\"}", 0, NULL);
	FT_CHECK_INT(ft_data_format_detect(row), FT_FMT_PROMPT_COMPLETION);
	json_decref(row);
	row = json_loads("[1]", 0, NULL);
	FT_CHECK_INT(ft_data_format_detect(row), FT_FMT_UNKNOWN);
	json_decref(row);
	struct ft_err err;
	ft_err_clear(&err);
	FT_CHECK(ft_data_method_check(FT_FMT_MESSAGES, FT_METHOD_AUTO, 1, &err) == FT_OK);
	FT_CHECK(ft_data_method_check(FT_FMT_MESSAGES, FT_METHOD_DPO, 7, &err) == FT_EINVAL);
	FT_CHECK_INT(err.line, 7);
	FT_CHECK_STR(err.msg, "line 7: rows in the \"messages\" format are for sft training, but "
			      "the method is dpo");
	/* a NUL byte is not blank */
	FT_CHECK(!ft_jsonl_blank(" \0", 2));
	FT_CHECK(ft_jsonl_blank(" \t\r\n", 4));
}

FT_TEST_MAIN()
