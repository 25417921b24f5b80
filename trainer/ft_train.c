/*
 * ft_train.c - the ft-train program: a table of subcommands over the
 * trainer library (git's commands[] shape).
 */
#include "ft/trainer.h"
#ifdef FT_HAVE_CUDA
#include "ft/backend_cuda.h"
#endif

#include "cmd.h"

enum cmd_flags {
	CMD_TEST = 1 << 0, /* a tool of the peer tests, not a stable interface */
};

struct cmd {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *help;
	unsigned flags;
};

static int cmd_version(int argc, char **argv)
{
	FT_UNUSED(argc);
	FT_UNUSED(argv);
	printf("%s\n", ft_trainer_version());
	return 0;
}

static const struct cmd commands[] = {
	{ "version", cmd_version, "print the trainer version", 0 },
	{ "inspect", cmd_inspect, "show a model folder's config and tensors", 0 },
	{ "st-dump", cmd_st_dump, "raw bytes of a safetensors tensor", CMD_TEST },
	{ "st-copy", cmd_st_copy, "re-write a safetensors file with our writer", CMD_TEST },
	{ "st-cast", cmd_st_cast, "cast a safetensors file's float tensors", CMD_TEST },
	{ "config-json", cmd_config_json, "config.json as we write it", CMD_TEST },
	{ "tokenize", cmd_tokenize, "show the token ids of a text (tokenizer.json)", 0 },
	{ "detokenize", cmd_detokenize, "decode token ids to text (tokenizer.json)", 0 },
	{ "validate", cmd_validate, "check a JSONL dataset (formats, errors by line, token stats)",
	  0 },
	{ "render", cmd_render, "render a conversation (JSON on stdin) with a chat template", 0 },
	{ "train", cmd_train, "train a model from a job file (--config JOB)", 0 },
	{ "generate", cmd_generate, "generate from a model, with or without an adapter", 0 },
	{ "merge", cmd_merge, "merge a LoRA adapter into its base model", 0 },
	{ "export", cmd_export,
	  "write a model in a format (--format merged | gguf | gguf-lora | ollama)", 0 },
	{ "eval", cmd_eval,
	  "evaluate models on a chat JSONL file (perplexity, ROUGE-L, BLEU, facts; --config SPEC)",
	  0 },
	{ "estimate", cmd_estimate, "GPU memory a job needs (--config JOB [--gpu-mem-gib N])", 0 },
	{ "import", cmd_import, "write a GGUF file as a Hugging Face folder (MODEL.gguf --out DIR)",
	  0 },
	{ "gguf-dequant", cmd_gguf_dequant, "dequantise GGUF tensors (gguf peer test)", CMD_TEST },
	{ "debug-forward", cmd_debug_forward, "logits of rows (engine peer tests)", CMD_TEST },
	{ "debug-grads", cmd_debug_grads, "gradients of rows (engine peer tests)", CMD_TEST },
	{ "nf4-quantize", cmd_nf4_quantize, "NF4-quantise a folder (bitsandbytes peer test)",
	  CMD_TEST },
	{ "nf4-dequantize", cmd_nf4_dequantize, "dequantise an NF4 folder (peer test)", CMD_TEST },
};

static void usage(FILE *f)
{
	fprintf(f, "usage: ft-train <command> [options]\n\ncommands:\n");
	for (size_t i = 0; i < FT_ARRAY_LEN(commands); i++)
		if (!(commands[i].flags & CMD_TEST))
			fprintf(f, "  %-15s %s\n", commands[i].name, commands[i].help);
	fprintf(f, "\ntest tools (used by the peer tests; not a stable interface):\n");
	for (size_t i = 0; i < FT_ARRAY_LEN(commands); i++)
		if (commands[i].flags & CMD_TEST)
			fprintf(f, "  %-15s %s\n", commands[i].name, commands[i].help);
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
