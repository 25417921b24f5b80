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
