/*
 * checkpoint.c - write and read training checkpoints; the format is the
 * field table in checkpoint_int.h.
 *
 * The tensors are backend memory: off the host, saving downloads every set
 * into one host block (the writer reads them when it writes), and loading
 * converts one tensor at a time into a staging buffer and uploads it.
 */
#include "checkpoint_int.h"
#include "ft/backend.h"
#include "ft/safetensors.h"
#include "ft/train.h"
#include "ft/trainer.h"
#include "ft/fs.h"

#include <math.h>

#define CKPT_FILE "checkpoint.safetensors"

/* stage: NULL on a host-memory backend, else room for the set's floats. */
static enum ft_rc add_set(struct ft_st_writer *w, const struct ft_backend *be, const char *prefix,
			  const struct ft_param *ps, size_t np, const float *mem, float *stage,
			  struct ft_err *err)
{
	size_t off = 0;
	for (size_t i = 0; i < np; i++) {
		char name[200];
		snprintf(name, sizeof name, "%s/%s", prefix, ps[i].name);
		const float *data = mem ? mem + off : ps[i].data;
		if (stage) {
			be->download(stage + off, data, ps[i].n * sizeof(float));
			data = stage + off;
		}
		enum ft_rc rc =
			ft_st_writer_add(w, name, FT_DTYPE_F32, ps[i].ndim, ps[i].shape, data, err);
		if (rc)
			return rc;
		off += ps[i].n;
	}
	return FT_OK;
}

static enum ft_rc meta(struct ft_st_writer *w, const char *key, struct ft_err *err, const char *fmt,
		       ...) FT_PRINTF(4, 5);
static enum ft_rc meta(struct ft_st_writer *w, const char *key, struct ft_err *err, const char *fmt,
		       ...)
{
	char v[64];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(v, sizeof v, fmt, ap);
	va_end(ap);
	return ft_st_writer_meta(w, key, v, err);
}

static const char *const method_names[] = {
	[FT_METHOD_LORA] = "lora", [FT_METHOD_FULL] = "full", [FT_METHOD_QLORA] = "qlora"
};

static const char *method_name(int m)
{
	return m >= 0 && m < (int)FT_ARRAY_LEN(method_names) ? method_names[m] : "lora";
}

static int method_parse(const char *s)
{
	for (size_t i = 0; s && i < FT_ARRAY_LEN(method_names); i++)
		if (strcmp(s, method_names[i]) == 0)
			return (int)i;
	return FT_METHOD_LORA;
}

enum ft_rc ft_ckpt_save(const char *dir, const struct ft_backend *be, const struct ft_param *ps,
			size_t np, const float *m, const float *v, const float *best,
			const struct ft_ckpt_state *st, struct ft_err *err)
{
	enum ft_rc rc = ft_mkdir_p(dir, err);
	if (rc)
		return rc;
	size_t nf = 0, nsets = best ? 4 : 3;
	for (size_t i = 0; i < np; i++)
		nf += ps[i].n;
	float *stage = NULL;
	if (!be->host_memory && !(stage = malloc((nsets * nf + 1) * sizeof(float))))
		return ft_failf(err, FT_ENOMEM, NULL,
				"out of memory for a host copy of the checkpoint (%zu floats)",
				nsets * nf);
	struct ft_st_writer *w = ft_st_writer_new();
	char best_s[40];
	if (isinf(st->best_eval_loss))
		ft_strlcpy(best_s, "inf", sizeof best_s);
	else
		snprintf(best_s, sizeof best_s, "%.17g", st->best_eval_loss);
	if ((rc = add_set(w, be, "param", ps, np, NULL, stage, err)) ||
	    (rc = add_set(w, be, "adam_m", ps, np, m, stage ? stage + nf : NULL, err)) ||
	    (rc = add_set(w, be, "adam_v", ps, np, v, stage ? stage + 2 * nf : NULL, err)) ||
	    (best &&
	     (rc = add_set(w, be, "best", ps, np, best, stage ? stage + 3 * nf : NULL, err))) ||
	    (rc = ft_st_writer_meta(w, "format", "ftplat-checkpoint", err)) ||
	    (rc = meta(w, "format_version", err, "%d", FT_TRAINER_FORMAT_VERSION)) ||
	    (rc = meta(w, "step", err, "%ld", st->step)) ||
	    (rc = meta(w, "seed", err, "%" PRIu64, st->seed)) ||
	    (rc = ft_st_writer_meta(w, "rng", "xoshiro256** + splitmix64 streams of seed", err)) ||
	    (rc = meta(w, "data_epoch", err, "%ld", st->data_epoch)) ||
	    (rc = meta(w, "data_micro_batch", err, "%ld", st->data_micro)) ||
	    (rc = ft_st_writer_meta(w, "method", method_name(st->method), err)) ||
	    (rc = meta(w, "lora_r", err, "%d", st->lora_r)) ||
	    (rc = meta(w, "lora_targets", err, "%u", st->lora_targets)) ||
	    (rc = meta(w, "lora_layers", err, "%" PRIu64, st->lora_layers)) ||
	    (rc = ft_st_writer_meta(w, "best_eval_loss", best_s, err)) ||
	    (rc = meta(w, "best_step", err, "%ld", st->best_step)) ||
	    (rc = meta(w, "bad_evals", err, "%d", st->bad_evals)) ||
	    (rc = meta(w, "tokens_seen", err, "%ld", st->tokens_seen)))
		goto free_writer;
	char path[4200];
	snprintf(path, sizeof path, "%s/" CKPT_FILE, dir);
	rc = ft_st_writer_write(w, path, err);
free_writer:
	ft_st_writer_free(w);
	free(stage);
	return rc;
}

static enum ft_rc meta_long(const struct ft_st_file *f, const char *path, const char *key,
			    long *out, struct ft_err *err)
{
	const char *s = ft_st_metadata(f, key);
	char *end;
	if (!s)
		return ft_failf(err, FT_EFORMAT, "bad_checkpoint", "%s: metadata \"%s\" is missing",
				path, key);
	errno = 0;
	long long x = strtoll(s, &end, 10);
	if (errno || *end || end == s)
		return ft_failf(err, FT_EFORMAT, "bad_checkpoint",
				"%s: metadata \"%s\" must be an integer (got \"%s\")", path, key,
				s);
	*out = (long)x;
	return FT_OK;
}

static enum ft_rc read_set(const struct ft_st_file *f, const struct ft_backend *be,
			   const char *path, const char *prefix, struct ft_param *ps, size_t np,
			   float *mem, struct ft_err *err)
{
	size_t off = 0;
	for (size_t i = 0; i < np; i++) {
		char name[200];
		snprintf(name, sizeof name, "%s/%s", prefix, ps[i].name);
		const struct ft_st_tensor *t = ft_st_find(f, name);
		if (!t || t->dtype != FT_DTYPE_F32 || t->nelem != ps[i].n)
			return ft_failf(
				err, FT_EFORMAT, "bad_checkpoint",
				"%s: tensor \"%s\" is missing or has the wrong size (is the "
				"checkpoint from this job?)",
				path, name);
		float *dst = mem ? mem + off : ps[i].data;
		float *h = ft_dev_map(be, dst, ps[i].n * sizeof(float), false);
		if (!h)
			return ft_failf(err, FT_ENOMEM, NULL, "%s: out of memory for \"%s\"", path,
					name);
		enum ft_rc rc = ft_st_to_f32(t, h, err);
		ft_dev_unmap(be, dst, h, ps[i].n * sizeof(float), rc == FT_OK);
		if (rc)
			return rc;
		off += ps[i].n;
	}
	return FT_OK;
}

enum ft_rc ft_ckpt_load(const char *dir, const struct ft_backend *be, struct ft_param *ps,
			size_t np, float *m, float *v, float *best, bool *has_best,
			const struct ft_ckpt_state *want, struct ft_ckpt_state *st,
			struct ft_err *err)
{
	char path[4200];
	snprintf(path, sizeof path, "%s/" CKPT_FILE, dir);
	struct ft_st_file *f = NULL;
	enum ft_rc rc = ft_st_open(path, &f, err);
	if (rc)
		return rc;
	const char *fmt = ft_st_metadata(f, "format"), *method = ft_st_metadata(f, "method");
	const char *seed = ft_st_metadata(f, "seed"), *bl = ft_st_metadata(f, "best_eval_loss");
	long version = 0, r = 0, targets = 0, bad = 0;
	memset(st, 0, sizeof(*st));
	if (!fmt || strcmp(fmt, "ftplat-checkpoint") != 0) {
		rc = ft_failf(err, FT_EFORMAT, "bad_checkpoint", "%s is not an ftplat checkpoint",
			      path);
		goto close_file;
	}
	if ((rc = meta_long(f, path, "format_version", &version, err)) ||
	    (rc = meta_long(f, path, "step", &st->step, err)) ||
	    (rc = meta_long(f, path, "lora_r", &r, err)) ||
	    (rc = meta_long(f, path, "lora_targets", &targets, err)) ||
	    (rc = meta_long(f, path, "best_step", &st->best_step, err)) ||
	    (rc = meta_long(f, path, "bad_evals", &bad, err)) ||
	    (rc = meta_long(f, path, "tokens_seen", &st->tokens_seen, err)))
		goto close_file;
	if (version != FT_TRAINER_FORMAT_VERSION) {
		rc = ft_failf(err, FT_EFORMAT, "bad_checkpoint",
			      "%s has format version %ld, this trainer reads %d", path, version,
			      FT_TRAINER_FORMAT_VERSION);
		goto close_file;
	}
	st->seed = seed ? strtoull(seed, NULL, 10) : 0;
	st->method = method_parse(method);
	st->lora_r = (int)r;
	st->lora_targets = (unsigned)targets;
	/* absent before layers_to_transform: every layer */
	const char *layers = ft_st_metadata(f, "lora_layers");
	st->lora_layers = layers ? strtoull(layers, NULL, 10) : 0;
	st->bad_evals = (int)bad;
	st->best_eval_loss = !bl || strcmp(bl, "inf") == 0 ? INFINITY : strtod(bl, NULL);
	if (st->seed != want->seed || st->method != want->method ||
	    (st->method != FT_METHOD_FULL &&
	     (st->lora_r != want->lora_r || st->lora_targets != want->lora_targets ||
	      st->lora_layers != want->lora_layers))) {
		rc = ft_failf(err, FT_ECONFLICT, "checkpoint_mismatch",
			      "%s was written by a different job (seed, method or adapter shape "
			      "differ)",
			      path);
		goto close_file;
	}
	if ((rc = read_set(f, be, path, "param", ps, np, NULL, err)) ||
	    (rc = read_set(f, be, path, "adam_m", ps, np, m, err)) ||
	    (rc = read_set(f, be, path, "adam_v", ps, np, v, err)))
		goto close_file;
	*has_best = false;
	if (best && np > 0) {
		char name[200];
		snprintf(name, sizeof name, "best/%s", ps[0].name);
		if (ft_st_find(f, name)) {
			rc = read_set(f, be, path, "best", ps, np, best, err);
			*has_best = rc == FT_OK;
		}
	}
close_file:
	ft_st_close(f);
	return rc;
}
