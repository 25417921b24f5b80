"""Uploads and request bodies: oversized uploads get 413 and store nothing,
malformed JSON / wrong types / unknown fields get 400 naming the field, a
kill -9 during an upload leaves no visible file and no rows, and a job left
in validating_files by a crash is validated after the restart."""
import json
import os
import signal
import socket
import threading
import time

import psycopg
import pytest

from api_helpers import SFT_LINES, client, jsonl, register_tiny_model, upload, wait_status
from conftest import _api_server


def blobs(store_dir):
    return sorted(p.name for p in (store_dir / "sha256").rglob("*") if p.is_file())


def count(db_url, table):
    with psycopg.connect(db_url) as db:
        return db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def test_oversized_upload_is_413_and_stores_nothing(api_server):
    before = blobs(api_server.store_dir)
    n_files = count(api_server.db_url, "files")
    big = b"x" * ((1 << 20) + 1)   # the fixture caps uploads at 1 MiB
    with client(api_server) as c:
        r = c.post("/v1/files", data={"purpose": "fine-tune"}, files={"file": ("big.jsonl", big)})
        assert r.status_code == 413, r.text
        assert r.json()["error"]["code"] == "file_too_large"
        # Chunked (no Content-Length): refused while streaming, same answer.
        boundary = "b0undary"
        def gen():
            yield (f"--{boundary}\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\n"
                   f"fine-tune\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
                   f"filename=\"big.jsonl\"\r\nContent-Type: application/octet-stream\r\n\r\n").encode()
            for _ in range(20):
                yield b"y" * (64 << 10)
            yield f"\r\n--{boundary}--\r\n".encode()
        r = c.post("/v1/files", content=gen(),
                   headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
        assert r.status_code == 413, r.text
        assert r.json()["error"]["param"] == "file"
        # The connection is still usable afterwards.
        assert c.get("/v1/files").status_code == 200
    assert blobs(api_server.store_dir) == before
    assert count(api_server.db_url, "files") == n_files
    assert list((api_server.store_dir / "tmp").glob("*.part")) == []


@pytest.mark.parametrize("body,code,param", [
    (b'{"model": "m", "training_file": ', "invalid_json", None),
    (b'[1, 2]', "invalid_json", None),
    (b'{"model": 5, "training_file": "file-x"}', "invalid_type", "model"),
    (b'{"model": "m"}', "missing_field", "training_file"),
    (b'{"model": "m", "training_file": "f", "epochs": 3}', "unknown_field", "epochs"),
    (b'{"model": "m", "training_file": "f", "hyperparameters": {"n_epochs": "many"}}',
     "invalid_type", "hyperparameters.n_epochs"),
    (b'{"model": "m", "training_file": "f", "hyperparameters": {"n_epochs": 0}}',
     "out_of_range", "hyperparameters.n_epochs"),
    (b'{"model": "m", "training_file": "f", "method": {"type": "rlhf"}}', "invalid_value", "method.type"),
    (b'{"model": "m", "training_file": "f", "method": {"type": "dpo", "dpo": {"hyperparameters": {"beta": 5}}}}',
     "out_of_range", "method.dpo.hyperparameters.beta"),
    (b'{"model": "m", "training_file": "f", "method": {"type": "supervised", "supervised": {"hyperparameters": {"beta": 0.1}}}}',
     "unknown_field", "method.supervised.hyperparameters.beta"),
    (b'{"model": "m", "training_file": "f", "hyperparameters": {"packing": 1}}',
     "invalid_type", "hyperparameters.packing"),
    (b'{"model": "m", "training_file": "f", "hyperparameters": {"max_seq_length": 1}}',
     "out_of_range", "hyperparameters.max_seq_length"),
    (b'{"model": "m", "training_file": "f", "hyperparameters": {"max_seq_length": "auto"}}',
     "invalid_type", "hyperparameters.max_seq_length"),
    (b'{"model": "m", "training_file": "f", "hyperparameters": {"lr_scheduler_type": "cyclic"}}',
     "invalid_value", "hyperparameters.lr_scheduler_type"),
    (b'{"model": "m", "training_file": "f", "hyperparameters": {"gradient_checkpointing": "yes"}}',
     "invalid_type", "hyperparameters.gradient_checkpointing"),
    (b'{"model": "m", "training_file": "f", "hyperparameters": {"label_smoothing": 0.1}}',
     "unknown_field", "hyperparameters.label_smoothing"),
    (b'{"model": "m", "training_file": "f", "method": {"type": "dpo", "dpo": {"hyperparameters": {"label_smoothing": 0.9}}}}',
     "out_of_range", "method.dpo.hyperparameters.label_smoothing"),
    (b'{"model": "m", "training_file": "f", "method": {"type": "dpo", "dpo": {"hyperparameters": {"packing": true}}}}',
     "unknown_field", "method.dpo.hyperparameters.packing"),
    (b'{"model": "m", "training_file": "f", "lora": {"r": "8"}}', "invalid_type", "lora.r"),
    (b'{"model": "m", "training_file": "f", "lora": {"layers_to_transform": "top"}}',
     "invalid_type", "lora.layers_to_transform"),
    (b'{"model": "m", "training_file": "f", "lora": {"layers_to_transform": [3, -1]}}',
     "invalid_value", "lora.layers_to_transform"),
    (b'{"model": "m", "training_file": "f", "adapter": "dora"}', "invalid_value", "adapter"),
    (b'{"model": "m", "training_file": "f", "metadata": {"k": 1}}', "invalid_value", "metadata"),
    (b'{"model": "m", "training_file": "f", "suffix": "' + b"s" * 65 + b'"}', "invalid_value", "suffix"),
    (b'{"model": "m", "model": "n", "training_file": "f"}', "invalid_json", None),
])
def test_bad_job_bodies_are_400_naming_the_field(api_server, body, code, param):
    with client(api_server) as c:
        r = c.post("/v1/fine_tuning/jobs", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["code"] == code and err["param"] == param, err
    assert err["type"] == "invalid_request_error" and err["message"]


def test_bad_upload_forms(api_server):
    with client(api_server) as c:
        r = c.post("/v1/files", data={"purpose": "batch"}, files={"file": ("a.jsonl", b"{}\n")})
        assert r.status_code == 400 and r.json()["error"]["param"] == "purpose"
        r = c.post("/v1/files", data={"purpose": "fine-tune"})   # urlencoded, not multipart
        assert r.status_code == 415 and r.json()["error"]["code"] == "invalid_content_type"
        r = c.post("/v1/files", data={"purpose": "fine-tune", "colour": "red"},
                   files={"file": ("a.jsonl", b"{}\n")})
        assert r.status_code == 400 and r.json()["error"]["param"] == "colour"
        r = c.post("/v1/files", json={"purpose": "fine-tune"})
        assert r.status_code == 415 and r.json()["error"]["code"] == "invalid_content_type"
        big = c.post("/v1/datasets", content=b'{"file_id": "' + b"a" * (2 << 20) + b'"}')
        assert big.status_code == 413 and big.json()["error"]["code"] == "body_too_large"


def test_idempotency_key_replays_the_first_response(api_server):
    h = {"Idempotency-Key": "upload-1"}
    with client(api_server) as c:
        a = c.post("/v1/files", data={"purpose": "fine-tune"}, files={"file": ("a.jsonl", b"{}\n")}, headers=h)
        b = c.post("/v1/files", data={"purpose": "fine-tune"}, files={"file": ("a.jsonl", b"{}\n")}, headers=h)
        assert a.status_code == b.status_code == 200 and a.json() == b.json()
        other = c.post("/v1/files", data={"purpose": "fine-tune"}, files={"file": ("b.jsonl", b"[]\n")},
                       headers=h)
        assert other.status_code == 422 and other.json()["error"]["code"] == "idempotency_key_reused"
    with psycopg.connect(api_server.db_url) as db:
        assert db.execute("SELECT count(*) FROM files WHERE id = %s", (a.json()["id"],)).fetchone()[0] == 1
        assert db.execute("SELECT count(*) FROM files WHERE filename = 'a.jsonl' AND created_at >= "
                          "(SELECT created_at FROM files WHERE id = %s)", (a.json()["id"],)).fetchone()[0] == 1


@pytest.fixture
def crashable(build_dir, database_url, redis_url, tmp_path_factory):
    srv, name = _api_server(build_dir, database_url, redis_url, tmp_path_factory)
    yield srv
    srv.stop(signal.SIGKILL)
    with psycopg.connect(database_url, autocommit=True) as c:
        c.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def test_kill_9_during_upload_leaves_nothing_visible(crashable):
    srv = crashable
    boundary = "xyz"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nfine-tune\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"t.jsonl\"\r\n\r\n")
    total = 4 << 20
    s = socket.create_connection(("127.0.0.1", srv.port))
    s.sendall((f"POST /v1/files HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {srv.key}\r\n"
               f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
               f"Content-Length: {len(head) + total + 100}\r\n\r\n{head}").encode())
    s.sendall(b"z" * (1 << 20))
    # Wait until the server has streamed part of it into a temporary file.
    deadline = time.time() + 10
    while not any(p.stat().st_size > 0 for p in (srv.store_dir / "tmp").glob("*.part")):
        assert time.time() < deadline
        time.sleep(0.02)
    srv.proc.send_signal(signal.SIGKILL)
    srv.proc.wait()
    s.close()
    assert count(srv.db_url, "files") == 0
    assert blobs(srv.store_dir) == []
    srv.start()
    with client(srv) as c:
        assert c.get("/v1/files").json()["data"] == []
    with psycopg.connect(srv.db_url) as db:
        assert db.execute("SELECT count(*) FROM idempotency_keys").fetchone()[0] == 0
        assert db.execute("SELECT count(*) FROM audit_log WHERE action = 'files.create'").fetchone()[0] == 0


def test_job_left_validating_by_a_crash_is_picked_up(crashable, tmp_path):
    srv = crashable
    register_tiny_model(srv, tmp_path)
    f = upload(srv, jsonl(SFT_LINES))
    srv.stop(signal.SIGKILL)
    # What a crash right after the create transaction leaves behind.
    job = "ftjob-" + "C" * 24
    with psycopg.connect(srv.db_url, autocommit=True) as db:
        model_id = db.execute("SELECT id FROM base_models").fetchone()[0]
        db.execute("INSERT INTO jobs (id, team_id, model, base_model_id, training_file_id, method, seed) "
                   "VALUES (%s, %s, 'tiny-llama', %s, %s, 'supervised', 1)", (job, srv.team, model_id, f["id"]))
    srv.start()
    assert wait_status(srv, job, {"queued", "failed"})["status"] == "queued"
    with psycopg.connect(srv.db_url) as db:
        tr = db.execute("SELECT from_status, to_status FROM job_transitions WHERE job_id = %s", (job,)).fetchall()
    assert tr == [("validating_files", "queued")]


def test_idempotent_error_inside_a_transaction_is_stored(api_server, tmp_path):
    register_tiny_model(api_server, tmp_path, name="tiny-idem")
    f = upload(api_server, jsonl(SFT_LINES))
    with client(api_server) as c:
        j = c.post("/v1/fine_tuning/jobs", json={"model": "tiny-idem", "training_file": f["id"]}).json()
        assert c.post(f"/v1/fine_tuning/jobs/{j['id']}/cancel").status_code == 200
        h = {"Idempotency-Key": "cancel-twice"}
        a = c.post(f"/v1/fine_tuning/jobs/{j['id']}/cancel", headers=h)
        b = c.post(f"/v1/fine_tuning/jobs/{j['id']}/cancel", headers=h)
    assert a.status_code == b.status_code == 409 and a.json() == b.json()
    with psycopg.connect(api_server.db_url) as db:
        st = db.execute("SELECT response_status FROM idempotency_keys WHERE key = 'cancel-twice'").fetchone()
    assert st == (409,)
