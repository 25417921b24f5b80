"""Datasets (validation report, statistics, preview), base models (the
parameter count checked against transformers), and jobs whose training file
fails full validation: failed, with the line-numbered report as the error."""
import json

import pytest

from api_helpers import SFT_LINES, TINY_LLAMA, client, jsonl, register_tiny_model, upload, wait_status


def wait_dataset(srv, ds_id, timeout=20):
    import time
    with client(srv) as c:
        deadline = time.time() + timeout
        while True:
            d = c.get(f"/v1/datasets/{ds_id}").json()
            if d["status"] != "validating":
                return d
            assert time.time() < deadline
            time.sleep(0.05)


def test_dataset_report_stats_and_preview(api_server):
    lines = [json.dumps(l) for l in SFT_LINES] + ['{"messages": "oops"}', "{broken"]
    f = upload(api_server, ("\n".join(lines) + "\n").encode())
    with client(api_server) as c:
        d = c.post("/v1/datasets", json={"file_id": f["id"], "name": "chat v1"}).json()
    assert d["status"] == "validating" and d["name"] == "chat v1" and d["object"] == "dataset"
    d = wait_dataset(api_server, d["id"])
    assert d["status"] == "invalid" and d["format"] == "messages"
    rep = d["report"]
    assert rep["n_lines"] == 4 and rep["n_examples"] == 2 and rep["n_errors"] == 2
    assert [e["line"] for e in rep["errors"]] == [3, 4]
    assert rep["errors"][0]["message"] == 'line 3: "messages" must be a list (got string)'
    assert rep["errors"][1]["code"] == "invalid_json"
    # Characters of message contents, counted by hand: "what is 2+2?" 12 + "4" 1
    # = 13; "be brief" 8 + "hi" 2 + "hello" 5 = 15.
    assert d["stats"]["total_chars"] == 28 and d["stats"]["max_chars"] == 15
    assert d["stats"]["roles"] == {"user": 2, "assistant": 2, "system": 1}
    assert d["preview"][0] == "user: what is 2+2?\nassistant: 4\n"
    good = upload(api_server, jsonl(SFT_LINES))
    with client(api_server) as c:
        d2 = c.post("/v1/datasets", json={"file_id": good["id"]}).json()
        assert d2["name"] == "train.jsonl"
        page = c.get("/v1/datasets", params={"limit": 1}).json()
        assert page["has_more"] and page["data"][0]["id"] == d2["id"]
        page2 = c.get("/v1/datasets", params={"limit": 1, "after": page["last_id"]}).json()
        assert page2["data"][0]["id"] == d["id"]
    assert wait_dataset(api_server, d2["id"])["status"] == "valid"


def test_job_with_bad_lines_fails_with_line_numbered_error(api_server, tmp_path):
    register_tiny_model(api_server, tmp_path, name="tiny-v")
    data = jsonl(SFT_LINES) + b'{"messages": [{"role": "user", "content": "no answer"}]}\n'
    f = upload(api_server, data)
    with client(api_server) as c:
        j = c.post("/v1/fine_tuning/jobs", json={"model": "tiny-v", "training_file": f["id"]}).json()
    j = wait_status(api_server, j["id"], {"failed", "queued"})
    assert j["status"] == "failed" and j["finished_at"] is not None
    e = j["error"]
    assert e["code"] == "invalid_training_file" and e["param"] == "training_file" and e["line"] == 3
    assert e["message"] == 'training file line 3: "messages" has no assistant message: nothing to train on'
    assert e["report"]["errors"][0]["code"] == "no_assistant_turn"
    assert e["report"]["n_examples"] == 2


def test_format_that_does_not_fit_the_method_is_refused_at_once(api_server, tmp_path):
    register_tiny_model(api_server, tmp_path, name="tiny-m")
    pref = upload(api_server, jsonl([{"prompt": "p", "chosen": "a", "rejected": "b"}]))
    with client(api_server) as c:
        r = c.post("/v1/fine_tuning/jobs", json={"model": "tiny-m", "training_file": pref["id"]})
    assert r.status_code == 400
    err = r.json()["error"]
    # the validator's own words for that line (ft-train validate --method sft)
    assert err["code"] == "wrong_method" and err["param"] == "training_file" and err["line"] == 1
    assert err["message"] == (f'training_file "{pref["id"]}" line 1: rows in the "preference" format '
                              'are for dpo training, but the method is sft')


def test_model_parameter_count_matches_transformers(api_server, tmp_path):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(**{k: v for k, v in TINY_LLAMA.items()
                                      if k not in ("architectures", "model_type")})
    model = transformers.LlamaForCausalLM(cfg)
    want = model.num_parameters()
    full = tmp_path / "full"
    model.save_pretrained(full, safe_serialization=True)
    (full / "tokenizer_config.json").write_text(json.dumps({"chat_template": "{{ messages }}"}))
    only_cfg = tmp_path / "cfg"
    only_cfg.mkdir()
    (only_cfg / "config.json").write_text((full / "config.json").read_text())
    with client(api_server) as c:
        a = c.post("/v1/models", json={"name": "from-weights", "path": str(full)}).json()
        b = c.post("/v1/models", json={"name": "from-config", "path": str(only_cfg)}).json()
        assert a["parameter_count"] == want and b["parameter_count"] == want
        assert a["architecture"] == "LlamaForCausalLM" and a["chat_template"] == "{{ messages }}"
        assert c.get("/v1/models/from-weights").json()["model_id"] == a["model_id"]
        dup = c.post("/v1/models", json={"name": "from-weights", "path": str(full)})
        assert dup.status_code == 409
        bad = c.post("/v1/models", json={"name": "nowhere", "path": str(tmp_path / "missing")})
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "path"


def test_bad_validation_file_fails_the_job_naming_it(api_server, tmp_path):
    register_tiny_model(api_server, tmp_path, name="tiny-vf")
    train = upload(api_server, jsonl(SFT_LINES))
    val = upload(api_server, jsonl(SFT_LINES) + b'\n{"messages": [{"role": "assistant"}]}\n', name="val.jsonl")
    with client(api_server) as c:
        j = c.post("/v1/fine_tuning/jobs", json={"model": "tiny-vf", "training_file": train["id"],
                                                  "validation_file": val["id"]}).json()
    assert j["validation_file"] == val["id"]
    j = wait_status(api_server, j["id"], {"failed", "queued"})
    e = j["error"]
    # a blank line is an error too (as the trainer and OpenAI say), and the first one
    assert j["status"] == "failed" and e["param"] == "validation_file" and e["line"] == 3
    assert e["message"] == ("validation file line 3: blank line: every line must hold one JSON object "
                            "(remove it) (and 1 more errors)")
    assert [(x["line"], x["code"], x["message"]) for x in e["report"]["errors"]] == [
        (3, "blank_line", "line 3: blank line: every line must hold one JSON object (remove it)"),
        (4, "missing_field", 'line 4: "messages[0].content" is required')]
