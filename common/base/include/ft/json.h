/*
 * ft/json.h - helpers over Jansson for reading untrusted JSON objects with
 * errors that name the field and the type found:
 *     "n_epochs" must be an integer (got string)
 *
 * Getters take the object, the key and a flags word; with FT_JSON_REQUIRED a
 * missing key is an error, otherwise the out value is left untouched. JSON
 * null counts as missing unless FT_JSON_NULL_OK is given (then out is left
 * untouched too). Returned strings and objects are borrowed from the
 * object (Jansson's rule): valid while it lives.
 */
#ifndef FT_JSON_H
#define FT_JSON_H

#include <jansson.h>

#include "ft/buf.h"
#include "ft/err.h"

enum ft_json_flags {
	FT_JSON_REQUIRED = 1 << 0,
	FT_JSON_NULL_OK = 1 << 1, /* explicit null is accepted as "not given" */
	FT_JSON_NONEMPTY = 1 << 2, /* strings: "" is an error */
};

/* "object", "list", "string", "integer", "number", "boolean", "null". */
const char *ft_json_type_name(const json_t *v);

enum ft_rc ft_json_get_str(const json_t *obj, const char *key, unsigned flags, const char **out,
			   struct ft_err *err);
enum ft_rc ft_json_get_int(const json_t *obj, const char *key, unsigned flags, long long min,
			   long long max, long long *out, struct ft_err *err);
/* Accepts integers and reals. */
enum ft_rc ft_json_get_num(const json_t *obj, const char *key, unsigned flags, double min,
			   double max, double *out, struct ft_err *err);
enum ft_rc ft_json_get_bool(const json_t *obj, const char *key, unsigned flags, bool *out,
			    struct ft_err *err);
enum ft_rc ft_json_get_obj(const json_t *obj, const char *key, unsigned flags, json_t **out,
			   struct ft_err *err);
enum ft_rc ft_json_get_arr(const json_t *obj, const char *key, unsigned flags, json_t **out,
			   struct ft_err *err);

/* Reject keys not in `allowed` (NULL-terminated): "unknown field \"foo\"". */
enum ft_rc ft_json_check_keys(const json_t *obj, const char *const *allowed, struct ft_err *err);

/* Parse text (len bytes, need not be NUL-terminated) into a new value.
 * Errors carry Jansson's line and column. Duplicate keys are rejected. */
json_t *ft_json_parse(const char *text, size_t len, struct ft_err *err);
/* The same for a configuration file written by Python (a model's
 * config.json, tokenizer_config.json): an integer literal beyond 64 bits,
 * which Python writes for "no limit" (transformers' model_max_length
 * 1000000000000000019884624838656), is read as a real instead of failing
 * with "too big integer"; every other integer stays an exact integer. */
json_t *ft_json_parse_config(const char *text, size_t len, struct ft_err *err);

/* Append the compact serialisation of v to b. */
enum ft_rc ft_json_dump_buf(const json_t *v, struct ft_buf *b) FT_WARN_UNUSED;

/* A JSON string of s made valid UTF-8 without NUL (each byte that starts
 * no valid character becomes U+FFFD), cut at a character boundary to at
 * most max bytes; never NULL (jansson's json_string refuses invalid UTF-8,
 * and a message cut with "%.64s" in the middle of a character is that). */
json_t *ft_json_string_clean(const char *s, size_t max);
/* Length of the valid UTF-8 character at p (at most n bytes), 0 if none
 * (overlong forms, surrogates and NUL are not valid). */
size_t ft_utf8_char_len(const unsigned char *p, size_t n);

/* Error-path prefix for nested objects: sets err->param to
 * "<prefix>.<param>" when err->param is set and prefix non-NULL. */
void ft_json_err_nest(struct ft_err *err, const char *prefix);

#endif
