/*
 * validate.c - ft-api's adapter over ftdata's validator (ft/dataset.h): the
 * validator reads the file (one line at a time, the 16 MiB line cap, the
 * formats, the messages and their line numbers), and this file only names
 * the report's fields as the API documents them (ft/api.h). Nothing is
 * checked here: a rule added to ftdata reaches ft-api, ft-train validate
 * and the training loop at once.
 *
 *   API report            ftdata report (struct ft_data_report)
 *   format, method        format, method (sft -> "supervised"), or null
 *   valid, n_errors       n_errors == 0, n_errors
 *   n_lines, n_examples   lines, rows_ok
 *   errors[]              issues[] (line 0 -> null)
 *   stats.*_chars         chars_total, chars_max, their mean
 *   stats.n_messages      the sum of role_counts
 *   stats.tokens_*, ...   tokens_total, tokens_trained, max_len, mean_len
 *   preview               preview[]
 *   preview_messages      turns[] (label -> "role")
 *   stats.approx_tokens   approx_tokens, rounded
 *   stats.rows_truncated  rows_truncated (null without a tokenizer)
 */
#include <math.h>

#include "ft/api.h"

static const struct {
	enum ft_data_method m;
	const char *name;
} methods[] = {
	{ FT_METHOD_SFT, "supervised" },
	{ FT_METHOD_DPO, "dpo" },
};

bool ft_api_method_parse(const char *name, enum ft_data_method *out)
{
	for (size_t i = 0; i < FT_ARRAY_LEN(methods); i++)
		if (name && strcmp(name, methods[i].name) == 0) {
			*out = methods[i].m;
			return true;
		}
	return false;
}

static json_t *method_json(enum ft_data_method m)
{
	for (size_t i = 0; i < FT_ARRAY_LEN(methods); i++)
		if (methods[i].m == m)
			return json_string(methods[i].name);
	return json_null();
}

static json_t *int_or_null(bool present, uint64_t v)
{
	return present ? json_integer((json_int_t)v) : json_null();
}

json_t *ft_api_report_json(const struct ft_data_report *r)
{
	json_t *errors = json_array(), *preview = json_array(), *roles = json_object();
	long n_messages = 0;
	for (size_t i = 0; i < r->n_issues; i++) {
		const struct ft_data_issue *is = &r->issues[i];
		json_array_append_new(errors,
				      json_pack("{s:o,s:s,s:s}", "line",
						is->line > 0 ? json_integer(is->line) : json_null(),
						"code", is->code, "message", is->msg));
	}
	for (int k = 0; k < FT_CHAT_ROLE_COUNT; k++) {
		json_object_set_new(roles, ft_chat_role_name((enum ft_chat_role)k),
				    json_integer(r->role_counts[k]));
		n_messages += r->role_counts[k];
	}
	json_t *turns = json_array();
	for (size_t i = 0; i < r->n_preview; i++) {
		json_array_append_new(preview, json_string(r->preview[i]));
		json_t *row = json_array();
		for (size_t k = 0; k < r->n_turns[i]; k++)
			json_array_append_new(row, json_pack("{s:s,s:s,s:b}", "role",
							     r->turns[i][k].label, "content",
							     r->turns[i][k].content, "truncated",
							     r->turns[i][k].truncated));
		json_array_append_new(turns, row);
	}
	bool t = r->tokenized;
	json_t *stats = json_pack(
		"{s:I,s:I,s:f,s:I,s:o,s:o,s:o,s:o,s:o,s:o}", "total_chars",
		(json_int_t)r->chars_total, "max_chars", (json_int_t)r->chars_max, "mean_chars",
		ft_data_report_mean_chars(r), "n_messages", (json_int_t)n_messages, "roles", roles,
		"tokens_total", int_or_null(t, r->tokens_total), "tokens_trained",
		int_or_null(t, r->tokens_trained), "max_len", int_or_null(t, r->max_len),
		"mean_len", t ? json_real(ft_data_report_mean_len(r)) : json_null(), "max_seq_len",
		int_or_null(t && r->max_seq_len, r->max_seq_len));
	json_object_set_new(stats, "rows_truncated", int_or_null(t, (uint64_t)r->rows_truncated));
	json_object_set_new(stats, "approx_tokens",
			    json_integer((json_int_t)floor(r->approx_tokens + 0.5)));
	return json_pack(
		"{s:o,s:o,s:o,s:b,s:I,s:I,s:I,s:o,s:o,s:o,s:o}", "format",
		r->format != FT_FMT_UNKNOWN ? json_string(ft_data_format_name(r->format))
					    : json_null(),
		"method", r->format != FT_FMT_UNKNOWN ? method_json(r->method) : json_null(),
		"template", r->template_name[0] ? json_string(r->template_name) : json_null(),
		"valid", r->n_errors == 0, "n_lines", (json_int_t)r->lines, "n_examples",
		(json_int_t)r->rows_ok, "n_errors", (json_int_t)r->n_errors, "errors", errors,
		"stats", stats, "preview", preview, "preview_messages", turns);
}

enum ft_rc ft_api_validate_file(FILE *f, const struct ft_api_validate_opts *o, json_t **report,
				struct ft_err *err)
{
	struct ft_data_opts opts;
	struct ft_data_report *rep = calloc(1, sizeof(*rep));
	if (!rep)
		return ft_failf(err, FT_ENOMEM, "out_of_memory", "out of memory");
	ft_data_opts_default(&opts);
	opts.method = o->method;
	opts.template_name = o->template_name;
	opts.max_seq_len = o->tok ? o->max_seq_len : 0;
	opts.truncate_long = o->truncate_long;
	enum ft_rc rc = ft_data_validate_file(f, o->tok, NULL, &opts, rep, err);
	if (rc == FT_OK) {
		*report = ft_api_report_json(rep);
		if (!*report)
			rc = ft_failf(err, FT_ENOMEM, "out_of_memory", "out of memory");
	}
	free(rep);
	return rc;
}
