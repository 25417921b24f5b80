"""Helpers shared by the test_api_*.py system tests (see conftest.api_server)."""
import json
import time

import httpx

TINY_LLAMA = {
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 64,
    "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
    "num_key_value_heads": 2, "vocab_size": 256, "tie_word_embeddings": False,
}

SFT_LINES = [
    {"messages": [{"role": "user", "content": "what is 2+2?"}, {"role": "assistant", "content": "4"}]},
    {"messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"},
                  {"role": "assistant", "content": "hello"}]},
]
DPO_LINES = [
    {"input": {"messages": [{"role": "user", "content": "say hi"}]},
     "preferred_output": [{"role": "assistant", "content": "hi!"}],
     "non_preferred_output": [{"role": "assistant", "content": "no"}]},
]


def jsonl(lines):
    return ("\n".join(json.dumps(l) for l in lines) + "\n").encode()


def client(srv, key=None):
    return httpx.Client(base_url=srv.url, headers={"Authorization": f"Bearer {key or srv.key}"},
                        timeout=30)


def register_tiny_model(srv, tmp_path, key=None, name="tiny-llama"):
    d = tmp_path / name
    d.mkdir(exist_ok=True)
    (d / "config.json").write_text(json.dumps(TINY_LLAMA))
    with client(srv, key) as c:
        r = c.post("/v1/models", json={"name": name, "path": str(d)})
        assert r.status_code == 200, r.text
        return r.json()


def upload(srv, data, key=None, name="train.jsonl"):
    with client(srv, key) as c:
        r = c.post("/v1/files", data={"purpose": "fine-tune"}, files={"file": (name, data)})
        assert r.status_code == 200, r.text
        return r.json()


def wait_status(srv, job_id, want, key=None, timeout=20):
    """Poll until the job's status is one of want: every 50 ms at first, then
    less often (at most every 0.5 s), so a long wait (a job trained under
    ASan) does not spend the key's 600 requests a minute that the next test
    needs; a 429 meanwhile waits a second and asks again."""
    with client(srv, key) as c:
        deadline = time.time() + timeout
        pause = 0.05
        while True:
            r = c.get(f"/v1/fine_tuning/jobs/{job_id}")
            j = r.json() if r.status_code != 429 else {"status": "(rate-limited)"}
            if j["status"] in want:
                return j
            assert time.time() < deadline, f"job stayed {j['status']}, wanted {want}"
            time.sleep(1.0 if r.status_code == 429 else pause)
            pause = min(pause * 1.25, 0.5)


def ftctl(srv, build_dir, *args, key=None, check=0, home=None):
    """Run ftctl against srv (FT_API_URL / FT_API_KEY); asserts the exit code
    unless check is None. Returns the CompletedProcess."""
    import os
    import subprocess
    env = dict(os.environ, FT_API_URL=srv.url, FT_API_KEY=key or srv.key)
    if home:
        env["HOME"] = str(home)
    p = subprocess.run([str(build_dir / "cli" / "ftctl"), *args], capture_output=True, text=True,
                       env=env, timeout=600)
    if check is not None:
        assert p.returncode == check, (args, p.returncode, p.stdout, p.stderr)
    return p
