"""ftctl against the real ft-api (and PostgreSQL, Redis): every command group,
tables and --json, the API's own error messages, and the exit codes the
docs promise (0 ok, 1 refused, 2 usage, 3 unreachable, 5 cancelled)."""
import json
import os
import re
import subprocess

import pytest

from api_helpers import DPO_LINES, SFT_LINES, jsonl, register_tiny_model, wait_status


@pytest.fixture(scope="module")
def ctl(build_dir, api_server, tmp_path_factory):
    exe = str(build_dir / "cli" / "ftctl")
    home = tmp_path_factory.mktemp("home")

    def run(*args, key=None, url=None, check=None):
        env = dict(os.environ, HOME=str(home), FT_API_URL=url or api_server.url,
                   FT_API_KEY=key if key is not None else api_server.key)
        p = subprocess.run([exe, *args], capture_output=True, text=True, env=env, timeout=120)
        if check is not None:
            assert p.returncode == check, (args, p.returncode, p.stdout, p.stderr)
        return p
    run.home = home
    return run


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("files")
    (d / "train.jsonl").write_bytes(jsonl(SFT_LINES))
    (d / "dpo.jsonl").write_bytes(jsonl(DPO_LINES))
    (d / "bad.jsonl").write_text('{"messages": [{"role": "user", "content": "hi"}, '
                                 '{"role": "assistant", "content": "yo"}]}\n{"messages": "oops"}\n')
    return d


def test_files_upload_list_get_content_delete(ctl, files, tmp_path):
    up = json.loads(ctl("--json", "files", "upload", str(files / "train.jsonl"), check=0).stdout)
    assert up["id"].startswith("file-") and up["bytes"] == len(jsonl(SFT_LINES))
    table = ctl("files", "list", check=0).stdout
    assert table.splitlines()[0].split()[:3] == ["ID", "FILENAME", "BYTES"]
    assert up["id"] in table and "train.jsonl" in table
    shown = ctl("files", "get", up["id"], check=0).stdout
    assert re.search(rf"^id +{up['id']}$", shown, re.M) and re.search(r"^filename +train.jsonl$", shown, re.M)
    out = tmp_path / "copy.jsonl"
    ctl("files", "content", up["id"], "-o", str(out), check=0)
    assert out.read_bytes() == jsonl(SFT_LINES)
    assert json.loads(ctl("--json", "files", "delete", up["id"], check=0).stdout)["deleted"] is True
    p = ctl("files", "get", up["id"], check=1)
    assert "ftctl: error:" in p.stderr and up["id"] in p.stderr


def test_datasets_validate_reports_lines(ctl, files):
    ok = ctl("datasets", "validate", str(files / "train.jsonl"), check=0)
    assert ": valid" in ok.stdout and "format messages" in ok.stdout
    bad = ctl("datasets", "validate", str(files / "bad.jsonl"), check=1)
    assert ": invalid" in bad.stdout
    assert "line 2" in bad.stdout and '"messages" must be a list (got string)' in bad.stdout


def test_jobs_create_list_get_events_cancel_wait(ctl, api_server, files, tmp_path):
    register_tiny_model(api_server, tmp_path, name="ctl-model")
    created = json.loads(ctl("--json", "jobs", "create", "--model", "ctl-model", "--training-file",
                             str(files / "train.jsonl"), "--epochs", "2", "--lr-multiplier", "0.5",
                             "--suffix", "cs", "--seed", "7", check=0).stdout)
    job = created["id"]
    assert created["hyperparameters"]["n_epochs"] == 2 and created["seed"] == 7
    assert job in ctl("jobs", "list", check=0).stdout
    assert "status" in ctl("jobs", "get", job, check=0).stdout
    events = ctl("jobs", "events", job, check=0).stdout
    assert "created" in events.lower() or "validat" in events.lower()
    ctl("jobs", "cancel", job, check=0)
    w = ctl("jobs", "wait", job, "--timeout", "60")
    assert w.returncode == 5 and "cancelled" in w.stderr
    dpo = json.loads(ctl("--json", "jobs", "create", "--model", "ctl-model", "--training-file",
                         str(files / "dpo.jsonl"), "--method", "dpo", "--beta", "0.2",
                         "--hp", "label_smoothing=0.1", "--hp", "max_seq_length=512",
                         "--hp", "lr_scheduler_type=cosine", check=0).stdout)
    assert dpo["method"]["type"] == "dpo"
    hp = dpo["method"]["dpo"]["hyperparameters"]
    assert hp["beta"] == 0.2 and hp["label_smoothing"] == 0.1 and hp["max_seq_length"] == 512
    assert hp["lr_scheduler_type"] == "cosine"
    # a hyperparameter the API does not know is refused with its name (exit 1)
    p = ctl("jobs", "create", "--model", "ctl-model", "--training-file", str(files / "dpo.jsonl"),
            "--hp", "colour=red", check=1)
    assert "colour" in p.stderr
    assert ctl("jobs", "create", "--hp", "novalue", check=2).returncode == 2
    # the adapter's shape: --lora-* become the API's "lora" object
    lj = json.loads(ctl("--json", "jobs", "create", "--model", "ctl-model", "--training-file",
                        str(files / "train.jsonl"), "--lora-r", "8", "--lora-alpha", "16",
                        "--lora-dropout", "0", "--lora-targets", "q_proj,k_proj,down_proj",
                        "--lora-layers", "1,0-1", check=0).stdout)
    assert lj["lora"] == {"r": 8, "alpha": 16.0, "dropout": 0.0,   # the model has layers 0-1
                          "target_modules": ["q_proj", "k_proj", "down_proj"],
                          "layers_to_transform": [0, 1]}
    # pause and resume: queued (no worker here) -> paused -> queued; resume twice is a 409
    wait_status(api_server, lj["id"], {"queued"})
    assert json.loads(ctl("--json", "jobs", "pause", lj["id"], check=0).stdout)["status"] == "paused"
    assert json.loads(ctl("--json", "jobs", "resume", lj["id"], check=0).stdout)["status"] == "queued"
    p = ctl("jobs", "resume", lj["id"], check=1)
    assert f'job "{lj["id"]}" is not paused (it is queued)' in p.stderr
    ctl("jobs", "cancel", lj["id"], check=0)
    p = ctl("jobs", "create", "--model", "ctl-model", "--training-file", str(files / "train.jsonl"),
            "--lora-layers", "7-5", check=2)
    assert '--lora-layers takes layer indices and ranges, e.g. 10-29 or 0,2,4 (got "7-5")' in p.stderr


def test_models_keys_webhooks(ctl, api_server, tmp_path):
    register_tiny_model(api_server, tmp_path, name="ctl-model-2")
    assert "ctl-model-2" in ctl("models", "list", check=0).stdout
    key = json.loads(ctl("--json", "keys", "create", "--role", "viewer", "--name", "ci-bot",
                         "--rate-limit", "120", check=0).stdout)
    assert key["key"].startswith("ftk-") and key["role"] == "viewer"
    assert key["rate_limit_per_min"] == 120
    up = json.loads(ctl("--json", "keys", "update", key["id"], "--rate-limit", "5000", check=0).stdout)
    assert (up["id"], up["rate_limit_per_min"], up["name"]) == (key["id"], 5000, "ci-bot")
    p = ctl("keys", "update", key["id"], "--rate-limit", "2000000", check=1)   # the API's words
    assert "rate_limit_per_min" in p.stderr
    assert key["id"] in ctl("keys", "list", check=0).stdout
    # The new viewer key works, and may not create keys.
    assert ctl("jobs", "list", key=key["key"]).returncode == 0
    p = ctl("keys", "create", key=key["key"], check=1)
    assert "role" in p.stderr
    ctl("keys", "revoke", key["id"], check=0)
    assert ctl("jobs", "list", key=key["key"]).returncode == 1
    # Webhooks: plain http is refused by this server's configuration, with the API's words.
    p = ctl("webhooks", "create", "--url", "http://127.0.0.1:9/h", "--event", "fine_tuning.job.succeeded",
            check=1)
    assert "must use https" in p.stderr and "(param: url)" in p.stderr
    assert ctl("webhooks", "list", check=0).stdout.startswith("ID")


def test_error_paths_and_exit_codes(ctl, api_server, files):
    p = ctl("jobs", "list", key="ftk-notarealkey000000000000000000000000000000000", check=1)
    assert p.stderr.startswith("ftctl: error:") and "key" in p.stderr.lower()
    p = ctl("jobs", "get", "ftjob-" + "Z" * 24, check=1)
    assert p.stderr == 'ftctl: error: no fine-tuning job "ftjob-' + 'Z' * 24 + '"\n'
    p = ctl("files", "upload", str(files / "missing.jsonl"), check=1)
    assert "cannot read" in p.stderr and "missing.jsonl" in p.stderr
    p = ctl("jobs", "create", "--model", "nope", "--training-file", str(files / "train.jsonl"), check=1)
    assert "(param: model)" in p.stderr
    assert ctl("jobs", "list", url="http://127.0.0.1:1", check=3).stderr.startswith(
        "ftctl: error: cannot reach the API")
    assert ctl("jobs", "frobnicate", check=2).stderr.startswith('ftctl: unknown command "jobs frobnicate"')
    assert "needs a number" in ctl("jobs", "create", "--epochs", "many", check=2).stderr
    assert ctl("jobs", "get", check=2).stderr.startswith("usage: ftctl jobs get")


def test_help_completion_and_config_file(ctl, api_server):
    help_all = ctl("--help", check=0).stdout
    for group in ("files", "datasets", "jobs", "models", "keys", "webhooks"):
        assert f"ftctl {group} " in help_all
    assert ctl("jobs", "create", "--help", check=0).stdout.startswith("usage: ftctl jobs create")
    comp = ctl("completion", "bash", check=0).stdout
    assert "complete -F _ftctl ftctl" in comp and "cancel" in comp
    # ~/.config/ftctl/config is read when the environment says nothing.
    cfg = ctl.home / ".config" / "ftctl"
    cfg.mkdir(parents=True, exist_ok=True)
    (cfg / "config").write_text(f"# written by the test\napi_url = {api_server.url}\napi_key = {api_server.key}\n")
    exe = str(api_server.build_dir / "cli" / "ftctl")
    env = {k: v for k, v in os.environ.items() if k not in ("FT_API_URL", "FT_API_KEY")}
    env["HOME"] = str(ctl.home)
    p = subprocess.run([exe, "models", "list"], capture_output=True, text=True, env=env, timeout=60)
    assert p.returncode == 0 and p.stdout.startswith("ID"), p.stderr
