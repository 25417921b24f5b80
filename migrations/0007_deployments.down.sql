-- 0007_deployments: back to 0001's endpoints and deployments (their rows,
-- and the stopped deployments' history, are lost).
DROP TRIGGER model_aliases_notify ON model_aliases;
DROP TABLE deployments, endpoints CASCADE;
DROP FUNCTION ft_deployments_notify();
DROP FUNCTION ft_version_served_name(text);

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

ALTER TABLE experiments ADD CONSTRAINT experiments_endpoint_id_fkey
    FOREIGN KEY (endpoint_id) REFERENCES endpoints (id) ON DELETE SET NULL;
ALTER TABLE drift_windows ADD CONSTRAINT drift_windows_deployment_id_fkey
    FOREIGN KEY (deployment_id) REFERENCES deployments (id) ON DELETE CASCADE;
