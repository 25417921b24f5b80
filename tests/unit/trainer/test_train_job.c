/*
 * test_train_job.c - the job file parser (defaults, OpenAI's names, errors
 * that name the field), the learning-rate schedules against the values
 * transformers' get_*_schedule_with_warmup lambdas give, and the
 * pre-tokenized rows reader (errors with line numbers, shifting, packing).
 */
#include "ftest.h"
#include "ft/train.h"
#include "../../../trainer/data/rows_int.h"

#include <math.h>
#include <unistd.h>

static enum ft_rc parse(const char *s, struct ft_train_job *j, struct ft_err *e)
{
	ft_err_clear(e);
	return ft_train_job_parse(s, strlen(s), j, e);
}

FT_TEST(job_defaults_and_openai_names)
{
	struct ft_train_job j;
	struct ft_err e;
	FT_CHECK(parse("{\"model\":\"m\",\"training_file\":\"t\",\"output_dir\":\"o\","
		       "\"hyperparameters\":{\"n_epochs\":\"auto\",\"batch_size\":8,"
		       "\"learning_rate_multiplier\":0.5}}",
		       &j, &e) == FT_OK);
	FT_CHECK_STR(j.train_file, "t");
	FT_CHECK_INT(j.method, FT_METHOD_LORA);
	FT_CHECK_INT(j.n_epochs, 3);
	FT_CHECK_INT(j.batch_size, 8);
	FT_CHECK(fabs(j.learning_rate - 1e-4) < 1e-18); /* 0.5 x LoRA's 2e-4 */
	FT_CHECK_INT(j.lora.r, 8);
	FT_CHECK(j.lora.targets == ((1u << FT_LIN_Q) | (1u << FT_LIN_V)));
	FT_CHECK(parse("{\"model\":\"m\",\"train_file\":\"t\",\"output_dir\":\"o\","
		       "\"method\":\"full\",\"lora\":{\"target_modules\":\"all-linear\","
		       "\"lora_alpha\":32,\"use_rslora\":true}}",
		       &j, &e) == FT_OK);
	FT_CHECK(fabs(j.learning_rate - 2e-5) < 1e-18);
	FT_CHECK(j.lora.targets == (1u << FT_LIN_COUNT) - 1);
	FT_CHECK(j.lora.rslora && j.lora.alpha == 32);
	FT_CHECK_INT(j.grad_ckpt, 0);
	FT_CHECK(parse("{\"model\":\"m\",\"train_file\":\"t\",\"output_dir\":\"o\","
		       "\"hyperparameters\":{\"gradient_checkpointing\":true}}",
		       &j, &e) == FT_OK);
	FT_CHECK_INT(j.grad_ckpt, 1);
	FT_CHECK(parse("{\"model\":\"m\",\"train_file\":\"t\",\"output_dir\":\"o\","
		       "\"hyperparameters\":{\"gradient_checkpointing\":3}}",
		       &j, &e) == FT_OK);
	FT_CHECK_INT(j.grad_ckpt, 3);
}

FT_TEST(job_chat_template_field)
{
	struct ft_train_job j;
	struct ft_err e;
	FT_CHECK(parse("{\"model\":\"m\",\"train_file\":\"t\",\"output_dir\":\"o\","
		       "\"chat_template\":\"chatml\"}",
		       &j, &e) == FT_OK);
	FT_CHECK_STR(j.chat_template, "chatml");
	FT_CHECK(parse("{\"model\":\"m\",\"train_file\":\"t\",\"output_dir\":\"o\"}", &j, &e) ==
		 FT_OK);
	FT_CHECK_STR(j.chat_template, "");
	FT_CHECK(parse("{\"model\":\"m\",\"train_file\":\"t\",\"output_dir\":\"o\","
		       "\"chat_template\":\"gemma\"}",
		       &j, &e) == FT_EINVAL);
	FT_CHECK_STR(e.msg, "\"chat_template\" \"gemma\" is not a template ftplat renders");
	FT_CHECK_STR(e.param, "chat_template");
	FT_CHECK(strstr(e.hint, "chatml") != NULL);
}

FT_TEST(job_qlora)
{
	struct ft_train_job j;
	struct ft_err e;
	FT_CHECK(parse("{\"model\":\"m\",\"train_file\":\"t\",\"output_dir\":\"o\","
		       "\"method\":\"qlora\"}",
		       &j, &e) == FT_OK);
	FT_CHECK_INT(j.method, FT_METHOD_QLORA);
	FT_CHECK(j.double_quant);
	FT_CHECK(fabs(j.learning_rate - 2e-4) < 1e-18); /* LoRA's default */
	FT_CHECK(parse("{\"model\":\"m\",\"train_file\":\"t\",\"output_dir\":\"o\","
		       "\"method\":\"qlora\",\"qlora\":{\"double_quant\":false}}",
		       &j, &e) == FT_OK);
	FT_CHECK(!j.double_quant);
	FT_CHECK(parse("{\"model\":\"m\",\"train_file\":\"t\",\"output_dir\":\"o\","
		       "\"qlora\":{\"double_quant\":false}}",
		       &j, &e) == FT_EINVAL);
	FT_CHECK_STR(e.msg, "\"qlora\" is set but \"method\" is not \"qlora\"");
	FT_CHECK(parse("{\"model\":\"m\",\"train_file\":\"t\",\"output_dir\":\"o\","
		       "\"method\":\"qlora\",\"qlora\":{\"double_quant\":1}}",
		       &j, &e) == FT_EINVAL);
	FT_CHECK_STR(e.param, "qlora.double_quant");
}

FT_TEST(job_errors_name_the_field)
{
	static const struct {
		const char *json, *msg, *param;
	} cases[] = {
		{ "{\"train_file\":\"t\",\"output_dir\":\"o\"}", "\"model\" is required", "model" },
		{ "{\"model\":\"m\",\"train_file\":\"t\",\"output_dir\":\"o\",\"hyperparameters\":"
		  "{\"batch_size\":0}}",
		  "\"batch_size\" must be", "hyperparameters.batch_size" },
		{ "{\"model\":\"m\",\"train_file\":\"t\",\"output_dir\":\"o\",\"hyperparameters\":"
		  "{\"lr_scheduler_type\":\"cyclic\"}}",
		  "\"lr_scheduler_type\" must be one of linear, cosine, constant, "
		  "constant_with_warmup (got \"cyclic\")",
		  "hyperparameters.lr_scheduler_type" },
		{ "{\"model\":\"m\",\"train_file\":\"t\",\"output_dir\":\"o\",\"lora\":{\"r\":"
		  "\"8\"}}",
		  "\"r\" must be an integer (got string)", "lora.r" },
		{ "{\"model\":\"m\",\"train_file\":\"t\",\"output_dir\":\"o\",\"hyperparameters\":"
		  "{\"gradient_checkpointing\":\"yes\"}}",
		  "\"gradient_checkpointing\" must be true, false or a layer interval (got "
		  "string)",
		  "hyperparameters.gradient_checkpointing" },
		{ "{\"model\":\"m\",\"train_file\":\"t\",\"output_dir\":\"o\",\"epochs\":3}",
		  "unknown field \"epochs\"", NULL },
	};
	for (size_t i = 0; i < FT_ARRAY_LEN(cases); i++) {
		struct ft_train_job j;
		struct ft_err e;
		FT_CHECK(parse(cases[i].json, &j, &e) == FT_EINVAL);
		if (!strstr(e.msg, cases[i].msg))
			fprintf(stderr, "case %zu: got \"%s\"\n", i, e.msg);
		FT_CHECK(strstr(e.msg, cases[i].msg) != NULL);
		if (cases[i].param)
			FT_CHECK_STR(e.param, cases[i].param);
	}
}

FT_TEST(schedules_match_transformers)
{
	/* transformers 5.23, warmup 3, total 10: lr_lambdas[0](step) for steps 0..10 */
	static const double linear[11] = { 0.0,
					   0.3333333333333333,
					   0.6666666666666666,
					   1.0,
					   0.8571428571428571,
					   0.7142857142857143,
					   0.5714285714285714,
					   0.42857142857142855,
					   0.2857142857142857,
					   0.14285714285714285,
					   0.0 };
	static const double cosine[11] = { 0.0,
					   0.3333333333333333,
					   0.6666666666666666,
					   1.0,
					   0.9504844339512095,
					   0.8117449009293668,
					   0.6112604669781572,
					   0.38873953302184283,
					   0.18825509907063326,
					   0.04951556604879048,
					   0.0 };
	for (int s = 0; s <= 10; s++) {
		FT_CHECK(fabs(ft_train_lr_factor(FT_SCHED_LINEAR, s, 3, 10) - linear[s]) < 1e-15);
		FT_CHECK(fabs(ft_train_lr_factor(FT_SCHED_COSINE, s, 3, 10) - cosine[s]) < 1e-15);
		FT_CHECK(ft_train_lr_factor(FT_SCHED_CONSTANT, s, 3, 10) ==
			 (s < 3 ? s / 3.0 : 1.0));
	}
}

static char *write_tmp(const char *text)
{
	char *path = ft_xstrdup("/tmp/ft-rows-XXXXXX");
	int fd = mkstemp(path);
	FT_ASSERT(fd >= 0);
	FT_ASSERT(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
	close(fd);
	return path;
}

FT_TEST(rows_errors_carry_the_line)
{
	static const struct {
		const char *text, *msg;
		long line;
	} cases[] = {
		{ "{\"input_ids\":[1,2]}\n\n{\"input_ids\":[1,\"x\"]}\n",
		  "line 3: \"input_ids\"[1] must be an integer (got string)", 3 },
		{ "{\"input_ids\":[1,2],\"labels\":[1]}\n", "\"labels\" has 1 entries", 1 },
		{ "{\"input_ids\":[1,99]}\n", "\"input_ids\"[1] = 99 is outside [0, 9]", 1 },
		{ "{\"input_ids\":[1,2],\"text\":\"hi\"}\n", "unknown field \"text\"", 1 },
		{ "[1,2]\n", "a row must be an object (got list)", 1 },
		{ "{\"input_ids\":[1,2]\n", "line 1", 1 },
		{ "\n\n", "has no rows", 0 },
	};
	for (size_t i = 0; i < FT_ARRAY_LEN(cases); i++) {
		char *p = write_tmp(cases[i].text);
		struct ft_rows r;
		struct ft_err e;
		ft_err_clear(&e);
		enum ft_rc rc = ft_rows_load(p, 10, 64, false, &r, &e);
		unlink(p);
		free(p);
		if (!strstr(e.msg, cases[i].msg))
			fprintf(stderr, "case %zu: got \"%s\"\n", i, e.msg);
		FT_CHECK(rc != FT_OK);
		FT_CHECK(strstr(e.msg, cases[i].msg) != NULL);
		FT_CHECK_INT(e.line, cases[i].line);
	}
}

FT_TEST(rows_shift_pad_and_pack)
{
	char *p = write_tmp("{\"input_ids\":[1,2,3],\"labels\":[-100,2,3]}\n"
			    "{\"input_ids\":[4,5]}\n{\"input_ids\":[6,7,8,9]}\n");
	struct ft_rows r;
	struct ft_err e;
	ft_err_clear(&e);
	FT_CHECK(ft_rows_load(p, 10, 5, true, &r, &e) == FT_OK);
	/* packing into 5 tokens: [row0 row1] [row2] */
	FT_CHECK_INT(r.n_units, 2);
	size_t order[2] = { 0, 1 };
	struct ft_mbatch mb = { 0 };
	ft_mbatch_build(&mb, &r, order, 2);
	FT_CHECK_INT(mb.b.T, 5);
	static const int32_t ids[10] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 0 };
	static const int32_t tg[10] = { 2, 3, -100, 5, -100, 7, 8, 9, -100, -100 };
	static const int32_t pos[10] = { 0, 1, 2, 0, 1, 0, 1, 2, 3, 0 };
	static const int32_t doc[10] = { 0, 0, 0, 1, 1, 0, 0, 0, 0, 1 };
	for (int i = 0; i < 10; i++) {
		FT_CHECK_INT(mb.ids[i], ids[i]);
		FT_CHECK_INT(mb.targets[i], tg[i]);
		FT_CHECK_INT(mb.pos[i], pos[i]);
		FT_CHECK_INT(mb.doc[i], doc[i]);
	}
	FT_CHECK_INT(mb.n_trained, 6);
	FT_CHECK_INT(ft_rows_trained(&r, order, 2), 6);
	ft_mbatch_release(&mb);
	ft_rows_release(&r);
	unlink(p);
	free(p);
}

FT_TEST_MAIN()
