/*
 * tokenizer.c - loading tokenizer.json (+ tokenizer_config.json) and the
 * encode / decode pipelines, as the tokenizers package runs them.
 *
 * Encode (one sequence):
 *   1. invalid UTF-8 -> U+FFFD (maximal subparts; Python's errors="replace");
 *   2. split out added tokens whose "normalized" is false (leftmost-longest,
 *      then single_word / lstrip / rstrip); special ones only with
 *      FT_TOK_SPLIT_SPECIAL (without it they are plain text, as the package's
 *      encode_special_tokens = True);
 *   3. normalize each remaining piece (Sequence of Prepend, Replace, Strip, NFC,
 *      Lowercase),
 *      then split out the "normalized": true added tokens, matched by their
 *      normalized content;
 *   4. pre-tokenize (Sequence of Split with a known regex or a literal,
 *      ByteLevel, Metaspace); empty pieces are dropped at every step;
 *   5. BPE each piece (tokenizer_bpe.c);
 *   6. with FT_TOK_ADD_SPECIAL, the post-processor's single template
 *      (TemplateProcessing, Bert/RobertaProcessing; ByteLevel changes only
 *      offsets).
 * Decode: ids -> tokens (unknown ids skipped; special ones too with
 * FT_TOK_SKIP_SPECIAL), then the decoders (ByteLevel, Replace, ByteFallback,
 * Fuse, Strip, Metaspace, Sequence), then joined; with no decoder the tokens
 * are joined with spaces.
 *
 * Loading is in tokenizer_load.c: anything in tokenizer.json we do not
 * implement is refused there, so a tokenizer that loads encodes as the
 * reference does.
 */
#include <ctype.h>

#include "tokenizer_int.h"

/* ---- token id lists ---- */

void ft_ids_release(struct ft_ids *ids)
{
	free(ids->v);
	memset(ids, 0, sizeof(*ids));
}

enum ft_rc ft_ids_push(struct ft_ids *ids, int32_t id)
{
	if (ids->len == ids->cap) {
		size_t cap = ids->cap ? ids->cap * 2 : 64;
		int32_t *v = realloc(ids->v, cap * sizeof(*v));
		if (!v)
			return FT_ENOMEM;
		ids->v = v;
		ids->cap = cap;
	}
	ids->v[ids->len++] = id;
	return FT_OK;
}

/* ---- encode ---- */

static bool is_ws_at(const char *s, size_t n, size_t pos, size_t *len)
{
	uint32_t cp;
	*len = ft_utf8_next(s + pos, n - pos, &cp);
	return (ft_uni_class(cp) & FT_UNI_WS) != 0;
}

/* Start of the character that ends at end (end > 0, s valid UTF-8). */
static size_t char_before(const char *s, size_t end)
{
	size_t b = end - 1;
	while (b > 0 && ((unsigned char)s[b] & 0xC0) == 0x80)
		b--;
	return b;
}

/* Does s[0..end) end with a \w character? */
static bool ends_with_word(const char *s, size_t end)
{
	if (end == 0)
		return false;
	size_t b = char_before(s, end);
	uint32_t cp;
	ft_utf8_next(s + b, end - b, &cp);
	return tok_is_word(cp);
}

/* Longest added pattern of the given kind matching at pos. */
static const struct added *added_at(const struct ft_tokenizer *t, const char *s, size_t n,
				    size_t pos, bool normalized)
{
	unsigned char b = (unsigned char)s[pos];
	uint32_t from = t->bucket_start[normalized][b], to = t->bucket_start[normalized][b + 1];
	for (uint32_t k = from; k < to; k++) {
		const struct added *a = &t->added[t->by_first[k]];
		if (a->plen <= n - pos && memcmp(s + pos, a->pat, a->plen) == 0)
			return a;
	}
	return NULL;
}

/* The tokenizers package's AddedVocabulary::find_matches over s[0..n). */
static enum ft_rc split_added(const struct ft_tokenizer *t, const char *s, size_t n,
			      bool normalized, unsigned flags, bool first, struct tok_pieces *out)
{
	size_t start_offset = 0, pos = 0;
	enum ft_rc rc;
	const uint32_t *bs = t->bucket_start[normalized];
	while (pos < n) {
		unsigned char c0 = (unsigned char)s[pos];
		if (bs[c0] == bs[c0 + 1]) {
			pos++;
			continue;
		}
		const struct added *a = added_at(t, s, n, pos, normalized);
		if (!a) {
			pos++;
			continue;
		}
		size_t start = pos, stop = pos + a->plen, len;
		pos = stop;
		if (a->special && !(flags & FT_TOK_SPLIT_SPECIAL))
			continue;
		if (a->single_word) {
			bool start_space = start == 0 || !ends_with_word(s, start);
			bool stop_space = true;
			if (stop < n) {
				uint32_t cp;
				ft_utf8_next(s + stop, n - stop, &cp);
				stop_space = !tok_is_word(cp);
			}
			if (!start_space || !stop_space)
				continue;
		}
		if (a->lstrip) {
			size_t ns = start;
			while (ns > 0) {
				size_t b = char_before(s, ns);
				if (!is_ws_at(s, n, b, &len))
					break;
				ns = b;
			}
			start = FT_MAX(ns, start_offset);
		}
		if (a->rstrip)
			while (stop < n && is_ws_at(s, n, stop, &len))
				stop += len;
		if (start_offset < start) {
			if ((rc = tok_pieces_add(out, s + start_offset, start - start_offset, -1,
						 first && start_offset == 0)))
				return rc;
		}
		if ((rc = tok_pieces_add(out, NULL, 0, a->id, false)))
			return rc;
		start_offset = stop;
	}
	if (start_offset < n)
		return tok_pieces_add(out, s + start_offset, n - start_offset, -1,
				      first && start_offset == 0);
	return FT_OK;
}

static enum ft_rc replace_all(const char *s, size_t n, const char *a, size_t alen, const char *b,
			      size_t blen, struct ft_buf *out)
{
	size_t pos = 0;
	while (alen && pos < n) {
		const char *hit = memmem(s + pos, n - pos, a, alen);
		if (!hit)
			break;
		size_t h = (size_t)(hit - s);
		if (ft_buf_add(out, s + pos, h - pos) || ft_buf_add(out, b, blen))
			return FT_ENOMEM;
		pos = h + alen;
	}
	return ft_buf_add(out, s + pos, n - pos) ? FT_ENOMEM : FT_OK;
}

/* Apply the normalizers to s[0..n), result in out (reset first). */
enum ft_rc tok_normalize(const struct ft_tokenizer *t, const char *s, size_t n, struct ft_buf *out,
			 struct ft_buf *tmp)
{
	ft_buf_reset(out);
	if (ft_buf_add(out, s, n))
		return FT_ENOMEM;
	for (size_t i = 0; i < t->nnorms; i++) {
		const struct norm *nm = &t->norms[i];
		ft_buf_reset(tmp);
		const char *cur = ft_buf_str(out);
		size_t cl = out->len, a = 0, b = cl, len;
		switch (nm->kind) {
		case NORM_PREPEND:
			if (cl == 0)
				continue;
			if (ft_buf_add(tmp, nm->a, nm->alen) || ft_buf_add(tmp, cur, cl))
				return FT_ENOMEM;
			break;
		case NORM_REPLACE:
			if (replace_all(cur, cl, nm->a, nm->alen, nm->b, nm->blen, tmp))
				return FT_ENOMEM;
			break;
		case NORM_STRIP:
			while (nm->left && a < b && is_ws_at(cur, cl, a, &len))
				a += len;
			while (nm->right && b > a) {
				size_t k = b - 1;
				while (k > a && ((unsigned char)cur[k] & 0xC0) == 0x80)
					k--;
				if (!is_ws_at(cur, cl, k, &len))
					break;
				b = k;
			}
			if (ft_buf_add(tmp, cur + a, b - a))
				return FT_ENOMEM;
			break;
		case NORM_NFC:
			if (ft_uni_nfc(cur, cl, tmp))
				return FT_ENOMEM;
			break;
		case NORM_LOWERCASE:
			if (ft_uni_lowercase(cur, cl, tmp))
				return FT_ENOMEM;
			break;
		}
		struct ft_buf sw = *out;
		*out = *tmp;
		*tmp = sw;
	}
	return FT_OK;
}

struct enc_ctx {
	struct tok_pieces a, b, c;
	struct ft_buf n1, n2;
	struct tok_bpe_scratch bs;
};

static enum ft_rc bytelevel_map(const char *s, size_t n, bool first, struct tok_pieces *out)
{
	enum ft_rc rc = tok_pieces_add(out, NULL, 0, -1, first);
	if (rc || (rc = ft_buf_grow(&out->text, 2 * n + 1)))
		return rc;
	char *w = out->text.ptr + out->text.len;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		*w++ = tok_bytemap.utf8[c][0];
		if (tok_bytemap.len[c] == 2)
			*w++ = tok_bytemap.utf8[c][1];
	}
	size_t added = (size_t)(w - (out->text.ptr + out->text.len));
	out->text.len += added;
	out->text.ptr[out->text.len] = 0;
	out->v[out->n - 1].len = added;
	return FT_OK;
}

/* One pre-tokenizer over every span of in, into out. */
static enum ft_rc pretok_step(const struct pretok *p, struct tok_pieces *in, struct tok_pieces *out,
			      struct ft_buf *tmp)
{
	enum ft_rc rc = FT_OK;
	tok_pieces_reset(out);
	for (size_t i = 0; i < in->n && !rc; i++) {
		const struct tok_span *sp = &in->v[i];
		const char *s = ft_buf_str(&in->text) + sp->off;
		size_t n = sp->len;
		switch (p->kind) {
		case PT_BYTELEVEL: {
			ft_buf_reset(tmp);
			if (p->add_prefix_space && s[0] != ' ') {
				if (ft_buf_addch(tmp, ' ') || ft_buf_add(tmp, s, n))
					return FT_ENOMEM;
				s = tmp->ptr;
				n = tmp->len;
			}
			if (!p->use_regex) {
				rc = bytelevel_map(s, n, sp->first, out);
				break;
			}
			bool first = sp->first;
			for (size_t pos = 0; pos < n && !rc;) {
				size_t e = tok_regex_match_at(TOK_RE_GPT2, s, n, pos);
				if (e == pos) { /* cannot happen: the pattern covers everything */
					uint32_t cp;
					e = pos + ft_utf8_next(s + pos, n - pos, &cp);
				}
				rc = bytelevel_map(s + pos, e - pos, first, out);
				first = false;
				pos = e;
			}
			break;
		}
		case PT_SPLIT:
			rc = tok_split(&p->pat, p->behavior, p->invert, s, n, sp->first, out);
			break;
		case PT_METASPACE: {
			ft_buf_reset(tmp);
			bool pre = p->scheme == PREPEND_ALWAYS ||
				   (p->scheme == PREPEND_FIRST && sp->first);
			/* prepend unless it already starts with the replacement (after replacing) */
			if (pre && s[0] != ' ' &&
			    !(n >= p->repl_len && memcmp(s, p->repl, p->repl_len) == 0) &&
			    ft_buf_add(tmp, p->repl, p->repl_len))
				return FT_ENOMEM;
			if (replace_all(s, n, " ", 1, p->repl, p->repl_len, tmp))
				return FT_ENOMEM;
			if (!p->split) {
				rc = tok_pieces_add(out, tmp->ptr, tmp->len, -1, sp->first);
				break;
			}
			char rb[sizeof(p->repl)];
			memcpy(rb, p->repl, sizeof(rb));
			struct tok_pattern pat = { .is_regex = false,
						   .lit = rb,
						   .lit_len = p->repl_len };
			rc = tok_split(&pat, TOK_SPLIT_MERGED_NEXT, false, tmp->ptr, tmp->len,
				       sp->first, out);
			break;
		}
		}
	}
	return rc;
}

/* Encode one piece of text that holds no added token (after normalization). */
static enum ft_rc encode_text(const struct ft_tokenizer *t, struct enc_ctx *c, const char *s,
			      size_t n, bool first, struct ft_ids *out)
{
	enum ft_rc rc;
	tok_pieces_reset(&c->b);
	if ((rc = tok_pieces_add(&c->b, s, n, -1, first)))
		return rc;
	struct tok_pieces *in = &c->b, *o = &c->c;
	for (size_t i = 0; i < t->npretoks; i++) {
		if ((rc = pretok_step(&t->pretoks[i], in, o, &c->n2)))
			return rc;
		struct tok_pieces *sw = in;
		in = o;
		o = sw;
	}
	for (size_t i = 0; i < in->n; i++)
		if ((rc = tok_bpe_encode_word(&t->bpe, ft_buf_str(&in->text) + in->v[i].off,
					      in->v[i].len, &c->bs, out)))
			return rc;
	return FT_OK;
}

static enum ft_rc encode_clean(const struct ft_tokenizer *t, struct enc_ctx *c, const char *s,
			       size_t n, unsigned flags, struct ft_ids *out)
{
	enum ft_rc rc;
	if ((rc = split_added(t, s, n, false, flags, true, &c->a)))
		return rc;
	for (size_t i = 0; i < c->a.n; i++) {
		const struct tok_span *sp = &c->a.v[i];
		if (sp->id >= 0) {
			if ((rc = ft_ids_push(out, sp->id)))
				return rc;
			continue;
		}
		if ((rc = tok_normalize(t, ft_buf_str(&c->a.text) + sp->off, sp->len, &c->n1,
					&c->n2)))
			return rc;
		if (c->n1.len == 0)
			continue;
		/* second pass: normalized added tokens, in the normalized text */
		struct tok_pieces np;
		tok_pieces_init(&np);
		rc = split_added(t, c->n1.ptr, c->n1.len, true, flags, sp->first, &np);
		for (size_t k = 0; k < np.n && !rc; k++) {
			if (np.v[k].id >= 0)
				rc = ft_ids_push(out, np.v[k].id);
			else
				rc = encode_text(t, c, ft_buf_str(&np.text) + np.v[k].off,
						 np.v[k].len, np.v[k].first, out);
		}
		tok_pieces_release(&np);
		if (rc)
			return rc;
	}
	return FT_OK;
}

enum ft_rc ft_tokenizer_encode(const struct ft_tokenizer *t, const char *text, size_t len,
			       unsigned flags, struct ft_ids *out, struct ft_err *err)
{
	struct enc_ctx c;
	struct ft_buf clean = FT_BUF_INIT(TOK_TEXT_MAX);
	size_t start_len = out->len;
	enum ft_rc rc = FT_OK;
	memset(&c, 0, sizeof(c));
	tok_pieces_init(&c.a);
	tok_pieces_init(&c.b);
	tok_pieces_init(&c.c);
	ft_buf_init(&c.n1, TOK_TEXT_MAX);
	ft_buf_init(&c.n2, TOK_TEXT_MAX);
	ft_buf_init(&c.bs.key, TOK_TEXT_MAX);
	if (!ft_utf8_valid(text, len)) {
		if ((rc = ft_utf8_sanitize(text, len, &clean)))
			goto done;
		text = ft_buf_str(&clean);
		len = clean.len;
	}
	if (flags & FT_TOK_ADD_SPECIAL)
		for (size_t i = 0; i < t->npre && !rc; i++)
			rc = ft_ids_push(out, t->tmpl_pre[i]);
	if (!rc)
		rc = encode_clean(t, &c, text, len, flags, out);
	if (flags & FT_TOK_ADD_SPECIAL)
		for (size_t i = 0; i < t->npost && !rc; i++)
			rc = ft_ids_push(out, t->tmpl_post[i]);
done:
	tok_pieces_release(&c.a);
	tok_pieces_release(&c.b);
	tok_pieces_release(&c.c);
	ft_buf_release(&c.n1);
	ft_buf_release(&c.n2);
	tok_bpe_scratch_release(&c.bs);
	ft_buf_release(&clean);
	if (rc) {
		out->len = start_len;
		return ft_failf(err, rc, NULL, "tokenizer: encoding failed: %s", ft_rc_name(rc));
	}
	return FT_OK;
}

/* ---- decode ---- */

static enum ft_rc dec_step(const struct dec *d, struct tok_pieces *in, struct tok_pieces *out)
{
	enum ft_rc rc = FT_OK;
	tok_pieces_reset(out);
	switch (d->kind) {
	case DEC_BYTELEVEL: {
		struct ft_buf raw = FT_BUF_INIT(TOK_TEXT_MAX);
		for (size_t i = 0; i < in->n && !rc; i++) {
			const char *s = ft_buf_str(&in->text) + in->v[i].off;
			size_t n = in->v[i].len, mark = raw.len;
			bool ok = true;
			for (size_t p = 0; p < n && !rc;) {
				uint32_t cp;
				p += ft_utf8_next(s + p, n - p, &cp);
				if (cp >= 324 || tok_bytemap.back[cp] < 0) {
					ok = false;
					break;
				}
				rc = ft_buf_addch(&raw, (char)tok_bytemap.back[cp]);
			}
			if (!ok) {
				ft_buf_truncate(&raw, mark);
				rc = ft_buf_add(&raw, s, n);
			}
		}
		if (!rc)
			rc = tok_pieces_add(out, NULL, 0, -1, false);
		if (!rc)
			rc = ft_utf8_sanitize(ft_buf_str(&raw), raw.len, &out->text);
		if (!rc)
			out->v[0].len = out->text.len;
		ft_buf_release(&raw);
		return rc;
	}
	case DEC_FUSE:
		rc = tok_pieces_add(out, NULL, 0, -1, false);
		for (size_t i = 0; i < in->n && !rc; i++)
			rc = tok_pieces_extend(out, ft_buf_str(&in->text) + in->v[i].off,
					       in->v[i].len);
		return rc;
	case DEC_BYTEFALLBACK: {
		struct ft_buf bytes = FT_BUF_INIT(TOK_TEXT_MAX);
		for (size_t i = 0; i <= in->n && !rc; i++) {
			const char *s = i < in->n ? ft_buf_str(&in->text) + in->v[i].off : NULL;
			size_t n = i < in->n ? in->v[i].len : 0;
			int hv = -1;
			/* <0xXX>; Rust's u8::from_str_radix also takes "+X" */
			if (s && n == 6 && memcmp(s, "<0x", 3) == 0 && s[5] == '>') {
				char h[3] = { s[3], s[4], 0 }, *end;
				if (isxdigit((unsigned char)h[1]) &&
				    (isxdigit((unsigned char)h[0]) || h[0] == '+'))
					hv = (int)strtol(h, &end, 16);
			}
			if (hv >= 0) {
				rc = ft_buf_addch(&bytes, (char)hv);
				continue;
			}
			if (bytes.len) {
				if (ft_utf8_valid(bytes.ptr, bytes.len)) {
					rc = tok_pieces_add(out, bytes.ptr, bytes.len, -1, false);
				} else {
					for (size_t k = 0; k < bytes.len && !rc; k++)
						rc = tok_pieces_add(out, "\xEF\xBF\xBD", 3, -1,
								    false);
				}
				ft_buf_reset(&bytes);
			}
			if (s && !rc)
				rc = tok_pieces_add(out, s, n, -1, false);
		}
		ft_buf_release(&bytes);
		return rc;
	}
	case DEC_REPLACE:
	case DEC_STRIP:
	case DEC_METASPACE: break;
	}
	for (size_t i = 0; i < in->n && !rc; i++) {
		const char *s = ft_buf_str(&in->text) + in->v[i].off;
		size_t n = in->v[i].len;
		if ((rc = tok_pieces_add(out, NULL, 0, -1, false)))
			break;
		if (d->kind == DEC_REPLACE) {
			size_t before = out->text.len;
			rc = replace_all(s, n, d->a, d->alen, d->b, d->blen, &out->text);
			out->v[out->n - 1].len = out->text.len - before;
		} else if (d->kind == DEC_STRIP) {
			size_t a = 0, b = n, k, nch = 0;
			uint32_t cp;
			for (k = 0; k < d->start && a < n; k++) {
				size_t l = ft_utf8_next(s + a, n - a, &cp);
				if (cp != d->content)
					break;
				a += l;
			}
			for (size_t p = 0; p < n; nch++)
				p += ft_utf8_next(s + p, n - p, &cp);
			for (k = 0; k < d->stop && b > a && k < nch; k++) {
				size_t q = b - 1;
				while (q > 0 && ((unsigned char)s[q] & 0xC0) == 0x80)
					q--;
				ft_utf8_next(s + q, b - q, &cp);
				if (cp != d->content)
					break;
				b = q;
			}
			rc = tok_pieces_extend(out, s + a, b - a);
		} else {
			for (size_t p = 0; p < n && !rc;) {
				uint32_t cp;
				size_t l = ft_utf8_next(s + p, n - p, &cp);
				if (cp == d->repl) {
					if (!(i == 0 && d->scheme != PREPEND_NEVER))
						rc = tok_pieces_extend(out, " ", 1);
				} else {
					rc = tok_pieces_extend(out, s + p, l);
				}
				p += l;
			}
		}
	}
	return rc;
}

enum ft_rc ft_tokenizer_decode(const struct ft_tokenizer *t, const int32_t *ids, size_t n,
			       unsigned flags, struct ft_buf *out, struct ft_err *err)
{
	struct tok_pieces a, b;
	enum ft_rc rc = FT_OK;
	tok_bytemap_init();
	tok_pieces_init(&a);
	tok_pieces_init(&b);
	for (size_t i = 0; i < n && !rc; i++) {
		int32_t id = ids[i];
		if (id < 0 || (size_t)id >= t->nids || !t->names[id])
			continue;
		if ((flags & FT_TOK_SKIP_SPECIAL) && t->special[id])
			continue;
		rc = tok_pieces_add(&a, t->names[id], t->name_len[id], -1, false);
	}
	struct tok_pieces *in = &a, *o = &b;
	for (size_t i = 0; i < t->ndecs && !rc; i++) {
		rc = dec_step(&t->decs[i], in, o);
		struct tok_pieces *sw = in;
		in = o;
		o = sw;
	}
	size_t mark = out->len;
	for (size_t i = 0; i < in->n && !rc; i++) {
		if (!t->has_decoder && i > 0)
			rc = ft_buf_addch(out, ' ');
		if (!rc)
			rc = ft_buf_add(out, ft_buf_str(&in->text) + in->v[i].off, in->v[i].len);
	}
	tok_pieces_release(&a);
	tok_pieces_release(&b);
	if (rc) {
		ft_buf_truncate(out, mark);
		return ft_failf(err, rc, NULL, "tokenizer: decoding failed: %s", ft_rc_name(rc));
	}
	return FT_OK;
}

bool *ft_tokenizer_byte_pieces(const struct ft_tokenizer *t)
{
	size_t n = ft_tokenizer_vocab_size(t);
	bool *out = calloc(n ? n : 1, sizeof(bool));
	struct ft_buf b = FT_BUF_INIT(1u << 16);
	for (size_t i = 0; out && i < n; i++) {
		int32_t id = (int32_t)i;
		struct ft_err err;
		ft_err_clear(&err);
		ft_buf_reset(&b);
		if (ft_tokenizer_is_special(t, id) || ft_tokenizer_decode(t, &id, 1, 0, &b, &err))
			continue;
		const char *piece = ft_tokenizer_id_to_token(t, id);
		/* (a vocabulary may spell U+FFFD itself as a token: not a byte piece) */
		out[i] = memmem(b.ptr ? b.ptr : "", b.len, "\xef\xbf\xbd", 3) != NULL &&
			 !(piece && strstr(piece, "\xef\xbf\xbd"));
	}
	ft_buf_release(&b);
	return out;
}
