/*
 * test_store.c - the content-addressed store, the same cases on every
 * backend: CTest runs each case once on the local backend
 * (registry/test_store/<case>) and once on the S3 backend against the real
 * S3-compatible server deploy/dev/s3.sh starts
 * (registry/test_store/s3/<case>, FT_TEST_STORE=s3; store_helpers.h).
 * Digests are checked against values from `printf ... | sha256sum` and, for
 * the large blob, Python's hashlib (the peers).
 */
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ftest.h"
#include "store_helpers.h"

/* sha256sum of "hello\n" */
#define HELLO_SHA "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"
#define HELLO_KEY "sha256/58/91b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"

/* The store under test, staging or rooted in a fresh folder; NULL means
 * skip (S3 asked for but no server in the environment). */
static struct ft_store *open_store(char dir[64], struct ft_err *e)
{
	th_tmpdir(dir);
	ft_err_clear(e);
	if (!th_backend_is_s3())
		return ft_store_local_new(dir, e);
	if (!th_s3_env())
		return NULL;
	char prefix[32];
	th_prefix(prefix);
	return th_s3_open(dir, NULL, prefix, 4, e);
}

#define OPEN_OR_SKIP(s, dir, e)                                                             \
	struct ft_store *s = open_store(dir, &e);                                           \
	if (!s && !ft_err_is_set(&e))                                                       \
		FT_SKIP("FT_TEST_STORE=s3 but no FT_S3_* server (deploy/dev/s3.sh start)"); \
	if (!s)                                                                             \
		fprintf(stderr, "opening the store: %s\n", e.msg);                          \
	FT_CHECK(s != NULL)

FT_TEST(store_commit_names_blob_by_sha256)
{
	char dir[64], path[256], sha[FT_SHA256_HEX_LEN + 1], key[FT_STORE_KEY_MAX];
	struct ft_err e;
	struct ft_store_writer *w;
	uint64_t n = 0;
	OPEN_OR_SKIP(s, dir, e);
	FT_CHECK(ft_store_writer_new(s, 0, &w, &e) == FT_OK);
	FT_CHECK(ft_store_writer_write(w, "hel", 3, &e) == FT_OK);
	FT_CHECK(ft_store_writer_write(w, "lo\n", 3, &e) == FT_OK);
	/* In progress: no reader can see it. */
	FT_CHECK(ft_store_open_read(s, HELLO_KEY, NULL, &e) < 0);
	FT_CHECK(e.rc == FT_ENOTFOUND);
	FT_CHECK_STR(e.code, "blob_missing");
	ft_err_clear(&e);
	snprintf(path, sizeof(path), "%s/tmp", dir);
	/* local: a named temporary; s3: an unlinked spool file */
	FT_CHECK_INT(th_count_files(path), th_backend_is_s3() ? 0 : 1);
	FT_CHECK(ft_store_writer_commit(w, sha, key, &n, &e) == FT_OK);
	FT_CHECK_STR(sha, HELLO_SHA);
	FT_CHECK_STR(key, HELLO_KEY);
	FT_CHECK_INT(n, 6);
	FT_CHECK_INT(th_count_files(path), 0);
	uint64_t size = 0;
	int fd = ft_store_open_read(s, key, &size, &e);
	FT_CHECK(fd >= 0);
	char buf[16] = { 0 };
	FT_CHECK_INT(read(fd, buf, sizeof(buf)), 6);
	FT_CHECK_STR(buf, "hello\n");
	FT_CHECK_INT(size, 6);
	close(fd);

	/* The same content again: one blob, no temporaries left. */
	FT_CHECK(ft_store_writer_new(s, 0, &w, &e) == FT_OK);
	FT_CHECK(ft_store_writer_write(w, "hello\n", 6, &e) == FT_OK);
	FT_CHECK(ft_store_writer_commit(w, sha, key, &n, &e) == FT_OK);
	FT_CHECK_STR(sha, HELLO_SHA);
	FT_CHECK_INT(th_count_files(path), 0);
	if (!th_backend_is_s3()) {
		snprintf(path, sizeof(path), "%s/sha256/58", dir);
		FT_CHECK_INT(th_count_files(path), 1);
	}
	fd = ft_store_open_read(s, key, &size, &e);
	FT_CHECK(fd >= 0);
	FT_CHECK_INT(size, 6);
	close(fd);
	ft_store_free(s);
}

FT_TEST(store_cap_and_abort_leave_nothing)
{
	char dir[64], path[256];
	struct ft_err e;
	struct ft_store_writer *w;
	OPEN_OR_SKIP(s, dir, e);
	FT_CHECK(ft_store_writer_new(s, 4, &w, &e) == FT_OK);
	FT_CHECK(ft_store_writer_write(w, "abcd", 4, &e) == FT_OK);
	FT_CHECK(ft_store_writer_write(w, "e", 1, &e) == FT_ELIMIT);
	FT_CHECK_STR(e.code, "file_too_large");
	FT_CHECK_INT(ft_store_writer_bytes(w), 4);
	ft_store_writer_abort(w);
	snprintf(path, sizeof(path), "%s/tmp", dir);
	FT_CHECK_INT(th_count_files(path), 0);
	/* sha256sum of "abcd": never stored */
	ft_err_clear(&e);
	FT_CHECK(ft_store_open_read(
			 s,
			 "sha256/88/d4266fd4e6338d13b845fcf289579d209c897823b9217da3e161936f031589",
			 NULL, &e) < 0);
	FT_CHECK(e.rc == FT_ENOTFOUND);
	if (!th_backend_is_s3()) {
		snprintf(path, sizeof(path), "%s/sha256", dir);
		FT_CHECK_INT(th_count_files(path), 0);
	}
	ft_store_free(s);
}

FT_TEST(store_checks_keys)
{
	char dir[64];
	struct ft_err e;
	OPEN_OR_SKIP(s, dir, e);
	FT_CHECK(!ft_store_key_valid("sha256/../../etc/passwd"));
	FT_CHECK(!ft_store_key_valid("sha256/58/91B5"));
	FT_CHECK(ft_store_key_valid(HELLO_KEY));
	FT_CHECK(ft_store_open_read(s, "sha256/../x", NULL, &e) < 0);
	FT_CHECK(e.rc == FT_EINVAL);
	ft_err_clear(&e);
	FT_CHECK(ft_store_open_read(
			 s,
			 "sha256/00/00000000000000000000000000000000000000000000000000000000000000",
			 NULL, &e) < 0);
	FT_CHECK(e.rc == FT_ENOTFOUND);
	ft_store_free(s);
}

/* 11 MiB + 123 bytes of a fixed pattern: on S3 with 5 MiB parts it goes up
 * as a 3-part multipart upload (test_store_s3.c checks the server's ETag). */
#define BIG_N ((11u << 20) + 123u)
#define BIG_SHA "0cba462524ae3962f50ce6c9c1f9fa52db02c9913f4bc1dd3ca3e5fbfd6d539f"

static unsigned char big_byte(size_t i)
{
	return (unsigned char)((i * 7 + (i >> 12)) & 0xff);
}

FT_TEST(store_large_blob_round_trips)
{
	char dir[64], sha[FT_SHA256_HEX_LEN + 1], key[FT_STORE_KEY_MAX];
	struct ft_err e;
	struct ft_store_writer *w;
	uint64_t n = 0, size = 0;
	OPEN_OR_SKIP(s, dir, e);
	unsigned char *buf = malloc(BIG_N);
	FT_CHECK(buf != NULL);
	for (size_t i = 0; i < BIG_N; i++)
		buf[i] = big_byte(i);
	FT_CHECK(ft_store_writer_new(s, 0, &w, &e) == FT_OK);
	for (size_t off = 0; off < BIG_N; off += 100000) /* odd-sized writes */
		FT_CHECK(ft_store_writer_write(w, buf + off, FT_MIN(100000u, BIG_N - off), &e) ==
			 FT_OK);
	FT_CHECK(ft_store_writer_commit(w, sha, key, &n, &e) == FT_OK);
	FT_CHECK_STR(sha, BIG_SHA);
	FT_CHECK_INT(n, BIG_N);
	struct ft_store_counters c;
	ft_store_counters_get(s, &c);
	FT_CHECK_INT(c.parts, th_backend_is_s3() ? 3 : 0);
	memset(buf, 0, BIG_N);
	int fd = ft_store_open_read(s, key, &size, &e);
	FT_CHECK(fd >= 0);
	FT_CHECK_INT(size, BIG_N);
	FT_CHECK_INT(th_read_all(fd, buf, BIG_N), BIG_N);
	close(fd);
	size_t bad = 0;
	for (size_t i = 0; i < BIG_N; i++)
		bad += buf[i] != big_byte(i);
	FT_CHECK_INT(bad, 0);
	free(buf);
	ft_store_free(s);
}

FT_TEST(store_put_file_streams_a_file)
{
	char dir[64], path[128], sha[FT_SHA256_HEX_LEN + 1], key[FT_STORE_KEY_MAX];
	struct ft_err e;
	uint64_t n = 0;
	OPEN_OR_SKIP(s, dir, e);
	snprintf(path, sizeof(path), "%s/in.txt", dir);
	int fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0644);
	FT_CHECK(fd >= 0);
	FT_CHECK_INT(write(fd, "world\n", 6), 6);
	close(fd);
	FT_CHECK(ft_store_put_file(s, path, sha, key, &n, &e) == FT_OK);
	/* printf 'world\n' | sha256sum */
	FT_CHECK_STR(sha, "e258d248fda94c63753607f7c4494ee0fcbe92f1a76bfdac795c9d84101eb317");
	FT_CHECK_INT(n, 6);
	FT_CHECK(ft_store_put_file(s, "/nonexistent/in.txt", sha, key, &n, &e) == FT_EIO);
	FT_CHECK(strstr(e.msg, "/nonexistent/in.txt") != NULL);
	ft_store_free(s);
}

FT_TEST(local_sweeps_only_abandoned_temporaries)
{
	char dir[64], path[256];
	struct ft_err e;
	if (th_backend_is_s3())
		FT_SKIP("local-only case (test_store_s3.c sweeps multipart uploads)");
	th_tmpdir(dir);
	ft_err_clear(&e);
	struct ft_store *s = ft_store_local_new(dir, &e);
	FT_CHECK(s != NULL);
	snprintf(path, sizeof(path), "%s/tmp", dir);

	/* A live writer's temporary survives any sweep, even at age 0. */
	struct ft_store_writer *live;
	FT_CHECK(ft_store_writer_new(s, 100, &live, &e) == FT_OK);
	FT_CHECK(ft_store_writer_write(live, "abc", 3, &e) == FT_OK);
	FT_CHECK_INT(ft_store_sweep_tmp(s, 0), 0);
	FT_CHECK_INT(th_count_files(path), 1);

	/* A writer whose process dies (kill -9 after the write: no abort, no
	 * atexit) leaves its .part unlocked: the next sweep removes it. */
	pid_t pid = fork();
	FT_CHECK(pid >= 0);
	if (pid == 0) {
		struct ft_store_writer *w;
		if (ft_store_writer_new(s, 100, &w, &e) || ft_store_writer_write(w, "xy", 2, &e))
			_exit(1);
		raise(SIGKILL);
		_exit(2);
	}
	int st;
	FT_CHECK(waitpid(pid, &st, 0) == pid);
	FT_CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
	FT_CHECK_INT(th_count_files(path), 2);
	FT_CHECK_INT(ft_store_sweep_tmp(s, 0), 1);
	FT_CHECK_INT(th_count_files(path), 1);

	/* With an age guard, a fresh abandoned temporary waits; an old one goes.
	 * A .new file (the instant before its writer locks it) needs a minute. */
	snprintf(path, sizeof(path), "%s/tmp/old.part", dir);
	int fd = open(path, O_CREAT | O_WRONLY, 0644);
	FT_CHECK(fd >= 0);
	close(fd);
	struct timespec old[2] = { { .tv_sec = 1000 }, { .tv_sec = 1000 } };
	FT_CHECK(utimensat(AT_FDCWD, path, old, 0) == 0);
	snprintf(path, sizeof(path), "%s/tmp/new.part", dir);
	fd = open(path, O_CREAT | O_WRONLY, 0644);
	close(fd);
	snprintf(path, sizeof(path), "%s/tmp/born.new", dir);
	fd = open(path, O_CREAT | O_WRONLY, 0644);
	close(fd);
	FT_CHECK_INT(ft_store_sweep_tmp(s, 3600), 1); /* old.part */
	FT_CHECK_INT(ft_store_sweep_tmp(s, 0), 1); /* new.part; born.new is too young */
	FT_CHECK(utimensat(AT_FDCWD, path, old, 0) == 0);
	FT_CHECK_INT(ft_store_sweep_tmp(s, 0), 1); /* born.new, a minute later */
	snprintf(path, sizeof(path), "%s/tmp", dir);
	FT_CHECK_INT(th_count_files(path), 1); /* the live writer's */
	ft_store_writer_abort(live);
	FT_CHECK_INT(th_count_files(path), 0);
	ft_store_free(s);
}

static enum ft_rc put(struct ft_store *s, const char *data, size_t n, char sha[65], char *key,
		      uint64_t *bytes, struct ft_err *e)
{
	struct ft_store_writer *w;
	if (ft_store_writer_new(s, 0, &w, e))
		return e->rc;
	if (ft_store_writer_write(w, data, n, e)) {
		ft_store_writer_abort(w);
		return e->rc;
	}
	return ft_store_writer_commit(w, sha, key, bytes, e);
}

struct seen {
	int n;
	char hex[65];
	uint64_t bytes;
	bool young; /* s3: its time within 10 minutes of now */
};

static int list_one(const char *hex, uint64_t bytes, int64_t mtime_s, void *ud)
{
	struct seen *s = ud;
	FT_UNUSED(mtime_s);
	s->n++;
	ft_strlcpy(s->hex, hex, sizeof(s->hex));
	s->bytes = bytes;
	return 0;
}

/* s3: how many listed blobs are hex, and the size of the last one */
static int count_hex(const char *hex, uint64_t bytes, int64_t mtime_s, void *ud)
{
	struct seen *s = ud;
	if (strcmp(hex, s->hex) == 0) {
		s->n++;
		s->bytes = bytes;
		s->young = llabs((long long)(time(NULL) - mtime_s)) < 600; /* LastModified */
	}
	return 0;
}

/* Collection (ft_store_list, ft_store_remove_stale): an old blob goes, a
 * young one stays, and committing content already stored refreshes its time
 * so a collection running then keeps it. On s3 the time is the object's
 * Last-Modified (a commit of stored content renews it with a self-copy) and
 * a blob cannot be aged by hand here: a grace of 0 makes it old. */
FT_TEST(store_lists_and_removes_stale_blobs)
{
	char dir[64], sha[FT_SHA256_HEX_LEN + 1], key[FT_STORE_KEY_MAX], path[256];
	struct ft_err e;
	OPEN_OR_SKIP(s, dir, e);
	if (th_backend_is_s3()) {
		bool removed = true;
		uint64_t n, bytes = 0;
		FT_CHECK(put(s, "hello\n", 6, sha, key, &n, &e) == FT_OK);
		FT_CHECK(put(s, "hello\n", 6, sha, key, &n, &e) == FT_OK); /* found: renewed */
		struct seen seen = { 0 };
		ft_strlcpy(seen.hex, HELLO_SHA, sizeof(seen.hex));
		FT_CHECK(ft_store_list(s, count_hex, &seen, &e) == FT_OK);
		FT_CHECK_INT(seen.n, 1);
		FT_CHECK_INT(seen.bytes, 6);
		FT_CHECK(seen.young);
		FT_CHECK(ft_store_remove_stale(s, key, 600, &removed, &bytes, &e) == FT_OK);
		FT_CHECK(!removed); /* younger than the grace */
		FT_CHECK(ft_store_remove_stale(s, key, 0, &removed, &bytes, &e) == FT_OK);
		FT_CHECK(removed && bytes == 6);
		FT_CHECK(ft_store_remove_stale(s, key, 0, &removed, &bytes, &e) == FT_OK &&
			 !removed);
		seen.n = 0;
		FT_CHECK(ft_store_list(s, count_hex, &seen, &e) == FT_OK);
		FT_CHECK_INT(seen.n, 0);
		FT_CHECK(ft_store_remove_stale(s, "sha256/zz", 0, &removed, NULL, &e) == FT_EINVAL);
		ft_store_free(s);
		return;
	}
	uint64_t n;
	FT_CHECK(put(s, "hello\n", 6, sha, key, &n, &e) == FT_OK);
	snprintf(path, sizeof(path), "%s/%s", dir, key);
	struct timespec old[2] = { { time(NULL) - 3600, 0 }, { time(NULL) - 3600, 0 } };
	FT_CHECK(utimensat(AT_FDCWD, path, old, 0) == 0);
	/* committed again: its time is now */
	FT_CHECK(put(s, "hello\n", 6, sha, key, &n, &e) == FT_OK);
	struct stat st;
	FT_CHECK(stat(path, &st) == 0 && time(NULL) - st.st_mtime < 60);
	bool removed = true;
	uint64_t bytes = 0;
	FT_CHECK(ft_store_remove_stale(s, key, 600, &removed, &bytes, &e) == FT_OK);
	FT_CHECK(!removed && stat(path, &st) == 0);
	/* listed with its size and time */
	struct seen seen = { 0 };
	FT_CHECK(ft_store_list(s, list_one, &seen, &e) == FT_OK);
	FT_CHECK_INT(seen.n, 1);
	FT_CHECK_STR(seen.hex, HELLO_SHA);
	FT_CHECK_INT(seen.bytes, 6);
	/* old and not committed again: removed, and nothing left aside */
	FT_CHECK(utimensat(AT_FDCWD, path, old, 0) == 0);
	FT_CHECK(ft_store_remove_stale(s, key, 600, &removed, &bytes, &e) == FT_OK);
	FT_CHECK(removed && bytes == 6 && stat(path, &st) != 0);
	FT_CHECK(ft_store_remove_stale(s, key, 600, &removed, &bytes, &e) == FT_OK && !removed);
	FT_CHECK_INT(ft_store_sweep_tmp(s, 0), 0);
	FT_CHECK(ft_store_remove_stale(s, "sha256/zz", 0, &removed, NULL, &e) == FT_EINVAL);
	ft_store_free(s);
}

FT_TEST_MAIN()
