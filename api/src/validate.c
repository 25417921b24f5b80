/*
 * validate.c - a structure-only JSONL dataset validator.
 *
 * One JSON object per line; blank lines are skipped. The first example
 * fixes the format of the file, detected from its keys:
 *
 *   format             keys                                         methods
 *   messages           messages: [{role, content}]                  supervised
 *   sharegpt           conversations: [{from, value}]               supervised
 *   instruction        instruction, output, input?                  supervised
 *   prompt_completion  prompt, completion                           supervised
 *   text               text                                         supervised
 *   preference         prompt, chosen, rejected                     dpo
 *   openai_dpo         input{messages}, preferred_output,           dpo
 *                      non_preferred_output
 *
 * Every bad line gets an error "line N: ..." with a machine code; nothing
 * is dropped silently. Lines are read with a hard cap so a file without
 * newlines cannot take unbounded memory. This is the API's own validator;
 * ft_api_validate_dataset() is the one entry point so that it can later
 * call the trainer's dataset reader instead.
 */
#include <fcntl.h>
#include <unistd.h>

#include "ft/api.h"
#include "ft/buf.h"
#include "ft/json.h"

#define MAX_LINE (8u << 20)
#define MAX_ERRORS 100
#define N_PREVIEW 3

static const struct {
	enum ft_ds_format f;
	const char *name;
	const char *method;
} formats[] = {
	{ FT_DS_UNKNOWN, "unknown", NULL },
	{ FT_DS_TEXT, "text", "supervised" },
	{ FT_DS_PROMPT_COMPLETION, "prompt_completion", "supervised" },
	{ FT_DS_INSTRUCTION, "instruction", "supervised" },
	{ FT_DS_MESSAGES, "messages", "supervised" },
	{ FT_DS_SHAREGPT, "sharegpt", "supervised" },
	{ FT_DS_PREFERENCE, "preference", "dpo" },
	{ FT_DS_OPENAI_DPO, "openai_dpo", "dpo" },
};

const char *ft_ds_format_name(enum ft_ds_format f)
{
	return (size_t)f < FT_ARRAY_LEN(formats) ? formats[f].name : "unknown";
}

bool ft_ds_format_fits(enum ft_ds_format f, const char *method)
{
	if (f == FT_DS_UNKNOWN || (size_t)f >= FT_ARRAY_LEN(formats))
		return false;
	return !method || strcmp(formats[f].method, method) == 0;
}

enum ft_ds_format ft_ds_format_detect(const json_t *ex)
{
	if (!json_is_object(ex))
		return FT_DS_UNKNOWN;
	if (json_object_get(ex, "messages"))
		return FT_DS_MESSAGES;
	if (json_object_get(ex, "conversations"))
		return FT_DS_SHAREGPT;
	if (json_object_get(ex, "preferred_output") || json_object_get(ex, "non_preferred_output"))
		return FT_DS_OPENAI_DPO;
	if (json_object_get(ex, "chosen") || json_object_get(ex, "rejected"))
		return FT_DS_PREFERENCE;
	if (json_object_get(ex, "instruction"))
		return FT_DS_INSTRUCTION;
	if (json_object_get(ex, "completion"))
		return FT_DS_PROMPT_COMPLETION;
	if (json_object_get(ex, "text"))
		return FT_DS_TEXT;
	return FT_DS_UNKNOWN;
}

/* Per-example accounting while checking. */
struct ex_stats {
	size_t chars;
	size_t n_messages;
	json_t *roles; /* role -> count */
	struct ft_buf render;
};

static const char *const chat_roles[] = { "system", "user",	 "assistant",
					  "tool",   "developer", "function" };
static const char *const sharegpt_roles[] = {
	"system", "human", "gpt", "user", "assistant", "tool", "function_call", "observation"
};

static bool in_list(const char *s, const char *const *list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(s, list[i]) == 0)
			return true;
	return false;
}

static enum ft_rc need_str(const json_t *o, const char *key, bool nonempty, struct ex_stats *st,
			   const char *label, struct ft_err *err)
{
	const char *s = NULL;
	enum ft_rc rc = ft_json_get_str(
		o, key, FT_JSON_REQUIRED | (nonempty ? FT_JSON_NONEMPTY : 0), &s, err);
	if (rc)
		return rc;
	st->chars += strlen(s);
	if (st->render.len < 600 &&
	    (ft_buf_addf(&st->render, "%s: ", label) || ft_buf_addstr(&st->render, s) ||
	     ft_buf_addch(&st->render, '\n')))
		return ft_failf(err, FT_ENOMEM, NULL, "out of memory");
	return FT_OK;
}

static void count_role(struct ex_stats *st, const char *role)
{
	json_t *c = json_object_get(st->roles, role);
	json_object_set_new(st->roles, role, json_integer(c ? json_integer_value(c) + 1 : 1));
}

/* A chat message list (OpenAI shape). need_assistant: at least one. */
static enum ft_rc check_messages(const json_t *list, const char *what, bool need_assistant,
				 struct ex_stats *st, struct ft_err *err)
{
	if (!json_is_array(list))
		return ft_failf(err, FT_EINVAL, "invalid_type", "\"%s\" must be a list (got %s)",
				what, ft_json_type_name(list));
	if (json_array_size(list) == 0)
		return ft_failf(err, FT_EINVAL, "invalid_value", "\"%s\" must not be empty", what);
	bool assistant = false;
	size_t i;
	json_t *m;
	json_array_foreach(list, i, m)
	{
		const char *role = NULL;
		if (!json_is_object(m))
			return ft_failf(err, FT_EINVAL, "invalid_type",
					"\"%s[%zu]\" must be an object (got %s)", what, i,
					ft_json_type_name(m));
		if (ft_json_get_str(m, "role", FT_JSON_REQUIRED, &role, err)) {
			ft_err_prefixf(err, "%s[%zu]: ", what, i);
			return err ? err->rc : FT_EINVAL;
		}
		if (!in_list(role, chat_roles, FT_ARRAY_LEN(chat_roles)))
			return ft_failf(err, FT_EINVAL, "invalid_value",
					"%s[%zu]: unknown role \"%s\" (use system, user, assistant "
					"or tool)",
					what, i, role);
		json_t *c = json_object_get(m, "content");
		if (json_is_string(c)) {
			st->chars += json_string_length(c);
			if (st->render.len < 600 &&
			    (ft_buf_addf(&st->render, "%s: ", role) ||
			     ft_buf_add(&st->render, json_string_value(c),
					FT_MIN(json_string_length(c), 300)) ||
			     ft_buf_addch(&st->render, '\n')))
				return ft_failf(err, FT_ENOMEM, NULL, "out of memory");
		} else if (json_is_array(c)) {
			size_t j;
			json_t *part;
			json_array_foreach(c, j, part)
			{
				json_t *t = json_object_get(part, "text");
				if (!json_is_string(t))
					return ft_failf(err, FT_EINVAL, "invalid_type",
							"%s[%zu].content[%zu] must be an object "
							"with a \"text\" string",
							what, i, j);
				st->chars += json_string_length(t);
			}
		} else if (!c) {
			return ft_failf(err, FT_EINVAL, "missing_field",
					"%s[%zu]: \"content\" is required", what, i);
		} else if (!(json_is_null(c) && json_object_get(m, "tool_calls"))) {
			return ft_failf(err, FT_EINVAL, "invalid_type",
					"%s[%zu]: \"content\" must be a string (got %s)", what, i,
					ft_json_type_name(c));
		}
		if (strcmp(role, "assistant") == 0)
			assistant = true;
		count_role(st, role);
		st->n_messages++;
	}
	if (need_assistant && !assistant)
		return ft_failf(err, FT_EINVAL, "no_assistant_message",
				"\"%s\" has no assistant message to learn from", what);
	return FT_OK;
}

static enum ft_rc check_example(const json_t *ex, enum ft_ds_format f, struct ex_stats *st,
				struct ft_err *err)
{
	switch (f) {
	case FT_DS_TEXT: return need_str(ex, "text", true, st, "text", err);
	case FT_DS_PROMPT_COMPLETION:
		if (need_str(ex, "prompt", false, st, "prompt", err))
			return err ? err->rc : FT_EINVAL;
		return need_str(ex, "completion", true, st, "completion", err);
	case FT_DS_INSTRUCTION: {
		if (need_str(ex, "instruction", true, st, "instruction", err))
			return err ? err->rc : FT_EINVAL;
		if (json_object_get(ex, "input") && !json_is_null(json_object_get(ex, "input")) &&
		    need_str(ex, "input", false, st, "input", err))
			return err ? err->rc : FT_EINVAL;
		return need_str(ex, "output", true, st, "output", err);
	}
	case FT_DS_MESSAGES:
		return check_messages(json_object_get(ex, "messages"), "messages", true, st, err);
	case FT_DS_SHAREGPT: {
		json_t *c = json_object_get(ex, "conversations"), *m;
		size_t i;
		if (!json_is_array(c) || json_array_size(c) == 0)
			return ft_failf(err, FT_EINVAL, "invalid_type",
					"\"conversations\" must be a non-empty list (got %s)",
					ft_json_type_name(c));
		json_array_foreach(c, i, m)
		{
			const char *from = NULL;
			if (!json_is_object(m))
				return ft_failf(err, FT_EINVAL, "invalid_type",
						"\"conversations[%zu]\" must be an object (got %s)",
						i, ft_json_type_name(m));
			if (ft_json_get_str(m, "from", FT_JSON_REQUIRED, &from, err)) {
				ft_err_prefixf(err, "conversations[%zu]: ", i);
				return err ? err->rc : FT_EINVAL;
			}
			if (!in_list(from, sharegpt_roles, FT_ARRAY_LEN(sharegpt_roles)))
				return ft_failf(err, FT_EINVAL, "invalid_value",
						"conversations[%zu]: unknown \"from\" \"%s\"", i,
						from);
			if (need_str(m, "value", false, st, from, err)) {
				ft_err_prefixf(err, "conversations[%zu]: ", i);
				return err ? err->rc : FT_EINVAL;
			}
			count_role(st, from);
			st->n_messages++;
		}
		return FT_OK;
	}
	case FT_DS_PREFERENCE:
		if (need_str(ex, "prompt", false, st, "prompt", err) ||
		    need_str(ex, "chosen", true, st, "chosen", err) ||
		    need_str(ex, "rejected", true, st, "rejected", err))
			return err ? err->rc : FT_EINVAL;
		return FT_OK;
	case FT_DS_OPENAI_DPO: {
		json_t *in = json_object_get(ex, "input");
		if (!json_is_object(in))
			return ft_failf(err, FT_EINVAL, in ? "invalid_type" : "missing_field",
					"\"input\" must be an object with \"messages\" (got %s)",
					ft_json_type_name(in));
		if (check_messages(json_object_get(in, "messages"), "input.messages", false, st,
				   err) ||
		    check_messages(json_object_get(ex, "preferred_output"), "preferred_output",
				   true, st, err) ||
		    check_messages(json_object_get(ex, "non_preferred_output"),
				   "non_preferred_output", true, st, err))
			return err ? err->rc : FT_EINVAL;
		return FT_OK;
	}
	case FT_DS_UNKNOWN: break;
	}
	return ft_failf(
		err, FT_EINVAL, "unknown_format",
		"no known format fits (expected \"messages\", \"text\", \"prompt\"/\"completion\", "
		"\"instruction\"/\"output\", \"conversations\", \"chosen\"/\"rejected\" or "
		"\"preferred_output\")");
}

struct vstate {
	const char *method;
	enum ft_ds_format format;
	long format_line;
	long n_lines, n_examples, n_errors;
	size_t total_chars, max_chars, n_messages;
	json_t *errors, *roles, *preview;
};

static void add_error(struct vstate *v, long line, const char *code, const char *msg)
{
	v->n_errors++;
	if (json_array_size(v->errors) >= MAX_ERRORS)
		return;
	json_t *e = json_object();
	char text[700];
	if (line > 0)
		snprintf(text, sizeof(text), "line %ld: %s", line, msg);
	else
		snprintf(text, sizeof(text), "%s", msg);
	json_object_set_new(e, "line", json_integer(line));
	json_object_set_new(e, "code", json_string(code));
	json_object_set_new(e, "message", json_string(text));
	json_array_append_new(v->errors, e);
}

static void check_line(struct vstate *v, const char *s, size_t len, long line)
{
	struct ft_err e;
	ft_err_clear(&e);
	size_t i = 0;
	while (i < len && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r'))
		i++;
	if (i == len)
		return; /* blank */
	json_t *ex = ft_json_parse(s, len, &e);
	if (!ex) {
		add_error(v, line, "invalid_json", e.msg);
		return;
	}
	if (!json_is_object(ex)) {
		snprintf(e.msg, sizeof(e.msg), "must be a JSON object (got %s)",
			 ft_json_type_name(ex));
		add_error(v, line, "not_an_object", e.msg);
		goto free_ex;
	}
	enum ft_ds_format f = ft_ds_format_detect(ex);
	if (v->format == FT_DS_UNKNOWN && f != FT_DS_UNKNOWN) {
		v->format = f;
		v->format_line = line;
		if (v->method && !ft_ds_format_fits(f, v->method)) {
			char m[300];
			snprintf(m, sizeof(m), "format \"%s\" cannot train with method \"%s\"",
				 ft_ds_format_name(f), v->method);
			add_error(v, line, "format_mismatch", m);
		}
	} else if (f != FT_DS_UNKNOWN && f != v->format) {
		char m[300];
		snprintf(m, sizeof(m),
			 "format \"%s\" differs from the file's format \"%s\" (line %ld)",
			 ft_ds_format_name(f), ft_ds_format_name(v->format), v->format_line);
		add_error(v, line, "mixed_formats", m);
		goto free_ex;
	}
	struct ex_stats st = { 0 };
	st.roles = v->roles;
	ft_buf_init(&st.render, 4096);
	if (f == FT_DS_UNKNOWN)
		f = v->format; /* check against the file's format: names the missing field */
	if (check_example(ex, f, &st, &e)) {
		add_error(v, line, e.code[0] ? e.code : "invalid_value", e.msg);
	} else {
		v->n_examples++;
		v->total_chars += st.chars;
		v->max_chars = FT_MAX(v->max_chars, st.chars);
		v->n_messages += st.n_messages;
		if (json_array_size(v->preview) < N_PREVIEW)
			json_array_append_new(v->preview, json_string(ft_buf_str(&st.render)));
	}
	ft_buf_release(&st.render);
free_ex:
	json_decref(ex);
}

enum ft_rc ft_api_validate_fd(int fd, const char *method, json_t **report, struct ft_err *err)
{
	struct vstate v = { .method = method };
	struct ft_buf line;
	char chunk[65536];
	bool too_long = false;
	enum ft_rc rc = FT_OK;
	v.errors = json_array();
	v.roles = json_object();
	v.preview = json_array();
	ft_buf_init(&line, MAX_LINE);
	for (;;) {
		ssize_t n = read(fd, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = ft_failf(err, FT_EIO, "io_error", "reading the dataset: %s",
				      strerror(errno));
			goto release;
		}
		if (n == 0)
			break;
		const char *p = chunk, *end = chunk + n;
		while (p < end) {
			const char *nl = memchr(p, '\n', (size_t)(end - p));
			size_t take = (size_t)((nl ? nl : end) - p);
			if (!too_long && ft_buf_add(&line, p, take))
				too_long = true;
			p += take;
			if (!nl)
				break;
			p++;
			v.n_lines++;
			if (too_long) {
				add_error(&v, v.n_lines, "line_too_long",
					  "longer than 8 MiB; split the example or shorten it");
			} else {
				check_line(&v, line.ptr ? line.ptr : "", line.len, v.n_lines);
			}
			too_long = false;
			ft_buf_reset(&line);
		}
	}
	if (line.len || too_long) {
		v.n_lines++;
		if (too_long)
			add_error(&v, v.n_lines, "line_too_long",
				  "longer than 8 MiB; split the example or shorten it");
		else
			check_line(&v, line.ptr, line.len, v.n_lines);
	}
	if (v.n_examples == 0 && v.n_errors == 0)
		add_error(&v, 0, "empty_file", "the file has no examples");

	json_t *r = json_object();
	json_t *stats = json_object();
	json_object_set_new(r, "format",
			    v.format ? json_string(ft_ds_format_name(v.format)) : json_null());
	json_object_set_new(r, "valid", json_boolean(v.n_errors == 0));
	json_object_set_new(r, "n_lines", json_integer(v.n_lines));
	json_object_set_new(r, "n_examples", json_integer(v.n_examples));
	json_object_set_new(r, "n_errors", json_integer(v.n_errors));
	json_object_set_new(r, "errors", v.errors);
	json_object_set_new(stats, "total_chars", json_integer((json_int_t)v.total_chars));
	json_object_set_new(stats, "max_chars", json_integer((json_int_t)v.max_chars));
	json_object_set_new(
		stats, "mean_chars",
		json_real(v.n_examples ? (double)v.total_chars / (double)v.n_examples : 0));
	json_object_set_new(stats, "n_messages", json_integer((json_int_t)v.n_messages));
	json_object_set_new(stats, "roles", v.roles);
	json_object_set_new(r, "stats", stats);
	json_object_set_new(r, "preview", v.preview);
	*report = r;
	ft_buf_release(&line);
	return FT_OK;
release:
	json_decref(v.errors);
	json_decref(v.roles);
	json_decref(v.preview);
	ft_buf_release(&line);
	return rc;
}

enum ft_rc ft_api_validate_dataset(const char *path, const char *method, json_t **report,
				   struct ft_err *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return ft_failf(err, FT_EIO, "io_error", "cannot open \"%s\": %s", path,
				strerror(errno));
	enum ft_rc rc = ft_api_validate_fd(fd, method, report, err);
	close(fd);
	return rc;
}
