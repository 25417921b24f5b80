/*
 * test_manifest.c - stored folders (registry/src/manifest.c): the manifest
 * reader's rules, and a folder put into a local store by hand (blobs named
 * by `sha256sum`'s digests of their bytes) unpacked again byte for byte;
 * a blob whose bytes changed is refused, not copied.
 */
#include <sys/stat.h>
#include <unistd.h>

#include "ft/fs.h"
#include "ftest.h"
#include "store_helpers.h"

#define HELLO_SHA "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03" /* "hello\n" */
#define WORLD_SHA "e258d248fda94c63753607f7c4494ee0fcbe92f1a76bfdac795c9d84101eb317" /* "world\n" */

struct bad_case {
	const char *json, *why;
};

FT_TEST(manifest_rules)
{
	static const struct bad_case bad[] = {
		{ "", "not JSON" },
		{ "[]", "not an object" },
		{ "{\"format\":\"other\",\"files\":[]}", "another format" },
		{ "{\"format\":\"ftplat-manifest-1\"}", "no files" },
		{ "{\"format\":\"ftplat-manifest-1\",\"files\":[{\"path\":\"../"
		  "x\",\"sha256\":\"" HELLO_SHA "\",\"bytes\":6}]}",
		  "a path up" },
		{ "{\"format\":\"ftplat-manifest-1\",\"files\":[{\"path\":\"a/../../"
		  "x\",\"sha256\":\"" HELLO_SHA "\",\"bytes\":6}]}",
		  "a path up, inside" },
		{ "{\"format\":\"ftplat-manifest-1\",\"files\":[{\"path\":\"/etc/"
		  "x\",\"sha256\":\"" HELLO_SHA "\",\"bytes\":6}]}",
		  "an absolute path" },
		{ "{\"format\":\"ftplat-manifest-1\",\"files\":[{\"path\":\"a//"
		  "b\",\"sha256\":\"" HELLO_SHA "\",\"bytes\":6}]}",
		  "an empty segment" },
		{ "{\"format\":\"ftplat-manifest-1\",\"files\":[{\"path\":\"./"
		  "a\",\"sha256\":\"" HELLO_SHA "\",\"bytes\":6}]}",
		  "a dot segment" },
		{ "{\"format\":\"ftplat-manifest-1\",\"files\":[{\"path\":\"a\",\"sha256\":\"ABC\","
		  "\"bytes\":6}]}",
		  "a short digest" },
		{ "{\"format\":\"ftplat-manifest-1\",\"files\":[{\"path\":\"a\",\"sha256\":"
		  "\"" HELLO_SHA "\",\"bytes\":-1}]}",
		  "negative bytes" },
	};
	struct ft_manifest m;
	struct ft_err e;
	for (size_t i = 0; i < FT_ARRAY_LEN(bad); i++) {
		ft_err_clear(&e);
		if (ft_manifest_parse(bad[i].json, strlen(bad[i].json), &m, &e) != FT_EFORMAT) {
			fprintf(stderr, "accepted %s\n", bad[i].why);
			FT_CHECK(false);
		}
		FT_CHECK_STR(e.code, "bad_manifest");
		FT_CHECK(m.n == 0 && m.files == NULL);
	}
	const char *good = "{\"format\":\"ftplat-manifest-1\",\"files\":[{\"bytes\":6,\"path\":"
			   "\"adapter/a..b.json\",\"sha256\":\"" HELLO_SHA "\"}]}";
	ft_err_clear(&e);
	FT_CHECK(ft_manifest_parse(good, strlen(good), &m, &e) == FT_OK);
	FT_CHECK(m.n == 1 && m.files[0].bytes == 6);
	FT_CHECK_STR(m.files[0].path, "adapter/a..b.json");
	FT_CHECK_STR(m.files[0].sha256, HELLO_SHA);
	ft_manifest_release(&m);
}

/* Put bytes into the store; the digest the store names it by into sha. */
static bool put(struct ft_store *s, const char *bytes, char sha[65])
{
	struct ft_store_writer *w;
	struct ft_err e;
	char key[FT_STORE_KEY_MAX];
	uint64_t n;
	ft_err_clear(&e);
	return ft_store_writer_new(s, 0, &w, &e) == FT_OK &&
	       ft_store_writer_write(w, bytes, strlen(bytes), &e) == FT_OK &&
	       ft_store_writer_commit(w, sha, key, &n, &e) == FT_OK;
}

static void read_to(const char *path, char *out, size_t n)
{
	struct ft_buf b = FT_BUF_INIT(1 << 20);
	struct ft_err e;
	ft_err_clear(&e);
	out[0] = '\0';
	if (ft_read_file(path, &b, &e) == FT_OK)
		snprintf(out, n, "%s", ft_buf_str(&b));
	ft_buf_release(&b);
}

FT_TEST(store_get_dir_unpacks_and_checks_each_file)
{
	char dir[64], out[256], got[64], msha[65];
	struct ft_err e;
	th_tmpdir(dir);
	ft_err_clear(&e);
	struct ft_store *s = ft_store_local_new(dir, &e);
	FT_CHECK(s != NULL);
	char sha[65];
	FT_CHECK(put(s, "hello\n", sha));
	FT_CHECK_STR(sha, HELLO_SHA);
	FT_CHECK(put(s, "world\n", sha));
	FT_CHECK_STR(sha, WORLD_SHA);
	const char *m = "{\"format\":\"ftplat-manifest-1\",\"files\":["
			"{\"bytes\":6,\"path\":\"a.txt\",\"sha256\":\"" HELLO_SHA "\"},"
			"{\"bytes\":6,\"path\":\"sub/dir/b.txt\",\"sha256\":\"" WORLD_SHA "\"}]}";
	FT_CHECK(put(s, m, msha));
	snprintf(out, sizeof(out), "%s/out", dir);
	FT_CHECK(ft_store_get_dir(s, msha, out, &e) == FT_OK);
	char p[320];
	snprintf(p, sizeof(p), "%s/a.txt", out);
	read_to(p, got, sizeof(got));
	FT_CHECK_STR(got, "hello\n");
	snprintf(p, sizeof(p), "%s/sub/dir/b.txt", out);
	read_to(p, got, sizeof(got));
	FT_CHECK_STR(got, "world\n");
	/* a blob changed on disk: refused by its digest */
	char blob[320];
	snprintf(blob, sizeof(blob), "%s/sha256/%.2s/%s", dir, WORLD_SHA, WORLD_SHA + 2);
	chmod(blob, 0644);
	FILE *f = fopen(blob, "w");
	FT_CHECK(f != NULL);
	fputs("WORLD\n", f);
	fclose(f);
	snprintf(out, sizeof(out), "%s/out2", dir);
	FT_CHECK(ft_store_get_dir(s, msha, out, &e) == FT_EFORMAT);
	FT_CHECK_STR(e.code, "blob_corrupt");
	/* a blob that is not a manifest, and a name that is not a digest */
	ft_err_clear(&e);
	FT_CHECK(ft_store_get_dir(s, WORLD_SHA "", out, &e) != FT_OK);
	ft_err_clear(&e);
	FT_CHECK(ft_store_get_dir(s, "nothex", out, &e) == FT_EINVAL);
	ft_store_free(s);
	FT_CHECK(ft_remove_tree(dir, &e) == FT_OK);
	FT_CHECK(!ft_file_exists(dir));
}

FT_TEST_MAIN()
