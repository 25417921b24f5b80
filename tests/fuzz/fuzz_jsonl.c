/*
 * fuzz_jsonl.c - the JSONL dataset reader, row checks and validator
 * (ft/dataset.h) on arbitrary bytes: every line is read through the bounded
 * reader and parsed as a row; errors must carry a code, a "line N: " message
 * and the line. Then the whole input is validated with a small byte-level
 * tokenizer under the chatml and mistral templates, which tokenizes and
 * labels every valid row. Whatever the input, nothing may crash, read out of
 * bounds or leak.
 */
#include "ft/dataset.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Byte-level BPE: byte b is id b (GPT-2's printable mapping), one merge
 * "Ġ t", and the chatml / [INST] special tokens. */
static struct ft_tokenizer *tokenizer(void)
{
	static struct ft_tokenizer *tok;
	if (tok)
		return tok;
	struct ft_buf b = FT_BUF_INIT(1 << 20);
	struct ft_err err;
	unsigned n = 0;
	bool ok = ft_buf_addstr(&b,
				"{\"added_tokens\":[{\"id\":257,\"content\":\"<|im_start|>\","
				"\"special\":true,\"normalized\":false},{\"id\":258,\"content\":"
				"\"<|im_end|>\",\"special\":true,\"normalized\":false},{\"id\":259,"
				"\"content\":\"</s>\",\"special\":true,\"normalized\":false}],"
				"\"pre_tokenizer\":{\"type\":\"ByteLevel\",\"add_prefix_space\":"
				"false,\"use_regex\":true},\"decoder\":{\"type\":\"ByteLevel\"},"
				"\"model\":{\"type\":\"BPE\",\"vocab\":{") == FT_OK;
	for (unsigned x = 0; x < 256 && ok; x++) {
		bool printable = (x >= 33 && x <= 126) || (x >= 161 && x <= 172) || x >= 174;
		ok = ft_buf_addf(&b, "\"\\u%04x\":%u,", printable ? x : 256 + n++, x) == FT_OK;
	}
	ok = ok && ft_buf_addstr(&b, "\"\\u0120t\":256},\"merges\":[\"\\u0120 t\"]}}") == FT_OK;
	ft_err_clear(&err);
	FT_ASSERT(ok && ft_tokenizer_parse(b.ptr, b.len, &tok, &err) == FT_OK);
	ft_buf_release(&b);
	return tok;
}

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

	static const char *const templates[] = { "chatml", "mistral" };
	for (size_t t = 0; t < FT_ARRAY_LEN(templates); t++) {
		struct ft_data_opts o;
		struct ft_data_report *rep = ft_xcalloc(1, sizeof(*rep));
		ft_data_opts_default(&o);
		o.template_name = templates[t];
		o.max_seq_len = 64;
		o.val_fraction = 0.5;
		o.train_on_inputs = t == 1;
		f = fmemopen((void *)(uintptr_t)data, size, "rb");
		FT_ASSERT(f);
		ft_err_clear(&err);
		FT_ASSERT(ft_data_validate_file(f, tokenizer(), NULL, &o, rep, &err) == FT_OK);
		FT_ASSERT(rep->rows_ok + rep->n_errors >= rep->lines);
		FT_ASSERT(rep->tokens_trained <= rep->tokens_total);
		FT_ASSERT(rep->n_train + rep->n_val == rep->rows_ok);
		fclose(f);
		free(rep);
	}
	return 0;
}
