"""A/B experiments end to end, every ftplat part real: ft-api, ft-scheduler
(its leader computes the results on a period; its judge thread asks the LLM
judge), ft-worker training the two versions the arms compare, and ft-serve
answering requests with the platform's keys so that feedback and judgments
name real responses of request_log.

Peers:
  assignment        Python's hashlib on the rule of ft/experiment.h, user by user
  win matrix, rates numpy on the same judgments (stats_peer.ab)
  ratings           Bradley-Terry by scipy.optimize (stats_peer.bt_fit), 1e-6
  bootstrap         the same seed, generator and resampling replayed in Python,
                    each round refitted by scipy (stats_peer.bootstrap), 1e-6
  decision, needed  the mixture SPRT's log Lambda with scipy.special.betaln and the
                    judgments-needed formula with scipy.stats.norm (stats_peer.decision),
                    at alpha / (k - 1), 1e-9
  Wilson            scipy.stats.binomtest(...).proportion_ci("wilson"), 1e-12
  latency p95       numpy.percentile (linear, = PostgreSQL's percentile_cont), 1e-9
  webhooks          verified with the standardwebhooks package
The LLM judge is a small OpenAI-compatible HTTP server written here (it
stands for any such endpoint); it records what it was asked. Traffic for
the guardrails is written onto ft:requests in ft/reqlog.h's record format,
exactly what ft-serve writes, and persisted by the real scheduler."""
import hashlib
import http.server
import json
import base64
import random
import re
import secrets
import threading
import time

import httpx
import numpy as np
import openai
import psycopg
import pytest
import redis
from scipy import stats

import stats_peer
from api_helpers import client
from conftest import ApiServer, _api_server
from registry_platform import Platform, Receiver, register_bundled_model, run_job, upload_data
from test_serve import Server

HP = {"n_epochs": 1, "batch_size": 4, "max_steps": 2, "eval_steps": 2, "warmup_steps": 1}
EVENTS = ["experiment.arm.stopped", "experiment.decided"]


class Judge:
    """An OpenAI-compatible chat completions server: prefers the answer that
    holds "GOOD" ("fair"), always the first one shown ("biased"), or says no
    verdict ("mute"). Records each request."""

    def __init__(self):
        self.mode, self.requests = "fair", []
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                outer.requests.append((self.path, dict(self.headers), body))
                prompt = body["messages"][1]["content"]
                first = prompt.split("[The start of assistant A's answer]")[1].split(
                    "[The end of assistant A's answer]")[0]
                if outer.mode == "mute":
                    verdict = "I cannot decide."
                elif outer.mode == "biased":
                    verdict = "The first one. [[A]]"
                else:
                    verdict = "Reasons... [[A]]" if "GOOD" in first else "Reasons... [[B]]"
                out = json.dumps({"id": "x", "object": "chat.completion", "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": verdict},
                     "finish_reason": "stop"}]}).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *a):
                pass

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.srv.server_address[1]}/v1"
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()


SECRET_KEY = secrets.token_hex(32)   # seals the judge's api_key (ft-api), opened by ft-scheduler


@pytest.fixture(scope="module")
def world(build_dir, database_url, redis_url, tmp_path_factory):
    srv, name = _api_server(build_dir, database_url, redis_url, tmp_path_factory,
                            max_upload_bytes=1 << 22, webhook_allow_http="true",
                            webhook_allow_cidrs="127.0.0.1/32", secret_key=SECRET_KEY)
    tmp = tmp_path_factory.mktemp("experiments")
    plat = Platform(srv, build_dir, redis_url, tmp, FT_EXPERIMENT_INTERVAL_MS="200",
                    FT_SECRET_KEY=SECRET_KEY,
                    FT_JUDGE_ALLOW_HTTP="true", FT_JUDGE_ALLOW_CIDRS="127.0.0.1/32",
                    FT_JUDGE_BACKOFF_MS="100", FT_JUDGE_MAX_ATTEMPTS="2")
    rec, judge = Receiver(), Judge()
    with client(srv) as c:      # the polls and the 300 assignments outrun 600 a minute
        srv.key = c.post("/v1/keys", json={"role": "admin",
                                           "rate_limit_per_min": 1000000}).json()["key"]
    register_bundled_model(srv)
    with client(srv) as c:
        wh = c.post("/v1/webhooks", json={"url": rec.url, "events": EVENTS}).json()
    tf = upload_data(srv, "train.jsonl", 8)
    for seed in (1, 2):
        job = run_job(srv, model="ftplat-tiny-cs", training_file=tf["id"], seed=seed,
                      registered_model="bot", hyperparameters=HP)
        assert job["status"] == "succeeded", plat.log("wrk-reg-1.log")[-3000:]
    serve = Server(build_dir, tmp, {}, token="op-token", database_url=srv.db_url,
                   redis_url=plat.env["FT_REDIS_URL"])
    yield dict(srv=srv, plat=plat, rec=rec, secret=wh["secret"], judge=judge, serve=serve,
               rurl=plat.env["FT_REDIS_URL"])
    try:
        serve.stop()
    finally:   # every process goes, whatever failed first
        try:
            plat.stop()
        finally:
            rec.close()
            judge.srv.shutdown()
            rc = srv.stop()
            with psycopg.connect(database_url, autocommit=True) as c:
                c.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    assert rc == 0, srv.log_path.read_text()[-4000:]


ARMS = [{"name": "control", "model": "bot/1", "weight": 0.5},
        {"name": "candidate", "model": "bot/2", "weight": 0.3},
        {"name": "third", "model": "bot@latest", "weight": 0.2}]


TWO = [{"name": "control", "model": "bot/1", "weight": 0.5},
       {"name": "candidate", "model": "bot/2", "weight": 0.5}]


def create(w, key=None, **fields):
    body = {"name": "exp", "arms": ARMS, **fields}
    with client(w["srv"], key) as c:
        r = c.post("/v1/experiments", json=body)
        assert r.status_code == 200, r.text
        return r.json()


def post(w, path, key=None, **body):
    with client(w["srv"], key) as c:
        return c.post(path, json=body)


def started(w, **fields):
    e = create(w, **fields)
    r = post(w, f"/v1/experiments/{e['id']}/start")
    assert r.status_code == 200, r.text
    return r.json()


def results_when(w, eid, cond, timeout=60):
    deadline = time.time() + timeout
    with client(w["srv"]) as c:
        while True:
            res = c.get(f"/v1/experiments/{eid}/results").json()
            if res.get("computed_at") and cond(res):
                return res
            assert time.time() < deadline, res
            time.sleep(0.1)


def label(eid, arm):
    return f"{eid}:{arm}"


# ---- creation, refusals, life cycle --------------------------------------

def test_created_as_draft_with_arms_pinned_to_versions(world):
    e = create(world, description="bot 2 against bot 1", seed=7, bootstrap_rounds=200,
               guardrails={"max_error_rate": 0.1}, judge={"url": world["judge"].url,
                                                          "model": "judge-m", "api_key": "sk-x"})
    with client(world["srv"]) as c:
        v1 = c.get("/v1/registry/models/bot/versions/1").json()
        v2 = c.get("/v1/registry/models/bot/versions/2").json()
    assert e["object"] == "experiment" and e["status"] == "draft" and e["assignment"] == "user"
    assert [(a["name"], a["model"], a["weight"], a["model_version_id"]) for a in e["arms"]] == [
        ("control", "bot/1", 0.5, v1["id"]), ("candidate", "bot/2", 0.3, v2["id"]),
        ("third", "bot@latest", 0.2, v2["id"])]
    assert e["guardrails"] == {"max_error_rate": 0.1, "max_p95_latency_ms": None,
                               "min_requests": 100}
    assert e["judge"]["api_key_set"] is True and "api_key" not in e["judge"]
    assert "{question}" in e["judge"]["prompt"] and e["judge"]["max_tokens"] == 512
    # the key is kept sealed: the peer (AES-256-GCM, nonce | ciphertext | tag, the
    # experiment's id as AAD) opens it, and it is nowhere in clear
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    with psycopg.connect(world["srv"].db_url) as c:
        sealed = c.execute("SELECT judge_api_key_sealed FROM experiments WHERE id = %s",
                           (e["id"],)).fetchone()[0]
        dump = c.execute("SELECT string_agg(t::text, '') FROM experiments t").fetchone()[0]
        audit = c.execute("SELECT coalesce(string_agg(t::text, ''), '') FROM audit_log t").fetchone()[0]
    raw = base64.b64decode(sealed.removeprefix("fts1."))
    assert AESGCM(bytes.fromhex(SECRET_KEY)).decrypt(raw[:12], raw[12:], e["id"].encode()) == b"sk-x"
    assert "sk-x" not in dump and "sk-x" not in audit
    assert e["alpha"] == 0.05 and e["power"] == 0.8 and e["seed"] == 7


def test_a_judge_key_without_a_secret_key_is_refused_and_nothing_is_kept(world, tmp_path):
    srv = world["srv"]
    bare = ApiServer(srv.build_dir, srv.db_url, srv.redis_url, tmp_path).start()   # no secret_key
    try:
        with psycopg.connect(srv.db_url) as c:
            before = c.execute("SELECT count(*) FROM experiments").fetchone()[0]
        with httpx.Client(base_url=bare.url, headers={"Authorization": f"Bearer {srv.key}"}) as c:
            r = c.post("/v1/experiments", json={
                "name": "clear", "arms": TWO,
                "judge": {"url": world["judge"].url, "model": "m", "api_key": "sk-clear"}})
        assert r.status_code == 503, r.text
        err = r.json()["error"]
        assert err["code"] == "secret_key_unset" and err["param"] == "judge.api_key"
        with psycopg.connect(srv.db_url) as c:
            assert c.execute("SELECT count(*) FROM experiments").fetchone()[0] == before
    finally:
        assert bare.stop() == 0


def test_bad_input_names_the_field(world):
    srv = world["srv"]
    other, okey = srv.make_team("other-exp")
    with client(srv) as c:
        ep_mine = "ep-" + "M" * 24
        ep_theirs = "ep-" + "T" * 24
    with psycopg.connect(srv.db_url, autocommit=True) as db:   # endpoints are another subsystem's
        for ep, team in ((ep_mine, srv.team), (ep_theirs, other)):
            db.execute("INSERT INTO endpoints (id, team_id, name, kind, url) VALUES"
                       " (%s, %s, %s, 'ftserve', 'http://127.0.0.1:1') ON CONFLICT DO NOTHING",
                       (ep, team, ep))
    two = TWO
    cases = [
        ({"arms": [{**two[0], "weight": 0.5}, {**two[1], "weight": 0.4}]}, "arms", "invalid_weights"),
        ({"arms": [{**two[0], "weight": 1.2}, {**two[1], "weight": -0.2}]}, "arms[0].weight", None),
        ({"arms": [two[0]]}, "arms", None),
        ({"arms": [two[0], {**two[1], "name": "control"}]}, "arms[1].name", "duplicate_arm"),
        ({"arms": [{**two[0], "name": "no spaces"}, two[1]]}, "arms[0].name", None),
        ({"arms": [two[0], {**two[1], "model": "ftplat-tiny-cs"}]}, "arms[1].model", "not_a_version"),
        ({"arms": [two[0], {**two[1], "model": "bot/9"}]}, "arms[1].model", "model_not_found"),
        ({"arms": [two[0], {**two[1], "weight": "0.5"}]}, "arms[1].weight", None),
        ({"arms": [two[0], {**two[1], "extra": 1}]}, "arms[1].extra", None),
        ({"arms": two, "assignment": "sticky"}, "assignment", None),
        ({"arms": two, "endpoint_id": "ep-" + "X" * 24}, "endpoint_id", "endpoint_not_found"),
        ({"arms": two, "endpoint_id": ep_theirs}, "endpoint_id", "endpoint_not_found"),
        ({"arms": two, "judge": {"url": "ftp://x", "model": "m"}}, "judge.url", None),
        ({"arms": two, "judge": {"url": "http://x/v1", "model": "m", "prompt": "{question}"}},
         "judge.prompt", None),
        ({"arms": two, "judge": {"model": "m"}}, "judge.url", None),
        ({"arms": two, "guardrails": {"max_error_rate": 2}}, "guardrails.max_error_rate", None),
        ({"arms": two, "bootstrap_rounds": 5}, "bootstrap_rounds", None),
    ]
    with client(srv) as c:
        for body, param, code in cases:
            r = c.post("/v1/experiments", json={"name": "x", **body})
            assert r.status_code == 400, (body, r.text)
            assert r.json()["error"]["param"] == param, (body, r.text)
            if code:
                assert r.json()["error"]["code"] == code, r.text
        r = c.post("/v1/experiments", json={"name": "x", "arms": two, "endpoint_id": ep_mine})
        assert r.status_code == 200 and r.json()["endpoint_id"] == ep_mine
    # an arm on another team's version: not found, as a version that does not exist
    with client(srv, okey) as c:
        mine = c.post("/v1/experiments", json={"name": "x", "arms": [
            {"name": "a", "model": "bot/1", "weight": 0.5}, {"name": "b", "model": "bot/2", "weight": 0.5}]})
        none = c.post("/v1/experiments", json={"name": "x", "arms": [
            {"name": "a", "model": "zzz/1", "weight": 0.5}, {"name": "b", "model": "zzz/2", "weight": 0.5}]})
    assert mine.status_code == none.status_code == 400
    assert mine.json()["error"]["param"] == "arms[0].model"
    assert mine.json()["error"]["code"] == none.json()["error"]["code"] == "model_not_found"


def test_life_cycle(world):
    e = create(world)
    eid = e["id"]
    assert post(world, f"/v1/experiments/{eid}/pause").status_code == 409
    r = post(world, f"/v1/experiments/{eid}/judgments", arm_a="control", arm_b="candidate",
             winner="a")
    assert r.status_code == 409 and r.json()["error"]["code"] == "experiment_state"
    s = post(world, f"/v1/experiments/{eid}/start").json()
    assert s["status"] == "running" and s["started_at"] is not None
    assert post(world, f"/v1/experiments/{eid}/pause").json()["status"] == "paused"
    assert post(world, f"/v1/experiments/{eid}/start").json()["status"] == "running"
    st = post(world, f"/v1/experiments/{eid}/stop", reason="enough").json()
    assert st["status"] == "stopped" and st["stop_reason"] == "enough" and st["ended_at"]
    r = post(world, f"/v1/experiments/{eid}/start")
    assert r.status_code == 409 and "stopped" in r.json()["error"]["message"]
    assert post(world, f"/v1/experiments/{eid}/stop").status_code == 409
    # a draft may be stopped without ever starting (a check constraint refused it)
    d = create(world)
    r = post(world, f"/v1/experiments/{d['id']}/stop")
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "stopped" and r.json()["started_at"] is None


# ---- assignment ------------------------------------------------------------

def py_assign(eid, key, weights, active):
    def u(salt):
        d = hashlib.sha256(eid.encode() + b"\0" + salt.encode() + key.encode()).digest()
        return (int.from_bytes(d[:8], "big") >> 11) * 2.0 ** -53

    def pick(x, take):
        tot = sum(w for w, t in zip(weights, take) if t and w > 0)
        c = 0
        for i, (w, t) in enumerate(zip(weights, take)):
            if t and w > 0:
                c += w
                if x * tot < c:
                    return i
        return max(i for i, (w, t) in enumerate(zip(weights, take)) if t and w > 0)

    a = pick(u(""), [True] * len(weights))
    return a if active[a] else pick(u("1"), active)


def test_sticky_assignment_equals_hashlib(world):
    e = started(world)
    eid, names = e["id"], [a["name"] for a in e["arms"]]
    counts = [0, 0, 0]
    with client(world["srv"]) as c:
        for i in range(300):
            user = f"user-{i}"
            r = c.get(f"/v1/experiments/{eid}/assignment", params={"user": user}).json()
            want = py_assign(eid, user, [0.5, 0.3, 0.2], [True] * 3)
            assert r["arm"] == names[want] and r["sticky"] and r["label"] == label(eid, names[want])
            counts[want] += 1
        again = c.get(f"/v1/experiments/{eid}/assignment", params={"user": "user-7"}).json()
        assert again["arm"] == names[py_assign(eid, "user-7", [0.5, 0.3, 0.2], [True] * 3)]
        r = c.get(f"/v1/experiments/{eid}/assignment")
        assert r.status_code == 400 and r.json()["error"]["param"] == "request"
    # the shares follow the weights (chi-square goodness of fit, p > 0.001)
    assert stats.chisquare(counts, [300 * 0.5, 300 * 0.3, 300 * 0.2]).pvalue > 0.001
    e2 = started(world, assignment="request")
    with client(world["srv"]) as c:
        r = c.get(f"/v1/experiments/{e2['id']}/assignment", params={"user": "u"})
        assert r.status_code == 400 and r.json()["error"]["param"] == "request"
        r = c.get(f"/v1/experiments/{e2['id']}/assignment", params={"request": "chatcmpl-1"}).json()
        assert not r["sticky"]
        assert r["position"] == py_assign(e2["id"], "chatcmpl-1", [0.5, 0.3, 0.2], [True] * 3)


# ---- judgments and the leader's results -------------------------------------

def synthetic_judgments(n, seed):
    """Arm 1 beats arm 0 60% of the time; arm 2 is even with both; ties and
    both-bad sprinkled in (ties count half)."""
    rnd = random.Random(seed)
    out = []
    for _ in range(n):
        a, b = rnd.sample(range(3), 2)
        p = 0.6 if (a, b) == (1, 0) else 0.4 if (a, b) == (0, 1) else 0.5
        x = rnd.random()
        out.append((a, b, "tie" if x > 0.9 else "both_bad" if x > 0.85 else
                    "a" if x < p * 0.85 else "b"))
    return out


def test_results_equal_the_python_peers(world):
    e = started(world, seed=7, bootstrap_rounds=200)
    eid, names = e["id"], [a["name"] for a in e["arms"]]
    js = synthetic_judgments(60, 3)
    for a, b, o in js:
        r = post(world, f"/v1/experiments/{eid}/judgments", arm_a=names[a], arm_b=names[b],
                 winner=o, judge="tester", comment="c")
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "done" and r.json()["source"] == "human"
    res = results_when(world, eid, lambda r: r["judgments"]["done"] == 60)
    k = 3
    peer = stats_peer.ab({"k": k, "judgments": js})
    for i in range(k):
        for j in range(k):
            if i != j:
                assert res["win_matrix"][i][j] == pytest.approx(peer["win_matrix"][i][j], abs=1e-12)
                assert res["win_prob"][i][j] == pytest.approx(peer["win_prob"][i][j], abs=1e-6)
        assert res["arms"][i]["win_rate"] == pytest.approx(peer["win_rate"][i], abs=1e-12)
        assert res["ratings"]["rating"][i] == pytest.approx(peer["rating"][i], abs=1e-6)
        assert res["arms"][i]["judgments"] == sum(1 for x in js if i in x[:2])
    boot = stats_peer.bootstrap({"k": k, "judgments": js, "rounds": 200, "seed": 7})
    assert res["bootstrap"]["unbounded_rounds"] == boot["unbounded_rounds"]
    for what in ("rating", "win_rate"):
        for i in range(k):
            got, want = res["bootstrap"][what][i], boot[what][i]
            assert got["rounds"] == want["rounds"]
            for q in ("lo", "median", "hi"):
                assert got[q] == pytest.approx(want[q], abs=1e-6), (what, i, q)
    # each arm against the control at alpha / (k - 1)
    for c in res["comparisons"]:
        i = names.index(c["arm"])
        pair = [x for x in js if set(x[:2]) == {0, i}]
        score = sum(stats_peer.SCORE_A[o] if a == i else 1 - stats_peer.SCORE_A[o]
                    for a, b, o in pair)
        d = stats_peer.decision({"k": score, "n": len(pair), "alpha": 0.025, "power": 0.8})
        assert c["judgments"] == len(pair) and c["alpha"] == 0.025
        assert c["share"] == pytest.approx(score / len(pair), abs=1e-15)
        assert c["log_lambda"] == pytest.approx(d["log_lambda"], abs=1e-9)
        assert c["log_threshold"] == pytest.approx(d["log_threshold"], abs=1e-12)
        assert c["decided"] == d["decided"]
        assert c["judgments_needed"]["total"] == pytest.approx(d["needed_total"], rel=1e-9)
        assert c["judgments_needed"]["more"] == d["needed_more"]
    assert res["decision_rule"]["alpha_per_comparison"] == 0.025
    assert "at most" in res["decision_rule"]["false_positive_rate"]
    with client(world["srv"]) as c:
        listed = c.get(f"/v1/experiments/{eid}/judgments", params={"limit": 100}).json()["data"]
    assert len(listed) == 60 and listed[0]["judge"] == "tester"


def test_a_clear_winner_is_decided_and_announced(world):
    e = started(world, arms=TWO)
    eid = e["id"]
    for _ in range(30):
        post(world, f"/v1/experiments/{eid}/judgments", arm_a="candidate", arm_b="control",
             winner="a")
    res = results_when(world, eid, lambda r: r["judgments"]["done"] == 30)
    c = res["comparisons"][0]
    assert c["decided"] and c["winner"] == "candidate"
    deadline = time.time() + 30
    while True:
        evs = [p for p in world["rec"].events(world["secret"], "experiment.decided")
               if p["data"]["experiment"] == eid]
        if evs or time.time() > deadline:
            break
        time.sleep(0.1)
    assert len(evs) == 1 and evs[0]["data"]["winner"] == "candidate"
    # announced once, at the first computation that found it decided (the leader may
    # look before all 30 are in): the rule had decided at that count
    n = evs[0]["data"]["judgments"]
    assert 1 <= n <= 30 and evs[0]["data"]["alpha"] == 0.05
    assert stats_peer.decision({"k": n, "n": n, "alpha": 0.05})["decided"]
    assert not stats_peer.decision({"k": 10, "n": 10, "alpha": 0.05})["decided"]


# ---- responses, feedback, the LLM judge ----------------------------------------

def serve_answer(w, eid, arm, key=None):
    """One real ft-serve answer labelled with an arm; its request_log row's id."""
    oa = openai.OpenAI(base_url=w["serve"].url + "/v1", api_key=key or w["srv"].key,
                       max_retries=0, default_headers={"X-Experiment-Arm": label(eid, arm)})
    r = oa.chat.completions.create(model="ftplat-tiny-cs", max_tokens=4, temperature=0,
                                   messages=[{"role": "user", "content": "hello"}])
    return r.id


def wait_logged(w, ids, timeout=30):
    deadline = time.time() + timeout
    with psycopg.connect(w["srv"].db_url, autocommit=True) as db:
        while True:
            n = db.execute("SELECT count(*) FROM request_log WHERE id = ANY(%s)", (ids,)).fetchone()[0]
            if n == len(ids):
                return
            assert time.time() < deadline
            time.sleep(0.1)


def test_feedback_rates_with_wilson_intervals(world):
    e = started(world, arms=TWO)
    eid = e["id"]
    ids = {arm: [serve_answer(world, eid, arm) for _ in range(n)]
           for arm, n in (("control", 6), ("candidate", 5))}
    wait_logged(world, ids["control"] + ids["candidate"])
    thumbs = {"control": ["up", "down", "down", "up", "down", None],
              "candidate": ["up", "up", "up", "down", None]}
    resolved = {"control": [True, False, None, None, None, None],
                "candidate": [True, True, True, None, False]}
    for arm in thumbs:
        for rid, t, s in zip(ids[arm], thumbs[arm], resolved[arm]):
            body = {k: v for k, v in (("thumbs", t), ("resolved", s)) if v is not None}
            if not body:
                body = {"escalated": True}
            r = post(world, "/v1/feedback", response_id=rid, **body)
            assert r.status_code == 200, r.text
            assert r.json()["experiment"] == {"id": eid, "arm": arm}
    # a second post updates the same row
    r = post(world, "/v1/feedback", response_id=ids["control"][0], comment="great")
    assert r.json()["thumbs"] == "up" and r.json()["comment"] == "great"
    # the leader's computation after the last feedback (an earlier one may not hold it)
    res = results_when(world, eid, lambda r: r["arms"][1]["feedback"]["resolved"]["n"] == 4 and
                       r["arms"][0]["feedback"]["escalated"]["n"] == 1)
    for a, arm in enumerate(("control", "candidate")):
        fb = res["arms"][a]["feedback"]
        up = thumbs[arm].count("up")
        n = sum(1 for t in thumbs[arm] if t)
        ci = stats.binomtest(up, n).proportion_ci(confidence_level=0.95, method="wilson")
        assert (fb["thumbs_up"]["count"], fb["thumbs_up"]["n"]) == (up, n)
        assert fb["thumbs_up"]["interval"] == pytest.approx([ci.low, ci.high], abs=1e-12)
        k = resolved[arm].count(True)
        m = sum(1 for s in resolved[arm] if s is not None)
        ci = stats.binomtest(k, m).proportion_ci(confidence_level=0.95, method="wilson")
        assert fb["resolved"]["interval"] == pytest.approx([ci.low, ci.high], abs=1e-12)
        assert res["arms"][a]["requests"] == len(ids[arm])
    # refusals
    cases = [({"response_id": "chatcmpl-nope", "thumbs": "up"}, 404, "response_id"),
             ({"response_id": ids["control"][1], "thumbs": "sideways"}, 400, "thumbs"),
             ({"response_id": ids["control"][1], "resolved": "yes"}, 400, "resolved"),
             ({"response_id": ids["control"][1]}, 400, "thumbs")]
    for body, status, param in cases:
        r = post(world, "/v1/feedback", **body)
        assert r.status_code == status and r.json()["error"]["param"] == param, r.text


def test_judgments_name_real_responses(world):
    e = started(world, arms=TWO)
    eid = e["id"]
    ra, rb = serve_answer(world, eid, "control"), serve_answer(world, eid, "candidate")
    wait_logged(world, [ra, rb])
    r = post(world, f"/v1/experiments/{eid}/judgments", arm_a="control", arm_b="candidate",
             winner="b", response_a=ra, response_b=rb)
    assert r.status_code == 200, r.text
    assert (r.json()["response_a"], r.json()["response_b"]) == (ra, rb)
    cases = [({"response_a": rb}, 400, "response_a", "wrong_arm"),
             ({"response_b": "chatcmpl-unknown"}, 404, "response_b", "response_not_found"),
             ({"arm_b": "nope"}, 400, "arm_b", "arm_not_found"),
             ({"arm_b": "control"}, 400, "arm_b", None),
             ({"winner": "c"}, 400, "winner", None)]
    for patch, status, param, code in cases:
        body = {"arm_a": "control", "arm_b": "candidate", "winner": "a", **patch}
        r = post(world, f"/v1/experiments/{eid}/judgments", **body)
        assert r.status_code == status and r.json()["error"]["param"] == param, (patch, r.text)
        if code:
            assert r.json()["error"]["code"] == code


def wait_judgment(w, eid, jid, timeout=30):
    deadline = time.time() + timeout
    with client(w["srv"]) as c:
        while True:
            js = c.get(f"/v1/experiments/{eid}/judgments", params={"limit": 100}).json()["data"]
            j = next(x for x in js if x["id"] == jid)
            if j["status"] != "pending":
                return j
            assert time.time() < deadline, j
            time.sleep(0.1)


def test_llm_judge_both_orders(world):
    judge = world["judge"]
    e = started(world, arms=TWO, judge={"url": judge.url, "model": "judge-m",
                                             "api_key": "sk-judge", "max_tokens": 64})
    eid = e["id"]
    judge.mode, judge.requests = "fair", []
    r = post(world, f"/v1/experiments/{eid}/judge", arm_a="control", arm_b="candidate",
             prompt="How long do returns take?", answer_a="meh", answer_b="GOOD: 30 days")
    assert r.status_code == 202 and r.json()["status"] == "pending", r.text
    j = wait_judgment(world, eid, r.json()["id"])
    assert j["status"] == "done" and j["outcome"] == "b" and j["source"] == "llm"
    assert j["judge"] == "judge-m" and j["verdicts"]["consistent"] is True
    assert [o["verdict"] for o in j["verdicts"]["orders"]] == ["B", "A"]
    assert len(judge.requests) == 2
    (p1, h1, b1), (p2, h2, b2) = judge.requests
    assert p1 == p2 == "/v1/chat/completions"
    assert {h1.get("authorization"), h2.get("authorization")} == {"Bearer sk-judge"} or \
        {h1.get("Authorization"), h2.get("Authorization")} == {"Bearer sk-judge"}
    assert b1["model"] == "judge-m" and b1["temperature"] == 0 and b1["max_tokens"] == 64
    # order 1 shows A's answer first, order 2 B's
    first = lambda b: b["messages"][1]["content"].split("[The start of assistant A's answer]\n")[1]
    assert first(b1).startswith("meh") and first(b2).startswith("GOOD")
    # a judge that always picks the first answer: the orders disagree, a tie
    judge.mode = "biased"
    r = post(world, f"/v1/experiments/{eid}/judge", arm_a="control", arm_b="candidate",
             prompt="q", answer_a="x", answer_b="y")
    j = wait_judgment(world, eid, r.json()["id"])
    assert j["outcome"] == "tie" and j["verdicts"]["consistent"] is False
    # no verdict: retried (judge_max_attempts = 2), then failed with the reason
    judge.mode = "mute"
    r = post(world, f"/v1/experiments/{eid}/judge", arm_a="control", arm_b="candidate",
             prompt="q", answer_a="x", answer_b="y")
    j = wait_judgment(world, eid, r.json()["id"])
    assert j["status"] == "failed" and j["attempts"] == 2 and "no verdict" in j["error"]
    # texts come from the request log when it kept them; else they are required
    r = post(world, f"/v1/experiments/{eid}/judge", arm_a="control", arm_b="candidate",
             prompt="q", answer_a="x")
    assert r.status_code == 400 and r.json()["error"]["param"] == "answer_b"
    e2 = started(world, arms=TWO)
    r = post(world, f"/v1/experiments/{e2['id']}/judge", arm_a="control", arm_b="candidate",
             prompt="q", answer_a="x", answer_b="y")
    assert r.status_code == 409 and r.json()["error"]["code"] == "no_judge"


# ---- guardrails -------------------------------------------------------------

def push_requests(w, team, eid, arm, n, errors, latency, t0):
    r = redis.Redis.from_url(w["rurl"])
    rows = []
    for i in range(n):
        rid = f"chatcmpl-{eid[-8:]}{arm}{i}"
        rec = {"id": rid, "created_at": t0 + i, "kind": "chat", "stream": False, "team_id": team,
               "model": "ftplat-tiny-cs", "base_model": "ftplat-tiny-cs",
               "experiment_arm": label(eid, arm), "latency_ms": latency(i),
               "status": 500 if i < errors else 200,
               "finish_reason": "error" if i < errors else "stop"}
        r.xadd("ft:requests", {"r": json.dumps(rec)})
        rows.append(rec)
    return rows


def test_guardrail_stops_a_failing_arm(world):
    e = started(world, arms=TWO, guardrails={"max_error_rate": 0.05, "min_requests": 40,
                                                   "max_p95_latency_ms": 10000})
    eid, team = e["id"], world["srv"].team
    t0 = int(time.time() * 1000)
    ok = push_requests(world, team, eid, "control", 60, 1, lambda i: 100 + i, t0)
    bad = push_requests(world, team, eid, "candidate", 60, 12, lambda i: 50 + 2 * i, t0)
    res = results_when(world, eid, lambda r: r["arms"][1]["status"] == "stopped")
    c = res["arms"][1]
    assert c["requests"] == 60 and c["errors"]["count"] == 12
    ci = stats.binomtest(12, 60).proportion_ci(confidence_level=0.95, method="wilson")
    assert c["errors"]["interval"] == pytest.approx([ci.low, ci.high], abs=1e-12)
    assert c["latency_ms"]["p95"] == pytest.approx(
        np.percentile([x["latency_ms"] for x in bad], 95), abs=1e-9)
    assert res["arms"][0]["status"] == "active"           # 1 error in 60: lower bound 0.003
    with client(world["srv"]) as cl:
        g = cl.get(f"/v1/experiments/{eid}").json()
        assert g["arms"][1]["status"] == "stopped" and "max_error_rate" in g["arms"][1]["stop_reason"]
        # nobody lands on a stopped arm; users of the control stay where they were
        for i in range(50):
            a = cl.get(f"/v1/experiments/{eid}/assignment", params={"user": f"g{i}"}).json()
            assert a["arm"] == "control"
    deadline = time.time() + 30
    while True:
        evs = [p for p in world["rec"].events(world["secret"], "experiment.arm.stopped")
               if p["data"]["experiment"] == eid]
        if evs or time.time() > deadline:
            break
        time.sleep(0.1)
    assert len(evs) == 1 and evs[0]["data"]["arm"] == "candidate"
    assert evs[0]["data"]["requests"] == 60 and evs[0]["data"]["error_rate"] == pytest.approx(0.2)
    del ok


# ---- isolation -------------------------------------------------------------

def test_other_teams_see_nothing(world):
    srv = world["srv"]
    e = started(world, arms=TWO)
    eid = e["id"]
    rid = serve_answer(world, eid, "control")
    wait_logged(world, [rid])
    post(world, "/v1/feedback", response_id=rid, thumbs="up")
    _, okey = srv.make_team("nosy-exp")
    with client(srv, okey) as c:
        for path in (f"/v1/experiments/{eid}", f"/v1/experiments/{eid}/results",
                     f"/v1/experiments/{eid}/judgments", f"/v1/feedback/{rid}"):
            assert c.get(path).status_code == 404, path
        assert c.get(f"/v1/experiments/{eid}/assignment", params={"user": "u"}).status_code == 404
        for action in ("start", "pause", "stop"):
            assert c.post(f"/v1/experiments/{eid}/{action}").status_code == 404
        r = c.post(f"/v1/experiments/{eid}/judgments",
                   json={"arm_a": "control", "arm_b": "candidate", "winner": "a"})
        assert r.status_code == 404
        r = c.post(f"/v1/experiments/{eid}/judge", json={"arm_a": "control", "arm_b": "candidate",
                                                          "prompt": "q", "answer_a": "a",
                                                          "answer_b": "b"})
        assert r.status_code == 404
        r = c.post("/v1/feedback", json={"response_id": rid, "thumbs": "down"})
        assert r.status_code == 404 and r.json()["error"]["param"] == "response_id"
        assert c.get("/v1/experiments").json()["data"] == []
    # nor a response the other team's key got from ft-serve
    _, key2 = srv.make_team("nosy-2")
    theirs = serve_answer(world, eid, "control", key=key2)
    wait_logged(world, [theirs])
    r = post(world, f"/v1/experiments/{eid}/judgments", arm_a="control", arm_b="candidate",
             winner="a", response_a=theirs)
    assert r.status_code == 404 and r.json()["error"]["param"] == "response_a"
    with client(srv) as c:
        assert c.get(f"/v1/feedback/{rid}").json()["thumbs"] == "up"


def test_ftctl_experiments(world, build_dir):
    from api_helpers import ftctl
    srv = world["srv"]
    p = ftctl(srv, build_dir, "--json", "experiments", "create", "cli-exp",
              "control=bot/1:0.6", "candidate=bot/2:0.4", "--seed", "5", "--start")
    e = json.loads(p.stdout)
    eid = e["id"]
    assert e["status"] == "running" and [a["weight"] for a in e["arms"]] == [0.6, 0.4]
    for _ in range(12):
        ftctl(srv, build_dir, "experiments", "judge", eid, "candidate", "control", "a",
              "--comment", "clearer")
    p = ftctl(srv, build_dir, "experiments", "judge", eid, "candidate", "control", "maybe",
              check=1)
    assert "winner" in p.stderr
    res = results_when(world, eid, lambda r: r["judgments"]["done"] == 12)
    out = ftctl(srv, build_dir, "experiments", "show", eid).stdout
    assert f"experiment {eid} (cli-exp): running" in out
    row = next(l for l in out.splitlines() if l.startswith("candidate "))
    iv = res["bootstrap"]["win_rate"][1]
    assert f"[{iv['lo']:.3f}, {iv['hi']:.3f}]" in row
    assert "candidate vs control: 12 judgments, share 1.000" in out
    assert "false positives: at most alpha_per_comparison" in out
    p = ftctl(srv, build_dir, "--json", "experiments", "stop", eid)
    assert json.loads(p.stdout)["status"] == "stopped"
    p = ftctl(srv, build_dir, "experiments", "create", "bad", "a=bot/1:0.5", "b=bot/2:0.4",
              check=1)
    assert "sum to 1" in p.stderr and "(param: arms)" in p.stderr
    assert ftctl(srv, build_dir, "experiments", "create", "bad", "a=bot/1", "b=bot/2:0.5",
                 check=2).returncode == 2
