"""The web console (webui/) in a real headless Chromium (Debian's chromium,
driven by playwright) against the real platform: ft-api serving the console,
ft-scheduler, one ft-worker running ft-train on the bundled tiny model.

What a user does: sign in; upload a dataset with errors and see each error's
line; upload a good one and create a job through the wizard; watch its loss
curve grow while it trains; cancel another job; redeliver a webhook; open
the version the job produced and read its lineage, move an alias and see the
history, export the version and download every file it wrote, continue
training from it. Then every page in both languages at 1280x800 and
390x844, screenshotted under the test temp dir (console-shots/), with no
console error and no failed request anywhere; a dataset row, a job suffix,
a model description, a registered model's and a version's description, a
tag and an export format's option that hold <img src=x onerror=...> render
as text; team A never sees team B's objects; a viewer sees no write button
and the API refuses the writes."""
import hashlib
import http.server
import json
import math
import os
import re
import secrets
import signal
import subprocess
import threading
import time
from pathlib import Path

import httpx
import psycopg
import pytest

from api_helpers import client, upload, wait_status
from test_drift import push_traffic, traffic
from test_experiments import push_requests, wait_logged
from test_serve import Server

import playwright.sync_api as pw  # tests/requirements.txt; the browser is Debian's chromium

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "data" / "customer-service"
MODEL = ROOT / "data" / "models" / "ftplat-tiny-cs"
CHROMIUM = "/usr/bin/chromium"
XSS = '<img src=x onerror="document.title=\'pwned\';window.__xss=1">'
XSS_SUFFIX = "<img src=x onerror=window.__xss=1>"
SECRET_KEY = secrets.token_hex(32)                    # seals the endpoint's credential
SERVE_TOKEN = "ep-token-" + secrets.token_hex(12)     # ft-serve's own bearer token
SIZES = {"desktop": (1280, 800), "phone": (390, 844)}
HOUR = 3600_000
STRINGS = {lang: json.loads((ROOT / "webui" / "i18n" / f"{lang}.json").read_text()) for lang in ("en", "zh")}


# The console's number formats (webui/js/i18n.js fmtNum / fmtInt: Intl with
# en-GB or zh-CN, which write the same digits), written again here.
def fmt_num(x, digits):
    if x is None:
        return "\u2014"
    s = f"{x:,.{digits}f}"
    return s.rstrip("0").rstrip(".") if "." in s else s


def fmt_pct(x):
    return "\u2014" if x is None else f"{fmt_num(100 * x, 1)} %"


def fmt_p(p):
    """monitor.js fmtP: three decimals, or Number.toExponential(1) below 0.001."""
    if p is None:
        return "\u2014"
    if 0 < p < 0.001:
        mant, exp = f"{p:.1e}".split("e")
        return f"{mant}e{int(exp)}"
    return fmt_num(p, 3)


class Receiver:
    """A webhook endpoint on loopback that answers 204."""

    def __init__(self):
        self.bodies = []
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                outer.bodies.append(self.rfile.read(int(self.headers["content-length"])))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *a):
                pass

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.srv.server_address[1]}/hooks"
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()


def bad_dataset():
    """Lines 2, 4 and 5 are wrong, each in its own way; 1 and 3 are good."""
    good = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}
    lines = [json.dumps(good), '{"messages": "oops"}', json.dumps(good), "{not json",
             json.dumps({"messages": [{"role": "user", "content": "only a question"}]})]
    return ("\n".join(lines) + "\n").encode(), {2, 4, 5}


@pytest.fixture(scope="module")
def stack(build_dir, database_url, redis_url, tmp_path_factory):
    from conftest import _api_server
    srv, dbname = _api_server(build_dir, database_url, redis_url, tmp_path_factory,
                              webhook_allow_http="true", webhook_allow_cidrs="127.0.0.0/8",
                              stream_poll_ms=150, stream_heartbeat_ms=3000, secret_key=SECRET_KEY,
                              endpoint_allow_http="true", endpoint_allow_cidrs="127.0.0.1/32")
    tmp = tmp_path_factory.mktemp("console")
    rdb = redis_url.rsplit("/", 1)[0] + "/13"
    import redis
    redis.Redis.from_url(rdb).flushdb()
    env = dict(os.environ, FT_DATABASE_URL=srv.db_url, FT_REDIS_URL=rdb,
               FT_STORE_DIR=str(srv.store_dir), FT_WORK_DIR=str(tmp / "work"),
               FT_CACHE_DIR=str(tmp / "cache"),
               FT_TRAINER_PATH=str(build_dir / "trainer" / "ft-train"), FT_SCHED_TICK_MS="50",
               FT_HEARTBEAT_MS="500", FT_LEASE_MS="10000", FT_WORKER_ID="wrk-console",
               FT_NUM_THREADS="2", FT_CHECKPOINT_STEPS="4", FT_WEBHOOK_ALLOW_HTTP="true",
               FT_WEBHOOK_ALLOW_CIDRS="127.0.0.0/8", FT_WEBHOOK_BACKOFF_MS="200",
               # the deployment controller, the experiments' results (docs/deployments.md)
               FT_SECRET_KEY=SECRET_KEY, FT_ENDPOINT_ALLOW_HTTP="true", FT_ENDPOINT_ALLOW_CIDRS="127.0.0.1/32",
               FT_DEPLOY_INTERVAL_MS="400", FT_DEPLOY_PROBE_TIMEOUT_MS="1500", FT_DEPLOY_DIR=str(tmp / "deploy"),
               FT_EXPERIMENT_INTERVAL_MS="300",
               # the drift leader computes each finished hour at once (test_drift.py's)
               FT_DRIFT_INTERVAL_MS="300", FT_DRIFT_GRACE_S="0")
    procs = [subprocess.Popen([str(build_dir / "scheduler" / "ft-scheduler")], env=env,
                              stdout=open(tmp / "sched.log", "w"), stderr=subprocess.STDOUT),
             subprocess.Popen([str(build_dir / "worker" / "ft-worker")], env=env,
                              stdout=open(tmp / "worker.log", "w"), stderr=subprocess.STDOUT)]
    receiver = Receiver()
    # a real ft-serve reading versions from the platform's store: the endpoint
    # the deployments page deploys on (tests/system/test_deployments.py's way)
    serve = Server(build_dir, tmp, {}, env={"FT_STORE_DIR": str(srv.store_dir)}, store="true",
                   token=SERVE_TOKEN, database_url=srv.db_url, redis_url=rdb)
    with client(srv) as c:
        r = c.post("/v1/models", json={"name": "ftplat-tiny-cs", "path": str(MODEL),
                                       "description": f"Bilingual support model {XSS}"})
        assert r.status_code == 200, r.text
        hook = c.post("/v1/webhooks", json={"url": receiver.url, "events": ["fine_tuning.job.succeeded",
                                                                              "fine_tuning.job.cancelled"]})
        assert hook.status_code == 200, hook.text
    # Team B: objects team A must never see.
    b_team, b_key = srv.make_team("beta")
    b_file = upload(srv, (DATA / "train.jsonl").read_bytes()[:4000].rsplit(b"\n", 1)[0] + b"\n",
                    key=b_key, name="beta-secret-data.jsonl")
    with client(srv, b_key) as c:
        assert c.post("/v1/models", json={"name": "beta-secret-model", "path": str(MODEL)}).status_code == 200
        b_ds = c.post("/v1/datasets", json={"file_id": b_file["id"], "name": "beta-secret-dataset"}).json()
        b_job = c.post("/v1/fine_tuning/jobs", json={"model": "beta-secret-model", "training_file": b_file["id"],
                                                     "suffix": "beta-secret-job"}).json()
        assert "id" in b_job, b_job
        c.post(f"/v1/fine_tuning/jobs/{b_job['id']}/cancel")
        assert c.post("/v1/registry/models", json={"name": "beta-secret-registry",
                                                   "description": "beta-secret-description"}).status_code == 200
        b_hook = c.post("/v1/webhooks", json={"url": receiver.url + "/beta-secret",
                                              "events": ["fine_tuning.job.failed"]}).json()
        assert c.post("/v1/endpoints", json={"name": "beta-secret-endpoint", "kind": "vllm",
                                             "url": serve.url}).status_code == 200
    shots = Path(os.environ.get("FT_TEST_TMP", str(tmp))) / "console-shots"
    shots.mkdir(parents=True, exist_ok=True)
    with pw.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield dict(srv=srv, tmp=tmp, browser=browser, shots=shots, hook=hook.json(), receiver=receiver,
                   beta=dict(job=b_job["id"], ds=b_ds["id"], file=b_file["id"], hook=b_hook["id"],
                             names=["beta-secret-job", "beta-secret-model", "beta-secret-dataset", "beta-secret-data.jsonl",
                                    "/hooks/beta-secret", "beta-secret-registry", "beta-secret-description",
                                    "beta-secret-endpoint",
                                    b_team]),
                   viewer=srv.make_key(srv.team, "viewer"), state={}, serve=serve, rdb=rdb)
        browser.close()
    receiver.srv.shutdown()
    serve.p.send_signal(signal.SIGTERM)
    serve.p.wait(30)
    for pr in procs:
        pr.send_signal(signal.SIGTERM)
    for pr in procs:
        try:
            pr.wait(30)
        except subprocess.TimeoutExpired:
            pr.kill()
    rc = srv.stop()
    with psycopg.connect(database_url, autocommit=True) as c:
        c.execute(f'DROP DATABASE "{dbname}" WITH (FORCE)')
    assert rc == 0, f"ft-api exited {rc}:\n{srv.log_path.read_text()[-4000:]}"


class Watch:
    """Everything a page says that it should not: console errors, uncaught
    exceptions, failed requests, HTTP errors. The one expected failure is a
    live event stream aborted on purpose when its page is left."""

    def __init__(self, page):
        self.problems = []
        page.on("console", lambda m: m.type in ("error", "warning") and self.problems.append(f"console.{m.type}: {m.text}"))
        page.on("pageerror", lambda e: self.problems.append(f"pageerror: {e}"))
        page.on("requestfailed", self._failed)
        page.on("response", lambda r: r.status >= 400 and self.problems.append(f"HTTP {r.status} {r.request.method} {r.url}"))

    def _failed(self, req):
        if "stream=true" in req.url and "ERR_ABORTED" in (req.failure or ""):
            return
        self.problems.append(f"request failed: {req.method} {req.url} {req.failure}")

    def check(self, where):
        assert not self.problems, f"{where}: {self.problems}"


def open_page(stack, lang="en", size="desktop", key=None):
    w, hgt = SIZES[size]
    ctx = stack["browser"].new_context(viewport={"width": w, "height": hgt},
                                       locale="zh-CN" if lang == "zh" else "en-GB")
    ctx.add_init_script(f"localStorage.setItem('ftplat.lang', '{lang}')")
    page = ctx.new_page()
    watch = Watch(page)
    page.set_default_timeout(20000)
    page.goto(stack["srv"].url + "/")
    page.fill("input[name=key]", key or stack["srv"].key)
    page.click("form button[type=submit]")
    page.wait_for_selector("[data-page=jobs]")
    return ctx, page, watch


def settle(page):
    """Wait until nothing on the page says it is loading."""
    page.wait_for_function("() => !document.querySelector('[aria-busy=true]')")
    page.wait_for_timeout(150)


def no_xss(page, where):
    assert page.evaluate("window.__xss") is None, f"{where}: an injected handler ran"
    assert page.evaluate("document.querySelectorAll('img').length") == 0, f"{where}: an <img> was created"
    assert "pwned" not in page.title(), where


def polyline_points(page, series):
    return page.evaluate(f"""() => {{
        const el = document.querySelector('[data-series="{series}"]');
        return el ? Number(el.dataset.points) : 0; }}""")


def test_sign_in_and_the_sse_parser(stack):
    ctx, page, watch = open_page(stack)
    assert page.locator(".who").inner_text().startswith("acme")
    # The console's SSE parser against hand-made streams: CRLF split across
    # chunks, a lone CR, comments, multi-line data, id kept across events.
    got = page.evaluate("""async () => {
        const { SseParser } = await import('/console/js/sse.js');
        const out = [];
        const p = new SseParser((e) => out.push(e));
        for (const c of ['retry: 3000\\r', '\\n\\r\\nid: a\\ndata: {"x"', ':1}\\n\\n: heartbeat\\n\\n',
                         'data: one\\rdata: two\\r\\r', 'event: end\\ndata: {}\\n', '\\n']) p.feed(c);
        return { out, retry: p.retry };
    }""")
    assert got["retry"] == 3000
    assert got["out"] == [{"event": "message", "data": '{"x":1}', "id": "a"},
                          {"event": "message", "data": "one\ntwo", "id": "a"},
                          {"event": "end", "data": "{}", "id": "a"}]
    watch.check("sign-in")
    ctx.close()


def test_upload_with_errors_shows_each_line(stack, tmp_path):
    data, bad_lines = bad_dataset()
    ctx, page, watch = open_page(stack)
    page.goto(stack["srv"].url + "/#/new")
    page.wait_for_selector("[data-picker=training] input[type=file]")
    page.set_input_files("[data-picker=training] input[type=file]",
                         files=[{"name": "broken.jsonl", "mimeType": "application/jsonl", "buffer": data}])
    page.wait_for_selector("[data-picker=training] .report[data-status=invalid]", timeout=30000)
    lines = page.eval_on_selector_all("[data-picker=training] [data-line]", "els => els.map(e => Number(e.dataset.line))")
    assert set(lines) == bad_lines
    text = page.inner_text("[data-picker=training] .report")
    for n in bad_lines:
        assert f"line {n}:" in text
    assert page.is_disabled("button[data-action=next]")
    watch.check("wizard with a bad file")
    ctx.close()


def test_wizard_creates_a_job_and_its_loss_curve_grows(stack):
    train = (DATA / "train.jsonl").read_text().splitlines()[:47]
    xss_row = json.dumps({"messages": [{"role": "user", "content": f"my order {XSS}"},
                                       {"role": "assistant", "content": "Let me check that for you."}]})
    train_bytes = ("\n".join([xss_row] + train) + "\n").encode()
    val_bytes = ("\n".join((DATA / "validation.jsonl").read_text().splitlines()[:12]) + "\n").encode()
    ctx, page, watch = open_page(stack)
    page.goto(stack["srv"].url + "/#/new")
    page.set_input_files("[data-picker=training] input[type=file]",
                         files=[{"name": "support.jsonl", "mimeType": "application/jsonl", "buffer": train_bytes}])
    page.wait_for_selector("[data-picker=training] .report[data-status=valid]", timeout=30000)
    # The preview renders the rows as conversations, the XSS row as text.
    first_turn = page.locator("[data-picker=training] .convo .turn.user").first.inner_text()
    assert XSS in first_turn
    no_xss(page, "wizard preview")
    page.set_input_files("[data-picker=validation] input[type=file]",
                         files=[{"name": "support-val.jsonl", "mimeType": "application/jsonl", "buffer": val_bytes}])
    page.wait_for_selector("[data-picker=validation] .report[data-status=valid]", timeout=30000)
    shot = lambda name: page.screenshot(path=str(stack["shots"] / f"wizard-{name}-en-desktop.png"), full_page=True)
    shot("1-data")
    page.click("button[data-action=next]")
    page.select_option("select[required]", "ftplat-tiny-cs")
    shot("2-model")
    assert XSS in page.inner_text("[data-description]")
    page.fill("input[maxlength='64']", XSS_SUFFIX)
    page.fill("input[data-field=registered_model]", "support-bot")
    page.click("button[data-action=next]")
    page.fill("input[data-hp=n_epochs]", "1")
    page.fill("input[data-hp=batch_size]", "4")
    page.fill("input[data-hp=learning_rate_multiplier]", "10")
    shot("3-settings")
    page.click("button[data-action=next]")
    page.wait_for_selector("[data-estimate] .cards")
    shot("4-review")
    # The estimate on the page is the API's: compare with the route itself.
    body = json.loads(page.inner_text("[data-request]"))
    with client(stack["srv"]) as c:
        est = c.post("/v1/fine_tuning/jobs/estimate", json=body).json()
    assert est["training_examples"] == 48 and est["steps"] == 12
    cards = page.inner_text("[data-estimate]")
    assert f"{est['training_tokens']:,}" in cards and f"{est['total_tokens']:,}" in cards
    page.click("button[data-write=create-job]")
    page.wait_for_selector("[data-page='jobs/:id'] [data-chart-id=loss]")
    job_id = page.url.rsplit("/", 1)[1]
    stack["state"]["job"] = job_id
    stack["state"]["train_sha256"] = hashlib.sha256(train_bytes).hexdigest()
    assert XSS_SUFFIX in page.inner_text("h1")
    # The curve grows while the job trains: more points later than earlier.
    page.wait_for_function("() => Number((document.querySelector('[data-series=train_loss]') || {dataset: {}}).dataset.points || 0) >= 2",
                           timeout=240000)
    seen = polyline_points(page, "train_loss")
    page.wait_for_function(f"() => Number(document.querySelector('[data-series=train_loss]').dataset.points) > {seen}",
                           timeout=120000)
    assert seen < 12
    page.wait_for_selector(".badge[data-state=succeeded]", timeout=240000)
    page.wait_for_function("() => Number(document.querySelector('[data-series=train_loss]').dataset.points) === 12")
    # Every point is one the API reports (peer: the events route).
    with client(stack["srv"]) as c:
        ev = c.get(f"/v1/fine_tuning/jobs/{job_id}/events", params={"limit": 100}).json()["data"]
    steps = {e["data"]["step"] for e in ev if e["type"] == "metrics" and e["data"].get("type") == "step"}
    evals = {e["data"]["step"] for e in ev if e["type"] == "metrics" and e["data"].get("type") == "eval"}
    assert len(steps) == 12 and polyline_points(page, "eval_loss") == len(evals) >= 2
    assert polyline_points(page, "learning_rate") == 12
    page.wait_for_selector("[data-progress] progress[value='12']")
    page.wait_for_function("() => document.querySelectorAll('table caption').length >= 2")
    assert "ckpt-step-12" in page.inner_text("body")
    no_xss(page, "job page")
    watch.check("wizard and job page")
    ctx.close()
    # A short DPO job for the rewards curves (it runs while the next tests do).
    pairs = (DATA / "preference.jsonl").read_text().splitlines()[:16]
    pval = (DATA / "preference_validation.jsonl").read_text().splitlines()[:4]
    tf = upload(stack["srv"], ("\n".join(pairs) + "\n").encode(), name="pairs.jsonl")
    vf = upload(stack["srv"], ("\n".join(pval) + "\n").encode(), name="pairs-val.jsonl")
    with client(stack["srv"]) as c:
        r = c.post("/v1/fine_tuning/jobs", json={
            "model": "ftplat-tiny-cs", "training_file": tf["id"], "validation_file": vf["id"], "suffix": "dpo-pairs",
            "method": {"type": "dpo", "dpo": {"hyperparameters": {"n_epochs": 1, "batch_size": 4, "beta": 0.2}}}})
        assert r.status_code == 200, r.text
    stack["state"]["dpo"] = r.json()["id"]


def support_file(c):
    """The wizard's test's training file (support.jsonl), or, run without it
    (-k), a file of its own by that name: 16 rows of the bundled data."""
    files = c.get("/v1/files").json()["data"]
    train = next((f for f in files if f["filename"] == "support.jsonl"), None)
    if train is None:
        body = "\n".join((DATA / "train.jsonl").read_text().splitlines()[:16]) + "\n"
        train = c.post("/v1/files", data={"purpose": "fine-tune"},
                       files={"file": ("support.jsonl", body.encode())}).json()
    return train


def test_cancel_another_job(stack):
    with client(stack["srv"]) as c:
        train = support_file(c)
        job = c.post("/v1/fine_tuning/jobs", json={"model": "ftplat-tiny-cs", "training_file": train["id"],
                                                   "suffix": "to-cancel",
                                                   "hyperparameters": {"n_epochs": 50, "batch_size": 2}}).json()
    ctx, page, watch = open_page(stack)
    page.goto(stack["srv"].url + f"/#/jobs/{job['id']}")
    page.wait_for_selector("button[data-write=cancel]")
    page.click("button[data-write=cancel]")
    page.click("button[data-write=cancel].armed")
    page.wait_for_selector(".badge[data-state=cancelled]", timeout=60000)
    with client(stack["srv"]) as c:
        assert c.get(f"/v1/fine_tuning/jobs/{job['id']}").json()["state"] == "cancelled"
    # The job list shows it cancelled too.
    page.goto(stack["srv"].url + "/#/jobs")
    page.wait_for_selector(f"tr[data-id='{job['id']}'] .badge[data-state=cancelled]")
    no_xss(page, "jobs list")
    if "job" in stack["state"]:   # the wizard's job, its suffix an XSS payload, shown as text
        assert XSS_SUFFIX in page.inner_text("table")
    stack["state"]["cancelled"] = job["id"]
    watch.check("cancel")
    ctx.close()


def test_pause_and_resume_a_job(stack):
    """The job page's Pause: the badge goes to paused (through pausing when a
    worker runs it: its trainer checkpoints and stops), the API agrees, the
    list's paused filter shows it, and Resume queues it again."""
    with client(stack["srv"]) as c:
        train = support_file(c)
        job = c.post("/v1/fine_tuning/jobs", json={"model": "ftplat-tiny-cs", "training_file": train["id"],
                                                   "suffix": "to-pause",
                                                   "hyperparameters": {"n_epochs": 50, "batch_size": 2}}).json()
    wait_status(stack["srv"], job["id"], ("queued", "running"), timeout=60)
    ctx, page, watch = open_page(stack)
    page.goto(stack["srv"].url + f"/#/jobs/{job['id']}")
    page.click("button[data-write=pause]")
    page.wait_for_selector(".badge[data-state=paused]", timeout=60000)
    with client(stack["srv"]) as c:
        got = c.get(f"/v1/fine_tuning/jobs/{job['id']}").json()
        assert got["state"] == "paused" and got["status"] == "paused" and got["worker"] is None
    assert page.query_selector("button[data-write=pause]") is None
    page.goto(stack["srv"].url + "/#/jobs")
    page.select_option("select:has(option[value=paused])", "paused")
    page.wait_for_selector(f"tr[data-id='{job['id']}'] .badge[data-state=paused]")
    page.goto(stack["srv"].url + f"/#/jobs/{job['id']}")
    page.click("button[data-write=resume]")
    page.wait_for_selector(".badge:not([data-state=paused])", timeout=30000)
    with client(stack["srv"]) as c:
        assert c.get(f"/v1/fine_tuning/jobs/{job['id']}").json()["state"] in ("queued", "dispatched", "running")
        c.post(f"/v1/fine_tuning/jobs/{job['id']}/cancel")     # 50 epochs: not this test's to finish
    watch.check("pause")
    ctx.close()


def test_webhook_deliveries_and_redelivery(stack):
    hook = stack["hook"]["id"]
    with client(stack["srv"]) as c:
        deadline = time.time() + 30
        while not [d for d in c.get(f"/v1/webhooks/{hook}/deliveries").json()["data"] if d["status"] == "succeeded"]:
            assert time.time() < deadline, "no webhook delivery succeeded"
            time.sleep(0.2)
    ctx, page, watch = open_page(stack)
    page.goto(stack["srv"].url + f"/#/admin/webhooks/{hook}")
    page.wait_for_selector("button[data-write=redeliver]")
    n = len(stack["receiver"].bodies)
    page.locator("button[data-write=redeliver]").first.click()
    page.wait_for_selector(".toast.show")
    deadline = time.time() + 20
    while len(stack["receiver"].bodies) <= n:
        assert time.time() < deadline, "the redelivery never arrived"
        time.sleep(0.1)
    watch.check("webhook deliveries")
    ctx.close()


def test_change_a_keys_name_rate_limit_and_expiry(stack):
    """The keys page's edit form is POST /v1/keys/{id}: it shows the key's
    values, sends what changed, and the new limit holds at once."""
    from datetime import datetime
    from zoneinfo import ZoneInfo
    srv = stack["srv"]
    in_ten_days = int(time.time()) + 10 * 86400
    with client(srv) as c:
        k = c.post("/v1/keys", json={"role": "member", "name": "edit-me", "rate_limit_per_min": 600,
                                     "expires_at": in_ten_days}).json()
    form = "form[data-write=update-key]"

    def the_key():
        with client(srv) as c:
            return next(x for x in c.get("/v1/keys", params={"limit": 100}).json()["data"] if x["id"] == k["id"])

    def edit(**fields):
        """Open the key's form, fill the inputs of those types, save, read the key back."""
        page.click(f"button[data-write=edit-key][data-id={k['id']}]")
        for kind, value in fields.items():
            page.fill(f"{form} input[type={kind}]", value)
        page.click(f"{form} button[type=submit]")
        page.wait_for_selector(f"{form}", state="detached")
        return the_key()

    ctx, page, watch = open_page(stack)
    page.goto(srv.url + "/#/admin/keys")
    page.click(f"button[data-write=edit-key][data-id={k['id']}]")
    page.wait_for_selector(form)
    tz = ZoneInfo(page.evaluate("Intl.DateTimeFormat().resolvedOptions().timeZone"))
    assert page.input_value(f"{form} input[type=text]") == "edit-me"
    assert page.input_value(f"{form} input[type=number]") == "600"
    assert page.input_value(f"{form} input[type=date]") == \
        datetime.fromtimestamp(in_ten_days, tz).strftime("%Y-%m-%d")
    assert k["prefix"] in page.inner_text(f"{form} h2")
    page.click(f"{form} button[type=button]")  # closed; the next edit opens it again
    # a new name and limit, the expiry left alone: it keeps its exact second
    got = edit(text=XSS, number="7")
    assert (got["name"], got["rate_limit_per_min"], got["expires_at"]) == (XSS, 7, in_ten_days)
    page.wait_for_function(f"""() => [...document.querySelectorAll('tbody tr')].some(tr =>
        tr.textContent.includes({json.dumps(k['prefix'])}) && tr.cells[3].textContent === '7')""")
    no_xss(page, "keys")
    # the limit holds in ft-api now: 7 calls in a minute, the 8th refused
    while time.time() % 60 > 50:
        time.sleep(1)
    with client(srv, k["key"]) as c:
        codes = [c.get("/v1/fine_tuning/jobs").status_code for _ in range(8)]
    assert codes == [200] * 7 + [429], codes
    # another day, then no expiry
    got = edit(date="2031-05-02")
    assert got["expires_at"] == int(datetime(2031, 5, 2, 23, 59, 59, tzinfo=tz).timestamp())
    got = edit(date="")
    assert got["expires_at"] is None and got["rate_limit_per_min"] == 7
    watch.check("keys")
    # revoked while the form is open: the API's 409 is shown in the form, nothing changes
    page.click(f"button[data-write=edit-key][data-id={k['id']}]")
    with client(srv) as c:
        assert c.delete(f"/v1/keys/{k['id']}").status_code == 200
    page.fill(f"{form} input[type=number]", "9")
    page.click(f"{form} button[type=submit]")
    page.wait_for_selector(f"{form} .notice.bad")
    assert f"key {k['id']} is revoked" in page.inner_text(f"{form} .notice.bad")
    assert the_key()["rate_limit_per_min"] == 7
    assert [p for p in watch.problems if not p.startswith("console.error: Failed to load resource")] == \
        [f"HTTP 409 POST {srv.url}/v1/keys/{k['id']}"]
    ctx.close()
    # the button in Chinese
    ctx, page, watch = open_page(stack, lang="zh")
    page.goto(srv.url + "/#/admin/keys")
    page.wait_for_selector("button[data-write=edit-key]")
    assert page.inner_text("button[data-write=edit-key] >> nth=0") == STRINGS["zh"]["keys.edit"]
    watch.check("keys zh")
    ctx.close()


def number(text):
    """A number as the console formats it (en-GB: "1,234.5")."""
    return float(text.replace(",", ""))


def test_the_version_a_job_produced_and_its_lineage(stack):
    """From the job page to the version it produced: the lineage is the
    API's, and the digests are the ones this test computes (hashlib over the
    bytes it uploaded); the hyperparameters are those the wizard sent, with
    the learning-rate multiplier folded in (10 x the trainer's 2e-4)."""
    s = stack["state"]
    srv = stack["srv"]
    with client(srv) as c:
        job = c.get(f"/v1/fine_tuning/jobs/{s['job']}").json()
        r = c.post("/v1/registry/models/support-bot", json={"description": f"Support answers {XSS}"})
        assert r.status_code == 200, r.text
        r = c.post("/v1/registry/models/support-bot/versions/1",
                   json={"description": f"First cut\n{XSS}", "tags": {"note": XSS}})
        assert r.status_code == 200, r.text
        v1 = r.json()
    lin = v1["lineage"]
    assert lin["job"]["id"] == s["job"] and lin["training_file"]["sha256"] == s["train_sha256"]
    ctx, page, watch = open_page(stack)
    page.goto(srv.url + f"/#/jobs/{s['job']}")
    page.wait_for_selector("[data-produced-version] a")
    assert page.inner_text("[data-produced-version] a") == "support-bot/1"
    # a second version to move an alias to: the checkpoint at step 8, promoted here
    page.select_option("[data-field=checkpoint]", f"{job['fine_tuned_model']}:ckpt-step-8")
    page.select_option("form[data-write=promote-checkpoint] [data-field=registered_model]", "support-bot")
    page.click("form[data-write=promote-checkpoint] button[type=submit]")
    page.wait_for_selector("[data-promoted='support-bot/2']")
    with client(srv) as c:
        v2 = c.get("/v1/registry/models/support-bot/versions/2").json()
    assert v2["lineage"]["checkpoint"]["step"] == 8 and v2["lineage"]["job"]["id"] == s["job"]
    page.click("[data-produced-version] a")
    page.wait_for_selector("[data-page='registry/:name/:version'] .lineage")
    assert page.url.endswith("#/registry/support-bot/1")
    node = lambda kind: page.locator(f".lineage [data-lineage={kind}]")
    assert "ftplat-tiny-cs" in node("base_model").inner_text()
    assert node("base_model").locator("[data-sha256]").get_attribute("data-sha256") == lin["base_model"]["sha256"]
    assert node("training_file").locator("[data-sha256]").get_attribute("data-sha256") == s["train_sha256"]
    assert lin["training_file"]["id"] in node("training_file").inner_text()
    # the dataset and the job by their names (the job's is the XSS suffix, as text)
    page.wait_for_function("() => document.querySelector('[data-lineage=dataset] a').textContent === 'support.jsonl'")
    page.wait_for_function(f"() => document.querySelector('[data-lineage=job] a').textContent === {json.dumps(XSS_SUFFIX)}")
    assert node("job").locator("a").get_attribute("href") == f"#/jobs/{s['job']}"
    assert node("version").inner_text().split("\n")[1] == "support-bot/1"
    assert node("version").locator("[data-sha256]").get_attribute("data-sha256") == v1["artifact"]["sha256"]
    # final metrics and hyperparameters, each the API's (6 decimals shown)
    for k, want in lin["metrics"].items():
        assert abs(number(page.inner_text(f"[data-metric='{k}']")) - want) <= 5e-7, k
    hp = lambda k: page.inner_text(f"[data-hp='{k}']")
    assert (hp("n_epochs"), hp("batch_size"), hp("lora.r")) == ("1", "4", str(lin["hyperparameters"]["lora"]["r"]))
    assert abs(number(hp("learning_rate")) - 10 * 2e-4) < 1e-12
    assert hp("lora.target_modules") == ", ".join(lin["hyperparameters"]["lora"]["target_modules"])
    # descriptions and tags hold markup: text
    assert XSS in page.inner_text("[data-description]") and XSS in page.inner_text("[data-tag=note]")
    # its own files, the API's list
    files = page.eval_on_selector_all("[data-download]", "els => els.map(e => e.dataset.download)")
    assert files == [f["path"] for f in v1["artifact"]["files"]]
    no_xss(page, "version page")
    watch.check("version page")
    ctx.close()


def test_move_an_alias_and_see_the_history(stack):
    srv = stack["srv"]
    ctx, page, watch = open_page(stack)
    page.goto(srv.url + "/#/registry/support-bot")
    page.wait_for_selector("form[data-write=set-alias]")
    assert XSS in page.inner_text("[data-description]")
    # set production -> 1
    page.fill("form[data-write=set-alias] input[type=text]", "production")
    page.select_option("form[data-write=set-alias] select", "1")
    page.click("form[data-write=set-alias] button[type=submit]")
    page.wait_for_selector("[data-alias-version=production] a")
    assert page.inner_text("[data-alias-version=production]") == "support-bot/1"
    # move it to 2, which asks first, naming the move
    page.select_option("[data-move-to=production]", "2")
    page.click("button[data-write=move-alias][data-alias=production]")
    assert page.inner_text("button[data-write=move-alias][data-alias=production]") == "Move production from 1 to 2?"
    with client(srv) as c:     # nothing moved yet
        assert {a["alias"]: a["version"] for a in c.get("/v1/registry/models/support-bot/aliases").json()["data"]} \
            == {"production": 1}
    page.click("button[data-write=move-alias][data-alias=production].armed")
    page.wait_for_function("() => document.querySelector('[data-alias-version=production]').textContent === 'support-bot/2'")
    # the history: newest first, as the API keeps it
    page.wait_for_function("() => document.querySelectorAll('[data-change]').length === 2")
    with client(srv) as c:
        hist = c.get("/v1/registry/models/support-bot/alias_history").json()["data"]
        assert c.get("/v1/registry/models/support-bot/versions/production").json()["version"] == 2
    assert [(h["action"], h["from_version"], h["to_version"]) for h in hist] == [("set", 1, 2), ("set", None, 1)]
    rows = page.eval_on_selector_all("tbody tr:has([data-change])", "trs => trs.map(tr => [...tr.cells].map(c => c.innerText))")
    assert [r[1:5] for r in rows] == [["production", "set", "support-bot/1", "support-bot/2"],
                                      ["production", "set", "—", "support-bot/1"]]
    # an admin protects it; then a member sees no control for it, and the API refuses the member
    page.click("button[data-write=protect-alias][data-alias=production]")
    page.wait_for_selector("[data-protected=production]")
    watch.check("aliases")
    ctx.close()
    member = srv.make_key(srv.team, "member")
    ctx, page, watch = open_page(stack, key=member)
    page.goto(srv.url + "/#/registry/support-bot")
    page.wait_for_selector("[data-protected=production]")
    assert page.locator("[data-write=move-alias]").count() == 0
    assert "only an admin" in page.inner_text("tr[data-id=production]")
    assert page.locator("form[data-write=set-alias]").count() == 1       # a member sets other aliases
    watch.check("aliases as a member")
    ctx.close()
    with client(srv, member) as c:
        r = c.post("/v1/registry/models/support-bot/aliases/production", json={"version": 1})
        assert r.status_code == 403 and r.json()["error"]["code"] == "protected_alias"


def test_export_a_version_and_download_its_files(stack, tmp_path):
    """The export form is the API's table of formats (every format that takes
    an adapter, every option with its choices or range); a merged fp32
    export runs on the worker, its progress and events show, and every file
    it wrote downloads from the page with the bytes and SHA-256 the API
    serves (peer: hashlib over an httpx download of the same file)."""
    srv = stack["srv"]
    with client(srv) as c:
        formats = c.get("/v1/registry/export_formats").json()["data"]
    adapter_formats = [f for f in formats if "adapter" in f["versions"]]
    ctx, page, watch = open_page(stack)
    # An option holding markup renders as text. The formats are the server's
    # own table (C), which holds none, so for this one look the answer is
    # rewritten on its way to the page: a choice and an option (whose help
    # line has no translation, so the API's text shows) carry the payload.
    def rewrite(route):
        body = route.fetch().json()
        body["data"][0]["options"][0]["choices"].append(XSS)
        body["data"][0]["options"].append({"name": "note", "type": "choice", "choices": [XSS], "default": XSS,
                                           "description": f"help {XSS}"})
        route.fulfill(json=body)
    page.route("**/v1/registry/export_formats", rewrite)
    page.goto(srv.url + "/#/registry/support-bot/1")
    page.wait_for_selector("form[data-write=create-export] [data-option=note]")
    form_text = page.inner_text("form[data-write=create-export]")
    assert f"help {XSS}" in form_text
    assert XSS in page.eval_on_selector_all("[data-option=dtype] option", "os => os.map(o => o.textContent)")
    no_xss(page, "export form")
    page.unroute("**/v1/registry/export_formats")
    page.reload()
    page.wait_for_selector("form[data-write=create-export]")
    got = page.eval_on_selector_all("select[data-field=format] option", "os => os.map(o => o.value)")
    assert got == [f["name"] for f in adapter_formats]
    for f in adapter_formats:
        page.select_option("select[data-field=format]", f["name"])
        ctl = page.eval_on_selector_all("[data-option]", """els => els.map(e => ({name: e.dataset.option,
            tag: e.tagName, values: e.tagName === 'SELECT' ? [...e.options].map(o => o.value) : null,
            min: e.getAttribute('min'), max: e.getAttribute('max')}))""")
        assert [c["name"] for c in ctl] == [o["name"] for o in f["options"]], f["name"]
        for c, o in zip(ctl, f["options"]):
            if o["type"] == "choice":
                assert c["tag"] == "SELECT" and c["values"] == [""] + o["choices"], (f["name"], o["name"])
            else:
                assert (c["tag"], int(c["min"]), int(c["max"])) == ("INPUT", o["minimum"], o["maximum"])
    page.select_option("select[data-field=format]", "merged")
    page.select_option("[data-option=dtype]", "fp32")
    page.click("form[data-write=create-export] button[type=submit]")
    page.wait_for_selector("[data-page='exports/:id']")
    eid = page.url.rsplit("/", 1)[1]
    stack["state"]["export"] = eid
    page.wait_for_selector(".badge[data-state=succeeded]", timeout=240000)
    with client(srv) as c:
        ex = c.get(f"/v1/registry/exports/{eid}").json()
        events = c.get(f"/v1/registry/exports/{eid}/events", params={"limit": 100}).json()["data"]
        art = c.get(f"/v1/registry/artifacts/{ex['artifact']['id']}").json()
    assert ex["status"] == "succeeded" and ex["options"] == {"dtype": "fp32"} and ex["version"] == 1
    assert page.inner_text("[data-options]") == "dtype=fp32"
    # progress from its events: done, and every event the API lists is shown, newest first
    assert page.locator("[data-progress] progress[value='1']").count() == 1
    page.wait_for_function(f"() => document.querySelectorAll('.events li').length === {len(events)}")
    assert page.eval_on_selector_all(".events li > span:last-child", "els => els.map(e => e.textContent)") \
        == [e["message"] for e in events]
    assert any(e["data"] and e["data"].get("stage") == "write" for e in events)
    # the files, and each one's download
    page.wait_for_selector("[data-download]")
    shown = page.eval_on_selector_all("[data-download]", "els => els.map(e => e.dataset.download)")
    assert shown == [f["path"] for f in art["files"]] and "model.safetensors" in shown
    with client(srv) as c:
        for f in art["files"]:
            with page.expect_download() as dl:
                page.click(f"button[data-download='{f['path']}']")
            path = tmp_path / f["path"]
            dl.value.save_as(path)
            assert dl.value.suggested_filename == f["path"]
            data = path.read_bytes()
            peer = c.get(f["url"]).content
            assert data == peer and len(data) == f["bytes"]
            assert hashlib.sha256(data).hexdigest() == f["sha256"]
            page.wait_for_selector(f"tr[data-id='{f['path']}'] [data-verified=true]")
    # fp32 is what the exported config says
    assert json.loads((tmp_path / "config.json").read_text())["torch_dtype"] == "float32"
    assert f"ftctl models download support-bot/1 --format merged" in page.inner_text("[data-cli]")
    # the version page lists it
    page.goto(srv.url + "/#/registry/support-bot/1")
    page.wait_for_selector(f"a[href='#/exports/{eid}']")
    watch.check("export")
    ctx.close()


def test_continue_training_from_the_version(stack):
    """"Continue training" opens the wizard with the version as the model:
    LoRA or QLoRA only, the LoRA shape the version's (no "lora" sent), the
    job's settings; the job created names the version as its parent."""
    srv = stack["srv"]
    ctx, page, watch = open_page(stack)
    page.goto(srv.url + "/#/registry/support-bot/1")
    page.click("a[data-write=continue]")
    page.wait_for_selector("[data-page=new] [data-from]")
    assert "support-bot/1" in page.inner_text("[data-from]")
    page.wait_for_selector("[data-picker=training] .report[data-status=valid]")
    page.click("button[data-action=next]")
    assert page.input_value("select[required]") == "support-bot/1"
    radios = page.eval_on_selector_all("[role=radiogroup] input[type=radio]", "els => els.map(e => e.value)")
    assert radios == ["supervised", "dpo", "lora", "qlora"]
    assert "The LoRA rank, alpha and target modules are the version's." in page.inner_text("[data-page=new]")
    page.click("button[data-action=next]")
    assert page.input_value("input[data-hp=n_epochs]") == "1"
    page.click("button[data-action=next]")
    page.wait_for_selector("[data-estimate] .cards")
    body = json.loads(page.inner_text("[data-request]"))
    assert body["model"] == "support-bot/1" and "lora" not in body and body["adapter"] == "lora"
    page.click("button[data-write=create-job]")
    page.wait_for_selector("[data-page='jobs/:id'] [data-chart-id=loss]")
    job_id = page.url.rsplit("/", 1)[1]
    with client(srv) as c:
        job = c.get(f"/v1/fine_tuning/jobs/{job_id}").json()
        assert (job["model"], job["parent_version"]) == ("support-bot/1", "support-bot/1")
        c.post(f"/v1/fine_tuning/jobs/{job_id}/cancel")     # its training is test_registry_e2e's
    page.wait_for_selector("[data-version-ref='support-bot/1']")   # "Continued from" links the version
    watch.check("continue training")
    ctx.close()


def test_wizard_lora_target_modules_and_layers(stack):
    """The LoRA shape beyond r, alpha and dropout: two of the seven linears
    checked and layers "0-1" (ftctl's --lora-layers syntax; the tiny model
    has 2 layers) reach the job exactly, as the API stores them; "7-5", "a"
    and "-1" each show the field's error, keep the wizard on its step and
    create nothing; "train again" brings both back."""
    srv = stack["srv"]
    rows = "\n".join((DATA / "train.jsonl").read_text().splitlines()[:16]) + "\n"
    f = upload(srv, rows.encode(), name="lora-shape.jsonl")
    with client(srv) as c:
        ds = c.post("/v1/datasets", json={"file_id": f["id"], "name": "lora-shape"}).json()
        jobs_before = {j["id"] for j in c.get("/v1/fine_tuning/jobs", params={"limit": 100}).json()["data"]}
    wait_api(f"/v1/datasets/{ds['id']}", lambda d: d["status"] == "valid", srv, what="valid")
    ctx, page, watch = open_page(stack)
    posts = []
    page.on("request", lambda r: r.method == "POST" and r.url.endswith("/v1/fine_tuning/jobs") and posts.append(r.url))
    # The parser itself, on the cases ftctl's layer_list takes and refuses.
    got = page.evaluate("""async () => {
        const { parseLayers } = await import('/console/js/pages/wizard.js');
        return ['10-12', '0,5-7', '3,1,1-2', '', '4095', '7-5', 'a', '-1', '0,', '1-', '4096']
            .map((s) => parseLayers(s, 4095));
    }""")
    assert got == [[10, 11, 12], [0, 5, 6, 7], [1, 2, 3], [], [4095], None, None, None, None, None, None]
    page.goto(srv.url + f"/#/new?dataset={ds['id']}")
    page.wait_for_selector("[data-picker=training] .report[data-status=valid]")
    page.click("button[data-action=next]")
    page.select_option("select[required]", "ftplat-tiny-cs")
    boxes = "[data-field='lora.target_modules'] input[type=checkbox]"
    assert page.eval_on_selector_all(boxes, "els => els.map(e => e.value)") == [
        "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    assert page.eval_on_selector_all(boxes, "els => els.filter(e => e.checked).length") == 0
    assert STRINGS["en"]["lora.target_modules"] in page.inner_text("[data-field='lora.target_modules']")
    page.check(f"{boxes}[value=o_proj]")
    page.check(f"{boxes}[value=k_proj]")
    layers = "input[data-field='lora.layers_to_transform']"
    err = f"#{page.get_attribute(layers, 'id')}-err"
    for bad in ("7-5", "a", "-1"):
        page.fill(layers, bad)
        page.click("button[data-action=next]")
        assert page.inner_text(err) == STRINGS["en"]["wizard.layers_bad"].replace("{value}", bad).replace("{max}", "4095")
        assert page.get_attribute(layers, "aria-invalid") == "true"
        assert page.inner_text("ol.steps li[aria-current=step]") == f"2. {STRINGS['en']['wizard.step_model']}"
    page.fill(layers, "0-1")
    assert page.inner_text(err) == "" and page.get_attribute(layers, "aria-invalid") is None
    page.click("button[data-action=next]")
    page.fill("input[data-hp=n_epochs]", "1")
    page.click("button[data-action=next]")
    page.wait_for_selector("[data-estimate] .cards")
    body = json.loads(page.inner_text("[data-request]"))
    assert body["lora"] == {"target_modules": ["k_proj", "o_proj"], "layers_to_transform": [0, 1]}
    assert not posts    # the malformed layers sent nothing
    with client(srv) as c:
        assert {j["id"] for j in c.get("/v1/fine_tuning/jobs", params={"limit": 100}).json()["data"]} == jobs_before
    page.click("button[data-write=create-job]")
    page.wait_for_selector("[data-page='jobs/:id'] [data-chart-id=loss]")
    job_id = page.url.rsplit("/", 1)[1]
    assert len(posts) == 1
    with client(srv) as c:
        job = c.get(f"/v1/fine_tuning/jobs/{job_id}").json()
    assert job["lora"]["target_modules"] == ["k_proj", "o_proj"]
    assert job["lora"]["layers_to_transform"] == [0, 1]
    assert job["lora"] == {"r": 16, "alpha": 32, "dropout": 0.05,
                           "target_modules": ["k_proj", "o_proj"], "layers_to_transform": [0, 1]}
    # Train again: the wizard prefilled from the job carries both over.
    page.goto(srv.url + f"/#/new?from={job_id}")
    page.wait_for_selector("[data-page=new] [data-from]")
    page.wait_for_selector("[data-picker=training] .report[data-status=valid]")
    page.click("button[data-action=next]")
    assert page.eval_on_selector_all(boxes, "els => els.filter(e => e.checked).map(e => e.value)") == ["k_proj", "o_proj"]
    assert page.input_value(layers) == "0-1"
    page.click("button[data-action=next]")
    page.click("button[data-action=next]")
    page.wait_for_selector("[data-estimate] .cards")
    again = json.loads(page.inner_text("[data-request]"))["lora"]
    assert again == {"r": 16, "alpha": 32, "dropout": 0.05, "target_modules": ["k_proj", "o_proj"],
                     "layers_to_transform": [0, 1]}
    with client(srv) as c:
        c.post(f"/v1/fine_tuning/jobs/{job_id}/cancel")     # its shape is checked; its training is not this test's
    watch.check("wizard LoRA shape")
    ctx.close()


def wait_api(path, pred, srv, timeout=120, what="the state wanted"):
    """GET path until pred(answer) holds."""
    deadline = time.time() + timeout
    with client(srv) as c:
        while True:
            x = c.get(path).json()
            if pred(x):
                return x
            assert time.time() < deadline, f"{path} never reached {what}: {x}"
            time.sleep(0.2)


def test_deploy_a_version_on_a_real_ft_serve(stack):
    """An admin adds the ft-serve as an endpoint (its token sealed), a member's
    form deploys support-bot@production; the controller loads it and the page
    shows it ready under the API's served names, which ft-serve itself lists.
    Another deployment is stopped, an unused endpoint deleted, from the page."""
    srv, serve = stack["srv"], stack["serve"]
    ctx, page, watch = open_page(stack)
    page.goto(srv.url + "/#/deployments")
    form = "form[data-write=create-endpoint]"
    page.fill(f"{form} input[type=text]", "serve-1")
    page.fill(f"{form} input[type=url]", serve.url)
    page.fill(f"{form} input[type=password]", SERVE_TOKEN)
    page.click(f"{form} button[type=submit]")
    page.wait_for_selector("form[data-write=create-deployment] select option", state="attached")
    with client(srv) as c:
        ep = c.get("/v1/endpoints/serve-1").json()
    assert (ep["kind"], ep["url"], ep["has_api_key"]) == ("ftserve", serve.url, True)
    assert SERVE_TOKEN not in json.dumps(ep)
    dform = "form[data-write=create-deployment]"
    page.fill(f"{dform} input[type=text]", "support-bot@production")
    page.click(f"{dform} button[type=submit]")
    page.wait_for_selector("[data-status=ready]", timeout=120000)
    with client(srv) as c:
        deps = c.get("/v1/deployments").json()["data"]
        v2 = c.get("/v1/registry/models/support-bot/versions/2").json()
    assert len(deps) == 1 and deps[0]["status"] == "ready" and deps[0]["loaded_version_id"] == v2["id"]
    dep = deps[0]
    assert set(dep["served_names"]) >= {"support-bot@production"}
    shown = page.eval_on_selector_all(f"tr[data-id='{dep['id']}'] code.chip", "els => els.map(e => e.textContent)")
    assert shown == dep["served_names"]
    listed = httpx.get(serve.url + "/v1/models", headers={"Authorization": f"Bearer {SERVE_TOKEN}"}).json()
    assert set(dep["served_names"]) <= {m["id"] for m in listed["data"]}     # ft-serve's own word
    page.wait_for_selector("tr[data-id='%s'] .badge[data-state=ok]" % ep["id"])   # health checked
    stack["state"]["deployment"] = dep["id"]
    # a second deployment (for the playground's other side) and an unused
    # endpoint, deleted from the page (two clicks: the confirm)
    with client(srv) as c:
        other = c.post("/v1/deployments", json={"endpoint": "serve-1", "model": "support-bot/1"}).json()
        spare = c.post("/v1/endpoints", json={"name": "spare", "kind": "vllm", "url": serve.url}).json()
    stack["state"]["other_deployment"] = other["id"]
    page.wait_for_selector(f"tr[data-id='{spare['id']}'] [data-write=delete-endpoint]")
    for _ in range(2):
        page.click(f"tr[data-id='{spare['id']}'] [data-write=delete-endpoint]")
    page.wait_for_selector(f"tr[data-id='{spare['id']}']", state="detached")
    with client(srv) as c:
        assert c.get(f"/v1/endpoints/{spare['id']}").status_code == 404
    page.wait_for_selector(f"[data-deployment='{other['id']}'][data-status=ready]", timeout=120000)
    watch.check("deployments")
    ctx.close()


def test_the_playground_chats_with_two_deployments_side_by_side(stack):
    """The same chat to support-bot@production (version 2) and support-bot/1
    through ft-api's chat route, streamed; each answer equals ft-serve's own
    greedy answer to the same request (the openai client, straight to
    ft-serve with its token), and the route's chunks add up to it. Then the
    second deployment is stopped from its page."""
    import openai
    srv, serve, other = stack["srv"], stack["serve"], stack["state"]["other_deployment"]
    with client(srv) as c:
        names = c.get(f"/v1/deployments/{other}").json()["served_names"]
    ctx, page, watch = open_page(stack)
    page.goto(srv.url + "/#/playground")
    page.wait_for_selector("form[data-write=chat]")
    labels = lambda side: page.eval_on_selector_all(f"select[data-side={side}] option", "els => els.map(e => e.textContent)")
    page.select_option("select[data-side=a]", label="support-bot@production · serve-1")
    page.select_option("select[data-side=b]", label=f"{names[0]} · serve-1")
    assert "support-bot@production · serve-1" in labels("b")
    question = "How long do refunds take?"
    page.fill("form[data-write=chat] textarea >> nth=1", question)
    page.fill("form[data-write=chat] input[type=number] >> nth=0", "12")
    page.click("form[data-write=chat] button[type=submit]")
    page.wait_for_selector("[data-answer=a][data-done=true]", timeout=60000)
    page.wait_for_selector("[data-answer=b][data-done=true]", timeout=60000)
    oai = openai.OpenAI(base_url=serve.url + "/v1", api_key=SERVE_TOKEN, max_retries=0)
    for side, model in (("a", "support-bot@production"), ("b", names[0])):
        want = oai.chat.completions.create(model=model, max_tokens=12, temperature=0,
                                           messages=[{"role": "user", "content": question}])
        text = want.choices[0].message.content
        assert text, model
        assert page.text_content(f"[data-answer={side}] [data-text]") == text, side
        if side == "b":
            # the route itself streams: the endpoint's chunks as they come, then [DONE]
            events = []
            with httpx.stream("POST", f"{srv.url}/v1/deployments/{other}/chat/completions",
                              headers={"Authorization": f"Bearer {srv.key}"}, timeout=60,
                              json={"model": model, "max_tokens": 12, "temperature": 0,
                                    "messages": [{"role": "user", "content": question}]}) as r:
                assert r.status_code == 200 and r.headers["content-type"] == "text/event-stream"
                events = [line[6:] for line in r.iter_lines() if line.startswith("data: ")]
            assert events[-1] == "[DONE]" and len(events) > 2, events
            chunks = [json.loads(e) for e in events[:-1]]
            assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
            assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks) == text
    # the route itself: a name the deployment does not serve, stream, another team
    with client(srv) as c:
        r = c.post(f"/v1/deployments/{other}/chat/completions",
                   json={"model": "support-bot@production", "messages": [{"role": "user", "content": "hi"}]})
        assert r.status_code == 400 and r.json()["error"]["param"] == "model", r.text
        r = c.post(f"/v1/deployments/{other}/chat/completions",
                   json={"stream": False, "messages": [{"role": "user", "content": "hi"}]})
        assert r.status_code == 400 and r.json()["error"]["param"] == "stream", r.text
        assert SERVE_TOKEN not in r.text
        r = c.post(f"/v1/deployments/{other}/chat/completions", json={"messages": []})
        assert r.status_code == 400 and r.json()["error"]["param"] == "messages", r.text
    # the endpoint refuses (after ft-api's 200 went out): an error event in its own words
    with httpx.stream("POST", f"{srv.url}/v1/deployments/{other}/chat/completions",
                      headers={"Authorization": f"Bearer {srv.key}"}, timeout=60,
                      json={"max_tokens": -5, "messages": [{"role": "user", "content": "hi"}]}) as r:
        assert r.status_code == 200
        events = [json.loads(line[6:]) for line in r.iter_lines() if line.startswith("data: ")]
    direct = httpx.post(serve.url + "/v1/chat/completions", headers={"Authorization": f"Bearer {SERVE_TOKEN}"},
                        json={"model": names[0], "max_tokens": -5, "stream": True,
                              "messages": [{"role": "user", "content": "hi"}]})
    assert direct.status_code == 400, direct.text
    assert len(events) == 1 and events[0]["error"]["code"] == "endpoint_error", events
    assert events[0]["error"]["message"] == \
        f"the endpoint refused the chat: HTTP 400: {direct.json()['error']['message']}"
    assert SERVE_TOKEN not in json.dumps(events)
    # stop the second deployment from its page (two clicks: the confirm)
    page.goto(srv.url + "/#/deployments")
    page.wait_for_selector(f"tr[data-id='{other}'] [data-write=stop-deployment]")
    for _ in range(2):
        page.click(f"tr[data-id='{other}'] [data-write=stop-deployment]")
    wait_api(f"/v1/deployments/{other}", lambda d: d["status"] == "stopped", srv, what="stopped")
    page.wait_for_selector(f"[data-deployment='{other}'][data-status=stopped]")
    no_xss(page, "playground")
    watch.check("playground")
    ctx.close()


def test_an_experiment_from_the_console_and_a_judgment(stack):
    """Create an experiment (two arms), start it, record two judgments (A, then
    a tie) on a prompt with two answers; the page shows the leader's results:
    win rates 3/4 and 1/4, and Bradley-Terry ratings 1000 +- (400/ln 10)(ln 3)/2
    (P(control beats candidate) = 0.75 fits theta difference ln 3), by hand."""
    srv = stack["srv"]
    ctx, page, watch = open_page(stack)
    page.goto(srv.url + "/#/experiments")
    form = "form[data-write=create-experiment]"
    page.fill(f"{form} input[maxlength='128']", f"tone {XSS_SUFFIX}")   # the title holds it too
    models = page.locator(f"{form} input[name=arm-model]")
    models.nth(0).fill("support-bot/1")
    models.nth(1).fill("support-bot/2")
    page.click(f"{form} button[type=submit]")
    page.wait_for_selector("[data-write=exp-start]")
    eid = page.url.rsplit("/", 1)[1]
    stack["state"]["experiment"] = eid
    with client(srv) as c:
        x = c.get(f"/v1/experiments/{eid}").json()
    assert x["name"] == f"tone {XSS_SUFFIX}" and x["status"] == "draft"
    assert [(a["name"], a["model"], a["weight"]) for a in x["arms"]] == [("control", "support-bot/1", 0.5),
                                                                       ("candidate", "support-bot/2", 0.5)]
    page.click("[data-write=exp-start]")
    page.wait_for_selector("form[data-write=judge]")
    for outcome in ("a", "tie"):
        page.fill("form[data-write=judge] textarea >> nth=0", f"Where is my parcel? {XSS}")
        page.fill("form[data-write=judge] textarea >> nth=1", "It ships today.")
        page.fill("form[data-write=judge] textarea >> nth=2", f"No idea {XSS}")
        page.click(f"form[data-write=judge] button[data-outcome={outcome}]")
        page.wait_for_function("() => !document.querySelector('form[data-write=judge] textarea').value")
    with client(srv) as c:
        js = c.get(f"/v1/experiments/{eid}/judgments").json()["data"]
    assert sorted(j["outcome"] for j in js) == ["a", "tie"]
    assert {(j["arm_a"], j["arm_b"], j["prompt"], j["answer_b"]) for j in js} == {
        ("control", "candidate", f"Where is my parcel? {XSS}", f"No idea {XSS}")}
    res = wait_api(f"/v1/experiments/{eid}/results",
                   lambda r: r.get("computed_at") and r["judgments"]["done"] == 2, srv, what="2 judgments")
    assert [a["win_rate"] for a in res["arms"]] == [0.75, 0.25]
    d = 400 / math.log(10) * math.log(3) / 2
    assert res["ratings"]["rating"] == pytest.approx([1000 + d, 1000 - d], abs=1e-6)
    page.wait_for_function("() => (document.querySelector('[data-win-rate=control]') || {}).textContent?.startsWith('75 %')",
                           timeout=30000)
    assert page.inner_text("[data-win-rate=candidate]").startswith("25 %")
    assert page.inner_text("[data-rating=control]").startswith(f"{round(1000 + d):,}")   # 1,095
    assert page.inner_text("[data-rating=candidate]").startswith(f"{round(1000 - d):,}")  # 905
    assert page.get_attribute("[data-decision=candidate]", "data-decided") == "false"
    no_xss(page, "experiment")
    assert XSS_SUFFIX in page.inner_text("h1")
    watch.check("experiment")
    ctx.close()


def test_experiment_feedback_rates_in_both_languages(stack):
    """Requests labelled with the experiment's arms onto the request stream
    (test_experiments.py's records), feedback on them by response id; the
    arms' feedback column shows the leader's rates, Wilson intervals (equal
    to scipy's) and counts, as GET /v1/experiments/{id}/results gives them."""
    from scipy import stats
    srv, eid = stack["srv"], stack["state"]["experiment"]
    now = int(time.time() * 1000)
    ids = {arm: [r["id"] for r in push_requests(dict(rurl=stack["rdb"]), srv.team, eid, arm, n, 0,
                                                lambda i: 120.0, now)]
           for arm, n in (("control", 4), ("candidate", 3))}
    wait_logged(dict(srv=srv), ids["control"] + ids["candidate"])
    thumbs = {"control": ["up", "up", "down", None], "candidate": ["down", "down", "up"]}
    resolved = {"control": [True, None, False, None], "candidate": [None, None, True]}
    with client(srv) as c:
        for arm in thumbs:
            for rid, th, rs in zip(ids[arm], thumbs[arm], resolved[arm]):
                body = {k: v for k, v in (("thumbs", th), ("resolved", rs)) if v is not None} or {"escalated": True}
                r = c.post("/v1/feedback", json={"response_id": rid, **body})
                assert r.status_code == 200 and r.json()["experiment"] == {"id": eid, "arm": arm}, r.text
    res = wait_api(f"/v1/experiments/{eid}/results",
                   lambda x: x.get("computed_at") and x["arms"][0]["feedback"]["escalated"]["n"] >= 1
                   and x["arms"][1]["feedback"]["resolved"]["n"] == 1, srv, timeout=30, what="the feedback")
    for a, arm in enumerate(("control", "candidate")):
        fb = res["arms"][a]["feedback"]
        up, n = thumbs[arm].count("up"), sum(1 for x in thumbs[arm] if x)
        ci = stats.binomtest(up, n).proportion_ci(confidence_level=0.95, method="wilson")
        assert (fb["thumbs_up"]["count"], fb["thumbs_up"]["n"]) == (up, n)
        assert fb["thumbs_up"]["interval"] == pytest.approx([ci.low, ci.high], abs=1e-12)
        assert res["arms"][a]["requests"] == len(ids[arm])
    for lang in ("en", "zh"):
        ctx, page, watch = open_page(stack, lang)
        page.goto(srv.url + f"/#/experiments/{eid}")
        for a, arm in enumerate(("control", "candidate")):
            fb = res["arms"][a]["feedback"]
            want = []
            for k in ("thumbs_up", "resolved", "escalated"):
                f = fb.get(k)
                if not f or not f["n"]:
                    continue
                iv = f.get("interval")
                ci = f" [{fmt_pct(iv[0])}, {fmt_pct(iv[1])}]" if iv and None not in iv else ""
                want.append(f"{STRINGS[lang][f'exp.fb_{k}']} {fmt_pct(f['count'] / f['n'])}{ci} ({f['count']}/{f['n']})")
            cell = f"tr[data-id={arm}] td:nth-child(9)"
            page.wait_for_function(f"() => (document.querySelector('{cell}') || {{}}).innerText?.includes('({fb['thumbs_up']['count']}/{fb['thumbs_up']['n']})')",
                                   timeout=20000)
            assert page.inner_text(cell).strip().split("\n") == want, (lang, arm)
            assert page.inner_text(f"tr[data-id={arm}] td:nth-child(8)") == f"{res['arms'][a]['requests']:,}"
        page.screenshot(path=str(stack["shots"] / f"experiment-feedback-{lang}-desktop.png"), full_page=True)
        watch.check(f"experiment feedback {lang}")
        ctx.close()


def test_a_drift_monitor_from_the_console(stack):
    """Put a monitor on the deployment from the drift page; its page shows the
    API's state (collecting the reference), then its settings change."""
    srv, dep = stack["srv"], stack["state"]["deployment"]
    ctx, page, watch = open_page(stack)
    page.goto(srv.url + "/#/drift")
    form = "form[data-write=create-monitor]"
    page.wait_for_selector(f"{form} option[value='{dep}']", state="attached")
    page.select_option(f"{form} select", dep)
    page.fill(f"{form} input[type=number]", "60")
    page.click(f"{form} button[type=submit]")
    page.wait_for_selector("[data-monitor-status=collecting]")
    assert page.url.endswith(f"#/drift/{dep}")
    with client(srv) as c:
        mon = c.get(f"/v1/drift/{dep}").json()
    assert (mon["status"], mon["reference_requests"]) == ("collecting", 60)
    page.fill("form[data-write=set-monitor] input >> nth=1", "12")
    page.click("form[data-write=set-monitor] button[type=submit]")
    wait_api(f"/v1/drift/{dep}", lambda m: m["min_window_requests"] == 12, srv, timeout=20, what="min 12")
    page.goto(srv.url + "/#/drift")
    page.wait_for_selector(f"[data-monitor='{dep}'] .badge[data-state=collecting]")
    watch.check("drift")
    ctx.close()


def test_drift_windows_with_data_in_both_languages(stack):
    """Six past hours of requests for the deployment (test_drift.py's traffic,
    smaller: a 500-request reference, two unshifted hours of 100, then longer
    prompts, the language mix, refusals), onto the request stream; the
    leader computes the hourly windows. The monitor page shows each window's
    request count, prompt PSI, KS p, refusal rate and alert state, and the
    latest window's statistics, as GET /v1/drift/{dep}/windows gives them
    (formatted as the console formats), in English and Chinese."""
    srv, dep = stack["srv"], stack["state"]["deployment"]
    # The six hours end where this hour began, so the latest hourly window is
    # hour 5. Not within 90 s of this hour's end: the leader would compute one
    # more window, of the stack's real requests only, while the test reads.
    left = HOUR - int(time.time() * 1000) % HOUR
    if left < 90_000:
        time.sleep(left / 1000 + 1)
    t0 = (int(time.time() * 1000) // HOUR - 6) * HOUR
    rows = traffic(5, t0, n_ref=500, hours=2, per_hour=100, dep=dep)
    with client(srv) as c:
        r = c.post(f"/v1/drift/{dep}", json={"reference_requests": 500, "reset": True})
        assert r.status_code == 200, r.text
    push_traffic(stack["rdb"], srv.db_url, srv.team, rows, timeout=120)
    starts = [t0 // 1000 + 3600 * h for h in range(6)]
    got = wait_api(f"/v1/drift/{dep}/windows?granularity=hour&limit=48",
                   lambda x: {w["window_start"] for w in x["data"]} >= set(starts), srv, timeout=60,
                   what="the six hourly windows")
    ws = {w["window_start"]: w for w in got["data"] if w["window_start"] in starts}
    # hour 0 is the reference; a window counts every request of the deployment:
    # the stack's real ones (the playground's, the experiment's) fall in hour 5
    # when the module began in the previous hour (CI once counted 102 there)
    ours = {rec["id"] for _, rec in rows}
    with psycopg.connect(srv.db_url) as c:
        real = c.execute("SELECT id FROM request_log WHERE deployment_id = %s AND created_at >="
                         " to_timestamp(%s) AND created_at < to_timestamp(%s)",
                         (dep, starts[5], starts[5] + 3600)).fetchall()
    extra = len([r for r in real if r[0] not in ours])
    assert [ws[s]["n_requests"] for s in starts[1:]] == [100] * 4 + [100 + extra]
    assert any(ws[s]["alert"] for s in starts[3:]), [ws[s]["alerts"] for s in starts]
    mon = wait_api(f"/v1/drift/{dep}", lambda m: m["status"] != "collecting", srv, timeout=30, what="a reference")
    assert mon["reference"]["summary"]["requests"] == 500
    for lang in ("en", "zh"):
        ctx, page, watch = open_page(stack, lang)
        page.goto(srv.url + f"/#/drift/{dep}")
        for s in starts:
            row = f"tr[data-id='hour-{s}']"
            page.wait_for_selector(f"{row} [data-psi]")
            w, m = ws[s], ws[s]["metrics"]
            assert page.inner_text(f"{row} [data-n]") == f"{w['n_requests']:,}", (lang, s)
            pt = m.get("prompt_tokens") or {}
            assert page.inner_text(f"{row} [data-psi]") == fmt_num(pt.get("psi"), 3), (lang, s)
            assert page.inner_text(f"{row} [data-ks-p]") == fmt_p(pt.get("ks_pvalue")), (lang, s)
            assert page.inner_text(f"{row} [data-refusals]") == fmt_pct((m.get("refusals") or {}).get("rate")), (lang, s)
            assert page.get_attribute(f"{row} .badge", "data-state") == ("alert" if w["alert"] else "ok"), (lang, s)
            names = ", ".join(STRINGS[lang][f"drift.metric_{a}"] for a in w["alerts"]) or "\u2014"
            assert page.inner_text(f"{row} td:nth-child(7)") == names, (lang, s)
        # the latest hourly window's box: each metric's statistic and alert
        latest = mon["latest"]["hour"]
        box = "[data-window=hour]"
        assert page.get_attribute(box, "data-alert") == str(latest["alert"]).lower()
        lm = latest["metrics"]
        for k in ("prompt_tokens", "completion_tokens"):
            assert page.inner_text(f"{box} tr[data-id={k}] td:nth-child(4)") == \
                f"PSI {fmt_num(lm[k]['psi'], 3)} \u00b7 KS p {fmt_p(lm[k]['ks_pvalue'])}", (lang, k)
        for k in ("refusals", "truncated"):
            assert page.inner_text(f"{box} tr[data-id={k}] td:nth-child(2)") == fmt_pct(lm[k]["rate"]), (lang, k)
            assert page.inner_text(f"{box} tr[data-id={k}] td:nth-child(3)") == fmt_pct(lm[k]["reference_rate"]), (lang, k)
            assert page.inner_text(f"{box} tr[data-id={k}] td:nth-child(4)") == f"p {fmt_p(lm[k]['pvalue'])}", (lang, k)
        lg = lm["languages"]
        assert page.inner_text(f"{box} tr[data-id=languages] td:nth-child(4)") == \
            f"JS {fmt_num(lg['js'], 3)} \u00b7 p {fmt_p(lg['pvalue'])}", lang
        for k in ("prompt_tokens", "completion_tokens", "truncated", "refusals", "languages"):
            assert page.locator(f"{box} tr[data-id={k}] .badge[data-state=alert]").count() == int(bool(lm[k].get("alert"))), (lang, k)
        assert page.get_attribute("[data-monitor-status]", "data-monitor-status") == mon["status"]
        page.screenshot(path=str(stack["shots"] / f"monitor-data-{lang}-desktop.png"), full_page=True)
        page.goto(srv.url + "/#/drift")
        page.wait_for_selector(f"[data-monitor='{dep}'] .badge[data-state={mon['status']}]")
        watch.check(f"drift windows {lang}")
        ctx.close()


def test_an_evaluation_started_and_read_in_the_console_in_both_languages(stack):
    """An offline evaluation started from the console's form (the support
    file, the base model and the job's version, 12 new tokens) runs
    on the stack's worker; its page shows each model's perplexity, ROUGE-L F
    and BLEU as GET /v1/evals/{id} gives them (formatted as the console
    formats), and every row's answers, in English and Chinese."""
    from test_evals import wait_eval
    srv = stack["srv"]
    with client(srv) as c:
        fid = next(f["id"] for f in c.get("/v1/files").json()["data"] if f["filename"] == "support.jsonl")
    ctx, page, watch = open_page(stack)
    page.goto(srv.url + "/#/evals")
    form = "form[data-write=create-eval]"
    page.wait_for_selector(f"{form} option[value='{fid}']", state="attached")
    page.fill(f"{form} input[type=text]", "console eval")
    page.select_option(f"{form} select >> nth=0", fid)
    page.fill(f"{form} textarea", "ftplat-tiny-cs\nsupport-bot/1")
    page.fill(f"{form} input[type=number] >> nth=0", "12")
    page.fill(f"{form} input[type=number] >> nth=1", "100")   # a bound: the file has 48
    page.click(f"{form} button[type=submit]")
    page.wait_for_url(re.compile(r".*#/evals/fteval-[0-9A-Za-z]+$"))
    eid = page.url.rsplit("/", 1)[1]
    stack["state"]["eval"] = eid
    e = wait_eval(srv, eid, timeout=300)
    assert e["status"] == "succeeded", e
    assert [m["model"] for m in e["models"]] == ["ftplat-tiny-cs", "support-bot/1"]
    assert (e["name"], e["options"]["max_new_tokens"], e["options"]["max_rows"]) == ("console eval", 12, 100)
    with client(srv) as c:
        rows = c.get(f"/v1/evals/{eid}?rows=true").json()["rows"]
    assert len(rows) == 48
    ctx.close()
    for lang in ("en", "zh"):
        ctx, page, watch = open_page(stack, lang)
        page.goto(srv.url + f"/#/evals/{eid}")
        page.wait_for_selector(".badge[data-state=succeeded]")
        for m in e["models"]:
            met, k = m["metrics"], m["position"]
            assert page.inner_text(f"[data-ppl='{k}']") == fmt_num(met["perplexity"], 3), (lang, k)
            assert page.inner_text(f"[data-rouge='{k}']") == fmt_num(met["rouge_l"]["fmeasure"], 4), (lang, k)
            assert page.inner_text(f"[data-bleu='{k}']") == fmt_num(met["bleu"]["score"], 2), (lang, k)
            assert page.inner_text(f"[data-facts='{k}']") == "\u2014"   # the support file lists no facts
        page.click("button[data-show-rows]")
        page.wait_for_selector("[data-answer]")
        for r in rows:
            for k, a in enumerate(r["answers"]):
                assert page.inner_text(f"[data-answer='{r['line']}-{k}']").strip() == a["answer"].strip(), (lang, r["line"], k)
        assert page.inner_text("h1") == "console eval"
        assert STRINGS[lang]["eval.perplexity"] in page.inner_text("main")
        page.screenshot(path=str(stack["shots"] / f"eval-rows-{lang}-desktop.png"), full_page=True)
        page.goto(srv.url + "/#/evals")
        page.wait_for_selector(f"a[href='#/evals/{eid}']")
        watch.check(f"evaluation {lang}")
        ctx.close()


def routes(stack):
    s = stack["state"]
    ds = None
    with client(stack["srv"]) as c:
        for d in c.get("/v1/datasets").json()["data"]:
            if d["name"] == "support.jsonl":
                ds = d["id"]
    return [("signin", None), ("jobs", "#/jobs"), ("job", f"#/jobs/{s['job']}"), ("job-dpo", f"#/jobs/{s['dpo']}"),
            ("job-cancelled", f"#/jobs/{s['cancelled']}"), ("new", "#/new"),
            ("continue", f"#/new?from={s['job']}"), ("datasets", "#/datasets"), ("dataset", f"#/datasets/{ds}"),
            ("models", "#/models"), ("registry", "#/registry"), ("registered-model", "#/registry/support-bot"),
            ("version", "#/registry/support-bot/1"), ("version-2", "#/registry/support-bot/production"),
            ("export", f"#/exports/{s['export']}"), ("continue-version", f"#/new?from={s['job']}&model=support-bot%2F1"),
            ("team", "#/team"), ("keys", "#/admin/keys"),
            ("webhooks", "#/admin/webhooks"), ("deliveries", f"#/admin/webhooks/{stack['hook']['id']}"),
            ("audit", "#/admin/audit"), ("deployments", "#/deployments"), ("experiments", "#/experiments"),
            ("experiment", f"#/experiments/{s['experiment']}"), ("drift", "#/drift"),
            ("monitor", f"#/drift/{s['deployment']}"), ("playground", "#/playground"),
            ("evals", "#/evals"), ("eval", f"#/evals/{s['eval']}")]


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_every_page_in_both_languages_and_sizes(stack, lang):
    """Screenshots of every page; no error anywhere; nothing of team B; every
    XSS payload as text; the phone layout has no sideways scrolling."""
    from api_helpers import wait_status
    dpo = wait_status(stack["srv"], stack["state"]["dpo"], ("succeeded", "failed", "cancelled"), timeout=240)
    assert dpo["status"] == "succeeded", dpo
    for size in SIZES:
        ctx, page, watch = open_page(stack, lang, size)
        assert page.evaluate("document.documentElement.lang") == ("zh-CN" if lang == "zh" else "en")
        for name, hash_ in routes(stack):
            if name == "signin":
                continue
            page.goto(stack["srv"].url + "/" + hash_)
            page.wait_for_selector(".page")
            settle(page)
            if name == "job":
                page.wait_for_function("() => Number((document.querySelector('[data-series=train_loss]') || {dataset: {}}).dataset.points || 0) === 12")
            if name == "job-dpo":   # 16 pairs, 4 per step: 4 steps; evaluated at 0 and 4
                page.wait_for_function("() => Number((document.querySelector('[data-series=\"rewards/margins\"]') || {dataset: {}}).dataset.points || 0) === 4")
                assert polyline_points(page, "rewards/chosen") == polyline_points(page, "rewards/accuracies") == 4
                assert polyline_points(page, "eval_rewards/margins") == 2
                assert page.locator("[data-chart-id=acc]").count() == 0   # no token accuracy in DPO
            text = page.inner_text("body")
            for secret in stack["beta"]["names"] + [stack["beta"]["job"], stack["beta"]["ds"], stack["beta"]["file"],
                                                    stack["beta"]["hook"]]:
                assert secret not in text, (name, secret)
            if lang == "zh":
                assert re.search(r"[\u4e00-\u9fff]", page.inner_text("main")), name
            no_xss(page, name)
            if size == "phone":
                assert page.evaluate("document.documentElement.scrollWidth") <= SIZES["phone"][0], name
            page.screenshot(path=str(stack["shots"] / f"{name}-{lang}-{size}.png"), full_page=True)
        watch.check(f"{lang} {size}")
        ctx.close()
        # The sign-in page, signed out.
        w, hgt = SIZES[size]
        sctx = stack["browser"].new_context(viewport={"width": w, "height": hgt})
        sctx.add_init_script(f"localStorage.setItem('ftplat.lang', '{lang}')")
        sp = sctx.new_page()
        sw = Watch(sp)
        sp.goto(stack["srv"].url + "/")
        sp.wait_for_selector("input[name=key]")
        sp.screenshot(path=str(stack["shots"] / f"signin-{lang}-{size}.png"), full_page=True)
        sw.check("sign-in page")
        sctx.close()
    for name, _ in routes(stack):
        for size in SIZES:
            assert (stack["shots"] / f"{name}-{lang}-{size}.png").stat().st_size > 5000, (name, size)


def test_viewer_sees_no_write_button_and_the_api_refuses_writes(stack):
    ctx, page, watch = open_page(stack, key=stack["viewer"])
    nav = page.eval_on_selector_all("#nav a", "els => els.map(e => e.dataset.nav)")
    assert nav == ["jobs", "datasets", "models", "registry", "deployments", "experiments", "evals", "drift", "team",
                   "admin/webhooks"]
    for name, hash_ in routes(stack):
        if name in ("signin", "keys", "audit", "new", "continue", "continue-version", "playground"):
            continue
        page.goto(stack["srv"].url + "/" + hash_)
        page.wait_for_selector(".page")
        settle(page)
        assert page.locator("[data-write]").count() == 0, name
    page.goto(stack["srv"].url + "/#/new")   # typed by hand: refused without calling the API
    page.wait_for_selector(".notice.warn")
    watch.check("viewer")
    ctx.close()
    s = stack["state"]
    with client(stack["srv"]) as c:
        fine_tuned = c.get(f"/v1/fine_tuning/jobs/{s['job']}").json()["fine_tuned_model"]
    with client(stack["srv"], stack["viewer"]) as c:
        refused = [
            c.post("/v1/files", data={"purpose": "fine-tune"}, files={"file": ("x.jsonl", b"{}\n")}),
            c.post("/v1/datasets", json={"file_id": "file-" + "A" * 24}),
            c.post("/v1/fine_tuning/jobs", json={"model": "ftplat-tiny-cs", "training_file": "file-" + "A" * 24}),
            c.post(f"/v1/fine_tuning/jobs/{s['job']}/cancel"),
            c.post("/v1/keys", json={"role": "admin"}),
            c.post("/v1/webhooks", json={"url": "https://example.com", "events": ["fine_tuning.job.failed"]}),
            c.post(f"/v1/webhooks/{stack['hook']['id']}/rotate_secret"),
            c.delete(f"/v1/webhooks/{stack['hook']['id']}"),
            c.post("/v1/models", json={"name": "x", "path": "/tmp"}),
            c.post("/v1/registry/models", json={"name": "viewer-model"}),
            c.post("/v1/registry/models/support-bot", json={"description": "x"}),
            c.post("/v1/registry/models/support-bot/versions/1", json={"description": "x"}),
            c.post("/v1/registry/models/support-bot/aliases/staging", json={"version": 1}),
            c.delete("/v1/registry/models/support-bot/aliases/production"),
            c.delete("/v1/registry/models/support-bot/versions/2"),
            c.post("/v1/registry/exports", json={"model": "support-bot/1", "format": "gguf"}),
            c.post(f"/v1/registry/exports/{s['export']}/cancel"),
            c.delete(f"/v1/models/{fine_tuned}"),
            c.post("/v1/endpoints", json={"name": "v", "kind": "ftserve", "url": stack["serve"].url}),
            c.delete("/v1/endpoints/serve-1"),
            c.post("/v1/deployments", json={"endpoint": "serve-1", "model": "support-bot/1"}),
            c.delete(f"/v1/deployments/{s['deployment']}"),
            c.post("/v1/experiments", json={"name": "v", "arms": [{"name": "a", "model": "support-bot/1", "weight": 0.5},
                                                                  {"name": "b", "model": "support-bot/2", "weight": 0.5}]}),
            c.post(f"/v1/experiments/{s['experiment']}/pause"),
            c.post(f"/v1/experiments/{s['experiment']}/judgments", json={"arm_a": "control", "arm_b": "candidate",
                                                                         "winner": "a"}),
            c.post(f"/v1/drift/{s['deployment']}", json={"reset": True}),
            c.post(f"/v1/deployments/{s['deployment']}/chat/completions",
                   json={"messages": [{"role": "user", "content": "hi"}]}),
            c.delete(f"/v1/drift/{s['deployment']}"),
        ]
    assert [r.status_code for r in refused] == [403] * len(refused)
    assert {r.json()["error"]["code"] for r in refused} == {"insufficient_role"}


def test_keyboard_only(stack):
    """Sign in, move between pages and read a curve with the keyboard alone."""
    ctx = stack["browser"].new_context(viewport={"width": 1280, "height": 800})
    page = ctx.new_page()
    watch = Watch(page)
    page.goto(stack["srv"].url + "/")
    page.wait_for_selector("input[name=key]")
    assert page.evaluate("document.activeElement.name") == "key"     # focused on arrival
    page.keyboard.type(stack["srv"].key)
    page.keyboard.press("Enter")
    page.wait_for_selector("[data-page=jobs]")

    def tab_to(js_test, limit=40):
        for _ in range(limit):
            page.keyboard.press("Tab")
            if page.evaluate(f"(() => {{ const e = document.activeElement; return Boolean({js_test}); }})()"):
                return
        raise AssertionError(f"Tab never reached {js_test}")

    tab_to("e.dataset && e.dataset.nav === 'datasets'")
    page.keyboard.press("Enter")
    page.wait_for_selector("[data-page=datasets]")
    page.goto(stack["srv"].url + f"/#/jobs/{stack['state']['job']}")
    page.wait_for_function("() => Number((document.querySelector('[data-series=train_loss]') || {dataset: {}}).dataset.points || 0) === 12")
    tab_to("e.dataset && e.dataset.chartId === 'loss'")
    page.keyboard.press("End")
    page.keyboard.press("ArrowLeft")
    assert page.inner_text("[data-chart-id=loss] .readout").startswith("11:")
    # the language switch is a button too
    tab_to("e.dataset && e.dataset.lang === 'zh'", limit=80)
    page.keyboard.press("Enter")
    page.wait_for_function("() => document.documentElement.lang === 'zh-CN'")
    watch.check("keyboard")
    ctx.close()


def test_other_teams_object_is_not_found_in_the_console(stack):
    """Team B's job, typed into the address bar by team A, is the API's
    not-found; the console shows that error and nothing of the job. Team B's
    registered model reads exactly as a name that does not exist."""
    ctx, page, _ = open_page(stack)
    page.goto(stack["srv"].url + f"/#/jobs/{stack['beta']['job']}")
    page.wait_for_selector(".notice.bad")
    assert "beta-secret-job" not in page.inner_text("body")
    assert "no fine-tuning job" in page.inner_text(".notice.bad")
    said = {}
    for name in ("beta-secret-registry", "no-such-model"):
        for hash_ in (f"#/registry/{name}", f"#/registry/{name}/1"):
            page.goto(stack["srv"].url + "/" + hash_)
            page.wait_for_selector(f"[data-page^=registry] .notice.bad:has-text('{name}')")
            said[(name, hash_.count("/"))] = page.inner_text("main").replace(name, "NAME")
            assert "beta-secret-description" not in page.inner_text("body")
    assert said[("beta-secret-registry", 2)] == said[("no-such-model", 2)]
    assert said[("beta-secret-registry", 3)] == said[("no-such-model", 3)]
    ctx.close()
