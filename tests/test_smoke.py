"""
A client's tour of the server in one short session, written to run
against any build: the host binary, the static and small-profile builds,
and the ARM binaries under qemu-user (tests/cross.sh points VKWS_BIN at a
wrapper that execs qemu). Tokens are minted by the host binary
(VKWS_HOST_BIN, default ./vkws), so a token signed on one architecture is
verified on another.

Steps: handshake with ?token=, auth by first message, chat in the default
room and in a joined room, a private message, an API broadcast (every
build serves POST /api: a 404 fails), then SIGTERM: every client gets
server_shutdown and close 1001, and the server exits 0.
"""

import asyncio
import json
import os
import subprocess

from conftest import ROOT, run

SECRET = "smoke-secret"
API_KEY = "smoke-key"
# qemu-user runs the server an order of magnitude slower than the host:
# every wait is generous, none measures speed.
WAIT = 15.0


def host_bin():
    b = os.environ.get("VKWS_HOST_BIN", "./vkws")
    return b if os.path.isabs(b) else os.path.join(ROOT, b)


def mint(uid):
    out = subprocess.run([host_bin(), "token", "--uid", uid, "--ttl",
                          "3600", "--secret", SECRET],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         timeout=30, check=True)
    tok = out.stdout.decode().strip()
    assert tok.count(".") == 2, out
    return tok


async def recv_type(ws, typ, pred=lambda m: True):
    """The next message of type typ matching pred; others are skipped
    (user_join, user_list, history and pings may come in between)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT
    while True:
        left = deadline - loop.time()
        assert left > 0, "no %r message within %.0f s" % (typ, WAIT)
        m = json.loads(await asyncio.wait_for(ws.recv(), left))
        if m.get("type") == typ and pred(m):
            return m


def start(server):
    return server("--secret", SECRET, "--api-key", API_KEY)


def test_smoke_chat_private_shutdown(server):
    s = start(server)
    alice_tok, bob_tok = mint("alice"), mint("bob")

    async def main():
        alice = await s.ws_connect("/ws?token=" + alice_tok,
                                   open_timeout=WAIT)
        bob = await s.ws_connect("/ws", open_timeout=WAIT)
        a = await recv_type(alice, "auth")
        assert a["code"] == 0 and a["userId"] == "alice", a
        await bob.send(json.dumps({"type": "auth", "token": bob_tok}))
        b = await recv_type(bob, "auth")
        assert b["code"] == 0 and b["userId"] == "bob", b
        assert a["clientId"] != b["clientId"]

        # Chat in the default room reaches both, sender included.
        await alice.send(json.dumps({"type": "chat", "content": "héllo",
                                     "id": 1}))
        ack = await recv_type(alice, "ack", lambda m: m.get("id") == 1)
        assert ack["code"] == 0, ack
        for ws in (alice, bob):
            m = await recv_type(ws, "chat")
            assert m["message"] == "héllo" and m["room"] == "general"
            assert m["from"]["userId"] == "alice" and m["seq"] >= 1

        # A room of their own.
        for ws, i in ((alice, 2), (bob, 3)):
            await ws.send(json.dumps({"type": "join", "room": "arm",
                                      "id": i}))
            ack = await recv_type(ws, "ack", lambda m, i=i: m["id"] == i)
            assert ack["code"] == 0, ack
        await bob.send(json.dumps({"type": "chat", "room": "arm",
                                   "content": "in arm"}))
        m = await recv_type(alice, "chat", lambda m: m["room"] == "arm")
        assert m["message"] == "in arm" and m["from"]["userId"] == "bob"

        # A private message to a user.
        await bob.send(json.dumps({"type": "private",
                                   "targetUserId": "alice",
                                   "content": "psst", "id": 4}))
        m = await recv_type(alice, "private")
        assert m["message"] == "psst" and m["from"]["userId"] == "bob"
        ack = await recv_type(bob, "ack", lambda m: m["id"] == 4)
        assert ack["code"] == 0, ack

        # Keepalive as the protocol does it.
        await alice.send(json.dumps({"type": "ping"}))
        await recv_type(alice, "pong")

        # SIGTERM: server_shutdown, close 1001, exit 0.
        rc = await asyncio.get_running_loop().run_in_executor(None, s.stop)
        assert rc == 0, "exit code %r; stderr:\n%s" % (rc, s.stderr())
        for ws in (alice, bob):
            m = await recv_type(ws, "server_shutdown")
            assert 0 <= m["reconnectIn"] <= 5000, m
            try:
                await asyncio.wait_for(ws.recv(), WAIT)
            except Exception:  # noqa: BLE001 (websockets' close errors)
                pass
            assert ws.close_code == 1001, ws.close_code
            await ws.close()

    run(main(), timeout=6 * WAIT)


def api_call(s, method, params):
    """POST /api through the test transport (plain or TLS)."""
    body = json.dumps({"method": method, "params": params}).encode()
    head = ("POST /api HTTP/1.1\r\nHost: %s:%d\r\n"
            "Authorization: apikey %s\r\n"
            "Content-Type: application/json\r\n"
            "Content-Length: %d\r\nConnection: close\r\n\r\n"
            % (s.host, s.port, API_KEY, len(body)))
    resp, c = s.http(head.encode() + body, timeout=WAIT)
    c.close()
    return resp.status, resp.body


def test_smoke_api_broadcast(server):
    s = start(server)
    tok = mint("carol")

    async def main():
        ws = await s.ws_connect("/ws?token=" + tok, open_timeout=WAIT)
        a = await recv_type(ws, "auth")
        assert a["code"] == 0, a
        loop = asyncio.get_running_loop()
        status, body = await loop.run_in_executor(
            None, api_call, s, "broadcastToRoom",
            {"room": "general", "data": {"type": "notice", "n": 7}})
        # Every build serves /api (ARM, static and small ones too): a
        # 404 here is a routing regression, not a missing feature.
        assert status == 200, (status, body)
        reply = json.loads(body)
        assert reply["code"] == 0 and reply["data"]["delivered"] == 1, reply
        m = await recv_type(ws, "notice")
        assert m == {"type": "notice", "n": 7}, m
        await ws.close()

    run(main(), timeout=4 * WAIT)
