"""QLoRA memory and speed: the NF4 base beside fp32 and beside bitsandbytes.

A ~21M-parameter Llama (the model of bench_engine.py: hidden 512, 6 layers,
MLP 1376, vocab 8192, tied embeddings) is created by transformers, then:
  - memory: the bytes of the base weights our trainer holds for "lora" (all
    fp32) and for "qlora" (decoder linears in NF4 with double quantisation,
    the rest fp32), from the `start` progress line, beside the bytes of the
    same linears in bitsandbytes' own quantised tensors (packed codes +
    absmax + nested absmax, quantize_4bit(nf4, 64, compress_statistics=True));
  - speed: training tokens per second of ours for "lora" and "qlora" (r 16 on
    all linears, seq 256, batch 4), best step after one warm-up step.
Prints figures and ratios; never fails on timing.

Run: FT_BUILD_DIR=build-rel python tests/bench/bench_qlora.py [--threads N] [--steps N]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_file

sys.path.insert(0, str(Path(__file__).parent))
from bench_engine import BATCH, SEQ, make_model, make_rows  # noqa: E402


def run_job(build_dir, d, method, steps, threads):
    job = {"model": str(d / "model"), "train_file": str(d / "rows.jsonl"),
           "output_dir": str(d / f"out_{method}"), "method": method, "threads": threads,
           "lora": {"r": 16, "alpha": 32, "dropout": 0.0, "target_modules": "all-linear"},
           "hyperparameters": {"max_steps": steps, "batch_size": BATCH, "shuffle": False,
                               "learning_rate": 1e-4, "max_seq_length": SEQ}}
    (d / f"{method}.json").write_text(json.dumps(job))
    exe = Path(build_dir) / "trainer" / "ft-train"
    p = subprocess.run([str(exe), "train", "--config", str(d / f"{method}.json")],
                       capture_output=True, text=True, check=True)
    lines = [json.loads(x) for x in p.stdout.splitlines() if x.startswith("{")]
    start = lines[0]
    tps = max(x["tokens_per_second"] for x in lines if x["type"] == "step" and x["step"] > 1)
    return start, tps


def bnb_bytes(model_dir):
    import bitsandbytes.functional as F
    sd = load_file(str(model_dir / "model.safetensors"))
    lin = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
    q_bytes = rest = 0
    for name, t in sd.items():
        if name.endswith(".weight") and name.split(".")[-2] in lin:
            q, st = F.quantize_4bit(t.float(), blocksize=64, compress_statistics=True,
                                    quant_type="nf4")
            q_bytes += q.numel() + st.absmax.numel() + 4 * st.state2.absmax.numel()
        else:
            rest += 4 * t.numel()
    return rest, q_bytes


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--steps", type=int, default=3)
    a = ap.parse_args()
    build = os.environ.get("FT_BUILD_DIR", "build")
    with tempfile.TemporaryDirectory() as t:
        d = Path(t)
        n = make_model(d / "model")
        make_rows(d / "rows.jsonl", BATCH * a.steps)
        s_lora, tps_lora = run_job(build, d, "lora", a.steps, a.threads)
        s_q, tps_q = run_job(build, d, "qlora", a.steps, a.threads)
        rest, qb = bnb_bytes(d / "model")
    f32 = s_lora["base_bytes_f32"]
    ours = s_q["base_bytes_f32"] + s_q["base_bytes_nf4"]
    print(f"model: {n} parameters")
    print(f"base weights, lora (fp32):     {f32:>12} B")
    print(f"base weights, qlora (ours):    {ours:>12} B  (fp32 part {s_q['base_bytes_f32']}, "
          f"NF4 part {s_q['base_bytes_nf4']})  {f32 / ours:.2f}x smaller")
    print(f"bitsandbytes, same linears:    {rest + qb:>12} B  (NF4 part {qb}); "
          f"ours / bitsandbytes NF4 part = {s_q['base_bytes_nf4'] / qb:.4f}")
    print(f"tokens/s: lora {tps_lora:.0f}, qlora {tps_q:.0f} (qlora / lora = "
          f"{tps_q / tps_lora:.2f}), {a.threads} threads")


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
