/*
 * resolve.c - THE resolver of model references (ft/modelref.h's grammar)
 * for the caller's team. Every place that takes a model's name goes through
 * api_model_resolve: a job's "model" (a base model, or a version to continue
 * training from), an export's "model", GET and DELETE /v1/models/{model},
 * the registry's version routes, and a deployment's model (deployments.c).
 *
 *   reference                 looked up in                              target
 *   ft:BASE:JOB               jobs (the team's, BASE its base's name)   the job's version
 *   ft:BASE:JOB:ckpt-step-N   checkpoints of that job                   a checkpoint
 *   a base model's name       base_models (shared or the team's)        a base model
 *   NAME@ALIAS, NAME@latest   model_aliases, or the highest version      a version
 *   NAME/N                    model_versions of registered model NAME   a version
 *
 * Another team's objects are never found: the answer is the same as for a
 * name that does not exist (FT_ENOTFOUND, code "model_not_found", with the
 * caller's param), and the message says which part did not match.
 */
#include "api_int.h"

static void copy(char *dst, size_t n, const PGresult *res, int col)
{
	ft_strlcpy(dst, PQgetisnull(res, 0, col) ? "" : PQgetvalue(res, 0, col), n);
}

static enum ft_rc missing(struct api_req *r, const char *param, const char *fmt, ...)
	FT_PRINTF(3, 4);
static enum ft_rc missing(struct api_req *r, const char *param, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	ft_vfailf(&r->err, FT_ENOTFOUND, "model_not_found", fmt, ap);
	va_end(ap);
	if (param)
		ft_err_param(&r->err, param);
	return FT_ENOTFOUND;
}

/* The base model's columns every target carries (a job needs its config). */
#define BASE_COLS "b.id, b.name, b.config::text, b.sha256"

static void take_base(struct api_model_target *t, const PGresult *res, int first)
{
	copy(t->base_id, sizeof(t->base_id), res, first);
	copy(t->base_name, sizeof(t->base_name), res, first + 1);
	copy(t->base_config, sizeof(t->base_config), res, first + 2);
	copy(t->base_sha256, sizeof(t->base_sha256), res, first + 3);
}

static enum ft_rc resolve_version(struct api_req *r, const struct ft_model_ref *ref,
				  const char *text, const char *param, struct api_model_target *t)
{
	char ver[16];
	snprintf(ver, sizeof(ver), "%ld", ref->version);
	const char *how = ref->kind == FT_REF_VERSION ? "version" : "alias";
	const char *p[] = { r->team_id, ref->name, how, ver, ref->alias };
	PGresult *res = api_db(
		r,
		"SELECT rm.id, v.id, v.version, v.kind, v.artifact_id, a.sha256, "
		"v.job_id, " BASE_COLS " FROM registered_models rm"
		" LEFT JOIN model_versions v ON v.registered_model_id = rm.id AND ("
		"   ($3 = 'version' AND v.version = $4::int)"
		"   OR ($3 = 'alias' AND $5 <> 'latest' AND v.id = (SELECT version_id"
		"       FROM model_aliases WHERE registered_model_id = rm.id AND alias = $5))"
		"   OR ($3 = 'alias' AND $5 = 'latest' AND v.version = (SELECT max(version)"
		"       FROM model_versions WHERE registered_model_id = rm.id)))"
		" LEFT JOIN artifacts a ON a.id = v.artifact_id"
		" LEFT JOIN base_models b ON b.id = v.base_model_id"
		" WHERE rm.team_id = $1 AND rm.name = $2",
		5, p);
	if (!res)
		return r->err.rc;
	if (PQntuples(res) == 0)
		return missing(r, param,
			       "model \"%s\" does not exist: there is no registered model "
			       "\"%s\"",
			       text, ref->name);
	if (PQgetisnull(res, 0, 1)) {
		if (ref->kind == FT_REF_VERSION)
			return missing(r, param,
				       "model \"%s\" does not exist: \"%s\" has no version %ld",
				       text, ref->name, ref->version);
		return missing(r, param, "model \"%s\" does not exist: \"%s\" has no %s \"%s\"",
			       text, ref->name,
			       strcmp(ref->alias, "latest") ? "alias" : "version yet for",
			       ref->alias);
	}
	t->kind = TARGET_VERSION;
	copy(t->model_id, sizeof(t->model_id), res, 0);
	copy(t->version_id, sizeof(t->version_id), res, 1);
	t->version = atoi(PQgetvalue(res, 0, 2));
	copy(t->version_kind, sizeof(t->version_kind), res, 3);
	copy(t->artifact_id, sizeof(t->artifact_id), res, 4);
	copy(t->artifact_sha256, sizeof(t->artifact_sha256), res, 5);
	copy(t->job_id, sizeof(t->job_id), res, 6);
	ft_strlcpy(t->model, ref->name, sizeof(t->model));
	take_base(t, res, 7);
	return FT_OK;
}

/* ft:BASE:JOB and ft:BASE:JOB:ckpt-step-N. */
static enum ft_rc resolve_ft(struct api_req *r, const struct ft_model_ref *ref, const char *text,
			     const char *param, struct api_model_target *t)
{
	char step[24];
	snprintf(step, sizeof(step), "%ld", ref->step);
	bool ckpt = ref->kind == FT_REF_CHECKPOINT;
	const char *p[] = { r->team_id, ref->job, ref->name, ckpt ? step : NULL };
	PGresult *res = api_db(r,
			       "SELECT j.status, v.id, v.version, v.kind, v.artifact_id, "
			       "va.sha256, rm.id, rm.name,"
			       " c.id, c.artifact_id, ca.sha256, " BASE_COLS
			       " FROM jobs j JOIN base_models b ON b.id = j.base_model_id"
			       " LEFT JOIN model_versions v ON v.job_id = j.id AND v.source = 'job'"
			       " LEFT JOIN artifacts va ON va.id = v.artifact_id"
			       " LEFT JOIN registered_models rm ON rm.id = v.registered_model_id"
			       " LEFT JOIN checkpoints c ON c.job_id = j.id AND c.step = $4::int"
			       " LEFT JOIN artifacts ca ON ca.id = c.artifact_id"
			       " WHERE j.id = $2 AND j.team_id = $1 AND b.name = $3",
			       4, p);
	if (!res)
		return r->err.rc;
	if (PQntuples(res) == 0)
		return missing(r, param, "model \"%s\" does not exist", text);
	ft_strlcpy(t->job_id, ref->job, sizeof(t->job_id));
	take_base(t, res, 11);
	if (ckpt) {
		if (PQgetisnull(res, 0, 8))
			return missing(
				r, param,
				"model \"%s\" does not exist: job \"%s\" has no checkpoint at "
				"step %ld",
				text, ref->job, ref->step);
		t->kind = TARGET_CHECKPOINT;
		t->step = ref->step;
		copy(t->checkpoint_id, sizeof(t->checkpoint_id), res, 8);
		copy(t->artifact_id, sizeof(t->artifact_id), res, 9);
		copy(t->artifact_sha256, sizeof(t->artifact_sha256), res, 10);
		return FT_OK;
	}
	if (PQgetisnull(res, 0, 1))
		return missing(r, param, "model \"%s\" does not exist%s", text,
			       strcmp(PQgetvalue(res, 0, 0), "succeeded") == 0
				       ? ": its model version was deleted"
				       : ": the job has not succeeded");
	t->kind = TARGET_VERSION;
	copy(t->version_id, sizeof(t->version_id), res, 1);
	t->version = atoi(PQgetvalue(res, 0, 2));
	copy(t->version_kind, sizeof(t->version_kind), res, 3);
	copy(t->artifact_id, sizeof(t->artifact_id), res, 4);
	copy(t->artifact_sha256, sizeof(t->artifact_sha256), res, 5);
	copy(t->model_id, sizeof(t->model_id), res, 6);
	copy(t->model, sizeof(t->model), res, 7);
	return FT_OK;
}

enum ft_rc api_model_resolve(struct api_req *r, const char *text, const char *param,
			     struct api_model_target *t)
{
	memset(t, 0, sizeof(*t));
	if (!api_valid_text(text, 512))
		return missing(r, param, "\"%s\" is not a model name", param ? param : "model");
	struct ft_model_ref ref;
	bool malformed;
	ft_model_ref_parse(text, &ref, &malformed);
	if (ref.kind == FT_REF_FT_MODEL || ref.kind == FT_REF_CHECKPOINT)
		return resolve_ft(r, &ref, text, param, t);
	/* a base model of exactly this name first (ft/modelref.h) */
	const char *p[] = { text, r->team_id };
	PGresult *res = api_db(
		r,
		"SELECT " BASE_COLS " FROM base_models b"
		" WHERE (b.name = $1 OR b.id = $1) AND (b.team_id IS NULL OR b.team_id = $2)",
		2, p);
	if (!res)
		return r->err.rc;
	if (PQntuples(res) > 0) {
		t->kind = TARGET_BASE;
		take_base(t, res, 0);
		return FT_OK;
	}
	if (ref.kind == FT_REF_ALIAS || ref.kind == FT_REF_VERSION)
		return resolve_version(r, &ref, text, param, t);
	if (malformed || strncmp(text, "ft:", 3) == 0)
		return missing(
			r, param,
			"model \"%s\" does not exist (a model is named BASE, NAME@ALIAS, NAME/N, "
			"ft:BASE:JOB or ft:BASE:JOB:ckpt-step-N)",
			text);
	return missing(r, param,
		       "model \"%s\" does not exist; list the models with GET /v1/models and the "
		       "registry with GET /v1/registry/models",
		       text);
}
