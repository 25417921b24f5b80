/*
 * model_io.c - the model's files: loading a Hugging Face folder, loading
 * and writing PEFT LoRA adapter folders, and writing a merged Hugging Face
 * folder.
 *
 * Hugging Face folder: config.json + model.safetensors (or the sharded
 * index), tensor names as in transformers ("model.layers.0.mlp.up_proj.weight").
 * A GGUF file is read in place of a folder (ft/gguf.h: its metadata as the
 * config, its tensors dequantised under the same names); a merged model of
 * a GGUF base gets tokenizer files made from the GGUF's metadata.
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
 * lora_bias, rank/alpha patterns, modules_to_save) are refused with an error
 * naming the field. layers_to_transform (the layer indices adapted; with
 * layers_pattern null or "layers") is read and written as peft does.
 */
#include "model_int.h"
#include "ft/fs.h"
#include "ft/gguf.h"
#include "ft/safetensors.h"

#include <math.h>

/* A tensor's shape must be the parameter's. */
static enum ft_rc check_shape(int ndim, const int64_t *shape, const struct ft_param *p,
			      const char *what, struct ft_err *err)
{
	bool ok = ndim == p->ndim && shape[0] == p->shape[0] &&
		  (p->ndim == 1 || shape[1] == p->shape[1]);
	if (ok)
		return FT_OK;
	char got[64] = "";
	for (int d = 0; d < ndim && d < 4; d++) {
		size_t n = strlen(got);
		snprintf(got + n, sizeof(got) - n, "%s%" PRId64, d ? ", " : "", shape[d]);
	}
	if (p->ndim == 1)
		return ft_failf(err, FT_EFORMAT, "bad_tensor",
				"%s: tensor \"%s\" has shape [%s], expected [%" PRId64 "]", what,
				p->name, got, p->shape[0]);
	return ft_failf(err, FT_EFORMAT, "bad_tensor",
			"%s: tensor \"%s\" has shape [%s], expected [%" PRId64 ", %" PRId64 "]",
			what, p->name, got, p->shape[0], p->shape[1]);
}

/* Where a model's weights come from: a Hugging Face folder's safetensors
 * (set), or a GGUF file (its tensors under Hugging Face names, ft/gguf.h). */
struct wsrc {
	const struct ft_st_set *set;
	const struct ft_gguf *gguf;
	const struct ft_model_config *cfg;
	const char *where; /* the folder or file, for messages */
};

/* The named tensor's shape; false when the source has no such tensor. */
static bool src_shape(const struct wsrc *s, const char *name, int *ndim,
		      int64_t shape[FT_ST_MAX_DIMS])
{
	if (s->gguf)
		return ft_gguf_hf_find(s->gguf, name, ndim, shape) != NULL;
	const struct ft_st_tensor *t = ft_st_set_find(s->set, name);
	if (!t)
		return false;
	*ndim = t->ndim;
	memcpy(shape, t->shape, sizeof(int64_t) * FT_ST_MAX_DIMS);
	return true;
}

static enum ft_rc src_to_f32(const struct wsrc *s, const char *name, float *dst, size_t n,
			     struct ft_err *err)
{
	if (s->gguf)
		return ft_gguf_hf_to_f32(s->gguf, s->cfg, name, dst, n, err);
	return ft_st_to_f32(ft_st_set_find(s->set, name), dst, err);
}

/* Convert in a staging buffer, then upload (in place on the CPU). */
static enum ft_rc load_staged(const struct ft_backend *be, struct ft_param *p, const char *what,
			      const struct wsrc *src, const struct ft_st_tensor *t,
			      struct ft_err *err)
{
	float *h = ft_dev_map(be, p->data, p->n * sizeof(float), false);
	if (!h)
		return ft_failf(err, FT_ENOMEM, NULL, "%s: out of memory for tensor \"%s\"", what,
				p->name);
	enum ft_rc rc = src ? src_to_f32(src, p->name, h, p->n, err) : ft_st_to_f32(t, h, err);
	ft_dev_unmap(be, p->data, h, p->n * sizeof(float), rc == FT_OK);
	if (rc)
		ft_err_prefixf(err, "%s: ", what);
	return rc;
}

static enum ft_rc load_tensor(const struct ft_backend *be, const struct ft_st_tensor *t,
			      struct ft_param *p, const char *what, struct ft_err *err)
{
	if (check_shape(t->ndim, t->shape, p, what, err))
		return FT_EFORMAT;
	return load_staged(be, p, what, NULL, t, err);
}

static void linear_weight_name(char *buf, size_t sz, int l, enum ft_linear k)
{
	snprintf(buf, sz, "model.layers.%d.%s.%s.weight", l, ft_linear_module(k),
		 ft_linear_name(k));
}

/* The NF4 weights of every decoder linear: read (4-bit in the folder) or
 * quantised at load. */
static enum ft_rc load_nf4(struct ft_model *m, const struct wsrc *src, bool double_quant,
			   struct ft_err *err)
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
		int in, out, ndim;
		int64_t shape[FT_ST_MAX_DIMS];
		ft_model_linear_dims(c, k, &in, &out);
		linear_weight_name(name, sizeof name, (int)(i / FT_LIN_COUNT), k);
		maxn = FT_MAX(maxn, (size_t)in * out);
		if (src->set && ft_nf4_st_has(src->set, name)) {
			pre[i] = true;
			rc = ft_nf4_st_state(src->set, name, out, in, &st[i], err);
			nested[i] = st[i].nested;
			continue;
		}
		if (!src_shape(src, name, &ndim, shape)) {
			rc = ft_failf(err, FT_EFORMAT, "missing_tensor",
				      "\"%s\" has no tensor \"%s\"", src->where, name);
			break;
		}
		if (ndim != 2 || shape[0] != out || shape[1] != in)
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
			rc = ft_nf4_st_read(src->set, name, &st[i], &hq, err);
			ft_model_nf4_unmap(m, q, &hq, rc == FT_OK);
			continue;
		}
		if (!tmp && !(tmp = malloc(maxn * sizeof(float)))) {
			ft_model_nf4_unmap(m, q, &hq, false);
			rc = ft_failf(err, FT_ENOMEM, NULL, "out of memory for one weight");
			break;
		}
		/* the dtype the weight had (what bitsandbytes records); a GGUF's
		 * dequantised weights are fp32 */
		hq.src_dtype = src->set ? (int)ft_st_set_find(src->set, name)->dtype : FT_DTYPE_F32;
		int in, out;
		ft_model_linear_dims(c, k, &in, &out);
		if (!(rc = src_to_f32(src, name, tmp, (size_t)in * out, err)))
			rc = ft_nf4_quantize(&hq, tmp, err);
		ft_model_nf4_unmap(m, q, &hq, rc == FT_OK);
		if (rc)
			ft_err_prefixf(err, "tensor \"%s\": ", name);
	}
prefix:
	if (rc)
		ft_err_prefixf(err, "%s: ", src->where);
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
	struct wsrc src = { .cfg = &cfg, .where = model_dir };
	struct ft_st_set *set = NULL;
	struct ft_gguf *gguf = NULL;
	bool is_gguf = ft_gguf_path_is_file(model_dir);
	enum ft_rc rc = is_gguf ? ft_gguf_open(model_dir, &gguf, err)
				: ft_model_config_load(model_dir, &cfg, err);
	if (rc)
		return rc;
	rc = is_gguf ? ft_gguf_model_config(gguf, &cfg, err) : ft_st_set_open(model_dir, &set, err);
	if (rc)
		goto close_src;
	src.set = set;
	src.gguf = gguf;
	struct ft_model *m = NULL;
	bool nf4 = force_nf4;
	for (int i = 0; set && !nf4 && i < cfg.num_layers * FT_LIN_COUNT; i++) {
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
		goto close_src;
	}
	rc = ft_model_create(&cfg, be, nf4, &m, err);
	if (rc)
		goto close_src;
	for (size_t i = 0; i < m->n_params; i++) {
		struct ft_param *p = &m->params[i];
		int ndim;
		int64_t shape[FT_ST_MAX_DIMS];
		if (!src_shape(&src, p->name, &ndim, shape)) {
			rc = ft_failf(err, FT_EFORMAT, "missing_tensor",
				      "model %s \"%s\" has no tensor \"%s\"",
				      is_gguf ? "file" : "folder", model_dir, p->name);
			if (!is_gguf)
				ft_err_hintf(err, "is it a Llama, Mistral or Qwen2 model in the "
						  "Hugging Face layout?");
			goto free_model;
		}
		if ((rc = check_shape(ndim, shape, p, model_dir, err)) ||
		    (rc = load_staged(be, p, model_dir, &src, NULL, err)))
			goto free_model;
	}
	if (nf4 && (rc = load_nf4(m, &src, double_quant, err)))
		goto free_model;
	ft_st_set_close(set);
	ft_gguf_close(gguf);
	*out = m;
	return FT_OK;
free_model:
	ft_model_free(m);
close_src:
	ft_st_set_close(set);
	ft_gguf_close(gguf);
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

enum ft_rc ft_peft_config_parse(const char *text, size_t len, struct ft_lora_config *lc,
				struct ft_err *err)
{
	json_t *cfg = ft_json_parse(text, len, err);
	if (!cfg)
		return FT_EFORMAT;
	const char *ptype = "LORA";
	long long r = 0;
	double alpha = 0, dropout = 0;
	bool rslora = false;
	enum ft_rc rc;
	if ((rc = ft_json_get_str(cfg, "peft_type", 0, &ptype, err)) ||
	    (rc = ft_json_get_int(cfg, "r", FT_JSON_REQUIRED, 1, 4096, &r, err)) ||
	    (rc = ft_json_get_num(cfg, "lora_alpha", FT_JSON_REQUIRED, -1e9, 1e9, &alpha, err)) ||
	    (rc = ft_json_get_num(cfg, "lora_dropout", FT_JSON_NULL_OK, 0, 0.999, &dropout, err)) ||
	    (rc = ft_json_get_bool(cfg, "use_rslora", FT_JSON_NULL_OK, &rslora, err)))
		goto done;
	if (strcmp(ptype, "LORA") != 0) {
		rc = ft_failf(err, FT_EINVAL, "unsupported_adapter",
			      "\"peft_type\" must be \"LORA\" (got \"%s\")", ptype);
		goto done;
	}
	if ((rc = refuse_if(cfg, "use_dora", "DoRA adapters are not supported", err)) ||
	    (rc = refuse_if(cfg, "lora_bias", "LoRA biases are not supported", err)) ||
	    (rc = refuse_if(cfg, "rank_pattern", "per-module ranks are not supported", err)) ||
	    (rc = refuse_if(cfg, "alpha_pattern", "per-module alphas are not supported", err)) ||
	    (rc = refuse_if(cfg, "modules_to_save", "extra trained modules are not supported",
			    err)) ||
	    (rc = refuse_if(cfg, "fan_in_fan_out", "Conv1D layouts are not supported", err)))
		goto done;
	*lc = (struct ft_lora_config){
		.targets = 0, .r = (int)r, .alpha = alpha, .dropout = dropout, .rslora = rslora
	};
	if ((rc = ft_lora_layers_parse(json_object_get(cfg, "layers_to_transform"),
				       "layers_to_transform", lc, err)))
		goto done;
	/* peft finds the layer index after a module named layers_pattern
	 * (by default one of its common names): the Llama family's is "layers" */
	json_t *pat = json_object_get(cfg, "layers_pattern");
	if (json_is_array(pat) && json_array_size(pat) == 1)
		pat = json_array_get(pat, 0);
	if (pat && !json_is_null(pat) &&
	    !(json_is_string(pat) && strcmp(json_string_value(pat), "layers") == 0)) {
		rc = ft_failf(err, FT_EINVAL, "unsupported_adapter",
			      "\"layers_pattern\" must be \"layers\" (the decoder's layer list) "
			      "or null");
		ft_err_param(err, "layers_pattern");
	}
done:
	json_decref(cfg);
	return rc;
}

/* Read a PEFT folder into a new adapter (gradients when trainable). */
static enum ft_rc read_peft(struct ft_model *m, const char *dir, bool trainable,
			    struct ft_adapter **out, struct ft_err *err)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/adapter_config.json", dir);
	struct ft_buf text;
	ft_buf_init(&text, 1 << 20);
	struct ft_lora_config lc;
	enum ft_rc rc = ft_read_file(path, &text, err);
	if (!rc && (rc = ft_peft_config_parse(text.ptr, text.len, &lc, err)))
		ft_err_prefixf(err, "%s: ", path);
	ft_buf_release(&text);
	if (rc)
		return rc;

	snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
	struct ft_st_file *f = NULL;
	rc = ft_st_open(path, &f, err);
	if (rc)
		return rc;
	/* targets: the linears of the first adapted layer that have a lora_A tensor */
	int first = 0;
	while (first < m->cfg.num_layers - 1 && !ft_lora_layer(&lc, first))
		first++;
	for (int k = 0; k < FT_LIN_COUNT; k++) {
		char name[160];
		snprintf(name, sizeof name, "base_model.model.model.layers.%d.%s.%s.lora_A.weight",
			 first, k <= FT_LIN_O ? "self_attn" : "mlp",
			 ft_linear_name((enum ft_linear)k));
		if (ft_st_find(f, name))
			lc.targets |= 1u << k;
	}
	if (!lc.targets) {
		rc = ft_failf(err, FT_EFORMAT, "bad_adapter",
			      "%s has no LoRA tensors for layer %d "
			      "(\"base_model.model.model.layers.%d.<module>.<linear>.lora_A."
			      "weight\")",
			      path, first, first);
		goto close_file;
	}
	struct ft_adapter *ad = NULL;
	rc = ft_adapter_new(m, &lc, trainable, &ad, err);
	if (rc)
		goto close_file;
	for (size_t i = 0; i < ad->n_params && !rc; i++) {
		struct ft_param *p = &ad->params[i];
		const struct ft_st_tensor *t = ft_st_find(f, p->name);
		if (!t) {
			rc = ft_failf(err, FT_EFORMAT, "missing_tensor",
				      "%s has no tensor \"%s\" (adapters must cover the same "
				      "linears in every adapted layer)",
				      path, p->name);
			break;
		}
		rc = load_tensor(m->be, t, p, path, err);
	}
	if (!rc && ft_st_count(f) != ad->n_params)
		rc = ft_failf(err, FT_EFORMAT, "bad_adapter",
			      "%s has %zu tensors, expected %zu for r=%d on these linears", path,
			      ft_st_count(f), ad->n_params, lc.r);
	if (rc)
		ft_adapter_free(m->be, ad);
	else
		*out = ad;
close_file:
	ft_st_close(f);
	return rc;
}

enum ft_rc ft_model_lora_load_peft(struct ft_model *m, const char *dir, struct ft_err *err)
{
	if (ft_model_own(m))
		return ft_failf(err, FT_ECONFLICT, NULL, "the model already has LoRA adapters");
	struct ft_adapter *ad;
	enum ft_rc rc = read_peft(m, dir, true, &ad, err);
	if (rc)
		return rc;
	if ((rc = ft_model_adapter_put(m, 0, ad, err))) {
		ft_adapter_free(m->be, ad);
		return rc;
	}
	m->act_n = 0; /* re-plan activations: LoRA adds some */
	return FT_OK;
}

enum ft_rc ft_model_adapter_load_peft(struct ft_model *m, const char *dir, int *slot,
				      struct ft_err *err)
{
	struct ft_adapter *ad;
	enum ft_rc rc = read_peft(m, dir, false, &ad, err);
	if (rc)
		return rc;
	if (m->packed && (rc = ft_adapter_pack(m, ad, err))) {
		ft_adapter_free(m->be, ad);
		return rc;
	}
	int s = 1;
	while (s < m->n_ads && m->ads[s])
		s++;
	if ((rc = ft_model_adapter_put(m, s, ad, err))) {
		ft_adapter_free(m->be, ad);
		return rc;
	}
	*slot = s;
	return FT_OK;
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
	const struct ft_adapter *ad = ft_model_own(m);
	if (!ad)
		return ft_failf(err, FT_EINVAL, NULL, "the model has no LoRA adapters to save");
	const struct ft_lora_config *lc = &ad->cfg;
	enum ft_rc rc = ft_mkdir_p(dir, err);
	if (rc)
		return rc;
	json_t *targets = json_array();
	for (int k = 0; k < FT_LIN_COUNT; k++)
		if (lc->targets & (1u << k))
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
	json_object_set_new(cfg, "r", json_integer(lc->r));
	json_object_set_new(cfg, "lora_alpha",
			    lc->alpha == floor(lc->alpha) && fabs(lc->alpha) < 1e9
				    ? json_integer((json_int_t)lc->alpha)
				    : json_real(lc->alpha));
	json_object_set_new(cfg, "lora_dropout", json_real(lc->dropout));
	json_object_set_new(cfg, "target_modules", targets);
	json_object_set_new(cfg, "use_rslora", json_boolean(lc->rslora));
	json_object_set_new(cfg, "use_dora", json_false());
	json_object_set_new(cfg, "bias", json_string("none"));
	json_object_set_new(cfg, "fan_in_fan_out", json_false());
	json_object_set_new(cfg, "modules_to_save", json_null());
	json_object_set_new(cfg, "layers_to_transform", ft_lora_layers_json(lc));
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
	return write_params(m->be, ad->params, ad->n_params, path, err);
}

/* Tokenizer and generation files copied from the base into a merged folder. */
static const char *const side_files[] = {
	"tokenizer.json",	  "tokenizer_config.json", "special_tokens_map.json",
	"generation_config.json", "tokenizer.model",	   "chat_template.jinja",
};

/* A config.json with "quantization_config" (a bitsandbytes 4-bit folder)
 * must not go with fp32 weights: transformers would load them as 4-bit. */
static bool quantized_config(const json_t *c)
{
	return json_object_get(c, "quantization_config") != NULL;
}

/* transformers' name of a dtype we write ("torch_dtype" / "dtype"). */
static const char *torch_dtype_name(enum ft_dtype d)
{
	return d == FT_DTYPE_BF16 ? "bfloat16" : d == FT_DTYPE_F16 ? "float16" : "float32";
}

/* config.json: the base's (kept field for field), or ours when there is none
 * or it describes a quantised folder; either way saying the dtype of the
 * weights written, since transformers loads a folder in the dtype its config
 * names when no dtype argument is given (a bf16 base's "torch_dtype" kept
 * over F32 weights rounds them on load). */
static enum ft_rc write_config(const struct ft_model *m, const char *dst, const char *base_dir,
			       enum ft_dtype dtype, struct ft_err *err)
{
	char src[4096];
	json_t *c = NULL;
	snprintf(src, sizeof src, "%s/config.json", base_dir ? base_dir : "");
	if (base_dir && ft_file_exists(src)) {
		json_error_t je;
		c = json_load_file(src, JSON_REJECT_DUPLICATES, &je);
		if (!c)
			return ft_failf(err, FT_EFORMAT, NULL, "%s line %d: %s", src, je.line,
					je.text);
		if (quantized_config(c)) {
			json_decref(c);
			c = NULL;
		}
	}
	if (!c) {
		struct ft_buf b;
		ft_buf_init(&b, 1 << 20);
		if (ft_model_config_to_json(&m->cfg, &b) == FT_OK)
			c = json_loadb(b.ptr, b.len, 0, NULL);
		ft_buf_release(&b);
		if (!c)
			return ft_failf(err, FT_EINTERNAL, NULL, "cannot write config.json");
	}
	json_object_set_new(c, "torch_dtype", json_string(torch_dtype_name(dtype)));
	if (json_object_get(c, "dtype")) /* transformers 5's spelling, when the base has it */
		json_object_set_new(c, "dtype", json_string(torch_dtype_name(dtype)));
	char *text = json_dumps(c, JSON_INDENT(2) | JSON_REAL_PRECISION(17));
	json_decref(c);
	if (!text)
		return ft_failf(err, FT_ENOMEM, NULL, "out of memory");
	size_t n = strlen(text);
	text[n] = '\n'; /* over the terminator: written by length */
	enum ft_rc rc = ft_write_file_atomic(dst, text, n + 1, err);
	free(text);
	return rc;
}

/* generation_config.json for a base that has none: the token ids of
 * config.json, as transformers' GenerationConfig.from_model_config takes
 * them. */
static enum ft_rc write_generation_config(const struct ft_model *m, const char *dst,
					  struct ft_err *err)
{
	const struct ft_model_config *c = &m->cfg;
	json_t *g = json_object();
	if (c->bos_token_id >= 0)
		json_object_set_new(g, "bos_token_id", json_integer(c->bos_token_id));
	if (c->n_eos == 1) {
		json_object_set_new(g, "eos_token_id", json_integer(c->eos_token_ids[0]));
	} else if (c->n_eos > 1) {
		json_t *a = json_array();
		for (int i = 0; i < c->n_eos; i++)
			json_array_append_new(a, json_integer(c->eos_token_ids[i]));
		json_object_set_new(g, "eos_token_id", a);
	}
	if (c->pad_token_id >= 0)
		json_object_set_new(g, "pad_token_id", json_integer(c->pad_token_id));
	char *text = json_dumps(g, JSON_INDENT(2));
	json_decref(g);
	if (!text)
		return ft_failf(err, FT_ENOMEM, NULL, "out of memory");
	enum ft_rc rc = ft_write_file_atomic(dst, text, strlen(text), err);
	free(text);
	return rc;
}

/* One shard: params [first, last) converted to dtype (host copies only when
 * needed: off the host, or another dtype than fp32) and written. */
static enum ft_rc write_shard(const struct ft_backend *be, const struct ft_param *ps, size_t first,
			      size_t last, enum ft_dtype dtype, const char *path,
			      struct ft_err *err)
{
	size_t esz = ft_dtype_size(dtype), nf = 0;
	for (size_t i = first; i < last; i++)
		nf += ps[i].n;
	bool direct = be->host_memory && dtype == FT_DTYPE_F32;
	float *stage = NULL;
	uint8_t *out = NULL;
	if (!direct && !be->host_memory) {
		/* one tensor at a time through the staging buffer */
		size_t big = 1;
		for (size_t i = first; i < last; i++)
			big = FT_MAX(big, ps[i].n);
		stage = malloc(big * sizeof(float));
	}
	if (!direct)
		out = malloc(FT_MAX(nf, (size_t)1) * esz);
	if ((!direct && !out) || (!direct && !be->host_memory && !stage)) {
		free(stage);
		free(out);
		return ft_failf(err, FT_ENOMEM, NULL,
				"out of memory for a host copy of %zu parameters to write", nf);
	}
	struct ft_st_writer *w = ft_st_writer_new();
	enum ft_rc rc = FT_OK;
	for (size_t i = first, off = 0; i < last && !rc; off += ps[i].n, i++) {
		const void *data = ps[i].data;
		if (!direct) {
			const float *src = ps[i].data;
			if (stage) {
				be->download(stage, ps[i].data, ps[i].n * sizeof(float));
				src = stage;
			}
			rc = ft_st_from_f32(src, ps[i].n, dtype, out + off * esz, err);
			data = out + off * esz;
		}
		if (!rc)
			rc = ft_st_writer_add(w, ps[i].name, dtype, ps[i].ndim, ps[i].shape, data,
					      err);
	}
	if (!rc)
		rc = ft_st_writer_meta(w, "format", "pt", err);
	if (!rc)
		rc = ft_st_writer_write(w, path, err);
	ft_st_writer_free(w);
	free(stage);
	free(out);
	return rc;
}

/* Shards as transformers' save_pretrained cuts them: tensors in table
 * order, a new file when the next tensor would take this one past the
 * limit (a tensor larger than the limit gets a file of its own); one file
 * is "model.safetensors", several are "model-0000i-of-0000n.safetensors"
 * with "model.safetensors.index.json" ({"metadata": {"total_size"},
 * "weight_map": {tensor: file}}). */
static enum ft_rc write_weights(const struct ft_model *m, const char *dir,
				const struct ft_hf_save_opts *o, struct ft_err *err)
{
	const struct ft_param *ps = m->params;
	size_t n = m->n_params, esz = ft_dtype_size(o->dtype);
	size_t *start = ft_xcalloc(n + 2, sizeof(size_t));
	size_t nshards = 0;
	uint64_t cur = 0, total = 0;
	for (size_t i = 0; i < n; i++) {
		uint64_t b = (uint64_t)ps[i].n * esz;
		if (i == 0 || (o->max_shard_bytes && cur > 0 && cur + b > o->max_shard_bytes)) {
			start[nshards++] = i;
			cur = 0;
		}
		cur += b;
		total += b;
	}
	start[nshards] = n;
	enum ft_rc rc = FT_OK;
	json_t *map = json_object();
	uint64_t done = 0;
	for (size_t s = 0; s < nshards && !rc; s++) {
		char name[64], path[4200];
		if (nshards == 1)
			snprintf(name, sizeof name, "model.safetensors");
		else
			snprintf(name, sizeof name, "model-%05zu-of-%05zu.safetensors", s + 1,
				 nshards);
		snprintf(path, sizeof path, "%s/%s", dir, name);
		rc = write_shard(m->be, ps, start[s], start[s + 1], o->dtype, path, err);
		for (size_t i = start[s]; i < start[s + 1]; i++) {
			json_object_set_new(map, ps[i].name, json_string(name));
			done += (uint64_t)ps[i].n * esz;
		}
		if (!rc && o->progress)
			o->progress(o->ud, name, done, total);
	}
	if (!rc && nshards > 1) {
		char path[4200];
		json_t *idx = json_pack("{s:{s:I}, s:o}", "metadata", "total_size",
					(json_int_t)total, "weight_map", map);
		map = NULL;
		char *text = json_dumps(idx, JSON_INDENT(2) | JSON_SORT_KEYS);
		json_decref(idx);
		snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
		rc = text ? ft_write_file_atomic(path, text, strlen(text), err)
			  : ft_failf(err, FT_ENOMEM, NULL, "out of memory");
		free(text);
	}
	json_decref(map);
	free(start);
	return rc;
}

enum ft_rc ft_model_save_hf_opts(struct ft_model *m, const char *dir, const char *base_dir,
				 const struct ft_hf_save_opts *o, struct ft_err *err)
{
	if (o->dtype != FT_DTYPE_F32 && o->dtype != FT_DTYPE_F16 && o->dtype != FT_DTYPE_BF16)
		return ft_failf(err, FT_EINVAL, "invalid_dtype",
				"a model folder is written in F32, F16 or BF16 (got %s)",
				ft_dtype_name(o->dtype));
	/* an NF4 base is written as its fp32 dequantisation */
	enum ft_rc rc = ft_model_nf4_to_f32(m, err);
	if (rc)
		return rc;
	rc = ft_mkdir_p(dir, err);
	if (rc)
		return rc;
	char src[4096], dst[4096];
	if (base_dir && ft_gguf_path_is_file(base_dir)) {
		/* a GGUF base: its tokenizer files are made from its metadata */
		struct ft_gguf *g;
		if ((rc = ft_gguf_open(base_dir, &g, err)))
			return rc;
		rc = ft_gguf_write_side_files(g, dir, err);
		ft_gguf_close(g);
		if (rc)
			return rc;
		base_dir = NULL;
	}
	snprintf(dst, sizeof dst, "%s/config.json", dir);
	if ((rc = write_config(m, dst, base_dir, o->dtype, err)))
		return rc;
	for (size_t i = 0; base_dir && i < FT_ARRAY_LEN(side_files); i++) {
		snprintf(src, sizeof src, "%s/%s", base_dir, side_files[i]);
		snprintf(dst, sizeof dst, "%s/%s", dir, side_files[i]);
		if (ft_file_exists(src) && (rc = ft_copy_file(src, dst, err)))
			return rc;
	}
	snprintf(dst, sizeof dst, "%s/generation_config.json", dir);
	if (!ft_file_exists(dst) && (rc = write_generation_config(m, dst, err)))
		return rc;
	/* a tied model's table has no lm_head.weight, as transformers saves it */
	return write_weights(m, dir, o, err);
}

enum ft_rc ft_model_save_hf(struct ft_model *m, const char *dir, const char *base_dir,
			    struct ft_err *err)
{
	const struct ft_hf_save_opts o = { .dtype = FT_DTYPE_F32 };
	return ft_model_save_hf_opts(m, dir, base_dir, &o, err);
}
