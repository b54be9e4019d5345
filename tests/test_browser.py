"""
The built-in chat page in a real browser (issue 8).

tests/browser/chat.mjs drives Debian's Chromium through playwright-core
(npm, installed into tests/browser/node_modules from the committed
package-lock.json) against a server started here with the conftest
fixture, and restarts that server on the same port when the script asks
("@@ stop", "@@ start" on its stdout; "ok" back on its stdin). Screenshots
go to tests/out/.

Skipped, loudly, only when Chromium or Node.js is not installed (make test
installs both) or playwright-core cannot be installed from npm.
"""

import json
import os
import select
import shutil
import subprocess
import sys
import time

import pytest

from conftest import ROOT, vkws_bin

HERE = os.path.dirname(os.path.abspath(__file__))
BROWSER_DIR = os.path.join(HERE, "browser")
OUT_DIR = os.path.join(HERE, "out")
SCRIPT = os.path.join(BROWSER_DIR, "chat.mjs")
SECRET = "browser-test-secret"
API_KEY = "browser-test-key"
# The whole browser run; it usually takes well under a minute.
RUN_DEADLINE = 300.0
NPM_DEADLINE = 300.0

# /usr/bin/chromium is Debian's wrapper script; playwright wants the
# binary itself.
CHROMIUM_PATHS = ("/usr/lib/chromium/chromium", "/usr/lib/chromium-browser/chromium-browser")

USERS = {
    "alice": {"name": "Alice"},
    "bob": {"name": "Bob"},
    "carol": {"name": "Carol"},
}


def loud_skip(why):
    msg = "BROWSER TEST SKIPPED: %s" % why
    sys.stderr.write("\n%s\n%s\n%s\n" % ("!" * 72, msg, "!" * 72))
    pytest.skip(msg)


def chromium():
    env = os.environ.get("VKWS_CHROMIUM")
    for p in ((env,) if env else ()) + CHROMIUM_PATHS:
        if os.path.isfile(p) and os.access(p, os.X_OK):
            return p
    return None


def node():
    return shutil.which("node") or shutil.which("nodejs")


def ensure_playwright():
    """Install playwright-core from the lock file if it is not there."""
    if os.path.isdir(os.path.join(BROWSER_DIR, "node_modules",
                                  "playwright-core")):
        return
    npm = shutil.which("npm")
    if npm is None:
        loud_skip("npm is not installed (apt-get install npm)")
    try:
        r = subprocess.run([npm, "ci", "--no-audit", "--no-fund"],
                           cwd=BROWSER_DIR, stdin=subprocess.DEVNULL,
                           capture_output=True, timeout=NPM_DEADLINE)
    except subprocess.TimeoutExpired:
        loud_skip("npm ci in tests/browser took over %.0f s" % NPM_DEADLINE)
    if r.returncode != 0:
        loud_skip("npm ci in tests/browser failed:\n%s" %
                  r.stderr.decode("utf-8", "replace")[-2000:])


def token(uid, info):
    r = subprocess.run([vkws_bin(), "token", "--uid", uid, "--secret",
                        SECRET, "--ttl", "3600", "--info", json.dumps(info)],
                       capture_output=True, timeout=10, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    return r.stdout.decode().strip()


def try_start(server, flags):
    """A server from the conftest factory (stopped and checked at
    teardown), or None if it would not start with these flags."""
    try:
        return server(*flags)
    except pytest.fail.Exception:
        return None


def test_chat_page_in_chromium(server, transport, tmp_path):
    exe = chromium()
    if exe is None:
        loud_skip("no Chromium at %s (apt-get install chromium)"
                  % " or ".join(CHROMIUM_PATHS))
    nodejs = node()
    if nodejs is None:
        loud_skip("Node.js is not installed (apt-get install nodejs)")
    ensure_playwright()
    os.makedirs(OUT_DIR, exist_ok=True)

    flags = ["--secret", SECRET, "--api-key", API_KEY]
    data_dir = str(tmp_path / "data")
    os.mkdir(data_dir)
    # With a store the restart keeps history; without one the page must
    # still catch up (its rooms start over, and it notices).
    # VKWS_BROWSER_NO_STORE=1 checks the restart without the store.
    first = None
    if os.environ.get("VKWS_BROWSER_NO_STORE") != "1":
        first = try_start(server, flags + ["--data-dir", data_dir])
    if first is not None:
        flags += ["--data-dir", data_dir]
    else:
        sys.stderr.write("\nbrowser test: --data-dir does not work here; "
                         "the restart keeps no history\n")
        first = server(*flags)
    # Restarts come back on the same port.
    tls = transport.http_scheme == "https"
    flags += ["--tls-listen" if tls else "--listen",
              "%s:%d" % (first.host, first.port)]
    current = [first]

    cfg = {
        "base": "%s://%s:%d" % (transport.http_scheme, first.host,
                                first.port),
        "tls": tls,
        "prefix": "browser-%s" % ("tls-" if tls else ""),
        "chromium": exe,
        "out": OUT_DIR,
        "apiKey": API_KEY,
        "dataDir": "--data-dir" in flags,
        "tokens": {u: token(u, info) for u, info in USERS.items()},
    }
    env = dict(os.environ, VKWS_BROWSER=json.dumps(cfg))
    if tls:
        # The script's own fetch() of /api trusts the test CA; Chromium
        # is told to accept the test certificate (ignoreHTTPSErrors).
        import tls_util
        env["NODE_EXTRA_CA_CERTS"] = tls_util.ca_file()
    run_script([nodejs, SCRIPT], env,
               lambda cmd: _serve(cmd, server, current, flags))
    for name in ("alice-desktop", "alice-phone", "bob-phone",
                 "bob-phone-scrolled", "bob-phone-members",
                 "bob-desktop", "carol-desktop"):
        assert os.path.getsize(os.path.join(
            OUT_DIR, "%s%s.png" % (cfg["prefix"], name))) > 1000


def run_script(argv, env, serve):
    """Run a script of tests/browser, serving its @@ requests, until it
    ends (the whole run bounded by RUN_DEADLINE); return its output lines
    once it has exited 0 and said "== all checks passed"."""
    name = os.path.basename(argv[-1])
    proc = subprocess.Popen(argv, cwd=BROWSER_DIR, env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    lines = []
    try:
        _drive(proc, serve, lines, name)
        rc = proc.wait(30)
        err = proc.stderr.read().decode("utf-8", "replace")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    out = "\n".join(lines)
    print(out)
    assert rc == 0, "%s failed:\n%s\n%s" % (name, out[-6000:], err[-6000:])
    assert "== all checks passed" in lines
    return lines


def _drive(proc, serve, lines, name):
    """Relay the script's output until it ends, serving its @@ requests;
    the whole run is bounded by RUN_DEADLINE."""
    deadline = time.monotonic() + RUN_DEADLINE
    fd = proc.stdout.fileno()
    pending = b""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError("%s ran past %.0f s:\n%s"
                                 % (name, RUN_DEADLINE, "\n".join(lines[-40:])))
        r, _, _ = select.select([fd], [], [], left)
        if not r:
            continue
        chunk = os.read(fd, 65536)
        if not chunk:
            return
        pending += chunk
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            text = line.decode("utf-8", "replace")
            lines.append(text)
            if text.startswith("@@ "):
                reply = serve(text[3:].strip())
                try:
                    proc.stdin.write((reply + "\n").encode())
                    proc.stdin.flush()
                except BrokenPipeError:
                    # The script ended while asking: its exit code and
                    # output, which the caller checks, say why.
                    return


def _serve(cmd, server, current, flags):
    """Stop the running server (it must exit 0) or start it again."""
    if cmd == "stop":
        rc = current[-1].stop()
        if rc != 0:
            return "error: server exit code %r: %s" % (
                rc, current[-1].stderr()[-500:])
        return "ok"
    if cmd == "start":
        s = try_start(server, flags)
        if s is None:
            return "error: the server did not start again on its port"
        current.append(s)
        return "ok %d" % s.port
    return "error: unknown request " + cmd
