"""The whole platform for the registry's system tests (test_registry*.py):
ft-api on a fresh migrated database, ft-scheduler, ft-worker(s) running the
real ft-train on the bundled tiny model, a webhook receiver on loopback whose
deliveries are verified with the `standardwebhooks` package, and helpers
that run short real jobs. Nothing is simulated."""
import hashlib
import http.server
import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import psycopg
from standardwebhooks.webhooks import Webhook

from api_helpers import client, upload, wait_status

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "data" / "customer-service"
MODEL = ROOT / "data" / "models" / "ftplat-tiny-cs"


class Receiver:
    """Records every webhook POST; verify() checks signatures."""

    def __init__(self):
        self.requests = []
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["content-length"]))
                outer.requests.append((dict(self.headers), body))
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.srv.server_address[1]}/hooks"
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def events(self, secret, type_=None):
        """Verified payloads (standardwebhooks raises on a bad signature)."""
        wh = Webhook(secret)
        out = []
        for headers, body in list(self.requests):
            h = {k.lower(): v for k, v in headers.items()}
            p = wh.verify(body, h)
            if type_ is None or p["type"] == type_:
                out.append(p)
        return out

    def close(self):
        self.srv.shutdown()


def manifest_digest(folder):
    """The digest ftplat gives a folder: SHA-256 of its manifest (worker/src/store.c:
    files sorted by path, compact JSON with sorted keys), computed here alone."""
    files = []
    for p in sorted(Path(folder).rglob("*")):
        rel = p.relative_to(folder).as_posix()
        if p.is_file() and not any(part.startswith(".") for part in rel.split("/")):
            data = p.read_bytes()
            files.append({"path": rel, "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)})
    files.sort(key=lambda f: f["path"])
    m = {"format": "ftplat-manifest-1", "files": files}
    return hashlib.sha256(json.dumps(m, separators=(",", ":"), sort_keys=True).encode()).hexdigest()


class Platform:
    def __init__(self, api, build_dir, redis_url, tmp, lease_ms=6000, **sched_env):
        self.api, self.build_dir, self.tmp = api, build_dir, tmp
        rdb = redis_url.rsplit("/", 1)[0] + "/13"
        import redis
        redis.Redis.from_url(rdb).flushdb()
        self.env = dict(os.environ, FT_DATABASE_URL=api.db_url, FT_REDIS_URL=rdb,
                        FT_STORE_DIR=str(api.store_dir), FT_WORK_DIR=str(tmp / "work"),
                        FT_TRAINER_PATH=str(build_dir / "trainer" / "ft-train"),
                        FT_SCHED_TICK_MS="50", FT_HEARTBEAT_MS="300", FT_LEASE_MS=str(lease_ms),
                        FT_LOG_LEVEL="info", FT_NUM_THREADS="2", FT_CHECKPOINT_STEPS="2",
                        FT_WEBHOOK_ALLOW_HTTP="true", FT_WEBHOOK_ALLOW_CIDRS="127.0.0.1/32",
                        FT_WEBHOOK_BACKOFF_MS="200", FT_GC_INTERVAL_S="0", FT_GC_GRACE_S="2")
        self.env.update(sched_env)
        self.sched = self._start("scheduler", "ft-scheduler", "sched.log")
        self.workers = {}
        self.start_worker("wrk-reg-1")

    def _start(self, folder, exe, log, **env):
        e = dict(self.env, **env)
        return subprocess.Popen([str(self.build_dir / folder / exe)], env=e,
                                stdout=open(self.tmp / log, "a"), stderr=subprocess.STDOUT)

    def start_worker(self, wid, **env):
        """Starts a worker and waits for its "up" line: a worker stopped while it
        still starts (ASan's start, before main's SIGTERM handler) would die of the
        signal, exit -15, and fail the teardown's check (seen with -k selections
        that end a module right after a start)."""
        env = dict({"FT_CACHE_DIR": str(self.tmp / f"cache-{wid}")}, **env)
        log, up = self.tmp / f"{wid}.log", f"worker {wid} up"
        before = log.read_text().count(up) if log.exists() else 0
        p = self.workers[wid] = self._start("worker", "ft-worker", f"{wid}.log", FT_WORKER_ID=wid,
                                            **env)
        deadline = time.time() + 60
        while log.read_text().count(up) == before:
            assert p.poll() is None, f"{wid} exited {p.returncode}:\n{log.read_text()[-3000:]}"
            assert time.time() < deadline, f"{wid} not up after 60 s:\n{log.read_text()[-3000:]}"
            time.sleep(0.05)
        return p

    def stop_worker(self, wid, sig=signal.SIGTERM):
        p = self.workers.pop(wid)
        p.send_signal(sig)
        rc = p.wait(60)
        assert sig != signal.SIGTERM or rc == 0, f"{wid} exited {rc}:\n{self.log(wid + '.log')[-3000:]}"

    def collect_now(self):
        """SIGUSR1: the leader collects unreferenced blobs at its next tick."""
        self.sched.send_signal(signal.SIGUSR1)

    def log(self, name):
        return (self.tmp / name).read_text()

    def stop(self):
        """Stop the scheduler and the workers; asserts each exited 0 (under
        ASan, a leak or a sanitizer report makes the exit status 1)."""
        procs = {"sched.log": self.sched, **{f"{w}.log": p for w, p in self.workers.items()}}
        for p in procs.values():
            p.send_signal(signal.SIGTERM)
        bad = []
        for log, p in procs.items():
            try:
                rc = p.wait(60)
            except subprocess.TimeoutExpired:
                p.kill()
                rc = "timeout"
            if rc != 0:
                bad.append(f"{log} exited {rc}:\n{self.log(log)[-3000:]}")
        assert not bad, "\n".join(bad)


def data_lines(name, n, start=0):
    return b"".join((DATA / name).read_bytes().splitlines(keepends=True)[start:start + n])


def run_job(api, key=None, timeout=300, **fields):
    """Create a job and wait for it to end; returns the job object."""
    with client(api, key) as c:
        r = c.post("/v1/fine_tuning/jobs", json=fields)
        assert r.status_code == 200, r.text
        job = r.json()["id"]
    return wait_status(api, job, ("succeeded", "failed", "cancelled"), key=key, timeout=timeout)


def wait_export(api, eid, key=None, timeout=300, want=("succeeded", "failed", "cancelled")):
    with client(api, key) as c:
        deadline = time.time() + timeout
        while True:
            e = c.get(f"/v1/registry/exports/{eid}").json()
            if e["status"] in want:
                return e
            assert time.time() < deadline, f"export stayed {e['status']}"
            time.sleep(0.1)


def store_blob(api, sha):
    return Path(api.store_dir) / "sha256" / sha[:2] / sha[2:]


def db(api):
    return psycopg.connect(api.db_url, autocommit=True)


def register_bundled_model(api, name="ftplat-tiny-cs"):
    with client(api) as c:
        r = c.post("/v1/models", json={"name": name, "path": str(MODEL)})
        assert r.status_code == 200, r.text
        return r.json()


def upload_data(api, name, n, start=0, key=None):
    return upload(api, data_lines(name, n, start), key=key, name=name)
