/*
 * models.c - base models (/v1/models), registered by admins from a
 * Hugging Face model folder or a GGUF file:
 *
 *   file                      what we take
 *   config.json               architectures[0] (or model_type), the config
 *   *.safetensors             parameter count = sum over tensors of the
 *                             product of their shapes (headers only)
 *   tokenizer_config.json     chat_template (a string, or the "default" entry)
 *   chat_template.jinja       chat_template (transformers 5; wins over the above)
 *   MODEL.gguf                all of it from the metadata (ft/gguf.h): the
 *                             config.json it describes, the parameter count
 *                             of that config, tokenizer.chat_template
 *
 * Without safetensors files the count is computed from config.json for a
 * Llama-style decoder. JSON files are read as Python writes them (integers
 * beyond 64 bits, transformers' "no limit" model_max_length, are numbers).
 * Model objects use OpenAI's shape with the name as "id", so SDK code can
 * pass it straight to fine_tuning.jobs.create.
 */
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api_int.h"
#include "ft/gguf.h"

#define MAX_HEADER (100u << 20)

#define MAX_JSON_FILE (16u << 20)

/* A whole text file under MAX_JSON_FILE, NUL-terminated (NULL: err set). */
static char *read_small_file(const char *path, struct ft_err *err)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		ft_failf(err, FT_EIO, "invalid_model", "cannot open \"%s\": %s", path,
			 strerror(errno));
		return NULL;
	}
	struct ft_buf b = FT_BUF_INIT(MAX_JSON_FILE);
	char chunk[65536];
	size_t n;
	bool ok = true;
	while (ok && (n = fread(chunk, 1, sizeof chunk, f)) > 0)
		ok = ft_buf_add(&b, chunk, n) == FT_OK;
	if (!ok || ferror(f)) {
		ft_failf(err, FT_EFORMAT, "invalid_model", "cannot read \"%s\" (over 16 MiB?)",
			 path);
		ft_buf_release(&b);
		fclose(f);
		return NULL;
	}
	fclose(f);
	char *s = ft_buf_take(&b);
	ft_buf_release(&b);
	if (!s)
		ft_failf(err, FT_ENOMEM, NULL, "out of memory");
	return s;
}

static json_t *load_json_file(const char *path, struct ft_err *err)
{
	struct stat st;
	if (stat(path, &st) == 0 && st.st_size > (off_t)MAX_JSON_FILE) {
		ft_failf(err, FT_EFORMAT, "invalid_model", "\"%s\" is larger than 16 MiB", path);
		return NULL;
	}
	char *text = read_small_file(path, err);
	if (!text)
		return NULL;
	json_t *v = ft_json_parse_config(text, strlen(text), err);
	free(text);
	if (!v)
		ft_err_prefixf(err, "\"%s\": ", path);
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

/* A GGUF file: the config its metadata describes, that config's parameter
 * count, and tokenizer.chat_template. */
static enum ft_rc inspect_gguf(const char *file, char arch[128], long long *params,
			       char **chat_template, json_t **config, struct ft_err *err)
{
	struct ft_gguf *g;
	struct ft_model_config mc;
	json_t *c = NULL;
	const char *tmpl = NULL;
	enum ft_rc rc = ft_gguf_open(file, &g, err);
	if (rc)
		return rc;
	if ((rc = ft_gguf_config_json(g, NULL, &c, err)) ||
	    (rc = ft_model_config_from_json(c, &mc, err)) ||
	    (rc = ft_gguf_get_str(g, FT_GGUF_KEY_CHAT_TEMPLATE, 0, &tmpl, err))) {
		json_decref(c);
		ft_gguf_close(g);
		return rc;
	}
	json_t *utf8 = tmpl ? json_string(tmpl) : NULL; /* NULL: not UTF-8 */
	json_decref(utf8);
	if (tmpl && !utf8) {
		json_decref(c);
		ft_gguf_close(g);
		return ft_failf(err, FT_EFORMAT, "invalid_model",
				"%s: tokenizer.chat_template is not valid UTF-8", file);
	}
	ft_strlcpy(arch, mc.architecture, 128);
	*params = (long long)ft_model_config_param_count(&mc);
	*chat_template = tmpl ? ft_xstrdup(tmpl) : NULL;
	*config = c;
	ft_gguf_close(g);
	return FT_OK;
}

enum ft_rc api_model_inspect(const char *dir, char arch[128], long long *params,
			     char **chat_template, json_t **config, struct ft_err *err)
{
	char path[PATH_MAX];
	struct stat ds;
	if (stat(dir, &ds) == 0 && S_ISREG(ds.st_mode))
		return inspect_gguf(dir, arch, params, chat_template, config, err);
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
	/* transformers 5 writes the template beside the config, and reads it first */
	snprintf(path, sizeof(path), "%s/chat_template.jinja", dir);
	char *jinja = access(path, R_OK) == 0 ? read_small_file(path, &ignored) : NULL;
	if (jinja) {
		free(*chat_template);
		*chat_template = jinja;
	}
	*config = c;
	return FT_OK;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Regular files under base/rel, recursively, hidden ones left out (the
 * worker's store.c stores folders the same way). */
static enum ft_rc list_files(const char *base, const char *rel, char ***out, size_t *n, size_t *cap,
			     struct ft_err *err)
{
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s%s%s", base, rel[0] ? "/" : "", rel);
	DIR *d = opendir(path);
	if (!d)
		return ft_failf(err, FT_EIO, "io_error", "cannot list \"%s\": %s", path,
				strerror(errno));
	struct dirent *e;
	enum ft_rc rc = FT_OK;
	while ((e = readdir(d)) && !rc) {
		char sub[PATH_MAX], full[PATH_MAX * 2];
		struct stat st;
		if (e->d_name[0] == '.')
			continue;
		snprintf(sub, sizeof(sub), "%s%s%s", rel, rel[0] ? "/" : "", e->d_name);
		snprintf(full, sizeof(full), "%s/%s", base, sub);
		if (lstat(full, &st) != 0)
			continue;
		if (S_ISDIR(st.st_mode)) {
			rc = list_files(base, sub, out, n, cap, err);
		} else if (S_ISREG(st.st_mode)) {
			if (*n == *cap) {
				*cap = *cap ? *cap * 2 : 16;
				*out = realloc(*out, *cap * sizeof(char *));
				FT_ASSERT(*out);
			}
			(*out)[(*n)++] = ft_xstrdup(sub);
		}
	}
	closedir(d);
	return rc;
}

static enum ft_rc file_sha256(const char *path, char hex[65], uint64_t *bytes, struct ft_err *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return ft_failf(err, FT_EIO, "io_error", "cannot read \"%s\": %s", path,
				strerror(errno));
	struct ft_sha256 h;
	if (ft_sha256_init(&h)) {
		close(fd);
		return ft_failf(err, FT_EINTERNAL, NULL, "cannot start SHA-256");
	}
	static __thread char buf[1 << 16];
	ssize_t k;
	*bytes = 0;
	while ((k = read(fd, buf, sizeof(buf))) > 0) {
		ft_sha256_update(&h, buf, (size_t)k);
		*bytes += (uint64_t)k;
	}
	unsigned char d[FT_SHA256_LEN];
	ft_sha256_final(&h, d);
	close(fd);
	if (k < 0)
		return ft_failf(err, FT_EIO, "io_error", "reading \"%s\": %s", path,
				strerror(errno));
	ft_hex_encode(d, sizeof(d), hex);
	return FT_OK;
}

/* The digest of a model folder: the SHA-256 of its manifest as the store
 * would keep it ({"files": [{"bytes", "path", "sha256"}] sorted by path,
 * "format": "ftplat-manifest-1"}, compact, keys sorted; worker/src/store.c),
 * so that a version's lineage names the exact base it trained on. A GGUF
 * base is one file: the manifest of a folder holding only it. */
static enum ft_rc model_digest(const char *where, char hex[65], uint64_t *total, struct ft_err *err)
{
	char **files = NULL;
	size_t n = 0, cap = 0;
	char dir[PATH_MAX];
	struct stat st;
	enum ft_rc rc = FT_OK;
	snprintf(dir, sizeof(dir), "%s", where);
	if (stat(where, &st) == 0 && S_ISREG(st.st_mode)) {
		char *slash = strrchr(dir, '/');
		files = malloc(sizeof(char *));
		if (!files || !(files[0] = strdup(slash ? slash + 1 : dir))) {
			free(files);
			return ft_failf(err, FT_ENOMEM, NULL, "out of memory");
		}
		n = 1;
		if (slash)
			*slash = 0;
		else
			snprintf(dir, sizeof(dir), ".");
	} else {
		rc = list_files(dir, "", &files, &n, &cap, err);
	}
	json_t *arr = json_array();
	*total = 0;
	if (!rc)
		qsort(files, n, sizeof(char *), cmp_str);
	for (size_t i = 0; !rc && i < n; i++) {
		char path[PATH_MAX * 2], fh[65];
		uint64_t b = 0; /* gcc -O2 cannot see file_sha256 sets it */
		snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
		if (!(rc = file_sha256(path, fh, &b, err))) {
			*total += b;
			json_array_append_new(arr, json_pack("{s:s, s:s, s:I}", "path", files[i],
							     "sha256", fh, "bytes", (json_int_t)b));
		}
	}
	if (!rc) {
		json_t *m = json_pack("{s:s, s:O}", "format", "ftplat-manifest-1", "files", arr);
		char *text = json_dumps(m, JSON_COMPACT | JSON_SORT_KEYS);
		json_decref(m);
		if (text)
			ft_sha256_hex(text, strlen(text), hex);
		else
			rc = ft_failf(err, FT_ENOMEM, NULL, "out of memory");
		free(text);
	}
	json_decref(arr);
	for (size_t i = 0; i < n; i++)
		free(files[i]);
	free(files);
	return rc;
}

enum ft_rc api_model_register(PGconn *db, const char *team_id, const char *name, const char *dir,
			      const char *description, char id_out[FT_ID_MAX], struct ft_err *err)
{
	char arch[128], count[32];
	long long params;
	char *tmpl = NULL;
	json_t *cfg = NULL;
	char real[PATH_MAX];
	if (!realpath(dir, real))
		return ft_failf(err, FT_EINVAL, "invalid_path", "model \"%s\": %s", dir,
				strerror(errno));
	enum ft_rc rc = api_model_inspect(real, arch, &params, &tmpl, &cfg, err);
	if (rc)
		return rc;
	char sha[65], bytes[32];
	uint64_t total = 0;
	if ((rc = model_digest(real, sha, &total, err))) {
		free(tmpl);
		json_decref(cfg);
		return rc;
	}
	snprintf(bytes, sizeof(bytes), "%" PRIu64, total);
	char *cfg_s = json_dumps(cfg, JSON_COMPACT);
	ft_id_new(FT_ID_MODEL, id_out);
	snprintf(count, sizeof(count), "%lld", params);
	const char *p[] = { id_out,
			    team_id,
			    name,
			    arch,
			    count,
			    tmpl,
			    real,
			    cfg_s,
			    sha,
			    bytes,
			    description ? description : "" };
	rc = ft_pg_command(
		db, err,
		"INSERT INTO base_models (id, team_id, name, architecture, parameter_count, "
		"chat_template, source_path, config, sha256, bytes, description) "
		"VALUES ($1, $2, $3, $4, $5::bigint, $6, $7, $8::jsonb, $9, $10::bigint, $11)",
		11, p);
	if (rc == FT_ECONFLICT)
		ft_strlcpy(err->msg, "a model with this name already exists", sizeof(err->msg));
	free(cfg_s);
	free(tmpl);
	json_decref(cfg);
	return rc;
}

/* /v1/models lists, as OpenAI does, every model the team can use: base
 * models, fine-tuned models (the ft: name of each job whose model version
 * exists) and their checkpoints (ft:...:ckpt-step-N), newest first. One
 * query over the three, keyset-paginated on (created, internal id);
 * "model_id" is that internal id (model-, mv-, ftckpt-) and the cursor. */
#define MODELS_UNION                                                                             \
	"SELECT b.id AS iid, b.name AS name, coalesce(b.team_id, 'system') AS owner,"            \
	" b.created_at AS created, b.architecture, b.parameter_count, b.chat_template,"          \
	" 'base' AS kind, NULL::text AS rm, NULL::int AS version, NULL::text AS job,"            \
	" NULL::int AS step, b.sha256 AS sha, b.name AS base, b.description AS descr"            \
	" FROM base_models b WHERE b.team_id IS NULL OR b.team_id = $1"                          \
	" UNION ALL"                                                                             \
	" SELECT v.id, j.fine_tuned_model, v.team_id, v.created_at, b.architecture,"             \
	" b.parameter_count, b.chat_template, 'fine-tuned', v.name, v.version, j.id, NULL,"      \
	" a.sha256, b.name, NULL"                                                                \
	" FROM model_versions v JOIN jobs j ON j.id = v.job_id"                                  \
	" JOIN base_models b ON b.id = v.base_model_id JOIN artifacts a ON a.id = v.artifact_id" \
	" WHERE v.team_id = $1 AND v.source = 'job' AND j.fine_tuned_model IS NOT NULL"          \
	" UNION ALL"                                                                             \
	" SELECT c.id, j.fine_tuned_model || ':ckpt-step-' || c.step, j.team_id, c.created_at,"  \
	" b.architecture, b.parameter_count, b.chat_template, 'checkpoint', v.name, v.version,"  \
	" j.id, c.step, a.sha256, b.name, NULL"                                                  \
	" FROM checkpoints c JOIN jobs j ON j.id = c.job_id"                                     \
	" JOIN model_versions v ON v.job_id = j.id AND v.source = 'job'"                         \
	" JOIN base_models b ON b.id = j.base_model_id JOIN artifacts a ON a.id = c.artifact_id" \
	" WHERE j.team_id = $1 AND j.fine_tuned_model IS NOT NULL"
#define MODEL_ROW_COLS                                                    \
	"iid, name, owner, architecture, parameter_count, chat_template," \
	" extract(epoch from created)::bigint, kind, rm, version, job, step, sha, base, descr"

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
	json_object_set_new(m, "kind", json_string(PQgetvalue(res, i, 7)));
	json_object_set_new(m, "sha256", api_text_or_null(res, i, 12));
	if (strcmp(PQgetvalue(res, i, 7), "base") == 0)
		json_object_set_new(m, "description", json_string(PQgetvalue(res, i, 14)));
	if (strcmp(PQgetvalue(res, i, 7), "base") != 0) {
		json_object_set_new(m, "parent", json_string(PQgetvalue(res, i, 13)));
		json_object_set_new(m, "registered_model", json_string(PQgetvalue(res, i, 8)));
		json_object_set_new(m, "version", api_epoch(res, i, 9));
		json_object_set_new(m, "fine_tuning_job_id", json_string(PQgetvalue(res, i, 10)));
		if (!PQgetisnull(res, i, 11))
			json_object_set_new(m, "step_number", api_epoch(res, i, 11));
	}
	return m;
}

enum ft_rc h_models_create(struct api_req *r)
{
	static const char *const keys[] = { "name", "path", "description", NULL };
	json_t *b;
	const char *name = NULL, *path = NULL, *desc = NULL;
	if (api_body_object(r, false, &b) || api_check_keys(r, b, NULL, keys) ||
	    ft_json_get_str(b, "name", FT_JSON_REQUIRED | FT_JSON_NONEMPTY, &name, &r->err) ||
	    ft_json_get_str(b, "path", FT_JSON_REQUIRED | FT_JSON_NONEMPTY, &path, &r->err) ||
	    ft_json_get_str(b, "description", FT_JSON_NULL_OK, &desc, &r->err))
		return FT_EINVAL;
	if (desc && !api_valid_text(desc, 2000)) {
		ft_failf(&r->err, FT_EINVAL, "invalid_value",
			 "\"description\" must be at most 2000 bytes of printable text");
		ft_err_param(&r->err, "description");
		return FT_EINVAL;
	}
	if (!api_valid_text(name, 256) || strchr(name, '/') == name ||
	    strncmp(name, "ft:", 3) == 0) {
		ft_failf(&r->err, FT_EINVAL, "invalid_value",
			 "\"name\" must be 1 to 256 printable characters, not starting with \"/\" "
			 "or \"ft:\"");
		ft_err_param(&r->err, "name");
		return FT_EINVAL;
	}
	if (!api_valid_text(path, 1024)) {
		ft_failf(&r->err, FT_EINVAL, "invalid_value",
			 "\"path\" is not a model folder or GGUF file path");
		ft_err_param(&r->err, "path");
		return FT_EINVAL;
	}
	char id[FT_ID_MAX];
	if (!r->db && !api_db(r, "SELECT 1", 0, NULL))
		return r->err.rc;
	if (api_model_register(r->db, r->team_id, name, path, desc, id, &r->err)) {
		if (r->err.rc == FT_EIO || r->err.rc == FT_EFORMAT)
			r->err.rc = FT_EINVAL; /* the folder the admin named is unusable */
		ft_err_param(&r->err, r->err.rc == FT_ECONFLICT ? "name" : "path");
		return r->err.rc;
	}
	const char *p[] = { r->team_id, id };
	PGresult *res = api_db(
		r, "SELECT " MODEL_ROW_COLS " FROM (" MODELS_UNION ") m WHERE iid = $2", 2, p);
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
	const char *after = api_query(r, "after");
	if (after && !ft_id_valid(FT_ID_MODEL, after) && !ft_id_valid(FT_ID_VERSION, after) &&
	    !ft_id_valid(FT_ID_CHECKPOINT, after)) {
		ft_failf(&r->err, FT_EINVAL, "invalid_cursor",
			 "\"after\" must be the model_id of a model of a previous page");
		ft_err_param(&r->err, "after");
		return FT_EINVAL;
	}
	const char *ls = api_query(r, "limit");
	char *end = NULL;
	errno = 0;
	limit = ls ? strtol(ls, &end, 10) : 20;
	if (ls && (errno || end == ls || *end || limit < 1 || limit > 100)) {
		ft_failf(&r->err, FT_EINVAL, "invalid_value",
			 "\"limit\" must be an integer from 1 to 100");
		ft_err_param(&r->err, "limit");
		return FT_EINVAL;
	}
	char lim[16];
	snprintf(lim, sizeof(lim), "%ld", limit + 1);
	const char *p[] = { r->team_id, after, lim };
	PGresult *res = api_db(r,
			       "WITH m AS (" MODELS_UNION ") SELECT " MODEL_ROW_COLS " FROM m"
			       " WHERE $2::text IS NULL OR (created, iid) <"
			       "   (SELECT created, iid FROM m WHERE iid = $2)"
			       " ORDER BY created DESC, iid DESC LIMIT $3::int",
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

/* The model {model} names, through the one resolver: a base model (by name
 * or id), a fine-tuned model or a checkpoint (OpenAI's names). */
static enum ft_rc model_row(struct api_req *r, const char *name, PGresult **out,
			    struct api_model_target **target)
{
	struct api_model_target *t = api_alloc(r->arena, sizeof(*t));
	*out = NULL;
	if (target)
		*target = t;
	if (api_model_resolve(r, name, NULL, t)) {
		ft_err_clear(&r->err);
		return api_not_found(r, "model", name);
	}
	const char *iid = t->kind == TARGET_BASE      ? t->base_id
			  : t->kind == TARGET_VERSION ? t->version_id
						      : t->checkpoint_id;
	const char *p[] = { r->team_id, iid };
	PGresult *res = api_db(
		r, "SELECT " MODEL_ROW_COLS " FROM (" MODELS_UNION ") m WHERE iid = $2", 2, p);
	if (!res)
		return r->err.rc;
	if (PQntuples(res) == 0) /* a version without an ft: name (a promotion) */
		return api_not_found(r, "model", name);
	*out = res;
	return FT_OK;
}

enum ft_rc h_models_get(struct api_req *r)
{
	PGresult *res;
	if (model_row(r, r->params[0], &res, NULL))
		return r->err.rc;
	r->resp = api_own(r, model_json(res, 0));
	return FT_OK;
}

/* DELETE /v1/models/{model}: a fine-tuned model is its version, deleted as
 * the registry deletes versions (refused while an alias or a deployment
 * needs it); base models and checkpoints are not deleted here. */
enum ft_rc h_models_delete(struct api_req *r)
{
	PGresult *res;
	struct api_model_target *t;
	if (model_row(r, r->params[0], &res, &t))
		return r->err.rc;
	if (t->kind != TARGET_VERSION)
		return ft_failf(
			&r->err, FT_EPERM, "model_not_deletable",
			t->kind == TARGET_BASE
				? "\"%s\" is a base model: only fine-tuned models are deleted "
				  "through the API"
				: "\"%s\" is a checkpoint: it goes with its job's model",
			r->params[0]);
	if (api_db_begin(r) || api_version_delete(r, t->version_id) || api_db_commit(r))
		return r->err.rc;
	r->obj_type = "model";
	r->obj_id = api_strdup(r->arena, t->version_id);
	r->resp = api_own(r, json_pack("{s:s, s:s, s:b}", "id", r->params[0], "object", "model",
				       "deleted", 1));
	return FT_OK;
}
