/*
 * split.c - the seeded train/validation split of a data file, by row index:
 *   h = splitmix64(seed ^ splitmix64(index)); validation when the top 53
 *   bits of h, as a fraction of 2^53, are below val_fraction.
 * The same seed gives the same split whatever order rows are read in; the
 * validator, the dataset reader and the API's statistics all call this.
 */
#include "ft/dataset.h"
#include "ft/rng.h"

enum ft_split ft_data_split(uint64_t seed, uint64_t index, double val_fraction)
{
	uint64_t h = ft_splitmix64(seed ^ ft_splitmix64(index));
	double u = (double)(h >> 11) * (1.0 / 9007199254740992.0);
	return u < val_fraction ? FT_SPLIT_VAL : FT_SPLIT_TRAIN;
}
