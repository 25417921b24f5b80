/*
 * store_local.c - the local-directory backend: a folder on one machine or
 * on a shared filesystem. Temporaries live in <root>/tmp/ on the same
 * filesystem as the blobs, so commit is a rename(2), made durable by
 * fsyncing the file and then the folders it lands in. A writer holds an
 * exclusive flock(2) on its temporary until it commits or aborts, which is
 * how a sweep knows the temporaries whose writer died (any process, any
 * age) from those still being written (flock works across processes on
 * one host and, through the lock manager, on NFS).
 */
#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ft/fs.h"
#include "registry_int.h"

struct local_store {
	struct ft_store base;
	char root[PATH_MAX - 128];
};

struct local_tmp {
	int fd;
	char path[PATH_MAX];
};

/* A temporary is born as <hex>.new, locked (flock, exclusive) and only then
 * renamed to <hex>.part: every .part file is locked by its writer for as
 * long as the writer lives (the kernel drops the lock when the process
 * dies, however it dies), so a sweep can tell an abandoned temporary from
 * a live one at any age. */
static enum ft_rc local_tmp_open(struct ft_store *s, void **out, struct ft_err *err)
{
	struct local_store *ls = (struct local_store *)s;
	struct local_tmp *t = calloc(1, sizeof(*t));
	if (!t)
		return ft_failf(err, FT_ENOMEM, NULL, "out of memory");
	unsigned char rnd[12];
	char hex[25], born[PATH_MAX];
	ft_random_bytes(rnd, sizeof(rnd));
	ft_hex_encode(rnd, sizeof(rnd), hex);
	snprintf(born, sizeof(born), "%s/tmp/%s.new", ls->root, hex);
	snprintf(t->path, sizeof(t->path), "%s/tmp/%s.part", ls->root, hex);
	t->fd = open(born, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (t->fd < 0) {
		enum ft_rc rc = ft_failf(err, FT_EIO, "io_error", "cannot create \"%s\": %s", born,
					 strerror(errno));
		free(t);
		return rc;
	}
	if (flock(t->fd, LOCK_EX | LOCK_NB) || rename(born, t->path)) {
		enum ft_rc rc = ft_failf(err, FT_EIO, "io_error", "cannot start \"%s\": %s",
					 t->path, strerror(errno));
		close(t->fd);
		unlink(born);
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
	unlink(t->path); /* while still locked: no sweep races the unlink */
	close(t->fd);
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
	rc = ft_mkdir_p(dir, err);
	if (rc)
		goto abort_tmp;
	/* Same content already stored: keep it, and refresh its time so that a
	 * collection running now keeps it too (local_remove_stale). If the blob
	 * was just moved aside by one, the refresh fails and this commit writes
	 * it again. */
	if (utimensat(AT_FDCWD, dst, NULL, 0) == 0)
		goto abort_tmp;
	if (rename(t->path, dst)) {
		rc = ft_failf(err, FT_EIO, "io_error", "rename to \"%s\": %s", dst,
			      strerror(errno));
		goto abort_tmp;
	}
	ft_fsync_dir(dir);
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

/* Remove name (in dir) if no writer holds its lock and it is at least
 * min_age_s old. The lock is tried on an fd of our own; a writer that
 * commits meanwhile renames the file away, so the name is unlinked only
 * while it still names the inode we locked. */
static bool sweep_one(const char *dir, const char *name, long min_age_s, time_t now)
{
	char path[PATH_MAX];
	struct stat mine, named;
	bool removed = false;
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return false;
	if (flock(fd, LOCK_EX | LOCK_NB) == 0 && fstat(fd, &mine) == 0 &&
	    now - mine.st_mtime >= min_age_s && lstat(path, &named) == 0 &&
	    named.st_ino == mine.st_ino && named.st_dev == mine.st_dev)
		removed = unlink(path) == 0;
	close(fd);
	return removed;
}

static int local_sweep_tmp(struct ft_store *s, long max_age_s)
{
	struct local_store *ls = (struct local_store *)s;
	char dir[PATH_MAX];
	snprintf(dir, sizeof(dir), "%s/tmp", ls->root);
	DIR *d = opendir(dir);
	if (!d)
		return 0;
	int n = 0;
	time_t now = time(NULL);
	struct dirent *e;
	while ((e = readdir(d))) {
		size_t len = strlen(e->d_name);
		if (len > 5 && strcmp(e->d_name + len - 5, ".part") == 0)
			n += sweep_one(dir, e->d_name, max_age_s, now);
		/* a .new file is unlocked for an instant after its birth: only
		 * one that stayed so for a minute is abandoned */
		else if (len > 4 && strcmp(e->d_name + len - 4, ".new") == 0)
			n += sweep_one(dir, e->d_name, FT_MAX(max_age_s, 60L), now);
	}
	closedir(d);
	return n;
}

static void local_free(struct ft_store *s)
{
	free(s);
}

static enum ft_rc local_list(struct ft_store *s,
			     int (*fn)(const char *hex, uint64_t bytes, int64_t mtime_s, void *ud),
			     void *ud, struct ft_err *err)
{
	struct local_store *ls = (struct local_store *)s;
	char dir[PATH_MAX], sub[PATH_MAX + 8], path[PATH_MAX + 80], hex[65];
	snprintf(dir, sizeof(dir), "%s/sha256", ls->root);
	DIR *d = opendir(dir);
	if (!d)
		return ft_failf(err, FT_EIO, "io_error", "cannot list \"%s\": %s", dir,
				strerror(errno));
	struct dirent *e;
	int stop = 0;
	while (!stop && (e = readdir(d))) {
		if (strlen(e->d_name) != 2 || !isxdigit((unsigned char)e->d_name[0]) ||
		    !isxdigit((unsigned char)e->d_name[1]))
			continue;
		snprintf(sub, sizeof(sub), "%s/%s", dir, e->d_name);
		DIR *d2 = opendir(sub);
		if (!d2)
			continue;
		struct dirent *f;
		while (!stop && (f = readdir(d2))) {
			struct stat st;
			if (strlen(f->d_name) != 62)
				continue;
			snprintf(hex, sizeof(hex), "%s%s", e->d_name, f->d_name);
			snprintf(path, sizeof(path), "%s/%s", sub, f->d_name);
			if (lstat(path, &st) != 0 || !S_ISREG(st.st_mode))
				continue;
			stop = fn(hex, (uint64_t)st.st_size, (int64_t)st.st_mtime, ud);
		}
		closedir(d2);
	}
	closedir(d);
	return FT_OK;
}

static enum ft_rc local_remove_stale(struct ft_store *s, const char *key, long min_age_s,
				     bool *removed, uint64_t *bytes, struct ft_err *err)
{
	struct local_store *ls = (struct local_store *)s;
	char path[PATH_MAX], aside[PATH_MAX];
	struct stat st;
	time_t now = time(NULL);
	snprintf(path, sizeof(path), "%s/%s", ls->root, key);
	if (stat(path, &st) != 0 || now - st.st_mtime < min_age_s)
		return FT_OK;
	/* moved aside first: a commit of the same content from now on finds no
	 * blob and writes it again; one that came just before refreshed its
	 * time, which is checked once more below */
	unsigned char rnd[8];
	char r[17];
	ft_random_bytes(rnd, sizeof(rnd));
	ft_hex_encode(rnd, sizeof(rnd), r);
	snprintf(aside, sizeof(aside), "%s/tmp/gc-%s.%s.part", ls->root, key + 10, r);
	if (rename(path, aside) != 0)
		return errno == ENOENT ? FT_OK
				       : ft_failf(err, FT_EIO, "io_error", "rename \"%s\": %s",
						  path, strerror(errno));
	if (stat(aside, &st) == 0 && time(NULL) - st.st_mtime < min_age_s) {
		/* committed again meanwhile: back (over a copy a commit wrote) */
		if (rename(aside, path) != 0)
			return ft_failf(err, FT_EIO, "io_error", "rename back \"%s\": %s", path,
					strerror(errno));
		return FT_OK;
	}
	if (unlink(aside) != 0)
		return ft_failf(err, FT_EIO, "io_error", "unlink \"%s\": %s", aside,
				strerror(errno));
	*removed = true;
	if (bytes)
		*bytes = (uint64_t)st.st_size;
	return FT_OK;
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
	.list = local_list,
	.remove_stale = local_remove_stale,
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
	if (ft_mkdir_p(tmp, err)) {
		free(ls);
		return NULL;
	}
	snprintf(tmp, sizeof(tmp), "%s/sha256", ls->root);
	if (ft_mkdir_p(tmp, err)) {
		free(ls);
		return NULL;
	}
	return &ls->base;
}
