"""Our tokenizer.json BPE against the `tokenizers` package.

Each tokenizer is trained here, with the `tokenizers` package, on a small
multilingual corpus generated here (English, Chinese customer-service text,
code, emoji, runs of spaces and newlines, numbers), laid out the way the real
model families lay out their tokenizer.json:
  - llama3:  ByteLevel BPE, Llama 3 Split regex, ignore_merges, BOS template;
  - qwen2:   the same with Qwen2's regex (single digits) and its NFC normalizer;
  - gpt2:    ByteLevel pre-tokenizer with its own regex (add_prefix_space);
  - llama2:  SentencePiece style: Prepend("▁") + Replace(" ", "▁"), byte_fallback,
             unk, decoders Replace / ByteFallback / Fuse / Strip, <s> template;
  - mistral: the llama2 model with a Metaspace pre-tokenizer and decoder
             (prepend_scheme "first", no split); metaspace_split: "always", split;
  - gpt2_lower: gpt2 behind a Sequence of NFC, Lowercase and Strip normalizers;
  - affixes: BPE with continuing_subword_prefix "##" and end_of_word_suffix "</w>";
  - bert_pre, ws_digits, split_literal: the gpt2 model behind the simpler
    pre-tokenizers (BertPreTokenizer, Whitespace, WhitespaceSplit, Digits,
    Punctuation, literal Split with the other delimiter behaviours, invert).
For >= 200 texts, ids (with and without special-token splitting, with and
without add_special_tokens) and decode output (with and without
skip_special_tokens) must be identical. Invalid UTF-8 goes in as raw bytes to
ft-train and as bytes.decode("utf-8", errors="replace") to the peer.
"""
import json
import random
import subprocess

import pytest

tokenizers = pytest.importorskip("tokenizers")
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers  # noqa: E402
from tokenizers import pre_tokenizers, processors, trainers  # noqa: E402

LLAMA3_RE = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
             r"|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_RE = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
            r"|\s*[\r\n]+|\s+(?!\S)|\s+")

EN = ("the order shipped yesterday and should arrive within three business days . "
      "I'm sorry you're having trouble, we'll fix it . They've asked what it'd cost "
      "Refund REQUEST for invoice please call support about your account password reset").split()
ZH = ["您好", "请问", "有什么", "可以", "帮您", "的吗", "订单", "已经", "发货", "退款", "申请", "客服",
      "谢谢", "您的", "耐心", "等待", "物流", "信息", "查询", "会员", "积分", "优惠券", "地址", "修改"]
CODE = ["def main(argc, argv):\n    return 0\n", "for (int i = 0; i < n; i++) {\n\tx[i] += 1;\n}\n",
        "if x == None:\n        raise ValueError('bad')\n", "const s = `${a}-${b}`;  // done\n",
        "SELECT id, name FROM users WHERE id = 42;\n", "    print(f\"{x!r:>10}\")\n"]
EMOJI = ["😀", "👍", "🎉", "❤️", "🤖", "👨‍👩‍👧", "🇫🇷", "✅", "🔥"]
SPECIALS3 = ["<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>", "<|start_header_id|>",
             "<|end_header_id|>"]


def corpus(rng, n):
    lines = []
    for i in range(n):
        k = i % 6
        if k == 0:
            lines.append(" ".join(rng.choice(EN) for _ in range(rng.randint(3, 20))))
        elif k == 1:
            lines.append("".join(rng.choice(ZH) for _ in range(rng.randint(2, 12))) + rng.choice("，。？！"))
        elif k == 2:
            lines.append(rng.choice(CODE))
        elif k == 3:
            lines.append(" ".join(rng.choice(EN + EMOJI) for _ in range(rng.randint(2, 10))))
        elif k == 4:
            lines.append(f"order #{rng.randint(0, 10**9)} costs ${rng.randint(0, 99999)}.{rng.randint(0, 99):02d}"
                         f" on 2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}")
        else:
            lines.append(rng.choice(EN) + " " * rng.randint(1, 6) + rng.choice(ZH) + "\n" * rng.randint(1, 4)
                         + "\t" * rng.randint(0, 2) + rng.choice(EN))
    return lines


def sample_texts(rng):
    edge = ["", " ", "  ", "     ", "\n", "\n\n\n", "\r\n", " \n ", "\t\t", "a", "A", "é", "中", "😀",
            "Hello world", " Hello", "Hello ", "hello  world", "hello   \n  world", "x \n\n y",
            "I'M HERE'S THEY'LL 'S 'sup", "don't won't can't", "'", "''", "'ll", "ſ", "'ſ",
            "12345678901", "1 22 333 4444", "3.14159", "٣٤٥ ①②③ Ⅻ", "a1b2c3", "foo_bar_baz",
            "mixed 中文 and English 😀 ok", "日本語のテキスト", "Ελληνικά κείμενο", "Русский текст",
            "عربي", "한국어 텍스트", "e\u0301 (combining)", "\u00a0nbsp\u00a0", "\u3000全角空格\u3000",
            "\u2028line sep", "cafe\u0301 re\u0301sume\u0301", "\u1100\u1161\u11a8 \u1112\u1161\u11ab",
            "\u212b \u2126 \u1e0a\u0323 \u1e9b\u0323 a\u0328\u0301 \u0958 \u0344", "\u0f73 \u09c7\u09be",
            "Unicode 15/16 letters a\U00031350b a\U000105c0b \U00011f04\U00011f50 \U0002ebf0",
            "\u0130STANBUL \u03a3\u0391\u03a3 \u1e9e \u01c4 \u2126 \u212a FINAL\u03a3", "\u0178\u00c0\u0410\u10a0", "zero\u200bwidth", "\ufeffbom", "tab\tsep\tvalues", "trailing spaces   ",
            "   leading", "!!!???...", "a.b,c;d:e", "    def f():\n        pass\n", "x" * 300,
            "supercalifragilisticexpialidocious" * 20, "ab" * 500, "中文" * 300, "😀" * 100,
            "<0x41>", "▁", "▁▁ ▁", "Ġ", "ĠĠ", "<unk>", "<s>", "</s>", "<s></s><s>", " <s> ",
            "hi<s>there", "hi <s> there", "<s>Hello world", "</s> hi", "<|eot_id|>Hi", " <s>x", "<|begin_of_text|>Hello", "a<|eot_id|>b",
            "<|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>", "<|begin_of_text",
            "<tool>call</tool>", "x<tool>y", "ACME Corp", "call ACME Corp now", "acme corp",
            "ACME  Corp", "ACME Corporation", "xACME Corp", " <mask> ", "a <mask>b", "a<mask> b", "<mask>",
            "[[Tag]] [[Tag]]x x[[Tag]]", "\x00\x01\x7f", "a\x1cb\x1f c\u180e d\u2060", "~`^", "€100", "¿Qué?"]
    lines = corpus(rng, 150)
    # random mixes of the characters and tokens the matchers treat specially
    pool = [" ", " ", "  ", "\n", "\r", "\r\n", "\t", "\u00a0", "\u3000", "\u2028", "\u0085", "a", "Z",
            "é", "中", "1", "22", "٣", "①", "'", "s", "S", "t", "re", "VE", "l", "L", "D", "m", "ſ", "!", "_",
            ".", "😀", "\u0301", "<", "|", ">", "▁", "x", "<s>", "</s>", "<|eot_id|>", "<mask>", "[[Tag]]",
            "<tool>", "ACME Corp", "\ufffd", "\x0b", "\x0c", "€", "e\u0301", "\u0323", "\u0307", "\u1100", "\u1161",
            "\u11a8", "\uac00", "\u212b", "\u1e0a", "\u0344", "\u0958", "\u05b0", "\u0591"]
    mixes = ["".join(rng.choice(pool) for _ in range(rng.randint(1, 25))) for _ in range(250)]
    long_text = "\n".join(corpus(random.Random(7), 400))[:10000]
    return edge + lines + mixes + [long_text]


BAD_UTF8 = [b"\xff", b"abc\xc3", b"\xe2\x82", b"\xc0\x80", b"\xed\xa0\x80x", b"\xf4\x90\x80\x80",
            b"ok \xe4\xb8 \xe4\xb8\xad", b"\x80\x80abc", b"\xf0\x9f\x98", b"caf\xe9"]


def add_extra_tokens(tok, specials):
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in specials])
    tok.add_tokens([AddedToken("<tool>", special=False, normalized=False),
                    AddedToken("</tool>", special=False, normalized=False)])
    tok.add_special_tokens([AddedToken("<mask>", lstrip=True, rstrip=True, special=True, normalized=False)])
    tok.add_tokens([AddedToken("[[Tag]]", single_word=True, normalized=False)])
    tok.add_tokens([AddedToken("ACME Corp", normalized=True)])


def build_bytelevel(lines, regex, kind):
    tok = Tokenizer(models.BPE(ignore_merges=(kind != "gpt2")))
    if kind == "qwen2":
        tok.normalizer = normalizers.NFC()
    if kind == "gpt2":
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True, use_regex=True)
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
    else:
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(regex), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    tr = trainers.BpeTrainer(vocab_size=1200, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                             special_tokens=SPECIALS3, show_progress=False)
    tok.train_from_iterator(lines, tr)
    add_extra_tokens(tok, [])
    if kind != "gpt2":
        bos = tok.token_to_id("<|begin_of_text|>")
        tok.post_processor = processors.Sequence([
            processors.ByteLevel(trim_offsets=False),
            processors.TemplateProcessing(single="<|begin_of_text|> $A", pair="<|begin_of_text|> $A $B",
                                          special_tokens=[("<|begin_of_text|>", bos)])])
    return tok


def build_affixes(lines):
    """BPE with continuing_subword_prefix and end_of_word_suffix (byte-level words)."""
    tok = Tokenizer(models.BPE(continuing_subword_prefix="##", end_of_word_suffix="</w>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tr = trainers.BpeTrainer(vocab_size=1500, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                             continuing_subword_prefix="##", end_of_word_suffix="</w>", show_progress=False)
    tok.train_from_iterator(lines, tr)
    add_extra_tokens(tok, [])
    return tok


def build_llama2(lines):
    # Train the merges with a Metaspace pre-tokenizer (so they stay inside
    # words, as SentencePiece's do), then lay the model out as Llama 2 does.
    t0 = Tokenizer(models.BPE())
    t0.pre_tokenizer = pre_tokenizers.Metaspace()
    tr = trainers.BpeTrainer(vocab_size=900, limit_alphabet=150, show_progress=False)
    t0.train_from_iterator(lines, tr)
    m = json.loads(t0.to_str())["model"]
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    for b in range(256):
        vocab[f"<0x{b:02X}>"] = len(vocab)
    for tkn, _ in sorted(m["vocab"].items(), key=lambda kv: kv[1]):
        vocab.setdefault(tkn, len(vocab))
    merges = [tuple(x.split(" ")) if isinstance(x, str) else tuple(x) for x in m["merges"]]
    tok = Tokenizer(models.BPE(vocab, merges, unk_token="<unk>", fuse_unk=True, byte_fallback=True))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                     decoders.Strip(" ", 1, 0)])
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in ["<unk>", "<s>", "</s>"]])
    add_extra_tokens(tok, [])
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A $B",
                                                       special_tokens=[("<s>", 1)])
    return tok


def build_mistral(llama2):
    j = json.loads(llama2.to_str())
    j["normalizer"] = None
    j["pre_tokenizer"] = {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": False}
    j["decoder"] = {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": False}
    return Tokenizer.from_str(json.dumps(j))


def with_json(tok, **changes):
    """A copy of tok with top-level tokenizer.json fields replaced."""
    j = json.loads(tok.to_str())
    j.update(changes)
    return Tokenizer.from_str(json.dumps(j))


@pytest.fixture(scope="module")
def peers(tmp_path_factory):
    rng = random.Random(1234)
    lines = corpus(rng, 1500)
    toks = {
        "llama3": build_bytelevel(lines, LLAMA3_RE, "llama3"),
        "qwen2": build_bytelevel(lines, QWEN2_RE, "qwen2"),
        "gpt2": build_bytelevel(lines, None, "gpt2"),
    }
    toks["llama2"] = build_llama2(lines)
    toks["affixes"] = build_affixes(lines)
    bl = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}
    seq = lambda *p: {"type": "Sequence", "pretokenizers": list(p)}  # noqa: E731
    toks["bert_pre"] = with_json(toks["gpt2"], pre_tokenizer=seq({"type": "BertPreTokenizer"}, bl))
    toks["ws_digits"] = with_json(toks["gpt2"], pre_tokenizer=seq(
        {"type": "Whitespace"}, {"type": "Digits", "individual_digits": True}, bl))
    toks["split_literal"] = with_json(toks["gpt2"], pre_tokenizer=seq(
        {"type": "Split", "pattern": {"String": "e"}, "behavior": "MergedWithNext", "invert": False},
        {"type": "Split", "pattern": {"String": " "}, "behavior": "Contiguous", "invert": True},
        {"type": "WhitespaceSplit"},
        {"type": "Punctuation", "behavior": "MergedWithPrevious"},
        {"type": "Digits", "individual_digits": False}, bl))
    toks["mistral"] = build_mistral(toks["llama2"])
    meta = {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always", "split": True}
    toks["metaspace_split"] = with_json(toks["llama2"], normalizer=None, pre_tokenizer=meta, decoder=meta)
    toks["gpt2_lower"] = with_json(toks["gpt2"], normalizer={"type": "Sequence", "normalizers": [
        {"type": "NFC"}, {"type": "Lowercase"}, {"type": "Strip", "strip_left": True, "strip_right": True}]})
    d = tmp_path_factory.mktemp("tok")
    paths = {}
    for name, tok in toks.items():
        p = d / f"{name}.json"
        tok.save(str(p))
        paths[name] = p
    return toks, paths


def run_batch(build_dir, path, requests):
    inp = "".join(json.dumps(r) + "\n" for r in requests)
    p = subprocess.run([str(build_dir / "trainer" / "ft-train"), "tokenize", "--model", str(path), "--batch"],
                       input=inp, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    out = [json.loads(line) for line in p.stdout.split("\n") if line]
    assert len(out) == len(requests), p.stderr
    return out


MODES = [(split, add) for split in (True, False) for add in (True, False)]


@pytest.mark.parametrize("name", ["llama3", "qwen2", "gpt2", "llama2", "mistral", "metaspace_split",
                                  "gpt2_lower", "affixes", "bert_pre", "ws_digits", "split_literal"])
def test_encode_decode_match_peer(peers, build_dir, name):
    toks, paths = peers
    tok = toks[name]
    texts = sample_texts(random.Random(99))
    assert len(texts) >= 200
    reqs, want = [], []
    for text in texts:
        for split, add in MODES:
            tok.encode_special_tokens = not split
            ids = tok.encode(text, add_special_tokens=add).ids
            reqs.append({"text": text, "split_special": split, "add_special": add})
            want.append(("encode", text, split, add, ids))
    for raw in BAD_UTF8:
        tok.encode_special_tokens = False
        ids = tok.encode(raw.decode("utf-8", errors="replace"), add_special_tokens=True).ids
        reqs.append({"hex": raw.hex(), "split_special": True, "add_special": True})
        want.append(("encode-bytes", raw, True, True, ids))
    tok.encode_special_tokens = False
    # decode: every encoding above, plus id lists the encoder never makes
    enc_ids = [w[4] for w in want]
    extra = [[], [0], list(range(0, 50)), list(range(tok.get_vocab_size() - 40, tok.get_vocab_size() + 3)),
             [5, 10**6, 7]]
    n_enc = len(reqs)
    for ids in enc_ids + extra:
        for skip in (False, True):
            reqs.append({"decode": ids, "skip_special": skip})
            want.append(("decode", ids, skip, None, tok.decode(ids, skip_special_tokens=skip)))
    got = run_batch(build_dir, paths[name], reqs)
    bad = []
    for i, (w, g) in enumerate(zip(want, got)):
        if i < n_enc:
            if g.get("ids") != w[4]:
                bad.append(f"{w[0]} {w[1]!r:.80} split={w[2]} add={w[3]}: want {w[4][:30]} got {g}")
        elif g.get("text") != w[4]:
            bad.append(f"decode {w[1][:20]} skip={w[2]}: want {w[4]!r:.80} got {g}")
    assert not bad, f"{len(bad)} mismatches, first ones:\n" + "\n".join(bad[:15])


def test_tokens_match_peer(peers, build_dir):
    """The token strings (id -> token, added tokens included) agree too."""
    toks, paths = peers
    texts = sample_texts(random.Random(5))[:120]
    for name, tok in toks.items():
        tok.encode_special_tokens = False
        got = run_batch(build_dir, paths[name], [{"text": t, "split_special": True, "add_special": True,
                                                  "tokens": True} for t in texts])
        for t, g in zip(texts, got):
            assert g["tokens"] == [tok.id_to_token(i) for i in tok.encode(t).ids], (name, t)


def test_model_folder_matches_transformers(peers, build_dir, tmp_path):
    """tokenizer_config.json: bos / eos / pad ids and chat template as transformers reads them."""
    transformers = pytest.importorskip("transformers")
    toks, paths = peers
    cases = {
        "llama3": {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>", "pad_token": None,
                   "chat_template": "{% for m in messages %}{{ m['content'] }}{% endfor %}"},
        "llama2": {"bos_token": {"content": "<s>", "__type": "AddedToken"}, "eos_token": "</s>",
                   "pad_token": "<unk>", "add_bos_token": True, "tokenizer_class": "LlamaTokenizer",
                   "chat_template": [{"name": "default", "template": "{{ bos_token }}x"},
                                     {"name": "tool_use", "template": "y"}]},
    }
    for name, cfg in cases.items():
        d = tmp_path / name
        d.mkdir()
        (d / "tokenizer.json").write_text(paths[name].read_text())
        (d / "tokenizer_config.json").write_text(json.dumps(cfg))
        hf = transformers.AutoTokenizer.from_pretrained(str(d))
        got = run_batch(build_dir, d, [{"info": True}, {"text": "hi there", "add_special": True}])
        info = got[0]
        assert info["vocab_size"] == toks[name].get_vocab_size(with_added_tokens=True) == len(hf)
        assert info["bos_id"] == hf.bos_token_id
        assert info["eos_id"] == hf.eos_token_id
        assert info["pad_id"] == (hf.pad_token_id if hf.pad_token_id is not None else -1)
        assert got[1]["ids"] == hf("hi there").input_ids
        assert info["adds_bos"] == (got[1]["ids"][0] == hf.bos_token_id)
        want_t = hf.chat_template if isinstance(hf.chat_template, str) else None
        if isinstance(cfg["chat_template"], list):
            want_t = cfg["chat_template"][0]["template"]
            assert "{{ bos_token }}x" in str(hf.chat_template)
        assert info["chat_template"] == want_t
