/*
 * packing.c - sequence packing (best-fit decreasing) and the seeded
 * train/validation split.
 *
 * Packing: documents sorted by length, longest first (ties keep input
 * order), each placed in the open row whose free room is the smallest that
 * still holds it (ties: the earliest row), else in a new row. For a row of
 * length L holding documents d0, d1, ...:
 *
 *   input_ids     d0 ids | d1 ids | ... | pad_id ...
 *   labels        -100, d0 labels[1..] | -100, d1 labels[1..] | ... | -100 ...
 *   position_ids  0 1 .. |d0|-1 | 0 1 .. |d1|-1 | ... | 0 ...
 *   doc_ids       0 ..  0 | 1 .. 1 | ... | -1 ...
 *
 * so attention is masked to equal doc ids (no token sees another document)
 * and no label is predicted across a boundary. Cost: O(n log n) sort plus
 * O(n * rows) placement, fine for the per-epoch batches the trainer packs.
 *
 * Split: h = splitmix64(seed ^ splitmix64(index)), validation when the top
 * 53 bits of h, as a fraction of 2^53, are below val_fraction.
 */
#include "ft/dataset.h"

uint64_t ft_splitmix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

enum ft_split ft_data_split(uint64_t seed, uint64_t index, double val_fraction)
{
	uint64_t h = ft_splitmix64(seed ^ ft_splitmix64(index));
	double u = (double)(h >> 11) * (1.0 / 9007199254740992.0);
	return u < val_fraction ? FT_SPLIT_VAL : FT_SPLIT_TRAIN;
}

void ft_packed_release(struct ft_packed *p)
{
	free(p->input_ids);
	free(p->labels);
	free(p->position_ids);
	free(p->doc_ids);
	memset(p, 0, sizeof(*p));
}

struct order {
	size_t len; /* after truncation */
	size_t idx;
};

static int by_len_desc(const void *a, const void *b)
{
	const struct order *x = a, *y = b;
	if (x->len != y->len)
		return x->len < y->len ? 1 : -1;
	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

enum ft_rc ft_pack_bfd(const struct ft_pack_doc *docs, size_t n_docs, size_t row_len,
		       int32_t pad_id, enum ft_pack_overflow overflow, struct ft_packed *out,
		       struct ft_err *err)
{
	struct order *ord = NULL;
	size_t *row_of = NULL, *used = NULL, *fill = NULL, *ndoc = NULL;
	size_t n_rows = 0;
	enum ft_rc rc = FT_OK;

	memset(out, 0, sizeof(*out));
	if (row_len == 0)
		return ft_failf(err, FT_EINVAL, "invalid_value", "packing: row length must be > 0");
	out->row_len = row_len;
	if (n_docs == 0)
		return FT_OK;
	ord = calloc(n_docs, sizeof(*ord));
	row_of = calloc(n_docs, sizeof(*row_of));
	used = calloc(n_docs, sizeof(*used));
	if (!ord || !row_of || !used) {
		rc = ft_failf(err, FT_ENOMEM, "out_of_memory", "packing: out of memory");
		goto out_tmp;
	}
	for (size_t i = 0; i < n_docs; i++) {
		size_t len = docs[i].len;
		if (len > row_len) {
			if (overflow == FT_PACK_REJECT) {
				rc = ft_failf(err, FT_EINVAL, "too_long",
					      "line %ld: %zu tokens, longer than the limit of %zu",
					      docs[i].line, len, row_len);
				ft_err_line(err, docs[i].line);
				goto out_tmp;
			}
			out->n_truncated++;
			out->tokens_dropped += len - row_len;
			len = row_len;
		}
		ord[i] = (struct order){ .len = len, .idx = i };
	}
	qsort(ord, n_docs, sizeof(*ord), by_len_desc);
	/* used[r]: tokens in row r */
	for (size_t k = 0; k < n_docs; k++) {
		size_t best = SIZE_MAX, best_room = SIZE_MAX;
		if (ord[k].len == 0) {
			row_of[ord[k].idx] = SIZE_MAX; /* empty documents take no room */
			continue;
		}
		for (size_t r = 0; r < n_rows; r++) {
			size_t room = row_len - used[r];
			if (room >= ord[k].len && room < best_room) {
				best = r;
				best_room = room;
			}
		}
		if (best == SIZE_MAX)
			best = n_rows++;
		used[best] += ord[k].len;
		row_of[ord[k].idx] = best;
	}
	out->n_rows = n_rows;
	size_t total = n_rows * row_len;
	out->input_ids = malloc(FT_MAX(total, 1) * sizeof(int32_t));
	out->labels = malloc(FT_MAX(total, 1) * sizeof(int32_t));
	out->position_ids = malloc(FT_MAX(total, 1) * sizeof(int32_t));
	out->doc_ids = malloc(FT_MAX(total, 1) * sizeof(int32_t));
	fill = calloc(FT_MAX(n_rows, 1), sizeof(*fill));
	ndoc = calloc(FT_MAX(n_rows, 1), sizeof(*ndoc));
	if (!out->input_ids || !out->labels || !out->position_ids || !out->doc_ids || !fill ||
	    !ndoc) {
		rc = ft_failf(err, FT_ENOMEM, "out_of_memory", "packing: out of memory");
		goto out_tmp;
	}
	for (size_t i = 0; i < total; i++) {
		out->input_ids[i] = pad_id;
		out->labels[i] = FT_LABEL_IGNORE;
		out->position_ids[i] = 0;
		out->doc_ids[i] = -1;
	}
	/* write documents in placement order so doc ids follow it */
	for (size_t k = 0; k < n_docs; k++) {
		size_t i = ord[k].idx, r = row_of[i];
		if (r == SIZE_MAX)
			continue;
		size_t at = r * row_len + fill[r];
		for (size_t t = 0; t < ord[k].len; t++) {
			out->input_ids[at + t] = docs[i].ids[t];
			out->labels[at + t] = t == 0	       ? FT_LABEL_IGNORE
					      : docs[i].labels ? docs[i].labels[t]
							       : docs[i].ids[t];
			out->position_ids[at + t] = (int32_t)t;
			out->doc_ids[at + t] = (int32_t)ndoc[r];
		}
		fill[r] += ord[k].len;
		ndoc[r]++;
	}
	out->n_pad = total;
	for (size_t r = 0; r < n_rows; r++)
		out->n_pad -= fill[r];
out_tmp:
	free(ord);
	free(row_of);
	free(used);
	free(fill);
	free(ndoc);
	if (rc)
		ft_packed_release(out);
	return rc;
}
