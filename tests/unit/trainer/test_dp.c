/*
 * test_dp.c - the data-parallel pieces that run without a GPU: ZeRO-1 shard
 * arithmetic (against hand computations) and the file rendezvous of the NCCL
 * unique id.
 */
#include "ft/dp.h"
#include "ftest.h"

#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

FT_TEST(shard_pads_to_equal_aligned_shards)
{
	struct ft_dp_shard s;
	/* n = 1000, world 3: unit 3 * 64 = 192, padded = ceil(1000/192) * 192 = 6 * 192 = 1152,
	 * shard 384: [0,384) 384 real, [384,768) 384 real, [768,1152) 1000-768 = 232 real */
	ft_dp_shard_compute(1000, 3, 0, &s);
	FT_CHECK_INT(s.padded, 1152);
	FT_CHECK_INT(s.shard_len, 384);
	FT_CHECK_INT(s.offset, 0);
	FT_CHECK_INT(s.len, 384);
	ft_dp_shard_compute(1000, 3, 2, &s);
	FT_CHECK_INT(s.offset, 768);
	FT_CHECK_INT(s.len, 232);
	/* n = 100, world 4: padded 256, shard 64: rank 1 [64,128) has 36 real, ranks 2, 3 none */
	ft_dp_shard_compute(100, 4, 1, &s);
	FT_CHECK_INT(s.padded, 256);
	FT_CHECK_INT(s.shard_len, 64);
	FT_CHECK_INT(s.offset, 64);
	FT_CHECK_INT(s.len, 36);
	ft_dp_shard_compute(100, 4, 3, &s);
	FT_CHECK_INT(s.offset, 192);
	FT_CHECK_INT(s.len, 0);
	/* one rank: the whole vector, padded to 64 */
	ft_dp_shard_compute(65, 1, 0, &s);
	FT_CHECK_INT(s.padded, 128);
	FT_CHECK_INT(s.len, 65);
	/* Llama-3.2-1B's 1,235,814,400 parameters over 8 GPUs: unit 512 divides it
	 * (1,235,814,400 / 512 = 2,413,700), so no padding: shard 154,476,800 */
	ft_dp_shard_compute(1235814400u, 8, 7, &s);
	FT_CHECK_INT(s.padded, 1235814400u);
	FT_CHECK_INT(s.shard_len, 154476800u);
	FT_CHECK_INT(s.offset, 7u * 154476800u);
	FT_CHECK_INT(s.len, 154476800u);
}

FT_TEST(shards_cover_the_vector_exactly_once)
{
	for (size_t n = 0; n < 2000; n += 37)
		for (int w = 1; w <= 9; w++) {
			size_t covered = 0, next = 0;
			for (int r = 0; r < w; r++) {
				struct ft_dp_shard s;
				ft_dp_shard_compute(n, w, r, &s);
				FT_CHECK(s.offset % FT_DP_ALIGN == 0);
				FT_CHECK(s.padded == s.shard_len * (size_t)w);
				FT_CHECK(s.padded >= n && s.padded < n + (size_t)w * FT_DP_ALIGN);
				if (s.len) {
					FT_CHECK(s.offset == next);
					next = s.offset + s.len;
				}
				covered += s.len;
			}
			FT_CHECK_INT(covered, n);
		}
}

static char *tmp_path(const char *name)
{
	static char dir[256];
	const char *base = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	snprintf(dir, sizeof(dir), "%s/ft-dp-test-%ld", base, (long)getpid());
	mkdir(dir, 0700);
	char *p = ft_xmalloc(512);
	snprintf(p, 512, "%s/%s", dir, name);
	return p;
}

struct fetcher {
	char *path;
	uint8_t id[FT_DP_ID_BYTES];
	enum ft_rc rc;
};

static void *fetch_thread(void *arg)
{
	struct fetcher *f = arg;
	struct ft_dp_rendezvous rv;
	struct ft_err err;
	ft_err_clear(&err);
	f->rc = ft_dp_rendezvous_file(&rv, f->path, &err);
	if (f->rc == FT_OK)
		f->rc = rv.fetch(&rv, f->id, 5000, &err);
	rv.release(&rv);
	return NULL;
}

FT_TEST(file_rendezvous_passes_the_id)
{
	char *path = tmp_path("nccl.id");
	unlink(path);
	struct fetcher f = { .path = path };
	pthread_t t;
	FT_CHECK(pthread_create(&t, NULL, fetch_thread, &f) == 0);
	usleep(30 * 1000); /* the fetcher is polling before the id exists */
	uint8_t id[FT_DP_ID_BYTES];
	for (int i = 0; i < FT_DP_ID_BYTES; i++)
		id[i] = (uint8_t)(i * 7 + 3);
	struct ft_dp_rendezvous rv;
	struct ft_err err;
	ft_err_clear(&err);
	FT_CHECK(ft_dp_rendezvous_file(&rv, path, &err) == FT_OK);
	FT_CHECK(rv.publish(&rv, id, &err) == FT_OK);
	pthread_join(t, NULL);
	FT_CHECK(f.rc == FT_OK);
	FT_CHECK(memcmp(f.id, id, FT_DP_ID_BYTES) == 0);
	rv.release(&rv); /* the publisher removes the file */
	FT_CHECK(access(path, F_OK) != 0);
	free(path);
}

FT_TEST(file_rendezvous_times_out_and_rejects_bad_files)
{
	char *path = tmp_path("missing.id");
	unlink(path);
	struct ft_dp_rendezvous rv;
	struct ft_err err;
	uint8_t id[FT_DP_ID_BYTES];
	ft_err_clear(&err);
	FT_CHECK(ft_dp_rendezvous_file(&rv, path, &err) == FT_OK);
	FT_CHECK(rv.fetch(&rv, id, 30, &err) == FT_EUNAVAIL);
	FT_CHECK(strstr(err.msg, "did not publish the NCCL id") != NULL);
	/* a file of the wrong size is an error, not an id */
	FILE *fp = fopen(path, "wb");
	FT_CHECK(fp != NULL);
	fputs("short", fp);
	fclose(fp);
	ft_err_clear(&err);
	FT_CHECK(rv.fetch(&rv, id, 30, &err) == FT_EFORMAT);
	FT_CHECK(strstr(err.msg, "(5 bytes, want 128)") != NULL);
	rv.release(&rv);
	unlink(path);
	free(path);
}

FT_TEST_MAIN()
