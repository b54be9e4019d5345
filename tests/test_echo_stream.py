"""
/echo streams messages of any size (issue 13, item 6): an Autobahn-style
battery in the shapes of the Autobahn|TestSuite cases that failed while
/echo closed 1009 past VKWS_MAX_MSG, and of the 6.4.x cases that were
non-strict:

- 1.1.6-1.1.8, 1.2.6-1.2.8: 65535 and 65536 bytes, whole and chopped;
- 9.1, 9.2: one frame of 64 KiB to 16 MiB, text and binary;
- 9.3, 9.4: 4 MiB in fragments of 64 bytes to 4 MiB;
- 9.5, 9.6: 1 MiB in one frame sent in chops of 64 to 2048 bytes;
- 10.1.1: 64 KiB in 1300-byte fragments;
- pings between fragments, one-byte writes, a close from either side in
  the middle of a large message;
- 6.4.1-6.4.4 and larger: invalid UTF-8 at the start, middle and end of
  a large text frame closes 1007 while the client still holds the rest
  of the frame (that is what Autobahn calls strict);
- the 16 MiB case with the server's VmRSS read before and after (it must
  not grow by anything like the message), and a client that does not
  read: the server stops reading it (its send queue is full), drops
  nothing and holds no more than its buffers.

The server echoes each piece of a frame as it reads it, as a fragment of
its own (RFC 6455 5.4), so every check here is on the message: the first
frame has the opcode sent, the others are continuations, the last one has
FIN, and the bytes are the bytes sent, in order. A frame may be cut at
any point, also inside a UTF-8 sequence.

The raw client is written on asyncio streams, so one task writes while
another reads (the echo comes back while the message is still being
sent), over TCP or TLS alike; python3-websockets is a second, independent
client. Every wait has a deadline (conftest.run) and every loop a bound.
"""

import asyncio
import os
import random
import signal
import socket
import struct

import pytest

import wsraw
from wsraw import (OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_PONG, OP_TEXT,
                   build_frame, frame_header, mask_bytes)
import conftest
from conftest import run

KIB = 1024
MIB = 1024 * KIB
MAX_MSG = 16384          # VKWS_MAX_MSG: the limit of /ws, not of /echo

CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_BAD_DATA = 1007
CLOSE_TOO_BIG = 1009

READ_LIMIT = 1 << 20     # no server frame is larger than this


# ---- payloads --------------------------------------------------------------

_TEXT_UNIT = "Hello-\u03ba\u1f79\u03c3\u03bc\u03b5-\u20ac-\U0001F600 ".encode()


def text_of(n):
    """n bytes of valid UTF-8 mixing 1- to 4-byte characters."""
    reps = n // len(_TEXT_UNIT) + 1
    out = (_TEXT_UNIT * reps)[:n]
    # Cut back to a character boundary, then pad with ASCII.
    k = len(out)
    while k > 0 and (out[k - 1] & 0xC0) == 0x80:
        k -= 1
    if k > 0 and out[k - 1] >= 0xC0:
        k -= 1
    out = out[:k] + b"x" * (n - k)
    assert len(out) == n
    out.decode("utf-8")
    return out


def binary_of(n, seed=1):
    return random.Random(seed * 1000003 + n).randbytes(n)


def payload_of(kind, n):
    return text_of(n) if kind == "text" else binary_of(n)


def opcode_of(kind):
    return OP_TEXT if kind == "text" else OP_BINARY


def one_frame(op, data, fin=True):
    """A masked frame, masked in one pass (fast for megabytes)."""
    hdr, key = frame_header(op, len(data), fin=fin)
    return hdr + mask_bytes(data, key)


def fragmented(op, data, size):
    """data as one message in fragments of size bytes."""
    out = []
    n = len(data)
    for off in range(0, max(n, 1), size):
        last = off + size >= n
        out.append(one_frame(op if off == 0 else OP_CONT,
                             data[off:off + size], fin=last))
    return b"".join(out)


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS for %d" % pid)


@pytest.fixture
def plain_echo(request, _echo_pool):
    """The shared --echo server over plain TCP, whatever the transport of
    the run: the long Autobahn 9.x matrices run over TCP only, and a
    subset of each (same code path, one more transport) over TLS too."""
    s = _echo_pool.get("plain")
    if s is not None and not s.alive():
        s.proc.wait()
        _echo_pool.pop("plain")
        s = None
    if s is None:
        s = conftest.Server(conftest.Transport(), ["--echo"])
        _echo_pool["plain"] = s
    request.node._vkws_servers = [s]
    yield s
    if not s.alive():
        rc = s.proc.wait()
        _echo_pool.pop("plain", None)
        pytest.fail("the shared echo server died during this test "
                    "(exit code %r); stderr:\n%s" % (rc, s.stderr()),
                    pytrace=False)


# ---- an asyncio raw client --------------------------------------------------

class Client:
    """A WebSocket client on asyncio streams: raw frames out, server
    frames in, over the server's transport (TCP or TLS)."""

    def __init__(self, reader, writer):
        self.r = reader
        self.w = writer

    @classmethod
    async def open(cls, srv, path="/echo", rcvbuf=None):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        await asyncio.wait_for(loop.sock_connect(sock, (srv.host,
                                                        srv.port)), 5)
        ctx = srv.transport.ssl_context()
        kw = {"ssl": ctx, "server_hostname": srv.host} if ctx else {}
        r, w = await asyncio.wait_for(asyncio.open_connection(
            sock=sock, limit=4 * READ_LIMIT, **kw), 5)
        c = cls(r, w)
        key = wsraw.new_key()
        w.write(("GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\n"
                 "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                 "Sec-WebSocket-Version: 13\r\n\r\n" % (
                     path, srv.host, key)).encode("ascii"))
        head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 5)
        status, reason, headers = wsraw.parse_head(head[:-4])
        wsraw.check_upgrade(wsraw.Response(status, reason, headers, head),
                            key)
        return c

    def close(self):
        self.w.close()

    async def send(self, data, chop=None):
        """Write data in writes of chop bytes (all at once without)."""
        if chop is None:
            self.w.write(data)
            await self.w.drain()
            return
        mv = memoryview(data)
        for off in range(0, len(data), chop):
            self.w.write(mv[off:off + chop])
            await self.w.drain()

    async def frame(self, timeout=None):
        """(fin, opcode, payload) of the next server frame: never masked,
        no RSV bits, the shortest length form. With a timeout, within it;
        without, the caller's deadline bounds the wait (a wait_for per
        frame costs more than the rest of the frame's handling)."""
        if timeout is not None:
            return await asyncio.wait_for(self.frame(), timeout)
        h = await self.r.readexactly(2)
        fin, op, n = h[0] & 0x80, h[0] & 0x0F, h[1] & 0x7F
        assert h[0] & 0x70 == 0, "RSV bits in %r" % h
        assert h[1] & 0x80 == 0, "a masked server frame"
        if n == 126:
            n = struct.unpack("!H", await self.r.readexactly(2))[0]
            assert n > 125, "non-shortest 16-bit length"
        elif n == 127:
            n = struct.unpack("!Q", await self.r.readexactly(8))[0]
            assert n > 0xFFFF, "non-shortest 64-bit length"
        assert n <= READ_LIMIT, "a server frame of %d bytes" % n
        if op in (OP_CLOSE, OP_PING, OP_PONG):
            assert fin and n <= 125, "bad control frame"
        payload = await self.r.readexactly(n)
        return bool(fin), op, payload

    async def expect_message(self, op, data, pongs=()):
        """Read one echoed message and check it, piece by piece, against
        data; pongs (payloads, in order) may come between its frames.
        Returns the number of data frames it came in. The caller bounds
        the wait."""
        pongs = list(pongs)
        off = 0
        frames = 0
        mv = memoryview(data)
        while True:
            fin, fop, p = await self.frame()
            if fop == OP_PONG:
                assert pongs, "unexpected pong %r" % p[:20]
                assert p == pongs.pop(0), "pong out of order: %r" % p
                continue
            assert fop != OP_CLOSE, "close %r after %d of %d bytes" % (
                p[:40], off, len(data))
            want = op if frames == 0 else OP_CONT
            assert fop == want, "frame %d has opcode %#x, expected %#x" % (
                frames, fop, want)
            assert mv[off:off + len(p)] == p, \
                "echo differs in bytes %d..%d" % (off, off + len(p))
            off += len(p)
            frames += 1
            assert frames <= len(data) + 1
            if fin:
                break
        assert off == len(data), "echo of %d bytes, sent %d" % (
            off, len(data))
        while pongs:
            fin, fop, p = await self.frame()
            assert fop == OP_PONG and p == pongs.pop(0), (fop, p[:20])
        return frames

    async def expect_close(self, code, sent=b"", timeout=10.0,
                           before_reply=b""):
        """Read until a close frame with code: data frames before it must
        be a non-final echo of a prefix of sent. Answers the close (after
        before_reply: the rest of a frame the client is in the middle of)
        and waits for EOF. Returns the echoed bytes."""
        echoed = bytearray()
        for _ in range(1 << 20):
            fin, op, p = await self.frame(timeout)
            if op == OP_CLOSE:
                break
            assert op in (OP_TEXT, OP_BINARY, OP_CONT), (op, p[:20])
            assert not fin, "a whole message was echoed before the close"
            echoed += p
            assert sent[:len(echoed)] == echoed, "echo is not a prefix"
        got = struct.unpack("!H", p[:2])[0] if len(p) >= 2 else None
        assert got == code, "close code %r (%r), expected %r" % (
            got, p[2:], code)
        try:
            self.w.write(before_reply + build_frame(OP_CLOSE, p[:2]))
            await self.w.drain()
        except (ConnectionError, OSError):
            pass
        rest = await asyncio.wait_for(self.r.read(), timeout)
        assert rest == b"", "bytes after the close frame: %r" % rest[:40]
        return bytes(echoed)


async def echo_check(srv, op, data, wire, chop, pongs=(), timeout=60.0):
    """Send wire (the frames of one message) in chops while another task
    reads the echo; check it is data with op; return its frame count."""
    c = await Client.open(srv)
    try:
        reader = asyncio.ensure_future(c.expect_message(op, data, pongs))
        try:
            await asyncio.wait_for(c.send(wire, chop), timeout)
            frames = await asyncio.wait_for(reader, timeout)
        finally:
            reader.cancel()
        # The connection is still open and serves the next message.
        c.w.write(one_frame(OP_TEXT, b"after"))
        await asyncio.wait_for(c.expect_message(OP_TEXT, b"after"), 10)
        return frames
    finally:
        c.close()


# ---- 1.1.6-1.1.8, 1.2.6-1.2.8, 9.1, 9.2: one frame ---------------------------

@pytest.mark.parametrize("kind", ["text", "binary"])
@pytest.mark.parametrize("size", [64 * KIB, 1 * MIB])
def test_single_frame(echo_server, kind, size):
    """One frame of 64 KiB or 1 MiB, written 64 KiB at a time: echoed
    whole, as it arrives."""
    data = payload_of(kind, size)
    op = opcode_of(kind)
    run(echo_check(echo_server, op, data, one_frame(op, data), 64 * KIB),
        60)


@pytest.mark.parametrize("kind", ["text", "binary"])
@pytest.mark.parametrize("size", [65535, 64 * KIB, 256 * KIB, 1 * MIB,
                                  4 * MIB])
def test_single_frame_matrix(plain_echo, kind, size):
    """9.1.1-9.1.4 / 9.2.1-9.2.4 and 1.1.6-1.1.7 / 1.2.6-1.2.7 (TCP; 16 MiB
    is test_16mib_bounded_memory)."""
    data = payload_of(kind, size)
    op = opcode_of(kind)
    run(echo_check(plain_echo, op, data, one_frame(op, data), 64 * KIB),
        60)


@pytest.mark.parametrize("kind", ["text", "binary"])
def test_64k_chopped_997(echo_server, kind):
    """Autobahn 1.1.8 / 1.2.8: 65536 bytes in one frame, sent in chops of
    997 bytes (so chops cut the header and UTF-8 sequences too)."""
    data = payload_of(kind, 64 * KIB)
    op = opcode_of(kind)
    run(echo_check(echo_server, op, data, one_frame(op, data), 997), 30)


# ---- 9.3, 9.4: 4 MiB in fragments --------------------------------------------

@pytest.mark.parametrize("kind", ["text", "binary"])
def test_fragmented_4mib(echo_server, kind):
    """4 MiB as one message in 64 KiB fragments: echoed fragment by
    fragment, one message with the same bytes."""
    data = payload_of(kind, 4 * MIB)
    op = opcode_of(kind)
    frames = run(echo_check(echo_server, op, data,
                            fragmented(op, data, 64 * KIB), 64 * KIB), 90)
    assert frames >= len(data) // (64 * KIB)


FRAGMENT_MATRIX = (
    [("text", f) for f in (64, 256, 1 * KIB, 4 * KIB, 16 * KIB, 64 * KIB,
                           256 * KIB, 1 * MIB, 4 * MIB)] +
    [("binary", f) for f in (64, 16 * KIB, 4 * MIB)])


@pytest.mark.parametrize("kind,frag", FRAGMENT_MATRIX)
def test_fragmented_matrix(plain_echo, kind, frag):
    """9.3.1-9.3.9 (text, every fragment size) and 9.4.x (binary, three of
    them), over TCP: 4 MiB in fragments of 1 KiB to 4 MiB; 256 KiB in
    64-byte and 1 MiB in 256-byte fragments, to keep the run short. Each
    fragment is echoed as one frame or more, so the echo has at least as
    many frames as were sent."""
    data = payload_of(kind, min(4 * MIB, frag * 4096))
    op = opcode_of(kind)
    frames = run(echo_check(plain_echo, op, data,
                            fragmented(op, data, frag), 64 * KIB), 90)
    assert frames >= len(data) // frag


def test_fragmented_10_1_1(echo_server):
    """10.1.1: 64 KiB of text auto-fragmented at 1300 bytes."""
    data = text_of(64 * KIB)
    run(echo_check(echo_server, OP_TEXT, data,
                   fragmented(OP_TEXT, data, 1300), 64 * KIB), 30)


def test_fragmented_16mib(plain_echo):
    """16 MiB of text in 1 MiB fragments, over TCP."""
    data = text_of(16 * MIB)
    run(echo_check(plain_echo, OP_TEXT, data,
                   fragmented(OP_TEXT, data, 1 * MIB), 64 * KIB), 120)


# ---- 9.5, 9.6: 1 MiB chopped --------------------------------------------------

@pytest.mark.parametrize("kind,chop", [("text", c) for c in (
    64, 128, 256, 512, 1024, 2048)] + [("binary", 64), ("binary", 2048)])
def test_1mib_chopped(plain_echo, kind, chop):
    """9.5.1-9.5.6 (text) and 9.6.x (binary, two of them), over TCP:
    1 MiB in one frame, written chop bytes at a time."""
    data = payload_of(kind, 1 * MIB)
    op = opcode_of(kind)
    run(echo_check(plain_echo, op, data, one_frame(op, data), chop), 90)


def test_one_byte_writes(echo_server):
    """20 KiB of text (past VKWS_MAX_MSG) in three fragments, every byte
    of every header and payload its own write (a blocking socket: the
    echo fits in the socket buffers until it is read)."""
    one_byte_writes(echo_server, "text")


def test_one_byte_writes_binary(plain_echo):
    """The same in binary, over TCP."""
    one_byte_writes(plain_echo, "binary")


def one_byte_writes(srv, kind):
    data = payload_of(kind, 20 * KIB)
    op = opcode_of(kind)
    wire = fragmented(op, data, 7 * KIB)
    c = srv.ws(timeout=20)
    try:
        for i in range(len(wire)):
            c.send(wire[i:i + 1])
        got_op, got, count = c.recv_message(20)
        assert got_op == op and got == data, (got_op, len(got))
        assert count >= 3
    finally:
        c.close()


# ---- pings between fragments ---------------------------------------------------

@pytest.mark.parametrize("kind", ["text", "binary"])
def test_pings_between_fragments(echo_server, kind):
    """1 MiB in 64 KiB fragments with a ping after each: every pong comes,
    in order, with its payload, between the frames of the echo."""
    data = payload_of(kind, 1 * MIB)
    op = opcode_of(kind)
    frag = 64 * KIB
    wire = []
    pongs = []
    for i, off in enumerate(range(0, len(data), frag)):
        last = off + frag >= len(data)
        wire.append(one_frame(op if off == 0 else OP_CONT,
                              data[off:off + frag], fin=last))
        if not last:
            pongs.append(b"ping %d" % i)
            wire.append(build_frame(OP_PING, pongs[-1]))
    run(echo_check(echo_server, op, data, b"".join(wire), 4096, pongs), 60)


def test_ping_inside_split_character(echo_server):
    """A text message whose fragments split a 4-byte character, with a
    ping between the halves, 64 KiB on each side."""
    left = text_of(64 * KIB) + "\U0001F600".encode()[:2]
    right = "\U0001F600".encode()[2:] + text_of(64 * KIB)
    wire = (one_frame(OP_TEXT, left, fin=False) + build_frame(OP_PING, b"p")
            + one_frame(OP_CONT, right))
    run(echo_check(echo_server, OP_TEXT, left + right, wire, 1000, [b"p"]),
        30)


# ---- python3-websockets as the client -------------------------------------------

def library_echo(srv, kind, size):
    data = payload_of(kind, size)
    msg = data.decode("utf-8") if kind == "text" else data

    async def go():
        async with srv.ws_connect(max_size=None) as ws:
            await ws.send(msg)
            got = await asyncio.wait_for(ws.recv(), 60)
            assert type(got) is type(msg) and got == msg
    run(go(), 90)


@pytest.mark.parametrize("kind", ["text", "binary"])
def test_library_client(echo_server, kind):
    """python3-websockets sends 1 MiB in one frame and reassembles the
    echo."""
    library_echo(echo_server, kind, 1 * MIB)


@pytest.mark.parametrize("size", [64 * KIB, 4 * MIB])
@pytest.mark.parametrize("kind", ["text", "binary"])
def test_library_client_sizes(plain_echo, kind, size):
    library_echo(plain_echo, kind, size)


@pytest.mark.parametrize("kind", ["text", "binary"])
def test_library_fragmented(echo_server, kind):
    """python3-websockets sends a 1 MiB message as 17 fragments (from an
    iterable), then a small one; both come back exact."""
    data = payload_of(kind, 1 * MIB + 3)
    # Text fragments must each be str: cut at character boundaries.
    if kind == "text":
        s = data.decode("utf-8")
        parts = [s[i:i + 30000] for i in range(0, len(s), 30000)]
        msg = s
    else:
        parts = [data[i:i + 64 * KIB] for i in range(0, len(data),
                                                     64 * KIB)]
        msg = data

    async def go():
        async with echo_server.ws_connect(max_size=None) as ws:
            await ws.send(parts)
            got = await asyncio.wait_for(ws.recv(), 60)
            assert got == msg
            await ws.send("next")
            assert await asyncio.wait_for(ws.recv(), 10) == "next"
    run(go(), 90)


# ---- 6.4.x: invalid UTF-8 fails fast -------------------------------------------

BAD_UTF8 = {
    "ff": b"\xff",
    "surrogate": b"\xed\xa0\x80",
    "above-10ffff": b"\xf4\x90\x80\x80",
    "overlong": b"\xc0\xaf",
}


async def bad_then_hold(srv, wire_sent, sent_payload, timeout=10.0):
    """Send wire_sent and hold back the rest of the frame: the close 1007
    must come anyway; what was echoed before it is a prefix of the
    payload. Returns the echoed bytes."""
    c = await Client.open(srv)
    try:
        reader = asyncio.ensure_future(c.expect_close(CLOSE_BAD_DATA,
                                                      sent_payload,
                                                      timeout))
        await c.send(wire_sent, 4096)
        return await asyncio.wait_for(reader, timeout + 5)
    finally:
        c.close()


@pytest.mark.parametrize("where", ["start", "middle", "end"])
def test_utf8_bad_in_large_frame_fails_fast(echo_server, where):
    """A 1 MiB text frame with an invalid byte at its start, middle or
    end: the client sends the frame up to that byte and holds the rest
    (at the end: its last byte); the close 1007 comes before it, and no
    byte at or after the invalid one is echoed."""
    bad_in_large_frame(echo_server, where, "ff")


@pytest.mark.parametrize("bad", ["surrogate", "above-10ffff", "overlong"])
@pytest.mark.parametrize("where", ["start", "middle", "end"])
def test_utf8_bad_sequences_in_large_frame(plain_echo, where, bad):
    """As above with each kind of invalid sequence, over TCP."""
    bad_in_large_frame(plain_echo, where, bad)


def bad_in_large_frame(srv, where, bad):
    n = 1 * MIB
    seq = BAD_UTF8[bad]
    at = {"start": 0, "middle": n // 2, "end": n - len(seq) - 1}[where]
    data = bytearray(text_of(n))
    # Put the sequence on a character boundary, so the bytes before it
    # are valid text on their own.
    while at > 0 and (data[at] & 0xC0) == 0x80:
        at -= 1
    data[at:at + len(seq)] = seq
    data = bytes(data)
    data[:at].decode("utf-8")
    hdr, key = frame_header(OP_TEXT, n)
    wire = hdr + mask_bytes(data, key)
    held = len(wire) - (len(hdr) + at + len(seq))
    assert held >= 1
    echoed = run(bad_then_hold(srv, wire[:len(wire) - held], data), 30)
    assert len(echoed) <= at


def test_utf8_autobahn_6_4_3_chops(echo_server):
    """6.4.3: one text frame sent in three chops (valid, invalid, valid);
    the close comes after the second, the third is never sent."""
    part1 = "\u03ba\u1f79\u03c3\u03bc\u03b5".encode()
    part2 = b"\xf4\x90\x80\x80"
    part3 = "\u03ba\u1f79\u03c3\u03bc\u03b5edited".encode()
    payload = part1 + part2 + part3
    hdr, key = frame_header(OP_TEXT, len(payload))
    wire = hdr + mask_bytes(payload, key)
    sent = wire[:len(hdr) + len(part1) + len(part2)]

    async def go():
        c = await Client.open(echo_server)
        try:
            await c.send(sent[:len(hdr) + len(part1)])
            fin, op, p = await c.frame(10)
            assert (fin, op, p) == (False, OP_TEXT, part1), (fin, op, p)
            await c.send(sent[len(hdr) + len(part1):])
            await c.expect_close(CLOSE_BAD_DATA, payload[len(part1):])
        finally:
            c.close()
    run(go(), 20)


def test_utf8_autobahn_6_4_4_byte_chops(echo_server):
    """6.4.4: as 6.4.3, the invalid sequence one byte per write: the close
    comes after its second byte (F4 90 is already impossible)."""
    part1 = "\u03ba\u1f79\u03c3\u03bc\u03b5".encode()
    payload = part1 + b"\xf4\x90\x80\x80" + b"tail"
    hdr, key = frame_header(OP_TEXT, len(payload))
    wire = hdr + mask_bytes(payload, key)
    cut = len(hdr) + len(part1)

    async def go():
        c = await Client.open(echo_server)
        try:
            await c.send(wire[:cut])
            fin, op, p = await c.frame(10)
            assert (fin, op, p) == (False, OP_TEXT, part1)
            await c.send(wire[cut:cut + 1])     # F4: still a prefix
            await c.send(wire[cut + 1:cut + 2])  # 90: impossible
            # F4 may have been echoed on its own (a fragment may end
            # inside a character); 90 never is.
            echoed = await c.expect_close(CLOSE_BAD_DATA,
                                          payload[len(part1):])
            assert echoed in (b"", b"\xf4")
        finally:
            c.close()
    run(go(), 20)


@pytest.mark.parametrize("kind", ["6.4.1", "6.4.2"])
def test_utf8_bad_fragment_fails_fast(echo_server, kind):
    """6.4.1 / 6.4.2: a valid first fragment of 256 KiB, a second one with
    an invalid sequence (whole, or cut before its last byte); the third is
    never sent."""
    first = text_of(256 * KIB)
    second = b"abc\xf4\x90\x80\x80" + text_of(1000)
    wire = one_frame(OP_TEXT, first, fin=False)
    if kind == "6.4.1":
        wire += one_frame(OP_CONT, second, fin=False)
    else:
        hdr, key = frame_header(OP_CONT, len(second), fin=False)
        wire += (hdr + mask_bytes(second, key))[:len(hdr) + 5]
    echoed = run(bad_then_hold(echo_server, wire, first + second), 30)
    # The valid first fragment is all echoed before the close; of the
    # second at most "abc".
    assert len(first) <= len(echoed) <= len(first) + 3


def test_utf8_message_ends_inside_character(echo_server):
    """A 256 KiB text message whose final fragment ends inside a
    character: 1007, and the echo never gets its FIN."""
    data = text_of(256 * KIB)
    wire = (one_frame(OP_TEXT, data[:100 * KIB], fin=False) +
            one_frame(OP_CONT, data[100 * KIB:] + b"\xe2\x82"))
    run(bad_then_hold(echo_server, wire, data + b"\xe2\x82"), 30)


def test_binary_not_utf8_checked(echo_server):
    """The same bytes as binary are echoed (the check is text only)."""
    data = bytearray(binary_of(1 * MIB))
    data[0:2] = b"\xc0\xaf"
    data = bytes(data)
    run(echo_check(echo_server, OP_BINARY, data, one_frame(OP_BINARY, data),
                   64 * KIB), 30)


# ---- closes in the middle of a large message ------------------------------------

def test_client_close_mid_message(echo_server):
    """The client sends the first 512 KiB fragment of a 1 MiB message,
    then a close: the server echoes the fragment and answers the close at
    once (the echo never gets its FIN)."""
    data = binary_of(1 * MIB)
    wire = one_frame(OP_BINARY, data[:512 * KIB], fin=False)

    async def go():
        c = await Client.open(echo_server)
        try:
            reader = asyncio.ensure_future(c.expect_close(CLOSE_NORMAL,
                                                          data))
            await c.send(wire, 64 * KIB)
            await c.send(build_frame(OP_CLOSE, struct.pack("!H", 1000)))
            echoed = await asyncio.wait_for(reader, 15)
            assert echoed == data[:512 * KIB]
        finally:
            c.close()
    run(go(), 20)


def test_sigterm_close_between_pieces(server):
    """SIGTERM while the client is half way through a 4 MiB frame: the
    server's close 1001 goes out between the pieces of the echo (it is
    not stuck behind a frame whose length it announced), after the bytes
    read so far; the client ends its frame (no longer echoed) and answers
    the close, and the server exits 0."""
    s = server("--echo")
    n = 4 * MIB
    data = binary_of(n)
    hdr, key = frame_header(OP_BINARY, n)
    wire = hdr + mask_bytes(data, key)
    half = len(hdr) + n // 2

    async def go():
        c = await Client.open(s)
        try:
            await c.send(wire[:half], 64 * KIB)
            # The first half comes back before the signal.
            got = 0
            while got < n // 2:
                fin, op, p = await c.frame()
                assert not fin and op == (OP_BINARY if got == 0
                                          else OP_CONT)
                assert p == data[got:got + len(p)]
                got += len(p)
            os.kill(s.proc.pid, signal.SIGTERM)
            await c.expect_close(CLOSE_GOING_AWAY, data[got:],
                                 before_reply=wire[half:])
        finally:
            c.close()
    run(go(), 30)
    assert s.proc.wait(10) == 0


# ---- bounded memory, backpressure ------------------------------------------------

@pytest.mark.parametrize("kind", ["binary", "text"])
def test_16mib_bounded_memory(server, kind):
    """9.1.6 / 9.2.6: one 16 MiB frame, written 64 KiB at a time, comes
    back exact within a bounded wait, and the server's resident memory
    grows by far less than the message (it holds no message whole)."""
    s = server("--echo")
    n = 16 * MIB
    data = payload_of(kind, n)
    op = opcode_of(kind)
    wire = one_frame(op, data)

    async def go():
        # Warm up: one connection and one small echo touch the pages a
        # connection needs at all.
        await echo_check(s, OP_TEXT, b"warm", one_frame(OP_TEXT, b"warm"),
                         None)
        before = rss_kib(s.proc.pid)
        frames = await echo_check(s, op, data, wire, 64 * KIB, timeout=90)
        after = rss_kib(s.proc.pid)
        return before, after, frames
    before, after, frames = run(go(), 120)
    assert after - before < n // 2 // KIB, \
        "VmRSS grew from %d to %d KiB for a %d KiB message" % (
            before, after, n // KIB)
    # Streamed: the echo came in pieces of at most a read each (a
    # receive buffer, about 16 KiB), not as one frame.
    assert frames >= n // (64 * KIB)


def server_rx_queue(server_port, client_port):
    """Bytes the kernel holds for the server, unread, on its end of the
    loopback connection from client_port (/proc/net/tcp), or None."""
    lo = "%08X" % struct.unpack("=I", socket.inet_aton("127.0.0.1"))[0]
    local = "%s:%04X" % (lo, server_port)
    remote = "%s:%04X" % (lo, client_port)
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            parts = line.split()
            if parts[1] == local and parts[2] == remote:
                return int(parts[4].split(":")[1], 16)
    return None


def test_backpressure_client_not_reading(server):
    """A client that sends a 16 MiB frame and reads nothing: the server
    echoes until its send queue is full, then stops reading (the bytes
    the client sent wait unread in the server's socket, and stay there),
    holds no more memory than its buffers, closes nothing, and serves
    another client meanwhile. Once the client reads, every byte comes
    back in order."""
    s = server("--echo")
    n = 16 * MIB
    data = binary_of(n)
    wire = one_frame(OP_BINARY, data)

    async def go():
        await echo_check(s, OP_TEXT, b"warm", one_frame(OP_TEXT, b"warm"),
                         None)
        before = rss_kib(s.proc.pid)
        c = await Client.open(s, rcvbuf=4096)
        port = c.w.get_extra_info("sockname")[1]

        async def writer():
            for off in range(0, len(wire), 64 * KIB):
                c.w.write(wire[off:off + 64 * KIB])
                await c.w.drain()
        w = asyncio.ensure_future(writer())
        try:
            # Wait (bounded) until the server has stopped reading: unread
            # bytes in its socket, the same count for a second. (Whether
            # the client's writes stall too depends on how large the
            # kernel lets socket buffers grow.)
            last, still = None, 0
            for _ in range(600):
                await asyncio.sleep(0.05)
                q = server_rx_queue(s.port, port)
                still = still + 1 if q and q == last else 0
                last = q
                if still >= 20:
                    break
            assert still >= 20, "the server kept reading from a client " \
                "that reads nothing (unread: %r)" % last
            assert s.alive()
            mid = rss_kib(s.proc.pid)
            assert mid - before < n // 2 // KIB, \
                "VmRSS grew from %d to %d KiB" % (before, mid)
            # Another client is served while this one is stalled.
            await echo_check(s, OP_BINARY, binary_of(100 * KIB),
                             one_frame(OP_BINARY, binary_of(100 * KIB)),
                             None, timeout=20)
            # Now read (with a larger window): everything comes back,
            # nothing was dropped.
            c.w.get_extra_info("socket").setsockopt(
                socket.SOL_SOCKET, socket.SO_RCVBUF, 1 * MIB)
            frames = await asyncio.wait_for(
                c.expect_message(OP_BINARY, data), 90)
            await asyncio.wait_for(w, 10)
            after = rss_kib(s.proc.pid)
            assert after - before < n // 2 // KIB
            return frames
        finally:
            w.cancel()
            c.close()
    run(go(), 150)


# ---- /ws keeps its limit --------------------------------------------------------

@pytest.mark.parametrize("length", [MAX_MSG + 1, 1 * MIB])
def test_chat_endpoint_keeps_limit(server, length):
    """/ws still closes 1009 at the header of a frame past VKWS_MAX_MSG,
    while /echo takes the same frame."""
    s = server("--echo")
    hdr, key = frame_header(OP_BINARY, length)
    c = s.ws("/ws")
    try:
        c.send(hdr)
        c.expect_close(CLOSE_TOO_BIG)
    finally:
        c.close()
    data = binary_of(length)
    run(echo_check(s, OP_BINARY, data, hdr + mask_bytes(data, key),
                   64 * KIB), 30)


# ---- sections 12/13: no compression ------------------------------------------

def test_no_compression_negotiated(echo_server):
    """permessage-deflate is not implemented (README): an offer gets a 101
    without Sec-WebSocket-Extensions (wsraw checks it), and a frame with
    RSV1, the compressed bit, is a protocol error."""
    c = echo_server.ws(headers=[
        "Sec-WebSocket-Extensions: permessage-deflate; "
        "client_max_window_bits, x-webkit-deflate-frame"])
    try:
        c.send(build_frame(OP_TEXT, b"\xf2\x48\xcd\xc9\xc9\x07\x00",
                           rsv=4))
        c.expect_close(1002)
    finally:
        c.close()

    async def go():
        async with echo_server.ws_connect(compression="deflate") as ws:
            assert ws.extensions == []
            await ws.send("x" * 100000)
            assert await asyncio.wait_for(ws.recv(), 10) == "x" * 100000
    run(go())
