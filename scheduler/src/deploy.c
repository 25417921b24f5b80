/*
 * deploy.c - the deployment controller: makes the deployments ft-api
 * records true on their endpoints (docs/deployments.md; the kinds and
 * states: ft/deploy.h).
 *
 * One thread, its own PostgreSQL connection, LISTEN ft_deployments
 * (migration 0007's triggers: a deployment created or stopped, an endpoint
 * changed, an alias moved). It acts only while this process leads (the
 * scheduler's advisory lock), once per deploy_interval_ms or at once when
 * notified; the HTTP calls to endpoints never hold up the scheduler's tick.
 * One pass, per endpoint:
 *
 *   1. open its api_key (ft/crypto.h's secret box, secret_key), check its
 *      URL with the SSRF guard (ft/webhook.h: endpoint_allow_http,
 *      endpoint_allow_cidrs) and pin the address;
 *   2. health check (the kind's probe: GET /v1/models, llama.cpp's GET
 *      /health): endpoints.health, and for ftserve / vllm the names the
 *      endpoint holds now (L);
 *   3. ftserve / vllm, each deployment in creation order, the target
 *      version T being the fixed version, or what the alias names now:
 *        stopped and not unloaded   unload its names (unless another live
 *                                   deployment wants one), then unloaded;
 *        T differs from the loaded  a move: unload the old version's name
 *          version                  and the alias's name, then load;
 *        a name of T missing from L load it (a new deployment, an endpoint
 *                                   that restarted or evicted it);
 *        all names in L             ready.
 *      A load is vLLM's POST /v1/load_lora_adapter {lora_name, lora_path}
 *      with ft-serve's metadata (team_id, version_id, deployment_id,
 *      log_texts) and the endpoint's bearer token; lora_path is
 *      "store:sha256:<manifest>" for ft-serve, which reads the store itself,
 *      and for vLLM a folder this process unpacks into deploy_dir (which vLLM
 *      must read at the same path). An unreachable endpoint makes every live
 *      deployment on it failed with the reason; the next pass that reaches
 *      it loads what is missing, and they are ready again.
 *   4. ftserve (the kinds with ft/deploy.h's experiments): the endpoint's
 *      experiments (drafts, running, paused, and those stopped within
 *      EXP_STOPPED_KEEP, so that a request naming one gets a 409 that
 *      says so, not a 404) in ft/experiment.h's JSON, each arm's model the
 *      name its version is served under: GET /v1/experiments lists what
 *      the endpoint holds; one that differs or is missing is pushed (POST
 *      /v1/load_experiment), one no longer wanted is dropped (POST
 *      /v1/unload_experiment). Start, pause, stop and a guardrail's stop of
 *      an arm wake the thread (migration 0009's triggers); a restarted
 *      endpoint gets them all again on the next pass.
 *   5. llamacpp: nothing is loaded remotely. For T the controller queues
 *      (or reuses) two exports, the base's GGUF (format gguf, lora none,
 *      type gguf_type) and the adapter's (gguf-lora), and once both succeed
 *      writes the files and the llama-server command into the deployment.
 *
 * Every write is one guarded statement, so a pass cut short (a lost
 * leadership, a crash) leaves rows the next pass reads correctly, and the
 * loads themselves are idempotent against what the endpoint lists.
 */
#include <dirent.h>
#include <poll.h>
#include <pthread.h>
#include <sys/stat.h>

#include <curl/curl.h>

#include "ft/deploy.h"
#include "ft/experiment.h"
#include "ft/fs.h"
#include "ft/webhook.h"
#include "sched_int.h"

#define MAX_ANSWER (4u << 20) /* an endpoint's answer we read */
#define NAME_LEN 300

/* ---- HTTP to an endpoint ------------------------------------------------------ */

/* The one way the controller calls an endpoint (ft/deploy.h). */
static void call(const struct ft_sched_opts *o, const struct sched_endpoint *ep, const char *method,
		 const char *path, const char *body, long timeout_ms, struct ft_endpoint_answer *a)
{
	const struct ft_endpoint_target t = { ep->url, ep->pin, ep->api_key,
					      o->endpoint_allow_http };
	ft_endpoint_call(&t, method, path, body, timeout_ms, o->stop, "ftplat-deployments/1", a);
}

static bool ok(const struct ft_endpoint_answer *a)
{
	return a->status >= 200 && a->status <= 299;
}

/* ---- the controller's state -------------------------------------------------- */

struct ctl {
	struct sched *s;
	const struct ft_sched_opts *o;
	PGconn *pg;
};

/* One deployment as a pass sees it. */
struct dep {
	char id[FT_ID_MAX], team[FT_ID_MAX], status[16], reason[2049];
	bool stopped, unloaded, log_texts;
	char alias_name[NAME_LEN]; /* "NAME@ALIAS", "" for a fixed version */
	char alias_desc[NAME_LEN]; /* "alias production of support-bot" */
	char target[FT_ID_MAX], target_name[NAME_LEN], target_manifest[65], target_kind[16];
	char loaded[FT_ID_MAX], loaded_name[NAME_LEN];
	char gguf_type[16], version_ref[NAME_LEN];
	json_t *llamacpp;
};

/* Names the endpoint answers under, each with the deployment that loads it. */
struct names {
	char (*v)[NAME_LEN];
	const struct dep **owner;
	size_t n, cap;
};

static bool names_has(const struct names *ns, const char *name)
{
	for (size_t i = 0; i < ns->n; i++)
		if (strcmp(ns->v[i], name) == 0)
			return true;
	return false;
}

static const struct dep *names_owner(const struct names *ns, const char *name)
{
	for (size_t i = 0; i < ns->n; i++)
		if (strcmp(ns->v[i], name) == 0)
			return ns->owner[i];
	return NULL;
}

static void names_add(struct names *ns, const char *name, const struct dep *owner)
{
	if (!name[0] || names_has(ns, name))
		return;
	if (ns->n == ns->cap) {
		ns->cap = ns->cap ? 2 * ns->cap : 16;
		ns->v = realloc(ns->v, ns->cap * sizeof(*ns->v));
		ns->owner = realloc(ns->owner, ns->cap * sizeof(*ns->owner));
		FT_ASSERT(ns->v && ns->owner);
	}
	ft_strlcpy(ns->v[ns->n], name, NAME_LEN);
	ns->owner[ns->n++] = owner;
}

static void names_del(struct names *ns, const char *name)
{
	for (size_t i = 0; i < ns->n; i++)
		if (strcmp(ns->v[i], name) == 0) {
			ns->n--;
			memmove(ns->v[i], ns->v[ns->n], NAME_LEN);
			ns->owner[i] = ns->owner[ns->n];
			return;
		}
}

static void names_release(struct names *ns)
{
	free(ns->v);
	free(ns->owner);
	memset(ns, 0, sizeof(*ns));
}

/* ---- writing a deployment's state -------------------------------------------- */

/* status and reason (NULL: none), only when they change, so that a steady
 * state writes nothing; ready also records the loaded version. */
static void set_state(struct ctl *c, struct dep *d, const char *status, const char *reason,
		      const char *loaded)
{
	struct ft_err err;
	ft_err_clear(&err);
	bool same = strcmp(d->status, status) == 0 &&
		    strcmp(d->reason, reason ? reason : "") == 0 &&
		    strcmp(d->loaded, loaded ? loaded : "") == 0;
	if (same)
		return;
	const char *p[] = { d->id, status, reason, loaded, d->target[0] ? d->target : NULL };
	if (ft_pg_command(
		    c->pg, &err,
		    "UPDATE deployments SET status = $2, status_reason = $3,"
		    " loaded_version_id = $4, model_version_id = coalesce($5, model_version_id),"
		    " ready_at = CASE WHEN $2 = 'ready' AND status <> 'ready' THEN now()"
		    "   ELSE ready_at END, updated_at = now()"
		    " WHERE id = $1 AND status <> 'stopped'",
		    5, p)) {
		ft_warn("deployment %s: %s", d->id, err.detail[0] ? err.detail : err.msg);
		return;
	}
	if (strcmp(d->status, status) != 0)
		ft_logf(strcmp(status, "failed") == 0 ? FT_LOG_WARN : FT_LOG_INFO, "deploy", NULL,
			"deployment %s %s%s%s", d->id, status, reason ? ": " : "",
			reason ? reason : "");
	ft_strlcpy(d->status, status, sizeof(d->status));
	ft_strlcpy(d->reason, reason ? reason : "", sizeof(d->reason));
	ft_strlcpy(d->loaded, loaded ? loaded : "", sizeof(d->loaded));
}

static void set_unloaded(struct ctl *c, struct dep *d, const char *reason)
{
	struct ft_err err;
	ft_err_clear(&err);
	const char *p[] = { d->id, reason, reason ? "f" : "t" };
	ft_pg_command(
		c->pg, &err,
		"UPDATE deployments SET unloaded = $3::bool, status_reason = $2,"
		" loaded_version_id = CASE WHEN $3::bool THEN NULL ELSE loaded_version_id END,"
		" updated_at = now() WHERE id = $1 AND status = 'stopped'"
		" AND (unloaded <> $3::bool OR status_reason IS DISTINCT FROM $2)",
		3, p);
}

/* ---- loading and unloading --------------------------------------------------- */

/* lora_path of a version for this endpoint: a store reference (ftserve), or
 * a folder unpacked into deploy_dir (vllm). */
static bool lora_path(struct ctl *c, const struct sched_endpoint *ep, const char *manifest,
		      char *out, size_t n, char *why, size_t why_n)
{
	if (ep->kind->store_refs) {
		snprintf(out, n, FT_STORE_REF_PREFIX "%s", manifest);
		return true;
	}
	if (!c->o->deploy_dir || !*c->o->deploy_dir) {
		snprintf(why, why_n,
			 "deploy_dir is not set: ft-scheduler has nowhere to unpack adapters for "
			 "vLLM");
		return false;
	}
	if (!c->s->store) {
		snprintf(why, why_n, "ft-scheduler has no artifact store to read the adapter from");
		return false;
	}
	snprintf(out, n, "%s/%s", c->o->deploy_dir, manifest);
	struct stat st;
	if (stat(out, &st) == 0 && S_ISDIR(st.st_mode))
		return true;
	char tmp[4096];
	unsigned char r[6];
	char rh[13];
	ft_random_bytes(r, sizeof(r));
	ft_hex_encode(r, sizeof(r), rh);
	snprintf(tmp, sizeof(tmp), "%s/.%s.%s.part", c->o->deploy_dir, manifest, rh);
	struct ft_err err;
	ft_err_clear(&err);
	if (ft_store_get_dir(c->s->store, manifest, tmp, &err) || rename(tmp, out) != 0) {
		snprintf(why, why_n, "unpacking the adapter into deploy_dir failed: %s",
			 err.msg[0] ? err.msg : strerror(errno));
		ft_remove_tree(tmp, NULL);
		return false;
	}
	return true;
}

static bool load(struct ctl *c, const struct sched_endpoint *ep, const struct dep *d,
		 const char *name, char *why, size_t why_n)
{
	char path[4200];
	if (!lora_path(c, ep, d->target_manifest, path, sizeof(path), why, why_n))
		return false;
	json_t *b = json_pack("{s:s, s:s, s:s, s:s, s:s, s:b}", "lora_name", name, "lora_path",
			      path, "team_id", d->team, "version_id", d->target, "deployment_id",
			      d->id, "log_texts", d->log_texts);
	char *body = json_dumps(b, JSON_COMPACT);
	json_decref(b);
	struct ft_endpoint_answer a = { .body = FT_BUF_INIT(MAX_ANSWER) };
	call(c->o, ep, "POST", "/v1/load_lora_adapter", body, c->o->deploy_timeout_ms, &a);
	free(body);
	bool good = ok(&a);
	if (!good)
		snprintf(why, why_n, "loading \"%s\" on the endpoint failed: %s", name, a.error);
	ft_buf_release(&a.body);
	return good;
}

static bool unload(struct ctl *c, const struct sched_endpoint *ep, const char *name, char *why,
		   size_t why_n)
{
	json_t *b = json_pack("{s:s}", "lora_name", name);
	char *body = json_dumps(b, JSON_COMPACT);
	json_decref(b);
	struct ft_endpoint_answer a = { .body = FT_BUF_INIT(MAX_ANSWER) };
	call(c->o, ep, "POST", "/v1/unload_lora_adapter", body, c->o->deploy_timeout_ms, &a);
	free(body);
	/* a 404 means it is gone already: what we wanted */
	bool good = ok(&a) || a.status == 404;
	if (!good)
		snprintf(why, why_n, "unloading \"%s\" from the endpoint failed: %s", name,
			 a.error);
	ft_buf_release(&a.body);
	return good;
}

/* ---- reading the pass's input ------------------------------------------------ */

/* Target: the fixed version, or what the alias names now (latest: the
 * highest version); NULL for a stopped deployment or a removed alias. */
#define DEP_SELECT                                                                              \
	"SELECT d.id, d.team_id, d.status, coalesce(d.status_reason, ''), d.unloaded,"          \
	" d.log_texts, CASE WHEN d.alias IS NULL THEN '' ELSE rm.name || '@' || d.alias END,"   \
	" CASE WHEN d.alias IS NULL THEN '' ELSE 'alias \"' || d.alias || '\" of \"' ||"        \
	"   rm.name || '\"' END, t.id, ft_version_served_name(t.id), ta.sha256, t.kind,"        \
	" d.loaded_version_id, ft_version_served_name(d.loaded_version_id), d.gguf_type,"       \
	" d.llamacpp::text, t.name || '/' || t.version"                                         \
	" FROM deployments d LEFT JOIN registered_models rm ON rm.id = d.registered_model_id"   \
	" LEFT JOIN LATERAL (SELECT CASE WHEN d.status = 'stopped' THEN NULL"                   \
	"   WHEN d.alias IS NULL THEN d.model_version_id"                                       \
	"   WHEN d.alias = 'latest' THEN (SELECT id FROM model_versions"                        \
	"     WHERE registered_model_id = d.registered_model_id ORDER BY version DESC LIMIT 1)" \
	"   ELSE (SELECT version_id FROM model_aliases WHERE registered_model_id ="             \
	"     d.registered_model_id AND alias = d.alias) END AS vid) tv ON true"                \
	" LEFT JOIN model_versions t ON t.id = tv.vid"                                          \
	" LEFT JOIN artifacts ta ON ta.id = t.artifact_id"                                      \
	" WHERE d.endpoint_id = $1 AND (d.status <> 'stopped' OR NOT d.unloaded)"               \
	" ORDER BY d.created_at, d.id"

static void take(char *dst, size_t n, const PGresult *r, int i, int col)
{
	ft_strlcpy(dst, PQgetisnull(r, i, col) ? "" : PQgetvalue(r, i, col), n);
}

static struct dep *read_deps(struct ctl *c, const char *ep, size_t *n)
{
	struct ft_err err;
	ft_err_clear(&err);
	const char *p[] = { ep };
	PGresult *r = ft_pg_exec(c->pg, &err, DEP_SELECT, 1, p);
	*n = 0;
	if (!r) {
		ft_warn("deployments of %s: %s", ep, err.detail[0] ? err.detail : err.msg);
		return NULL;
	}
	struct dep *v = calloc((size_t)PQntuples(r) + 1, sizeof(*v));
	FT_ASSERT(v != NULL);
	for (int i = 0; i < PQntuples(r); i++) {
		struct dep *d = &v[i];
		take(d->id, sizeof(d->id), r, i, 0);
		take(d->team, sizeof(d->team), r, i, 1);
		take(d->status, sizeof(d->status), r, i, 2);
		take(d->reason, sizeof(d->reason), r, i, 3);
		d->stopped = strcmp(d->status, "stopped") == 0;
		d->unloaded = PQgetvalue(r, i, 4)[0] == 't';
		d->log_texts = PQgetvalue(r, i, 5)[0] == 't';
		take(d->alias_name, sizeof(d->alias_name), r, i, 6);
		take(d->alias_desc, sizeof(d->alias_desc), r, i, 7);
		take(d->target, sizeof(d->target), r, i, 8);
		take(d->target_name, sizeof(d->target_name), r, i, 9);
		take(d->target_manifest, sizeof(d->target_manifest), r, i, 10);
		take(d->target_kind, sizeof(d->target_kind), r, i, 11);
		take(d->loaded, sizeof(d->loaded), r, i, 12);
		take(d->loaded_name, sizeof(d->loaded_name), r, i, 13);
		take(d->gguf_type, sizeof(d->gguf_type), r, i, 14);
		d->llamacpp =
			PQgetisnull(r, i, 15) ? NULL : json_loads(PQgetvalue(r, i, 15), 0, NULL);
		take(d->version_ref, sizeof(d->version_ref), r, i, 16);
	}
	*n = (size_t)PQntuples(r);
	PQclear(r);
	return v;
}

static void free_deps(struct dep *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		json_decref(v[i].llamacpp);
	free(v);
}

/* ---- ftserve and vllm --------------------------------------------------------- */

/* Unload names (those the endpoint lists and no live deployment wants);
 * false with why on the first failure. */
static bool unload_names(struct ctl *c, const struct sched_endpoint *ep, struct names *listed,
			 const struct names *wanted, const char *const *names, size_t k, bool force,
			 char *why, size_t why_n)
{
	for (size_t i = 0; i < k; i++) {
		if (!names[i][0] || !names_has(listed, names[i]) ||
		    (!force && names_has(wanted, names[i])))
			continue;
		if (!unload(c, ep, names[i], why, why_n))
			return false;
		names_del(listed, names[i]);
	}
	return true;
}

static void drive_lora(struct ctl *c, const struct sched_endpoint *ep, struct dep *v, size_t n,
		       struct names *listed)
{
	char why[1200];
	/* what the live deployments want, the first one of a name loading it */
	struct names wanted = { 0 };
	for (size_t i = 0; i < n; i++)
		if (!v[i].stopped && v[i].target[0]) {
			names_add(&wanted, v[i].target_name, &v[i]);
			names_add(&wanted, v[i].alias_name, &v[i]);
		}
	for (size_t i = 0; i < n; i++) {
		struct dep *d = &v[i];
		why[0] = '\0';
		if (d->stopped) { /* take its names off, unless another still wants one */
			const char *mine[] = { d->loaded_name, d->alias_name };
			bool done = !d->loaded[0] || unload_names(c, ep, listed, &wanted, mine, 2,
								  false, why, sizeof(why));
			set_unloaded(c, d, done ? NULL : why);
			continue;
		}
		if (!d->target[0]) { /* the alias was removed: nothing to serve */
			const char *mine[] = { d->loaded_name, d->alias_name };
			snprintf(why, sizeof(why), "the %s no longer exists", d->alias_desc);
			char uwhy[600] = "";
			if (!unload_names(c, ep, listed, &wanted, mine, 2, false, uwhy,
					  sizeof(uwhy)))
				snprintf(why, sizeof(why), "the %s no longer exists; %s",
					 d->alias_desc, uwhy);
			set_state(c, d, "failed", why, uwhy[0] ? d->loaded : NULL);
			continue;
		}
		if (d->loaded[0] && strcmp(d->loaded, d->target) != 0) {
			/* the alias moved: its name points at the old version until it
			 * is unloaded; the old version's own name goes unless wanted */
			set_state(c, d, "loading", NULL, d->loaded);
			const char *old[] = { d->loaded_name };
			const char *alias[] = { d->alias_name };
			if (!unload_names(c, ep, listed, &wanted, old, 1, false, why,
					  sizeof(why)) ||
			    !unload_names(c, ep, listed, &wanted, alias, 1, true, why,
					  sizeof(why))) {
				set_state(c, d, "failed", why, d->loaded);
				continue;
			}
		}
		const char *need[] = { d->target_name, d->alias_name };
		bool good = true;
		for (size_t k = 0; k < 2 && good; k++) {
			if (!need[k][0] || names_has(listed, need[k]))
				continue;
			if (names_owner(&wanted, need[k]) != d)
				continue; /* an earlier deployment loads it (or failed to) */
			set_state(c, d, "loading", NULL, d->loaded[0] ? d->loaded : NULL);
			good = load(c, ep, d, need[k], why, sizeof(why));
			if (good)
				names_add(listed, need[k], d);
		}
		bool all = names_has(listed, d->target_name) &&
			   (!d->alias_name[0] || names_has(listed, d->alias_name));
		if (good && !all)
			snprintf(why, sizeof(why),
				 "waiting for another deployment of the same name");
		set_state(c, d, good && all ? "ready" : "failed", good && all ? NULL : why,
			  d->target);
	}
	names_release(&wanted);
}

/* ---- experiments (ftserve) ------------------------------------------------------ */

/* How long a stopped experiment stays on its endpoint (answering 409). */
#define EXP_STOPPED_KEEP "7 days"

#define EXP_SELECT                                                                     \
	"SELECT json_build_object('id', x.id, 'team_id', x.team_id, 'name', x.name,"   \
	" 'assignment', x.assignment, 'status', x.status, 'arms', (SELECT"             \
	"   coalesce(json_agg(json_build_object('name', a.name, 'model',"              \
	"   ft_version_served_name(a.model_version_id), 'weight', a.weight, 'status'," \
	"   a.status) ORDER BY a.position), '[]') FROM experiment_arms a"              \
	"   WHERE a.experiment_id = x.id))::text FROM experiments x"                   \
	" WHERE x.endpoint_id = $1 AND (x.status <> 'stopped'"                         \
	"   OR x.ended_at > now() - interval '" EXP_STOPPED_KEEP "')"                  \
	" ORDER BY x.created_at, x.id"

/* The experiments the endpoint should hold, each in the canonical JSON
 * (ft_experiment_spec_json), as an object by id. */
static json_t *wanted_experiments(struct ctl *c, const struct sched_endpoint *ep)
{
	struct ft_err err;
	ft_err_clear(&err);
	const char *p[] = { ep->id };
	PGresult *r = ft_pg_exec(c->pg, &err, EXP_SELECT, 1, p);
	if (!r) {
		ft_warn("experiments of %s: %s", ep->id, err.detail[0] ? err.detail : err.msg);
		return NULL;
	}
	json_t *want = json_object();
	for (int i = 0; i < PQntuples(r); i++) {
		json_t *o = json_loads(PQgetvalue(r, i, 0), 0, NULL);
		struct ft_exp_spec spec;
		ft_err_clear(&err);
		if (ft_experiment_spec_parse(o, &spec, &err)) /* an arm's name too long, say */
			ft_warn("experiment %s cannot be routed by %s: %s",
				json_string_value(json_object_get(o, "id")), ep->id, err.msg);
		else
			json_object_set_new(want, spec.id, ft_experiment_spec_json(&spec));
		json_decref(o);
	}
	PQclear(r);
	return want;
}

static bool push(struct ctl *c, const struct sched_endpoint *ep, const char *path, json_t *body)
{
	char *text = json_dumps(body, JSON_COMPACT);
	struct ft_endpoint_answer a = { .body = FT_BUF_INIT(MAX_ANSWER) };
	call(c->o, ep, "POST", path, text, c->o->deploy_timeout_ms, &a);
	free(text);
	bool good = ok(&a) || (a.status == 404 && strcmp(path, "/v1/unload_experiment") == 0);
	if (!good)
		ft_warn("endpoint %s: POST %s %s: %s", ep->id, path,
			json_string_value(json_object_get(body, "id")), a.error);
	ft_buf_release(&a.body);
	return good;
}

static void drive_experiments(struct ctl *c, const struct sched_endpoint *ep)
{
	json_t *want = wanted_experiments(c, ep);
	if (!want)
		return;
	struct ft_endpoint_answer a = { .body = FT_BUF_INIT(MAX_ANSWER) };
	call(c->o, ep, "GET", "/v1/experiments", NULL, c->o->deploy_probe_timeout_ms, &a);
	json_t *listed =
		ok(&a) ? json_loadb(a.body.ptr ? a.body.ptr : "", a.body.len, 0, NULL) : NULL;
	json_t *data = json_object_get(listed, "data");
	if (!json_is_array(data)) {
		ft_warn("endpoint %s: GET /v1/experiments: %s", ep->id,
			a.error[0] ? a.error : "not a list of experiments");
		goto out;
	}
	json_t *have = json_object(), *e;
	size_t i;
	json_array_foreach(data, i, e)
	{
		const char *id = json_string_value(json_object_get(e, "id"));
		if (id)
			json_object_set(have, id, e);
	}
	const char *id;
	json_object_foreach(want, id, e)
	{
		if (!json_equal(json_object_get(have, id), e))
			push(c, ep, "/v1/load_experiment", e);
	}
	json_object_foreach(have, id, e)
	{
		if (!json_object_get(want, id)) {
			json_t *b = json_pack("{s:s}", "id", id);
			push(c, ep, "/v1/unload_experiment", b);
			json_decref(b);
		}
	}
	json_decref(have);
out:
	json_decref(listed);
	json_decref(want);
	ft_buf_release(&a.body);
}

/* ---- llamacpp ------------------------------------------------------------------ */

/* The export of version in format with options, reused when one exists
 * that did not fail, else queued (the rows POST /v1/registry/exports
 * writes); its id in out. */
static enum ft_rc export_of(struct ctl *c, const struct dep *d, const char *format,
			    const char *options, char out[FT_ID_MAX], struct ft_err *err)
{
	const char *p[] = { d->target, format, options };
	PGresult *r =
		ft_pg_exec(c->pg, err,
			   "SELECT id FROM exports WHERE model_version_id = $1 AND format = $2"
			   " AND options = $3::jsonb AND status NOT IN ('failed', 'cancelled')"
			   " ORDER BY created_at DESC LIMIT 1",
			   3, p);
	if (!r)
		return err->rc;
	if (PQntuples(r) == 1) {
		ft_strlcpy(out, PQgetvalue(r, 0, 0), FT_ID_MAX);
		PQclear(r);
		return FT_OK;
	}
	PQclear(r);
	char evid[FT_ID_MAX], att[16], msg[512];
	ft_id_new(FT_ID_EXPORT, out);
	ft_id_new(FT_ID_EVENT, evid);
	snprintf(att, sizeof(att), "%d", c->o->export_max_attempts);
	snprintf(msg, sizeof(msg), "Created export %s of %s as %s for deployment %s", out,
		 d->version_ref, format, d->id);
	const char *q[] = { out, d->team, d->target, format, options, att };
	const char *e[] = { evid, out, msg };
	if (ft_pg_command(c->pg, err, "BEGIN", 0, NULL) ||
	    ft_pg_command(c->pg, err,
			  "INSERT INTO exports (id, team_id, model_version_id, format, options,"
			  " max_attempts) VALUES ($1, $2, $3, $4, $5::jsonb, $6::int)",
			  6, q) ||
	    ft_pg_command(c->pg, err,
			  "INSERT INTO export_transitions (export_id, from_status, to_status,"
			  " attempt, reason) VALUES ($1, NULL, 'queued', 0, 'created')",
			  1, q) ||
	    ft_pg_command(c->pg, err,
			  "INSERT INTO export_events (id, export_id, attempt, level, type, message)"
			  " VALUES ($1, $2, 0, 'info', 'message', $3)",
			  3, e) ||
	    ft_pg_command(c->pg, err, "COMMIT", 0, NULL)) {
		PQclear(PQexec(c->pg, "ROLLBACK"));
		return err->rc;
	}
	ft_logf(FT_LOG_INFO, "deploy", NULL, "deployment %s: queued export %s (%s of %s)", d->id,
		out, format, d->version_ref);
	return FT_OK;
}

/* An export's state: its status, error message, and its file (the one
 * .gguf of its folder) as {role, export, artifact, path, sha256, bytes, url}. */
static const char *export_state(struct ctl *c, const char *id, const char *role, json_t **file,
				char *error, size_t en)
{
	static char status[16];
	struct ft_err err;
	ft_err_clear(&err);
	*file = NULL;
	error[0] = '\0';
	const char *p[] = { id };
	PGresult *r =
		ft_pg_exec(c->pg, &err,
			   "SELECT e.status, coalesce(e.error->>'message', ''), e.artifact_id,"
			   " f.path, f.sha256, f.bytes FROM exports e"
			   " LEFT JOIN artifact_files f ON f.artifact_id = e.artifact_id"
			   "   AND f.path LIKE '%.gguf'"
			   " WHERE e.id = $1 ORDER BY f.path LIMIT 1",
			   1, p);
	if (!r || PQntuples(r) == 0) {
		PQclear(r);
		return "missing";
	}
	ft_strlcpy(status, PQgetvalue(r, 0, 0), sizeof(status));
	ft_strlcpy(error, PQgetvalue(r, 0, 1), en);
	if (strcmp(status, "succeeded") == 0 && !PQgetisnull(r, 0, 3)) {
		char url[512];
		snprintf(url, sizeof(url), "/v1/registry/artifacts/%s/files/%s",
			 PQgetvalue(r, 0, 2), PQgetvalue(r, 0, 3));
		*file = json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:s}", "role", role, "export", id,
				  "artifact", PQgetvalue(r, 0, 2), "path", PQgetvalue(r, 0, 3),
				  "sha256", PQgetvalue(r, 0, 4), "bytes",
				  (json_int_t)strtoll(PQgetvalue(r, 0, 5), NULL, 10), "url", url);
	}
	PQclear(r);
	return status;
}

/* s in single quotes for a POSIX shell ('\'' for each quote inside). */
static void shell_quote(const char *s, char *out, size_t n)
{
	size_t o = 0;
	out[o++] = '\'';
	for (; *s && o + 6 < n; s++) {
		if (*s == '\'') {
			memcpy(out + o, "'\\''", 4);
			o += 4;
		} else {
			out[o++] = *s;
		}
	}
	out[o++] = '\'';
	out[o] = '\0';
}

/* The port of the endpoint's URL (llama-server's --port), 8080 when none. */
static long url_port(const char *url)
{
	long port = 8080;
	CURLU *u = curl_url();
	char *p = NULL;
	if (u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_PORT, &p, CURLU_DEFAULT_PORT) == CURLUE_OK && p)
		port = strtol(p, NULL, 10);
	curl_free(p);
	curl_url_cleanup(u);
	return port;
}

static void drive_llamacpp(struct ctl *c, const struct sched_endpoint *ep, struct dep *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct dep *d = &v[i];
		struct ft_err err;
		char why[1200] = "";
		ft_err_clear(&err);
		if (d->stopped) { /* nothing on the endpoint is ours to take off */
			set_unloaded(c, d, NULL);
			continue;
		}
		if (!d->target[0]) {
			snprintf(why, sizeof(why), "the %s no longer exists", d->alias_desc);
			set_state(c, d, "failed", why, NULL);
			continue;
		}
		const char *have = json_string_value(json_object_get(d->llamacpp, "version_id"));
		bool adapter = strcmp(d->target_kind, "adapter") == 0;
		if (!have || strcmp(have, d->target) != 0) {
			/* the base's GGUF (an adapter version: the base alone; a whole
			 * model: itself) and the adapter's */
			char base[FT_ID_MAX], lora[FT_ID_MAX] = "", opts[96];
			snprintf(opts, sizeof(opts),
				 adapter ? "{\"lora\": \"none\", \"type\": \"%s\"}"
					 : "{\"type\": \"%s\"}",
				 d->gguf_type);
			if (export_of(c, d, "gguf", opts, base, &err) ||
			    (adapter && export_of(c, d, "gguf-lora", "{}", lora, &err))) {
				ft_warn("deployment %s: queueing exports: %s", d->id,
					err.detail[0] ? err.detail : err.msg);
				continue;
			}
			json_t *l = json_pack("{s:s, s:s, s:s?, s:[], s:n}", "version_id",
					      d->target, "base_export", base, "lora_export",
					      adapter ? lora : NULL, "files", "command");
			char *text = json_dumps(l, JSON_COMPACT);
			const char *p[] = { d->id, text, d->target };
			ft_pg_command(
				c->pg, &err,
				"UPDATE deployments SET llamacpp = $2::jsonb, status = 'loading',"
				" status_reason = 'exporting the GGUF files',"
				" model_version_id = $3, updated_at = now()"
				" WHERE id = $1 AND status <> 'stopped'",
				3, p);
			free(text);
			json_decref(d->llamacpp);
			d->llamacpp = l;
			ft_strlcpy(d->status, "loading", sizeof(d->status));
			ft_strlcpy(d->reason, "exporting the GGUF files", sizeof(d->reason));
		}
		const char *ids[2] = {
			json_string_value(json_object_get(d->llamacpp, "base_export")),
			json_string_value(json_object_get(d->llamacpp, "lora_export")),
		};
		static const char *const roles[2] = { "base", "lora" };
		json_t *files = json_array();
		bool done = true, failed = false;
		for (int k = 0; k < 2; k++) {
			if (!ids[k])
				continue;
			json_t *f;
			char error[600];
			const char *st =
				export_state(c, ids[k], roles[k], &f, error, sizeof(error));
			if (f)
				json_array_append_new(files, f);
			else
				done = false;
			if (strcmp(st, "failed") == 0 || strcmp(st, "cancelled") == 0 ||
			    strcmp(st, "missing") == 0) {
				failed = true;
				snprintf(why, sizeof(why), "export %s %s%s%s", ids[k], st,
					 error[0] ? ": " : "", error);
			}
		}
		if (failed || !done) {
			json_decref(files);
			if (failed)
				set_state(c, d, "failed", why, NULL);
			continue;
		}
		/* llama-server -m BASE [--lora ADAPTER] --alias NAME: files from the
		 * registry's downloads, in the folder it runs from */
		const char *alias = d->alias_name[0] ? d->alias_name : d->target_name;
		const char *base_file =
			json_string_value(json_object_get(json_array_get(files, 0), "path"));
		const char *lora_file =
			json_string_value(json_object_get(json_array_get(files, 1), "path"));
		char cmd[2048], quoted[4 * NAME_LEN + 3];
		shell_quote(alias, quoted, sizeof(quoted));
		snprintf(cmd, sizeof(cmd),
			 "llama-server -m %s%s%s --alias %s --host 0.0.0.0 --port %ld", base_file,
			 lora_file ? " --lora " : "", lora_file ? lora_file : "", quoted,
			 url_port(ep->url));
		json_object_set_new(d->llamacpp, "files", files);
		json_object_set_new(d->llamacpp, "command", json_string(cmd));
		char *text = json_dumps(d->llamacpp, JSON_COMPACT);
		const char *p[] = { d->id, text, d->target };
		ft_pg_command(
			c->pg, &err,
			"UPDATE deployments SET llamacpp = $2::jsonb, loaded_version_id = $3,"
			" status = 'ready', status_reason = NULL,"
			" ready_at = CASE WHEN status <> 'ready' THEN now() ELSE ready_at END,"
			" updated_at = now() WHERE id = $1 AND status <> 'stopped'"
			" AND (llamacpp IS DISTINCT FROM $2::jsonb OR status <> 'ready')",
			3, p);
		if (strcmp(d->status, "ready") != 0)
			ft_logf(FT_LOG_INFO, "deploy", NULL, "deployment %s ready: %s", d->id, cmd);
		free(text);
	}
}

/* ---- one endpoint ------------------------------------------------------------- */

static void set_health(struct ctl *c, const struct sched_endpoint *ep, const char *health,
		       const char *reason)
{
	struct ft_err err;
	ft_err_clear(&err);
	const char *p[] = { ep->id, health, reason };
	ft_pg_command(c->pg, &err,
		      "UPDATE endpoints SET health = $2, health_reason = $3, checked_at = now()"
		      " WHERE id = $1",
		      3, p);
}

/* The endpoint can be called: its key opened, its URL checked and pinned
 * (sched_int.h). */
bool sched_endpoint_prepare(const struct ft_sched_opts *o, struct sched_endpoint *ep,
			    const PGresult *r, int i)
{
	ft_strlcpy(ep->id, PQgetvalue(r, i, 0), sizeof(ep->id));
	ft_strlcpy(ep->team, PQgetvalue(r, i, 1), sizeof(ep->team));
	ft_strlcpy(ep->kind_name, PQgetvalue(r, i, 2), sizeof(ep->kind_name));
	ft_strlcpy(ep->url, PQgetvalue(r, i, 3), sizeof(ep->url));
	ep->kind = ft_endpoint_kind_find(ep->kind_name);
	ep->api_key = NULL;
	ep->why_not[0] = '\0';
	struct ft_err err;
	ft_err_clear(&err);
	if (!ep->kind) {
		snprintf(ep->why_not, sizeof(ep->why_not), "unknown endpoint kind \"%s\"",
			 ep->kind_name);
		return false;
	}
	if (!PQgetisnull(r, i, 4)) {
		size_t n;
		if (!o->secret_key) {
			snprintf(ep->why_not, sizeof(ep->why_not),
				 "ft-scheduler has no secret_key to open the endpoint's api_key");
			return false;
		}
		if (ft_secretbox_open(o->secret_key, ep->id, PQgetvalue(r, i, 4), &ep->api_key, &n,
				      &err)) {
			snprintf(ep->why_not, sizeof(ep->why_not),
				 "the endpoint's api_key does not open with ft-scheduler's "
				 "secret_key (set it again, or give the same secret_key "
				 "everywhere)");
			return false;
		}
	}
	if (ft_webhook_check_url(ep->url, o->endpoint_allow_http, o->endpoint_allow_cidrs, ep->pin,
				 &err)) {
		snprintf(ep->why_not, sizeof(ep->why_not), "the endpoint's URL is refused: %s",
			 strncmp(err.msg, "webhook ", 8) == 0 ? err.msg + 8 : err.msg);
		return false;
	}
	return true;
}

static void one_endpoint(struct ctl *c, struct sched_endpoint *ep, bool callable)
{
	size_t n;
	struct dep *v = read_deps(c, ep->id, &n);
	struct names listed = { 0 };
	struct ft_endpoint_answer a = { .body = FT_BUF_INIT(MAX_ANSWER) };
	char why[1200] = "";
	bool reached = false;
	if (!callable) {
		snprintf(why, sizeof(why), "%s", ep->why_not);
	} else {
		call(c->o, ep, "GET", ep->kind->probe, NULL, c->o->deploy_probe_timeout_ms, &a);
		reached = ok(&a);
		if (reached && ep->kind->drive == FT_DRIVE_LORA_ROUTES) {
			char **ids;
			size_t k;
			struct ft_err err;
			ft_err_clear(&err);
			if (ft_endpoint_models_parse(a.body.ptr, a.body.len, &ids, &k, &err)) {
				reached = false;
				snprintf(why, sizeof(why), "GET %s: %s", ep->kind->probe, err.msg);
			} else {
				for (size_t j = 0; j < k; j++)
					if (strlen(ids[j]) < NAME_LEN)
						names_add(&listed, ids[j], NULL);
				ft_endpoint_models_free(ids, k);
			}
		} else if (!reached) {
			snprintf(why, sizeof(why), "GET %s: %s", ep->kind->probe, a.error);
		}
	}
	set_health(c, ep, reached ? "ok" : "unreachable", reached ? NULL : why);
	if (ep->kind && ep->kind->drive == FT_DRIVE_GGUF_EXPORTS) {
		drive_llamacpp(c, ep, v, n); /* the platform does not call llama-server */
	} else if (reached) {
		drive_lora(c, ep, v, n, &listed);
		if (ep->kind->experiments)
			drive_experiments(c, ep);
	} else {
		char reason[1400];
		snprintf(reason, sizeof(reason), "the endpoint is unreachable: %s", why);
		for (size_t i = 0; i < n; i++)
			if (!v[i].stopped)
				set_state(c, &v[i], "failed", reason,
					  v[i].loaded[0] ? v[i].loaded : NULL);
	}
	names_release(&listed);
	ft_buf_release(&a.body);
	free_deps(v, n);
}

/* Folders in deploy_dir that no deployment on a vllm endpoint needs. */
static void sweep_deploy_dir(struct ctl *c)
{
	const char *dir = c->o->deploy_dir;
	if (!dir || !*dir)
		return;
	struct ft_err err;
	ft_err_clear(&err);
	PGresult *r = ft_pg_exec(
		c->pg, &err,
		"SELECT DISTINCT a.sha256 FROM deployments d JOIN endpoints e ON e.id = "
		"d.endpoint_id"
		" JOIN model_versions v ON v.id IN (d.model_version_id, d.loaded_version_id)"
		" JOIN artifacts a ON a.id = v.artifact_id"
		" WHERE e.kind = 'vllm' AND (d.status <> 'stopped' OR NOT d.unloaded)",
		0, NULL);
	if (!r)
		return;
	DIR *dd = opendir(dir);
	struct dirent *de;
	while (dd && (de = readdir(dd))) {
		char hex[65];
		size_t len = strlen(de->d_name);
		if (de->d_name[0] == '.' && len > 5 && strcmp(de->d_name + len - 5, ".part") == 0) {
			char path[4200]; /* an unpacking this thread left half done */
			snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
			ft_remove_tree(path, NULL);
			continue;
		}
		if (len != 64)
			continue;
		ft_strlcpy(hex, de->d_name, sizeof(hex));
		bool used = false;
		for (int i = 0; i < PQntuples(r) && !used; i++)
			used = strcmp(PQgetvalue(r, i, 0), hex) == 0;
		if (!used) {
			char path[4200];
			snprintf(path, sizeof(path), "%s/%s", dir, hex);
			ft_remove_tree(path, NULL);
		}
	}
	if (dd)
		closedir(dd);
	PQclear(r);
}

static void pass(struct ctl *c)
{
	struct ft_err err;
	ft_err_clear(&err);
	PGresult *r = ft_pg_exec(c->pg, &err,
				 "SELECT id, team_id, kind, url, api_key_sealed FROM endpoints"
				 " ORDER BY created_at, id",
				 0, NULL);
	if (!r) {
		ft_warn("deployments: %s", err.detail[0] ? err.detail : err.msg);
		return;
	}
	for (int i = 0; i < PQntuples(r) && !*c->o->stop; i++) {
		struct sched_endpoint ep;
		bool callable = sched_endpoint_prepare(c->o, &ep, r, i);
		one_endpoint(c, &ep, callable);
		ft_secretbox_free(ep.api_key);
	}
	PQclear(r);
	sweep_deploy_dir(c);
}

/* ---- the thread ------------------------------------------------------------------ */

/* Wait up to ms for a notification on the connection (or the stop flag). */
static void wait_for_news(struct ctl *c, long ms)
{
	uint64_t end = ft_time_mono_ms() + (uint64_t)ms;
	while (!*c->o->stop && ft_time_mono_ms() < end) {
		struct pollfd pf = { PQsocket(c->pg), POLLIN, 0 };
		long left = (long)(end - ft_time_mono_ms());
		if (poll(&pf, 1, (int)FT_MIN(left, 200L)) > 0) {
			PQconsumeInput(c->pg);
			bool news = false;
			PGnotify *nt;
			while ((nt = PQnotifies(c->pg))) {
				news = true;
				PQfreemem(nt);
			}
			if (news || PQstatus(c->pg) != CONNECTION_OK)
				return;
		}
	}
}

static void *deploy_thread(void *arg)
{
	struct ctl *c = arg;
	while (!*c->o->stop) {
		if (!c->pg || PQstatus(c->pg) != CONNECTION_OK) {
			if (c->pg)
				PQfinish(c->pg);
			c->pg = PQconnectdb(c->o->database_url);
			if (PQstatus(c->pg) != CONNECTION_OK) {
				ft_sleep_ms(500);
				continue;
			}
			PQclear(PQexec(c->pg, "SET client_min_messages = warning"));
			PQclear(PQexec(c->pg, "LISTEN ft_deployments"));
		}
		if (__atomic_load_n(&c->s->leader, __ATOMIC_ACQUIRE))
			pass(c);
		wait_for_news(c, c->o->deploy_interval_ms);
	}
	if (c->pg)
		PQfinish(c->pg);
	return NULL;
}

static pthread_t th;
static struct ctl the_ctl;

void sched_deploy_start(struct sched *s)
{
	the_ctl = (struct ctl){ .s = s, .o = s->o };
	curl_global_init(CURL_GLOBAL_DEFAULT);
	pthread_create(&th, NULL, deploy_thread, &the_ctl);
}

void sched_deploy_stop(void)
{
	pthread_join(th, NULL);
}
