"""The whole path, every part real: POST /v1/fine_tuning/jobs on ft-api ->
ft-scheduler -> ft-worker -> ft-train (LoRA SFT on the bundled tiny model and
a slice of the bundled dialogues) -> succeeded, with events, metrics,
checkpoints and the adapter in the store; and cancel latency from the API call
to the trainer's exit."""
import json
import os
import signal
import subprocess
import time

import psycopg
import pytest
from safetensors.numpy import load_file

from api_helpers import client, upload, wait_status

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATA = os.path.join(ROOT, "data", "customer-service")
MODEL = os.path.join(ROOT, "data", "models", "ftplat-tiny-cs")


@pytest.fixture(scope="module")
def platform(api_server, build_dir, redis_url, tmp_path_factory):
    """Scheduler + one CPU worker sharing the API's database and store."""
    tmp = tmp_path_factory.mktemp("platform")
    rdb = redis_url.rsplit("/", 1)[0] + "/12"
    import redis
    redis.Redis.from_url(rdb).flushdb()
    env = dict(os.environ, FT_DATABASE_URL=api_server.db_url, FT_REDIS_URL=rdb,
               FT_STORE_DIR=str(api_server.store_dir), FT_WORK_DIR=str(tmp / "work"),
               FT_CACHE_DIR=str(tmp / "cache"),
               FT_TRAINER_PATH=str(build_dir / "trainer" / "ft-train"), FT_SCHED_TICK_MS="50",
               FT_HEARTBEAT_MS="500", FT_LEASE_MS="10000", FT_WORKER_ID="wrk-e2e", FT_LOG_LEVEL="info",
               FT_NUM_THREADS="2", FT_CHECKPOINT_STEPS="6")
    procs = [subprocess.Popen([str(build_dir / "scheduler" / "ft-scheduler")], env=env,
                              stdout=open(tmp / "sched.log", "w"), stderr=subprocess.STDOUT),
             subprocess.Popen([str(build_dir / "worker" / "ft-worker")], env=env,
                              stdout=open(tmp / "worker.log", "w"), stderr=subprocess.STDOUT)]
    with client(api_server) as c:
        r = c.post("/v1/models", json={"name": "ftplat-tiny-cs", "path": MODEL})
        assert r.status_code == 200, r.text
    lines = open(os.path.join(DATA, "train.jsonl"), "rb").read().splitlines(keepends=True)
    val = open(os.path.join(DATA, "validation.jsonl"), "rb").read().splitlines(keepends=True)
    train_f = upload(api_server, b"".join(lines[:48]), name="train.jsonl")
    val_f = upload(api_server, b"".join(val[:12]), name="validation.jsonl")
    yield dict(env=env, tmp=tmp, train=train_f["id"], val=val_f["id"], procs=procs)
    for p in procs:
        p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()


def result_rows(api_server, job):
    """The rows of a succeeded job's result file, through the openai client:
    one file, purpose fine-tune-results, listed with that purpose."""
    import csv
    import io
    import openai
    oai = openai.OpenAI(api_key=api_server.key, base_url=api_server.url + "/v1", max_retries=0)
    assert len(job["result_files"]) == 1
    fid = job["result_files"][0]
    f = oai.files.retrieve(fid)
    assert f.purpose == "fine-tune-results" and f.filename == "step_metrics.csv"
    assert fid in [x.id for x in oai.files.list(purpose="fine-tune-results")]
    text = oai.files.content(fid).read().decode()
    assert text.startswith("step,train_loss,train_accuracy,valid_loss,valid_mean_token_accuracy,")
    assert f.bytes == len(text.encode())
    return list(csv.DictReader(io.StringIO(text)))


def test_lora_job_runs_end_to_end(api_server, platform):
    with client(api_server) as c:
        r = c.post("/v1/fine_tuning/jobs", json={
            "model": "ftplat-tiny-cs", "training_file": platform["train"],
            "validation_file": platform["val"], "suffix": "e2e", "seed": 5,
            "hyperparameters": {"n_epochs": 1, "batch_size": 4, "learning_rate_multiplier": 10},
            "lora": {"r": 8, "alpha": 16}})
        assert r.status_code == 200, r.text
        job = r.json()["id"]
    j = wait_status(api_server, job, ("succeeded", "failed", "cancelled"), timeout=300)
    assert j["status"] == "succeeded", (j, (platform["tmp"] / "worker.log").read_text()[-3000:])
    assert j["fine_tuned_model"] == f"ft:ftplat-tiny-cs:{job}"
    assert j["trained_tokens"] > 1000
    with client(api_server) as c:
        events = c.get(f"/v1/fine_tuning/jobs/{job}/events", params={"limit": 100}).json()["data"]
        msgs = [e["message"] for e in events]
        assert any(m.startswith("Step 1/12: training loss=") for m in msgs), msgs
        evals = sorted((e["data"]["step"], e["data"]["eval_loss"]) for e in events
                       if isinstance(e.get("data"), dict) and e["data"].get("type") == "eval")
        assert evals[0][0] == 0 and evals[-1][0] == 12
        assert evals[-1][1] < evals[0][1]          # fine-tuning lowered the held-out loss
        cks = c.get(f"/v1/fine_tuning/jobs/{job}/checkpoints").json()["data"]
        assert cks and cks[0]["step_number"] == 12
    with psycopg.connect(api_server.db_url) as db:
        steps = db.execute("SELECT count(*) FROM job_metrics WHERE job_id = %s AND train_loss IS NOT NULL",
                           (job,)).fetchone()[0]
        assert steps == 12
        stored = db.execute("SELECT step, train_loss, eval_loss, eval_token_accuracy FROM job_metrics"
                            " WHERE job_id = %s ORDER BY step", (job,)).fetchall()
    # OpenAI's results file: step_metrics.csv, read back through the openai client
    rows = result_rows(api_server, j)
    assert [int(r["step"]) for r in rows] == [s for s, *_ in stored] == list(range(13))
    for r, (step, loss, eval_loss, eval_acc) in zip(rows, stored):
        assert (float(r["train_loss"]) if r["train_loss"] else None) == loss
        assert (float(r["valid_loss"]) if r["valid_loss"] else None) == eval_loss
        assert (float(r["valid_mean_token_accuracy"]) if r["valid_mean_token_accuracy"] else None) \
            == eval_acc
        assert r["train_accuracy"] == ""            # not computed: empty, as OpenAI leaves a gap
    assert rows[0]["valid_loss"] and rows[12]["valid_loss"] and not rows[5]["valid_loss"]
    with psycopg.connect(api_server.db_url) as db:
        sha = db.execute("SELECT sha256 FROM artifacts WHERE job_id = %s AND kind = 'adapter'",
                         (job,)).fetchone()[0]
    # The adapter is in the store as a manifest of its files, loadable by safetensors.
    store = api_server.store_dir
    manifest = json.loads((store / "sha256" / sha[:2] / sha[2:]).read_text())
    files = {f["path"]: f["sha256"] for f in manifest["files"]}
    assert "adapter_config.json" in files and "adapter_model.safetensors" in files
    h = files["adapter_model.safetensors"]
    tensors = load_file(str(store / "sha256" / h[:2] / h[2:]))
    assert "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight" in tensors
    # One estimate (ft_train_job_mem): what ft-api stored when it accepted the job
    # is what the trainer computes from the job file the worker wrote for it.
    with psycopg.connect(api_server.db_url) as db:
        stored = db.execute("SELECT est_gpu_mem_bytes FROM jobs WHERE id = %s", (job,)).fetchone()[0]
    jobfile = platform["tmp"] / "work" / f"{job}-1" / "job.json"
    est = subprocess.run([platform["env"]["FT_TRAINER_PATH"], "estimate", "--config", str(jobfile),
                          "--json"], capture_output=True, text=True, check=True)
    assert stored == json.loads(est.stdout)["total_bytes"] > 0


def test_cancel_latency(api_server, platform):
    with client(api_server) as c:
        job = c.post("/v1/fine_tuning/jobs", json={
            "model": "ftplat-tiny-cs", "training_file": platform["train"],
            "hyperparameters": {"n_epochs": 50, "batch_size": 2}}).json()["id"]
        deadline = time.time() + 120
        while True:        # running, with at least one step done
            ev = c.get(f"/v1/fine_tuning/jobs/{job}/events").json()["data"]
            if any(e["message"].startswith("Step ") for e in ev):
                break
            assert time.time() < deadline, "the job never started training"
            time.sleep(0.1)
        t0 = time.monotonic()
        assert c.post(f"/v1/fine_tuning/jobs/{job}/cancel").status_code == 200
    j = wait_status(api_server, job, ("cancelled", "failed", "succeeded"), timeout=60)
    latency = time.monotonic() - t0
    assert j["status"] == "cancelled", j
    worker_log = (platform["tmp"] / "worker.log").read_text()
    assert f"cancel: sent SIGTERM to the trainer" in worker_log
    print(f"cancel latency (API call -> trainer exited and the job is cancelled): {latency * 1000:.0f} ms")


def adapter_sha(api_server, job):
    """The sha256 of the adapter_model.safetensors a job stored."""
    with psycopg.connect(api_server.db_url) as db:
        sha = db.execute("SELECT sha256 FROM artifacts WHERE job_id = %s AND kind = 'adapter'",
                         (job,)).fetchone()[0]
    manifest = json.loads((api_server.store_dir / "sha256" / sha[:2] / sha[2:]).read_text())
    return {f["path"]: f["sha256"] for f in manifest["files"]}["adapter_model.safetensors"]


def test_pause_then_resume_continues_from_the_checkpoint_to_the_same_adapter(api_server, platform):
    """The openai client's pause() on a running job: pausing, then paused once
    the trainer has checkpointed and stopped (the worker hands it back; no
    attempt used, no worker held); resume() queues it, the next attempt starts
    after the step it stopped at, and the job ends with the adapter an
    uninterrupted run of the same job (same data, seed and hyperparameters)
    writes, bit for bit (the trainer's exact resume), and the same trained
    tokens."""
    import openai
    oai = openai.OpenAI(api_key=api_server.key, base_url=api_server.url + "/v1", max_retries=0)
    spec = dict(model="ftplat-tiny-cs", training_file=platform["train"], seed=11,
                hyperparameters={"n_epochs": 4, "batch_size": 4, "learning_rate_multiplier": 10})
    ref = oai.fine_tuning.jobs.create(**spec).id
    ref_j = wait_status(api_server, ref, ("succeeded", "failed", "cancelled"), timeout=300)
    assert ref_j["status"] == "succeeded", ref_j
    job = oai.fine_tuning.jobs.create(**spec).id
    with psycopg.connect(api_server.db_url, autocommit=True) as db:
        deadline = time.time() + 120
        while True:        # running, with a few steps done (read in the database: polling
            #                the API this often would spend the key's rate limit)
            done = db.execute("SELECT max(step) FROM job_metrics WHERE job_id = %s",
                              (job,)).fetchone()[0]
            if done is not None and done >= 3:
                break
            assert time.time() < deadline, "the job never started training"
            time.sleep(0.02)
    p = oai.fine_tuning.jobs.pause(job)
    assert p.status == "pausing", p
    j = wait_status(api_server, job, ("paused", "succeeded", "failed", "cancelled"), timeout=60)
    assert j["status"] == "paused", j
    with psycopg.connect(api_server.db_url) as db:
        worker, att, max_att = db.execute(
            "SELECT worker_id, attempt, max_attempts FROM jobs WHERE id = %s", (job,)).fetchone()
        assert worker is None and att == 1 and max_att == 4     # 3 + the hand-back
        stopped = db.execute("SELECT max(step) FROM job_metrics WHERE job_id = %s AND attempt = 1",
                             (job,)).fetchone()[0]
        assert 3 <= stopped < 48
    time.sleep(1)          # paused stays paused: nothing dispatches it
    assert oai.fine_tuning.jobs.retrieve(job).status == "paused"
    assert "pause: sent SIGTERM to the trainer" in (platform["tmp"] / "worker.log").read_text()
    ck = oai.fine_tuning.jobs.checkpoints.list(job).data
    assert ck and ck[0].step_number == stopped                 # the trainer's checkpoint at the pause
    assert oai.fine_tuning.jobs.resume(job).status == "queued"
    j = wait_status(api_server, job, ("succeeded", "failed", "cancelled"), timeout=300)
    assert j["status"] == "succeeded", j
    with psycopg.connect(api_server.db_url) as db:
        first = db.execute("SELECT min(step) FROM job_metrics WHERE job_id = %s AND attempt = 2",
                           (job,)).fetchone()[0]
        assert first == stopped + 1, (first, stopped)
        print(f"paused after step {stopped} of 48; attempt 2 started at step {first}")
        moves = db.execute("SELECT from_status, to_status, reason FROM job_transitions"
                           " WHERE job_id = %s ORDER BY id", (job,)).fetchall()
    assert ("running", "pausing", "paused by the user") in moves
    assert ("pausing", "paused", "paused by the user: handed back") in moves
    assert ("paused", "queued", "resumed by the user") in moves
    assert j["trained_tokens"] == ref_j["trained_tokens"]
    # its results file has each step once (the second attempt's where both ran it), and the
    # training losses of the uninterrupted run's, bit for bit as the adapter is
    steps = [(int(r["step"]), r["train_loss"]) for r in result_rows(api_server, j)]
    assert steps == [(int(r["step"]), r["train_loss"]) for r in result_rows(api_server, ref_j)]
    assert [s for s, _ in steps] == list(range(1, 49))
    assert adapter_sha(api_server, job) == adapter_sha(api_server, ref)


def test_worker_drain_hands_the_job_back_and_it_resumes(api_server, platform, build_dir):
    """SIGTERM to a worker: its trainer checkpoints, the job is handed back
    (queued, without using up an attempt) and the worker exits 0; a new worker
    resumes it from that checkpoint, not from step 1."""
    with client(api_server) as c:
        job = c.post("/v1/fine_tuning/jobs", json={
            "model": "ftplat-tiny-cs", "training_file": platform["train"],
            "hyperparameters": {"n_epochs": 50, "batch_size": 2}}).json()["id"]
        deadline = time.time() + 120
        while not c.get(f"/v1/fine_tuning/jobs/{job}/checkpoints").json()["data"]:
            assert time.time() < deadline, "no checkpoint was stored"
            time.sleep(0.1)
    worker = platform["procs"][1]
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(60) == 0
    with psycopg.connect(api_server.db_url) as db:
        deadline = time.time() + 30
        while db.execute("SELECT status FROM jobs WHERE id = %s", (job,)).fetchone()[0] != "queued":
            assert time.time() < deadline, "the job was not handed back"
            time.sleep(0.1)
        reason, max_attempts = db.execute(
            "SELECT t.reason, j.max_attempts FROM job_transitions t JOIN jobs j ON j.id = t.job_id"
            " WHERE t.job_id = %s ORDER BY t.id DESC LIMIT 1", (job,)).fetchone()
        assert reason == "worker draining: handed back" and max_attempts == 4   # 3 + the hand-back
    env = dict(platform["env"], FT_WORKER_ID="wrk-e2e-2")
    platform["procs"][1] = subprocess.Popen([str(build_dir / "worker" / "ft-worker")], env=env,
                                            stdout=open(platform["tmp"] / "worker2.log", "w"),
                                            stderr=subprocess.STDOUT)
    with psycopg.connect(api_server.db_url) as db:
        deadline = time.time() + 60
        while True:
            first = db.execute("SELECT min(step) FROM job_metrics WHERE job_id = %s AND attempt = 2",
                               (job,)).fetchone()[0]
            if first is not None:
                break
            assert time.time() < deadline, "the job did not resume"
            time.sleep(0.1)
        assert first > 1, "attempt 2 started from step 1 instead of the checkpoint"
    assert "from a checkpoint" in (platform["tmp"] / "worker2.log").read_text()
    with client(api_server) as c:
        c.post(f"/v1/fine_tuning/jobs/{job}/cancel")
    assert wait_status(api_server, job, ("cancelled",), timeout=60)["status"] == "cancelled"


def test_a_drain_with_the_scheduler_gone_ends_and_leaves_the_events_on_the_stream(
        api_server, platform, build_dir):
    """A whole host stopping: the scheduler and a worker get SIGTERM together
    (CI's run of 0d3b10f: a worker waited for acknowledgements from a stopped
    scheduler and never exited). The worker hands its job back, waits
    drain_ack_ms for the acknowledgements, exits 0 naming the job; the next
    scheduler reads the hand-back from the stream."""
    env = platform["env"]
    old = platform["procs"][1]
    old.send_signal(signal.SIGTERM)
    assert old.wait(60) == 0
    wenv = dict(env, FT_WORKER_ID="wrk-e2e-3", FT_DRAIN_ACK_MS="3000")
    log3 = platform["tmp"] / "worker3.log"
    worker = platform["procs"][1] = subprocess.Popen(
        [str(build_dir / "worker" / "ft-worker")], env=wenv, stdout=open(log3, "w"),
        stderr=subprocess.STDOUT)
    with client(api_server) as c:
        job = c.post("/v1/fine_tuning/jobs", json={
            "model": "ftplat-tiny-cs", "training_file": platform["train"],
            "hyperparameters": {"n_epochs": 50, "batch_size": 2}}).json()["id"]
        deadline = time.time() + 120
        while not any(e["message"].startswith("Step ")
                      for e in c.get(f"/v1/fine_tuning/jobs/{job}/events").json()["data"]):
            assert time.time() < deadline, "the job never started training"
            time.sleep(0.1)
    sched = platform["procs"][0]
    sched.send_signal(signal.SIGTERM)
    assert sched.wait(60) == 0
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(60) == 0, log3.read_text()[-3000:]   # before the fix: never
    text = log3.read_text()
    assert "exiting with" in text and "unacknowledged after 3000 ms; they are on the Redis stream" in text
    assert "not on the Redis stream" not in text
    assert job in [ln for ln in text.splitlines() if "unacknowledged" in ln][0]
    with psycopg.connect(api_server.db_url) as db:   # nobody has read the hand-back yet
        assert db.execute("SELECT status FROM jobs WHERE id = %s", (job,)).fetchone()[0] == "running"
    platform["procs"][0] = subprocess.Popen(
        [str(build_dir / "scheduler" / "ft-scheduler")], env=env,
        stdout=open(platform["tmp"] / "sched2.log", "w"), stderr=subprocess.STDOUT)
    with psycopg.connect(api_server.db_url) as db:
        deadline = time.time() + 60
        while db.execute("SELECT status FROM jobs WHERE id = %s", (job,)).fetchone()[0] != "queued":
            assert time.time() < deadline, "the hand-back on the stream was not read"
            time.sleep(0.1)
        reasons = [r for (r,) in db.execute(
            "SELECT reason FROM job_transitions WHERE job_id = %s ORDER BY id", (job,))]
        assert "worker draining: handed back" in reasons, reasons
    platform["procs"][1] = subprocess.Popen(
        [str(build_dir / "worker" / "ft-worker")], env=dict(env, FT_WORKER_ID="wrk-e2e-4"),
        stdout=open(platform["tmp"] / "worker4.log", "w"), stderr=subprocess.STDOUT)
    with client(api_server) as c:
        c.post(f"/v1/fine_tuning/jobs/{job}/cancel")
    assert wait_status(api_server, job, ("cancelled",), timeout=60)["status"] == "cancelled"


def test_trainer_errors_reach_the_user_without_server_paths(api_server, platform, tmp_path):
    """A job the trainer fails on (here its model folder vanished after it was
    registered) fails with the trainer's message, where this worker's paths
    read as what they are: the model by its name, never the folder."""
    import shutil
    copy = tmp_path / "vanishing-model"
    shutil.copytree(MODEL, copy)
    with client(api_server) as c:
        r = c.post("/v1/models", json={"name": "vanishing", "path": str(copy)})
        assert r.status_code == 200, r.text
        shutil.rmtree(copy)
        r = c.post("/v1/fine_tuning/jobs", json={
            "model": "vanishing", "training_file": platform["train"],
            "hyperparameters": {"max_steps": 1}})
        assert r.status_code == 200, r.text
        job = r.json()["id"]
    j = wait_status(api_server, job, ("succeeded", "failed", "cancelled"), timeout=120)
    assert j["status"] == "failed", j
    msg = j["error"]["message"]
    assert "vanishing" in msg and str(copy) not in msg and str(tmp_path) not in msg, msg
    assert str(api_server.store_dir) not in msg and "/work" not in msg, msg
