/*
 * store_local.c - the local-directory backend: a folder on one machine or
 * on a shared filesystem. Temporaries live in <root>/tmp/ on the same
 * filesystem as the blobs, so commit is a rename(2), made durable by
 * fsyncing the file and then the folders it lands in.
 */
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ft/registry.h"

struct local_store {
	struct ft_store base;
	char root[PATH_MAX - 128];
};

struct local_tmp {
	int fd;
	char path[PATH_MAX];
};

static enum ft_rc mkdir_p(const char *path, struct ft_err *err)
{
	char p[PATH_MAX];
	if (ft_strlcpy(p, path, sizeof(p)) >= sizeof(p))
		return ft_failf(err, FT_EINVAL, NULL, "path too long: \"%s\"", path);
	for (char *s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = 0;
		if (mkdir(p, 0755) && errno != EEXIST)
			return ft_failf(err, FT_EIO, "io_error", "cannot create \"%s\": %s", p,
					strerror(errno));
		*s = '/';
	}
	if (mkdir(p, 0755) && errno != EEXIST)
		return ft_failf(err, FT_EIO, "io_error", "cannot create \"%s\": %s", p,
				strerror(errno));
	return FT_OK;
}

static void fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		(void)fsync(fd);
		close(fd);
	}
}

static enum ft_rc local_tmp_open(struct ft_store *s, void **out, struct ft_err *err)
{
	struct local_store *ls = (struct local_store *)s;
	struct local_tmp *t = calloc(1, sizeof(*t));
	if (!t)
		return ft_failf(err, FT_ENOMEM, NULL, "out of memory");
	unsigned char rnd[12];
	char hex[25];
	ft_random_bytes(rnd, sizeof(rnd));
	ft_hex_encode(rnd, sizeof(rnd), hex);
	snprintf(t->path, sizeof(t->path), "%s/tmp/%s.part", ls->root, hex);
	t->fd = open(t->path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (t->fd < 0) {
		enum ft_rc rc = ft_failf(err, FT_EIO, "io_error", "cannot create \"%s\": %s",
					 t->path, strerror(errno));
		free(t);
		return rc;
	}
	*out = t;
	return FT_OK;
}

static enum ft_rc local_tmp_write(void *tmp, const void *p, size_t n, struct ft_err *err)
{
	struct local_tmp *t = tmp;
	const char *c = p;
	while (n) {
		ssize_t w = write(t->fd, c, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return ft_failf(err, FT_EIO, "io_error", "writing \"%s\": %s", t->path,
					strerror(errno));
		c += w;
		n -= (size_t)w;
	}
	return FT_OK;
}

static void local_tmp_abort(void *tmp)
{
	struct local_tmp *t = tmp;
	if (!t)
		return;
	close(t->fd);
	unlink(t->path);
	free(t);
}

static enum ft_rc local_tmp_commit(struct ft_store *s, void *tmp, const char *key,
				   struct ft_err *err)
{
	struct local_store *ls = (struct local_store *)s;
	struct local_tmp *t = tmp;
	char dst[PATH_MAX], dir[PATH_MAX];
	enum ft_rc rc = FT_OK;
	if (fsync(t->fd)) {
		rc = ft_failf(err, FT_EIO, "io_error", "fsync \"%s\": %s", t->path,
			      strerror(errno));
		goto abort_tmp;
	}
	snprintf(dst, sizeof(dst), "%s/%s", ls->root, key);
	snprintf(dir, sizeof(dir), "%s/%.9s", ls->root, key); /* root/sha256/ab */
	rc = mkdir_p(dir, err);
	if (rc)
		goto abort_tmp;
	struct stat st;
	if (stat(dst, &st) == 0) /* same content already stored */
		goto abort_tmp;
	if (rename(t->path, dst)) {
		rc = ft_failf(err, FT_EIO, "io_error", "rename to \"%s\": %s", dst,
			      strerror(errno));
		goto abort_tmp;
	}
	fsync_dir(dir);
	close(t->fd);
	free(t);
	return FT_OK;
abort_tmp:
	local_tmp_abort(t);
	return rc;
}

static int local_open_read(struct ft_store *s, const char *key, uint64_t *size, struct ft_err *err)
{
	struct local_store *ls = (struct local_store *)s;
	char path[PATH_MAX];
	struct stat st;
	snprintf(path, sizeof(path), "%s/%s", ls->root, key);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		ft_failf(err, errno == ENOENT ? FT_ENOTFOUND : FT_EIO, "blob_missing",
			 "blob \"%s\" is not in the store: %s", key, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st)) {
		ft_failf(err, FT_EIO, "io_error", "stat \"%s\": %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	if (size)
		*size = (uint64_t)st.st_size;
	return fd;
}

static int local_sweep_tmp(struct ft_store *s, long max_age_s)
{
	struct local_store *ls = (struct local_store *)s;
	char dir[PATH_MAX], path[PATH_MAX];
	snprintf(dir, sizeof(dir), "%s/tmp", ls->root);
	DIR *d = opendir(dir);
	if (!d)
		return 0;
	int n = 0;
	time_t now = time(NULL);
	struct dirent *e;
	while ((e = readdir(d))) {
		size_t len = strlen(e->d_name);
		struct stat st;
		if (len < 6 || strcmp(e->d_name + len - 5, ".part") != 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		if (stat(path, &st) == 0 && now - st.st_mtime >= max_age_s && unlink(path) == 0)
			n++;
	}
	closedir(d);
	return n;
}

static void local_free(struct ft_store *s)
{
	free(s);
}

static const struct ft_store_ops local_ops = {
	.name = "local",
	.tmp_open = local_tmp_open,
	.tmp_write = local_tmp_write,
	.tmp_commit = local_tmp_commit,
	.tmp_abort = local_tmp_abort,
	.open_read = local_open_read,
	.sweep_tmp = local_sweep_tmp,
	.free = local_free,
};

struct ft_store *ft_store_local_new(const char *dir, struct ft_err *err)
{
	struct local_store *ls = calloc(1, sizeof(*ls));
	char tmp[PATH_MAX];
	if (!ls) {
		ft_failf(err, FT_ENOMEM, NULL, "out of memory");
		return NULL;
	}
	ls->base.ops = &local_ops;
	if (!dir || !*dir || ft_strlcpy(ls->root, dir, sizeof(ls->root)) >= sizeof(ls->root)) {
		ft_failf(err, FT_EINVAL, "invalid_config", "store_dir is empty or too long");
		free(ls);
		return NULL;
	}
	snprintf(tmp, sizeof(tmp), "%s/tmp", ls->root);
	if (mkdir_p(tmp, err)) {
		free(ls);
		return NULL;
	}
	snprintf(tmp, sizeof(tmp), "%s/sha256", ls->root);
	if (mkdir_p(tmp, err)) {
		free(ls);
		return NULL;
	}
	return &ls->base;
}
