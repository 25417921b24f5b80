/*
 * store.c - the worker's side of the content-addressed store (ft/registry.h):
 * put a file, put a folder as a manifest, and materialise a manifest back
 * into a folder (for resume; ft_store_get_dir, registry/src/manifest.c).
 *
 * Manifest (itself a blob):
 *   { "format": "ftplat-manifest-1", "files": [ { "path": "adapter_model.safetensors",
 *     "sha256": "…", "bytes": n }, … ] }   paths relative, no "..", sorted.
 */
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "ft/fs.h"
#include "ft/registry.h"
#include "worker_int.h"

/* Stream a file into the store (ft/registry.h: hashed as it goes, fsynced,
 * renamed; the same content is kept once). */
enum ft_rc wk_store_put_file(struct ft_store *st, const char *path, char hex[65], uint64_t *bytes,
			     struct ft_err *err)
{
	struct ft_store_writer *w = NULL;
	char buf[1 << 16], key[FT_STORE_KEY_MAX];
	ssize_t n;
	int in = open(path, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return ft_failf(err, FT_EIO, NULL, "cannot read \"%s\": %s", path, strerror(errno));
	if (ft_store_writer_new(st, 0, &w, err))
		goto fail;
	while ((n = read(in, buf, sizeof(buf))) > 0)
		if (ft_store_writer_write(w, buf, (size_t)n, err))
			goto fail;
	if (n < 0) {
		ft_failf(err, FT_EIO, NULL, "reading \"%s\": %s", path, strerror(errno));
		goto fail;
	}
	close(in);
	return ft_store_writer_commit(w, hex, key, bytes, err);
fail:
	if (w)
		ft_store_writer_abort(w);
	close(in);
	return err->rc;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* List regular files under dir (relative paths), recursively. */
static enum ft_rc list_files(const char *base, const char *rel, char ***out, size_t *n, size_t *cap,
			     struct ft_err *err)
{
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s%s%s", base, rel[0] ? "/" : "", rel);
	DIR *d = opendir(path);
	if (!d)
		return ft_failf(err, FT_EIO, NULL, "cannot list \"%s\": %s", path, strerror(errno));
	struct dirent *de;
	enum ft_rc rc = FT_OK;
	while ((de = readdir(d)) && !rc) {
		char sub[PATH_MAX], full[PATH_MAX];
		struct stat st;
		if (de->d_name[0] == '.')
			continue;
		snprintf(sub, sizeof(sub), "%s%s%s", rel, rel[0] ? "/" : "", de->d_name);
		snprintf(full, sizeof(full), "%s/%s", base, sub);
		if (lstat(full, &st) != 0)
			continue;
		if (S_ISDIR(st.st_mode)) {
			rc = list_files(base, sub, out, n, cap, err);
		} else if (S_ISREG(st.st_mode)) {
			if (*n == *cap) {
				*cap = *cap ? *cap * 2 : 16;
				*out = realloc(*out, *cap * sizeof(char *));
				FT_ASSERT(*out);
			}
			(*out)[(*n)++] = ft_xstrdup(sub);
		}
	}
	closedir(d);
	return rc;
}

enum ft_rc wk_store_put_dir(struct ft_store *st, const char *dir, char hex[65], uint64_t *total,
			    json_t **files_out, struct ft_err *err)
{
	char **files = NULL;
	size_t n = 0, cap = 0;
	enum ft_rc rc = list_files(dir, "", &files, &n, &cap, err);
	json_t *arr = json_array();
	*total = 0;
	if (rc)
		goto out;
	qsort(files, n, sizeof(char *), cmp_str);
	for (size_t i = 0; i < n; i++) {
		char path[PATH_MAX], fhex[65];
		uint64_t bytes;
		snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
		if ((rc = wk_store_put_file(st, path, fhex, &bytes, err)))
			goto out;
		*total += bytes;
		json_array_append_new(arr, json_pack("{s:s, s:s, s:I}", "path", files[i], "sha256",
						     fhex, "bytes", (json_int_t)bytes));
	}
	json_t *m = json_pack("{s:s, s:O}", "format", "ftplat-manifest-1", "files", arr);
	char mpath[PATH_MAX];
	snprintf(mpath, sizeof(mpath), "%s/.manifest.json", dir);
	if (json_dump_file(m, mpath, JSON_COMPACT | JSON_SORT_KEYS) != 0) {
		rc = ft_failf(err, FT_EIO, NULL, "cannot write %s", mpath);
	} else {
		uint64_t mb;
		rc = wk_store_put_file(st, mpath, hex, &mb, err);
		unlink(mpath);
	}
	json_decref(m);
	if (!rc && files_out)
		*files_out = json_incref(arr);
out:
	json_decref(arr);
	for (size_t i = 0; i < n; i++)
		free(files[i]);
	free(files);
	return rc;
}

/* Unpacking is the registry's (ft_store_get_dir: the manifest read with its
 * path rules, each file checked against its size and SHA-256), shared with
 * the deployment controller and ft-serve. */
enum ft_rc wk_store_get_dir(struct ft_store *st, const char *manifest_hex, const char *dir,
			    struct ft_err *err)
{
	return ft_store_get_dir(st, manifest_hex, dir, err);
}
