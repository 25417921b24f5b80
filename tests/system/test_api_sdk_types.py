"""Every object ft-api returns on a route the OpenAI SDK knows validates
strictly (pydantic strict mode) against the SDK's own model class for that
route: files, jobs in every state (validating, queued, failed, cancelled,
and one run for real through ft-scheduler, ft-worker and ft-train to
succeeded), their events (ours, the validator's, the scheduler's and the
worker's, status changes and metrics) and checkpoints, and models. The model
class of each route is read from the SDK method's own return annotation.
Also: the texts of a job's file errors (one "line N", "column M", no doubled
words; no line for a file-wide error)."""
import os
import re
import signal
import subprocess
import typing

import openai
import pydantic
import pytest
from openai.resources.files import Files
from openai.resources.fine_tuning.jobs.checkpoints import Checkpoints
from openai.resources.fine_tuning.jobs.jobs import Jobs
from openai.resources.models import Models

from api_helpers import DPO_LINES, SFT_LINES, client, jsonl, register_tiny_model, upload, wait_status

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATA = os.path.join(ROOT, "data", "customer-service")
MODEL = os.path.join(ROOT, "data", "models", "ftplat-tiny-cs")

# Our routes the SDK has a method for: (SDK method, HTTP method, path). The
# SDK method's return annotation is the model the answer must validate as.
SDK_ROUTES = [
    (Files.create, "POST", "/v1/files"),
    (Files.list, "GET", "/v1/files"),
    (Files.retrieve, "GET", "/v1/files/{id}"),
    (Files.delete, "DELETE", "/v1/files/{id}"),
    (Files.content, "GET", "/v1/files/{id}/content"),   # bytes: no model
    (Jobs.create, "POST", "/v1/fine_tuning/jobs"),
    (Jobs.list, "GET", "/v1/fine_tuning/jobs"),
    (Jobs.retrieve, "GET", "/v1/fine_tuning/jobs/{id}"),
    (Jobs.cancel, "POST", "/v1/fine_tuning/jobs/{id}/cancel"),
    (Jobs.pause, "POST", "/v1/fine_tuning/jobs/{id}/pause"),
    (Jobs.resume, "POST", "/v1/fine_tuning/jobs/{id}/resume"),
    (Jobs.list_events, "GET", "/v1/fine_tuning/jobs/{id}/events"),
    (Checkpoints.list, "GET", "/v1/fine_tuning/jobs/{id}/checkpoints"),
    (Models.list, "GET", "/v1/models"),
    (Models.retrieve, "GET", "/v1/models/{model}"),
    (Models.delete, "DELETE", "/v1/models/{model}"),
]
BAD_LINE3 = b'{"messages": [{"role": "user", "content": '   # breaks off

# Routes of ours with no SDK counterpart.
# (/v1/evals has the name of OpenAI's Evals API but not its shape: ours runs
# offline evaluations of models on a chat file, docs/evaluation.md.)
OURS_ONLY = re.compile(r"^/v1/(openapi\.json|datasets|teams|keys|webhooks|registry|endpoints|"
                       r"deployments|evals|experiments|feedback|drift)")
OURS_TOO = {("POST", "/v1/models"),   # registering a base model
            ("GET", "/v1/fine_tuning/hyperparameters"),   # the trainer's table
            ("POST", "/v1/fine_tuning/jobs/estimate"),    # what a job will cost
            ("GET", "/v1/me"), ("GET", "/v1/audit_log")}


def model_of(method):
    ret = typing.get_type_hints(method)["return"]
    base = typing.get_origin(ret) or ret
    return ret if isinstance(base, type) and issubclass(base, pydantic.BaseModel) else None


def validate(route, obj):
    """The SDK's model for route, validated strictly; returns the model."""
    m = model_of(next(f for f, meth, p in SDK_ROUTES if (meth, p) == route))
    return m.model_validate(obj, strict=True)


def test_sdk_route_table_covers_every_route(root):
    table = re.findall(r'\{\s*"(GET|POST|DELETE)", "(/v1/[^"]*)"', (root / "api/src/router.c").read_text())
    known = {(m, p) for _, m, p in SDK_ROUTES}
    assert known <= set(table)
    assert {r for r in table if not OURS_ONLY.match(r[1]) and r not in OURS_TOO} == known


@pytest.fixture(scope="module")
def platform(api_server, build_dir, redis_url, tmp_path_factory):
    """ft-scheduler and one CPU ft-worker on the API's database and store."""
    for exe in ("scheduler/ft-scheduler", "worker/ft-worker", "trainer/ft-train"):
        if not (build_dir / exe).exists():
            pytest.fail(f"{exe} is not built in {build_dir}")
    tmp = tmp_path_factory.mktemp("platform")
    rdb = redis_url.rsplit("/", 1)[0] + "/11"
    import redis
    redis.Redis.from_url(rdb).flushdb()
    env = dict(os.environ, FT_DATABASE_URL=api_server.db_url, FT_REDIS_URL=rdb,
               FT_STORE_DIR=str(api_server.store_dir), FT_WORK_DIR=str(tmp / "work"),
               FT_CACHE_DIR=str(tmp / "cache"),
               FT_TRAINER_PATH=str(build_dir / "trainer" / "ft-train"), FT_SCHED_TICK_MS="50",
               FT_HEARTBEAT_MS="500", FT_LEASE_MS="10000", FT_WORKER_ID="wrk-sdk", FT_LOG_LEVEL="info",
               FT_NUM_THREADS="2", FT_CHECKPOINT_STEPS="2")
    procs = [subprocess.Popen([str(build_dir / exe)], env=env, stdout=open(tmp / f"{name}.log", "w"),
                              stderr=subprocess.STDOUT)
             for exe, name in (("scheduler/ft-scheduler", "sched"), ("worker/ft-worker", "worker"))]
    yield tmp
    for p in procs:
        p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()


@pytest.fixture(scope="module")
def world(api_server, platform, tmp_path_factory):
    """Jobs in every state, and the answers of every SDK route about them."""
    srv = api_server
    register_tiny_model(srv, tmp_path_factory.mktemp("models"))
    with client(srv) as c:
        assert c.post("/v1/models", json={"name": "ftplat-tiny-cs", "path": MODEL}).status_code == 200
    lines = open(os.path.join(DATA, "train.jsonl"), "rb").read().splitlines(keepends=True)
    real = upload(srv, b"".join(lines[:8]), name="real.jsonl")
    sft = upload(srv, jsonl(SFT_LINES), name="sft.jsonl")
    dpo = upload(srv, jsonl(DPO_LINES), name="dpo.jsonl")
    bad = upload(srv, jsonl(SFT_LINES) + BAD_LINE3, name="bad.jsonl")
    empty = upload(srv, b"", name="empty.jsonl")
    doomed = upload(srv, jsonl(SFT_LINES), name="doomed.jsonl")
    answers = []   # ((method, route), json) for every answer

    def call(c, method, route, path, **kw):
        r = c.request(method, path, **kw)
        assert r.status_code == 200, (path, r.text)
        if route[1] != "/v1/files/{id}/content":
            answers.append((route, r.json()))
        return r

    with client(srv) as c:
        jobs = {}
        for name, body in [
            ("real", {"model": "ftplat-tiny-cs", "training_file": real["id"], "seed": 3,
                      "hyperparameters": {"n_epochs": 1, "batch_size": 4, "learning_rate_multiplier": 2},
                      "method": {"type": "supervised", "supervised": {"hyperparameters": {"max_steps": 4}}},
                      "lora": {"r": 4}, "metadata": {"k": "v"}, "suffix": "sdk"}),
            ("sft", {"model": "tiny-llama", "training_file": sft["id"], "validation_file": sft["id"]}),
            ("dpo", {"model": "tiny-llama", "training_file": dpo["id"],
                     "method": {"type": "dpo", "dpo": {"hyperparameters": {"beta": 0.2}}},
                     "adapter": "qlora"}),
            ("bad", {"model": "tiny-llama", "training_file": bad["id"]}),
            ("pz", {"model": "tiny-llama", "training_file": sft["id"]}),
            ("empty", {"model": "tiny-llama", "training_file": empty["id"]}),
        ]:
            jobs[name] = call(c, "POST", ("POST", "/v1/fine_tuning/jobs"), "/v1/fine_tuning/jobs",
                              json=body).json()["id"]
        for name in ("sft", "dpo"):
            wait_status(srv, jobs[name], {"queued", "running"})
        # cancel dpo while it waits behind the real job: cancelled (or
        # cancelling, had the worker picked it up meanwhile)
        call(c, "POST", ("POST", "/v1/fine_tuning/jobs/{id}/cancel"),
             f"/v1/fine_tuning/jobs/{jobs['dpo']}/cancel")
        # pause pz while it waits behind the others (paused; or pausing, had
        # the worker taken it), then resume it once paused
        wait_status(srv, jobs["pz"], {"queued", "running", "failed"})
        call(c, "POST", ("POST", "/v1/fine_tuning/jobs/{id}/pause"),
             f"/v1/fine_tuning/jobs/{jobs['pz']}/pause")
        if wait_status(srv, jobs["pz"], {"paused", "failed"})["status"] == "paused":
            call(c, "POST", ("POST", "/v1/fine_tuning/jobs/{id}/resume"),
                 f"/v1/fine_tuning/jobs/{jobs['pz']}/resume")
        else:   # stopped by its error before the pause came (tiny-llama has no weights)
            answers.append((("POST", "/v1/fine_tuning/jobs/{id}/resume"),
                            c.get(f"/v1/fine_tuning/jobs/{jobs['pz']}").json()))
        for name in ("bad", "empty"):
            assert wait_status(srv, jobs[name], {"failed", "queued"})["status"] == "failed"
        j = wait_status(srv, jobs["real"], {"succeeded", "failed", "cancelled"}, timeout=600)
        assert j["status"] == "succeeded", (j, (platform / "worker.log").read_text()[-3000:])
        # sft is queued or, now the one worker is free, running (or failed:
        # tiny-llama has no weights); any state is an object to validate
        for f in (real, sft, dpo, bad, empty):
            call(c, "GET", ("GET", "/v1/files/{id}"), f"/v1/files/{f['id']}")
            call(c, "GET", ("GET", "/v1/files/{id}/content"), f"/v1/files/{f['id']}/content")
        call(c, "GET", ("GET", "/v1/files"), "/v1/files")
        call(c, "GET", ("GET", "/v1/files"), "/v1/files", params={"purpose": "fine-tune", "limit": 2})
        call(c, "DELETE", ("DELETE", "/v1/files/{id}"), f"/v1/files/{doomed['id']}")
        answers.append((("POST", "/v1/files"), doomed))
        for name, job in jobs.items():
            call(c, "GET", ("GET", "/v1/fine_tuning/jobs/{id}"), f"/v1/fine_tuning/jobs/{job}")
            call(c, "GET", ("GET", "/v1/fine_tuning/jobs/{id}/events"),
                 f"/v1/fine_tuning/jobs/{job}/events", params={"limit": 100})
            call(c, "GET", ("GET", "/v1/fine_tuning/jobs/{id}/checkpoints"),
                 f"/v1/fine_tuning/jobs/{job}/checkpoints", params={"limit": 100})
        call(c, "GET", ("GET", "/v1/fine_tuning/jobs"), "/v1/fine_tuning/jobs", params={"limit": 100})
        call(c, "GET", ("GET", "/v1/models"), "/v1/models")
        for m in ("tiny-llama", "ftplat-tiny-cs", j["fine_tuned_model"]):
            call(c, "GET", ("GET", "/v1/models/{model}"), f"/v1/models/{m}")
        # OpenAI's delete of a fine-tuned model: its version (docs/registry.md)
        call(c, "DELETE", ("DELETE", "/v1/models/{model}"), f"/v1/models/{j['fine_tuned_model']}")
    return dict(jobs=jobs, answers=answers)


def test_every_answer_validates_strictly_against_the_sdk(world):
    seen = set()
    for route, obj in world["answers"]:
        if route == ("POST", "/v1/fine_tuning/jobs/{id}/pause") and obj.get("status") != "failed":
            # OpenAI's pause answers "pausing" or "paused", statuses its API reference lists
            # and this SDK's Literal lacks: the status is checked here, the rest strictly
            assert obj["status"] in ("pausing", "paused"), obj
            obj = dict(obj, status="running")
        validate(route, obj)
        seen.add(route)
        for item in obj.get("data", []) if obj.get("object") == "list" else []:
            # the item models of the pages, strictly, one by one too
            page = model_of(next(f for f, m, p in SDK_ROUTES if (m, p) == route))
            item_model = page.__pydantic_generic_metadata__["args"][0]
            item_model.model_validate(item, strict=True)
    assert seen == {(m, p) for _, m, p in SDK_ROUTES if p != "/v1/files/{id}/content"}
    # the real run's checkpoints (every 2 of its 4 steps) were among them
    ckpts = [o for r, o in world["answers"] if r == ("GET", "/v1/fine_tuning/jobs/{id}/checkpoints")]
    assert sorted(c["step_number"] for o in ckpts for c in o["data"]) == [2, 4]


def test_strict_validation_can_fail(world):
    """The check above has teeth: the SDK's strict models refuse what ft-api
    used to send (an event of type "status") and a number sent as a string."""
    events = [obj for route, obj in world["answers"]
              if route == ("GET", "/v1/fine_tuning/jobs/{id}/events")]
    e = dict(events[0]["data"][0], type="status")
    with pytest.raises(pydantic.ValidationError):
        validate(("GET", "/v1/fine_tuning/jobs/{id}/events"), {**events[0], "data": [e]})
    job = next(obj for route, obj in world["answers"] if route == ("GET", "/v1/fine_tuning/jobs/{id}"))
    with pytest.raises(pydantic.ValidationError):
        validate(("GET", "/v1/fine_tuning/jobs/{id}"), dict(job, created_at=str(job["created_at"])))
    validate(("GET", "/v1/fine_tuning/jobs/{id}"), job)   # while lax mode takes "123" for 123:
    openai.types.fine_tuning.FineTuningJob.model_validate(dict(job, created_at=str(job["created_at"])))


def test_events_of_every_kind(world):
    """Status changes are message events with {"status": ...} in their data
    (the validator's, the cancel's, the scheduler's); the worker's metrics are
    metrics events; nothing else appears."""
    evs = {}
    for route, obj in world["answers"]:
        if route == ("GET", "/v1/fine_tuning/jobs/{id}/events"):
            for e in obj["data"]:
                evs[e["id"]] = e
    types = {e["type"] for e in evs.values()}
    assert types == {"message", "metrics"}
    statuses = {e["data"]["status"] for e in evs.values()
                if isinstance(e["data"], dict) and "status" in e["data"]}
    # queued and failed (validator), cancelled (API), running and succeeded (scheduler)
    assert {"queued", "failed", "running", "succeeded"} <= statuses
    assert statuses & {"cancelled", "cancelling"}
    assert all(e["type"] == "message" for e in evs.values()
               if isinstance(e["data"], dict) and "status" in e["data"])


def test_file_error_texts(world, api_server):
    with client(api_server) as c:
        bad = c.get(f"/v1/fine_tuning/jobs/{world['jobs']['bad']}").json()["error"]
        empty = c.get(f"/v1/fine_tuning/jobs/{world['jobs']['empty']}").json()["error"]
    # The line ends in mid-object: the parser gives up after its last byte, so
    # the column is the line's length in bytes (the trainer's reader counts
    # columns the same way).
    col = len(BAD_LINE3)
    assert bad["message"].startswith(f"training file line 3: invalid JSON at column {col}: ")
    assert bad["line"] == 3 and bad["report"]["errors"][0]["line"] == 3
    assert empty["message"] == "training file: the file has no rows"
    assert empty["line"] is None and empty["report"]["errors"][0]["line"] is None
    for msg in (bad["message"], empty["message"]):
        assert msg.count("line ") <= 1 and ", column" not in msg
        words = msg.lower().split()
        assert not any(a == b for a, b in zip(words, words[1:])), msg
