"""Running out of descriptors (EMFILE) must not spin the loop.

The server's descriptor limit is lowered under it with prlimit(1), then
more clients connect than it can accept. A loop that kept polling a
listener it cannot accept from would burn a whole core; vkws backs off
(VKWS_ACCEPT_BACKOFF_MS), counts the failure, keeps serving the
connections it has, and accepts again once descriptors are free.
"""
import os
import shutil
import socket
import subprocess
import time

import pytest

import wsraw
from wsraw import OP_TEXT

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def metric(s, name):
    resp = s.get("/metrics")
    for line in resp.body.decode().splitlines():
        if line.startswith(name + " "):
            return int(line.split()[1])
    raise AssertionError("no %s in /metrics" % name)


@pytest.mark.skipif(shutil.which("prlimit") is None, reason="no prlimit")
def test_emfile_backs_off_and_recovers(server):
    s = server("--echo", "--handshake-timeout", "60")
    if s.transport.name != "plain":
        pytest.skip("plain only: the accept path is the same for TLS")
    pid = s.proc.pid
    # A working connection from before, to show it keeps being served.
    before = s.ws()
    # 3 standard descriptors, the self-pipe, the listener, `before`:
    # the limit leaves room for a few more connections, not 40.
    limit = 14
    subprocess.run(["prlimit", "--pid", str(pid),
                    "--nofile=%d:" % limit], check=True)
    flood = []
    try:
        for _ in range(40):
            c = socket.create_connection((s.host, s.port), timeout=5)
            flood.append(c)
        # The listener stays readable while accept() fails: measure the
        # CPU the server burns over two seconds of that.
        t0 = cpu_seconds(pid)
        time.sleep(2.0)
        used = cpu_seconds(pid) - t0
        # A spinning loop uses about 2 s here; a backing-off one almost
        # nothing. Half a second leaves room for a slow machine.
        assert used < 0.5, "server burned %.2f s of CPU at EMFILE" % used
        before.send_text(b"still here")
        assert before.recv_message()[:2] == (OP_TEXT, b"still here")
    finally:
        for c in flood:
            c.close()
    # Descriptors come back as the flood's sockets reach EOF.
    subprocess.run(["prlimit", "--pid", str(pid), "--nofile=1024:"],
                   check=True)
    deadline = time.monotonic() + 10
    while True:
        try:
            after = s.ws(timeout=2)
            break
        except (OSError, wsraw.Closed):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    after.send_text(b"accepted again")
    assert after.recv_message()[:2] == (OP_TEXT, b"accepted again")
    after.close()
    before.close()
    assert metric(s, "vkws_accept_errors_total") > 0
    assert s.proc.poll() is None
