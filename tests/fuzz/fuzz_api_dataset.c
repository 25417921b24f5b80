/*
 * fuzz_api_dataset.c - ft-api's validation of uploaded data (ft/api.h: the
 * adapter over ftdata's validator) on arbitrary bytes: as a dataset (any
 * format, structure only) and as a job's file (each method, with a small
 * byte-level tokenizer, the chatml template and a short max_seq_len, so the
 * token checks run too). It must never crash, read out of bounds or leak,
 * and must always give a report that serializes, whose error list matches
 * its count and whose lines are null or positive.
 */
#include "ft/api.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Byte b is token b (GPT-2's printable mapping), plus the chatml tokens. */
static struct ft_tokenizer *tokenizer(void)
{
	static struct ft_tokenizer *tok;
	if (tok)
		return tok;
	struct ft_buf b = FT_BUF_INIT(1 << 20);
	struct ft_err err;
	unsigned n = 0;
	bool ok =
		ft_buf_addstr(&b, "{\"added_tokens\":[{\"id\":256,\"content\":\"<|im_start|>\","
				  "\"special\":true,\"normalized\":false},{\"id\":257,"
				  "\"content\":\"<|im_end|>\",\"special\":true,\"normalized\":"
				  "false}],\"pre_tokenizer\":{\"type\":\"ByteLevel\","
				  "\"add_prefix_space\":false,\"use_regex\":true},\"decoder\":"
				  "{\"type\":\"ByteLevel\"},\"model\":{\"type\":\"BPE\",\"vocab\":"
				  "{") == FT_OK;
	for (unsigned x = 0; x < 256 && ok; x++) {
		bool printable = (x >= 33 && x <= 126) || (x >= 161 && x <= 172) || x >= 174;
		ok = ft_buf_addf(&b, "%s\"\\u%04x\":%u", x ? "," : "", printable ? x : 256 + n++,
				 x) == FT_OK;
	}
	ok = ok && ft_buf_addstr(&b, "},\"merges\":[]}}") == FT_OK;
	ft_err_clear(&err);
	FT_ASSERT(ok && ft_tokenizer_parse(b.ptr, b.len, &tok, &err) == FT_OK);
	ft_buf_release(&b);
	return tok;
}

static void check_report(json_t *report)
{
	json_t *errors = json_object_get(report, "errors");
	long long n = json_integer_value(json_object_get(report, "n_errors"));
	FT_ASSERT(json_is_array(errors));
	FT_ASSERT((long long)json_array_size(errors) ==
		  (n < FT_VALIDATE_MAX_ISSUES ? n : FT_VALIDATE_MAX_ISSUES));
	FT_ASSERT(json_is_true(json_object_get(report, "valid")) == (n == 0));
	size_t i;
	json_t *e;
	json_array_foreach(errors, i, e)
	{
		json_t *line = json_object_get(e, "line");
		FT_ASSERT(json_is_null(line) || json_integer_value(line) > 0);
		FT_ASSERT(json_is_string(json_object_get(e, "code")));
		FT_ASSERT(json_is_string(json_object_get(e, "message")));
	}
	FT_ASSERT(json_array_size(json_object_get(report, "preview")) <= FT_VALIDATE_PREVIEW_ROWS);
	char *s = json_dumps(report, JSON_COMPACT);
	FT_ASSERT(s);
	free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct ft_api_validate_opts dataset = { .method = FT_METHOD_AUTO };
	const struct ft_api_validate_opts jobs[] = {
		dataset,
		{ .method = FT_METHOD_SFT,
		  .tok = tokenizer(),
		  .template_name = "chatml",
		  .max_seq_len = 64 },
		{ .method = FT_METHOD_DPO,
		  .tok = tokenizer(),
		  .template_name = "chatml",
		  .max_seq_len = 64 },
	};
	for (size_t k = 0; k < FT_ARRAY_LEN(jobs); k++) {
		FILE *f = size ? fmemopen((void *)(uintptr_t)data, size, "rb") : tmpfile();
		FT_ASSERT(f);
		json_t *report = NULL;
		struct ft_err e;
		ft_err_clear(&e);
		FT_ASSERT(ft_api_validate_file(f, &jobs[k], &report, &e) == FT_OK);
		check_report(report);
		json_decref(report);
		fclose(f);
	}
	return 0;
}
