/*
 * dpo.c - the DPO loss (trl's "sigmoid" loss with label smoothing) and the
 * preference pairs it reads (format in dpo_int.h).
 *
 * For a pair, with sequence log-probs summed over the answer tokens only
 * (pi: the model being trained, ref: the reference model):
 *   z      = beta * ((pi_c - pi_r) - (ref_c - ref_r))
 *   loss   = -(1 - ls) * logsigmoid(z) - ls * logsigmoid(-z)
 *   dl/dz  = -(1 - ls) * sigmoid(-z) + ls * sigmoid(z)
 *   d loss / d pi_c = beta * dl/dz,   d loss / d pi_r = -beta * dl/dz
 * The step's loss is the mean over its pairs (scale = 1 / pairs). Since
 * pi = sum_t log softmax(logits_t)[y_t], d pi / d logits_t = onehot - softmax,
 * so each sequence's logits get the gradient -coef * (softmax - onehot): the
 * cross-entropy op with grad_scale = -coef (train.c).
 * Metrics (trl's DPOTrainer): rewards/chosen = beta (pi_c - ref_c),
 * rewards/rejected = beta (pi_r - ref_r), rewards/accuracies = share of pairs
 * with rewards/chosen > rewards/rejected, rewards/margins = their difference,
 * logps/chosen = pi_c, logps/rejected = pi_r; all means over the pairs.
 * ls = 0 is trl's sigmoid loss; ls > 0 is the conservative DPO (cDPO) of
 * trl < 1.0's sigmoid loss, which trl >= 1.0 computes as its "aot" loss on
 * one pair.
 */
#include "dpo_int.h"
#include "ft/dataset.h"

#include <math.h>

#define PAIRS_MAX_TOKENS ((size_t)1 << 31)

static double log_sigmoid(double x)
{
	return x < 0 ? x - log1p(exp(x)) : -log1p(exp(-x));
}

static double sigmoid(double x)
{
	if (x >= 0)
		return 1.0 / (1.0 + exp(-x));
	double e = exp(x);
	return e / (1.0 + e);
}

void ft_dpo_pairs(const double *pi_c, const double *pi_r, const double *ref_c, const double *ref_r,
		  int n, double beta, double ls, double scale, double *coef, struct ft_dpo_sums *s)
{
	for (int i = 0; i < n; i++) {
		double z = beta * ((pi_c[i] - pi_r[i]) - (ref_c[i] - ref_r[i]));
		double rc = beta * (pi_c[i] - ref_c[i]), rr = beta * (pi_r[i] - ref_r[i]);
		s->loss += -(1.0 - ls) * log_sigmoid(z) - ls * log_sigmoid(-z);
		s->reward_chosen += rc;
		s->reward_rejected += rr;
		s->correct += rc > rr;
		s->margin += rc - rr;
		s->logp_chosen += pi_c[i];
		s->logp_rejected += pi_r[i];
		s->n++;
		if (coef) {
			double dz = -(1.0 - ls) * sigmoid(-z) + ls * sigmoid(z);
			coef[i] = scale * beta * dz;
			coef[n + i] = -coef[i];
		}
	}
}

void ft_dpo_metrics(const struct ft_dpo_sums *s, struct ft_dpo_metrics *o)
{
	double n = s->n > 0 ? (double)s->n : NAN;
	o->loss = s->loss / n;
	o->chosen = s->reward_chosen / n;
	o->rejected = s->reward_rejected / n;
	o->accuracy = s->correct / n;
	o->margin = s->margin / n;
	o->logp_chosen = s->logp_chosen / n;
	o->logp_rejected = s->logp_rejected / n;
}

size_t ft_pairs_count(const struct ft_rows *r)
{
	return r->n / 2;
}

/* ---- building the rows ---- */

struct pair_builder {
	struct ft_rows *r;
	size_t tokcap, offcap;
};

static enum ft_rc builder_init(struct pair_builder *pb, struct ft_rows *r, int max_len,
			       struct ft_err *err)
{
	memset(r, 0, sizeof(*r));
	r->max_len = max_len;
	pb->r = r;
	pb->tokcap = 0;
	pb->offcap = 1024;
	r->off = calloc(pb->offcap, sizeof(size_t));
	if (!r->off)
		return ft_failf(err, FT_ENOMEM, NULL, "out of memory");
	return FT_OK;
}

/* Append prompt + answer as one row, labels -100 over the prompt,
 * truncated to max_len tokens. */
static enum ft_rc push_seq(struct pair_builder *pb, const int32_t *prompt, size_t np,
			   const int32_t *ans, size_t na, struct ft_err *err)
{
	struct ft_rows *r = pb->r;
	size_t take = FT_MIN(np + na, (size_t)r->max_len), len0 = r->off[r->n];
	if (len0 + take > PAIRS_MAX_TOKENS)
		return ft_failf(err, FT_ELIMIT, NULL, "more than %zu tokens", PAIRS_MAX_TOKENS);
	if (r->n + 2 > pb->offcap) {
		size_t *p = realloc(r->off, 2 * pb->offcap * sizeof(size_t));
		if (!p)
			return ft_failf(err, FT_ENOMEM, NULL, "out of memory for the pairs");
		r->off = p;
		pb->offcap *= 2;
	}
	if (len0 + take > pb->tokcap) {
		size_t nc = FT_MAX(len0 + take, pb->tokcap ? pb->tokcap * 2 : 4096);
		int32_t *a = realloc(r->ids, nc * sizeof(int32_t));
		if (a)
			r->ids = a;
		int32_t *b = a ? realloc(r->labels, nc * sizeof(int32_t)) : NULL;
		if (!b)
			return ft_failf(err, FT_ENOMEM, NULL, "out of memory for the pairs");
		r->labels = b;
		pb->tokcap = nc;
	}
	for (size_t i = 0; i < take; i++) {
		bool in_prompt = i < np;
		r->ids[len0 + i] = in_prompt ? prompt[i] : ans[i - np];
		r->labels[len0 + i] = in_prompt ? FT_IGNORE_INDEX : ans[i - np];
	}
	r->off[r->n + 1] = len0 + take;
	r->n++;
	return FT_OK;
}

static enum ft_rc builder_finish(struct pair_builder *pb, const char *name, struct ft_err *err)
{
	if (pb->r->n == 0)
		return ft_failf(err, FT_EINVAL, "empty_dataset", "\"%s\" has no preference pairs",
				name);
	return ft_rows_make_units(pb->r, false, err);
}

/* ---- pre-tokenized pairs ---- */

/* A list of token ids; *out points into the row (valid while it lives). */
static enum ft_rc id_list(json_t *row, const char *key, size_t min, int vocab, struct ft_ids *out,
			  struct ft_err *err)
{
	json_t *a = json_object_get(row, key);
	if (!a || json_is_null(a))
		return ft_failf(err, FT_EINVAL, "missing_field", "\"%s\" is required", key);
	if (!json_is_array(a))
		return ft_failf(err, FT_EINVAL, "invalid_type", "\"%s\" must be a list (got %s)",
				key, ft_json_type_name(a));
	if (json_array_size(a) < min)
		return ft_failf(err, FT_EINVAL, "invalid_value",
				"\"%s\" must hold at least %zu token id%s", key, min,
				min == 1 ? "" : "s");
	out->len = 0;
	size_t i;
	json_t *v;
	json_array_foreach(a, i, v)
	{
		if (!json_is_integer(v))
			return ft_failf(err, FT_EINVAL, "invalid_type",
					"\"%s\"[%zu] must be an integer (got %s)", key, i,
					ft_json_type_name(v));
		json_int_t x = json_integer_value(v);
		if (x < 0 || x >= vocab)
			return ft_failf(
				err, FT_EINVAL, "invalid_value",
				"\"%s\"[%zu] = %lld is not a token id of the model (0 to %d)", key,
				i, (long long)x, vocab - 1);
		if (ft_ids_push(out, (int32_t)x))
			return ft_failf(err, FT_ENOMEM, NULL, "out of memory");
	}
	return FT_OK;
}

static enum ft_rc parse_pair(const char *line, size_t len, int vocab, struct pair_builder *pb,
			     struct ft_pref_example *ex, struct ft_err *err)
{
	static const char *const keys[] = { "prompt_ids", "chosen_ids", "rejected_ids", NULL };
	json_t *row = ft_json_parse(line, len, err);
	if (!row)
		return FT_EINVAL;
	enum ft_rc rc;
	if (!json_is_object(row)) {
		rc = ft_failf(err, FT_EINVAL, "invalid_type", "a row must be an object (got %s)",
			      ft_json_type_name(row));
		goto free_row;
	}
	if (json_object_get(row, "input_ids")) {
		rc = ft_failf(err, FT_EINVAL, "wrong_method",
			      "\"input_ids\" rows are for supervised training: a dpo job reads "
			      "\"prompt_ids\", \"chosen_ids\" and \"rejected_ids\" (or preference "
			      "rows)");
		goto free_row;
	}
	if ((rc = ft_json_check_keys(row, keys, err)) ||
	    (rc = id_list(row, "prompt_ids", 1, vocab, &ex->prompt, err)) ||
	    (rc = id_list(row, "chosen_ids", 1, vocab, &ex->chosen, err)) ||
	    (rc = id_list(row, "rejected_ids", 1, vocab, &ex->rejected, err)) ||
	    (rc = push_seq(pb, ex->prompt.v, ex->prompt.len, ex->chosen.v, ex->chosen.len, err)))
		goto free_row;
	rc = push_seq(pb, ex->prompt.v, ex->prompt.len, ex->rejected.v, ex->rejected.len, err);
free_row:
	json_decref(row);
	return rc;
}

static enum ft_rc parse_stream(FILE *f, const char *name, int vocab, int max_len, struct ft_rows *r,
			       struct ft_err *err)
{
	struct pair_builder pb;
	struct ft_pref_example ex = { 0 };
	struct ft_jsonl_reader rd;
	enum ft_rc rc = ft_jsonl_reader_from_file(&rd, f, err);
	if (rc)
		return rc;
	rc = builder_init(&pb, r, max_len, err);
	while (!rc) {
		bool eof;
		if ((rc = ft_jsonl_reader_next(&rd, &eof, err))) {
			ft_err_prefixf(err, "%s ", name);
			break;
		}
		if (eof)
			break;
		if (ft_jsonl_blank(ft_buf_str(&rd.line), rd.line.len))
			continue;
		rc = parse_pair(ft_buf_str(&rd.line), rd.line.len, vocab, &pb, &ex, err);
		if (rc) {
			ft_err_prefixf(err, "%s line %ld: ", name, rd.lineno);
			if (err) /* the file's line, not the JSON parser's */
				err->line = rd.lineno;
		}
	}
	if (!rc)
		rc = builder_finish(&pb, name, err);
	if (rc)
		ft_rows_release(r);
	ft_pref_example_release(&ex);
	ft_jsonl_reader_close(&rd);
	return rc;
}

enum ft_rc ft_pairs_parse(const char *data, size_t len, const char *name, int vocab, int max_len,
			  struct ft_rows *r, struct ft_err *err)
{
	memset(r, 0, sizeof(*r));
	if (len == 0)
		return ft_failf(err, FT_EINVAL, "empty_dataset", "\"%s\" has no preference pairs",
				name);
	FILE *f = fmemopen((void *)(uintptr_t)data, len, "rb");
	if (!f)
		return ft_failf(err, FT_ENOMEM, NULL, "out of memory");
	enum ft_rc rc = parse_stream(f, name, vocab, max_len, r, err);
	fclose(f);
	return rc;
}

/* True when the first non-blank line is an object with "prompt_ids" (or
 * "input_ids": supervised rows, refused by name in parse_pair). */
static bool pairs_pretokenized(const char *path)
{
	bool opened;
	json_t *row = ft_rows_first_row(path, &opened);
	bool pre = !opened || (json_is_object(row) && (json_object_get(row, "prompt_ids") ||
						       json_object_get(row, "input_ids")));
	json_decref(row);
	return pre;
}

/* ---- pairs through the dataset pipeline ---- */

static enum ft_rc load_dataset(const char *path, const char *model_dir, const char *template_name,
			       int vocab, int max_len, struct ft_rows *r, struct ft_err *err)
{
	struct ft_tokenizer *tok = NULL;
	struct pair_builder pb;
	enum ft_rc rc = ft_tokenizer_load(model_dir, &tok, err);
	memset(r, 0, sizeof(*r));
	if (rc)
		return rc;
	if (ft_tokenizer_vocab_size(tok) > (size_t)vocab) {
		rc = ft_failf(err, FT_EINVAL, NULL,
			      "the tokenizer has %zu tokens but the model only %d embeddings",
			      ft_tokenizer_vocab_size(tok), vocab);
		goto free_tok;
	}
	struct ft_data_opts o;
	ft_data_opts_default(&o);
	o.template_name = template_name;
	o.method = FT_METHOD_DPO;
	o.max_seq_len = 0;
	struct ft_dataset *ds = NULL;
	if ((rc = ft_dataset_open(path, tok, NULL, &o, &ds, err)))
		goto free_tok;
	struct ft_pref_example ex = { 0 };
	bool eof = false;
	rc = builder_init(&pb, r, max_len, err);
	while (!rc && !(rc = ft_dataset_next_pref(ds, FT_SPLIT_TRAIN, &ex, &eof, err)) && !eof) {
		if ((rc = push_seq(&pb, ex.prompt.v, ex.prompt.len, ex.chosen.v, ex.chosen.len,
				   err)) ||
		    (rc = push_seq(&pb, ex.prompt.v, ex.prompt.len, ex.rejected.v, ex.rejected.len,
				   err)))
			break;
	}
	if (!rc)
		rc = builder_finish(&pb, path, err);
	if (rc) {
		ft_err_prefixf(err, "%s: ", path);
		ft_rows_release(r);
	}
	ft_pref_example_release(&ex);
	ft_dataset_free(ds);
free_tok:
	ft_tokenizer_free(tok);
	return rc;
}

enum ft_rc ft_pairs_load(const char *path, const char *model_dir, const char *template_name,
			 int vocab, int max_len, struct ft_rows *r, struct ft_err *err)
{
	if (!pairs_pretokenized(path))
		return load_dataset(path, model_dir, template_name, vocab, max_len, r, err);
	memset(r, 0, sizeof(*r));
	FILE *f = fopen(path, "rb");
	if (!f)
		return ft_failf(err, errno == ENOENT ? FT_ENOTFOUND : FT_EIO, NULL,
				"cannot open \"%s\": %s", path, strerror(errno));
	enum ft_rc rc = parse_stream(f, path, vocab, max_len, r, err);
	fclose(f);
	return rc;
}
