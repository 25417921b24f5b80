/*
 * cmd_eval.c - ft-train eval: models against an evaluation file
 * (ft/evaluate.h). The worker runs it for an evaluation job; people can run
 * it by hand.
 *
 *   eval --config SPEC.json [--progress-fd N] [--out FILE] [--device cpu|cuda]
 *        [--with-ids]
 *
 * SPEC:
 *   {"data": "eval.jsonl",
 *    "models": [{"name": "bot/3", "model": DIR, "adapter": DIR | null}, ...],
 *    "options": {"max_new_tokens": 256, "rouge_tokenizer": "cjk",
 *                "bleu_tokenizer": "zh", "max_rows": 1000}}
 *
 * One model after the other, each on its own (the base loaded again, the
 * adapter on it): "evaluate" progress lines ({"model": index, "models",
 * "stage": "score", "done_rows", "total_rows"}), then a "result" line
 * ({"model": index, "name", "metrics", "rows"}); after the last, "done"
 * ({"seconds", "trainer_version"}) (ft/events.h). --out writes
 * {"options", "models": [{"name", "metrics", "rows"}]}; without --out and
 * --progress-fd that goes to stdout. --with-ids adds each row's token ids
 * and labels (the perplexity peer test replays them in PyTorch).
 *
 * Exit codes: 0 done, 1 failed, 2 bad command line, 3 the input is wrong
 * (the spec, a row of the file, a model or adapter folder): no retry.
 */
#include <unistd.h>

#include "ft/clock.h"
#include "ft/evaluate.h"
#include "ft/events.h"
#include "ft/trainer.h"

#include "cmd.h"

struct line_out {
	long fd;
	int model, models;
};

static void put_line(long fd, enum ft_line type, json_t *fields_new)
{
	if (fd < 0) {
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
	s[n] = '\n'; /* over the NUL: written as n + 1 bytes */
	for (size_t off = 0; off < n + 1;) {
		ssize_t w = write((int)fd, s + off, n + 1 - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			break;
		off += (size_t)w;
	}
	free(s);
}

static void on_progress(void *ud, const char *stage, long done, long total)
{
	const struct line_out *lo = ud;
	put_line(lo->fd, FT_LINE_EVALUATE,
		 json_pack("{s:i, s:i, s:s, s:I, s:I}", "model", lo->model, "models", lo->models,
			   "stage", stage, "done_rows", (json_int_t)done, "total_rows",
			   (json_int_t)total));
}

static int eval_fail(const struct ft_err *err)
{
	cmd_fail("eval", err);
	return err->rc == FT_EINVAL || err->rc == FT_EFORMAT || err->rc == FT_ENOTFOUND ? 3 : 1;
}

/* The spec file: data, models, options; errors name the field. */
static enum ft_rc spec_load(const char *path, json_t **spec, struct ft_eval_opts *o,
			    struct ft_eval_model *models, size_t *n, struct ft_err *err)
{
	json_error_t je;
	*spec = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
	if (!*spec)
		return ft_failf(err, FT_EINVAL, "invalid_json", "%s: %s (line %d)", path, je.text,
				je.line);
	static const char *const keys[] = { "data", "models", "options", NULL };
	static const char *const mkeys[] = { "name", "model", "adapter", NULL };
	const char *data;
	json_t *arr;
	if (ft_json_check_keys(*spec, keys, err) ||
	    ft_json_get_str(*spec, "data", FT_JSON_REQUIRED | FT_JSON_NONEMPTY, &data, err) ||
	    ft_json_get_arr(*spec, "models", FT_JSON_REQUIRED, &arr, err) ||
	    ft_eval_opts_parse(json_object_get(*spec, "options"), o, err))
		return FT_EINVAL;
	*n = json_array_size(arr);
	if (*n == 0 || *n > FT_EVAL_MAX_MODELS)
		return ft_failf(err, FT_EINVAL, "invalid_value",
				"\"models\" must list 1 to %d models (got %zu)", FT_EVAL_MAX_MODELS,
				*n);
	for (size_t i = 0; i < *n; i++) {
		json_t *m = json_array_get(arr, i);
		char where[32];
		snprintf(where, sizeof(where), "models[%zu]", i);
		models[i] = (struct ft_eval_model){ 0 };
		if (!json_is_object(m))
			return ft_failf(err, FT_EINVAL, "invalid_type", "\"%s\" must be an object",
					where);
		if (ft_json_check_keys(m, mkeys, err) ||
		    ft_json_get_str(m, "model", FT_JSON_REQUIRED | FT_JSON_NONEMPTY,
				    &models[i].model_dir, err) ||
		    ft_json_get_str(m, "adapter", FT_JSON_NULL_OK | FT_JSON_NONEMPTY,
				    &models[i].adapter_dir, err)) {
			ft_json_err_nest(err, where);
			return FT_EINVAL;
		}
		models[i].name = json_string_value(json_object_get(m, "name"));
		if (!models[i].name)
			models[i].name = models[i].model_dir;
	}
	return FT_OK;
}

int cmd_eval(int argc, char **argv)
{
	const char *config = NULL, *out = NULL, *device = NULL;
	long fd = -1;
	bool with_ids = false;
	const struct cmd_opt opts[] = {
		{ "--config", OPT_STR, &config },
		{ "--progress-fd", OPT_INT, &fd },
		{ "--out", OPT_STR, &out },
		{ "--device", OPT_STR, &device },
		{ "--with-ids", OPT_FLAG, &with_ids },
	};
	int rc = cmd_opts_parse(argc, argv, opts, FT_ARRAY_LEN(opts), "eval");
	if (rc || (rc = cmd_need("eval", "--config", config)))
		return rc;
	struct ft_err err;
	ft_err_clear(&err);
	json_t *spec = NULL, *all = json_array();
	struct ft_eval_opts eo;
	struct ft_eval_model models[FT_EVAL_MAX_MODELS];
	size_t n = 0;
	uint64_t t0 = ft_time_mono_ms();
	if (spec_load(config, &spec, &eo, models, &n, &err)) {
		rc = eval_fail(&err);
		goto out;
	}
	const char *data = json_string_value(json_object_get(spec, "data"));
	for (size_t i = 0; i < n && !rc; i++) {
		struct line_out lo = { fd, (int)i, (int)n };
		struct ft_eval_run_opts ro = { &eo, device, with_ids, on_progress, &lo };
		json_t *res = NULL;
		if (ft_eval_run(data, &models[i], &ro, &res, &err)) {
			if (n > 1)
				ft_err_prefixf(&err, "%s: ", models[i].name);
			rc = eval_fail(&err);
			break;
		}
		json_object_set_new(res, "name", json_string(models[i].name));
		put_line(fd, FT_LINE_RESULT,
			 json_pack("{s:i, s:s, s:O, s:O}", "model", (int)i, "name", models[i].name,
				   "metrics", json_object_get(res, "metrics"), "rows",
				   json_object_get(res, "rows")));
		json_array_append_new(all, res);
	}
	if (rc)
		goto out;
	json_t *doc = json_pack("{s:o, s:O}", "options", ft_eval_opts_json(&eo), "models", all);
	if (out && json_dump_file(doc, out, JSON_COMPACT) != 0) {
		fprintf(stderr, "ft-train eval: cannot write %s\n", out);
		rc = 1;
	} else if (!out && fd < 0) {
		char *s = json_dumps(doc, JSON_COMPACT);
		printf("%s\n", s ? s : "{}");
		free(s);
	}
	json_decref(doc);
	put_line(fd, FT_LINE_DONE,
		 json_pack("{s:f, s:s}", "seconds", (double)(ft_time_mono_ms() - t0) / 1000.0,
			   "trainer_version", ft_trainer_version()));
out:
	json_decref(all);
	json_decref(spec);
	return rc;
}
