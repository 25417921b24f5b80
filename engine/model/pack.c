/*
 * pack.c - a model's frozen weights packed for inference (ft_model_pack).
 *
 * Each decoder linear and lm_head is handed to the backend's pw_pack in
 * the chosen format, staged on the host one matrix at a time:
 *   f32   the weight itself (the backend lays it out for its GEMM);
 *   q8_0  the weight quantised row by row as GGUF's Q8_0
 *         (ft_ggml_quant: llama.cpp's reference rule, bit for bit), so a
 *         model served in q8_0 is the model llama.cpp serves from our
 *         Q8_0 export, weight for weight.
 * The fp32 weights stay where they are (the embedding lookup and adapter
 * merges read them); the packed copies are what the forward multiplies by.
 */
#include <string.h>

#include "ft/gguf.h"
#include "model_int.h"

static const char *const fmt_names[] = {
	[FT_PW_F32] = "f32", [FT_PW_Q8_0] = "q8_0", [FT_PW_BF16] = "bf16"
};

bool ft_pw_fmt_parse(const char *name, enum ft_pw_fmt *out)
{
	for (size_t i = 0; name && i < FT_ARRAY_LEN(fmt_names); i++)
		if (strcmp(name, fmt_names[i]) == 0) {
			*out = (enum ft_pw_fmt)i;
			return true;
		}
	return false;
}

const char *ft_pw_fmt_name(enum ft_pw_fmt fmt)
{
	return (size_t)fmt < FT_ARRAY_LEN(fmt_names) ? fmt_names[fmt] : "?";
}

/* One [OC, IC] weight (backend memory) packed; NULL with err set. */
struct ft_pw *ft_model_pack_one(const struct ft_model *m, float *w, int OC, int IC,
				enum ft_pw_fmt fmt, const char *what, struct ft_err *err)
{
	const struct ft_backend *be = m->be;
	size_t n = (size_t)OC * IC;
	float *hw = ft_dev_map(be, w, n * sizeof(float), true);
	void *q = NULL;
	struct ft_pw *pw = NULL;
	if (!hw)
		goto oom;
	const void *src = hw;
	if (fmt == FT_PW_Q8_0) {
		q = malloc(n / 32 * 34);
		if (!q)
			goto oom;
		FT_ASSERT(ft_ggml_quant(FT_GGML_Q8_0, hw, n, q));
		src = q;
	}
	pw = be->pw_pack(fmt, src, OC, IC);
	if (!pw)
		goto oom;
	free(q);
	ft_dev_unmap(be, w, hw, n * sizeof(float), false);
	return pw;
oom:
	free(q);
	if (hw)
		ft_dev_unmap(be, w, hw, n * sizeof(float), false);
	ft_failf(err, FT_ENOMEM, NULL, "out of memory packing %s (%d x %d) as %s", what, OC, IC,
		 ft_pw_fmt_name(fmt));
	return NULL;
}

enum ft_rc ft_model_pack(struct ft_model *m, enum ft_pw_fmt fmt, struct ft_err *err)
{
	const struct ft_model_config *c = &m->cfg;
	FT_ASSERT(!m->packed);
	if (!m->be->pw_pack)
		return ft_failf(err, FT_EINVAL, NULL,
				"the %s backend has no packed inference weights; serve in f32 "
				"unpacked",
				m->be->name);
	if (m->nf4)
		return ft_failf(err, FT_EINVAL, NULL,
				"a 4-bit (NF4) model cannot be packed; load it in fp32 to pack it");
	if (fmt == FT_PW_BF16 && !m->be->pw_bf16)
		return ft_failf(err, FT_EINVAL, NULL,
				"bf16 weights need a CPU with AVX512-BF16 (and a build for it); "
				"this %s backend has none: use f32",
				m->be->name);
	if (fmt == FT_PW_Q8_0 &&
	    (c->hidden_size % 32 || c->intermediate_size % 32 || (c->num_heads * c->head_dim) % 32))
		return ft_failf(err, FT_EINVAL, NULL,
				"q8_0 needs the layers' input sizes to be multiples of 32 "
				"(hidden %d, intermediate %d)",
				c->hidden_size, c->intermediate_size);
	m->packed = true; /* ft_model_free frees what was packed so far */
	m->pack_fmt = fmt;
	for (int l = 0; l < c->num_layers; l++) {
		for (int k = 0; k < FT_LIN_COUNT; k++) {
			int IC, OC;
			ft_model_linear_dims(c, (enum ft_linear)k, &IC, &OC);
			char what[48];
			snprintf(what, sizeof(what), "layer %d's linear %d", l, k);
			m->layers[l].pw[k] =
				ft_model_pack_one(m, m->layers[l].w[k], OC, IC, fmt, what, err);
			if (!m->layers[l].pw[k])
				return err->rc;
		}
	}
	m->lm_head_pw = ft_model_pack_one(m, m->lm_head, c->vocab_size, c->hidden_size, fmt,
					  "lm_head", err);
	return m->lm_head_pw ? FT_OK : err->rc;
}

void ft_model_unpack(struct ft_model *m)
{
	for (int l = 0; m->packed && l < m->cfg.num_layers; l++)
		for (int k = 0; k < FT_LIN_COUNT; k++) {
			m->be->pw_free(m->layers[l].pw[k]);
			m->layers[l].pw[k] = NULL;
		}
	if (m->packed)
		m->be->pw_free(m->lm_head_pw);
	m->lm_head_pw = NULL;
	m->packed = false;
}

size_t ft_model_pack_bytes(const struct ft_model *m)
{
	if (!m->packed)
		return 0;
	size_t n = m->be->pw_bytes(m->lm_head_pw);
	for (int l = 0; l < m->cfg.num_layers; l++)
		for (int k = 0; k < FT_LIN_COUNT; k++)
			n += m->be->pw_bytes(m->layers[l].pw[k]);
	return n;
}

const char *ft_model_pack_name(const struct ft_model *m)
{
	return m->packed ? ft_pw_fmt_name(m->pack_fmt) : NULL;
}
