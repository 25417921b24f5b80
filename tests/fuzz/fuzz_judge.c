/*
 * fuzz_judge.c - what ftplat reads from outside for A/B experiments
 * (ft/judge.h, ft/experiment.h) on arbitrary bytes: an LLM judge's reply
 * body (choices[0].message.content, then the verdict; the verdict must be
 * the last "[[X]]" the text holds), a judge prompt template given by a user
 * (checked, then rendered with values that look like placeholders), and an
 * arm label from the request log (parsed, written back the same). Nothing
 * may crash, read out of bounds or leak.
 */
#include <stdlib.h>
#include <string.h>

#include "ft/experiment.h"
#include "ft/judge.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ft_err err;
	struct ft_buf content = FT_BUF_INIT(FT_JUDGE_REPLY_MAX), out = FT_BUF_INIT(1 << 22);
	ft_err_clear(&err);
	if (ft_judge_reply_content((const char *)data, size, &content, &err) == FT_OK) {
		enum ft_judge_verdict v = ft_judge_verdict_parse(ft_buf_str(&content), content.len);
		FT_ASSERT(v >= FT_JUDGE_NONE && v <= FT_JUDGE_TIE);
	} else {
		FT_ASSERT(err.code[0]);
	}
	enum ft_judge_verdict v = ft_judge_verdict_parse((const char *)data, size);
	if (v != FT_JUDGE_NONE) { /* a verdict is a "[[X]]" the text holds */
		static const char marks[] = { 'A', 'B', 'C' };
		char want[6] = { '[', '[', marks[v], ']', ']', 0 };
		FT_ASSERT(memmem(data, size, want, 5) != NULL);
	}
	/* (not strndup: ASan's strict_string_checks reads past an unterminated input) */
	char *text = malloc(size + 1);
	if (text) {
		memcpy(text, data, size);
		text[size] = 0;
		ft_err_clear(&err);
		if (ft_judge_prompt_check(text, &err) == FT_OK)
			(void)!ft_judge_prompt_render(text, "{answer_1}", "{question}", "x", &out);
		bool c;
		(void)ft_judge_combine((enum ft_judge_verdict)(size % 4) - 1,
				       (enum ft_judge_verdict)(size / 4 % 4) - 1, &c);
		char id[FT_ID_MAX], arm[FT_EXP_ARM_NAME_MAX + 1], back[FT_EXP_LABEL_MAX];
		if (ft_experiment_arm_label_parse(text, id, sizeof(id), arm, sizeof(arm))) {
			FT_ASSERT(ft_experiment_arm_label(id, arm, back, sizeof(back)));
			FT_ASSERT(strcmp(back, text) == 0);
		}
		double w[2] = { 0.5, 0.5 };
		bool active[2] = { true, size % 2 == 0 };
		int a = ft_experiment_assign("exp-AAAAAAAAAAAAAAAAAAAAAAAA", text, w, active, 2);
		FT_ASSERT(a == 0 || a == 1);
		free(text);
	}
	ft_buf_release(&content);
	ft_buf_release(&out);
	return 0;
}
