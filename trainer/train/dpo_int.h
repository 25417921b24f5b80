/*
 * dpo_int.h - Direct Preference Optimization (dpo.c): the preference pairs
 * a DPO job trains on, and trl's sigmoid loss with its metrics.
 *
 * Pairs are stored as struct ft_rows (rows_int.h) without packing: row 2i is
 * pair i's prompt + chosen answer, row 2i+1 its prompt + rejected answer,
 * labels -100 over the prompt and the ids over the answer (TRL's layout).
 * Each sequence is truncated to max_len keeping its start (TRL's
 * "keep_start").
 *
 * Input, one JSON object per line: any preference format of the dataset
 * pipeline (ft/dataset.h: "prompt"/"chosen"/"rejected", OpenAI's DPO
 * format) through the model's tokenizer and chat template, or the
 * pre-tokenized pairs TRL's tokenized datasets hold:
 *   {"prompt_ids": [1, 5, 9], "chosen_ids": [7, 2], "rejected_ids": [8, 8, 2]}
 * picked when the first non-blank line has "prompt_ids". prompt_ids must
 * hold at least one token (the first answer token is predicted from it),
 * the answers at least one each; ids are in [0, vocab).
 */
#ifndef FT_DPO_INT_H
#define FT_DPO_INT_H

#include "../data/rows_int.h"

/* Sums over pairs of the loss and trl's metrics; divide by n for means. */
struct ft_dpo_sums {
	double loss; /* -(1-ls) logsigmoid(z) - ls logsigmoid(-z) */
	double reward_chosen, reward_rejected; /* beta (pi - ref) */
	double correct; /* pairs with reward_chosen > reward_rejected */
	double margin; /* reward_chosen - reward_rejected */
	double logp_chosen, logp_rejected; /* pi */
	long n; /* pairs */
};

/* The DPO metric means of sums: loss, rewards/chosen, rewards/rejected,
 * rewards/accuracies, rewards/margins, logps/chosen, logps/rejected (NaN
 * when n is 0). */
struct ft_dpo_metrics {
	double loss, chosen, rejected, accuracy, margin, logp_chosen, logp_rejected;
};
void ft_dpo_metrics(const struct ft_dpo_sums *s, struct ft_dpo_metrics *out);

/* For n pairs with policy log-probs pi_c, pi_r and reference ref_c, ref_r
 * (sums over answer tokens): adds each pair's loss and metrics to *sums
 * and, when coef is not NULL, writes d (scale * loss_i) / d pi into
 * coef[i] (chosen) and coef[n + i] (rejected). */
void ft_dpo_pairs(const double *pi_c, const double *pi_r, const double *ref_c, const double *ref_r,
		  int n, double beta, double label_smoothing, double scale, double *coef,
		  struct ft_dpo_sums *sums);

/* Read pairs: pre-tokenized or through the dataset pipeline (above). */
enum ft_rc ft_pairs_load(const char *path, const char *model_dir, const char *template_name,
			 int vocab, int max_len, struct ft_rows *rows, struct ft_err *err);
/* The same from memory for pre-tokenized pairs (tests, fuzzing). */
enum ft_rc ft_pairs_parse(const char *data, size_t len, const char *name, int vocab, int max_len,
			  struct ft_rows *rows, struct ft_err *err);
/* Pairs in rows (rows->n / 2). */
size_t ft_pairs_count(const struct ft_rows *rows);

#endif
