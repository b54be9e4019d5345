"""
The chat log under --data-dir (store.c) against the real binary: history,
persistent rooms and seq survive a restart (PROTOCOL.md 6 and 7); every
acked chat message survives kill -9; a torn tail is cut and a corrupt
middle is kept aside; compaction keeps everything, under traffic and when
the process dies between any two of its steps; a full disk or a vanished
directory gives -7 and the server recovers on its own.

Clients are wsraw connections on /ws with a ?token=; every request has an
id and the client reads up to its ack, so no test sleeps to wait for the
server. Servers that a test kills on purpose are started and reaped here;
every other server goes through the conftest fixture, which checks that
it exits 0 on SIGTERM.

The crash-between-steps test needs a build with -DVKWS_TEST_HOOKS (the
server then honours VKWS_CRASH_AT=step); it is built once per session
into build-hooks/ (or build-hooks-asan/ for an ASan VKWS_BIN), or taken
from VKWS_HOOKS_BIN.
"""

import base64
import fcntl
import glob
import hashlib
import hmac
import json
import os
import random
import resource
import shutil
import signal
import subprocess
import time

import pytest

import wsraw
from conftest import Server, ROOT, vkws_bin

SECRET = "store-test-secret"
API_KEY = "store-test-key"
HISTORY = 50                # VKWS_HISTORY, the default --history
DEADLINE = 10.0             # generous bound on any one wait


def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode("ascii")


def token(uid):
    h = b64u(b'{"alg":"HS256","typ":"JWT"}')
    p = b64u(json.dumps({"uid": uid}).encode())
    sig = hmac.new(SECRET.encode(), (h + "." + p).encode(),
                   hashlib.sha256).digest()
    return h + "." + p + "." + b64u(sig)


def flags(data_dir, *extra):
    return ["--secret", SECRET, "--api-key", API_KEY, "--data-dir",
            str(data_dir)] + list(extra)


class Client:
    """One authenticated chat connection; notifications that arrive while
    it waits for an ack are kept in self.inbox."""

    def __init__(self, srv, uid="alice", timeout=5.0):
        self.c = srv.ws("/ws?token=" + token(uid), timeout=timeout)
        self.next_id = 1
        self.inbox = []
        m = self.recv()
        assert m["type"] == "auth" and m["code"] == 0, m

    def recv(self, timeout=None):
        while True:
            op, data, _ = self.c.recv_message(timeout)
            m = json.loads(data)
            if m.get("type") != "ping":
                return m
            self.c.send_text(json.dumps({"type": "pong"}))

    def send(self, obj):
        """Send with a fresh id; return the id."""
        i = self.next_id
        self.next_id += 1
        obj = dict(obj, id=i)
        self.c.send_text(json.dumps(obj))
        return i

    def wait_ack(self, i):
        deadline = time.monotonic() + DEADLINE
        while time.monotonic() < deadline:
            m = self.recv(max(0.01, deadline - time.monotonic()))
            if m.get("type") == "ack" and m.get("id") == i:
                return m
            self.inbox.append(m)
        raise AssertionError("no ack for id %d" % i)

    def request(self, obj):
        return self.wait_ack(self.send(obj))

    def chat(self, text, room=None):
        """Send a chat; (ack code, seq of our own copy or None)."""
        obj = {"type": "chat", "content": text}
        if room:
            obj["room"] = room
        a = self.request(obj)
        if a["code"] != 0:
            return a["code"], None
        while True:
            m = self.recv()
            if m.get("type") == "chat" and m.get("message") == text:
                return 0, m["seq"]
            self.inbox.append(m)

    def history(self, room="general", since=None):
        """Join room (leaving it first, if a member) and return the
        history message that follows."""
        self.request({"type": "leave", "room": room})   # -3/-4: not in it
        self.inbox = []
        req = {"type": "join", "room": room}
        if since is not None:
            req["since"] = since
        a = self.request(req)
        assert a["code"] == 0, a
        deadline = time.monotonic() + DEADLINE
        while time.monotonic() < deadline:
            for m in self.inbox:
                if m.get("type") == "history" and m.get("room") == room:
                    return m
            self.inbox.append(self.recv())
        raise AssertionError("no history for %s" % room)

    def close(self):
        self.c.close()


def api(srv, method, **params):
    body = json.dumps({"method": method, "params": params})
    raw = ("POST /api HTTP/1.1\r\nHost: x\r\nAuthorization: apikey %s\r\n"
           "Content-Type: application/json\r\nContent-Length: %d\r\n"
           "Connection: close\r\n\r\n%s" % (API_KEY, len(body), body))
    resp, c = srv.http(raw, body_until_eof=True)
    c.close()
    assert resp.status == 200, resp
    return json.loads(resp.body)


def texts(hist):
    return [m["message"] for m in hist["messages"]]


def seqs(hist):
    return [m["seq"] for m in hist["messages"]]


def log_path(d):
    return os.path.join(str(d), "log")


def start_unchecked(transport, fl, env=None):
    """A server this test stops itself (kill -9 on purpose)."""
    old = dict(os.environ)
    try:
        if env:
            os.environ.update(env)
        return Server(transport, fl)
    finally:
        os.environ.clear()
        os.environ.update(old)


def reap(s, sig=signal.SIGKILL):
    if s.proc.poll() is None:
        s.proc.send_signal(sig)
    return s.proc.wait(DEADLINE)


# ---- restart ------------------------------------------------------------

def test_restart_keeps_history_rooms_and_seq(server, tmp_path):
    s = server(*flags(tmp_path))
    a = Client(s)
    for i in range(5):
        assert a.chat("m%d" % i) == (0, i + 1)
    r = api(s, "createRoom", room="keep", persistent=True, maxClients=5)
    assert r["code"] == 0, r
    assert api(s, "createRoom", room="gone", persistent=True)["code"] == 0
    a.history("keep")
    assert a.chat("k1", "keep") == (0, 1)
    assert a.chat("k2", "keep") == (0, 2)
    a.history("gone")
    assert a.chat("g1", "gone") == (0, 1)
    assert api(s, "deleteRoom", room="gone")["code"] == 0
    a.history("temp")          # not persistent: gone after restart
    assert a.chat("t1", "temp") == (0, 1)
    a.close()
    assert s.stop() == 0

    s = server(*flags(tmp_path))
    info = api(s, "getRoomInfo", room="keep")
    assert info["code"] == 0, info
    assert info["data"]["persistent"] is True
    assert info["data"]["maxClients"] == 5
    assert api(s, "getRoomInfo", room="gone")["code"] == -3
    assert api(s, "getRoomInfo", room="temp")["code"] == -3
    b = Client(s, "bob")
    h = b.history()
    assert texts(h) == ["m%d" % i for i in range(5)]
    assert seqs(h) == [1, 2, 3, 4, 5]
    assert b.chat("after") == (0, 6)
    h = b.history("keep")
    assert texts(h) == ["k1", "k2"] and h["complete"] is True
    assert b.chat("k3", "keep") == (0, 3)
    b.history("temp")
    assert b.chat("t-again", "temp") == (0, 1)
    b.close()
    # A third start replays what the second appended.
    assert s.stop() == 0
    s = server(*flags(tmp_path))
    c = Client(s, "carol")
    assert seqs(c.history()) == [1, 2, 3, 4, 5, 6]
    assert texts(c.history("keep")) == ["k1", "k2", "k3"]
    c.close()


def test_without_data_dir_nothing_written(server, tmp_path):
    s = server("--secret", SECRET)
    a = Client(s)
    assert a.chat("x") == (0, 1)
    a.close()
    assert os.listdir(str(tmp_path)) == []


# ---- kill -9 ------------------------------------------------------------

ROUNDS = 5
PER_ROUND = 40              # < HISTORY: one round fits the history


def test_kill9_keeps_every_acked_message(server, transport, tmp_path):
    """Pipelined chat, kill -9 after a random number of acks; after each
    restart every message acked before the kill is there, with the seq
    it was sent with, and seq goes on from there."""
    rng = random.Random(6)
    prev = {}               # text -> seq (None: ack came, copy did not)
    checked = 0
    for rnd in range(ROUNDS + 1):
        last = rnd == ROUNDS
        s = (server if last else
             lambda *f: start_unchecked(transport, f))(*flags(tmp_path))
        try:
            a = Client(s)
            h = a.history()
            kept = {m["message"]: m["seq"] for m in h["messages"]}
            sq = seqs(h)
            assert sq == list(range(sq[0], sq[0] + len(sq))) if sq else 1
            lost = [t for t in prev if t not in kept]
            assert lost == [], "round %d lost acked %r" % (rnd, lost)
            for t, q in prev.items():
                assert q is None or kept[t] == q
            checked += len(prev)
            top = sq[-1] if sq else 0
            if last:
                assert a.chat("after") == (0, top + 1)
                a.close()
                break
            kill_after = rng.randint(1, PER_ROUND - 1)
            ids = {}
            for i in range(PER_ROUND):
                text = "r%d-%d" % (rnd, i)
                ids[a.send({"type": "chat", "content": text})] = text
            codes, copies = {}, {}
            killed = False
            deadline = time.monotonic() + DEADLINE
            try:
                while len(codes) < PER_ROUND and \
                        time.monotonic() < deadline:
                    m = a.recv()
                    if m.get("type") == "ack":
                        codes[m["id"]] = m["code"]
                        if len(codes) == kill_after:
                            os.kill(s.proc.pid, signal.SIGKILL)
                            killed = True
                    elif m.get("type") == "chat":
                        copies[m["message"]] = m["seq"]
            except (wsraw.Closed, OSError):
                # The kill cut the connection; before it, the server
                # must not have.
                assert killed, "connection lost before the kill"
            except wsraw.Timeout:
                # A killed server may leave the socket silent for a
                # moment; a live one must answer.
                assert killed, "no answer from the live server"
            assert killed, "fewer than %d acks before the deadline" \
                % kill_after
            a.close()
            assert len(codes) >= kill_after
            assert set(codes.values()) == {0}, codes
            prev = {ids[i]: copies.get(ids[i]) for i in codes}
            # seq goes on from the last message kept before the kill.
            assert copies.get(ids[min(ids)], top + 1) == top + 1
        finally:
            if not last:
                reap(s)
    assert checked >= ROUNDS


# ---- damaged logs -------------------------------------------------------

def fill(srv, n, prefix="m", room=None):
    a = Client(srv)
    for i in range(n):
        code, _ = a.chat("%s%d" % (prefix, i), room)
        assert code == 0
    a.close()


def record_offsets(path):
    """Start offsets of the records of a log file (format: store.h)."""
    data = open(path, "rb").read()
    offs, off = [], 0
    while off + 9 <= len(data):
        n = int.from_bytes(data[off:off + 4], "little")
        offs.append(off)
        off += 9 + n
    return offs, data


def test_torn_tail_is_cut(server, tmp_path):
    s = server(*flags(tmp_path))
    fill(s, 6)
    assert s.stop() == 0
    offs, data = record_offsets(log_path(tmp_path))
    last = offs[-1]
    # Cut inside the last record (a chat): it is dropped, nothing else.
    cut = last + (len(data) - last) // 2
    with open(log_path(tmp_path), "r+b") as f:
        f.truncate(cut)
    s = server(*flags(tmp_path))
    b = Client(s, "bob")
    assert texts(b.history()) == ["m%d" % i for i in range(5)]
    assert b.chat("again") == (0, 6)
    b.close()
    assert "torn tail" in s.stderr()
    assert glob.glob(str(tmp_path / "log.corrupt-*")) == []


@pytest.mark.parametrize("into", ["half", "head3", "byte1"])
def test_torn_tail_restarted_twice(server, tmp_path, into):
    """The message appended after a torn tail must survive the restart
    after that (issue 18): the tail is cut exactly at the last whole
    record, so the next record follows it and the log stays whole."""
    s = server(*flags(tmp_path))
    fill(s, 6)
    assert s.stop() == 0
    offs, data = record_offsets(log_path(tmp_path))
    last = offs[-1]
    cut = {"half": last + (len(data) - last) // 2,  # inside the frame
           "head3": last + 3,                       # inside the length
           "byte1": last + 1}[into]
    with open(log_path(tmp_path), "r+b") as f:
        f.truncate(cut)
    s = server(*flags(tmp_path))
    b = Client(s, "bob")
    assert texts(b.history()) == ["m%d" % i for i in range(5)]
    assert b.chat("after-torn") == (0, 6)
    b.close()
    assert "torn tail" in s.stderr()
    assert s.stop() == 0
    assert os.path.getsize(log_path(tmp_path)) > last
    assert open(log_path(tmp_path), "rb").read()[:last] == data[:last]
    # The second restart: the log replays whole, nothing is set aside.
    s = server(*flags(tmp_path))
    c = Client(s, "carol")
    assert texts(c.history()) == ["m%d" % i for i in range(5)] + \
        ["after-torn"]
    assert c.chat("second") == (0, 7)
    c.close()
    err = s.stderr()
    assert "torn tail" not in err and "corrupt" not in err, err
    assert glob.glob(str(tmp_path / "log.corrupt-*")) == []


def test_flipped_byte_mid_file_kept_aside(server, tmp_path):
    s = server(*flags(tmp_path))
    fill(s, 8)
    assert s.stop() == 0
    offs, data = record_offsets(log_path(tmp_path))
    # The chat records are the last 8; damage the 4th one's frame.
    victim = offs[-8 + 3]
    bad = bytearray(data)
    bad[victim + 30] ^= 0x20
    with open(log_path(tmp_path), "wb") as f:
        f.write(bad)
    s = server(*flags(tmp_path))
    kept = glob.glob(str(tmp_path / "log.corrupt-*"))
    assert len(kept) == 1
    assert open(kept[0], "rb").read() == bytes(bad)
    err = s.stderr()
    assert "corrupt" in err and "follows" in err
    b = Client(s, "bob")
    assert texts(b.history()) == ["m0", "m1", "m2"]
    assert b.chat("new") == (0, 4)
    b.close()
    assert s.stop() == 0
    # The fresh log replays on its own.
    s = server(*flags(tmp_path))
    c = Client(s, "carol")
    assert texts(c.history()) == ["m0", "m1", "m2", "new"]
    c.close()


def test_not_a_log_kept_aside(server, tmp_path):
    with open(log_path(tmp_path), "wb") as f:
        f.write(b"this is not a vkws log\n" * 3)
    s = server(*flags(tmp_path))
    assert len(glob.glob(str(tmp_path / "log.corrupt-*"))) == 1
    a = Client(s)
    assert a.chat("hi") == (0, 1)
    a.close()


# ---- compaction ---------------------------------------------------------

def test_compaction_under_traffic(server, tmp_path):
    """With a 4 KiB --log-max the log is compacted many times while two
    clients chat in two rooms; it stays bounded and loses nothing."""
    s = server(*flags(tmp_path, "--log-max", "4096", "--history", "10",
                      "--rate", "10000"))
    assert api(s, "createRoom", room="p", persistent=True)["code"] == 0
    a, b = Client(s), Client(s, "bob")
    b.history("p")
    biggest = 0
    for i in range(150):
        assert a.chat("a%d" % i) == (0, i + 1)
        assert b.chat("b%d" % i, "p") == (0, i + 1)
        biggest = max(biggest, os.path.getsize(log_path(tmp_path)))
    # Twice the kept state (2 rooms x 10 messages of ~150 bytes) at
    # most, or --log-max, plus the pass that crossed it.
    assert biggest < 16384, biggest
    a.close()
    b.close()
    assert s.stop() == 0
    s = server(*flags(tmp_path, "--history", "10"))
    c = Client(s, "carol")
    h = c.history()
    assert texts(h) == ["a%d" % i for i in range(140, 150)]
    assert seqs(h) == list(range(141, 151))
    assert h["complete"] is False
    assert texts(c.history("p")) == ["b%d" % i for i in range(140, 150)]
    assert c.chat("z") == (0, 151)
    assert c.chat("z", "p") == (0, 151)
    c.close()


_hooks = {}


def hooks_bin():
    """A server built with -DVKWS_TEST_HOOKS (built once per session)."""
    if "bin" in _hooks:
        return _hooks["bin"]
    b = os.environ.get("VKWS_HOOKS_BIN")
    if not b:
        asan = "asan" in vkws_bin()
        out = "build-hooks-asan" if asan else "build-hooks"
        env = dict(os.environ, CPPFLAGS="-DVKWS_TEST_HOOKS")
        cmd = ["make", "-s", "-j2", "O=" + out, out + "/vkws"]
        if asan:
            cmd.insert(3, "SAN=1")
        # One build at a time: the suite's workers may all ask at once,
        # and two makes writing the same objects can leave a torn one.
        os.makedirs(os.path.join(ROOT, out), exist_ok=True)
        with open(os.path.join(ROOT, out, ".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True,
                               stdin=subprocess.DEVNULL, timeout=600)
        assert r.returncode == 0, r.stderr.decode()[-3000:]
        b = os.path.join(ROOT, out, "vkws")
    _hooks["bin"] = b
    return b


STEPS = ["compact-open", "compact-written", "compact-synced",
         "compact-renamed", "compact-done"]


@pytest.mark.parametrize("step", STEPS)
def test_crash_between_compaction_steps(server, transport, tmp_path,
                                        monkeypatch, step):
    hb = hooks_bin()
    # Some history first, with a normal build.
    s = server(*flags(tmp_path))
    fill(s, 2, "pre")
    assert s.stop() == 0
    monkeypatch.setenv("VKWS_BIN", hb)
    s = start_unchecked(transport, flags(tmp_path, "--log-max", "3000"),
                        {"VKWS_CRASH_AT": step})
    acked, codes = [], []
    try:
        a = Client(s)
        try:
            for i in range(100):
                code, _ = a.chat("c%d" % i)
                codes.append(code)
                acked.append("c%d" % i)
        except (wsraw.Closed, OSError, AssertionError):
            pass            # the crash cut the connection
        a.close()
        assert set(codes) == {0}
        assert reap(s, signal.SIGTERM) == 99, "no crash at %s" % step
    finally:
        reap(s)
    assert "test crash" in s.stderr()
    assert 0 < len(acked) < 100
    monkeypatch.delenv("VKWS_BIN")
    s = server(*flags(tmp_path))
    b = Client(s, "bob")
    want = ["pre%d" % i for i in range(2)] + acked
    got = texts(b.history())
    # Everything acked is there; one message written but not acked
    # (the crash came before its ack) may be there too.
    assert got[:len(want)] == want[-HISTORY:]
    assert len(got) <= len(want) + 1
    assert not os.path.exists(str(tmp_path / "log.tmp"))
    b.close()


# ---- failures -----------------------------------------------------------

def set_fsize(pid, limit):
    _, hard = resource.prlimit(pid, resource.RLIMIT_FSIZE)
    resource.prlimit(pid, resource.RLIMIT_FSIZE, (limit, hard))


def chat_until(a, code, text, limit=200):
    """Chat until the ack has code (bounded by count and time)."""
    deadline = time.monotonic() + DEADLINE
    for i in range(limit):
        got, _ = a.chat("%s%d" % (text, i))
        if got == code:
            return "%s%d" % (text, i)
        assert time.monotonic() < deadline
        time.sleep(0.05)
    raise AssertionError("no ack with code %d" % code)


@pytest.mark.parametrize("mode", ["batch", "always", "never"])
def test_disk_full_then_recovers(server, tmp_path, mode):
    """A file size limit makes every write fail (EFBIG, as ENOSPC would):
    chat gets -7, one log line, and writing resumes when it is lifted."""
    s = server(*flags(tmp_path, "--fsync", mode))
    a = Client(s)
    assert a.chat("before") == (0, 1)
    set_fsize(s.proc.pid, 1)
    try:
        for i in range(5):
            assert a.chat("refused%d" % i)[0] == -7
    finally:
        set_fsize(s.proc.pid, resource.RLIM_INFINITY)
    ok = chat_until(a, 0, "after")
    a.close()
    # The failure line itself may be lost: stderr is a file here, under
    # the same limit. The recovery line counts the failures.
    err = s.stderr()
    assert err.count("cannot write the log") <= 1, err
    assert "written again" in err
    assert s.stop() == 0
    s = server(*flags(tmp_path))
    b = Client(s, "bob")
    h = texts(b.history())
    assert h[0] == "before" and h[-1] == ok
    assert not any(t.startswith("refused") for t in h)
    assert seqs(b.history()) == list(range(1, len(h) + 1))
    b.close()


def test_data_dir_vanishes_then_returns(server, tmp_path):
    d = tmp_path / "data"
    s = server(*flags(d))
    a = Client(s)
    assert a.chat("one") == (0, 1)
    shutil.rmtree(str(d))
    for i in range(5):
        assert a.chat("lost%d" % i)[0] == -7
    os.mkdir(str(d))
    ok = chat_until(a, 0, "back")
    a.close()
    # One log line for the failure, however many requests it refused.
    err = s.stderr()
    assert err.count("store: log file is gone") == 1, err
    assert err.count("cannot") == 0, err
    assert "written again" in err
    assert os.path.exists(log_path(d))
    assert s.stop() == 0
    s = server(*flags(d))
    b = Client(s, "bob")
    h = texts(b.history())
    assert h[0] == "one" and h[-1] == ok
    assert not any(t.startswith("lost") for t in h)
    b.close()


def test_unreadable_log_refuses_to_start(tmp_path, transport):
    os.mkdir(log_path(tmp_path))        # a directory where the log goes
    p = subprocess.run([vkws_bin(), "--listen", "127.0.0.1:0"] +
                       flags(tmp_path), cwd=ROOT, stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=DEADLINE)
    assert p.returncode == 1
    assert b"store:" in p.stderr


@pytest.fixture
def small_fs(tmp_path):
    """A 256 KiB tmpfs, so the disk is really full (ENOSPC); skipped
    where mounting is not allowed."""
    mnt = tmp_path / "mnt"
    os.mkdir(str(mnt))
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs",
                        str(mnt)], capture_output=True,
                       stdin=subprocess.DEVNULL, timeout=DEADLINE)
    if r.returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], capture_output=True,
                   stdin=subprocess.DEVNULL, timeout=DEADLINE)


def test_real_disk_full_then_remount(server, small_fs):
    d = small_fs / "data"
    s = server(*flags(d, "--history", "50", "--log-max", "100000000"))
    a = Client(s)
    big = "x" * 3000
    full = None
    for i in range(200):
        code, _ = a.chat("%d %s" % (i, big))
        if code == -7:
            full = i
            break
        assert code == 0
    assert full is not None, "the 256 KiB disk never filled"
    assert a.chat("refused")[0] == -7
    subprocess.run(["mount", "-o", "remount,size=4m", str(small_fs)],
                   check=True, stdin=subprocess.DEVNULL, timeout=DEADLINE)
    ok = chat_until(a, 0, "after")
    a.close()
    err = s.stderr()
    assert err.count("store: cannot write the log") == 1, err
    assert "No space left" in err and "written again" in err
    assert s.stop() == 0
    s = server(*flags(d))
    b = Client(s, "bob")
    h = texts(b.history())
    assert h[-1] == ok and "refused" not in h
    # The messages acked before the disk filled that the history keeps.
    assert h[-2].startswith("%d " % (full - 1))
    b.close()
    assert s.stop() == 0
