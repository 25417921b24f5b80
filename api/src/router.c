/*
 * router.c - the route table. Patterns are literal segments and "{x}"
 * placeholders, matched segment by segment; placeholders fill r->params in
 * order. A path that matches with another method gives 405.
 *
 * Adding a route: a row here, a handler in the resource's file, its
 * declaration in api_int.h, and the path in docs/openapi.yaml.
 */
#include "api_int.h"

static const struct api_route routes[] = {
	/* method, pattern, handler, flags, least role, audit action */
	{ "GET", "/v1/openapi.json", h_openapi, RT_PUBLIC, ROLE_NONE, "openapi" },
	{ "POST", "/v1/files", h_files_create, RT_UPLOAD | RT_WRITE, ROLE_MEMBER, "files.create" },
	{ "GET", "/v1/files", h_files_list, 0, ROLE_VIEWER, "files.list" },
	{ "GET", "/v1/files/{id}", h_files_get, 0, ROLE_VIEWER, "files.get" },
	{ "DELETE", "/v1/files/{id}", h_files_delete, RT_WRITE, ROLE_MEMBER, "files.delete" },
	{ "GET", "/v1/files/{id}/content", h_files_content, 0, ROLE_VIEWER, "files.content" },
	{ "POST", "/v1/fine_tuning/jobs", h_jobs_create, RT_WRITE, ROLE_MEMBER, "jobs.create" },
	{ "GET", "/v1/fine_tuning/jobs", h_jobs_list, 0, ROLE_VIEWER, "jobs.list" },
	{ "GET", "/v1/fine_tuning/jobs/{id}", h_jobs_get, 0, ROLE_VIEWER, "jobs.get" },
	{ "POST", "/v1/fine_tuning/jobs/{id}/cancel", h_jobs_cancel, RT_WRITE, ROLE_MEMBER,
	  "jobs.cancel" },
	{ "GET", "/v1/fine_tuning/jobs/{id}/events", h_jobs_events, 0, ROLE_VIEWER, "jobs.events" },
	{ "GET", "/v1/fine_tuning/jobs/{id}/checkpoints", h_jobs_checkpoints, 0, ROLE_VIEWER,
	  "jobs.checkpoints" },
	{ "POST", "/v1/datasets", h_datasets_create, RT_WRITE, ROLE_MEMBER, "datasets.create" },
	{ "GET", "/v1/datasets", h_datasets_list, 0, ROLE_VIEWER, "datasets.list" },
	{ "GET", "/v1/datasets/{id}", h_datasets_get, 0, ROLE_VIEWER, "datasets.get" },
	{ "POST", "/v1/models", h_models_create, RT_WRITE, ROLE_ADMIN, "models.create" },
	{ "GET", "/v1/models", h_models_list, 0, ROLE_VIEWER, "models.list" },
	{ "GET", "/v1/models/{model}", h_models_get, 0, ROLE_VIEWER, "models.get" },
	{ "GET", "/v1/teams", h_teams_list, 0, ROLE_VIEWER, "teams.list" },
	{ "GET", "/v1/teams/{id}", h_teams_get, 0, ROLE_VIEWER, "teams.get" },
	{ "POST", "/v1/keys", h_keys_create, RT_WRITE, ROLE_ADMIN, "keys.create" },
	{ "GET", "/v1/keys", h_keys_list, 0, ROLE_ADMIN, "keys.list" },
	{ "GET", "/v1/keys/{id}", h_keys_get, 0, ROLE_ADMIN, "keys.get" },
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
};

/* Match url against pattern; fills params (arena copies) on success. */
static bool match(const char *pattern, const char *url, struct api_req *r, const char **params)
{
	int np = 0;
	const char *p = pattern, *u = url;
	while (*p && *u) {
		if (*p == '{') {
			const char *pe = strchr(p, '}');
			const char *ue = strchr(u, '/');
			if (!ue)
				ue = u + strlen(u);
			if (!pe || ue == u || np >= API_MAX_PARAMS)
				return false;
			if (params) {
				size_t n = (size_t)(ue - u);
				char *v = api_alloc(r->arena, n + 1);
				memcpy(v, u, n);
				params[np] = v;
			}
			np++;
			p = pe + 1;
			u = ue;
			continue;
		}
		if (*p != *u)
			return false;
		p++;
		u++;
	}
	return *p == 0 && *u == 0;
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
