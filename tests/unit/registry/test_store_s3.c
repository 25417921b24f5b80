/*
 * test_store_s3.c - what only the S3 backend does, against the real
 * S3-compatible server deploy/dev/s3.sh starts (SeaweedFS; store_helpers.h
 * says how it is found): multipart uploads as the server records them,
 * retries through a fault-injecting TCP proxy in front of the real server
 * (503 answers, dropped connections, a download cut mid-body and resumed),
 * giving up on a dead endpoint, refusing a blob whose bytes no longer match
 * its key, bad credentials, sweeping stale multipart uploads, and the
 * configuration's errors. The proxy only injects faults; every answer the
 * store acts on comes from the real server.
 */
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>

#include "../../../registry/src/registry_int.h"
#include "ft/clock.h"
#include "ft/config.h"
#include "ftest.h"
#include "store_helpers.h"

#define NEED_SERVER()                                                          \
	do {                                                                   \
		if (!th_s3_env())                                              \
			FT_SKIP("no FT_S3_* server (deploy/dev/s3.sh start)"); \
	} while (0)

static enum ft_rc put_bytes(struct ft_store *s, const void *p, size_t n, char key[FT_STORE_KEY_MAX],
			    struct ft_err *e)
{
	struct ft_store_writer *w;
	char sha[FT_SHA256_HEX_LEN + 1];
	uint64_t got;
	enum ft_rc rc = ft_store_writer_new(s, 0, &w, e);
	if (rc)
		return rc;
	if ((rc = ft_store_writer_write(w, p, n, e))) {
		ft_store_writer_abort(w);
		return rc;
	}
	return ft_store_writer_commit(w, sha, key, &got, e);
}

/* ---- a fault-injecting TCP proxy ---------------------------------------------- */

enum fault {
	PASS, /* relay both ways */
	REPLY_503, /* answer 503 SlowDown and close */
	DROP, /* close at once */
	CUT, /* relay, but close after cut_bytes of the server's answer */
};

struct proxy {
	int lfd, port, up_port;
	enum fault script[8];
	size_t nscript, cut_bytes;
	int conns;
	bool saw_range;
	volatile bool stop;
	pthread_t th;
};

static const char answer_503[] =
	"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/xml\r\n"
	"Content-Length: 73\r\nConnection: close\r\n\r\n"
	"<Error><Code>SlowDown</Code><Message>injected by the test</Message></Error>";

static int connect_up(int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static void relay(struct proxy *p, int c, enum fault f)
{
	int u = connect_up(p->up_port);
	size_t down = 0;
	char buf[16384];
	if (u < 0)
		return;
	for (;;) {
		struct pollfd pf[2] = { { .fd = c, .events = POLLIN },
					{ .fd = u, .events = POLLIN } };
		if (poll(pf, 2, 200) < 0 || p->stop)
			break;
		if (pf[0].revents) {
			ssize_t n = recv(c, buf, sizeof(buf) - 1, 0);
			if (n <= 0)
				break;
			buf[n] = '\0';
			if (strcasestr(buf, "\r\nrange: bytes="))
				p->saw_range = true;
			if (send(u, buf, (size_t)n, MSG_NOSIGNAL) != n)
				break;
		}
		if (pf[1].revents) {
			ssize_t n = recv(u, buf, sizeof(buf), 0);
			if (n <= 0)
				break;
			size_t give = (size_t)n;
			if (f == CUT && down + give > p->cut_bytes)
				give = p->cut_bytes - down;
			if (give && send(c, buf, give, MSG_NOSIGNAL) != (ssize_t)give)
				break;
			down += give;
			if (f == CUT && down >= p->cut_bytes)
				break;
		}
	}
	close(u);
}

static void *proxy_main(void *arg)
{
	struct proxy *p = arg;
	while (!p->stop) {
		struct pollfd pf = { .fd = p->lfd, .events = POLLIN };
		if (poll(&pf, 1, 100) <= 0)
			continue;
		int c = accept4(p->lfd, NULL, NULL, SOCK_CLOEXEC);
		if (c < 0)
			continue;
		enum fault f = (size_t)p->conns < p->nscript ? p->script[p->conns] : PASS;
		p->conns++;
		if (f == REPLY_503) {
			char req[4096];
			(void)!recv(c, req, sizeof(req), 0);
			(void)!send(c, answer_503, sizeof(answer_503) - 1, MSG_NOSIGNAL);
		} else if (f != DROP) {
			relay(p, c, f);
		}
		close(c);
	}
	return NULL;
}

static bool proxy_start(struct proxy *p)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t al = sizeof(a);
	const char *ep = getenv("FT_S3_ENDPOINT"), *colon = strrchr(ep, ':');
	if (strncmp(ep, "http://127.0.0.1:", 17) != 0 || !colon)
		return false;
	p->up_port = atoi(colon + 1);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	p->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (p->lfd < 0 || bind(p->lfd, (struct sockaddr *)&a, sizeof(a)) || listen(p->lfd, 16) ||
	    getsockname(p->lfd, (struct sockaddr *)&a, &al))
		return false;
	p->port = ntohs(a.sin_port);
	return pthread_create(&p->th, NULL, proxy_main, p) == 0;
}

static void proxy_stop(struct proxy *p)
{
	p->stop = true;
	pthread_join(p->th, NULL);
	close(p->lfd);
}

/* ---- cases -------------------------------------------------------------------- */

FT_TEST(s3_multipart_upload_is_one_object_of_three_parts)
{
	char dir[64], prefix[32], key[FT_STORE_KEY_MAX], path[256];
	struct ft_err e;
	struct th_answer a;
	NEED_SERVER();
	th_tmpdir(dir);
	th_prefix(prefix);
	ft_err_clear(&e);
	struct ft_store *s = th_s3_open(dir, NULL, prefix, 3, &e);
	FT_CHECK(s != NULL);
	size_t n = (10u << 20) + 1; /* 5 MiB + 5 MiB + 1 byte */
	unsigned char *buf = malloc(n);
	FT_CHECK(buf != NULL);
	ft_random_bytes(buf, n);
	FT_CHECK(put_bytes(s, buf, n, key, &e) == FT_OK);
	struct ft_store_counters c;
	ft_store_counters_get(s, &c);
	FT_CHECK_INT(c.parts, 3);
	/* The server's own record: one object of n bytes whose ETag is a
	 * multipart ETag ("<md5 of the part md5s>-3"). */
	snprintf(path, sizeof(path), "%s%s", prefix, key);
	FT_CHECK(th_s3_raw("HEAD", path, NULL, 0, &a));
	FT_CHECK_INT(a.status, 200);
	char want_len[64];
	snprintf(want_len, sizeof(want_len), "content-length: %zu\r\n", n);
	FT_CHECK(strcasestr(ft_buf_str(&a.headers), want_len) != NULL);
	FT_CHECK(strstr(ft_buf_str(&a.headers), "-3\"\r\n") != NULL);
	th_answer_release(&a);
	/* Uploading it again sends nothing: the key is its hash. */
	FT_CHECK(put_bytes(s, buf, n, key, &e) == FT_OK);
	ft_store_counters_get(s, &c);
	FT_CHECK_INT(c.parts, 3);
	free(buf);
	ft_store_free(s);
}

FT_TEST(s3_retries_503_and_dropped_connections_and_resumes_a_cut_download)
{
	char dir[64], prefix[32], key[FT_STORE_KEY_MAX], ep[64];
	struct ft_err e;
	struct proxy p = { .script = { REPLY_503, DROP, REPLY_503 }, .nscript = 3 };
	NEED_SERVER();
	FT_CHECK(proxy_start(&p));
	snprintf(ep, sizeof(ep), "http://127.0.0.1:%d", p.port);
	th_tmpdir(dir);
	th_prefix(prefix);
	ft_err_clear(&e);
	/* Opening HEADs the bucket: 503, dropped, 503, then through. */
	struct ft_store *s = th_s3_open(dir, ep, prefix, 5, &e);
	FT_CHECK(s != NULL);
	struct ft_store_counters c;
	ft_store_counters_get(s, &c);
	FT_CHECK_INT(c.retries, 3);
	FT_CHECK_INT(c.requests, 4);
	FT_CHECK_INT(p.conns, 4);

	size_t n = 1u << 20;
	unsigned char *buf = malloc(n), *back = malloc(n);
	FT_CHECK(buf && back);
	ft_random_bytes(buf, n);
	FT_CHECK(put_bytes(s, buf, n, key, &e) == FT_OK);

	/* The next connection is cut after 300000 bytes of the answer; the
	 * download goes on from where it stopped with a Range request. */
	p.conns = 0;
	p.script[0] = CUT;
	p.nscript = 1;
	p.cut_bytes = 300000;
	p.saw_range = false;
	ft_store_counters_get(s, &c);
	uint64_t retries0 = c.retries;
	uint64_t size = 0;
	int fd = ft_store_open_read(s, key, &size, &e);
	FT_CHECK(fd >= 0);
	FT_CHECK_INT(size, n);
	FT_CHECK_INT(th_read_all(fd, back, n), n);
	close(fd);
	FT_CHECK(memcmp(buf, back, n) == 0);
	ft_store_counters_get(s, &c);
	FT_CHECK_INT(c.retries - retries0, 1);
	FT_CHECK_INT(c.resumes, 1);
	FT_CHECK(p.saw_range);
	proxy_stop(&p);
	free(buf);
	free(back);
	ft_store_free(s);
}

FT_TEST(s3_gives_up_on_a_dead_endpoint_after_its_attempts)
{
	char dir[64], ep[64];
	struct ft_err e;
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t al = sizeof(a);
	NEED_SERVER();
	/* A port that was free a moment ago: connections are refused. */
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	FT_CHECK(fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0);
	FT_CHECK(getsockname(fd, (struct sockaddr *)&a, &al) == 0);
	close(fd);
	snprintf(ep, sizeof(ep), "http://127.0.0.1:%d", ntohs(a.sin_port));
	th_tmpdir(dir);
	ft_err_clear(&e);
	uint64_t t0 = ft_time_mono_ms();
	FT_CHECK(th_s3_open(dir, ep, "", 3, &e) == NULL);
	uint64_t took = ft_time_mono_ms() - t0;
	FT_CHECK(e.rc == FT_EUNAVAIL);
	FT_CHECK_STR(e.code, "store_unavailable");
	FT_CHECK(strstr(e.msg, "HEAD") != NULL);
	FT_CHECK(strstr(e.msg, getenv("FT_S3_SECRET_KEY")) == NULL);
	/* Two sleeps between three tries: at least 20/2 + 40/2 ms. */
	FT_CHECK(took >= 30);
}

FT_TEST(s3_refuses_a_blob_whose_bytes_do_not_match_its_key)
{
	char dir[64], prefix[32], key[FT_STORE_KEY_MAX], path[256];
	struct ft_err e;
	struct th_answer a;
	NEED_SERVER();
	th_tmpdir(dir);
	th_prefix(prefix);
	ft_err_clear(&e);
	struct ft_store *s = th_s3_open(dir, NULL, prefix, 3, &e);
	FT_CHECK(s != NULL);
	FT_CHECK(put_bytes(s, "hello\n", 6, key, &e) == FT_OK);
	/* Someone overwrites the object behind the store's back. */
	snprintf(path, sizeof(path), "%s%s", prefix, key);
	FT_CHECK(th_s3_raw("PUT", path, "corrupt\n", 8, &a));
	FT_CHECK_INT(a.status, 200);
	th_answer_release(&a);
	FT_CHECK(ft_store_open_read(s, key, NULL, &e) < 0);
	FT_CHECK(e.rc == FT_EIO);
	FT_CHECK_STR(e.code, "blob_corrupt");
	/* printf 'corrupt\n' | sha256sum starts 06d0083ba740 */
	FT_CHECK(strstr(e.msg, "06d0083ba740") != NULL);
	FT_CHECK(strstr(e.msg, "8 bytes") != NULL);
	ft_store_free(s);
}

FT_TEST(s3_wrong_secret_fails_at_open_with_a_hint)
{
	char dir[64], spool[128];
	struct ft_err e;
	NEED_SERVER();
	th_tmpdir(dir);
	snprintf(spool, sizeof(spool), "%s/tmp", dir);
	struct ft_store_s3_opts o = {
		.endpoint = getenv("FT_S3_ENDPOINT"),
		.bucket = getenv("FT_S3_BUCKET"),
		.access_key = getenv("FT_S3_ACCESS_KEY"),
		.secret_key = "not-the-secret",
		.spool_dir = spool,
		.multipart_bytes = 5u << 20,
		.attempts = 2,
		.backoff_ms = 1,
	};
	ft_err_clear(&e);
	FT_CHECK(ft_store_s3_new(&o, &e) == NULL);
	FT_CHECK(e.rc == FT_EAUTH);
	FT_CHECK(strstr(e.msg, "answered 403") != NULL);
	FT_CHECK(strstr(e.hint, "s3_secret_key") != NULL);
	/* A bucket that is not there. */
	o.secret_key = getenv("FT_S3_SECRET_KEY");
	o.bucket = "no-such-bucket-here";
	ft_err_clear(&e);
	FT_CHECK(ft_store_s3_new(&o, &e) == NULL);
	FT_CHECK(strstr(e.msg, "\"no-such-bucket-here\" does not exist") != NULL);
}

FT_TEST(s3_sweep_aborts_only_stale_multipart_uploads)
{
	char dir[64], prefix[32], path[256], id[256], q[512];
	struct ft_err e;
	struct th_answer a;
	size_t pos = 0;
	NEED_SERVER();
	th_tmpdir(dir);
	th_prefix(prefix);
	ft_err_clear(&e);
	struct ft_store *s = th_s3_open(dir, NULL, prefix, 3, &e);
	FT_CHECK(s != NULL);
	/* A writer that died after starting a multipart upload. */
	snprintf(path, sizeof(path),
		 "%ssha256/58/"
		 "91b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03?uploads=",
		 prefix);
	FT_CHECK(th_s3_raw("POST", path, "", 0, &a));
	FT_CHECK_INT(a.status, 200);
	FT_CHECK(ft_s3_xml_text(a.body.ptr, a.body.len, "UploadId", &pos, id, sizeof(id)));
	th_answer_release(&a);
	FT_CHECK_INT(ft_store_sweep_tmp(s, 3600), 0); /* too young */
	/* a store that keeps uploads younger than an hour (the default is a
	 * day) leaves it alone even when asked for "any age": ft-api sweeps with
	 * 0 and another ft-api may be writing it */
	char dir2[64];
	th_tmpdir(dir2);
	struct ft_store_s3_opts o2 = {
		.endpoint = getenv("FT_S3_ENDPOINT"),
		.bucket = getenv("FT_S3_BUCKET"),
		.region = getenv("FT_S3_REGION"),
		.access_key = getenv("FT_S3_ACCESS_KEY"),
		.secret_key = getenv("FT_S3_SECRET_KEY"),
		.prefix = prefix,
		.spool_dir = dir2,
		.multipart_bytes = 5u << 20,
		.attempts = 3,
		.backoff_ms = 20,
		.sweep_min_age_s = 3600,
	};
	struct ft_store *guarded = ft_store_s3_new(&o2, &e);
	FT_CHECK(guarded != NULL);
	FT_CHECK_INT(ft_store_sweep_tmp(guarded, 0), 0);
	ft_store_free(guarded);
	FT_CHECK_INT(ft_store_sweep_tmp(s, 0), 1);
	/* the prefix without its '/', then "%2F": the query is signed as written */
	snprintf(q, sizeof(q), "?prefix=%.*s%%2F&uploads=", (int)strlen(prefix) - 1, prefix);
	FT_CHECK(th_s3_raw("GET", q, NULL, 0, &a));
	FT_CHECK_INT(a.status, 200);
	FT_CHECK(strstr(ft_buf_str(&a.body), id) == NULL);
	th_answer_release(&a);
	FT_CHECK_INT(ft_store_sweep_tmp(s, 0), 0);
	ft_store_free(s);
}

FT_TEST(s3_configuration_errors_name_the_key)
{
	struct ft_config cfg;
	struct ft_err e;
	ft_err_clear(&e);
	FT_CHECK(ft_config_load(&cfg, NULL, &e) == FT_OK);
	static const struct {
		const char *key, *value, *want;
	} cases[] = {
		{ "store_backend", "ftp",
		  "store_backend must be \"local\" or \"s3\" (got \"ftp\")" },
		{ "s3_bucket", "", "store_backend = s3 needs s3_bucket to be set" },
		{ "s3_bucket", "Bad_Bucket", "s3_bucket must be 3 to 63" },
		{ "s3_endpoint", "ftp://x", "s3_endpoint must start with http:// or https://" },
		{ "s3_prefix", "a b", "s3_prefix may hold only" },
	};
	for (size_t i = 0; i < FT_ARRAY_LEN(cases); i++) {
		struct ft_config c2;
		FT_CHECK(ft_config_load(&c2, NULL, &e) == FT_OK);
		FT_CHECK(ft_config_set(&c2, "store_backend", "s3", "test", &e) == FT_OK);
		FT_CHECK(ft_config_set(&c2, "s3_endpoint", "http://127.0.0.1:1", "test", &e) ==
			 FT_OK);
		FT_CHECK(ft_config_set(&c2, "s3_bucket", "ftplat", "test", &e) == FT_OK);
		FT_CHECK(ft_config_set(&c2, "s3_access_key", "k", "test", &e) == FT_OK);
		FT_CHECK(ft_config_set(&c2, "s3_secret_key", "s", "test", &e) == FT_OK);
		FT_CHECK(ft_config_set(&c2, "s3_prefix", "", "test", &e) == FT_OK);
		FT_CHECK(ft_config_set(&c2, cases[i].key, cases[i].value, "test", &e) == FT_OK);
		FT_CHECK(ft_store_open_config(&c2, &e) == NULL);
		if (!strstr(e.msg, cases[i].want))
			fprintf(stderr, "case %zu: got \"%s\"\n", i, e.msg);
		FT_CHECK(strstr(e.msg, cases[i].want) != NULL);
		FT_CHECK(e.rc == FT_EINVAL);
		ft_err_clear(&e);
		ft_config_release(&c2);
	}
	ft_config_release(&cfg);
}

FT_TEST(s3_xml_scanner_reads_leaves_and_entities)
{
	static const char x[] =
		"<R><Key>a&amp;b</Key><KeyMarker>no</KeyMarker><Key>&#34;q&#x27;</Key>"
		"<Key>&bogus;</Key><Key>unterminated";
	char out[32];
	size_t pos = 0;
	FT_CHECK(ft_s3_xml_text(x, sizeof(x) - 1, "Key", &pos, out, sizeof(out)));
	FT_CHECK_STR(out, "a&b");
	FT_CHECK(ft_s3_xml_text(x, sizeof(x) - 1, "Key", &pos, out, sizeof(out)));
	FT_CHECK_STR(out, "\"q'");
	size_t before = pos;
	FT_CHECK(!ft_s3_xml_text(x, sizeof(x) - 1, "Key", &pos, out, sizeof(out)));
	FT_CHECK_INT(pos, before);
	pos = 0;
	FT_CHECK(!ft_s3_xml_text(x, sizeof(x) - 1, "Key", &pos, out, 3)); /* "a&b" needs 4 */
	FT_CHECK_INT(ft_s3_iso8601_parse("2026-12-04T04:33:29Z"), 1796358809LL);
	FT_CHECK_INT(ft_s3_iso8601_parse("2026-12-04T04:33:29.500Z"), 1796358809LL);
	FT_CHECK_INT(ft_s3_iso8601_parse("2026-12-04 04:33:29"), -1);
}

FT_TEST_MAIN()
