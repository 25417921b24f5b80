/*
 * store.c - the worker's side of the content-addressed store: put a file
 * (hash while copying to a temp name in the store, fsync, rename to
 * sha256/ab/cdef…), put a folder as a manifest, and materialise a manifest
 * back into a folder (for resume).
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

#include "worker_int.h"

static void blob_path(const char *root, const char *hex, char *out, size_t n)
{
	snprintf(out, n, "%s/sha256/%.2s/%s", root, hex, hex + 2);
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

enum ft_rc wk_store_put_file(const char *root, const char *path, char hex[65], uint64_t *bytes,
			     struct ft_err *err)
{
	char tmpdir[PATH_MAX], tmp[PATH_MAX], final[PATH_MAX], dir[PATH_MAX];
	unsigned char d[32], buf[1 << 16];
	struct ft_sha256 h;
	int in = -1, out = -1;
	enum ft_rc rc = FT_OK;
	ssize_t n;

	*bytes = 0;
	snprintf(tmpdir, sizeof(tmpdir), "%s/tmp", root);
	if (mkdirs(tmpdir, err))
		return err->rc;
	snprintf(tmp, sizeof(tmp), "%s/put-XXXXXX", tmpdir);
	in = open(path, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return ft_failf(err, FT_EIO, NULL, "cannot read \"%s\": %s", path, strerror(errno));
	out = mkstemp(tmp);
	if (out < 0) {
		rc = ft_failf(err, FT_EIO, NULL, "cannot create a temp file in %s: %s", tmpdir,
			      strerror(errno));
		goto close_in;
	}
	if (ft_sha256_init(&h)) {
		rc = ft_failf(err, FT_ENOMEM, NULL, "out of memory");
		goto close_out;
	}
	while ((n = read(in, buf, sizeof(buf))) > 0) {
		ft_sha256_update(&h, buf, (size_t)n);
		for (ssize_t off = 0; off < n;) {
			ssize_t w = write(out, buf + off, (size_t)(n - off));
			if (w < 0) {
				rc = ft_failf(err, FT_EIO, NULL, "writing to the store: %s",
					      strerror(errno));
				ft_sha256_release(&h);
				goto close_out;
			}
			off += w;
		}
		*bytes += (uint64_t)n;
	}
	ft_sha256_final(&h, d);
	if (n < 0 || fsync(out) != 0) {
		rc = ft_failf(err, FT_EIO, NULL, "reading \"%s\" or syncing: %s", path,
			      strerror(errno));
		goto close_out;
	}
	ft_hex_encode(d, 32, hex);
	blob_path(root, hex, final, sizeof(final));
	snprintf(dir, sizeof(dir), "%s/sha256/%.2s", root, hex);
	if (mkdirs(dir, err)) {
		rc = err->rc;
		goto close_out;
	}
	if (rename(tmp, final) != 0) {
		rc = ft_failf(err, FT_EIO, NULL, "cannot store \"%s\": %s", path, strerror(errno));
		goto close_out;
	}
	tmp[0] = '\0';
close_out:
	close(out);
	if (tmp[0])
		unlink(tmp);
close_in:
	close(in);
	return rc;
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

enum ft_rc wk_store_put_dir(const char *root, const char *dir, char hex[65], uint64_t *total,
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
		if ((rc = wk_store_put_file(root, path, fhex, &bytes, err)))
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
		rc = wk_store_put_file(root, mpath, hex, &mb, err);
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

static enum ft_rc copy_file(const char *from, const char *to, struct ft_err *err)
{
	int in = open(from, O_RDONLY | O_CLOEXEC), out;
	char buf[1 << 16];
	ssize_t n;
	if (in < 0)
		return ft_failf(err, FT_EIO, NULL, "cannot read blob %s: %s", from,
				strerror(errno));
	out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
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
	return n < 0 ? ft_failf(err, FT_EIO, NULL, "copying %s failed", from) : FT_OK;
}

enum ft_rc wk_store_get_dir(const char *root, const char *manifest_hex, const char *dir,
			    struct ft_err *err)
{
	char mpath[PATH_MAX];
	json_error_t je;
	blob_path(root, manifest_hex, mpath, sizeof(mpath));
	json_t *m = json_load_file(mpath, 0, &je);
	if (!m)
		return ft_failf(err, FT_EFORMAT, NULL, "manifest %s: %s", manifest_hex, je.text);
	enum ft_rc rc = mkdirs(dir, err);
	size_t i;
	json_t *f;
	json_array_foreach(json_object_get(m, "files"), i, f)
	{
		const char *p = json_string_value(json_object_get(f, "path"));
		const char *h = json_string_value(json_object_get(f, "sha256"));
		char from[PATH_MAX], to[PATH_MAX], sub[PATH_MAX];
		if (rc)
			break;
		if (!p || !h || !safe_rel(p) || strlen(h) != 64) {
			rc = ft_failf(err, FT_EFORMAT, NULL, "manifest %s: bad entry %zu",
				      manifest_hex, i);
			break;
		}
		blob_path(root, h, from, sizeof(from));
		snprintf(to, sizeof(to), "%s/%s", dir, p);
		ft_strlcpy(sub, to, sizeof(sub));
		char *slash = strrchr(sub, '/');
		if (slash) {
			*slash = '\0';
			if ((rc = mkdirs(sub, err)))
				break;
		}
		rc = copy_file(from, to, err);
	}
	json_decref(m);
	return rc;
}

const char *wk_store_blob_path(const char *root, const char *hex, char *out, size_t n)
{
	blob_path(root, hex, out, n);
	return out;
}
