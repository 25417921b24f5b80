-- 0012_job_result_files: a succeeded job's step metrics as a file (OpenAI's
-- result_files: purpose "fine-tune-results", step_metrics.csv). The
-- scheduler writes the CSV into the store and its files row in the
-- transaction that marks the job succeeded (scheduler/src/persist.c).
--
-- Expand only: one nullable column.

ALTER TABLE jobs ADD COLUMN result_file_id text REFERENCES files (id);
