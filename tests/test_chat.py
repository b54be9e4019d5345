"""
The chat protocol on /ws against the real binary: PROTOCOL.md sections 2
(authentication), 3 (client messages), 5 (error codes) and 7 (the details),
with python3-websockets clients, and wsraw where a library will not send
what a test needs (invalid UTF-8, a reader that never reads, an upgrade
answered 503).

Tokens are minted here with hmac/hashlib (so forged, expired, alg none and
other odd tokens are easy) and, for a few cases, with `vkws token`.

Most tests run over every transport of conftest.py; the long tables of
tokens, ids and malformed JSON test the layer above the transport and run
over plain TCP only (the plain_server fixture).

Ordering instead of sleeping: the server is one loop that answers a
connection's requests in order, so after `sync()` (a ping with a fresh id,
read up to its pong) everything an earlier request caused has arrived.
Once A has its ack, whatever A's request sent to B is queued ahead of
anything B asks next, so B's `sync()` shows it. The few waits on purpose
(auth timeout, token expiry, idle close, keepalive, rate grace) use flags
of one or two seconds and generous upper bounds.
"""

import asyncio
import base64
import hashlib
import hmac
import json
import os
import resource
import signal
import subprocess
import time
import urllib.parse

import pytest
import websockets

from conftest import ROOT, Server, Transport, run, vkws_bin

SECRET = "chat-test-secret"
DEFAULT_ROOM = "general"

MSG_OK = "连接成功"
MSG_AUTH_FAIL = "认证失败"
MSG_UNKNOWN = "未知操作"

# vkws.h
MAX_CHAT = 4096             # VKWS_MAX_CHAT
UID_MAX = 64                # VKWS_UID_MAX
TOKEN_MAX = 4096            # VKWS_TOKEN_MAX
REQ_ID_MAX = 64             # VKWS_REQ_ID_MAX
ROOMS_PER_CONN = 16         # VKWS_ROOMS_PER_CONN
ROOM_NAME_MAX = 64          # VKWS_ROOM_NAME_MAX
MAX_ROOMS = 256             # VKWS_MAX_ROOMS (the default profile)
MAX_MSG = 16384             # VKWS_MAX_MSG
USERINFO_MAX = 2048         # VKWS_USERINFO_MAX

CLOSE_BAD_DATA = 1007
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
CLOSE_TRY_AGAIN = 1013
CLOSE_AUTH = 4001
CLOSE_IDLE = 4002

RECV_TIMEOUT = 5.0


# ---- tokens -------------------------------------------------------------

def b64u(b):
    if isinstance(b, str):
        b = b.encode("utf-8")
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode("ascii")


def compact(obj):
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def mint(payload, secret=SECRET, header=None, alg="sha256", sig=None):
    """A JWT with the given payload (a dict, or raw bytes/str) and header
    (default {"alg":"HS256","typ":"JWT"}), signed with HMAC-alg under
    secret unless sig (a string) is given."""
    if header is None:
        header = {"alg": "HS256", "typ": "JWT"}
    h = b64u(compact(header) if isinstance(header, dict) else header)
    p = b64u(compact(payload) if isinstance(payload, (dict, list))
             else payload)
    signing = (h + "." + p).encode("ascii")
    if sig is None:
        sig = b64u(hmac.new(secret.encode("utf-8"), signing,
                            getattr(hashlib, alg)).digest())
    return h + "." + p + "." + sig


def token(uid, info=None, ttl=None, **claims):
    payload = {"uid": uid}
    if info is not None:
        payload["userInfo"] = info
    if ttl is not None:
        payload["exp"] = int(time.time()) + ttl
    payload.update(claims)
    return mint(payload)


def token_of_length(n, uid="padded"):
    """A valid token exactly n characters long, padded with an extra
    claim the server ignores."""
    base = len(mint({"uid": uid, "pad": ""}))
    for pad in range(max(0, (n - base) * 3 // 4 - 8), n):
        t = mint({"uid": uid, "pad": "p" * pad})
        if len(t) == n:
            return t
        if len(t) > n:
            break
    raise AssertionError("no padding gives a token of %d bytes" % n)


def cli_token(uid, *args):
    out = subprocess.run([vkws_bin(), "token", "--uid", uid, "--secret",
                          SECRET] + list(args), cwd=ROOT,
                         stdin=subprocess.DEVNULL, capture_output=True,
                         timeout=10)
    assert out.returncode == 0, out.stderr
    t = out.stdout.decode("ascii")
    assert t.endswith("\n") and t.count("\n") == 1, t
    return t.strip()


def query(tok):
    return "/ws?token=" + urllib.parse.quote(tok, safe="")


def pct_all(s):
    """Every byte percent-encoded, mixing upper- and lower-case hex."""
    return "".join(("%%%02X" if i % 2 else "%%%02x") % b
                   for i, b in enumerate(s.encode("utf-8")))


# ---- checks -------------------------------------------------------------

def now_ms():
    return int(time.time() * 1000)


def check_ts(m):
    t = m.get("timestamp")
    assert isinstance(t, int) and not isinstance(t, bool), m
    assert abs(t - now_ms()) < 60000, "timestamp %r is not now" % t


def check_error(m, code, msg=None):
    assert m.get("type") == "error", "expected an error, got %r" % m
    assert set(m) == {"type", "code", "msg"}, m
    assert m["code"] == code, "error code %r, expected %r: %r" % (
        m["code"], code, m)
    assert isinstance(m["msg"], str) and m["msg"], m
    if msg is not None:
        assert m["msg"] == msg, m


def check_ack(m, rid, code=0, msg=None):
    assert m.get("type") == "ack", "expected an ack, got %r" % m
    assert "id" in m and m["id"] == rid and type(m["id"]) is type(rid), \
        "ack id %r, expected %r" % (m.get("id"), rid)
    assert m["code"] == code, "ack code %r, expected %r: %r" % (
        m["code"], code, m)
    if code == 0:
        assert set(m) == {"type", "id", "code"}, m
    else:
        assert set(m) == {"type", "id", "code", "msg"}, m
        assert isinstance(m["msg"], str) and m["msg"], m
        if msg is not None:
            assert m["msg"] == msg, m


def check_auth_fail(m, rid=None):
    want = {"type": "auth", "code": -1, "msg": MSG_AUTH_FAIL}
    if rid is not None:
        want["id"] = rid
    assert m == want, "expected %r, got %r" % (want, m)


# ---- clients ------------------------------------------------------------

class Closed(Exception):
    pass


class Chat:
    """One python3-websockets connection to /ws, speaking JSON."""

    def __init__(self, ws, name):
        self.ws = ws
        self.name = name
        self.cid = None
        self.uid = None
        self.info = {}
        self.n = 0

    def user(self):
        return {"clientId": self.cid, "userId": self.uid,
                "userInfo": self.info}

    def next_id(self):
        self.n += 1
        return "%s-%d" % (self.name[:16], self.n)

    async def send(self, m):
        if not isinstance(m, (str, bytes)):
            m = json.dumps(m, ensure_ascii=False)
        await self.ws.send(m)

    async def recv(self, timeout=RECV_TIMEOUT):
        try:
            raw = await asyncio.wait_for(self.ws.recv(), timeout)
        except asyncio.TimeoutError:
            raise AssertionError("%s: nothing arrived within %.1f s"
                                 % (self.name, timeout)) from None
        except websockets.ConnectionClosed as e:
            raise Closed("%s: connection closed: %s" % (self.name, e)) \
                from None
        assert isinstance(raw, str), "%s: a binary frame %r" % (
            self.name, raw[:80])
        m = json.loads(raw)
        assert isinstance(m, dict) and isinstance(m.get("type"), str), m
        return m

    async def expect(self, type_, timeout=RECV_TIMEOUT, **fields):
        m = await self.recv(timeout)
        assert m["type"] == type_, "%s: expected %s, got %r" % (
            self.name, type_, m)
        for k, v in fields.items():
            assert k in m and m[k] == v, "%s: %s is %r, expected %r in %r" % (
                self.name, k, m.get(k), v, m)
        return m

    async def call(self, m, rid=None):
        """Send m with an id; return the next message, which must be its
        ack (any code)."""
        rid = self.next_id() if rid is None else rid
        m = dict(m, id=rid)
        await self.send(m)
        a = await self.recv()
        assert a["type"] == "ack" and a.get("id") == rid, \
            "%s: expected the ack of %r, got %r" % (self.name, m, a)
        return a

    async def ok(self, m):
        a = await self.call(m)
        check_ack(a, a["id"], 0)

    async def fails(self, m, code, msg=None):
        a = await self.call(m)
        check_ack(a, a["id"], code, msg)

    async def error(self, m, code, msg=None):
        """Send m without an id: the reply is an error with code."""
        await self.send(m)
        check_error(await self.recv(), code, msg)

    async def sync(self, limit=2000):
        """Everything that arrives before the pong of a fresh ping."""
        rid = self.next_id()
        await self.send({"type": "ping", "id": rid})
        got = []
        while True:
            m = await self.recv()
            if m == {"type": "pong", "id": rid}:
                return got
            got.append(m)
            assert len(got) < limit

    async def quiet(self):
        got = await self.sync()
        assert got == [], "%s: unexpected messages %r" % (self.name, got)

    async def closed(self, code, reason=None, timeout=RECV_TIMEOUT):
        """Read until the server closes; assert its close code (and
        reason). Returns the messages that came first."""
        got = []
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("%s: no close %r within %.1f s; got %r"
                                     % (self.name, code, timeout, got))
            try:
                raw = await asyncio.wait_for(self.ws.recv(), left)
            except asyncio.TimeoutError:
                continue
            except websockets.ConnectionClosed as e:
                assert e.rcvd is not None, \
                    "%s: no close frame from the server (%s)" % (self.name, e)
                assert e.rcvd.code == code, "%s: close %r %r, expected %r" % (
                    self.name, e.rcvd.code, e.rcvd.reason, code)
                if reason is not None:
                    assert e.rcvd.reason == reason, e.rcvd
                return got
            got.append(json.loads(raw) if isinstance(raw, str) else raw)
            assert len(got) < 10000

    async def joined(self, room, others=(), history=None):
        """The notifications of own join of room: user_join (itself),
        user_list (itself and others), history. Returns the history."""
        j = await self.expect("user_join", room=room, user=self.user())
        assert set(j) == {"type", "room", "user", "timestamp"}, j
        check_ts(j)
        ul = await self.expect("user_list", room=room)
        assert set(ul) == {"type", "room", "users", "timestamp"}, ul
        check_ts(ul)
        want = [self.user()] + [o.user() for o in others]
        key = lambda u: u["clientId"]
        assert sorted(ul["users"], key=key) == sorted(want, key=key), ul
        h = await self.expect("history", room=room)
        assert set(h) == {"type", "room", "messages", "complete"}, h
        if history is not None:
            assert h["messages"] == history, h
            assert h["complete"] is True, h
        return h

    async def join(self, room, others=(), history=None, **extra):
        """A join with an id: ack 0, then the notifications."""
        await self.ok(dict({"type": "join", "room": room}, **extra))
        return await self.joined(room, others, history)

    async def chat(self, content, room=None):
        """A chat with an id: ack 0, then its own copy (returned)."""
        m = {"type": "chat", "content": content}
        if room is not None:
            m["room"] = room
        await self.ok(m)
        c = await self.expect("chat")
        check_chat(c, room or DEFAULT_ROOM, self, content)
        return c


def check_chat(m, room, sender, content, seq=None):
    assert m["type"] == "chat", m
    assert set(m) == {"type", "room", "seq", "from", "message",
                      "timestamp"}, m
    assert m["room"] == room, m
    assert m["from"] == sender.user(), m
    assert m["message"] == content, "content differs: %r vs %r" % (
        m["message"], content)
    assert isinstance(m["seq"], int) and m["seq"] >= 1, m
    if seq is not None:
        assert m["seq"] == seq, "seq %r, expected %r" % (m["seq"], seq)
    check_ts(m)


class Pool:
    """The clients of one test, closed at its end."""

    def __init__(self):
        self.all = []

    async def connect(self, srv, path="/ws", name=None, **kw):
        ws = await srv.ws_connect(path, **kw)
        c = Chat(ws, name or "c%d" % len(self.all))
        self.all.append(c)
        return c

    async def login(self, srv, uid, info=None, room=DEFAULT_ROOM,
                    others=(), via="query", tok=None, name=None, **kw):
        """Connect and authenticate as uid; with room, read the
        notifications of the default room (others: its members)."""
        tok = tok or token(uid, info)
        if via == "query":
            c = await self.connect(srv, query(tok), name or uid, **kw)
        else:
            c = await self.connect(srv, "/ws", name or uid, **kw)
            await c.send({"type": "auth", "token": tok})
        a = await c.expect("auth", code=0, msg=MSG_OK, userId=uid)
        assert set(a) == {"type", "code", "msg", "clientId", "userId"}, a
        assert isinstance(a["clientId"], str) and a["clientId"], a
        c.cid, c.uid, c.info = a["clientId"], uid, info or {}
        if room:
            await c.joined(room, others)
            for o in others:
                j = await o.expect("user_join", room=room, user=c.user())
                check_ts(j)
        return c

    async def close_all(self):
        async def one(c):
            try:
                await asyncio.wait_for(c.ws.close(), 4)
            except Exception:
                pass
        await asyncio.gather(*(one(c) for c in self.all))


def go(fn, timeout=40.0):
    """Run the async test body fn(pool) under a deadline."""
    async def main():
        pool = Pool()
        try:
            await fn(pool)
        finally:
            await pool.close_all()
    run(main(), timeout)


# ---- fixtures -----------------------------------------------------------

def _release(s):
    """Close a stopped server's stdout pipe and stderr file, keeping the
    stderr text for reports: this file starts hundreds of servers, and the
    harness select()s on descriptors, which must stay below 1024."""
    text = s.stderr()
    s._drain.join(2)
    s.stderr = lambda: text
    for f in (s.proc.stdout, s.errfile):
        try:
            f.close()
        except OSError:
            pass


def _factory(request, transport):
    started = []
    request.node._vkws_servers = started

    def start_one(*flags):
        s = Server(transport, flags)
        started.append(s)
        return s

    yield start_one
    try:
        for s in started:
            s.check_stop()
    finally:
        for s in started:
            if s.proc.poll() is None:
                s.stop()
            _release(s)


@pytest.fixture
def server(request, transport):
    """conftest's server factory (every transport), with _release()."""
    yield from _factory(request, transport)


@pytest.fixture
def plain_server(request):
    """The same over plain TCP only: for the long tables of tokens, ids
    and JSON, which test the protocol layer above the transport, so that
    a second transport does not double them."""
    yield from _factory(request, Transport())


def start(server, *flags):
    return server("--secret", SECRET, *flags)


# ---- 2. authentication ----------------------------------------------------

def test_auth_by_query_token(server):
    s = start(server)

    async def body(p):
        c = await p.connect(s, query(token("alice")))
        a = await c.recv()
        assert set(a) == {"type", "code", "msg", "clientId", "userId"}, a
        assert (a["type"], a["code"], a["msg"], a["userId"]) == (
            "auth", 0, MSG_OK, "alice"), a
        c.cid, c.uid = a["clientId"], "alice"
        await c.joined(DEFAULT_ROOM, history=[])
        await c.quiet()
    go(body)


def test_auth_by_first_message(server):
    s = start(server)

    async def body(p):
        c = await p.login(s, "bob", via="message")
        await c.quiet()
    go(body)


@pytest.mark.parametrize("rid", [7, "auth-1"])
def test_auth_reply_carries_id(plain_server, rid):
    s = start(plain_server)

    async def body(p):
        c = await p.connect(s)
        await c.send({"type": "auth", "token": token("carol"), "id": rid})
        a = await c.recv()
        assert a["type"] == "auth" and a["code"] == 0 and a["id"] == rid, a
        assert type(a["id"]) is type(rid), a
        assert a["msg"] == MSG_OK and a["userId"] == "carol", a
        c.cid, c.uid = a["clientId"], "carol"
        await c.joined(DEFAULT_ROOM)
        await c.quiet()
    go(body)


def test_auth_failure_carries_id(server):
    s = start(server)

    async def body(p):
        c = await p.connect(s)
        await c.send({"type": "auth",
                      "token": mint({"uid": "x"}, secret="wrong"), "id": 99})
        check_auth_fail(await c.recv(), 99)
        assert await c.closed(CLOSE_AUTH) == []
    go(body)


def test_auth_query_url_encoded(server):
    s = start(server)

    async def body(p):
        c = await p.connect(s, "/ws?token=" + pct_all(token("dave")),
                            name="dave")
        a = await c.expect("auth", code=0, msg=MSG_OK, userId="dave")
        c.cid, c.uid = a["clientId"], "dave"
        await c.joined(DEFAULT_ROOM)
    go(body)


def test_auth_query_among_other_parameters(server):
    s = start(server)

    async def body(p):
        c = await p.connect(s, "/ws?v=1&token=%s&x=y" % token("erin"))
        await c.expect("auth", code=0, msg=MSG_OK, userId="erin")
    go(body)


def test_auth_query_token_cli(server):
    s = start(server)
    t = cli_token("frank", "--info", '{"role":"admin","n":[1,2]}')

    async def body(p):
        c = await p.login(s, "frank", info={"role": "admin", "n": [1, 2]},
                          tok=t)
        await c.quiet()
    go(body)


def bad_tokens():
    """Tokens the server must refuse, by name."""
    now = int(time.time())
    good = token("mallory")
    h, pl, sig = good.split(".")
    flipped = sig[:5] + ("A" if sig[5] != "A" else "B") + sig[6:]
    return {
        "forged-signature": h + "." + pl + "." + flipped,
        "forged-payload": h + "." + b64u(compact({"uid": "root"})) + "."
        + sig,
        "wrong-secret": mint({"uid": "eve"}, secret="not-the-secret"),
        "alg-none-unsigned": mint({"uid": "eve"}, header={"alg": "none"},
                                  sig=""),
        "alg-none-signed": mint({"uid": "eve"},
                                header={"alg": "none", "typ": "JWT"}),
        "alg-HS512": mint({"uid": "eve"}, header={"alg": "HS512",
                                                  "typ": "JWT"},
                          alg="sha512"),
        "alg-HS512-header-only": mint({"uid": "eve"},
                                      header={"alg": "HS512"}),
        "alg-lowercase": mint({"uid": "eve"}, header={"alg": "hs256"}),
        "alg-missing": mint({"uid": "eve"}, header={"typ": "JWT"}),
        "header-not-json": mint({"uid": "eve"}, header="{alg:HS256}"),
        "truncated-signature": good[:-1],
        "truncated-two-parts": good.rsplit(".", 1)[0],
        "truncated-half": good[:len(good) // 2],
        "four-parts": good + ".e30",
        "padded-signature": good + "=",
        "empty": "",
        "garbage": "not a token",
        "expired": token("eve", exp=now - 10),
        "expired-fraction": token("eve", exp=now - 5.5),
        "exp-string": token("eve", exp=str(now + 3600)),
        "nbf-future": token("eve", nbf=now + 3600),
        "nbf-string": token("eve", nbf="0"),
        "uid-missing": mint({"userInfo": {}}),
        "uid-empty": token(""),
        "uid-65-bytes": token("u" * (UID_MAX + 1)),
        "uid-65-bytes-utf8": token("\u4e2d" * 21 + "ab"),
        "uid-number": mint({"uid": 42}),
        "uid-null": mint({"uid": None}),
        "userinfo-array": token("eve", info=[1, 2]),
        "userinfo-string": token("eve", info="x"),
        "userinfo-null": mint({"uid": "eve", "userInfo": None}),
        "userinfo-over-limit": token("eve", info={"a": "x" * USERINFO_MAX}),
        "payload-array": mint(["uid", "eve"]),
        "payload-not-json": mint(b'{"uid":"eve"'),
        "oversized": token_of_length(TOKEN_MAX + 1),
    }


BAD_TOKENS = sorted(bad_tokens())


def test_bad_token_list_is_sane():
    t = bad_tokens()
    assert len(t["oversized"]) > TOKEN_MAX
    assert len(("\u4e2d" * 21 + "ab").encode("utf-8")) == UID_MAX + 1
    assert len(set(t.values())) == len(t)


@pytest.mark.parametrize("kind", BAD_TOKENS)
def test_auth_message_bad_token(plain_server, kind):
    s = start(plain_server)
    tok = bad_tokens()[kind]

    async def body(p):
        c = await p.connect(s)
        await c.send({"type": "auth", "token": tok})
        check_auth_fail(await c.recv())
        assert await c.closed(CLOSE_AUTH) == []
    go(body)


@pytest.mark.parametrize("kind", BAD_TOKENS)
def test_auth_query_bad_token(plain_server, kind):
    s = start(plain_server)
    tok = bad_tokens()[kind]

    async def body(p):
        c = await p.connect(s, query(tok))
        check_auth_fail(await c.recv())
        assert await c.closed(CLOSE_AUTH) == []
    go(body)


@pytest.mark.parametrize("msg", [
    {"type": "auth"},
    {"type": "auth", "token": 12345},
    {"type": "auth", "token": None},
    {"type": "auth", "token": ["a.b.c"]},
], ids=["missing", "number", "null", "array"])
def test_auth_message_token_not_a_string(plain_server, msg):
    s = start(plain_server)

    async def body(p):
        c = await p.connect(s)
        await c.send(msg)
        check_auth_fail(await c.recv())
        await c.closed(CLOSE_AUTH)
    go(body)


def good_tokens():
    now = int(time.time())
    return {
        "plain": ("alice", token("alice"), {}),
        "exp-future": ("alice", token("alice", exp=now + 3600), {}),
        "exp-fraction": ("alice", token("alice", exp=now + 3600.5), {}),
        "nbf-past": ("alice", token("alice", nbf=now - 10), {}),
        "no-typ": ("alice", mint({"uid": "alice"}, header={"alg": "HS256"}),
                   {}),
        "extra-claims": ("alice", token("alice", iat=now, sub="x",
                                        role=[1]), {}),
        "uid-64-bytes": ("u" * UID_MAX, token("u" * UID_MAX), {}),
        "uid-64-bytes-utf8": ("\u4e2d" * 21 + "a",
                              token("\u4e2d" * 21 + "a"), {}),
        "uid-quotes": ('a "b" \\ c', token('a "b" \\ c'), {}),
        "uid-emoji": ("\U0001F600\u00e9", token("\U0001F600\u00e9"), {}),
        "userinfo-nested": ("alice", token("alice", info={
            "name": "Alice", "tags": ["x", {"y": None}], "n": -1.5,
            "ok": True, "zh": "\u4e2d\u6587"}),
            {"name": "Alice", "tags": ["x", {"y": None}], "n": -1.5,
             "ok": True, "zh": "\u4e2d\u6587"}),
        "token-4096-bytes": ("padded", token_of_length(TOKEN_MAX), {}),
    }


GOOD_TOKENS = sorted(good_tokens())


@pytest.mark.parametrize("via", ["query", "message"])
@pytest.mark.parametrize("kind", GOOD_TOKENS)
def test_auth_good_token(plain_server, kind, via):
    s = start(plain_server)
    uid, tok, info = good_tokens()[kind]

    async def body(p):
        c = await p.login(s, uid, info=info, tok=tok, via=via)
        m = await c.chat("hi")
        assert m["from"]["userId"] == uid
    go(body)


def test_userinfo_1kb_shown_everywhere(server):
    s = start(server)
    info = {"name": "\u5f20\u4e09", "bio": "b" * 930,
            "tags": ["a", "b"], "level": 3, "quote": 'say "hi" \\o/'}
    assert 1000 <= len(compact(info).encode("utf-8")) <= 1100

    async def body(p):
        a = await p.login(s, "alice", info=info)
        b = await p.login(s, "bob", others=[a])
        assert a.user()["userInfo"] == info
        # user_join to a (checked in login) and user_list to b show it.
        m = await a.chat("hello")
        check_chat(await b.recv(), DEFAULT_ROOM, a, "hello")
        assert m["from"]["userInfo"] == info
        await a.ok({"type": "private", "targetUserId": "bob",
                    "content": "psst"})
        pm = await b.expect("private", message="psst")
        assert pm["from"] == a.user()
        await a.ok({"type": "join", "room": "side"})
        await a.joined("side")
        await b.ok({"type": "join", "room": "side"})
        await b.joined("side", others=[a])
        j = await a.expect("user_join", room="side", user=b.user())
        await b.ok({"type": "leave", "room": "side"})
        left = await a.expect("user_leave", room="side")
        assert left["user"] == b.user()
        assert j["user"]["userInfo"] == {}
    go(body)


def info_of_size(n):
    info = {"k": ""}
    info["k"] = "v" * (n - len(compact(info)))
    assert len(compact(info)) == n
    return info


def test_userinfo_size_limit(server):
    s = start(server)
    big = info_of_size(USERINFO_MAX)

    async def body(p):
        a = await p.login(s, "alice", info=big)
        b = await p.login(s, "bob", others=[a])
        m = await a.chat("x" * MAX_CHAT)
        assert await b.recv() == m
        assert m["from"]["userInfo"] == big
        c = await p.connect(s, query(token("carol",
                                           info=info_of_size(
                                               USERINFO_MAX + 1))))
        check_auth_fail(await c.recv())
        await c.closed(CLOSE_AUTH)
    go(body)


def test_no_userinfo_is_empty_object(server):
    s = start(server)

    async def body(p):
        c = await p.login(s, "alice")
        m = await c.chat("x")
        assert m["from"]["userInfo"] == {}
    go(body)


# ---- 2 and 7: before authentication ----------------------------------------

def test_requests_before_auth_get_minus4_then_auth_works(server):
    s = start(server)

    async def body(p):
        c = await p.connect(s, name="early")
        for m in ({"type": "chat", "content": "x"},
                  {"type": "join", "room": "r"},
                  {"type": "leave", "room": DEFAULT_ROOM},
                  {"type": "private", "targetUserId": "a", "content": "x"},
                  {"type": "ping"},
                  {"type": "pong"},
                  {"type": "no-such-thing"}):
            await c.error(m, -4)
            await c.fails(m, -4)
        # Invalid input before auth is -2, as after it.
        await c.error("{not json", -2)
        await c.error(b"\x00\x01", -2)
        await c.error("[1]", -2)
        await c.error({"type": "ping", "id": None}, -2)
        await c.send({"type": "auth", "token": token("late")})
        a = await c.expect("auth", code=0, msg=MSG_OK, userId="late")
        c.cid, c.uid = a["clientId"], "late"
        await c.joined(DEFAULT_ROOM)
        await c.chat("now it works")
    go(body)


def test_early_requests_change_nothing(server):
    s = start(server)

    async def body(p):
        a = await p.login(s, "alice")
        c = await p.connect(s, name="early")
        await c.error({"type": "join", "room": "r1"}, -4)
        await c.error({"type": "chat", "content": "x"}, -4)
        await a.quiet()
        # The room r1 was not created: joining it as alice gives a fresh
        # room, and the default room holds no message.
        await a.join("r1", history=[])
        b = await p.login(s, "bob", others=[a])
        await b.quiet()
    go(body)


def test_auth_timeout(server):
    s = start(server, "--auth-timeout", "1")

    async def body(p):
        t0 = time.monotonic()
        idle = await p.connect(s, name="idle")
        refused = await p.connect(s, name="refused")
        late = await p.connect(s, name="late")
        await refused.error({"type": "chat", "content": "x"}, -4)
        await late.error({"type": "ping"}, -4)
        await late.send({"type": "auth", "token": token("late")})
        a = await late.expect("auth", code=0, msg=MSG_OK)
        late.cid, late.uid = a["clientId"], "late"
        await late.joined(DEFAULT_ROOM)

        async def check(c):
            await c.closed(CLOSE_AUTH, reason="auth timeout", timeout=6)
            assert time.monotonic() - t0 >= 0.8, "closed before its time"
        await asyncio.gather(check(idle), check(refused))
        # The authenticated client has no such deadline.
        while time.monotonic() - t0 < 1.6:
            await asyncio.sleep(0.2)
        await late.quiet()
    go(body)


# ---- 2 and 7: re-auth and token expiry -------------------------------------

def test_reauth_same_uid_replaces_userinfo(server):
    s = start(server)

    async def body(p):
        a = await p.login(s, "alice", info={"v": 1})
        b = await p.login(s, "bob", others=[a])
        await a.send({"type": "auth", "token": token("alice",
                                                     info={"v": 2}),
                      "id": "re"})
        r = await a.recv()
        assert r == {"type": "auth", "id": "re", "code": 0, "msg": MSG_OK,
                     "clientId": a.cid, "userId": "alice"}, r
        a.info = {"v": 2}
        # No second join of the default room, for anyone.
        await a.quiet()
        await b.quiet()
        m = await a.chat("after")
        assert m["from"]["userInfo"] == {"v": 2}
        check_chat(await b.recv(), DEFAULT_ROOM, a, "after")
        # A token without userInfo gives {}.
        await a.send({"type": "auth", "token": token("alice")})
        r = await a.expect("auth", code=0, clientId=a.cid)
        assert "id" not in r
        a.info = {}
        await a.chat("plain")
    go(body)


def test_reauth_different_uid(server):
    s = start(server)

    async def body(p):
        a = await p.login(s, "alice")
        await a.send({"type": "auth", "token": token("bob"), "id": 5})
        r = await a.recv()
        assert r["type"] == "auth" and r["code"] == -4 and r["id"] == 5, r
        assert "clientId" not in r and "userId" not in r, r
        await a.send({"type": "auth", "token": token("bob")})
        r = await a.recv()
        assert r["type"] == "auth" and r["code"] == -4 and "id" not in r, r
        await a.quiet()
        m = await a.chat("still alice")
        assert m["from"]["userId"] == "alice"
    go(body)


@pytest.mark.parametrize("kind", ["forged-signature", "expired",
                                  "alg-none-unsigned", "empty",
                                  "uid-missing"])
def test_reauth_bad_token_keeps_connection(plain_server, kind):
    s = start(plain_server)
    tok = bad_tokens()[kind]

    async def body(p):
        a = await p.login(s, "alice", info={"k": 1})
        await a.send({"type": "auth", "token": tok, "id": "bad"})
        check_auth_fail(await a.recv(), "bad")
        await a.send({"type": "auth", "token": tok})
        check_auth_fail(await a.recv())
        await a.quiet()
        m = await a.chat("still here")
        assert m["from"]["userInfo"] == {"k": 1}
    go(body)


def test_reauth_invalid_token_of_other_uid_is_minus1(server):
    s = start(server)

    async def body(p):
        a = await p.login(s, "alice")
        await a.send({"type": "auth",
                      "token": mint({"uid": "bob"}, secret="wrong")})
        check_auth_fail(await a.recv())
        await a.send({"type": "auth", "token": token("bob", exp=1)})
        check_auth_fail(await a.recv())
        await a.chat("ok")
    go(body)


def test_token_exp_closes_4001(server):
    s = start(server)
    t = cli_token("shortlived", "--ttl", "3")

    async def body(p):
        c = await p.login(s, "shortlived", tok=t)
        keep = await p.login(s, "keeper", others=[c])
        t0 = time.monotonic()
        await c.chat("before expiry")
        await keep.expect("chat")
        await c.closed(CLOSE_AUTH, timeout=8)
        assert time.monotonic() - t0 < 7
        left = await keep.expect("user_leave", room=DEFAULT_ROOM)
        assert left["user"] == c.user()
        await keep.quiet()
    go(body)


def test_token_exp_pending_reauth_extends(plain_server):
    s = start(plain_server)

    async def body(p):
        now = int(time.time())
        c = await p.login(s, "alice", tok=token("alice", exp=now + 2))
        await c.send({"type": "auth", "token": token("alice",
                                                     exp=now + 3600)})
        await c.expect("auth", code=0, clientId=c.cid)
        # A bad or expired token later does not undo the fresh one.
        await c.send({"type": "auth", "token": token("alice", exp=now - 1)})
        check_auth_fail(await c.recv())
        # Past the first token's exp (whole seconds, so at most now + 2).
        while time.time() < now + 2.3:
            await asyncio.sleep(0.2)
        await c.quiet()
        await c.chat("still here")
    go(body)


def test_token_exp_bad_reauth_keeps_old_expiry(plain_server):
    s = start(plain_server)

    async def body(p):
        now = int(time.time())
        c = await p.login(s, "alice", tok=token("alice", exp=now + 2))
        await c.send({"type": "auth", "token": mint({"uid": "alice"},
                                                    secret="nope")})
        check_auth_fail(await c.recv())
        await c.closed(CLOSE_AUTH, timeout=8)
    go(body)


def test_nbf_passed_is_accepted(plain_server):
    s = start(plain_server)

    async def body(p):
        now = int(time.time())
        c = await p.login(s, "alice", tok=token("alice", nbf=now))
        await c.quiet()
    go(body)


# ---- 3 and 7: ids and replies ---------------------------------------------

GOOD_IDS = [0, 1, -7, 123456789012, 1.5, "x", "", "\u4e2d\u6587",
            "i" * REQ_ID_MAX, "\u4e2d" * 21 + "a", 'q"\\']


@pytest.mark.parametrize("rid", GOOD_IDS, ids=lambda v: repr(v)[:20])
def test_id_echoed_in_ack(plain_server, rid):
    s = start(plain_server)

    async def body(p):
        c = await p.login(s, "alice")
        a = await c.call({"type": "join", "room": "r"}, rid=rid)
        check_ack(a, rid, 0)
        await c.joined("r")
        a = await c.call({"type": "leave", "room": "nope"}, rid=rid)
        check_ack(a, rid, -3)
        await c.send({"type": "ping", "id": rid})
        assert await c.recv() == {"type": "pong", "id": rid}
        await c.quiet()
    go(body)


def test_id_raw_form_kept(plain_server):
    """A number id comes back as the same JSON text."""
    s = start(plain_server)

    async def body(p):
        c = await p.login(s, "alice")
        await c.send('{"type":"ping","id":1e3}')
        raw = await asyncio.wait_for(c.ws.recv(), 5)
        assert raw.replace(" ", "") == '{"type":"pong","id":1e3}', raw
    go(body)


BAD_IDS = {
    "string-65": "i" * (REQ_ID_MAX + 1),
    "string-65-utf8": "\u4e2d" * 21 + "ab",
    "null": None,
    "object": {"a": 1},
    "array": [1],
    "true": True,
}


@pytest.mark.parametrize("kind", sorted(BAD_IDS))
def test_bad_id(plain_server, kind):
    s = start(plain_server)
    rid = BAD_IDS[kind]

    async def body(p):
        c = await p.login(s, "alice")
        await c.error({"type": "join", "room": "r", "id": rid}, -2)
        await c.error({"type": "ping", "id": rid}, -2)
        await c.error({"type": "chat", "content": "x", "id": rid}, -2)
        # Nothing was done: no room joined, no message stored.
        await c.quiet()
        await c.fails({"type": "leave", "room": "r"}, -3)
        m = await c.chat("first")
        assert m["seq"] == 1, m
    go(body)


def test_number_id_length(plain_server):
    """A number id is echoed as its text, so it is bounded like a string
    one: 64 characters pass, a longer number is a bad id."""
    s = start(plain_server)

    async def body(p):
        c = await p.login(s, "alice")
        ok = "9" * REQ_ID_MAX
        await c.send('{"type":"ping","id":%s}' % ok)
        raw = await asyncio.wait_for(c.ws.recv(), 5)
        assert raw == '{"type":"pong","id":%s}' % ok, raw
        for n in (REQ_ID_MAX + 1, 1500):
            await c.error('{"type":"ping","id":%s}' % ("1" * n), -2)
            await c.error('{"type":"join","room":"r","id":%s}' % ("1" * n),
                          -2)
        await c.quiet()
        await c.fails({"type": "leave", "room": "r"}, -3)
    go(body)


def test_escaped_string_id_echoed(plain_server):
    """The longest id written with escapes still gets its one reply."""
    s = start(plain_server)
    rid = "\\u0001" * REQ_ID_MAX

    async def body(p):
        c = await p.login(s, "\"" * UID_MAX)
        await c.send('{"type":"auth","token":"%s","id":"%s"}'
                     % (token("\"" * UID_MAX), rid))
        m = await c.expect("auth", code=0, clientId=c.cid)
        assert m["id"] == "\x01" * REQ_ID_MAX
        await c.send('{"type":"leave","room":"x","id":"%s"}' % rid)
        check_ack(await c.recv(), "\x01" * REQ_ID_MAX, -3)
    go(body)


def test_many_members_in_request(plain_server):
    """Extra members are ignored; past the parser's token table the
    request is refused with -2 and the connection goes on."""
    s = start(plain_server)

    async def body(p):
        c = await p.login(s, "alice")
        await c.send({"type": "ping", "id": 1, "pad": [0] * 1000})
        assert await c.recv() == {"type": "pong", "id": 1}
        await c.error({"type": "ping", "id": 2, "pad": [0] * 3000}, -2)
        await c.quiet()
    go(body)


def test_exactly_one_ack_with_id(server):
    s = start(server)

    async def body(p):
        c = await p.login(s, "alice")
        await c.chat("one")
        await c.quiet()
        await c.join("r")
        await c.quiet()
        await c.ok({"type": "leave", "room": "r"})
        await c.quiet()
        await c.ok({"type": "private", "targetUserId": "alice",
                    "content": "me"})
        await c.expect("private", message="me")
        await c.quiet()
        await c.ok({"type": "pong"})
        await c.quiet()
        await c.fails({"type": "chat", "content": 5}, -2)
        await c.quiet()
    go(body)


def test_no_id_only_errors(server):
    s = start(server)

    async def body(p):
        c = await p.login(s, "alice")
        await c.send({"type": "chat", "content": "a"})
        check_chat(await c.recv(), DEFAULT_ROOM, c, "a")
        await c.send({"type": "join", "room": "r"})
        await c.joined("r")
        await c.send({"type": "leave", "room": "r"})
        await c.send({"type": "pong"})
        await c.send({"type": "private", "targetUserId": "alice",
                      "content": "p"})
        await c.expect("private", message="p")
        await c.quiet()
        await c.error({"type": "leave", "room": "r"}, -3)
        await c.error({"type": "zzz"}, -1, MSG_UNKNOWN)
    go(body)


def test_ping_pong(server):
    s = start(server)

    async def body(p):
        c = await p.login(s, "alice")
        await c.send({"type": "ping"})
        assert await c.recv() == {"type": "pong"}
        await c.send({"type": "ping", "id": 42})
        assert await c.recv() == {"type": "pong", "id": 42}
        await c.send({"type": "ping", "id": "p"})
        assert await c.recv() == {"type": "pong", "id": "p"}
    go(body)


def test_server_keepalive_ping(plain_server):
    s = start(plain_server, "--ping-interval", "1")

    async def body(p):
        c = await p.login(s, "alice")
        t0 = time.monotonic()
        assert await c.recv(timeout=4) == {"type": "ping"}
        await c.send({"type": "pong"})
        assert await c.recv(timeout=4) == {"type": "ping"}
        await c.send({"type": "pong", "id": 1})
        check_ack(await c.recv(), 1)
        assert time.monotonic() - t0 >= 0.8
    go(body)


def test_idle_close_4002(server):
    s = start(server, "--idle-timeout", "2")

    async def body(p):
        t0 = time.monotonic()
        quiet = await p.login(s, "quiet")
        busy = await p.login(s, "busy", others=[quiet])

        done = asyncio.Event()

        async def chatter():
            while not done.is_set() and time.monotonic() - t0 < 10:
                await busy.send({"type": "pong"})
                await asyncio.sleep(0.3)
        task = asyncio.ensure_future(chatter())
        try:
            await quiet.closed(CLOSE_IDLE, timeout=8)
            assert time.monotonic() - t0 >= 1.5
            # The busy one, active all along, outlives the deadline.
            await asyncio.sleep(0.5)
        finally:
            done.set()
            await task
        await busy.expect("user_leave", room=DEFAULT_ROOM, user=quiet.user())
        await busy.quiet()
    go(body)


def test_websocket_ping_frame_answered(server):
    """RFC 6455 5.5.2: a ping frame on /ws gets a pong frame, and is not
    a request (no JSON reply)."""
    s = start(server)

    async def body(p):
        c = await p.login(s, "alice")
        waiter = await c.ws.ping(b"are you there")
        await asyncio.wait_for(waiter, 5)
        await c.quiet()
    go(body)


def test_fragmented_request(server):
    s = start(server)

    async def body(p):
        c = await p.login(s, "alice")
        await c.ws.send(['{"type":"chat",', '"content":"in ',
                         'pieces \u4e2d","id":1}'])
        check_ack(await c.recv(), 1)
        m = await c.expect("chat")
        assert m["message"] == "in pieces \u4e2d"
    go(body)


def test_request_size_limit(server):
    """A request of VKWS_MAX_MSG bytes is read; one byte more closes with
    1009 (RFC 6455 7.4.1)."""
    s = start(server)

    def padded(n):
        m = '{"type":"ping","id":1,"pad":"%s"}'
        text = m % ("p" * (n - len(m % "")))
        assert len(text) == n
        return text

    async def body(p):
        c = await p.login(s, "alice")
        await c.send(padded(MAX_MSG))
        assert await c.recv() == {"type": "pong", "id": 1}
        await c.send(padded(MAX_MSG + 1))
        assert await c.closed(CLOSE_TOO_BIG) == []
    go(body)


# ---- 7: what is not a request ---------------------------------------------

INVALID_JSON = {
    "trailing-comma-object": '{"type":"ping",}',
    "trailing-comma-array": '{"type":"ping","a":[1,]}',
    "key-without-value": '{"a"}',
    "leading-zero": '01',
    "leading-zero-member": '{"type":"ping","n":01}',
    "raw-control-char": '{"type":"chat","content":"a\x01b"}',
    "raw-newline": '{"type":"chat","content":"a\nb"}',
    "raw-tab": '{"type":"chat","content":"a\tb"}',
    "lone-high-surrogate": '{"type":"chat","content":"\\ud800"}',
    "lone-low-surrogate": '{"type":"chat","content":"\\udc00"}',
    "reversed-surrogates": '{"type":"chat","content":"\\udc00\\ud800"}',
    "bad-escape": '{"type":"chat","content":"\\x41"}',
    "short-unicode-escape": '{"type":"chat","content":"\\u41"}',
    "single-quotes": "{'type':'ping'}",
    "bare-key": '{type:"ping"}',
    "nan": '{"type":"ping","n":NaN}',
    "comment": '{"type":"ping"} // hi',
    "trailing-garbage": '{"type":"ping"} x',
    "two-values": '{"type":"ping"}{"type":"ping"}',
    "unterminated": '{"type":"ping"',
    "unterminated-string": '{"type":"ping',
    "empty": '',
    "whitespace": '   ',
    "plus-number": '{"type":"ping","n":+1}',
    "dot-number": '{"type":"ping","n":.5}',
    "too-deep": '{"type":"ping","a":' + '[' * 40 + ']' * 40 + '}',
    "true-caps": '{"type":"ping","b":True}',
}


@pytest.mark.parametrize("kind", sorted(INVALID_JSON))
def test_invalid_json(plain_server, kind):
    s = start(plain_server)

    async def body(p):
        c = await p.login(s, "alice")
        await c.error(INVALID_JSON[kind], -2)
        await c.quiet()
        m = await c.chat("ok")
        assert m["seq"] == 1
    go(body)


NOT_OBJECTS = ['[]', '[{"type":"ping"}]', '"ping"', '1', 'null', 'true',
               '-0.5']


@pytest.mark.parametrize("text", NOT_OBJECTS)
def test_not_an_object(plain_server, text):
    s = start(plain_server)

    async def body(p):
        c = await p.login(s, "alice")
        await c.error(text, -2)
        await c.quiet()
    go(body)


@pytest.mark.parametrize("text", ['{}', '{"type":1}', '{"type":null}',
                                  '{"type":["ping"]}', '{"type":{}}',
                                  '{"Type":"ping"}', '{"type":true}'])
def test_no_string_type(plain_server, text):
    s = start(plain_server)

    async def body(p):
        c = await p.login(s, "alice")
        await c.error(text, -2)
        # With an id: the ack says -2.
        m = json.loads(text)
        m["id"] = "t"
        await c.send(m)
        check_ack(await c.recv(), "t", -2)
        await c.quiet()
    go(body)


@pytest.mark.parametrize("t", ["foo", "PING", "Chat", "", " chat",
                               "chat\u0000", "\u804a\u5929", "ack",
                               "error", "user_join", "history"])
def test_unknown_type(plain_server, t):
    s = start(plain_server)

    async def body(p):
        c = await p.login(s, "alice")
        await c.error({"type": t}, -1, MSG_UNKNOWN)
        await c.fails({"type": t, "room": "x"}, -1, MSG_UNKNOWN)
        await c.quiet()
    go(body)


def test_binary_frame(server):
    s = start(server)

    async def body(p):
        c = await p.login(s, "alice")
        await c.error(b'{"type":"ping"}', -2)
        await c.error(b"", -2)
        await c.error(b"\xff\xfe", -2)
        await c.quiet()
    go(body)


def test_invalid_utf8_text_closes_1007(server):
    s = start(server)
    c = s.ws(query(token("alice")))
    try:
        op, data, _ = c.recv_message()
        assert json.loads(data)["code"] == 0
        c.send_text(b'{"type":"chat","content":"\xc3\x28"}')
        c.expect_close(CLOSE_BAD_DATA, skip_data=True)
    finally:
        c.close()


def test_duplicate_keys_first_wins(plain_server):
    s = start(plain_server)

    async def body(p):
        c = await p.login(s, "alice")
        await c.send('{"type":"chat","content":"first","content":"second",'
                      '"id":1}')
        check_ack(await c.recv(), 1)
        m = await c.expect("chat")
        assert m["message"] == "first", m
    go(body)


# ---- 3: chat -------------------------------------------------------------

def test_chat_default_room(server):
    s = start(server)

    async def body(p):
        a = await p.login(s, "alice")
        b = await p.login(s, "bob", others=[a])
        await a.ok({"type": "chat", "content": "hello"})
        m = await a.recv()
        check_chat(m, DEFAULT_ROOM, a, "hello", seq=1)
        assert await b.recv() == m
        await b.send({"type": "chat", "content": "hi"})
        m2 = await b.recv()
        check_chat(m2, DEFAULT_ROOM, b, "hi", seq=2)
        assert await a.recv() == m2
        await a.quiet()
        await b.quiet()
    go(body)


def test_chat_explicit_room(server):
    s = start(server)

    async def body(p):
        a = await p.login(s, "alice")
        b = await p.login(s, "bob", others=[a])
        c = await p.login(s, "carol", others=[a, b])
        await a.join("r1")
        await b.join("r1", others=[a])
        await a.expect("user_join", room="r1", user=b.user())
        m = await a.chat("in r1", room="r1")
        assert m["seq"] == 1
        assert await b.recv() == m
        await c.quiet()
        # The default room's seq is its own.
        m = await a.chat("in general")
        assert m["seq"] == 1
        assert await b.recv() == m
        assert await c.recv() == m
        m = await b.chat("explicit general", room=DEFAULT_ROOM)
        assert m["seq"] == 2
    go(body)


def test_chat_not_member(server):
    s = start(server)

    async def body(p):
        a = await p.login(s, "alice")
        b = await p.login(s, "bob", others=[a])
        await a.join("club")
        await b.fails({"type": "chat", "room": "club", "content": "x"}, -4)
        await b.error({"type": "chat", "room": "club", "content": "x"}, -4)
        await a.quiet()
        # Nothing was stored.
        m = await a.chat("first", room="club")
        assert m["seq"] == 1
    go(body)


def test_chat_room_missing(server):
    s = start(server)

    async def body(p):
        a = await p.login(s, "alice")
        await a.fails({"type": "chat", "room": "nowhere", "content": "x"},
                      -3)
        await a.error({"type": "chat", "room": "nowhere", "content": "x"},
                      -3)
        # A chat does not create the room.
        await a.fails({"type": "leave", "room": "nowhere"}, -3)
    go(body)


def test_chat_default_room_left(server):
    s = start(server)

    async def body(p):
        a = await p.login(s, "alice")
        b = await p.login(s, "bob", others=[a])
        await a.ok({"type": "leave", "room": DEFAULT_ROOM})
        left = await b.expect("user_leave", room=DEFAULT_ROOM)
        assert left["user"] == a.user()
        check_ts(left)
        await a.quiet()
        await a.fails({"type": "chat", "content": "x"}, -4)
        await a.fails({"type": "leave", "room": DEFAULT_ROOM}, -4)
        # The default room stays, with bob in it; alice may come back.
        await b.chat("still here")
        await a.join(DEFAULT_ROOM, others=[b])
        await b.expect("user_join", user=a.user())
        h = await a.chat("back")
        assert h["seq"] == 2
    go(body)


def test_chat_no_default_room(server):
    s = start(server, "--default-room", "")

    async def body(p):
        a = await p.login(s, "alice", room=None)
        await a.quiet()
        await a.fails({"type": "chat", "content": "x"}, -3)
        await a.fails({"type": "leave", "room": DEFAULT_ROOM}, -3)
        await a.join("r", history=[])
        await a.chat("x", room="r")
    go(body)


def test_custom_default_room(server):
    s = start(server, "--default-room", "lobby")

    async def body(p):
        a = await p.login(s, "alice", room="lobby")
        m = await a.chat("x", room="lobby")
        await a.ok({"type": "chat", "content": "y"})
        m2 = await a.expect("chat", room="lobby")
        assert m2["seq"] == m["seq"] + 1
        await a.fails({"type": "chat", "room": DEFAULT_ROOM,
                       "content": "x"}, -3)
    go(body)


def test_ack_before_own_copy(server):
    s = start(server)

    async def body(p):
        a = await p.login(s, "alice")
        for i in range(5):
            await a.send({"type": "chat", "content": str(i), "id": i})
        for i in range(5):
            check_ack(await a.recv(), i)
            m = await a.expect("chat")
            assert m["message"] == str(i)
    go(body)


def test_seq_per_room(server):
    s = start(server)

    async def body(p):
        a = await p.login(s, "alice")
        b = await p.login(s, "bob", others=[a])
        await a.join("x")
        await a.join("y")
        await b.join("x", others=[a])
        await a.expect("user_join", room="x")
        seqs = {"x": [], "y": [], DEFAULT_ROOM: []}
        order = ["x", "y", "x", DEFAULT_ROOM, "x", "y", "y", "x"]
        for i, room in enumerate(order):
            sender = b if room == "x" and i % 2 else a
            m = await sender.chat("m%d" % i, room=room)
            seqs[room].append(m["seq"])
            other = a if sender is b else b
            if room != "y":
                assert await other.recv() == m
        assert seqs == {"x": [1, 2, 3, 4], "y": [1, 2, 3],
                        DEFAULT_ROOM: [1]}
        await a.quiet()
        await b.quiet()
    go(body)


CONTENTS = {
    "quotes-backslashes": 'say "hi" \\ \\\\ \\" \'',
    "control-chars": "".join(chr(i) for i in range(32)) + "\x7f",
    "nul": "a\x00b",
    "emoji": "\U0001F600\U0001F44D\U0001F3FD\u2764\ufe0f",
    "cjk": "\u4f60\u597d\uff0c\u4e16\u754c\u3002\u65e5\u672c\u8a9e",
    "line-separators": "a\u2028b\u2029c",
    "json-looking": '{"type":"chat","content":"x"}',
    "html": "<script>alert(1)</script>&amp;",
    "empty": "",
    "spaces": "   ",
    "bmp-edges": "\u0080\u07ff\u0800\uffff\U00010000\U0010ffff",
    "slash": "a/b\\/c",
}


@pytest.mark.parametrize("kind", sorted(CONTENTS))
def test_content_round_trip(plain_server, kind):
    s = start(plain_server)
    text = CONTENTS[kind]

    async def body(p):
        a = await p.login(s, "alice")
        b = await p.login(s, "bob", others=[a])
        m = await a.chat(text)
        assert (await b.recv())["message"] == text
        await a.ok({"type": "private", "targetUserId": "bob",
                    "content": text})
        assert (await b.expect("private"))["message"] == text
        c = await p.login(s, "carol", others=[a, b])
        # History replays the same text.
        await c.ok({"type": "leave", "room": DEFAULT_ROOM})
        h = await c.join(DEFAULT_ROOM, others=[a, b])
        assert h["messages"] == [m], h
        for o in (a, b):
            await o.expect("user_leave", user=c.user())
            await o.expect("user_join", user=c.user())
    go(body)


def test_content_escaped_in_request(plain_server):
    """Escapes of the request are unescaped once, then re-encoded."""
    s = start(plain_server)

    async def body(p):
        a = await p.login(s, "alice")
        await a.send('{"type":"chat","content":"\\u4e2d\\ud83d\\ude00'
                     '\\n\\"\\\\\\/","id":1}')
        check_ack(await a.recv(), 1)
        m = await a.expect("chat")
        assert m["message"] == "\u4e2d\U0001F600\n\"\\/", m
    go(body)


def exact_bytes(n):
    """A string of exactly n UTF-8 bytes, mostly 3-byte characters."""
    s = "\u4e2d" * (n // 3) + "a" * (n % 3)
    assert len(s.encode("utf-8")) == n
    return s


def test_content_max_length(server):
    s = start(server)

    async def body(p):
        a = await p.login(s, "alice")
        b = await p.login(s, "bob", others=[a])
        for text in (exact_bytes(MAX_CHAT), "x" * MAX_CHAT):
            m = await a.chat(text)
            assert (await b.recv())["message"] == text
        for text in (exact_bytes(MAX_CHAT + 1), "x" * (MAX_CHAT + 1),
                     "x" * 10000):
            await a.fails({"type": "chat", "content": text}, -2)
            await a.fails({"type": "private", "targetUserId": "bob",
                           "content": text}, -2)
        await b.quiet()
        # Escaped in the request, the limit is on the text itself.
        esc = "\\u0001" * 2000
        await a.send('{"type":"chat","content":"%s","id":"e"}' % esc)
        check_ack(await a.recv(), "e")
        m = await a.expect("chat")
        assert m["message"] == "\x01" * 2000
        assert m["seq"] == 3
    go(body)


@pytest.mark.parametrize("msg", [
    {"type": "chat"},
    {"type": "chat", "content": 5},
    {"type": "chat", "content": None},
    {"type": "chat", "content": ["x"]},
    {"type": "chat", "content": {"t": "x"}},
    {"type": "chat", "content": "x", "room": 5},
    {"type": "chat", "content": "x", "room": None},
    {"type": "chat", "content": "x", "room": ""},
    {"type": "chat", "content": "x", "room": "r" * (ROOM_NAME_MAX + 1)},
    {"type": "chat", "content": "x", "room": "a\u0001b"},
], ids=["no-content", "content-number", "content-null", "content-array",
        "content-object", "room-number", "room-null", "room-empty",
        "room-65", "room-control"])
def test_chat_invalid_fields(plain_server, msg):
    s = start(plain_server)

    async def body(p):
        a = await p.login(s, "alice")
        await a.fails(msg, -2)
        await a.error(msg, -2)
        await a.quiet()
    go(body)


# ---- 3: private ----------------------------------------------------------

def test_private_to_every_connection(server):
    s = start(server)

    async def body(p):
        a = await p.login(s, "alice")
        b1 = await p.login(s, "bob", others=[a], name="bob1")
        b2 = await p.login(s, "bob", others=[a, b1], name="bob2")
        c = await p.login(s, "carol", others=[a, b1, b2])
        assert b1.cid != b2.cid
        await a.ok({"type": "private", "targetUserId": "bob",
                    "content": "secret"})
        for b in (b1, b2):
            m = await b.expect("private")
            assert set(m) == {"type", "from", "message", "timestamp"}, m
            assert m["from"] == a.user() and m["message"] == "secret", m
            check_ts(m)
            await b.quiet()
        await a.quiet()
        await c.quiet()
        # Without an id: nothing back to the sender.
        await c.send({"type": "private", "targetUserId": "bob",
                      "content": "2"})
        await c.quiet()
        assert (await b1.expect("private"))["from"] == c.user()
        assert (await b2.expect("private"))["from"] == c.user()
    go(body)


def test_private_to_self_reaches_own_connections(server):
    s = start(server)

    async def body(p):
        a1 = await p.login(s, "alice", name="a1")
        a2 = await p.login(s, "alice", others=[a1], name="a2")
        await a1.ok({"type": "private", "targetUserId": "alice",
                     "content": "note"})
        assert (await a1.expect("private"))["from"] == a1.user()
        assert (await a2.expect("private"))["from"] == a1.user()
    go(body)


def test_private_offline(server):
    s = start(server)

    async def body(p):
        a = await p.login(s, "alice")
        await a.fails({"type": "private", "targetUserId": "nobody",
                       "content": "x"}, -3)
        await a.error({"type": "private", "targetUserId": "nobody",
                       "content": "x"}, -3)
        b = await p.login(s, "bob", others=[a])
        await a.ok({"type": "private", "targetUserId": "bob",
                    "content": "x"})
        await b.expect("private")
        await b.ws.close()
        await a.expect("user_leave", room=DEFAULT_ROOM)
        await a.fails({"type": "private", "targetUserId": "bob",
                       "content": "x"}, -3)
    go(body)


def test_private_not_to_pending(server):
    """A connection that has not authenticated is nobody's."""
    s = start(server)

    async def body(p):
        a = await p.login(s, "alice")
        pend = await p.connect(s, name="pending")
        await pend.error({"type": "ping"}, -4)
        await a.fails({"type": "private", "targetUserId": "pending",
                       "content": "x"}, -3)
    go(body)


@pytest.mark.parametrize("msg", [
    {"type": "private", "content": "x"},
    {"type": "private", "targetUserId": "", "content": "x"},
    {"type": "private", "targetUserId": 5, "content": "x"},
    {"type": "private", "targetUserId": None, "content": "x"},
    {"type": "private", "targetUserId": "bob"},
    {"type": "private", "targetUserId": "bob", "content": 1},
], ids=["no-target", "target-empty", "target-number", "target-null",
        "no-content", "content-number"])
def test_private_invalid_fields(plain_server, msg):
    s = start(plain_server)

    async def body(p):
        a = await p.login(s, "alice")
        b = await p.login(s, "bob", others=[a])
        await a.fails(msg, -2)
        await a.error(msg, -2)
        await b.quiet()
    go(body)


# ---- 3 and 7: join and leave -----------------------------------------------

def test_join_notifications_and_order(server):
    s = start(server)

    async def body(p):
        a = await p.login(s, "alice")
        b = await p.login(s, "bob", others=[a])
        c = await p.login(s, "carol", others=[a, b])
        await a.join("room1", history=[])
        m1 = await a.chat("one", room="room1")
        await b.join("room1", others=[a], history=[m1])
        ja = await a.expect("user_join", room="room1", user=b.user())
        check_ts(ja)
        m2 = await b.chat("two", room="room1")
        assert await a.recv() == m2
        await c.join("room1", others=[a, b], history=[m1, m2])
        for o in (a, b):
            await o.expect("user_join", room="room1", user=c.user())
            await o.quiet()
    go(body)


def test_join_again_no_notifications(server):
    s = start(server)

    async def body(p):
        a = await p.login(s, "alice")
        b = await p.login(s, "bob", others=[a])
        await a.join("r")
        await b.join("r", others=[a])
        await a.expect("user_join", room="r")
        await a.ok({"type": "join", "room": "r"})
        await a.ok({"type": "join", "room": DEFAULT_ROOM})
        await a.send({"type": "join", "room": "r"})
        await a.quiet()
        await b.quiet()
    go(body)


def test_join_without_id(server):
    s = start(server)

    async def body(p):
        a = await p.login(s, "alice")
        await a.send({"type": "join", "room": "r"})
        await a.joined("r", history=[])
        await a.quiet()
    go(body)


@pytest.mark.parametrize("msg", [
    {"type": "join"},
    {"type": "join", "room": 1},
    {"type": "join", "room": None},
    {"type": "join", "room": ""},
    {"type": "join", "room": "r" * (ROOM_NAME_MAX + 1)},
    {"type": "join", "room": "a\nb"},
    {"type": "join", "room": "r", "since": -1},
    {"type": "join", "room": "r", "since": "5"},
    {"type": "join", "room": "r", "since": 1.5},
    {"type": "join", "room": "r", "since": None},
    {"type": "leave"},
    {"type": "leave", "room": 1},
    {"type": "leave", "room": ""},
], ids=["no-room", "room-number", "room-null", "room-empty", "room-65",
        "room-newline", "since-negative", "since-string", "since-fraction",
        "since-null", "leave-no-room", "leave-room-number",
        "leave-room-empty"])
def test_join_leave_invalid_fields(plain_server, msg):
    s = start(plain_server)

    async def body(p):
        a = await p.login(s, "alice")
        await a.fails(msg, -2)
        await a.error(msg, -2)
        await a.quiet()
    go(body)


def test_room_name_64_bytes(server):
    s = start(server)
    name = exact_bytes(ROOM_NAME_MAX)

    async def body(p):
        a = await p.login(s, "alice")
        await a.join(name, history=[])
        await a.chat("x", room=name)
        await a.ok({"type": "leave", "room": name})
    go(body)


def test_no_auto_rooms(server):
    s = start(server, "--no-auto-rooms")

    async def body(p):
        a = await p.login(s, "alice")
        await a.fails({"type": "join", "room": "new"}, -3)
        await a.error({"type": "join", "room": "new"}, -3)
        await a.fails({"type": "chat", "room": "new", "content": "x"}, -3)
        await a.quiet()
        await a.ok({"type": "join", "room": DEFAULT_ROOM})
        await a.quiet()
    go(body)


def test_too_many_rooms(server):
    s = start(server)

    async def body(p):
        a = await p.login(s, "alice")
        for i in range(ROOMS_PER_CONN - 1):
            await a.join("room%d" % i)
        await a.fails({"type": "join", "room": "one-too-many"}, -5)
        await a.error({"type": "join", "room": "one-too-many"}, -5)
        # Rooms already joined still answer 0.
        await a.ok({"type": "join", "room": "room3"})
        await a.quiet()
        await a.ok({"type": "leave", "room": "room0"})
        await a.join("one-too-many")
        await a.fails({"type": "join", "room": "room0"}, -5)
    go(body)


def test_room_table_full(server):
    """A join that would create a room past VKWS_MAX_ROOMS gets -3 (the
    room does not exist and cannot be created); existing rooms still
    take members, and a room that goes frees its entry."""
    s = start(server, "--default-room", "", "--rate", "0")

    async def body(p):
        conns = []
        for i in range(MAX_ROOMS // ROOMS_PER_CONN):
            c = await p.login(s, "filler%d" % i, room=None)
            for k in range(ROOMS_PER_CONN):
                await c.send({"type": "join", "room": "r%d-%d" % (i, k)})
            got = await c.sync()
            assert len(got) == 3 * ROOMS_PER_CONN, got[-3:]
            conns.append(c)
        x = await p.login(s, "late", room=None)
        await x.fails({"type": "join", "room": "one-more"}, -3)
        await x.error({"type": "join", "room": "one-more"}, -3)
        await x.join("r0-0", others=[conns[0]])
        await conns[0].expect("user_join", room="r0-0", user=x.user())
        await conns[1].ok({"type": "leave", "room": "r1-5"})
        await x.join("one-more", history=[])
    go(body)


def api_call(srv, method, params, key="chat-test-key"):
    body = json.dumps({"method": method, "params": params}).encode()
    raw = ("POST /api HTTP/1.1\r\nHost: %s:%d\r\nAuthorization: apikey %s\r\n"
           "Content-Type: application/json\r\nContent-Length: %d\r\n"
           "Connection: close\r\n\r\n" % (srv.host, srv.port, key, len(body))
           ).encode("latin-1") + body
    resp, c = srv.http(raw)
    c.close()
    return resp


def test_full_room(server):
    s = start(server, "--api-key", "chat-test-key")
    resp = api_call(s, "createRoom", {"room": "small", "maxClients": 2})
    assert resp.status == 200, resp
    r = json.loads(resp.body)
    assert r["code"] == 0, r

    async def body(p):
        a = await p.login(s, "alice")
        b = await p.login(s, "bob", others=[a])
        c = await p.login(s, "carol", others=[a, b])
        await a.join("small", history=[])
        await b.join("small", others=[a])
        await a.expect("user_join", room="small")
        await c.fails({"type": "join", "room": "small"}, -5)
        await c.error({"type": "join", "room": "small"}, -5)
        await a.quiet()
        await b.ok({"type": "leave", "room": "small"})
        await a.expect("user_leave", room="small")
        await c.join("small", others=[a])
    go(body)


def test_leave(server):
    s = start(server)

    async def body(p):
        a = await p.login(s, "alice")
        b = await p.login(s, "bob", others=[a])
        c = await p.login(s, "carol", others=[a, b])
        for x in (a, b, c):
            await x.send({"type": "join", "room": "r"})
        await a.joined("r")
        await b.joined("r", others=[a])
        await c.joined("r", others=[a, b])
        await a.expect("user_join", room="r", user=b.user())
        await a.expect("user_join", room="r", user=c.user())
        await b.expect("user_join", room="r", user=c.user())
        await b.ok({"type": "leave", "room": "r"})
        await b.quiet()
        for x in (a, c):
            m = await x.expect("user_leave", room="r", user=b.user())
            assert set(m) == {"type", "room", "user", "timestamp"}, m
            check_ts(m)
        m = await a.chat("after", room="r")
        assert await c.recv() == m
        await b.quiet()
        await b.fails({"type": "leave", "room": "r"}, -4)
        await b.fails({"type": "chat", "room": "r", "content": "x"}, -4)
        await b.fails({"type": "leave", "room": "never"}, -3)
        await b.error({"type": "leave", "room": "never"}, -3)
        await b.error({"type": "leave", "room": "r"}, -4)
    go(body)


def test_close_gives_one_user_leave_per_room(server):
    s = start(server)

    async def body(p):
        a = await p.login(s, "alice")
        b = await p.login(s, "bob", others=[a])
        c = await p.login(s, "carol", others=[a, b])
        for room in ("r1", "r2"):
            await a.join(room)
            await b.join(room, others=[a])
            await a.expect("user_join", room=room)
        await a.ws.close()
        got = await b.sync()
        assert sorted(m["room"] for m in got) == sorted(
            [DEFAULT_ROOM, "r1", "r2"]), got
        for m in got:
            assert m["type"] == "user_leave" and m["user"] == a.user(), m
        got = await c.sync()
        assert [(m["type"], m["room"]) for m in got] == [
            ("user_leave", DEFAULT_ROOM)], got
        await b.quiet()
    go(body)


def test_room_removed_with_last_member(server):
    s = start(server)

    async def body(p):
        a = await p.login(s, "alice")
        await a.join("temp")
        await a.chat("1", room="temp")
        await a.chat("2", room="temp")
        await a.ok({"type": "leave", "room": "temp"})
        await a.fails({"type": "chat", "room": "temp", "content": "x"}, -3)
        await a.fails({"type": "leave", "room": "temp"}, -3)
        # Created again: no history, seq starts over.
        await a.join("temp", history=[])
        m = await a.chat("again", room="temp")
        assert m["seq"] == 1
        # A member of the old room asking for what came after seq 2
        # gets the new room's messages.
        b = await p.login(s, "bob", others=[a])
        await b.join("temp", others=[a], history=[m], since=2)
        await a.expect("user_join", room="temp", user=b.user())
    go(body)


def test_default_room_keeps_history(server):
    s = start(server)

    async def body(p):
        a = await p.login(s, "alice")
        m = await a.chat("kept")
        await a.ws.close()
        b = await p.connect(s, query(token("bob")), name="bob")
        r = await b.expect("auth", code=0)
        b.cid, b.uid = r["clientId"], "bob"
        h = await b.joined(DEFAULT_ROOM)
        assert h["messages"] == [m] and h["complete"] is True, h
    go(body)


def test_many_users_many_connections_two_rooms(server):
    s = start(server)

    async def body(p):
        members = []
        conns = {}
        for uid in ("u1", "u2", "u3"):
            for k in range(2 if uid != "u3" else 1):
                c = await p.login(s, uid, others=list(members),
                                  name="%s.%d" % (uid, k))
                members.append(c)
                conns.setdefault(uid, []).append(c)
        assert len({c.cid for c in members}) == len(members) == 5
        side = [conns["u1"][0], conns["u2"][1], conns["u3"][0]]
        joined = []
        for c in side:
            await c.join("side", others=list(joined))
            for o in joined:
                await o.expect("user_join", room="side", user=c.user())
            joined.append(c)
        for sender in members:
            m = await sender.chat("g from %s" % sender.name)
            for o in members:
                if o is not sender:
                    assert await o.recv() == m
        for sender in side:
            m = await sender.chat("s from %s" % sender.name, room="side")
            for o in side:
                if o is not sender:
                    assert await o.recv() == m
        for c in members:
            await c.quiet()
        await conns["u3"][0].ok({"type": "private", "targetUserId": "u2",
                                 "content": "to u2"})
        for c in members:
            got = await c.sync()
            if c.uid == "u2":
                assert [m["message"] for m in got] == ["to u2"], got
            else:
                assert got == [], got
    go(body)


# ---- 3 and 7: history ------------------------------------------------------

def test_history_window_and_since(server):
    s = start(server, "--history", "50", "--rate", "0")

    async def body(p):
        a = await p.login(s, "alice")
        b = await p.login(s, "bob", others=[a])
        await a.join("h")
        sent = []
        for i in range(60):
            await a.send({"type": "chat", "room": "h", "content": "m%d" % i})
            sent.append(await a.expect("chat", room="h"))
        assert [m["seq"] for m in sent] == list(range(1, 61))

        async def rejoin(since, want, complete):
            extra = {} if since is None else {"since": since}
            h = await b.join("h", others=[a], **extra)
            await a.expect("user_join", room="h", user=b.user())
            assert [m["seq"] for m in h["messages"]] == [
                m["seq"] for m in want], (since, h["messages"][:3])
            assert h["messages"] == want
            assert h["complete"] is complete, (since, h["complete"])
            await b.ok({"type": "leave", "room": "h"})
            await a.expect("user_leave", room="h")
        await rejoin(None, sent[10:], False)
        await rejoin(0, sent[10:], False)
        await rejoin(5, sent[10:], False)
        await rejoin(9, sent[10:], False)
        await rejoin(10, sent[10:], True)
        await rejoin(11, sent[11:], True)
        await rejoin(30, sent[30:], True)
        await rejoin(59, sent[59:], True)
        await rejoin(60, [], True)
        # A since past the room's last seq was seen before the room
        # started over (vkws.c): the replay is the one without since.
        await rejoin(61, sent[10:], False)
        await rejoin(1000, sent[10:], False)
    go(body)


def test_history_short_is_complete(server):
    s = start(server, "--history", "50")

    async def body(p):
        a = await p.login(s, "alice")
        b = await p.login(s, "bob", others=[a])
        await a.join("h")
        sent = [await a.chat("m%d" % i, room="h") for i in range(3)]
        h = await b.join("h", others=[a])
        assert h["messages"] == sent and h["complete"] is True
    go(body)


def test_history_limit_flag(server):
    s = start(server, "--history", "3")

    async def body(p):
        a = await p.login(s, "alice")
        b = await p.login(s, "bob", others=[a])
        await a.join("h")
        sent = [await a.chat("m%d" % i, room="h") for i in range(5)]
        h = await b.join("h", others=[a])
        assert h["messages"] == sent[2:] and h["complete"] is False
    go(body)


def test_history_at_auth(server):
    """The default room's history comes with the auth, and complete false
    once older messages were dropped."""
    s = start(server, "--history", "2")

    async def body(p):
        a = await p.login(s, "alice")
        sent = [await a.chat("m%d" % i) for i in range(3)]
        b = await p.connect(s, query(token("bob")), name="bob")
        r = await b.expect("auth", code=0)
        b.cid, b.uid = r["clientId"], "bob"
        h = await b.joined(DEFAULT_ROOM, others=[a])
        assert h["messages"] == sent[1:] and h["complete"] is False
    go(body)


def test_store_failure_minus7(plain_server, tmp_path):
    """A chat the log cannot take is refused with -7 and goes nowhere:
    the log's file size is capped under the running server (prlimit), so
    its writes fail with EFBIG."""
    s = start(plain_server, "--data-dir", str(tmp_path))

    async def body(p):
        a = await p.login(s, "alice")
        b = await p.login(s, "bob", others=[a])
        size = os.path.getsize(os.path.join(str(tmp_path), "log"))
        resource.prlimit(s.proc.pid, resource.RLIMIT_FSIZE,
                         (size + 2000, size + 2000))
        last = 0
        for i in range(100):
            ack = await a.call({"type": "chat", "content": "x" * 200})
            if ack["code"] != 0:
                check_ack(ack, ack["id"], -7)
                break
            m = await a.expect("chat")
            assert await b.recv() == m
            last = m["seq"]
        else:
            raise AssertionError("the log never refused a write")
        await a.error({"type": "chat", "content": "y"}, -7)
        await b.quiet()
        await a.quiet()
        # What needs no log still works.
        await a.ok({"type": "private", "targetUserId": "bob",
                    "content": "z"})
        await b.expect("private", message="z")
        assert last >= 1
    go(body)


# ---- 3 and 7: rate limit ---------------------------------------------------

def test_rate_limit_burst(plain_server):
    s = start(plain_server, "--rate", "5", "--rate-burst", "5")

    async def body(p):
        a = await p.login(s, "alice")
        for i in range(20):
            await a.send({"type": "ping", "id": i})
        got = [await a.recv() for _ in range(20)]
        ok = [m for m in got if m["type"] == "pong"]
        limited = [m for m in got if m["type"] == "ack"]
        assert len(ok) + len(limited) == 20, got
        assert got[:5] == [{"type": "pong", "id": i} for i in range(5)], got
        assert limited, "no request of a burst of 20 was refused"
        for m in limited:
            check_ack(m, m["id"], -6)
        assert sorted(m["id"] for m in got) == list(range(20))
        await asyncio.sleep(1.3)
        # Without an id: an error; the bucket refills.
        await a.send({"type": "ping"})
        assert await a.recv() == {"type": "pong"}
    go(body)


def test_rate_limit_error_without_id(plain_server):
    s = start(plain_server, "--rate", "2", "--rate-burst", "2")

    async def body(p):
        a = await p.login(s, "alice")
        for _ in range(6):
            await a.send({"type": "chat", "content": "x"})
        got = [await a.recv() for _ in range(6)]
        chats = [m for m in got if m["type"] == "chat"]
        errors = [m for m in got if m["type"] == "error"]
        assert len(chats) + len(errors) == 6 and errors and chats, got
        for m in errors:
            check_error(m, -6)
        # A refused chat is dropped: seq has no gaps.
        assert [m["seq"] for m in chats] == list(range(1, len(chats) + 1))
    go(body)


def test_rate_grace_closes_1008(server):
    s = start(server, "--rate", "5", "--rate-burst", "5",
              "--rate-grace", "2")

    async def body(p):
        a = await p.login(s, "flood")
        calm = await p.login(s, "calm", others=[a])
        t0 = time.monotonic()
        stop = False

        async def flood():
            while not stop and time.monotonic() - t0 < 8:
                try:
                    await a.send({"type": "pong"})
                except websockets.ConnectionClosed:
                    return
                await asyncio.sleep(0.03)
        task = asyncio.ensure_future(flood())
        try:
            got = await a.closed(CLOSE_POLICY, timeout=10)
        finally:
            stop = True
            await task
        assert time.monotonic() - t0 >= 1.5, "closed before the grace"
        assert any(m.get("code") == -6 for m in got), got[:5]
        # A calm client was not touched.
        await calm.expect("user_leave", user=a.user())
        await calm.quiet()
    go(body)


# ---- 2, 6 and 7: pending, per-address and slow consumers --------------------

def raw_upgrade(srv, path):
    c = srv.raw()
    resp = c.handshake(srv.host, path, check=False)
    return c, resp


def test_max_pending(server):
    """PROTOCOL.md 8: --max-pending unproven connections share the table;
    a newcomer is not refused, the oldest unproven one gives way (1013),
    and one that authenticates makes room."""
    s = start(server, "--max-pending", "2")

    async def body(p):
        p1 = await p.connect(s, name="p1")
        p2 = await p.connect(s, name="p2")
        await p1.error({"type": "ping"}, -4)
        await p2.error({"type": "ping"}, -4)
        # A third unproven connection (its HTTP head first): p1, the
        # oldest, is closed 1013 and the newcomer is upgraded.
        c, resp = raw_upgrade(s, "/ws")
        try:
            assert resp.status == 101, resp
            await p1.closed(CLOSE_TRY_AGAIN)
            # p2 may still authenticate, and is proven then.
            await p2.send({"type": "auth", "token": token("p2")})
            await p2.expect("auth", code=0)
        finally:
            c.close()
        # A valid ?token= gets in whatever the budget.
        a = await p.login(s, "alice", room=None)
        p3 = await p.connect(s, name="p3")
        await p3.error({"type": "ping"}, -4)
        await a.sync()
    go(body)


def test_max_per_ip(server):
    s = start(server, "--max-per-ip", "2")

    async def body(p):
        a = await p.login(s, "alice")
        b = await p.login(s, "bob", others=[a])
        c, resp = raw_upgrade(s, query(token("carol")))
        try:
            assert resp.status == 503, resp
            assert resp.header("retry-after") is not None, resp
        finally:
            c.close()
        await b.ws.close()
        await a.expect("user_leave", user=b.user())
        # b's slot counts until the server has read its EOF after the
        # closing handshake (PROTOCOL.md 8 counts every connection), which
        # may come a pass after the user_leave: carol gets in once it has.
        deadline = time.monotonic() + 5
        while True:
            try:
                await p.login(s, "carol", others=[a])
                break
            except Exception as e:
                if not type(e).__name__.startswith("InvalidStatus") or \
                        time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.05)
    go(body)


def test_slow_consumer_closed_1013(server):
    s = start(server, "--rate", "0", "--close-timeout", "1",
              "--default-room", "")
    content = "s" * 4000

    async def body(p):
        sender = await p.login(s, "sender", room=None)
        watcher = await p.login(s, "watcher", room=None, max_queue=4096)
        await sender.join("busy")
        await watcher.join("busy", others=[sender])
        await sender.expect("user_join", room="busy")
        slow = s.ws(query(token("slow")), sock_opts={"rcvbuf": 4096})
        try:
            slow.send_text(json.dumps({"type": "join", "room": "busy"}))
            j = await sender.expect("user_join", room="busy")
            await watcher.expect("user_join", room="busy", user=j["user"])
            slow_id = j["user"]["clientId"]
            seen = []
            gone = []

            async def watch():
                while True:
                    m = await watcher.recv(timeout=20)
                    if m["type"] == "chat":
                        seen.append(m["seq"])
                    elif m["type"] == "user_leave":
                        assert m["user"]["clientId"] == slow_id, m
                        gone.append(m)
                        return
                    else:
                        raise AssertionError("watcher got %r" % m)
            task = asyncio.ensure_future(watch())
            sent = 0
            left = []
            t0 = time.monotonic()
            try:
                while not task.done():
                    assert sent < 6000 and time.monotonic() - t0 < 30, \
                        "the slow reader was not closed after %d " \
                        "messages" % sent
                    await sender.send({"type": "chat", "room": "busy",
                                       "content": content, "id": sent})
                    m = await sender.recv()
                    if m["type"] == "user_leave":
                        assert m["user"]["clientId"] == slow_id, m
                        left.append(m)
                        m = await sender.recv()
                    check_ack(m, sent)
                    m = await sender.expect("chat", room="busy")
                    sent += 1
                    assert m["seq"] == sent
                await task
            finally:
                task.cancel()
            assert gone
            left += await sender.sync()
            assert len(left) == 1 and left[0]["type"] == "user_leave", left
            assert left[0]["user"]["clientId"] == slow_id, left
            # The rest keep every message, before and after.
            for _ in range(10):
                await sender.chat(content, room="busy")
                sent += 1
            got = await watcher.sync()
            seen += [m["seq"] for m in got]
            assert seen == list(range(1, sent + 1))
            # The slow reader, reading at last: its data, then 1013.
            slow.expect_close(CLOSE_TRY_AGAIN, skip_data=True, timeout=10)
        finally:
            slow.close()
    go(body, timeout=60)


# ---- 2: client ids and shutdown -------------------------------------------

def test_client_ids_unique_and_not_reused(server):
    s = start(server, "--max-conns", "2", "--default-room", "")

    async def body(p):
        keep = await p.login(s, "keep", room=None)
        ids = [keep.cid]
        for i in range(8):
            c = await p.login(s, "u%d" % i, room=None)
            ids.append(c.cid)
            await c.ws.close()
            # The old id names nobody: a private to its user is -3 only
            # once the server has dropped it; then the slot is free again.
            for _ in range(100):
                a = await keep.call({"type": "private",
                                     "targetUserId": "u%d" % i,
                                     "content": "x"})
                if a["code"] == -3:
                    break
                await asyncio.sleep(0.02)
            else:
                raise AssertionError("u%d never went away" % i)
        assert all(isinstance(x, str) and x for x in ids)
        assert len(set(ids)) == len(ids), ids
    go(body)


def test_shutdown_tells_clients(server):
    s = start(server)

    async def body(p):
        a = await p.login(s, "alice")
        pend = await p.connect(s, name="pending")
        await pend.error({"type": "ping"}, -4)
        os.kill(s.proc.pid, signal.SIGTERM)
        for c in (a, pend):
            got = await c.closed(1001, timeout=10)
            assert len(got) == 1, got
            m = got[0]
            assert m["type"] == "server_shutdown", m
            assert isinstance(m["reconnectIn"], int), m
            assert 0 <= m["reconnectIn"] <= 5000, m
    go(body)
    assert s.stop() == 0
