"""
The server API (PROTOCOL.md 4 and 7): POST /api with every vk.websocket
method, its key and framing rules, keep-alive and pipelining, `vkws call`,
/metrics and getStats, SIGTERM with many clients and SIGHUP reloads.

Chat clients are raw wsraw connections authenticated with ?token=; tokens
are signed here (HS256 written out from RFC 7515), not by the server.
Most cases share one server per module (started with --default-room ''
so clients get no notifications they did not ask for); cases that need a
fresh table, the default room, other flags or a signal start their own.
"""

import base64
import hashlib
import hmac
import json
import os
import re
import signal
import socket
import subprocess
import tempfile
import time

import pytest

import wsraw
from conftest import Server, vkws_bin

KEY = "api-test-key"
SECRET = "api-test-secret"
MAX_BODY = 65536
BASE = ["--api-key", KEY, "--secret", SECRET]


# ---- helpers ------------------------------------------------------------

def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode("ascii")


def token(uid, secret=SECRET, info=None):
    head = b64u(b'{"alg":"HS256","typ":"JWT"}')
    claims = {"uid": uid}
    if info is not None:
        claims["userInfo"] = info
    body = b64u(json.dumps(claims, separators=(",", ":")).encode())
    msg = (head + "." + body).encode("ascii")
    sig = hmac.new(secret.encode(), msg, hashlib.sha256).digest()
    return head + "." + body + "." + b64u(sig)


def post_raw(body, key=KEY, extra=(), path="/api"):
    """A whole POST request as bytes."""
    if isinstance(body, str):
        body = body.encode("utf-8")
    lines = ["POST %s HTTP/1.1" % path, "Host: 127.0.0.1"]
    if key is not None:
        lines.append("Authorization: apikey %s" % key)
    lines.append("Content-Length: %d" % len(body))
    lines += list(extra)
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def call_body(method, params=None):
    d = {"method": method}
    if params is not None:
        d["params"] = params
    return json.dumps(d, ensure_ascii=False)


def api(srv, method, params=None, key=KEY):
    """One call on a fresh connection; the decoded reply."""
    resp, c = srv.http(post_raw(call_body(method, params), key))
    c.close()
    assert resp.status == 200, resp
    assert resp.header("content-type").startswith("application/json")
    return json.loads(resp.body)


def ok(srv, method, params=None):
    r = api(srv, method, params)
    assert r["code"] == 0, r
    return r["data"]


class Chat:
    """An authenticated chat client on /ws?token=."""

    def __init__(self, srv, uid, info=None, default_room=False):
        self.uid = uid
        self.c = srv.ws("/ws?token=" + token(uid, info=info))
        m = self.recv()
        assert m["type"] == "auth" and m["code"] == 0, m
        self.cid = m["clientId"]
        if default_room:
            self.expect("user_join")
            self.expect("user_list")
            self.expect("history")

    def recv_raw(self, timeout=5.0):
        op, data, _ = self.c.recv_message(timeout)
        assert op == wsraw.OP_TEXT
        return data

    def recv(self, timeout=5.0):
        return json.loads(self.recv_raw(timeout))

    def expect(self, type_, limit=50, **match):
        """The next message of type_ whose fields match; others before
        it are skipped (bounded)."""
        for _ in range(limit):
            m = self.recv()
            if m.get("type") == type_ and all(m.get(k) == v for k, v
                                               in match.items()):
                return m
        raise AssertionError("no %s message in %d" % (type_, limit))

    def send(self, obj):
        self.c.send_text(json.dumps(obj).encode())

    def quiet(self, t=0.2):
        """Nothing arrives within t seconds."""
        with pytest.raises(wsraw.Timeout):
            self.c.recv_frame(t)

    def close(self):
        self.c.close()


@pytest.fixture(scope="module")
def shared(transport):
    s = Server(transport, BASE + ["--default-room", ""])
    yield s
    s.check_stop()


@pytest.fixture
def srv(shared):
    assert shared.alive(), "the shared API server died"
    yield shared
    assert shared.alive(), "the shared API server died during this test"


def is_tls(s):
    return s.transport.name == "tls"


def clients_max(s, want):
    """want, or fewer over TLS, whose engine pool (transport.conn_cap)
    must also serve the API calls of the test."""
    cap = getattr(s.transport, "conn_cap", None)
    return want if cap is None else min(want, cap - 2)


def plain_port(s):
    """The plain listener's port (vkws call speaks plain HTTP only)."""
    for line in s.stdout_lines:
        m = re.match(r"^listening on 127\.0\.0\.1:(\d+)$", line)
        if m:
            return int(m.group(1))
    raise AssertionError("no plain listener in %r" % s.stdout_lines)


def conn_keys(s):
    return CONN_KEYS | {"cipher"} if is_tls(s) else CONN_KEYS


def uniq(prefix):
    uniq.n += 1
    return "%s-%d" % (prefix, uniq.n)


uniq.n = 0


# ---- key, peer and framing -----------------------------------------------

def test_no_key_is_401(srv):
    resp, c = srv.http(post_raw(call_body("getStats"), key=None))
    c.close()
    assert resp.status == 401


@pytest.mark.parametrize("auth", [
    "apikey wrong", "apikey " + KEY[:-1], "apikey " + KEY + "x",
    "Bearer " + KEY, "apikey", "apikey  ", KEY, "apikey " + KEY.upper(),
])
def test_wrong_key_is_401(srv, auth):
    raw = post_raw(call_body("getStats"), key=None,
                   extra=["Authorization: " + auth])
    resp, c = srv.http(raw)
    c.close()
    assert resp.status == 401


def test_key_scheme_case_insensitive(srv):
    raw = post_raw(call_body("getStats"), key=None,
                   extra=["Authorization: APIKEY " + KEY])
    resp, c = srv.http(raw)
    c.close()
    assert resp.status == 200 and json.loads(resp.body)["code"] == 0


def test_401_keeps_connection(srv):
    c = srv.raw()
    try:
        r1 = c.request(post_raw(call_body("getStats"), key="bad"))
        assert r1.status == 401
        r2 = c.request(post_raw(call_body("getStats")))
        assert r2.status == 200 and json.loads(r2.body)["code"] == 0
    finally:
        c.close()


def test_api_key_unset_is_403(server):
    s = server("--secret", SECRET)
    resp, c = s.http(post_raw(call_body("getStats")))
    c.close()
    assert resp.status == 403


def test_get_api_is_405(srv):
    resp = srv.get("/api")
    assert resp.status == 405
    assert "POST" in resp.header("allow")


def test_body_over_limit_is_413(srv):
    c = srv.raw()
    try:
        head = ("POST /api HTTP/1.1\r\nHost: x\r\nAuthorization: apikey %s"
                "\r\nContent-Length: %d\r\n\r\n" % (KEY, MAX_BODY + 1))
        resp = c.request(head)
        assert resp.status == 413
        c.expect_eof()
    finally:
        c.close()


def test_body_at_limit_accepted(srv):
    data = "x" * (MAX_BODY - 100)
    body = call_body("broadcastToAll", {"data": data})
    body += " " * (MAX_BODY - len(body))
    assert len(body) == MAX_BODY
    resp, c = srv.http(post_raw(body))
    c.close()
    assert resp.status == 200
    assert json.loads(resp.body)["code"] == 0


def test_no_content_length_is_411(srv):
    c = srv.raw()
    try:
        resp = c.request("POST /api HTTP/1.1\r\nHost: x\r\n"
                         "Authorization: apikey %s\r\n\r\n" % KEY)
        assert resp.status == 411
        # No body was announced, so the connection goes on.
        r2 = c.request(post_raw(call_body("getStats")))
        assert r2.status == 200
    finally:
        c.close()


def test_chunked_is_411_and_closes(srv):
    c = srv.raw()
    try:
        resp = c.request("POST /api HTTP/1.1\r\nHost: x\r\n"
                         "Authorization: apikey %s\r\nTransfer-Encoding: "
                         "chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n" % KEY)
        assert resp.status == 411
        c.expect_eof()
    finally:
        c.close()


def test_chunked_with_length_is_400(srv):
    c = srv.raw()
    try:
        resp = c.request("POST /api HTTP/1.1\r\nHost: x\r\n"
                         "Authorization: apikey %s\r\nContent-Length: 5\r\n"
                         "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n" % KEY)
        assert resp.status == 400
        c.expect_eof()
    finally:
        c.close()


@pytest.mark.parametrize("cl", ["abc", "-1", "1 2", "+5"])
def test_bad_content_length_is_400(srv, cl):
    resp, c = srv.http("POST /api HTTP/1.1\r\nHost: x\r\nAuthorization: "
                       "apikey %s\r\nContent-Length: %s\r\n\r\n" % (KEY, cl))
    c.close()
    assert resp.status == 400


def test_two_content_lengths_is_400(srv):
    resp, c = srv.http("POST /api HTTP/1.1\r\nHost: x\r\nAuthorization: "
                       "apikey %s\r\nContent-Length: 2\r\nContent-Length: 2"
                       "\r\n\r\n{}" % KEY)
    c.close()
    assert resp.status == 400


@pytest.mark.parametrize("body", [
    "", "nope", "[1]", "\"getStats\"", "{\"method\":1}", "{\"params\":{}}",
    "{\"method\":\"getStats\",\"params\":[]}", "{\"method\":\"getStats\"",
    "{\"method\":null}", "{\"method\":\"getStats\",\"params\":\"x\"}",
])
def test_bad_body_is_minus_2(srv, body):
    resp, c = srv.http(post_raw(body))
    c.close()
    assert resp.status == 200
    r = json.loads(resp.body)
    assert r["code"] == -2 and isinstance(r["msg"], str)


def test_unknown_method(srv):
    r = api(srv, "fly", {})
    assert r == {"code": -1, "msg": "未知操作"}


def test_method_name_is_case_sensitive(srv):
    assert api(srv, "getstats")["code"] == -1


def test_params_optional(srv):
    assert isinstance(ok(srv, "listRooms"), list)


def test_unknown_path_404_and_healthz(srv):
    assert srv.get("/nope").status == 404
    r = srv.get("/healthz")
    assert r.status == 200 and r.body == b"ok"


# ---- keep-alive, pipelining, bodies over several reads ---------------------

def test_keep_alive_several_requests(srv):
    c = srv.raw()
    try:
        for i in range(5):
            room = uniq("ka")
            r = c.request(post_raw(call_body("createRoom", {"room": room})))
            assert r.status == 200
            assert json.loads(r.body)["data"]["room"] == room
            assert (r.header("connection") or "").lower() != "close"
    finally:
        c.close()


def test_pipelined_requests_answered_in_order(srv):
    rooms = [uniq("pipe") for _ in range(8)]
    raw = b"".join(post_raw(call_body("createRoom", {"room": r}))
                   for r in rooms)
    raw += b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    raw += post_raw(call_body("listRooms"))
    c = srv.raw()
    try:
        c.send(raw)
        for r in rooms:
            resp = c.read_response()
            assert json.loads(resp.body)["data"]["room"] == r
        assert c.read_response().body == b"ok"
        listed = json.loads(c.read_response().body)["data"]
        names = {x["room"] for x in listed}
        assert set(rooms) <= names
    finally:
        c.close()


def test_pipelined_large_replies(srv):
    # Six replies of some 28 KB each, pipelined in one write: two do not
    # fit one send queue at once, so later requests wait for room; each
    # reply must still come whole and in order.
    room = uniq("big")
    a = Chat(srv, uniq("u"))
    try:
        ok(srv, "joinRoom", {"clientId": a.cid, "room": room})
        a.expect("history")
        for i in range(7):
            a.send({"type": "chat", "room": room, "content": "%d" % i * 4000})
            a.expect("chat")
        c = srv.raw()
        try:
            c.send(post_raw(call_body("getRoomHistory", {"room": room})) * 6
                   + post_raw(call_body("getRoomInfo", {"room": room})))
            for _ in range(6):
                resp = c.read_response()
                assert len(resp.body) > 28000
                h = json.loads(resp.body)["data"]
                assert [m["message"][0] for m in h] == list("0123456")
            r = json.loads(c.read_response().body)
            assert r["data"]["room"] == room
        finally:
            c.close()
    finally:
        a.close()


def test_body_in_several_writes(srv):
    chat = Chat(srv, uniq("u"))
    try:
        data = json.dumps("s" * 40000)
        raw = post_raw('{"method":"sendToClient","params":{"clientId":"%s",'
                       '"data":%s}}' % (chat.cid, data))
        c = srv.raw()
        try:
            c.send_split(raw, [300, 9000, 1, 12000, 7000], pause=0.02)
            r = json.loads(c.read_response().body)
            assert r == {"code": 0, "data": {"delivered": 1}}
            assert chat.recv_raw() == data.encode()
            # And the connection takes another request after it.
            r2 = c.request(post_raw(call_body("getStats")))
            assert json.loads(r2.body)["code"] == 0
        finally:
            c.close()
    finally:
        chat.close()


def test_body_then_pipelined_request_in_same_write(srv):
    big = call_body("broadcastToAll", {"data": "b" * 30000})
    raw = post_raw(big) + post_raw(call_body("getStats"))
    c = srv.raw()
    try:
        c.send_split(raw, [20000, 10000], pause=0.02)
        assert json.loads(c.read_response().body)["code"] == 0
        r = json.loads(c.read_response().body)
        assert r["code"] == 0 and "uptime_seconds" in r["data"]
    finally:
        c.close()


def test_body_buffers_exhausted_is_503(server):
    s = server(*BASE)
    head = ("POST /api HTTP/1.1\r\nHost: x\r\nAuthorization: apikey %s\r\n"
            "Content-Length: 40000\r\n\r\n" % KEY).encode()
    body = call_body("broadcastToAll", {"data": "z" * 39000})
    body += " " * (40000 - len(body))
    assert len(body) == 40000
    held = []
    try:
        # Four uploads stop half way: they hold the four body buffers.
        for _ in range(4):
            c = s.raw()
            c.send(head + body[:20000].encode())
            held.append(c)
        time.sleep(0.3)
        c = s.raw()
        resp = c.request(head + body[:20000].encode())
        c.close()
        assert resp.status == 503
        assert resp.header("retry-after") is not None
        for c in held:
            c.send(body[20000:].encode())
            assert json.loads(c.read_response().body)["code"] == 0
    finally:
        for c in held:
            c.close()


def test_body_buffer_freed_by_dead_client(server):
    s = server(*BASE)
    head = ("POST /api HTTP/1.1\r\nHost: x\r\nAuthorization: apikey %s\r\n"
            "Content-Length: 40000\r\n\r\n" % KEY).encode()
    for _ in range(3):
        cs = [s.raw() for _ in range(4)]
        for c in cs:
            c.send(head + b" " * 20000)
        time.sleep(0.1)
        for c in cs:
            c.close()
        time.sleep(0.1)
    assert ok(s, "getStats")["api_body_buffers_in_use"] == 0
    # Bodies larger than a receive buffer still find a free buffer.
    for _ in range(5):
        assert api(s, "broadcastToAll", {"data": "q" * 30000})["code"] == 0


def test_expect_100_continue(srv):
    body = call_body("broadcastToAll", {"data": "e" * 30000}).encode()
    head = ("POST /api HTTP/1.1\r\nHost: x\r\nAuthorization: apikey %s\r\n"
            "Expect: 100-continue\r\nContent-Length: %d\r\n\r\n"
            % (KEY, len(body))).encode()
    c = srv.raw()
    try:
        c.send(head + body[:100])
        r = c.read_response()
        assert r.status == 100
        c.send(body[100:])
        r = c.read_response()
        assert r.status == 200 and json.loads(r.body)["code"] == 0
    finally:
        c.close()


# ---- rooms --------------------------------------------------------------

def test_create_room_and_info(srv):
    room = uniq("room")
    d = ok(srv, "createRoom", {"room": room, "maxClients": 5,
                               "persistent": False})
    assert d["room"] == room and d["clients"] == 0
    assert d["maxClients"] == 5 and d["persistent"] is False
    assert isinstance(d["createdAt"], int)
    assert abs(d["createdAt"] - time.time() * 1000) < 60000
    info = ok(srv, "getRoomInfo", {"room": room})
    assert info == d


def test_create_room_again_keeps_max_clients(srv):
    room = uniq("room")
    ok(srv, "createRoom", {"room": room, "maxClients": 7})
    d = ok(srv, "createRoom", {"room": room})
    assert d["maxClients"] == 7
    d = ok(srv, "createRoom", {"room": room, "maxClients": 0})
    assert d["maxClients"] == 0


def test_create_room_persistent_flag(srv):
    room = uniq("room")
    assert ok(srv, "createRoom", {"room": room,
                                  "persistent": True})["persistent"] is True
    # Without the field it stays; with it, it changes.
    assert ok(srv, "createRoom", {"room": room})["persistent"] is True
    assert ok(srv, "createRoom", {"room": room,
                                  "persistent": False})["persistent"] is False


def test_create_room_over_server_limit(srv):
    r = api(srv, "createRoom", {"room": uniq("room"), "maxClients": 100000})
    assert r["code"] == -2


def test_create_room_over_max_conns_flag(server):
    s = server(*(BASE + ["--max-conns", "10"]))
    assert api(s, "createRoom", {"room": "a", "maxClients": 11})["code"] == -2
    assert ok(s, "createRoom", {"room": "a", "maxClients": 10})[
        "maxClients"] == 10


def test_get_room_info_missing(srv):
    assert api(srv, "getRoomInfo", {"room": uniq("none")})["code"] == -3


def test_list_rooms(srv):
    a, b = uniq("lr"), uniq("lr")
    ok(srv, "createRoom", {"room": a})
    ok(srv, "createRoom", {"room": b, "maxClients": 3})
    rooms = {r["room"]: r for r in ok(srv, "listRooms")}
    assert rooms[b]["maxClients"] == 3
    assert set(rooms[a]) == {"room", "clients", "maxClients", "persistent",
                             "createdAt"}


def test_room_clients(srv):
    room = uniq("rc")
    a, b = Chat(srv, uniq("ua"), {"n": 1}), Chat(srv, uniq("ub"))
    try:
        ok(srv, "joinRoom", {"clientId": a.cid, "room": room})
        ok(srv, "joinRoom", {"clientId": b.cid, "room": room})
        cl = ok(srv, "getRoomClients", {"room": room})
        byid = {x["clientId"]: x for x in cl}
        assert set(byid) == {a.cid, b.cid}
        assert byid[a.cid]["userId"] == a.uid
        assert byid[a.cid]["userInfo"] == {"n": 1}
        assert byid[b.cid]["userInfo"] == {}
        assert byid[a.cid]["rooms"] == [room]
        assert ok(srv, "getRoomInfo", {"room": room})["clients"] == 2
    finally:
        a.close()
        b.close()


def test_room_clients_missing_room(srv):
    assert api(srv, "getRoomClients", {"room": uniq("none")})["code"] == -3


def test_delete_room_notifies_members(srv):
    room = uniq("del")
    a, b = Chat(srv, uniq("u")), Chat(srv, uniq("u"))
    try:
        ok(srv, "createRoom", {"room": room, "persistent": True})
        for c in (a, b):
            ok(srv, "joinRoom", {"clientId": c.cid, "room": room})
        assert ok(srv, "deleteRoom", {"room": room}) is None
        for c in (a, b):
            m = c.expect("room_deleted")
            assert m == {"type": "room_deleted", "room": room}
        assert api(srv, "getRoomInfo", {"room": room})["code"] == -3
        assert ok(srv, "getConnectionInfo", {"clientId": a.cid})[
            "rooms"] == []
        assert api(srv, "deleteRoom", {"room": room})["code"] == -3
    finally:
        a.close()
        b.close()


def test_delete_default_room_is_minus_4(server):
    s = server(*BASE)
    assert api(s, "deleteRoom", {"room": "general"})["code"] == -4
    assert ok(s, "getRoomInfo", {"room": "general"})["room"] == "general"


# ---- membership ----------------------------------------------------------

def test_join_room_notifications(srv):
    room = uniq("join")
    a, b = Chat(srv, uniq("ua")), Chat(srv, uniq("ub"))
    try:
        ok(srv, "joinRoom", {"clientId": a.cid, "room": room})
        m = a.expect("user_join")
        assert m["room"] == room and m["user"]["clientId"] == a.cid
        ul = a.expect("user_list")
        assert [u["clientId"] for u in ul["users"]] == [a.cid]
        h = a.expect("history")
        assert h["room"] == room and h["messages"] == []
        ok(srv, "joinRoom", {"clientId": b.cid, "room": room})
        m = a.expect("user_join")
        assert m["user"]["clientId"] == b.cid
        assert m["user"]["userId"] == b.uid
        assert b.expect("user_join")["user"]["clientId"] == b.cid
        ul = b.expect("user_list")
        assert {u["clientId"] for u in ul["users"]} == {a.cid, b.cid}
        b.expect("history")
        # Joining again: ok and no notifications.
        ok(srv, "joinRoom", {"clientId": b.cid, "room": room})
        b.quiet()
        ok(srv, "leaveRoom", {"clientId": b.cid, "room": room})
        m = a.expect("user_leave")
        assert m["room"] == room and m["user"]["clientId"] == b.cid
        b.quiet()
    finally:
        a.close()
        b.close()


def test_join_full_room_is_minus_5(srv):
    room = uniq("full")
    ok(srv, "createRoom", {"room": room, "maxClients": 1})
    a, b = Chat(srv, uniq("u")), Chat(srv, uniq("u"))
    try:
        ok(srv, "joinRoom", {"clientId": a.cid, "room": room})
        assert api(srv, "joinRoom", {"clientId": b.cid,
                                     "room": room})["code"] == -5
    finally:
        a.close()
        b.close()


def test_join_unknown_client_is_minus_3(srv):
    assert api(srv, "joinRoom", {"clientId": "ffff0000",
                                 "room": "x"})["code"] == -3


def test_leave_room_errors(srv):
    a = Chat(srv, uniq("u"))
    try:
        assert api(srv, "leaveRoom", {"clientId": a.cid,
                                      "room": uniq("none")})["code"] == -3
        room = uniq("lv")
        ok(srv, "createRoom", {"room": room})
        assert api(srv, "leaveRoom", {"clientId": a.cid,
                                      "room": room})["code"] == -4
    finally:
        a.close()


def test_leave_all_rooms(srv):
    a, b = Chat(srv, uniq("u")), Chat(srv, uniq("u"))
    rooms = [uniq("la") for _ in range(3)]
    try:
        for r in rooms:
            ok(srv, "joinRoom", {"clientId": a.cid, "room": r})
        ok(srv, "joinRoom", {"clientId": b.cid, "room": rooms[0]})
        assert ok(srv, "leaveAllRooms", {"clientId": a.cid}) == {"left": 3}
        m = b.expect("user_leave")
        assert m["room"] == rooms[0] and m["user"]["clientId"] == a.cid
        assert ok(srv, "getConnectionInfo", {"clientId": a.cid})[
            "rooms"] == []
        # Rooms left empty and not persistent are gone.
        assert api(srv, "getRoomInfo", {"room": rooms[1]})["code"] == -3
        assert ok(srv, "leaveAllRooms", {"clientId": a.cid}) == {"left": 0}
    finally:
        a.close()
        b.close()


# ---- sending --------------------------------------------------------------

def test_broadcast_to_all(srv):
    cs = [Chat(srv, uniq("u")) for _ in range(3)]
    pending = srv.ws("/ws")
    try:
        data = '{"k": [1, 2.5, "x"],  "nested":{"a":null}}'
        body = '{"method":"broadcastToAll","params":{"data":%s}}' % data
        resp, c = srv.http(post_raw(body))
        c.close()
        r = json.loads(resp.body)
        assert r["code"] == 0 and r["data"]["delivered"] >= 3
        for ch in cs:
            assert ch.recv_raw() == data.encode()
        # An unauthenticated connection gets no broadcast.
        with pytest.raises(wsraw.Timeout):
            pending.recv_frame(0.2)
    finally:
        pending.close()
        for ch in cs:
            ch.close()


@pytest.mark.parametrize("data", ['"a string"', "42", "null", "true",
                                  "[]", '"\\u00e9\\n"', '"中文"'])
def test_broadcast_data_byte_for_byte(srv, data):
    room = uniq("bb")
    a = Chat(srv, uniq("u"))
    try:
        ok(srv, "joinRoom", {"clientId": a.cid, "room": room})
        a.expect("history")
        body = ('{"method":"broadcastToRoom","params":{"room":"%s",'
                '"data":%s}}' % (room, data))
        resp, c = srv.http(post_raw(body))
        c.close()
        assert json.loads(resp.body) == {"code": 0, "data": {"delivered": 1}}
        assert a.recv_raw() == data.encode("utf-8")
    finally:
        a.close()


def test_broadcast_to_room_missing(srv):
    assert api(srv, "broadcastToRoom", {"room": uniq("none"),
                                        "data": 1})["code"] == -3


def test_broadcast_to_rooms_dedup(srv):
    r1, r2, r3 = uniq("d"), uniq("d"), uniq("d")
    a, b, c = Chat(srv, uniq("u")), Chat(srv, uniq("u")), Chat(srv,
                                                               uniq("u"))
    try:
        for ch, rooms in ((a, [r1, r2]), (b, [r2]), (c, [r3])):
            for r in rooms:
                ok(srv, "joinRoom", {"clientId": ch.cid, "room": r})
        for ch in (a, b, c):
            ch.send({"type": "ping", "id": "sync"})
            ch.expect("pong", id="sync")
        d = ok(srv, "broadcastToRooms", {"rooms": [r1, r2, uniq("none")],
                                         "data": {"m": "once"}})
        assert d == {"delivered": 2}
        # A marker behind the broadcast: exactly one copy came before it.
        for ch in (a, b, c):
            ok(srv, "sendToClient", {"clientId": ch.cid, "data": "mark"})
        for ch in (a, b):
            got = []
            for _ in range(5):
                m = ch.recv()
                if m == "mark":
                    break
                got.append(m)
            assert got.count({"m": "once"}) == 1, got
        assert c.recv() == "mark"
    finally:
        for ch in (a, b, c):
            ch.close()


def test_broadcast_to_rooms_none_exist(srv):
    assert api(srv, "broadcastToRooms", {"rooms": [uniq("n")],
                                         "data": 1})["code"] == -3


def test_send_to_client(srv):
    a, b = Chat(srv, uniq("u")), Chat(srv, uniq("u"))
    try:
        assert ok(srv, "sendToClient", {"clientId": a.cid,
                                        "data": {"hi": 1}}) == {"delivered": 1}
        assert a.recv() == {"hi": 1}
        b.quiet()
        assert api(srv, "sendToClient", {"clientId": "deadbeef0000",
                                         "data": 1})["code"] == -3
    finally:
        a.close()
        b.close()


def test_send_to_user_every_connection(srv):
    uid = uniq("multi")
    a, b, other = Chat(srv, uid), Chat(srv, uid), Chat(srv, uniq("u"))
    try:
        d = ok(srv, "sendToUser", {"userId": uid, "data": [1, 2]})
        assert d == {"delivered": 2}
        assert a.recv() == [1, 2] and b.recv() == [1, 2]
        other.quiet()
    finally:
        for ch in (a, b, other):
            ch.close()


def test_send_to_user_without_connection(srv):
    assert api(srv, "sendToUser", {"userId": uniq("nobody"),
                                   "data": 1})["code"] == -3


def test_broadcast_32k_to_100_clients(server):
    s = server(*(BASE + ["--default-room", ""]))
    n = clients_max(s, 100)
    cs = []
    try:
        for i in range(n):
            cs.append(Chat(s, "b%d" % i))
        data = json.dumps({"blob": os.urandom(16000).hex()})
        assert 32000 < len(data) < 33000
        body = '{"method":"broadcastToAll","params":{"data":%s}}' % data
        resp, c = s.http(post_raw(body))
        c.close()
        assert json.loads(resp.body) == {"code": 0,
                                         "data": {"delivered": n}}
        for ch in cs:
            assert ch.recv_raw(10) == data.encode()
    finally:
        for ch in cs:
            ch.close()


# ---- connections ------------------------------------------------------------

CONN_KEYS = {"clientId", "userId", "userInfo", "rooms", "remoteAddr",
             "connectedAt", "lastActiveAt", "msgsIn", "msgsOut", "bytesIn",
             "bytesOut", "tls", "queuedBytes"}


def test_connection_info_counters(srv):
    a = Chat(srv, uniq("cnt"), {"role": "x"})
    try:
        sent = received = 0
        auth_len = None
        for i in range(5):
            msg = json.dumps({"type": "ping", "id": i}).encode()
            a.c.send_text(msg)
            sent += len(msg)
            received += len(a.recv_raw())
        d = ok(srv, "getConnectionInfo", {"clientId": a.cid})
        assert set(d) == conn_keys(srv), d
        assert d["clientId"] == a.cid and d["userId"] == a.uid
        assert d["userInfo"] == {"role": "x"}
        assert d["msgsIn"] == 5 and d["bytesIn"] == sent
        # Out: the auth reply and five pongs.
        assert d["msgsOut"] == 6
        auth_len = d["bytesOut"] - received
        assert 40 < auth_len < 200
        assert d["tls"] is is_tls(srv) and d["queuedBytes"] == 0
        if is_tls(srv):
            assert isinstance(d["cipher"], str) and d["cipher"]
        assert re.match(r"^127\.0\.0\.1:\d+$", d["remoteAddr"])
        assert d["connectedAt"] <= d["lastActiveAt"]
        assert abs(d["connectedAt"] - time.time() * 1000) < 60000
    finally:
        a.close()


def test_connection_info_unknown(srv):
    assert api(srv, "getConnectionInfo",
               {"clientId": "0"})["code"] == -3


def test_all_and_active_connections(srv):
    a = Chat(srv, uniq("u"))
    pending = srv.ws("/ws")
    try:
        time.sleep(0.05)
        every = ok(srv, "getAllConnections")
        ids = {x["clientId"] for x in every}
        assert a.cid in ids
        unauth = [x for x in every if x["userId"] is None]
        assert unauth, every
        assert all(set(x) == conn_keys(srv) for x in every)
        active = ok(srv, "getActiveConnections")
        assert a.cid in {x["clientId"] for x in active}
        assert all(x["userId"] is not None for x in active)
    finally:
        pending.close()
        a.close()


def test_client_data(srv):
    room = uniq("cd")
    a, b = Chat(srv, uniq("u"), {"old": 1}), Chat(srv, uniq("u"))
    try:
        assert ok(srv, "getClientData", {"clientId": a.cid}) == {"old": 1}
        d = ok(srv, "setClientData", {"clientId": a.cid,
                                      "data": {"new": [1, 2]}})
        assert d == {"new": [1, 2]}
        assert ok(srv, "getClientData", {"clientId": a.cid}) == {
            "new": [1, 2]}
        ok(srv, "joinRoom", {"clientId": b.cid, "room": room})
        ok(srv, "joinRoom", {"clientId": a.cid, "room": room})
        m = b.expect("user_join", limit=10)
        while m["user"]["clientId"] != a.cid:
            m = b.expect("user_join", limit=10)
        assert m["user"]["userInfo"] == {"new": [1, 2]}
    finally:
        a.close()
        b.close()


def test_disconnect_default_code(srv):
    a = Chat(srv, uniq("u"))
    try:
        assert ok(srv, "disconnect", {"clientId": a.cid}) is None
        f = a.c.expect_close(1000)
        assert f.close_code == 1000
        assert api(srv, "getConnectionInfo", {"clientId": a.cid})[
            "code"] == -3
    finally:
        a.close()


def test_disconnect_code_and_reason(srv):
    a = Chat(srv, uniq("u"))
    try:
        ok(srv, "disconnect", {"clientId": a.cid, "code": 4321,
                               "reason": "bye now"})
        f = a.c.expect_close(4321)
        assert f.close_reason == b"bye now"
    finally:
        a.close()


@pytest.mark.parametrize("code", [999, 1001, 1011, 2999, 5000, -1, "1000",
                                  1000.5, None])
def test_disconnect_bad_code(srv, code):
    a = Chat(srv, uniq("u"))
    try:
        r = api(srv, "disconnect", {"clientId": a.cid, "code": code})
        assert r["code"] == -2
        a.send({"type": "ping", "id": 1})
        assert a.expect("pong")["id"] == 1
    finally:
        a.close()


def test_disconnect_all(server):
    s = server(*(BASE + ["--default-room", ""]))
    cs = [Chat(s, "u%d" % i) for i in range(3)]
    pending = s.ws("/ws")
    try:
        assert api(s, "disconnectAll", {"code": 999})["code"] == -2
        d = ok(s, "disconnectAll", {"code": 3000, "reason": "maint"})
        assert d == {"closed": 4}
        for ch in cs:
            ch.c.expect_close(3000)
        pending.expect_close(3000)
        assert ok(s, "getAllConnections") == []
    finally:
        pending.close()
        for ch in cs:
            ch.close()


# ---- history ---------------------------------------------------------------

def test_room_history(srv):
    room = uniq("hist")
    a = Chat(srv, uniq("u"))
    try:
        ok(srv, "joinRoom", {"clientId": a.cid, "room": room})
        a.expect("history")
        for i in range(5):
            a.send({"type": "chat", "room": room, "content": "m%d" % i})
            a.expect("chat")
        h = ok(srv, "getRoomHistory", {"room": room})
        assert [m["message"] for m in h] == ["m0", "m1", "m2", "m3", "m4"]
        assert [m["seq"] for m in h] == [1, 2, 3, 4, 5]
        h = ok(srv, "getRoomHistory", {"room": room, "limit": 2})
        assert [m["message"] for m in h] == ["m3", "m4"]
        assert ok(srv, "getRoomHistory", {"room": room, "limit": 0}) == []
        assert len(ok(srv, "getRoomHistory", {"room": room,
                                              "limit": 100})) == 5
        assert api(srv, "getRoomHistory", {"room": uniq("no")})["code"] == -3
    finally:
        a.close()


# ---- parameter checks: missing, ill-typed, too long ---------------------------

LONG_ROOM = "r" * 65
BAD_PARAMS = [
    ("createRoom", {}),
    ("createRoom", {"room": 5}),
    ("createRoom", {"room": ""}),
    ("createRoom", {"room": LONG_ROOM}),
    ("createRoom", {"room": "ok", "maxClients": "3"}),
    ("createRoom", {"room": "ok", "maxClients": -1}),
    ("createRoom", {"room": "ok", "maxClients": 1.5}),
    ("createRoom", {"room": "ok", "persistent": 1}),
    ("createRoom", {"room": "a\u0001b"}),
    ("getRoomInfo", {}),
    ("getRoomInfo", {"room": None}),
    ("getRoomInfo", {"room": LONG_ROOM}),
    ("getRoomClients", {"room": []}),
    ("deleteRoom", {}),
    ("deleteRoom", {"room": LONG_ROOM}),
    ("joinRoom", {"room": "x"}),
    ("joinRoom", {"clientId": "1"}),
    ("joinRoom", {"clientId": 1, "room": "x"}),
    ("joinRoom", {"clientId": "1" * 25, "room": "x"}),
    ("joinRoom", {"clientId": "1", "room": LONG_ROOM}),
    ("leaveRoom", {"clientId": "1"}),
    ("leaveRoom", {"clientId": {}, "room": "x"}),
    ("leaveAllRooms", {}),
    ("leaveAllRooms", {"clientId": ""}),
    ("broadcastToAll", {}),
    ("broadcastToRoom", {"data": 1}),
    ("broadcastToRoom", {"room": "x"}),
    ("broadcastToRoom", {"room": LONG_ROOM, "data": 1}),
    ("broadcastToRooms", {"data": 1}),
    ("broadcastToRooms", {"rooms": "x", "data": 1}),
    ("broadcastToRooms", {"rooms": [], "data": 1}),
    ("broadcastToRooms", {"rooms": ["x", 1], "data": 1}),
    ("broadcastToRooms", {"rooms": [LONG_ROOM], "data": 1}),
    ("broadcastToRooms", {"rooms": ["x"]}),
    ("broadcastToRooms", {"rooms": ["r"] * 257, "data": 1}),
    ("sendToClient", {"data": 1}),
    ("sendToClient", {"clientId": "1"}),
    ("sendToClient", {"clientId": True, "data": 1}),
    ("sendToUser", {"data": 1}),
    ("sendToUser", {"userId": "u"}),
    ("sendToUser", {"userId": "", "data": 1}),
    ("sendToUser", {"userId": "u" * 65, "data": 1}),
    ("getConnectionInfo", {}),
    ("getConnectionInfo", {"clientId": 12}),
    ("disconnect", {}),
    ("disconnect", {"clientId": "1", "reason": 5}),
    # A reason is cut to 123 bytes (PROTOCOL.md 7, tests/test_durability
    # .py); one past VKWS_REASON_IN_MAX (512) bytes is refused.
    ("disconnect", {"clientId": "1", "reason": "r" * 513}),
    ("disconnectAll", {"code": "x"}),
    ("disconnectAll", {"reason": "r" * 513}),
    ("setClientData", {"clientId": "1"}),
    ("setClientData", {"data": {}}),
    ("setClientData", {"clientId": "1", "data": [1]}),
    ("setClientData", {"clientId": "1", "data": "s"}),
    ("setClientData", {"clientId": "1", "data": {"x": "y" * 3000}}),
    ("getClientData", {}),
    ("getClientData", {"clientId": None}),
    ("getRoomHistory", {}),
    ("getRoomHistory", {"room": "x", "limit": -1}),
    ("getRoomHistory", {"room": "x", "limit": "2"}),
]


@pytest.mark.parametrize("method,params", BAD_PARAMS,
                         ids=["%s-%d" % (m, i) for i, (m, _)
                              in enumerate(BAD_PARAMS)])
def test_bad_params(srv, method, params):
    r = api(srv, method, params)
    assert r["code"] == -2, r
    assert set(r) == {"code", "msg"}


def test_bad_params_change_nothing(srv):
    before = len(ok(srv, "listRooms"))
    api(srv, "createRoom", {"room": "ok", "maxClients": "3"})
    assert len(ok(srv, "listRooms")) == before


def test_reply_too_large_is_minus_5(server):
    s = server(*(BASE + ["--default-room", ""]))
    cs = []
    try:
        # 30 entries of more than 2 KB each pass the 64 KB reply buffer.
        for i in range(30):
            ch = Chat(s, "big%d" % i)
            ok(s, "setClientData", {"clientId": ch.cid,
                                    "data": {"pad": "p" * 2030}})
            cs.append(ch)
        r = api(s, "getAllConnections")
        assert r["code"] == -5 and set(r) == {"code", "msg"}
        assert ok(s, "getStats")["connections_websocket"] == 30
    finally:
        for ch in cs:
            ch.close()


# ---- metrics ---------------------------------------------------------------

LABELLED_LINE = re.compile(r'^vkws_([a-z_]+)_total\{reason="([a-z_]+)"\} (\d+)$')
METRIC_LINE = re.compile(r"^vkws_([a-z_]+) (\d+)$")


def metrics(s):
    r = s.get("/metrics")
    assert r.status == 200
    assert r.header("content-type").startswith("text/plain")
    out, helps, types = {}, set(), set()
    # Families with a reason label (PROTOCOL.md 8): one HELP and TYPE,
    # then NAME_total{reason="R"} lines, kept under getStats's flat key
    # NAME_R_total.
    families, flat = set(), set()
    for line in r.body.decode().splitlines():
        lm = LABELLED_LINE.match(line)
        if lm:
            families.add(lm.group(1) + "_total")
            key = "%s_%s_total" % (lm.group(1), lm.group(2))
            flat.add(key)
            out[key] = int(lm.group(3))
            continue
        if line.startswith("# HELP vkws_"):
            helps.add(line.split()[2][5:])
        elif line.startswith("# TYPE vkws_"):
            name, kind = line.split()[2:4]
            assert kind in ("counter", "gauge")
            assert kind == "counter" if name.endswith("_total") else True
            types.add(name[5:])
        else:
            m = METRIC_LINE.match(line)
            assert m, line
            out[m.group(1)] = int(m.group(2))
    assert helps == types == (set(out) - flat) | families
    return out


def test_metrics_format_and_get_stats(srv):
    m = metrics(srv)
    for name in ("uptime_seconds", "connections", "connections_websocket",
                 "connections_pending", "rooms", "messages_in_total",
                 "messages_out_total", "bytes_in_total", "bytes_out_total",
                 "dropped_slow_total", "closes_normal_total",
                 "closes_going_away_total", "closes_slow_consumer_total",
                 "closes_auth_total", "queue_high_water_bytes",
                 "auth_failures_total", "rate_limited_total"):
        assert name in m, name
    st = ok(srv, "getStats")
    assert set(st) == set(m)
    assert all(isinstance(v, int) for v in st.values())


def test_metrics_move_with_traffic(server):
    s = server(*(BASE + ["--default-room", "", "--rate", "2",
                         "--rate-burst", "2"]))
    m0 = metrics(s)
    assert m0["connections_websocket"] == 0
    a = Chat(s, "m1")
    try:
        m1 = metrics(s)
        assert m1["connections_websocket"] == 1
        assert m1["connections_authenticated"] == 1
        assert m1["auth_ok_total"] == m0["auth_ok_total"] + 1
        msg = b'{"type":"ping"}'
        for _ in range(2):
            a.c.send_text(msg)
            a.expect("pong")
        a.c.send_text(msg)
        assert a.expect("error")["code"] == -6
        m2 = metrics(s)
        assert m2["messages_in_total"] == m1["messages_in_total"] + 3
        assert m2["bytes_in_total"] == m1["bytes_in_total"] + 3 * len(msg)
        assert m2["messages_out_total"] == m1["messages_out_total"] + 3
        assert m2["rate_limited_total"] == m1["rate_limited_total"] + 1
        assert m2["api_requests_total"] == m1["api_requests_total"]
        api(s, "getStats")
        assert metrics(s)["api_requests_total"] == m2[
            "api_requests_total"] + 1
        bad = s.ws("/ws?token=" + token("x", secret="wrong"))
        bad.recv_message()
        bad.expect_close(4001)
        bad.close()
        ok(s, "disconnect", {"clientId": a.cid})
        a.c.expect_close(1000)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            m3 = metrics(s)
            if m3["connections_websocket"] == 0:
                break
            time.sleep(0.02)
        assert m3["connections_websocket"] == 0
        assert m3["auth_failures_total"] == m0["auth_failures_total"] + 1
        assert m3["closes_auth_total"] == m0["closes_auth_total"] + 1
        assert m3["closes_normal_total"] == m0["closes_normal_total"] + 1
        assert m3["queue_high_water_bytes"] > 0
        assert m3["uptime_seconds"] >= 0
    finally:
        a.close()


def test_metrics_rooms_gauge(srv):
    before = ok(srv, "getStats")["rooms"]
    room = uniq("g")
    ok(srv, "createRoom", {"room": room, "persistent": True})
    assert metrics(srv)["rooms"] == before + 1
    ok(srv, "deleteRoom", {"room": room})
    assert metrics(srv)["rooms"] == before


def test_metrics_not_post(srv):
    resp, c = srv.http(post_raw("", path="/metrics"))
    c.close()
    assert resp.status == 405


# ---- vkws call ---------------------------------------------------------------

def vcall(s, *args, env_key=None, key=KEY, port=None):
    argv = [vkws_bin(), "call"] + list(args)
    argv += ["--listen", "127.0.0.1:%d" % (port or plain_port(s))]
    if key is not None:
        argv += ["--api-key", key]
    env = dict(os.environ)
    env.pop("VKWS_API_KEY", None)
    if env_key is not None:
        env["VKWS_API_KEY"] = env_key
    p = subprocess.run(argv, capture_output=True, timeout=20, env=env)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def test_call_ok(srv):
    rc, out, _ = vcall(srv, "getStats")
    assert rc == 0
    assert json.loads(out)["code"] == 0


def test_call_with_params(srv):
    room = uniq("cli")
    rc, out, _ = vcall(srv, "createRoom", json.dumps({"room": room,
                                                      "maxClients": 4}))
    assert rc == 0 and json.loads(out)["data"]["maxClients"] == 4
    assert ok(srv, "getRoomInfo", {"room": room})["maxClients"] == 4


def test_call_error_code_exits_1(srv):
    rc, out, _ = vcall(srv, "getRoomInfo", '{"room":"%s"}' % uniq("no"))
    assert rc == 1 and json.loads(out)["code"] == -3
    rc, out, _ = vcall(srv, "noSuchMethod")
    assert rc == 1 and json.loads(out)["code"] == -1
    rc, out, _ = vcall(srv, "createRoom", "{not json")
    assert rc == 1 and json.loads(out)["code"] == -2


def test_call_wrong_key_exits_1(srv):
    rc, _, err = vcall(srv, "getStats", key="nope")
    assert rc == 1 and "401" in err


def test_call_key_from_env(srv):
    rc, out, _ = vcall(srv, "getStats", key=None, env_key=KEY)
    assert rc == 0


def test_call_usage_exits_2(srv):
    assert vcall(srv)[0] == 2
    assert vcall(srv, "getStats", key=None)[0] == 2
    assert vcall(srv, "a", "{}", "extra")[0] == 2
    assert vcall(srv, "getStats", "--bogus-flag", "x")[0] == 2


def test_call_no_server_exits_2():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    rc, _, err = vcall(None, "getStats", port=port)
    assert rc == 2 and "connect" in err


# ---- signals -------------------------------------------------------------------

def test_sigterm_200_clients(server):
    s = server(*(BASE + ["--default-room", ""]))
    n = clients_max(s, 200)
    cs = []
    try:
        for i in range(n - 10):
            cs.append(Chat(s, "t%d" % i).c)
        # Pending connections are told too.
        for _ in range(10):
            cs.append(s.ws("/ws"))
        assert ok(s, "getStats")["connections_websocket"] == n
        os.kill(s.proc.pid, signal.SIGTERM)
        for c in cs:
            m = None
            for _ in range(5):
                f = c.recv_frame(10)
                if f.opcode == wsraw.OP_CLOSE:
                    break
                m = json.loads(f.payload)
            assert m is not None and m["type"] == "server_shutdown", m
            assert 0 <= m["reconnectIn"] <= 5000
            assert f.opcode == wsraw.OP_CLOSE and f.close_code == 1001
            c.send_close(1001)
        assert s.proc.wait(10) == 0
    finally:
        for c in cs:
            c.close()


def test_sighup_reloads_secret_file(server):
    d = tempfile.mkdtemp()
    path = os.path.join(d, "secret")
    with open(path, "w") as f:
        f.write("first-secret\n")
    s = server("--api-key", KEY, "--secret-file", path, "--default-room", "")
    old = s.ws("/ws?token=" + token("old", secret="first-secret"))
    try:
        m = json.loads(old.recv_message()[1])
        assert m["code"] == 0
        with open(path, "w") as f:
            f.write("second-secret\n")
        os.kill(s.proc.pid, signal.SIGHUP)
        deadline = time.monotonic() + 5
        while True:
            c = s.ws("/ws?token=" + token("new", secret="second-secret"))
            m = json.loads(c.recv_message()[1])
            c.close()
            if m["code"] == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert m["code"] == 0, "a token of the new secret is refused"
        c = s.ws("/ws?token=" + token("x", secret="first-secret"))
        m = json.loads(c.recv_message()[1])
        assert m["code"] == -1
        c.expect_close(4001)
        c.close()
        # The client connected before the reload is still there.
        old.send_text(b'{"type":"ping","id":7}')
        assert json.loads(old.recv_message()[1]) == {"type": "pong",
                                                     "id": 7}
        assert s.alive()
    finally:
        old.close()
        os.unlink(path)
        os.rmdir(d)


def test_sighup_reloads_api_key_file(server):
    d = tempfile.mkdtemp()
    path = os.path.join(d, "key")
    with open(path, "w") as f:
        f.write("key-one\n")
    s = server("--api-key-file", path, "--secret", SECRET)
    try:
        assert api(s, "getStats", key="key-one")["code"] == 0
        with open(path, "w") as f:
            f.write("key-two")
        os.kill(s.proc.pid, signal.SIGHUP)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            resp, c = s.http(post_raw(call_body("getStats"), key="key-two"))
            c.close()
            if resp.status == 200:
                break
            time.sleep(0.05)
        assert resp.status == 200
        resp, c = s.http(post_raw(call_body("getStats"), key="key-one"))
        c.close()
        assert resp.status == 401
    finally:
        os.unlink(path)
        os.rmdir(d)


def test_sighup_unreadable_file_keeps_secret(server):
    d = tempfile.mkdtemp()
    path = os.path.join(d, "secret")
    with open(path, "w") as f:
        f.write("kept-secret")
    s = server("--api-key", KEY, "--secret-file", path, "--default-room", "")
    try:
        os.unlink(path)
        os.kill(s.proc.pid, signal.SIGHUP)
        time.sleep(0.2)
        c = s.ws("/ws?token=" + token("u", secret="kept-secret"))
        assert json.loads(c.recv_message()[1])["code"] == 0
        c.close()
        assert "keeping the old secret" in s.stderr()
    finally:
        os.rmdir(d)
