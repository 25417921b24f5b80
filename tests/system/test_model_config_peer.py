"""config.json against its peer, transformers.

For tiny random models of each supported architecture (Llama with GQA untied,
Qwen2 with bias tied, Llama with llama3 and linear rope scaling, Llama with
attention/mlp bias and an explicit head_dim, Mistral), saved by
save_pretrained:
- `ft-train inspect --json` reports the fields transformers' config holds,
  and a parameter count equal to sum(p.numel() for p in model.parameters());
- the config.json we write (`ft-train config-json`) loads in transformers to
  the same config and builds a model of the same class and size.
A transformers-4 style config.json (rope_theta + rope_scaling with "type")
reads the same in both, and an unsupported architecture is a clear error.
"""
import json

import pytest
import torch
from transformers import (AutoConfig, AutoModelForCausalLM, LlamaConfig, MistralConfig,
                          Qwen2Config)

from conftest import run

SMALL = dict(vocab_size=96, hidden_size=64, intermediate_size=80, num_hidden_layers=2,
             num_attention_heads=4)

CASES = {
    "llama_gqa_untied": lambda: LlamaConfig(**SMALL, num_key_value_heads=2,
                                            tie_word_embeddings=False),
    "llama_llama3_rope": lambda: LlamaConfig(
        **SMALL, num_key_value_heads=1, max_position_embeddings=4096, eos_token_id=[2, 3],
        rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                      "high_freq_factor": 4.0, "original_max_position_embeddings": 1024},
        rope_theta=500000.0, rms_norm_eps=1e-5),
    "llama_linear_bias_headdim": lambda: LlamaConfig(
        **SMALL, head_dim=32, attention_bias=True, mlp_bias=True, tie_word_embeddings=True,
        rope_scaling={"type": "linear", "factor": 2.0}, pad_token_id=0),
    "qwen2_bias_tied": lambda: Qwen2Config(**SMALL, num_key_value_heads=2,
                                           tie_word_embeddings=True, rope_theta=1000000.0),
    "mistral": lambda: MistralConfig(**SMALL, num_key_value_heads=2, sliding_window=512),
}

TYPES = {"llama": "LlamaForCausalLM", "mistral": "MistralForCausalLM",
         "qwen2": "Qwen2ForCausalLM"}


@pytest.fixture(scope="module")
def ft_train(build_dir):
    return str(build_dir / "trainer" / "ft-train")


def rope_of(cfg):
    rp = dict(cfg.rope_parameters or {})
    return rp.get("rope_type", "default"), rp


def expect_fields(cfg, got):
    """Compare inspect's config object with a transformers config."""
    assert got["architecture"] == TYPES[cfg.model_type]
    assert got["model_type"] == cfg.model_type
    for ours, theirs in [("vocab_size", "vocab_size"), ("hidden_size", "hidden_size"),
                         ("intermediate_size", "intermediate_size"),
                         ("num_layers", "num_hidden_layers"),
                         ("num_heads", "num_attention_heads"),
                         ("num_kv_heads", "num_key_value_heads"),
                         ("max_position_embeddings", "max_position_embeddings"),
                         ("tie_word_embeddings", "tie_word_embeddings")]:
        assert got[ours] == getattr(cfg, theirs), ours
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    assert got["head_dim"] == head_dim
    assert got["rms_norm_eps"] == cfg.rms_norm_eps
    rtype, rp = rope_of(cfg)
    assert got["rope_type"] == rtype
    assert got["rope_theta"] == rp["rope_theta"]
    if rtype in ("linear", "llama3"):
        assert got["rope_factor"] == rp["factor"]
    if rtype == "llama3":
        assert got["rope_low_freq_factor"] == rp["low_freq_factor"]
        assert got["rope_high_freq_factor"] == rp["high_freq_factor"]
        assert got["rope_original_max_pos"] == rp["original_max_position_embeddings"]
    eos = cfg.eos_token_id
    eos = [] if eos is None else (eos if isinstance(eos, list) else [eos])
    assert got["eos_token_ids"] == eos
    assert got["bos_token_id"] == (-1 if cfg.bos_token_id is None else cfg.bos_token_id)
    assert got["pad_token_id"] == (-1 if cfg.pad_token_id is None else cfg.pad_token_id)
    bias = getattr(cfg, "attention_bias", False)
    assert got["qkv_bias"] == (True if cfg.model_type == "qwen2" else bias)
    assert got["o_bias"] == bias
    assert got["mlp_bias"] == getattr(cfg, "mlp_bias", False)
    if cfg.model_type == "mistral":
        assert got["sliding_window"] == (cfg.sliding_window or 0)


@pytest.fixture(scope="module", params=sorted(CASES))
def saved(request, tmp_path_factory):
    torch.manual_seed(0)
    cfg = CASES[request.param]()
    model = AutoModelForCausalLM.from_config(cfg)
    d = tmp_path_factory.mktemp(request.param)
    model.save_pretrained(str(d))
    return request.param, d, model


def test_fields_and_param_count(ft_train, saved):
    name, d, model = saved
    info = json.loads(run([ft_train, "inspect", str(d), "--json"]).stdout)
    cfg = AutoConfig.from_pretrained(str(d))
    expect_fields(cfg, info["config"])
    n = sum(p.numel() for p in model.parameters())
    assert info["param_count"] == n
    # The saved tensors hold the same count (tied lm_head is not saved).
    assert info["tensor_elements"] == n


def test_our_config_json_loads_in_transformers(ft_train, saved, tmp_path):
    name, d, model = saved
    text = run([ft_train, "config-json", str(d)]).stdout
    (tmp_path / "config.json").write_text(text)
    theirs = AutoConfig.from_pretrained(str(d))
    back = AutoConfig.from_pretrained(str(tmp_path))
    assert type(back) is type(theirs)
    assert back.architectures == [TYPES[theirs.model_type]]
    keys = ["vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
            "num_attention_heads", "num_key_value_heads", "max_position_embeddings",
            "rms_norm_eps", "tie_word_embeddings", "bos_token_id", "eos_token_id",
            "pad_token_id", "hidden_act", "rope_parameters"]
    keys += {"llama": ["attention_bias", "mlp_bias", "head_dim"], "mistral": ["sliding_window",
             "head_dim"], "qwen2": ["use_sliding_window"]}[theirs.model_type]
    for k in keys:
        a, b = getattr(back, k), getattr(theirs, k)
        if k == "rope_parameters":
            # The legacy spelling "type" is kept beside "rope_type" when it
            # was given; we write "rope_type" alone.
            a, b = ({x: y for x, y in r.items() if x != "type"} for r in (a, b))
        assert a == b, k
    torch.manual_seed(0)
    m2 = AutoModelForCausalLM.from_config(back)
    assert type(m2) is type(model)
    assert sum(p.numel() for p in m2.parameters()) == sum(p.numel() for p in model.parameters())
    assert [(n, p.shape) for n, p in m2.named_parameters()] == \
        [(n, p.shape) for n, p in model.named_parameters()]


def test_transformers4_style_config(ft_train, tmp_path):
    cfg = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 64,
           "hidden_size": 32, "intermediate_size": 48, "num_hidden_layers": 1,
           "num_attention_heads": 4, "num_key_value_heads": 2, "rope_theta": 500000.0,
           "rope_scaling": {"type": "llama3", "factor": 32.0, "low_freq_factor": 1.0,
                            "high_freq_factor": 4.0, "original_max_position_embeddings": 128},
           "max_position_embeddings": 1024, "torch_dtype": "bfloat16",
           "eos_token_id": [5, 6, 7], "tie_word_embeddings": True}
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    from safetensors.torch import save_file
    torch.manual_seed(0)
    theirs = AutoConfig.from_pretrained(str(tmp_path))
    model = AutoModelForCausalLM.from_config(theirs)
    save_file({k: v.contiguous() for k, v in model.state_dict().items() if k != "lm_head.weight"},
              str(tmp_path / "model.safetensors"))
    info = json.loads(run([ft_train, "inspect", str(tmp_path), "--json"]).stdout)
    expect_fields(theirs, info["config"])
    assert info["config"]["torch_dtype"] == "bfloat16"
    assert info["param_count"] == sum(p.numel() for p in model.parameters())


def test_unsupported_architecture(ft_train, tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(
        {"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "n_embd": 8}))
    p = run([ft_train, "inspect", str(tmp_path)], check=False)
    assert p.returncode == 1
    assert ('config.json: unsupported architecture "GPT2LMHeadModel" (supported: '
            'LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM)') in p.stderr
