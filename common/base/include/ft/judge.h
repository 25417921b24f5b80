/*
 * ft/judge.h - the LLM judge of A/B experiments, written down once: the
 * prompt, the request sent to any OpenAI-compatible endpoint, the verdict
 * read from its reply, and how the two orders combine. ft-api checks a
 * prompt when an experiment is created; ft-scheduler's judge thread
 * (scheduler/src/judge.c) asks the judge.
 *
 * Both orders, to cancel position bias (Zheng et al. 2023, "Judging
 * LLM-as-a-judge", MT-Bench's pairwise judge): the judge is asked twice,
 * with arm A's answer first, then with arm B's first. Each reply ends with
 * a verdict: the last of "[[A]]" (the first answer is better), "[[B]]" (the
 * second), "[[C]]" (a tie) in its text. In arm terms:
 *
 *   A first says   B first says   outcome
 *   A (arm A)      B (arm A)      a
 *   B (arm B)      A (arm B)      b
 *   anything else  (disagree, a tie in either)   tie, "consistent": false
 *                                                unless both said tie
 *
 * A reply without a verdict is an error (the judgment is retried, then
 * fails); it is never guessed.
 *
 * The request: POST <url>/chat/completions with
 *   {"model", "messages": [{"role": "system", "content": FT_JUDGE_SYSTEM},
 *                          {"role": "user", "content": <the prompt>}],
 *    "temperature": 0, "max_tokens": <max_tokens>}
 * and "Authorization: Bearer <api key>" when the experiment has one. The
 * prompt is the experiment's template (or ft_judge_default_prompt) with
 * {question}, {answer_1}, {answer_2} replaced, each exactly once.
 */
#ifndef FT_JUDGE_H
#define FT_JUDGE_H

#include <jansson.h>

#include "ft/buf.h"
#include "ft/err.h"

#define FT_JUDGE_PROMPT_MAX (16u << 10) /* bytes of a template */
#define FT_JUDGE_REPLY_MAX (1u << 20) /* bytes of a judge's answer read */

enum ft_judge_verdict {
	FT_JUDGE_NONE = -1, /* no verdict in the reply */
	FT_JUDGE_FIRST = 0, /* [[A]] */
	FT_JUDGE_SECOND, /* [[B]] */
	FT_JUDGE_TIE, /* [[C]] */
};

extern const char ft_judge_system[];
extern const char ft_judge_default_prompt[];

/* A template: valid UTF-8 without NUL, at most FT_JUDGE_PROMPT_MAX bytes,
 * each placeholder exactly once. err->param is "judge.prompt". */
enum ft_rc ft_judge_prompt_check(const char *tmpl, struct ft_err *err);
/* The template (already checked) with the placeholders replaced. */
enum ft_rc ft_judge_prompt_render(const char *tmpl, const char *question, const char *answer_1,
				  const char *answer_2, struct ft_buf *out) FT_WARN_UNUSED;
/* The request body (a new reference). */
json_t *ft_judge_request(const char *model, const char *prompt, int max_tokens);
/* choices[0].message.content of an OpenAI chat completion body, appended
 * to content; FT_EFORMAT naming what is missing. */
enum ft_rc ft_judge_reply_content(const char *body, size_t len, struct ft_buf *content,
				  struct ft_err *err);
/* The last verdict in text[0..len). */
enum ft_judge_verdict ft_judge_verdict_parse(const char *text, size_t len);
/* The outcome ("a", "b", "tie") of the two orders' verdicts (the table
 * above); NULL when either has none. */
const char *ft_judge_combine(enum ft_judge_verdict a_first, enum ft_judge_verdict b_first,
			     bool *consistent);

#endif
