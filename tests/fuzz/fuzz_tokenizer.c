/*
 * fuzz_tokenizer.c - tokenizer.json loading, encoding and decoding.
 *
 * Input: tokenizer.json bytes, optionally followed by a NUL byte and a text
 * to encode (any bytes, invalid UTF-8 welcome). Without a text, a fixed mix
 * of scripts, spaces and special-token look-alikes is encoded. Every
 * encoding is decoded again, and so is every id up to the vocabulary size
 * (capped), with and without skipping special tokens.
 */
#include "ft/tokenizer.h"

static const char *const texts[] = {
	"",
	" ",
	"Hello world's  test 123!!\n\n",
	"I'M here 12345 ok?\r\n  x\t\ty",
	("\xe4\xbd\xa0\xe5\xa5\xbd\xef\xbc\x8c\xe4\xb8\x96\xe7\x95\x8c "
	 "\xf0\x9f\x98\x80\xf0\x9f\x91\x8d"),
	"<s>hi</s> <|begin_of_text|>x<|eot_id|> <mask> <unk>",
	"\xff\xfe\xc3\x28\xed\xa0\x80\xf4\x90\x80\x80 \xe2\x96\x81\xc4\xa0",
};

static void run(const struct ft_tokenizer *t, const char *s, size_t n)
{
	static const unsigned modes[] = { 0, FT_TOK_SPLIT_SPECIAL,
					  FT_TOK_SPLIT_SPECIAL | FT_TOK_ADD_SPECIAL };
	for (size_t m = 0; m < FT_ARRAY_LEN(modes); m++) {
		struct ft_ids ids = { 0 };
		struct ft_buf out = FT_BUF_INIT((size_t)1 << 24);
		struct ft_err err;
		ft_err_clear(&err);
		if (ft_tokenizer_encode(t, s, n, modes[m], &ids, &err) == FT_OK) {
			for (size_t i = 0; i < ids.len; i++)
				FT_ASSERT(ft_tokenizer_id_to_token(t, ids.v[i]) != NULL);
			(void)ft_tokenizer_decode(t, ids.v, ids.len, m ? FT_TOK_SKIP_SPECIAL : 0,
						  &out, &err);
		}
		ft_buf_release(&out);
		ft_ids_release(&ids);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *d = (const char *)data;
	const char *nul = memchr(d, 0, size);
	size_t jlen = nul ? (size_t)(nul - d) : size;
	struct ft_tokenizer *t = NULL;
	struct ft_err err;
	ft_err_clear(&err);
	if (ft_tokenizer_parse(d, jlen, &t, &err) != FT_OK) {
		FT_ASSERT(err.msg[0] != 0);
		return 0;
	}
	if (nul) {
		run(t, nul + 1, size - jlen - 1);
	} else {
		for (size_t i = 0; i < FT_ARRAY_LEN(texts); i++)
			run(t, texts[i], strlen(texts[i]));
	}
	size_t nv = ft_tokenizer_vocab_size(t);
	if (nv > 4096)
		nv = 4096;
	int32_t *all = malloc((nv + 3) * sizeof(*all));
	if (all) {
		for (size_t i = 0; i < nv; i++)
			all[i] = (int32_t)i;
		all[nv] = -1;
		all[nv + 1] = INT32_MAX;
		all[nv + 2] = (int32_t)nv;
		for (unsigned fl = 0; fl <= FT_TOK_SKIP_SPECIAL; fl += FT_TOK_SKIP_SPECIAL) {
			struct ft_buf out = FT_BUF_INIT((size_t)1 << 24);
			(void)ft_tokenizer_decode(t, all, nv + 3, fl, &out, &err);
			ft_buf_release(&out);
		}
		free(all);
	}
	(void)ft_tokenizer_bos_id(t);
	ft_tokenizer_free(t);
	return 0;
}
