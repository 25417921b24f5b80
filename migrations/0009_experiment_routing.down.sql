DROP TRIGGER experiment_arms_notify ON experiment_arms;
DROP TRIGGER experiments_notify ON experiments;
