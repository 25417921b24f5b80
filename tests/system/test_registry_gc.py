"""ft-scheduler's collection of unreferenced blobs, on the real platform:
a blob no row names is removed once it is older than the grace period, a
younger one and every referenced one stay; deleting a version (with its
export) frees exactly the blobs nothing else names; manifests stored before
artifact_files existed are read back into it before anything is collected."""
import hashlib
import os
import time

import pytest

from api_helpers import client, upload
from conftest import _api_server
from registry_platform import (Platform, data_lines, db, register_bundled_model, run_job,
                               store_blob, wait_export)

GRACE = 3


@pytest.fixture(scope="module")
def g(build_dir, database_url, redis_url, tmp_path_factory):
    srv, name = _api_server(build_dir, database_url, redis_url, tmp_path_factory,
                            max_upload_bytes=1 << 22)
    plat = Platform(srv, build_dir, redis_url, tmp_path_factory.mktemp("reg-gc"),
                    FT_GC_GRACE_S=str(GRACE))
    register_bundled_model(srv)
    tf = upload(srv, data_lines("train.jsonl", 8), name="t.jsonl")["id"]
    job = run_job(srv, model="ftplat-tiny-cs", training_file=tf, registered_model="gcbot",
                  hyperparameters={"max_steps": 1, "batch_size": 4})
    assert job["status"] == "succeeded", job
    with client(srv) as c:
        e = c.post("/v1/registry/exports", json={"model": "gcbot/1", "format": "merged",
                                                 "options": {"dtype": "fp16"}}).json()
    assert wait_export(srv, e["id"])["status"] == "succeeded"
    yield dict(srv=srv, plat=plat, job=job, export=e["id"])
    plat.stop()
    rc = srv.stop()
    import psycopg
    with psycopg.connect(database_url, autocommit=True) as c:
        c.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    assert rc == 0


def blobs(srv):
    root = srv.store_dir / "sha256"
    return {d.name + f.name for d in root.iterdir() for f in d.iterdir()}


def referenced(srv):
    with db(srv) as c:
        return {r[0] for r in c.execute("SELECT sha256 FROM files UNION SELECT sha256 FROM artifacts"
                                        " UNION SELECT sha256 FROM artifact_files")}


def put_blob(srv, data, age_s):
    sha = hashlib.sha256(data).hexdigest()
    p = store_blob(srv, sha)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)
    t = time.time() - age_s
    os.utime(p, (t, t))
    return sha


def collect(g):
    """Ask for a collection and wait until the leader says it ran."""
    log = g["plat"].tmp / "sched.log"
    before = log.read_text().count("collection:")
    g["plat"].collect_now()
    deadline = time.time() + 20
    while log.read_text().count("collection:") == before:
        assert time.time() < deadline, "no collection ran"
        time.sleep(0.05)


def test_unreferenced_blobs_older_than_the_grace_period_go(g):
    srv = g["srv"]
    old = put_blob(srv, b"an orphan from a dead upload", 3600)
    young = put_blob(srv, b"an orphan still in flight", 0)
    refs = referenced(srv)
    assert old not in refs and young not in refs and refs <= blobs(srv)
    collect(g)
    left = blobs(srv)
    assert old not in left                       # unreferenced and old: collected
    assert young in left                         # within the grace period: kept
    assert refs <= left                          # everything a row names: kept
    assert left == refs | {young}


def test_deleting_a_version_frees_exactly_what_only_it_named(g):
    srv = g["srv"]
    with db(srv) as c:
        mine = {r[0] for r in c.execute(
            "SELECT a.sha256 FROM artifacts a WHERE a.id IN (SELECT artifact_id FROM model_versions"
            " WHERE name = 'gcbot') OR a.metadata->>'export_id' = %s"
            " UNION SELECT f.sha256 FROM artifact_files f JOIN artifacts a ON a.id = f.artifact_id"
            " WHERE a.id IN (SELECT artifact_id FROM model_versions WHERE name = 'gcbot')"
            " OR a.metadata->>'export_id' = %s", (g["export"], g["export"]))}
        weights, = c.execute(
            "SELECT f.sha256 FROM artifact_files f JOIN artifacts a ON a.id = f.artifact_id"
            " WHERE a.metadata->>'export_id' = %s AND f.path = 'model.safetensors'",
            (g["export"],)).fetchone()
        adapter = {r[0] for r in c.execute(
            "SELECT f.sha256 FROM artifact_files f JOIN model_versions v"
            " ON v.artifact_id = f.artifact_id WHERE v.name = 'gcbot'")}
    with client(srv) as c:
        assert c.delete("/v1/registry/models/gcbot/versions/1").status_code == 200
        assert c.get(f"/v1/registry/exports/{g['export']}").status_code == 404
    still = referenced(srv)
    freed = mine - still
    # the export's weights and manifests are its own; the adapter's files
    # are also the checkpoint's (its adapter/ folder), so they stay
    assert weights in freed and adapter and not (adapter & freed)
    before = blobs(srv)
    assert freed <= before
    time.sleep(GRACE + 0.5)   # what the export wrote is now past the grace period
    collect(g)
    after = blobs(srv)
    # what is left is exactly what a row still names (the young orphan of the
    # test before is past its grace period too by now)
    assert after == before & still
    assert not (freed & after)


def test_manifests_from_before_artifact_files_are_read_first(g):
    """An artifact whose files were never listed (stored before 0005) has them
    read from its manifest by the collector, and nothing of it goes."""
    srv = g["srv"]
    with db(srv) as c:
        art, = c.execute("SELECT artifact_id FROM checkpoints WHERE job_id = %s LIMIT 1",
                         (g["job"]["id"],)).fetchone()
        rows = sorted(c.execute("SELECT path, sha256, bytes FROM artifact_files WHERE artifact_id = %s",
                                (art,)).fetchall())
        c.execute("DELETE FROM artifact_files WHERE artifact_id = %s", (art,))
    assert rows
    before = blobs(srv)
    time.sleep(0.1)
    collect(g)
    with db(srv) as c:
        again = sorted(c.execute("SELECT path, sha256, bytes FROM artifact_files WHERE artifact_id = %s",
                                 (art,)).fetchall())
    assert again == rows
    assert {r[1] for r in rows} <= blobs(srv) and blobs(srv) == before
