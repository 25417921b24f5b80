ALTER TABLE base_models DROP COLUMN description;
