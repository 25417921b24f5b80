-- 0006_request_log: one row per request ft-serve answered (chat and
-- completions, streamed or not, errors and client disconnects included),
-- persisted exactly once by the scheduler leader from the Redis stream
-- ft:requests (scheduler/src/reqlog.c). The columns are the fields of
-- common/services/include/ft/reqlog.h, which is the one list of them: the
-- scheduler's INSERT is built from that table, column by column, by name.
-- Append-only and high-volume: no foreign keys (a row must never be
-- refused because a version or deployment was deleted), a BRIN index on
-- created_at for retention and time scans, and B-tree indexes for the
-- per-deployment and per-version time ranges that A/B experiments and
-- drift monitoring read.
CREATE TABLE request_log (
    id                text PRIMARY KEY,
    created_at        timestamptz NOT NULL,
    kind              text NOT NULL,
    stream            boolean NOT NULL,
    team_id           text,
    model             text,
    base_model        text NOT NULL,
    adapter           text,
    version_id        text,
    deployment_id     text,
    experiment_arm    text,
    prompt_tokens     integer CHECK (prompt_tokens >= 0),
    completion_tokens integer CHECK (completion_tokens >= 0),
    ttft_ms           double precision CHECK (ttft_ms >= 0),
    latency_ms        double precision NOT NULL CHECK (latency_ms >= 0),
    finish_reason     text,
    status            integer NOT NULL CHECK (status BETWEEN 100 AND 599),
    error_code        text,
    prompt            text,
    completion        text,
    prompt_byte_tokens     integer CHECK (prompt_byte_tokens >= 0),
    completion_byte_tokens integer CHECK (completion_byte_tokens >= 0),
    embedding         text,
    persisted_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX request_log_deployment_idx ON request_log (deployment_id, created_at)
    WHERE deployment_id IS NOT NULL;
CREATE INDEX request_log_version_idx ON request_log (version_id, created_at)
    WHERE version_id IS NOT NULL;
CREATE INDEX request_log_team_idx ON request_log (team_id, created_at DESC, id DESC)
    WHERE team_id IS NOT NULL;
CREATE INDEX request_log_created_brin ON request_log USING brin (created_at);
