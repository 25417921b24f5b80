"""Replays: a prompt set sent through an experiment's arms, every part real:
ft-api (checks the file, keeps the prompts), ft-scheduler (its replay thread
calls the arms on a real ft-serve with the endpoint's sealed token; its judge
thread decides the judgments; its leader counts them in the results),
ft-worker training the two versions, PostgreSQL, Redis, and the fake
OpenAI-compatible judge of test_experiments.py.

Peers:
  the answers    each arm's stored answer to each row equals the same prompt
                 sent by this test to the arm's served model, greedy
                 (temperature 0, the same max_tokens): exact text
  the judgments  one per row for the candidate against the control, holding
                 those two texts, decided by the judge (both orders: two
                 requests each), and counted by the leader's results
Bad input: another team's file, an unknown one, a file whose row 3 is not a
conversation, an experiment without an endpoint, a draft, a stopped one,
max_rows out of range; each names its field. Other teams see nothing.
"""
import json
import secrets
import time

import httpx
import psycopg
import pytest

from api_helpers import client
from conftest import _api_server
from registry_platform import DATA, Platform, register_bundled_model, run_job, upload, upload_data
from test_experiments import Judge
from test_serve import Server

SECRET_KEY = secrets.token_hex(32)
TOKEN = "ep-token-" + secrets.token_hex(12)
HP = {"n_epochs": 1, "batch_size": 4, "max_steps": 6, "warmup_steps": 0}
N = 4            # rows replayed
MAX_TOKENS = 8


@pytest.fixture(scope="module")
def world(build_dir, database_url, redis_url, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("replays")
    net = dict(endpoint_allow_http="true", endpoint_allow_cidrs="127.0.0.1/32")
    srv, name = _api_server(build_dir, database_url, redis_url, tmp_path_factory,
                            max_upload_bytes=1 << 22, secret_key=SECRET_KEY, **net)
    plat = Platform(srv, build_dir, redis_url, tmp, FT_SECRET_KEY=SECRET_KEY,
                    FT_ENDPOINT_ALLOW_HTTP="true", FT_ENDPOINT_ALLOW_CIDRS="127.0.0.1/32",
                    FT_DEPLOY_INTERVAL_MS="400", FT_DEPLOY_PROBE_TIMEOUT_MS="1500",
                    FT_EXPERIMENT_INTERVAL_MS="200",
                    FT_JUDGE_ALLOW_HTTP="true", FT_JUDGE_ALLOW_CIDRS="127.0.0.1/32",
                    FT_JUDGE_BACKOFF_MS="100", FT_JUDGE_MAX_ATTEMPTS="2",
                    FT_REPLAY_BACKOFF_MS="100", FT_REPLAY_MAX_ATTEMPTS="2")
    serve, judge = None, Judge()
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
        rows = [json.loads(x) for x in (DATA / "validation.jsonl").read_text().splitlines()[:N - 1]]
        rows.append({"messages": [{"role": "user", "content": "Where is my parcel?"},   # one turn
                                  {"role": "assistant", "content": "On its way."}]})
        content = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode()
        f = upload(srv, content, name="replay.jsonl")
        yield dict(srv=srv, plat=plat, serve=serve, judge=judge, ep=ep.json()["id"],
                   names=[j["fine_tuned_model"] for j in jobs], rows=rows, file=f["id"],
                   content=content)
    finally:   # every process goes, whatever failed first
        try:
            if serve:
                serve.stop()
        finally:
            try:
                plat.stop()
            finally:
                judge.srv.shutdown()
                rc = srv.stop()
                with psycopg.connect(database_url, autocommit=True) as c:
                    c.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    assert rc == 0, srv.log_path.read_text()[-4000:]


def wait(cond, what, timeout=120):
    deadline = time.time() + timeout
    while not (v := cond()):
        assert time.time() < deadline, f"never: {what}"
        time.sleep(0.1)
    return v


def api_get(srv, path, key=None):
    with client(srv, key) as c:
        return c.get(path).json()


def post(w, path, key=None, **body):
    with client(w["srv"], key) as c:
        return c.post(path, json=body)


def experiment(w, start=True, **fields):
    body = dict(name="replay", endpoint_id=w["ep"],
                arms=[{"name": "control", "model": "bot/1", "weight": 0.5},
                      {"name": "candidate", "model": "bot/2", "weight": 0.5}])
    body.update(fields)
    r = post(w, "/v1/experiments", **{k: v for k, v in body.items() if v is not None})
    assert r.status_code == 200, r.text
    if start:
        assert post(w, f"/v1/experiments/{r.json()['id']}/start").status_code == 200
    return r.json()


def prompt(row):
    """The row's messages before its reference answer (the evaluation format)."""
    return row["messages"][:-1]


def direct(w, model, messages):
    r = httpx.post(w["serve"].url + "/v1/chat/completions",
                   headers={"Authorization": f"Bearer {TOKEN}"},
                   json={"model": model, "messages": messages, "max_tokens": MAX_TOKENS,
                         "temperature": 0}, timeout=120)
    assert r.status_code == 200, r.text
    return r.json()["choices"][0]["message"]["content"]


def wait_replay(w, eid, rid):
    return wait(lambda: (lambda r: r if r["status"] in ("succeeded", "failed") else None)(
        api_get(w["srv"], f"/v1/experiments/{eid}/replays/{rid}")), f"replay {rid} ended")


def test_a_replay_answers_every_row_on_both_arms_and_the_judge_decides(world):
    w = world
    e = experiment(w, judge={"url": w["judge"].url, "model": "judge-m", "max_tokens": 32})
    eid = e["id"]
    w["judge"].mode, w["judge"].requests = "fair", []
    r = post(w, f"/v1/experiments/{eid}/replays", file=w["file"], max_tokens=MAX_TOKENS)
    assert r.status_code == 202, r.text
    rp = r.json()
    assert rp["status"] == "queued" and rp["rows"] == N and rp["max_rows"] == 200
    assert rp["object"] == "experiment.replay" and rp["experiment"] == eid
    rp = wait_replay(w, eid, rp["id"])
    assert rp["status"] == "succeeded", rp
    assert rp["rows_sent"] == N and rp["judgments_created"] == N and rp["error"] is None
    assert rp["arms"] == [{"arm": "control", "position": 0, "answers": N},
                          {"arm": "candidate", "position": 1, "answers": N}]
    full = api_get(w["srv"], f"/v1/experiments/{eid}/replays/{rp['id']}?rows=true")
    want = [{"control": direct(w, w["names"][0], prompt(row)),
             "candidate": direct(w, w["names"][1], prompt(row))} for row in w["rows"]]
    assert [d["answers"] for d in full["data"]] == want
    assert [d["prompt"] for d in full["data"]] == [prompt(row) for row in w["rows"]]
    assert [d["line"] for d in full["data"]] == list(range(1, N + 1))
    assert any(a["control"] != a["candidate"] for a in want), "the versions must differ"
    # one judgment per row: the candidate against the control, with both texts
    def decided():
        js = api_get(w["srv"], f"/v1/experiments/{eid}/judgments")["data"]
        return js if len(js) == N and all(j["status"] == "done" for j in js) else None
    # the judge reads a single user turn as it is, a conversation as "role: content" paragraphs
    question = ["\n\n".join(f"{m['role']}: {m['content']}" for m in prompt(row))
                if len(prompt(row)) > 1 else prompt(row)[0]["content"] for row in w["rows"]]
    assert question[-1] == "Where is my parcel?"
    assert len(set(question)) == N
    js = sorted(wait(decided, "the judge decided the replay's judgments"),
                key=lambda j: question.index(j["prompt"]))
    for j, a, q in zip(js, want, question):
        assert (j["arm_a"], j["arm_b"], j["source"], j["judge"]) == (
            "control", "candidate", "llm", "judge-m")
        assert (j["prompt"], j["answer_a"], j["answer_b"]) == (q, a["control"], a["candidate"])
        # neither answer says GOOD: the fair judge prefers B in both orders, a tie
        assert j["outcome"] == "tie" and j["verdicts"]["consistent"] is False
    assert len(w["judge"].requests) == 2 * N
    res = wait(lambda: (lambda x: x if x.get("judgments", {}).get("done") == N else None)(
        api_get(w["srv"], f"/v1/experiments/{eid}/results")), "the results count them")
    assert [a["judgments"] for a in res["arm_stats"]] == [N, N]
    # listed, newest first
    lst = api_get(w["srv"], f"/v1/experiments/{eid}/replays")
    assert [x["id"] for x in lst["data"]] == [rp["id"]]


def test_without_a_judge_only_the_answers_are_kept(world):
    w = world
    eid = experiment(w, name="nojudge")["id"]
    r = post(w, f"/v1/experiments/{eid}/replays", file=w["file"], max_rows=2,
             max_tokens=MAX_TOKENS)
    assert r.status_code == 202, r.text
    rp = wait_replay(w, eid, r.json()["id"])
    assert rp["status"] == "succeeded" and rp["rows"] == rp["rows_sent"] == 2
    assert rp["judgments_created"] == 0
    assert [a["answers"] for a in rp["arms"]] == [2, 2]
    assert api_get(w["srv"], f"/v1/experiments/{eid}/judgments")["data"] == []
    full = api_get(w["srv"], f"/v1/experiments/{eid}/replays/{rp['id']}?rows=true")
    assert full["data"][1]["answers"]["candidate"] == direct(w, w["names"][1],
                                                             prompt(w["rows"][1]))


def test_bad_input_names_the_field(world):
    w = world
    eid = experiment(w, name="bad")["id"]
    path = f"/v1/experiments/{eid}/replays"
    _, okey = w["srv"].make_team("other-replays")
    theirs = upload(w["srv"], w["content"], key=okey)
    bad_rows = [json.dumps(r) for r in w["rows"][:2]] + ['{"messages": "hello"}']
    bad = upload(w["srv"], ("\n".join(bad_rows) + "\n").encode(), name="bad.jsonl")
    for body, status, param in (
            ({"file": theirs["id"]}, 404, "file"),
            ({"file": "file-" + "0" * 24}, 404, "file"),
            ({"file": "nope"}, 400, "file"),
            ({}, 400, "file"),
            ({"file": w["file"], "max_rows": 0}, 400, "max_rows"),
            ({"file": w["file"], "max_rows": 2001}, 400, "max_rows"),
            ({"file": w["file"], "max_tokens": 0}, 400, "max_tokens"),
            ({"file": w["file"], "extra": 1}, 400, "extra")):
        r = post(w, path, **body)
        assert r.status_code == status and r.json()["error"]["param"] == param, (body, r.text)
    r = post(w, path, file=bad["id"])
    assert r.status_code == 400 and r.json()["error"]["param"] == "file", r.text
    assert "line 3" in r.json()["error"]["message"], r.text
    # no endpoint; a draft; a stopped one
    nowhere = experiment(w, name="nowhere", endpoint_id=None)["id"]
    r = post(w, f"/v1/experiments/{nowhere}/replays", file=w["file"])
    assert r.status_code == 409 and r.json()["error"]["param"] == "endpoint_id", r.text
    draft = experiment(w, name="draft", start=False)["id"]
    r = post(w, f"/v1/experiments/{draft}/replays", file=w["file"])
    assert r.status_code == 409 and r.json()["error"]["code"] == "experiment_state", r.text
    stopped = experiment(w, name="stopped")["id"]
    r = post(w, f"/v1/experiments/{stopped}/stop")
    assert r.status_code == 200, r.text
    r = post(w, f"/v1/experiments/{stopped}/replays", file=w["file"])
    assert r.status_code == 409 and "stopped" in r.json()["error"]["message"], r.text
    # nothing was made
    assert api_get(w["srv"], path)["data"] == []


def test_other_teams_see_nothing(world):
    w = world
    eid = experiment(w, name="private")["id"]
    r = post(w, f"/v1/experiments/{eid}/replays", file=w["file"], max_rows=1, max_tokens=2)
    assert r.status_code == 202, r.text
    rid = r.json()["id"]
    _, okey = w["srv"].make_team("nosy-replays")
    theirs = upload(w["srv"], w["content"], key=okey)
    with client(w["srv"], okey) as c:
        assert c.get(f"/v1/experiments/{eid}/replays").status_code == 404
        assert c.get(f"/v1/experiments/{eid}/replays/{rid}").status_code == 404
        r = c.post(f"/v1/experiments/{eid}/replays", json={"file": theirs["id"]})
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found", r.text
    # the replay under another experiment's path is not found either
    other = experiment(w, name="other")["id"]
    assert post(w, f"/v1/experiments/{other}/replays", file=w["file"]).status_code == 202
    with client(w["srv"]) as c:
        assert c.get(f"/v1/experiments/{other}/replays/{rid}").status_code == 404
    wait_replay(w, eid, rid)


def test_ftctl_experiments_replay(world, build_dir, tmp_path):
    from api_helpers import ftctl
    w = world
    eid = experiment(w, name="cli")["id"]
    local = tmp_path / "prompts.jsonl"
    local.write_bytes(w["content"])   # a local file: uploaded first
    p = ftctl(w["srv"], build_dir, "--json", "experiments", "replay", eid, str(local),
              "--max-rows", "2", "--max-tokens", str(MAX_TOKENS), "--wait")
    rp = json.loads(p.stdout)
    assert rp["status"] == "succeeded" and rp["rows_sent"] == 2 and rp["max_tokens"] == MAX_TOKENS
    p = ftctl(w["srv"], build_dir, "experiments", "replay", eid, w["file"], "--max-rows", "1",
              "--wait")
    assert "succeeded  rows 1 of 1  judgments 0" in p.stdout
    assert "control                  1 answers" in p.stdout
    p = ftctl(w["srv"], build_dir, "experiments", "replay", eid, w["file"], "--max-rows", "2001",
              check=1)
    assert "(param: max_rows)" in p.stderr


def test_an_endpoint_away_is_retried_then_the_replay_fails_naming_the_arm(world):
    """replay_max_attempts = 2 (the fixture): two attempts, then failed with the error."""
    w = world
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()   # nothing listens there now
    r = post(w, "/v1/endpoints", name="away", kind="ftserve", url=f"http://127.0.0.1:{port}",
             api_key=TOKEN)
    assert r.status_code == 200, r.text
    eid = experiment(w, name="away", endpoint_id=r.json()["id"])["id"]
    r = post(w, f"/v1/experiments/{eid}/replays", file=w["file"], max_rows=1)
    assert r.status_code == 202, r.text
    rp = wait_replay(w, eid, r.json()["id"])
    assert rp["status"] == "failed" and rp["attempts"] == 2 and rp["rows_sent"] == 0, rp
    assert 'arm "control"' in rp["error"] and "did not answer" in rp["error"], rp
    assert rp["finished_at"] is not None


class FlakyProxy:
    """Forwards POST /v1/chat/completions to the real ft-serve, except the
    requests whose number (from 1) is in fail, answered 503: a fault injector
    in front of the real server. Anything else is 404."""

    def __init__(self, target, fail):
        import http.server
        import threading
        self.target, self.fail, self.seen = target, set(fail), []
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["content-length"]))
                outer.seen.append(json.loads(body))
                if self.path != "/v1/chat/completions" or len(outer.seen) in outer.fail:
                    code, out = (503 if self.path == "/v1/chat/completions" else 404), \
                        b'{"error": {"message": "injected"}}'
                else:
                    r = httpx.post(outer.target + self.path, content=body, timeout=120,
                                   headers={"Authorization": self.headers["authorization"],
                                            "Content-Type": "application/json"})
                    code, out = r.status_code, r.content
                self.send_response(code)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def do_GET(self):
                self.send_response(404)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.srv.server_address[1]}"
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()


def test_a_retry_resumes_where_the_failed_attempt_stopped(world):
    """The third call (row 1, the control) fails: attempt 2 starts at row 1,
    row 0's answers are kept and not asked again, and no judgment is doubled."""
    w = world
    proxy = FlakyProxy(w["serve"].url, fail={3})
    try:
        r = post(w, "/v1/endpoints", name="flaky", kind="ftserve", url=proxy.url, api_key=TOKEN)
        assert r.status_code == 200, r.text
        eid = experiment(w, name="flaky", endpoint_id=r.json()["id"],
                         judge={"url": w["judge"].url, "model": "judge-m"})["id"]
        r = post(w, f"/v1/experiments/{eid}/replays", file=w["file"], max_tokens=MAX_TOKENS)
        assert r.status_code == 202, r.text
        rp = wait_replay(w, eid, r.json()["id"])
        assert rp["status"] == "succeeded" and rp["attempts"] == 2, rp
        assert rp["rows_sent"] == N and rp["judgments_created"] == N
        # 2 calls per row, plus the failed one asked again
        asked = [(b["model"], b["messages"]) for b in proxy.seen]
        assert len(asked) == 2 * N + 1 and asked[2] == asked[3]
        assert asked[2] == (w["names"][0], prompt(w["rows"][1]))
        assert all(b["temperature"] == 0 and b["max_tokens"] == MAX_TOKENS for b in proxy.seen)
        full = api_get(w["srv"], f"/v1/experiments/{eid}/replays/{rp['id']}?rows=true")
        assert [d["answers"] for d in full["data"]] == [
            {"control": direct(w, w["names"][0], prompt(row)),
             "candidate": direct(w, w["names"][1], prompt(row))} for row in w["rows"]]
        js = api_get(w["srv"], f"/v1/experiments/{eid}/judgments")["data"]
        assert len(js) == N and len({j["prompt"] for j in js}) == N
    finally:
        proxy.srv.shutdown()
