/*
 * client.c - HTTP calls to ft-api with libcurl; API errors into struct ft_err.
 */
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
