"""The customer-service dataset shipped in data/customer-service/ is well formed,
bilingual, split without leaks, consistent with its policy, and reproducible.

Plain Python only (json, re, subprocess): no server, no build, well under a
second apart from re-running generate.py.  The policy numbers are read from the
key-facts table of policy.md, so the check is against the document, not against
constants repeated here; and the same checker must find the numbers broken in the
DPO rejected answers, which shows it can fail.
"""
import importlib.util
import json
import re
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[2] / "data" / "customer-service"
GENERATED = ["policy.md", "train.jsonl", "validation.jsonl", "preference.jsonl",
             "preference_validation.jsonl", "heldout_questions.json", "corpus.txt",
             "heldout_facts.json", "train_plus.jsonl"]
CJK = re.compile(r"[\u4e00-\u9fff]")
CJK_COUNTED = re.compile(r"[\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]")


def read_jsonl(name):
    rows = []
    with open(DATA / name, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            assert line.endswith("\n"), f"{name} line {n}: no newline at the end"
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                pytest.fail(f"{name} line {n}: {e}")
    return rows


@pytest.fixture(scope="module")
def sft():
    return {s: [r["messages"] for r in read_jsonl(f"{s}.jsonl")]
            for s in ("train", "validation", "train_plus")}


@pytest.fixture(scope="module")
def dpo():
    return {s: read_jsonl(f"{s}.jsonl") for s in ("preference", "preference_validation")}


@pytest.fixture(scope="module")
def facts():
    """key -> value from the '| key | value | ... |' rows of policy.md."""
    out = {}
    for line in (DATA / "policy.md").read_text(encoding="utf-8").splitlines():
        m = re.match(r"\| ([a-z_]+) \| ([^|]+?) \|", line)
        if m and m.group(1) != "key":
            out[m.group(1)] = m.group(2)
    return out


def lang_of(text):
    return "zh" if CJK.search(text) else "en"


def test_every_sft_line_is_a_chat_ending_with_the_assistant(sft):
    assert len(sft["train"]) >= 200
    assert len(sft["validation"]) >= 30
    for split, rows in sft.items():
        for n, msgs in enumerate(rows, 1):
            roles = [m["role"] for m in msgs]
            assert set(roles) <= {"system", "user", "assistant"}, f"{split} line {n}: roles {roles}"
            assert roles[0] == "system" and roles[-1] == "assistant", f"{split} line {n}: {roles}"
            assert roles[1:] == ["user", "assistant"] * ((len(roles) - 1) // 2), f"{split} line {n}: {roles}"
            assert all(isinstance(m["content"], str) and m["content"].strip() for m in msgs)
            assert all(set(m) == {"role", "content"} for m in msgs)


def test_multi_turn_dialogues_are_present(sft):
    multi = sum(1 for msgs in sft["train"] if len(msgs) >= 5)
    assert multi >= 20, f"only {multi} multi-turn dialogues in train"


def test_both_languages_in_both_splits(sft):
    for split, rows in sft.items():
        zh = sum(1 for msgs in rows if CJK.search(msgs[1]["content"]))
        share = zh / len(rows)
        assert 0.35 <= share <= 0.65, f"{split}: {zh} of {len(rows)} dialogues are Chinese"
        # the language of a dialogue is the language of its system prompt and answers
        for msgs in rows:
            assert {lang_of(m["content"]) for m in msgs if m["role"] != "user"} == {lang_of(msgs[0]["content"])}


def test_one_fixed_system_prompt_per_language(sft, dpo):
    prompts = {msgs[0]["content"] for rows in sft.values() for msgs in rows}
    prompts |= {p["input"]["messages"][0]["content"] for rows in dpo.values() for p in rows}
    assert len(prompts) == 2
    assert {lang_of(p) for p in prompts} == {"en", "zh"}


def test_no_validation_question_is_in_train(sft, dpo):
    train_users = {m["content"] for msgs in sft["train"] for m in msgs if m["role"] == "user"}
    leaked = [m["content"] for msgs in sft["validation"] for m in msgs
              if m["role"] == "user" and m["content"] in train_users]
    assert leaked == []
    pref_train = {p["input"]["messages"][-1]["content"] for p in dpo["preference"]}
    pref_val = {p["input"]["messages"][-1]["content"] for p in dpo["preference_validation"]}
    assert pref_train.isdisjoint(pref_val)
    heldout = json.loads((DATA / "heldout_questions.json").read_text(encoding="utf-8"))
    for h in heldout:
        assert h["question"] not in train_users and h["question"] not in pref_train


def test_heldout_questions(sft):
    heldout = json.loads((DATA / "heldout_questions.json").read_text(encoding="utf-8"))
    assert [h["language"] for h in heldout] == ["en"] * 3 + ["zh"] * 3
    system = {lang_of(msgs[0]["content"]): msgs[0]["content"] for msgs in sft["train"]}
    for h in heldout:
        assert set(h) == {"language", "topic", "system", "question", "reference_answer"}
        assert lang_of(h["question"]) == lang_of(h["reference_answer"]) == h["language"]
        assert h["system"] == system[h["language"]]


def load_eval_facts():
    """deploy/eval_facts.py: the matching rule the quickstart applies."""
    spec = importlib.util.spec_from_file_location("eval_facts", DATA.parents[1] / "deploy" / "eval_facts.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_fact_matching_rule(build_dir, monkeypatch):
    # README.md "heldout_facts.json": fteval's matcher (full-width folding,
    # case, whitespace runs, no match inside a longer number or word),
    # reached through ft-eval-stats; every fact must be present
    monkeypatch.setenv("FT_EVAL_STATS_PATH", str(build_dir / "eval" / "ft-eval-stats"))
    monkeypatch.setenv("FT_TRAINER_PATH", str(build_dir / "trainer" / "ft-train"))
    ev = load_eval_facts()
    facts = [["¥99", "99元"], ["5-7", "5到7"]]
    assert ev.missing_facts("Free over ￥99; refunds in 5-7 days", facts) == []  # full-width yen
    assert ev.missing_facts("满９９元包邮，退款５到７个工作日", facts) == []  # full-width digits
    assert ev.missing_facts("free over ¥99", facts) == [1]
    assert ev.missing_facts("FREE OVER ¥99, 5-7", [["free over ¥99"], ["5-7"]]) == []  # case
    assert ev.missing_facts("within 30\n\t days", [["30 days"]]) == []  # whitespace runs
    assert ev.missing_facts("within 30days", [["30 days"]]) == [0]  # no space is not a space
    assert ev.missing_facts("5 - 7 days", [["5-7"]]) == [0]
    assert ev.missing_facts("", [["a"], ["b"]]) == [0, 1]
    assert ev.missing_facts("refunds within 130 days", [["30 days"]]) == [0]  # not inside a number


def ngrams(text, lang, n):
    t = re.sub(r"\s+", " ", unicodedata.normalize("NFKC", text).lower())
    toks = re.findall(r"[a-z0-9]+(?:'[a-z]+)?", t) if lang == "en" else re.findall(r"[a-z0-9]|[\u4e00-\u9fff]", t)
    return {tuple(toks[i:i + n]) for i in range(len(toks) - n + 1)}


def test_heldout_facts(sft, dpo, build_dir, monkeypatch):
    monkeypatch.setenv("FT_EVAL_STATS_PATH", str(build_dir / "eval" / "ft-eval-stats"))
    monkeypatch.setenv("FT_TRAINER_PATH", str(build_dir / "trainer" / "ft-train"))
    qs = json.loads((DATA / "heldout_facts.json").read_text(encoding="utf-8"))
    system = {lang_of(msgs[0]["content"]): msgs[0]["content"] for msgs in sft["train"]}
    topics = {"returns", "exchanges", "refunds", "shipping", "tracking", "cancellations", "damaged_wrong",
              "warranty", "presale", "promotions", "price_adjustment", "invoices", "contact"}
    for lang in ("en", "zh"):
        mine = [q for q in qs if q["language"] == lang]
        assert len(mine) >= 24
        assert {q["topic"] for q in mine} == topics
    assert len({q["id"] for q in qs}) == len(qs) and len({q["question"] for q in qs}) == len(qs)
    ev = load_eval_facts()
    users = [m["content"] for split in sft.values() for msgs in split for m in msgs if m["role"] == "user"]
    users += [m["content"] for split in dpo.values() for p in split for m in p["input"]["messages"]
              if m["role"] == "user"]
    seen = {"en": set(), "zh": set()}
    for u in users:
        lang = lang_of(u)
        seen[lang] |= ngrams(u, lang, 5 if lang == "en" else 6)
    for q in qs:
        assert set(q) == {"id", "language", "topic", "scenario", "system", "question", "required_facts",
                          "fact_names", "reference_answer"}
        assert lang_of(q["question"]) == lang_of(q["reference_answer"]) == q["language"], q["id"]
        assert q["system"] == system[q["language"]]
        assert q["required_facts"] and len(q["fact_names"]) == len(q["required_facts"])
        assert all(f and all(isinstance(s, str) and s.strip() for s in f) for f in q["required_facts"])
        # worded unlike every user turn of the other files
        shared = ngrams(q["question"], q["language"], 5 if q["language"] == "en" else 6) & seen[q["language"]]
        assert not shared, f"{q['id']} shares {sorted(shared)[0]} with a dataset user turn"
        # the policy answer has every fact, and an answer about another topic lacks one
        assert ev.missing_facts(q["reference_answer"], q["required_facts"]) == [], q["id"]
    wrong = 0
    for q in qs:
        other = next(o for o in qs if o["language"] == q["language"] and o["topic"] != q["topic"]
                     and o["fact_names"] != q["fact_names"])
        wrong += bool(ev.missing_facts(other["reference_answer"], q["required_facts"]))
    assert wrong >= 40, f"only {wrong} of {len(qs)} off-topic answers are judged wrong"


def test_every_heldout_question_has_a_training_twin(build_dir, monkeypatch):
    """eval_facts.py --training-twins: for each held-out question, a distinct
    training dialogue of its language whose answer holds the same facts."""
    monkeypatch.setenv("FT_EVAL_STATS_PATH", str(build_dir / "eval" / "ft-eval-stats"))
    monkeypatch.setenv("FT_TRAINER_PATH", str(build_dir / "trainer" / "ft-train"))
    ev = load_eval_facts()
    qs = json.loads((DATA / "heldout_facts.json").read_text(encoding="utf-8"))
    train = [json.loads(line)["messages"] for line in
             (DATA / "train_plus.jsonl").read_text(encoding="utf-8").splitlines()]
    answer_of = {m[1]["content"]: m[2]["content"] for m in train if len(m) == 3}
    twins = ev.training_twins(qs, DATA / "train_plus.jsonl")
    assert len(twins) == len(qs) and len({t["question"] for t in twins}) == len(qs)
    for q, t in zip(qs, twins):
        assert t["id"] == q["id"] + "-train" and t["required_facts"] == q["required_facts"]
        assert lang_of(t["question"]) == q["language"] and t["question"] in answer_of
        assert ev.missing_facts(answer_of[t["question"]], q["required_facts"]) == [], q["id"]


def test_dpo_lines_have_the_openai_shape(dpo):
    assert len(dpo["preference"]) >= 60
    assert len(dpo["preference_validation"]) >= 10
    for split, rows in dpo.items():
        for n, p in enumerate(rows, 1):
            assert set(p) == {"input", "preferred_output", "non_preferred_output"}, f"{split} line {n}"
            msgs = p["input"]["messages"]
            assert [m["role"] for m in msgs] == ["system", "user"], f"{split} line {n}"
            for key in ("preferred_output", "non_preferred_output"):
                out = p[key]
                assert isinstance(out, list) and len(out) == 1 and out[0]["role"] == "assistant", f"{split} line {n}"
                assert isinstance(out[0]["content"], str) and out[0]["content"]
            assert p["preferred_output"][0]["content"] != p["non_preferred_output"][0]["content"]


# ---------------------------------------------------------------- policy invariants
def sentences(text):
    return [s for s in re.split(r"(?<=[.!?。！？；])\s*", text) if s]


def policy_violations(text, facts):
    """(checked, wrong) lists of (rule, found) for the numbers one answer quotes."""
    checked, wrong = [], []

    def expect(rule, found, want):
        checked.append(rule)
        if str(found) != str(want):
            wrong.append((rule, found, want))

    for s in sentences(text):
        low = s.lower()
        if re.search(r"return|exchange", low):
            for d in re.findall(r"within (\d+) days of delivery", s):
                want = facts["electronics_return_window_days"] if "electronic" in low else facts["return_window_days"]
                expect("return window", d, want)
        if re.search(r"[退换]", s):
            for d in re.findall(r"签收后(\d+)天内", s):
                want = facts["electronics_return_window_days"] if "数码" in s else facts["return_window_days"]
                expect("return window", d, want)
        if "refund" in low:
            for d in re.findall(r"(\d+-\d+) business days", s):
                expect("refund time", d, facts["refund_business_days"])
        if "退款" in s:
            for d in re.findall(r"(\d+-\d+)个工作日", s):
                expect("refund time", d, facts["refund_business_days"])
        for d in re.findall(r"[Ss]tandard shipping takes (\S+) business days", s):
            expect("standard shipping", d, facts["standard_shipping_business_days"])
        for d in re.findall(r"标准快递(\d+-\d+)个工作日", s):
            expect("standard shipping", d, facts["standard_shipping_business_days"])
        for d in re.findall(r"Express(?: shipping)? takes (\S+) business days", s) + re.findall(r"加急快递(\S+?)个工作日", s):
            expect("express shipping", d, facts["express_shipping_business_days"])
        for d in re.findall(r"¥(\d+) or more", s) + re.findall(r"满¥(\d+)", s):
            expect("free shipping threshold", d, facts["free_shipping_over_yuan"])
        for d in re.findall(r"within (\d+) hours", s) + re.findall(r"(\d+)小时内", s):
            expect("damage report window", d, facts["damage_report_hours"])
    return checked, wrong


def test_answers_quote_the_policy_numbers(sft, dpo, facts):
    assert facts["return_window_days"] == "30" and facts["refund_business_days"] == "5-7"  # the table parsed
    answers = [m["content"] for rows in sft.values() for msgs in rows for m in msgs if m["role"] == "assistant"]
    answers += [p["preferred_output"][0]["content"] for rows in dpo.values() for p in rows]
    answers += [h["reference_answer"] for h in json.loads((DATA / "heldout_questions.json").read_text("utf-8"))]
    rules, bad = [], []
    for a in answers:
        checked, wrong = policy_violations(a, facts)
        rules += checked
        bad += [(a, w) for w in wrong]
    assert bad == []
    for rule, at_least in (("return window", 40), ("refund time", 20), ("standard shipping", 10),
                           ("express shipping", 10), ("free shipping threshold", 10), ("damage report window", 20)):
        assert rules.count(rule) >= at_least, f"only {rules.count(rule)} answers quote the {rule}"


def test_the_checker_catches_the_broken_numbers_in_rejected_answers(dpo, facts):
    rejected = [p["non_preferred_output"][0]["content"] for rows in dpo.values() for p in rows]
    caught = sum(1 for a in rejected if policy_violations(a, facts)[1])
    assert caught >= 10, f"the policy checker flagged only {caught} rejected answers"


def test_answers_are_short_and_in_the_shop_voice(sft, dpo):
    answers = [m["content"] for rows in sft.values() for msgs in rows for m in msgs if m["role"] == "assistant"]
    answers += [p["preferred_output"][0]["content"] for rows in dpo.values() for p in rows]
    for a in answers:
        if lang_of(a) == "en":
            assert len(a.split()) < 80, a
            assert "thank" in a.lower(), a
            assert a.endswith(("?", "!", ".")), a
        else:
            assert len(CJK_COUNTED.findall(a)) < 120, a
            assert "谢" in a, a


def test_corpus_is_bilingual_and_a_few_hundred_kb():
    text = (DATA / "corpus.txt").read_text(encoding="utf-8")
    assert 200_000 <= len(text.encode("utf-8")) <= 1_000_000
    assert "Maple & Pine" in text and "枫松商城" in text
    assert len(CJK.findall(text)) > 30_000


def test_train_plus_is_train_and_more_phrasings(sft):
    """train_plus.jsonl (the quickstart's training file): train.jsonl's rows as
    they are, then 320 single-turn dialogues, half per language, each with the
    language's one system prompt, whose questions appear in no other file's
    user turns (validation, the held-out questions). (Its answers are checked
    with every other file's: in the shop's voice, quoting the policy.)"""
    plus = sft["train_plus"]
    assert plus[:len(sft["train"])] == sft["train"]
    extra = plus[len(sft["train"]):]
    assert len(extra) == 320 and all(len(m) == 3 for m in extra)
    assert sum(1 for m in extra if CJK.search(m[1]["content"])) == 160
    systems = {m[0]["content"] for m in sft["train"]}
    assert {m[0]["content"] for m in extra} <= systems
    users = lambda rows: {m["content"] for msgs in rows for m in msgs if m["role"] == "user"}
    assert users(extra).isdisjoint(users(sft["train"]) | users(sft["validation"]))
    heldout = json.loads((DATA / "heldout_questions.json").read_text(encoding="utf-8"))
    facts = json.loads((DATA / "heldout_facts.json").read_text(encoding="utf-8"))
    assert users(extra).isdisjoint({h["question"] for h in heldout + facts})


def test_generate_reproduces_the_committed_files(tmp_path):
    p = subprocess.run([sys.executable, str(DATA / "generate.py"), str(tmp_path)],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    for name in GENERATED:
        assert (tmp_path / name).read_bytes() == (DATA / name).read_bytes(), f"{name} differs from generate.py output"
