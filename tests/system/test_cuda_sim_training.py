"""Whole training jobs on the CUDA backend's own kernels, run by the CPU
simulator of tests/gpu/sim/ (ft-train-sim: ft-train linked with the
simulated engine/backends/cuda/*.cu), against the CPU backend on the same job.

This is issue 5's "a whole training step matches" and "20 LoRA SFT steps
within 1% of the CPU reference", checked without a GPU: the model, the loop
and every CUDA kernel and cuBLASLt call run as they would on one, only the
hardware is simulated (tests/gpu/sim/README.md says what that cannot see:
speed, races between truly concurrent threads, the real cuBLASLt). The fp32
path is compared, so the tolerance is tight: 1e-4 relative per step (the
issue's bar is 1%); reductions run in a different order on the two backends.
"""
import json
import os
from pathlib import Path

import pytest
from safetensors.torch import load_file

from conftest import run  # noqa: E402
from test_engine_peer import ENV, make_model, make_rows, write_rows  # noqa: E402
from test_dpo_peer import make_pairs, write_jsonl  # noqa: E402


def sim_exe(build_dir):
    p = build_dir / "tests" / "ft-train-sim"
    if not p.exists():
        pytest.skip("ft-train-sim was not built (no nvcc / C++ compiler)")
    return p


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    d = tmp_path_factory.mktemp("cudasim")
    make_model("llama_gqa", d / "model", seed=11)
    write_rows(d / "train.jsonl", make_rows(16, seed=5))
    write_rows(d / "val.jsonl", make_rows(4, seed=6))
    write_jsonl(d / "pairs.jsonl", make_pairs(8, seed=9))
    return d


def _job(d, out, device, **kw):
    hp = {"max_steps": 20, "batch_size": 2, "learning_rate": 3e-3, "shuffle": False,
          "lr_scheduler_type": "cosine", "warmup_steps": 2, "max_grad_norm": 1.0}
    hp.update(kw.pop("hp", {}))
    job = {"model": str(d / "model"), "train_file": str(d / "train.jsonl"),
           "output_dir": str(d / f"{out}_{device}"), "seed": 3, "device": device,
           "method": "lora", "lora": {"r": 4, "alpha": 8, "dropout": 0.1,
                                      "target_modules": "all-linear"},
           "hyperparameters": hp}
    job.update(kw)
    return job


def _train(build_dir, d, job):
    path = Path(job["output_dir"] + ".json")
    path.write_text(json.dumps(job))
    exe = sim_exe(build_dir) if job["device"] == "cuda" else build_dir / "trainer" / "ft-train"
    env = dict(ENV, FT_CUDA_SIM="1",
               ASAN_OPTIONS="detect_leaks=0:detect_stack_use_after_return=0")
    p = run([str(exe), "train", "--config", str(path)], env=env)
    return [json.loads(x) for x in p.stdout.splitlines() if x.startswith("{")]


def _compare(cpu, gpu, keys=("train_loss",), rel=1e-4):
    sc = [x for x in cpu if x["type"] == "step"]
    sg = [x for x in gpu if x["type"] == "step"]
    assert len(sc) == len(sg) > 0
    for i, (a, b) in enumerate(zip(sc, sg)):
        for k in keys:
            assert abs(a[k] - b[k]) <= rel * max(1.0, abs(a[k])), \
                f"step {i + 1} {k}: cpu {a[k]} cuda {b[k]}"
    return sc, sg


def _max_rel_diff(a_file, b_file):
    a, b = load_file(str(a_file)), load_file(str(b_file))
    assert a.keys() == b.keys() and a
    worst = 0.0
    for k in a:
        scale = max(float(a[k].abs().max()), 1e-6)
        worst = max(worst, float((a[k] - b[k]).abs().max()) / scale)
    return worst


@pytest.mark.parametrize("name,method,hp", [
    ("lora20", "lora", {}),  # issue 5: 20 LoRA SFT steps
    ("full", "full", {"learning_rate": 1e-3, "max_steps": 6}),
    ("qlora", "qlora", {"max_steps": 6}),
    ("ckpt_packed", "lora", {"gradient_checkpointing": True, "packing": True,
                             "max_seq_length": 32, "max_steps": 6}),
])
def test_training_on_the_cuda_kernels_matches_the_cpu(case, build_dir, name, method, hp):
    cpu = _train(build_dir, case, _job(case, name, "cpu", method=method, hp=dict(hp)))
    gpu = _train(build_dir, case, _job(case, name, "cuda", method=method, hp=dict(hp)))
    start = [x for x in gpu if x["type"] == "start"][0]
    assert start["device"] == "cuda"
    _compare(cpu, gpu, keys=("train_loss", "grad_norm"))
    # what training wrote: the adapter (or the model), each tensor within
    # 1e-4 of its scale
    sub = "model/model.safetensors" if method == "full" else "adapter/adapter_model.safetensors"
    d = Path(_job(case, name, "cpu")["output_dir"]).parent
    rel = _max_rel_diff(d / f"{name}_cpu" / sub, d / f"{name}_cuda" / sub)
    assert rel <= 1e-4, rel


def test_dpo_and_eval_on_the_cuda_kernels(case, build_dir):
    kw = {"objective": "dpo", "train_file": str(case / "pairs.jsonl"),
          "validation_file": str(case / "pairs.jsonl"),
          "hp": {"max_steps": 6, "beta": 0.5, "eval_steps": 3}}
    cpu = _train(build_dir, case, _job(case, "dpo", "cpu", **json.loads(json.dumps(kw))))
    gpu = _train(build_dir, case, _job(case, "dpo", "cuda", **json.loads(json.dumps(kw))))
    _compare(cpu, gpu, keys=("train_loss", "rewards/margins", "logps/chosen"))
    ec = [x for x in cpu if x["type"] == "eval"]
    eg = [x for x in gpu if x["type"] == "eval"]
    assert len(ec) == len(eg) == 2
    for a, b in zip(ec, eg):
        assert abs(a["eval_loss"] - b["eval_loss"]) <= 1e-4 * max(1.0, abs(a["eval_loss"]))


def test_generation_on_the_cuda_kernels(case, build_dir):
    out = []
    for exe in (build_dir / "trainer" / "ft-train", sim_exe(build_dir)):
        args = [str(exe), "generate", "--model", str(case / "model"), "--prompt-ids", "5,9,13",
                "--max-new-tokens", "8"]
        if "sim" in exe.name:
            args += ["--device", "cuda"]
        p = run(args, env=dict(ENV, FT_CUDA_SIM="1"))
        out.append(p.stdout)
    assert out[0] == out[1] and out[0].strip()


def test_a_job_that_does_not_fit_the_gpu_fails_before_loading(case, build_dir):
    """The estimate (ft/mem_estimate.h, fp32 path) is checked against the
    device's free memory before anything is allocated: with 2 GiB free (1 of them the runtime term) the
    2-layer model fits at batch 2 but not at batch 256 x 4096 tokens, and
    the error shows the breakdown and the remedy."""
    env = dict(ENV, FT_CUDA_SIM="1", FT_CUDA_SIM_FREE_MIB="2048")
    small = _job(case, "fits", "cuda", hp={"max_steps": 1})
    path = Path(small["output_dir"] + ".json")
    path.write_text(json.dumps(small))
    assert run([str(sim_exe(build_dir)), "train", "--config", str(path)], env=env).returncode == 0
    big = _job(case, "toobig", "cuda", hp={"max_steps": 1, "batch_size": 256,
                                            "max_seq_length": 4096})
    big_model = case / "model_long"
    if not big_model.exists():
        import shutil
        shutil.copytree(case / "model", big_model)
        cfg = json.loads((big_model / "config.json").read_text())
        cfg["max_position_embeddings"] = 4096
        (big_model / "config.json").write_text(json.dumps(cfg))
    big["model"] = str(big_model)
    path = Path(big["output_dir"] + ".json")
    path.write_text(json.dumps(big))
    p = run([str(sim_exe(build_dir)), "train", "--config", str(path)], env=env, check=False)
    assert p.returncode == 1, p.stderr
    assert "job needs" in p.stderr and "but the GPU has 2.0 GiB free" in p.stderr, p.stderr
    assert "enable gradient_checkpointing or lower batch_size" in p.stderr
    assert not (Path(big["output_dir"]) / "checkpoint").exists()
