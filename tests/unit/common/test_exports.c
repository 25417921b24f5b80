/*
 * test_exports.c - the export formats' table (ft/exports.h): an export's
 * options are checked against their row and every refusal names its field;
 * the worker's flags come from the same rows.
 */
#include "ft/exports.h"
#include "ftest.h"

static const struct {
	const char *options; /* JSON */
	enum ft_rc rc;
	const char *param, *code;
} cases[] = {
	{ "null", FT_OK, "", "" },
	{ "{}", FT_OK, "", "" },
	{ "{\"dtype\": \"bf16\"}", FT_OK, "", "" },
	{ "{\"dtype\": null, \"max_shard_bytes\": 1048576}", FT_OK, "", "" },
	{ "{\"dtype\": \"fp8\"}", FT_EINVAL, "options.dtype", "invalid_value" },
	{ "{\"dtype\": 16}", FT_EINVAL, "options.dtype", "invalid_type" },
	{ "{\"max_shard_bytes\": 1048575}", FT_EINVAL, "options.max_shard_bytes", "invalid_value" },
	{ "{\"max_shard_bytes\": \"1GB\"}", FT_EINVAL, "options.max_shard_bytes", "invalid_value" },
	{ "{\"max_shard_bytes\": 1.5e9}", FT_EINVAL, "options.max_shard_bytes", "invalid_value" },
	{ "{\"quant\": \"q4\"}", FT_EINVAL, "options.quant", "unknown_field" },
	{ "[]", FT_EINVAL, "options", "invalid_type" },
};

FT_TEST(options_are_checked_against_the_row)
{
	const struct ft_export_format *f = ft_export_format_find("merged");
	FT_CHECK(f != NULL);
	for (size_t i = 0; i < FT_ARRAY_LEN(cases); i++) {
		struct ft_err e;
		ft_err_clear(&e);
		json_t *o = json_loads(cases[i].options, JSON_DECODE_ANY, NULL);
		FT_CHECK(o != NULL);
		enum ft_rc rc = ft_export_options_check(f, o, &e);
		if (rc != cases[i].rc)
			fprintf(stderr, "case %zu: %s -> %s\n", i, cases[i].options, e.msg);
		FT_CHECK_INT(rc, cases[i].rc);
		FT_CHECK_STR(e.param, cases[i].param);
		FT_CHECK_STR(e.code, cases[i].code);
		json_decref(o);
	}
}

FT_TEST(formats_are_found_and_give_the_worker_its_flags)
{
	FT_CHECK(ft_export_format_find("gguf-q9") == NULL);
	FT_CHECK(ft_export_format_find(NULL) == NULL);
	const struct ft_export_format *f = ft_export_format_find("merged");
	FT_CHECK_STR(f->argv[0], "export");
	FT_CHECK_STR(f->artifact_kind, "merged");
	FT_CHECK(f->takes & FT_EXPORT_TAKES_ADAPTER);
	json_t *o = json_pack("{s:s, s:i}", "dtype", "fp16", "max_shard_bytes", 2000000);
	char v[64];
	FT_CHECK(ft_export_option_text(&f->opts[0], o, v, sizeof(v)));
	FT_CHECK_STR(f->opts[0].flag, "--dtype");
	FT_CHECK_STR(v, "fp16");
	FT_CHECK(ft_export_option_text(&f->opts[1], o, v, sizeof(v)));
	FT_CHECK_STR(v, "2000000");
	json_object_del(o, "dtype");
	FT_CHECK(!ft_export_option_text(&f->opts[0], o, v, sizeof(v)));
	json_decref(o);
	char names[128];
	ft_export_format_names(names, sizeof(names));
	FT_CHECK(strstr(names, "\"merged\"") != NULL);
	json_t *all = ft_export_formats_json();
	FT_CHECK_STR(json_string_value(json_object_get(json_array_get(all, 0), "name")), "merged");
	json_decref(all);
}

FT_TEST_MAIN()
