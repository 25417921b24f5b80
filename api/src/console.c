/*
 * console.c - the web console's static files (webui/), served by ft-api.
 *
 *   GET /                 webui/index.html
 *   GET /console/{path}   webui/<path>   (path: see api_console_path_type)
 *
 * The console is plain files and talks to the API like any client, so this
 * file only has to serve them safely:
 *   - a path is checked segment by segment before it reaches the file
 *     system: [A-Za-z0-9._-] only, no empty segment, none starting with '.'
 *     (so no "..", no hidden files), at most 8 segments and 255 bytes, and an
 *     extension from the type table below (README.md, for one, is not
 *     served). libmicrohttpd has already decoded %xx, so "%2e%2e" arrives as
 *     ".." and is refused like it;
 *   - files are opened relative to a descriptor of webui_dir taken at start,
 *     with O_NOFOLLOW on the last component, and must be regular files;
 *   - every file goes out with the Content-Security-Policy below (no inline
 *     script or style, nothing from another origin), nosniff, and
 *     "Cache-Control: no-cache" with an ETag, so a browser revalidates
 *     (304) and never runs a stale module after an upgrade.
 * Errors (404 for a missing or refused path) are the API's JSON errors.
 */
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api_int.h"

#define PATH_MAX_LEN 255
#define MAX_SEGMENTS 8

const char api_console_csp[] = "default-src 'self'; script-src 'self'; style-src 'self'; "
			       "img-src 'self'; connect-src 'self'; font-src 'self'; "
			       "object-src 'none'; base-uri 'none'; form-action 'self'; "
			       "frame-ancestors 'none'";

static const struct {
	const char *ext, *type;
} types[] = {
	{ "html", "text/html; charset=utf-8" },
	{ "js", "text/javascript; charset=utf-8" },
	{ "css", "text/css; charset=utf-8" },
	{ "json", "application/json; charset=utf-8" },
	{ "svg", "image/svg+xml" },
	{ "png", "image/png" },
	{ "ico", "image/x-icon" },
	{ "woff2", "font/woff2" },
	{ "txt", "text/plain; charset=utf-8" },
};

static bool seg_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '_' || c == '-';
}

const char *api_console_path_type(const char *path)
{
	size_t n = strlen(path);
	int segments = 0;
	if (n == 0 || n > PATH_MAX_LEN)
		return NULL;
	for (size_t i = 0; i < n;) {
		if (path[i] == '.' || path[i] == '/')
			return NULL; /* a segment starting with '.', or an empty one */
		size_t j = i;
		while (j < n && path[j] != '/') {
			if (!seg_char(path[j]))
				return NULL;
			j++;
		}
		if (++segments > MAX_SEGMENTS)
			return NULL;
		if (j == n)
			break;
		i = j + 1;
		if (i == n)
			return NULL; /* trailing slash */
	}
	const char *slash = strrchr(path, '/');
	const char *dot = strrchr(slash ? slash : path, '.');
	if (!dot)
		return NULL;
	for (size_t i = 0; i < FT_ARRAY_LEN(types); i++)
		if (strcmp(dot + 1, types[i].ext) == 0)
			return types[i].type;
	return NULL;
}

static bool has_index(const char *dir)
{
	char p[4200];
	struct stat st;
	snprintf(p, sizeof(p), "%s/index.html", dir);
	return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

bool api_console_dir(const char *configured, char *out, size_t size)
{
	if (configured && *configured) {
		ft_strlcpy(out, configured, size);
		return has_index(out);
	}
	char exe[4096];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n > 0) {
		exe[n] = '\0';
		char *slash = strrchr(exe, '/');
		if (slash) {
			*slash = '\0';
			snprintf(out, size, "%s/../share/ftplat/webui", exe);
			if (has_index(out))
				return true;
		}
	}
	ft_strlcpy(out, FT_WEBUI_SOURCE_DIR, size);
	return has_index(out);
}

static enum ft_rc serve(struct api_req *r, const char *path)
{
	const char *type = api_console_path_type(path);
	if (r->ctx->webui_fd < 0)
		return ft_failf(&r->err, FT_ENOTFOUND, "console_unavailable",
				"the web console is not installed on this server (see webui_dir "
				"in docs/configuration.md)");
	if (!type)
		return ft_failf(&r->err, FT_ENOTFOUND, "not_found", "no console file here");
	int fd = openat(r->ctx->webui_fd, path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		if (fd >= 0)
			close(fd);
		return ft_failf(&r->err, FT_ENOTFOUND, "not_found", "no console file here");
	}
	char *etag = api_printf(r->arena, "\"%llx-%llx-%llx\"", (unsigned long long)st.st_size,
				(unsigned long long)st.st_mtim.tv_sec,
				(unsigned long long)st.st_mtim.tv_nsec);
	api_resp_header(r, "Content-Security-Policy", api_console_csp);
	api_resp_header(r, "Cache-Control", "no-cache");
	api_resp_header(r, "ETag", etag);
	api_resp_header(r, "Referrer-Policy", "no-referrer");
	api_resp_header(r, "X-Frame-Options", "DENY");
	const char *inm = api_header(r, "If-None-Match");
	if (inm && strcmp(inm, etag) == 0) {
		close(fd);
		r->status = 304;
		return FT_OK;
	}
	r->resp_fd = fd;
	r->resp_fd_size = (uint64_t)st.st_size;
	r->resp_type = type;
	return FT_OK;
}

enum ft_rc h_console_index(struct api_req *r)
{
	return serve(r, "index.html");
}

enum ft_rc h_console_file(struct api_req *r)
{
	return serve(r, r->params[0]);
}
