/*
 * ft/api.h - what ft-api offers outside api/: the dataset validator (one
 * function, so it can later be switched to the trainer's validator).
 *
 * Report (a new JSON object, owned by the caller):
 *   format     detected format ("messages", "preference", ...) or null
 *   valid      true when no line had an error
 *   n_lines    lines read (blank lines count but are skipped)
 *   n_examples examples that passed
 *   errors     [{ "line": N, "code": "...", "message": "line N: ..." }], at most 100
 *   n_errors   total number of errors (errors[] may be cut)
 *   stats      { "total_chars", "max_chars", "mean_chars", "n_messages", "roles": {...} }
 *   preview    up to 3 examples rendered as plain text
 */
#ifndef FT_API_H
#define FT_API_H

#include <jansson.h>

#include "ft/err.h"

/* Dataset formats, as stored in datasets.format. */
enum ft_ds_format {
	FT_DS_UNKNOWN = 0,
	FT_DS_TEXT,
	FT_DS_PROMPT_COMPLETION,
	FT_DS_INSTRUCTION,
	FT_DS_MESSAGES,
	FT_DS_SHAREGPT,
	FT_DS_PREFERENCE,
	FT_DS_OPENAI_DPO,
};

const char *ft_ds_format_name(enum ft_ds_format f);
/* True when a format can train with method "supervised" or "dpo". */
bool ft_ds_format_fits(enum ft_ds_format f, const char *method);
/* Guess the format of one parsed example; FT_DS_UNKNOWN when none fits. */
enum ft_ds_format ft_ds_format_detect(const json_t *example);

/* Validate a JSONL file. method may be NULL (any format), "supervised" or
 * "dpo". Returns FT_OK with a report whether or not the data is valid; an
 * error only when the file cannot be read. */
enum ft_rc ft_api_validate_dataset(const char *path, const char *method, json_t **report,
				   struct ft_err *err);
/* Same over a file descriptor (read from its current offset). */
enum ft_rc ft_api_validate_fd(int fd, const char *method, json_t **report, struct ft_err *err);

#endif
