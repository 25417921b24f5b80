/*
 * test_tokenizer.c - the tokenizer on hand-built tokenizer.json files, with
 * every expected id worked out by hand in the comments (the peer test in
 * tests/system/test_tokenizer_peer.py checks real trained tokenizers).
 */
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ftest.h"
#include "ft/tokenizer.h"
#include "../../../engine/tokenizer/tokenizer_int.h"

static struct ft_tokenizer *parse(const char *json, struct ft_err *err)
{
	struct ft_tokenizer *t = NULL;
	ft_err_clear(err);
	if (ft_tokenizer_parse(json, strlen(json), &t, err) != FT_OK)
		return NULL;
	return t;
}

/* Encode and render the ids as "1 2 3". */
static const char *ids_of(const struct ft_tokenizer *t, const char *text, size_t len, unsigned fl)
{
	static char out[4096];
	struct ft_ids ids = { 0 };
	struct ft_err err;
	ft_err_clear(&err);
	if (ft_tokenizer_encode(t, text, len, fl, &ids, &err)) {
		snprintf(out, sizeof(out), "error: %s", err.msg);
		return out;
	}
	size_t o = 0;
	out[0] = 0;
	for (size_t i = 0; i < ids.len && o < sizeof(out) - 16; i++)
		o += (size_t)snprintf(out + o, sizeof(out) - o, "%s%d", i ? " " : "", ids.v[i]);
	ft_ids_release(&ids);
	return out;
}

static const char *decode(const struct ft_tokenizer *t, const int32_t *ids, size_t n, unsigned fl)
{
	static char out[4096];
	struct ft_buf b = FT_BUF_INIT(1 << 20);
	struct ft_err err;
	ft_err_clear(&err);
	if (ft_tokenizer_decode(t, ids, n, fl, &b, &err))
		snprintf(out, sizeof(out), "error: %s", err.msg);
	else
		snprintf(out, sizeof(out), "%s", ft_buf_str(&b));
	ft_buf_release(&b);
	return out;
}

/* merges by rank: (b,c)=0, (a,b)=1, (a,bc)=2 */
#define TINY(fuse)                                                                                 \
	"{\"model\": {\"type\": \"BPE\", \"unk_token\": \"<unk>\", \"fuse_unk\": " fuse ","        \
	" \"vocab\": {\"a\": 0, \"b\": 1, \"c\": 2, \"ab\": 3, \"bc\": 4, \"abc\": 5, \"<unk>\": " \
	"6},"                                                                                      \
	" \"merges\": [\"b c\", [\"a\", \"b\"], \"a bc\"]}}"

FT_TEST(bpe_merges_follow_rank_then_position)
{
	struct ft_err err;
	struct ft_tokenizer *t = parse(TINY("false"), &err);
	FT_CHECK(t);
	/* a b c: (b,c) rank 0 first -> a bc; (a,b) is stale; (a,bc) -> abc */
	FT_CHECK_STR(ids_of(t, "abc", 3, 0), "5");
	/* a b a b: (a,b)@0 then (a,b)@2 */
	FT_CHECK_STR(ids_of(t, "abab", 4, 0), "3 3");
	/* a b c a b: (b,c)@1 -> a bc a b; (a,b)@0 stale; (a,b)@3 -> ab; (a,bc) -> abc ab */
	FT_CHECK_STR(ids_of(t, "abcab", 5, 0), "5 3");
	/* d is unknown: unk per character without fuse_unk */
	FT_CHECK_STR(ids_of(t, "abdd", 4, 0), "3 6 6");
	FT_CHECK_STR(ids_of(t, "", 0, FT_TOK_ADD_SPECIAL), "");
	FT_CHECK_INT(ft_tokenizer_vocab_size(t), 7);
	FT_CHECK_INT(ft_tokenizer_token_to_id(t, "abc"), 5);
	FT_CHECK_STR(ft_tokenizer_id_to_token(t, 4), "bc");
	FT_CHECK(ft_tokenizer_id_to_token(t, 7) == NULL);
	FT_CHECK_INT(ft_tokenizer_token_to_id(t, "zz"), -1);
	/* no decoder: tokens joined by spaces */
	int32_t ids[] = { 5, 3, 99, 6 };
	FT_CHECK_STR(decode(t, ids, 4, 0), "abc ab <unk>");
	ft_tokenizer_free(t);

	t = parse(TINY("true"), &err);
	FT_CHECK(t);
	FT_CHECK_STR(ids_of(t, "abdda", 5, 0), "3 6 0");
	ft_tokenizer_free(t);
}

FT_TEST(bpe_long_word_is_not_quadratic)
{
	struct ft_err err;
	struct ft_tokenizer *t = parse(TINY("false"), &err);
	FT_CHECK(t);
	size_t n = 400000; /* 200k x "ab" -> 200k x id 3 */
	char *text = malloc(n);
	FT_CHECK(text);
	for (size_t i = 0; i < n; i++)
		text[i] = i % 2 ? 'b' : 'a';
	struct ft_ids ids = { 0 };
	FT_CHECK(ft_tokenizer_encode(t, text, n, 0, &ids, &err) == FT_OK);
	FT_CHECK_INT(ids.len, n / 2);
	for (size_t i = 0; i < ids.len; i++)
		FT_CHECK(ids.v[i] == 3);
	ft_ids_release(&ids);
	free(text);
	ft_tokenizer_free(t);
}

/* Llama 2 layout: Prepend + Replace normalizer, byte_fallback, <s> template. */
static const char *const spm =
	"{\"added_tokens\": [{\"id\": 0, \"content\": \"<unk>\", \"special\": true, "
	"\"normalized\": false},"
	"  {\"id\": 6, \"content\": \"<s>\", \"special\": true, \"normalized\": false}],"
	" \"normalizer\": {\"type\": \"Sequence\", \"normalizers\": [{\"type\": \"Prepend\", "
	"\"prepend\": \"\xe2\x96\x81\"},"
	"   {\"type\": \"Replace\", \"pattern\": {\"String\": \" \"}, \"content\": "
	"\"\xe2\x96\x81\"}]},"
	" \"pre_tokenizer\": null,"
	" \"post_processor\": {\"type\": \"TemplateProcessing\", \"single\": [{\"SpecialToken\": "
	"{\"id\": \"<s>\", \"type_id\": 0}},"
	"   {\"Sequence\": {\"id\": \"A\", \"type_id\": 0}}], \"pair\": [],"
	"   \"special_tokens\": {\"<s>\": {\"id\": \"<s>\", \"ids\": [6], \"tokens\": [\"<s>\"]}}},"
	" \"decoder\": {\"type\": \"Sequence\", \"decoders\": [{\"type\": \"Replace\", "
	"\"pattern\": {\"String\": \"\xe2\x96\x81\"}, \"content\": \" \"},"
	"   {\"type\": \"ByteFallback\"}, {\"type\": \"Fuse\"}, {\"type\": \"Strip\", \"content\": "
	"\" \", \"start\": 1, \"stop\": 0}]},"
	" \"model\": {\"type\": \"BPE\", \"unk_token\": \"<unk>\", \"fuse_unk\": true, "
	"\"byte_fallback\": true,"
	"   \"vocab\": {\"<unk>\": 0, \"<0xC3>\": 1, \"<0xA9>\": 2, \"\xe2\x96\x81\": 3, \"a\": 4, "
	"\"\xe2\x96\x81"
	"a\": 5, \"<s>\": 6},"
	"   \"merges\": [\"\xe2\x96\x81 a\"]}}";

FT_TEST(byte_fallback_and_sentencepiece_layout)
{
	struct ft_err err;
	struct ft_tokenizer *t = parse(spm, &err);
	if (!t)
		fprintf(stderr, "%s\n", err.msg);
	FT_CHECK(t);
	/* "a é" -> "▁a▁é": ▁a (merge), ▁, é = C3 A9 as byte tokens */
	FT_CHECK_STR(ids_of(t, "a \xc3\xa9", 4, 0), "5 3 1 2");
	/* ü = C3 BC: <0xBC> is missing, so the whole character is <unk> */
	FT_CHECK_STR(ids_of(t, "a \xc3\xbc", 4, 0), "5 3 0");
	/* BOS from the template; "<s>" split out only with FT_TOK_SPLIT_SPECIAL;
	 * the text after it is normalized on its own ("▁a") */
	FT_CHECK_STR(ids_of(t, "<s>a", 4, FT_TOK_ADD_SPECIAL | FT_TOK_SPLIT_SPECIAL), "6 6 5");
	FT_CHECK_STR(ids_of(t, "a", 1, FT_TOK_ADD_SPECIAL), "6 5");
	FT_CHECK(ft_tokenizer_adds_bos(t));
	FT_CHECK_INT(ft_tokenizer_bos_id(t), 6);
	FT_CHECK(ft_tokenizer_is_special(t, 6));
	FT_CHECK(!ft_tokenizer_is_special(t, 5));
	/* decode: " a", " ", é -> " a é" -> strip one leading space */
	int32_t ids[] = { 6, 5, 3, 1, 2 };
	FT_CHECK_STR(decode(t, ids, 5, FT_TOK_SKIP_SPECIAL), "a \xc3\xa9");
	FT_CHECK_STR(decode(t, ids, 5, 0), "<s> a \xc3\xa9");
	/* a lone lead byte decodes to U+FFFD */
	FT_CHECK_STR(decode(t, ids + 3, 1, 0), "\xef\xbf\xbd");
	ft_tokenizer_free(t);
}

/* Split s with the regex; pieces joined with '|'. */
static const char *pieces(enum tok_regex re, const char *s)
{
	static char out[1024];
	size_t n = strlen(s), o = 0;
	for (size_t pos = 0; pos < n;) {
		size_t e = tok_regex_match_at(re, s, n, pos);
		if (e == pos)
			return "no match";
		o += (size_t)snprintf(out + o, sizeof(out) - o, "%s%.*s", pos ? "|" : "",
				      (int)(e - pos), s + pos);
		pos = e;
	}
	out[o] = 0;
	return out;
}

FT_TEST(split_regexes_on_hand_picked_strings)
{
	FT_CHECK_STR(pieces(TOK_RE_GPT2, "Hello world's  test 123!!\n\n"),
		     "Hello| world|'s| | test| 123|!!|\n\n");
	FT_CHECK_STR(pieces(TOK_RE_GPT2, "I'M a\tb "), "I|'|M| a|\t|b| ");
	FT_CHECK_STR(pieces(TOK_RE_LLAMA3, "I'M here 12345 ok?\n\n  x"),
		     "I|'M| here| |123|45| ok|?\n\n| | x");
	FT_CHECK_STR(pieces(TOK_RE_LLAMA3, "a\n\n  b"), "a|\n\n| | b");
	FT_CHECK_STR(pieces(TOK_RE_LLAMA3, "x  \n y\n"), "x|  \n| y|\n");
	FT_CHECK_STR(
		pieces(TOK_RE_LLAMA3, "\xe4\xbd\xa0\xe5\xa5\xbd\xef\xbc\x8c\xe4\xb8\x96"),
		"\xe4\xbd\xa0\xe5\xa5\xbd|\xef\xbc\x8c\xe4\xb8\x96"); /* 你好，世: "，世" is [^..]?\p{L}+ */
	FT_CHECK_STR(pieces(TOK_RE_QWEN2, "ab 12345"), "ab| |1|2|3|4|5");
	enum tok_regex re;
	FT_CHECK(!tok_regex_lookup("\\w+", &re));
}

FT_TEST(invalid_utf8_becomes_replacement_characters)
{
	struct ft_buf b = FT_BUF_INIT(1024);
	/* as Python's bytes.decode("utf-8", errors="replace") */
	FT_CHECK(ft_utf8_sanitize("a\xff"
				  "b\xe2\x82"
				  "c\xf0\x9f\x98\x80",
				  10, &b) == FT_OK);
	FT_CHECK_STR(ft_buf_str(&b), "a\xef\xbf\xbd"
				     "b\xef\xbf\xbd"
				     "c\xf0\x9f\x98\x80");
	ft_buf_reset(&b);
	FT_CHECK(ft_utf8_sanitize("\xed\xa0\x80\xc0\x80", 5, &b) == FT_OK); /* 5 x U+FFFD */
	FT_CHECK_INT(b.len, 15);
	ft_buf_release(&b);
	FT_CHECK(ft_utf8_valid("\xe4\xb8\xad", 3));
	FT_CHECK(!ft_utf8_valid("\xe4\xb8", 2));
}

static const char *nfc(const char *s)
{
	static char out[256];
	struct ft_buf b = FT_BUF_INIT(1024);
	if (ft_uni_nfc(s, strlen(s), &b))
		return "error";
	snprintf(out, sizeof(out), "%s", ft_buf_str(&b));
	ft_buf_release(&b);
	return out;
}

FT_TEST(nfc_composes_reorders_and_excludes)
{
	FT_CHECK_STR(nfc("e\xcc\x81"), "\xc3\xa9"); /* e + U+0301 -> U+00E9 */
	FT_CHECK_STR(nfc("\xe1\x84\x80\xe1\x85\xa1\xe1\x86\xa8"),
		     "\xea\xb0\x81"); /* L V T -> U+AC01 */
	FT_CHECK_STR(nfc("\xe2\x84\xab"), "\xc3\x85"); /* U+212B ANGSTROM -> U+00C5 */
	/* UAX #15 example: U+1E0A U+0323 -> U+1E0C U+0307 (reordered, recomposed) */
	FT_CHECK_STR(nfc("\xe1\xb8\x8a\xcc\xa3"), "\xe1\xb8\x8c\xcc\x87");
	/* U+0958 is a composition exclusion: stays decomposed as U+0915 U+093C */
	FT_CHECK_STR(nfc("\xe0\xa5\x98"), "\xe0\xa4\x95\xe0\xa4\xbc");
	FT_CHECK_STR(nfc("plain ascii"), "plain ascii");
	FT_CHECK_STR(nfc("\xcc\x81"
			 "a"),
		     "\xcc\x81"
		     "a"); /* leading mark blocks nothing after */
}

FT_TEST(unsupported_components_are_named)
{
	static const struct {
		const char *json, *want;
	} cases[] = {
		{ "{\"pre_tokenizer\": {\"type\": \"UnicodeScripts\"}, \"model\": {\"vocab\": {}}}",
		  "tokenizer.json: pre_tokenizer: unsupported pre_tokenizer type "
		  "\"UnicodeScripts\"" },
		{ "{\"model\": {\"type\": \"Unigram\", \"vocab\": []}}",
		  "tokenizer.json: model: unsupported model type \"Unigram\" (only BPE)" },
		{ "{\"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": {\"Regex\": \"\\\\w+\"},"
		  " \"behavior\": \"Isolated\"}, \"model\": {\"vocab\": {}}}",
		  "tokenizer.json: pre_tokenizer: unsupported regex \"\\w+\" (known: the GPT-2, "
		  "Llama 3 and "
		  "Qwen2 split patterns)" },
		{ "{\"normalizer\": {\"type\": \"Sequence\", \"normalizers\": [{\"type\": "
		  "\"NFKD\"}]},"
		  " \"model\": {\"vocab\": {}}}",
		  "tokenizer.json: normalizer.normalizers[0]: unsupported normalizer type "
		  "\"NFKD\"" },
		{ "{\"model\": {\"vocab\": {\"a\": 0}, \"merges\": [\"a b\"]}}",
		  "tokenizer.json: model.merges[0]: token \"b\" is not in the vocabulary" },
		{ "{\"model\": {\"vocab\": {\"a\": 0}, \"merges\": [\"a\"]}}",
		  "tokenizer.json: model.merges[0]: \"a\" must be two tokens separated by one "
		  "space" },
		{ "{\"model\": {\"vocab\": {\"a\": 99999999}}}",
		  "tokenizer.json: token id 99999999 is far beyond the 1 tokens defined" },
		{ "[1]", "tokenizer.json: must be a JSON object" },
	};
	for (size_t i = 0; i < FT_ARRAY_LEN(cases); i++) {
		struct ft_err err;
		struct ft_tokenizer *t = parse(cases[i].json, &err);
		FT_CHECK(t == NULL);
		FT_CHECK_STR(err.msg, cases[i].want);
	}
}

FT_TEST(load_reads_tokenizer_config)
{
	char dir[] = "/tmp/ft_tok_test_XXXXXX", path[256];
	FT_CHECK(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/tokenizer.json", dir);
	FILE *f = fopen(path, "w");
	FT_CHECK(f);
	fputs(spm, f);
	fclose(f);
	snprintf(path, sizeof(path), "%s/tokenizer_config.json", dir);
	f = fopen(path, "w");
	FT_CHECK(f);
	fputs("{\"bos_token\": {\"content\": \"<s>\", \"__type\": \"AddedToken\"}, \"eos_token\": "
	      "\"<unk>\","
	      " \"pad_token\": null, \"add_bos_token\": false, \"chat_template\": \"{{ messages "
	      "}}\"}",
	      f);
	fclose(f);
	struct ft_tokenizer *t = NULL;
	struct ft_err err;
	ft_err_clear(&err);
	enum ft_rc rc = ft_tokenizer_load(dir, &t, &err);
	unlink(path);
	snprintf(path, sizeof(path), "%s/tokenizer.json", dir);
	unlink(path);
	rmdir(dir);
	FT_CHECK(rc == FT_OK);
	FT_CHECK_INT(ft_tokenizer_bos_id(t), 6);
	FT_CHECK_INT(ft_tokenizer_eos_id(t), 0);
	FT_CHECK_INT(ft_tokenizer_pad_id(t), -1);
	FT_CHECK(ft_tokenizer_adds_bos(t)); /* the template's <s>; add_bos_token is not read */
	FT_CHECK_STR(ft_tokenizer_chat_template(t), "{{ messages }}");
	ft_tokenizer_free(t);

	ft_err_clear(&err);
	FT_CHECK(ft_tokenizer_load("/nonexistent/model", &t, &err) == FT_ENOTFOUND);
	FT_CHECK(strstr(err.msg, "/nonexistent/model/tokenizer.json") != NULL);
}

struct thread_job {
	const struct ft_tokenizer *t;
	const char *text;
	size_t len;
	const struct ft_ids *want;
	int bad;
};

static void *encode_many(void *arg)
{
	struct thread_job *j = arg;
	for (int r = 0; r < 200; r++) {
		struct ft_ids ids = { 0 };
		if (ft_tokenizer_encode(j->t, j->text, j->len, FT_TOK_SPLIT_SPECIAL, &ids, NULL) ||
		    ids.len != j->want->len ||
		    memcmp(ids.v, j->want->v, ids.len * sizeof(*ids.v)) != 0)
			j->bad++;
		ft_ids_release(&ids);
	}
	return NULL;
}

FT_TEST(one_tokenizer_shared_by_threads)
{
	struct ft_err err;
	struct ft_tokenizer *t = parse(spm, &err);
	FT_CHECK(t);
	const char *text = "a \xc3\xa9 <s>a a \xc3\xbc";
	struct ft_ids want = { 0 };
	FT_CHECK(ft_tokenizer_encode(t, text, strlen(text), FT_TOK_SPLIT_SPECIAL, &want, &err) ==
		 FT_OK);
	/* "▁a▁é▁" + <s> + "▁a▁a▁ü": 5 3 1 2 3 | 6 | 5 5 3 0 (hand-worked as above) */
	static const int32_t hand[] = { 5, 3, 1, 2, 3, 6, 5, 5, 3, 0 };
	FT_CHECK_INT(want.len, 10);
	FT_CHECK(memcmp(want.v, hand, sizeof(hand)) == 0);
	pthread_t th[4];
	struct thread_job jobs[4];
	for (int i = 0; i < 4; i++) {
		jobs[i] = (struct thread_job){ t, text, strlen(text), &want, 0 };
		FT_CHECK(pthread_create(&th[i], NULL, encode_many, &jobs[i]) == 0);
	}
	int bad = 0;
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		bad += jobs[i].bad;
	}
	ft_ids_release(&want);
	ft_tokenizer_free(t);
	FT_CHECK_INT(bad, 0);
}

FT_TEST_MAIN()
