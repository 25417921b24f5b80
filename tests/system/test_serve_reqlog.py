"""The request log end to end: ft-serve (the bundled tiny model, one peft
adapter) writes a record per request onto a private Redis, ft-scheduler
persists them into PostgreSQL's request_log (migration 0006).

The peer of every row is what the client itself saw: the response id (the
body's "id", or the x-request-id header of an error), the usage of the
answer (non-streamed: `usage`; streamed: the include_usage chunk), the text
it received, the HTTP status. Checked: a mixed load (chat and completions,
streamed and not, base and adapter, a client that goes away, a 400, a 404)
has exactly one row per request with those numbers; the same after the
scheduler is killed with SIGKILL mid-load and restarted; entries a leader
read but never acknowledged are read again by the next and stored once;
with Redis stopped, requests are answered at once and their records wait
in ft-serve's queue (the metrics count them), then all arrive when Redis is
back; a queue bound drops the oldest records and counts them.
"""
import concurrent.futures
import json
import os
import signal
import subprocess
import time

import httpx
import openai
import psycopg
import pytest
import redis

from conftest import free_port, run
from test_serve import MODEL, PROMPTS, Server, make_adapter

BASE = "ftplat-tiny-cs"
TEAM = "team-" + "A" * 24
VERSION = "mv-" + "V" * 24
DEPLOYMENT = "dep-" + "D" * 24
BASE_VERSION = "mv-" + "B" * 24


class RedisServer:
    """A private redis-server (append-only file, fsync always) that the test
    can stop and start again on the same port with the same data."""

    def __init__(self, tmp):
        self.dir, self.port = tmp, free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.p = None

    def start(self):
        self.p = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--dir", str(self.dir),
             "--appendonly", "yes", "--appendfsync", "always", "--save", "",
             "--maxmemory-policy", "noeviction"],
            stdout=open(self.dir / "redis.log", "a"), stderr=subprocess.STDOUT)
        r = redis.Redis.from_url(self.url)
        for _ in range(200):
            try:
                r.ping()
                return self
            except redis.ConnectionError:
                time.sleep(0.05)
        raise AssertionError("redis-server did not start")

    def stop(self):
        if self.p and self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)  # SHUTDOWN: the AOF is complete
            self.p.wait(30)
        self.p = None


class Sched:
    def __init__(self, build_dir, db, rurl, tmp):
        self.build_dir, self.db, self.rurl, self.tmp = build_dir, db, rurl, tmp
        self.p, self.n = None, 0

    def start(self):
        env = dict(os.environ, FT_DATABASE_URL=self.db, FT_REDIS_URL=self.rurl,
                   FT_SCHED_TICK_MS="50", FT_LOG_LEVEL="info")
        self.n += 1
        self.p = subprocess.Popen([str(self.build_dir / "scheduler" / "ft-scheduler")], env=env,
                                  stdout=open(self.tmp / f"sched{self.n}.log", "w"),
                                  stderr=subprocess.STDOUT)
        return self

    def kill9(self):
        self.p.kill()
        self.p.wait()

    def stop(self):
        if self.p and self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            self.p.wait(30)
            assert self.p.returncode == 0, (self.tmp / f"sched{self.n}.log").read_text()[-3000:]


@pytest.fixture(scope="module")
def world(build_dir, database_url, tmp_path_factory):
    """A migrated database, a private Redis, ft-serve holding the base and
    adapter a1 (team, version, deployment, texts logged), a scheduler."""
    tmp = tmp_path_factory.mktemp("reqlog")
    name = "rl_" + os.urandom(6).hex()
    with psycopg.connect(database_url, autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    db = database_url.rpartition("/")[0] + "/" + name
    run([str(build_dir / "migrations" / "ft-migrate"), "--database-url", db, "up"])
    rs = RedisServer(tmp).start()
    make_adapter(tmp / "a1", 4, ["q_proj", "v_proj"], 1)
    srv = Server(build_dir, tmp, {}, max_seqs=8, redis_url=rs.url, version_id=BASE_VERSION,
                 token="op-token")
    r = httpx.post(srv.url + "/v1/load_lora_adapter", headers={"Authorization": "Bearer op-token"},
                   json={"lora_name": "a1", "lora_path": str(tmp / "a1"), "version_id": VERSION,
                         "deployment_id": DEPLOYMENT, "log_texts": True})
    assert r.status_code == 200, r.text
    sched = Sched(build_dir, db, rs.url, tmp).start()
    w = dict(db=db, redis=rs, serve=srv, sched=sched, tmp=tmp)
    yield w
    srv.stop()
    w["sched"].stop()
    rs.stop()
    with psycopg.connect(database_url, autocommit=True) as c:
        c.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def client(w):
    return openai.OpenAI(base_url=w["serve"].url + "/v1", api_key="op-token", max_retries=0)


# ---- one request each, returning what the client saw -------------------

def completion(w, model, prompt, n, stream):
    c = client(w)
    if not stream:
        r = c.completions.create(model=model, prompt=prompt, max_tokens=n, temperature=0)
        return dict(id=r.id, status=200, usage=(r.usage.prompt_tokens, r.usage.completion_tokens),
                    text=r.choices[0].text, finish=r.choices[0].finish_reason, stream=False)
    text, usage, rid, finish = "", None, None, None
    for ch in c.completions.create(model=model, prompt=prompt, max_tokens=n, temperature=0,
                                   stream=True, stream_options={"include_usage": True}):
        rid = ch.id
        if ch.choices:
            text += ch.choices[0].text
            finish = ch.choices[0].finish_reason or finish
        if ch.usage:
            usage = (ch.usage.prompt_tokens, ch.usage.completion_tokens)
    return dict(id=rid, status=200, usage=usage, text=text, finish=finish, stream=True)


def chat(w, model, prompt, n, stream):
    c = client(w)
    msgs = [{"role": "user", "content": prompt}]
    if not stream:
        r = c.chat.completions.create(model=model, messages=msgs, max_tokens=n, temperature=0)
        return dict(id=r.id, status=200, usage=(r.usage.prompt_tokens, r.usage.completion_tokens),
                    text=r.choices[0].message.content, finish=r.choices[0].finish_reason,
                    stream=False)
    text, usage, rid, finish = "", None, None, None
    for ch in c.chat.completions.create(model=model, messages=msgs, max_tokens=n, temperature=0,
                                        stream=True, stream_options={"include_usage": True}):
        rid = ch.id
        if ch.choices:
            text += ch.choices[0].delta.content or ""
            finish = ch.choices[0].finish_reason or finish
        if ch.usage:
            usage = (ch.usage.prompt_tokens, ch.usage.completion_tokens)
    return dict(id=rid, status=200, usage=usage, text=text, finish=finish, stream=True)


def disconnect(w):
    """A stream the client closes after three events."""
    body = {"model": "a1", "prompt": PROMPTS[1], "max_tokens": 400, "temperature": 0.8,
            "seed": 1, "stream": True, "ignore_eos": True}  # runs on until the client goes
    with httpx.stream("POST", w["serve"].url + "/v1/completions", json=body, timeout=30,
                      headers={"Authorization": "Bearer op-token"}) as r:
        assert r.status_code == 200
        rid = r.headers["x-request-id"]
        seen = 0
        for line in r.iter_lines():
            if line.startswith("data: "):
                assert json.loads(line[6:])["id"] == rid
                seen += 1
            if seen == 3:
                break
    return dict(id=rid, status=200, usage=None, gone=True, stream=True)


def refused(w, body, status):
    r = httpx.post(w["serve"].url + "/v1/completions", json=body, timeout=30,
                   headers={"Authorization": "Bearer op-token"})
    assert r.status_code == status, r.text
    return dict(id=r.headers["x-request-id"], status=status, usage=None,
                code=r.json()["error"]["code"], stream=bool(body.get("stream")))


def mixed_load(w, n, hooks=None):
    """n requests of every kind, 4 at a time; what each client saw. hooks:
    {i: f}, f() runs just before request i starts."""
    kinds = [
        lambda i: completion(w, BASE, PROMPTS[i % 4], 4 + i % 7, False),
        lambda i: completion(w, "a1", PROMPTS[i % 4], 4 + i % 5, True),
        lambda i: chat(w, "a1", PROMPTS[i % 4], 3 + i % 6, False),
        lambda i: chat(w, BASE, PROMPTS[i % 4], 5 + i % 4, True),
        lambda i: refused(w, {"model": BASE, "prompt": "x", "temperature": 9}, 400),
        lambda i: disconnect(w),
        lambda i: refused(w, {"model": "nope", "prompt": "x", "stream": True}, 404),
    ]
    def one(i):
        if hooks and i in hooks:
            hooks[i]()
        return kinds[i % len(kinds)](i)
    with concurrent.futures.ThreadPoolExecutor(4) as ex:
        return list(ex.map(one, range(n)))


def rows(db, ids=None):
    with psycopg.connect(db) as c:
        c.row_factory = psycopg.rows.dict_row
        return c.execute("SELECT * FROM request_log").fetchall()


def wait_rows(db, n, timeout=60):
    deadline = time.time() + timeout
    got = []
    while time.time() < deadline:
        got = rows(db)
        if len(got) >= n:
            time.sleep(0.3)  # anything more would be a duplicate: let it show
            return rows(db)
        time.sleep(0.1)
    raise AssertionError(f"{len(got)} request_log rows after {timeout} s, want {n}")


def check_rows(seen, got):
    """One row per request, each with what its client saw."""
    assert len(got) == len(seen)
    by_id = {r["id"]: r for r in got}
    assert set(by_id) == {s["id"] for s in seen}
    for s in seen:
        r = by_id[s["id"]]
        assert r["stream"] == s["stream"], (s, r)
        assert r["status"] == s["status"], (s, r)
        assert r["base_model"] == BASE and r["team_id"] is None  # the endpoint's token: no team
        assert r["latency_ms"] > 0
        if s.get("code"):  # refused before generating: no usage, no tokens
            assert r["error_code"] == s["code"] and r["prompt_tokens"] is None
            assert r["completion_tokens"] is None and r["finish_reason"] is None
            assert r["ttft_ms"] is None
            continue
        assert r["error_code"] is None and 0 < r["ttft_ms"] <= r["latency_ms"]
        if s.get("gone"):  # the sequence was cancelled when the client went
            assert r["finish_reason"] == "cancelled" and 3 <= r["completion_tokens"] < 400
            continue
        assert (r["prompt_tokens"], r["completion_tokens"]) == s["usage"], (s, r)
        assert r["finish_reason"] == s["finish"]
        if r["adapter"] == "a1":  # the adapter's metadata and its texts
            assert (r["version_id"], r["deployment_id"]) == (VERSION, DEPLOYMENT)
            assert r["completion"] == s["text"]
            assert (r["kind"] == "completion") == (r["prompt"] in PROMPTS)
        else:  # the base: its configured version, no texts
            assert r["adapter"] is None and r["version_id"] == BASE_VERSION
            assert r["deployment_id"] is None and r["prompt"] is None and r["completion"] is None


@pytest.fixture(autouse=True)
def up_again(request):
    """A test that stops Redis or the scheduler and then fails leaves them
    running again for the next, so that one failure reads as one."""
    yield
    if "world" not in request.fixturenames:
        return
    world = request.getfixturevalue("world")
    if world["redis"].p is None:
        world["redis"].start()
    if world["sched"].p is None or world["sched"].p.poll() is not None:
        world["sched"].start()


def stream_ids(r):
    """The record ids on the stream, in order (a retried XADD may hold one twice)."""
    return [json.loads(f[b"r"])["id"] for _, f in r.xrange("ft:requests")]


def wait_drained(r, timeout=60):
    """Every entry stored, acknowledged and deleted: the leader XACKs and
    XDELs a batch just after its COMMIT, so the rows can show first."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if r.xlen("ft:requests") == 0 and r.xpending("ft:requests", "persist")["pending"] == 0:
            return
        time.sleep(0.05)
    raise AssertionError(f"ft:requests still holds {r.xlen('ft:requests')} entries after {timeout} s")


def clear(w):
    with psycopg.connect(w["db"], autocommit=True) as c:
        c.execute("DELETE FROM request_log")


def metric(w, name):
    for line in httpx.get(w["serve"].url + "/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(name)


def test_one_row_per_request_with_the_usage_the_client_saw(world):
    clear(world)
    seen = mixed_load(world, 35)
    got = wait_rows(world["db"], len(seen))
    check_rows(seen, got)
    kinds = {(r["kind"], r["stream"], r["adapter"]) for r in got}
    assert {("completion", False, None), ("completion", True, "a1"), ("chat", False, "a1"),
            ("chat", True, None)} <= kinds
    wait_drained(redis.Redis.from_url(world["redis"].url))  # deleted once stored


def test_scheduler_killed_mid_load_stores_each_request_once(world):
    clear(world)
    stored = {}

    def kill():  # SIGKILL: no goodbye; the leader lock goes with the session
        stored["before"] = len(rows(world["db"]))
        world["sched"].kill9()

    # killed a third of the way, restarted at two thirds: records pile up on
    # the stream meanwhile, and requests are in flight at both moments
    seen = mixed_load(world, 70, {23: kill, 46: world["sched"].start})
    assert 0 < stored["before"] < 70
    got = wait_rows(world["db"], len(seen))
    check_rows(seen, got)
    wait_drained(redis.Redis.from_url(world["redis"].url))


def test_a_new_leader_reads_what_the_old_one_left_unacknowledged(world):
    """The two crash windows, made on purpose: entries read by the leader's
    consumer but neither stored nor acknowledged, and entries stored whose
    XACK never came. The next leader stores the first once and the second
    not again."""
    clear(world)
    r = redis.Redis.from_url(world["redis"].url)
    wait_drained(r)  # nothing left from the tests before
    world["sched"].stop()
    seen = mixed_load(world, 14)
    want = {s["id"] for s in seen}
    deadline = time.time() + 60
    while not want <= set(stream_ids(r)) and time.time() < deadline:
        time.sleep(0.05)
    # every request's record, and nothing else (an XADD retried after a slow
    # reply may have added one twice: the scheduler must store it once)
    ids = stream_ids(r)
    assert set(ids) == want
    # the old leader read everything (pending now) and stored only the first half
    got = r.xreadgroup("persist", "leader", {"ft:requests": ">"}, count=1000)
    entries = got[0][1]
    assert len(entries) == len(ids)
    assert r.xpending("ft:requests", "persist")["pending"] == len(ids)
    half = list({h["id"]: h for h in (json.loads(f[b"r"]) for _, f in entries[:len(ids) // 2])}
                .values())
    with psycopg.connect(world["db"], autocommit=True) as c:
        for rec in half:
            c.execute("INSERT INTO request_log (id, created_at, kind, stream, base_model,"
                      " latency_ms, status) VALUES (%s, now(), %s, %s, %s, %s, %s)",
                      (rec["id"], rec["kind"], rec["stream"], rec["base_model"],
                       rec["latency_ms"], rec["status"]))
    world["sched"].start()
    got = wait_rows(world["db"], len(seen))
    assert sorted(x["id"] for x in got) == sorted(s["id"] for s in seen)
    deadline = time.time() + 60
    while r.xpending("ft:requests", "persist")["pending"] and time.time() < deadline:
        time.sleep(0.05)
    assert r.xpending("ft:requests", "persist")["pending"] == 0 and r.xlen("ft:requests") == 0
    # the rows the old leader stored were left as they were (not stored twice)
    stored = {x["id"]: x for x in got}
    assert all(stored[h["id"]]["prompt_tokens"] is None for h in half)
    check_rows([s for s in seen if s["id"] not in {h["id"] for h in half}],
               [x for x in got if x["id"] not in {h["id"] for h in half}])


def test_redis_down_then_back_loses_nothing(world):
    clear(world)
    sent0 = metric(world, "ftserve_request_log_sent_total")
    world["redis"].stop()
    seen = mixed_load(world, 21)
    # every request was answered without Redis; the records wait in ft-serve's queue
    deadline = time.time() + 60
    while metric(world, "ftserve_request_log_queue_depth") < len(seen) and time.time() < deadline:
        time.sleep(0.05)
    assert metric(world, "ftserve_request_log_queue_depth") == len(seen)
    assert metric(world, "ftserve_request_log_redis_up") == 0
    assert metric(world, "ftserve_request_log_dropped_total") == 0
    time.sleep(2)  # down a while (the sender backs off, retrying)
    world["redis"].start()
    got = wait_rows(world["db"], len(seen))
    check_rows(seen, got)
    assert metric(world, "ftserve_request_log_queue_depth") == 0
    assert metric(world, "ftserve_request_log_sent_total") - sent0 >= len(seen)
    assert metric(world, "ftserve_request_log_redis_up") == 1


def test_a_full_queue_drops_the_oldest_and_counts_them(build_dir, tmp_path):
    """serve_log_queue = 3 with no Redis yet: of 5 requests the 3 newest
    wait, the 2 oldest are dropped and counted; a Redis started later on
    that port receives exactly the 3."""
    rs = RedisServer(tmp_path)
    srv = Server(build_dir, tmp_path, {}, redis_url=rs.url, log_queue=3)
    try:
        ids = []
        for i in range(5):
            r = httpx.post(srv.url + "/v1/completions",
                           json={"model": BASE, "prompt": PROMPTS[i % 4], "max_tokens": 2})
            assert r.status_code == 200
            ids.append(r.json()["id"])
        w = {"serve": srv}
        assert metric(w, "ftserve_request_log_dropped_total") == 2
        assert metric(w, "ftserve_request_log_queue_depth") == 3
        rs.start()
        r = redis.Redis.from_url(rs.url)
        deadline = time.time() + 20
        while r.xlen("ft:requests") < 3 and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
        got = [json.loads(f[b"r"])["id"] for _, f in r.xrange("ft:requests")]
        assert got == ids[2:]
        assert metric(w, "ftserve_request_log_queue_depth") == 0
    finally:
        srv.stop()
        rs.stop()


def test_byte_pieces_and_sampled_embeddings_equal_transformers(world):
    """serve_embed_percent (25, the default) of the requests, chosen by the
    id's hash, carry the mean of the final normed hidden states over the
    prompt: equal to transformers' hidden_states[-1] averaged over the same
    tokens (fp32, 1e-4 absolute); every row counts the prompt's byte pieces
    (tokens that decode alone to U+FFFD) as the tokenizers package decodes."""
    import base64
    import hashlib

    import numpy as np
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    clear(world)
    c = client(world)
    prompts = [f"Order {i}: where is it? \U0001f642 \u2603 \U0001d11e {i * 7}" for i in range(40)]
    ids = [c.completions.create(model=BASE, prompt=p, max_tokens=3, temperature=0).id
           for p in prompts]
    got = {r["id"]: r for r in wait_rows(world["db"], len(ids))}
    tok = AutoTokenizer.from_pretrained(str(MODEL))
    model = AutoModelForCausalLM.from_pretrained(str(MODEL), torch_dtype=torch.float32).eval()
    embedded = 0
    for rid, p in zip(ids, prompts):
        r = got[rid]
        d = hashlib.sha256(rid.encode()).digest()
        assert (r["embedding"] is not None) == ((d[0] | d[1] << 8) % 100 < 25), rid
        pid = tok(p)["input_ids"]
        assert r["prompt_tokens"] == len(pid)
        assert r["prompt_byte_tokens"] == sum("\ufffd" in tok.decode([i]) for i in pid)
        assert 0 <= r["completion_byte_tokens"] <= r["completion_tokens"]
        if r["embedding"] is None:
            continue
        embedded += 1
        mine = np.frombuffer(base64.b64decode(r["embedding"]), "<f4")
        with torch.no_grad():
            h = model(torch.tensor([pid]), output_hidden_states=True).hidden_states[-1][0]
        assert np.abs(mine - h.mean(0).numpy()).max() < 1e-4, rid
    assert embedded >= 3 and sum(r["prompt_byte_tokens"] for r in got.values()) > 0
