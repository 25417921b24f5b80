/*
 * background.c - ft-api's one housekeeping thread: everything a request
 * must not wait for.
 *
 *   task                  period            what
 *   key notifications     as they come      LISTEN ft_api_keys on a connection
 *                                           of its own; each payload (a key
 *                                           prefix, or '*') drops cache entries
 *   rate-limit sync       1 s               this process's counts to Redis and
 *                                           the others' back (ratelimit.c)
 *   key cache sweep       10 s              drop expired cache entries
 *   last_used_at          1 s               write it for keys first used, or
 *                                           used again 30 s after the last write
 *   temporary uploads     tmp_sweep_s       remove the store's temporaries that
 *                                           no live process is writing
 *
 * The thread waits on the key listener (ft/apikey.h, shared with ft-serve)
 * for at most 250 ms, so notifications are applied as they arrive and the
 * tasks run on time. When the listening connection is lost every cached
 * key is dropped (notifications may have been missed meanwhile) and it is
 * opened again every 2 s; until then the cache's ttl bounds staleness.
 */
#include <time.h>

#include "api_int.h"

#define TICK_MS 250

struct api_background {
	struct api_ctx *ctx;
	pthread_t thread;
	bool started;
	bool stop; /* atomic */
	struct ft_apikey_listener *listener; /* ft/apikey.h */
};

static void sweep_keys(struct api_ctx *ctx)
{
	ft_apikeys_sweep(ctx->keys);
}

static void sweep_tmp(struct api_ctx *ctx)
{
	int n = ft_store_sweep_tmp(ctx->store, 0);
	if (n > 0)
		ft_logf(FT_LOG_INFO, "api", NULL, "removed %d abandoned temporary uploads", n);
}

static const struct {
	const char *name;
	uint64_t period_ms; /* 0: ctx->tmp_sweep_ms */
	void (*run)(struct api_ctx *ctx);
} tasks[] = {
	{ "rate-limit sync", 1000, api_rate_sync },
	{ "key cache sweep", 10000, sweep_keys },
	{ "last_used_at", 1000, api_usage_flush_last_used },
	{ "temporary uploads", 0, sweep_tmp },
};

static void *background_main(void *arg)
{
	struct api_background *bg = arg;
	uint64_t next[FT_ARRAY_LEN(tasks)];
	uint64_t now = ft_time_mono_ms();
	for (size_t i = 0; i < FT_ARRAY_LEN(tasks); i++) /* the sweep just ran in main() */
		next[i] = tasks[i].period_ms ? now : now + bg->ctx->tmp_sweep_ms;
	while (!__atomic_load_n(&bg->stop, __ATOMIC_ACQUIRE)) {
		ft_apikey_listener_poll(bg->listener, TICK_MS);
		now = ft_time_mono_ms();
		for (size_t i = 0; i < FT_ARRAY_LEN(tasks); i++) {
			if (now < next[i])
				continue;
			tasks[i].run(bg->ctx);
			now = ft_time_mono_ms();
			next[i] = now +
				  (tasks[i].period_ms ? tasks[i].period_ms : bg->ctx->tmp_sweep_ms);
		}
	}
	api_usage_flush_last_used(bg->ctx);
	return NULL;
}

struct api_background *api_background_start(struct api_ctx *ctx, const char *conninfo)
{
	struct api_background *bg = ft_xcalloc(1, sizeof(*bg));
	bg->ctx = ctx;
	bg->listener = ft_apikey_listener_new(conninfo, ctx->keys, "ft-api");
	if (pthread_create(&bg->thread, NULL, background_main, bg) == 0)
		bg->started = true;
	else
		ft_logf(FT_LOG_ERROR, "api", NULL, "cannot start the background thread");
	return bg;
}

void api_background_stop(struct api_background *bg)
{
	if (!bg)
		return;
	__atomic_store_n(&bg->stop, true, __ATOMIC_RELEASE);
	if (bg->started)
		pthread_join(bg->thread, NULL);
	ft_apikey_listener_free(bg->listener);
	free(bg);
}
