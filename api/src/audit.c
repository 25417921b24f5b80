/*
 * audit.c - GET /v1/audit_log (admin): the team's audit rows, newest first.
 * The rows are written by util.c's api_audit() after every write and every
 * denial; this only reads them.
 *
 *   ?limit=1..100 (20)   ?after=<id of the last row of the previous page>
 *   ?action=jobs.create  ?outcome=allowed|denied
 *
 * Audit ids are numbers (an identity column), so the cursor is one too.
 */
#include "api_int.h"

static json_t *entry_json(const PGresult *res, int i)
{
	json_t *e = json_object();
	json_object_set_new(e, "id", json_integer(strtoll(PQgetvalue(res, i, 0), NULL, 10)));
	json_object_set_new(e, "object", json_string("audit_log.entry"));
	json_object_set_new(e, "created_at", api_epoch(res, i, 1));
	json_object_set_new(e, "key_id", api_text_or_null(res, i, 2));
	json_object_set_new(e, "action", json_string(PQgetvalue(res, i, 3)));
	json_object_set_new(e, "object_type", api_text_or_null(res, i, 4));
	json_object_set_new(e, "object_id", api_text_or_null(res, i, 5));
	json_object_set_new(e, "outcome", json_string(PQgetvalue(res, i, 6)));
	json_object_set_new(e, "status_code", api_epoch(res, i, 7));
	json_object_set_new(e, "remote_addr", api_text_or_null(res, i, 8));
	json_object_set_new(e, "detail", api_jsonb(res, i, 9));
	return e;
}

enum ft_rc h_audit_list(struct api_req *r)
{
	const char *l = api_query(r, "limit"), *after = api_query(r, "after");
	const char *action = api_query(r, "action"), *outcome = api_query(r, "outcome");
	long limit = 20;
	char *end;
	if (l) {
		errno = 0;
		limit = strtol(l, &end, 10);
		if (errno || end == l || *end || limit < 1 || limit > 100)
			return api_bad(r, "limit", "invalid_value", "%s",
				       "\"limit\" must be an integer from 1 to 100");
	}
	if (after) {
		errno = 0;
		long long a = strtoll(after, &end, 10);
		if (errno || end == after || *end || a < 1)
			return api_bad(
				r, "after", "invalid_value", "%s",
				"\"after\" must be the id of the last entry of a previous page");
	}
	if (action && (!*action || strlen(action) > 64 || !api_valid_text(action, 64)))
		return api_bad(r, "action", "invalid_value", "%s",
			       "\"action\" must be an action name such as jobs.create");
	if (outcome && strcmp(outcome, "allowed") && strcmp(outcome, "denied"))
		return api_bad(r, "outcome", "invalid_value", "%s",
			       "\"outcome\" must be \"allowed\" or \"denied\"");
	char lim[16];
	snprintf(lim, sizeof(lim), "%ld", limit + 1);
	const char *p[] = { r->team_id, after, action, outcome, lim };
	PGresult *res = api_db(r,
			       "SELECT id, extract(epoch from created_at)::bigint, key_id, action, "
			       "object_type, object_id, outcome, status_code, remote_addr, "
			       "detail::text FROM audit_log WHERE team_id = $1 "
			       "AND ($2::bigint IS NULL OR id < $2::bigint) "
			       "AND ($3::text IS NULL OR action = $3) "
			       "AND ($4::text IS NULL OR outcome = $4) "
			       "ORDER BY id DESC LIMIT $5::int",
			       5, p);
	if (!res)
		return r->err.rc;
	json_t *data = json_array();
	for (int i = 0; i < PQntuples(res); i++)
		json_array_append_new(data, entry_json(res, i));
	r->resp = api_own(r, api_list(data, limit));
	return FT_OK;
}
