/*
 * test_cache.c - the worker's input cache (worker/src/cache.c) on a local
 * store: a blob arrives under its digest only when its SHA-256 is that
 * digest, stored folders arrive whole, eviction goes least recently used
 * first down to the cap, pinned entries stay, and a reopened cache finds
 * what it held (in the order of its last use) and nothing half-written.
 * Digests are from `printf ... | sha256sum` (the peer).
 */
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ftest.h"
#include "ft/fs.h"
#include "ft/registry.h"
#include "../../../worker/src/worker_int.h"

/* printf 'hello\n' | sha256sum */
#define HELLO_SHA "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"
/* printf "%0100d" 0 | tr 0 a | sha256sum (100 bytes of "a") */
#define A100_SHA "2816597888e4a0d3a36b82b83316ab32680eb8f00f8cd3b904d681246d285a0e"

static void tmpdir(char out[64])
{
	snprintf(out, 64, "/tmp/ftcache.XXXXXX");
	FT_ASSERT(mkdtemp(out));
}

static int count_files(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;
	while (d && (de = readdir(d)))
		n += strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0;
	if (d)
		closedir(d);
	return n;
}

/* Put bytes into the store; their digest in hex. */
static void put(struct ft_store *s, const void *p, size_t n, char hex[65])
{
	struct ft_store_writer *w;
	struct ft_err e;
	char key[FT_STORE_KEY_MAX];
	uint64_t bytes;
	ft_err_clear(&e);
	FT_ASSERT(ft_store_writer_new(s, 0, &w, &e) == FT_OK);
	FT_ASSERT(ft_store_writer_write(w, p, n, &e) == FT_OK);
	FT_ASSERT(ft_store_writer_commit(w, hex, key, &bytes, &e) == FT_OK);
}

/* 100 bytes of one letter. */
static void put100(struct ft_store *s, char letter, char hex[65])
{
	char b[100];
	memset(b, letter, sizeof(b));
	put(s, b, sizeof(b), hex);
}

static bool cached(const char *cdir, const char *kind, const char *hex)
{
	char p[256];
	snprintf(p, sizeof(p), "%s/%s/%s", cdir, kind, hex);
	return access(p, F_OK) == 0;
}

FT_TEST(cache_file_arrives_under_its_digest)
{
	char sdir[64], cdir[64], path[PATH_MAX], want[PATH_MAX + 80], hex[65], tmp[128];
	struct ft_err e;
	ft_err_clear(&e);
	tmpdir(sdir);
	tmpdir(cdir);
	struct ft_store *s = ft_store_local_new(sdir, &e);
	FT_CHECK(s);
	put(s, "hello\n", 6, hex);
	FT_CHECK_STR(hex, HELLO_SHA);
	struct wk_cache *c = wk_cache_new(s, cdir, 1 << 20, &e);
	FT_CHECK(c);
	FT_CHECK(wk_cache_get(c, WK_CACHE_FILE, HELLO_SHA, path, sizeof(path), &e) == FT_OK);
	snprintf(want, sizeof(want), "%s/files/%s", cdir, HELLO_SHA);
	FT_CHECK_STR(path, want);
	struct ft_buf b = FT_BUF_INIT(1 << 10);
	FT_CHECK(ft_read_file(path, &b, &e) == FT_OK);
	FT_CHECK_INT(b.len, 6);
	FT_CHECK(memcmp(b.ptr, "hello\n", 6) == 0);
	ft_buf_release(&b);
	FT_CHECK_INT(wk_cache_bytes(c), 6);
	/* a second get is a hit, not a fetch */
	FT_CHECK(wk_cache_get(c, WK_CACHE_FILE, HELLO_SHA, path, sizeof(path), &e) == FT_OK);
	struct wk_cache_counters cc;
	wk_cache_counters_get(c, &cc);
	FT_CHECK_INT(cc.fetches, 1);
	FT_CHECK_INT(cc.hits, 1);
	FT_CHECK_INT(cc.fetched_bytes, 6);
	snprintf(tmp, sizeof(tmp), "%s/tmp", cdir);
	FT_CHECK_INT(count_files(tmp), 0);
	/* a name that is not a digest is refused before the store is asked */
	FT_CHECK(wk_cache_get(c, WK_CACHE_FILE, "../../etc/passwd", path, sizeof(path), &e) ==
		 FT_EINVAL);
	FT_CHECK_STR(e.code, "bad_digest");
	wk_cache_free(c);
	ft_store_free(s);
}

FT_TEST(cache_refuses_a_blob_whose_digest_differs)
{
	char sdir[64], cdir[64], path[PATH_MAX], hex[65], blob[256], sub[128];
	struct ft_err e;
	ft_err_clear(&e);
	tmpdir(sdir);
	tmpdir(cdir);
	struct ft_store *s = ft_store_local_new(sdir, &e);
	FT_CHECK(s);
	put(s, "hello\n", 6, hex);
	/* the store's copy rots: same size, one byte changed */
	snprintf(blob, sizeof(blob), "%s/sha256/58/%s", sdir, HELLO_SHA + 2);
	chmod(blob, 0644);
	FT_CHECK(ft_write_file_atomic(blob, "jello\n", 6, &e) == FT_OK);
	struct wk_cache *c = wk_cache_new(s, cdir, 1 << 20, &e);
	FT_CHECK(c);
	FT_CHECK(wk_cache_get(c, WK_CACHE_FILE, HELLO_SHA, path, sizeof(path), &e) == FT_EFORMAT);
	FT_CHECK_STR(e.code, "blob_corrupt");
	/* nothing under the digest, nothing left half-written */
	FT_CHECK(!cached(cdir, "files", HELLO_SHA));
	snprintf(sub, sizeof(sub), "%s/tmp", cdir);
	FT_CHECK_INT(count_files(sub), 0);
	FT_CHECK_INT(wk_cache_bytes(c), 0);
	/* a blob the store lacks */
	ft_err_clear(&e);
	FT_CHECK(wk_cache_get(c, WK_CACHE_FILE, A100_SHA, path, sizeof(path), &e) == FT_ENOTFOUND);
	wk_cache_free(c);
	ft_store_free(s);
}

FT_TEST(cache_evicts_least_recently_used_down_to_the_cap)
{
	char sdir[64], cdir[64], path[PATH_MAX], a[65], b[65], cc_[65], d[65];
	struct ft_err e;
	ft_err_clear(&e);
	tmpdir(sdir);
	tmpdir(cdir);
	struct ft_store *s = ft_store_local_new(sdir, &e);
	FT_CHECK(s);
	put100(s, 'a', a);
	FT_CHECK_STR(a, A100_SHA);
	put100(s, 'b', b);
	put100(s, 'c', cc_);
	put100(s, 'd', d);
	struct wk_cache *c = wk_cache_new(s, cdir, 300, &e); /* room for three */
	FT_CHECK(c);
	const char *order[] = { a, b, cc_, a }; /* a used again last: b is now the oldest */
	for (size_t i = 0; i < 4; i++) {
		FT_CHECK(wk_cache_get(c, WK_CACHE_FILE, order[i], path, sizeof(path), &e) == FT_OK);
		wk_cache_unpin(c, WK_CACHE_FILE, order[i]);
	}
	FT_CHECK_INT(wk_cache_bytes(c), 300);
	FT_CHECK(wk_cache_get(c, WK_CACHE_FILE, d, path, sizeof(path), &e) == FT_OK);
	FT_CHECK(!cached(cdir, "files", b));
	FT_CHECK(cached(cdir, "files", a) && cached(cdir, "files", cc_) &&
		 cached(cdir, "files", d));
	FT_CHECK_INT(wk_cache_bytes(c), 300);
	struct wk_cache_counters k;
	wk_cache_counters_get(c, &k);
	FT_CHECK_INT(k.fetches, 4);
	FT_CHECK_INT(k.hits, 1);
	FT_CHECK_INT(k.evictions, 1);
	/* next: c (a was used after it) */
	wk_cache_unpin(c, WK_CACHE_FILE, d);
	FT_CHECK(wk_cache_get(c, WK_CACHE_FILE, b, path, sizeof(path), &e) == FT_OK);
	FT_CHECK(!cached(cdir, "files", cc_));
	FT_CHECK(cached(cdir, "files", a) && cached(cdir, "files", b) && cached(cdir, "files", d));
	wk_cache_free(c);
	ft_store_free(s);
}

FT_TEST(cache_never_evicts_what_a_job_holds)
{
	char sdir[64], cdir[64], path[PATH_MAX], a[65], b[65];
	struct ft_err e;
	ft_err_clear(&e);
	tmpdir(sdir);
	tmpdir(cdir);
	struct ft_store *s = ft_store_local_new(sdir, &e);
	FT_CHECK(s);
	put100(s, 'a', a);
	put100(s, 'b', b);
	struct wk_cache *c = wk_cache_new(s, cdir, 150, &e);
	FT_CHECK(c);
	FT_CHECK(wk_cache_get(c, WK_CACHE_FILE, a, path, sizeof(path), &e) == FT_OK);
	FT_CHECK(wk_cache_get(c, WK_CACHE_FILE, b, path, sizeof(path), &e) == FT_OK);
	/* both held: over the cap, nothing removed */
	FT_CHECK_INT(wk_cache_bytes(c), 200);
	FT_CHECK(cached(cdir, "files", a) && cached(cdir, "files", b));
	/* a second holder of a: releasing one hold keeps it */
	FT_CHECK(wk_cache_get(c, WK_CACHE_FILE, a, path, sizeof(path), &e) == FT_OK);
	wk_cache_unpin(c, WK_CACHE_FILE, a);
	FT_CHECK(cached(cdir, "files", a));
	wk_cache_unpin(c, WK_CACHE_FILE, a);
	FT_CHECK(!cached(cdir, "files", a));
	FT_CHECK_INT(wk_cache_bytes(c), 100);
	wk_cache_unpin(c, WK_CACHE_FILE, b);
	FT_CHECK(cached(cdir, "files", b)); /* under the cap again: kept for later jobs */
	wk_cache_free(c);
	ft_store_free(s);
}

FT_TEST(cache_reopens_with_what_it_held_in_order_of_use)
{
	char sdir[64], cdir[64], path[PATH_MAX], a[65], b[65], cc_[65], d[65], p[256];
	struct ft_err e;
	ft_err_clear(&e);
	tmpdir(sdir);
	tmpdir(cdir);
	struct ft_store *s = ft_store_local_new(sdir, &e);
	FT_CHECK(s);
	put100(s, 'a', a);
	put100(s, 'b', b);
	put100(s, 'c', cc_);
	put100(s, 'd', d);
	struct wk_cache *c = wk_cache_new(s, cdir, 300, &e);
	FT_CHECK(c);
	const char *all[] = { a, b, cc_ };
	for (size_t i = 0; i < 3; i++) {
		FT_CHECK(wk_cache_get(c, WK_CACHE_FILE, all[i], path, sizeof(path), &e) == FT_OK);
		wk_cache_unpin(c, WK_CACHE_FILE, all[i]);
	}
	/* one worker per cache folder */
	FT_CHECK(wk_cache_new(s, cdir, 300, &e) == NULL);
	FT_CHECK_INT(e.rc, FT_ECONFLICT);
	FT_CHECK_STR(e.code, "cache_in_use");
	ft_err_clear(&e);
	wk_cache_free(c);
	/* last uses as the previous run left them: b oldest, then c, then a */
	const long when[] = { 3000, 1000, 2000 };
	for (size_t i = 0; i < 3; i++) {
		struct timespec ts[2] = { { when[i], 0 }, { when[i], 0 } };
		snprintf(p, sizeof(p), "%s/files/%s", cdir, all[i]);
		FT_CHECK(utimensat(AT_FDCWD, p, ts, 0) == 0);
	}
	/* a fetch a crash interrupted */
	snprintf(p, sizeof(p), "%s/tmp/%s.0123456789abcdef", cdir, d);
	FT_CHECK(ft_write_file_atomic(p, "half", 4, &e) == FT_OK);
	c = wk_cache_new(s, cdir, 300, &e);
	FT_CHECK(c);
	FT_CHECK(access(p, F_OK) != 0);
	FT_CHECK_INT(wk_cache_bytes(c), 300);
	FT_CHECK(wk_cache_get(c, WK_CACHE_FILE, d, path, sizeof(path), &e) == FT_OK);
	FT_CHECK(!cached(cdir, "files", b));
	FT_CHECK(cached(cdir, "files", a) && cached(cdir, "files", cc_));
	struct wk_cache_counters k;
	wk_cache_counters_get(c, &k);
	FT_CHECK_INT(k.fetches, 1); /* only d: the others were on disk */
	/* a smaller cap on reopen evicts at once, oldest first (c, then a) */
	wk_cache_unpin(c, WK_CACHE_FILE, d);
	wk_cache_free(c);
	c = wk_cache_new(s, cdir, 100, &e);
	FT_CHECK(c);
	FT_CHECK_INT(wk_cache_bytes(c), 100);
	FT_CHECK(cached(cdir, "files", d));
	FT_CHECK(!cached(cdir, "files", a) && !cached(cdir, "files", cc_));
	wk_cache_free(c);
	ft_store_free(s);
}

FT_TEST(cache_folder_arrives_whole)
{
	char sdir[64], cdir[64], src[64], path[PATH_MAX], hex[65], p[PATH_MAX + 32];
	uint64_t total;
	struct ft_err e;
	ft_err_clear(&e);
	tmpdir(sdir);
	tmpdir(cdir);
	tmpdir(src);
	struct ft_store *s = ft_store_local_new(sdir, &e);
	FT_CHECK(s);
	snprintf(p, sizeof(p), "%s/adapter_config.json", src);
	FT_CHECK(ft_write_file_atomic(p, "{\"r\": 8}\n", 9, &e) == FT_OK);
	snprintf(p, sizeof(p), "%s/sub", src);
	FT_CHECK(ft_mkdir_p(p, &e) == FT_OK);
	snprintf(p, sizeof(p), "%s/sub/hello.txt", src);
	FT_CHECK(ft_write_file_atomic(p, "hello\n", 6, &e) == FT_OK);
	FT_CHECK(wk_store_put_dir(s, src, hex, &total, NULL, &e) == FT_OK);
	FT_CHECK_INT(total, 15);
	struct wk_cache *c = wk_cache_new(s, cdir, 1 << 20, &e);
	FT_CHECK(c);
	FT_CHECK(wk_cache_get(c, WK_CACHE_DIR, hex, path, sizeof(path), &e) == FT_OK);
	snprintf(p, sizeof(p), "%s/dirs/%s", cdir, hex);
	FT_CHECK_STR(path, p);
	struct ft_buf b = FT_BUF_INIT(1 << 10);
	snprintf(p, sizeof(p), "%s/sub/hello.txt", path);
	FT_CHECK(ft_read_file(p, &b, &e) == FT_OK);
	FT_CHECK(b.len == 6 && memcmp(b.ptr, "hello\n", 6) == 0);
	ft_buf_release(&b);
	FT_CHECK_INT(wk_cache_bytes(c), 15);
	/* the folder's file rots in the store: a fresh cache refuses the folder */
	wk_cache_unpin(c, WK_CACHE_DIR, hex);
	wk_cache_free(c);
	char cdir2[64], blob[256];
	tmpdir(cdir2);
	snprintf(blob, sizeof(blob), "%s/sha256/58/%s", sdir, HELLO_SHA + 2);
	chmod(blob, 0644);
	FT_CHECK(ft_write_file_atomic(blob, "jello\n", 6, &e) == FT_OK);
	c = wk_cache_new(s, cdir2, 1 << 20, &e);
	FT_CHECK(c);
	FT_CHECK(wk_cache_get(c, WK_CACHE_DIR, hex, path, sizeof(path), &e) == FT_EFORMAT);
	FT_CHECK_STR(e.code, "blob_corrupt");
	FT_CHECK(!cached(cdir2, "dirs", hex));
	snprintf(p, sizeof(p), "%s/tmp", cdir2);
	FT_CHECK_INT(count_files(p), 0);
	wk_cache_free(c);
	ft_store_free(s);
}

FT_TEST_MAIN()
