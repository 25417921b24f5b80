/*
 * test_chat.c - chat template rendering (ft/chat.h): the exact text and the
 * exact segment labels for each family, written out by hand from the
 * families' Jinja templates (the peer test test_chat_template_peer.py checks
 * the same texts against transformers), and template recognition.
 */
#include "ft/chat.h"
#include "ftest.h"

#define MSG(r, s)                                                               \
	{                                                                       \
		.role = (r), .content = (s), .len = sizeof(s) - 1, .weight = -1 \
	}

static const struct ft_chat_msg conv[] = {
	MSG(FT_CHAT_SYSTEM, "Be brief."),   MSG(FT_CHAT_USER, "Hi"),
	MSG(FT_CHAT_ASSISTANT, " Hello! "), MSG(FT_CHAT_USER, "Bye"),
	MSG(FT_CHAT_ASSISTANT, "Ciao"),
};

/* The rendered text with trained bytes wrapped in [[ ]]. */
static char *marked(const struct ft_chat_render *r)
{
	struct ft_buf b = FT_BUF_INIT(1 << 20);
	for (size_t i = 0; i < r->n_segs; i++) {
		const struct ft_chat_seg *s = &r->segs[i];
		FT_ASSERT(ft_buf_addstr(&b, s->trained ? "[[" : "") == FT_OK);
		FT_ASSERT(ft_buf_add(&b, r->text.ptr + s->off, s->len) == FT_OK);
		FT_ASSERT(ft_buf_addstr(&b, s->trained ? "]]" : "") == FT_OK);
	}
	char *out = ft_buf_take(&b);
	ft_buf_release(&b);
	return out;
}

static char *render(const char *name, const struct ft_chat_msg *m, size_t n, unsigned flags,
		    bool want_marked)
{
	struct ft_chat_template *t;
	struct ft_chat_render r;
	struct ft_err err;
	ft_err_clear(&err);
	FT_ASSERT(ft_chat_template_new(name, "<s>", "</s>", &t, &err) == FT_OK);
	ft_chat_render_init(&r);
	enum ft_rc rc = ft_chat_render_messages(t, m, n, flags, &r, &err);
	char *out = rc		  ? ft_xstrdup(err.code)
		    : want_marked ? marked(&r)
				  : ft_xstrdup(ft_buf_str(&r.text));
	/* segments tile the text */
	size_t at = 0;
	for (size_t i = 0; i < r.n_segs; i++) {
		FT_ASSERT(r.segs[i].off == at);
		at += r.segs[i].len;
	}
	FT_ASSERT(rc || at == r.text.len);
	ft_chat_render_release(&r);
	ft_chat_template_free(t);
	return out;
}

#define CHECK_RENDER(name, m, n, flags, want)                                \
	do {                                                                 \
		char *got_ = render(name, m, n, flags, true);                \
		int ok_ = strcmp(got_, want) == 0;                           \
		if (!ok_)                                                    \
			fprintf(stderr, "got:  %s\nwant: %s\n", got_, want); \
		free(got_);                                                  \
		FT_CHECK(ok_);                                               \
	} while (0)

FT_TEST(llama3_masks_assistant_content_and_eot)
{
	CHECK_RENDER("llama3", conv, 5, 0,
		     "<s><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
		     "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
		     "<|start_header_id|>assistant<|end_header_id|>\n\n[[Hello!<|eot_id|>]]"
		     "<|start_header_id|>user<|end_header_id|>\n\nBye<|eot_id|>"
		     "<|start_header_id|>assistant<|end_header_id|>\n\n[[Ciao<|eot_id|>]]");
}

FT_TEST(llama3_generation_prompt)
{
	CHECK_RENDER("llama3", conv + 1, 1, FT_CHAT_ADD_GENERATION_PROMPT,
		     "<s><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
		     "<|start_header_id|>assistant<|end_header_id|>\n\n");
}

FT_TEST(chatml_masks_im_end_not_newline)
{
	CHECK_RENDER(
		"chatml", conv + 1, 2, 0,
		"<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n[[ Hello! <|im_end|>]]\n");
	CHECK_RENDER("qwen", conv, 2, FT_CHAT_ADD_GENERATION_PROMPT,
		     "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
		     "<|im_start|>assistant\n");
}

FT_TEST(chatml_default_system_from_jinja)
{
	/* the Qwen2.5 template's else-branch, as written in tokenizer_config.json */
	const char *jinja =
		"{%- if messages[0]['role'] == 'system' %}\n"
		"    {{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}\n"
		"{%- else %}\n"
		"    {{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a "
		"helpful assistant.<|im_end|>\\n' }}\n{%- endif %}";
	struct ft_chat_template *t;
	struct ft_chat_render r;
	struct ft_err err;
	ft_err_clear(&err);
	FT_CHECK(ft_chat_template_from_jinja(jinja, "", "<|im_end|>", &t, &err) == FT_OK);
	FT_CHECK_STR(ft_chat_template_name(t), "chatml");
	FT_CHECK_STR(ft_chat_template_default_system(t),
		     "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.");
	ft_chat_render_init(&r);
	FT_CHECK(ft_chat_render_messages(t, conv + 1, 1, 0, &r, &err) == FT_OK);
	FT_CHECK_STR(
		ft_buf_str(&r.text),
		"<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful "
		"assistant.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n");
	FT_CHECK(r.segs[0].msg == -1 && !r.segs[0].trained);
	ft_chat_render_release(&r);
	ft_chat_template_free(t);
}

FT_TEST(mistral_system_joins_first_user)
{
	CHECK_RENDER("mistral", conv, 5, 0,
		     "<s> [INST] Be brief.\n\nHi [/INST] [[ Hello! </s>]] [INST] Bye [/INST] "
		     "[[Ciao</s>]]");
}

FT_TEST(llama2_sys_block_and_strip)
{
	CHECK_RENDER("llama2", conv, 5, 0,
		     "<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST] [[Hello! </s>]]"
		     "<s>[INST] Bye [/INST] [[Ciao </s>]]");
}

FT_TEST(inst_families_need_alternating_roles)
{
	static const struct ft_chat_msg bad[] = { MSG(FT_CHAT_USER, "a"), MSG(FT_CHAT_USER, "b"),
						  MSG(FT_CHAT_ASSISTANT, "c") };
	char *got = render("mistral", bad, 3, 0, false);
	FT_CHECK_STR(got, "invalid_role_order");
	free(got);
	got = render("llama2", bad, 3, 0, false);
	FT_CHECK_STR(got, "invalid_role_order");
	free(got);
	got = render("llama3", bad, 3, 0, false); /* llama3 takes any order */
	FT_CHECK(strncmp(got, "<s><|start_header_id|>user", 26) == 0);
	free(got);
}

FT_TEST(alpaca_and_plain)
{
	CHECK_RENDER("alpaca", conv + 1, 2, 0,
		     "<s>Below is an instruction that describes a task. Write a response that "
		     "appropriately completes the request.\n\n### Instruction:\nHi\n\n"
		     "### Response:\n[[ Hello! </s>]]\n\n");
	CHECK_RENDER("plain", conv + 1, 2, 0, "<s>Hi\n[[ Hello! </s>]]");
}

FT_TEST(weight_zero_and_train_on_inputs)
{
	struct ft_chat_msg m[3] = { MSG(FT_CHAT_USER, "Q"), MSG(FT_CHAT_ASSISTANT, "A"),
				    MSG(FT_CHAT_ASSISTANT, "B") };
	m[1].weight = 0;
	CHECK_RENDER("chatml", m, 3, 0,
		     "<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\nA<|im_end|>\n"
		     "<|im_start|>assistant\n[[B<|im_end|>]]\n");
	CHECK_RENDER("chatml", m, 3, FT_CHAT_TRAIN_ON_INPUTS,
		     "[[<|im_start|>user\nQ<|im_end|>\n]]<|im_start|>assistant\nA<|im_end|>\n"
		     "[[<|im_start|>assistant\nB<|im_end|>\n]]");
}

FT_TEST(python_strip_unicode_spaces)
{
	/* U+3000 and U+00A0 are str.strip() whitespace; U+200B is not */
	static const struct ft_chat_msg m[] = {
		MSG(FT_CHAT_USER, "\xe3\x80\x80 x\xc2\xa0\t"),
		MSG(FT_CHAT_ASSISTANT, "\xe2\x80\x8by"),
	};
	CHECK_RENDER(
		"llama3", m, 2, 0,
		"<s><|start_header_id|>user<|end_header_id|>\n\nx<|eot_id|>"
		"<|start_header_id|>assistant<|end_header_id|>\n\n[[\xe2\x80\x8by<|eot_id|>]]");
}

FT_TEST(recognise_jinja_families)
{
	static const struct {
		const char *jinja, *want;
	} cases[] = {
		{ "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + "
		  "message['content'] | trim + '<|eot_id|>' }}",
		  "llama3" },
		{ "{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + "
		  "'<|im_end|>'}}",
		  "chatml" },
		{ "{{ bos_token + '[INST] ' + '<<SYS>>\\n' }}", "llama2" },
		{ "{{- ' [INST] ' + message['content'] + ' [/INST]' }}", "mistral" },
		{ "### Instruction:\\n{{ instruction }}", "alpaca" },
	};
	for (size_t i = 0; i < FT_ARRAY_LEN(cases); i++) {
		struct ft_chat_template *t;
		struct ft_err err;
		ft_err_clear(&err);
		FT_CHECK(ft_chat_template_from_jinja(cases[i].jinja, "<s>", "</s>", &t, &err) ==
			 FT_OK);
		FT_CHECK_STR(ft_chat_template_name(t), cases[i].want);
		FT_CHECK(ft_chat_template_default_system(t) == NULL);
		ft_chat_template_free(t);
	}
}

FT_TEST(unknown_template_lists_names)
{
	struct ft_chat_template *t = (struct ft_chat_template *)1;
	struct ft_err err;
	ft_err_clear(&err);
	FT_CHECK(ft_chat_template_new("vicuna", "", "", &t, &err) == FT_EINVAL);
	FT_CHECK(t == NULL);
	FT_CHECK_STR(err.code, "unknown_template");
	FT_CHECK_STR(err.msg, "template \"vicuna\" is not a known chat template");
	FT_CHECK_STR(err.hint,
		     "name one of: llama3, chatml (qwen), mistral, llama2, alpaca, plain");
	ft_err_clear(&err);
	/* Llama 3.1's dated system block is not the llama3 family */
	FT_CHECK(
		ft_chat_template_from_jinja("<|start_header_id|> <|eot_id|> Cutting Knowledge Date",
					    "", "", &t, &err) == FT_EINVAL);
	FT_CHECK_STR(err.code, "unknown_template");
}

FT_TEST_MAIN()
