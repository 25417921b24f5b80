/*
 * manifest.c - stored folders (ft/registry.h): the manifest's reader and
 * the unpacking of a folder out of the store, which the worker (a job's
 * inputs), the scheduler's deployment controller (vLLM's adapters) and
 * ft-serve (adapters named "store:sha256:…") all use.
 */
#include <fcntl.h>
#include <unistd.h>

#include <jansson.h>

#include "ft/fs.h"
#include "ft/registry.h"

static bool hex64(const char *s)
{
	if (!s || strlen(s) != FT_SHA256_HEX_LEN)
		return false;
	for (; *s; s++)
		if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
			return false;
	return true;
}

/* Relative, no empty / "." / ".." segment, printable, at most 1024 bytes. */
static bool safe_rel(const char *p)
{
	size_t n = strlen(p);
	if (!n || n > 1024 || p[0] == '/' || p[n - 1] == '/')
		return false;
	for (const char *s = p; *s; s++) {
		if ((unsigned char)*s < 0x20 || *s == 0x7f || *s == '\\')
			return false;
		bool start = s == p || s[-1] == '/';
		if (start && (s[0] == '/' || (s[0] == '.' && (s[1] == '/' || !s[1])) ||
			      (s[0] == '.' && s[1] == '.' && (s[2] == '/' || !s[2]))))
			return false;
	}
	return true;
}

void ft_manifest_release(struct ft_manifest *m)
{
	for (size_t i = 0; m->files && i < m->n; i++)
		free(m->files[i].path);
	free(m->files);
	m->files = NULL;
	m->n = 0;
}

enum ft_rc ft_manifest_parse(const char *text, size_t len, struct ft_manifest *out,
			     struct ft_err *err)
{
	memset(out, 0, sizeof(*out));
	if (len > FT_MANIFEST_MAX_BYTES)
		return ft_failf(err, FT_EFORMAT, "bad_manifest", "a manifest is at most %u bytes",
				FT_MANIFEST_MAX_BYTES);
	json_error_t je;
	json_t *m = json_loadb(text ? text : "", len, JSON_REJECT_DUPLICATES, &je);
	if (!m)
		return ft_failf(err, FT_EFORMAT, "bad_manifest", "the manifest is not JSON: %s",
				je.text);
	const char *fmt = json_string_value(json_object_get(m, "format"));
	json_t *files = json_object_get(m, "files");
	enum ft_rc rc = FT_OK;
	if (!fmt || strcmp(fmt, "ftplat-manifest-1") != 0 || !json_is_array(files) ||
	    json_array_size(files) > FT_MANIFEST_MAX_FILES) {
		rc = ft_failf(err, FT_EFORMAT, "bad_manifest",
			      "not an ftplat-manifest-1 with a list of at most %d files",
			      FT_MANIFEST_MAX_FILES);
		goto out;
	}
	out->files = calloc(json_array_size(files) + 1, sizeof(*out->files));
	FT_ASSERT(out->files != NULL);
	size_t i;
	json_t *f;
	json_array_foreach(files, i, f)
	{
		const char *p = json_string_value(json_object_get(f, "path"));
		const char *h = json_string_value(json_object_get(f, "sha256"));
		json_t *b = json_object_get(f, "bytes");
		if (!p || !safe_rel(p) || !hex64(h) || !json_is_integer(b) ||
		    json_integer_value(b) < 0) {
			rc = ft_failf(err, FT_EFORMAT, "bad_manifest",
				      "manifest entry %zu: needs a relative \"path\" (no \"..\"), "
				      "a 64-hex \"sha256\" and \"bytes\" >= 0",
				      i);
			ft_manifest_release(out);
			goto out;
		}
		out->files[i].path = ft_xstrdup(p);
		memcpy(out->files[i].sha256, h, FT_SHA256_HEX_LEN + 1);
		out->files[i].bytes = (uint64_t)json_integer_value(b);
		out->n = i + 1;
	}
out:
	json_decref(m);
	return rc;
}

/* The whole blob hex (at most max bytes) into b. */
static enum ft_rc read_blob(struct ft_store *s, const char *hex, struct ft_buf *b,
			    struct ft_err *err)
{
	char key[FT_STORE_KEY_MAX], buf[65536];
	ft_store_key_for(hex, key);
	int fd = ft_store_open_read(s, key, NULL, err);
	if (fd < 0)
		return err->rc;
	ssize_t n;
	enum ft_rc rc = FT_OK;
	while (!rc && (n = read(fd, buf, sizeof(buf))) > 0)
		if (ft_buf_add(b, buf, (size_t)n))
			rc = ft_failf(err, FT_EFORMAT, "bad_manifest",
				      "manifest %.12s is too large", hex);
	close(fd);
	return rc;
}

/* Copy blob f->sha256 into path, checking its size and digest. */
static enum ft_rc copy_file(struct ft_store *s, const struct ft_manifest_file *f, const char *path,
			    struct ft_err *err)
{
	char key[FT_STORE_KEY_MAX], buf[65536], hex[FT_SHA256_HEX_LEN + 1];
	unsigned char d[FT_SHA256_LEN];
	struct ft_sha256 h;
	uint64_t total = 0;
	ft_store_key_for(f->sha256, key);
	int in = ft_store_open_read(s, key, NULL, err);
	if (in < 0)
		return err->rc;
	int out = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (out < 0) {
		close(in);
		return ft_failf(err, FT_EIO, NULL, "cannot write %s: %s", path, strerror(errno));
	}
	enum ft_rc rc = ft_sha256_init(&h);
	ssize_t n = 0;
	while (!rc && (n = read(in, buf, sizeof(buf))) > 0) {
		ft_sha256_update(&h, buf, (size_t)n);
		total += (uint64_t)n;
		if (write(out, buf, (size_t)n) != n)
			rc = ft_failf(err, FT_EIO, NULL, "writing %s: %s", path, strerror(errno));
	}
	if (!rc && n < 0)
		rc = ft_failf(err, FT_EIO, NULL, "reading blob %.12s: %s", f->sha256,
			      strerror(errno));
	if (!rc) {
		ft_sha256_final(&h, d);
		ft_hex_encode(d, sizeof(d), hex);
		if (total != f->bytes || strcmp(hex, f->sha256) != 0)
			rc = ft_failf(err, FT_EFORMAT, "blob_corrupt",
				      "file \"%s\" of the folder does not match its manifest",
				      f->path);
	} else {
		ft_sha256_release(&h);
	}
	close(in);
	if (close(out) != 0 && !rc)
		rc = ft_failf(err, FT_EIO, NULL, "writing %s: %s", path, strerror(errno));
	return rc;
}

enum ft_rc ft_store_get_dir(struct ft_store *s, const char *manifest_hex, const char *dir,
			    struct ft_err *err)
{
	if (!hex64(manifest_hex))
		return ft_failf(err, FT_EINVAL, "bad_manifest", "a manifest is named by 64 hex");
	struct ft_buf b = FT_BUF_INIT(FT_MANIFEST_MAX_BYTES);
	struct ft_manifest m;
	enum ft_rc rc = read_blob(s, manifest_hex, &b, err);
	if (!rc)
		rc = ft_manifest_parse(b.ptr, b.len, &m, err);
	ft_buf_release(&b);
	if (rc)
		return rc;
	if ((rc = ft_mkdir_p(dir, err)))
		goto out;
	for (size_t i = 0; i < m.n && !rc; i++) {
		char path[4096], sub[4096];
		snprintf(path, sizeof(path), "%s/%s", dir, m.files[i].path);
		ft_strlcpy(sub, path, sizeof(sub));
		char *slash = strrchr(sub, '/');
		if (slash && slash > sub + strlen(dir)) {
			*slash = '\0';
			rc = ft_mkdir_p(sub, err);
		}
		if (!rc)
			rc = copy_file(s, &m.files[i], path, err);
	}
out:
	ft_manifest_release(&m);
	return rc;
}
