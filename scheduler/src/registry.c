/*
 * registry.c - what the scheduler writes into the model registry
 * (docs/registry.md): the model version of a job that succeeded, in the same
 * transaction as the job's "succeeded" event, and the file lists of stored
 * folders.
 *
 * A job's version:
 *   registered model  the job's registered_model; else its suffix, else its
 *                     base model's name, made a valid name
 *                     (ft_registered_name_from); created on first use
 *   number            the registered model's next_version (its row is locked
 *                     while it is taken: numbers are never reused, even after
 *                     a version is deleted)
 *   kind, artifact    the job's output folder the event names ("output"):
 *                     "adapter" (LoRA, QLoRA) or "merged" (full fine-tuning)
 *   lineage           job, attempt, base model and its digest, training and
 *                     validation file ids and SHA-256, the dataset (a
 *                     dataset row of the training file) and the validator's
 *                     statistics, method, adapter, every hyperparameter as
 *                     the trainer resolved it, final metrics, trainer version,
 *                     trained tokens, the parent version (continued training)
 * Then the model.version.created webhook. A job that already has a version
 * (the event applied twice cannot happen: the job moved to succeeded; a
 * promotion before success can) gets no second one.
 */
#include "ft/modelref.h"
#include "ft/webhook.h"
#include "sched_int.h"

enum ft_rc sched_artifact_files(struct sched *s, const char *artifact, const json_t *files,
				struct ft_err *err)
{
	if (!json_is_array(files) || json_array_size(files) == 0)
		return FT_OK;
	char *text = json_dumps(files, JSON_COMPACT);
	if (!text)
		return ft_failf(err, FT_ENOMEM, NULL, "out of memory");
	/* rows a worker could not have written are dropped, not fatal: a bad
	 * event must not block the stream */
	enum ft_rc rc = ft_pg_command(
		s->pg, err,
		"INSERT INTO artifact_files (artifact_id, path, sha256, bytes)"
		" SELECT $1, f.path, f.sha256, f.bytes FROM jsonb_to_recordset($2::jsonb)"
		"   AS f(path text, sha256 text, bytes bigint)"
		" WHERE length(f.path) BETWEEN 1 AND 1024 AND f.sha256 ~ '^[0-9a-f]{64}$'"
		"   AND f.bytes >= 0"
		" ON CONFLICT DO NOTHING",
		2, (const char *[]){ artifact, text });
	free(text);
	return rc;
}

static const char *jstr(const json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

/* The registered model's id and the next version number, locking its row. */
static enum ft_rc take_version(struct sched *s, const char *team, const char *name, char *rm_id,
			       int *version, struct ft_err *err)
{
	char id[FT_ID_MAX];
	ft_id_new(FT_ID_REGMODEL, id);
	PGresult *r =
		sched_q(s, err,
			"INSERT INTO registered_models (id, team_id, name) VALUES ($1, $2, $3)"
			" ON CONFLICT (team_id, name) DO UPDATE SET updated_at = now()"
			" RETURNING id",
			3, (const char *[]){ id, team, name });
	if (!r)
		return err->rc;
	ft_strlcpy(rm_id, PQgetvalue(r, 0, 0), FT_ID_MAX);
	PQclear(r);
	r = sched_q(
		s, err,
		"UPDATE registered_models SET next_version = next_version + 1, updated_at = now()"
		" WHERE id = $1 RETURNING next_version - 1",
		1, (const char *[]){ rm_id });
	if (!r)
		return err->rc;
	*version = atoi(PQgetvalue(r, 0, 0));
	PQclear(r);
	return FT_OK;
}

enum ft_rc sched_version_from_job(struct sched *s, const char *job, const char *event_id,
				  const json_t *data, struct ft_err *err)
{
	const char *output = jstr(data, "output");
	PGresult *r =
		sched_q(s, err,
			"SELECT j.team_id, j.registered_model, j.suffix, b.name, a.id, a.kind,"
			" EXISTS (SELECT 1 FROM model_versions v WHERE v.job_id = j.id AND "
			"v.source = 'job')"
			" FROM jobs j JOIN base_models b ON b.id = j.base_model_id"
			" LEFT JOIN LATERAL (SELECT id, kind FROM artifacts WHERE job_id = j.id"
			"   AND sha256 = $2 AND kind IN ('adapter', 'merged')"
			"   ORDER BY created_at DESC LIMIT 1) a ON true"
			" WHERE j.id = $1",
			2, (const char *[]){ job, output ? output : "" });
	if (!r)
		return err->rc;
	if (PQntuples(r) != 1 || PQgetvalue(r, 0, 6)[0] == 't' || PQgetisnull(r, 0, 4)) {
		if (PQntuples(r) == 1 && PQgetisnull(r, 0, 4) && PQgetvalue(r, 0, 6)[0] != 't')
			ft_logf(FT_LOG_WARN, NULL, job,
				"succeeded without a stored output: no model version");
		PQclear(r);
		return FT_OK;
	}
	char team[FT_ID_MAX], name[FT_NAME_MAX + 1], art[FT_ID_MAX], kind[16];
	ft_strlcpy(team, PQgetvalue(r, 0, 0), sizeof(team));
	ft_strlcpy(art, PQgetvalue(r, 0, 4), sizeof(art));
	ft_strlcpy(kind, PQgetvalue(r, 0, 5), sizeof(kind));
	if (!PQgetisnull(r, 0, 1))
		ft_strlcpy(name, PQgetvalue(r, 0, 1), sizeof(name));
	else if (PQgetisnull(r, 0, 2) || !ft_registered_name_from(PQgetvalue(r, 0, 2), name))
		if (!ft_registered_name_from(PQgetvalue(r, 0, 3), name))
			ft_strlcpy(name, "model", sizeof(name));
	PQclear(r);

	char rm[FT_ID_MAX], mv[FT_ID_MAX], ver[16];
	int version = 0;
	if (take_version(s, team, name, rm, &version, err))
		return err->rc;
	snprintf(ver, sizeof(ver), "%d", version);
	ft_id_new(FT_ID_VERSION, mv);
	json_t *metrics = json_object_get(data, "metrics");
	json_t *hp = json_object_get(data, "hyperparameters");
	char *metrics_s = json_is_object(metrics)
				  ? json_dumps(metrics, JSON_COMPACT | JSON_REAL_PRECISION(17))
				  : strdup("{}");
	char *hp_s =
		json_is_object(hp) ? json_dumps(hp, JSON_COMPACT | JSON_REAL_PRECISION(17)) : NULL;
	char tokens[32] = "";
	if (json_is_integer(json_object_get(data, "trained_tokens")))
		snprintf(tokens, sizeof(tokens), "%lld",
			 (long long)json_integer_value(json_object_get(data, "trained_tokens")));
	const char *p[] = { mv,
			    name,
			    ver,
			    strcmp(kind, "merged") == 0 ? "merged" : "adapter",
			    art,
			    metrics_s,
			    rm,
			    jstr(data, "trainer_version"),
			    tokens[0] ? tokens : NULL,
			    hp_s,
			    job };
	enum ft_rc rc = ft_pg_command(
		s->pg, err,
		"INSERT INTO model_versions (id, team_id, name, version, kind, base_model_id,"
		" parent_version_id, job_id, dataset_id, artifact_id, status, metrics,"
		" registered_model_id, source, attempt, base_model_sha256, training_file_id,"
		" training_file_sha256, validation_file_id, validation_file_sha256, method, "
		"adapter,"
		" hyperparameters, dataset_stats, trainer_version, trained_tokens)"
		" SELECT $1, j.team_id, $2, $3::int, $4, j.base_model_id, j.parent_version_id, "
		"j.id,"
		" (SELECT d.id FROM datasets d WHERE d.file_id = j.training_file_id"
		"   AND d.team_id = j.team_id ORDER BY d.created_at DESC, d.id DESC LIMIT 1),"
		" $5, 'ready', $6::jsonb, $7, 'job', j.attempt, b.sha256, j.training_file_id,"
		" tf.sha256, j.validation_file_id, vf.sha256, j.method, j.adapter,"
		" coalesce($10::jsonb, j.hyperparameters), j.data_stats, $8, $9::bigint"
		" FROM jobs j JOIN base_models b ON b.id = j.base_model_id"
		" JOIN files tf ON tf.id = j.training_file_id"
		" LEFT JOIN files vf ON vf.id = j.validation_file_id WHERE j.id = $11",
		11, p);
	free(metrics_s);
	free(hp_s);
	if (rc)
		return rc;
	char evid[FT_ID_MAX];
	ft_id_new(FT_ID_EVENT, evid);
	json_t *pl = json_pack("{s:s, s:s, s:{s:s, s:s, s:i, s:s, s:s, s:s, s:s?}}", "type",
			       "model.version.created", "id", evid, "data", "id", mv, "model", name,
			       "version", version, "kind", kind, "source", "job", "job", job,
			       "fine_tuned_model", jstr(data, "fine_tuned_model"));
	rc = ft_webhook_queue(s->pg, team, "model.version.created", pl, err);
	json_decref(pl);
	if (!rc) {
		__atomic_add_fetch(&s->versions, 1, __ATOMIC_RELAXED);
		ft_logf(FT_LOG_INFO, NULL, job, "model version %s/%d (%s) created from %s", name,
			version, mv, event_id);
	}
	return rc;
}
