/*
 * evaluate.c - offline evaluation of one model on a chat JSONL file
 * (ft/evaluate.h says what is computed; docs/evaluation.md the formulas).
 *
 *   perplexity = exp( sum_rows nll_r / sum_rows tokens_r )
 *     nll_r    = - sum over the reference's labelled tokens t of log p(t | before)
 *   rouge_l    = mean over rows of ROUGE-L(reference_r, answer_r)   (P, R, F)
 *   bleu       = corpus BLEU(answers, references)
 *   facts      = #{rows whose answer holds every required fact} / #{rows with facts}
 *
 * The file is read twice: first every row is parsed and checked (so a bad
 * line 900 fails before any model work), then each row is scored. The
 * likelihood pass is the training forward (ft_model_forward with the loss
 * and no gradient) on the row tokenized as for training; the answer is the
 * engine's greedy generation (ft_generate), as ft-train generate gives it.
 * The text metrics are fteval's (ft/textmetrics.h), checked against
 * rouge-score and sacrebleu.
 */
#include "ft/evaluate.h"
#include "ft/generate.h"
#include "ft/stats.h"
#include "ft/trainer.h"

#include "../data/rows_int.h"

#include <math.h>

/* ---- options: one table, read by ft-api (the request) and ft-train ---- */

struct opt_choice {
	const char *name;
	int value;
};

static const struct opt_choice rouge_choices[] = { { "default", FT_ROUGE_TOK_DEFAULT },
						   { "cjk", FT_ROUGE_TOK_CJK },
						   { NULL, 0 } };
static const struct opt_choice bleu_choices[] = { { "13a", FT_BLEU_TOK_13A },
						  { "zh", FT_BLEU_TOK_ZH },
						  { NULL, 0 } };

enum opt_kind { OPT_INT, OPT_CHOICE };

static const struct eval_opt {
	const char *key;
	enum opt_kind kind;
	long long min, max; /* OPT_INT */
	const struct opt_choice *choices; /* OPT_CHOICE */
	size_t off; /* of the long (INT) or the enum (CHOICE) in struct ft_eval_opts */
} eval_opts[] = {
	{ "max_new_tokens", OPT_INT, 1, 4096, NULL, offsetof(struct ft_eval_opts, max_new_tokens) },
	{ "rouge_tokenizer", OPT_CHOICE, 0, 0, rouge_choices,
	  offsetof(struct ft_eval_opts, rouge_tok) },
	{ "bleu_tokenizer", OPT_CHOICE, 0, 0, bleu_choices,
	  offsetof(struct ft_eval_opts, bleu_tok) },
	{ "max_rows", OPT_INT, 1, 10000, NULL, offsetof(struct ft_eval_opts, max_rows) },
};

void ft_eval_opts_default(struct ft_eval_opts *o)
{
	o->max_new_tokens = 256;
	o->rouge_tok = FT_ROUGE_TOK_CJK;
	o->bleu_tok = FT_BLEU_TOK_ZH;
	o->max_rows = 1000;
}

static const char *choice_name(const struct opt_choice *c, int value)
{
	for (; c->name; c++)
		if (c->value == value)
			return c->name;
	return "";
}

enum ft_rc ft_eval_opts_parse(json_t *options, struct ft_eval_opts *o, struct ft_err *err)
{
	ft_eval_opts_default(o);
	if (!options || json_is_null(options))
		return FT_OK;
	if (!json_is_object(options)) {
		ft_failf(err, FT_EINVAL, "invalid_type", "\"options\" must be an object (got %s)",
			 ft_json_type_name(options));
		ft_err_param(err, "options");
		return FT_EINVAL;
	}
	const char *key;
	json_t *v;
	json_object_foreach(options, key, v)
	{
		const struct eval_opt *d = NULL;
		for (size_t i = 0; i < FT_ARRAY_LEN(eval_opts); i++)
			if (strcmp(eval_opts[i].key, key) == 0)
				d = &eval_opts[i];
		char param[96];
		snprintf(param, sizeof(param), "options.%.80s", key);
		if (!d) {
			ft_failf(err, FT_EINVAL, "unknown_parameter",
				 "unknown option \"%.80s\" (options: max_new_tokens, "
				 "rouge_tokenizer, bleu_tokenizer, max_rows)",
				 key);
			ft_err_param(err, param);
			return FT_EINVAL;
		}
		if (json_is_null(v))
			continue; /* the default */
		if (d->kind == OPT_INT) {
			if (!json_is_integer(v) || json_integer_value(v) < d->min ||
			    json_integer_value(v) > d->max) {
				ft_failf(err, FT_EINVAL, "invalid_value",
					 "\"%s\" must be an integer from %lld to %lld", param,
					 d->min, d->max);
				ft_err_param(err, param);
				return FT_EINVAL;
			}
			long lv = (long)json_integer_value(v); /* memcpy: the field's offset */
			memcpy((char *)o + d->off, &lv, sizeof(lv));
			continue;
		}
		const char *s = json_string_value(v);
		const struct opt_choice *c = d->choices;
		while (s && c->name && strcmp(c->name, s) != 0)
			c++;
		if (!s || !c->name) {
			ft_failf(err, FT_EINVAL, "invalid_value", "\"%s\" must be \"%s\" or \"%s\"",
				 param, d->choices[0].name, d->choices[1].name);
			ft_err_param(err, param);
			return FT_EINVAL;
		}
		memcpy((char *)o + d->off, &c->value, sizeof(int));
	}
	return FT_OK;
}

json_t *ft_eval_opts_json(const struct ft_eval_opts *o)
{
	return json_pack("{s:I, s:s, s:s, s:I}", "max_new_tokens", (json_int_t)o->max_new_tokens,
			 "rouge_tokenizer", choice_name(rouge_choices, (int)o->rouge_tok),
			 "bleu_tokenizer", choice_name(bleu_choices, (int)o->bleu_tok), "max_rows",
			 (json_int_t)o->max_rows);
}

/* ---- rows ---- */

void ft_eval_row_init(struct ft_eval_row *r)
{
	memset(r, 0, sizeof(*r));
	ft_data_row_init(&r->row);
}

void ft_eval_row_release(struct ft_eval_row *r)
{
	free(r->spellings);
	free(r->facts);
	ft_data_row_release(&r->row);
	memset(r, 0, sizeof(*r));
	ft_data_row_init(&r->row);
}

static enum ft_rc row_fail(struct ft_err *err, long line, const char *code, const char *param,
			   const char *fmt, ...) FT_PRINTF(5, 6);
static enum ft_rc row_fail(struct ft_err *err, long line, const char *code, const char *param,
			   const char *fmt, ...)
{
	char msg[400];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	ft_failf(err, FT_EINVAL, code, "line %ld: %s", line, msg);
	ft_err_line(err, line);
	if (param)
		ft_err_param(err, param);
	return FT_EINVAL;
}

/* One spelling: a string without NUL, not blank, at most the cap. */
static enum ft_rc spelling_check(const json_t *v, long line, const char *where, struct ft_err *err)
{
	if (!json_is_string(v))
		return row_fail(err, line, "invalid_type", "required_facts",
				"%s must be a string (got %s)", where, ft_json_type_name(v));
	const char *s = json_string_value(v);
	size_t n = json_string_length(v);
	if (strlen(s) != n)
		return row_fail(err, line, "invalid_value", "required_facts",
				"%s holds a NUL character", where);
	if (n > FT_EVAL_MAX_SPELLING_BYTES)
		return row_fail(err, line, "invalid_value", "required_facts",
				"%s is longer than %d bytes", where, FT_EVAL_MAX_SPELLING_BYTES);
	if (ft_jsonl_blank(s, n))
		return row_fail(err, line, "invalid_value", "required_facts", "%s is empty", where);
	return FT_OK;
}

static enum ft_rc parse_facts(const json_t *v, long line, struct ft_eval_row *r, struct ft_err *err)
{
	if (!v || json_is_null(v))
		return FT_OK;
	r->has_facts = true;
	if (!json_is_array(v))
		return row_fail(err, line, "invalid_type", "required_facts",
				"\"required_facts\" must be a list (got %s)", ft_json_type_name(v));
	size_t n = json_array_size(v);
	if (n > FT_EVAL_MAX_FACTS)
		return row_fail(err, line, "invalid_value", "required_facts",
				"\"required_facts\" holds %zu facts; at most %d", n,
				FT_EVAL_MAX_FACTS);
	if (n == 0)
		return FT_OK;
	r->facts = calloc(n, sizeof(*r->facts));
	r->spellings = calloc(n * FT_EVAL_MAX_SPELLINGS, sizeof(*r->spellings));
	if (!r->facts || !r->spellings)
		return ft_failf(err, FT_ENOMEM, NULL, "out of memory");
	for (size_t i = 0; i < n; i++) {
		const json_t *f = json_array_get(v, i);
		char where[64];
		size_t k = json_is_array(f) ? json_array_size(f) : 1;
		if (!json_is_array(f) && !json_is_string(f))
			return row_fail(err, line, "invalid_type", "required_facts",
					"\"required_facts\"[%zu] must be a string or a list of "
					"spellings (got %s)",
					i, ft_json_type_name(f));
		if (k == 0 || k > FT_EVAL_MAX_SPELLINGS)
			return row_fail(err, line, "invalid_value", "required_facts",
					"\"required_facts\"[%zu] must hold 1 to %d spellings (got "
					"%zu)",
					i, FT_EVAL_MAX_SPELLINGS, k);
		const char **sp = r->spellings + i * FT_EVAL_MAX_SPELLINGS;
		r->facts[i].spellings = sp;
		r->n_facts = i + 1;
		for (size_t j = 0; j < k; j++) {
			const json_t *s = json_is_array(f) ? json_array_get(f, j) : f;
			if (json_is_array(f))
				snprintf(where, sizeof(where), "\"required_facts\"[%zu][%zu]", i,
					 j);
			else
				snprintf(where, sizeof(where), "\"required_facts\"[%zu]", i);
			if (spelling_check(s, line, where, err))
				return FT_EINVAL;
			sp[j] = json_string_value(s);
		}
		r->facts[i].n = k;
	}
	return FT_OK;
}

enum ft_rc ft_eval_row_parse(const char *line, size_t len, long lineno, enum ft_data_format *format,
			     struct ft_eval_row *r, struct ft_err *err)
{
	ft_eval_row_release(r);
	if (ft_data_row_parse(line, len, lineno, format, &r->row, err))
		return err ? err->rc : FT_EINVAL;
	if (r->row.format != FT_FMT_MESSAGES && r->row.format != FT_FMT_SHAREGPT)
		return row_fail(err, lineno, "wrong_format", NULL,
				"an evaluation file holds conversations (\"messages\" or "
				"\"conversations\"), not %s rows",
				ft_data_format_name(r->row.format));
	const char *list = r->row.format == FT_FMT_MESSAGES ? "messages" : "conversations";
	size_t n = r->row.n_msgs;
	const struct ft_chat_msg *last = &r->row.msgs[n - 1];
	if (last->role != FT_CHAT_ASSISTANT)
		return row_fail(err, lineno, "no_reference", list,
				"the last message of \"%s\" must be the assistant's reference "
				"answer (got %s)",
				list, ft_chat_role_name(last->role));
	if (n < 2 || r->row.msgs[n - 2].role != FT_CHAT_USER)
		return row_fail(err, lineno, "no_prompt", list,
				"in \"%s\" the reference answer must follow a user message (the "
				"question it answers)",
				list);
	if (strnlen(last->content, last->len) != last->len)
		return row_fail(err, lineno, "invalid_value", list,
				"the reference answer holds a NUL character");
	r->n_prompt = n - 1;
	return parse_facts(json_object_get(r->row.json, "required_facts"), lineno, r, err);
}

/* ---- scoring ---- */

/* A number for JSON: null when it is not finite (a perplexity that
 * overflowed, an interval of nothing). */
static json_t *num(double v)
{
	return isfinite(v) ? json_real(v) : json_null();
}

/* Text as Python's bytes.decode(errors="replace") would give it: every
 * byte that does not start or continue valid UTF-8, and NUL, becomes
 * U+FFFD, so that every text metric and JSON can take a model's answer. */
static enum ft_rc utf8_clean(const char *s, size_t n, struct ft_buf *out)
{
	ft_buf_reset(out);
	while (n) {
		size_t ok = ft_data_utf8_invalid_at(s, n);
		size_t nul = strnlen(s, ok);
		if (ft_buf_add(out, s, nul))
			return FT_ELIMIT;
		if (nul == n)
			break;
		if (ft_buf_add(out, "\xEF\xBF\xBD", 3))
			return FT_ELIMIT;
		s += nul + 1;
		n -= nul + 1;
	}
	return FT_OK;
}

struct scorer {
	const struct ft_eval_run_opts *ro;
	struct ft_model *m;
	struct ft_tokenizer *tok;
	struct ft_chat_template *tmpl;
	int max_len;
	struct ft_chat_render render;
	struct ft_example ex;
	struct ft_ids prompt;
	struct ft_buf answer, clean;
	struct ft_chat_msg *msgs;
	size_t cap_msgs;
};

/* The reference's negative log-likelihood: the row tokenized as for
 * training with every assistant message but the last at weight 0, one
 * forward with the loss and no gradient. */
static enum ft_rc score_nll(struct scorer *sc, const struct ft_eval_row *r, double *nll,
			    long *tokens, json_t *row_json, struct ft_err *err)
{
	size_t n = r->row.n_msgs;
	if (n > sc->cap_msgs) {
		free(sc->msgs);
		sc->msgs = calloc(n, sizeof(*sc->msgs));
		sc->cap_msgs = sc->msgs ? n : 0;
		if (!sc->msgs)
			return ft_failf(err, FT_ENOMEM, NULL, "out of memory");
	}
	for (size_t i = 0; i < n; i++) {
		sc->msgs[i] = r->row.msgs[i];
		if (sc->msgs[i].role == FT_CHAT_ASSISTANT)
			sc->msgs[i].weight = i + 1 == n ? 1 : 0;
	}
	struct ft_data_row row = r->row;
	row.msgs = sc->msgs;
	if (ft_data_row_tokenize(&row, sc->tok, sc->tmpl, false, &sc->ex, err))
		return err->rc;
	size_t len = FT_MIN(sc->ex.ids.len, (size_t)sc->max_len);
	struct ft_rows rows = { .max_len = sc->max_len, .n = 1 };
	size_t off[2] = { 0, len };
	rows.ids = sc->ex.ids.v;
	rows.labels = sc->ex.labels.v;
	rows.off = off;
	size_t unit_first[2] = { 0, 1 }, order[1] = { 0 };
	rows.unit_first = unit_first;
	rows.n_units = 1;
	struct ft_mbatch mb = { 0 };
	struct ft_ce_stats st = { 0 };
	ft_mbatch_build(&mb, &rows, order, 1);
	enum ft_rc rc = ft_model_forward(sc->m, &mb.b, 0.0f, 0, &st, err);
	ft_mbatch_release(&mb);
	if (rc)
		return rc;
	*nll = st.loss_sum;
	*tokens = st.n_tokens;
	if (sc->ro->with_ids) {
		json_t *ids = json_array(), *labels = json_array();
		for (size_t i = 0; i < len; i++) {
			json_array_append_new(ids, json_integer(sc->ex.ids.v[i]));
			json_array_append_new(labels, json_integer(sc->ex.labels.v[i]));
		}
		json_object_set_new(row_json, "ids", ids);
		json_object_set_new(row_json, "labels", labels);
	}
	return FT_OK;
}

/* The greedy answer to the prompt, decoded and cleaned into sc->clean. */
static enum ft_rc score_answer(struct scorer *sc, const struct ft_eval_row *r, long *n_tokens,
			       struct ft_err *err)
{
	if (ft_chat_render_messages(sc->tmpl, r->row.msgs, r->n_prompt,
				    FT_CHAT_ADD_GENERATION_PROMPT, &sc->render, err))
		return err->rc;
	sc->prompt.len = 0;
	if (ft_tokenizer_encode(sc->tok, ft_buf_str(&sc->render.text), sc->render.text.len,
				FT_TOK_SPLIT_SPECIAL, &sc->prompt, err))
		return err->rc;
	long room = (long)sc->max_len - (long)sc->prompt.len;
	if (room < 1) {
		ft_failf(err, FT_EINVAL, "too_long",
			 "line %ld: the prompt has %zu tokens; the model takes at most %d "
			 "positions",
			 r->row.line, sc->prompt.len, sc->max_len);
		ft_err_line(err, r->row.line);
		return FT_EINVAL;
	}
	struct ft_gen_opts go = { (int)FT_MIN(room, sc->ro->opts->max_new_tokens), 0.0, 1.0, 0 };
	struct ft_ids_out out = { 0 };
	enum ft_rc rc = ft_generate(sc->m, sc->prompt.v, sc->prompt.len, &go, &out, err);
	if (!rc) {
		ft_buf_reset(&sc->answer);
		rc = ft_tokenizer_decode(sc->tok, out.ids, out.n, FT_TOK_SKIP_SPECIAL, &sc->answer,
					 err);
		*n_tokens = (long)out.n;
	}
	free(out.ids);
	if (!rc && utf8_clean(ft_buf_str(&sc->answer), sc->answer.len, &sc->clean))
		rc = ft_failf(err, FT_ELIMIT, NULL, "line %ld: the answer is too long",
			      r->row.line);
	return rc;
}

static void progress(const struct ft_eval_run_opts *ro, const char *stage, long done, long total)
{
	if (ro->progress)
		ro->progress(ro->ud, stage, done, total);
}

/* Pass 1: every row parses and fits the options; *n_rows counts them. */
static enum ft_rc check_file(const char *path, const struct ft_eval_opts *o, long *n_rows,
			     struct ft_err *err)
{
	struct ft_jsonl_reader rd;
	struct ft_eval_row r;
	enum ft_data_format fmt = FT_FMT_UNKNOWN;
	bool eof = false;
	enum ft_rc rc = ft_jsonl_reader_open(&rd, path, err);
	if (rc)
		return rc;
	ft_eval_row_init(&r);
	*n_rows = 0;
	while (!(rc = ft_jsonl_reader_next(&rd, &eof, err)) && !eof) {
		if (ft_jsonl_blank(ft_buf_str(&rd.line), rd.line.len)) {
			rc = row_fail(err, rd.lineno, "blank_line", NULL, "the line is blank");
			break;
		}
		if ((rc = ft_eval_row_parse(ft_buf_str(&rd.line), rd.line.len, rd.lineno, &fmt, &r,
					    err)))
			break;
		if (++*n_rows > o->max_rows) {
			rc = ft_failf(
				err, FT_EINVAL, "too_many_rows",
				"the evaluation file has more than %ld rows (options.max_rows)",
				o->max_rows);
			ft_err_param(err, "options.max_rows");
			break;
		}
	}
	if (!rc && *n_rows == 0)
		rc = ft_failf(err, FT_EINVAL, "empty_file", "the evaluation file has no rows");
	ft_eval_row_release(&r);
	ft_jsonl_reader_close(&rd);
	return rc;
}

struct totals {
	double nll, rouge_p, rouge_r, rouge_f;
	long tokens, answer_tokens, rows, fact_rows, fact_all;
	char **hyps, **refs; /* malloc'd copies, for BLEU */
};

static enum ft_rc score_row(struct scorer *sc, const struct ft_eval_row *r, struct totals *t,
			    json_t *rows, struct ft_err *err)
{
	const struct ft_chat_msg *ref = &r->row.msgs[r->n_prompt];
	json_t *row = json_object();
	json_array_append_new(rows, row);
	double nll = 0; /* (gcc -O2 cannot see score_nll sets both) */
	long tokens = 0, answer_tokens = 0;
	if (score_nll(sc, r, &nll, &tokens, row, err) || score_answer(sc, r, &answer_tokens, err))
		return err->rc;
	char *reference = strndup(ref->content, ref->len);
	char *answer = strdup(ft_buf_str(&sc->clean));
	if (!reference || !answer) {
		free(reference);
		free(answer);
		return ft_failf(err, FT_ENOMEM, NULL, "out of memory");
	}
	t->refs[t->rows] = reference;
	t->hyps[t->rows] = answer;
	t->rows++;
	struct ft_rouge rg;
	if (ft_text_rouge_l(reference, answer, sc->ro->opts->rouge_tok, &rg, err)) {
		ft_err_prefixf(err, "line %ld: ", r->row.line);
		return err->rc;
	}
	t->nll += nll;
	t->tokens += tokens;
	t->answer_tokens += answer_tokens;
	t->rouge_p += rg.precision;
	t->rouge_r += rg.recall;
	t->rouge_f += rg.fmeasure;
	json_object_set_new(row, "line", json_integer(r->row.line));
	/* the last prompt turn (what an LLM judge reads as the question) */
	const struct ft_chat_msg *q = &r->row.msgs[r->n_prompt - 1];
	json_object_set_new(row, "question", json_stringn(q->content, q->len));
	json_object_set_new(row, "reference", json_string(reference));
	json_object_set_new(row, "answer", json_string(answer));
	json_object_set_new(row, "answer_tokens", json_integer(answer_tokens));
	json_object_set_new(row, "nll", num(nll));
	json_object_set_new(row, "tokens", json_integer(tokens));
	json_object_set_new(row, "rouge_l",
			    json_pack("{s:o, s:o, s:o}", "precision", num(rg.precision), "recall",
				      num(rg.recall), "fmeasure", num(rg.fmeasure)));
	if (!r->has_facts || r->n_facts == 0) {
		json_object_set_new(row, "facts_found", r->has_facts ? json_array() : json_null());
		json_object_set_new(row, "all_facts", json_null());
		return FT_OK;
	}
	bool found[FT_EVAL_MAX_FACTS];
	size_t n_found = 0;
	if (ft_text_facts_match(answer, r->facts, r->n_facts, found, &n_found, err)) {
		ft_err_prefixf(err, "line %ld: ", r->row.line);
		return err->rc;
	}
	json_t *f = json_array();
	for (size_t i = 0; i < r->n_facts; i++)
		json_array_append_new(f, json_boolean(found[i]));
	json_object_set_new(row, "facts_found", f);
	json_object_set_new(row, "all_facts", json_boolean(n_found == r->n_facts));
	t->fact_rows++;
	t->fact_all += n_found == r->n_facts;
	return FT_OK;
}

static json_t *metrics_json(const struct totals *t, const struct ft_eval_opts *o,
			    struct ft_err *err)
{
	struct ft_bleu b;
	if (ft_text_bleu_corpus((const char *const *)t->hyps, (size_t)t->rows,
				(const char *const *)t->refs, 1, o->bleu_tok, &b, err))
		return NULL;
	double n = (double)t->rows;
	json_t *prec = json_array();
	for (int i = 0; i < FT_BLEU_MAX_ORDER; i++)
		json_array_append_new(prec, num(b.precisions[i]));
	json_t *m = json_pack(
		"{s:I, s:o, s:o, s:I, s:I, s:{s:o, s:o, s:o}, s:{s:o, s:o, s:o, s:I, s:I}}", "rows",
		(json_int_t)t->rows, "perplexity",
		num(t->tokens ? exp(t->nll / (double)t->tokens) : NAN), "nll", num(t->nll),
		"tokens", (json_int_t)t->tokens, "answer_tokens", (json_int_t)t->answer_tokens,
		"rouge_l", "precision", num(t->rouge_p / n), "recall", num(t->rouge_r / n),
		"fmeasure", num(t->rouge_f / n), "bleu", "score", num(b.score), "bp", num(b.bp),
		"precisions", prec, "sys_len", (json_int_t)b.sys_len, "ref_len",
		(json_int_t)b.ref_len);
	if (t->fact_rows == 0) {
		json_object_set_new(m, "facts", json_null());
		return m;
	}
	double lo = NAN, hi = NAN;
	ft_stats_wilson((double)t->fact_all, (double)t->fact_rows, 0.95, &lo, &hi, NULL);
	json_object_set_new(m, "facts",
			    json_pack("{s:I, s:I, s:o, s:[o, o]}", "rows", (json_int_t)t->fact_rows,
				      "all_found", (json_int_t)t->fact_all, "share",
				      num((double)t->fact_all / (double)t->fact_rows), "interval",
				      num(lo), num(hi)));
	return m;
}

static enum ft_rc scorer_open(struct scorer *sc, const struct ft_eval_model *em, struct ft_err *err)
{
	const struct ft_backend *be;
	if (ft_backend_select(sc->ro->device, &be, err) ||
	    ft_tokenizer_load(em->model_dir, &sc->tok, err) ||
	    ft_data_template_pick(sc->tok, NULL, &sc->tmpl, err) ||
	    ft_model_load(em->model_dir, be, &sc->m, err))
		return err->rc;
	if (em->adapter_dir && ft_model_lora_load_peft(sc->m, em->adapter_dir, err))
		return err->rc;
	ft_model_set_loss_rows_only(sc->m, true); /* perplexity: the answers' rows only */
	sc->max_len = ft_model_config(sc->m)->max_position_embeddings;
	return FT_OK;
}

static void scorer_close(struct scorer *sc)
{
	ft_model_free(sc->m);
	ft_chat_template_free(sc->tmpl);
	ft_tokenizer_free(sc->tok);
	ft_chat_render_release(&sc->render);
	ft_example_release(&sc->ex);
	ft_ids_release(&sc->prompt);
	ft_buf_release(&sc->answer);
	ft_buf_release(&sc->clean);
	free(sc->msgs);
}

enum ft_rc ft_eval_run(const char *path, const struct ft_eval_model *em,
		       const struct ft_eval_run_opts *ro, json_t **result, struct ft_err *err)
{
	struct scorer sc = { .ro = ro };
	struct totals t = { 0 };
	struct ft_jsonl_reader rd;
	struct ft_eval_row r;
	enum ft_data_format fmt = FT_FMT_UNKNOWN;
	bool eof = false, rd_open = false;
	long n_rows = 0;
	json_t *rows = json_array(), *metrics = NULL;
	*result = NULL;
	ft_chat_render_init(&sc.render);
	ft_buf_init(&sc.answer, FT_TEXT_MAX_BYTES);
	ft_buf_init(&sc.clean, FT_TEXT_MAX_BYTES);
	ft_eval_row_init(&r);
	enum ft_rc rc = check_file(path, ro->opts, &n_rows, err);
	if (rc)
		goto out;
	t.hyps = calloc((size_t)n_rows, sizeof(char *));
	t.refs = calloc((size_t)n_rows, sizeof(char *));
	if (!t.hyps || !t.refs) {
		rc = ft_failf(err, FT_ENOMEM, NULL, "out of memory");
		goto out;
	}
	if ((rc = scorer_open(&sc, em, err)) || (rc = ft_jsonl_reader_open(&rd, path, err)))
		goto out;
	rd_open = true;
	progress(ro, "score", 0, n_rows);
	while (!(rc = ft_jsonl_reader_next(&rd, &eof, err)) && !eof && t.rows < n_rows) {
		if ((rc = ft_eval_row_parse(ft_buf_str(&rd.line), rd.line.len, rd.lineno, &fmt, &r,
					    err)) ||
		    (rc = score_row(&sc, &r, &t, rows, err)))
			break;
		progress(ro, "score", t.rows, n_rows);
	}
	if (!rc && t.rows != n_rows)
		rc = ft_failf(err, FT_EIO, NULL, "the evaluation file changed while it was read");
	if (!rc && !(metrics = metrics_json(&t, ro->opts, err)))
		rc = err->rc;
	if (!rc)
		*result = json_pack("{s:o, s:O}", "metrics", metrics, "rows", rows);
out:
	if (rd_open)
		ft_jsonl_reader_close(&rd);
	for (long i = 0; i < t.rows; i++) {
		free(t.hyps[i]);
		free(t.refs[i]);
	}
	free(t.hyps);
	free(t.refs);
	json_decref(rows);
	ft_eval_row_release(&r);
	scorer_close(&sc);
	return rc;
}
