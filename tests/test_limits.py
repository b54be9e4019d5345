"""
Limits and checks the mutation check (issue 18, tests/mutants/list)
found untested; each test here fails with the mutant named beside it.

- The token bucket of PROTOCOL.md 3 is capped at --rate-burst: after an
  idle time, a burst of requests gets exactly --rate-burst answers (plus
  what the rate refilled while the burst was being answered), not the
  tokens of the whole idle time (rate-bucket-uncapped).
- An incomplete request head of exactly VKWS_MAX_HEAD bytes is 431 at
  once: no byte more can make it a head the server takes
  (head-431-incomplete).
- An upgrade needs "upgrade" among the Connection tokens; Connection:
  keep-alive alone is 426 (hs-connection-upgrade).
- setClientData takes data up to VKWS_USERINFO_MAX bytes, not one more
  (api.c and room.c each check it, so no one-line mutant shows; this
  holds the limit if both go).
- Past --max-per-ip, an address gets VKWS_PER_IP_OVER more slots (each
  answered 503), then its connections are closed at accept
  (admit-per-ip-refused-at-accept).
- The reconnect bucket of an address (PROTOCOL.md 8) lets exactly
  --reconnect-burst upgrades through at once, also after an idle time
  (reconnect-bucket-empty, reconnect-bucket-uncapped).
"""

import base64
import hashlib
import hmac
import json
import socket
import time

import wsraw

MAX_HEAD = 8192         # VKWS_MAX_HEAD in vkws.h
USERINFO_MAX = 2048     # VKWS_USERINFO_MAX
PER_IP_OVER = 4         # VKWS_PER_IP_OVER

SECRET = "limits-test-secret"


def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode("ascii")


def token(uid):
    h = b64u(b'{"alg":"HS256","typ":"JWT"}')
    p = b64u(json.dumps({"uid": uid}).encode())
    sig = hmac.new(SECRET.encode(), (h + "." + p).encode(),
                   hashlib.sha256).digest()
    return h + "." + p + "." + b64u(sig)


def recv(c):
    """The next message other than the server's keepalive ping."""
    while True:
        _, data, _ = c.recv_message(10.0)
        m = json.loads(data)
        if m.get("type") != "ping":
            return m
        c.send_text(json.dumps({"type": "pong"}))


def burst(c, n):
    """Send n pings with ids 0..n-1 in one write; (pongs, refusals,
    seconds from the write to the last answer)."""
    frames = b"".join(wsraw.build_frame(
        wsraw.OP_TEXT, json.dumps({"type": "ping", "id": i}).encode())
        for i in range(n))
    t0 = time.monotonic()
    c.send(frames)
    got = []
    while len(got) < n:
        m = recv(c)
        # The default room's user_join and history may come first.
        if m["type"] in ("pong", "ack"):
            got.append(m)
    dt = time.monotonic() - t0
    pongs = [m["id"] for m in got if m["type"] == "pong"]
    refused = [m for m in got if m["type"] == "ack"]
    assert sorted(pongs + [m["id"] for m in refused]) == list(range(n)), got
    for m in refused:
        assert m["code"] == -6, m
    return pongs, refused, dt


def test_rate_bucket_capped_at_burst(server):
    rate, cap, n = 5, 5, 20
    s = server("--secret", SECRET, "--rate", str(rate),
                         "--rate-burst", str(cap), "--rate-grace", "60")
    c = s.ws("/ws?token=" + token("alice"), timeout=10.0)
    m = recv(c)
    assert m["type"] == "auth" and m["code"] == 0, m
    # Idle for 2 s: an uncapped bucket would hold cap + 2 * rate tokens.
    time.sleep(2.0)
    pongs, refused, dt = burst(c, n)
    # The first cap requests pass; while the burst is answered the rate
    # refills one token each 1/rate s, so a slow machine may let one or
    # two more through (as many as the seconds the burst took allow, none
    # in less than 1/rate s), never the idle time's tokens.
    assert pongs[:cap] == list(range(cap)), pongs
    refill = int(dt * rate)
    assert cap <= len(pongs) <= cap + refill, \
        "%d of %d passed after 2 s idle with --rate-burst %d (%.2f s)" % (
            len(pongs), n, cap, dt)
    assert refused, "no request of the burst was refused"
    c.close()


def test_incomplete_head_of_max_bytes_is_431(server):
    s = server("--secret", SECRET)
    start = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Long: "
    raw = start + b"l" * (MAX_HEAD - len(start))
    assert len(raw) == MAX_HEAD
    # Nothing more is sent: the 431 must come for these bytes alone.
    resp, c = s.http(raw, timeout=5.0)
    c.close()
    assert resp.status == 431, resp


def test_upgrade_needs_connection_upgrade(server):
    s = server("--secret", SECRET)
    for conn in ("keep-alive", "close", "upgraded", "keep-alive, upgradex"):
        r = s.get("/ws", ["Upgrade: websocket", "Connection: " + conn,
                          "Sec-WebSocket-Key: %s" % wsraw.new_key(),
                          "Sec-WebSocket-Version: 13"])
        assert r.status == 426, (conn, r)
    r = s.get("/ws", ["Upgrade: websocket", "Connection: keep-alive, Upgrade",
                      "Sec-WebSocket-Key: %s" % wsraw.new_key(),
                      "Sec-WebSocket-Version: 13"])
    assert r.status == 101, r


def api(s, method, params):
    body = json.dumps({"method": method, "params": params},
                      separators=(",", ":")).encode()
    head = ("POST /api HTTP/1.1\r\nHost: x\r\nAuthorization: apikey k\r\n"
            "Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body))
    resp, c = s.http(head.encode() + body, timeout=10.0)
    c.close()
    assert resp.status == 200, resp
    return json.loads(resp.body)


def test_client_data_size_limit(server):
    s = server("--secret", SECRET, "--api-key", "k")
    c = s.ws("/ws?token=" + token("alice"), timeout=10.0)
    m = recv(c)
    assert m["type"] == "auth" and m["code"] == 0, m
    cid = m["clientId"]

    def data(n):    # a JSON object of exactly n bytes
        d = {"p": "x" * (n - 8)}
        assert len(json.dumps(d, separators=(",", ":"))) == n
        return d

    r = api(s, "setClientData", {"clientId": cid, "data": data(USERINFO_MAX)})
    assert r["code"] == 0, r
    r = api(s, "setClientData", {"clientId": cid,
                                 "data": data(USERINFO_MAX + 1)})
    assert r["code"] == -2, r
    r = api(s, "getClientData", {"clientId": cid})
    assert r["code"] == 0 and r["data"] == data(USERINFO_MAX), r
    c.close()


def conn_from(s, src):
    """A wsraw.Conn to s from the loopback address src."""
    sk = socket.socket()
    try:
        sk.bind((src, 0))
        sk.settimeout(10.0)
        sk.connect((s.host, s.port))
        ctx = s.transport.ssl_context()
        if ctx is not None:
            sk = ctx.wrap_socket(sk, server_hostname=s.host)
    except BaseException:
        sk.close()
        raise
    return wsraw.Conn(sk, 10.0)


def upgrades_until_refused(s, src, first, limit=20):
    """Chat upgrades from src, each as a new user, until one is refused
    (503); (upgrades that passed, seconds from the first to the 503)."""
    t0 = time.monotonic()
    for i in range(limit):
        c = conn_from(s, src)
        try:
            r = c.handshake(s.host, "/ws?token=" + token("%s%d" % (first, i)),
                            check=False)
        finally:
            c.close()
        if r.status == 503:
            return i, time.monotonic() - t0
        assert r.status == 101, r
    raise AssertionError("%d upgrades from %s, none refused" % (limit, src))


def test_reconnect_bucket_exact_burst(server):
    rate, burst = 1, 3
    s = server("--secret", SECRET, "--reconnect-rate", str(rate),
               "--reconnect-burst", str(burst), "--default-room", "")
    # At once: the burst, plus what the rate refilled meanwhile (none in
    # less than 1/rate s).
    ok, dt = upgrades_until_refused(s, "127.0.0.5", "a")
    assert burst <= ok <= burst + int(dt * rate), (ok, dt)
    # After an idle time the bucket is full again, not fuller.
    c = conn_from(s, "127.0.0.6")
    r = c.handshake(s.host, "/ws?token=" + token("b"), check=False)
    c.close()
    assert r.status == 101, r
    time.sleep(2.5)     # an uncapped bucket would gain 2 tokens
    ok, dt = upgrades_until_refused(s, "127.0.0.6", "c")
    assert burst <= ok <= burst + int(dt * rate), (ok, dt)


def test_per_ip_refused_at_accept_past_the_margin(server):
    """Connections from 127.0.0.2 (loopback) held open, one GET each:
    the first --max-per-ip get 200, the next PER_IP_OVER get 503, every
    later one is closed at accept without an answer."""
    cap, n = 3, 12
    s = server("--secret", SECRET, "--max-per-ip", str(cap),
               "--max-pending", "64")
    socks, got = [], []
    try:
        for _ in range(n):
            sk = socket.socket()
            socks.append(sk)
            sk.bind(("127.0.0.2", 0))
            sk.settimeout(10.0)
            sk.connect((s.host, s.port))
            try:
                ctx = s.transport.ssl_context()
                if ctx is not None:
                    sk = ctx.wrap_socket(sk, server_hostname=s.host)
                    socks.append(sk)
                r = wsraw.Conn(sk, 10.0).request(
                    "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                got.append(r.status)
            except (wsraw.Closed, OSError):
                got.append("closed")
    finally:
        for sk in socks:
            sk.close()
    assert got[:cap] == [200] * cap, got
    over = got[cap:]
    k = over.index("closed") if "closed" in over else len(over)
    assert over[:k] == [503] * k and 1 <= k <= PER_IP_OVER, got
    assert over[k:] == ["closed"] * (len(over) - k) and k < len(over), got
