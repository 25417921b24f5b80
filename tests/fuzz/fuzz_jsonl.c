/*
 * fuzz_jsonl.c - the JSONL dataset reader and row checks (ft/dataset.h) on
 * arbitrary bytes: every line is read through the bounded reader and parsed
 * as a row; errors must carry a code, a "line N: " message and the line.
 * Whatever the input, nothing may crash, read out of bounds or leak.
 */
#include "ft/dataset.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	FILE *f = fmemopen((void *)(uintptr_t)data, size, "rb");
	if (!f)
		return 0;
	struct ft_jsonl_reader r;
	struct ft_data_row row;
	enum ft_data_format fmt = FT_FMT_UNKNOWN;
	struct ft_err err;
	ft_err_clear(&err);
	if (ft_jsonl_reader_from_file(&r, f, &err)) {
		fclose(f);
		return 0;
	}
	ft_data_row_init(&row);
	for (;;) {
		bool eof;
		ft_err_clear(&err);
		enum ft_rc rc = ft_jsonl_reader_next(&r, &eof, &err);
		if (rc == FT_ELIMIT)
			continue;
		if (rc || eof)
			break;
		ft_err_clear(&err);
		if (ft_data_row_parse(r.line.ptr ? r.line.ptr : "", r.line.len, r.lineno, &fmt,
				      &row, &err)) {
			FT_ASSERT(err.code[0] != '\0');
			FT_ASSERT(err.line == r.lineno);
			FT_ASSERT(strncmp(err.msg, "line ", 5) == 0);
		} else {
			FT_ASSERT(row.format == fmt);
			for (size_t i = 0; i < row.n_msgs; i++)
				FT_ASSERT((unsigned)row.msgs[i].role < FT_CHAT_ROLE_COUNT);
		}
	}
	ft_data_row_release(&row);
	ft_jsonl_reader_close(&r);
	fclose(f);
	return 0;
}
