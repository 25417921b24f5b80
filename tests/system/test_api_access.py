"""Teams, keys and roles against the real server: another team gets 404 on
every route that names an object, lists never leak, roles are enforced, the
database holds no plain key, keys expire and are revoked, rate limits give
429 with Retry-After, and every write and denial leaves an audit row."""
import hashlib
import json
import time

import psycopg
import pytest

from api_helpers import SFT_LINES, client, jsonl, register_tiny_model, upload, wait_status


@pytest.fixture(scope="module")
def world(api_server, tmp_path_factory):
    """Team acme with a file, a job, a dataset, a model, a key and an endpoint
    (with a credential); team rival with its own admin key."""
    srv = api_server
    model = register_tiny_model(srv, tmp_path_factory.mktemp("m"), name="acme-model")
    f = upload(srv, jsonl(SFT_LINES))
    with client(srv) as c:
        job = c.post("/v1/fine_tuning/jobs", json={"model": "acme-model", "training_file": f["id"]}).json()
        ds = c.post("/v1/datasets", json={"file_id": f["id"], "name": "d"}).json()
        key = c.post("/v1/keys", json={"name": "ci", "role": "viewer"}).json()
        ep = c.post("/v1/endpoints", json={"name": "acme-ep", "kind": "vllm", "api_key": "tok",
                                           "url": "http://127.0.0.1:9"}).json()
    rival_team, rival_key = srv.make_team("rival")
    return dict(model=model, file=f, job=job, ds=ds, key=key, ep=ep, rival_key=rival_key,
                rival_team=rival_team)


def object_routes(w, srv):
    j, f = w["job"]["id"], w["file"]["id"]
    return [
        ("GET", f"/v1/files/{f}", None),
        ("GET", f"/v1/files/{f}/content", None),
        ("DELETE", f"/v1/files/{f}", None),
        ("GET", f"/v1/fine_tuning/jobs/{j}", None),
        ("POST", f"/v1/fine_tuning/jobs/{j}/cancel", None),
        ("GET", f"/v1/fine_tuning/jobs/{j}/events", None),
        ("GET", f"/v1/fine_tuning/jobs/{j}/events?stream=true", None),
        ("GET", f"/v1/fine_tuning/jobs/{j}/checkpoints", None),
        ("GET", f"/v1/datasets/{w['ds']['id']}", None),
        ("GET", f"/v1/models/{w['model']['id']}", None),
        ("GET", f"/v1/models/{w['model']['model_id']}", None),
        ("GET", f"/v1/teams/{srv.team}", None),
        ("GET", f"/v1/keys/{w['key']['id']}", None),
        ("POST", f"/v1/keys/{w['key']['id']}", {"rate_limit_per_min": 1}),
        ("DELETE", f"/v1/keys/{w['key']['id']}", None),
        ("GET", f"/v1/endpoints/{w['ep']['id']}", None),
        ("GET", "/v1/endpoints/acme-ep", None),
        ("POST", f"/v1/endpoints/{w['ep']['id']}", {"name": "taken"}),
        ("DELETE", f"/v1/endpoints/{w['ep']['id']}", None),
        ("GET", "/v1/deployments?endpoint=acme-ep", None),
    ]


def test_other_team_gets_404_on_every_object_route(world, api_server):
    with client(api_server, world["rival_key"]) as rival:
        for method, path, body in object_routes(world, api_server):
            r = rival.request(method, path, json=body)
            assert r.status_code == 404, (method, path, r.text)
            assert r.json()["error"]["code"] == "not_found"
        # Referencing the other team's objects in a body is the same as a
        # missing object: nothing tells them apart.
        r = rival.post("/v1/fine_tuning/jobs", json={"model": "acme-model",
                                                      "training_file": world["file"]["id"]})
        assert r.status_code == 400 and r.json()["error"]["param"] == "model"
        r = rival.post("/v1/datasets", json={"file_id": world["file"]["id"]})
        missing = rival.post("/v1/datasets", json={"file_id": "file-" + "Z" * 24})
        assert r.status_code == missing.status_code == 400
        assert r.json()["error"]["message"].replace(world["file"]["id"], "X") == \
            missing.json()["error"]["message"].replace("file-" + "Z" * 24, "X")
        # Lists show nothing of acme.
        r = rival.post("/v1/fine_tuning/jobs/estimate", json={"model": "acme-model",
                                                               "training_file": world["file"]["id"]})
        assert r.status_code == 400 and r.json()["error"]["param"] == "model"
        r = rival.post("/v1/deployments", json={"endpoint": world["ep"]["id"], "model": "x/1"})
        assert r.status_code == 400 and r.json()["error"]["param"] == "endpoint"
        for path in ("/v1/files", "/v1/fine_tuning/jobs", "/v1/datasets", "/v1/models", "/v1/keys",
                     "/v1/teams", "/v1/me", "/v1/endpoints", "/v1/deployments"):
            body = rival.get(path).json()
            text = json.dumps(body)
            for needle in (world["file"]["id"], world["job"]["id"], world["ds"]["id"],
                           world["model"]["model_id"], world["key"]["id"], api_server.team,
                           world["ep"]["id"]):
                assert needle not in text, (path, needle)
        # The rival's audit log is its own requests (the ids it probed
        # included), never a row of acme's keys.
        with client(api_server) as c:
            acme_keys = {c.get("/v1/me").json()["key_id"], world["key"]["id"]}
        rows = rival.get("/v1/audit_log", params={"limit": 100}).json()["data"]
        assert rows and not {r["key_id"] for r in rows} & acme_keys
    # And acme still sees all of it (the 404s above changed nothing).
    with client(api_server) as c:
        for method, path, _ in object_routes(world, api_server):
            if method == "GET" and "stream=true" not in path:   # a stream lasts as long as its job
                assert c.get(path).status_code == 200, path


def test_roles(world, api_server):
    viewer = world["key"]["key"]
    with client(api_server, viewer) as c:
        assert c.get("/v1/files").status_code == 200
        r = c.post("/v1/datasets", json={"file_id": world["file"]["id"]})
        assert r.status_code == 403 and r.json()["error"]["code"] == "insufficient_role"
        assert c.get("/v1/keys").status_code == 403
        assert c.get("/v1/audit_log").status_code == 403
        assert c.get("/v1/endpoints").status_code == 200
        r = c.post("/v1/endpoints", json={"name": "v", "kind": "vllm", "url": "http://127.0.0.1:9"})
        assert r.status_code == 403 and r.json()["error"]["code"] == "insufficient_role"
        assert c.get("/v1/me").json()["role"] == "viewer"
    member = api_server.make_key(api_server.team, "member")
    with client(api_server, member) as c:
        assert c.post("/v1/datasets", json={"file_id": world["file"]["id"]}).status_code == 200
        assert c.post("/v1/keys", json={"role": "admin"}).status_code == 403
        assert c.post("/v1/endpoints", json={"name": "m", "kind": "vllm",
                                             "url": "http://127.0.0.1:9"}).status_code == 403


def test_keys_are_stored_hashed_and_shown_once(world, api_server):
    plain = world["key"]["key"]
    assert plain.startswith("ftk-") and len(plain) == 48
    with psycopg.connect(api_server.db_url) as db:
        rows = db.execute("SELECT prefix, key_hash FROM api_keys").fetchall()
        dump = db.execute("SELECT string_agg(t::text, ' ') FROM api_keys t").fetchone()[0]
    assert plain not in dump and api_server.key not in dump
    assert plain[4:] not in dump
    hashes = {bytes(h) for _, h in rows}
    assert hashlib.sha256(plain.encode()).digest() in hashes
    with client(api_server) as c:
        got = c.get(f"/v1/keys/{world['key']['id']}").json()
    assert "key" not in got and got["prefix"] == plain[:16]


def test_revoked_and_expired_keys(api_server):
    with client(api_server) as c:
        k = c.post("/v1/keys", json={"role": "viewer"}).json()
        soon = c.post("/v1/keys", json={"role": "viewer", "expires_at": int(time.time()) + 1}).json()
        with client(api_server, k["key"]) as kc:
            assert kc.get("/v1/files").status_code == 200
            assert c.delete(f"/v1/keys/{k['id']}").json()["deleted"] is True
            r = kc.get("/v1/files")
            assert r.status_code == 401 and r.json()["error"]["code"] == "key_revoked"
        time.sleep(1.2)
        with client(api_server, soon["key"]) as sc:
            r = sc.get("/v1/files")
            assert r.status_code == 401 and r.json()["error"]["code"] == "key_expired"
        # last_used_at is written in the background, within about a second
        # of a key's first use (docs/api.md).
        deadline = time.time() + 5
        while True:
            got = c.get(f"/v1/keys/{k['id']}").json()
            if got["last_used_at"] is not None or time.time() > deadline:
                break
            time.sleep(0.1)
        assert got["revoked_at"] is not None and got["last_used_at"] is not None


def test_rate_limit_gives_429_with_retry_after(api_server):
    # The window is a calendar minute; if a run straddles two minutes the
    # count restarts, so try again once with a fresh key.
    for _ in range(2):
        with client(api_server) as c:
            k = c.post("/v1/keys", json={"role": "viewer", "rate_limit_per_min": 5}).json()
        with client(api_server, k["key"]) as kc:
            t0 = time.time()
            rs = [kc.get("/v1/teams") for _ in range(7)]
            if int(t0 // 60) == int(time.time() // 60):
                break
    assert [r.status_code for r in rs] == [200] * 5 + [429] * 2
    assert 1 <= int(rs[-1].headers["Retry-After"]) <= 60
    assert rs[-1].json()["error"]["type"] == "rate_limit_error"
    assert rs[-1].json()["error"]["code"] == "rate_limit_exceeded"


def test_a_keys_rate_limit_name_and_expiry_change_and_hold_at_once(api_server):
    """POST /v1/keys/{id}: the new limit holds on the key's next request
    (the cache entry dropped); expires_at 0 removes an expiry; a revoked
    key cannot be changed (409 key_revoked); a bad value names its field."""
    for _ in range(2):   # a run across a minute's end starts the count again
        with client(api_server) as c:
            k = c.post("/v1/keys", json={"role": "viewer", "name": "app", "rate_limit_per_min": 3,
                                         "expires_at": int(time.time()) + 3600}).json()
        with client(api_server, k["key"]) as kc:
            t0 = time.time()
            first = [kc.get("/v1/teams").status_code for _ in range(4)]
            with client(api_server) as c:
                r = c.post(f"/v1/keys/{k['id']}", json={"rate_limit_per_min": 6, "name": "app2",
                                                        "expires_at": 0})
            assert r.status_code == 200, r.text
            then = [kc.get("/v1/teams").status_code for _ in range(3)]
            if int(t0 // 60) == int(time.time() // 60):
                break
    assert first == [200, 200, 200, 429]
    assert then == [200, 200, 429]       # 4 counted, then 5 and 6 allowed, the 7th not
    got = r.json()
    assert (got["name"], got["rate_limit_per_min"], got["expires_at"], got["role"]) == \
        ("app2", 6, None, "viewer")
    with client(api_server) as c:
        assert c.get(f"/v1/keys/{k['id']}").json()["rate_limit_per_min"] == 6
        r = c.post(f"/v1/keys/{k['id']}", json={"rate_limit_per_min": 0})
        assert r.status_code == 400 and r.json()["error"]["param"] == "rate_limit_per_min"
        r = c.post(f"/v1/keys/{k['id']}", json={"role": "admin"})
        assert r.status_code == 400 and "role" in r.json()["error"]["message"]
        assert c.delete(f"/v1/keys/{k['id']}").status_code == 200
        r = c.post(f"/v1/keys/{k['id']}", json={"name": "x"})
        assert r.status_code == 409 and r.json()["error"]["code"] == "key_revoked"


def test_audit_rows_for_writes_and_denials(world, api_server):
    with client(api_server, world["rival_key"]) as rival:
        rival.get(f"/v1/keys/{world['key']['id']}")
        # another team's job reads as missing, and the attempt is audited
        assert rival.get(f"/v1/fine_tuning/jobs/{world['job']['id']}").status_code == 404
    with client(api_server, "ftk-" + "Q" * 44) as bad:
        assert bad.get("/v1/files").status_code == 401
    with psycopg.connect(api_server.db_url) as db:
        rows = db.execute("SELECT action, outcome, status_code, team_id, object_id FROM audit_log").fetchall()
    actions = {(a, o, s) for a, o, s, _, _ in rows}
    assert ("files.create", "allowed", 200) in actions
    assert ("jobs.create", "allowed", 200) in actions
    assert ("keys.create", "allowed", 200) in actions
    assert ("files.list", "denied", 401) in actions
    assert ("datasets.create", "denied", 403) in actions
    assert any(a == "jobs.create" and obj == world["job"]["id"] and team == api_server.team
               for a, _, _, team, obj in rows)
    assert any(a == "jobs.get" and o == "denied" and s == 404 and obj == world["job"]["id"]
               and team != api_server.team for a, o, s, team, obj in rows)


def test_rate_limiter_limits_locally_when_redis_is_down(build_dir, database_url, tmp_path_factory):
    """Without Redis each ft-api still counts its own requests: the limit holds
    (per process), nothing fails, and the outage is logged, not per request."""
    from conftest import _api_server, free_port
    import psycopg as _pg
    dead = f"redis://127.0.0.1:{free_port()}/0"   # nothing listens there
    srv, name = _api_server(build_dir, database_url, dead, tmp_path_factory)
    try:
        with client(srv) as c:
            assert [c.get("/v1/teams").status_code for _ in range(3)] == [200] * 3
            for _ in range(2):   # a run straddling two minutes restarts the count
                k = c.post("/v1/keys", json={"role": "viewer", "rate_limit_per_min": 3}).json()
                t0 = time.time()
                with client(srv, k["key"]) as kc:
                    codes = [kc.get("/v1/teams").status_code for _ in range(5)]
                if int(t0 // 60) == int(time.time() // 60):
                    break
            assert codes == [200] * 3 + [429] * 2
        deadline = time.time() + 10
        while "rate limiter: Redis unavailable" not in srv.log_path.read_text():
            assert time.time() < deadline, srv.log_path.read_text()
            time.sleep(0.1)
        log = srv.log_path.read_text()
        assert "each process limits on its own count meanwhile" in log
        # Logged at most every 10 s, not once per request or per retry.
        assert log.count("rate limiter: Redis unavailable") == 1
    finally:
        rc = srv.stop()
        with _pg.connect(database_url, autocommit=True) as db:
            db.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    assert rc == 0


def test_metrics_endpoint_counts_requests(build_dir, database_url, redis_url, tmp_path_factory):
    """ft-api's /metrics (its own port) counts answered requests by route and
    status class, in Prometheus text format."""
    import socket
    import urllib.request
    from conftest import _api_server
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv, name = _api_server(build_dir, database_url, redis_url, tmp_path_factory, metrics_port=port)
    try:
        with client(srv) as c:
            for _ in range(3):
                assert c.get("/v1/fine_tuning/jobs").status_code == 200
            assert c.get("/v1/files/file-" + "Q" * 24).status_code == 404
            assert c.get("/v1/nope").status_code == 404
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        lines = dict(l.rsplit(" ", 1) for l in text.splitlines() if l and not l.startswith("#"))
        assert float(lines['ft_api_requests_total{method="GET",route="/v1/fine_tuning/jobs",code="2xx"}']) == 3
        assert float(lines['ft_api_requests_total{method="GET",route="/v1/files/{id}",code="4xx"}']) == 1
        assert float(lines['ft_api_requests_total{method="",route="unmatched",code="4xx"}']) == 1
        assert float(lines['ft_api_request_seconds_sum{method="GET",route="/v1/fine_tuning/jobs"}']) > 0
        assert "# TYPE ft_api_requests_in_flight gauge" in text
    finally:
        srv.stop()
        with psycopg.connect(database_url, autocommit=True) as c:
            c.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
