/*
 * rng.c - the trainer's one random number generator: xoshiro256** (Blackman
 * and Vigna), seeded through splitmix64.
 *
 * One job seed drives everything random, each use from its own stream so
 * that changing one (say, the data order) never shifts another:
 *   stream = ft_rng_derive(seed, purpose, index)
 *     purpose FT_RNG_LORA_INIT   index 0          LoRA A matrices, in table order
 *     purpose FT_RNG_SHUFFLE     index epoch      data order of that epoch
 *     purpose FT_RNG_DROPOUT     index micro-step dropout masks of that forward
 * The state is four u64 words and is saved in checkpoints.
 */
#include "ft/rng.h"

#include <math.h>

uint64_t ft_splitmix64(uint64_t x)
{
	uint64_t z = x + 0x9e3779b97f4a7c15ull;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* One step of the splitmix64 generator: advance the state, mix it. */
static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = ft_splitmix64(*x);
	*x += 0x9e3779b97f4a7c15ull;
	return z;
}

void ft_rng_seed(struct ft_rng *r, uint64_t seed)
{
	uint64_t x = seed;
	for (int i = 0; i < 4; i++)
		r->s[i] = splitmix64(&x);
}

static inline uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

uint64_t ft_rng_u64(struct ft_rng *r)
{
	uint64_t *s = r->s;
	uint64_t result = rotl(s[1] * 5, 7) * 9;
	uint64_t t = s[1] << 17;
	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return result;
}

double ft_rng_uniform(struct ft_rng *r)
{
	return (double)(ft_rng_u64(r) >> 11) * 0x1.0p-53;
}

uint64_t ft_rng_below(struct ft_rng *r, uint64_t n)
{
	/* Lemire's multiply-shift with rejection: unbiased. */
	uint64_t x = ft_rng_u64(r);
	__uint128_t m = (__uint128_t)x * n;
	uint64_t l = (uint64_t)m;
	if (l < n) {
		uint64_t t = -n % n;
		while (l < t) {
			x = ft_rng_u64(r);
			m = (__uint128_t)x * n;
			l = (uint64_t)m;
		}
	}
	return (uint64_t)(m >> 64);
}

uint64_t ft_rng_derive(uint64_t seed, uint64_t purpose, uint64_t index)
{
	uint64_t x = seed ^ (purpose * 0xd1b54a32d192ed03ull);
	uint64_t a = splitmix64(&x);
	x = a ^ (index * 0x8cb92ba72f3d8dd7ull);
	return splitmix64(&x);
}

double ft_rng_normal(struct ft_rng *r)
{
	double u1 = ft_rng_uniform(r);
	double u2 = ft_rng_uniform(r);
	return sqrt(-2.0 * log(1.0 - u1)) * cos(2.0 * M_PI * u2);
}
