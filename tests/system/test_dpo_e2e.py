"""A DPO job through the whole platform: POST /v1/fine_tuning/jobs with method
dpo on the bundled tiny model and a slice of the bundled customer-service
preference pairs (OpenAI's DPO format) -> ft-scheduler -> ft-worker ->
ft-train -> succeeded, with trl's reward metrics in the job's events."""
import json
import math

from api_helpers import client, upload, wait_status
from test_dispatch_e2e import DATA, platform  # noqa: F401  (the scheduler + worker fixture)


def test_dpo_job_runs_end_to_end(api_server, platform):  # noqa: F811
    pairs = open(f"{DATA}/preference.jsonl", "rb").read().splitlines(keepends=True)
    val = open(f"{DATA}/preference_validation.jsonl", "rb").read().splitlines(keepends=True)
    train_f = upload(api_server, b"".join(pairs[:8]), name="preference.jsonl")
    val_f = upload(api_server, b"".join(val[:4]), name="preference_validation.jsonl")
    with client(api_server) as c:
        r = c.post("/v1/fine_tuning/jobs", json={
            "model": "ftplat-tiny-cs", "training_file": train_f["id"],
            "validation_file": val_f["id"], "seed": 5,
            "method": {"type": "dpo", "dpo": {"hyperparameters": {
                "n_epochs": 1, "batch_size": 4, "beta": 0.2}}},
            "lora": {"r": 8, "alpha": 16}})
        assert r.status_code == 200, r.text
        job = r.json()["id"]
        assert r.json()["method"]["dpo"]["hyperparameters"]["beta"] == 0.2
    j = wait_status(api_server, job, ("succeeded", "failed", "cancelled"), timeout=300)
    assert j["status"] == "succeeded", (j, (platform["tmp"] / "worker.log").read_text()[-3000:])

    # what the API accepted reached the trainer unchanged
    cfg = json.loads((platform["tmp"] / "work" / f"{job}-1" / "job.json").read_text())
    assert cfg["objective"] == "dpo" and cfg["method"] == "lora"
    assert cfg["hyperparameters"]["beta"] == 0.2

    with client(api_server) as c:
        events = c.get(f"/v1/fine_tuning/jobs/{job}/events", params={"limit": 100}).json()["data"]
    data = [e["data"] for e in events if isinstance(e.get("data"), dict)]
    msgs = [e["message"] for e in events]
    assert "Step 2/2: training loss=" in " ".join(msgs)
    assert any(m.startswith("Step 0: validation loss=0.69314718") and
               m.endswith("reward accuracy=0") for m in msgs), msgs
    steps = sorted((d for d in data if d.get("type") == "step"), key=lambda d: d["step"])
    evals = sorted((d for d in data if d.get("type") == "eval"), key=lambda d: d["step"])
    assert [d["step"] for d in steps] == [1, 2]          # 8 pairs, 4 per step, one epoch
    # a fresh adapter (B = 0) is the reference itself: the first loss is log 2
    assert abs(steps[0]["train_loss"] - math.log(2)) < 1e-6
    for d in steps:
        for k in ("rewards/chosen", "rewards/rejected", "rewards/accuracies",
                  "rewards/margins", "logps/chosen", "logps/rejected"):
            assert isinstance(d[k], float) or isinstance(d[k], int), (k, d)
        assert abs(d["rewards/margins"] - (d["rewards/chosen"] - d["rewards/rejected"])) < 1e-9
        assert d["logps/chosen"] < 0 and d["logps/rejected"] < 0
    assert [d["step"] for d in evals] == [0, 2]          # eval_on_start, and at the end
    assert abs(evals[0]["eval_loss"] - math.log(2)) < 1e-6
    assert "eval_rewards/accuracies" in evals[-1]
    assert "rewards/margins" in j["latest_metrics"]
