/*
 * cmd_import.c - `ft-train import`: a GGUF file (llama.cpp, Ollama, LM
 * Studio) written out as a Hugging Face folder, and a hidden helper of the
 * GGUF peer test.
 *
 *   ft-train import MODEL.gguf --out DIR [--dtype bf16|fp32]
 *       writes DIR/config.json, model.safetensors (bf16 by default),
 *       tokenizer.json, tokenizer_config.json (with the chat template) and
 *       generation_config.json (ft/gguf.h has what maps to what), then one
 *       JSON line on stdout:
 *         {"out", "architecture", "tensors", "parameters", "dtype",
 *          "chat_template": our template name | null, "warning"?: text}
 *       A chat template ftplat does not render is not an error here (the
 *       folder is complete, and transformers renders it); the warning names
 *       it, and training chat data on the model then needs the job's
 *       "chat_template".
 *   ft-train gguf-dequant MODEL.gguf OUT.safetensors
 *       every tensor of the file dequantised to F32 under its GGUF name,
 *       dimensions in PyTorch order (ne reversed); no row reordering.
 *
 * A GGUF needs no import to be used: every command that takes a model
 * folder takes the .gguf file itself.
 */
#include "ft/gguf.h"

#include "cmd.h"

static int usage_import(void)
{
	fprintf(stderr, "usage: ft-train import MODEL.gguf --out DIR [--dtype bf16|fp32]\n");
	return 2;
}

int cmd_import(int argc, char **argv)
{
	const char *in = NULL, *out = NULL, *dtype = "bf16";
	for (int i = 1; i < argc; i++) {
		if ((strcmp(argv[i], "--out") == 0 || strcmp(argv[i], "--dtype") == 0) &&
		    i + 1 < argc) {
			*(argv[i][2] == 'o' ? &out : &dtype) = argv[i + 1];
			i++;
		} else if (argv[i][0] != '-' && !in) {
			in = argv[i];
		} else {
			fprintf(stderr, "ft-train import: unexpected argument \"%s\"\n", argv[i]);
			return usage_import();
		}
	}
	if (!in || !out)
		return usage_import();
	struct ft_gguf_import imp = { 0 };
	if (strcmp(dtype, "bf16") == 0) {
		imp.dtype = FT_DTYPE_BF16;
	} else if (strcmp(dtype, "fp32") == 0) {
		imp.dtype = FT_DTYPE_F32;
	} else {
		fprintf(stderr, "ft-train import: \"--dtype\" must be bf16 or fp32 (got \"%s\")\n",
			dtype);
		return 2;
	}
	struct ft_err err;
	ft_err_clear(&err);
	if (ft_gguf_import(in, out, &imp, &err)) {
		fprintf(stderr, "ft-train import: %s\n", err.msg);
		if (err.hint[0])
			fprintf(stderr, "  hint: %s\n", err.hint);
		return err.rc == FT_EINVAL || err.rc == FT_EFORMAT || err.rc == FT_ENOTFOUND ? 3
											     : 1;
	}
	json_t *o = json_pack("{s:s, s:s, s:I, s:I, s:s, s:s?}", "out", out, "architecture",
			      imp.architecture, "tensors", (json_int_t)imp.n_tensors, "parameters",
			      (json_int_t)imp.n_params, "dtype", dtype, "chat_template",
			      imp.chat_template[0] ? imp.chat_template : NULL);
	if (o && imp.warning[0])
		json_object_set_new(o, "warning", json_string(imp.warning));
	char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
	printf("%s\n", s ? s : "{}");
	if (imp.warning[0])
		fprintf(stderr, "ft-train import: warning: %s\n", imp.warning);
	free(s);
	json_decref(o);
	return 0;
}

int cmd_gguf_dequant(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: ft-train gguf-dequant MODEL.gguf OUT.safetensors\n");
		return 2;
	}
	struct ft_err err;
	ft_err_clear(&err);
	struct ft_gguf *g;
	if (ft_gguf_open(argv[1], &g, &err)) {
		fprintf(stderr, "ft-train gguf-dequant: %s\n", err.msg);
		return 1;
	}
	size_t n = ft_gguf_tensor_count(g), total = 0;
	for (size_t i = 0; i < n; i++)
		total += ft_gguf_tensor_at(g, i)->nelem;
	float *all = malloc((total + 1) * sizeof(float));
	struct ft_st_writer *w = ft_st_writer_new();
	enum ft_rc rc = all ? FT_OK : ft_failf(&err, FT_ENOMEM, NULL, "out of memory");
	for (size_t i = 0, off = 0; i < n && !rc; i++) {
		const struct ft_gguf_tensor *t = ft_gguf_tensor_at(g, i);
		int64_t shape[4];
		for (int d = 0; d < t->n_dims; d++)
			shape[d] = (int64_t)t->ne[t->n_dims - 1 - d];
		rc = ft_gguf_tensor_to_f32(g, t, all + off, &err);
		if (!rc)
			rc = ft_st_writer_add(w, t->name, FT_DTYPE_F32, t->n_dims, shape, all + off,
					      &err);
		off += t->nelem;
	}
	if (!rc)
		rc = ft_st_writer_write(w, argv[2], &err);
	if (rc)
		fprintf(stderr, "ft-train gguf-dequant: %s\n", err.msg);
	ft_st_writer_free(w);
	free(all);
	ft_gguf_close(g);
	return rc ? 1 : 0;
}
