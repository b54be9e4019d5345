"""
POST /api from peers off loopback (PROTOCOL.md 4, issue 18): 403 unless
the server runs with --api-remote; with it, the key decides.

Every other test talks to 127.0.0.1, where the loopback check always
passes. These run the server and the client in a network namespace of
their own (as root, with `ip netns` from iproute2) holding a veth pair
with private addresses, 10.213.N.1 and fd00:213::1: a
connection from one of those addresses to itself is off loopback, and no
packet leaves the namespace. The namespace is deleted at teardown, with
the server in it. tests/test_loopback.c checks the same rule at the C
level (vkws_is_loopback) without root.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time

import pytest

from conftest import read_all, vkws_bin

KEY = "remote-test-key"
V4 = "10.213.%d.1" % (os.getpid() % 250)
V6 = "fd00:213::1"
CLIENT = r"""
import socket, sys
host, port, key = sys.argv[1], int(sys.argv[2]), sys.argv[3]
body = b'{"method":"getStats"}'
fam = socket.AF_INET6 if ":" in host else socket.AF_INET
s = socket.socket(fam, socket.SOCK_STREAM)
s.settimeout(10)
s.connect((host, port))
s.sendall(("POST /api HTTP/1.1\r\nHost: x\r\nAuthorization: apikey %s\r\n"
           "Content-Length: %d\r\nConnection: close\r\n\r\n"
           % (key, len(body))).encode() + body)
out = b""
while True:
    b = s.recv(65536)
    if not b:
        break
    out += b
print(out.split(b"\r\n", 1)[0].decode())
print(out.split(b"\r\n\r\n", 1)[1].decode())
"""

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("ip") is None,
    reason="needs root and iproute2's ip (network namespaces); "
    "tests/test_loopback.c checks the rule without them")


def sh(*args, check=True):
    return subprocess.run(args, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=30, check=check)


@pytest.fixture
def netns():
    """A namespace with lo up and a veth pair, V4 and V6 on one end."""
    name = "vkws-remote-%d" % os.getpid()
    sh("ip", "netns", "add", name)
    try:
        sh("ip", "-n", name, "link", "set", "lo", "up")
        # A veth pair, both ends inside (the dummy driver may be
        # missing from a container's kernel; veth is always there).
        sh("ip", "-n", name, "link", "add", "v0", "type", "veth", "peer",
           "name", "v1")
        sh("ip", "-n", name, "addr", "add", V4 + "/24", "dev", "v0")
        sh("ip", "-n", name, "addr", "add", V6 + "/64", "dev", "v0",
           "nodad")
        sh("ip", "-n", name, "link", "set", "v0", "up")
        sh("ip", "-n", name, "link", "set", "v1", "up")
        yield name
    finally:
        sh("ip", "netns", "del", name, check=False)
    assert name not in sh("ip", "netns", "list").stdout.decode()


class NsServer:
    """vkws inside the namespace, on listen (port 0: the kernel's)."""

    def __init__(self, ns, listen, *flags):
        self.ns = ns
        # Output to files: nothing to drain, and a full pipe cannot
        # block the server.
        self.out = tempfile.TemporaryFile()
        self.errf = tempfile.TemporaryFile()
        self.p = subprocess.Popen(
            ["ip", "netns", "exec", ns, vkws_bin(), "--listen", listen,
             "--api-key", KEY] + list(flags),
            stdin=subprocess.DEVNULL, stdout=self.out, stderr=self.errf)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and self.p.poll() is None:
            m = re.search(rb"^listening on (\S+):(\d+)$", read_all(self.out),
                          re.M)
            if m:
                self.port = int(m.group(2))
                return
            time.sleep(0.05)
        self.p.kill()
        self.p.wait()
        raise AssertionError("no listening line: %s" % self.stderr())

    def stderr(self):
        return read_all(self.errf).decode(errors="replace")

    def call(self, host, key=KEY):
        """(status line, body) of POST /api from inside the namespace."""
        r = sh("ip", "netns", "exec", self.ns, "/usr/bin/python3", "-c",
               CLIENT, host, str(self.port), key)
        line, body = r.stdout.decode().split("\n", 1)
        return line.split(" ")[1], body.strip()

    def stop(self):
        self.p.send_signal(signal.SIGTERM)
        rc = self.p.wait(10)
        assert rc == 0, "exit %r: %s" % (rc, self.stderr())


def test_off_loopback_v4_is_403(netns):
    s = NsServer(netns, V4 + ":0")
    try:
        assert s.call(V4) == ("403", "Forbidden")
        # The key is not even looked at: a wrong one is 403 too.
        assert s.call(V4, "wrong")[0] == "403"
    finally:
        s.stop()


def test_off_loopback_v6_and_mapped_are_403(netns):
    """[::] takes IPv6 and, mapped (::ffff:a.b.c.d), IPv4: only ::1 and
    127.0.0.0/8 are loopback."""
    s = NsServer(netns, "[::]:0")
    try:
        assert s.call(V6)[0] == "403"
        assert s.call(V4)[0] == "403"           # ::ffff:10.213.N.1
        status, body = s.call("::1")
        assert status == "200" and json.loads(body)["code"] == 0, body
        status, body = s.call("127.0.0.1")      # ::ffff:127.0.0.1
        assert status == "200" and json.loads(body)["code"] == 0, body
    finally:
        s.stop()


def test_api_remote_answers_off_loopback(netns):
    s = NsServer(netns, "[::]:0", "--api-remote")
    try:
        for host in (V4, V6, "127.0.0.1"):
            status, body = s.call(host)
            assert status == "200", (host, status, body)
            assert json.loads(body)["code"] == 0, body
        # Remote peers still need the key.
        assert s.call(V4, "wrong")[0] == "401"
        assert s.call(V6, "")[0] == "401"
    finally:
        s.stop()


def test_loopback_in_namespace_answers(netns):
    """The same namespace on its own loopback: 200, so the 403s above
    come from the address, not from the namespace."""
    s = NsServer(netns, "127.0.0.1:0")
    try:
        status, body = s.call("127.0.0.1")
        assert status == "200" and json.loads(body)["code"] == 0, body
    finally:
        s.stop()
