"""The model obeys the device-memory discipline (engine/include/ft/backend.h).

Every job runs twice: on the CPU backend and on the guarded CPU backend
(FT_BACKEND=cpu-guarded), whose memory is mprotect'ed PROT_NONE except while
one of its own operations runs, so host code that touches "device" memory
directly dies with SIGSEGV. Both run the same CPU kernels, so the guarded
run must give BIT-IDENTICAL results: the step losses, grad norms, learning
rates and eval metrics compare with ==, the written adapters and merged
models byte for byte, and generation gives the same ids. The peer is the
plain CPU run, itself checked against PyTorch by test_engine_peer /
test_qlora_peer / test_dpo_peer. tests/unit/engine/test_device_memory.c
proves the guard traps (so these cannot pass vacuously).
"""
import json

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from conftest import run  # noqa: E402
from test_engine_peer import ft, make_model, make_rows, write_rows  # noqa: E402

VOCAB = 61
NUMERIC = ("train_loss", "learning_rate", "grad_norm", "epoch", "eval_loss",
           "eval_perplexity", "eval_token_accuracy", "rewards/chosen", "rewards/rejected",
           "rewards/margins", "rewards/accuracies", "logps/chosen", "logps/rejected",
           "eval_rewards/chosen", "eval_rewards/margins", "eval_logps/chosen")


def make_pairs(n, seed):
    g = torch.Generator().manual_seed(seed)

    def ids(lo, hi):
        L = int(torch.randint(lo, hi + 1, (1,), generator=g))
        return torch.randint(3, VOCAB, (L,), generator=g).tolist()

    return [{"prompt_ids": ids(2, 6), "chosen_ids": ids(1, 6), "rejected_ids": ids(1, 6)}
            for _ in range(n)]


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    d = tmp_path_factory.mktemp("devmem")
    make_model("llama_gqa", d / "model", seed=3)
    write_rows(d / "train.jsonl", make_rows(10, seed=11))
    write_rows(d / "val.jsonl", make_rows(4, seed=12))
    write_rows(d / "pairs.jsonl", make_pairs(6, seed=31))
    write_rows(d / "vpairs.jsonl", make_pairs(3, seed=37))
    return d


def _job(d, name, method, **kw):
    h = {"max_steps": 4, "batch_size": 2, "gradient_accumulation_steps": 2,
         "learning_rate": 3e-3, "lr_scheduler_type": "cosine", "warmup_steps": 1,
         "weight_decay": 0.01, "max_grad_norm": 0.5, "shuffle": True}
    h.update(kw.pop("hp", {}))
    job = {"model": str(d / "model"), "train_file": str(d / "train.jsonl"),
           "output_dir": str(d / name), "method": method, "seed": 7, "hyperparameters": h}
    job.update(kw)
    return job


def _train(build_dir, d, job, backend, *extra):
    job = dict(job, output_dir=job["output_dir"] + "_" + backend)
    path = d / (job["output_dir"].rsplit("/", 1)[1] + ".json")
    path.write_text(json.dumps(job))
    p = run([ft(build_dir), "train", "--config", str(path), *extra],
            env={"FT_NUM_THREADS": "2", "FT_BACKEND": backend})
    lines = [json.loads(x) for x in p.stdout.splitlines() if x.startswith("{")]
    assert lines[0]["type"] == "start" and lines[0]["device"] == backend
    return lines, job["output_dir"]


def _numbers(lines):
    """Every step / eval line's numbers, as the trainer printed them (%.17g)."""
    out = []
    for x in lines:
        if x["type"] in ("step", "eval"):
            out.append((x["type"], x["step"], {k: x[k] for k in NUMERIC if k in x}))
    return out


def _files(folder):
    from pathlib import Path
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(Path(folder).rglob("*.safetensors"))}


def _same_run(build_dir, d, job, *extra):
    plain, out_p = _train(build_dir, d, job, "cpu", *extra)
    guarded, out_g = _train(build_dir, d, job, "cpu-guarded", *extra)
    assert _numbers(plain) and _numbers(guarded) == _numbers(plain)
    files_p, files_g = _files(out_p), _files(out_g)
    assert files_p and files_g.keys() == files_p.keys()
    for k in files_p:
        assert files_g[k] == files_p[k], k
    return plain, out_p, out_g


LORA = {"r": 4, "alpha": 8, "dropout": 0.1, "target_modules": "all-linear"}

JOBS = {
    # LoRA with dropout, evaluation (early stopping keeps a best copy), merged output
    "lora": dict(method="lora", lora=LORA, save_merged=True, validation_file="VAL",
                 hp={"eval_steps": 1, "early_stopping_patience": 3, "eval_on_start": True}),
    # full fine-tuning, packed rows, gradient checkpointing
    "full": dict(method="full", hp={"packing": True, "max_seq_length": 24,
                                    "gradient_checkpointing": True}),
    # QLoRA (NF4 base quantised at load) with checkpointing and merging
    "qlora": dict(method="qlora", lora=LORA, save_merged=True,
                  hp={"gradient_checkpointing": 1}),
    "dpo_lora": dict(method="lora", lora=LORA, objective="dpo", train_file="PAIRS",
                     validation_file="VPAIRS", hp={"eval_steps": 2}),
    "dpo_full": dict(method="full", objective="dpo", train_file="PAIRS",
                     validation_file="VPAIRS"),
}


@pytest.mark.parametrize("name", list(JOBS))
def test_guarded_backend_is_bit_identical(case, build_dir, name):
    spec = dict(JOBS[name])
    subst = {"VAL": "val.jsonl", "PAIRS": "pairs.jsonl", "VPAIRS": "vpairs.jsonl"}
    for k in ("train_file", "validation_file"):
        if k in spec:
            spec[k] = str(case / subst[spec[k]])
    method = spec.pop("method")
    plain, _, _ = _same_run(build_dir, case, _job(case, name, method, **spec))
    assert plain[-1]["type"] == "done"


def test_guarded_resume_is_bit_identical(case, build_dir):
    job = _job(case, "resume", "lora", lora=LORA, hp={"max_steps": 5})
    plain, _ = _train(build_dir, case, job, "cpu")
    # interrupted after 2 steps on the guarded backend, resumed on it
    first, out = _train(build_dir, case, job, "cpu-guarded", "--stop-after-steps", "2")
    assert first[-1]["type"] == "interrupted"
    rest, _ = _train(build_dir, case, job, "cpu-guarded", "--resume", out + "/checkpoint")
    assert _numbers(first) + _numbers(rest) == _numbers(plain)


@pytest.mark.parametrize("kw", [{}, {"temperature": 0.8, "top_p": 0.9, "seed": 5}])
def test_guarded_generation_is_identical(case, build_dir, kw):
    job = _job(case, "gen", "lora", lora=LORA)
    _, out = _train(build_dir, case, job, "cpu")
    ids = {}
    for backend in ("cpu", "cpu-guarded"):
        cmd = [ft(build_dir), "generate", "--model", str(case / "model"), "--adapter",
               out + "/adapter", "--prompt-ids", "5,9,17,3,44", "--max-new-tokens", "12"]
        for k, v in kw.items():
            cmd += ["--" + k.replace("_", "-"), str(v)]
        p = run(cmd, env={"FT_NUM_THREADS": "2", "FT_BACKEND": backend})
        ids[backend] = json.loads(p.stdout)["ids"]
    assert len(ids["cpu"]) == 12 and ids["cpu-guarded"] == ids["cpu"]


def test_merge_command_is_identical(case, build_dir):
    job = _job(case, "mergecmd", "lora", lora=LORA)
    _, out = _train(build_dir, case, job, "cpu")
    files = {}
    for backend in ("cpu", "cpu-guarded"):
        dst = case / ("merged_" + backend)
        run([ft(build_dir), "merge", "--model", str(case / "model"), "--adapter",
             out + "/adapter", "--out", str(dst), "--nf4"],
            env={"FT_NUM_THREADS": "2", "FT_BACKEND": backend})
        files[backend] = _files(dst)
    assert files["cpu"] and files["cpu-guarded"] == files["cpu"]


def test_cuda_device_without_the_backend_exits_3(case, build_dir, tmp_path):
    job = _job(case, "cuda", "lora", lora=LORA, device="cuda")
    path = tmp_path / "job.json"
    path.write_text(json.dumps(job))
    p = run([ft(build_dir), "train", "--config", str(path)], check=False,
            env={"FT_BACKEND": ""})
    assert p.returncode == 3, p.stderr
    assert 'device "cuda" is not available' in p.stderr
    job["device"] = "tpu"
    path.write_text(json.dumps(job))
    p = run([ft(build_dir), "train", "--config", str(path)], check=False,
            env={"FT_BACKEND": ""})
    assert p.returncode == 3 and '"device" must be "cpu" or "cuda" (got "tpu")' in p.stderr


@pytest.mark.parametrize("cmd,extra", [("debug-forward", ["--pack", "24"]),
                                       ("debug-grads", ["--full"]),
                                       ("debug-grads", ["--nf4", "--adapter", "ADAPTER"])])
def test_debug_dumps_are_identical(case, build_dir, cmd, extra):
    if "ADAPTER" in extra:
        _, out = _train(build_dir, case, _job(case, "dbg", "lora", lora=LORA), "cpu")
        extra = [out + "/adapter" if x == "ADAPTER" else x for x in extra]
    dumps = {}
    for backend in ("cpu", "cpu-guarded"):
        dst = case / f"{cmd}_{backend}.safetensors"
        run([ft(build_dir), cmd, "--model", str(case / "model"), "--data",
             str(case / "train.jsonl"), "--out", str(dst), *extra],
            env={"FT_NUM_THREADS": "2", "FT_BACKEND": backend})
        dumps[backend] = dst.read_bytes()
    assert len(dumps["cpu"]) > 1000 and dumps["cpu-guarded"] == dumps["cpu"]
