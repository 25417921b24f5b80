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
 * the mean length, messages per role (chat formats), and the split counts
 * (ft_data_split over the 0-based line index). For preference rows the
 * length is prompt + the longer answer, total counts prompt + both
 * answers, trained counts both answers.
 *
 * JSON report (ft_data_report_json):
 *   { "ok": bool, "format": "messages", "method": "sft", "template": "llama3"|null,
 *     "lines": N, "rows": N, "errors": N,
 *     "issues": [ {"line": 12, "code": "invalid_type", "message": "..."} ... ],
 *     "issues_truncated": bool,
 *     "stats": { "tokens_total", "tokens_trained", "max_len", "mean_len",
 *                "max_seq_len", "roles": {"system","user","assistant"},
 *                "train_rows", "val_rows" } }   ("stats" token fields null
 *                                                without a tokenizer)
 */
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
	if (v->opts->max_seq_len && len > v->opts->max_seq_len) {
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
	bool pref = ft_data_format_is_preference(v->row.format);
	if (v->rep->method == FT_METHOD_AUTO)
		v->rep->method = pref ? FT_METHOD_DPO : FT_METHOD_SFT;
	if (pref == (v->rep->method == FT_METHOD_DPO))
		return FT_OK;
	ft_failf(err, FT_EINVAL, "wrong_method",
		 "line %ld: rows in the \"%s\" format are for %s training, but the method is %s",
		 v->row.line, ft_data_format_name(v->row.format), pref ? "dpo" : "sft",
		 ft_data_method_name(v->rep->method));
	ft_err_line(err, v->row.line);
	return FT_EINVAL;
}

static void check_line(struct vstate *v, const char *line, size_t len, long lineno)
{
	struct ft_err e;
	ft_err_clear(&e);
	if (ft_data_row_parse(line, len, lineno, &v->format, &v->row, &e) || check_method(v, &e) ||
	    (v->tok && check_tokens(v, &e))) {
		add_issue(v->rep, &e);
		return;
	}
	v->rep->rows_ok++;
	if (!v->row.raw) {
		count_roles(v->rep, v->row.msgs, v->row.n_msgs);
		count_roles(v->rep, v->row.chosen, v->row.n_chosen);
		count_roles(v->rep, v->row.rejected, v->row.n_rejected);
	}
	if (ft_data_split(v->opts->seed, (uint64_t)(lineno - 1), v->opts->val_fraction) ==
	    FT_SPLIT_VAL)
		v->rep->n_val++;
	else
		v->rep->n_train++;
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
	} else {
		json_object_set_new(stats, "tokens_total", json_null());
		json_object_set_new(stats, "tokens_trained", json_null());
		json_object_set_new(stats, "max_len", json_null());
		json_object_set_new(stats, "mean_len", json_null());
	}
	json_object_set_new(stats, "max_seq_len", json_integer((json_int_t)r->max_seq_len));
	return json_pack("{s:b,s:s,s:s,s:o,s:I,s:I,s:I,s:o,s:b,s:o}", "ok", r->n_errors == 0,
			 "format", ft_data_format_name(r->format), "method",
			 ft_data_method_name(r->method), "template",
			 r->template_name[0] ? json_string(r->template_name) : json_null(), "lines",
			 (json_int_t)r->lines, "rows", (json_int_t)r->rows_ok, "errors",
			 (json_int_t)r->n_errors, "issues", issues, "issues_truncated",
			 r->n_errors > (long)r->n_issues, "stats", stats);
}
