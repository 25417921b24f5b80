"""The request log's retention (request_log_retention_days, scheduler/src/
reqlog.c): ft-scheduler's leader deletes request_log rows older than the
setting, in batches, and keeps, whatever their age, the rows of experiments
whose results may still change and each drift monitor's reference (all its
deployment's rows while it collects one).

The rows are written into a migrated database by hand, with ages on either
side of the limit; the expected survivors are counted by hand from that
table of ages, and the scheduler's metric must count exactly the others."""
import os
import re
import signal
import subprocess
import time

import httpx
import psycopg
import pytest

from conftest import run
from test_serve_reqlog import RedisServer

TEAM = "team-" + "R" * 24
EXP = {s: "exp-" + c * 24 for s, c in (("running", "A"), ("paused", "B"), ("stopped", "C"))}
UNKNOWN_EXP = "exp-" + "Z" * 24
DEP_OK, DEP_COLLECTING, DEP_OTHER = ("dep-" + c * 24 for c in "OCX")
PLAIN = 12000  # old rows of no experiment or monitor: three batches of 5000


def insert(c, prefix, n, age_days, dep=None, arm=None):
    c.execute(
        "INSERT INTO request_log (id, created_at, kind, stream, base_model, latency_ms, status,"
        " deployment_id, experiment_arm) SELECT %s || g, now() - make_interval(days => %s),"
        " 'chat', false, 'base', 12.5, 200, %s, %s FROM generate_series(1, %s) g",
        (prefix, age_days, dep, arm, n))


@pytest.fixture()
def db(build_dir, database_url):
    name = "ret_" + os.urandom(6).hex()
    with psycopg.connect(database_url, autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    url = database_url.rpartition("/")[0] + "/" + name
    run([str(build_dir / "migrations" / "ft-migrate"), "--database-url", url, "up"])
    yield url
    with psycopg.connect(database_url, autocommit=True) as c:
        c.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def test_old_rows_go_and_open_experiments_and_drift_references_stay(build_dir, db, tmp_path):
    with psycopg.connect(db, autocommit=True) as c:
        c.execute("INSERT INTO teams (id, name) VALUES (%s, 'retention')", (TEAM,))
        for status, eid in EXP.items():
            c.execute("INSERT INTO experiments (id, team_id, name, status, started_at, ended_at)"
                      " VALUES (%s, %s, %s, %s, now() - interval '60 days', %s)",
                      (eid, TEAM, status, status,
                       "2026-01-01T00:00:00Z" if status == "stopped" else None))
        # the stopped one's results were computed after it ended: final
        c.execute("INSERT INTO experiment_results (experiment_id, computed_at, n_judgments, results)"
                  " VALUES (%s, now(), 0, '{}')", (EXP["stopped"],))
        # a monitor whose reference ended 35 days ago, one still collecting
        c.execute("INSERT INTO drift_monitors (deployment_id, team_id, reference_requests, status,"
                  " reference_end, reference) VALUES (%s, %s, 50, 'ok', now() - interval '35 days',"
                  " %s)", (DEP_OK, TEAM, '{"summary": {"requests": 7}}'))
        c.execute("INSERT INTO drift_monitors (deployment_id, team_id, reference_requests)"
                  " VALUES (%s, %s, 50)", (DEP_COLLECTING, TEAM))
        insert(c, "plain-", PLAIN, 40)
        insert(c, "recent-", 20, 29, dep=DEP_OTHER)
        for status, eid in EXP.items():
            insert(c, f"exp-{status}-", 5, 45, arm=f"{eid}:control")
        insert(c, "exp-unknown-", 5, 45, arm=f"{UNKNOWN_EXP}:control")
        insert(c, "ref-", 7, 40, dep=DEP_OK)            # the reference: up to reference_end
        insert(c, "after-ref-", 6, 31, dep=DEP_OK)      # after it, older than 30 days
        insert(c, "after-ref-new-", 4, 3, dep=DEP_OK)   # after it, recent
        insert(c, "collecting-", 10, 40, dep=DEP_COLLECTING)
        insert(c, "other-old-", 3, 31, dep=DEP_OTHER)
        total = c.execute("SELECT count(*) FROM request_log").fetchone()[0]
    kept = {"recent-": 20, "exp-running-": 5, "exp-paused-": 5, "ref-": 7, "after-ref-new-": 4,
            "collecting-": 10}
    deleted = PLAIN + 5 + 5 + 6 + 3    # plain, the stopped experiment's, the unknown one's, ...
    assert total == sum(kept.values()) + deleted

    rs = RedisServer(tmp_path).start()
    log = tmp_path / "sched.log"
    env = dict(os.environ, FT_DATABASE_URL=db, FT_REDIS_URL=rs.url, FT_SCHED_TICK_MS="50",
               FT_LOG_LEVEL="info", FT_METRICS_PORT="0", FT_REQUEST_LOG_RETENTION_DAYS="30")
    p = subprocess.Popen([str(build_dir / "scheduler" / "ft-scheduler")], env=env,
                         stdout=open(log, "w"), stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 60
        while "rows older than 30 days deleted" not in log.read_text():
            assert p.poll() is None and time.time() < deadline, log.read_text()[-3000:]
            time.sleep(0.1)
        # a pass over the whole backlog; one that ran out of its second
        # goes on at the next tick: wait for the count to settle
        with psycopg.connect(db) as c:
            while c.execute("SELECT count(*) FROM request_log").fetchone()[0] > sum(kept.values()):
                assert time.time() < deadline, "retention left old rows"
                time.sleep(0.1)
            ids = [r[0] for r in c.execute("SELECT id FROM request_log")]
        left = {}
        for i in ids:
            left[re.sub(r"\d+$", "", i)] = left.get(re.sub(r"\d+$", "", i), 0) + 1
        assert left == kept
        port = re.search(r"metrics on http://[0-9.]+:(\d+)", log.read_text()).group(1)
        m = httpx.get(f"http://127.0.0.1:{port}/metrics").text
        assert re.search(r"^ft_request_log_expired_total (\S+)$", m, re.M).group(1) == str(deleted)
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(30)
        rs.stop()
    assert p.returncode == 0, log.read_text()[-3000:]
    assert "ERROR" not in log.read_text() and "AddressSanitizer" not in log.read_text()
