"""
The HTTP side of vkws: routes and their status codes, the upgrade checks
of RFC 6455 4.2.1 (version, key, Origin, subprotocol), request-head
parsing quirks, and the VKWS_MAX_HEAD / HTTP_MAX_HEADERS limits on both
sides of the boundary. Requests are written byte for byte with wsraw so
that each one says exactly what goes on the wire.
"""

import base64
import time

import pytest

import wsraw
from wsraw import OP_TEXT, accept_key, check_upgrade, new_key

MAX_HEAD = 8192         # VKWS_MAX_HEAD in vkws.h
MAX_HEADERS = 32        # HTTP_MAX_HEADERS in http.h


def head(lines, eol="\r\n"):
    return (eol.join(lines) + eol + eol).encode("latin-1")


def upgrade_lines(path="/echo", key=None, host="127.0.0.1", extra=()):
    key = key or new_key()
    return ["GET %s HTTP/1.1" % path, "Host: %s" % host,
            "Upgrade: websocket", "Connection: Upgrade",
            "Sec-WebSocket-Key: %s" % key,
            "Sec-WebSocket-Version: 13"] + list(extra)


def padded(lines, total):
    """lines plus an X-Pad header sized so the head is exactly total
    bytes, blank line included."""
    base = head(lines + ["X-Pad: "])
    pad = total - len(base)
    assert pad >= 0
    out = head(lines + ["X-Pad: " + "p" * pad])
    assert len(out) == total
    return out


def upgraded_works(conn):
    """After a 101, the connection echoes."""
    conn.echo(OP_TEXT, b"after the upgrade")


# ---- routes -------------------------------------------------------------

def test_healthz(echo_server):
    r = echo_server.get("/healthz")
    assert r.status == 200, r
    assert r.body.rstrip(b"\r\n") == b"ok", r


def test_healthz_with_query(echo_server):
    r = echo_server.get("/healthz?probe=1")
    assert r.status == 200, r
    assert r.body.rstrip(b"\r\n") == b"ok", r


def test_healthz_http10(echo_server):
    resp, c = echo_server.http(b"GET /healthz HTTP/1.0\r\n\r\n",
                               body_until_eof=True)
    c.close()
    assert resp.status == 200, resp


@pytest.mark.parametrize("path", ["/nope", "/echox", "/healthz/x", "/ECHO",
                                  "/ws/extra", "/favicon.ico", "/WS",
                                  "/wS", "/Ws"])
def test_unknown_path_404(echo_server, path):
    r = echo_server.get(path)
    assert r.status == 404, r


@pytest.mark.parametrize("with_upgrade", [False, True],
                         ids=["plain_get", "upgrade"])
def test_echo_without_flag_404(server, with_upgrade):
    s = server()
    if with_upgrade:
        c = s.raw()
        try:
            r = c.handshake(s.host, "/echo", check=False)
        finally:
            c.close()
    else:
        r = s.get("/echo")
    assert r.status == 404, r


@pytest.mark.parametrize("method,path", [("POST", "/healthz"),
                                         ("PUT", "/healthz"),
                                         ("DELETE", "/healthz"),
                                         ("POST", "/ws"),
                                         ("POST", "/echo"),
                                         ("PUT", "/echo")])
def test_wrong_method_405(echo_server, method, path):
    resp, c = echo_server.http(head([
        "%s %s HTTP/1.1" % (method, path), "Host: 127.0.0.1",
        "Content-Length: 0"]))
    c.close()
    assert resp.status == 405, resp


def test_post_echo_with_upgrade_headers_405(echo_server):
    lines = upgrade_lines("/echo")
    lines[0] = "POST /echo HTTP/1.1"
    resp, c = echo_server.http(head(lines + ["Content-Length: 0"]))
    c.close()
    assert resp.status == 405, resp


@pytest.mark.parametrize("path", ["/ws", "/echo"])
def test_no_upgrade_426(echo_server, path):
    r = echo_server.get(path)
    assert r.status == 426, r
    # RFC 7231 6.5.15: a 426 MUST carry an Upgrade header.
    up = r.header("upgrade")
    assert up is not None and up.lower() == "websocket", r


@pytest.mark.parametrize("path", ["/ws", "/echo"])
def test_connection_upgrade_without_upgrade_header_426(echo_server, path):
    r = echo_server.get(path, ["Connection: Upgrade",
                               "Sec-WebSocket-Key: %s" % new_key(),
                               "Sec-WebSocket-Version: 13"])
    assert r.status == 426, r


def test_upgrade_to_other_protocol_refused(echo_server):
    r = echo_server.get("/echo", ["Connection: Upgrade", "Upgrade: h2c",
                                  "Sec-WebSocket-Key: %s" % new_key(),
                                  "Sec-WebSocket-Version: 13"])
    assert r.status in (400, 426), r


def test_upgrade_without_connection_header_refused(echo_server):
    r = echo_server.get("/echo", ["Upgrade: websocket",
                                  "Sec-WebSocket-Key: %s" % new_key(),
                                  "Sec-WebSocket-Version: 13"])
    assert r.status in (400, 426), r


# ---- malformed requests: 400 and the socket closed ------------------------

BAD_REQUESTS = {
    "garbage": b"GARBAGE\r\n\r\n",
    "no_version": b"GET /healthz\r\nHost: x\r\n\r\n",
    "http2_version": b"GET /healthz HTTP/2.0\r\nHost: x\r\n\r\n",
    "not_http": b"GET /healthz FTP/1.1\r\nHost: x\r\n\r\n",
    "double_space": b"GET  /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
    "trailing_space": b"GET /healthz HTTP/1.1 \r\nHost: x\r\n\r\n",
    "tab_separator": b"GET\t/healthz HTTP/1.1\r\nHost: x\r\n\r\n",
    "header_no_colon": b"GET /healthz HTTP/1.1\r\nHost: x\r\nNoColon\r\n\r\n",
    "empty_header_name": b"GET /healthz HTTP/1.1\r\nHost: x\r\n: v\r\n\r\n",
    "space_before_colon": b"GET /healthz HTTP/1.1\r\nHost : x\r\n\r\n",
    "obs_fold": (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\r\n"
                 b"  folded\r\n\r\n"),
    "ctl_in_value": b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\x01b\r\n\r\n",
    "nul_in_target": b"GET /heal\x00thz HTTP/1.1\r\nHost: x\r\n\r\n",
    "nul_in_name": b"GET /healthz HTTP/1.1\r\nHo\x00st: x\r\n\r\n",
    "leading_blank_line_garbage": b"\x01\x02\x03\r\n\r\n",
}


@pytest.mark.parametrize("name", sorted(BAD_REQUESTS))
def test_malformed_400_and_closed(echo_server, name):
    resp, c = echo_server.http(BAD_REQUESTS[name])
    try:
        assert resp.status == 400, resp
        c.expect_eof(timeout=3)
    finally:
        c.close()


def test_malformed_does_not_affect_others(echo_server):
    ws = echo_server.ws()
    try:
        resp, c = echo_server.http(BAD_REQUESTS["garbage"])
        c.close()
        assert resp.status == 400
        upgraded_works(ws)
    finally:
        ws.close()


# ---- limits: VKWS_MAX_HEAD and HTTP_MAX_HEADERS ---------------------------

def test_head_exactly_max_ok(echo_server):
    raw = padded(["GET /healthz HTTP/1.1", "Host: 127.0.0.1"], MAX_HEAD)
    resp, c = echo_server.http(raw)
    c.close()
    assert resp.status == 200, resp


def test_head_one_over_max_431(echo_server):
    raw = padded(["GET /healthz HTTP/1.1", "Host: 127.0.0.1"], MAX_HEAD + 1)
    resp, c = echo_server.http(raw)
    c.close()
    assert resp.status == 431, resp


def test_upgrade_head_exactly_max_ok(echo_server):
    key = new_key()
    raw = padded(upgrade_lines("/echo", key), MAX_HEAD)
    c = echo_server.raw()
    try:
        resp = c.request(raw)
        check_upgrade(resp, key)
        upgraded_works(c)
    finally:
        c.close()


def test_upgrade_head_exactly_max_with_first_frame(echo_server):
    """A head of exactly the limit and a first frame in the same write."""
    key = new_key()
    raw = padded(upgrade_lines("/echo", key), MAX_HEAD)
    c = echo_server.raw()
    try:
        resp = c.request(raw + wsraw.build_frame(OP_TEXT, b"first"))
        check_upgrade(resp, key)
        op, data, _ = c.recv_message()
        assert (op, data) == (OP_TEXT, b"first")
    finally:
        c.close()


def test_upgrade_head_exactly_max_with_largest_first_frame(echo_server):
    """A head of exactly VKWS_MAX_HEAD and a first frame of VKWS_MAX_MSG
    bytes in one write: both fit, one after the other."""
    key = new_key()
    raw = padded(upgrade_lines("/echo", key), MAX_HEAD)
    data = bytes(i & 0xFF for i in range(16384))
    c = echo_server.raw()
    try:
        resp = c.request(raw + wsraw.build_frame(wsraw.OP_BINARY, data))
        check_upgrade(resp, key)
        op, got, _ = c.recv_message()
        assert op == wsraw.OP_BINARY and got == data
    finally:
        c.close()


def test_upgrade_head_one_over_max_431(echo_server):
    raw = padded(upgrade_lines("/echo"), MAX_HEAD + 1)
    resp, c = echo_server.http(raw)
    c.close()
    assert resp.status == 431, resp


def test_head_without_end_over_max_431(echo_server):
    """More than VKWS_MAX_HEAD bytes and still no blank line."""
    raw = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Long: " + b"l" * MAX_HEAD
    resp, c = echo_server.http(raw)
    c.close()
    assert resp.status == 431, resp


def test_header_count_at_limit_ok(echo_server):
    lines = ["GET /healthz HTTP/1.1", "Host: x"]
    lines += ["X-H%d: v" % i for i in range(MAX_HEADERS - 1)]
    resp, c = echo_server.http(head(lines))
    c.close()
    assert resp.status == 200, resp


def test_header_count_over_limit_431(echo_server):
    lines = ["GET /healthz HTTP/1.1", "Host: x"]
    lines += ["X-H%d: v" % i for i in range(MAX_HEADERS)]
    resp, c = echo_server.http(head(lines))
    c.close()
    assert resp.status == 431, resp


# ---- Sec-WebSocket-Version --------------------------------------------------

@pytest.mark.parametrize("version", ["8", "12", "14", "0", "13a", "",
                                     "13, 8"])
def test_bad_version_400_with_supported_version(echo_server, version):
    c = echo_server.raw()
    try:
        r = c.handshake(echo_server.host, "/echo", version=version,
                        check=False)
    finally:
        c.close()
    assert r.status == 400, r
    # RFC 6455 4.2.2 / 4.4: the server says which version it speaks.
    v = r.header("sec-websocket-version")
    assert v is not None and "13" in [t.strip() for t in v.split(",")], r


def test_missing_version_400(echo_server):
    c = echo_server.raw()
    try:
        r = c.handshake(echo_server.host, "/echo", version=None, check=False)
    finally:
        c.close()
    assert r.status == 400, r


# ---- Sec-WebSocket-Key ------------------------------------------------------

BAD_KEYS = {
    "missing": False,
    "empty": "",
    "15_bytes": base64.b64encode(b"x" * 15).decode(),
    "17_bytes": base64.b64encode(b"x" * 17).decode(),
    "not_base64": "!!!!!!!!!!!!!!!!!!!!!!==",
    "no_padding": "AAAAAAAAAAAAAAAAAAAAAAAA",
    "too_long": new_key() + "AAAA",
}


@pytest.mark.parametrize("name", sorted(BAD_KEYS))
def test_bad_key_400(echo_server, name):
    c = echo_server.raw()
    try:
        r = c.handshake(echo_server.host, "/echo", key=BAD_KEYS[name],
                        check=False)
    finally:
        c.close()
    assert r.status == 400, r


def test_accept_key_rfc_example(echo_server):
    """RFC 6455 1.3: the sample nonce and its accept value."""
    key = "dGhlIHNhbXBsZSBub25jZQ=="
    assert accept_key(key) == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    c = echo_server.raw()
    try:
        r = c.handshake(echo_server.host, "/echo", key=key)
        assert r.header("sec-websocket-accept") == \
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        upgraded_works(c)
    finally:
        c.close()


# ---- Origin ------------------------------------------------------------------

ORIGINS = ["http://a.example", "https://b.example:8443"]


@pytest.mark.parametrize("origin,status", [
    ("http://a.example", 101),
    ("https://b.example:8443", 101),
    (None, 101),
    ("http://evil.example", 403),
    ("null", 403),
    ("http://a.example.evil.example", 403),
    ("https://b.example", 403),
], ids=["first", "second", "absent", "other", "null", "prefix",
        "port_differs"])
def test_allowed_origin(server, origin, status):
    flags = ["--echo"]
    for o in ORIGINS:
        flags += ["--allowed-origin", o]
    s = server(*flags)
    c = s.raw()
    try:
        key = new_key()
        r = c.handshake(s.host, "/echo", key=key, origin=origin, check=False)
        assert r.status == status, r
        if status == 101:
            check_upgrade(r, key)
            upgraded_works(c)
    finally:
        c.close()


def test_allowed_origin_on_ws(server):
    s = server("--allowed-origin", "http://a.example")
    c = s.raw()
    try:
        r = c.handshake(s.host, "/ws", origin="http://evil.example",
                        check=False)
        assert r.status == 403, r
    finally:
        c.close()


def test_any_origin_without_list(echo_server):
    c = echo_server.raw()
    try:
        c.handshake(echo_server.host, "/echo", origin="http://any.example")
        upgraded_works(c)
    finally:
        c.close()


# ---- Sec-WebSocket-Protocol ----------------------------------------------

@pytest.mark.parametrize("offer,chosen", [
    ("vkws.json", "vkws.json"),
    ("chat, vkws.json", "vkws.json"),
    ("vkws.json, chat", "vkws.json"),
    ("chat,vkws.json", "vkws.json"),
    ("chat", None),
    ("vkws.json2", None),
    (None, None),
], ids=["only", "second", "first", "no_space", "other", "near_miss",
        "none"])
def test_subprotocol_echo(echo_server, offer, chosen):
    c = echo_server.raw()
    try:
        r = c.handshake(echo_server.host, "/echo", protocols=offer)
        assert r.header("sec-websocket-protocol") == chosen, r
        upgraded_works(c)
    finally:
        c.close()


@pytest.mark.parametrize("offer,chosen", [("vkws.json", "vkws.json"),
                                          (None, None)],
                         ids=["offered", "none"])
def test_subprotocol_ws(echo_server, offer, chosen):
    c = echo_server.raw()
    try:
        r = c.handshake(echo_server.host, "/ws", protocols=offer)
        assert r.header("sec-websocket-protocol") == chosen, r
    finally:
        c.close()


# ---- header parsing quirks ---------------------------------------------------

def quirk(name, key):
    base = {"host": "Host: 127.0.0.1", "upgrade": "Upgrade: websocket",
            "connection": "Connection: Upgrade",
            "key": "Sec-WebSocket-Key: %s" % key,
            "version": "Sec-WebSocket-Version: 13"}
    path = "/echo"
    eol = "\r\n"
    extra = []
    if name == "lowercase_names":
        base = {k: v.split(":", 1)[0].lower() + ":" + v.split(":", 1)[1]
                for k, v in base.items()}
    elif name == "uppercase_names":
        base = {k: v.split(":", 1)[0].upper() + ":" + v.split(":", 1)[1]
                for k, v in base.items()}
    elif name == "connection_keepalive_upgrade":
        base["connection"] = "Connection: keep-alive, Upgrade"
    elif name == "connection_upgrade_keepalive":
        base["connection"] = "Connection: Upgrade, keep-alive"
    elif name == "connection_lowercase":
        base["connection"] = "Connection: upgrade"
    elif name == "upgrade_mixed_case":
        base["upgrade"] = "Upgrade: WebSocket"
    elif name == "upgrade_uppercase":
        base["upgrade"] = "Upgrade: WEBSOCKET"
    elif name == "blank_padding":
        base["upgrade"] = "Upgrade:    websocket   "
        base["connection"] = "Connection:Upgrade"
    elif name == "tab_padding":
        base["connection"] = "Connection:\tUpgrade\t"
    elif name == "key_padding":
        base["key"] = "Sec-WebSocket-Key:    %s   " % key
    elif name == "bare_lf":
        eol = "\n"
    elif name == "query_string":
        path = "/echo?room=a&x=%20y"
    elif name == "extra_headers":
        extra = ["User-Agent: quirks/1.0", "Accept: */*",
                 "Cookie: a=b; c=d", "Pragma: no-cache",
                 "Sec-WebSocket-Extensions: permessage-deflate; "
                 "client_max_window_bits"]
    elif name == "headers_reordered":
        order = ["version", "key", "connection", "upgrade", "host"]
        return head(["GET %s HTTP/1.1" % path] + [base[k] for k in order],
                    eol)
    else:
        raise AssertionError(name)
    lines = ["GET %s HTTP/1.1" % path] + [
        base[k] for k in ("host", "upgrade", "connection", "key",
                          "version")] + extra
    return head(lines, eol)


QUIRKS = ["lowercase_names", "uppercase_names", "connection_keepalive_upgrade",
          "connection_upgrade_keepalive", "connection_lowercase",
          "upgrade_mixed_case", "upgrade_uppercase", "blank_padding",
          "tab_padding", "key_padding", "bare_lf", "query_string",
          "extra_headers", "headers_reordered"]


@pytest.mark.parametrize("name", QUIRKS)
def test_upgrade_quirks_accepted(echo_server, name):
    key = new_key()
    c = echo_server.raw()
    try:
        r = c.request(quirk(name, key))
        check_upgrade(r, key)
        upgraded_works(c)
    finally:
        c.close()


def test_healthz_bare_lf(echo_server):
    resp, c = echo_server.http(b"GET /healthz HTTP/1.1\nHost: x\n\n")
    c.close()
    assert resp.status == 200, resp


def test_healthz_lowercase_header_names(echo_server):
    resp, c = echo_server.http(b"GET /healthz HTTP/1.1\r\nhost: x\r\n"
                               b"user-agent: t\r\n\r\n")
    c.close()
    assert resp.status == 200, resp


def test_upgrade_without_host_400(echo_server):
    """RFC 6455 4.2.1: the handshake must carry Host; without it the
    server answers an error (400) instead of upgrading."""
    key = new_key()
    lines = [l for l in upgrade_lines("/echo", key) if not
             l.startswith("Host:")]
    resp, c = echo_server.http(head(lines))
    c.close()
    assert resp.status == 400, resp


def test_upgrade_http10_refused(echo_server):
    """RFC 6455 4.1: the upgrade needs HTTP/1.1 or later."""
    lines = upgrade_lines("/echo")
    lines[0] = "GET /echo HTTP/1.0"
    resp, c = echo_server.http(head(lines))
    c.close()
    assert resp.status != 101, resp
    assert 400 <= resp.status < 600, resp


# ---- a head arriving in pieces ---------------------------------------------

def test_healthz_one_byte_per_write(echo_server):
    c = echo_server.raw()
    try:
        raw = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        c.send_split(raw, [1] * len(raw), pause=0.005)
        r = c.read_response()
        assert r.status == 200, r
    finally:
        c.close()


def test_upgrade_in_pieces_with_first_frame(echo_server):
    """The head split at awkward places (inside CRLF, inside the blank
    line) with a first frame right behind it."""
    key = new_key()
    raw = head(upgrade_lines("/echo", key))
    frame = wsraw.build_frame(OP_TEXT, b"hi")
    data = raw + frame
    cuts = [5, 20, len(raw) - 3 - 25, 1, 1, 1, 2]
    c = echo_server.raw()
    try:
        c.send_split(data, cuts, pause=0.02)
        r = c.read_response()
        check_upgrade(r, key)
        op, payload, _ = c.recv_message()
        assert (op, payload) == (OP_TEXT, b"hi")
    finally:
        c.close()


def test_101_has_no_body(echo_server):
    """Nothing but frames follows the 101 head: a ping right after it is
    answered and nothing else is in between."""
    c = echo_server.raw()
    try:
        c.handshake(echo_server.host, "/echo",
                    trailing=wsraw.build_frame(wsraw.OP_PING, b"x"))
        f = c.recv_frame()
        assert f.opcode == wsraw.OP_PONG and f.payload == b"x", f
    finally:
        c.close()


def test_many_http_requests_in_a_row(echo_server):
    """Each on its own connection; the server frees every slot."""
    end = time.monotonic() + 30
    for i in range(300):
        assert time.monotonic() < end
        r = echo_server.get("/healthz")
        assert r.status == 200, (i, r)
