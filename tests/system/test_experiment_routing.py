"""ft-serve routes by A/B experiment, every part real: ft-api, ft-scheduler
(its leader's deployment controller loads the arms' versions on a real
ft-serve and pushes the endpoint's experiments to it; its experiment pass
runs the guardrails), ft-worker training the two versions, PostgreSQL, Redis.

Peers:
  assignment   Python's hashlib on ft/experiment.h's documented rule
               (test_experiments.py's py_assign, written from the header's
               comment, not from the C): for 400 users at weights 0.7/0.3 the
               arm of every request, hence the shares exactly
  the arm      the routed answer (greedy) equals the same request sent to the
               arm's model by name, and the two arms' answers differ
  the log      request_log rows persisted by the real scheduler carry
               "<experiment id>:<arm>" (the column the results read)
  openai       the unpatched openai client calls "experiment:<name>" and reads
               the arm's header (with_raw_response, with_streaming_response)
Bad input: an unknown experiment, another team's, a draft, a stopped one,
two live experiments of one name, a bad push to ft-serve; each names itself.
"""
import collections
import json
import secrets
import time

import httpx
import openai
import psycopg
import pytest
import redis

from api_helpers import client
from conftest import _api_server
from registry_platform import Platform, register_bundled_model, run_job, upload_data
from test_experiments import py_assign
from test_serve import Server

SECRET_KEY = secrets.token_hex(32)
TOKEN = "ep-token-" + secrets.token_hex(12)
# far enough apart that the versions' greedy answers differ (test_deployments.py)
HP = {"n_epochs": 1, "batch_size": 4, "max_steps": 6, "warmup_steps": 0}
PROMPT = [{"role": "user", "content": "How long do refunds take?"}]
W = [0.7, 0.3]


@pytest.fixture(scope="module")
def world(build_dir, database_url, redis_url, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("routing")
    net = dict(endpoint_allow_http="true", endpoint_allow_cidrs="127.0.0.1/32")
    srv, name = _api_server(build_dir, database_url, redis_url, tmp_path_factory,
                            max_upload_bytes=1 << 22, secret_key=SECRET_KEY, **net)
    plat = Platform(srv, build_dir, redis_url, tmp, FT_SECRET_KEY=SECRET_KEY,
                    FT_ENDPOINT_ALLOW_HTTP="true", FT_ENDPOINT_ALLOW_CIDRS="127.0.0.1/32",
                    FT_DEPLOY_INTERVAL_MS="400", FT_DEPLOY_PROBE_TIMEOUT_MS="1500",
                    FT_EXPERIMENT_INTERVAL_MS="200")
    serve = None
    try:
        register_bundled_model(srv)
        tf = upload_data(srv, "train.jsonl", 24)
        jobs = [run_job(srv, model="ftplat-tiny-cs", training_file=tf["id"], seed=s,
                        registered_model="bot", lora={"r": 8, "alpha": 16},
                        hyperparameters=dict(HP, learning_rate_multiplier=m))
                for s, m in ((1, 25), (2, 60))]
        for j in jobs:
            assert j["status"] == "succeeded", plat.log("wrk-reg-1.log")[-3000:]
        serve = Server(build_dir, tmp, {}, env={"FT_STORE_DIR": str(srv.store_dir)},
                       store="true", token=TOKEN, database_url=srv.db_url,
                       redis_url=plat.env["FT_REDIS_URL"])
        with client(srv) as c:
            ep = c.post("/v1/endpoints", json={"name": "serve", "kind": "ftserve",
                                               "url": serve.url, "api_key": TOKEN})
            assert ep.status_code == 200, ep.text
            deps = [c.post("/v1/deployments", json={"endpoint": "serve", "model": f"bot/{v}"})
                    .json() for v in (1, 2)]
        for d in deps:
            wait(lambda: api_get(srv, f"/v1/deployments/{d['id']}")["status"] == "ready",
                 "the arms' versions deployed")
        # the tests send about a thousand chats in a few minutes with the admin key,
        # which ft-serve limits to its rate_limit_per_min (600 by default): a load
        # test's key, raised as an admin would (the trigger's NOTIFY reaches ft-serve)
        with psycopg.connect(srv.db_url, autocommit=True) as c:
            c.execute("UPDATE api_keys SET rate_limit_per_min = 1000000")
        w = dict(srv=srv, plat=plat, serve=serve, ep=ep.json()["id"],
                 names=[j["fine_tuned_model"] for j in jobs], rurl=plat.env["FT_REDIS_URL"])
        yield w
    finally:   # every process goes, whatever failed first
        try:
            if serve:
                serve.stop()
        finally:
            try:
                plat.stop()
            finally:
                rc = srv.stop()
                with psycopg.connect(database_url, autocommit=True) as c:
                    c.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    assert rc == 0, srv.log_path.read_text()[-4000:]


def wait(cond, what, timeout=60):
    deadline = time.time() + timeout
    while not cond():
        assert time.time() < deadline, f"never: {what}"
        time.sleep(0.1)


def api_get(srv, path, key=None):
    with client(srv, key) as c:
        return c.get(path).json()


def api_post(w, path, key=None, **body):
    with client(w["srv"], key) as c:
        return c.post(path, json=body)


def held(w):
    """What ft-serve holds, by id (its operator's view)."""
    r = httpx.get(w["serve"].url + "/v1/experiments",
                  headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 200, r.text
    return {e["id"]: e for e in r.json()["data"]}


def wait_held(w, eid, status, arms=None):
    def ok():
        e = held(w).get(eid)
        return e and e["status"] == status and (
            arms is None or [a["status"] for a in e["arms"]] == arms)
    wait(ok, f"ft-serve holds {eid} {status} {arms}")
    return held(w)[eid]


def experiment(w, name, assignment="user", start=True, **fields):
    r = api_post(w, "/v1/experiments", name=name, endpoint_id=w["ep"], assignment=assignment,
                 arms=[{"name": "control", "model": "bot/1", "weight": W[0]},
                       {"name": "candidate", "model": "bot/2", "weight": W[1]}], **fields)
    assert r.status_code == 200, r.text
    e = r.json()
    if start:
        r = api_post(w, f"/v1/experiments/{e['id']}/start")
        assert r.status_code == 200, r.text
        wait_held(w, e["id"], "running")
    return e


def chat(w, model, key=None, **extra):
    return httpx.post(w["serve"].url + "/v1/chat/completions",
                      headers={"Authorization": f"Bearer {key or w['srv'].key}"},
                      json={"model": model, "messages": PROMPT, "max_tokens": 1,
                            "temperature": 0, **extra}, timeout=60)


def logged(w, ids, timeout=60):
    """request_log rows of ids, once the scheduler has persisted them all."""
    deadline = time.time() + timeout
    with psycopg.connect(w["srv"].db_url, autocommit=True) as db:
        while True:
            rows = db.execute("SELECT id, experiment_arm, model, version_id, adapter"
                              " FROM request_log WHERE id = ANY(%s)", (list(ids),)).fetchall()
            if len(rows) == len(set(ids)):
                return {r[0]: r[1:] for r in rows}
            assert time.time() < deadline, f"{len(rows)} of {len(set(ids))} rows logged"
            time.sleep(0.2)


def versions(w):
    return [api_get(w["srv"], f"/v1/registry/models/bot/versions/{v}")["id"] for v in (1, 2)]


# ---- the controller's push ----------------------------------------------------

def test_the_controller_pushes_the_endpoints_experiments(world):
    w = world
    e = experiment(w, "push", start=False)
    got = wait_held(w, e["id"], "draft")
    assert got == {"id": e["id"], "team_id": w["srv"].team, "name": "push",
                   "assignment": "user", "status": "draft",
                   "arms": [{"name": "control", "model": w["names"][0], "weight": 0.7,
                             "status": "active"},
                            {"name": "candidate", "model": w["names"][1], "weight": 0.3,
                             "status": "active"}]}
    r = chat(w, "experiment:push")
    assert r.status_code == 409 and r.json()["error"]["code"] == "experiment_not_started"
    assert e["id"] in r.json()["error"]["message"] and r.json()["error"]["param"] == "model"
    assert api_post(w, f"/v1/experiments/{e['id']}/start").status_code == 200
    wait_held(w, e["id"], "running")
    # an experiment on no endpoint is pushed nowhere
    r = api_post(w, "/v1/experiments", name="nowhere", arms=[
        {"name": "a", "model": "bot/1", "weight": 0.5}, {"name": "b", "model": "bot/2", "weight": 0.5}])
    assert api_post(w, f"/v1/experiments/{r.json()['id']}/start").status_code == 200
    time.sleep(1.5)   # three of the controller's periods
    assert r.json()["id"] not in held(w)


# ---- sticky by user: 400 users, the shares exact ------------------------------

def test_400_users_get_the_hashlib_arm_and_keep_it(world):
    w = world
    e = experiment(w, "sticky")
    eid, arms = e["id"], ["control", "candidate"]
    want = {f"user-{i}": py_assign(eid, f"user-{i}", W, [True, True]) for i in range(400)}
    counts = collections.Counter(want.values())
    got, ids = collections.Counter(), {}
    for user, arm in want.items():
        r = chat(w, "experiment:sticky", user=user)
        assert r.status_code == 200, r.text
        assert r.headers["x-ft-experiment-arm"] == arms[arm], user
        assert r.headers["x-ft-experiment"] == eid
        assert r.json()["model"] == "experiment:sticky"
        got[arm] += 1
        ids[r.json()["id"]] = arm
    assert got == counts       # exact: the same rule, user by user
    print(f"\n400 users at 0.7/0.3: {counts[0]} control, {counts[1]} candidate")
    # sticky: the same user again, streamed or by id, on the same arm
    for i in range(0, 400, 8):
        user = f"user-{i}"
        r = chat(w, f"experiment:{eid}", user=user, stream=True)
        assert r.status_code == 200 and r.headers["x-ft-experiment-arm"] == arms[want[user]]
        assert r.text.rstrip().endswith("data: [DONE]")
        ids[r.headers["x-request-id"]] = want[user]
    # the request log: each row names the experiment, the arm, the arm's version
    vids = versions(w)
    rows = logged(w, ids)
    for rid, arm in ids.items():
        label, model, vid, adapter = rows[rid]
        assert label == f"{eid}:{arms[arm]}", rid
        assert vid == vids[arm] and adapter == w["names"][arm]
        assert model in ("experiment:sticky", f"experiment:{eid}")


def test_the_arm_really_answers(world):
    """The routed answer is the arm's model's answer (greedy, 12 tokens)."""
    w = world
    e = experiment(w, "answers")
    eid = e["id"]
    direct = [chat(w, n, max_tokens=12).json()["choices"][0]["message"]["content"]
              for n in w["names"]]
    assert direct[0] != direct[1], "the two versions must answer differently for this check"
    seen = set()
    for i in range(40):
        arm = py_assign(eid, f"a{i}", W, [True, True])
        if arm in seen:
            continue
        r = chat(w, "experiment:answers", user=f"a{i}", max_tokens=12)
        assert r.json()["choices"][0]["message"]["content"] == direct[arm]
        seen.add(arm)
    assert seen == {0, 1}


def test_per_request_assignment_by_the_response_id(world):
    w = world
    e = experiment(w, "per-request", assignment="request")
    eid, arms = e["id"], ["control", "candidate"]
    got = collections.Counter()
    for _ in range(60):
        r = chat(w, "experiment:per-request", user="same-user")
        rid = r.json()["id"]
        arm = py_assign(eid, rid, W, [True, True])   # keyed by the request's id
        assert r.headers["x-ft-experiment-arm"] == arms[arm] and rid == r.headers["x-request-id"]
        got[arm] += 1
    assert got[0] and got[1]   # one user, both arms


def test_the_openai_client_reads_the_arm(world):
    w = world
    e = experiment(w, "sdk")
    eid = e["id"]
    oai = openai.OpenAI(base_url=w["serve"].url + "/v1", api_key=w["srv"].key, max_retries=0)
    raw = oai.chat.completions.with_raw_response.create(
        model="experiment:sdk", messages=PROMPT, max_tokens=4, temperature=0, user="sdk-user")
    arm = ["control", "candidate"][py_assign(eid, "sdk-user", W, [True, True])]
    assert raw.headers["X-Ft-Experiment-Arm"] == arm
    comp = raw.parse()
    assert comp.model == "experiment:sdk" and comp.choices[0].message.content is not None
    with oai.chat.completions.with_streaming_response.create(
            model="experiment:sdk", messages=PROMPT, max_tokens=4, temperature=0,
            user="sdk-user", stream=True) as resp:
        assert resp.headers["x-ft-experiment-arm"] == arm
        text = "".join(ch.choices[0].delta.content or "" for ch in resp.parse() if ch.choices)
    assert text == comp.choices[0].message.content
    c = oai.completions.with_raw_response.create(model="experiment:sdk", prompt="Hi",
                                                 max_tokens=2, user="sdk-user")
    assert c.headers["x-ft-experiment-arm"] == arm


# ---- pause, guardrail, stop ---------------------------------------------------

def push_failures(w, eid, arm, n, errors):
    """Traffic for the guardrail, in ft/reqlog.h's record, onto ft:requests."""
    r = redis.Redis.from_url(w["rurl"])
    t0 = int(time.time() * 1000)
    for i in range(n):
        rec = {"id": f"chatcmpl-{eid[-8:]}{arm}{i}", "created_at": t0 + i, "kind": "chat",
               "stream": False, "team_id": w["srv"].team, "model": "x", "base_model": "x",
               "experiment_arm": f"{eid}:{arm}", "latency_ms": 10,
               "status": 500 if i < errors else 200,
               "finish_reason": "error" if i < errors else "stop"}
        r.xadd("ft:requests", {"r": json.dumps(rec)})


def test_pause_guardrail_and_stop_reach_the_endpoint(world):
    w = world
    e = experiment(w, "lifecycle", guardrails={"max_error_rate": 0.05, "min_requests": 40})
    eid, arms = e["id"], ["control", "candidate"]
    users = [f"p{i}" for i in range(60)]
    on_b = [u for u in users if py_assign(eid, u, W, [True, True]) == 1]
    assert on_b
    # paused: the control answers, and it is not the experiment's traffic
    assert api_post(w, f"/v1/experiments/{eid}/pause").status_code == 200
    wait_held(w, eid, "paused")
    r = chat(w, "experiment:lifecycle", user=on_b[0])
    assert r.status_code == 200 and r.headers["x-ft-experiment-arm"] == "control"
    assert logged(w, [r.json()["id"]])[r.json()["id"]][0] is None
    assert api_post(w, f"/v1/experiments/{eid}/start").status_code == 200
    wait_held(w, eid, "running")
    # the guardrail stops the candidate: its users move by the rule, the others stay
    push_failures(w, eid, "candidate", 60, 12)
    wait(lambda: api_get(w["srv"], f"/v1/experiments/{eid}")["arms"][1]["status"] == "stopped",
         "the guardrail stopped the candidate")
    wait_held(w, eid, "running", ["active", "stopped"])
    for u in users:
        r = chat(w, "experiment:lifecycle", user=u)
        assert r.headers["x-ft-experiment-arm"] == arms[py_assign(eid, u, W, [True, False])]
        assert r.headers["x-ft-experiment-arm"] == "control"
    # stopped: a clear 409 naming it, streamed or not
    assert api_post(w, f"/v1/experiments/{eid}/stop", reason="done").status_code == 200
    wait_held(w, eid, "stopped")
    for stream in (False, True):
        r = chat(w, "experiment:lifecycle", user="p1", stream=stream)
        assert r.status_code == 409, r.text
        err = r.json()["error"]
        assert err["code"] == "experiment_stopped" and err["param"] == "model"
        assert "lifecycle" in err["message"] and eid in err["message"]
        assert "x-ft-experiment-arm" not in r.headers
    # a new experiment of the same name is the one the name routes to now
    e2 = experiment(w, "lifecycle")
    r = chat(w, "experiment:lifecycle", user="p1")
    assert r.status_code == 200 and r.headers["x-ft-experiment"] == e2["id"]


# ---- refusals ------------------------------------------------------------------

def test_bad_input_names_the_problem(world):
    w = world
    e = experiment(w, "mine")
    r = chat(w, "experiment:nope")
    assert r.status_code == 404 and r.json()["error"]["code"] == "experiment_not_found"
    assert r.json()["error"]["param"] == "model" and '"nope"' in r.json()["error"]["message"]
    # another team's experiment: not found, by name or by id, as one that does not exist
    _, okey = w["srv"].make_team("other-routing")
    for name in ("mine", e["id"]):
        r = chat(w, f"experiment:{name}", key=okey)
        assert r.status_code == 404 and r.json()["error"]["code"] == "experiment_not_found"
        assert "x-ft-experiment-arm" not in r.headers
    # two live experiments of one name: ambiguous, the id still works
    e2 = experiment(w, "mine")
    r = chat(w, "experiment:mine")
    assert r.status_code == 400 and r.json()["error"]["code"] == "ambiguous_experiment"
    assert chat(w, f"experiment:{e2['id']}").status_code == 200
    # the push routes: the endpoint's token only, and a bad experiment is refused by field
    url = w["serve"].url
    body = dict(held(w)[e2["id"]], arms=[{"name": "a", "model": "m", "weight": 0.5,
                                          "status": "active"},
                                         {"name": "b", "model": "m", "weight": 0.4,
                                          "status": "active"}])
    r = httpx.post(url + "/v1/load_experiment", json=body,
                   headers={"Authorization": f"Bearer {w['srv'].key}"})
    assert r.status_code == 403
    tok = {"Authorization": f"Bearer {TOKEN}"}
    r = httpx.post(url + "/v1/load_experiment", json=body, headers=tok)
    assert r.status_code == 400 and r.json()["error"]["param"] == "arms", r.text
    for bad, param in (({"status": "going"}, "status"), ({"id": "exp-1"}, "id"),
                       ({"assignment": "x"}, "assignment"), ({"extra": 1}, "extra")):
        r = httpx.post(url + "/v1/load_experiment", json=dict(held(w)[e2["id"]], **bad),
                       headers=tok)
        assert r.status_code == 400 and r.json()["error"]["param"] == param, r.text
    r = httpx.post(url + "/v1/unload_experiment", json={"id": "exp-" + "0" * 24}, headers=tok)
    assert r.status_code == 404 and r.json()["error"]["param"] == "id"
