"""The engine with text: a tiny byte-level BPE tokenizer with a ChatML
template is trained here with the `tokenizers` package, beside a tiny random
Qwen2.
  - chat rows train through the dataset pipeline: the first step's loss (LoRA
    B = 0, so the base model's) equals within 1e-5 the loss PyTorch computes on
    the transformers tokenizer's encoding of the same ChatML text, with the
    assistant's content and its <|im_end|> trained (TRL's assistant-only
    convention; the newline after <|im_end|> is not trained);
  - `ft-train generate --prompt TEXT` gives the ids and the decoded text
    transformers gives (greedy);
  - `ft-train generate --batch` answers many prompts (text or ids, with a
    PEFT adapter or the base alone, in waves) in one process, each exactly as
    transformers (+ peft) answers it alone, and names a bad request's line.
"""
import contextlib
import json
import shutil
import subprocess

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")

from conftest import run  # noqa: E402

CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
          "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
USER = "my order is late, where is it?"
ASSISTANT = "thanks for waiting, it ships tomorrow"


def _setup(d):
    from tokenizers import Tokenizer, models, trainers, pre_tokenizers, decoders
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tr = trainers.BpeTrainer(vocab_size=300,
                             special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
                             initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator([USER, ASSISTANT, "hello there, how can I help you today?"] * 50, tr)
    cfg = transformers.Qwen2Config(vocab_size=tok.get_vocab_size(), hidden_size=32,
                                   intermediate_size=48, num_hidden_layers=2,
                                   num_attention_heads=4, num_key_value_heads=2,
                                   max_position_embeddings=256, tie_word_embeddings=True,
                                   use_sliding_window=False)
    torch.manual_seed(0)
    transformers.Qwen2ForCausalLM(cfg).save_pretrained(d / "model")
    tok.save(str(d / "model" / "tokenizer.json"))
    (d / "model" / "tokenizer_config.json").write_text(json.dumps(
        {"chat_template": CHATML, "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>",
         "bos_token": None, "add_bos_token": False}))
    with open(d / "chat.jsonl", "w") as f:
        for _ in range(4):
            f.write(json.dumps({"messages": [{"role": "user", "content": USER},
                                             {"role": "assistant", "content": ASSISTANT}]})
                    + "\n")


def test_generate_from_text_matches_transformers(tmp_path, build_dir):
    _setup(tmp_path)
    prompt = f"<|im_start|>user\n{USER}<|im_end|>\n<|im_start|>assistant\n"
    p = run([str(build_dir / "trainer" / "ft-train"), "generate", "--model",
             str(tmp_path / "model"), "--prompt", prompt, "--max-new-tokens", "8"])
    ours = json.loads(p.stdout)
    tok = transformers.PreTrainedTokenizerFast(
        tokenizer_file=str(tmp_path / "model" / "tokenizer.json"))
    model = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "model",
                                                              dtype=torch.float32)
    ids = tok(prompt, add_special_tokens=False, return_tensors="pt").input_ids
    with torch.no_grad():
        ref = model.generate(input_ids=ids, max_new_tokens=8, do_sample=False,
                             eos_token_id=model.config.eos_token_id, pad_token_id=0)
    want = ref[0, ids.shape[1]:].tolist()
    assert ours["ids"] == want
    assert ours["text"] == tok.decode(want, skip_special_tokens=True)


def test_generate_batch_matches_transformers_per_prompt(tmp_path, build_dir):
    peft = pytest.importorskip("peft")
    _setup(tmp_path)
    exe = str(build_dir / "trainer" / "ft-train")
    model_dir = tmp_path / "model"
    tok = transformers.PreTrainedTokenizerFast(tokenizer_file=str(model_dir / "tokenizer.json"))
    base = transformers.AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    torch.manual_seed(1)
    pm = peft.get_peft_model(base, peft.LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0,
                                                   target_modules=["q_proj", "v_proj", "down_proj"],
                                                   init_lora_weights=False))
    pm.save_pretrained(tmp_path / "adapter")
    texts = [f"<|im_start|>user\n{USER}<|im_end|>\n<|im_start|>assistant\n", "hello there",
             "<|im_start|>user\nhow can I help<|im_end|>\n<|im_start|>assistant\n", "it ships"]
    prompts = [tok(t, add_special_tokens=False).input_ids for t in texts]
    reqs = [{"prompt": texts[0]}, {"prompt_ids": prompts[1], "adapter": False},
            {"prompt_ids": prompts[2]}, {"prompt": texts[3], "adapter": False}]
    (tmp_path / "reqs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in reqs))

    def reference(ids, with_adapter):
        model = pm if with_adapter else pm.get_base_model()
        ctx = contextlib.nullcontext() if with_adapter else pm.disable_adapter()
        with torch.no_grad(), ctx:
            out = model.generate(input_ids=torch.tensor([ids]), max_new_tokens=8, do_sample=False,
                                 eos_token_id=base.config.eos_token_id, pad_token_id=0)
        return out[0, len(ids):].tolist()

    want = [reference(ids, r.get("adapter", True)) for ids, r in zip(prompts, reqs)]
    assert want[0] != reference(prompts[0], False)  # the adapter changes the answer
    for max_batch in ("1", "3", "64"):
        p = run([exe, "generate", "--model", str(model_dir), "--adapter", str(tmp_path / "adapter"),
                 "--batch", str(tmp_path / "reqs.jsonl"), "--max-new-tokens", "8", "--max-batch", max_batch])
        got = [json.loads(line) for line in p.stdout.splitlines()]
        assert [g["ids"] for g in got] == want
        assert [g["text"] for g in got] == [tok.decode(w, skip_special_tokens=True) for w in want]
    # without --adapter every request is the base's; stdin works as "-"
    p = run([exe, "generate", "--model", str(model_dir), "--batch", "-", "--max-new-tokens", "8"],
            input=json.dumps({"prompt_ids": prompts[2]}) + "\n")
    assert json.loads(p.stdout)["ids"] == reference(prompts[2], False)

    bad = [('{"prompt_ids": [1, 2], "temperature": 1}', 'line 2: unknown field "temperature"'),
           ('{"prompt_ids": [1, -2]}', 'line 2: "prompt_ids"[1] must be a token id'),
           ('{"prompt": "a", "prompt_ids": [1]}', 'line 2: a request needs exactly one of'),
           ('{"prompt_ids": [1], "adapter": true}', 'line 2: "adapter": true needs --adapter DIR'),
           ('[1, 2]', 'line 2: a request must be a JSON object'),
           ('{"prompt_ids": [1]', 'line 2: '),
           ('{"prompt_ids": []}', "prompt 2: the prompt is empty")]
    for line, msg in bad:
        p = subprocess.run([exe, "generate", "--model", str(model_dir), "--batch", "-"],
                           input='{"prompt": "hi"}\n' + line + "\n", capture_output=True, text=True)
        assert p.returncode in (1, 2) and msg in p.stderr and p.stdout == "", (line, p.stderr)
    p = subprocess.run([exe, "generate", "--model", str(model_dir), "--batch", "-"], input="\n",
                       capture_output=True, text=True)
    assert p.returncode == 2 and "standard input holds no request" in p.stderr


def test_chat_rows_train_with_assistant_only_loss(tmp_path, build_dir):
    _setup(tmp_path)
    job = {"model": str(tmp_path / "model"), "train_file": str(tmp_path / "chat.jsonl"),
           "output_dir": str(tmp_path / "out"), "method": "lora",
           "hyperparameters": {"max_steps": 2, "batch_size": 2, "shuffle": False}}
    (tmp_path / "job.json").write_text(json.dumps(job))
    p = run([str(build_dir / "trainer" / "ft-train"), "train", "--config",
             str(tmp_path / "job.json")], env={"FT_NUM_THREADS": "2"})
    steps = [json.loads(x) for x in p.stdout.splitlines() if '"type":"step"' in x]
    assert len(steps) == 2

    tok = transformers.PreTrainedTokenizerFast(
        tokenizer_file=str(tmp_path / "model" / "tokenizer.json"))
    prompt = tok(f"<|im_start|>user\n{USER}<|im_end|>\n<|im_start|>assistant\n",
                 add_special_tokens=False).input_ids
    answer = tok(f"{ASSISTANT}<|im_end|>", add_special_tokens=False).input_ids
    newline = tok("\n", add_special_tokens=False).input_ids
    ids = prompt + answer + newline
    labels = [-100] * len(prompt) + answer + [-100] * len(newline)
    model = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "model",
                                                              dtype=torch.float32)
    with torch.no_grad():
        loss = model(input_ids=torch.tensor([ids] * 2), labels=torch.tensor([labels] * 2)).loss
    assert abs(steps[0]["train_loss"] - loss.item()) <= 1e-5


def test_exit_status_tells_user_errors_from_failures(build_dir, tmp_path):
    """3 for a job whose own input is wrong (the worker does not retry it), 2 for
    a bad command line; the message names what is wrong."""
    exe = str(build_dir / "trainer" / "ft-train")
    bad_json = tmp_path / "bad.json"
    bad_json.write_text('{"model": 5}')
    p = subprocess.run([exe, "train", "--config", str(bad_json)], capture_output=True, text=True)
    assert p.returncode == 3 and '"model" must be a string (got integer)' in p.stderr, p.stderr
    missing = tmp_path / "missing.json"
    missing.write_text(json.dumps({"model": str(tmp_path / "nope"), "train_file": str(tmp_path / "x.jsonl"),
                                   "output_dir": str(tmp_path / "out")}))
    p = subprocess.run([exe, "train", "--config", str(missing)], capture_output=True, text=True)
    assert p.returncode == 3 and "nope" in p.stderr, p.stderr
    p = subprocess.run([exe, "train"], capture_output=True, text=True)
    assert p.returncode == 2


def test_progress_lines_are_json_of_any_length(tmp_path, build_dir):
    """Every progress line is one JSON object of a type ft/events.h lists,
    with strings escaped and nothing cut: an output folder whose path holds
    quotes, a backslash and over 2.2 KB of characters comes back whole in the
    checkpoint and artifact lines (the trainer once cut lines at 2 KB)."""
    _setup(tmp_path)
    deep = tmp_path
    for i in range(11):
        deep = deep / (f'q"uo\\te {i} ' + "x" * 190)
    out = deep / "out"
    assert len(str(out)) > 2200
    job = {"model": str(tmp_path / "model"), "train_file": str(tmp_path / "chat.jsonl"),
           "output_dir": str(out), "method": "lora",
           "hyperparameters": {"max_steps": 2, "batch_size": 2, "save_steps": 1}}
    (tmp_path / "job.json").write_text(json.dumps(job))
    p = run([str(build_dir / "trainer" / "ft-train"), "train", "--config",
             str(tmp_path / "job.json")], env={"FT_NUM_THREADS": "2"})
    lines = [json.loads(x) for x in p.stdout.splitlines() if x.strip()]
    types = {x["type"] for x in lines}
    assert types <= {"start", "step", "eval", "checkpoint", "artifact", "early_stop",
                     "interrupted", "done"}, types
    assert {"start", "step", "checkpoint", "artifact", "done"} <= types, types
    ck = [x for x in lines if x["type"] == "checkpoint"]
    assert ck and all(x["path"].startswith(str(out)) for x in ck)
    art = [x for x in lines if x["type"] == "artifact"]
    assert art[0]["path"] == str(out / "adapter")
    assert (out / "adapter" / "adapter_config.json").exists()
