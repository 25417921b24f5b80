/*
 * rows_dataset.c - training rows from the dataset pipeline (ft/dataset.h):
 * chat, instruction, prompt/completion and text JSONL files are rendered
 * with the model's chat template (or a named one), tokenized with the
 * model's tokenizer.json and labelled (assistant tokens trained by
 * default), then become the same rows as pre-tokenized input (rows_int.h).
 * Rows longer than max_len are truncated. Every row error names its line.
 */
#include "ft/dataset.h"
#include "rows_int.h"

static enum ft_rc append(struct ft_rows *r, const struct ft_example *ex, size_t *cap,
			 size_t *offcap, struct ft_err *err)
{
	size_t take = FT_MIN(ex->ids.len, (size_t)r->max_len), len0 = r->off[r->n];
	if (r->n + 2 > *offcap) {
		size_t *p = realloc(r->off, 2 * *offcap * sizeof(size_t));
		if (!p)
			return ft_failf(err, FT_ENOMEM, NULL, "out of memory for the rows");
		r->off = p;
		*offcap *= 2;
	}
	if (len0 + take > *cap) {
		size_t nc = FT_MAX(len0 + take, *cap ? *cap * 2 : 4096);
		int32_t *a = realloc(r->ids, nc * sizeof(int32_t));
		if (a)
			r->ids = a;
		int32_t *b = a ? realloc(r->labels, nc * sizeof(int32_t)) : NULL;
		if (!b)
			return ft_failf(err, FT_ENOMEM, NULL, "out of memory for the rows");
		r->labels = b;
		*cap = nc;
	}
	memcpy(r->ids + len0, ex->ids.v, take * sizeof(int32_t));
	memcpy(r->labels + len0, ex->labels.v, take * sizeof(int32_t));
	r->off[r->n + 1] = len0 + take;
	r->n++;
	return FT_OK;
}

enum ft_rc ft_rows_load_dataset(const char *path, const char *model_dir, const char *template_name,
				int vocab, int max_len, bool packing, struct ft_rows *r,
				struct ft_err *err)
{
	memset(r, 0, sizeof(*r));
	r->max_len = max_len;
	struct ft_tokenizer *tok = NULL;
	enum ft_rc rc = ft_tokenizer_load(model_dir, &tok, err);
	if (rc)
		return rc;
	if (ft_tokenizer_vocab_size(tok) > (size_t)vocab) {
		rc = ft_failf(err, FT_EINVAL, NULL,
			      "the tokenizer has %zu tokens but the model only %d embeddings",
			      ft_tokenizer_vocab_size(tok), vocab);
		goto free_tok;
	}
	struct ft_data_opts o;
	ft_data_opts_default(&o);
	o.template_name = template_name;
	o.method = FT_METHOD_SFT;
	o.max_seq_len = 0;
	struct ft_dataset *ds = NULL;
	if ((rc = ft_dataset_open(path, tok, NULL, &o, &ds, err)))
		goto free_tok;
	size_t cap = 0, offcap = 1024;
	r->off = calloc(offcap, sizeof(size_t));
	struct ft_example ex = { 0 };
	bool eof = false;
	if (!r->off) {
		rc = ft_failf(err, FT_ENOMEM, NULL, "out of memory");
		goto free_ds;
	}
	while (!(rc = ft_dataset_next(ds, FT_SPLIT_TRAIN, &ex, &eof, err)) && !eof)
		if ((rc = append(r, &ex, &cap, &offcap, err)))
			break;
	if (!rc && r->n == 0)
		rc = ft_failf(err, FT_EINVAL, "empty_dataset", "\"%s\" has no rows", path);
	if (!rc)
		rc = ft_rows_make_units(r, packing, err);
	if (rc) {
		ft_err_prefixf(err, "%s: ", path);
		ft_rows_release(r);
	}
	ft_example_release(&ex);
free_ds:
	ft_dataset_free(ds);
free_tok:
	ft_tokenizer_free(tok);
	return rc;
}
