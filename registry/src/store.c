/*
 * store.c - the backend-independent half of the artifact store: hashing
 * while writing, the size cap and the sha256/ab/cdef... keys.
 */
#include <fcntl.h>
#include <unistd.h>

#include "ft/registry.h"

struct ft_store_writer {
	struct ft_store *store;
	void *tmp;
	struct ft_sha256 sha;
	uint64_t bytes;
	uint64_t max;
};

void ft_store_free(struct ft_store *s)
{
	if (s)
		s->ops->free(s);
}

void ft_store_key_for(const char *sha_hex, char key[FT_STORE_KEY_MAX])
{
	snprintf(key, FT_STORE_KEY_MAX, "sha256/%.2s/%s", sha_hex, sha_hex + 2);
}

bool ft_store_key_valid(const char *key)
{
	if (strncmp(key, "sha256/", 7) != 0 || strlen(key) != 7 + 2 + 1 + 62 || key[9] != '/')
		return false;
	for (const char *p = key + 7; *p; p++) {
		if (p == key + 9)
			continue;
		if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
			return false;
	}
	return true;
}

enum ft_rc ft_store_writer_new(struct ft_store *s, uint64_t max_bytes, struct ft_store_writer **out,
			       struct ft_err *err)
{
	struct ft_store_writer *w = calloc(1, sizeof(*w));
	if (!w)
		return ft_failf(err, FT_ENOMEM, NULL, "out of memory starting an upload");
	w->store = s;
	w->max = max_bytes;
	if (ft_sha256_init(&w->sha)) {
		free(w);
		return ft_failf(err, FT_EINTERNAL, NULL, "cannot start SHA-256");
	}
	enum ft_rc rc = s->ops->tmp_open(s, &w->tmp, err);
	if (rc) {
		ft_sha256_release(&w->sha);
		free(w);
		return rc;
	}
	*out = w;
	return FT_OK;
}

enum ft_rc ft_store_writer_write(struct ft_store_writer *w, const void *p, size_t n,
				 struct ft_err *err)
{
	if (w->max && (n > w->max || w->bytes > w->max - n))
		return ft_failf(err, FT_ELIMIT, "file_too_large",
				"file is larger than the limit of %" PRIu64 " bytes", w->max);
	enum ft_rc rc = w->store->ops->tmp_write(w->tmp, p, n, err);
	if (rc)
		return rc;
	ft_sha256_update(&w->sha, p, n);
	w->bytes += n;
	return FT_OK;
}

uint64_t ft_store_writer_bytes(const struct ft_store_writer *w)
{
	return w->bytes;
}

enum ft_rc ft_store_writer_commit(struct ft_store_writer *w, char sha_hex[FT_SHA256_HEX_LEN + 1],
				  char key[FT_STORE_KEY_MAX], uint64_t *bytes, struct ft_err *err)
{
	unsigned char d[FT_SHA256_LEN];
	ft_sha256_final(&w->sha, d);
	ft_hex_encode(d, sizeof(d), sha_hex);
	ft_store_key_for(sha_hex, key);
	if (bytes)
		*bytes = w->bytes;
	enum ft_rc rc = w->store->ops->tmp_commit(w->store, w->tmp, key, err);
	free(w);
	return rc;
}

void ft_store_writer_abort(struct ft_store_writer *w)
{
	if (!w)
		return;
	ft_sha256_release(&w->sha);
	w->store->ops->tmp_abort(w->tmp);
	free(w);
}

int ft_store_open_read(struct ft_store *s, const char *key, uint64_t *size, struct ft_err *err)
{
	if (!ft_store_key_valid(key)) {
		ft_failf(err, FT_EINVAL, "invalid_key", "\"%s\" is not a store key", key);
		return -1;
	}
	return s->ops->open_read(s, key, size, err);
}

int ft_store_sweep_tmp(struct ft_store *s, long max_age_s)
{
	return s->ops->sweep_tmp(s, max_age_s);
}

enum ft_rc ft_store_put_file(struct ft_store *s, const char *path,
			     char sha_hex[FT_SHA256_HEX_LEN + 1], char key[FT_STORE_KEY_MAX],
			     uint64_t *bytes, struct ft_err *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return ft_failf(err, FT_EIO, "io_error", "cannot open \"%s\": %s", path,
				strerror(errno));
	struct ft_store_writer *w;
	enum ft_rc rc = ft_store_writer_new(s, 0, &w, err);
	if (rc)
		goto close_fd;
	char buf[65536];
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = ft_failf(err, FT_EIO, "io_error", "reading \"%s\": %s", path,
				      strerror(errno));
			goto abort_writer;
		}
		if (n == 0)
			break;
		rc = ft_store_writer_write(w, buf, (size_t)n, err);
		if (rc)
			goto abort_writer;
	}
	rc = ft_store_writer_commit(w, sha_hex, key, bytes, err);
	goto close_fd;
abort_writer:
	ft_store_writer_abort(w);
close_fd:
	close(fd);
	return rc;
}
