"""Workers that share no disk with ft-api: ft-api, ft-scheduler and each
ft-worker use store_backend = s3 (the SeaweedFS server deploy/dev/s3.sh
starts), each with its own staging folder, and each worker with its own empty
cache_dir. A LoRA job runs to success on worker A, which fetched the training
and validation files into its cache by digest; then the same job is run again,
worker A is killed (SIGKILL, its trainer dies with it) after a checkpoint was
stored, and worker B, with a fresh cache and work folder, resumes it from that
checkpoint in the bucket: every step either attempt trained has exactly the
loss of the uninterrupted run (the pattern of test_chaos.py)."""
import hashlib
import json
import os
import secrets
import signal
import subprocess
import time

import psycopg
import pytest
from safetensors.numpy import load as load_safetensors

from api_helpers import client, upload
from conftest import _api_server, s3_bucket, s3_or_skip

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATA = os.path.join(ROOT, "data", "customer-service")
MODEL = os.path.join(ROOT, "data", "models", "ftplat-tiny-cs")
# 48 rows, batch 4, 3 epochs: 36 steps; a checkpoint every 4
JOB = {"model": "ftplat-tiny-cs", "seed": 7,
       "hyperparameters": {"n_epochs": 3, "batch_size": 4, "learning_rate_multiplier": 5},
       "lora": {"r": 4, "alpha": 8}}


def step_losses(db, job):
    """{(step, attempt): train_loss} of every step any attempt of the job trained."""
    return {(s, a): l for s, a, l in db.execute(
        "SELECT step, attempt, train_loss FROM job_metrics WHERE job_id = %s AND train_loss IS NOT NULL",
        (job,))}


def sha256_file(p):
    return hashlib.sha256(p.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def s3p(build_dir, database_url, redis_url, tmp_path_factory):
    """ft-api and ft-scheduler on the bucket (a fresh key prefix); workers are
    started by the tests with start_worker(name)."""
    s3_or_skip()
    prefix = f"systest-{secrets.token_hex(6)}/"
    api, name = _api_server(build_dir, database_url, redis_url, tmp_path_factory,
                            store_backend="s3", s3_prefix=prefix, max_upload_bytes=1 << 20)
    tmp = tmp_path_factory.mktemp("s3workers")
    rdb = redis_url.rsplit("/", 1)[0] + "/10"
    import redis
    redis.Redis.from_url(rdb).flushdb()
    base = dict(os.environ, FT_DATABASE_URL=api.db_url, FT_REDIS_URL=rdb, FT_STORE_BACKEND="s3",
                FT_S3_PREFIX=prefix, FT_TRAINER_PATH=str(build_dir / "trainer" / "ft-train"),
                FT_SCHED_TICK_MS="50", FT_HEARTBEAT_MS="500", FT_LEASE_MS="3000",
                FT_LOG_LEVEL="info", FT_NUM_THREADS="2", FT_CHECKPOINT_STEPS="4",
                FT_WORKER_GPUS="0")
    procs = {}

    def start(kind, exe, wid=None):
        # every process its own folders: nothing on a disk another one reads
        home = tmp / (wid or kind)
        env = dict(base, FT_STORE_DIR=str(home / "stage"), FT_WORK_DIR=str(home / "work"),
                   FT_CACHE_DIR=str(home / "cache"))
        if wid:
            env["FT_WORKER_ID"] = wid
        procs[wid or kind] = subprocess.Popen([str(build_dir / kind / exe)], env=env,
                                              stdout=open(tmp / f"{wid or kind}.log", "a"),
                                              stderr=subprocess.STDOUT)
        return home

    start("scheduler", "ft-scheduler")
    with client(api) as c:
        r = c.post("/v1/models", json={"name": "ftplat-tiny-cs", "path": MODEL})
        assert r.status_code == 200, r.text
    train = b"".join(open(os.path.join(DATA, "train.jsonl"), "rb").read().splitlines(keepends=True)[:48])
    val = b"".join(open(os.path.join(DATA, "validation.jsonl"), "rb").read().splitlines(keepends=True)[:12])
    ns = dict(api=api, tmp=tmp, procs=procs, prefix=prefix,
              start_worker=lambda wid: start("worker", "ft-worker", wid),
              train=upload(api, train, name="train.jsonl")["id"], train_sha=hashlib.sha256(train).hexdigest(),
              val=upload(api, val, name="validation.jsonl")["id"], val_sha=hashlib.sha256(val).hexdigest())
    yield ns
    for p in procs.values():
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs.values():
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()
    rc = api.stop()
    with psycopg.connect(database_url, autocommit=True) as c:
        c.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    assert rc == 0, f"ft-api exited {rc}:\n{api.log_path.read_text()[-4000:]}"


def wait_done(api, job, timeout=600):
    """The job once it ended (polled every 0.5 s: minutes of training at
    wait_status's 20 requests a second would meet the key's rate limit)."""
    with client(api) as c:
        deadline = time.time() + timeout
        while True:
            r = c.get(f"/v1/fine_tuning/jobs/{job}")
            assert r.status_code == 200, r.text
            if r.json()["status"] in ("succeeded", "failed", "cancelled"):
                return r.json()
            assert time.time() < deadline, f"job still {r.json()['status']}"
            time.sleep(0.5)


def submit(s3p):
    with client(s3p["api"]) as c:
        r = c.post("/v1/fine_tuning/jobs", json=dict(JOB, training_file=s3p["train"],
                                                     validation_file=s3p["val"]))
        assert r.status_code == 200, r.text
        return r.json()["id"]


def test_job_runs_on_a_worker_that_has_only_the_bucket(s3p):
    home = s3p["start_worker"]("wrk-s3-a")
    job = submit(s3p)
    j = wait_done(s3p["api"], job)
    assert j["status"] == "succeeded", (j, (s3p["tmp"] / "wrk-s3-a.log").read_text()[-3000:])
    # The worker's cache holds the uploaded files under their SHA-256, and
    # their content hashes to it.
    cache = home / "cache" / "files"
    for sha in (s3p["train_sha"], s3p["val_sha"]):
        assert sha256_file(cache / sha) == sha
    assert sorted(p.name for p in cache.iterdir()) == sorted((s3p["train_sha"], s3p["val_sha"]))
    assert list((home / "cache" / "tmp").iterdir()) == []
    # The adapter went to the bucket (read back with boto3, not the store).
    with psycopg.connect(s3p["api"].db_url) as db:
        sha = db.execute("SELECT sha256 FROM artifacts WHERE job_id = %s AND kind = 'adapter'",
                         (job,)).fetchone()[0]
        ref = step_losses(db, job)
    s3, b = s3_bucket()
    get = lambda h: s3.get_object(Bucket=b, Key=f"{s3p['prefix']}sha256/{h[:2]}/{h[2:]}")["Body"].read()
    files = {f["path"]: f["sha256"] for f in json.loads(get(sha))["files"]}
    tensors = load_safetensors(get(files["adapter_model.safetensors"]))
    assert "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight" in tensors
    # No process keeps blobs on its own disk: the staging folders hold none.
    for d in (s3p["api"].store_dir, home / "stage", s3p["tmp"] / "scheduler" / "stage"):
        assert not (d / "sha256").exists(), d
    assert sorted(s for s, _ in ref) == list(range(1, 37)) and {a for _, a in ref} == {1}
    s3p["ref"] = {s: l for (s, _), l in ref.items()}


def test_job_resumes_on_another_worker_from_the_checkpoint_in_the_bucket(s3p):
    if "ref" not in s3p:
        pytest.skip("needs the uninterrupted run of the test before")
    job = submit(s3p)
    api = s3p["api"]
    with psycopg.connect(api.db_url) as db:
        deadline = time.time() + 300
        while not db.execute("SELECT count(*) FROM checkpoints WHERE job_id = %s", (job,)).fetchone()[0]:
            assert time.time() < deadline, "no checkpoint was stored"
            time.sleep(0.05)
    a = s3p["procs"]["wrk-s3-a"]
    a.send_signal(signal.SIGKILL)          # the host is lost; its disk with it
    a.wait()
    home = s3p["start_worker"]("wrk-s3-b")
    j = wait_done(api, job)
    log_b = (s3p["tmp"] / "wrk-s3-b.log").read_text()
    assert j["status"] == "succeeded", (j, log_b[-3000:])
    assert "from a checkpoint" in log_b
    with psycopg.connect(api.db_url) as db:
        losses = step_losses(db, job)
        cks = {s for (s,) in db.execute("SELECT step FROM checkpoints WHERE job_id = %s AND attempt = 1",
                                        (job,))}
    first = min(s for s, a in losses if a == 2)
    # Attempt 2 began right after a checkpoint attempt 1 stored, not at step 1.
    assert first > 1 and first - 1 in cks, (first, cks)
    # Every step either attempt trained has the uninterrupted run's loss, and
    # the job got to the last step.
    wrong = {(s, a): l for (s, a), l in losses.items() if l != s3p["ref"][s]}
    assert not wrong, f"step losses differ from the uninterrupted run's: {wrong}"
    assert max(s for s, _ in losses) == 36
    # Worker B fetched what it needed into its own, fresh cache; the
    # checkpoint came from the bucket into its work folder.
    cache = home / "cache" / "files"
    assert sorted(p.name for p in cache.iterdir()) == sorted((s3p["train_sha"], s3p["val_sha"]))
    for sha in (s3p["train_sha"], s3p["val_sha"]):
        assert sha256_file(cache / sha) == sha
    resume = home / "work" / f"{job}-2" / "resume"
    assert resume.is_dir() and any(resume.iterdir())
    assert not (home / "stage" / "sha256").exists()
