/*
 * test_experiment.c - ft/experiment.h: the assignment hash against values
 * Python's hashlib gave (int.from_bytes(sha256(id + b"\0" + salt +
 * key)[:8], "big") >> 11) * 2**-53, printed as hex floats), the arms a key
 * lands on with and without a stopped arm, the weights' rule with its
 * messages, and the request log's arm label; ft/judge.h: prompts, verdicts
 * and the two orders' table; the routing object an endpoint is pushed
 * (parsed, written back the same, refused by field) and the arm it routes
 * a request to in each state.
 */
#include "ft/experiment.h"
#include "ft/judge.h"
#include "ft/reqlog.h"
#include "ftest.h"

#define EXP "exp-AAAAAAAAAAAAAAAAAAAAAAAA"

FT_TEST(hash_equals_hashlib)
{
	FT_CHECK(ft_experiment_hash(EXP, "", "alice") == 0x1.8e1d3466968e2p-2);
	FT_CHECK(ft_experiment_hash(EXP, "1", "alice") == 0x1.30412226b523ap-2);
	FT_CHECK(ft_experiment_hash(EXP, "", "dave") == 0x1.122e9493091d5p-1);
	FT_CHECK(ft_experiment_hash(EXP, "1", "dave") == 0x1.af01098b5f800p-5);
	FT_CHECK(ft_experiment_hash(EXP, "", "u6") == 0x1.6fed8b83a50b9p-1);
	FT_CHECK(ft_experiment_hash(EXP, "1", "u6") == 0x1.b79dbab4dc062p-1);
}

FT_TEST(sticky_arms_and_a_stopped_arm)
{
	const double w[3] = { 0.5, 0.3, 0.2 };
	const bool all[3] = { true, true, true }, no1[3] = { true, false, true };
	const bool none[3] = { false, false, false };
	/* alice u = 0.389 < 0.5: the control, stopped arm or not */
	FT_CHECK_INT(ft_experiment_assign(EXP, "alice", w, all, 3), 0);
	FT_CHECK_INT(ft_experiment_assign(EXP, "alice", w, no1, 3), 0);
	/* dave u = 0.536: arm 1; with arm 1 stopped, u' = 0.053 of 0.7: arm 0 */
	FT_CHECK_INT(ft_experiment_assign(EXP, "dave", w, all, 3), 1);
	FT_CHECK_INT(ft_experiment_assign(EXP, "dave", w, no1, 3), 0);
	/* u6 u = 0.719: arm 1; stopped, u' = 0.859, 0.859 * 0.7 >= 0.5: arm 2 */
	FT_CHECK_INT(ft_experiment_assign(EXP, "u6", w, all, 3), 1);
	FT_CHECK_INT(ft_experiment_assign(EXP, "u6", w, no1, 3), 2);
	FT_CHECK_INT(ft_experiment_assign(EXP, "u6", w, none, 3), -1);
	/* a weight of 0 takes nothing */
	const double w0[2] = { 0.0, 1.0 };
	const bool both[2] = { true, true };
	FT_CHECK_INT(ft_experiment_assign(EXP, "alice", w0, both, 2), 1);
	FT_CHECK_INT(ft_experiment_assign(EXP, "alice", w, all, 0), -1);
}

FT_TEST(weights_must_sum_to_one)
{
	struct ft_err err;
	const double ok[3] = { 0.5, 0.25, 0.25 }, third[3] = { 1.0 / 3, 1.0 / 3, 1.0 / 3 };
	const double bad[2] = { 0.5, 0.4 }, neg[2] = { 1.5, -0.5 };
	ft_err_clear(&err);
	FT_CHECK(ft_experiment_weights_check(ok, 3, &err) == FT_OK);
	FT_CHECK(ft_experiment_weights_check(third, 3, &err) == FT_OK);
	FT_CHECK(ft_experiment_weights_check(bad, 2, &err) == FT_EINVAL);
	FT_CHECK_STR(err.param, "arms");
	FT_CHECK_STR(err.code, "invalid_weights");
	FT_CHECK_STR(err.msg, "the arms' weights must sum to 1 (they sum to 0.90000000000000002)");
	ft_err_clear(&err);
	FT_CHECK(ft_experiment_weights_check(neg, 2, &err) == FT_EINVAL);
	FT_CHECK_STR(err.param, "arms[0].weight");
	ft_err_clear(&err);
	FT_CHECK(ft_experiment_weights_check(ok, 1, &err) == FT_EINVAL);
	FT_CHECK_STR(err.msg, "\"arms\" must list 2 to 16 arms (got 1)");
}

FT_TEST(arm_names_and_labels)
{
	char label[128], id[64], arm[80];
	FT_CHECK(ft_experiment_arm_name_ok("control") && ft_experiment_arm_name_ok("v2.1-b_x"));
	FT_CHECK(!ft_experiment_arm_name_ok("") && !ft_experiment_arm_name_ok("-x") &&
		 !ft_experiment_arm_name_ok("a b") && !ft_experiment_arm_name_ok("a:b"));
	FT_CHECK(ft_experiment_arm_label(EXP, "candidate", label, sizeof(label)));
	FT_CHECK_STR(label, EXP ":candidate");
	FT_CHECK(ft_experiment_arm_label_parse(label, id, sizeof(id), arm, sizeof(arm)));
	FT_CHECK_STR(id, EXP);
	FT_CHECK_STR(arm, "candidate");
	FT_CHECK(!ft_experiment_arm_label_parse("b", id, sizeof(id), arm, sizeof(arm)));
	FT_CHECK(!ft_experiment_arm_label_parse("exp-x:b", id, sizeof(id), arm, sizeof(arm)));
	FT_CHECK(!ft_experiment_arm_label_parse(EXP ":", id, sizeof(id), arm, sizeof(arm)));
	/* the longest label is one the request log takes (ft-serve's header) */
	char longest[FT_EXP_ARM_NAME_MAX + 1];
	memset(longest, 'z', FT_EXP_ARM_NAME_MAX);
	longest[FT_EXP_ARM_NAME_MAX] = '\0';
	FT_CHECK(ft_experiment_arm_name_ok(longest));
	FT_CHECK(ft_experiment_arm_label(EXP, longest, label, sizeof(label)));
	FT_CHECK(ft_reqlog_text_ok(FT_RL_EXPERIMENT_ARM, label));
	longest[FT_EXP_ARM_NAME_MAX - 1] = '\0';
	FT_CHECK(strlen(label) == 61);
	FT_CHECK(!ft_experiment_arm_name_ok("a123456789b123456789c123456789d12"));
	FT_CHECK(!ft_experiment_arm_label(EXP, "candidate", label, 10));
	FT_CHECK_STR(label, "");
}

FT_TEST(judge_prompts)
{
	struct ft_err err;
	struct ft_buf b = FT_BUF_INIT(1 << 20);
	ft_err_clear(&err);
	FT_CHECK(ft_judge_prompt_check(ft_judge_default_prompt, &err) == FT_OK);
	FT_CHECK(ft_judge_prompt_check("Q {question} A {answer_1}", &err) == FT_EINVAL);
	FT_CHECK_STR(err.param, "judge.prompt");
	FT_CHECK_STR(err.msg, "\"judge.prompt\" must hold {answer_2} exactly once (it holds it 0 "
			      "times)");
	FT_CHECK(ft_judge_prompt_render("Q={question} 1={answer_1} 2={answer_2}.",
					"why {answer_2}?", "x", "y", &b) == FT_OK);
	/* a value that looks like a placeholder is left as it is */
	FT_CHECK_STR(ft_buf_str(&b), "Q=why {answer_2}? 1=x 2=y.");
	ft_buf_release(&b);
}

FT_TEST(judge_verdicts_and_the_two_orders)
{
	static const struct {
		const char *text;
		enum ft_judge_verdict v;
	} cases[] = {
		{ "A is better. [[A]]", FT_JUDGE_FIRST },
		{ "[[A]] at first, but on reflection [[B]]", FT_JUDGE_SECOND },
		{ "tie: [[C]]\n", FT_JUDGE_TIE },
		{ "no verdict [[D]] [A] [[a]]", FT_JUDGE_NONE },
		{ "", FT_JUDGE_NONE },
		{ "[[A]", FT_JUDGE_NONE },
	};
	for (size_t i = 0; i < FT_ARRAY_LEN(cases); i++)
		FT_CHECK(ft_judge_verdict_parse(cases[i].text, strlen(cases[i].text)) ==
			 cases[i].v);
	bool c;
	FT_CHECK_STR(ft_judge_combine(FT_JUDGE_FIRST, FT_JUDGE_SECOND, &c), "a");
	FT_CHECK(c);
	FT_CHECK_STR(ft_judge_combine(FT_JUDGE_SECOND, FT_JUDGE_FIRST, &c), "b");
	FT_CHECK(c);
	/* position bias: "the first" both times is no preference */
	FT_CHECK_STR(ft_judge_combine(FT_JUDGE_FIRST, FT_JUDGE_FIRST, &c), "tie");
	FT_CHECK(!c);
	FT_CHECK_STR(ft_judge_combine(FT_JUDGE_TIE, FT_JUDGE_TIE, &c), "tie");
	FT_CHECK(c);
	FT_CHECK_STR(ft_judge_combine(FT_JUDGE_TIE, FT_JUDGE_SECOND, &c), "tie");
	FT_CHECK(!c);
	FT_CHECK(ft_judge_combine(FT_JUDGE_NONE, FT_JUDGE_FIRST, &c) == NULL);
}

FT_TEST(judge_replies)
{
	struct ft_buf b = FT_BUF_INIT(1 << 20);
	struct ft_err err;
	const char *ok =
		"{\"choices\":[{\"message\":{\"role\":\"assistant\",\"content\":\"[[B]]\"}}]}";
	ft_err_clear(&err);
	FT_CHECK(ft_judge_reply_content(ok, strlen(ok), &b, &err) == FT_OK);
	FT_CHECK_STR(ft_buf_str(&b), "[[B]]");
	FT_CHECK(ft_judge_reply_content("{\"choices\":[]}", 14, &b, &err) == FT_EFORMAT);
	FT_CHECK_STR(err.msg, "the judge's answer has no \"choices\"");
	json_t *req = ft_judge_request("judge-1", "P", 64);
	char *s = json_dumps(req, JSON_COMPACT);
	FT_CHECK(strstr(s, "\"model\":\"judge-1\"") && strstr(s, "\"temperature\":0") &&
		 strstr(s, "{\"role\":\"user\",\"content\":\"P\"}"));
	free(s);
	json_decref(req);
	ft_buf_release(&b);
}

#define SPEC                                                                                \
	"{\"id\":\"" EXP "\",\"team_id\":\"team-BBBBBBBBBBBBBBBBBBBBBBBB\",\"name\":\"x\"," \
	"\"assignment\":\"user\",\"status\":\"running\",\"arms\":["                         \
	"{\"name\":\"a\",\"model\":\"ft:m:1\",\"weight\":0.5,\"status\":\"active\"},"       \
	"{\"name\":\"b\",\"model\":null,\"weight\":0.3,\"status\":\"active\"},"             \
	"{\"name\":\"c\",\"model\":\"m/2\",\"weight\":0.2,\"status\":\"active\"}]}"

static enum ft_rc parse_with(const char *key, json_t *v, struct ft_exp_spec *s, struct ft_err *err)
{
	json_t *o = json_loads(SPEC, 0, NULL);
	FT_ASSERT(o != NULL);
	if (key)
		json_object_set_new(o, key, v);
	ft_err_clear(err);
	enum ft_rc rc = ft_experiment_spec_parse(o, s, err);
	json_decref(o);
	return rc;
}

FT_TEST(routing_spec_round_trip_and_refusals)
{
	struct ft_exp_spec s;
	struct ft_err err;
	FT_CHECK(parse_with(NULL, NULL, &s, &err) == FT_OK);
	FT_CHECK_STR(s.id, EXP);
	FT_CHECK(s.sticky && s.status == FT_EXP_RUNNING && s.n == 3);
	FT_CHECK_STR(s.arms[0].model, "ft:m:1");
	FT_CHECK_STR(s.arms[1].model, "");
	json_t *back = ft_experiment_spec_json(&s), *orig = json_loads(SPEC, 0, NULL);
	FT_CHECK(json_equal(back, orig));
	json_decref(back);
	json_decref(orig);
	FT_CHECK(parse_with("status", json_string("done"), &s, &err) == FT_EINVAL);
	FT_CHECK_STR(err.param, "status");
	FT_CHECK(parse_with("id", json_string("exp-1"), &s, &err) == FT_EINVAL);
	FT_CHECK_STR(err.param, "id");
	FT_CHECK(parse_with("more", json_true(), &s, &err) == FT_EINVAL);
	FT_CHECK(parse_with("arms",
			    json_pack("[{s:s, s:f, s:s}, {s:s, s:f, s:s}]", "name", "a", "weight",
				      0.5, "status", "active", "name", "b", "weight", 0.4, "status",
				      "active"),
			    &s, &err) == FT_EINVAL);
	FT_CHECK_STR(err.param, "arms");
	FT_CHECK_STR(err.code, "invalid_weights");
	FT_CHECK(parse_with("arms",
			    json_pack("[{s:s, s:f, s:s}, {s:s, s:f, s:s}]", "name", "a", "weight",
				      0.5, "status", "active", "name", "b", "weight", 0.5, "status",
				      "gone"),
			    &s, &err) == FT_EINVAL);
	FT_CHECK_STR(err.param, "arms[1].status");
	FT_CHECK(parse_with("arms",
			    json_pack("[{s:s, s:f, s:s}, {s:s, s:f, s:s}]", "name", "a", "weight",
				      0.5, "status", "active", "name", "a", "weight", 0.5, "status",
				      "active"),
			    &s, &err) == FT_EINVAL);
	FT_CHECK_STR(err.param, "arms[1].name");
}

FT_TEST(routing_by_state)
{
	struct ft_exp_spec s;
	struct ft_err err;
	bool counted;
	FT_CHECK(parse_with(NULL, NULL, &s, &err) == FT_OK);
	/* sticky: dave's arm (1, as above) whatever the request's id */
	FT_CHECK_INT(ft_experiment_spec_route(&s, "dave", "chatcmpl-1", &counted), 1);
	FT_CHECK(counted);
	/* no user: the request's id is the key */
	FT_CHECK_INT(ft_experiment_spec_route(&s, NULL, "alice", &counted), 0);
	FT_CHECK_INT(ft_experiment_spec_route(&s, "", "u6", &counted), 1);
	/* per request: the user is not the key */
	s.sticky = false;
	FT_CHECK_INT(ft_experiment_spec_route(&s, "dave", "alice", &counted), 0);
	/* a stopped arm: its users move as ft_experiment_assign says */
	s.sticky = true;
	s.arms[1].active = false;
	FT_CHECK_INT(ft_experiment_spec_route(&s, "u6", "r", &counted), 2);
	/* paused: the first active arm, not the experiment's traffic */
	s.status = FT_EXP_PAUSED;
	s.arms[0].active = false;
	FT_CHECK_INT(ft_experiment_spec_route(&s, "dave", "r", &counted), 2);
	FT_CHECK(!counted);
	s.status = FT_EXP_STOPPED;
	FT_CHECK_INT(ft_experiment_spec_route(&s, "dave", "r", &counted), -1);
	s.status = FT_EXP_DRAFT;
	FT_CHECK_INT(ft_experiment_spec_route(&s, "dave", "r", &counted), -1);
	FT_CHECK(!counted);
}

FT_TEST_MAIN()
