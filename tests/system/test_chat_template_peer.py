"""Our chat templates against transformers' apply_chat_template.

A small byte-level BPE tokenizer is trained here with the `tokenizers`
package, with the special tokens of every family added. For each family a
model folder gets that tokenizer.json and a tokenizer_config.json holding the
family's real Jinja chat template (as published in the model repositories'
tokenizer_config.json: Meta-Llama-3-8B-Instruct, Qwen2.5-7B-Instruct,
Mistral-7B-Instruct-v0.2, Llama-2-7b-chat) with its bos/eos tokens.
`ft-train render` must produce, for conversations with and without a system
message, multi-turn, and with add_generation_prompt, exactly the text that
transformers renders and exactly the ids that
apply_chat_template(tokenize=True) returns. The family is picked from the
Jinja text (no --template), so recognition is tested too.

Loss masks are checked against transformers as well: with a chatml template
carrying {% generation %} markers around what we train (assistant content and
<|im_end|>), apply_chat_template(return_assistant_tokens_mask=True) gives the
trained tokens, which must equal our labels != -100. The same with a
mistral template whose answers follow an untrained space: this tokenizer
merges " word" into one token, which straddles the boundary, and
transformers (char_to_token of the span's first character) and ftplat (any
trained byte) must both train it.
"""
import json
import subprocess

import pytest

tokenizers = pytest.importorskip("tokenizers")
transformers = pytest.importorskip("transformers")
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers  # noqa: E402

LLAMA3 = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = "
    "'<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim "
    "+ '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}"
    "{{ content }}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}"
)

QWEN25 = r"""{%- if tools %}
    {{- '<|im_start|>system\n' }}
    {%- if messages[0]['role'] == 'system' %}
        {{- messages[0]['content'] }}
    {%- else %}
        {{- 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.' }}
    {%- endif %}
    {{- "\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>" }}
    {%- for tool in tools %}
        {{- "\n" }}
        {{- tool | tojson }}
    {%- endfor %}
    {{- "\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n" }}
{%- else %}
    {%- if messages[0]['role'] == 'system' %}
        {{- '<|im_start|>system\n' + messages[0]['content'] + '<|im_end|>\n' }}
    {%- else %}
        {{- '<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n' }}
    {%- endif %}
{%- endif %}
{%- for message in messages %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first) or (message.role == "assistant" and not message.tool_calls) %}
        {{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>' + '\n' }}
    {%- elif message.role == "assistant" %}
        {{- '<|im_start|>' + message.role }}
        {%- if message.content %}
            {{- '\n' + message.content }}
        {%- endif %}
        {%- for tool_call in message.tool_calls %}
            {%- if tool_call.function is defined %}
                {%- set tool_call = tool_call.function %}
            {%- endif %}
            {{- '\n<tool_call>\n{"name": "' }}
            {{- tool_call.name }}
            {{- '", "arguments": ' }}
            {{- tool_call.arguments | tojson }}
            {{- '}\n</tool_call>' }}
        {%- endfor %}
        {{- '<|im_end|>\n' }}
    {%- elif message.role == "tool" %}
        {%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != "tool") %}
            {{- '<|im_start|>user' }}
        {%- endif %}
        {{- '\n<tool_response>\n' }}
        {{- message.content }}
        {{- '\n</tool_response>' }}
        {%- if loop.last or (messages[loop.index0 + 1].role != "tool") %}
            {{- '<|im_end|>\n' }}
        {%- endif %}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\n' }}
{%- endif %}
"""

MISTRAL = r"""{%- if messages[0]['role'] == 'system' %}
    {%- set system_message = messages[0]['content'] %}
    {%- set loop_messages = messages[1:] %}
{%- else %}
    {%- set loop_messages = messages %}
{%- endif %}

{{- bos_token }}
{%- for message in loop_messages %}
    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}
        {{- raise_exception('After the optional system message, conversation roles must alternate user/assistant/user/assistant/...') }}
    {%- endif %}
    {%- if message['role'] == 'user' %}
        {%- if loop.first and system_message is defined %}
            {{- ' [INST] ' + system_message + '\n\n' + message['content'] + ' [/INST]' }}
        {%- else %}
            {{- ' [INST] ' + message['content'] + ' [/INST]' }}
        {%- endif %}
    {%- elif message['role'] == 'assistant' %}
        {{- ' ' + message['content'] + eos_token}}
    {%- else %}
        {{- raise_exception('Only user and assistant roles are supported, with the exception of an initial optional system message!') }}
    {%- endif %}
{%- endfor %}
"""

LLAMA2 = (
    "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set "
    "system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% set "
    "system_message = false %}{% endif %}{% for message in loop_messages %}{% if (message['role'] == "
    "'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate "
    "user/assistant/user/assistant/...') }}{% endif %}{% if loop.index0 == 0 and system_message != "
    "false %}{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + "
    "message['content'] %}{% else %}{% set content = message['content'] %}{% endif %}{% if "
    "message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif "
    "message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}"
    "{% endfor %}"
)

# chatml with generation markers around exactly what ftplat trains
CHATML_GEN = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' }}"
    "{% if message['role'] == 'assistant' %}{% generation %}{{ message['content'] + '<|im_end|>' }}"
    "{% endgeneration %}{% else %}{{ message['content'] + '<|im_end|>' }}{% endif %}{{ '\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

# mistral with generation markers: the space before an answer is not trained,
# the answer and </s> are; this byte-level BPE merges " word" into one token,
# so tokens straddle the boundary and both sides must agree on them
MISTRAL_GEN = (
    "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}"
    "{{ ' [INST] ' + message['content'] + ' [/INST]' }}{% else %}{{ ' ' }}{% generation %}"
    "{{ message['content'] + eos_token }}{% endgeneration %}{% endif %}{% endfor %}"
)

FAMILIES = {
    # name: (template, bos, eos, expected family)
    "llama3": (LLAMA3, "<|begin_of_text|>", "<|eot_id|>", "llama3"),
    "qwen2.5": (QWEN25, None, "<|im_end|>", "chatml"),
    "mistral": (MISTRAL, "<s>", "</s>", "mistral"),
    "llama2": (LLAMA2, "<s>", "</s>", "llama2"),
}

SPECIALS = ["<unk>", "<s>", "</s>", "<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>",
            "<|end_header_id|>", "<|eot_id|>", "<|endoftext|>", "<|im_start|>", "<|im_end|>"]

CORPUS = [
    "You are a helpful assistant. Answer briefly and politely.",
    "Where is my order? It shipped yesterday and should arrive soon.",
    "Hello! How can I help you today?", "[INST] system user assistant [/INST]",
    "café ☕ naïve résumé 中文 😀", "The refund was issued to your card.\n\nThanks!",
] * 20

SYSTEM = {"role": "system", "content": "You are a terse support bot."}
CONVERSATIONS = [
    # (messages, add_generation_prompt)
    ([SYSTEM, {"role": "user", "content": "Where is my order?"},
      {"role": "assistant", "content": " It shipped yesterday. "}], False),
    ([{"role": "user", "content": "Hello!"}, {"role": "assistant", "content": "Hi, how can I help?"},
      {"role": "user", "content": "café ☕ refund\n\nplease"},
      {"role": "assistant", "content": "Done: refund issued.\n"}], False),
    ([SYSTEM, {"role": "user", "content": "Hello!"}], True),
    ([{"role": "user", "content": "  Where is 中文 my order?  "}], True),
    ([SYSTEM, {"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
      {"role": "user", "content": "c"}, {"role": "assistant", "content": "d"}], False),
]


@pytest.fixture(scope="module")
def tokenizer_json(tmp_path_factory):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=600, special_tokens=[], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(CORPUS, trainer)
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in SPECIALS])
    path = tmp_path_factory.mktemp("tok") / "tokenizer.json"
    tok.save(str(path))
    return path.read_text()


def model_dir(tmp_path, tokenizer_json, template, bos, eos):
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "tokenizer.json").write_text(tokenizer_json)
    cfg = {"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": bos, "eos_token": eos,
           "unk_token": None, "add_bos_token": False, "add_eos_token": False,
           "chat_template": template, "model_max_length": 4096}
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(cfg))
    return tmp_path


def ft_render(build_dir, mdir, messages, gen, template=None):
    cmd = [str(build_dir / "trainer" / "ft-train"), "render", "--model", str(mdir)]
    if template:
        cmd += ["--template", template]
    p = subprocess.run(cmd, input=json.dumps({"messages": messages, "add_generation_prompt": gen}),
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def peer_ids(tok, messages, gen):
    out = tok.apply_chat_template(messages, tokenize=True, add_generation_prompt=gen)
    if hasattr(out, "keys"):
        out = out["input_ids"]
    return list(out)


@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize("case", range(len(CONVERSATIONS)))
def test_render_matches_transformers(build_dir, tmp_path, tokenizer_json, family, case):
    template, bos, eos, want_family = FAMILIES[family]
    messages, gen = CONVERSATIONS[case]
    mdir = model_dir(tmp_path / family, tokenizer_json, template, bos, eos)
    tok = transformers.AutoTokenizer.from_pretrained(str(mdir))
    want_text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=gen)
    want_ids = peer_ids(tok, messages, gen)
    got = ft_render(build_dir, mdir, messages, gen)
    assert got["template"] == want_family
    assert got["text"] == want_text
    assert got["ids"] == want_ids
    # the segments tile the text
    assert "".join(s["text"] for s in got["segments"]) == want_text


def test_inst_templates_reject_unordered_roles(build_dir, tmp_path, tokenizer_json):
    messages = [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]
    for family in ("mistral", "llama2"):
        template, bos, eos, _ = FAMILIES[family]
        mdir = model_dir(tmp_path / family, tokenizer_json, template, bos, eos)
        tok = transformers.AutoTokenizer.from_pretrained(str(mdir))
        with pytest.raises(Exception, match="alternate"):
            tok.apply_chat_template(messages, tokenize=False)
        cmd = [str(build_dir / "trainer" / "ft-train"), "render", "--model", str(mdir)]
        p = subprocess.run(cmd, input=json.dumps({"messages": messages}), capture_output=True,
                           text=True, timeout=60)
        assert p.returncode == 1
        assert "message 1 is \"user\" but the %s template needs roles alternating" % family in p.stderr


@pytest.mark.parametrize("case", [0, 1, 4])
def test_loss_mask_matches_generation_markers(build_dir, tmp_path, tokenizer_json, case):
    messages, _ = CONVERSATIONS[case]
    mdir = model_dir(tmp_path / "gen", tokenizer_json, CHATML_GEN, None, "<|im_end|>")
    tok = transformers.AutoTokenizer.from_pretrained(str(mdir))
    out = tok.apply_chat_template(messages, tokenize=True, return_dict=True,
                                  return_assistant_tokens_mask=True)
    want_ids = list(out["input_ids"])
    want_mask = list(out["assistant_masks"])
    got = ft_render(build_dir, mdir, messages, False, template="chatml")
    assert got["ids"] == want_ids
    got_mask = [0 if lab == -100 else 1 for lab in got["labels"]]
    assert got_mask == want_mask
    assert [lab for lab in got["labels"] if lab != -100] == [i for i, m in zip(want_ids, want_mask) if m]


def test_loss_mask_straddling_tokens(build_dir, tmp_path, tokenizer_json):
    messages = [{"role": "user", "content": "Where is my order?"},
                {"role": "assistant", "content": "order shipped yesterday"},
                {"role": "user", "content": "and the refund?"},
                {"role": "assistant", "content": "refund issued to your card"}]
    mdir = model_dir(tmp_path / "mgen", tokenizer_json, MISTRAL_GEN, "<s>", "</s>")
    tok = transformers.AutoTokenizer.from_pretrained(str(mdir))
    out = tok.apply_chat_template(messages, tokenize=True, return_dict=True,
                                  return_assistant_tokens_mask=True)
    want_ids, want_mask = list(out["input_ids"]), list(out["assistant_masks"])
    got = ft_render(build_dir, mdir, messages, False, template="mistral")
    assert got["ids"] == want_ids
    # at least one trained token starts with the untrained space (a straddle)
    first = [i for i in range(1, len(want_mask)) if want_mask[i] and not want_mask[i - 1]]
    assert any(tok.convert_ids_to_tokens(want_ids[i]).startswith("\u0120") and
               len(tok.convert_ids_to_tokens(want_ids[i])) > 1 for i in first)
    assert [0 if lab == -100 else 1 for lab in got["labels"]] == want_mask


def test_unknown_template_lists_names(build_dir, tmp_path, tokenizer_json):
    mdir = model_dir(tmp_path / "odd", tokenizer_json, "{{ messages[0]['content'] }}", "<s>", "</s>")
    p = subprocess.run([str(build_dir / "trainer" / "ft-train"), "render", "--model", str(mdir)],
                       input=json.dumps({"messages": [{"role": "user", "content": "x"}]}),
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 1
    assert "the model's chat_template is not one of the known families" in p.stderr
    assert "llama3, chatml (qwen), mistral, llama2, alpaca, plain" in p.stderr


def test_render_lines_gives_each_conversation_its_answer_and_names_a_bad_line(build_dir, tmp_path,
                                                                               tokenizer_json):
    """ft-train render --lines: every conversation of CONVERSATIONS in one
    process, each answer what transformers renders (text and ids); a bad
    line stops the run with its number, the answers before it printed."""
    template, bos, eos, want_family = FAMILIES["qwen2.5"]
    mdir = model_dir(tmp_path / "lines", tokenizer_json, template, bos, eos)
    tok = transformers.AutoTokenizer.from_pretrained(str(mdir))
    rows = [json.dumps({"messages": m, "add_generation_prompt": g}) for m, g in CONVERSATIONS]
    cmd = [str(build_dir / "trainer" / "ft-train"), "render", "--model", str(mdir), "--lines"]
    p = subprocess.run(cmd, input="\n".join(rows) + "\n\n", capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    got = [json.loads(line) for line in p.stdout.splitlines()]
    assert len(got) == len(CONVERSATIONS)
    for (messages, gen), g in zip(CONVERSATIONS, got):
        assert g["text"] == tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=gen)
        assert g["ids"] == peer_ids(tok, messages, gen)
    bad = rows[:2] + ['{"messages": [{"role": "robot", "content": "x"}]}'] + rows[2:]
    p = subprocess.run(cmd, input="\n".join(bad) + "\n", capture_output=True, text=True, timeout=60)
    assert p.returncode == 1
    assert p.stderr.startswith('ft-train: line 3: unknown role "robot"'), p.stderr
    assert [json.loads(line)["text"] for line in p.stdout.splitlines()] == [g["text"] for g in got[:2]]
    p = subprocess.run(cmd, input=rows[0] + "\n{oops\n", capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and p.stderr.startswith("ft-train: line 2: invalid JSON"), p.stderr
