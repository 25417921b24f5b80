/*
 * clock.c - monotonic and wall clocks (clock_gettime).
 */
#include <time.h>

#include "ft/clock.h"
#include "ft/crypto.h"

uint64_t ft_time_mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t ft_time_mono_ms(void)
{
	return ft_time_mono_ns() / 1000000ull;
}

int64_t ft_time_wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void ft_time_iso8601(int64_t wall_ms, char out[32])
{
	time_t secs = (time_t)(wall_ms / 1000);
	int ms = (int)(wall_ms % 1000);
	struct tm tm;
	if (ms < 0) {
		ms += 1000;
		secs -= 1;
	}
	gmtime_r(&secs, &tm);
	snprintf(out, 32, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
		 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms);
}

void ft_sleep_ms(uint64_t ms)
{
	struct timespec req = { (time_t)(ms / 1000), (long)(ms % 1000) * 1000000L }, rem;
	while (nanosleep(&req, &rem) != 0 && errno == EINTR)
		req = rem;
}

struct ft_deadline ft_deadline_in_ms(uint64_t ms)
{
	struct ft_deadline d = { ft_time_mono_ns() + ms * 1000000ull };
	return d;
}

bool ft_deadline_passed(struct ft_deadline d)
{
	return ft_time_mono_ns() >= d.at_ns;
}

uint64_t ft_deadline_left_ms(struct ft_deadline d)
{
	uint64_t now = ft_time_mono_ns();
	return now >= d.at_ns ? 0 : (d.at_ns - now + 999999ull) / 1000000ull;
}

long long ft_backoff_ms(long long base_ms, int attempt, long long cap_ms, int lo_pct, int hi_pct)
{
	long long d = base_ms > 0 ? base_ms : 0;
	for (int i = 1; i < attempt && d < cap_ms; i++)
		d *= 2;
	d = FT_MIN(d, cap_ms);
	if (hi_pct > lo_pct) {
		uint32_t r;
		ft_random_bytes(&r, sizeof r);
		return d * (lo_pct + (long long)(r % (uint32_t)(hi_pct - lo_pct + 1))) / 100;
	}
	return d * lo_pct / 100;
}
