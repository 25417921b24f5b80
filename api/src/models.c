/*
 * models.c - base models (/v1/models), registered by admins from a
 * Hugging Face model folder:
 *
 *   file                      what we take
 *   config.json               architectures[0] (or model_type), the config
 *   *.safetensors             parameter count = sum over tensors of the
 *                             product of their shapes (headers only)
 *   tokenizer_config.json     chat_template (a string, or the "default" entry)
 *
 * Without safetensors files the count is computed from config.json for a
 * Llama-style decoder. Model objects use OpenAI's shape with the name as
 * "id", so SDK code can pass it straight to fine_tuning.jobs.create.
 */
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api_int.h"

#define MAX_HEADER (100u << 20)

#define MAX_JSON_FILE (16u << 20)

static json_t *load_json_file(const char *path, struct ft_err *err)
{
	json_error_t je;
	struct stat st;
	if (stat(path, &st) == 0 && st.st_size > (off_t)MAX_JSON_FILE) {
		ft_failf(err, FT_EFORMAT, "invalid_model", "\"%s\" is larger than 16 MiB", path);
		return NULL;
	}
	json_t *v = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
	if (!v)
		ft_failf(err, FT_EFORMAT, "invalid_model", "\"%s\" line %d: %s", path, je.line,
			 je.text);
	return v;
}

/* Sum of element counts in one safetensors header. */
static enum ft_rc safetensors_params(const char *path, long long *sum, struct ft_err *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	unsigned char len8[8];
	enum ft_rc rc = FT_OK;
	if (fd < 0)
		return ft_failf(err, FT_EIO, "io_error", "cannot open \"%s\": %s", path,
				strerror(errno));
	if (read(fd, len8, 8) != 8) {
		rc = ft_failf(err, FT_EFORMAT, "invalid_model",
			      "\"%s\" is too short for safetensors", path);
		goto close_fd;
	}
	uint64_t n = 0;
	for (int i = 7; i >= 0; i--)
		n = (n << 8) | len8[i];
	if (n == 0 || n > MAX_HEADER) {
		rc = ft_failf(err, FT_EFORMAT, "invalid_model",
			      "\"%s\": header size %" PRIu64 " is out of range", path, n);
		goto close_fd;
	}
	char *h = malloc(n);
	if (!h) {
		rc = ft_failf(err, FT_ENOMEM, NULL, "out of memory");
		goto close_fd;
	}
	size_t got = 0;
	while (got < n) {
		ssize_t k = read(fd, h + got, n - got);
		if (k <= 0)
			break;
		got += (size_t)k;
	}
	json_t *hdr = got == n ? ft_json_parse(h, n, err) : NULL;
	free(h);
	if (!hdr) {
		rc = ft_failf(err, FT_EFORMAT, "invalid_model", "\"%s\": bad safetensors header",
			      path);
		goto close_fd;
	}
	const char *k;
	json_t *t;
	json_object_foreach(hdr, k, t)
	{
		json_t *shape = json_object_get(t, "shape"), *d;
		size_t i;
		if (strcmp(k, "__metadata__") == 0 || !json_is_array(shape))
			continue;
		long long prod = 1;
		json_array_foreach(shape, i, d) prod *= json_integer_value(d);
		*sum += prod;
	}
	json_decref(hdr);
close_fd:
	close(fd);
	return rc;
}

static long long cfg_int(const json_t *c, const char *k, long long def)
{
	json_t *v = json_object_get(c, k);
	return json_is_integer(v) ? json_integer_value(v) : def;
}

/* Llama-style decoder parameter count from config.json. */
static long long llama_params(const json_t *c)
{
	long long h = cfg_int(c, "hidden_size", 0), v = cfg_int(c, "vocab_size", 0);
	long long L = cfg_int(c, "num_hidden_layers", 0),
		  heads = cfg_int(c, "num_attention_heads", 1);
	long long kv = cfg_int(c, "num_key_value_heads", heads),
		  inter = cfg_int(c, "intermediate_size", 0);
	long long hd = cfg_int(c, "head_dim", heads ? h / heads : 0);
	bool tied = json_is_true(json_object_get(c, "tie_word_embeddings"));
	long long attn = h * heads * hd + 2 * h * kv * hd + heads * hd * h;
	long long per_layer = attn + 3 * h * inter + 2 * h;
	return v * h * (tied ? 1 : 2) + L * per_layer + h;
}

enum ft_rc api_model_inspect(const char *dir, char arch[128], long long *params,
			     char **chat_template, json_t **config, struct ft_err *err)
{
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/config.json", dir);
	json_t *c = load_json_file(path, err);
	if (!c)
		return err->rc;
	json_t *archs = json_object_get(c, "architectures");
	const char *a = json_string_value(json_array_get(archs, 0));
	if (!a)
		a = json_string_value(json_object_get(c, "model_type"));
	if (!a) {
		json_decref(c);
		return ft_failf(
			err, FT_EFORMAT, "invalid_model",
			"\"%s\" names no architecture (\"architectures\" or \"model_type\")", path);
	}
	ft_strlcpy(arch, a, 128);
	*params = 0;
	DIR *d = opendir(dir);
	if (d) {
		struct dirent *e;
		while ((e = readdir(d))) {
			size_t n = strlen(e->d_name);
			if (n < 12 || strcmp(e->d_name + n - 12, ".safetensors") != 0)
				continue;
			snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
			if (safetensors_params(path, params, err)) {
				closedir(d);
				json_decref(c);
				return err->rc;
			}
		}
		closedir(d);
	}
	if (*params == 0)
		*params = llama_params(c);
	if (*params <= 0) {
		json_decref(c);
		return ft_failf(err, FT_EFORMAT, "invalid_model",
				"cannot count the parameters of \"%s\" (no safetensors, no sizes "
				"in config.json)",
				dir);
	}
	*chat_template = NULL;
	snprintf(path, sizeof(path), "%s/tokenizer_config.json", dir);
	struct ft_err ignored;
	ft_err_clear(&ignored);
	json_t *tc = load_json_file(path, &ignored); /* optional */
	json_t *t = json_object_get(tc, "chat_template");
	if (json_is_array(t)) {
		size_t i;
		json_t *x;
		json_t *found = NULL;
		json_array_foreach(t, i, x)
		{
			if (json_is_string(json_object_get(x, "template")) &&
			    (!found ||
			     strcmp(json_string_value(json_object_get(x, "name")), "default") == 0))
				found = json_object_get(x, "template");
		}
		t = found;
	}
	if (json_is_string(t))
		*chat_template = ft_xstrdup(json_string_value(t));
	json_decref(tc);
	*config = c;
	return FT_OK;
}

enum ft_rc api_model_register(PGconn *db, const char *team_id, const char *name, const char *dir,
			      char id_out[FT_ID_MAX], struct ft_err *err)
{
	char arch[128], count[32];
	long long params;
	char *tmpl = NULL;
	json_t *cfg = NULL;
	char real[PATH_MAX];
	if (!realpath(dir, real))
		return ft_failf(err, FT_EINVAL, "invalid_path", "model folder \"%s\": %s", dir,
				strerror(errno));
	enum ft_rc rc = api_model_inspect(real, arch, &params, &tmpl, &cfg, err);
	if (rc)
		return rc;
	char *cfg_s = json_dumps(cfg, JSON_COMPACT);
	ft_id_new(FT_ID_MODEL, id_out);
	snprintf(count, sizeof(count), "%lld", params);
	const char *p[] = { id_out, team_id, name, arch, count, tmpl, real, cfg_s };
	rc = ft_pg_command(
		db, err,
		"INSERT INTO base_models (id, team_id, name, architecture, parameter_count, "
		"chat_template, source_path, config) "
		"VALUES ($1, $2, $3, $4, $5::bigint, $6, $7, $8::jsonb)",
		8, p);
	if (rc == FT_ECONFLICT)
		ft_strlcpy(err->msg, "a model with this name already exists", sizeof(err->msg));
	free(cfg_s);
	free(tmpl);
	json_decref(cfg);
	return rc;
}

#define MODEL_COLS                                                                              \
	"id, name, coalesce(team_id, 'system'), architecture, parameter_count, chat_template, " \
	"extract(epoch from created_at)::bigint"

static json_t *model_json(const PGresult *res, int i)
{
	json_t *m = json_object();
	json_object_set_new(m, "id", json_string(PQgetvalue(res, i, 1)));
	json_object_set_new(m, "object", json_string("model"));
	json_object_set_new(m, "created", api_epoch(res, i, 6));
	json_object_set_new(m, "owned_by", json_string(PQgetvalue(res, i, 2)));
	json_object_set_new(m, "model_id", json_string(PQgetvalue(res, i, 0)));
	json_object_set_new(m, "architecture", json_string(PQgetvalue(res, i, 3)));
	json_object_set_new(m, "parameter_count",
			    json_integer(strtoll(PQgetvalue(res, i, 4), NULL, 10)));
	json_object_set_new(m, "chat_template", api_text_or_null(res, i, 5));
	return m;
}

enum ft_rc h_models_create(struct api_req *r)
{
	static const char *const keys[] = { "name", "path", NULL };
	json_t *b;
	const char *name = NULL, *path = NULL;
	if (api_body_object(r, false, &b) || api_check_keys(r, b, NULL, keys) ||
	    ft_json_get_str(b, "name", FT_JSON_REQUIRED | FT_JSON_NONEMPTY, &name, &r->err) ||
	    ft_json_get_str(b, "path", FT_JSON_REQUIRED | FT_JSON_NONEMPTY, &path, &r->err))
		return FT_EINVAL;
	if (!api_valid_text(name, 256) || strchr(name, '/') == name) {
		ft_failf(&r->err, FT_EINVAL, "invalid_value",
			 "\"name\" must be 1 to 256 printable characters");
		ft_err_param(&r->err, "name");
		return FT_EINVAL;
	}
	if (!api_valid_text(path, 1024)) {
		ft_failf(&r->err, FT_EINVAL, "invalid_value", "\"path\" is not a folder path");
		ft_err_param(&r->err, "path");
		return FT_EINVAL;
	}
	char id[FT_ID_MAX];
	if (!r->db && !api_db(r, "SELECT 1", 0, NULL))
		return r->err.rc;
	if (api_model_register(r->db, r->team_id, name, path, id, &r->err)) {
		if (r->err.rc == FT_EIO || r->err.rc == FT_EFORMAT)
			r->err.rc = FT_EINVAL; /* the folder the admin named is unusable */
		ft_err_param(&r->err, r->err.rc == FT_ECONFLICT ? "name" : "path");
		return r->err.rc;
	}
	const char *p[] = { id };
	PGresult *res = api_db(r, "SELECT " MODEL_COLS " FROM base_models WHERE id = $1", 1, p);
	if (!res)
		return r->err.rc;
	r->obj_type = "model";
	r->obj_id = api_strdup(r->arena, id);
	r->resp = api_own(r, model_json(res, 0));
	return FT_OK;
}

enum ft_rc h_models_list(struct api_req *r)
{
	long limit;
	const char *after;
	if (api_page_args(r, FT_ID_MODEL, &limit, &after))
		return FT_EINVAL;
	char lim[16];
	snprintf(lim, sizeof(lim), "%ld", limit + 1);
	const char *p[] = { r->team_id, after, lim };
	PGresult *res = api_db(r,
			       "SELECT " MODEL_COLS " FROM base_models "
			       "WHERE (team_id IS NULL OR team_id = $1) "
			       "AND ($2::text IS NULL OR (created_at, id) < "
			       "  (SELECT created_at, id FROM base_models WHERE id = $2)) "
			       "ORDER BY created_at DESC, id DESC LIMIT $3::int",
			       3, p);
	if (!res)
		return r->err.rc;
	json_t *data = json_array();
	for (int i = 0; i < PQntuples(res); i++)
		json_array_append_new(data, model_json(res, i));
	json_t *l = api_list(data, limit);
	/* Cursor: the model_id of the last row (names are not ids). */
	json_t *last = json_array_get(data, json_array_size(data) - 1);
	json_object_set(l, "last_id", last ? json_object_get(last, "model_id") : json_null());
	r->resp = api_own(r, l);
	return FT_OK;
}

enum ft_rc h_models_get(struct api_req *r)
{
	const char *name = r->params[0];
	if (!api_valid_text(name, 256))
		return api_not_found(r, "model", name);
	const char *p[] = { name, r->team_id };
	PGresult *res = api_db(r,
			       "SELECT " MODEL_COLS " FROM base_models "
			       "WHERE (name = $1 OR id = $1) AND (team_id IS NULL OR team_id = $2)",
			       2, p);
	if (!res)
		return r->err.rc;
	if (PQntuples(res) == 0)
		return api_not_found(r, "model", name);
	r->resp = api_own(r, model_json(res, 0));
	return FT_OK;
}
