/*
 * store.c - the worker's side of the content-addressed store (ft/registry.h):
 * put a file, put a folder as a manifest, and materialise a manifest back
 * into a folder (for resume).
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

#include "ft/registry.h"
#include "worker_int.h"

/* The worker's local path of a blob (local-directory store only: jobs read
 * their training files in place). */
static void blob_path(const char *root, const char *hex, char *out, size_t n)
{
	char key[FT_STORE_KEY_MAX];
	ft_store_key_for(hex, key);
	snprintf(out, n, "%s/%s", root, key);
}

static enum ft_rc mkdirs(const char *path, struct ft_err *err)
{
	char tmp[PATH_MAX];
	ft_strlcpy(tmp, path, sizeof(tmp));
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
			return ft_failf(err, FT_EIO, NULL, "cannot create \"%s\": %s", tmp,
					strerror(errno));
		*p = '/';
	}
	if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
		return ft_failf(err, FT_EIO, NULL, "cannot create \"%s\": %s", tmp,
				strerror(errno));
	return FT_OK;
}

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
			    struct ft_err *err)
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
out:
	json_decref(arr);
	for (size_t i = 0; i < n; i++)
		free(files[i]);
	free(files);
	return rc;
}

static bool safe_rel(const char *p)
{
	if (!*p || p[0] == '/')
		return false;
	for (const char *s = p; *s; s++)
		if ((s == p || s[-1] == '/') && s[0] == '.' && s[1] == '.' &&
		    (s[2] == '/' || !s[2]))
			return false;
	return true;
}

/* Copy blob hex out of the store into a file. */
static enum ft_rc copy_blob(struct ft_store *st, const char *hex, const char *to,
			    struct ft_err *err)
{
	char key[FT_STORE_KEY_MAX], buf[1 << 16];
	uint64_t size;
	ssize_t n;
	ft_store_key_for(hex, key);
	int in = ft_store_open_read(st, key, &size, err);
	if (in < 0)
		return err->rc;
	int out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (out < 0) {
		close(in);
		return ft_failf(err, FT_EIO, NULL, "cannot write %s: %s", to, strerror(errno));
	}
	while ((n = read(in, buf, sizeof(buf))) > 0)
		if (write(out, buf, (size_t)n) != n) {
			n = -1;
			break;
		}
	close(in);
	close(out);
	return n < 0 ? ft_failf(err, FT_EIO, NULL, "copying blob %s to %s failed", hex, to) : FT_OK;
}

enum ft_rc wk_store_get_dir(struct ft_store *st, const char *manifest_hex, const char *dir,
			    struct ft_err *err)
{
	char mpath[PATH_MAX];
	json_error_t je;
	enum ft_rc rc = mkdirs(dir, err);
	if (rc)
		return rc;
	snprintf(mpath, sizeof(mpath), "%s/.manifest.json", dir);
	if ((rc = copy_blob(st, manifest_hex, mpath, err)))
		return rc;
	json_t *m = json_load_file(mpath, 0, &je);
	unlink(mpath);
	if (!m)
		return ft_failf(err, FT_EFORMAT, NULL, "manifest %s: %s", manifest_hex, je.text);
	size_t i;
	json_t *f;
	json_array_foreach(json_object_get(m, "files"), i, f)
	{
		const char *p = json_string_value(json_object_get(f, "path"));
		const char *h = json_string_value(json_object_get(f, "sha256"));
		char to[PATH_MAX], sub[PATH_MAX];
		if (!p || !h || !safe_rel(p) || strlen(h) != 64) {
			rc = ft_failf(err, FT_EFORMAT, NULL, "manifest %s: bad entry %zu",
				      manifest_hex, i);
			break;
		}
		snprintf(to, sizeof(to), "%s/%s", dir, p);
		ft_strlcpy(sub, to, sizeof(sub));
		char *slash = strrchr(sub, '/');
		if (slash) {
			*slash = '\0';
			if ((rc = mkdirs(sub, err)))
				break;
		}
		if ((rc = copy_blob(st, h, to, err)))
			break;
	}
	json_decref(m);
	return rc;
}

const char *wk_store_blob_path(const char *root, const char *hex, char *out, size_t n)
{
	blob_path(root, hex, out, n);
	return out;
}
