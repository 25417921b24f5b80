/*
 * ft/clock.h - clocks. Monotonic time for durations, deadlines and rates;
 * wall time only for what is shown or stored.
 */
#ifndef FT_CLOCK_H
#define FT_CLOCK_H

#include "ft/base.h"

uint64_t ft_time_mono_ns(void);
uint64_t ft_time_mono_ms(void);
int64_t ft_time_wall_ms(void); /* ms since the Unix epoch */
/* "2026-11-23T06:30:00.123Z" (UTC); out must hold 32 bytes. */
void ft_time_iso8601(int64_t wall_ms, char out[32]);
/* Sleep, restarting after signals until the time has passed. */
void ft_sleep_ms(uint64_t ms);

/* A deadline on the monotonic clock. */
struct ft_deadline {
	uint64_t at_ns;
};
struct ft_deadline ft_deadline_in_ms(uint64_t ms);
bool ft_deadline_passed(struct ft_deadline d);
uint64_t ft_deadline_left_ms(struct ft_deadline d); /* 0 once passed */

/* The delay before retry number `attempt` (1 = the first retry) of work
 * that failed: base_ms * 2^(attempt - 1), at most cap_ms, then scaled by a
 * random whole percentage in [lo_pct, hi_pct] (100, 100: none), so that
 * clients that failed together do not retry together. Every retry loop of
 * the platform (webhooks, the LLM judge, replays, the S3 store) takes its
 * delay here. */
long long ft_backoff_ms(long long base_ms, int attempt, long long cap_ms, int lo_pct, int hi_pct);

#endif
