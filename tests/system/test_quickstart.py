"""The README's first command, run for real in a private state folder: it must
finish, the fine-tuned model's held-out loss must be below the base model's,
and both models must answer the held-out questions. Then `stop` stops it all."""
import os
import re
import subprocess
import time


def test_quickstart_fine_tunes_and_beats_the_base_model(root, tmp_path):
    state = tmp_path / "state"
    env = dict(os.environ, FT_STATE_DIR=str(state), FT_QUICKSTART_BUILD=str(root / "build-release"))
    for k in ("FT_DATABASE_URL", "FT_REDIS_URL", "FT_API_URL", "FT_API_KEY"):
        env.pop(k, None)   # the quickstart starts its own
    t0 = time.monotonic()
    p = subprocess.run(["bash", str(root / "deploy" / "quickstart.sh")], env=env, capture_output=True,
                       text=True, timeout=900)
    took = time.monotonic() - t0
    try:
        out = p.stdout + p.stderr
        assert p.returncode == 0, out[-5000:]
        base = float(re.search(r"^  base model +([0-9.]+)", out, re.M).group(1))
        tuned = float(re.search(r"^  fine-tuned model +([0-9.]+)", out, re.M).group(1))
        print(f"quickstart: {took:.0f} s, held-out loss {base:.4f} -> {tuned:.4f}")
        assert tuned < base
        assert out.count("\nQ: ") == 6
        assert out.count("  fine-tuned: ") == 6 and out.count("  base: ") == 6
        assert "stop everything: deploy/quickstart.sh stop" in out
    finally:
        s = subprocess.run(["bash", str(root / "deploy" / "quickstart.sh"), "stop"], env=env,
                           capture_output=True, text=True, timeout=120)
        assert s.returncode == 0, s.stdout + s.stderr
    for d in ("api", "scheduler", "worker"):
        assert not (state / f"{d}.pid").exists()
