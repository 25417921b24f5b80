/*
 * fuzz_nf4_state.c - the quant_state JSON of a bitsandbytes 4-bit weight
 * (NAME.quant_state.bitsandbytes__nf4) on arbitrary bytes. A state that
 * parses must write back (ft_nf4_state_json) and parse to the same fields.
 */
#include "ft/nf4.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ft_nf4_state st, back;
	struct ft_err err;
	ft_err_clear(&err);
	if (ft_nf4_state_parse((const char *)data, size, &st, &err) != FT_OK) {
		FT_ASSERT(err.msg[0]);
		return 0;
	}
	struct ft_nf4 q = { .rows = st.rows,
			    .cols = st.cols,
			    .nested = st.nested,
			    .src_dtype = st.dtype,
			    .offset = st.offset };
	struct ft_buf b = FT_BUF_INIT(1 << 16);
	FT_ASSERT(ft_nf4_state_json(&q, &b) == FT_OK);
	FT_ASSERT(ft_nf4_state_parse(b.ptr, b.len, &back, &err) == FT_OK);
	FT_ASSERT(back.rows == st.rows && back.cols == st.cols && back.nested == st.nested &&
		  back.dtype == st.dtype);
	FT_ASSERT(!st.nested || back.offset == st.offset || (back.offset != back.offset));
	ft_buf_release(&b);
	return 0;
}
