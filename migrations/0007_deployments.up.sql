-- ft:contract
-- 0007_deployments: endpoints and deployments as ft-api takes them and the
-- scheduler's deployment controller makes them true (docs/deployments.md,
-- scheduler/src/deploy.c).
--
-- A contract migration: it replaces the two tables 0001 sketched. No release
-- ever wrote a row in either (nothing inserted into them before this one),
-- so nothing is lost, and the previous release's one reader, ft-api's
-- version delete ("deployments WHERE model_version_id = $1 AND status IN
-- ('pending', 'active')"), still runs against the new shape: both columns
-- keep their names and types. The tables are dropped and created whole
-- rather than altered so that their indexes are built on empty tables made
-- here (lint.py's rule against CREATE INDEX on a live table) and the shape
-- reads in one place. experiments.endpoint_id and drift_windows.deployment_id
-- get their foreign keys back under their 0001 names.

DROP TABLE deployments, endpoints CASCADE;

-- An inference server the platform publishes model versions to. kind says
-- how: ftserve and vllm are driven through vLLM's LoRA routes, llamacpp gets
-- GGUF exports and the llama-server command that serves them. api_key is
-- the endpoint's bearer token, sealed (ft/crypto.h's secret box: AES-256-GCM
-- under the platform's secret_key, the endpoint's id as associated data);
-- it is never returned by the API. health is the controller's last probe.
CREATE TABLE endpoints (
    id             text PRIMARY KEY CHECK (id ~ '^ep-[0-9A-Za-z]{24}$'),
    team_id        text NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    name           text NOT NULL CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'),
    kind           text NOT NULL CHECK (kind IN ('ftserve', 'vllm', 'llamacpp')),
    url            text NOT NULL CHECK (length(url) BETWEEN 1 AND 2048),
    api_key_sealed text CHECK (api_key_sealed LIKE 'fts1.%'),
    health         text NOT NULL DEFAULT 'unknown'
                   CHECK (health IN ('unknown', 'ok', 'unreachable')),
    health_reason  text,
    checked_at     timestamptz,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (team_id, name)
);
CREATE INDEX endpoints_team_idx ON endpoints (team_id, created_at DESC, id DESC);

-- A model version on an endpoint: a fixed version ("support-bot/3",
-- "ft:BASE:JOB"), or whatever an alias names ("support-bot@production",
-- alias set): then model_version_id follows the alias, moved by the
-- controller when it sees the alias move. loaded_version_id is the version
-- whose names the endpoint holds now (NULL: none), so a move knows what to
-- unload. A deployment is never deleted: DELETE stops it (stopped_at), and
-- unloaded says the controller has taken its names off the endpoint.
-- llamacpp holds, for llamacpp endpoints, the exports the controller queued
-- and the command it derived (docs/deployments.md).
CREATE TABLE deployments (
    id                  text PRIMARY KEY CHECK (id ~ '^dep-[0-9A-Za-z]{24}$'),
    team_id             text NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    endpoint_id         text NOT NULL REFERENCES endpoints (id) ON DELETE CASCADE,
    model               text NOT NULL CHECK (length(model) BETWEEN 1 AND 512),
    registered_model_id text REFERENCES registered_models (id) ON DELETE CASCADE,
    alias               text CHECK (alias ~ '^[a-z][a-z0-9_-]{0,63}$'),
    model_version_id    text REFERENCES model_versions (id) ON DELETE SET NULL,
    loaded_version_id   text REFERENCES model_versions (id) ON DELETE SET NULL,
    traffic_weight      integer NOT NULL DEFAULT 100 CHECK (traffic_weight BETWEEN 0 AND 100),
    status              text NOT NULL DEFAULT 'pending'
                        CHECK (status IN ('pending', 'loading', 'ready', 'failed', 'stopped')),
    status_reason       text CHECK (length(status_reason) <= 2048),
    log_texts           boolean NOT NULL DEFAULT false,
    gguf_type           text NOT NULL DEFAULT 'Q8_0'
                        CHECK (gguf_type IN ('F32', 'F16', 'Q8_0', 'Q4_0', 'Q4_K_M')),
    llamacpp            jsonb CHECK (jsonb_typeof(llamacpp) = 'object'),
    unloaded            boolean NOT NULL DEFAULT false,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    ready_at            timestamptz,
    stopped_at          timestamptz,
    CHECK ((status = 'stopped') = (stopped_at IS NOT NULL)),
    CHECK (status = 'stopped' OR model_version_id IS NOT NULL),
    CHECK (alias IS NULL OR registered_model_id IS NOT NULL)
);
CREATE INDEX deployments_team_idx ON deployments (team_id, created_at DESC, id DESC);
CREATE INDEX deployments_endpoint_idx ON deployments (endpoint_id)
    WHERE status <> 'stopped' OR NOT unloaded;
CREATE INDEX deployments_version_idx ON deployments (model_version_id)
    WHERE status <> 'stopped';
-- one live deployment of a model reference per endpoint
CREATE UNIQUE INDEX deployments_live_model_idx ON deployments (endpoint_id, model)
    WHERE status <> 'stopped';

ALTER TABLE experiments ADD CONSTRAINT experiments_endpoint_id_fkey
    FOREIGN KEY (endpoint_id) REFERENCES endpoints (id) ON DELETE SET NULL;
ALTER TABLE drift_windows ADD CONSTRAINT drift_windows_deployment_id_fkey
    FOREIGN KEY (deployment_id) REFERENCES deployments (id) ON DELETE CASCADE;

-- The name an endpoint serves a version under: its job's fine_tuned_model
-- ("ft:BASE:JOB", OpenAI's name) when the version is a job's, else
-- "NAME/N" (a promoted checkpoint). ft-api shows it, the controller loads
-- it: one definition for both.
CREATE FUNCTION ft_version_served_name(vid text) RETURNS text LANGUAGE sql STABLE AS $$
    SELECT coalesce(j.fine_tuned_model, v.name || '/' || v.version)
      FROM model_versions v
      LEFT JOIN jobs j ON j.id = v.job_id AND v.source = 'job'
     WHERE v.id = vid
$$;

-- Wake the controller (LISTEN ft_deployments) when what it makes true
-- changes: a deployment created or stopped, an endpoint created or changed,
-- an alias set, moved or removed. Its own writes (status, loaded version)
-- do not touch these columns.
CREATE FUNCTION ft_deployments_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('ft_deployments', TG_TABLE_NAME);
    RETURN NULL;
END
$$;
CREATE TRIGGER deployments_notify AFTER INSERT OR UPDATE OF stopped_at ON deployments
    FOR EACH STATEMENT EXECUTE FUNCTION ft_deployments_notify();
CREATE TRIGGER endpoints_notify AFTER INSERT OR UPDATE OF url, api_key_sealed ON endpoints
    FOR EACH STATEMENT EXECUTE FUNCTION ft_deployments_notify();
CREATE TRIGGER model_aliases_notify AFTER INSERT OR UPDATE OR DELETE ON model_aliases
    FOR EACH STATEMENT EXECUTE FUNCTION ft_deployments_notify();
