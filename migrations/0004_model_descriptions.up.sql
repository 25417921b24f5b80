-- 0004_model_descriptions: a base model says what it is for, in a line or a
-- paragraph its registrant writes (shown by the console and GET /v1/models).
-- Text only: clients must render it as text, never as markup.
ALTER TABLE base_models
    ADD COLUMN description text NOT NULL DEFAULT '' CHECK (length(description) <= 2000);
