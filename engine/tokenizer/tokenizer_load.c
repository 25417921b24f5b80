/*
 * tokenizer_load.c - reading tokenizer.json and tokenizer_config.json into
 * struct ft_tokenizer (tokenizer_int.h), and the lookups over it.
 *
 * Each part of tokenizer.json (normalizer, pre_tokenizer, decoder,
 * post_processor, model, added_tokens) has a parser here; the component
 * types each family knows are tables of { "Type", parser }. Whatever is not
 * in a table is refused with an error naming it and where it is
 * ("tokenizer.json: pre_tokenizer.pretokenizers[1]: unsupported pre_tokenizer
 * type \"UnicodeScripts\""), so a tokenizer that loads encodes as the
 * reference does. No partial state: a failed load frees everything.
 */
#include <ctype.h>
#include <sys/stat.h>

#include "tokenizer_int.h"
#include "ft/gguf.h"

/* ---- small helpers ---- */

static char *dupn(const char *s, size_t n)
{
	char *d = malloc(n + 1);
	if (d) {
		memcpy(d, s, n);
		d[n] = 0;
	}
	return d;
}

static enum ft_rc bad(struct ft_err *err, const char *path, const char *fmt, ...) FT_PRINTF(3, 4);
static enum ft_rc bad(struct ft_err *err, const char *path, const char *fmt, ...)
{
	char msg[400];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return ft_failf(err, FT_EFORMAT, "invalid_tokenizer", "tokenizer.json: %s%s%s", path,
			*path ? ": " : "", msg);
}

static enum ft_rc oom(struct ft_err *err)
{
	return ft_failf(err, FT_ENOMEM, NULL, "tokenizer: out of memory");
}

/* JSON getters that name the path in tokenizer.json. */
static enum ft_rc get_str(const json_t *o, const char *key, bool req, const char **out, size_t *len,
			  const char *path, struct ft_err *err)
{
	json_t *v = json_object_get(o, key);
	if (!v || json_is_null(v)) {
		if (req)
			return bad(err, path, "\"%s\" is required", key);
		return FT_OK;
	}
	if (!json_is_string(v))
		return bad(err, path, "\"%s\" must be a string (got %s)", key,
			   ft_json_type_name(v));
	*out = json_string_value(v);
	if (len)
		*len = json_string_length(v);
	return FT_OK;
}

static enum ft_rc get_bool(const json_t *o, const char *key, bool *out, const char *path,
			   struct ft_err *err)
{
	json_t *v = json_object_get(o, key);
	if (!v || json_is_null(v))
		return FT_OK;
	if (!json_is_boolean(v))
		return bad(err, path, "\"%s\" must be a boolean (got %s)", key,
			   ft_json_type_name(v));
	*out = json_is_true(v);
	return FT_OK;
}

static enum ft_rc get_type(const json_t *o, const char **type, const char *path, struct ft_err *err)
{
	if (!json_is_object(o))
		return bad(err, path, "must be an object (got %s)", ft_json_type_name(o));
	return get_str(o, "type", true, type, NULL, path, err);
}

/* A string holding exactly one character: its code point. */
static bool one_char(const char *s, size_t n, uint32_t *cp)
{
	if (n == 0 || n > 4 || !ft_utf8_valid(s, n))
		return false;
	return ft_utf8_next(s, n, cp) == n;
}

/* {"String": "x"} or {"Regex": "..."} */
static enum ft_rc parse_pattern(const json_t *o, struct tok_pattern *pat, bool regex_ok,
				const char *path, struct ft_err *err)
{
	const char *s = NULL;
	size_t n = 0;
	if (!json_is_object(o))
		return bad(err, path, "\"pattern\" must be an object (got %s)",
			   ft_json_type_name(o));
	if (json_object_get(o, "String")) {
		if (get_str(o, "String", true, &s, &n, path, err))
			return FT_EFORMAT;
		pat->is_regex = false;
		pat->lit = dupn(s, n);
		pat->lit_len = n;
		return pat->lit ? FT_OK : oom(err);
	}
	if (get_str(o, "Regex", true, &s, &n, path, err))
		return FT_EFORMAT;
	if (!regex_ok || !tok_regex_lookup(s, &pat->re))
		return bad(err, path,
			   "unsupported regex \"%.120s\" (known: the GPT-2, Llama 3 and Qwen2 "
			   "split patterns)",
			   s);
	pat->is_regex = true;
	return FT_OK;
}

/* ---- loading: normalizers, pre-tokenizers, decoders ----
 *
 * Each family is a table of { "Type", parser }. A parser fills one struct
 * from the component's JSON object; add_component walks Sequence and the
 * table, and appends what the parser filled (freeing it on failure). */

struct family {
	const char *what; /* "normalizer", in messages */
	const char *seq_key; /* the list a "Sequence" of this family holds */
	enum ft_rc (*add_one)(struct ft_tokenizer *t, const char *type, const json_t *o,
			      const char *path, struct ft_err *err);
};

static enum ft_rc add_component(struct ft_tokenizer *t, const struct family *f, const json_t *o,
				const char *path, struct ft_err *err, int depth)
{
	const char *type = NULL;
	if (depth > 8)
		return bad(err, path, "%ss nested too deep", f->what);
	if (get_type(o, &type, path, err))
		return FT_EFORMAT;
	if (strcmp(type, "Sequence") != 0)
		return f->add_one(t, type, o, path, err);
	json_t *a = json_object_get(o, f->seq_key);
	if (!json_is_array(a))
		return bad(err, path, "\"%s\" must be a list", f->seq_key);
	for (size_t i = 0; i < json_array_size(a); i++) {
		char p[160];
		snprintf(p, sizeof(p), "%s.%s[%zu]", path, f->seq_key, i);
		enum ft_rc rc = add_component(t, f, json_array_get(a, i), p, err, depth + 1);
		if (rc)
			return rc;
	}
	return FT_OK;
}

/* {"pattern": {"String": a}, "content": b}: a and b into *a, *b. */
static enum ft_rc parse_replace(const json_t *o, char **a, size_t *alen, char **b, size_t *blen,
				const char *path, struct ft_err *err)
{
	struct tok_pattern pat = { 0 };
	const char *s = NULL;
	size_t len = 0;
	if (parse_pattern(json_object_get(o, "pattern"), &pat, false, path, err))
		return FT_EFORMAT;
	*a = pat.lit;
	*alen = pat.lit_len;
	if (get_str(o, "content", true, &s, &len, path, err))
		return FT_EFORMAT;
	*b = dupn(s, len);
	*blen = len;
	return *b ? FT_OK : oom(err);
}

/* normalizers */

typedef enum ft_rc (*norm_fn)(const json_t *o, struct norm *n, const char *path,
			      struct ft_err *err);

static enum ft_rc norm_prepend(const json_t *o, struct norm *n, const char *path,
			       struct ft_err *err)
{
	const char *s = NULL;
	n->kind = NORM_PREPEND;
	if (get_str(o, "prepend", true, &s, &n->alen, path, err))
		return FT_EFORMAT;
	n->a = dupn(s, n->alen);
	return n->a ? FT_OK : oom(err);
}

static enum ft_rc norm_replace(const json_t *o, struct norm *n, const char *path,
			       struct ft_err *err)
{
	n->kind = NORM_REPLACE;
	return parse_replace(o, &n->a, &n->alen, &n->b, &n->blen, path, err);
}

static enum ft_rc norm_strip(const json_t *o, struct norm *n, const char *path, struct ft_err *err)
{
	n->kind = NORM_STRIP;
	n->left = n->right = true;
	if (get_bool(o, "strip_left", &n->left, path, err) ||
	    get_bool(o, "strip_right", &n->right, path, err))
		return FT_EFORMAT;
	return FT_OK;
}

static enum ft_rc norm_nfc(const json_t *o, struct norm *n, const char *path, struct ft_err *err)
{
	FT_UNUSED(o), FT_UNUSED(path), FT_UNUSED(err);
	n->kind = NORM_NFC;
	return FT_OK;
}

static enum ft_rc norm_lowercase(const json_t *o, struct norm *n, const char *path,
				 struct ft_err *err)
{
	FT_UNUSED(o), FT_UNUSED(path), FT_UNUSED(err);
	n->kind = NORM_LOWERCASE;
	return FT_OK;
}

static const struct {
	const char *type;
	norm_fn fn;
} norm_types[] = {
	{ "Prepend", norm_prepend }, { "Replace", norm_replace },     { "Strip", norm_strip },
	{ "NFC", norm_nfc },	     { "Lowercase", norm_lowercase },
};

static enum ft_rc add_norm(struct ft_tokenizer *t, const char *type, const json_t *o,
			   const char *path, struct ft_err *err)
{
	size_t i;
	for (i = 0; i < FT_ARRAY_LEN(norm_types); i++)
		if (strcmp(type, norm_types[i].type) == 0)
			break;
	if (i == FT_ARRAY_LEN(norm_types))
		return bad(err, path, "unsupported normalizer type \"%s\"", type);
	struct norm n = { 0 }, *v = NULL;
	enum ft_rc rc = norm_types[i].fn(o, &n, path, err);
	if (!rc && !(v = realloc(t->norms, (t->nnorms + 1) * sizeof(*v))))
		rc = oom(err);
	if (rc) {
		free(n.a);
		free(n.b);
		return rc;
	}
	t->norms = v;
	t->norms[t->nnorms++] = n;
	return FT_OK;
}

static const struct family normalizers = { "normalizer", "normalizers", add_norm };

/* pre-tokenizers */

static const struct {
	const char *name;
	enum tok_split_behavior b;
} behaviors[] = {
	{ "Removed", TOK_SPLIT_REMOVED },
	{ "Isolated", TOK_SPLIT_ISOLATED },
	{ "MergedWithPrevious", TOK_SPLIT_MERGED_PREV },
	{ "MergedWithNext", TOK_SPLIT_MERGED_NEXT },
	{ "Contiguous", TOK_SPLIT_CONTIGUOUS },
};

static enum ft_rc parse_behavior(const char *b, enum tok_split_behavior *out, const char *path,
				 struct ft_err *err)
{
	for (size_t i = 0; i < FT_ARRAY_LEN(behaviors); i++)
		if (strcmp(b, behaviors[i].name) == 0) {
			*out = behaviors[i].b;
			return FT_OK;
		}
	return bad(err, path, "unknown split behavior \"%s\"", b);
}

static const struct {
	const char *name;
	enum prepend_scheme s;
} schemes[] = {
	{ "always", PREPEND_ALWAYS },
	{ "first", PREPEND_FIRST },
	{ "never", PREPEND_NEVER },
};

/* "prepend_scheme", or the older "add_prefix_space" boolean */
static enum ft_rc parse_scheme(const json_t *o, enum prepend_scheme *out, const char *path,
			       struct ft_err *err)
{
	const char *s = NULL;
	bool aps = true;
	if (get_bool(o, "add_prefix_space", &aps, path, err) ||
	    get_str(o, "prepend_scheme", false, &s, NULL, path, err))
		return FT_EFORMAT;
	*out = aps ? PREPEND_ALWAYS : PREPEND_NEVER;
	if (!s)
		return FT_OK;
	for (size_t i = 0; i < FT_ARRAY_LEN(schemes); i++)
		if (strcmp(s, schemes[i].name) == 0) {
			*out = schemes[i].s;
			return FT_OK;
		}
	return bad(err, path, "unknown prepend_scheme \"%s\"", s);
}

/* Punctuation as the reference sees it: P* or ASCII punctuation. */
static const struct tok_pattern punct_pattern = { .is_class = true,
						  .cls = FT_UNI_P,
						  .punct = true };
static const struct tok_pattern space_pattern = { .is_class = true, .cls = FT_UNI_WS };

typedef enum ft_rc (*pretok_fn)(struct ft_tokenizer *t, const json_t *o, struct pretok *p,
				const char *path, struct ft_err *err);

static enum ft_rc pt_bytelevel(struct ft_tokenizer *t, const json_t *o, struct pretok *p,
			       const char *path, struct ft_err *err)
{
	FT_UNUSED(t);
	p->kind = PT_BYTELEVEL;
	p->add_prefix_space = true;
	p->use_regex = true;
	if (get_bool(o, "add_prefix_space", &p->add_prefix_space, path, err) ||
	    get_bool(o, "use_regex", &p->use_regex, path, err))
		return FT_EFORMAT;
	return FT_OK;
}

static enum ft_rc pt_split(struct ft_tokenizer *t, const json_t *o, struct pretok *p,
			   const char *path, struct ft_err *err)
{
	const char *b = NULL;
	FT_UNUSED(t);
	p->kind = PT_SPLIT;
	if (get_str(o, "behavior", true, &b, NULL, path, err) ||
	    get_bool(o, "invert", &p->invert, path, err) ||
	    parse_behavior(b, &p->behavior, path, err) ||
	    parse_pattern(json_object_get(o, "pattern"), &p->pat, true, path, err))
		return FT_EFORMAT;
	return FT_OK;
}

/* WhitespaceSplit: each whitespace character removed */
static enum ft_rc pt_whitespace_split(struct ft_tokenizer *t, const json_t *o, struct pretok *p,
				      const char *path, struct ft_err *err)
{
	FT_UNUSED(t), FT_UNUSED(o), FT_UNUSED(path), FT_UNUSED(err);
	p->kind = PT_SPLIT;
	p->pat = space_pattern;
	p->behavior = TOK_SPLIT_REMOVED;
	return FT_OK;
}

/* Whitespace: keep the matches of \w+|[^\w\s]+, drop the rest */
static enum ft_rc pt_whitespace(struct ft_tokenizer *t, const json_t *o, struct pretok *p,
				const char *path, struct ft_err *err)
{
	FT_UNUSED(t), FT_UNUSED(o), FT_UNUSED(path), FT_UNUSED(err);
	p->kind = PT_SPLIT;
	p->pat.is_regex = true;
	p->pat.re = TOK_RE_WORDS;
	p->behavior = TOK_SPLIT_REMOVED;
	p->invert = true;
	return FT_OK;
}

static enum ft_rc pt_digits(struct ft_tokenizer *t, const json_t *o, struct pretok *p,
			    const char *path, struct ft_err *err)
{
	bool individual = false;
	FT_UNUSED(t);
	if (get_bool(o, "individual_digits", &individual, path, err))
		return FT_EFORMAT;
	p->kind = PT_SPLIT;
	p->pat.is_class = true;
	p->pat.cls = FT_UNI_N;
	p->behavior = individual ? TOK_SPLIT_ISOLATED : TOK_SPLIT_CONTIGUOUS;
	return FT_OK;
}

static enum ft_rc pt_punctuation(struct ft_tokenizer *t, const json_t *o, struct pretok *p,
				 const char *path, struct ft_err *err)
{
	const char *b = "Isolated";
	FT_UNUSED(t);
	p->kind = PT_SPLIT;
	p->pat = punct_pattern;
	if (get_str(o, "behavior", false, &b, NULL, path, err) ||
	    parse_behavior(b, &p->behavior, path, err))
		return FT_EFORMAT;
	return FT_OK;
}

/* BertPreTokenizer: whitespace removed, then each punctuation character isolated */
static enum ft_rc pt_bert(struct ft_tokenizer *t, const json_t *o, struct pretok *p,
			  const char *path, struct ft_err *err)
{
	FT_UNUSED(o), FT_UNUSED(path);
	struct pretok *v = realloc(t->pretoks, (t->npretoks + 1) * sizeof(*v));
	if (!v)
		return oom(err);
	t->pretoks = v;
	v[t->npretoks++] = (struct pretok){ .kind = PT_SPLIT,
					    .pat = space_pattern,
					    .behavior = TOK_SPLIT_REMOVED };
	p->kind = PT_SPLIT;
	p->pat = punct_pattern;
	p->behavior = TOK_SPLIT_ISOLATED;
	return FT_OK;
}

static enum ft_rc pt_metaspace(struct ft_tokenizer *t, const json_t *o, struct pretok *p,
			       const char *path, struct ft_err *err)
{
	const char *r = NULL;
	size_t rl = 0;
	uint32_t cp;
	FT_UNUSED(t);
	p->kind = PT_METASPACE;
	p->split = true;
	if (get_str(o, "replacement", true, &r, &rl, path, err) ||
	    get_bool(o, "split", &p->split, path, err) || parse_scheme(o, &p->scheme, path, err))
		return FT_EFORMAT;
	if (!one_char(r, rl, &cp))
		return bad(err, path, "\"replacement\" must be one character");
	memcpy(p->repl, r, rl);
	p->repl_len = rl;
	return FT_OK;
}

static const struct {
	const char *type;
	pretok_fn fn;
} pretok_types[] = {
	{ "ByteLevel", pt_bytelevel },
	{ "Split", pt_split },
	{ "Metaspace", pt_metaspace },
	{ "Whitespace", pt_whitespace },
	{ "WhitespaceSplit", pt_whitespace_split },
	{ "Digits", pt_digits },
	{ "Punctuation", pt_punctuation },
	{ "BertPreTokenizer", pt_bert },
};

static enum ft_rc add_pretok(struct ft_tokenizer *t, const char *type, const json_t *o,
			     const char *path, struct ft_err *err)
{
	size_t i;
	for (i = 0; i < FT_ARRAY_LEN(pretok_types); i++)
		if (strcmp(type, pretok_types[i].type) == 0)
			break;
	if (i == FT_ARRAY_LEN(pretok_types))
		return bad(err, path, "unsupported pre_tokenizer type \"%s\"", type);
	struct pretok p = { 0 }, *v = NULL;
	enum ft_rc rc = pretok_types[i].fn(t, o, &p, path, err);
	if (!rc && !(v = realloc(t->pretoks, (t->npretoks + 1) * sizeof(*v))))
		rc = oom(err);
	if (rc) {
		free(p.pat.lit);
		return rc;
	}
	t->pretoks = v;
	t->pretoks[t->npretoks++] = p;
	return FT_OK;
}

static const struct family pre_tokenizers = { "pre-tokenizer", "pretokenizers", add_pretok };

/* decoders */

typedef enum ft_rc (*dec_fn)(const json_t *o, struct dec *d, const char *path, struct ft_err *err);

static enum ft_rc dec_bytelevel(const json_t *o, struct dec *d, const char *path,
				struct ft_err *err)
{
	FT_UNUSED(o), FT_UNUSED(path), FT_UNUSED(err);
	d->kind = DEC_BYTELEVEL;
	return FT_OK;
}

static enum ft_rc dec_bytefallback(const json_t *o, struct dec *d, const char *path,
				   struct ft_err *err)
{
	FT_UNUSED(o), FT_UNUSED(path), FT_UNUSED(err);
	d->kind = DEC_BYTEFALLBACK;
	return FT_OK;
}

static enum ft_rc dec_fuse(const json_t *o, struct dec *d, const char *path, struct ft_err *err)
{
	FT_UNUSED(o), FT_UNUSED(path), FT_UNUSED(err);
	d->kind = DEC_FUSE;
	return FT_OK;
}

static enum ft_rc dec_replace(const json_t *o, struct dec *d, const char *path, struct ft_err *err)
{
	d->kind = DEC_REPLACE;
	return parse_replace(o, &d->a, &d->alen, &d->b, &d->blen, path, err);
}

static enum ft_rc dec_strip(const json_t *o, struct dec *d, const char *path, struct ft_err *err)
{
	const char *s = NULL;
	size_t len = 0;
	long long start = 0, stop = 0;
	d->kind = DEC_STRIP;
	if (get_str(o, "content", true, &s, &len, path, err))
		return FT_EFORMAT;
	if (!one_char(s, len, &d->content))
		return bad(err, path, "\"content\" must be one character");
	if (ft_json_get_int(o, "start", 0, 0, 1 << 20, &start, NULL) ||
	    ft_json_get_int(o, "stop", 0, 0, 1 << 20, &stop, NULL))
		return bad(err, path, "\"start\" and \"stop\" must be small integers");
	d->start = (size_t)start;
	d->stop = (size_t)stop;
	return FT_OK;
}

static enum ft_rc dec_metaspace(const json_t *o, struct dec *d, const char *path,
				struct ft_err *err)
{
	const char *s = NULL;
	size_t len = 0;
	d->kind = DEC_METASPACE;
	if (get_str(o, "replacement", true, &s, &len, path, err) ||
	    parse_scheme(o, &d->scheme, path, err))
		return FT_EFORMAT;
	if (!one_char(s, len, &d->repl))
		return bad(err, path, "\"replacement\" must be one character");
	return FT_OK;
}

static const struct {
	const char *type;
	dec_fn fn;
} dec_types[] = {
	{ "ByteLevel", dec_bytelevel }, { "ByteFallback", dec_bytefallback },
	{ "Fuse", dec_fuse },		{ "Replace", dec_replace },
	{ "Strip", dec_strip },		{ "Metaspace", dec_metaspace },
};

static enum ft_rc add_dec(struct ft_tokenizer *t, const char *type, const json_t *o,
			  const char *path, struct ft_err *err)
{
	size_t i;
	for (i = 0; i < FT_ARRAY_LEN(dec_types); i++)
		if (strcmp(type, dec_types[i].type) == 0)
			break;
	if (i == FT_ARRAY_LEN(dec_types))
		return bad(err, path, "unsupported decoder type \"%s\"", type);
	struct dec d = { 0 }, *v = NULL;
	enum ft_rc rc = dec_types[i].fn(o, &d, path, err);
	if (!rc && !(v = realloc(t->decs, (t->ndecs + 1) * sizeof(*v))))
		rc = oom(err);
	if (rc) {
		free(d.a);
		free(d.b);
		return rc;
	}
	t->decs = v;
	t->decs[t->ndecs++] = d;
	return FT_OK;
}

static const struct family decoders = { "decoder", "decoders", add_dec };

/* ---- loading: post-processor ---- */

static enum ft_rc tmpl_push(int32_t **v, size_t *n, int32_t id, struct ft_err *err)
{
	int32_t *nv = realloc(*v, (*n + 1) * sizeof(*nv));
	if (!nv)
		return oom(err);
	nv[(*n)++] = id;
	*v = nv;
	return FT_OK;
}

static enum ft_rc parse_template(struct ft_tokenizer *t, const json_t *o, const char *path,
				 struct ft_err *err)
{
	json_t *single = json_object_get(o, "single"), *sp = json_object_get(o, "special_tokens");
	bool seen_seq = false;
	if (!json_is_array(single))
		return bad(err, path, "\"single\" must be a list");
	if (sp && !json_is_object(sp))
		return bad(err, path, "\"special_tokens\" must be an object");
	for (size_t i = 0; i < json_array_size(single); i++) {
		json_t *it = json_array_get(single, i), *x;
		const char *id = NULL;
		if ((x = json_object_get(it, "Sequence"))) {
			if (get_str(x, "id", true, &id, NULL, path, err))
				return FT_EFORMAT;
			if (strcmp(id, "A") != 0 || seen_seq)
				return bad(err, path, "\"single\" must hold sequence A once");
			seen_seq = true;
			continue;
		}
		if (!(x = json_object_get(it, "SpecialToken")))
			return bad(err, path,
				   "\"single\"[%zu] must be a Sequence or a SpecialToken", i);
		if (get_str(x, "id", true, &id, NULL, path, err))
			return FT_EFORMAT;
		json_t *st = sp ? json_object_get(sp, id) : NULL, *ids = json_object_get(st, "ids");
		if (!json_is_array(ids))
			return bad(err, path, "special token \"%.100s\" has no \"ids\" list", id);
		for (size_t k = 0; k < json_array_size(ids); k++) {
			json_t *v = json_array_get(ids, k);
			if (!json_is_integer(v) || json_integer_value(v) < 0 ||
			    json_integer_value(v) > INT32_MAX)
				return bad(err, path, "special token \"%.100s\": bad id", id);
			int32_t iv = (int32_t)json_integer_value(v);
			if (seen_seq ? tmpl_push(&t->tmpl_post, &t->npost, iv, err)
				     : tmpl_push(&t->tmpl_pre, &t->npre, iv, err))
				return FT_ENOMEM;
		}
	}
	if (!seen_seq)
		return bad(err, path, "\"single\" must hold sequence A");
	return FT_OK;
}

static enum ft_rc parse_post(struct ft_tokenizer *t, const json_t *o, const char *path,
			     struct ft_err *err, int depth)
{
	const char *type = NULL;
	if (depth > 8)
		return bad(err, path, "post-processors nested too deep");
	if (get_type(o, &type, path, err))
		return FT_EFORMAT;
	if (strcmp(type, "Sequence") == 0) {
		json_t *a = json_object_get(o, "processors");
		if (!json_is_array(a))
			return bad(err, path, "\"processors\" must be a list");
		for (size_t i = 0; i < json_array_size(a); i++) {
			char p[160];
			snprintf(p, sizeof(p), "%s.processors[%zu]", path, i);
			if (parse_post(t, json_array_get(a, i), p, err, depth + 1))
				return FT_EFORMAT;
		}
		return FT_OK;
	}
	if (strcmp(type, "ByteLevel") == 0)
		return FT_OK; /* offsets only */
	if (t->npre || t->npost)
		return bad(err, path, "more than one post-processor adds tokens");
	if (strcmp(type, "TemplateProcessing") == 0)
		return parse_template(t, o, path, err);
	if (strcmp(type, "BertProcessing") == 0 || strcmp(type, "RobertaProcessing") == 0) {
		json_t *cls = json_object_get(o, "cls"), *sep = json_object_get(o, "sep");
		json_t *c1 = json_array_get(cls, 1), *s1 = json_array_get(sep, 1);
		if (!json_is_integer(c1) || !json_is_integer(s1) || json_integer_value(c1) < 0 ||
		    json_integer_value(s1) < 0 || json_integer_value(c1) > INT32_MAX ||
		    json_integer_value(s1) > INT32_MAX)
			return bad(err, path, "\"cls\" and \"sep\" must be [token, id]");
		if (tmpl_push(&t->tmpl_pre, &t->npre, (int32_t)json_integer_value(c1), err) ||
		    tmpl_push(&t->tmpl_post, &t->npost, (int32_t)json_integer_value(s1), err))
			return FT_ENOMEM;
		return FT_OK;
	}
	return bad(err, path, "unsupported post_processor type \"%s\"", type);
}

/* ---- loading: model ---- */

static enum ft_rc parse_model(struct ft_tokenizer *t, const json_t *m, struct ft_err *err)
{
	struct tok_bpe *b = &t->bpe;
	const char *type = "BPE", *s = NULL;
	size_t len = 0;
	if (!json_is_object(m))
		return bad(err, "", "\"model\" must be an object (got %s)", ft_json_type_name(m));
	if (get_str(m, "type", false, &type, NULL, "model", err))
		return FT_EFORMAT;
	if (strcmp(type, "BPE") != 0)
		return bad(err, "model", "unsupported model type \"%s\" (only BPE)", type);
	json_t *dropout = json_object_get(m, "dropout");
	if (dropout && !json_is_null(dropout) &&
	    !(json_is_number(dropout) && json_number_value(dropout) == 0.0))
		return bad(err, "model", "BPE dropout is not supported (must be null)");
	if (get_bool(m, "fuse_unk", &b->fuse_unk, "model", err) ||
	    get_bool(m, "byte_fallback", &b->byte_fallback, "model", err) ||
	    get_bool(m, "ignore_merges", &b->ignore_merges, "model", err))
		return FT_EFORMAT;
	if (get_str(m, "continuing_subword_prefix", false, &s, &len, "model", err))
		return FT_EFORMAT;
	if (s && len) {
		if (!(b->prefix = dupn(s, len)))
			return oom(err);
		b->prefix_len = len;
	}
	s = NULL;
	if (get_str(m, "end_of_word_suffix", false, &s, &len, "model", err))
		return FT_EFORMAT;
	if (s && len) {
		if (!(b->suffix = dupn(s, len)))
			return oom(err);
		b->suffix_len = len;
	}
	json_t *vocab = json_object_get(m, "vocab");
	if (!json_is_object(vocab))
		return bad(err, "model", "\"vocab\" must be an object (got %s)",
			   ft_json_type_name(vocab));
	b->vocab_n = json_object_size(vocab);
	b->vocab = tok_strmap_new(b->vocab_n);
	if (!b->vocab)
		return oom(err);
	b->max_id = -1;
	for (int i = 0; i < 256; i++)
		b->byte_id[i] = -1;
	const char *k;
	json_t *v;
	json_object_foreach(vocab, k, v)
	{
		if (!json_is_integer(v) || json_integer_value(v) < 0 ||
		    json_integer_value(v) > INT32_MAX - 1)
			return bad(err, "model.vocab", "\"%.100s\" must map to an id >= 0", k);
		int32_t id = (int32_t)json_integer_value(v);
		if (tok_strmap_put(b->vocab, k, strlen(k), id))
			return oom(err);
		if (id > b->max_id)
			b->max_id = id;
		unsigned hx;
		/* <0xXX>, as the reference formats it: upper-case hex digits */
		if (strlen(k) == 6 && k[0] == '<' && k[1] == '0' && k[2] == 'x' && k[5] == '>' &&
		    sscanf(k + 3, "%2X", &hx) == 1 && isxdigit((unsigned char)k[3]) &&
		    isxdigit((unsigned char)k[4]) && !islower((unsigned char)k[3]) &&
		    !islower((unsigned char)k[4]))
			b->byte_id[hx] = id;
	}
	for (uint32_t cp = 0; cp < 1024; cp++) {
		char u[4];
		b->char_id[cp] = tok_strmap_get(b->vocab, u, ft_utf8_put(cp, u));
	}
	s = NULL;
	if (get_str(m, "unk_token", false, &s, &len, "model", err))
		return FT_EFORMAT;
	b->unk_id = -1;
	if (s) {
		b->unk_id = tok_strmap_get(b->vocab, s, len);
		if (b->unk_id < 0)
			return bad(err, "model", "unk_token \"%.100s\" is not in the vocabulary",
				   s);
	}
	json_t *merges = json_object_get(m, "merges");
	if (merges && !json_is_array(merges))
		return bad(err, "model", "\"merges\" must be a list (got %s)",
			   ft_json_type_name(merges));
	struct ft_buf cat = FT_BUF_INIT((size_t)1 << 30);
	enum ft_rc rc = FT_OK;
	for (size_t i = 0; merges && i < json_array_size(merges) && !rc; i++) {
		json_t *it = json_array_get(merges, i);
		const char *a, *c;
		size_t al, cl;
		char p[64];
		snprintf(p, sizeof(p), "model.merges[%zu]", i);
		if (json_is_string(it)) {
			a = json_string_value(it);
			const char *sp = strchr(a, ' ');
			if (!sp || strchr(sp + 1, ' ') || json_string_length(it) != strlen(a)) {
				rc = bad(err, p,
					 "\"%.100s\" must be two tokens separated by one space", a);
				break;
			}
			al = (size_t)(sp - a);
			c = sp + 1;
			cl = strlen(c);
		} else if (json_is_array(it) && json_array_size(it) == 2 &&
			   json_is_string(json_array_get(it, 0)) &&
			   json_is_string(json_array_get(it, 1))) {
			a = json_string_value(json_array_get(it, 0));
			al = json_string_length(json_array_get(it, 0));
			c = json_string_value(json_array_get(it, 1));
			cl = json_string_length(json_array_get(it, 1));
		} else {
			rc = bad(err, p, "must be \"a b\" or [\"a\", \"b\"]");
			break;
		}
		int32_t ia = tok_strmap_get(b->vocab, a, al), ic = tok_strmap_get(b->vocab, c, cl);
		/* the merged token drops the right part's continuing_subword_prefix
		 * (the reference cuts its length off the right part, whatever it holds) */
		size_t cut = b->prefix_len;
		if (cut > cl || (cut < cl && ((unsigned char)c[cut] & 0xC0) == 0x80)) {
			rc = bad(err, p, "\"%.100s\" is shorter than continuing_subword_prefix", c);
			break;
		}
		ft_buf_reset(&cat);
		if (ft_buf_add(&cat, a, al) || ft_buf_add(&cat, c + cut, cl - cut)) {
			rc = oom(err);
			break;
		}
		int32_t in = tok_strmap_get(b->vocab, ft_buf_str(&cat), cat.len);
		if (ia < 0 || ic < 0 || in < 0) {
			rc = bad(err, p, "token \"%.100s\" is not in the vocabulary",
				 ia < 0	  ? a
				 : ic < 0 ? c
					  : ft_buf_str(&cat));
			break;
		}
		if (i > UINT32_MAX - 1 || tok_bpe_add_merge(b, ia, ic, in, (uint32_t)i))
			rc = oom(err);
	}
	ft_buf_release(&cat);
	return rc;
}

/* ---- loading: added tokens ---- */

static int by_bucket_then_length(const void *x, const void *y, void *ctx)
{
	const struct ft_tokenizer *t = ctx;
	const struct added *a = &t->added[*(const uint32_t *)x];
	const struct added *b = &t->added[*(const uint32_t *)y];
	int ka = a->normalized * 256 + (unsigned char)a->pat[0];
	int kb = b->normalized * 256 + (unsigned char)b->pat[0];
	if (ka != kb)
		return ka < kb ? -1 : 1;
	if (a->plen != b->plen)
		return a->plen > b->plen ? -1 : 1;
	return *(const uint32_t *)x < *(const uint32_t *)y ? -1 : 1;
}

/* Bucket the added tokens by first byte so matching looks at few of them. */
static enum ft_rc index_added(struct ft_tokenizer *t, struct ft_err *err)
{
	size_t m = 0;
	t->by_first = malloc((t->nadded + 1) * sizeof(*t->by_first));
	if (!t->by_first)
		return oom(err);
	for (size_t i = 0; i < t->nadded; i++)
		if (t->added[i].plen)
			t->by_first[m++] = (uint32_t)i;
	qsort_r(t->by_first, m, sizeof(*t->by_first), by_bucket_then_length, t);
	size_t k = 0;
	for (int nz = 0; nz < 2; nz++)
		for (int b = 0; b < 256; b++) {
			t->bucket_start[nz][b] = (uint32_t)k;
			while (k < m && t->added[t->by_first[k]].normalized == nz &&
			       (unsigned char)t->added[t->by_first[k]].pat[0] == b)
				k++;
		}
	t->bucket_start[1][256] = (uint32_t)k;
	t->bucket_start[0][256] = t->bucket_start[1][0];
	return FT_OK;
}

static enum ft_rc parse_added(struct ft_tokenizer *t, const json_t *a, struct ft_err *err)
{
	if (!a || json_is_null(a))
		return FT_OK;
	if (!json_is_array(a))
		return bad(err, "", "\"added_tokens\" must be a list (got %s)",
			   ft_json_type_name(a));
	t->added = calloc(json_array_size(a) + 1, sizeof(*t->added));
	if (!t->added)
		return oom(err);
	struct ft_buf nb = FT_BUF_INIT(TOK_TEXT_MAX), tmp = FT_BUF_INIT(TOK_TEXT_MAX);
	enum ft_rc rc = FT_OK;
	for (size_t i = 0; i < json_array_size(a) && !rc; i++) {
		json_t *o = json_array_get(a, i);
		struct added *ad = &t->added[t->nadded];
		const char *c = NULL;
		size_t cl = 0;
		long long id = 0;
		char p[64];
		snprintf(p, sizeof(p), "added_tokens[%zu]", i);
		if (!json_is_object(o)) {
			rc = bad(err, p, "must be an object");
			break;
		}
		if ((rc = get_str(o, "content", true, &c, &cl, p, err)))
			break;
		if (cl == 0 || strlen(c) != cl) {
			rc = bad(err, p, "\"content\" must be a non-empty string without NUL");
			break;
		}
		if (ft_json_get_int(o, "id", FT_JSON_REQUIRED, 0, INT32_MAX - 1, &id, NULL)) {
			rc = bad(err, p, "\"id\" must be an integer >= 0");
			break;
		}
		if ((rc = get_bool(o, "special", &ad->special, p, err)) ||
		    (rc = get_bool(o, "lstrip", &ad->lstrip, p, err)) ||
		    (rc = get_bool(o, "rstrip", &ad->rstrip, p, err)) ||
		    (rc = get_bool(o, "single_word", &ad->single_word, p, err)) ||
		    (rc = get_bool(o, "normalized", &ad->normalized, p, err)))
			break;
		ad->id = (int32_t)id;
		ad->content = dupn(c, cl);
		ad->len = cl;
		ft_buf_reset(&nb);
		if (!ad->content) {
			rc = oom(err);
			break;
		}
		t->nadded++;
		if (ad->normalized) {
			if ((rc = tok_normalize(t, c, cl, &nb, &tmp))) {
				rc = oom(err);
				break;
			}
			ad->pat = dupn(ft_buf_str(&nb), nb.len);
			ad->plen = nb.len;
		} else {
			ad->pat = dupn(c, cl);
			ad->plen = cl;
		}
		if (!ad->pat) {
			rc = oom(err);
			break;
		}
	}
	if (!rc)
		rc = index_added(t, err);
	ft_buf_release(&nb);
	ft_buf_release(&tmp);
	return rc;
}

/* id -> token names: the model's, then the added tokens over them. */
static enum ft_rc build_names(struct ft_tokenizer *t, json_t *vocab, struct ft_err *err)
{
	int64_t max = t->bpe.max_id;
	for (size_t i = 0; i < t->nadded; i++)
		if (t->added[i].id > max)
			max = t->added[i].id;
	size_t total = t->bpe.vocab_n + t->nadded;
	if ((uint64_t)(max + 1) > (uint64_t)total * 4 + 4096)
		return bad(err, "", "token id %" PRId64 " is far beyond the %zu tokens defined",
			   max, total);
	t->nids = (size_t)(max + 1);
	t->names = calloc(t->nids + 1, sizeof(*t->names));
	t->name_len = calloc(t->nids + 1, sizeof(*t->name_len));
	t->special = calloc(t->nids + 1, sizeof(*t->special));
	if (!t->names || !t->name_len || !t->special)
		return oom(err);
	const char *k;
	json_t *v;
	json_object_foreach(vocab, k, v)
	{
		size_t id = (size_t)json_integer_value(v), kl = strlen(k);
		if (t->names[id])
			continue;
		if (!(t->names[id] = dupn(k, kl)))
			return oom(err);
		t->name_len[id] = (uint32_t)kl;
	}
	for (size_t i = 0; i < t->nadded; i++) {
		struct added *ad = &t->added[i];
		/* A "normalized" added token is named by its normalized content (what
		 * the reference's id_to_token and decode give). */
		char *d = dupn(ad->pat, ad->plen);
		if (!d)
			return oom(err);
		free(t->names[ad->id]);
		t->names[ad->id] = d;
		t->name_len[ad->id] = (uint32_t)ad->plen;
		t->special[ad->id] = ad->special;
	}
	return FT_OK;
}

void ft_tokenizer_free(struct ft_tokenizer *t)
{
	if (!t)
		return;
	tok_bpe_release(&t->bpe);
	for (size_t i = 0; t->names && i < t->nids; i++)
		free(t->names[i]);
	free(t->names);
	free(t->name_len);
	free(t->special);
	for (size_t i = 0; i < t->nadded; i++) {
		free(t->added[i].content);
		free(t->added[i].pat);
	}
	free(t->added);
	free(t->by_first);
	for (size_t i = 0; i < t->nnorms; i++) {
		free(t->norms[i].a);
		free(t->norms[i].b);
	}
	free(t->norms);
	for (size_t i = 0; i < t->npretoks; i++)
		free(t->pretoks[i].pat.lit);
	free(t->pretoks);
	for (size_t i = 0; i < t->ndecs; i++) {
		free(t->decs[i].a);
		free(t->decs[i].b);
	}
	free(t->decs);
	free(t->tmpl_pre);
	free(t->tmpl_post);
	free(t->chat_template);
	free(t);
}

enum ft_rc tok_from_json(const json_t *root, struct ft_tokenizer **out, struct ft_err *err)
{
	*out = NULL;
	tok_bytemap_init();
	struct ft_tokenizer *t = calloc(1, sizeof(*t));
	enum ft_rc rc = FT_OK;
	if (!t)
		return oom(err);
	t->bos = t->eos = t->pad = -1;
	if (!json_is_object(root)) {
		rc = bad(err, "", "must be a JSON object");
		goto out_tok;
	}
	json_t *x;
	if ((x = json_object_get(root, "normalizer")) && !json_is_null(x) &&
	    (rc = add_component(t, &normalizers, x, "normalizer", err, 0)))
		goto out_tok;
	if ((x = json_object_get(root, "pre_tokenizer")) && !json_is_null(x) &&
	    (rc = add_component(t, &pre_tokenizers, x, "pre_tokenizer", err, 0)))
		goto out_tok;
	if ((x = json_object_get(root, "decoder")) && !json_is_null(x)) {
		t->has_decoder = true;
		if ((rc = add_component(t, &decoders, x, "decoder", err, 0)))
			goto out_tok;
	}
	if ((x = json_object_get(root, "post_processor")) && !json_is_null(x) &&
	    (rc = parse_post(t, x, "post_processor", err, 0)))
		goto out_tok;
	if ((rc = parse_model(t, json_object_get(root, "model"), err)))
		goto out_tok;
	if ((rc = parse_added(t, json_object_get(root, "added_tokens"), err)))
		goto out_tok;
	if ((rc = build_names(t, json_object_get(json_object_get(root, "model"), "vocab"), err)))
		goto out_tok;
	for (size_t i = 0; i < t->npre + t->npost; i++) {
		int32_t id = i < t->npre ? t->tmpl_pre[i] : t->tmpl_post[i - t->npre];
		if ((size_t)id >= t->nids || !t->names[id]) {
			rc = bad(err, "post_processor", "special token id %d is not defined", id);
			goto out_tok;
		}
	}
	if (t->npre) {
		t->bos = t->tmpl_pre[0];
		t->adds_bos = true;
	}
	*out = t;
	return FT_OK;
out_tok:
	ft_tokenizer_free(t);
	return rc;
}

enum ft_rc ft_tokenizer_parse(const char *json_text, size_t len, struct ft_tokenizer **out,
			      struct ft_err *err)
{
	*out = NULL;
	if (len > TOK_FILE_MAX)
		return ft_failf(err, FT_ELIMIT, "invalid_tokenizer",
				"tokenizer.json: larger than %zu MiB", TOK_FILE_MAX >> 20);
	json_t *root = ft_json_parse(json_text, len, err);
	if (!root) {
		ft_err_prefixf(err, "tokenizer.json: ");
		return err ? err->rc : FT_EFORMAT;
	}
	enum ft_rc rc = tok_from_json(root, out, err);
	json_decref(root);
	return rc;
}

/* ---- tokenizer_config.json ---- */

static enum ft_rc read_file(const char *path, char **out, size_t *len, bool *missing,
			    struct ft_err *err)
{
	FILE *f = fopen(path, "rb");
	*out = NULL;
	if (!f) {
		if (missing && errno == ENOENT) {
			*missing = true;
			return FT_OK;
		}
		return ft_failf(err, errno == ENOENT ? FT_ENOTFOUND : FT_EIO, NULL,
				"cannot open \"%s\": %s", path, strerror(errno));
	}
	struct stat st;
	if (fstat(fileno(f), &st) != 0 || st.st_size < 0 || (size_t)st.st_size > TOK_FILE_MAX) {
		fclose(f);
		return ft_failf(err, FT_ELIMIT, NULL, "\"%s\" is not a regular file under %zu MiB",
				path, TOK_FILE_MAX >> 20);
	}
	char *buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		fclose(f);
		return oom(err);
	}
	size_t n = fread(buf, 1, (size_t)st.st_size, f);
	fclose(f);
	buf[n] = 0;
	*out = buf;
	*len = n;
	return FT_OK;
}

/* "bos_token": "<s>" or {"content": "<s>", ...} */
static int32_t config_token(const struct ft_tokenizer *t, const json_t *cfg, const char *key)
{
	json_t *v = json_object_get(cfg, key);
	if (json_is_object(v))
		v = json_object_get(v, "content");
	if (!json_is_string(v))
		return -1;
	return ft_tokenizer_token_to_id(t, json_string_value(v));
}

enum ft_rc tok_apply_config(struct ft_tokenizer *t, const json_t *cfg, struct ft_err *err)
{
	int32_t id;
	if (!json_is_object(cfg))
		return ft_failf(err, FT_EFORMAT, "invalid_tokenizer",
				"tokenizer_config.json: must be a JSON object");
	if ((id = config_token(t, cfg, "bos_token")) >= 0)
		t->bos = id;
	t->eos = config_token(t, cfg, "eos_token");
	t->pad = config_token(t, cfg, "pad_token");
	/* add_bos_token / add_eos_token are not read: with a tokenizer.json,
	 * transformers 5 encodes with its post-processor alone (checked). */
	json_t *ct = json_object_get(cfg, "chat_template");
	const char *tmpl = NULL;
	if (json_is_string(ct)) {
		tmpl = json_string_value(ct);
	} else if (json_is_array(ct)) {
		size_t i;
		json_t *it;
		json_array_foreach(ct, i, it)
		{
			json_t *name = json_object_get(it, "name"),
			       *tt = json_object_get(it, "template");
			if (json_is_string(tt) &&
			    (!tmpl || (json_is_string(name) &&
				       strcmp(json_string_value(name), "default") == 0)))
				tmpl = json_string_value(tt);
		}
	}
	if (tmpl && !(t->chat_template = ft_xstrdup(tmpl)))
		return oom(err);
	return FT_OK;
}

static enum ft_rc apply_config(struct ft_tokenizer *t, const char *text, size_t len,
			       struct ft_err *err)
{
	json_t *cfg = ft_json_parse_config(text, len, err);
	if (!cfg) {
		ft_err_prefixf(err, "tokenizer_config.json: ");
		return err ? err->rc : FT_EFORMAT;
	}
	enum ft_rc rc = tok_apply_config(t, cfg, err);
	json_decref(cfg);
	return rc;
}

/* transformers 5 saves the chat template as chat_template.jinja beside
 * tokenizer_config.json, and reads it in preference to the config's. */
static enum ft_rc apply_jinja(struct ft_tokenizer *t, const char *model_dir, struct ft_err *err)
{
	char path[4096];
	char *text = NULL;
	size_t len = 0;
	bool missing = false;
	snprintf(path, sizeof(path), "%s/chat_template.jinja", model_dir);
	enum ft_rc rc = read_file(path, &text, &len, &missing, err);
	if (rc || missing)
		return rc;
	if (strlen(text) != len) {
		free(text);
		return ft_failf(err, FT_EFORMAT, "invalid_tokenizer",
				"chat_template.jinja holds a NUL byte");
	}
	free(t->chat_template);
	t->chat_template = text;
	return FT_OK;
}

enum ft_rc ft_tokenizer_load(const char *model_dir, struct ft_tokenizer **out, struct ft_err *err)
{
	char path[4096];
	char *text = NULL;
	size_t len = 0;
	bool missing = false;
	enum ft_rc rc;
	*out = NULL;
	if (ft_gguf_path_is_file(model_dir)) {
		struct ft_gguf *g;
		if ((rc = ft_gguf_open(model_dir, &g, err)))
			return rc;
		rc = ft_gguf_tokenizer(g, out, err);
		ft_gguf_close(g);
		return rc;
	}
	snprintf(path, sizeof(path), "%s/tokenizer.json", model_dir);
	if ((rc = read_file(path, &text, &len, NULL, err)))
		return rc;
	struct ft_tokenizer *t;
	rc = ft_tokenizer_parse(text, len, &t, err);
	free(text);
	if (rc)
		return rc;
	snprintf(path, sizeof(path), "%s/tokenizer_config.json", model_dir);
	if ((rc = read_file(path, &text, &len, &missing, err)))
		goto fail;
	if (!missing) {
		rc = apply_config(t, text, len, err);
		free(text);
		if (rc)
			goto fail;
	}
	if ((rc = apply_jinja(t, model_dir, err)))
		goto fail;
	*out = t;
	return FT_OK;
fail:
	ft_tokenizer_free(t);
	return rc;
}

/* ---- lookups ---- */

size_t ft_tokenizer_vocab_size(const struct ft_tokenizer *t)
{
	return t->nids;
}

int32_t ft_tokenizer_token_to_id(const struct ft_tokenizer *t, const char *token)
{
	size_t n = strlen(token);
	for (size_t i = 0; i < t->nadded; i++)
		if (t->added[i].len == n && memcmp(t->added[i].content, token, n) == 0)
			return t->added[i].id;
	return tok_strmap_get(t->bpe.vocab, token, n);
}

const char *ft_tokenizer_id_to_token(const struct ft_tokenizer *t, int32_t id)
{
	return id >= 0 && (size_t)id < t->nids ? t->names[id] : NULL;
}

bool ft_tokenizer_is_special(const struct ft_tokenizer *t, int32_t id)
{
	return id >= 0 && (size_t)id < t->nids && t->special[id];
}

int32_t ft_tokenizer_bos_id(const struct ft_tokenizer *t)
{
	return t->bos;
}
int32_t ft_tokenizer_eos_id(const struct ft_tokenizer *t)
{
	return t->eos;
}
int32_t ft_tokenizer_pad_id(const struct ft_tokenizer *t)
{
	return t->pad;
}
bool ft_tokenizer_adds_bos(const struct ft_tokenizer *t)
{
	return t->adds_bos;
}
const char *ft_tokenizer_chat_template(const struct ft_tokenizer *t)
{
	return t->chat_template;
}
