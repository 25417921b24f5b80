/*
 * rouge.c - ROUGE-L (Lin 2004) as rouge-score's _score_lcs: the longest
 * common subsequence of the two token lists by the textbook dynamic
 * programme, two rows at a time:
 *   L[i][j] = L[i-1][j-1] + 1            if t_i = p_j
 *           = max(L[i-1][j], L[i][j-1])  otherwise
 * precision = L / |p|, recall = L / |t|, F = 2 P R / (P + R) (0 when P + R = 0).
 * Tokens are compared by id (text_util.c's interner).
 */
#include "text_int.h"

/* ids of the space-separated tokens of c; *ids malloc'd */
static enum ft_rc token_ids(struct interner *in, const struct cps *c, const char *what,
			    uint32_t **ids, size_t *n, struct ft_err *err)
{
	struct span *sp;
	size_t k;
	enum ft_rc rc = ft_text_split(c, &sp, &k, err);
	if (rc)
		return rc;
	if (k > FT_TEXT_MAX_TOKENS) {
		free(sp);
		return ft_failf(err, FT_ELIMIT, NULL,
				"%s has %zu tokens (ROUGE-L takes at most %d)", what, k,
				FT_TEXT_MAX_TOKENS);
	}
	uint32_t *v = malloc((k ? k : 1) * sizeof *v);
	if (!v) {
		free(sp);
		return ft_failf(err, FT_ENOMEM, NULL, "out of memory");
	}
	for (size_t i = 0; i < k; i++) {
		long id = interner_id(in, c->v + sp[i].at, sp[i].len);
		if (id < 0) {
			free(sp);
			free(v);
			return ft_failf(err, FT_ENOMEM, NULL, "out of memory");
		}
		v[i] = (uint32_t)id;
	}
	free(sp);
	*ids = v;
	*n = k;
	return FT_OK;
}

enum ft_rc ft_text_rouge_l(const char *target, const char *prediction, enum ft_rouge_tokenizer tok,
			   struct ft_rouge *out, struct ft_err *err)
{
	struct cps ct = { 0 }, cp = { 0 };
	struct interner in = { 0 };
	uint32_t *t = NULL, *p = NULL, *row = NULL;
	size_t nt = 0, np = 0;
	enum ft_rc rc = ft_text_rouge_tokens(target, "the target", tok, &ct, err);
	rc = rc ? rc : ft_text_rouge_tokens(prediction, "the prediction", tok, &cp, err);
	rc = rc ? rc : token_ids(&in, &ct, "the target", &t, &nt, err);
	rc = rc ? rc : token_ids(&in, &cp, "the prediction", &p, &np, err);
	if (rc)
		goto out;
	*out = (struct ft_rouge){ 0, 0, 0 };
	if (nt == 0 || np == 0)
		goto out;
	row = calloc(2 * (np + 1), sizeof *row);
	if (!row) {
		rc = ft_failf(err, FT_ENOMEM, NULL, "out of memory");
		goto out;
	}
	uint32_t *prev = row, *cur = row + np + 1;
	for (size_t i = 1; i <= nt; i++) {
		cur[0] = 0;
		for (size_t j = 1; j <= np; j++)
			cur[j] = t[i - 1] == p[j - 1]	? prev[j - 1] + 1
				 : prev[j] > cur[j - 1] ? prev[j]
							: cur[j - 1];
		uint32_t *x = prev;
		prev = cur;
		cur = x;
	}
	double l = prev[np];
	out->precision = l / (double)np;
	out->recall = l / (double)nt;
	double s = out->precision + out->recall;
	out->fmeasure = s > 0 ? 2.0 * out->precision * out->recall / s : 0.0;
out:
	free(row);
	free(t);
	free(p);
	interner_release(&in);
	cps_release(&ct);
	cps_release(&cp);
	return rc;
}
