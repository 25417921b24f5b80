/*
 * engine_int.h - private declarations shared by the trainer engine: the
 * model (model.c), LoRA (lora.c), the loop (train.c), checkpoints and the
 * CPU backend's helpers that are not ops of struct ft_backend.
 */
#ifndef FT_ENGINE_INT_H
#define FT_ENGINE_INT_H

#include "ft/backend.h"
#include "ft/model_config.h"

/* RoPE frequency parameters (from struct ft_model_config). */
struct ft_rope_params {
	enum ft_rope_type type;
	double theta, factor, low_freq_factor, high_freq_factor;
	int original_max_pos;
};

/* rope.c: inv_freq[hd/2]; cos/sin tables [max_pos][hd/2]. */
void ft_rope_inv_freq(float *inv_freq, int hd, const struct ft_rope_params *rp);
void ft_rope_tables(float *cos_t, float *sin_t, int max_pos, int hd,
		    const struct ft_rope_params *rp);

/* devmem.c: host views of backend memory (the rules in ft/backend.h).
 * ft_dev_map gives a host pointer to bytes at dev: dev itself on a
 * host-memory backend (no copy), else a malloc'd staging copy, downloaded
 * when fetch. NULL only when out of memory. ft_dev_unmap ends the view:
 * uploads the copy when store, then frees it (nothing on the CPU). */
void *ft_dev_map(const struct ft_backend *be, void *dev, size_t bytes, bool fetch);
void ft_dev_unmap(const struct ft_backend *be, void *dev, void *host, size_t bytes, bool store);
/* alloc + zero; NULL when out of memory. */
void *ft_dev_calloc(const struct ft_backend *be, size_t bytes);

#endif
