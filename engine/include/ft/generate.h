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

/* Many prompts at once (one KV cache slot each): out[i] for p[i], exactly
 * what ft_generate gives for p[i] alone with seed o->seed + i.
 * adapter: per prompt, the adapter slot of its rows as in struct ft_step
 * (-1: the base alone, 0: the own adapter, 1..: serving slots), or NULL:
 * every row uses the own adapter while enabled. max_batch > 0: at most that
 * many sequences in the cache at once (waves, in order); 0: all. On error
 * every out[i] is empty. */
struct ft_gen_prompt {
	const int32_t *ids;
	size_t n;
};
enum ft_rc ft_generate_batch(struct ft_model *m, const struct ft_gen_prompt *p, size_t n,
			     const int32_t *adapter, int max_batch, const struct ft_gen_opts *o,
			     struct ft_ids_out *out, struct ft_err *err);

#endif
