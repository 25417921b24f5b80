/*
 * ft/usage.h - what API keys and client addresses are doing, in memory, for
 * every server that accepts the platform's keys (ft-api, ft-serve), so that
 * a request costs no round trip: each key's requests in the current minute
 * (the key's rate_limit_per_min), uploads in flight per key and per address
 * (ft-api's), and when each key was last used (api_keys.last_used_at).
 *
 * Rate: a fixed one-minute window per key, counted across every process
 * that shares the Redis given to ft_usage_new: each counts its own requests
 * (local), and ft_usage_sync, once a second, adds what it counted since the
 * last time to Redis with one EVAL for every key active in the window:
 *
 *   key                         value                                ttl
 *   ft:rl:<key id>:<unix min>   INCRBY: the count of every process   61 s
 *
 * keeping what the others counted (remote = the total less what this
 * process pushed). A request is refused when local + remote exceeds the
 * limit, so a key's limit holds across ft-api and ft-serve processes give
 * or take one second of the others' requests. Without Redis each process
 * enforces the limit on its own count (a warning at most every 10 s).
 *
 * Last use: ft_usage_flush_last_used writes api_keys.last_used_at for the
 * keys due (within a second of a key's first use in this process, then at
 * most every 30 s while it is used, and by the database at most once a
 * minute per key: the UPDATE's own condition); never on a request.
 *
 * Names: "k:<key id>" for a key, "ip:<address>" for a client address.
 * Threads: the request side (ft_usage_rate, slots) from any thread; the
 * sync and the flush from one background thread, the only one that frees
 * idle entries.
 */
#ifndef FT_USAGE_H
#define FT_USAGE_H

#include <stdbool.h>

struct ft_usage;
struct ft_pg_pool;

/* redis_url NULL or "": local counts only. component names the warnings. */
struct ft_usage *ft_usage_new(const char *redis_url, const char *component);
void ft_usage_free(struct ft_usage *u);

/* One more request of key_id in this minute. false when that makes more
 * than per_min, with *retry_after the seconds left in the minute. */
bool ft_usage_rate(struct ft_usage *u, const char *key_id, long per_min, long *retry_after);

/* One more in-flight use of name if it has fewer than max (false: full);
 * given back with ft_usage_slot_give. */
bool ft_usage_slot_take(struct ft_usage *u, const char *name, long max);
void ft_usage_slot_give(struct ft_usage *u, const char *name);

/* The background side: push this minute's counts (about once a second),
 * free idle entries; write last_used_at for the keys due. */
void ft_usage_sync(struct ft_usage *u);
void ft_usage_flush_last_used(struct ft_usage *u, struct ft_pg_pool *pg);

#endif
