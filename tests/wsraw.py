"""
wsraw: a small raw-socket RFC 6455 client for the vkws integration tests.

It shares no code with the server's codec: the handshake, the
Sec-WebSocket-Accept check and the frame layout are written out here from
RFC 6455 so that a bug in ws_frame.c cannot hide a bug in a test. Frames can
be built with any FIN/RSV/opcode/mask and any length encoding (including the
non-shortest ones the server must refuse), and every read has its own
deadline, so a test can never hang on a silent server.

The socket is handed in by the caller (conftest.py), so a TLS transport can
wrap it without this module knowing.
"""

import base64
import hashlib
import os
import socket
import ssl
import struct
import time

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

OP_CONT = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA

CONTROL_OPS = (OP_CLOSE, OP_PING, OP_PONG)
KNOWN_OPS = (OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG)

DEFAULT_TIMEOUT = 5.0


class Closed(Exception):
    """The peer closed the TCP connection (EOF or reset)."""


class Timeout(AssertionError):
    """Nothing (or not enough) arrived before the deadline."""


def accept_key(key):
    """RFC 6455 4.2.2: base64(SHA-1(key + GUID))."""
    if isinstance(key, str):
        key = key.encode("ascii")
    return base64.b64encode(hashlib.sha1(key + GUID).digest()).decode("ascii")


def new_key():
    return base64.b64encode(os.urandom(16)).decode("ascii")


# ---- frames ------------------------------------------------------------

def encode_length(n, form=None):
    """
    The length field of a frame header (first byte without the mask bit,
    then the extended length). form: None for the shortest encoding, or 7,
    16 or 64 to force one (for 16 and 64 the value may be one RFC 6455 5.2
    forbids, on purpose).
    """
    if form is None:
        form = 7 if n <= 125 else 16 if n <= 0xFFFF else 64
    if form == 7:
        assert n <= 125, "a 7-bit length holds at most 125"
        return bytes([n])
    if form == 16:
        assert n <= 0xFFFF
        return bytes([126]) + struct.pack("!H", n)
    if form == 64:
        return bytes([127]) + struct.pack("!Q", n)
    raise ValueError("length form must be 7, 16 or 64")


def mask_bytes(data, key):
    if not data:
        return b""
    k = (key * (len(data) // 4 + 1))[:len(data)]
    return (int.from_bytes(data, "big") ^ int.from_bytes(k, "big")).to_bytes(
        len(data), "big")


def frame_header(opcode, length, fin=True, rsv=0, mask=True, mask_key=None,
                 length_form=None):
    """A frame header alone (with its mask key when masked)."""
    b0 = (0x80 if fin else 0) | ((rsv & 7) << 4) | (opcode & 0xF)
    ln = bytearray(encode_length(length, length_form))
    if mask:
        ln[0] |= 0x80
        if mask_key is None:
            mask_key = os.urandom(4)
        return bytes([b0]) + bytes(ln) + mask_key, mask_key
    return bytes([b0]) + bytes(ln), None


def build_frame(opcode, payload=b"", fin=True, rsv=0, mask=True,
                mask_key=None, length_form=None, declared_len=None):
    """
    One whole frame. declared_len puts another length in the header than
    the payload carries (for header-only frames and lies about length).
    """
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    length = len(payload) if declared_len is None else declared_len
    hdr, key = frame_header(opcode, length, fin, rsv, mask, mask_key,
                            length_form)
    body = mask_bytes(payload, key) if mask else payload
    return hdr + body


def close_payload(code=None, reason=b""):
    if code is None:
        return b""
    if isinstance(reason, str):
        reason = reason.encode("utf-8")
    return struct.pack("!H", code) + reason


class Frame:
    def __init__(self, fin, rsv, opcode, payload, header_len):
        self.fin = fin
        self.rsv = rsv
        self.opcode = opcode
        self.payload = payload
        self.header_len = header_len

    @property
    def close_code(self):
        assert self.opcode == OP_CLOSE
        if len(self.payload) < 2:
            return None
        return struct.unpack("!H", self.payload[:2])[0]

    @property
    def close_reason(self):
        return self.payload[2:]

    def __repr__(self):
        p = self.payload if len(self.payload) <= 40 else (
            self.payload[:40] + b"...")
        return "Frame(fin=%d rsv=%d op=%#x len=%d %r)" % (
            self.fin, self.rsv, self.opcode, len(self.payload), p)


# ---- HTTP --------------------------------------------------------------

class Response:
    def __init__(self, status, reason, headers, raw_head, body=b""):
        self.status = status
        self.reason = reason
        self.headers = headers      # list of (lowercased name, value)
        self.raw_head = raw_head
        self.body = body

    def header(self, name):
        name = name.lower()
        for k, v in self.headers:
            if k == name:
                return v
        return None

    def header_all(self, name):
        name = name.lower()
        return [v for k, v in self.headers if k == name]

    def __repr__(self):
        return "Response(%d %r, %r, body=%r)" % (
            self.status, self.reason, self.headers, self.body[:200])


def parse_head(raw):
    text = raw.decode("latin-1")
    lines = text.split("\r\n")
    status_line = lines[0]
    parts = status_line.split(" ", 2)
    assert len(parts) >= 2 and parts[0].startswith("HTTP/1."), \
        "bad status line %r" % status_line
    status = int(parts[1])
    reason = parts[2] if len(parts) > 2 else ""
    headers = []
    for line in lines[1:]:
        if not line:
            continue
        assert ":" in line, "bad response header line %r" % line
        k, v = line.split(":", 1)
        headers.append((k.strip().lower(), v.strip()))
    return status, reason, headers


class Conn:
    """
    A client connection over a connected socket: HTTP request/response,
    then frames. Bytes that arrive after a response head stay in the buffer
    for the frame reader.
    """

    def __init__(self, sock, timeout=DEFAULT_TIMEOUT):
        self.sock = sock
        self.timeout = timeout
        self.buf = bytearray()
        self.eof = False
        sock.settimeout(timeout)

    # -- low level --

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def send(self, data):
        self.sock.settimeout(self.timeout)
        self.sock.sendall(data)

    def send_split(self, data, pieces, pause=0.05):
        """Send data in the given piece sizes, pausing between writes so
        the server sees separate reads. Remaining bytes go last."""
        off = 0
        for n in pieces:
            if off >= len(data):
                break
            self.send(data[off:off + n])
            off += n
            time.sleep(pause)
        if off < len(data):
            self.send(data[off:])

    def _fill(self, deadline):
        """Read once into the buffer; raises Closed on EOF/reset, Timeout
        past the deadline."""
        if self.eof:
            raise Closed("connection already at EOF")
        left = deadline - time.monotonic()
        if left <= 0:
            raise Timeout("timed out waiting for data")
        self.sock.settimeout(left)
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            raise Timeout("timed out waiting for data") from None
        except (ConnectionResetError, BrokenPipeError, ssl.SSLEOFError,
                ssl.SSLZeroReturnError) as e:
            self.eof = True
            raise Closed("connection reset: %s" % e) from None
        if not chunk:
            self.eof = True
            raise Closed("EOF")
        self.buf += chunk

    def _need(self, n, deadline):
        while len(self.buf) < n:
            self._fill(deadline)

    def _take(self, n):
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    # -- HTTP --

    def read_response(self, timeout=None, body_until_eof=False):
        """Read a response head and a Content-Length body. With
        body_until_eof and no Content-Length, read the body until EOF."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            idx = self.buf.find(b"\r\n\r\n")
            if idx >= 0:
                break
            assert len(self.buf) < 65536, "response head too long"
            try:
                self._fill(deadline)
            except Closed:
                raise Closed("connection closed before a response head; "
                             "got %r" % bytes(self.buf[:200])) from None
        raw = self._take(idx + 4)
        status, reason, headers = parse_head(raw[:-4])
        resp = Response(status, reason, headers, raw)
        cl = resp.header("content-length")
        if cl is not None:
            n = int(cl)
            assert 0 <= n <= 1 << 20
            self._need(n, deadline)
            resp.body = self._take(n)
        elif body_until_eof and status != 101:
            try:
                while True:
                    self._fill(deadline)
            except Closed:
                pass
            resp.body = self._take(len(self.buf))
        return resp

    def request(self, raw, timeout=None, body_until_eof=False):
        if isinstance(raw, str):
            raw = raw.encode("latin-1")
        self.send(raw)
        return self.read_response(timeout, body_until_eof)

    def expect_eof(self, timeout=3.0, max_bytes=1 << 20):
        """Wait for the server to close TCP. Returns the unread bytes
        that came before EOF, those already buffered included (a test may
        want them empty)."""
        deadline = time.monotonic() + timeout
        try:
            while len(self.buf) <= max_bytes:
                self._fill(deadline)
        except Closed:
            return self._take(len(self.buf))
        except Timeout:
            raise AssertionError("the server did not close the connection "
                                 "within %.1f s" % timeout) from None
        raise AssertionError("more than %d bytes and no EOF" % max_bytes)

    # -- WebSocket --

    def handshake(self, host, path="/echo", headers=None, key=None,
                  version="13", protocols=None, origin=None, timeout=None,
                  trailing=b"", check=True):
        """
        Send an upgrade request (with trailing bytes in the same write,
        e.g. a first frame) and read the response. With check, assert a
        101 whose Sec-WebSocket-Accept matches the key.
        """
        key = key if key is not None else new_key()
        lines = ["GET %s HTTP/1.1" % path, "Host: %s" % host,
                 "Upgrade: websocket", "Connection: Upgrade"]
        if key is not False:
            lines.append("Sec-WebSocket-Key: %s" % key)
        if version is not None:
            lines.append("Sec-WebSocket-Version: %s" % version)
        if protocols:
            lines.append("Sec-WebSocket-Protocol: %s" % protocols)
        if origin:
            lines.append("Origin: %s" % origin)
        for h in headers or []:
            lines.append(h)
        raw = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + trailing
        self.send(raw)
        resp = self.read_response(timeout)
        if check:
            check_upgrade(resp, key)
        return resp

    def send_frame(self, opcode, payload=b"", **kw):
        self.send(build_frame(opcode, payload, **kw))

    def send_text(self, payload, **kw):
        self.send_frame(OP_TEXT, payload, **kw)

    def send_binary(self, payload, **kw):
        self.send_frame(OP_BINARY, payload, **kw)

    def send_close(self, code=None, reason=b"", **kw):
        self.send_frame(OP_CLOSE, close_payload(code, reason), **kw)

    def recv_frame(self, timeout=None, max_len=1 << 24):
        """One server frame. Server frames are never masked (RFC 6455
        5.1) and carry no RSV bits (no extension is agreed)."""
        deadline = time.monotonic() + (timeout or self.timeout)
        self._need(2, deadline)
        b0, b1 = self.buf[0], self.buf[1]
        assert not (b1 & 0x80), "server frame is masked: %r" % bytes(
            self.buf[:14])
        n = b1 & 0x7F
        hl = 2
        if n == 126:
            self._need(4, deadline)
            n = struct.unpack("!H", self.buf[2:4])[0]
            assert n > 125, "server used a non-shortest 16-bit length"
            hl = 4
        elif n == 127:
            self._need(10, deadline)
            n = struct.unpack("!Q", self.buf[2:10])[0]
            assert n > 0xFFFF, "server used a non-shortest 64-bit length"
            assert n < 1 << 63, "server length with the top bit set"
            hl = 10
        assert n <= max_len, "server frame of %d bytes" % n
        self._need(hl + n, deadline)
        self._take(hl)
        payload = self._take(n)
        fin = bool(b0 & 0x80)
        rsv = (b0 >> 4) & 7
        op = b0 & 0xF
        assert rsv == 0, "server frame with RSV bits %d" % rsv
        assert op in KNOWN_OPS, "server frame with opcode %#x" % op
        if op in CONTROL_OPS:
            assert fin, "server sent a fragmented control frame"
            assert n <= 125, "server control frame of %d bytes" % n
        return Frame(fin, rsv, op, payload, hl)

    def recv_message(self, timeout=None, allow_fragments=True):
        """
        One whole data message: (opcode, payload, frame count). Control
        frames in between must not appear (callers read them explicitly).
        """
        deadline = time.monotonic() + (timeout or self.timeout)
        f = self.recv_frame(max(0.001, deadline - time.monotonic()))
        assert f.opcode in (OP_TEXT, OP_BINARY), \
            "expected a data frame, got %r" % f
        op, data, count = f.opcode, bytearray(f.payload), 1
        while not f.fin:
            assert allow_fragments, "message came fragmented"
            f = self.recv_frame(max(0.001, deadline - time.monotonic()))
            assert f.opcode == OP_CONT, "expected a continuation, got %r" % f
            data += f.payload
            count += 1
            assert count < 100000
        return op, bytes(data), count

    def expect_close(self, code, timeout=None, skip_data=False, reply=True,
                     eof_timeout=3.0):
        """
        Assert the server closes with code: the next frame is a close frame
        with that code (code None: an empty close), then, after our close
        reply, TCP EOF. code may be a tuple of accepted codes. With
        skip_data, data frames before the close are skipped (bounded).
        Returns the close frame.
        """
        deadline = time.monotonic() + (timeout or self.timeout)
        skipped = 0
        while True:
            left = max(0.001, deadline - time.monotonic())
            try:
                f = self.recv_frame(left)
            except Closed as e:
                raise AssertionError(
                    "expected a close frame with code %r, the connection "
                    "ended instead (%s)" % (code, e)) from None
            except Timeout:
                raise AssertionError(
                    "expected a close frame with code %r, nothing came "
                    "within the deadline" % (code,)) from None
            if f.opcode == OP_CLOSE:
                break
            if skip_data and f.opcode in (OP_TEXT, OP_BINARY, OP_CONT,
                                          OP_PONG):
                skipped += 1
                assert skipped < 10000
                continue
            raise AssertionError("expected a close frame with code %r, "
                                 "got %r" % (code, f))
        codes = code if isinstance(code, tuple) else (code,)
        assert f.close_code in codes, \
            "close code %r (reason %r), expected %r" % (
                f.close_code, f.close_reason, code)
        if f.close_code is not None:
            try:
                f.close_reason.decode("utf-8")
            except UnicodeDecodeError:
                raise AssertionError("server close reason is not UTF-8: %r"
                                     % f.close_reason) from None
        if reply:
            try:
                self.send_close(f.close_code if f.close_code is not None
                                else None)
            except OSError:
                pass
        rest = self.expect_eof(eof_timeout)
        assert rest == b"", "bytes after the close frame: %r" % rest[:100]
        return f

    def echo(self, opcode, payload, timeout=None):
        """Send one message and assert it comes back unchanged."""
        self.send_frame(opcode, payload)
        op, data, _ = self.recv_message(timeout)
        assert op == opcode, "echo opcode %#x, sent %#x" % (op, opcode)
        assert data == payload, "echo of %d bytes differs (got %d)" % (
            len(payload), len(data))


def check_upgrade(resp, key):
    """RFC 6455 4.2.2 / 4.1: what a client must check in a 101."""
    assert resp.status == 101, "expected 101, got %r" % resp
    up = resp.header("upgrade")
    assert up is not None and up.lower() == "websocket", resp
    conn = resp.header("connection")
    assert conn is not None and "upgrade" in [
        t.strip().lower() for t in conn.split(",")], resp
    assert resp.header("sec-websocket-accept") == accept_key(key), \
        "Sec-WebSocket-Accept %r, expected %r" % (
            resp.header("sec-websocket-accept"), accept_key(key))
    assert resp.header("sec-websocket-extensions") is None, \
        "no extension was offered: %r" % resp
