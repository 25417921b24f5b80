/*
 * test_err.c - struct ft_err keeps the first failure and its decorations.
 */
#include "ft/err.h"
#include "ftest.h"

static enum ft_rc inner(struct ft_err *e)
{
	return ft_failf(e, FT_EINVAL, "invalid_type", "\"%s\" must be a list (got %s)", "messages",
			"string");
}

FT_TEST(err_first_failure_wins)
{
	struct ft_err e;
	ft_err_clear(&e);
	FT_CHECK(!ft_err_is_set(&e));
	FT_CHECK(inner(&e) == FT_EINVAL);
	/* The caller unwinding reports its own failure; the root cause stays. */
	FT_CHECK(ft_failf(&e, FT_EIO, NULL, "outer failure") == FT_EIO);
	FT_CHECK(e.rc == FT_EINVAL);
	FT_CHECK_STR(e.code, "invalid_type");
	FT_CHECK_STR(e.msg, "\"messages\" must be a list (got string)");
}

FT_TEST(err_decorations_and_prefix)
{
	struct ft_err e;
	ft_err_clear(&e);
	ft_failf(&e, FT_ENOTFOUND, NULL, "job \"%s\" not found", "ftjob-x");
	FT_CHECK_STR(e.code, "not_found"); /* NULL code -> rc name */
	ft_err_param(&e, "job_id");
	ft_err_param(&e, "other");
	ft_err_line(&e, 12);
	ft_err_line(&e, 99);
	ft_err_detailf(&e, "looked in team %d", 7);
	ft_err_hintf(&e, "list jobs with %s", "ftctl jobs list");
	ft_err_prefixf(&e, "dataset line %d: ", 12);
	FT_CHECK_STR(e.param, "job_id");
	FT_CHECK_INT(e.line, 12);
	FT_CHECK_STR(e.detail, "looked in team 7");
	FT_CHECK_STR(e.hint, "list jobs with ftctl jobs list");
	FT_CHECK_STR(e.msg, "dataset line 12: job \"ftjob-x\" not found");
}

FT_TEST(err_null_record_and_names)
{
	FT_CHECK(ft_failf(NULL, FT_ENOMEM, NULL, "x") == FT_ENOMEM); /* no crash */
	FT_CHECK_STR(ft_rc_name(FT_OK), "ok");
	FT_CHECK_STR(ft_rc_name(FT_EPERM), "forbidden");
	FT_CHECK_STR(ft_rc_name((enum ft_rc)999), "unknown");
	char small[4];
	FT_CHECK_INT(ft_strlcpy(small, "abcdef", sizeof(small)), 6);
	FT_CHECK_STR(small, "abc");
}

FT_TEST_MAIN()
