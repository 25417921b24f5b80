/*
 * replays.c - replays of a prompt set through an experiment's arms
 * (docs/evaluation.md "Replays"; the table: migration 0010).
 *
 *   POST /v1/experiments/{id}/replays        {"file", "max_rows", "max_tokens"}
 *   GET  /v1/experiments/{id}/replays        the experiment's, newest first
 *   GET  /v1/experiments/{id}/replays/{rid}  ?rows=true adds each row's answers
 *
 * ft-api checks and keeps; ft-scheduler's replay thread (scheduler/src/
 * replay.c) sends. The file is a chat JSONL file of the team, each row in
 * the evaluation format (ft_eval_row_parse): its messages before the
 * reference answer are the prompt. Every row is read and checked here, up to
 * max_rows rows, so that a bad row is refused now, naming its line, not
 * found by the scheduler later. The arms that answer are the experiment's
 * active ones now; the experiment must be running or paused and on an
 * endpoint. Another team's experiment or replay is not found.
 */
#include "api_int.h"
#include "ft/evaluate.h"

#define REPLAY_ROWS_DEFAULT 200
#define REPLAY_ROWS_MAX 2000
#define REPLAY_TOKENS_DEFAULT 256

#define RPL_COLS                                                                           \
	"id, experiment_id, file_id, max_rows, max_tokens, status, rows_sent,"             \
	" jsonb_array_length(prompts), judgments_created, error, attempts,"                \
	" extract(epoch from created_at)::bigint, extract(epoch from started_at)::bigint," \
	" extract(epoch from finished_at)::bigint,"                                        \
	" (SELECT coalesce(jsonb_agg(jsonb_build_object('arm', a.name, 'position',"        \
	"   a.position, 'answers', (SELECT count(*) FROM experiment_replay_answers ra"     \
	"   WHERE ra.replay_id = experiment_replays.id AND ra.position = a.position))"     \
	"   ORDER BY a.position), '[]')::text FROM experiment_arms a"                      \
	"   WHERE a.experiment_id = experiment_replays.experiment_id"                      \
	"   AND a.position = ANY(experiment_replays.arms))"

static json_t *replay_json(const PGresult *res, int i)
{
	json_t *o = json_object();
	json_object_set_new(o, "id", json_string(PQgetvalue(res, i, 0)));
	json_object_set_new(o, "object", json_string("experiment.replay"));
	json_object_set_new(o, "experiment", json_string(PQgetvalue(res, i, 1)));
	json_object_set_new(o, "file", json_string(PQgetvalue(res, i, 2)));
	json_object_set_new(o, "max_rows", json_integer(atoi(PQgetvalue(res, i, 3))));
	json_object_set_new(o, "max_tokens", json_integer(atoi(PQgetvalue(res, i, 4))));
	json_object_set_new(o, "status", json_string(PQgetvalue(res, i, 5)));
	json_object_set_new(o, "rows_sent", json_integer(atoi(PQgetvalue(res, i, 6))));
	json_object_set_new(o, "rows", json_integer(atoi(PQgetvalue(res, i, 7))));
	json_object_set_new(o, "judgments_created", json_integer(atoi(PQgetvalue(res, i, 8))));
	json_object_set_new(o, "error", api_text_or_null(res, i, 9));
	json_object_set_new(o, "attempts", json_integer(atoi(PQgetvalue(res, i, 10))));
	json_object_set_new(o, "created_at", api_epoch(res, i, 11));
	json_object_set_new(o, "started_at", api_epoch(res, i, 12));
	json_object_set_new(o, "finished_at", api_epoch(res, i, 13));
	json_object_set_new(o, "arms", api_jsonb(res, i, 14));
	return o;
}

/* The experiment of the caller's team, or not found. */
static enum ft_rc own_experiment(struct api_req *r, const char *id)
{
	if (!ft_id_valid(FT_ID_EXPERIMENT, id))
		return api_not_found(r, "experiment", id);
	PGresult *res = api_db(r, "SELECT 1 FROM experiments WHERE id = $1 AND team_id = $2", 2,
			       (const char *[]){ id, r->team_id });
	if (!res)
		return r->err.rc;
	if (PQntuples(res) == 0)
		return api_not_found(r, "experiment", id);
	return FT_OK;
}

/* Read the team's file `id`: each row's prompt as [{"role", "content"}]
 * into prompts (its line into lines), at most max_rows rows. A row that is
 * not a conversation is a 400 naming its line. */
static enum ft_rc read_prompts(struct api_req *r, const char *id, long max_rows, json_t *prompts,
			       json_t *lines)
{
	FILE *fp;
	if (api_team_file_open(r, id, FT_ENOTFOUND, &fp))
		return r->err.rc;
	if (!fp)
		return ft_failf(&r->err, FT_EUNAVAIL, "store_unavailable",
				"file \"%s\" cannot be read from the store now: try again", id);
	struct ft_err e;
	ft_err_clear(&e);
	struct ft_jsonl_reader rd;
	struct ft_eval_row row;
	enum ft_data_format fmt = FT_FMT_UNKNOWN;
	bool eof = false;
	enum ft_rc rc = ft_jsonl_reader_from_file(&rd, fp, &e);
	ft_eval_row_init(&row);
	while (!rc && (long)json_array_size(prompts) < max_rows &&
	       !(rc = ft_jsonl_reader_next(&rd, &eof, &e)) && !eof) {
		if (ft_jsonl_blank(ft_buf_str(&rd.line), rd.line.len))
			continue;
		ft_eval_row_release(&row);
		ft_eval_row_init(&row);
		rc = ft_eval_row_parse(ft_buf_str(&rd.line), rd.line.len, rd.lineno, &fmt, &row,
				       &e);
		if (rc)
			break;
		if (row.row.raw || row.n_prompt == 0) {
			rc = ft_failf(&e, FT_EINVAL, "not_a_conversation",
				      "line %ld: the row is not a conversation (\"messages\" with "
				      "a user turn before the answer)",
				      rd.lineno);
			e.line = rd.lineno;
			break;
		}
		json_t *msgs = json_array();
		for (size_t k = 0; k < row.n_prompt; k++)
			json_array_append_new(
				msgs, json_pack("{s:s, s:s%}", "role",
						ft_chat_role_name(row.row.msgs[k].role), "content",
						row.row.msgs[k].content, row.row.msgs[k].len));
		json_array_append_new(prompts, msgs);
		json_array_append_new(lines, json_integer(rd.lineno));
	}
	if (!rc && json_array_size(prompts) == 0)
		rc = ft_failf(&e, FT_EINVAL, "empty_file", "has no rows");
	ft_eval_row_release(&row);
	ft_jsonl_reader_close(&rd);
	fclose(fp);
	if (!rc)
		return FT_OK;
	if (e.rc == FT_EIO)
		return ft_failf(&r->err, FT_EUNAVAIL, "store_unavailable",
				"file \"%s\" cannot be read from the store now: try again", id);
	ft_failf(&r->err, FT_EINVAL, e.code[0] ? e.code : "invalid_file", "file \"%s\": %s", id,
		 e.msg);
	ft_err_param(&r->err, "file");
	ft_err_line(&r->err, e.line);
	return FT_EINVAL;
}

static enum ft_rc replay_answer(struct api_req *r, const char *exp, const char *rid, bool rows)
{
	PGresult *res = api_db(r,
			       "SELECT " RPL_COLS " FROM experiment_replays"
			       " WHERE id = $1 AND experiment_id = $2 AND team_id = $3",
			       3, (const char *[]){ rid, exp, r->team_id });
	if (!res)
		return r->err.rc;
	if (PQntuples(res) == 0)
		return api_not_found(r, "replay", rid);
	json_t *o = api_own(r, replay_json(res, 0));
	r->resp = o;
	if (!rows)
		return FT_OK;
	/* [{index, line, prompt, answers: {arm: text}}] */
	res = api_db(r,
		     "SELECT coalesce(jsonb_agg(jsonb_build_object('index', p.i - 1, 'line',"
		     " rp.lines[p.i], 'prompt', p.msgs, 'answers', (SELECT"
		     " coalesce(jsonb_object_agg(a.name, ra.answer), '{}') FROM"
		     " experiment_replay_answers ra JOIN experiment_arms a ON a.experiment_id ="
		     " rp.experiment_id AND a.position = ra.position WHERE ra.replay_id = rp.id"
		     " AND ra.row_index = p.i - 1)) ORDER BY p.i), '[]')::text"
		     " FROM experiment_replays rp,"
		     " jsonb_array_elements(rp.prompts) WITH ORDINALITY AS p(msgs, i)"
		     " WHERE rp.id = $1",
		     1, (const char *[]){ rid });
	if (!res)
		return r->err.rc;
	json_object_set_new(o, "data", api_jsonb(res, 0, 0));
	return FT_OK;
}

enum ft_rc h_replays_create(struct api_req *r)
{
	static const char *const keys[] = { "file", "max_rows", "max_tokens", NULL };
	const char *id = r->params[0], *file;
	long long max_rows = REPLAY_ROWS_DEFAULT, max_tokens = REPLAY_TOKENS_DEFAULT;
	json_t *b;
	if (!ft_id_valid(FT_ID_EXPERIMENT, id))
		return api_not_found(r, "experiment", id);
	if (api_body_object(r, false, &b) || api_check_keys(r, b, NULL, keys) ||
	    ft_json_get_str(b, "file", FT_JSON_REQUIRED | FT_JSON_NONEMPTY, &file, &r->err) ||
	    ft_json_get_int(b, "max_rows", FT_JSON_NULL_OK, 1, REPLAY_ROWS_MAX, &max_rows,
			    &r->err) ||
	    ft_json_get_int(b, "max_tokens", FT_JSON_NULL_OK, 1, 4096, &max_tokens, &r->err))
		return FT_EINVAL;
	PGresult *res = api_db(r,
			       "SELECT x.status, x.endpoint_id, (SELECT array_agg(a.position"
			       " ORDER BY a.position)::text FROM experiment_arms a"
			       " WHERE a.experiment_id = x.id AND a.status = 'active'"
			       " AND a.model_version_id IS NOT NULL)"
			       " FROM experiments x WHERE x.id = $1 AND x.team_id = $2",
			       2, (const char *[]){ id, r->team_id });
	if (!res)
		return r->err.rc;
	if (PQntuples(res) == 0)
		return api_not_found(r, "experiment", id);
	const char *status = api_strdup(r->arena, PQgetvalue(res, 0, 0));
	if (strcmp(status, "running") != 0 && strcmp(status, "paused") != 0)
		return ft_failf(&r->err, FT_ECONFLICT, "experiment_state",
				"experiment \"%s\" is %s: a replay is sent while it runs or is "
				"paused",
				id, status);
	if (PQgetisnull(res, 0, 1)) {
		ft_failf(&r->err, FT_ECONFLICT, "no_endpoint",
			 "experiment \"%s\" has no \"endpoint_id\": a replay is sent to the arms "
			 "on the experiment's endpoint",
			 id);
		ft_err_param(&r->err, "endpoint_id");
		return FT_ECONFLICT;
	}
	if (PQgetisnull(res, 0, 2))
		return ft_failf(&r->err, FT_ECONFLICT, "no_active_arm",
				"experiment \"%s\" has no active arm to answer", id);
	const char *arms = api_strdup(r->arena, PQgetvalue(res, 0, 2));
	json_t *prompts = api_own(r, json_array()), *lines = api_own(r, json_array());
	if (read_prompts(r, file, (long)max_rows, prompts, lines))
		return r->err.rc;
	char *ltext = json_dumps(lines, JSON_COMPACT);
	api_defer(r->arena, free, ltext);
	char *ptext = json_dumps(prompts, JSON_COMPACT);
	api_defer(r->arena, free, ptext);
	char rid[FT_ID_MAX], mr[16], mt[16];
	ft_id_new(FT_ID_REPLAY, rid);
	snprintf(mr, sizeof(mr), "%lld", max_rows);
	snprintf(mt, sizeof(mt), "%lld", max_tokens);
	const char *p[] = { rid, id, r->team_id, file, mr, mt, arms, ptext, ltext };
	if (!ptext || !ltext)
		return ft_failf(&r->err, FT_ENOMEM, "internal_error", "out of memory");
	if (api_db_cmd(r,
		       "INSERT INTO experiment_replays (id, experiment_id, team_id, file_id,"
		       " max_rows, max_tokens, arms, prompts, lines, next_attempt_at)"
		       " VALUES ($1, $2, $3, $4, $5::int, $6::int, $7::int[], $8::jsonb,"
		       " ARRAY(SELECT jsonb_array_elements_text($9::jsonb)::int), now())",
		       9, p) ||
	    replay_answer(r, id, rid, false))
		return r->err.rc;
	r->status = 202;
	r->obj_type = "experiment.replay";
	r->obj_id = api_strdup(r->arena, rid);
	return FT_OK;
}

enum ft_rc h_replays_list(struct api_req *r)
{
	const char *id = r->params[0];
	if (own_experiment(r, id))
		return r->err.rc;
	return api_list_newest(r, FT_ID_REPLAY, "experiment_replays", "experiment_id", id, RPL_COLS,
			       replay_json);
}

enum ft_rc h_replays_get(struct api_req *r)
{
	const char *id = r->params[0], *rid = r->params[1], *rows = api_query(r, "rows");
	if (rows && strcmp(rows, "true") != 0 && strcmp(rows, "false") != 0)
		return api_bad(r, "rows", "invalid_value", "\"rows\" must be true or false");
	if (own_experiment(r, id))
		return r->err.rc;
	if (!ft_id_valid(FT_ID_REPLAY, rid))
		return api_not_found(r, "replay", rid);
	return replay_answer(r, id, rid, rows && strcmp(rows, "true") == 0);
}
