"""Training throughput of the CPU engine beside PyTorch (+ peft) on the same model.

Two shapes, each created by transformers with random weights:
  - small: a ~21M-parameter Llama (hidden 512, 6 layers, 8 heads / 4 kv heads,
    MLP 1376, vocab 8192, tied embeddings), sequence 256, batch 4: LoRA (r 16
    on all linear layers) and full fine-tuning;
  - smollm2: SmolLM2-135M-Instruct's shape (hidden 576, 30 layers, 9 heads /
    3 kv heads, MLP 1536, vocab 49152, tied, rope base 100000), the
    quickstart's base, sequence 512, batch 4: LoRA only (what the quickstart
    runs; the 49,152-token vocabulary makes the cross-entropy and the thin
    rank-16 GEMMs what matters), with an fp32 base and with a bf16 one
    ("lora-bf16": ours base_dtype "bf16"; PyTorch's base in bfloat16 under
    CPU autocast to bfloat16, peft's adapters fp32 as it keeps them);
both sides train for a few steps with the same thread count,
and the best training tokens per second of a step (after one warm-up step; the
best rather than the mean because the machines this runs on are shared) are
printed with their ratio. Never fails on timing: it only prints.

Run: FT_BUILD_DIR=build-rel python tests/bench/bench_engine.py [--threads N] [--steps N]
(a Release build gives the figures worth recording in docs/performance.md; the
ASan/UBSan test build works but is slower.)
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import transformers
import peft

BATCH = 4
SHAPES = {
    "small": dict(seq=256, methods=("lora", "full"),
                  cfg=dict(vocab_size=8192, hidden_size=512, intermediate_size=1376,
                           num_hidden_layers=6, num_attention_heads=8, num_key_value_heads=4,
                           max_position_embeddings=512, tie_word_embeddings=True)),
    "smollm2": dict(seq=512, methods=("lora", "lora-bf16"),
                    cfg=dict(vocab_size=49152, hidden_size=576, intermediate_size=1536,
                             num_hidden_layers=30, num_attention_heads=9, num_key_value_heads=3,
                             max_position_embeddings=2048, rope_theta=100000.0,
                             rms_norm_eps=1e-5, tie_word_embeddings=True)),
}
SEQ, VOCAB = 256, 8192  # set per shape by main()


def make_model(folder, shape):
    cfg = transformers.LlamaConfig(**SHAPES[shape]["cfg"])
    torch.manual_seed(0)
    m = transformers.LlamaForCausalLM(cfg)
    m.save_pretrained(folder)
    return sum(p.numel() for p in m.parameters())


def make_rows(path, n):
    g = torch.Generator().manual_seed(1)
    with open(path, "w") as f:
        for _ in range(n):
            ids = torch.randint(3, VOCAB, (SEQ,), generator=g).tolist()
            f.write(json.dumps({"input_ids": ids}) + "\n")


def ours(build_dir, d, method, steps, threads):
    bf16 = method == "lora-bf16"
    job = {"model": str(d / "model"), "train_file": str(d / "rows.jsonl"),
           "output_dir": str(d / f"out_{method}"), "method": "lora" if bf16 else method,
           "threads": threads,
           "lora": {"r": 16, "alpha": 32, "dropout": 0.0, "target_modules": "all-linear"},
           "hyperparameters": {"max_steps": steps, "batch_size": BATCH, "shuffle": False,
                               "learning_rate": 1e-4, "max_seq_length": SEQ,
                               "base_dtype": "bf16" if bf16 else "fp32"}}
    (d / f"{method}.json").write_text(json.dumps(job))
    exe = Path(build_dir) / "trainer" / "ft-train"
    p = subprocess.run([str(exe), "train", "--config", str(d / f"{method}.json")],
                       capture_output=True, text=True, check=True)
    lines = [json.loads(x) for x in p.stdout.splitlines() if x.startswith("{")]
    tps = [x["tokens_per_second"] for x in lines if x["type"] == "step"][1:]  # skip warm-up
    start = [x for x in lines if x["type"] == "start"][0]
    if bf16 and start["base_dtype"] != "bf16":
        print("  (this CPU has no AVX512-BF16: ft-train's lora-bf16 ran in fp32)")
    return max(tps)


def theirs(d, method, steps, threads):
    torch.set_num_threads(threads)
    bf16 = method == "lora-bf16"
    model = transformers.AutoModelForCausalLM.from_pretrained(
        d / "model", dtype=torch.bfloat16 if bf16 else torch.float32)
    if method.startswith("lora"):
        model = peft.get_peft_model(model, peft.LoraConfig(r=16, lora_alpha=32,
                                                           target_modules="all-linear"))
    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    g = torch.Generator().manual_seed(1)
    rates = []
    for step in range(steps):
        ids = torch.randint(3, VOCAB, (BATCH, SEQ), generator=g)
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
        opt.step()
        opt.zero_grad()
        dt = time.perf_counter() - t0
        if step > 0:
            rates.append(BATCH * SEQ / dt)
    return max(rates)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--shapes", default="small,smollm2")
    a = ap.parse_args()
    build_dir = os.environ.get("FT_BUILD_DIR", "build")
    global SEQ, VOCAB
    for shape in a.shapes.split(","):
        SEQ, VOCAB = SHAPES[shape]["seq"], SHAPES[shape]["cfg"]["vocab_size"]
        with tempfile.TemporaryDirectory() as tmp:
            d = Path(tmp)
            n = make_model(d / "model", shape)
            make_rows(d / "rows.jsonl", BATCH * a.steps)
            print(f"{shape}: {n / 1e6:.1f}M parameters, seq {SEQ}, batch {BATCH}, "
                  f"threads {a.threads}, torch {torch.__version__}")
            for method in SHAPES[shape]["methods"]:
                o = ours(build_dir, d, method, a.steps, a.threads)
                t = theirs(d, method, a.steps, a.threads)
                print(f"{shape:8s} {method:9s} ft-train {o:8.0f} tok/s   pytorch {t:8.0f} tok/s"
                      f"   ratio {o / t:5.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
