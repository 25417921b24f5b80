/*
 * test_packing.c - best-fit decreasing packing and the seeded split
 * (ft/dataset.h), against arrays worked out by hand (the placements are
 * traced in the comments) and SplitMix64's published first output.
 */
#include "ft/dataset.h"
#include "ftest.h"

#define CHECK_ARR(got, ...)                                                                        \
	do {                                                                                       \
		const int32_t want_[] = { __VA_ARGS__ };                                           \
		for (size_t i_ = 0; i_ < FT_ARRAY_LEN(want_); i_++)                                \
			if ((got)[i_] != want_[i_]) {                                              \
				fprintf(stderr, "index %zu: got %d want %d\n", i_, (int)(got)[i_], \
					(int)want_[i_]);                                           \
				FT_CHECK(!"array differs");                                        \
			}                                                                          \
	} while (0)

static const int32_t d0[] = { 1, 2, 3 }, l0[] = { -100, 2, 3 };
static const int32_t d1[] = { 4, 5, 6, 7, 8 };
static const int32_t d2[] = { 9, 10 }, l2[] = { -100, 10 };
static const int32_t d3[] = { 11, 12, 13, 14, 15, 16, 17, 18, 19, 20 };
static const int32_t d4[] = { 21 };

static const struct ft_pack_doc docs[] = {
	{ d0, l0, 3, 1 },    { d1, NULL, 5, 2 }, { d2, l2, 2, 3 },
	{ d3, NULL, 10, 4 }, { d4, NULL, 1, 5 },
};

FT_TEST(bfd_hand_example)
{
	/* row_len 8; by length: d3 (10 -> cut to 8), d1 (5), d0 (3), d2 (2), d4 (1).
	 * d3 -> row 0 (full); d1 -> row 1 (room 3); d0 -> row 1 (room 0);
	 * d2 -> row 2 (room 6); d4 -> row 2 (room 5). */
	struct ft_packed p;
	struct ft_err err;
	ft_err_clear(&err);
	FT_CHECK(ft_pack_bfd(docs, 5, 8, 0, FT_PACK_TRUNCATE, &p, &err) == FT_OK);
	FT_CHECK_INT(p.n_rows, 3);
	FT_CHECK_INT(p.row_len, 8);
	FT_CHECK_INT(p.n_truncated, 1);
	FT_CHECK_INT(p.tokens_dropped, 2);
	FT_CHECK_INT(p.n_pad, 5);
	CHECK_ARR(p.input_ids, 11, 12, 13, 14, 15, 16, 17, 18, /**/ 4, 5, 6, 7, 8, 1, 2, 3, /**/ 9,
		  10, 21, 0, 0, 0, 0, 0);
	CHECK_ARR(p.labels, -100, 12, 13, 14, 15, 16, 17, 18, /**/ -100, 5, 6, 7, 8, -100, 2, 3,
		  /**/ -100, 10, -100, -100, -100, -100, -100, -100);
	CHECK_ARR(p.position_ids, 0, 1, 2, 3, 4, 5, 6, 7, /**/ 0, 1, 2, 3, 4, 0, 1, 2, /**/ 0, 1, 0,
		  0, 0, 0, 0, 0);
	CHECK_ARR(p.doc_ids, 0, 0, 0, 0, 0, 0, 0, 0, /**/ 0, 0, 0, 0, 0, 1, 1, 1, /**/ 0, 0, 1, -1,
		  -1, -1, -1, -1);
	ft_packed_release(&p);
}

FT_TEST(bfd_picks_tightest_row_not_first)
{
	/* row_len 10, lengths 1, 3, 6, 8 (input order). By length: 8 -> row 0
	 * (room 2); 6 -> row 1 (room 4); 3 -> row 1 (room 1); 1 fits row 0
	 * (room 2) and row 1 (room 1): best fit takes row 1 (first fit would
	 * take row 0). */
	static const int32_t a[] = { 1 }, b[] = { 3, 3, 3 }, c[] = { 6, 6, 6, 6, 6, 6 },
			     d[] = { 8, 8, 8, 8, 8, 8, 8, 8 };
	const struct ft_pack_doc ds[] = {
		{ a, NULL, 1, 1 }, { b, NULL, 3, 2 }, { c, NULL, 6, 3 }, { d, NULL, 8, 4 }
	};
	struct ft_packed p;
	struct ft_err err;
	ft_err_clear(&err);
	FT_CHECK(ft_pack_bfd(ds, 4, 10, -1, FT_PACK_TRUNCATE, &p, &err) == FT_OK);
	FT_CHECK_INT(p.n_rows, 2);
	FT_CHECK_INT(p.n_pad, 2);
	CHECK_ARR(p.input_ids, 8, 8, 8, 8, 8, 8, 8, 8, -1, -1, /**/ 6, 6, 6, 6, 6, 6, 3, 3, 3, 1);
	CHECK_ARR(p.doc_ids, 0, 0, 0, 0, 0, 0, 0, 0, -1, -1, /**/ 0, 0, 0, 0, 0, 0, 1, 1, 1, 2);
	CHECK_ARR(p.position_ids, 0, 1, 2, 3, 4, 5, 6, 7, 0, 0, /**/ 0, 1, 2, 3, 4, 5, 0, 1, 2, 0);
	CHECK_ARR(p.labels, -100, 8, 8, 8, 8, 8, 8, 8, -100, -100, /**/ -100, 6, 6, 6, 6, 6, -100,
		  3, 3, -100);
	ft_packed_release(&p);
}

FT_TEST(bfd_reject_names_line)
{
	struct ft_packed p;
	struct ft_err err;
	ft_err_clear(&err);
	FT_CHECK(ft_pack_bfd(docs, 5, 8, 0, FT_PACK_REJECT, &p, &err) == FT_EINVAL);
	FT_CHECK_STR(err.code, "too_long");
	FT_CHECK_STR(err.msg, "line 4: 10 tokens, longer than the limit of 8");
	FT_CHECK_INT(err.line, 4);
	FT_CHECK(p.input_ids == NULL);
}

/* The rule written out the slow way: longest first (stable), into the open
 * row with the least room that fits (earliest on ties), else a new row. */
static void naive_bfd(const size_t *len, size_t n, size_t row_len, size_t *row_of, size_t *n_rows)
{
	size_t *used = ft_xcalloc(n + 1, sizeof(*used));
	bool *done = ft_xcalloc(n + 1, sizeof(*done));
	*n_rows = 0;
	for (size_t k = 0; k < n; k++) {
		size_t pick = SIZE_MAX;
		for (size_t i = 0; i < n; i++) /* longest remaining, first in input order */
			if (!done[i] && (pick == SIZE_MAX || len[i] > len[pick]))
				pick = i;
		done[pick] = true;
		size_t best = SIZE_MAX;
		for (size_t r = 0; r < *n_rows; r++)
			if (row_len - used[r] >= len[pick] &&
			    (best == SIZE_MAX || used[r] > used[best]))
				best = r;
		if (best == SIZE_MAX)
			best = (*n_rows)++;
		used[best] += len[pick];
		row_of[pick] = best;
	}
	free(used);
	free(done);
}

FT_TEST(bfd_random_against_the_slow_rule)
{
	uint64_t rng = 12345;
	for (int trial = 0; trial < 200; trial++) {
		size_t n = 1 + (size_t)(ft_splitmix64(rng++) % 60);
		size_t row_len = 4 + (size_t)(ft_splitmix64(rng++) % 40);
		size_t *len = ft_xcalloc(n, sizeof(*len)), *want = ft_xcalloc(n, sizeof(*want));
		struct ft_pack_doc *rdocs = ft_xcalloc(n, sizeof(*rdocs));
		int32_t *ids = ft_xcalloc(n * row_len, sizeof(*ids));
		for (size_t i = 0; i < n; i++) {
			len[i] = 1 + (size_t)(ft_splitmix64(rng++) % row_len);
			for (size_t t = 0; t < len[i]; t++)
				ids[i * row_len + t] = (int32_t)(i * 1000 + t);
			rdocs[i] = (struct ft_pack_doc){ ids + i * row_len, NULL, len[i],
							 (long)i + 1 };
		}
		size_t want_rows;
		naive_bfd(len, n, row_len, want, &want_rows);
		struct ft_packed p;
		struct ft_err err;
		ft_err_clear(&err);
		FT_CHECK(ft_pack_bfd(rdocs, n, row_len, -1, FT_PACK_REJECT, &p, &err) == FT_OK);
		FT_CHECK_INT(p.n_rows, want_rows);
		size_t pad = p.n_rows * row_len;
		for (size_t i = 0; i < n; i++) {
			/* document i sits whole in row want[i], positions 0.., one doc id */
			const int32_t *row = p.input_ids + want[i] * row_len;
			size_t at = 0;
			while (at < row_len && row[at] != (int32_t)(i * 1000))
				at++;
			FT_CHECK(at + len[i] <= row_len);
			int32_t doc = p.doc_ids[want[i] * row_len + at];
			FT_CHECK(doc >= 0);
			for (size_t t = 0; t < len[i]; t++) {
				size_t j = want[i] * row_len + at + t;
				FT_CHECK(p.input_ids[j] == (int32_t)(i * 1000 + t));
				FT_CHECK(p.position_ids[j] == (int32_t)t);
				FT_CHECK(p.doc_ids[j] == doc);
				FT_CHECK(p.labels[j] == (t == 0 ? -100 : (int32_t)(i * 1000 + t)));
			}
			pad -= len[i];
		}
		FT_CHECK_INT(p.n_pad, pad);
		ft_packed_release(&p);
		free(len);
		free(want);
		free(rdocs);
		free(ids);
	}
}

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
