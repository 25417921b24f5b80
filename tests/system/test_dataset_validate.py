"""`ft-train validate` on good and bad JSONL files.

The model folder holds a byte-level BPE trained here with the `tokenizers`
package and a chatml chat template with {% generation %} markers around what
ftplat trains, so transformers is the peer for the statistics: the token
total is the sum of apply_chat_template(tokenize=True) lengths and the
trained count the sum of its assistant masks. Every error of the bad file is
asserted with its line number and code, in the text and the --json output.
A 200 MB file is validated in bounded memory (peak RSS of the child below
64 MiB; the ASan allocator's quarantine is capped at 1 MiB for that run, as
it would otherwise hold 256 MiB of freed memory by design).
"""
import json
import random
import resource
import subprocess
import sys

import pytest

tokenizers = pytest.importorskip("tokenizers")
transformers = pytest.importorskip("transformers")
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers  # noqa: E402

CHATML_GEN = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' }}"
    "{% if message['role'] == 'assistant' %}{% generation %}{{ message['content'] + '<|im_end|>' }}"
    "{% endgeneration %}{% else %}{{ message['content'] + '<|im_end|>' }}{% endif %}{{ '\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
WORDS = ("the order shipped yesterday and should arrive within three business days refund "
         "card invoice password reset café 中文 😀").split()


def conv(rng, n_turns=1, system=True):
    m = [{"role": "system", "content": "You are a support bot."}] if system else []
    for _ in range(n_turns):
        m.append({"role": "user", "content": " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 30)))})
        m.append({"role": "assistant", "content": " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 40)))})
    return m


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    rng = random.Random(0)
    corpus = [" ".join(rng.choice(WORDS) for _ in range(30)) for _ in range(200)]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=500, show_progress=False,
                                                        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in SPECIALS])
    d = tmp_path_factory.mktemp("model")
    tok.save(str(d / "tokenizer.json"))
    cfg = {"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": None, "eos_token": "<|im_end|>",
           "chat_template": CHATML_GEN}
    (d / "tokenizer_config.json").write_text(json.dumps(cfg))
    return d


@pytest.fixture(scope="module")
def peer(model):
    return transformers.AutoTokenizer.from_pretrained(str(model))


def ft_train(build_dir, *args, env=None):
    return subprocess.run([str(build_dir / "trainer" / "ft-train"), *map(str, args)],
                          capture_output=True, text=True, timeout=300, env=env)


def write_lines(path, lines):
    with open(path, "wb") as f:
        for line in lines:
            f.write(line if isinstance(line, bytes) else line.encode())
            f.write(b"\n")
    return path


def test_good_file_statistics_match_transformers(build_dir, tmp_path, model, peer):
    rng = random.Random(1)
    convs = [conv(rng, n_turns=1 + i % 3, system=i % 2 == 0) for i in range(40)]
    convs[5] = conv(rng, n_turns=2, system=False)
    convs[5][1]["weight"] = 0  # the first assistant turn is not trained
    convs[6][-1]["weight"] = 1
    path = write_lines(tmp_path / "good.jsonl", [json.dumps({"messages": c}) for c in convs])
    total = trained = longest = 0
    roles = {"system": 0, "user": 0, "assistant": 0}
    for c in convs:
        out = peer.apply_chat_template([{"role": m["role"], "content": m["content"]} for m in c],
                                       tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
        ids, mask = list(out["input_ids"]), list(out["assistant_masks"])
        # weight 0 takes that assistant message out of the mask: drop its span
        for k, m in enumerate(c):
            if m.get("weight") == 0:
                prefix = peer.apply_chat_template([{"role": x["role"], "content": x["content"]} for x in c[:k]],
                                                  tokenize=True, return_dict=True)["input_ids"]
                upto = peer.apply_chat_template([{"role": x["role"], "content": x["content"]} for x in c[:k + 1]],
                                                tokenize=True, return_dict=True)["input_ids"]
                for j in range(len(prefix), len(upto)):
                    mask[j] = 0
        total += len(ids)
        trained += sum(mask)
        longest = max(longest, len(ids))
        for m in c:
            roles[m["role"]] += 1
    p = ft_train(build_dir, "validate", path, "--model", model, "--json", "--max-seq-len", 4096)
    rep = json.loads(p.stdout)
    assert p.returncode == 0, p.stdout + p.stderr
    assert rep["ok"] is True and rep["errors"] == 0 and rep["issues"] == []
    assert rep["format"] == "messages" and rep["method"] == "sft" and rep["template"] == "chatml"
    assert rep["rows"] == 40 and rep["lines"] == 40
    st = rep["stats"]
    assert st["tokens_total"] == total
    assert st["tokens_trained"] == trained
    assert st["max_len"] == longest
    assert abs(st["mean_len"] - total / 40) < 1e-9
    assert st["roles"] == roles


def test_weight_zero_only_turn_is_reported(build_dir, tmp_path, model):
    row = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo", "weight": 0}]}
    path = write_lines(tmp_path / "w.jsonl", [json.dumps(row)])
    p = ft_train(build_dir, "validate", path, "--model", model)
    assert p.returncode == 1
    assert "error: line 1: no token is trained (every assistant message has weight 0) [no_trained_tokens]" in p.stdout


LATIN1 = b'{"messages": [{"role": "user", "content": "caf\xe9"}]}'  # a latin-1 byte


def test_bad_file_every_error_with_line(build_dir, tmp_path, model, peer):
    ok = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}
    long_msgs = [{"role": "user", "content": "refund " * 50}, {"role": "assistant", "content": "ok"}]
    n_long = len(peer.apply_chat_template(long_msgs, tokenize=True, return_dict=True)["input_ids"])
    assert n_long > 64
    lines = [
        json.dumps(ok),                                                               # 1
        '{"messages": "hi"}',                                                         # 2
        "",                                                                           # 3
        '{"messages": [{"role": "tool", "content": "x"}, {"role": "assistant", "content": "y"}]}',  # 4
        '{"messages": [{"role": "user", "content": "only a question"}]}',            # 5
        LATIN1,                                                                       # 6
        '{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": ""}]}',  # 7
        json.dumps({"messages": long_msgs}),                                          # 8
        '{"messages": [}',                                                            # 9
        '{"text": "plain"}',                                                          # 10
        '{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a", "weight": 2}]}',  # 11
        '{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a", "weight": 0}]}',  # 12
        '{"messages": [{"role": "user", "content": "q"}, {"content": "a"}]}',         # 13
        json.dumps(ok),                                                               # 14
    ]
    path = write_lines(tmp_path / "bad.jsonl", lines)
    want = [
        (2, "invalid_type", 'line 2: "messages" must be a list (got string)'),
        (3, "blank_line", "line 3: blank line: every line must hold one JSON object (remove it)"),
        (4, "unknown_role", 'line 4: "messages[0].role" is "tool": must be one of system, user, assistant'),
        (5, "no_assistant_turn", 'line 5: "messages" has no assistant message: nothing to train on'),
        (6, "invalid_utf8", f"line 6: not valid UTF-8 at byte offset {LATIN1.index(0xe9)} (byte 0xe9)"),
        (7, "empty_content", 'line 7: "messages[1].content" is empty'),
        (8, "too_long", f"line 8: {n_long} tokens after tokenization, longer than the limit of 64 (max_seq_len)"),
        (9, "invalid_json", "line 9: invalid JSON at column 15: "),
        (10, "mixed_formats", 'line 10: row is in the "text" format but the file is in the "messages" format'),
        (11, "invalid_weight", 'line 11: "messages[1].weight" must be 0 or 1 (got 2)'),
        (12, "no_trained_tokens", "line 12: no token is trained (every assistant message has weight 0)"),
        (13, "missing_field", 'line 13: "messages[1].role" is required'),
    ]
    p = ft_train(build_dir, "validate", path, "--model", model, "--max-seq-len", 64)
    assert p.returncode == 1
    errs = [ln for ln in p.stdout.splitlines() if ln.startswith("error: ")]
    assert len(errs) == len(want), p.stdout
    for got, (line, code, msg) in zip(errs, want):
        assert got.startswith("error: " + msg), got
        assert got.endswith(f"[{code}]"), got
    assert "valid rows: 2\n" in p.stdout and "errors: 12\n" in p.stdout
    assert "result: the file is not usable" in p.stdout

    p = ft_train(build_dir, "validate", path, "--model", model, "--max-seq-len", 64, "--json")
    assert p.returncode == 1
    rep = json.loads(p.stdout)
    assert rep["ok"] is False and rep["errors"] == 12 and rep["rows"] == 2 and rep["lines"] == 14
    assert [(i["line"], i["code"]) for i in rep["issues"]] == [(ln, c) for ln, c, _ in want]
    for i, (_, _, msg) in zip(rep["issues"], want):
        assert i["message"].startswith(msg)


def test_error_list_is_capped_but_counted(build_dir, tmp_path):
    lines = ['{"text": 1}' if i % 3 == 0 else '{"text": "ok"}' for i in range(600)]
    path = write_lines(tmp_path / "many.jsonl", lines)
    p = ft_train(build_dir, "validate", path, "--json")
    rep = json.loads(p.stdout)
    assert p.returncode == 1
    assert rep["errors"] == 200 and len(rep["issues"]) == 100 and rep["issues_truncated"] is True
    assert rep["issues"][-1]["line"] == 298
    p = ft_train(build_dir, "validate", path)
    assert "... and 100 more errors (only the first 100 are listed)" in p.stdout


def test_preference_file_and_method(build_dir, tmp_path, model, peer):
    rows = [
        {"prompt": [{"role": "user", "content": "refund?"}],
         "chosen": [{"role": "assistant", "content": "Yes, issued."}],
         "rejected": [{"role": "assistant", "content": "No."}]},
        {"input": {"messages": [{"role": "user", "content": "hi"}]},
         "preferred_output": [{"role": "assistant", "content": "hello"}],
         "non_preferred_output": [{"role": "assistant", "content": "go away"}]},
    ]
    path = write_lines(tmp_path / "pref.jsonl", [json.dumps(rows[0])])
    p = ft_train(build_dir, "validate", path, "--model", model, "--json")
    rep = json.loads(p.stdout)
    assert p.returncode == 0, p.stdout
    assert rep["format"] == "preference" and rep["method"] == "dpo"
    # TRL's split: prompt with the generation prompt, answers after it
    full = lambda ans: peer.apply_chat_template(rows[0]["prompt"] + ans, tokenize=False)  # noqa: E731
    prompt = peer.apply_chat_template(rows[0]["prompt"], tokenize=False, add_generation_prompt=True)
    enc = lambda s: len(peer(s, add_special_tokens=False)["input_ids"])  # noqa: E731
    n_p = enc(prompt)
    n_c = enc(full(rows[0]["chosen"])[len(prompt):])
    n_r = enc(full(rows[0]["rejected"])[len(prompt):])
    assert rep["stats"]["tokens_total"] == n_p + n_c + n_r
    assert rep["stats"]["tokens_trained"] == n_c + n_r
    assert rep["stats"]["max_len"] == n_p + max(n_c, n_r)

    p = ft_train(build_dir, "validate", path, "--model", model, "--method", "sft")
    assert p.returncode == 1
    assert ('error: line 1: rows in the "preference" format are for dpo training, but the method is sft '
            "[wrong_method]") in p.stdout

    path = write_lines(tmp_path / "oai.jsonl", [json.dumps(rows[1])])
    p = ft_train(build_dir, "validate", path, "--model", model, "--method", "dpo", "--json")
    assert p.returncode == 0, p.stdout
    assert json.loads(p.stdout)["format"] == "openai_dpo"


def test_usage_and_unreadable(build_dir, tmp_path, model):
    p = ft_train(build_dir, "validate", tmp_path / "nope.jsonl")
    assert p.returncode == 2
    assert 'cannot open dataset "' in p.stderr and "No such file or directory" in p.stderr
    p = ft_train(build_dir, "validate")
    assert p.returncode == 2 and "usage: ft-train validate" in p.stderr
    path = write_lines(tmp_path / "t.jsonl", ['{"text": "hi"}'])
    p = ft_train(build_dir, "validate", path, "--method", "ppo")
    assert p.returncode == 2 and '--method must be sft or dpo (got "ppo")' in p.stderr
    p = ft_train(build_dir, "validate", path, "--model", model, "--template", "vicuna")
    assert p.returncode == 0  # a text file needs no template
    chat = write_lines(tmp_path / "c.jsonl", ['{"messages": [{"role": "user", "content": "a"}, '
                                              '{"role": "assistant", "content": "b"}]}'])
    p = ft_train(build_dir, "validate", chat, "--model", model, "--template", "vicuna")
    assert p.returncode == 1
    assert 'error: template "vicuna" is not a known chat template [unknown_template]' in p.stdout


def test_line_over_16_mib_is_reported_and_skipped(build_dir, tmp_path):
    path = tmp_path / "huge.jsonl"
    with open(path, "wb") as f:
        f.write(b'{"text": "a"}\n{"text": "' + b"x" * (17 << 20) + b'"}\n{"text": "b"}\n')
    p = ft_train(build_dir, "validate", path, "--json")
    rep = json.loads(p.stdout)
    assert p.returncode == 1
    assert rep["rows"] == 2 and rep["lines"] == 3
    assert [(i["line"], i["code"]) for i in rep["issues"]] == [(2, "line_too_long")]
    assert rep["issues"][0]["message"] == (f"line 2: {12 + (17 << 20)} bytes, longer than the limit "
                                           "of 16777216 bytes per line")


def peak_rss_kib(cmd, env, stdout_path):
    """Run cmd in a fresh Python child (stdout to stdout_path) and return
    (returncode, the peak RSS of cmd in KiB)."""
    code = ("import resource, subprocess, sys\n"
            "with open(sys.argv[1], 'w') as out:\n"
            "    p = subprocess.run(sys.argv[2:], stdout=out)\n"
            "print(p.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n")
    out = subprocess.run([sys.executable, "-c", code, str(stdout_path), *map(str, cmd)],
                         capture_output=True, text=True, env=env, timeout=600)
    rc, rss = out.stdout.split()
    return int(rc), int(rss)


RSS_CAP_KIB = 64 * 1024


def test_large_file_bounded_memory(build_dir, tmp_path, model):
    import os
    rng = random.Random(2)
    row_pool = [json.dumps({"messages": conv(rng, n_turns=2)}) + "\n" for _ in range(500)]
    big = tmp_path / "big.jsonl"
    size = 0
    with open(big, "w") as f:
        while size < 200_000_000:
            s = row_pool[size % 500]
            f.write(s)
            size += len(s.encode())
    n_rows = sum(1 for _ in open(big, "rb"))
    env = dict(os.environ, ASAN_OPTIONS="quarantine_size_mb=1:" + os.environ.get("ASAN_OPTIONS", ""))
    # The bound is on what the file adds: the program's fixed footprint (with
    # the CUDA backend linked, the CUDA libraries the loader maps and
    # relocates at start) is measured on a one-row file and taken off.
    one = tmp_path / "one.jsonl"
    one.write_text(row_pool[0])
    rc, base = peak_rss_kib([build_dir / "trainer" / "ft-train", "validate", one, "--json"], env,
                            tmp_path / "one.out")
    assert rc == 0
    # structure of all 200 MB
    rc, rss = peak_rss_kib([build_dir / "trainer" / "ft-train", "validate", big, "--json"], env,
                           tmp_path / "big.out")
    print(f"200 MB, structure: peak RSS {rss} KiB ({base} KiB for one row)")
    assert rc == 0
    assert rss - base < RSS_CAP_KIB, f"peak RSS {rss} KiB for a 200 MB file, {base} for one row"
    assert json.loads((tmp_path / "big.out").read_text())["rows"] == n_rows
    # tokenized: the first ~4 MB (tokenizing is ~1 MB/s under ASan)
    part = tmp_path / "part.jsonl"
    with open(big, "rb") as src, open(part, "wb") as dst:
        for i, line in enumerate(src):
            if i >= 4000:
                break
            dst.write(line)
    rc, rss = peak_rss_kib([build_dir / "trainer" / "ft-train", "validate", part, "--model", model],
                           env, tmp_path / "part.out")
    assert rc == 0
    rc, base_tok = peak_rss_kib([build_dir / "trainer" / "ft-train", "validate", one, "--model",
                                 model], env, tmp_path / "one_tok.out")
    print(f"{part.stat().st_size} bytes, tokenized: peak RSS {rss} KiB ({base_tok} for one row)")
    assert rc == 0
    assert rss - base_tok < RSS_CAP_KIB, f"peak RSS {rss} KiB tokenizing, {base_tok} for one row"
    big.unlink()  # 200 MB: do not leave it in pytest's kept temp folders


def test_sharegpt_and_raw_formats(build_dir, tmp_path, model, peer):
    """ShareGPT rows train exactly what the same conversations as messages train;
    raw formats count what the docs say (EOS appended, no BOS: this tokenizer adds none)."""
    rng = random.Random(3)
    convs = [conv(rng, n_turns=2) for _ in range(10)]
    names = {"system": "system", "user": "human", "assistant": "gpt"}
    msgs = write_lines(tmp_path / "m.jsonl", [json.dumps({"messages": c}) for c in convs])
    share = write_lines(tmp_path / "s.jsonl", [json.dumps(
        {"conversations": [{"from": names[m["role"]], "value": m["content"]} for m in c]}) for c in convs])
    a = json.loads(ft_train(build_dir, "validate", msgs, "--model", model, "--json").stdout)
    b = json.loads(ft_train(build_dir, "validate", share, "--model", model, "--json").stdout)
    assert a["ok"] and b["ok"] and b["format"] == "sharegpt"
    assert a["stats"] == b["stats"]

    enc = lambda s: len(peer(s, add_special_tokens=False)["input_ids"])  # noqa: E731
    rows = [{"prompt": "where is my order", "completion": " it shipped yesterday"},
            {"prompt": "refund?", "completion": " issued to your card"}]
    pc = write_lines(tmp_path / "pc.jsonl", [json.dumps(r) for r in rows])
    rep = json.loads(ft_train(build_dir, "validate", pc, "--model", model, "--json").stdout)
    assert rep["ok"] and rep["format"] == "prompt_completion"
    assert rep["stats"]["tokens_total"] == sum(enc(r["prompt"] + r["completion"] + "<|im_end|>") for r in rows)
    assert rep["stats"]["tokens_trained"] == sum(enc(r["prompt"] + r["completion"] + "<|im_end|>")
                                                 - enc(r["prompt"]) for r in rows)
