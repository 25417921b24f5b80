/*
 * dataset.c - reading JSONL training data: the bounded line reader, format
 * detection and the structural checks of one row (ft/dataset.h has the
 * formats and the error codes).
 *
 * Detection: the first key of this table present in the row names its
 * format ("input" counts only when it is an object: OpenAI's DPO rows):
 *
 *   key                    format
 *   messages               messages
 *   conversations          sharegpt
 *   preferred_output       openai_dpo
 *   non_preferred_output   openai_dpo
 *   chosen, rejected       preference
 *   instruction, output    instruction
 *   completion, prompt     prompt_completion
 *   text                   text
 *   input (object)         openai_dpo
 *
 * Every check below fails with a message that starts "line N: " and names
 * the field as a path ("messages[2].role"), so a user can find it.
 */
#include <jansson.h>

#include "ft/dataset.h"

#define CHUNK ((size_t)1 << 20)

/* Each format: its name and the method its rows train with. */
static const struct {
	const char *name;
	enum ft_data_method method;
} formats[FT_FMT_COUNT] = {
	[FT_FMT_UNKNOWN] = { "unknown", FT_METHOD_AUTO },
	[FT_FMT_TEXT] = { "text", FT_METHOD_SFT },
	[FT_FMT_PROMPT_COMPLETION] = { "prompt_completion", FT_METHOD_SFT },
	[FT_FMT_INSTRUCTION] = { "instruction", FT_METHOD_SFT },
	[FT_FMT_MESSAGES] = { "messages", FT_METHOD_SFT },
	[FT_FMT_SHAREGPT] = { "sharegpt", FT_METHOD_SFT },
	[FT_FMT_PREFERENCE] = { "preference", FT_METHOD_DPO },
	[FT_FMT_OPENAI_DPO] = { "openai_dpo", FT_METHOD_DPO },
};

const char *ft_data_format_name(enum ft_data_format f)
{
	return (unsigned)f < FT_FMT_COUNT ? formats[f].name : "unknown";
}

bool ft_data_format_is_preference(enum ft_data_format f)
{
	return ft_data_format_method(f) == FT_METHOD_DPO;
}

enum ft_data_method ft_data_format_method(enum ft_data_format f)
{
	return (unsigned)f < FT_FMT_COUNT ? formats[f].method : FT_METHOD_AUTO;
}

const char *ft_data_method_name(enum ft_data_method m)
{
	static const char *const names[] = { "auto", "sft", "dpo" };
	return (unsigned)m < FT_ARRAY_LEN(names) ? names[m] : "unknown";
}

enum ft_rc ft_data_method_check(enum ft_data_format f, enum ft_data_method m, long lineno,
				struct ft_err *err)
{
	enum ft_data_method fm = ft_data_format_method(f);
	if (m == FT_METHOD_AUTO || fm == FT_METHOD_AUTO || fm == m)
		return FT_OK;
	ft_failf(err, FT_EINVAL, "wrong_method",
		 "line %ld: rows in the \"%s\" format are for %s training, but the method is %s",
		 lineno, ft_data_format_name(f), ft_data_method_name(fm), ft_data_method_name(m));
	ft_err_line(err, lineno);
	return FT_EINVAL;
}

/* ---- the line reader ---- */

enum ft_rc ft_jsonl_reader_from_file(struct ft_jsonl_reader *r, FILE *f, struct ft_err *err)
{
	memset(r, 0, sizeof(*r));
	r->chunk = malloc(CHUNK);
	if (!r->chunk)
		return ft_failf(err, FT_ENOMEM, "out_of_memory",
				"reading a dataset: out of memory");
	r->f = f;
	ft_buf_init(&r->line, FT_DATA_MAX_LINE);
	return FT_OK;
}

enum ft_rc ft_jsonl_reader_open(struct ft_jsonl_reader *r, const char *path, struct ft_err *err)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		memset(r, 0, sizeof(*r));
		return ft_failf(err, FT_EIO, "io_error", "cannot open dataset \"%s\": %s", path,
				strerror(errno));
	}
	if (ft_jsonl_reader_from_file(r, f, err)) {
		fclose(f);
		return FT_ENOMEM;
	}
	r->own_file = true;
	return FT_OK;
}

void ft_jsonl_reader_close(struct ft_jsonl_reader *r)
{
	if (r->own_file && r->f)
		fclose(r->f);
	free(r->chunk);
	ft_buf_release(&r->line);
	memset(r, 0, sizeof(*r));
}

enum ft_rc ft_jsonl_reader_rewind(struct ft_jsonl_reader *r, struct ft_err *err)
{
	if (fseek(r->f, 0, SEEK_SET) != 0)
		return ft_failf(err, FT_EIO, "io_error", "cannot rewind the dataset: %s",
				strerror(errno));
	r->chunk_pos = r->chunk_len = 0;
	r->lineno = 0;
	r->at_eof = false;
	ft_buf_reset(&r->line);
	return FT_OK;
}

enum ft_rc ft_jsonl_reader_next(struct ft_jsonl_reader *r, bool *eof, struct ft_err *err)
{
	bool started = false, too_long = false;
	size_t seen = 0;

	*eof = false;
	ft_buf_reset(&r->line);
	for (;;) {
		if (r->chunk_pos == r->chunk_len) {
			if (r->at_eof)
				break;
			r->chunk_len = fread(r->chunk, 1, CHUNK, r->f);
			r->chunk_pos = 0;
			if (r->chunk_len == 0) {
				if (ferror(r->f))
					return ft_failf(err, FT_EIO, "io_error",
							"reading the dataset after line %ld: %s",
							r->lineno, strerror(errno));
				r->at_eof = true;
				break;
			}
		}
		started = true;
		const char *p = r->chunk + r->chunk_pos;
		size_t avail = r->chunk_len - r->chunk_pos;
		const char *nl = memchr(p, '\n', avail);
		size_t take = nl ? (size_t)(nl - p) : avail;
		seen += take;
		if (!too_long && seen > FT_DATA_MAX_LINE)
			too_long = true;
		if (!too_long && ft_buf_add(&r->line, p, take))
			too_long = true;
		r->chunk_pos += take + (nl ? 1 : 0);
		if (nl)
			goto got_line;
	}
	if (!started || (seen == 0 && !too_long)) {
		*eof = true;
		return FT_OK;
	}
got_line:
	r->lineno++;
	if (too_long) {
		ft_buf_reset(&r->line);
		ft_failf(err, FT_ELIMIT, "line_too_long",
			 "line %ld: %zu bytes, longer than the limit of %zu bytes per line",
			 r->lineno, seen, FT_DATA_MAX_LINE);
		ft_err_line(err, r->lineno);
		return FT_ELIMIT;
	}
	if (r->line.len > 0 && r->line.ptr[r->line.len - 1] == '\r')
		ft_buf_truncate(&r->line, r->line.len - 1);
	/* a UTF-8 byte order mark (Windows editors write one) starts the file,
	 * not the first row */
	if (r->lineno == 1 && r->line.len >= 3 && memcmp(r->line.ptr, "\xef\xbb\xbf", 3) == 0) {
		memmove(r->line.ptr, r->line.ptr + 3, r->line.len - 3);
		ft_buf_truncate(&r->line, r->line.len - 3);
	}
	return FT_OK;
}

bool ft_jsonl_blank(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] == '\0' || !strchr(" \t\r\n", s[i]))
			return false;
	return true;
}

/* ---- rows ---- */

void ft_data_row_init(struct ft_data_row *row)
{
	memset(row, 0, sizeof(*row));
}

void ft_data_row_release(struct ft_data_row *row)
{
	json_decref(row->json);
	free(row->msgs);
	free(row->chosen);
	free(row->rejected);
	memset(row, 0, sizeof(*row));
}

size_t ft_data_utf8_invalid_at(const char *text, size_t len)
{
	const unsigned char *s = (const unsigned char *)text;
	size_t i = 0;
	while (i < len) {
		unsigned char c = s[i];
		size_t k;
		uint32_t v, min;
		if (c < 0x80) {
			i++;
			continue;
		} else if (c >= 0xc2 && c <= 0xdf) {
			k = 2, v = c & 0x1f, min = 0x80;
		} else if ((c & 0xf0) == 0xe0) {
			k = 3, v = c & 0x0f, min = 0x800;
		} else if (c >= 0xf0 && c <= 0xf4) {
			k = 4, v = c & 0x07, min = 0x10000;
		} else {
			return i;
		}
		if (i + k > len)
			return i;
		for (size_t j = 1; j < k; j++) {
			if ((s[i + j] & 0xc0) != 0x80)
				return i;
			v = (v << 6) | (s[i + j] & 0x3f);
		}
		if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
			return i;
		i += k;
	}
	return len;
}

static bool blank(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (!strchr(" \t\r\n\f\v", s[i]) || s[i] == '\0')
			return false;
	return true;
}

static bool all_space(const char *s, size_t len)
{
	return blank(s, len);
}

/* Record a row error with the field path in param. */
static enum ft_rc row_fail(struct ft_err *err, const char *code, const char *param, const char *fmt,
			   ...) FT_PRINTF(4, 5);
static enum ft_rc row_fail(struct ft_err *err, const char *code, const char *param, const char *fmt,
			   ...)
{
	va_list ap;
	va_start(ap, fmt);
	ft_vfailf(err, FT_EINVAL, code, fmt, ap);
	va_end(ap);
	if (param)
		ft_err_param(err, param);
	return FT_EINVAL;
}

/* A required string field; empty (or whitespace only) is an error unless
 * allow_empty. */
static enum ft_rc get_string(const json_t *obj, const char *key, const char *path, bool required,
			     bool allow_empty, const char **out, size_t *len, struct ft_err *err)
{
	json_t *v = json_object_get(obj, key);
	if (!v) {
		if (!required)
			return FT_OK;
		return row_fail(err, "missing_field", path, "\"%s\" is required", path);
	}
	if (!json_is_string(v))
		return row_fail(err, "invalid_type", path, "\"%s\" must be a string (got %s)", path,
				ft_json_type_name(v));
	*out = json_string_value(v);
	*len = json_string_length(v);
	if (!allow_empty && all_space(*out, *len))
		return row_fail(err, "empty_content", path, "\"%s\" is empty", path);
	return FT_OK;
}

enum dialect { OPENAI, SHAREGPT };

static const struct {
	enum dialect d;
	const char *name;
	enum ft_chat_role role;
} role_table[] = {
	{ OPENAI, "system", FT_CHAT_SYSTEM },	    { OPENAI, "user", FT_CHAT_USER },
	{ OPENAI, "assistant", FT_CHAT_ASSISTANT }, { SHAREGPT, "system", FT_CHAT_SYSTEM },
	{ SHAREGPT, "human", FT_CHAT_USER },	    { SHAREGPT, "gpt", FT_CHAT_ASSISTANT },
};

/* Parse a list of messages at json key `key` of obj (or obj itself when key
 * is NULL; `path` names it in errors). */
static enum ft_rc parse_msgs(const json_t *v, const char *path, enum dialect d,
			     struct ft_chat_msg **out, size_t *n_out, struct ft_err *err)
{
	const char *rkey = d == OPENAI ? "role" : "from";
	const char *ckey = d == OPENAI ? "content" : "value";
	const char *roles = d == OPENAI ? "system, user, assistant" : "system, human, gpt";
	char p[160];

	if (!v)
		return row_fail(err, "missing_field", path, "\"%s\" is required", path);
	if (!json_is_array(v))
		return row_fail(err, "invalid_type", path, "\"%s\" must be a list (got %s)", path,
				ft_json_type_name(v));
	size_t n = json_array_size(v);
	if (n == 0)
		return row_fail(err, "empty_content", path, "\"%s\" is an empty list", path);
	struct ft_chat_msg *m = calloc(n, sizeof(*m));
	if (!m)
		return ft_failf(err, FT_ENOMEM, "out_of_memory", "out of memory");
	for (size_t i = 0; i < n; i++) {
		json_t *e = json_array_get(v, i);
		snprintf(p, sizeof(p), "%s[%zu]", path, i);
		if (!json_is_object(e)) {
			row_fail(err, "invalid_type", p, "\"%s\" must be an object (got %s)", p,
				 ft_json_type_name(e));
			goto fail_m;
		}
		const char *role = NULL;
		size_t rlen = 0;
		snprintf(p, sizeof(p), "%s[%zu].%s", path, i, rkey);
		if (get_string(e, rkey, p, true, true, &role, &rlen, err))
			goto fail_m;
		bool found = false;
		for (size_t k = 0; k < FT_ARRAY_LEN(role_table); k++)
			if (role_table[k].d == d && strcmp(role, role_table[k].name) == 0 &&
			    strlen(role) == rlen) {
				m[i].role = role_table[k].role;
				found = true;
			}
		if (!found) {
			row_fail(err, "unknown_role", p, "\"%s\" is \"%.40s\": must be one of %s",
				 p, role, roles);
			goto fail_m;
		}
		snprintf(p, sizeof(p), "%s[%zu].%s", path, i, ckey);
		if (get_string(e, ckey, p, true, false, &m[i].content, &m[i].len, err))
			goto fail_m;
		m[i].weight = -1;
		json_t *w = json_object_get(e, "weight");
		if (w) {
			snprintf(p, sizeof(p), "%s[%zu].weight", path, i);
			if (!json_is_integer(w) ||
			    (json_integer_value(w) != 0 && json_integer_value(w) != 1)) {
				char got[64];
				if (json_is_integer(w))
					snprintf(got, sizeof(got), "%lld",
						 (long long)json_integer_value(w));
				else if (json_is_real(w))
					snprintf(got, sizeof(got), "%g", json_real_value(w));
				else
					snprintf(got, sizeof(got), "%s", ft_json_type_name(w));
				row_fail(err, "invalid_weight", p, "\"%s\" must be 0 or 1 (got %s)",
					 p, got);
				goto fail_m;
			}
			m[i].weight = (int)json_integer_value(w);
		}
	}
	*out = m;
	*n_out = n;
	return FT_OK;
fail_m:
	free(m);
	return FT_EINVAL;
}

static bool has_assistant(const struct ft_chat_msg *m, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (m[i].role == FT_CHAT_ASSISTANT)
			return true;
	return false;
}

static enum ft_rc need_assistant(const struct ft_chat_msg *m, size_t n, const char *path,
				 struct ft_err *err)
{
	if (has_assistant(m, n))
		return FT_OK;
	return row_fail(err, "no_assistant_turn", path,
			"\"%s\" has no assistant message: nothing to train on", path);
}

static enum ft_rc raw_msgs(struct ft_data_row *row, size_t n)
{
	row->msgs = calloc(n, sizeof(*row->msgs));
	if (!row->msgs)
		return FT_ENOMEM;
	row->n_msgs = n;
	row->raw = true;
	for (size_t i = 0; i < n; i++) {
		row->msgs[i].role = i + 1 == n ? FT_CHAT_ASSISTANT : FT_CHAT_USER;
		row->msgs[i].weight = -1;
		row->msgs[i].content = "";
	}
	return FT_OK;
}

static enum ft_rc parse_text(const json_t *o, struct ft_data_row *row, struct ft_err *err)
{
	if (raw_msgs(row, 1))
		return ft_failf(err, FT_ENOMEM, "out_of_memory", "out of memory");
	return get_string(o, "text", "text", true, false, &row->msgs[0].content, &row->msgs[0].len,
			  err);
}

static enum ft_rc parse_prompt_completion(const json_t *o, struct ft_data_row *row,
					  struct ft_err *err)
{
	if (raw_msgs(row, 2))
		return ft_failf(err, FT_ENOMEM, "out_of_memory", "out of memory");
	if (get_string(o, "prompt", "prompt", true, true, &row->msgs[0].content, &row->msgs[0].len,
		       err))
		return FT_EINVAL;
	return get_string(o, "completion", "completion", true, false, &row->msgs[1].content,
			  &row->msgs[1].len, err);
}

static enum ft_rc parse_instruction(const json_t *o, struct ft_data_row *row, struct ft_err *err)
{
	if (raw_msgs(row, 3))
		return ft_failf(err, FT_ENOMEM, "out_of_memory", "out of memory");
	if (get_string(o, "instruction", "instruction", true, false, &row->msgs[0].content,
		       &row->msgs[0].len, err) ||
	    get_string(o, "input", "input", false, true, &row->msgs[1].content, &row->msgs[1].len,
		       err))
		return FT_EINVAL;
	return get_string(o, "output", "output", true, false, &row->msgs[2].content,
			  &row->msgs[2].len, err);
}

static enum ft_rc parse_messages(const json_t *o, struct ft_data_row *row, struct ft_err *err)
{
	if (parse_msgs(json_object_get(o, "messages"), "messages", OPENAI, &row->msgs, &row->n_msgs,
		       err))
		return FT_EINVAL;
	return need_assistant(row->msgs, row->n_msgs, "messages", err);
}

static enum ft_rc parse_sharegpt(const json_t *o, struct ft_data_row *row, struct ft_err *err)
{
	if (parse_msgs(json_object_get(o, "conversations"), "conversations", SHAREGPT, &row->msgs,
		       &row->n_msgs, err))
		return FT_EINVAL;
	return need_assistant(row->msgs, row->n_msgs, "conversations", err);
}

/* An answer of a preference row: a string when the prompt is one, else a
 * list of messages with an assistant turn. */
static enum ft_rc parse_answer(const json_t *v, const char *path, bool raw,
			       struct ft_chat_msg **out, size_t *n, struct ft_err *err)
{
	if (!v)
		return row_fail(err, "missing_field", path, "\"%s\" is required", path);
	if (raw) {
		if (!json_is_string(v))
			return row_fail(err, "invalid_type", path,
					"\"%s\" must be a string like \"prompt\" (got %s)", path,
					ft_json_type_name(v));
		*out = calloc(1, sizeof(**out));
		if (!*out)
			return ft_failf(err, FT_ENOMEM, "out_of_memory", "out of memory");
		*n = 1;
		(*out)[0] = (struct ft_chat_msg){ .role = FT_CHAT_ASSISTANT,
						  .content = json_string_value(v),
						  .len = json_string_length(v),
						  .weight = -1 };
		if (all_space((*out)[0].content, (*out)[0].len))
			return row_fail(err, "empty_content", path, "\"%s\" is empty", path);
		return FT_OK;
	}
	if (parse_msgs(v, path, OPENAI, out, n, err))
		return FT_EINVAL;
	return need_assistant(*out, *n, path, err);
}

static enum ft_rc parse_preference(const json_t *o, struct ft_data_row *row, struct ft_err *err)
{
	json_t *p = json_object_get(o, "prompt");
	if (!p)
		return row_fail(err, "missing_field", "prompt", "\"prompt\" is required");
	if (json_is_string(p)) {
		if (raw_msgs(row, 1))
			return ft_failf(err, FT_ENOMEM, "out_of_memory", "out of memory");
		row->msgs[0].role = FT_CHAT_USER;
		if (get_string(o, "prompt", "prompt", true, false, &row->msgs[0].content,
			       &row->msgs[0].len, err))
			return FT_EINVAL;
	} else if (json_is_array(p)) {
		if (parse_msgs(p, "prompt", OPENAI, &row->msgs, &row->n_msgs, err))
			return FT_EINVAL;
	} else {
		return row_fail(err, "invalid_type", "prompt",
				"\"prompt\" must be a string or a list of messages (got %s)",
				ft_json_type_name(p));
	}
	if (parse_answer(json_object_get(o, "chosen"), "chosen", row->raw, &row->chosen,
			 &row->n_chosen, err))
		return FT_EINVAL;
	return parse_answer(json_object_get(o, "rejected"), "rejected", row->raw, &row->rejected,
			    &row->n_rejected, err);
}

static enum ft_rc parse_openai_dpo(const json_t *o, struct ft_data_row *row, struct ft_err *err)
{
	json_t *in = json_object_get(o, "input");
	if (!in)
		return row_fail(err, "missing_field", "input", "\"input\" is required");
	if (!json_is_object(in))
		return row_fail(err, "invalid_type", "input",
				"\"input\" must be an object (got %s)", ft_json_type_name(in));
	if (parse_msgs(json_object_get(in, "messages"), "input.messages", OPENAI, &row->msgs,
		       &row->n_msgs, err))
		return FT_EINVAL;
	if (parse_answer(json_object_get(o, "preferred_output"), "preferred_output", false,
			 &row->chosen, &row->n_chosen, err))
		return FT_EINVAL;
	return parse_answer(json_object_get(o, "non_preferred_output"), "non_preferred_output",
			    false, &row->rejected, &row->n_rejected, err);
}

static const struct {
	const char *key;
	enum ft_data_format format;
} detect_table[] = {
	{ "messages", FT_FMT_MESSAGES },
	{ "conversations", FT_FMT_SHAREGPT },
	{ "preferred_output", FT_FMT_OPENAI_DPO },
	{ "non_preferred_output", FT_FMT_OPENAI_DPO },
	{ "chosen", FT_FMT_PREFERENCE },
	{ "rejected", FT_FMT_PREFERENCE },
	{ "instruction", FT_FMT_INSTRUCTION },
	{ "output", FT_FMT_INSTRUCTION },
	{ "completion", FT_FMT_PROMPT_COMPLETION },
	{ "prompt", FT_FMT_PROMPT_COMPLETION },
	{ "text", FT_FMT_TEXT },
};

static enum ft_rc (*const parsers[FT_FMT_COUNT])(const json_t *, struct ft_data_row *,
						 struct ft_err *) = {
	[FT_FMT_TEXT] = parse_text,
	[FT_FMT_PROMPT_COMPLETION] = parse_prompt_completion,
	[FT_FMT_INSTRUCTION] = parse_instruction,
	[FT_FMT_MESSAGES] = parse_messages,
	[FT_FMT_SHAREGPT] = parse_sharegpt,
	[FT_FMT_PREFERENCE] = parse_preference,
	[FT_FMT_OPENAI_DPO] = parse_openai_dpo,
};

enum ft_data_format ft_data_format_detect(const json_t *o)
{
	if (!json_is_object(o))
		return FT_FMT_UNKNOWN;
	for (size_t i = 0; i < FT_ARRAY_LEN(detect_table); i++)
		if (json_object_get(o, detect_table[i].key))
			return detect_table[i].format;
	if (json_is_object(json_object_get(o, "input")))
		return FT_FMT_OPENAI_DPO;
	return FT_FMT_UNKNOWN;
}

/* Parse the JSON text of a line; errors name the column (1-based byte). */
static json_t *parse_json(const char *line, size_t len, struct ft_err *err)
{
	json_error_t je;
	json_t *v = json_loadb(line, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &je);
	if (!v) {
		long col = je.position > 0 ? (long)je.position : 1;
		ft_failf(err, FT_EINVAL, "invalid_json", "invalid JSON at column %ld: %s", col,
			 je.text);
	}
	return v;
}

static enum ft_rc row_parse(const char *line, size_t len, enum ft_data_format *format,
			    struct ft_data_row *row, struct ft_err *err)
{
	if (blank(line, len))
		return row_fail(err, "blank_line", NULL,
				"blank line: every line must hold one JSON object (remove it)");
	size_t bad = ft_data_utf8_invalid_at(line, len);
	if (bad < len)
		return row_fail(err, "invalid_utf8", NULL,
				"not valid UTF-8 at byte offset %zu (byte 0x%02x)", bad,
				(unsigned char)line[bad]);
	row->json = parse_json(line, len, err);
	if (!row->json)
		return FT_EINVAL;
	if (!json_is_object(row->json))
		return row_fail(err, "invalid_type", NULL, "row must be a JSON object (got %s)",
				ft_json_type_name(row->json));
	enum ft_data_format f = ft_data_format_detect(row->json);
	if (f == FT_FMT_UNKNOWN)
		return row_fail(
			err, "unknown_format", NULL,
			"row has none of the known fields: \"text\", \"prompt\"+\"completion\", "
			"\"instruction\"+\"output\", \"messages\", \"conversations\", "
			"\"prompt\"+\"chosen\"+\"rejected\", \"input\"+\"preferred_output\"+"
			"\"non_preferred_output\"");
	if (*format != FT_FMT_UNKNOWN && f != *format)
		return row_fail(err, "mixed_formats", NULL,
				"row is in the \"%s\" format but the file is in the \"%s\" format "
				"(from its first valid row)",
				ft_data_format_name(f), ft_data_format_name(*format));
	row->format = f;
	return parsers[f](row->json, row, err);
}

enum ft_rc ft_data_row_parse(const char *line, size_t len, long lineno, enum ft_data_format *format,
			     struct ft_data_row *row, struct ft_err *err)
{
	ft_data_row_release(row);
	row->line = lineno;
	enum ft_rc rc = row_parse(line, len, format, row, err);
	if (rc) {
		ft_err_prefixf(err, "line %ld: ", lineno);
		ft_err_line(err, lineno);
		ft_data_row_release(row);
		return rc;
	}
	if (*format == FT_FMT_UNKNOWN)
		*format = row->format;
	return FT_OK;
}

/* blank lines the first-row check reads past before it leaves the file to
 * the validator */
#define FIRST_ROW_MAX_LINES 100

enum ft_rc ft_data_check_first_row(FILE *f, enum ft_data_method method, enum ft_data_format *format,
				   struct ft_err *err)
{
	struct ft_jsonl_reader rd;
	struct ft_data_row row;
	enum ft_data_format fmt = FT_FMT_UNKNOWN;
	enum ft_rc rc;

	*format = FT_FMT_UNKNOWN;
	if ((rc = ft_jsonl_reader_from_file(&rd, f, err)))
		return rc;
	ft_data_row_init(&row);
	for (;;) {
		bool eof;
		struct ft_err e;
		ft_err_clear(&e);
		rc = ft_jsonl_reader_next(&rd, &eof, &e);
		if (rc == FT_ELIMIT) { /* the validator names it */
			rc = FT_OK;
			break;
		}
		if (rc) {
			ft_failf(err, rc, e.code, "%s", e.msg);
			break;
		}
		if (eof || rd.lineno > FIRST_ROW_MAX_LINES)
			break;
		if (ft_jsonl_blank(rd.line.ptr ? rd.line.ptr : "", rd.line.len))
			continue;
		if (ft_data_row_parse(rd.line.ptr, rd.line.len, rd.lineno, &fmt, &row, &e) ==
		    FT_OK) {
			*format = fmt;
			rc = ft_data_method_check(fmt, method, rd.lineno, err);
		}
		break;
	}
	ft_data_row_release(&row);
	ft_jsonl_reader_close(&rd);
	return rc;
}
