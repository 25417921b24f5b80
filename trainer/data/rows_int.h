/*
 * rows_int.h - pre-tokenized training rows (rows.c) and the micro-batches
 * built from them.
 *
 * Input, one JSON object per line (blank lines are skipped):
 *   {"input_ids": [1, 5, 9, ...], "labels": [-100, 5, 9, ...]}
 * "labels" is optional (default: the input ids) and, as in transformers, is
 * aligned with input_ids: the token at t+1 is predicted at t, -100 is not
 * trained. "attention_mask" is accepted and must be all ones.
 *
 * Units: without packing, a unit is one row (truncated to max_len); with
 * packing, consecutive rows are packed greedily into units of at most max_len
 * tokens, each row its own document (positions restart, attention stays
 * inside it, the last token of a row predicts nothing).
 */
#ifndef FT_ROWS_INT_H
#define FT_ROWS_INT_H

#include "ft/model.h"

struct ft_rows {
	int32_t *ids, *labels; /* all rows back to back */
	size_t *off; /* row i is [off[i], off[i+1]) */
	size_t n; /* rows */
	size_t *unit_first; /* unit u covers rows [unit_first[u], unit_first[u+1]) */
	size_t n_units;
	int max_len;
};

/* Read a JSONL file; ids must be in [0, vocab). Rows longer than max_len
 * are truncated. */
enum ft_rc ft_rows_load(const char *path, int vocab, int max_len, bool packing,
			struct ft_rows *rows, struct ft_err *err);
/* The same from memory (fuzzing); name is used in messages. */
enum ft_rc ft_rows_parse(const char *data, size_t len, const char *name, int vocab, int max_len,
			 bool packing, struct ft_rows *rows, struct ft_err *err);
/* Rows from a chat / instruction / text JSONL file through the dataset
 * pipeline (rows_dataset.c): tokenizer and chat template of model_dir
 * (template_name NULL: the tokenizer's own). */
enum ft_rc ft_rows_load_dataset(const char *path, const char *model_dir, const char *template_name,
				int vocab, int max_len, bool packing, struct ft_rows *rows,
				struct ft_err *err);
/* True when the file's first non-blank line is a pre-tokenized row
 * (has "input_ids"). */
bool ft_rows_is_pretokenized(const char *path);
/* The first non-blank line of a JSONL file parsed (NULL when there is none
 * or it is not JSON); *opened says whether the file could be opened. */
json_t *ft_rows_first_row(const char *path, bool *opened);
void ft_rows_release(struct ft_rows *rows);
/* (Re)build the units from the rows (greedy packing in row order into
 * max_len tokens, or one unit per row). */
enum ft_rc ft_rows_make_units(struct ft_rows *rows, bool packing, struct ft_err *err);

/* A micro-batch of B units padded to the longest (T <= max_len). */
struct ft_mbatch {
	struct ft_batch b;
	int32_t *ids, *targets, *pos, *doc;
	long n_tokens; /* non-padding tokens */
	long n_trained; /* targets != -100 */
};

/* Build the micro-batch of the units order[0..count) (count <= B; the
 * batch has count rows). Reuses mb's memory. */
void ft_mbatch_build(struct ft_mbatch *mb, const struct ft_rows *rows, const size_t *order,
		     int count);
/* Trained tokens of those units, without building. */
long ft_rows_trained(const struct ft_rows *rows, const size_t *order, int count);
void ft_mbatch_release(struct ft_mbatch *mb);

#endif
