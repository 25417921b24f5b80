"""ft-scheduler against the real PostgreSQL and Redis, with simulated workers:
the test plays the worker side of the protocol in ft/wire.h (heartbeat keys,
inbox, event stream), so every scheduler decision can be observed and timed.
The real ft-worker + ft-train path is tested in test_dispatch_e2e.py."""
import json
import os
import secrets
import signal
import subprocess
import time

import psycopg
import pytest
import redis

from conftest import run

_db_counter = [0]


def _ident(prefix):
    alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
    return prefix + "-" + "".join(secrets.choice(alphabet) for _ in range(24))


@pytest.fixture
def migrated_db(build_dir, fresh_db):
    run([str(build_dir / "migrations" / "ft-migrate"), "--database-url", fresh_db, "up"])
    return fresh_db


@pytest.fixture
def rurl(redis_url):
    """A Redis database of its own for each test (1..15), emptied first."""
    _db_counter[0] = _db_counter[0] % 15 + 1
    base = redis_url.rsplit("/", 1)[0]
    url = f"{base}/{_db_counter[0]}"
    redis.Redis.from_url(url).flushdb()
    return url


class Sched:
    def __init__(self, build_dir, db, rurl, lease_ms=1500, tmp=None):
        self.procs = []
        self.build_dir, self.db, self.rurl, self.lease_ms, self.tmp = build_dir, db, rurl, lease_ms, tmp

    def start(self):
        env = dict(os.environ, FT_DATABASE_URL=self.db, FT_REDIS_URL=self.rurl,
                   FT_LEASE_MS=str(self.lease_ms), FT_SCHED_TICK_MS="50", FT_LOG_LEVEL="info")
        log = open(self.tmp / f"sched{len(self.procs)}.log", "w")
        p = subprocess.Popen([str(self.build_dir / "scheduler" / "ft-scheduler")], env=env,
                             stdout=log, stderr=log)
        self.procs.append(p)
        return p

    def stop(self):
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()


@pytest.fixture
def sched(build_dir, migrated_db, rurl, tmp_path):
    s = Sched(build_dir, migrated_db, rurl, tmp=tmp_path)
    yield s
    s.stop()


def seed(db, n_jobs=1, gpus=0, priority=0, team=None, max_attempts=3, max_concurrent=4, weight=1.0):
    """A team, a base model, a training file and n queued jobs; returns ids."""
    with psycopg.connect(db, autocommit=True) as c:
        if team is None:
            team = _ident("team")
            c.execute("INSERT INTO teams (id, name, max_concurrent_jobs, fair_share_weight)"
                      " VALUES (%s, %s, %s, %s)", (team, team, max_concurrent, weight))
        model = c.execute("SELECT id FROM base_models LIMIT 1").fetchone()
        if model:
            model = model[0]
        else:
            model = _ident("model")
            c.execute("INSERT INTO base_models (id, name, architecture, parameter_count, source_path)"
                      " VALUES (%s, 'tiny-llama', 'LlamaForCausalLM', 1000, '/models/tiny')", (model,))
        f = _ident("file")
        c.execute("INSERT INTO files (id, team_id, filename, purpose, bytes, sha256)"
                  " VALUES (%s, %s, 'train.jsonl', 'fine-tune', 10, %s)", (f, team, "ab" * 32))
        jobs = []
        for _ in range(n_jobs):
            j = _ident("ftjob")
            c.execute("INSERT INTO jobs (id, team_id, model, base_model_id, training_file_id, method, seed,"
                      " status, queued_at, requested_gpus, priority, max_attempts)"
                      " VALUES (%s, %s, 'tiny-llama', %s, %s, 'supervised', 42, 'queued', clock_timestamp(),"
                      " %s, %s, %s)", (j, team, model, f, gpus, priority, max_attempts))
            jobs.append(j)
    return team, jobs


class SimWorker:
    """The worker side of ft/wire.h, driven by the test."""

    def __init__(self, rurl, wid=None, gpus=0, slots=1, gpu_mem=80 << 30):
        self.r = redis.Redis.from_url(rurl, decode_responses=True)
        self.id = wid or _ident("wrk")
        self.gpus, self.slots, self.gpu_mem = gpus, slots, gpu_mem
        self.running = []
        self.seq = {}

    def beat(self, ttl_ms=4500):
        hb = {"id": self.id, "host": "sim", "pid": 1, "gpus": self.gpus, "gpu_mem": self.gpu_mem,
              "gpu_names": [], "slots": self.slots, "draining": False, "started_at": 0,
              "running": [{"job": j, "attempt": a} for j, a in self.running]}
        self.r.set(f"ft:worker:{self.id}", json.dumps(hb), px=ttl_ms)

    def take(self, timeout=10):
        got = self.r.brpop(f"ft:inbox:{self.id}", timeout=timeout)
        assert got, f"worker {self.id} got no message within {timeout}s"
        return json.loads(got[1])

    def event(self, job, attempt, kind, data=None, event_id=None):
        key = (job, attempt)
        self.seq[key] = self.seq.get(key, 0) + 1
        ev = {"id": event_id or _ident("ftevent"), "job": job, "attempt": attempt,
              "seq": self.seq[key], "worker": self.id, "kind": kind, "data": data or {}}
        self.r.xadd("ft:events", {"e": json.dumps(ev)})
        return ev


def wait_for(fn, timeout=15, what="condition"):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = fn()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def job_row(db, job):
    with psycopg.connect(db) as c:
        return c.execute("SELECT status, attempt, worker_id, lease_expires_at, error FROM jobs WHERE id = %s",
                         (job,)).fetchone()


def test_dispatch_and_event_persistence(sched, migrated_db, rurl):
    team, (job,) = seed(migrated_db)
    w = SimWorker(rurl)
    w.beat()
    sched.start()
    m = w.take()
    assert m["type"] == "assign" and m["job"] == job and m["attempt"] == 1
    assert m["config"]["model_path"] == "/models/tiny" and m["config"]["method"] == "supervised"
    assert m["inputs"]["training_file"] == "ab" * 32 and m["resume"] is None
    status, attempt, worker, lease, _ = job_row(migrated_db, job)
    assert (status, attempt, worker) == ("dispatched", 1, w.id) and lease is not None

    w.running.append((job, 1))
    w.beat()
    w.event(job, 1, "started")
    wait_for(lambda: job_row(migrated_db, job)[0] == "running", what="running")
    losses = [2.5, 2.0, 1.5]
    for step, loss in enumerate(losses, 1):
        w.event(job, 1, "progress", {"step": step, "total_steps": 3, "train_loss": loss,
                                     "learning_rate": 1e-4, "epoch": step / 3, "eta_seconds": 3 - step})
    w.event(job, 1, "eval", {"type": "eval", "step": 3, "eval_loss": 1.25, "eval_perplexity": 3.4903429574618414,
                             "eval_token_accuracy": 0.5})
    ck = w.event(job, 1, "checkpoint", {"step": 2, "manifest": "cd" * 32, "bytes": 1234})
    w.event(job, 1, "checkpoint", {"step": 2, "manifest": "cd" * 32, "bytes": 1234}, event_id=ck["id"])  # duplicate
    w.event(job, 1, "artifact", {"kind": "adapter", "manifest": "ef" * 32, "bytes": 99})
    w.event(job, 1, "succeeded", {"fine_tuned_model": f"ft:tiny-llama:{job}", "trained_tokens": 300})
    wait_for(lambda: job_row(migrated_db, job)[0] == "succeeded", what="succeeded")

    with psycopg.connect(migrated_db) as c:
        metrics = c.execute("SELECT step, train_loss FROM job_metrics WHERE job_id = %s ORDER BY step",
                            (job,)).fetchall()
        assert metrics == [(1, 2.5), (2, 2.0), (3, 1.5)]
        ev = c.execute("SELECT train_loss, eval_loss, eval_token_accuracy FROM job_metrics"
                       " WHERE job_id = %s AND step = 3", (job,)).fetchone()
        assert ev == (1.5, 1.25, 0.5)   # the eval joined the step's row
        msgs = [r[0] for r in c.execute("SELECT message FROM job_events WHERE job_id = %s ORDER BY seq", (job,))]
        assert "Step 2/3: training loss=2" in msgs
        assert "The job has successfully completed" in msgs
        assert c.execute("SELECT count(*) FROM checkpoints WHERE job_id = %s", (job,)).fetchone()[0] == 1
        kinds = sorted(r[0] for r in c.execute("SELECT kind FROM artifacts WHERE job_id = %s", (job,)))
        assert kinds == ["adapter", "checkpoint"]
        trans = [r[0] for r in c.execute("SELECT to_status FROM job_transitions WHERE job_id = %s ORDER BY id", (job,))]
        assert trans == ["dispatched", "running", "succeeded"]
        ftm, tokens, fin = c.execute("SELECT fine_tuned_model, trained_tokens, finished_at FROM jobs WHERE id = %s",
                                     (job,)).fetchone()
        assert ftm == f"ft:tiny-llama:{job}" and tokens == 300 and fin is not None
    # Every persisted event is acknowledged for the worker's spool.
    acked = w.r.smembers(f"ft:evack:{job}:1")
    assert acked == {str(i) for i in range(1, 10)}


def test_lost_worker_requeues_and_fences_stale_events(sched, migrated_db, rurl):
    _, (job,) = seed(migrated_db)
    a = SimWorker(rurl)
    a.beat(ttl_ms=800)
    sched.start()
    assert a.take()["attempt"] == 1
    a.running.append((job, 1))
    a.beat(ttl_ms=800)
    a.event(job, 1, "started")
    wait_for(lambda: job_row(migrated_db, job)[0] == "running", what="running")
    # Worker a dies: no more heartbeats. Its lease (1.5 s) runs out.
    b = SimWorker(rurl)
    t0 = time.monotonic()
    while True:
        b.beat()
        m = b.r.rpop(f"ft:inbox:{b.id}")
        if m:
            m = json.loads(m)
            break
        assert time.monotonic() - t0 < 15, "job was not redispatched"
        time.sleep(0.1)
    assert m["job"] == job and m["attempt"] == 2
    # A late "succeeded" from the dead attempt must not move the job.
    a.event(job, 1, "succeeded", {"fine_tuned_model": "stale"})
    b.running.append((job, 2))
    b.beat()
    b.event(job, 2, "started")
    wait_for(lambda: job_row(migrated_db, job)[0] == "running", what="running again")
    time.sleep(0.5)
    status, attempt, worker, _, _ = job_row(migrated_db, job)
    assert (status, attempt, worker) == ("running", 2, b.id)
    with psycopg.connect(migrated_db) as c:
        trans = [r[0] for r in c.execute("SELECT to_status FROM job_transitions WHERE job_id = %s ORDER BY id", (job,))]
        assert trans == ["dispatched", "running", "queued", "dispatched", "running"]


def test_gives_up_after_max_attempts(sched, migrated_db, rurl):
    _, (job,) = seed(migrated_db, max_attempts=1)
    a = SimWorker(rurl)
    a.beat(ttl_ms=600)
    sched.start()
    assert a.take()["attempt"] == 1
    wait_for(lambda: job_row(migrated_db, job)[0] == "failed", what="failed")
    err = job_row(migrated_db, job)[4]
    assert err["code"] == "worker_lost" and "gave up after 1 attempts" in err["message"]


def test_gang_placement_best_fit_and_priority(sched, migrated_db, rurl):
    team, (big,) = seed(migrated_db, gpus=8)
    _, (huge,) = seed(migrated_db, gpus=16, team=team)
    _, (small_lo,) = seed(migrated_db, gpus=2, team=team, priority=-5)
    _, (small_hi,) = seed(migrated_db, gpus=2, team=team, priority=10)
    w8 = SimWorker(rurl, gpus=8)
    w4 = SimWorker(rurl, gpus=4)
    for w in (w8, w4):
        w.beat()
    sched.start()

    def rows():
        with psycopg.connect(migrated_db) as c:
            return dict(c.execute("SELECT id, worker_id FROM jobs WHERE status = 'dispatched'").fetchall())
    got = wait_for(lambda: (lambda r: r if len(r) == 3 else None)(rows()), what="3 dispatches")
    assert got[big] == w8.id            # gang of 8 only fits the 8-GPU worker
    assert got[small_hi] == w4.id       # best fit: the 4-GPU worker, leaving the 8 free
    assert got[small_lo] == w4.id
    assert huge not in got              # 16 GPUs fit nowhere: it waits
    assert job_row(migrated_db, huge)[0] == "queued"


def test_fair_share_and_team_limits(sched, migrated_db, rurl):
    t1, jobs1 = seed(migrated_db, n_jobs=4, max_concurrent=10)
    t2, jobs2 = seed(migrated_db, n_jobs=4, max_concurrent=1)
    w = SimWorker(rurl, slots=4)
    w.beat()
    sched.start()

    def dispatched():
        with psycopg.connect(migrated_db) as c:
            return c.execute("SELECT team_id, count(*) FROM jobs WHERE status = 'dispatched' GROUP BY 1").fetchall()
    got = dict(wait_for(lambda: (lambda r: r if sum(n for _, n in r) == 4 else None)(dispatched()),
                        what="4 dispatches"))
    # Team 2 may run one job at a time; team 1 takes the other slots.
    assert got == {t1: 3, t2: 1}


def test_cancel_reaches_the_worker(sched, migrated_db, rurl):
    _, (job,) = seed(migrated_db)
    w = SimWorker(rurl)
    w.beat()
    sched.start()
    w.take()
    w.running.append((job, 1))
    w.beat()
    w.event(job, 1, "started")
    wait_for(lambda: job_row(migrated_db, job)[0] == "running", what="running")
    with psycopg.connect(migrated_db, autocommit=True) as c:
        c.execute("UPDATE jobs SET status = 'cancelling' WHERE id = %s", (job,))
    t0 = time.monotonic()
    m = w.take()
    latency = time.monotonic() - t0
    assert m == {"type": "cancel", "job": job, "attempt": 1}
    print(f"cancel latency (PostgreSQL -> worker inbox): {latency * 1000:.0f} ms")
    w.event(job, 1, "cancelled")
    wait_for(lambda: job_row(migrated_db, job)[0] == "cancelled", what="cancelled")


def test_standby_takes_over_when_leader_is_killed(sched, migrated_db, rurl):
    _, (j1,) = seed(migrated_db)
    w = SimWorker(rurl, slots=2)
    w.beat()
    leader = sched.start()
    assert w.take()["job"] == j1
    standby = sched.start()
    time.sleep(0.5)
    leader.send_signal(signal.SIGKILL)
    leader.wait()
    _, (j2,) = seed(migrated_db)
    t0 = time.monotonic()
    w.running.append((j1, 1))
    w.beat()
    m = w.take(timeout=15)
    print(f"failover: standby dispatched {time.monotonic() - t0:.2f} s after the leader was killed")
    assert m["job"] == j2
    assert standby.poll() is None


def test_redis_wipe_loses_nothing(sched, migrated_db, rurl):
    _, (job,) = seed(migrated_db)
    w = SimWorker(rurl)
    w.beat()
    sched.start()
    w.take()
    w.running.append((job, 1))
    w.beat()
    w.event(job, 1, "started")
    wait_for(lambda: job_row(migrated_db, job)[0] == "running", what="running")
    w.r.flushdb()   # the stream, its group, acks and heartbeats are gone
    # The worker re-registers and re-sends what was never acknowledged.
    w.beat()
    w.event(job, 1, "progress", {"step": 1, "train_loss": 1.0})
    w.event(job, 1, "succeeded", {"fine_tuned_model": "m"})
    wait_for(lambda: job_row(migrated_db, job)[0] == "succeeded", what="succeeded after wipe")
    with psycopg.connect(migrated_db) as c:
        assert c.execute("SELECT count(*) FROM job_metrics WHERE job_id = %s", (job,)).fetchone()[0] == 1


def test_metrics_endpoint(build_dir, migrated_db, rurl, tmp_path):
    """/metrics in Prometheus text format with live values."""
    import socket
    import urllib.request
    with socket.socket() as sk:
        sk.bind(("127.0.0.1", 0))
        port = sk.getsockname()[1]
    _, jobs = seed(migrated_db, n_jobs=3)
    w = SimWorker(rurl, slots=2)
    w.beat()
    env = dict(os.environ, FT_DATABASE_URL=migrated_db, FT_REDIS_URL=rurl, FT_SCHED_TICK_MS="50",
               FT_METRICS_PORT=str(port))
    p = subprocess.Popen([str(build_dir / "scheduler" / "ft-scheduler")], env=env,
                         stdout=open(tmp_path / "s.log", "w"), stderr=subprocess.STDOUT)
    try:
        w.take()
        w.take()

        def scrape():
            try:
                return urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
            except OSError:
                return None
        text = wait_for(lambda: (lambda t: t if t and "ft_dispatched_total 2" in t else None)(scrape()),
                        what="metrics")
        lines = dict(l.rsplit(" ", 1) for l in text.splitlines() if l and not l.startswith("#"))
        assert float(lines['ft_jobs{status="dispatched"}']) == 2
        assert float(lines['ft_jobs{status="queued"}']) == 1
        assert float(lines["ft_queue_depth"]) == 1
        assert float(lines["ft_scheduler_leader"]) == 1
        assert float(lines["ft_dispatch_latency_seconds_count"]) == 2
        assert float(lines['ft_dispatch_latency_seconds_bucket{le="+Inf"}']) == 2
        assert "# TYPE ft_dispatch_latency_seconds histogram" in text
    finally:
        p.terminate()
        p.wait(10)


def test_gpu_jobs_are_placed_by_the_trainers_memory_estimate(sched, migrated_db, rurl, build_dir,
                                                             tmp_path):
    """est_gpu_mem_bytes is the trainer's estimate of the bytes a job needs on
    each GPU (ft_train_job_mem: what `train` checks before allocating, what
    ft-api stores; `ft-train estimate` prints it). A Llama-3.1-8B-shaped LoRA
    job: the scheduler never places it on a worker whose GPUs have less, even
    when that worker is free and the other busy, and it waits when no worker
    has enough."""
    mdir = tmp_path / "llama8b"
    mdir.mkdir()
    (mdir / "config.json").write_text(json.dumps({
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 128256,
        "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
        "num_attention_heads": 32, "num_key_value_heads": 8, "max_position_embeddings": 131072,
        "rms_norm_eps": 1e-5, "rope_theta": 500000.0, "tie_word_embeddings": False}))
    job = tmp_path / "job.json"
    job.write_text(json.dumps({"model": str(mdir), "train_file": "t.jsonl", "output_dir": "o",
                               "method": "lora", "lora": {"r": 16, "target_modules": "all-linear"},
                               "hyperparameters": {"batch_size": 4, "max_seq_length": 2048}}))
    p = run([str(build_dir / "trainer" / "ft-train"), "estimate", "--config", str(job), "--json"])
    need = json.loads(p.stdout)["total_bytes"]
    assert need > 40 << 30  # the fp32 path of an 8B model at 4 x 2048 tokens

    team, (a, b) = seed(migrated_db, n_jobs=2, gpus=2)
    with psycopg.connect(migrated_db, autocommit=True) as c:
        c.execute("UPDATE jobs SET est_gpu_mem_bytes = %s WHERE id = ANY(%s)", (need, [a, b]))
    # per GPU: 4 free GPUs 1 MiB short each (8 GPUs' worth in all, which is not
    # what a data-parallel job needs), and 2 GPUs of exactly enough
    small = SimWorker(rurl, gpus=4, gpu_mem=need - (1 << 20))
    big = SimWorker(rurl, gpus=2, gpu_mem=need)
    for w in (small, big):
        w.beat()
    sched.start()
    wait_for(lambda: job_row(migrated_db, a)[0] == "dispatched"
             or job_row(migrated_db, b)[0] == "dispatched", what="a dispatch")
    rows = {j: job_row(migrated_db, j) for j in (a, b)}
    placed = [j for j, r in rows.items() if r[0] == "dispatched"]
    assert len(placed) == 1 and rows[placed[0]][2] == big.id
    msg = big.take()
    big.running = [(msg["job"], msg["attempt"])]   # the lease stays renewed
    # the other job waits: the free 4-GPU worker is short by 1 MiB on each GPU
    waiting = b if placed[0] == a else a
    for _ in range(20):
        small.beat()
        big.beat()
        time.sleep(0.1)
    assert job_row(migrated_db, waiting)[0] == "queued"
    assert small.r.llen(f"ft:inbox:{small.id}") == 0
