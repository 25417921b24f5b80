"""fteval (eval/) against independent Python implementations.

Every case of the shared fixtures tests/data/stats/{ab,drift,text}.json goes
through eval/ft-eval-stats and through tests/system/stats_peer.py (scipy,
numpy, rouge-score, sacrebleu, and Python replays of the seeded procedures);
every number must agree within 1e-6 (absolute; ratings near 1000 included),
every string, count and flag exactly.
"""
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parent))
import stats_peer  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data" / "stats"
FILES = ["ab.json", "drift.json", "text.json"]
TOL = 1e-6


def run_tool(build_dir, path):
    exe = build_dir / "eval" / "ft-eval-stats"
    p = subprocess.run([str(exe), str(path)], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, f"ft-eval-stats exited {p.returncode}: {p.stderr}"
    return {c["name"]: c for c in json.loads(p.stdout)}


def as_float(v):
    if v is None:
        return math.nan
    if isinstance(v, str) and v in ("inf", "-inf"):
        return math.inf if v == "inf" else -math.inf
    return float(v)


def agree(got, want, where, mismatches):
    """Compare the C result (JSON) with the peer's value; record mismatches."""
    if isinstance(want, dict):
        for k, v in want.items():
            if k not in got:
                mismatches.append(f"{where}.{k}: missing in C result")
                continue
            agree(got[k], v, f"{where}.{k}", mismatches)
        return
    if isinstance(want, (list, tuple, np.ndarray)):
        want = list(want)
        if not isinstance(got, list) or len(got) != len(want):
            mismatches.append(f"{where}: length {len(got) if isinstance(got, list) else got} != {len(want)}")
            return
        for i, (g, w) in enumerate(zip(got, want)):
            agree(g, w, f"{where}[{i}]", mismatches)
        return
    if isinstance(want, (bool, np.bool_)) or isinstance(want, str):
        if got != want:
            mismatches.append(f"{where}: {got!r} != {want!r}")
        return
    if isinstance(want, (int, np.integer)) and not isinstance(got, float):
        if got != int(want):
            mismatches.append(f"{where}: {got} != {want}")
        return
    w = math.nan if want is None else float(want)
    g = as_float(got)
    if math.isnan(w) or math.isnan(g) or math.isinf(w) or math.isinf(g):
        if not (math.isnan(w) and math.isnan(g)) and g != w:
            mismatches.append(f"{where}: {got} != {want}")
        return
    if abs(g - w) > TOL:
        mismatches.append(f"{where}: {g!r} != {w!r} (diff {abs(g - w):.3g})")


def compare_case(case, got):
    assert "error" not in got, f"{case['name']}: ft-eval-stats: {got['error']}"
    want = stats_peer.PEERS[case["op"]](case)
    res = got["result"]
    if want.pop("bt_error", False):
        assert "bt_error" in res, f"{case['name']}: the peer finds no MLE, C fitted one"
        assert "unbounded" in res["bt_error"]
    want.pop("exact_attempted", None)
    mismatches = []
    agree(res, want, case["name"], mismatches)
    assert not mismatches, "\n".join(mismatches[:20])


@pytest.fixture(scope="module")
def outputs(build_dir):
    return {f: run_tool(build_dir, DATA / f) for f in FILES}


def cases_of(fname):
    return [(fname, c) for c in json.loads((DATA / fname).read_text(encoding="utf-8"))]


ALL = [x for f in FILES for x in cases_of(f)]


@pytest.mark.parametrize("fname,case", ALL, ids=[c["name"] for _, c in ALL])
def test_case_matches_peer(outputs, fname, case):
    compare_case(case, outputs[fname][case["name"]])


def test_fixtures_regenerate_byte_for_byte(tmp_path):
    """The committed fixtures are what make_fixtures.py writes."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("make_fixtures", DATA / "make_fixtures.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.HERE = tmp_path
    mod.main()
    for f in FILES:
        assert (tmp_path / f).read_bytes() == (DATA / f).read_bytes(), f"{f} differs from make_fixtures.py"


def test_ks_asymptotic_branch_matches_scipy(build_dir, tmp_path):
    """Samples past 10000 values take scipy's asymptotic p-value: kstwo.sf at
    round(m n / (m + n)), which picks a different method per (n, D). Generated
    here (seeded) rather than stored: they are large."""
    rng = np.random.default_rng(5)
    cases = []
    for i, (nx, ny, shift) in enumerate([(10001, 5, 0.0), (10001, 60, 0.3), (10001, 300, 0.1),
                                          (12000, 11000, 0.0), (12000, 11000, 0.02),
                                          (20000, 150, 0.0), (10500, 2000, 0.05)]):
        x = rng.poisson(200, nx).astype(float)  # token lengths: ties everywhere
        y = np.round(rng.normal(200 * (1 + shift), 14, ny))
        cases.append({"name": f"asym_{i}", "op": "ks_2samp", "x": x.tolist(), "y": y.tolist()})
    path = tmp_path / "ks_big.json"
    path.write_text(json.dumps(cases))
    got = run_tool(build_dir, path)
    for c in cases:
        r = got[c["name"]]["result"]
        assert r["exact"] is False
        compare_case(c, got[c["name"]])


def test_kolmogorov_sf_every_method(build_dir, tmp_path):
    """kstwo.sf(d, n) over a grid that reaches each of Simard and L'Ecuyer's
    branches (Ruben-Gambino, Durbin's matrix, Pomeranz, Miller, Pelz-Good)."""
    cases = []
    for n in [3, 10, 50, 140, 141, 400, 5000, 90000, 150000]:
        ds = sorted(set([0.3 / n, 0.7 / n, 1.0 / n, 1.5 / n, 0.5, 0.6, 1 - 1.5 / n, 1 - 0.5 / n]
                        + [math.sqrt(v / n) for v in (0.05, 0.3, 0.7, 1.0, 2.0, 3.0, 5.0, 10, 17, 25)]))
        ds = [d for d in ds if 0 < d < 1]
        cases.append({"name": f"kolm_{n}", "op": "special", "x": ds, "n": n})
    path = tmp_path / "kolm.json"
    path.write_text(json.dumps(cases))
    got = run_tool(build_dir, path)
    mismatches = []
    for c in cases:
        want = stats.kstwo.sf(np.array(c["x"]), c["n"])
        agree(got[c["name"]]["result"]["kolmogorov_sf"], want, c["name"], mismatches)
    assert not mismatches, "\n".join(mismatches)


def test_bad_input_names_the_problem(build_dir, tmp_path):
    cases = [
        {"name": "empty", "op": "ks_2samp", "x": [], "y": [1]},
        {"name": "arm", "op": "ab", "k": 2, "judgments": [[0, 2, "a"]]},
        {"name": "self", "op": "ab", "k": 3, "judgments": [[1, 1, "tie"]]},
        {"name": "outcome", "op": "ab", "k": 2, "judgments": [[0, 1, "draw"]]},
        {"name": "chi2_empty", "op": "counts", "ref_counts": [0, 0], "cur_counts": [1, 2]},
        {"name": "no_ref", "op": "bleu", "hyps": ["a"], "refs": [[None]]},
        {"name": "no_spelling", "op": "facts", "answer": "x", "facts": [[]]},
        {"name": "blank_spelling", "op": "facts", "answer": "x", "facts": [["   "]]},
        {"name": "op", "op": "nope"},
    ]
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(cases))
    got = run_tool(build_dir, path)
    want = {
        "empty": "ks_2samp: the first sample is empty",
        "arm": "judgment 0: arms must be between 0 and 1 (got 0 and 2)",
        "self": "judgment 0 compares arm 1 with itself",
        "outcome": "\"judgments\"[0] must be [arm, arm, \"a\"|\"b\"|\"tie\"|\"both_bad\"]",
        "chi2_empty": "chi2: the reference has no counts",
        "no_ref": "segment 0 has no reference",
        "no_spelling": "fact 0 has no spelling",
        "blank_spelling": "fact 0 spelling 0 is empty",
        "op": "unknown op \"nope\"",
    }
    for name, msg in want.items():
        assert got[name].get("error") == msg, (name, got[name])
