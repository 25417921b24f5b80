/*
 * test_validate.c - the API's dataset validator: format detection, the
 * method check, and line-numbered errors. Expected lines and counts are
 * worked out by hand from the files written here.
 */
#include <unistd.h>

#include "ft/api.h"
#include "ftest.h"

static json_t *validate(const char *text, const char *method)
{
	char path[] = "/tmp/ftvalidate.XXXXXX";
	int fd = mkstemp(path);
	FT_ASSERT(fd >= 0);
	FT_ASSERT(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
	close(fd);
	json_t *report = NULL;
	struct ft_err e;
	ft_err_clear(&e);
	enum ft_rc rc = ft_api_validate_dataset(path, method, &report, &e);
	unlink(path);
	return rc == FT_OK ? report : NULL;
}

static const char *err_msg(json_t *r, size_t i)
{
	return json_string_value(
		json_object_get(json_array_get(json_object_get(r, "errors"), i), "message"));
}

static const char *err_code(json_t *r, size_t i)
{
	return json_string_value(
		json_object_get(json_array_get(json_object_get(r, "errors"), i), "code"));
}

static long long num(json_t *r, const char *k)
{
	return json_integer_value(json_object_get(r, k));
}

FT_TEST(validate_messages_file_with_errors_by_line)
{
	json_t *r = validate("{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"},{\"role\":"
			     "\"assistant\",\"content\":\"yo\"}]}\n"
			     "\n"
			     "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}\n"
			     "{\"messages\": \"nope\"}\n"
			     "not json\n"
			     "{\"messages\":[{\"role\":\"wizard\",\"content\":\"x\"}]}\n"
			     "[1]\n",
			     "supervised");
	FT_CHECK(r != NULL);
	FT_CHECK_STR(json_string_value(json_object_get(r, "format")), "messages");
	FT_CHECK(json_is_false(json_object_get(r, "valid")));
	FT_CHECK_INT(num(r, "n_lines"), 7);
	FT_CHECK_INT(num(r, "n_examples"), 1);
	FT_CHECK_INT(num(r, "n_errors"), 5);
	FT_CHECK_STR(err_msg(r, 0), "line 3: \"messages\" has no assistant message to learn from");
	FT_CHECK_STR(err_code(r, 0), "no_assistant_message");
	FT_CHECK_STR(err_msg(r, 1), "line 4: \"messages\" must be a list (got string)");
	FT_CHECK(strncmp(err_msg(r, 2), "line 5: ", 8) == 0);
	FT_CHECK_STR(err_code(r, 2), "invalid_json");
	FT_CHECK_STR(err_msg(r, 3), "line 6: messages[0]: unknown role \"wizard\" (use system, "
				    "user, assistant or tool)");
	FT_CHECK_STR(err_msg(r, 4), "line 7: must be a JSON object (got list)");
	/* Statistics over the one good example: "hi" + "yo" = 4 characters. */
	json_t *st = json_object_get(r, "stats");
	FT_CHECK_INT(num(st, "total_chars"), 4);
	FT_CHECK_INT(num(st, "n_messages"), 2);
	FT_CHECK_STR(json_string_value(json_array_get(json_object_get(r, "preview"), 0)),
		     "user: hi\nassistant: yo\n");
	json_decref(r);
}

FT_TEST(validate_detects_each_format)
{
	static const struct {
		const char *line, *format;
	} cases[] = {
		{ "{\"text\":\"abc\"}", "text" },
		{ "{\"prompt\":\"a\",\"completion\":\"b\"}", "prompt_completion" },
		{ "{\"instruction\":\"a\",\"input\":\"\",\"output\":\"b\"}", "instruction" },
		{ "{\"conversations\":[{\"from\":\"human\",\"value\":\"a\"},{\"from\":\"gpt\","
		  "\"value\":\"b\"}]}",
		  "sharegpt" },
		{ "{\"prompt\":\"a\",\"chosen\":\"b\",\"rejected\":\"c\"}", "preference" },
		{ "{\"input\":{\"messages\":[{\"role\":\"user\",\"content\":\"a\"}]},"
		  "\"preferred_output\":[{\"role\":\"assistant\",\"content\":\"b\"}],"
		  "\"non_preferred_output\":[{\"role\":\"assistant\",\"content\":\"c\"}]}",
		  "openai_dpo" },
	};
	for (size_t i = 0; i < FT_ARRAY_LEN(cases); i++) {
		char text[1024];
		snprintf(text, sizeof(text), "%s\n%s", cases[i].line,
			 cases[i].line); /* no final newline */
		json_t *r = validate(text, NULL);
		FT_CHECK(r != NULL);
		FT_CHECK_STR(json_string_value(json_object_get(r, "format")), cases[i].format);
		FT_CHECK(json_is_true(json_object_get(r, "valid")));
		FT_CHECK_INT(num(r, "n_examples"), 2);
		json_decref(r);
	}
}

FT_TEST(validate_method_and_mixed_formats)
{
	json_t *r =
		validate("{\"prompt\":\"a\",\"chosen\":\"b\",\"rejected\":\"c\"}\n", "supervised");
	FT_CHECK(r != NULL);
	FT_CHECK_STR(err_code(r, 0), "format_mismatch");
	FT_CHECK_STR(err_msg(r, 0),
		     "line 1: format \"preference\" cannot train with method \"supervised\"");
	json_decref(r);
	r = validate("{\"text\":\"a\"}\n{\"prompt\":\"a\",\"completion\":\"b\"}\n{\"foo\":1}\n",
		     NULL);
	FT_CHECK(r != NULL);
	FT_CHECK_INT(num(r, "n_errors"), 2);
	FT_CHECK_STR(err_msg(r, 0), "line 2: format \"prompt_completion\" differs from the file's "
				    "format \"text\" (line 1)");
	FT_CHECK_STR(err_code(r, 1), "missing_field");
	FT_CHECK_STR(err_msg(r, 1), "line 3: \"text\" is required");
	json_decref(r);
	r = validate("\n\n", NULL);
	FT_CHECK(r != NULL);
	FT_CHECK_STR(err_code(r, 0), "empty_file");
	json_decref(r);
}

FT_TEST(validate_caps_line_length)
{
	size_t n = (8u << 20) + 10;
	char *big = malloc(n + 32);
	FT_CHECK(big != NULL);
	memcpy(big, "{\"text\":\"", 9);
	memset(big + 9, 'a', n);
	memcpy(big + 9 + n, "\"}\n{\"text\":\"ok\"}\n", 18);
	json_t *r = validate(big, NULL);
	free(big);
	FT_CHECK(r != NULL);
	FT_CHECK_STR(err_code(r, 0), "line_too_long");
	FT_CHECK_INT(json_integer_value(json_object_get(
			     json_array_get(json_object_get(r, "errors"), 0), "line")),
		     1);
	FT_CHECK_INT(num(r, "n_examples"), 1);
	json_decref(r);
}

FT_TEST_MAIN()
