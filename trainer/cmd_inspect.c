/*
 * cmd_inspect.c - `ft-train inspect`: what a model folder (or one
 * .safetensors file) holds, and two hidden helpers the peer tests use to
 * compare bytes with the Python `safetensors` package.
 *
 *   ft-train inspect MODEL [--json] [--hash]
 *       MODEL is a Hugging Face folder (config.json + model.safetensors or a
 *       sharded model.safetensors.index.json), a .safetensors file, or a GGUF
 *       file (its config from the metadata; tensors with their ggml type and
 *       shape in PyTorch order, "gguf_version" in the JSON). Prints
 *       the architecture, sizes, parameter count and every tensor (name,
 *       dtype, shape); --hash adds each tensor's SHA-256 (reads all data).
 *       --json output:
 *         { "path", "config": {...} | null, "param_count": n | null,
 *           "tensor_elements": n, "metadata": {...} (a single file only),
 *           "tensors": [ {"name", "dtype", "shape", "nbytes", "sha256"?} ] }
 *   ft-train st-dump FILE NAME [--f32]
 *       writes tensor NAME's raw bytes (or, with --f32, ft_st_to_f32 of it)
 *       to stdout; FILE is a .safetensors file or a model folder.
 *   ft-train st-copy IN OUT
 *       reads IN and writes every tensor and the metadata to OUT through
 *       ft_st_writer.
 *   ft-train st-cast IN OUT F32|F16|BF16
 *       converts every F32/F16/BF16 tensor of IN through ft_st_to_f32 and
 *       ft_st_from_f32 and writes them to OUT.
 *   ft-train config-json MODEL_DIR
 *       parses MODEL_DIR/config.json and prints what ft_model_config_to_json
 *       writes for it.
 */
#include <sys/stat.h>

#include <jansson.h>

#include "ft/crypto.h"
#include "ft/gguf.h"
#include "ft/model_config.h"
#include "ft/safetensors.h"

#include "cmd.h"

/* The tensors of a file or a folder, behind one face. */
struct weights {
	struct ft_st_file *file;
	struct ft_st_set *set;
};

static enum ft_rc weights_open(const char *path, struct weights *w, struct ft_err *err)
{
	struct stat st;
	memset(w, 0, sizeof(*w));
	if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
		return ft_st_set_open(path, &w->set, err);
	return ft_st_open(path, &w->file, err);
}

static void weights_close(struct weights *w)
{
	ft_st_set_close(w->set);
	ft_st_close(w->file);
}

static size_t weights_count(const struct weights *w)
{
	return w->set ? ft_st_set_count(w->set) : ft_st_count(w->file);
}

static const struct ft_st_tensor *weights_at(const struct weights *w, size_t i)
{
	return w->set ? ft_st_set_at(w->set, i) : ft_st_at(w->file, i);
}

static const struct ft_st_tensor *weights_find(const struct weights *w, const char *name)
{
	return w->set ? ft_st_set_find(w->set, name) : ft_st_find(w->file, name);
}

static const char *const rope_names[] = { "default", "linear", "llama3" };
static const char *const model_types[] = { "llama", "mistral", "qwen2" };

static json_t *config_json(const struct ft_model_config *c)
{
	json_t *eos = json_array();
	for (int i = 0; i < c->n_eos; i++)
		json_array_append_new(eos, json_integer(c->eos_token_ids[i]));
	json_t *o = json_pack(
		"{s:s, s:s, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:f, s:f, s:s, s:f, s:f, s:f,"
		" s:i, s:b, s:b, s:b, s:b, s:i, s:o, s:i, s:s, s:i}",
		"architecture", c->architecture, "model_type", model_types[c->arch], "vocab_size",
		c->vocab_size, "hidden_size", c->hidden_size, "intermediate_size",
		c->intermediate_size, "num_layers", c->num_layers, "num_heads", c->num_heads,
		"num_kv_heads", c->num_kv_heads, "head_dim", c->head_dim, "max_position_embeddings",
		c->max_position_embeddings, "rms_norm_eps", c->rms_norm_eps, "rope_theta",
		c->rope_theta, "rope_type", rope_names[c->rope_type], "rope_factor", c->rope_factor,
		"rope_low_freq_factor", c->rope_low_freq_factor, "rope_high_freq_factor",
		c->rope_high_freq_factor, "rope_original_max_pos", c->rope_original_max_pos,
		"tie_word_embeddings", c->tie_word_embeddings, "qkv_bias", c->qkv_bias, "o_bias",
		c->o_bias, "mlp_bias", c->mlp_bias, "bos_token_id", c->bos_token_id,
		"eos_token_ids", eos, "pad_token_id", c->pad_token_id, "torch_dtype",
		c->torch_dtype, "sliding_window", c->sliding_window);
	return o;
}

static void shape_str(const struct ft_st_tensor *t, char *out, size_t n)
{
	size_t o = (size_t)snprintf(out, n, "[");
	for (int d = 0; d < t->ndim && o < n; d++)
		o += (size_t)snprintf(out + o, n - o, "%s%" PRId64, d ? ", " : "", t->shape[d]);
	if (o < n)
		snprintf(out + o, n - o, "]");
}

/* The config lines of the text output; elems: what the tensors hold. */
static void print_config(const struct ft_model_config *c, uint64_t elems, const char *from)
{
	printf("architecture: %s (%s)\n", c->architecture, model_types[c->arch]);
	printf("sizes: vocab %d, hidden %d, intermediate %d, layers %d, heads %d, kv heads "
	       "%d, head_dim %d\n",
	       c->vocab_size, c->hidden_size, c->intermediate_size, c->num_layers, c->num_heads,
	       c->num_kv_heads, c->head_dim);
	printf("positions: %d, rms_norm_eps %g, rope theta %g, scaling %s",
	       c->max_position_embeddings, c->rms_norm_eps, c->rope_theta,
	       rope_names[c->rope_type]);
	if (c->rope_type != FT_ROPE_DEFAULT)
		printf(" (factor %g", c->rope_factor);
	if (c->rope_type == FT_ROPE_LLAMA3)
		printf(", low %g, high %g, original %d", c->rope_low_freq_factor,
		       c->rope_high_freq_factor, c->rope_original_max_pos);
	printf("%s\n", c->rope_type != FT_ROPE_DEFAULT ? ")" : "");
	printf("tied embeddings: %s; bias: qkv %s, o %s, mlp %s\n",
	       c->tie_word_embeddings ? "yes" : "no", c->qkv_bias ? "yes" : "no",
	       c->o_bias ? "yes" : "no", c->mlp_bias ? "yes" : "no");
	printf("parameters: %" PRIu64 " (from %s)\n", ft_model_config_param_count(c), from);
	if (elems != ft_model_config_param_count(c))
		printf("note: the tensors hold %" PRIu64 " elements, not what %s implies\n", elems,
		       from);
}

static void print_text(const char *path, const struct ft_model_config *c, bool have_config,
		       const struct weights *w, bool hash)
{
	uint64_t elems = 0;
	size_t n = weights_count(w);
	for (size_t i = 0; i < n; i++)
		elems += weights_at(w, i)->nelem;
	printf("model: %s\n", path);
	if (have_config)
		print_config(c, elems, "config.json");
	printf("tensors: %zu, %" PRIu64 " elements\n", n, elems);
	for (size_t i = 0; i < n; i++) {
		const struct ft_st_tensor *t = weights_at(w, i);
		char sh[256];
		shape_str(t, sh, sizeof(sh));
		printf("  %-48s %-4s %s", t->name, ft_dtype_name(t->dtype), sh);
		if (hash) {
			char hex[FT_SHA256_HEX_LEN + 1];
			ft_sha256_hex(t->data, t->nbytes, hex);
			printf(" %s", hex);
		}
		printf("\n");
	}
}

static json_t *inspect_json(const char *path, const struct ft_model_config *c, bool have_config,
			    const struct weights *w, bool hash)
{
	json_t *root = json_object(), *tensors = json_array();
	uint64_t elems = 0;
	size_t n = weights_count(w);
	json_object_set_new(root, "path", json_string(path));
	json_object_set_new(root, "config", have_config ? config_json(c) : json_null());
	json_object_set_new(root, "param_count",
			    have_config ? json_integer((json_int_t)ft_model_config_param_count(c))
					: json_null());
	if (w->file) {
		json_t *meta = json_object();
		const char *k, *v;
		for (size_t i = 0; (k = ft_st_metadata_at(w->file, i, &v)); i++)
			json_object_set_new(meta, k, json_string(v));
		json_object_set_new(root, "metadata", meta);
	}
	for (size_t i = 0; i < n; i++) {
		const struct ft_st_tensor *t = weights_at(w, i);
		json_t *shape = json_array(), *o;
		for (int d = 0; d < t->ndim; d++)
			json_array_append_new(shape, json_integer(t->shape[d]));
		o = json_pack("{s:s, s:s, s:o, s:I}", "name", t->name, "dtype",
			      ft_dtype_name(t->dtype), "shape", shape, "nbytes",
			      (json_int_t)t->nbytes);
		if (hash) {
			char hex[FT_SHA256_HEX_LEN + 1];
			ft_sha256_hex(t->data, t->nbytes, hex);
			json_object_set_new(o, "sha256", json_string(hex));
		}
		json_array_append_new(tensors, o);
		elems += t->nelem;
	}
	json_object_set_new(root, "tensor_elements", json_integer((json_int_t)elems));
	json_object_set_new(root, "tensors", tensors);
	return root;
}

static int fail(const char *what, const struct ft_err *err)
{
	fprintf(stderr, "ft-train %s: %s\n", what, err->msg);
	if (err->detail[0])
		fprintf(stderr, "  %s\n", err->detail);
	return 1;
}

/* A GGUF file: its config (from the metadata), then every tensor with its
 * ggml type and its shape in PyTorch order. */
static int inspect_gguf(const char *path, bool as_json, bool hash)
{
	struct ft_err err;
	struct ft_gguf *g;
	struct ft_model_config c;
	ft_err_clear(&err);
	if (ft_gguf_open(path, &g, &err))
		return fail("inspect", &err);
	bool have_config = ft_gguf_model_config(g, &c, &err) == FT_OK;
	size_t n = ft_gguf_tensor_count(g);
	uint64_t elems = 0;
	json_t *root = json_object(), *tensors = json_array();
	if (!as_json) {
		printf("model: %s (GGUF v%u)\n", path, ft_gguf_version(g));
		if (have_config)
			for (size_t i = 0; i < n; i++)
				elems += strcmp(ft_gguf_tensor_at(g, i)->name, "rope_freqs.weight")
						 ? ft_gguf_tensor_at(g, i)->nelem
						 : 0;
		if (have_config)
			print_config(&c, elems, "the metadata");
		else
			printf("config: %s\n", err.msg);
		printf("tensors: %zu\n", n);
	}
	for (size_t i = 0; i < n; i++) {
		const struct ft_gguf_tensor *t = ft_gguf_tensor_at(g, i);
		const struct ft_ggml_type_info *ti = ft_ggml_type_info(t->type);
		json_t *shape = json_array();
		char sh[128] = "[";
		for (int d = t->n_dims - 1; d >= 0; d--) {
			size_t k = strlen(sh);
			snprintf(sh + k, sizeof sh - k, "%" PRIu64 "%s", t->ne[d], d ? ", " : "]");
			json_array_append_new(shape, json_integer((json_int_t)t->ne[d]));
		}
		char hex[FT_SHA256_HEX_LEN + 1] = "";
		if (hash)
			ft_sha256_hex(t->data, t->nbytes, hex);
		if (as_json) {
			json_t *o = json_pack("{s:s, s:s, s:o, s:I}", "name", t->name, "type",
					      ti ? ti->name : "?", "shape", shape, "nbytes",
					      (json_int_t)t->nbytes);
			if (hash)
				json_object_set_new(o, "sha256", json_string(hex));
			json_array_append_new(tensors, o);
		} else {
			json_decref(shape);
			printf("  %-32s %-5s %s%s%s\n", t->name, ti ? ti->name : "?", sh,
			       hash ? " " : "", hex);
		}
	}
	if (as_json) {
		json_t *cj = NULL;
		struct ft_err e2;
		ft_err_clear(&e2);
		json_object_set_new(root, "path", json_string(path));
		json_object_set_new(root, "gguf_version", json_integer(ft_gguf_version(g)));
		json_object_set_new(root, "config",
				    ft_gguf_config_json(g, NULL, &cj, &e2) == FT_OK ? cj
										    : json_null());
		json_object_set_new(
			root, "param_count",
			have_config ? json_integer((json_int_t)ft_model_config_param_count(&c))
				    : json_null());
		json_object_set_new(root, "tensors", tensors);
		char *s = json_dumps(root, JSON_INDENT(2) | JSON_REAL_PRECISION(17));
		printf("%s\n", s ? s : "null");
		free(s);
	} else {
		json_decref(tensors);
	}
	json_decref(root);
	ft_gguf_close(g);
	return 0;
}

/* A file that starts with the GGUF magic. */
static bool is_gguf(const char *path)
{
	char m[4];
	FILE *f = fopen(path, "rb");
	bool yes = f && fread(m, 1, 4, f) == 4 && memcmp(m, "GGUF", 4) == 0;
	if (f)
		fclose(f);
	return yes;
}

int cmd_inspect(int argc, char **argv)
{
	const char *path = NULL;
	bool as_json = false, hash = false, have_config = false;
	struct ft_model_config cfg;
	struct ft_err err;
	struct weights w;
	struct stat st;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0)
			as_json = true;
		else if (strcmp(argv[i], "--hash") == 0)
			hash = true;
		else if (!path && argv[i][0] != '-')
			path = argv[i];
		else {
			fprintf(stderr, "ft-train inspect: unexpected argument \"%s\"\n", argv[i]);
			path = NULL;
			break;
		}
	}
	if (!path) {
		fprintf(stderr,
			"usage: ft-train inspect MODEL_DIR|FILE.safetensors|MODEL.gguf [--json] "
			"[--hash]\n");
		return 2;
	}
	if (is_gguf(path))
		return inspect_gguf(path, as_json, hash);
	ft_err_clear(&err);
	memset(&cfg, 0, sizeof(cfg));
	if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
		enum ft_rc rc = ft_model_config_load(path, &cfg, &err);
		if (rc && rc != FT_ENOTFOUND)
			return fail("inspect", &err);
		have_config = rc == FT_OK;
		ft_err_clear(&err);
	}
	if (weights_open(path, &w, &err))
		return fail("inspect", &err);
	if (as_json) {
		json_t *j = inspect_json(path, &cfg, have_config, &w, hash);
		char *s = json_dumps(j, JSON_INDENT(2) | JSON_REAL_PRECISION(17));
		printf("%s\n", s ? s : "null");
		free(s);
		json_decref(j);
	} else {
		print_text(path, &cfg, have_config, &w, hash);
	}
	weights_close(&w);
	return 0;
}

int cmd_st_dump(int argc, char **argv)
{
	const struct ft_st_tensor *t;
	struct ft_err err;
	struct weights w;
	bool f32 = argc == 4 && strcmp(argv[3], "--f32") == 0;
	int ret = 0;

	if (argc != 3 && !f32) {
		fprintf(stderr, "usage: ft-train st-dump FILE NAME [--f32]\n");
		return 2;
	}
	ft_err_clear(&err);
	if (weights_open(argv[1], &w, &err))
		return fail("st-dump", &err);
	t = weights_find(&w, argv[2]);
	if (!t) {
		fprintf(stderr, "ft-train st-dump: no tensor \"%s\" in %s\n", argv[2], argv[1]);
		ret = 1;
	} else if (f32) {
		float *buf = malloc(t->nelem ? t->nelem * sizeof(float) : 1);
		if (!buf || ft_st_to_f32(t, buf, &err)) {
			ret = buf ? fail("st-dump", &err) : 1;
		} else if (fwrite(buf, sizeof(float), t->nelem, stdout) != t->nelem) {
			ret = 1;
		}
		free(buf);
	} else if (t->nbytes && fwrite(t->data, 1, t->nbytes, stdout) != t->nbytes) {
		ret = 1;
	}
	weights_close(&w);
	return ret;
}

int cmd_st_copy(int argc, char **argv)
{
	struct ft_st_file *in;
	struct ft_st_writer *wr;
	struct ft_err err;
	const char *k, *v;
	int ret = 0;

	if (argc != 3) {
		fprintf(stderr, "usage: ft-train st-copy IN OUT\n");
		return 2;
	}
	ft_err_clear(&err);
	if (ft_st_open(argv[1], &in, &err))
		return fail("st-copy", &err);
	wr = ft_st_writer_new();
	for (size_t i = 0; i < ft_st_count(in) && !ret; i++) {
		const struct ft_st_tensor *t = ft_st_at(in, i);
		if (ft_st_writer_add(wr, t->name, t->dtype, t->ndim, t->shape, t->data, &err))
			ret = fail("st-copy", &err);
	}
	for (size_t i = 0; !ret && (k = ft_st_metadata_at(in, i, &v)); i++)
		if (ft_st_writer_meta(wr, k, v, &err))
			ret = fail("st-copy", &err);
	if (!ret && ft_st_writer_write(wr, argv[2], &err))
		ret = fail("st-copy", &err);
	ft_st_writer_free(wr);
	ft_st_close(in);
	return ret;
}

int cmd_config_json(int argc, char **argv)
{
	struct ft_model_config cfg;
	struct ft_buf out = FT_BUF_INIT(1 << 20);
	struct ft_err err;
	int ret = 0;

	if (argc != 2) {
		fprintf(stderr, "usage: ft-train config-json MODEL_DIR\n");
		return 2;
	}
	ft_err_clear(&err);
	if (ft_model_config_load(argv[1], &cfg, &err))
		return fail("config-json", &err);
	if (ft_model_config_to_json(&cfg, &out)) {
		fprintf(stderr, "ft-train config-json: cannot write this config as config.json\n");
		ret = 1;
	} else {
		fputs(ft_buf_str(&out), stdout);
	}
	ft_buf_release(&out);
	return ret;
}

int cmd_st_cast(int argc, char **argv)
{
	struct ft_st_file *in;
	struct ft_st_writer *wr;
	struct ft_err err;
	enum ft_dtype to;
	void **bufs;
	size_t n;
	int ret = 0;

	if (argc != 4 || !ft_dtype_parse(argv[3], &to)) {
		fprintf(stderr, "usage: ft-train st-cast IN OUT F32|F16|BF16\n");
		return 2;
	}
	ft_err_clear(&err);
	if (ft_st_open(argv[1], &in, &err))
		return fail("st-cast", &err);
	n = ft_st_count(in);
	bufs = ft_xcalloc(n ? n : 1, sizeof(*bufs));
	wr = ft_st_writer_new();
	for (size_t i = 0; i < n && !ret; i++) {
		const struct ft_st_tensor *t = ft_st_at(in, i);
		float *f = malloc(t->nelem ? t->nelem * sizeof(float) : 1);
		bufs[i] = malloc(t->nelem ? t->nelem * ft_dtype_size(to) : 1);
		if (!f || !bufs[i])
			ret = 1;
		else if (ft_st_to_f32(t, f, &err) ||
			 ft_st_from_f32(f, t->nelem, to, bufs[i], &err) ||
			 ft_st_writer_add(wr, t->name, to, t->ndim, t->shape, bufs[i], &err))
			ret = fail("st-cast", &err);
		free(f);
	}
	if (!ret && ft_st_writer_write(wr, argv[2], &err))
		ret = fail("st-cast", &err);
	ft_st_writer_free(wr);
	for (size_t i = 0; i < n; i++)
		free(bufs[i]);
	free(bufs);
	ft_st_close(in);
	return ret;
}
