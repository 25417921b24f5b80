"""NF4 quantisation and QLoRA against bitsandbytes, transformers and peft (CPU).

bitsandbytes runs on the CPU (quantize_4bit / dequantize_4bit, QuantState), so
our NF4 weights are compared with it directly:
  - packed codes, absmax, nested absmax / offset and dequantised weights are
    BIT-IDENTICAL (tolerance 0) on several tensors: normal, with zeros and
    all-zero blocks, odd sizes with partial blocks, large and tiny
    magnitudes, fp32 and bf16 sources, with and without double quantisation;
  - the state dict (QuantState.as_dict(packed=True)) both ways;
and the QLoRA engine against peft on the dequantised base (a transformers
model whose linear weights are the dequantised NF4 ones):
  - logits within 1e-4 abs (fp32, different summation orders; the same
    bound as the LoRA peer test), loss within 1e-5;
  - LoRA gradients within 1e-4 of each tensor's scale;
  - a QLoRA job's loss falls, its adapter loads in peft on the dequantised
    base with our logits (1e-4), and resume is bit-identical.
"""
import json
import math

import pytest

torch = pytest.importorskip("torch")
bnb_f = pytest.importorskip("bitsandbytes.functional")
transformers = pytest.importorskip("transformers")
peft = pytest.importorskip("peft")
from safetensors.torch import load_file, save_file  # noqa: E402

from conftest import run  # noqa: E402
from test_engine_peer import (ENV, debug_forward, ft, load_hf, loss_sum_and_count,  # noqa: E402
                              make_model, make_rows, pad, write_rows, assert_logits_close,
                              assert_grad_close, _peft_model, debug_grads)

torch.set_num_threads(1)  # torch's sum (the nested offset) splits work only above 32768 blocks

# The NF4 codebook of the QLoRA paper as bitsandbytes holds it (fp32).
NF4 = [-1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
       -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
       0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
       0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0]


def _tensors():
    g = torch.Generator().manual_seed(0)
    t = {}
    t["normal"] = torch.randn(48, 64, generator=g) * 0.05
    z = torch.randn(32, 96, generator=g)
    z[3] = 0.0                      # whole zero blocks
    z[5, ::3] = 0.0
    t["zeros"] = z
    t["odd"] = torch.randn(7, 37, generator=g)          # 259 elements: partial last block, odd n
    t["odd_tail_zero"] = torch.cat([torch.randn(65, generator=g), torch.zeros(10)]).reshape(5, 15)
    t["large"] = torch.randn(40, 33, generator=g) * 3e4
    t["tiny"] = torch.randn(16, 80, generator=g) * 1e-6
    t["many_blocks"] = torch.randn(300, 224, generator=g) * 0.02   # 1050 blocks: 5 nested blocks
    # 20480 blocks: torch's cascade sum (the offset) goes three levels deep
    t["wide"] = torch.randn(1024, 1280, generator=g) * (1 + torch.rand(1024, 1, generator=g))
    t["midpoints"] = _midpoint_values().reshape(16, -1)
    return t


def _midpoint_values():
    """Values whose scaled value lands exactly on NF4 midpoints (the tie rule)."""
    code = torch.tensor(NF4)
    mids = (code[:-1] + code[1:]) / 2
    vals = []
    for i in range(64):
        blk = torch.zeros(64)
        blk[0] = 1.0
        blk[1:16] = mids
        blk[16:31] = torch.nextafter(mids, torch.tensor(2.0))
        blk[31:46] = torch.nextafter(mids, torch.tensor(-2.0))
        blk[46:] = torch.linspace(-1, 1, 18)
        vals.append(blk * (0.5 + i / 64))
    return torch.cat(vals)


def _bnb_quant(x, nested):
    q, st = bnb_f.quantize_4bit(x, blocksize=64, compress_statistics=nested, quant_type="nf4")
    return q, st


def _bnb_dequant(q, st):
    """bitsandbytes' dequantisation math as its reference ("default") kernel
    computes it: code[q] * absmax in fp32, with absmax from its own
    dequantize_blockwise(absmax, state2) + offset when nested. The CPU kernel
    of dequantize_4bit in bitsandbytes 0.50.2 gives wrong values when the row
    length is a multiple of 16 but not of 64 (e.g. 96: it indexes blocks per
    row), so it is compared with directly only where it is right (_kernel_ok)."""
    absmax = st.absmax
    if st.nested:
        absmax = bnb_f.dequantize_blockwise(st.absmax, st.state2) + st.offset
    flat = q.flatten()
    n = math.prod(st.shape)
    codes = torch.stack([flat >> 4, flat & 15], 1).flatten()[:n].long()
    out = torch.tensor(NF4)[codes] * absmax[torch.arange(n) // 64]
    return out.reshape(tuple(st.shape))


def _kernel_ok(shape):
    return shape[-1] % 64 == 0 or shape[-1] % 16 != 0 or shape[0] == 1


def _folder(tmp_path, tensors, name="src"):
    d = tmp_path / name
    d.mkdir()
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(d / "model.safetensors"),
              metadata={"format": "pt"})
    return d


@pytest.mark.parametrize("nested", [True, False])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_quantize_is_bit_identical_to_bitsandbytes(build_dir, tmp_path, nested, dtype):
    ts = {k: v.to(dtype) for k, v in _tensors().items()}
    src = _folder(tmp_path, ts)
    out = tmp_path / "ours.safetensors"
    run([ft(build_dir), "nf4-quantize", str(src), str(out)] +
        ([] if nested else ["--no-double-quant"]))
    ours = load_file(str(out))
    for name, x in ts.items():
        q, st = _bnb_quant(x, nested)
        want = {f"{name}.{k}" if k != "weight" else name: v
                for k, v in st.as_dict(packed=True).items()}
        want[name] = q
        got = {k: v for k, v in ours.items() if k == name or k.startswith(name + ".")}
        assert set(got) == set(want), set(got) ^ set(want)
        for k, v in want.items():
            assert got[k].dtype == v.dtype and got[k].shape == v.shape, k
            if k.endswith("bitsandbytes__nf4"):
                a = json.loads(bytes(got[k].tolist()))
                b = json.loads(bytes(v.tolist()))
                assert a == b, (a, b)
                assert bytes(got[k].tolist()) == bytes(v.tolist())  # json.dumps, byte for byte
            else:
                same = torch.equal(got[k].view(torch.uint8), v.contiguous().view(torch.uint8))
                assert same, f"{k}: {(got[k] != v).sum().item()} elements differ"
        assert torch.equal(ours[f"{name}.quant_map"], torch.tensor(NF4))
        if nested:
            assert torch.equal(ours[f"{name}.nested_quant_map"],
                               bnb_f.create_dynamic_map(signed=True))


@pytest.mark.parametrize("nested", [True, False])
def test_bitsandbytes_state_dict_loads_in_ours(build_dir, tmp_path, nested):
    """A file of QuantState.as_dict(packed=True) tensors (what transformers
    saves for a 4-bit Linear) dequantises in ours bit for bit as in bitsandbytes."""
    ts = _tensors()
    sd, want = {}, {}
    for name, x in ts.items():
        q, st = _bnb_quant(x, nested)
        sd[name] = q
        for k, v in st.as_dict(packed=True).items():
            sd[f"{name}.{k}"] = v.contiguous()
        want[name] = _bnb_dequant(q, st)
        if _kernel_ok(x.shape):
            assert torch.equal(want[name], bnb_f.dequantize_4bit(q, st, quant_type="nf4"))
    d = tmp_path / "bnb"
    d.mkdir()
    save_file(sd, str(d / "model.safetensors"))
    run([ft(build_dir), "nf4-dequantize", str(d), str(tmp_path / "deq.safetensors")])
    got = load_file(str(tmp_path / "deq.safetensors"))
    assert set(got) == set(want)
    for name in want:
        same = torch.equal(got[name], want[name].reshape(got[name].shape))
        assert same, name


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_ours_loads_in_bitsandbytes(build_dir, tmp_path, dtype):
    ts = {k: v.to(dtype) for k, v in _tensors().items()}
    src = _folder(tmp_path, ts)
    run([ft(build_dir), "nf4-quantize", str(src), str(tmp_path / "ours.safetensors")])
    ours = load_file(str(tmp_path / "ours.safetensors"))
    (tmp_path / "o").mkdir()
    save_file(ours, str(tmp_path / "o" / "model.safetensors"))
    run([ft(build_dir), "nf4-dequantize", str(tmp_path / "o"), str(tmp_path / "d.safetensors")])
    deq = load_file(str(tmp_path / "d.safetensors"))
    for name in ts:
        qs = {k[len(name) + 1:]: v for k, v in ours.items() if k.startswith(name + ".")}
        st = bnb_f.QuantState.from_dict(qs, device=torch.device("cpu"))
        assert st.dtype == dtype and tuple(st.shape) == tuple(ts[name].shape)
        same = torch.equal(deq[name], _bnb_dequant(ours[name], st))
        assert same, name
        if _kernel_ok(ts[name].shape):
            # bitsandbytes dequantises to the source dtype: the fp32 value, rounded
            theirs = bnb_f.dequantize_4bit(ours[name], st, quant_type="nf4")
            assert torch.equal(deq[name].to(dtype), theirs), name


# ---------------------------------------------------------------- QLoRA engine

LINEARS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def _is_linear(name):
    return name.startswith("model.layers.") and name.endswith(".weight") and \
        name.split(".")[-2] in LINEARS


def _dequantized_base(model_dir):
    """The base QLoRA trains on, built with bitsandbytes alone: every decoder
    linear quantised by quantize_4bit(nf4, 64, compress_statistics=True) and
    dequantised; everything else as it is."""
    sd = load_file(str(model_dir / "model.safetensors"))
    m = load_hf(model_dir)
    with torch.no_grad():
        for name, p in m.named_parameters():
            if _is_linear(name):
                q, st = _bnb_quant(sd[name], True)
                p.copy_(_bnb_dequant(q, st))
    return m


def _bnb_folder(model_dir, out):
    """The same model folder with its decoder linears stored as bitsandbytes'
    4-bit state dict (what transformers saves for a Linear4bit)."""
    out.mkdir()
    sd = load_file(str(model_dir / "model.safetensors"))
    new = {}
    for name, t in sd.items():
        if not _is_linear(name):
            new[name] = t
            continue
        q, st = _bnb_quant(t, True)
        new[name] = q
        for k, v in st.as_dict(packed=True).items():
            new[f"{name}.{k}"] = v.contiguous()
    save_file(new, str(out / "model.safetensors"), metadata={"format": "pt"})
    cfg = json.loads((model_dir / "config.json").read_text())
    cfg["quantization_config"] = {   # as transformers writes it for load_in_4bit
        "quant_method": "bitsandbytes", "load_in_4bit": True, "load_in_8bit": False,
        "bnb_4bit_quant_type": "nf4", "bnb_4bit_use_double_quant": True,
        "bnb_4bit_compute_dtype": "float32", "bnb_4bit_quant_storage": "uint8"}
    (out / "config.json").write_text(json.dumps(cfg))
    return out


@pytest.fixture(scope="module")
def qcase(tmp_path_factory):
    d = tmp_path_factory.mktemp("qlora")
    make_model("llama_gqa", d / "model", seed=4)
    rows = make_rows(5, seed=12)
    write_rows(d / "rows.jsonl", rows)
    pm = _peft_model(_dequantized_base(d / "model"), "all-linear")
    pm.save_pretrained(d / "adapter")
    return d, rows


@pytest.fixture(scope="module", params=["llama_gqa", "qwen2_tied"])
def qmodel(request, tmp_path_factory):
    """A GQA Llama with an untied head, and a Qwen2 with q/k/v biases (which
    stay fp32) and tied embeddings."""
    d = tmp_path_factory.mktemp("q_" + request.param)
    make_model(request.param, d / "model", seed=4)
    rows = make_rows(5, seed=12)
    write_rows(d / "rows.jsonl", rows)
    pm = _peft_model(_dequantized_base(d / "model"), "all-linear")
    pm.save_pretrained(d / "adapter")
    return d, rows


def test_qlora_forward_and_gradients_match_peft_on_dequantized_base(qmodel, build_dir):
    d, rows = qmodel
    ids, labels, mask = pad(rows)
    logits, loss = debug_forward(build_dir, d / "model", d / "rows.jsonl", d / "qf.st",
                                 adapter=d / "adapter", extra=["--nf4"])
    grads, gloss = debug_grads(build_dir, d / "model", d / "rows.jsonl", d / "qg.st",
                               adapter=d / "adapter", extra=["--nf4"])
    pm = peft.PeftModel.from_pretrained(_dequantized_base(d / "model"), str(d / "adapter"),
                                        is_trainable=True)
    out = pm(input_ids=ids, attention_mask=mask)
    s, n = loss_sum_and_count(out.logits, labels)
    (s / n).backward()
    assert_logits_close(logits, out.logits.detach(), mask, tol=1e-5)
    assert abs(loss - (s / n).item()) <= 1e-5 and abs(gloss - loss) <= 1e-6
    theirs = {k.replace(".default", ""): p.grad for k, p in pm.named_parameters()
              if p.requires_grad}
    assert set(grads) == set(theirs)
    for name, g in theirs.items():
        assert_grad_close(name, grads[name], g)
    # the folder stored in bitsandbytes' 4-bit format loads as the same base
    bf = _bnb_folder(d / "model", d / "bnb_model")
    logits2, _ = debug_forward(build_dir, bf, d / "rows.jsonl", d / "qf2.st",
                               adapter=d / "adapter")
    assert torch.equal(logits2, logits)
    # merging into it writes an fp32 folder whose config has no quantization_config
    run([ft(build_dir), "merge", "--model", str(bf), "--adapter", str(d / "adapter"), "--out",
         str(d / "bnb_merged")], env=ENV)
    assert "quantization_config" not in json.loads((d / "bnb_merged" / "config.json").read_text())
    merged = load_hf(d / "bnb_merged")
    with torch.no_grad():
        ref = merged(input_ids=ids, attention_mask=mask).logits
    assert_logits_close(logits, ref, mask, tol=1e-5)


def _qjob(d, out, steps, **kw):
    job = {"model": str(d / "model"), "train_file": str(d / "train.jsonl"),
           "output_dir": str(d / out), "method": "qlora", "seed": 5,
           "lora": {"r": 4, "alpha": 8, "dropout": 0.1, "target_modules": "all-linear"},
           "hyperparameters": {"max_steps": steps, "batch_size": 2, "learning_rate": 1e-2,
                               "lr_scheduler_type": "constant", "shuffle": True}}
    job.update(kw)
    return job


def _train(build_dir, job, path, *extra):
    path.write_text(json.dumps(job))
    p = run([ft(build_dir), "train", "--config", str(path), *extra], env=ENV)
    return [json.loads(x) for x in p.stdout.splitlines() if x.startswith("{")]


def test_qlora_training_loss_falls_adapter_loads_in_peft_and_resumes(qcase, build_dir):
    d, _ = qcase
    rows = make_rows(12, seed=31)
    write_rows(d / "train.jsonl", rows)
    lines = _train(build_dir, _qjob(d, "q30", 30), d / "q30.json")
    start = lines[0]
    assert start["method"] == "qlora"
    print(f"\nbase weights: fp32 part {start['base_bytes_f32']} B + NF4 part "
          f"{start['base_bytes_nf4']} B")
    losses = [x["train_loss"] for x in lines if x["type"] == "step"]
    assert len(losses) == 30
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < 0.7 * first, (first, last)
    cfg = json.loads((d / "q30" / "adapter" / "adapter_config.json").read_text())
    assert cfg["peft_type"] == "LORA" and cfg["r"] == 4
    # the adapter on the dequantised base in peft gives our logits
    ids, labels, mask = pad(rows[:4])
    write_rows(d / "eval4.jsonl", rows[:4])
    logits, _ = debug_forward(build_dir, d / "model", d / "eval4.jsonl", d / "qa.st",
                              adapter=d / "q30" / "adapter", extra=["--nf4"])
    pm = peft.PeftModel.from_pretrained(_dequantized_base(d / "model"),
                                        str(d / "q30" / "adapter"))
    with torch.no_grad():
        ref = pm(input_ids=ids, attention_mask=mask).logits
    assert_logits_close(logits, ref, mask, tol=1e-5)
    # exact resume: the base is quantised again, bit for bit
    full = _train(build_dir, _qjob(d, "qr_full", 8), d / "qr1.json")
    part1 = _train(build_dir, _qjob(d, "qr_part", 8), d / "qr2.json", "--stop-after-steps", "3")
    part2 = _train(build_dir, _qjob(d, "qr_part", 8), d / "qr2.json", "--resume",
                   str(d / "qr_part" / "checkpoint"))
    a = [x["train_loss"] for x in full if x["type"] == "step"]
    b = [x["train_loss"] for x in part1 + part2 if x["type"] == "step"]
    assert len(a) == 8 and a == b


def test_qlora_merged_output_is_the_dequantized_merge(qcase, build_dir):
    """save_merged for QLoRA: the adapter folded into the DEQUANTISED base,
    written in fp32 - what peft's merge_and_unload gives on that base."""
    d, rows = qcase
    write_rows(d / "train.jsonl", make_rows(12, seed=31))
    job = _qjob(d, "qm", 2, save_merged=True)
    _train(build_dir, job, d / "qm.json")
    merged = load_hf(d / "qm" / "model")
    ref = peft.PeftModel.from_pretrained(_dequantized_base(d / "model"),
                                         str(d / "qm" / "adapter")).merge_and_unload()
    for name, p in ref.state_dict().items():
        diff = (merged.state_dict()[name] - p).abs().max().item()
        assert diff <= 1e-6, (name, diff)
    # `ft-train merge --nf4` writes the same folder, bit for bit
    run([ft(build_dir), "merge", "--model", str(d / "model"), "--adapter",
         str(d / "qm" / "adapter"), "--nf4", "--out", str(d / "qm_merge")], env=ENV)
    a = load_file(str(d / "qm" / "model" / "model.safetensors"))
    b = load_file(str(d / "qm_merge" / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # and `generate --nf4` with the adapter is greedy decoding of peft on the dequantised base
    pm = peft.PeftModel.from_pretrained(_dequantized_base(d / "model"), str(d / "qm" / "adapter"))
    prompt = rows[0]["input_ids"][:6]
    with torch.no_grad():
        want = pm.generate(input_ids=torch.tensor([prompt]), max_new_tokens=10, do_sample=False,
                           eos_token_id=2, pad_token_id=0)[0, len(prompt):].tolist()
    p = run([ft(build_dir), "generate", "--model", str(d / "model"), "--adapter",
             str(d / "qm" / "adapter"), "--nf4", "--prompt-ids", ",".join(map(str, prompt)),
             "--max-new-tokens", "10"], env=ENV)
    assert json.loads(p.stdout)["ids"] == want


def _r16(n):
    return (n + 15) // 16 * 16


def test_qlora_base_memory(qcase, build_dir):
    """The bytes of the base as laid out by hand: per linear (n = out x in)
    ceil(n/2) packed bytes + per 64-block a u8 (double quant: + an fp32 per
    256 blocks) or an fp32 scale, each array rounded up to 16 bytes; the
    fp32 part is everything but the linears."""
    d, _ = qcase
    write_rows(d / "train.jsonl", make_rows(4, seed=3))
    shapes = [(32, 32), (16, 32), (16, 32), (32, 32), (48, 32), (48, 32), (32, 48)] * 2
    sd = load_file(str(d / "model" / "model.safetensors"))
    f32 = 4 * sum(t.numel() for k, t in sd.items() if not _is_linear(k))
    for dq in (True, False):
        job = _qjob(d, f"mem_{dq}", 1, qlora={"double_quant": dq})
        start = _train(build_dir, job, d / f"mem_{dq}.json")[0]
        want = 0
        for o, i in shapes:
            n = o * i
            nb = -(-n // 64)
            want += _r16(-(-n // 2)) + (_r16(nb) + _r16(4 * -(-nb // 256)) if dq else _r16(4 * nb))
        assert start["base_bytes_nf4"] == want and start["base_bytes_f32"] == f32
        lin = 4 * sum(o * i for o, i in shapes)
        print(f"\ndouble_quant={dq}: linears {lin} B in fp32, {want} B in NF4 "
              f"({lin / want:.2f}x); rest {f32} B fp32")


def test_qlora_job_errors(build_dir, tmp_path):
    job = {"model": "/nonexistent", "train_file": "t.jsonl", "output_dir": str(tmp_path),
           "method": "lora", "qlora": {"double_quant": False}}
    (tmp_path / "j.json").write_text(json.dumps(job))
    p = run([ft(build_dir), "--config", str(tmp_path / "j.json")], check=False)
    assert p.returncode == 3 and '"qlora" is set but "method" is not "qlora"' in p.stderr
    job["method"], job["qlora"] = "qlora", {"double_quantization": True}
    (tmp_path / "j.json").write_text(json.dumps(job))
    p = run([ft(build_dir), "--config", str(tmp_path / "j.json")], check=False)
    assert p.returncode == 3 and 'unknown field "double_quantization"' in p.stderr


def test_qlora_with_gradient_checkpointing_is_identical(qcase, build_dir):
    """Recomputing every layer (NF4 matmuls and LoRA dropout included) in
    backward gives the plain run's steps bit for bit."""
    d, _ = qcase
    write_rows(d / "train.jsonl", make_rows(8, seed=37))
    plain = _train(build_dir, _qjob(d, "ck_plain", 5), d / "ck_plain.json")
    job = _qjob(d, "ck_every", 5)
    job["hyperparameters"]["gradient_checkpointing"] = True
    every = _train(build_dir, job, d / "ck_every.json")
    la = [x["train_loss"] for x in plain if x["type"] == "step"]
    lb = [x["train_loss"] for x in every if x["type"] == "step"]
    assert len(la) == 5 and la == lb
