/*
 * ft/evaluate.h - offline evaluation of a model on a chat JSONL file: the
 * work of `ft-train eval`, which a worker runs for an evaluation job
 * (POST /v1/evals; docs/evaluation.md, "Offline evaluation").
 *
 * The file: one conversation per line in the messages (or ShareGPT)
 * format, ending with the assistant's reference answer, optionally with
 * the facts that answer must hold:
 *
 *   {"messages": [{"role": "system", ...}, {"role": "user", ...},
 *                 {"role": "assistant", "content": REFERENCE}],
 *    "required_facts": [["30 days", "thirty days"], "¥99"]}
 *
 * A fact is a string or a list of accepted spellings (ft/textmetrics.h,
 * ft_text_facts_match). Rows are checked as the trainer checks training
 * rows (ft/dataset.h: one verdict, the same codes and line numbers), then
 * the evaluation's own rules, each error naming the line and the field.
 *
 * Per row, with the model (and its adapter):
 *   prompt      the messages before the last, rendered with the model's
 *               chat template and its generation prompt
 *   reference   the last message (an assistant message)
 *   nll, tokens the summed negative log-likelihood of the reference's tokens
 *               given the conversation before it, and their count: the row
 *               tokenized as for training with every assistant message but
 *               the last at weight 0, so the labels are the reference's
 *               tokens (and the end-of-turn the template trains)
 *   answer      the greedy answer to the prompt (at most max_new_tokens,
 *               stopping at an end-of-sequence id, special tokens dropped
 *               when decoding), as ft-train generate and ft-serve give it
 *   rouge_l     ROUGE-L of the answer against the reference
 * Over the file:
 *   perplexity  exp(sum of nll / sum of tokens)
 *   rouge_l     the mean of the rows' precision, recall and F-measure
 *   bleu        corpus BLEU of the answers against the references
 *   facts       of the rows with required facts, how many answers hold
 *               every one, the share and its Wilson 95% interval
 *
 * Options (the API's "options" of an evaluation, the spec's keys; one
 * table in evaluate.c, errors name "options.<key>"):
 *   max_new_tokens    1..4096 (256)
 *   rouge_tokenizer   "default" (rouge-score's) | "cjk" ("cjk")
 *   bleu_tokenizer    "13a" | "zh" ("zh": 13a with Chinese characters apart)
 *   max_rows          1..10000 (1000): a longer file is refused
 */
#ifndef FT_EVALUATE_H
#define FT_EVALUATE_H

#include "ft/dataset.h"
#include "ft/textmetrics.h"

#define FT_EVAL_MAX_FACTS 64 /* facts per row */
#define FT_EVAL_MAX_SPELLINGS 16 /* spellings per fact */
#define FT_EVAL_MAX_SPELLING_BYTES 1024
#define FT_EVAL_MAX_MODELS 8 /* models one evaluation compares */

struct ft_eval_opts {
	long max_new_tokens;
	enum ft_rouge_tokenizer rouge_tok;
	enum ft_bleu_tokenizer bleu_tok;
	long max_rows;
};

void ft_eval_opts_default(struct ft_eval_opts *o);
/* Read options (an object, or NULL for the defaults) into o, which is set
 * to the defaults first. Unknown keys, types, values and ranges are
 * FT_EINVAL with err->param "options.<key>". */
enum ft_rc ft_eval_opts_parse(json_t *options, struct ft_eval_opts *o, struct ft_err *err);
/* The options as JSON with every key (defaults filled in). */
json_t *ft_eval_opts_json(const struct ft_eval_opts *o);

/* One row of an evaluation file. Strings borrow from row.json. */
struct ft_eval_row {
	struct ft_data_row row;
	size_t n_prompt; /* row.msgs[0..n_prompt) are the prompt; the next, the reference */
	struct ft_text_fact *facts; /* NULL when the row has none */
	size_t n_facts;
	const char **spellings; /* the facts' spellings (FT_EVAL_MAX_SPELLINGS a fact) */
	bool has_facts; /* "required_facts" was given (maybe empty) */
};

void ft_eval_row_init(struct ft_eval_row *r);
void ft_eval_row_release(struct ft_eval_row *r);
/* Parse and check line `lineno` of an evaluation file (*format as in
 * ft_data_row_parse). Errors start with "line N: " and name the field. */
enum ft_rc ft_eval_row_parse(const char *line, size_t len, long lineno, enum ft_data_format *format,
			     struct ft_eval_row *r, struct ft_err *err);

/* A model to evaluate: a folder, and an adapter folder on it (or NULL). */
struct ft_eval_model {
	const char *name; /* as the user named it (results, messages) */
	const char *model_dir;
	const char *adapter_dir;
};

/* Called while a model is evaluated: stage "score", rows done of total
 * (after each row, and once with 0 before the first). */
typedef void (*ft_eval_progress_fn)(void *ud, const char *stage, long done, long total);

struct ft_eval_run_opts {
	const struct ft_eval_opts *opts;
	const char *device; /* NULL: cpu (ft_backend_select) */
	bool with_ids; /* rows also carry "ids" and "labels" (peer tests) */
	ft_eval_progress_fn progress;
	void *ud;
};

/* Evaluate one model on the file at path. *result gets
 *   {"metrics": {"rows", "perplexity", "nll", "tokens", "rouge_l":
 *                {"precision", "recall", "fmeasure"}, "bleu": {"score", "bp",
 *                "precisions", "sys_len", "ref_len"}, "facts": {"rows",
 *                "all_found", "share", "interval": [lo, hi]} | null,
 *                "answer_tokens"},
 *    "rows": [{"line", "reference", "answer", "answer_tokens", "nll",
 *              "tokens", "rouge_l": {...}, "facts_found": [bool] | null,
 *              "all_facts": bool | null}]}
 * FT_EINVAL / FT_EFORMAT / FT_ENOTFOUND are the input's fault (a row, the
 * model or adapter folder); anything else is not. */
enum ft_rc ft_eval_run(const char *path, const struct ft_eval_model *m,
		       const struct ft_eval_run_opts *ro, json_t **result, struct ft_err *err);

#endif
