-- 0010_replays: replays of a prompt set through an experiment's arms
-- (POST /v1/experiments/{id}/replays, docs/evaluation.md "Replays"). ft-api
-- reads the team's chat JSONL file once, checks every row, and keeps the
-- prompts here; ft-scheduler's replay thread (scheduler/src/replay.c)
-- claims a replay, sends each prompt to every arm of arms on the
-- experiment's endpoint (greedy), keeps the answers, and, when the
-- experiment has an LLM judge, makes one pending judgment per row per
-- non-control arm against the control (the judgments table of 0008).
--
-- Expand only: two new tables; no existing table changes.

CREATE TABLE experiment_replays (
    id                text PRIMARY KEY CHECK (id ~ '^rpl-[0-9A-Za-z]{24}$'),
    experiment_id     text NOT NULL REFERENCES experiments (id) ON DELETE CASCADE,
    team_id           text NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    file_id           text NOT NULL CHECK (file_id ~ '^file-[0-9A-Za-z]{24}$'),
    max_rows          integer NOT NULL CHECK (max_rows BETWEEN 1 AND 2000),
    max_tokens        integer NOT NULL CHECK (max_tokens BETWEEN 1 AND 4096),
    -- the arms' positions answering, as they were active when it was made
    arms              integer[] NOT NULL CHECK (cardinality(arms) BETWEEN 1 AND 16),
    -- each row's prompt: [{"role", "content"}], in file order
    prompts           jsonb NOT NULL CHECK (jsonb_typeof(prompts) = 'array'),
    -- the file line of each prompt, for messages
    lines             integer[] NOT NULL,
    status            text NOT NULL DEFAULT 'queued'
                      CHECK (status IN ('queued', 'running', 'succeeded', 'failed')),
    rows_sent         integer NOT NULL DEFAULT 0 CHECK (rows_sent >= 0),
    judgments_created integer NOT NULL DEFAULT 0 CHECK (judgments_created >= 0),
    error             text,
    attempts          integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    -- queued or running: when it is due (a running one's lease runs out then)
    next_attempt_at   timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now(),
    started_at        timestamptz,
    finished_at       timestamptz,
    updated_at        timestamptz NOT NULL DEFAULT now(),
    CHECK ((status IN ('queued', 'running')) = (next_attempt_at IS NOT NULL)),
    CHECK ((status IN ('succeeded', 'failed')) = (finished_at IS NOT NULL))
);
CREATE INDEX experiment_replays_experiment_idx
    ON experiment_replays (experiment_id, created_at DESC, id DESC);
CREATE INDEX experiment_replays_due_idx
    ON experiment_replays (next_attempt_at) WHERE status IN ('queued', 'running');

-- One arm's answer to one row of a replay.
CREATE TABLE experiment_replay_answers (
    replay_id     text NOT NULL REFERENCES experiment_replays (id) ON DELETE CASCADE,
    row_index     integer NOT NULL CHECK (row_index >= 0),
    position      integer NOT NULL CHECK (position BETWEEN 0 AND 15),
    answer        text NOT NULL,
    finish_reason text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (replay_id, row_index, position)
);
