-- 0002_api_queues: the validator threads of ft-api poll for jobs in
-- validating_files and datasets in validating, oldest first, with
-- FOR UPDATE SKIP LOCKED; these partial indexes keep that poll off a full scan.
CREATE INDEX jobs_validating_idx ON jobs (created_at) WHERE status = 'validating_files';
CREATE INDEX datasets_validating_idx ON datasets (created_at) WHERE status = 'validating';
