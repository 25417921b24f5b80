"""Fixtures shared by the system tests.

tests/run.sh starts a throwaway PostgreSQL and Redis and exports
FT_DATABASE_URL, FT_REDIS_URL, FT_BUILD_DIR and FT_TEST_TMP. A test that needs a
fresh database gets one from the `fresh_db` fixture (created and dropped here).
"""
import os
import secrets
import subprocess
from pathlib import Path

import psycopg
import pytest

ROOT = Path(__file__).resolve().parents[2]


def _need(var):
    v = os.environ.get(var)
    if not v:
        pytest.fail(f"{var} is not set: run the suite through tests/run.sh")
    return v


@pytest.fixture(scope="session")
def root():
    return ROOT


@pytest.fixture(scope="session")
def build_dir():
    return Path(_need("FT_BUILD_DIR"))


@pytest.fixture(scope="session")
def database_url():
    return _need("FT_DATABASE_URL")


@pytest.fixture(scope="session")
def redis_url():
    return _need("FT_REDIS_URL")


@pytest.fixture(scope="session")
def pg_bindir():
    for d in sorted(Path("/usr/lib/postgresql").glob("*/bin")):
        if (d / "pg_dump").exists():
            return d
    pytest.fail("pg_dump not found")


def _with_db(url, name):
    base, _, _ = url.rpartition("/")
    return f"{base}/{name}"


@pytest.fixture
def fresh_db(database_url):
    """A new empty database; yields its URL and drops it afterwards."""
    name = "t_" + secrets.token_hex(6)
    with psycopg.connect(database_url, autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    url = _with_db(database_url, name)
    yield url
    with psycopg.connect(database_url, autocommit=True) as c:
        c.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def run(cmd, check=True, env=None, **kw):
    """Run a command, returning CompletedProcess with text output."""
    e = dict(os.environ)
    if env:
        e.update(env)
    p = subprocess.run(cmd, capture_output=True, text=True, env=e, timeout=300, **kw)
    if check and p.returncode != 0:
        raise AssertionError(f"{cmd} exited {p.returncode}\nstdout:\n{p.stdout}\nstderr:\n{p.stderr}")
    return p


# ---- ft-api -------------------------------------------------------------

import signal
import socket
import time
from types import SimpleNamespace


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ApiServer:
    """One ft-api process on its own database, store folder and port."""

    def __init__(self, build_dir, db_url, redis_url, tmp, **config):
        self.build_dir = build_dir
        self.db_url = db_url
        self.redis_url = redis_url
        self.store_dir = tmp / "store"
        self.log_path = tmp / "ft-api.log"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            "FT_DATABASE_URL": db_url, "FT_REDIS_URL": redis_url,
            "FT_LISTEN_ADDR": "127.0.0.1", "FT_LISTEN_PORT": str(self.port),
            "FT_STORE_DIR": str(self.store_dir), "FT_API_THREADS": "4",
            "FT_LOG_LEVEL": "info",
        }
        self.env.update({f"FT_{k.upper()}": str(v) for k, v in config.items()})
        self.proc = None

    def admin(self, *args):
        exe = str(self.build_dir / "api" / "ft-api")
        return run([exe, "admin", *args], env=self.env).stdout.split()

    def make_team(self, name, role="admin"):
        """A new team and a key of the given role: (team_id, key)."""
        team = self.admin("create-team", name)[0]
        return team, self.make_key(team, role)

    def make_key(self, team, role):
        return self.admin("create-key", "--team", team, "--role", role)[-1]

    def start(self):
        exe = str(self.build_dir / "api" / "ft-api")
        env = dict(os.environ)
        env.update(self.env)
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1")
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([exe, "serve"], env=env, stdout=self.log, stderr=self.log)
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"ft-api exited {self.proc.returncode}:\n{self.log_path.read_text()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise AssertionError("ft-api did not start listening within 30 s")

    def stop(self, sig=signal.SIGTERM):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        rc = self.proc.returncode if self.proc else 0
        self.proc = None
        if getattr(self, "log", None):
            self.log.close()
        return rc


def _api_server(build_dir, database_url, redis_url, tmp_path_factory, **config):
    name = "api_" + secrets.token_hex(6)
    with psycopg.connect(database_url, autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    url = _with_db(database_url, name)
    run([str(build_dir / "migrations" / "ft-migrate"), "--database-url", url, "up"])
    srv = ApiServer(build_dir, url, redis_url, tmp_path_factory.mktemp("api"), **config)
    team, key = srv.make_team("acme")
    srv.team, srv.key = team, key
    srv.start()
    return srv, name


@pytest.fixture(scope="module")
def api_server(build_dir, database_url, redis_url, tmp_path_factory):
    """ft-api on a fresh, migrated database with a temp store, a secret_key
    (endpoint credentials) and endpoints allowed on http://127.0.0.1; .url, .key (admin of team .team), .db_url, .store_dir,
    .make_team(name) -> (team, key). Killed after."""
    srv, name = _api_server(build_dir, database_url, redis_url, tmp_path_factory,
                            max_upload_bytes=1 << 20, secret_key=secrets.token_hex(32),
                            endpoint_allow_http="true", endpoint_allow_cidrs="127.0.0.1/32")
    yield srv
    rc = srv.stop()
    with psycopg.connect(database_url, autocommit=True) as c:
        c.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    assert rc == 0, f"ft-api exited {rc} (sanitizer report?):\n{srv.log_path.read_text()[-4000:]}"


# ---- the S3-compatible server (deploy/dev/s3.sh) -------------------------

S3_VARS = ("FT_S3_ENDPOINT", "FT_S3_BUCKET", "FT_S3_ACCESS_KEY", "FT_S3_SECRET_KEY")


def s3_or_skip():
    missing = [v for v in S3_VARS if not os.environ.get(v)]
    if missing:
        pytest.skip(f"no S3 server in the environment ({', '.join(missing)}): deploy/dev/s3.sh")


def s3_bucket():
    """A boto3 client on the test server (AWS's own SDK: another SigV4
    implementation than libcurl's) and the bucket's name."""
    import boto3
    import botocore.config
    s3 = boto3.client("s3", endpoint_url=os.environ["FT_S3_ENDPOINT"],
                      aws_access_key_id=os.environ["FT_S3_ACCESS_KEY"],
                      aws_secret_access_key=os.environ["FT_S3_SECRET_KEY"],
                      region_name=os.environ.get("FT_S3_REGION", "us-east-1"),
                      config=botocore.config.Config(s3={"addressing_style": "path"}))
    return s3, os.environ["FT_S3_BUCKET"]
