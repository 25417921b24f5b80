/*
 * fuzz_eval_rows.c - the evaluation file's rows and options (ft/evaluate.h)
 * on arbitrary bytes: every line is read through the bounded JSONL reader
 * and parsed as an evaluation row (a refusal must carry a code, a "line N: "
 * message and the line); the facts of an accepted row are matched against
 * its own reference answer; the line is also read as an "options" object.
 * Whatever the input, nothing may crash, read out of bounds or leak.
 */
#include "ft/evaluate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	FILE *f = fmemopen((void *)(uintptr_t)data, size ? size : 1, "rb");
	if (!f)
		return 0;
	if (size == 0) {
		fclose(f);
		return 0;
	}
	struct ft_jsonl_reader rd;
	struct ft_err err;
	struct ft_eval_row r;
	enum ft_data_format fmt = FT_FMT_UNKNOWN;
	bool eof = false;
	ft_err_clear(&err);
	if (ft_jsonl_reader_from_file(&rd, f, &err)) {
		fclose(f);
		return 0;
	}
	ft_eval_row_init(&r);
	for (int lines = 0; lines < 64; lines++) {
		ft_err_clear(&err);
		if (ft_jsonl_reader_next(&rd, &eof, &err)) {
			if (err.rc != FT_ELIMIT)
				break;
			continue;
		}
		if (eof)
			break;
		ft_err_clear(&err);
		if (ft_eval_row_parse(ft_buf_str(&rd.line), rd.line.len, rd.lineno, &fmt, &r,
				      &err) == FT_OK) {
			const struct ft_chat_msg *ref = &r.row.msgs[r.n_prompt];
			char *answer = strndup(ref->content, ref->len);
			bool found[FT_EVAL_MAX_FACTS];
			size_t n_found = 0;
			if (answer && r.n_facts)
				(void)ft_text_facts_match(answer, r.facts, r.n_facts, found,
							  &n_found, &err);
			free(answer);
		} else {
			FT_ASSERT(err.code[0] && err.line == rd.lineno &&
				  strncmp(err.msg, "line ", 5) == 0);
		}
		json_t *o = json_loadb(ft_buf_str(&rd.line), rd.line.len, 0, NULL);
		struct ft_eval_opts eo;
		ft_err_clear(&err);
		if (o && ft_eval_opts_parse(o, &eo, &err) != FT_OK)
			FT_ASSERT(strncmp(err.param, "options", 7) == 0);
		json_decref(o);
	}
	ft_eval_row_release(&r);
	ft_jsonl_reader_close(&rd);
	fclose(f);
	return 0;
}
