/*
 * text_tok.c - the tokenizers of BLEU (sacrebleu's 13a and zh) and ROUGE-L
 * (rouge-score's default, and ours for CJK), on code points so that the
 * rules mean what they mean in Python's re and str methods.
 *
 * sacrebleu's regexp rules (tokenizer_re.py), applied one after another,
 * each a left-to-right scan of non-overlapping two-character matches:
 *   1. each of  space ! " # $ % & ( ) * + / : ; < = > ? @ [ \ ] ^ _ ` { | } ~
 *      becomes " c "
 *   2. x c  -> "x c " where c is . or , and x is not a digit
 *   3. c x  -> " c x" where c is . or , and x is not a digit
 *   4. d -  -> "d - " where d is a digit
 * then ' '.join(line.split()). The 13a tokenizer pads the line with one
 * space each side first; the zh one does not (it strips it instead).
 */
#include "text_int.h"

static bool is_digit(uint32_t c)
{
	return c >= '0' && c <= '9';
}

/* sacrebleu tokenizer_zh._is_chinese_char, as Python evaluates its table */
static bool is_zh(uint32_t c)
{
	static const uint32_t ranges[][2] = {
		{ 0x2001, 0x2a6d }, { 0x2e80, 0x2fdf }, { 0x2ff0, 0x303f }, { 0x3100, 0x312f },
		{ 0x31a0, 0x31ef }, { 0x3200, 0x4db5 }, { 0x4e00, 0x9fbb }, { 0xf900, 0xfa2d },
		{ 0xfa30, 0xfa6a }, { 0xfa70, 0xfad9 }, { 0xfe10, 0xfe1f }, { 0xfe30, 0xfe4f },
		{ 0xff00, 0xffef },
	};
	for (size_t i = 0; i < FT_ARRAY_LEN(ranges); i++)
		if (c >= ranges[i][0] && c <= ranges[i][1])
			return true;
	return false;
}

/* rule 1's character class */
static bool is_rule1(uint32_t c)
{
	return (c >= 0x7b && c <= 0x7e) || (c >= 0x5b && c <= 0x60) || (c >= 0x20 && c <= 0x26) ||
	       (c >= 0x28 && c <= 0x2b) || (c >= 0x3a && c <= 0x40) || c == 0x2f;
}

static bool is_dot_comma(uint32_t c)
{
	return c == '.' || c == ',';
}

/* str.replace(pat, rep) on code points: ASCII pat and rep */
static enum ft_rc replace_all(struct cps *s, const char *pat, const char *rep)
{
	size_t pn = strlen(pat), rn = strlen(rep);
	struct cps o = { 0 };
	enum ft_rc rc = FT_OK;
	for (size_t i = 0; i < s->len && !rc;) {
		size_t k = 0;
		while (k < pn && i + k < s->len && s->v[i + k] == (unsigned char)pat[k])
			k++;
		if (k == pn) {
			for (size_t r = 0; r < rn && !rc; r++)
				rc = cps_push(&o, (unsigned char)rep[r]);
			i += pn;
		} else {
			rc = cps_push(&o, s->v[i++]);
		}
	}
	if (rc) {
		cps_release(&o);
		return rc;
	}
	cps_release(s);
	*s = o;
	return FT_OK;
}

static bool contains(const struct cps *s, uint32_t c)
{
	for (size_t i = 0; i < s->len; i++)
		if (s->v[i] == c)
			return true;
	return false;
}

/* one pass of rules 2-4: kind 2, 3 or 4 */
static enum ft_rc rule_pass(struct cps *s, int kind)
{
	struct cps o = { 0 };
	enum ft_rc rc = FT_OK;
	for (size_t i = 0; i < s->len && !rc;) {
		uint32_t a = s->v[i], b = i + 1 < s->len ? s->v[i + 1] : 0;
		bool two = i + 1 < s->len;
		uint32_t out[4];
		size_t k = 0;
		if (two && kind == 2 && !is_digit(a) && is_dot_comma(b)) {
			out[0] = a, out[1] = ' ', out[2] = b, out[3] = ' ', k = 4;
		} else if (two && kind == 3 && is_dot_comma(a) && !is_digit(b)) {
			out[0] = ' ', out[1] = a, out[2] = ' ', out[3] = b, k = 4;
		} else if (two && kind == 4 && is_digit(a) && b == '-') {
			out[0] = a, out[1] = ' ', out[2] = b, out[3] = ' ', k = 4;
		}
		if (k) {
			rc = cps_append(&o, out, k);
			i += 2;
		} else {
			rc = cps_push(&o, a);
			i++;
		}
	}
	if (rc) {
		cps_release(&o);
		return rc;
	}
	cps_release(s);
	*s = o;
	return FT_OK;
}

/* tokenizer_re.TokenizerRegexp on s, then ' '.join(s.split()) into out */
static enum ft_rc regexp_rules(struct cps *s, struct cps *out)
{
	struct cps o = { 0 };
	enum ft_rc rc = FT_OK;
	for (size_t i = 0; i < s->len && !rc; i++) {
		uint32_t c = s->v[i];
		if (is_rule1(c)) {
			uint32_t t[3] = { ' ', c, ' ' };
			rc = cps_append(&o, t, 3);
		} else {
			rc = cps_push(&o, c);
		}
	}
	for (int kind = 2; kind <= 4 && !rc; kind++)
		rc = rule_pass(&o, kind);
	/* ' '.join(split()) */
	bool first = true;
	for (size_t i = 0; i < o.len && !rc;) {
		if (ft_text_is_space(o.v[i])) {
			i++;
			continue;
		}
		if (!first)
			rc = cps_push(out, ' ');
		first = false;
		while (i < o.len && !ft_text_is_space(o.v[i]) && !rc)
			rc = cps_push(out, o.v[i++]);
	}
	cps_release(&o);
	return rc;
}

enum ft_rc ft_text_bleu_tokens(const char *text, const char *what, enum ft_bleu_tokenizer tok,
			       struct cps *out, struct ft_err *err)
{
	struct cps s = { 0 };
	enum ft_rc rc = ft_text_decode(text, what, &s, err);
	if (rc)
		goto out;
	while (s.len && ft_text_is_space(s.v[s.len - 1])) /* sent.rstrip() */
		s.len--;
	if (tok == FT_BLEU_TOK_13A) {
		rc = replace_all(&s, "<skipped>", "");
		rc = rc ? rc : replace_all(&s, "-\n", "");
		rc = rc ? rc : replace_all(&s, "\n", " ");
		if (!rc && contains(&s, '&')) {
			rc = replace_all(&s, "&quot;", "\"");
			rc = rc ? rc : replace_all(&s, "&amp;", "&");
			rc = rc ? rc : replace_all(&s, "&lt;", "<");
			rc = rc ? rc : replace_all(&s, "&gt;", ">");
		}
		struct cps p = { 0 };
		rc = rc ? rc : cps_push(&p, ' ');
		rc = rc ? rc : cps_append(&p, s.v, s.len);
		rc = rc ? rc : cps_push(&p, ' ');
		cps_release(&s);
		s = p;
	} else if (tok == FT_BLEU_TOK_ZH) {
		size_t b = 0;
		while (b < s.len && ft_text_is_space(s.v[b])) /* line.strip() */
			b++;
		struct cps p = { 0 };
		for (size_t i = b; i < s.len && !rc; i++) {
			if (is_zh(s.v[i])) {
				uint32_t t[3] = { ' ', s.v[i], ' ' };
				rc = cps_append(&p, t, 3);
			} else {
				rc = cps_push(&p, s.v[i]);
			}
		}
		cps_release(&s);
		s = p;
	} else {
		rc = ft_failf(err, FT_EINVAL, NULL, "unknown BLEU tokenizer %d", (int)tok);
		goto out;
	}
	rc = rc ? rc : regexp_rules(&s, out);
	if (rc && !ft_err_is_set(err))
		ft_failf(err, rc, NULL, "tokenizing %s: %s", what,
			 rc == FT_ELIMIT ? "the text is too long" : "out of memory");
out:
	cps_release(&s);
	return rc;
}

/* the ideographs, kana and Hangul the CJK ROUGE tokenizer splits apart */
static bool is_cjk(uint32_t c)
{
	static const uint32_t ranges[][2] = {
		{ 0x3040, 0x30ff }, { 0x31f0, 0x31ff }, { 0x3400, 0x4dbf },   { 0x4e00, 0x9fff },
		{ 0xac00, 0xd7af }, { 0xf900, 0xfaff }, { 0x20000, 0x2fa1f },
	};
	for (size_t i = 0; i < FT_ARRAY_LEN(ranges); i++)
		if (c >= ranges[i][0] && c <= ranges[i][1])
			return true;
	return false;
}

/* append c to the token being built, starting a new one (after a space)
 * when the last character was a separator */
static enum ft_rc put(struct cps *out, bool *in_token, uint32_t c)
{
	enum ft_rc rc = FT_OK;
	if (!*in_token && out->len)
		rc = cps_push(out, ' ');
	*in_token = true;
	return rc ? rc : cps_push(out, c);
}

enum ft_rc ft_text_rouge_tokens(const char *text, const char *what, enum ft_rouge_tokenizer tok,
				struct cps *out, struct ft_err *err)
{
	if (tok != FT_ROUGE_TOK_DEFAULT && tok != FT_ROUGE_TOK_CJK)
		return ft_failf(err, FT_EINVAL, NULL, "unknown ROUGE tokenizer %d", (int)tok);
	struct cps s = { 0 };
	enum ft_rc rc = ft_text_decode(text, what, &s, err);
	bool in_token = false;
	for (size_t i = 0; i < s.len && !rc; i++) {
		uint32_t c = s.v[i];
		if (tok == FT_ROUGE_TOK_CJK && c >= 0xff01 && c <= 0xff5e)
			c -= 0xfee0;
		if (c >= 'A' && c <= 'Z')
			c += 'a' - 'A';
		if ((c >= 'a' && c <= 'z') || is_digit(c)) {
			rc = put(out, &in_token, c);
		} else if (c == 0x212a) { /* KELVIN SIGN: lower() is "k" */
			rc = put(out, &in_token, 'k');
		} else if (c == 0x130) { /* lower() is "i" + U+0307, a separator */
			rc = put(out, &in_token, 'i');
			in_token = false;
		} else if (tok == FT_ROUGE_TOK_CJK && is_cjk(c)) {
			in_token = false;
			rc = put(out, &in_token, c);
			in_token = false;
		} else {
			in_token = false;
		}
	}
	if (rc && !ft_err_is_set(err))
		ft_failf(err, rc, NULL, "tokenizing %s: %s", what,
			 rc == FT_ELIMIT ? "the text is too long" : "out of memory");
	cps_release(&s);
	return rc;
}

static enum ft_rc to_buf(const struct cps *c, struct ft_buf *out, struct ft_err *err)
{
	enum ft_rc rc = ft_text_encode(c->v, c->len, out);
	if (rc)
		return ft_failf(err, rc, NULL, "the token list does not fit the buffer");
	return FT_OK;
}

enum ft_rc ft_text_bleu_tokenize(const char *text, enum ft_bleu_tokenizer tok, struct ft_buf *out,
				 struct ft_err *err)
{
	struct cps c = { 0 };
	enum ft_rc rc = ft_text_bleu_tokens(text, "the text", tok, &c, err);
	if (!rc)
		rc = to_buf(&c, out, err);
	cps_release(&c);
	return rc;
}

enum ft_rc ft_text_rouge_tokenize(const char *text, enum ft_rouge_tokenizer tok, struct ft_buf *out,
				  struct ft_err *err)
{
	struct cps c = { 0 };
	enum ft_rc rc = ft_text_rouge_tokens(text, "the text", tok, &c, err);
	if (!rc)
		rc = to_buf(&c, out, err);
	cps_release(&c);
	return rc;
}
