/*
 * cmd_validate.c - `ft-train validate` and `ft-train render`.
 *
 *   ft-train validate DATA.jsonl [--model MODEL_DIR] [--method sft|dpo]
 *                    [--template NAME] [--max-seq-len N] [--truncate-long] [--train-on-inputs]
 *                    [--val-fraction F] [--seed N] [--json]
 *
 * checks every line of a dataset (ft/dataset.h) and prints the report: the
 * problems with their line numbers and codes, then the statistics; --json
 * prints the JSON report instead. Without --model only the structure is
 * checked (no token counts, no length limit). Exit status: 0 usable, 1 the
 * file has errors, 2 usage error or unreadable file / model.
 *
 *   ft-train render --model MODEL_DIR [--template NAME] [--train-on-inputs]
 *                   < {"messages": [...], "add_generation_prompt": bool}
 *
 * renders one conversation with the chat template and prints
 * {"template", "text", "ids", "labels", "segments": [{"text", "msg", "trained"}]}.
 */
#include "cmd.h"
#include "ft/dataset.h"
#include "ft/trainer.h"

struct args {
	const char *data, *model, *template_name;
	struct ft_data_opts opts;
	bool json;
	bool lines; /* render: one conversation a line in, one answer a line out */
};

static int usage_validate(void)
{
	fprintf(stderr,
		"usage: ft-train validate DATA.jsonl [--model MODEL_DIR] [--method sft|dpo]\n"
		"         [--template NAME] [--max-seq-len N] [--truncate-long] "
		"[--train-on-inputs]\n"
		"         [--val-fraction F] [--seed N] [--json]\n"
		"templates: %s\n",
		ft_chat_template_names());
	return 2;
}

static bool parse_ulong(const char *s, unsigned long long max, unsigned long long *out)
{
	char *end;
	errno = 0;
	if (!s || !*s || *s == '-')
		return false;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || *end || v > max)
		return false;
	*out = v;
	return true;
}

/* Options shared by both commands; returns false on a usage error. */
static bool parse_args(int argc, char **argv, struct args *a, bool want_data)
{
	memset(a, 0, sizeof(*a));
	ft_data_opts_default(&a->opts);
	for (int i = 1; i < argc; i++) {
		const char *o = argv[i];
		const char *val = i + 1 < argc ? argv[i + 1] : NULL;
		unsigned long long n;
		if (strcmp(o, "--json") == 0) {
			a->json = true;
		} else if (strcmp(o, "--lines") == 0 && !want_data) {
			a->lines = true;
		} else if (strcmp(o, "--train-on-inputs") == 0) {
			a->opts.train_on_inputs = true;
		} else if (strcmp(o, "--truncate-long") == 0) {
			a->opts.truncate_long = true;
		} else if (strcmp(o, "--model") == 0 && val) {
			a->model = val, i++;
		} else if (strcmp(o, "--template") == 0 && val) {
			a->template_name = val, i++;
		} else if (strcmp(o, "--method") == 0 && val) {
			if (strcmp(val, "sft") == 0)
				a->opts.method = FT_METHOD_SFT;
			else if (strcmp(val, "dpo") == 0)
				a->opts.method = FT_METHOD_DPO;
			else {
				fprintf(stderr,
					"ft-train: --method must be sft or dpo (got \"%s\")\n",
					val);
				return false;
			}
			i++;
		} else if (strcmp(o, "--max-seq-len") == 0 && val) {
			if (!parse_ulong(val, 1u << 24, &n)) {
				fprintf(stderr,
					"ft-train: --max-seq-len must be a number up to %u (got "
					"\"%s\")\n",
					1u << 24, val);
				return false;
			}
			a->opts.max_seq_len = (size_t)n, i++;
		} else if (strcmp(o, "--seed") == 0 && val) {
			if (!parse_ulong(val, UINT64_MAX, &n)) {
				fprintf(stderr, "ft-train: --seed must be a number (got \"%s\")\n",
					val);
				return false;
			}
			a->opts.seed = n, i++;
		} else if (strcmp(o, "--val-fraction") == 0 && val) {
			char *end;
			double f = strtod(val, &end);
			if (*end || !(f >= 0.0 && f <= 1.0)) {
				fprintf(stderr,
					"ft-train: --val-fraction must be between 0 and 1 (got "
					"\"%s\")\n",
					val);
				return false;
			}
			a->opts.val_fraction = f, i++;
		} else if (want_data && o[0] != '-' && !a->data) {
			a->data = o;
		} else {
			fprintf(stderr, "ft-train: unknown or incomplete option \"%s\"\n", o);
			return false;
		}
	}
	a->opts.template_name = a->template_name;
	return !want_data || a->data;
}

static void print_err(const struct ft_err *e)
{
	fprintf(stderr, "ft-train: %s\n", e->msg);
	if (e->hint[0])
		fprintf(stderr, "hint: %s\n", e->hint);
}

int cmd_validate(int argc, char **argv)
{
	struct args a;
	struct ft_err err;
	struct ft_tokenizer *tok = NULL;
	struct ft_data_report *rep;
	int status = 2;

	if (!parse_args(argc, argv, &a, true))
		return usage_validate();
	ft_err_clear(&err);
	if (a.model && ft_tokenizer_load(a.model, &tok, &err)) {
		print_err(&err);
		return 2;
	}
	if (!a.model)
		a.opts.max_seq_len = 0;
	rep = ft_xcalloc(1, sizeof(*rep));
	if (ft_data_validate(a.data, tok, NULL, &a.opts, rep, &err)) {
		print_err(&err);
		goto out_rep;
	}
	if (a.json) {
		json_t *j = ft_data_report_json(rep);
		char *s = json_dumps(j, JSON_INDENT(2));
		if (s)
			printf("%s\n", s);
		free(s);
		json_decref(j);
	} else {
		struct ft_buf b = FT_BUF_INIT((size_t)1 << 20);
		if (ft_data_report_text(rep, &b) == FT_OK)
			fputs(ft_buf_str(&b), stdout);
		ft_buf_release(&b);
	}
	status = rep->n_errors ? 1 : 0;
out_rep:
	free(rep);
	ft_tokenizer_free(tok);
	return status;
}

/* ---- render ---- */

static const char *const role_names[] = { "system", "user", "assistant" };

static enum ft_rc read_messages(const json_t *in, struct ft_chat_msg **out, size_t *n,
				struct ft_err *err)
{
	json_t *arr = json_object_get(in, "messages");
	if (!json_is_array(arr))
		return ft_failf(err, FT_EINVAL, "invalid_type",
				"\"messages\" must be a list (got %s)", ft_json_type_name(arr));
	*n = json_array_size(arr);
	*out = ft_xcalloc(*n ? *n : 1, sizeof(**out));
	for (size_t i = 0; i < *n; i++) {
		json_t *m = json_array_get(arr, i);
		const char *role = NULL, *content = NULL;
		if (ft_json_get_str(m, "role", FT_JSON_REQUIRED, &role, err) ||
		    ft_json_get_str(m, "content", FT_JSON_REQUIRED, &content, err))
			return FT_EINVAL;
		size_t r = 0;
		while (r < FT_ARRAY_LEN(role_names) && strcmp(role, role_names[r]) != 0)
			r++;
		if (r == FT_ARRAY_LEN(role_names))
			return ft_failf(err, FT_EINVAL, "unknown_role", "unknown role \"%s\"",
					role);
		json_t *w = json_object_get(m, "weight");
		(*out)[i] = (struct ft_chat_msg){
			.role = (enum ft_chat_role)r,
			.content = content,
			.len = json_string_length(json_object_get(m, "content")),
			.weight = json_is_integer(w) ? (int)json_integer_value(w) : -1
		};
	}
	return FT_OK;
}

static json_t *ids_json(const struct ft_ids *ids)
{
	json_t *a = json_array();
	for (size_t i = 0; i < ids->len; i++)
		json_array_append_new(a, json_integer(ids->v[i]));
	return a;
}

/* One conversation ({"messages", "add_generation_prompt"}) rendered: the
 * answer printed as one JSON line, or FT_EINVAL with err. */
static enum ft_rc render_one(const struct args *a, struct ft_tokenizer *tok,
			     struct ft_chat_template *tmpl, json_t *in, struct ft_err *err)
{
	struct ft_chat_msg *msgs = NULL;
	struct ft_chat_render r;
	struct ft_example ex = { 0 };
	size_t n = 0;
	enum ft_rc rc;
	ft_chat_render_init(&r);
	if ((rc = read_messages(in, &msgs, &n, err)))
		goto out;
	unsigned flags = (a->opts.train_on_inputs ? FT_CHAT_TRAIN_ON_INPUTS : 0) |
			 (json_is_true(json_object_get(in, "add_generation_prompt"))
				  ? FT_CHAT_ADD_GENERATION_PROMPT
				  : 0);
	if ((rc = ft_chat_render_messages(tmpl, msgs, n, flags, &r, err)))
		goto out;
	/* ids: the whole text encoded as apply_chat_template(tokenize=True) does */
	if ((rc = ft_tokenizer_encode(tok, ft_buf_str(&r.text), r.text.len, FT_TOK_SPLIT_SPECIAL,
				      &ex.ids, err)))
		goto out;
	json_t *segs = json_array();
	for (size_t i = 0; i < r.n_segs; i++)
		json_array_append_new(segs,
				      json_pack("{s:s%,s:i,s:b}", "text",
						r.text.ptr + r.segs[i].off, r.segs[i].len, "msg",
						r.segs[i].msg, "trained", r.segs[i].trained));
	/* labels via the dataset path (a messages row) */
	struct ft_data_row row;
	ft_data_row_init(&row);
	row.format = FT_FMT_MESSAGES;
	row.msgs = msgs;
	row.n_msgs = n;
	struct ft_example lab = { 0 };
	json_t *labels = json_null();
	struct ft_err lerr;
	ft_err_clear(&lerr);
	if (!(flags & FT_CHAT_ADD_GENERATION_PROMPT) &&
	    ft_data_row_tokenize(&row, tok, tmpl, a->opts.train_on_inputs, &lab, &lerr) == FT_OK)
		labels = ids_json(&lab.labels);
	ft_example_release(&lab);
	json_t *outj = json_pack("{s:s,s:s%,s:o,s:o,s:o}", "template", ft_chat_template_name(tmpl),
				 "text", ft_buf_str(&r.text), r.text.len, "ids", ids_json(&ex.ids),
				 "labels", labels, "segments", segs);
	char *text = json_dumps(outj, JSON_COMPACT | JSON_ENSURE_ASCII);
	if (text)
		printf("%s\n", text);
	free(text);
	json_decref(outj);
out:
	ft_example_release(&ex);
	ft_chat_render_release(&r);
	free(msgs);
	return rc;
}

int cmd_render(int argc, char **argv)
{
	struct args a;
	struct ft_err err;
	struct ft_tokenizer *tok = NULL;
	struct ft_chat_template *tmpl = NULL;
	json_t *in = NULL;
	int status = 1;

	ft_err_clear(&err);
	if (!parse_args(argc, argv, &a, false) || !a.model) {
		fprintf(stderr, "usage: ft-train render --model MODEL_DIR [--template NAME] "
				"[--train-on-inputs] [--lines] < conversation.json\n"
				"  --lines: one conversation a line (JSON Lines) in, one answer a "
				"line out\n");
		return 2;
	}
	if (ft_tokenizer_load(a.model, &tok, &err) ||
	    ft_data_template_pick(tok, a.template_name, &tmpl, &err))
		goto out_print;
	if (!a.lines) {
		json_error_t je;
		in = json_loadf(stdin, JSON_REJECT_DUPLICATES, &je);
		if (!in) {
			fprintf(stderr,
				"ft-train: invalid JSON on stdin at line %d, column %d: %s\n",
				je.line, je.column, je.text);
			status = 2;
			goto out;
		}
		if (render_one(&a, tok, tmpl, in, &err))
			goto out_print;
		status = 0;
		goto out;
	}
	/* --lines: each answer is printed as soon as its line is read; the
	 * first bad line stops the run with its number (what came before it
	 * stays printed) */
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	long no = 0;
	status = 0;
	while ((len = getline(&line, &cap, stdin)) >= 0) {
		no++;
		if (strspn(line, " \t\r\n") == (size_t)len)
			continue; /* a blank line (a trailing newline) */
		json_error_t je;
		json_t *row = json_loadb(line, (size_t)len, JSON_REJECT_DUPLICATES, &je);
		if (!row) {
			fprintf(stderr, "ft-train: line %ld: invalid JSON at column %d: %s\n", no,
				je.column, je.text);
			status = 2;
			break;
		}
		enum ft_rc rc = render_one(&a, tok, tmpl, row, &err);
		json_decref(row);
		if (rc) {
			fprintf(stderr, "ft-train: line %ld: %s\n", no, err.msg);
			if (err.hint[0])
				fprintf(stderr, "hint: %s\n", err.hint);
			status = 1;
			break;
		}
		fflush(stdout);
	}
	free(line);
	goto out;
out_print:
	print_err(&err);
out:
	ft_chat_template_free(tmpl);
	ft_tokenizer_free(tok);
	json_decref(in);
	return status;
}
