/*
 * ft/dataset.h - JSONL training data: reading, validating, tokenizing with
 * loss masks, packing, and the train/validation split.
 *
 * Row formats (one JSON object per line; the format of the file is the
 * format of its first valid row, and a row of another format is an error):
 *
 *   format              keys                                      trained
 *   text                "text"                                    every token (+ EOS)
 *   prompt_completion   "prompt", "completion"                    completion + EOS
 *   instruction         "instruction", "input" (optional), "output"  output + EOS (Alpaca prompt)
 *   messages            "messages": [{"role","content","weight"?}]  assistant turns (chat template)
 *   sharegpt            "conversations": [{"from","value"}]         gpt turns (chat template)
 *   preference          "prompt", "chosen", "rejected": strings or message lists   (DPO)
 *   openai_dpo          "input": {"messages"}, "preferred_output", "non_preferred_output" (DPO)
 *
 * Roles: messages use "system", "user", "assistant"; ShareGPT "from" uses
 * "system", "human", "gpt". "weight" (0 or 1) on a message: 0 excludes it
 * from the loss. Other keys of a row are ignored.
 *
 * Lines: a line ends at "\n" ("\r\n" accepted); a last line without "\n"
 * counts. A line longer than FT_DATA_MAX_LINE bytes is an error naming the
 * line, and reading goes on after it (the reader skips to the next "\n").
 * Blank (empty or whitespace-only) lines are reported as errors
 * ("blank_line"), as OpenAI does: nothing is silently dropped.
 *
 * Error codes (struct ft_err.code, and "code" in the --json report):
 *   line_too_long, blank_line, invalid_utf8, invalid_json, invalid_type,
 *   unknown_format, mixed_formats, wrong_method, missing_field,
 *   unknown_role, empty_content, invalid_weight, no_assistant_turn,
 *   no_trained_tokens, invalid_role_order, too_long, unknown_template,
 *   tokenization_error, empty_file, io_error
 *
 * Labels follow transformers: labels[i] = ids[i] for trained tokens and
 * FT_LABEL_IGNORE (-100) otherwise, unshifted (the loss at position i
 * predicts labels[i + 1]).
 *
 * Use from the training loop (one epoch of SFT, packed):
 *
 *   struct ft_dataset *ds;
 *   struct ft_example ex = { 0 };
 *   bool eof;
 *   if (ft_dataset_open(path, tok, NULL, &opts, &ds, &err)) goto fail;
 *   while (!(rc = ft_dataset_next(ds, FT_SPLIT_TRAIN, &ex, &eof, &err)) && !eof)
 *       ... append ex.ids / ex.labels to the rows (rows_dataset.c) ...
 *   ft_dataset_rewind(ds, &err);  // next epoch
 *
 * (ft_dataset_next reuses ex's arrays; release it once at the end.)
 *
 * Ownership: struct ft_data_row / ft_example / ft_pref_example
 * own their arrays and are emptied by their _release. A struct ft_dataset
 * borrows the tokenizer and template it was opened with.
 */
#ifndef FT_DATASET_H
#define FT_DATASET_H

#include "ft/chat.h"
#include "ft/base.h"
#include "ft/buf.h"
#include "ft/err.h"
#include "ft/json.h"
#include "ft/tokenizer.h"

#define FT_DATA_MAX_LINE ((size_t)16 << 20) /* bytes per JSONL line */
#define FT_LABEL_IGNORE (-100)

enum ft_data_format {
	FT_FMT_UNKNOWN = 0,
	FT_FMT_TEXT,
	FT_FMT_PROMPT_COMPLETION,
	FT_FMT_INSTRUCTION,
	FT_FMT_MESSAGES,
	FT_FMT_SHAREGPT,
	FT_FMT_PREFERENCE,
	FT_FMT_OPENAI_DPO,
	FT_FMT_COUNT
};
const char *ft_data_format_name(enum ft_data_format f); /* "messages", ... */
bool ft_data_format_is_preference(enum ft_data_format f);
/* The format of a parsed row by the detection table (dataset.c); FT_FMT_UNKNOWN
 * when it is not an object or has none of the keys. */
enum ft_data_format ft_data_format_detect(const json_t *row);

enum ft_data_method { FT_METHOD_AUTO = 0, FT_METHOD_SFT, FT_METHOD_DPO };
const char *ft_data_method_name(enum ft_data_method m); /* "auto", "sft", "dpo" */
/* The method a format's rows train with (AUTO for FT_FMT_UNKNOWN). */
enum ft_data_method ft_data_format_method(enum ft_data_format f);
/* Rows of format f at line `lineno` under method m (AUTO fits any):
 * "wrong_method" with the line when they do not fit. */
enum ft_rc ft_data_method_check(enum ft_data_format f, enum ft_data_method m, long lineno,
				struct ft_err *err);

/* ---- reading lines ---- */

/* A streaming JSONL line reader with a bounded line buffer. */
struct ft_jsonl_reader {
	FILE *f;
	bool own_file;
	char *chunk; /* read-ahead buffer */
	size_t chunk_pos, chunk_len;
	struct ft_buf line; /* the current line, without its "\n" / "\r\n" */
	long lineno; /* 1-based number of the current line */
	bool at_eof;
};

/* Every reader of JSONL files (datasets, pre-tokenized rows, preference
 * pairs, the API's upload check) reads through this one: lines of at most
 * FT_DATA_MAX_LINE bytes, "\r\n" or "\n" endings, a UTF-8 byte order mark
 * at the start of the file skipped. */
enum ft_rc ft_jsonl_reader_open(struct ft_jsonl_reader *r, const char *path, struct ft_err *err);
enum ft_rc ft_jsonl_reader_from_file(struct ft_jsonl_reader *r, FILE *f,
				     struct ft_err *err); /* borrows f */
enum ft_rc ft_jsonl_reader_rewind(struct ft_jsonl_reader *r, struct ft_err *err);
void ft_jsonl_reader_close(struct ft_jsonl_reader *r);
/* Only spaces, tabs and line ends (a blank line, skipped by every reader). */
bool ft_jsonl_blank(const char *s, size_t n);
/* Next line into r->line. *eof = true at the end. A line over
 * FT_DATA_MAX_LINE: FT_ELIMIT "line_too_long" with err->line set; the next
 * call goes on with the following line. A read error: FT_EIO. */
enum ft_rc ft_jsonl_reader_next(struct ft_jsonl_reader *r, bool *eof, struct ft_err *err);

/* Offset of the first byte of text that does not start or continue valid
 * UTF-8 (overlong forms, surrogates and code points past U+10FFFF are
 * invalid), or len when all is valid. */
size_t ft_data_utf8_invalid_at(const char *text, size_t len);

/* ---- one row ---- */

/* A parsed row, in a common shape. Strings borrow from json. */
struct ft_data_row {
	enum ft_data_format format;
	long line;
	json_t *json;
	/* SFT: the conversation. text -> one assistant message; prompt_completion
	 * -> user + assistant; instruction -> user (instruction), user (input, may
	 * be empty), assistant (output). raw = not a chat (no template). */
	struct ft_chat_msg *msgs;
	size_t n_msgs;
	bool raw;
	/* Preference: prompt messages (or one raw user string) and the two
	 * answers (assistant messages, or one raw string each). */
	struct ft_chat_msg *chosen, *rejected;
	size_t n_chosen, n_rejected;
};

void ft_data_row_init(struct ft_data_row *row);
void ft_data_row_release(struct ft_data_row *row);

/* Parse and check one line. *format is the file's format so far
 * (FT_FMT_UNKNOWN before the first valid row): the row must match it; it is
 * set from the row when unknown and the row is valid. Errors carry the code,
 * a message starting with "line N: " and err->line. */
enum ft_rc ft_data_row_parse(const char *line, size_t len, long lineno, enum ft_data_format *format,
			     struct ft_data_row *row, struct ft_err *err);

/* The quick check ft-api makes when a job is created, before the whole file
 * is validated: the first line that is not blank is parsed as
 * ft_data_row_parse does, and its format must fit the method (the
 * validator's "wrong_method" error, word for word, with *format set). FT_OK
 * when it fits, or when that line is not a valid row (the validator will say
 * why, as it does past 100 blank lines); FT_EIO when the stream cannot be
 * read. Reads no further than that line. */
enum ft_rc ft_data_check_first_row(FILE *f, enum ft_data_method method, enum ft_data_format *format,
				   struct ft_err *err);

/* ---- tokenized examples ---- */

struct ft_data_opts {
	const char *template_name; /* NULL: from the tokenizer's chat_template */
	enum ft_data_method method;
	size_t max_seq_len; /* 0: no limit */
	/* a row longer than max_seq_len is counted in rows_truncated (the
	 * trainer cuts it to max_seq_len) instead of being a too_long error */
	bool truncate_long;
	bool train_on_inputs;
	double val_fraction; /* 0..1: share of rows in the validation split */
	uint64_t seed;
};
void ft_data_opts_default(struct ft_data_opts *o); /* sft/auto, 2048, 0.0, seed 0 */

/* The template a dataset uses: opts->template_name, else the tokenizer's
 * chat_template recognised, else "unknown_template" listing the names.
 * BOS / EOS texts are the tokenizer's. */
enum ft_rc ft_data_template_pick(const struct ft_tokenizer *tok, const char *name,
				 struct ft_chat_template **out, struct ft_err *err);

/* An SFT example: ids and labels of equal length. */
struct ft_example {
	long line;
	struct ft_ids ids;
	struct ft_ids labels;
	size_t n_trained;
};
void ft_example_release(struct ft_example *ex);

/* A preference pair (TRL's DPO layout): prompt ids, then each answer's ids;
 * all answer tokens are trained, prompt tokens never. */
struct ft_pref_example {
	long line;
	struct ft_ids prompt, chosen, rejected;
};
void ft_pref_example_release(struct ft_pref_example *ex);
/* The sequence the DPO loss scores: prompt + chosen (or + rejected when
 * `rejected`), with labels -100 over the prompt and the ids over the answer.
 * ids and labels are reset first. */
enum ft_rc ft_pref_example_sequence(const struct ft_pref_example *ex, bool rejected,
				    struct ft_ids *ids, struct ft_ids *labels) FT_WARN_UNUSED;

/* Tokenize a parsed SFT row: render (template for chats; the table above for
 * raw rows), encode the whole text once (special tokens recognised, no
 * post-processor: BOS comes from the rendering) and label each token from
 * the segment its bytes came from (a token is trained when any of its bytes
 * is). "no_trained_tokens" when nothing is trained. */
enum ft_rc ft_data_row_tokenize(const struct ft_data_row *row, const struct ft_tokenizer *tok,
				const struct ft_chat_template *tmpl, bool train_on_inputs,
				struct ft_example *out, struct ft_err *err);
/* Tokenize a preference row: prompt rendered with the generation prompt,
 * each answer rendered after it and cut off (TRL's way), then encoded. */
enum ft_rc ft_data_row_tokenize_pref(const struct ft_data_row *row, const struct ft_tokenizer *tok,
				     const struct ft_chat_template *tmpl,
				     struct ft_pref_example *out, struct ft_err *err);

/* ---- the dataset: iterate examples of a file ---- */

enum ft_split { FT_SPLIT_TRAIN = 0, FT_SPLIT_VAL = 1 };

/* Deterministic split of the row with 0-based index `index`:
 *   h = splitmix64(seed ^ splitmix64(index)); val iff (h >> 11) * 2^-53 < fraction
 * so the same seed gives the same split whatever the order rows are read. */
enum ft_split ft_data_split(uint64_t seed, uint64_t index, double val_fraction);

struct ft_dataset;

enum ft_rc ft_dataset_open(const char *path, const struct ft_tokenizer *tok,
			   const struct ft_chat_template *tmpl, const struct ft_data_opts *opts,
			   struct ft_dataset **out, struct ft_err *err);
void ft_dataset_free(struct ft_dataset *ds);
enum ft_data_format ft_dataset_format(const struct ft_dataset *ds);
/* Next SFT example of the given split. A bad row fails with its line. */
enum ft_rc ft_dataset_next(struct ft_dataset *ds, enum ft_split split, struct ft_example *ex,
			   bool *eof, struct ft_err *err);
enum ft_rc ft_dataset_next_pref(struct ft_dataset *ds, enum ft_split split,
				struct ft_pref_example *ex, bool *eof, struct ft_err *err);
/* Start again from the first row (next epoch). */
enum ft_rc ft_dataset_rewind(struct ft_dataset *ds, struct ft_err *err);

/* ---- validation (ft-train validate, and the API's file check) ---- */

#define FT_VALIDATE_MAX_ISSUES 100
#define FT_VALIDATE_PREVIEW_ROWS 3 /* valid rows rendered as text in the report */
#define FT_VALIDATE_PREVIEW_BYTES 1024 /* per row, with its NUL */
#define FT_VALIDATE_PREVIEW_TURNS 12 /* turns of a preview row kept as turns */
#define FT_VALIDATE_TURN_BYTES 300 /* of a turn's content (cut at a character) */

/* One turn of a preview row: its label (the role, or the field of a raw
 * format; "chosen" / "rejected" for a preference row's answers) and the
 * start of its text. */
struct ft_data_turn {
	char label[16];
	char content[FT_VALIDATE_TURN_BYTES + 1];
	bool truncated;
};

/* A rough token count for figures made before any tokenizer runs (a
 * dataset's estimate of training cost): ASCII at 4 bytes per token, every
 * other character at 1.5 per token (CJK text in Llama-3- and Qwen-style
 * vocabularies). On the bundled customer-service data it is within 10 % of
 * the bundled model's tokenizer (tests/system/test_api_estimate.py). */
double ft_data_approx_tokens(const char *s, size_t n);

struct ft_data_issue {
	long line; /* 0: about the file, not a line */
	char code[32];
	char msg[512];
};

struct ft_data_report {
	enum ft_data_format format;
	enum ft_data_method method;
	char template_name[16];
	size_t max_seq_len;
	long lines;
	long rows_ok;
	long n_errors; /* all of them; issues[] holds the first ones */
	struct ft_data_issue issues[FT_VALIDATE_MAX_ISSUES];
	size_t n_issues;
	/* over valid rows */
	uint64_t tokens_total, tokens_trained;
	size_t max_len;
	long role_counts[FT_CHAT_ROLE_COUNT];
	long n_train, n_val;
	long rows_truncated; /* longer than max_seq_len, with opts->truncate_long */
	bool tokenized; /* token statistics present */
	/* characters (Unicode code points) of every text of a row: contents,
	 * text, prompt, completion, instruction, input, output, answers */
	uint64_t chars_total;
	size_t chars_max; /* of the longest row */
	/* the first valid rows as text, a "label: content" line per message or
	 * field (labels: the role, or the field of a raw format; a preference
	 * row's answers "chosen" and "rejected"); contents cut at 300 bytes and
	 * the row at FT_VALIDATE_PREVIEW_BYTES, on character boundaries, "..."
	 * marking a cut */
	char preview[FT_VALIDATE_PREVIEW_ROWS][FT_VALIDATE_PREVIEW_BYTES];
	size_t n_preview;
	/* the same rows as turns (n_turns[i] of preview row i) */
	struct ft_data_turn turns[FT_VALIDATE_PREVIEW_ROWS][FT_VALIDATE_PREVIEW_TURNS];
	size_t n_turns[FT_VALIDATE_PREVIEW_ROWS];
	/* ft_data_approx_tokens over every text of the valid rows */
	double approx_tokens;
};

/* Validate a file. tok may be NULL: then only the structure is checked (no
 * token statistics, no too_long). Returns FT_OK when the file was read
 * (check report->n_errors), FT_EIO when it could not be. */
enum ft_rc ft_data_validate(const char *path, const struct ft_tokenizer *tok,
			    const struct ft_chat_template *tmpl, const struct ft_data_opts *opts,
			    struct ft_data_report *report, struct ft_err *err);
/* The same over an open stream (fuzzing, stdin). */
enum ft_rc ft_data_validate_file(FILE *f, const struct ft_tokenizer *tok,
				 const struct ft_chat_template *tmpl,
				 const struct ft_data_opts *opts, struct ft_data_report *report,
				 struct ft_err *err);

double ft_data_report_mean_len(const struct ft_data_report *r);
double ft_data_report_mean_chars(const struct ft_data_report *r);
/* Human text and JSON renderings of a report. */
enum ft_rc ft_data_report_text(const struct ft_data_report *r, struct ft_buf *out) FT_WARN_UNUSED;
json_t *ft_data_report_json(const struct ft_data_report *r);

#endif
