/*
 * rows.c - pre-tokenized JSONL rows and micro-batches; format in rows_int.h.
 *
 * Batch layout: unit u of the batch fills row u from column 0; its rows
 * (documents) follow each other with doc ids 0, 1, ... and positions that
 * restart at 0; the rest of the row is padding (id 0, target -100, its own
 * document id so that it attends only to itself and other padding).
 */
#include "ft/dataset.h"
#include "rows_int.h"

#define ROWS_MAX_TOKENS ((size_t)1 << 31)

/* Grow ids and labels together to hold at least need tokens. */
static enum ft_rc reserve(struct ft_rows *r, size_t need, size_t *cap)
{
	if (need <= *cap)
		return FT_OK;
	size_t nc = FT_MAX(need, *cap ? *cap * 2 : 4096);
	int32_t *a = realloc(r->ids, nc * sizeof(int32_t));
	if (!a)
		return FT_ENOMEM;
	r->ids = a;
	int32_t *b = realloc(r->labels, nc * sizeof(int32_t));
	if (!b)
		return FT_ENOMEM;
	r->labels = b;
	*cap = nc;
	return FT_OK;
}

static enum ft_rc int_list(json_t *row, const char *key, bool required, int lo, int hi, size_t *n,
			   json_t **out, struct ft_err *err)
{
	json_t *a = json_object_get(row, key);
	*out = NULL;
	if (!a || json_is_null(a)) {
		if (required)
			return ft_failf(err, FT_EINVAL, "bad_row", "\"%s\" is missing", key);
		return FT_OK;
	}
	if (!json_is_array(a))
		return ft_failf(err, FT_EINVAL, "bad_row", "\"%s\" must be a list (got %s)", key,
				ft_json_type_name(a));
	size_t i;
	json_t *v;
	json_array_foreach(a, i, v)
	{
		if (!json_is_integer(v))
			return ft_failf(err, FT_EINVAL, "bad_row",
					"\"%s\"[%zu] must be an integer (got %s)", key, i,
					ft_json_type_name(v));
		json_int_t x = json_integer_value(v);
		if (x < lo || x > hi)
			return ft_failf(err, FT_EINVAL, "bad_row",
					"\"%s\"[%zu] = %lld is outside [%d, %d]", key, i,
					(long long)x, lo, hi);
	}
	*n = json_array_size(a);
	*out = a;
	return FT_OK;
}

static enum ft_rc parse_row(const char *line, size_t len, int vocab, int max_len, struct ft_rows *r,
			    size_t *cap, struct ft_err *err)
{
	static const char *const keys[] = { "input_ids", "labels", "attention_mask", NULL };
	json_t *row = ft_json_parse(line, len, err);
	if (!row)
		return FT_EINVAL;
	enum ft_rc rc = FT_OK;
	json_t *ids, *labels, *mask;
	size_t n = 0, nl = 0, nm = 0;
	if (!json_is_object(row)) {
		rc = ft_failf(err, FT_EINVAL, "bad_row", "a row must be an object (got %s)",
			      ft_json_type_name(row));
		goto free_row;
	}
	if ((rc = ft_json_check_keys(row, keys, err)) ||
	    (rc = int_list(row, "input_ids", true, 0, vocab - 1, &n, &ids, err)) ||
	    (rc = int_list(row, "labels", false, -100, vocab - 1, &nl, &labels, err)) ||
	    (rc = int_list(row, "attention_mask", false, 1, 1, &nm, &mask, err)))
		goto free_row;
	if (n == 0) {
		rc = ft_failf(err, FT_EINVAL, "bad_row", "\"input_ids\" is empty");
		goto free_row;
	}
	for (size_t i = 0; labels && i < nl; i++) {
		json_int_t x = json_integer_value(json_array_get(labels, i));
		if (x < 0 && x != FT_IGNORE_INDEX) {
			rc = ft_failf(err, FT_EINVAL, "bad_row",
				      "\"labels\"[%zu] = %lld must be -100 or a token id", i,
				      (long long)x);
			goto free_row;
		}
	}
	if ((labels && nl != n) || (mask && nm != n)) {
		rc = ft_failf(err, FT_EINVAL, "bad_row",
			      "\"%s\" has %zu entries but \"input_ids\" has %zu",
			      labels && nl != n ? "labels" : "attention_mask",
			      labels && nl != n ? nl : nm, n);
		goto free_row;
	}
	size_t take = FT_MIN(n, (size_t)max_len);
	size_t len0 = r->off[r->n];
	if (len0 + take > ROWS_MAX_TOKENS) {
		rc = ft_failf(err, FT_ELIMIT, NULL, "more than %zu tokens", ROWS_MAX_TOKENS);
		goto free_row;
	}
	if (reserve(r, len0 + take, cap)) {
		rc = ft_failf(err, FT_ENOMEM, NULL, "out of memory for the rows");
		goto free_row;
	}
	for (size_t i = 0; i < take; i++) {
		int32_t id = (int32_t)json_integer_value(json_array_get(ids, i));
		r->ids[len0 + i] = id;
		r->labels[len0 + i] =
			labels ? (int32_t)json_integer_value(json_array_get(labels, i)) : id;
	}
	r->off[r->n + 1] = len0 + take;
	r->n++;
free_row:
	json_decref(row);
	return rc;
}

void ft_rows_release(struct ft_rows *r)
{
	free(r->ids);
	free(r->labels);
	free(r->off);
	free(r->unit_first);
	memset(r, 0, sizeof(*r));
}

static enum ft_rc load_stream(FILE *f, const char *path, int vocab, int max_len, bool packing,
			      struct ft_rows *r, struct ft_err *err)
{
	r->max_len = max_len;
	size_t offcap = 1024, tokcap = 0;
	struct ft_jsonl_reader rd;
	enum ft_rc rc = ft_jsonl_reader_from_file(&rd, f, err);
	if (rc)
		return rc;
	r->off = calloc(offcap, sizeof(size_t));
	if (!r->off) {
		rc = ft_failf(err, FT_ENOMEM, NULL, "out of memory");
		goto close_reader;
	}
	for (;;) {
		bool eof;
		if ((rc = ft_jsonl_reader_next(&rd, &eof, err))) {
			ft_err_prefixf(err, "%s ", path);
			break;
		}
		if (eof)
			break;
		const char *line = ft_buf_str(&rd.line);
		size_t len = rd.line.len;
		if (ft_jsonl_blank(line, len))
			continue;
		if (r->n + 2 > offcap) {
			size_t *p = realloc(r->off, 2 * offcap * sizeof(size_t));
			if (!p) {
				rc = ft_failf(err, FT_ENOMEM, NULL, "out of memory");
				break;
			}
			r->off = p;
			offcap *= 2;
		}
		rc = parse_row(line, len, vocab, max_len, r, &tokcap, err);
		if (rc) {
			ft_err_prefixf(err, "%s line %ld: ", path, rd.lineno);
			if (err) /* the file's line, not the JSON parser's */
				err->line = rd.lineno;
			break;
		}
	}
	if (!rc && r->n == 0)
		rc = ft_failf(err, FT_EINVAL, "empty_dataset", "\"%s\" has no rows", path);
	if (!rc)
		rc = ft_rows_make_units(r, packing, err);
	if (rc)
		ft_rows_release(r);
close_reader:
	ft_jsonl_reader_close(&rd);
	return rc;
}

enum ft_rc ft_rows_load(const char *path, int vocab, int max_len, bool packing, struct ft_rows *r,
			struct ft_err *err)
{
	memset(r, 0, sizeof(*r));
	FILE *f = fopen(path, "rb");
	if (!f)
		return ft_failf(err, errno == ENOENT ? FT_ENOTFOUND : FT_EIO, NULL,
				"cannot open \"%s\": %s", path, strerror(errno));
	enum ft_rc rc = load_stream(f, path, vocab, max_len, packing, r, err);
	fclose(f);
	return rc;
}

enum ft_rc ft_rows_parse(const char *data, size_t len, const char *name, int vocab, int max_len,
			 bool packing, struct ft_rows *r, struct ft_err *err)
{
	memset(r, 0, sizeof(*r));
	if (len == 0)
		return ft_failf(err, FT_EINVAL, "empty_dataset", "\"%s\" has no rows", name);
	FILE *f = fmemopen((void *)(uintptr_t)data, len, "rb");
	if (!f)
		return ft_failf(err, FT_ENOMEM, NULL, "out of memory");
	enum ft_rc rc = load_stream(f, name, vocab, max_len, packing, r, err);
	fclose(f);
	return rc;
}

enum ft_rc ft_rows_make_units(struct ft_rows *r, bool packing, struct ft_err *err)
{
	free(r->unit_first);
	r->unit_first = calloc(r->n + 1, sizeof(size_t));
	if (!r->unit_first)
		return ft_failf(err, FT_ENOMEM, NULL, "out of memory");
	size_t u = 0, fill = 0;
	for (size_t i = 0; i < r->n; i++) {
		size_t l = r->off[i + 1] - r->off[i];
		if (!packing || i == 0 || fill + l > (size_t)r->max_len) {
			r->unit_first[u++] = i;
			fill = 0;
		}
		fill += l;
	}
	r->unit_first[u] = r->n;
	r->n_units = u;
	return FT_OK;
}

static int unit_len(const struct ft_rows *r, size_t u)
{
	return (int)(r->off[r->unit_first[u + 1]] - r->off[r->unit_first[u]]);
}

long ft_rows_trained(const struct ft_rows *r, const size_t *order, int count)
{
	long n = 0;
	for (int k = 0; k < count; k++) {
		size_t u = order[k];
		for (size_t i = r->unit_first[u]; i < r->unit_first[u + 1]; i++)
			for (size_t t = r->off[i] + 1; t < r->off[i + 1]; t++)
				n += r->labels[t] != FT_IGNORE_INDEX;
	}
	return n;
}

void ft_mbatch_build(struct ft_mbatch *mb, const struct ft_rows *r, const size_t *order, int count)
{
	int T = 1;
	for (int k = 0; k < count; k++)
		T = FT_MAX(T, unit_len(r, order[k]));
	size_t N = (size_t)count * T;
	mb->ids = realloc(mb->ids, N * sizeof(int32_t));
	mb->targets = realloc(mb->targets, N * sizeof(int32_t));
	mb->pos = realloc(mb->pos, N * sizeof(int32_t));
	mb->doc = realloc(mb->doc, N * sizeof(int32_t));
	FT_ASSERT(mb->ids && mb->targets && mb->pos && mb->doc);
	mb->n_tokens = mb->n_trained = 0;
	for (int k = 0; k < count; k++) {
		size_t u = order[k], col = 0, base = (size_t)k * T;
		int32_t d = 0;
		for (size_t i = r->unit_first[u]; i < r->unit_first[u + 1]; i++, d++) {
			for (size_t t = r->off[i]; t < r->off[i + 1]; t++, col++) {
				mb->ids[base + col] = r->ids[t];
				mb->targets[base + col] =
					t + 1 < r->off[i + 1] ? r->labels[t + 1] : FT_IGNORE_INDEX;
				mb->pos[base + col] = (int32_t)(t - r->off[i]);
				mb->doc[base + col] = d;
				mb->n_tokens++;
				mb->n_trained += mb->targets[base + col] != FT_IGNORE_INDEX;
			}
		}
		for (int32_t p = 0; col < (size_t)T; col++, p++) {
			mb->ids[base + col] = 0;
			mb->targets[base + col] = FT_IGNORE_INDEX;
			mb->pos[base + col] = p;
			mb->doc[base + col] = d;
		}
	}
	mb->b = (struct ft_batch){ count, T, mb->ids, mb->targets, mb->pos, mb->doc };
}

void ft_mbatch_release(struct ft_mbatch *mb)
{
	free(mb->ids);
	free(mb->targets);
	free(mb->pos);
	free(mb->doc);
	memset(mb, 0, sizeof(*mb));
}

json_t *ft_rows_first_row(const char *path, bool *opened)
{
	struct ft_jsonl_reader rd;
	*opened = ft_jsonl_reader_open(&rd, path, NULL) == FT_OK;
	if (!*opened)
		return NULL;
	json_t *row = NULL;
	for (;;) {
		bool eof;
		if (ft_jsonl_reader_next(&rd, &eof, NULL) || eof)
			break;
		if (ft_jsonl_blank(ft_buf_str(&rd.line), rd.line.len))
			continue;
		row = json_loadb(ft_buf_str(&rd.line), rd.line.len, 0, NULL);
		break;
	}
	ft_jsonl_reader_close(&rd);
	return row;
}

bool ft_rows_is_pretokenized(const char *path)
{
	bool opened;
	json_t *row = ft_rows_first_row(path, &opened);
	/* unreadable, empty or not an object: let the reader report it */
	bool pre = !opened || !json_is_object(row) || json_object_get(row, "input_ids") != NULL;
	json_decref(row);
	return pre;
}
