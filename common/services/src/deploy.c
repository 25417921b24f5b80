/*
 * deploy.c - ft/deploy.h's tables, the readers of endpoints' answers, and
 * the one call to an endpoint (libcurl).
 */
#include <curl/curl.h>
#include <jansson.h>

#include "ft/crypto.h"
#include "ft/deploy.h"

const struct ft_endpoint_kind ft_endpoint_kinds[] = {
	{ "ftserve", FT_DRIVE_LORA_ROUTES, true, "/v1/models",
	  "ft-serve: adapters loaded from the platform's store by reference", true },
	{ "vllm", FT_DRIVE_LORA_ROUTES, false, "/v1/models",
	  "vLLM (--enable-lora, VLLM_ALLOW_RUNTIME_LORA_UPDATING): adapters unpacked into "
	  "deploy_dir",
	  false },
	{ "llamacpp", FT_DRIVE_GGUF_EXPORTS, false, "/health",
	  "llama.cpp's llama-server: the GGUF exports and the command that serves them", false },
};
const size_t ft_n_endpoint_kinds = FT_ARRAY_LEN(ft_endpoint_kinds);

const struct ft_endpoint_kind *ft_endpoint_kind_find(const char *name)
{
	for (size_t i = 0; name && i < ft_n_endpoint_kinds; i++)
		if (strcmp(ft_endpoint_kinds[i].name, name) == 0)
			return &ft_endpoint_kinds[i];
	return NULL;
}

const char *const ft_deployment_states[] = { "pending", "loading", "ready",
					     "failed",	"stopped", NULL };

bool ft_deployment_state_valid(const char *s)
{
	for (const char *const *t = ft_deployment_states; s && *t; t++)
		if (strcmp(*t, s) == 0)
			return true;
	return false;
}

const char *const ft_deploy_gguf_types[] = { "F32", "F16", "Q8_0", "Q4_0", "Q4_K_M", NULL };

bool ft_store_ref_parse(const char *s, char out[65])
{
	size_t pre = sizeof(FT_STORE_REF_PREFIX) - 1;
	if (!s || strncmp(s, FT_STORE_REF_PREFIX, pre) != 0 || strlen(s + pre) != 64)
		return false;
	for (const char *c = s + pre; *c; c++)
		if (!((*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'f')))
			return false;
	memcpy(out, s + pre, 65);
	return true;
}

void ft_endpoint_models_free(char **names, size_t count)
{
	for (size_t i = 0; names && i < count; i++)
		free(names[i]);
	free(names);
}

enum ft_rc ft_endpoint_models_parse(const char *body, size_t n, char ***names, size_t *count,
				    struct ft_err *err)
{
	*names = NULL;
	*count = 0;
	json_t *v = json_loadb(body ? body : "", n, JSON_REJECT_DUPLICATES, NULL);
	json_t *data = json_object_get(v, "data");
	size_t m = json_array_size(data);
	if (!json_is_array(data) || m > FT_ENDPOINT_MAX_MODELS) {
		json_decref(v);
		return ft_failf(err, FT_EFORMAT, "bad_models_answer",
				"GET /v1/models did not answer a list of models");
	}
	char **out = calloc(m ? m : 1, sizeof(*out));
	FT_ASSERT(out != NULL);
	for (size_t i = 0; i < m; i++) {
		const char *id = json_string_value(json_object_get(json_array_get(data, i), "id"));
		if (!id || !*id || strlen(id) > FT_ENDPOINT_NAME_MAX) {
			ft_endpoint_models_free(out, i);
			json_decref(v);
			return ft_failf(err, FT_EFORMAT, "bad_models_answer",
					"GET /v1/models: model %zu has no id", i);
		}
		out[i] = ft_xstrdup(id);
	}
	json_decref(v);
	*names = out;
	*count = m;
	return FT_OK;
}

/* The length of the well-formed UTF-8 character at p (RFC 3629: no
 * overlong forms, no surrogates, at most U+10FFFF), 0 when there is none. */
static size_t utf8_char(const unsigned char *p, size_t left)
{
	size_t len = p[0] < 0x80   ? 1
		     : p[0] < 0xc2 ? 0
		     : p[0] < 0xe0 ? 2
		     : p[0] < 0xf0 ? 3
		     : p[0] < 0xf5 ? 4
				   : 0;
	if (!len || len > left)
		return 0;
	for (size_t k = 1; k < len; k++)
		if ((p[k] & 0xc0) != 0x80)
			return 0;
	if ((p[0] == 0xe0 && p[1] < 0xa0) || (p[0] == 0xed && p[1] > 0x9f) ||
	    (p[0] == 0xf0 && p[1] < 0x90) || (p[0] == 0xf4 && p[1] > 0x8f))
		return 0;
	return len;
}

/* Copy s into out (n bytes): printable UTF-8 only ('?' for anything else),
 * cut at a character. */
static void clean_copy(const char *s, size_t len, char *out, size_t n)
{
	size_t o = 0;
	const unsigned char *p = (const unsigned char *)s;
	for (size_t i = 0; i < len && o + 1 < n;) {
		size_t c = utf8_char(p + i, len - i);
		if (!c || (c == 1 && (p[i] < 0x20 || p[i] == 0x7f))) {
			out[o++] = '?';
			i++;
			continue;
		}
		if (o + c + 1 > n)
			break;
		memcpy(out + o, p + i, c);
		o += c;
		i += c;
	}
	out[o] = '\0';
}

void ft_endpoint_error_text(const char *body, size_t len, char *out, size_t n)
{
	if (!n)
		return;
	out[0] = '\0';
	if (!body || !len)
		return;
	json_t *v = json_loadb(body, len, 0, NULL);
	json_t *e = json_object_get(v, "error");
	const char *msg = json_string_value(json_object_get(e, "message"));
	if (!msg)
		msg = json_string_value(e); /* {"error": "..."} */
	if (!msg)
		msg = json_string_value(json_object_get(v, "message"));
	if (!msg)
		msg = json_string_value(json_object_get(v, "detail"));
	if (msg)
		clean_copy(msg, strlen(msg), out, n);
	else
		clean_copy(body, FT_MIN(len, (size_t)200), out, n);
	json_decref(v);
}

/* ---- calling an endpoint ---- */

struct transfer {
	CURL *c;
	struct ft_endpoint_answer *a;
};

/* A 2xx answer to the sink when there is one, else (and an error's body
 * always) into body; over its cap, or a sink that says no, ends the transfer. */
static size_t collect(char *p, size_t size, size_t n, void *ud)
{
	struct transfer *x = ud;
	long status = 0;
	if (x->a->sink) {
		curl_easy_getinfo(x->c, CURLINFO_RESPONSE_CODE, &status);
		if (status >= 200 && status <= 299)
			return x->a->sink(p, size * n, x->a->sink_ud) ? size * n : 0;
	}
	return ft_buf_add(&x->a->body, p, size * n) ? 0 : size * n;
}

/* A stopping server does not wait out a slow call. */
static int abort_on_stop(void *ud, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
	FT_UNUSED(dt);
	FT_UNUSED(dn);
	FT_UNUSED(ut);
	FT_UNUSED(un);
	return ud && *(const volatile int *)ud ? 1 : 0;
}

void ft_endpoint_call(const struct ft_endpoint_target *t, const char *method, const char *path,
		      const char *body, long timeout_ms, const volatile int *stop,
		      const char *user_agent, struct ft_endpoint_answer *a)
{
	char url[2300], auth[FT_SECRETBOX_MAX + 32], ua[128];
	struct curl_slist *hdrs = NULL, *resolve = NULL;
	a->status = 0;
	a->error[0] = '\0';
	ft_buf_reset(&a->body);
	snprintf(url, sizeof(url), "%s%s", t->url, path);
	snprintf(ua, sizeof(ua), "user-agent: %s", user_agent);
	CURL *c = curl_easy_init();
	hdrs = curl_slist_append(hdrs, "content-type: application/json");
	hdrs = curl_slist_append(hdrs, ua);
	if (t->api_key) {
		snprintf(auth, sizeof(auth), "authorization: Bearer %s", t->api_key);
		hdrs = curl_slist_append(hdrs, auth);
		ft_secure_zero(auth, sizeof(auth));
	}
	resolve = curl_slist_append(resolve, t->pin);
	if (!c || !hdrs || !resolve) {
		snprintf(a->error, sizeof(a->error), "out of memory");
		goto out;
	}
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_RESOLVE, resolve);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, t->allow_http ? "http,https" : "https");
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, FT_MIN(timeout_ms, 5000L));
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	if (body) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	}
	struct transfer x = { c, a };
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &x);
	curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, abort_on_stop);
	curl_easy_setopt(c, CURLOPT_XFERINFODATA, (void *)(uintptr_t)stop);
	curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
	CURLcode cr = curl_easy_perform(c);
	if (cr != CURLE_OK && !(cr == CURLE_WRITE_ERROR && a->body.len)) {
		snprintf(a->error, sizeof(a->error), "%s", curl_easy_strerror(cr));
		goto out;
	}
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &a->status);
	if (a->status < 200 || a->status > 299) {
		char msg[300];
		ft_endpoint_error_text(a->body.ptr, a->body.len, msg, sizeof(msg));
		snprintf(a->error, sizeof(a->error), "HTTP %ld%s%s", a->status, msg[0] ? ": " : "",
			 msg);
	}
out:
	curl_easy_cleanup(c);
	/* the header list holds the token: wipe it before it goes back */
	for (struct curl_slist *h = hdrs; h; h = h->next)
		ft_secure_zero(h->data, strlen(h->data));
	curl_slist_free_all(hdrs);
	curl_slist_free_all(resolve);
}
