/*
 * http.c - route patterns, the JSON Content-Type rule and the one mapping
 * of errors to HTTP (ft/http.h).
 */
#include "ft/http.h"
#include "ft/json.h"

#include <strings.h>

bool ft_http_route_match(const char *pattern, const char *url, struct ft_arena *a,
			 const char **params, int max_params)
{
	int np = 0;
	const char *p = pattern, *u = url;
	while (*p && *u) {
		if (strcmp(p, "{*}") == 0) { /* the rest of the URL, one or more characters */
			if (np >= max_params)
				return false;
			if (params)
				params[np] = ft_arena_strdup(a, u);
			return true;
		}
		if (*p == '{') {
			const char *pe = strchr(p, '}');
			const char *ue = strchr(u, '/');
			if (!ue)
				ue = u + strlen(u);
			if (!pe || ue == u || np >= max_params)
				return false;
			if (params) {
				size_t n = (size_t)(ue - u);
				char *v = ft_arena_alloc(a, n + 1);
				memcpy(v, u, n);
				params[np] = v;
			}
			np++;
			p = pe + 1;
			u = ue;
			continue;
		}
		if (*p != *u)
			return false;
		p++;
		u++;
	}
	return *p == 0 && *u == 0;
}

bool ft_http_media_is_json(const char *ct)
{
	if (!ct)
		return false;
	while (*ct == ' ' || *ct == '\t')
		ct++;
	size_t n = strcspn(ct, ";");
	while (n && (ct[n - 1] == ' ' || ct[n - 1] == '\t'))
		n--;
	if (n == 16 && strncasecmp(ct, "application/json", 16) == 0)
		return true;
	return n > 17 && strncasecmp(ct, "application/", 12) == 0 &&
	       strncasecmp(ct + n - 5, "+json", 5) == 0 && !memchr(ct + 12, '/', n - 12);
}

static const struct {
	enum ft_rc rc;
	int status;
} rc_status[] = {
	{ FT_OK, 200 },	       { FT_EINVAL, 400 },    { FT_ENOMEM, 500 }, { FT_EIO, 500 },
	{ FT_ENOTFOUND, 404 }, { FT_ECONFLICT, 409 }, { FT_EAUTH, 401 },  { FT_EPERM, 403 },
	{ FT_ELIMIT, 413 },    { FT_EDB, 500 },	      { FT_EREDIS, 503 }, { FT_EUNAVAIL, 503 },
	{ FT_EFORMAT, 400 },   { FT_EINTERNAL, 500 },
};

/* Codes whose status differs from their rc's. */
static const struct {
	const char *code;
	int status;
} code_status[] = {
	{ "rate_limit_exceeded", 429 },	 { "too_many_uploads", 429 },
	{ "method_not_allowed", 405 },	 { "idempotency_key_reused", 422 },
	{ "invalid_content_type", 415 }, { "body_too_slow", 408 },
	{ "server_busy", 429 },		 { "range_not_satisfiable", 416 },
	{ "endpoint_error", 502 }, /* an inference endpoint failed a call made for the caller */
};

static const struct {
	int status;
	const char *type;
} status_type[] = {
	{ 400, "invalid_request_error" },
	{ 401, "authentication_error" },
	{ 403, "permission_error" },
	{ 404, "not_found_error" },
	{ 405, "invalid_request_error" },
	{ 408, "invalid_request_error" },
	{ 409, "conflict_error" },
	{ 413, "invalid_request_error" },
	{ 415, "invalid_request_error" },
	{ 416, "invalid_request_error" },
	{ 422, "invalid_request_error" },
	{ 429, "rate_limit_error" },
	{ 502, "api_error" },
	{ 503, "service_unavailable_error" },
};

int ft_http_error_status(const struct ft_err *e)
{
	for (size_t i = 0; i < FT_ARRAY_LEN(code_status); i++)
		if (strcmp(e->code, code_status[i].code) == 0)
			return code_status[i].status;
	/* Safety net: data and integrity errors from PostgreSQL are the
	 * caller's input, never a server fault. */
	if (e->rc == FT_EDB && (strncmp(e->hint, "22", 2) == 0 || strncmp(e->hint, "23", 2) == 0))
		return 400;
	for (size_t i = 0; i < FT_ARRAY_LEN(rc_status); i++)
		if (rc_status[i].rc == e->rc)
			return rc_status[i].status;
	return 500;
}

const char *ft_http_error_type(int status)
{
	for (size_t i = 0; i < FT_ARRAY_LEN(status_type); i++)
		if (status_type[i].status == status)
			return status_type[i].type;
	return status >= 500 ? "server_error" : "invalid_request_error";
}

json_t *ft_http_error_json(const struct ft_err *e, int status)
{
	json_t *err = json_object();
	json_object_set_new(err, "type", json_string(ft_http_error_type(status)));
	json_object_set_new(err, "code", json_string(e->code[0] ? e->code : ft_rc_name(e->rc)));
	/* a message quoting what a caller sent may hold a character cut by
	 * its length cap: made valid so that the field is never lost */
	json_object_set_new(err, "message", ft_json_string_clean(e->msg, sizeof(e->msg)));
	json_object_set_new(err, "param",
			    e->param[0] ? ft_json_string_clean(e->param, sizeof(e->param))
					: json_null());
	json_object_set_new(err, "line", e->line ? json_integer(e->line) : json_null());
	return json_pack("{s:o}", "error", err);
}
