"""The model registry end to end, every part real (ft-api, ft-scheduler,
ft-worker, ft-train on the bundled tiny model): a LoRA job creates a version
whose lineage equals what this test computes itself (file digests with
hashlib, the base model's folder digest, the hyperparameters sent and the
trainer's documented defaults, the final metrics of the job's own event
stream); the merged export, downloaded through the API, loads in
transformers with no dtype argument and gives our logits (fp32, 1e-4); a
bf16 export holds exactly torch's rounding of those weights; downloads
resume with HTTP Range (curl -C -, httpx) and a bad range is 416; training
continues from name@alias; a worker killed mid-export leaves no artifact and
the export is retried to the same bytes ft-train writes by hand; webhooks
arrive signed (standardwebhooks)."""
import hashlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
from safetensors.numpy import load_file

from api_helpers import client
from conftest import _api_server
from registry_platform import (MODEL, Platform, Receiver, data_lines, db, manifest_digest,
                               register_bundled_model, run_job, store_blob, upload_data,
                               wait_export)

HP = {"n_epochs": 1, "batch_size": 4, "learning_rate_multiplier": 5, "max_steps": 4,
      "eval_steps": 2, "warmup_steps": 1}


@pytest.fixture(scope="module")
def world(build_dir, database_url, redis_url, tmp_path_factory):
    srv, name = _api_server(build_dir, database_url, redis_url, tmp_path_factory,
                            max_upload_bytes=1 << 22, webhook_allow_http="true",
                            webhook_allow_cidrs="127.0.0.1/32")
    tmp = tmp_path_factory.mktemp("registry")
    plat = Platform(srv, build_dir, redis_url, tmp)
    rec = Receiver()
    register_bundled_model(srv)
    with client(srv) as c:
        wh = c.post("/v1/webhooks", json={"url": rec.url, "events": [
            "model.version.created", "model.alias.moved", "model.export.succeeded",
            "model.export.failed"]}).json()
    train = data_lines("train.jsonl", 16)
    val = data_lines("validation.jsonl", 8)
    from api_helpers import upload
    tf = upload(srv, train, name="train.jsonl")
    vf = upload(srv, val, name="validation.jsonl")
    job = run_job(srv, model="ftplat-tiny-cs", training_file=tf["id"], validation_file=vf["id"],
                  seed=11, registered_model="support-bot", hyperparameters=HP,
                  lora={"r": 8, "alpha": 16})
    assert job["status"] == "succeeded", (job, plat.log("wrk-reg-1.log")[-3000:])
    yield dict(srv=srv, plat=plat, rec=rec, secret=wh["secret"], tf=tf, vf=vf, train=train,
               val=val, job=job, tmp=tmp)
    plat.stop()
    rec.close()
    rc = srv.stop()
    import psycopg
    with psycopg.connect(database_url, autocommit=True) as c:
        c.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    assert rc == 0, srv.log_path.read_text()[-4000:]


def events_of(srv, job):
    with client(srv) as c:
        return c.get(f"/v1/fine_tuning/jobs/{job}/events", params={"limit": 100}).json()["data"]


def test_version_lineage_equals_what_we_compute(world, build_dir):
    srv, job = world["srv"], world["job"]
    with client(srv) as c:
        v = c.get("/v1/registry/models/support-bot/versions/1")
        assert v.status_code == 200, v.text
        v = v.json()
        assert c.get("/v1/registry/models/support-bot/versions/latest").json()["id"] == v["id"]
    lin = v["lineage"]
    assert v["model"] == "support-bot" and v["version"] == 1 and v["kind"] == "adapter"
    assert v["fine_tuned_model"] == job["fine_tuned_model"] == f"ft:ftplat-tiny-cs:{job['id']}"
    assert lin["job"] == {"id": job["id"], "attempt": 1}
    # data: the files' SHA-256 as hashlib computes them; the base model's folder digest
    assert lin["training_file"] == {"id": world["tf"]["id"],
                                    "sha256": hashlib.sha256(world["train"]).hexdigest()}
    assert lin["validation_file"] == {"id": world["vf"]["id"],
                                      "sha256": hashlib.sha256(world["val"]).hexdigest()}
    assert lin["base_model"]["name"] == "ftplat-tiny-cs"
    assert lin["base_model"]["sha256"] == manifest_digest(MODEL)
    assert lin["dataset_stats"]["training_file"]["n_examples"] == 16
    assert lin["dataset_stats"]["validation_file"]["n_examples"] == 8
    # every hyperparameter: what we sent, and the trainer's documented defaults
    hp = lin["hyperparameters"]
    for k in ("n_epochs", "batch_size", "max_steps", "eval_steps", "warmup_steps"):
        assert hp[k] == HP[k], k
    assert hp["learning_rate"] == pytest.approx(2e-4 * 5, rel=1e-12)     # default LoRA rate x 5
    assert hp["seed"] == 11 and hp["method"] == "lora" and hp["objective"] == "supervised"
    assert hp["lora"] == {"r": 8, "alpha": 16.0, "dropout": 0.05,
                          "target_modules": ["q_proj", "v_proj"], "use_rslora": False,
                          "layers_to_transform": None}   # every layer
    assert (hp["lr_scheduler_type"], hp["weight_decay"], hp["adam_beta1"], hp["adam_beta2"],
            hp["max_seq_length"]) == ("linear", 0.0, 0.9, 0.999, 2048)
    assert lin["method"] == "supervised" and lin["adapter"] == "lora"
    # final metrics: the last step's and the last evaluation's, from the job's events
    evs = events_of(srv, job["id"])
    steps = sorted((e["data"]["step"], e["data"]) for e in evs
                   if isinstance(e["data"], dict) and e["data"].get("type") == "step")
    evals = sorted((e["data"]["step"], e["data"]) for e in evs
                   if isinstance(e["data"], dict) and e["data"].get("type") == "eval")
    m = lin["metrics"]
    assert m["step"] == 4 and steps[-1][0] == 4 and evals[-1][0] == 4
    assert m["train_loss"] == steps[-1][1]["train_loss"]
    assert m["eval_loss"] == evals[-1][1]["eval_loss"]
    assert m["eval_token_accuracy"] == evals[-1][1]["eval_token_accuracy"]
    assert lin["trained_tokens"] == job["trained_tokens"] > 0
    version = subprocess.run([str(build_dir / "trainer" / "ft-train"), "version"],
                             capture_output=True, text=True, check=True).stdout.strip()
    assert lin["trainer_version"] == version
    # the artifact: its manifest and every file, by their SHA-256 in the store
    art = v["artifact"]
    assert hashlib.sha256(store_blob(srv, art["sha256"]).read_bytes()).hexdigest() == art["sha256"]
    names = {f["path"] for f in art["files"]}
    assert names == {"adapter_config.json", "adapter_model.safetensors"}
    for f in art["files"]:
        assert hashlib.sha256(store_blob(srv, f["sha256"]).read_bytes()).hexdigest() == f["sha256"]
    assert art["bytes"] == sum(f["bytes"] for f in art["files"])
    # the registered model, and the signed webhook
    with client(srv) as c:
        rm = c.get("/v1/registry/models/support-bot").json()
    assert rm["latest_version"] == 1 and rm["versions"] == 1
    deadline = time.time() + 20
    while not world["rec"].events(world["secret"], "model.version.created"):
        assert time.time() < deadline, "no model.version.created webhook"
        time.sleep(0.1)
    ev = world["rec"].events(world["secret"], "model.version.created")[0]
    assert ev["data"]["id"] == v["id"] and ev["data"]["model"] == "support-bot"
    assert ev["data"]["version"] == 1 and ev["data"]["job"] == job["id"]


def download(srv, art_id, dest, key=None):
    """Every file of an artifact through GET .../files/{file}; checked against
    the SHA-256 the API lists."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    with client(srv, key) as c:
        a = c.get(f"/v1/registry/artifacts/{art_id}").json()
        for f in a["files"]:
            r = c.get(f["url"])
            assert r.status_code == 200 and r.headers["accept-ranges"] == "bytes", r.text
            assert r.headers["etag"] == f'"{f["sha256"]}"'
            assert hashlib.sha256(r.content).hexdigest() == f["sha256"] and len(r.content) == f["bytes"]
            (dest / f["path"]).write_bytes(r.content)
    return a


def export(srv, model, fmt="merged", key=None, **options):
    with client(srv, key) as c:
        r = c.post("/v1/registry/exports", json={"model": model, "format": fmt, "options": options})
        assert r.status_code == 200, r.text
        return r.json()


def our_logits(build_dir, tmp, model, rows, adapter=None):
    """ft-train's forward (the engine every use of a model runs) on token rows."""
    p = tmp / "rows.jsonl"
    p.write_text("".join(json.dumps({"input_ids": r}) + "\n" for r in rows))
    out = tmp / f"logits-{time.monotonic_ns()}.safetensors"
    cmd = [str(build_dir / "trainer" / "ft-train"), "debug-forward", "--model", str(model),
           "--data", str(p), "--out", str(out)]
    if adapter:
        cmd += ["--adapter", str(adapter)]
    subprocess.run(cmd, check=True, capture_output=True, env=dict(os.environ, FT_NUM_THREADS="2"))
    return load_file(str(out))["logits"]


ROWS = [[(7 * i + 13 * k) % 4000 + 50 for k in range(24)] for i in range(3)]


def test_openai_models_list_fine_tuned_models_and_checkpoints(world):
    import openai
    from openai.types import Model
    srv, job = world["srv"], world["job"]
    ftm = job["fine_tuned_model"]
    with client(srv) as c:
        data = c.get("/v1/models", params={"limit": 100}).json()["data"]
        ids = [m["id"] for m in data]
        for m in data:   # the SDK's own type, strictly
            Model.model_validate(m, strict=True)
        assert "ftplat-tiny-cs" in ids and ftm in ids
        ckpts = sorted(i for i in ids if i.startswith(ftm + ":ckpt-step-"))
        assert ckpts == [f"{ftm}:ckpt-step-2", f"{ftm}:ckpt-step-4"]
        got = c.get(f"/v1/models/{ftm}").json()
        assert got["registered_model"] == "support-bot" and got["version"] == 1
        assert got["owned_by"] == srv.team and got["parent"] == "ftplat-tiny-cs"
        jck = c.get(f"/v1/fine_tuning/jobs/{job['id']}/checkpoints").json()["data"]
        assert sorted(x["fine_tuned_model_checkpoint"] for x in jck) == ckpts
    oai = openai.OpenAI(api_key=srv.key, base_url=srv.url + "/v1", max_retries=0)
    m = oai.models.retrieve(f"{ftm}:ckpt-step-2")
    assert m.id == f"{ftm}:ckpt-step-2" and m.object == "model" and m.model_extra["step_number"] == 2
    assert ftm in [x.id for x in oai.models.list()]
    with pytest.raises(openai.NotFoundError):
        oai.models.retrieve(f"ft:ftplat-tiny-cs:ftjob-{'Q' * 24}")
    with pytest.raises(openai.PermissionDeniedError):   # base models are not deleted here
        oai.models.delete("ftplat-tiny-cs")


def test_merged_export_loads_in_transformers_with_our_logits(world, build_dir, tmp_path):
    """No dtype argument: config.json says float32 because the weights are F32
    (the base's "torch_dtype": "bfloat16" is not copied over them)."""
    from transformers import AutoModelForCausalLM
    srv = world["srv"]
    e = export(srv, "support-bot@latest", dtype="fp32", max_shard_bytes=4 << 20)
    assert e["status"] == "queued" and e["model"] == "support-bot" and e["version"] == 1
    e = wait_export(srv, e["id"])
    assert e["status"] == "succeeded", (e, world["plat"].log("wrk-reg-1.log")[-2000:])
    a = download(srv, e["artifact"]["id"], tmp_path / "merged")
    files = {f["path"] for f in a["files"]}
    assert {"config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
            "model.safetensors.index.json"} <= files
    shards = sorted(f for f in files if f.startswith("model-"))
    assert len(shards) == 5 and shards[-1] == "model-00005-of-00005.safetensors"
    cfg = json.loads((tmp_path / "merged" / "config.json").read_text())
    assert cfg["torch_dtype"] == "float32"
    index = json.loads((tmp_path / "merged" / "model.safetensors.index.json").read_text())
    assert set(index["weight_map"].values()) == set(shards)
    assert index["metadata"]["total_size"] == sum(
        t.nbytes for s in shards for t in load_file(str(tmp_path / "merged" / s)).values())
    # the base's tokenizer, chat template and generation config came along
    for f in ("tokenizer.json", "tokenizer_config.json", "generation_config.json"):
        assert (tmp_path / "merged" / f).read_bytes() == (MODEL / f).read_bytes()
    # our logits: the base with the version's adapter, unmerged
    v = download(srv, world_version(srv)["artifact"]["id"], tmp_path / "adapter")
    assert v["kind"] == "adapter"
    ours = our_logits(build_dir, tmp_path, MODEL, ROWS, adapter=tmp_path / "adapter")
    m = AutoModelForCausalLM.from_pretrained(str(tmp_path / "merged"))   # no dtype argument
    assert m.dtype == torch.float32
    with torch.no_grad():
        theirs = m(torch.tensor(ROWS)).logits.numpy()
    err = np.abs(theirs - ours).max()
    print(f"merged export vs our forward: max |logit difference| = {err:.3g}")
    assert err < 1e-4
    # its progress and events, as the worker relayed ft-train's lines
    assert e["progress"] == {"type": "export", "stage": "write",
                             "file": "model-00005-of-00005.safetensors",
                             "done_bytes": index["metadata"]["total_size"],
                             "total_bytes": index["metadata"]["total_size"]}
    with client(srv) as c:
        msgs = [x["message"] for x in reversed(
            c.get(f"/v1/registry/exports/{e['id']}/events", params={"limit": 100}).json()["data"])]
    assert msgs[0].startswith("Created export") and msgs[-1] == "Export succeeded: succeeded"
    assert "Export started" in msgs and "The export has successfully completed" in msgs
    writes = [m for m in msgs if m.startswith("write: ")]
    assert [w.split()[1] for w in writes] == shards
    # the export is an artifact of the version, listed with its digests
    with client(srv) as c:
        arts = c.get("/v1/registry/models/support-bot/versions/1/artifacts").json()["data"]
    assert [x["kind"] for x in arts][:1] == ["adapter"]
    assert any(x["export"] and x["export"]["id"] == e["id"] and x["sha256"] == e["artifact"]["sha256"]
               for x in arts)
    # and its webhook came, signed
    deadline = time.time() + 20
    while not [p for p in world["rec"].events(world["secret"], "model.export.succeeded")
               if p["data"]["id"] == e["id"]]:
        assert time.time() < deadline, "no model.export.succeeded webhook"
        time.sleep(0.1)


def world_version(srv, n=1):
    with client(srv) as c:
        return c.get(f"/v1/registry/models/support-bot/versions/{n}").json()


def test_bf16_export_is_torch_rounding_of_the_fp32_merge(world, tmp_path):
    from transformers import AutoModelForCausalLM
    srv = world["srv"]
    e32 = wait_export(srv, export(srv, "support-bot/1", dtype="fp32")["id"])
    e16 = wait_export(srv, export(srv, "support-bot/1", dtype="bf16")["id"])
    assert e32["status"] == e16["status"] == "succeeded"
    download(srv, e32["artifact"]["id"], tmp_path / "f32")
    download(srv, e16["artifact"]["id"], tmp_path / "b16")
    assert json.loads((tmp_path / "b16" / "config.json").read_text())["torch_dtype"] == "bfloat16"
    m32 = AutoModelForCausalLM.from_pretrained(str(tmp_path / "f32"))
    m16 = AutoModelForCausalLM.from_pretrained(str(tmp_path / "b16"))
    assert m16.dtype == torch.bfloat16
    s32, s16 = m32.state_dict(), m16.state_dict()
    assert set(s32) == set(s16)
    for k in s32:   # round to nearest even, as torch's .to(bfloat16)
        assert torch.equal(s32[k].to(torch.bfloat16), s16[k]), k


def test_gguf_exports_through_the_registry_are_what_ft_train_writes(world, build_dir, tmp_path):
    """The llama.cpp formats as export jobs: the worker's Q8_0 GGUF and GGUF
    LoRA are byte for byte what `ft-train export` writes by hand on the same
    version, and the gguf package reads the tensor types llama.cpp's rules
    give (Q8_0 for the linears, the norms in F32)."""
    import gguf
    srv = world["srv"]
    v = world_version(srv)
    adapter = tmp_path / "adapter"
    download(srv, v["artifact"]["id"], adapter)
    for fmt, opts, name in (("gguf", {"type": "Q8_0"}, "model-Q8_0.gguf"),
                            ("gguf-lora", {}, "adapter-F32.gguf")):
        e = wait_export(srv, export(srv, "support-bot/1", fmt, **opts)["id"])
        assert e["status"] == "succeeded", e
        got = tmp_path / f"got-{fmt}"
        download(srv, e["artifact"]["id"], got)
        want = tmp_path / f"want-{fmt}"
        cmd = [str(build_dir / "trainer" / "ft-train"), "export", "--format", fmt, "--model",
               str(MODEL), "--adapter", str(adapter), "--out", str(want)]
        cmd += ["--type", opts["type"]] if opts else []
        subprocess.run(cmd, check=True, capture_output=True, env=dict(os.environ, FT_NUM_THREADS="2"))
        assert (got / name).read_bytes() == (want / name).read_bytes(), fmt
    types = {t.name: t.tensor_type.name for t in gguf.GGUFReader(str(got.parent / "got-gguf" / "model-Q8_0.gguf")).tensors}
    assert types["blk.0.attn_q.weight"] == "Q8_0" and types["blk.0.attn_norm.weight"] == "F32"
    with client(srv) as c:   # a type the format does not have names the option
        r = c.post("/v1/registry/exports", json={"model": "support-bot/1", "format": "gguf",
                                                 "options": {"type": "Q3"}})
        assert r.status_code == 400 and r.json()["error"]["param"] == "options.type", r.text


def test_downloads_resume_with_range_and_a_bad_range_is_416(world, tmp_path):
    srv = world["srv"]
    art = world_version(srv)["artifact"]
    f = next(x for x in art["files"] if x["path"] == "adapter_model.safetensors")
    url = srv.url + f["url"]
    full = store_blob(srv, f["sha256"]).read_bytes()
    n = len(full)
    auth = {"Authorization": f"Bearer {srv.key}"}
    with httpx.Client(headers=auth) as c:
        r = c.get(url, headers={"Range": "bytes=100-199"})
        assert r.status_code == 206 and r.content == full[100:200]
        assert r.headers["content-range"] == f"bytes 100-199/{n}"
        r = c.get(url, headers={"Range": "bytes=-10"})
        assert r.status_code == 206 and r.content == full[-10:]
        r = c.get(url, headers={"Range": f"bytes={n - 5}-"})
        assert r.status_code == 206 and r.content == full[-5:]
        r = c.get(url, headers={"Range": f"bytes={n}-"})
        assert r.status_code == 416 and r.headers["content-range"] == f"bytes */{n}"
        assert r.json()["error"]["code"] == "range_not_satisfiable"
        r = c.get(url, headers={"Range": "bytes=0-9", "If-Range": '"' + "0" * 64 + '"'})
        assert r.status_code == 200 and r.content == full      # another file's tag: all of it
        r = c.get(url, headers={"Range": "bytes=0-9", "If-Range": f'"{f["sha256"]}"'})
        assert r.status_code == 206 and r.content == full[:10]
    # curl resumes a cut download (-C -) and the result is the whole file
    part = tmp_path / "adapter_model.safetensors"
    part.write_bytes(full[: n // 3])
    subprocess.run(["curl", "-sS", "-f", "-C", "-", "-H", f"Authorization: Bearer {srv.key}",
                    "-o", str(part), url], check=True)
    assert hashlib.sha256(part.read_bytes()).hexdigest() == f["sha256"]
    p = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-r", f"{n + 10}-",
                        "-H", f"Authorization: Bearer {srv.key}", url], capture_output=True, text=True)
    assert p.stdout == "416"


def test_training_continues_from_name_at_alias(world):
    """A job whose model is support-bot@production starts from that version's
    adapter (the worker fetches it from the store): its held-out loss before
    the first step is the one version 1 ended with, and its own version 2
    names version 1 as its parent."""
    srv, plat = world["srv"], world["plat"]
    with client(srv) as c:
        r = c.post("/v1/registry/models/support-bot/aliases/production", json={"version": 1})
        assert r.status_code == 200 and r.json()["version"] == 1, r.text
    job = run_job(srv, model="support-bot@production", training_file=world["tf"]["id"],
                  validation_file=world["vf"]["id"], seed=12,
                  hyperparameters={"max_steps": 2, "batch_size": 4})
    assert job["status"] == "succeeded", (job, plat.log("wrk-reg-1.log")[-2000:])
    assert job["model"] == "support-bot@production" and job["parent_version"] == "support-bot/1"
    assert job["registered_model"] == "support-bot"
    jobfile = json.loads((world["tmp"] / "work" / f"{job['id']}-1" / "job.json").read_text())
    # version 1's adapter, fetched into the worker's cache under its manifest's
    # digest, which the folder's content hashes to (computed here alone)
    with db(srv) as conn:
        v1_adapter = conn.execute("SELECT sha256 FROM artifacts WHERE job_id = %s AND kind = 'adapter'",
                                  (world["job"]["id"],)).fetchone()[0]
    assert jobfile["init_adapter"] == str(world["tmp"] / "cache-wrk-reg-1" / "dirs" / v1_adapter)
    assert manifest_digest(jobfile["init_adapter"]) == v1_adapter
    evals = sorted((e["data"]["step"], e["data"]["eval_loss"]) for e in events_of(srv, job["id"])
                   if isinstance(e["data"], dict) and e["data"].get("type") == "eval")
    v1 = world_version(srv, 1)
    assert evals[0][0] == 0
    assert evals[0][1] == pytest.approx(v1["lineage"]["metrics"]["eval_loss"], rel=1e-6)
    v2 = world_version(srv, 2)
    assert v2["lineage"]["parent_version"] == {"id": v1["id"], "model": "support-bot", "version": 1}
    assert v2["lineage"]["job"]["id"] == job["id"]
    assert sorted(v2["aliases"]) == ["latest"] and world_version(srv, 1)["aliases"] == ["production"]
    with client(srv) as c:   # a checkpoint is promoted first; a base model is not a version
        bad = c.post("/v1/fine_tuning/jobs", json={
            "model": f"{world['job']['fine_tuned_model']}:ckpt-step-2",
            "training_file": world["tf"]["id"]})
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "model", bad.text
        bad = c.post("/v1/fine_tuning/jobs", json={
            "model": "support-bot/1", "training_file": world["tf"]["id"], "adapter": "none"})
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "adapter", bad.text


def test_full_fine_tuning_folder_states_its_dtype(world, build_dir, tmp_path):
    """The bug this registry fixes: a full fine-tuning output copied the base's
    "torch_dtype": "bfloat16" over F32 weights, so transformers rounded them."""
    from transformers import AutoModelForCausalLM
    srv = world["srv"]
    job = run_job(srv, model="ftplat-tiny-cs", training_file=world["tf"]["id"], adapter="none",
                  registered_model="full-bot", hyperparameters={"max_steps": 1, "batch_size": 4})
    assert job["status"] == "succeeded", job
    with client(srv) as c:
        v = c.get("/v1/registry/models/full-bot/versions/1").json()
    assert v["kind"] == "merged" and v["lineage"]["adapter"] == "none"
    download(srv, v["artifact"]["id"], tmp_path / "full")
    assert json.loads((tmp_path / "full" / "config.json").read_text())["torch_dtype"] == "float32"
    m = AutoModelForCausalLM.from_pretrained(str(tmp_path / "full"))
    assert m.dtype == torch.float32
    ours = our_logits(build_dir, tmp_path, tmp_path / "full", ROWS)
    with torch.no_grad():
        theirs = m(torch.tensor(ROWS)).logits.numpy()
    assert np.abs(theirs - ours).max() < 1e-4
    # a whole-model version exports too (the worker fetches the model folder)
    e = wait_export(srv, export(srv, "full-bot/1", dtype="bf16")["id"])
    assert e["status"] == "succeeded", e
    with client(srv) as c:
        a = c.get(f"/v1/registry/artifacts/{e['artifact']['id']}").json()
    cfg = next(f for f in a["files"] if f["path"] == "config.json")
    assert json.loads(store_blob(srv, cfg["sha256"]).read_text())["torch_dtype"] == "bfloat16"


def test_ftctl_models_commands(world, build_dir, tmp_path):
    srv = world["srv"]
    exe = str(build_dir / "cli" / "ftctl")

    def ctl(*args, check=0):
        env = dict(os.environ, HOME=str(tmp_path), FT_API_URL=srv.url, FT_API_KEY=srv.key)
        p = subprocess.run([exe, *args], capture_output=True, text=True, env=env, timeout=300)
        assert p.returncode == check, (args, p.returncode, p.stdout, p.stderr)
        return p

    table = ctl("models", "versions", "support-bot").stdout
    assert table.splitlines()[0].split()[:3] == ["VERSION", "KIND", "ALIASES"]
    assert "production" in table
    shown = json.loads(ctl("--json", "models", "show", "support-bot@production").stdout)
    assert shown["version"] == 1 and shown["lineage"]["job"]["id"] == world["job"]["id"]
    assert "lineage:" in ctl("models", "show", "support-bot/1").stdout
    ctl("models", "alias", "set", "support-bot", "staging", "1")
    p = ctl("models", "alias", "set", "support-bot", "staging", "2", "--expect", "5", check=1)
    assert "points at version 1, not 5" in p.stderr
    assert json.loads(ctl("--json", "models", "alias", "rm", "support-bot", "staging").stdout)["deleted"]
    p = ctl("models", "export", "support-bot/1", "--format", "gguf-q9", check=1)
    assert "param: format" in p.stderr
    p = ctl("models", "export", "support-bot/1", "--format", "merged", "--dtype", "fp8", check=1)
    assert "param: options.dtype" in p.stderr
    e = json.loads(ctl("--json", "models", "export", "support-bot/1", "--format", "merged",
                       "--dtype", "fp16", "--wait").stdout)
    assert e["status"] == "succeeded" and e["options"] == {"dtype": "fp16"}
    out = tmp_path / "dl"
    out.mkdir()
    with client(srv) as c:
        a = c.get(f"/v1/registry/artifacts/{e['artifact']['id']}").json()
    big = max(a["files"], key=lambda f: f["bytes"])
    full = store_blob(srv, big["sha256"]).read_bytes()
    (out / big["path"]).write_bytes(full[: len(full) // 2])    # a download cut half way
    log = ctl("models", "download", "support-bot/1", "--format", "merged", "-o", str(out)).stdout
    fetched = int(log.strip().splitlines()[-1].split(", ")[-1].split()[0])
    assert fetched == sum(f["bytes"] for f in a["files"]) - len(full) // 2   # resumed, not refetched
    for f in a["files"]:
        assert hashlib.sha256((out / f["path"]).read_bytes()).hexdigest() == f["sha256"]
    ctl("models", "download", "support-bot@production", "-o", str(tmp_path / "adapter"))
    assert (tmp_path / "adapter" / "adapter_model.safetensors").exists()


WRAPPER = """#!/bin/sh
# The first export attempt writes half a folder and hangs, as a trainer
# would mid-export when its worker is killed; every other call is ft-train.
if [ "$1" = export ] && [ ! -e "$FT_TEST_MARK" ]; then
  out=""; prev=""
  for a in "$@"; do [ "$prev" = --out ] && out=$a; prev=$a; done
  mkdir -p "$out" && printf 'half a model' > "$out/model-00001-of-00002.safetensors"
  echo $$ > "$FT_TEST_MARK"
  exec sleep 600
fi
exec {ft_train} "$@"
"""


def test_worker_killed_mid_export_leaves_no_artifact_and_is_retried(world, build_dir, tmp_path):
    srv, plat = world["srv"], world["plat"]
    wrapper = tmp_path / "ft-train-hangs-once"
    wrapper.write_text(WRAPPER.format(ft_train=build_dir / "trainer" / "ft-train"))
    wrapper.chmod(0o755)
    mark = tmp_path / "mark"
    for wid in list(plat.workers):
        plat.stop_worker(wid)
    plat.start_worker("wrk-reg-kill", FT_TRAINER_PATH=str(wrapper), FT_TEST_MARK=str(mark))
    e = export(srv, "support-bot/1", dtype="fp32")
    deadline = time.time() + 60
    while not mark.exists():
        assert time.time() < deadline, "the export never started"
        time.sleep(0.05)
    hung = int(mark.read_text())
    with client(srv) as c:
        assert c.get(f"/v1/registry/exports/{e['id']}").json()["status"] in ("dispatched", "running")
    plat.workers.pop("wrk-reg-kill").kill()           # SIGKILL: no goodbye, no events
    for _ in range(100):                              # PR_SET_PDEATHSIG takes its child
        try:
            os.kill(hung, 0)
            time.sleep(0.05)
        except ProcessLookupError:
            break
    else:
        pytest.fail("the hung trainer outlived its worker")
    plat.start_worker("wrk-reg-2")
    done = wait_export(srv, e["id"], timeout=120)
    assert done["status"] == "succeeded" and done["attempt"] == 2, done
    with db(srv) as c:
        arts = c.execute("SELECT id, sha256 FROM artifacts WHERE metadata->>'export_id' = %s",
                         (e["id"],)).fetchall()
        reasons = [r[0] for r in c.execute(
            "SELECT reason FROM export_transitions WHERE export_id = %s ORDER BY id", (e["id"],))]
    assert arts == [(done["artifact"]["id"], done["artifact"]["sha256"])]   # one, whole
    assert any("wrk-reg-kill stopped responding" in r for r in reasons), reasons
    half = hashlib.sha256(b"half a model").hexdigest()
    assert not store_blob(srv, half).exists()
    # the retried export is exactly what ft-train writes by hand from the same inputs
    download(srv, world_version(srv)["artifact"]["id"], tmp_path / "adapter")
    subprocess.run([str(build_dir / "trainer" / "ft-train"), "export", "--format", "merged",
                    "--model", str(MODEL), "--adapter", str(tmp_path / "adapter"), "--out",
                    str(tmp_path / "by-hand"), "--dtype", "fp32"], check=True, capture_output=True)
    assert done["artifact"]["sha256"] == manifest_digest(tmp_path / "by-hand")


def test_a_running_export_is_cancelled(world, build_dir, tmp_path):
    srv, plat = world["srv"], world["plat"]
    wrapper = tmp_path / "ft-train-hangs-once"
    wrapper.write_text(WRAPPER.format(ft_train=build_dir / "trainer" / "ft-train"))
    wrapper.chmod(0o755)
    mark = tmp_path / "mark"
    for wid in list(plat.workers):
        plat.stop_worker(wid)
    plat.start_worker("wrk-reg-cancel", FT_TRAINER_PATH=str(wrapper), FT_TEST_MARK=str(mark))
    try:
        e = export(srv, "support-bot/1")
        deadline = time.time() + 60
        while not mark.exists():
            assert time.time() < deadline, "the export never started"
            time.sleep(0.05)
        with client(srv) as c:
            r = c.post(f"/v1/registry/exports/{e['id']}/cancel")
            assert r.status_code == 200 and r.json()["status"] == "cancelling", r.text
        done = wait_export(srv, e["id"], timeout=60)
        assert done["status"] == "cancelled" and done["artifact"] is None, done
        plat.stop_worker("wrk-reg-cancel")
        with client(srv) as c:
            assert c.post(f"/v1/registry/exports/{e['id']}/cancel").status_code == 409
            # no worker: a new export stays queued, and is cancelled at once
            qid = c.post("/v1/registry/exports", json={"model": "support-bot/1",
                                                       "format": "merged"}).json()["id"]
            r = c.post(f"/v1/registry/exports/{qid}/cancel")
            assert r.json()["status"] == "cancelled" and r.json()["finished_at"] is not None
    finally:
        if "wrk-reg-cancel" in plat.workers:
            plat.stop_worker("wrk-reg-cancel")
        plat.start_worker("wrk-reg-3")


def test_an_export_that_cannot_be_made_fails_with_a_webhook_and_no_server_path(world, tmp_path):
    """The base model's folder went away after the version was trained: the
    export fails at once (the input's fault: not retried), its error names
    the model, not this host's folders, and model.export.failed is sent."""
    import shutil
    srv = world["srv"]
    copy = tmp_path / "short-lived-base"
    shutil.copytree(MODEL, copy)
    with client(srv) as c:
        assert c.post("/v1/models", json={"name": "short-lived", "path": str(copy)}).status_code == 200
    job = run_job(srv, model="short-lived", training_file=world["tf"]["id"], registered_model="gone",
                  hyperparameters={"max_steps": 1, "batch_size": 4})
    assert job["status"] == "succeeded", job
    shutil.rmtree(copy)
    e = wait_export(srv, export(srv, "gone/1", dtype="fp16")["id"])
    assert e["status"] == "failed" and e["attempt"] == 1, e
    assert e["error"]["code"] == "invalid_export"
    msg = e["error"]["message"]
    assert "short-lived" in msg and str(tmp_path) not in msg and "/work" not in msg, msg
    deadline = time.time() + 20
    while not [p for p in world["rec"].events(world["secret"], "model.export.failed")
               if p["data"]["id"] == e["id"]]:
        assert time.time() < deadline, "no model.export.failed webhook"
        time.sleep(0.1)
    p = [p for p in world["rec"].events(world["secret"], "model.export.failed")
         if p["data"]["id"] == e["id"]][0]
    assert p["data"]["model"] == "gone" and p["data"]["version"] == 1
    assert p["data"]["error"]["code"] == "invalid_export"
