-- 0006_request_log: drop the request log (its rows are lost).
DROP TABLE request_log;
