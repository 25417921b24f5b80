/*
 * util.c - small helpers every handler uses: queries on the request's
 * connection, query-string and body parsing, cursor pagination, row to
 * JSON conversions, the audit log.
 *
 * Pagination (every list): ?limit=1..100 (default 20) and ?after=<id>;
 * rows come newest first; the handler fetches limit+1 rows and
 * api_list() turns the extra one into has_more.
 */
#include <netinet/in.h>

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

/* Hot-path queries run as named prepared statements: planning costs more
 * than executing these point lookups. A connection that does not know the
 * statement yet (new or reset) answers 26000; then it is prepared and run
 * again. Must not be used inside a transaction (the failed first try would
 * abort it). */
PGresult *api_db_prepared(struct api_req *r, const char *name, const char *sql, int n,
			  const char *const *params)
{
	PGconn *c = conn_of(r);
	if (!c)
		return NULL;
	for (int attempt = 0; attempt < 2; attempt++) {
		PGresult *res = PQexecPrepared(c, name, n, params, NULL, NULL, 0);
		ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
		if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK) {
			api_defer(r->arena, clear_result, res);
			return res;
		}
		const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
		bool unknown = state && strcmp(state, "26000") == 0;
		PQclear(res);
		if (!unknown || attempt)
			break;
		PGresult *prep = PQprepare(c, name, sql, n, NULL);
		bool ok = prep && PQresultStatus(prep) == PGRES_COMMAND_OK;
		PQclear(prep);
		if (!ok)
			break;
	}
	/* Say why, the usual way. */
	return api_db(r, sql, n, params);
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
	long limit;
	const char *after;
	if (api_page_args(r, id_prefix, &limit, &after))
		return FT_EINVAL;
	char lim[16];
	snprintf(lim, sizeof(lim), "%ld", limit + 1);
	const char *p[] = { owner, after, lim };
	/* table, owner_col and cols are the caller's constants, never input. */
	const char *sql =
		api_printf(r->arena,
			   "SELECT %s FROM %s WHERE %s = $1 AND ($2::text IS NULL OR"
			   " (created_at, id) < (SELECT created_at, id FROM %s WHERE id = $2"
			   " AND %s = $1)) ORDER BY created_at DESC, id DESC LIMIT $3::int",
			   cols, table, owner_col, table, owner_col);
	PGresult *res = api_db(r, sql, 3, p);
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
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	char addr[64] = "";
	if (ci && ci->client_addr && ci->client_addr->sa_family == AF_INET) {
		struct sockaddr_in sin;
		memcpy(&sin, ci->client_addr, sizeof(sin));
		const unsigned char *b = (const unsigned char *)&sin.sin_addr;
		snprintf(addr, sizeof(addr), "%u.%u.%u.%u", b[0], b[1], b[2], b[3]);
	}
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
			    addr,
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

enum ft_rc h_openapi(struct api_req *r)
{
	r->resp = api_own(r, json_loadb(r->ctx->openapi_json, r->ctx->openapi_len, 0, NULL));
	if (!r->resp)
		return ft_failf(&r->err, FT_EINTERNAL, "internal_error",
				"the OpenAPI document is broken");
	return FT_OK;
}
