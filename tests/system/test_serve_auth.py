"""ft-serve accepting the platform's API keys: keys made by the real ft-api
(its admin command and its /v1/keys route) on ft-api's own database, which
ft-serve reads (serve_database_url) through the key code both share
(common/services ft/apikey.h).

Checked: a key of team A uses an adapter loaded for team A; team B's key gets
404 model_not_found for it, byte for byte the answer for a name that does
not exist, and does not see it in /v1/models; the base and adapters without
a team serve everyone; the request log names each key's team; loading
adapters needs the endpoint's token (still accepted, for every model); a
wrong, malformed or missing key is a 401 in OpenAI's error shape; a revoked
key is refused at once when ft-api's NOTIFY arrives, and within
key_cache_ttl_s when notifications are off (the cache's stated bound); a
key's rate_limit_per_min holds across two ft-serves sharing a Redis (429
rate_limit_exceeded with Retry-After, what ft-api answers), and ft-serve
writes the key's last_used_at.
"""
import json
import secrets
import string
import time

import httpx
import openai
import psycopg
import pytest
import redis

from test_serve import PROMPTS, Server, make_adapter

BASE = "ftplat-tiny-cs"
TTL_S = 3


@pytest.fixture(scope="module")
def world(api_server, build_dir, redis_url, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("serve_auth")
    rurl = redis_url.rsplit("/", 1)[0] + "/12"
    redis.Redis.from_url(rurl).flushdb()
    team_a, key_a = api_server.team, api_server.key  # acme, admin
    team_b, key_b = api_server.make_team("beta")
    make_adapter(tmp / "a1", 4, ["q_proj", "v_proj"], 1)
    srv = Server(build_dir, tmp, {}, env={"FT_KEY_CACHE_TTL_S": str(TTL_S)}, token="op-token",
                 database_url=api_server.db_url, redis_url=rurl)
    op = {"Authorization": "Bearer op-token"}
    for body in ({"lora_name": "a1", "lora_path": str(tmp / "a1"), "team_id": team_a},
                 {"lora_name": "open", "lora_path": str(tmp / "a1")}):
        r = httpx.post(srv.url + "/v1/load_lora_adapter", headers=op, json=body)
        assert r.status_code == 200, r.text
    yield dict(srv=srv, team_a=team_a, key_a=key_a, team_b=team_b, key_b=key_b, rurl=rurl,
               api=api_server)
    srv.stop()


def oa(w, key):
    return openai.OpenAI(base_url=w["srv"].url + "/v1", api_key=key, max_retries=0)


def complete(w, key, model):
    return oa(w, key).completions.create(model=model, prompt=PROMPTS[0], max_tokens=3,
                                         temperature=0)


def post(w, key, body, path="/v1/completions"):
    h = {"Authorization": f"Bearer {key}"} if key is not None else {}
    return httpx.post(w["srv"].url + path, headers=h, json=body, timeout=60)


def test_a_teams_adapter_is_its_own(world):
    w = world
    a = complete(w, w["key_a"], "a1")
    assert a.usage.completion_tokens == 3
    # team B: the same answer as for a name that does not exist
    theirs = post(w, w["key_b"], {"model": "a1", "prompt": "x", "max_tokens": 2})
    missing = post(w, w["key_b"], {"model": "zz", "prompt": "x", "max_tokens": 2})
    assert theirs.status_code == missing.status_code == 404
    assert theirs.json()["error"]["code"] == "model_not_found"
    assert theirs.json()["error"]["param"] == "model"
    assert theirs.text.replace('\\"a1\\"', "M") == missing.text.replace('\\"zz\\"', "M")
    with pytest.raises(openai.NotFoundError):
        complete(w, w["key_b"], "a1")
    with pytest.raises(openai.NotFoundError):  # chat too
        oa(w, w["key_b"]).chat.completions.create(
            model="a1", messages=[{"role": "user", "content": "hi"}], max_tokens=2)
    # the base and the adapter without a team serve both teams
    for key in (w["key_a"], w["key_b"]):
        for model in (BASE, "open"):
            assert complete(w, key, model).usage.completion_tokens == 3
    # /v1/models: B does not see A's adapter; the endpoint's token sees all
    assert [m.id for m in oa(w, w["key_a"]).models.list().data] == [BASE, "a1", "open"]
    assert [m.id for m in oa(w, w["key_b"]).models.list().data] == [BASE, "open"]
    assert [m.id for m in oa(w, "op-token").models.list().data] == [BASE, "a1", "open"]
    assert complete(w, "op-token", "a1").usage.completion_tokens == 3


def test_the_request_log_names_the_keys_team(world):
    w = world
    r = redis.Redis.from_url(w["rurl"])
    ids = {complete(w, w["key_a"], "a1").id: w["team_a"],
           complete(w, w["key_b"], BASE).id: w["team_b"],
           complete(w, "op-token", BASE).id: None}
    refused = post(w, w["key_b"], {"model": "a1", "prompt": "x"})
    ids[refused.headers["x-request-id"]] = w["team_b"]
    deadline = time.time() + 10
    recs = {}
    while time.time() < deadline and not set(ids) <= set(recs):
        recs = {json.loads(f[b"r"])["id"]: json.loads(f[b"r"]) for _, f in r.xrange("ft:requests")}
        time.sleep(0.05)
    for rid, team in ids.items():
        assert recs[rid].get("team_id") == team, recs[rid]
    assert recs[refused.headers["x-request-id"]]["status"] == 404


def test_adapters_are_loaded_with_the_endpoints_token_only(world):
    w = world
    load = {"lora_name": "mine", "lora_path": "/nonexistent", "team_id": w["team_b"]}
    for path, body in (("/v1/load_lora_adapter", load),
                       ("/v1/unload_lora_adapter", {"lora_name": "a1"})):
        for key in (w["key_a"], w["key_b"]):
            r = post(w, key, body, path)
            assert r.status_code == 403, r.text
            assert r.json()["error"]["code"] == "permission_denied"
    assert complete(w, w["key_a"], "a1").usage.completion_tokens == 3  # still there
    # metadata fields are checked by name
    r = post(w, "op-token", {"lora_name": "x", "lora_path": "/p", "team_id": "acme"},
             "/v1/load_lora_adapter")
    assert r.status_code == 400 and r.json()["error"]["param"] == "team_id"
    r = post(w, "op-token", {"lora_name": "x", "lora_path": "/p", "team": w["team_b"]},
             "/v1/load_lora_adapter")
    assert r.status_code == 400 and r.json()["error"]["code"] == "unknown_field"


def random_key():
    b62 = string.digits + string.ascii_letters
    return "ftk-" + "".join(secrets.choice(b62) for _ in range(44))


def test_a_wrong_key_is_401_in_openais_shape(world):
    w = world
    for key, code in ((random_key(), "invalid_api_key"), ("sk-nope", "invalid_api_key"),
                      (w["key_a"][:-1] + ("A" if w["key_a"][-1] != "A" else "B"),
                       "invalid_api_key"), (None, "missing_api_key")):
        r = post(w, key, {"model": BASE, "prompt": "x", "max_tokens": 2})
        assert r.status_code == 401, r.text
        err = r.json()["error"]
        assert set(err) == {"type", "code", "message", "param", "line"}
        assert err["type"] == "authentication_error" and err["code"] == code
        assert err["param"] is None and err["message"]
    with pytest.raises(openai.AuthenticationError) as e:
        complete(w, random_key(), BASE)
    assert e.value.code == "invalid_api_key"
    assert httpx.get(w["srv"].url + "/health").status_code == 200


def new_key(w):
    """A fresh member key of team A made through ft-api's /v1/keys: (id, key)."""
    r = httpx.post(w["api"].url + "/v1/keys", headers={"Authorization": f"Bearer {w['key_a']}"},
                   json={"name": "serve-test", "role": "member"})
    assert r.status_code == 200, r.text
    return r.json()["id"], r.json()["key"]


def wait_refused(w, key, limit_s):
    t0 = time.time()
    while time.time() - t0 < limit_s:
        r = post(w, key, {"model": BASE, "prompt": "x", "max_tokens": 1})
        if r.status_code == 401:
            assert r.json()["error"]["code"] == "key_revoked"
            return time.time() - t0
        assert r.status_code == 200
        time.sleep(0.02)
    raise AssertionError(f"the revoked key still works after {limit_s} s")


def test_a_revoked_key_is_refused_within_the_caches_bound(world):
    w = world
    # through ft-api: its trigger's NOTIFY reaches ft-serve's listener
    kid, key = new_key(w)
    assert complete(w, key, "a1").usage.completion_tokens == 3  # cached now
    r = httpx.delete(w["api"].url + f"/v1/keys/{kid}",
                     headers={"Authorization": f"Bearer {w['key_a']}"})
    assert r.status_code == 200
    took = wait_refused(w, key, TTL_S)
    print(f"revoked through ft-api: refused by ft-serve after {took * 1000:.0f} ms")
    assert took < 1.0  # the notification, not the ttl
    # notifications off (a change made with the trigger disabled): the ttl bounds it
    kid, key = new_key(w)
    assert complete(w, key, BASE).usage.completion_tokens == 3  # loaded into the cache at t0
    t0 = time.time()
    with psycopg.connect(w["api"].db_url, autocommit=True) as c:
        c.execute("ALTER TABLE api_keys DISABLE TRIGGER api_keys_notify")
        try:
            c.execute("UPDATE api_keys SET revoked_at = now() WHERE id = %s", (kid,))
        finally:
            c.execute("ALTER TABLE api_keys ENABLE TRIGGER api_keys_notify")
    # still served from the cache (so the bound below is the cache's, not luck)
    assert post(w, key, {"model": BASE, "prompt": "x", "max_tokens": 1}).status_code == 200
    took = wait_refused(w, key, TTL_S + 2)
    print(f"revoked without a notification: refused after {(time.time() - t0):.2f} s"
          f" (key_cache_ttl_s = {TTL_S})")
    assert time.time() - t0 <= TTL_S + 0.5


def test_a_keys_rate_limit_holds_across_two_ft_serves(world, build_dir, tmp_path):
    """ft/usage.h, ft-api's rate code, in ft-serve: a key with
    rate_limit_per_min 6 makes 3 requests to one ft-serve and 3 to a second
    on the same Redis (each pushes its count once a second and reads the
    other's back: the second learns of the first's 3 at its first push); the 7th request, to either, is 429 rate_limit_exceeded
    with Retry-After the seconds left in the minute, which the openai client
    raises as RateLimitError. The endpoint's token has no limit."""
    w = world
    r = httpx.post(w["api"].url + "/v1/keys", headers={"Authorization": f"Bearer {w['key_a']}"},
                   json={"name": "rate-test", "role": "member", "rate_limit_per_min": 6})
    assert r.status_code == 200, r.text
    kid, key = r.json()["id"], r.json()["key"]
    srv2 = Server(build_dir, tmp_path, {}, token="op-token", database_url=w["api"].db_url,
                  redis_url=w["rurl"])
    try:
        if time.time() % 60 > 45:  # the six requests and the syncs in one minute
            time.sleep(61 - time.time() % 60)
        body = {"model": BASE, "prompt": "x", "max_tokens": 1}
        for _ in range(3):
            assert post(w, key, body).status_code == 200
        time.sleep(2.5)  # both have pushed and read back
        other = dict(w, srv=srv2)
        # a process reads the others' count back when it pushes its own, so
        # within a second of its first request of the minute (the stated slack)
        assert post(other, key, body).status_code == 200
        time.sleep(2.5)
        for _ in range(2):
            assert post(other, key, body).status_code == 200
        over = post(other, key, body)
        assert over.status_code == 429, over.text
        err = over.json()["error"]
        assert (err["type"], err["code"]) == ("rate_limit_error", "rate_limit_exceeded")
        assert "6 requests per minute" in err["message"]
        left = 60 - int(time.time()) % 60
        assert abs(int(over.headers["retry-after"]) - left) <= 1, (over.headers, left)
        time.sleep(2.5)
        with pytest.raises(openai.RateLimitError):
            complete(w, key, BASE)   # the first ft-serve counts the second's too
        op = post(w, "op-token", body)
        assert op.status_code == 200, op.text
        with psycopg.connect(w["api"].db_url) as c:  # written by ft-serve: ft-api never saw it
            used = c.execute("SELECT last_used_at FROM api_keys WHERE id = %s", (kid,)).fetchone()[0]
        assert used is not None
    finally:
        srv2.stop()
