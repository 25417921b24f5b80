"""Model folders exactly as transformers 5 saves them, read by the trainer and the API.

transformers' save_pretrained (5.x) writes, for any tokenizer without a length
limit, `"model_max_length": 1000000000000000019884624838656` in
tokenizer_config.json (an integer beyond 64 bits, which Jansson alone refuses
as "too big integer"), and the chat template in chat_template.jinja beside it
rather than in the config. The folders here are saved by transformers itself
(a tiny random Qwen2 and a byte-level tokenizer trained with `tokenizers`), and
each test first asserts the folder has that shape, so the tests cannot pass on
files that lack it:
  - the tokenizer loads, encodes as transformers does, and its chat template
    is chat_template.jinja's text;
  - `ft-train render` renders the template from chat_template.jinja exactly as
    apply_chat_template (text and ids);
  - a job's "chat_template" field names the template for a model whose
    tokenizer has none (trains; without the field the error says what to do;
    an unknown name is refused naming the field);
  - registering the folder through the API records chat_template.jinja's text.
"""
import json
import subprocess

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")

from conftest import run  # noqa: E402

CHATML = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content']"
          " + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}"
          "{% endif %}")
BIG = "1000000000000000019884624838656"
USER = "my order is late, where is it? 您好"
ASSISTANT = "thanks for waiting, it ships tomorrow"
MESSAGES = [{"role": "user", "content": USER}, {"role": "assistant", "content": ASSISTANT}]


def save_folder(d, template):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator([USER, ASSISTANT, "hello there, how can I help you today?"] * 50,
                            trainers.BpeTrainer(vocab_size=300, show_progress=False,
                                                special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
                                                initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    t = transformers.PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>",
                                             pad_token="<|endoftext|>")
    if template:
        t.chat_template = template
    t.save_pretrained(str(d))
    cfg = transformers.Qwen2Config(vocab_size=tok.get_vocab_size(), hidden_size=32, intermediate_size=48,
                                   num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                   max_position_embeddings=256, tie_word_embeddings=True,
                                   use_sliding_window=False)
    torch.manual_seed(0)
    transformers.Qwen2ForCausalLM(cfg).save_pretrained(str(d))
    # what transformers 5 wrote, and what used to break the loaders
    tc = (d / "tokenizer_config.json").read_text()
    assert f'"model_max_length": {BIG}' in tc
    assert "chat_template" not in json.loads(tc)
    assert (d / "chat_template.jinja").exists() == bool(template)
    return transformers.AutoTokenizer.from_pretrained(str(d))


def test_tokenizer_reads_big_integers_and_chat_template_jinja(build_dir, tmp_path):
    hf = save_folder(tmp_path, CHATML)
    texts = [USER, ASSISTANT, "<|im_start|>user\nhi<|im_end|>\n", "plain text 12345"]
    inp = [{"info": True}] + [{"text": t, "split_special": True, "add_special": True} for t in texts]
    p = run([str(build_dir / "trainer" / "ft-train"), "tokenize", "--model", str(tmp_path), "--batch"],
            input="".join(json.dumps(r) + "\n" for r in inp))
    out = [json.loads(x) for x in p.stdout.splitlines()]
    assert out[0]["chat_template"] == (tmp_path / "chat_template.jinja").read_text() == CHATML
    assert out[0]["eos_id"] == hf.eos_token_id
    for t, o in zip(texts, out[1:]):
        assert o["ids"] == hf.encode(t), t


def test_render_uses_chat_template_jinja(build_dir, tmp_path):
    hf = save_folder(tmp_path, CHATML)
    p = run([str(build_dir / "trainer" / "ft-train"), "render", "--model", str(tmp_path)],
            input=json.dumps({"messages": MESSAGES, "add_generation_prompt": False}))
    got = json.loads(p.stdout)
    assert got["template"] == "chatml"
    assert got["text"] == hf.apply_chat_template(MESSAGES, tokenize=False)
    ids = hf.apply_chat_template(MESSAGES, tokenize=True)
    assert got["ids"] == list(ids["input_ids"] if hasattr(ids, "keys") else ids)


def test_job_chat_template_field(build_dir, tmp_path):
    save_folder(tmp_path / "model", None)  # a tokenizer without any template
    with open(tmp_path / "chat.jsonl", "w") as f:
        for _ in range(4):
            f.write(json.dumps({"messages": MESSAGES}) + "\n")
    exe = str(build_dir / "trainer" / "ft-train")

    def train(**extra):
        job = {"model": str(tmp_path / "model"), "train_file": str(tmp_path / "chat.jsonl"),
               "output_dir": str(tmp_path / "out"), "method": "lora",
               "hyperparameters": {"max_steps": 2, "batch_size": 2}, **extra}
        (tmp_path / "job.json").write_text(json.dumps(job))
        return subprocess.run([exe, "train", "--config", str(tmp_path / "job.json")], capture_output=True,
                              text=True, timeout=300, env={"FT_NUM_THREADS": "2", "PATH": "/usr/bin:/bin"})

    p = train()
    assert p.returncode == 3 and "the model has no chat template" in p.stderr, p.stderr
    assert 'name the template in the job ("chat_template")' in p.stderr
    p = train(chat_template="gemma")
    assert p.returncode == 3
    assert '"chat_template" "gemma" is not a template ftplat renders' in p.stderr, p.stderr
    p = train(chat_template="chatml")
    assert p.returncode == 0, p.stderr
    assert len([x for x in p.stdout.splitlines() if '"type":"step"' in x]) == 2


def test_api_registers_a_transformers_folder(api_server, tmp_path):
    from api_helpers import client
    save_folder(tmp_path, CHATML)
    with client(api_server) as c:
        r = c.post("/v1/models", json={"name": "saved-by-transformers", "path": str(tmp_path)})
        assert r.status_code == 200, r.text
        assert r.json()["chat_template"] == CHATML
        assert r.json()["architecture"] == "Qwen2ForCausalLM"
