"""The deployment files in deploy/ are checked by the tools that will read them:

- every systemd unit passes `systemd-analyze verify` (systemd 252) in a
  temporary root that holds the system's own units, the units under test and
  the programs of this build at their ExecStart paths (so a wrong path fails);
  ft-serve is not built yet, so a placeholder stands at /usr/local/bin/ft-serve
  until the build has one (the unit says so); any warning fails the check;
- every service's sandbox scores at most 2.5 in `systemd-analyze security`
  (offline; 0 is fully locked down, 10 not at all);
- every Kubernetes manifest passes `kubernetes-validate --strict` for
  Kubernetes 1.33 (unknown fields rejected), and a manifest with a misspelt
  field is refused, so the check can fail;
- every FT_* variable the files set is a configuration key of
  docs/configuration.md.
"""
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

K8S_VERSION = "1.33.0"
PROGRAMS = {"ft-api": "api/ft-api", "ft-scheduler": "scheduler/ft-scheduler",
            "ft-worker": "worker/ft-worker", "ft-migrate": "migrations/ft-migrate",
            "ft-serve": "serve/ft-serve"}


def units(root):
    d = root / "deploy" / "systemd"
    return sorted(d.glob("*.service")) + sorted(d.glob("*.target"))


@pytest.fixture(scope="module")
def sysroot(root, build_dir, tmp_path_factory):
    if not shutil.which("systemd-analyze"):
        pytest.fail("systemd-analyze is missing: deploy/install-deps.sh installs systemd")
    r = tmp_path_factory.mktemp("sysroot")
    (r / "usr/lib/systemd").mkdir(parents=True)
    shutil.copytree("/usr/lib/systemd/system", r / "usr/lib/systemd/system", symlinks=True)
    (r / "etc/systemd/system").mkdir(parents=True)
    (r / "etc/ftplat").mkdir(parents=True)
    shutil.copy(root / "deploy/systemd/ftplat.env", r / "etc/ftplat/ftplat.env")
    for u in units(root):
        shutil.copy(u, r / "etc/systemd/system" / u.name)
    bindir = r / "usr/local/bin"
    bindir.mkdir(parents=True)
    for name, rel in PROGRAMS.items():
        built = build_dir / rel
        if built.exists():
            shutil.copy(built, bindir / name)
        else:
            assert name == "ft-serve", f"{built} is not built"
            (bindir / name).write_text("#!/bin/sh\necho 'ft-serve is not built yet' >&2\nexit 1\n")
            (bindir / name).chmod(0o755)
    return r


def test_every_process_has_a_unit(root):
    names = {u.stem for u in units(root)}
    assert {"ft-api", "ft-scheduler", "ft-worker", "ft-serve", "ft-migrate", "ftplat"} <= names
    serve = (root / "deploy/systemd/ft-serve.service").read_text()
    assert "FUTURE" not in serve and "ExecStart=/usr/local/bin/ft-serve" in serve


@pytest.mark.parametrize("unit", [u.name for u in units(Path(__file__).resolve().parents[2])])
def test_systemd_analyze_verify(sysroot, unit):
    p = subprocess.run(["systemd-analyze", "verify", f"--root={sysroot}",
                        str(sysroot / "etc/systemd/system" / unit)],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and p.stdout == "" and p.stderr == "", p.stdout + p.stderr


def test_verify_catches_a_missing_program(sysroot):
    # The check can fail: a unit whose ExecStart names nothing is refused.
    bad = sysroot / "etc/systemd/system/ft-bad.service"
    bad.write_text("[Service]\nExecStart=/usr/local/bin/ft-nothing\n")
    p = subprocess.run(["systemd-analyze", "verify", f"--root={sysroot}", str(bad)],
                       capture_output=True, text=True, timeout=120)
    bad.unlink()
    assert p.returncode != 0 and "ft-nothing" in p.stderr


@pytest.mark.parametrize("unit", ["ft-api", "ft-scheduler", "ft-worker", "ft-serve", "ft-migrate"])
def test_sandbox_exposure(sysroot, unit):
    p = subprocess.run(["systemd-analyze", "security", "--offline=true", "--threshold=25",
                        f"--root={sysroot}", str(sysroot / "etc/systemd/system" / f"{unit}.service")],
                       capture_output=True, text=True, timeout=120)
    level = re.search(r"Overall exposure level for \S+: ([0-9.]+)", p.stdout + p.stderr)
    assert level, p.stdout + p.stderr
    assert p.returncode == 0 and float(level.group(1)) <= 2.5, p.stdout[-3000:]
    text = (sysroot / "etc/systemd/system" / f"{unit}.service").read_text()
    for must in ("User=ftplat", "ProtectSystem=strict", "NoNewPrivileges=yes", "PrivateTmp=yes",
                 "ReadWritePaths=", "StandardOutput=journal"):
        assert must in text, f"{unit}: no {must}"


def k8s_files(root):
    return sorted((root / "deploy/k8s").glob("*.yaml"))


def validate(paths):
    return subprocess.run([sys.executable, "-m", "kubernetes_validate", "-k", K8S_VERSION,
                           "--strict", *map(str, paths)], capture_output=True, text=True, timeout=300)


def test_kubernetes_manifests_validate(root):
    p = validate(k8s_files(root))
    assert p.returncode == 0, p.stdout + p.stderr
    docs = [d for f in k8s_files(root) for d in yaml.safe_load_all(f.read_text()) if d]
    kinds = {(d["kind"], d["metadata"]["name"]) for d in docs}
    assert {("Deployment", "ft-api"), ("Deployment", "ft-scheduler"), ("Deployment", "ft-worker-gpu"),
            ("Deployment", "ft-serve"), ("Service", "ft-api"), ("Service", "ft-serve"),
            ("ConfigMap", "ftplat-config"), ("Secret", "ftplat-secrets"), ("Job", "ft-migrate")} <= kinds
    passed = p.stdout.count(" passed for resource ")
    assert passed == len(docs), p.stdout
    by = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    assert by[("Deployment", "ft-scheduler")]["spec"]["replicas"] == 2
    c = by[("Deployment", "ft-worker-gpu")]["spec"]["template"]["spec"]["containers"][0]
    assert c["resources"]["limits"]["nvidia.com/gpu"] == 1
    for name in ("ft-api", "ft-serve"):
        c = by[("Deployment", name)]["spec"]["template"]["spec"]["containers"][0]
        assert c["readinessProbe"]["httpGet"]["path"] == "/health"
        assert c["livenessProbe"]["httpGet"]["path"].startswith("/health")
    for (kind, name), d in by.items():
        if kind == "Deployment":
            ann = d["spec"]["template"]["metadata"]["annotations"]
            assert ann["prometheus.io/scrape"] == "true", name


def test_strict_validation_refuses_a_misspelt_field(root, tmp_path):
    text = (root / "deploy/k8s/40-api.yaml").read_text().replace("readinessProbe:", "readinesProbe:")
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    p = validate([bad])
    assert p.returncode != 0 and "readinesProbe" in p.stdout + p.stderr


def test_every_variable_set_is_a_configuration_key(root):
    documented = set(re.findall(r"`(FT_[A-Z0-9_]+)`", (root / "docs/configuration.md").read_text()))
    documented.add("FT_CONFIG")
    used = set()
    for f in list((root / "deploy/systemd").iterdir()) + k8s_files(root) + [root / "deploy/Containerfile"]:
        used |= set(re.findall(r"\b(FT_[A-Z0-9_]+)\s*[=:]", f.read_text()))
        used |= set(re.findall(r"name: (FT_[A-Z0-9_]+)", f.read_text()))
    used -= {"FT_CUDA"}   # the Containerfile's build argument, a CMake option
    assert used and used <= documented, sorted(used - documented)
