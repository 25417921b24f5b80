/*
 * exports.c - the table of ft/exports.h and the checks over it.
 */
#include "ft/exports.h"

static const char *const merged_argv[] = { "export", "--format", "merged", NULL };
static const char *const dtypes[] = { "auto", "bf16", "fp16", "fp32", NULL };
static const char *const gguf_argv[] = { "export", "--format", "gguf", NULL };
static const char *const gguf_lora_argv[] = { "export", "--format", "gguf-lora", NULL };
static const char *const ollama_argv[] = { "export", "--format", "ollama", NULL };
/* ft/gguf.h's file types (ft_gguf_ftype_names) */
static const char *const gguf_types[] = { "F32", "F16", "Q8_0", "Q4_0", "Q4_K_M", NULL };
static const char *const lora_types[] = { "F32", "F16", NULL };
static const char *const lora_modes[] = { "merged", "separate", NULL };
static const char *const gguf_lora_modes[] = { "merged", "none", NULL };

const struct ft_export_format ft_export_formats[] = {
	{
		.name = "merged",
		.argv = merged_argv,
		.artifact_kind = "merged",
		.takes = FT_EXPORT_TAKES_ADAPTER | FT_EXPORT_TAKES_MODEL,
		.opts = {
			{ "dtype", "--dtype", FT_EXPORT_OPT_CHOICE, dtypes, 0, 0, "auto",
			  "dtype of the weights; auto: the base model's torch_dtype (fp32 when "
			  "it has none we write)" },
			{ "max_shard_bytes", "--max-shard-bytes", FT_EXPORT_OPT_INT, NULL, 1 << 20,
			  1LL << 40, "5000000000",
			  "weights above this many bytes are cut into shards with an index" },
		},
		.help = "a Hugging Face folder: the adapter merged into the base (safetensors, "
			"config, tokenizer, generation config, chat template)",
		.check = NULL, /* every Llama-family base the engine loads is written so */
	},
	{
		.name = "gguf",
		.argv = gguf_argv,
		.artifact_kind = "gguf",
		.takes = FT_EXPORT_TAKES_ADAPTER | FT_EXPORT_TAKES_MODEL,
		.opts = {
			{ "type", "--type", FT_EXPORT_OPT_CHOICE, gguf_types, 0, 0, "F16",
			  "the file type: llama.cpp's rules pick each tensor's type (ft/gguf.h)" },
			{ "lora", "--lora", FT_EXPORT_OPT_CHOICE, gguf_lora_modes, 0, 0, "merged",
			  "merged: the adapter folded into the base; none: the base alone, for a "
			  "gguf-lora export to go over (llama.cpp's --lora)" },
		},
		.help = "one GGUF file for llama.cpp: the adapter merged into the base (or the "
			"base alone), the tokenizer and chat template in its metadata",
		.check = NULL,
	},
	{
		.name = "gguf-lora",
		.argv = gguf_lora_argv,
		.artifact_kind = "gguf",
		.takes = FT_EXPORT_TAKES_ADAPTER,
		.opts = {
			{ "type", "--type", FT_EXPORT_OPT_CHOICE, lora_types, 0, 0, "F32",
			  "the adapter's tensors' type" },
		},
		.help = "the LoRA adapter as a GGUF file for llama.cpp's --lora over a GGUF of "
			"its base",
		.check = NULL,
	},
	{
		.name = "ollama",
		.argv = ollama_argv,
		.artifact_kind = "gguf",
		.takes = FT_EXPORT_TAKES_ADAPTER | FT_EXPORT_TAKES_MODEL,
		.opts = {
			{ "type", "--type", FT_EXPORT_OPT_CHOICE, gguf_types, 0, 0, "Q4_K_M",
			  "the model GGUF's file type" },
			{ "lora", "--lora", FT_EXPORT_OPT_CHOICE, lora_modes, 0, 0, "merged",
			  "merged: one model GGUF; separate: the base GGUF and the adapter's "
			  "(ADAPTER in the Modelfile)" },
		},
		.help = "a folder for `ollama create NAME -f Modelfile`: the GGUF and a "
			"Modelfile with the chat template as a Go template",
		.check = NULL,
	},
};
const size_t ft_n_export_formats = FT_ARRAY_LEN(ft_export_formats);

const struct ft_export_format *ft_export_format_find(const char *name)
{
	for (size_t i = 0; name && i < ft_n_export_formats; i++)
		if (strcmp(ft_export_formats[i].name, name) == 0)
			return &ft_export_formats[i];
	return NULL;
}

void ft_export_format_names(char *out, size_t n)
{
	size_t o = 0;
	out[0] = '\0';
	for (size_t i = 0; i < ft_n_export_formats && o < n; i++)
		o += (size_t)snprintf(out + o, n - o, "%s\"%s\"", i ? ", " : "",
				      ft_export_formats[i].name);
}

static const struct ft_export_opt *find_opt(const struct ft_export_format *f, const char *name)
{
	for (size_t i = 0; i < FT_EXPORT_MAX_OPTS && f->opts[i].name; i++)
		if (strcmp(f->opts[i].name, name) == 0)
			return &f->opts[i];
	return NULL;
}

static enum ft_rc check_one(const struct ft_export_opt *o, const json_t *v, char *param,
			    struct ft_err *err)
{
	if (o->kind == FT_EXPORT_OPT_INT) {
		if (!json_is_integer(v) || json_integer_value(v) < o->min ||
		    json_integer_value(v) > o->max) {
			ft_failf(err, FT_EINVAL, "invalid_value",
				 "\"%s\" must be an integer from %lld to %lld", param, o->min,
				 o->max);
			ft_err_param(err, param);
			return FT_EINVAL;
		}
		return FT_OK;
	}
	char list[256] = "";
	size_t l = 0;
	for (const char *const *c = o->choices; *c; c++) {
		if (json_is_string(v) && strcmp(json_string_value(v), *c) == 0)
			return FT_OK;
		l += (size_t)snprintf(list + l, sizeof(list) - FT_MIN(l, sizeof(list)), "%s\"%s\"",
				      c == o->choices ? "" : ", ", *c);
		l = FT_MIN(l, sizeof(list) - 1);
	}
	if (json_is_string(v))
		ft_failf(err, FT_EINVAL, "invalid_value",
			 "\"%s\" must be one of %s (got \"%.64s\")", param, list,
			 json_string_value(v));
	else
		ft_failf(err, FT_EINVAL, "invalid_type", "\"%s\" must be one of %s (got %s)", param,
			 list, ft_json_type_name(v));
	ft_err_param(err, param);
	return FT_EINVAL;
}

enum ft_rc ft_export_options_check(const struct ft_export_format *f, json_t *options,
				   struct ft_err *err)
{
	if (!options || json_is_null(options))
		return FT_OK;
	if (!json_is_object(options)) {
		ft_failf(err, FT_EINVAL, "invalid_type", "\"options\" must be an object (got %s)",
			 ft_json_type_name(options));
		ft_err_param(err, "options");
		return FT_EINVAL;
	}
	const char *k;
	json_t *v;
	json_object_foreach(options, k, v)
	{
		char param[96];
		snprintf(param, sizeof(param), "options.%.64s", k);
		const struct ft_export_opt *o = find_opt(f, k);
		if (!o) {
			ft_failf(err, FT_EINVAL, "unknown_field",
				 "format \"%s\" has no option \"%.64s\"", f->name, k);
			ft_err_param(err, param);
			return FT_EINVAL;
		}
		if (!json_is_null(v) && check_one(o, v, param, err))
			return FT_EINVAL;
	}
	return FT_OK;
}

bool ft_export_option_text(const struct ft_export_opt *o, const json_t *options, char *out,
			   size_t n)
{
	const json_t *v = json_object_get(options, o->name);
	if (!v || json_is_null(v))
		return false;
	if (o->kind == FT_EXPORT_OPT_INT)
		snprintf(out, n, "%lld", (long long)json_integer_value(v));
	else
		snprintf(out, n, "%s", json_string_value(v) ? json_string_value(v) : "");
	return true;
}

json_t *ft_export_formats_json(void)
{
	json_t *a = json_array();
	for (size_t i = 0; i < ft_n_export_formats; i++) {
		const struct ft_export_format *f = &ft_export_formats[i];
		json_t *opts = json_array(), *takes = json_array();
		for (size_t k = 0; k < FT_EXPORT_MAX_OPTS && f->opts[k].name; k++) {
			const struct ft_export_opt *o = &f->opts[k];
			json_t *j = json_pack("{s:s, s:s, s:s, s:s}", "name", o->name, "type",
					      o->kind == FT_EXPORT_OPT_INT ? "integer" : "choice",
					      "default", o->default_text, "description", o->help);
			if (o->kind == FT_EXPORT_OPT_INT) {
				json_object_set_new(j, "minimum", json_integer(o->min));
				json_object_set_new(j, "maximum", json_integer(o->max));
			} else {
				json_t *c = json_array();
				for (const char *const *s = o->choices; *s; s++)
					json_array_append_new(c, json_string(*s));
				json_object_set_new(j, "choices", c);
			}
			json_array_append_new(opts, j);
		}
		if (f->takes & FT_EXPORT_TAKES_ADAPTER)
			json_array_append_new(takes, json_string("adapter"));
		if (f->takes & FT_EXPORT_TAKES_MODEL)
			json_array_append_new(takes, json_string("model"));
		json_array_append_new(a, json_pack("{s:s, s:s, s:o, s:o, s:s}", "name", f->name,
						   "artifact_kind", f->artifact_kind, "versions",
						   takes, "options", opts, "description", f->help));
	}
	return a;
}
