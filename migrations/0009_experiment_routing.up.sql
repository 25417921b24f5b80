-- 0009_experiment_routing: wake the deployment controller (LISTEN
-- ft_deployments, migration 0007) when what it pushes to ft-serve about an
-- experiment changes: an experiment created, started, paused, stopped or
-- moved to another endpoint, an arm stopped by hand or by a guardrail
-- (scheduler/src/deploy.c, ft/experiment.h's routing table). The
-- controller also polls every deploy_interval_ms; these make it prompt.
--
-- Expand only: two triggers on existing tables, calling 0007's function.
-- The request log needs no new column: experiment_arm (0006) already holds
-- "<experiment id>:<arm name>", which ft-serve now fills when it routes.

CREATE TRIGGER experiments_notify AFTER INSERT OR UPDATE OF status, endpoint_id ON experiments
    FOR EACH STATEMENT EXECUTE FUNCTION ft_deployments_notify();
CREATE TRIGGER experiment_arms_notify AFTER UPDATE OF status ON experiment_arms
    FOR EACH STATEMENT EXECUTE FUNCTION ft_deployments_notify();
