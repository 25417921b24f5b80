/*
 * test_store.c - the local content-addressed store. Digests are checked
 * against values from `printf ... | sha256sum` (coreutils), the peer.
 */
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ft/registry.h"
#include "ftest.h"

static void tmpdir(char out[64])
{
	snprintf(out, 64, "/tmp/ftstore.XXXXXX");
	FT_ASSERT(mkdtemp(out));
}

static int count_files(const char *dir)
{
	DIR *d = opendir(dir);
	int n = 0;
	struct dirent *e;
	if (!d)
		return 0;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

/* sha256sum of "hello\n" */
#define HELLO_SHA "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"

FT_TEST(store_commit_names_blob_by_sha256)
{
	char dir[64], path[256], sha[FT_SHA256_HEX_LEN + 1], key[FT_STORE_KEY_MAX];
	struct ft_err e;
	struct ft_store_writer *w;
	uint64_t n = 0;
	tmpdir(dir);
	ft_err_clear(&e);
	struct ft_store *s = ft_store_local_new(dir, &e);
	FT_CHECK(s != NULL);
	FT_CHECK(ft_store_writer_new(s, 0, &w, &e) == FT_OK);
	FT_CHECK(ft_store_writer_write(w, "hel", 3, &e) == FT_OK);
	FT_CHECK(ft_store_writer_write(w, "lo\n", 3, &e) == FT_OK);
	snprintf(path, sizeof(path), "%s/tmp", dir);
	FT_CHECK_INT(count_files(path), 1); /* in progress: only a temporary */
	FT_CHECK(ft_store_writer_commit(w, sha, key, &n, &e) == FT_OK);
	FT_CHECK_STR(sha, HELLO_SHA);
	FT_CHECK_STR(key,
		     "sha256/58/91b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03");
	FT_CHECK_INT(n, 6);
	FT_CHECK_INT(count_files(path), 0);
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
	snprintf(path, sizeof(path), "%s/sha256/58", dir);
	FT_CHECK_INT(count_files(path), 1);
	snprintf(path, sizeof(path), "%s/tmp", dir);
	FT_CHECK_INT(count_files(path), 0);
	ft_store_free(s);
}

FT_TEST(store_cap_and_abort_leave_nothing)
{
	char dir[64], path[256];
	struct ft_err e;
	struct ft_store_writer *w;
	tmpdir(dir);
	ft_err_clear(&e);
	struct ft_store *s = ft_store_local_new(dir, &e);
	FT_CHECK(s != NULL);
	FT_CHECK(ft_store_writer_new(s, 4, &w, &e) == FT_OK);
	FT_CHECK(ft_store_writer_write(w, "abcd", 4, &e) == FT_OK);
	FT_CHECK(ft_store_writer_write(w, "e", 1, &e) == FT_ELIMIT);
	FT_CHECK_STR(e.code, "file_too_large");
	FT_CHECK_INT(ft_store_writer_bytes(w), 4);
	ft_store_writer_abort(w);
	snprintf(path, sizeof(path), "%s/tmp", dir);
	FT_CHECK_INT(count_files(path), 0);
	snprintf(path, sizeof(path), "%s/sha256", dir);
	FT_CHECK_INT(count_files(path), 0);
	ft_store_free(s);
}

FT_TEST(store_sweeps_only_old_temporaries_and_checks_keys)
{
	char dir[64], path[256];
	struct ft_err e;
	tmpdir(dir);
	ft_err_clear(&e);
	struct ft_store *s = ft_store_local_new(dir, &e);
	FT_CHECK(s != NULL);
	snprintf(path, sizeof(path), "%s/tmp/old.part", dir);
	int fd = open(path, O_CREAT | O_WRONLY, 0644);
	FT_CHECK(fd >= 0);
	close(fd);
	struct timespec old[2] = { { .tv_sec = 1000 }, { .tv_sec = 1000 } };
	FT_CHECK(utimensat(AT_FDCWD, path, old, 0) == 0);
	snprintf(path, sizeof(path), "%s/tmp/new.part", dir);
	fd = open(path, O_CREAT | O_WRONLY, 0644);
	close(fd);
	FT_CHECK_INT(ft_store_sweep_tmp(s, 3600), 1);
	snprintf(path, sizeof(path), "%s/tmp", dir);
	FT_CHECK_INT(count_files(path), 1);

	FT_CHECK(!ft_store_key_valid("sha256/../../etc/passwd"));
	FT_CHECK(!ft_store_key_valid("sha256/58/91B5"));
	FT_CHECK(ft_store_key_valid(
		"sha256/58/91b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"));
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

FT_TEST_MAIN()
