"""Chaos: 3 workers, 20 short LoRA jobs through the real API, scheduler, worker
and trainer; a random worker is killed with SIGKILL every few seconds (and
restarted), Redis is wiped once (FLUSHALL) and the leading scheduler is
killed once. Every job must end succeeded, none may complete twice, and every
job - resumed from a checkpoint or not - must end with exactly the final loss
of an uninterrupted run of the same job."""
import os
import random
import signal
import statistics
import subprocess
import time

import psycopg
import pytest
import redis

from api_helpers import client, upload, wait_status

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATA = os.path.join(ROOT, "data", "customer-service")
MODEL = os.path.join(ROOT, "data", "models", "ftplat-tiny-cs")
N_JOBS = 20
JOB = {"model": "ftplat-tiny-cs", "seed": 11,
       "hyperparameters": {"n_epochs": 4, "batch_size": 2, "learning_rate_multiplier": 5},
       "lora": {"r": 4, "alpha": 8}}


class Fleet:
    def __init__(self, build_dir, env, tmp):
        self.build_dir, self.env, self.tmp = build_dir, env, tmp
        self.workers, self.scheds = {}, []

    def worker(self, wid):
        env = dict(self.env, FT_WORKER_ID=wid, FT_CACHE_DIR=str(self.tmp / f"cache-{wid}"))
        log = open(self.tmp / f"{wid}.log", "a")
        self.workers[wid] = subprocess.Popen([str(self.build_dir / "worker" / "ft-worker")], env=env,
                                             stdout=log, stderr=subprocess.STDOUT)

    def scheduler(self):
        log = open(self.tmp / f"sched{len(self.scheds)}.log", "w")
        p = subprocess.Popen([str(self.build_dir / "scheduler" / "ft-scheduler")], env=self.env,
                             stdout=log, stderr=subprocess.STDOUT)
        self.scheds.append(p)
        return p

    def stop(self):
        for p in list(self.workers.values()) + self.scheds:
            if p.poll() is None:
                p.kill()
        for p in list(self.workers.values()) + self.scheds:
            p.wait()


def step_losses(db, job):
    """{(step, attempt): train_loss} of every step any attempt of the job trained."""
    return {(s, a): l for s, a, l in db.execute(
        "SELECT step, attempt, train_loss FROM job_metrics WHERE job_id = %s AND train_loss IS NOT NULL",
        (job,))}


@pytest.fixture(scope="module")
def chaos_api(build_dir, database_url, redis_url, tmp_path_factory):
    """ft-api whose jobs get 20 attempts: with a worker killed every 3 s a job
    may lose several before it finishes (each resumes from its checkpoint)."""
    from conftest import _api_server
    s, name = _api_server(build_dir, database_url, redis_url, tmp_path_factory, job_max_attempts=20)
    yield s
    s.stop()
    with psycopg.connect(database_url, autocommit=True) as c:
        c.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def test_chaos(chaos_api, build_dir, redis_url, tmp_path):
    api_server = chaos_api
    rdb = redis_url.rsplit("/", 1)[0] + "/11"
    r = redis.Redis.from_url(rdb)
    r.flushdb()
    env = dict(os.environ, FT_DATABASE_URL=api_server.db_url, FT_REDIS_URL=rdb,
               FT_STORE_DIR=str(api_server.store_dir), FT_WORK_DIR=str(tmp_path / "work"),
               FT_TRAINER_PATH=str(build_dir / "trainer" / "ft-train"), FT_SCHED_TICK_MS="50",
               FT_HEARTBEAT_MS="300", FT_LEASE_MS="2500", FT_CHECKPOINT_STEPS="4",
               FT_LOG_LEVEL="info", FT_NUM_THREADS="1")
    fleet = Fleet(build_dir, env, tmp_path)
    try:
        with client(api_server) as c:
            assert c.post("/v1/models", json={"name": "ftplat-tiny-cs", "path": MODEL}).status_code == 200
        lines = open(os.path.join(DATA, "train.jsonl"), "rb").read().splitlines(keepends=True)
        train = upload(api_server, b"".join(lines[:12]))["id"]
        leader = fleet.scheduler()
        for i in range(3):
            fleet.worker(f"wrk-chaos{i}")
        # The reference: the same job, never interrupted.
        with client(api_server) as c:
            ref = c.post("/v1/fine_tuning/jobs", json=dict(JOB, training_file=train)).json()["id"]
        assert wait_status(api_server, ref, ("succeeded", "failed"), timeout=300)["status"] == "succeeded"
        with psycopg.connect(api_server.db_url) as db:
            want = {s: l for (s, _), l in step_losses(db, ref).items()}   # one attempt
        last = max(want)
        fleet.scheduler()          # a standby
        with client(api_server) as c:
            jobs = [c.post("/v1/fine_tuning/jobs", json=dict(JOB, training_file=train)).json()["id"]
                    for _ in range(N_JOBS)]
        rng = random.Random(1234)
        t0 = time.monotonic()
        wiped = killed_leader = False
        kills = 0
        while True:
            time.sleep(3)
            wid = rng.choice(sorted(fleet.workers))
            fleet.workers[wid].send_signal(signal.SIGKILL)
            fleet.workers[wid].wait()
            kills += 1
            fleet.worker(wid)      # the machine comes back
            if not wiped and time.monotonic() - t0 > 7:
                r.flushall()
                wiped = True
            if not killed_leader and time.monotonic() - t0 > 13:
                leader.send_signal(signal.SIGKILL)
                leader.wait()
                fleet.scheduler()  # a new standby
                killed_leader = True
            with psycopg.connect(api_server.db_url) as db:
                left = db.execute("SELECT count(*) FROM jobs WHERE id = ANY(%s) AND status NOT IN"
                                  " ('succeeded', 'failed', 'cancelled')", (jobs,)).fetchone()[0]
            if left == 0 and wiped and killed_leader:
                break
            assert time.monotonic() - t0 < 600, f"{left} jobs still running after 10 minutes"
        with psycopg.connect(api_server.db_url) as db:
            status = dict(db.execute("SELECT id, status FROM jobs WHERE id = ANY(%s)", (jobs,)).fetchall())
            lost = [j for j in jobs if status[j] != "succeeded"]
            dup = db.execute("SELECT job_id FROM job_transitions WHERE job_id = ANY(%s) AND to_status ="
                             " 'succeeded' GROUP BY job_id HAVING count(*) > 1", (jobs,)).fetchall()
            resumed = db.execute("SELECT count(*) FROM jobs WHERE id = ANY(%s) AND attempt > 1",
                                 (jobs,)).fetchone()[0]
            gaps = [g for (g,) in db.execute(
                "SELECT extract(epoch FROM (SELECT min(d.created_at) FROM job_transitions d"
                "   WHERE d.job_id = q.job_id AND d.to_status = 'dispatched' AND d.id > q.id) - q.created_at)"
                " FROM job_transitions q WHERE q.job_id = ANY(%s) AND q.to_status = 'queued'"
                " AND q.from_status IS NOT NULL AND q.from_status <> 'validating_files'", (jobs,))
                if g is not None]
            losses = {j: step_losses(db, j) for j in jobs}
        p50 = statistics.median(gaps) if gaps else float("nan")
        p99 = sorted(gaps)[min(len(gaps) - 1, int(0.99 * len(gaps)))] if gaps else float("nan")
        print(f"chaos: {N_JOBS} jobs, {kills} worker kills, Redis wiped once, leader killed once")
        print(f"  jobs lost: {len(lost)}, duplicate completions: {len(dup)}, resumed jobs: {resumed}")
        print(f"  redispatch time after a lost worker: p50 {float(p50):.2f} s, p99 {float(p99):.2f} s "
              f"({len(gaps)} requeues)")
        assert lost == [] and dup == []
        assert resumed > 0 and gaps, "the chaos did not interrupt any job"
        # Every step any attempt trained - before a kill, or again after resuming
        # from a checkpoint - has exactly the uninterrupted run's loss, and every
        # job got to the last step: the final losses are the same bit for bit.
        wrong = {(j, s, a): l for j, ls in losses.items() for (s, a), l in ls.items() if l != want[s]}
        assert not wrong, f"step losses differ from the uninterrupted run's: {wrong}"
        assert all(max(s for s, _ in ls) == last for ls in losses.values())
        redone = sum(len(ls) - len({s for s, _ in ls}) for ls in losses.values())
        print(f"  steps trained again after a resume: {redone}, all with the uninterrupted losses")
    finally:
        fleet.stop()
