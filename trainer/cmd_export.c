/*
 * cmd_export.c - ft-train export: a model (a base with an optional adapter,
 * or a whole fine-tuned model) written in one of the registry's formats.
 * The worker runs it for an export job (ft/exports.h gives the command line
 * per format); people can run it by hand.
 *
 *   export --format F --model DIR|FILE.gguf [--adapter DIR] --out DIR
 *          [--progress-fd N] [--nf4] [--device cpu|cuda] [format options]
 *   export --format merged ... [--dtype auto|bf16|fp16|fp32] [--max-shard-bytes N]
 *
 * Formats are the table below, one function each (merged here;
 * cmd_export_gguf.c: gguf, gguf-lora, ollama); every format takes the common options
 * (EXPORT_COMMON_OPTS) and its own. While it works a format writes
 * "export" progress lines ({"type": "export", "stage", "file",
 * "done_bytes", "total_bytes"}), then "artifact" ({"kind", "path": OUT})
 * and "done" ({"seconds", "trainer_version"}) on the progress fd
 * (ft/events.h; without --progress-fd nothing is written there).
 *
 * Exit codes: 0 done, 1 failed, 2 bad command line, 3 the input cannot be
 * exported (a model or adapter folder that is not one, a type that does
 * not fit): retrying cannot help.
 */
#include <unistd.h>

#include "ft/clock.h"
#include "ft/trainer.h"

#include "cmd_export.h"

void export_line(const struct export_common *c, enum ft_line type, json_t *fields_new)
{
	if (c->fd < 0) {
		json_decref(fields_new);
		return;
	}
	json_t *o = json_pack("{s:s}", "type", ft_line_type(type));
	json_object_update(o, fields_new);
	json_decref(fields_new);
	char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(o);
	if (!s)
		return;
	size_t n = strlen(s);
	s[n] = '\n'; /* over the NUL: written as n + 1 bytes, never read as a string */
	for (size_t off = 0; off < n + 1;) {
		ssize_t w = write((int)c->fd, s + off, n + 1 - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			break;
		off += (size_t)w;
	}
	free(s);
}

void export_stage(const struct export_common *c, const char *name, const char *file, uint64_t done,
		  uint64_t total)
{
	export_line(c, FT_LINE_EXPORT,
		    json_pack("{s:s, s:s?, s:I, s:I}", "stage", name, "file", file, "done_bytes",
			      (json_int_t)done, "total_bytes", (json_int_t)total));
}

int export_finished(const struct export_common *c, const char *kind)
{
	export_line(c, FT_LINE_ARTIFACT, json_pack("{s:s, s:s}", "kind", kind, "path", c->out));
	export_line(c, FT_LINE_DONE,
		    json_pack("{s:f, s:s}", "seconds", (double)(ft_time_mono_ns() - c->t0) * 1e-9,
			      "trainer_version", ft_trainer_version()));
	return 0;
}

int export_fail(const char *cmd, const struct ft_err *err)
{
	cmd_fail(cmd, err);
	return err->rc == FT_EINVAL || err->rc == FT_EFORMAT || err->rc == FT_ENOTFOUND ? 3 : 1;
}

static void on_written(void *ud, const char *file, uint64_t done, uint64_t total)
{
	export_stage(ud, "write", file, done, total);
}

/* --dtype: a name, or auto = the model's own torch_dtype (fp32 when that is
 * none we write). */
static bool parse_dtype(const char *s, const struct ft_model_config *mc, enum ft_dtype *out)
{
	static const struct {
		const char *name, *torch;
		enum ft_dtype d;
	} names[] = {
		{ "fp32", "float32", FT_DTYPE_F32 },
		{ "fp16", "float16", FT_DTYPE_F16 },
		{ "bf16", "bfloat16", FT_DTYPE_BF16 },
	};
	if (!s || strcmp(s, "auto") == 0) {
		*out = FT_DTYPE_F32;
		for (size_t i = 0; i < FT_ARRAY_LEN(names); i++)
			if (strcmp(mc->torch_dtype, names[i].torch) == 0)
				*out = names[i].d;
		return true;
	}
	for (size_t i = 0; i < FT_ARRAY_LEN(names); i++)
		if (strcmp(s, names[i].name) == 0) {
			*out = names[i].d;
			return true;
		}
	return false;
}

/* merged: the adapter (if any) folded into the model, as a Hugging Face
 * folder in one dtype, sharded past --max-shard-bytes. */
static int export_merged(struct export_common *c, int argc, char **argv)
{
	const char *cmd = "export";
	const char *dtype_s = c->dtype;
	long shard = 5000000000L;
	const struct cmd_opt opts[] = {
		EXPORT_COMMON_OPTS(c),
		{ "--dtype", OPT_STR, &dtype_s },
		{ "--max-shard-bytes", OPT_INT, &shard },
	};
	int rc = cmd_opts_parse(argc, argv, opts, FT_ARRAY_LEN(opts), cmd);
	if (rc || (rc = cmd_need(cmd, "--model", c->model)) ||
	    (rc = cmd_need(cmd, "--out", c->out)))
		return rc;
	if (shard < (1L << 20)) {
		fprintf(stderr,
			"ft-train export: \"--max-shard-bytes\" must be at least 1048576\n");
		return 2;
	}
	export_stage(c, "load", NULL, 0, 0);
	struct ft_model *m;
	if ((rc = cmd_model_load(cmd, c->model, c->adapter, c->nf4, c->device, &m)))
		return rc == 1 ? 3 : rc; /* folders that do not load are the input's fault */
	struct ft_err err;
	ft_err_clear(&err);
	struct ft_hf_save_opts so = { .max_shard_bytes = (uint64_t)shard,
				      .progress = on_written,
				      .ud = c };
	if (!parse_dtype(dtype_s, ft_model_config(m), &so.dtype)) {
		ft_model_free(m);
		fprintf(stderr,
			"ft-train export: \"--dtype\" must be auto, bf16, fp16 or fp32 "
			"(got \"%s\")\n",
			dtype_s);
		return 2;
	}
	if (c->adapter) {
		export_stage(c, "merge", NULL, 0, 0);
		ft_model_lora_merge(m);
	}
	rc = ft_model_save_hf_opts(m, c->out, c->model, &so, &err) ? export_fail(cmd, &err) : 0;
	ft_model_free(m);
	return rc ? rc : export_finished(c, "merged");
}

/* The formats ft-train writes (ft/exports.h names the same ones for the
 * registry's export jobs). */
static const struct {
	const char *name;
	int (*fn)(struct export_common *c, int argc, char **argv);
} formats[] = {
	{ "merged", export_merged },
	{ "gguf", export_gguf },
	{ "gguf-lora", export_gguf_lora },
	{ "ollama", export_ollama },
};

int cmd_export(int argc, char **argv)
{
	struct export_common c = { .fd = -1, .dtype = "auto", .t0 = ft_time_mono_ns() };
	for (int i = 1; i + 1 < argc; i++)
		if (strcmp(argv[i], "--format") == 0)
			c.format = argv[i + 1];
	if (cmd_need("export", "--format", c.format))
		return 2;
	for (size_t i = 0; i < FT_ARRAY_LEN(formats); i++)
		if (strcmp(formats[i].name, c.format) == 0)
			return formats[i].fn(&c, argc, argv);
	fprintf(stderr, "ft-train export: unknown format \"%s\" (formats:", c.format);
	for (size_t i = 0; i < FT_ARRAY_LEN(formats); i++)
		fprintf(stderr, " %s", formats[i].name);
	fprintf(stderr, ")\n");
	return 2;
}

/* ft-train merge: the merged export without progress lines (--adapter
 * required, as before); --dtype and --max-shard-bytes as export's. */
int cmd_merge(int argc, char **argv)
{
	for (int i = 1; i < argc; i++)
		if (strcmp(argv[i], "--adapter") == 0)
			goto run;
	fprintf(stderr, "ft-train merge: \"--adapter\" is required\n");
	return 2;
run:;
	struct export_common c = {
		.fd = -1, .format = "merged", .dtype = "fp32", .t0 = ft_time_mono_ns()
	};
	int rc = export_merged(&c, argc, argv);
	return rc == 3 ? 1 : rc;
}
