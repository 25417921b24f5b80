/*
 * ft_train.c - the ft-train program: a table of subcommands over the
 * trainer library (git's commands[] shape).
 */
#include "ft/trainer.h"
#ifdef FT_HAVE_CUDA
#include "ft/backend_cuda.h"
#endif

#include "cmd.h"

struct cmd {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *help;
};

static int cmd_version(int argc, char **argv)
{
	FT_UNUSED(argc);
	FT_UNUSED(argv);
	printf("%s\n", ft_trainer_version());
	return 0;
}

static const struct cmd commands[] = {
	{ "version", cmd_version, "print the trainer version" },
	{ "inspect", cmd_inspect, "show a model folder's config and tensors" },
	{ "st-dump", cmd_st_dump, NULL }, /* hidden: tests */
	{ "st-copy", cmd_st_copy, NULL }, /* hidden: tests */
	{ "st-cast", cmd_st_cast, NULL }, /* hidden: tests */
	{ "config-json", cmd_config_json, NULL }, /* hidden: tests */
	{ "tokenize", cmd_tokenize, "show the token ids of a text (tokenizer.json)" },
	{ "detokenize", cmd_detokenize, "decode token ids to text (tokenizer.json)" },
	{ "validate", cmd_validate,
	  "check a JSONL dataset (formats, errors by line, token stats)" },
	{ "render", cmd_render, "render a conversation (JSON on stdin) with a chat template" },
	{ "train", cmd_train, "train a model from a job file (--config JOB)" },
	{ "generate", cmd_generate, "generate from a model, with or without an adapter" },
	{ "merge", cmd_merge, "merge a LoRA adapter into its base model" },
	{ "estimate", cmd_estimate, "GPU memory a job needs (--config JOB [--gpu-mem-gib N])" },
	{ "debug-forward", cmd_debug_forward, NULL }, /* hidden: peer tests */
	{ "debug-grads", cmd_debug_grads, NULL }, /* hidden: peer tests */
	{ "nf4-quantize", cmd_nf4_quantize, NULL }, /* hidden: peer tests */
	{ "nf4-dequantize", cmd_nf4_dequantize, NULL }, /* hidden: peer tests */
};

static void usage(FILE *f)
{
	fprintf(f, "usage: ft-train <command> [options]\n\ncommands:\n");
	for (size_t i = 0; i < FT_ARRAY_LEN(commands); i++)
		if (commands[i].help)
			fprintf(f, "  %-12s %s\n", commands[i].name, commands[i].help);
}

int main(int argc, char **argv)
{
#ifdef FT_HAVE_CUDA
	ft_backend_set_cuda(ft_backend_cuda);
#endif
	if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	/* `ft-train --config job.json` is `ft-train train --config job.json` */
	if (strcmp(argv[1], "--config") == 0)
		return cmd_train(argc, argv);
	for (size_t i = 0; i < FT_ARRAY_LEN(commands); i++)
		if (strcmp(argv[1], commands[i].name) == 0)
			return commands[i].fn(argc - 1, argv + 1);
	fprintf(stderr, "ft-train: unknown command \"%s\"\n", argv[1]);
	usage(stderr);
	return 2;
}
