/*
 * store_helpers.h - what test_store.c and test_store_s3.c share: opening the
 * store under test and a raw S3 client that does not go through the
 * backend (its own libcurl calls), used to look at and tamper with what the
 * server holds.
 *
 * The backend is FT_TEST_STORE ("s3" or unset for local). The S3 server is
 * the one deploy/dev/s3.sh started: FT_S3_ENDPOINT, FT_S3_BUCKET,
 * FT_S3_ACCESS_KEY, FT_S3_SECRET_KEY (and FT_S3_REGION) in the environment;
 * without them the S3 cases skip (exit 77, shown by CTest as skipped).
 * Each S3 case works under a fresh random key prefix, so cases and test
 * runs sharing a bucket never see each other's blobs.
 */
#ifndef FT_TEST_STORE_HELPERS_H
#define FT_TEST_STORE_HELPERS_H

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <curl/curl.h>

#include "ft/buf.h"
#include "ft/registry.h"

static inline void th_tmpdir(char out[64])
{
	snprintf(out, 64, "/tmp/ftstore.XXXXXX");
	FT_ASSERT(mkdtemp(out));
}

static inline int th_count_files(const char *dir)
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

static inline bool th_s3_env(void)
{
	static const char *const vars[] = { "FT_S3_ENDPOINT", "FT_S3_BUCKET", "FT_S3_ACCESS_KEY",
					    "FT_S3_SECRET_KEY" };
	for (size_t i = 0; i < FT_ARRAY_LEN(vars); i++)
		if (!getenv(vars[i]) || !*getenv(vars[i]))
			return false;
	return true;
}

static inline bool th_backend_is_s3(void)
{
	const char *b = getenv("FT_TEST_STORE");
	return b && strcmp(b, "s3") == 0;
}

/* "test-<16 hex>/" */
static inline void th_prefix(char out[32])
{
	unsigned char r[8];
	char hex[17];
	ft_random_bytes(r, sizeof(r));
	ft_hex_encode(r, sizeof(r), hex);
	snprintf(out, 32, "test-%s/", hex);
}

/* An S3 store on the dev server, possibly through another endpoint (a
 * fault-injecting proxy), staging in dir/tmp. */
static inline struct ft_store *th_s3_open(const char *dir, const char *endpoint, const char *prefix,
					  int attempts, struct ft_err *e)
{
	char spool[128];
	snprintf(spool, sizeof(spool), "%s/tmp", dir);
	struct ft_store_s3_opts o = {
		.endpoint = endpoint ? endpoint : getenv("FT_S3_ENDPOINT"),
		.bucket = getenv("FT_S3_BUCKET"),
		.region = getenv("FT_S3_REGION"),
		.access_key = getenv("FT_S3_ACCESS_KEY"),
		.secret_key = getenv("FT_S3_SECRET_KEY"),
		.prefix = prefix,
		.spool_dir = spool,
		.multipart_bytes = 5u << 20,
		.attempts = attempts,
		.backoff_ms = 20,
	};
	return ft_store_s3_new(&o, e);
}

/* The raw client: one signed request to <endpoint>/<bucket>/<path>. Fills
 * *status, the answer's headers and body (capped). */
struct th_answer {
	long status;
	struct ft_buf headers, body;
};

static size_t th_collect(char *p, size_t size, size_t n, void *arg)
{
	struct ft_buf *b = arg;
	size_t len = size * n, room = b->max - b->len;
	if (ft_buf_add(b, p, FT_MIN(len, room)))
		return 0;
	return len;
}

static inline bool th_s3_raw(const char *method, const char *path, const void *body, size_t n,
			     struct th_answer *a)
{
	char url[1024], sigv4[96], sha[FT_SHA256_HEX_LEN + 1], sha_h[128];
	const char *region = getenv("FT_S3_REGION");
	CURL *c = curl_easy_init();
	struct curl_slist *h = NULL;
	ft_buf_init(&a->headers, 1 << 16);
	ft_buf_init(&a->body, 1 << 20);
	a->status = 0;
	if (!c)
		return false;
	snprintf(url, sizeof(url), "%s/%s/%s", getenv("FT_S3_ENDPOINT"), getenv("FT_S3_BUCKET"),
		 path);
	snprintf(sigv4, sizeof(sigv4), "aws:amz:%s:s3", region && *region ? region : "us-east-1");
	ft_sha256_hex(body ? body : "", n, sha);
	snprintf(sha_h, sizeof(sha_h), "x-amz-content-sha256: %s", sha);
	h = curl_slist_append(h, sha_h);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_AWS_SIGV4, sigv4);
	curl_easy_setopt(c, CURLOPT_USERNAME, getenv("FT_S3_ACCESS_KEY"));
	curl_easy_setopt(c, CURLOPT_PASSWORD, getenv("FT_S3_SECRET_KEY"));
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, th_collect);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, &a->headers);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, th_collect);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &a->body);
	if (strcmp(method, "HEAD") == 0)
		curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
	else if (strcmp(method, "GET") != 0)
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	if (body) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)n);
	}
	CURLcode cc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &a->status);
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
	return cc == CURLE_OK;
}

static inline void th_answer_release(struct th_answer *a)
{
	ft_buf_release(&a->headers);
	ft_buf_release(&a->body);
}

/* Read a whole fd into buf (at most n bytes); returns bytes read. */
static inline size_t th_read_all(int fd, void *buf, size_t n)
{
	size_t got = 0;
	while (got < n) {
		ssize_t r = read(fd, (char *)buf + got, n - got);
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	return got;
}

#endif
