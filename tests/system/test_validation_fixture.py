"""One verdict per data file: ft-api and ft-train agree on every file of the
shared fixture (tests/data/validation/, described in its README).

Each file is uploaded with POST /v1/files, then
  - validated as a dataset (POST /v1/datasets: any format, its structure)
    and by `ft-train validate FILE --json`;
  - validated for a job (POST /v1/fine_tuning/jobs on a base model whose
    folder holds a tokenizer and a chat template, max_seq_length 256) and by
    `ft-train validate FILE --model DIR --method M --max-seq-len 256 --json`.
Both must give the same verdict, format, counts, and for every problem the
same code, message and line, and both must match the (line, code) list
written by hand in expected.json. Statistics (characters, roles, tokens)
and the preview are compared too. A file with a line over 16 MiB is made
here (too big for the repository). No message the API shows may hold a
path of the server.
"""
import json
import subprocess
import time
from pathlib import Path

import psycopg
import pytest

from api_helpers import TINY_LLAMA, client, upload
from conftest import _api_server

tokenizers = pytest.importorskip("tokenizers")
from test_dataset_validate import CHATML_GEN, SPECIALS, WORDS  # noqa: E402

FIXTURE = Path(__file__).resolve().parents[1] / "data" / "validation"
EXPECTED = json.loads((FIXTURE / "expected.json").read_text())
MAX_SEQ = 256


@pytest.fixture(scope="module")
def srv(build_dir, database_url, redis_url, tmp_path_factory):
    s, name = _api_server(build_dir, database_url, redis_url, tmp_path_factory,
                          max_upload_bytes=64 << 20)
    yield s
    rc = s.stop()
    with psycopg.connect(database_url, autocommit=True) as c:
        c.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    assert rc == 0, f"ft-api exited {rc}:\n{s.log_path.read_text()[-4000:]}"


@pytest.fixture(scope="module")
def model(srv, tmp_path_factory):
    """A base model folder: config.json, a byte-level BPE trained here, and a
    chatml template with {% generation %} markers (as test_dataset_validate)."""
    import random
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
    rng = random.Random(0)
    corpus = [" ".join(rng.choice(WORDS) for _ in range(30)) for _ in range(200)]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(corpus, trainers.BpeTrainer(
        vocab_size=500, show_progress=False, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in SPECIALS])
    d = tmp_path_factory.mktemp("model")
    tok.save(str(d / "tokenizer.json"))
    (d / "tokenizer_config.json").write_text(json.dumps(
        {"bos_token": None, "eos_token": "<|im_end|>", "chat_template": CHATML_GEN}))
    (d / "config.json").write_text(json.dumps(TINY_LLAMA))
    with client(srv) as c:
        r = c.post("/v1/models", json={"name": "chat-tok", "path": str(d)})
        assert r.status_code == 200, r.text
    return d


def ft_validate(build_dir, path, *args):
    p = subprocess.run([str(build_dir / "trainer" / "ft-train"), "validate", str(path), "--json",
                        *map(str, args)], capture_output=True, text=True, timeout=300)
    assert p.returncode in (0, 1), p.stderr
    rep = json.loads(p.stdout)
    assert (p.returncode == 0) == rep["ok"]
    return rep


def wait(c, url, busy, timeout=60):
    deadline = time.time() + timeout
    while True:
        obj = c.get(url).json()
        if obj["status"] not in busy:
            return obj
        assert time.time() < deadline, obj
        time.sleep(0.05)


def same_report(api, ft):
    """The API's report (docs/api.md) and ft-train's --json hold one verdict."""
    assert api["valid"] == ft["ok"]
    assert api["format"] == (None if ft["format"] == "unknown" else ft["format"])
    assert (api["n_lines"], api["n_examples"], api["n_errors"]) == (ft["lines"], ft["rows"], ft["errors"])
    assert [(e["line"] or 0, e["code"], e["message"]) for e in api["errors"]] == \
        [(i["line"], i["code"], i["message"]) for i in ft["issues"]]
    st, fst = api["stats"], ft["stats"]
    for k in ("total_chars", "max_chars", "roles"):
        assert st[k] == fst[k], k
    assert st["mean_chars"] == pytest.approx(fst["mean_chars"], rel=1e-12)
    assert st["n_messages"] == sum(fst["roles"].values())
    for k in ("tokens_total", "tokens_trained", "max_len", "rows_truncated", "approx_tokens"):
        assert st[k] == fst[k], k
    assert api["preview"] == ft["preview"]


def no_server_paths(text, srv, model):
    for p in (str(srv.store_dir), str(model), str(FIXTURE), "/tmp/"):
        assert p not in text, text


CASES = sorted(EXPECTED)


@pytest.mark.parametrize("name", CASES)
def test_dataset_validation_is_ft_train_validate(srv, build_dir, model, name):
    path = FIXTURE / name
    want = EXPECTED[name]
    f = upload(srv, path.read_bytes(), name=name)
    with client(srv) as c:
        d = c.post("/v1/datasets", json={"file_id": f["id"]}).json()
        d = wait(c, f"/v1/datasets/{d['id']}", ("validating",))
    ft = ft_validate(build_dir, path)
    rep = dict(d["report"], stats=d["stats"], preview=d["preview"])
    same_report(rep, ft)
    assert d["status"] == ("valid" if ft["ok"] else "invalid")
    assert d["format"] == rep["format"]
    assert [[i["line"], i["code"]] for i in ft["issues"]] == want["structure"]
    assert ft["format"] == want["format"]
    no_server_paths(json.dumps(d), srv, model)


@pytest.mark.parametrize("name", CASES)
def test_job_validation_is_ft_train_validate_with_the_model(srv, build_dir, model, name):
    path = FIXTURE / name
    want = EXPECTED[name]
    method = want["method"]
    f = upload(srv, path.read_bytes(), name=name)
    with client(srv) as c:
        r = c.post("/v1/fine_tuning/jobs", json={
            "model": "chat-tok", "training_file": f["id"],
            "method": {"type": method, method: {"hyperparameters": {"max_seq_length": MAX_SEQ}}}})
        assert r.status_code == 200, r.text
        j = wait(c, f"/v1/fine_tuning/jobs/{r.json()['id']}", ("validating_files",))
        events = c.get(f"/v1/fine_tuning/jobs/{j['id']}/events").json()["data"]
    # a job's rows longer than max_seq_length are cut by the trainer, not
    # refused: --truncate-long counts them instead of calling them too_long
    ft = ft_validate(build_dir, path, "--model", model, "--method", "sft" if method == "supervised" else "dpo",
                     "--max-seq-len", MAX_SEQ, "--truncate-long")
    assert [[i["line"], i["code"]] for i in ft["issues"]] == [x for x in want["model"] if x[1] != "too_long"]
    assert ft["stats"]["rows_truncated"] == sum(1 for x in want["model"] if x[1] == "too_long")
    if ft["ok"]:
        assert j["status"] == "queued" and j["error"] is None
        data = next(e["data"] for e in events if (e["data"] or {}).get("status") == "queued")
        assert data["format"] == ft["format"] and data["n_examples"] == ft["rows"]
        return
    assert j["status"] == "failed"
    e = j["error"]
    rep = e["report"]
    same_report(rep, ft)
    assert rep["template"] == ft["template"]
    assert rep["stats"]["max_seq_len"] == MAX_SEQ
    first = ft["issues"][0]
    assert e["code"] == "invalid_training_file" and e["param"] == "training_file"
    assert e["line"] == (first["line"] or None)
    more = f" (and {ft['errors'] - 1} more errors)" if ft["errors"] > 1 else ""
    sep = " " if first["line"] else ": "
    assert e["message"] == f"training file{sep}{first['message']}{more}"
    no_server_paths(json.dumps(j), srv, model)


def test_a_file_that_does_not_fit_the_method_is_refused_at_once(srv, build_dir, model):
    """The check at creation is the validator's wrong_method, word for word."""
    path = FIXTURE / "preference_good.jsonl"
    f = upload(srv, path.read_bytes(), name=path.name)
    with client(srv) as c:
        r = c.post("/v1/fine_tuning/jobs", json={"model": "chat-tok", "training_file": f["id"]})
    assert r.status_code == 400
    err = r.json()["error"]
    ft = ft_validate(build_dir, path, "--method", "sft")
    issue = ft["issues"][0]
    assert issue["code"] == "wrong_method" and issue["line"] == 1
    assert err["code"] == "wrong_method" and err["param"] == "training_file" and err["line"] == 1
    assert err["message"] == f'training_file "{f["id"]}" {issue["message"]}'


def test_a_line_over_the_cap(srv, build_dir, model, tmp_path):
    """A line over 16 MiB (FT_DATA_MAX_LINE) is one error; reading goes on."""
    path = tmp_path / "huge.jsonl"
    path.write_bytes(b'{"text": "a"}\n{"text": "' + b"x" * (16 << 20) + b'"}\n{"text": "b"}\n')
    f = upload(srv, path.read_bytes(), name="huge.jsonl")
    with client(srv) as c:
        d = c.post("/v1/datasets", json={"file_id": f["id"]}).json()
        d = wait(c, f"/v1/datasets/{d['id']}", ("validating",))
    ft = ft_validate(build_dir, path)
    assert [(i["line"], i["code"]) for i in ft["issues"]] == [(2, "line_too_long")]
    assert ft["issues"][0]["message"] == (f"line 2: {12 + (16 << 20)} bytes, longer than the limit "
                                          "of 16777216 bytes per line")
    same_report(dict(d["report"], stats=d["stats"], preview=d["preview"]), ft)


def test_an_unreadable_file_is_named_by_its_id(srv, model):
    """A file whose blob left the store fails by its id, never its path."""
    data = (FIXTURE / "messages_good.jsonl").read_bytes() + b'{"messages": "unique"}\n'
    f = upload(srv, data, name="gone.jsonl")
    blob = srv.store_dir / "sha256" / f["sha256"][:2] / f["sha256"][2:]
    assert blob.read_bytes() == data
    blob.unlink()
    with client(srv) as c:
        d = c.post("/v1/datasets", json={"file_id": f["id"]}).json()
        d = wait(c, f"/v1/datasets/{d['id']}", ("validating",))
        r = c.post("/v1/fine_tuning/jobs", json={"model": "chat-tok", "training_file": f["id"]})
        assert r.status_code == 200, r.text
        j = wait(c, f"/v1/fine_tuning/jobs/{r.json()['id']}", ("validating_files",))
    want = f'file "{f["id"]}" cannot be read from the store'
    assert d["status"] == "invalid"
    assert [(e["line"], e["code"], e["message"]) for e in d["report"]["errors"]] == \
        [(None, "file_unreadable", want)]
    assert j["status"] == "failed"
    assert j["error"] == {"code": "file_unreadable", "message": "training " + want,
                          "param": "training_file", "line": None}
    no_server_paths(json.dumps(d) + json.dumps(j), srv, model)
    assert f["sha256"] not in json.dumps(d) + json.dumps(j)
