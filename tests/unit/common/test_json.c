/*
 * test_json.c - typed getters name the field and the type they found.
 */
#include "ft/json.h"
#include "ftest.h"

static json_t *parse(const char *s)
{
	return ft_json_parse(s, strlen(s), NULL);
}

FT_TEST(json_getters_report_wrong_types)
{
	struct ft_err e;
	const char *s = NULL;
	long long n = 0;
	json_t *o = parse("{\"messages\":\"hi\",\"n_epochs\":\"3\",\"lr\":2.5,\"ok\":true}");
	FT_CHECK(o);

	ft_err_clear(&e);
	json_t *arr = NULL;
	FT_CHECK(ft_json_get_arr(o, "messages", FT_JSON_REQUIRED, &arr, &e) == FT_EINVAL);
	FT_CHECK_STR(e.msg, "\"messages\" must be a list (got string)");
	FT_CHECK_STR(e.param, "messages");
	FT_CHECK_STR(e.code, "invalid_type");

	ft_err_clear(&e);
	FT_CHECK(ft_json_get_int(o, "n_epochs", 0, 1, 50, &n, &e) == FT_EINVAL);
	FT_CHECK_STR(e.msg, "\"n_epochs\" must be an integer (got string)");

	ft_err_clear(&e);
	FT_CHECK(ft_json_get_str(o, "model", FT_JSON_REQUIRED, &s, &e) == FT_EINVAL);
	FT_CHECK_STR(e.msg, "\"model\" is required");
	FT_CHECK_STR(e.code, "missing_field");

	/* Optional and absent: OK, out untouched. */
	ft_err_clear(&e);
	s = "default";
	FT_CHECK(ft_json_get_str(o, "suffix", 0, &s, &e) == FT_OK);
	FT_CHECK_STR(s, "default");

	double lr = 0;
	FT_CHECK(ft_json_get_num(o, "lr", 0, 0, 10, &lr, &e) == FT_OK);
	FT_CHECK(lr == 2.5);
	ft_err_clear(&e);
	FT_CHECK(ft_json_get_num(o, "lr", 0, 0, 1, &lr, &e) == FT_EINVAL);
	FT_CHECK_STR(e.msg, "\"lr\" must be between 0 and 1 (got 2.5)");
	bool b = false;
	FT_CHECK(ft_json_get_bool(o, "ok", 0, &b, &e) == FT_OK && b);
	json_decref(o);
}

FT_TEST(json_null_unknown_keys_and_nul)
{
	struct ft_err e;
	const char *s = "keep";
	json_t *o = parse("{\"suffix\":null,\"extra\":1,\"name\":\"a\\u0000b\",\"e\":\"\"}");
	FT_CHECK(o);
	ft_err_clear(&e);
	FT_CHECK(ft_json_get_str(o, "suffix", FT_JSON_NULL_OK, &s, &e) == FT_OK);
	FT_CHECK_STR(s, "keep");
	FT_CHECK(ft_json_get_str(o, "suffix", 0, &s, &e) == FT_EINVAL);
	FT_CHECK_STR(e.msg, "\"suffix\" must be a string (got null)");

	ft_err_clear(&e);
	FT_CHECK(ft_json_get_str(o, "name", 0, &s, &e) == FT_EINVAL);
	FT_CHECK_STR(e.msg, "\"name\" must not contain NUL characters");
	ft_err_clear(&e);
	FT_CHECK(ft_json_get_str(o, "e", FT_JSON_NONEMPTY, &s, &e) == FT_EINVAL);
	FT_CHECK_STR(e.msg, "\"e\" must not be empty");

	static const char *const allowed[] = { "suffix", "name", "e", NULL };
	ft_err_clear(&e);
	FT_CHECK(ft_json_check_keys(o, allowed, &e) == FT_EINVAL);
	FT_CHECK_STR(e.msg, "unknown field \"extra\"");
	FT_CHECK_STR(e.param, "extra");
	ft_json_err_nest(&e, "hyperparameters");
	FT_CHECK_STR(e.param, "hyperparameters.extra");
	json_decref(o);
}

FT_TEST(json_parse_errors_have_position)
{
	struct ft_err e;
	ft_err_clear(&e);
	const char *bad = "{\n  \"a\": 1,\n  \"b\": [1, 2,\n}";
	FT_CHECK(ft_json_parse(bad, strlen(bad), &e) == NULL);
	FT_CHECK_STR(e.code, "invalid_json");
	FT_CHECK_INT(e.line, 4);
	FT_CHECK(strstr(e.msg, "line 4") != NULL);
	ft_err_clear(&e);
	const char *dup = "{\"a\":1,\"a\":2}";
	FT_CHECK(ft_json_parse(dup, strlen(dup), &e) == NULL);
	FT_CHECK(strstr(e.msg, "duplicate") != NULL);
}

FT_TEST(json_config_reads_integers_beyond_64_bits)
{
	/* transformers' tokenizer_config.json for a tokenizer without a limit */
	static const char text[] =
		"{\"model_max_length\": 1000000000000000019884624838656, \"small\": 42,"
		" \"max\": 9223372036854775807, \"min\": -9223372036854775808,"
		" \"neg\": -99999999999999999999, \"real\": 1.5e300,"
		" \"s\": \"123456789012345678901234567890 \\\" 99999999999999999999\","
		" \"list\": [18446744073709551616, 7]}";
	struct ft_err err;
	ft_err_clear(&err);
	FT_CHECK(ft_json_parse(text, strlen(text), &err) == NULL);
	FT_CHECK(strstr(err.msg, "too big integer") != NULL);
	ft_err_clear(&err);
	json_t *v = ft_json_parse_config(text, strlen(text), &err);
	FT_CHECK(v != NULL);
	json_t *big = json_object_get(v, "model_max_length");
	FT_CHECK(json_is_real(big) && json_real_value(big) == 1e30);
	FT_CHECK(json_is_integer(json_object_get(v, "small")) &&
		 json_integer_value(json_object_get(v, "small")) == 42);
	FT_CHECK(json_integer_value(json_object_get(v, "max")) == INT64_MAX);
	FT_CHECK(json_integer_value(json_object_get(v, "min")) == INT64_MIN);
	FT_CHECK(json_real_value(json_object_get(v, "neg")) == -1e20);
	FT_CHECK(json_real_value(json_object_get(v, "real")) == 1.5e300);
	FT_CHECK_STR(json_string_value(json_object_get(v, "s")),
		     "123456789012345678901234567890 \" 99999999999999999999");
	FT_CHECK(json_real_value(json_array_get(json_object_get(v, "list"), 0)) ==
		 18446744073709551616.0);
	FT_CHECK(json_integer_value(json_array_get(json_object_get(v, "list"), 1)) == 7);
	json_decref(v);
	/* other errors stay errors, with their position */
	FT_CHECK(ft_json_parse_config("{\"a\": 1,}", 9, &err) == NULL);
	FT_CHECK(strstr(err.msg, "line 1") != NULL);
}

FT_TEST(json_dump_to_capped_buffer)
{
	json_t *o = json_pack("{s:s, s:i}", "id", "ftjob-1", "n", 3);
	struct ft_buf b = FT_BUF_INIT(1024);
	FT_CHECK(ft_json_dump_buf(o, &b) == FT_OK);
	FT_CHECK(strcmp(b.ptr, "{\"id\":\"ftjob-1\",\"n\":3}") == 0);
	struct ft_buf small = FT_BUF_INIT(5);
	FT_CHECK(ft_json_dump_buf(o, &small) == FT_ELIMIT);
	ft_buf_release(&small);
	ft_buf_release(&b);
	json_decref(o);
}

FT_TEST(string_clean_never_loses_a_cut_message)
{
	/* "%.64s" of 30 Devanagari letters (3 bytes each) stops one byte into
	 * the 22nd: json_string refuses it, the clean string ends with U+FFFD
	 * for the lone lead byte */
	char letters[91], msg[128];
	for (int i = 0; i < 30; i++)
		memcpy(letters + 3 * i, "\xe0\xa4\xaa", 3); /* U+092A */
	letters[90] = 0;
	snprintf(msg, sizeof msg, "format \"%.64s\"", letters);
	FT_CHECK(json_string(msg) == NULL);
	json_t *v = ft_json_string_clean(msg, sizeof msg);
	FT_CHECK(v != NULL);
	const char *t = json_string_value(v);
	FT_CHECK_INT(strlen(t), 8 + 63 + 3 + 1); /* 21 letters, U+FFFD, the quote */
	FT_CHECK(memcmp(t + 8 + 63, "\xef\xbf\xbd\"", 4) == 0);
	json_decref(v);
	/* cut at a character boundary to max bytes; NUL-free valid text kept */
	v = ft_json_string_clean("\xc3\xa9\xc3\xa9\xc3\xa9", 5);
	FT_CHECK_STR(json_string_value(v), "\xc3\xa9\xc3\xa9");
	json_decref(v);
	/* overlong and surrogate forms are not characters */
	FT_CHECK_INT(ft_utf8_char_len((const unsigned char *)"\xc0\xaf", 2), 0);
	FT_CHECK_INT(ft_utf8_char_len((const unsigned char *)"\xed\xa0\x80", 3), 0);
	FT_CHECK_INT(ft_utf8_char_len((const unsigned char *)"\xf0\x9f\x98\x80", 4), 4);
}

FT_TEST_MAIN()
