/*
 * test_router.c - the route table and the request arena (private to api/,
 * hence the relative include).
 */
#include "../../../api/src/api_int.h"
#include "ftest.h"

FT_TEST(router_matches_params_and_methods)
{
	struct api_req r = { 0 };
	bool wrong;
	r.arena = api_arena_new();
	const struct api_route *rt =
		api_route_find("GET", "/v1/fine_tuning/jobs/ftjob-abc/events", &r, &wrong);
	FT_CHECK(rt != NULL && !wrong);
	FT_CHECK_STR(rt->action, "jobs.events");
	FT_CHECK_STR(r.params[0], "ftjob-abc");
	rt = api_route_find("POST", "/v1/fine_tuning/jobs/x/cancel", &r, &wrong);
	FT_CHECK(rt != NULL && rt->role == ROLE_MEMBER && (rt->flags & RT_WRITE));
	FT_CHECK_STR(r.params[0], "x");
	/* A known path with another method: 405, not 404. */
	FT_CHECK(api_route_find("PUT", "/v1/files", &r, &wrong) == NULL && wrong);
	FT_CHECK(api_route_find("GET", "/v1/nothing", &r, &wrong) == NULL && !wrong);
	/* Placeholders never match an empty segment or a slash. */
	FT_CHECK(api_route_find("GET", "/v1/files/", &r, &wrong) == NULL);
	FT_CHECK(api_route_find("GET", "/v1/files/a/b", &r, &wrong) == NULL);
	FT_CHECK(api_route_find("GET", "/v1/files/a/content/", &r, &wrong) == NULL);
	/* four placeholders (the registry's deepest routes) */
	rt = api_route_find("GET", "/v1/registry/artifacts/art-x/files/config.json", &r, &wrong);
	FT_CHECK(rt != NULL);
	FT_CHECK_STR(rt->action, "artifacts.file");
	FT_CHECK_STR(r.params[1], "config.json");
	rt = api_route_find("DELETE", "/v1/registry/models/bot/aliases/prod", &r, &wrong);
	FT_CHECK(rt != NULL && rt->role == ROLE_MEMBER && (rt->flags & RT_WRITE));
	FT_CHECK_STR(r.params[0], "bot");
	FT_CHECK_STR(r.params[1], "prod");
	rt = api_route_find("GET", "/v1/models/ft:tiny:ftjob-x:ckpt-step-2", &r, &wrong);
	FT_CHECK(rt != NULL);
	FT_CHECK_STR(r.params[0], "ft:tiny:ftjob-x:ckpt-step-2");
	rt = api_route_find("GET", "/v1/openapi.json", &r, &wrong);
	FT_CHECK(rt != NULL && (rt->flags & RT_PUBLIC));
	api_arena_free(r.arena);
}

static int order[4];
static int n_order;

static void note(void *p)
{
	order[n_order++] = *(int *)p;
}

FT_TEST(arena_runs_cleanups_newest_first)
{
	static int one = 1, two = 2, three = 3;
	struct api_arena *a = api_arena_new();
	api_defer(a, note, &one);
	char *big = api_alloc(a, 100000); /* larger than a block */
	memset(big, 'x', 100000);
	api_defer(a, note, &two);
	FT_CHECK_STR(api_printf(a, "%s-%d", "job", 7), "job-7");
	api_defer(a, note, &three);
	api_arena_free(a);
	FT_CHECK_INT(n_order, 3);
	FT_CHECK(order[0] == 3 && order[1] == 2 && order[2] == 1);
}

FT_TEST(valid_text_rejects_controls_and_bad_utf8)
{
	FT_CHECK(api_valid_text("caf\xc3\xa9", 16));
	FT_CHECK(!api_valid_text("a\x01", 16));
	FT_CHECK(!api_valid_text("\xff", 16));
	FT_CHECK(!api_valid_text("\xc3", 16)); /* truncated sequence */
	FT_CHECK(!api_valid_text("\xc0\xaf", 16)); /* overlong */
	FT_CHECK(!api_valid_text("abcdef", 5));
	FT_CHECK(api_valid_text("abcde", 5));
}

FT_TEST_MAIN()
