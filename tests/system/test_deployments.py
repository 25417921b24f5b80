"""Deployments end to end, every part real: ft-api, ft-scheduler (whose leader
runs the deployment controller), ft-worker running ft-train (the jobs that make
the versions, and the GGUF exports of a llama.cpp deployment), real ft-serve
processes as the endpoints, PostgreSQL and Redis.

Checked against peers: every answer a deployment gives through the unpatched
openai client equals `ft-train generate` with the version's adapter, downloaded
through the registry (greedy, token for token); moving the alias changes the
answers to the new version's without restarting ft-serve (same pid); a vllm
endpoint (ft-serve's own vLLM-compatible routes, loading from a folder the
controller unpacks) serves the same text; an unreachable endpoint makes the
deployment failed with the reason, and it is ready again when the endpoint
comes back; a llama.cpp deployment gets the GGUF exports (read by the `gguf`
package: the base, and a LoRA adapter over it; and, where llama-cpp-python is
installed, llama.cpp's greedy tokens over them equal ft-train generate's) and a
llama-server command whose files are the ones the registry serves; the request log names the deployment,
version and team of each answer; the endpoint's credential is sealed at rest
(opened with cryptography's AESGCM) and appears in no answer, audit row or log.
Cross-team isolation and roles on every new route; bad input names its field.
"""
import base64
import hashlib
import json
import os
import re
import secrets
import shlex
import subprocess
import time
from pathlib import Path

import httpx
import openai
import psycopg
import pytest
import redis as redislib

from api_helpers import client, upload
from conftest import _api_server, free_port
from registry_platform import MODEL, Platform, data_lines, register_bundled_model, run_job
from test_serve import Server

SECRET_KEY = secrets.token_hex(32)
TOKEN = "ep-token-" + secrets.token_hex(12)      # the endpoints' own credential
PROMPTS = ["How long do refunds take?", "Hi, my parcel arrived damaged."]
N_TOKENS = 16
HP = {"n_epochs": 1, "batch_size": 4, "max_steps": 6, "warmup_steps": 0}


@pytest.fixture(scope="module")
def world(build_dir, database_url, redis_url, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("deploy")
    net = dict(endpoint_allow_http="true", endpoint_allow_cidrs="127.0.0.1/32")
    srv, name = _api_server(build_dir, database_url, redis_url, tmp_path_factory,
                            max_upload_bytes=1 << 22, secret_key=SECRET_KEY, **net)
    plat = Platform(srv, build_dir, redis_url, tmp, FT_SECRET_KEY=SECRET_KEY,
                    FT_ENDPOINT_ALLOW_HTTP="true", FT_ENDPOINT_ALLOW_CIDRS="127.0.0.1/32",
                    FT_DEPLOY_INTERVAL_MS="400", FT_DEPLOY_PROBE_TIMEOUT_MS="1500",
                    FT_DEPLOY_DIR=str(tmp / "deploy"))
    rurl = plat.env["FT_REDIS_URL"]
    register_bundled_model(srv)
    tf = upload(srv, data_lines("train.jsonl", 24), name="train.jsonl")
    # two versions far enough apart that their greedy answers differ
    jobs = [run_job(srv, model="ftplat-tiny-cs", training_file=tf["id"], seed=s,
                    registered_model="support-bot", lora={"r": 8, "alpha": 16},
                    hyperparameters=dict(HP, learning_rate_multiplier=m))
            for s, m in ((1, 25), (2, 60))]
    for j in jobs:
        assert j["status"] == "succeeded", (j, plat.log("wrk-reg-1.log")[-3000:])
    adapters = {}
    for v in (1, 2):
        with client(srv) as c:
            ver = c.get(f"/v1/registry/models/support-bot/versions/{v}").json()
        adapters[v] = download(srv, ver, tmp / f"v{v}")
    with client(srv) as c:
        assert c.post("/v1/registry/models/support-bot/aliases/production",
                      json={"version": 1}).status_code == 200
    common = dict(token=TOKEN, database_url=srv.db_url, redis_url=rurl)
    serve_a = Server(build_dir, tmp, {}, env={"FT_STORE_DIR": str(srv.store_dir)},
                     store="true", **common)
    serve_b = Server(build_dir, tmp, {}, **common)      # no store: vLLM's way, a folder
    w = dict(srv=srv, plat=plat, tmp=tmp, jobs=jobs, adapters=adapters, a=serve_a, b=serve_b,
             rurl=rurl, answers=[])
    yield w
    # every process is stopped whatever fails first (a survivor would read
    # the next run's Redis stream); then each one's exit status is checked
    bad = []
    for s in (w["a"], w["b"]):
        if s.p.poll() is None:
            try:
                s.stop()
            except AssertionError:
                bad.append(f"ft-serve on {s.port} exited {s.p.returncode}")
    try:
        plat.stop()
    except AssertionError as e:
        bad.append(str(e))
    rc = srv.stop()
    with psycopg.connect(database_url, autocommit=True) as c:
        c.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    assert rc == 0, srv.log_path.read_text()[-4000:]
    assert not bad, "\n".join(bad)


def download(srv, version, dest):
    """A version's folder through the registry's downloads, checked by SHA-256."""
    dest.mkdir(parents=True, exist_ok=True)
    with client(srv) as c:
        for f in version["artifact"]["files"]:
            r = c.get(f["url"])
            assert r.status_code == 200 and hashlib.sha256(r.content).hexdigest() == f["sha256"]
            (dest / f["path"]).write_bytes(r.content)
    return dest


def api(w, method, path, key=None, **kw):
    """A request to ft-api; every answer is kept for the credential check."""
    with client(w["srv"], key) as c:
        r = c.request(method, path, **kw)
    w["answers"].append(r.text)
    return r


def wait_dep(w, dep_id, pred, timeout=120, what="the state wanted"):
    deadline = time.time() + timeout
    while True:
        d = api(w, "GET", f"/v1/deployments/{dep_id}").json()
        if pred(d):
            return d
        assert time.time() < deadline, f"{dep_id} never reached {what}: {d}"
        time.sleep(0.2)


def ready_on(version_id):
    return lambda d: d["status"] == "ready" and d["loaded_version_id"] == version_id


def generate(build_dir, adapter, prompt):
    out = subprocess.run([str(build_dir / "trainer" / "ft-train"), "generate", "--model", str(MODEL),
                          "--adapter", str(adapter), "--prompt", prompt, "--max-new-tokens",
                          str(N_TOKENS)], capture_output=True, text=True, check=True,
                         env=dict(os.environ, FT_NUM_THREADS="2")).stdout
    return json.loads(out)["text"]


def answer(server, key, model, prompt):
    oai = openai.OpenAI(base_url=server.url + "/v1", api_key=key, max_retries=0)
    return oai.completions.create(model=model, prompt=prompt, max_tokens=N_TOKENS,
                                  temperature=0).choices[0].text


def served(server):
    r = httpx.get(server.url + "/v1/models", headers={"Authorization": f"Bearer {TOKEN}"})
    return {m["id"] for m in r.json()["data"]}


def make_endpoint(w, name, kind, url, **extra):
    r = api(w, "POST", "/v1/endpoints", json=dict(name=name, kind=kind, url=url, **extra))
    assert r.status_code == 200, r.text
    return r.json()


def deploy(w, endpoint, model, **extra):
    r = api(w, "POST", "/v1/deployments", json=dict(endpoint=endpoint, model=model, **extra))
    assert r.status_code == 200, r.text
    return r.json()


def version_id(w, v):
    return api(w, "GET", f"/v1/registry/models/support-bot/versions/{v}").json()["id"]


# ---------------------------------------------------------------- ft-serve


def test_a_version_answers_under_its_ft_name_and_name_at_alias(world, build_dir):
    w = world
    ep = make_endpoint(w, "serve-a", "ftserve", w["a"].url, api_key=TOKEN)
    assert ep["has_api_key"] is True and "api_key" not in ep
    dep = deploy(w, "serve-a", "support-bot@production", log_texts=True)
    # the controller may have started already (the insert wakes it)
    assert dep["status"] in ("pending", "loading", "ready") and dep["alias"] == "production"
    v1 = version_id(w, 1)
    ftname = w["jobs"][0]["fine_tuned_model"]
    d = wait_dep(w, dep["id"], ready_on(v1))
    assert d["served_names"] == [ftname, "support-bot@production"]
    assert d["version"] == {"id": v1, "model": "support-bot", "version": 1, "served_name": ftname}
    assert {ftname, "support-bot@production"} <= served(w["a"])
    key = w["srv"].key   # the team's platform key, as a customer's app would use
    for p in PROMPTS:
        ref = generate(build_dir, w["adapters"][1], p)
        assert answer(w["a"], key, ftname, p) == ref
        assert answer(w["a"], key, "support-bot@production", p) == ref
    # streamed, through the alias: the same text
    oai = openai.OpenAI(base_url=w["a"].url + "/v1", api_key=key, max_retries=0)
    chunks = oai.completions.create(model="support-bot@production", prompt=PROMPTS[0],
                                    max_tokens=N_TOKENS, temperature=0, stream=True)
    assert "".join(ch.choices[0].text for ch in chunks if ch.choices) == \
        generate(build_dir, w["adapters"][1], PROMPTS[0])
    ep = api(w, "GET", "/v1/endpoints/serve-a").json()
    assert ep["health"] == "ok" and ep["deployments"] == 1
    w["dep_a"] = dep["id"]


def test_moving_the_alias_changes_the_answers_without_a_restart(world, build_dir):
    w = world
    pid = w["a"].p.pid
    ref1 = [generate(build_dir, w["adapters"][1], p) for p in PROMPTS]
    ref2 = [generate(build_dir, w["adapters"][2], p) for p in PROMPTS]
    assert ref1 != ref2, "the two versions answer alike: the test could not see a move"
    r = api(w, "POST", "/v1/registry/models/support-bot/aliases/production", json={"version": 2})
    assert r.status_code == 200, r.text
    v2 = version_id(w, 2)
    d = wait_dep(w, w["dep_a"], ready_on(v2), what="version 2 loaded")
    assert d["version"]["version"] == 2
    names = served(w["a"])
    assert w["jobs"][1]["fine_tuned_model"] in names and "support-bot@production" in names
    assert w["jobs"][0]["fine_tuned_model"] not in names     # the old version was unloaded
    key = w["srv"].key
    assert [answer(w["a"], key, "support-bot@production", p) for p in PROMPTS] == ref2
    assert [answer(w["a"], key, w["jobs"][1]["fine_tuned_model"], p) for p in PROMPTS] == ref2
    assert w["a"].p.pid == pid and w["a"].p.poll() is None   # no restart


def test_the_request_log_names_deployment_version_and_team(world):
    w = world
    r = api(w, "GET", f"/v1/deployments/{w['dep_a']}").json()
    want = {(w["dep_a"], version_id(w, 1)), (w["dep_a"], version_id(w, 2))}
    deadline = time.time() + 30
    while True:
        with psycopg.connect(w["srv"].db_url) as c:
            rows = c.execute(
                "SELECT deployment_id, version_id, team_id, model, prompt, completion_tokens"
                " FROM request_log WHERE deployment_id = %s", (w["dep_a"],)).fetchall()
        if {(x[0], x[1]) for x in rows} >= want:
            break
        assert time.time() < deadline, rows
        time.sleep(0.3)
    for dep, ver, team, model, prompt, n in rows:
        assert team == w["srv"].team and n == N_TOKENS
        assert prompt in PROMPTS          # log_texts was asked for
    assert r["log_texts"] is True


def test_ft_serve_store_references_are_checked(world):
    """lora_path "store:sha256:<manifest>": a manifest the store does not hold, a blob
    that is not a manifest, a server without serve_store: 400s naming lora_path, no
    server path in the answer, the server lives on."""
    w = world
    op = {"Authorization": f"Bearer {TOKEN}"}
    with client(w["srv"]) as c:
        art = c.get("/v1/registry/models/support-bot/versions/1").json()["artifact"]
    cases = [(w["a"], "store:sha256:" + "0" * 64, "holds no folder"),
             (w["a"], "store:sha256:" + art["files"][0]["sha256"], "holds no folder"),
             (w["b"], "store:sha256:" + art["sha256"], "serve_store")]
    for server, path, words in cases:
        r = httpx.post(server.url + "/v1/load_lora_adapter", headers=op,
                       json={"lora_name": "x", "lora_path": path})
        assert r.status_code == 400, r.text
        e = r.json()["error"]
        assert e["param"] == "lora_path" and words in e["message"], e
        assert str(w["tmp"]) not in r.text and "/tmp" not in r.text
        assert server.p.poll() is None and "x" not in served(server)


# ---------------------------------------------------------------- vllm protocol


def test_a_vllm_endpoint_is_driven_through_its_lora_routes(world, build_dir):
    """kind vllm pointed at ft-serve's own vLLM-compatible routes: the adapter is a
    folder the controller unpacks into deploy_dir (this ft-serve has no store)."""
    w = world
    make_endpoint(w, "vllm-b", "vllm", w["b"].url + "/", api_key=TOKEN)
    dep = deploy(w, "vllm-b", "support-bot/1")
    v1 = version_id(w, 1)
    d = wait_dep(w, dep["id"], ready_on(v1))
    ftname = w["jobs"][0]["fine_tuned_model"]
    assert d["served_names"] == [ftname] and d["alias"] is None
    with client(w["srv"]) as c:
        art = c.get("/v1/registry/models/support-bot/versions/1").json()["artifact"]
    folder = w["tmp"] / "deploy" / art["sha256"]
    assert sorted(p.name for p in folder.iterdir()) == sorted(f["path"] for f in art["files"])
    for f in art["files"]:
        assert hashlib.sha256((folder / f["path"]).read_bytes()).hexdigest() == f["sha256"]
    assert answer(w["b"], w["srv"].key, ftname, PROMPTS[1]) == \
        generate(build_dir, w["adapters"][1], PROMPTS[1])
    w["dep_b"] = dep["id"]


def test_an_unreachable_endpoint_fails_the_deployment_and_it_recovers(world, build_dir, tmp_path):
    w = world
    port = w["b"].port
    w["b"].stop()
    d = wait_dep(w, w["dep_b"], lambda d: d["status"] == "failed", what="failed")
    assert d["status_reason"].startswith("the endpoint is unreachable: GET /v1/models: ")
    assert "connect" in d["status_reason"].lower()
    ep = api(w, "GET", "/v1/endpoints/vllm-b").json()
    assert ep["health"] == "unreachable" and ep["health_reason"].startswith("GET /v1/models")
    # the same server back on its port, empty: the controller loads it again
    w["b"] = Server(build_dir, w["tmp"], {}, port=port, token=TOKEN,
                    database_url=w["srv"].db_url, redis_url=w["rurl"])
    ftname = w["jobs"][0]["fine_tuned_model"]
    d = wait_dep(w, w["dep_b"], ready_on(version_id(w, 1)), what="ready again")
    assert d["status_reason"] is None and ftname in served(w["b"])
    assert api(w, "GET", "/v1/endpoints/vllm-b").json()["health"] == "ok"
    assert answer(w["b"], w["srv"].key, ftname, PROMPTS[0]) == \
        generate(build_dir, w["adapters"][1], PROMPTS[0])


def test_deleting_a_deployment_unloads_it(world):
    w = world
    ftname = w["jobs"][0]["fine_tuned_model"]
    r = api(w, "DELETE", f"/v1/deployments/{w['dep_b']}")
    assert r.status_code == 200 and r.json()["status"] == "stopped"
    d = wait_dep(w, w["dep_b"], lambda d: d["unloaded"], what="unloaded")
    assert d["stopped_at"] is not None and ftname not in served(w["b"])
    # the unpacked folder goes once nothing needs it
    deadline = time.time() + 10
    while list((w["tmp"] / "deploy").iterdir()):
        assert time.time() < deadline, list((w["tmp"] / "deploy").iterdir())
        time.sleep(0.2)
    # and the endpoint, with no live deployment left, can go
    assert api(w, "DELETE", "/v1/endpoints/vllm-b").json()["deleted"] is True


# ---------------------------------------------------------------- llama.cpp


def test_a_llamacpp_deployment_gets_the_gguf_exports_and_the_command(world, tmp_path):
    import gguf
    w = world
    port = free_port()
    make_endpoint(w, "llama", "llamacpp", f"http://127.0.0.1:{port}")
    dep = deploy(w, "llama", "support-bot/2", gguf_type="F32")
    d = wait_dep(w, dep["id"], ready_on(version_id(w, 2)), timeout=300, what="exports done")
    l = d["llamacpp"]
    assert d["served_names"] == [w["jobs"][1]["fine_tuned_model"]]
    exports = {e: api(w, "GET", f"/v1/registry/exports/{l[e]}").json()
               for e in ("base_export", "lora_export")}
    assert exports["base_export"]["format"] == "gguf"
    assert exports["base_export"]["options"] == {"lora": "none", "type": "F32"}
    assert exports["lora_export"]["format"] == "gguf-lora"
    assert all(e["status"] == "succeeded" and e["model_version_id"] == version_id(w, 2)
               for e in exports.values())
    # the command names the files; each one downloads through the registry to
    # its SHA-256, and the gguf package reads them as llama.cpp would
    cmd = shlex.split(l["command"])
    assert cmd[0] == "llama-server" and cmd[cmd.index("--port") + 1] == str(port)
    assert cmd[cmd.index("--alias") + 1] == w["jobs"][1]["fine_tuned_model"]
    files = {f["role"]: f for f in l["files"]}
    assert cmd[cmd.index("-m") + 1] == files["base"]["path"] == "model-F32.gguf"
    assert cmd[cmd.index("--lora") + 1] == files["lora"]["path"]
    with client(w["srv"]) as c:
        for f in files.values():
            body = c.get(f["url"]).content
            assert hashlib.sha256(body).hexdigest() == f["sha256"] and len(body) == f["bytes"]
            (tmp_path / f["path"]).write_bytes(body)
    base = gguf.GGUFReader(str(tmp_path / files["base"]["path"]))
    lora = gguf.GGUFReader(str(tmp_path / files["lora"]["path"]))

    def field(r, k):
        f = r.fields[k]
        return bytes(f.parts[f.data[0]]).decode()

    assert field(base, "general.type") == "model" and field(lora, "general.type") == "adapter"
    assert field(lora, "adapter.type") == "lora"
    assert not any("lora" in t.name for t in base.tensors)           # the base alone
    assert any(t.name.endswith("lora_a") for t in lora.tensors)
    # the base export is the base model: the same bytes whatever the version
    r = api(w, "POST", "/v1/registry/exports", json={"model": "support-bot/1", "format": "gguf",
                                                      "options": {"lora": "none", "type": "F32"}})
    from registry_platform import wait_export
    e1 = wait_export(w["srv"], r.json()["id"])
    assert e1["artifact"]["sha256"] and \
        api(w, "GET", f"/v1/registry/artifacts/{e1['artifact']['id']}").json()["files"][0]["sha256"] \
        == files["base"]["sha256"]
    w["llama_files"] = {role: tmp_path / f["path"] for role, f in files.items()}
    # stopping it: nothing remote to unload
    assert api(w, "DELETE", f"/v1/deployments/{dep['id']}").status_code == 200
    wait_dep(w, dep["id"], lambda d: d["unloaded"], what="unloaded")


def test_llama_cpp_answers_with_the_deployment_files_as_ft_train(world, build_dir):
    """The files the command names, in llama.cpp itself (llama-cpp-python, where
    it is installed: it builds llama.cpp from source): the base GGUF with the
    LoRA GGUF over it give the version's greedy tokens, as ft-train generate."""
    llama_cpp = pytest.importorskip("llama_cpp")
    w = world
    f = w["llama_files"]
    out = subprocess.run([str(build_dir / "trainer" / "ft-train"), "generate", "--model", str(MODEL),
                          "--adapter", str(w["adapters"][2]), "--prompt", PROMPTS[0],
                          "--max-new-tokens", str(N_TOKENS)], capture_output=True, text=True,
                         check=True, env=dict(os.environ, FT_NUM_THREADS="2")).stdout
    want = json.loads(out)["ids"]
    from test_llamacpp_peer import llama   # (without AMX: see there)
    llm = llama(f["base"], lora_path=str(f["lora"]), n_ctx=256, logits_all=False)
    got = []
    for t in llm.generate(llm.tokenize(PROMPTS[0].encode(), add_bos=True), temp=0.0, top_k=1):
        got.append(t)
        if len(got) == N_TOKENS:
            break
    assert got == want


# ---------------------------------------------------------------- the API's rules


def test_cross_team_isolation_and_roles_on_every_route(world):
    w = world
    srv = w["srv"]
    team_b, key_b = srv.make_team("beta")
    viewer, member = srv.make_key(srv.team, "viewer"), srv.make_key(srv.team, "member")
    ep = api(w, "GET", "/v1/endpoints/serve-a").json()
    dep = w["dep_a"]
    # another team: every id and name of ours is a 404, lists show nothing of ours
    for method, path in (("GET", f"/v1/endpoints/{ep['id']}"), ("GET", "/v1/endpoints/serve-a"),
                         ("POST", f"/v1/endpoints/{ep['id']}"), ("DELETE", f"/v1/endpoints/{ep['id']}"),
                         ("GET", f"/v1/deployments/{dep}"), ("DELETE", f"/v1/deployments/{dep}"),
                         ("POST", f"/v1/deployments/{dep}/chat/completions")):
        body = {"messages": [{"role": "user", "content": "hi"}]} if path.endswith("/completions") \
            else {"url": "http://127.0.0.1:1"}
        r = api(w, method, path, key=key_b, **({"json": body} if method == "POST" else {}))
        assert r.status_code == 404, (method, path, r.text)
        assert r.json()["error"]["code"] == "not_found"
    assert api(w, "GET", "/v1/endpoints", key=key_b).json()["data"] == []
    assert api(w, "GET", "/v1/deployments", key=key_b).json()["data"] == []
    assert api(w, "GET", "/v1/deployments?endpoint=serve-a", key=key_b).status_code == 404
    # team B cannot deploy onto our endpoint, nor our model onto its own
    r = api(w, "POST", "/v1/deployments", key=key_b,
            json={"endpoint": ep["id"], "model": "support-bot/1"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "endpoint"
    theirs = api(w, "POST", "/v1/endpoints", key=key_b,
                 json={"name": "b-ep", "kind": "ftserve", "url": w["a"].url})
    assert theirs.status_code == 200
    r = api(w, "POST", "/v1/deployments", key=key_b,
            json={"endpoint": "b-ep", "model": "support-bot/1"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "model_not_found"
    r = api(w, "POST", "/v1/deployments", key=key_b,
            json={"endpoint": "b-ep", "model": w["jobs"][0]["fine_tuned_model"]})
    assert r.status_code == 400 and r.json()["error"]["param"] == "model"
    # viewers read, members deploy, admins manage endpoints
    assert api(w, "GET", "/v1/endpoints", key=viewer).status_code == 200
    assert api(w, "GET", f"/v1/deployments/{dep}", key=viewer).status_code == 200
    for method, path, body, key in (
            ("POST", "/v1/endpoints", {"name": "x", "kind": "vllm", "url": w["a"].url}, viewer),
            ("POST", f"/v1/endpoints/{ep['id']}", {"name": "y"}, viewer),
            ("DELETE", f"/v1/endpoints/{ep['id']}", None, viewer),
            ("POST", "/v1/deployments", {"endpoint": "serve-a", "model": "support-bot/1"}, viewer),
            ("DELETE", f"/v1/deployments/{dep}", None, viewer),
            ("POST", f"/v1/deployments/{dep}/chat/completions",
             {"messages": [{"role": "user", "content": "hi"}]}, viewer),
            ("POST", "/v1/endpoints", {"name": "x", "kind": "vllm", "url": w["a"].url}, member),
            ("DELETE", f"/v1/endpoints/{ep['id']}", None, member)):
        r = api(w, method, path, key=key, **({"json": body} if body else {}))
        assert r.status_code == 403, (method, path, r.text)
    assert api(w, "DELETE", "/v1/endpoints/b-ep", key=key_b).status_code == 200


BAD = [
    ("/v1/endpoints", {"kind": "ftserve", "url": "http://127.0.0.1:1"}, "name"),
    ("/v1/endpoints", {"name": "-x", "kind": "ftserve", "url": "http://127.0.0.1:1"}, "name"),
    ("/v1/endpoints", {"name": "x", "kind": "tgi", "url": "http://127.0.0.1:1"}, "kind"),
    ("/v1/endpoints", {"name": "x", "kind": "vllm", "url": "ftp://127.0.0.1:1"}, "url"),
    ("/v1/endpoints", {"name": "x", "kind": "vllm", "url": "http://10.1.2.3:80"}, "url"),
    ("/v1/endpoints", {"name": "x", "kind": "vllm", "url": "http://127.0.0.1:1/v1"}, "url"),
    ("/v1/endpoints", {"name": "x", "kind": "vllm", "url": "http://127.0.0.1:1", "api_key": 5},
     "api_key"),
    ("/v1/endpoints", {"name": "x", "kind": "vllm", "url": "http://127.0.0.1:1", "extra": 1},
     "extra"),
    ("/v1/endpoints", {"name": "serve-a", "kind": "vllm", "url": "http://127.0.0.1:1"}, "name"),
    ("/v1/deployments", {"model": "support-bot/1"}, "endpoint"),
    ("/v1/deployments", {"endpoint": "serve-a"}, "model"),
    ("/v1/deployments", {"endpoint": "nope", "model": "support-bot/1"}, "endpoint"),
    ("/v1/deployments", {"endpoint": "serve-a", "model": "support-bot/9"}, "model"),
    ("/v1/deployments", {"endpoint": "serve-a", "model": "ftplat-tiny-cs"}, "model"),
    ("/v1/deployments", {"endpoint": "serve-a", "model": "support-bot/1", "gguf_type": "Q8_0"},
     "gguf_type"),
    ("/v1/deployments", {"endpoint": "serve-a", "model": "support-bot/1", "log_texts": "yes"},
     "log_texts"),
    ("/v1/deployments", {"endpoint": "serve-a", "model": "support-bot@production"}, "model"),
]


@pytest.mark.parametrize("path,body,param", BAD)
def test_bad_input_names_the_field(world, path, body, param):
    r = api(world, "POST", path, json=body)
    assert r.status_code in (400, 409), r.text
    assert r.json()["error"]["param"] == param, r.text
    # one that is refused for a conflict says so (a name taken, a model deployed)
    if r.status_code == 409:
        assert r.json()["error"]["code"] in ("endpoint_exists", "deployment_exists")


def test_the_credential_is_sealed_and_never_shown(world):
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    w = world
    with psycopg.connect(w["srv"].db_url) as c:
        ep_id, sealed = c.execute(
            "SELECT id, api_key_sealed FROM endpoints WHERE name = 'serve-a'").fetchone()
        audit = c.execute("SELECT coalesce(string_agg(t::text, ''), '') FROM audit_log t").fetchone()[0]
        dump = c.execute("SELECT string_agg(t::text, '') FROM endpoints t").fetchone()[0]
    # the peer opens what we sealed: AES-256-GCM, nonce | ciphertext | tag, the id as AAD
    raw = base64.b64decode(sealed.removeprefix("fts1."))
    assert AESGCM(bytes.fromhex(SECRET_KEY)).decrypt(raw[:12], raw[12:], ep_id.encode()) == \
        TOKEN.encode()
    assert TOKEN not in dump and TOKEN not in audit
    for t in w["answers"]:
        assert TOKEN not in t
    logs = [w["srv"].log_path] + list(w["tmp"].glob("*.log"))
    assert len(logs) >= 4
    for p in logs:
        assert TOKEN not in p.read_text(errors="replace"), p


# ---------------------------------------------------------------- ftctl


def ftctl(w, build_dir, *args, stdin=None, key=None):
    env = dict(os.environ, FT_API_URL=w["srv"].url, FT_API_KEY=key or w["srv"].key)
    return subprocess.run([str(build_dir / "cli" / "ftctl"), *args], input=stdin,
                          capture_output=True, text=True, env=env, timeout=120)


def test_ftctl_endpoints_deployments_and_chat(world, build_dir):
    w = world
    p = ftctl(w, build_dir, "endpoints", "create", "--name", "cli-ep", "--kind", "ftserve",
              "--url", w["a"].url, "--api-key", TOKEN, "--json")
    assert p.returncode == 0, p.stderr
    ep = json.loads(p.stdout)
    assert ep["name"] == "cli-ep" and ep["has_api_key"] is True and TOKEN not in p.stdout
    p = ftctl(w, build_dir, "endpoints", "list")
    assert p.returncode == 0 and "cli-ep" in p.stdout and "serve-a" in p.stdout
    p = ftctl(w, build_dir, "endpoints", "create", "--name", "cli-ep", "--kind", "nope",
              "--url", w["a"].url)
    assert p.returncode == 1 and "(param: kind)" in p.stderr
    p = ftctl(w, build_dir, "deployments", "create", "--endpoint", "cli-ep", "--model",
              "support-bot/1", "--json")
    assert p.returncode == 0, p.stderr
    dep = json.loads(p.stdout)["id"]
    p = ftctl(w, build_dir, "deployments", "wait", dep, "--timeout", "120")
    assert p.returncode == 0 and "ready" in p.stdout, p.stdout + p.stderr
    p = ftctl(w, build_dir, "deployments", "show", dep)
    assert p.returncode == 0 and re.search(r"status\s+ready", p.stdout), p.stdout
    p = ftctl(w, build_dir, "deployments", "list", "--endpoint", "cli-ep")
    assert p.returncode == 0 and dep in p.stdout
    # chat, not a terminal: each line a user turn, the conversation kept; the
    # answers equal the openai client's on the same conversation
    ftname = w["jobs"][0]["fine_tuned_model"]
    turns = ["Hi, my parcel arrived damaged.", "Can I get a refund?"]
    p = ftctl(w, build_dir, "chat", ftname, "--endpoint", "cli-ep", "--max-tokens", "12",
              "--temperature", "0", "--system", "You are a support agent.",
              stdin="\n".join(turns) + "\n")
    assert p.returncode == 0, p.stderr
    oai = openai.OpenAI(base_url=w["a"].url + "/v1", api_key=w["srv"].key, max_retries=0)
    msgs = [{"role": "system", "content": "You are a support agent."}]
    want = []
    for t in turns:
        msgs.append({"role": "user", "content": t})
        a = oai.chat.completions.create(model=ftname, messages=msgs, max_tokens=12,
                                        temperature=0).choices[0].message.content
        msgs.append({"role": "assistant", "content": a})
        want.append(a)
    assert p.stdout == "".join(a + "\n" for a in want)
    # without --endpoint: the deployment serving the name is found
    p = ftctl(w, build_dir, "chat", ftname, "--max-tokens", "12", "--temperature", "0",
              "--system", "You are a support agent.", stdin=turns[0] + "\n")
    assert p.returncode == 0 and p.stdout == want[0] + "\n", p.stderr
    p = ftctl(w, build_dir, "chat", "no-such-model", stdin="hi\n")
    assert p.returncode == 1 and "no-such-model" in p.stderr
    p = ftctl(w, build_dir, "deployments", "delete", dep)
    assert p.returncode == 0
    p = ftctl(w, build_dir, "deployments", "wait", dep, "--status", "stopped", "--timeout", "60")
    assert p.returncode == 0, p.stderr
    p = ftctl(w, build_dir, "endpoints", "delete", "cli-ep")
    assert p.returncode == 0, p.stderr
    p = ftctl(w, build_dir, "endpoints", "show", "cli-ep")
    assert p.returncode == 1 and "no endpoint" in p.stderr
