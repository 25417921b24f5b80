/*
 * ft/rng.h - the one random number generator of ftplat: xoshiro256**
 * seeded with splitmix64; see rng.c for how one job seed is split into
 * independent streams. Every process that draws (the trainer's data order,
 * LoRA init and dropout; the dataset split; generation's sampling) uses it.
 */
#ifndef FT_RNG_H
#define FT_RNG_H

#include "ft/base.h"

enum ft_rng_purpose { FT_RNG_LORA_INIT = 1, FT_RNG_SHUFFLE = 2, FT_RNG_DROPOUT = 3 };

struct ft_rng {
	uint64_t s[4];
};

void ft_rng_seed(struct ft_rng *r, uint64_t seed);
uint64_t ft_rng_u64(struct ft_rng *r);
double ft_rng_uniform(struct ft_rng *r); /* [0, 1), 53 bits */
uint64_t ft_rng_below(struct ft_rng *r, uint64_t n); /* [0, n), unbiased: Lemire's
							 * multiply-shift with rejection */
/* A standard normal draw, Box-Muller on two uniforms u1, u2:
 * sqrt(-2 ln(1 - u1)) cos(2 pi u2) (simulations). */
double ft_rng_normal(struct ft_rng *r);
/* The seed of stream (purpose, index) of a job seed. */
uint64_t ft_rng_derive(uint64_t seed, uint64_t purpose, uint64_t index);

/* splitmix64's output function of x (one step from state x). */
uint64_t ft_splitmix64(uint64_t x);

#endif
