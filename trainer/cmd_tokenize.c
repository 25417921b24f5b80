/*
 * cmd_tokenize.c - `ft-train tokenize` and `ft-train detokenize`: look at
 * what a tokenizer.json does with a text, and a batch mode for peer tests.
 *
 *   ft-train tokenize --model DIR|tokenizer.json|MODEL.gguf [--special] [--json] TEXT|-
 *       --special: split special tokens out of the text and add the
 *       post-processor's tokens (BOS). Prints "<id>\t<token>" lines, or
 *       {"ids": [...], "tokens": [...]} with --json. "-" reads the text from stdin.
 *   ft-train tokenize --model ... --batch
 *       one JSON request per stdin line, one JSON answer per stdout line:
 *         {"text": "...", "split_special": bool, "add_special": bool}
 *         {"hex": "c3a9ff", ...}            raw bytes (invalid UTF-8 welcome)
 *           -> {"ids": [...]}
 *         {"decode": [ids], "skip_special": bool} -> {"text": "..."}
 *         {"info": true} -> {"vocab_size", "bos_id", "eos_id", "pad_id",
 *                            "adds_bos", "chat_template"}
 *         anything wrong -> {"error": "..."}
 *   ft-train detokenize --model ... [--skip-special] ID...
 */
#include <sys/stat.h>

#include "cmd.h"
#include "ft/trainer.h"
#include "ft/tokenizer.h"

static struct ft_tokenizer *open_model(const char *path, struct ft_err *err)
{
	struct stat st;
	struct ft_tokenizer *t = NULL;
	if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
		FILE *f = fopen(path, "rb");
		struct ft_buf b = FT_BUF_INIT((size_t)1 << 30);
		char chunk[65536];
		size_t n;
		if (!f) {
			ft_failf(err, FT_EIO, NULL, "cannot open \"%s\": %s", path,
				 strerror(errno));
			return NULL;
		}
		char magic[4] = "";
		if (fread(magic, 1, 4, f) == 4 && memcmp(magic, "GGUF", 4) == 0) {
			fclose(f); /* a GGUF model file: its tokenizer metadata */
			ft_tokenizer_load(path, &t, err);
			return t;
		}
		rewind(f);
		while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
			if (ft_buf_add(&b, chunk, n))
				break;
		fclose(f);
		ft_tokenizer_parse(ft_buf_str(&b), b.len, &t, err);
		ft_buf_release(&b);
		return t;
	}
	ft_tokenizer_load(path, &t, err);
	return t;
}

static int fail(const struct ft_err *err)
{
	fprintf(stderr, "ft-train: %s\n", err->msg);
	return 1;
}

/* {"ids": [...]} or with tokens */
static enum ft_rc print_ids(const struct ft_tokenizer *t, const struct ft_ids *ids, bool tokens,
			    FILE *f)
{
	json_t *o = json_object(), *a = json_array(), *tk = json_array();
	struct ft_buf b = FT_BUF_INIT((size_t)1 << 34);
	enum ft_rc rc = FT_ENOMEM;
	if (!o || !a || !tk)
		goto out;
	for (size_t i = 0; i < ids->len; i++) {
		const char *s = ft_tokenizer_id_to_token(t, ids->v[i]);
		if (json_array_append_new(a, json_integer(ids->v[i])) ||
		    (tokens && json_array_append_new(tk, json_string(s ? s : ""))))
			goto out;
	}
	if (json_object_set(o, "ids", a) || (tokens && json_object_set(o, "tokens", tk)))
		goto out;
	if ((rc = ft_json_dump_buf(o, &b)))
		goto out;
	fprintf(f, "%s\n", ft_buf_str(&b));
out:
	ft_buf_release(&b);
	json_decref(o);
	json_decref(a);
	json_decref(tk);
	return rc;
}

static void answer_error(const char *msg)
{
	json_t *o = json_pack("{s:s}", "error", msg);
	struct ft_buf b = FT_BUF_INIT(1 << 20);
	if (o && !ft_json_dump_buf(o, &b))
		printf("%s\n", ft_buf_str(&b));
	else
		printf("{\"error\":\"out of memory\"}\n");
	ft_buf_release(&b);
	json_decref(o);
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static void batch_one(const struct ft_tokenizer *t, const char *line, size_t len)
{
	struct ft_err err;
	struct ft_ids ids = { 0 };
	struct ft_buf text = FT_BUF_INIT((size_t)1 << 34);
	ft_err_clear(&err);
	json_t *o = ft_json_parse(line, len, &err), *dec;
	if (!o || !json_is_object(o)) {
		answer_error(o ? "request must be a JSON object" : err.msg);
		goto out;
	}
	if (json_is_true(json_object_get(o, "info"))) {
		const char *ct = ft_tokenizer_chat_template(t);
		json_t *r = json_pack("{s:I,s:i,s:i,s:i,s:b,s:o}", "vocab_size",
				      (json_int_t)ft_tokenizer_vocab_size(t), "bos_id",
				      (int)ft_tokenizer_bos_id(t), "eos_id",
				      (int)ft_tokenizer_eos_id(t), "pad_id",
				      (int)ft_tokenizer_pad_id(t), "adds_bos",
				      (int)ft_tokenizer_adds_bos(t), "chat_template",
				      ct ? json_string(ct) : json_null());
		struct ft_buf b = FT_BUF_INIT((size_t)1 << 30);
		if (r && !ft_json_dump_buf(r, &b))
			printf("%s\n", ft_buf_str(&b));
		else
			answer_error("out of memory");
		ft_buf_release(&b);
		json_decref(r);
		goto out;
	}
	if ((dec = json_object_get(o, "decode"))) {
		size_t i;
		json_t *v;
		if (!json_is_array(dec)) {
			answer_error("\"decode\" must be a list of ids");
			goto out;
		}
		json_array_foreach(dec, i, v) if (!json_is_integer(v) ||
						  ft_ids_push(&ids, (int32_t)json_integer_value(v)))
		{
			answer_error("\"decode\" must be a list of ids");
			goto out;
		}
		unsigned fl =
			json_is_true(json_object_get(o, "skip_special")) ? FT_TOK_SKIP_SPECIAL : 0;
		if (ft_tokenizer_decode(t, ids.v, ids.len, fl, &text, &err)) {
			answer_error(err.msg);
			goto out;
		}
		json_t *r = json_object();
		struct ft_buf b = FT_BUF_INIT((size_t)1 << 34);
		if (r &&
		    !json_object_set_new(r, "text", json_stringn(ft_buf_str(&text), text.len)) &&
		    !ft_json_dump_buf(r, &b))
			printf("%s\n", ft_buf_str(&b));
		else
			answer_error("cannot represent the decoded text");
		ft_buf_release(&b);
		json_decref(r);
		goto out;
	}
	const char *s = NULL, *hex = NULL;
	json_t *js = json_object_get(o, "text");
	if (json_is_string(js)) {
		if (ft_buf_add(&text, json_string_value(js), json_string_length(js)))
			goto oom;
	} else if ((js = json_object_get(o, "hex")) && json_is_string(js)) {
		hex = json_string_value(js);
		for (size_t i = 0; hex[i] && hex[i + 1]; i += 2) {
			int hi = hexval(hex[i]), lo = hexval(hex[i + 1]);
			if (hi < 0 || lo < 0) {
				answer_error("\"hex\" must be hex digits");
				goto out;
			}
			if (ft_buf_addch(&text, (char)(hi * 16 + lo)))
				goto oom;
		}
	} else {
		answer_error("request needs \"text\", \"hex\" or \"decode\"");
		goto out;
	}
	s = ft_buf_str(&text);
	unsigned fl = 0;
	if (json_is_true(json_object_get(o, "split_special")))
		fl |= FT_TOK_SPLIT_SPECIAL;
	if (json_is_true(json_object_get(o, "add_special")))
		fl |= FT_TOK_ADD_SPECIAL;
	if (ft_tokenizer_encode(t, s, text.len, fl, &ids, &err)) {
		answer_error(err.msg);
		goto out;
	}
	if (print_ids(t, &ids, json_is_true(json_object_get(o, "tokens")), stdout))
		goto oom;
	goto out;
oom:
	answer_error("out of memory");
out:
	fflush(stdout);
	json_decref(o);
	ft_ids_release(&ids);
	ft_buf_release(&text);
}

static int usage_tokenize(void)
{
	fprintf(stderr,
		"usage: ft-train tokenize --model DIR|tokenizer.json [--special] [--json] TEXT|-\n"
		"       ft-train tokenize --model DIR|tokenizer.json --batch  (JSON lines on "
		"stdin)\n");
	return 2;
}

int cmd_tokenize(int argc, char **argv)
{
	const char *model = NULL, *arg = NULL;
	bool special = false, as_json = false, batch = false;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--model") == 0 && i + 1 < argc)
			model = argv[++i];
		else if (strcmp(argv[i], "--special") == 0)
			special = true;
		else if (strcmp(argv[i], "--json") == 0)
			as_json = true;
		else if (strcmp(argv[i], "--batch") == 0)
			batch = true;
		else if (!arg && (argv[i][0] != '-' || strcmp(argv[i], "-") == 0))
			arg = argv[i];
		else
			return usage_tokenize();
	}
	if (!model || (!arg && !batch) || (arg && batch))
		return usage_tokenize();
	struct ft_err err;
	ft_err_clear(&err);
	struct ft_tokenizer *t = open_model(model, &err);
	if (!t)
		return fail(&err);
	int code = 0;
	struct ft_buf in = FT_BUF_INIT((size_t)1 << 34);
	if (batch) {
		char *line = NULL;
		size_t cap = 0;
		ssize_t n;
		while ((n = getline(&line, &cap, stdin)) > 0) {
			while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
				n--;
			if (n > 0)
				batch_one(t, line, (size_t)n);
		}
		free(line);
		goto out;
	}
	if (strcmp(arg, "-") == 0) {
		char chunk[65536];
		size_t n;
		while ((n = fread(chunk, 1, sizeof(chunk), stdin)) > 0)
			if (ft_buf_add(&in, chunk, n)) {
				fprintf(stderr, "ft-train: input too large\n");
				code = 1;
				goto out;
			}
	} else if (ft_buf_addstr(&in, arg)) {
		code = 1;
		goto out;
	}
	struct ft_ids ids = { 0 };
	unsigned fl = special ? FT_TOK_SPLIT_SPECIAL | FT_TOK_ADD_SPECIAL : 0;
	if (ft_tokenizer_encode(t, ft_buf_str(&in), in.len, fl, &ids, &err)) {
		code = fail(&err);
	} else if (as_json) {
		code = print_ids(t, &ids, true, stdout) ? 1 : 0;
	} else {
		for (size_t i = 0; i < ids.len; i++) {
			json_t *s = json_string(ft_tokenizer_id_to_token(t, ids.v[i]));
			char *d = s ? json_dumps(s, JSON_ENCODE_ANY) : NULL;
			printf("%" PRId32 "\t%s\n", ids.v[i], d ? d : "?");
			free(d);
			json_decref(s);
		}
	}
	ft_ids_release(&ids);
out:
	ft_buf_release(&in);
	ft_tokenizer_free(t);
	return code;
}

int cmd_detokenize(int argc, char **argv)
{
	const char *model = NULL;
	unsigned fl = 0;
	struct ft_ids ids = { 0 };
	struct ft_err err;
	int code = 0;
	ft_err_clear(&err);
	for (int i = 1; i < argc; i++) {
		char *end;
		if (strcmp(argv[i], "--model") == 0 && i + 1 < argc) {
			model = argv[++i];
			continue;
		}
		if (strcmp(argv[i], "--skip-special") == 0) {
			fl |= FT_TOK_SKIP_SPECIAL;
			continue;
		}
		errno = 0;
		long v = strtol(argv[i], &end, 10);
		if (errno || *end || end == argv[i] || v < 0 || v > INT32_MAX ||
		    ft_ids_push(&ids, (int32_t)v)) {
			fprintf(stderr, "ft-train: \"%s\" is not a token id\n", argv[i]);
			ft_ids_release(&ids);
			return 2;
		}
	}
	if (!model) {
		fprintf(stderr, "usage: ft-train detokenize --model DIR|tokenizer.json "
				"[--skip-special] ID...\n");
		ft_ids_release(&ids);
		return 2;
	}
	struct ft_tokenizer *t = open_model(model, &err);
	struct ft_buf out = FT_BUF_INIT((size_t)1 << 34);
	if (!t || ft_tokenizer_decode(t, ids.v, ids.len, fl, &out, &err))
		code = fail(&err);
	else
		printf("%s\n", ft_buf_str(&out));
	ft_buf_release(&out);
	ft_tokenizer_free(t);
	ft_ids_release(&ids);
	return code;
}
