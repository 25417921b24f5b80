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

/* The retry delays by hand: 200 ms doubling (200, 400, 800, 1600), capped at
 * 1000; jitter stays inside its percentages and covers them. */
FT_TEST(backoff_doubles_caps_and_jitters_within_its_bounds)
{
	FT_CHECK(ft_backoff_ms(200, 1, 1000, 100, 100) == 200);
	FT_CHECK(ft_backoff_ms(200, 2, 1000, 100, 100) == 400);
	FT_CHECK(ft_backoff_ms(200, 3, 1000, 100, 100) == 800);
	FT_CHECK(ft_backoff_ms(200, 4, 1000, 100, 100) == 1000);
	FT_CHECK(ft_backoff_ms(200, 1000000, 1000, 100, 100) == 1000); /* no overflow */
	FT_CHECK(ft_backoff_ms(200, 0, 1000, 100, 100) == 200); /* a first try */
	FT_CHECK(ft_backoff_ms(3600000, 30, 43200000, 100, 100) == 43200000);
	long long lo = 1 << 30, hi = 0;
	for (int i = 0; i < 2000; i++) {
		long long d = ft_backoff_ms(1000, 1, 1000, 80, 120);
		FT_CHECK(d >= 800 && d <= 1200);
		lo = FT_MIN(lo, d);
		hi = FT_MAX(hi, d);
	}
	FT_CHECK(lo == 800 && hi == 1200); /* 41 values, 2000 draws: every one all but surely */
}

FT_TEST_MAIN()
