"""Drift monitoring end to end, every ftplat part real: ft-api (the monitor's
settings and state), ft-scheduler (it persists the request log, then its
leader computes the reference and the hourly and daily windows, queues the
signed webhook and exposes the Prometheus gauges).

Traffic with a known truth, written onto ft:requests in ft/reqlog.h's
record format (what ft-serve writes) with past timestamps: a reference of
2000 requests in hour 0 (tests/sim/sim_drift.c's size), 48 unshifted hours of 300 requests (prompt lengths
round(exp(4 + 0.6 z)), languages en/zh/ja/other 0.65/0.25/0.07/0.03, 5% cut
by max_tokens, 2% refusals), then hour 49 with prompts 50% longer, hour 50
with the language mix en 0.45 / zh 0.45, hour 51 with 20% refusals. Asserted:
the first alert is hour 49 and each shift alerts in its own hour by its own
check; the 48 unshifted windows raise none (false alarms printed); the
numbers of the shifted windows equal the Python peers on the same data:
scipy.stats.ks_2samp and wasserstein_distance, numpy PSI on the reference's
decile bins with Evidently's epsilon and scipy's jensenshannon
(stats_peer.numeric), scipy.stats.chi2_contingency(correction=False) for the
language mix and the rates (stats_peer.counts), 1e-9; the monitor.drift.detected
webhooks verify with the standardwebhooks package; ft_drift_alert is 1.
The deployment is a row of the deployments table (the deployments work's),
inserted here.

The false-alarm claim is a seeded run's, not a bound: the rule's rate is
measured by tests/sim/sim_drift.c over 480 windows. With a 1000-request
reference this same seed gives one false alarm (hour 1, the language mix,
chi-square p = 5.7e-5 after the reference drew 20.9% Chinese against 25%);
the replay in Python of the same checks gives the same, so the platform
agrees with the rule there too."""
import base64
import hashlib
import json
import math
import re
import time

import httpx
import numpy as np
import psycopg
import pytest
import redis
from scipy import stats

import stats_peer
from api_helpers import client
from conftest import _api_server
from registry_platform import Platform, Receiver, register_bundled_model, run_job, upload_data

HOUR = 3600_000
BYTE_RATE = {"en": 0.0, "zh": 0.4, "ja": 0.35, "other": 0.02}
EMB_DIM = 16
LANGS = ["en", "zh", "ja", "other"]
BASE_MIX = [0.65, 0.25, 0.07, 0.03]
PROMPTS = {"en": "Where is my order, please? It has not arrived yet.",
           "zh": "我的订单在哪里？还没有收到。",
           "ja": "注文はどこですか？まだ届いていません。",
           "other": "12345 ??? 67890"}
ANSWERS = {"en": ("Thanks for asking! Your parcel is on its way.",
                  "I'm sorry, but I can't help with that."),
           "zh": ("感谢您的咨询！包裹正在路上。", "抱歉，我无法提供这个信息。"),
           "ja": ("お問い合わせありがとうございます。", "申し訳ありませんが、お答えできません。"),
           "other": ("OK.", "I'm sorry, but I can't help with that.")}


def traffic(seed, t0, n_ref=2000, hours=48, per_hour=300, dep=None):
    """The requests, hour by hour: (hour, record). Hours 1..hours unshifted,
    then the three shifted hours (longer prompts, the language mix,
    refusals). tests/system/test_console.py draws a smaller one."""
    dep = dep or DEP
    rng = np.random.default_rng(seed)
    out = []

    def hour(h, n, mu=4.0, mix=BASE_MIX, refusal=0.02, first=0, topic=0.0):
        ts = np.sort(rng.uniform(0, HOUR - 1000, n)).astype(int)
        for i in range(n):
            lang = LANGS[rng.choice(4, p=mix)]
            refused = rng.random() < refusal
            cut = rng.random() < 0.05
            pt = int(max(1, round(math.exp(mu + 0.6 * rng.standard_normal()))))
            ct = int(max(1, round(math.exp(3.5 + 0.5 * rng.standard_normal()))))
            # byte pieces as a byte-level vocabulary spells each language; every
            # fourth request carries a prompt embedding (dim 16), its first 8
            # coordinates moved by `topic` in a shifted hour
            extra = {"prompt_byte_tokens": int(rng.binomial(pt, BYTE_RATE[lang])),
                     "completion_byte_tokens": int(rng.binomial(ct, BYTE_RATE[lang]))}
            if i % 4 == 0:
                e = rng.standard_normal(EMB_DIM)
                e[:8] += topic
                extra["embedding"] = base64.b64encode(
                    np.asarray(e, dtype="<f4").tobytes()).decode()
            out.append((h, {
                "id": f"chatcmpl-d{h:02d}x{first + i:05d}", "created_at": t0 + h * HOUR + int(ts[i]),
                "kind": "chat", "stream": False, "model": "bot", "base_model": "ftplat-tiny-cs",
                "deployment_id": dep, "prompt_tokens": pt, "completion_tokens": ct, **extra,
                "latency_ms": 100.0, "status": 200, "finish_reason": "length" if cut else "stop",
                "prompt": PROMPTS[lang], "completion": ANSWERS[lang][refused], "lang": lang,
                "refused": refused}))

    hour(0, n_ref)
    for h in range(1, hours + 1):
        hour(h, per_hour)
    hour(hours + 1, per_hour, mu=4.0 + math.log(1.5), topic=0.5)
    hour(hours + 2, per_hour, mix=[0.45, 0.45, 0.07, 0.03])
    hour(hours + 3, per_hour, refusal=0.20)
    return out


def push_traffic(redis_url, db_url, team, rows, timeout=300):
    """Write the records onto ft:requests (what ft-serve writes) and wait
    until the scheduler has persisted them all into request_log."""
    r = redis.Redis.from_url(redis_url)
    pipe = r.pipeline()
    for _, rec_ in rows:
        body = {k: v for k, v in rec_.items() if k not in ("lang", "refused")}
        body["team_id"] = team
        pipe.xadd("ft:requests", {"r": json.dumps(body, ensure_ascii=False)})
    pipe.execute()
    ids = [rec_["id"] for _, rec_ in rows]
    deadline = time.time() + timeout
    with psycopg.connect(db_url, autocommit=True) as db:
        while db.execute("SELECT count(*) FROM request_log WHERE id = ANY(%s)", (ids,)).fetchone()[0] < len(ids):
            assert time.time() < deadline, "the request log was not persisted"
            time.sleep(0.2)


DEP = "dep-" + "Q" * 24


@pytest.fixture(scope="module")
def world(build_dir, database_url, redis_url, tmp_path_factory):
    srv, name = _api_server(build_dir, database_url, redis_url, tmp_path_factory,
                            webhook_allow_http="true", webhook_allow_cidrs="127.0.0.1/32")
    tmp = tmp_path_factory.mktemp("drift")
    plat = Platform(srv, build_dir, redis_url, tmp, FT_DRIFT_INTERVAL_MS="200",
                    FT_DRIFT_GRACE_S="0", FT_METRICS_PORT="0")
    rec = Receiver()
    try:
        register_bundled_model(srv)
        with client(srv) as c:
            wh = c.post("/v1/webhooks", json={"url": rec.url,
                                              "events": ["monitor.drift.detected"]}).json()
        tf = upload_data(srv, "train.jsonl", 8)
        job = run_job(srv, model="ftplat-tiny-cs", training_file=tf["id"], registered_model="bot",
                      hyperparameters={"n_epochs": 1, "batch_size": 4, "max_steps": 1})
        assert job["status"] == "succeeded"
        with psycopg.connect(srv.db_url, autocommit=True) as db:
            v = db.execute("SELECT id FROM model_versions LIMIT 1").fetchone()[0]
            ep = "ep-" + "Q" * 24
            db.execute("INSERT INTO endpoints (id, team_id, name, kind, url) VALUES"
                       " (%s, %s, 'serve', 'ftserve', 'http://127.0.0.1:1')", (ep, srv.team))
            db.execute("INSERT INTO deployments (id, team_id, endpoint_id, model, model_version_id,"
                       " loaded_version_id, status) VALUES (%s, %s, %s, 'drift/1', %s, %s, 'ready')",
                       (DEP, srv.team, ep, v, v))
            t0 = (int(time.time() * 1000) // HOUR - 52) * HOUR
            rows = traffic(11, t0)
        push_traffic(plat.env["FT_REDIS_URL"], srv.db_url, srv.team, rows)
        with client(srv) as c:
            r = c.post(f"/v1/drift/{DEP}", json={"reference_requests": 2000})
            assert r.status_code == 200, r.text
            created = r.json()
        yield dict(srv=srv, plat=plat, rec=rec, secret=wh["secret"], rows=rows, t0=t0,
                   created=created)
    finally:
        try:
            plat.stop()
        finally:
            rec.close()
            rc = srv.stop()
            with psycopg.connect(database_url, autocommit=True) as c:
                c.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    assert rc == 0, srv.log_path.read_text()[-4000:]


def windows_when(w, cond, gran="hour", timeout=120):
    deadline = time.time() + timeout
    with client(w["srv"]) as c:
        while True:
            ws = c.get(f"/v1/drift/{DEP}/windows", params={"granularity": gran,
                                                           "limit": 1000}).json()["data"]
            if cond(ws):
                return sorted(ws, key=lambda x: x["window_start"])
            assert time.time() < deadline, ws[:2]
            time.sleep(0.2)


def by_hour(w, ws):
    return {(x["window_start"] * 1000 - w["t0"]) // HOUR: x for x in ws}


@pytest.fixture(scope="module")
def hourly(world):
    ws = windows_when(world, lambda ws: len(ws) >= 52)
    return by_hour(world, ws)


def test_created_collecting_then_a_reference(world):
    m = world["created"]
    assert m["object"] == "drift.monitor" and m["deployment_id"] == DEP
    assert m["reference_requests"] == 2000 and m["min_window_requests"] == 30
    assert m["thresholds"] == {"psi_min": 0.25, "ks_p_max": 0.001, "js_min": 0.1,
                               "chi2_p_max": 0.001, "auc_min": 0.55, "perm_alpha": 0.001,
                               "rate_diff_min": 0.05}
    with client(world["srv"]) as c:
        deadline = time.time() + 60
        while (g := c.get(f"/v1/drift/{DEP}").json())["status"] == "collecting":
            assert time.time() < deadline
            time.sleep(0.1)
    ref = [r for h, r in world["rows"] if h == 0]
    s = g["reference"]["summary"]
    assert s["requests"] == 2000
    assert abs(g["reference"]["end"] - max(r["created_at"] for r in ref) / 1000) <= 1
    assert s["languages"] == {l: float(sum(r["lang"] == l for r in ref)) if l in LANGS else 0.0
                              for l in ["en", "zh", "ja", "ko", "ru", "ar", "other"]}
    assert s["refusals"] == sum(r["refused"] for r in ref) and s["answers"] == 2000
    assert s["truncated"] == sum(r["finish_reason"] == "length" for r in ref)


def test_shifts_alert_in_their_hour_and_nowhere_else(world, hourly):
    unshifted = [hourly[h] for h in range(1, 49)]
    false_alarms = sum(x["alert"] for x in unshifted)
    print(f"\ndrift: false alarms over the 48 unshifted hourly windows: {false_alarms} "
          f"(rate {false_alarms / 48:.4f})")
    for h in (49, 50, 51):
        print(f"drift: hour {h}: alerts {hourly[h]['alerts']}")
    assert false_alarms == 0, [(h, hourly[h]["alerts"]) for h in range(1, 49) if hourly[h]["alert"]]
    assert hourly[0]["metrics"] == {"too_few_requests": True} and not hourly[0]["alert"]
    first = min(h for h, x in hourly.items() if x["alert"])
    assert first == 49
    assert sorted(hourly[49]["alerts"]) == ["embeddings", "prompt_tokens"]
    assert hourly[50]["alerts"] == ["languages", "byte_pieces"]
    assert hourly[51]["alerts"] == ["refusals"]
    assert all(x["n_requests"] == 300 for x in unshifted)


def test_window_numbers_equal_the_python_peers(world, hourly):
    rows = world["rows"]
    ref = [r for h, r in rows if h == 0]
    for h in (1, 49, 50, 51):
        cur = [r for hh, r in rows if hh == h]
        m = hourly[h]["metrics"]
        for field in ("prompt_tokens", "completion_tokens"):
            x = [r[field] for r in ref]
            y = [r[field] for r in cur]
            ks = stats.ks_2samp(x, y, method="auto")
            got = m[field]
            assert got["ks_statistic"] == pytest.approx(ks.statistic, abs=1e-12)
            assert got["ks_pvalue"] == pytest.approx(ks.pvalue, rel=1e-9, abs=1e-300)
            peer = stats_peer.numeric({"ref": x, "cur": y})
            assert got["psi"] == pytest.approx(peer["psi"], abs=1e-9)
            assert got["js"] == pytest.approx(peer["js"], abs=1e-9)
            assert got["wasserstein"] == pytest.approx(peer["wasserstein"], abs=1e-9)
            assert got["band"] == peer["band"]
        rc = [float(sum(r["lang"] == l for r in ref)) for l in LANGS]
        cc = [float(sum(r["lang"] == l for r in cur)) for l in LANGS]
        peer = stats_peer.counts({"ref_counts": rc, "cur_counts": cc})
        lg = m["languages"]
        assert lg["chi2"] == pytest.approx(peer["chi2"], rel=1e-9)
        assert lg["pvalue"] == pytest.approx(peer["chi2_p"], rel=1e-9, abs=1e-300)
        assert lg["dof"] == peer["dof"] and lg["js"] == pytest.approx(peer["js"], abs=1e-9)
        assert lg["psi"] == pytest.approx(peer["psi"], abs=1e-9)
        for key, f in (("refusals", lambda r: r["refused"]),
                       ("truncated", lambda r: r["finish_reason"] == "length")):
            k0, k1 = sum(map(f, ref)), sum(map(f, cur))
            t = stats.chi2_contingency([[k0, len(ref) - k0], [k1, len(cur) - k1]], correction=False)
            got = m[key]
            assert got["rate"] == pytest.approx(k1 / len(cur), abs=1e-15)
            assert got["reference_rate"] == pytest.approx(k0 / len(ref), abs=1e-15)
            assert got["chi2"] == pytest.approx(t.statistic, rel=1e-9)
            assert got["pvalue"] == pytest.approx(t.pvalue, rel=1e-9, abs=1e-300)
        # byte pieces: a rate over the tokens of prompts and completions
        k0 = sum(r["prompt_byte_tokens"] + r["completion_byte_tokens"] for r in ref)
        n0 = sum(r["prompt_tokens"] + r["completion_tokens"] for r in ref)
        k1 = sum(r["prompt_byte_tokens"] + r["completion_byte_tokens"] for r in cur)
        n1 = sum(r["prompt_tokens"] + r["completion_tokens"] for r in cur)
        t = stats.chi2_contingency([[k0, n0 - k0], [k1, n1 - k1]], correction=False)
        got = m["byte_pieces"]
        assert got["rate"] == pytest.approx(k1 / n1, abs=1e-15)
        assert got["reference_rate"] == pytest.approx(k0 / n0, abs=1e-15)
        assert got["chi2"] == pytest.approx(t.statistic, rel=1e-9)
        # embeddings: the reference's in (created_at, id) order, the window's by id,
        # the seed from the deployment and the window's start (docs/evaluation.md)
        def emb(rows_):
            return [np.frombuffer(base64.b64decode(r["embedding"]), "<f4").astype(float)
                    for r in rows_ if "embedding" in r]
        start = hourly[h]["window_start"]
        seed = int.from_bytes(hashlib.sha256(f"{DEP}|{start}".encode()).digest()[:8], "big")
        peer = stats_peer.embedding({
            "ref": emb(sorted(ref, key=lambda r: (r["created_at"], r["id"]))),
            "cur": emb(sorted(cur, key=lambda r: r["id"])), "seed": seed,
            "permutations": 1999})   # B + 1 >= 2 / perm_alpha (ft_drift_embedding_check)
        got = m["embeddings"]
        assert (got["n"], got["reference_n"], got["dim"]) == (len(emb(cur)), len(emb(ref)), EMB_DIM)
        assert got["cosine"] == pytest.approx(peer["cosine"], abs=1e-9)
        assert got["auc"] == pytest.approx(peer["auc"], abs=1e-9)
        assert got["threshold"] == pytest.approx(peer["threshold"], abs=1e-9)
        assert got["pvalue"] == pytest.approx(peer["pvalue"], abs=1e-12)


def test_state_webhooks_and_gauge(world, hourly):
    with client(world["srv"]) as c:
        g = c.get(f"/v1/drift/{DEP}").json()
    # the latest hourly window (51) alerts: the monitor is in alert
    assert g["status"] == "alert" and g["alert_since"] is not None
    assert g["latest"]["hour"]["window_start"] == hourly[51]["window_start"]
    deadline = time.time() + 30
    while True:
        evs = [e for e in world["rec"].events(world["secret"], "monitor.drift.detected")
               if e["data"]["granularity"] == "hour"]
        if len(evs) >= 3 or time.time() > deadline:
            break
        time.sleep(0.2)
    got = sorted((e["data"]["window_start"], e["data"]["alerts"]) for e in evs)
    assert got == [(hourly[h]["window_start"], hourly[h]["alerts"]) for h in (49, 50, 51)]
    assert all(e["data"]["deployment_id"] == DEP and e["data"]["n_requests"] == 300 for e in evs)
    port = int(re.search(r"metrics on http://127\.0\.0\.1:(\d+)/metrics",
                         world["plat"].log("sched.log")).group(1))
    text = httpx.get(f"http://127.0.0.1:{port}/metrics").text
    assert f'ft_drift_alert{{deployment="{DEP}"}} 1' in text
    psi = float(re.search(rf'ft_drift_psi{{deployment="{DEP}",metric="prompt_tokens"}} (\S+)',
                          text).group(1))
    assert psi == pytest.approx(hourly[51]["metrics"]["prompt_tokens"]["psi"], rel=1e-9)


def test_daily_windows(world, hourly):
    days = windows_when(world, lambda ws: len(ws) >= 2, gran="day")
    shifted_day = {(world["t0"] + h * HOUR) // (24 * HOUR) for h in (49, 50, 51)}
    for d in days:
        assert d["window_end"] - d["window_start"] == 86400
        day = d["window_start"] // 86400
        if day not in shifted_day and d["n_requests"] >= 30:
            assert not d["alert"], d


def test_settings_and_reset_recompute(world, hourly):
    with client(world["srv"]) as c:
        r = c.post(f"/v1/drift/{DEP}", json={
            "thresholds": {"psi_min": 10}, "reset": True,
            "refusal_patterns": {"en": ["no refusal phrase like this"], "zh": ["也没有"],
                                 "ja": ["ない"]}})
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "collecting" and r.json()["thresholds"]["psi_min"] == 10
    ws = by_hour(world, windows_when(world, lambda ws: len(ws) >= 52))
    # the same traffic under the new settings: no length alert, no refusals counted
    assert "prompt_tokens" not in ws[49]["alerts"]
    assert ws[51]["metrics"]["refusals"]["rate"] == 0 and not ws[51]["alert"]
    assert ws[50]["alerts"] == ["languages", "byte_pieces"]
    with client(world["srv"]) as c:     # back as before, for the other tests' sake
        c.post(f"/v1/drift/{DEP}", json={"thresholds": {"psi_min": 0.25}, "reset": True,
                                         "refusal_patterns": {}})


def test_bad_input_names_the_field_and_other_teams_see_nothing(world):
    srv = world["srv"]
    cases = [({"thresholds": {"psi_min": -1}}, "thresholds.psi_min"),
             ({"thresholds": {"psi": 0.2}}, "thresholds.psi"),
             ({"thresholds": {"psi_min": "x"}}, "thresholds.psi_min"),
             ({"thresholds": [1]}, "thresholds"),
             ({"refusal_patterns": {"xx": ["a"]}}, "refusal_patterns.xx"),
             ({"refusal_patterns": {"en": [""]}}, "refusal_patterns.en"),
             ({"reference_requests": 5}, "reference_requests"),
             ({"min_window_requests": 0}, "min_window_requests"),
             ({"granularity": "week"}, "granularity")]
    with client(srv) as c:
        for body, param in cases:
            r = c.post(f"/v1/drift/{DEP}", json=body)
            assert r.status_code == 400 and r.json()["error"]["param"] == param, (body, r.text)
        r = c.get(f"/v1/drift/{DEP}/windows", params={"granularity": "week"})
        assert r.status_code == 400 and r.json()["error"]["param"] == "granularity"
        assert c.post("/v1/drift/dep-" + "Z" * 24, json={}).status_code == 404
        assert [m["deployment_id"] for m in c.get("/v1/drift").json()["data"]] == [DEP]
    _, okey = srv.make_team("nosy-drift")
    with client(srv, okey) as c:
        assert c.get(f"/v1/drift/{DEP}").status_code == 404
        assert c.get(f"/v1/drift/{DEP}/windows").status_code == 404
        assert c.post(f"/v1/drift/{DEP}", json={}).status_code == 404
        assert c.delete(f"/v1/drift/{DEP}").status_code == 404
        assert c.get("/v1/drift").json()["data"] == []


def test_ftctl_drift(world, build_dir):
    from api_helpers import ftctl
    srv = world["srv"]
    ws = by_hour(world, windows_when(world, lambda ws: len(ws) >= 52))
    out = ftctl(srv, build_dir, "drift", "show", DEP, "--limit", "5").stdout.splitlines()
    assert out[0].startswith(f"deployment {DEP}: alert since ")
    assert out[1].split()[:3] == ["WINDOW", "(UTC)", "N"]
    first = out[2].split()           # the newest window first: hour 51
    assert first[-1] == "refusals" and int(first[1]) == 300
    assert float(first[4]) == pytest.approx(ws[51]["metrics"]["refusals"]["rate"], abs=1e-3)
    assert float(first[2]) == pytest.approx(ws[51]["metrics"]["prompt_tokens"]["psi"], abs=1e-3)
    p = ftctl(srv, build_dir, "--json", "drift", "show", DEP, "--granularity", "day")
    j = json.loads(p.stdout)
    assert j["monitor"]["deployment_id"] == DEP and all(
        w["granularity"] == "day" for w in j["windows"]["data"])
    p = ftctl(srv, build_dir, "drift", "set", DEP, "--option", "psi_min=-3", check=1)
    assert "thresholds.psi_min" in p.stderr
    assert ftctl(srv, build_dir, "drift", "show", "dep-" + "N" * 24, check=1).returncode == 1
