/*
 * model_io.c - the model's files: loading a Hugging Face folder, loading
 * and writing PEFT LoRA adapter folders, and writing a merged Hugging Face
 * folder.
 *
 * Hugging Face folder: config.json + model.safetensors (or the sharded
 * index), tensor names as in transformers ("model.layers.0.mlp.up_proj.weight").
 * Weights of any float dtype are converted to fp32. A tied model may or may
 * not carry lm_head.weight (ignored); an untied one must.
 *
 * PEFT adapter folder (peft's save_pretrained):
 *   adapter_config.json        r, lora_alpha, lora_dropout, use_rslora,
 *                              target_modules, peft_type "LORA", ...
 *   adapter_model.safetensors  base_model.model.model.layers.<i>.<module>.
 *                              <linear>.lora_{A,B}.weight, F32
 * QLoRA (ft_model_load_nf4, and ft_model_load when any decoder linear is
 * stored so): a decoder linear stored as bitsandbytes' 4-bit state dict
 * (NAME U8 + NAME.absmax, .quant_map, [.nested_absmax, .nested_quant_map,]
 * .quant_state.bitsandbytes__nf4; ft/nf4.h) is read as it is; a float one
 * is converted to fp32 in a scratch buffer of one weight and quantised.
 *
 * On loading, the adapted linears are taken from the tensors present (they
 * must be the same in every layer); options we do not implement (DoRA,
 * lora_bias, rank/alpha patterns, layers_to_transform, modules_to_save) are
 * refused with an error naming the field.
 */
#include "model_int.h"
#include "io_int.h"
#include "ft/safetensors.h"

#include <math.h>

static enum ft_rc load_tensor(const struct ft_backend *be, const struct ft_st_tensor *t,
			      struct ft_param *p, const char *what, struct ft_err *err)
{
	bool ok = t->ndim == p->ndim && t->shape[0] == p->shape[0] &&
		  (p->ndim == 1 || t->shape[1] == p->shape[1]);
	if (!ok) {
		char got[64] = "";
		for (int d = 0; d < t->ndim && d < 4; d++) {
			size_t n = strlen(got);
			snprintf(got + n, sizeof(got) - n, "%s%" PRId64, d ? ", " : "",
				 t->shape[d]);
		}
		if (p->ndim == 1)
			return ft_failf(err, FT_EFORMAT, "bad_tensor",
					"%s: tensor \"%s\" has shape [%s], expected [%" PRId64 "]",
					what, p->name, got, p->shape[0]);
		return ft_failf(err, FT_EFORMAT, "bad_tensor",
				"%s: tensor \"%s\" has shape [%s], expected [%" PRId64 ", %" PRId64
				"]",
				what, p->name, got, p->shape[0], p->shape[1]);
	}
	/* converted in a staging buffer, then uploaded (in place on the CPU) */
	float *h = ft_dev_map(be, p->data, p->n * sizeof(float), false);
	if (!h)
		return ft_failf(err, FT_ENOMEM, NULL, "%s: out of memory for tensor \"%s\"", what,
				p->name);
	enum ft_rc rc = ft_st_to_f32(t, h, err);
	ft_dev_unmap(be, p->data, h, p->n * sizeof(float), rc == FT_OK);
	if (rc)
		ft_err_prefixf(err, "%s: ", what);
	return rc;
}

static void linear_weight_name(char *buf, size_t sz, int l, enum ft_linear k)
{
	snprintf(buf, sz, "model.layers.%d.%s.%s.weight", l, ft_linear_module(k),
		 ft_linear_name(k));
}

/* The NF4 weights of every decoder linear: read (4-bit in the folder) or
 * quantised at load. */
static enum ft_rc load_nf4(struct ft_model *m, const struct ft_st_set *set, const char *dir,
			   bool double_quant, struct ft_err *err)
{
	const struct ft_model_config *c = &m->cfg;
	size_t nw = (size_t)c->num_layers * FT_LIN_COUNT, maxn = 0;
	bool *nested = calloc(nw, sizeof(bool)), *pre = calloc(nw, sizeof(bool));
	struct ft_nf4_state *st = calloc(nw, sizeof(*st));
	float *tmp = NULL;
	enum ft_rc rc = FT_OK;
	char name[160];
	if (!nested || !pre || !st) {
		rc = ft_failf(err, FT_ENOMEM, NULL, "out of memory");
		goto free_all;
	}
	for (size_t i = 0; i < nw && !rc; i++) {
		enum ft_linear k = (enum ft_linear)(i % FT_LIN_COUNT);
		int in, out;
		ft_model_linear_dims(c, k, &in, &out);
		linear_weight_name(name, sizeof name, (int)(i / FT_LIN_COUNT), k);
		maxn = FT_MAX(maxn, (size_t)in * out);
		if (ft_nf4_st_has(set, name)) {
			pre[i] = true;
			rc = ft_nf4_st_state(set, name, out, in, &st[i], err);
			nested[i] = st[i].nested;
			continue;
		}
		const struct ft_st_tensor *t = ft_st_set_find(set, name);
		if (!t) {
			rc = ft_failf(err, FT_EFORMAT, "missing_tensor",
				      "model folder \"%s\" has no tensor \"%s\"", dir, name);
			break;
		}
		if (t->ndim != 2 || t->shape[0] != out || t->shape[1] != in)
			rc = ft_failf(err, FT_EFORMAT, "bad_tensor",
				      "tensor \"%s\" must have shape [%d, %d]", name, out, in);
		nested[i] = double_quant;
	}
	if (rc || (rc = ft_model_nf4_alloc(m, nested, err)))
		goto prefix;
	for (size_t i = 0; i < nw && !rc; i++) {
		enum ft_linear k = (enum ft_linear)(i % FT_LIN_COUNT);
		struct ft_nf4 *q = m->layers[i / FT_LIN_COUNT].q[k], hq;
		linear_weight_name(name, sizeof name, (int)(i / FT_LIN_COUNT), k);
		/* read or quantised into a host view of the weight, then uploaded */
		if ((rc = ft_model_nf4_map(m, q, &hq, false, err)))
			break;
		if (pre[i]) {
			rc = ft_nf4_st_read(set, name, &st[i], &hq, err);
			ft_model_nf4_unmap(m, q, &hq, rc == FT_OK);
			continue;
		}
		if (!tmp && !(tmp = malloc(maxn * sizeof(float)))) {
			ft_model_nf4_unmap(m, q, &hq, false);
			rc = ft_failf(err, FT_ENOMEM, NULL, "out of memory for one weight");
			break;
		}
		const struct ft_st_tensor *t = ft_st_set_find(set, name);
		hq.src_dtype = (int)t->dtype;
		if (!(rc = ft_st_to_f32(t, tmp, err)))
			rc = ft_nf4_quantize(&hq, tmp, err);
		ft_model_nf4_unmap(m, q, &hq, rc == FT_OK);
		if (rc)
			ft_err_prefixf(err, "tensor \"%s\": ", name);
	}
prefix:
	if (rc)
		ft_err_prefixf(err, "%s: ", dir);
free_all:
	free(tmp);
	free(st);
	free(pre);
	free(nested);
	return rc;
}

static enum ft_rc load_dir(const char *model_dir, const struct ft_backend *be, bool force_nf4,
			   bool double_quant, struct ft_model **out, struct ft_err *err)
{
	struct ft_model_config cfg;
	enum ft_rc rc = ft_model_config_load(model_dir, &cfg, err);
	if (rc)
		return rc;
	struct ft_st_set *set = NULL;
	rc = ft_st_set_open(model_dir, &set, err);
	if (rc)
		return rc;
	struct ft_model *m = NULL;
	bool nf4 = force_nf4;
	for (int i = 0; !nf4 && i < cfg.num_layers * FT_LIN_COUNT; i++) {
		char name[160];
		linear_weight_name(name, sizeof name, i / FT_LIN_COUNT,
				   (enum ft_linear)(i % FT_LIN_COUNT));
		nf4 = ft_nf4_st_has(set, name);
	}
	if (nf4 && (!be->matmul_nf4_fwd || !be->matmul_nf4_bwd_input)) {
		rc = ft_failf(err, FT_EINVAL, "unsupported",
			      "the %s backend has no NF4 matmul: 4-bit (QLoRA) bases run on the "
			      "CPU backend",
			      be->name);
		goto close_set;
	}
	rc = ft_model_create(&cfg, be, nf4, &m, err);
	if (rc)
		goto close_set;
	for (size_t i = 0; i < m->n_params; i++) {
		struct ft_param *p = &m->params[i];
		const struct ft_st_tensor *t = ft_st_set_find(set, p->name);
		if (!t) {
			rc = ft_failf(err, FT_EFORMAT, "missing_tensor",
				      "model folder \"%s\" has no tensor \"%s\"", model_dir,
				      p->name);
			ft_err_hintf(err, "is it a Llama, Mistral or Qwen2 model in the Hugging "
					  "Face layout?");
			goto free_model;
		}
		rc = load_tensor(be, t, p, model_dir, err);
		if (rc)
			goto free_model;
	}
	if (nf4 && (rc = load_nf4(m, set, model_dir, double_quant, err)))
		goto free_model;
	ft_st_set_close(set);
	*out = m;
	return FT_OK;
free_model:
	ft_model_free(m);
close_set:
	ft_st_set_close(set);
	return rc;
}

enum ft_rc ft_model_load(const char *model_dir, const struct ft_backend *be, struct ft_model **out,
			 struct ft_err *err)
{
	return load_dir(model_dir, be, false, true, out, err);
}

enum ft_rc ft_model_load_nf4(const char *model_dir, const struct ft_backend *be, bool double_quant,
			     struct ft_model **out, struct ft_err *err)
{
	return load_dir(model_dir, be, true, double_quant, out, err);
}

/* ---- PEFT adapters ---- */

static enum ft_rc refuse_if(const json_t *cfg, const char *key, const char *why, struct ft_err *err)
{
	json_t *v = json_object_get(cfg, key);
	bool set = v && !json_is_null(v) && !json_is_false(v) &&
		   !(json_is_object(v) && json_object_size(v) == 0) &&
		   !(json_is_array(v) && json_array_size(v) == 0);
	if (!set)
		return FT_OK;
	ft_failf(err, FT_EINVAL, "unsupported_adapter", "\"%s\" is set: %s", key, why);
	ft_err_param(err, key);
	return FT_EINVAL;
}

enum ft_rc ft_model_lora_load_peft(struct ft_model *m, const char *dir, struct ft_err *err)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/adapter_config.json", dir);
	struct ft_buf text;
	ft_buf_init(&text, 1 << 20);
	enum ft_rc rc = ft_read_file(path, &text, err);
	if (rc)
		goto release_text;
	json_t *cfg = ft_json_parse(text.ptr, text.len, err);
	if (!cfg) {
		ft_err_prefixf(err, "%s: ", path);
		rc = FT_EFORMAT;
		goto release_text;
	}
	const char *ptype = "LORA";
	long long r = 0;
	double alpha = 0, dropout = 0;
	bool rslora = false;
	if ((rc = ft_json_get_str(cfg, "peft_type", 0, &ptype, err)) ||
	    (rc = ft_json_get_int(cfg, "r", FT_JSON_REQUIRED, 1, 4096, &r, err)) ||
	    (rc = ft_json_get_num(cfg, "lora_alpha", FT_JSON_REQUIRED, -1e9, 1e9, &alpha, err)) ||
	    (rc = ft_json_get_num(cfg, "lora_dropout", FT_JSON_NULL_OK, 0, 0.999, &dropout, err)) ||
	    (rc = ft_json_get_bool(cfg, "use_rslora", FT_JSON_NULL_OK, &rslora, err)))
		goto prefix;
	if (strcmp(ptype, "LORA") != 0) {
		rc = ft_failf(err, FT_EINVAL, "unsupported_adapter",
			      "\"peft_type\" must be \"LORA\" (got \"%s\")", ptype);
		goto prefix;
	}
	if ((rc = refuse_if(cfg, "use_dora", "DoRA adapters are not supported", err)) ||
	    (rc = refuse_if(cfg, "lora_bias", "LoRA biases are not supported", err)) ||
	    (rc = refuse_if(cfg, "rank_pattern", "per-module ranks are not supported", err)) ||
	    (rc = refuse_if(cfg, "alpha_pattern", "per-module alphas are not supported", err)) ||
	    (rc = refuse_if(cfg, "layers_to_transform",
			    "adapters on some layers only are not "
			    "supported",
			    err)) ||
	    (rc = refuse_if(cfg, "modules_to_save", "extra trained modules are not supported",
			    err)) ||
	    (rc = refuse_if(cfg, "fan_in_fan_out", "Conv1D layouts are not supported", err)))
		goto prefix;

	snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
	struct ft_st_file *f = NULL;
	rc = ft_st_open(path, &f, err);
	if (rc)
		goto free_cfg;
	/* targets: the linears of layer 0 that have a lora_A tensor */
	struct ft_lora_config lc = { 0, (int)r, alpha, dropout, rslora };
	for (int k = 0; k < FT_LIN_COUNT; k++) {
		char name[160];
		snprintf(name, sizeof name, "base_model.model.model.layers.0.%s.%s.lora_A.weight",
			 k <= FT_LIN_O ? "self_attn" : "mlp", ft_linear_name((enum ft_linear)k));
		if (ft_st_find(f, name))
			lc.targets |= 1u << k;
	}
	if (!lc.targets) {
		rc = ft_failf(
			err, FT_EFORMAT, "bad_adapter",
			"%s has no LoRA tensors for layer 0 "
			"(\"base_model.model.model.layers.0.<module>.<linear>.lora_A.weight\")",
			path);
		goto close_file;
	}
	rc = ft_model_lora_add(m, &lc, err);
	if (rc)
		goto close_file;
	for (size_t i = 0; i < m->n_lora_params; i++) {
		struct ft_param *p = &m->lora_params[i];
		const struct ft_st_tensor *t = ft_st_find(f, p->name);
		if (!t) {
			rc = ft_failf(err, FT_EFORMAT, "missing_tensor",
				      "%s has no tensor \"%s\" (adapters must cover the same "
				      "linears in every layer)",
				      path, p->name);
			goto close_file;
		}
		rc = load_tensor(m->be, t, p, path, err);
		if (rc)
			goto close_file;
	}
	if (ft_st_count(f) != m->n_lora_params) {
		rc = ft_failf(err, FT_EFORMAT, "bad_adapter",
			      "%s has %zu tensors, expected %zu for r=%lld on these linears", path,
			      ft_st_count(f), m->n_lora_params, r);
		goto close_file;
	}
close_file:
	ft_st_close(f);
	goto free_cfg;
prefix:
	ft_err_prefixf(err, "%s/adapter_config.json: ", dir);
free_cfg:
	json_decref(cfg);
release_text:
	ft_buf_release(&text);
	return rc;
}

/* The writer reads the tensors when it writes: off the host, they are
 * downloaded first into one staging block (the whole set). */
static enum ft_rc write_params(const struct ft_backend *be, const struct ft_param *ps, size_t n,
			       const char *path, struct ft_err *err)
{
	size_t total = 0;
	for (size_t i = 0; i < n; i++)
		total += ps[i].n;
	float *stage = NULL;
	if (!be->host_memory && !(stage = malloc((total ? total : 1) * sizeof(float))))
		return ft_failf(err, FT_ENOMEM, NULL,
				"out of memory for a host copy of %zu parameters to write", total);
	struct ft_st_writer *w = ft_st_writer_new();
	enum ft_rc rc = FT_OK;
	for (size_t i = 0, off = 0; i < n && !rc; off += ps[i].n, i++) {
		const float *data = ps[i].data;
		if (stage) {
			be->download(stage + off, data, ps[i].n * sizeof(float));
			data = stage + off;
		}
		rc = ft_st_writer_add(w, ps[i].name, FT_DTYPE_F32, ps[i].ndim, ps[i].shape, data,
				      err);
	}
	if (!rc)
		rc = ft_st_writer_meta(w, "format", "pt", err);
	if (!rc)
		rc = ft_st_writer_write(w, path, err);
	ft_st_writer_free(w);
	free(stage);
	return rc;
}

enum ft_rc ft_model_lora_save_peft(struct ft_model *m, const char *dir, const char *base_model,
				   struct ft_err *err)
{
	if (!m->has_lora)
		return ft_failf(err, FT_EINVAL, NULL, "the model has no LoRA adapters to save");
	enum ft_rc rc = ft_mkdir_p(dir, err);
	if (rc)
		return rc;
	json_t *targets = json_array();
	for (int k = 0; k < FT_LIN_COUNT; k++)
		if (m->lora.targets & (1u << k))
			json_array_append_new(targets,
					      json_string(ft_linear_name((enum ft_linear)k)));
	/* the fields peft's LoraConfig writes that matter for loading */
	json_t *cfg = json_object();
	json_object_set_new(cfg, "peft_type", json_string("LORA"));
	json_object_set_new(cfg, "task_type", json_string("CAUSAL_LM"));
	json_object_set_new(cfg, "base_model_name_or_path",
			    base_model ? json_string(base_model) : json_null());
	json_object_set_new(cfg, "inference_mode", json_true());
	json_object_set_new(cfg, "init_lora_weights", json_true());
	json_object_set_new(cfg, "r", json_integer(m->lora.r));
	json_object_set_new(cfg, "lora_alpha",
			    m->lora.alpha == floor(m->lora.alpha) && fabs(m->lora.alpha) < 1e9
				    ? json_integer((json_int_t)m->lora.alpha)
				    : json_real(m->lora.alpha));
	json_object_set_new(cfg, "lora_dropout", json_real(m->lora.dropout));
	json_object_set_new(cfg, "target_modules", targets);
	json_object_set_new(cfg, "use_rslora", json_boolean(m->lora.rslora));
	json_object_set_new(cfg, "use_dora", json_false());
	json_object_set_new(cfg, "bias", json_string("none"));
	json_object_set_new(cfg, "fan_in_fan_out", json_false());
	json_object_set_new(cfg, "modules_to_save", json_null());
	json_object_set_new(cfg, "layers_to_transform", json_null());
	json_object_set_new(cfg, "layers_pattern", json_null());
	json_object_set_new(cfg, "rank_pattern", json_object());
	json_object_set_new(cfg, "alpha_pattern", json_object());
	json_object_set_new(cfg, "revision", json_null());
	if (!cfg)
		return ft_failf(err, FT_EINTERNAL, NULL, "building adapter_config.json failed");
	char path[4096];
	snprintf(path, sizeof path, "%s/adapter_config.json", dir);
	char *s = json_dumps(cfg, JSON_INDENT(2) | JSON_SORT_KEYS);
	json_decref(cfg);
	if (!s)
		return ft_failf(err, FT_ENOMEM, NULL, "out of memory");
	rc = ft_write_file_atomic(path, s, strlen(s), err);
	free(s);
	if (rc)
		return rc;
	snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
	return write_params(m->be, m->lora_params, m->n_lora_params, path, err);
}

/* Tokenizer and generation files copied from the base into a merged folder. */
static const char *const side_files[] = {
	"tokenizer.json",	  "tokenizer_config.json", "special_tokens_map.json",
	"generation_config.json", "tokenizer.model",	   "chat_template.jinja",
};

/* A config.json with "quantization_config" (a bitsandbytes 4-bit folder)
 * must not go with fp32 weights: transformers would load them as 4-bit. */
static bool quantized_config(const char *path)
{
	struct ft_buf b;
	struct ft_err e;
	ft_buf_init(&b, 1 << 24);
	ft_err_clear(&e);
	bool q = ft_read_file(path, &b, &e) == FT_OK &&
		 strstr(ft_buf_str(&b), "\"quantization_config\"") != NULL;
	ft_buf_release(&b);
	return q;
}

enum ft_rc ft_model_save_hf(struct ft_model *m, const char *dir, const char *base_dir,
			    struct ft_err *err)
{
	/* an NF4 base is written as its fp32 dequantisation */
	enum ft_rc rc = ft_model_nf4_to_f32(m, err);
	if (rc)
		return rc;
	rc = ft_mkdir_p(dir, err);
	if (rc)
		return rc;
	char src[4096], dst[4096];
	snprintf(dst, sizeof dst, "%s/config.json", dir);
	snprintf(src, sizeof src, "%s/config.json", base_dir ? base_dir : "");
	if (base_dir && ft_file_exists(src) && !quantized_config(src)) {
		rc = ft_copy_file(src, dst, err);
	} else {
		struct ft_buf b;
		ft_buf_init(&b, 1 << 20);
		rc = ft_model_config_to_json(&m->cfg, &b);
		if (!rc)
			rc = ft_write_file_atomic(dst, b.ptr, b.len, err);
		ft_buf_release(&b);
	}
	if (rc)
		return rc;
	for (size_t i = 0; base_dir && i < FT_ARRAY_LEN(side_files); i++) {
		snprintf(src, sizeof src, "%s/%s", base_dir, side_files[i]);
		snprintf(dst, sizeof dst, "%s/%s", dir, side_files[i]);
		if (ft_file_exists(src) && (rc = ft_copy_file(src, dst, err)))
			return rc;
	}
	snprintf(dst, sizeof dst, "%s/model.safetensors", dir);
	/* a tied model's table has no lm_head.weight, as transformers saves it */
	return write_params(m->be, m->params, m->n_params, dst, err);
}
