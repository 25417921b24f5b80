/*
 * test_http.c - what http.c decides from headers alone: which Content-Type
 * values name JSON (RFC 8259's application/json and RFC 6839's +json
 * suffix, media types being case-insensitive per RFC 9110 8.3.1).
 */
#include "../../../api/src/api_int.h"
#include "ftest.h"

FT_TEST(media_is_json_by_rfc)
{
	static const struct {
		const char *ct;
		bool json;
	} cases[] = {
		{ "application/json", true },
		{ "application/json; charset=utf-8", true },
		{ "Application/JSON", true },
		{ " \tapplication/json \t; q=1", true },
		{ "application/merge-patch+json", true },
		{ "application/vnd.api+json;x=y", true },
		{ "application/+json", false },
		{ "application/a/b+json", false },
		{ "application/jsonx", false },
		{ "application/json-seq", false },
		{ "text/json", false },
		{ "text/plain", false },
		{ "application/x-www-form-urlencoded", false },
		{ "multipart/form-data; boundary=x", false },
		{ "", false },
		{ ";application/json", false },
	};
	for (size_t i = 0; i < FT_ARRAY_LEN(cases); i++) {
		if (api_media_is_json(cases[i].ct) != cases[i].json)
			fprintf(stderr, "case \"%s\"\n", cases[i].ct);
		FT_CHECK(api_media_is_json(cases[i].ct) == cases[i].json);
	}
	FT_CHECK(!api_media_is_json(NULL));
}

FT_TEST_MAIN()
