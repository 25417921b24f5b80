/*
 * ft/generate.h - generation from a model (greedy or temperature / top-p
 * sampling) with a KV cache; stops at an end-of-sequence id of the config or
 * after max_new_tokens.
 */
#ifndef FT_GENERATE_H
#define FT_GENERATE_H

#include "ft/model.h"

struct ft_gen_opts {
	int max_new_tokens;
	double temperature; /* 0: greedy */
	double top_p; /* 1: no nucleus cut */
	uint64_t seed;
};

struct ft_ids_out {
	int32_t *ids; /* malloc'd, caller frees */
	size_t n;
};

enum ft_rc ft_generate(struct ft_model *m, const int32_t *prompt, size_t n_prompt,
		       const struct ft_gen_opts *o, struct ft_ids_out *out, struct ft_err *err);

#endif
