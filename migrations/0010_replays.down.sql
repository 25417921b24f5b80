DROP TABLE experiment_replay_answers;
DROP TABLE experiment_replays;
