/*
 * worker_int.h - private to worker/.
 */
#ifndef FT_WORKER_INT_H
#define FT_WORKER_INT_H

#include <sys/types.h>

#include <jansson.h>

#include "ft/wire.h"
#include "ft/worker.h"

struct ft_store;
enum ft_rc wk_store_put_file(struct ft_store *st, const char *path, char hex[65], uint64_t *bytes,
			     struct ft_err *err);
/* dir as a manifest (store.c's header gives the format): its hex and the
 * total bytes of its files; *files_out (may be NULL) gets the manifest's
 * "files" array, owned by the caller. */
enum ft_rc wk_store_put_dir(struct ft_store *st, const char *dir, char hex[65], uint64_t *total,
			    json_t **files_out, struct ft_err *err);
enum ft_rc wk_store_get_dir(struct ft_store *st, const char *manifest_hex, const char *dir,
			    struct ft_err *err);

/* ---- the input cache (cache.c; its header comment gives the layout) ----
 * Ownership: the cache borrows st (it must outlive the cache). Every
 * successful wk_cache_get() pins its entry; the caller unpins it with
 * wk_cache_unpin() once nothing reads the path any more. */
enum wk_cache_kind { WK_CACHE_FILE, WK_CACHE_DIR, WK_CACHE_KINDS };
struct wk_cache_counters {
	uint64_t hits; /* gets answered from the disk */
	uint64_t fetches; /* entries fetched from the store */
	uint64_t fetched_bytes;
	uint64_t evictions;
};
struct wk_cache;
/* Open (and lock) dir; entries left by an earlier run are kept, leftovers
 * of interrupted fetches removed. FT_ECONFLICT "cache_in_use" when another
 * worker holds it. */
struct wk_cache *wk_cache_new(struct ft_store *st, const char *dir, uint64_t max_bytes,
			      struct ft_err *err);
void wk_cache_free(struct wk_cache *c);
/* The local path of the blob (FILE) or of the folder whose manifest is the
 * blob (DIR) named hex, fetched and checked first when absent; pinned. */
enum ft_rc wk_cache_get(struct wk_cache *c, enum wk_cache_kind k, const char *hex, char *path,
			size_t n, struct ft_err *err);
void wk_cache_unpin(struct wk_cache *c, enum wk_cache_kind k, const char *hex);
uint64_t wk_cache_bytes(const struct wk_cache *c);
void wk_cache_counters_get(const struct wk_cache *c, struct wk_cache_counters *out);

#endif
