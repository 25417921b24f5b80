/*
 * artifacts.c - stored folders (a version's adapter or model, an export):
 * what they hold, and their files by streaming, with HTTP Range requests so
 * that a download can resume (RFC 9110 section 14).
 *
 *   GET /v1/registry/artifacts/{id}               kind, SHA-256 and bytes, every file
 *   GET /v1/registry/artifacts/{id}/files/{file}  one file's bytes
 *
 * An artifact's "sha256" is its manifest's (ft-worker's store.c): content
 * addressed, so two identical folders are one artifact digest. Files are
 * named by their path in the folder (one path segment: the folders the
 * platform stores are flat; a nested one is listed but not served).
 *
 * Range (one range; several, or a syntax we do not read, are ignored and
 * the whole file is sent, as the RFC allows):
 *   bytes=A-B, bytes=A-, bytes=-N   206 with Content-Range: bytes A-B/SIZE
 *   A >= SIZE, or -0                416 with Content-Range: bytes * /SIZE
 *   If-Range: "<sha256>"            the range only when it names this file
 * Every answer has Accept-Ranges: bytes and ETag: "<sha256 of the file>".
 */
#include "api_int.h"

#define ARTIFACT_FILES                                                                      \
	"(SELECT coalesce(jsonb_agg(jsonb_build_object('path', f.path, 'sha256', f.sha256," \
	" 'bytes', f.bytes) ORDER BY f.path), '[]') FROM artifact_files f"                  \
	" WHERE f.artifact_id = a.id)::text"

enum ft_rc h_artifacts_get(struct api_req *r)
{
	const char *id = r->params[0];
	if (!ft_id_valid(FT_ID_ARTIFACT, id))
		return api_not_found(r, "artifact", id);
	PGresult *res = api_db(
		r,
		"SELECT a.id, a.kind, a.sha256, a.bytes, extract(epoch from a.created_at)::bigint,"
		" " ARTIFACT_FILES ", e.id, e.format, e.options::text,"
		" (SELECT v.name || '/' || v.version FROM model_versions v"
		"   WHERE v.id = coalesce(e.model_version_id, (SELECT id FROM model_versions"
		"     WHERE artifact_id = a.id LIMIT 1)))"
		" FROM artifacts a LEFT JOIN exports e ON e.artifact_id = a.id"
		" WHERE a.id = $1 AND a.team_id = $2",
		2, (const char *[]){ id, r->team_id });
	if (!res)
		return r->err.rc;
	if (PQntuples(res) == 0)
		return api_not_found(r, "artifact", id);
	json_t *files = api_jsonb(res, 0, 5);
	size_t k;
	json_t *f;
	json_array_foreach(files, k, f)
	{
		json_object_set_new(f, "url",
				    json_sprintf("/v1/registry/artifacts/%s/files/%s", id,
						 json_string_value(json_object_get(f, "path"))));
	}
	json_t *a = json_pack(
		"{s:s, s:s, s:s, s:s, s:I, s:o, s:o, s:o}", "id", id, "object", "artifact", "kind",
		PQgetvalue(res, 0, 1), "sha256", PQgetvalue(res, 0, 2), "bytes",
		(json_int_t)strtoll(PQgetvalue(res, 0, 3), NULL, 10), "created_at",
		api_epoch(res, 0, 4), "files", files, "model_version", api_text_or_null(res, 0, 9));
	json_object_set_new(a, "export",
			    PQgetisnull(res, 0, 6)
				    ? json_null()
				    : json_pack("{s:s, s:s, s:o}", "id", PQgetvalue(res, 0, 6),
						"format", PQgetvalue(res, 0, 7), "options",
						api_jsonb(res, 0, 8)));
	r->resp = api_own(r, a);
	return FT_OK;
}

/* A decimal of at most 18 digits (no sign). */
static bool number(const char *s, size_t n, uint64_t *out)
{
	if (n == 0 || n > 18)
		return false;
	uint64_t v = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	*out = v;
	return true;
}

enum api_range api_range_parse(const char *h, uint64_t size, uint64_t *first, uint64_t *last)
{
	if (!h || strncmp(h, "bytes=", 6) != 0)
		return API_RANGE_NONE;
	const char *s = h + 6;
	while (*s == ' ')
		s++;
	size_t n = strlen(s);
	while (n && s[n - 1] == ' ')
		n--;
	if (memchr(s, ',', n))
		return API_RANGE_NONE; /* several ranges: the whole file */
	const char *dash = memchr(s, '-', n);
	if (!dash)
		return API_RANGE_NONE;
	uint64_t a, b;
	size_t na = (size_t)(dash - s), nb = n - na - 1;
	if (na == 0) { /* the last b bytes */
		if (!number(dash + 1, nb, &b))
			return API_RANGE_NONE;
		if (b == 0 || size == 0)
			return API_RANGE_BAD;
		*first = b >= size ? 0 : size - b;
		*last = size - 1;
		return API_RANGE_OK;
	}
	if (!number(s, na, &a))
		return API_RANGE_NONE;
	if (nb == 0) {
		b = UINT64_MAX;
	} else if (!number(dash + 1, nb, &b) || b < a) {
		return API_RANGE_NONE;
	}
	if (a >= size)
		return API_RANGE_BAD;
	*first = a;
	*last = b >= size ? size - 1 : b;
	return API_RANGE_OK;
}

enum ft_rc h_artifacts_file(struct api_req *r)
{
	const char *id = r->params[0], *path = r->params[1];
	if (!ft_id_valid(FT_ID_ARTIFACT, id))
		return api_not_found(r, "artifact", id);
	if (!api_valid_text(path, 1024))
		return api_not_found(r, "file", "");
	PGresult *res = api_db(r,
			       "SELECT f.sha256, f.bytes FROM artifact_files f"
			       " JOIN artifacts a ON a.id = f.artifact_id"
			       " WHERE a.id = $1 AND a.team_id = $2 AND f.path = $3",
			       3, (const char *[]){ id, r->team_id, path });
	if (!res)
		return r->err.rc;
	if (PQntuples(res) == 0)
		return api_not_found(r, "file", path);
	const char *sha = PQgetvalue(res, 0, 0);
	char key[FT_STORE_KEY_MAX], etag[70], cr[96];
	uint64_t size;
	ft_store_key_for(sha, key);
	snprintf(etag, sizeof(etag), "\"%s\"", sha);
	api_resp_header(r, "Accept-Ranges", "bytes");
	api_resp_header(r, "ETag", etag);
	int fd = ft_store_open_read(r->ctx->store, key, &size, &r->err);
	if (fd < 0) {
		r->err.rc = FT_EINTERNAL; /* the row exists, so the blob must too */
		return FT_EINTERNAL;
	}
	uint64_t first = 0, last = 0;
	const char *if_range = api_header(r, "If-Range");
	enum api_range v = api_range_parse(api_header(r, "Range"), size, &first, &last);
	if (if_range && strcmp(if_range, etag) != 0)
		v = API_RANGE_NONE; /* the client's copy is of another file: all of this one */
	if (v == API_RANGE_BAD) {
		close(fd);
		snprintf(cr, sizeof(cr), "bytes */%" PRIu64, size);
		api_resp_header(r, "Content-Range", cr);
		return ft_failf(&r->err, FT_EINVAL, "range_not_satisfiable",
				"the range \"%.64s\" is outside the file's %" PRIu64 " bytes",
				api_header(r, "Range"), size);
	}
	r->resp_fd = fd;
	r->resp_type = "application/octet-stream";
	if (v == API_RANGE_OK) {
		r->status = 206;
		r->resp_fd_off = first;
		r->resp_fd_size = last - first + 1;
		snprintf(cr, sizeof(cr), "bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64, first, last,
			 size);
		api_resp_header(r, "Content-Range", cr);
	} else {
		r->resp_fd_size = size;
	}
	return FT_OK;
}
