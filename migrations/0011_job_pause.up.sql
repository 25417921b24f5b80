-- 0011_job_pause: a fine-tuning job can be paused and resumed (OpenAI's
-- POST /v1/fine_tuning/jobs/{id}/pause and /resume; docs/api.md). Two
-- states join the jobs' life cycle:
--   pausing  the worker is asked to stop the trainer, which checkpoints and
--            exits (a hand-back); like cancelling, the worker still holds it
--   paused   nothing runs it and it is not queued; resume queues it again,
--            and its next attempt starts from the last checkpoint
-- ft:widens jobs.jobs_status_check
-- The status CHECK is replaced by one that also accepts the two: every row
-- the old check accepted it accepts, and older binaries never write them.

ALTER TABLE jobs
    DROP CONSTRAINT jobs_status_check,
    ADD CONSTRAINT jobs_status_check
        CHECK (status IN ('validating_files', 'queued', 'dispatched', 'running', 'cancelling',
                          'pausing', 'paused', 'succeeded', 'failed', 'cancelled'));
