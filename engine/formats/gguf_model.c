/*
 * gguf_model.c - a Llama or Qwen2 GGUF as a Hugging Face model: its
 * config.json (built from the metadata, then parsed by the one config.json
 * parser), its tensors under Hugging Face names in Hugging Face row order,
 * and `ft-train import`, which writes the whole folder.
 *
 * Architectures (general.architecture):
 *
 * | GGUF  | Hugging Face      | Q/K rows permuted | biases                         |
 * |-------|-------------------|-------------------|--------------------------------|
 * | llama | LlamaForCausalLM  | yes (undone)      | attention_bias: q,k,v and o together; mlp_bias |
 * | qwen2 | Qwen2ForCausalLM  | no                | q,k,v always, o and MLP never  |
 *
 * What comes from where (ft/gguf.h has the key table): the sizes from the
 * {arch}.* keys; the vocabulary size from token_embd.weight (and
 * {arch}.vocab_size must agree); tie_word_embeddings when there is no
 * output.weight; the biases from blk.0's tensors; bos / eos / pad ids from
 * tokenizer.ggml.*_token_id.
 *
 * RoPE scaling: {arch}.rope.scaling.type "linear" (with .factor), or the
 * older {arch}.rope.scale_linear, is transformers' "linear". llama.cpp
 * stores Llama 3.1-style scaling as a tensor instead, rope_freqs.weight:
 * one divisor per frequency, computed (convert_hf_to_gguf.py) from
 * factor, low_freq_factor, high_freq_factor and
 * original_max_position_embeddings as
 *
 *   wavelen_i = 2 pi / theta^(-2i/d)
 *   f_i = 1                          when wavelen_i < orig / high
 *       = factor                     when wavelen_i > orig / low
 *       = 1 / ((1 - s) / factor + s) otherwise, s = (orig / wavelen_i - low) / (high - low)
 *
 * Those four numbers are found back from the divisors: factor is the
 * largest; (low, high, orig) are only determined up to a common scale, so
 * Llama 3's own (1, 4, 8192) is tried first, then low = 1 with high and
 * orig fitted through the first and last divisors strictly between 1 and
 * factor (orig rounded to an integer, high to the fewest decimals that
 * still fit). A candidate is taken only when it reproduces every divisor to
 * 1e-5; otherwise the file is refused, naming the tensor.
 */
#include <math.h>
#include <sys/stat.h>

#include "ft/chat.h"
#include "ft/gguf.h"
#include "ft/fs.h"

static const struct gguf_arch {
	const char *gguf;
	const char *hf;
	const char *model_type;
	bool permute_qk;
} archs[] = {
	{ "llama", "LlamaForCausalLM", "llama", true },
	{ "qwen2", "Qwen2ForCausalLM", "qwen2", false },
};

static const struct gguf_arch *find_arch(const char *name)
{
	for (size_t i = 0; i < FT_ARRAY_LEN(archs); i++)
		if (strcmp(archs[i].gguf, name) == 0)
			return &archs[i];
	return NULL;
}

#define ROPE_FREQS "rope_freqs.weight"

/* ---- names (the table and its matching are in gguf.c) ---- */

static const struct ft_gguf_tensor_name *map_name(const char *name, bool gguf_side, int *layer)
{
	return ft_gguf_tensor_name_find(name, gguf_side, layer);
}

static void format_name(const char *pat, int layer, char *buf, size_t size)
{
	ft_gguf_tensor_name_format(pat, layer, buf, size);
}

const struct ft_gguf_tensor *ft_gguf_hf_find(const struct ft_gguf *g, const char *hf_name,
					     int *ndim, int64_t shape[2])
{
	int layer;
	char name[160];
	const struct ft_gguf_tensor_name *r = map_name(hf_name, false, &layer);
	if (!r)
		return NULL;
	format_name(r->gguf, layer, name, sizeof name);
	const struct ft_gguf_tensor *t = ft_gguf_tensor_find(g, name);
	if (!t)
		return NULL;
	/* trailing dimensions of 1 do not count */
	int nd = t->n_dims;
	while (nd > 1 && t->ne[nd - 1] == 1)
		nd--;
	*ndim = nd;
	shape[0] = (int64_t)(nd >= 2 ? t->ne[1] : t->ne[0]);
	shape[1] = (int64_t)(nd >= 2 ? t->ne[0] : 1);
	return t;
}

/* ---- config ---- */

static enum ft_rc arch_of(const struct ft_gguf *g, const struct gguf_arch **out, struct ft_err *err)
{
	const char *name = NULL;
	if (ft_gguf_get_str(g, FT_GGUF_KEY_ARCHITECTURE, FT_JSON_REQUIRED, &name, err))
		return FT_EFORMAT;
	*out = find_arch(name);
	if (!*out)
		return ft_failf(
			err, FT_EINVAL, "unsupported_architecture",
			"%s: architecture \"%s\" is not supported (supported: llama, qwen2)",
			ft_gguf_name(g), name);
	return FT_OK;
}

/* The shortest decimal that reads back as the same fp32 (GGUF stores
 * 1e-5 as 9.99999974738e-06; config.json should say 1e-05). */
static double f32_decimal(double v)
{
	char s[40];
	for (int p = 1; p <= 9; p++) {
		snprintf(s, sizeof s, "%.*g", p, v);
		double r = strtod(s, NULL);
		if ((float)r == (float)v)
			return r;
	}
	return v;
}

static bool has_tensor(const struct ft_gguf *g, const char *name)
{
	return ft_gguf_tensor_find(g, name) != NULL;
}

/* llama.cpp's divisor for frequency i (the formula at the top). */
double ft_gguf_llama3_divisor(double theta, int d, int i, double factor, double low, double high,
			      double orig)
{
	double freq = 1.0 / pow(theta, (double)(2 * i) / d);
	double wl = 2 * M_PI / freq;
	if (wl < orig / high)
		return 1;
	if (wl > orig / low)
		return factor;
	double s = (orig / wl - low) / (high - low);
	return 1 / ((1 - s) / factor + s);
}

static bool llama3_matches(const float *f, int n, double theta, int d, double factor, double low,
			   double high, double orig)
{
	for (int i = 0; i < n; i++) {
		double want = ft_gguf_llama3_divisor(theta, d, i, factor, low, high, orig);
		if (fabs(want - f[i]) > 1e-5 * fmax(1.0, fabs(want)))
			return false;
	}
	return true;
}

static enum ft_rc rope_freqs_fit(const struct ft_gguf *g, const struct ft_gguf_tensor *t,
				 double theta, int head_dim, json_t **scaling, struct ft_err *err)
{
	int n = head_dim / 2;
	*scaling = NULL;
	if (t->type != FT_GGML_F32 || t->nelem != (uint64_t)n)
		return ft_failf(err, FT_EFORMAT, "invalid_gguf",
				"%s: tensor \"" ROPE_FREQS
				"\" must be %d F32 values (head_dim / 2)",
				ft_gguf_name(g), n);
	float *f = malloc((size_t)n * sizeof(float));
	if (!f)
		return ft_failf(err, FT_ENOMEM, NULL, "out of memory");
	enum ft_rc rc = ft_gguf_tensor_to_f32(g, t, f, err);
	double factor = 0;
	int first = -1, last = -1;
	for (int i = 0; i < n && !rc; i++) {
		if (!(f[i] >= 1 && f[i] < 1e6)) {
			rc = ft_failf(err, FT_EFORMAT, "invalid_gguf",
				      "%s: tensor \"" ROPE_FREQS "\" holds %g (divisors are >= 1)",
				      ft_gguf_name(g), (double)f[i]);
			break;
		}
		factor = fmax(factor, f[i]);
	}
	for (int i = 0; i < n && !rc; i++)
		if (f[i] > 1 + 1e-6 && f[i] < factor * (1 - 1e-6)) {
			if (first < 0)
				first = i;
			last = i;
		}
	if (rc || factor <= 1 + 1e-6)
		goto done; /* all ones: no scaling */
	double low = 1, high = 4, orig = 8192;
	bool ok = llama3_matches(f, n, theta, head_dim, factor, low, high, orig);
	if (!ok && first >= 0 && last > first) {
		/* s_i = A / wavelen_i + B through the first and last mixed divisors */
		double wl[2], s[2];
		int at[2] = { first, last };
		for (int k = 0; k < 2; k++) {
			wl[k] = 2 * M_PI * pow(theta, (double)(2 * at[k]) / head_dim);
			s[k] = (1 / (double)f[at[k]] - 1 / factor) / (1 - 1 / factor);
		}
		double A = (s[0] - s[1]) / (1 / wl[0] - 1 / wl[1]), B = s[0] - A / wl[0];
		if (B < 0) {
			double fit = 1 - 1 / B;
			orig = round(A * (fit - low));
			/* the fewest decimals of high that still reproduce every divisor */
			for (int dec = 0; dec <= 9 && !ok; dec++) {
				double p = pow(10, dec);
				high = dec < 9 ? round(fit * p) / p : fit;
				ok = orig >= 1 && high > low &&
				     llama3_matches(f, n, theta, head_dim, factor, low, high, orig);
			}
		}
	}
	if (!ok) {
		rc = ft_failf(err, FT_EINVAL, "unsupported_rope",
			      "%s: tensor \"" ROPE_FREQS
			      "\" does not follow Llama 3's rope scaling "
			      "(the only frequency scaling ftplat reads from a GGUF)",
			      ft_gguf_name(g));
		goto done;
	}
	*scaling = json_pack("{s:s, s:f, s:f, s:f, s:I}", "rope_type", "llama3", "factor",
			     f32_decimal(factor), "low_freq_factor", low, "high_freq_factor", high,
			     "original_max_position_embeddings", (json_int_t)orig);
	if (!*scaling)
		rc = ft_failf(err, FT_ENOMEM, NULL, "out of memory");
done:
	free(f);
	return rc;
}

static enum ft_rc rope_scaling(const struct ft_gguf *g, double theta, int head_dim,
			       json_t **scaling, struct ft_err *err)
{
	const char *type = NULL;
	double factor = 0, old = 1;
	char key[160];
	*scaling = NULL;
	if (ft_gguf_get_str(g, FT_GGUF_KEY_ROPE_SCALING_TYPE, 0, &type, err) ||
	    ft_gguf_get_num(g, FT_GGUF_KEY_ROPE_SCALE_LINEAR, 0, 1e-6, 1e6, &old, err))
		return FT_EFORMAT;
	const struct ft_gguf_tensor *freqs = ft_gguf_tensor_find(g, ROPE_FREQS);
	if (type && strcmp(type, "none") != 0 && strcmp(type, "linear") != 0)
		return ft_failf(err, FT_EINVAL, "unsupported_rope",
				"%s: metadata \"%s\" is \"%s\" (ftplat reads none, linear, and "
				"Llama 3's " ROPE_FREQS ")",
				ft_gguf_name(g),
				ft_gguf_key_name(g, FT_GGUF_KEY_ROPE_SCALING_TYPE, key, sizeof key),
				type);
	bool linear = (type && strcmp(type, "linear") == 0) || (!type && old != 1);
	if (linear && freqs)
		return ft_failf(err, FT_EINVAL, "unsupported_rope",
				"%s: linear rope scaling and " ROPE_FREQS " together are not "
				"supported",
				ft_gguf_name(g));
	if (freqs)
		return rope_freqs_fit(g, freqs, theta, head_dim, scaling, err);
	if (!linear)
		return FT_OK;
	factor = old;
	if (type && ft_gguf_get_num(g, FT_GGUF_KEY_ROPE_SCALING_FACTOR, FT_JSON_REQUIRED, 1e-6, 1e6,
				    &factor, err))
		return FT_EFORMAT;
	*scaling = json_pack("{s:s, s:f}", "rope_type", "linear", "factor", f32_decimal(factor));
	return *scaling ? FT_OK : ft_failf(err, FT_ENOMEM, NULL, "out of memory");
}

/* Every tensor must be one the name table maps, within the block count. */
static enum ft_rc check_tensors(const struct ft_gguf *g, const char *arch, long long layers,
				struct ft_err *err)
{
	for (size_t i = 0; i < ft_gguf_tensor_count(g); i++) {
		const struct ft_gguf_tensor *t = ft_gguf_tensor_at(g, i);
		int layer;
		if (strcmp(t->name, ROPE_FREQS) == 0)
			continue;
		if (!map_name(t->name, true, &layer))
			return ft_failf(err, FT_EINVAL, "unsupported_tensor",
					"%s: tensor \"%s\" is not part of a %s model as ftplat "
					"reads it",
					ft_gguf_name(g), t->name, arch);
		if (layer >= layers)
			return ft_failf(err, FT_EFORMAT, "invalid_gguf",
					"%s: tensor \"%s\" is beyond the %lld blocks",
					ft_gguf_name(g), t->name, layers);
	}
	return FT_OK;
}

static json_t *opt_id(long long v)
{
	return v >= 0 ? json_integer(v) : json_null();
}

enum ft_rc ft_gguf_config_json(const struct ft_gguf *g, const char *torch_dtype, json_t **out,
			       struct ft_err *err)
{
	const struct gguf_arch *a;
	long long ctx = 0, hidden = 0, layers = 0, ff = 0, heads = 0, kv = -1, key_len = 0,
		  val_len = 0, rope_dim = 0, vocab_key = 0, bos = -1, eos = -1, pad = -1;
	double eps = 0, theta = 10000;
	const char *name = ft_gguf_name(g);
	*out = NULL;
	if (arch_of(g, &a, err))
		return err ? err->rc : FT_EINVAL;
	if (ft_gguf_get_int(g, FT_GGUF_KEY_CONTEXT_LENGTH, FT_JSON_REQUIRED, 1, INT32_MAX, &ctx,
			    err) ||
	    ft_gguf_get_int(g, FT_GGUF_KEY_EMBEDDING_LENGTH, FT_JSON_REQUIRED, 1, 1 << 20, &hidden,
			    err) ||
	    ft_gguf_get_int(g, FT_GGUF_KEY_BLOCK_COUNT, FT_JSON_REQUIRED, 1, 4096, &layers, err) ||
	    ft_gguf_get_int(g, FT_GGUF_KEY_FEED_FORWARD_LENGTH, FT_JSON_REQUIRED, 1, 1 << 22, &ff,
			    err) ||
	    ft_gguf_get_int(g, FT_GGUF_KEY_HEAD_COUNT, FT_JSON_REQUIRED, 1, 4096, &heads, err) ||
	    ft_gguf_get_int(g, FT_GGUF_KEY_HEAD_COUNT_KV, 0, 1, 4096, &kv, err) ||
	    ft_gguf_get_int(g, FT_GGUF_KEY_KEY_LENGTH, 0, 1, 1 << 16, &key_len, err) ||
	    ft_gguf_get_int(g, FT_GGUF_KEY_VALUE_LENGTH, 0, 1, 1 << 16, &val_len, err) ||
	    ft_gguf_get_int(g, FT_GGUF_KEY_ROPE_DIMENSION_COUNT, 0, 1, 1 << 16, &rope_dim, err) ||
	    ft_gguf_get_int(g, FT_GGUF_KEY_VOCAB_SIZE, 0, 1, 1 << 24, &vocab_key, err) ||
	    ft_gguf_get_num(g, FT_GGUF_KEY_RMS_EPS, FT_JSON_REQUIRED, 1e-30, 1, &eps, err) ||
	    ft_gguf_get_num(g, FT_GGUF_KEY_ROPE_FREQ_BASE, 0, 1e-3, 1e12, &theta, err) ||
	    ft_gguf_get_int(g, FT_GGUF_KEY_TOK_BOS_ID, 0, 0, INT32_MAX, &bos, err) ||
	    ft_gguf_get_int(g, FT_GGUF_KEY_TOK_EOS_ID, 0, 0, INT32_MAX, &eos, err) ||
	    ft_gguf_get_int(g, FT_GGUF_KEY_TOK_PAD_ID, 0, 0, INT32_MAX, &pad, err))
		return err ? err->rc : FT_EFORMAT;
	char key[160];
	if (kv < 0)
		kv = heads;
	long long head_dim = key_len;
	if (!head_dim) {
		if (hidden % heads)
			return ft_failf(err, FT_EFORMAT, "invalid_gguf",
					"%s: embedding_length %lld is not a multiple of head_count "
					"%lld and there is no attention.key_length",
					name, hidden, heads);
		head_dim = hidden / heads;
	}
	if ((val_len && val_len != head_dim) || (rope_dim && rope_dim != head_dim) || head_dim % 2)
		return ft_failf(err, FT_EINVAL, "unsupported_config",
				"%s: head size %lld with value_length %lld and rope dimension "
				"count %lld: ftplat needs one even head size for keys, values and "
				"rotary",
				name, head_dim, val_len ? val_len : head_dim,
				rope_dim ? rope_dim : head_dim);
	const struct ft_gguf_tensor *emb = ft_gguf_tensor_find(g, "token_embd.weight"),
				    *outw = ft_gguf_tensor_find(g, "output.weight");
	if (!emb || emb->n_dims != 2 || emb->ne[0] != (uint64_t)hidden || emb->ne[1] > (1 << 24))
		return ft_failf(err, FT_EFORMAT, "invalid_gguf",
				"%s: tensor \"token_embd.weight\" must exist with shape "
				"[vocab, %lld]",
				name, hidden);
	long long vocab = (long long)emb->ne[1];
	if (vocab_key && vocab_key != vocab)
		return ft_failf(err, FT_EFORMAT, "invalid_gguf",
				"%s: metadata \"%s\" is %lld but token_embd.weight has %lld rows",
				name, ft_gguf_key_name(g, FT_GGUF_KEY_VOCAB_SIZE, key, sizeof key),
				vocab_key, vocab);
	if (outw && (outw->n_dims != 2 || outw->ne[0] != emb->ne[0] || outw->ne[1] != emb->ne[1]))
		return ft_failf(err, FT_EFORMAT, "invalid_gguf",
				"%s: tensor \"output.weight\" must have the shape of "
				"token_embd.weight",
				name);
	if (check_tensors(g, a->gguf, layers, err))
		return err ? err->rc : FT_EINVAL;
	bool qb = has_tensor(g, "blk.0.attn_q.bias"), ob = has_tensor(g, "blk.0.attn_output.bias"),
	     mb = has_tensor(g, "blk.0.ffn_up.bias");
	if (!a->permute_qk && (!qb || ob || mb))
		return ft_failf(err, FT_EINVAL, "unsupported_config",
				"%s: a %s model has q/k/v biases and no output or MLP biases", name,
				a->gguf);
	if (a->permute_qk && qb != ob)
		return ft_failf(err, FT_EINVAL, "unsupported_config",
				"%s: a llama model has biases on q/k/v and the output projection "
				"together or not at all",
				name);
	json_t *scaling = NULL;
	if (rope_scaling(g, theta, (int)head_dim, &scaling, err))
		return err ? err->rc : FT_EINVAL;
	json_t *c = json_pack("{s:[s], s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:s, s:f, s:f, "
			      "s:o, s:b, s:o, s:o, s:o}",
			      "architectures", a->hf, "model_type", a->model_type, "vocab_size",
			      (json_int_t)vocab, "hidden_size", (json_int_t)hidden,
			      "intermediate_size", (json_int_t)ff, "num_hidden_layers",
			      (json_int_t)layers, "num_attention_heads", (json_int_t)heads,
			      "num_key_value_heads", (json_int_t)kv, "head_dim",
			      (json_int_t)head_dim, "max_position_embeddings", (json_int_t)ctx,
			      "hidden_act", "silu", "rms_norm_eps", f32_decimal(eps), "rope_theta",
			      f32_decimal(theta), "rope_scaling", scaling ? scaling : json_null(),
			      "tie_word_embeddings", outw == NULL, "bos_token_id", opt_id(bos),
			      "eos_token_id", opt_id(eos), "pad_token_id", opt_id(pad));
	if (c && a->permute_qk) {
		json_object_set_new(c, "attention_bias", json_boolean(qb));
		json_object_set_new(c, "mlp_bias", json_boolean(mb));
	}
	if (c && !a->permute_qk)
		json_object_set_new(c, "use_sliding_window", json_false());
	if (c && torch_dtype)
		json_object_set_new(c, "torch_dtype", json_string(torch_dtype));
	if (!c)
		return ft_failf(err, FT_ENOMEM, NULL, "out of memory");
	*out = c;
	return FT_OK;
}

enum ft_rc ft_gguf_model_config(const struct ft_gguf *g, struct ft_model_config *out,
				struct ft_err *err)
{
	json_t *c;
	enum ft_rc rc = ft_gguf_config_json(g, NULL, &c, err);
	if (rc)
		return rc;
	rc = ft_model_config_from_json(c, out, err);
	if (rc)
		ft_err_prefixf(err, "%s: ", ft_gguf_name(g));
	json_decref(c);
	return rc;
}

/* ---- tensors ---- */

enum ft_rc ft_gguf_hf_to_f32(const struct ft_gguf *g, const struct ft_model_config *c,
			     const char *hf_name, float *dst, uint64_t nelem, struct ft_err *err)
{
	int layer, ndim;
	int64_t shape[2];
	const struct ft_gguf_tensor_name *r = map_name(hf_name, false, &layer);
	const struct ft_gguf_tensor *t = ft_gguf_hf_find(g, hf_name, &ndim, shape);
	if (!t || !r)
		return ft_failf(err, FT_EFORMAT, "missing_tensor", "%s has no tensor for \"%s\"",
				ft_gguf_name(g), hf_name);
	if (t->nelem != nelem)
		return ft_failf(err, FT_EFORMAT, "bad_tensor",
				"%s: tensor \"%s\" has %" PRIu64 " values, expected %" PRIu64,
				ft_gguf_name(g), t->name, t->nelem, nelem);
	enum ft_rc rc = ft_gguf_tensor_to_f32(g, t, dst, err);
	const struct gguf_arch *a;
	if (rc || r->rows == FT_GGUF_ROWS_HF || (rc = arch_of(g, &a, err)) || !a->permute_qk)
		return rc;
	/* undo llama.cpp's rotary row order: stored row 2i + j of a head is
	 * Hugging Face row j * half + i */
	uint64_t heads = (uint64_t)(r->rows == FT_GGUF_ROWS_Q ? c->num_heads : c->num_kv_heads);
	uint64_t rows = (uint64_t)shape[0], cols = (uint64_t)shape[1];
	uint64_t hd = rows / heads, half = hd / 2;
	if (rows != heads * (uint64_t)c->head_dim)
		return ft_failf(err, FT_EFORMAT, "bad_tensor",
				"%s: tensor \"%s\" has %" PRIu64 " rows, expected %" PRIu64,
				ft_gguf_name(g), t->name, rows, heads * (uint64_t)c->head_dim);
	float *tmp = malloc(hd * cols * sizeof(float));
	if (!tmp)
		return ft_failf(err, FT_ENOMEM, NULL, "out of memory");
	for (uint64_t h = 0; h < heads; h++) {
		float *head = dst + h * hd * cols;
		memcpy(tmp, head, hd * cols * sizeof(float));
		for (uint64_t i = 0; i < half; i++)
			for (uint64_t j = 0; j < 2; j++)
				memcpy(head + (j * half + i) * cols, tmp + (2 * i + j) * cols,
				       cols * sizeof(float));
	}
	free(tmp);
	return FT_OK;
}

/* ---- import ---- */

static enum ft_rc write_json(const char *dir, const char *file, const json_t *v, struct ft_err *err)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/%s", dir, file);
	char *s = json_dumps(v, JSON_INDENT(2));
	if (!s)
		return ft_failf(err, FT_ENOMEM, NULL, "%s: cannot serialise", path);
	size_t n = strlen(s);
	enum ft_rc rc = ft_write_file_atomic(path, s, n, err);
	free(s);
	return rc;
}

enum ft_rc ft_gguf_write_side_files(const struct ft_gguf *g, const char *dir, struct ft_err *err)
{
	json_t *tok = NULL, *tcfg = NULL;
	enum ft_rc rc = ft_gguf_tokenizer_json(g, &tok, &tcfg, err);
	if (rc)
		return rc;
	json_t *gen = json_object();
	static const char *const ids[] = { "bos_token_id", "eos_token_id", "pad_token_id" };
	static const enum ft_gguf_key keys[] = { FT_GGUF_KEY_TOK_BOS_ID, FT_GGUF_KEY_TOK_EOS_ID,
						 FT_GGUF_KEY_TOK_PAD_ID };
	for (size_t i = 0; i < FT_ARRAY_LEN(ids) && !rc; i++) {
		long long v = -1;
		rc = ft_gguf_get_int(g, keys[i], 0, 0, INT32_MAX, &v, err);
		if (!rc && v >= 0)
			json_object_set_new(gen, ids[i], json_integer(v));
	}
	if (!rc)
		rc = write_json(dir, "tokenizer.json", tok, err);
	if (!rc)
		rc = write_json(dir, "tokenizer_config.json", tcfg, err);
	if (!rc)
		rc = write_json(dir, "generation_config.json", gen, err);
	json_decref(gen);
	json_decref(tok);
	json_decref(tcfg);
	return rc;
}

struct fill_ctx {
	const struct ft_gguf *g;
	const struct ft_model_config *c;
	enum ft_dtype dtype;
	float *f32; /* bf16: the fp32 values before rounding */
	char hf[128];
	uint64_t nelem;
};

static enum ft_rc fill_tensor(void *ctx, void *dst, uint64_t nbytes, struct ft_err *err)
{
	struct fill_ctx *f = ctx;
	FT_UNUSED(nbytes);
	if (f->dtype == FT_DTYPE_F32)
		return ft_gguf_hf_to_f32(f->g, f->c, f->hf, dst, f->nelem, err);
	float *tmp = malloc((size_t)f->nelem * sizeof(float) + 1);
	if (!tmp)
		return ft_failf(err, FT_ENOMEM, NULL, "out of memory for tensor \"%s\"", f->hf);
	enum ft_rc rc = ft_gguf_hf_to_f32(f->g, f->c, f->hf, tmp, f->nelem, err);
	if (!rc)
		rc = ft_st_from_f32(tmp, f->nelem, f->dtype, dst, err);
	free(tmp);
	return rc;
}

/* The chat template family we render for the file's template, or a
 * warning naming the template when we do not render it. */
static void chat_family(const struct ft_gguf *g, struct ft_gguf_import *imp)
{
	const char *jinja = NULL;
	struct ft_err e;
	ft_err_clear(&e);
	if (ft_gguf_get_str(g, FT_GGUF_KEY_CHAT_TEMPLATE, 0, &jinja, &e) || !jinja)
		return;
	struct ft_chat_template *t = NULL;
	if (ft_chat_template_from_jinja(jinja, NULL, NULL, &t, &e) == FT_OK) {
		ft_strlcpy(imp->chat_template, ft_chat_template_name(t), sizeof imp->chat_template);
		ft_chat_template_free(t);
		return;
	}
	snprintf(imp->warning, sizeof imp->warning, "%s", e.msg);
}

enum ft_rc ft_gguf_import(const char *gguf_path, const char *out_dir, struct ft_gguf_import *imp,
			  struct ft_err *err)
{
	struct ft_gguf *g;
	if (imp->dtype != FT_DTYPE_F32 && imp->dtype != FT_DTYPE_BF16)
		return ft_failf(err, FT_EINVAL, NULL, "import writes bf16 or fp32 weights");
	enum ft_rc rc = ft_gguf_open(gguf_path, &g, err);
	if (rc)
		return rc;
	json_t *cj = NULL;
	struct ft_model_config cfg;
	struct ft_st_writer *w = NULL;
	struct fill_ctx *fc = NULL;
	struct ft_buf text = FT_BUF_INIT(1 << 20);
	char path[4096];
	if ((rc = ft_gguf_config_json(g, imp->dtype == FT_DTYPE_F32 ? "float32" : "bfloat16", &cj,
				      err)))
		goto close;
	if ((rc = ft_model_config_from_json(cj, &cfg, err))) {
		ft_err_prefixf(err, "%s: ", gguf_path);
		goto close;
	}
	if ((rc = ft_mkdir_p(out_dir, err)))
		goto close;
	snprintf(path, sizeof path, "%s/config.json", out_dir);
	if ((rc = ft_model_config_to_json(&cfg, &text)) ||
	    (rc = ft_write_file_atomic(path, text.ptr, text.len, err))) {
		ft_failf(err, rc, NULL, "%s: cannot write config.json", out_dir);
		goto close;
	}
	size_t nt = ft_gguf_tensor_count(g);
	fc = calloc(nt + 1, sizeof(*fc));
	w = ft_st_writer_new();
	if (!fc) {
		rc = ft_failf(err, FT_ENOMEM, NULL, "out of memory");
		goto close;
	}
	imp->n_tensors = 0;
	imp->n_params = 0;
	for (size_t i = 0; i < nt && !rc; i++) {
		const struct ft_gguf_tensor *t = ft_gguf_tensor_at(g, i);
		int layer, ndim;
		int64_t shape[2];
		const struct ft_gguf_tensor_name *r = map_name(t->name, true, &layer);
		if (!r)
			continue; /* rope_freqs: it became config.json's rope_scaling */
		struct fill_ctx *f = &fc[imp->n_tensors++];
		*f = (struct fill_ctx){ g, &cfg, imp->dtype, NULL, "", t->nelem };
		format_name(r->hf, layer, f->hf, sizeof f->hf);
		ft_gguf_hf_find(g, f->hf, &ndim, shape);
		imp->n_params += t->nelem;
		rc = ft_st_writer_add_fill(w, f->hf, imp->dtype, ndim, shape, fill_tensor, f, err);
	}
	if (!rc)
		rc = ft_st_writer_meta(w, "format", "pt", err);
	snprintf(path, sizeof path, "%s/model.safetensors", out_dir);
	if (!rc)
		rc = ft_st_writer_write(w, path, err);
	if (!rc)
		rc = ft_gguf_write_side_files(g, out_dir, err);
	if (!rc) {
		ft_strlcpy(imp->architecture, cfg.architecture, sizeof imp->architecture);
		chat_family(g, imp);
	}
close:
	ft_buf_release(&text);
	ft_st_writer_free(w);
	free(fc);
	json_decref(cj);
	ft_gguf_close(g);
	return rc;
}
