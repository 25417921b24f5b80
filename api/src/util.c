/*
 * util.c - small helpers every handler uses: queries on the request's
 * connection, query-string and body parsing, cursor pagination, row to
 * JSON conversions, the audit log.
 *
 * Pagination (every list): ?limit=1..100 (default 20) and ?after=<id>;
 * rows come newest first; the handler fetches limit+1 rows and
 * api_list() turns the extra one into has_more.
 */
#include "api_int.h"

static void clear_result(void *p)
{
	PQclear(p);
}

static void decref_json(void *p)
{
	json_decref(p);
}

json_t *api_own(struct api_req *r, json_t *v)
{
	if (v)
		api_defer(r->arena, decref_json, v);
	return v;
}

static PGconn *conn_of(struct api_req *r)
{
	if (!r->db)
		r->db = ft_pg_pool_get(r->ctx->pg, 5000, &r->err);
	return r->db;
}

PGresult *api_db(struct api_req *r, const char *sql, int n, const char *const *params)
{
	PGconn *c = conn_of(r);
	if (!c)
		return NULL;
	PGresult *res = ft_pg_exec(c, &r->err, sql, n, params);
	if (res)
		api_defer(r->arena, clear_result, res);
	return res;
}

/* Hot-path queries run as named prepared statements (ft_pg_exec_prepared:
 * not inside a transaction). */
PGresult *api_db_prepared(struct api_req *r, const char *name, const char *sql, int n,
			  const char *const *params)
{
	PGconn *c = conn_of(r);
	if (!c)
		return NULL;
	PGresult *res = ft_pg_exec_prepared(c, &r->err, name, sql, n, params);
	if (res)
		api_defer(r->arena, clear_result, res);
	return res;
}

/* The request's connection, taken from the pool on first use. */
PGconn *api_db_conn(struct api_req *r)
{
	return conn_of(r);
}

enum ft_rc api_db_cmd(struct api_req *r, const char *sql, int n, const char *const *params)
{
	return api_db(r, sql, n, params) ? FT_OK : (r->err.rc ? r->err.rc : FT_EDB);
}

enum ft_rc api_db_begin(struct api_req *r)
{
	return api_db_cmd(r, "BEGIN", 0, NULL);
}

enum ft_rc api_db_commit(struct api_req *r)
{
	return api_db_cmd(r, "COMMIT", 0, NULL);
}

void api_db_release(struct api_req *r)
{
	if (r->db && PQtransactionStatus(r->db) == PQTRANS_IDLE) {
		ft_pg_pool_put(r->ctx->pg, r->db);
		r->db = NULL;
	}
}

const char *api_query(struct api_req *r, const char *name)
{
	return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
}

const char *api_header(struct api_req *r, const char *name)
{
	return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

enum ft_rc api_body_object(struct api_req *r, bool allow_empty, json_t **out)
{
	size_t i = 0;
	while (i < r->raw.len && strchr(" \t\r\n", r->raw.ptr[i]))
		i++;
	if (i == r->raw.len) {
		if (!allow_empty)
			return ft_failf(&r->err, FT_EINVAL, "missing_body",
					"the request needs a JSON object body");
		*out = api_own(r, json_object());
		return FT_OK;
	}
	json_t *v = api_own(r, ft_json_parse(r->raw.ptr, r->raw.len, &r->err));
	if (!v) {
		if (!r->err.code[0] || strcmp(r->err.code, "invalid") == 0)
			ft_strlcpy(r->err.code, "invalid_json", sizeof(r->err.code));
		return FT_EINVAL;
	}
	if (!json_is_object(v))
		return ft_failf(&r->err, FT_EINVAL, "invalid_json",
				"the request body must be a JSON object (got %s)",
				ft_json_type_name(v));
	*out = v;
	return FT_OK;
}

enum ft_rc api_check_keys(struct api_req *r, json_t *obj, const char *prefix,
			  const char *const *allowed)
{
	const char *k;
	json_t *v;
	json_object_foreach(obj, k, v)
	{
		bool ok = false;
		for (const char *const *a = allowed; *a; a++)
			if (strcmp(*a, k) == 0)
				ok = true;
		if (ok)
			continue;
		char param[128];
		snprintf(param, sizeof(param), "%s%s%s", prefix ? prefix : "", prefix ? "." : "",
			 k);
		ft_failf(&r->err, FT_EINVAL, "unknown_field", "unknown field \"%s\"", param);
		ft_err_param(&r->err, param);
		return FT_EINVAL;
	}
	return FT_OK;
}

enum ft_rc api_page_args(struct api_req *r, const char *id_prefix, long *limit, const char **after)
{
	const char *l = api_query(r, "limit"), *a = api_query(r, "after");
	*limit = 20;
	*after = NULL;
	if (l) {
		char *end;
		errno = 0;
		long v = strtol(l, &end, 10);
		if (errno || end == l || *end || v < 1 || v > 100) {
			ft_failf(&r->err, FT_EINVAL, "invalid_value",
				 "\"limit\" must be an integer from 1 to 100");
			ft_err_param(&r->err, "limit");
			return FT_EINVAL;
		}
		*limit = v;
	}
	if (a) {
		if (!ft_id_valid(id_prefix, a)) {
			ft_failf(&r->err, FT_EINVAL, "invalid_cursor",
				 "\"after\" must be an id from a previous page (%s-...)",
				 id_prefix);
			ft_err_param(&r->err, "after");
			return FT_EINVAL;
		}
		*after = a;
	}
	return FT_OK;
}

enum ft_rc api_list_newest(struct api_req *r, const char *id_prefix, const char *table,
			   const char *owner_col, const char *owner, const char *cols,
			   json_t *(*row_fn)(const PGresult *res, int row))
{
	return api_list_newest_where(r, id_prefix, table, owner_col, owner, NULL, NULL, cols,
				     row_fn);
}

enum ft_rc api_list_newest_where(struct api_req *r, const char *id_prefix, const char *table,
				 const char *owner_col, const char *owner, const char *where,
				 const char *where_arg, const char *cols,
				 json_t *(*row_fn)(const PGresult *res, int row))
{
	long limit;
	const char *after;
	if (api_page_args(r, id_prefix, &limit, &after))
		return FT_EINVAL;
	char lim[16];
	snprintf(lim, sizeof(lim), "%ld", limit + 1);
	const char *p[] = { owner, after, lim, where_arg };
	/* table, owner_col, where and cols are the caller's constants, never input. */
	const char *sql = api_printf(
		r->arena,
		"SELECT %s FROM %s WHERE %s = $1 AND ($2::text IS NULL OR"
		" (created_at, id) < (SELECT created_at, id FROM %s WHERE id = $2"
		" AND %s = $1))%s%s ORDER BY created_at DESC, id DESC LIMIT $3::int",
		cols, table, owner_col, table, owner_col, where ? " AND " : "", where ? where : "");
	PGresult *res = api_db(r, sql, where ? 4 : 3, p);
	if (!res)
		return r->err.rc;
	json_t *data = json_array();
	for (int i = 0; i < PQntuples(res); i++)
		json_array_append_new(data, row_fn(res, i));
	r->resp = api_own(r, api_list(data, limit));
	return FT_OK;
}

json_t *api_list(json_t *data, long limit)
{
	bool more = (long)json_array_size(data) > limit;
	if (more)
		json_array_remove(data, (size_t)limit);
	json_t *l = json_object();
	size_t n = json_array_size(data);
	json_object_set_new(l, "object", json_string("list"));
	json_object_set_new(l, "data", data);
	json_object_set_new(l, "has_more", json_boolean(more));
	json_object_set(l, "first_id",
			n ? json_object_get(json_array_get(data, 0), "id") : json_null());
	json_object_set(l, "last_id",
			n ? json_object_get(json_array_get(data, n - 1), "id") : json_null());
	return l;
}

json_t *api_epoch(const PGresult *res, int row, int col)
{
	if (PQgetisnull(res, row, col))
		return json_null();
	return json_integer(strtoll(PQgetvalue(res, row, col), NULL, 10));
}

json_t *api_text_or_null(const PGresult *res, int row, int col)
{
	if (PQgetisnull(res, row, col))
		return json_null();
	return json_string(PQgetvalue(res, row, col));
}

json_t *api_jsonb(const PGresult *res, int row, int col)
{
	if (PQgetisnull(res, row, col))
		return json_null();
	json_t *v = json_loads(PQgetvalue(res, row, col), JSON_DECODE_ANY, NULL);
	return v ? v : json_null();
}

static bool has_nul(json_t *v)
{
	const char *k;
	json_t *x;
	size_t i;
	switch (json_typeof(v)) {
	case JSON_STRING: return strlen(json_string_value(v)) != json_string_length(v);
	case JSON_OBJECT:
		json_object_foreach(v, k, x)
		{
			if (has_nul(x))
				return true;
		}
		return false;
	case JSON_ARRAY:
		json_array_foreach(v, i, x)
		{
			if (has_nul(x))
				return true;
		}
		return false;
	default: return false;
	}
}

enum ft_rc api_json_clean(struct api_req *r, json_t *v, const char *param)
{
	if (!v || !has_nul(v))
		return FT_OK;
	ft_failf(&r->err, FT_EINVAL, "invalid_value", "\"%s\" must not contain NUL characters",
		 param);
	ft_err_param(&r->err, param);
	return FT_EINVAL;
}

enum ft_rc api_not_found(struct api_req *r, const char *what, const char *id)
{
	/* Audited as a denial (it may be another team's object: probing shows
	 * in the log); the id is echoed only when it is printable, to keep the
	 * body and the log clean. */
	r->not_found = true;
	if (api_valid_text(id, 64)) {
		r->obj_id = api_strdup(r->arena, id);
		return ft_failf(&r->err, FT_ENOTFOUND, "not_found", "no %s \"%s\"", what, id);
	}
	return ft_failf(&r->err, FT_ENOTFOUND, "not_found", "no such %s", what);
}

void api_resp_header(struct api_req *r, const char *name, const char *value)
{
	if (r->n_resp_hdrs >= (int)FT_ARRAY_LEN(r->resp_hdrs))
		return;
	r->resp_hdrs[r->n_resp_hdrs][0] = api_strdup(r->arena, name);
	r->resp_hdrs[r->n_resp_hdrs][1] = api_strdup(r->arena, value);
	r->n_resp_hdrs++;
}

bool api_valid_text(const char *s, size_t max)
{
	size_t n = 0;
	const unsigned char *p = (const unsigned char *)s;
	while (*p) {
		int extra;
		if (*p < 0x20 || *p == 0x7f)
			return false;
		if (*p < 0x80)
			extra = 0;
		else if ((*p & 0xe0) == 0xc0 && *p >= 0xc2)
			extra = 1;
		else if ((*p & 0xf0) == 0xe0)
			extra = 2;
		else if ((*p & 0xf8) == 0xf0 && *p <= 0xf4)
			extra = 3;
		else
			return false;
		for (int i = 1; i <= extra; i++)
			if ((p[i] & 0xc0) != 0x80)
				return false;
		p += extra + 1;
		n += (size_t)extra + 1;
		if (n > max)
			return false;
	}
	return true;
}

void api_audit(struct api_req *r, const char *outcome)
{
	char status[16];
	struct ft_err saved = r->err;
	ft_err_clear(&r->err);
	snprintf(status, sizeof(status), "%d", r->status);
	json_t *dj = json_pack("{s:s,s:s}", "method", r->method, "code",
			       outcome[0] == 'd' ? saved.code : "");
	char *detail = dj ? json_dumps(dj, JSON_COMPACT) : NULL;
	json_decref(dj);
	const char *p[] = { r->team_id[0] ? r->team_id : NULL,
			    r->key_id[0] ? r->key_id : NULL,
			    r->route ? r->route->action : "unknown",
			    r->obj_type,
			    r->obj_id,
			    outcome,
			    status,
			    r->addr,
			    detail };
	if (api_db_cmd(r,
		       "INSERT INTO audit_log (team_id, key_id, action, object_type, object_id, "
		       "outcome, status_code, remote_addr, detail) "
		       "VALUES ($1, $2, $3, $4, $5, $6, $7::int, NULLIF($8, ''), $9::jsonb)",
		       9, p))
		ft_logf(FT_LOG_WARN, "api", NULL, "audit log write failed: %s", r->err.detail);
	free(detail);
	r->err = saved;
}

static const char *const role_names[] = { "none", "viewer", "member", "admin" };

const char *api_role_name(enum api_role r)
{
	return (size_t)r < FT_ARRAY_LEN(role_names) ? role_names[r] : "none";
}

bool api_role_parse(const char *s, enum api_role *out)
{
	for (size_t i = 1; i < FT_ARRAY_LEN(role_names); i++) {
		if (strcmp(s, role_names[i]) == 0) {
			*out = (enum api_role)i;
			return true;
		}
	}
	return false;
}

/* Readiness (GET /health): this process answers and PostgreSQL does too;
 * 503 "unavailable" otherwise, so a load balancer or a Kubernetes readiness
 * probe stops sending requests while the database is away. */
enum ft_rc h_health(struct api_req *r)
{
	if (!api_db(r, "SELECT 1", 0, NULL)) /* the arena clears the result */
		return r->err.rc;
	r->resp = api_own(r, json_pack("{s:s, s:s, s:s}", "status", "ok", "database", "ok", "store",
				       ft_store_backend(r->ctx->store)));
	return FT_OK;
}

/* Liveness (GET /health/live): the HTTP threads answer. It does not touch
 * the database, so an outage there does not get every replica restarted. */
enum ft_rc h_health_live(struct api_req *r)
{
	r->resp = api_own(r, json_pack("{s:s}", "status", "ok"));
	return FT_OK;
}

enum ft_rc h_openapi(struct api_req *r)
{
	r->resp = api_own(r, json_loadb(r->ctx->openapi_json, r->ctx->openapi_len, 0, NULL));
	if (!r->resp)
		return ft_failf(&r->err, FT_EINTERNAL, "internal_error",
				"the OpenAPI document is broken");
	return FT_OK;
}

/* A credential sealed for storage (ft/crypto.h's secret box under the
 * server's secret_key, bound to the id of the row that keeps it): the
 * endpoints' api_key and an experiment judge's. Without a secret_key it is
 * refused (503 secret_key_unset, naming param): nothing is kept in clear. */
enum ft_rc api_seal_secret(struct api_req *r, const char *id, const char *plain, const char *param,
			   const char **sealed)
{
	if (!r->ctx->has_secret_key) {
		ft_failf(&r->err, FT_EUNAVAIL, "secret_key_unset",
			 "credentials cannot be stored: this server has no secret_key "
			 "(docs/configuration.md)");
		ft_err_param(&r->err, param);
		return FT_EUNAVAIL;
	}
	char *box;
	if (ft_secretbox_seal(r->ctx->secret_key, id, plain, strlen(plain), &box, &r->err))
		return r->err.rc;
	*sealed = api_strdup(r->arena, box);
	free(box);
	return FT_OK;
}

/* 400: err names param (when not NULL) and carries code and the message. */
enum ft_rc api_bad(struct api_req *r, const char *param, const char *code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	ft_vfailf(&r->err, FT_EINVAL, code, fmt, ap);
	va_end(ap);
	if (param)
		ft_err_param(&r->err, param);
	return FT_EINVAL;
}

enum ft_rc api_work_cancel(struct api_req *r, const struct api_work_kind *k, const char *id)
{
	json_t *b;
	if (api_body_object(r, true, &b) ||
	    api_check_keys(r, b, NULL, (const char *const[]){ NULL }))
		return FT_EINVAL;
	if (!ft_id_valid(k->id_prefix, id))
		return api_not_found(r, k->what, id);
	if (api_db_begin(r))
		return r->err.rc;
	char sql[384];
	snprintf(sql, sizeof sql,
		 "SELECT status, attempt FROM %s WHERE id = $1 AND team_id = $2 FOR UPDATE",
		 k->table);
	PGresult *res = api_db(r, sql, 2, (const char *[]){ id, r->team_id });
	if (!res)
		return r->err.rc;
	if (PQntuples(res) == 0)
		return api_not_found(r, k->what, id);
	const char *from = api_strdup(r->arena, PQgetvalue(res, 0, 0));
	const char *att = api_strdup(r->arena, PQgetvalue(res, 0, 1));
	const char *to = strcmp(from, "queued") == 0 ? "cancelled"
			 : strcmp(from, "dispatched") == 0 || strcmp(from, "running") == 0
				 ? "cancelling"
				 : NULL;
	if (!to && strcmp(from, "cancelling") != 0)
		return ft_failf(&r->err, FT_ECONFLICT, k->not_cancellable,
				"%s \"%s\" has already %s", k->what, id, from);
	if (!to)
		return FT_OK;
	const char *q[] = { id, from, to, att };
	snprintf(sql, sizeof sql,
		 "UPDATE %s SET status = $3, updated_at = now(),"
		 " finished_at = CASE WHEN $3 = 'cancelled' THEN now() END"
		 " WHERE id = $1 AND status = $2",
		 k->table);
	if (api_db_cmd(r, sql, 3, q))
		return r->err.rc;
	snprintf(sql, sizeof sql,
		 "INSERT INTO %s (%s, from_status, to_status, attempt, reason)"
		 " VALUES ($1, $2, $3, $4::int, 'cancelled by the user')",
		 k->transitions, k->fk);
	return api_db_cmd(r, sql, 4, q) ? r->err.rc : FT_OK;
}

enum ft_rc api_team_file_open(struct api_req *r, const char *id, enum ft_rc missing, FILE **fp)
{
	*fp = NULL;
	if (!ft_id_valid(FT_ID_FILE, id))
		return api_bad(r, "file", "invalid_file", "\"file\" must be a file id (file-...)");
	PGresult *res = api_db(r,
			       "SELECT sha256 FROM files WHERE id = $1 AND team_id = $2"
			       " AND deleted_at IS NULL AND purpose = 'fine-tune'",
			       2, (const char *[]){ id, r->team_id });
	if (!res)
		return r->err.rc;
	if (PQntuples(res) == 0) {
		ft_failf(&r->err, missing, "file_not_found", "file \"%s\" does not exist", id);
		ft_err_param(&r->err, "file");
		return missing;
	}
	char key[FT_STORE_KEY_MAX];
	struct ft_err e;
	ft_err_clear(&e);
	ft_store_key_for(PQgetvalue(res, 0, 0), key);
	int fd = ft_store_open_read(r->ctx->store, key, NULL, &e);
	*fp = fd >= 0 ? fdopen(fd, "rb") : NULL;
	if (!*fp && fd >= 0)
		close(fd);
	return FT_OK;
}
