/*
 * json.c - typed getters over Jansson that explain what was wrong.
 */
#include "ft/json.h"

const char *ft_json_type_name(const json_t *v)
{
	if (!v)
		return "nothing";
	switch (json_typeof(v)) {
	case JSON_OBJECT: return "object";
	case JSON_ARRAY: return "list";
	case JSON_STRING: return "string";
	case JSON_INTEGER: return "integer";
	case JSON_REAL: return "number";
	case JSON_TRUE:
	case JSON_FALSE: return "boolean";
	case JSON_NULL: return "null";
	}
	return "unknown";
}

/* Look up key; returns NULL (and maybe an error) when absent or null-allowed. */
static json_t *lookup(const json_t *obj, const char *key, unsigned flags, enum ft_rc *rc,
		      struct ft_err *err)
{
	json_t *v = json_object_get(obj, key);
	*rc = FT_OK;
	if (v && json_is_null(v) && (flags & FT_JSON_NULL_OK))
		v = NULL;
	if (!v && (flags & FT_JSON_REQUIRED)) {
		*rc = ft_failf(err, FT_EINVAL, "missing_field", "\"%s\" is required", key);
		ft_err_param(err, key);
	}
	return v;
}

static enum ft_rc wrong_type(const char *key, const char *want, const json_t *got,
			     struct ft_err *err)
{
	ft_failf(err, FT_EINVAL, "invalid_type", "\"%s\" must be %s (got %s)", key, want,
		 ft_json_type_name(got));
	ft_err_param(err, key);
	return FT_EINVAL;
}

enum ft_rc ft_json_get_str(const json_t *obj, const char *key, unsigned flags, const char **out,
			   struct ft_err *err)
{
	enum ft_rc rc;
	json_t *v = lookup(obj, key, flags, &rc, err);
	if (!v)
		return rc;
	if (!json_is_string(v))
		return wrong_type(key, "a string", v, err);
	if ((flags & FT_JSON_NONEMPTY) && json_string_length(v) == 0) {
		ft_failf(err, FT_EINVAL, "invalid_value", "\"%s\" must not be empty", key);
		ft_err_param(err, key);
		return FT_EINVAL;
	}
	if (strlen(json_string_value(v)) != json_string_length(v)) {
		ft_failf(err, FT_EINVAL, "invalid_value", "\"%s\" must not contain NUL characters",
			 key);
		ft_err_param(err, key);
		return FT_EINVAL;
	}
	*out = json_string_value(v);
	return FT_OK;
}

enum ft_rc ft_json_get_int(const json_t *obj, const char *key, unsigned flags, long long min,
			   long long max, long long *out, struct ft_err *err)
{
	enum ft_rc rc;
	json_t *v = lookup(obj, key, flags, &rc, err);
	if (!v)
		return rc;
	if (!json_is_integer(v))
		return wrong_type(key, "an integer", v, err);
	long long x = json_integer_value(v);
	if (x < min || x > max) {
		ft_failf(err, FT_EINVAL, "out_of_range",
			 "\"%s\" must be between %lld and %lld (got %lld)", key, min, max, x);
		ft_err_param(err, key);
		return FT_EINVAL;
	}
	*out = x;
	return FT_OK;
}

enum ft_rc ft_json_get_num(const json_t *obj, const char *key, unsigned flags, double min,
			   double max, double *out, struct ft_err *err)
{
	enum ft_rc rc;
	json_t *v = lookup(obj, key, flags, &rc, err);
	if (!v)
		return rc;
	if (!json_is_number(v))
		return wrong_type(key, "a number", v, err);
	double x = json_number_value(v);
	if (!(x >= min && x <= max)) {
		ft_failf(err, FT_EINVAL, "out_of_range",
			 "\"%s\" must be between %g and %g (got %g)", key, min, max, x);
		ft_err_param(err, key);
		return FT_EINVAL;
	}
	*out = x;
	return FT_OK;
}

enum ft_rc ft_json_get_bool(const json_t *obj, const char *key, unsigned flags, bool *out,
			    struct ft_err *err)
{
	enum ft_rc rc;
	json_t *v = lookup(obj, key, flags, &rc, err);
	if (!v)
		return rc;
	if (!json_is_boolean(v))
		return wrong_type(key, "a boolean", v, err);
	*out = json_is_true(v);
	return FT_OK;
}

enum ft_rc ft_json_get_obj(const json_t *obj, const char *key, unsigned flags, json_t **out,
			   struct ft_err *err)
{
	enum ft_rc rc;
	json_t *v = lookup(obj, key, flags, &rc, err);
	if (!v)
		return rc;
	if (!json_is_object(v))
		return wrong_type(key, "an object", v, err);
	*out = v;
	return FT_OK;
}

enum ft_rc ft_json_get_arr(const json_t *obj, const char *key, unsigned flags, json_t **out,
			   struct ft_err *err)
{
	enum ft_rc rc;
	json_t *v = lookup(obj, key, flags, &rc, err);
	if (!v)
		return rc;
	if (!json_is_array(v))
		return wrong_type(key, "a list", v, err);
	*out = v;
	return FT_OK;
}

enum ft_rc ft_json_check_keys(const json_t *obj, const char *const *allowed, struct ft_err *err)
{
	const char *key;
	json_t *v;
	/* Jansson's iteration macro wants a mutable object; we only read. */
	json_t *o = (json_t *)(uintptr_t)obj;
	json_object_foreach(o, key, v)
	{
		bool ok = false;
		for (const char *const *a = allowed; *a; a++)
			if (strcmp(*a, key) == 0) {
				ok = true;
				break;
			}
		if (!ok) {
			ft_failf(err, FT_EINVAL, "unknown_field", "unknown field \"%s\"", key);
			ft_err_param(err, key);
			return FT_EINVAL;
		}
	}
	return FT_OK;
}

json_t *ft_json_parse(const char *text, size_t len, struct ft_err *err)
{
	json_error_t je;
	json_t *v = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &je);
	if (!v) {
		ft_failf(err, FT_EINVAL, "invalid_json", "invalid JSON at line %d, column %d: %s",
			 je.line, je.column, je.text);
		ft_err_line(err, je.line > 0 ? je.line : 0);
	}
	return v;
}

/* An integer literal at t[i..j) (optional '-', digits, no fraction or
 * exponent) that does not fit in a json_int_t. */
static bool int_too_big(const char *t, size_t i, size_t j)
{
	bool neg = t[i] == '-';
	size_t k = i + neg;
	while (k < j && t[k] == '0')
		k++;
	size_t digits = j - k;
	static const char max_pos[] = "9223372036854775807", max_neg[] = "9223372036854775808";
	const char *lim = neg ? max_neg : max_pos;
	if (digits != sizeof(max_pos) - 1)
		return digits > sizeof(max_pos) - 1;
	return memcmp(t + k, lim, digits) > 0;
}

json_t *ft_json_parse_config(const char *text, size_t len, struct ft_err *err)
{
	json_error_t je;
	json_t *v = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &je);
	if (v || !strstr(je.text, "too big integer"))
		return v ? v : ft_json_parse(text, len, err);
	/* Copy the text with ".0" after each integer literal too big for
	 * json_int_t, outside strings; Jansson then reads those as reals. */
	struct ft_buf b = FT_BUF_INIT(2 * len + 64);
	bool in_str = false, ok = true;
	for (size_t i = 0; i < len && ok;) {
		char c = text[i];
		if (in_str) {
			size_t n = c == '\\' && i + 1 < len ? 2 : 1;
			in_str = c != '"';
			ok = ft_buf_add(&b, text + i, n) == FT_OK;
			i += n;
			continue;
		}
		if (c == '"' || !(c == '-' || (c >= '0' && c <= '9'))) {
			in_str = c == '"';
			ok = ft_buf_addch(&b, c) == FT_OK;
			i++;
			continue;
		}
		/* the whole number token: -?digits(.digits)?([eE][+-]?digits)? */
		size_t j = i + 1, int_end;
		while (j < len && text[j] >= '0' && text[j] <= '9')
			j++;
		int_end = j;
		if (j < len && text[j] == '.')
			for (j++; j < len && text[j] >= '0' && text[j] <= '9'; j++)
				;
		if (j < len && (text[j] == 'e' || text[j] == 'E')) {
			j++;
			if (j < len && (text[j] == '+' || text[j] == '-'))
				j++;
			while (j < len && text[j] >= '0' && text[j] <= '9')
				j++;
		}
		bool plain = j == int_end;
		ok = ft_buf_add(&b, text + i, j - i) == FT_OK &&
		     (!plain || !int_too_big(text, i, j) || ft_buf_addstr(&b, ".0") == FT_OK);
		i = j;
	}
	v = ok ? ft_json_parse(ft_buf_str(&b), b.len, err) : ft_json_parse(text, len, err);
	ft_buf_release(&b);
	return v;
}

static int dump_cb(const char *buffer, size_t size, void *data)
{
	return ft_buf_add(data, buffer, size) ? -1 : 0;
}

enum ft_rc ft_json_dump_buf(const json_t *v, struct ft_buf *b)
{
	if (json_dump_callback(v, dump_cb, b, JSON_COMPACT | JSON_ENCODE_ANY) != 0)
		return FT_ELIMIT;
	return FT_OK;
}

void ft_json_err_nest(struct ft_err *err, const char *prefix)
{
	char p[sizeof(err->param)];
	if (!err || !prefix || !err->param[0])
		return;
	snprintf(p, sizeof(p), "%s.%s", prefix, err->param);
	ft_strlcpy(err->param, p, sizeof(err->param));
}

size_t ft_utf8_char_len(const unsigned char *p, size_t n)
{
	unsigned c = p[0];
	size_t len;
	unsigned cp;
	if (c < 0x80)
		return c ? 1 : 0;
	if (c >= 0xc2 && c <= 0xdf)
		len = 2, cp = c & 0x1f;
	else if (c >= 0xe0 && c <= 0xef)
		len = 3, cp = c & 0x0f;
	else if (c >= 0xf0 && c <= 0xf4)
		len = 4, cp = c & 0x07;
	else
		return 0;
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[i] & 0x3f);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

json_t *ft_json_string_clean(const char *s, size_t max)
{
	static const char repl[] = "\xef\xbf\xbd";
	const unsigned char *p = (const unsigned char *)s;
	size_t n = strlen(s);
	struct ft_buf b;
	ft_buf_init(&b, max);
	for (size_t i = 0; i < n;) {
		size_t l = ft_utf8_char_len(p + i, n - i);
		const void *piece = l ? (const void *)(p + i) : (const void *)repl;
		size_t pl = l ? l : 3;
		if (b.len + pl > max || ft_buf_add(&b, piece, pl))
			break;
		i += l ? l : 1;
	}
	json_t *v = json_stringn(b.ptr ? b.ptr : "", b.len);
	ft_buf_release(&b);
	return v ? v : json_string(""); /* (out of memory) */
}
