"""The registry's rules against the real platform (versions come from short
real jobs): concurrent alias moves serialize (every move in the history, in
commit order, one final holder) and conditional moves have exactly one
winner; protected aliases need an admin; "latest" is the highest version;
a version is not deleted while an alias points at it; every new route is 404
to another team and 403 to a viewer that writes; bad input is a 4xx that
names the field; checkpoints are promoted to versions; storage quotas."""
import hashlib
import json
import threading
import time

import pytest

from api_helpers import client, upload
from conftest import _api_server
from registry_platform import (Platform, Receiver, data_lines, db, register_bundled_model,
                               run_job, store_blob, wait_export)


def short_job(srv, tf, key=None, **kw):
    fields = dict(model="ftplat-tiny-cs", training_file=tf, registered_model="bot",
                  hyperparameters={"max_steps": 1, "batch_size": 4})
    fields.update(kw)
    j = run_job(srv, key=key, **fields)
    assert j["status"] == "succeeded", j
    return j


@pytest.fixture(scope="module")
def w(build_dir, database_url, redis_url, tmp_path_factory):
    srv, name = _api_server(build_dir, database_url, redis_url, tmp_path_factory,
                            max_upload_bytes=1 << 22, webhook_allow_http="true",
                            webhook_allow_cidrs="127.0.0.1/32")
    plat = Platform(srv, build_dir, redis_url, tmp_path_factory.mktemp("reg-api"))
    rec = Receiver()
    register_bundled_model(srv)
    with client(srv) as c:
        secret = c.post("/v1/webhooks", json={"url": rec.url,
                                              "events": ["model.alias.moved"]}).json()["secret"]
        viewer = c.post("/v1/keys", json={"role": "viewer"}).json()["key"]
        member = c.post("/v1/keys", json={"role": "member"}).json()["key"]
    tf = upload(srv, data_lines("train.jsonl", 8), name="t.jsonl")["id"]
    jobs = [short_job(srv, tf, seed=s) for s in (1, 2, 3)]
    rival_team, rival = srv.make_team("rival")
    yield dict(srv=srv, plat=plat, rec=rec, secret=secret, viewer=viewer, member=member, tf=tf,
               jobs=jobs, rival=rival, rival_team=rival_team)
    plat.stop()
    rec.close()
    rc = srv.stop()
    import psycopg
    with psycopg.connect(database_url, autocommit=True) as c:
        c.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    assert rc == 0, srv.log_path.read_text()[-4000:]


def alias_of(c, name, alias):
    r = c.get(f"/v1/registry/models/{name}/aliases").json()["data"]
    return next((a["version"] for a in r if a["alias"] == alias), None)


def history(c, name, alias):
    return list(reversed(c.get(f"/v1/registry/models/{name}/alias_history",
                               params={"alias": alias, "limit": 100}).json()["data"]))


def concurrently(srv, bodies, path, key=None):
    """POST each body from its own connection, released together."""
    barrier = threading.Barrier(len(bodies))
    out = [None] * len(bodies)

    def one(i):
        with client(srv, key) as c:
            barrier.wait()
            out[i] = c.post(path, json=bodies[i])
    ts = [threading.Thread(target=one, args=(i,)) for i in range(len(bodies))]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return out


def test_versions_came_from_the_jobs(w):
    with client(w["srv"]) as c:
        vs = c.get("/v1/registry/models/bot/versions").json()["data"]
    assert [v["version"] for v in vs] == [3, 2, 1]
    assert [v["lineage"]["job"]["id"] for v in vs] == [j["id"] for j in reversed(w["jobs"])]
    assert vs[0]["aliases"] == ["latest"]


def test_concurrent_alias_moves_are_serialized_into_the_history(w):
    srv = w["srv"]
    path = "/v1/registry/models/bot/aliases/production"
    # two concurrent moves: both land, one after the other; the history has
    # both, each with the version it really replaced; the alias holds the last
    rs = concurrently(srv, [{"version": 2}, {"version": 3}], path)
    assert [r.status_code for r in rs] == [200, 200], [r.text for r in rs]
    with client(srv) as c:
        h = history(c, "bot", "production")
        assert [(x["action"], x["from_version"]) for x in h] == [("set", None), ("set", h[0]["to_version"])]
        assert {x["to_version"] for x in h} == {2, 3}
        assert alias_of(c, "bot", "production") == h[-1]["to_version"]
    # eight at once: still a chain, nothing lost
    rs = concurrently(srv, [{"version": 1 + i % 3} for i in range(8)], path)
    assert all(r.status_code == 200 for r in rs)
    with client(srv) as c:
        h = history(c, "bot", "production")
        moved = [x for x in h[2:] if x["action"] == "set"]
        assert len(moved) <= 8 and all(a["to_version"] == b["from_version"] for a, b in zip(h, h[1:]))
        assert alias_of(c, "bot", "production") == h[-1]["to_version"]


def test_conditional_moves_have_exactly_one_winner(w):
    srv = w["srv"]
    path = "/v1/registry/models/bot/aliases/canary"
    with client(srv) as c:
        assert c.post(path, json={"version": 1}).status_code == 200
        before = len(history(c, "bot", "canary"))
    rs = concurrently(srv, [{"version": 2, "expect_version": 1},
                            {"version": 3, "expect_version": 1}], path)
    codes = sorted(r.status_code for r in rs)
    assert codes == [200, 409], [r.text for r in rs]
    loser = next(r for r in rs if r.status_code == 409).json()["error"]
    winner = next(r for r in rs if r.status_code == 200).json()
    assert loser["code"] == "alias_moved" and "not 1" in loser["message"]
    with client(srv) as c:
        h = history(c, "bot", "canary")
        assert len(h) == before + 1 and h[-1]["from_version"] == 1
        assert h[-1]["to_version"] == winner["version"] == alias_of(c, "bot", "canary")
    # and each move was announced, signed
    deadline = time.time() + 20
    while True:
        evs = [e["data"] for e in w["rec"].events(w["secret"], "model.alias.moved")
               if e["data"]["alias"] == "canary"]
        if len(evs) >= 2:
            break
        assert time.time() < deadline, evs
        time.sleep(0.1)
    assert {"model": "bot", "alias": "canary", "from_version": 1,
            "to_version": winner["version"]} in evs


def test_protected_aliases_need_an_admin(w):
    srv = w["srv"]
    path = "/v1/registry/models/bot/aliases/prod"
    with client(srv, w["member"]) as m, client(srv) as a:
        r = m.post(path, json={"version": 1, "protected": True})
        assert r.status_code == 403 and r.json()["error"]["code"] == "protected_alias"
        assert a.post(path, json={"version": 1, "protected": True}).json()["protected"] is True
        r = m.post(path, json={"version": 2})
        assert r.status_code == 403 and r.json()["error"]["code"] == "protected_alias"
        assert m.delete(path).status_code == 403
        assert alias_of(a, "bot", "prod") == 1
        assert a.post(path, json={"version": 2}).status_code == 200    # an admin may
        assert a.post(path, json={"version": 2, "protected": False}).json()["protected"] is False
        assert m.post(path, json={"version": 3}).status_code == 200
        actions = [x["action"] for x in history(a, "bot", "prod")]
        assert actions == ["set", "protected", "set", "unprotected", "set"]


def test_latest_is_the_highest_version_and_reserved(w):
    with client(w["srv"]) as c:
        r = c.post("/v1/registry/models/bot/aliases/latest", json={"version": 1})
        assert r.status_code == 400 and r.json()["error"]["param"] == "alias"
        assert c.get("/v1/registry/models/bot/versions/latest").json()["version"] == 3
        r = c.post("/v1/registry/models/bot/aliases/Bad!", json={"version": 1})
        assert r.status_code == 400 and r.json()["error"]["param"] == "alias"
        r = c.post("/v1/registry/models/bot/aliases/qa", json={"version": 99})
        assert r.status_code == 400 and r.json()["error"]["param"] == "version"


def test_a_version_is_not_deleted_while_an_alias_points_at_it(w):
    srv = w["srv"]
    j = short_job(srv, w["tf"], seed=9, registered_model="tmp-bot")
    with client(srv) as c:
        assert c.post("/v1/registry/models/tmp-bot/aliases/keep", json={"version": 1}).status_code == 200
        r = c.delete("/v1/registry/models/tmp-bot/versions/1")
        assert r.status_code == 409 and r.json()["error"]["code"] == "version_in_use"
        assert "keep" in r.json()["error"]["message"]
        r = c.delete(f"/v1/models/{j['fine_tuned_model']}")        # OpenAI's delete: same rule
        assert r.status_code == 409
        assert c.delete("/v1/registry/models/tmp-bot/aliases/keep").status_code == 200
        r = c.delete(f"/v1/models/{j['fine_tuned_model']}")
        assert r.status_code == 200 and r.json() == {"id": j["fine_tuned_model"], "object": "model",
                                                      "deleted": True}
        assert c.get(f"/v1/models/{j['fine_tuned_model']}").status_code == 404
        assert c.get("/v1/registry/models/tmp-bot/versions/1").status_code == 404
        assert c.get("/v1/registry/models/tmp-bot").json()["versions"] == 0
    # numbers are never reused
    short_job(srv, w["tf"], seed=10, registered_model="tmp-bot")
    with client(srv) as c:
        assert [v["version"] for v in c.get("/v1/registry/models/tmp-bot/versions").json()["data"]] == [2]


def object_routes(w, export_id, artifact, fname):
    return [
        ("GET", "/v1/registry/models/bot", None),
        ("POST", "/v1/registry/models/bot", {"description": "x"}),
        ("DELETE", "/v1/registry/models/bot", None),
        ("GET", "/v1/registry/models/bot/versions", None),
        ("POST", "/v1/registry/models/bot/versions", {"checkpoint": "ftckpt-" + "A" * 24}),
        ("GET", "/v1/registry/models/bot/versions/1", None),
        ("GET", "/v1/registry/models/bot/versions/production", None),
        ("POST", "/v1/registry/models/bot/versions/1", {"description": "x"}),
        ("DELETE", "/v1/registry/models/bot/versions/1", None),
        ("GET", "/v1/registry/models/bot/versions/1/artifacts", None),
        ("GET", "/v1/registry/models/bot/aliases", None),
        ("POST", "/v1/registry/models/bot/aliases/production", {"version": 1}),
        ("DELETE", "/v1/registry/models/bot/aliases/production", None),
        ("GET", "/v1/registry/models/bot/alias_history", None),
        ("GET", f"/v1/registry/exports/{export_id}", None),
        ("POST", f"/v1/registry/exports/{export_id}/cancel", None),
        ("GET", f"/v1/registry/exports/{export_id}/events", None),
        ("GET", f"/v1/registry/artifacts/{artifact}", None),
        ("GET", f"/v1/registry/artifacts/{artifact}/files/{fname}", None),
        ("GET", f"/v1/models/{w['jobs'][0]['fine_tuned_model']}", None),
        ("DELETE", f"/v1/models/{w['jobs'][0]['fine_tuned_model']}", None),
        ("GET", f"/v1/models/{w['jobs'][0]['fine_tuned_model']}:ckpt-step-1", None),
    ]


def test_every_route_is_404_to_another_team_and_403_to_a_viewer_that_writes(w):
    srv = w["srv"]
    with client(srv) as c:
        e = c.post("/v1/registry/exports", json={"model": "bot/1", "format": "merged"}).json()
        art = c.get("/v1/registry/models/bot/versions/1").json()["artifact"]
    objects = object_routes(w, e["id"], art["id"], art["files"][0]["path"])
    with client(srv, w["rival"]) as rival:
        for method, path, body in objects:
            r = rival.request(method, path, json=body)
            assert r.status_code == 404, (method, path, r.text)
        for path in ("/v1/registry/models", "/v1/registry/exports", "/v1/models"):
            text = json.dumps(rival.get(path).json())
            for needle in ("bot", e["id"], art["id"], w["jobs"][0]["id"]):
                assert needle not in text, (path, needle)
        assert rival.get("/v1/registry/usage").json()["stored_bytes"] == 0
        # naming acme's objects in a body is the same as naming nothing: 400, field named
        r = rival.post("/v1/registry/exports", json={"model": "bot/1", "format": "merged"})
        assert r.status_code == 400 and r.json()["error"]["param"] == "model", r.text
        r = rival.post("/v1/fine_tuning/jobs", json={"model": "bot@latest", "training_file": w["tf"]})
        assert r.status_code == 400 and r.json()["error"]["param"] == "model"
    writes = [(m, p, b) for m, p, b in objects if m != "GET"] + [
        ("POST", "/v1/registry/models", {"name": "v"}),
        ("POST", "/v1/registry/exports", {"model": "bot/1", "format": "merged"})]
    with client(srv, w["viewer"]) as viewer:
        for method, path, body in writes:
            r = viewer.request(method, path, json=body)
            assert r.status_code == 403 and r.json()["error"]["code"] == "insufficient_role", (path, r.text)
        for method, path, body in objects:      # and reads everything
            if method == "GET":
                assert viewer.get(path).status_code in (200, 206), path
    wait_export(srv, e["id"])


def test_bad_input_is_a_4xx_naming_the_field(w):
    cases = [
        ({"model": "bot/1", "format": "gguf-q9"}, "format", "unknown_format"),
        ({"model": "bot/1", "format": "merged", "options": {"dtype": "fp8"}}, "options.dtype",
         "invalid_value"),
        ({"model": "bot/1", "format": "merged", "options": {"dtype": 16}}, "options.dtype",
         "invalid_type"),
        ({"model": "bot/1", "format": "merged", "options": {"quant": "q4"}}, "options.quant",
         "unknown_field"),
        ({"model": "bot/1", "format": "merged", "options": {"max_shard_bytes": 10}},
         "options.max_shard_bytes", "invalid_value"),
        ({"model": "bot/7", "format": "merged"}, "model", "model_not_found"),
        ({"model": "bot@nope", "format": "merged"}, "model", "model_not_found"),
        ({"model": "ftplat-tiny-cs", "format": "merged"}, "model", "not_a_version"),
        ({"model": w["jobs"][0]["fine_tuned_model"] + ":ckpt-step-1", "format": "merged"}, "model",
         "not_a_version"),
        ({"model": "bot/1", "format": "merged", "extra": 1}, "extra", "unknown_field"),
    ]
    with client(w["srv"]) as c:
        for body, param, code in cases:
            r = c.post("/v1/registry/exports", json=body)
            assert r.status_code == 400, (body, r.text)
            err = r.json()["error"]
            assert (err["param"], err["code"]) == (param, code), (body, err)
        # a message quoting the value cuts it at 64 bytes, inside the 22nd letter here:
        # the message is still there, valid UTF-8 (schemathesis found it missing)
        r = c.post("/v1/registry/exports", json={"model": "bot/1", "format": "\u092a" * 30})
        assert r.status_code == 400, r.text
        assert r.json()["error"]["message"].startswith('format "' + "\u092a" * 21 + "\ufffd\"")
        r = c.post("/v1/fine_tuning/jobs", json={"model": "ftplat-tiny-cs", "training_file": w["tf"],
                                                  "registered_model": "no spaces"})
        assert r.status_code == 400 and r.json()["error"]["param"] == "registered_model"
        r = c.post("/v1/registry/models/bot", json={"tags": {"k": 1}})
        assert r.status_code == 400 and r.json()["error"]["param"] == "tags"
        r = c.get("/v1/registry/models/bot/alias_history", params={"after": "x1"})
        assert r.status_code == 400 and r.json()["error"]["param"] == "after"


def test_a_checkpoint_is_promoted_to_a_version(w):
    srv = w["srv"]
    j = w["jobs"][1]
    ck = f"{j['fine_tuned_model']}:ckpt-step-1"
    with client(srv) as c:
        r = c.post("/v1/registry/models/promoted/versions", json={"checkpoint": ck})
        assert r.status_code == 404        # the registered model comes first
        assert c.post("/v1/registry/models", json={"name": "promoted", "description": "d"}).status_code == 200
        assert c.post("/v1/registry/models", json={"name": "promoted"}).status_code == 409
        r = c.post("/v1/registry/models/promoted/versions",
                   json={"checkpoint": ck, "description": "step 1", "tags": {"stage": "qa"}})
        assert r.status_code == 200, r.text
        v = r.json()
        assert v["version"] == 1 and v["source"] == "checkpoint" and v["kind"] == "adapter"
        assert v["lineage"]["checkpoint"]["step"] == 1 and v["lineage"]["job"]["id"] == j["id"]
        assert v["tags"] == {"stage": "qa"} and v["description"] == "step 1"
        # the checkpoint's metrics: the step's training loss, as the job's events say
        ev = c.get(f"/v1/fine_tuning/jobs/{j['id']}/events", params={"limit": 100}).json()["data"]
        step1 = next(e["data"] for e in ev if isinstance(e["data"], dict)
                     and e["data"].get("type") == "step" and e["data"]["step"] == 1)
        assert v["lineage"]["metrics"] == {"step": 1, "train_loss": step1["train_loss"]}
        cks = c.get(f"/v1/fine_tuning/jobs/{j['id']}/checkpoints").json()["data"]
        assert cks[0]["metrics"] == {"step": 1, "train_loss": step1["train_loss"]}
        # its files are the checkpoint's adapter/ files, the same blobs
        with db(srv) as d:
            files = dict(d.execute(
                "SELECT substr(f.path, 9), f.sha256 FROM artifact_files f JOIN checkpoints c"
                " ON c.artifact_id = f.artifact_id WHERE c.job_id = %s AND c.step = 1"
                " AND f.path LIKE 'adapter/%%'", (j["id"],)).fetchall())
        assert {f["path"]: f["sha256"] for f in v["artifact"]["files"]} == files
        m = json.loads(store_blob(srv, v["artifact"]["sha256"]).read_text())
        assert sorted(f["path"] for f in m["files"]) == sorted(files)
        # and it exports like any version
        e = c.post("/v1/registry/exports", json={"model": "promoted/1", "format": "merged"}).json()
    assert wait_export(srv, e["id"])["status"] == "succeeded"


def test_storage_quota_refuses_with_413(w):
    srv = w["srv"]
    team, key = srv.make_team("small")
    from registry_platform import MODEL
    with client(srv, key) as c:    # a base model of its own (the first is acme's)
        assert c.post("/v1/models", json={"name": "tiny-small", "path": str(MODEL)}).status_code == 200
    with db(srv) as d:
        d.execute("UPDATE teams SET storage_quota_bytes = 3000 WHERE id = %s", (team,))
    data = data_lines("train.jsonl", 2)
    assert len(data) < 3000
    f = upload(srv, data, key=key)
    with client(srv, key) as c:
        u = c.get("/v1/registry/usage").json()
        assert u == {"object": "storage_usage", "stored_bytes": len(data), "quota_bytes": 3000}
        r = c.post("/v1/files", data={"purpose": "fine-tune"},
                   files={"file": ("big.jsonl", data_lines("train.jsonl", 40))})
        assert r.status_code == 413 and r.json()["error"]["code"] == "storage_quota_exceeded", r.text
        assert c.get("/v1/registry/usage").json()["stored_bytes"] == len(data)
    j = short_job(srv, f["id"], key=key, registered_model="small-bot", model="tiny-small")
    with client(srv, key) as c:
        # the version's adapter took the team over its quota: no export (about
        # 16 MB of weights), and no new job
        used = c.get("/v1/registry/usage").json()["stored_bytes"]
        assert used > 3000
        r = c.post("/v1/registry/exports", json={"model": "small-bot/1", "format": "merged"})
        assert r.status_code == 413 and r.json()["error"]["code"] == "storage_quota_exceeded"
        assert f"stores {used} bytes of its quota of 3000" in r.json()["error"]["message"]
        r = c.post("/v1/fine_tuning/jobs", json={"model": "tiny-small", "training_file": f["id"]})
        assert r.status_code == 413
    with db(srv) as d:
        total = d.execute("SELECT (SELECT sum(bytes) FROM files WHERE team_id = %s AND deleted_at IS NULL)"
                          " + (SELECT sum(bytes) FROM artifacts WHERE team_id = %s)", (team, team)).fetchone()[0]
    assert used == total
    assert j["status"] == "succeeded"


def test_exports_of_one_version(w):
    """GET /v1/registry/exports?model=REF lists the exports of the version
    REF names, by any of its names: the rows of the team's whole list whose
    model_version_id is that version's (filtered here by hand), newest first,
    paged the same way. A base model or a checkpoint is a 400 naming
    "model"; another team's version reads as one that does not exist."""
    srv = w["srv"]
    with client(srv) as c:
        made = []
        for ref in ("bot/1", "bot/2", "bot/1"):
            e = c.post("/v1/registry/exports", json={"model": ref, "format": "gguf"}).json()
            c.post(f"/v1/registry/exports/{e['id']}/cancel")     # its rows are what counts
            made.append(e)
        everything = c.get("/v1/registry/exports", params={"limit": 100}).json()["data"]
        v1 = c.get("/v1/registry/models/bot/versions/1").json()
        v3 = c.get("/v1/registry/models/bot/versions/3").json()
        want = [e["id"] for e in everything if e["model_version_id"] == v1["id"]]
        assert {made[0]["id"], made[2]["id"]} <= set(want) and made[1]["id"] not in want
        for ref in ("bot/1", v1["fine_tuned_model"]):
            got = c.get("/v1/registry/exports", params={"model": ref, "limit": 100}).json()
            assert [e["id"] for e in got["data"]] == want, ref
            assert not got["has_more"]
        latest = c.get("/v1/registry/exports", params={"model": "bot@latest"}).json()["data"]
        assert [e["id"] for e in latest] == [e["id"] for e in everything if e["model_version_id"] == v3["id"]]
        pages, after = [], None
        while True:
            p = c.get("/v1/registry/exports",
                      params={"model": "bot/1", "limit": 1, **({"after": after} if after else {})}).json()
            pages += [e["id"] for e in p["data"]]
            if not p["has_more"]:
                break
            after = p["last_id"]
        assert pages == want
        for ref, code in (("ftplat-tiny-cs", "not_a_version"),
                          (w["jobs"][0]["fine_tuned_model"] + ":ckpt-step-1", "not_a_version"),
                          ("bot/99", "model_not_found"), ("nope@production", "model_not_found")):
            r = c.get("/v1/registry/exports", params={"model": ref})
            assert r.status_code == 400, (ref, r.text)
            assert (r.json()["error"]["param"], r.json()["error"]["code"]) == ("model", code), ref
    with client(srv, w["rival"]) as rival:
        r = rival.get("/v1/registry/exports", params={"model": "bot/1"})
        assert r.status_code == 400 and r.json()["error"]["code"] == "model_not_found"
        assert "bot" not in json.dumps(rival.get("/v1/registry/exports").json()["data"])
