/*
 * cache.c - the worker's input cache: blobs and stored folders fetched from
 * the artifact store (any backend, ft/registry.h) onto this host's disk, by
 * digest, so that a worker shares no disk with ft-api or other workers.
 *
 * Layout of cache_dir (one worker owns it: a lock file says so):
 *
 *   path                 what
 *   files/<64 hex>       the blob whose SHA-256 is <64 hex> (a training,
 *                        validation or evaluation file)
 *   dirs/<64 hex>/...    the folder whose manifest is the blob <64 hex>
 *                        (a version's adapter, a whole fine-tuned model)
 *   tmp/                 arrivals in progress; emptied when the cache opens
 *   lock                 flock()ed while a worker uses the cache
 *
 * An entry appears under its digest only once it is complete and checked:
 * a file is copied into tmp/ while it is hashed, refused unless its SHA-256
 * is its name ("blob_corrupt"), fsynced and renamed; a folder is unpacked
 * into tmp/ by ft_store_get_dir (which checks each file against the
 * manifest's size and SHA-256), its files fsynced, then renamed. A crash
 * leaves at most something in tmp/, which the next open removes.
 *
 * Eviction: least recently used first, whenever what the cache holds passes
 * max_bytes; an entry is used when a job gets it (its mtime is set then, so
 * the order survives a restart). An entry a running job holds (pinned) is
 * never evicted, so the cap can be passed by what running jobs hold.
 */
#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ft/fs.h"
#include "ft/registry.h"
#include "worker_int.h"

struct entry {
	char hex[FT_SHA256_HEX_LEN + 1];
	enum wk_cache_kind kind;
	uint64_t bytes;
	uint64_t used; /* LRU clock: larger is more recent */
	int pins;
};

struct wk_cache {
	struct ft_store *st;
	char dir[PATH_MAX];
	uint64_t max_bytes, bytes;
	uint64_t clock;
	int lock_fd;
	struct entry *e;
	size_t n, cap;
	struct wk_cache_counters counters;
};

static const char *const kind_dir[] = { [WK_CACHE_FILE] = "files", [WK_CACHE_DIR] = "dirs" };

static bool hex64(const char *s)
{
	size_t i = 0;
	for (; s[i]; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return i == FT_SHA256_HEX_LEN;
}

static void entry_path(const struct wk_cache *c, enum wk_cache_kind k, const char *hex, char *out,
		       size_t n)
{
	snprintf(out, n, "%s/%s/%s", c->dir, kind_dir[k], hex);
}

/* Bytes of the regular files under path (a file or a folder), each one
 * fsynced when sync is set. */
static uint64_t tree_bytes(const char *path, bool sync)
{
	struct stat st;
	if (lstat(path, &st) != 0)
		return 0;
	if (S_ISREG(st.st_mode)) {
		if (sync) {
			int fd = open(path, O_RDONLY | O_CLOEXEC);
			if (fd >= 0) {
				(void)fsync(fd);
				close(fd);
			}
		}
		return (uint64_t)st.st_size;
	}
	if (!S_ISDIR(st.st_mode))
		return 0;
	uint64_t total = 0;
	DIR *d = opendir(path);
	struct dirent *de;
	while (d && (de = readdir(d))) {
		char sub[PATH_MAX];
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		snprintf(sub, sizeof(sub), "%s/%s", path, de->d_name);
		total += tree_bytes(sub, sync);
	}
	if (d)
		closedir(d);
	if (sync)
		ft_fsync_dir(path);
	return total;
}

static struct entry *find(struct wk_cache *c, enum wk_cache_kind k, const char *hex)
{
	for (size_t i = 0; i < c->n; i++)
		if (c->e[i].kind == k && strcmp(c->e[i].hex, hex) == 0)
			return &c->e[i];
	return NULL;
}

static struct entry *add(struct wk_cache *c, enum wk_cache_kind k, const char *hex, uint64_t bytes)
{
	if (c->n == c->cap) {
		c->cap = c->cap ? c->cap * 2 : 32;
		c->e = realloc(c->e, c->cap * sizeof(*c->e));
		FT_ASSERT(c->e);
	}
	struct entry *e = &c->e[c->n++];
	memset(e, 0, sizeof(*e));
	ft_strlcpy(e->hex, hex, sizeof(e->hex));
	e->kind = k;
	e->bytes = bytes;
	__atomic_add_fetch(&c->bytes, bytes, __ATOMIC_RELAXED);
	return e;
}

/* Remove least recently used unpinned entries until the cache fits. */
static void evict(struct wk_cache *c)
{
	while (c->bytes > c->max_bytes) {
		struct entry *v = NULL;
		for (size_t i = 0; i < c->n; i++)
			if (!c->e[i].pins && (!v || c->e[i].used < v->used))
				v = &c->e[i];
		if (!v)
			return; /* everything left is in use */
		char path[PATH_MAX + 80];
		struct ft_err err;
		ft_err_clear(&err);
		entry_path(c, v->kind, v->hex, path, sizeof(path));
		if (v->kind == WK_CACHE_DIR ? ft_remove_tree(path, &err) != FT_OK
					    : unlink(path) != 0 && errno != ENOENT) {
			ft_warn("cache: cannot remove %s: %s", path,
				err.msg[0] ? err.msg : strerror(errno));
			return;
		}
		ft_logf(FT_LOG_INFO, NULL, NULL, "cache: evicted %s %.12s (%llu bytes)",
			kind_dir[v->kind], v->hex, (unsigned long long)v->bytes);
		__atomic_sub_fetch(&c->bytes, v->bytes, __ATOMIC_RELAXED);
		__atomic_add_fetch(&c->counters.evictions, 1, __ATOMIC_RELAXED);
		*v = c->e[--c->n];
	}
}

/* Mark an entry used now (in memory, and as its mtime for the next open). */
static void touch(struct wk_cache *c, struct entry *e)
{
	char path[PATH_MAX + 80];
	e->used = ++c->clock;
	entry_path(c, e->kind, e->hex, path, sizeof(path));
	utimensat(AT_FDCWD, path, NULL, AT_SYMLINK_NOFOLLOW);
}

struct found {
	enum wk_cache_kind kind;
	char hex[FT_SHA256_HEX_LEN + 1];
	struct timespec mtime;
	uint64_t bytes;
};

static int cmp_mtime(const void *a, const void *b)
{
	const struct found *x = a, *y = b;
	if (x->mtime.tv_sec != y->mtime.tv_sec)
		return x->mtime.tv_sec < y->mtime.tv_sec ? -1 : 1;
	if (x->mtime.tv_nsec != y->mtime.tv_nsec)
		return x->mtime.tv_nsec < y->mtime.tv_nsec ? -1 : 1;
	return strcmp(x->hex, y->hex);
}

/* What an earlier run left: each complete entry, oldest use first. */
static void scan(struct wk_cache *c)
{
	struct found *f = NULL;
	size_t n = 0, cap = 0;
	for (int k = 0; k < WK_CACHE_KINDS; k++) {
		char sub[PATH_MAX + 16];
		snprintf(sub, sizeof(sub), "%s/%s", c->dir, kind_dir[k]);
		DIR *d = opendir(sub);
		struct dirent *de;
		while (d && (de = readdir(d))) {
			char path[PATH_MAX + 96];
			struct stat st;
			if (!hex64(de->d_name))
				continue;
			snprintf(path, sizeof(path), "%s/%s", sub, de->d_name);
			if (lstat(path, &st) != 0 ||
			    !(k == WK_CACHE_DIR ? S_ISDIR(st.st_mode) : S_ISREG(st.st_mode)))
				continue;
			if (n == cap) {
				cap = cap ? cap * 2 : 32;
				f = realloc(f, cap * sizeof(*f));
				FT_ASSERT(f);
			}
			f[n].kind = (enum wk_cache_kind)k;
			ft_strlcpy(f[n].hex, de->d_name, sizeof(f[n].hex));
			f[n].mtime = st.st_mtim;
			f[n].bytes = tree_bytes(path, false);
			n++;
		}
		if (d)
			closedir(d);
	}
	if (n)
		qsort(f, n, sizeof(*f), cmp_mtime);
	for (size_t i = 0; i < n; i++)
		add(c, f[i].kind, f[i].hex, f[i].bytes)->used = ++c->clock;
	free(f);
}

struct wk_cache *wk_cache_new(struct ft_store *st, const char *dir, uint64_t max_bytes,
			      struct ft_err *err)
{
	char path[PATH_MAX + 16];
	if (!dir || !*dir) {
		ft_failf(err, FT_EINVAL, "bad_config", "cache_dir must name a folder");
		return NULL;
	}
	struct wk_cache *c = ft_xcalloc(1, sizeof(*c));
	c->st = st;
	c->max_bytes = max_bytes;
	c->lock_fd = -1;
	ft_strlcpy(c->dir, dir, sizeof(c->dir));
	for (int k = 0; k <= WK_CACHE_KINDS; k++) {
		snprintf(path, sizeof(path), "%s/%s", dir,
			 k < WK_CACHE_KINDS ? kind_dir[k] : "tmp");
		if (ft_mkdir_p(path, err))
			goto fail;
	}
	snprintf(path, sizeof(path), "%s/lock", dir);
	c->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (c->lock_fd < 0) {
		ft_failf(err, FT_EIO, "io_error", "cannot open \"%s\": %s", path, strerror(errno));
		goto fail;
	}
	if (flock(c->lock_fd, LOCK_EX | LOCK_NB) != 0) {
		ft_failf(err, FT_ECONFLICT, "cache_in_use",
			 "cache_dir \"%s\" is in use by another worker; give each worker its own",
			 dir);
		goto fail;
	}
	snprintf(path, sizeof(path), "%s/tmp", dir);
	if (ft_remove_tree(path, err) || ft_mkdir_p(path, err))
		goto fail;
	scan(c);
	evict(c);
	return c;
fail:
	wk_cache_free(c);
	return NULL;
}

void wk_cache_free(struct wk_cache *c)
{
	if (!c)
		return;
	if (c->lock_fd >= 0)
		close(c->lock_fd);
	free(c->e);
	free(c);
}

/* Copy a blob into tmp/, hashing it; refuse it unless its digest is hex. */
static enum ft_rc fetch_file(struct wk_cache *c, const char *hex, const char *tmp,
			     struct ft_err *err)
{
	char key[FT_STORE_KEY_MAX], buf[1 << 16], got[FT_SHA256_HEX_LEN + 1];
	unsigned char d[FT_SHA256_LEN];
	struct ft_sha256 h;
	ssize_t n = 0;
	ft_store_key_for(hex, key);
	int in = ft_store_open_read(c->st, key, NULL, err);
	if (in < 0)
		return err->rc;
	int out = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (out < 0) {
		close(in);
		return ft_failf(err, FT_EIO, "io_error", "cannot write \"%s\": %s", tmp,
				strerror(errno));
	}
	enum ft_rc rc = ft_sha256_init(&h);
	while (!rc && (n = read(in, buf, sizeof(buf))) > 0) {
		ft_sha256_update(&h, buf, (size_t)n);
		if (write(out, buf, (size_t)n) != n)
			rc = ft_failf(err, FT_EIO, "io_error", "writing \"%s\": %s", tmp,
				      strerror(errno));
	}
	if (!rc && n < 0)
		rc = ft_failf(err, FT_EIO, "io_error", "reading blob %.12s: %s", hex,
			      strerror(errno));
	if (!rc) {
		ft_sha256_final(&h, d);
		ft_hex_encode(d, sizeof(d), got);
		if (strcmp(got, hex) != 0)
			rc = ft_failf(err, FT_EFORMAT, "blob_corrupt",
				      "blob %.12s from the store has SHA-256 %.12s; not cached",
				      hex, got);
	} else {
		ft_sha256_release(&h);
	}
	if (!rc && fsync(out) != 0)
		rc = ft_failf(err, FT_EIO, "io_error", "fsync \"%s\": %s", tmp, strerror(errno));
	close(in);
	if (close(out) != 0 && !rc)
		rc = ft_failf(err, FT_EIO, "io_error", "writing \"%s\": %s", tmp, strerror(errno));
	return rc;
}

enum ft_rc wk_cache_get(struct wk_cache *c, enum wk_cache_kind k, const char *hex, char *path,
			size_t n, struct ft_err *err)
{
	if (!hex || !hex64(hex))
		return ft_failf(err, FT_EINVAL, "bad_digest",
				"an input is named by its SHA-256 (64 lower-case hex)");
	struct entry *e = find(c, k, hex);
	entry_path(c, k, hex, path, n);
	if (e) {
		__atomic_add_fetch(&c->counters.hits, 1, __ATOMIC_RELAXED);
		e->pins++;
		touch(c, e);
		return FT_OK;
	}
	char tmp[PATH_MAX + 96], rnd[17];
	unsigned char r[8];
	ft_random_bytes(r, sizeof(r));
	ft_hex_encode(r, sizeof(r), rnd);
	snprintf(tmp, sizeof(tmp), "%s/tmp/%s.%s", c->dir, hex, rnd);
	enum ft_rc rc = k == WK_CACHE_FILE ? fetch_file(c, hex, tmp, err)
					   : ft_store_get_dir(c->st, hex, tmp, err);
	uint64_t bytes = rc ? 0 : tree_bytes(tmp, k == WK_CACHE_DIR);
	if (!rc && rename(tmp, path) != 0)
		rc = ft_failf(err, FT_EIO, "io_error", "cannot rename \"%s\": %s", tmp,
			      strerror(errno));
	if (rc) {
		struct ft_err ignored;
		ft_err_clear(&ignored);
		ft_remove_tree(tmp, &ignored);
		return rc;
	}
	char parent[PATH_MAX + 16];
	snprintf(parent, sizeof(parent), "%s/%s", c->dir, kind_dir[k]);
	ft_fsync_dir(parent);
	__atomic_add_fetch(&c->counters.fetches, 1, __ATOMIC_RELAXED);
	__atomic_add_fetch(&c->counters.fetched_bytes, bytes, __ATOMIC_RELAXED);
	ft_logf(FT_LOG_INFO, NULL, NULL, "cache: fetched %s %.12s from the %s store (%llu bytes)",
		kind_dir[k], hex, ft_store_backend(c->st), (unsigned long long)bytes);
	e = add(c, k, hex, bytes);
	e->pins = 1;
	e->used = ++c->clock;
	evict(c);
	return FT_OK;
}

void wk_cache_unpin(struct wk_cache *c, enum wk_cache_kind k, const char *hex)
{
	struct entry *e = find(c, k, hex);
	if (e && e->pins > 0)
		e->pins--;
	evict(c);
}

uint64_t wk_cache_bytes(const struct wk_cache *c)
{
	return __atomic_load_n(&c->bytes, __ATOMIC_RELAXED);
}

void wk_cache_counters_get(const struct wk_cache *c, struct wk_cache_counters *out)
{
	/* read on the metrics thread */
	out->hits = __atomic_load_n(&c->counters.hits, __ATOMIC_RELAXED);
	out->fetches = __atomic_load_n(&c->counters.fetches, __ATOMIC_RELAXED);
	out->fetched_bytes = __atomic_load_n(&c->counters.fetched_bytes, __ATOMIC_RELAXED);
	out->evictions = __atomic_load_n(&c->counters.evictions, __ATOMIC_RELAXED);
}
