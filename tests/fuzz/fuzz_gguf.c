/*
 * fuzz_gguf.c - the GGUF reader (ft_gguf_parse) on arbitrary bytes, then
 * everything built on what it accepts: every metadata value read through
 * the typed accessors, every tensor's bytes touched and (when small)
 * dequantised, the model config, the tensors under Hugging Face names, and
 * the tokenizer built from tokenizer.ggml.*, which encodes and decodes a
 * short text. Errors are fine; crashes, leaks, reads outside the buffer
 * and assertion failures are not.
 *
 * Seeds (corpus/gguf/, made by make_gguf_corpus.py with the gguf package):
 * a tiny Llama and a tiny Qwen2 with byte-level and SentencePiece
 * tokenizers, tensors of every dequantised type, rope_freqs, and
 * hand-broken files.
 */
#include "ft/gguf.h"
#include "ft/tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void touch_kv(const struct ft_gguf_kv *kv)
{
	unsigned sum = 0;
	if (kv->type == FT_GGUF_STRING) {
		for (uint64_t i = 0; i < kv->len; i++)
			sum += (unsigned char)kv->str[i];
	} else if (kv->type == FT_GGUF_ARRAY) {
		for (uint64_t i = 0; i < kv->n && i < 4096; i++) {
			if (kv->elem == FT_GGUF_STRING) {
				uint64_t len;
				const char *s = ft_gguf_arr_str(kv, i, &len);
				for (uint64_t k = 0; k < len; k++)
					sum += (unsigned char)s[k];
			} else if (kv->elem == FT_GGUF_FLOAT32 || kv->elem == FT_GGUF_FLOAT64) {
				sum += ft_gguf_arr_num(kv, i) > 0;
			} else {
				sum += (unsigned)ft_gguf_arr_int(kv, i);
			}
		}
	}
	(void)sum;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ft_gguf *g = NULL;
	struct ft_err err;
	ft_err_clear(&err);
	if (ft_gguf_parse(data, size, "fuzz.gguf", &g, &err) != FT_OK) {
		FT_ASSERT(g == NULL && err.rc != FT_OK && err.msg[0]);
		return 0;
	}
	for (size_t i = 0; i < ft_gguf_kv_count(g); i++) {
		const struct ft_gguf_kv *kv = ft_gguf_kv_at(g, i);
		FT_ASSERT(ft_gguf_kv_find(g, kv->key) == kv);
		touch_kv(kv);
	}
	for (size_t i = 0; i < ft_gguf_tensor_count(g); i++) {
		const struct ft_gguf_tensor *t = ft_gguf_tensor_at(g, i);
		FT_ASSERT(ft_gguf_tensor_find(g, t->name) == t);
		FT_ASSERT(t->data >= data && t->data + t->nbytes <= data + size);
		unsigned sum = 0;
		for (uint64_t b = 0; b < t->nbytes; b++)
			sum += t->data[b];
		(void)sum;
		const struct ft_ggml_type_info *ti = ft_ggml_type_info(t->type);
		if (ti && ti->dequant && t->nelem <= (1u << 16)) {
			float *out = malloc(t->nelem * sizeof(float) + 1);
			FT_ASSERT(out && ft_gguf_tensor_to_f32(g, t, out, &err) == FT_OK);
			free(out);
		}
	}
	struct ft_model_config c;
	ft_err_clear(&err);
	if (ft_gguf_model_config(g, &c, &err) == FT_OK) {
		static const char *const names[] = { "model.embed_tokens.weight",
						     "model.layers.0.self_attn.q_proj.weight",
						     "model.layers.0.self_attn.k_proj.weight",
						     "model.layers.0.self_attn.q_proj.bias" };
		for (size_t i = 0; i < FT_ARRAY_LEN(names); i++) {
			int nd;
			int64_t shape[2];
			const struct ft_gguf_tensor *t = ft_gguf_hf_find(g, names[i], &nd, shape);
			if (!t || t->nelem > (1u << 16))
				continue;
			float *out = malloc(t->nelem * sizeof(float) + 1);
			FT_ASSERT(out);
			ft_err_clear(&err);
			(void)ft_gguf_hf_to_f32(g, &c, names[i], out, t->nelem, &err);
			free(out);
		}
	}
	struct ft_tokenizer *tok = NULL;
	ft_err_clear(&err);
	if (ft_gguf_tokenizer(g, &tok, &err) == FT_OK) {
		static const char text[] = "Hello wor1d 12 \xe4\xbd\xa0\xe5\xa5\xbd <s></s>\xff";
		struct ft_ids ids = { 0 };
		struct ft_buf out = FT_BUF_INIT(1 << 20);
		if (ft_tokenizer_encode(tok, text, sizeof text - 1,
					FT_TOK_SPLIT_SPECIAL | FT_TOK_ADD_SPECIAL, &ids,
					&err) == FT_OK)
			(void)ft_tokenizer_decode(tok, ids.v, ids.len, 0, &out, &err);
		ft_buf_release(&out);
		ft_ids_release(&ids);
		ft_tokenizer_free(tok);
	} else {
		FT_ASSERT(tok == NULL && err.msg[0]);
	}
	ft_gguf_close(g);
	return 0;
}
