/*
 * test_console.c - which console paths ft-api serves, with which type, and
 * the router's "{*}" (private to api/, hence the relative include). The
 * system test (tests/system/test_console_static.py) sends the same kind of
 * paths over HTTP.
 */
#include "../../../api/src/api_int.h"
#include "ftest.h"

FT_TEST(console_paths_and_types)
{
	static const struct {
		const char *path, *type; /* NULL: refused */
	} cases[] = {
		{ "index.html", "text/html; charset=utf-8" },
		{ "js/app.js", "text/javascript; charset=utf-8" },
		{ "js/pages/job.js", "text/javascript; charset=utf-8" },
		{ "console.css", "text/css; charset=utf-8" },
		{ "i18n/zh.json", "application/json; charset=utf-8" },
		{ "icon.svg", "image/svg+xml" },
		{ "a.b.c-d_e.png", "image/png" },
		{ "x/y.z/w.js", "text/javascript; charset=utf-8" }, /* a dot inside a folder name */
		{ "", NULL },
		{ "..", NULL },
		{ "../x.js", NULL },
		{ "js/../app.js", NULL },
		{ "js/./app.js", NULL },
		{ ".hidden.js", NULL },
		{ "js/.app.js", NULL },
		{ "/etc/passwd.js", NULL },
		{ "js//app.js", NULL },
		{ "js/app.js/", NULL },
		{ "js/app", NULL },
		{ "README.md", NULL }, /* no type: not served */
		{ "app.js.bak", NULL },
		{ "app.JS", NULL },
		{ "js/app%2ejs", NULL },
		{ "js/a b.js", NULL },
		{ "js\\app.js", NULL },
		{ "j\xc3\xa9.js", NULL },
		{ "a/b/c/d/e/f/g/h.js", "text/javascript; charset=utf-8" }, /* 8 segments */
		{ "a/b/c/d/e/f/g/h/i.js", NULL }, /* 9 */
	};
	for (size_t i = 0; i < FT_ARRAY_LEN(cases); i++) {
		const char *got = api_console_path_type(cases[i].path);
		if (!cases[i].type) {
			if (got)
				fprintf(stderr, "case %zu \"%s\" was served as %s\n", i,
					cases[i].path, got);
			FT_CHECK(got == NULL);
		} else {
			FT_CHECK_STR(got, cases[i].type);
		}
	}
	char longp[300];
	memset(longp, 'a', sizeof(longp));
	memcpy(longp + 252, ".js", 4); /* 255 bytes: the longest allowed */
	FT_CHECK(api_console_path_type(longp) != NULL);
	memset(longp, 'a', sizeof(longp));
	memcpy(longp + 253, ".js", 4); /* 256 */
	FT_CHECK(api_console_path_type(longp) == NULL);
}

FT_TEST(router_rest_placeholder)
{
	struct api_req r = { 0 };
	bool wrong;
	r.arena = api_arena_new();
	const struct api_route *rt = api_route_find("GET", "/console/js/pages/job.js", &r, &wrong);
	FT_CHECK(rt != NULL && (rt->flags & RT_PUBLIC));
	FT_CHECK_STR(r.params[0], "js/pages/job.js");
	FT_CHECK(api_route_find("GET", "/console/", &r, &wrong) == NULL && !wrong);
	FT_CHECK(api_route_find("POST", "/console/x.js", &r, &wrong) == NULL && wrong);
	rt = api_route_find("GET", "/", &r, &wrong);
	FT_CHECK(rt != NULL && rt->handler == h_console_index);
	/* the estimate is not taken for a job id, and GET of it is a job lookup */
	rt = api_route_find("POST", "/v1/fine_tuning/jobs/estimate", &r, &wrong);
	FT_CHECK(rt != NULL && rt->handler == h_jobs_estimate && !(rt->flags & RT_WRITE));
	rt = api_route_find("GET", "/v1/fine_tuning/jobs/estimate", &r, &wrong);
	FT_CHECK(rt != NULL && rt->handler == h_jobs_get);
	api_arena_free(r.arena);
}

FT_TEST_MAIN()
