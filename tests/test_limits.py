"""
Limits the mutation check (issue 18, tests/mutants/list) found untested.

- The token bucket of PROTOCOL.md 3 is capped at --rate-burst: after an
  idle time, a burst of requests gets exactly --rate-burst answers (plus
  what the rate refilled while the burst was being answered), not the
  tokens of the whole idle time.
"""

import base64
import hashlib
import hmac
import json
import time

import wsraw

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
    # two more through, never the idle time's tokens.
    assert pongs[:cap] == list(range(cap)), pongs
    refill = int(dt * rate) + 1
    assert cap <= len(pongs) <= cap + refill, \
        "%d of %d passed after 2 s idle with --rate-burst %d (%.2f s)" % (
            len(pongs), n, cap, dt)
    assert refused, "no request of the burst was refused"
    c.close()
