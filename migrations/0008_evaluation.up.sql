-- ft:contract
-- 0008_evaluation: offline evaluation jobs, A/B experiments with arms,
-- judgments, feedback and results, drift monitors and their windows
-- (issue 17; docs/evaluation.md, docs/api.md).
--
-- Why a contract migration: 0001 created experiments, judgments and
-- drift_windows in a two-arm, one-window shape that no binary ever read or
-- wrote (docs/architecture.md said "nothing uses them yet"), so no running
-- release can depend on them; they are dropped and made again in the shape
-- the code uses. The rest is new tables, as an expand would add.
--
-- Endpoints and deployments (0001, 0007) are another subsystem's: the
-- tables here name them by id only (no foreign key), as request_log does,
-- so that either side can change its tables without the other.
--
-- Evaluations are work of a third kind that the scheduler dispatches to
-- workers (scheduler/src/sched.c, sched_kinds): the life-cycle columns,
-- events and transitions of exports.

DROP TABLE judgments;
DROP TABLE experiments;
DROP TABLE drift_windows;

-- ---- offline evaluation ---------------------------------------------------

CREATE TABLE evals (
    id               text PRIMARY KEY CHECK (id ~ '^fteval-[0-9A-Za-z]{24}$'),
    team_id          text NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    name             text NOT NULL DEFAULT '' CHECK (length(name) <= 256),
    file_id          text NOT NULL REFERENCES files (id),
    options          jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(options) = 'object'),
    -- an optional LLM judge of every answer against its reference
    -- ({url, model, prompt, max_tokens}, as an experiment's), its api_key
    -- sealed as experiments.judge_api_key_sealed
    judge            jsonb CHECK (judge IS NULL OR jsonb_typeof(judge) = 'object'),
    judge_api_key_sealed text,
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
    created_at       timestamptz NOT NULL DEFAULT now(),
    queued_at        timestamptz NOT NULL DEFAULT now(),
    started_at       timestamptz,
    finished_at      timestamptz,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CHECK (attempt <= max_attempts),
    CHECK (status NOT IN ('dispatched', 'running')
           OR (worker_id IS NOT NULL AND lease_expires_at IS NOT NULL)),
    CHECK ((status IN ('succeeded', 'failed', 'cancelled')) = (finished_at IS NOT NULL)),
    CHECK (status <> 'failed' OR error IS NOT NULL)
);
CREATE INDEX evals_team_idx ON evals (team_id, created_at DESC, id DESC);
CREATE INDEX evals_queue_idx ON evals (priority DESC, queued_at, id) WHERE status = 'queued';
CREATE INDEX evals_lease_idx ON evals (lease_expires_at)
    WHERE status IN ('dispatched', 'running', 'cancelling');

-- The models an evaluation compares, in the order given: a base model, or
-- a version on its base. result holds the metrics, rows the answers and
-- per-row scores (written by the scheduler from ft-train eval's "result"
-- line, once per model; a retried attempt overwrites them).
CREATE TABLE eval_models (
    eval_id          text NOT NULL REFERENCES evals (id) ON DELETE CASCADE,
    position         integer NOT NULL CHECK (position BETWEEN 0 AND 7),
    model            text NOT NULL CHECK (length(model) BETWEEN 1 AND 512),
    base_model_id    text NOT NULL REFERENCES base_models (id),
    model_version_id text REFERENCES model_versions (id) ON DELETE SET NULL,
    result           jsonb CHECK (result IS NULL OR jsonb_typeof(result) = 'object'),
    rows             jsonb CHECK (rows IS NULL OR jsonb_typeof(rows) = 'array'),
    completed_at     timestamptz,
    PRIMARY KEY (eval_id, position)
);
CREATE INDEX eval_models_version_idx ON eval_models (model_version_id)
    WHERE model_version_id IS NOT NULL;

-- The LLM judge's verdict on one answer (eval_models.rows[row_index])
-- against its reference, asked in both orders (ft/judge.h): win (the
-- answer is better), tie, loss. Created pending when the model's result
-- arrives (a retried attempt's result sets them pending again); ft-
-- scheduler's judge thread decides them as it decides experiments'.
CREATE TABLE eval_judgments (
    eval_id         text NOT NULL,
    position        integer NOT NULL,
    row_index       integer NOT NULL CHECK (row_index >= 0),
    status          text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'done', 'failed')),
    outcome         text CHECK (outcome IN ('win', 'tie', 'loss')),
    verdicts        jsonb,
    attempts        integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at timestamptz,
    error           text,
    decided_at      timestamptz,
    PRIMARY KEY (eval_id, position, row_index),
    FOREIGN KEY (eval_id, position) REFERENCES eval_models (eval_id, position) ON DELETE CASCADE,
    CHECK ((status = 'done') = (outcome IS NOT NULL)),
    CHECK (status <> 'pending' OR next_attempt_at IS NOT NULL)
);
CREATE INDEX eval_judgments_pending_idx ON eval_judgments (next_attempt_at)
    WHERE status = 'pending';

CREATE TABLE eval_transitions (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    eval_id     text NOT NULL REFERENCES evals (id) ON DELETE CASCADE,
    from_status text,
    to_status   text NOT NULL,
    attempt     integer NOT NULL,
    reason      text,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX eval_transitions_eval_idx ON eval_transitions (eval_id, id);

CREATE TABLE eval_events (
    id         text PRIMARY KEY CHECK (id ~ '^ftevent-[0-9A-Za-z]{24}$'),
    seq        bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    eval_id    text NOT NULL REFERENCES evals (id) ON DELETE CASCADE,
    attempt    integer NOT NULL DEFAULT 0,
    level      text NOT NULL DEFAULT 'info' CHECK (level IN ('info', 'warn', 'error')),
    type       text NOT NULL DEFAULT 'message' CHECK (type IN ('message', 'metrics', 'status')),
    message    text NOT NULL,
    data       jsonb,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX eval_events_eval_idx ON eval_events (eval_id, seq DESC);

-- ---- A/B experiments --------------------------------------------------------

-- An experiment on an endpoint (by id; the routing inside ft-serve reads
-- it). Assignment is sticky by a hash of the request's "user", or per
-- request (common/base/include/ft/experiment.h). The leader computes the
-- results on a period into experiment_results; guardrails stop arms.
CREATE TABLE experiments (
    id               text PRIMARY KEY CHECK (id ~ '^exp-[0-9A-Za-z]{24}$'),
    team_id          text NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    name             text NOT NULL CHECK (length(name) BETWEEN 1 AND 256),
    description      text NOT NULL DEFAULT '' CHECK (length(description) <= 4096),
    endpoint_id      text CHECK (endpoint_id ~ '^ep-[0-9A-Za-z]{24}$'),
    assignment       text NOT NULL DEFAULT 'user' CHECK (assignment IN ('user', 'request')),
    status           text NOT NULL DEFAULT 'draft'
                     CHECK (status IN ('draft', 'running', 'paused', 'stopped')),
    stop_reason      text,
    alpha            double precision NOT NULL DEFAULT 0.05 CHECK (alpha > 0 AND alpha <= 0.2),
    power            double precision NOT NULL DEFAULT 0.8 CHECK (power >= 0.5 AND power < 1),
    bootstrap_rounds integer NOT NULL DEFAULT 1000 CHECK (bootstrap_rounds BETWEEN 100 AND 10000),
    seed             bigint NOT NULL DEFAULT 0,
    guardrails       jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(guardrails) = 'object'),
    judge            jsonb CHECK (judge IS NULL OR jsonb_typeof(judge) = 'object'),
    -- the judge's bearer token, sealed with secret_key for this id (as
    -- endpoints.api_key_sealed; ft/crypto.h): never kept in clear
    judge_api_key_sealed text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    started_at       timestamptz,
    ended_at         timestamptz,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CHECK ((status = 'stopped') = (ended_at IS NOT NULL)),
    CHECK (status IN ('draft', 'stopped') OR started_at IS NOT NULL)  -- a draft may be stopped unstarted
);
CREATE INDEX experiments_team_idx ON experiments (team_id, created_at DESC, id DESC);
CREATE INDEX experiments_live_idx ON experiments (id) WHERE status IN ('running', 'paused');

-- Arms, position 0 the control. model is the reference as given (NAME/N
-- or NAME@ALIAS); model_version_id what it resolved to when the experiment
-- was created, and again when it started (then pinned). A version is not
-- deleted while an experiment that is not stopped names it (api/src/
-- registry.c); a stopped experiment keeps its arms' names and results.
CREATE TABLE experiment_arms (
    experiment_id    text NOT NULL REFERENCES experiments (id) ON DELETE CASCADE,
    position         integer NOT NULL CHECK (position BETWEEN 0 AND 15),
    name             text NOT NULL CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$'),
    model            text NOT NULL CHECK (length(model) BETWEEN 1 AND 512),
    model_version_id text REFERENCES model_versions (id) ON DELETE SET NULL,
    weight           double precision NOT NULL CHECK (weight >= 0 AND weight <= 1),
    status           text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'stopped')),
    stop_reason      text,
    stopped_at       timestamptz,
    PRIMARY KEY (experiment_id, position),
    UNIQUE (experiment_id, name),
    CHECK ((status = 'stopped') = (stopped_at IS NOT NULL))
);
CREATE INDEX experiment_arms_version_idx ON experiment_arms (model_version_id);

-- One pairwise judgment: arm_a's answer against arm_b's to one prompt. A
-- person's is done when it is made; an LLM judge's is pending until the
-- judge thread (scheduler/src/judge.c) has asked the judge in both orders.
CREATE TABLE judgments (
    id              text PRIMARY KEY CHECK (id ~ '^jdg-[0-9A-Za-z]{24}$'),
    experiment_id   text NOT NULL REFERENCES experiments (id) ON DELETE CASCADE,
    arm_a           integer NOT NULL,
    arm_b           integer NOT NULL,
    source          text NOT NULL CHECK (source IN ('human', 'llm')),
    judge           text NOT NULL CHECK (length(judge) BETWEEN 1 AND 256),
    status          text NOT NULL DEFAULT 'done' CHECK (status IN ('pending', 'done', 'failed')),
    outcome         text CHECK (outcome IN ('a', 'b', 'tie', 'both_bad')),
    response_a      text,
    response_b      text,
    prompt          text,
    answer_a        text,
    answer_b        text,
    verdicts        jsonb,
    comment         text CHECK (length(comment) <= 4096),
    attempts        integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at timestamptz,
    error           text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    decided_at      timestamptz,
    CHECK (arm_a <> arm_b),
    CHECK ((status = 'done') = (outcome IS NOT NULL)),
    CHECK (status <> 'pending' OR next_attempt_at IS NOT NULL),
    FOREIGN KEY (experiment_id, arm_a) REFERENCES experiment_arms (experiment_id, position),
    FOREIGN KEY (experiment_id, arm_b) REFERENCES experiment_arms (experiment_id, position)
);
CREATE INDEX judgments_experiment_idx ON judgments (experiment_id, created_at DESC, id DESC);
CREATE INDEX judgments_pending_idx ON judgments (next_attempt_at) WHERE status = 'pending';

-- Feedback on one answered request (request_log's id): thumbs, resolved,
-- escalated to a person. One row per response; a later POST updates it.
CREATE TABLE feedback (
    response_id text PRIMARY KEY CHECK (length(response_id) BETWEEN 1 AND 128),
    team_id     text NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    thumbs      text CHECK (thumbs IN ('up', 'down')),
    resolved    boolean,
    escalated   boolean,
    comment     text CHECK (length(comment) <= 4096),
    key_id      text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX feedback_team_idx ON feedback (team_id, created_at DESC, response_id DESC);

-- What the leader last computed for an experiment (docs/evaluation.md).
CREATE TABLE experiment_results (
    experiment_id text PRIMARY KEY REFERENCES experiments (id) ON DELETE CASCADE,
    computed_at   timestamptz NOT NULL DEFAULT now(),
    n_judgments   integer NOT NULL CHECK (n_judgments >= 0),
    results       jsonb NOT NULL CHECK (jsonb_typeof(results) = 'object')
);

-- ---- drift --------------------------------------------------------------------

-- One monitor per deployment (by id). The reference is the deployment's
-- first reference_requests requests in request_log; windows follow it.
CREATE TABLE drift_monitors (
    deployment_id      text PRIMARY KEY CHECK (deployment_id ~ '^dep-[0-9A-Za-z]{24}$'),
    team_id            text NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    reference_requests integer NOT NULL DEFAULT 1000
                       CHECK (reference_requests BETWEEN 50 AND 100000),
    min_window_requests integer NOT NULL DEFAULT 30 CHECK (min_window_requests BETWEEN 10 AND 100000),
    thresholds         jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(thresholds) = 'object'),
    refusal_patterns   jsonb NOT NULL DEFAULT '{}'
                       CHECK (jsonb_typeof(refusal_patterns) = 'object'),
    status             text NOT NULL DEFAULT 'collecting'
                       CHECK (status IN ('collecting', 'ok', 'alert')),
    reference_end      timestamptz,
    reference          jsonb,
    alert_since        timestamptz,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    CHECK ((status = 'collecting') = (reference_end IS NULL)),
    CHECK ((status = 'alert') = (alert_since IS NOT NULL))
);
CREATE INDEX drift_monitors_team_idx ON drift_monitors (team_id, created_at DESC, deployment_id DESC);

CREATE TABLE drift_windows (
    deployment_id text NOT NULL REFERENCES drift_monitors (deployment_id) ON DELETE CASCADE,
    granularity   text NOT NULL CHECK (granularity IN ('hour', 'day')),
    window_start  timestamptz NOT NULL,
    window_end    timestamptz NOT NULL,
    n_requests    integer NOT NULL CHECK (n_requests >= 0),
    metrics       jsonb NOT NULL CHECK (jsonb_typeof(metrics) = 'object'),
    alert         boolean NOT NULL,
    alerts        text[] NOT NULL DEFAULT '{}',
    computed_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (deployment_id, granularity, window_start),
    CHECK (window_end > window_start)
);
