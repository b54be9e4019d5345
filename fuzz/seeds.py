#!/usr/bin/env python3
"""
seeds.py: writes the seed corpus fuzz/corpus/<target>/ from the vectors
below (RFC examples, each error a parser must report, and the edge cases
of each limit). Run it again after changing a vector; the files it
writes are committed, and so are the regression inputs `make fuzz` adds
(crash-*), which this script never touches.

    /usr/bin/python3 fuzz/seeds.py
"""

import base64
import hashlib
import hmac
import json
import os
import struct
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")

# ---- frame: byte 0 = 0x80 (masking optional) | limit / 16 ----------------

MASK = bytes([0x37, 0xFA, 0x21, 0x3D])  # RFC 6455 5.7


def frame(op, payload=b"", fin=True, mask=True, rsv=0, form=None):
    b0 = (0x80 if fin else 0) | rsv << 4 | op
    n = len(payload)
    if form is None:
        form = 7 if n <= 125 else 16 if n <= 0xFFFF else 64
    mbit = 0x80 if mask else 0
    if form == 7:
        h = bytes([b0, mbit | n])
    elif form == 16:
        h = bytes([b0, mbit | 126]) + struct.pack("!H", n)
    else:
        h = bytes([b0, mbit | 127]) + struct.pack("!Q", n)
    if not mask:
        return h + payload
    return h + MASK + bytes(c ^ MASK[i % 4] for i, c in enumerate(payload))


MASKED = 0x3F          # need mask, limit 1008
OPTIONAL = 0x80 | 0x3F  # masking optional (RFC 6455 5.7 unmasked examples)
SMALL = 0x01           # need mask, limit 16

FRAME = {
    # RFC 6455 5.7 examples.
    "rfc-5.7-unmasked-hello": bytes([OPTIONAL]) + bytes.fromhex(
        "810548656c6c6f"),
    "rfc-5.7-masked-hello": bytes([MASKED]) + bytes.fromhex(
        "818537fa213d7f9f4d5158"),
    "rfc-5.7-fragmented": bytes([OPTIONAL]) + bytes.fromhex(
        "010348656c80026c6f"),
    "rfc-5.7-ping": bytes([OPTIONAL]) + bytes.fromhex("890548656c6c6f"),
    "rfc-5.7-masked-pong": bytes([MASKED]) + bytes.fromhex(
        "8a8537fa213d7f9f4d5158"),
    "rfc-5.7-256-binary": bytes([0x80 | 0x3F]) + bytes.fromhex("827e0100")
    + bytes(256),
    "rfc-5.7-64k-header": bytes([0x80 | 0x3F]) + bytes.fromhex(
        "827f0000000000010000"),
    # Messages the server accepts.
    "text-json": bytes([MASKED]) + frame(1, b'{"type":"ping"}'),
    "text-utf8": bytes([MASKED]) + frame(1, "κόσμε".encode()),
    "text-split-utf8": bytes([MASKED]) + frame(1, "κό".encode()[:3],
                                               fin=False)
    + frame(0, "κό".encode()[3:]),
    "ping-in-fragments": bytes([MASKED]) + frame(1, b"ab", fin=False)
    + frame(9, b"p") + frame(0, b"cd"),
    "binary-empty": bytes([MASKED]) + frame(2),
    # Long payloads the pieces path (ws_rx_payload) cuts at many points.
    "pieces-text-900": bytes([MASKED]) + frame(
        1, ("aé€😀" * 90).encode()[:900]),
    "pieces-bad-middle": bytes([MASKED]) + frame(
        1, b"a" * 450 + b"\xff" + b"a" * 449),
    "pieces-fragments": bytes([MASKED]) + frame(1, "κόσ".encode()[:5],
                                                fin=False)
    + frame(9, b"p") + frame(0, b"", fin=False)
    + frame(0, "κόσ".encode()[5:] + b"z" * 300),
    "close-1000-reason": bytes([MASKED]) + frame(8, b"\x03\xe8bye"),
    "close-empty": bytes([MASKED]) + frame(8),
    "close-4001": bytes([MASKED]) + frame(8, b"\x0f\xa1"),
    "ping-125": bytes([MASKED]) + frame(9, b"x" * 125),
    "len16-126": bytes([MASKED]) + frame(2, b"y" * 126),
    "at-limit": bytes([SMALL]) + frame(1, b"z" * 16),
    "two-messages": bytes([MASKED]) + frame(1, b"one") + frame(2, b"two"),
    # Each error of ws_frame.h.
    "err-rsv1": bytes([MASKED]) + frame(1, b"x", rsv=4),
    "err-rsv3": bytes([MASKED]) + frame(1, b"x", rsv=1),
    "err-opcode-3": bytes([MASKED]) + frame(3, b"x"),
    "err-opcode-b": bytes([MASKED]) + frame(0xB, b"x"),
    "err-unmasked": bytes([MASKED]) + frame(1, b"x", mask=False),
    "err-ctl-fragmented": bytes([MASKED]) + frame(9, b"x", fin=False),
    "err-ctl-126": bytes([MASKED]) + frame(9, b"x" * 126),
    "err-len16-short-form": bytes([MASKED]) + frame(1, b"abc", form=16),
    "err-len64-short-form": bytes([MASKED]) + frame(1, b"abc", form=64),
    "err-len64-msb": bytes([MASKED]) + bytes.fromhex(
        "82ff8000000000000000") + MASK,
    "err-too-big": bytes([SMALL]) + frame(1, b"z" * 17),
    "err-too-big-fragments": bytes([SMALL]) + frame(1, b"z" * 10,
                                                    fin=False)
    + frame(0, b"z" * 7),
    "err-cont-first": bytes([MASKED]) + frame(0, b"x"),
    "err-text-in-fragmented": bytes([MASKED]) + frame(1, b"a", fin=False)
    + frame(1, b"b"),
    "err-utf8": bytes([MASKED]) + frame(1, b"\xc0\xaf"),
    "err-utf8-ends-mid-char": bytes([MASKED]) + frame(1, b"\xe2\x82"),
    "err-utf8-surrogate": bytes([MASKED]) + frame(1, b"\xed\xa0\x80"),
    "err-close-1-byte": bytes([MASKED]) + frame(8, b"\x03"),
    "err-close-1005": bytes([MASKED]) + frame(8, b"\x03\xed"),
    "err-close-999": bytes([MASKED]) + frame(8, b"\x03\xe7"),
    "err-close-5000": bytes([MASKED]) + frame(8, b"\x13\x88"),
    "err-close-bad-reason": bytes([MASKED]) + frame(8, b"\x03\xe8\xff"),
    "truncated-header": bytes([MASKED]) + bytes.fromhex("81fe00"),
    "truncated-mask": bytes([MASKED]) + bytes.fromhex("818537fa"),
    "truncated-payload": bytes([MASKED]) + frame(1, b"hello")[:-2],
}

# ---- utf8: byte 0 also picks the split point ----------------------------

UTF8 = {
    "ascii": b"Hello, world",
    "kosme": "κόσμε".encode(),
    "boundaries": "\u0080\u07ff\u0800\uffff\U00010000\U0010ffff".encode(),
    "cjk": "连接成功 认证失败 未知操作".encode(),
    "emoji": "\U0001F600\U0001F680".encode(),
    "bom": b"\xef\xbb\xbf",
    "u2028": "\u2028\u2029".encode(),
    "empty": b"",
    "overlong-slash-2": b"\xc0\xaf",
    "overlong-slash-3": b"\xe0\x80\xaf",
    "overlong-slash-4": b"\xf0\x80\x80\xaf",
    "overlong-max-2": b"\xc1\xbf",
    "surrogate-high": b"\xed\xa0\x80",
    "surrogate-low": b"\xed\xbf\xbf",
    "surrogate-pair": b"\xed\xa0\x80\xed\xb0\x80",
    "above-10ffff": b"\xf4\x90\x80\x80",
    "f5": b"\xf5\x80\x80\x80",
    "fe-ff": b"\xfe\xff",
    "lone-continuation": b"\x80",
    "truncated-2": b"a\xc3",
    "truncated-3": b"a\xe2\x82",
    "truncated-4": b"a\xf0\x9f\x98",
    "cut-then-ascii": b"\xe2\x82a",
    "autobahn-6.4.1": "κόσμε".encode() + b"\xed\xa0\x80edited",
    "ascii-del-nul": b"\x00\x7f",
}

# ---- http: request heads ------------------------------------------------

KEY = "dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455 1.3


def head(lines, eol="\r\n"):
    return (eol.join(lines) + eol + eol).encode()


UPGRADE = ["GET /chat HTTP/1.1", "Host: server.example.com",
           "Upgrade: websocket", "Connection: Upgrade",
           "Sec-WebSocket-Key: " + KEY, "Origin: http://example.com",
           "Sec-WebSocket-Protocol: chat, superchat",
           "Sec-WebSocket-Version: 13"]

HTTP = {
    "rfc6455-1.3-upgrade": head(UPGRADE),
    "upgrade-ws-token": head(["GET /ws?token=a.b.c&x=1 HTTP/1.1",
                              "Host: 127.0.0.1",
                              "Connection: keep-alive, Upgrade",
                              "Upgrade: WebSocket",
                              "Sec-WebSocket-Key: " + KEY,
                              "Sec-WebSocket-Version: 13",
                              "Sec-WebSocket-Protocol: vkws.json"]),
    "query-percent": head(["GET /ws?token=a%2Eb%2ec+d&since=5 HTTP/1.1",
                           "Host: x"]),
    "query-bad-percent": head(["GET /ws?token=%zz HTTP/1.1", "Host: x"]),
    "query-cut-percent": head(["GET /ws?token=ab%4 HTTP/1.1", "Host: x"]),
    "query-flag-only": head(["GET /ws?token&room= HTTP/1.1", "Host: x"]),
    "bare-lf": head(["GET / HTTP/1.1", "Host: x"], "\n"),
    "leading-crlf": b"\r\n\r\n" + head(["GET /healthz HTTP/1.1"]),
    "post-api": head(["POST /api HTTP/1.1", "Host: x",
                      "Authorization: apikey k",
                      "Content-Type: application/json",
                      "Content-Length: 27"])
    + b'{"method":"getStats"}      ',
    "http10": head(["GET /metrics HTTP/1.0"]),
    "no-headers": head(["GET / HTTP/1.1"]),
    "empty-value": head(["GET / HTTP/1.1", "X-Empty:", "Y:   "]),
    "value-blanks": head(["GET / HTTP/1.1", "Upgrade: \t websocket \t"]),
    "max-headers": head(["GET / HTTP/1.1"]
                        + ["H%d: v" % i for i in range(32)]),
    "err-too-many": head(["GET / HTTP/1.1"]
                         + ["H%d: v" % i for i in range(33)]),
    "err-obs-fold": head(["GET / HTTP/1.1", "X: a", " b"]),
    "err-space-before-colon": head(["GET / HTTP/1.1", "Host : x"]),
    "err-no-colon": head(["GET / HTTP/1.1", "Host"]),
    "err-http2": head(["GET / HTTP/2.0"]),
    "err-no-version": head(["GET /"]),
    "err-double-space": head(["GET  / HTTP/1.1"]),
    "err-ctl-in-value": head(["GET / HTTP/1.1", "X: a\x01b"]),
    "err-nul-in-target": head(["GET /\x00 HTTP/1.1"]),
    "err-lowercase-version": head(["GET / http/1.1"]),
    "incomplete": b"GET / HTTP/1.1\r\nHost: x\r\n",
    "incomplete-cr": b"GET / HTTP/1.1\r\nHost: x\r\n\r",
    "bad-key": head(["GET /ws HTTP/1.1", "Upgrade: websocket",
                     "Connection: Upgrade",
                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=",
                     "Sec-WebSocket-Version: 13"]),
    "utf8-value": head(["GET / HTTP/1.1", "X: κόσμε"]),
}

# ---- json: requests of PROTOCOL.md 3 and 4, and the grammar's edges -----

JSON = {
    "auth": '{"type":"auth","token":"eyJ.eyJ.sig"}',
    "chat": '{"type":"chat","content":"hello","room":"general","id":1}',
    "chat-unicode": '{"type":"chat","content":"连接 \\ud83d\\ude00 '
                    '\\u2028","id":"a-string-id"}',
    "private": '{"type":"private","targetUserId":"bob","content":"hi"}',
    "join-since": '{"type":"join","room":"r1","since":42}',
    "leave": '{"type":"leave","room":"r1"}',
    "ping": '{"type":"ping"}',
    "pong": ' {"type" : "pong"} \n',
    "id-null": '{"type":"ping","id":null}',
    "api-broadcast": '{"method":"broadcastToRoom","params":{"room":'
                     '"general","data":{"x":[1,2,{"y":null}]}}}',
    "api-rooms": '{"method":"broadcastToRooms","params":{"rooms":'
                 '["a","b"],"data":"text"}}',
    "api-create": '{"method":"createRoom","params":{"room":"r",'
                  '"maxClients":10,"persistent":true}}',
    "duplicate-keys": '{"type":"chat","type":"ping"}',
    "escapes": '["\\"\\\\\\/\\b\\f\\n\\r\\t\\u0000\\u00e9\\uFFFF"]',
    "numbers": '[0,-0,1.5,-1.5e10,1E+2,9223372036854775807,'
               '-9223372036854775808,9223372036854775808,1e400,'
               '1700000000.9,17e8]',
    "literals": '[true,false,null]',
    "root-number": '  -12 ',
    "root-string": '"s"',
    "root-true": 'true',
    "empty-object": '{}',
    "empty-array": '[]',
    "nested-32": '[' * 32 + ']' * 32,
    "err-nested-33": '[' * 33 + ']' * 33,
    "err-lone-surrogate": '["\\ud800"]',
    "err-low-surrogate-first": '["\\udc00\\ud800"]',
    "err-ctl-in-string": '["a\x01b"]',
    "err-trailing-comma": '[1,2,]',
    "err-leading-zero": '[01]',
    "err-bare-dot": '[1.]',
    "err-single-quote": "{'a':1}",
    "err-two-values": '{} {}',
    "err-unclosed": '{"type":"chat"',
    "err-key-not-string": '{1:2}',
    "err-bad-escape": '["\\x"]',
    "err-empty": '',
    "err-spaces": '   ',
    "err-nan": '[NaN]',
}
JSON_BIN = {
    "err-bad-utf8": b'["\xc0\xaf"]',
    "err-nul-outside": b'{}\x00',
    "utf8-raw": '{"type":"chat","content":"κόσμε"}'.encode(),
}

# ---- jwt: byte 0 % 3 picks the mode --------------------------------------

SECRET = b"fuzz-secret"  # the key of fuzz_jwt.c


def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=")


def token(header, payload, key=SECRET):
    h = b64u(header.encode() if isinstance(header, str) else header)
    p = b64u(payload.encode() if isinstance(payload, str) else payload)
    sig = hmac.new(key, h + b"." + p, hashlib.sha256).digest()
    return h + b"." + p + b"." + b64u(sig)


HS = '{"alg":"HS256","typ":"JWT"}'
JWT = {
    # Mode 0: whole tokens (NOW in fuzz_jwt.c is 1700000000).
    "tok-valid": b"\x00" + token(HS, '{"uid":"alice"}'),
    "tok-valid-info": b"\x00" + token(HS, '{"uid":"bob","exp":1800000000,'
                                      '"userInfo":{"name":"Bob","n":[1]}}'),
    "tok-expired": b"\x00" + token(HS, '{"uid":"a","exp":1600000000}'),
    "tok-nbf-future": b"\x00" + token(HS, '{"uid":"a","nbf":1800000000}'),
    "tok-wrong-key": b"\x00" + token(HS, '{"uid":"a"}', b"other"),
    "tok-alg-none": b"\x00" + b64u(b'{"alg":"none"}') + b"."
    + b64u(b'{"uid":"a"}') + b".",
    "tok-two-dots": b"\x00a.b",
    "tok-four-parts": b"\x00a.b.c.d",
    "tok-padding": b"\x00" + token(HS, '{"uid":"a"}') + b"=",
    "tok-empty-parts": b"\x00..",
    # Mode 1: header \n payload, signed by the harness.
    "signed-minimal": b"\x01" + b'{"alg":"HS256"}\n{"uid":"u"}',
    "signed-typ-lower": b"\x01" + b'{"alg":"HS256","typ":"jwt"}\n'
    b'{"uid":"u","exp":1800000000.5}',
    "signed-alg-lower": b"\x01" + b'{"alg":"hs256"}\n{"uid":"u"}',
    "signed-crit": b"\x01" + b'{"alg":"HS256","crit":["x"]}\n{"uid":"u"}',
    "signed-no-uid": b"\x01" + HS.encode() + b'\n{"sub":"u"}',
    "signed-uid-64": b"\x01" + HS.encode() + b'\n{"uid":"' + b"u" * 64
    + b'"}',
    "signed-uid-65": b"\x01" + HS.encode() + b'\n{"uid":"' + b"u" * 65
    + b'"}',
    "signed-uid-ctl": b"\x01" + HS.encode() + b'\n{"uid":"a\\u0001"}',
    "signed-uid-escaped": b"\x01" + HS.encode()
    + b'\n{"uid":"\\u00e9\\ud83d\\ude00"}',
    "signed-info-array": b"\x01" + HS.encode()
    + b'\n{"uid":"u","userInfo":[1]}',
    "signed-exp-negative": b"\x01" + HS.encode()
    + b'\n{"uid":"u","exp":-1}',
    "signed-exp-huge": b"\x01" + HS.encode()
    + b'\n{"uid":"u","exp":253402300800}',
    "signed-exp-string": b"\x01" + HS.encode()
    + b'\n{"uid":"u","exp":"1800000000"}',
    "signed-payload-array": b"\x01" + HS.encode() + b'\n["uid"]',
    "signed-header-bad-json": b"\x01" + b'{"alg":"HS256"\n{"uid":"u"}',
    "signed-dup-uid": b"\x01" + HS.encode()
    + b'\n{"uid":"first","uid":"second"}',
    # Mode 2: base64url.
    "b64-empty": b"\x02",
    "b64-one": b"\x02QQ",
    "b64-noncanonical": b"\x02QR",
    "b64-three": b"\x02QUJD",
    "b64-4k+1": b"\x02QUJDR",
    "b64-padding": b"\x02QQ==",
    "b64-std-alphabet": b"\x02a+/b",
    "b64-url-alphabet": b"\x02a-_b",
}


# ---- store: log files (store.h) ------------------------------------------


def rec(rtype, payload):
    head = struct.pack("<I", len(payload)) + bytes([rtype])
    crc = zlib.crc32(head + payload) & 0xFFFFFFFF
    return head + struct.pack("<I", crc) + payload


def name(room):
    return bytes([len(room)]) + room


LOG_HEAD = rec(1, b"VKWL" + struct.pack("<I", 1))
CHAT_FRAME = (b'{"type":"chat","room":"general","seq":1,"from":{"clientId":'
              b'"10000","userId":"alice","userInfo":{}},"message":"hi",'
              b'"timestamp":1}')
LOG_ROOM = rec(2, name(b"lobby") + struct.pack("<I", 5) + b"\x01" +
               struct.pack("<Q", 7))
LOG_CHAT = rec(3, name(b"general") + struct.pack("<Q", 1) + CHAT_FRAME)
LOG_DEL = rec(4, name(b"lobby"))
LOG = LOG_HEAD + LOG_ROOM + LOG_CHAT + LOG_DEL
STORE = {
    "empty-log": LOG_HEAD,
    "log": LOG,
    "torn-tail": LOG[:-3],
    "torn-length": LOG_HEAD + LOG_ROOM[:2],
    "flipped-middle": LOG[:len(LOG_HEAD) + 12] + bytes(
        [LOG[len(LOG_HEAD) + 12] ^ 0x40]) + LOG[len(LOG_HEAD) + 13:],
    "no-header": LOG_ROOM + LOG_CHAT,
    "bad-type": LOG_HEAD + rec(9, b"x"),
    "zero-length": LOG_HEAD + b"\0" * 9,
    "huge-length": LOG_HEAD + b"\xff\xff\xff\x7f\x03",
    "chat-short-payload": LOG_HEAD + rec(3, name(b"general") + b"\x01"),
    "room-long-name": LOG_HEAD + rec(4, bytes([200]) + b"r" * 200),
}

# ---- resp: Redis replies as the cluster link reads them (issue 15) ------

RESP = {
    "simple": b"+OK\r\n",
    "error": b"-ERR unknown command\r\n",
    "int": b":-42\r\n:9223372036854775807\r\n",
    "bulk": b"$5\r\nhello\r\n$0\r\n\r\n$-1\r\n",
    "array": b"*2\r\n$3\r\nfoo\r\n:7\r\n*-1\r\n*0\r\n",
    "message": b"*3\r\n$7\r\nmessage\r\n$9\r\nvkws:room\r\n"
               b"$13\r\n{\"seq\":1,\"x\"}\r\n",
    "push": b">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n",
    "subscribe": b"*3\r\n$9\r\nsubscribe\r\n$4\r\nvkws\r\n:1\r\n",
    "resp3": b"_\r\n#t\r\n#f\r\n,1.5\r\n,-inf\r\n"
             b"(123456789012345678901234567890\r\n!5\r\nERROR\r\n"
             b"=7\r\ntxt:abc\r\n",
    "map": b"%2\r\n+server\r\n$5\r\nredis\r\n+proto\r\n:3\r\n"
           b"~2\r\n+a\r\n+b\r\n",
    "attr": b"|1\r\n+ttl\r\n:3600\r\n*2\r\n:1\r\n:2\r\n",
    "nested": b"*3\r\n*2\r\n:1\r\n:2\r\n*0\r\n+x\r\n" +
              b"*1\r\n" * 9 + b":1\r\n",
    "history": b"*2\r\n:17\r\n*2\r\n$10\r\n{\"seq\":16}\r\n"
               b"$10\r\n{\"seq\":17}\r\n",
    "bad_line": b"+a\rb\r\n",
    "bad_type": b"@\r\n",
    "bad_len": b"$536870913\r\n",
    "stream": b"$?\r\n;4\r\nHell\r\n;0\r\n",
    "bad_num": b":12x\r\n",
    "big_count": b"*100000\r\n",
}


def write(target, vectors):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    for name, data in vectors.items():
        if isinstance(data, str):
            data = data.encode()
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)


def main():
    write("frame", FRAME)
    write("utf8", UTF8)
    write("http", HTTP)
    write("json", JSON)
    write("json", JSON_BIN)
    write("jwt", JWT)
    write("store", STORE)
    write("resp", RESP)


if __name__ == "__main__":
    main()
