/*
 * worker.c - the worker loop.
 *
 * Threads: the inbox thread blocks on BRPOP ft:inbox:<id> (its own Redis
 * connection) and hands messages to the main thread through a queue and a
 * wake-up pipe. The main thread owns everything else: child processes,
 * their progress pipes, heartbeats, events and the spool.
 *
 * A job attempt lives here from its assignment until the scheduler has
 * acknowledged its last event: while it is here it is listed in the
 * heartbeat (so its lease is renewed) and its unacknowledged events are
 * re-sent every few seconds (so a Redis wipe loses nothing).
 *
 * The trainer contract: `ft-train train --config job.json --progress-fd 3
 * [--resume DIR]`; one JSON object per line on fd 3; a line with
 * "event": "checkpoint" and "path" names a finished checkpoint folder; exit
 * 0 = success with the outputs in output_dir, exit 2 = the user's input is
 * wrong (no retry), other = failure (retried); SIGTERM = write a checkpoint
 * and exit.
 */
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include "ft/metrics.h"
#include "ft/registry.h"
#include "ft/train.h"
#include "ft/events.h"
#include "ft/exports.h"
#include "ft/fs.h"
#include "ft/modelref.h"
#include "worker_int.h"

#define MAX_JOBS 64
/* A progress line longer than this is dropped with a warning (the trainer's
 * longest, a DPO step line, is under 1 KB; paths can make one longer). */
#define WK_MAX_LINE (16u << 20)
#define SPOOL_MAX 100000
#define RESEND_MS 5000

struct spooled {
	long seq;
	char *text;
	uint64_t sent_ms;
	bool on_stream; /* an XADD of it succeeded at least once */
};

struct job {
	char id[FT_ID_MAX];
	char team[FT_ID_MAX];
	char model[256];
	int attempt;
	pid_t pid;
	int fd;
	struct ft_buf line;
	bool line_dropped; /* the rest of an over-long line is skipped */
	char dir[PATH_MAX];
	long seq;
	struct spooled *spool;
	size_t nspool, capspool;
	bool cancel_req, drain_req, exited, final_sent;
	bool pause_req; /* drain_req set by the user's pause, not the worker's stop */
	bool interrupted, done; /* from the trainer's "interrupted" / "done" lines */
	bool store_failed; /* an output folder could not be stored */
	char output[65]; /* manifest of the last artifact */
	/* paths on this host, replaced by what they are in messages users read */
	char train_path[PATH_MAX], val_path[PATH_MAX], model_path[PATH_MAX];
	int status;
	long trained_tokens;
	uint64_t started_ms;
	enum ft_work work; /* a job, an export (ftexp- id) or an evaluation (fteval-) */
	/* an export: its format's row */
	const struct ft_export_format *export_fmt;
	json_t *subs; /* more [path, name] pairs for user_text (an evaluation's models) */
	json_t *done_line; /* the "done" line: final metrics, trainer version */
	json_t *metrics; /* the current step's metrics, for its checkpoint (keep_metrics) */
	/* cache entries this attempt reads (unpinned when it is forgotten) */
	struct pin {
		enum wk_cache_kind kind;
		char hex[65];
	} * pins;
	size_t npins;
};

struct inbox_q {
	pthread_mutex_t mu;
	char **msgs;
	size_t n, cap;
	int wake[2];
};

struct worker {
	const struct ft_worker_opts *o;
	struct ft_redis *redis;
	struct ft_store *store; /* borrowed from the caller */
	struct wk_cache *cache;
	struct job *jobs[MAX_JOBS];
	int njobs;
	int gpus;
	int64_t gpu_mem;
	char gpu_names[16][96];
	bool draining;
	struct inbox_q q;
	volatile int inbox_stop;
	uint64_t started_ms;
	/* for /metrics (atomics: read on the metrics thread) */
	uint64_t heartbeats, events_sent, events_resent;
	int jobs_now;
};

/* ---- events ---------------------------------------------------------- */

static void emit(struct worker *w, struct job *j, const char *kind, json_t *data_new)
{
	char evid[FT_ID_MAX];
	struct ft_err err;
	ft_id_new(FT_ID_EVENT, evid);
	json_t *ev = json_pack("{s:s, s:s, s:i, s:I, s:s, s:s, s:o}", "id", evid, "job", j->id,
			       "attempt", j->attempt, "seq", (json_int_t)++j->seq, "worker",
			       w->o->id, "kind", kind, "data", data_new ? data_new : json_object());
	char *text = json_dumps(ev, JSON_COMPACT);
	json_decref(ev);
	if (j->nspool == j->capspool) {
		j->capspool = j->capspool ? j->capspool * 2 : 64;
		j->spool = realloc(j->spool, j->capspool * sizeof(*j->spool));
		FT_ASSERT(j->spool);
	}
	if (j->nspool >= SPOOL_MAX) { /* bounded: drop the oldest progress line */
		free(j->spool[0].text);
		memmove(j->spool, j->spool + 1, (j->nspool - 1) * sizeof(*j->spool));
		j->nspool--;
		ft_logf(FT_LOG_WARN, NULL, j->id, "event spool full: dropped the oldest event");
	}
	j->spool[j->nspool].seq = j->seq;
	j->spool[j->nspool].text = text;
	j->spool[j->nspool].sent_ms = ft_time_mono_ms();
	j->spool[j->nspool].on_stream = false;
	j->nspool++;
	ft_err_clear(&err);
	redisReply *r = ft_redis_cmd(w->redis, FT_REDIS_RETRY, &err,
				     "XADD %s MAXLEN ~ 1000000 * e %s", FT_WIRE_EVENTS, text);
	if (r) {
		j->spool[j->nspool - 1].on_stream = true;
		freeReplyObject(r);
	} else
		ft_logf(FT_LOG_WARN, NULL, j->id, "event not sent yet (will retry): %s", err.msg);
}

/* Drop acknowledged events, re-send stale ones. */
static void spool_check(struct worker *w, struct job *j)
{
	struct ft_err err;
	if (!j->nspool)
		return;
	size_t n = FT_MIN(j->nspool, (size_t)1000);
	const char **argv = ft_xcalloc(n + 2, sizeof(char *));
	char key[160], (*nums)[24] = ft_xcalloc(n, 24);
	snprintf(key, sizeof(key), "%s%s:%d", FT_WIRE_EVACK_KEY, j->id, j->attempt);
	argv[0] = "SMISMEMBER";
	argv[1] = key;
	for (size_t i = 0; i < n; i++) {
		snprintf(nums[i], 24, "%ld", j->spool[i].seq);
		argv[2 + i] = nums[i];
	}
	ft_err_clear(&err);
	redisReply *r = ft_redis_cmdargv(w->redis, FT_REDIS_RETRY, &err, (int)n + 2, argv, NULL);
	if (r && r->type == REDIS_REPLY_ARRAY && r->elements == n) {
		size_t keep = 0;
		for (size_t i = 0; i < j->nspool; i++) {
			if (i < n && r->element[i]->integer == 1) {
				free(j->spool[i].text);
				continue;
			}
			j->spool[keep++] = j->spool[i];
		}
		j->nspool = keep;
	}
	if (r)
		freeReplyObject(r);
	free(argv);
	free(nums);
	uint64_t now = ft_time_mono_ms();
	for (size_t i = 0; i < j->nspool && i < 1000; i++) {
		if (now - j->spool[i].sent_ms < RESEND_MS)
			continue;
		ft_err_clear(&err);
		r = ft_redis_cmd(w->redis, FT_REDIS_RETRY, &err, "XADD %s MAXLEN ~ 1000000 * e %s",
				 FT_WIRE_EVENTS, j->spool[i].text);
		if (!r)
			break;
		freeReplyObject(r);
		__atomic_add_fetch(&w->events_resent, 1, __ATOMIC_RELAXED);
		j->spool[i].sent_ms = now;
		j->spool[i].on_stream = true;
	}
}

/* A draining worker whose jobs have all ended waited drain_ack_ms for the
 * scheduler's acknowledgements (it may be stopping too: a whole host going
 * down). Events already on the stream are read when a scheduler is back; any
 * that never reached Redis get one last try, and the log names what is left. */
static void drain_give_up(struct worker *w)
{
	struct ft_err err;
	for (int i = 0; i < w->njobs; i++) {
		struct job *j = w->jobs[i];
		size_t lost = 0;
		for (size_t k = 0; k < j->nspool; k++) {
			if (j->spool[k].on_stream)
				continue;
			ft_err_clear(&err);
			redisReply *r =
				ft_redis_cmd(w->redis, 0, &err, "XADD %s MAXLEN ~ 1000000 * e %s",
					     FT_WIRE_EVENTS, j->spool[k].text);
			if (r) {
				freeReplyObject(r);
				j->spool[k].on_stream = true;
			} else {
				lost++;
			}
		}
		if (!j->nspool)
			continue;
		if (lost)
			ft_logf(FT_LOG_WARN, NULL, j->id,
				"exiting with %zu event(s) of attempt %d unacknowledged, %zu of "
				"them not on the Redis stream (lost: the job's lease decides it)",
				j->nspool, j->attempt, lost);
		else
			ft_logf(FT_LOG_WARN, NULL, j->id,
				"exiting with %zu event(s) of attempt %d unacknowledged after %d "
				"ms; "
				"they are on the Redis stream for the scheduler",
				j->nspool, j->attempt, w->o->drain_ack_ms);
	}
}

/* ---- jobs ------------------------------------------------------------- */

static void user_text(const struct worker *w, const struct job *j, const char *in, char *out,
		      size_t n);

static void job_free(struct worker *w, struct job *j)
{
	for (size_t i = 0; i < j->npins; i++)
		wk_cache_unpin(w->cache, j->pins[i].kind, j->pins[i].hex);
	free(j->pins);
	json_decref(j->subs);
	json_decref(j->done_line);
	json_decref(j->metrics);
	if (j->fd >= 0)
		close(j->fd);
	ft_buf_release(&j->line);
	for (size_t i = 0; i < j->nspool; i++)
		free(j->spool[i].text);
	free(j->spool);
	free(j);
}

static struct job *find_job(struct worker *w, const char *id, int attempt)
{
	for (int i = 0; i < w->njobs; i++)
		if (strcmp(w->jobs[i]->id, id) == 0 &&
		    (attempt < 0 || w->jobs[i]->attempt == attempt))
			return w->jobs[i];
	return NULL;
}

static int active_jobs(struct worker *w)
{
	int n = 0;
	for (int i = 0; i < w->njobs; i++)
		n += !w->jobs[i]->final_sent;
	return n;
}

/* A job input from the store: its path in this host's cache (fetched and
 * checked there first when absent), held until the attempt is forgotten. */
static enum ft_rc job_input(struct worker *w, struct job *j, enum wk_cache_kind kind,
			    const char *hex, char *path, size_t n, struct ft_err *err)
{
	if (wk_cache_get(w->cache, kind, hex, path, n, err))
		return err->rc;
	j->pins = realloc(j->pins, (j->npins + 1) * sizeof(*j->pins));
	FT_ASSERT(j->pins);
	j->pins[j->npins].kind = kind;
	ft_strlcpy(j->pins[j->npins++].hex, hex, sizeof(j->pins[0].hex));
	return FT_OK;
}

static void fail_early(struct worker *w, struct job *j, const char *msg, bool user)
{
	emit(w, j, ft_ev_kind(FT_EV_FAILED),
	     json_pack("{s:s, s:b, s:i}", "message", msg, "user_error", user, "exit_code", -1));
	j->final_sent = true;
	j->exited = true;
}

/* Translate the assignment into the trainer's job file (docs/trainer.md):
 *   model            <- config.model_path
 *   train_file       <- the training file's blob, in this host's cache
 *   validation_file  <- the validation file's blob, when there is one
 *   output_dir       <- <job folder>/out
 *   method           <- "full" when adapter = none, else the adapter ("lora", "qlora")
 *   objective        <- "dpo" for method dpo (supervised is the trainer's default)
 *   seed, lora, hyperparameters <- as the API stored them (lora moved out of
 *                                   hyperparameters, where the API keeps it) */
/* The job's ft-train file: the assignment's config through the trainer's
 * own mapping (ft/train.h ft_train_job_from_spec, which ft-api also parses
 * when it accepts the job), with this worker's paths. */
static json_t *trainer_config(struct worker *w, json_t *m, struct job *j, struct ft_err *err)
{
	json_t *cfg = json_object_get(m, "config"), *in = json_object_get(m, "inputs");
	const char *train = json_string_value(json_object_get(in, "training_file"));
	const char *val = json_string_value(json_object_get(in, "validation_file"));
	const char *model = json_string_value(json_object_get(cfg, "model_path"));
	char tpath[PATH_MAX], vpath[PATH_MAX], out[PATH_MAX + 16];
	if (!train || strlen(train) != 64 || !model || !*model) {
		ft_failf(err, FT_EINVAL, NULL, "assignment lacks a training file or a model path");
		return NULL;
	}
	if (job_input(w, j, WK_CACHE_FILE, train, tpath, sizeof(tpath), err) ||
	    (val && job_input(w, j, WK_CACHE_FILE, val, vpath, sizeof(vpath), err)))
		return NULL;
	snprintf(out, sizeof(out), "%s/out", j->dir);
	ft_strlcpy(j->train_path, tpath, sizeof(j->train_path));
	ft_strlcpy(j->val_path, val ? vpath : "", sizeof(j->val_path));
	ft_strlcpy(j->model_path, model, sizeof(j->model_path));
	/* continued training from a model version: its adapter, from the cache */
	char init[PATH_MAX + 16];
	const char *init_m = json_string_value(json_object_get(in, "init_adapter"));
	if (init_m && job_input(w, j, WK_CACHE_DIR, init_m, init, sizeof(init), err))
		return NULL;
	struct ft_job_spec spec = {
		.model_dir = model,
		.train_file = tpath,
		.validation_file = val ? vpath : NULL,
		.output_dir = out,
		.adapter = json_string_value(json_object_get(cfg, "adapter")),
		.method = json_string_value(json_object_get(cfg, "method")),
		.seed = json_object_get(cfg, "seed"),
		.hyperparameters = json_object_get(cfg, "hyperparameters"),
		.save_steps = w->o->checkpoint_steps,
		.eval_on_start = true,
		.init_adapter = init_m ? init : NULL,
	};
	return ft_train_job_from_spec(&spec, err);
}

/* The ft-train command line of a job: train --config job.json (--resume);
 * argv's strings live in j or in the static names. */
struct child_argv {
	char *v[64];
	int n;
	char buf[8192];
	size_t used;
};

static void argv_add(struct child_argv *a, const char *s)
{
	size_t n = strlen(s) + 1;
	if (a->n + 1 >= (int)FT_ARRAY_LEN(a->v) || a->used + n > sizeof(a->buf))
		return; /* cannot happen with our tables; the trainer says what is missing */
	memcpy(a->buf + a->used, s, n);
	a->v[a->n++] = a->buf + a->used;
	a->v[a->n] = NULL;
	a->used += n;
}

/* A training job: its job file (and the checkpoint to resume from). */
static enum ft_rc train_argv(struct worker *w, json_t *m, struct job *j, struct child_argv *a,
			     struct ft_err *err)
{
	char cfgpath[PATH_MAX + 16], resume[PATH_MAX + 16];
	json_t *cfg = trainer_config(w, m, j, err);
	snprintf(cfgpath, sizeof(cfgpath), "%s/job.json", j->dir);
	if (!cfg || json_dump_file(cfg, cfgpath, JSON_INDENT(2)) != 0) {
		json_decref(cfg);
		if (!ft_err_is_set(err))
			ft_failf(err, FT_EIO, NULL, "cannot write job.json");
		return err->rc;
	}
	json_decref(cfg);
	argv_add(a, "train");
	argv_add(a, "--config");
	argv_add(a, cfgpath);
	argv_add(a, "--progress-fd");
	argv_add(a, "3");
	const char *ck =
		json_string_value(json_object_get(json_object_get(m, "resume"), "checkpoint"));
	if (ck) {
		snprintf(resume, sizeof(resume), "%s/resume", j->dir);
		if (wk_store_get_dir(w->store, ck, resume, err))
			return err->rc;
		argv_add(a, "--resume");
		argv_add(a, resume);
	}
	return FT_OK;
}

/* An export (ft/exports.h): the version's folders from the store, then the
 * format's ft-train command line with its options. */
static enum ft_rc export_argv(struct worker *w, json_t *m, struct job *j, struct child_argv *a,
			      struct ft_err *err)
{
	json_t *cfg = json_object_get(m, "config"), *in = json_object_get(m, "inputs");
	const char *fmt = json_string_value(json_object_get(cfg, "format"));
	const char *base = json_string_value(json_object_get(cfg, "model_path"));
	const char *model_m = json_string_value(json_object_get(in, "model"));
	const char *adapter_m = json_string_value(json_object_get(in, "adapter"));
	json_t *options = json_object_get(cfg, "options");
	char model[PATH_MAX + 16], adapter[PATH_MAX + 16], out[PATH_MAX + 16], v[64];
	j->export_fmt = ft_export_format_find(fmt);
	if (!j->export_fmt)
		return ft_failf(err, FT_EINVAL, NULL,
				"this worker cannot make exports in format \"%s\"", fmt ? fmt : "");
	if (!model_m && (!base || !*base))
		return ft_failf(err, FT_EINVAL, NULL, "assignment lacks a model");
	ft_strlcpy(model, base ? base : "", sizeof(model));
	if (model_m && job_input(w, j, WK_CACHE_DIR, model_m, model, sizeof(model), err))
		return err->rc; /* a whole fine-tuned model */
	ft_strlcpy(j->model_path, model, sizeof(j->model_path));
	for (const char *const *p = j->export_fmt->argv; *p; p++)
		argv_add(a, *p);
	argv_add(a, "--model");
	argv_add(a, model);
	if (adapter_m) {
		if (job_input(w, j, WK_CACHE_DIR, adapter_m, adapter, sizeof(adapter), err))
			return err->rc;
		argv_add(a, "--adapter");
		argv_add(a, adapter);
	}
	snprintf(out, sizeof(out), "%s/out", j->dir);
	argv_add(a, "--out");
	argv_add(a, out);
	argv_add(a, "--progress-fd");
	argv_add(a, "3");
	for (size_t i = 0; i < FT_EXPORT_MAX_OPTS && j->export_fmt->opts[i].name; i++)
		if (ft_export_option_text(&j->export_fmt->opts[i], options, v, sizeof(v))) {
			argv_add(a, j->export_fmt->opts[i].flag);
			argv_add(a, v);
		}
	return FT_OK;
}

/* An evaluation (ft/evaluate.h): the file's blob, each model's folders
 * (a base model's folder, or a version's from the store: an adapter on its
 * base, or a whole model), the spec file, then ft-train eval. */
static enum ft_rc eval_argv(struct worker *w, json_t *m, struct job *j, struct child_argv *a,
			    struct ft_err *err)
{
	json_t *cfg = json_object_get(m, "config"), *in = json_object_get(m, "inputs");
	json_t *cm = json_object_get(cfg, "models"), *im = json_object_get(in, "models");
	const char *file = json_string_value(json_object_get(in, "file"));
	char path[PATH_MAX + 32], spec_path[PATH_MAX + 16];
	if (!file || strlen(file) != 64 || !json_is_array(cm) || !json_array_size(cm) ||
	    json_array_size(cm) != json_array_size(im))
		return ft_failf(err, FT_EINVAL, NULL,
				"assignment lacks the evaluation file or its models");
	if (job_input(w, j, WK_CACHE_FILE, file, j->train_path, sizeof(j->train_path), err))
		return err->rc;
	json_t *models = json_array();
	json_t *spec = json_pack("{s:s, s:O, s:o}", "data", j->train_path, "options",
				 json_object_get(cfg, "options"), "models", models);
	j->subs = json_array();
	enum ft_rc rc = FT_OK;
	for (size_t i = 0; i < json_array_size(cm) && !rc; i++) {
		json_t *c = json_array_get(cm, i), *x = json_array_get(im, i);
		const char *name = json_string_value(json_object_get(c, "name"));
		const char *base = json_string_value(json_object_get(c, "model_path"));
		const char *whole = json_string_value(json_object_get(x, "model"));
		const char *adapter = json_string_value(json_object_get(x, "adapter"));
		char model_dir[PATH_MAX + 32] = "", adapter_dir[PATH_MAX + 32] = "";
		ft_strlcpy(model_dir, base ? base : "", sizeof(model_dir));
		if (whole) { /* a whole fine-tuned model */
			rc = job_input(w, j, WK_CACHE_DIR, whole, model_dir, sizeof(model_dir),
				       err);
		} else if (!*model_dir) {
			rc = ft_failf(err, FT_EINVAL, NULL, "assignment lacks a model path");
		}
		if (!rc && adapter) {
			rc = job_input(w, j, WK_CACHE_DIR, adapter, adapter_dir,
				       sizeof(adapter_dir), err);
		}
		json_array_append_new(models, json_pack("{s:s, s:s, s:s?}", "name",
							name ? name : "model", "model", model_dir,
							"adapter", adapter ? adapter_dir : NULL));
		if (!whole && base && json_is_string(json_object_get(c, "model")))
			json_array_append_new(
				j->subs, json_pack("[s, s]", base,
						   json_string_value(json_object_get(c, "model"))));
	}
	snprintf(spec_path, sizeof(spec_path), "%s/eval.json", j->dir);
	if (!rc && json_dump_file(spec, spec_path, JSON_INDENT(2)) != 0)
		rc = ft_failf(err, FT_EIO, NULL, "cannot write eval.json");
	json_decref(spec);
	if (rc)
		return rc;
	snprintf(path, sizeof(path), "%s", spec_path);
	argv_add(a, "eval");
	argv_add(a, "--config");
	argv_add(a, path);
	argv_add(a, "--progress-fd");
	argv_add(a, "3");
	return FT_OK;
}

/* The kinds of work (enum ft_work): the assignment's "kind", the id's
 * prefix, and the ft-train command line. */
static const struct {
	const char *kind; /* NULL: a job's assignment has no "kind" */
	const char *prefix;
	enum ft_rc (*argv)(struct worker *, json_t *, struct job *, struct child_argv *,
			   struct ft_err *);
} works[FT_WORK_COUNT] = {
	[FT_WORK_JOB] = { NULL, FT_ID_JOB, train_argv },
	[FT_WORK_EXPORT] = { "export", FT_ID_EXPORT, export_argv },
	[FT_WORK_EVAL] = { "eval", FT_ID_EVAL, eval_argv },
};

static void start_job(struct worker *w, json_t *m)
{
	const char *id = json_string_value(json_object_get(m, "job"));
	const char *kind = json_string_value(json_object_get(m, "kind"));
	int attempt = (int)json_integer_value(json_object_get(m, "attempt"));
	struct ft_err err;
	int pfd[2] = { -1, -1 };
	int work = FT_WORK_COUNT;
	for (int k = 0; k < FT_WORK_COUNT && work == FT_WORK_COUNT; k++)
		if (kind ? works[k].kind && strcmp(works[k].kind, kind) == 0 : !works[k].kind)
			work = k;

	if (!id || attempt < 1 || work == FT_WORK_COUNT || !ft_id_valid(works[work].prefix, id)) {
		ft_warn("ignoring a malformed assignment");
		return;
	}
	if (find_job(w, id, attempt))
		return; /* duplicate delivery */
	if (w->njobs == MAX_JOBS) {
		ft_logf(FT_LOG_ERROR, NULL, id,
			"too many jobs on this worker; the lease will requeue it");
		return;
	}
	struct job *j = ft_xcalloc(1, sizeof(*j));
	ft_strlcpy(j->id, id, sizeof(j->id));
	j->work = (enum ft_work)work;
	j->attempt = attempt;
	j->fd = -1;
	j->pid = -1;
	j->started_ms = ft_time_mono_ms();
	ft_buf_init(&j->line, WK_MAX_LINE);
	const char *team = json_string_value(json_object_get(m, "team"));
	ft_strlcpy(j->team, team ? team : "", sizeof(j->team));
	const char *model =
		json_string_value(json_object_get(json_object_get(m, "config"), "model"));
	ft_strlcpy(j->model, model ? model : "model", sizeof(j->model));
	snprintf(j->dir, sizeof(j->dir), "%s/%s-%d", w->o->work_dir, id, attempt);
	w->jobs[w->njobs++] = j;

	ft_err_clear(&err);
	if (ft_mkdir_p(j->dir, &err)) {
		fail_early(w, j, "worker could not create its job folder", false);
		return;
	}
	char logpath[PATH_MAX + 16];
	snprintf(logpath, sizeof(logpath), "%s/trainer.log", j->dir);
	struct child_argv *av = ft_xcalloc(1, sizeof(*av));
	argv_add(av, w->o->trainer);
	if (works[work].argv(w, m, j, av, &err)) {
		char msg[600];
		user_text(w, j, err.msg[0] ? err.msg : "cannot prepare the job", msg, sizeof(msg));
		free(av);
		/* a job file the trainer's mapping refuses is the job's own fault; a
		 * store that fails is this worker's */
		fail_early(w, j, msg, err.rc == FT_EINVAL);
		return;
	}
	if (pipe(pfd) != 0) {
		free(av);
		fail_early(w, j, "pipe failed", false);
		return;
	}
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid == 0) {
		/* A trainer must not outlive its worker: once the worker is gone its
		 * lease runs out and the job runs elsewhere, from the last checkpoint. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(137);
		int logfd = open(logpath, O_WRONLY | O_CREAT | O_APPEND, 0644);
		if (logfd >= 0) {
			dup2(logfd, 1);
			dup2(logfd, 2);
		}
		dup2(pfd[1], 3);
		for (int fd = 4; fd < 1024; fd++)
			close(fd);
		setpgid(0, 0);
		signal(SIGPIPE, SIG_DFL);
		execv(av->v[0], av->v);
		fprintf(stderr, "ft-worker: cannot run %s: %s\n", w->o->trainer, strerror(errno));
		_exit(127);
	}
	free(av);
	close(pfd[1]);
	if (pid < 0) {
		close(pfd[0]);
		fail_early(w, j, "fork failed", false);
		return;
	}
	fcntl(pfd[0], F_SETFL, O_NONBLOCK);
	fcntl(pfd[0], F_SETFD, FD_CLOEXEC);
	j->pid = pid;
	j->fd = pfd[0];
	emit(w, j, ft_ev_kind(FT_EV_STARTED), json_pack("{s:i}", "pid", (int)pid));
	ft_logf(FT_LOG_INFO, NULL, id, "attempt %d started (pid %d)%s", attempt, (int)pid,
		json_is_string(json_object_get(json_object_get(m, "resume"), "checkpoint"))
			? " from a checkpoint"
			: "");
}

/* A checkpoint or artifact line: store its folder, relay its manifest and
 * its files (the scheduler lists them in artifact_files). An output that
 * cannot be stored fails the attempt (it is retried): an export or a job
 * never succeeds without its output in the store. */
static void relay_stored(struct worker *w, struct job *j, const struct ft_line_def *d, json_t *v)
{
	const char *path = json_string_value(json_object_get(v, "path"));
	char hex[65];
	uint64_t bytes;
	json_t *files = NULL;
	struct ft_err err;
	ft_err_clear(&err);
	if (!path || wk_store_put_dir(w->store, path, hex, &bytes, &files, &err)) {
		ft_logf(FT_LOG_WARN, NULL, j->id, "%s not stored: %s", d->type,
			path ? err.msg : "no path");
		if (d != &ft_lines[FT_LINE_CHECKPOINT])
			j->store_failed = true;
		return;
	}
	if (d == &ft_lines[FT_LINE_CHECKPOINT]) {
		json_t *at = json_object_get(v, "step");
		json_t *m = j->metrics && json_equal(json_object_get(j->metrics, "step"), at)
				    ? json_incref(j->metrics)
				    : json_object();
		emit(w, j, d->kind,
		     json_pack("{s:O, s:s, s:I, s:o, s:o}", "step", at, "manifest", hex, "bytes",
			       (json_int_t)bytes, "files", files, "metrics", m));
		return;
	}
	/* artifacts.kind: an export's is its format's; a job's output is its
	 * adapter, or a whole model ("model" lines) */
	const char *kind = json_string_value(json_object_get(v, "kind"));
	const char *akind = j->export_fmt			 ? j->export_fmt->artifact_kind
			    : kind && strcmp(kind, "model") == 0 ? "merged"
								 : "adapter";
	emit(w, j, d->kind,
	     json_pack("{s:s, s:s, s:I, s:o}", "kind", akind, "manifest", hex, "bytes",
		       (json_int_t)bytes, "files", files));
	ft_strlcpy(j->output, hex, sizeof(j->output));
}

/* The metrics a checkpoint is stored with: the train_loss (and DPO's
 * rewards/, logps/) of the last step line, the eval_* of the last eval line
 * of the same step; its "step". */
static void keep_metrics(struct job *j, const struct ft_line_def *d, json_t *v)
{
	static const char *const step_keys[] = { "train_loss", "rewards/", "logps/", NULL };
	static const char *const eval_keys[] = { "eval_", NULL };
	bool step = d == &ft_lines[FT_LINE_STEP], eval = d == &ft_lines[FT_LINE_EVAL];
	if (!step && !eval)
		return;
	json_t *at = json_object_get(v, "step");
	if (!j->metrics || !json_equal(json_object_get(j->metrics, "step"), at)) {
		json_decref(j->metrics);
		j->metrics = json_pack("{s:O}", "step", at ? at : json_null());
	}
	const char *k;
	json_t *x;
	json_object_foreach(v, k, x)
	{
		for (const char *const *p = step ? step_keys : eval_keys; *p; p++)
			if (strncmp(k, *p, strlen(*p)) == 0)
				json_object_set(j->metrics, k, x);
	}
}

/* One line from the trainer, relayed as ft/events.h's first table says. */
static void on_line(struct worker *w, struct job *j, const char *line)
{
	json_t *v = json_loads(line, 0, NULL);
	const struct ft_line_def *d =
		json_is_object(v) ? ft_line_find(json_string_value(json_object_get(v, "type")))
				  : NULL;
	if (!d) {
		json_decref(v);
		return; /* the trainer only writes its lines here; ignore noise */
	}
	switch (d->relay) {
	case FT_RELAY_DATA:
		keep_metrics(j, d, v);
		emit(w, j, d->kind, json_incref(v));
		break;
	case FT_RELAY_STORE: relay_stored(w, j, d, v); break;
	case FT_RELAY_LOG:
		emit(w, j, d->kind, json_pack("{s:s, s:O}", "message", d->message, "detail", v));
		break;
	case FT_RELAY_REMEMBER:
		if (d == &ft_lines[FT_LINE_INTERRUPTED]) {
			j->interrupted = true;
		} else {
			j->done = true;
			if (json_is_integer(json_object_get(v, "tokens_seen")))
				j->trained_tokens =
					(long)json_integer_value(json_object_get(v, "tokens_seen"));
			json_decref(j->done_line);
			j->done_line = json_incref(v);
		}
		break;
	}
	json_decref(v);
}

static void read_progress(struct worker *w, struct job *j)
{
	char buf[65536];
	for (;;) {
		ssize_t n = read(j->fd, buf, sizeof(buf));
		if (n == 0) {
			close(j->fd);
			j->fd = -1;
			return;
		}
		if (n < 0)
			return; /* EAGAIN */
		for (ssize_t i = 0; i < n; i++) {
			if (buf[i] == '\n') {
				if (!j->line_dropped)
					on_line(w, j, ft_buf_str(&j->line));
				j->line_dropped = false;
				ft_buf_reset(&j->line);
			} else if (!j->line_dropped && ft_buf_addch(&j->line, buf[i])) {
				ft_logf(FT_LOG_WARN, NULL, j->id,
					"a progress line longer than %u bytes was dropped",
					WK_MAX_LINE);
				j->line_dropped = true;
				ft_buf_reset(&j->line);
			}
		}
	}
}

/* A trainer message as its user may read it: this host's paths (the
 * cached training file, the model folder, the job's folder, the cache)
 * become what they are ("training file", the model's name, "the job's
 * folder", "the worker's cache"); a user never sees where the server keeps
 * things. */
static void user_text(const struct worker *w, const struct job *j, const char *in, char *out,
		      size_t n)
{
	struct {
		const char *path, *name;
	} subs[5 + 8] = {
		{ j->train_path, j->work == FT_WORK_EVAL ? "evaluation file" : "training file" },
		{ j->val_path, "validation file" },
		{ j->model_path, j->model },
		{ j->dir, "the job's folder" },
		{ w->o->cache_dir, "the worker's cache" },
	};
	size_t n_subs = 5;
	for (size_t i = 0; i < json_array_size(j->subs) && n_subs < FT_ARRAY_LEN(subs); i++) {
		subs[n_subs].path =
			json_string_value(json_array_get(json_array_get(j->subs, i), 0));
		subs[n_subs++].name =
			json_string_value(json_array_get(json_array_get(j->subs, i), 1));
	}
	size_t o = 0;
	while (*in && o + 1 < n) {
		size_t k, len = 0;
		for (k = 0; k < n_subs; k++) {
			len = strlen(subs[k].path);
			if (len && strncmp(in, subs[k].path, len) == 0)
				break;
		}
		if (k == n_subs) {
			out[o++] = *in++;
			continue;
		}
		for (const char *s = subs[k].name; *s && o + 1 < n;)
			out[o++] = *s++;
		in += len;
	}
	out[o] = '\0';
}

/* Last non-empty line of the trainer's log, for failure messages. */
static void last_log_line(struct job *j, char *out, size_t n)
{
	char path[PATH_MAX + 16], buf[4096];
	snprintf(path, sizeof(path), "%s/trainer.log", j->dir);
	out[0] = '\0';
	FILE *f = fopen(path, "r");
	if (!f)
		return;
	while (fgets(buf, sizeof(buf), f)) {
		size_t l = strlen(buf);
		while (l && (buf[l - 1] == '\n' || buf[l - 1] == '\r'))
			buf[--l] = '\0';
		if (l)
			ft_strlcpy(out, buf, n);
	}
	fclose(f);
}

/* The trainer exited: report how the attempt ended.
 *   cancel asked + exit 0 ("interrupted")  -> cancelled
 *   drain or pause + exit 0                -> handback (checkpoint stored)
 *   exit 0 with "done"                     -> succeeded
 *   otherwise                              -> failed (the scheduler retries unless
 *                                             attempts are used up or it is a user error)
 * A user error is exit status 3: the job's own input (job file, data, model) is wrong. */
static void finish_job(struct worker *w, struct job *j)
{
	int code = WIFEXITED(j->status) ? WEXITSTATUS(j->status) : 128 + WTERMSIG(j->status);
	char msg[600];
	/* an export has no checkpoint: stopped by a cancel or a drain, it simply
	 * ends, and a drained one runs again elsewhere from the start */
	bool stopped = code == 0 || j->interrupted || j->work != FT_WORK_JOB;
	if (j->cancel_req && stopped) {
		emit(w, j, ft_ev_kind(FT_EV_CANCELLED), json_pack("{s:i}", "exit_code", code));
	} else if (j->drain_req && stopped) {
		emit(w, j, ft_ev_kind(FT_EV_HANDBACK),
		     json_pack("{s:s}", "reason",
			       j->pause_req ? "paused by the user" : "worker draining"));
	} else if (code == 0 && j->done && !j->store_failed &&
		   (j->output[0] || j->work == FT_WORK_EVAL)) {
		/* an evaluation stores nothing: its results went as "result" lines */
		json_t *data =
			j->output[0] ? json_pack("{s:s}", "output", j->output) : json_object();
		json_t *tv = json_object_get(j->done_line, "trainer_version");
		if (json_is_string(tv))
			json_object_set(data, "trainer_version", tv);
		if (j->work == FT_WORK_JOB) {
			char model[512];
			ft_model_ref_ft_name(j->model, j->id, model, sizeof(model));
			json_object_set_new(data, "fine_tuned_model", json_string(model));
			json_object_set_new(data, "trained_tokens",
					    json_integer((json_int_t)j->trained_tokens));
			json_t *metrics = json_object_get(j->done_line, "metrics");
			json_t *hp = json_object_get(j->done_line, "hyperparameters");
			if (json_is_object(metrics))
				json_object_set(data, "metrics", metrics);
			if (json_is_object(hp))
				json_object_set(data, "hyperparameters", hp);
		}
		emit(w, j, ft_ev_kind(FT_EV_SUCCEEDED), data);
	} else if (code == 0 && j->done) {
		emit(w, j, ft_ev_kind(FT_EV_FAILED),
		     json_pack("{s:s, s:b, s:i}", "message",
			       "the worker could not store the output in the artifact store",
			       "user_error", false, "exit_code", code));
	} else {
		char raw[512], last[512];
		last_log_line(j, raw, sizeof(raw));
		user_text(w, j, raw, last, sizeof(last));
		if (code == 0)
			snprintf(msg, sizeof(msg), "trainer stopped before finishing%s%s",
				 last[0] ? ": " : "", last);
		else
			snprintf(msg, sizeof(msg), "trainer exited with %d%s%s", code,
				 last[0] ? ": " : "", last);
		emit(w, j, ft_ev_kind(FT_EV_FAILED),
		     json_pack("{s:s, s:b, s:i}", "message", msg, "user_error", code == 3,
			       "exit_code", code));
	}
	j->final_sent = true;
	ft_logf(FT_LOG_INFO, NULL, j->id, "attempt %d ended (exit %d)", j->attempt, code);
}

/* ---- inbox thread ------------------------------------------------------ */

static void *inbox_thread(void *arg)
{
	struct worker *w = arg;
	struct ft_err err;
	struct ft_redis *r = NULL;
	while (!w->inbox_stop) {
		ft_err_clear(&err);
		if (!r && !(r = ft_redis_new(w->o->redis_url, 3000, &err))) {
			ft_sleep_ms(500);
			continue;
		}
		redisReply *rep = ft_redis_cmd(r, FT_REDIS_RETRY, &err, "BRPOP %s%s 1",
					       FT_WIRE_INBOX_KEY, w->o->id);
		if (!rep) {
			ft_sleep_ms(200);
			continue;
		}
		if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 2) {
			pthread_mutex_lock(&w->q.mu);
			if (w->q.n == w->q.cap) {
				w->q.cap = w->q.cap ? w->q.cap * 2 : 16;
				w->q.msgs = realloc(w->q.msgs, w->q.cap * sizeof(char *));
				FT_ASSERT(w->q.msgs);
			}
			w->q.msgs[w->q.n++] = ft_xstrdup(rep->element[1]->str);
			pthread_mutex_unlock(&w->q.mu);
			(void)!write(w->q.wake[1], "x", 1);
		}
		freeReplyObject(rep);
	}
	ft_redis_free(r);
	return NULL;
}

static void handle_inbox(struct worker *w)
{
	char **msgs;
	size_t n;
	pthread_mutex_lock(&w->q.mu);
	msgs = w->q.msgs;
	n = w->q.n;
	w->q.msgs = NULL;
	w->q.n = w->q.cap = 0;
	pthread_mutex_unlock(&w->q.mu);
	for (size_t i = 0; i < n; i++) {
		json_t *m = json_loads(msgs[i], 0, NULL);
		const char *type = json_string_value(json_object_get(m, "type"));
		if (type && strcmp(type, "assign") == 0) {
			if (w->draining) /* not ours to take now: the lease requeues it */
				ft_warn("draining: not taking %s",
					json_string_value(json_object_get(m, "job")));
			else
				start_job(w, m);
		} else if (type && (strcmp(type, "cancel") == 0 || strcmp(type, "pause") == 0)) {
			/* pause: the trainer checkpoints and exits as in a drain, and
			 * the job is handed back (the scheduler pauses it) */
			bool pause = type[0] == 'p';
			const char *id = json_string_value(json_object_get(m, "job"));
			int att = (int)json_integer_value(json_object_get(m, "attempt"));
			struct job *j = id ? find_job(w, id, att) : NULL;
			if (j && !j->exited && j->pid > 0 && !j->cancel_req && !j->pause_req) {
				if (pause)
					j->drain_req = j->pause_req = true;
				else
					j->cancel_req = true;
				kill(j->pid, SIGTERM);
				ft_logf(FT_LOG_INFO, NULL, j->id, "%s: sent SIGTERM to the trainer",
					type);
			} else if (j && !j->exited && !pause && j->pause_req && !j->cancel_req) {
				/* cancelled while pausing: the trainer is already stopping;
				 * its exit ends the job as cancelled (from cancelling) */
				j->cancel_req = true;
			} else if (!j && id) {
				ft_logf(FT_LOG_INFO, NULL, id, "%s for an attempt not running here",
					type);
			}
		}
		json_decref(m);
		free(msgs[i]);
	}
	free(msgs);
}

/* ---- heartbeat ---------------------------------------------------------- */

static void heartbeat(struct worker *w)
{
	char host[128] = "";
	struct ft_err err;
	gethostname(host, sizeof(host) - 1);
	json_t *running = json_array(), *names = json_array();
	for (int i = 0; i < w->njobs; i++)
		json_array_append_new(running, json_pack("{s:s, s:i}", "job", w->jobs[i]->id,
							 "attempt", w->jobs[i]->attempt));
	for (int i = 0; i < w->gpus && i < 16; i++)
		json_array_append_new(names, json_string(w->gpu_names[i]));
	json_t *hb = json_pack("{s:s, s:s, s:i, s:i, s:I, s:o, s:i, s:b, s:I, s:o}", "id", w->o->id,
			       "host", host, "pid", (int)getpid(), "gpus", w->gpus, "gpu_mem",
			       (json_int_t)w->gpu_mem, "gpu_names", names, "slots", w->o->slots,
			       "draining", w->draining, "started_at", (json_int_t)w->started_ms,
			       "running", running);
	char *text = json_dumps(hb, JSON_COMPACT);
	json_decref(hb);
	ft_err_clear(&err);
	redisReply *r = ft_redis_cmd(w->redis, FT_REDIS_RETRY, &err, "SET %s%s %s PX %d",
				     FT_WIRE_WORKER_KEY, w->o->id, text, 3 * w->o->heartbeat_ms);
	free(text);
	if (r) {
		freeReplyObject(r);
		__atomic_add_fetch(&w->heartbeats, 1, __ATOMIC_RELAXED);
	} else {
		ft_warn("heartbeat failed: %s", err.msg);
	}
	__atomic_store_n(&w->jobs_now, active_jobs(w), __ATOMIC_RELAXED);
}

/* ---- metrics ------------------------------------------------------------- */

static void metrics(struct ft_buf *out, void *ud)
{
	struct worker *w = ud;
	char labels[160];
	snprintf(labels, sizeof(labels), "worker=\"%s\"", w->o->id);
	ft_metrics_help(out, "ft_worker_heartbeats_total", "counter", "heartbeats written");
	ft_metrics_value(out, "ft_worker_heartbeats_total", labels,
			 (double)__atomic_load_n(&w->heartbeats, __ATOMIC_RELAXED));
	ft_metrics_help(out, "ft_worker_events_sent_total", "counter", "events sent to the stream");
	ft_metrics_value(out, "ft_worker_events_sent_total", labels,
			 (double)__atomic_load_n(&w->events_sent, __ATOMIC_RELAXED));
	ft_metrics_help(out, "ft_worker_events_resent_total", "counter",
			"events sent again because no acknowledgement came");
	ft_metrics_value(out, "ft_worker_events_resent_total", labels,
			 (double)__atomic_load_n(&w->events_resent, __ATOMIC_RELAXED));
	ft_metrics_help(out, "ft_worker_jobs_running", "gauge", "job attempts running here");
	ft_metrics_value(out, "ft_worker_jobs_running", labels,
			 (double)__atomic_load_n(&w->jobs_now, __ATOMIC_RELAXED));
	ft_metrics_help(out, "ft_worker_gpus", "gauge", "GPUs this worker offers");
	ft_metrics_value(out, "ft_worker_gpus", labels, w->gpus);
	struct wk_cache_counters cc;
	wk_cache_counters_get(w->cache, &cc);
	ft_metrics_help(out, "ft_worker_cache_bytes", "gauge", "bytes of inputs in the cache");
	ft_metrics_value(out, "ft_worker_cache_bytes", labels, (double)wk_cache_bytes(w->cache));
	ft_metrics_help(out, "ft_worker_cache_hits_total", "counter",
			"job inputs found in the cache");
	ft_metrics_value(out, "ft_worker_cache_hits_total", labels, (double)cc.hits);
	ft_metrics_help(out, "ft_worker_cache_fetches_total", "counter",
			"job inputs fetched from the store into the cache");
	ft_metrics_value(out, "ft_worker_cache_fetches_total", labels, (double)cc.fetches);
	ft_metrics_help(out, "ft_worker_cache_evictions_total", "counter",
			"cache entries removed to stay under cache_max_mb");
	ft_metrics_value(out, "ft_worker_cache_evictions_total", labels, (double)cc.evictions);
}

/* ---- main loop ----------------------------------------------------------- */

enum ft_rc ft_worker_run(const struct ft_worker_opts *o, struct ft_err *err)
{
	struct worker w = { 0 };
	pthread_t th;
	uint64_t last_hb = 0, last_spool = 0, acks_since = 0;
	bool acks_waiting = false;

	w.o = o;
	w.started_ms = (uint64_t)ft_time_wall_ms();
	w.gpus = o->gpus >= 0 ? o->gpus : ft_worker_detect_gpus(&w.gpu_mem, w.gpu_names, 16);
	w.store = o->store;
	w.cache = wk_cache_new(w.store, o->cache_dir, o->cache_max_bytes, err);
	if (!w.cache)
		return err->rc;
	w.redis = ft_redis_new(o->redis_url, 3000, err);
	if (!w.redis) {
		wk_cache_free(w.cache);
		return err->rc;
	}
	pthread_mutex_init(&w.q.mu, NULL);
	if (pipe(w.q.wake) != 0)
		return ft_failf(err, FT_EIO, NULL, "pipe: %s", strerror(errno));
	fcntl(w.q.wake[0], F_SETFL, O_NONBLOCK);
	struct ft_metrics_server *ms = NULL;
	if (o->metrics_port >= 0) {
		ms = ft_metrics_server_new(o->metrics_addr, o->metrics_port, metrics, &w, err);
		if (!ms)
			return err->rc;
		ft_info("metrics on http://%s:%d/metrics", o->metrics_addr,
			ft_metrics_server_port(ms));
	}
	pthread_create(&th, NULL, inbox_thread, &w);
	ft_info("worker %s up: %d GPU(s), %d CPU slot(s), trainer %s, %s store, cache %s "
		"(%llu MiB cap, %llu MiB held)",
		o->id, w.gpus, o->slots, o->trainer, ft_store_backend(w.store), o->cache_dir,
		(unsigned long long)(o->cache_max_bytes >> 20),
		(unsigned long long)(wk_cache_bytes(w.cache) >> 20));

	for (;;) {
		ft_metrics_server_beat(ms);
		if (*o->stop && !w.draining) {
			w.draining = true;
			ft_info("draining: checkpointing and handing back %d job(s)",
				active_jobs(&w));
			for (int i = 0; i < w.njobs; i++) {
				struct job *j = w.jobs[i];
				if (!j->exited && j->pid > 0 && !j->cancel_req && !j->pause_req) {
					j->drain_req = true;
					kill(j->pid, SIGTERM);
				}
			}
			last_hb = 0; /* tell the scheduler at once */
		}
		if (w.draining && w.njobs == 0)
			break;
		/* Every job ended and only acknowledgements are awaited: bounded, since
		 * the scheduler may be stopping at the same time. */
		if (w.draining && active_jobs(&w) == 0) {
			uint64_t now = ft_time_mono_ms();
			if (!acks_waiting) {
				acks_waiting = true;
				acks_since = now;
			}
			if (now - acks_since >= (uint64_t)o->drain_ack_ms) {
				drain_give_up(&w);
				break;
			}
		}

		struct pollfd pfds[MAX_JOBS + 1];
		struct job *owners[MAX_JOBS + 1];
		int np = 0;
		pfds[np].fd = w.q.wake[0];
		pfds[np].events = POLLIN;
		owners[np++] = NULL;
		for (int i = 0; i < w.njobs; i++)
			if (w.jobs[i]->fd >= 0) {
				pfds[np].fd = w.jobs[i]->fd;
				pfds[np].events = POLLIN;
				owners[np++] = w.jobs[i];
			}
		poll(pfds, (nfds_t)np, 200);
		for (int i = 0; i < np; i++) {
			if (!(pfds[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			if (owners[i]) {
				read_progress(&w, owners[i]);
			} else {
				char drain[64];
				while (read(w.q.wake[0], drain, sizeof(drain)) > 0)
					;
			}
		}
		handle_inbox(&w);

		int status;
		pid_t pid;
		while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
			for (int i = 0; i < w.njobs; i++)
				if (w.jobs[i]->pid == pid) {
					w.jobs[i]->exited = true;
					w.jobs[i]->status = status;
				}
		}
		for (int i = 0; i < w.njobs; i++) {
			struct job *j = w.jobs[i];
			if (j->exited && j->fd >= 0)
				read_progress(&w, j); /* what the trainer wrote before exiting */
			if (j->exited && j->fd < 0 && !j->final_sent)
				finish_job(&w, j);
		}

		uint64_t now = ft_time_mono_ms();
		if (now - last_hb >= (uint64_t)o->heartbeat_ms) {
			heartbeat(&w);
			last_hb = now;
		}
		if (now - last_spool >= 1000) {
			last_spool = now;
			for (int i = 0; i < w.njobs; i++)
				spool_check(&w, w.jobs[i]);
			/* Forget attempts whose every event is acknowledged. */
			for (int i = 0; i < w.njobs;) {
				if (w.jobs[i]->final_sent && w.jobs[i]->nspool == 0) {
					job_free(&w, w.jobs[i]);
					w.jobs[i] = w.jobs[--w.njobs];
				} else {
					i++;
				}
			}
		}
	}
	w.inbox_stop = 1;
	pthread_join(th, NULL);
	ft_metrics_server_free(ms);
	struct ft_err e2;
	ft_err_clear(&e2);
	redisReply *r = ft_redis_cmd(w.redis, 0, &e2, "DEL %s%s", FT_WIRE_WORKER_KEY, o->id);
	if (r)
		freeReplyObject(r);
	ft_redis_free(w.redis);
	for (int i = 0; i < w.njobs; i++)
		job_free(&w, w.jobs[i]);
	wk_cache_free(w.cache);
	close(w.q.wake[0]);
	close(w.q.wake[1]);
	ft_info("worker %s stopped", o->id);
	return FT_OK;
}
