/*
 * text.c - the text of a generation as it grows, for streaming and stop
 * strings.
 *
 * Each token re-decodes the whole completion (a token's text can depend on
 * its neighbours: SentencePiece's leading space, byte-level BPE's split
 * characters), then hands out what is new, minus a tail held back that is
 *   - an incomplete UTF-8 character (bytes of one character in two tokens),
 *     or a U+FFFD the decoder made for one, or
 *   - the start of a stop string (it may complete with the next token).
 * A stop string found anywhere in the new text ends the generation there:
 * the text before it is the last handed out, the stop string itself never.
 */
#include "serve_int.h"

void srv_text_init(struct srv_text *t, const struct ft_tokenizer *tok, const char *const *stops,
		   size_t n_stops)
{
	memset(t, 0, sizeof(*t));
	t->tok = tok;
	t->stops = stops;
	t->n_stops = n_stops;
	ft_buf_init(&t->full, 64u << 20);
}

void srv_text_release(struct srv_text *t)
{
	ft_ids_release(&t->ids);
	ft_buf_release(&t->full);
}

/* Bytes of s[0..n) that end on a whole UTF-8 character, not counting a
 * trailing U+FFFD (EF BF BD) that may be a character still incomplete. */
static size_t complete_utf8(const char *s, size_t n)
{
	size_t i = n;
	/* back over at most 3 continuation bytes to a lead byte */
	size_t k = 0;
	while (k < 3 && i > 0 && ((unsigned char)s[i - 1] & 0xC0) == 0x80)
		i--, k++;
	if (i > 0) {
		unsigned char c = (unsigned char)s[i - 1];
		size_t need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
		if (need == k + 1) /* the last character is whole */
			i = n;
		else
			i--; /* cut the incomplete character */
	}
	if (i >= 3 && memcmp(s + i - 3, "\xef\xbf\xbd", 3) == 0)
		i -= 3;
	return i;
}

/* Longest suffix of s[0..n) that is a proper prefix of a stop string. */
static size_t stop_prefix_tail(const struct srv_text *t, const char *s, size_t n)
{
	size_t best = 0;
	for (size_t k = 0; k < t->n_stops; k++) {
		size_t sl = strlen(t->stops[k]);
		for (size_t m = FT_MIN(sl - 1, n); m > best; m--)
			if (memcmp(s + n - m, t->stops[k], m) == 0) {
				best = m;
				break;
			}
	}
	return best;
}

void srv_text_push(struct srv_text *t, int32_t id, struct ft_buf *out)
{
	ft_buf_reset(out);
	if (t->stopped || ft_ids_push(&t->ids, id))
		return;
	ft_buf_reset(&t->full);
	struct ft_err e;
	ft_err_clear(&e);
	if (ft_tokenizer_decode(t->tok, t->ids.v, t->ids.len, FT_TOK_SKIP_SPECIAL, &t->full, &e))
		return;
	const char *s = ft_buf_str(&t->full);
	size_t n = t->full.len;
	/* a stop string anywhere after what was handed out ends it */
	size_t from = t->sent > 64 ? t->sent - 64 : 0, cut = n;
	for (size_t k = 0; k < t->n_stops; k++) {
		size_t sl = strlen(t->stops[k]);
		for (size_t i = from; sl && i + sl <= n; i++)
			if (memcmp(s + i, t->stops[k], sl) == 0 && i + sl > t->sent) {
				cut = FT_MIN(cut, i);
				break;
			}
	}
	size_t upto;
	if (cut < n) {
		t->stopped = true;
		upto = FT_MAX(cut, t->sent);
	} else {
		upto = complete_utf8(s, n);
		upto -= stop_prefix_tail(t, s, upto);
	}
	if (upto > t->sent) {
		ft_buf_add_or_drop(out, s + t->sent, upto - t->sent);
		t->sent = upto;
	}
}

void srv_text_flush(struct srv_text *t, struct ft_buf *out)
{
	ft_buf_reset(out);
	if (t->stopped || t->full.len <= t->sent)
		return;
	ft_buf_add_or_drop(out, ft_buf_str(&t->full) + t->sent, t->full.len - t->sent);
	t->sent = t->full.len;
}
