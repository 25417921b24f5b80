/*
 * ft/events.h - the job-event vocabulary, written down once for the three
 * processes that pass it along (events.c holds the tables):
 *
 *   ft-train      writes progress lines: one JSON object per line on its
 *                 progress fd, {"type": <line>, ...fields} (train/train.c);
 *   ft-worker     relays each line as a stream event on ft:events (ft/wire.h),
 *                 and adds its own events about the child process
 *                 (worker/src/worker.c, on_line);
 *   ft-scheduler  applies each stream event once (scheduler/src/persist.c):
 *                 a job_events row, metrics rows, artifacts, a transition of
 *                 the job and a webhook, as the second table says.
 *
 * Progress lines (trainer -> worker):
 *
 * | line        | fields                                               | the worker           |
 * |-------------|------------------------------------------------------|----------------------|
 * | start       | method, objective, trainable_parameters, total_steps,| relays "log"         |
 * |             | steps_per_epoch, first_step, threads, base_bytes_f32,| ("trainer started",  |
 * |             | base_bytes_nf4, device                               |  the line as detail) |
 * | step        | step, total_steps, epoch, train_loss, learning_rate, | relays "progress"    |
 * |             | grad_norm, tokens_per_second, eta_seconds; DPO:      | (the line as data)   |
 * |             | rewards/{chosen,rejected,accuracies,margins},        |                      |
 * |             | logps/{chosen,rejected}                              |                      |
 * | eval        | step, eval_loss, eval_perplexity, eval_token_accuracy| relays "eval"        |
 * |             | best; DPO: eval_rewards/..., eval_logps/...          |                      |
 * | checkpoint  | step, path (a folder)                                | stores the folder,   |
 * |             |                                                      | relays "checkpoint"  |
 * | artifact    | kind ("adapter" | "model"), path (a folder)          | stores the folder,   |
 * |             |                                                      | relays "artifact"    |
 * | early_stop  | step, best_step, best_eval_loss                      | relays "log"         |
 * | interrupted | step, checkpoint (a folder)                          | remembers: the exit  |
 * |             |                                                      | is a handback        |
 * | export      | stage ("load" | "merge" | "write"), file, done_bytes,| relays "progress"    |
 * |             | total_bytes (ft-train export: ft/exports.h)          | (the line as data)   |
 * | evaluate    | model (position), models, stage ("score"),           | relays "progress"    |
 * |             | done_rows, total_rows (ft-train eval)                | (the line as data)   |
 * | result      | model (position), metrics, rows (ft-train eval: one  | relays "result"      |
 * |             | per model evaluated; docs/evaluation.md)             | (the line as data)   |
 * | done        | step, tokens_seen, seconds, trainer_version, metrics | remembers: the exit  |
 * |             | (train: the final train_loss and step metrics, the   | is a success, and    |
 * |             | last evaluation's eval_*); export: seconds           | the metrics          |
 * Strings are JSON-escaped and lines have no length limit.
 *
 * Stream events (worker -> scheduler), field "kind" of ft:events. The same
 * events come from the three kinds of work a worker runs (enum ft_work):
 * fine-tuning jobs ("job" is an ftjob- id; rows of jobs, job_events,
 * job_transitions), exports ("job" is an ftexp- id; rows of exports,
 * export_events, export_transitions) and evaluations ("job" is an fteval-
 * id; rows of evals, eval_events, eval_transitions). The columns below are
 * for jobs; an export's or an evaluation's "progress" sets its progress
 * column, an export's "artifact" stores the export's folder, an
 * evaluation's "result" its model's metrics and answers (eval_models), and
 * their webhooks are listed under the table.
 *
 * | kind       | data                                  | job_events | moves the job from        | to                                | webhook                   |
 * |------------|---------------------------------------|------------|---------------------------|-----------------------------------|---------------------------|
 * | started    | pid                                   | message    | dispatched                | running                           |                           |
 * | progress   | the step line                         | metrics    | -                         | (metrics row, latest_metrics,     |                           |
 * |            |                                       |            |                           |  estimated finish)                |                           |
 * | eval       | the eval line                         | metrics    | -                         | (metrics row)                     |                           |
 * | log        | message, detail                       | message    | -                         |                                   |                           |
 * | checkpoint | step, manifest, bytes, metrics        | message    | -                         | (artifact + checkpoint rows)      |                           |
 * | artifact   | kind, manifest, bytes                 | message    | -                         | (artifact row)                    |                           |
 * | succeeded  | fine_tuned_model, trained_tokens,     | message    | dispatched, running,      | succeeded (and the job's model    | fine_tuning.job.succeeded |
 * |            | trainer_version, metrics              |            | cancelling, pausing       | version: model.version.created)   |                           |
 * | failed     | message, user_error, exit_code        | message    | dispatched, running,      | failed (user error or last        | fine_tuning.job.failed    |
 * |            |                                       | (error)    | cancelling, pausing       | attempt), queued (retry),         |                           |
 * |            |                                       |            |                           | cancelled (from cancelling),      |                           |
 * |            |                                       |            |                           | paused (from pausing, retryable)  |                           |
 * | cancelled  |                                       | message    | dispatched, running,      | cancelled                         | fine_tuning.job.cancelled |
 * |            |                                       |            | cancelling, pausing       |                                   |                           |
 * | handback   | reason                                | message    | dispatched, running,      | queued (no attempt used),         |                           |
 * |            |                                       |            | cancelling, pausing       | cancelled (from cancelling), or   |                           |
 * |            |                                       |            |                           | paused (from pausing; no attempt  |                           |
 * |            |                                       |            |                           | used): the worker's checkpoint    |                           |
 * |            |                                       |            |                           | is where the next attempt starts  |                           |
 * | result     | the result line                       | metrics    | -                         | (eval_models row of an evaluation)|                           |
 * Exports' webhooks: succeeded -> model.export.succeeded, failed (for good)
 * -> model.export.failed. Evaluations': succeeded -> eval.succeeded, failed
 * (for good) -> eval.failed.
 * Every event is stored once (its id), only for the job's current attempt;
 * an event moves the job only from the states listed, so a late or
 * duplicated one never moves it backwards. "metrics" and "message" are the
 * two event types OpenAI's FineTuningJobEvent allows.
 */
#ifndef FT_EVENTS_H
#define FT_EVENTS_H

#include "ft/base.h"

enum ft_line {
	FT_LINE_START = 0,
	FT_LINE_STEP,
	FT_LINE_EVAL,
	FT_LINE_CHECKPOINT,
	FT_LINE_ARTIFACT,
	FT_LINE_EARLY_STOP,
	FT_LINE_INTERRUPTED,
	FT_LINE_EXPORT,
	FT_LINE_EVALUATE,
	FT_LINE_RESULT,
	FT_LINE_DONE,
	FT_LINE_COUNT
};

/* What the worker does with a line. */
enum ft_relay {
	FT_RELAY_DATA = 0, /* relay the line as the data of event `kind` */
	FT_RELAY_STORE, /* store the folder at "path", relay `kind` with its manifest */
	FT_RELAY_LOG, /* relay a "log" event: `message`, the line as detail */
	FT_RELAY_REMEMBER /* not relayed: it decides how the exit is reported */
};

struct ft_line_def {
	const char *type; /* the line's "type" */
	enum ft_relay relay;
	const char *kind; /* the stream event relayed (NULL when remembered) */
	const char *message; /* FT_RELAY_LOG's message */
};
extern const struct ft_line_def ft_lines[FT_LINE_COUNT];
/* The line of a "type" (NULL: not a line the trainer writes). */
const struct ft_line_def *ft_line_find(const char *type);
static inline const char *ft_line_type(enum ft_line l)
{
	return ft_lines[l].type;
}

enum ft_ev {
	FT_EV_STARTED = 0,
	FT_EV_PROGRESS,
	FT_EV_EVAL,
	FT_EV_LOG,
	FT_EV_CHECKPOINT,
	FT_EV_ARTIFACT,
	FT_EV_SUCCEEDED,
	FT_EV_FAILED,
	FT_EV_CANCELLED,
	FT_EV_HANDBACK,
	FT_EV_RESULT,
	FT_EV_COUNT
};

/* The kinds of work a worker runs; the id's prefix says which
 * (ftjob-, ftexp-, fteval-), and the scheduler has a row of tables for
 * each (scheduler/src/sched.c, sched_kinds). */
enum ft_work { FT_WORK_JOB = 0, FT_WORK_EXPORT, FT_WORK_EVAL, FT_WORK_COUNT };

/* Job states, as bits, for the "moves the job from" column. */
enum ft_job_state_bits {
	FT_JS_DISPATCHED = 1 << 0,
	FT_JS_RUNNING = 1 << 1,
	FT_JS_CANCELLING = 1 << 2,
	FT_JS_PAUSING = 1 << 3,
};
#define FT_JS_ACTIVE (FT_JS_DISPATCHED | FT_JS_RUNNING | FT_JS_CANCELLING | FT_JS_PAUSING)

struct ft_ev_def {
	const char *kind;
	const char *type; /* job_events.type: "metrics" or "message" */
	const char *level; /* job_events.level: "info" or "error" */
	unsigned moves_from; /* enum ft_job_state_bits; 0: moves no job */
	/* the webhook queued when it moves a job, an export, an evaluation
	 * (indexed by enum ft_work), or NULL */
	const char *webhook[FT_WORK_COUNT];
};
extern const struct ft_ev_def ft_events[FT_EV_COUNT];
/* The event of a kind: true and *ev set, or false when unknown. */
bool ft_ev_find(const char *kind, enum ft_ev *ev);
static inline const char *ft_ev_kind(enum ft_ev e)
{
	return ft_events[e].kind;
}
/* The bit of a job status ("running" -> FT_JS_RUNNING; 0 for the others). */
unsigned ft_job_state_bit(const char *status);

#endif
