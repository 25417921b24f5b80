"""GPU training throughput of the peer (transformers + peft, bf16, sdpa) on an H100.

The figures ftplat's CUDA backend is to be measured against, on the same
machine and shapes, and the peer's peak memory beside `ft-train estimate`:

  1. LoRA (r 16, all linear layers, alpha 32, no dropout) on a randomly
     initialised Llama-3.1-8B-shaped model (hidden 4096, 32 layers, 32 / 8
     heads, MLP 14336, vocab 128256), bf16 weights, sequence 2048;
  2. full fine-tuning of a Llama-3.2-1B shape (hidden 2048, 16 layers,
     32 / 8 heads, MLP 8192, vocab 128256, tied), fp32 master weights with
     bf16 autocast (HF Trainer's bf16=True), AdamW, sequence 2048.

Printed per run: tokens/s (best step after warm-up), MFU = tokens/s x
FLOPs per token / 989e12 (H100 SXM dense bf16), with FLOPs per token 4N for
LoRA (forward 2N + input gradients 2N; frozen weights get no weight
gradient) and 6N for full fine-tuning (N = parameters; attention's T^2
term is left out, as in the usual 6N rule), and peak memory
(torch.cuda.max_memory_allocated). With FT_BUILD_DIR set, the same job
shape goes through `ft-train estimate --json` and both memory figures are
printed with their ratio.

No model weights are downloaded: the models are built from configs with
random weights. Without a CUDA device it prints a SKIP line and exits 0; it
is never part of the test suite's pass/fail.

Run (on the GPU machine):
  FT_BUILD_DIR=build python3 tests/bench/gpu/bench_gpu.py [--steps 6] [--batch-lora 1]
      [--batch-full 4] [--gradient-checkpointing] [--only lora|full]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

H100_BF16_FLOPS = 989e12
SEQ = 2048

SHAPES = {
    "llama-3.1-8b": dict(vocab_size=128256, hidden_size=4096, intermediate_size=14336,
                         num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8,
                         max_position_embeddings=8192, rope_theta=500000.0,
                         tie_word_embeddings=False),
    "llama-3.2-1b": dict(vocab_size=128256, hidden_size=2048, intermediate_size=8192,
                         num_hidden_layers=16, num_attention_heads=32, num_key_value_heads=8,
                         max_position_embeddings=8192, rope_theta=500000.0,
                         tie_word_embeddings=True),
}


def skip(why):
    print(f"SKIP: {why}")
    sys.exit(0)


def ft_estimate(shape, method, batch, gc):
    """Bytes `ft-train estimate` predicts for the same job, or None."""
    build = os.environ.get("FT_BUILD_DIR")
    if not build:
        return None
    exe = Path(build) / "trainer" / "ft-train"
    with tempfile.TemporaryDirectory() as d:
        cfg = dict(SHAPES[shape], architectures=["LlamaForCausalLM"], model_type="llama",
                   rms_norm_eps=1e-5, hidden_act="silu", torch_dtype="bfloat16")
        Path(d, "model").mkdir()
        Path(d, "model", "config.json").write_text(json.dumps(cfg))
        job = {"model": str(Path(d, "model")), "train_file": str(Path(d, "x.jsonl")),
               "output_dir": str(Path(d, "out")), "method": method,
               "hyperparameters": {"batch_size": batch, "max_seq_length": SEQ}}
        if method == "lora":
            job["lora"] = {"r": 16, "alpha": 32, "dropout": 0, "target_modules": "all-linear"}
        Path(d, "job.json").write_text(json.dumps(job))
        args = [str(exe), "estimate", "--config", str(Path(d, "job.json")), "--json",
                "--gpu-mem-gib", "1000"]
        if gc:
            args += ["--gradient-checkpointing", "1"]
        r = subprocess.run(args, capture_output=True, text=True)
        if r.returncode != 0:
            print(f"  ft-train estimate failed: {r.stderr.strip()}")
            return None
        return json.loads(r.stdout)["total_bytes"]


def run(shape, method, batch, steps, gc):
    import torch
    import transformers

    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(**SHAPES[shape])
    cfg._attn_implementation = "sdpa"
    dev = torch.device("cuda")
    torch.cuda.reset_peak_memory_stats()
    with dev:
        if method == "lora":
            model = transformers.LlamaForCausalLM(cfg).to(torch.bfloat16)
        else:
            model = transformers.LlamaForCausalLM(cfg)  # fp32 master weights, bf16 autocast
    n_params = sum(p.numel() for p in model.parameters())
    if gc:
        model.gradient_checkpointing_enable()
        model.config.use_cache = False
    if method == "lora":
        import peft
        model.enable_input_require_grads()
        model = peft.get_peft_model(model, peft.LoraConfig(
            r=16, lora_alpha=32, lora_dropout=0.0, target_modules="all-linear"))
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-5, fused=True)
    flops_per_token = (4 if method == "lora" else 6) * n_params
    ids = torch.randint(0, cfg.vocab_size, (batch, SEQ), device=dev)
    best = 0.0
    for step in range(steps):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        torch.cuda.synchronize()
        dt = time.perf_counter() - t0
        if step > 0:  # the first step includes cuBLAS / autotuning warm-up
            best = max(best, batch * SEQ / dt)
    peak = torch.cuda.max_memory_allocated()
    mfu = best * flops_per_token / H100_BF16_FLOPS
    print(f"{shape} {method} batch {batch} seq {SEQ}{' +gc' if gc else ''}: "
          f"{best:,.0f} tokens/s, MFU {100 * mfu:.1f}% ({flops_per_token / n_params:.0f}N, "
          f"N = {n_params / 1e9:.2f}B), peak memory {peak / 2**30:.1f} GiB")
    est = ft_estimate(shape, method, batch, gc)
    if est:
        print(f"  ft-train estimate: {est / 2**30:.1f} GiB "
              f"(estimate / torch peak = {est / peak:.2f})")
    del model, opt
    torch.cuda.empty_cache()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--batch-lora", type=int, default=1)
    ap.add_argument("--batch-full", type=int, default=4)
    ap.add_argument("--gradient-checkpointing", action="store_true")
    ap.add_argument("--only", choices=["lora", "full"])
    a = ap.parse_args()
    try:
        import torch
    except ImportError:
        skip("no CUDA device (torch is not installed)")
    if not torch.cuda.is_available():
        skip("no CUDA device (torch.cuda.is_available() is false)")
    print(f"device: {torch.cuda.get_device_name(0)}, torch {torch.__version__}")
    if a.only in (None, "lora"):
        run("llama-3.1-8b", "lora", a.batch_lora, a.steps, a.gradient_checkpointing)
    if a.only in (None, "full"):
        run("llama-3.2-1b", "full", a.batch_full, a.steps, a.gradient_checkpointing)


if __name__ == "__main__":
    main()
