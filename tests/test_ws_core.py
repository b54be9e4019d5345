"""
RFC 6455 conformance of GET /echo, in the spirit of the Autobahn TestSuite
sections 1-7 and 9: echo of text and binary across the length encodings,
fragmentation, control frames, UTF-8 (whole, across fragments, across TCP
writes), the close handshake, the VKWS_MAX_MSG limit of /ws, and the
connection-level behaviour: deadlines, a client that does not read,
--max-conns, many clients at once, SIGTERM.

/echo streams (README, "RFC 6455 conformance"): each piece of a message
is echoed as soon as it is read, as a fragment of its own, so the checks
here are on messages (opcode and bytes), pongs may come between the
fragments of an echo, and the valid start of a message that is then
refused comes back before the close. tests/test_echo_stream.py has the
large-message battery.

Frames a library refuses to send go through wsraw; everything else also
goes through python3-websockets.
"""

import asyncio
import os
import select
import signal
import socket
import ssl
import struct
import time

import pytest
import websockets

import wsraw
from wsraw import (OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_PONG, OP_TEXT,
                   build_frame, close_payload, frame_header)
from conftest import run

MAX_MSG = 16384         # VKWS_MAX_MSG in vkws.h

CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_PROTOCOL = 1002
CLOSE_BAD_DATA = 1007
CLOSE_TOO_BIG = 1009
CLOSE_TRY_AGAIN = 1013
CLOSE_IDLE = 4002


def text_of(n):
    """Exactly n bytes of valid UTF-8 mixing 1- to 4-byte sequences."""
    chunks = ["a", "\u00e9", "\u20ac", "\U0001F600", "z"]
    out = bytearray()
    i = 0
    while len(out) < n:
        c = chunks[i % len(chunks)].encode("utf-8")
        if len(out) + len(c) > n:
            c = b"x" * (n - len(out))
        out += c
        i += 1
    assert len(out) == n
    return bytes(out)


def binary_of(n):
    return bytes((i * 7 + 3) & 0xFF for i in range(n))


def payload_of(kind, n):
    return text_of(n) if kind == "text" else binary_of(n)


def opcode_of(kind):
    return OP_TEXT if kind == "text" else OP_BINARY


def send_fragments(conn, opcode, pieces, pause=0.0):
    """Send pieces as one fragmented message (first frame opcode, then
    continuations), optionally one TCP write per frame with a pause."""
    frames = []
    for i, p in enumerate(pieces):
        frames.append(build_frame(opcode if i == 0 else OP_CONT, p,
                                  fin=(i == len(pieces) - 1)))
    if pause:
        for f in frames:
            conn.send(f)
            time.sleep(pause)
    else:
        conn.send(b"".join(frames))


def expect_echo_whole(conn, opcode, payload, timeout=5.0, pongs=()):
    """The echo of a (possibly fragmented) message: one whole message with
    the same opcode and payload, in one frame or more (the first with the
    opcode, the others continuations, FIN on the last); pongs (payloads,
    in order) may come between its frames and are all read."""
    pongs = list(pongs)
    deadline = time.monotonic() + timeout
    data = bytearray()
    count = 0
    while True:
        f = conn.recv_frame(max(0.001, deadline - time.monotonic()))
        if f.opcode == OP_PONG and pongs:
            assert f.payload == pongs.pop(0), f
            continue
        want = opcode if count == 0 else OP_CONT
        assert f.opcode == want, "frame %d of the echo: %r" % (count, f)
        data += f.payload
        count += 1
        assert count < 100000
        if f.fin:
            break
    assert bytes(data) == payload, "echo differs: %d bytes, sent %d" % (
        len(data), len(payload))
    while pongs:
        f = conn.recv_frame(max(0.001, deadline - time.monotonic()))
        assert f.opcode == OP_PONG and f.payload == pongs.pop(0), f


def expect_close_after_echo(conn, code, sent, reply=True):
    """The close with code, after the echo of the valid start of what was
    sent: fragments of a message that never ends, whose bytes are a prefix
    of sent. Returns those bytes."""
    echoed = bytearray()
    for _ in range(10000):
        f = conn.recv_frame()
        if f.opcode == OP_CLOSE:
            break
        assert f.opcode in (OP_TEXT, OP_BINARY, OP_CONT) and not f.fin, f
        echoed += f.payload
    assert bytes(echoed) == sent[:len(echoed)], (bytes(echoed), sent)
    # Hand the close frame (unmasked, at most 125 bytes) back to
    # expect_close(), which checks it and the end of the connection.
    conn.buf[0:0] = bytes([0x88, len(f.payload)]) + f.payload
    conn.expect_close(code, reply=reply)
    return bytes(echoed)


# ---- 1.x: echo through python3-websockets ------------------------------

ECHO_SIZES = [0, 1, 125, 126, 127, 1000, MAX_MSG - 1, MAX_MSG]


@pytest.mark.parametrize("kind", ["text", "binary"])
@pytest.mark.parametrize("size", ECHO_SIZES)
def test_echo_library(echo_server, kind, size):
    msg = payload_of(kind, size)
    if kind == "text":
        msg = msg.decode("utf-8")

    async def go():
        async with echo_server.ws_connect() as ws:
            await ws.send(msg)
            got = await asyncio.wait_for(ws.recv(), 5)
            assert type(got) is type(msg)
            assert got == msg
    run(go())


@pytest.mark.parametrize("kind", ["text", "binary"])
@pytest.mark.parametrize("size", [MAX_MSG + 1, 65535, 65536])
def test_past_chat_limit_library(echo_server, kind, size):
    """/echo has no message limit (it holds no message): one byte past
    VKWS_MAX_MSG and Autobahn 1.1.6/1.1.7 sizes are echoed."""
    msg = payload_of(kind, size)
    if kind == "text":
        msg = msg.decode("utf-8")

    async def go():
        async with echo_server.ws_connect() as ws:
            await ws.send(msg)
            got = await asyncio.wait_for(ws.recv(), 5)
            assert type(got) is type(msg) and got == msg
    run(go())


def test_echo_library_many_messages(echo_server):
    async def go():
        async with echo_server.ws_connect() as ws:
            for i in range(200):
                m = "message %d %s" % (i, "\u03ba" * (i % 17))
                await ws.send(m)
                assert await asyncio.wait_for(ws.recv(), 5) == m
    run(go())


def test_subprotocol_library(echo_server):
    async def go():
        async with echo_server.ws_connect(
                subprotocols=["chat", "vkws.json"]) as ws:
            assert ws.subprotocol == "vkws.json"
            await ws.send("x")
            assert await asyncio.wait_for(ws.recv(), 5) == "x"
    run(go())


def test_close_library(echo_server):
    async def go():
        ws = await echo_server.ws_connect()
        await ws.close(code=4000, reason="done")
        assert ws.close_code == 4000
    run(go())


# ---- 1.x raw: the server's own length encoding --------------------------

@pytest.mark.parametrize("size,hdr", [(0, 2), (125, 2), (126, 4),
                                      (127, 4), (MAX_MSG, 4)])
def test_echo_raw_shortest_length(echo_server, size, hdr):
    """Every frame of the echo has its length in the shortest form. A
    frame that spans reads (over TLS a 16 KiB frame spans two records)
    is echoed in pieces, each with the header of its own length."""
    c = echo_server.ws()
    try:
        c.send_binary(binary_of(size))
        data = b""
        while True:
            f = c.recv_frame()
            assert f.opcode == (OP_CONT if data else OP_BINARY), f
            n = len(f.payload)
            assert f.header_len == (2 if n <= 125 else 4), f
            data += f.payload
            if f.fin:
                break
            assert len(data) < size, f
        assert data == binary_of(size)
        if len(data) == n:
            assert f.header_len == hdr
    finally:
        c.close()


def test_echo_zero_mask_key(echo_server):
    c = echo_server.ws()
    try:
        c.send_text(b"unmasked by a zero key", mask_key=b"\0\0\0\0")
        expect_echo_whole(c, OP_TEXT, b"unmasked by a zero key")
    finally:
        c.close()


# ---- 9.x-style limits: VKWS_MAX_MSG of /ws and one byte past ---------------
# /echo streams and has no message limit; /ws (unauthenticated here: the
# frame limit comes before the chat protocol) keeps VKWS_MAX_MSG.

def test_too_big_header_only_1mb(echo_server):
    """The server refuses at the header, before any payload arrives."""
    c = echo_server.ws("/ws")
    try:
        hdr, _ = frame_header(OP_BINARY, 1 << 20)
        c.send(hdr)
        c.expect_close(CLOSE_TOO_BIG)
    finally:
        c.close()


@pytest.mark.parametrize("kind", ["text", "binary"])
def test_too_big_header_only_limit_plus_one(echo_server, kind):
    c = echo_server.ws("/ws")
    try:
        hdr, _ = frame_header(opcode_of(kind), MAX_MSG + 1)
        c.send(hdr)
        c.expect_close(CLOSE_TOO_BIG)
    finally:
        c.close()


def test_too_big_header_only_64bit(echo_server):
    c = echo_server.ws("/ws")
    try:
        hdr, _ = frame_header(OP_TEXT, 1 << 40)
        c.send(hdr)
        c.expect_close(CLOSE_TOO_BIG)
    finally:
        c.close()


def test_length_top_bit_set(echo_server):
    """RFC 6455 5.2: the most significant bit of a 64-bit length MUST be 0."""
    c = echo_server.ws()
    try:
        hdr, _ = frame_header(OP_BINARY, (1 << 63) | 5, length_form=64)
        c.send(hdr + b"\0" * 5)
        c.expect_close(CLOSE_PROTOCOL)
    finally:
        c.close()


def test_fragments_sum_exactly_limit(echo_server):
    c = echo_server.ws()
    try:
        msg = text_of(MAX_MSG)
        pieces = [msg[i:i + 1024] for i in range(0, MAX_MSG, 1024)]
        send_fragments(c, OP_TEXT, pieces)
        expect_echo_whole(c, OP_TEXT, msg)
    finally:
        c.close()


def test_fragments_sum_over_limit(echo_server):
    """The continuation that takes the message past the limit is refused
    at its header."""
    c = echo_server.ws("/ws")
    try:
        c.send_binary(binary_of(10000), fin=False)
        hdr, _ = frame_header(OP_CONT, MAX_MSG - 10000 + 1, fin=True)
        c.send(hdr)
        c.expect_close(CLOSE_TOO_BIG)
    finally:
        c.close()


def test_many_fragments_one_byte_over_limit(echo_server):
    c = echo_server.ws("/ws")
    try:
        data = binary_of(MAX_MSG)
        frames = [build_frame(OP_BINARY if i == 0 else OP_CONT,
                              data[i:i + 1024], fin=False)
                  for i in range(0, MAX_MSG, 1024)]
        c.send(b"".join(frames))
        c.send(build_frame(OP_CONT, b"!", fin=True))
        c.expect_close(CLOSE_TOO_BIG)
    finally:
        c.close()


def test_limit_in_4096_small_fragments(echo_server):
    """16384 bytes as 4096 four-byte fragments: the receive buffer keeps
    the message, not the frame headers around it."""
    data = text_of(MAX_MSG)
    pieces = [data[i:i + 4] for i in range(0, MAX_MSG, 4)]
    c = echo_server.ws()
    try:
        send_fragments(c, OP_TEXT, pieces)
        expect_echo_whole(c, OP_TEXT, data, timeout=10)
    finally:
        c.close()


@pytest.mark.parametrize("ctl", ["ping", "pong", "ping_then_more"])
def test_control_frame_with_nearly_full_message(echo_server, ctl):
    """A 125-byte control frame arrives while an open message holds
    nearly VKWS_MAX_MSG bytes: the message bytes plus that frame exceed
    one message, and the server must still take the control frame."""
    first = binary_of(MAX_MSG - 4)
    c = echo_server.ws()
    try:
        c.send(build_frame(OP_BINARY, first, fin=False))
        op = OP_PONG if ctl == "pong" else OP_PING
        c.send(build_frame(op, b"c" * 125))
        pongs = [b"c" * 125] if op == OP_PING else []
        if ctl == "ping_then_more":
            c.send(build_frame(OP_PING, b"d" * 125))
            pongs.append(b"d" * 125)
        c.send(build_frame(OP_CONT, b"1234", fin=True))
        expect_echo_whole(c, OP_BINARY, first + b"1234", pongs=pongs)
    finally:
        c.close()


def test_close_with_nearly_full_message(echo_server):
    c = echo_server.ws()
    try:
        c.send(build_frame(OP_TEXT, text_of(MAX_MSG - 1), fin=False))
        c.send(build_frame(OP_CLOSE, close_payload(1000, b"r" * 123)))
        expect_close_after_echo(c, CLOSE_NORMAL, text_of(MAX_MSG - 1),
                                reply=False)
    finally:
        c.close()


# ---- 5.x: fragmentation ---------------------------------------------------

FRAGMENTATIONS = {
    "two": [b"Hello, ", b"world"],
    "three": [b"frag", b"men", b"ted"],
    "hundred": [b"%03d:abcdef" % i for i in range(100)],
    "empty_first": [b"", b"after an empty first"],
    "empty_middle": [b"before", b"", b"after"],
    "empty_last": [b"before an empty last", b""],
    "all_empty": [b"", b"", b""],
    "one_byte_utf8": [bytes([b]) for b in
                      "\u03ba\u1f79\u03c3\u03bc\u03b5\U0001F600".encode()],
}


@pytest.mark.parametrize("kind", ["text", "binary"])
@pytest.mark.parametrize("name", sorted(FRAGMENTATIONS))
def test_fragmented_echoed_whole(echo_server, name, kind):
    pieces = FRAGMENTATIONS[name]
    c = echo_server.ws()
    try:
        send_fragments(c, opcode_of(kind), pieces)
        expect_echo_whole(c, opcode_of(kind), b"".join(pieces))
    finally:
        c.close()


def test_fragmented_frame_per_write(echo_server):
    """Autobahn 5.16-style: fragments in separate TCP writes."""
    pieces = [b"fragment %d " % i for i in range(8)]
    c = echo_server.ws()
    try:
        send_fragments(c, OP_TEXT, pieces, pause=0.02)
        expect_echo_whole(c, OP_TEXT, b"".join(pieces))
    finally:
        c.close()


@pytest.mark.parametrize("ping", [b"", b"ping!", b"P" * 125])
def test_ping_between_fragments(echo_server, ping):
    """Autobahn 5.6/5.7: a ping inside a fragmented message is answered at
    once, between the fragments of the echo."""
    c = echo_server.ws()
    try:
        c.send(build_frame(OP_TEXT, b"frag", fin=False) +
               build_frame(OP_PING, ping) +
               build_frame(OP_CONT, b"mented", fin=True))
        expect_echo_whole(c, OP_TEXT, b"fragmented", pongs=[ping])
    finally:
        c.close()


def test_ping_between_fragments_separate_writes(echo_server):
    """Autobahn 5.8: the pong comes while the message is still open, after
    the echo of its first fragment and before its last is sent."""
    c = echo_server.ws()
    try:
        c.send(build_frame(OP_TEXT, b"part one ", fin=False))
        time.sleep(0.05)
        c.send(build_frame(OP_PING, b"in between"))
        f = c.recv_frame()
        assert (f.fin, f.opcode, f.payload) == (False, OP_TEXT,
                                                b"part one "), f
        f = c.recv_frame()
        assert f.opcode == OP_PONG and f.payload == b"in between", f
        c.send(build_frame(OP_CONT, b"part two", fin=True))
        f = c.recv_frame()
        assert (f.fin, f.opcode, f.payload) == (True, OP_CONT,
                                                b"part two"), f
    finally:
        c.close()


def test_pong_between_fragments_ignored(echo_server):
    c = echo_server.ws()
    try:
        c.send(build_frame(OP_BINARY, b"\x01\x02", fin=False) +
               build_frame(OP_PONG, b"unsolicited") +
               build_frame(OP_CONT, b"\x03", fin=False) +
               build_frame(OP_PING, b"p1") +
               build_frame(OP_PING, b"p2") +
               build_frame(OP_CONT, b"\x04", fin=True))
        expect_echo_whole(c, OP_BINARY, b"\x01\x02\x03\x04",
                          pongs=[b"p1", b"p2"])
    finally:
        c.close()


PROTOCOL_ERRORS = {
    # 5.1/5.2: control frames MUST NOT be fragmented.
    "fragmented_ping": [build_frame(OP_PING, b"a", fin=False),
                        build_frame(OP_CONT, b"b", fin=True)],
    "fragmented_pong": [build_frame(OP_PONG, b"a", fin=False),
                        build_frame(OP_CONT, b"b", fin=True)],
    "fragmented_close": [build_frame(OP_CLOSE, close_payload(1000),
                                     fin=False)],
    # 5.9-5.14: continuation with nothing to continue.
    "cont_fin_first": [build_frame(OP_CONT, b"orphan", fin=True)],
    "cont_nonfin_first": [build_frame(OP_CONT, b"orphan", fin=False)],
    "cont_after_complete": [build_frame(OP_TEXT, b"whole"),
                            build_frame(OP_CONT, b"late", fin=True)],
    # 5.18-5.20: a new data frame while a message is open.
    "text_inside_text": [build_frame(OP_TEXT, b"open", fin=False),
                         build_frame(OP_TEXT, b"new", fin=True)],
    "binary_inside_text": [build_frame(OP_TEXT, b"open", fin=False),
                           build_frame(OP_BINARY, b"new", fin=True)],
    "text_inside_binary": [build_frame(OP_BINARY, b"open", fin=False),
                           build_frame(OP_TEXT, b"new", fin=False)],
    # 2.5: control frames carry at most 125 bytes.
    "ping_126": [build_frame(OP_PING, b"x" * 126)],
    "pong_126": [build_frame(OP_PONG, b"x" * 126)],
    "close_126": [build_frame(OP_CLOSE, close_payload(1000, b"r" * 124))],
    # 7.3.1: a close payload of one byte.
    "close_one_byte": [build_frame(OP_CLOSE, b"\x03")],
    # RFC 6455 5.1: a client frame MUST be masked.
    "unmasked_text": [build_frame(OP_TEXT, b"plain", mask=False)],
    "unmasked_binary": [build_frame(OP_BINARY, b"\x00\x01", mask=False)],
    "unmasked_ping": [build_frame(OP_PING, b"p", mask=False)],
    "unmasked_close": [build_frame(OP_CLOSE, close_payload(1000),
                                   mask=False)],
    "unmasked_empty": [build_frame(OP_TEXT, b"", mask=False)],
    # RFC 6455 5.2: lengths in the minimal number of bytes.
    "len16_for_0": [build_frame(OP_TEXT, b"", length_form=16)],
    "len16_for_5": [build_frame(OP_TEXT, b"hello", length_form=16)],
    "len16_for_125": [build_frame(OP_BINARY, b"q" * 125, length_form=16)],
    "len64_for_5": [build_frame(OP_TEXT, b"hello", length_form=64)],
    "len64_for_126": [build_frame(OP_BINARY, b"q" * 126, length_form=64)],
    "len64_for_65535_header": [frame_header(OP_BINARY, 65535,
                                            length_form=64)[0]],
    "len16_ping": [build_frame(OP_PING, b"p", length_form=16)],
}


@pytest.mark.parametrize("name", sorted(PROTOCOL_ERRORS))
def test_protocol_error_closes_1002(echo_server, name):
    c = echo_server.ws()
    try:
        c.send(b"".join(PROTOCOL_ERRORS[name]))
        if name == "cont_after_complete":
            expect_echo_whole(c, OP_TEXT, b"whole")
        # The open message's first fragment is echoed before the close.
        expect_close_after_echo(c, CLOSE_PROTOCOL, b"open")
    finally:
        c.close()


# ---- 3.x: reserved bits ---------------------------------------------------

@pytest.mark.parametrize("rsv", range(1, 8))
def test_rsv_bits_on_text(echo_server, rsv):
    """Autobahn 3.2-style: a good message, the bad frame, a ping. The good
    one is echoed, then the close; nothing after the bad frame is
    answered."""
    c = echo_server.ws()
    try:
        c.send(build_frame(OP_TEXT, b"Hello") +
               build_frame(OP_TEXT, b"bad", rsv=rsv) +
               build_frame(OP_PING, b"after"))
        expect_echo_whole(c, OP_TEXT, b"Hello")
        c.expect_close(CLOSE_PROTOCOL)
    finally:
        c.close()


@pytest.mark.parametrize("opcode", [OP_BINARY, OP_PING, OP_CLOSE, OP_CONT])
def test_rsv_bits_on_other_frames(echo_server, opcode):
    c = echo_server.ws()
    try:
        payload = close_payload(1000) if opcode == OP_CLOSE else b"r"
        if opcode == OP_CONT:
            c.send(build_frame(OP_TEXT, b"open", fin=False))
        c.send(build_frame(opcode, payload, rsv=4))
        expect_close_after_echo(c, CLOSE_PROTOCOL, b"open")
    finally:
        c.close()


# ---- 4.x: reserved opcodes ------------------------------------------------

@pytest.mark.parametrize("opcode", [3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF])
def test_reserved_opcode(echo_server, opcode):
    c = echo_server.ws()
    try:
        c.send(build_frame(OP_TEXT, b"Hello") +
               build_frame(opcode, b"reserved") +
               build_frame(OP_PING, b"after"))
        expect_echo_whole(c, OP_TEXT, b"Hello")
        c.expect_close(CLOSE_PROTOCOL)
    finally:
        c.close()


# ---- 2.x: pings and pongs --------------------------------------------------

@pytest.mark.parametrize("payload", [b"", b"Hello, world!", bytes(range(125)),
                                     "\u03ba\u1f79\u03c3".encode()],
                         ids=["empty", "text", "125_binary", "utf8"])
def test_ping_answered(echo_server, payload):
    c = echo_server.ws()
    try:
        c.send_frame(OP_PING, payload)
        f = c.recv_frame()
        assert f.opcode == OP_PONG, f
        assert f.payload == payload
    finally:
        c.close()


def test_ten_pings_in_order(echo_server):
    """Autobahn 2.10: every ping gets its own pong, in order."""
    c = echo_server.ws()
    try:
        c.send(b"".join(build_frame(OP_PING, b"ping %d" % i)
                        for i in range(10)))
        for i in range(10):
            f = c.recv_frame()
            assert f.opcode == OP_PONG and f.payload == b"ping %d" % i, f
    finally:
        c.close()


@pytest.mark.parametrize("payload", [b"", b"u" * 125])
def test_unsolicited_pong_ignored(echo_server, payload):
    """Autobahn 2.7/2.8: an unsolicited pong gets no answer."""
    c = echo_server.ws()
    try:
        c.send(build_frame(OP_PONG, payload) + build_frame(OP_TEXT, b"next"))
        expect_echo_whole(c, OP_TEXT, b"next")
    finally:
        c.close()


def test_ping_then_close(echo_server):
    c = echo_server.ws()
    try:
        c.send(build_frame(OP_PING, b"x") +
               build_frame(OP_CLOSE, close_payload(1000)))
        f = c.recv_frame()
        assert f.opcode == OP_PONG and f.payload == b"x", f
        c.expect_close(CLOSE_NORMAL, reply=False)
    finally:
        c.close()


# ---- 6.x: UTF-8 -------------------------------------------------------------

VALID_UTF8 = {
    "ascii_mixed": "Hello-\u00b5@\u00df\u00f6\u00e4\u00fc\u00e0\u00e1-UTF-8!!",
    "kosme": "\u03ba\u1f79\u03c3\u03bc\u03b5",
    "first_2byte": "\u0080",
    "last_2byte": "\u07ff",
    "first_3byte": "\u0800",
    "last_3byte": "\uffff",
    "first_4byte": "\U00010000",
    "last_4byte": "\U0010ffff",
    "before_surrogates": "\ud7ff",
    "after_surrogates": "\ue000",
    "replacement_char": "\ufffd",
    "bom": "\ufeff",
    "nul": "a\u0000b",
}

INVALID_UTF8 = {
    "lone_continuation_80": b"\x80",
    "lone_continuation_bf": b"a\xbfb",
    "overlong_2byte_slash": b"\xc0\xaf",
    "overlong_2byte_max": b"\xc1\xbf",
    "overlong_3byte_slash": b"\xe0\x80\xaf",
    "overlong_3byte_max": b"\xe0\x9f\xbf",
    "overlong_4byte_slash": b"\xf0\x80\x80\xaf",
    "overlong_4byte_max": b"\xf0\x8f\xbf\xbf",
    "surrogate_high": b"\xed\xa0\x80",
    "surrogate_low": b"\xed\xbf\xbf",
    "above_10ffff": b"\xf4\x90\x80\x80",
    "byte_f5": b"\xf5\x80\x80\x80",
    "byte_fe": b"\xfe",
    "byte_ff": b"\xff",
    "truncated_2byte_end": b"abc\xce",
    "truncated_3byte_end": b"\xe2\x82",
    "truncated_4byte_end": b"\xf0\x9f\x98",
    "truncated_then_ascii": b"\xe2\x82a",
    "kosme_surrogate_edited": (b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce"
                               b"\xb5\xed\xa0\x80edited"),
}


@pytest.mark.parametrize("name", sorted(VALID_UTF8))
def test_utf8_valid_echoed(echo_server, name):
    data = VALID_UTF8[name].encode("utf-8")
    c = echo_server.ws()
    try:
        c.send_text(data)
        expect_echo_whole(c, OP_TEXT, data)
    finally:
        c.close()


@pytest.mark.parametrize("name", sorted(INVALID_UTF8))
def test_utf8_invalid_closes_1007(echo_server, name):
    c = echo_server.ws()
    try:
        c.send_text(INVALID_UTF8[name])
        c.expect_close(CLOSE_BAD_DATA)
    finally:
        c.close()


@pytest.mark.parametrize("name", sorted(INVALID_UTF8))
def test_utf8_invalid_in_binary_echoed(echo_server, name):
    """Binary messages are not UTF-8 checked."""
    data = INVALID_UTF8[name]
    c = echo_server.ws()
    try:
        c.send_binary(data)
        expect_echo_whole(c, OP_BINARY, data)
    finally:
        c.close()


SPLIT_VALID = b"a\xf0\x9f\x98\x80b"       # a U+1F600 b
SPLIT_INVALID = b"a\xf4\x90\x80\x80b"     # a (above U+10FFFF) b


@pytest.mark.parametrize("at", range(1, len(SPLIT_VALID)))
def test_utf8_valid_split_across_fragments(echo_server, at):
    c = echo_server.ws()
    try:
        send_fragments(c, OP_TEXT, [SPLIT_VALID[:at], SPLIT_VALID[at:]])
        expect_echo_whole(c, OP_TEXT, SPLIT_VALID)
    finally:
        c.close()


@pytest.mark.parametrize("at", range(1, len(SPLIT_INVALID)))
def test_utf8_invalid_split_across_fragments(echo_server, at):
    c = echo_server.ws()
    try:
        send_fragments(c, OP_TEXT, [SPLIT_INVALID[:at], SPLIT_INVALID[at:]])
        echoed = expect_close_after_echo(c, CLOSE_BAD_DATA, SPLIT_INVALID)
        # "a" and "a F4" are valid so far; F4 90 never is.
        assert len(echoed) <= 2
    finally:
        c.close()


@pytest.mark.parametrize("data,valid", [(SPLIT_VALID, True),
                                        (SPLIT_INVALID, False)],
                         ids=["valid", "invalid"])
def test_utf8_one_byte_per_tcp_write(echo_server, data, valid):
    """Autobahn 6.4-style: one frame whose header and every payload byte
    (so every byte of the 4-byte sequence) arrive in separate reads."""
    c = echo_server.ws()
    try:
        frame = build_frame(OP_TEXT, data)
        c.send_split(frame, [1] * len(frame), pause=0.03)
        if valid:
            expect_echo_whole(c, OP_TEXT, data)
        else:
            assert len(expect_close_after_echo(c, CLOSE_BAD_DATA,
                                               data)) <= 2
    finally:
        c.close()


@pytest.mark.parametrize("data,valid", [(SPLIT_VALID, True),
                                        (SPLIT_INVALID, False)],
                         ids=["valid", "invalid"])
def test_utf8_one_byte_fragments_per_tcp_write(echo_server, data, valid):
    """Every byte its own fragment and its own TCP write."""
    c = echo_server.ws()
    try:
        send_fragments(c, OP_TEXT, [bytes([b]) for b in data], pause=0.03)
        if valid:
            expect_echo_whole(c, OP_TEXT, data)
        else:
            assert len(expect_close_after_echo(c, CLOSE_BAD_DATA,
                                               data)) <= 2
    finally:
        c.close()


def test_utf8_invalid_fragment_fails_fast(echo_server):
    """Autobahn 6.4.1-style: the message is checked as it arrives
    (ws_rx_payload), so an invalid fragment closes the connection without
    waiting for the rest of the message; the valid first fragment has
    been echoed."""
    c = echo_server.ws()
    try:
        first = "\u03ba\u1f79\u03c3".encode()
        c.send(build_frame(OP_TEXT, first, fin=False))
        c.send(build_frame(OP_CONT, b"\xf4\x90\x80\x80", fin=False))
        assert expect_close_after_echo(c, CLOSE_BAD_DATA,
                                       first + b"\xf4") == first
    finally:
        c.close()


def test_utf8_incomplete_at_end_of_fragmented_message(echo_server):
    """The last fragment is empty and the message ends inside a code
    point."""
    c = echo_server.ws()
    try:
        send_fragments(c, OP_TEXT, [b"ok\xce", b""])
        expect_close_after_echo(c, CLOSE_BAD_DATA, b"ok\xce")
    finally:
        c.close()


def test_utf8_state_does_not_leak_between_messages(echo_server):
    """A binary message ending in a lead byte does not open a code point
    for the next text message, and a text message starting with a
    continuation byte is invalid whatever came before."""
    c = echo_server.ws()
    try:
        send_fragments(c, OP_BINARY, [b"\xf0\x9f", b"\xce"])
        expect_echo_whole(c, OP_BINARY, b"\xf0\x9f\xce")
        c.echo(OP_TEXT, b"plain")
        c.send_text(b"\xba")
        c.expect_close(CLOSE_BAD_DATA)
    finally:
        c.close()


def test_utf8_ping_payload_not_checked_inside_text(echo_server):
    """Control payloads between text fragments are not part of the text:
    a ping with invalid UTF-8 in the middle of a code point is answered
    and the message completes."""
    c = echo_server.ws()
    try:
        c.send(build_frame(OP_TEXT, b"a\xf0\x9f", fin=False) +
               build_frame(OP_PING, b"\xff\xfe\x80") +
               build_frame(OP_CONT, b"\x98\x80b", fin=True))
        expect_echo_whole(c, OP_TEXT, b"a\xf0\x9f\x98\x80b",
                          pongs=[b"\xff\xfe\x80"])
    finally:
        c.close()


def test_utf8_close_reason_checked_apart_from_open_text(echo_server):
    """A close with a valid reason while a text message is open inside a
    code point: the reason is checked on its own, so the answer is the
    close code, not 1007."""
    c = echo_server.ws()
    try:
        c.send(build_frame(OP_TEXT, b"x\xce", fin=False) +
               build_frame(OP_CLOSE, close_payload(1000, "\u03bcbye")))
        expect_close_after_echo(c, CLOSE_NORMAL, b"x\xce", reply=False)
    finally:
        c.close()


# ---- 7.x: the close handshake -----------------------------------------------

VALID_CLOSE_CODES = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011,
                     1012, 1013, 1014, 3000, 3999, 4000, 4999]
INVALID_CLOSE_CODES = [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000,
                       2999, 5000, 65535]


@pytest.mark.parametrize("code", VALID_CLOSE_CODES)
def test_close_valid_code_echoed(echo_server, code):
    c = echo_server.ws()
    try:
        c.send_close(code, b"bye")
        c.expect_close(code, reply=False)
    finally:
        c.close()


@pytest.mark.parametrize("code", INVALID_CLOSE_CODES)
def test_close_invalid_code(echo_server, code):
    c = echo_server.ws()
    try:
        c.send_close(code)
        c.expect_close(CLOSE_PROTOCOL, reply=False)
    finally:
        c.close()


def test_close_empty(echo_server):
    """An empty close is answered with an empty close, or with 1000: both
    are accepted (RFC 6455 5.5.1 lets the answer carry no code)."""
    c = echo_server.ws()
    try:
        c.send_close()
        c.expect_close((None, CLOSE_NORMAL), reply=False)
    finally:
        c.close()


def test_close_max_reason(echo_server):
    """A close payload of 125 bytes: code plus a 123-byte reason."""
    c = echo_server.ws()
    try:
        c.send_close(1000, b"r" * 123)
        c.expect_close(CLOSE_NORMAL, reply=False)
    finally:
        c.close()


def test_close_utf8_reason(echo_server):
    c = echo_server.ws()
    try:
        c.send_close(1000, "\u03ba\u1f79\u03c3\u03bc\u03b5 \U0001F600")
        c.expect_close(CLOSE_NORMAL, reply=False)
    finally:
        c.close()


@pytest.mark.parametrize("reason", [b"\xce\xba\xe1\xbd\xb9\xcf\x83\xed\xa0"
                                    b"\x80", b"\xff", b"ok\xe2\x82"],
                         ids=["surrogate", "ff", "truncated"])
def test_close_invalid_utf8_reason(echo_server, reason):
    c = echo_server.ws()
    try:
        c.send_close(1000, reason)
        c.expect_close(CLOSE_BAD_DATA)
    finally:
        c.close()


@pytest.mark.parametrize("after", ["text", "ping", "close", "garbage"])
def test_nothing_answered_after_close(echo_server, after):
    """Autobahn 7.1.2-7.1.4: after its close, the client's frames get no
    answer: the close reply comes and then EOF."""
    extra = {
        "text": build_frame(OP_TEXT, b"late"),
        "ping": build_frame(OP_PING, b"late"),
        "close": build_frame(OP_CLOSE, close_payload(1000)),
        "garbage": build_frame(5, b"reserved opcode"),
    }[after]
    c = echo_server.ws()
    try:
        c.send(build_frame(OP_CLOSE, close_payload(1000)) + extra)
        c.expect_close(CLOSE_NORMAL, reply=False)
    finally:
        c.close()


def test_close_inside_fragmented_message(echo_server):
    """Autobahn 7.1.6-style: a close between fragments ends the message."""
    c = echo_server.ws()
    try:
        c.send(build_frame(OP_TEXT, b"never finished", fin=False) +
               build_frame(OP_CLOSE, close_payload(1000)))
        expect_close_after_echo(c, CLOSE_NORMAL, b"never finished",
                                reply=False)
    finally:
        c.close()


def test_close_after_echo(echo_server):
    c = echo_server.ws()
    try:
        c.send(build_frame(OP_TEXT, b"first") +
               build_frame(OP_CLOSE, close_payload(3000, b"done")))
        expect_echo_whole(c, OP_TEXT, b"first")
        c.expect_close(3000, reply=False)
    finally:
        c.close()


@pytest.mark.parametrize("when", ["idle", "mid_message", "mid_frame",
                                  "after_close"])
def test_client_half_close(echo_server, when):
    """The client shuts down its sending side: the server ends the
    connection (never sending 1005/1006/1015 on the wire) and goes on
    serving others."""
    c = echo_server.ws()
    try:
        if when == "mid_message":
            c.send(build_frame(OP_TEXT, b"open", fin=False))
        elif when == "mid_frame":
            c.send(build_frame(OP_BINARY, b"x" * 100)[:50])
        elif when == "after_close":
            c.send_close(1000)
        # socket.socket.shutdown: an SSLSocket's own shutdown() drops
        # its TLS state, and the replies would then be read raw.
        socket.socket.shutdown(c.sock, socket.SHUT_WR)
        end = time.monotonic() + 5
        frames = 0
        while frames < 10:
            try:
                f = c.recv_frame(timeout=max(0.01, end - time.monotonic()))
            except wsraw.Closed:
                break
            except wsraw.Timeout:
                pytest.fail("server kept the connection after the "
                            "client's FIN")
            frames += 1
            if f.opcode != OP_CLOSE and when.startswith("mid_"):
                # The start of the open message, echoed as it came.
                assert f.opcode in (OP_TEXT, OP_BINARY) and not f.fin, f
                continue
            assert f.opcode == OP_CLOSE, f
            assert f.close_code not in (1005, 1006, 1015), f
            if when == "after_close":
                assert f.close_code == CLOSE_NORMAL, f
        else:
            pytest.fail("frames after the close")
        other = echo_server.ws()
        try:
            other.echo(OP_TEXT, b"still serving")
        finally:
            other.close()
    finally:
        c.close()


def test_client_reset_mid_message(echo_server):
    """An abortive close (RST) in the middle of a message harms no one."""
    c = echo_server.ws()
    c.send(build_frame(OP_TEXT, b"open", fin=False) +
           build_frame(OP_BINARY, b"y" * 1000)[:300])
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                      struct.pack("ii", 1, 0))
    c.close()
    other = echo_server.ws()
    try:
        other.echo(OP_TEXT, b"after a reset")
    finally:
        other.close()


# ---- first frame with the head, pipelining, split headers ------------------

def test_first_frame_in_same_write_as_head(echo_server):
    c = echo_server.raw()
    try:
        c.handshake(echo_server.host, "/echo",
                    trailing=build_frame(OP_TEXT, b"early bird"))
        expect_echo_whole(c, OP_TEXT, b"early bird")
    finally:
        c.close()


def test_several_frames_in_same_write_as_head(echo_server):
    c = echo_server.raw()
    try:
        frames = b"".join(build_frame(OP_BINARY, b"m%d" % i)
                          for i in range(5)) + build_frame(OP_PING, b"pp")
        c.handshake(echo_server.host, "/echo", trailing=frames)
        for i in range(5):
            expect_echo_whole(c, OP_BINARY, b"m%d" % i)
        f = c.recv_frame()
        assert f.opcode == OP_PONG and f.payload == b"pp", f
    finally:
        c.close()


def test_pipelined_messages(echo_server):
    c = echo_server.ws()
    try:
        msgs = [text_of(i * 37 % 300) for i in range(200)]
        c.send(b"".join(build_frame(OP_TEXT, m) for m in msgs))
        for m in msgs:
            expect_echo_whole(c, OP_TEXT, m)
    finally:
        c.close()


@pytest.mark.parametrize("size", [5, 200, 1000])
def test_frame_header_split_per_byte(echo_server, size):
    """Header, mask key and payload arrive one byte per read (the first
    few bytes) and then the rest."""
    data = binary_of(size)
    c = echo_server.ws()
    try:
        frame = build_frame(OP_BINARY, data)
        c.send_split(frame, [1] * 14, pause=0.02)
        expect_echo_whole(c, OP_BINARY, data)
    finally:
        c.close()


def test_large_frame_split_in_writes(echo_server):
    data = text_of(MAX_MSG)
    c = echo_server.ws()
    try:
        frame = build_frame(OP_TEXT, data)
        c.send_split(frame, [3, 5, 100, 4000, 1, 7000], pause=0.02)
        expect_echo_whole(c, OP_TEXT, data)
    finally:
        c.close()


# ---- deadlines ----------------------------------------------------------------

def test_idle_timeout_closes_4002(server):
    s = server("--echo", "--idle-timeout", "1")
    c = s.ws()
    try:
        c.expect_close(CLOSE_IDLE, timeout=4)
    finally:
        c.close()


def test_idle_timeout_reset_by_frames(server):
    """Frames keep the connection alive past the idle timeout; once they
    stop, the idle close comes."""
    s = server("--echo", "--idle-timeout", "2")
    c = s.ws()
    try:
        end = time.monotonic() + 3.5
        n = 0
        while time.monotonic() < end and n < 50:
            c.send_frame(OP_PING, b"keep %d" % n)
            f = c.recv_frame(timeout=3)
            assert f.opcode == OP_PONG and f.payload == b"keep %d" % n, f
            n += 1
            time.sleep(0.3)
        c.echo(OP_TEXT, b"still open")
        c.expect_close(CLOSE_IDLE, timeout=6)
    finally:
        c.close()


def test_close_timeout_without_reply(server):
    """The server's close (here the idle one) is not answered: the server
    drops the TCP connection after --close-timeout."""
    s = server("--echo", "--idle-timeout", "1", "--close-timeout", "1")
    c = s.ws()
    try:
        c.expect_close(CLOSE_IDLE, timeout=4, reply=False, eof_timeout=4)
    finally:
        c.close()


@pytest.mark.parametrize("sent", [b"", b"GET /echo HTTP/1.1\r\nHost: x\r\n"],
                         ids=["nothing", "partial_head"])
def test_handshake_timeout(server, sent):
    s = server("--echo", "--handshake-timeout", "1")
    c = s.raw()
    try:
        if sent:
            c.send(sent)
        got = c.expect_eof(timeout=4)
        if got:
            assert got.startswith(b"HTTP/1.1 4"), got[:100]
        # Other connections are not affected.
        ok = s.get("/healthz")
        assert ok.status == 200
    finally:
        c.close()


def test_handshake_timeout_not_applied_after_upgrade(server):
    """The head deadline ends with the upgrade: an upgraded connection
    quiet for longer than --handshake-timeout stays open."""
    s = server("--echo", "--handshake-timeout", "1")
    c = s.ws()
    try:
        c.echo(OP_TEXT, b"upgraded")
        r, _, _ = select.select([c.sock], [], [], 2.5)
        assert not r, "the server sent something to a quiet connection: " \
            "%r" % c.sock.recv(200)
        c.echo(OP_TEXT, b"still here")
    finally:
        c.close()


def test_handshake_timeout_slow_head(server):
    """A head trickling in byte by byte is still held to the deadline."""
    s = server("--echo", "--handshake-timeout", "1")
    c = s.raw()
    try:
        head = b"GET /healthz HTTP/1.1\r\nX-Slow: " + b"a" * 200
        deadline = time.monotonic() + 5
        closed = False
        for i in range(len(head)):
            if time.monotonic() > deadline:
                break
            try:
                c.send(head[i:i + 1])
            except OSError:
                closed = True
                break
            r, _, _ = select.select([c.sock], [], [], 0.05)
            if r:
                try:
                    if not c.sock.recv(4096):
                        closed = True
                        break
                except OSError:
                    closed = True
                    break
        if not closed:
            c.expect_eof(timeout=2)
    finally:
        c.close()


# ---- a client that does not read --------------------------------------------

def flood_until_stalled(conn, frame, max_bytes=64 << 20, max_time=15.0,
                        stall=0.5):
    """Write frames without reading until writes block for `stall`
    seconds, the peer closes, or a bound is hit. Returns (bytes sent,
    whether the peer closed)."""
    sock = conn.sock
    sock.setblocking(False)
    sent = 0
    pending = b""
    stalled_since = None
    end = time.monotonic() + max_time
    try:
        while sent < max_bytes and time.monotonic() < end:
            if not pending:
                pending = frame
            try:
                n = sock.send(pending)
            except (BlockingIOError, ssl.SSLWantWriteError,
                    ssl.SSLWantReadError):
                now = time.monotonic()
                if stalled_since is None:
                    stalled_since = now
                elif now - stalled_since > stall:
                    return sent, False
                select.select([], [sock], [], 0.05)
                continue
            except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
                return sent, True
            stalled_since = None
            sent += n
            pending = pending[n:]
        return sent, False
    finally:
        sock.settimeout(conn.timeout)


def test_slow_reader_does_not_stall_others(server):
    """A client that sends a lot and reads nothing must not hold up the
    others: the server closes it with 1013 or stops reading it."""
    s = server("--echo")
    other = s.ws()
    slow = s.ws(sock_opts={"rcvbuf": 4096, "sndbuf": 16384})
    try:
        other.echo(OP_TEXT, b"before")
        frame = build_frame(OP_BINARY, binary_of(MAX_MSG))
        sent, closed = flood_until_stalled(slow, frame)
        assert sent > 0
        # The other connection is still served, message after message.
        for i in range(20):
            other.echo(OP_BINARY, binary_of(1000 + i), timeout=5)
        # A new connection is accepted and served, and plain HTTP too.
        fresh = s.ws()
        try:
            fresh.echo(OP_TEXT, b"new client")
        finally:
            fresh.close()
        assert s.get("/healthz").status == 200
        # While the slow reader is still connected, and fed again.
        if not closed:
            flood_until_stalled(slow, frame, max_time=2.0)
        other.echo(OP_TEXT, b"after")
    finally:
        slow.close()
        other.close()


def test_ping_flood_without_reading(server):
    """Pings sent without reading the pongs: the server may answer only
    the latest ping (RFC 6455 5.5.3), stop reading, or close with 1013,
    but others stay served and what arrives is pongs in order."""
    s = server("--echo")
    other = s.ws()
    flood = s.ws(sock_opts={"rcvbuf": 4096, "sndbuf": 16384})
    try:
        frames = b"".join(build_frame(OP_PING, struct.pack("!I", i) +
                                      b"p" * 121) for i in range(40000))
        # One pass over the numbered pings at most.
        flood_until_stalled(flood, frames, max_bytes=len(frames),
                            max_time=8)
        for i in range(10):
            other.echo(OP_TEXT, b"served %d" % i)
        end = time.monotonic() + 5
        last = -1
        n = 0
        while time.monotonic() < end and n < 100000:
            try:
                f = flood.recv_frame(timeout=1.0)
            except (wsraw.Timeout, wsraw.Closed):
                break
            n += 1
            if f.opcode == OP_CLOSE:
                assert f.close_code == CLOSE_TRY_AGAIN, f
                break
            assert f.opcode == OP_PONG and len(f.payload) == 125, f
            k = struct.unpack("!I", f.payload[:4])[0]
            assert k > last, "pong %d after pong %d" % (k, last)
            assert f.payload[4:] == b"p" * 121, f
            last = k
        assert n > 0, "no pong at all"
    finally:
        flood.close()
        other.close()


def test_slow_reader_close_code(server):
    """If the server gives up on a client that does not read, it says
    1013; reading what arrived must show only echoes and that close."""
    s = server("--echo")
    slow = s.ws(sock_opts={"rcvbuf": 4096, "sndbuf": 16384})
    try:
        frame = build_frame(OP_BINARY, binary_of(MAX_MSG))
        flood_until_stalled(slow, frame, max_time=10.0)
        # Read back for a bounded time: echoes of what we sent, then maybe
        # a close. Any close must be 1013.
        # The echo of each message may come in several frames.
        end = time.monotonic() + 8
        frames = 0
        close = None
        msg = None
        while time.monotonic() < end and frames < 100000:
            try:
                f = slow.recv_frame(timeout=1.0)
            except (wsraw.Timeout, wsraw.Closed):
                break
            frames += 1
            if f.opcode == OP_CLOSE:
                close = f
                break
            assert f.opcode == (OP_CONT if msg is not None else OP_BINARY), f
            msg = (msg or b"") + f.payload
            assert msg == binary_of(MAX_MSG)[:len(msg)]
            if f.fin:
                assert len(msg) == MAX_MSG
                msg = None
        assert frames > 0, "nothing came back to the slow reader"
        if close is not None:
            assert close.close_code == CLOSE_TRY_AGAIN, close
    finally:
        slow.close()


# ---- --max-conns ------------------------------------------------------------------

def test_max_conns_503_then_accepts_again(server):
    s = server("--echo", "--max-conns", "4")
    conns = []
    try:
        for i in range(4):
            c = s.ws()
            conns.append(c)
            c.echo(OP_TEXT, b"conn %d" % i)
        # Refused upgrades keep no slot: ten in a row, all 503.
        for _ in range(10):
            extra = s.raw()
            try:
                resp = extra.handshake(s.host, "/echo", check=False)
                assert resp.status == 503, resp
                ra = resp.header("retry-after")
                assert ra is not None and ra.strip().isdigit(), resp
            finally:
                extra.close()
        # The four are still served.
        for i, c in enumerate(conns):
            c.echo(OP_TEXT, b"still %d" % i)
        # One leaves; a new upgrade succeeds (the slot may take a moment
        # to be freed).
        first = conns.pop(0)
        first.send_close(1000)
        first.expect_close(CLOSE_NORMAL, reply=False)
        first.close()
        ok = None
        for _ in range(30):
            c = s.raw()
            resp = c.handshake(s.host, "/echo", check=False)
            if resp.status == 101:
                ok = c
                break
            c.close()
            assert resp.status == 503, resp
            time.sleep(0.1)
        assert ok is not None, "no slot after a connection closed"
        conns.append(ok)
        ok.echo(OP_TEXT, b"replacement")
    finally:
        for c in conns:
            c.close()


def test_max_conns_library_clients(server):
    s = server("--echo", "--max-conns", "4")

    async def go():
        socks = [await s.ws_connect() for _ in range(4)]
        try:
            with pytest.raises(websockets.InvalidStatusCode) as ei:
                await s.ws_connect()
            assert ei.value.status_code == 503
            for i, ws in enumerate(socks):
                await ws.send("m%d" % i)
                assert await asyncio.wait_for(ws.recv(), 5) == "m%d" % i
        finally:
            for ws in socks:
                await ws.close()
    run(go())


# ---- many clients at once ------------------------------------------------------

def test_many_concurrent_clients(server):
    # 200 handshakes at once: more than the default unproven share (128),
    # whose oldest would give way (PROTOCOL.md 8).
    s = server("--echo", "--max-pending", "256")
    n = min(200, s.transport.conn_cap)

    async def client(i):
        async with s.ws_connect(open_timeout=20) as ws:
            for j in range(3):
                m = "client %d message %d" % (i, j)
                await ws.send(m)
                assert await asyncio.wait_for(ws.recv(), 20) == m
            await ws.send(binary_of(i * 50))
            assert await asyncio.wait_for(ws.recv(), 20) == binary_of(i * 50)
        return i

    async def go():
        done = await asyncio.gather(*(client(i) for i in range(n)))
        assert sorted(done) == list(range(n))
    run(go(), timeout=60)


def test_many_concurrent_clients_all_open(server):
    """200 connections held open together, then each echoes once."""
    s = server("--echo")
    n = min(200, s.transport.conn_cap)

    async def go():
        socks = []
        try:
            for i in range(n):
                socks.append(await s.ws_connect(open_timeout=20))
            for i, ws in enumerate(socks):
                await ws.send("hello %d" % i)
            for i, ws in enumerate(socks):
                assert await asyncio.wait_for(ws.recv(), 20) == "hello %d" % i
        finally:
            await asyncio.gather(*(ws.close() for ws in socks),
                                 return_exceptions=True)
    run(go(), timeout=60)


# ---- SIGTERM / SIGINT ---------------------------------------------------------------

@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT],
                         ids=["SIGTERM", "SIGINT"])
def test_signal_closes_1001_and_exits_0(server, sig):
    s = server("--echo")
    conns = [s.ws() for _ in range(3)]
    try:
        for c in conns:
            c.echo(OP_TEXT, b"up")
        # One connection in the middle of a fragmented message.
        conns[0].send_frame(OP_TEXT, b"open", fin=False)
        os.kill(s.proc.pid, sig)
        for c in conns:
            c.expect_close(CLOSE_GOING_AWAY, timeout=5, skip_data=True)
        try:
            rc = s.proc.wait(5)
        except Exception:
            pytest.fail("server still running 5 s after the signal")
        assert rc == 0, "exit code %r" % rc
    finally:
        for c in conns:
            c.close()


def test_sigterm_library_client_sees_1001(server):
    s = server("--echo")

    async def go():
        async with s.ws_connect() as ws:
            await ws.send("x")
            assert await asyncio.wait_for(ws.recv(), 5) == "x"
            os.kill(s.proc.pid, signal.SIGTERM)
            with pytest.raises(websockets.ConnectionClosed) as ei:
                for _ in range(100):
                    await asyncio.wait_for(ws.recv(), 5)
            assert ei.value.rcvd is not None
            assert ei.value.rcvd.code == CLOSE_GOING_AWAY
    run(go())
    assert s.proc.wait(5) == 0


def test_sigterm_stops_accepting(server):
    """During the shutdown grace no new WebSocket is accepted."""
    s = server("--echo")
    c = s.ws()
    try:
        c.echo(OP_TEXT, b"up")
        os.kill(s.proc.pid, signal.SIGTERM)
        f = c.recv_frame(timeout=5)
        while f.opcode != OP_CLOSE:
            f = c.recv_frame(timeout=5)
        assert f.close_code == CLOSE_GOING_AWAY
        # The client does not answer yet, so the server is still in its
        # grace period.
        upgraded = False
        try:
            n = s.raw(timeout=3)
            try:
                r = n.handshake(s.host, "/echo", check=False)
                upgraded = r.status == 101
            except (wsraw.Closed, AssertionError, OSError):
                pass
            finally:
                n.close()
        except OSError:
            pass
        assert not upgraded, "a new WebSocket was accepted after SIGTERM"
        c.send_close(CLOSE_GOING_AWAY)
        c.expect_eof(3)
        assert s.proc.wait(5) == 0
    finally:
        c.close()


def test_sigterm_with_stuck_reader_exits(server):
    """A client that never reads (and never answers the close) does not
    keep the server from exiting 0 within its grace period."""
    s = server("--echo")
    slow = s.ws(sock_opts={"rcvbuf": 4096, "sndbuf": 16384})
    try:
        flood_until_stalled(slow, build_frame(OP_BINARY, binary_of(MAX_MSG)),
                            max_time=10.0)
        os.kill(s.proc.pid, signal.SIGTERM)
        try:
            rc = s.proc.wait(5)
        except Exception:
            pytest.fail("server still running 5 s after SIGTERM")
        assert rc == 0
    finally:
        slow.close()


def test_sigterm_idle_server_exits_0(server):
    s = server("--echo")
    assert s.get("/healthz").status == 200
    os.kill(s.proc.pid, signal.SIGTERM)
    assert s.proc.wait(5) == 0
    # The listener is gone.
    with pytest.raises(OSError):
        sk = s.sock(timeout=2)
        sk.close()
