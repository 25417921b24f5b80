/*
 * chat_template.c - the chat template families of ft/chat.h, rendered
 * natively as labelled segments, and recognition of a model's Jinja
 * template by distinctive substrings.
 *
 * Each family is one render function writing segments through put();
 * "trim" / "strip" are Python's str.strip() (what Jinja's trim filter and
 * .strip() call): Unicode White_Space plus U+001C..U+001F, from both ends.
 *
 * Recognition table (first row whose every `need` substring occurs and no
 * `veto` substring occurs wins):
 *
 *   family   need                                  veto
 *   llama3   <|start_header_id|>, <|eot_id|>        Cutting Knowledge Date (Llama 3.1+: dated system block)
 *   chatml   <|im_start|>, <|im_end|>
 *   llama2   [INST], <<SYS>>
 *   mistral  ' [INST] ' (or " [INST] "): the v0.2 / Mixtral spacing
 *   alpaca   ### Instruction:
 *
 * chatml also takes the default system message of Qwen2.5-style templates
 * (see chatml_default_system). Tool-calling branches of a template are
 * ignored: training data never passes tools.
 */
#include "ft/chat.h"

struct ft_chat_template {
	enum ft_chat_family family;
	char *bos;
	char *eos;
	char *default_system; /* NULL when none */
};

static const char *const family_names[FT_CHAT_FAMILY_COUNT] = {
	[FT_CHAT_LLAMA3] = "llama3", [FT_CHAT_CHATML] = "chatml", [FT_CHAT_MISTRAL] = "mistral",
	[FT_CHAT_LLAMA2] = "llama2", [FT_CHAT_ALPACA] = "alpaca", [FT_CHAT_PLAIN] = "plain",
};

static const struct {
	const char *name;
	enum ft_chat_family family;
} aliases[] = {
	{ "qwen", FT_CHAT_CHATML },    { "qwen2", FT_CHAT_CHATML },   { "qwen2.5", FT_CHAT_CHATML },
	{ "llama-3", FT_CHAT_LLAMA3 }, { "llama-2", FT_CHAT_LLAMA2 },
};

static const char *const role_names[FT_CHAT_ROLE_COUNT] = { "system", "user", "assistant" };

#define ALPACA_PREAMBLE                                                                       \
	"Below is an instruction that describes a task. Write a response that appropriately " \
	"completes the request."

const char *ft_chat_role_name(enum ft_chat_role r)
{
	return (unsigned)r < FT_CHAT_ROLE_COUNT ? role_names[r] : "unknown";
}

const char *ft_chat_template_names(void)
{
	return "llama3, chatml (qwen), mistral, llama2, alpaca, plain";
}

/* ---- the render buffer ---- */

void ft_chat_render_init(struct ft_chat_render *r)
{
	ft_buf_init(&r->text, (size_t)1 << 30);
	r->segs = NULL;
	r->n_segs = r->cap_segs = 0;
}

void ft_chat_render_release(struct ft_chat_render *r)
{
	ft_buf_release(&r->text);
	free(r->segs);
	r->segs = NULL;
	r->n_segs = r->cap_segs = 0;
}

void ft_chat_render_reset(struct ft_chat_render *r)
{
	ft_buf_reset(&r->text);
	r->n_segs = 0;
}

enum ft_rc ft_chat_render_add(struct ft_chat_render *r, const char *text, size_t len, int msg,
			      bool trained)
{
	if (len == 0)
		return FT_OK;
	/* Merge with the previous segment when it has the same labels. */
	if (r->n_segs > 0) {
		struct ft_chat_seg *p = &r->segs[r->n_segs - 1];
		if (p->msg == msg && p->trained == trained && p->off + p->len == r->text.len) {
			if (ft_buf_add(&r->text, text, len))
				return FT_ENOMEM;
			p->len += len;
			return FT_OK;
		}
	}
	if (r->n_segs == r->cap_segs) {
		size_t ncap = r->cap_segs ? r->cap_segs * 2 : 16;
		struct ft_chat_seg *s = realloc(r->segs, ncap * sizeof(*s));
		if (!s)
			return FT_ENOMEM;
		r->segs = s;
		r->cap_segs = ncap;
	}
	size_t off = r->text.len;
	if (ft_buf_add(&r->text, text, len))
		return FT_ENOMEM;
	r->segs[r->n_segs++] =
		(struct ft_chat_seg){ .off = off, .len = len, .msg = msg, .trained = trained };
	return FT_OK;
}

/* ---- Python str.strip() over UTF-8 ---- */

static bool py_space(uint32_t c)
{
	return (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x20) || c == 0x85 || c == 0xa0 ||
	       c == 0x1680 || (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 ||
	       c == 0x202f || c == 0x205f || c == 0x3000;
}

/* Decode the code point starting at s[i] (len n); returns its byte length,
 * 1 for an invalid byte (which is never a space). */
static size_t utf8_at(const unsigned char *s, size_t n, size_t i, uint32_t *cp)
{
	unsigned char c = s[i];
	size_t k;
	uint32_t v;
	if (c < 0x80) {
		*cp = c;
		return 1;
	} else if ((c & 0xe0) == 0xc0) {
		k = 2;
		v = c & 0x1f;
	} else if ((c & 0xf0) == 0xe0) {
		k = 3;
		v = c & 0x0f;
	} else if ((c & 0xf8) == 0xf0) {
		k = 4;
		v = c & 0x07;
	} else {
		*cp = 0xfffd;
		return 1;
	}
	if (i + k > n) {
		*cp = 0xfffd;
		return 1;
	}
	for (size_t j = 1; j < k; j++) {
		if ((s[i + j] & 0xc0) != 0x80) {
			*cp = 0xfffd;
			return 1;
		}
		v = (v << 6) | (s[i + j] & 0x3f);
	}
	*cp = v;
	return k;
}

static void py_strip(const char **text, size_t *len)
{
	const unsigned char *s = (const unsigned char *)*text;
	size_t n = *len, b = 0, e = n;
	uint32_t cp;
	while (b < n) {
		size_t k = utf8_at(s, n, b, &cp);
		if (!py_space(cp))
			break;
		b += k;
	}
	while (e > b) {
		/* step back to the start of the previous code point */
		size_t st = e - 1;
		while (st > b && (s[st] & 0xc0) == 0x80 && e - st < 4)
			st--;
		size_t k = utf8_at(s, n, st, &cp);
		if (st + k != e) { /* not a whole code point: a lone byte */
			break;
		}
		if (!py_space(cp))
			break;
		e = st;
	}
	*text = (const char *)s + b;
	*len = e - b;
}

/* ---- families ---- */

struct rctx {
	const struct ft_chat_template *t;
	const struct ft_chat_msg *m;
	size_t n;
	unsigned flags;
	struct ft_chat_render *r;
};

/* Is message i trained? */
static bool trained(const struct rctx *c, int i)
{
	if (i < 0)
		return (c->flags & FT_CHAT_TRAIN_ON_INPUTS) != 0;
	if (c->m[i].weight == 0)
		return false;
	if (c->flags & FT_CHAT_TRAIN_ON_INPUTS)
		return true;
	return c->m[i].role == FT_CHAT_ASSISTANT;
}

/* Untrained part of message i (headers): trained only with train_on_inputs. */
static bool frame(const struct rctx *c, int i)
{
	if (i >= 0 && c->m[i].weight == 0)
		return false;
	return (c->flags & FT_CHAT_TRAIN_ON_INPUTS) != 0;
}

static enum ft_rc put(const struct rctx *c, const char *s, size_t len, int msg, bool tr)
{
	return ft_chat_render_add(c->r, s, len, msg, tr);
}

static enum ft_rc puts_(const struct rctx *c, const char *s, int msg, bool tr)
{
	return put(c, s, strlen(s), msg, tr);
}

static enum ft_rc put_bos(const struct rctx *c)
{
	if (c->flags & FT_CHAT_NO_BOS)
		return FT_OK;
	return puts_(c, c->t->bos, -1, frame(c, -1));
}

static enum ft_rc render_llama3(const struct rctx *c, struct ft_err *err)
{
	FT_UNUSED(err);
	for (size_t i = 0; i < c->n; i++) {
		int mi = (int)i;
		const char *s = c->m[i].content;
		size_t len = c->m[i].len;
		if (i == 0 && put_bos(c))
			return FT_ENOMEM;
		py_strip(&s, &len);
		if (puts_(c, "<|start_header_id|>", mi, frame(c, mi)) ||
		    puts_(c, role_names[c->m[i].role], mi, frame(c, mi)) ||
		    puts_(c, "<|end_header_id|>\n\n", mi, frame(c, mi)) ||
		    put(c, s, len, mi, trained(c, mi)) ||
		    puts_(c, "<|eot_id|>", mi, trained(c, mi)))
			return FT_ENOMEM;
	}
	if ((c->flags & FT_CHAT_ADD_GENERATION_PROMPT) &&
	    puts_(c, "<|start_header_id|>assistant<|end_header_id|>\n\n", -1, frame(c, -1)))
		return FT_ENOMEM;
	return FT_OK;
}

static enum ft_rc render_chatml(const struct rctx *c, struct ft_err *err)
{
	FT_UNUSED(err);
	if (c->t->default_system && (c->n == 0 || c->m[0].role != FT_CHAT_SYSTEM)) {
		if (puts_(c, "<|im_start|>system\n", -1, frame(c, -1)) ||
		    puts_(c, c->t->default_system, -1, frame(c, -1)) ||
		    puts_(c, "<|im_end|>\n", -1, frame(c, -1)))
			return FT_ENOMEM;
	}
	for (size_t i = 0; i < c->n; i++) {
		int mi = (int)i;
		if (puts_(c, "<|im_start|>", mi, frame(c, mi)) ||
		    puts_(c, role_names[c->m[i].role], mi, frame(c, mi)) ||
		    puts_(c, "\n", mi, frame(c, mi)) ||
		    put(c, c->m[i].content, c->m[i].len, mi, trained(c, mi)) ||
		    puts_(c, "<|im_end|>", mi, trained(c, mi)) || puts_(c, "\n", mi, frame(c, mi)))
			return FT_ENOMEM;
	}
	if ((c->flags & FT_CHAT_ADD_GENERATION_PROMPT) &&
	    puts_(c, "<|im_start|>assistant\n", -1, frame(c, -1)))
		return FT_ENOMEM;
	return FT_OK;
}

/* [INST] families: after an optional leading system message the roles must
 * be user, assistant, user, ... (the Jinja templates raise otherwise). */
static enum ft_rc check_alternating(const struct rctx *c, size_t first, struct ft_err *err)
{
	for (size_t i = first; i < c->n; i++) {
		enum ft_chat_role want = (i - first) % 2 == 0 ? FT_CHAT_USER : FT_CHAT_ASSISTANT;
		if (c->m[i].role != want) {
			ft_failf(
				err, FT_EINVAL, "invalid_role_order",
				"message %zu is \"%s\" but the %s template needs roles alternating "
				"user/assistant after an optional first system message",
				i, role_names[c->m[i].role], family_names[c->t->family]);
			char p[32];
			snprintf(p, sizeof(p), "messages[%zu]", i);
			ft_err_param(err, p);
			return FT_EINVAL;
		}
	}
	return FT_OK;
}

static enum ft_rc render_mistral(const struct rctx *c, struct ft_err *err)
{
	size_t first = c->n > 0 && c->m[0].role == FT_CHAT_SYSTEM ? 1 : 0;
	if (check_alternating(c, first, err))
		return FT_EINVAL;
	if (put_bos(c))
		return FT_ENOMEM;
	for (size_t i = first; i < c->n; i++) {
		int mi = (int)i;
		if (c->m[i].role == FT_CHAT_USER) {
			if (puts_(c, " [INST] ", mi, frame(c, mi)))
				return FT_ENOMEM;
			if (i == first && first == 1 &&
			    (put(c, c->m[0].content, c->m[0].len, 0, trained(c, 0)) ||
			     puts_(c, "\n\n", mi, frame(c, mi))))
				return FT_ENOMEM;
			if (put(c, c->m[i].content, c->m[i].len, mi, trained(c, mi)) ||
			    puts_(c, " [/INST]", mi, frame(c, mi)))
				return FT_ENOMEM;
		} else {
			if (puts_(c, " ", mi, frame(c, mi)) ||
			    put(c, c->m[i].content, c->m[i].len, mi, trained(c, mi)) ||
			    puts_(c, c->t->eos, mi, trained(c, mi)))
				return FT_ENOMEM;
		}
	}
	return FT_OK;
}

static enum ft_rc render_llama2(const struct rctx *c, struct ft_err *err)
{
	size_t first = c->n > 0 && c->m[0].role == FT_CHAT_SYSTEM ? 1 : 0;
	struct ft_buf tmp = FT_BUF_INIT((size_t)1 << 30);
	enum ft_rc rc = FT_OK;
	if (check_alternating(c, first, err))
		return FT_EINVAL;
	for (size_t i = first; i < c->n; i++) {
		int mi = (int)i;
		const char *s = c->m[i].content;
		size_t len = c->m[i].len;
		if (i == first && first == 1) {
			/* the Jinja template strips '<<SYS>>\n' + sys + '\n<</SYS>>\n\n' + content
			 * as one string; it is written as part of the first user message */
			ft_buf_reset(&tmp);
			if (ft_buf_addstr(&tmp, "<<SYS>>\n") ||
			    ft_buf_add(&tmp, c->m[0].content, c->m[0].len) ||
			    ft_buf_addstr(&tmp, "\n<</SYS>>\n\n") || ft_buf_add(&tmp, s, len)) {
				rc = FT_ENOMEM;
				goto out_tmp;
			}
			s = ft_buf_str(&tmp);
			len = tmp.len;
		}
		py_strip(&s, &len);
		if (c->m[i].role == FT_CHAT_USER) {
			if ((!(c->flags & FT_CHAT_NO_BOS) || i != first) &&
			    puts_(c, c->t->bos, mi, frame(c, mi))) {
				rc = FT_ENOMEM;
				goto out_tmp;
			}
			if (puts_(c, "[INST] ", mi, frame(c, mi)) ||
			    put(c, s, len, mi, trained(c, mi)) ||
			    puts_(c, " [/INST]", mi, frame(c, mi))) {
				rc = FT_ENOMEM;
				goto out_tmp;
			}
		} else {
			if (puts_(c, " ", mi, frame(c, mi)) || put(c, s, len, mi, trained(c, mi)) ||
			    puts_(c, " ", mi, trained(c, mi)) ||
			    puts_(c, c->t->eos, mi, trained(c, mi))) {
				rc = FT_ENOMEM;
				goto out_tmp;
			}
		}
	}
out_tmp:
	ft_buf_release(&tmp);
	return rc;
}

static enum ft_rc render_alpaca(const struct rctx *c, struct ft_err *err)
{
	FT_UNUSED(err);
	size_t first = 0;
	if (put_bos(c))
		return FT_ENOMEM;
	if (c->n > 0 && c->m[0].role == FT_CHAT_SYSTEM) {
		if (put(c, c->m[0].content, c->m[0].len, 0, trained(c, 0)) ||
		    puts_(c, "\n\n", 0, frame(c, 0)))
			return FT_ENOMEM;
		first = 1;
	} else if (puts_(c, ALPACA_PREAMBLE "\n\n", -1, frame(c, -1))) {
		return FT_ENOMEM;
	}
	for (size_t i = first; i < c->n; i++) {
		int mi = (int)i;
		bool asst = c->m[i].role == FT_CHAT_ASSISTANT;
		if (puts_(c, asst ? "### Response:\n" : "### Instruction:\n", mi, frame(c, mi)) ||
		    put(c, c->m[i].content, c->m[i].len, mi, trained(c, mi)) ||
		    (asst && puts_(c, c->t->eos, mi, trained(c, mi))) ||
		    puts_(c, "\n\n", mi, frame(c, mi)))
			return FT_ENOMEM;
	}
	if ((c->flags & FT_CHAT_ADD_GENERATION_PROMPT) &&
	    puts_(c, "### Response:\n", -1, frame(c, -1)))
		return FT_ENOMEM;
	return FT_OK;
}

static enum ft_rc render_plain(const struct rctx *c, struct ft_err *err)
{
	FT_UNUSED(err);
	if (put_bos(c))
		return FT_ENOMEM;
	for (size_t i = 0; i < c->n; i++) {
		int mi = (int)i;
		bool asst = c->m[i].role == FT_CHAT_ASSISTANT;
		if (put(c, c->m[i].content, c->m[i].len, mi, trained(c, mi)) ||
		    (asst ? puts_(c, c->t->eos, mi, trained(c, mi))
			  : puts_(c, "\n", mi, frame(c, mi))))
			return FT_ENOMEM;
	}
	return FT_OK;
}

static enum ft_rc (*const renderers[FT_CHAT_FAMILY_COUNT])(const struct rctx *, struct ft_err *) = {
	[FT_CHAT_LLAMA3] = render_llama3,   [FT_CHAT_CHATML] = render_chatml,
	[FT_CHAT_MISTRAL] = render_mistral, [FT_CHAT_LLAMA2] = render_llama2,
	[FT_CHAT_ALPACA] = render_alpaca,   [FT_CHAT_PLAIN] = render_plain,
};

enum ft_rc ft_chat_render_messages(const struct ft_chat_template *t, const struct ft_chat_msg *msgs,
				   size_t n, unsigned flags, struct ft_chat_render *r,
				   struct ft_err *err)
{
	struct rctx c = { .t = t, .m = msgs, .n = n, .flags = flags, .r = r };
	ft_chat_render_reset(r);
	for (size_t i = 0; i < n; i++)
		FT_ASSERT((unsigned)msgs[i].role < FT_CHAT_ROLE_COUNT);
	enum ft_rc rc = renderers[t->family](&c, err);
	if (rc == FT_ENOMEM)
		return ft_failf(err, FT_ENOMEM, "out_of_memory",
				"rendering a conversation: out of memory");
	if (rc)
		ft_chat_render_reset(r);
	return rc;
}

/* ---- construction ---- */

static struct ft_chat_template *tmpl_make(enum ft_chat_family f, const char *bos, const char *eos)
{
	struct ft_chat_template *t = ft_xcalloc(1, sizeof(*t));
	t->family = f;
	t->bos = ft_xstrdup(bos ? bos : "");
	t->eos = ft_xstrdup(eos ? eos : "");
	return t;
}

void ft_chat_template_free(struct ft_chat_template *t)
{
	if (!t)
		return;
	free(t->bos);
	free(t->eos);
	free(t->default_system);
	free(t);
}

static enum ft_rc unknown(const char *what, const char *name, struct ft_err *err)
{
	ft_failf(err, FT_EINVAL, "unknown_template", "%s \"%s\" is not a known chat template", what,
		 name);
	ft_err_hintf(err, "name one of: %s", ft_chat_template_names());
	ft_err_param(err, "template");
	return FT_EINVAL;
}

enum ft_rc ft_chat_template_new(const char *name, const char *bos, const char *eos,
				struct ft_chat_template **out, struct ft_err *err)
{
	*out = NULL;
	for (int f = 0; f < FT_CHAT_FAMILY_COUNT; f++)
		if (strcmp(name, family_names[f]) == 0) {
			*out = tmpl_make((enum ft_chat_family)f, bos, eos);
			return FT_OK;
		}
	for (size_t i = 0; i < FT_ARRAY_LEN(aliases); i++)
		if (strcmp(name, aliases[i].name) == 0) {
			*out = tmpl_make(aliases[i].family, bos, eos);
			return FT_OK;
		}
	return unknown("template", name, err);
}

static const struct {
	enum ft_chat_family family;
	const char *need[3];
	const char *veto[2];
} recognise[] = {
	{ FT_CHAT_LLAMA3, { "<|start_header_id|>", "<|eot_id|>" }, { "Cutting Knowledge Date" } },
	{ FT_CHAT_CHATML, { "<|im_start|>", "<|im_end|>" }, { NULL } },
	{ FT_CHAT_LLAMA2, { "[INST]", "<<SYS>>" }, { NULL } },
	{ FT_CHAT_MISTRAL, { "' [INST] '" }, { NULL } },
	{ FT_CHAT_MISTRAL, { "\" [INST] \"" }, { NULL } },
	{ FT_CHAT_ALPACA, { "### Instruction:" }, { NULL } },
};

/* Qwen2.5-style default system message: a string literal
 * '<|im_start|>system\n<text><|im_end|>\n' whose text holds no quote (the
 * branch writing messages[0] ends the literal right after "system\n").
 * Jinja escapes \n, \t, \\, \', \" are undone. */
static char *chatml_default_system(const char *j)
{
	static const char *const opens[] = { "<|im_start|>system\\n", "<|im_start|>system\n" };
	for (size_t o = 0; o < FT_ARRAY_LEN(opens); o++) {
		for (const char *p = strstr(j, opens[o]); p; p = strstr(p + 1, opens[o])) {
			const char *s = p + strlen(opens[o]);
			const char *e = strstr(s, "<|im_end|>");
			if (!e || e == s)
				continue;
			if (memchr(s, '\'', (size_t)(e - s)) || memchr(s, '"', (size_t)(e - s)))
				continue;
			struct ft_buf b = FT_BUF_INIT(1 << 16);
			bool ok = true;
			for (const char *q = s; q < e && ok; q++) {
				char ch = *q;
				if (ch == '\\' && q + 1 < e) {
					q++;
					ch = *q == 'n' ? '\n' : *q == 't' ? '\t' : *q;
				}
				ok = ft_buf_addch(&b, ch) == FT_OK;
			}
			char *text = ok && b.len > 0 ? ft_buf_take(&b) : NULL;
			ft_buf_release(&b);
			if (text)
				return text;
		}
	}
	return NULL;
}

enum ft_rc ft_chat_template_from_jinja(const char *jinja, const char *bos, const char *eos,
				       struct ft_chat_template **out, struct ft_err *err)
{
	*out = NULL;
	for (size_t i = 0; i < FT_ARRAY_LEN(recognise); i++) {
		bool ok = true;
		for (size_t k = 0; k < FT_ARRAY_LEN(recognise[i].need) && recognise[i].need[k]; k++)
			ok = ok && strstr(jinja, recognise[i].need[k]);
		for (size_t k = 0; k < FT_ARRAY_LEN(recognise[i].veto) && recognise[i].veto[k]; k++)
			ok = ok && !strstr(jinja, recognise[i].veto[k]);
		if (!ok)
			continue;
		*out = tmpl_make(recognise[i].family, bos, eos);
		if (recognise[i].family == FT_CHAT_CHATML)
			(*out)->default_system = chatml_default_system(jinja);
		return FT_OK;
	}
	/* name the template by its first characters (whole UTF-8 characters,
	 * newlines shown as \n, other control characters dropped) */
	char head[64];
	size_t k = 0;
	const char *p = jinja;
	while (*p) {
		size_t n = 1;
		while (((unsigned char)p[n] & 0xC0) == 0x80)
			n++;
		if (k + n + 2 >= sizeof head)
			break;
		if (*p == '\n') {
			head[k++] = '\\';
			head[k++] = 'n';
		} else if ((unsigned char)*p >= 0x20) {
			memcpy(head + k, p, n);
			k += n;
		}
		p += n;
	}
	head[k] = 0;
	ft_failf(err, FT_EINVAL, "unknown_template",
		 "the model's chat_template is not one of the known families (it begins \"%s%s\")",
		 head, *p ? "..." : "");
	ft_err_hintf(err, "name the template in the job (\"chat_template\"): one of %s",
		     ft_chat_template_names());
	ft_err_param(err, "template");
	return FT_EINVAL;
}

enum ft_chat_family ft_chat_template_family(const struct ft_chat_template *t)
{
	return t->family;
}

const char *ft_chat_template_name(const struct ft_chat_template *t)
{
	return family_names[t->family];
}

const char *ft_chat_template_default_system(const struct ft_chat_template *t)
{
	return t->default_system;
}

const char *ft_chat_template_eos(const struct ft_chat_template *t)
{
	return t->eos;
}

/* ---- Ollama: the family as a Go text/template (a Modelfile's TEMPLATE) ----
 *
 * Ollama renders a TEMPLATE with .Messages (Role "system" | "user" |
 * "assistant", Content), after putting the Modelfile's SYSTEM first when
 * the conversation has no system message (so the default system message of
 * a chatml template is the Modelfile's SYSTEM, not template text). Each
 * template below writes what the family's renderer above writes for the
 * same messages with the generation prompt when the last message is not
 * the assistant's, and leaves a last assistant message open (Ollama's
 * prefill). $last marks the last message (Ollama's own templates' idiom).
 * Placeholders: @B@ the BOS text that starts the text (empty when llama.cpp
 * adds BOS itself), @b@ the BOS text, @F@ "true" when the first user turn
 * of llama2 writes its BOS, @E@ the EOS text, @P@ the Alpaca preamble.
 * What Go templates cannot do: strip (llama3, llama2 strip each content;
 * the Go template writes it as it is, so contents with surrounding white
 * space differ) and refuse misordered roles.
 */
#define GO_LAST "{{ $last := eq (len (slice $.Messages $i)) 1 }}"
#define GO_EACH "{{ range $i, $_ := .Messages }}" GO_LAST
#define GO_SYS0 "(eq (index $.Messages 0).Role \"system\")"

static const struct {
	const char *go;
	const char *stops[2]; /* besides @E@ where the family writes it */
	bool eos_stop;
} ollama[FT_CHAT_FAMILY_COUNT] = {
	[FT_CHAT_LLAMA3] = { "@B@" GO_EACH
			     "<|start_header_id|>{{ .Role }}<|end_header_id|>\n\n{{ .Content }}"
			     "{{ if or (ne .Role \"assistant\") (not $last) }}<|eot_id|>{{ end }}"
			     "{{ if and $last (ne .Role \"assistant\") }}"
			     "<|start_header_id|>assistant<|end_header_id|>\n\n{{ end }}{{ end }}",
			     { "<|eot_id|>", "<|start_header_id|>" },
			     false },
	[FT_CHAT_CHATML] = { GO_EACH
			     "<|im_start|>{{ .Role }}\n{{ .Content }}"
			     "{{ if or (ne .Role \"assistant\") (not $last) }}<|im_end|>\n{{ end }}"
			     "{{ if and $last (ne .Role \"assistant\") }}<|im_start|>assistant\n"
			     "{{ end }}{{ end }}",
			     { "<|im_end|>", "<|im_start|>" },
			     false },
	[FT_CHAT_MISTRAL] = { "@B@" GO_EACH "{{ if eq .Role \"user\" }} [INST] "
			      "{{ if and (eq $i 1) " GO_SYS0 " }}"
			      "{{ (index $.Messages 0).Content }}\n\n{{ end }}"
			      "{{ .Content }} [/INST]{{ else if eq .Role \"assistant\" }} {{ "
			      ".Content }}"
			      "{{ if not $last }}@E@{{ end }}{{ end }}{{ end }}",
			      { "[INST]", NULL },
			      true },
	[FT_CHAT_LLAMA2] = { GO_EACH
			     "{{ if eq .Role \"user\" }}"
			     "{{ if or @F@ (gt $i 1) (and (eq $i 1) (not " GO_SYS0
			     ")) }}@b@{{ end }}[INST] {{ if and (eq $i 1) " GO_SYS0 " }}"
			     "<<SYS>>\n{{ (index $.Messages 0).Content }}\n<</SYS>>\n\n{{ end }}"
			     "{{ .Content }} [/INST]{{ else if eq .Role \"assistant\" }} "
			     "{{ .Content }}{{ if not $last }} @E@{{ end }}{{ end }}{{ end }}",
			     { "[INST]", NULL },
			     true },
	[FT_CHAT_ALPACA] = { "@B@{{ if eq (index .Messages 0).Role \"system\" }}"
			     "{{ (index .Messages 0).Content }}{{ else }}@P@{{ end }}\n\n" GO_EACH
			     "{{ if eq .Role \"user\" }}### Instruction:\n{{ .Content }}\n\n"
			     "{{ if $last }}### Response:\n{{ end }}{{ else if eq .Role "
			     "\"assistant\" }}"
			     "### Response:\n{{ .Content }}{{ if not $last }}@E@\n\n{{ end }}{{ "
			     "end }}"
			     "{{ end }}",
			     { "### Instruction:", NULL },
			     true },
	[FT_CHAT_PLAIN] = { "@B@" GO_EACH "{{ .Content }}{{ if ne .Role \"assistant\" }}\n"
			    "{{ else if not $last }}@E@{{ end }}{{ end }}",
			    { NULL, NULL },
			    true },
};

/* Literal text inside a Go template: "{{" would open an action. */
static enum ft_rc go_literal(struct ft_buf *out, const char *s)
{
	for (; *s; s++) {
		if (s[0] == '{' && s[1] == '{') {
			if (ft_buf_addstr(out, "{{ \"{{\" }}"))
				return FT_ENOMEM;
			s++;
			continue;
		}
		if (ft_buf_addch(out, *s))
			return FT_ENOMEM;
	}
	return FT_OK;
}

enum ft_rc ft_chat_template_ollama(const struct ft_chat_template *t, bool llama_adds_bos,
				   struct ft_buf *out)
{
	for (const char *p = ollama[t->family].go; *p; p++) {
		enum ft_rc rc = FT_OK;
		if (p[0] != '@' || !p[1] || p[2] != '@') {
			rc = ft_buf_addch(out, *p);
		} else {
			switch (p[1]) {
			case 'B': rc = llama_adds_bos ? FT_OK : go_literal(out, t->bos); break;
			case 'b': rc = go_literal(out, t->bos); break;
			case 'F': rc = ft_buf_addstr(out, llama_adds_bos ? "false" : "true"); break;
			case 'E': rc = go_literal(out, t->eos); break;
			case 'P': rc = go_literal(out, ALPACA_PREAMBLE); break;
			default: FT_ASSERT(!"a placeholder of the table");
			}
			p += 2;
		}
		if (rc)
			return FT_ENOMEM;
	}
	return FT_OK;
}

size_t ft_chat_template_stops(const struct ft_chat_template *t, const char **out, size_t max)
{
	size_t n = 0;
	for (size_t i = 0; i < 2 && ollama[t->family].stops[i] && n < max; i++)
		out[n++] = ollama[t->family].stops[i];
	if (ollama[t->family].eos_stop && t->eos[0] && n < max)
		out[n++] = t->eos;
	return n;
}
