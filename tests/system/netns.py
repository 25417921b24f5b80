"""Hosts on one machine for multi-host tests: network namespaces on a bridge.

    from netns import netns_hosts  # noqa: F401  (the fixture)

    def test_x(netns_hosts):
        a, b = netns_hosts["a"], netns_hosts["b"]
        srv = b.popen([sys.executable, "-m", "http.server", "--bind", b.addr, "8000"])
        a.run(["curl", f"http://{b.addr}:8000/"])
        netns_hosts.cut("b")        # b's cable pulled: nobody reaches b, b reaches nobody
        netns_hosts.restore("b")

Topology (all of it inside namespaces this fixture makes and removes; the
machine's own network namespace is never touched):

    namespace ft<id>-sw: bridge br0
        |-- v<id>a <== veth ==> eth0 in ft<id>-a   10.99.<n>.1/24
        |-- v<id>b <== veth ==> eth0 in ft<id>-b   10.99.<n>.2/24
        ...                                          (hosts a, b, c, d by default)

Each host has its own loopback (a server on a host's 127.0.0.1 is not the
machine's) and a private folder, `host.dir`, to stand for its disk. cut()
takes the switch side of a host's veth down, which is what a pulled cable
looks like to both sides (the host sees NO-CARRIER, its peers' packets to it
are dropped); restore() brings it back. The addresses are in 10.99.0.0/16,
which exists only inside these namespaces; <n> is random per fixture so
concurrent runs do not collide in names either (names carry a random id).

Needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN) and iproute2; the fixture skips,
saying why, without them. Processes started with Host.popen() are killed at
teardown, then the namespaces are deleted (which deletes the veths and the
bridge).
"""
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import pytest


def _ip(*args, check=True):
    p = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if check and p.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {p.stderr.strip()}")
    return p


class Host:
    def __init__(self, net, name, ns, addr, link, folder):
        self.net, self.name, self.ns, self.addr, self.link, self.dir = net, name, ns, addr, link, folder

    def _argv(self, cmd):
        return ["ip", "netns", "exec", self.ns, *map(str, cmd)]

    def run(self, cmd, check=True, timeout=60, **kw):
        """Run cmd in this host's network namespace; CompletedProcess (text)."""
        p = subprocess.run(self._argv(cmd), capture_output=True, text=True, timeout=timeout, **kw)
        if check and p.returncode != 0:
            raise AssertionError(f"[{self.name}] {cmd} exited {p.returncode}:\n{p.stdout}{p.stderr}")
        return p

    def popen(self, cmd, **kw):
        """Start cmd in this host's namespace; killed at teardown."""
        p = subprocess.Popen(self._argv(cmd), start_new_session=True, **kw)
        self.net.procs.append(p)
        return p


class Network:
    def __init__(self, names=("a", "b", "c", "d")):
        self.id = secrets.token_hex(3)
        self.subnet = f"10.99.{secrets.randbelow(250) + 1}"
        self.sw = f"ft{self.id}-sw"
        self.hosts, self.procs, self.made = {}, [], []
        self.root = Path(tempfile.mkdtemp(prefix=f"ftnet-{self.id}-"))
        try:
            self._ns(self.sw)
            _ip("-n", self.sw, "link", "add", "br0", "type", "bridge")
            _ip("-n", self.sw, "link", "set", "br0", "up")
            for i, name in enumerate(names):
                ns, link = f"ft{self.id}-{name}", f"v{self.id}{name}"
                self._ns(ns)
                # Both ends are born in their namespaces: nothing appears in ours.
                _ip("link", "add", "eth0", "netns", ns, "type", "veth", "peer", "name", link,
                    "netns", self.sw)
                _ip("-n", self.sw, "link", "set", link, "master", "br0")
                _ip("-n", self.sw, "link", "set", link, "up")
                addr = f"{self.subnet}.{i + 1}"
                _ip("-n", ns, "addr", "add", f"{addr}/24", "dev", "eth0")
                _ip("-n", ns, "link", "set", "eth0", "up")
                folder = self.root / name
                folder.mkdir()
                self.hosts[name] = Host(self, name, ns, addr, link, folder)
        except Exception:
            self.close()
            raise

    def _ns(self, ns):
        _ip("netns", "add", ns)
        self.made.append(ns)
        _ip("-n", ns, "link", "set", "lo", "up")

    def __getitem__(self, name):
        return self.hosts[name]

    def cut(self, name):
        _ip("-n", self.sw, "link", "set", self.hosts[name].link, "down")

    def restore(self, name):
        _ip("-n", self.sw, "link", "set", self.hosts[name].link, "up")

    def close(self):
        for p in self.procs:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                p.wait(10)
        for ns in reversed(self.made):
            _ip("netns", "del", ns, check=False)
        self.made = []
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
def netns_hosts():
    """Hosts a, b, c, d (see the module's top comment); removed afterwards."""
    if os.geteuid() != 0 or not shutil.which("ip"):
        pytest.skip("network namespaces need root and iproute2 (deploy/install-deps.sh)")
    net = Network()
    yield net
    net.close()
