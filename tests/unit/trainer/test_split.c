/*
 * test_split.c - the seeded train/validation split (ft/dataset.h) against
 * SplitMix64's published first output and the formula computed in Python.
 */
#include "ft/dataset.h"
#include "ft/rng.h"
#include "ftest.h"

FT_TEST(split_is_seeded_splitmix)
{
	/* SplitMix64's first output from state 0 */
	FT_CHECK(ft_splitmix64(0) == 0xe220a8397b1dcdafULL);
	/* validation rows for seeds 42 and 7, fraction 0.3, indices 0..19, from
	 * the formula in dataset.h computed in Python */
	const char *want42 = "ttvvttvttvvvvtvvttvt", *want7 = "ttvtvtvvtttvtttttttv";
	for (uint64_t i = 0; i < 20; i++) {
		FT_CHECK((ft_data_split(42, i, 0.3) == FT_SPLIT_VAL) == (want42[i] == 'v'));
		FT_CHECK((ft_data_split(7, i, 0.3) == FT_SPLIT_VAL) == (want7[i] == 'v'));
		FT_CHECK(ft_data_split(42, i, 0.0) == FT_SPLIT_TRAIN);
		FT_CHECK(ft_data_split(42, i, 1.0) == FT_SPLIT_VAL);
	}
}

FT_TEST_MAIN()
