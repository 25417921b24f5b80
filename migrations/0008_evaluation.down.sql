-- Undo 0008_evaluation: its tables (their rows are lost), and 0001's unused
-- experiments, judgments and drift_windows as 0001 made them.
DROP TABLE drift_windows;
DROP TABLE drift_monitors;
DROP TABLE experiment_results;
DROP TABLE feedback;
DROP TABLE judgments;
DROP TABLE experiment_arms;
DROP TABLE experiments;
DROP TABLE eval_events;
DROP TABLE eval_judgments;
DROP TABLE eval_transitions;
DROP TABLE eval_models;
DROP TABLE evals;

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
