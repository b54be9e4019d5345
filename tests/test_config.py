"""
The command line and the --config file (main.c).

Command line (issue 13 item 7): an unknown flag is named as unknown
wherever it stands; a bad listener address says what is wrong with it
(host names are refused, by design: README "Command line"); --version; a
bad argument prints the error and one hint line, not the usage; a server
without a secret warns at start; an unreadable secret file gives the
reason and exit 1.

Config file (issue 17): every long flag as a `name value` line, comments,
quotes, bare names for flags without a value; the command line overrides
the file; a bad line names file, line and key and the server does not
start; SIGHUP reads the file again, applies what it can (secret, API key,
limits), logs what takes a restart, and keeps every old setting when the
file has a bad line.
"""
import hashlib
import hmac
import base64
import json
import os
import re
import signal
import subprocess
import time

import pytest

import conftest
from conftest import ROOT, vkws_bin


def run(*args, env=None, timeout=20):
    e = dict(os.environ)
    e.pop("VKWS_SECRET", None)
    e.pop("VKWS_API_KEY", None)
    if env:
        e.update(env)
    p = subprocess.run([vkws_bin()] + list(args), capture_output=True,
                       stdin=subprocess.DEVNULL, timeout=timeout, env=e,
                       cwd=ROOT)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def help_flags():
    """Every flag of the table, from --help (names without dashes, and
    whether each takes a value)."""
    rc, out, _ = run("--help")
    assert rc == 0
    flags = {}
    for line in out.splitlines():
        m = re.match(r"^  --([a-z-]+)(?: ([A-Z:]+))?\s", line + " ")
        if m:
            flags[m.group(1)] = m.group(2)
    assert len(flags) >= 30, out
    return flags


def verify(tok, secret):
    h, p, sig = tok.split(".")
    want = base64.urlsafe_b64encode(hmac.new(
        secret.encode(), (h + "." + p).encode(), hashlib.sha256).digest())
    return want.rstrip(b"=").decode() == sig


def token_with(*args):
    rc, out, err = run("token", "--uid", "u", *args)
    assert rc == 0, err
    return out.strip()


# ---- the command line ---------------------------------------------------

@pytest.mark.parametrize("argv", [
    ["--bogus"],
    ["--echo", "--bogus"],
    ["--bogus", "--echo"],
    ["--listen", "127.0.0.1:0", "--bogus"],
    ["--bogus", "value"],
])
def test_unknown_flag_named_wherever_it_stands(argv):
    rc, out, err = run(*argv)
    assert rc == 2
    lines = err.splitlines()
    assert lines == ["vkws: --bogus: unknown flag", "try vkws --help"], err
    assert "needs a value" not in err and out == ""


def test_missing_value_is_named():
    rc, _, err = run("--echo", "--max-conns")
    assert rc == 2
    assert err.splitlines() == ["vkws: --max-conns: needs a value (N)",
                                "try vkws --help"]


@pytest.mark.parametrize("addr,why", [
    ("127.0.0.1:99999", "the port is out of range (0 to 65535)"),
    ("127.0.0.1:-1", "the port is not a number"),
    ("127.0.0.1", "expected ADDR:PORT"),
    ("localhost:1", "host names are not accepted"),
    ("::1:80", "an IPv6 address goes in [ ]"),
    ("[::zz]:80", "not an IPv6 address"),
])
@pytest.mark.parametrize("flag", ["--listen", "--tls-listen"])
def test_bad_listener_address_says_why(flag, addr, why):
    rc, _, err = run(flag, addr)
    assert rc == 2
    assert "Success" not in err
    lines = err.splitlines()
    assert len(lines) == 2 and lines[1] == "try vkws --help", err
    assert lines[0].startswith("vkws: %s: %s: " % (flag, addr)), err
    assert why in lines[0], err


def test_version_matches_the_header():
    rc, out, err = run("--version")
    with open(os.path.join(ROOT, "vkws.h")) as f:
        want = re.search(r'#define VKWS_VERSION "([^"]+)"', f.read()).group(1)
    assert rc == 0 and err == ""
    assert out == "vkws %s\n" % want


def test_bad_value_prints_one_hint_not_the_usage():
    rc, out, err = run("--max-conns", "lots")
    assert rc == 2 and out == ""
    assert err.splitlines() == [
        "vkws: --max-conns: bad value 'lots' (a number from 1 to %s)"
        % err.split(" to ")[-1].split(")")[0],
        "try vkws --help"], err


def test_secret_file_missing_gives_reason_and_exit_1():
    rc, _, err = run("--listen", "127.0.0.1:0", "--secret-file", "/nope")
    assert rc == 1
    assert err.strip() == ("vkws: --secret-file: cannot read /nope: "
                           "No such file or directory"), err


def test_api_key_file_missing_gives_reason_and_exit_1():
    rc, _, err = run("--listen", "127.0.0.1:0", "--api-key-file",
                     "/nope/key")
    assert rc == 1
    assert "cannot read /nope/key: No such file or directory" in err


def test_no_secret_warns_loudly_at_start():
    s = conftest.Server(conftest.Transport(), [])
    try:
        time.sleep(0.1)
        err = s.stderr()
        assert "WARNING: no JWT secret" in err, err
        assert "every client will be refused" in err, err
    finally:
        s.check_stop()
    s = conftest.Server(conftest.Transport(), ["--secret", "x"])
    try:
        assert "WARNING" not in s.stderr()
    finally:
        s.check_stop()


def test_readme_says_what_make_test_installs():
    """README names every package the deps targets install and the
    binfmt handlers qemu-user registers."""
    with open(os.path.join(ROOT, "README.md")) as f:
        readme = f.read()
    sec = readme.split("### What `make test` installs", 1)
    assert len(sec) == 2, "README has no 'What make test installs' section"
    sec = sec[1].split("\n## ", 1)[0]
    with open(os.path.join(ROOT, "Makefile")) as f:
        mk = f.read().replace("\\\n", " ")
    pkgs = set()
    for var in ("BUILD_DEPS", "TEST_DEPS", "CROSS_DEPS", "PKG_DEPS"):
        m = re.search(r"^%s\s*=(.*)$" % var, mk, re.M)
        assert m, var
        pkgs |= {p for p in m.group(1).split() if not p.startswith("$")}
    for p in sorted(pkgs):
        assert "`%s`" % p in sec, "README does not name %s" % p
    assert "binfmt" in sec and re.search(r"\d+ MB", sec)


def test_readme_flag_table_is_the_binarys():
    """The README's flag table is `make readme-flags` output: every flag
    of the table, described as --help describes it."""
    with open(os.path.join(ROOT, "README.md")) as f:
        readme = f.read()
    block = re.search(r"<!-- flags:begin[^\n]*\n(.*?)<!-- flags:end -->",
                      readme, re.S)
    assert block, "README has no flags:begin/flags:end block"
    p = subprocess.run(["sh", "packaging/flags-md.sh", vkws_bin()],
                       capture_output=True, cwd=ROOT, timeout=20)
    assert p.returncode == 0, p.stderr
    assert block.group(1) == p.stdout.decode(), "run make readme-flags"
    for name in help_flags():
        assert "| `--%s` |" % name in block.group(1), name


# ---- the config file ----------------------------------------------------

def write(path, text):
    path.write_text(text)
    return str(path)


def test_config_file_comments_quotes_bare_names(tmp_path):
    conf = write(tmp_path / "vkws.conf", """\
# a comment line

  secret "a b \\"c\\" d"   # a quoted value with spaces and quotes
echo
api-key 'k k'
default-room lobby#1
""")
    tok = token_with("--config", conf)
    assert verify(tok, 'a b "c" d')


def test_command_line_overrides_the_file(tmp_path):
    conf = write(tmp_path / "vkws.conf", "secret from-file\n")
    assert verify(token_with("--config", conf), "from-file")
    assert verify(token_with("--config", conf, "--secret", "from-cli"),
                  "from-cli")
    assert verify(token_with("--secret", "from-cli", "--config", conf),
                  "from-cli")


def test_every_flag_of_the_table_is_a_config_key(tmp_path):
    samples = {"ADDR:PORT": "127.0.0.1:0", "FILE": "/dev/null",
               "N": "1", "S": "5", "BYTES": "4096", "MODE": "never",
               "K": "key", "O": "http://a.example", "R": "lobby",
               "DIR": str(tmp_path), "ADDR": "127.0.0.1:6379",
               "NAME": "vkws", "ID": "n1"}
    # An empty password file is refused: this one holds a password.
    by_name = {"redis-password-file": write(tmp_path / "pw", "pw\n")}
    lines = []
    for name, arg in help_flags().items():
        if name in ("config", "budget", "version", "help"):
            continue
        value = by_name.get(name, samples.get(arg))
        lines.append(name if arg is None else "%s %s" % (name, value))
    # secret-file /dev/null is empty, --secret wins over it.
    lines.append("secret s")
    conf = write(tmp_path / "all.conf", "\n".join(lines) + "\n")
    assert verify(token_with("--config", conf), "s")


@pytest.mark.parametrize("text,line,key,why", [
    ("echo\nbogus 1\n", 2, "bogus", "unknown key"),
    ("--echo\n", 1, "--echo", "without the dashes"),
    ("max-conns x\n", 1, "max-conns", "bad value 'x'"),
    ("max-conns 0\n", 1, "max-conns", "from 1 to"),
    ("\n\nlisten\n", 3, "listen", "needs a value"),
    ("listen localhost:80\n", 1, "listen", "host names are not accepted"),
    ("secret \"abc\n", 1, "secret", "unterminated quote"),
    ("secret a b\n", 1, "secret", "more than one value"),
    ("echo yes\n", 1, "echo", "takes no value"),
    ("config /etc/x\n", 1, "config", "not allowed in a config file"),
    ("fsync sometimes\n", 1, "fsync", "always, batch or never"),
    ("secret " + "x" * 300 + "\n", 1, "secret", "longer than 255 bytes"),
    ("# c\nsecret " + "x" * 1100 + "\n", 2, "line", "longer than"),
])
def test_bad_line_names_file_line_key_and_server_does_not_start(
        tmp_path, text, line, key, why):
    conf = write(tmp_path / "bad.conf", text)
    rc, out, err = run("--config", conf, "--listen", "127.0.0.1:0")
    assert rc == 1, err
    assert "listening on" not in out
    first = err.splitlines()[0]
    assert first.startswith("vkws: %s:%d: %s: " % (conf, line, key)), err
    assert why in first, err


def test_unreadable_and_oversized_config(tmp_path):
    rc, _, err = run("--config", str(tmp_path / "none.conf"))
    assert rc == 1
    assert "cannot read: No such file or directory" in err
    big = write(tmp_path / "big.conf", "# pad\n" * 4000)
    rc, _, err = run("--config", big)
    assert rc == 1 and "larger than" in err


# ---- SIGHUP -------------------------------------------------------------

def api_status(s, key):
    body = json.dumps({"method": "getStats", "params": {}})
    req = ("POST /api HTTP/1.1\r\nHost: x\r\nAuthorization: apikey %s\r\n"
           "Content-Type: application/json\r\nConnection: close\r\n"
           "Content-Length: %d\r\n\r\n%s" % (key, len(body), body))
    resp, c = s.http(req, body_until_eof=True)
    c.close()
    return resp.status


def auth_code(s, tok):
    c = s.ws("/ws?token=" + tok)
    try:
        while True:
            m = json.loads(c.recv_message()[1])
            if m.get("type") == "auth":
                return m["code"]
    finally:
        c.close()


def hup_and_wait(s, what):
    """SIGHUP, then wait for the log line that says it was handled."""
    before = s.stderr().count(what)
    os.kill(s.proc.pid, signal.SIGHUP)
    deadline = time.monotonic() + 10
    while s.stderr().count(what) == before:
        assert time.monotonic() < deadline, s.stderr()
        time.sleep(0.02)


def mint(secret):
    return token_with("--secret", secret)


def test_sighup_applies_the_file_all_or_nothing(tmp_path):
    conf = tmp_path / "vkws.conf"
    write(conf, "secret one\napi-key key-one\nmax-conns 4\n")
    s = conftest.Server(conftest.Transport(), ["--config", str(conf)])
    try:
        assert auth_code(s, mint("one")) == 0
        assert api_status(s, "key-one") == 200

        # Secret, API key and a lower limit apply without a restart; the
        # data directory does not, and says so.
        write(conf, "secret two\napi-key key-two\nmax-conns 1\n"
              "data-dir %s\n" % tmp_path)
        hup_and_wait(s, "config: read")
        err = s.stderr()
        assert "data-dir changed in %s; it takes a restart" % conf in err
        assert "3 settings changed" in err, err
        assert auth_code(s, mint("two")) == 0
        assert auth_code(s, mint("one")) != 0
        assert api_status(s, "key-two") == 200
        assert api_status(s, "key-one") == 401
        # max-conns bounds authenticated (proven) connections.
        keep = s.ws("/ws?token=" + mint("two"))
        try:
            while json.loads(keep.recv_message()[1]).get("type") != "auth":
                pass
            r = s.raw()
            r.sock.sendall(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: "
                           b"websocket\r\nConnection: Upgrade\r\n"
                           b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                           b"Sec-WebSocket-Version: 13\r\n\r\n")
            assert r.sock.recv(64).startswith(b"HTTP/1.1 503"), \
                "max-conns 1 not applied"
            r.close()
        finally:
            keep.close()

        # A bad line: nothing of the file applies, not even its good
        # lines before the bad one.
        write(conf, "secret three\napi-key key-three\nmax-conns zero\n")
        hup_and_wait(s, "not applied; keeping every old setting")
        err = s.stderr()
        assert "%s:3: max-conns: bad value 'zero'" % conf in err, err
        assert auth_code(s, mint("two")) == 0
        assert auth_code(s, mint("three")) != 0
        assert api_status(s, "key-two") == 200
        assert s.alive()
    finally:
        s.check_stop()


def test_sighup_with_command_line_override_keeps_it(tmp_path):
    conf = tmp_path / "vkws.conf"
    write(conf, "secret file-one\n")
    s = conftest.Server(conftest.Transport(),
                        ["--config", str(conf), "--secret", "cli"])
    try:
        write(conf, "secret file-two\n")
        hup_and_wait(s, "config: read")
        assert "0 settings changed" in s.stderr()
        assert auth_code(s, mint("cli")) == 0
        assert auth_code(s, mint("file-two")) != 0
    finally:
        s.check_stop()
