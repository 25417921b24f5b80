"""The live event stream, GET /v1/fine_tuning/jobs/{id}/events?stream=true,
against the real ft-api and PostgreSQL: every event oldest first with its id,
the same JSON as the list route; resumed exactly after Last-Event-ID; a
heartbeat comment when idle; an "end" event and the end of the response once
the job is terminal; errors like every route; ft-api stops cleanly with
streams open; and `ftctl jobs events --follow` on it.

New events are written the way the scheduler writes them (INSERT into
job_events under the job's row lock), since no worker runs here; the whole
path with a real trainer is tests/system/test_console.py."""
import json
import os
import secrets
import subprocess
import threading
import time

import httpx
import psycopg
import pytest

from api_helpers import SFT_LINES, client, jsonl, register_tiny_model, upload, wait_status

HEARTBEAT_MS = 600


@pytest.fixture(scope="module")
def srv(build_dir, database_url, redis_url, tmp_path_factory):
    from conftest import _api_server
    s, name = _api_server(build_dir, database_url, redis_url, tmp_path_factory,
                          stream_poll_ms=50, stream_heartbeat_ms=HEARTBEAT_MS)
    register_tiny_model(s, tmp_path_factory.mktemp("m"))
    s.file = upload(s, jsonl(SFT_LINES))["id"]
    yield s
    rc = s.stop()
    with psycopg.connect(database_url, autocommit=True) as c:
        c.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    assert rc == 0, s.log_path.read_text()[-3000:]


def new_job(srv):
    with client(srv) as c:
        j = c.post("/v1/fine_tuning/jobs", json={"model": "tiny-llama", "training_file": srv.file}).json()
    wait_status(srv, j["id"], ("queued",))
    return j["id"]


def add_event(srv, job, n):
    """An event as ft-scheduler's persister writes one: under the job's lock."""
    eid = "ftevent-" + secrets.token_hex(10) + f"{n:04d}"
    with psycopg.connect(srv.db_url) as db:
        db.execute("SELECT 1 FROM jobs WHERE id = %s FOR UPDATE", (job,))
        db.execute("INSERT INTO job_events (id, job_id, attempt, level, type, message, data)"
                   " VALUES (%s, %s, 1, 'info', 'metrics', %s, %s)",
                   (eid, job, f"Step {n}: training loss=1.0", json.dumps({"type": "step", "step": n})))
    return eid


class Stream:
    """A raw text/event-stream reader on its own thread: frames as they come."""

    def __init__(self, srv, job, last_id=None, key=None):
        self.frames, self.comments, self.closed = [], [], False
        headers = {"Authorization": f"Bearer {key or srv.key}", "Accept": "text/event-stream"}
        if last_id:
            headers["Last-Event-ID"] = last_id
        self.resp_headers = None
        self.status = None
        ready = threading.Event()

        def run():
            with httpx.stream("GET", f"{srv.url}/v1/fine_tuning/jobs/{job}/events",
                              params={"stream": "true"}, headers=headers, timeout=30) as r:
                self.status, self.resp_headers = r.status_code, r.headers
                ready.set()
                frame = {}
                for line in r.iter_lines():
                    if line.startswith(":"):
                        self.comments.append((time.monotonic(), line))
                    elif line == "":
                        if frame:
                            self.frames.append(frame)
                        frame = {}
                    else:
                        k, _, v = line.partition(": ")
                        frame[k] = v
            self.closed = True
        self.t = threading.Thread(target=run, daemon=True)
        self.t.start()
        assert ready.wait(10)

    def events(self):
        return [f for f in self.frames if "data" in f and f.get("event") != "end"]

    def wait(self, cond, what, timeout=10):
        deadline = time.time() + timeout
        while not cond():
            assert time.time() < deadline, f"{what}: frames {self.frames}"
            time.sleep(0.02)


def test_stream_replays_then_follows_then_ends(srv):
    job = new_job(srv)
    s = Stream(srv, job)
    assert s.status == 200
    assert s.resp_headers["content-type"] == "text/event-stream"
    assert s.resp_headers["cache-control"] == "no-cache"
    with client(srv) as c:
        listed = list(reversed(c.get(f"/v1/fine_tuning/jobs/{job}/events").json()["data"]))
    s.wait(lambda: len(s.events()) >= len(listed), "the replay")
    assert s.frames[0] == {"retry": "3000"}
    # The same events as the list route, oldest first, each with its id.
    assert [json.loads(f["data"]) for f in s.events()] == listed
    assert [f["id"] for f in s.events()] == [e["id"] for e in listed]
    # New events arrive as they are written.
    ids = [add_event(srv, job, n) for n in range(1, 4)]
    s.wait(lambda: len(s.events()) == len(listed) + 3, "the new events")
    assert [f["id"] for f in s.events()[-3:]] == ids
    assert [json.loads(f["data"])["data"]["step"] for f in s.events()[-3:]] == [1, 2, 3]
    # Cancelling ends the job: its last event, then "end", then the response closes.
    with client(srv) as c:
        assert c.post(f"/v1/fine_tuning/jobs/{job}/cancel").status_code == 200
    s.wait(lambda: s.closed, "the end of the stream")
    assert s.frames[-1] == {"event": "end", "data": '{"status":"cancelled"}'}
    assert json.loads(s.events()[-1]["data"])["message"] == "Job cancelled"


def test_last_event_id_resumes_exactly_after_it(srv):
    job = new_job(srv)
    ids = [add_event(srv, job, n) for n in range(1, 6)]
    with client(srv) as c:
        assert c.post(f"/v1/fine_tuning/jobs/{job}/cancel").status_code == 200
        all_events = list(reversed(c.get(f"/v1/fine_tuning/jobs/{job}/events", params={"limit": 100}).json()["data"]))
    s = Stream(srv, job, last_id=ids[1])
    s.wait(lambda: s.closed, "a terminal job's stream ends by itself")
    got = [f["id"] for f in s.events()]
    after = [e["id"] for e in all_events]
    assert got == after[after.index(ids[1]) + 1:]
    assert got[:3] == ids[2:]


def test_heartbeat_when_idle(srv):
    job = new_job(srv)
    s = Stream(srv, job)
    t0 = time.monotonic()
    s.wait(lambda: len(s.comments) >= 2, "two heartbeats", timeout=HEARTBEAT_MS / 1000 * 4 + 2)
    assert all(c == ": heartbeat" for _, c in s.comments)
    gap = s.comments[1][0] - s.comments[0][0]
    assert HEARTBEAT_MS / 1000 * 0.8 <= gap <= HEARTBEAT_MS / 1000 * 2.5, gap
    assert s.comments[0][0] - t0 <= HEARTBEAT_MS / 1000 * 2.5
    with client(srv) as c:
        c.post(f"/v1/fine_tuning/jobs/{job}/cancel")
    s.wait(lambda: s.closed, "the end")


def test_stream_errors(srv):
    job = new_job(srv)
    _, rival = srv.make_team("rival-stream")
    viewer = srv.make_key(srv.team, "viewer")
    with client(srv) as c:
        r = c.get(f"/v1/fine_tuning/jobs/{job}/events", params={"stream": "yes"})
        assert r.status_code == 400 and r.json()["error"]["param"] == "stream"
        r = c.get(f"/v1/fine_tuning/jobs/{job}/events", params={"stream": "true", "limit": 5})
        assert r.status_code == 400 and r.json()["error"]["param"] == "limit"
        for bad in ("nonsense", "ftevent-" + "Z" * 24):
            r = c.get(f"/v1/fine_tuning/jobs/{job}/events", params={"stream": "true"},
                      headers={"Last-Event-ID": bad})
            assert r.status_code == 400 and r.json()["error"]["param"] == "Last-Event-ID", r.text
        other = new_job(srv)
        other_event = c.get(f"/v1/fine_tuning/jobs/{other}/events").json()["data"][0]["id"]
        r = c.get(f"/v1/fine_tuning/jobs/{job}/events", params={"stream": "true"},
                  headers={"Last-Event-ID": other_event})
        assert r.status_code == 400, "an event of another job is not a place to resume"
        assert c.get(f"/v1/fine_tuning/jobs/{'ftjob-' + 'Z' * 24}/events",
                     params={"stream": "true"}).status_code == 404
    with client(srv, rival) as c:
        r = c.get(f"/v1/fine_tuning/jobs/{job}/events", params={"stream": "true"})
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    s = Stream(srv, job, key=viewer)            # reading is a viewer's right
    assert s.status == 200
    with client(srv) as c:
        c.post(f"/v1/fine_tuning/jobs/{job}/cancel")
        c.post(f"/v1/fine_tuning/jobs/{other}/cancel")
    s.wait(lambda: s.closed, "the end")


def test_ftctl_follows_the_stream_until_the_job_ends(srv, build_dir, tmp_path):
    job = new_job(srv)
    env = dict(os.environ, HOME=str(tmp_path), FT_API_URL=srv.url, FT_API_KEY=srv.key)
    p = subprocess.Popen([str(build_dir / "cli" / "ftctl"), "--json", "jobs", "events", job, "--follow"],
                         env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(0.5)
    ids = [add_event(srv, job, n) for n in range(1, 4)]
    time.sleep(0.3)
    with client(srv) as c:
        c.post(f"/v1/fine_tuning/jobs/{job}/cancel")
        listed = list(reversed(c.get(f"/v1/fine_tuning/jobs/{job}/events").json()["data"]))
    out, err = p.communicate(timeout=30)
    assert p.returncode == 0, err
    printed = [json.loads(line) for line in out.splitlines()]
    assert printed == [dict(sorted(e.items())) for e in listed]
    assert ids == [e["id"] for e in printed if e["type"] == "metrics"]
    # Without --json: one line per event, oldest first, the last "Job cancelled".
    text = subprocess.run([str(build_dir / "cli" / "ftctl"), "jobs", "events", job, "--follow"], env=env,
                          capture_output=True, text=True, timeout=30)
    assert text.returncode == 0 and text.stdout.splitlines()[-1].endswith("Job cancelled")
    assert len(text.stdout.splitlines()) == len(listed)


def test_ftctl_resumes_after_a_restart(build_dir, database_url, redis_url, tmp_path_factory, tmp_path):
    """ft-api restarts while ftctl follows: ftctl reconnects with
    Last-Event-ID and prints every event once; the stopping ft-api ends its
    open streams and exits 0 (no suspended connection left behind)."""
    from conftest import _api_server
    s, name = _api_server(build_dir, database_url, redis_url, tmp_path_factory,
                          stream_poll_ms=50, stream_heartbeat_ms=HEARTBEAT_MS)
    try:
        register_tiny_model(s, tmp_path_factory.mktemp("m2"))
        s.file = upload(s, jsonl(SFT_LINES))["id"]
        job = new_job(s)
        env = dict(os.environ, HOME=str(tmp_path), FT_API_URL=s.url, FT_API_KEY=s.key)
        p = subprocess.Popen([str(build_dir / "cli" / "ftctl"), "--json", "jobs", "events", job, "--follow"],
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        first = [add_event(s, job, n) for n in range(1, 3)]
        time.sleep(0.8)
        assert s.stop() == 0, s.log_path.read_text()[-3000:]
        second = [add_event(s, job, n) for n in range(3, 5)]
        s.start()
        time.sleep(1.5)
        with client(s) as c:
            c.post(f"/v1/fine_tuning/jobs/{job}/cancel")
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
        got = [json.loads(line)["id"] for line in out.splitlines()]
        assert len(got) == len(set(got)), "an event was printed twice"
        metrics = [i for i in got if i in first + second]
        assert metrics == first + second
    finally:
        rc = s.stop()
        with psycopg.connect(database_url, autocommit=True) as c:
            c.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    assert rc == 0
