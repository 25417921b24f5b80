"""The simulations with a known truth (tests/sim/): run the programs, print
what they measured (pytest -s shows it), and assert the bounds of issue 17.

Binomial margins: a rate measured over R independent runs is allowed three
standard deviations, 3 sqrt(p (1 - p) / R), past its bound.
"""
import math
import re
import subprocess

import pytest


def run_sim(build_dir, name):
    exe = build_dir / "tests" / "sim" / name
    p = subprocess.run([str(exe)], capture_output=True, text=True, timeout=300)
    print(p.stdout)
    assert p.returncode == 0, f"{name} exited {p.returncode}: {p.stderr}"
    out = {}
    for line in p.stdout.splitlines():
        m = re.match(r"^(\S+) (\S+)(.*)$", line)
        if m:
            out[m.group(1)] = (m.group(2), m.group(3))
    return out


def val(out, key):
    return float(out[key][0])


def margin(p, runs):
    return 3 * math.sqrt(p * (1 - p) / runs)


@pytest.fixture(scope="module")
def ab(build_dir):
    return run_sim(build_dir, "sim_ab")


@pytest.fixture(scope="module")
def drift(build_dir):
    return run_sim(build_dir, "sim_drift")


@pytest.mark.parametrize("scenario", ["p60", "p60_ties", "p50"])
@pytest.mark.parametrize("what", ["win_rate", "win_prob", "rating"])
def test_bootstrap_intervals_cover_the_truth(ab, scenario, what):
    # the bound: >= 90% of 200 seeded runs (nominal 95%)
    assert val(ab, f"ab.coverage.{scenario}.{what}") >= 0.90


def test_decision_rule_false_positive_rate(ab):
    runs, alpha = 1000, 0.05
    assert val(ab, "ab.decision.fpr") <= alpha + margin(alpha, runs)
    # the same simulation catches a rule that is not valid under peeking
    assert val(ab, "ab.decision.fpr_peeking_z") > alpha + margin(alpha, runs)


def test_decision_rule_decides_a_real_difference(ab):
    assert val(ab, "ab.decision.power_0.6") >= 0.95
    assert val(ab, "ab.decision.right_winner_0.6") >= 0.99


def test_judgments_needed_gives_the_stated_power(ab):
    # ((1.959964 / 2 + 0.841621 sqrt(0.24)) / 0.1)^2 = 193.85 by hand
    assert int(ab["ab.needed.n_0.6"][0]) == 194
    assert abs(val(ab, "ab.needed.power") - 0.8) <= margin(0.8, 1000)


@pytest.mark.parametrize("scenario,check", [("length", "numeric"), ("language", "categorical"),
                                            ("topic", "embedding")])
def test_drift_alerts_in_the_first_shifted_window(drift, scenario, check):
    assert int(drift[f"drift.{scenario}.first_alert_hour"][0]) == 48
    assert int(drift[f"drift.{scenario}.unshifted_alerts"][0]) == 0
    key = f"drift.{scenario}.alerts_at_shift"
    alerted = (drift[key][0] + drift[key][1]).split() if key in drift else []
    assert check in alerted


def test_drift_false_alarms(drift):
    assert val(drift, "drift.false_alarm_rate") == 0.0  # 3 x 48 unshifted windows
    # three checks at 0.001 each per window, over 480 more windows
    assert val(drift, "drift.false_alarm_rate_null_days") <= 0.003 + margin(0.003, 480)
