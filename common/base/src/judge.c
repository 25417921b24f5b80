/*
 * judge.c - ft/judge.h: the judge's prompt, request, reply and verdicts.
 */
#include "ft/judge.h"
#include "ft/json.h"

const char ft_judge_system[] =
	"You are a careful, impartial judge of the answers two AI assistants gave to the same "
	"user question.";

const char ft_judge_default_prompt[] =
	"Compare the two answers to the user's question below. Judge which answer is more "
	"helpful, correct, relevant and complete; do not let the order in which they are "
	"shown, their length or the assistants' names influence you. Explain briefly, then "
	"give your verdict on the last line, exactly one of: \"[[A]]\" if assistant A's answer "
	"is better, \"[[B]]\" if assistant B's answer is better, \"[[C]]\" for a tie.\n\n"
	"[User question]\n{question}\n\n"
	"[The start of assistant A's answer]\n{answer_1}\n[The end of assistant A's answer]\n\n"
	"[The start of assistant B's answer]\n{answer_2}\n[The end of assistant B's answer]\n";

static const char *const placeholders[] = { "{question}", "{answer_1}", "{answer_2}" };

static size_t count(const char *s, const char *what)
{
	size_t n = 0, l = strlen(what);
	for (const char *p = strstr(s, what); p; p = strstr(p + l, what))
		n++;
	return n;
}

enum ft_rc ft_judge_prompt_check(const char *tmpl, struct ft_err *err)
{
	size_t n = strlen(tmpl);
	if (n > FT_JUDGE_PROMPT_MAX) {
		ft_failf(err, FT_EINVAL, "invalid_value",
			 "\"judge.prompt\" is longer than %u bytes", FT_JUDGE_PROMPT_MAX);
		ft_err_param(err, "judge.prompt");
		return FT_EINVAL;
	}
	for (size_t i = 0; i < FT_ARRAY_LEN(placeholders); i++)
		if (count(tmpl, placeholders[i]) != 1) {
			ft_failf(err, FT_EINVAL, "invalid_value",
				 "\"judge.prompt\" must hold %s exactly once (it holds it %zu "
				 "times)",
				 placeholders[i], count(tmpl, placeholders[i]));
			ft_err_param(err, "judge.prompt");
			return FT_EINVAL;
		}
	return FT_OK;
}

enum ft_rc ft_judge_prompt_render(const char *tmpl, const char *question, const char *answer_1,
				  const char *answer_2, struct ft_buf *out)
{
	const char *values[] = { question, answer_1, answer_2 };
	ft_buf_reset(out);
	/* placeholders are found in the template only, never in the values */
	for (const char *p = tmpl; *p;) {
		size_t k = FT_ARRAY_LEN(placeholders);
		const char *next = NULL;
		for (size_t i = 0; i < FT_ARRAY_LEN(placeholders); i++) {
			const char *q = strstr(p, placeholders[i]);
			if (q && (!next || q < next))
				next = q, k = i;
		}
		if (!next)
			return ft_buf_addstr(out, p);
		if (ft_buf_add(out, p, (size_t)(next - p)) || ft_buf_addstr(out, values[k]))
			return FT_ELIMIT;
		p = next + strlen(placeholders[k]);
	}
	return FT_OK;
}

json_t *ft_judge_request(const char *model, const char *prompt, int max_tokens)
{
	return json_pack("{s:s, s:[{s:s, s:s}, {s:s, s:s}], s:i, s:i}", "model", model, "messages",
			 "role", "system", "content", ft_judge_system, "role", "user", "content",
			 prompt, "temperature", 0, "max_tokens", max_tokens);
}

enum ft_rc ft_judge_reply_content(const char *body, size_t len, struct ft_buf *content,
				  struct ft_err *err)
{
	json_t *v = json_loadb(body, len, 0, NULL);
	const char *why = NULL;
	json_t *c = NULL;
	if (!json_is_object(v))
		why = "the judge's answer is not a JSON object";
	else if (!json_is_array(json_object_get(v, "choices")) ||
		 !json_array_size(json_object_get(v, "choices")))
		why = "the judge's answer has no \"choices\"";
	else if (!json_is_string(
			 c = json_object_get(
				 json_object_get(json_array_get(json_object_get(v, "choices"), 0),
						 "message"),
				 "content")))
		why = "the judge's answer has no choices[0].message.content";
	enum ft_rc rc = why ? ft_failf(err, FT_EFORMAT, "judge_reply", "%s", why)
			    : ft_buf_add(content, json_string_value(c), json_string_length(c));
	if (rc == FT_ELIMIT)
		ft_failf(err, FT_ELIMIT, "judge_reply", "the judge's answer is too long");
	json_decref(v);
	return rc;
}

enum ft_judge_verdict ft_judge_verdict_parse(const char *text, size_t len)
{
	for (size_t i = len; i >= 5; i--) {
		const char *p = text + i - 5;
		if (p[0] == '[' && p[1] == '[' && p[3] == ']' && p[4] == ']') {
			if (p[2] == 'A')
				return FT_JUDGE_FIRST;
			if (p[2] == 'B')
				return FT_JUDGE_SECOND;
			if (p[2] == 'C')
				return FT_JUDGE_TIE;
		}
	}
	return FT_JUDGE_NONE;
}

const char *ft_judge_combine(enum ft_judge_verdict a_first, enum ft_judge_verdict b_first,
			     bool *consistent)
{
	*consistent = false;
	if (a_first == FT_JUDGE_NONE || b_first == FT_JUDGE_NONE)
		return NULL;
	/* in arm terms: which arm each order preferred (-1: a tie) */
	int x = a_first == FT_JUDGE_TIE ? -1 : a_first == FT_JUDGE_FIRST ? 0 : 1;
	int y = b_first == FT_JUDGE_TIE ? -1 : b_first == FT_JUDGE_FIRST ? 1 : 0;
	*consistent = x == y;
	if (x == y && x >= 0)
		return x == 0 ? "a" : "b";
	return "tie";
}
