"""The trainer engine against PyTorch + transformers + peft (CPU).

Tiny random models are built here by transformers (never downloaded):
  - llama_gqa:   Llama, GQA (4 heads / 2 kv heads), untied lm_head
  - qwen2_tied:  Qwen2, q/k/v biases (made non-zero), tied embeddings
  - llama3_rope: Llama with llama3 rope scaling whose bands all occur at head_dim 8
and checked through ft-train's hidden debug commands and its real train command.

Tolerances (stated, and why):
  - logits: max abs difference <= 1e-4 (fp32, different summation orders);
  - loss: abs difference <= 1e-5;
  - gradients: per tensor, max abs difference <= 1e-4 * max abs of the peer's
    tensor ("1e-4 relative" to the tensor's scale; elementwise relative error
    is meaningless for entries near zero);
  - 20 training steps: per-step loss within 1e-4 relative of a PyTorch loop
    with the same weights, data order and hyperparameters.
"""
import json
import math
import os
import signal
import subprocess
import time

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
peft = pytest.importorskip("peft")
from safetensors.torch import load_file  # noqa: E402
from safetensors import safe_open  # noqa: E402

from conftest import run  # noqa: E402

torch.set_num_threads(2)
ENV = {"FT_NUM_THREADS": "2"}


def ft(build_dir):
    return str(build_dir / "trainer" / "ft-train")


# ---------------------------------------------------------------- models

def _randomize(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.15 * torch.randn(p.shape, generator=g))


def make_model(kind, folder, seed=0):
    common = dict(vocab_size=61, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                  rms_norm_eps=1e-6, bos_token_id=1, eos_token_id=2)
    if kind == "llama_gqa":
        cfg = transformers.LlamaConfig(tie_word_embeddings=False, **common)
        m = transformers.LlamaForCausalLM(cfg)
    elif kind == "qwen2_tied":
        cfg = transformers.Qwen2Config(tie_word_embeddings=True, use_sliding_window=False,
                                       **common)
        m = transformers.Qwen2ForCausalLM(cfg)
    elif kind == "mistral_window":
        cfg = transformers.MistralConfig(tie_word_embeddings=False, sliding_window=4, **common)
        m = transformers.MistralForCausalLM(cfg)
    elif kind == "llama3_rope":
        cfg = transformers.LlamaConfig(
            tie_word_embeddings=False,
            rope_parameters={"rope_type": "llama3", "rope_theta": 10000.0, "factor": 4.0,
                             "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                             "original_max_position_embeddings": 64},
            **common)
        m = transformers.LlamaForCausalLM(cfg)
    else:
        raise ValueError(kind)
    _randomize(m, seed)
    m.config._attn_implementation = "eager"
    m.save_pretrained(folder)
    return load_hf(folder)


def load_hf(folder):
    m = transformers.AutoModelForCausalLM.from_pretrained(
        folder, dtype=torch.float32, attn_implementation="eager")
    m.eval()
    return m


# ---------------------------------------------------------------- data

def make_rows(n, seed, vocab=61, lo=5, hi=14):
    g = torch.Generator().manual_seed(seed)
    rows = []
    for _ in range(n):
        L = int(torch.randint(lo, hi + 1, (1,), generator=g))
        ids = torch.randint(3, vocab, (L,), generator=g).tolist()
        prompt = int(torch.randint(1, L - 2, (1,), generator=g))
        labels = [-100] * prompt + ids[prompt:]
        rows.append({"input_ids": ids, "labels": labels})
    return rows


def write_rows(path, rows):
    with open(path, "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")


def pad(rows):
    T = max(len(r["input_ids"]) for r in rows)
    ids = torch.zeros(len(rows), T, dtype=torch.long)
    labels = torch.full((len(rows), T), -100, dtype=torch.long)
    mask = torch.zeros(len(rows), T, dtype=torch.long)
    for i, r in enumerate(rows):
        n = len(r["input_ids"])
        ids[i, :n] = torch.tensor(r["input_ids"])
        labels[i, :n] = torch.tensor(r["labels"])
        mask[i, :n] = 1
    return ids, labels, mask


def loss_sum_and_count(logits, labels):
    shift_logits = logits[:, :-1, :].reshape(-1, logits.shape[-1])
    shift_labels = labels[:, 1:].reshape(-1)
    loss = torch.nn.functional.cross_entropy(shift_logits, shift_labels, ignore_index=-100,
                                             reduction="sum")
    return loss, int((shift_labels != -100).sum())


# ---------------------------------------------------------------- helpers

def debug_forward(build_dir, model_dir, rows_path, out, adapter=None, extra=()):
    cmd = [ft(build_dir), "debug-forward", "--model", str(model_dir), "--data", str(rows_path),
           "--out", str(out), *extra]
    if adapter:
        cmd += ["--adapter", str(adapter)]
    run(cmd, env=ENV)
    with safe_open(str(out), "pt") as f:
        return f.get_tensor("logits"), float(f.metadata()["loss"])


def debug_grads(build_dir, model_dir, rows_path, out, adapter=None, extra=()):
    cmd = [ft(build_dir), "debug-grads", "--model", str(model_dir), "--data", str(rows_path),
           "--out", str(out), *extra]
    cmd += ["--adapter", str(adapter)] if adapter else ["--full"]
    run(cmd, env=ENV)
    with safe_open(str(out), "pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}, float(f.metadata()["loss"])


def assert_logits_close(ours, theirs, mask, tol=1e-4):
    m = mask.bool()
    diff = (ours[m] - theirs[m]).abs().max().item()
    assert diff <= tol, f"max |logit difference| {diff:.3g} > {tol}"


def assert_grad_close(name, ours, theirs, rel=1e-4):
    scale = theirs.abs().max().item()
    diff = (ours - theirs).abs().max().item()
    assert diff <= rel * max(scale, 1e-12), \
        f"{name}: max |grad difference| {diff:.3g} > {rel} x {scale:.3g}"


KINDS = ["llama_gqa", "qwen2_tied", "llama3_rope"]


@pytest.fixture(scope="module", params=KINDS)
def model_case(request, tmp_path_factory):
    d = tmp_path_factory.mktemp(request.param)
    model = make_model(request.param, d / "model", seed=KINDS.index(request.param))
    rows = make_rows(5, seed=11)
    write_rows(d / "rows.jsonl", rows)
    return request.param, d, model, rows


# ---------------------------------------------------------------- forward and gradients

def test_forward_logits_and_loss(model_case, build_dir):
    kind, d, model, rows = model_case
    ids, labels, mask = pad(rows)
    logits, loss = debug_forward(build_dir, d / "model", d / "rows.jsonl", d / "fwd.st")
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=mask)
    s, n = loss_sum_and_count(out.logits, labels)
    assert_logits_close(logits, out.logits, mask)
    assert abs(loss - (s / n).item()) <= 1e-5


def test_full_finetuning_gradients(model_case, build_dir):
    kind, d, model, rows = model_case
    ids, labels, mask = pad(rows)
    grads, loss = debug_grads(build_dir, d / "model", d / "rows.jsonl", d / "grads.st")
    model.zero_grad()
    out = model(input_ids=ids, attention_mask=mask)
    s, n = loss_sum_and_count(out.logits, labels)
    (s / n).backward()
    assert abs(loss - (s / n).item()) <= 1e-5
    names = dict(model.named_parameters())
    assert set(grads) == set(names), set(grads) ^ set(names)
    for name, p in names.items():
        assert_grad_close(name, grads[name], p.grad)


def _peft_model(base, targets, r=4, alpha=8.0, rslora=False, seed=5, layers=None):
    cfg = peft.LoraConfig(r=r, lora_alpha=alpha, target_modules=targets, lora_dropout=0.0,
                          use_rslora=rslora, layers_to_transform=layers)
    torch.manual_seed(seed)  # peft draws lora_A from the global generator: pin it
    pm = peft.get_peft_model(base, cfg)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in pm.named_parameters():
            if "lora_B" in name:
                p.copy_(0.2 * torch.randn(p.shape, generator=g))
    return pm


@pytest.mark.parametrize("targets,rslora,layers", [
    ("all-linear", False, None),
    (["q_proj", "v_proj", "down_proj"], True, None),
    # peft's layers_to_transform: the upper layer only, so our backward stops
    # there (nothing below it trains) and must still give peft's gradients
    (["q_proj", "k_proj", "o_proj", "up_proj"], False, [1])])
def test_lora_gradients_and_peft_adapter_loads(model_case, build_dir, targets, rslora, layers):
    kind, d, _, rows = model_case
    base = load_hf(d / "model")
    pm = _peft_model(base, targets, rslora=rslora, layers=layers)
    adir = d / f"peft_adapter_{rslora}_{layers}"
    pm.save_pretrained(adir)
    ids, labels, mask = pad(rows)

    logits, _ = debug_forward(build_dir, d / "model", d / "rows.jsonl", d / "fwd_a.st",
                              adapter=adir)
    grads, loss = debug_grads(build_dir, d / "model", d / "rows.jsonl", d / "grads_a.st",
                              adapter=adir)
    pm.zero_grad()
    out = pm(input_ids=ids, attention_mask=mask)
    s, n = loss_sum_and_count(out.logits, labels)
    (s / n).backward()
    assert_logits_close(logits, out.logits.detach(), mask)
    assert abs(loss - (s / n).item()) <= 1e-5
    theirs = {k.replace(".default", ""): p.grad for k, p in pm.named_parameters()
              if p.requires_grad}
    assert set(grads) == set(theirs), set(grads) ^ set(theirs)
    if layers:
        assert all(".layers.1." in name for name in theirs), sorted(theirs)
    for name, g in theirs.items():
        assert_grad_close(name, grads[name], g)


def test_layers_to_transform_out_of_range_or_malformed_is_refused(model_case, build_dir):
    kind, d, _, rows = model_case
    pm = _peft_model(load_hf(d / "model"), ["q_proj"], layers=[1])
    adir = d / "peft_adapter_layers_bad"
    pm.save_pretrained(adir)
    cfg_path = adir / "adapter_config.json"
    cfg = json.loads(cfg_path.read_text())
    for value, msg in [([1, 5], "names layer 5, but the model's layers are 0 to 1"),
                       ("1", '"layers_to_transform" must be a layer index or a non-empty list'),
                       ([0, -1], '"layers_to_transform"[1] must be a layer index from 0 to')]:
        cfg_path.write_text(json.dumps(dict(cfg, layers_to_transform=value)))
        p = run([ft(build_dir), "debug-forward", "--model", str(d / "model"), "--adapter",
                 str(adir), "--data", str(d / "rows.jsonl"), "--out", str(d / "bad.st")],
                env=ENV, check=False)
        assert p.returncode != 0 and msg in p.stderr, p.stderr
    cfg_path.write_text(json.dumps(dict(cfg, layers_pattern="h")))
    p = run([ft(build_dir), "debug-forward", "--model", str(d / "model"), "--adapter", str(adir),
             "--data", str(d / "rows.jsonl"), "--out", str(d / "bad.st")], env=ENV, check=False)
    assert p.returncode != 0 and '"layers_pattern" must be "layers"' in p.stderr, p.stderr


# ---------------------------------------------------------------- training loop

def _job(d, method, steps, **hp):
    h = {"max_steps": steps, "batch_size": 2, "gradient_accumulation_steps": 2,
         "learning_rate": 3e-3, "lr_scheduler_type": "cosine", "warmup_steps": 3,
         "weight_decay": 0.01, "max_grad_norm": 0.5, "shuffle": False}
    h.update(hp)
    job = {"model": str(d / "model"), "train_file": str(d / "train.jsonl"),
           "output_dir": str(d / f"out_{method}"), "method": method, "seed": 7,
           "hyperparameters": h}
    if method == "lora":
        job["init_adapter"] = str(d / "init_adapter")
        job["save_merged"] = True
    return job


def _run_job(build_dir, job, path, *extra, check=True):
    path.write_text(json.dumps(job))
    p = run([ft(build_dir), "train", "--config", str(path), *extra], env=ENV, check=check)
    lines = [json.loads(x) for x in p.stdout.splitlines() if x.startswith("{")]
    return p, lines


def _torch_loop(model, rows, steps, method):
    """The reference loop: same order (file order, no shuffle), micro-batches
    of 2, 2 accumulation steps, loss = mean over the step's trained tokens,
    clip_grad_norm_(0.5), AdamW, cosine schedule with 3 warmup steps."""
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if method == "full":
        decay = [p for n, p in params if "norm" not in n and not n.endswith(".bias")]
        nodecay = [p for n, p in params if "norm" in n or n.endswith(".bias")]
        groups = [{"params": decay, "weight_decay": 0.01},
                  {"params": nodecay, "weight_decay": 0.0}]
    else:
        groups = [{"params": [p for _, p in params], "weight_decay": 0.01}]
    opt = torch.optim.AdamW(groups, lr=3e-3, betas=(0.9, 0.999), eps=1e-8)
    sched = transformers.get_cosine_schedule_with_warmup(opt, 3, steps)
    micro = [rows[i:i + 2] for i in range(0, len(rows), 2)]
    steps_per_epoch = math.ceil(len(micro) / 2)
    losses = []
    model.train()
    for step in range(steps):
        first = (step % steps_per_epoch) * 2
        mbs = micro[first:first + 2]
        total = sum(int((pad(mb)[1][:, 1:] != -100).sum()) for mb in mbs)
        opt.zero_grad()
        lsum = 0.0
        for mb in mbs:
            ids, labels, mask = pad(mb)
            out = model(input_ids=ids, attention_mask=mask)
            s, _ = loss_sum_and_count(out.logits, labels)
            (s / total).backward()
            lsum += s.item()
        torch.nn.utils.clip_grad_norm_([p for _, p in params], 0.5)
        opt.step()
        sched.step()
        losses.append(lsum / total)
    model.eval()
    return losses


@pytest.fixture(scope="module")
def train_case(tmp_path_factory):
    d = tmp_path_factory.mktemp("train")
    make_model("llama_gqa", d / "model", seed=3)
    rows = make_rows(10, seed=23)
    write_rows(d / "train.jsonl", rows)
    base = load_hf(d / "model")
    pm = peft.get_peft_model(base, peft.LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0,
                                                   target_modules="all-linear"))
    pm.save_pretrained(d / "init_adapter")  # peft's own init: A random, B = 0
    _peft_model(load_hf(d / "model"), ["q_proj", "up_proj"]).save_pretrained(d / "rand_adapter")
    return d, rows


def test_lora_training_matches_peft_loop(train_case, build_dir):
    d, rows = train_case
    _, lines = _run_job(build_dir, _job(d, "lora", 20), d / "lora.json")
    ours = [x["train_loss"] for x in lines if x["type"] == "step"]
    assert len(ours) == 20
    pm = peft.PeftModel.from_pretrained(load_hf(d / "model"), str(d / "init_adapter"),
                                        is_trainable=True)
    theirs = _torch_loop(pm, rows, 20, "lora")
    for i, (a, b) in enumerate(zip(ours, theirs)):
        assert abs(a - b) <= 1e-4 * abs(b), f"step {i + 1}: ours {a} peft {b}"

    # our adapter loads in peft with the same logits as ours
    ids, labels, mask = pad(rows[:4])
    write_rows(d / "eval4.jsonl", rows[:4])
    logits, _ = debug_forward(build_dir, d / "model", d / "eval4.jsonl", d / "fa.st",
                              adapter=d / "out_lora" / "adapter")
    loaded = peft.PeftModel.from_pretrained(load_hf(d / "model"),
                                          str(d / "out_lora" / "adapter"))
    with torch.no_grad():
        ref = loaded(input_ids=ids, attention_mask=mask).logits
    assert_logits_close(logits, ref, mask)
    # and the merged folder loads in transformers with the same logits
    merged = load_hf(d / "out_lora" / "model")
    with torch.no_grad():
        ref_m = merged(input_ids=ids, attention_mask=mask).logits
    assert_logits_close(logits, ref_m, mask)


LINEARS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def test_lora_on_some_layers_trains_as_peft_and_saves_layers_to_transform(train_case, build_dir):
    """peft's layers_to_transform: an adapter on layer 1 only trains step for
    step as peft's loop does (our backward stops at layer 1), and a job's
    lora.layers_to_transform writes an adapter peft loads with our logits."""
    d, rows = train_case
    init = d / "init_adapter_l1"
    base = load_hf(d / "model")
    peft.get_peft_model(base, peft.LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0,
                                              target_modules=LINEARS,
                                              layers_to_transform=[1])).save_pretrained(init)
    job = _job(d, "lora", 8)
    job.update(init_adapter=str(init), output_dir=str(d / "out_l1"), save_merged=False)
    _, lines = _run_job(build_dir, job, d / "lora_l1.json")
    ours = [x["train_loss"] for x in lines if x["type"] == "step"]
    assert len(ours) == 8
    pm = peft.PeftModel.from_pretrained(load_hf(d / "model"), str(init), is_trainable=True)
    theirs = _torch_loop(pm, rows, 8, "lora")
    for i, (a, b) in enumerate(zip(ours, theirs)):
        assert abs(a - b) <= 1e-4 * abs(b), f"step {i + 1}: ours {a} peft {b}"

    job = _job(d, "lora", 2)
    del job["init_adapter"]
    job.update(output_dir=str(d / "out_l0"), save_merged=False,
               lora={"r": 4, "alpha": 8, "target_modules": ["q_proj", "down_proj"],
                     "layers_to_transform": [0]})
    _run_job(build_dir, job, d / "lora_l0.json")
    adir = d / "out_l0" / "adapter"
    cfg = json.loads((adir / "adapter_config.json").read_text())
    assert cfg["layers_to_transform"] == [0]
    with safe_open(str(adir / "adapter_model.safetensors"), "pt") as f:
        assert sorted(f.keys()) == sorted(
            f"base_model.model.model.layers.0.{m}.lora_{ab}.weight"
            for m in ("self_attn.q_proj", "mlp.down_proj") for ab in "AB")
    ids, labels, mask = pad(rows[:4])
    write_rows(d / "eval4l.jsonl", rows[:4])
    logits, _ = debug_forward(build_dir, d / "model", d / "eval4l.jsonl", d / "fl.st",
                              adapter=adir)
    with torch.no_grad():
        ref = peft.PeftModel.from_pretrained(load_hf(d / "model"), str(adir))(
            input_ids=ids, attention_mask=mask).logits
    assert_logits_close(logits, ref, mask)

    job["lora"]["layers_to_transform"] = [0, 2]
    p, _ = _run_job(build_dir, job, d / "lora_l2.json", check=False)
    assert p.returncode != 0
    assert "\"layers_to_transform\" names layer 2, but the model's layers are 0 to 1" in p.stderr


def test_full_training_matches_torch_loop(train_case, build_dir):
    d, rows = train_case
    _, lines = _run_job(build_dir, _job(d, "full", 20), d / "full.json")
    ours = [x["train_loss"] for x in lines if x["type"] == "step"]
    assert len(ours) == 20
    theirs = _torch_loop(load_hf(d / "model"), rows, 20, "full")
    for i, (a, b) in enumerate(zip(ours, theirs)):
        assert abs(a - b) <= 1e-4 * abs(b), f"step {i + 1}: ours {a} torch {b}"
    # the trained model loads in transformers with our logits
    ids, labels, mask = pad(rows[:4])
    write_rows(d / "eval4f.jsonl", rows[:4])
    logits, _ = debug_forward(build_dir, d / "out_full" / "model", d / "eval4f.jsonl",
                              d / "ff.st")
    with torch.no_grad():
        ref = load_hf(d / "out_full" / "model")(input_ids=ids, attention_mask=mask).logits
    assert_logits_close(logits, ref, mask)


@pytest.mark.parametrize("method,every", [("full", 2), ("lora", True)])
def test_gradient_checkpointing_same_steps(train_case, build_dir, method, every):
    """Activation checkpointing recomputes layers in backward: every step's
    loss is bit-identical to the run that kept all activations, and so is
    the PyTorch loop's within 1e-4 (the peer check of the other tests)."""
    d, rows = train_case
    plain, ckpt = _job(d, method, 8), _job(d, method, 8, gradient_checkpointing=every)
    plain["output_dir"] += "_plain"
    ckpt["output_dir"] += "_ckpt"
    _, a = _run_job(build_dir, plain, d / f"plain_{method}.json")
    _, b = _run_job(build_dir, ckpt, d / f"ckpt_{method}.json")
    la = [x["train_loss"] for x in a if x["type"] == "step"]
    lb = [x["train_loss"] for x in b if x["type"] == "step"]
    assert len(la) == 8 and la == lb
    if method == "full":
        theirs = _torch_loop(load_hf(d / "model"), rows, 8, "full")
    else:
        theirs = _torch_loop(peft.PeftModel.from_pretrained(
            load_hf(d / "model"), str(d / "init_adapter"), is_trainable=True), rows, 8, "lora")
    for i, (x, y) in enumerate(zip(lb, theirs)):
        assert abs(x - y) <= 1e-4 * abs(y), f"step {i + 1}: ours {x} torch {y}"


def test_exact_resume(train_case, build_dir):
    d, _ = train_case
    job = _job(d, "lora", 12)
    job["output_dir"] = str(d / "resume_full")
    job["hyperparameters"]["shuffle"] = True
    del job["init_adapter"]  # our own init from the seed, and dropout on
    job["lora"] = {"r": 4, "alpha": 8, "dropout": 0.1, "target_modules": "all-linear"}
    _, full = _run_job(build_dir, job, d / "r1.json")
    job["output_dir"] = str(d / "resume_part")
    _, part1 = _run_job(build_dir, job, d / "r2.json", "--stop-after-steps", "5")
    assert [x["type"] for x in part1][-2:] == ["checkpoint", "interrupted"]
    _, part2 = _run_job(build_dir, job, d / "r2.json", "--resume",
                        str(d / "resume_part" / "checkpoint"))
    a = [x["train_loss"] for x in full if x["type"] == "step"]
    b = [x["train_loss"] for x in part1 + part2 if x["type"] == "step"]
    assert len(a) == 12 and a == b  # bit-identical (printed with 17 digits)
    # the checkpoint is refused to a job on other layers (layers_to_transform)
    job["lora"]["layers_to_transform"] = [1]
    p, _ = _run_job(build_dir, job, d / "r3.json", "--resume",
                    str(d / "resume_part" / "checkpoint"), check=False)
    assert p.returncode != 0 and "was written by a different job" in p.stderr, p.stderr


def test_sigterm_leaves_valid_checkpoint(train_case, build_dir):
    d, _ = train_case
    job = _job(d, "full", 100000)
    job["output_dir"] = str(d / "sigterm")
    (d / "sig.json").write_text(json.dumps(job))
    p = subprocess.Popen([ft(build_dir), "train", "--config", str(d / "sig.json")],
                         stdout=subprocess.PIPE, text=True, env={**os.environ, **ENV})
    seen = []
    for line in p.stdout:
        seen.append(json.loads(line))
        if seen[-1]["type"] == "step" and seen[-1]["step"] >= 2:
            break
    p.send_signal(signal.SIGTERM)
    rest, _ = p.communicate(timeout=120)
    seen += [json.loads(x) for x in rest.splitlines() if x.startswith("{")]
    assert p.returncode == 0
    assert seen[-1]["type"] == "interrupted"
    step = seen[-1]["step"]
    ck = d / "sigterm" / "checkpoint" / "checkpoint.safetensors"
    with safe_open(str(ck), "pt") as f:
        meta = f.metadata()
        assert meta["format"] == "ftplat-checkpoint" and int(meta["step"]) == step
        w = f.get_tensor("param/model.embed_tokens.weight")
    assert w.shape == (61, 32) and torch.isfinite(w).all()
    # and training resumes from it
    job["hyperparameters"]["max_steps"] = step + 1
    _, lines = _run_job(build_dir, job, d / "sig.json", "--resume",
                        str(d / "sigterm" / "checkpoint"))
    assert [x["step"] for x in lines if x["type"] == "step"] == [step + 1]


# ---------------------------------------------------------------- generation

def _generate(build_dir, model_dir, prompt, n, adapter=None, **kw):
    cmd = [ft(build_dir), "generate", "--model", str(model_dir), "--prompt-ids",
           ",".join(map(str, prompt)), "--max-new-tokens", str(n)]
    if adapter:
        cmd += ["--adapter", str(adapter)]
    for k, v in kw.items():
        cmd += ["--" + k.replace("_", "-"), str(v)]
    return json.loads(run(cmd, env=ENV).stdout)["ids"]


def test_greedy_generation_matches_transformers(train_case, build_dir):
    d, rows = train_case
    prompt = rows[0]["input_ids"][:6]
    base = load_hf(d / "model")
    for adapter in (None, d / "rand_adapter"):
        model = peft.PeftModel.from_pretrained(load_hf(d / "model"), str(adapter)) if adapter \
            else base
        with torch.no_grad():
            ref = model.generate(input_ids=torch.tensor([prompt]), max_new_tokens=12,
                                 do_sample=False, eos_token_id=2, pad_token_id=0)
        want = ref[0, len(prompt):].tolist()
        assert _generate(build_dir, d / "model", prompt, 12, adapter=adapter) == want
    # sampling: same seed, same tokens; temperature 0 is greedy
    a = _generate(build_dir, d / "model", prompt, 8, temperature=0.9, top_p=0.8, seed=3)
    b = _generate(build_dir, d / "model", prompt, 8, temperature=0.9, top_p=0.8, seed=3)
    assert a == b and all(0 <= t < 61 for t in a)


# ---------------------------------------------------------------- evaluation, early stopping

def test_eval_metrics_and_early_stopping(train_case, build_dir):
    d, rows = train_case
    write_rows(d / "val.jsonl", rows[:3])
    job = _job(d, "lora", 30, eval_steps=2, early_stopping_patience=2,
               learning_rate=0.05, warmup_steps=0, lr_scheduler_type="constant")
    job["validation_file"] = str(d / "val.jsonl")
    job["output_dir"] = str(d / "early")
    job["save_merged"] = False
    _, lines = _run_job(build_dir, job, d / "early.json")
    evals = [x for x in lines if x["type"] == "eval"]
    assert evals and all(set(x) >= {"eval_loss", "eval_perplexity", "eval_token_accuracy"}
                         for x in evals)
    for x in evals:
        assert abs(x["eval_perplexity"] - math.exp(x["eval_loss"])) <= 1e-9 * x["eval_perplexity"]
    # the first evaluation (step 2) against transformers + peft on the same weights:
    # rerun 2 steps and compare the evaluation of its adapter
    job2 = dict(job, output_dir=str(d / "early2"))
    job2["hyperparameters"] = dict(job["hyperparameters"], max_steps=2)
    _, l2 = _run_job(build_dir, job2, d / "early2.json")
    ev = [x for x in l2 if x["type"] == "eval"][0]
    pm = peft.PeftModel.from_pretrained(load_hf(d / "model"), str(d / "early2" / "adapter"))
    ids, labels, mask = pad(rows[:3])
    with torch.no_grad():
        logits = pm(input_ids=ids, attention_mask=mask).logits
    s, n = loss_sum_and_count(logits, labels)
    pred = logits[:, :-1].argmax(-1)
    tgt = labels[:, 1:]
    acc = ((pred == tgt) & (tgt != -100)).sum().item() / n
    assert abs(ev["eval_loss"] - (s / n).item()) <= 1e-5
    assert abs(ev["eval_token_accuracy"] - acc) <= 1e-12
    # early stopping (deterministic for this seed and data: the loss turns up at
    # step 6): stopped after `patience` evaluations without improvement, and the
    # adapter written is the best one, as peft evaluates it
    stops = [x for x in lines if x["type"] == "early_stop"]
    assert len(stops) == 1
    best = min(x["eval_loss"] for x in evals)
    assert stops[0]["best_eval_loss"] == best
    after = [x for x in evals if x["step"] > stops[0]["best_step"]]
    assert len(after) == 2 and all(x["eval_loss"] >= best for x in after)
    pm = peft.PeftModel.from_pretrained(load_hf(d / "model"), str(d / "early" / "adapter"))
    with torch.no_grad():
        s, n = loss_sum_and_count(pm(input_ids=ids, attention_mask=mask).logits, labels)
    assert abs((s / n).item() - best) <= 1e-5


# ---------------------------------------------------------------- job validation

@pytest.mark.parametrize("patch,needle", [
    ({"hyperparameters": {"batch_size": "four"}},
     '"batch_size" must be "auto" or an integer (got string)'),
    ({"hyperparameters": {"n_epoch": 3}}, 'unknown field "n_epoch"'),
    ({"method": "qlora-ish"}, '"method" must be "lora", "qlora" or "full"'),
    ({"lora": {"target_modules": ["qproj"]}}, '"target_modules"[0] must be one of'),
    ({"model": None}, '"model" is required'),
])
def test_job_errors_name_the_field(tmp_path, build_dir, patch, needle):
    job = {"model": "/nonexistent", "train_file": "t.jsonl", "output_dir": str(tmp_path)}
    for k, v in patch.items():
        if v is None:
            job.pop(k)
        else:
            job[k] = v
    (tmp_path / "j.json").write_text(json.dumps(job))
    p = run([ft(build_dir), "--config", str(tmp_path / "j.json")], check=False)
    assert p.returncode == 3   # the job's own input is wrong: not retried
    assert needle in p.stderr, p.stderr


def test_openai_hyperparameter_names(train_case, build_dir):
    d, _ = train_case
    job = {"model": str(d / "model"), "training_file": str(d / "train.jsonl"),
           "output_dir": str(d / "openai"), "method": "full",
           "hyperparameters": {"n_epochs": 1, "batch_size": 5, "learning_rate_multiplier": 2,
                               "shuffle": False}}
    _, lines = _run_job(build_dir, job, d / "openai.json")
    steps = [x for x in lines if x["type"] == "step"]
    assert len(steps) == 2  # 10 rows / batch 5 = 2 steps in one epoch
    # linear schedule without warmup: step 1 at lr 2 x 2e-5 (full's default)
    assert abs(steps[0]["learning_rate"] - 4e-5) <= 1e-15


# ---------------------------------------------------------------- packing, progress fd, bad folders

def test_packed_rows_match_separate_rows(train_case, build_dir):
    """Packed sequences (positions restart, attention stays in each row) give
    every row the logits transformers gives it alone."""
    d, rows = train_case
    cmd = [ft(build_dir), "debug-forward", "--model", str(d / "model"), "--data",
           str(d / "train.jsonl"), "--out", str(d / "packed3.st"), "--pack", "32"]
    run(cmd, env=ENV)
    with safe_open(str(d / "packed3.st"), "pt") as f:
        packed = f.get_tensor("logits")
    assert packed.shape[0] < len(rows)  # several rows share a sequence
    model = load_hf(d / "model")
    unit, col = 0, 0
    for r in rows:
        n = len(r["input_ids"])
        if col + n > 32:
            unit, col = unit + 1, 0
        with torch.no_grad():
            ref = model(input_ids=torch.tensor([r["input_ids"]])).logits[0]
        diff = (packed[unit, col:col + n] - ref).abs().max().item()
        assert diff <= 1e-4, f"row at unit {unit} col {col}: {diff}"
        col += n


def test_progress_goes_to_the_given_fd(train_case, build_dir, tmp_path):
    d, _ = train_case
    job = _job(d, "full", 2)
    job["output_dir"] = str(tmp_path / "out")
    (tmp_path / "j.json").write_text(json.dumps(job))
    r, w = os.pipe()
    p = subprocess.run([ft(build_dir), "train", "--config", str(tmp_path / "j.json"),
                        "--progress-fd", str(w)], pass_fds=(w,), capture_output=True,
                       text=True, env={**os.environ, **ENV}, timeout=120)
    os.close(w)
    with os.fdopen(r) as f:
        lines = [json.loads(x) for x in f.read().splitlines()]
    assert p.returncode == 0 and p.stdout == ""
    assert [x["type"] for x in lines][0] == "start" and lines[-1]["type"] == "done"
    assert [x["step"] for x in lines if x["type"] == "step"] == [1, 2]


def test_missing_tensor_is_a_clear_error(tmp_path, build_dir):
    from safetensors.torch import save_file
    make_model("llama_gqa", tmp_path / "m")
    t = load_file(str(tmp_path / "m" / "model.safetensors"))
    del t["model.layers.1.mlp.up_proj.weight"]
    save_file(t, str(tmp_path / "m" / "model.safetensors"), metadata={"format": "pt"})
    write_rows(tmp_path / "r.jsonl", make_rows(1, seed=1))
    p = run([ft(build_dir), "debug-forward", "--model", str(tmp_path / "m"), "--data",
             str(tmp_path / "r.jsonl"), "--out", str(tmp_path / "o.st")], check=False)
    assert p.returncode == 1
    assert 'has no tensor "model.layers.1.mlp.up_proj.weight"' in p.stderr


def test_merge_command_matches_peft_merge(train_case, build_dir, tmp_path):
    d, rows = train_case
    run([ft(build_dir), "merge", "--model", str(d / "model"), "--adapter",
         str(d / "rand_adapter"), "--out", str(tmp_path / "merged")], env=ENV)
    ours = load_hf(tmp_path / "merged")
    theirs = peft.PeftModel.from_pretrained(load_hf(d / "model"),
                                            str(d / "rand_adapter")).merge_and_unload()
    ids, _, mask = pad(rows[:3])
    with torch.no_grad():
        a = ours(input_ids=ids, attention_mask=mask).logits
        b = theirs(input_ids=ids, attention_mask=mask).logits
    assert_logits_close(a, b, mask)
    for name, p in theirs.state_dict().items():
        if name in ours.state_dict():
            assert (ours.state_dict()[name] - p).abs().max().item() <= 1e-5, name


def test_mistral_sliding_window(tmp_path, build_dir):
    """A window of 4 positions, shorter than the rows: logits and every
    gradient as transformers' sliding-window mask gives them."""
    model = make_model("mistral_window", tmp_path / "model", seed=9)
    rows = make_rows(3, seed=4)
    write_rows(tmp_path / "rows.jsonl", rows)
    ids, labels, mask = pad(rows)
    logits, _ = debug_forward(build_dir, tmp_path / "model", tmp_path / "rows.jsonl",
                              tmp_path / "f.st")
    grads, loss = debug_grads(build_dir, tmp_path / "model", tmp_path / "rows.jsonl",
                              tmp_path / "g.st")
    out = model(input_ids=ids, attention_mask=mask)
    s, n = loss_sum_and_count(out.logits, labels)
    (s / n).backward()
    assert_logits_close(logits, out.logits.detach(), mask)
    assert abs(loss - (s / n).item()) <= 1e-5
    for name, p in model.named_parameters():
        assert_grad_close(name, grads[name], p.grad)
    # generation past the window: the KV cache attends to the last 4 positions only
    prompt = rows[0]["input_ids"][:6]
    model.eval()
    with torch.no_grad():
        ref = model.generate(input_ids=torch.tensor([prompt]), max_new_tokens=8,
                             do_sample=False, eos_token_id=2, pad_token_id=0)
    assert _generate(build_dir, tmp_path / "model", prompt, 8) == ref[0, len(prompt):].tolist()


def test_pad_token_rows_get_no_input_gradient(build_dir, tmp_path):
    """transformers builds embed_tokens with padding_idx = pad_token_id: a pad
    token inside the data gives its embedding row no gradient from the input
    side. With the row zero at init (transformers zeroes it), RMSNorm at a zero
    vector would otherwise pass back 1/sqrt(eps)-sized gradients."""
    d = tmp_path / "model"
    cfg = transformers.LlamaConfig(vocab_size=61, hidden_size=32, intermediate_size=48,
                                   num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                   max_position_embeddings=256, rms_norm_eps=1e-6, bos_token_id=1,
                                   eos_token_id=2, pad_token_id=0, tie_word_embeddings=True)
    m = transformers.LlamaForCausalLM(cfg)
    _randomize(m, 3)
    with torch.no_grad():
        m.model.embed_tokens.weight[0].zero_()   # as transformers' own init leaves it
    m.config._attn_implementation = "eager"
    m.save_pretrained(d)
    model = load_hf(d)
    rows = make_rows(4, seed=11)
    rows[0]["input_ids"][0] = 0                       # pad id first, as a document separator
    rows[1]["input_ids"][3] = 0
    write_rows(tmp_path / "rows.jsonl", rows)
    ids, labels, mask = pad(rows)
    grads, loss = debug_grads(build_dir, d, tmp_path / "rows.jsonl", tmp_path / "grads.st")
    model.zero_grad()
    out = model(input_ids=ids, attention_mask=mask)
    s, n = loss_sum_and_count(out.logits, labels)
    (s / n).backward()
    assert abs(loss - (s / n).item()) <= 1e-5
    for name, p in model.named_parameters():
        assert_grad_close(name, grads[name], p.grad)


def test_eval_on_start_reports_the_base_models_heldout_loss(train_case, build_dir, tmp_path):
    """eval_on_start: an eval line at step 0 whose loss is the starting model's
    mean loss over the validation file's trained tokens (LoRA B = 0, so the
    base model's), as transformers computes it."""
    d, rows = train_case
    val = make_rows(5, seed=99)
    write_rows(tmp_path / "val.jsonl", val)
    job = _job(d, "lora", 2, eval_on_start=True)
    job["validation_file"] = str(tmp_path / "val.jsonl")
    job["output_dir"] = str(tmp_path / "out")
    _, lines = _run_job(build_dir, job, tmp_path / "job.json")
    evals = [l for l in lines if l.get("type") == "eval"]
    assert [e["step"] for e in evals] == [0, 2]
    base = load_hf(d / "model")
    ids, labels, mask = pad(val)
    with torch.no_grad():
        s, n = loss_sum_and_count(base(input_ids=ids, attention_mask=mask).logits, labels)
    assert abs(evals[0]["eval_loss"] - (s / n).item()) <= 1e-5
    assert evals[-1]["eval_loss"] != evals[0]["eval_loss"]

    # max_eval_samples (transformers' examples' name): the file's first 2 rows only
    job["hyperparameters"]["max_eval_samples"] = 2
    job["output_dir"] = str(tmp_path / "out2")
    _, lines = _run_job(build_dir, job, tmp_path / "job2.json")
    first = [l for l in lines if l.get("type") == "eval"][0]
    ids, labels, mask = pad(val[:2])
    with torch.no_grad():
        s2, n2 = loss_sum_and_count(base(input_ids=ids, attention_mask=mask).logits, labels)
    assert abs(first["eval_loss"] - (s2 / n2).item()) <= 1e-5
    assert abs(first["eval_loss"] - evals[0]["eval_loss"]) > 1e-3


class _Bf16Linear(torch.autograd.Function):
    """A frozen linear in the arithmetic of base_dtype "bf16" (ft/backend.h's
    FT_PW_BF16): input and weight rounded to bf16 (to nearest even, torch's
    .to(torch.bfloat16)), products summed in fp32; the input gradient rounds
    the output gradient the same way and is not rounded itself."""

    @staticmethod
    def forward(ctx, x, w):
        wb = w.detach().to(torch.bfloat16).float()
        ctx.save_for_backward(wb)
        return x.to(torch.bfloat16).float() @ wb.T

    @staticmethod
    def backward(ctx, dy):
        (wb,) = ctx.saved_tensors
        return dy.to(torch.bfloat16).float() @ wb, None


def test_lora_training_on_a_bf16_base_matches_peft_on_the_same_arithmetic(train_case, build_dir):
    """base_dtype "bf16": 20 LoRA steps against the peft loop with every frozen
    base linear and the output layer computed by _Bf16Linear (the adapters
    stay fp32). Per-step loss within 1e-3 relative (seen: 3.9e-4): a sum that
    differs in its last fp32 bit can round an activation to the neighbouring
    bf16 (2^-8 relative), which fp32's 1e-4 does not allow for. (The same job
    in fp32 is 9e-4 away at its farthest step.)"""
    d, rows = train_case
    job = _job(d, "lora", 20, base_dtype="bf16")
    job["output_dir"] = str(d / "out_lora_bf16")
    _, lines = _run_job(build_dir, job, d / "lora_bf16.json")
    start = [x for x in lines if x["type"] == "start"][0]
    if start["base_dtype"] != "bf16":  # a CPU without AVX512-BF16 trains in fp32
        pytest.skip("this CPU has no AVX512-BF16: the job fell back to fp32")
    ours = [x["train_loss"] for x in lines if x["type"] == "step"]
    assert len(ours) == 20
    pm = peft.PeftModel.from_pretrained(load_hf(d / "model"), str(d / "init_adapter"),
                                        is_trainable=True)
    frozen = [m for n, m in pm.named_modules()
              if isinstance(m, torch.nn.Linear) and not m.weight.requires_grad
              and "lora_" not in n]
    assert len(frozen) == 2 * 7 + 1  # 7 base linears per layer and lm_head
    for m in frozen:
        m.forward = (lambda mod: lambda x: _Bf16Linear.apply(x, mod.weight)
                     + (mod.bias if mod.bias is not None else 0))(m)
    theirs = _torch_loop(pm, rows, 20, "lora")
    for i, (a, b) in enumerate(zip(ours, theirs)):
        assert abs(a - b) <= 1e-3 * abs(b), f"step {i + 1}: ours {a} peft+bf16 {b}"
    fp32 = _run_job(build_dir, dict(_job(d, "lora", 20), output_dir=str(d / "out_lora_f32")),
                    d / "lora_f32.json")[1]
    fp32 = [x["train_loss"] for x in fp32 if x["type"] == "step"]
    assert ours != fp32  # the option changes the arithmetic (the start line said bf16)
