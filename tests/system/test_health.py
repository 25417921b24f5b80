"""The /health endpoints the deployment files probe (deploy/systemd, deploy/k8s):
ft-api's readiness (/health: 200 while PostgreSQL answers, 503 while it does
not, 200 again after) and liveness (/health/live), both without a key; and
/health on the metrics port of ft-scheduler and ft-worker."""
import os
import signal
import subprocess
import time

import httpx
import psycopg
import pytest

from conftest import _with_db, free_port


def test_api_health_follows_the_database(api_server, database_url):
    r = httpx.get(f"{api_server.url}/health", timeout=10)
    assert r.status_code == 200
    assert r.json() == {"status": "ok", "database": "ok", "store": "local"}
    assert httpx.get(f"{api_server.url}/health/live", timeout=10).json() == {"status": "ok"}

    name = api_server.db_url.rsplit("/", 1)[1].split("?")[0]
    with psycopg.connect(database_url, autocommit=True) as c:
        c.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        c.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
    try:
        r = httpx.get(f"{api_server.url}/health", timeout=30)
        assert r.status_code == 503, r.text
        assert r.json()["error"]["code"]
        # Liveness does not depend on the database.
        assert httpx.get(f"{api_server.url}/health/live", timeout=10).status_code == 200
    finally:
        with psycopg.connect(database_url, autocommit=True) as c:
            c.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
    deadline = time.time() + 20
    while httpx.get(f"{api_server.url}/health", timeout=30).status_code != 200:
        assert time.time() < deadline, "ft-api did not become ready again"
        time.sleep(0.2)


def _get_until_up(url, proc, log):
    deadline = time.time() + 30
    while True:
        assert proc.poll() is None, log.read_text()
        try:
            return httpx.get(url, timeout=5)
        except httpx.TransportError:
            assert time.time() < deadline, log.read_text()
            time.sleep(0.05)


@pytest.mark.parametrize("prog", ["scheduler/ft-scheduler", "worker/ft-worker"])
def test_metrics_port_answers_health(prog, build_dir, database_url, redis_url, tmp_path):
    port = free_port()
    env = dict(os.environ, FT_DATABASE_URL=database_url, FT_REDIS_URL=redis_url,
               FT_METRICS_PORT=str(port), FT_STORE_DIR=str(tmp_path / "store"),
               FT_WORK_DIR=str(tmp_path / "work"), FT_CACHE_DIR=str(tmp_path / "cache"), FT_WORKER_GPUS="0", FT_LOG_LEVEL="info")
    log = tmp_path / "log"
    with open(log, "w") as lf:
        p = subprocess.Popen([str(build_dir / prog)], env=env, stdout=lf, stderr=lf)
    try:
        r = _get_until_up(f"http://127.0.0.1:{port}/health", p, log)
        assert (r.status_code, r.text) == (200, "ok\n")
        assert httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).status_code == 200
        assert httpx.get(f"http://127.0.0.1:{port}/nope", timeout=5).status_code == 404
    finally:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(20)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
