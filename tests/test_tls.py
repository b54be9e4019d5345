"""
wss:// and https:// (issue 5): the BearSSL transport in tls.c.

Certificates come from tls_util (openssl CLI, made once per session): EC
P-256 and RSA 2048 keys, each in PKCS#8 and in the traditional form. The
rest of the battery runs over TLS too, through the `tls` transport of
conftest.py; this file covers what only TLS has: key forms, external
clients (openssl s_client, curl), handshakes that never finish, the engine
pool limit, close_notify, SIGHUP reload and bad key material at start.
"""

import asyncio
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
import warnings

import pytest

import conftest
import tls_util
import wsraw

HOST = conftest.HOST
POOL = 32		# VKWS_MAX_TLS_CONNS of the default build
API_KEY = "tls-test-key"
SECRET = "tls-test-secret"


class PairTransport(conftest.Transport):
    """TLS with a chosen certificate and key, and no plain listener."""

    name = "tls"
    scheme = "wss"
    http_scheme = "https"
    listen_re = re.compile(r"^listening on 127\.0\.0\.1:(\d+) tls$")

    def __init__(self, crt, key, plain=False):
        self.crt = crt
        self.key = key
        self.plain = plain
        self.ctx = tls_util.client_context()

    def server_flags(self):
        return ["--listen", "%s:0" % HOST if self.plain else "",
                "--tls-listen", "%s:0" % HOST,
                "--cert", self.crt, "--key", self.key]

    def open_socket(self, host, port, timeout=wsraw.DEFAULT_TIMEOUT,
                    rcvbuf=None, sndbuf=None):
        s = conftest.Transport.open_socket(self, host, port, timeout)
        try:
            return self.ctx.wrap_socket(s, server_hostname=host,
                                        suppress_ragged_eofs=False)
        except BaseException:
            s.close()
            raise

    def ssl_context(self):
        return self.ctx


@pytest.fixture
def tls_server(request):
    """Factory: tls_server(*flags, kind=..., crt=..., key=...) -> a running
    conftest.Server over TLS only, stopped (exit 0 checked) at teardown."""
    started = []
    request.node._vkws_servers = started

    def start(*flags, kind="ec-pkcs8", crt=None, key=None):
        c, k = tls_util.pair(kind)
        s = conftest.Server(PairTransport(crt or c, key or k), flags)
        started.append(s)
        return s

    yield start
    for s in started:
        s.check_stop()


def start_fails(*argv, timeout=10):
    """Run the server with argv; it must exit non-zero at once. Returns
    its stderr."""
    p = subprocess.run([conftest.vkws_bin()] + list(argv),
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=timeout,
                       cwd=conftest.ROOT)
    assert p.returncode not in (0, None), (
        "server started (exit %r); stdout %r" % (p.returncode, p.stdout))
    assert p.returncode > 0, "killed by signal %d" % -p.returncode
    assert b"listening on" not in p.stdout
    return p.stderr.decode("utf-8", "replace")


def healthz(sock):
    """One keep-alive GET /healthz on an open (TLS) socket."""
    c = wsraw.Conn(sock, 5)
    resp = c.request("GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
    return resp.status, resp.body


def wait_eof(sock, limit):
    """Seconds until the server ends the connection (EOF, reset or a TLS
    alert), reading whatever comes; fails after limit seconds."""
    t0 = time.monotonic()
    sock.settimeout(0.2)
    n = 0
    while time.monotonic() - t0 < limit and n < 1000:
        n += 1
        try:
            if not sock.recv(4096):
                return time.monotonic() - t0
        except socket.timeout:
            continue
        except (OSError, ssl.SSLError):
            return time.monotonic() - t0
    pytest.fail("connection still open after %.1f s" % limit)


def metric(s, name):
    c = s.raw()
    try:
        resp = c.request("GET /metrics HTTP/1.1\r\nHost: x\r\n"
                         "Connection: close\r\n\r\n")
    finally:
        c.close()
    assert resp.status == 200
    m = re.search(rb"^%s (\d+)$" % name.encode(), resp.body, re.M)
    assert m, resp.body[:2000]
    return int(m.group(1))


def api(s, method, params=None):
    body = json.dumps({"method": method, "params": params or {}})
    c = s.raw()
    try:
        resp = c.request("POST /api HTTP/1.1\r\nHost: x\r\n"
                         "Authorization: apikey %s\r\n"
                         "Content-Type: application/json\r\n"
                         "Content-Length: %d\r\nConnection: close\r\n\r\n%s"
                         % (API_KEY, len(body), body))
    finally:
        c.close()
    assert resp.status == 200, resp
    return json.loads(resp.body)


# ---- key forms and clients ----------------------------------------------

@pytest.mark.parametrize("kind", tls_util.KINDS)
def test_key_forms_serve_https_and_wss(tls_server, kind):
    """Each key type and form loads; https and wss work with it and the
    client sees the configured leaf certificate."""
    s = tls_server("--echo", kind=kind)
    crt, _ = tls_util.pair(kind)
    sk = s.sock()
    try:
        assert tls_util.peer_fingerprint(sk) == tls_util.leaf_fingerprint(
            crt)
        assert sk.version() == "TLSv1.2"
        want = "ECDSA" if kind.startswith("ec") else "RSA"
        assert want in sk.cipher()[0] or (
            want == "RSA" and sk.cipher()[0].startswith("ECDHE-RSA"))
        assert healthz(sk) == (200, b"ok")
        assert healthz(sk) == (200, b"ok")	# keep-alive
    finally:
        sk.close()

    async def go():
        async with s.ws_connect("/echo") as ws:
            # Up to the 16 KiB message limit: several 4 KiB records out.
            for m in ("hello", "x" * 16000, b"\x00\xff" * 8000):
                await ws.send(m)
                assert await asyncio.wait_for(ws.recv(), 10) == m
    conftest.run(go())


def test_wss_chat_auth_and_connection_info(tls_server):
    """/ws over TLS: token auth, a chat round trip, and getConnectionInfo
    reports tls with the negotiated suite."""
    env = dict(os.environ, VKWS_SECRET=SECRET)
    tok = subprocess.run([conftest.vkws_bin(), "token", "--uid", "alice"],
                         env=env, stdout=subprocess.PIPE, timeout=10,
                         check=True).stdout.decode().strip()
    s = tls_server("--secret", SECRET, "--api-key", API_KEY)

    async def go():
        async with s.ws_connect("/ws?token=" + tok) as ws:
            m = json.loads(await asyncio.wait_for(ws.recv(), 10))
            assert m["type"] == "auth" and m["code"] == 0, m
            cid = m["clientId"]
            await ws.send(json.dumps({"type": "chat", "content": "hi",
                                      "id": 1}))
            got = []
            while len(got) < 20:
                got.append(json.loads(await asyncio.wait_for(ws.recv(),
                                                             10)))
                if got[-1]["type"] == "chat":
                    break
            assert got[-1]["message"] == "hi", got
            info = api(s, "getConnectionInfo", {"clientId": cid})
            assert info["code"] == 0, info
            assert info["data"]["tls"] is True
            assert info["data"]["cipher"].startswith("TLS_ECDHE_ECDSA_"), \
                info
    conftest.run(go())


def test_openssl_s_client(tls_server):
    s = tls_server(kind="rsa-pkcs8")
    p = subprocess.run(
        ["openssl", "s_client", "-connect", "%s:%d" % (HOST, s.port),
         "-servername", "localhost", "-CAfile", tls_util.ca_file(),
         "-verify_return_error", "-ign_eof"],
        input=b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n"
              b"Connection: close\r\n\r\n",
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=20)
    out = p.stdout.decode("utf-8", "replace")
    assert p.returncode == 0, out
    assert "Verify return code: 0 (ok)" in out, out
    assert "TLSv1.2" in out, out
    assert "HTTP/1.1 200" in out and out.rstrip().endswith("ok") or \
        "\r\n\r\nok" in out, out


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl missing "
                    "(Makefile TEST_DEPS)")
def test_curl_healthz(tls_server):
    s = tls_server()
    url = "https://%s:%d/healthz" % (HOST, s.port)
    for extra in (["-k"], ["--cacert", tls_util.ca_file()]):
        p = subprocess.run(["curl", "-sS", "--max-time", "10"] + extra +
                           [url], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=20)
        assert p.returncode == 0, p.stderr
        assert p.stdout == b"ok"


def version_ctx(lo, hi):
    """A client context offering TLS versions lo..hi with every cipher
    suite OpenSSL has (CBC and RC4-era ones included), or None if this
    OpenSSL cannot."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            ctx.minimum_version = lo
            ctx.maximum_version = hi
        ctx.set_ciphers("ALL:@SECLEVEL=0")
    except (ValueError, ssl.SSLError):
        return None
    return ctx


# What OpenSSL reports when the server refuses the protocol version (a
# record or alert in a version the client did not offer, or the
# protocol_version alert), as against a refused cipher suite
# (handshake_failure), which is what a server with TLS 1.0-1.1 enabled
# but only AEAD suites would answer.
VERSION_REFUSED = ("WRONG_VERSION_NUMBER", "TLSV1_ALERT_PROTOCOL_VERSION",
                   "UNSUPPORTED_PROTOCOL")


def test_old_protocol_versions_refused(tls_server):
    """TLS 1.2 only (PROTOCOL.md): a client offering TLS 1.0 or 1.1 with
    every cipher suite is refused for its version, not for its suites;
    one offering 1.0 to 1.2 gets 1.2, and so does a 1.2-only one."""
    s = tls_server()
    V = ssl.TLSVersion
    for lo, hi in ((V.TLSv1, V.TLSv1_1), (V.TLSv1_1, V.TLSv1_1),
                   (V.TLSv1, V.TLSv1)):
        ctx = version_ctx(lo, hi)
        assert ctx is not None, "this OpenSSL cannot offer %s" % hi
        raw = socket.create_connection((HOST, s.port), timeout=5)
        try:
            with pytest.raises(ssl.SSLError) as e:
                ctx.wrap_socket(raw, server_hostname="localhost").close()
        finally:
            raw.close()
        assert e.value.reason in VERSION_REFUSED, (
            "TLS %s..%s refused for another reason: %r" % (lo.name, hi.name,
                                                           e.value))
    for lo in (V.TLSv1, V.TLSv1_2):
        ctx = version_ctx(lo, V.TLSv1_2)
        raw = socket.create_connection((HOST, s.port), timeout=5)
        t = ctx.wrap_socket(raw, server_hostname="localhost")
        try:
            assert t.version() == "TLSv1.2", t.version()
            t.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
                      b"Connection: close\r\n\r\n")
            assert t.recv(100).startswith(b"HTTP/1.1 200"), "no 200"
        finally:
            t.close()
    sk = s.sock()
    assert healthz(sk) == (200, b"ok")
    sk.close()


# ---- close_notify ---------------------------------------------------------

def test_close_notify_after_http_close(tls_server):
    """Connection: close ends with close_notify, not a bare FIN (the
    client's socket raises on a ragged EOF)."""
    s = tls_server()
    sk = s.sock()
    try:
        c = wsraw.Conn(sk, 5)
        resp = c.request("GET /healthz HTTP/1.1\r\nHost: x\r\n"
                         "Connection: close\r\n\r\n")
        assert resp.status == 200
        sk.settimeout(5)
        assert sk.recv(100) == b""	# close_notify; SSLEOFError if not
    finally:
        sk.close()


def test_close_notify_after_websocket_close(tls_server):
    s = tls_server("--echo")
    c = s.ws("/echo")
    try:
        c.echo(wsraw.OP_TEXT, b"before close")
        c.send_close(1000)
        f = c.recv_frame(timeout=5)
        assert f.opcode == wsraw.OP_CLOSE and f.close_code == 1000
        c.sock.settimeout(5)
        assert c.sock.recv(100) == b""
    finally:
        c.close()


# ---- handshakes that do not finish ----------------------------------------

@pytest.mark.parametrize("what", ["plain_http", "garbage"])
def test_not_tls_is_dropped_at_once(tls_server, what):
    """Bytes that are not a TLS record end the connection at once, long
    before the handshake deadline."""
    s = tls_server("--handshake-timeout", "30")
    data = (b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
            if what == "plain_http" else os.urandom(3000))
    raw = socket.create_connection((HOST, s.port), timeout=5)
    try:
        raw.sendall(data)
        assert wait_eof(raw, 10) < 10
    finally:
        raw.close()
    sk = s.sock()
    assert healthz(sk) == (200, b"ok")
    sk.close()


@pytest.mark.parametrize("what", ["silent", "truncated_hello",
                                  "after_server_flight"])
def test_stalled_handshake_closed_at_deadline(tls_server, what):
    """A peer that stops in the handshake holds its slot and engine for
    --handshake-timeout (1 s here), then is closed."""
    s = tls_server("--handshake-timeout", "1")
    raw = socket.create_connection((HOST, s.port), timeout=5)
    try:
        hello = tls_util.client_hello()
        if what == "truncated_hello":
            raw.sendall(hello[:len(hello) // 2])
        elif what == "after_server_flight":
            raw.sendall(hello)
            raw.settimeout(5)
            first = raw.recv(100)
            assert first[:1] == b"\x16", first	# ServerHello
        t = wait_eof(raw, 10)
        assert 0.5 < t < 10, t
    finally:
        raw.close()
    sk = s.sock()
    assert healthz(sk) == (200, b"ok")
    sk.close()


def test_stalled_handshakes_do_not_leak_engines(tls_server):
    """POOL stalled handshakes time out; then POOL real clients fit."""
    s = tls_server("--handshake-timeout", "1")
    raws = [socket.create_connection((HOST, s.port), timeout=5)
            for _ in range(POOL)]
    try:
        for r in raws:
            r.sendall(tls_util.client_hello()[:20])
        for r in raws:
            wait_eof(r, 10)
    finally:
        for r in raws:
            r.close()
    socks = []
    try:
        for _ in range(POOL):
            socks.append(s.sock())
        for sk in socks:
            assert healthz(sk) == (200, b"ok")
    finally:
        for sk in socks:
            sk.close()


# ---- the engine pool -------------------------------------------------------

def echo_over_tls(s):
    """A proven connection: an /echo WebSocket over TLS (PROTOCOL.md 8:
    an upgraded /echo connection is not unproven)."""
    c = wsraw.Conn(s.sock(timeout=10), 10)
    c.handshake("localhost", "/echo")
    c.echo(wsraw.OP_TEXT, b"proven")
    return c


def test_pool_of_proven_refuses_then_serves(tls_server):
    """32 engines held by proven connections: the next TLS client is
    refused (there is no handshake or unproven connection to give way);
    one proven connection leaves and a new client is served."""
    s = tls_server("--echo")
    held = []
    try:
        for _ in range(POOL):
            held.append(echo_over_tls(s))
        for _ in range(3):
            with pytest.raises((OSError, ssl.SSLError)):
                s.sock(timeout=5).close()
        for c in held:
            c.echo(wsraw.OP_TEXT, b"still served")
        first = held.pop(0)
        first.send_close(1000)
        first.expect_close(1000, reply=False)
        first.close()
        end = time.monotonic() + 10
        while True:
            try:
                sk = s.sock(timeout=5)
                break
            except (OSError, ssl.SSLError):
                assert time.monotonic() < end, "engine not released"
                time.sleep(0.05)
        assert healthz(sk) == (200, b"ok")
        sk.close()
    finally:
        for c in held:
            c.close()


def test_refused_tls_counted():
    """The same over a server with both listeners: refused{reason="tls"}
    in /metrics counts the connections a pool full of proven ones
    closed."""
    crt, key = tls_util.pair("ec-pkcs8")
    s = conftest.Server(PairTransport(crt, key, plain=True), ["--echo"])
    try:
        held = [echo_over_tls(s) for _ in range(POOL)]
        refused = 0
        for _ in range(3):
            try:
                s.sock(timeout=5).close()
            except (OSError, ssl.SSLError):
                refused += 1
        assert refused == 3
        plain_port = None
        for line in s.stdout_lines:
            m = re.match(r"^listening on 127\.0\.0\.1:(\d+)$", line)
            if m:
                plain_port = int(m.group(1))
        assert plain_port, s.stdout_lines
        c = wsraw.Conn(socket.create_connection((HOST, plain_port), 5), 5)
        try:
            resp = c.request("GET /metrics HTTP/1.1\r\nHost: x\r\n"
                             "Connection: close\r\n\r\n")
        finally:
            c.close()
        m = re.search(rb'^vkws_refused_total\{reason="tls"\} (\d+)$',
                      resp.body, re.M)
        assert m and int(m.group(1)) == 3, resp.body[:3000]
        for c in held:
            c.close()
    finally:
        s.check_stop()


# ---- SIGHUP reload -------------------------------------------------------

def wait_log(s, pattern, after, limit=5.0):
    end = time.monotonic() + limit
    while time.monotonic() < end:
        err = s.stderr()[after:]
        if re.search(pattern, err):
            return
        time.sleep(0.05)
    pytest.fail("no %r in the log; stderr:\n%s" % (pattern, s.stderr()))


def test_reload_under_load(tls_server, tmp_path):
    """SIGHUP with a new pair: new handshakes get the new certificate,
    open connections go on, clients busy through the reload see no
    error; then a bad pair is refused and the current one stays."""
    old_crt, old_key = tls_util.pair("ec-pkcs8")
    new_crt, new_key = tls_util.pair("rsa-trad")
    crt, key = str(tmp_path / "server.crt"), str(tmp_path / "server.key")
    shutil.copy(old_crt, crt)
    shutil.copy(old_key, key)
    s = tls_server("--echo", crt=crt, key=key)
    old_fp = tls_util.leaf_fingerprint(old_crt)
    new_fp = tls_util.leaf_fingerprint(new_crt)

    held = s.ws("/echo")
    assert tls_util.peer_fingerprint(held.sock) == old_fp
    stop = threading.Event()
    errors, rounds = [], [0]

    def busy():
        # Each round a new TLS connection and an echo, until stopped.
        while not stop.is_set() and rounds[0] < 2000:
            try:
                c = s.ws("/echo")
                try:
                    c.echo(wsraw.OP_TEXT, b"busy %d" % rounds[0])
                finally:
                    c.close()
                rounds[0] += 1
            except Exception as e:	# noqa: BLE001 (collected, asserted)
                errors.append(repr(e))
                return

    workers = [threading.Thread(target=busy) for _ in range(4)]
    for w in workers:
        w.start()
    try:
        time.sleep(0.3)
        shutil.copy(new_crt, crt)
        shutil.copy(new_key, key)
        mark = len(s.stderr())
        os.kill(s.proc.pid, signal.SIGHUP)
        wait_log(s, r"TLS reloaded", mark)
        time.sleep(0.3)
    finally:
        stop.set()
        for w in workers:
            w.join(20)
    assert not errors, errors
    assert rounds[0] > 0
    fresh = s.sock()
    assert tls_util.peer_fingerprint(fresh) == new_fp
    assert healthz(fresh) == (200, b"ok")
    fresh.close()
    held.echo(wsraw.OP_TEXT, b"the old connection still works")

    # A key that does not match is refused; the new pair stays.
    shutil.copy(old_key, key)
    mark = len(s.stderr())
    os.kill(s.proc.pid, signal.SIGHUP)
    wait_log(s, r"does not match[^\n]*\n[^\n]*TLS reload failed", mark)
    again = s.sock()
    assert tls_util.peer_fingerprint(again) == new_fp
    assert healthz(again) == (200, b"ok")
    again.close()
    held.echo(wsraw.OP_TEXT, b"and after the failed reload")
    held.close()


# ---- bad material at start ---------------------------------------------

@pytest.mark.parametrize("case", ["missing_key", "garbage_key",
                                  "cert_as_key", "key_as_cert",
                                  "mismatched_ec", "rsa_cert_ec_key",
                                  "empty_cert", "no_cert_flag",
                                  "short_rsa", "encrypted_key"])
def test_bad_material_stops_start(tmp_path, case):
    crt, key = tls_util.pair("ec-pkcs8")
    bad = str(tmp_path / "bad.pem")
    named = bad
    if case == "missing_key":
        key = named = str(tmp_path / "nonexistent.key")
    elif case == "garbage_key":
        with open(bad, "wb") as f:
            f.write(b"-----BEGIN PRIVATE KEY-----\nAAAAAAAA\n"
                    b"-----END PRIVATE KEY-----\n")
        key = bad
    elif case == "cert_as_key":
        key = named = crt
    elif case == "key_as_cert":
        crt = named = key
    elif case == "mismatched_ec":
        key = named = tls_util.pair("ec-trad")[1]
    elif case == "rsa_cert_ec_key":
        crt = tls_util.pair("rsa-pkcs8")[0]
        named = key
    elif case == "empty_cert":
        open(bad, "wb").close()
        crt = bad
    elif case == "no_cert_flag":
        crt = None
        named = "--cert"
    elif case == "short_rsa":
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:1024",
                        "-nodes", "-subj", "/CN=short", "-days", "1",
                        "-keyout", bad, "-out", bad + ".crt"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       timeout=60, check=True)
        crt, key = bad + ".crt", bad
    elif case == "encrypted_key":
        subprocess.run(["openssl", "pkcs8", "-topk8", "-in", key,
                        "-passout", "pass:x", "-out", bad], timeout=60,
                       check=True, stdout=subprocess.DEVNULL)
        key = bad
    argv = ["--listen", "", "--tls-listen", "%s:0" % HOST]
    if crt:
        argv += ["--cert", crt]
    argv += ["--key", key]
    err = start_fails(*argv)
    assert named in err, err


def test_budget_shows_tls_engines():
    p = subprocess.run([conftest.vkws_bin(), "--budget"],
                       stdout=subprocess.PIPE, timeout=10, check=True)
    m = re.search(rb"TLS engines\s+(\d+)", p.stdout)
    assert m, p.stdout
    # At least POOL input buffers of 16709 bytes.
    assert int(m.group(1)) >= POOL * 16709, p.stdout
