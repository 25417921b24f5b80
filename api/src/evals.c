/*
 * evals.c - offline evaluation jobs: models (base models, or versions on
 * their base) against an evaluation file, run on a worker by ft-train eval
 * (trainer/include/ft/evaluate.h), dispatched by ft-scheduler as work of a
 * third kind beside jobs and exports (scheduler/src/sched.c, sched_kinds).
 * Never run inside ft-api.
 *
 *   POST /v1/evals               {"file", "models": [REF, ...], "name", "options", "priority"}
 *   GET  /v1/evals               the team's, newest first
 *   GET  /v1/evals/{id}          status, progress, each model's metrics side by
 *                                side; ?rows=true adds the answers row by row
 *   POST /v1/evals/{id}/cancel
 *   GET  /v1/evals/{id}/events   newest first
 *
 * REF goes through the one resolver (resolve.c): a base model, NAME/N,
 * NAME@ALIAS, ft:BASE:JOB; never another team's. Every refusal names its
 * field: "file" (not the team's, not a conversation file: its first row is
 * parsed as ft-train eval parses every row), "models[i]" (nothing, a
 * checkpoint, the same model twice), "options.<name>" (ft/evaluate.h's
 * table).
 */
#include "api_int.h"
#include "ft/evaluate.h"
#include "ft/stats.h"

#define EVAL_COLS                                                                                  \
	"e.id, e.name, e.file_id, e.options::text, e.status, e.attempt, e.max_attempts,"           \
	" e.worker_id, e.progress::text, e.error::text, extract(epoch from e.created_at)::bigint," \
	" extract(epoch from e.started_at)::bigint, extract(epoch from e.finished_at)::bigint,"    \
	" e.priority,"                                                                             \
	" (SELECT coalesce(jsonb_agg(jsonb_build_object('position', m.position, 'model',"          \
	"   m.model, 'model_version_id', m.model_version_id, 'base_model', b.name,"                \
	"   'metrics', m.result, 'judge', (SELECT jsonb_build_object("                             \
	"     'pending', count(*) FILTER (WHERE j.status = 'pending'),"                            \
	"     'failed', count(*) FILTER (WHERE j.status = 'failed'),"                              \
	"     'wins', count(*) FILTER (WHERE j.outcome = 'win'),"                                  \
	"     'ties', count(*) FILTER (WHERE j.outcome = 'tie'),"                                  \
	"     'losses', count(*) FILTER (WHERE j.outcome = 'loss'))"                               \
	"     FROM eval_judgments j WHERE j.eval_id = m.eval_id AND j.position = m.position))"     \
	"   ORDER BY m.position), '[]')::text FROM eval_models m"                                  \
	"   JOIN base_models b ON b.id = m.base_model_id WHERE m.eval_id = e.id),"                 \
	" e.judge::text, e.judge_api_key_sealed IS NOT NULL"

/* A model's judge counts (the query's) with its win rate against the
 * references: (wins + ties / 2) / decided, and that rate's 95% Wilson
 * interval (ft/stats.h; a tie counts half a success, as AlpacaEval and
 * Chatbot Arena count it). null without a judge; the rate and interval
 * null until a verdict is in. */
static void judge_summary(json_t *m, bool has_judge)
{
	json_t *j = json_object_get(m, "judge");
	if (!has_judge || !json_is_object(j)) {
		json_object_set_new(m, "judge", json_null());
		return;
	}
	double w = (double)json_integer_value(json_object_get(j, "wins")),
	       t = (double)json_integer_value(json_object_get(j, "ties")),
	       l = (double)json_integer_value(json_object_get(j, "losses"));
	double n = w + t + l, lo, hi;
	struct ft_err err;
	ft_err_clear(&err);
	bool ok = n > 0 && ft_stats_wilson(w + t / 2, n, 0.95, &lo, &hi, &err) == FT_OK;
	json_object_set_new(j, "win_rate", ok ? json_real((w + t / 2) / n) : json_null());
	json_object_set_new(j, "ci95", ok ? json_pack("[f, f]", lo, hi) : json_null());
}

static json_t *eval_json(const PGresult *res, int i)
{
	json_t *e = json_object();
	json_object_set_new(e, "id", json_string(PQgetvalue(res, i, 0)));
	json_object_set_new(e, "object", json_string("evaluation"));
	json_object_set_new(e, "name", json_string(PQgetvalue(res, i, 1)));
	json_object_set_new(e, "file", json_string(PQgetvalue(res, i, 2)));
	json_object_set_new(e, "options", api_jsonb(res, i, 3));
	json_object_set_new(e, "status", json_string(PQgetvalue(res, i, 4)));
	json_object_set_new(e, "attempt", json_integer(atoi(PQgetvalue(res, i, 5))));
	json_object_set_new(e, "max_attempts", json_integer(atoi(PQgetvalue(res, i, 6))));
	json_object_set_new(e, "worker", api_text_or_null(res, i, 7));
	json_object_set_new(e, "progress", api_jsonb(res, i, 8));
	json_object_set_new(e, "error", api_jsonb(res, i, 9));
	json_object_set_new(e, "created_at", api_epoch(res, i, 10));
	json_object_set_new(e, "started_at", api_epoch(res, i, 11));
	json_object_set_new(e, "finished_at", api_epoch(res, i, 12));
	json_object_set_new(e, "priority", json_integer(atoi(PQgetvalue(res, i, 13))));
	json_t *models = api_jsonb(res, i, 14), *m;
	size_t k;
	json_array_foreach(models, k, m) judge_summary(m, !PQgetisnull(res, i, 15));
	json_object_set_new(e, "models", models);
	json_t *judge = api_jsonb(res, i, 15);
	if (json_is_object(judge))
		json_object_set_new(judge, "api_key_set",
				    json_boolean(PQgetvalue(res, i, 16)[0] == 't'));
	json_object_set_new(e, "judge", judge);
	return e;
}

/* The rows side by side: [{line, question, reference, answers: [{model, answer,
 * rouge_l, facts_found, all_facts, nll, tokens}, ...]}], in file order. */
static enum ft_rc add_rows(struct api_req *r, const char *id, json_t *e)
{
	PGresult *res = api_db(r,
			       "SELECT model, rows::text FROM eval_models WHERE eval_id = $1"
			       " ORDER BY position",
			       1, (const char *[]){ id });
	if (!res)
		return r->err.rc;
	json_t *out = json_array();
	json_object_set_new(e, "rows", out);
	for (int m = 0; m < PQntuples(res); m++) {
		json_t *rows = api_own(r, json_loads(PQgetvalue(res, m, 1), 0, NULL));
		size_t k;
		json_t *row;
		json_array_foreach(rows, k, row)
		{
			if (k >= json_array_size(out))
				json_array_append_new(
					out,
					json_pack("{s:O, s:O?, s:O, s:[]}", "line",
						  json_object_get(row, "line"), "question",
						  json_object_get(row, "question"), "reference",
						  json_object_get(row, "reference"), "answers"));
			json_t *a = json_deep_copy(row);
			json_object_del(a, "line");
			json_object_del(a, "question");
			json_object_del(a, "reference");
			json_object_set_new(a, "model", json_string(PQgetvalue(res, m, 0)));
			json_array_append_new(json_object_get(json_array_get(out, k), "answers"),
					      a);
		}
	}
	return FT_OK;
}

static enum ft_rc eval_answer(struct api_req *r, const char *id, bool rows)
{
	PGresult *res =
		api_db(r, "SELECT " EVAL_COLS " FROM evals e WHERE e.id = $1 AND e.team_id = $2", 2,
		       (const char *[]){ id, r->team_id });
	if (!res)
		return r->err.rc;
	if (PQntuples(res) == 0)
		return api_not_found(r, "evaluation", id);
	json_t *e = api_own(r, eval_json(res, 0));
	r->resp = e;
	return rows ? add_rows(r, id, e) : FT_OK;
}

/* The file: the team's, and its first row an evaluation row as ft-train
 * eval parses it (the rest is checked by ft-train, which fails the
 * evaluation naming the line). */
static enum ft_rc check_file(struct api_req *r, const char *id)
{
	FILE *fp;
	if (api_team_file_open(r, id, FT_EINVAL, &fp))
		return r->err.rc;
	if (!fp)
		return FT_OK; /* the store is away: ft-train will say */
	struct ft_err e;
	ft_err_clear(&e);
	struct ft_jsonl_reader rd;
	struct ft_eval_row row;
	enum ft_data_format fmt = FT_FMT_UNKNOWN;
	bool eof = false;
	enum ft_rc rc = ft_jsonl_reader_from_file(&rd, fp, &e);
	ft_eval_row_init(&row);
	while (!rc && !(rc = ft_jsonl_reader_next(&rd, &eof, &e)) && !eof) {
		if (ft_jsonl_blank(ft_buf_str(&rd.line), rd.line.len))
			continue;
		rc = ft_eval_row_parse(ft_buf_str(&rd.line), rd.line.len, rd.lineno, &fmt, &row,
				       &e);
		break;
	}
	if (!rc && eof && fmt == FT_FMT_UNKNOWN)
		rc = ft_failf(&e, FT_EINVAL, "empty_file", "has no rows");
	ft_eval_row_release(&row);
	if (!rc || e.rc == FT_EIO) {
		ft_jsonl_reader_close(&rd);
		fclose(fp);
		return FT_OK;
	}
	ft_failf(&r->err, FT_EINVAL, e.code[0] ? e.code : "invalid_file", "file \"%s\": %s", id,
		 e.msg);
	ft_err_param(&r->err, "file");
	ft_err_line(&r->err, e.line);
	ft_jsonl_reader_close(&rd);
	fclose(fp);
	return FT_EINVAL;
}

enum ft_rc h_evals_create(struct api_req *r)
{
	static const char *const keys[] = { "file",	"models", "name", "options",
					    "priority", "judge",  NULL };
	json_t *b, *models, *judge = NULL;
	const char *file, *name = "", *api_key = NULL;
	long long priority = 0;
	if (api_body_object(r, false, &b) || api_check_keys(r, b, NULL, keys) ||
	    ft_json_get_str(b, "file", FT_JSON_REQUIRED | FT_JSON_NONEMPTY, &file, &r->err) ||
	    ft_json_get_arr(b, "models", FT_JSON_REQUIRED, &models, &r->err) ||
	    ft_json_get_str(b, "name", FT_JSON_NULL_OK, &name, &r->err) ||
	    ft_json_get_int(b, "priority", FT_JSON_NULL_OK, -100, 100, &priority, &r->err))
		return FT_EINVAL;
	if (!api_valid_text(name, 256)) {
		ft_failf(&r->err, FT_EINVAL, "invalid_value",
			 "\"name\" must be printable text of at most 256 bytes");
		ft_err_param(&r->err, "name");
		return FT_EINVAL;
	}
	struct ft_eval_opts eo;
	json_t *options = json_object_get(b, "options");
	if (ft_eval_opts_parse(options, &eo, &r->err) ||
	    api_judge_parse(r, json_object_get(b, "judge"), &judge, &api_key))
		return FT_EINVAL;
	api_own(r, judge);
	size_t n = json_array_size(models);
	if (n == 0 || n > FT_EVAL_MAX_MODELS) {
		ft_failf(&r->err, FT_EINVAL, "invalid_value",
			 "\"models\" must list 1 to %d models (got %zu)", FT_EVAL_MAX_MODELS, n);
		ft_err_param(&r->err, "models");
		return FT_EINVAL;
	}
	struct api_model_target *t = api_alloc(r->arena, n * sizeof(*t));
	for (size_t i = 0; i < n; i++) {
		const char *param = api_printf(r->arena, "models[%zu]", i);
		const char *ref = json_string_value(json_array_get(models, i));
		if (!ref) {
			ft_failf(&r->err, FT_EINVAL, "invalid_type",
				 "\"%s\" must be a model name (got %s)", param,
				 ft_json_type_name(json_array_get(models, i)));
			ft_err_param(&r->err, param);
			return FT_EINVAL;
		}
		if (api_model_resolve(r, ref, param, &t[i])) {
			r->err.rc = FT_EINVAL; /* a field of the body names nothing: 400 */
			return FT_EINVAL;
		}
		if (t[i].kind == TARGET_CHECKPOINT) {
			ft_failf(&r->err, FT_EINVAL, "not_a_version",
				 "\"%s\" is a checkpoint: promote it to a version first (POST "
				 "/v1/registry/models/{name}/versions)",
				 ref);
			ft_err_param(&r->err, param);
			return FT_EINVAL;
		}
		for (size_t k = 0; k < i; k++)
			if (t[k].kind == t[i].kind &&
			    strcmp(t[k].kind == TARGET_BASE ? t[k].base_id : t[k].version_id,
				   t[i].kind == TARGET_BASE ? t[i].base_id : t[i].version_id) ==
				    0) {
				ft_failf(&r->err, FT_EINVAL, "duplicate_model",
					 "\"%s\" names the same model as models[%zu]", param, k);
				ft_err_param(&r->err, param);
				return FT_EINVAL;
			}
	}
	if (check_file(r, file))
		return r->err.rc;
	char id[FT_ID_MAX], prio[16], att[16], evid[FT_ID_MAX];
	ft_id_new(FT_ID_EVAL, id);
	ft_id_new(FT_ID_EVENT, evid);
	if (api_key && api_seal_secret(r, id, api_key, "judge.api_key", &api_key))
		return r->err.rc;
	char *jtext = judge ? json_dumps(judge, JSON_COMPACT) : NULL;
	api_defer(r->arena, free, jtext);
	snprintf(prio, sizeof(prio), "%lld", priority);
	snprintf(att, sizeof(att), "%d", r->ctx->job_max_attempts);
	json_t *norm = api_own(r, ft_eval_opts_json(&eo));
	char *opts = json_dumps(norm, JSON_COMPACT);
	api_defer(r->arena, free, opts);
	const char *msg = api_printf(r->arena, "Created evaluation %s of %zu model%s on %s", id, n,
				     n == 1 ? "" : "s", file);
	if (api_db_begin(r) ||
	    api_db_cmd(r,
		       "INSERT INTO evals (id, team_id, name, file_id, options, priority,"
		       " max_attempts, judge, judge_api_key_sealed) VALUES ($1, $2, $3, $4,"
		       " $5::jsonb, $6::int, $7::int, $8::jsonb, $9)",
		       9,
		       (const char *[]){ id, r->team_id, name, file, opts, prio, att, jtext,
					 api_key }))
		return r->err.rc;
	for (size_t i = 0; i < n; i++) {
		char pos[16];
		snprintf(pos, sizeof(pos), "%zu", i);
		const char *p[] = { id, pos, json_string_value(json_array_get(models, i)),
				    t[i].base_id,
				    t[i].kind == TARGET_VERSION ? t[i].version_id : NULL };
		if (api_db_cmd(r,
			       "INSERT INTO eval_models (eval_id, position, model, base_model_id,"
			       " model_version_id) VALUES ($1, $2::int, $3, $4, $5)",
			       5, p))
			return r->err.rc;
	}
	if (api_db_cmd(r,
		       "INSERT INTO eval_transitions (eval_id, from_status, to_status, attempt,"
		       " reason) VALUES ($1, NULL, 'queued', 0, 'created')",
		       1, (const char *[]){ id }) ||
	    api_db_cmd(r,
		       "INSERT INTO eval_events (id, eval_id, attempt, level, type, message)"
		       " VALUES ($1, $2, 0, 'info', 'message', $3)",
		       3, (const char *[]){ evid, id, msg }) ||
	    eval_answer(r, id, false) || api_db_commit(r))
		return r->err.rc;
	r->obj_type = "evaluation";
	r->obj_id = api_strdup(r->arena, id);
	return FT_OK;
}

enum ft_rc h_evals_list(struct api_req *r)
{
	long limit;
	const char *after;
	if (api_page_args(r, FT_ID_EVAL, &limit, &after))
		return FT_EINVAL;
	char lim[16];
	snprintf(lim, sizeof(lim), "%ld", limit + 1);
	PGresult *res =
		api_db(r,
		       "SELECT " EVAL_COLS " FROM evals e"
		       " WHERE e.team_id = $1 AND ($2::text IS NULL OR (e.created_at, e.id) <"
		       " (SELECT created_at, id FROM evals WHERE id = $2 AND team_id = $1))"
		       " ORDER BY e.created_at DESC, e.id DESC LIMIT $3::int",
		       3, (const char *[]){ r->team_id, after, lim });
	if (!res)
		return r->err.rc;
	json_t *data = json_array();
	for (int i = 0; i < PQntuples(res); i++)
		json_array_append_new(data, eval_json(res, i));
	r->resp = api_own(r, api_list(data, limit));
	return FT_OK;
}

enum ft_rc h_evals_get(struct api_req *r)
{
	const char *rows = api_query(r, "rows");
	if (rows && strcmp(rows, "true") != 0 && strcmp(rows, "false") != 0) {
		ft_failf(&r->err, FT_EINVAL, "invalid_value", "\"rows\" must be true or false");
		ft_err_param(&r->err, "rows");
		return FT_EINVAL;
	}
	if (!ft_id_valid(FT_ID_EVAL, r->params[0]))
		return api_not_found(r, "evaluation", r->params[0]);
	return eval_answer(r, r->params[0], rows && strcmp(rows, "true") == 0);
}

static const struct api_work_kind eval_work = { "evaluation", FT_ID_EVAL,
						"evals",      "eval_transitions",
						"eval_id",    "eval_not_cancellable" };

enum ft_rc h_evals_cancel(struct api_req *r)
{
	const char *id = r->params[0];
	if (api_work_cancel(r, &eval_work, id) || eval_answer(r, id, false) || api_db_commit(r))
		return r->err.rc;
	r->obj_type = "evaluation";
	r->obj_id = id;
	return FT_OK;
}

enum ft_rc h_evals_events(struct api_req *r)
{
	long limit;
	const char *after, *id = r->params[0];
	if (!ft_id_valid(FT_ID_EVAL, id))
		return api_not_found(r, "evaluation", id);
	if (api_page_args(r, FT_ID_EVENT, &limit, &after))
		return r->err.rc;
	PGresult *res = api_db(r, "SELECT 1 FROM evals WHERE id = $1 AND team_id = $2", 2,
			       (const char *[]){ id, r->team_id });
	if (!res)
		return r->err.rc;
	if (PQntuples(res) == 0)
		return api_not_found(r, "evaluation", id);
	char lim[16];
	snprintf(lim, sizeof(lim), "%ld", limit + 1);
	res = api_db(
		r,
		"SELECT id, extract(epoch from created_at)::bigint, level, message, data::text,"
		" type FROM eval_events WHERE eval_id = $1"
		" AND ($2::text IS NULL OR seq < (SELECT seq FROM eval_events"
		"   WHERE id = $2 AND eval_id = $1))"
		" ORDER BY seq DESC LIMIT $3::int",
		3, (const char *[]){ id, after, lim });
	if (!res)
		return r->err.rc;
	json_t *data = json_array();
	for (int i = 0; i < PQntuples(res); i++)
		json_array_append_new(data,
				      json_pack("{s:s, s:s, s:o, s:s, s:s, s:o, s:s}", "id",
						PQgetvalue(res, i, 0), "object", "evaluation.event",
						"created_at", api_epoch(res, i, 1), "level",
						PQgetvalue(res, i, 2), "message",
						PQgetvalue(res, i, 3), "data", api_jsonb(res, i, 4),
						"type", PQgetvalue(res, i, 5)));
	r->resp = api_own(r, api_list(data, limit));
	return FT_OK;
}
