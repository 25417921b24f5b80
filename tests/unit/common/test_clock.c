/*
 * test_clock.c - ISO-8601 formatting against known instants; monotonic
 * clock and deadlines move forward.
 */
#include "ft/clock.h"
#include "ftest.h"

FT_TEST(clock_iso8601_and_deadlines)
{
	char ts[32];
	ft_time_iso8601(0, ts);
	FT_CHECK_STR(ts, "1970-01-01T00:00:00.000Z");
	ft_time_iso8601(1795415400123LL, ts); /* date -u -d @1795415400 */
	FT_CHECK_STR(ts, "2026-11-23T06:30:00.123Z");
	ft_time_iso8601(951782400000LL, ts); /* leap day 2000 */
	FT_CHECK_STR(ts, "2000-02-29T00:00:00.000Z");

	uint64_t t0 = ft_time_mono_ns();
	struct ft_deadline d = ft_deadline_in_ms(30);
	FT_CHECK(!ft_deadline_passed(d));
	FT_CHECK(ft_deadline_left_ms(d) <= 30);
	ft_sleep_ms(40);
	FT_CHECK(ft_deadline_passed(d));
	FT_CHECK_INT(ft_deadline_left_ms(d), 0);
	FT_CHECK(ft_time_mono_ns() - t0 >= 40000000ull);
	FT_CHECK(ft_time_wall_ms() > 1700000000000LL);
}

FT_TEST_MAIN()
