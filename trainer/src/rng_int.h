/*
 * rng_int.h - xoshiro256** seeded with splitmix64; see rng.c for how one
 * job seed is split into independent streams.
 */
#ifndef FT_RNG_INT_H
#define FT_RNG_INT_H

#include "ft/base.h"

enum ft_rng_purpose { FT_RNG_LORA_INIT = 1, FT_RNG_SHUFFLE = 2, FT_RNG_DROPOUT = 3 };

struct ft_rng {
	uint64_t s[4];
};

void ft_rng_seed(struct ft_rng *r, uint64_t seed);
uint64_t ft_rng_u64(struct ft_rng *r);
double ft_rng_uniform(struct ft_rng *r); /* [0, 1), 53 bits */
uint64_t ft_rng_below(struct ft_rng *r, uint64_t n); /* [0, n), unbiased */
/* The seed of stream (purpose, index) of a job seed. */
uint64_t ft_rng_derive(uint64_t seed, uint64_t purpose, uint64_t index);

#endif
