-- 0005_registry: the model registry (docs/registry.md). Registered models
-- group a team's model_versions by name; a version records its lineage
-- (which job, attempt, base model and digest, data files and digests,
-- dataset statistics, method, hyperparameters, final metrics, trainer
-- version); aliases name versions and keep their history; exports are jobs
-- of their own kind that the scheduler dispatches to workers; every stored
-- folder lists its files (artifact_files), so the collector of unreferenced
-- blobs can be answered from SQL; teams may have a storage quota.
--
-- An expand migration (migrations/README.md): new tables, and nullable or
-- defaulted columns that the previous release ignores. Versions name their
-- registered model by (team_id, name) as 0001 made them; the new
-- registered_model_id column is filled by this release for every version it
-- writes.

CREATE TABLE registered_models (
    id           text PRIMARY KEY CHECK (id ~ '^rm-[0-9A-Za-z]{24}$'),
    team_id      text NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    name         text NOT NULL CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$'),
    description  text NOT NULL DEFAULT '' CHECK (length(description) <= 4096),
    tags         jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(tags) = 'object'),
    next_version integer NOT NULL DEFAULT 1 CHECK (next_version >= 1),
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (team_id, name)
);
CREATE INDEX registered_models_team_idx ON registered_models (team_id, created_at DESC, id DESC);

ALTER TABLE model_versions
    ADD COLUMN registered_model_id text REFERENCES registered_models (id) ON DELETE CASCADE,
    ADD COLUMN description text NOT NULL DEFAULT '' CHECK (length(description) <= 4096),
    ADD COLUMN tags jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(tags) = 'object'),
    ADD COLUMN source text NOT NULL DEFAULT 'job' CHECK (source IN ('job', 'checkpoint')),
    ADD COLUMN checkpoint_id text REFERENCES checkpoints (id) ON DELETE SET NULL,
    ADD COLUMN attempt integer CHECK (attempt >= 1),
    ADD COLUMN base_model_sha256 text CHECK (base_model_sha256 ~ '^[0-9a-f]{64}$'),
    ADD COLUMN training_file_id text,
    ADD COLUMN training_file_sha256 text CHECK (training_file_sha256 ~ '^[0-9a-f]{64}$'),
    ADD COLUMN validation_file_id text,
    ADD COLUMN validation_file_sha256 text CHECK (validation_file_sha256 ~ '^[0-9a-f]{64}$'),
    ADD COLUMN method text,
    ADD COLUMN adapter text,
    ADD COLUMN hyperparameters jsonb,
    ADD COLUMN dataset_stats jsonb,
    ADD COLUMN trainer_version text,
    ADD COLUMN trained_tokens bigint CHECK (trained_tokens >= 0);

-- User aliases ("production", "staging"): one version each, unique per
-- model; "latest" is not stored (it is the highest version). Every change
-- is one transaction that locks the registered model's row, so concurrent
-- moves are serialized and each one lands in the history with the version
-- it really replaced.
CREATE TABLE model_aliases (
    registered_model_id text NOT NULL REFERENCES registered_models (id) ON DELETE CASCADE,
    alias               text NOT NULL CHECK (alias ~ '^[a-z][a-z0-9_-]{0,63}$' AND alias <> 'latest'),
    version_id          text NOT NULL REFERENCES model_versions (id),
    protected           boolean NOT NULL DEFAULT false,
    updated_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (registered_model_id, alias)
);
CREATE INDEX model_aliases_version_idx ON model_aliases (version_id);

CREATE TABLE model_alias_history (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    registered_model_id text NOT NULL REFERENCES registered_models (id) ON DELETE CASCADE,
    alias               text NOT NULL,
    action              text NOT NULL CHECK (action IN ('set', 'removed', 'protected', 'unprotected')),
    from_version        integer,
    to_version          integer,
    key_id              text REFERENCES api_keys (id) ON DELETE SET NULL,
    created_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX model_alias_history_model_idx ON model_alias_history (registered_model_id, id DESC);

-- Exports: jobs of their own kind (a format of a version, made by a worker
-- running ft-train), with the life cycle of fine-tuning jobs minus
-- validation. format names a row of common/base/include/ft/exports.h, so a
-- new format needs no migration.
CREATE TABLE exports (
    id               text PRIMARY KEY CHECK (id ~ '^ftexp-[0-9A-Za-z]{24}$'),
    team_id          text NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    model_version_id text NOT NULL REFERENCES model_versions (id) ON DELETE CASCADE,
    format           text NOT NULL CHECK (format ~ '^[a-z0-9_-]{1,32}$'),
    options          jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(options) = 'object'),
    status           text NOT NULL DEFAULT 'queued'
                     CHECK (status IN ('queued', 'dispatched', 'running', 'cancelling',
                                       'succeeded', 'failed', 'cancelled')),
    priority         integer NOT NULL DEFAULT 0 CHECK (priority BETWEEN -100 AND 100),
    requested_gpus   integer NOT NULL DEFAULT 0 CHECK (requested_gpus BETWEEN 0 AND 64),
    attempt          integer NOT NULL DEFAULT 0 CHECK (attempt >= 0),
    max_attempts     integer NOT NULL DEFAULT 3 CHECK (max_attempts BETWEEN 1 AND 100),
    worker_id        text,
    lease_expires_at timestamptz,
    progress         jsonb,
    error            jsonb,
    artifact_id      text REFERENCES artifacts (id),
    created_at       timestamptz NOT NULL DEFAULT now(),
    queued_at        timestamptz NOT NULL DEFAULT now(),
    started_at       timestamptz,
    finished_at      timestamptz,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CHECK (attempt <= max_attempts),
    CHECK (status NOT IN ('dispatched', 'running')
           OR (worker_id IS NOT NULL AND lease_expires_at IS NOT NULL)),
    CHECK ((status IN ('succeeded', 'failed', 'cancelled')) = (finished_at IS NOT NULL)),
    CHECK (status <> 'failed' OR error IS NOT NULL),
    CHECK (status <> 'succeeded' OR artifact_id IS NOT NULL)
);
CREATE INDEX exports_team_idx ON exports (team_id, created_at DESC, id DESC);
CREATE INDEX exports_version_idx ON exports (model_version_id, created_at DESC, id DESC);
CREATE INDEX exports_queue_idx ON exports (priority DESC, queued_at, id) WHERE status = 'queued';
CREATE INDEX exports_lease_idx ON exports (lease_expires_at)
    WHERE status IN ('dispatched', 'running', 'cancelling');

CREATE TABLE export_transitions (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    export_id   text NOT NULL REFERENCES exports (id) ON DELETE CASCADE,
    from_status text,
    to_status   text NOT NULL,
    attempt     integer NOT NULL,
    reason      text,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX export_transitions_export_idx ON export_transitions (export_id, id);

CREATE TABLE export_events (
    id         text PRIMARY KEY CHECK (id ~ '^ftevent-[0-9A-Za-z]{24}$'),
    seq        bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    export_id  text NOT NULL REFERENCES exports (id) ON DELETE CASCADE,
    attempt    integer NOT NULL DEFAULT 0,
    level      text NOT NULL DEFAULT 'info' CHECK (level IN ('info', 'warn', 'error')),
    type       text NOT NULL DEFAULT 'message' CHECK (type IN ('message', 'metrics', 'status')),
    message    text NOT NULL,
    data       jsonb,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX export_events_export_idx ON export_events (export_id, seq DESC);

-- The files of a stored folder (its manifest, ft-worker's store.c), one row
-- each: what a download lists and what the collector of unreferenced blobs
-- reads. Rows of artifacts older than this migration are filled in by the
-- scheduler from their manifests before it collects anything.
CREATE TABLE artifact_files (
    artifact_id text NOT NULL REFERENCES artifacts (id) ON DELETE CASCADE,
    path        text NOT NULL CHECK (length(path) BETWEEN 1 AND 1024),
    sha256      text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    bytes       bigint NOT NULL CHECK (bytes >= 0),
    PRIMARY KEY (artifact_id, path)
);
CREATE INDEX artifact_files_sha256_idx ON artifact_files (sha256);

ALTER TABLE jobs
    ADD COLUMN registered_model text
        CHECK (registered_model ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$'),
    ADD COLUMN parent_version_id text REFERENCES model_versions (id) ON DELETE SET NULL,
    ADD COLUMN data_stats jsonb;

-- The digest of a base model's folder: the SHA-256 of its manifest, as the
-- store would keep it (computed when the model is registered).
ALTER TABLE base_models
    ADD COLUMN sha256 text CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    ADD COLUMN bytes bigint CHECK (bytes >= 0);

-- NULL: the storage_quota_bytes of the configuration (0 there: no quota).
ALTER TABLE teams
    ADD COLUMN storage_quota_bytes bigint CHECK (storage_quota_bytes >= 0);
