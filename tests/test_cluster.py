"""
Cluster mode (PROTOCOL.md 9, issue 15) against a real Redis: Debian's
redis-server, started here on a free loopback port with no config file
(persistence set on the command line, in a temporary directory) and
stopped by PID; no mock. Three vkws nodes share it.

Ordering instead of sleeping where the protocol gives one: a node's
reply to a request comes after Redis ran it, and a message another node
published reaches every node in the order Redis published it. Waits for
what is asynchronous by design (a node's heartbeat running out, Redis
coming back) poll a condition under a deadline.
"""

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request

import pytest
import websockets

from conftest import Server, Transport, run, vkws_bin
from test_chat import (Pool, check_ack, check_ts, token, DEFAULT_ROOM,
                       SECRET)

KEY = "cluster-test-key"
TTL = 2                 # --node-ttl of the tests (s)
HISTORY = 50            # --history default (VKWS_HISTORY)


def redis_bin():
    path = shutil.which("redis-server") or "/usr/bin/redis-server"
    assert os.path.exists(path), "redis-server missing: make deps-test"
    return path


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Redis:
    """One redis-server on 127.0.0.1:port, data in its own directory
    (AOF fsynced on every write, so a restart keeps what it acked)."""

    def __init__(self, extra=()):
        self.dir = tempfile.mkdtemp(prefix="vkws-redis-")
        self.port = free_port()
        self.proc = None
        self.extra = list(extra)
        self.auth = []
        if "--requirepass" in self.extra:
            self.auth = ["AUTH", self.extra[self.extra.index(
                "--requirepass") + 1]]
        self.start()

    def start(self):
        self.log = open(os.path.join(self.dir, "log"), "ab")
        self.proc = subprocess.Popen(
            [redis_bin(), "--port", str(self.port), "--bind", "127.0.0.1",
             "--dir", self.dir, "--save", "", "--appendonly", "yes",
             "--appendfsync", "always", "--daemonize", "no"] + self.extra,
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port),
                                              0.5) as s:
                    s.sendall(b"PING\r\n")
                    # +PONG, or -NOAUTH from one that wants a password
                    if s.recv(16)[:1] in (b"+", b"-"):
                        return
            except OSError:
                pass
            assert self.proc.poll() is None, "redis-server exited"
            time.sleep(0.05)
        raise AssertionError("redis-server did not start")

    def stop(self, sig=signal.SIGTERM):
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
            self.proc.wait(10)
        self.proc = None
        self.log.close()

    def cmd(self, *args):
        """One command, the raw reply bytes (tests read keys with it);
        after AUTH if the server wants a password."""
        out = b""
        for c in ([self.auth] if self.auth else []) + [list(args)]:
            out += b"*%d\r\n" % len(c)
            for a in c:
                a = a.encode() if isinstance(a, str) else a
                out += b"$%d\r\n%s\r\n" % (len(a), a)
        with socket.create_connection(("127.0.0.1", self.port), 2) as s:
            s.sendall(out)
            time.sleep(0.05)
            r = s.recv(65536)
        if self.auth:
            assert r.startswith(b"+OK\r\n"), r
            r = r[5:]
        return r

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def redis():
    r = Redis()
    yield r
    r.cleanup()


@pytest.fixture
def nodes(request, redis):
    """start(name, *flags): a node of the cluster on redis."""
    started = []

    def start(name, *flags):
        s = Server(Transport(), ["--secret", SECRET, "--api-key", KEY,
                                 "--redis", "127.0.0.1:%d" % redis.port,
                                 "--node", name, "--node-ttl", str(TTL),
                                 "--rate", "100000"] + list(flags))
        started.append(s)
        return s

    yield start
    for s in started:
        if s.proc.poll() is None or s.proc.returncode == 0:
            s.check_stop()
        else:
            s.release()


def http(srv, path, body=None):
    url = "http://127.0.0.1:%d%s" % (srv.port, path)
    req = urllib.request.Request(url, data=body)
    if body is not None:
        req.add_header("Authorization", "apikey " + KEY)
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def api(srv, method, **params):
    st, body = http(srv, "/api", json.dumps(
        {"method": method, "params": params}).encode())
    assert st == 200, (st, body)
    return json.loads(body)


def metric(srv, name):
    st, body = http(srv, "/metrics")
    assert st == 200
    for line in body.splitlines():
        if line.startswith("vkws_%s " % name):
            return int(line.split()[1])
    raise AssertionError("no metric %s" % name)


def wait_for(cond, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError("not within %.1f s: %s" % (timeout, what))


def wait_up(*srvs):
    for s in srvs:
        wait_for(lambda: metric(s, "cluster_up") == 1, 10,
                 "node on port %d joins the cluster" % s.port)


def go(fn, timeout=60.0):
    async def main():
        pool = Pool()
        try:
            await fn(pool)
        finally:
            await pool.close_all()
    run(main(), timeout)


# ---- start, flags, the node line ---------------------------------------------

def test_node_line_metrics_and_data_dir_refused(nodes, redis):
    a = nodes("na")
    wait_up(a)
    assert metric(a, "cluster_nodes") == 1
    st, body = http(a, "/healthz")
    assert (st, body) == (200, "ok")
    stats = api(a, "getStats")["data"]
    for k in ("cluster_up", "cluster_nodes", "cluster_published_total",
              "cluster_received_total", "cluster_reconnects_total"):
        assert k in stats, k
    assert stats["cluster_up"] == 1
    b = nodes("nb")
    wait_up(b)
    wait_for(lambda: metric(a, "cluster_nodes") == 2, 5, "two nodes")
    # Every key the cluster made begins with the cluster name or its
    # room hash tag.
    keys = redis.cmd("KEYS", "*").decode("latin-1")
    for line in keys.split("\r\n"):
        if line and line[0] not in "*$":
            assert line.startswith("vkws:") or line.startswith("{vkws:"), \
                line
    # --data-dir with --redis stops the node at start.
    d = tempfile.mkdtemp()
    try:
        p = subprocess.run(
            [a.argv[0], "--listen", "127.0.0.1:0", "--secret", SECRET,
             "--redis", "127.0.0.1:%d" % redis.port, "--data-dir", d],
            capture_output=True, timeout=10)
        assert p.returncode != 0
        assert b"--data-dir" in p.stderr
    finally:
        shutil.rmtree(d)


def test_node_line_printed(redis):
    """`node ID` after `listening on`; a random ID is 8 hex digits."""
    for flags, want in ((["--node", "n7"], "n7"), ([], None)):
        p = subprocess.Popen(
            [vkws_bin(), "--listen", "127.0.0.1:0", "--secret", SECRET,
             "--redis", "127.0.0.1:%d" % redis.port] + flags,
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        try:
            first = p.stdout.readline().decode()
            second = p.stdout.readline().decode().rstrip("\n")
        finally:
            p.send_signal(signal.SIGTERM)
            assert p.wait(10) == 0
            p.stdout.close()
        assert first.startswith("listening on ")
        assert second.startswith("node ")
        node = second[5:]
        if want:
            assert node == want
        else:
            assert len(node) == 8 and all(ch in "0123456789abcdef"
                                          for ch in node), node


# ---- chat, presence, private across nodes ----------------------------------

def test_three_nodes_chat_presence_private(nodes):
    n1, n2, n3 = nodes("n1"), nodes("n2"), nodes("n3")
    wait_up(n1, n2, n3)

    async def body(pool):
        a = await pool.login(n1, "alice")
        b = await pool.login(n2, "bob", others=[a])
        c = await pool.login(n3, "carol", info={"k": 1}, others=[a, b])
        assert a.cid.startswith("n1-") and b.cid.startswith("n2-") and \
            c.cid.startswith("n3-")
        # A chat from each node reaches every member once, in seq order.
        seq = 0
        for sender in (b, c, a):
            await sender.ok({"type": "chat", "content": "from " +
                             sender.uid})
            seq += 1
            for m in (a, b, c):
                got = await m.expect("chat", room=DEFAULT_ROOM, seq=seq,
                                     message="from " + sender.uid)
                assert got["from"] == sender.user()
                check_ts(got)
        for m in (a, b, c):
            await m.quiet()
        # Private: to every connection of the user, on every node.
        a2 = await pool.login(n3, "alice", name="alice2",
                              others=[a, b, c])
        await b.ok({"type": "private", "targetUserId": "alice",
                    "content": "psst"})
        for m in (a, a2):
            p = await m.expect("private", message="psst")
            assert p["from"] == b.user()
        await b.fails({"type": "private", "targetUserId": "nobody",
                       "content": "x"}, -3)
        # A new joiner on another node gets the cluster's history.
        d = await pool.connect(n2, "/ws?token=" + token("dave"))
        await d.expect("auth", code=0)
        await d.expect("user_join")
        ul = await d.expect("user_list")
        assert len(ul["users"]) == 5
        h = await d.expect("history", complete=True)
        assert [m["seq"] for m in h["messages"]] == [1, 2, 3]
        assert [m["message"] for m in h["messages"]] == [
            "from bob", "from carol", "from alice"]
        for m in (a, b, c, a2):
            await m.expect("user_join", room=DEFAULT_ROOM)
        # Leaving: the others, on every node, get user_leave.
        await c.ok({"type": "leave", "room": DEFAULT_ROOM})
        for m in (a, b, a2, d):
            lv = await m.expect("user_leave", room=DEFAULT_ROOM)
            assert lv["user"] == c.user()
        # join with since, in another room made on the fly.
        await a.ok({"type": "join", "room": "r2"})
        await a.expect("user_join", room="r2")
        await a.expect("user_list", room="r2")
        await a.expect("history", room="r2", messages=[], complete=True)
        for i in range(5):
            await a.ok({"type": "chat", "room": "r2", "content": str(i)})
            await a.expect("chat", room="r2", seq=i + 1)
        await b.ok({"type": "join", "room": "r2", "since": 3})
        await b.expect("user_join", room="r2")
        ul = await b.expect("user_list", room="r2")
        assert {u["userId"] for u in ul["users"]} == {"alice", "bob"}
        h = await b.expect("history", room="r2", complete=True)
        assert [m["seq"] for m in h["messages"]] == [4, 5]
        await a.expect("user_join", room="r2", user=b.user())
        # getRoomHistory from a node without the room: Redis has it.
        r = api(n3, "getRoomHistory", room="r2", limit=2)
        assert r["code"] == 0, r
        assert [m["seq"] for m in r["data"]] == [4, 5]
        r = api(n3, "getRoomHistory", room="r2")
        assert [m["message"] for m in r["data"]] == ["0", "1", "2", "3",
                                                     "4"]
        assert api(n3, "getRoomHistory", room="nope")["code"] == -3

    go(body)


def test_seq_order_no_gaps_all_nodes_at_once(nodes):
    n1, n2, n3 = (nodes(n, "--default-room", "") for n in ("s1", "s2", "s3"))
    wait_up(n1, n2, n3)
    per = 700           # chats per node: 2,100 in all

    async def body(pool):
        cs = []
        for i, n in enumerate((n1, n2, n3)):
            cs.append(await pool.login(n, "u%d" % i, room=None))
        for c in cs:
            await c.ok({"type": "join", "room": "race"})
            await c.sync()

        window = 64     # chats in flight per client (the link holds
        # VKWS_REDIS_PENDING replies awaited; past that, -7 by design)

        async def one(c):
            sent, acks, seqs, acked = 0, 0, [], set()
            while len(seqs) < 3 * per or acks < per:
                while sent < per and sent - acks < window:
                    await c.send({"type": "chat", "room": "race",
                                  "content": "%s:%d" % (c.uid, sent),
                                  "id": "%s-%d" % (c.uid, sent)})
                    sent += 1
                m = await c.recv(10)
                if m["type"] == "ack":
                    assert m["code"] == 0, m
                    acked.add(m["id"])
                    acks += 1
                elif m["type"] == "chat":
                    seqs.append(m["seq"])
                    if m["from"]["clientId"] == c.cid:
                        k = m["message"].split(":")[1]
                        # The sender's ack comes before its own copy.
                        assert "%s-%s" % (c.uid, k) in acked, m
            return seqs

        res = await asyncio.gather(*(one(c) for c in cs))
        for seqs in res:
            assert seqs == list(range(1, 3 * per + 1))
        # History: the room keeps the last --history of all of them.
        late = await pool.login(n2, "late", room=None)
        await late.ok({"type": "join", "room": "race"})
        await late.expect("user_join")
        await late.expect("user_list")
        h = await late.expect("history", complete=False)
        assert [m["seq"] for m in h["messages"]] == list(
            range(3 * per - HISTORY + 1, 3 * per + 1))
        await late.ok({"type": "join", "room": "race2", "since": 0})
        await late.sync()

    go(body, 120)


def test_max_clients_over_nodes(nodes):
    n1, n2, n3 = (nodes(n, "--default-room", "") for n in ("m1", "m2", "m3"))
    wait_up(n1, n2, n3)
    r = api(n1, "createRoom", room="small", maxClients=2)
    assert r["code"] == 0, r

    async def body(pool):
        a = await pool.login(n1, "a", room=None)
        b = await pool.login(n2, "b", room=None)
        c = await pool.login(n3, "c", room=None)
        await a.ok({"type": "join", "room": "small"})
        await a.sync()
        await b.ok({"type": "join", "room": "small"})
        await b.sync()
        await c.fails({"type": "join", "room": "small"}, -5)
        # The leave is acked once Redis applied it. (b lived less than
        # a second: a hears of neither its join nor its leave,
        # PROTOCOL.md 8.)
        await b.ok({"type": "leave", "room": "small"})
        await c.ok({"type": "join", "room": "small"})

    go(body)


def test_max_clients_set_on_another_node(nodes):
    """maxClients is the cluster's: raised by createRoom on n2, it holds
    for a join on n1, whose own copy of the setting is older."""
    n1, n2 = (nodes(n, "--default-room", "") for n in ("x1", "x2"))
    wait_up(n1, n2)
    assert api(n1, "createRoom", room="s", maxClients=1)["code"] == 0

    async def body(pool):
        a = await pool.login(n1, "a", room=None)
        a2 = await pool.login(n1, "a2", room=None)
        c = await pool.login(n2, "c", room=None)
        await a.join("s")
        await a2.fails({"type": "join", "room": "s"}, -5)
        r = api(n2, "createRoom", room="s", maxClients=3)
        assert r["code"] == 0 and r["data"]["maxClients"] == 3, r
        await a2.join("s", others=[a])
        await c.join("s", others=[a, a2])
        r = api(n1, "joinRoom", clientId=c.cid, room="s")
        assert r == {"code": 0, "data": None}, r    # a member already
        await c.quiet()
        d = await pool.login(n1, "d", room=None)
        await d.fails({"type": "join", "room": "s"}, -5)

    go(body)


def test_api_join_room_counts_every_node(nodes):
    """The API's joinRoom checks maxClients over every node (the join
    script in Redis), whichever node holds the client or takes the call:
    -5 when full, and nothing joined."""
    n1, n2, n3 = (nodes(n, "--default-room", "") for n in ("j1", "j2", "j3"))
    wait_up(n1, n2, n3)
    for n in (n1, n2, n3):
        wait_for(lambda: metric(n, "cluster_nodes") == 3, 5, "three nodes")
    r = api(n1, "createRoom", room="small", maxClients=2)
    assert r["code"] == 0, r

    async def body(pool):
        a = await pool.login(n1, "a", room=None)
        b = await pool.login(n2, "b", room=None)
        c = await pool.login(n3, "c", room=None)
        loop = asyncio.get_running_loop()

        async def call(srv, method, **params):
            return await loop.run_in_executor(
                None, lambda: api(srv, method, **params))

        await a.ok({"type": "join", "room": "small"})
        await a.sync()
        # b by the API on its own node: under maxClients, joined.
        r = await call(n2, "joinRoom", clientId=b.cid, room="small")
        assert r == {"code": 0, "data": None}, r
        await b.expect("user_join", room="small")
        lst = await b.expect("user_list", room="small")
        assert sorted(u["userId"] for u in lst["users"]) == ["a", "b"], lst
        await b.expect("history", room="small")
        # Full over the nodes: n3 has no member of it, yet -5, both
        # from c's own node and from another one.
        r = await call(n3, "joinRoom", clientId=c.cid, room="small")
        assert r["code"] == -5, r
        r = await call(n1, "joinRoom", clientId=c.cid, room="small")
        assert r["code"] == -5, r
        await c.quiet()
        r = await call(n2, "getRoomClients", room="small")
        assert sorted(e["clientId"] for e in r["data"]) == sorted(
            [a.cid, b.cid]), r
        # A place frees: the API's join from another node goes through.
        # (The leave is acked once Redis applied it.)
        await b.ok({"type": "leave", "room": "small"})
        r = await call(n1, "joinRoom", clientId=c.cid, room="small")
        assert r == {"code": 0, "data": None}, r
        await c.expect("user_join", room="small")
        await c.expect("user_list", room="small")
        await c.expect("history", room="small")
        # a hears of c's join; of b's only if b was older than a second
        # when it left (PROTOCOL.md 8), then of its leave too.
        seen = []
        while True:
            j = await a.recv()
            assert j["type"] in ("user_join", "user_leave"), j
            if j["user"]["clientId"] == c.cid:
                break
            seen.append((j["type"], j["user"]["clientId"]))
        assert seen in ([], [("user_join", b.cid), ("user_leave", b.cid)])
        assert j["type"] == "user_join", j
        # A member already: 0, nothing new.
        r = await call(n3, "joinRoom", clientId=c.cid, room="small")
        assert r == {"code": 0, "data": None}, r

    go(body)


def test_leave_acked_after_redis(nodes, redis):
    """A leave is acked once Redis took it: with Redis paused the ack
    waits (a ping sent after it is answered first), and comes when
    Redis answers; if the link fails first, the ack is -7."""
    n1 = nodes("l1", "--default-room", "")
    wait_up(n1)

    async def body(pool):
        a = await pool.login(n1, "a", room=None)
        for room in ("r1", "r2"):
            await a.join(room)
        assert redis.cmd("HEXISTS", "{vkws:r1}:m", a.cid) == b":1\r\n"
        os.kill(redis.proc.pid, signal.SIGSTOP)
        try:
            await a.send({"type": "leave", "room": "r1", "id": "lv1"})
            await a.send({"type": "ping", "id": "p1"})
            # The pong is local; the ack waits for Redis.
            assert await a.recv() == {"type": "pong", "id": "p1"}
        finally:
            os.kill(redis.proc.pid, signal.SIGCONT)
        ack = await a.recv()
        assert ack == {"type": "ack", "id": "lv1", "code": 0}, ack
        assert redis.cmd("HEXISTS", "{vkws:r1}:m", a.cid) == b":0\r\n"
        # The link fails before Redis answers: -7.
        os.kill(redis.proc.pid, signal.SIGSTOP)
        await a.send({"type": "leave", "room": "r2", "id": "lv2"})
        await a.send({"type": "ping", "id": "p2"})
        assert await a.recv() == {"type": "pong", "id": "p2"}
        redis.stop(signal.SIGKILL)
        ack = await a.recv()
        assert ack["type"] == "ack" and ack["id"] == "lv2", ack
        assert ack["code"] == -7, ack

    go(body)


# ---- a node stops, a node dies ------------------------------------------

def test_node_sigterm_and_kill9(nodes):
    n1, n2, n3 = nodes("k1"), nodes("k2"), nodes("k3")
    wait_up(n1, n2, n3)
    wait_for(lambda: metric(n1, "cluster_nodes") == 3, 5, "three nodes")

    async def body(pool):
        a = await pool.login(n1, "alice")
        b = await pool.login(n2, "bob", others=[a])
        c = await pool.login(n3, "carol", others=[a, b])
        # SIGTERM: bob leaves at once.
        os.kill(n2.proc.pid, signal.SIGTERM)
        for m in (a, c):
            lv = await m.expect("user_leave", timeout=5)
            assert lv["user"] == b.user()
        assert n2.proc.wait(10) == 0
        # kill -9: carol leaves every listing within --node-ttl (and a
        # heartbeat period).
        os.kill(n3.proc.pid, signal.SIGKILL)
        n3.proc.wait(5)
        t0 = time.monotonic()
        lv = await a.expect("user_leave", timeout=TTL + 3)
        assert lv["user"] == c.user()
        assert time.monotonic() - t0 < TTL + 3
        wait_for(lambda: metric(n1, "cluster_nodes") == 1, TTL + 3,
                 "dead nodes swept")
        # A new joiner sees alice only (login checks its user_list).
        await pool.login(n1, "dave", others=[a])

    go(body)


# ---- Redis goes away and comes back --------------------------------------

def test_redis_restart_mid_chat(nodes, redis):
    n1, n2 = nodes("r1"), nodes("r2")
    wait_up(n1, n2)

    async def body(pool):
        a = await pool.login(n1, "alice")
        b = await pool.login(n2, "bob", others=[a])
        acked = []
        for i in range(20):
            await a.send({"type": "chat", "content": "m%d" % i,
                          "id": "m%d" % i})
        redis.stop()
        # Every chat gets one answer: 0 (stored) or -7; never both.
        got = {}
        while len(got) < 20:
            m = await a.recv(10)
            if m["type"] == "ack":
                assert m["id"] not in got
                got[m["id"]] = m["code"]
                assert m["code"] in (0, -7), m
                if m["code"] == -7:
                    assert m["msg"] == "cluster unavailable"
        acked = sorted(int(k[1:]) for k, v in got.items() if v == 0)
        wait_for(lambda: http(n1, "/healthz")[0] == 503, 5, "503 down")
        assert metric(n1, "cluster_up") == 0
        await a.sync()
        await a.fails({"type": "chat", "content": "down"}, -7,
                      "cluster unavailable")
        await a.fails({"type": "join", "room": "elsewhere"}, -7)
        # The node still serves its own connections.
        await a.send({"type": "ping", "id": "p"})
        await a.expect("pong", id="p")
        redis.start()
        wait_up(n1, n2)
        assert http(n1, "/healthz") == (200, "ok")
        assert metric(n1, "cluster_reconnects_total") >= 1
        await b.sync()
        await a.ok({"type": "chat", "content": "back"})
        c = await a.expect("chat", message="back")
        await b.expect("chat", message="back", seq=c["seq"])
        # Nothing acked was lost: the history has every acked message.
        d = await pool.connect(n2, "/ws?token=" + token("dave"))
        await d.expect("auth", code=0)
        await d.expect("user_join")
        await d.expect("user_list")
        h = await d.expect("history")
        texts = [m["message"] for m in h["messages"]]
        for i in acked:
            assert "m%d" % i in texts
        assert [m["seq"] for m in h["messages"]] == list(
            range(1, c["seq"] + 1))

    go(body, 90)


def test_join_reply_of_a_big_room_fits_the_link(nodes, redis):
    """A room whose members' userInfo adds up to more than the link's
    input buffer (80 x ~2 KB > the default's 130 KB): a newcomer's
    user_list names as many as VKWS_CLUSTER_LIST_BYTES allow and counts
    the rest in "more" (uncapped, the 33rd member's user_list alone
    filled its send queue: 1013), the link stays up (the join's reply
    fits it whole) and the room keeps working."""
    n1 = nodes("b1", "--default-room", "")
    wait_up(n1)
    info = {"pad": "y" * 1900}
    n = 80

    async def body(pool):
        for i in range(n):
            m = await pool.login(n1, "m%d" % i, info=info, room=None,
                                 max_queue=None)
            await m.ok({"type": "join", "room": "big"})
            await until(m, "history")
        late = await pool.login(n1, "late", room=None)
        await late.ok({"type": "join", "room": "big"})
        ul = await until(late, "user_list")
        assert 0 < len(ul["users"]) < n + 1, len(ul["users"])
        assert len(ul["users"]) + ul["more"] == n + 1, ul["more"]
        await until(late, "history")
        # The link still serves: a chat goes through Redis and back.
        await late.ok({"type": "chat", "room": "big", "content": "hi"})
        c = await until(late, "chat")
        assert c["message"] == "hi"

    async def until(c, type_):
        for _ in range(4 * n):
            m = await c.recv(10)
            if m["type"] == type_:
                return m
        raise AssertionError("%s: no %s" % (c.name, type_))

    go(body, 60)


def test_link_output_full_answers_7(nodes, redis):
    n1 = nodes("f1", "--default-room", "")
    wait_up(n1)
    text = "x" * 40

    async def body(pool):
        # The replies that come in a burst once Redis runs again are
        # read as they come (no client-side backpressure).
        a = await pool.login(n1, "alice", room=None, max_queue=None)
        await a.ok({"type": "join", "room": "full"})
        await a.sync()
        os.kill(redis.proc.pid, signal.SIGSTOP)
        try:
            n = 2300    # past VKWS_REDIS_PENDING (2048) replies awaited
            for i in range(n):
                await a.send({"type": "chat", "room": "full",
                              "content": text, "id": i})
            # Redis reads nothing: once the link's buffers are full the
            # rest is refused at once with -7.
            refused = 0
            while refused == 0:
                m = await a.recv(10)
                assert m["type"] == "ack" and m["code"] == -7, m
                refused += 1
        finally:
            os.kill(redis.proc.pid, signal.SIGCONT)
        codes = {}
        seqs = []
        while len(codes) < n - 1 or len(seqs) < codes_ok(codes):
            m = await a.recv(10)
            if m["type"] == "ack":
                codes[m["id"]] = m["code"]
            elif m["type"] == "chat":
                seqs.append(m["seq"])
        ok = codes_ok(codes)
        assert 0 < ok < n
        assert seqs == list(range(1, ok + 1))

    def codes_ok(codes):
        return sum(1 for v in codes.values() if v == 0)

    go(body, 60)


# ---- the server API across nodes -------------------------------------------

async def raw(c):
    """The next message of c as JSON, whatever its shape (broadcast data
    is any JSON value)."""
    return json.loads(await asyncio.wait_for(c.ws.recv(), 5))


def test_api_across_nodes(nodes):
    n1, n2, n3 = nodes("a1"), nodes("a2"), nodes("a3")
    wait_up(n1, n2, n3)
    # Each node waits for as many answers as it counts nodes.
    for n in (n1, n2, n3):
        wait_for(lambda: metric(n, "cluster_nodes") == 3, 5, "three nodes")

    async def body(pool):
        a = await pool.login(n1, "alice")
        b = await pool.login(n2, "bob", others=[a])
        c = await pool.login(n3, "carol", others=[a, b])
        loop = asyncio.get_running_loop()

        async def call(srv, method, **params):
            return await loop.run_in_executor(
                None, lambda: api(srv, method, **params))

        # By clientId, from a node that does not hold it.
        r = await call(n1, "sendToClient", clientId=b.cid, data={"x": 1})
        assert r["code"] == 0, r
        assert await raw(b) == {"x": 1}
        r = await call(n3, "getConnectionInfo", clientId=b.cid)
        assert r["code"] == 0 and r["data"]["node"] == "a2", r
        assert r["data"]["userId"] == "bob"
        r = await call(n1, "setClientData", clientId=b.cid,
                       data={"nick": "B"})
        assert r["code"] == 0, r
        r = await call(n3, "getClientData", clientId=b.cid)
        assert r == {"code": 0, "data": {"nick": "B"}}, r
        r = await call(n1, "getConnectionInfo", clientId="a2-ffffff")
        assert r["code"] == -3, r
        # Broadcasts reach every node; delivered counts them all.
        r = await call(n2, "broadcastToAll", data={"all": 1})
        assert r == {"code": 0, "data": {"delivered": 3}}, r
        for m in (a, b, c):
            assert await raw(m) == {"all": 1}
        r = await call(n1, "broadcastToRoom", room=DEFAULT_ROOM, data="r")
        assert r == {"code": 0, "data": {"delivered": 3}}, r
        for m in (a, b, c):
            assert await raw(m) == "r"
        r = await call(n1, "sendToUser", userId="carol", data=7)
        assert r == {"code": 0, "data": {"delivered": 1}}, r
        assert await raw(c) == 7
        r = await call(n1, "sendToUser", userId="nobody", data=7)
        assert r["code"] == -3, r
        # Listings cover every node; each entry names its node.
        r = await call(n2, "getAllConnections")
        assert r["code"] == 0, r
        assert sorted((e["userId"], e["node"]) for e in r["data"]) == [
            ("alice", "a1"), ("bob", "a2"), ("carol", "a3")]
        r = await call(n3, "getActiveConnections")
        assert len(r["data"]) == 3, r
        r = await call(n1, "getRoomClients", room=DEFAULT_ROOM)
        assert sorted(e["clientId"] for e in r["data"]) == sorted(
            [a.cid, b.cid, c.cid]), r
        r = await call(n1, "getRoomInfo", room=DEFAULT_ROOM)
        assert r["code"] == 0 and r["data"]["clients"] == 3, r
        # joinRoom / leaveRoom of another node's client.
        r = await call(n1, "joinRoom", clientId=c.cid, room="x")
        assert r["code"] == 0, r
        await c.expect("user_join", room="x")
        await c.expect("user_list", room="x")
        await c.expect("history", room="x")
        r = await call(n2, "getRoomClients", room="x")
        assert [e["clientId"] for e in r["data"]] == [c.cid], r
        r = await call(n1, "leaveAllRooms", clientId=c.cid)
        assert r["code"] == 0, r
        for m in (a, b):
            lv = await m.expect("user_leave", room=DEFAULT_ROOM)
            assert lv["user"]["clientId"] == c.cid
        # deleteRoom: members on every node get room_deleted.
        r = await call(n3, "joinRoom", clientId=a.cid, room="gone")
        assert r["code"] == 0, r
        await a.expect("user_join", room="gone")
        await a.expect("user_list", room="gone")
        await a.expect("history", room="gone")
        r = await call(n2, "deleteRoom", room="gone")
        assert r["code"] == 0, r
        await a.expect("room_deleted", room="gone")
        # disconnect from another node; disconnectAll everywhere.
        r = await call(n1, "disconnect", clientId=c.cid, code=4000)
        assert r["code"] == 0, r
        await c.closed(4000)
        r = await call(n3, "disconnectAll")
        assert r["code"] == 0, r
        await a.closed(1000)
        await b.closed(1000)

    go(body)


def test_many_leaves_at_once(nodes):
    """A node whose connections all close in one pass: every leave
    reaches Redis and the other nodes, even past the link's output."""
    flags = ("--default-room", "", "--reconnect-rate", "0",
             "--max-per-ip", "0", "--max-pending", "1000")
    n1, n2 = nodes("l1", *flags), nodes("l2", *flags)
    wait_up(n1, n2)
    many = 300

    async def body(pool):
        w = await pool.login(n2, "watcher", room=None)
        await w.ok({"type": "join", "room": "mass"})
        await w.sync()
        cs = []
        for i in range(many):
            c = await pool.login(n1, "m%d" % i, room=None)
            await c.send({"type": "join", "room": "mass", "id": 1})
            cs.append(c)
        for c in cs:
            await c.expect("ack", id=1, code=0)
        joins = [m for m in await w.sync() if m["type"] == "user_join"]
        while len(joins) < many:
            joins.append(await w.expect("user_join", room="mass"))
        await asyncio.sleep(1.1)    # past the churn window (section 8)
        await asyncio.gather(*(c.ws.close() for c in cs))
        left = set()
        while len(left) < many:
            m = await w.expect("user_leave", room="mass")
            left.add(m["user"]["clientId"])
        assert left == {c.cid for c in cs}
        r = api(n2, "getRoomClients", room="mass")
        assert [e["userId"] for e in r["data"]] == ["watcher"], r
        late = await pool.login(n1, "late", room=None)
        await late.ok({"type": "join", "room": "mass"})
        await late.expect("user_join")
        ul = await late.expect("user_list")
        assert sorted(u["userId"] for u in ul["users"]) == ["late",
                                                            "watcher"]

    go(body, 120)


def test_node_restarted_under_same_id_is_a_new_life(nodes):
    """kill -9, then the same --node at once (before its TTL ran out):
    the old life's connections leave every listing."""
    n1, n2 = nodes("w1"), nodes("w2")
    wait_up(n1, n2)

    async def body(pool):
        a = await pool.login(n1, "alice")
        b = await pool.login(n2, "bob", others=[a])
        os.kill(n2.proc.pid, signal.SIGKILL)
        n2.proc.wait(5)
        n2b = nodes("w2")
        wait_up(n2b)
        lv = await a.expect("user_leave", room=DEFAULT_ROOM, timeout=5)
        assert lv["user"] == b.user()
        wait_for(lambda: metric(n1, "cluster_nodes") == 2, TTL + 3,
                 "two nodes")
        r = api(n1, "getRoomClients", room=DEFAULT_ROOM)
        assert [e["userId"] for e in r["data"]] == ["alice"], r
        c = await pool.login(n2b, "carol", others=[a])
        assert c.cid.startswith("w2-") and c.cid != b.cid

    go(body)


def test_redis_down_at_start_then_registered(nodes, redis):
    """Redis unreachable at start: the node serves its own connections,
    answers -7 for what needs the cluster and 503 on /healthz; once Redis
    is up it registers what it holds (a later joiner on another node sees
    the earlier user in user_list)."""
    redis.stop()
    n1 = nodes("d1")
    assert http(n1, "/healthz")[0] == 503
    assert metric(n1, "cluster_up") == 0

    async def body(pool):
        a = await pool.login(n1, "alice", room=None)
        await a.sync()      # the default room, joined here alone
        await a.fails({"type": "chat", "content": "x"}, -7,
                      "cluster unavailable")
        await a.fails({"type": "private", "targetUserId": "alice",
                       "content": "x"}, -7)
        redis.start()
        wait_up(n1)
        await a.ok({"type": "chat", "content": "now"})
        await a.expect("chat", seq=1, message="now")
        n2 = nodes("d2")
        wait_up(n2)
        await pool.login(n2, "bob", others=[a])

    go(body)


# ---- rooms cluster-wide: getRoomInfo, listRooms (PROTOCOL.md 9) --------------

def test_room_info_and_list_rooms_cluster_wide(nodes):
    """getRoomInfo and listRooms answer the same on every node: clients
    over every node, maxClients and persistent as the last createRoom
    (on any node) set them, createdAt when the cluster first had the
    room (kept while Redis keeps it), and rooms no node holds any more
    (persistent, every member gone) too."""
    n1, n2 = nodes("i1"), nodes("i2")
    wait_up(n1, n2)

    async def body(pool):
        a = await pool.login(n1, "alice")
        b = await pool.login(n2, "bob", others=[a])
        r = api(n1, "createRoom", room="p", maxClients=5, persistent=True)
        assert r["code"] == 0, r
        p = r["data"]
        assert p["room"] == "p" and p["clients"] == 0 and \
            p["maxClients"] == 5 and p["persistent"] is True, p
        created = p["createdAt"]
        check_ts({"timestamp": created})
        # n2 has no room p of its own: Redis has it.
        assert api(n2, "getRoomInfo", room="p") == {"code": 0, "data": p}
        await b.join("p")
        await a.join("p", others=[b])
        await b.expect("user_join", room="p", user=a.user())
        await a.join("q", others=[])
        for n in (n1, n2):
            r = api(n, "getRoomInfo", room="p")
            assert r["data"] == dict(p, clients=2), r
        general = api(n2, "getRoomInfo", room=DEFAULT_ROOM)["data"]
        assert general["clients"] == 2, general
        q = api(n2, "getRoomInfo", room="q")["data"]
        assert (q["clients"], q["maxClients"], q["persistent"]) == (
            1, 0, False), q
        want = [general, dict(p, clients=2), q]
        assert [x["room"] for x in want] == sorted(x["room"] for x in want)
        for n in (n1, n2):
            assert api(n, "listRooms") == {"code": 0, "data": want}
        # createRoom again, on the other node: settings change, the
        # room keeps its createdAt.
        r = api(n2, "createRoom", room="p", maxClients=7)
        assert r == {"code": 0, "data": dict(p, clients=2, maxClients=7)}, r
        assert api(n1, "getRoomInfo", room="p")["data"]["maxClients"] == 7
        # The last member of q leaves: q is gone everywhere.
        await a.ok({"type": "leave", "room": "q"})
        for n in (n1, n2):
            assert api(n, "getRoomInfo", room="q")["code"] == -3
            names = [x["room"] for x in api(n, "listRooms")["data"]]
            assert names == [DEFAULT_ROOM, "p"], names
        # A persistent room only n1 made, and n1 stops: n2 (which never
        # had it) still lists it, with its createdAt.
        r = api(n1, "createRoom", room="only", persistent=True)
        assert r["code"] == 0, r
        only = r["data"]
        await a.ws.close()
        await b.expect("user_leave", room=DEFAULT_ROOM, user=a.user())
        os.kill(n1.proc.pid, signal.SIGTERM)
        assert n1.proc.wait(10) == 0
        r = api(n2, "getRoomInfo", room="only")
        assert r == {"code": 0, "data": only}, r
        r = api(n2, "listRooms")
        assert [x["room"] for x in r["data"]] == [DEFAULT_ROOM, "only", "p"]
        assert r["data"][1] == only and r["data"][2]["clients"] == 1, r
        assert r["data"][2]["createdAt"] == created, r
        # deleteRoom of it: Redis had it, so 0; then it is gone.
        assert api(n2, "deleteRoom", room="only") == {"code": 0,
                                                      "data": None}
        assert api(n2, "getRoomInfo", room="only")["code"] == -3
        assert api(n2, "deleteRoom", room="only")["code"] == -3
        r = api(n2, "listRooms")
        assert [x["room"] for x in r["data"]] == [DEFAULT_ROOM, "p"], r

    go(body)


# ---- PROTOCOL.md 8 across nodes: young connections' joins and leaves ---------

def test_churn_rule_across_nodes(nodes):
    """A connection younger than a second: the members of other nodes
    hear of its join only once it is a second old, and of its leave only
    if they knew of it (a later joiner saw it in its user_list). No one
    is left with a member that is gone, or told of a leave of someone it
    never saw. A chat from the sender's node marks where to look: Redis
    publishes in order, so what came before it on the bus came first."""
    n1, n2 = (nodes(n, "--default-room", "") for n in ("y1", "y2"))
    wait_up(n1, n2)

    async def about(c, who, marker):
        """c's user_join/user_leave of who, up to the chat marker."""
        got = []
        while True:
            m = await c.recv()
            if m["type"] == "chat" and m["message"] == marker:
                return got
            if m["type"] in ("user_join", "user_leave") and \
                    m["user"]["clientId"] == who.cid:
                got.append(m["type"])

    async def joined_seen(c, who):
        """Read c up to who's user_join (others' presence may come
        first: each arrives once its connection is a second old)."""
        while True:
            m = await c.recv()
            assert m["type"] in ("user_join", "user_leave"), m
            if m["user"]["clientId"] == who.cid:
                assert m["type"] == "user_join", m
                return

    async def mark(c, text):
        """A chat from c into ch: its ack, then its copy (presence
        notifications of others may come in between)."""
        await c.send({"type": "chat", "room": "ch", "content": text,
                      "id": text})
        acked = False
        while True:
            m = await c.recv()
            if m["type"] == "ack":
                assert m == {"type": "ack", "id": text, "code": 0}, m
                acked = True
            elif m["type"] == "chat":
                assert acked and m["message"] == text, m
                return
            else:
                assert m["type"] in ("user_join", "user_leave"), m

    async def body(pool):
        w = await pool.login(n2, "watcher", room=None)
        s = await pool.login(n1, "sender", room=None)
        await w.join("ch")
        await s.join("ch", others=[w])
        # s was young: w hears of it once it is a second old.
        await joined_seen(w, s)

        # A young leaver, with a member on n2 that joined after it.
        t0 = time.monotonic()
        y = await pool.login(n1, "young", room=None)
        await y.join("ch", others=[w, s])
        m = await pool.login(n2, "newer", room=None)
        await m.join("ch", others=[w, s, y])
        await y.ok({"type": "leave", "room": "ch"})
        life = time.monotonic() - t0    # longer than y's life
        await mark(s, "mark1")
        assert await about(m, y, "mark1") == ["user_leave"]
        if life < 1.0:      # y lived less than a second: w never knew
            assert await about(w, y, "mark1") == []
        else:               # a slow machine: then the whole pair
            assert await about(w, y, "mark1") in (
                [], ["user_join", "user_leave"])

        # A young member that stays: the later joiner on n2 saw it in
        # user_list and gets no user_join; w gets one, a second later.
        y2 = await pool.login(n1, "young2", room=None)
        await y2.join("ch", others=[w, s, m])
        m2 = await pool.login(n2, "newer2", room=None)
        await m2.join("ch", others=[w, s, m, y2])
        await joined_seen(w, y2)
        await mark(s, "mark2")
        assert await about(m2, y2, "mark2") == []
        assert await about(w, y2, "mark2") == []

        # Listings agree with what everyone was told.
        r = api(n2, "getRoomClients", room="ch")
        assert sorted(e["userId"] for e in r["data"]) == sorted(
            ["watcher", "sender", "newer", "young2", "newer2"]), r

    go(body)


def test_held_join_told_when_the_link_was_full(nodes, redis):
    """A young member's user_join falls due (a second after it
    connected) while the link to Redis is full (Redis stopped, the
    replies awaited all taken by a flood of chats): its node owes it to
    the others and publishes it once Redis runs again, so the member on
    the other node hears of it, and then of its leave."""
    flags = ("--default-room", "", "--node-ttl", "60")
    n1, n2 = nodes("o1", *flags), nodes("o2", *flags)
    wait_up(n1, n2)

    acks = []

    async def drain(c):
        try:
            while True:
                m = json.loads(await c.ws.recv())
                if m["type"] == "ack":
                    acks.append(m["code"])
        except websockets.ConnectionClosed:
            pass

    async def body(pool):
        w = await pool.login(n2, "watcher", room=None)
        await w.join("r")
        s = await pool.login(n1, "local", room=None)
        await s.join("r", others=[w])
        await w.expect("user_join", room="r", user=s.user())
        f = await pool.login(n1, "flood", room=None, max_queue=None)
        await f.join("full")
        y = await pool.login(n1, "young", room=None)
        await y.join("r", others=[w, s])
        os.kill(redis.proc.pid, signal.SIGSTOP)
        try:
            task = asyncio.ensure_future(drain(f))
            for i in range(2300):   # past VKWS_REDIS_PENDING (2048)
                await f.send({"type": "chat", "room": "full",
                              "content": "x", "id": i})
            # y's join told on n1 (room.c): it fell due by now.
            await s.expect("user_join", room="r", user=y.user())
        finally:
            os.kill(redis.proc.pid, signal.SIGCONT)
        await w.expect("user_join", room="r", user=y.user(), timeout=10)
        # Every chat answered (the link has room again), then y leaves.
        deadline = time.monotonic() + 20
        while len(acks) < 2300:
            assert time.monotonic() < deadline, len(acks)
            await asyncio.sleep(0.05)
        assert 0 in acks and -7 in acks
        await y.ok({"type": "leave", "room": "r"})
        await w.expect("user_leave", room="r", user=y.user())
        await s.expect("user_leave", room="r", user=y.user())
        await f.ws.close()
        await task

    go(body, 60)


# ---- the leave backlog full (VKWS_LEAVE_BACKLOG) ------------------------------

def test_leave_backlog_full_loses_no_user_leave(nodes, redis):
    """Redis stops reading while a node's connections all close: the
    replies awaited (VKWS_REDIS_PENDING) and then the leave backlog
    (VKWS_LEAVE_BACKLOG bytes, long room names make each leave take more
    of it) fill, past them by about a thousand leaves. Once Redis runs
    again the node registers itself again, and the memberships it no
    longer holds leave with user_leave: a member on the other node hears
    of every one, and the listings are clean."""
    flags = ("--default-room", "", "--reconnect-rate", "0",
             "--max-per-ip", "0", "--max-pending", "1000",
             "--node-ttl", "60")     # Redis stops for a few seconds
    n1, n2 = nodes("b1", *flags), nodes("b2", *flags)
    wait_up(n1, n2)
    conns, per, nrooms = 200, 16, 200     # 3,200 memberships on n1
    names = ["r%03d-%s" % (i, "x" * 59) for i in range(nrooms)]
    assert all(len(n) == 64 for n in names)     # VKWS_ROOM_NAME_MAX

    async def drain(c, acks):
        try:
            while True:
                m = json.loads(await c.ws.recv())
                if m.get("type") == "ack":
                    assert m["code"] == 0, m
                    acks.append(m["id"])
        except websockets.ConnectionClosed:
            pass

    async def body(pool):
        w = await pool.login(n2, "watcher", room=None)
        for r in names[:per]:
            await w.join(r)
        cs, acks, tasks, pairs = [], [], [], set()
        for i in range(conns):
            c = await pool.login(n1, "u%d" % i, room=None)
            cs.append(c)
            tasks.append(asyncio.ensure_future(drain(c, acks)))
            for j in range(per):
                r = names[(i * per + j) % nrooms]
                await c.send({"type": "join", "room": r, "id": j})
                if r in names[:per]:
                    pairs.add((r, c.cid))
            # One connection's joins at a time: a burst of all of them
            # would find the link's output full (-7).
            deadline = time.monotonic() + 20
            while len(acks) < (i + 1) * per:
                assert time.monotonic() < deadline, len(acks)
                assert not tasks[-1].done(), tasks[-1].result()
                await asyncio.sleep(0.01)
        # Every join told to w: each connection is a second old then
        # (PROTOCOL.md 8), so its leaves are for everyone.
        seen = set()
        while seen != pairs:
            m = await w.recv(10)
            assert m["type"] == "user_join", m
            seen.add((m["room"], m["user"]["clientId"]))
        os.kill(redis.proc.pid, signal.SIGSTOP)
        try:
            await asyncio.gather(*(c.ws.close() for c in cs))
            await asyncio.gather(*tasks)
            deadline = time.monotonic() + 30
            while metric(n1, "connections_proven") != 0:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
        finally:
            os.kill(redis.proc.pid, signal.SIGCONT)
        left = set()
        while left != pairs:
            m = await w.recv(15)
            assert m["type"] == "user_leave", m
            key = (m["room"], m["user"]["clientId"])
            assert key in pairs and key not in left, m
            left.add(key)
        assert metric(n1, "cluster_reregistrations_total") >= 1
        for n in (n1, n2):
            r = api(n, "getRoomClients", room=names[0])
            assert r["code"] == 0, r
            assert [e["userId"] for e in r["data"]] == ["watcher"], r
            r = api(n, "listRooms")
            assert [(x["room"], x["clients"]) for x in r["data"]] == [
                (x, 1) for x in names[:per]], r
        await w.quiet()

    go(body, 180)


def test_node_stopped_mid_call_partial_answer(nodes):
    """A node that stops answering mid-call (SIGSTOP here; a node that
    dies is the same until its sweep): a call to every node waits
    VKWS_CLUSTER_WAIT_MS, then answers code 0 with what the other nodes
    said, and vkws_cluster_partial_total counts it."""
    # A long --node-ttl: n2 stays counted (and unswept) meanwhile. n1
    # starts second, so it counts two nodes at once.
    n2 = nodes("h2", "--node-ttl", "60")
    wait_up(n2)
    n1 = nodes("h1", "--node-ttl", "60")
    wait_up(n1)
    assert metric(n1, "cluster_nodes") == 2

    async def body(pool):
        a = await pool.login(n1, "alice")
        await pool.login(n2, "bob", others=[a])
        loop = asyncio.get_running_loop()
        r = await loop.run_in_executor(None, lambda: api(
            n1, "broadcastToAll", data=1))
        assert r == {"code": 0, "data": {"delivered": 2}}, r
        assert metric(n1, "cluster_partial_total") == 0
        os.kill(n2.proc.pid, signal.SIGSTOP)
        try:
            r = await loop.run_in_executor(None, lambda: api(
                n1, "broadcastToAll", data=2))
            assert r == {"code": 0, "data": {"delivered": 1}}, r
            r = await loop.run_in_executor(None, lambda: api(
                n1, "getAllConnections"))
            assert r["code"] == 0, r
            assert [e["userId"] for e in r["data"]] == ["alice"], r
            assert metric(n1, "cluster_partial_total") == 2
        finally:
            os.kill(n2.proc.pid, signal.SIGKILL)
            n2.proc.wait(5)
        assert await raw(a) == 1
        assert await raw(a) == 2

    go(body)


# ---- a join's reply and the bus, in either order ------------------------------

def paused_pair(nodes, monkeypatch, tmp_path):
    """Two nodes of the test build (VKWS_TEST_HOOKS): the second reads
    no Redis link while the file `pause` names holds "cmd" or "sub"."""
    from test_store import hooks_bin
    monkeypatch.setenv("VKWS_BIN", hooks_bin())
    pause = tmp_path / "pause"
    pause.write_text("")
    n1 = nodes("o1", "--default-room", "")
    monkeypatch.setenv("VKWS_TEST_PAUSE", str(pause))
    n2 = nodes("o2", "--default-room", "")
    monkeypatch.delenv("VKWS_TEST_PAUSE")
    wait_up(n1, n2)
    return n1, n2, pause


def test_bus_before_the_join_reply_reaches_the_joiner(nodes, monkeypatch,
                                                      tmp_path):
    """bob's join reply is late on n2's command link while a later join
    and a chat of the room come on its bus: bob still gets that
    user_join and that chat, after his own user_list and history."""
    n1, n2, pause = paused_pair(nodes, monkeypatch, tmp_path)

    async def body(pool):
        alice = await pool.login(n1, "alice", room=None)
        carol = await pool.login(n1, "carol", room=None)
        bob = await pool.login(n2, "bob", room=None)
        await alice.join("r")
        await asyncio.sleep(1.1)    # nobody young (PROTOCOL.md 8)
        pause.write_text("cmd")
        await bob.send({"type": "join", "room": "r", "id": "bj"})
        # Redis ran bob's join: its user_join reached n1.
        await alice.expect("user_join", room="r", user=bob.user())
        await carol.join("r", others=[alice, bob])
        await alice.expect("user_join", room="r", user=carol.user())
        await alice.chat("after bob", room="r")
        await asyncio.sleep(0.5)    # n2 reads its bus meanwhile
        pause.write_text("")
        check_ack(await bob.recv(), "bj", 0)
        await bob.joined("r", others=[alice], history=[])
        await bob.expect("user_join", room="r", user=carol.user())
        m = await bob.expect("chat", room="r")
        assert m["message"] == "after bob", m
        await bob.quiet()

    go(body)


def test_bus_after_the_join_reply_repeats_nothing(nodes, monkeypatch,
                                                  tmp_path):
    """A chat Redis ran before bob's join is late on n2's bus, behind
    bob's join reply: bob has it in his history and does not get it
    again live; the chat after his join he gets once."""
    n1, n2, pause = paused_pair(nodes, monkeypatch, tmp_path)

    async def body(pool):
        alice = await pool.login(n1, "alice", room=None)
        bob = await pool.login(n2, "bob", room=None)
        await alice.join("r")
        await asyncio.sleep(1.1)    # nobody young (PROTOCOL.md 8)
        pause.write_text("sub")
        before = await alice.chat("before bob", room="r")
        h = await bob.join("r", others=[alice])
        assert [m["message"] for m in h["messages"]] == ["before bob"], h
        assert h["messages"][0]["seq"] == before["seq"]
        await alice.expect("user_join", room="r", user=bob.user())
        pause.write_text("")
        after = await alice.chat("after bob", room="r")
        # The bus keeps Redis's order: a repeat of "before bob" would
        # come first.
        m = await bob.expect("chat", room="r")
        assert (m["message"], m["seq"]) == ("after bob", after["seq"]), m
        await bob.quiet()

    go(body)


def test_create_room_unconfirmed_is_7(nodes, monkeypatch, tmp_path):
    """createRoom answers code 0 only once Redis has the settings: with
    every held call's place taken (the command link is read no more),
    it answers -7 rather than this node's own view; again once the link
    reads, code 0 and the cluster's view."""
    import threading
    n1, n2, pause = paused_pair(nodes, monkeypatch, tmp_path)
    pause.write_text("cmd")
    held = []

    def read():
        held.append(http(n2, "/api", json.dumps(
            {"method": "getRoomInfo", "params": {"room": "x"}}).encode()))

    # More than VKWS_CLUSTER_HELD (4) reads, each waiting for Redis.
    threads = [threading.Thread(target=read) for _ in range(6)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    r = api(n2, "createRoom", room="made", maxClients=7)
    assert (r["code"], r.get("msg")) == (-7, "cluster unavailable"), r
    pause.write_text("")
    for t in threads:
        t.join(10)
    assert len(held) == 6
    r = api(n2, "createRoom", room="made", maxClients=7)
    assert r["code"] == 0, r
    assert (r["data"]["room"], r["data"]["maxClients"]) == ("made", 7), r
    assert api(n1, "getRoomInfo", room="made")["data"]["maxClients"] == 7


def test_redis_password_and_acl_user(tmp_path):
    """A Redis that wants a password: nodes with --redis-password-file
    (and --redis-user for an ACL user) join the cluster and chat across
    it; a node without a password, or with a wrong one, stays out
    (healthz 503) and says why once, not at every attempt."""
    pw = "two words"    # AUTH takes it as one argument
    r = Redis(["--requirepass", pw])
    started = []

    def node(name, *flags):
        s = Server(Transport(), ["--secret", SECRET, "--api-key", KEY,
                                 "--redis", "127.0.0.1:%d" % r.port,
                                 "--node", name, "--node-ttl", str(TTL)]
                   + list(flags))
        started.append(s)
        return s

    def pwfile(name, text):
        f = tmp_path / name
        f.write_text(text)
        return str(f)

    try:
        assert r.cmd("ACL", "SETUSER", "vk", "on", ">acl pw", "~*", "&*",
                     "+@all") == b"+OK\r\n"
        good = pwfile("good", pw + "\n")
        n1 = node("p1", "--redis-password-file", good)
        n2 = node("p2", "--redis-user", "vk", "--redis-password-file",
                  pwfile("acl", "acl pw"))
        none = node("p3")
        wrong = node("p4", "--redis-password-file", pwfile("bad", "nope\n"))
        wait_up(n1, n2)

        async def body(pool):
            a = await pool.login(n1, "alice")
            b = await pool.login(n2, "bob", others=[a])
            await b.chat("over a password")
            m = await a.expect("chat")
            assert m["message"] == "over a password", m
        go(body)

        time.sleep(2.5)     # two more attempts each (1 s apart)
        for s, why in ((none, "NOAUTH"), (wrong, "WRONGPASS")):
            assert metric(s, "cluster_up") == 0
            assert http(s, "/healthz")[0] == 503
            log = s.stderr()
            assert log.count(why) == 1, log
            assert metric(s, "cluster_reconnects_total") == 0
    finally:
        for s in started:
            s.check_stop()
        r.cleanup()


def test_redis_password_flags_refused(tmp_path):
    """--redis-user without a password file, either without --redis, an
    empty or unreadable file: the node does not start, and says why."""
    empty = tmp_path / "empty"
    empty.write_text("\n")
    pw = tmp_path / "pw"
    pw.write_text("x")
    for flags, why in (
            (["--redis", "127.0.0.1:1", "--redis-user", "u"],
             b"--redis-user needs --redis-password-file"),
            (["--redis-password-file", str(pw)], b"go with --redis"),
            (["--redis", "127.0.0.1:1", "--redis-password-file",
              str(empty)], b"is empty"),
            (["--redis", "127.0.0.1:1", "--redis-password-file",
              str(tmp_path / "missing")], b"cannot read")):
        p = subprocess.run([vkws_bin(), "--listen", "127.0.0.1:0",
                            "--secret", SECRET] + flags,
                           capture_output=True, timeout=10,
                           stdin=subprocess.DEVNULL)
        assert p.returncode != 0, flags
        assert why in p.stderr, (flags, p.stderr)
