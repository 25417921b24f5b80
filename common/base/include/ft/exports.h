/*
 * ft/exports.h - the export formats of model versions, one row each
 * (exports.c holds the table). Three processes read it:
 *
 *   ft-api     which formats exist, which versions each takes, which
 *              options it has and their values (ft_export_options_check:
 *              every error names "options.<name>" or "format");
 *   ft-worker  the ft-train command line that makes a format (the row's
 *              argv, then each option given as its flag);
 *   the docs   docs/registry.md's table of formats says the same.
 *
 * | format | ft-train arguments       | artifact | versions       | options                                  |
 * |--------|--------------------------|----------|----------------|------------------------------------------|
 * | merged | export --format merged   | merged   | adapter, model | dtype: auto, bf16, fp16, fp32 (auto: the |
 * |        |                          |          |                | base's torch_dtype); max_shard_bytes     |
 * | gguf   | export --format gguf     | gguf     | adapter, model | type: F32, F16, Q8_0, Q4_0, Q4_K_M (F16) |
 * |        |                          |          |                | lora: merged, none (the base alone)      |
 * | gguf-lora | export --format gguf-lora | gguf | adapter        | type: F32, F16 (F32)                     |
 * | ollama | export --format ollama   | gguf     | adapter, model | type (Q4_K_M); lora: merged, separate    |
 *
 * The worker runs, in the export's folder:
 *
 *   ft-train <the row's arguments> --model MODEL [--adapter ADAPTER] --out OUT
 *            --progress-fd 3 [<option flag> <value>]...
 *
 * MODEL is the base model's folder for a version that is an adapter, the
 * version's own folder for a version that is a whole model (full
 * fine-tuning); ADAPTER is the adapter's folder (from the store). ft-train
 * writes the export into OUT and says so on its progress fd (ft/events.h:
 * "export" lines while it works, then "artifact" with the path, then
 * "done"); exit 0 = done, 3 = the input cannot be exported (no retry),
 * anything else = failed (retried on another attempt).
 *
 * Adding a format: a row in exports.c (its ft-train arguments, the
 * artifacts.kind its folder is stored as, the versions it takes, its options
 * and, when some bases cannot be written so, a check), the format in
 * ft-train (trainer/cmd_export.c's table), a line in docs/registry.md.
 */
#ifndef FT_EXPORTS_H
#define FT_EXPORTS_H

#include "ft/base.h"
#include "ft/err.h"
#include "ft/json.h"

enum ft_export_opt_kind {
	FT_EXPORT_OPT_CHOICE = 0, /* a string among choices */
	FT_EXPORT_OPT_INT, /* an integer in [min, max] */
};

struct ft_export_opt {
	const char *name; /* the field of the API's "options" */
	const char *flag; /* the ft-train option it becomes */
	enum ft_export_opt_kind kind;
	const char *const *choices; /* CHOICE: NULL-terminated */
	long long min, max; /* INT */
	const char *default_text; /* what ft-train does without it (docs) */
	const char *help;
};

/* The versions a format takes (the version's kind). */
enum ft_export_takes {
	FT_EXPORT_TAKES_ADAPTER = 1 << 0, /* LoRA / QLoRA versions */
	FT_EXPORT_TAKES_MODEL = 1 << 1, /* full fine-tuning versions (a whole model) */
};

#define FT_EXPORT_MAX_OPTS 8

struct ft_export_format {
	const char *name;
	const char *const *argv; /* ft-train's arguments that pick it, NULL-terminated */
	const char *artifact_kind; /* artifacts.kind of its folder */
	unsigned takes; /* enum ft_export_takes */
	struct ft_export_opt opts[FT_EXPORT_MAX_OPTS]; /* name NULL ends */
	const char *help;
	/* Optional: whether this base model can be written so (its config.json
	 * text, as registered), with these options (already checked against
	 * opts); fills err with the field named ("options.type", "model") when
	 * not. ft-api calls it before it queues the export. */
	enum ft_rc (*check)(json_t *options, const char *model_config, struct ft_err *err);
};

extern const struct ft_export_format ft_export_formats[];
extern const size_t ft_n_export_formats;

/* The row of a format name, or NULL. */
const struct ft_export_format *ft_export_format_find(const char *name);
/* A comma-separated list of the format names ("merged, gguf"), for errors. */
void ft_export_format_names(char *out, size_t n);
/* Check an export's "options" (an object or NULL) against its row: unknown
 * names, types, choices and ranges; err->param is "options.<name>". */
enum ft_rc ft_export_options_check(const struct ft_export_format *f, json_t *options,
				   struct ft_err *err);
/* The option's value as ft-train takes it ("bf16", "1000000"); false when
 * options do not set it. */
bool ft_export_option_text(const struct ft_export_opt *o, const json_t *options, char *out,
			   size_t n);
/* The formats as JSON, for GET /v1/registry/export_formats:
 * [{name, artifact_kind, versions: ["adapter", "model"], options: [{name,
 * type, choices | minimum/maximum, default, description}], description}]. */
json_t *ft_export_formats_json(void);

#endif
