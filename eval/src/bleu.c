/*
 * bleu.c - corpus BLEU (Papineni et al. 2002) as sacrebleu's BLEU with its
 * defaults (tokenizer 13a or zh, "exp" smoothing, order 4).
 *
 * Per segment: hypothesis n-grams (n = 1..4) with counts; each reference's
 * n-gram counts, taking the maximum over references; correct_n += min(hyp
 * count, reference max), total_n += hyp count; sys_len += hypothesis
 * tokens, ref_len += the reference length closest to it (the shorter on a
 * tie). Then over the corpus:
 *   bp = 1 if sys_len >= ref_len, else exp(1 - ref_len / sys_len) (0 if sys_len = 0)
 *   0 if no n-gram of any order is correct; otherwise for n = 1..4, stopping
 *   at the first order with total_n = 0 (whose precision stays 0):
 *     p_n = 100 correct_n / total_n, or, when correct_n = 0,
 *     100 / (2^z total_n) with z counting the zero orders so far ("exp",
 *     mteval-v13a's smoothing)
 *   score = bp exp(sum_n log p_n / 4), log 0 taken as -9999999999.
 */
#include "text_int.h"

#include <math.h>

struct ngram {
	uint32_t id[FT_BLEU_MAX_ORDER];
	uint32_t n, count;
};

static int cmp_ngram(const void *pa, const void *pb)
{
	const struct ngram *a = pa, *b = pb;
	if (a->n != b->n)
		return a->n < b->n ? -1 : 1;
	for (uint32_t i = 0; i < a->n; i++)
		if (a->id[i] != b->id[i])
			return a->id[i] < b->id[i] ? -1 : 1;
	return 0;
}

struct seq {
	uint32_t *ids;
	size_t len;
};

/* sorted distinct n-grams of s with counts; *out malloc'd */
static enum ft_rc ngrams_of(const struct seq *s, struct ngram **out, size_t *nout)
{
	size_t cap = 0;
	for (uint32_t n = 1; n <= FT_BLEU_MAX_ORDER; n++)
		cap += s->len >= n ? s->len - n + 1 : 0;
	struct ngram *g = malloc((cap ? cap : 1) * sizeof *g);
	if (!g)
		return FT_ENOMEM;
	size_t k = 0;
	for (uint32_t n = 1; n <= FT_BLEU_MAX_ORDER; n++)
		for (size_t i = 0; i + n <= s->len; i++) {
			struct ngram x = { { 0 }, n, 1 };
			memcpy(x.id, s->ids + i, n * sizeof *x.id);
			g[k++] = x;
		}
	qsort(g, k, sizeof *g, cmp_ngram);
	size_t d = 0;
	for (size_t i = 0; i < k; i++) {
		if (d && cmp_ngram(&g[d - 1], &g[i]) == 0)
			g[d - 1].count++;
		else
			g[d++] = g[i];
	}
	*out = g;
	*nout = d;
	return FT_OK;
}

static enum ft_rc seq_of(struct interner *in, const char *text, const char *what,
			 enum ft_bleu_tokenizer tok, struct seq *s, struct ft_err *err)
{
	struct cps c = { 0 };
	struct span *sp = NULL;
	size_t k = 0;
	enum ft_rc rc = ft_text_bleu_tokens(text, what, tok, &c, err);
	rc = rc ? rc : ft_text_split(&c, &sp, &k, err);
	if (rc)
		goto out;
	s->ids = malloc((k ? k : 1) * sizeof *s->ids);
	if (!s->ids) {
		rc = ft_failf(err, FT_ENOMEM, NULL, "out of memory");
		goto out;
	}
	s->len = k;
	for (size_t i = 0; i < k; i++) {
		long id = interner_id(in, c.v + sp[i].at, sp[i].len);
		if (id < 0) {
			rc = ft_failf(err, FT_ENOMEM, NULL, "out of memory");
			goto out;
		}
		s->ids[i] = (uint32_t)id;
	}
out:
	free(sp);
	cps_release(&c);
	return rc;
}

/* one segment's statistics into out */
static enum ft_rc segment(struct interner *in, const char *hyp, const char *const *refs, size_t n,
			  size_t n_refs, size_t i, enum ft_bleu_tokenizer tok, struct ft_bleu *out,
			  struct ft_err *err)
{
	char what[64];
	struct seq h = { 0 }, r = { 0 };
	struct ngram *hg = NULL, *rg = NULL, *all = NULL;
	size_t nh = 0, nall = 0, cap = 0;
	long closest = -1, have = 0;
	snprintf(what, sizeof what, "hypothesis %zu", i);
	enum ft_rc rc = seq_of(in, hyp, what, tok, &h, err);
	if (!rc && ngrams_of(&h, &hg, &nh))
		rc = ft_failf(err, FT_ENOMEM, NULL, "out of memory");
	for (size_t k = 0; k < n_refs && !rc; k++) {
		const char *ref = refs[k * n + i];
		if (!ref)
			continue;
		snprintf(what, sizeof what, "reference %zu of segment %zu", k, i);
		size_t nr = 0;
		rc = seq_of(in, ref, what, tok, &r, err);
		if (!rc && ngrams_of(&r, &rg, &nr))
			rc = ft_failf(err, FT_ENOMEM, NULL, "out of memory");
		if (rc)
			break;
		long len = (long)r.len, hl = (long)h.len;
		long diff = labs(hl - len), best = labs(hl - closest);
		if (!have || diff < best || (diff == best && len < closest))
			closest = len;
		have = 1;
		if (nall + nr > cap) {
			size_t nc = (nall + nr) * 2;
			struct ngram *t = realloc(all, nc * sizeof *t);
			if (!t) {
				rc = ft_failf(err, FT_ENOMEM, NULL, "out of memory");
				break;
			}
			all = t;
			cap = nc;
		}
		if (nr) {
			memcpy(all + nall, rg, nr * sizeof *rg);
			nall += nr;
		}
		free(rg);
		rg = NULL;
		free(r.ids);
		r = (struct seq){ 0 };
	}
	if (rc)
		goto out;
	if (!have) {
		rc = ft_failf(err, FT_EINVAL, NULL, "segment %zu has no reference", i);
		goto out;
	}
	/* the maximum count of each n-gram over the references */
	if (nall)
		qsort(all, nall, sizeof *all, cmp_ngram);
	size_t d = 0;
	for (size_t k = 0; k < nall; k++) {
		if (d && cmp_ngram(&all[d - 1], &all[k]) == 0) {
			if (all[k].count > all[d - 1].count)
				all[d - 1].count = all[k].count;
		} else {
			all[d++] = all[k];
		}
	}
	for (size_t k = 0; k < nh; k++) {
		struct ngram *m = d ? bsearch(&hg[k], all, d, sizeof *all, cmp_ngram) : NULL;
		out->totals[hg[k].n - 1] += hg[k].count;
		if (m)
			out->counts[hg[k].n - 1] += hg[k].count < m->count ? hg[k].count : m->count;
	}
	out->sys_len += (long)h.len;
	out->ref_len += closest;
out:
	free(h.ids);
	free(r.ids);
	free(hg);
	free(rg);
	free(all);
	return rc;
}

enum ft_rc ft_text_bleu_corpus(const char *const *hyps, size_t n, const char *const *refs,
			       size_t n_refs, enum ft_bleu_tokenizer tok, struct ft_bleu *out,
			       struct ft_err *err)
{
	if (n == 0)
		return ft_failf(err, FT_EINVAL, NULL, "BLEU needs at least one hypothesis");
	if (n_refs == 0)
		return ft_failf(err, FT_EINVAL, NULL, "BLEU needs at least one reference stream");
	memset(out, 0, sizeof *out);
	struct interner in = { 0 };
	enum ft_rc rc = FT_OK;
	for (size_t i = 0; i < n && !rc; i++)
		rc = segment(&in, hyps[i], refs, n, n_refs, i, tok, out, err);
	interner_release(&in);
	if (rc)
		return rc;
	double sys = (double)out->sys_len, ref = (double)out->ref_len;
	out->bp = 1.0;
	if (sys < ref)
		out->bp = sys > 0 ? exp(1.0 - ref / sys) : 0.0;
	bool any = false;
	for (int k = 0; k < FT_BLEU_MAX_ORDER; k++)
		any = any || out->counts[k] > 0;
	if (!any)
		return FT_OK; /* score 0, precisions 0 */
	double smooth = 1.0, logsum = 0;
	for (int k = 0; k < FT_BLEU_MAX_ORDER; k++) {
		if (out->totals[k] == 0)
			break;
		if (out->counts[k] == 0) {
			smooth *= 2.0;
			out->precisions[k] = 100.0 / (smooth * (double)out->totals[k]);
		} else {
			out->precisions[k] =
				100.0 * (double)out->counts[k] / (double)out->totals[k];
		}
	}
	for (int k = 0; k < FT_BLEU_MAX_ORDER; k++)
		logsum += out->precisions[k] == 0.0 ? -9999999999.0 : log(out->precisions[k]);
	out->score = out->bp * exp(logsum / FT_BLEU_MAX_ORDER);
	return FT_OK;
}
