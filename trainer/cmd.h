/*
 * cmd.h - the ft-train subcommands that live outside ft_train.c. Each takes
 * (argc, argv) with argv[0] the subcommand name and returns the exit code.
 *
 * Adding one: write cmd_<name>.c, declare its entry here, add a row to
 * commands[] in ft_train.c (CMD_TEST lists it under the test tools).
 */
#ifndef FT_TRAIN_CMD_H
#define FT_TRAIN_CMD_H

#include "ft/err.h"

struct ft_model;

/* A table-driven option parser for the subcommands (cmd_engine.c):
 * "--name VALUE" (OPT_STR: const char *, OPT_INT: long, OPT_NUM: double)
 * and "--flag" (OPT_FLAG: bool). Returns 0, or 2 after saying why. */
enum cmd_opt_type { OPT_STR, OPT_INT, OPT_NUM, OPT_FLAG };
struct cmd_opt {
	const char *name;
	enum cmd_opt_type type;
	void *out;
};
int cmd_opts_parse(int argc, char **argv, const struct cmd_opt *opts, size_t n, const char *cmd);
/* "ft-train CMD: message" (+ detail, hint) on stderr; returns 1. */
int cmd_fail(const char *cmd, const struct ft_err *err);
/* 0 when v is set, else says that name is required and returns 2. */
int cmd_need(const char *cmd, const char *name, const char *v);
/* The model folder dir (NF4 base when nf4) with an optional PEFT adapter
 * on device "cpu" (NULL) or "cuda" (ft_backend_select; FT_BACKEND replaces
 * it). Returns 0, 1 (said why) or 3 (the device is not available). */
int cmd_model_load(const char *cmd, const char *dir, const char *adapter, bool nf4,
		   const char *device, struct ft_model **m);

int cmd_inspect(int argc, char **argv); /* ft-train inspect MODEL [--json] [--hash] */
int cmd_st_dump(int argc, char **argv); /* ft-train st-dump FILE NAME [--f32]: raw bytes */
int cmd_st_copy(int argc, char **argv); /* ft-train st-copy IN OUT: re-write via our writer */
int cmd_st_cast(int argc, char **argv); /* ft-train st-cast IN OUT DTYPE: float tensors to DTYPE */
int cmd_config_json(int argc,
		    char **argv); /* ft-train config-json DIR: config.json as we write it */
int cmd_tokenize(int argc, char **argv); /* cmd_tokenize.c */
int cmd_detokenize(int argc, char **argv); /* cmd_tokenize.c */
int cmd_validate(int argc, char **argv); /* ft-train validate DATA.jsonl [--model DIR] ... */
int cmd_render(int argc, char **argv); /* ft-train render --model DIR < conversation.json */
/* cmd_engine.c: training, outputs and the engine's debug dumps */
int cmd_train(int argc, char **argv); /* ft-train train --config JOB [--resume DIR] */
int cmd_merge(int argc, char **argv); /* ft-train merge --model M --adapter A --out D */
/* cmd_export.c: ft-train export --format F ... (ft/exports.h) */
int cmd_export(int argc, char **argv);
int cmd_generate(int argc, char **argv); /* ft-train generate --model M [--adapter A] ... */
int cmd_debug_forward(int argc, char **argv); /* hidden: logits of rows, for peer tests */
int cmd_debug_grads(int argc, char **argv); /* hidden: gradients of rows, for peer tests */
/* cmd_nf4.c: hidden helpers of the NF4 peer test */
int cmd_nf4_quantize(int argc, char **argv); /* nf4-quantize DIR OUT [--no-double-quant] */
int cmd_nf4_dequantize(int argc, char **argv); /* nf4-dequantize DIR OUT */
int cmd_estimate(int argc, char **argv);
/* cmd_eval.c: ft-train eval --config SPEC (ft/evaluate.h) */
int cmd_eval(int argc, char **argv); /* ft-train estimate --config JOB: GPU memory */
/* cmd_import.c: GGUF files */
int cmd_import(int argc, char **argv); /* ft-train import MODEL.gguf --out DIR [--dtype ..] */
int cmd_gguf_dequant(int argc, char **argv); /* hidden: every tensor to F32 safetensors */
/* cmd_gpus.c: the --gpus N option of train (0 = CPU); fills err when N GPUs
 * cannot be used */
enum ft_rc cmd_gpus_check(long gpus, struct ft_err *err);

#endif
