#!/usr/bin/env python3
"""Policy accuracy of a model on the held-out fact questions.

Asks a model (optionally with a LoRA adapter, optionally beside its base) every
question of data/customer-service/heldout_facts.json, greedily, with ftplat's
own binaries, and counts the answers that contain every required fact:

    deploy/eval_facts.py --model DIR [--adapter DIR] [--with-base] [--json]

The prompt is the question's system message and question rendered by
`ft-train render` with the model's chat template and the generation prompt, so
it is exactly what training renders before an assistant turn (`--template NAME`
picks a template as a job's `chat_template` does). `ft-train generate` answers
from those ids (greedy, stops at the model's end-of-sequence id or after
--max-new-tokens) and decodes them, special tokens skipped; every question
(for the base and the adapter) goes through one `generate --batch`, so the
weights are read once per step for all of them.

Matching rule: fteval's (eval/include/ft/textmetrics.h, ft_text_facts_match,
the one `ft-train eval` and the platform's evaluation jobs use), run through
ft-eval-stats: the answer and every accepted spelling folded (full-width forms
to ASCII, case, whitespace runs to one space); a fact is present when any of
its spellings occurs in the answer, not inside a longer number or word ("30
days" is not in "130 days"); an answer is correct when every fact is present.

Prints accuracy per language and overall, and a few answers side by side;
--json prints one JSON object instead (every answer, its missing facts, the
accuracies and the seconds spent). Standard library only.
"""
import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_QUESTIONS = ROOT / "data" / "customer-service" / "heldout_facts.json"


def find_eval_stats():
    """ft-eval-stats, the driver of the one facts matcher (eval/: fteval's
    ft_text_facts_match, which `ft-train eval` and the platform's evaluation
    jobs use): beside ft-train in its build folder."""
    here = Path(find_trainer(None)).resolve().parents[1]
    for cand in (os.environ.get("FT_EVAL_STATS_PATH"), here / "eval" / "ft-eval-stats"):
        if cand and Path(cand).is_file():
            return str(cand)
    sys.exit("eval_facts: no ft-eval-stats found next to ft-train; build the target or set "
             "FT_EVAL_STATS_PATH")


def missing_facts_many(pairs):
    """For each (answer, facts): the indexes of the facts the answer lacks,
    by fteval's matcher (eval/include/ft/textmetrics.h states the rule)."""
    cases = [{"name": str(i), "op": "facts", "answer": a, "facts": f} for i, (a, f) in enumerate(pairs)]
    out = json.loads(run([find_eval_stats(), "-"], json.dumps(cases, ensure_ascii=False)))
    res = []
    for c in out:
        if "error" in c:
            sys.exit(f"eval_facts: ft-eval-stats: {c['error']}")
        res.append([i for i, ok in enumerate(c["result"]["found"]) if not ok])
    return res


def missing_facts(answer, facts):
    """Indexes of the facts none of whose spellings occurs in the answer."""
    return missing_facts_many([(answer, facts)])[0]


def find_trainer(given):
    if given:
        return given
    for cand in (os.environ.get("FT_TRAINER_PATH"), ROOT / "build-release" / "trainer" / "ft-train",
                 ROOT / "build-rel" / "trainer" / "ft-train", ROOT / "build" / "trainer" / "ft-train"):
        if cand and Path(cand).is_file():
            return str(cand)
    sys.exit("eval_facts: no ft-train found; give --trainer or set FT_TRAINER_PATH")


def run(cmd, stdin=None, env=None):
    p = subprocess.run(cmd, input=stdin, capture_output=True, text=True, env=env)
    if p.returncode != 0:
        sys.exit(f"eval_facts: {' '.join(cmd[:2])} failed (exit {p.returncode}): {p.stderr.strip()}")
    return p.stdout


def render_all(trainer, model, template, questions):
    """Each question's prompt ids, one `ft-train render --lines` for all."""
    rows = "".join(json.dumps({"messages": [{"role": "system", "content": q["system"]},
                                            {"role": "user", "content": q["question"]}],
                               "add_generation_prompt": True}, ensure_ascii=False) + "\n"
                   for q in questions)
    cmd = [trainer, "render", "--model", model, "--lines"] + (["--template", template] if template else [])
    out = [json.loads(line)["ids"] for line in run(cmd, rows).splitlines()]
    if len(out) != len(questions):
        sys.exit(f"eval_facts: ft-train render answered {len(out)} of {len(questions)} questions")
    return out


def generate_all(args, trainer, prompts, runs):
    """Every question for every run in one `ft-train generate --batch` (the
    base and the adapter share one batch: rows choose with "adapter")."""
    adapter = next((a for _, a in runs if a), None)
    reqs = "".join(json.dumps({"prompt_ids": ids, "adapter": a is not None}) + "\n"
                   for _, a in runs for ids in prompts)
    cmd = [trainer, "generate", "--model", args.model, "--batch", "-", "--max-new-tokens",
           str(args.max_new_tokens), "--max-batch", str(args.max_batch)]
    if adapter:
        cmd += ["--adapter", adapter]
    t0 = time.monotonic()
    lines = run(cmd, reqs).splitlines()
    seconds = time.monotonic() - t0
    if len(lines) != len(prompts) * len(runs):
        sys.exit(f"eval_facts: ft-train generate answered {len(lines)} of {len(prompts) * len(runs)} requests")
    answers = [json.loads(line) for line in lines]
    return [answers[i * len(prompts):(i + 1) * len(prompts)] for i in range(len(runs))], seconds


def score(questions, answers, adapter):
    rows = []
    texts = [a["text"].strip() for a in answers]
    misses = missing_facts_many([(t, q["required_facts"]) for t, q in zip(texts, questions)])
    for q, a, text, miss in zip(questions, answers, texts, misses):
        rows.append({"id": q.get("id"), "language": q["language"], "answer": text, "tokens": len(a["ids"]),
                     "correct": not miss, "missing": [q["required_facts"][i][0] for i in miss]})
    return {"adapter": adapter, "tokens": sum(r["tokens"] for r in rows), "accuracy": accuracy(rows),
            "answers": rows}


def accuracy(rows):
    out = {}
    for lang in sorted({r["language"] for r in rows}) + ["all"]:
        sel = [r for r in rows if lang in ("all", r["language"])]
        ok = sum(r["correct"] for r in sel)
        out[lang] = {"correct": ok, "total": len(sel), "share": round(ok / len(sel), 4) if sel else 0.0}
    return out


def show(questions, results, n_show):
    for label, res in results:
        acc = res["accuracy"]
        parts = [f"{lang} {a['correct']}/{a['total']}" for lang, a in acc.items() if lang != "all"]
        print(f"{label:<11} {100 * acc['all']['share']:5.1f}% of answers with every fact "
              f"({acc['all']['correct']}/{acc['all']['total']}; {', '.join(parts)}; {res['tokens']} tokens)")
    if n_show <= 0:
        return
    # a few questions per language, first those the models disagree on
    picked = []
    for lang in sorted({q["language"] for q in questions}):
        idx = [i for i, q in enumerate(questions) if q["language"] == lang]
        idx.sort(key=lambda i: len({res["answers"][i]["correct"] for _, res in results}) == 1)
        picked += idx[:(n_show + 1) // 2]
    for i in picked:
        q = questions[i]
        facts = " + ".join(f[0] for f in q["required_facts"])
        print(f"\nQ ({q.get('id')}, needs {facts}): {q['question']}")
        for label, res in results:
            a = res["answers"][i]
            mark = "ok" if a["correct"] else "missing " + ", ".join(a["missing"])
            print(f"  {label:<11} [{mark}] {a['answer']}")


def training_twins(questions, train_path):
    """For each question, a question the model trained on with the same facts:
    the user turn of the first single-turn dialogue of train_path (each used
    once) under the same system prompt whose assistant answer holds every one
    of the question's facts (by the same matcher). Scored as the held-out
    questions are, it tells a model that did not learn its training rows
    (both low) from one that learned them but not the new wordings."""
    rows = []
    for line in Path(train_path).read_text(encoding="utf-8").splitlines():
        m = json.loads(line)["messages"] if line.strip() else []
        if [x["role"] for x in m] == ["system", "user", "assistant"]:
            rows.append(m)
    used, out = set(), []
    for q in questions:
        cands = [i for i, m in enumerate(rows) if i not in used and m[0]["content"] == q["system"]]
        misses = missing_facts_many([(rows[i][2]["content"], q["required_facts"]) for i in cands])
        i = next((i for i, miss in zip(cands, misses) if not miss), None)
        if i is None:
            sys.exit(f"eval_facts: {train_path} has no dialogue answering {q.get('id')}'s facts")
        used.add(i)
        out.append(dict(q, id=f"{q.get('id')}-train", question=rows[i][1]["content"]))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="base model folder")
    ap.add_argument("--adapter", help="LoRA adapter folder (PEFT) to evaluate on the base")
    ap.add_argument("--with-base", action="store_true", help="with --adapter: also evaluate the base alone")
    ap.add_argument("--questions", default=str(DEFAULT_QUESTIONS), help="held-out facts file (JSON list)")
    ap.add_argument("--training-twins", metavar="TRAIN_JSONL",
                    help="ask, instead of each question, one from this training file whose answer holds "
                         "the same facts (did the model learn what it trained on?)")
    ap.add_argument("--language", choices=["en", "zh"], help="only the questions in this language")
    ap.add_argument("--limit", type=int, default=0, help="only the first N questions (per language)")
    ap.add_argument("--template", help="chat template name (default: the model's)")
    ap.add_argument("--trainer", help="ft-train binary (default: FT_TRAINER_PATH or build-release/)")
    ap.add_argument("--max-new-tokens", type=int, default=160)
    ap.add_argument("--max-batch", type=int, default=64, help="sequences generated at once")
    ap.add_argument("--show", type=int, default=4, help="answers printed side by side")
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    args = ap.parse_args()
    trainer = find_trainer(args.trainer)
    questions = json.loads(Path(args.questions).read_text(encoding="utf-8"))
    if args.language:
        questions = [q for q in questions if q["language"] == args.language]
    if args.limit > 0:
        questions = [q for lang in ("en", "zh") for q in [x for x in questions if x["language"] == lang][:args.limit]]
    for q in questions:
        if not q.get("required_facts") or not all(isinstance(f, list) and f for f in q["required_facts"]):
            sys.exit(f"eval_facts: question {q.get('id')} has no usable required_facts")
    if args.training_twins:
        questions = training_twins(questions, args.training_twins)
    prompts = render_all(trainer, args.model, args.template, questions)
    runs = []
    if args.with_base or not args.adapter:
        runs.append(("base", None))
    if args.adapter:
        runs.append(("fine-tuned", args.adapter))
    answers, seconds = generate_all(args, trainer, prompts, runs)
    results = [(label, score(questions, ans, adapter)) for (label, adapter), ans in zip(runs, answers)]
    if args.json:
        out = {"questions": args.questions, "model": args.model, "generate_seconds": round(seconds, 1),
               "results": {label: res for label, res in results},
               "ids": [q.get("id") for q in questions]}
        print(json.dumps(out, ensure_ascii=False, indent=1))
    else:
        show(questions, results, args.show)
        print(f"\n({len(questions) * len(runs)} answers generated in {seconds:.0f} s)")


if __name__ == "__main__":
    main()
