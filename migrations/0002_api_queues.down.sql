DROP INDEX datasets_validating_idx;
DROP INDEX jobs_validating_idx;
