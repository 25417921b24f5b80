"""Dispatch throughput and queued->running latency: ft-scheduler with
simulated workers (no-op jobs) beside RQ on the same Redis doing the same
no-op work. Prints both and the ratio; never fails on timing.

    FT_BUILD_DIR=build-test FT_DATABASE_URL=... FT_REDIS_URL=... \
        python tests/bench/bench_dispatch.py [--jobs 2000] [--workers 200] [--rq-workers 16]

Ours: every job goes through the whole protocol - a guarded UPDATE in
PostgreSQL, the assignment in the worker's Redis inbox, the worker's
"started" and "succeeded" events on the stream, each persisted in its own
PostgreSQL transaction. RQ: enqueue + SimpleWorker (no fork per job),
Redis only. Latency is queued -> running: ours from jobs.queued_at to the
'running' transition, RQ from enqueued_at to started_at.
"""
import argparse
import asyncio
import json
import os
import secrets
import statistics
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import redis
import redis.asyncio as aredis

ROOT = Path(__file__).resolve().parents[2]


def noop():
    return None


def ident(p):
    a = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
    return p + "-" + "".join(secrets.choice(a) for _ in range(24))


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


async def sim_worker(url, stop, counter):
    r = aredis.Redis.from_url(url, decode_responses=True)
    wid = ident("wrk")
    hb = {"id": wid, "host": "bench", "pid": 1, "gpus": 0, "gpu_mem": 0, "gpu_names": [], "slots": 1,
          "draining": False, "started_at": 0, "running": []}
    await r.set(f"ft:worker:{wid}", json.dumps(hb), px=5000)
    last = time.monotonic()
    seq = {}
    while not stop.is_set():
        if time.monotonic() - last > 1:
            await r.set(f"ft:worker:{wid}", json.dumps(hb), px=5000)
            last = time.monotonic()
        got = await r.brpop(f"ft:inbox:{wid}", timeout=1)
        if not got:
            continue
        m = json.loads(got[1])
        if m.get("type") != "assign":
            continue
        for kind in ("started", "succeeded"):
            k = (m["job"], m["attempt"])
            seq[k] = seq.get(k, 0) + 1
            ev = {"id": ident("ftevent"), "job": m["job"], "attempt": m["attempt"], "seq": seq[k],
                  "worker": wid, "kind": kind, "data": {"fine_tuned_model": "noop"} if kind == "succeeded" else {}}
            await r.xadd("ft:events", {"e": json.dumps(ev)})
        counter[0] += 1
    await r.delete(f"ft:worker:{wid}")
    await r.aclose()


async def run_workers(url, n, stop, counter):
    await asyncio.gather(*(sim_worker(url, stop, counter) for _ in range(n)))


def bench_ours(args, db, rurl):
    subprocess.run([str(Path(args.build) / "migrations" / "ft-migrate"), "--database-url", db, "up"],
                   check=True, capture_output=True)
    with psycopg.connect(db, autocommit=True) as c:
        team = ident("team")
        c.execute("INSERT INTO teams (id, name, max_concurrent_jobs) VALUES (%s, 'bench', 100000)", (team,))
        model = ident("model")
        c.execute("INSERT INTO base_models (id, name, architecture, parameter_count, source_path)"
                  " VALUES (%s, 'noop', 'LlamaForCausalLM', 1, '/dev/null')", (model,))
        f = ident("file")
        c.execute("INSERT INTO files (id, team_id, filename, purpose, bytes, sha256) VALUES"
                  " (%s, %s, 'x', 'fine-tune', 1, repeat('0', 64))", (f, team))
    env = dict(os.environ, FT_DATABASE_URL=db, FT_REDIS_URL=rurl, FT_SCHED_TICK_MS="10",
               FT_LOG_LEVEL="warn", FT_LEASE_MS="60000")
    sched = subprocess.Popen([str(Path(args.build) / "scheduler" / "ft-scheduler")], env=env)
    import threading
    stop = threading.Event()
    counter = [0]
    loop = asyncio.new_event_loop()
    th = threading.Thread(target=lambda: loop.run_until_complete(run_workers(rurl, args.workers, stop, counter)))
    th.start()
    time.sleep(2)   # workers registered
    t0 = time.monotonic()
    with psycopg.connect(db, autocommit=True) as c:
        with c.cursor() as cur:
            cur.executemany(
                "INSERT INTO jobs (id, team_id, model, base_model_id, training_file_id, method, seed,"
                " status, queued_at) VALUES (%s, %s, 'noop', %s, %s, 'supervised', 1, 'queued', clock_timestamp())",
                [(ident("ftjob"), team, model, f) for _ in range(args.jobs)])
    t_enq = time.monotonic() - t0
    with psycopg.connect(db, autocommit=True) as c:
        while True:
            done = c.execute("SELECT count(*) FROM jobs WHERE status = 'succeeded'").fetchone()[0]
            if done == args.jobs:
                break
            if time.monotonic() - t0 > args.timeout:
                print(f"ours: timed out with {done}/{args.jobs} done")
                break
            time.sleep(0.05)
        elapsed = time.monotonic() - t0
        lat = [r[0] for r in c.execute(
            "SELECT extract(epoch FROM t.created_at - j.queued_at)::float8 FROM jobs j"
            " JOIN job_transitions t ON t.job_id = j.id AND t.to_status = 'running'")]
    stop.set()
    th.join()
    sched.terminate()
    sched.wait()
    return {"elapsed": elapsed, "enqueue": t_enq, "throughput": args.jobs / elapsed,
            "p50": pct(lat, 50), "p99": pct(lat, 99)}


def bench_rq(args, rurl):
    from rq import Queue
    r = redis.Redis.from_url(rurl)
    r.flushdb()
    q = Queue("bench", connection=r)
    from rq import Worker
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).parent))
    # Workers first, registered and idle, as ours are before the jobs arrive.
    workers = [subprocess.Popen([sys.executable, "-m", "rq.cli", "worker", "-u", rurl, "-w",
                                 "rq.worker.SimpleWorker", "-q", "bench"], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
               for _ in range(args.rq_workers)]
    while Worker.count(queue=q) < args.rq_workers:
        time.sleep(0.2)
    sys.path.insert(0, str(Path(__file__).parent))
    t0 = time.monotonic()
    jobs = [Queue.prepare_data("bench_dispatch.noop") for _ in range(args.jobs)]
    enq = q.enqueue_many(jobs)
    t_enq = time.monotonic() - t0
    from rq.registry import FinishedJobRegistry
    fin = FinishedJobRegistry(queue=q)
    while len(fin) < args.jobs and time.monotonic() - t0 < args.timeout:
        time.sleep(0.05)
    elapsed = time.monotonic() - t0
    lat = []
    for j in enq:
        j.refresh()
        if j.started_at and j.enqueued_at:
            lat.append((j.started_at - j.enqueued_at).total_seconds())
    done = sum(1 for j in enq if j.get_status() == "finished")
    for w in workers:
        w.terminate()
    for w in workers:
        w.wait()
    return {"elapsed": elapsed, "enqueue": t_enq, "throughput": done / elapsed,
            "p50": pct(lat, 50) if lat else float("nan"), "p99": pct(lat, 99) if lat else float("nan")}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=2000)
    ap.add_argument("--workers", type=int, default=200)
    ap.add_argument("--rq-workers", type=int, default=32)
    ap.add_argument("--timeout", type=float, default=300)
    ap.add_argument("--build", default=os.environ.get("FT_BUILD_DIR", str(ROOT / "build")))
    args = ap.parse_args()
    base_db = os.environ["FT_DATABASE_URL"]
    rbase = os.environ["FT_REDIS_URL"].rsplit("/", 1)[0]
    name = "bench_" + secrets.token_hex(4)
    with psycopg.connect(base_db, autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    db = base_db.rsplit("/", 1)[0] + "/" + name
    try:
        redis.Redis.from_url(rbase + "/14").flushdb()
        ours = bench_ours(args, db, rbase + "/14")
        rq = bench_rq(args, rbase + "/13")
    finally:
        with psycopg.connect(base_db, autocommit=True) as c:
            c.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    print(f"dispatch bench: {args.jobs} no-op jobs")
    print(f"  ftplat  ({args.workers} simulated workers): {ours['throughput']:8.1f} jobs/s,"
          f" queued->running p50 {ours['p50'] * 1000:7.1f} ms p99 {ours['p99'] * 1000:7.1f} ms")
    print(f"  RQ      ({args.rq_workers} SimpleWorker processes): {rq['throughput']:8.1f} jobs/s,"
          f" queued->running p50 {rq['p50'] * 1000:7.1f} ms p99 {rq['p99'] * 1000:7.1f} ms")
    print(f"  ratio ftplat/RQ throughput: {ours['throughput'] / rq['throughput']:.2f}x;"
          f" p50 latency ratio: {ours['p50'] / rq['p50']:.2f}x")


if __name__ == "__main__":
    main()
