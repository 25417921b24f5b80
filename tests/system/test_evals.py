"""Offline evaluation jobs end to end, every part real (ft-api, ft-scheduler,
ft-worker running ft-train eval on the bundled tiny model and on a LoRA
version trained here): the numbers equal independent implementations on
the same answers.

Peers and tolerances:
  ROUGE-L per row   rouge-score's RougeScorer(["rougeL"]) with the CJK tokenizer
                    object of stats_peer.py (the option's rule), 1e-12
  ROUGE-L mean      numpy's mean of those, 1e-12
  BLEU              sacrebleu.BLEU(tokenize="zh").corpus_score, 1e-9 (0-100 scale)
  facts             stats_peer.facts (NFKC + regular expressions); the share's
                    interval scipy.stats.binomtest(...).proportion_ci("wilson"), 1e-12
  perplexity        PyTorch: transformers' LlamaForCausalLM in float32 (peft's
                    PeftModel for the version) on the token ids ft-train eval
                    scores, -sum log_softmax over the labelled tokens; per row and
                    over the file, 1e-6 relative (float32 logits; measured ~1e-7)
  token ids         transformers' apply_chat_template of the row, exactly; the
                    labels are exactly the tokens after the generation prompt
The ids come from `ft-train eval --with-ids` run here on the same file and
model folders (the adapter's from the store); its rows must equal the
platform's (same answers, nll within 1e-9 relative)."""
import http.server
import json
import math
import secrets
import subprocess
import threading
from pathlib import Path

import numpy as np
import psycopg
import pytest
import torch
from scipy import stats

import stats_peer
from api_helpers import client, upload
from conftest import _api_server
from registry_platform import (DATA, MODEL, Platform, Receiver, data_lines,
                               register_bundled_model, run_job, store_blob, upload_data)

SECRET_KEY = secrets.token_hex(32)   # seals the judge's api_key
HP = {"n_epochs": 1, "batch_size": 4, "learning_rate_multiplier": 5, "max_steps": 4,
      "eval_steps": 2, "warmup_steps": 1}
MAX_NEW = 24


def eval_rows():
    """Six held-out conversations (three English, three Chinese, one of them
    two turns), some with required facts."""
    rows = [json.loads(l) for l in (DATA / "validation.jsonl").read_text().splitlines()]
    en = [r for r in rows if "感谢" not in r["messages"][-1]["content"]][:3]
    zh = [r for r in rows if "感谢" in r["messages"][-1]["content"]][:3]
    out = []
    for i, r in enumerate(en + zh):
        r = {"messages": r["messages"]}
        if i in (0, 3):
            r["required_facts"] = [["Thanks", "Thank you", "感谢", "谢谢"]]
        if i in (1, 4):
            r["required_facts"] = ["¥99", ["30 days", "30天"]]
        if i == 2:
            r["required_facts"] = []
        out.append(r)
    return out


def wait_eval(srv, eid, key=None, timeout=600):
    import time
    with client(srv, key) as c:
        deadline = time.time() + timeout
        while True:
            e = c.get(f"/v1/evals/{eid}").json()
            if e["status"] in ("succeeded", "failed", "cancelled"):
                return e
            assert time.time() < deadline, f"evaluation stayed {e['status']}"
            time.sleep(0.2)


@pytest.fixture(scope="module")
def world(build_dir, database_url, redis_url, tmp_path_factory):
    srv, name = _api_server(build_dir, database_url, redis_url, tmp_path_factory,
                            max_upload_bytes=1 << 22, webhook_allow_http="true",
                            webhook_allow_cidrs="127.0.0.1/32", secret_key=SECRET_KEY)
    tmp = tmp_path_factory.mktemp("evals")
    plat = Platform(srv, build_dir, redis_url, tmp, FT_SECRET_KEY=SECRET_KEY,
                    FT_JUDGE_ALLOW_HTTP="true", FT_JUDGE_ALLOW_CIDRS="127.0.0.1/32",
                    FT_JUDGE_BACKOFF_MS="100", FT_JUDGE_MAX_ATTEMPTS="2")
    rec = Receiver()
    register_bundled_model(srv)
    with client(srv) as c:
        wh = c.post("/v1/webhooks", json={"url": rec.url,
                                          "events": ["eval.succeeded", "eval.failed"]}).json()
    tf = upload_data(srv, "train.jsonl", 16)
    job = run_job(srv, model="ftplat-tiny-cs", training_file=tf["id"], seed=5,
                  registered_model="support-bot", hyperparameters=HP, lora={"r": 8, "alpha": 16})
    assert job["status"] == "succeeded", plat.log("wrk-reg-1.log")[-3000:]
    rows = eval_rows()
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode()
    ef = upload(srv, text, name="eval.jsonl")
    (tmp / "eval.jsonl").write_bytes(text)
    with client(srv) as c:
        r = c.post("/v1/evals", json={"file": ef["id"], "name": "held-out",
                                      "models": ["ftplat-tiny-cs", "support-bot@latest"],
                                      "options": {"max_new_tokens": MAX_NEW}})
        assert r.status_code == 200, r.text
        created = r.json()
    done = wait_eval(srv, created["id"])
    assert done["status"] == "succeeded", (done, plat.log("wrk-reg-1.log")[-3000:])
    with client(srv) as c:
        full = c.get(f"/v1/evals/{created['id']}", params={"rows": "true"}).json()
        version = c.get("/v1/registry/models/support-bot/versions/1").json()
    yield dict(srv=srv, plat=plat, rec=rec, secret=wh["secret"], rows=rows, ef=ef, created=created,
               eval=full, version=version, tmp=tmp, build_dir=build_dir)
    plat.stop()
    rec.close()
    rc = srv.stop()
    with psycopg.connect(database_url, autocommit=True) as c:
        c.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    assert rc == 0, srv.log_path.read_text()[-4000:]


def test_created_as_queued_with_normalised_options(world):
    e = world["created"]
    assert e["object"] == "evaluation" and e["id"].startswith("fteval-")
    assert e["status"] == "queued" and e["file"] == world["ef"]["id"] and e["name"] == "held-out"
    assert e["options"] == {"max_new_tokens": MAX_NEW, "rouge_tokenizer": "cjk",
                            "bleu_tokenizer": "zh", "max_rows": 1000}
    assert [m["model"] for m in e["models"]] == ["ftplat-tiny-cs", "support-bot@latest"]
    assert e["models"][0]["model_version_id"] is None
    assert e["models"][1]["model_version_id"] == world["version"]["id"]
    assert all(m["metrics"] is None for m in e["models"])


def test_rows_side_by_side(world):
    e, rows = world["eval"], world["rows"]
    assert len(e["rows"]) == len(rows)
    for i, row in enumerate(e["rows"]):
        assert row["line"] == i + 1
        assert row["reference"] == rows[i]["messages"][-1]["content"]
        assert [a["model"] for a in row["answers"]] == ["ftplat-tiny-cs", "support-bot@latest"]
        for a in row["answers"]:
            assert 0 < a["answer_tokens"] <= MAX_NEW and a["tokens"] > 0


def test_text_metrics_equal_rouge_score_sacrebleu_and_the_facts_peer(world):
    e, rows = world["eval"], world["rows"]
    for m, model in enumerate(e["models"]):
        answers = [row["answers"][m] for row in e["rows"]]
        refs = [row["reference"] for row in e["rows"]]
        hyps = [a["answer"] for a in answers]
        fs = []
        for a, ref, hyp in zip(answers, refs, hyps):
            peer = stats_peer.rouge_l({"target": ref, "prediction": hyp, "tokenizer": "cjk"})
            for k in ("precision", "recall", "fmeasure"):
                assert a["rouge_l"][k] == pytest.approx(peer[k], abs=1e-12), (k, ref, hyp)
            fs.append(peer["fmeasure"])
        met = model["metrics"]
        assert met["rows"] == len(rows)
        assert met["rouge_l"]["fmeasure"] == pytest.approx(float(np.mean(fs)), abs=1e-12)
        peer = stats_peer.bleu({"hyps": hyps, "refs": [refs], "tokenizer": "zh"})
        assert met["bleu"]["score"] == pytest.approx(peer["score"], abs=1e-9)
        assert met["bleu"]["bp"] == pytest.approx(peer["bp"], abs=1e-12)
        assert (met["bleu"]["sys_len"], met["bleu"]["ref_len"]) == (peer["sys_len"], peer["ref_len"])
        # facts: rows 1, 2, 4, 5 carry some; row 3 an empty list (no facts to hold)
        k = n = 0
        for a, hyp, src in zip(answers, hyps, rows):
            facts = src.get("required_facts")
            if not facts:
                assert a["all_facts"] is None
                assert a["facts_found"] == ([] if facts == [] else None)
                continue
            spellings = [[f] if isinstance(f, str) else f for f in facts]
            peer = stats_peer.facts({"answer": hyp, "facts": spellings})
            assert a["facts_found"] == peer["found"] and a["all_facts"] == peer["all"]
            n += 1
            k += peer["all"]
        assert met["facts"]["rows"] == n == 4 and met["facts"]["all_found"] == k
        ci = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
        assert met["facts"]["interval"] == pytest.approx([ci.low, ci.high], abs=1e-12)
        assert met["facts"]["share"] == pytest.approx(k / n, abs=1e-15)


def adapter_folder(world, dest):
    """The version's adapter, rebuilt from the store by its manifest."""
    sha = world["version"]["artifact"]["sha256"]
    manifest = json.loads(store_blob(world["srv"], sha).read_bytes())
    for f in manifest["files"]:
        p = dest / f["path"]
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(store_blob(world["srv"], f["sha256"]).read_bytes())
    return dest


@pytest.fixture(scope="module")
def by_hand(world):
    """ft-train eval run here with --with-ids on the same file and folders."""
    tmp = world["tmp"]
    adapter = adapter_folder(world, tmp / "adapter")
    spec = {"data": str(tmp / "eval.jsonl"), "options": world["eval"]["options"],
            "models": [{"name": "base", "model": str(MODEL)},
                       {"name": "v1", "model": str(MODEL), "adapter": str(adapter)}]}
    (tmp / "spec.json").write_text(json.dumps(spec))
    out = tmp / "out.json"
    subprocess.run([str(world["build_dir"] / "trainer" / "ft-train"), "eval", "--config",
                    str(tmp / "spec.json"), "--out", str(out), "--with-ids"], check=True,
                   env={"FT_NUM_THREADS": "2", "PATH": "/usr/bin:/bin"}, timeout=600)
    return json.loads(out.read_text()), adapter


def test_platform_rows_equal_ft_train_by_hand(world, by_hand):
    res, _ = by_hand
    for m, model in enumerate(res["models"]):
        for row, plat in zip(model["rows"], world["eval"]["rows"]):
            a = plat["answers"][m]
            assert a["answer"] == row["answer"] and a["tokens"] == row["tokens"]
            assert a["nll"] == pytest.approx(row["nll"], rel=1e-9)


def test_token_ids_are_the_chat_template_s(world, by_hand):
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(str(MODEL))
    res, _ = by_hand
    for row, src in zip(res["models"][0]["rows"], world["rows"]):
        msgs = src["messages"]
        full = tok.apply_chat_template(msgs, tokenize=True, return_dict=True)["input_ids"]
        prompt = tok.apply_chat_template(msgs[:-1], tokenize=True, add_generation_prompt=True,
                                         return_dict=True)["input_ids"]
        assert row["ids"] == full
        # the labels: the reference's tokens and the template's end of turn, nothing before
        labelled = [i for i, l in enumerate(row["labels"]) if l != -100]
        assert full[:len(prompt)] == prompt and labelled[0] == len(prompt)
        assert labelled == list(range(len(prompt), labelled[-1] + 1))
        assert all(row["labels"][i] == full[i] for i in labelled)
        end = tok.convert_tokens_to_ids("<|im_end|>")
        assert full[labelled[-1]] == end and full.index(end, len(prompt)) == labelled[-1]
        assert row["tokens"] == len(labelled)


def torch_nll(model, ids, labels):
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0].double()
    lp = torch.log_softmax(logits[:-1], -1)
    tgt = torch.tensor(labels[1:])
    keep = (tgt != -100).nonzero().squeeze(1)
    return -lp[keep, tgt[keep]].sum().item(), len(keep)


def test_perplexity_equals_pytorch(world, by_hand):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM
    res, adapter = by_hand
    base = AutoModelForCausalLM.from_pretrained(str(MODEL), dtype=torch.float32).eval()
    tuned = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(str(MODEL), dtype=torch.float32), str(adapter)).eval()
    for m, (model, torch_model) in enumerate(zip(res["models"], (base, tuned))):
        tot = n = 0
        for row, plat in zip(model["rows"], world["eval"]["rows"]):
            nll, count = torch_nll(torch_model, row["ids"], row["labels"])
            assert count == row["tokens"] == plat["answers"][m]["tokens"]
            assert plat["answers"][m]["nll"] == pytest.approx(nll, rel=1e-6)
            tot += nll
            n += count
        met = world["eval"]["models"][m]["metrics"]
        assert met["tokens"] == n
        assert met["perplexity"] == pytest.approx(math.exp(tot / n), rel=1e-6)
    # the LoRA version is a different model: its perplexity differs from the base's
    ppl = [m["metrics"]["perplexity"] for m in world["eval"]["models"]]
    assert ppl[0] != ppl[1]


def test_succeeded_webhook_is_signed_and_carries_the_metrics(world):
    import time
    deadline = time.time() + 30
    while True:
        evs = world["rec"].events(world["secret"], "eval.succeeded")
        if evs or time.time() > deadline:
            break
        time.sleep(0.1)
    assert len(evs) == 1
    d = evs[0]["data"]
    assert d["id"] == world["eval"]["id"] and d["status"] == "succeeded"
    assert [m["metrics"] for m in d["models"]] == [m["metrics"] for m in world["eval"]["models"]]


def test_events_tell_the_story(world):
    with client(world["srv"]) as c:
        evs = c.get(f"/v1/evals/{world['eval']['id']}/events", params={"limit": 100}).json()["data"]
    msgs = [e["message"] for e in reversed(evs)]
    assert msgs[0].startswith("Created evaluation") and "Evaluation started" in msgs
    assert msgs[-1] == "The evaluation has successfully completed" or \
        "The evaluation has successfully completed" in msgs
    results = [e for e in evs if e["message"].startswith("Evaluated")]
    assert len(results) == 2 and all("rows" not in e["data"] for e in results)


def test_bad_input_names_the_field(world):
    srv = world["srv"]
    other, okey = srv.make_team("other-evals")
    theirs = upload(srv, world["ef"] and (DATA / "validation.jsonl").read_bytes()[:2000].rsplit(b"\n", 1)[0] + b"\n",
                    key=okey, name="theirs.jsonl")
    no_ref = upload(srv, json.dumps({"messages": [{"role": "user", "content": "hi"},
                                                  {"role": "assistant", "content": "a"},
                                                  {"role": "user", "content": "?"}]}).encode() + b"\n",
                    name="noref.jsonl")
    ok = {"file": world["ef"]["id"], "models": ["ftplat-tiny-cs"]}
    cases = [
        ({**ok, "models": ["ftplat-tiny-cs", "nope@prod"]}, "models[1]"),
        ({**ok, "models": []}, "models"),
        ({**ok, "models": ["ftplat-tiny-cs", "ftplat-tiny-cs"]}, "models[1]"),
        ({**ok, "models": [7]}, "models[0]"),
        ({**ok, "options": {"max_new_tokens": 0}}, "options.max_new_tokens"),
        ({**ok, "options": {"rouge_tokenizer": "nltk"}}, "options.rouge_tokenizer"),
        ({**ok, "options": {"beam": 2}}, "options.beam"),
        ({**ok, "file": theirs["id"]}, "file"),
        ({**ok, "file": no_ref["id"]}, "file"),
        ({**ok, "file": "file-x"}, "file"),
        ({**ok, "extra": 1}, "extra"),
        ({**ok, "models": [f"ft:ftplat-tiny-cs:{world['version']['lineage']['job']['id']}:ckpt-step-2"]},
         "models[0]"),
    ]
    with client(srv) as c:
        for body, param in cases:
            r = c.post("/v1/evals", json=body)
            assert r.status_code == 400, (body, r.text)
            assert r.json()["error"]["param"] == param, (body, r.text)
        r = c.post("/v1/evals", json={**ok, "file": no_ref["id"]})
        assert "line 1" in r.json()["error"]["message"]
    # another team's version is not found from here: the same answer as no version at all
    with client(srv, okey) as c:
        f = upload(srv, (world["tmp"] / "eval.jsonl").read_bytes(), key=okey)
        r1 = c.post("/v1/evals", json={"file": f["id"], "models": ["support-bot/1"]})
        r2 = c.post("/v1/evals", json={"file": f["id"], "models": ["no-such-bot/1"]})
        assert r1.status_code == r2.status_code == 400
        assert r1.json()["error"]["param"] == "models[0]"
        assert r1.json()["error"]["code"] == r2.json()["error"]["code"] == "model_not_found"


def test_other_teams_see_nothing(world):
    srv, eid = world["srv"], world["eval"]["id"]
    _, okey = srv.make_team("nosy-evals")
    with client(srv, okey) as c:
        assert c.get(f"/v1/evals/{eid}").status_code == 404
        assert c.get(f"/v1/evals/{eid}/events").status_code == 404
        assert c.post(f"/v1/evals/{eid}/cancel").status_code == 404
        assert c.get("/v1/evals").json()["data"] == []
    with client(srv) as c:
        assert [e["id"] for e in c.get("/v1/evals").json()["data"]] == [eid]
        assert c.post(f"/v1/evals/{eid}/cancel").status_code == 409


def test_a_bad_row_fails_the_evaluation_naming_its_line(world):
    srv = world["srv"]
    rows = world["rows"][:2] + [{"messages": world["rows"][2]["messages"], "required_facts": "30 days"}]
    f = upload(srv, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode(),
               name="bad.jsonl")
    with client(srv) as c:
        r = c.post("/v1/evals", json={"file": f["id"], "models": ["ftplat-tiny-cs"],
                                      "options": {"max_new_tokens": 4}})
        assert r.status_code == 200, r.text   # only the first row is read at creation
    e = wait_eval(srv, r.json()["id"])
    assert e["status"] == "failed" and e["attempt"] == 1          # the input's fault: no retry
    assert e["error"]["code"] == "invalid_eval"
    assert "line 3" in e["error"]["message"] and "required_facts" in e["error"]["message"]
    assert "/" not in e["error"]["message"].split("line 3")[0].replace("ft-train", "")
    deadline = __import__("time").time() + 30
    while not world["rec"].events(world["secret"], "eval.failed"):
        assert __import__("time").time() < deadline
        __import__("time").sleep(0.1)
    assert world["rec"].events(world["secret"], "eval.failed")[0]["data"]["id"] == e["id"]


def test_a_version_under_evaluation_is_not_deleted(world):
    srv, plat = world["srv"], world["plat"]
    plat.stop_worker("wrk-reg-1")          # nothing runs it: it stays queued
    try:
        with client(srv) as c:
            r = c.post("/v1/evals", json={"file": world["ef"]["id"], "models": ["support-bot/1"]})
            eid = r.json()["id"]
            d = c.delete("/v1/registry/models/support-bot/versions/1")
            assert d.status_code == 409, d.text
            assert f"evaluation(s) {eid}" in d.json()["error"]["message"]
            assert c.post(f"/v1/evals/{eid}/cancel").json()["status"] == "cancelled"
    finally:
        import time
        n = plat.log("wrk-reg-1.log").count(" up: ")
        plat.start_worker("wrk-reg-1")
        deadline = time.time() + 30
        while plat.log("wrk-reg-1.log").count(" up: ") == n:    # its signal handlers are set
            assert time.time() < deadline
            time.sleep(0.05)


def test_ftctl_evals(world):
    from api_helpers import ftctl
    srv, bd = world["srv"], world["build_dir"]
    p = ftctl(srv, bd, "evals", "show", world["eval"]["id"])
    lines = p.stdout.splitlines()
    assert lines[0].startswith(f"evaluation {world['eval']['id']} (held-out)") and "succeeded" in lines[0]
    assert lines[1].split() == ["MODEL", "PERPLEXITY", "ROUGE-L", "F", "BLEU", "FACTS", "ROWS"]
    for line, m in zip(lines[2:4], world["eval"]["models"]):
        cols = line.split()
        assert cols[0] == m["model"]
        assert float(cols[1]) == pytest.approx(m["metrics"]["perplexity"], rel=1e-3)
        assert float(cols[2]) == pytest.approx(m["metrics"]["rouge_l"]["fmeasure"], abs=1e-4)
        assert float(cols[3]) == pytest.approx(m["metrics"]["bleu"]["score"], abs=1e-2)
        f = m["metrics"]["facts"]
        assert cols[4] == f"{f['all_found']}/{f['rows']}" and cols[-1] == "6"
    rows = ftctl(srv, bd, "evals", "show", world["eval"]["id"], "--rows").stdout
    assert rows.count("--- line ") == 6 and "reference: " in rows
    # create from a local file (uploaded first), wait, and the JSON
    p = ftctl(srv, bd, "--json", "evals", "create", str(world["tmp"] / "eval.jsonl"),
              "ftplat-tiny-cs", "--option", "max_new_tokens=4", "--option", "max_rows=6",
              "--name", "by ftctl", "--wait")
    e = json.loads(p.stdout)
    assert e["status"] == "succeeded" and e["name"] == "by ftctl"
    assert e["options"]["max_new_tokens"] == 4
    p = ftctl(srv, bd, "evals", "create", world["ef"]["id"], "nope/1", check=1)
    assert "models[0]" in p.stderr


# ---- the LLM judge ----------------------------------------------------------

class LengthJudge:
    """An OpenAI-compatible chat completions server whose verdict a hand can
    compute: the longer answer (in characters) is better, equal lengths tie.
    Records each request."""

    def __init__(self):
        self.requests = []
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                outer.requests.append((dict(self.headers), body))
                p = body["messages"][1]["content"]
                a = p.split("[The start of assistant A's answer]\n")[1].split(
                    "\n[The end of assistant A's answer]")[0]
                b = p.split("[The start of assistant B's answer]\n")[1].split(
                    "\n[The end of assistant B's answer]")[0]
                v = "[[A]]" if len(a) > len(b) else "[[B]]" if len(b) > len(a) else "[[C]]"
                out = json.dumps({"id": "x", "object": "chat.completion", "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": "So: " + v},
                     "finish_reason": "stop"}]}).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *a):
                pass

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.srv.server_address[1]}/v1"
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()


def wilson(k, n, z):
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def test_llm_judge_scores_every_answer_against_its_reference(world):
    import base64
    import time
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    srv, judge = world["srv"], LengthJudge()
    try:
        with client(srv) as c:
            r = c.post("/v1/evals", json={
                "file": world["ef"]["id"], "models": ["ftplat-tiny-cs", "support-bot@latest"],
                "options": {"max_new_tokens": MAX_NEW},
                "judge": {"url": judge.url, "model": "judge-m", "api_key": "sk-eval-judge"}})
            assert r.status_code == 200, r.text
            e = r.json()
            assert e["judge"]["api_key_set"] is True and "api_key" not in e["judge"]
            assert e["judge"]["model"] == "judge-m" and "{question}" in e["judge"]["prompt"]
            assert wait_eval(srv, e["id"])["status"] == "succeeded"
            deadline = time.time() + 120
            while True:
                got = c.get(f"/v1/evals/{e['id']}", params={"rows": "true"}).json()
                if all(m["judge"]["pending"] == 0 for m in got["models"]):
                    break
                assert time.time() < deadline, got["models"]
                time.sleep(0.2)
        z = stats.norm.ppf(0.975)
        for m, model in enumerate(got["models"]):
            want = {"win": 0, "tie": 0, "loss": 0}
            for row in got["rows"]:
                a, ref = row["answers"][m]["answer"], row["reference"]
                want["win" if len(a) > len(ref) else "loss" if len(a) < len(ref) else "tie"] += 1
            j = model["judge"]
            assert (j["wins"], j["ties"], j["losses"], j["failed"]) == \
                (want["win"], want["tie"], want["loss"], 0), (j, want)
            n = len(got["rows"])
            k = want["win"] + want["tie"] / 2
            assert j["win_rate"] == pytest.approx(k / n, abs=1e-12)
            lo, hi = wilson(k, n, z)
            assert j["ci95"] == pytest.approx([lo, hi], abs=1e-9)
        # both orders of every answer, each with the row's question, the key as sent
        assert len(judge.requests) == 2 * 2 * len(world["rows"])
        prompts = [b["messages"][1]["content"] for _, b in judge.requests]
        for row in world["rows"]:
            q = row["messages"][-2]["content"]
            assert sum(q in p for p in prompts) >= 4
        assert {h.get("Authorization") or h.get("authorization") for h, _ in judge.requests} == \
            {"Bearer sk-eval-judge"}
        # kept sealed: the peer opens it with the evaluation's id as AAD; nowhere in clear
        with psycopg.connect(srv.db_url) as db:
            sealed = db.execute("SELECT judge_api_key_sealed FROM evals WHERE id = %s",
                                (e["id"],)).fetchone()[0]
            dump = db.execute("SELECT string_agg(t::text, '') FROM evals t").fetchone()[0]
        raw = base64.b64decode(sealed.removeprefix("fts1."))
        assert AESGCM(bytes.fromhex(SECRET_KEY)).decrypt(raw[:12], raw[12:], e["id"].encode()) \
            == b"sk-eval-judge"
        assert "sk-eval-judge" not in dump
    finally:
        judge.srv.shutdown()
