/*
 * tokenizer_bpe.c - the BPE model: a string -> id hash map, the merge table
 * and the merge loop over one pre-tokenized word.
 *
 * The merge loop is the tokenizers package's Word::merge_all, so that ties
 * and stale entries resolve the same way:
 *   - the word starts as one symbol per character (vocab lookup with
 *     continuing_subword_prefix / end_of_word_suffix; otherwise <0xXX> byte
 *     tokens when byte_fallback has all of them, otherwise unk, fused into
 *     the previous unk when fuse_unk; no unk token: the character is dropped);
 *   - a min-heap holds candidate merges (rank, position); the lowest rank
 *     wins, ties go to the leftmost position;
 *   - popping an entry whose pair no longer exists (or now merges into a
 *     different token) skips it; after a merge, the pairs with the new left
 *     and right neighbours are pushed.
 * Symbols are a doubly linked list inside an array, so each merge is O(log n)
 * and a long word costs O(n log n), never O(n^2).
 */
#include "tokenizer_int.h"

/* ---- string map: open addressing, keys copied into one allocation each ---- */

struct tok_strent {
	char *key;
	uint32_t len;
	uint32_t hash;
	int32_t val;
};

struct tok_strmap {
	struct tok_strent *e;
	size_t cap, n;
};

static uint32_t hash_bytes(const char *s, size_t n)
{
	uint32_t h = 2166136261u; /* FNV-1a */
	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)s[i];
		h *= 16777619u;
	}
	return h;
}

struct tok_strmap *tok_strmap_new(size_t expect)
{
	struct tok_strmap *m = calloc(1, sizeof(*m));
	if (!m)
		return NULL;
	size_t cap = 16;
	while (cap < expect * 2 && cap < ((size_t)1 << 40))
		cap <<= 1;
	m->e = calloc(cap, sizeof(*m->e));
	if (!m->e) {
		free(m);
		return NULL;
	}
	m->cap = cap;
	return m;
}

void tok_strmap_free(struct tok_strmap *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->cap; i++)
		free(m->e[i].key);
	free(m->e);
	free(m);
}

static struct tok_strent *slot(const struct tok_strmap *m, const char *k, size_t n, uint32_t h)
{
	size_t mask = m->cap - 1, i = h & mask;
	for (;;) {
		struct tok_strent *e = &m->e[i];
		if (!e->key || (e->hash == h && e->len == n && memcmp(e->key, k, n) == 0))
			return e;
		i = (i + 1) & mask;
	}
}

static enum ft_rc grow(struct tok_strmap *m)
{
	size_t cap = m->cap * 2;
	struct tok_strent *e = calloc(cap, sizeof(*e)), *old = m->e;
	if (!e)
		return FT_ENOMEM;
	size_t oldcap = m->cap;
	m->e = e;
	m->cap = cap;
	for (size_t i = 0; i < oldcap; i++)
		if (old[i].key)
			*slot(m, old[i].key, old[i].len, old[i].hash) = old[i];
	free(old);
	return FT_OK;
}

enum ft_rc tok_strmap_put(struct tok_strmap *m, const char *k, size_t n, int32_t v)
{
	if (n > UINT32_MAX)
		return FT_ELIMIT;
	if ((m->n + 1) * 2 > m->cap && grow(m))
		return FT_ENOMEM;
	uint32_t h = hash_bytes(k, n);
	struct tok_strent *e = slot(m, k, n, h);
	if (!e->key) {
		e->key = malloc(n + 1);
		if (!e->key)
			return FT_ENOMEM;
		memcpy(e->key, k, n);
		e->key[n] = 0;
		e->len = (uint32_t)n;
		e->hash = h;
		m->n++;
	}
	e->val = v;
	return FT_OK;
}

int32_t tok_strmap_get(const struct tok_strmap *m, const char *k, size_t n)
{
	if (!m || n > UINT32_MAX)
		return -1;
	struct tok_strent *e = slot(m, k, n, hash_bytes(k, n));
	return e->key ? e->val : -1;
}

/* ---- merges: (left, right) -> (rank, new id) ---- */

static inline uint64_t pair_key(int32_t a, int32_t b)
{
	return ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
}

static inline size_t pair_hash(uint64_t k, size_t mask)
{
	k ^= k >> 33;
	k *= 0xff51afd7ed558ccdULL;
	k ^= k >> 33;
	return (size_t)k & mask;
}

/* Index of the key's slot (empty slots hold UINT64_MAX). */
static size_t merge_slot(const struct tok_bpe *m, uint64_t k)
{
	size_t mask = m->mcap - 1, i = pair_hash(k, mask);
	while (m->mkey[i] != UINT64_MAX && m->mkey[i] != k)
		i = (i + 1) & mask;
	return i;
}

static enum ft_rc merges_grow(struct tok_bpe *m)
{
	size_t cap = m->mcap ? m->mcap * 2 : 1024, oldcap = m->mcap;
	uint64_t *k = malloc(cap * sizeof(*k));
	uint32_t *r = malloc(cap * sizeof(*r));
	int32_t *nw = malloc(cap * sizeof(*nw));
	if (!k || !r || !nw) {
		free(k);
		free(r);
		free(nw);
		return FT_ENOMEM;
	}
	for (size_t i = 0; i < cap; i++)
		k[i] = UINT64_MAX;
	uint64_t *ok = m->mkey;
	uint32_t *orank = m->mrank;
	int32_t *onew = m->mnew;
	m->mkey = k;
	m->mrank = r;
	m->mnew = nw;
	m->mcap = cap;
	for (size_t i = 0; i < oldcap; i++) {
		if (ok[i] == UINT64_MAX)
			continue;
		size_t s = merge_slot(m, ok[i]);
		k[s] = ok[i];
		r[s] = orank[i];
		nw[s] = onew[i];
	}
	free(ok);
	free(orank);
	free(onew);
	return FT_OK;
}

enum ft_rc tok_bpe_add_merge(struct tok_bpe *m, int32_t a, int32_t b, int32_t c, uint32_t rank)
{
	if ((m->mn + 1) * 2 > m->mcap && merges_grow(m))
		return FT_ENOMEM;
	uint64_t k = pair_key(a, b);
	size_t s = merge_slot(m, k);
	if (m->mkey[s] == UINT64_MAX) {
		m->mkey[s] = k;
		m->mn++;
	}
	m->mrank[s] = rank;
	m->mnew[s] = c;
	return FT_OK;
}

/* Rank and new id of the pair, false when it does not merge. */
static inline bool merge_get(const struct tok_bpe *m, int32_t a, int32_t b, uint32_t *rank,
			     int32_t *nw)
{
	if (!m->mcap)
		return false;
	size_t s = merge_slot(m, pair_key(a, b));
	if (m->mkey[s] == UINT64_MAX)
		return false;
	*rank = m->mrank[s];
	*nw = m->mnew[s];
	return true;
}

void tok_bpe_release(struct tok_bpe *m)
{
	tok_strmap_free(m->vocab);
	free(m->mkey);
	free(m->mrank);
	free(m->mnew);
	free(m->prefix);
	free(m->suffix);
	memset(m, 0, sizeof(*m));
}

/* ---- the merge loop ---- */

struct tok_sym {
	int32_t id;
	int32_t prev, next; /* -1: none */
	uint32_t len; /* bytes; 0 once merged into the left neighbour */
};

struct tok_merge {
	uint32_t rank;
	uint32_t pos;
	int32_t nw;
};

void tok_bpe_scratch_release(struct tok_bpe_scratch *s)
{
	free(s->sym);
	free(s->heap);
	ft_buf_release(&s->key);
	memset(s, 0, sizeof(*s));
}

static inline bool merge_less(const struct tok_merge *a, const struct tok_merge *b)
{
	return a->rank != b->rank ? a->rank < b->rank : a->pos < b->pos;
}

static void heap_push(struct tok_merge *h, size_t *n, struct tok_merge x)
{
	size_t i = (*n)++;
	while (i > 0) {
		size_t p = (i - 1) / 2;
		if (!merge_less(&x, &h[p]))
			break;
		h[i] = h[p];
		i = p;
	}
	h[i] = x;
}

static struct tok_merge heap_pop(struct tok_merge *h, size_t *n)
{
	struct tok_merge top = h[0], x = h[--(*n)];
	size_t i = 0;
	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= *n)
			break;
		if (c + 1 < *n && merge_less(&h[c + 1], &h[c]))
			c++;
		if (!merge_less(&h[c], &x))
			break;
		h[i] = h[c];
		i = c;
	}
	if (*n)
		h[i] = x;
	return top;
}

static enum ft_rc add_sym(struct tok_bpe_scratch *s, size_t *n, int32_t id, size_t len)
{
	if (*n == s->sym_cap) {
		size_t cap = s->sym_cap ? 2 * s->sym_cap : 64;
		struct tok_sym *v = realloc(s->sym, cap * sizeof(*v));
		if (!v)
			return FT_ENOMEM;
		s->sym = v;
		s->sym_cap = cap;
	}
	if (*n >= INT32_MAX - 1)
		return FT_ELIMIT;
	s->sym[*n] = (struct tok_sym){ id, (int32_t)*n - 1, (int32_t)*n + 1, (uint32_t)len };
	(*n)++;
	return FT_OK;
}

/* Look up prefix + w[0..n) + suffix as the flags say. */
static int32_t lookup_piece(const struct tok_bpe *m, struct tok_bpe_scratch *s, const char *w,
			    size_t n, bool first, bool last)
{
	bool pre = !first && m->prefix, suf = last && m->suffix;
	if (!pre && !suf) {
		unsigned char c = (unsigned char)w[0];
		if (n == 1)
			return m->char_id[c];
		if (n == 2 && c < 0xD0) /* U+0080..U+03FF */
			return m->char_id[((c & 0x1F) << 6) | ((unsigned char)w[1] & 0x3F)];
		return tok_strmap_get(m->vocab, w, n);
	}
	ft_buf_reset(&s->key);
	if ((pre && ft_buf_add(&s->key, m->prefix, m->prefix_len)) || ft_buf_add(&s->key, w, n) ||
	    (suf && ft_buf_add(&s->key, m->suffix, m->suffix_len)))
		return -1;
	return tok_strmap_get(m->vocab, s->key.ptr, s->key.len);
}

enum ft_rc tok_bpe_encode_word(const struct tok_bpe *m, const char *w, size_t n,
			       struct tok_bpe_scratch *s, struct ft_ids *out)
{
	enum ft_rc rc;
	if (n == 0)
		return FT_OK;
	if (m->ignore_merges) {
		int32_t id = tok_strmap_get(m->vocab, w, n);
		if (id >= 0)
			return ft_ids_push(out, id);
	}
	size_t ns = 0;
	int32_t unk_id = -1;
	size_t unk_len = 0;
	for (size_t i = 0; i < n;) {
		uint32_t cp;
		size_t cl = ft_utf8_next(w + i, n - i, &cp);
		int32_t id = lookup_piece(m, s, w + i, cl, i == 0, i + cl == n);
		if (id >= 0) {
			if (unk_id >= 0) {
				if ((rc = add_sym(s, &ns, unk_id, unk_len)))
					return rc;
				unk_id = -1;
			}
			if ((rc = add_sym(s, &ns, id, cl)))
				return rc;
			i += cl;
			continue;
		}
		if (m->byte_fallback) {
			/* The bytes of the looked-up string, prefix/suffix included. */
			const char *b = w + i;
			size_t bn = cl;
			if ((i > 0 && m->prefix) || (i + cl == n && m->suffix)) {
				b = s->key.ptr;
				bn = s->key.len;
			}
			bool all = true;
			for (size_t k = 0; k < bn && all; k++)
				all = m->byte_id[(unsigned char)b[k]] >= 0;
			if (all) {
				/* As the tokenizers package: a pending unk is not flushed here. */
				for (size_t k = 0; k < bn; k++)
					if ((rc = add_sym(s, &ns, m->byte_id[(unsigned char)b[k]],
							  1)))
						return rc;
				i += cl;
				continue;
			}
		}
		if (m->unk_id >= 0) {
			if (unk_id >= 0 && m->fuse_unk) {
				unk_len += cl;
			} else {
				if (unk_id >= 0 && (rc = add_sym(s, &ns, unk_id, unk_len)))
					return rc;
				unk_id = m->unk_id;
				unk_len = cl;
			}
		}
		i += cl;
	}
	if (unk_id >= 0 && (rc = add_sym(s, &ns, unk_id, unk_len)))
		return rc;
	if (ns == 0)
		return FT_OK;
	s->sym[ns - 1].next = -1;

	/* Candidate merges of adjacent pairs. */
	if (s->heap_cap < ns) {
		struct tok_merge *h = realloc(s->heap, ns * 2 * sizeof(*h));
		if (!h)
			return FT_ENOMEM;
		s->heap = h;
		s->heap_cap = ns * 2;
	}
	size_t hn = 0;
	for (size_t i = 0; i + 1 < ns; i++) {
		uint32_t rank;
		int32_t nw;
		if (merge_get(m, s->sym[i].id, s->sym[i + 1].id, &rank, &nw))
			heap_push(s->heap, &hn, (struct tok_merge){ rank, (uint32_t)i, nw });
	}
	while (hn) {
		struct tok_merge top = heap_pop(s->heap, &hn);
		struct tok_sym *cur = &s->sym[top.pos];
		if (cur->len == 0 || cur->next < 0)
			continue;
		struct tok_sym right = s->sym[cur->next];
		uint32_t rank;
		int32_t nw;
		if (!merge_get(m, cur->id, right.id, &rank, &nw) || nw != top.nw)
			continue;
		s->sym[cur->next].len = 0;
		cur->id = top.nw;
		cur->len += right.len;
		cur->next = right.next;
		if (right.next >= 0)
			s->sym[right.next].prev = (int32_t)top.pos;
		/* At most two pushes per merge and one merge per symbol: the heap
		 * never holds more than 3 * ns entries; grow if needed. */
		if (hn + 2 > s->heap_cap) {
			struct tok_merge *h = realloc(s->heap, (s->heap_cap * 2 + 2) * sizeof(*h));
			if (!h)
				return FT_ENOMEM;
			s->heap = h;
			s->heap_cap = s->heap_cap * 2 + 2;
		}
		if (cur->prev >= 0 && merge_get(m, s->sym[cur->prev].id, cur->id, &rank, &nw))
			heap_push(s->heap, &hn,
				  (struct tok_merge){ rank, (uint32_t)cur->prev, nw });
		if (cur->next >= 0 && merge_get(m, cur->id, s->sym[cur->next].id, &rank, &nw))
			heap_push(s->heap, &hn, (struct tok_merge){ rank, top.pos, nw });
	}
	for (size_t i = 0; i < ns; i++)
		if (s->sym[i].len && (rc = ft_ids_push(out, s->sym[i].id)))
			return rc;
	return FT_OK;
}
