/*
 * gguf_tokenizer.c - a GGUF's tokenizer.ggml.* metadata turned into the
 * tokenizer.json (and tokenizer_config.json) a Hugging Face folder of the
 * same model holds, so that one loader (tokenizer_load.c, tok_from_json)
 * builds both, and `ft-train import` writes the same objects as files.
 *
 * tokenizer.ggml.model picks the family:
 *
 * | model | tokenizer.json                                                     |
 * |-------|--------------------------------------------------------------------|
 * | gpt2  | byte-level BPE: vocab = tokens (a token with characters outside     |
 * |       | the GPT-2 byte alphabet, as llama.cpp stores added tokens, is       |
 * |       | spelled in it, as transformers' GGUF loader does), merges = the     |
 * |       | merges, the pre-tokenizer of tokenizer.ggml.pre (table below),      |
 * |       | ByteLevel decoder                                                   |
 * | llama | SentencePiece-style BPE: Metaspace "▁" (prepend_scheme first, or    |
 * |       | never when add_space_prefix is false; no split), byte_fallback to   |
 * |       | <0xXX> tokens, fuse_unk, unk_token; merges from the file or, when   |
 * |       | it has none (converted from tokenizer.model), recovered from the    |
 * |       | scores as transformers does (below); decoder Replace ▁, ByteFallback,|
 * |       | Fuse, Strip one leading space                                       |
 *
 * Added tokens: every token of type UNKNOWN (2) or CONTROL (3), and the
 * tokens the bos / eos / unknown / padding ids name, are special added
 * tokens; USER_DEFINED (4) are added tokens that are not special. None is
 * normalized or stripped. A post-processor adds BOS (EOS) when
 * tokenizer.ggml.add_bos_token (add_eos_token) says so; when the key is
 * absent, llama.cpp's default (BOS for llama, and for gpt2 per pre below).
 *
 * Merges from scores (transformers' generate_merges with vocab_scores):
 * for every token t in order, each split of t into two tokens l + r (at a
 * character boundary) is a merge of t's score; a token's splits are
 * ordered by (id of l, id of r); then all merges are sorted, stably, by
 * score, then length of l, then length of r (characters), all descending.
 */
#include <math.h>

#include "ft/gguf.h"
#include "tokenizer_int.h"

enum token_type { TT_NORMAL = 1, TT_UNKNOWN, TT_CONTROL, TT_USER_DEFINED, TT_UNUSED, TT_BYTE };

/* Byte-level pre-tokenizers by tokenizer.ggml.pre (llama.cpp's names; the
 * same component lists the models' own tokenizer.json files hold). */
enum pre_kind { PRE_BYTELEVEL, PRE_SPLIT, PRE_DIGITS };
static const struct pre_def {
	const char *name;
	enum pre_kind kind;
	enum tok_regex re; /* PRE_SPLIT */
	bool nfc; /* an NFC normalizer first (Qwen2) */
	bool ignore_merges; /* Llama 3's BPE */
	bool add_bos; /* llama.cpp's default for add_bos_token */
} pres[] = {
	{ "gpt-2", PRE_BYTELEVEL, TOK_RE_GPT2, false, false, false },
	{ "llama-bpe", PRE_SPLIT, TOK_RE_LLAMA3, false, true, true },
	{ "llama3", PRE_SPLIT, TOK_RE_LLAMA3, false, true, true },
	{ "llama-v3", PRE_SPLIT, TOK_RE_LLAMA3, false, true, true },
	{ "qwen2", PRE_SPLIT, TOK_RE_QWEN2, true, false, false },
	{ "deepseek-r1-qwen", PRE_SPLIT, TOK_RE_QWEN2, true, false, false },
	{ "smollm", PRE_DIGITS, TOK_RE_GPT2, false, false, false },
	{ "starcoder", PRE_DIGITS, TOK_RE_GPT2, false, false, false },
};
#define PRE_NAMES "gpt-2, llama-bpe (llama3, llama-v3), qwen2, deepseek-r1-qwen, smollm, starcoder"

struct src {
	const struct ft_gguf *g;
	const char *name;
	const struct ft_gguf_kv *tokens, *types, *scores, *merges;
	uint64_t n;
	bool spm;
	long long bos, eos, unk, pad;
};

static enum ft_rc fail(const struct src *s, struct ft_err *err, const char *fmt, ...)
	FT_PRINTF(3, 4);
static enum ft_rc fail(const struct src *s, struct ft_err *err, const char *fmt, ...)
{
	char msg[400];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	return ft_failf(err, FT_EINVAL, "invalid_tokenizer", "%s: %s", s->name, msg);
}

static enum ft_rc oom(struct ft_err *err)
{
	return ft_failf(err, FT_ENOMEM, NULL, "tokenizer: out of memory");
}

static const char *token(const struct src *s, uint64_t i, uint64_t *len)
{
	return ft_gguf_arr_str(s->tokens, i, len);
}

static int token_type(const struct src *s, uint64_t i)
{
	return s->types ? (int)ft_gguf_arr_int(s->types, i) : TT_NORMAL;
}

/* ---- vocabulary ---- */

/* The token as the vocabulary spells it: byte-level vocabularies hold
 * only characters of the GPT-2 byte alphabet. */
static enum ft_rc spelled(const struct src *s, uint64_t i, struct ft_buf *b)
{
	uint64_t len;
	const char *t = token(s, i, &len);
	ft_buf_reset(b);
	if (!ft_utf8_valid(t, (size_t)len))
		return FT_EINVAL;
	bool in_alphabet = true;
	for (size_t k = 0; !s->spm && k < len && in_alphabet;) {
		uint32_t cp;
		k += ft_utf8_next(t + k, len - k, &cp);
		in_alphabet = cp < FT_ARRAY_LEN(tok_bytemap.back) && tok_bytemap.back[cp] >= 0;
	}
	if (s->spm || in_alphabet)
		return ft_buf_add(b, t, len);
	for (uint64_t k = 0; k < len; k++) {
		unsigned char c = (unsigned char)t[k];
		if (ft_buf_add(b, tok_bytemap.utf8[c], tok_bytemap.len[c]))
			return FT_ENOMEM;
	}
	return FT_OK;
}

static enum ft_rc build_vocab(const struct src *s, json_t *vocab, struct ft_err *err)
{
	struct ft_buf b = FT_BUF_INIT((size_t)1 << 30);
	enum ft_rc rc = FT_OK;
	for (uint64_t i = 0; i < s->n && !rc; i++) {
		if ((rc = spelled(s, i, &b))) {
			rc = rc == FT_EINVAL
				     ? fail(s, err,
					    "tokenizer.ggml.tokens[%" PRIu64 "] is not valid UTF-8",
					    i)
				     : oom(err);
			break;
		}
		if (json_object_setn_new(vocab, ft_buf_str(&b), b.len, json_integer((json_int_t)i)))
			rc = fail(s, err, "tokenizer.ggml.tokens[%" PRIu64 "] is not valid UTF-8",
				  i);
	}
	ft_buf_release(&b);
	return rc;
}

/* ---- merges ---- */

static enum ft_rc merges_from_file(const struct src *s, json_t *merges, struct ft_err *err)
{
	for (uint64_t i = 0; i < s->merges->n; i++) {
		uint64_t len;
		const char *m = ft_gguf_arr_str(s->merges, i, &len);
		/* llama.cpp splits at the first space after the first byte */
		const char *sp = len > 1 ? memchr(m + 1, ' ', (size_t)len - 1) : NULL;
		if (!sp)
			return fail(s, err,
				    "tokenizer.ggml.merges[%" PRIu64 "] is not two tokens "
				    "separated by a space",
				    i);
		json_t *pair = json_pack("[s%s%]", m, (size_t)(sp - m), sp + 1,
					 (size_t)(m + len - sp - 1));
		if (!pair)
			return fail(s, err, "tokenizer.ggml.merges[%" PRIu64 "] is not valid UTF-8",
				    i);
		if (json_array_append_new(merges, pair))
			return oom(err);
	}
	return FT_OK;
}

struct cand {
	int32_t l, r;
	double score;
	uint32_t len_l, len_r; /* characters */
	uint64_t seq;
};

static int by_rank(const void *a, const void *b)
{
	const struct cand *x = a, *y = b;
	if (x->score != y->score)
		return x->score > y->score ? -1 : 1;
	if (x->len_l != y->len_l)
		return x->len_l > y->len_l ? -1 : 1;
	if (x->len_r != y->len_r)
		return x->len_r > y->len_r ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static int by_ids(const void *a, const void *b)
{
	const struct cand *x = a, *y = b;
	if (x->l != y->l)
		return x->l < y->l ? -1 : 1;
	return x->r < y->r ? -1 : x->r > y->r;
}

static size_t utf8_chars(const char *t, size_t n)
{
	size_t c = 0;
	for (size_t k = 0; k < n; k++)
		c += ((unsigned char)t[k] & 0xC0) != 0x80;
	return c;
}

static enum ft_rc merges_from_scores(const struct src *s, json_t *merges, struct ft_err *err)
{
	if (!s->scores)
		return fail(
			s, err,
			"a llama tokenizer needs tokenizer.ggml.merges or tokenizer.ggml.scores");
	struct tok_strmap *ids = tok_strmap_new((size_t)s->n);
	struct tok_strmap *seen = tok_strmap_new((size_t)s->n);
	struct cand *c = NULL;
	size_t n = 0, cap = 0;
	enum ft_rc rc = FT_OK;
	if (!ids || !seen) {
		rc = oom(err);
		goto free_all;
	}
	/* token -> its last id (a Python dict built in order) */
	for (uint64_t i = 0; i < s->n && !rc; i++) {
		uint64_t len;
		const char *t = token(s, i, &len);
		double sc = ft_gguf_arr_num(s->scores, i);
		if (isnan(sc))
			rc = fail(s, err, "tokenizer.ggml.scores[%" PRIu64 "] is NaN", i);
		else if (tok_strmap_put(ids, t, (size_t)len, (int32_t)i))
			rc = oom(err);
	}
	for (uint64_t i = 0; i < s->n && !rc; i++) {
		uint64_t len;
		const char *t = token(s, i, &len);
		/* a repeated token is visited once, at its first place, with the
		 * score of its last */
		if (tok_strmap_get(seen, t, (size_t)len) >= 0)
			continue;
		if (tok_strmap_put(seen, t, (size_t)len, 1)) {
			rc = oom(err);
			break;
		}
		int32_t last = tok_strmap_get(ids, t, (size_t)len);
		double score = ft_gguf_arr_num(s->scores, (uint64_t)last);
		size_t first = n;
		for (size_t k = 1; k < len; k++) {
			if (((unsigned char)t[k] & 0xC0) == 0x80)
				continue; /* inside a character */
			int32_t l = tok_strmap_get(ids, t, k),
				r = tok_strmap_get(ids, t + k, len - k);
			if (l < 0 || r < 0)
				continue;
			if (n == cap) {
				size_t nc = cap ? 2 * cap : 4096;
				struct cand *nv = realloc(c, nc * sizeof(*c));
				if (!nv) {
					rc = oom(err);
					break;
				}
				c = nv;
				cap = nc;
			}
			c[n] = (struct cand){ l,
					      r,
					      score,
					      (uint32_t)utf8_chars(t, k),
					      (uint32_t)utf8_chars(t + k, len - k),
					      0 };
			n++;
		}
		if (n > first + 1)
			qsort(c + first, n - first, sizeof(*c), by_ids);
	}
	for (size_t i = 0; i < n; i++)
		c[i].seq = i;
	if (!rc && n > 1)
		qsort(c, n, sizeof(*c), by_rank);
	for (size_t i = 0; i < n && !rc; i++) {
		uint64_t ll, rl;
		const char *l = token(s, (uint64_t)c[i].l, &ll),
			   *r = token(s, (uint64_t)c[i].r, &rl);
		json_t *pair = json_pack("[s%s%]", l, (size_t)ll, r, (size_t)rl);
		if (!pair || json_array_append_new(merges, pair))
			rc = oom(err);
	}
free_all:
	free(c);
	tok_strmap_free(ids);
	tok_strmap_free(seen);
	return rc;
}

/* ---- the other components ---- */

static json_t *bytelevel(bool use_regex)
{
	return json_pack("{s:s, s:b, s:b, s:b}", "type", "ByteLevel", "add_prefix_space", 0,
			 "trim_offsets", 1, "use_regex", use_regex);
}

static json_t *pre_tokenizer(const struct pre_def *p)
{
	switch (p->kind) {
	case PRE_BYTELEVEL: return bytelevel(true);
	case PRE_DIGITS:
		return json_pack("{s:s, s:[{s:s, s:b}, o]}", "type", "Sequence", "pretokenizers",
				 "type", "Digits", "individual_digits", 1, bytelevel(true));
	case PRE_SPLIT:
		return json_pack("{s:s, s:[{s:s, s:{s:s}, s:s, s:b}, o]}", "type", "Sequence",
				 "pretokenizers", "type", "Split", "pattern", "Regex",
				 tok_regex_text(p->re), "behavior", "Isolated", "invert", 0,
				 bytelevel(false));
	}
	return NULL;
}

static json_t *spm_decoder(bool prefix)
{
	json_t *d = json_pack("[{s:s, s:{s:s}, s:s}, {s:s}, {s:s}]", "type", "Replace", "pattern",
			      "String", "\xe2\x96\x81", "content", " ", "type", "ByteFallback",
			      "type", "Fuse");
	if (d && prefix)
		json_array_append_new(d, json_pack("{s:s, s:s, s:i, s:i}", "type", "Strip",
						   "content", " ", "start", 1, "stop", 0));
	return json_pack("{s:s, s:o}", "type", "Sequence", "decoders", d);
}

/* TemplateProcessing adding BOS before and / or EOS after the text. */
static json_t *post_processor(const struct src *s, long long bos, long long eos)
{
	if (bos < 0 && eos < 0)
		return json_null();
	json_t *single = json_array(), *pair = json_array(), *sp = json_object();
	const long long ids[2] = { bos, eos };
	for (int k = 0; k < 2; k++) {
		if (ids[k] < 0)
			continue;
		uint64_t len;
		const char *t = token(s, (uint64_t)ids[k], &len);
		json_object_setn_new(sp, t, len,
				     json_pack("{s:s%, s:[I], s:[s%]}", "id", t, (size_t)len, "ids",
					       (json_int_t)ids[k], "tokens", t, (size_t)len));
	}
	/* single: [BOS] A [EOS]; pair: [BOS] A [EOS] [BOS] B [EOS] (B's type_id 1);
	 * k walks BOS (ids[0]), the sequence, EOS (ids[1]) */
	for (int seq = 0; seq < 2; seq++) {
		json_t *parts[2] = { single, pair };
		for (int which = 0; which < (seq ? 2 : 1); which++) {
			const char *id = which ? "B" : "A";
			for (int k = 0; k < 3; k++) {
				json_t *it = NULL;
				if (k == 1)
					it = json_pack("{s:{s:s, s:i}}", "Sequence", "id", id,
						       "type_id", which);
				else if (ids[k / 2] >= 0) {
					uint64_t len;
					const char *t = token(s, (uint64_t)ids[k / 2], &len);
					it = json_pack("{s:{s:s%, s:i}}", "SpecialToken", "id", t,
						       (size_t)len, "type_id", which);
				}
				if (it)
					json_array_append_new(parts[seq], it);
			}
		}
	}
	return json_pack("{s:s, s:o, s:o, s:o}", "type", "TemplateProcessing", "single", single,
			 "pair", pair, "special_tokens", sp);
}

static bool is_special_id(const struct src *s, uint64_t i)
{
	long long id = (long long)i;
	return id == s->bos || id == s->eos || id == s->unk || id == s->pad;
}

static enum ft_rc added_tokens(const struct src *s, json_t *added, struct ft_err *err)
{
	for (uint64_t i = 0; i < s->n; i++) {
		int tt = token_type(s, i);
		bool special = tt == TT_UNKNOWN || tt == TT_CONTROL || is_special_id(s, i);
		if (!special && tt != TT_USER_DEFINED)
			continue;
		uint64_t len;
		const char *t = token(s, i, &len);
		if (len == 0 || memchr(t, 0, (size_t)len))
			return fail(s, err,
				    "tokenizer.ggml.tokens[%" PRIu64 "] is an added token with no "
				    "text or a NUL byte",
				    i);
		json_t *a = json_pack("{s:I, s:s%, s:b, s:b, s:b, s:b, s:b}", "id", (json_int_t)i,
				      "content", t, (size_t)len, "single_word", 0, "lstrip", 0,
				      "rstrip", 0, "normalized", 0, "special", special);
		if (!a)
			return fail(s, err, "tokenizer.ggml.tokens[%" PRIu64 "] is not valid UTF-8",
				    i);
		json_array_append_new(added, a);
	}
	return FT_OK;
}

static json_t *token_or_null(const struct src *s, long long id)
{
	if (id < 0)
		return json_null();
	uint64_t len;
	const char *t = token(s, (uint64_t)id, &len);
	json_t *v = json_stringn(t, (size_t)len);
	return v ? v : json_null();
}

/* ---- the whole ---- */

static enum ft_rc read_src(const struct ft_gguf *g, struct src *s, const char **model,
			   const char **pre, struct ft_err *err)
{
	s->g = g;
	s->name = ft_gguf_name(g);
	s->bos = s->eos = s->unk = s->pad = -1;
	if (ft_gguf_get_str(g, FT_GGUF_KEY_TOK_MODEL, FT_JSON_REQUIRED, model, err) ||
	    ft_gguf_get_str(g, FT_GGUF_KEY_TOK_PRE, 0, pre, err) ||
	    ft_gguf_get_arr(g, FT_GGUF_KEY_TOK_TOKENS, FT_JSON_REQUIRED, &s->tokens, err) ||
	    ft_gguf_get_arr(g, FT_GGUF_KEY_TOK_TOKEN_TYPE, 0, &s->types, err) ||
	    ft_gguf_get_arr(g, FT_GGUF_KEY_TOK_SCORES, 0, &s->scores, err) ||
	    ft_gguf_get_arr(g, FT_GGUF_KEY_TOK_MERGES, 0, &s->merges, err))
		return FT_EFORMAT;
	s->n = s->tokens->n;
	if (s->n == 0 || s->n > (1u << 24))
		return fail(s, err, "tokenizer.ggml.tokens holds %" PRIu64 " tokens (1 to %u)",
			    s->n, 1u << 24);
	if ((s->types && s->types->n != s->n) || (s->scores && s->scores->n != s->n))
		return fail(s, err,
			    "tokenizer.ggml.token_type and tokenizer.ggml.scores must have one "
			    "entry per token (%" PRIu64 ")",
			    s->n);
	const long long lim = (long long)s->n - 1;
	if (ft_gguf_get_int(g, FT_GGUF_KEY_TOK_BOS_ID, 0, 0, lim, &s->bos, err) ||
	    ft_gguf_get_int(g, FT_GGUF_KEY_TOK_EOS_ID, 0, 0, lim, &s->eos, err) ||
	    ft_gguf_get_int(g, FT_GGUF_KEY_TOK_UNK_ID, 0, 0, lim, &s->unk, err) ||
	    ft_gguf_get_int(g, FT_GGUF_KEY_TOK_PAD_ID, 0, 0, lim, &s->pad, err))
		return FT_EFORMAT;
	return FT_OK;
}

enum ft_rc ft_gguf_tokenizer_json(const struct ft_gguf *g, json_t **tokenizer,
				  json_t **tokenizer_config, struct ft_err *err)
{
	struct src s = { 0 };
	const char *model = NULL, *pre = NULL, *tmpl = NULL;
	const struct pre_def *p = NULL;
	long long ctx = -1;
	bool add_bos, add_eos = false, prefix = true;
	if (tokenizer)
		*tokenizer = NULL;
	if (tokenizer_config)
		*tokenizer_config = NULL;
	tok_bytemap_init();
	if (read_src(g, &s, &model, &pre, err))
		return err ? err->rc : FT_EFORMAT;
	if (strcmp(model, "llama") == 0) {
		s.spm = true;
		add_bos = true;
	} else if (strcmp(model, "gpt2") == 0) {
		for (size_t i = 0; pre && i < FT_ARRAY_LEN(pres); i++)
			if (strcmp(pres[i].name, pre) == 0)
				p = &pres[i];
		if (!p)
			return fail(&s, err,
				    "pre-tokenizer \"%s\" (tokenizer.ggml.pre) is not one ftplat "
				    "knows (" PRE_NAMES ")",
				    pre ? pre : "(none)");
		if (!s.merges)
			return fail(&s, err, "a gpt2 tokenizer needs tokenizer.ggml.merges");
		add_bos = p->add_bos;
	} else {
		return fail(&s, err,
			    "tokenizer model \"%s\" (tokenizer.ggml.model) is not supported (gpt2, "
			    "llama)",
			    model);
	}
	if (ft_gguf_get_bool(g, FT_GGUF_KEY_TOK_ADD_BOS, 0, &add_bos, err) ||
	    ft_gguf_get_bool(g, FT_GGUF_KEY_TOK_ADD_EOS, 0, &add_eos, err) ||
	    ft_gguf_get_bool(g, FT_GGUF_KEY_TOK_ADD_SPACE_PREFIX, 0, &prefix, err) ||
	    ft_gguf_get_str(g, FT_GGUF_KEY_CHAT_TEMPLATE, 0, &tmpl, err) ||
	    ft_gguf_get_int(g, FT_GGUF_KEY_CONTEXT_LENGTH, 0, 1, INT64_MAX, &ctx, err))
		return err ? err->rc : FT_EFORMAT;
	if (s.spm && s.unk < 0) {
		/* llama.cpp's SentencePiece default: <unk> is id 0 */
		uint64_t len;
		const char *t = token(&s, 0, &len);
		if (len == 5 && memcmp(t, "<unk>", 5) == 0)
			s.unk = 0;
	}

	json_t *vocab = json_object(), *merges = json_array(), *added = json_array();
	enum ft_rc rc = vocab && merges && added ? FT_OK : oom(err);
	if (!rc)
		rc = build_vocab(&s, vocab, err);
	if (!rc)
		rc = s.merges ? merges_from_file(&s, merges, err)
			      : merges_from_scores(&s, merges, err);
	if (!rc)
		rc = added_tokens(&s, added, err);
	if (rc) {
		json_decref(vocab);
		json_decref(merges);
		json_decref(added);
		return rc;
	}
	json_t *m =
		json_pack("{s:s, s:n, s:o, s:n, s:n, s:b, s:b, s:b, s:o, s:o}", "type", "BPE",
			  "dropout", "unk_token", s.spm ? token_or_null(&s, s.unk) : json_null(),
			  "continuing_subword_prefix", "end_of_word_suffix", "fuse_unk", s.spm,
			  "byte_fallback", s.spm, "ignore_merges", p && p->ignore_merges, "vocab",
			  vocab, "merges", merges);
	json_t *norm = p && p->nfc ? json_pack("{s:s}", "type", "NFC") : json_null();
	json_t *pt = s.spm ? json_pack("{s:s, s:s, s:s, s:b}", "type", "Metaspace", "replacement",
				       "\xe2\x96\x81", "prepend_scheme", prefix ? "first" : "never",
				       "split", 0)
			   : pre_tokenizer(p);
	json_t *dec = s.spm ? spm_decoder(prefix)
			    : json_pack("{s:s, s:b, s:b, s:b}", "type", "ByteLevel",
					"add_prefix_space", 1, "trim_offsets", 1, "use_regex", 1);
	json_t *tok = json_pack("{s:s, s:n, s:n, s:o, s:o, s:o, s:o, s:o, s:o}", "version", "1.0",
				"truncation", "padding", "added_tokens", added, "normalizer", norm,
				"pre_tokenizer", pt, "post_processor",
				post_processor(&s, add_bos ? s.bos : -1, add_eos ? s.eos : -1),
				"decoder", dec, "model", m);
	json_t *cfg = json_pack(
		"{s:b, s:b, s:o, s:o, s:o, s:o, s:b, s:s}", "add_bos_token", add_bos && s.bos >= 0,
		"add_eos_token", add_eos && s.eos >= 0, "bos_token", token_or_null(&s, s.bos),
		"eos_token", token_or_null(&s, s.eos), "unk_token", token_or_null(&s, s.unk),
		"pad_token", token_or_null(&s, s.pad), "clean_up_tokenization_spaces", 0,
		"tokenizer_class", "PreTrainedTokenizerFast");
	if (cfg && ctx > 0)
		json_object_set_new(cfg, "model_max_length", json_integer(ctx));
	json_t *jt = tmpl ? json_string(tmpl) : NULL; /* NULL: not UTF-8 */
	if (!tok || !cfg || (tmpl && !jt)) {
		json_decref(tok);
		json_decref(cfg);
		json_decref(jt);
		return tmpl && !jt ? fail(&s, err, "tokenizer.chat_template is not valid UTF-8")
				   : oom(err);
	}
	if (jt)
		json_object_set_new(cfg, "chat_template", jt);
	if (tokenizer)
		*tokenizer = tok;
	else
		json_decref(tok);
	if (tokenizer_config)
		*tokenizer_config = cfg;
	else
		json_decref(cfg);
	return FT_OK;
}

enum ft_rc ft_gguf_tokenizer(const struct ft_gguf *g, struct ft_tokenizer **out, struct ft_err *err)
{
	json_t *tok, *cfg;
	*out = NULL;
	enum ft_rc rc = ft_gguf_tokenizer_json(g, &tok, &cfg, err);
	if (rc)
		return rc;
	rc = tok_from_json(tok, out, err);
	if (rc)
		ft_err_prefixf(err, "%s: ", ft_gguf_name(g));
	if (!rc && (rc = tok_apply_config(*out, cfg, err))) {
		ft_tokenizer_free(*out);
		*out = NULL;
	}
	json_decref(tok);
	json_decref(cfg);
	return rc;
}

/* ---- the inverse: a tokenizer as tokenizer.ggml.* (the GGUF writer) ----
 *
 * The family from the loaded tokenizer's components:
 *   byte-level BPE (a ByteLevel pre-tokenizer last, no byte fallback):
 *     "gpt2", with tokenizer.ggml.pre the first row of pres[] above whose
 *     components are the tokenizer's (pre_matches), merges as the model
 *     ranks them;
 *   SentencePiece-style BPE (byte fallback, a Metaspace pre-tokenizer or a
 *     Prepend "▁" normalizer): "llama", with add_space_prefix, the merges
 *     (read back by ftplat) and scores for llama.cpp's SentencePiece
 *     tokenizer, which merges the pair whose result scores highest: a
 *     token made by the merge of rank k scores -k, other tokens -1e9.
 * Token types: special added tokens CONTROL, other added tokens
 * USER_DEFINED, <0xXX> byte tokens BYTE and the unknown token UNKNOWN in
 * the SentencePiece family, ids without a token (or beyond the tokenizer,
 * up to the model's vocabulary) UNUSED "[PAD<id>]" as llama.cpp's
 * converter writes them; the rest NORMAL. add_bos_token / add_eos_token
 * say whether the post-processor adds them. */

static bool pre_matches(const struct pre_def *p, const struct ft_tokenizer *t)
{
	bool nfc = t->nnorms == 1 && t->norms[0].kind == NORM_NFC;
	if (nfc != p->nfc || (t->nnorms && !nfc) || t->bpe.ignore_merges != p->ignore_merges)
		return false;
	const struct pretok *v = t->pretoks;
	size_t n = t->npretoks;
	if (n == 0 || v[n - 1].kind != PT_BYTELEVEL || v[n - 1].add_prefix_space)
		return false;
	switch (p->kind) {
	case PRE_BYTELEVEL: return n == 1 && v[0].use_regex;
	case PRE_DIGITS:
		return n == 2 && v[1].use_regex && v[0].kind == PT_SPLIT && v[0].pat.is_class &&
		       v[0].pat.cls == FT_UNI_N && v[0].behavior == TOK_SPLIT_ISOLATED &&
		       !v[0].invert;
	case PRE_SPLIT:
		return n == 2 && !v[1].use_regex && v[0].kind == PT_SPLIT && v[0].pat.is_regex &&
		       v[0].pat.re == p->re && v[0].behavior == TOK_SPLIT_ISOLATED && !v[0].invert;
	}
	return false;
}

/* SentencePiece style: byte fallback and a "▁" for spaces; *prefix when a
 * space is prepended to the text. */
static bool spm_style(const struct ft_tokenizer *t, bool *prefix)
{
	if (!t->bpe.byte_fallback)
		return false;
	for (size_t i = 0; i < t->npretoks; i++)
		if (t->pretoks[i].kind == PT_METASPACE) {
			*prefix = t->pretoks[i].scheme != PREPEND_NEVER;
			return true;
		}
	for (size_t i = 0; i < t->nnorms; i++)
		if (t->norms[i].kind == NORM_PREPEND) {
			*prefix = true;
			return true;
		}
	for (size_t i = 0; i < t->nnorms; i++)
		if (t->norms[i].kind == NORM_REPLACE) {
			*prefix = false;
			return true;
		}
	return false;
}

struct merge_ref {
	uint32_t rank;
	int32_t l, r, c;
};

static int by_merge_rank(const void *a, const void *b)
{
	const struct merge_ref *x = a, *y = b;
	return x->rank < y->rank ? -1 : x->rank > y->rank;
}

enum ft_rc ft_gguf_tokenizer_put(struct ft_gguf_writer *w, const struct ft_tokenizer *t,
				 int n_vocab, struct ft_err *err)
{
	bool prefix = false, spm = spm_style(t, &prefix);
	const struct pre_def *p = NULL;
	for (size_t i = 0; !spm && !p && i < FT_ARRAY_LEN(pres); i++)
		if (pre_matches(&pres[i], t))
			p = &pres[i]; /* the first row that matches */
	if (!spm && !p)
		return ft_failf(
			err, FT_EINVAL, "unsupported_tokenizer",
			"the tokenizer's normalizer and pre-tokenizer are not one llama.cpp "
			"knows (byte-level BPE as %s, or SentencePiece-style BPE)",
			PRE_NAMES);
	if (n_vocab < 0 || t->nids > (size_t)n_vocab)
		return ft_failf(err, FT_EINVAL, "unsupported_tokenizer",
				"the tokenizer has %zu tokens but the model's vocabulary only %d "
				"(llama.cpp needs one embedding row per token)",
				t->nids, n_vocab);
	uint64_t n = (uint64_t)FT_MAX((size_t)n_vocab, t->nids);
	const char **tok = calloc(n + 1, sizeof(*tok));
	uint64_t *len = calloc(n + 1, sizeof(*len));
	int32_t *type = calloc(n + 1, sizeof(*type));
	float *score = spm ? calloc(n + 1, sizeof(*score)) : NULL;
	struct merge_ref *mr = calloc(t->bpe.mn + 1, sizeof(*mr));
	const char **ms = calloc(t->bpe.mn + 1, sizeof(*ms));
	uint64_t *ml = calloc(t->bpe.mn + 1, sizeof(*ml));
	size_t *off = calloc(FT_MAX(n, t->bpe.mn) + 1, sizeof(*off));
	struct ft_buf pads = FT_BUF_INIT((size_t)1 << 30), mtext = FT_BUF_INIT((size_t)1 << 32);
	enum ft_rc rc = FT_OK;
	if (!tok || !len || !type || (spm && !score) || !mr || !ms || !ml || !off) {
		rc = ft_failf(err, FT_ENOMEM, NULL, "tokenizer: out of memory");
		goto free_all;
	}
	/* the padding names first (their buffer must not move afterwards) */
	for (uint64_t i = 0; i < n; i++) {
		bool hole = i >= t->nids || !t->names[i];
		if (hole) {
			off[i] = pads.len;
			if (ft_buf_addf(&pads, "[PAD%" PRIu64 "]", i) || ft_buf_addch(&pads, 0)) {
				rc = ft_failf(err, FT_ENOMEM, NULL, "tokenizer: out of memory");
				goto free_all;
			}
		}
	}
	for (uint64_t i = 0; i < n; i++) {
		bool hole = i >= t->nids || !t->names[i];
		if (hole) {
			tok[i] = pads.ptr + off[i];
			len[i] = strlen(tok[i]);
			type[i] = TT_UNUSED;
			if (score)
				score[i] = -1e9f;
			continue;
		}
		tok[i] = t->names[i];
		len[i] = t->name_len[i];
		type[i] = TT_NORMAL;
		if (score)
			score[i] = -1e9f;
	}
	for (size_t i = 0; i < t->nadded; i++) {
		int32_t id = t->added[i].id;
		if (id >= 0 && (uint64_t)id < n)
			type[id] = t->added[i].special ? TT_CONTROL : TT_USER_DEFINED;
	}
	if (spm) {
		for (int b = 0; b < 256; b++)
			if (t->bpe.byte_id[b] >= 0 && (uint64_t)t->bpe.byte_id[b] < n)
				type[t->bpe.byte_id[b]] = TT_BYTE;
		if (t->bpe.unk_id >= 0 && (uint64_t)t->bpe.unk_id < n)
			type[t->bpe.unk_id] = TT_UNKNOWN;
	}
	/* merges in rank order, "left right" */
	size_t nm = 0;
	for (size_t s = 0; s < t->bpe.mcap; s++)
		if (t->bpe.mkey[s] != UINT64_MAX)
			mr[nm++] = (struct merge_ref){ t->bpe.mrank[s],
						       (int32_t)(t->bpe.mkey[s] >> 32),
						       (int32_t)(uint32_t)t->bpe.mkey[s],
						       t->bpe.mnew[s] };
	qsort(mr, nm, sizeof(*mr), by_merge_rank);
	for (size_t i = 0; i < nm; i++) {
		const struct merge_ref *m = &mr[i];
		if ((size_t)m->l >= t->nids || (size_t)m->r >= t->nids || !t->names[m->l] ||
		    !t->names[m->r]) {
			rc = ft_failf(err, FT_EINVAL, "invalid_tokenizer",
				      "tokenizer: merge %zu names an id without a token", i);
			goto free_all;
		}
		off[i] = mtext.len;
		if (ft_buf_add(&mtext, t->names[m->l], t->name_len[m->l]) ||
		    ft_buf_addch(&mtext, ' ') ||
		    ft_buf_add(&mtext, t->names[m->r], t->name_len[m->r])) {
			rc = ft_failf(err, FT_ENOMEM, NULL, "tokenizer: out of memory");
			goto free_all;
		}
		if (score && m->c >= 0 && (uint64_t)m->c < n && score[m->c] == -1e9f)
			score[m->c] = -(float)i;
	}
	for (size_t i = 0; i < nm; i++) {
		size_t end = i + 1 < nm ? off[i + 1] : mtext.len;
		ms[i] = mtext.ptr + off[i];
		ml[i] = end - off[i];
	}
	bool add_bos = t->npre > 0, add_eos = t->npost > 0;
	const char *model = spm ? "llama" : "gpt2";
	if ((rc = ft_gguf_writer_key(w, FT_GGUF_KEY_TOK_MODEL, model, err)) ||
	    (!spm && (rc = ft_gguf_writer_key(w, FT_GGUF_KEY_TOK_PRE, p->name, err))) ||
	    (rc = ft_gguf_writer_arr(w, ft_gguf_keys[FT_GGUF_KEY_TOK_TOKENS].name, FT_GGUF_STRING,
				     tok, len, n, err)) ||
	    (rc = ft_gguf_writer_key_arr(w, FT_GGUF_KEY_TOK_TOKEN_TYPE, type, n, err)) ||
	    (spm && (rc = ft_gguf_writer_key_arr(w, FT_GGUF_KEY_TOK_SCORES, score, n, err))) ||
	    (rc = ft_gguf_writer_arr(w, ft_gguf_keys[FT_GGUF_KEY_TOK_MERGES].name, FT_GGUF_STRING,
				     ms, ml, nm, err)))
		goto free_all;
	const struct {
		enum ft_gguf_key k;
		int32_t id;
	} ids[] = {
		{ FT_GGUF_KEY_TOK_BOS_ID, t->bos },
		{ FT_GGUF_KEY_TOK_EOS_ID, t->eos },
		{ FT_GGUF_KEY_TOK_UNK_ID, spm ? t->bpe.unk_id : -1 },
		{ FT_GGUF_KEY_TOK_PAD_ID, t->pad },
	};
	for (size_t i = 0; i < FT_ARRAY_LEN(ids) && !rc; i++) {
		uint32_t v = (uint32_t)ids[i].id;
		if (ids[i].id >= 0)
			rc = ft_gguf_writer_key(w, ids[i].k, &v, err);
	}
	if (!rc)
		rc = ft_gguf_writer_key(w, FT_GGUF_KEY_TOK_ADD_BOS, &add_bos, err);
	if (!rc)
		rc = ft_gguf_writer_key(w, FT_GGUF_KEY_TOK_ADD_EOS, &add_eos, err);
	if (!rc && spm)
		rc = ft_gguf_writer_key(w, FT_GGUF_KEY_TOK_ADD_SPACE_PREFIX, &prefix, err);
	if (!rc && t->chat_template)
		rc = ft_gguf_writer_key(w, FT_GGUF_KEY_CHAT_TEMPLATE, t->chat_template, err);
free_all:
	ft_buf_release(&pads);
	ft_buf_release(&mtext);
	free(tok);
	free(len);
	free(type);
	free(score);
	free(mr);
	free(ms);
	free(ml);
	free(off);
	return rc;
}
