/*
 * store.c - the backend-independent half of the artifact store: hashing
 * while writing, the size cap, the sha256/ab/cdef... keys, and choosing a
 * backend from the configuration.
 */
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "registry_int.h"

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

const char *ft_store_backend(const struct ft_store *s)
{
	return s->ops->name;
}

void ft_store_counters_get(const struct ft_store *s, struct ft_store_counters *out)
{
	out->requests = __atomic_load_n(&s->counters.requests, __ATOMIC_RELAXED);
	out->retries = __atomic_load_n(&s->counters.retries, __ATOMIC_RELAXED);
	out->parts = __atomic_load_n(&s->counters.parts, __ATOMIC_RELAXED);
	out->resumes = __atomic_load_n(&s->counters.resumes, __ATOMIC_RELAXED);
}

static struct ft_store *open_local(const struct ft_config *cfg, struct ft_err *err)
{
	return ft_store_local_new(ft_config_str(cfg, "store_dir"), err);
}

static struct ft_store *open_s3(const struct ft_config *cfg, struct ft_err *err)
{
	char spool[PATH_MAX];
	const char *dir = ft_config_str(cfg, "store_dir");
	snprintf(spool, sizeof(spool), "%s/tmp", dir ? dir : "");
	struct ft_store_s3_opts o = {
		.endpoint = ft_config_str(cfg, "s3_endpoint"),
		.bucket = ft_config_str(cfg, "s3_bucket"),
		.region = ft_config_str(cfg, "s3_region"),
		.access_key = ft_config_str(cfg, "s3_access_key"),
		.secret_key = ft_config_str(cfg, "s3_secret_key"),
		.prefix = ft_config_str(cfg, "s3_prefix"),
		.spool_dir = dir && *dir ? spool : NULL,
		.multipart_bytes = (uint64_t)ft_config_int(cfg, "s3_multipart_mb") << 20,
		.attempts = (int)ft_config_int(cfg, "s3_attempts"),
		.backoff_ms = ft_config_int(cfg, "s3_backoff_ms"),
		.sweep_min_age_s = ft_config_int(cfg, "s3_sweep_min_age_s"),
	};
	return ft_store_s3_new(&o, err);
}

/* store_backend values. */
static const struct {
	const char *name;
	struct ft_store *(*open)(const struct ft_config *cfg, struct ft_err *err);
} backends[] = {
	{ "local", open_local },
	{ "s3", open_s3 },
};

struct ft_store *ft_store_open_config(const struct ft_config *cfg, struct ft_err *err)
{
	const char *b = ft_config_str(cfg, "store_backend");
	for (size_t i = 0; i < FT_ARRAY_LEN(backends); i++)
		if (b && strcmp(b, backends[i].name) == 0)
			return backends[i].open(cfg, err);
	ft_failf(err, FT_EINVAL, "invalid_config",
		 "store_backend must be \"local\" or \"s3\" (got \"%s\")", b ? b : "");
	return NULL;
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

enum ft_rc ft_store_list(struct ft_store *s,
			 int (*fn)(const char *hex, uint64_t bytes, int64_t mtime_s, void *ud),
			 void *ud, struct ft_err *err)
{
	if (!s->ops->list)
		return ft_failf(err, FT_EUNAVAIL, "unsupported",
				"the %s store cannot list its blobs", s->ops->name);
	return s->ops->list(s, fn, ud, err);
}

enum ft_rc ft_store_remove_stale(struct ft_store *s, const char *key, long min_age_s, bool *removed,
				 uint64_t *bytes, struct ft_err *err)
{
	*removed = false;
	if (!ft_store_key_valid(key))
		return ft_failf(err, FT_EINVAL, "invalid_key", "\"%s\" is not a store key", key);
	if (!s->ops->remove_stale)
		return ft_failf(err, FT_EUNAVAIL, "unsupported", "the %s store cannot remove blobs",
				s->ops->name);
	return s->ops->remove_stale(s, key, min_age_s, removed, bytes, err);
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
