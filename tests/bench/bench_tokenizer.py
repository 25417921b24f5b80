#!/usr/bin/env python3
"""Tokenizer throughput: ft-train's BPE vs the `tokenizers` package, one thread each.

Trains a Llama-3-style byte-level tokenizer and a Llama-2-style SentencePiece
one (tests/system/test_tokenizer_peer.py builds them) on generated
multilingual text, then encodes the same few MB with both:
  - ours: `ft-train tokenize --model X -` on the whole file, minus the same
    command on an empty input (process start and loading tokenizer.json);
  - peer: Tokenizer.encode(text) in this process (RAYON_NUM_THREADS=1).
and per document (each generated line on its own, as datasets are encoded):
  - ours: `ft-train tokenize --batch` (one JSON request per line; the JSON
    reading and writing is counted against us);
  - peer: Tokenizer.encode_batch(lines) on one thread.
Checks the ids agree, prints MB/s and the ratio. Never fails on timing.

  FT_BUILD_DIR=build-rel python3 tests/bench/bench_tokenizer.py [MB]
A sanitizer (ASan/UBSan) build is several times slower than a release one.
"""
import os
import random
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("RAYON_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "system"))
import test_tokenizer_peer as peer  # noqa: E402


def best_of(n, fn):
    best = None
    for _ in range(n):
        t0 = time.perf_counter()
        out = fn()
        dt = time.perf_counter() - t0
        best = dt if best is None or dt < best else best
    return best, out


def main():
    mb = float(sys.argv[1]) if len(sys.argv) > 1 else 4.0
    build = Path(os.environ.get("FT_BUILD_DIR", ROOT / "build"))
    ft_train = build / "trainer" / "ft-train"
    rng = random.Random(42)
    train_lines = peer.corpus(rng, 3000)
    lines, size = [], 0
    while size < mb * 1e6:
        chunk = peer.corpus(rng, 500)
        lines += chunk
        size += sum(len(x.encode()) for x in chunk)
    text = "\n".join(lines)
    nbytes = len(text.encode())
    tmp = Path(tempfile.mkdtemp())
    (tmp / "text.txt").write_text(text)
    (tmp / "empty.txt").write_text("")
    print(f"text: {nbytes / 1e6:.2f} MB; build: {build}")
    for name, tok in (("llama3 byte-level", peer.build_bytelevel(train_lines, peer.LLAMA3_RE, "llama3")),
                      ("llama2 sentencepiece", peer.build_llama2(train_lines))):
        path = tmp / "tokenizer.json"
        tok.save(str(path))
        tok.encode_special_tokens = True

        def ours(f):
            with open(tmp / f, "rb") as inp:
                p = subprocess.run([str(ft_train), "tokenize", "--model", str(path), "--json", "-"],
                                   stdin=inp, capture_output=True, check=True)
            return p.stdout

        t_empty, _ = best_of(3, lambda: ours("empty.txt"))
        t_ours, out = best_of(3, lambda: ours("text.txt"))
        t_peer, enc = best_of(3, lambda: tok.encode(text, add_special_tokens=False))
        same = json.loads(out)["ids"] == enc.ids
        enc_ours = max(t_ours - t_empty, 1e-9)
        print(f"{name:22s} whole text   ours {nbytes / enc_ours / 1e6:7.2f} MB/s  tokenizers {nbytes / t_peer / 1e6:7.2f} MB/s"
              f"  ratio {t_peer / enc_ours:5.2f}x  (load {t_empty * 1000:.0f} ms, {len(enc.ids)} tokens,"
              f" ids {'identical' if same else 'DIFFER'})")
        reqs = (tmp / "reqs.jsonl")
        reqs.write_text("".join(json.dumps({"text": x}) + "\n" for x in lines))

        def ours_batch():
            with open(reqs, "rb") as inp:
                p = subprocess.run([str(ft_train), "tokenize", "--model", str(path), "--batch"],
                                   stdin=inp, capture_output=True, check=True)
            return p.stdout

        t_ob, out = best_of(3, ours_batch)
        t_pb, encs = best_of(3, lambda: tok.encode_batch(lines, add_special_tokens=False))
        got = [json.loads(x)["ids"] for x in out.decode().split("\n") if x]
        same = got == [e.ids for e in encs]
        t_ob = max(t_ob - t_empty, 1e-9)
        print(f"{name:22s} per document ours {nbytes / t_ob / 1e6:7.2f} MB/s  tokenizers {nbytes / t_pb / 1e6:7.2f} MB/s"
              f"  ratio {t_pb / t_ob:5.2f}x  ({len(lines)} documents, ids {'identical' if same else 'DIFFER'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
