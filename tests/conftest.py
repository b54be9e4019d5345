"""
Fixtures for the vkws integration tests.

`server(*flags)` starts the binary (VKWS_BIN, default ./vkws at the repo
root) on 127.0.0.1 port 0, waits for its `listening on` line and stops it
with SIGTERM at teardown, failing the test unless it exits 0 (a crash, a
sanitizer report or a hang all fail). `echo_server` is one shared
`--echo` process per transport; each test that uses it checks afterwards
that it is still alive.

Every connection, raw or through python3-websockets, is opened through the
transport object (`Transport.open_socket`, `Server.ws_connect`), so a TLS
step can add a transport to TRANSPORTS and rerun the whole battery over
wss:// without touching the tests.
"""

import asyncio
import os
import re
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import pytest
import websockets

sys.path.insert(0, os.path.dirname(__file__))
import wsraw  # noqa: E402
import tls_util  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HOST = "127.0.0.1"
START_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0
# Every test client comes from 127.0.0.1, and many tests open hundreds of
# connections or reconnect the same user quickly: the per-address cap and
# the reconnect rate (PROTOCOL.md 8) are off unless a test's own flags
# (which come later and win) turn them on. tests/test_admission.py tests
# them, their defaults included (ADMISSION_DEFAULTS).
BASE_FLAGS = ["--max-per-ip", "0", "--reconnect-rate", "0"]


def read_all(f):
    """The whole of a file a child process writes to, read without
    moving the file's offset: the child shares the open file and writes
    at that offset, so a seek here would have it overwrite its own log."""
    f.flush()
    fd = f.fileno()
    return os.pread(fd, os.fstat(fd).st_size, 0)


def vkws_bin():
    b = os.environ.get("VKWS_BIN", "./vkws")
    return b if os.path.isabs(b) else os.path.join(ROOT, b)


class Transport:
    """Plain TCP. A TLS transport overrides the flags, the listening line,
    open_socket() and ssl_context()."""

    name = "plain"
    scheme = "ws"
    conn_cap = 1 << 20  # connections the transport holds at once
    http_scheme = "http"
    listen_re = re.compile(r"^listening on 127\.0\.0\.1:(\d+)$")

    def server_flags(self):
        return ["--listen", "%s:0" % HOST]

    def open_socket(self, host, port, timeout=wsraw.DEFAULT_TIMEOUT,
                    rcvbuf=None, sndbuf=None):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        if sndbuf:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
        s.settimeout(timeout)
        try:
            s.connect((host, port))
        except OSError:
            s.close()
            raise
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return s

    def ssl_context(self):
        return None


class TlsTransport(Transport):
    """TLS on --tls-listen (with a plain listener on another free port):
    every socket is wrapped in a context that trusts the test CA, so the
    whole battery runs again over wss:// and https://. The certificate is
    made once per session (tls_util)."""

    name = "tls"
    scheme = "wss"
    http_scheme = "https"
    conn_cap = 32  # VKWS_MAX_TLS_CONNS of the default build
    listen_re = re.compile(r"^listening on 127\.0\.0\.1:(\d+) tls$")
    _ctx = None

    def server_flags(self):
        crt, key = tls_util.pair("ec-pkcs8")
        return ["--listen", "%s:0" % HOST, "--tls-listen", "%s:0" % HOST,
                "--cert", crt, "--key", key]

    def open_socket(self, host, port, timeout=wsraw.DEFAULT_TIMEOUT,
                    rcvbuf=None, sndbuf=None):
        s = Transport.open_socket(self, host, port, timeout, rcvbuf, sndbuf)
        try:
            return self.ssl_context().wrap_socket(s, server_hostname=host)
        except BaseException:
            s.close()
            raise

    def ssl_context(self):
        if TlsTransport._ctx is None:
            TlsTransport._ctx = tls_util.client_context()
        return TlsTransport._ctx


TRANSPORTS = {"plain": Transport, "tls": TlsTransport}


class Server:
    def __init__(self, transport, flags):
        self.transport = transport
        self.flags = list(flags)
        self.host = HOST
        self.port = None
        self.errfile = tempfile.TemporaryFile()
        base = [] if "ADMISSION_DEFAULTS" in self.flags else BASE_FLAGS
        argv = [vkws_bin()] + transport.server_flags() + base + [
            f for f in self.flags if f != "ADMISSION_DEFAULTS"]
        if not os.path.exists(argv[0]):
            pytest.fail("server binary %s does not exist (make vkws)"
                        % argv[0])
        self.argv = argv
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE,
                                     stderr=self.errfile, cwd=ROOT)
        self.stdout_lines = []
        self._wait_listening()
        # Keep draining stdout so the server can never block on it.
        self._drain = threading.Thread(target=self._drain_stdout,
                                       daemon=True)
        self._drain.start()

    def _wait_listening(self):
        deadline = time.monotonic() + START_TIMEOUT
        fd = self.proc.stdout.fileno()
        pending = b""
        while time.monotonic() < deadline:
            r, _, _ = select.select([fd], [], [],
                                    max(0.0, deadline - time.monotonic()))
            if not r:
                break
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            pending += chunk
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                text = line.decode("utf-8", "replace").rstrip("\r")
                self.stdout_lines.append(text)
                m = self.transport.listen_re.match(text)
                if m:
                    self.port = int(m.group(1))
                    return
        self.proc.kill()
        self.proc.wait(5)
        pytest.fail("no `listening on` line within %.0f s from %r; stdout "
                    "%r; stderr:\n%s" % (START_TIMEOUT, self.argv,
                                         self.stdout_lines, self.stderr()))

    def _drain_stdout(self):
        try:
            while self.proc.stdout.read(4096):
                pass
        except (OSError, ValueError):
            pass

    def stderr(self):
        if getattr(self, "_err_final", None) is not None:
            return self._err_final
        try:
            data = read_all(self.errfile)
        except (OSError, ValueError):
            return "<stderr unavailable>"
        return data.decode("utf-8", "replace")[-20000:]

    def alive(self):
        return self.proc.poll() is None

    def url(self, path="/echo"):
        return "%s://%s:%d%s" % (self.transport.scheme, self.host,
                                 self.port, path)

    # -- connections --

    def sock(self, timeout=wsraw.DEFAULT_TIMEOUT, **kw):
        return self.transport.open_socket(self.host, self.port, timeout,
                                          **kw)

    def raw(self, timeout=wsraw.DEFAULT_TIMEOUT, **kw):
        """A wsraw.Conn, not yet upgraded."""
        return wsraw.Conn(self.sock(timeout, **kw), timeout)

    def ws(self, path="/echo", timeout=wsraw.DEFAULT_TIMEOUT,
           sock_opts=None, **kw):
        """A wsraw.Conn upgraded on path (101 and accept key checked);
        kw goes to wsraw.Conn.handshake()."""
        c = self.raw(timeout, **(sock_opts or {}))
        try:
            c.handshake(self.host, path, **kw)
        except BaseException:
            c.close()
            raise
        return c

    def http(self, raw, timeout=wsraw.DEFAULT_TIMEOUT, body_until_eof=False):
        """Send one raw request on a fresh connection; the response and
        the connection (for EOF checks)."""
        c = self.raw(timeout)
        try:
            resp = c.request(raw, timeout, body_until_eof)
        except BaseException:
            c.close()
            raise
        return resp, c

    def get(self, path, headers=(), timeout=wsraw.DEFAULT_TIMEOUT):
        lines = ["GET %s HTTP/1.1" % path, "Host: %s:%d" % (self.host,
                                                           self.port)]
        lines += list(headers)
        resp, c = self.http("\r\n".join(lines) + "\r\n\r\n", timeout)
        c.close()
        return resp

    def ws_connect(self, path="/echo", **kw):
        """websockets.connect() with test defaults: no compression, no
        client pings, every phase under a deadline."""
        kw.setdefault("compression", None)
        kw.setdefault("ping_interval", None)
        kw.setdefault("open_timeout", 5)
        kw.setdefault("close_timeout", 3)
        kw.setdefault("max_size", None)
        ctx = self.transport.ssl_context()
        if ctx is not None:
            kw.setdefault("ssl", ctx)
        return websockets.connect(self.url(path), **kw)

    # -- stop --

    def stop(self, sig=signal.SIGTERM, timeout=STOP_TIMEOUT):
        """Signal the server by PID and wait; returns the exit code, or
        None if it did not exit in time (it is then killed)."""
        if self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, sig)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
                return None
        return self.proc.returncode

    def release(self):
        """Once the server has exited, close our ends of its stdout and
        stderr (keeping the text), so a long run over several transports
        does not pile up descriptors past select()'s limit."""
        if self.proc.poll() is None:
            return
        self._err_final = self.stderr()
        if getattr(self, "_drain", None) is not None:
            self._drain.join(1)
        for f in (self.proc.stdout, self.errfile):
            try:
                f.close()
            except OSError:
                pass

    def check_stop(self):
        """Stop and fail unless the exit code is 0."""
        try:
            self._check_stop()
        finally:
            self.release()

    def _check_stop(self):
        already = self.proc.poll()
        rc = self.stop()
        if already is not None:
            msg = ("server exited on its own with code %r during the test"
                   % already)
            if already == 0:
                return
        elif rc is None:
            msg = "server did not exit within %.0f s of SIGTERM" % (
                STOP_TIMEOUT)
        elif rc != 0:
            msg = "server exit code %r after SIGTERM%s" % (
                rc, " (killed by signal %d)" % -rc if rc < 0 else "")
        else:
            return
        pytest.fail("%s; stderr:\n%s" % (msg, self.stderr()),
                    pytrace=False)


def run(coro, timeout=20.0):
    """Run a coroutine under an overall deadline."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


# ---- fixtures -----------------------------------------------------------

def pytest_generate_tests(metafunc):
    if "transport" in metafunc.fixturenames:
        names = os.environ.get("VKWS_TRANSPORTS", "plain,tls").split(",")
        names = [n for n in names if n in TRANSPORTS]
        metafunc.parametrize("transport", names, indirect=True,
                             scope="session")


@pytest.fixture(scope="session")
def transport(request):
    return TRANSPORTS[request.param]()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)
    if rep.failed:
        for s in getattr(item, "_vkws_servers", []):
            rep.sections.append(("vkws stderr (%s)" % " ".join(s.argv),
                                 s.stderr() or "<empty>"))


@pytest.fixture
def server(request, transport):
    """Factory: server(*flags) -> a running Server, stopped at teardown."""
    started = []
    request.node._vkws_servers = started

    def start(*flags):
        s = Server(transport, flags)
        started.append(s)
        return s

    yield start
    for s in started:
        s.check_stop()


_shared = {}


@pytest.fixture(scope="session")
def _echo_pool():
    yield _shared
    for s in list(_shared.values()):
        s.check_stop()
    _shared.clear()


@pytest.fixture
def echo_server(request, transport, _echo_pool):
    """A shared `--echo` server; fails the test that leaves it dead."""
    s = _echo_pool.get(transport.name)
    if s is not None and not s.alive():
        s.proc.wait()
        _echo_pool.pop(transport.name)
        s = None
    if s is None:
        s = Server(transport, ["--echo"])
        _echo_pool[transport.name] = s
    request.node._vkws_servers = [s]
    yield s
    # Give a crash caused by the test's last bytes a moment to show.
    deadline = time.monotonic() + 0.02
    while s.alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    if not s.alive():
        rc = s.proc.wait()
        _echo_pool.pop(transport.name, None)
        pytest.fail("the shared echo server died during this test "
                    "(exit code %r); stderr:\n%s" % (rc, s.stderr()),
                    pytrace=False)
