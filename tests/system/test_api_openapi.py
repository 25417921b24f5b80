"""docs/openapi.yaml: it is what api/openapi/gen_openapi.py writes, ft-api
serves it at /v1/openapi.json, it names exactly the routes of the route
table, and schemathesis finds no 5xx and no response that breaks it."""
import json
import os
import re
import subprocess
import sys
import warnings

import yaml

from api_helpers import client


def test_spec_is_generated_and_served(api_server, root):
    gen = subprocess.run([sys.executable, str(root / "api/openapi/gen_openapi.py"), "--check"])
    assert gen.returncode == 0, "docs/openapi.yaml is stale: run api/openapi/gen_openapi.py"
    spec = yaml.safe_load((root / "docs/openapi.yaml").read_text())
    assert spec["openapi"] == "3.1.0"
    with client(api_server, "none") as c:   # public: no key needed
        served = c.get("/v1/openapi.json")
    assert served.status_code == 200 and served.json() == spec


def test_spec_names_every_route(root):
    table = re.findall(r'\{\s*"(GET|POST|DELETE|PUT|PATCH)", "(/[^"]*)"',
                       (root / "api/src/router.c").read_text())
    # the console's static files (text/html, not API): api/src/console.c
    table = [r for r in table if r not in {("GET", "/"), ("GET", "/console/{*}")}]
    spec = yaml.safe_load((root / "docs/openapi.yaml").read_text())
    documented = {(m.upper(), p) for p, ops in spec["paths"].items() for m in ops}
    assert set(table) == documented and len(table) == len(documented)


def test_schemathesis_finds_no_5xx_and_no_nonconforming_response(api_server, root, tmp_path):
    # A team of its own, with a key that the rate limiter lets through.
    _, admin = api_server.make_team("fuzz")
    with client(api_server, admin) as c:
        key = c.post("/v1/keys", json={"role": "admin", "rate_limit_per_min": 1000000}).json()["key"]
    st = [sys.executable, "-m", "schemathesis.cli", "run", str(root / "docs/openapi.yaml"),
          "--url", api_server.url, "--header", f"Authorization: Bearer {key}",
          # not_a_server_error, status_code_conformance, content_type_conformance,
          # response_schema_conformance, response_headers_conformance, each failure
          # logged (schemathesis_log.py)
          "--checks", "logged_conformance",
          "--max-examples", "12", "--workers", "2", "--phases", "examples,coverage,fuzzing",
          "--generation-deterministic", "--no-color", "--request-timeout", "60",
          # Hypothesis health checks measure the machine, not the API: a loaded CI
          # box trips "too_slow" and fails a phase with every case passing.
          "--suppress-health-check", "all"]
    log = tmp_path / "failures.jsonl"
    env = dict(os.environ, SCHEMATHESIS_HOOKS="schemathesis_log", FT_ST_FAILURES=str(log),
               PYTHONPATH=str(root / "tests/system"))
    # (about 150 s for the deployment and evaluation routes alone on a loaded 2-core
    # machine, as much again for the rest: the limit leaves room for that load)
    p, out, failed = _run(st, log, tmp_path, env)
    # Two things can fail a run without a failure schemathesis could reproduce:
    # - a check that failed once and passed when Hypothesis replayed the case
    #   (FlakyFailure: "No issues found", exit 1; seen in the whole suite on a loaded
    #   machine, never in this file alone); schemathesis_log.py keeps it;
    # - an error outside the checks (its ERRORS section, a section per operation:
    #   a request that timed out or a connection that dropped; CI saw one, with
    #   nothing logged, once in eight whole-suite runs).
    # Both are reported (a pytest warning, in the log of a passing run too) and the
    # operations they belong to are run again on their own with four times the
    # examples: that run must be clean. A failure that reproduces is in schemathesis'
    # FAILURES section and fails the test at once.
    sect = _sections(out)
    again_ops = sorted({f["operation"] for f in failed} | set(_error_labels(sect)))
    if p.returncode != 0 and "FAILURES" not in sect and again_ops:
        warnings.warn("schemathesis: failures and errors it could not reproduce, run again "
                      f"on their own ({', '.join(again_ops)}):\n" +
                      "\n".join(json.dumps(f, ensure_ascii=False)[:1500] for f in failed) +
                      "\n" + sect.get("ERRORS", "")[:6000])
        again = list(st)
        again[again.index("--max-examples") + 1] = "48"
        for name in again_ops:
            again += ["--include-name", name]
        p, out, failed = _run(again, log, tmp_path, env)
        sect = _sections(out)
    elif p.returncode != 0 and "FAILURES" not in sect and "No issues found" in out:
        # A phase counted as failed with nothing behind it: no check failed (the
        # logging check wrote nothing), no ERRORS, no FAILURES, "No issues found"
        # (CI saw it once, its Fuzzing phase "1 failed" out of 98 operations, and the
        # test alone passed). Nothing names an operation to run again, so the whole
        # run is repeated once, reported as above; the repeat must be clean.
        warnings.warn("schemathesis: a phase failed with no failure, error or operation "
                      "reported; the whole run again:\n" + sect.get("SUMMARY", "")[:3000])
        p, out, failed = _run(st, log, tmp_path, env)
        sect = _sections(out)
    # (WARNINGS lists the operations most fuzzed input is rejected by, 4 KB of names:
    # left out of the message so that what failed is not cut off)
    shown = "".join(f"===== {k} =====\n{v}" for k, v in sect.items() if k != "WARNINGS")
    assert p.returncode == 0 and "No issues found" in out, \
        "failed checks:\n" + "\n".join(json.dumps(f, ensure_ascii=False)[:3000] for f in failed) + \
        "\n\n" + shown[-12000:]


def _run(cmd, log, tmp_path, env):
    """One schemathesis run: (process, its stdout + stderr, the failures it logged).
    A log a previous run left is kept as failures-first.jsonl, so that what the run
    logs is its own."""
    if log.exists():
        log.rename(tmp_path / "failures-first.jsonl")
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=tmp_path, env=env)
    failed = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return p, p.stdout + p.stderr, failed


def _sections(out):
    """schemathesis' output cut at its "==== NAME ====" lines: {NAME: text}; what comes
    before the first one is under ""."""
    parts, name = {}, ""
    for line in out.splitlines(keepends=True):
        m = re.match(r"^=+ (.+?) =+$", line.strip())
        if m:
            name = m.group(1)
            parts.setdefault(name, "")
        else:
            parts[name] = parts.get(name, "") + line
    return parts


def _error_labels(sect):
    """The operations of the ERRORS section: a "____ GET /v1/x ____" line each."""
    return [m.group(1) for m in re.finditer(r"^_+ (\S+ \S+) _+$", sect.get("ERRORS", ""), re.M)]
