-- Paused jobs are queued again (their next attempt resumes from the last
-- checkpoint), and pausing ones go on running, before the old check returns.
UPDATE jobs SET status = 'queued', queued_at = now(), worker_id = NULL, lease_expires_at = NULL
    WHERE status = 'paused';
UPDATE jobs SET status = 'running' WHERE status = 'pausing';
ALTER TABLE jobs
    DROP CONSTRAINT jobs_status_check,
    ADD CONSTRAINT jobs_status_check
        CHECK (status IN ('validating_files', 'queued', 'dispatched', 'running', 'cancelling',
                          'succeeded', 'failed', 'cancelled'));
