"""The throwaway Redis that deploy/dev/redis.sh starts is configured as the
design requires (append-only, no eviction, loopback only), and survives a
restart with what it acknowledged."""
import os
import subprocess
from pathlib import Path

import redis


def test_redis_is_configured_for_no_silent_loss(redis_url):
    r = redis.Redis.from_url(redis_url)
    assert r.ping()
    assert r.config_get("appendonly")["appendonly"] == "yes"
    assert r.config_get("maxmemory-policy")["maxmemory-policy"] == "noeviction"
    assert r.config_get("bind")["bind"] == "127.0.0.1"


def test_redis_stream_roundtrip(redis_url):
    r = redis.Redis.from_url(redis_url)
    key = "ft:test:stream"
    r.delete(key)
    ids = [r.xadd(key, {"step": str(i), "loss": f"{2.0 / (i + 1):.4f}"}) for i in range(5)]
    got = r.xrange(key)
    assert [g[0] for g in got] == ids
    assert got[3][1][b"loss"] == b"0.5000"
    r.delete(key)


def test_redis_restart_keeps_appendonly_data(root, tmp_path):
    """Start a second private server, write, stop it hard, restart on the same
    folder: the append-only file brings the data back."""
    script = root / "deploy" / "dev" / "redis.sh"
    url = subprocess.run([str(script), "start", str(tmp_path)], capture_output=True, text=True,
                         check=True).stdout.strip()
    try:
        r = redis.Redis.from_url(url)
        r.set("ft:test:kept", "yes")
        r.execute_command("CONFIG", "SET", "appendfsync", "always")
        r.set("ft:test:kept2", "also")
        pid = int((tmp_path / "redis" / "redis.pid").read_text())
        os.kill(pid, 9)
        url2 = subprocess.run([str(script), "start", str(tmp_path)], capture_output=True,
                              text=True, check=True).stdout.strip()
        r2 = redis.Redis.from_url(url2)
        assert r2.get("ft:test:kept2") == b"also"
    finally:
        subprocess.run([str(script), "stop", str(tmp_path)], check=False)
