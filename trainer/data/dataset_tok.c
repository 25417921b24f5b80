/*
 * dataset_tok.c - from a parsed row to token ids and labels, and the dataset
 * iterator the training loop consumes.
 *
 * A row is first rendered into labelled segments (ft/chat.h): chats through
 * the template, raw rows as below ({bos} only when the tokenizer adds one):
 *
 *   text               {bos} {text} {eos}                 all trained
 *   prompt_completion  {bos} {prompt} | {completion}{eos}  completion + eos trained
 *   instruction        {bos} Alpaca prompt | {output}{eos} output + eos trained
 *
 * The whole text is encoded once with special tokens recognised and no
 * post-processor (BOS comes from the rendering), exactly as transformers'
 * apply_chat_template(tokenize=True) does. Labels: walk the segments,
 * encoding each on its own; where its ids are the next ids of the whole
 * encoding (the usual case: segments meet at special tokens or
 * pre-tokenizer splits) its tokens take its label. Where a token crosses
 * a segment end, the window grows to the next segments until it matches,
 * and inside it the token boundaries come from prefixes: c_k = tokens
 * inside the window's text up to the end of segment k (the common prefix
 * with the encoding of that prefix); a token crossing an end is trained
 * when any segment it covers is (as transformers' char_to_token-based
 * assistant masks do).
 */
#include "ft/dataset.h"

#define ALPACA_PREAMBLE_INPUT                                                                \
	"Below is an instruction that describes a task, paired with an input that provides " \
	"further context. Write a response that appropriately completes the request.\n\n"
#define ALPACA_PREAMBLE                                                                       \
	"Below is an instruction that describes a task. Write a response that appropriately " \
	"completes the request.\n\n"

void ft_data_opts_default(struct ft_data_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->method = FT_METHOD_AUTO;
	o->max_seq_len = 2048;
}

void ft_example_release(struct ft_example *ex)
{
	ft_ids_release(&ex->ids);
	ft_ids_release(&ex->labels);
	memset(ex, 0, sizeof(*ex));
}

void ft_pref_example_release(struct ft_pref_example *ex)
{
	ft_ids_release(&ex->prompt);
	ft_ids_release(&ex->chosen);
	ft_ids_release(&ex->rejected);
	memset(ex, 0, sizeof(*ex));
}

enum ft_rc ft_pref_example_sequence(const struct ft_pref_example *ex, bool rejected,
				    struct ft_ids *ids, struct ft_ids *labels)
{
	const struct ft_ids *ans = rejected ? &ex->rejected : &ex->chosen;
	ids->len = labels->len = 0;
	for (size_t i = 0; i < ex->prompt.len; i++)
		if (ft_ids_push(ids, ex->prompt.v[i]) || ft_ids_push(labels, FT_LABEL_IGNORE))
			return FT_ENOMEM;
	for (size_t i = 0; i < ans->len; i++)
		if (ft_ids_push(ids, ans->v[i]) || ft_ids_push(labels, ans->v[i]))
			return FT_ENOMEM;
	return FT_OK;
}

static const char *tok_text(const struct ft_tokenizer *tok, int32_t id)
{
	const char *s = id >= 0 ? ft_tokenizer_id_to_token(tok, id) : NULL;
	return s ? s : "";
}

enum ft_rc ft_data_template_pick(const struct ft_tokenizer *tok, const char *name,
				 struct ft_chat_template **out, struct ft_err *err)
{
	const char *bos = tok_text(tok, ft_tokenizer_bos_id(tok));
	const char *eos = tok_text(tok, ft_tokenizer_eos_id(tok));
	if (name && *name)
		return ft_chat_template_new(name, bos, eos, out, err);
	const char *jinja = ft_tokenizer_chat_template(tok);
	if (jinja)
		return ft_chat_template_from_jinja(jinja, bos, eos, out, err);
	*out = NULL;
	ft_failf(err, FT_EINVAL, "unknown_template",
		 "the model has no chat template (tokenizer_config.json, chat_template.jinja or "
		 "a GGUF's tokenizer.chat_template)");
	ft_err_hintf(err, "name the template in the job (\"chat_template\"): one of %s",
		     ft_chat_template_names());
	ft_err_param(err, "template");
	return FT_EINVAL;
}

/* ---- rendering raw rows ---- */

static enum ft_rc render_raw(const struct ft_data_row *row, const struct ft_tokenizer *tok,
			     bool train_on_inputs, struct ft_chat_render *r)
{
	const char *bos = ft_tokenizer_adds_bos(tok) ? tok_text(tok, ft_tokenizer_bos_id(tok)) : "";
	const char *eos = tok_text(tok, ft_tokenizer_eos_id(tok));
	const struct ft_chat_msg *m = row->msgs;
	bool in = train_on_inputs;
	bool all = row->format == FT_FMT_TEXT;

	ft_chat_render_reset(r);
	if (ft_chat_render_add(r, bos, strlen(bos), -1, all || in))
		return FT_ENOMEM;
	switch (row->format) {
	case FT_FMT_TEXT:
		if (ft_chat_render_add(r, m[0].content, m[0].len, 0, true))
			return FT_ENOMEM;
		break;
	case FT_FMT_PROMPT_COMPLETION:
		if (ft_chat_render_add(r, m[0].content, m[0].len, 0, in) ||
		    ft_chat_render_add(r, m[1].content, m[1].len, 1, true))
			return FT_ENOMEM;
		break;
	case FT_FMT_INSTRUCTION: {
		bool has_input = m[1].len > 0;
		const char *pre = has_input ? ALPACA_PREAMBLE_INPUT : ALPACA_PREAMBLE;
		if (ft_chat_render_add(r, pre, strlen(pre), -1, in) ||
		    ft_chat_render_add(r, "### Instruction:\n", 17, 0, in) ||
		    ft_chat_render_add(r, m[0].content, m[0].len, 0, in))
			return FT_ENOMEM;
		if (has_input && (ft_chat_render_add(r, "\n\n### Input:\n", 13, 1, in) ||
				  ft_chat_render_add(r, m[1].content, m[1].len, 1, in)))
			return FT_ENOMEM;
		if (ft_chat_render_add(r, "\n\n### Response:\n", 16, -1, in) ||
		    ft_chat_render_add(r, m[2].content, m[2].len, 2, true))
			return FT_ENOMEM;
		break;
	}
	default: FT_ASSERT(!"not a raw format");
	}
	if (ft_chat_render_add(r, eos, strlen(eos), (int)row->n_msgs - 1, true))
		return FT_ENOMEM;
	return FT_OK;
}

/* ---- encoding with labels ---- */

static enum ft_rc encode(const struct ft_tokenizer *tok, const char *s, size_t len,
			 struct ft_ids *out, struct ft_err *err)
{
	return ft_tokenizer_encode(tok, s, len, FT_TOK_SPLIT_SPECIAL, out, err);
}

/* Label the m tokens w[0..m) that encode segments [s, e) of r (their text
 * starts at segs[s].off): with one segment they all take its label; with
 * more, c_k = tokens of w inside the text up to the end of segment k (the
 * common prefix with the encoding of that prefix), and a token crossing
 * that end is trained when any segment it covers is. */
static enum ft_rc label_window(const struct ft_tokenizer *tok, const struct ft_chat_render *r,
			       size_t s, size_t e, const int32_t *w, size_t m, int32_t *labels,
			       struct ft_ids *piece, size_t *work, struct ft_err *err)
{
	const char *text = ft_buf_str(&r->text);
	size_t nw = e - s, start = r->segs[s].off;
	size_t *c = NULL;
	bool *straddle = NULL;
	enum ft_rc rc = FT_OK;

	if (nw == 1) {
		for (size_t i = 0; i < m; i++)
			labels[i] = r->segs[s].trained ? w[i] : FT_LABEL_IGNORE;
		return FT_OK;
	}
	c = calloc(nw, sizeof(*c));
	straddle = calloc(nw, sizeof(*straddle));
	if (!c || !straddle) {
		rc = ft_failf(err, FT_ENOMEM, "out_of_memory", "tokenizing: out of memory");
		goto out;
	}
	for (size_t k = 0; k + 1 < nw; k++) {
		size_t end = r->segs[s + k].off + r->segs[s + k].len;
		piece->len = 0;
		*work += end - start;
		if ((rc = encode(tok, text + start, end - start, piece, err)))
			goto out;
		size_t cp = 0;
		while (cp < FT_MIN(piece->len, m) && piece->v[cp] == w[cp])
			cp++;
		c[k] = k > 0 ? FT_MAX(cp, c[k - 1]) : cp;
		straddle[k] = piece->len > cp && cp < m;
	}
	c[nw - 1] = m;
	for (size_t i = 0; i < m; i++) {
		size_t first = 0, last = 0;
		while (first < nw && i >= c[first] + (straddle[first] ? 1 : 0))
			first++;
		while (last < nw && i >= c[last])
			last++;
		last = FT_MIN(last, nw - 1);
		first = FT_MIN(first, last);
		bool tr = false;
		for (size_t k = first; k <= last; k++)
			tr = tr || r->segs[s + k].trained;
		labels[i] = tr ? w[i] : FT_LABEL_IGNORE;
	}
out:
	free(c);
	free(straddle);
	return rc;
}

/* Labels of the whole encoding `ids` of r's text. Segments are taken in
 * windows: a window [s, e) is the shortest run of segments from s whose own
 * encoding is exactly the next tokens of `ids` (one segment, unless a token
 * crosses its end); the windows tile the tokens, so the work stays linear in
 * the text unless the tokenizer merges across many segments in a row,
 * which is bounded (WORK_FACTOR x the text) and then an error. */
#define WORK_FACTOR 64
static enum ft_rc label_tokens(const struct ft_tokenizer *tok, const struct ft_chat_render *r,
			       const struct ft_ids *ids, struct ft_ids *labels, struct ft_err *err)
{
	struct ft_ids piece = { 0 }, scratch = { 0 };
	const char *text = ft_buf_str(&r->text);
	size_t n = ids->len, at = 0, s = 0, work = 0;
	size_t budget = WORK_FACTOR * r->text.len + 4096;
	enum ft_rc rc = FT_OK;

	labels->len = 0;
	for (size_t i = 0; i < n; i++)
		if (ft_ids_push(labels, FT_LABEL_IGNORE))
			goto fail_nomem;
	while (s < r->n_segs) {
		size_t e = s + 1, start = r->segs[s].off;
		for (;; e++) {
			if (e > r->n_segs || work > budget) {
				rc = ft_failf(err, FT_EINVAL, "tokenization_error",
					      "cannot align the tokens with the template's pieces "
					      "(the tokenizer merges across too many of them)");
				goto out;
			}
			size_t end = r->segs[e - 1].off + r->segs[e - 1].len;
			piece.len = 0;
			work += end - start;
			if ((rc = encode(tok, text + start, end - start, &piece, err)))
				goto out;
			if (at + piece.len <= n &&
			    memcmp(piece.v, ids->v + at, piece.len * sizeof(int32_t)) == 0 &&
			    (e < r->n_segs || at + piece.len == n))
				break;
		}
		if ((rc = label_window(tok, r, s, e, ids->v + at, piece.len, labels->v + at,
				       &scratch, &work, err)))
			goto out;
		at += piece.len;
		s = e;
	}
	goto out;
fail_nomem:
	rc = ft_failf(err, FT_ENOMEM, "out_of_memory", "tokenizing: out of memory");
out:
	ft_ids_release(&piece);
	ft_ids_release(&scratch);
	return rc;
}

static enum ft_rc encode_render(const struct ft_tokenizer *tok, const struct ft_chat_render *r,
				struct ft_example *out, struct ft_err *err)
{
	out->ids.len = out->labels.len = 0;
	out->n_trained = 0;
	if (encode(tok, ft_buf_str(&r->text), r->text.len, &out->ids, err) ||
	    label_tokens(tok, r, &out->ids, &out->labels, err))
		return err && err->rc ? err->rc : FT_EINTERNAL;
	for (size_t i = 0; i < out->labels.len; i++)
		out->n_trained += out->labels.v[i] != FT_LABEL_IGNORE;
	return FT_OK;
}

enum ft_rc ft_data_row_tokenize(const struct ft_data_row *row, const struct ft_tokenizer *tok,
				const struct ft_chat_template *tmpl, bool train_on_inputs,
				struct ft_example *out, struct ft_err *err)
{
	struct ft_chat_render r;
	enum ft_rc rc;

	ft_chat_render_init(&r);
	out->line = row->line;
	if (row->raw) {
		rc = render_raw(row, tok, train_on_inputs, &r);
		if (rc)
			rc = ft_failf(err, FT_ENOMEM, "out_of_memory", "rendering: out of memory");
	} else {
		FT_ASSERT(tmpl);
		rc = ft_chat_render_messages(tmpl, row->msgs, row->n_msgs,
					     train_on_inputs ? FT_CHAT_TRAIN_ON_INPUTS : 0, &r,
					     err);
	}
	if (!rc)
		rc = encode_render(tok, &r, out, err);
	if (!rc && out->n_trained == 0)
		rc = ft_failf(err, FT_EINVAL, "no_trained_tokens",
			      "no token is trained (every assistant message has weight 0)");
	if (rc) {
		ft_err_prefixf(err, "line %ld: ", row->line);
		ft_err_line(err, row->line);
	}
	ft_chat_render_release(&r);
	return rc;
}

/* Render prompt + answer and keep the part after the rendered prompt. */
static enum ft_rc answer_text(const struct ft_data_row *row, const struct ft_chat_template *tmpl,
			      const struct ft_chat_msg *ans, size_t n_ans, const char *prompt,
			      size_t prompt_len, struct ft_buf *out, struct ft_err *err)
{
	struct ft_chat_render r;
	struct ft_chat_msg *all = calloc(row->n_msgs + n_ans, sizeof(*all));
	enum ft_rc rc;
	if (!all)
		return ft_failf(err, FT_ENOMEM, "out_of_memory", "out of memory");
	memcpy(all, row->msgs, row->n_msgs * sizeof(*all));
	memcpy(all + row->n_msgs, ans, n_ans * sizeof(*all));
	ft_chat_render_init(&r);
	rc = ft_chat_render_messages(tmpl, all, row->n_msgs + n_ans, 0, &r, err);
	if (!rc) {
		if (r.text.len < prompt_len || memcmp(r.text.ptr, prompt, prompt_len) != 0)
			rc = ft_failf(err, FT_EINVAL, "invalid_role_order",
				      "the %s template does not render the prompt as a prefix of "
				      "the conversation with its answer",
				      ft_chat_template_name(tmpl));
		else if (ft_buf_add(out, r.text.ptr + prompt_len, r.text.len - prompt_len))
			rc = ft_failf(err, FT_ENOMEM, "out_of_memory", "out of memory");
	}
	ft_chat_render_release(&r);
	free(all);
	return rc;
}

enum ft_rc ft_data_row_tokenize_pref(const struct ft_data_row *row, const struct ft_tokenizer *tok,
				     const struct ft_chat_template *tmpl,
				     struct ft_pref_example *out, struct ft_err *err)
{
	struct ft_buf prompt = FT_BUF_INIT(FT_DATA_MAX_LINE * 2);
	struct ft_buf chosen = FT_BUF_INIT(FT_DATA_MAX_LINE * 2);
	struct ft_buf rejected = FT_BUF_INIT(FT_DATA_MAX_LINE * 2);
	struct ft_chat_render r;
	enum ft_rc rc = FT_OK;

	ft_chat_render_init(&r);
	out->line = row->line;
	out->prompt.len = out->chosen.len = out->rejected.len = 0;
	if (row->raw) {
		const char *bos =
			ft_tokenizer_adds_bos(tok) ? tok_text(tok, ft_tokenizer_bos_id(tok)) : "";
		const char *eos = tok_text(tok, ft_tokenizer_eos_id(tok));
		if (ft_buf_addstr(&prompt, bos) ||
		    ft_buf_add(&prompt, row->msgs[0].content, row->msgs[0].len) ||
		    ft_buf_add(&chosen, row->chosen[0].content, row->chosen[0].len) ||
		    ft_buf_addstr(&chosen, eos) ||
		    ft_buf_add(&rejected, row->rejected[0].content, row->rejected[0].len) ||
		    ft_buf_addstr(&rejected, eos)) {
			rc = ft_failf(err, FT_ENOMEM, "out_of_memory", "out of memory");
			goto out;
		}
	} else {
		FT_ASSERT(tmpl);
		if ((rc = ft_chat_render_messages(tmpl, row->msgs, row->n_msgs,
						  FT_CHAT_ADD_GENERATION_PROMPT, &r, err)))
			goto out;
		if (ft_buf_add(&prompt, ft_buf_str(&r.text), r.text.len)) {
			rc = ft_failf(err, FT_ENOMEM, "out_of_memory", "out of memory");
			goto out;
		}
		/* the generation prompt is what the answers follow; templates without
		 * one ([INST] families) render the bare prompt, which is a prefix too */
		if ((rc = answer_text(row, tmpl, row->chosen, row->n_chosen, prompt.ptr, prompt.len,
				      &chosen, err)) ||
		    (rc = answer_text(row, tmpl, row->rejected, row->n_rejected, prompt.ptr,
				      prompt.len, &rejected, err)))
			goto out;
	}
	if ((rc = encode(tok, ft_buf_str(&prompt), prompt.len, &out->prompt, err)) ||
	    (rc = encode(tok, ft_buf_str(&chosen), chosen.len, &out->chosen, err)) ||
	    (rc = encode(tok, ft_buf_str(&rejected), rejected.len, &out->rejected, err)))
		goto out;
	/* the DPO loss needs a prompt and two answers of at least one token */
	if (out->prompt.len == 0 || out->chosen.len == 0 || out->rejected.len == 0)
		rc = ft_failf(err, FT_EINVAL, "empty_content", "the %s tokenizes to no tokens",
			      out->prompt.len == 0   ? "prompt"
			      : out->chosen.len == 0 ? "chosen answer"
						     : "rejected answer");
out:
	if (rc) {
		ft_err_prefixf(err, "line %ld: ", row->line);
		ft_err_line(err, row->line);
	}
	ft_chat_render_release(&r);
	ft_buf_release(&prompt);
	ft_buf_release(&chosen);
	ft_buf_release(&rejected);
	return rc;
}

/* ---- the dataset iterator ---- */

struct ft_dataset {
	struct ft_jsonl_reader rd;
	const struct ft_tokenizer *tok;
	const struct ft_chat_template *tmpl;
	struct ft_chat_template *own_tmpl;
	struct ft_data_opts opts;
	enum ft_data_format format;
	struct ft_data_row row;
};

enum ft_rc ft_dataset_open(const char *path, const struct ft_tokenizer *tok,
			   const struct ft_chat_template *tmpl, const struct ft_data_opts *opts,
			   struct ft_dataset **out, struct ft_err *err)
{
	struct ft_dataset *ds = ft_xcalloc(1, sizeof(*ds));
	*out = NULL;
	ds->tok = tok;
	ds->tmpl = tmpl;
	ds->opts = *opts;
	ds->opts.template_name = NULL; /* not kept: the caller's string */
	if (!tmpl) {
		/* a named template must exist; the model's own is needed only by chat
		 * rows, which fail with the reason when it is missing */
		struct ft_err e;
		ft_err_clear(&e);
		bool named = opts->template_name && *opts->template_name;
		if (ft_data_template_pick(tok, opts->template_name, &ds->own_tmpl, &e) && named) {
			free(ds);
			if (err)
				*err = e;
			return e.rc;
		}
		ds->tmpl = ds->own_tmpl;
	}
	if (ft_jsonl_reader_open(&ds->rd, path, err)) {
		ft_chat_template_free(ds->own_tmpl);
		free(ds);
		return err && err->rc ? err->rc : FT_EIO;
	}
	ft_data_row_init(&ds->row);
	*out = ds;
	return FT_OK;
}

void ft_dataset_free(struct ft_dataset *ds)
{
	if (!ds)
		return;
	ft_jsonl_reader_close(&ds->rd);
	ft_data_row_release(&ds->row);
	ft_chat_template_free(ds->own_tmpl);
	free(ds);
}

enum ft_data_format ft_dataset_format(const struct ft_dataset *ds)
{
	return ds->format;
}

enum ft_rc ft_dataset_rewind(struct ft_dataset *ds, struct ft_err *err)
{
	return ft_jsonl_reader_rewind(&ds->rd, err);
}

/* Next row of the split, parsed. */
static enum ft_rc next_row(struct ft_dataset *ds, enum ft_split split, bool pref, bool *eof,
			   struct ft_err *err)
{
	for (;;) {
		enum ft_rc rc = ft_jsonl_reader_next(&ds->rd, eof, err);
		if (rc || *eof)
			return rc;
		if (ft_data_split(ds->opts.seed, (uint64_t)(ds->rd.lineno - 1),
				  ds->opts.val_fraction) != split)
			continue;
		rc = ft_data_row_parse(ds->rd.line.ptr ? ds->rd.line.ptr : "", ds->rd.line.len,
				       ds->rd.lineno, &ds->format, &ds->row, err);
		if (rc)
			return rc;
		if (ft_data_format_is_preference(ds->format) != pref) {
			ft_failf(err, FT_EINVAL, "wrong_method",
				 "line %ld: rows in the \"%s\" format are for %s, not %s",
				 ds->rd.lineno, ft_data_format_name(ds->format),
				 pref ? "sft" : "dpo", pref ? "dpo" : "sft");
			ft_err_line(err, ds->rd.lineno);
			return FT_EINVAL;
		}
		if (!ds->row.raw && !ds->tmpl) {
			ft_data_template_pick(ds->tok, NULL, &ds->own_tmpl, err);
			ft_err_prefixf(err, "line %ld: ", ds->rd.lineno);
			return FT_EINVAL;
		}
		return FT_OK;
	}
}

enum ft_rc ft_dataset_next(struct ft_dataset *ds, enum ft_split split, struct ft_example *ex,
			   bool *eof, struct ft_err *err)
{
	enum ft_rc rc = next_row(ds, split, false, eof, err);
	if (rc || *eof)
		return rc;
	return ft_data_row_tokenize(&ds->row, ds->tok, ds->tmpl, ds->opts.train_on_inputs, ex, err);
}

enum ft_rc ft_dataset_next_pref(struct ft_dataset *ds, enum ft_split split,
				struct ft_pref_example *ex, bool *eof, struct ft_err *err)
{
	enum ft_rc rc = next_row(ds, split, true, eof, err);
	if (rc || *eof)
		return rc;
	return ft_data_row_tokenize_pref(&ds->row, ds->tok, ds->tmpl, ex, err);
}
