"""POST /v1/fine_tuning/jobs/estimate, GET /v1/me and GET /v1/audit_log
against the real ft-api and PostgreSQL.

The estimate's figures are checked against their sources computed here
independently: the token count of the bundled data by the rule validate.c
states (and that rule against the bundled model's real tokenizer, from the
`tokenizers` library), the step count by the trainer's arithmetic, GPU
memory by `ft-train estimate` on the same job, and the
throughput as the median of job_metrics rows."""
import json
import math
import statistics
import subprocess
import time
from pathlib import Path

import psycopg
import pytest

from api_helpers import client, upload

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "data" / "customer-service"
MODEL = ROOT / "data" / "models" / "ftplat-tiny-cs"


def text_fields(ex):
    """The strings the validator counts, per format (messages, preference)."""
    if "messages" in ex:
        return [m["content"] for m in ex["messages"]]
    if "chosen" in ex:
        return [ex.get("prompt", ""), ex["chosen"], ex["rejected"]]
    raise AssertionError(ex)


def approx(text):
    ascii_ = sum(1 for b in text.encode() if b < 0x80)
    other = sum(1 for ch in text if ord(ch) >= 0x80)
    return ascii_ / 4 + other / 1.5


@pytest.fixture(scope="module")
def world(api_server):
    with client(api_server) as c:
        m = c.post("/v1/models", json={"name": "est-model", "path": str(MODEL)}).json()
    raw = (DATA / "train.jsonl").read_bytes()
    f = upload(api_server, raw, name="train.jsonl")
    with client(api_server) as c:
        ds = c.post("/v1/datasets", json={"file_id": f["id"]}).json()
        for _ in range(400):
            ds = c.get(f"/v1/datasets/{ds['id']}").json()
            if ds["status"] != "validating":
                break
            time.sleep(0.05)
    assert ds["status"] == "valid", ds
    return dict(model=m, file=f, ds=ds, raw=raw)


def test_dataset_token_count_is_the_stated_rule_and_close_to_the_tokenizer(world):
    rows = [json.loads(l) for l in world["raw"].decode().splitlines() if l.strip()]
    by_rule = sum(approx(t) for ex in rows for t in text_fields(ex))
    assert world["ds"]["stats"]["approx_tokens"] == math.floor(by_rule + 0.5)
    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(str(MODEL / "tokenizer.json"))
    real = sum(len(tok.encode(t, add_special_tokens=False).ids) for ex in rows for t in text_fields(ex))
    # within 10 % of the bundled model's tokenizer on its bundled data
    assert abs(world["ds"]["stats"]["approx_tokens"] - real) / real < 0.10, (world["ds"]["stats"], real)
    # The preview as turns: the first example's messages, role by role.
    first = rows[0]["messages"]
    turns = world["ds"]["preview_messages"][0]
    assert [t["role"] for t in turns] == [m["role"] for m in first]
    assert all(t["content"] == m["content"][:300] for t, m in zip(turns, first) if len(m["content"].encode()) <= 300)


def test_estimate_from_its_sources(world, api_server, build_dir, tmp_path):
    m, tokens = world["model"], world["ds"]["stats"]["approx_tokens"]
    body = {"model": "est-model", "training_file": world["file"]["id"],
            "hyperparameters": {"n_epochs": 2, "batch_size": 8}}
    with client(api_server) as c:
        jobs_before = len(c.get("/v1/fine_tuning/jobs", params={"limit": 100}).json()["data"])
        e = c.post("/v1/fine_tuning/jobs/estimate", json=body).json()
        assert len(c.get("/v1/fine_tuning/jobs", params={"limit": 100}).json()["data"]) == jobs_before
    assert e["object"] == "fine_tuning.job.estimate" and e["dataset"] == world["ds"]["id"]
    assert e["training_examples"] == 320
    assert e["steps"] == 2 * math.ceil(320 / 8)
    assert e["training_tokens"] == tokens and e["total_tokens"] == 2 * tokens
    # GPU memory: what `ft-train estimate` says of the same job (LoRA,
    # r 16 alpha 32 dropout 0.05 as the API documents, batch 8, two epochs,
    # the trainer's defaults for the rest), the figure
    # train itself checks and the scheduler places by.
    job = tmp_path / "job.json"
    job.write_text(json.dumps({"model": str(MODEL), "train_file": "train.jsonl",
                               "output_dir": "out", "method": "lora",
                               "lora": {"r": 16, "alpha": 32, "dropout": 0.05},
                               "hyperparameters": {"n_epochs": 2, "batch_size": 8}}))
    p = subprocess.run([str(build_dir / "trainer" / "ft-train"), "estimate", "--config", str(job),
                        "--json"], capture_output=True, text=True, check=True)
    assert e["gpu_memory_bytes"] == json.loads(p.stdout)["total_bytes"] > 0
    assert e["tokens_per_second"] is None and e["seconds"] is None and e["throughput_samples"] == 0
    # max_steps bounds the steps; accumulation divides them.
    with client(api_server) as c:
        e2 = c.post("/v1/fine_tuning/jobs/estimate", json=dict(body, hyperparameters={
            "batch_size": 8, "gradient_accumulation_steps": 3, "max_steps": 7})).json()
        e3 = c.post("/v1/fine_tuning/jobs/estimate", json=dict(body, hyperparameters={
            "batch_size": 8, "gradient_accumulation_steps": 3})).json()
    assert e2["steps"] == 7 and e2["total_tokens"] == math.floor(tokens * 7 / math.ceil(40 / 3) + 0.5)
    assert e3["steps"] == 3 * math.ceil(40 / 3)


def test_estimate_time_is_the_median_of_measured_throughput(world, api_server):
    with client(api_server) as c:
        jobs = [c.post("/v1/fine_tuning/jobs", json={"model": "est-model", "training_file": world["file"]["id"]}).json()
                for _ in range(2)]
    tps = [[100.0, 300.0, 250.0], [200.0, 50.0]]
    with psycopg.connect(api_server.db_url) as db:
        for j, vals in zip(jobs, tps):
            for step, v in enumerate(vals, 1):
                db.execute("INSERT INTO job_metrics (job_id, attempt, step, train_loss, tokens_per_second)"
                           " VALUES (%s, 1, %s, 1.0, %s)", (j["id"], step, v))
    median = statistics.median([v for vals in tps for v in vals])
    with client(api_server) as c:
        e = c.post("/v1/fine_tuning/jobs/estimate", json={"model": "est-model", "training_file": world["file"]["id"],
                                                           "hyperparameters": {"n_epochs": 1}}).json()
        q = c.post("/v1/fine_tuning/jobs/estimate", json={"model": "est-model", "training_file": world["file"]["id"],
                                                           "adapter": "qlora"}).json()
        for j in jobs:
            c.post(f"/v1/fine_tuning/jobs/{j['id']}/cancel")
    assert e["tokens_per_second"] == median and e["throughput_samples"] == 5
    assert e["seconds"] == math.floor(e["total_tokens"] / median + 0.5)
    # another adapter has no measurements yet: no time
    assert q["tokens_per_second"] is None and q["seconds"] is None


def test_spec_defaults_are_the_ones_the_estimate_uses(world, api_server, root):
    import yaml
    spec = yaml.safe_load((root / "docs" / "openapi.yaml").read_text())
    hp = spec["components"]["schemas"]["JobCreate"]["properties"]["method"]["properties"]["supervised"][
        "properties"]["hyperparameters"]["properties"]
    with client(api_server) as c:
        e = c.post("/v1/fine_tuning/jobs/estimate", json={"model": "est-model",
                                                           "training_file": world["file"]["id"]}).json()
        auto = c.post("/v1/fine_tuning/jobs/estimate", json={
            "model": "est-model", "training_file": world["file"]["id"],
            "hyperparameters": {"n_epochs": "auto", "batch_size": "auto"}}).json()
    for k in ("n_epochs", "batch_size", "gradient_accumulation_steps"):
        assert e["hyperparameters"][k] == hp[k]["default"] == auto["hyperparameters"][k], k
    assert e["hyperparameters"]["max_steps"] is None and "default" not in hp["max_steps"]


def test_estimate_refuses_what_create_refuses(world, api_server):
    viewer = api_server.make_key(api_server.team, "viewer")
    _, rival = api_server.make_team("est-rival")
    base = {"model": "est-model", "training_file": world["file"]["id"]}
    with client(api_server, viewer) as c:       # an estimate is a read
        assert c.post("/v1/fine_tuning/jobs/estimate", json=base).status_code == 200
    with client(api_server) as c:
        for extra, param in ((dict(colour="red"), "colour"),
                             (dict(hyperparameters={"n_epochs": 0}), "hyperparameters.n_epochs"),
                             (dict(model="nope"), "model"), (dict(adapter="x"), "adapter")):
            r = c.post("/v1/fine_tuning/jobs/estimate", json=dict(base, **extra))
            assert r.status_code == 400 and r.json()["error"]["param"] == param, r.text
    with client(api_server, rival) as c:        # another team's file is a missing one
        r = c.post("/v1/fine_tuning/jobs/estimate", json=base)
        assert r.status_code == 400 and r.json()["error"]["param"] in ("model", "training_file")


def test_me_says_who_calls(api_server):
    for role in ("viewer", "member", "admin"):
        key = api_server.make_key(api_server.team, role)
        with client(api_server, key) as c:
            me = c.get("/v1/me").json()
        assert me["role"] == role and me["team"]["id"] == api_server.team and me["object"] == "caller"
        assert me["key_id"].startswith("key-")
    with client(api_server, "ftk-" + "Q" * 44) as c:
        assert c.get("/v1/me").status_code == 401


def test_audit_log_route(api_server):
    _, rival = api_server.make_team("audit-rival")
    viewer = api_server.make_key(api_server.team, "viewer")
    with client(api_server, viewer) as c:
        r = c.get("/v1/audit_log")
        assert r.status_code == 403 and r.json()["error"]["code"] == "insufficient_role"
        c.post("/v1/datasets", json={"file_id": "file-" + "A" * 24})    # a denial to find
    with client(api_server, rival) as c:
        c.post("/v1/keys", json={"name": "rival-only"})
        rival_rows = c.get("/v1/audit_log", params={"limit": 100}).json()["data"]
    with psycopg.connect(api_server.db_url) as db:
        want = db.execute("SELECT id, action, outcome, status_code FROM audit_log WHERE team_id = %s"
                          " ORDER BY id DESC", (api_server.team,)).fetchall()
    with client(api_server) as c:
        got, after = [], None
        while True:
            page = c.get("/v1/audit_log", params={"limit": 7, **({"after": after} if after else {})}).json()
            got += page["data"]
            if not page["has_more"]:
                break
            after = page["last_id"]
        denied = c.get("/v1/audit_log", params={"outcome": "denied", "action": "datasets.create"}).json()["data"]
        for bad in ({"limit": 0}, {"after": "x"}, {"outcome": "maybe"}, {"action": ""}):
            assert c.get("/v1/audit_log", params=bad).status_code == 400, bad
    assert [(e["id"], e["action"], e["outcome"], e["status_code"]) for e in got][:len(want)] == \
        [tuple(w) for w in want][:len(got)]
    assert len(got) >= len(want)
    assert denied and all(e["outcome"] == "denied" and e["action"] == "datasets.create" for e in denied)
    assert {e["id"] for e in rival_rows}.isdisjoint({e["id"] for e in got})
