"""deploy/backup.sh under write load, then deploy/restore.sh into a fresh
installation (a new PostgreSQL database and an empty store), compared with
the original:

- while a client keeps uploading files and creating datasets, jobs and
  webhooks through ft-api, the test exports a snapshot (pg_export_snapshot)
  and backup.sh dumps exactly that snapshot (FT_BACKUP_SNAPSHOT, passed to
  pg_dump --snapshot) and copies the store; writes go on after the snapshot,
  during and after the backup;
- after the restore, every table of the public schema holds exactly the rows
  the original held in that snapshot (count and the text of every row, read
  in the snapshot's own transaction), and the restored schema_migrations
  matches;
- every blob in the restored store hashes (hashlib) to its name, every blob
  a restored row names is there, and each file's content served by an ft-api
  on the restored installation hashes to the file's recorded sha256;
- the restored installation serves: the old key works, and a new job can be
  created (sequences and constraints came back too);
- restore.sh refuses a target database that is not empty and a backup whose
  blob was damaged.
"""
import hashlib
import json
import os
import secrets
import subprocess
import threading
import time

import psycopg
import pytest

from api_helpers import SFT_LINES, client, jsonl, register_tiny_model, upload
from conftest import ApiServer, _api_server, _with_db, run

BLOB_COLUMNS = {("files", "sha256"), ("artifacts", "sha256")}


def tables(db_url):
    with psycopg.connect(db_url) as db:
        return [r[0] for r in db.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")]


def snapshot_rows(conn, names):
    """Every row of every table as text, sorted: {table: [row, ...]}."""
    return {t: [r[0] for r in conn.execute(f'SELECT t::text FROM "{t}" t ORDER BY 1')] for t in names}


class Load:
    """A client writing through the API until stopped (bounded: 2000 requests, 120 s)."""

    def __init__(self, srv):
        self.srv, self.stop, self.done, self.errors = srv, threading.Event(), 0, []
        self.t = threading.Thread(target=self.run, daemon=True)

    def run(self):
        deadline = time.time() + 120
        with client(self.srv) as c:
            i = 0
            while not self.stop.is_set() and i < 2000 and time.time() < deadline:
                i += 1
                try:
                    rows = SFT_LINES + [{"messages": [{"role": "user", "content": f"q{i}"},
                                                      {"role": "assistant", "content": f"a{i}"}]}]
                    r = c.post("/v1/files", data={"purpose": "fine-tune"},
                               files={"file": (f"load{i}.jsonl", jsonl(rows))})
                    assert r.status_code == 200, r.text
                    fid = r.json()["id"]
                    kind = i % 3
                    if kind == 0:
                        r = c.post("/v1/datasets", json={"file_id": fid, "name": f"ds{i}"})
                    elif kind == 1:
                        r = c.post("/v1/fine_tuning/jobs", json={"model": "tiny-llama", "training_file": fid})
                    else:
                        r = c.post("/v1/webhooks", json={"url": f"http://127.0.0.1:9/h{i}",
                                                         "events": ["fine_tuning.job.succeeded"]})
                    assert r.status_code == 200, r.text
                    self.done += 1
                except Exception as e:  # noqa: BLE001 - reported by the test
                    self.errors.append(repr(e))
                    return


@pytest.fixture
def source(build_dir, database_url, redis_url, tmp_path_factory, tmp_path):
    srv, name = _api_server(build_dir, database_url, redis_url, tmp_path_factory,
                            webhook_allow_http="true", webhook_allow_cidrs="127.0.0.1/32")
    register_tiny_model(srv, tmp_path)
    yield srv
    rc = srv.stop()
    with psycopg.connect(database_url, autocommit=True) as c:
        c.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    assert rc == 0, srv.log_path.read_text()[-3000:]


def backup_env(srv):
    return {"FT_DATABASE_URL": srv.db_url, "FT_STORE_BACKEND": "local", "FT_STORE_DIR": str(srv.store_dir)}


def test_backup_under_load_restores_into_a_fresh_installation(source, root, build_dir, database_url,
                                                               redis_url, tmp_path):
    # Some of everything before the load starts.
    upload(source, jsonl(SFT_LINES), name="first.jsonl")
    load = Load(source)
    load.t.start()
    while load.done < 10 and not load.errors:
        time.sleep(0.05)
    before = load.done

    # The snapshot the backup will dump, held open while it runs.
    snap_conn = psycopg.connect(source.db_url)
    snap_conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
    snap_id = snap_conn.execute("SELECT pg_export_snapshot()").fetchone()[0]
    # Writes after the snapshot, which the restore must not have.
    while load.done < before + 5 and not load.errors:
        time.sleep(0.02)
    dest = tmp_path / "backup"
    t0 = time.time()
    p = run([str(root / "deploy/backup.sh"), str(dest)],
            env={**backup_env(source), "FT_BACKUP_SNAPSHOT": snap_id})
    took = time.time() - t0
    expected = snapshot_rows(snap_conn, tables(source.db_url))
    snap_conn.rollback()
    snap_conn.close()
    during = load.done
    running = load.t.is_alive()
    time.sleep(0.3)            # some writes after the backup too
    load.stop.set()
    load.t.join(30)
    assert not load.errors, load.errors
    assert running, "the load stopped before the backup finished"
    assert load.done > during or load.done >= 2000, "the load did not go on after the backup"
    assert "blobs" in p.stdout and took < 60
    print(f"backup took {took:.2f} s; load requests: {during} before it ended, {load.done} in all; "
          f"{p.stdout.strip()}; snapshot rows: "
          + ", ".join(f"{t}={len(v)}" for t, v in sorted(expected.items()) if v))

    # The backup is self-describing.
    meta = dict(l.split(": ", 1) for l in (dest / "BACKUP").read_text().splitlines())
    assert meta["format"] == "ftplat-backup-1" and meta["store_backend"] == "local"
    with psycopg.connect(source.db_url) as db:
        assert int(meta["schema_version"]) == db.execute("SELECT max(version) FROM schema_migrations").fetchone()[0]

    # A fresh installation: a new database, an empty store.
    new_name = "restored_" + secrets.token_hex(6)
    with psycopg.connect(database_url, autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{new_name}"')
    new_url = _with_db(database_url, new_name)
    new_store = tmp_path / "new-store"
    env = {"FT_DATABASE_URL": new_url, "FT_STORE_BACKEND": "local", "FT_STORE_DIR": str(new_store)}
    try:
        run([str(root / "deploy/restore.sh"), str(dest)], env=env)

        # Every table, row for row, as the snapshot had it.
        assert tables(new_url) == sorted(expected)
        with psycopg.connect(new_url) as db:
            got = snapshot_rows(db, sorted(expected))
        for t in expected:
            assert len(got[t]) == len(expected[t]), f"{t}: {len(got[t])} rows, snapshot had {len(expected[t])}"
            assert got[t] == expected[t], f"{t}: rows differ"
        assert len(expected["files"]) >= 11 and len(expected["jobs"]) >= 1
        assert len(expected["webhooks"]) >= 1 and len(expected["datasets"]) >= 1

        # Every blob is what its name says, and every blob a row names is there.
        blobs = {}
        for f in (new_store / "sha256").rglob("*"):
            if f.is_file():
                name = f.parent.name + f.name
                assert hashlib.sha256(f.read_bytes()).hexdigest() == name, f
                blobs[name] = f
        with psycopg.connect(new_url) as db:
            for table, col in BLOB_COLUMNS:
                for (sha,) in db.execute(f'SELECT "{col}" FROM "{table}"'):
                    assert sha in blobs, f"{table}.{col} {sha} is not in the restored store"
        src_blobs = {f.parent.name + f.name for f in (source.store_dir / "sha256").rglob("*") if f.is_file()}
        assert set(blobs) <= src_blobs

        # The restored installation serves what it restored, with the old key.
        srv = ApiServer(build_dir, new_url, redis_url, tmp_path / "api-b")
        srv.store_dir = new_store
        srv.env["FT_STORE_DIR"] = str(new_store)
        srv.key = source.key
        (tmp_path / "api-b").mkdir()
        srv.start()
        try:
            with client(srv) as c, psycopg.connect(new_url) as db:
                for fid, sha in db.execute("SELECT id, sha256 FROM files ORDER BY id LIMIT 20"):
                    r = c.get(f"/v1/files/{fid}/content")
                    assert r.status_code == 200 and hashlib.sha256(r.content).hexdigest() == sha
                f = upload(srv, jsonl(SFT_LINES), name="after.jsonl")
                j = c.post("/v1/fine_tuning/jobs", json={"model": "tiny-llama", "training_file": f["id"]})
                assert j.status_code == 200, j.text
        finally:
            assert srv.stop() == 0, srv.log_path.read_text()[-3000:]

        # Refusals: a database that is not empty, a damaged backup.
        p = run([str(root / "deploy/restore.sh"), str(dest)], env=env, check=False)
        assert p.returncode == 2 and "already has" in p.stderr
        victim = next((dest / "store" / "sha256").rglob("*/*"))
        victim.write_bytes(victim.read_bytes() + b"x")
        with psycopg.connect(database_url, autocommit=True) as c:
            c.execute(f'DROP DATABASE "{new_name}" WITH (FORCE)')
            c.execute(f'CREATE DATABASE "{new_name}"')
        p = run([str(root / "deploy/restore.sh"), str(dest)],
                env={**env, "FT_STORE_DIR": str(tmp_path / "store3")}, check=False)
        assert p.returncode == 1 and "does not match its name" in p.stderr
        assert tables(new_url) == []
    finally:
        with psycopg.connect(database_url, autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{new_name}" WITH (FORCE)')
