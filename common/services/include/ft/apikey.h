/*
 * ft/apikey.h - the platform's API keys, verified the same way by every
 * server that accepts them (ft-api, ft-serve): the key format, the check of
 * a presented key against the hashed keys in PostgreSQL, the in-process
 * cache of those rows, and the LISTEN connection that keeps the cache
 * honest.
 *
 * A key is "ftk-" + 12 base62 characters (the prefix, stored in clear and
 * unique: how a presented key is found) + 32 base62 characters of secret,
 * 48 characters in all (about 262 random bits). The database keeps only
 * SHA-256 of the whole key (api_keys.key_hash); the key itself is shown
 * once, when created.
 *
 * Verifying (ft_apikey_verify): the header is parsed, the prefix looked up
 * in the cache, and on a miss read from PostgreSQL with one prepared SELECT
 * whose answer (or "no such key") is cached. Either way the presented key's
 * SHA-256 is compared with the stored one in constant time, and revocation
 * and expiry are checked on every request.
 *
 * How long a cached entry can be wrong (the staleness bound):
 *   - a change made by this process: ft_apikeys_invalidate() at once;
 *   - any change to api_keys that matters (migration 0003's trigger) sends
 *     NOTIFY ft_api_keys with the prefix when its transaction commits; the
 *     listener (ft_apikey_listener_poll) drops the entry, usually within
 *     milliseconds;
 *   - whatever happens to notifications (the listening connection lost, a
 *     change made with triggers disabled), an entry older than ttl is read
 *     again: ttl is the bound. A listening connection that comes back drops
 *     every entry (notifications may have been missed meanwhile).
 * Expiry needs no notification: expires_at is cached and checked against
 * the clock on every request.
 *
 * A lookup that races with a change cannot re-insert what it read before
 * the change: every invalidation bumps a generation counter, and an entry
 * read under an older generation is not stored.
 *
 * Threads: the cache may be used from any thread. A listener belongs to
 * one thread. Ownership: the caller owns what it passes in; the cache
 * copies what it stores.
 */
#ifndef FT_APIKEY_H
#define FT_APIKEY_H

#include <libpq-fe.h>

#include "ft/crypto.h"
#include "ft/err.h"
#include "ft/id.h"

#define FT_APIKEY_TAG "ftk-"
#define FT_APIKEY_PREFIX_LEN 12
#define FT_APIKEY_SECRET_LEN 32
#define FT_APIKEY_LEN (4 + FT_APIKEY_PREFIX_LEN + FT_APIKEY_SECRET_LEN)
/* SHA-256 of a key as PostgreSQL prints a bytea: "\\x" + 64 hex digits. */
#define FT_APIKEY_HASH_LEN (2 + FT_SHA256_HEX_LEN)
/* The channel migration 0003's trigger notifies. */
#define FT_APIKEY_CHANNEL "ft_api_keys"

/* What the database says about a key (the cache's value). */
struct ft_apikey_info {
	char hash[FT_APIKEY_HASH_LEN + 1];
	char key_id[FT_ID_MAX];
	char team_id[FT_ID_MAX];
	char role[16]; /* "viewer", "member", "admin" (api_keys.role) */
	long rate_limit_per_min;
	bool revoked;
	long long expires_at; /* unix seconds; 0: never */
};

/* A new key: the full key (shown once), its prefix and the hash to store. */
void ft_apikey_generate(char key[FT_APIKEY_LEN + 1], char prefix[FT_APIKEY_PREFIX_LEN + 1],
			char hash[FT_APIKEY_HASH_LEN + 1]);

/* An Authorization header's value, "Bearer ftk-…": the prefix and the hash
 * of the key it carries, or FT_EAUTH with code missing_api_key or
 * invalid_api_key (no database involved). */
enum ft_rc ft_apikey_parse(const char *authorization, char prefix[FT_APIKEY_PREFIX_LEN + 1],
			   char hash[FT_APIKEY_HASH_LEN + 1], struct ft_err *err);

/* ---- the cache ---- */

struct ft_apikeys;
enum ft_apikey_hit { FT_APIKEY_MISS, FT_APIKEY_FOUND, FT_APIKEY_ABSENT };

/* ttl_ms 0: nothing is cached (every request reads the database). At most
 * max_entries entries; beyond that, lookups are not cached. */
struct ft_apikeys *ft_apikeys_new(uint64_t ttl_ms, size_t max_entries);
void ft_apikeys_free(struct ft_apikeys *kc);
uint64_t ft_apikeys_ttl_ms(const struct ft_apikeys *kc);
/* A fresh entry for prefix (FOUND fills *out; ABSENT: no such key), or
 * MISS. *gen is the generation to hand to ft_apikeys_put() after the
 * database lookup. */
enum ft_apikey_hit ft_apikeys_get(struct ft_apikeys *kc, const char *prefix,
				  struct ft_apikey_info *out, uint64_t *gen);
/* Store what the database said (info NULL: no such key), unless an
 * invalidation happened since gen was read. */
void ft_apikeys_put(struct ft_apikeys *kc, const char *prefix, uint64_t gen,
		    const struct ft_apikey_info *info);
void ft_apikeys_invalidate(struct ft_apikeys *kc, const char *prefix);
void ft_apikeys_invalidate_all(struct ft_apikeys *kc);
size_t ft_apikeys_sweep(struct ft_apikeys *kc); /* drops expired; returns entries left */

/* ---- verifying ---- */

/* Gives a connection for the lookup (called only on a cache miss); NULL
 * with err filled when none can be had. The connection stays the caller's. */
typedef PGconn *(*ft_apikey_db_fn)(void *ctx, struct ft_err *err);

/* Check an Authorization header's value. FT_OK: *out is the key's row.
 * FT_EAUTH with err's code missing_api_key, invalid_api_key, key_revoked or
 * key_expired; for the last two *out is filled too (the key is known: an
 * audit may name it). Other codes: the database failed. Must not be called
 * inside a transaction on db's connection (a prepared statement's first run
 * may fail there). */
enum ft_rc ft_apikey_verify(struct ft_apikeys *kc, const char *authorization, ft_apikey_db_fn db,
			    void *db_ctx, struct ft_apikey_info *out, struct ft_err *err);

/* ---- the listener ---- */

/* LISTEN ft_api_keys on a connection of its own (conninfo), dropping cache
 * entries as notifications arrive. `who` names the process in logs and in
 * application_name. */
struct ft_apikey_listener;
struct ft_apikey_listener *ft_apikey_listener_new(const char *conninfo, struct ft_apikeys *kc,
						  const char *who);
void ft_apikey_listener_free(struct ft_apikey_listener *l);
/* Wait up to timeout_ms for notifications and apply them; (re)connects
 * when due (every 2 s while the server is away). Sleeps timeout_ms when
 * there is no connection, so a loop around it ticks either way. */
void ft_apikey_listener_poll(struct ft_apikey_listener *l, int timeout_ms);
bool ft_apikey_listener_up(const struct ft_apikey_listener *l);

#endif
