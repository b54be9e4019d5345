"""
The client library vkws.js (issue 16) against the real server.

- /vkws.js is served byte for byte from web/vkws.js with the headers and
  entity tag of the page's other files.
- clients/js packs with `npm pack` offline, and its vkws.d.ts compiles
  against ordinary use (tests/client/types.ts, tsc --strict).
- tests/browser/resume.mjs runs the library as the server serves it, in
  Node and in headless Chromium, while this file kills the server
  (SIGKILL), starts it again, stops it (SIGTERM, server_shutdown) and
  starts it again on the same port and --data-dir: every receiver must see
  every message once and in seq order.

The library's unit tests (fake socket) are tests/client/unit.test.mjs,
run by tests/run with node --test.
"""

import json
import os
import shutil
import signal
import subprocess
import tarfile


from conftest import ROOT
from test_browser import (chromium, ensure_playwright, loud_skip, node,
                          run_script, try_start)

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(HERE, "browser", "resume.mjs")
LIB = os.path.join(ROOT, "web", "vkws.js")
PKG = os.path.join(ROOT, "clients", "js")
SECRET = "client-test-secret"
API_KEY = "client-test-key"
USERS = {"alice": {"name": "Alice"}, "bob": {"name": "Bob"},
         "carol": {"name": "Carol"}}


def read(path):
    with open(path, "rb") as f:
        return f.read()


def test_vkws_js_served_like_the_page(server):
    s = server("--secret", SECRET)
    r = s.get("/vkws.js")
    assert r.status == 200
    assert r.body == read(LIB)
    assert r.header("content-type") == "text/javascript; charset=utf-8"
    page = s.get("/app.js")
    for h in ("cache-control", "x-content-type-options", "referrer-policy",
              "x-frame-options", "content-security-policy"):
        assert r.header(h) == page.header(h), h
    etag = r.header("etag")
    assert etag and etag != page.header("etag")
    again = s.get("/vkws.js", headers=["If-None-Match: " + etag])
    assert again.status == 304
    assert again.header("etag") == etag


def test_npm_pack_offline(tmp_path):
    npm = shutil.which("npm")
    assert npm, "npm is not installed (make deps-test installs it)"
    r = subprocess.run([npm, "pack", "--offline", "--json",
                        "--pack-destination", str(tmp_path)], cwd=PKG,
                       capture_output=True, timeout=120)
    assert r.returncode == 0, r.stderr.decode()
    info = json.loads(r.stdout)[0]
    tgz = tmp_path / info["filename"]
    with tarfile.open(str(tgz)) as t:
        names = sorted(t.getnames())
        assert names == ["package/README.md", "package/package.json",
                         "package/vkws.d.ts", "package/vkws.js"], names
        lib = t.extractfile("package/vkws.js").read()
        meta = json.loads(t.extractfile("package/package.json").read())
    assert lib == read(LIB), "the package holds web/vkws.js as it is"
    assert meta["type"] == "module" and meta["types"] == "./vkws.d.ts"


def test_type_declarations_compile():
    tsc = shutil.which("tsc")
    assert tsc, "tsc is not installed (make deps-test installs " \
        "node-typescript)"
    r = subprocess.run([tsc, "--noEmit", "--strict", "--target", "es2020",
                        "--module", "es2020", "--moduleResolution", "node",
                        "--lib", "es2020,dom",
                        os.path.join(HERE, "client", "types.ts")],
                       capture_output=True, timeout=120, cwd=ROOT)
    assert r.returncode == 0, r.stdout.decode() + r.stderr.decode()


def node_argv(nodejs):
    """Node 20 has WebSocket behind a flag; 22 and later by default."""
    r = subprocess.run([nodejs, "-e", "process.exit(typeof WebSocket === "
                        "'function' ? 0 : 1)"], capture_output=True,
                       timeout=30)
    return [nodejs] if r.returncode == 0 else \
        [nodejs, "--experimental-websocket"]


def run_resume(mode, server, transport, tmp_path, request):
    nodejs = node()
    assert nodejs, "Node.js is not installed (make deps-test installs it)"
    cfg_extra = {}
    if mode == "chromium":
        exe = chromium()
        if exe is None:
            loud_skip("no Chromium (apt-get install chromium)")
        ensure_playwright()
        cfg_extra["chromium"] = exe
    data_dir = str(tmp_path / "data")
    os.mkdir(data_dir)
    flags = ["--secret", SECRET, "--api-key", API_KEY, "--data-dir",
             data_dir]
    first = server(*flags)
    tls = transport.http_scheme == "https"
    flags += ["--tls-listen" if tls else "--listen",
              "%s:%d" % (first.host, first.port)]
    current = [first]
    cfg = dict(cfg_extra, mode=mode, tls=tls, apiKey=API_KEY,
               base="%s://%s:%d" % (transport.http_scheme, first.host,
                                    first.port),
               tokens={u: _token(u, info) for u, info in USERS.items()})
    env = dict(os.environ, VKWS_CLIENT=json.dumps(cfg))
    if tls:
        import tls_util
        env["NODE_EXTRA_CA_CERTS"] = tls_util.ca_file()

    def serve(cmd):
        if cmd in ("kill", "stop"):
            s = current[-1]
            if cmd == "kill":
                # SIGKILL: not a clean exit, so the fixture must not
                # judge its exit code at teardown.
                rc = s.stop(signal.SIGKILL)
                request.node._vkws_servers.remove(s)
                s.release()
                return "ok" if rc == -signal.SIGKILL else \
                    "error: exit %r" % rc
            rc = s.stop()
            return "ok" if rc == 0 else "error: server exit code %r: %s" % (
                rc, s.stderr()[-500:])
        if cmd == "start":
            s = try_start(server, flags)
            if s is None:
                return "error: the server did not start again on its port"
            current.append(s)
            return "ok %d" % s.port
        return "error: unknown request " + cmd

    lines = run_script(node_argv(nodejs) + [SCRIPT], env, serve)
    assert any("each once, in order" in l for l in lines)


def _token(uid, info):
    from conftest import vkws_bin
    r = subprocess.run([vkws_bin(), "token", "--uid", uid, "--secret",
                        SECRET, "--ttl", "3600", "--info", json.dumps(info)],
                       capture_output=True, timeout=10, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    return r.stdout.decode().strip()


def test_library_in_node_across_kill_and_restart(server, transport,
                                                 tmp_path, request):
    run_resume("node", server, transport, tmp_path, request)


def test_library_in_chromium_across_kill_and_restart(server, transport,
                                                     tmp_path, request):
    run_resume("chromium", server, transport, tmp_path, request)


def test_library_in_node_requests_tokens_refresh(server, transport):
    """tests/client/live.mjs: acks and refusal codes, a refused token,
    and re-authentication in place before short tokens expire."""
    from conftest import vkws_bin
    nodejs = node()
    assert nodejs, "Node.js is not installed (make deps-test installs it)"
    s = server("--secret", SECRET)
    cfg = {"base": "%s://%s:%d" % (transport.http_scheme, s.host, s.port),
           "bin": vkws_bin(), "secret": SECRET}
    env = dict(os.environ, VKWS_LIVE=json.dumps(cfg))
    if transport.http_scheme == "https":
        import tls_util
        env["NODE_EXTRA_CA_CERTS"] = tls_util.ca_file()
    r = subprocess.run(node_argv(nodejs) + [
        os.path.join(HERE, "client", "live.mjs")], env=env, cwd=ROOT,
        capture_output=True, timeout=120, stdin=subprocess.DEVNULL)
    out = r.stdout.decode("utf-8", "replace")
    print(out)
    assert r.returncode == 0, out + r.stderr.decode("utf-8", "replace")
    assert "== all checks passed" in out
