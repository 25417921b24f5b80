"""The multi-host harness (netns.py) does what the multi-host test will rely on:
every host reaches every other over TCP; a host's loopback is its own, not the
machine's; cutting a host's link makes it unreachable both ways while the
others still talk; restoring it brings it back; and teardown leaves no
namespace behind."""
import subprocess
import sys
import time

import pytest

from conftest import free_port
from netns import Network, netns_hosts  # noqa: F401

ECHO = """
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(16)
print("ready", flush=True)
while True:
    c, _ = s.accept()
    c.sendall(sys.argv[3].encode() + b":" + c.recv(64)); c.close()
"""

CLIENT = """
import socket, sys
try:
    c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3]))
    c.sendall(b"ping"); print(c.recv(64).decode())
except OSError as e:
    print("error:", e); sys.exit(3)
"""


def echo_servers(net, port=7000):
    for h in net.hosts.values():
        p = h.popen([sys.executable, "-c", ECHO, h.addr, port, h.name], stdout=subprocess.PIPE, text=True)
        assert p.stdout.readline().strip() == "ready"


def talk(src, dst, port=7000, timeout=2.0):
    p = src.run([sys.executable, "-c", CLIENT, dst, port, timeout], check=False, timeout=30)
    return p.stdout.strip()


def test_hosts_reach_each_other_and_a_cut_link_isolates_one(netns_hosts):
    net = netns_hosts
    echo_servers(net)
    names = sorted(net.hosts)
    for s in names:
        for d in names:
            assert talk(net[s], net[d].addr) == f"{d}:ping", (s, d)

    # A host's 127.0.0.1 is its own: a server on the machine's loopback
    # answers the machine, not the host.
    port = free_port()
    mine = subprocess.Popen([sys.executable, "-c", ECHO, "127.0.0.1", str(port), "machine"],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert mine.stdout.readline().strip() == "ready"
        here = subprocess.run([sys.executable, "-c", CLIENT, "127.0.0.1", str(port), "2"],
                              capture_output=True, text=True, timeout=30)
        assert here.stdout.strip() == "machine:ping"
        assert talk(net["a"], "127.0.0.1", port=port).startswith("error:")
    finally:
        mine.kill()
        mine.wait()

    net.cut("b")
    t0 = time.time()
    assert talk(net["a"], net["b"].addr, timeout=1.0).startswith("error:")
    assert talk(net["b"], net["d"].addr, timeout=1.0).startswith("error:")
    assert time.time() - t0 < 10
    assert talk(net["a"], net["d"].addr) == "d:ping"      # the others are unaffected
    assert talk(net["c"], net["a"].addr) == "a:ping"

    net.restore("b")
    deadline = time.time() + 10
    while talk(net["a"], net["b"].addr, timeout=1.0) != "b:ping":
        assert time.time() < deadline, "b did not come back after restore"
        time.sleep(0.1)
    assert talk(net["b"], net["d"].addr) == "d:ping"
    assert {h.dir.name for h in net.hosts.values()} == set(names)


def test_teardown_removes_every_namespace():
    import os
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    net = Network(names=("x", "y"))
    made = list(net.made)
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert all(ns in listed for ns in made)
    net.close()
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert not any(ns in listed for ns in made)
