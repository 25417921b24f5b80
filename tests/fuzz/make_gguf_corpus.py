"""Write the seed corpus of fuzz_gguf (tests/fuzz/corpus/gguf/) with the `gguf`
package: small but complete files (a tiny Llama with a byte-level tokenizer, a
tiny Qwen2 with a SentencePiece-style one, every dequantised tensor type,
Llama 3 rope_freqs, a v2 header, a tokenizer with no merges) and a few broken
ones. Deterministic; run from the repository root with the test virtualenv:

    $FT_VENV/bin/python tests/fuzz/make_gguf_corpus.py
"""
import struct
import sys
from pathlib import Path

import numpy as np

import gguf
from gguf import GGMLQuantizationType as Q

OUT = Path(__file__).resolve().parent / "corpus" / "gguf"
rng = np.random.default_rng(7)


def writer(name, arch="llama"):
    return gguf.GGUFWriter(str(OUT / name), arch)


def finish(w):
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def model_keys(w, arch, hidden=32, heads=2, kv=1, ff=32, layers=1, vocab=12):
    w.add_context_length(64)
    w.add_embedding_length(hidden)
    w.add_block_count(layers)
    w.add_feed_forward_length(ff)
    w.add_head_count(heads)
    w.add_head_count_kv(kv)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_freq_base(10000.0)
    w.add_rope_dimension_count(hidden // heads)
    w.add_vocab_size(vocab)


def model_tensors(w, hidden=32, heads=2, kv=1, ff=32, vocab=12, qtype=Q.F32, tied=True, bias=False):
    hd = hidden // heads

    def t(name, *shape):
        a = (rng.standard_normal(shape) * 0.1).astype(np.float32)
        if len(shape) == 1 or qtype == Q.F32:
            w.add_tensor(name, a)
        else:
            w.add_tensor(name, gguf.quants.quantize(a, qtype), raw_dtype=qtype)
    t("token_embd.weight", vocab, hidden)
    t("output_norm.weight", hidden)
    if not tied:
        t("output.weight", vocab, hidden)
    t("blk.0.attn_norm.weight", hidden)
    t("blk.0.ffn_norm.weight", hidden)
    t("blk.0.attn_q.weight", heads * hd, hidden)
    t("blk.0.attn_k.weight", kv * hd, hidden)
    t("blk.0.attn_v.weight", kv * hd, hidden)
    if bias:
        t("blk.0.attn_q.bias", heads * hd)
        t("blk.0.attn_k.bias", kv * hd)
        t("blk.0.attn_v.bias", kv * hd)
    t("blk.0.attn_output.weight", hidden, heads * hd)
    t("blk.0.ffn_gate.weight", ff, hidden)
    t("blk.0.ffn_up.weight", ff, hidden)
    t("blk.0.ffn_down.weight", hidden, ff)


BL_TOKENS = ["<|end|>", "a", "b", "ab", "\u0120", "\u0120a", "1", "2", "12", "\u010a", "c", "<tool>"]
BL_TYPES = [3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 4]


def byte_level(w, pre):
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre(pre)
    w.add_token_list(BL_TOKENS)
    w.add_token_types(BL_TYPES)
    w.add_token_merges(["a b", "\u0120 a", "1 2"])
    w.add_eos_token_id(0)
    w.add_add_bos_token(False)
    w.add_chat_template("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
                        "{% endfor %}")


SPM_TOKENS = ["<unk>", "<s>", "</s>", "\u2581", "a", "b", "ab", "\u2581ab", "\u2581a", "<0x63>", "c", "d"]


def sentencepiece(w, scores=True):
    w.add_tokenizer_model("llama")
    w.add_token_list(SPM_TOKENS)
    if scores:
        w.add_token_scores([0, 0, 0, -1, -2, -3, -4, -5, -6, 0, -7, -8])
    w.add_token_types([2, 3, 3, 1, 1, 1, 1, 1, 1, 6, 1, 1])
    w.add_unk_token_id(0)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    w = writer("llama_bytelevel.gguf")
    model_keys(w, "llama")
    byte_level(w, "smollm")
    model_tensors(w, tied=False)
    finish(w)

    w = writer("qwen2_sentencepiece_q8.gguf", "qwen2")
    model_keys(w, "qwen2", kv=2)
    sentencepiece(w)
    model_tensors(w, kv=2, qtype=Q.Q8_0, bias=True)
    finish(w)

    w = writer("llama_q4_1_llamabpe.gguf")
    model_keys(w, "llama")
    byte_level(w, "llama-bpe")
    model_tensors(w, qtype=Q.Q4_1)
    finish(w)

    w = writer("rope_freqs.gguf")
    model_keys(w, "llama", hidden=64, heads=2)
    f = 1.0 / (10000.0 ** (np.arange(0, 32, 2, dtype=np.float32) / 32))  # the file's rope base
    wl = 2 * np.pi / f
    s = (8192 / wl - 1) / 3
    w.add_tensor("rope_freqs.weight", np.where(wl < 2048, 1, np.where(wl > 8192, 8, 1 / ((1 - s) / 8 + s)))
                 .astype(np.float32))
    w.add_tensor("token_embd.weight", (rng.standard_normal((12, 64)) * 0.1).astype(np.float32))
    byte_level(w, "llama-bpe")
    finish(w)

    w = writer("every_type.gguf")
    w.add_custom_alignment(64)
    for qt in (Q.F32, Q.F16, Q.BF16, Q.Q8_0, Q.Q4_0, Q.Q4_1, Q.Q5_0, Q.Q5_1):
        a = (rng.standard_normal((1, 64)) * 0.3).astype(np.float32)
        q = a if qt == Q.F32 else a.astype(np.float16) if qt == Q.F16 else gguf.quants.quantize(a, qt)
        w.add_tensor(f"t.{qt.name}", q, raw_dtype=None if qt in (Q.F32, Q.F16) else qt)
    for qt in (Q.Q2_K, Q.Q3_K, Q.Q4_K, Q.Q5_K, Q.Q6_K):
        b = rng.integers(0, 256, (1, gguf.GGML_QUANT_SIZES[qt][1]), dtype=np.uint8)
        w.add_tensor(f"t.{qt.name}", b, raw_dtype=qt)
    w.add_array("misc.strings", ["x", "", "\u4f60\u597d"])
    w.add_array("misc.floats", [0.5, -1.0])
    w.add_key_value("misc.u64", 1 << 40, gguf.GGUFValueType.UINT64)
    w.add_key_value("misc.f64", -2.5, gguf.GGUFValueType.FLOAT64)
    w.add_key_value("misc.i8", -3, gguf.GGUFValueType.INT8)
    w.add_key_value("misc.bool", True, gguf.GGUFValueType.BOOL)
    finish(w)

    w = writer("spm_no_scores.gguf")
    sentencepiece(w, scores=False)
    finish(w)

    # version 2: the same layout
    b = bytearray((OUT / "spm_no_scores.gguf").read_bytes())
    b[4:8] = struct.pack("<I", 2)
    (OUT / "version2.gguf").write_bytes(bytes(b))
    # broken: truncated, a 2^40-byte string length, an unknown tensor type
    good = (OUT / "llama_bytelevel.gguf").read_bytes()
    (OUT / "truncated.gguf").write_bytes(good[: len(good) // 2])
    (OUT / "huge_string.gguf").write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", 4)
                                           + b"name" + struct.pack("<IQ", 8, 1 << 40) + b"abc")
    (OUT / "unknown_type.gguf").write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 1, 0) + struct.pack("<Q", 1)
                                            + b"w" + struct.pack("<IQIQ", 1, 4, 99, 0) + bytes(40))
    print(f"wrote {len(list(OUT.iterdir()))} files to {OUT}", file=sys.stderr)


if __name__ == "__main__":
    main()
