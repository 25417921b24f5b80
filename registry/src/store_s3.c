/*
 * store_s3.c - the S3-compatible backend: blobs are objects in a bucket, so
 * hosts without a shared disk share one store. libcurl does the HTTP and
 * signs every request with AWS SigV4 (CURLOPT_AWS_SIGV4).
 *
 * Object names are path-style, <endpoint>/<bucket>/<prefix><key>, with the
 * same keys as every backend (sha256/ab/cdef...). What each operation asks:
 *
 *   operation          request                                      answer used
 *   commit: exists?    HEAD key                                     200 + Content-Length, 404
 *   commit: small      PUT key                                      200
 *   commit: large      POST key?uploads=                            <UploadId>
 *                      PUT key?partNumber=N&uploadId=U  (N = 1..)   ETag header
 *                      POST key?uploadId=U  <CompleteMultipartUpload>  200 and no <Code>
 *                      DELETE key?uploadId=U  (after a failure)     -
 *   open_read          GET key  [Range: bytes=H- after a cut]       200 / 206 body
 *   commit: refresh    PUT key, x-amz-copy-source = itself,        200 (404: upload it)
 *                      x-amz-metadata-directive: REPLACE  (found already there)
 *   sweep_tmp          GET bucket?prefix=P&uploads=  (paged)        <Upload> Key, UploadId,
 *                      DELETE key?uploadId=U  (initiated too long ago)  Initiated
 *   list (collection)  GET bucket?list-type=2&prefix=P  (paged by    <Contents> Key, Size,
 *                      continuation-token)                          LastModified
 *   remove_stale       HEAD key, then DELETE key if Last-Modified    Last-Modified, 204
 *                      is older than the grace period
 *   open               HEAD bucket                                  200, 403, 404
 *
 * Writes are staged: a writer appends to an unlinked file in the spool
 * folder (so a crash leaves nothing behind), and commit, which knows the
 * SHA-256 by then, uploads it under its final key; the key of a blob is its
 * hash, so a blob already there (same size) is not sent again. Each PUT
 * carries x-amz-content-sha256 = the SHA-256 of its body (the whole blob
 * for a single PUT, the part for a multipart part), so a server that checks
 * signed payloads refuses a body damaged on the way. PUT and
 * CompleteMultipartUpload are atomic on S3, so a blob is complete or absent.
 *
 * Reads download into an unlinked file in the spool folder, hashing as the
 * bytes arrive; a connection cut mid-body is resumed with a Range request,
 * and a blob whose SHA-256 is not the one its key names is refused
 * ("blob_corrupt") rather than handed on.
 *
 * Retries: every request is tried up to `attempts` times when the
 * connection fails (refused, reset, timed out, cut short) or the server
 * answers 408, 429 or 5xx, sleeping backoff_ms * 2^(try-1), cut to a
 * random point between half and all of it, capped at 30 s. Other answers
 * are final. A transfer that moves less than 1 byte/s for 30 s counts as
 * timed out.
 *
 * Collection (the scheduler's gc.c) needs a blob that a commit finds
 * already there to look new, as the local backend's commit refreshes a
 * file's time: the commit copies the object onto itself with its metadata
 * replaced, which gives it a new Last-Modified (objects over 5 GiB, beyond
 * one CopyObject, are not refreshed: a warning). remove_stale deletes only
 * an object whose Last-Modified is older than the grace period. S3 has no
 * conditional DELETE, so a commit that refreshes a blob between the HEAD
 * and the DELETE of a collection still loses it: the window is one round
 * trip, for a blob that nothing referenced for the whole grace period.
 *
 * Query strings are written in SigV4 canonical form (parameters sorted by
 * name, "uploads=" with its "="): libcurl 7.88 signs the query as given,
 * so "?uploads" would be signed differently from what servers compute.
 */
#include <fcntl.h>
#include <pthread.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "ft/buf.h"
#include "ft/clock.h"
#include "ft/log.h"
#include "registry_int.h"

#define S3_MIN_PART (5ull << 20) /* S3's smallest part but the last */
#define S3_MAX_PARTS 10000
#define S3_BACKOFF_CAP_MS 30000
#define S3_ANSWER_MAX (1u << 20) /* XML answers kept in memory */
#define S3_EMPTY_SHA "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

struct s3_store {
	struct ft_store base;
	char *endpoint, *bucket, *region, *access, *secret, *prefix, *spool;
	char sigv4[96];
	uint64_t part;
	int attempts;
	long backoff_ms;
	long o_sweep_min_age; /* ft_store_s3_opts.sweep_min_age_s */
};

struct s3_tmp {
	int fd;
};

/* One request and its answer. */
struct s3_req {
	const char *method; /* GET HEAD PUT POST DELETE */
	const char *key; /* below the prefix; NULL: the bucket itself */
	const char *query; /* canonical, or NULL */
	/* body: body_len bytes of body_fd from body_off, or body_mem */
	int body_fd;
	uint64_t body_off, body_len;
	const char *body_mem;
	size_t body_mem_len;
	const char *payload_sha; /* hex SHA-256 of the body; NULL: empty body */
	const char *content_type;
	const char *copy_source; /* PUT: CopyObject from this "/bucket/key" */
	/* download: 2xx bodies are appended to out_fd and hashed */
	int out_fd;
	struct ft_sha256 *out_sha;
	uint64_t out_have;
	/* the answer */
	long status;
	struct ft_buf answer; /* non-download bodies (XML), capped */
	char etag[160];
	char last_modified[64]; /* the header, as sent */
	uint64_t length;
	bool has_length;
	/* per attempt */
	CURL *curl;
	uint64_t sent;
	bool body_started;
	bool restarted; /* a Range was ignored: the download started over */
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void curl_init_once(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

static void count(uint64_t *c)
{
	__atomic_add_fetch(c, 1, __ATOMIC_RELAXED);
}

/* ---- one HTTP exchange ------------------------------------------------------ */

static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
	struct s3_req *r = arg;
	size_t len = size * n;
	if (len >= 5 && memcmp(p, "HTTP/", 5) == 0) { /* a new answer (after 100 Continue) */
		r->etag[0] = '\0';
		r->last_modified[0] = '\0';
		r->has_length = false;
		return len;
	}
	const char *colon = memchr(p, ':', len);
	if (!colon)
		return len;
	size_t nl = (size_t)(colon - p);
	const char *v = colon + 1, *e = p + len;
	while (v < e && (*v == ' ' || *v == '\t'))
		v++;
	while (e > v && (e[-1] == '\r' || e[-1] == '\n' || e[-1] == ' '))
		e--;
	size_t vl = (size_t)(e - v);
	if (nl == 4 && strncasecmp(p, "etag", 4) == 0 && vl < sizeof(r->etag)) {
		memcpy(r->etag, v, vl);
		r->etag[vl] = '\0';
	} else if (nl == 13 && strncasecmp(p, "last-modified", 13) == 0 &&
		   vl < sizeof(r->last_modified)) {
		memcpy(r->last_modified, v, vl);
		r->last_modified[vl] = '\0';
	} else if (nl == 14 && strncasecmp(p, "content-length", 14) == 0 && vl && vl < 21) {
		char num[24];
		memcpy(num, v, vl);
		num[vl] = '\0';
		char *end;
		unsigned long long x = strtoull(num, &end, 10);
		if (*end == '\0') {
			r->length = x;
			r->has_length = true;
		}
	}
	return len;
}

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
	struct s3_req *r = arg;
	size_t len = size * n;
	long st = 0;
	curl_easy_getinfo(r->curl, CURLINFO_RESPONSE_CODE, &st);
	if (r->out_fd < 0 || st < 200 || st > 299) {
		size_t room = r->answer.max - r->answer.len;
		if (ft_buf_add(&r->answer, p, FT_MIN(len, room)))
			return 0;
		return len;
	}
	if (!r->body_started) {
		r->body_started = true;
		if (st == 200 && r->out_have > 0) { /* the server ignored our Range */
			if (ftruncate(r->out_fd, 0) || lseek(r->out_fd, 0, SEEK_SET) < 0)
				return 0;
			ft_sha256_release(r->out_sha);
			if (ft_sha256_init(r->out_sha))
				return 0;
			r->out_have = 0;
			r->restarted = true;
		}
	}
	for (size_t done = 0; done < len;) {
		ssize_t w = write(r->out_fd, p + done, len - done);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return 0; /* CURLE_WRITE_ERROR: final, not retried */
		done += (size_t)w;
	}
	ft_sha256_update(r->out_sha, p, len);
	r->out_have += len;
	return len;
}

static size_t on_read(char *p, size_t size, size_t n, void *arg)
{
	struct s3_req *r = arg;
	size_t want = size * n;
	uint64_t left = r->body_len - r->sent;
	if (want > left)
		want = (size_t)left;
	if (want == 0)
		return 0;
	ssize_t got;
	do
		got = pread(r->body_fd, p, want, (off_t)(r->body_off + r->sent));
	while (got < 0 && errno == EINTR);
	if (got <= 0)
		return CURL_READFUNC_ABORT;
	r->sent += (uint64_t)got;
	return (size_t)got;
}

static int on_seek(void *arg, curl_off_t off, int origin)
{
	struct s3_req *r = arg;
	if (origin != SEEK_SET || off < 0 || (uint64_t)off > r->body_len)
		return CURL_SEEKFUNC_CANTSEEK;
	r->sent = (uint64_t)off;
	return CURL_SEEKFUNC_OK;
}

static enum ft_rc s3_url(struct s3_store *s, const struct s3_req *r, struct ft_buf *u)
{
	enum ft_rc rc = ft_buf_addf(u, "%s/%s", s->endpoint, s->bucket);
	if (!rc && r->key)
		rc = ft_buf_addf(u, "/%s%s", s->prefix, r->key);
	if (!rc && r->query)
		rc = ft_buf_addf(u, "?%s", r->query);
	return rc;
}

static CURLcode s3_perform(struct s3_store *s, struct s3_req *r, char errbuf[CURL_ERROR_SIZE])
{
	CURL *c = r->curl;
	struct ft_buf url = FT_BUF_INIT(4096);
	struct curl_slist *h = NULL;
	char sha_h[128], range_h[64], type_h[96];
	struct ft_buf copy_h = FT_BUF_INIT(4096);
	CURLcode cc = CURLE_OUT_OF_MEMORY;

	curl_easy_reset(c);
	if (s3_url(s, r, &url))
		goto out;
	snprintf(sha_h, sizeof(sha_h), "x-amz-content-sha256: %s",
		 r->payload_sha ? r->payload_sha : S3_EMPTY_SHA);
	/* (No "Expect:" to drop 100-continue: libcurl 7.88 would sign the
	 * empty header and the server would not.) */
	h = curl_slist_append(h, sha_h);
	if (r->content_type) {
		snprintf(type_h, sizeof(type_h), "content-type: %s", r->content_type);
		h = curl_slist_append(h, type_h);
	}
	if (r->copy_source) {
		if (ft_buf_addf(&copy_h, "x-amz-copy-source: %s", r->copy_source))
			goto out;
		h = curl_slist_append(h, ft_buf_str(&copy_h));
		h = curl_slist_append(h, "x-amz-metadata-directive: REPLACE");
	}
	if (r->out_fd >= 0 && r->out_have > 0) {
		snprintf(range_h, sizeof(range_h), "range: bytes=%" PRIu64 "-", r->out_have);
		h = curl_slist_append(h, range_h);
	}
	if (!h)
		goto out;
	errbuf[0] = '\0';
	curl_easy_setopt(c, CURLOPT_URL, ft_buf_str(&url));
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_AWS_SIGV4, s->sigv4);
	curl_easy_setopt(c, CURLOPT_USERNAME, s->access);
	curl_easy_setopt(c, CURLOPT_PASSWORD, s->secret);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
	curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, 30L);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
	if (strcmp(r->method, "HEAD") == 0) {
		curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
	} else if (strcmp(r->method, "PUT") == 0) {
		curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
		curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, (curl_off_t)r->body_len);
		curl_easy_setopt(c, CURLOPT_READFUNCTION, on_read);
		curl_easy_setopt(c, CURLOPT_READDATA, r);
		curl_easy_setopt(c, CURLOPT_SEEKFUNCTION, on_seek);
		curl_easy_setopt(c, CURLOPT_SEEKDATA, r);
	} else if (strcmp(r->method, "POST") == 0) {
		curl_easy_setopt(c, CURLOPT_POST, 1L);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_mem_len);
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, r->body_mem ? r->body_mem : "");
	} else if (strcmp(r->method, "DELETE") == 0) {
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, "DELETE");
	}
	cc = curl_easy_perform(c);
out:
	curl_slist_free_all(h);
	ft_buf_release(&copy_h);
	ft_buf_release(&url);
	return cc;
}

static bool retryable_curl(CURLcode cc)
{
	static const CURLcode transient[] = {
		CURLE_COULDNT_CONNECT, CURLE_COULDNT_RESOLVE_HOST, CURLE_OPERATION_TIMEDOUT,
		CURLE_SEND_ERROR,      CURLE_RECV_ERROR,	   CURLE_GOT_NOTHING,
		CURLE_PARTIAL_FILE,    CURLE_SSL_CONNECT_ERROR,	   CURLE_HTTP2_STREAM,
	};
	for (size_t i = 0; i < FT_ARRAY_LEN(transient); i++)
		if (cc == transient[i])
			return true;
	return false;
}

static bool retryable_status(long st)
{
	return st == 408 || st == 429 || (st >= 500 && st <= 599);
}

/* doubling from s3_backoff_ms up to the cap, between half and all of it */
static uint64_t backoff_ms(const struct s3_store *s, int attempt)
{
	return (uint64_t)ft_backoff_ms(s->backoff_ms, attempt, S3_BACKOFF_CAP_MS, 50, 100);
}

/* Run r with retries. FT_OK means an HTTP answer arrived (r->status says
 * which); transport failures after the last try become FT_EUNAVAIL. */
static enum ft_rc s3_request(struct s3_store *s, CURL *c, struct s3_req *r, struct ft_err *err)
{
	char errbuf[CURL_ERROR_SIZE];
	CURLcode cc = CURLE_OK;
	r->curl = c;
	for (int attempt = 1;; attempt++) {
		r->status = 0;
		r->etag[0] = '\0';
		r->has_length = false;
		r->sent = 0;
		r->body_started = false;
		ft_buf_reset(&r->answer);
		if (r->out_fd >= 0 && r->out_have > 0 && attempt > 1)
			count(&s->base.counters.resumes);
		count(&s->base.counters.requests);
		cc = s3_perform(s, r, errbuf);
		if (cc == CURLE_OK)
			curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
		bool again = cc != CURLE_OK ? retryable_curl(cc) : retryable_status(r->status);
		if (!again)
			break;
		if (attempt >= s->attempts)
			break;
		count(&s->base.counters.retries);
		uint64_t ms = backoff_ms(s, attempt);
		ft_logf(FT_LOG_WARN, "store", NULL, "s3 %s %s: %s; try %d of %d in %" PRIu64 " ms",
			r->method, r->key ? r->key : s->bucket,
			cc ? (errbuf[0] ? errbuf : curl_easy_strerror(cc)) : "server error",
			attempt + 1, s->attempts, ms);
		ft_sleep_ms(ms);
	}
	if (cc != CURLE_OK) {
		/* libcurl's own words name the host and port: logs only (detail). */
		ft_failf(err, cc == CURLE_WRITE_ERROR ? FT_EIO : FT_EUNAVAIL, "store_unavailable",
			 "object store %s of \"%s\" failed: %s", r->method,
			 r->key ? r->key : s->bucket, curl_easy_strerror(cc));
		ft_err_detailf(err, "%s", errbuf[0] ? errbuf : curl_easy_strerror(cc));
		ft_err_hintf(err, "check that the S3 endpoint in s3_endpoint is reachable");
		return err->rc;
	}
	return FT_OK;
}

/* An unexpected answer as an error: the S3 <Code> and <Message>. */
static enum ft_rc s3_fail(struct s3_store *s, const struct s3_req *r, struct ft_err *err)
{
	char code[64] = "", msg[256] = "";
	size_t pos = 0;
	ft_s3_xml_text(r->answer.ptr, r->answer.len, "Code", &pos, code, sizeof(code));
	pos = 0;
	ft_s3_xml_text(r->answer.ptr, r->answer.len, "Message", &pos, msg, sizeof(msg));
	enum ft_rc rc = r->status == 403	      ? FT_EAUTH
			: retryable_status(r->status) ? FT_EUNAVAIL
						      : FT_EIO;
	ft_failf(err, rc, rc == FT_EUNAVAIL ? "store_unavailable" : "store_error",
		 "object store %s of \"%s\" answered %ld%s%s%s%s", r->method,
		 r->key ? r->key : s->bucket, r->status, code[0] ? " " : "", code,
		 msg[0] ? ": " : "", msg);
	if (r->status == 403)
		ft_err_hintf(err, "check s3_access_key, s3_secret_key and s3_region");
	return rc;
}

static void req_init(struct s3_req *r, const char *method, const char *key, const char *query)
{
	memset(r, 0, sizeof(*r));
	r->method = method;
	r->key = key;
	r->query = query;
	r->body_fd = -1;
	r->out_fd = -1;
	ft_buf_init(&r->answer, S3_ANSWER_MAX);
}

static CURL *s3_curl(struct ft_err *err)
{
	CURL *c = curl_easy_init();
	if (!c)
		ft_failf(err, FT_ENOMEM, NULL, "cannot start a libcurl handle");
	return c;
}

/* An unlinked file in the spool folder. */
static int spool_open(struct s3_store *s, struct ft_err *err)
{
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/s3-XXXXXX", s->spool);
	int fd = mkostemp(path, O_CLOEXEC);
	if (fd < 0) {
		ft_failf(err, FT_EIO, "io_error", "cannot create a spool file in \"%s\": %s",
			 s->spool, strerror(errno));
		return -1;
	}
	unlink(path);
	return fd;
}

/* ---- writing -------------------------------------------------------------------- */

static enum ft_rc s3_tmp_open(struct ft_store *st, void **out, struct ft_err *err)
{
	struct s3_store *s = (struct s3_store *)st;
	struct s3_tmp *t = calloc(1, sizeof(*t));
	if (!t)
		return ft_failf(err, FT_ENOMEM, NULL, "out of memory");
	t->fd = spool_open(s, err);
	if (t->fd < 0) {
		free(t);
		return err->rc;
	}
	*out = t;
	return FT_OK;
}

static enum ft_rc s3_tmp_write(void *tmp, const void *p, size_t n, struct ft_err *err)
{
	struct s3_tmp *t = tmp;
	const char *c = p;
	while (n) {
		ssize_t w = write(t->fd, c, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return ft_failf(err, FT_EIO, "io_error", "writing a spool file: %s",
					strerror(errno));
		c += w;
		n -= (size_t)w;
	}
	return FT_OK;
}

static void s3_tmp_abort(void *tmp)
{
	struct s3_tmp *t = tmp;
	if (!t)
		return;
	close(t->fd);
	free(t);
}

/* The hex digest a key names: "sha256/ab/cdef..." -> "abcdef...". */
static void key_hex(const char *key, char hex[FT_SHA256_HEX_LEN + 1])
{
	memcpy(hex, key + 7, 2);
	memcpy(hex + 2, key + 10, 62);
	hex[64] = '\0';
}

static enum ft_rc hash_range(int fd, uint64_t off, uint64_t len, char hex[FT_SHA256_HEX_LEN + 1],
			     struct ft_err *err)
{
	struct ft_sha256 h;
	unsigned char d[FT_SHA256_LEN];
	char buf[1 << 16];
	if (ft_sha256_init(&h))
		return ft_failf(err, FT_EINTERNAL, NULL, "cannot start SHA-256");
	while (len) {
		ssize_t n = pread(fd, buf, (size_t)FT_MIN(len, sizeof(buf)), (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			ft_sha256_release(&h);
			return ft_failf(err, FT_EIO, "io_error", "reading a spool file: %s",
					n < 0 ? strerror(errno) : "short file");
		}
		ft_sha256_update(&h, buf, (size_t)n);
		off += (uint64_t)n;
		len -= (uint64_t)n;
	}
	ft_sha256_final(&h, d);
	ft_hex_encode(d, sizeof(d), hex);
	return FT_OK;
}

static enum ft_rc s3_put_single(struct s3_store *s, CURL *c, int fd, uint64_t size, const char *key,
				struct ft_err *err)
{
	struct s3_req r;
	char hex[FT_SHA256_HEX_LEN + 1];
	key_hex(key, hex);
	req_init(&r, "PUT", key, NULL);
	r.body_fd = fd;
	r.body_len = size;
	r.payload_sha = hex;
	enum ft_rc rc = s3_request(s, c, &r, err);
	if (!rc && r.status != 200)
		rc = s3_fail(s, &r, err);
	ft_buf_release(&r.answer);
	return rc;
}

static void s3_abort_upload(struct s3_store *s, CURL *c, const char *key, const char *id_q)
{
	struct s3_req r;
	struct ft_err ignored;
	char q[512];
	ft_err_clear(&ignored);
	snprintf(q, sizeof(q), "uploadId=%s", id_q);
	req_init(&r, "DELETE", key, q);
	if (s3_request(s, c, &r, &ignored) || (r.status != 204 && r.status != 200))
		ft_logf(FT_LOG_WARN, "store", NULL,
			"s3: could not abort the multipart upload of %s (status %ld); "
			"sweep_tmp or a bucket lifecycle rule removes it later",
			key, r.status);
	ft_buf_release(&r.answer);
}

static enum ft_rc s3_put_multipart(struct s3_store *s, CURL *c, int fd, uint64_t size,
				   const char *key, struct ft_err *err)
{
	struct s3_req r;
	struct ft_buf done = FT_BUF_INIT(4u << 20);
	char id[256], q[512], *id_q = NULL;
	size_t pos = 0;
	uint64_t nparts = (size + s->part - 1) / s->part;
	enum ft_rc rc;

	if (nparts > S3_MAX_PARTS)
		return ft_failf(err, FT_ELIMIT, "file_too_large",
				"a blob of %" PRIu64 " bytes needs more than %d parts of "
				"s3_multipart_mb; raise s3_multipart_mb",
				size, S3_MAX_PARTS);
	req_init(&r, "POST", key, "uploads=");
	rc = s3_request(s, c, &r, err);
	if (!rc && r.status != 200)
		rc = s3_fail(s, &r, err);
	if (!rc && !ft_s3_xml_text(r.answer.ptr, r.answer.len, "UploadId", &pos, id, sizeof(id)))
		rc = ft_failf(err, FT_EIO, "store_error",
			      "object store answered CreateMultipartUpload of \"%s\" without an "
			      "UploadId",
			      key);
	ft_buf_release(&r.answer);
	if (rc)
		return rc;
	id_q = curl_easy_escape(c, id, 0);
	if (!id_q)
		return ft_failf(err, FT_ENOMEM, NULL, "out of memory");
	rc = ft_buf_addstr(&done, "<CompleteMultipartUpload>");
	for (uint64_t i = 0; i < nparts && !rc; i++) {
		uint64_t off = i * s->part, len = FT_MIN(s->part, size - off);
		char hex[FT_SHA256_HEX_LEN + 1];
		if ((rc = hash_range(fd, off, len, hex, err)))
			break;
		snprintf(q, sizeof(q), "partNumber=%" PRIu64 "&uploadId=%s", i + 1, id_q);
		req_init(&r, "PUT", key, q);
		r.body_fd = fd;
		r.body_off = off;
		r.body_len = len;
		r.payload_sha = hex;
		rc = s3_request(s, c, &r, err);
		if (!rc && r.status != 200)
			rc = s3_fail(s, &r, err);
		if (!rc && !r.etag[0])
			rc = ft_failf(err, FT_EIO, "store_error",
				      "object store answered part %" PRIu64 " of \"%s\" without "
				      "an ETag",
				      i + 1, key);
		if (!rc) {
			count(&s->base.counters.parts);
			rc = ft_buf_addf(&done,
					 "<Part><PartNumber>%" PRIu64
					 "</PartNumber><ETag>%s</ETag></Part>",
					 i + 1, r.etag);
		}
		ft_buf_release(&r.answer);
	}
	if (!rc)
		rc = ft_buf_addstr(&done, "</CompleteMultipartUpload>");
	if (!rc) {
		char sha[FT_SHA256_HEX_LEN + 1], code[64];
		ft_sha256_hex(done.ptr, done.len, sha);
		snprintf(q, sizeof(q), "uploadId=%s", id_q);
		req_init(&r, "POST", key, q);
		r.body_mem = done.ptr;
		r.body_mem_len = done.len;
		r.payload_sha = sha;
		r.content_type = "application/xml";
		rc = s3_request(s, c, &r, err);
		pos = 0;
		/* S3 may answer 200 and then an <Error> in the body. */
		if (!rc && (r.status != 200 || ft_s3_xml_text(r.answer.ptr, r.answer.len, "Code",
							      &pos, code, sizeof(code)))) {
			if (r.status == 200)
				r.status = 500;
			rc = s3_fail(s, &r, err);
		}
		ft_buf_release(&r.answer);
	}
	if (rc)
		s3_abort_upload(s, c, key, id_q);
	curl_free(id_q);
	ft_buf_release(&done);
	return rc;
}

#define S3_COPY_MAX (5ull << 30) /* one CopyObject's largest object */

/* A new Last-Modified for key: CopyObject onto itself, metadata replaced.
 * *gone when the object is not there any more. */
static enum ft_rc s3_refresh(struct s3_store *s, CURL *c, const char *key, uint64_t size,
			     bool *gone, struct ft_err *err)
{
	if (size > S3_COPY_MAX) {
		ft_logf(FT_LOG_WARN, "store", NULL,
			"s3: %s is over 5 GiB: not refreshed, a collection may take it while it "
			"is being referenced again",
			key);
		return FT_OK;
	}
	struct ft_buf src = FT_BUF_INIT(4096);
	struct s3_req r;
	enum ft_rc rc = ft_buf_addf(&src, "/%s/%s%s", s->bucket, s->prefix, key);
	if (rc)
		return ft_failf(err, rc, NULL, "copy source too long");
	req_init(&r, "PUT", key, NULL);
	r.copy_source = ft_buf_str(&src);
	rc = s3_request(s, c, &r, err);
	if (!rc && r.status == 404)
		*gone = true;
	else if (!rc && r.status != 200)
		rc = s3_fail(s, &r, err);
	ft_buf_release(&r.answer);
	ft_buf_release(&src);
	return rc;
}

static enum ft_rc s3_tmp_commit(struct ft_store *st, void *tmp, const char *key, struct ft_err *err)
{
	struct s3_store *s = (struct s3_store *)st;
	struct s3_tmp *t = tmp;
	struct s3_req r;
	enum ft_rc rc;
	off_t end = lseek(t->fd, 0, SEEK_END);
	CURL *c = s3_curl(err);
	if (end < 0 || !c) {
		rc = c ? ft_failf(err, FT_EIO, "io_error", "spool file: %s", strerror(errno))
		       : err->rc;
		goto out;
	}
	uint64_t size = (uint64_t)end;
	req_init(&r, "HEAD", key, NULL);
	rc = s3_request(s, c, &r, err);
	if (!rc && r.status == 200 && r.has_length && r.length == size) {
		ft_buf_release(&r.answer);
		/* the same content is there already: refreshed for collection;
		 * gone meanwhile (a collection took it): uploaded again below */
		bool gone = false;
		rc = s3_refresh(s, c, key, size, &gone, err);
		if (rc || !gone)
			goto out;
	}
	/* 404: not there. 403: S3 answers that to a HEAD of a missing key when
	 * the key may not list the bucket; the PUT below says whether we may
	 * write. */
	if (!rc && r.status != 200 && r.status != 404 && r.status != 403)
		rc = s3_fail(s, &r, err);
	ft_buf_release(&r.answer);
	if (rc)
		goto out;
	rc = size > s->part ? s3_put_multipart(s, c, t->fd, size, key, err)
			    : s3_put_single(s, c, t->fd, size, key, err);
out:
	if (c)
		curl_easy_cleanup(c);
	s3_tmp_abort(t);
	return rc;
}

/* ---- reading -------------------------------------------------------------------- */

static int s3_open_read(struct ft_store *st, const char *key, uint64_t *size, struct ft_err *err)
{
	struct s3_store *s = (struct s3_store *)st;
	struct ft_sha256 h;
	struct s3_req r;
	unsigned char d[FT_SHA256_LEN];
	char want[FT_SHA256_HEX_LEN + 1], got[FT_SHA256_HEX_LEN + 1];
	CURL *c = s3_curl(err);
	if (!c)
		return -1;
	int fd = spool_open(s, err);
	if (fd < 0)
		goto free_curl;
	if (ft_sha256_init(&h)) {
		ft_failf(err, FT_EINTERNAL, NULL, "cannot start SHA-256");
		goto close_fd;
	}
	req_init(&r, "GET", key, NULL);
	r.out_fd = fd;
	r.out_sha = &h;
	if (s3_request(s, c, &r, err))
		goto release;
	if (r.status == 404) {
		ft_failf(err, FT_ENOTFOUND, "blob_missing", "blob \"%s\" is not in the store", key);
		goto release;
	}
	if (r.status != 200 && r.status != 206) {
		s3_fail(s, &r, err);
		goto release;
	}
	ft_sha256_final(&h, d);
	ft_hex_encode(d, sizeof(d), got);
	key_hex(key, want);
	if (strcmp(got, want) != 0) {
		ft_failf(err, FT_EIO, "blob_corrupt",
			 "blob \"%s\" failed its SHA-256 check (the object store holds %" PRIu64
			 " bytes hashing to %.12s...)",
			 key, r.out_have, got);
		goto close_answer;
	}
	if (lseek(fd, 0, SEEK_SET) < 0) {
		ft_failf(err, FT_EIO, "io_error", "spool file: %s", strerror(errno));
		goto close_answer;
	}
	if (size)
		*size = r.out_have;
	ft_buf_release(&r.answer);
	curl_easy_cleanup(c);
	return fd;
release:
	ft_sha256_release(&h);
close_answer:
	ft_buf_release(&r.answer);
close_fd:
	close(fd);
free_curl:
	curl_easy_cleanup(c);
	return -1;
}

/* ---- sweeping ------------------------------------------------------------------- */

/* Abort the multipart uploads under our prefix started max_age_s or more
 * ago (a writer that died between its first part and the completion). */
static int s3_sweep_tmp(struct ft_store *st, long max_age_s)
{
	struct s3_store *s = (struct s3_store *)st;
	struct ft_err err;
	struct s3_req r;
	char kmark[1100] = "", umark[300] = "";
	int n = 0;
	long long now = ft_time_wall_ms() / 1000;
	size_t plen = strlen(s->prefix);
	CURL *c = s3_curl(NULL);
	if (!c)
		return 0;
	char *pfx = curl_easy_escape(c, s->prefix, 0);
	for (int page = 0; pfx && page < 1000; page++) {
		struct ft_buf q = FT_BUF_INIT(4096);
		char *km = curl_easy_escape(c, kmark, 0), *um = curl_easy_escape(c, umark, 0);
		enum ft_rc brc = !km || !um ? FT_ENOMEM : FT_OK;
		if (!brc && kmark[0])
			brc = ft_buf_addf(&q, "key-marker=%s&", km);
		if (!brc)
			brc = ft_buf_addf(&q, "prefix=%ssha256%%2F&", pfx);
		if (!brc && umark[0])
			brc = ft_buf_addf(&q, "upload-id-marker=%s&", um);
		if (!brc)
			brc = ft_buf_addstr(&q, "uploads=");
		curl_free(km);
		curl_free(um);
		ft_err_clear(&err);
		req_init(&r, "GET", NULL, ft_buf_str(&q));
		bool ok = !brc && !s3_request(s, c, &r, &err) && r.status == 200;
		ft_buf_release(&q);
		if (!ok) {
			if (!brc && !ft_err_is_set(&err))
				s3_fail(s, &r, &err);
			ft_logf(FT_LOG_WARN, "store", NULL, "s3 sweep: %s", err.msg);
			ft_buf_release(&r.answer);
			break;
		}
		char up[4096], key[1100], id[300], when[64], trunc[16] = "";
		size_t pos = 0;
		while (ft_s3_xml_text(r.answer.ptr, r.answer.len, "Upload", &pos, up, sizeof(up))) {
			size_t a = 0, b = 0, w = 0;
			if (!ft_s3_xml_text(up, strlen(up), "Key", &a, key, sizeof(key)) ||
			    !ft_s3_xml_text(up, strlen(up), "UploadId", &b, id, sizeof(id)) ||
			    !ft_s3_xml_text(up, strlen(up), "Initiated", &w, when, sizeof(when)))
				continue;
			long long t0 = ft_s3_iso8601_parse(when);
			if (strncmp(key, s->prefix, plen) != 0 || !ft_store_key_valid(key + plen) ||
			    t0 < 0 || now - t0 < FT_MAX(max_age_s, s->o_sweep_min_age))
				continue;
			char *idq = curl_easy_escape(c, id, 0);
			struct s3_req d;
			char dq[512];
			if (!idq)
				continue;
			snprintf(dq, sizeof(dq), "uploadId=%s", idq);
			curl_free(idq);
			ft_err_clear(&err);
			req_init(&d, "DELETE", key + plen, dq);
			if (!s3_request(s, c, &d, &err) && (d.status == 204 || d.status == 200))
				n++;
			ft_buf_release(&d.answer);
		}
		pos = 0;
		ft_s3_xml_text(r.answer.ptr, r.answer.len, "IsTruncated", &pos, trunc,
			       sizeof(trunc));
		bool more = strcmp(trunc, "true") == 0;
		pos = 0;
		more = more && ft_s3_xml_text(r.answer.ptr, r.answer.len, "NextKeyMarker", &pos,
					      kmark, sizeof(kmark));
		pos = 0;
		more = more && ft_s3_xml_text(r.answer.ptr, r.answer.len, "NextUploadIdMarker",
					      &pos, umark, sizeof(umark));
		ft_buf_release(&r.answer);
		if (!more)
			break;
	}
	curl_free(pfx);
	curl_easy_cleanup(c);
	return n;
}

/* ---- collection ---------------------------------------------------------------- */

/* The blobs under our prefix (ListObjectsV2, 1000 a page), for gc.c. A
 * listing that fails part way fails: the collection deletes nothing. */
static enum ft_rc s3_list(struct ft_store *st,
			  int (*fn)(const char *hex, uint64_t bytes, int64_t mtime_s, void *ud),
			  void *ud, struct ft_err *err)
{
	struct s3_store *s = (struct s3_store *)st;
	char token[2048] = "";
	size_t plen = strlen(s->prefix);
	enum ft_rc rc = FT_OK;
	CURL *c = s3_curl(err);
	if (!c)
		return err->rc;
	char *pfx = curl_easy_escape(c, s->prefix, 0);
	if (!pfx)
		rc = ft_failf(err, FT_ENOMEM, NULL, "out of memory");
	for (int stop = 0; !rc && !stop;) {
		struct ft_buf q = FT_BUF_INIT(8192);
		char *tk = curl_easy_escape(c, token, 0);
		rc = tk ? FT_OK : FT_ENOMEM;
		if (!rc && token[0])
			rc = ft_buf_addf(&q, "continuation-token=%s&", tk);
		if (!rc)
			rc = ft_buf_addf(&q, "list-type=2&prefix=%ssha256%%2F", pfx);
		curl_free(tk);
		if (rc) {
			ft_buf_release(&q);
			rc = ft_failf(err, rc, NULL, "listing query too long");
			break;
		}
		struct s3_req r;
		req_init(&r, "GET", NULL, ft_buf_str(&q));
		rc = s3_request(s, c, &r, err);
		if (!rc && r.status != 200)
			rc = s3_fail(s, &r, err);
		ft_buf_release(&q);
		if (rc) {
			ft_buf_release(&r.answer);
			break;
		}
		char item[4096], key[1100], size[32], when[64], trunc[16] = "";
		size_t pos = 0;
		while (!stop && ft_s3_xml_text(r.answer.ptr, r.answer.len, "Contents", &pos, item,
					       sizeof(item))) {
			size_t a = 0, b = 0, w = 0;
			if (!ft_s3_xml_text(item, strlen(item), "Key", &a, key, sizeof(key)) ||
			    !ft_s3_xml_text(item, strlen(item), "Size", &b, size, sizeof(size)) ||
			    !ft_s3_xml_text(item, strlen(item), "LastModified", &w, when,
					    sizeof(when)))
				continue;
			const char *k = key + plen; /* sha256/ab/cdef... */
			long long t = ft_s3_iso8601_parse(when);
			char *end;
			unsigned long long bytes = strtoull(size, &end, 10);
			if (strncmp(key, s->prefix, plen) != 0 || !ft_store_key_valid(k) || t < 0 ||
			    *end || end == size)
				continue;
			char hex[FT_SHA256_HEX_LEN + 1];
			key_hex(k, hex);
			stop = fn(hex, bytes, t, ud);
		}
		pos = 0;
		ft_s3_xml_text(r.answer.ptr, r.answer.len, "IsTruncated", &pos, trunc,
			       sizeof(trunc));
		pos = 0;
		if (!stop && strcmp(trunc, "true") == 0) {
			if (!ft_s3_xml_text(r.answer.ptr, r.answer.len, "NextContinuationToken",
					    &pos, token, sizeof(token)))
				rc = ft_failf(err, FT_EIO, "store_error",
					      "object store listing is truncated without a "
					      "continuation token");
		} else {
			stop = 1;
		}
		ft_buf_release(&r.answer);
	}
	curl_free(pfx);
	curl_easy_cleanup(c);
	return rc;
}

/* Last-Modified ("Sat, 05 Dec 2026 12:00:00 GMT") as Unix seconds; -1. */
static long long http_date(const char *v)
{
	struct tm tm = { 0 };
	const char *end = strptime(v, "%a, %d %b %Y %H:%M:%S GMT", &tm);
	return end && *end == '\0' ? (long long)timegm(&tm) : -1;
}

static enum ft_rc s3_remove_stale(struct ft_store *st, const char *key, long min_age_s,
				  bool *removed, uint64_t *bytes, struct ft_err *err)
{
	struct s3_store *s = (struct s3_store *)st;
	struct s3_req r;
	CURL *c = s3_curl(err);
	if (!c)
		return err->rc;
	req_init(&r, "HEAD", key, NULL);
	enum ft_rc rc = s3_request(s, c, &r, err);
	if (!rc && r.status != 200 && r.status != 404)
		rc = s3_fail(s, &r, err);
	long long t = !rc && r.status == 200 ? http_date(r.last_modified) : -1;
	uint64_t size = r.length;
	ft_buf_release(&r.answer);
	if (rc || r.status == 404 || t < 0 || ft_time_wall_ms() / 1000 - t < min_age_s) {
		if (!rc && r.status == 200 && t < 0)
			ft_logf(FT_LOG_WARN, "store", NULL,
				"s3: %s kept: no Last-Modified date in its HEAD answer", key);
		curl_easy_cleanup(c);
		return rc;
	}
	req_init(&r, "DELETE", key, NULL);
	rc = s3_request(s, c, &r, err);
	if (!rc && r.status != 204 && r.status != 200 && r.status != 404)
		rc = s3_fail(s, &r, err);
	if (!rc && r.status != 404) {
		*removed = true;
		if (bytes)
			*bytes = size;
	}
	ft_buf_release(&r.answer);
	curl_easy_cleanup(c);
	return rc;
}

/* ---- the store ------------------------------------------------------------------ */

static void s3_free(struct ft_store *st)
{
	struct s3_store *s = (struct s3_store *)st;
	free(s->endpoint);
	free(s->bucket);
	free(s->region);
	free(s->access);
	free(s->secret);
	free(s->prefix);
	free(s->spool);
	free(s);
}

static const struct ft_store_ops s3_ops = {
	.name = "s3",
	.tmp_open = s3_tmp_open,
	.tmp_write = s3_tmp_write,
	.tmp_commit = s3_tmp_commit,
	.tmp_abort = s3_tmp_abort,
	.open_read = s3_open_read,
	.sweep_tmp = s3_sweep_tmp,
	.free = s3_free,
	.list = s3_list,
	.remove_stale = s3_remove_stale,
};

static bool chars_ok(const char *s, const char *extra)
{
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || strchr(extra, *s)))
			return false;
	return true;
}

static enum ft_rc check_opts(const struct ft_store_s3_opts *o, struct ft_err *err)
{
	static const struct {
		const char *key;
		size_t off;
	} required[] = {
		{ "s3_endpoint", offsetof(struct ft_store_s3_opts, endpoint) },
		{ "s3_bucket", offsetof(struct ft_store_s3_opts, bucket) },
		{ "s3_access_key", offsetof(struct ft_store_s3_opts, access_key) },
		{ "s3_secret_key", offsetof(struct ft_store_s3_opts, secret_key) },
		{ "store_dir", offsetof(struct ft_store_s3_opts, spool_dir) },
	};
	for (size_t i = 0; i < FT_ARRAY_LEN(required); i++) {
		const char *v;
		memcpy(&v, (const char *)o + required[i].off, sizeof v);
		if (!v || !*v)
			return ft_failf(err, FT_EINVAL, "invalid_config",
					"store_backend = s3 needs %s to be set", required[i].key);
	}
	if (strncmp(o->endpoint, "http://", 7) != 0 && strncmp(o->endpoint, "https://", 8) != 0)
		return ft_failf(err, FT_EINVAL, "invalid_config",
				"s3_endpoint must start with http:// or https:// (got \"%s\")",
				o->endpoint);
	size_t bl = strlen(o->bucket);
	if (bl < 3 || bl > 63 || !chars_ok(o->bucket, ".-"))
		return ft_failf(err, FT_EINVAL, "invalid_config",
				"s3_bucket must be 3 to 63 lower-case letters, digits, '.' or '-' "
				"(got \"%s\")",
				o->bucket);
	if (o->prefix &&
	    (strlen(o->prefix) > 512 || !chars_ok(o->prefix, "ABCDEFGHIJKLMNOPQRSTUVWXYZ._/-")))
		return ft_failf(err, FT_EINVAL, "invalid_config",
				"s3_prefix may hold only letters, digits, '.', '_', '/' and '-' "
				"(got \"%s\")",
				o->prefix);
	if (o->region && (!*o->region || strlen(o->region) > 40 || !chars_ok(o->region, "-")))
		return ft_failf(err, FT_EINVAL, "invalid_config",
				"s3_region must be lower-case letters, digits and '-' (got \"%s\")",
				o->region);
	if (o->multipart_bytes < S3_MIN_PART)
		return ft_failf(err, FT_EINVAL, "invalid_config",
				"s3_multipart_mb must be at least 5 (S3's smallest part)");
	if (o->attempts < 1 || o->backoff_ms < 1)
		return ft_failf(err, FT_EINVAL, "invalid_config",
				"s3_attempts and s3_backoff_ms must be at least 1");
	return FT_OK;
}

/* HEAD the bucket so a wrong endpoint, bucket or key fails at start. */
static enum ft_rc s3_check_bucket(struct s3_store *s, struct ft_err *err)
{
	struct s3_req r;
	CURL *c = s3_curl(err);
	if (!c)
		return err->rc;
	req_init(&r, "HEAD", NULL, NULL);
	enum ft_rc rc = s3_request(s, c, &r, err);
	if (!rc && r.status == 404)
		rc = ft_failf(err, FT_ENOTFOUND, "invalid_config",
			      "s3 bucket \"%s\" does not exist; create it first", s->bucket);
	else if (!rc && r.status != 200)
		rc = s3_fail(s, &r, err);
	ft_buf_release(&r.answer);
	curl_easy_cleanup(c);
	return rc;
}

struct ft_store *ft_store_s3_new(const struct ft_store_s3_opts *o, struct ft_err *err)
{
	if (check_opts(o, err))
		return NULL;
	pthread_once(&curl_once, curl_init_once);
	struct s3_store *s = calloc(1, sizeof(*s));
	if (!s) {
		ft_failf(err, FT_ENOMEM, NULL, "out of memory");
		return NULL;
	}
	s->base.ops = &s3_ops;
	s->endpoint = ft_xstrdup(o->endpoint);
	size_t el = strlen(s->endpoint);
	while (el > 0 && s->endpoint[el - 1] == '/')
		s->endpoint[--el] = '\0';
	s->bucket = ft_xstrdup(o->bucket);
	s->region = ft_xstrdup(o->region ? o->region : "us-east-1");
	s->access = ft_xstrdup(o->access_key);
	s->secret = ft_xstrdup(o->secret_key);
	s->prefix = ft_xstrdup(o->prefix ? o->prefix : "");
	s->spool = ft_xstrdup(o->spool_dir);
	s->part = o->multipart_bytes;
	s->attempts = o->attempts;
	s->backoff_ms = o->backoff_ms;
	s->o_sweep_min_age = o->sweep_min_age_s;
	snprintf(s->sigv4, sizeof(s->sigv4), "aws:amz:%s:s3", s->region);
	if (ft_mkdir_p(s->spool, err) || s3_check_bucket(s, err)) {
		s3_free(&s->base);
		return NULL;
	}
	return &s->base;
}
