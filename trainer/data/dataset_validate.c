/*
 * dataset_validate.c - checking a whole JSONL file in bounded memory: one
 * line at a time, keeping only statistics and the first
 * FT_VALIDATE_MAX_ISSUES problems (every problem is counted).
 *
 * Per line: the structural checks of ft_data_row_parse, then, with a
 * tokenizer, the tokenized length against max_seq_len ("too_long") and
 * "no_trained_tokens". The method must fit the format: sft takes text,
 * prompt_completion, instruction, messages and sharegpt rows; dpo takes
 * preference and openai_dpo rows ("wrong_method"; auto follows the first
 * valid row).
 *
 * Statistics over valid rows: tokens (total / trained), the longest row,
 * the mean length, characters (code points of every text: total, longest
 * row), messages per role (chat formats), and the split counts
 * (ft_data_split over the 0-based line index). For preference rows the
 * length is prompt + the longer answer, total counts prompt + both
 * answers, trained counts both answers. The first valid rows are kept as
 * text for a preview. ft-api shows this same report (api/src/validate.c
 * renames its fields), so everything it shows is counted here, once.
 *
 * JSON report (ft_data_report_json):
 *   { "ok": bool, "format": "messages", "method": "sft", "template": "llama3"|null,
 *     "lines": N, "rows": N, "errors": N,
 *     "issues": [ {"line": 12, "code": "invalid_type", "message": "..."} ... ],
 *     "issues_truncated": bool,
 *     "stats": { "tokens_total", "tokens_trained", "max_len", "mean_len",
 *                "max_seq_len", "roles": {"system","user","assistant"},
 *                "train_rows", "val_rows", "total_chars", "max_chars",
 *                "mean_chars" },   ("stats" token fields null without a
 *                                   tokenizer)
 *     "preview": ["user: hi\nassistant: hello\n", ...] }
 */
#include <math.h>

#include "ft/dataset.h"

static void add_issue(struct ft_data_report *rep, const struct ft_err *e)
{
	rep->n_errors++;
	if (rep->n_issues >= FT_VALIDATE_MAX_ISSUES)
		return;
	struct ft_data_issue *is = &rep->issues[rep->n_issues++];
	is->line = e->line;
	ft_strlcpy(is->code, e->code[0] ? e->code : ft_rc_name(e->rc), sizeof(is->code));
	ft_strlcpy(is->msg, e->msg, sizeof(is->msg));
	/* a message quotes the data and may be cut inside a character: the
	 * report is UTF-8 (JSON) */
	size_t n = strlen(is->msg), at = 0;
	while ((at += ft_data_utf8_invalid_at(is->msg + at, n - at)) < n)
		is->msg[at] = '?';
}

static void count_roles(struct ft_data_report *rep, const struct ft_chat_msg *m, size_t n)
{
	for (size_t i = 0; i < n; i++)
		rep->role_counts[m[i].role]++;
}

struct vstate {
	const struct ft_tokenizer *tok;
	const struct ft_chat_template *tmpl;
	struct ft_chat_template *own_tmpl;
	bool tmpl_failed;
	struct ft_err tmpl_err;
	const struct ft_data_opts *opts;
	struct ft_data_report *rep;
	enum ft_data_format format;
	struct ft_data_row row;
	struct ft_example ex;
	struct ft_pref_example pex;
};

/* Token checks of a valid row; fills err on a problem. */
static enum ft_rc check_tokens(struct vstate *v, struct ft_err *err)
{
	struct ft_data_report *rep = v->rep;
	size_t len, total, trained;
	if (!v->row.raw && !v->tmpl) {
		if (!v->tmpl_failed) {
			ft_err_clear(&v->tmpl_err);
			if (ft_data_template_pick(v->tok, v->opts->template_name, &v->own_tmpl,
						  &v->tmpl_err) == FT_OK)
				v->tmpl = v->own_tmpl;
			else
				v->tmpl_failed = true;
		}
		if (!v->tmpl) {
			/* reported once, as a file-level problem (line 0) */
			if (v->tmpl_failed && v->tmpl_err.rc != FT_OK) {
				add_issue(rep, &v->tmpl_err);
				v->tmpl_err.rc = FT_OK;
			}
			return FT_OK;
		}
		ft_strlcpy(rep->template_name, ft_chat_template_name(v->tmpl),
			   sizeof(rep->template_name));
	}
	if (ft_data_format_is_preference(v->row.format)) {
		if (ft_data_row_tokenize_pref(&v->row, v->tok, v->tmpl, &v->pex, err))
			return FT_EINVAL;
		len = v->pex.prompt.len + FT_MAX(v->pex.chosen.len, v->pex.rejected.len);
		trained = v->pex.chosen.len + v->pex.rejected.len;
		total = v->pex.prompt.len + trained;
	} else {
		if (ft_data_row_tokenize(&v->row, v->tok, v->tmpl, v->opts->train_on_inputs, &v->ex,
					 err))
			return FT_EINVAL;
		len = total = v->ex.ids.len;
		trained = v->ex.n_trained;
	}
	if (v->opts->max_seq_len && len > v->opts->max_seq_len && v->opts->truncate_long) {
		rep->rows_truncated++;
	} else if (v->opts->max_seq_len && len > v->opts->max_seq_len) {
		ft_failf(err, FT_EINVAL, "too_long",
			 "line %ld: %zu tokens after tokenization, longer than the limit of %zu "
			 "(max_seq_len)",
			 v->row.line, len, v->opts->max_seq_len);
		ft_err_line(err, v->row.line);
		return FT_EINVAL;
	}
	rep->tokens_total += total;
	rep->tokens_trained += trained;
	rep->max_len = FT_MAX(rep->max_len, len);
	return FT_OK;
}

static enum ft_rc check_method(struct vstate *v, struct ft_err *err)
{
	if (v->rep->method == FT_METHOD_AUTO)
		v->rep->method = ft_data_format_method(v->row.format);
	return ft_data_method_check(v->row.format, v->rep->method, v->row.line, err);
}

/* ---- characters and the preview ---- */

static size_t utf8_chars(const char *s, size_t n)
{
	size_t c = 0;
	for (size_t i = 0; i < n; i++)
		c += ((unsigned char)s[i] & 0xc0) != 0x80;
	return c;
}

static size_t msgs_chars(const struct ft_chat_msg *m, size_t n)
{
	size_t c = 0;
	for (size_t i = 0; i < n; i++)
		c += utf8_chars(m[i].content, m[i].len);
	return c;
}

double ft_data_approx_tokens(const char *s, size_t n)
{
	size_t ascii = 0, other = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x80)
			ascii++;
		else if ((c & 0xc0) != 0x80)
			other++; /* the first byte of a character */
	}
	return (double)ascii / 4.0 + (double)other / 1.5;
}

static double msgs_approx_tokens(const struct ft_chat_msg *m, size_t n)
{
	double t = 0;
	for (size_t i = 0; i < n; i++)
		t += ft_data_approx_tokens(m[i].content, m[i].len);
	return t;
}

/* A preview row being written: at most cap - 1 bytes and a NUL. */
struct preview {
	char *p;
	size_t len, cap;
	bool full;
};

#define PREVIEW_FIELD_BYTES 300

/* Append s[0..n), cut to max bytes; a cut falls on a character boundary and
 * is marked "..."; once the row is full nothing more is added. */
static void preview_add(struct preview *v, const char *s, size_t n, size_t max)
{
	if (v->full)
		return;
	size_t room = v->cap - 1 - v->len;
	bool cut = false;
	if (n > max)
		n = max, cut = true;
	if (n + (cut ? 3 : 0) > room) {
		n = room >= 3 ? room - 3 : 0;
		cut = v->full = true;
	}
	if (cut) /* s[n] exists: n is below the length given */
		while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
			n--;
	memcpy(v->p + v->len, s, n);
	v->len += n;
	if (cut && v->len + 3 < v->cap) {
		memcpy(v->p + v->len, "...", 3);
		v->len += 3;
	}
	v->p[v->len] = '\0';
}

/* Labels of a raw row's messages: the fields they came from. */
static const char *const raw_labels[FT_FMT_COUNT][3] = {
	[FT_FMT_TEXT] = { "text" },
	[FT_FMT_PROMPT_COMPLETION] = { "prompt", "completion" },
	[FT_FMT_INSTRUCTION] = { "instruction", "input", "output" },
	[FT_FMT_PREFERENCE] = { "prompt" },
};

/* The turn of a preview row: label and content cut at a character. */
static void turn_add(struct ft_data_turn *turns, size_t *n_turns, const char *label, const char *s,
		     size_t n)
{
	if (!turns || *n_turns >= FT_VALIDATE_PREVIEW_TURNS)
		return;
	struct ft_data_turn *t = &turns[(*n_turns)++];
	ft_strlcpy(t->label, label, sizeof t->label);
	size_t cut = n;
	if (cut > FT_VALIDATE_TURN_BYTES) {
		cut = FT_VALIDATE_TURN_BYTES;
		while (cut > 0 && ((unsigned char)s[cut] & 0xc0) == 0x80)
			cut--;
	}
	memcpy(t->content, s, cut);
	t->content[cut] = '\0';
	t->truncated = cut < n;
}

static void preview_msgs(struct preview *v, struct ft_data_turn *turns, size_t *n_turns,
			 const struct ft_data_row *row, const struct ft_chat_msg *m, size_t n,
			 const char *label)
{
	for (size_t i = 0; i < n; i++) {
		const char *l = label;
		if (!l && row->raw && i < 3)
			l = raw_labels[row->format][i];
		if (!l)
			l = ft_chat_role_name(m[i].role);
		if (row->raw && m[i].len == 0)
			continue; /* an instruction row's absent or empty input */
		turn_add(turns, n_turns, l, m[i].content, m[i].len);
		preview_add(v, l, strlen(l), SIZE_MAX);
		preview_add(v, ": ", 2, SIZE_MAX);
		preview_add(v, m[i].content, m[i].len, PREVIEW_FIELD_BYTES);
		preview_add(v, "\n", 1, SIZE_MAX);
	}
}

static void preview_row(const struct ft_data_row *row, char *out, size_t cap,
			struct ft_data_turn *turns, size_t *n_turns)
{
	struct preview v = { .p = out, .cap = cap };
	out[0] = '\0';
	preview_msgs(&v, turns, n_turns, row, row->msgs, row->n_msgs, NULL);
	preview_msgs(&v, turns, n_turns, row, row->chosen, row->n_chosen, "chosen");
	preview_msgs(&v, turns, n_turns, row, row->rejected, row->n_rejected, "rejected");
}

static void check_line(struct vstate *v, const char *line, size_t len, long lineno)
{
	struct ft_err e;
	struct ft_data_report *rep = v->rep;
	ft_err_clear(&e);
	if (ft_data_row_parse(line, len, lineno, &v->format, &v->row, &e) || check_method(v, &e) ||
	    (v->tok && check_tokens(v, &e))) {
		add_issue(rep, &e);
		return;
	}
	rep->rows_ok++;
	if (!v->row.raw) {
		count_roles(rep, v->row.msgs, v->row.n_msgs);
		count_roles(rep, v->row.chosen, v->row.n_chosen);
		count_roles(rep, v->row.rejected, v->row.n_rejected);
	}
	size_t chars = msgs_chars(v->row.msgs, v->row.n_msgs) +
		       msgs_chars(v->row.chosen, v->row.n_chosen) +
		       msgs_chars(v->row.rejected, v->row.n_rejected);
	rep->chars_total += chars;
	rep->chars_max = FT_MAX(rep->chars_max, chars);
	rep->approx_tokens += msgs_approx_tokens(v->row.msgs, v->row.n_msgs) +
			      msgs_approx_tokens(v->row.chosen, v->row.n_chosen) +
			      msgs_approx_tokens(v->row.rejected, v->row.n_rejected);
	if (rep->n_preview < FT_VALIDATE_PREVIEW_ROWS) {
		size_t i = rep->n_preview++;
		preview_row(&v->row, rep->preview[i], FT_VALIDATE_PREVIEW_BYTES, rep->turns[i],
			    &rep->n_turns[i]);
	}
	if (ft_data_split(v->opts->seed, (uint64_t)(lineno - 1), v->opts->val_fraction) ==
	    FT_SPLIT_VAL)
		rep->n_val++;
	else
		rep->n_train++;
}

enum ft_rc ft_data_validate_file(FILE *f, const struct ft_tokenizer *tok,
				 const struct ft_chat_template *tmpl,
				 const struct ft_data_opts *opts, struct ft_data_report *report,
				 struct ft_err *err)
{
	struct ft_jsonl_reader rd;
	struct vstate v = { .tok = tok, .tmpl = tmpl, .opts = opts, .rep = report };
	enum ft_rc rc;

	memset(report, 0, sizeof(*report));
	report->method = opts->method;
	report->max_seq_len = opts->max_seq_len;
	report->tokenized = tok != NULL;
	if (tmpl)
		ft_strlcpy(report->template_name, ft_chat_template_name(tmpl),
			   sizeof(report->template_name));
	if ((rc = ft_jsonl_reader_from_file(&rd, f, err)))
		return rc;
	ft_data_row_init(&v.row);
	for (;;) {
		bool eof;
		struct ft_err e;
		ft_err_clear(&e);
		rc = ft_jsonl_reader_next(&rd, &eof, &e);
		if (rc == FT_ELIMIT) {
			add_issue(report, &e);
			continue;
		}
		if (rc) {
			ft_failf(err, rc, e.code, "%s", e.msg);
			break;
		}
		if (eof)
			break;
		check_line(&v, rd.line.ptr ? rd.line.ptr : "", rd.line.len, rd.lineno);
	}
	report->lines = rd.lineno;
	report->format = v.format;
	if (report->lines == 0 && rc == FT_OK) {
		struct ft_err e;
		ft_err_clear(&e);
		ft_failf(&e, FT_EINVAL, "empty_file", "the file has no rows");
		add_issue(report, &e);
	}
	ft_data_row_release(&v.row);
	ft_example_release(&v.ex);
	ft_pref_example_release(&v.pex);
	ft_chat_template_free(v.own_tmpl);
	ft_jsonl_reader_close(&rd);
	return rc;
}

enum ft_rc ft_data_validate(const char *path, const struct ft_tokenizer *tok,
			    const struct ft_chat_template *tmpl, const struct ft_data_opts *opts,
			    struct ft_data_report *report, struct ft_err *err)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		memset(report, 0, sizeof(*report));
		return ft_failf(err, FT_EIO, "io_error", "cannot open dataset \"%s\": %s", path,
				strerror(errno));
	}
	enum ft_rc rc = ft_data_validate_file(f, tok, tmpl, opts, report, err);
	fclose(f);
	return rc;
}

double ft_data_report_mean_chars(const struct ft_data_report *r)
{
	return r->rows_ok ? (double)r->chars_total / (double)r->rows_ok : 0.0;
}

double ft_data_report_mean_len(const struct ft_data_report *r)
{
	if (!r->tokenized || r->rows_ok == 0)
		return 0.0;
	/* for preference rows the mean is of prompt + both answers per row */
	return (double)r->tokens_total / (double)r->rows_ok;
}

enum ft_rc ft_data_report_text(const struct ft_data_report *r, struct ft_buf *out)
{
	enum ft_rc rc = FT_OK;
	for (size_t i = 0; i < r->n_issues && !rc; i++)
		rc = ft_buf_addf(out, "error: %s [%s]\n", r->issues[i].msg, r->issues[i].code);
	if (!rc && r->n_errors > (long)r->n_issues)
		rc = ft_buf_addf(out, "... and %ld more errors (only the first %d are listed)\n",
				 r->n_errors - (long)r->n_issues, FT_VALIDATE_MAX_ISSUES);
	if (!rc)
		rc = ft_buf_addf(
			out,
			"format: %s\nmethod: %s\ntemplate: %s\nlines: %ld\nvalid rows: %ld\n"
			"errors: %ld\n",
			ft_data_format_name(r->format), ft_data_method_name(r->method),
			r->template_name[0] ? r->template_name : "-", r->lines, r->rows_ok,
			r->n_errors);
	if (!rc && r->tokenized)
		rc = ft_buf_addf(out,
				 "tokens: %" PRIu64 " total, %" PRIu64 " trained\n"
				 "length: max %zu, mean %.1f (limit %zu)\n",
				 r->tokens_total, r->tokens_trained, r->max_len,
				 ft_data_report_mean_len(r), r->max_seq_len);
	if (!rc)
		rc = ft_buf_addf(out, "characters: %" PRIu64 " total, max %zu, mean %.1f\n",
				 r->chars_total, r->chars_max, ft_data_report_mean_chars(r));
	if (!rc)
		rc = ft_buf_addf(out,
				 "messages: %ld system, %ld user, %ld assistant\n"
				 "split: %ld train, %ld validation\n",
				 r->role_counts[FT_CHAT_SYSTEM], r->role_counts[FT_CHAT_USER],
				 r->role_counts[FT_CHAT_ASSISTANT], r->n_train, r->n_val);
	if (!rc)
		rc = ft_buf_addstr(
			out, r->n_errors ? "result: the file is not usable: fix the errors above\n"
					 : "result: ok\n");
	return rc;
}

json_t *ft_data_report_json(const struct ft_data_report *r)
{
	json_t *issues = json_array();
	for (size_t i = 0; i < r->n_issues; i++)
		json_array_append_new(
			issues, json_pack("{s:I,s:s,s:s}", "line", (json_int_t)r->issues[i].line,
					  "code", r->issues[i].code, "message", r->issues[i].msg));
	json_t *roles =
		json_pack("{s:I,s:I,s:I}", "system", (json_int_t)r->role_counts[FT_CHAT_SYSTEM],
			  "user", (json_int_t)r->role_counts[FT_CHAT_USER], "assistant",
			  (json_int_t)r->role_counts[FT_CHAT_ASSISTANT]);
	json_t *stats = json_pack("{s:o,s:I,s:I}", "roles", roles, "train_rows",
				  (json_int_t)r->n_train, "val_rows", (json_int_t)r->n_val);
	if (r->tokenized) {
		json_object_set_new(stats, "tokens_total",
				    json_integer((json_int_t)r->tokens_total));
		json_object_set_new(stats, "tokens_trained",
				    json_integer((json_int_t)r->tokens_trained));
		json_object_set_new(stats, "max_len", json_integer((json_int_t)r->max_len));
		json_object_set_new(stats, "mean_len", json_real(ft_data_report_mean_len(r)));
		json_object_set_new(stats, "rows_truncated",
				    json_integer((json_int_t)r->rows_truncated));
	} else {
		json_object_set_new(stats, "tokens_total", json_null());
		json_object_set_new(stats, "tokens_trained", json_null());
		json_object_set_new(stats, "max_len", json_null());
		json_object_set_new(stats, "mean_len", json_null());
		json_object_set_new(stats, "rows_truncated", json_null());
	}
	json_object_set_new(stats, "max_seq_len", json_integer((json_int_t)r->max_seq_len));
	json_object_set_new(stats, "total_chars", json_integer((json_int_t)r->chars_total));
	json_object_set_new(stats, "max_chars", json_integer((json_int_t)r->chars_max));
	json_object_set_new(stats, "mean_chars", json_real(ft_data_report_mean_chars(r)));
	json_object_set_new(stats, "approx_tokens",
			    json_integer((json_int_t)floor(r->approx_tokens + 0.5)));
	json_t *preview = json_array();
	for (size_t i = 0; i < r->n_preview; i++)
		json_array_append_new(preview, json_string(r->preview[i]));
	return json_pack("{s:b,s:s,s:s,s:o,s:I,s:I,s:I,s:o,s:b,s:o,s:o}", "ok", r->n_errors == 0,
			 "format", ft_data_format_name(r->format), "method",
			 ft_data_method_name(r->method), "template",
			 r->template_name[0] ? json_string(r->template_name) : json_null(), "lines",
			 (json_int_t)r->lines, "rows", (json_int_t)r->rows_ok, "errors",
			 (json_int_t)r->n_errors, "issues", issues, "issues_truncated",
			 r->n_errors > (long)r->n_issues, "stats", stats, "preview", preview);
}
