/*
 * cmd_export_gguf.c - the llama.cpp formats of ft-train export:
 *
 *   export --format gguf --model M [--adapter A] --out DIR
 *          [--type F16|Q8_0|Q4_0|Q4_K_M|F32] [--name NAME] [--lora merged|none]
 *       DIR/model-<TYPE>.gguf: the model (the adapter merged) as llama.cpp
 *       reads it (engine/model/model_gguf.c; which ggml type each tensor
 *       gets: ft/gguf.h). F16 by default. --lora none writes M alone, the
 *       adapter left out: the base a gguf-lora export goes over (a llama.cpp
 *       deployment, docs/deployments.md).
 *   export --format gguf-lora --model M --adapter A --out DIR [--type F32|F16]
 *       DIR/adapter-<TYPE>.gguf: the adapter for llama.cpp's --lora over a
 *       GGUF of M (F32 by default). M gives the architecture and shapes.
 *   export --format ollama --model M [--adapter A] --out DIR
 *          [--type ...] [--lora merged|separate] [--chat-template NAME] [--name NAME]
 *       a folder for `ollama create NAME -f DIR/Modelfile`: the model GGUF
 *       (Q4_K_M by default) and, with --lora separate, the base unmerged
 *       plus adapter-F16.gguf; the Modelfile says
 *         FROM ./model-<TYPE>.gguf
 *         ADAPTER ./adapter-F16.gguf            (--lora separate)
 *         TEMPLATE """<the chat template as a Go template>"""
 *         SYSTEM """<its default system message>"""   (when it has one)
 *         PARAMETER stop "<end of turn>"        (one per stop string)
 *       The template is the family of the tokenizer's chat template, or
 *       --chat-template NAME (ft/chat.h); a model with neither is refused.
 *       A folder, not a tar: the registry stores and serves folders, and
 *       Ollama reads the GGUF beside the Modelfile.
 */
#include "ft/chat.h"
#include "ft/fs.h"
#include "ft/gguf.h"
#include "ft/tokenizer.h"
#include "ft/trainer.h"

#include "cmd_export.h"

/* Progress of ft_gguf_writer_write: a line per 2% of the bytes, and the last. */
static void on_written(void *ud, size_t done, size_t n, uint64_t bytes, uint64_t total)
{
	struct export_common *c = ud;
	if (done < n && bytes - c->last_line_bytes < total / 50)
		return;
	c->last_line_bytes = bytes;
	export_stage(c, "write", c->file, bytes, total);
}

/* Load the model with the adapter on it (when given); 0 or the exit status. */
static int load(struct export_common *c, const char *adapter, struct ft_model **m)
{
	export_stage(c, "load", NULL, 0, 0);
	int rc = cmd_model_load("export", c->model, adapter, c->nf4, c->device, m);
	return rc == 1 ? 3 : rc; /* folders that do not load are the input's fault */
}

static int bad_type(const char *t, const char *allowed)
{
	fprintf(stderr, "ft-train export: \"--type\" must be one of %s (got \"%s\")\n", allowed, t);
	return 2;
}

/* Write one GGUF into c->out (the model's, or its adapter's). */
static enum ft_rc write_gguf(struct export_common *c, struct ft_model *m, bool lora,
			     enum ft_gguf_ftype ft, const char *name, char *file, size_t fsize,
			     struct ft_err *err)
{
	char path[4096];
	snprintf(file, fsize, "%s-%s.gguf", lora ? "adapter" : "model", ft_gguf_ftype_name(ft));
	snprintf(path, sizeof path, "%s/%s", c->out, file);
	c->file = file;
	c->last_line_bytes = 0;
	struct ft_gguf_save_opts o = { ft, name, on_written, c };
	return lora ? ft_model_lora_save_gguf(m, path, &o, err)
		    : ft_model_save_gguf(m, path, c->model, &o, err);
}

int export_gguf(struct export_common *c, int argc, char **argv)
{
	const char *type = "F16", *name = NULL, *lora = "merged";
	const struct cmd_opt opts[] = {
		EXPORT_COMMON_OPTS(c),
		{ "--type", OPT_STR, &type },
		{ "--name", OPT_STR, &name },
		{ "--lora", OPT_STR, &lora },
	};
	enum ft_gguf_ftype ft;
	int rc = cmd_opts_parse(argc, argv, opts, FT_ARRAY_LEN(opts), "export");
	if (rc || (rc = cmd_need("export", "--model", c->model)) ||
	    (rc = cmd_need("export", "--out", c->out)))
		return rc;
	if (!ft_gguf_ftype_parse(type, &ft))
		return bad_type(type, ft_gguf_ftype_names());
	bool base_only = strcmp(lora, "none") == 0;
	if (!base_only && strcmp(lora, "merged") != 0) {
		fprintf(stderr, "ft-train export: \"--lora\" must be merged or none (got \"%s\")\n",
			lora);
		return 2;
	}
	struct ft_err err;
	ft_err_clear(&err);
	if (ft_mkdir_p(c->out, &err))
		return cmd_fail("export", &err);
	struct ft_model *m;
	const char *adapter = base_only ? NULL : c->adapter;
	if ((rc = load(c, adapter, &m)))
		return rc;
	if (adapter) {
		export_stage(c, "merge", NULL, 0, 0);
		ft_model_lora_merge(m);
	}
	char file[64];
	rc = write_gguf(c, m, false, ft, name, file, sizeof file, &err)
		     ? export_fail("export", &err)
		     : 0;
	ft_model_free(m);
	return rc ? rc : export_finished(c, "gguf");
}

int export_gguf_lora(struct export_common *c, int argc, char **argv)
{
	const char *type = "F32", *name = NULL;
	const struct cmd_opt opts[] = {
		EXPORT_COMMON_OPTS(c),
		{ "--type", OPT_STR, &type },
		{ "--name", OPT_STR, &name },
	};
	enum ft_gguf_ftype ft;
	int rc = cmd_opts_parse(argc, argv, opts, FT_ARRAY_LEN(opts), "export");
	if (rc || (rc = cmd_need("export", "--model", c->model)) ||
	    (rc = cmd_need("export", "--adapter", c->adapter)) ||
	    (rc = cmd_need("export", "--out", c->out)))
		return rc;
	if (!ft_gguf_ftype_parse(type, &ft) || (ft != FT_GGUF_FTYPE_F32 && ft != FT_GGUF_FTYPE_F16))
		return bad_type(type, "F32, F16");
	struct ft_err err;
	ft_err_clear(&err);
	if (ft_mkdir_p(c->out, &err))
		return cmd_fail("export", &err);
	struct ft_model *m;
	if ((rc = load(c, c->adapter, &m)))
		return rc;
	char file[64];
	rc = write_gguf(c, m, true, ft, name, file, sizeof file, &err) ? export_fail("export", &err)
								       : 0;
	ft_model_free(m);
	return rc ? rc : export_finished(c, "gguf-lora");
}

/* ---- ollama ---- */

/* The model's chat template family: --chat-template, else the tokenizer's. */
static enum ft_rc chat_template(const struct ft_tokenizer *tok, const char *name,
				struct ft_chat_template **out, struct ft_err *err)
{
	int32_t bos = ft_tokenizer_bos_id(tok), eos = ft_tokenizer_eos_id(tok);
	const char *bt = bos >= 0 ? ft_tokenizer_id_to_token(tok, bos) : NULL,
		   *et = eos >= 0 ? ft_tokenizer_id_to_token(tok, eos) : NULL;
	if (name)
		return ft_chat_template_new(name, bt, et, out, err);
	const char *jinja = ft_tokenizer_chat_template(tok);
	if (!jinja) {
		ft_failf(err, FT_EINVAL, "no_chat_template",
			 "the model has no chat template for the Modelfile's TEMPLATE");
		ft_err_hintf(err, "name one with --chat-template (%s)", ft_chat_template_names());
		return FT_EINVAL;
	}
	return ft_chat_template_from_jinja(jinja, bt, et, out, err);
}

/* A Modelfile value in """...""" or "...": refuse what would end it early. */
static enum ft_rc quoted(struct ft_buf *b, const char *directive, const char *v, bool triple,
			 struct ft_err *err)
{
	if (triple ? strstr(v, "\"\"\"") != NULL : strpbrk(v, "\"\n\\") != NULL)
		return ft_failf(err, FT_EINVAL, "unsupported_template",
				"the Modelfile's %s cannot hold %s", directive,
				triple ? "\"\"\"" : "a quote, a backslash or a newline");
	const char *q = triple ? "\"\"\"" : "\"";
	if (ft_buf_addf(b, "%s %s%s%s\n", directive, q, v, q))
		return ft_failf(err, FT_ENOMEM, NULL, "out of memory");
	return FT_OK;
}

/* The Modelfile's text into b. */
static enum ft_rc modelfile(const struct ft_tokenizer *tok, const char *template_name,
			    const char *model_file, const char *adapter_file, struct ft_buf *b,
			    struct ft_err *err)
{
	struct ft_chat_template *t = NULL;
	struct ft_buf go = FT_BUF_INIT(1 << 20);
	const char *stops[8];
	enum ft_rc rc = chat_template(tok, template_name, &t, err);
	if (rc)
		goto release;
	ft_buf_reset(b);
	if (ft_chat_template_ollama(t, ft_tokenizer_adds_bos(tok), &go) ||
	    ft_buf_addf(b,
			"# Written by ftplat (ft-train export --format ollama); chat template "
			"\"%s\".\n# Use: ollama create NAME -f Modelfile\nFROM ./%s\n",
			ft_chat_template_name(t), model_file) ||
	    (adapter_file && ft_buf_addf(b, "ADAPTER ./%s\n", adapter_file))) {
		rc = ft_failf(err, FT_ENOMEM, NULL, "out of memory");
		goto release;
	}
	if ((rc = quoted(b, "TEMPLATE", ft_buf_str(&go), true, err)))
		goto release;
	const char *sys = ft_chat_template_default_system(t);
	if (sys && (rc = quoted(b, "SYSTEM", sys, true, err)))
		goto release;
	size_t ns = ft_chat_template_stops(t, stops, FT_ARRAY_LEN(stops));
	for (size_t i = 0; i < ns && !rc; i++)
		rc = quoted(b, "PARAMETER stop", stops[i], false, err);
release:
	ft_chat_template_free(t);
	ft_buf_release(&go);
	return rc;
}

int export_ollama(struct export_common *c, int argc, char **argv)
{
	const char *type = "Q4_K_M", *name = NULL, *lora = "merged", *tmpl = NULL;
	const struct cmd_opt opts[] = {
		EXPORT_COMMON_OPTS(c),
		{ "--type", OPT_STR, &type },
		{ "--name", OPT_STR, &name },
		{ "--lora", OPT_STR, &lora },
		{ "--chat-template", OPT_STR, &tmpl },
	};
	enum ft_gguf_ftype ft;
	int rc = cmd_opts_parse(argc, argv, opts, FT_ARRAY_LEN(opts), "export");
	if (rc || (rc = cmd_need("export", "--model", c->model)) ||
	    (rc = cmd_need("export", "--out", c->out)))
		return rc;
	if (!ft_gguf_ftype_parse(type, &ft))
		return bad_type(type, ft_gguf_ftype_names());
	bool separate = strcmp(lora, "separate") == 0;
	if (!separate && strcmp(lora, "merged") != 0) {
		fprintf(stderr,
			"ft-train export: \"--lora\" must be merged or separate (got \"%s\")\n",
			lora);
		return 2;
	}
	if (separate && !c->adapter) {
		fprintf(stderr, "ft-train export: \"--lora separate\" needs \"--adapter\"\n");
		return 2;
	}
	struct ft_err err;
	ft_err_clear(&err);
	struct ft_tokenizer *tok = NULL;
	struct ft_model *m = NULL;
	struct ft_buf mf = FT_BUF_INIT(1 << 20);
	char model_file[64], adapter_file[64], path[4096];
	/* the Modelfile's text first: a template it cannot hold fails before the weights */
	if (ft_tokenizer_load(c->model, &tok, &err) ||
	    modelfile(tok, tmpl, "model.gguf", NULL, &mf, &err)) {
		rc = export_fail("export", &err);
		goto done;
	}
	if (ft_mkdir_p(c->out, &err)) {
		rc = cmd_fail("export", &err);
		goto done;
	}
	if ((rc = load(c, c->adapter, &m)))
		goto done;
	if (separate && write_gguf(c, m, true, FT_GGUF_FTYPE_F16, name, adapter_file,
				   sizeof adapter_file, &err)) {
		rc = export_fail("export", &err);
		goto done;
	}
	if (c->adapter && !separate) {
		export_stage(c, "merge", NULL, 0, 0);
		ft_model_lora_merge(m);
	}
	snprintf(path, sizeof path, "%s/Modelfile", c->out);
	if (write_gguf(c, m, false, ft, name, model_file, sizeof model_file, &err) ||
	    modelfile(tok, tmpl, model_file, separate ? adapter_file : NULL, &mf, &err) ||
	    ft_write_file_atomic(path, mf.ptr, mf.len, &err))
		rc = export_fail("export", &err);
done:
	ft_buf_release(&mf);
	ft_model_free(m);
	ft_tokenizer_free(tok);
	return rc ? rc : export_finished(c, "ollama");
}
