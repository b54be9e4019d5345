"""
Admission under hostile load (PROTOCOL.md 8 and the last bullets of 7),
against the real binary: each attack of issue 12 as a bounded flood on
loopback, during which new users (plain, TLS, the page's sign-in by
message, /api, /metrics) must get in and signed-in users must keep
getting every message.

"Gets in" means: succeeds before a generous deadline (NEWCOMER_DEADLINE),
retrying as a real client would. A flood is bounded in connections, in
connections opened per second and in time; once it holds its share,
each socket it opens evicts the oldest unproven one, so a newcomer has
as long as --max-pending (or the TLS pool) newer sockets take to arrive:
the rates are kept low enough for that to be generous on a loaded
machine. The server runs with both a
plain and a TLS listener; floods that must fill the whole slot table
(VKWS_SLOTS of the default build) open about 1,100 sockets, the others
use small --max-pending values. Per-address tests bind client sockets to
127.0.0.2, 127.0.0.3, ... (all loopback on Linux).
"""

import json
import re
import resource
import selectors
import socket
import ssl
import threading
import time
import urllib.parse

import pytest

import conftest
import tls_util
import wsraw
from test_chat import SECRET, token

HOST = conftest.HOST
API_KEY = "admission-api-key"
SLOTS = 1040            # VKWS_SLOTS of the default build (1024 + 16)
POOL = 32               # VKWS_MAX_TLS_CONNS of the default build
NEWCOMER_DEADLINE = 30.0
CLOSE_TRY_AGAIN = 1013
CLOSE_POLICY = 1008


@pytest.fixture(autouse=True, scope="module")
def _fd_limit():
    """The table floods hold more sockets than the default soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, 4096)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


# ---- the server ------------------------------------------------------------

class Both(conftest.TlsTransport):
    """A plain and a TLS listener; the Server's port is the TLS one."""
    name = "both"


class Srv:
    def __init__(self, *flags):
        self.s = conftest.Server(Both(), ["--secret", SECRET, "--api-key",
                                          API_KEY] + list(flags))
        self.tls_port = self.s.port
        self.port = None
        for line in self.s.stdout_lines:
            m = re.match(r"^listening on 127\.0\.0\.1:(\d+)$", line)
            if m:
                self.port = int(m.group(1))
        assert self.port, self.s.stdout_lines

    def sock(self, tls=False, src=None, timeout=5.0):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(timeout)
        try:
            if src:
                s.bind((src, 0))
            s.connect((HOST, self.tls_port if tls else self.port))
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if tls:
                s = conftest.TlsTransport().ssl_context().wrap_socket(
                    s, server_hostname=HOST)
        except BaseException:
            s.close()
            raise
        return s

    def conn(self, tls=False, src=None, timeout=5.0):
        return wsraw.Conn(self.sock(tls, src, timeout), timeout)

    def stop(self):
        self.s.check_stop()

    def alive(self):
        return self.s.alive()

    def stderr(self):
        return self.s.stderr()


@pytest.fixture
def srv():
    started = []

    def start(*flags):
        s = Srv(*flags)
        started.append(s)
        return s
    yield start
    for s in started:
        s.stop()


def query(tok):
    return "/ws?token=" + urllib.parse.quote(tok, safe="")


def recv_json(c, timeout=5.0):
    """The next text message on a wsraw connection, as JSON (pings
    answered, other control frames skipped)."""
    deadline = time.monotonic() + timeout
    while True:
        f = c.recv_frame(timeout=max(0.05, deadline - time.monotonic()))
        if f.opcode == wsraw.OP_TEXT:
            return json.loads(f.payload)
        if f.opcode == wsraw.OP_CLOSE:
            raise wsraw.Closed("closed %r %r" % (f.close_code, f.payload[2:]))
        if f.opcode == wsraw.OP_PING:
            c.send_frame(wsraw.OP_PONG, f.payload)


def expect_type(c, type_, timeout=5.0, skip=()):
    while True:
        m = recv_json(c, timeout)
        if m["type"] in skip:
            continue
        assert m["type"] == type_, m
        return m


def http_get(srv, path, tls=False, src=None, extra=""):
    c = srv.conn(tls, src)
    try:
        return c.request("GET %s HTTP/1.1\r\nHost: x\r\n%s"
                         "Connection: close\r\n\r\n" % (path, extra))
    finally:
        c.close()


def metrics(srv):
    body = http_get(srv, "/metrics").body.decode()
    out = {}
    for line in body.splitlines():
        if line and not line.startswith("#"):
            k, v = line.rsplit(" ", 1)
            out[k] = int(v)
    return out


def api(srv, method, params=None, tls=False):
    body = json.dumps({"method": method, "params": params or {}})
    c = srv.conn(tls)
    try:
        r = c.request("POST /api HTTP/1.1\r\nHost: x\r\nAuthorization: "
                      "apikey %s\r\nContent-Type: application/json\r\n"
                      "Content-Length: %d\r\nConnection: close\r\n\r\n%s"
                      % (API_KEY, len(body), body))
    finally:
        c.close()
    assert r.status == 200, r
    return json.loads(r.body)


# ---- newcomers ---------------------------------------------------------------

def login(srv, uid, tls=False, src=None, room=True):
    """A user with ?token=: upgrade, auth success; with room, its
    default-room notifications read (user_join, user_list, history)."""
    c = srv.conn(tls, src)
    try:
        c.handshake(HOST, query(token(uid)))
        a = expect_type(c, "auth")
        assert a["code"] == 0 and a["userId"] == uid, a
        if room:
            expect_type(c, "user_join")
            expect_type(c, "user_list")
            expect_type(c, "history")
    except BaseException:
        c.close()
        raise
    return c


def page_login(srv, uid, tls=False, src=None):
    """The built-in page's way in: GET /, then /ws with no token and an
    auth message."""
    r = http_get(srv, "/", tls, src)
    assert r.status == 200 and b"<html" in r.body.lower(), r
    c = srv.conn(tls, src)
    try:
        c.handshake(HOST, "/ws", headers=["Origin: http://x"])
        c.send_text(json.dumps({"type": "auth", "token": token(uid),
                                "id": 1}).encode())
        a = expect_type(c, "auth")
        assert a["code"] == 0 and a["userId"] == uid, a
    except BaseException:
        c.close()
        raise
    return c


def newcomers(srv, tag, deadline=NEWCOMER_DEADLINE):
    """Every kind of newcomer gets in before the deadline, retrying; the
    seconds each took."""
    kinds = {
        "plain": lambda i: login(srv, "%s-p%d" % (tag, i), room=False),
        "tls": lambda i: login(srv, "%s-t%d" % (tag, i), tls=True,
                               room=False),
        "page": lambda i: page_login(srv, "%s-g%d" % (tag, i)),
        "api": lambda i: api(srv, "getStats"),
        "metrics": lambda i: metrics(srv),
    }
    took = {}
    for name, fn in kinds.items():
        t0 = time.monotonic()
        end = t0 + deadline
        errors = []
        i = 0
        while True:
            try:
                r = fn(i)
                if isinstance(r, wsraw.Conn):
                    r.close()
                break
            except (OSError, ssl.SSLError, wsraw.Closed, AssertionError,
                    ValueError) as e:
                errors.append(repr(e)[:120])
                i += 1
                assert time.monotonic() < end, \
                    "%s newcomer did not get in within %.0f s: %r" % (
                        name, deadline, errors[-5:])
                time.sleep(0.05)
        took[name] = time.monotonic() - t0
    return took


# ---- floods ------------------------------------------------------------------

UPGRADE = ("GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
           "Connection: Upgrade\r\nSec-WebSocket-Key: "
           "dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")


class Flood:
    """Keeps up to n attacker sockets of one kind open, reopening those
    the server closes, at most rate opens per second, for at most
    limit seconds (or until stop()). Kinds:

      keepalive  GET /healthz, again every `every` seconds on each socket
      slowloris  one byte of a request head every `every` seconds
      idle       connects and sends nothing
      hello      a TLS ClientHello, then nothing
      pending    an upgrade of /ws without a token, then nothing
    """

    def __init__(self, srv, kind, n, rate=500, every=2.0, tls=False,
                 src=None, limit=90.0):
        self.srv, self.kind, self.n, self.rate = srv, kind, n, rate
        self.every, self.tls, self.src, self.limit = every, tls, src, limit
        self.port = srv.tls_port if tls else srv.port
        self.hello = tls_util.client_hello() if kind == "hello" else b""
        self.opened = self.closed = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *a):
        self.stop()

    def stop(self):
        self._stop.set()
        self._t.join(30)

    def wait_open(self, k, limit=30.0):
        """Until k sockets have been opened (the flood is in place)."""
        end = time.monotonic() + limit
        while self.opened < k and time.monotonic() < end:
            time.sleep(0.05)
        assert self.opened >= k, "flood opened %d of %d" % (self.opened, k)

    def _first(self):
        if self.kind == "keepalive":
            return b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
        if self.kind == "slowloris":
            return b"G"
        if self.kind == "hello":
            return self.hello
        if self.kind == "pending":
            return UPGRADE.encode()
        return b""

    def _next(self, st):
        if self.kind == "keepalive":
            return b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
        if self.kind == "slowloris":
            st["i"] += 1
            return b"ET /healthz HTTP/1.1\r\nX: " [st["i"] % 24:][:1] or b"a"
        return b""

    def _run(self):
        sel = selectors.DefaultSelector()
        socks = {}
        t_end = time.monotonic() + self.limit
        budget, t_budget = 0.0, time.monotonic()
        try:
            while not self._stop.is_set() and time.monotonic() < t_end:
                now = time.monotonic()
                budget = min(self.rate, budget + (now - t_budget) *
                             self.rate)
                t_budget = now
                while len(socks) < self.n and budget >= 1:
                    budget -= 1
                    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                    s.setblocking(False)
                    try:
                        if self.src:
                            s.bind((self.src, 0))
                        s.connect_ex((HOST, self.port))
                    except OSError:
                        s.close()
                        break
                    st = {"sent": False, "next": now + self.every, "i": 0}
                    socks[s] = st
                    sel.register(s, selectors.EVENT_READ |
                                 selectors.EVENT_WRITE)
                    self.opened += 1
                for key, ev in sel.select(timeout=0.02):
                    s = key.fileobj
                    st = socks.get(s)
                    if st is None:
                        continue
                    dead = False
                    if ev & selectors.EVENT_WRITE and not st["sent"]:
                        try:
                            first = self._first()
                            if first:
                                s.send(first)
                            st["sent"] = True
                            sel.modify(s, selectors.EVENT_READ)
                        except (BlockingIOError, InterruptedError):
                            pass
                        except OSError:
                            dead = True
                    if ev & selectors.EVENT_READ and not dead:
                        try:
                            if not s.recv(65536):
                                dead = True
                        except (BlockingIOError, InterruptedError):
                            pass
                        except OSError:
                            dead = True
                    if dead:
                        sel.unregister(s)
                        s.close()
                        del socks[s]
                        self.closed += 1
                now = time.monotonic()
                for s, st in list(socks.items()):
                    if st["sent"] and now >= st["next"]:
                        st["next"] = now + self.every
                        data = self._next(st)
                        if data:
                            try:
                                s.send(data)
                            except OSError:
                                pass
        finally:
            for s in socks:
                s.close()
            sel.close()


class Members:
    """Two signed-in users in the default room: alice chats every 0.1 s
    from a thread, bob must get every one of her messages, in order."""

    def __init__(self, srv):
        self.srv = srv
        self.a = login(srv, "alice")
        self.b = login(srv, "bob")
        # bob's user_join reaches alice once bob is a second old.
        expect_type(self.a, "user_join", timeout=10)
        self.sent = 0
        self.errors = []
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self):
        try:
            while not self._stop.is_set() and self.sent < 2000:
                self.a.send_text(json.dumps({
                    "type": "chat", "content": "m%d" % self.sent,
                    "id": self.sent}).encode())
                self.sent += 1
                # alice reads her ack and her own copy.
                while True:
                    m = recv_json(self.a, 20)
                    if m["type"] == "chat":
                        break
                time.sleep(0.1)
        except Exception as e:  # reported by check()
            self.errors.append(repr(e))

    def check(self):
        """Stop chatting; bob got m0..m(sent-1), each once, in order,
        and no user_join/user_leave storm."""
        self._stop.set()
        self._t.join(30)
        assert not self.errors, self.errors
        assert self.sent > 0
        got = []
        notes = []
        while len(got) < self.sent:
            m = recv_json(self.b, 20)
            if m["type"] == "chat":
                got.append(m["message"])
            elif m["type"] in ("user_join", "user_leave"):
                notes.append(m)
        assert got == ["m%d" % i for i in range(self.sent)]
        return notes

    def close(self):
        self._stop.set()
        self.a.close()
        self.b.close()


def run_flood(srv, flood, settle=None):
    """Signed-in members, the flood in place, newcomers; then the members
    got everything. Returns the newcomers' times and the metrics."""
    mem = Members(srv)
    try:
        with flood:
            flood.wait_open(settle or flood.n)
            took = newcomers(srv, flood.kind)
            assert flood.opened > 0
        mem.check()
    finally:
        mem.close()
    assert srv.alive(), srv.stderr()
    return took, metrics(srv)


# ---- the attacks of issue 12 ----------------------------------------------------

def test_keepalive_http_flood_does_not_lock_out(srv):
    """1,100 keep-alive HTTP connections asking GET /healthz every 2 s:
    more than the slot table. Before PROTOCOL.md 8 they held every slot
    (requests pushed the deadline back, the listener was not polled
    with the table full): nothing new got in."""
    s = srv("--handshake-timeout", "60")
    took, m = run_flood(s, Flood(s, "keepalive", SLOTS + 60, every=2.0,
                                 rate=200))
    assert m['vkws_evicted_total{reason="oldest_unproven"}'] > 0, m


def test_slowloris_flood_does_not_lock_out(srv):
    """1,100 sockets sending one header byte every 2 s."""
    s = srv("--handshake-timeout", "60")
    took, m = run_flood(s, Flood(s, "slowloris", SLOTS + 60, every=2.0,
                                 rate=200))
    assert m['vkws_evicted_total{reason="oldest_unproven"}'] > 0, m


def test_idle_tls_sockets_take_no_engine(srv):
    """40 TCP connections to the TLS port that send nothing: they hold
    no TLS engine, so TLS users get in at once (before, 32 of them took
    the whole pool at accept)."""
    s = srv("--handshake-timeout", "60")
    took, m = run_flood(s, Flood(s, "idle", POOL + 8, tls=True),
                        settle=POOL + 8)
    assert m['vkws_refused_total{reason="tls"}'] == 0, m


def test_stalled_tls_handshakes_give_way(srv):
    """40 connections that send a ClientHello and stop: each holds an
    engine in a handshake, and a new TLS client takes the oldest one's."""
    s = srv("--handshake-timeout", "60")
    took, m = run_flood(s, Flood(s, "hello", POOL + 8, tls=True, rate=50),
                        settle=POOL + 8)
    assert m['vkws_evicted_total{reason="tls_handshake"}'] > 0, m


def test_idle_upgrades_do_not_lock_out_the_page(srv):
    """Idle /ws upgrades that never authenticate, reopened when closed:
    before, --max-pending of them made every sign-in by message get 503;
    now the oldest gives way (1013)."""
    s = srv("--max-pending", "16", "--auth-timeout", "60")
    took, m = run_flood(s, Flood(s, "pending", 40, rate=20), settle=40)
    assert m['vkws_evicted_total{reason="oldest_unproven"}'] > 0, m


def test_evicted_pending_websocket_gets_1013(srv):
    s = srv("--max-pending", "2", "--auth-timeout", "60")
    old = s.conn()
    old.handshake(HOST, "/ws")
    mid = s.conn()
    mid.handshake(HOST, "/ws")
    try:
        # A third unproven connection: the oldest gives way.
        new = page_login(s, "newcomer")
        old.expect_close(CLOSE_TRY_AGAIN, reply=False)
        # mid is still there and may still authenticate.
        mid.send_text(json.dumps({"type": "auth",
                                  "token": token("mid")}).encode())
        assert expect_type(mid, "auth")["code"] == 0
        new.close()
    finally:
        old.close()
        mid.close()


def test_reconnect_storm_sends_no_join_leave(srv):
    """One valid token reconnecting as fast as it can: members get no
    user_join/user_leave of it (each connection lived under a second),
    the storm gets 503 with Retry-After past the reconnect rate, and the
    members keep every message."""
    s = srv("--reconnect-rate", "5")
    mem = Members(s)
    refused = ok = 0
    try:
        t_end = time.monotonic() + 4
        n = 0
        while time.monotonic() < t_end and n < 3000:
            n += 1
            c = s.conn()
            try:
                r = c.handshake(HOST, query(token("storm")), check=False)
                if r.status == 503:
                    assert r.header("retry-after"), r
                    refused += 1
                else:
                    assert r.status == 101, r
                    ok += 1
            finally:
                c.close()
        notes = mem.check()
        storm = [m for m in notes if m["user"]["userId"] == "storm"]
        assert storm == [], storm[:5]
    finally:
        mem.close()
    assert refused > 0 and ok >= 20, (ok, refused)
    m = metrics(s)
    assert m['vkws_refused_total{reason="reconnect_rate"}'] == refused, m


def test_invalid_frames_are_rate_limited(srv):
    """Invalid frames count against --rate: a flood of them gets -6 and
    then close 1008."""
    s = srv("--rate", "5", "--rate-burst", "5", "--rate-grace", "1",
            "--default-room", "")
    c = login(s, "flooder", room=False)
    bad = [b"{not json", b"[1,2]", b'{"id":null,"type":"ping"}',
           b'{"no":"type"}', b"42"]
    codes = []
    try:
        t_end = time.monotonic() + 15
        closed = None
        i = 0
        while closed is None and time.monotonic() < t_end and i < 3000:
            if i % 6 == 5:
                c.send_binary(b"\x00\x01")
            else:
                c.send_text(bad[i % 5])
            i += 1
            while True:
                try:
                    f = c.recv_frame(timeout=0.01)
                except wsraw.Timeout:
                    break
                if f.opcode == wsraw.OP_CLOSE:
                    closed = f.close_code
                    break
                if f.opcode == wsraw.OP_TEXT:
                    codes.append(json.loads(f.payload).get("code"))
            time.sleep(0.005)
        assert -2 in codes and -6 in codes, codes[:20]
        assert closed == CLOSE_POLICY, (closed, codes[-10:])
    finally:
        c.close()


# ---- HTTP lifetime -----------------------------------------------------------

def test_keepalive_closed_after_handshake_timeout(srv):
    """A keep-alive connection asking every 0.3 s is closed once it has
    lived --handshake-timeout seconds: requests do not push it back."""
    s = srv("--handshake-timeout", "2")
    c = s.conn(timeout=10)
    t0 = time.monotonic()
    try:
        while True:
            assert time.monotonic() - t0 < 20, "never closed"
            try:
                r = c.request("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
                              timeout=10)
            except (wsraw.Closed, OSError):
                break
            assert r.status == 200, r
            assert time.monotonic() - t0 < 20, "never closed"
            time.sleep(0.3)
    finally:
        c.close()
    m = metrics(s)
    assert m['vkws_evicted_total{reason="http_age"}'] >= 1, m


def test_slowloris_closed_after_handshake_timeout(srv):
    s = srv("--handshake-timeout", "2")
    c = s.conn(timeout=10)
    head = b"GET /healthz HTTP/1.1\r\nX-Slow: " + b"a" * 400
    t0 = time.monotonic()
    closed = False
    try:
        for i in range(len(head)):
            assert time.monotonic() - t0 < 20, "never closed"
            try:
                c.send(head[i:i + 1])
                if c.sock.recv(1, socket.MSG_DONTWAIT | socket.MSG_PEEK) \
                        == b"":
                    closed = True
                    break
            except BlockingIOError:
                pass
            except OSError:
                closed = True
                break
            time.sleep(0.2)
    finally:
        c.close()
    assert closed


@pytest.mark.parametrize("limit", [1, 3])
def test_http_max_requests(srv, limit):
    """Requests 1..N-1 keep the connection; the Nth says Connection:
    close and the connection ends; an (N+1)th is never answered."""
    s = srv("--http-max-requests", str(limit))
    c = s.conn()
    try:
        for i in range(1, limit + 1):
            r = c.request("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert r.status == 200, r
            last = r.header("connection")
            if i < limit:
                assert last is None, (i, r)
            else:
                assert last and last.lower() == "close", (i, r)
        try:
            c.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        except OSError:
            pass
        assert c.expect_eof(timeout=5) == b""
    finally:
        c.close()


# ---- per address -------------------------------------------------------------

def partial(srv, src, tls=False):
    """A connection from src that holds its slot: half a request head
    (plain), nothing (TLS)."""
    c = srv.sock(tls=False, src=src)
    if not tls:
        c.sendall(b"GET /healthz HTTP/1.1\r\n")
    return c


@pytest.mark.parametrize("cap", [3])
def test_max_per_ip_counts_every_connection(srv, cap):
    """cap connections from 127.0.0.2 (HTTP ones too) are served; one
    more gets 503 with Retry-After; 127.0.0.3 is not touched."""
    s = srv("--max-per-ip", str(cap))
    held = [partial(s, "127.0.0.2") for _ in range(cap)]
    try:
        r = http_get(s, "/healthz", src="127.0.0.2")
        # Nothing says when one of its connections will close.
        assert r.status == 503 and r.header("retry-after") == "5", r
        others = [partial(s, "127.0.0.3") for _ in range(cap - 1)]
        try:
            assert http_get(s, "/healthz", src="127.0.0.3").status == 200
            c = login(s, "carol", src="127.0.0.3", room=False)
            c.close()
        finally:
            for o in others:
                o.close()
        held.pop().close()
        end = time.monotonic() + 10
        while True:
            r = http_get(s, "/healthz", src="127.0.0.2")
            if r.status == 200:
                break
            assert time.monotonic() < end, "no room after one closed"
            time.sleep(0.05)
    finally:
        for h in held:
            h.close()
    m = metrics(s)
    assert m['vkws_refused_total{reason="per_ip"}'] >= 1, m


def test_max_per_ip_default_is_64(srv):
    s = srv("ADMISSION_DEFAULTS")
    held = [partial(s, "127.0.0.2") for _ in range(64)]
    try:
        r = http_get(s, "/healthz", src="127.0.0.2")
        assert r.status == 503 and r.header("retry-after"), r
        assert http_get(s, "/healthz", src="127.0.0.3").status == 200
    finally:
        for h in held:
            h.close()


def test_max_per_ip_flood_beyond_cap_is_refused_at_accept(srv):
    """Far past the cap, connections are closed at accept: the flood
    holds at most cap + a few slots, and other addresses get in."""
    s = srv("--max-per-ip", "8", "--max-pending", "64")
    with Flood(s, "slowloris", 200, src="127.0.0.2", rate=400) as f:
        f.wait_open(200)
        took = newcomers(s, "perip")
        c = login(s, "dave", src="127.0.0.4", room=False)
        c.close()
    m = metrics(s)
    assert m['vkws_refused_total{reason="per_ip"}'] > 0, m
    assert took


def test_mapped_ipv6_counts_as_ipv4(srv):
    """A TLS listener on [::] sees 127.0.0.2 as ::ffff:127.0.0.2; its
    connections count against the same cap as the plain listener's."""
    if not socket.has_ipv6:
        pytest.skip("no IPv6 in this kernel")
    crt, key = tls_util.pair("ec-pkcs8")

    class Mixed(conftest.Transport):
        listen_re = re.compile(r"^listening on \[::\]:(\d+) tls$")

        def server_flags(self):
            return ["--listen", "127.0.0.1:0", "--tls-listen", "[::]:0",
                    "--cert", crt, "--key", key]

    try:
        sv = conftest.Server(Mixed(), ["--max-per-ip", "2"])
    except BaseException as e:  # pragma: no cover
        pytest.skip("cannot listen on [::]: %r" % e)
    try:
        plain = None
        for line in sv.stdout_lines:
            m = re.match(r"^listening on 127\.0\.0\.1:(\d+)$", line)
            if m:
                plain = int(m.group(1))
        a = socket.create_connection((HOST, sv.port), 5,
                                     source_address=("127.0.0.2", 0))
        # A request answered on the plain listener after a connected:
        # the loop accepts a (TLS backlog) no later than this request's
        # connection, and reads the request a pass after.
        g = wsraw.Conn(socket.create_connection((HOST, plain), 5), 5)
        try:
            assert g.request("GET /healthz HTTP/1.1\r\nHost: x\r\n"
                             "\r\n").status == 200
        finally:
            g.close()
        b = socket.create_connection((HOST, plain), 5,
                                     source_address=("127.0.0.2", 0))
        try:
            b.sendall(b"GET /healthz HTTP/1.1\r\n")
            c = wsraw.Conn(socket.create_connection(
                (HOST, plain), 5, source_address=("127.0.0.2", 0)), 5)
            try:
                r = c.request("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                assert r.status == 503, r
            finally:
                c.close()
        finally:
            a.close()
            b.close()
    finally:
        sv.check_stop()


def test_user_reconnect_rate_across_addresses(srv):
    """One uid from several addresses: its own bucket (burst 3, 1/s)
    refuses it past the burst, whatever the address."""
    s = srv("--reconnect-rate", "1", "--reconnect-burst", "3",
            "--default-room", "")
    ok = 0
    status = None
    for i in range(30):
        c = s.conn(src="127.0.0.%d" % (10 + i))
        try:
            r = c.handshake(HOST, query(token("roamer")), check=False)
        finally:
            c.close()
        if r.status == 503:
            # The bucket has a token again within a second.
            assert r.header("retry-after") == "1", r
            status = 503
            break
        assert r.status == 101, r
        ok += 1
    assert status == 503 and ok >= 3, ok


def test_address_reconnect_rate_across_users(srv):
    s = srv("--reconnect-rate", "1", "--reconnect-burst", "3",
            "--default-room", "")
    ok = 0
    status = None
    for i in range(30):
        c = s.conn(src="127.0.0.9")
        try:
            r = c.handshake(HOST, query(token("u%d" % i)), check=False)
        finally:
            c.close()
        if r.status == 503:
            # The bucket has a token again within a second.
            assert r.header("retry-after") == "1", r
            status = 503
            break
        ok += 1
    assert status == 503 and ok >= 3, ok
    # Another address is not touched.
    c = login(s, "other", src="127.0.0.8", room=False)
    c.close()


def test_reconnect_rate_on_auth_message(srv):
    """Sign-in by message counts against the user's bucket: past it the
    auth is answered -6 and the connection closed 1013."""
    s = srv("--reconnect-rate", "1", "--reconnect-burst", "2",
            "--default-room", "")
    codes = []
    for i in range(20):
        c = s.conn(src="127.0.0.%d" % (40 + i))
        try:
            c.handshake(HOST, "/ws")
            c.send_text(json.dumps({"type": "auth",
                                    "token": token("msguser")}).encode())
            a = expect_type(c, "auth")
            codes.append(a["code"])
            if a["code"] == -6:
                c.expect_close(CLOSE_TRY_AGAIN)
                break
        finally:
            c.close()
    assert codes[:2] == [0, 0] and codes[-1] == -6, codes


def test_short_lived_connection_no_join_leave(srv):
    """A connection that lives under a second: no user_join, no
    user_leave to the room; one that lives longer: both."""
    s = srv()
    a = login(s, "anna")
    try:
        q = login(s, "quick")
        q.close()
        # anna sees nothing of quick: her next message is her own pong.
        a.send_text(b'{"type":"ping","id":"p"}')
        m = recv_json(a)
        assert m == {"type": "pong", "id": "p"}, m
        slow = login(s, "slow")
        j = expect_type(a, "user_join", timeout=10)
        assert j["user"]["userId"] == "slow", j
        slow.close()
        lv = expect_type(a, "user_leave", timeout=10)
        assert lv["user"]["userId"] == "slow", lv
    finally:
        a.close()


def test_young_sender_announced_before_its_chat(srv):
    s = srv()
    a = login(s, "anna")
    try:
        b = login(s, "bea")
        b.send_text(b'{"type":"chat","content":"hi"}')
        j = expect_type(a, "user_join")
        assert j["user"]["userId"] == "bea", j
        m = expect_type(a, "chat")
        assert m["message"] == "hi", m
        b.close()
        expect_type(a, "user_leave")
    finally:
        a.close()


# ---- the fixes of the same review ---------------------------------------------

def test_tls_close_frees_engine_at_once(srv):
    """32 TLS clients send a close frame, get the server's close and then
    neither close TLS nor the socket: with --close-timeout 60 the engines
    still come back at once (read raw to EOF), and a new TLS user is
    served."""
    s = srv("--close-timeout", "60", "--echo")
    held = []
    try:
        for _ in range(POOL):
            c = s.conn(tls=True)
            c.handshake(HOST, "/echo")
            held.append(c)
        for c in held:
            c.send_close(1000)
            c.expect_close(1000, reply=False)
        newc = login(s, "after-close", tls=True, room=False)
        newc.close()
        m = metrics(s)
        assert m['vkws_refused_total{reason="tls"}'] == 0, m
    finally:
        for c in held:
            c.close()


def upgrade_lines(path, extra):
    return ("GET %s HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: "
            "dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n%s\r\n"
            % (path, "".join(h + "\r\n" for h in extra)))


def test_two_origin_lines_refused(srv):
    s = srv("--allowed-origin", "http://good")
    for origins, status in ((["http://good"], 101),
                            (["http://good", "http://evil"], 403),
                            (["http://evil", "http://good"], 403)):
        c = s.conn()
        try:
            r = c.request(upgrade_lines("/ws", ["Origin: " + o
                                                for o in origins]))
            assert r.status == status, (origins, r)
        finally:
            c.close()


def test_list_headers_count_every_line(srv):
    s = srv()
    c = s.conn()
    try:
        r = c.request(upgrade_lines("/ws", [
            "Sec-WebSocket-Protocol: foo",
            "Sec-WebSocket-Protocol: vkws.json"]))
        assert r.status == 101, r
        assert r.header("sec-websocket-protocol") == "vkws.json", r
    finally:
        c.close()
    # Connection and Upgrade split over lines.
    c = s.conn()
    try:
        raw = ("GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: h2c\r\n"
               "Upgrade: websocket\r\nConnection: keep-alive\r\n"
               "Connection: Upgrade\r\nSec-WebSocket-Key: "
               "dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
               "\r\n")
        r = c.request(raw)
        assert r.status == 101, r
    finally:
        c.close()


def test_head_of_page_like_get(srv):
    s = srv()
    for path in ("/", "/app.js"):
        c = s.conn()
        try:
            g = c.request("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path)
            c.send(("HEAD %s HTTP/1.1\r\nHost: x\r\nConnection: close"
                    "\r\n\r\n" % path).encode())
            # Everything up to EOF is one head: HEAD has no body.
            raw = c.expect_eof(timeout=5)
            assert raw.endswith(b"\r\n\r\n") and raw.count(
                b"\r\n\r\n") == 1, raw[-200:]
            status, _, headers = wsraw.parse_head(raw[:-4])
            h = dict((k.lower(), v) for k, v in headers)
            assert g.status == 200 and status == 200, (path, g, raw)
            assert h["content-length"] == g.header("content-length"), raw
        finally:
            c.close()


def test_get_stats_flattens_reasons(srv):
    s = srv()
    st = api(s, "getStats")
    assert st["code"] == 0
    d = st["data"]
    for k in ("evicted_oldest_unproven_total", "evicted_http_age_total",
              "evicted_tls_handshake_total", "refused_full_total",
              "refused_per_ip_total", "refused_reconnect_rate_total",
              "refused_tls_total", "connections_unproven"):
        assert k in d and isinstance(d[k], int), (k, d)
    m = metrics(s)
    for k in ('vkws_evicted_total{reason="oldest_unproven"}',
              'vkws_evicted_total{reason="http_age"}',
              'vkws_evicted_total{reason="tls_handshake"}',
              'vkws_refused_total{reason="full"}',
              'vkws_refused_total{reason="per_ip"}',
              'vkws_refused_total{reason="reconnect_rate"}',
              'vkws_refused_total{reason="tls"}'):
        assert k in m, (k, sorted(m))
