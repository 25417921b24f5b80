"""docs/openapi.yaml: it is what api/openapi/gen_openapi.py writes, ft-api
serves it at /v1/openapi.json, it names exactly the routes of the route
table, and schemathesis finds no 5xx and no response that breaks it."""
import json
import re
import subprocess
import sys

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
          "--checks", "not_a_server_error,status_code_conformance,content_type_conformance,"
                      "response_schema_conformance,response_headers_conformance",
          "--max-examples", "12", "--workers", "2", "--phases", "examples,coverage,fuzzing",
          "--generation-deterministic", "--no-color", "--request-timeout", "60",
          # Hypothesis health checks measure the machine, not the API: a loaded CI
          # box trips "too_slow" and fails a phase with every case passing.
          "--suppress-health-check", "all", "--report", "junit,vcr", "--report-dir", str(tmp_path)]
    # (about 150 s for the deployment and evaluation routes alone on a loaded 2-core
    # machine, as much again for the rest: the limit leaves room for that load)
    p = subprocess.run(st, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    out = p.stdout + p.stderr
    # A check that failed once and passed when Hypothesis replayed the case is a
    # FlakyFailure: schemathesis then names no issue ("No issues found", exit 1; seen
    # in the whole suite on a loaded machine, never in this file alone). The cassette
    # (VCR report) keeps every interaction with its checks, so the failed ones are
    # printed. The operations they belong to are then run again on their own, with
    # four times the examples: that run must be clean. A failure that reproduces is
    # named by schemathesis and fails the test at once.
    failed = failed_interactions(tmp_path)
    if p.returncode != 0 and "No issues found" in out and failed:
        print("schemathesis: failures it could not reproduce:\n" + "\n".join(map(str, failed)))
        spec = yaml.safe_load((root / "docs/openapi.yaml").read_text())
        again = list(st)
        again[again.index("--report") + 1] = "junit"
        again[again.index("--max-examples") + 1] = "48"
        for name in {operation_of(spec, f["method"], f["uri"]) for f in failed}:
            again += ["--include-name", name]
        p = subprocess.run(again, capture_output=True, text=True, timeout=600, cwd=tmp_path)
        out, failed = p.stdout + p.stderr, []
    assert p.returncode == 0 and "No issues found" in out and not failed, \
        "failed checks:\n" + "\n".join(map(str, failed)) + "\n\n" + out[-6000:]


def operation_of(spec, method, uri):
    """'POST /v1/x/{id}': the spec's operation whose path template matches uri."""
    path = re.sub(r"^https?://[^/]+", "", uri).split("?")[0]
    for template in spec["paths"]:
        if re.fullmatch(re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)), path):
            return f"{method} {template}"
    return f"{method} {path}"


def failed_interactions(report_dir):
    """The interactions of the VCR cassettes whose checks failed: method, uri,
    status, the failed checks and the first 300 characters of both bodies."""
    import glob
    found = []
    for f in glob.glob(str(report_dir / "vcr-*.yaml")):
        text = open(f, encoding="utf-8", errors="replace").read()
        for block in text.split("\n- id: ")[1:]:
            if not block.split("\n", 2)[1].strip() == "status: 'FAILURE'":
                continue

            def grab(pattern):
                m = re.search(pattern, block, re.S)
                return m.group(1) if m else "?"
            found.append({
                "method": grab(r"method: '([A-Z]+)'"), "uri": grab(r"uri: '([^']+)'"),
                "status": grab(r"code: '([0-9]+)'"),
                "checks": re.findall(r"- name: '([^']+)'\n\s+status: 'FAILURE'\n\s+message: (.*)",
                                     block),
                "request": grab(r"\n  request:.*?\n    body:\n.*?string: (.*?)\n  response:")[:300],
                "response": grab(r"\n  response:.*?\n    body:\n.*?string: (.*?)\n")[:300]})
    return found
