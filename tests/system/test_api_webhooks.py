"""/v1/webhooks against the real server: the secret is shown once, the URL
passes the SSRF guard at creation, another team gets 404 on every webhook
route, rotation keeps the old secret signing for a day, and a failed
delivery can be sent again."""
import psycopg
import pytest

from api_helpers import client
from conftest import _api_server


@pytest.fixture(scope="module")
def srv(build_dir, database_url, redis_url, tmp_path_factory):
    s, name = _api_server(build_dir, database_url, redis_url, tmp_path_factory,
                          webhook_allow_http="true", webhook_allow_cidrs="127.0.0.1/32")
    yield s
    rc = s.stop()
    with psycopg.connect(database_url, autocommit=True) as c:
        c.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    assert rc == 0, s.log_path.read_text()[-4000:]


EVENTS = ["fine_tuning.job.succeeded", "fine_tuning.job.failed"]


def test_create_shows_the_secret_once(srv):
    with client(srv) as c:
        r = c.post("/v1/webhooks", json={"url": "http://127.0.0.1:9/hooks", "events": EVENTS})
        assert r.status_code == 200, r.text
        w = r.json()
        assert w["secret"].startswith("whsec_") and w["events"] == EVENTS and w["enabled"] is True
        assert "secret" not in c.get(f"/v1/webhooks/{w['id']}").json()
        listed = c.get("/v1/webhooks").json()
        assert [x["id"] for x in listed["data"]] == [w["id"]] and "secret" not in listed["data"][0]
    with psycopg.connect(srv.db_url) as db:
        assert db.execute("SELECT secret FROM webhooks WHERE id = %s", (w["id"],)).fetchone()[0] == w["secret"]


@pytest.mark.parametrize("body,param,needle", [
    ({"url": "ftp://127.0.0.1/x", "events": EVENTS}, "url", "must use https or http"),
    ({"url": "http://10.1.2.3/x", "events": EVENTS}, "url", "which is private (10.0.0.0/8)"),
    ({"url": "http://169.254.169.254/latest", "events": EVENTS}, "url", "cloud metadata"),
    ({"url": "http://[::ffff:10.0.0.1]/x", "events": EVENTS}, "url", "private"),
    ({"url": "http://127.0.0.1/x", "events": ["job.exploded"]}, "events", "must be one of"),
    ({"url": "http://127.0.0.1/x", "events": []}, "events", "1 to 16"),
    ({"url": "http://127.0.0.1/x"}, "events", "is required"),
    ({"url": 5, "events": EVENTS}, "url", "must be a string (got integer)"),
    ({"url": "http://127.0.0.1/x", "events": EVENTS, "secret": "x"}, "secret", "unknown field"),
])
def test_bad_webhooks_are_400_naming_the_field(srv, body, param, needle):
    with client(srv) as c:
        r = c.post("/v1/webhooks", json=body)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["param"] == param and needle in err["message"], err


def test_roles_and_other_teams(srv):
    with client(srv) as c:
        w = c.post("/v1/webhooks", json={"url": "http://127.0.0.1:9/a", "events": EVENTS}).json()
    viewer = srv.make_key(srv.team, "viewer")
    with client(srv, viewer) as v:
        assert v.get(f"/v1/webhooks/{w['id']}").status_code == 200
        r = v.post("/v1/webhooks", json={"url": "http://127.0.0.1:9/b", "events": EVENTS})
        assert r.status_code == 403 and r.json()["error"]["code"] == "insufficient_role"
    _, rival = srv.make_team("rival-wh")
    did = "whd-" + "A" * 24
    with client(srv, rival) as r:
        for method, path in [("GET", f"/v1/webhooks/{w['id']}"), ("DELETE", f"/v1/webhooks/{w['id']}"),
                             ("POST", f"/v1/webhooks/{w['id']}/rotate_secret"),
                             ("GET", f"/v1/webhooks/{w['id']}/deliveries"),
                             ("POST", f"/v1/webhooks/{w['id']}/deliveries/{did}/redeliver")]:
            resp = r.request(method, path)
            assert resp.status_code == 404, (method, path, resp.text)
        assert w["id"] not in r.get("/v1/webhooks").text


def test_rotation_and_redelivery(srv):
    with client(srv) as c:
        w = c.post("/v1/webhooks", json={"url": "http://127.0.0.1:9/r", "events": EVENTS}).json()
        rot = c.post(f"/v1/webhooks/{w['id']}/rotate_secret").json()
        assert rot["secret"] != w["secret"] and rot["rotating"] is True
        with psycopg.connect(srv.db_url, autocommit=True) as db:
            prev, expires = db.execute("SELECT previous_secret, previous_secret_expires_at - now()"
                                       " FROM webhooks WHERE id = %s", (w["id"],)).fetchone()
            assert prev == w["secret"] and 23.9 * 3600 < expires.total_seconds() <= 24 * 3600
            did = "whd-" + "B" * 24
            db.execute("INSERT INTO webhook_deliveries (id, webhook_id, event_type, payload, status, attempts,"
                       " last_status_code, last_error) VALUES (%s, %s, 'fine_tuning.job.failed', '{\"x\":1}',"
                       " 'failed', 4, 500, 'endpoint answered HTTP 500')", (did, w["id"]))
        d = c.get(f"/v1/webhooks/{w['id']}/deliveries").json()["data"]
        assert [x["id"] for x in d] == [did] and d[0]["status"] == "failed" and d[0]["attempts"] == 4
        assert d[0]["payload"] == {"x": 1}
        again = c.post(f"/v1/webhooks/{w['id']}/deliveries/{did}/redeliver").json()
        assert again["status"] == "pending" and again["attempts"] == 4
        assert c.post(f"/v1/webhooks/{w['id']}/deliveries/whd-{'C' * 24}/redeliver").status_code == 404
        assert c.delete(f"/v1/webhooks/{w['id']}").json()["deleted"] is True
        assert c.get(f"/v1/webhooks/{w['id']}").status_code == 404
