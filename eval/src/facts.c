/*
 * facts.c - does an answer contain every required fact? The folding and
 * the boundary rule are stated in ft/textmetrics.h; matching is a plain
 * left-to-right search of each folded spelling in the folded answer
 * (answers are short; facts are few).
 */
#include "text_int.h"

/* one code point of the folding; spaces are handled by fold() */
static uint32_t fold_cp(uint32_t c)
{
	static const uint32_t fullwidth_signs[] = { 0xa2, 0xa3, 0xac, 0xaf, 0xa6, 0xa5, 0x20a9 };
	if (c >= 0xff01 && c <= 0xff5e)
		c -= 0xfee0;
	else if (c >= 0xffe0 && c <= 0xffe6)
		c = fullwidth_signs[c - 0xffe0];
	else if (c == 0x3000)
		c = ' ';
	if (c >= 'A' && c <= 'Z')
		return c + 0x20;
	if (c >= 0xc0 && c <= 0xde && c != 0xd7)
		return c + 0x20;
	if (c >= 0x391 && c <= 0x3a9 && c != 0x3a2)
		return c + 0x20;
	if (c >= 0x410 && c <= 0x42f)
		return c + 0x20;
	if (c >= 0x400 && c <= 0x40f)
		return c + 0x50;
	return c;
}

static enum ft_rc fold(const char *text, const char *what, struct cps *out, struct ft_err *err)
{
	struct cps s = { 0 };
	enum ft_rc rc = ft_text_decode(text, what, &s, err);
	bool space = false;
	for (size_t i = 0; i < s.len && !rc; i++) {
		uint32_t c = fold_cp(s.v[i]);
		if (ft_text_is_space(c)) {
			space = true;
			continue;
		}
		if (space && out->len)
			rc = cps_push(out, ' ');
		space = false;
		rc = rc ? rc : cps_push(out, c);
	}
	if (rc && !ft_err_is_set(err))
		ft_failf(err, rc, NULL, "folding %s: out of memory", what);
	cps_release(&s);
	return rc;
}

static bool ascii_alnum(uint32_t c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool contains(const struct cps *hay, const struct cps *needle)
{
	size_t n = needle->len;
	if (n == 0 || n > hay->len)
		return false;
	bool lb = ascii_alnum(needle->v[0]), rb = ascii_alnum(needle->v[n - 1]);
	for (size_t i = 0; i + n <= hay->len; i++) {
		if (memcmp(hay->v + i, needle->v, n * sizeof *needle->v) != 0)
			continue;
		if (lb && i > 0 && ascii_alnum(hay->v[i - 1]))
			continue;
		if (rb && i + n < hay->len && ascii_alnum(hay->v[i + n]))
			continue;
		return true;
	}
	return false;
}

enum ft_rc ft_text_facts_match(const char *answer, const struct ft_text_fact *facts, size_t n_facts,
			       bool *found, size_t *n_found, struct ft_err *err)
{
	struct cps a = { 0 }, s = { 0 };
	enum ft_rc rc = fold(answer, "the answer", &a, err);
	size_t count = 0;
	for (size_t f = 0; f < n_facts && !rc; f++) {
		if (facts[f].n == 0) {
			rc = ft_failf(err, FT_EINVAL, NULL, "fact %zu has no spelling", f);
			break;
		}
		bool hit = false;
		for (size_t k = 0; k < facts[f].n && !rc; k++) {
			char what[64];
			snprintf(what, sizeof what, "fact %zu spelling %zu", f, k);
			s.len = 0;
			rc = fold(facts[f].spellings[k], what, &s, err);
			if (!rc && s.len == 0)
				rc = ft_failf(err, FT_EINVAL, NULL, "%s is empty", what);
			if (!rc && !hit)
				hit = contains(&a, &s);
		}
		if (found)
			found[f] = hit;
		count += hit;
	}
	if (!rc)
		*n_found = count;
	cps_release(&a);
	cps_release(&s);
	return rc;
}

enum ft_rc ft_text_fold(const char *text, struct ft_buf *out, struct ft_err *err)
{
	struct cps c = { 0 };
	enum ft_rc rc = fold(text, "the text", &c, err);
	if (!rc && ft_text_encode(c.v, c.len, out))
		rc = ft_failf(err, FT_ELIMIT, NULL, "the folded text does not fit the buffer");
	cps_release(&c);
	return rc;
}
