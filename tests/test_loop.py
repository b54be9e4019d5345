"""
The loop's timers and wait (vkws.c, poller.c; README "The loop: POLLER").

A loop pass looks only at connections with events or due deadlines: the
deadlines sit in a heap, and a deadline that moves later is found lazily
at its old time. These tests check that no deadline is missed when
hundreds of connections wait at once (handshake and idle timeouts all
fire, each on its own connection, while the others stay open), and
each way a deadline can move EARLIER than the one filed in the heap:

- our close sent because of another connection (an API disconnect):
  the close timeout (1 s) replaces the idle timeout (an hour);
- a re-auth with a token that expires sooner than the first;
- SIGHUP with a shorter --idle-timeout in the config file.

Each would hang until the old (hour-long) deadline if the loop missed the
move; the tests wait at most a few seconds. They run over plain TCP only:
the timers are the same over TLS (tests/test_tls.py has the handshake
timeout there). make test runs them against the epoll build and the
poll() build (build-poll).
"""

import base64
import hashlib
import hmac
import json
import os
import select
import signal
import time

import pytest

from wsraw import OP_CLOSE, OP_TEXT
from conftest import Server, Transport

SECRET = "loop-test-secret"
API_KEY = "loop-test-api-key"
CLOSE_AUTH = 4001
CLOSE_IDLE = 4002
CROWD = 300     # connections held at once (the default build has 1024)


@pytest.fixture
def srv(request):
    """server(*flags) over plain TCP; stopped (and checked) at teardown."""
    started = []
    request.node._vkws_servers = started

    def start(*flags):
        s = Server(Transport(), flags)
        started.append(s)
        return s

    yield start
    for s in started:
        s.check_stop()


def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode("ascii")


def token(uid, exp=None):
    claims = {"uid": uid}
    if exp is not None:
        claims["exp"] = int(exp)
    head = b64u(b'{"alg":"HS256","typ":"JWT"}')
    body = b64u(json.dumps(claims, separators=(",", ":")).encode())
    sig = hmac.new(SECRET.encode(), (head + "." + body).encode("ascii"),
                   hashlib.sha256).digest()
    return head + "." + body + "." + b64u(sig)


def login(s, uid, exp=None):
    """A chat WebSocket signed in with ?token=; returns (conn, clientId)."""
    c = s.ws("/ws?token=" + token(uid, exp))
    for _ in range(20):
        op, data, _ = c.recv_message(5)
        m = json.loads(data)
        if m.get("type") == "auth":
            assert m["code"] == 0, m
            return c, m["clientId"]
    raise AssertionError("no auth reply")


def past_churn():
    """Wait out the churn window (VKWS_CHURN_MS, 1 s) of connections just
    opened: until then their held user_join is a deadline of its own,
    and the loop would look at them then anyway. After it, with no pings
    and an hour of idle timeout, nothing is due for an hour."""
    time.sleep(1.3)


def api(s, method, params):
    body = json.dumps({"method": method, "params": params}).encode()
    raw = ("POST /api HTTP/1.1\r\nHost: x\r\nAuthorization: apikey %s\r\n"
           "Content-Length: %d\r\n\r\n" % (API_KEY, len(body))).encode()
    resp, c = s.http(raw + body)
    c.close()
    assert resp.status == 200, resp
    r = json.loads(resp.body)
    assert r["code"] == 0, r
    return r


def wait_all_eof(socks, timeout):
    """Every socket of socks reaches EOF (what the server sent before it
    is read and dropped) within timeout; returns how many did."""
    left = {s.fileno(): s for s in socks}
    deadline = time.monotonic() + timeout
    while left and time.monotonic() < deadline:
        r, _, _ = select.select(list(left), [], [],
                                max(0.0, deadline - time.monotonic()))
        for fd in r:
            try:
                d = left[fd].recv(65536)
            except ConnectionResetError:
                d = b""
            if not d:
                del left[fd]
    return len(socks) - len(left)


def test_handshake_timeouts_fire_among_many(srv):
    """CROWD sockets that never send a request are each closed at their
    handshake deadline, while CROWD WebSockets with an hour of idle
    timeout stay open and keep echoing."""
    s = srv("--echo", "--handshake-timeout", "2", "--idle-timeout", "3600")
    keep = []
    mute = []
    try:
        for i in range(CROWD):
            keep.append(s.ws())
            mute.append(s.sock())
        assert wait_all_eof(mute, 20) == CROWD
        for i in range(0, CROWD, 7):
            keep[i].echo(OP_TEXT, b"still here %d" % i)
        # The listener still takes newcomers.
        c = s.ws()
        c.echo(OP_TEXT, b"new")
        c.close()
    finally:
        for c in keep:
            c.close()
        for m in mute:
            m.close()


def test_idle_timeouts_fire_among_many(srv):
    """CROWD idle WebSockets opened over a spread of time each get 4002;
    one that keeps sending (at least every 0.3 s, a tenth of the idle
    timeout) outlives them all."""
    s = srv("--echo", "--idle-timeout", "3", "--close-timeout", "1")
    busy = s.ws()
    idle = []
    try:
        for i in range(CROWD):
            idle.append(s.ws())
            if i % 10 == 0:
                busy.echo(OP_TEXT, b"busy %d" % i)
        left = {c.sock.fileno(): c for c in idle}
        deadline = time.monotonic() + 60
        while left and time.monotonic() < deadline:
            busy.echo(OP_TEXT, b"busy")
            r, _, _ = select.select(list(left), [], [], 0.3)
            for fd in r:
                f = left.pop(fd).recv_frame(5)
                assert f.opcode == OP_CLOSE and \
                    f.close_code == CLOSE_IDLE, f
        assert not left, "%d of %d idle connections not closed" % (
            len(left), CROWD)
        busy.echo(OP_TEXT, b"outlived them")
    finally:
        busy.close()
        for c in idle:
            c.close()


@pytest.mark.parametrize("ping", ["0", "3600"])
def test_close_from_another_connection_keeps_close_timeout(srv, ping):
    """An API disconnect closes a WebSocket whose next deadline was an
    hour away (idle timeout; no pings, or the next one an hour away: the
    ping time and the close deadline share the slot's timer field): the
    client never answers the close, and the server drops it after
    --close-timeout."""
    s = srv("--secret", SECRET, "--api-key", API_KEY, "--ping-interval",
            ping, "--idle-timeout", "3600", "--close-timeout", "1")
    c, cid = login(s, "alice")
    other, _ = login(s, "bob")
    try:
        past_churn()
        api(s, "disconnect", {"clientId": cid})
        for _ in range(50):
            f = c.recv_frame(5)
            if f.opcode == OP_CLOSE:
                break
        assert f.opcode == OP_CLOSE, f
        # No close reply: the close deadline, not the idle one, ends it.
        c.expect_eof(10)
        # The other connection was not touched by any of it.
        other.send_text(b'{"type":"ping","id":7}')
        for _ in range(50):
            m = json.loads(other.recv_message(5)[1])
            if m.get("type") == "pong":
                break
        assert m.get("type") == "pong", m
    finally:
        c.close()
        other.close()


def test_reauth_with_a_sooner_exp_closes_then(srv):
    """A re-auth whose token expires in 3 s replaces one good for an hour:
    the connection is closed 4001 at the new expiry."""
    s = srv("--secret", SECRET, "--ping-interval", "0",
            "--idle-timeout", "3600")
    now = int(time.time())
    c, _ = login(s, "carol", exp=now + 3600)
    try:
        past_churn()
        c.send_text(json.dumps({"type": "auth",
                                "token": token("carol", time.time() + 3)}
                               ).encode())
        f = c.expect_close(CLOSE_AUTH, timeout=15, skip_data=True)
        assert f.close_code == CLOSE_AUTH
    finally:
        c.close()


def test_sighup_shorter_idle_timeout_applies_to_open_connections(srv,
                                                                 tmp_path):
    """--idle-timeout lowered by SIGHUP from an hour to 1 s closes a
    connection that was opened under the hour."""
    conf = tmp_path / "vkws.conf"
    conf.write_text("idle-timeout 3600\n")
    s = srv("--echo", "--config", str(conf))
    c = s.ws()
    try:
        c.echo(OP_TEXT, b"under the old timeout")
        conf.write_text("idle-timeout 1\n")
        before = s.stderr().count("config: read")
        os.kill(s.proc.pid, signal.SIGHUP)
        deadline = time.monotonic() + 10
        while s.stderr().count("config: read") == before:
            assert time.monotonic() < deadline, s.stderr()
            time.sleep(0.02)
        c.expect_close(CLOSE_IDLE, timeout=10)
    finally:
        c.close()
