/*
 * files.c - /v1/files, OpenAI-compatible.
 *
 * POST /v1/files is multipart/form-data with two fields, "purpose"
 * ("fine-tune") and "file". The file part is streamed into the artifact
 * store as it arrives (hashed on the way, capped at max_upload_bytes) and
 * never held whole in memory. Only when the body is complete and valid is
 * the blob committed (renamed to sha256/ab/...) and the row inserted; a
 * client that goes away, an oversized body or a crash leave at most a
 * temporary file that no reader sees.
 */
#include "api_int.h"

#define FILE_COLS                                                \
	"id, filename, purpose, bytes, status, status_details, " \
	"extract(epoch from created_at)::bigint, sha256"

struct upload {
	struct MHD_PostProcessor *pp;
	bool pp_ok; /* the parser accepted the whole body (set by api_upload_end) */
	char hashed_part[640]; /* key NUL filename of the part last hashed (Idempotency-Key) */
	struct ft_store_writer *w;
	bool committed;
	char purpose[32];
	size_t purpose_len;
	bool purpose_seen, purpose_long;
	char *filename;
	int n_files;
};

static void upload_release(void *p)
{
	struct upload *u = p;
	if (u->pp)
		MHD_destroy_post_processor(u->pp);
	if (u->w && !u->committed)
		ft_store_writer_abort(u->w);
}

static enum MHD_Result on_part(void *cls, enum MHD_ValueKind kind, const char *key,
			       const char *filename, const char *ctype, const char *te,
			       const char *data, uint64_t off, size_t size)
{
	struct api_req *r = cls;
	struct upload *u = r->up;
	FT_UNUSED(kind);
	FT_UNUSED(ctype);
	FT_UNUSED(te);
	if (r->body_sha_on) {
		/* Idempotency compares the form's content, not its random boundary.
		 * A part's name and filename are hashed once, when the part begins:
		 * libmicrohttpd may call back several times at offset 0 (an empty
		 * chunk first), depending on how the bytes arrived. */
		char part[sizeof(u->hashed_part)];
		size_t kl = strlen(key), fl = filename ? strlen(filename) : 0;
		if (kl + fl + 2 <= sizeof(part)) {
			memcpy(part, key, kl + 1);
			memcpy(part + kl + 1, filename ? filename : "", fl + 1);
		} else {
			part[0] = '\0';
		}
		if (off == 0 && memcmp(part, u->hashed_part, kl + fl + 2) != 0) {
			ft_sha256_update(&r->body_sha, key, kl + 1);
			if (filename)
				ft_sha256_update(&r->body_sha, filename, fl + 1);
			memcpy(u->hashed_part, part, sizeof(part));
		}
		ft_sha256_update(&r->body_sha, data, size);
	}
	if (strcmp(key, "file") == 0) {
		if (!filename) {
			ft_failf(&r->err, FT_EINVAL, "invalid_type",
				 "\"file\" must be a file part");
			ft_err_param(&r->err, "file");
			return MHD_NO;
		}
		if (off == 0 && u->w && ft_store_writer_bytes(u->w) > 0) {
			ft_failf(&r->err, FT_EINVAL, "invalid_value",
				 "send exactly one \"file\" part");
			ft_err_param(&r->err, "file");
			return MHD_NO;
		}
		if (!u->w) {
			if (ft_store_writer_new(r->ctx->store, r->ctx->max_upload, &u->w, &r->err))
				return MHD_NO;
			u->filename = api_strdup(r->arena, filename);
			u->n_files++;
		}
		if (size && ft_store_writer_write(u->w, data, size, &r->err)) {
			if (r->err.rc == FT_ELIMIT)
				ft_err_param(&r->err, "file");
			return MHD_NO;
		}
		return MHD_YES;
	}
	if (strcmp(key, "purpose") == 0) {
		u->purpose_seen = true;
		if (u->purpose_len + size >= sizeof(u->purpose)) {
			u->purpose_long = true;
			return MHD_YES;
		}
		memcpy(u->purpose + u->purpose_len, data, size);
		u->purpose_len += size;
		u->purpose[u->purpose_len] = 0;
		return MHD_YES;
	}
	char param[64];
	snprintf(param, sizeof(param), "%.60s", key);
	if (!api_valid_text(param, sizeof(param)))
		ft_strlcpy(param, "?", sizeof(param));
	ft_failf(&r->err, FT_EINVAL, "unknown_field",
		 "unknown field \"%s\" (send \"purpose\" and \"file\")", param);
	ft_err_param(&r->err, param);
	return MHD_NO;
}

enum ft_rc api_upload_begin(struct api_req *r)
{
	struct upload *u = api_alloc(r->arena, sizeof(*u));
	r->up = u;
	api_defer(r->arena, upload_release, u);
	const char *ct = api_header(r, MHD_HTTP_HEADER_CONTENT_TYPE);
	if (!ct || strncasecmp(ct, "multipart/form-data", 19) != 0)
		return ft_failf(&r->err, FT_EINVAL, "invalid_content_type",
				"upload the file as multipart/form-data with fields \"purpose\" "
				"and \"file\"");
	u->pp = MHD_create_post_processor(r->conn, 64 * 1024, on_part, r);
	if (!u->pp)
		return ft_failf(&r->err, FT_EINVAL, "invalid_content_type",
				"the multipart/form-data body has no boundary");
	return FT_OK;
}

enum ft_rc api_upload_data(struct api_req *r, const char *data, size_t n)
{
	if (MHD_post_process(r->up->pp, data, n) == MHD_YES)
		return FT_OK;
	if (!ft_err_is_set(&r->err))
		ft_failf(&r->err, FT_EINVAL, "invalid_multipart",
			 "the multipart body is malformed");
	return r->err.rc;
}

static json_t *file_json(const PGresult *res, int i)
{
	json_t *f = json_object();
	json_object_set_new(f, "id", json_string(PQgetvalue(res, i, 0)));
	json_object_set_new(f, "object", json_string("file"));
	json_object_set_new(f, "bytes", json_integer(strtoll(PQgetvalue(res, i, 3), NULL, 10)));
	json_object_set_new(f, "created_at", api_epoch(res, i, 6));
	json_object_set_new(f, "filename", json_string(PQgetvalue(res, i, 1)));
	json_object_set_new(f, "purpose", json_string(PQgetvalue(res, i, 2)));
	json_object_set_new(f, "status", json_string(PQgetvalue(res, i, 4)));
	json_object_set_new(f, "status_details", api_text_or_null(res, i, 5));
	json_object_set_new(f, "expires_at", json_null());
	json_object_set_new(f, "sha256", json_string(PQgetvalue(res, i, 7)));
	return f;
}

void api_upload_end(struct api_req *r)
{
	struct upload *u = r->up;
	if (!u || !u->pp)
		return;
	u->pp_ok = MHD_destroy_post_processor(u->pp) == MHD_YES;
	u->pp = NULL;
}

enum ft_rc h_files_create(struct api_req *r)
{
	struct upload *u = r->up;
	api_upload_end(r);
	if (!u->pp_ok)
		return ft_failf(&r->err, FT_EINVAL, "invalid_multipart",
				"the multipart body ended early or is malformed");
	if (!u->purpose_seen) {
		ft_failf(&r->err, FT_EINVAL, "missing_field", "\"purpose\" is required");
		ft_err_param(&r->err, "purpose");
		return FT_EINVAL;
	}
	if (u->purpose_long || strcmp(u->purpose, "fine-tune") != 0) {
		ft_failf(&r->err, FT_EINVAL, "invalid_value", "\"purpose\" must be \"fine-tune\"");
		ft_err_param(&r->err, "purpose");
		return FT_EINVAL;
	}
	if (!u->w) {
		ft_failf(&r->err, FT_EINVAL, "missing_field", "\"file\" is required");
		ft_err_param(&r->err, "file");
		return FT_EINVAL;
	}
	if (!*u->filename || !api_valid_text(u->filename, 512)) {
		ft_failf(&r->err, FT_EINVAL, "invalid_value",
			 "the file name must be 1 to 512 printable UTF-8 bytes");
		ft_err_param(&r->err, "file");
		return FT_EINVAL;
	}
	char sha[FT_SHA256_HEX_LEN + 1], key[FT_STORE_KEY_MAX], bytes[32], id[FT_ID_MAX];
	uint64_t n;
	u->committed = true; /* commit frees the writer, whatever happens */
	if (ft_store_writer_commit(u->w, sha, key, &n, &r->err))
		return r->err.rc;
	/* the team's storage quota (a refused upload's blob is collected later) */
	if (api_quota_check(r, n, "file"))
		return r->err.rc;
	ft_id_new(FT_ID_FILE, id);
	snprintf(bytes, sizeof(bytes), "%" PRIu64, n);
	const char *p[] = { id, r->team_id, u->filename, bytes, sha };
	PGresult *res =
		api_db(r,
		       "INSERT INTO files (id, team_id, filename, purpose, bytes, sha256, status) "
		       "VALUES ($1, $2, $3, 'fine-tune', $4::bigint, $5, 'processed') "
		       "RETURNING " FILE_COLS,
		       5, p);
	if (!res)
		return r->err.rc;
	r->obj_type = "file";
	r->obj_id = api_strdup(r->arena, id);
	r->resp = api_own(r, file_json(res, 0));
	return FT_OK;
}

enum ft_rc h_files_list(struct api_req *r)
{
	long limit;
	const char *after, *purpose = api_query(r, "purpose");
	if (api_page_args(r, FT_ID_FILE, &limit, &after))
		return FT_EINVAL;
	if (purpose && strcmp(purpose, "fine-tune") && strcmp(purpose, "fine-tune-results")) {
		ft_failf(&r->err, FT_EINVAL, "invalid_value",
			 "\"purpose\" must be \"fine-tune\" or \"fine-tune-results\"");
		ft_err_param(&r->err, "purpose");
		return FT_EINVAL;
	}
	char lim[16];
	snprintf(lim, sizeof(lim), "%ld", limit + 1);
	const char *p[] = { r->team_id, after, purpose, lim };
	PGresult *res = api_db(
		r,
		"SELECT " FILE_COLS " FROM files f WHERE team_id = $1 AND deleted_at IS NULL "
		"AND ($3::text IS NULL OR purpose = $3) "
		"AND ($2::text IS NULL OR (created_at, id) < "
		"  (SELECT created_at, id FROM files WHERE id = $2 AND team_id = $1)) "
		"ORDER BY created_at DESC, id DESC LIMIT $4::int",
		4, p);
	if (!res)
		return r->err.rc;
	json_t *data = json_array();
	for (int i = 0; i < PQntuples(res); i++)
		json_array_append_new(data, file_json(res, i));
	r->resp = api_own(r, api_list(data, limit));
	return FT_OK;
}

static PGresult *file_row(struct api_req *r)
{
	const char *id = r->params[0];
	if (!ft_id_valid(FT_ID_FILE, id)) {
		api_not_found(r, "file", id);
		return NULL;
	}
	const char *p[] = { id, r->team_id };
	PGresult *res = api_db(r,
			       "SELECT " FILE_COLS " FROM files "
			       "WHERE id = $1 AND team_id = $2 AND deleted_at IS NULL",
			       2, p);
	if (res && PQntuples(res) == 0) {
		api_not_found(r, "file", id);
		return NULL;
	}
	return res;
}

enum ft_rc h_files_get(struct api_req *r)
{
	PGresult *res = file_row(r);
	if (!res)
		return r->err.rc;
	r->resp = api_own(r, file_json(res, 0));
	return FT_OK;
}

enum ft_rc h_files_delete(struct api_req *r)
{
	const char *id = r->params[0];
	if (!ft_id_valid(FT_ID_FILE, id))
		return api_not_found(r, "file", id);
	const char *p[] = { id, r->team_id };
	PGresult *res = api_db(r,
			       "UPDATE files SET deleted_at = now() "
			       "WHERE id = $1 AND team_id = $2 AND deleted_at IS NULL RETURNING id",
			       2, p);
	if (!res)
		return r->err.rc;
	if (PQntuples(res) == 0)
		return api_not_found(r, "file", id);
	r->obj_type = "file";
	r->obj_id = id;
	r->resp = api_own(r, json_pack("{s:s,s:s,s:b}", "id", id, "object", "file", "deleted", 1));
	return FT_OK;
}

enum ft_rc h_files_content(struct api_req *r)
{
	PGresult *res = file_row(r);
	if (!res)
		return r->err.rc;
	char key[FT_STORE_KEY_MAX];
	ft_store_key_for(PQgetvalue(res, 0, 7), key);
	int fd = ft_store_open_read(r->ctx->store, key, &r->resp_fd_size, &r->err);
	if (fd < 0) {
		r->err.rc = FT_EINTERNAL; /* the row exists, so the blob must too */
		return FT_EINTERNAL;
	}
	r->resp_fd = fd;
	r->resp_type = "application/octet-stream";
	return FT_OK;
}
