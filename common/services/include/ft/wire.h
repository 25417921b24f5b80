/*
 * ft/wire.h - what ft-scheduler, ft-worker and ft-serve say to each other
 * through Redis. Redis carries motion only: every fact here is either re-sent until
 * acknowledged or rebuilt from PostgreSQL, so FLUSHALL loses nothing.
 *
 * Keys (prefix "ft:"):
 *
 * | key                      | type   | written by | meaning                                      |
 * |--------------------------|--------|------------|----------------------------------------------|
 * | ft:worker:<wid>          | string | worker     | heartbeat JSON (below), TTL = 3 heartbeats   |
 * | ft:inbox:<wid>           | list   | scheduler  | messages to the worker (LPUSH / BRPOP)       |
 * | ft:events                | stream | worker     | events from workers (XADD), read by the      |
 * |                          |        |            | leader through consumer group "persist"      |
 * | ft:evack:<job>:<attempt> | string | scheduler  | highest event seq persisted for that attempt |
 * |                          |        |            | (TTL 1 h); the worker re-sends what is above |
 * | ft:requests              | stream | ft-serve   | the request log (XADD, one field "r": a      |
 * |                          |        |            | record of ft/reqlog.h), read by the leader   |
 * |                          |        |            | through consumer group "persist", deleted    |
 * |                          |        |            | (XDEL) once in PostgreSQL                    |
 *
 * Heartbeat JSON (ft:worker:<wid>):
 *   { "id": wid, "host": str, "pid": int, "gpus": int, "gpu_mem": bytes per GPU,
 *     "gpu_names": [str], "slots": int (concurrent CPU jobs when gpus = 0),
 *     "draining": bool, "started_at": ms, "running": [{"job": id, "attempt": n}] }
 *   The leader extends the PostgreSQL lease of every running (job, attempt,
 *   worker) it sees here: a worker never touches PostgreSQL.
 *
 * Inbox messages:
 *   { "type": "assign", "job": id, "attempt": n, "config": {ft-train config},
 *     "inputs": {"training_file": sha256, "validation_file": sha256|null,
 *                "init_adapter": sha256 manifest|null (continued training: the
 *                parent version's adapter)},
 *     "resume": {"checkpoint": sha256 manifest, "step": n} | null }
 *   { "type": "assign", "kind": "export", "job": ftexp- id, "attempt": n,
 *     "config": {"format", "options", "model": base name, "model_path",
 *                "registered_model", "version"},
 *     "inputs": {"adapter": sha256 manifest|null, "model": sha256 manifest|null
 *                (a whole-model version)}, "resume": null }
 *     (ft/exports.h: the format's ft-train command line)
 *   { "type": "cancel", "job": id, "attempt": n }
 *   { "type": "pause", "job": ftjob- id, "attempt": n }  (the user paused it:
 *     stop the trainer as a drain does, and hand the job back)
 *
 * Stream events (ft:events), one field "e" holding JSON:
 *   { "id": "ftevent-…" (unique, idempotent persistence), "job": id (an ftjob-
 *     or an ftexp- id: a fine-tuning job or an export),
 *     "attempt": n, "seq": n (1, 2, … per job attempt), "worker": wid,
 *     "kind": "started" | "progress" | "log" | "checkpoint" | "artifact" |
 *             "succeeded" | "failed" | "cancelled" | "handback",
 *     "data": {…} }
 *   progress data: the trainer's progress line (step, epoch, train_loss, …)
 *   checkpoint data: { "step": n, "manifest": sha256, "bytes": n, "files": [{path,
 *                      sha256, bytes}], "metrics": {step, train_loss, eval_* of that
 *                      step} }
 *   artifact data:   { "kind": "adapter"|"merged"|"gguf"|..., "manifest": sha256,
 *                      "bytes": n, "files": [...] }
 *   succeeded data:  { "output": sha256 manifest, "trainer_version", and for jobs
 *                      "fine_tuned_model", "trained_tokens", "metrics", "hyperparameters" }
 *   failed data:     { "message": str, "user_error": bool, "exit_code": n }
 *   handback data:   { "reason": str }  (worker draining: requeue without penalty;
 *                      "paused by the user": the job waits, paused, until resumed)
 *
 * Request log (ft:requests): ft-serve queues a record per answered request
 * in memory and a thread of its own XADDs it, so no answer waits on Redis;
 * while Redis is away records wait in that bounded queue (the oldest
 * dropped when full, counted). A record may be sent twice (a retried XADD):
 * the scheduler stores it once, by its id. Records are not re-sent after
 * the XADD succeeds, so wiping Redis loses those not yet persisted.
 *
 * Fencing: the scheduler applies an event only if (job, attempt) matches the
 * job's current attempt and the job is in a state the event may move it
 * from, so a late or duplicated message never moves a job backwards.
 */
#ifndef FT_WIRE_H
#define FT_WIRE_H

#define FT_WIRE_WORKER_KEY "ft:worker:"
#define FT_WIRE_INBOX_KEY "ft:inbox:"
#define FT_WIRE_EVENTS "ft:events"
#define FT_WIRE_EVENTS_GROUP "persist"
#define FT_WIRE_EVACK_KEY "ft:evack:"
#define FT_WIRE_REQUESTS "ft:requests"
#define FT_WIRE_REQUESTS_GROUP "persist"
#define FT_WIRE_REQUESTS_FIELD "r"

#endif
