/*
 * cmd_engine.c - ft-train's engine subcommands:
 *
 *   train --config JOB [--resume DIR] [--progress-fd N] [--stop-after-steps N] [--gpus N]
 *            (--gpus: cmd_gpus.c; N > 0 needs CUDA and says clearly why it cannot run)
 *   generate --model DIR [--adapter DIR] (--prompt TEXT | --prompt-ids 1,2,3)
 *            [--max-new-tokens N] [--temperature T] [--top-p P] [--seed S] [--nf4]
 *            [--device cpu|cuda] [--weights f32|bf16|q8_0 (packed as ft-serve packs them)]
 *            -> {"ids":[...], "text":"..."} on stdout ("text" with --prompt: the
 *            model folder's tokenizer.json encodes the prompt, special tokens
 *            and the post-processor's BOS included, and decodes the answer)
 *   generate --model DIR [--adapter DIR] --batch FILE|- [--max-batch N] [same options]
 *            many prompts at once (ft_generate_batch): one request per JSONL
 *            line, {"prompt_ids": [...]} or {"prompt": "TEXT"} (encoded as
 *            --prompt is), with "adapter": false to answer that one from the
 *            base alone beside the adapter's; one line per request on stdout,
 *            in order, {"ids":[...], "text":"..."} (the folder's tokenizer.json
 *            decodes every answer). Request i samples with seed S + i, so its
 *            answer is the one a single generate with that seed gives.
 *   merge --model DIR --adapter DIR --out DIR [--nf4] [--device cpu|cuda]
 *            [--dtype fp32|bf16|fp16|auto] [--max-shard-bytes N] (cmd_export.c:
 *            export --format merged without progress lines, fp32 by default)
 *   debug-forward --model DIR [--adapter DIR] --data ROWS --out FILE [--pack N] [--nf4]
 *   debug-grads   --model DIR [--adapter DIR | --full] --data ROWS --out FILE [--nf4]
 *
 * The debug commands put all rows of ROWS (pre-tokenized JSONL, see
 * trainer/data/rows_int.h) in one right-padded batch and write a safetensors
 * file: debug-forward the tensor "logits" [rows, T, vocab]; debug-grads the
 * gradient of every trainable tensor under its own name (HF or PEFT). Both
 * put the mean loss over trained tokens in the metadata ("loss", "%.17g").
 * --nf4 (also for generate and merge) loads the base as QLoRA does (decoder linears quantised to NF4 with
 * double quantisation, ft_model_load_nf4).
 * --pack N packs the rows into sequences of at most N tokens first (as the
 * job option "packing" does), one batch row per packed sequence.
 * The peer tests compare them with PyTorch + transformers + peft.
 * --device picks the backend (default cpu; the job file's "device" for
 * train); FT_BACKEND in the environment replaces it (tests: cpu-guarded).
 *
 * Exit codes: 0 done (also after SIGTERM with a checkpoint written), 1 the
 * job failed (message on stderr), 2 bad command line, 3 the job's own input
 * is wrong (train) or the device is not available.
 */
#include "ft/generate.h"
#include "ft/safetensors.h"
#include "ft/tokenizer.h"
#include "ft/trainer.h"

#include "cmd.h"
#include "data/rows_int.h"
#include "ft/dataset.h"

/* The option parser, fail and need are cmd.h's (shared with cmd_export.c). */

int cmd_opts_parse(int argc, char **argv, const struct cmd_opt *opts, size_t n, const char *cmd)
{
	for (int i = 1; i < argc; i++) {
		size_t k;
		for (k = 0; k < n; k++)
			if (strcmp(argv[i], opts[k].name) == 0)
				break;
		if (k == n) {
			fprintf(stderr, "ft-train %s: unknown option \"%s\"\n", cmd, argv[i]);
			return 2;
		}
		if (opts[k].type == OPT_FLAG) {
			*(bool *)opts[k].out = true;
			continue;
		}
		if (i + 1 >= argc) {
			fprintf(stderr, "ft-train %s: \"%s\" needs a value\n", cmd, argv[i]);
			return 2;
		}
		const char *v = argv[++i];
		char *end = NULL;
		errno = 0;
		switch (opts[k].type) {
		case OPT_STR: *(const char **)opts[k].out = v; break;
		case OPT_INT: *(long *)opts[k].out = strtol(v, &end, 10); break;
		case OPT_NUM: *(double *)opts[k].out = strtod(v, &end); break;
		case OPT_FLAG: break;
		}
		if (end && (*end || end == v || errno)) {
			fprintf(stderr, "ft-train %s: \"%s\" must be a number (got \"%s\")\n", cmd,
				opts[k].name, v);
			return 2;
		}
	}
	return 0;
}

int cmd_fail(const char *cmd, const struct ft_err *err)
{
	fprintf(stderr, "ft-train %s: %s\n", cmd, err->msg);
	if (err->detail[0])
		fprintf(stderr, "  %s\n", err->detail);
	if (err->hint[0])
		fprintf(stderr, "  hint: %s\n", err->hint);
	return 1;
}

int cmd_need(const char *cmd, const char *name, const char *v)
{
	if (v)
		return 0;
	fprintf(stderr, "ft-train %s: \"%s\" is required\n", cmd, name);
	return 2;
}

/* ---- train ---- */

/* Exit status of a failed job: 3 when the job's own input is wrong (its job
 * file, data or model folder: retrying cannot help, the worker reports a
 * user error), 1 for anything else (the scheduler may retry elsewhere). */
static int train_fail(const struct ft_err *err)
{
	cmd_fail("train", err);
	return err->rc == FT_EINVAL || err->rc == FT_EFORMAT || err->rc == FT_ENOTFOUND ? 3 : 1;
}

int cmd_train(int argc, char **argv)
{
	const char *config = NULL, *resume = NULL;
	long fd = 1, stop_after = 0, gpus = 0;
	const struct cmd_opt opts[] = {
		{ "--config", OPT_STR, &config },  { "--resume", OPT_STR, &resume },
		{ "--progress-fd", OPT_INT, &fd }, { "--stop-after-steps", OPT_INT, &stop_after },
		{ "--gpus", OPT_INT, &gpus },
	};
	int rc = cmd_opts_parse(argc, argv, opts, FT_ARRAY_LEN(opts), "train");
	if (rc || (rc = cmd_need("train", "--config", config)))
		return rc;
	struct ft_err err;
	ft_err_clear(&err);
	if (cmd_gpus_check(gpus, &err)) {
		cmd_fail("train", &err);
		return 2; /* the command line asks for what this machine or build lacks */
	}
	struct ft_train_job *job = ft_xcalloc(1, sizeof(*job));
	if (ft_train_job_load(config, job, &err)) {
		free(job);
		return train_fail(&err);
	}
	struct ft_train_opts to = { (int)fd, resume, stop_after };
	rc = ft_train_run(job, &to, &err) ? train_fail(&err) : 0;
	free(job);
	return rc;
}

/* ---- model + optional adapter ---- */

int cmd_model_load(const char *cmd, const char *dir, const char *adapter, bool nf4,
		   const char *device, struct ft_model **m)
{
	struct ft_err err;
	ft_err_clear(&err);
	const struct ft_backend *be;
	if (ft_backend_select(device, &be, &err)) {
		cmd_fail(cmd, &err);
		return 3;
	}
	if (nf4 ? ft_model_load_nf4(dir, be, true, m, &err) : ft_model_load(dir, be, m, &err))
		return cmd_fail(cmd, &err);
	if (adapter && ft_model_lora_load_peft(*m, adapter, &err)) {
		ft_model_free(*m);
		return cmd_fail(cmd, &err);
	}
	return 0;
}

static bool parse_ids(const char *s, int32_t **ids, size_t *n)
{
	size_t cap = 16;
	*ids = ft_xmalloc(cap * sizeof(int32_t));
	*n = 0;
	while (*s) {
		char *end;
		errno = 0;
		long v = strtol(s, &end, 10);
		if (end == s || errno || v < 0 || v > INT32_MAX)
			return false;
		if (*n == cap) {
			cap *= 2;
			*ids = realloc(*ids, cap * sizeof(int32_t));
			FT_ASSERT(*ids);
		}
		(*ids)[(*n)++] = (int32_t)v;
		s = end;
		if (*s == ',')
			s++;
		else if (*s)
			return false;
	}
	return *n > 0;
}

/* ---- generate --batch ---- */

struct gen_requests {
	struct ft_gen_prompt *p; /* p[i].ids is own[i] */
	int32_t **own;
	int32_t *adapter; /* per request: 0 the --adapter, -1 the base alone */
	size_t n, cap;
};

static void gen_requests_free(struct gen_requests *q)
{
	for (size_t i = 0; i < q->n; i++)
		free(q->own[i]);
	free(q->own);
	free(q->p);
	free(q->adapter);
}

/* One request line into q (ids encoded with tok for "prompt"). A bad line
 * is an error naming its problem; the caller adds the file and line. */
static enum ft_rc gen_request_parse(const struct ft_tokenizer *tok, bool have_adapter,
				    const char *line, size_t len, struct gen_requests *q,
				    struct ft_err *err)
{
	json_t *o = ft_json_parse(line, len, err);
	if (!o)
		return FT_EFORMAT;
	enum ft_rc rc = FT_EINVAL;
	const char *key;
	json_t *v, *ids = json_object_get(o, "prompt_ids"), *text = json_object_get(o, "prompt");
	json_t *ad = json_object_get(o, "adapter");
	struct ft_ids enc = { 0 };
	if (!json_is_object(o)) {
		ft_failf(err, rc, NULL, "a request must be a JSON object");
		goto out;
	}
	json_object_foreach(o, key, v) if (strcmp(key, "prompt_ids") && strcmp(key, "prompt") &&
					   strcmp(key, "adapter"))
	{
		ft_failf(err, rc, NULL,
			 "unknown field \"%s\" (a request has \"prompt_ids\" or \"prompt\", and "
			 "\"adapter\")",
			 key);
		goto out;
	}
	if (!ids == !text) {
		ft_failf(err, rc, NULL,
			 "a request needs exactly one of \"prompt_ids\" and \"prompt\"");
		goto out;
	}
	if (ad && !json_is_boolean(ad)) {
		ft_failf(err, rc, NULL, "\"adapter\" must be true or false");
		goto out;
	}
	if (json_is_true(ad) && !have_adapter) {
		ft_failf(err, rc, NULL, "\"adapter\": true needs --adapter DIR");
		goto out;
	}
	if (text) {
		if (!json_is_string(text)) {
			ft_failf(err, rc, NULL, "\"prompt\" must be a string");
			goto out;
		}
		if ((rc = ft_tokenizer_encode(
			     tok, json_string_value(text), json_string_length(text),
			     FT_TOK_SPLIT_SPECIAL | FT_TOK_ADD_SPECIAL, &enc, err)))
			goto out;
		rc = FT_EINVAL;
	} else {
		size_t i;
		if (!json_is_array(ids)) {
			ft_failf(err, rc, NULL, "\"prompt_ids\" must be a list of token ids");
			goto out;
		}
		json_array_foreach(ids, i, v)
		{
			if (!json_is_integer(v) || json_integer_value(v) < 0 ||
			    json_integer_value(v) > INT32_MAX) {
				ft_failf(err, rc, NULL,
					 "\"prompt_ids\"[%zu] must be a token id (an integer >= 0)",
					 i);
				goto out;
			}
			if (ft_ids_push(&enc, (int32_t)json_integer_value(v))) {
				rc = ft_failf(err, FT_ENOMEM, NULL, "out of memory");
				goto out;
			}
		}
	}
	if (q->n == q->cap) {
		q->cap = q->cap ? 2 * q->cap : 16;
		q->p = realloc(q->p, q->cap * sizeof(*q->p));
		q->own = realloc(q->own, q->cap * sizeof(*q->own));
		q->adapter = realloc(q->adapter, q->cap * sizeof(*q->adapter));
		FT_ASSERT(q->p && q->own && q->adapter);
	}
	/* an empty prompt is left to ft_generate_batch, which names it */
	q->own[q->n] = enc.v;
	q->p[q->n] = (struct ft_gen_prompt){ enc.v, enc.len };
	q->adapter[q->n++] = have_adapter && !json_is_false(ad) ? 0 : -1;
	enc = (struct ft_ids){ 0 };
	rc = FT_OK;
out:
	ft_ids_release(&enc);
	json_decref(o);
	return rc;
}

static enum ft_rc gen_requests_read(const char *path, const struct ft_tokenizer *tok,
				    bool have_adapter, struct gen_requests *q, struct ft_err *err)
{
	struct ft_jsonl_reader r;
	bool std_in = strcmp(path, "-") == 0, eof = false;
	enum ft_rc rc = std_in ? ft_jsonl_reader_from_file(&r, stdin, err)
			       : ft_jsonl_reader_open(&r, path, err);
	if (rc)
		return rc;
	const char *name = std_in ? "standard input" : path;
	while (!(rc = ft_jsonl_reader_next(&r, &eof, err)) && !eof) {
		if (ft_jsonl_blank(ft_buf_str(&r.line), r.line.len))
			continue;
		if ((rc = gen_request_parse(tok, have_adapter, ft_buf_str(&r.line), r.line.len, q,
					    err)))
			break;
	}
	if (rc)
		ft_err_prefixf(err, "%s line %ld: ", name, r.lineno);
	if (!rc && q->n == 0)
		rc = ft_failf(err, FT_EINVAL, NULL, "%s holds no request", name);
	ft_jsonl_reader_close(&r);
	return rc;
}

static int gen_batch(struct ft_model *m, const struct ft_tokenizer *tok, const char *path,
		     bool have_adapter, long max_batch, const struct ft_gen_opts *go)
{
	struct ft_err err;
	ft_err_clear(&err);
	struct gen_requests q = { 0 };
	if (gen_requests_read(path, tok, have_adapter, &q, &err)) {
		gen_requests_free(&q);
		cmd_fail("generate", &err);
		return 2;
	}
	struct ft_ids_out *out = ft_xcalloc(q.n, sizeof(*out));
	int rc = 0;
	if (ft_generate_batch(m, q.p, q.n, have_adapter ? q.adapter : NULL, (int)max_batch, go, out,
			      &err)) {
		rc = cmd_fail("generate", &err);
		goto done;
	}
	struct ft_buf dec = FT_BUF_INIT(1 << 24);
	for (size_t i = 0; i < q.n && !rc; i++) {
		ft_buf_reset(&dec);
		if (ft_tokenizer_decode(tok, out[i].ids, out[i].n, FT_TOK_SKIP_SPECIAL, &dec,
					&err)) {
			rc = cmd_fail("generate", &err);
			break;
		}
		json_t *ja = json_array();
		for (size_t t = 0; t < out[i].n; t++)
			json_array_append_new(ja, json_integer(out[i].ids[t]));
		json_t *o = json_pack("{s:o,s:s%}", "ids", ja, "text", ft_buf_str(&dec), dec.len);
		char *js = o ? json_dumps(o, JSON_COMPACT) : NULL;
		if (js)
			printf("%s\n", js);
		else
			rc = cmd_fail("generate",
				      (ft_failf(&err, FT_ENOMEM, NULL, "out of memory"), &err));
		free(js);
		json_decref(o);
	}
	ft_buf_release(&dec);
done:
	for (size_t i = 0; i < q.n; i++)
		free(out[i].ids);
	free(out);
	gen_requests_free(&q);
	return rc;
}

/* --weights f32|bf16|q8_0: the base packed for inference as ft-serve packs it
 * (serve_weights), so its answers can be checked here; none: as loaded. */
static int pack_weights(struct ft_model *m, const char *name)
{
	enum ft_pw_fmt fmt;
	struct ft_err err;
	ft_err_clear(&err);
	if (!name)
		return 0;
	if (!ft_pw_fmt_parse(name, &fmt)) {
		fprintf(stderr,
			"ft-train generate: \"--weights\" must be f32, bf16 or q8_0 (got \"%s\")\n",
			name);
		return 2;
	}
	return ft_model_pack(m, fmt, &err) ? cmd_fail("generate", &err) : 0;
}

int cmd_generate(int argc, char **argv)
{
	const char *model = NULL, *adapter = NULL, *prompt = NULL, *text = NULL, *device = NULL;
	const char *batch = NULL, *weights = NULL;
	long max_new = 32, seed = 0, max_batch = 64;
	double temp = 0, top_p = 1;
	bool nf4 = false;
	const struct cmd_opt opts[] = {
		{ "--model", OPT_STR, &model },	      { "--adapter", OPT_STR, &adapter },
		{ "--prompt-ids", OPT_STR, &prompt }, { "--max-new-tokens", OPT_INT, &max_new },
		{ "--temperature", OPT_NUM, &temp },  { "--top-p", OPT_NUM, &top_p },
		{ "--seed", OPT_INT, &seed },	      { "--prompt", OPT_STR, &text },
		{ "--nf4", OPT_FLAG, &nf4 },	      { "--device", OPT_STR, &device },
		{ "--batch", OPT_STR, &batch },	      { "--max-batch", OPT_INT, &max_batch },
		{ "--weights", OPT_STR, &weights },
	};
	int rc = cmd_opts_parse(argc, argv, opts, FT_ARRAY_LEN(opts), "generate");
	if (rc || (rc = cmd_need("generate", "--model", model)))
		return rc;
	if ((!prompt) + (!text) + (!batch) != 2) {
		fprintf(stderr, "ft-train generate: give one of --prompt TEXT, --prompt-ids IDS "
				"and --batch FILE\n");
		return 2;
	}
	if (batch) {
		if (max_new < 1 || max_new > 1000000 || max_batch < 1 || max_batch > 1000000) {
			fprintf(stderr, "ft-train generate: \"--max-new-tokens\" and "
					"\"--max-batch\" must be at least 1\n");
			return 2;
		}
		struct ft_err err;
		ft_err_clear(&err);
		struct ft_tokenizer *tok = NULL;
		struct ft_model *m;
		if (ft_tokenizer_load(model, &tok, &err))
			return cmd_fail("generate", &err);
		if ((rc = cmd_model_load("generate", model, adapter, nf4, device, &m)) ||
		    (rc = pack_weights(m, weights))) {
			ft_model_free(m);
			ft_tokenizer_free(tok);
			return rc;
		}
		struct ft_gen_opts go = { (int)max_new, temp, top_p, (uint64_t)seed };
		rc = gen_batch(m, tok, batch, adapter != NULL, max_batch, &go);
		ft_model_free(m);
		ft_tokenizer_free(tok);
		return rc;
	}
	struct ft_err err;
	ft_err_clear(&err);
	struct ft_tokenizer *tok = NULL;
	if (text && ft_tokenizer_load(model, &tok, &err))
		return cmd_fail("generate", &err);
	int32_t *ids = NULL;
	size_t n = 0;
	if (text) {
		struct ft_ids enc = { 0 };
		if (ft_tokenizer_encode(tok, text, strlen(text),
					FT_TOK_SPLIT_SPECIAL | FT_TOK_ADD_SPECIAL, &enc, &err)) {
			ft_tokenizer_free(tok);
			return cmd_fail("generate", &err);
		}
		ids = enc.v;
		n = enc.len;
	}
	if ((!text && !parse_ids(prompt, &ids, &n)) || n == 0 || max_new < 1 || max_new > 1000000) {
		ft_tokenizer_free(tok);
		fprintf(stderr, "ft-train generate: \"--prompt-ids\" must be comma-separated token "
				"ids and \"--max-new-tokens\" at least 1\n");
		free(ids);
		return 2;
	}
	struct ft_model *m = NULL;
	if ((rc = cmd_model_load("generate", model, adapter, nf4, device, &m)) ||
	    (rc = pack_weights(m, weights))) {
		ft_model_free(m);
		free(ids);
		ft_tokenizer_free(tok);
		return rc;
	}
	struct ft_gen_opts go = { (int)max_new, temp, top_p, (uint64_t)seed };
	struct ft_ids_out out = { 0 };
	struct ft_buf dec = FT_BUF_INIT(1 << 24);
	if (ft_generate(m, ids, n, &go, &out, &err) ||
	    (tok && ft_tokenizer_decode(tok, out.ids, out.n, FT_TOK_SKIP_SPECIAL, &dec, &err))) {
		rc = cmd_fail("generate", &err);
	} else {
		json_t *ja = json_array();
		for (size_t i = 0; i < out.n; i++)
			json_array_append_new(ja, json_integer(out.ids[i]));
		json_t *o = json_pack("{s:o}", "ids", ja);
		if (tok)
			json_object_set_new(o, "text", json_stringn(ft_buf_str(&dec), dec.len));
		char *js = json_dumps(o, JSON_COMPACT);
		printf("%s\n", js ? js : "{}");
		free(js);
		json_decref(o);
	}
	ft_buf_release(&dec);
	free(out.ids);
	free(ids);
	ft_model_free(m);
	ft_tokenizer_free(tok);
	return rc;
}

/* ---- debug dumps ---- */

struct dbg {
	const char *model, *adapter, *data, *out;
	bool full, nf4;
	long pack; /* > 0: pack rows into sequences of this many tokens */
	struct ft_model *m;
	struct ft_rows rows;
	struct ft_mbatch mb;
};

static int dbg_setup(const char *cmd, int argc, char **argv, struct dbg *d)
{
	const struct cmd_opt opts[] = {
		{ "--model", OPT_STR, &d->model }, { "--adapter", OPT_STR, &d->adapter },
		{ "--data", OPT_STR, &d->data },   { "--out", OPT_STR, &d->out },
		{ "--full", OPT_FLAG, &d->full },  { "--pack", OPT_INT, &d->pack },
		{ "--nf4", OPT_FLAG, &d->nf4 },
	};
	int rc = cmd_opts_parse(argc, argv, opts, FT_ARRAY_LEN(opts), cmd);
	if (rc || (rc = cmd_need(cmd, "--model", d->model)) ||
	    (rc = cmd_need(cmd, "--data", d->data)) || (rc = cmd_need(cmd, "--out", d->out)))
		return rc;
	if ((rc = cmd_model_load(cmd, d->model, d->adapter, d->nf4, NULL, &d->m)))
		return rc;
	struct ft_err err;
	ft_err_clear(&err);
	const struct ft_model_config *c = ft_model_config(d->m);
	int max_len = d->pack > 0 ? (int)FT_MIN(d->pack, c->max_position_embeddings)
				  : c->max_position_embeddings;
	if (ft_rows_load(d->data, c->vocab_size, max_len, d->pack > 0, &d->rows, &err)) {
		ft_model_free(d->m);
		return cmd_fail(cmd, &err);
	}
	size_t *order = ft_xcalloc(d->rows.n_units, sizeof(size_t));
	for (size_t i = 0; i < d->rows.n_units; i++)
		order[i] = i;
	ft_mbatch_build(&d->mb, &d->rows, order, (int)d->rows.n_units);
	free(order);
	return 0;
}

static void dbg_release(struct dbg *d)
{
	ft_mbatch_release(&d->mb);
	ft_rows_release(&d->rows);
	ft_model_free(d->m);
}

static enum ft_rc put_loss(struct ft_st_writer *w, const struct ft_ce_stats *st, struct ft_err *err)
{
	char v[64];
	snprintf(v, sizeof v, "%.17g", st->loss_sum / (double)FT_MAX(1, st->n_tokens));
	enum ft_rc rc = ft_st_writer_meta(w, "loss", v, err);
	snprintf(v, sizeof v, "%ld", st->n_tokens);
	return rc ? rc : ft_st_writer_meta(w, "n_tokens", v, err);
}

int cmd_debug_forward(int argc, char **argv)
{
	struct dbg d = { 0 };
	int rc = dbg_setup("debug-forward", argc, argv, &d);
	if (rc)
		return rc;
	struct ft_err err;
	ft_err_clear(&err);
	struct ft_ce_stats st = { 0 };
	const struct ft_model_config *c = ft_model_config(d.m);
	struct ft_st_writer *w = ft_st_writer_new();
	int64_t shape[3] = { d.mb.b.B, d.mb.b.T, c->vocab_size };
	size_t nl = (size_t)d.mb.b.B * d.mb.b.T * c->vocab_size;
	float *logits = ft_xmalloc(nl * sizeof(float));
	if (ft_model_forward(d.m, &d.mb.b, 0.0f, 0, &st, &err)) {
		rc = cmd_fail("debug-forward", &err);
	} else {
		ft_model_read(d.m, logits, ft_model_logits(d.m), nl); /* backend memory */
		if (ft_st_writer_add(w, "logits", FT_DTYPE_F32, 3, shape, logits, &err) ||
		    put_loss(w, &st, &err) || ft_st_writer_write(w, d.out, &err))
			rc = cmd_fail("debug-forward", &err);
	}
	ft_st_writer_free(w);
	free(logits);
	dbg_release(&d);
	return rc;
}

int cmd_debug_grads(int argc, char **argv)
{
	struct dbg d = { 0 };
	int rc = dbg_setup("debug-grads", argc, argv, &d);
	if (rc)
		return rc;
	struct ft_err err;
	ft_err_clear(&err);
	if (!d.adapter && !d.full) {
		fprintf(stderr, "ft-train debug-grads: give --adapter DIR or --full\n");
		dbg_release(&d);
		return 2;
	}
	struct ft_ce_stats st = { 0 };
	struct ft_st_writer *w = ft_st_writer_new();
	size_t np = 0;
	float *grads = NULL;
	if (d.full && ft_model_train_base(d.m, &err)) {
		rc = cmd_fail("debug-grads", &err);
		goto free_writer;
	}
	long trained = d.mb.n_trained;
	ft_model_zero_grad(d.m);
	if (ft_model_forward(d.m, &d.mb.b, 1.0f / (float)FT_MAX(1, trained), 0, &st, &err)) {
		rc = cmd_fail("debug-grads", &err);
		goto free_writer;
	}
	ft_model_backward(d.m, &d.mb.b);
	struct ft_param *ps = ft_model_trainable(d.m, &np);
	size_t ng = 0;
	for (size_t i = 0; i < np; i++)
		ng += ps[i].n;
	grads = ft_xmalloc((ng + 1) * sizeof(float)); /* the writer reads them at the end */
	for (size_t i = 0, off = 0; i < np && !rc; off += ps[i].n, i++) {
		ft_model_read(d.m, grads + off, ps[i].grad, ps[i].n);
		if (ft_st_writer_add(w, ps[i].name, FT_DTYPE_F32, ps[i].ndim, ps[i].shape,
				     grads + off, &err))
			rc = cmd_fail("debug-grads", &err);
	}
	if (!rc && (put_loss(w, &st, &err) || ft_st_writer_write(w, d.out, &err)))
		rc = cmd_fail("debug-grads", &err);
free_writer:
	free(grads);
	ft_st_writer_free(w);
	dbg_release(&d);
	return rc;
}
