/*
 * test_dataset_tok.c - token ids and labels of rows (ft/dataset.h) with a
 * tiny hand-written byte-level BPE, so every id below is computed by hand:
 *
 *   vocab    byte b -> id b (the byte's GPT-2 printable character), then
 *            256 "ĠH" (space + H) and 257 "Hi"
 *   merges   "Ġ H" (rank 0), "H i" (rank 1)
 *   added    258 <s>, 259 </s>, 260 <|im_start|>, 261 <|im_end|> (special)
 *   pre-tok  ByteLevel (GPT-2 regex), no prefix space
 *   post     TemplateProcessing: <s> $A (so the tokenizer adds BOS)
 *   config   bos <s>, eos </s>
 *
 * So "Hi" -> 257, " Hi" -> 256 105 (rank 0 wins), " you" -> 32 121 111 117.
 */
#include <sys/stat.h>
#include <unistd.h>

#include "ft/dataset.h"
#include "ftest.h"

static char model_dir[64];

/* GPT-2's bytes_to_unicode: printable bytes map to themselves, the others
 * to 256, 257, ... in byte order. */
static unsigned byte_char(unsigned b)
{
	unsigned n = 0;
	for (unsigned x = 0; x < 256; x++) {
		bool printable = (x >= 33 && x <= 126) || (x >= 161 && x <= 172) || x >= 174;
		if (x == b)
			return printable ? x : 256 + n;
		if (!printable)
			n++;
	}
	return 0;
}

static void write_file(const char *dir, const char *name, const char *text)
{
	char path[128];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	FT_ASSERT(f);
	fputs(text, f);
	fclose(f);
}

static void remove_model_dir(void)
{
	static const char *const names[] = { "tokenizer.json", "tokenizer_config.json", "v.jsonl",
					     "c.jsonl", "d.jsonl" };
	char path[128];
	for (size_t i = 0; i < FT_ARRAY_LEN(names); i++) {
		snprintf(path, sizeof(path), "%s/%s", model_dir, names[i]);
		unlink(path);
	}
	rmdir(model_dir);
}

static const char *model(void)
{
	if (model_dir[0])
		return model_dir;
	snprintf(model_dir, sizeof(model_dir), "/tmp/ft_test_dstok_XXXXXX");
	FT_ASSERT(mkdtemp(model_dir));
	atexit(remove_model_dir);
	struct ft_buf b = FT_BUF_INIT(1 << 20);
	FT_ASSERT(ft_buf_addstr(&b, "{\"version\":\"1.0\",\"added_tokens\":[") == FT_OK);
	static const char *const added[] = { "<s>", "</s>", "<|im_start|>", "<|im_end|>" };
	for (int i = 0; i < 4; i++)
		FT_ASSERT(ft_buf_addf(&b,
				      "%s{\"id\":%d,\"content\":\"%s\",\"single_word\":false,"
				      "\"lstrip\":false,\"rstrip\":false,\"normalized\":false,"
				      "\"special\":true}",
				      i ? "," : "", 258 + i, added[i]) == FT_OK);
	FT_ASSERT(ft_buf_addstr(
			  &b,
			  "],\"normalizer\":null,\"pre_tokenizer\":{\"type\":\"ByteLevel\","
			  "\"add_prefix_space\":false,\"trim_offsets\":true,\"use_regex\":"
			  "true},\"post_processor\":{\"type\":\"TemplateProcessing\",\"single\":[{"
			  "\"SpecialToken\":{\"id\":\"<s>\",\"type_id\":0}},{\"Sequence\":{"
			  "\"id\":\"A\",\"type_id\":0}}],\"pair\":[{\"Sequence\":{\"id\":"
			  "\"A\",\"type_id\":0}},{\"Sequence\":{\"id\":\"B\",\"type_id\":1}}],"
			  "\"special_tokens\":{\"<s>\":{\"id\":\"<s>\",\"ids\":[258],"
			  "\"tokens\":[\"<s>\"]}}},\"decoder\":{\"type\":\"ByteLevel\","
			  "\"add_prefix_space\":true,\"trim_offsets\":true,\"use_regex\":"
			  "true},\"model\":{\"type\":\"BPE\",\"dropout\":null,\"unk_token\":"
			  "null,\"continuing_subword_prefix\":null,\"end_of_word_suffix\":"
			  "null,\"fuse_unk\":false,\"byte_fallback\":false,\"vocab\":{") == FT_OK);
	for (unsigned x = 0; x < 256; x++)
		FT_ASSERT(ft_buf_addf(&b, "\"\\u%04x\":%u,", byte_char(x), x) == FT_OK);
	FT_ASSERT(ft_buf_addstr(&b, "\"\\u0120H\":256,\"Hi\":257},\"merges\":[\"\\u0120 H\",\"H "
				    "i\"]}}") == FT_OK);
	write_file(model_dir, "tokenizer.json", ft_buf_str(&b));
	write_file(model_dir, "tokenizer_config.json",
		   "{\"bos_token\":\"<s>\",\"eos_token\":\"</s>\"}");
	ft_buf_release(&b);
	return model_dir;
}

static struct ft_tokenizer *load(void)
{
	struct ft_tokenizer *t = NULL;
	struct ft_err err;
	ft_err_clear(&err);
	if (ft_tokenizer_load(model(), &t, &err))
		fprintf(stderr, "load: %s\n", err.msg);
	FT_ASSERT(t);
	return t;
}

/* Tokenize one line with template `tmpl_name` (NULL for raw rows). */
static enum ft_rc tokenize(const char *line, const char *tmpl_name, bool train_on_inputs,
			   struct ft_example *ex, struct ft_err *err)
{
	struct ft_tokenizer *t = load();
	struct ft_chat_template *tmpl = NULL;
	struct ft_data_row row;
	enum ft_data_format fmt = FT_FMT_UNKNOWN;
	ft_err_clear(err);
	ft_data_row_init(&row);
	FT_ASSERT(ft_data_row_parse(line, strlen(line), 3, &fmt, &row, err) == FT_OK);
	if (tmpl_name)
		FT_ASSERT(ft_data_template_pick(t, tmpl_name, &tmpl, err) == FT_OK);
	enum ft_rc rc = ft_data_row_tokenize(&row, t, tmpl, train_on_inputs, ex, err);
	ft_data_row_release(&row);
	ft_chat_template_free(tmpl);
	ft_tokenizer_free(t);
	return rc;
}

#define CHECK_IDS(ids, ...)                                                                        \
	do {                                                                                       \
		const int32_t want_[] = { __VA_ARGS__ };                                           \
		if ((ids).len != FT_ARRAY_LEN(want_))                                              \
			fprintf(stderr, "length %zu, want %zu\n", (ids).len, FT_ARRAY_LEN(want_)); \
		FT_CHECK((ids).len == FT_ARRAY_LEN(want_));                                        \
		for (size_t i_ = 0; i_ < FT_ARRAY_LEN(want_); i_++)                                \
			if ((ids).v[i_] != want_[i_]) {                                            \
				fprintf(stderr, "index %zu: got %d want %d\n", i_,                 \
					(int)(ids).v[i_], (int)want_[i_]);                         \
				FT_CHECK(!"ids differ");                                           \
			}                                                                          \
	} while (0)

#define X (-100)

FT_TEST(chatml_labels_assistant_and_im_end)
{
	struct ft_example ex = { 0 };
	struct ft_err err;
	FT_CHECK(tokenize("{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"},{\"role\":"
			  "\"assistant\",\"content\":\"Hi you\"}]}",
			  "chatml", false, &ex, &err) == FT_OK);
	/* <|im_start|> user \n Hi <|im_end|> \n <|im_start|> assistant \n Hi Ġyou <|im_end|> \n */
	CHECK_IDS(ex.ids, 260, 117, 115, 101, 114, 10, 257, 261, 10, 260, 97, 115, 115, 105, 115,
		  116, 97, 110, 116, 10, 257, 32, 121, 111, 117, 261, 10);
	CHECK_IDS(ex.labels, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, 257, 32,
		  121, 111, 117, 261, X);
	FT_CHECK_INT(ex.n_trained, 6);
	FT_CHECK_INT(ex.line, 3);
	ft_example_release(&ex);
}

FT_TEST(token_straddling_a_boundary_is_trained)
{
	/* mistral: "<s> [INST] Hi [/INST] Hi</s>"; the assistant's " Hi" is one
	 * token ĠH (256) made of the untrained " " and the trained "H" */
	struct ft_example ex = { 0 };
	struct ft_err err;
	FT_CHECK(tokenize("{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"},{\"role\":"
			  "\"assistant\",\"content\":\"Hi\"}]}",
			  "mistral", false, &ex, &err) == FT_OK);
	CHECK_IDS(ex.ids, 258, 32, 91, 73, 78, 83, 84, 93, 256, 105, 32, 91, 47, 73, 78, 83, 84, 93,
		  256, 105, 259);
	CHECK_IDS(ex.labels, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, 256, 105, 259);
	ft_example_release(&ex);
}

FT_TEST(raw_formats)
{
	struct ft_example ex = { 0 };
	struct ft_err err;
	/* text: <s> Hi </s>, all trained */
	FT_CHECK(tokenize("{\"text\":\"Hi\"}", NULL, false, &ex, &err) == FT_OK);
	CHECK_IDS(ex.ids, 258, 257, 259);
	CHECK_IDS(ex.labels, 258, 257, 259);
	/* prompt/completion: completion and EOS trained */
	FT_CHECK(tokenize("{\"prompt\":\"Hi\",\"completion\":\" Hi\"}", NULL, false, &ex, &err) ==
		 FT_OK);
	CHECK_IDS(ex.ids, 258, 257, 256, 105, 259);
	CHECK_IDS(ex.labels, X, X, 256, 105, 259);
	FT_CHECK(tokenize("{\"prompt\":\"Hi\",\"completion\":\" Hi\"}", NULL, true, &ex, &err) ==
		 FT_OK);
	CHECK_IDS(ex.labels, 258, 257, 256, 105, 259);
	/* instruction: the Alpaca prompt, then output + EOS trained */
	FT_CHECK(tokenize("{\"instruction\":\"Hi\",\"output\":\"Hi\"}", NULL, false, &ex, &err) ==
		 FT_OK);
	FT_CHECK_INT(ex.n_trained, 2);
	FT_CHECK_INT(ex.ids.v[ex.ids.len - 2], 257);
	FT_CHECK_INT(ex.labels.v[ex.labels.len - 2], 257);
	FT_CHECK_INT(ex.labels.v[ex.labels.len - 1], 259);
	FT_CHECK_INT(ex.labels.v[ex.labels.len - 3], X); /* the "\n" after "### Response:" */
	ft_example_release(&ex);
}

FT_TEST(weight_zero_everywhere_is_an_error)
{
	struct ft_example ex = { 0 };
	struct ft_err err;
	FT_CHECK(tokenize("{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"},{\"role\":"
			  "\"assistant\",\"content\":\"Hi\",\"weight\":0}]}",
			  "chatml", false, &ex, &err) == FT_EINVAL);
	FT_CHECK_STR(err.code, "no_trained_tokens");
	FT_CHECK_STR(err.msg, "line 3: no token is trained (every assistant message has weight 0)");
	FT_CHECK_INT(err.line, 3);
	ft_example_release(&ex);
}

FT_TEST(preference_pairs)
{
	struct ft_tokenizer *t = load();
	struct ft_chat_template *tmpl = NULL;
	struct ft_data_row row;
	struct ft_pref_example pex = { 0 };
	enum ft_data_format fmt = FT_FMT_UNKNOWN;
	struct ft_err err;
	ft_err_clear(&err);
	ft_data_row_init(&row);
	const char *raw = "{\"prompt\":\"Hi\",\"chosen\":\" Hi\",\"rejected\":\"H\"}";
	FT_CHECK(ft_data_row_parse(raw, strlen(raw), 1, &fmt, &row, &err) == FT_OK);
	FT_CHECK(ft_data_row_tokenize_pref(&row, t, NULL, &pex, &err) == FT_OK);
	CHECK_IDS(pex.prompt, 258, 257);
	CHECK_IDS(pex.chosen, 256, 105, 259);
	CHECK_IDS(pex.rejected, 72, 259);
	struct ft_ids seq = { 0 }, lab = { 0 };
	FT_CHECK(ft_pref_example_sequence(&pex, false, &seq, &lab) == FT_OK);
	CHECK_IDS(seq, 258, 257, 256, 105, 259);
	CHECK_IDS(lab, X, X, 256, 105, 259);
	FT_CHECK(ft_pref_example_sequence(&pex, true, &seq, &lab) == FT_OK);
	CHECK_IDS(seq, 258, 257, 72, 259);
	CHECK_IDS(lab, X, X, 72, 259);
	ft_ids_release(&seq);
	ft_ids_release(&lab);
	/* chat: prompt with the generation prompt, answers cut after it */
	const char *chat =
		"{\"prompt\":[{\"role\":\"user\",\"content\":\"Hi\"}],\"chosen\":[{\"role\":"
		"\"assistant\",\"content\":\"Hi\"}],\"rejected\":[{\"role\":\"assistant\","
		"\"content\":\"H\"}]}";
	fmt = FT_FMT_UNKNOWN;
	FT_CHECK(ft_data_row_parse(chat, strlen(chat), 2, &fmt, &row, &err) == FT_OK);
	FT_CHECK(ft_data_template_pick(t, "chatml", &tmpl, &err) == FT_OK);
	FT_CHECK(ft_data_row_tokenize_pref(&row, t, tmpl, &pex, &err) == FT_OK);
	/* <|im_start|> user \n Hi <|im_end|> \n <|im_start|> assistant \n */
	CHECK_IDS(pex.prompt, 260, 117, 115, 101, 114, 10, 257, 261, 10, 260, 97, 115, 115, 105,
		  115, 116, 97, 110, 116, 10);
	CHECK_IDS(pex.chosen, 257, 261, 10);
	CHECK_IDS(pex.rejected, 72, 261, 10);
	ft_pref_example_release(&pex);
	ft_data_row_release(&row);
	ft_chat_template_free(tmpl);
	ft_tokenizer_free(t);
}

static char *write_data(const char *name, const char *text)
{
	char path[128];
	snprintf(path, sizeof(path), "%s/%s", model(), name);
	write_file(model(), name, text);
	return ft_xstrdup(path);
}

FT_TEST(validate_too_long_and_stats)
{
	char *path = write_data("v.jsonl", "{\"text\":\"Hi\"}\n{\"text\":\"Hi you\"}\n");
	struct ft_tokenizer *t = load();
	struct ft_data_opts o;
	struct ft_data_report *rep = ft_xcalloc(1, sizeof(*rep));
	struct ft_err err;
	ft_err_clear(&err);
	ft_data_opts_default(&o);
	o.max_seq_len = 5;
	/* "<s>Hi</s>" = 3 tokens; "<s>Hi you</s>" = 258 257 32 121 111 117 259 = 7 */
	FT_CHECK(ft_data_validate(path, t, NULL, &o, rep, &err) == FT_OK);
	FT_CHECK_INT(rep->n_errors, 1);
	FT_CHECK_STR(rep->issues[0].code, "too_long");
	FT_CHECK_STR(rep->issues[0].msg,
		     "line 2: 7 tokens after tokenization, longer than the limit "
		     "of 5 (max_seq_len)");
	FT_CHECK_INT(rep->tokens_total, 3);
	FT_CHECK_INT(rep->max_len, 3);
	o.max_seq_len = 0;
	FT_CHECK(ft_data_validate(path, t, NULL, &o, rep, &err) == FT_OK);
	FT_CHECK_INT(rep->n_errors, 0);
	FT_CHECK_INT(rep->tokens_total, 10);
	FT_CHECK_INT(rep->tokens_trained, 10);
	FT_CHECK_INT(rep->max_len, 7);
	FT_CHECK(ft_data_report_mean_len(rep) == 5.0);
	/* a chat file on a model without chat_template and no template named */
	char *chat = write_data("c.jsonl", "{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"},"
					   "{\"role\":\"assistant\",\"content\":\"Hi\"}]}\n");
	FT_CHECK(ft_data_validate(chat, t, NULL, &o, rep, &err) == FT_OK);
	FT_CHECK_INT(rep->n_errors, 1);
	FT_CHECK_STR(rep->issues[0].code, "unknown_template");
	FT_CHECK_STR(rep->issues[0].msg,
		     "the model has no chat template (tokenizer_config.json, "
		     "chat_template.jinja or a GGUF's tokenizer.chat_template)");
	free(chat);
	free(rep);
	free(path);
	ft_tokenizer_free(t);
}

FT_TEST(dataset_iterates_split)
{
	char *path =
		write_data("d.jsonl", "{\"text\":\"Hi\"}\n{\"text\":\"H\"}\n{\"text\":\" Hi\"}\n");
	struct ft_tokenizer *t = load();
	struct ft_data_opts o;
	struct ft_dataset *ds;
	struct ft_example ex = { 0 };
	struct ft_err err;
	bool eof;
	ft_err_clear(&err);
	ft_data_opts_default(&o);
	o.seed = 42;
	o.val_fraction = 0.3; /* seed 42: line indices 0, 1 train, 2 validation */
	FT_CHECK(ft_dataset_open(path, t, NULL, &o, &ds, &err) == FT_OK);
	FT_CHECK(ft_dataset_next(ds, FT_SPLIT_TRAIN, &ex, &eof, &err) == FT_OK && !eof);
	CHECK_IDS(ex.ids, 258, 257, 259);
	FT_CHECK(ft_dataset_next(ds, FT_SPLIT_TRAIN, &ex, &eof, &err) == FT_OK && !eof);
	CHECK_IDS(ex.ids, 258, 72, 259);
	FT_CHECK_INT(ex.line, 2);
	FT_CHECK(ft_dataset_next(ds, FT_SPLIT_TRAIN, &ex, &eof, &err) == FT_OK && eof);
	FT_CHECK(ft_dataset_rewind(ds, &err) == FT_OK);
	FT_CHECK(ft_dataset_next(ds, FT_SPLIT_VAL, &ex, &eof, &err) == FT_OK && !eof);
	CHECK_IDS(ex.ids, 258, 256, 105, 259);
	FT_CHECK_INT(ex.line, 3);
	FT_CHECK_INT(ft_dataset_format(ds), FT_FMT_TEXT);
	ft_example_release(&ex);
	ft_dataset_free(ds);
	ft_tokenizer_free(t);
	free(path);
}

FT_TEST_MAIN()
