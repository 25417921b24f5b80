/*
 * text_util.c - code-point strings, strict UTF-8, Python's whitespace set,
 * and the token interner (open addressing, FNV-1a over code points).
 */
#include "text_int.h"

#define CPS_MAX ((size_t)FT_TEXT_MAX_BYTES * 4)

void cps_release(struct cps *c)
{
	free(c->v);
	*c = (struct cps){ 0 };
}

static enum ft_rc cps_reserve(struct cps *c, size_t n)
{
	if (n > CPS_MAX || c->len > CPS_MAX - n)
		return FT_ELIMIT;
	if (c->len + n <= c->cap)
		return FT_OK;
	size_t cap = c->cap ? c->cap : 64;
	while (cap < c->len + n)
		cap *= 2;
	uint32_t *v = realloc(c->v, cap * sizeof *v);
	if (!v)
		return FT_ENOMEM;
	c->v = v;
	c->cap = cap;
	return FT_OK;
}

enum ft_rc cps_push(struct cps *c, uint32_t cp)
{
	enum ft_rc rc = cps_reserve(c, 1);
	if (!rc)
		c->v[c->len++] = cp;
	return rc;
}

enum ft_rc cps_append(struct cps *c, const uint32_t *v, size_t n)
{
	enum ft_rc rc = cps_reserve(c, n);
	if (!rc && n) {
		memcpy(c->v + c->len, v, n * sizeof *v);
		c->len += n;
	}
	return rc;
}

enum ft_rc ft_text_decode(const char *s, const char *what, struct cps *out, struct ft_err *err)
{
	if (!s)
		return ft_failf(err, FT_EINVAL, NULL, "%s is missing", what);
	size_t n = strlen(s);
	if (n > FT_TEXT_MAX_BYTES)
		return ft_failf(err, FT_ELIMIT, NULL, "%s is %zu bytes (at most %d)", what, n,
				FT_TEXT_MAX_BYTES);
	const unsigned char *p = (const unsigned char *)s;
	enum ft_rc rc = cps_reserve(out, n);
	if (rc)
		return ft_failf(err, rc, NULL, "out of memory decoding %s", what);
	for (size_t i = 0; i < n;) {
		unsigned c = p[i];
		uint32_t cp;
		int len;
		if (c < 0x80) {
			cp = c;
			len = 1;
		} else if (c >= 0xc2 && c <= 0xdf) {
			cp = c & 0x1f;
			len = 2;
		} else if (c >= 0xe0 && c <= 0xef) {
			cp = c & 0x0f;
			len = 3;
		} else if (c >= 0xf0 && c <= 0xf4) {
			cp = c & 0x07;
			len = 4;
		} else {
			goto bad;
		}
		if (i + (size_t)len > n)
			goto bad;
		for (int k = 1; k < len; k++) {
			if ((p[i + k] & 0xc0) != 0x80)
				goto bad;
			cp = (cp << 6) | (p[i + k] & 0x3f);
		}
		if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			goto bad;
		out->v[out->len++] = cp;
		i += (size_t)len;
		continue;
	bad:
		return ft_failf(err, FT_EINVAL, NULL, "%s is not valid UTF-8 (byte %zu)", what, i);
	}
	return FT_OK;
}

enum ft_rc ft_text_encode(const uint32_t *v, size_t n, struct ft_buf *b)
{
	for (size_t i = 0; i < n; i++) {
		uint32_t c = v[i];
		char u[4];
		size_t k;
		if (c < 0x80) {
			u[0] = (char)c;
			k = 1;
		} else if (c < 0x800) {
			u[0] = (char)(0xc0 | (c >> 6));
			u[1] = (char)(0x80 | (c & 0x3f));
			k = 2;
		} else if (c < 0x10000) {
			u[0] = (char)(0xe0 | (c >> 12));
			u[1] = (char)(0x80 | ((c >> 6) & 0x3f));
			u[2] = (char)(0x80 | (c & 0x3f));
			k = 3;
		} else {
			u[0] = (char)(0xf0 | (c >> 18));
			u[1] = (char)(0x80 | ((c >> 12) & 0x3f));
			u[2] = (char)(0x80 | ((c >> 6) & 0x3f));
			u[3] = (char)(0x80 | (c & 0x3f));
			k = 4;
		}
		enum ft_rc rc = ft_buf_add(b, u, k);
		if (rc)
			return rc;
	}
	return FT_OK;
}

bool ft_text_is_space(uint32_t c)
{
	static const uint32_t ranges[][2] = {
		{ 0x09, 0x0d },	    { 0x1c, 0x20 },	{ 0x85, 0x85 },	    { 0xa0, 0xa0 },
		{ 0x1680, 0x1680 }, { 0x2000, 0x200a }, { 0x2028, 0x2029 }, { 0x202f, 0x202f },
		{ 0x205f, 0x205f }, { 0x3000, 0x3000 },
	};
	if (c > 0x3000)
		return false;
	for (size_t i = 0; i < FT_ARRAY_LEN(ranges); i++)
		if (c >= ranges[i][0] && c <= ranges[i][1])
			return true;
	return false;
}

enum ft_rc ft_text_split(const struct cps *c, struct span **spans, size_t *n, struct ft_err *err)
{
	size_t cap = 16, k = 0;
	struct span *s = malloc(cap * sizeof *s);
	if (!s)
		return ft_failf(err, FT_ENOMEM, NULL, "out of memory splitting text");
	for (size_t i = 0; i < c->len;) {
		if (ft_text_is_space(c->v[i])) {
			i++;
			continue;
		}
		size_t j = i;
		while (j < c->len && !ft_text_is_space(c->v[j]))
			j++;
		if (k == cap) {
			struct span *t = realloc(s, 2 * cap * sizeof *s);
			if (!t) {
				free(s);
				return ft_failf(err, FT_ENOMEM, NULL,
						"out of memory splitting text");
			}
			s = t;
			cap *= 2;
		}
		s[k++] = (struct span){ i, j - i };
		i = j;
	}
	*spans = s;
	*n = k;
	return FT_OK;
}

static uint64_t hash_cps(const uint32_t *v, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ull;
	for (size_t i = 0; i < n; i++) {
		h ^= v[i];
		h *= 0x100000001b3ull;
	}
	return h;
}

void interner_release(struct interner *in)
{
	free(in->tab);
	cps_release(&in->pool);
	*in = (struct interner){ 0 };
}

static bool interner_grow(struct interner *in)
{
	size_t cap = in->cap ? in->cap * 2 : 256;
	struct entry *t = calloc(cap, sizeof *t);
	if (!t)
		return false;
	for (size_t i = 0; i < in->cap; i++) {
		if (!in->tab[i].id)
			continue;
		size_t h = (size_t)in->tab[i].hash & (cap - 1);
		while (t[h].id)
			h = (h + 1) & (cap - 1);
		t[h] = in->tab[i];
	}
	free(in->tab);
	in->tab = t;
	in->cap = cap;
	return true;
}

long interner_id(struct interner *in, const uint32_t *v, size_t n)
{
	/* entries store id + 1 so that 0 marks an empty slot */
	if ((in->count + 1) * 2 > in->cap && !interner_grow(in))
		return -1;
	uint64_t hv = hash_cps(v, n);
	size_t h = (size_t)hv & (in->cap - 1);
	while (in->tab[h].id) {
		struct entry *e = &in->tab[h];
		if (e->hash == hv && e->len == n &&
		    (n == 0 || memcmp(in->pool.v + e->at, v, n * sizeof *v) == 0))
			return (long)e->id - 1;
		h = (h + 1) & (in->cap - 1);
	}
	size_t at = in->pool.len;
	if (cps_append(&in->pool, v, n))
		return -1;
	in->tab[h] = (struct entry){ at, n, hv, (uint32_t)++in->count };
	return (long)in->count - 1;
}
