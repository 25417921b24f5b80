/*
 * ft/tokenizer.h - Hugging Face tokenizer.json BPE tokenizers.
 *
 * Two families, as in the models we train:
 *  - byte-level BPE (GPT-2, Llama 3, Qwen2): ByteLevel pre-tokenizer with a
 *    split regex using \p{L} / \p{N} classes, bytes mapped to printable
 *    characters, optional ignore_merges;
 *  - SentencePiece-style BPE (Llama 2, Mistral, TinyLlama): the metaspace
 *    "▁" replaces spaces (Prepend/Replace normalizers or Metaspace
 *    pre-tokenizer), unknown characters fall back to <0xXX> byte tokens.
 * Added tokens (special or not) are split out of the text before
 * pre-tokenization when FT_TOK_SPLIT_SPECIAL is given, honouring their
 * lstrip / rstrip / single_word / normalized flags. Without the flag, special
 * tokens are plain text; added tokens not marked special are still split out,
 * as the tokenizers package does (its encode_special_tokens = True).
 *
 * Ownership: ft_tokenizer_load returns an object freed by ft_tokenizer_free;
 * it is immutable afterwards and safe to share between threads.
 */
#ifndef FT_TOKENIZER_H
#define FT_TOKENIZER_H

#include "ft/base.h"
#include "ft/buf.h"
#include "ft/err.h"
#include "ft/json.h"

/* A growable list of token ids. */
struct ft_ids {
	int32_t *v;
	size_t len;
	size_t cap;
};
void ft_ids_release(struct ft_ids *ids);
enum ft_rc ft_ids_push(struct ft_ids *ids, int32_t id) FT_WARN_UNUSED;

enum ft_tok_flags {
	FT_TOK_SPLIT_SPECIAL = 1 << 0, /* recognise added/special tokens inside the text */
	FT_TOK_ADD_SPECIAL = 1 << 1, /* apply the post-processor (e.g. prepend BOS) */
	FT_TOK_SKIP_SPECIAL = 1 << 2, /* decode: drop special tokens */
};

struct ft_tokenizer;

/* Load tokenizer.json text (len bytes). */
enum ft_rc ft_tokenizer_parse(const char *json_text, size_t len, struct ft_tokenizer **out,
			      struct ft_err *err);
/* Load DIR/tokenizer.json and, when present, DIR/tokenizer_config.json (for
 * bos/eos tokens, add_bos_token / add_eos_token and chat_template; integers
 * beyond 64 bits such as transformers' "no limit" model_max_length are
 * read) and DIR/chat_template.jinja (transformers 5's place for the
 * template; it wins over the config's). DIR may also be a GGUF file: its
 * tokenizer.ggml.* metadata is built into the same structures (ft/gguf.h). */
enum ft_rc ft_tokenizer_load(const char *model_dir, struct ft_tokenizer **out, struct ft_err *err);
void ft_tokenizer_free(struct ft_tokenizer *t);

/* Append the ids of text[0..len) to out. Invalid UTF-8 never fails: bytes are
 * encoded as the reference implementation does (U+FFFD / byte fallback). */
enum ft_rc ft_tokenizer_encode(const struct ft_tokenizer *t, const char *text, size_t len,
			       unsigned flags, struct ft_ids *out, struct ft_err *err);
/* Append the decoded text of ids to out (the tokenizers package's decode). */
enum ft_rc ft_tokenizer_decode(const struct ft_tokenizer *t, const int32_t *ids, size_t n,
			       unsigned flags, struct ft_buf *out, struct ft_err *err);

size_t ft_tokenizer_vocab_size(const struct ft_tokenizer *t); /* incl. added tokens */

/* Byte pieces: the tokens that hold part of a character, so that decoded
 * alone they give U+FFFD (a byte-level BPE split of a character, or a
 * SentencePiece <0xNN> byte-fallback token of a byte >= 0x80). Text the
 * vocabulary covers poorly (a new script, emoji, binary) is spelled in
 * them: the request log counts them (ft/reqlog.h) and the drift monitor
 * watches their share. A malloc'd table of ft_tokenizer_vocab_size flags,
 * or NULL when out of memory. */
bool *ft_tokenizer_byte_pieces(const struct ft_tokenizer *t);
int32_t ft_tokenizer_token_to_id(const struct ft_tokenizer *t, const char *token); /* -1: none */
const char *ft_tokenizer_id_to_token(const struct ft_tokenizer *t, int32_t id); /* NULL: none */
bool ft_tokenizer_is_special(const struct ft_tokenizer *t, int32_t id);

/* From tokenizer_config.json when loaded with ft_tokenizer_load; -1 / NULL
 * when absent. */
int32_t ft_tokenizer_bos_id(const struct ft_tokenizer *t);
int32_t ft_tokenizer_eos_id(const struct ft_tokenizer *t);
int32_t ft_tokenizer_pad_id(const struct ft_tokenizer *t);
bool ft_tokenizer_adds_bos(const struct ft_tokenizer *t);
const char *ft_tokenizer_chat_template(const struct ft_tokenizer *t);

#endif
