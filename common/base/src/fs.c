/*
 * fs.c - file helpers; see ft/fs.h.
 */
#include "ft/fs.h"

#include <fcntl.h>
#include <ftw.h>
#include <libgen.h>
#include <sys/stat.h>
#include <unistd.h>

enum ft_rc ft_read_file(const char *path, struct ft_buf *out, struct ft_err *err)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return ft_failf(err, errno == ENOENT ? FT_ENOTFOUND : FT_EIO, "io_error",
				"cannot open \"%s\": %s", path, strerror(errno));
	char chunk[65536];
	size_t n;
	enum ft_rc rc = FT_OK;
	while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
		if (ft_buf_add(out, chunk, n)) {
			rc = ft_failf(err, FT_ELIMIT, "io_error", "\"%s\" is larger than %zu bytes",
				      path, out->max);
			break;
		}
	if (!rc && ferror(f))
		rc = ft_failf(err, FT_EIO, "io_error", "reading \"%s\" failed", path);
	fclose(f);
	return rc;
}

void ft_fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY);
	if (fd >= 0) {
		fsync(fd);
		close(fd);
	}
}

enum ft_rc ft_write_file_atomic(const char *path, const void *data, size_t len, struct ft_err *err)
{
	char tmp[4096];
	if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= sizeof tmp)
		return ft_failf(err, FT_EINVAL, NULL, "path too long: \"%s\"", path);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return ft_failf(err, FT_EIO, "io_error", "cannot create \"%s\": %s", tmp,
				strerror(errno));
	const char *p = data;
	size_t left = len;
	while (left > 0) {
		ssize_t w = write(fd, p, left);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			int e = errno;
			close(fd);
			unlink(tmp);
			return ft_failf(err, FT_EIO, "io_error", "writing \"%s\" failed: %s", tmp,
					strerror(e));
		}
		p += w;
		left -= (size_t)w;
	}
	if (fsync(fd) != 0 || close(fd) != 0) {
		unlink(tmp);
		return ft_failf(err, FT_EIO, "io_error", "syncing \"%s\" failed: %s", tmp,
				strerror(errno));
	}
	if (rename(tmp, path) != 0) {
		int e = errno;
		unlink(tmp);
		return ft_failf(err, FT_EIO, "io_error", "renaming to \"%s\" failed: %s", path,
				strerror(e));
	}
	char d[4096];
	ft_strlcpy(d, path, sizeof d);
	ft_fsync_dir(dirname(d));
	return FT_OK;
}

enum ft_rc ft_mkdir_p(const char *dir, struct ft_err *err)
{
	char p[4096];
	if (ft_strlcpy(p, dir, sizeof p) >= sizeof p)
		return ft_failf(err, FT_EINVAL, NULL, "path too long: \"%s\"", dir);
	for (char *s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = 0;
		if (mkdir(p, 0755) != 0 && errno != EEXIST)
			return ft_failf(err, FT_EIO, "io_error", "cannot create folder \"%s\": %s",
					p, strerror(errno));
		*s = '/';
	}
	if (mkdir(p, 0755) != 0 && errno != EEXIST)
		return ft_failf(err, FT_EIO, "io_error", "cannot create folder \"%s\": %s", p,
				strerror(errno));
	return FT_OK;
}

bool ft_file_exists(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

enum ft_rc ft_copy_file(const char *src, const char *dst, struct ft_err *err)
{
	struct ft_buf b;
	ft_buf_init(&b, (size_t)1 << 32);
	enum ft_rc rc = ft_read_file(src, &b, err);
	if (!rc)
		rc = ft_write_file_atomic(dst, b.ptr ? b.ptr : "", b.len, err);
	ft_buf_release(&b);
	return rc;
}

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	FT_UNUSED(st);
	FT_UNUSED(ftw);
	return (flag == FTW_DP ? rmdir(path) : unlink(path)) == 0 || errno == ENOENT ? 0 : -1;
}

enum ft_rc ft_remove_tree(const char *dir, struct ft_err *err)
{
	if (nftw(dir, remove_one, 16, FTW_DEPTH | FTW_PHYS) != 0 && errno != ENOENT)
		return ft_failf(err, FT_EIO, "io_error", "cannot remove \"%s\": %s", dir,
				strerror(errno));
	return FT_OK;
}
