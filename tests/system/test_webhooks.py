"""Webhook delivery by ft-scheduler to a real HTTP receiver on loopback:
Standard Webhooks signatures verified with the independent `standardwebhooks`
package, retries after 500s, 410 disables the endpoint, the SSRF guard
refuses loopback unless allow-listed, secret rotation signs with both."""
import http.server
import json
import threading
import time

import psycopg
import pytest
from standardwebhooks.webhooks import Webhook

from test_scheduler import SimWorker, Sched, _ident, job_row, seed, wait_for  # noqa: F401
from test_scheduler import migrated_db, rurl  # noqa: F401  (fixtures)


class Receiver:
    def __init__(self, statuses):
        self.statuses = list(statuses)   # status to answer per request; last one repeats
        self.requests = []
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["content-length"]))
                outer.requests.append((dict(self.headers), body, time.monotonic()))
                code = outer.statuses.pop(0) if len(outer.statuses) > 1 else outer.statuses[0]
                self.send_response(code)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.srv.server_address[1]}/hooks"
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def close(self):
        self.srv.shutdown()


@pytest.fixture
def hook_sched(build_dir, migrated_db, rurl, tmp_path):  # noqa: F811
    s = Sched(build_dir, migrated_db, rurl, tmp=tmp_path)
    s.env_extra = {}
    yield s
    s.stop()


def start(s, **env):
    import os
    import subprocess
    e = dict(os.environ, FT_DATABASE_URL=s.db, FT_REDIS_URL=s.rurl, FT_LEASE_MS="1500",
             FT_SCHED_TICK_MS="50", FT_WEBHOOK_ALLOW_HTTP="true", FT_WEBHOOK_BACKOFF_MS="200", **env)
    log = open(s.tmp / f"sched{len(s.procs)}.log", "w")
    p = subprocess.Popen([str(s.build_dir / "scheduler" / "ft-scheduler")], env=e, stdout=log, stderr=log)
    s.procs.append(p)
    return p


def add_webhook(db, team, url, secret, events=("fine_tuning.job.succeeded",), previous=None):
    wid = _ident("wh")
    with psycopg.connect(db, autocommit=True) as c:
        c.execute("INSERT INTO webhooks (id, team_id, url, events, secret, previous_secret,"
                  " previous_secret_expires_at) VALUES (%s, %s, %s, %s, %s, %s,"
                  " CASE WHEN %s::text IS NULL THEN NULL ELSE now() + interval '1 hour' END)",
                  (wid, team, url, list(events), secret, previous, previous))
    return wid


def run_job_to_success(db, rurl):  # noqa: F811
    team, (job,) = seed(db)
    w = SimWorker(rurl)
    w.beat()
    return team, job, w


def finish(w, job, db):
    m = w.take()
    assert m["job"] == job
    w.event(job, 1, "started")
    w.event(job, 1, "succeeded", {"fine_tuned_model": "m"})
    wait_for(lambda: job_row(db, job)[0] == "succeeded", what="succeeded")


def deliveries(db, wid):
    with psycopg.connect(db) as c:
        return c.execute("SELECT status, attempts, last_status_code, last_error FROM webhook_deliveries"
                         " WHERE webhook_id = %s", (wid,)).fetchall()


SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def test_signed_delivery_verifies_and_retries_after_500(hook_sched, migrated_db, rurl):  # noqa: F811
    rec = Receiver([500, 500, 200])
    try:
        team, job, w = run_job_to_success(migrated_db, rurl)
        wid = add_webhook(migrated_db, team, rec.url, SECRET)
        start(hook_sched, FT_WEBHOOK_ALLOW_CIDRS="127.0.0.1/32")
        finish(w, job, migrated_db)
        wait_for(lambda: deliveries(migrated_db, wid)[0][0] == "succeeded", what="delivered")
        assert deliveries(migrated_db, wid)[0][:3] == ("succeeded", 3, 200)
        assert len(rec.requests) == 3
        ids = {r[0]["webhook-id"] for r in rec.requests}
        assert len(ids) == 1                      # same message id on every retry
        gaps = [b[2] - a[2] for a, b in zip(rec.requests, rec.requests[1:])]
        assert gaps[0] >= 0.15 and gaps[1] >= 0.3  # 200 ms then 400 ms, -20% jitter
        for headers, body, _ in rec.requests:
            payload = Webhook(SECRET).verify(body, {k.lower(): v for k, v in headers.items()})
            assert payload["type"] == "fine_tuning.job.succeeded"
            assert payload["data"]["id"] == job
        # A tampered body does not verify.
        headers, body, _ = rec.requests[-1]
        with pytest.raises(Exception):
            Webhook(SECRET).verify(body.replace(b"succeeded", b"failed!!!"),
                                   {k.lower(): v for k, v in headers.items()})
    finally:
        rec.close()


def test_rotation_signs_with_both_secrets(hook_sched, migrated_db, rurl):  # noqa: F811
    rec = Receiver([200])
    new = "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldY"
    try:
        team, job, w = run_job_to_success(migrated_db, rurl)
        add_webhook(migrated_db, team, rec.url, new, previous=SECRET)
        start(hook_sched, FT_WEBHOOK_ALLOW_CIDRS="127.0.0.1/32")
        finish(w, job, migrated_db)
        wait_for(lambda: rec.requests, what="a request")
        headers, body, _ = rec.requests[0]
        h = {k.lower(): v for k, v in headers.items()}
        assert len(h["webhook-signature"].split(" ")) == 2
        Webhook(new).verify(body, h)        # receivers on the new secret accept it
        Webhook(SECRET).verify(body, h)     # and so do those still on the old one
    finally:
        rec.close()


def test_410_disables_the_endpoint(hook_sched, migrated_db, rurl):  # noqa: F811
    rec = Receiver([410])
    try:
        team, job, w = run_job_to_success(migrated_db, rurl)
        wid = add_webhook(migrated_db, team, rec.url, SECRET)
        start(hook_sched, FT_WEBHOOK_ALLOW_CIDRS="127.0.0.1/32")
        finish(w, job, migrated_db)
        wait_for(lambda: deliveries(migrated_db, wid)[0][0] == "failed", what="failed delivery")
        with psycopg.connect(migrated_db) as c:
            enabled, reason = c.execute("SELECT enabled, disabled_reason FROM webhooks WHERE id = %s",
                                        (wid,)).fetchone()
        assert enabled is False and "410" in reason
        assert len(rec.requests) == 1
    finally:
        rec.close()


@pytest.mark.parametrize("host", ["127.0.0.1", "2130706433", "0x7f000001", "[::ffff:127.0.0.1]", "localhost"])
def test_ssrf_guard_refuses_loopback_without_allow_list(hook_sched, migrated_db, rurl, host):  # noqa: F811
    rec = Receiver([200])
    try:
        port = rec.srv.server_address[1]
        team, job, w = run_job_to_success(migrated_db, rurl)
        wid = add_webhook(migrated_db, team, f"http://{host}:{port}/hooks", SECRET)
        start(hook_sched)   # no allow-list
        finish(w, job, migrated_db)
        wait_for(lambda: deliveries(migrated_db, wid) and deliveries(migrated_db, wid)[0][1] >= 1,
                 what="an attempt")
        status, attempts, code, error = deliveries(migrated_db, wid)[0]
        assert status == "pending" and code is None   # refused, retried later, never sent
        assert "loopback" in error
        assert rec.requests == []
    finally:
        rec.close()
