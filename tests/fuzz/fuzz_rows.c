/*
 * fuzz_rows.c - the pre-tokenized JSONL rows reader on arbitrary bytes (vocab
 * 50, max length 16, with and without packing): never crashes, a rejected
 * file always says why and on which line, and an accepted one builds
 * batches whose ids are all inside the vocabulary.
 */
#include "../../trainer/data/rows_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	for (int packing = 0; packing < 2; packing++) {
		struct ft_rows r;
		struct ft_err err;
		ft_err_clear(&err);
		if (ft_rows_parse((const char *)data, size, "fuzz.jsonl", 50, 16, packing, &r,
				  &err) != FT_OK) {
			FT_ASSERT(err.msg[0]);
			continue;
		}
		struct ft_mbatch mb = { 0 };
		for (size_t u = 0; u < r.n_units; u++) {
			ft_mbatch_build(&mb, &r, &u, 1);
			FT_ASSERT(mb.b.T <= 16);
			for (int i = 0; i < mb.b.T; i++)
				FT_ASSERT(mb.ids[i] >= 0 && mb.ids[i] < 50 &&
					  (mb.targets[i] == -100 ||
					   (mb.targets[i] >= 0 && mb.targets[i] < 50)));
		}
		ft_mbatch_release(&mb);
		ft_rows_release(&r);
	}
	return 0;
}
