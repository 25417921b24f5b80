"""ft-api serving the console's files (api/src/console.c), and the rules the
console's sources keep (webui/README.md).

Serving: every file of webui/ comes back byte for byte with its content type,
the Content-Security-Policy (no inline script or style, nothing from
elsewhere), nosniff and a revalidating cache (ETag, 304); README.md and
anything outside webui/ are refused, however the path is spelled (sent raw,
so no client normalises it first); webui_dir is a setting, and without the
files the API still serves. Sources: both message tables have one key set
and hold every key the code asks for; no markup is built from strings; no
inline script, style or handler; nothing loaded from another origin."""
import json
import re
import socket
from pathlib import Path

import httpx
import psycopg
import pytest

ROOT = Path(__file__).resolve().parents[2]
WEBUI = ROOT / "webui"
TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
         ".css": "text/css; charset=utf-8", ".json": "application/json; charset=utf-8",
         ".svg": "image/svg+xml"}


def raw_get(url, path, headers=""):
    """GET with the path exactly as given; (status, headers, body)."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{headers}\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    return int(lines[0].split()[1]), {k.lower(): v for k, v in (l.split(": ", 1) for l in lines[1:])}, body


def served_files():
    return [p for p in WEBUI.rglob("*") if p.is_file() and p.suffix in TYPES and p.name != "README.md"]


def test_index_and_every_file_with_type_and_policy(api_server):
    r = httpx.get(api_server.url + "/")
    assert r.status_code == 200 and r.content == (WEBUI / "index.html").read_bytes()
    csp = r.headers["content-security-policy"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["default-src"] == "'self'"
    assert directives["script-src"] == "'self'" and directives["style-src"] == "'self'"
    assert directives["object-src"] == "'none'" and directives["frame-ancestors"] == "'none'"
    assert directives["base-uri"] == "'none'"
    assert "unsafe" not in csp and "*" not in csp and "data:" not in csp
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["cache-control"] == "no-cache"
    files = served_files()
    assert len(files) >= 20
    for p in files:
        rel = p.relative_to(WEBUI).as_posix()
        r = httpx.get(f"{api_server.url}/console/{rel}")
        assert r.status_code == 200, rel
        assert r.headers["content-type"] == TYPES[p.suffix], rel
        assert r.content == p.read_bytes(), rel
        assert r.headers["content-security-policy"] == csp, rel
        assert r.headers["x-content-type-options"] == "nosniff"


def test_etag_revalidation(api_server):
    r = httpx.get(f"{api_server.url}/console/js/app.js")
    etag = r.headers["etag"]
    assert re.fullmatch(r'"[0-9a-f]+-[0-9a-f]+-[0-9a-f]+"', etag)
    again = httpx.get(f"{api_server.url}/console/js/app.js", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    other = httpx.get(f"{api_server.url}/console/js/app.js", headers={"If-None-Match": '"0-0-0"'})
    assert other.status_code == 200 and other.content == r.content


@pytest.mark.parametrize("path", [
    "/console/../CMakeLists.txt", "/console/%2e%2e/CMakeLists.txt", "/console/%2E%2E/%2E%2E/etc/passwd",
    "/console/js/../../README.md", "/console/..%2fCMakeLists.txt", "/console/js/..%2f..%2fREADME.md",
    "/console//etc/passwd", "/console/%2fetc/passwd", "/console/README.md", "/console/.hidden.js",
    "/console/js/.app.js", "/console/js/app.js/", "/console/js//app.js", "/console/js/app.js%00.css",
    "/console/js/app", "/console/i18n", "/console/", "/console", "/console/" + "a/" * 9 + "x.js",
    "/console/js/app.js%00/../../../CMakeLists.txt",
    "/console/" + "a" * 300 + ".js", "/index.html", "/../CMakeLists.txt", "/console/js/app.js?x=../",
])
def test_traversal_and_hidden_paths_are_refused(api_server, path):
    status, headers, body = raw_get(api_server.url, path)
    if path == "/console/js/app.js?x=../":     # a query string is not part of the path
        assert status == 200
        return
    if "%00" in path:
        # libmicrohttpd's decoding ends the path at a NUL: what can be served
        # is then /console/js/app.js itself, never another file.
        assert status == 404 or body == (WEBUI / "js" / "app.js").read_bytes(), path
        return
    assert status == 404, (path, status)
    assert b"cmake_minimum_required" not in body and b"root:" not in body and b"# ftplat" not in body
    assert json.loads(body)["error"]["type"] == "not_found_error"


def test_webui_dir_setting(build_dir, database_url, redis_url, tmp_path_factory):
    from conftest import _api_server
    mine = tmp_path_factory.mktemp("mine")
    (mine / "index.html").write_text("<!doctype html><title>mine</title>")
    (mine / "x.css").write_text("body{}")
    empty = tmp_path_factory.mktemp("empty")
    servers = []
    try:
        srv, name = _api_server(build_dir, database_url, redis_url, tmp_path_factory, webui_dir=str(mine))
        servers.append((srv, name))
        assert httpx.get(srv.url + "/").text == "<!doctype html><title>mine</title>"
        assert httpx.get(srv.url + "/console/x.css").text == "body{}"
        assert f"web console on {srv.url}/" in srv.log_path.read_text()
        srv2, name2 = _api_server(build_dir, database_url, redis_url, tmp_path_factory, webui_dir=str(empty))
        servers.append((srv2, name2))
        r = httpx.get(srv2.url + "/")
        assert r.status_code == 404 and r.json()["error"]["code"] == "console_unavailable"
        assert str(empty) not in r.text          # no server path in what users see
        assert httpx.get(srv2.url + "/v1/openapi.json").status_code == 200
        assert "the web console is off" in srv2.log_path.read_text()
    finally:
        for s, n in servers:
            assert s.stop() == 0
            with psycopg.connect(database_url, autocommit=True) as c:
                c.execute(f'DROP DATABASE "{n}" WITH (FORCE)')


# ---- the sources --------------------------------------------------------

def js_sources():
    return sorted((WEBUI / "js").rglob("*.js"))


def code_of(p):
    """A module without its comments (they may name what the code avoids)."""
    src = re.sub(r"/\*.*?\*/", "", p.read_text(), flags=re.S)
    return re.sub(r"(^|\s)//.*$", r"\1", src, flags=re.M)


def test_message_tables_have_one_key_set_and_every_key_used():
    en = json.loads((WEBUI / "i18n" / "en.json").read_text())
    zh = json.loads((WEBUI / "i18n" / "zh.json").read_text())
    assert set(en) == set(zh), (set(en) ^ set(zh))
    assert all(isinstance(v, str) and v for v in list(en.values()) + list(zh.values()))
    # every {placeholder} appears in both languages
    for k in en:
        assert set(re.findall(r"\{(\w+)\}", en[k])) == set(re.findall(r"\{(\w+)\}", zh[k])), k
    used = set()
    for p in js_sources():
        src = code_of(p)
        used |= set(re.findall(r"(?<![\w.])t\('([a-z_.]+)'", src))
        used |= set(re.findall(r"(?:title|nav): '([a-z_.]+)'", src))   # the page table
    assert used, "no message key found in the sources"
    missing = sorted(k for k in used if k not in en)
    assert not missing, missing
    # Keys built at run time: every value they are built from has its message.
    for prefix, values in {
        "state": ["validating_files", "queued", "dispatched", "running", "cancelling", "succeeded", "failed",
                  "cancelled", "validating", "valid", "invalid", "pending", "delivering", "abandoned",
                  "allowed", "denied"],
        "role": ["viewer", "member", "admin"], "method": ["supervised", "dpo"],
        "adapter": ["lora", "qlora", "none"], "level": ["info", "warn", "error"], "lang": ["en", "zh"],
        "wizard.step": ["data", "model", "settings", "review"], "team.role_help": ["viewer", "member", "admin"],
    }.items():
        sep = "_" if prefix in ("wizard.step", "team.role_help") else "."
        for v in values:
            assert f"{prefix}{sep}{v}" in en, f"{prefix}{sep}{v}"
    spec = json.loads((ROOT / "docs" / "openapi.yaml").read_text().split("\n", 3)[3])
    schemas = spec["components"]["schemas"]
    # The registry's words built at run time, from the API's own enums.
    for prefix, values in {
        "version.kind_": schemas["ModelVersion"]["properties"]["kind"]["enum"],
        "alias.action_": schemas["AliasChange"]["properties"]["action"]["enum"],
        "models.kind_": [k.replace("-", "_") for k in schemas["Model"]["properties"]["kind"]["enum"]],
        "state.": schemas["Export"]["properties"]["status"]["enum"] + ["ready", "draft", "archived"]
        + schemas["Deployment"]["properties"]["status"]["enum"] + schemas["Experiment"]["properties"]["status"]["enum"]
        + schemas["ExperimentArm"]["properties"]["status"]["enum"] + schemas["DriftMonitor"]["properties"]["status"]["enum"],
        "health.": schemas["Endpoint"]["properties"]["health"]["enum"],
        "exp.assign_": schemas["Experiment"]["properties"]["assignment"]["enum"],
        "exp.outcome_": schemas["JudgmentCreate"]["properties"]["winner"]["enum"],
        "exp.action_": ["start", "pause", "stop"], "exp.done_": ["start", "pause", "stop"],
        "exp.fb_": ["thumbs_up", "resolved", "escalated"], "play.side_": ["a", "b"],
        "drift.gran_": schemas["DriftWindow"]["properties"]["granularity"]["enum"],
        "drift.latest_": schemas["DriftWindow"]["properties"]["granularity"]["enum"],
        # the window metrics scheduler/src/drift.c computes (window(): names[])
        "drift.metric_": ["prompt_tokens", "completion_tokens", "truncated", "refusals", "languages"],
        "lineage.": [k for k in schemas["Lineage"]["properties"] if k in (
            "base_model", "parent_version", "dataset", "training_file", "validation_file", "job", "checkpoint")]
        + ["version"],
    }.items():
        assert len(values) >= 2, prefix
        for v in values:
            assert f"{prefix}{v}" in en, f"{prefix}{v}"
    hp = spec["components"]["schemas"]["JobCreate"]["properties"]["method"]["properties"]
    for method in ("supervised", "dpo"):
        for name in hp[method]["properties"]["hyperparameters"]["properties"]:
            assert f"hp.{name}" in en, f"no help line for hyperparameter {name}"


def test_every_export_format_and_option_has_its_help_line(api_server):
    """The export form is built from GET /v1/registry/export_formats; its one
    line of help per format and option is translated (webui/js/registry.js):
    every row of the API's table has both messages, in both languages."""
    en = json.loads((WEBUI / "i18n" / "en.json").read_text())
    key = lambda s: re.sub(r"[^a-z0-9_]", "_", s, flags=re.I)
    formats = httpx.get(api_server.url + "/v1/registry/export_formats",
                        headers={"Authorization": f"Bearer {api_server.key}"}).json()["data"]
    assert {f["name"] for f in formats} >= {"merged", "gguf"}
    want = {f"export_format.{key(f['name'])}" for f in formats}
    want |= {f"export_option.{key(f['name'])}.{key(o['name'])}" for f in formats for o in f["options"]}
    assert not sorted(want - set(en)), sorted(want - set(en))
    # and no message for a format or option the API does not have
    have = {k for k in en if k.startswith(("export_format.", "export_option."))}
    assert have == want, sorted(have ^ want)
    stages = {"export.stage_load", "export.stage_merge", "export.stage_write"}   # ft/events.h "export" lines
    assert stages <= set(en)


def test_no_markup_from_strings_and_nothing_inline_or_foreign():
    for p in js_sources():
        src = code_of(p)
        for banned in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(",
                       "new Function", "setAttribute('style'", ".style."):
            assert banned not in src, (p.name, banned)
        for spec in re.findall(r"^import .* from '([^']+)';", src, re.M) + re.findall(r"import\('([^']+)'\)", src):
            assert spec.startswith("./") or spec.startswith("../"), (p.name, spec)
        urls = re.findall(r"https?://[^\s'\"`)]+", src)
        # the SVG namespace, and a placeholder shown in the webhook form
        assert set(urls) <= {"http://www.w3.org/2000/svg", "https://example.com/ftplat"}, (p.name, urls)
    index = (WEBUI / "index.html").read_text()
    scripts = re.findall(r"<script\b([^>]*)>(.*?)</script>", index, re.S)
    assert scripts and all('src="/console/' in attrs and body.strip() == "" for attrs, body in scripts)
    assert not re.search(r"<style\b|\sstyle=|\son[a-z]+=", index, re.I)
    assert not re.search(r"https?://", (WEBUI / "console.css").read_text())
    assert not re.search(r"(src|href)=\"https?://", index)
