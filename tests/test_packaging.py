"""
The packages (issue 17).

Debian: `make deb` builds vkws_VERSION_ARCH.deb; it installs with dpkg -i
on this machine, its unit passes systemd-analyze verify, the installed
binary starts from the installed config (run by hand: no systemd runs
here), lintian finds no error, dpkg -r removes it and dpkg --purge
leaves nothing. The test installs the package system-wide for its
length and purges it at the end, whatever happens; a lock file keeps two
runs on one machine apart.

OpenWrt: the procd init script runs under a shell with stand-ins for
/lib/functions.sh and procd (tests/openwrt/), as OpenWrt's own scripts
are tested; the command line and the reload trigger it produces from a
sample UCI file are checked, and the real vkws accepts that command line.
"""
import fcntl
import os
import re
import signal
import socket
import stat
import subprocess
import time

from conftest import ROOT, vkws_bin
from test_config import help_flags

SUDO = [] if os.geteuid() == 0 else ["sudo"]
INIT = os.path.join(ROOT, "packaging/openwrt/vkws/files/vkws.init")
UCI = os.path.join(ROOT, "packaging/openwrt/vkws/files/vkws.config")
COMMANDS = {"help", "version", "budget"}


def sh(*argv, check=True, timeout=120, **kw):
    p = subprocess.run(list(argv), capture_output=True, timeout=timeout,
                       cwd=ROOT, stdin=subprocess.DEVNULL, **kw)
    if check:
        assert p.returncode == 0, (argv, p.stdout.decode()[-3000:],
                                   p.stderr.decode()[-3000:])
    return p


def version():
    with open(os.path.join(ROOT, "vkws.h")) as f:
        return re.search(r'#define VKWS_VERSION "([^"]+)"', f.read()).group(1)


# ---- OpenWrt ------------------------------------------------------------

def run_init(uci_dir, *actions):
    p = sh("sh", "tests/openwrt/run-init.sh", INIT, str(uci_dir), *actions)
    return p.stdout.decode()


def commands(out):
    """The command lines of the instances in run-init output."""
    cmds, cur = [], None
    for line in out.splitlines():
        if line == "command:":
            cur = []
            cmds.append(cur)
        elif line.startswith("\t") and cur is not None:
            cur.append(line[1:])
        else:
            cur = None
    return cmds


def test_openwrt_options_cover_every_flag():
    with open(INIT) as f:
        text = f.read().replace("\\\n", " ")
    vals = re.search(r'^VKWS_VALUES="([^"]*)"', text, re.M).group(1).split()
    bools = re.search(r'^VKWS_BOOLS="([^"]*)"', text, re.M).group(1).split()
    opts = {o.replace("_", "-") for o in vals + bools + ["allowed_origin"]}
    flags = help_flags()
    assert opts == set(flags) - COMMANDS
    for b in bools:
        assert flags[b.replace("_", "-")] is None, b
    for v in vals:
        assert flags[v.replace("_", "-")] is not None, v


def test_openwrt_init_script_command_line_and_triggers(tmp_path):
    keys = tmp_path / "keys"
    conf = tmp_path / "extra.conf"
    conf.write_text("# empty\n")
    (tmp_path / "uci").mkdir()
    (tmp_path / "uci" / "vkws").write_text("""
config vkws 'main'
	option enabled '1'
	option listen '127.0.0.1:0'
	option secret_file '%(k)s/secret'
	option api_key_file '%(k)s/api-key'
	option max_conns '64'
	option fsync 'never'
	option default_room 'lobby room'
	option echo '1'
	option api_remote '0'
	option config '%(c)s'
	list allowed_origin 'http://192.168.1.1'
	list allowed_origin 'https://router.lan'

config vkws 'off'
	option enabled '0'
	option listen '127.0.0.1:1'
""" % {"k": keys, "c": conf})
    out = run_init(tmp_path / "uci", "start_service", "service_triggers",
                   "reload_service")
    start, reload = out.split("== service_triggers\n")[0], \
        out.split("== reload_service\n")[1]
    assert commands(start) == [[
        "/usr/bin/vkws", "--listen", "127.0.0.1:0",
        "--secret-file", "%s/secret" % keys,
        "--api-key-file", "%s/api-key" % keys,
        "--default-room", "lobby room", "--max-conns", "64",
        "--fsync", "never", "--config", str(conf), "--echo",
        "--allowed-origin", "http://192.168.1.1",
        "--allowed-origin", "https://router.lan"]], out
    assert "open_instance main" in start and "open_instance off" not in out
    assert "param respawn 3600 5 5" in start
    assert "reload_trigger vkws\n" in out
    # A reload rebuilds the command line (procd restarts the instance if
    # it changed) and sends SIGHUP for the files.
    assert commands(reload) == commands(start)
    assert reload.rstrip().endswith("send_signal vkws * HUP")
    # The first start made a secret and an API key, root only.
    for f in ("secret", "api-key"):
        st = os.stat(keys / f)
        assert stat.S_IMODE(st.st_mode) == 0o600
        assert re.fullmatch(r"[0-9a-f]{64}", (keys / f).read_text())
    # The real vkws accepts that command line: a token signed with the
    # secret the init script made.
    argv = commands(start)[0][1:]
    p = sh(vkws_bin(), "token", "--uid", "u", *argv)
    assert p.stdout.count(b".") == 2


def test_openwrt_shipped_uci_config_maps_to_flags(tmp_path):
    (tmp_path / "uci").mkdir()
    text = open(UCI).read().replace("/etc/vkws", str(tmp_path / "k"))
    text = text.replace("/var/lib/vkws", str(tmp_path / "data"))
    (tmp_path / "uci" / "vkws").write_text(text)
    cmd = commands(run_init(tmp_path / "uci", "start_service"))
    assert len(cmd) == 1 and cmd[0][0] == "/usr/bin/vkws"
    assert os.path.isdir(tmp_path / "data")
    p = sh(vkws_bin(), "token", "--uid", "u", *cmd[0][1:])
    assert p.stdout.count(b".") == 2


# ---- Debian -------------------------------------------------------------

def dpkg(*args):
    """dpkg, waiting (bounded) while another dpkg or apt holds the lock."""
    deadline = time.monotonic() + 600
    while True:
        p = sh(*(SUDO + ["dpkg"] + list(args)), check=False, timeout=300)
        if p.returncode == 0 or b"lock" not in p.stderr or \
                time.monotonic() > deadline:
            return p
        time.sleep(2)


def installed():
    p = sh("dpkg-query", "-W", "-f=${Status}", "vkws", check=False)
    return p.stdout.decode()


def start_installed(tmp_path):
    argv = ["/usr/bin/vkws", "--config", "/etc/vkws/vkws.conf",
            "--listen", "127.0.0.1:0", "--data-dir", str(tmp_path),
            "--secret-file", "/etc/vkws/secret",
            "--api-key-file", "/etc/vkws/api-key"]
    err = open(tmp_path / "stderr", "w+b")
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=err,
                         stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    line = b""
    while time.monotonic() < deadline:
        line = p.stdout.readline()
        m = re.match(rb"^listening on 127\.0\.0\.1:(\d+)$", line.strip())
        if m:
            return p, int(m.group(1)), err
        if not line:
            break
    p.kill()
    p.wait(5)
    err.seek(0)
    raise AssertionError("installed vkws did not start: %r %r"
                         % (line, err.read()))


def http(port, raw):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        s.sendall(raw.encode())
        data = b""
        while True:
            b = s.recv(65536)
            if not b:
                return data
            data += b
    finally:
        s.close()


def check_installed_runs(tmp_path):
    p, port, err = start_installed(tmp_path)
    try:
        assert http(port, "GET /healthz HTTP/1.1\r\nHost: x\r\n"
                    "Connection: close\r\n\r\n").startswith(b"HTTP/1.1 200")
        key = open("/etc/vkws/api-key").read().strip()
        body = '{"method":"getStats","params":{}}'
        r = http(port, "POST /api HTTP/1.1\r\nHost: x\r\nAuthorization: "
                 "apikey %s\r\nContent-Length: %d\r\nConnection: close\r\n"
                 "\r\n%s" % (key, len(body), body))
        assert r.startswith(b"HTTP/1.1 200") and b'"code":0' in r, r
    finally:
        p.send_signal(signal.SIGTERM)
        rc = p.wait(10)
    err.seek(0)
    log = err.read().decode()
    assert rc == 0, log
    assert "WARNING" not in log, log
    # The data directory came from the command line, over the file's.
    assert os.path.exists(tmp_path / "log"), os.listdir(tmp_path)


def test_deb_builds_installs_runs_and_removes(tmp_path):
    lock = open("/tmp/vkws-deb-test.lock", "w")
    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
        _deb_steps(tmp_path)
    finally:
        if installed():
            dpkg("--purge", "vkws")
        fcntl.flock(lock, fcntl.LOCK_UN)
        lock.close()


def _deb_steps(tmp_path):
    arch = sh("dpkg", "--print-architecture").stdout.decode().strip()
    p = sh("make", "-s", "deb", timeout=600)
    deb = os.path.join(ROOT, p.stdout.decode().strip().splitlines()[-1])
    assert os.path.basename(deb) == "vkws_%s_%s.deb" % (version(), arch)

    info = sh("dpkg-deb", "-f", deb, "Package", "Version",
              "Architecture").stdout.decode()
    assert info.split("\n")[:3] == ["Package: vkws", "Version: " + version(),
                                   "Architecture: " + arch]
    files = sh("dpkg-deb", "-c", deb).stdout.decode()
    for f in ("./usr/bin/vkws", "./etc/vkws/vkws.conf",
              "./lib/systemd/system/vkws.service",
              "./usr/share/man/man1/vkws.1.gz",
              "./usr/share/doc/vkws/copyright"):
        assert re.search(r" %s$" % re.escape(f), files, re.M), f
    ctl = tmp_path / "ctl"
    sh("dpkg-deb", "-e", deb, str(ctl))
    assert (ctl / "conffiles").read_text() == "/etc/vkws/vkws.conf\n"

    lint = sh("lintian", "--tag-display-limit", "0", deb, check=False,
              timeout=300)
    out = lint.stdout.decode()
    assert not re.search(r"^E: ", out, re.M), out
    assert lint.returncode == 0, out + lint.stderr.decode()

    if installed():
        dpkg("--purge", "vkws")
    p = dpkg("-i", deb)
    assert p.returncode == 0, p.stderr.decode()
    assert installed() == "install ok installed"

    unit = open("/lib/systemd/system/vkws.service").read()
    for line in ("DynamicUser=yes", "StateDirectory=vkws",
                 "ProtectSystem=strict", "NoNewPrivileges=yes",
                 "CapabilityBoundingSet=", "Restart=on-failure"):
        assert re.search(r"^%s$" % re.escape(line), unit, re.M), line
    v = sh("systemd-analyze", "verify", "/lib/systemd/system/vkws.service",
           check=False)
    assert v.returncode == 0 and v.stdout == b"" and v.stderr == b"", v

    # The man page documents every flag of the table.
    page = sh("zcat", "/usr/share/man/man1/vkws.1.gz").stdout.decode()
    for name in help_flags():
        assert "\\-\\-" + name.replace("-", "\\-") in page, name

    # The secret and the API key made at install, root only.
    for f in ("/etc/vkws/secret", "/etc/vkws/api-key"):
        assert stat.S_IMODE(os.stat(f).st_mode) == 0o600
    sh("/usr/bin/vkws", "--version")
    check_installed_runs(tmp_path)

    p = dpkg("-r", "vkws")
    assert p.returncode == 0, p.stderr.decode()
    assert installed() == "deinstall ok config-files"
    for f in ("/usr/bin/vkws", "/lib/systemd/system/vkws.service",
              "/usr/share/man/man1/vkws.1.gz", "/usr/share/doc/vkws"):
        assert not os.path.exists(f), f
    assert os.path.exists("/etc/vkws/vkws.conf")
    p = dpkg("--purge", "vkws")
    assert p.returncode == 0, p.stderr.decode()
    assert installed() == ""
    assert not os.path.exists("/etc/vkws")
    assert not os.path.lexists(
        "/etc/systemd/system/multi-user.target.wants/vkws.service")
