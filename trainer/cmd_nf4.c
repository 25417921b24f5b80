/*
 * cmd_nf4.c - hidden helpers for the NF4 peer test (tests/system/test_qlora_peer.py):
 *
 *   nf4-quantize DIR OUT [--no-double-quant]
 *       every 2-D float tensor of DIR/model.safetensors is quantised to NF4
 *       and written to the file OUT as bitsandbytes' state dict (ft/nf4.h);
 *       other tensors are copied as F32
 *   nf4-dequantize DIR OUT
 *       every bitsandbytes 4-bit weight of DIR/model.safetensors is read and
 *       written to OUT dequantised, F32, under its own name
 */
#include "ft/nf4.h"
#include "ft/safetensors.h"

#include "cmd.h"

static int fail(const char *cmd, const struct ft_err *err)
{
	fprintf(stderr, "ft-train %s: %s\n", cmd, err->msg);
	return 1;
}

/* Buffers that must live until the writer writes. */
struct keep {
	void **p;
	size_t n;
	struct ft_buf *jsons;
	size_t nj;
};

static void *keep_alloc(struct keep *k, size_t sz)
{
	k->p = realloc(k->p, (k->n + 1) * sizeof(*k->p));
	FT_ASSERT(k->p);
	k->p[k->n] = ft_xcalloc(1, sz ? sz : 1);
	return k->p[k->n++];
}

static struct ft_buf *keep_json(struct keep *k)
{
	k->jsons = realloc(k->jsons, (k->nj + 1) * sizeof(*k->jsons));
	FT_ASSERT(k->jsons);
	ft_buf_init(&k->jsons[k->nj], 1 << 16);
	return &k->jsons[k->nj++];
}

static void keep_release(struct keep *k)
{
	for (size_t i = 0; i < k->n; i++)
		free(k->p[i]);
	for (size_t i = 0; i < k->nj; i++)
		ft_buf_release(&k->jsons[i]);
	free(k->p);
	free(k->jsons);
}

static bool is_float(enum ft_dtype d)
{
	return d == FT_DTYPE_F32 || d == FT_DTYPE_BF16 || d == FT_DTYPE_F16;
}

int cmd_nf4_quantize(int argc, char **argv)
{
	if (argc < 3 || argc > 4 || (argc == 4 && strcmp(argv[3], "--no-double-quant") != 0)) {
		fprintf(stderr, "usage: ft-train nf4-quantize DIR OUT [--no-double-quant]\n");
		return 2;
	}
	bool nested = argc == 3;
	struct ft_err err;
	ft_err_clear(&err);
	struct ft_st_set *set = NULL;
	if (ft_st_set_open(argv[1], &set, &err))
		return fail("nf4-quantize", &err);
	struct ft_st_writer *w = ft_st_writer_new();
	struct keep k = { 0 };
	int rc = 0;
	for (size_t i = 0; i < ft_st_set_count(set) && !rc; i++) {
		const struct ft_st_tensor *t = ft_st_set_at(set, i);
		if (!is_float(t->dtype))
			continue;
		float *f = keep_alloc(&k, t->nelem * sizeof(float));
		if (ft_st_to_f32(t, f, &err)) {
			rc = fail("nf4-quantize", &err);
			break;
		}
		if (t->ndim != 2) {
			if (ft_st_writer_add(w, t->name, FT_DTYPE_F32, t->ndim, t->shape, f, &err))
				rc = fail("nf4-quantize", &err);
			continue;
		}
		struct ft_nf4 *q = keep_alloc(&k, sizeof(*q));
		void *mem = keep_alloc(&k, ft_nf4_layout(t->shape[0], t->shape[1], nested));
		ft_nf4_point(q, mem, t->shape[0], t->shape[1], nested);
		q->src_dtype = (int)t->dtype;
		struct ft_buf *js = keep_json(&k);
		if (ft_nf4_quantize(q, f, &err) || ft_nf4_state_json(q, js) ||
		    ft_nf4_st_add(w, t->name, q, js, &err))
			rc = fail("nf4-quantize", &err);
	}
	if (!rc && ft_st_writer_write(w, argv[2], &err))
		rc = fail("nf4-quantize", &err);
	keep_release(&k);
	ft_st_writer_free(w);
	ft_st_set_close(set);
	return rc;
}

int cmd_nf4_dequantize(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: ft-train nf4-dequantize DIR OUT\n");
		return 2;
	}
	struct ft_err err;
	ft_err_clear(&err);
	struct ft_st_set *set = NULL;
	if (ft_st_set_open(argv[1], &set, &err))
		return fail("nf4-dequantize", &err);
	struct ft_st_writer *w = ft_st_writer_new();
	struct keep k = { 0 };
	int rc = 0;
	for (size_t i = 0; i < ft_st_set_count(set) && !rc; i++) {
		const struct ft_st_tensor *t = ft_st_set_at(set, i);
		if (t->dtype != FT_DTYPE_U8 || !ft_nf4_st_has(set, t->name))
			continue;
		struct ft_nf4_state st;
		const struct ft_st_tensor *qs = NULL;
		char qsn[512];
		snprintf(qsn, sizeof qsn, "%s.quant_state.bitsandbytes__nf4", t->name);
		qs = ft_st_set_find(set, qsn);
		if (!qs || ft_nf4_state_parse(qs->data, (size_t)qs->nbytes, &st, &err)) {
			rc = fail("nf4-dequantize", &err);
			break;
		}
		struct ft_nf4 q;
		void *mem = keep_alloc(&k, ft_nf4_layout(st.rows, st.cols, st.nested));
		ft_nf4_point(&q, mem, st.rows, st.cols, st.nested);
		float *out = keep_alloc(&k, q.n * sizeof(float));
		int64_t shape[2] = { st.rows, st.cols };
		if (ft_nf4_st_read(set, t->name, &st, &q, &err)) {
			rc = fail("nf4-dequantize", &err);
			break;
		}
		ft_nf4_dequant(&q, out);
		if (ft_st_writer_add(w, t->name, FT_DTYPE_F32, 2, shape, out, &err))
			rc = fail("nf4-dequantize", &err);
	}
	if (!rc && ft_st_writer_write(w, argv[2], &err))
		rc = fail("nf4-dequantize", &err);
	keep_release(&k);
	ft_st_writer_free(w);
	ft_st_set_close(set);
	return rc;
}
