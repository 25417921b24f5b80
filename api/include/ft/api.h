/*
 * ft/api.h - what ft-api offers outside api/: its view of a data file's
 * validation. There is one validator, ftdata's (ft/dataset.h, the one
 * `ft-train validate` and the training loop run): every verdict, code,
 * message and line number below is ftdata's, and this adapter only gives
 * the report the shape the API documents (docs/api.md, "Datasets").
 *
 * Report (a new JSON object, owned by the caller):
 *   format      the file's format (that of its first valid row), or null
 *   method      "supervised" or "dpo": what the rows train with, or null
 *   template    the chat template rows were rendered with, or null
 *   valid       true when no line had an error
 *   n_lines     lines read (a blank line is an error, "blank_line")
 *   n_examples  rows that passed
 *   n_errors    every error; errors[] holds the first 100
 *   errors      [{ "line": N or null, "code": "...", "message": "line N: ..." }]
 *               (line null: about the file, such as "empty_file")
 *   stats       { "total_chars", "max_chars", "mean_chars" (characters of
 *                 the rows' texts), "n_messages", "roles": {"system",
 *                 "user", "assistant"}, and with a tokenizer (else null)
 *                 "tokens_total", "tokens_trained", "max_len", "mean_len",
 *                 "max_seq_len" }
 *   preview     up to 3 valid rows rendered as text ("role: content" lines)
 */
#ifndef FT_API_H
#define FT_API_H

#include <stdio.h>

#include <jansson.h>

#include "ft/dataset.h"
#include "ft/err.h"

struct ft_api_validate_opts {
	enum ft_data_method method; /* FT_METHOD_AUTO: any format (a dataset) */
	const struct ft_tokenizer *tok; /* the base model's; NULL: structure only */
	const char *template_name; /* with tok: NULL for the tokenizer's own template */
	size_t max_seq_len; /* with tok: a longer row is "too_long" (0: no limit) */
	bool truncate_long; /* ... or counted in rows_truncated (a job's files) */
};

/* Validate a JSONL stream from its current offset. FT_OK with a report
 * whether or not the data is valid; an error only when it cannot be read. */
enum ft_rc ft_api_validate_file(FILE *f, const struct ft_api_validate_opts *o, json_t **report,
				struct ft_err *err);
/* The API's report of ftdata's. */
json_t *ft_api_report_json(const struct ft_data_report *r);
/* "supervised" or "dpo" (the API's method names) to ftdata's method;
 * false for another name. */
bool ft_api_method_parse(const char *name, enum ft_data_method *out);

#endif
