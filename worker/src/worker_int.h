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
const char *wk_store_blob_path(const char *root, const char *hex, char *out, size_t n);

#endif
