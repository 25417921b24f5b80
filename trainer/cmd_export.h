/*
 * cmd_export.h - what the formats of `ft-train export` share
 * (cmd_export.c): the common options, the progress lines and the exit
 * status. A format is one function taking the common state and argv; the
 * table of formats is in cmd_export.c.
 */
#ifndef FT_TRAIN_CMD_EXPORT_H
#define FT_TRAIN_CMD_EXPORT_H

#include "ft/events.h"
#include "ft/json.h"

#include "cmd.h"

struct export_common {
	const char *format, *model, *adapter, *out, *device;
	const char *dtype; /* when --dtype is not given: "auto" (export), "fp32" (merge) */
	long fd; /* progress lines; -1: none */
	bool nf4;
	uint64_t t0;
	/* the write stage's progress: the file, and bytes at the last line */
	const char *file;
	uint64_t last_line_bytes;
};

/* The options every format takes. */
#define EXPORT_COMMON_OPTS(c)                                                                  \
	{ "--format", OPT_STR, &(c)->format }, { "--model", OPT_STR, &(c)->model },            \
		{ "--adapter", OPT_STR, &(c)->adapter }, { "--out", OPT_STR, &(c)->out },      \
		{ "--device", OPT_STR, &(c)->device }, { "--progress-fd", OPT_INT, &(c)->fd }, \
	{                                                                                      \
		"--nf4", OPT_FLAG, &(c)->nf4                                                   \
	}

/* One progress line (the trainer's line format; steals fields_new). */
void export_line(const struct export_common *c, enum ft_line type, json_t *fields_new);
/* {"type": "export", "stage", "file", "done_bytes", "total_bytes"}. */
void export_stage(const struct export_common *c, const char *stage, const char *file, uint64_t done,
		  uint64_t total);
/* The export is in c->out: "artifact" {kind, path} then "done"; returns 0. */
int export_finished(const struct export_common *c, const char *kind);
/* Exit status of a failed export: 3 when its input is wrong (no retry). */
int export_fail(const char *cmd, const struct ft_err *err);

/* cmd_export_gguf.c */
int export_gguf(struct export_common *c, int argc, char **argv);
int export_gguf_lora(struct export_common *c, int argc, char **argv);
int export_ollama(struct export_common *c, int argc, char **argv);

#endif
