"""safetensors against its peer, the Python `safetensors` package (and
transformers for sharded checkpoints).

- Files the package writes (numpy and torch APIs, every dtype we support incl.
  bf16, empty tensors, scalars, metadata) load in ours with the same names,
  dtypes, shapes and bytes (SHA-256 of each tensor's bytes, from
  `ft-train inspect --json --hash`).
- Files our writer produces (`ft-train st-copy`) are byte-identical to the
  package's output for the same tensors and metadata, and load bit-exact there.
- F16 / BF16 -> F32 (`ft-train st-dump --f32`) equals torch's `.float()` for
  all 65536 bit patterns of each (NaNs: both NaN, payload not compared,
  because the CPU's conversion instruction may quiet a signalling NaN).
- A sharded checkpoint from transformers' save_pretrained(max_shard_size=...)
  loads with every tensor equal to the model's state dict; a missing shard is a
  clear error.
- Malformed files: ours rejects what the package rejects.
"""
import hashlib
import json
import os
import shutil
import struct
import subprocess

import numpy as np
import pytest
import torch
from safetensors import SafetensorError
from safetensors.numpy import load as np_load
from safetensors.numpy import load_file as np_load_file
from safetensors.numpy import save_file as np_save_file
from safetensors.torch import load_file as torch_load_file
from safetensors.torch import save_file as torch_save_file

from conftest import run

NP_DTYPES = {
    "F32": np.float32, "F16": np.float16, "U8": np.uint8, "I8": np.int8,
    "I32": np.int32, "I64": np.int64, "F64": np.float64, "BOOL": np.bool_,
}
TORCH_NAMES = {
    torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
    torch.uint8: "U8", torch.int8: "I8", torch.int32: "I32", torch.int64: "I64",
    torch.float64: "F64", torch.bool: "BOOL",
}


@pytest.fixture(scope="module")
def ft_train(build_dir):
    return str(build_dir / "trainer" / "ft-train")


def run_bytes(cmd):
    """Run a command whose stdout is binary."""
    return subprocess.run(cmd, capture_output=True, timeout=300)


def inspect(ft_train, path):
    return json.loads(run([ft_train, "inspect", str(path), "--json", "--hash"]).stdout)


def torch_bytes(t):
    t = t.contiguous().reshape(-1)
    if t.numel() == 0:
        return b""
    return t.view(torch.uint8).numpy().tobytes()


def numpy_tensors(rng):
    ts = {}
    for name, dt in NP_DTYPES.items():
        if dt == np.bool_:
            a = rng.integers(0, 2, size=(3, 5)).astype(np.bool_)
        elif np.issubdtype(dt, np.integer):
            info = np.iinfo(dt)
            a = rng.integers(info.min, info.max, size=(3, 5), dtype=dt, endpoint=True)
        else:
            a = (rng.standard_normal((3, 5)) * 100).astype(dt)
        ts[f"t.{name.lower()}"] = a
    ts["scalar"] = np.array(3.5, dtype=np.float32)
    ts["empty"] = np.zeros((0, 4), dtype=np.float16)
    ts["empty.i64"] = np.zeros((2, 0, 3), dtype=np.int64)
    ts["model.layers.0.self_attn.q_proj.weight"] = rng.standard_normal((4, 2, 3)).astype(np.float32)
    return ts


def torch_tensors():
    g = torch.Generator().manual_seed(1)
    ts = {}
    for dt, name in TORCH_NAMES.items():
        if dt == torch.bool:
            t = torch.randint(0, 2, (2, 3), generator=g).bool()
        elif not dt.is_floating_point:
            t = torch.randint(-100 if dt != torch.uint8 else 0, 100, (2, 3), generator=g).to(dt)
        else:
            t = (torch.randn(2, 3, generator=g) * 10).to(dt)
        ts[f"w_{name}"] = t
    ts["bf16.scalar"] = torch.tensor(-1.25, dtype=torch.bfloat16)
    ts["bf16.empty"] = torch.zeros(0, dtype=torch.bfloat16)
    ts["a/b.c-d"] = torch.arange(7, dtype=torch.int32)
    return ts


def check_against(info, expect, metadata):
    """expect: name -> (dtype name, shape tuple, bytes)."""
    got = {t["name"]: t for t in info["tensors"]}
    assert sorted(got) == sorted(expect)
    for name, (dt, shape, data) in expect.items():
        t = got[name]
        assert t["dtype"] == dt, name
        assert tuple(t["shape"]) == tuple(shape), name
        assert t["nbytes"] == len(data), name
        assert t["sha256"] == hashlib.sha256(data).hexdigest(), name
    assert info["metadata"] == (metadata or {})


def test_numpy_files_load_bit_exact(ft_train, tmp_path):
    ts = numpy_tensors(np.random.default_rng(7))
    path = tmp_path / "np.safetensors"
    np_save_file(ts, str(path), metadata={"format": "np", "note": "x\"y\\z\n"})
    expect = {}
    for n, a in ts.items():
        dt = [k for k, v in NP_DTYPES.items() if v == a.dtype.type][0]
        expect[n] = (dt, a.shape, np.ascontiguousarray(a).tobytes())
    check_against(inspect(ft_train, path), expect, {"format": "np", "note": "x\"y\\z\n"})


def test_torch_files_load_bit_exact(ft_train, tmp_path):
    ts = torch_tensors()
    path = tmp_path / "pt.safetensors"
    torch_save_file(ts, str(path), metadata={"format": "pt"})
    expect = {n: (TORCH_NAMES[t.dtype], tuple(t.shape), torch_bytes(t)) for n, t in ts.items()}
    check_against(inspect(ft_train, path), expect, {"format": "pt"})


@pytest.mark.parametrize("api", ["numpy", "torch", "numpy-nometa", "torch-2meta"])
def test_our_writer_matches_package(ft_train, tmp_path, api):
    theirs, ours = tmp_path / "theirs.safetensors", tmp_path / "ours.safetensors"
    if api.startswith("numpy"):
        ts = numpy_tensors(np.random.default_rng(3))
        meta = None if api == "numpy-nometa" else {"format": "np"}
        np_save_file(ts, str(theirs), metadata=meta)
    else:
        ts = torch_tensors()
        meta = {"format": "pt", "b": "2"} if api == "torch-2meta" else {"format": "pt"}
        torch_save_file(ts, str(theirs), metadata=meta)
    run([ft_train, "st-copy", str(theirs), str(ours)])
    if api != "torch-2meta":
        # One metadata key at most: the package's order of several keys is
        # a Rust hash map's (random); ours is sorted.
        assert ours.read_bytes() == theirs.read_bytes()
    # Loads bit-exact in the package.
    if api.startswith("numpy"):
        back = np_load_file(str(ours))
        assert sorted(back) == sorted(ts)
        for n, a in ts.items():
            assert back[n].dtype == a.dtype and back[n].shape == a.shape
            assert back[n].tobytes() == a.tobytes()
    else:
        back = torch_load_file(str(ours))
        assert sorted(back) == sorted(ts)
        for n, t in ts.items():
            assert back[n].dtype == t.dtype and back[n].shape == t.shape
            assert torch_bytes(back[n]) == torch_bytes(t)
    from safetensors import safe_open
    with safe_open(str(ours), "np") as f:
        assert f.metadata() == meta


def test_half_to_f32_all_bit_patterns(ft_train, tmp_path):
    bits = torch.arange(0, 65536, dtype=torch.int32).to(torch.int16)
    ts = {"h": bits.clone().view(torch.float16), "b": bits.clone().view(torch.bfloat16)}
    path = tmp_path / "half.safetensors"
    torch_save_file(ts, str(path))
    for name, t in ts.items():
        out = run_bytes([ft_train, "st-dump", str(path), name, "--f32"])
        assert out.returncode == 0, out.stderr
        ours = np.frombuffer(out.stdout, dtype=np.float32)
        ref = t.float().numpy()
        assert ours.shape == (65536,)
        nan = np.isnan(ref)
        assert np.array_equal(np.isnan(ours), nan), name
        assert np.array_equal(ours[~nan].view(np.uint32), ref[~nan].view(np.uint32)), name
    # Raw bytes come back untouched.
    out = run_bytes([ft_train, "st-dump", str(path), "b"])
    assert out.returncode == 0 and out.stdout == torch_bytes(ts["b"])
    out = run([ft_train, "st-dump", str(path), "nope"], check=False)
    assert out.returncode == 1 and 'no tensor "nope"' in out.stderr


@pytest.fixture(scope="module")
def sharded_llama(tmp_path_factory):
    from transformers import LlamaConfig, LlamaForCausalLM
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=3,
                      num_attention_heads=4, num_key_value_heads=2)
    model = LlamaForCausalLM(cfg)
    d = tmp_path_factory.mktemp("llama_sharded")
    model.save_pretrained(str(d), max_shard_size="100KB")
    return d, model


def test_sharded_transformers_checkpoint(ft_train, sharded_llama):
    d, model = sharded_llama
    index = json.loads((d / "model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) > 1, "want several shards"
    info = inspect(ft_train, d)
    sd = model.state_dict()
    expect = {n: (TORCH_NAMES[t.dtype], tuple(t.shape), torch_bytes(t)) for n, t in sd.items()}
    got = {t["name"]: t for t in info["tensors"]}
    assert sorted(got) == sorted(expect)
    for n, (dt, shape, data) in expect.items():
        assert got[n]["dtype"] == dt and tuple(got[n]["shape"]) == shape
        assert got[n]["sha256"] == hashlib.sha256(data).hexdigest(), n
    assert info["param_count"] == sum(p.numel() for p in model.parameters())
    assert info["tensor_elements"] == sum(p.numel() for p in model.parameters())
    # One tensor by name through st-dump, across shards.
    name = "model.layers.2.mlp.down_proj.weight"
    out = run_bytes([ft_train, "st-dump", str(d), name])
    assert out.returncode == 0 and out.stdout == torch_bytes(sd[name])
    # Text output names the architecture and the count.
    text = run([ft_train, "inspect", str(d)]).stdout
    assert "architecture: LlamaForCausalLM (llama)" in text
    assert f"parameters: {sum(p.numel() for p in model.parameters())} (from config.json)" in text


def test_sharded_missing_shard_and_tensor(ft_train, sharded_llama, tmp_path):
    d, _ = sharded_llama
    broken = tmp_path / "broken"
    shutil.copytree(d, broken)
    index = json.loads((broken / "model.safetensors.index.json").read_text())
    name, shard = sorted(index["weight_map"].items())[0]
    os.unlink(broken / shard)
    p = run([ft_train, "inspect", str(broken)], check=False)
    assert p.returncode == 1
    first = [n for n, s in index["weight_map"].items() if s == shard][0]
    assert (f'model.safetensors.index.json: shard "{shard}" is missing '
            f'(the weight_map names it for tensor "{first}")') in p.stderr

    shutil.rmtree(broken)
    shutil.copytree(d, broken)
    index["weight_map"]["model.extra.weight"] = index["weight_map"][name]
    (broken / "model.safetensors.index.json").write_text(json.dumps(index))
    p = run([ft_train, "inspect", str(broken)], check=False)
    assert p.returncode == 1
    assert (f'tensor "model.extra.weight" is mapped to shard "{shard}", which does not '
            'contain it') in p.stderr


def _raw(header, data=b""):
    h = header.encode() if isinstance(header, str) else header
    return struct.pack("<Q", len(h)) + h + data


T = '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}'
# name -> (file bytes, the message ours gives or None when both accept)
MALFORMED = {
    "ok": (_raw(T, b"\0" * 8), None),
    "gap_first": (_raw('{"a":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}', b"\0" * 12),
                  'leave a gap: the first tensor must start at 0'),
    "gap_between": (_raw('{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},'
                         '"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}', b"\0" * 12),
                    'leave a gap after tensor "a"'),
    "overlap": (_raw('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},'
                     '"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}', b"\0" * 8),
                'overlap tensor "a"'),
    "trailing": (_raw(T, b"\0" * 9), "trailing bytes after the last tensor"),
    "short": (_raw(T, b"\0" * 7), "run past the end of the data (7 bytes)"),
    "mismatch": (_raw('{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}', b"\0" * 8),
                 "do not match shape [3] of F32 (12 bytes)"),
    "negative": (_raw('{"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}', b"\0" * 8),
                 "shape[0] must be a non-negative integer (got -2)"),
    "float_dim": (_raw('{"a":{"dtype":"F32","shape":[2.0],"data_offsets":[0,8]}}', b"\0" * 8),
                  "shape[0] must be a non-negative integer (got number)"),
    "reversed": (_raw('{"a":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}}', b"\0" * 8),
                 "are reversed"),
    "three_offsets": (_raw('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8,8]}}', b"\0" * 8),
                      '"data_offsets" must be a list of 2 non-negative integers'),
    "unknown_dtype": (_raw('{"a":{"dtype":"F33","shape":[2],"data_offsets":[0,8]}}', b"\0" * 8),
                      'unsupported dtype "F33"'),
    "meta_int": (_raw('{"__metadata__":{"x":1}}'), '"__metadata__" value for "x" must be a string'),
    "not_object": (_raw("[]"), "header must be a JSON object (got list)"),
    "empty_header": (_raw(""), "header is not valid JSON"),
    "bad_utf8": (_raw(b'{"a\xff":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}', b"\0" * 8),
                 "header is not valid JSON"),
    "trailing_nul": (_raw(T + "\0", b"\0" * 8), "header is not valid JSON"),
    "missing_shape": (_raw('{"a":{"dtype":"F32","data_offsets":[0,8]}}', b"\0" * 8),
                      '"shape" is missing'),
    "overflow": (_raw('{"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}}',
                      b"\0" * 8), "element count overflows"),
    "header_past_end": (struct.pack("<Q", 1000) + b"{}", "runs past the end of the file"),
    "tiny": (b"\0\0\0", "file is too small to be safetensors"),
    "leading_space": (_raw(" " + T + " \n", b"\0" * 8), None),
    "extra_key": (_raw('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8],"x":1}}', b"\0" * 8),
                  None),
    "empty_tensors_same_offset": (
        _raw('{"a":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},'
             '"b":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},'
             '"c":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}', b"\0" * 4), None),
    "meta_null": (_raw('{"__metadata__":null}'), None),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_agrees_with_package(ft_train, tmp_path, case):
    data, msg = MALFORMED[case]
    path = tmp_path / "m.safetensors"
    path.write_bytes(data)
    try:
        np_load(data)
        package_ok = True
    except SafetensorError:
        package_ok = False
    p = run([ft_train, "inspect", str(path), "--json"], check=False)
    assert (p.returncode == 0) == package_ok, p.stderr
    assert (msg is None) == package_ok
    if msg:
        assert p.stderr.startswith(f"ft-train inspect: {path}: "), p.stderr
        assert msg in p.stderr


def test_where_we_are_stricter(ft_train, tmp_path):
    """Documented differences: the package takes the last of duplicate keys
    and more dtypes (U16, F8_*, ...); ours rejects both, naming the problem."""
    dup = _raw('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},'
               '"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}', b"\0" * 8)
    u16 = _raw('{"a":{"dtype":"U16","shape":[4],"data_offsets":[0,8]}}', b"\0" * 8)
    for data, msg in ((dup, "duplicate object key"), (u16, 'unsupported dtype "U16"')):
        np_load(data)  # the package accepts
        path = tmp_path / "s.safetensors"
        path.write_bytes(data)
        p = run([ft_train, "inspect", str(path)], check=False)
        assert p.returncode == 1 and msg in p.stderr


def test_f32_to_half_matches_torch(ft_train, tmp_path):
    """ft_f32_to_f16 / ft_f32_to_bf16 against torch's .to(): bit-exact for
    every value; F16 NaNs too (quiet, top payload bits kept). For BF16 NaNs
    only NaN-ness is compared: torch's scalar path gives 0x7FC0 and its
    vectorised path 0xFFFF, so its bits are no reference."""
    g = torch.Generator().manual_seed(5)
    # Random bit patterns cover every exponent; scaled normals hit the F16
    # range and its subnormals; exact ties and the edges are added by hand.
    bits = torch.randint(-2**31, 2**31 - 1, (1 << 18,), generator=g, dtype=torch.int64)
    rand_bits = bits.to(torch.int32).view(torch.float32)
    normals = torch.randn(1 << 18, generator=g) * torch.pow(
        2.0, torch.randint(-30, 18, (1 << 18,), generator=g).float())
    f16_all = torch.arange(0, 65536, dtype=torch.int32).to(torch.int16).view(torch.float16).float()
    nxt = torch.nextafter(f16_all, torch.tensor(float("inf")))
    ties = (f16_all[:-1] + f16_all[1:]) / 2  # halfway between neighbours (exact in f32)
    edges = torch.tensor([0.0, -0.0, 65504, 65519.996, 65520, 1e30, float("inf"), -float("inf"),
                          float("nan"), 2**-24, 2**-25, 1.5 * 2**-25, 3.4028235e38, 1e-45])
    x = torch.cat([rand_bits, normals, f16_all, nxt, ties.nan_to_num(0.0), edges]).contiguous()
    src = tmp_path / "f32.safetensors"
    torch_save_file({"x": x}, str(src))
    for dtype, tdt in (("F16", torch.float16), ("BF16", torch.bfloat16)):
        out = tmp_path / f"{dtype}.safetensors"
        run([ft_train, "st-cast", str(src), str(out), dtype])
        ours = torch_load_file(str(out))["x"]
        ref = x.to(tdt)
        assert ours.dtype == tdt
        differ = ours.view(torch.int16) != ref.view(torch.int16)
        if dtype == "BF16":
            assert torch.equal(ours.isnan(), ref.isnan())
            differ &= ~ref.isnan()
        diff = differ.nonzero().flatten()
        assert diff.numel() == 0, (dtype, [(x[i].item(), hex(ours.view(torch.int16)[i].item() & 0xffff),
                                            hex(ref.view(torch.int16)[i].item() & 0xffff))
                                           for i in diff[:5]])
