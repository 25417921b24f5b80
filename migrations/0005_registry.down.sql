-- Undo 0005_registry: dependents first.
ALTER TABLE teams DROP COLUMN storage_quota_bytes;
ALTER TABLE base_models DROP COLUMN bytes, DROP COLUMN sha256;
ALTER TABLE jobs DROP COLUMN data_stats, DROP COLUMN parent_version_id,
    DROP COLUMN registered_model;
DROP TABLE artifact_files;
DROP TABLE export_events;
DROP TABLE export_transitions;
DROP TABLE exports;
DROP TABLE model_alias_history;
DROP TABLE model_aliases;
ALTER TABLE model_versions
    DROP COLUMN trained_tokens, DROP COLUMN trainer_version, DROP COLUMN dataset_stats,
    DROP COLUMN hyperparameters, DROP COLUMN adapter, DROP COLUMN method,
    DROP COLUMN validation_file_sha256, DROP COLUMN validation_file_id,
    DROP COLUMN training_file_sha256, DROP COLUMN training_file_id,
    DROP COLUMN base_model_sha256, DROP COLUMN attempt, DROP COLUMN checkpoint_id,
    DROP COLUMN source, DROP COLUMN tags, DROP COLUMN description,
    DROP COLUMN registered_model_id;
DROP TABLE registered_models;
