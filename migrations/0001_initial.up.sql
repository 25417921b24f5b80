-- 0001_initial: the whole initial schema of ftplat.
--
-- Conventions:
--   * ids are text with a type prefix ("ftjob-…", "file-…"; see common/base/include/ft/id.h);
--   * enums are text + CHECK, so that adding a value is a one-line migration;
--   * every row that a user can see belongs to a team (team_id), and every list
--     the API serves has an index that starts with team_id and ends with the
--     pagination order (created_at DESC, id DESC);
--   * times are timestamptz.

CREATE TABLE teams (
    id                  text PRIMARY KEY CHECK (id ~ '^team-[0-9A-Za-z]{24}$'),
    name                text NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 128),
    quota_gpus          integer NOT NULL DEFAULT 8 CHECK (quota_gpus >= 0),
    max_concurrent_jobs integer NOT NULL DEFAULT 4 CHECK (max_concurrent_jobs >= 0),
    fair_share_weight   double precision NOT NULL DEFAULT 1.0 CHECK (fair_share_weight > 0),
    created_at          timestamptz NOT NULL DEFAULT now()
);

-- API keys are shown once and stored as SHA-256 of the whole key; the
-- prefix (first characters after "ftk-") is how a presented key is found.
CREATE TABLE api_keys (
    id                 text PRIMARY KEY CHECK (id ~ '^key-[0-9A-Za-z]{24}$'),
    team_id            text NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    name               text NOT NULL DEFAULT '' CHECK (length(name) <= 128),
    prefix             text NOT NULL UNIQUE CHECK (length(prefix) BETWEEN 8 AND 32),
    key_hash           bytea NOT NULL CHECK (octet_length(key_hash) = 32),
    role               text NOT NULL CHECK (role IN ('viewer', 'member', 'admin')),
    rate_limit_per_min integer NOT NULL DEFAULT 600 CHECK (rate_limit_per_min > 0),
    created_at         timestamptz NOT NULL DEFAULT now(),
    last_used_at       timestamptz,
    expires_at         timestamptz,
    revoked_at         timestamptz
);
CREATE INDEX api_keys_team_idx ON api_keys (team_id, created_at DESC, id DESC);

-- Uploaded files (OpenAI /v1/files). The bytes live in the artifact store
-- under sha256; deleting a file is a soft delete so jobs keep their lineage.
CREATE TABLE files (
    id             text PRIMARY KEY CHECK (id ~ '^file-[0-9A-Za-z]{24}$'),
    team_id        text NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    filename       text NOT NULL CHECK (length(filename) BETWEEN 1 AND 512),
    purpose        text NOT NULL CHECK (purpose IN ('fine-tune', 'fine-tune-results')),
    bytes          bigint NOT NULL CHECK (bytes >= 0),
    sha256         text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    status         text NOT NULL DEFAULT 'uploaded'
                   CHECK (status IN ('uploaded', 'processed', 'error')),
    status_details text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    deleted_at     timestamptz
);
CREATE INDEX files_team_idx ON files (team_id, created_at DESC, id DESC) WHERE deleted_at IS NULL;
CREATE INDEX files_sha256_idx ON files (sha256);

-- A dataset is a file plus what validation learned about it.
CREATE TABLE datasets (
    id           text PRIMARY KEY CHECK (id ~ '^ds-[0-9A-Za-z]{24}$'),
    team_id      text NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    file_id      text NOT NULL REFERENCES files (id),
    name         text NOT NULL CHECK (length(name) BETWEEN 1 AND 256),
    format       text CHECK (format IN ('text', 'prompt_completion', 'instruction', 'messages',
                                        'sharegpt', 'preference', 'openai_dpo')),
    status       text NOT NULL DEFAULT 'validating'
                 CHECK (status IN ('validating', 'valid', 'invalid')),
    report       jsonb,
    stats        jsonb,
    created_at   timestamptz NOT NULL DEFAULT now(),
    validated_at timestamptz,
    CHECK ((status = 'validating') = (validated_at IS NULL))
);
CREATE INDEX datasets_team_idx ON datasets (team_id, created_at DESC, id DESC);
CREATE INDEX datasets_file_idx ON datasets (file_id);

-- Content-addressed blobs: datasets, checkpoints, adapters, merged and
-- quantised models. storage_key is "sha256/ab/cdef…" in the store.
CREATE TABLE artifacts (
    id          text PRIMARY KEY CHECK (id ~ '^art-[0-9A-Za-z]{24}$'),
    team_id     text NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    kind        text NOT NULL CHECK (kind IN ('dataset', 'checkpoint', 'adapter', 'merged',
                                              'gguf', 'log', 'other')),
    sha256      text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    bytes       bigint NOT NULL CHECK (bytes >= 0),
    storage_key text NOT NULL,
    format      text,
    job_id      text,                       -- FK added below (jobs comes later)
    metadata    jsonb NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX artifacts_team_idx ON artifacts (team_id, created_at DESC, id DESC);
CREATE INDEX artifacts_job_idx ON artifacts (job_id) WHERE job_id IS NOT NULL;

-- Base models registered by admins from a model folder. team_id NULL means
-- visible to every team.
CREATE TABLE base_models (
    id              text PRIMARY KEY CHECK (id ~ '^model-[0-9A-Za-z]{24}$'),
    team_id         text REFERENCES teams (id) ON DELETE CASCADE,
    name            text NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 256),
    architecture    text NOT NULL,
    parameter_count bigint NOT NULL CHECK (parameter_count > 0),
    chat_template   text,
    source_path     text,
    artifact_id     text REFERENCES artifacts (id),
    config          jsonb NOT NULL DEFAULT '{}',
    created_at      timestamptz NOT NULL DEFAULT now()
);

-- Fine-tuning jobs. status follows the life cycle in docs/architecture.md;
-- transitions are guarded in SQL by (status, attempt). OpenAI's
-- "validating_files" is our validating state.
CREATE TABLE jobs (
    id                 text PRIMARY KEY CHECK (id ~ '^ftjob-[0-9A-Za-z]{24}$'),
    team_id            text NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    model              text NOT NULL,
    base_model_id      text NOT NULL REFERENCES base_models (id),
    training_file_id   text NOT NULL REFERENCES files (id),
    validation_file_id text REFERENCES files (id),
    method             text NOT NULL CHECK (method IN ('supervised', 'dpo')),
    adapter            text NOT NULL DEFAULT 'lora' CHECK (adapter IN ('none', 'lora', 'qlora')),
    hyperparameters    jsonb NOT NULL DEFAULT '{}',
    suffix             text CHECK (length(suffix) <= 64),
    seed               bigint NOT NULL,
    metadata           jsonb NOT NULL DEFAULT '{}',
    status             text NOT NULL DEFAULT 'validating_files'
                       CHECK (status IN ('validating_files', 'queued', 'dispatched', 'running',
                                         'cancelling', 'succeeded', 'failed', 'cancelled')),
    priority           integer NOT NULL DEFAULT 0 CHECK (priority BETWEEN -100 AND 100),
    requested_gpus     integer NOT NULL DEFAULT 0 CHECK (requested_gpus BETWEEN 0 AND 64),
    est_gpu_mem_bytes  bigint CHECK (est_gpu_mem_bytes >= 0),
    attempt            integer NOT NULL DEFAULT 0 CHECK (attempt >= 0),
    max_attempts       integer NOT NULL DEFAULT 3 CHECK (max_attempts BETWEEN 1 AND 100),
    worker_id          text,
    lease_expires_at   timestamptz,
    error              jsonb,
    fine_tuned_model   text,
    trained_tokens     bigint CHECK (trained_tokens >= 0),
    latest_metrics     jsonb,
    estimated_finish   timestamptz,
    created_at         timestamptz NOT NULL DEFAULT now(),
    queued_at          timestamptz,
    started_at         timestamptz,
    finished_at        timestamptz,
    updated_at         timestamptz NOT NULL DEFAULT now(),
    CHECK (attempt <= max_attempts),
    CHECK (status NOT IN ('dispatched', 'running')
           OR (worker_id IS NOT NULL AND lease_expires_at IS NOT NULL)),
    CHECK ((status IN ('succeeded', 'failed', 'cancelled')) = (finished_at IS NOT NULL)),
    CHECK (status <> 'failed' OR error IS NOT NULL)
);
CREATE INDEX jobs_team_idx ON jobs (team_id, created_at DESC, id DESC);
CREATE INDEX jobs_queue_idx ON jobs (priority DESC, queued_at, id) WHERE status = 'queued';
CREATE INDEX jobs_lease_idx ON jobs (lease_expires_at)
    WHERE status IN ('dispatched', 'running', 'cancelling');
CREATE INDEX jobs_worker_idx ON jobs (worker_id) WHERE worker_id IS NOT NULL;
CREATE INDEX jobs_team_active_idx ON jobs (team_id)
    WHERE status IN ('dispatched', 'running', 'cancelling');

ALTER TABLE artifacts
    ADD CONSTRAINT artifacts_job_fk FOREIGN KEY (job_id) REFERENCES jobs (id) ON DELETE SET NULL;

-- Every status change of a job, in order; written in the same transaction
-- as the UPDATE that made it.
CREATE TABLE job_transitions (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id      text NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    from_status text,
    to_status   text NOT NULL,
    attempt     integer NOT NULL,
    reason      text,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX job_transitions_job_idx ON job_transitions (job_id, id);

-- Job events (OpenAI /events). id is chosen by the producer, so persisting
-- the same event twice is a no-op (INSERT … ON CONFLICT DO NOTHING).
CREATE TABLE job_events (
    id         text PRIMARY KEY CHECK (id ~ '^ftevent-[0-9A-Za-z]{24}$'),
    seq        bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    job_id     text NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    attempt    integer NOT NULL DEFAULT 0,
    level      text NOT NULL DEFAULT 'info' CHECK (level IN ('info', 'warn', 'error')),
    type       text NOT NULL DEFAULT 'message' CHECK (type IN ('message', 'metrics', 'status')),
    message    text NOT NULL,
    data       jsonb,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX job_events_job_idx ON job_events (job_id, seq DESC);

-- One row per optimizer step (and per attempt: a resumed job repeats steps).
CREATE TABLE job_metrics (
    job_id              text NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    attempt             integer NOT NULL,
    step                integer NOT NULL CHECK (step >= 0),
    epoch               double precision,
    train_loss          double precision,
    learning_rate       double precision,
    grad_norm           double precision,
    tokens_per_second   double precision,
    eval_loss           double precision,
    eval_perplexity     double precision,
    eval_token_accuracy double precision,
    extra               jsonb,
    created_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (job_id, attempt, step)
);

CREATE TABLE checkpoints (
    id          text PRIMARY KEY CHECK (id ~ '^ftckpt-[0-9A-Za-z]{24}$'),
    job_id      text NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    attempt     integer NOT NULL,
    step        integer NOT NULL CHECK (step >= 0),
    artifact_id text NOT NULL REFERENCES artifacts (id),
    metrics     jsonb NOT NULL DEFAULT '{}',
    is_best     boolean NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (job_id, step)
);
CREATE INDEX checkpoints_job_idx ON checkpoints (job_id, created_at DESC, id DESC);

-- Versioned models with lineage: a version comes from a job on a dataset,
-- over a base model, possibly continuing a parent version.
CREATE TABLE model_versions (
    id                  text PRIMARY KEY CHECK (id ~ '^mv-[0-9A-Za-z]{24}$'),
    team_id             text NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    name                text NOT NULL CHECK (length(name) BETWEEN 1 AND 256),
    version             integer NOT NULL CHECK (version >= 1),
    kind                text NOT NULL CHECK (kind IN ('adapter', 'merged', 'quantized')),
    quantization        text CHECK (quantization IN ('f16', 'q8_0', 'q4_0', 'q4_k_m', 'nf4')),
    base_model_id       text NOT NULL REFERENCES base_models (id),
    parent_version_id   text REFERENCES model_versions (id),
    job_id              text REFERENCES jobs (id) ON DELETE SET NULL,
    dataset_id          text REFERENCES datasets (id) ON DELETE SET NULL,
    artifact_id         text NOT NULL REFERENCES artifacts (id),
    status              text NOT NULL DEFAULT 'ready' CHECK (status IN ('draft', 'ready', 'archived')),
    metrics             jsonb NOT NULL DEFAULT '{}',
    created_at          timestamptz NOT NULL DEFAULT now(),
    UNIQUE (team_id, name, version),
    CHECK (parent_version_id IS NULL OR parent_version_id <> id),
    CHECK ((kind = 'quantized') = (quantization IS NOT NULL))
);
CREATE INDEX model_versions_team_idx ON model_versions (team_id, created_at DESC, id DESC);
CREATE INDEX model_versions_parent_idx ON model_versions (parent_version_id)
    WHERE parent_version_id IS NOT NULL;
CREATE INDEX model_versions_job_idx ON model_versions (job_id) WHERE job_id IS NOT NULL;

CREATE TABLE endpoints (
    id         text PRIMARY KEY CHECK (id ~ '^ep-[0-9A-Za-z]{24}$'),
    team_id    text NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    name       text NOT NULL CHECK (length(name) BETWEEN 1 AND 128),
    kind       text NOT NULL CHECK (kind IN ('ft-serve', 'vllm', 'llama.cpp')),
    url        text NOT NULL,
    status     text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (team_id, name)
);

CREATE TABLE deployments (
    id               text PRIMARY KEY CHECK (id ~ '^dep-[0-9A-Za-z]{24}$'),
    team_id          text NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    endpoint_id      text NOT NULL REFERENCES endpoints (id) ON DELETE CASCADE,
    model_version_id text NOT NULL REFERENCES model_versions (id),
    traffic_weight   integer NOT NULL DEFAULT 100 CHECK (traffic_weight BETWEEN 0 AND 100),
    status           text NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'active', 'retired', 'failed')),
    created_at       timestamptz NOT NULL DEFAULT now(),
    retired_at       timestamptz,
    CHECK ((status = 'retired') = (retired_at IS NOT NULL))
);
CREATE INDEX deployments_team_idx ON deployments (team_id, created_at DESC, id DESC);
CREATE INDEX deployments_endpoint_idx ON deployments (endpoint_id) WHERE status = 'active';

CREATE TABLE experiments (
    id          text PRIMARY KEY CHECK (id ~ '^exp-[0-9A-Za-z]{24}$'),
    team_id     text NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 256),
    endpoint_id text REFERENCES endpoints (id) ON DELETE SET NULL,
    version_a   text NOT NULL REFERENCES model_versions (id),
    version_b   text NOT NULL REFERENCES model_versions (id),
    split_a     double precision NOT NULL DEFAULT 0.5 CHECK (split_a >= 0 AND split_a <= 1),
    status      text NOT NULL DEFAULT 'draft'
                CHECK (status IN ('draft', 'running', 'stopped', 'concluded')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    started_at  timestamptz,
    ended_at    timestamptz,
    CHECK (version_a <> version_b)
);
CREATE INDEX experiments_team_idx ON experiments (team_id, created_at DESC, id DESC);

-- One judgment of one request in an experiment: which side won, by whom.
CREATE TABLE judgments (
    id            text PRIMARY KEY CHECK (id ~ '^jdg-[0-9A-Za-z]{24}$'),
    experiment_id text NOT NULL REFERENCES experiments (id) ON DELETE CASCADE,
    request_id    text NOT NULL,
    judge         text NOT NULL,
    winner        text NOT NULL CHECK (winner IN ('a', 'b', 'tie')),
    score_a       double precision,
    score_b       double precision,
    comment       text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (experiment_id, request_id, judge)
);
CREATE INDEX judgments_experiment_idx ON judgments (experiment_id, created_at);

-- Drift statistics per deployment per time window.
CREATE TABLE drift_windows (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    deployment_id  text NOT NULL REFERENCES deployments (id) ON DELETE CASCADE,
    window_start   timestamptz NOT NULL,
    window_end     timestamptz NOT NULL,
    n_requests     integer NOT NULL CHECK (n_requests >= 0),
    psi            double precision,
    kl_divergence  double precision,
    metrics        jsonb NOT NULL DEFAULT '{}',
    alert          boolean NOT NULL DEFAULT false,
    created_at     timestamptz NOT NULL DEFAULT now(),
    CHECK (window_end > window_start),
    UNIQUE (deployment_id, window_start)
);

-- Webhook endpoints (Standard Webhooks). previous_secret signs too until
-- previous_secret_expires_at, so rotation has an overlap.
CREATE TABLE webhooks (
    id                         text PRIMARY KEY CHECK (id ~ '^wh-[0-9A-Za-z]{24}$'),
    team_id                    text NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    url                        text NOT NULL CHECK (url ~ '^https?://'),
    events                     text[] NOT NULL CHECK (cardinality(events) > 0),
    secret                     text NOT NULL CHECK (secret LIKE 'whsec\_%'),
    previous_secret            text CHECK (previous_secret LIKE 'whsec\_%'),
    previous_secret_expires_at timestamptz,
    enabled                    boolean NOT NULL DEFAULT true,
    disabled_reason            text,
    created_at                 timestamptz NOT NULL DEFAULT now(),
    CHECK ((previous_secret IS NULL) = (previous_secret_expires_at IS NULL))
);
CREATE INDEX webhooks_team_idx ON webhooks (team_id, created_at DESC, id DESC);

-- The outbox: one row per message per endpoint; id is the webhook-id header,
-- stable across retries.
CREATE TABLE webhook_deliveries (
    id               text PRIMARY KEY CHECK (id ~ '^whd-[0-9A-Za-z]{24}$'),
    webhook_id       text NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event_type       text NOT NULL,
    payload          jsonb NOT NULL,
    status           text NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'delivering', 'succeeded', 'failed', 'abandoned')),
    attempts         integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    last_status_code integer,
    last_error       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    delivered_at     timestamptz
);
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (next_attempt_at)
    WHERE status = 'pending';
CREATE INDEX webhook_deliveries_webhook_idx ON webhook_deliveries (webhook_id, created_at DESC, id DESC);

-- Every write and every denial. team_id/key_id survive deletion as NULLs.
CREATE TABLE audit_log (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    team_id     text REFERENCES teams (id) ON DELETE SET NULL,
    key_id      text REFERENCES api_keys (id) ON DELETE SET NULL,
    action      text NOT NULL,
    object_type text,
    object_id   text,
    outcome     text NOT NULL CHECK (outcome IN ('allowed', 'denied')),
    status_code integer,
    remote_addr text,
    detail      jsonb,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_log_team_idx ON audit_log (team_id, created_at DESC, id DESC);

-- Idempotency-Key on POSTs: the first response is stored and replayed.
CREATE TABLE idempotency_keys (
    team_id         text NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    key             text NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    method          text NOT NULL,
    path            text NOT NULL,
    request_sha256  text NOT NULL CHECK (request_sha256 ~ '^[0-9a-f]{64}$'),
    response_status integer,
    response_body   jsonb,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (team_id, key)
);
CREATE INDEX idempotency_keys_created_idx ON idempotency_keys (created_at);
