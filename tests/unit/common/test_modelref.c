/*
 * test_modelref.c - the model-reference grammar (ft/modelref.h), case by
 * case as a table: what each string names, and the names we build.
 */
#include "ft/modelref.h"
#include "ftest.h"

#define JOB "ftjob-abcdefghijklmnopqrstuvwx"

static const struct {
	const char *in;
	enum ft_ref_kind kind;
	bool malformed;
	const char *name, *job, *alias;
	long version, step;
} cases[] = {
	/* the fine-tuned model of a job, and its checkpoints (BASE may hold ':') */
	{ "ft:tiny:" JOB, FT_REF_FT_MODEL, false, "tiny", JOB, "", 0, 0 },
	{ "ft:org:m:7b:" JOB, FT_REF_FT_MODEL, false, "org:m:7b", JOB, "", 0, 0 },
	{ "ft:tiny:" JOB ":ckpt-step-40", FT_REF_CHECKPOINT, false, "tiny", JOB, "", 0, 40 },
	{ "ft:tiny:" JOB ":ckpt-step-0", FT_REF_CHECKPOINT, false, "tiny", JOB, "", 0, 0 },
	{ "ft:tiny:" JOB ":ckpt-step-04", FT_REF_BASE, true, "", "", "", 0, 0 },
	{ "ft:tiny:" JOB ":ckpt-step-", FT_REF_BASE, true, "", "", "", 0, 0 },
	{ "ft:tiny:ftjob-short", FT_REF_BASE, true, "", "", "", 0, 0 },
	{ "ft::" JOB, FT_REF_BASE, true, "", "", "", 0, 0 },
	{ "ft:" JOB, FT_REF_BASE, true, "", "", "", 0, 0 },
	/* the registry's forms */
	{ "support-bot@production", FT_REF_ALIAS, false, "support-bot", "", "production", 0, 0 },
	{ "bot@latest", FT_REF_ALIAS, false, "bot", "", "latest", 0, 0 },
	{ "bot/3", FT_REF_VERSION, false, "bot", "", "", 3, 0 },
	{ "a.b_c-9/123456789", FT_REF_VERSION, false, "a.b_c-9", "", "", 123456789, 0 },
	{ "bot@Prod", FT_REF_BASE, true, "", "", "", 0, 0 },
	{ "bot@", FT_REF_BASE, true, "", "", "", 0, 0 },
	{ "@prod", FT_REF_BASE, false, "", "", "", 0, 0 },
	/* free-form base model names stay base models */
	{ "meta-llama/Llama-3-8B", FT_REF_BASE, false, "", "", "", 0, 0 },
	{ "org/model-v2", FT_REF_BASE, false, "", "", "", 0, 0 },
	{ "bot/0", FT_REF_BASE, false, "", "", "", 0, 0 },
	{ "bot/007", FT_REF_BASE, false, "", "", "", 0, 0 },
	{ "bot/1234567890", FT_REF_BASE, false, "", "", "", 0, 0 },
	{ "my model/2", FT_REF_BASE, false, "", "", "", 0, 0 },
	{ "tiny-llama", FT_REF_BASE, false, "", "", "", 0, 0 },
	{ "", FT_REF_BASE, false, "", "", "", 0, 0 },
};

FT_TEST(model_refs_parse_as_the_table_says)
{
	for (size_t i = 0; i < FT_ARRAY_LEN(cases); i++) {
		struct ft_model_ref r;
		bool bad;
		ft_model_ref_parse(cases[i].in, &r, &bad);
		if (r.kind != cases[i].kind || bad != cases[i].malformed)
			fprintf(stderr, "case %zu: \"%s\"\n", i, cases[i].in);
		FT_CHECK_INT(r.kind, cases[i].kind);
		FT_CHECK(bad == cases[i].malformed);
		FT_CHECK_STR(r.name, cases[i].name);
		FT_CHECK_STR(r.job, cases[i].job);
		FT_CHECK_STR(r.alias, cases[i].alias);
		FT_CHECK_INT(r.version, cases[i].version);
		FT_CHECK_INT(r.step, cases[i].step);
	}
}

FT_TEST(names_and_aliases_are_checked)
{
	FT_CHECK(ft_registered_name_valid("support-bot.v2_final"));
	FT_CHECK(ft_registered_name_valid("0day"));
	FT_CHECK(!ft_registered_name_valid("-bot"));
	FT_CHECK(!ft_registered_name_valid("bot/1"));
	FT_CHECK(!ft_registered_name_valid(""));
	char long_name[200];
	memset(long_name, 'a', sizeof(long_name));
	long_name[128] = '\0';
	FT_CHECK(ft_registered_name_valid(long_name));
	long_name[128] = 'a';
	long_name[129] = '\0';
	FT_CHECK(!ft_registered_name_valid(long_name));
	FT_CHECK(ft_alias_valid("production"));
	FT_CHECK(ft_alias_valid("a-1_b"));
	FT_CHECK(!ft_alias_valid("1st"));
	FT_CHECK(!ft_alias_valid("Prod"));
	FT_CHECK(!ft_alias_valid(""));
}

FT_TEST(registered_names_are_derived_from_suffixes_and_base_names)
{
	char out[FT_NAME_MAX + 1];
	FT_CHECK(ft_registered_name_from("support bot", out));
	FT_CHECK_STR(out, "support-bot");
	FT_CHECK(ft_registered_name_from("meta-llama/Llama-3", out));
	FT_CHECK_STR(out, "meta-llama-Llama-3");
	FT_CHECK(ft_registered_name_from("--café", out)); /* é: one '-' for its two bytes */
	FT_CHECK_STR(out, "caf-");
	FT_CHECK(!ft_registered_name_from("///", out));
	FT_CHECK(ft_registered_name_valid("caf-"));
}

FT_TEST(fine_tuned_names_are_built_once)
{
	char out[256];
	ft_model_ref_ft_name("tiny", JOB, out, sizeof(out));
	FT_CHECK_STR(out, "ft:tiny:" JOB);
	ft_model_ref_ckpt_name("tiny", JOB, 12, out, sizeof(out));
	FT_CHECK_STR(out, "ft:tiny:" JOB ":ckpt-step-12");
	struct ft_model_ref r;
	bool bad;
	ft_model_ref_parse(out, &r, &bad); /* and they parse back */
	FT_CHECK(r.kind == FT_REF_CHECKPOINT && r.step == 12 && !bad);
}

FT_TEST_MAIN()
