/*
 * datasets.c - /v1/datasets: an uploaded file plus what validation learned
 * about it (format, line-numbered report, statistics, a preview of the
 * first examples as text and as turns {role, content}). Created in status "validating"; the validator threads
 * fill it in and move it to "valid" or "invalid".
 */
#include "api_int.h"

#define DS_COLS                                                          \
	"id, file_id, name, format, status, report::text, stats::text, " \
	"extract(epoch from created_at)::bigint, extract(epoch from validated_at)::bigint"

static json_t *ds_json(const PGresult *res, int i)
{
	json_t *d = json_object();
	json_t *report = api_jsonb(res, i, 5);
	json_t *preview = json_object_get(report, "preview");
	json_t *turns = json_object_get(report, "preview_messages");
	json_object_set_new(d, "id", json_string(PQgetvalue(res, i, 0)));
	json_object_set_new(d, "object", json_string("dataset"));
	json_object_set_new(d, "file_id", json_string(PQgetvalue(res, i, 1)));
	json_object_set_new(d, "name", json_string(PQgetvalue(res, i, 2)));
	json_object_set_new(d, "format", api_text_or_null(res, i, 3));
	json_object_set_new(d, "status", json_string(PQgetvalue(res, i, 4)));
	json_object_set_new(d, "preview", preview ? json_incref(preview) : json_array());
	json_object_set_new(d, "preview_messages", turns ? json_incref(turns) : json_array());
	if (json_is_object(report)) {
		json_object_del(report, "preview");
		json_object_del(report, "preview_messages");
	}
	json_object_set_new(d, "report", report);
	json_object_set_new(d, "stats", api_jsonb(res, i, 6));
	json_object_set_new(d, "created_at", api_epoch(res, i, 7));
	json_object_set_new(d, "validated_at", api_epoch(res, i, 8));
	return d;
}

enum ft_rc h_datasets_create(struct api_req *r)
{
	static const char *const keys[] = { "file_id", "name", NULL };
	json_t *b;
	const char *file_id = NULL, *name = NULL;
	if (api_body_object(r, false, &b) || api_check_keys(r, b, NULL, keys) ||
	    ft_json_get_str(b, "file_id", FT_JSON_REQUIRED | FT_JSON_NONEMPTY, &file_id, &r->err) ||
	    ft_json_get_str(b, "name", FT_JSON_NULL_OK | FT_JSON_NONEMPTY, &name, &r->err))
		return FT_EINVAL;
	if (name && !api_valid_text(name, 256)) {
		ft_failf(&r->err, FT_EINVAL, "invalid_value",
			 "\"name\" must be 1 to 256 printable characters");
		ft_err_param(&r->err, "name");
		return FT_EINVAL;
	}
	if (!ft_id_valid(FT_ID_FILE, file_id)) {
		ft_failf(&r->err, FT_EINVAL, "invalid_file",
			 "\"file_id\" must be a file id (file-...)");
		ft_err_param(&r->err, "file_id");
		return FT_EINVAL;
	}
	const char *pf[] = { file_id, r->team_id };
	PGresult *f = api_db(r,
			     "SELECT filename FROM files WHERE id = $1 AND team_id = $2 "
			     "AND deleted_at IS NULL",
			     2, pf);
	if (!f)
		return r->err.rc;
	if (PQntuples(f) == 0) {
		ft_failf(&r->err, FT_EINVAL, "file_not_found", "file_id \"%s\" does not exist",
			 file_id);
		ft_err_param(&r->err, "file_id");
		return FT_EINVAL;
	}
	char id[FT_ID_MAX];
	ft_id_new(FT_ID_DATASET, id);
	const char *p[] = { id, r->team_id, file_id, name ? name : PQgetvalue(f, 0, 0) };
	PGresult *res =
		api_db(r,
		       "INSERT INTO datasets (id, team_id, file_id, name) VALUES ($1, $2, $3, "
		       "left($4, 256)) RETURNING " DS_COLS,
		       4, p);
	if (!res)
		return r->err.rc;
	api_validators_kick(r->ctx);
	r->obj_type = "dataset";
	r->obj_id = api_strdup(r->arena, id);
	r->resp = api_own(r, ds_json(res, 0));
	return FT_OK;
}

enum ft_rc h_datasets_list(struct api_req *r)
{
	return api_list_newest(r, FT_ID_DATASET, "datasets", "team_id", r->team_id, DS_COLS,
			       ds_json);
}

enum ft_rc h_datasets_get(struct api_req *r)
{
	const char *id = r->params[0];
	if (!ft_id_valid(FT_ID_DATASET, id))
		return api_not_found(r, "dataset", id);
	const char *p[] = { id, r->team_id };
	PGresult *res =
		api_db(r, "SELECT " DS_COLS " FROM datasets WHERE id = $1 AND team_id = $2", 2, p);
	if (!res)
		return r->err.rc;
	if (PQntuples(res) == 0)
		return api_not_found(r, "dataset", id);
	r->resp = api_own(r, ds_json(res, 0));
	return FT_OK;
}
