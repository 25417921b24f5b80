/*
 * model_gguf.c - the model written as llama.cpp reads it: a whole model as
 * a GGUF (ft_model_save_gguf) and the model's own LoRA adapter as a GGUF
 * LoRA (ft_model_lora_save_gguf). The file layout, the key and tensor-name
 * tables and the quantisers are formats/ (ft/gguf.h); this file maps the
 * model's tensor table onto them.
 *
 * A model file (what llama.cpp's convert_hf_to_gguf.py writes for the same
 * Hugging Face folder, then llama-quantize for the quantised types):
 *
 *   general.architecture   "llama" (Llama, Mistral) or "qwen2"
 *   general.type, .name, .file_type, .quantization_version (2)
 *   {arch}.*               the config (context_length = max_position_embeddings,
 *                          key/value_length = rope.dimension_count = head_dim,
 *                          rope.freq_base, rms epsilon, vocab_size); linear
 *                          rope scaling as rope.scaling.type/factor, Llama 3
 *                          scaling as the tensor rope_freqs.weight
 *   tokenizer.*            ft_gguf_tokenizer_put (the base's tokenizer and
 *                          chat template)
 *   tensors                every tensor of the model's table under its GGUF
 *                          name (lm_head absent when tied), q_proj / k_proj
 *                          rows (and biases) in llama.cpp's rotary order for
 *                          "llama"; types per ft_gguf_ftype_tensor_type.
 * Mistral's sliding window has no key in llama.cpp's "llama" architecture
 * and is not written (as the converter does): beyond the window llama.cpp
 * attends to the whole context.
 *
 * A LoRA file (convert_lora_to_gguf.py's layout):
 *
 *   general.architecture, general.type = "adapter", adapter.type = "lora",
 *   adapter.lora.alpha     scale * r: llama.cpp scales by alpha / r, so an
 *                          rsLoRA adapter (alpha / sqrt(r)) is written as
 *                          alpha * sqrt(r)
 *   blk.N.<linear>.weight.lora_a  A [r, in] (ne = {in, r})
 *   blk.N.<linear>.weight.lora_b  B [out, r] (ne = {r, out}); for q / k of
 *                          "llama" the rows of B in rotary order, since
 *                          B A is then the permuted delta
 *
 * Memory: one tensor at a time (a host copy in fp32, then its bytes).
 */
#include <math.h>

#include "model_int.h"
#include "ft/gguf.h"
#include "ft/tokenizer.h"

static const struct {
	enum ft_arch arch;
	const char *gguf;
	bool permute_qk;
} archs[] = {
	{ FT_ARCH_LLAMA, "llama", true },
	{ FT_ARCH_MISTRAL, "llama", true },
	{ FT_ARCH_QWEN2, "qwen2", false },
};

static const char *gguf_arch(const struct ft_model_config *c, bool *permute)
{
	for (size_t i = 0; i < FT_ARRAY_LEN(archs); i++)
		if (archs[i].arch == c->arch) {
			*permute = archs[i].permute_qk;
			return archs[i].gguf;
		}
	return NULL;
}

/* Rows of one head: stored row 2i + j is Hugging Face row j * half + i
 * (ft/gguf.h, the inverse of ft_gguf_hf_to_f32). */
static void permute_rows(float *x, uint64_t rows, uint64_t cols, uint64_t heads, float *tmp)
{
	uint64_t hd = rows / heads, half = hd / 2;
	for (uint64_t h = 0; h < heads; h++) {
		float *head = x + h * hd * cols;
		memcpy(tmp, head, hd * cols * sizeof(float));
		for (uint64_t i = 0; i < half; i++)
			for (uint64_t j = 0; j < 2; j++)
				memcpy(head + (2 * i + j) * cols, tmp + (j * half + i) * cols,
				       cols * sizeof(float));
	}
}

/* One tensor to write: where its fp32 values are and how they are stored. */
struct fill {
	const struct ft_model *m;
	const float *data; /* backend memory; NULL: host values in host */
	const float *host;
	uint64_t rows, cols; /* PyTorch shape (cols 1 for 1-D) */
	uint64_t heads; /* > 0: permute rows in heads */
	uint32_t type;
};

static enum ft_rc fill_tensor(void *ctx, void *dst, uint64_t nbytes, struct ft_err *err)
{
	const struct fill *f = ctx;
	uint64_t n = f->rows * f->cols;
	FT_UNUSED(nbytes);
	float *tmp = malloc((size_t)n * sizeof(float) + 1);
	float *perm = f->heads ? malloc((size_t)(n / f->heads) * sizeof(float) + 1) : NULL;
	enum ft_rc rc = FT_OK;
	if (!tmp || (f->heads && !perm)) {
		rc = ft_failf(err, FT_ENOMEM, NULL, "out of memory");
		goto done;
	}
	if (f->data)
		ft_model_read(f->m, tmp, f->data, (size_t)n);
	else
		memcpy(tmp, f->host, (size_t)n * sizeof(float));
	for (uint64_t i = 0; i < n; i++)
		if (!isfinite(tmp[i])) {
			rc = ft_failf(err, FT_EINVAL, "non_finite_weight",
				      "holds %s at element %" PRIu64 ": nothing to export",
				      isnan(tmp[i]) ? "NaN" : "an infinity", i);
			goto done;
		}
	if (f->heads)
		permute_rows(tmp, f->rows, f->cols, f->heads, perm);
	if (!ft_ggml_quant(f->type, tmp, n, dst))
		rc = ft_failf(err, FT_EINTERNAL, NULL, "cannot write type %u", f->type);
done:
	free(perm);
	free(tmp);
	return rc;
}

/* A tensor of the table: its GGUF row, the name, shape (ne) and fill. */
static enum ft_rc add_param(struct ft_gguf_writer *w, const struct ft_model *m,
			    const struct ft_param *p, const char *gguf_name, uint32_t type,
			    uint64_t heads, struct fill *f, struct ft_err *err)
{
	uint64_t ne[2] = { (uint64_t)(p->ndim == 2 ? p->shape[1] : p->shape[0]),
			   (uint64_t)p->shape[0] };
	*f = (struct fill){ m,
			    p->data,
			    NULL,
			    (uint64_t)p->shape[0],
			    (uint64_t)(p->ndim == 2 ? p->shape[1] : 1),
			    heads,
			    type };
	return ft_gguf_writer_tensor(w, gguf_name, type, p->ndim, ne, fill_tensor, f, err);
}

static uint64_t qk_heads(const struct ft_model_config *c, const struct ft_gguf_tensor_name *r,
			 bool permute)
{
	if (!permute || r->rows == FT_GGUF_ROWS_HF)
		return 0;
	return (uint64_t)(r->rows == FT_GGUF_ROWS_Q ? c->num_heads : c->num_kv_heads);
}

static enum ft_rc put_u32(struct ft_gguf_writer *w, enum ft_gguf_key k, long long v,
			  struct ft_err *err)
{
	uint32_t x = (uint32_t)v;
	return ft_gguf_writer_key(w, k, &x, err);
}

static enum ft_rc put_f32(struct ft_gguf_writer *w, enum ft_gguf_key k, double v,
			  struct ft_err *err)
{
	float x = (float)v;
	return ft_gguf_writer_key(w, k, &x, err);
}

/* general.* common to both files. */
static enum ft_rc put_general(struct ft_gguf_writer *w, const char *arch, const char *type,
			      const char *name, uint32_t ftype, struct ft_err *err)
{
	enum ft_rc rc;
	if ((rc = ft_gguf_writer_arch(w, arch, err)) ||
	    (rc = ft_gguf_writer_key(w, FT_GGUF_KEY_TYPE, type, err)) ||
	    (name && (rc = ft_gguf_writer_key(w, FT_GGUF_KEY_NAME, name, err))) ||
	    (rc = put_u32(w, FT_GGUF_KEY_FILE_TYPE, ftype, err)) ||
	    (rc = put_u32(w, FT_GGUF_KEY_QUANT_VERSION, 2, err)))
		return rc;
	return FT_OK;
}

static enum ft_rc put_config(struct ft_gguf_writer *w, const struct ft_model_config *c,
			     struct ft_err *err)
{
	enum ft_rc rc;
	if ((rc = put_u32(w, FT_GGUF_KEY_CONTEXT_LENGTH, c->max_position_embeddings, err)) ||
	    (rc = put_u32(w, FT_GGUF_KEY_EMBEDDING_LENGTH, c->hidden_size, err)) ||
	    (rc = put_u32(w, FT_GGUF_KEY_BLOCK_COUNT, c->num_layers, err)) ||
	    (rc = put_u32(w, FT_GGUF_KEY_FEED_FORWARD_LENGTH, c->intermediate_size, err)) ||
	    (rc = put_u32(w, FT_GGUF_KEY_HEAD_COUNT, c->num_heads, err)) ||
	    (rc = put_u32(w, FT_GGUF_KEY_HEAD_COUNT_KV, c->num_kv_heads, err)) ||
	    (rc = put_u32(w, FT_GGUF_KEY_KEY_LENGTH, c->head_dim, err)) ||
	    (rc = put_u32(w, FT_GGUF_KEY_VALUE_LENGTH, c->head_dim, err)) ||
	    (rc = put_f32(w, FT_GGUF_KEY_RMS_EPS, c->rms_norm_eps, err)) ||
	    (rc = put_u32(w, FT_GGUF_KEY_VOCAB_SIZE, c->vocab_size, err)) ||
	    (rc = put_u32(w, FT_GGUF_KEY_ROPE_DIMENSION_COUNT, c->head_dim, err)) ||
	    (rc = put_f32(w, FT_GGUF_KEY_ROPE_FREQ_BASE, c->rope_theta, err)))
		return rc;
	if (c->rope_type == FT_ROPE_LINEAR &&
	    ((rc = ft_gguf_writer_key(w, FT_GGUF_KEY_ROPE_SCALING_TYPE, "linear", err)) ||
	     (rc = put_f32(w, FT_GGUF_KEY_ROPE_SCALING_FACTOR, c->rope_factor, err))))
		return rc;
	return FT_OK;
}

/* The last path component of a folder or file, without ".gguf". */
static void base_name(const char *path, char *out, size_t n)
{
	char tmp[4096];
	ft_strlcpy(tmp, path, sizeof tmp);
	size_t l = strlen(tmp);
	while (l > 1 && tmp[l - 1] == '/')
		tmp[--l] = 0;
	const char *s = strrchr(tmp, '/');
	ft_strlcpy(out, s ? s + 1 : tmp, n);
	l = strlen(out);
	if (l > 5 && strcmp(out + l - 5, ".gguf") == 0)
		out[l - 5] = 0;
}

enum ft_rc ft_model_save_gguf(struct ft_model *m, const char *path, const char *base_dir,
			      const struct ft_gguf_save_opts *o, struct ft_err *err)
{
	const struct ft_model_config *c = &m->cfg;
	bool permute = false;
	const char *arch = gguf_arch(c, &permute);
	if (!arch)
		return ft_failf(err, FT_EINVAL, "unsupported_architecture",
				"%s has no GGUF architecture ftplat writes", c->architecture);
	enum ft_rc rc = ft_model_nf4_to_f32(m, err);
	if (rc)
		return rc;
	struct ft_tokenizer *tok = NULL;
	if (!base_dir)
		return ft_failf(err, FT_EINVAL, NULL, "a GGUF needs the base model's tokenizer");
	if ((rc = ft_tokenizer_load(base_dir, &tok, err)))
		return rc;
	struct ft_gguf_writer *w = ft_gguf_writer_new();
	struct fill *fills = calloc(m->n_params + 2, sizeof(*fills));
	float *freqs = NULL;
	char name[256];
	if (!w || !fills) {
		rc = ft_failf(err, FT_ENOMEM, NULL, "out of memory");
		goto free_all;
	}
	if (o->name)
		ft_strlcpy(name, o->name, sizeof name);
	else
		base_name(base_dir, name, sizeof name);
	if ((rc = put_general(w, arch, "model", name, (uint32_t)o->ftype, err)) ||
	    (rc = put_config(w, c, err)) ||
	    (rc = ft_gguf_tokenizer_put(w, tok, c->vocab_size, err)))
		goto free_all;
	if (c->rope_type == FT_ROPE_LLAMA3) {
		int n = c->head_dim / 2;
		uint64_t ne = (uint64_t)n;
		if (!(freqs = malloc((size_t)n * sizeof(float)))) {
			rc = ft_failf(err, FT_ENOMEM, NULL, "out of memory");
			goto free_all;
		}
		for (int i = 0; i < n; i++)
			freqs[i] = (float)ft_gguf_llama3_divisor(
				c->rope_theta, c->head_dim, i, c->rope_factor,
				c->rope_low_freq_factor, c->rope_high_freq_factor,
				(double)c->rope_original_max_pos);
		fills[m->n_params] = (struct fill){ m, NULL, freqs, ne, 1, 0, FT_GGML_F32 };
		if ((rc = ft_gguf_writer_tensor(w, "rope_freqs.weight", FT_GGML_F32, 1, &ne,
						fill_tensor, &fills[m->n_params], err)))
			goto free_all;
	}
	for (size_t i = 0; i < m->n_params && !rc; i++) {
		const struct ft_param *p = &m->params[i];
		int layer;
		char gname[160];
		const struct ft_gguf_tensor_name *r =
			ft_gguf_tensor_name_find(p->name, false, &layer);
		if (!r) {
			rc = ft_failf(err, FT_EINVAL, "unsupported_tensor",
				      "tensor \"%s\" has no GGUF name", p->name);
			break;
		}
		ft_gguf_tensor_name_format(r->gguf, layer, gname, sizeof gname);
		uint64_t ne0 = (uint64_t)(p->ndim == 2 ? p->shape[1] : p->shape[0]);
		uint32_t type =
			ft_gguf_ftype_tensor_type(o->ftype, r->role, ne0, p->ndim == 1, layer,
						  c->num_layers, c->tie_word_embeddings);
		rc = add_param(w, m, p, gname, type, qk_heads(c, r, permute), &fills[i], err);
	}
	if (!rc)
		rc = ft_gguf_writer_write(w, path, o->progress, o->ud, err);
free_all:
	free(freqs);
	free(fills);
	ft_gguf_writer_free(w);
	ft_tokenizer_free(tok);
	return rc;
}

enum ft_rc ft_model_lora_save_gguf(struct ft_model *m, const char *path,
				   const struct ft_gguf_save_opts *o, struct ft_err *err)
{
	const struct ft_model_config *c = &m->cfg;
	const struct ft_adapter *ad = ft_model_own(m);
	bool permute = false;
	const char *arch = gguf_arch(c, &permute);
	if (!ad)
		return ft_failf(err, FT_EINVAL, NULL, "the model has no LoRA adapter to write");
	if (!arch)
		return ft_failf(err, FT_EINVAL, "unsupported_architecture",
				"%s has no GGUF architecture ftplat writes", c->architecture);
	uint32_t type;
	if (o->ftype == FT_GGUF_FTYPE_F32)
		type = FT_GGML_F32;
	else if (o->ftype == FT_GGUF_FTYPE_F16)
		type = FT_GGML_F16;
	else
		return ft_failf(err, FT_EINVAL, NULL,
				"a GGUF LoRA is written in F32 or F16 (got %s)",
				ft_gguf_ftype_name(o->ftype));
	const struct ft_lora_config *lc = &ad->cfg;
	double alpha = lc->rslora ? ft_lora_scale(lc) * lc->r : lc->alpha;
	struct ft_gguf_writer *w = ft_gguf_writer_new();
	struct fill *fills = calloc(ad->n_params + 1, sizeof(*fills));
	char name[256];
	enum ft_rc rc = FT_OK;
	if (!w || !fills) {
		rc = ft_failf(err, FT_ENOMEM, NULL, "out of memory");
		goto free_all;
	}
	if (o->name)
		ft_strlcpy(name, o->name, sizeof name);
	else
		base_name(path, name, sizeof name);
	if ((rc = put_general(w, arch, "adapter", name, (uint32_t)o->ftype, err)) ||
	    (rc = ft_gguf_writer_key(w, FT_GGUF_KEY_ADAPTER_TYPE, "lora", err)) ||
	    (rc = put_f32(w, FT_GGUF_KEY_ADAPTER_LORA_ALPHA, alpha, err)))
		goto free_all;
	for (size_t i = 0; i < ad->n_params && !rc; i++) {
		/* base_model.model.<module path>.lora_{A,B}.weight */
		const struct ft_param *p = &ad->params[i];
		static const char prefix[] = "base_model.model.";
		char hf[160], gname[160];
		const char *ab = strstr(p->name, ".lora_");
		int layer;
		if (strncmp(p->name, prefix, sizeof prefix - 1) != 0 || !ab || ab[6] == 0) {
			rc = ft_failf(err, FT_EINTERNAL, NULL, "adapter tensor \"%s\"", p->name);
			break;
		}
		bool is_b = ab[6] == 'B';
		snprintf(hf, sizeof hf, "%.*s.weight", (int)(ab - p->name - (sizeof prefix - 1)),
			 p->name + sizeof prefix - 1);
		const struct ft_gguf_tensor_name *r = ft_gguf_tensor_name_find(hf, false, &layer);
		if (!r) {
			rc = ft_failf(err, FT_EINVAL, "unsupported_tensor",
				      "adapter tensor \"%s\" has no GGUF name", p->name);
			break;
		}
		ft_gguf_tensor_name_format(r->gguf, layer, gname, sizeof gname);
		size_t l = strlen(gname);
		snprintf(gname + l, sizeof gname - l, ".lora_%c", is_b ? 'b' : 'a');
		rc = add_param(w, m, p, gname, type, is_b ? qk_heads(c, r, permute) : 0, &fills[i],
			       err);
	}
	if (!rc)
		rc = ft_gguf_writer_write(w, path, o->progress, o->ud, err);
free_all:
	free(fills);
	ft_gguf_writer_free(w);
	return rc;
}
