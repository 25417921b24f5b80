ALTER TABLE jobs DROP COLUMN result_file_id;
