/*
 * router.c - the route table. Patterns are literal segments and "{x}"
 * placeholders, matched segment by segment; placeholders fill r->params in
 * order; a final "{*}" takes the rest of the path (one or more characters,
 * slashes included: the console's files). A path that matches with another
 * method gives 405.
 *
 * Adding a route: a row here, a handler in the resource's file, its
 * declaration in api_int.h, and the path in docs/openapi.yaml.
 */
#include "api_int.h"

static const struct api_route routes[] = {
	/* method, pattern, handler, flags, least role, audit action */
	{ "GET", "/", h_console_index, RT_PUBLIC, ROLE_NONE, "console" },
	{ "GET", "/console/{*}", h_console_file, RT_PUBLIC, ROLE_NONE, "console" },
	{ "GET", "/v1/openapi.json", h_openapi, RT_PUBLIC, ROLE_NONE, "openapi" },
	{ "GET", "/health", h_health, RT_PUBLIC, ROLE_NONE, "health" },
	{ "GET", "/health/live", h_health_live, RT_PUBLIC, ROLE_NONE, "health.live" },
	{ "GET", "/v1/me", h_me, 0, ROLE_VIEWER, "me" },
	{ "POST", "/v1/files", h_files_create, RT_UPLOAD | RT_WRITE, ROLE_MEMBER, "files.create" },
	{ "GET", "/v1/files", h_files_list, 0, ROLE_VIEWER, "files.list" },
	{ "GET", "/v1/files/{id}", h_files_get, 0, ROLE_VIEWER, "files.get" },
	{ "DELETE", "/v1/files/{id}", h_files_delete, RT_WRITE, ROLE_MEMBER, "files.delete" },
	{ "GET", "/v1/files/{id}/content", h_files_content, 0, ROLE_VIEWER, "files.content" },
	{ "POST", "/v1/fine_tuning/jobs", h_jobs_create, RT_WRITE, ROLE_MEMBER, "jobs.create" },
	{ "POST", "/v1/fine_tuning/jobs/estimate", h_jobs_estimate, 0, ROLE_VIEWER,
	  "jobs.estimate" },
	{ "GET", "/v1/fine_tuning/jobs", h_jobs_list, 0, ROLE_VIEWER, "jobs.list" },
	{ "GET", "/v1/fine_tuning/hyperparameters", h_jobs_hparams, 0, ROLE_VIEWER,
	  "jobs.hyperparameters" },
	{ "GET", "/v1/fine_tuning/jobs/{id}", h_jobs_get, 0, ROLE_VIEWER, "jobs.get" },
	{ "POST", "/v1/fine_tuning/jobs/{id}/cancel", h_jobs_cancel, RT_WRITE, ROLE_MEMBER,
	  "jobs.cancel" },
	{ "POST", "/v1/fine_tuning/jobs/{id}/pause", h_jobs_pause, RT_WRITE, ROLE_MEMBER,
	  "jobs.pause" },
	{ "POST", "/v1/fine_tuning/jobs/{id}/resume", h_jobs_resume, RT_WRITE, ROLE_MEMBER,
	  "jobs.resume" },
	{ "GET", "/v1/fine_tuning/jobs/{id}/events", h_jobs_events, 0, ROLE_VIEWER, "jobs.events" },
	{ "GET", "/v1/fine_tuning/jobs/{id}/checkpoints", h_jobs_checkpoints, 0, ROLE_VIEWER,
	  "jobs.checkpoints" },
	{ "POST", "/v1/datasets", h_datasets_create, RT_WRITE, ROLE_MEMBER, "datasets.create" },
	{ "GET", "/v1/datasets", h_datasets_list, 0, ROLE_VIEWER, "datasets.list" },
	{ "GET", "/v1/datasets/{id}", h_datasets_get, 0, ROLE_VIEWER, "datasets.get" },
	{ "POST", "/v1/models", h_models_create, RT_WRITE, ROLE_ADMIN, "models.create" },
	{ "GET", "/v1/models", h_models_list, 0, ROLE_VIEWER, "models.list" },
	{ "GET", "/v1/models/{model}", h_models_get, 0, ROLE_VIEWER, "models.get" },
	{ "DELETE", "/v1/models/{model}", h_models_delete, RT_WRITE, ROLE_MEMBER, "models.delete" },
	/* the model registry (registry.c, exports.c, artifacts.c) */
	{ "GET", "/v1/registry/models", h_reg_models_list, 0, ROLE_VIEWER, "registry.models.list" },
	{ "POST", "/v1/registry/models", h_reg_models_create, RT_WRITE, ROLE_MEMBER,
	  "registry.models.create" },
	{ "GET", "/v1/registry/models/{name}", h_reg_models_get, 0, ROLE_VIEWER,
	  "registry.models.get" },
	{ "POST", "/v1/registry/models/{name}", h_reg_models_update, RT_WRITE, ROLE_MEMBER,
	  "registry.models.update" },
	{ "DELETE", "/v1/registry/models/{name}", h_reg_models_delete, RT_WRITE, ROLE_ADMIN,
	  "registry.models.delete" },
	{ "GET", "/v1/registry/models/{name}/versions", h_reg_versions_list, 0, ROLE_VIEWER,
	  "registry.versions.list" },
	{ "POST", "/v1/registry/models/{name}/versions", h_reg_versions_create, RT_WRITE,
	  ROLE_MEMBER, "registry.versions.create" },
	{ "GET", "/v1/registry/models/{name}/versions/{version}", h_reg_versions_get, 0,
	  ROLE_VIEWER, "registry.versions.get" },
	{ "POST", "/v1/registry/models/{name}/versions/{version}", h_reg_versions_update, RT_WRITE,
	  ROLE_MEMBER, "registry.versions.update" },
	{ "DELETE", "/v1/registry/models/{name}/versions/{version}", h_reg_versions_delete,
	  RT_WRITE, ROLE_MEMBER, "registry.versions.delete" },
	{ "GET", "/v1/registry/models/{name}/versions/{version}/artifacts",
	  h_reg_versions_artifacts, 0, ROLE_VIEWER, "registry.versions.artifacts" },
	{ "GET", "/v1/registry/models/{name}/aliases", h_reg_aliases_list, 0, ROLE_VIEWER,
	  "registry.aliases.list" },
	{ "POST", "/v1/registry/models/{name}/aliases/{alias}", h_reg_aliases_set, RT_WRITE,
	  ROLE_MEMBER, "registry.aliases.set" },
	{ "DELETE", "/v1/registry/models/{name}/aliases/{alias}", h_reg_aliases_delete, RT_WRITE,
	  ROLE_MEMBER, "registry.aliases.delete" },
	{ "GET", "/v1/registry/models/{name}/alias_history", h_reg_alias_history, 0, ROLE_VIEWER,
	  "registry.aliases.history" },
	{ "POST", "/v1/registry/exports", h_exports_create, RT_WRITE, ROLE_MEMBER,
	  "exports.create" },
	{ "GET", "/v1/registry/exports", h_exports_list, 0, ROLE_VIEWER, "exports.list" },
	{ "GET", "/v1/registry/exports/{id}", h_exports_get, 0, ROLE_VIEWER, "exports.get" },
	{ "POST", "/v1/registry/exports/{id}/cancel", h_exports_cancel, RT_WRITE, ROLE_MEMBER,
	  "exports.cancel" },
	{ "GET", "/v1/registry/exports/{id}/events", h_exports_events, 0, ROLE_VIEWER,
	  "exports.events" },
	{ "GET", "/v1/registry/export_formats", h_exports_formats, 0, ROLE_VIEWER,
	  "exports.formats" },
	{ "GET", "/v1/registry/artifacts/{id}", h_artifacts_get, 0, ROLE_VIEWER, "artifacts.get" },
	{ "GET", "/v1/registry/artifacts/{id}/files/{file}", h_artifacts_file, 0, ROLE_VIEWER,
	  "artifacts.file" },
	{ "GET", "/v1/registry/usage", h_reg_usage, 0, ROLE_VIEWER, "registry.usage" },
	/* deployments (endpoints.c, deployments.c; docs/deployments.md) */
	{ "POST", "/v1/endpoints", h_endpoints_create, RT_WRITE, ROLE_ADMIN, "endpoints.create" },
	{ "GET", "/v1/endpoints", h_endpoints_list, 0, ROLE_VIEWER, "endpoints.list" },
	{ "GET", "/v1/endpoints/{endpoint}", h_endpoints_get, 0, ROLE_VIEWER, "endpoints.get" },
	{ "POST", "/v1/endpoints/{endpoint}", h_endpoints_update, RT_WRITE, ROLE_ADMIN,
	  "endpoints.update" },
	{ "DELETE", "/v1/endpoints/{endpoint}", h_endpoints_delete, RT_WRITE, ROLE_ADMIN,
	  "endpoints.delete" },
	{ "POST", "/v1/deployments", h_deployments_create, RT_WRITE, ROLE_MEMBER,
	  "deployments.create" },
	{ "GET", "/v1/deployments", h_deployments_list, 0, ROLE_VIEWER, "deployments.list" },
	{ "GET", "/v1/deployments/{id}", h_deployments_get, 0, ROLE_VIEWER, "deployments.get" },
	{ "DELETE", "/v1/deployments/{id}", h_deployments_delete, RT_WRITE, ROLE_MEMBER,
	  "deployments.delete" },
	/* the console's playground: not audited (a chat is not a change) */
	{ "POST", "/v1/deployments/{id}/chat/completions", h_deployments_chat, 0, ROLE_MEMBER,
	  "deployments.chat" },
	/* offline evaluation (evals.c) */
	{ "POST", "/v1/evals", h_evals_create, RT_WRITE, ROLE_MEMBER, "evals.create" },
	{ "GET", "/v1/evals", h_evals_list, 0, ROLE_VIEWER, "evals.list" },
	{ "GET", "/v1/evals/{id}", h_evals_get, 0, ROLE_VIEWER, "evals.get" },
	{ "POST", "/v1/evals/{id}/cancel", h_evals_cancel, RT_WRITE, ROLE_MEMBER, "evals.cancel" },
	{ "GET", "/v1/evals/{id}/events", h_evals_events, 0, ROLE_VIEWER, "evals.events" },
	/* A/B experiments, judgments, feedback (experiments.c) */
	{ "POST", "/v1/experiments", h_experiments_create, RT_WRITE, ROLE_MEMBER,
	  "experiments.create" },
	{ "GET", "/v1/experiments", h_experiments_list, 0, ROLE_VIEWER, "experiments.list" },
	{ "GET", "/v1/experiments/{id}", h_experiments_get, 0, ROLE_VIEWER, "experiments.get" },
	{ "POST", "/v1/experiments/{id}/start", h_experiments_start, RT_WRITE, ROLE_MEMBER,
	  "experiments.start" },
	{ "POST", "/v1/experiments/{id}/pause", h_experiments_pause, RT_WRITE, ROLE_MEMBER,
	  "experiments.pause" },
	{ "POST", "/v1/experiments/{id}/stop", h_experiments_stop, RT_WRITE, ROLE_MEMBER,
	  "experiments.stop" },
	{ "GET", "/v1/experiments/{id}/assignment", h_experiments_assignment, 0, ROLE_VIEWER,
	  "experiments.assignment" },
	{ "GET", "/v1/experiments/{id}/results", h_experiments_results, 0, ROLE_VIEWER,
	  "experiments.results" },
	{ "POST", "/v1/experiments/{id}/judgments", h_judgments_create, RT_WRITE, ROLE_MEMBER,
	  "judgments.create" },
	{ "GET", "/v1/experiments/{id}/judgments", h_judgments_list, 0, ROLE_VIEWER,
	  "judgments.list" },
	{ "POST", "/v1/experiments/{id}/judge", h_judgments_llm, RT_WRITE, ROLE_MEMBER,
	  "judgments.llm" },
	/* replays of a prompt set through an experiment's arms (replays.c) */
	{ "POST", "/v1/experiments/{id}/replays", h_replays_create, RT_WRITE, ROLE_MEMBER,
	  "replays.create" },
	{ "GET", "/v1/experiments/{id}/replays", h_replays_list, 0, ROLE_VIEWER, "replays.list" },
	{ "GET", "/v1/experiments/{id}/replays/{replay}", h_replays_get, 0, ROLE_VIEWER,
	  "replays.get" },
	{ "POST", "/v1/feedback", h_feedback_create, RT_WRITE, ROLE_MEMBER, "feedback.create" },
	{ "GET", "/v1/feedback/{id}", h_feedback_get, 0, ROLE_VIEWER, "feedback.get" },
	/* drift monitors of deployments (drift.c) */
	{ "GET", "/v1/drift", h_drift_list, 0, ROLE_VIEWER, "drift.list" },
	{ "POST", "/v1/drift/{id}", h_drift_set, RT_WRITE, ROLE_MEMBER, "drift.set" },
	{ "GET", "/v1/drift/{id}", h_drift_get, 0, ROLE_VIEWER, "drift.get" },
	{ "DELETE", "/v1/drift/{id}", h_drift_delete, RT_WRITE, ROLE_MEMBER, "drift.delete" },
	{ "GET", "/v1/drift/{id}/windows", h_drift_windows, 0, ROLE_VIEWER, "drift.windows" },
	{ "GET", "/v1/teams", h_teams_list, 0, ROLE_VIEWER, "teams.list" },
	{ "GET", "/v1/teams/{id}", h_teams_get, 0, ROLE_VIEWER, "teams.get" },
	{ "POST", "/v1/keys", h_keys_create, RT_WRITE, ROLE_ADMIN, "keys.create" },
	{ "GET", "/v1/keys", h_keys_list, 0, ROLE_ADMIN, "keys.list" },
	{ "GET", "/v1/keys/{id}", h_keys_get, 0, ROLE_ADMIN, "keys.get" },
	{ "POST", "/v1/keys/{id}", h_keys_update, RT_WRITE, ROLE_ADMIN, "keys.update" },
	{ "DELETE", "/v1/keys/{id}", h_keys_delete, RT_WRITE, ROLE_ADMIN, "keys.delete" },
	{ "POST", "/v1/webhooks", h_webhooks_create, RT_WRITE, ROLE_ADMIN, "webhooks.create" },
	{ "GET", "/v1/webhooks", h_webhooks_list, 0, ROLE_VIEWER, "webhooks.list" },
	{ "GET", "/v1/webhooks/{id}", h_webhooks_get, 0, ROLE_VIEWER, "webhooks.get" },
	{ "DELETE", "/v1/webhooks/{id}", h_webhooks_delete, RT_WRITE, ROLE_ADMIN,
	  "webhooks.delete" },
	{ "POST", "/v1/webhooks/{id}/rotate_secret", h_webhooks_rotate, RT_WRITE, ROLE_ADMIN,
	  "webhooks.rotate" },
	{ "GET", "/v1/webhooks/{id}/deliveries", h_webhooks_deliveries, 0, ROLE_VIEWER,
	  "webhooks.deliveries" },
	{ "POST", "/v1/webhooks/{id}/deliveries/{did}/redeliver", h_webhooks_redeliver, RT_WRITE,
	  ROLE_ADMIN, "webhooks.redeliver" },
	{ "GET", "/v1/audit_log", h_audit_list, 0, ROLE_ADMIN, "audit_log.list" },
};

/* Match url against pattern; fills params (arena copies) on success. */
static bool match(const char *pattern, const char *url, struct api_req *r, const char **params)
{
	return ft_http_route_match(pattern, url, r->arena, params, API_MAX_PARAMS);
}

size_t api_route_count(void)
{
	return FT_ARRAY_LEN(routes);
}

const struct api_route *api_route_at(size_t i)
{
	return i < FT_ARRAY_LEN(routes) ? &routes[i] : NULL;
}

size_t api_route_index(const struct api_route *r)
{
	return (size_t)(r - routes);
}

const struct api_route *api_route_find(const char *method, const char *url, struct api_req *r,
				       bool *method_mismatch)
{
	*method_mismatch = false;
	for (size_t i = 0; i < FT_ARRAY_LEN(routes); i++) {
		if (!match(routes[i].pattern, url, r, NULL))
			continue;
		if (strcmp(routes[i].method, method) != 0) {
			*method_mismatch = true;
			continue;
		}
		match(routes[i].pattern, url, r, r->params);
		return &routes[i];
	}
	return NULL;
}
