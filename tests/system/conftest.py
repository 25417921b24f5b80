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
