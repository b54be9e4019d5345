"""
The built-in chat page over HTTP (issue 8, web.c): the files of web/ are
served from the binary byte for byte, with the headers the page relies on
(Content-Type, a Content-Security-Policy without inline script or style
that lets the page reach /ws, nosniff, Cache-Control) and ETag / 304
revalidation (RFC 9110 13.1.2, 15.4.5). tests/test_browser.py runs the
page itself in Chromium.
"""

import os
import re

import pytest

from conftest import ROOT

WEB = os.path.join(ROOT, "web")
FILES = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/style.css": ("style.css", "text/css; charset=utf-8"),
    "/favicon.svg": ("favicon.svg", "image/svg+xml"),
}


@pytest.fixture
def page_server(server):
    return server("--secret", "web-test-secret")


def read(name):
    with open(os.path.join(WEB, name), "rb") as f:
        return f.read()


def directives(csp):
    out = {}
    for part in csp.split(";"):
        words = part.split()
        if words:
            out[words[0]] = words[1:]
    return out


def test_files_served_byte_for_byte(page_server):
    for path, (name, ctype) in FILES.items():
        r = page_server.get(path)
        assert r.status == 200, path
        assert r.header("content-type") == ctype, path
        assert r.body == read(name), "%s differs from web/%s" % (path, name)
        assert r.header("x-content-type-options") == "nosniff", path
        assert r.header("cache-control") == "no-cache", path
        assert re.fullmatch(r'"[0-9a-f]{8}-[0-9a-f]+"', r.header("etag")), \
            path


def test_csp_allows_no_inline_code_and_reaches_ws(page_server):
    r = page_server.get("/")
    host = "%s:%d" % (page_server.host, page_server.port)
    d = directives(r.header("content-security-policy"))
    assert d["default-src"] == ["'none'"]
    assert d["script-src"] == ["'self'"]
    assert d["style-src"] == ["'self'"]
    assert d["connect-src"] == ["'self'", "ws://" + host, "wss://" + host]
    assert d["frame-ancestors"] == ["'none'"]
    assert "unsafe-inline" not in r.header("content-security-policy")
    # The page itself keeps to the policy: scripts only by src, no style
    # attributes, no inline event handlers.
    html = r.body.decode("utf-8")
    for tag in re.findall(r"<script\b[^>]*>", html):
        assert "src=" in tag, tag
    assert not re.search(r"<script\b[^>]*>\s*[^<\s]", html)
    assert not re.search(r"\sstyle\s*=", html)
    assert not re.search(r"\son[a-z]+\s*=", html)
    assert "<style" not in html


def test_csp_names_no_odd_host(page_server):
    # A Host that could end a source expression is not copied into the
    # policy; 'self' alone remains.
    raw = ("GET / HTTP/1.1\r\nHost: evil.example 'unsafe-inline'\r\n"
           "Connection: close\r\n\r\n")
    r, c = page_server.http(raw)
    c.close()
    assert r.status == 200
    d = directives(r.header("content-security-policy"))
    assert d["connect-src"] == ["'self'"]
    assert d["script-src"] == ["'self'"]


def test_if_none_match(page_server):
    r = page_server.get("/app.js")
    tag = r.header("etag")
    for inm in (tag, "W/" + tag, '"nope", ' + tag, '"x,y" , W/' + tag,
                "*"):
        r2 = page_server.get("/app.js", headers=["If-None-Match: " + inm])
        assert r2.status == 304, inm
        assert r2.body == b""
        # RFC 9110 8.6 and 15.4.5: no Content-Length, but the ETag and
        # Cache-Control of the 200.
        assert r2.header("content-length") is None
        assert r2.header("etag") == tag
        assert r2.header("cache-control") == "no-cache"
    for inm in ('"nope"', tag[:-2] + '"', "W/", tag[1:], '"unterminated'):
        r2 = page_server.get("/app.js", headers=["If-None-Match: " + inm])
        assert r2.status == 200, inm
        assert r2.body == read("app.js")
    # One file's tag does not revalidate another.
    r3 = page_server.get("/style.css", headers=["If-None-Match: " + tag])
    assert r3.status == 200


def test_head_sends_no_body(page_server):
    # A HEAD then a GET on one connection: the second response must come
    # right after the first head (RFC 9110 9.3.2).
    raw = ("HEAD /app.js HTTP/1.1\r\nHost: x\r\n\r\n"
           "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    c = page_server.raw()
    try:
        c.send(raw.encode())
        data = c.expect_eof()
    finally:
        c.close()
    head, _, rest = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"\r\nContent-Length: %d\r\n" % len(read("app.js")) in head
    assert rest.startswith(b"HTTP/1.1 200 OK\r\n"), rest[:80]
    assert rest.endswith(b"\r\n\r\nok")


def test_keep_alive_serves_the_page_and_its_files(page_server):
    c = page_server.raw()
    try:
        for path in ("/", "/app.js", "/style.css", "/favicon.svg", "/"):
            r = c.request("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path)
            assert r.status == 200
            assert r.header("connection") is None
            assert r.body == read(FILES[path][0])
    finally:
        c.close()


def test_other_methods_and_paths(page_server):
    r, c = page_server.http("POST /app.js HTTP/1.1\r\nHost: x\r\n"
                            "Content-Length: 0\r\n\r\n")
    c.close()
    assert r.status == 405
    assert r.header("allow") == "GET, HEAD"
    for path in ("/index.html", "/app.js/", "/APP.JS", "/web/app.js",
                 "/embed.sh", "/app.js%00"):
        assert page_server.get(path).status == 404, path
    # A query string does not change the file.
    r = page_server.get("/app.js?v=1")
    assert r.status == 200 and r.body == read("app.js")
