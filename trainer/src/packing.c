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
 * and no label is predicted across a boundary. Cost: O(n log n): the open
 * rows are indexed by their free room (struct rooms below), so finding the
 * tightest row that fits is O(log row_len + log rows).
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

/* Open rows by free room. count[] is a tree over room values 0..leaves-1
 * (leaf room v at leaves + v) counting the rows in each range, so the
 * smallest room >= len is found by one walk up and one walk down; heap[v]
 * is a min-heap of the row indices with room v (ties go to the earliest
 * row). */
struct rooms {
	size_t leaves, n_heaps;
	size_t *count;
	struct heap {
		size_t *v;
		size_t n, cap;
	} * heap;
};

static enum ft_rc rooms_init(struct rooms *R, size_t row_len, struct ft_err *err)
{
	R->leaves = 1;
	while (R->leaves <= row_len)
		R->leaves <<= 1;
	R->count = calloc(2 * R->leaves, sizeof(*R->count));
	R->n_heaps = row_len + 1;
	R->heap = calloc(R->n_heaps, sizeof(*R->heap));
	if (!R->count || !R->heap)
		return ft_failf(err, FT_ENOMEM, "out_of_memory", "packing: out of memory");
	return FT_OK;
}

static void rooms_release(struct rooms *R)
{
	for (size_t v = 0; R->heap && v < R->n_heaps; v++)
		free(R->heap[v].v);
	free(R->heap);
	free(R->count);
	memset(R, 0, sizeof(*R));
}

static enum ft_rc rooms_add(struct rooms *R, size_t room, size_t row)
{
	struct heap *h = &R->heap[room];
	if (h->n == h->cap) {
		size_t ncap = h->cap ? h->cap * 2 : 4;
		size_t *v = realloc(h->v, ncap * sizeof(*v));
		if (!v)
			return FT_ENOMEM;
		h->v = v;
		h->cap = ncap;
	}
	size_t i = h->n++;
	while (i > 0 && h->v[(i - 1) / 2] > row) { /* sift up */
		h->v[i] = h->v[(i - 1) / 2];
		i = (i - 1) / 2;
	}
	h->v[i] = row;
	for (size_t node = R->leaves + room; node >= 1; node >>= 1)
		R->count[node]++;
	return FT_OK;
}

/* The earliest row among those with the smallest room >= len, removed from
 * the index (its room in *room); SIZE_MAX when no row has room. */
static size_t rooms_take(struct rooms *R, size_t len, size_t *room)
{
	size_t node = R->leaves + len;
	if (len >= R->leaves)
		return SIZE_MAX;
	if (R->count[node] == 0) {
		for (;;) {
			if (node == 1)
				return SIZE_MAX;
			if ((node & 1) == 0 && R->count[node + 1] > 0) {
				node++;
				break;
			}
			node >>= 1;
		}
		while (node < R->leaves)
			node = R->count[2 * node] > 0 ? 2 * node : 2 * node + 1;
	}
	*room = node - R->leaves;
	struct heap *h = &R->heap[*room];
	size_t row = h->v[0], last = h->v[--h->n], i = 0;
	for (;;) { /* sift down */
		size_t c = 2 * i + 1;
		if (c >= h->n)
			break;
		if (c + 1 < h->n && h->v[c + 1] < h->v[c])
			c++;
		if (h->v[c] >= last)
			break;
		h->v[i] = h->v[c];
		i = c;
	}
	if (h->n > 0)
		h->v[i] = last;
	for (; node >= 1; node >>= 1)
		R->count[node]--;
	return row;
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
	size_t *row_of = NULL, *fill = NULL, *ndoc = NULL;
	struct rooms rooms = { 0 };
	size_t n_rows = 0;
	enum ft_rc rc = FT_OK;

	memset(out, 0, sizeof(*out));
	if (row_len == 0)
		return ft_failf(err, FT_EINVAL, "invalid_value", "packing: row length must be > 0");
	out->row_len = row_len;
	if (n_docs == 0)
		return FT_OK;
	if (row_len > FT_PACK_MAX_ROW)
		return ft_failf(err, FT_EINVAL, "invalid_value",
				"packing: row length %zu is over the limit of %zu", row_len,
				FT_PACK_MAX_ROW);
	ord = calloc(n_docs, sizeof(*ord));
	row_of = calloc(n_docs, sizeof(*row_of));
	if (!ord || !row_of) {
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
	if ((rc = rooms_init(&rooms, row_len, err)))
		goto out_tmp;
	for (size_t k = 0; k < n_docs; k++) {
		size_t len = ord[k].len, room, r;
		if (len == 0) {
			row_of[ord[k].idx] = SIZE_MAX; /* empty documents take no room */
			continue;
		}
		r = rooms_take(&rooms, len, &room);
		if (r == SIZE_MAX) {
			r = n_rows++;
			room = row_len;
		}
		row_of[ord[k].idx] = r;
		if (room > len && rooms_add(&rooms, room - len, r)) {
			rc = ft_failf(err, FT_ENOMEM, "out_of_memory", "packing: out of memory");
			goto out_tmp;
		}
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
	rooms_release(&rooms);
	free(fill);
	free(ndoc);
	if (rc)
		ft_packed_release(out);
	return rc;
}
