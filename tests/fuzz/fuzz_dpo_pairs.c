/*
 * fuzz_dpo_pairs.c - the pre-tokenized preference pairs reader (dpo.c) on
 * arbitrary bytes (vocab 50, max length 16): never crashes, a rejected file
 * always says why and on which line, and an accepted one holds two rows per
 * pair whose micro-batch (chosen rows, then rejected rows) stays inside the
 * vocabulary with the prompt never trained.
 */
#include "../../trainer/train/dpo_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ft_rows r;
	struct ft_err err;
	ft_err_clear(&err);
	if (ft_pairs_parse((const char *)data, size, "fuzz.jsonl", 50, 16, &r, &err) != FT_OK) {
		FT_ASSERT(err.msg[0]);
		return 0;
	}
	FT_ASSERT(r.n % 2 == 0 && ft_pairs_count(&r) > 0 && r.n_units == r.n);
	struct ft_mbatch mb = { 0 };
	for (size_t p = 0; p < ft_pairs_count(&r); p++) {
		size_t rows[2] = { 2 * p, 2 * p + 1 };
		ft_mbatch_build(&mb, &r, rows, 2);
		FT_ASSERT(mb.b.B == 2 && mb.b.T <= 16);
		for (int i = 0; i < 2 * mb.b.T; i++)
			FT_ASSERT(mb.ids[i] >= 0 && mb.ids[i] < 50 &&
				  (mb.targets[i] == -100 ||
				   (mb.targets[i] >= 0 && mb.targets[i] < 50)));
		/* the first token is always prompt: it is never a target */
		FT_ASSERT(r.labels[r.off[2 * p]] == -100 && r.labels[r.off[2 * p + 1]] == -100);
	}
	ft_mbatch_release(&mb);
	ft_rows_release(&r);
	return 0;
}
