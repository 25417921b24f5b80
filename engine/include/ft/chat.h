/*
 * ft/chat.h - chat templates by name, rendered as labelled segments.
 *
 * A template turns a conversation (system / user / assistant messages) into
 * the text the model is trained on. Instead of running the model's Jinja
 * template, ftplat renders the known families natively and records, for
 * every piece of the text, which message it came from and whether it is
 * trained; the dataset code tokenizes the text and turns the segments into
 * labels, so loss masks come out exactly.
 *
 * Families (the text written for messages m0..mN; "{c}" is the content):
 *
 *   llama3   {bos} then per message
 *              <|start_header_id|>{role}<|end_header_id|>\n\n{c|trim}<|eot_id|>
 *            generation prompt <|start_header_id|>assistant<|end_header_id|>\n\n
 *   chatml   per message <|im_start|>{role}\n{c}<|im_end|>\n ; when the model's
 *            template has a default system message (Qwen2.5: "You are Qwen,
 *            ...") and m0 is not a system message, it is written first.
 *            generation prompt <|im_start|>assistant\n
 *   mistral  {bos} then per user turn " [INST] {c} [/INST]", per assistant
 *            turn " {c}{eos}"; a leading system message is written before
 *            the first user content followed by "\n\n" (Mistral-7B-Instruct
 *            v0.2 / Mixtral template). Roles must alternate user/assistant.
 *   llama2   per user turn "{bos}[INST] {c|strip} [/INST]", per assistant
 *            turn " {c|strip} {eos}"; a leading system message becomes
 *            "<<SYS>>\n{s}\n<</SYS>>\n\n" before the first user content.
 *            Roles must alternate user/assistant.
 *   alpaca   {bos}{system, or the Alpaca preamble}\n\n then per user turn
 *            "### Instruction:\n{c}\n\n", per assistant turn
 *            "### Response:\n{c}{eos}\n\n"; generation prompt "### Response:\n"
 *   plain    {bos} then per message {c} followed by "\n", except that an
 *            assistant message is followed by {eos}.
 *
 * Trained segments: by default the content of assistant messages and the
 * end-of-turn marker that closes them (<|eot_id|>, <|im_end|>, {eos}), so
 * the model learns to stop; headers, newlines after the end-of-turn marker,
 * BOS and all other messages are not trained. An assistant message with
 * weight 0 is not trained. FT_CHAT_TRAIN_ON_INPUTS trains every segment
 * except those of weight-0 messages.
 *
 * Picking a family: by name ("llama3", "chatml" (alias "qwen"), "mistral",
 * "llama2", "alpaca", "plain"), or from the Jinja text of a model's
 * tokenizer_config.json "chat_template", recognised by distinctive
 * substrings (see the table in chat_template.c). An unrecognised template
 * is an error that lists the names so the job can name one.
 *
 * Ownership: a template from ft_chat_template_new/_from_jinja is freed with
 * ft_chat_template_free and is immutable (shareable). Messages are borrowed
 * while rendering; struct ft_chat_render owns its text and segments.
 */
#ifndef FT_CHAT_H
#define FT_CHAT_H

#include "ft/base.h"
#include "ft/buf.h"
#include "ft/err.h"
#include "ft/json.h"

enum ft_chat_role { FT_CHAT_SYSTEM = 0, FT_CHAT_USER, FT_CHAT_ASSISTANT, FT_CHAT_ROLE_COUNT };

/* "system", "user", "assistant". */
const char *ft_chat_role_name(enum ft_chat_role r);

struct ft_chat_msg {
	enum ft_chat_role role;
	const char *content; /* borrowed, need not be NUL-terminated */
	size_t len;
	int weight; /* 1 or 0 as given in the data; -1 when not given */
};

enum ft_chat_family {
	FT_CHAT_LLAMA3 = 0,
	FT_CHAT_CHATML,
	FT_CHAT_MISTRAL,
	FT_CHAT_LLAMA2,
	FT_CHAT_ALPACA,
	FT_CHAT_PLAIN,
	FT_CHAT_FAMILY_COUNT
};

/* Comma-separated list of the names, for error messages and --help. */
const char *ft_chat_template_names(void);

struct ft_chat_template;

/* A template by name. bos / eos are the text of the tokenizer's special
 * tokens ("<s>", "</s>", "<|begin_of_text|>"); either may be NULL or "" when
 * the tokenizer has none. Unknown name: FT_EINVAL "unknown_template" listing
 * the names. */
enum ft_rc ft_chat_template_new(const char *name, const char *bos, const char *eos,
				struct ft_chat_template **out, struct ft_err *err);
/* Recognise the family of a Jinja chat template (tokenizer_config.json's
 * "chat_template"). Unrecognised: FT_EINVAL "unknown_template". */
enum ft_rc ft_chat_template_from_jinja(const char *jinja, const char *bos, const char *eos,
				       struct ft_chat_template **out, struct ft_err *err);
void ft_chat_template_free(struct ft_chat_template *t);

enum ft_chat_family ft_chat_template_family(const struct ft_chat_template *t);
const char *ft_chat_template_name(const struct ft_chat_template *t);
/* The default system message taken from the Jinja text, or NULL. */
const char *ft_chat_template_default_system(const struct ft_chat_template *t);
const char *ft_chat_template_eos(const struct ft_chat_template *t); /* "" when none */

/* One piece of rendered text. */
struct ft_chat_seg {
	size_t off, len; /* bytes of the rendered text */
	int msg; /* index of the message it belongs to; -1: none (BOS, generation prompt, default system) */
	bool trained;
};

struct ft_chat_render {
	struct ft_buf text; /* the rendered text, NUL-terminated */
	struct ft_chat_seg *segs;
	size_t n_segs, cap_segs;
};

void ft_chat_render_init(struct ft_chat_render *r);
void ft_chat_render_release(struct ft_chat_render *r);
void ft_chat_render_reset(struct ft_chat_render *r);

enum ft_chat_flags {
	FT_CHAT_ADD_GENERATION_PROMPT = 1 << 0, /* end with the assistant header */
	FT_CHAT_TRAIN_ON_INPUTS = 1 << 1, /* train every segment but weight-0 messages */
	FT_CHAT_NO_BOS = 1 << 2, /* leave the BOS text out (continuations) */
};

/* Render msgs[0..n) appending to r (which is reset first). Errors (FT_EINVAL):
 * "invalid_role_order" when the family needs alternating user/assistant
 * roles and the messages do not alternate, or a system message is not
 * first. The error names the message index in err->param ("messages[3]"). */
enum ft_rc ft_chat_render_messages(const struct ft_chat_template *t, const struct ft_chat_msg *msgs,
				   size_t n, unsigned flags, struct ft_chat_render *r,
				   struct ft_err *err);

/* Ollama's TEMPLATE for the family (Go text/template over .Messages; the
 * rules and limits are in chat_template.c), appended to out.
 * llama_adds_bos: the model's tokenizer adds BOS (tokenizer.ggml.add_bos_token),
 * so the template leaves out the BOS text that starts the conversation. */
enum ft_rc ft_chat_template_ollama(const struct ft_chat_template *t, bool llama_adds_bos,
				   struct ft_buf *out) FT_WARN_UNUSED;
/* The strings that end an assistant turn or start another one (a
 * Modelfile's PARAMETER stop); up to max into out, returns how many. */
size_t ft_chat_template_stops(const struct ft_chat_template *t, const char **out, size_t max);

/* Append a segment to r (used by the dataset code for non-chat formats). */
enum ft_rc ft_chat_render_add(struct ft_chat_render *r, const char *text, size_t len, int msg,
			      bool trained) FT_WARN_UNUSED;

#endif
