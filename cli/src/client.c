/*
 * client.c - HTTP calls to ft-api with libcurl; API errors into struct ft_err.
 */
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>

#include "ft/client.h"

struct ft_client {
	CURL *curl;
	char *base;
	char *auth;
};

struct ft_client *ft_client_new(const char *base_url, const char *api_key, struct ft_err *err)
{
	static bool inited;
	if (!inited) {
		curl_global_init(CURL_GLOBAL_DEFAULT);
		inited = true;
	}
	if (!base_url || !*base_url) {
		ft_failf(err, FT_EINVAL, "no_api_url",
			 "no API URL: set FT_API_URL or api_url in ~/.config/ftctl/config");
		return NULL;
	}
	struct ft_client *c = ft_xcalloc(1, sizeof(*c));
	c->curl = curl_easy_init();
	size_t n = strlen(base_url);
	while (n && base_url[n - 1] == '/')
		n--;
	c->base = ft_xmalloc(n + 1);
	memcpy(c->base, base_url, n);
	c->base[n] = '\0';
	if (api_key && *api_key) {
		size_t l = strlen(api_key) + 32;
		c->auth = ft_xmalloc(l);
		snprintf(c->auth, l, "Authorization: Bearer %s", api_key);
	}
	return c;
}

void ft_client_free(struct ft_client *c)
{
	if (!c)
		return;
	curl_easy_cleanup(c->curl);
	free(c->base);
	free(c->auth);
	free(c);
}

static size_t to_buf(char *p, size_t size, size_t n, void *ud)
{
	return ft_buf_add(ud, p, size * n) ? 0 : size * n;
}

/* Downloads: the body goes to the file on 2xx, into a small buffer otherwise
 * (the API's error JSON); the status is known by the first write. */
struct download {
	CURL *curl;
	FILE *f;
	struct ft_buf errbody;
};

static size_t to_download(char *p, size_t size, size_t n, void *ud)
{
	struct download *d = ud;
	long st = 0;
	curl_easy_getinfo(d->curl, CURLINFO_RESPONSE_CODE, &st);
	if (st >= 200 && st <= 299)
		return fwrite(p, size, n, d->f) * size;
	return ft_buf_add(&d->errbody, p, size * n) ? 0 : size * n;
}

/* Turn a non-2xx answer into err. */
static enum ft_rc api_error(long status, const struct ft_buf *body, struct ft_err *err)
{
	json_t *v = json_loadb(ft_buf_str(body), body->len, 0, NULL);
	json_t *e = json_object_get(v, "error");
	enum ft_rc rc = status >= 500			 ? FT_EUNAVAIL
			: status == 401			 ? FT_EAUTH
			: status == 403			 ? FT_EPERM
			: status == 404			 ? FT_ENOTFOUND
			: status == 409			 ? FT_ECONFLICT
			: status == 413 || status == 429 ? FT_ELIMIT
							 : FT_EINVAL;
	const char *msg = json_string_value(json_object_get(e, "message"));
	const char *code = json_string_value(json_object_get(e, "code"));
	if (msg)
		ft_failf(err, rc, code, "%s", msg);
	else
		ft_failf(err, rc, NULL, "the API answered HTTP %ld", status);
	ft_err_param(err, json_string_value(json_object_get(e, "param")));
	if (json_is_integer(json_object_get(e, "line")))
		ft_err_line(err, (long)json_integer_value(json_object_get(e, "line")));
	json_decref(v);
	return rc;
}

static enum ft_rc perform(struct ft_client *c, const char *method, const char *path,
			  struct curl_slist *hdrs, long *status, struct ft_err *err)
{
	char url[4096];
	snprintf(url, sizeof(url), "%s%s", c->base, path);
	if (c->auth)
		hdrs = curl_slist_append(hdrs, c->auth);
	curl_easy_setopt(c->curl, CURLOPT_URL, url);
	curl_easy_setopt(c->curl, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(c->curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c->curl, CURLOPT_CONNECTTIMEOUT, 10L);
	curl_easy_setopt(c->curl, CURLOPT_USERAGENT, "ftctl/0.1");
	CURLcode cr = curl_easy_perform(c->curl);
	curl_slist_free_all(hdrs);
	if (cr != CURLE_OK)
		return ft_failf(err, FT_EUNAVAIL, "unreachable", "cannot reach the API at %s: %s",
				c->base, curl_easy_strerror(cr));
	curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, status);
	return FT_OK;
}

enum ft_rc ft_client_call(struct ft_client *c, const char *method, const char *path, json_t *body,
			  json_t **out, long *status, struct ft_err *err)
{
	struct ft_buf resp = FT_BUF_INIT(256u << 20);
	struct curl_slist *hdrs = NULL;
	char *text = NULL;
	long st = 0;
	enum ft_rc rc;

	curl_easy_reset(c->curl);
	if (body) {
		text = json_dumps(body, JSON_COMPACT);
		hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
		curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, text);
	} else if (strcmp(method, "POST") == 0) {
		curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, "");
	}
	curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, to_buf);
	curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, &resp);
	rc = perform(c, method, path, hdrs, &st, err);
	free(text);
	if (status)
		*status = st;
	if (!rc && (st < 200 || st > 299))
		rc = api_error(st, &resp, err);
	if (!rc && out) {
		json_error_t je;
		*out = resp.len ? json_loadb(resp.ptr, resp.len, 0, &je) : json_object();
		if (!*out)
			rc = ft_failf(err, FT_EFORMAT, "bad_response",
				      "the API sent invalid JSON: %s", je.text);
	}
	ft_buf_release(&resp);
	return rc;
}

enum ft_rc ft_client_upload(struct ft_client *c, const char *file, const char *purpose,
			    json_t **out, struct ft_err *err)
{
	struct ft_buf resp = FT_BUF_INIT(16u << 20);
	long st = 0;
	FILE *f = fopen(file, "rb");
	if (!f)
		return ft_failf(err, FT_EIO, "cannot_read", "cannot read \"%s\": %s", file,
				strerror(errno));
	fclose(f);
	curl_easy_reset(c->curl);
	curl_mime *mime = curl_mime_init(c->curl);
	curl_mimepart *p = curl_mime_addpart(mime);
	curl_mime_name(p, "purpose");
	curl_mime_data(p, purpose, CURL_ZERO_TERMINATED);
	p = curl_mime_addpart(mime);
	curl_mime_name(p, "file");
	curl_mime_filedata(p, file); /* streamed from disk */
	curl_easy_setopt(c->curl, CURLOPT_MIMEPOST, mime);
	curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, to_buf);
	curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, &resp);
	enum ft_rc rc = perform(c, "POST", "/v1/files", NULL, &st, err);
	curl_mime_free(mime);
	if (!rc && (st < 200 || st > 299))
		rc = api_error(st, &resp, err);
	if (!rc && out && !(*out = json_loadb(ft_buf_str(&resp), resp.len, 0, NULL)))
		rc = ft_failf(err, FT_EFORMAT, "bad_response", "the API sent invalid JSON");
	ft_buf_release(&resp);
	return rc;
}

enum ft_rc ft_client_download(struct ft_client *c, const char *path, FILE *f, struct ft_err *err)
{
	long st = 0;
	struct download d = { c->curl, f, FT_BUF_INIT(1u << 20) };
	curl_easy_reset(c->curl);
	curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, to_download);
	curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, &d);
	enum ft_rc rc = perform(c, "GET", path, NULL, &st, err);
	if (!rc && (st < 200 || st > 299))
		rc = api_error(st, &d.errbody, err);
	ft_buf_release(&d.errbody);
	return rc;
}

/* ---- streams ------------------------------------------------------------ */

struct stream {
	CURL *curl;
	struct ft_sse_parser sse;
	ft_sse_fn fn;
	void *ud;
	struct ft_buf errbody;
	enum ft_rc rc;
};

static size_t to_stream(char *p, size_t size, size_t n, void *ud)
{
	struct stream *s = ud;
	long st = 0;
	curl_easy_getinfo(s->curl, CURLINFO_RESPONSE_CODE, &st);
	if (st < 200 || st > 299)
		return ft_buf_add(&s->errbody, p, size * n) ? 0 : size * n;
	s->rc = ft_sse_feed(&s->sse, p, size * n, s->fn, s->ud);
	/* a short count makes curl stop: the callback asked to, or a limit */
	return s->rc || s->sse.stopped ? 0 : size * n;
}

/* An event stream: GET (body NULL) or POST of a JSON text. */
static enum ft_rc stream_request(struct ft_client *c, const char *path, const char *body,
				 const char *last_event_id, ft_sse_fn fn, void *ud,
				 struct ft_err *err)
{
	struct stream s = { .curl = c->curl, .fn = fn, .ud = ud };
	struct curl_slist *hdrs = curl_slist_append(NULL, "Accept: text/event-stream");
	long st = 0;
	char h[300];
	ft_sse_init(&s.sse);
	ft_buf_init(&s.errbody, 1u << 20);
	if (last_event_id && *last_event_id) {
		snprintf(h, sizeof(h), "Last-Event-ID: %s", last_event_id);
		hdrs = curl_slist_append(hdrs, h);
	}
	curl_easy_reset(c->curl);
	if (body) {
		hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
		curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, body);
	}
	curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, to_stream);
	curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, &s);
	/* ft-api sends a heartbeat at least every 15 s: a minute of silence is a
	 * dead connection, which the caller resumes with Last-Event-ID */
	curl_easy_setopt(c->curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(c->curl, CURLOPT_LOW_SPEED_TIME, 60L);
	enum ft_rc rc = perform(c, body ? "POST" : "GET", path, hdrs, &st, err);
	if (rc && (s.sse.stopped || s.rc)) {
		/* perform saw the write callback's short count: ours, not a fault */
		ft_err_clear(err);
		curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &st);
		rc = FT_OK;
		if (s.rc)
			rc = ft_failf(
				err, s.rc, "bad_stream",
				"the event stream has a line or an event over the size limit");
	}
	if (!rc && (st < 200 || st > 299))
		rc = api_error(st, &s.errbody, err);
	ft_buf_release(&s.errbody);
	ft_sse_release(&s.sse);
	return rc;
}

enum ft_rc ft_client_stream(struct ft_client *c, const char *path, const char *last_event_id,
			    ft_sse_fn fn, void *ud, struct ft_err *err)
{
	return stream_request(c, path, NULL, last_event_id, fn, ud, err);
}

enum ft_rc ft_client_stream_post(struct ft_client *c, const char *path, json_t *body, ft_sse_fn fn,
				 void *ud, struct ft_err *err)
{
	char *text = json_dumps(body, JSON_COMPACT);
	if (!text)
		return ft_failf(err, FT_ENOMEM, NULL, "out of memory");
	enum ft_rc rc = stream_request(c, path, text, NULL, fn, ud, err);
	free(text);
	return rc;
}

enum ft_rc ft_chat_chunk_parse(const char *data, size_t n, struct ft_buf *text, bool *done,
			       struct ft_err *err)
{
	*done = false;
	if (n == 6 && memcmp(data, "[DONE]", 6) == 0) {
		*done = true;
		return FT_OK;
	}
	json_t *v = json_loadb(data, n, 0, NULL);
	json_t *e = json_object_get(v, "error");
	enum ft_rc rc = FT_OK;
	if (json_is_object(e)) {
		const char *msg = json_string_value(json_object_get(e, "message"));
		rc = ft_failf(err, FT_EUNAVAIL, json_string_value(json_object_get(e, "code")),
			      "the server stopped the answer: %s", msg ? msg : "(no message)");
	} else if (!json_is_object(v) || !json_is_array(json_object_get(v, "choices"))) {
		rc = ft_failf(err, FT_EFORMAT, "bad_stream",
			      "the server sent an event that is not a chat.completion.chunk");
	} else {
		json_t *delta =
			json_object_get(json_array_get(json_object_get(v, "choices"), 0), "delta");
		json_t *content = json_object_get(delta, "content");
		if (json_is_string(content) &&
		    ft_buf_add(text, json_string_value(content), json_string_length(content)))
			rc = ft_failf(err, FT_ELIMIT, "answer_too_long",
				      "the answer passed the size limit");
	}
	json_decref(v);
	return rc;
}

/* SHA-256 of a file's bytes as hex. */
static enum ft_rc file_sha256(const char *path, char hex[65], struct ft_err *err)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return ft_failf(err, FT_EIO, "cannot_read", "cannot read \"%s\": %s", path,
				strerror(errno));
	struct ft_sha256 h;
	unsigned char d[FT_SHA256_LEN], buf[65536];
	size_t n;
	if (ft_sha256_init(&h)) {
		fclose(f);
		return ft_failf(err, FT_EINTERNAL, NULL, "cannot start SHA-256");
	}
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
		ft_sha256_update(&h, buf, n);
	fclose(f);
	ft_sha256_final(&h, d);
	ft_hex_encode(d, sizeof(d), hex);
	return FT_OK;
}

enum ft_rc ft_client_download_file(struct ft_client *c, const char *path, const char *dest,
				   uint64_t size, const char *sha256, uint64_t *fetched,
				   struct ft_err *err)
{
	struct stat st;
	uint64_t have = stat(dest, &st) == 0 && S_ISREG(st.st_mode) ? (uint64_t)st.st_size : 0;
	char hex[65];
	*fetched = 0;
	if (have > size)
		have = 0; /* not a prefix of this file: start again */
	if (have < size) {
		FILE *f = fopen(dest, have ? "ab" : "wb");
		if (!f)
			return ft_failf(err, FT_EIO, "cannot_write", "cannot write \"%s\": %s",
					dest, strerror(errno));
		long st_code = 0;
		struct download d = { c->curl, f, FT_BUF_INIT(1u << 20) };
		struct curl_slist *hdrs = NULL;
		char range[64], ifr[96];
		curl_easy_reset(c->curl);
		if (have) {
			snprintf(range, sizeof(range), "%" PRIu64 "-", have);
			snprintf(ifr, sizeof(ifr), "If-Range: \"%s\"", sha256);
			curl_easy_setopt(c->curl, CURLOPT_RANGE, range);
			hdrs = curl_slist_append(hdrs, ifr);
		}
		curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, to_download);
		curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, &d);
		enum ft_rc rc = perform(c, "GET", path, hdrs, &st_code, err);
		long at = ftell(f);
		if (fclose(f) != 0 && !rc)
			rc = ft_failf(err, FT_EIO, "cannot_write", "writing \"%s\" failed", dest);
		if (!rc && (st_code < 200 || st_code > 299))
			rc = api_error(st_code, &d.errbody, err);
		if (!rc && have && st_code == 200) {
			/* the server sent the whole file (it ignored the range): keep
			 * only what it sent, from the start */
			ft_buf_release(&d.errbody);
			return ft_client_download_file(c, path, dest, size, sha256, fetched, err);
		}
		ft_buf_release(&d.errbody);
		if (rc)
			return rc;
		*fetched = (uint64_t)at - have;
	}
	enum ft_rc rc = file_sha256(dest, hex, err);
	if (rc)
		return rc;
	if (strcmp(hex, sha256) != 0) {
		unlink(dest);
		return ft_failf(err, FT_EFORMAT, "checksum_mismatch",
				"\"%s\" has SHA-256 %s, not %s as listed; removed it, run again",
				dest, hex, sha256);
	}
	return FT_OK;
}
