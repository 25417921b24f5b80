"""ft-api on the S3 backend (store_backend = s3) against the real S3-compatible
server deploy/dev/s3.sh starts (SeaweedFS): an upload large enough for a
multipart upload lands as one object under the blob's SHA-256 key, the file's
content comes back byte for byte, a job's validation reads it back from the
object store, and nothing is written to the local store folder. The peer that
looks into the bucket is boto3 (AWS's own SDK: another SigV4 implementation
than libcurl's)."""
import hashlib
import json
import os
import secrets

import pytest

from api_helpers import SFT_LINES, client, register_tiny_model, upload, wait_status
from conftest import _api_server, s3_bucket, s3_or_skip


@pytest.fixture(scope="module")
def s3_api(build_dir, database_url, redis_url, tmp_path_factory):
    s3_or_skip()
    prefix = f"systest-{secrets.token_hex(6)}/"
    srv, name = _api_server(build_dir, database_url, redis_url, tmp_path_factory,
                            store_backend="s3", s3_prefix=prefix, s3_multipart_mb=5,
                            max_upload_bytes=16 << 20)
    srv.prefix = prefix
    yield srv
    rc = srv.stop()
    import psycopg
    with psycopg.connect(database_url, autocommit=True) as c:
        c.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    assert rc == 0, f"ft-api exited {rc}:\n{srv.log_path.read_text()[-4000:]}"


def test_upload_lands_in_the_bucket_and_reads_back(s3_api, tmp_path):
    # About 6 MiB of valid rows: above s3_multipart_mb = 5, so two parts.
    row = json.dumps(SFT_LINES[0]) + "\n"
    data = (row * (6 * (1 << 20) // len(row) + 1)).encode()
    sha = hashlib.sha256(data).hexdigest()
    f = upload(s3_api, data)
    assert f["bytes"] == len(data)

    s3, b = s3_bucket()
    key = f"{s3_api.prefix}sha256/{sha[:2]}/{sha[2:]}"
    head = s3.head_object(Bucket=b, Key=key)
    assert head["ContentLength"] == len(data)
    assert head["ETag"].strip('"').endswith("-2")          # the server's multipart record
    body = s3.get_object(Bucket=b, Key=key)["Body"].read()
    assert hashlib.sha256(body).hexdigest() == sha
    listed = s3.list_objects_v2(Bucket=b, Prefix=s3_api.prefix)
    assert [o["Key"] for o in listed.get("Contents", [])] == [key]

    with client(s3_api) as c:
        r = c.get(f"/v1/files/{f['id']}/content")
        assert r.status_code == 200
        assert hashlib.sha256(r.content).hexdigest() == sha

    # A job's validation streams the training file back out of the bucket.
    register_tiny_model(s3_api, tmp_path)
    with client(s3_api) as c:
        j = c.post("/v1/fine_tuning/jobs", json={"model": "tiny-llama", "training_file": f["id"]})
        assert j.status_code == 200, j.text
    assert wait_status(s3_api, j.json()["id"], {"queued", "failed"}, timeout=60)["status"] == "queued"

    # Nothing went to the local folder but staging, which is empty again.
    store = s3_api.store_dir
    assert not (store / "sha256").exists()
    assert list((store / "tmp").iterdir()) == []


def test_worker_names_the_missing_s3_setting(build_dir, tmp_path):
    # A worker opens the store as ft-api does (store_backend and the s3_* keys);
    # the jobs it runs on S3 are in test_worker_s3.py.
    import subprocess
    env = {k: v for k, v in os.environ.items() if not k.startswith("FT_S3_")}
    env.update(FT_STORE_BACKEND="s3", FT_STORE_DIR=str(tmp_path / "s"),
               FT_WORK_DIR=str(tmp_path / "w"), FT_CACHE_DIR=str(tmp_path / "c"),
               FT_WORKER_GPUS="0")
    p = subprocess.run([str(build_dir / "worker" / "ft-worker")], env=env, capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 1
    assert "ft-worker: store_backend = s3 needs s3_endpoint to be set" in p.stderr


def test_the_scheduler_collects_unreferenced_blobs_in_the_bucket(s3_api, build_dir, redis_url,
                                                                  tmp_path):
    """gc.c on the S3 backend (ListObjectsV2, HEAD's Last-Modified, DELETE):
    a blob no row names goes once its Last-Modified is older than the grace
    period (2 s here); a younger one and a referenced one stay. An upload
    whose content is in the bucket already gives the object a new
    Last-Modified (a copy onto itself), as the local backend's commit
    refreshes a file's time, so a collection cannot take a blob a commit
    just found. boto3 writes the orphans and reads the bucket back."""
    import time
    from registry_platform import Platform
    s3, b = s3_bucket()

    def key(sha):
        return f"{s3_api.prefix}sha256/{sha[:2]}/{sha[2:]}"

    def orphan(data):
        sha = hashlib.sha256(data).hexdigest()
        s3.put_object(Bucket=b, Key=key(sha), Body=data)
        return sha

    def listed():
        out = s3.list_objects_v2(Bucket=b, Prefix=s3_api.prefix + "sha256/")
        return {o["Key"] for o in out.get("Contents", [])}

    row = (json.dumps(SFT_LINES[1]) + "\n").encode()
    ref = hashlib.sha256(row * 3).hexdigest()
    upload(s3_api, row * 3)
    old = orphan(b"an orphan from a dead upload")
    again = orphan(row * 5)          # uploaded again below, after the grace period
    time.sleep(3.2)
    before = s3.head_object(Bucket=b, Key=key(again))["LastModified"]
    upload(s3_api, row * 5)          # the commit finds it: refreshed, not sent
    after = s3.head_object(Bucket=b, Key=key(again))["LastModified"]
    assert after > before, (before, after)
    young = orphan(b"an orphan still in flight")

    plat = Platform(s3_api, build_dir, redis_url, tmp_path, FT_STORE_BACKEND="s3",
                    FT_S3_PREFIX=s3_api.prefix, FT_GC_GRACE_S="2")
    try:
        def collect():
            log = tmp_path / "sched.log"
            n = log.read_text().count("collection:") if log.exists() else 0
            plat.collect_now()
            deadline = time.time() + 30
            while (log.read_text().count("collection:") if log.exists() else 0) == n:
                assert time.time() < deadline, log.read_text()[-3000:]
                time.sleep(0.05)
            return log.read_text()

        time.sleep(0.5)  # the leader is up: SIGUSR1 before its handler would kill it
        # (the bucket also holds what the module's other tests stored: only
        # these four are looked at)
        mine = {key(s) for s in (ref, old, again, young)}
        text = collect()
        assert listed() & mine == {key(ref), key(again), key(young)}, text[-2000:]
        time.sleep(2.5)  # the young orphan is old now; the referenced blobs stay
        text = collect()
        assert listed() & mine == {key(ref), key(again)}, text[-2000:]
        assert "removed" in text and "collection of unreferenced blobs is off" not in text
    finally:
        plat.stop()
