#!/usr/bin/python3
"""bench/admission.py: what the floods of issue 12 cost real users.

    bench/admission.py [--samples N] [--floods a,b,...]

For each flood (and once without one) it starts ./vkws (VKWS_BIN to
override) with a plain and a TLS listener, signs two users in (alice
chats every 50 ms, bob reads), puts the flood in place, then times N
newcomers of each kind (plain ?token=, TLS ?token=, the page's sign-in
by message) from connect to their auth reply, retrying as a client would.
Prints, per flood: newcomer p50/p99 (ms), bob's chat latency p50/p99
(ms, alice's send to bob's receipt, during the flood), the server's RSS
at the end (kB), and what admission counted. Traffic stays on 127.0.0.1;
every flood is bounded in sockets and time (tests/test_admission.py's
Flood). Not a test: it asserts nothing but that users got in at all.
"""
import argparse
import json
import os
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))
os.environ.setdefault("VKWS_BIN", os.path.join(ROOT, "vkws"))

import test_admission as ta  # noqa: E402
import wsraw  # noqa: E402

SLOTS = ta.SLOTS
POOL = ta.POOL


def pct(xs, p):
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100.0 * (len(xs) - 1))))]


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


class Chatter:
    """alice chats every 50 ms with her send time; bob's reader records
    each message's latency."""

    def __init__(self, srv):
        self.a = ta.login(srv, "alice")
        self.b = ta.login(srv, "bob")
        self.lat = []
        self.stop = threading.Event()
        self.errors = []
        self.threads = [threading.Thread(target=f, daemon=True)
                        for f in (self._send, self._drain_a, self._read_b)]
        for t in self.threads:
            t.start()

    def _send(self):
        try:
            while not self.stop.is_set():
                self.a.send_text(json.dumps({
                    "type": "chat",
                    "content": "%.6f" % time.monotonic()}).encode())
                time.sleep(0.05)
        except Exception as e:
            self.errors.append(repr(e))

    def _drain_a(self):
        while not self.stop.is_set():
            try:
                ta.recv_json(self.a, 1)
            except wsraw.Timeout:
                pass
            except Exception as e:
                self.errors.append(repr(e))
                return

    def _read_b(self):
        while not self.stop.is_set():
            try:
                m = ta.recv_json(self.b, 1)
            except wsraw.Timeout:
                continue
            except Exception as e:
                self.errors.append(repr(e))
                return
            if m["type"] == "chat":
                self.lat.append((time.monotonic() - float(m["message"]))
                                * 1000)

    def close(self):
        self.stop.set()
        for t in self.threads:
            t.join(5)
        self.a.close()
        self.b.close()


def newcomer_times(srv, samples, deadline=30.0):
    out = {"plain": [], "tls": [], "page": []}
    # Each newcomer from an address of its own (127.0.1.N), as distinct
    # users are: one address's reconnect bucket is not theirs to share.
    fns = {
        "plain": lambda i: ta.login(srv, "n-p%d" % i, room=False,
                                    src="127.0.1.%d" % (i % 250 + 1)),
        "tls": lambda i: ta.login(srv, "n-t%d" % i, tls=True, room=False,
                                  src="127.0.2.%d" % (i % 250 + 1)),
        "page": lambda i: ta.page_login(srv, "n-g%d" % i,
                                        src="127.0.3.%d" % (i % 250 + 1)),
    }
    failed = 0
    for i in range(samples):
        for kind, fn in fns.items():
            t0 = time.monotonic()
            while True:
                try:
                    fn(i).close()
                    out[kind].append((time.monotonic() - t0) * 1000)
                    break
                except Exception:
                    if time.monotonic() - t0 > deadline:
                        failed += 1
                        break
                    time.sleep(0.02)
    return out, failed


class Storm:
    """One valid token reconnecting as fast as one thread can, from
    127.0.0.5."""

    def __init__(self, srv):
        self.srv = srv
        self.stop_ev = threading.Event()
        self.n = 0
        self.t = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self.t.start()
        return self

    def __exit__(self, *a):
        self.stop_ev.set()
        self.t.join(10)

    def wait_open(self, k):
        pass

    def _run(self):
        tok = ta.query(ta.token("storm"))
        end = time.monotonic() + 120
        while not self.stop_ev.is_set() and time.monotonic() < end:
            try:
                # From an address of its own: newcomers come from
                # others (one address's bucket is its own business).
                c = self.srv.conn(src="127.0.0.5")
                c.handshake(ta.HOST, tok, check=False)
                c.close()
                self.n += 1
            except Exception:
                pass


FLOODS = {
    "none": lambda s: None,
    "keepalive": lambda s: ta.Flood(s, "keepalive", SLOTS + 60, every=2.0),
    "slowloris": lambda s: ta.Flood(s, "slowloris", SLOTS + 60, every=2.0),
    "idle-tls": lambda s: ta.Flood(s, "idle", POOL + 8, tls=True),
    "hello-tls": lambda s: ta.Flood(s, "hello", POOL + 8, tls=True,
                                    rate=200),
    "pending": lambda s: ta.Flood(s, "pending", 200, rate=100),
    "reconnect": lambda s: Storm(s),
}


def run_one(name, samples):
    flags = ["--handshake-timeout", "60", "--auth-timeout", "60",
             "--max-per-ip", "0"]
    if name == "reconnect":
        flags = ["--reconnect-rate", "5"]
    srv = ta.Srv(*flags)
    try:
        chat = Chatter(srv)
        time.sleep(1.5)         # alice and bob are announced
        base = len(chat.lat)
        flood = FLOODS[name](srv)
        if flood is not None:
            flood.__enter__()
            if isinstance(flood, ta.Flood):
                flood.wait_open(flood.n)
        try:
            t0 = time.monotonic()
            times, failed = newcomer_times(srv, samples)
            # Chat latency over at least 3 s of the flood.
            time.sleep(max(0.0, 3.0 - (time.monotonic() - t0)))
            lat = chat.lat[base:]
        finally:
            if flood is not None:
                flood.__exit__(None, None, None)
        chat.close()
        m = ta.metrics(srv)
        rss = rss_kb(srv.s.proc.pid)
    finally:
        srv.stop()
    counts = {k.split("{")[0][5:] + "." + k.split('"')[1]: v
              for k, v in m.items() if "{" in k and v}
    return times, failed, lat, rss, counts, chat.errors


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=30)
    ap.add_argument("--floods", default=",".join(FLOODS))
    args = ap.parse_args()
    print("| flood | newcomer p50 / p99 ms (plain, tls, page) | failed | "
          "chat p50 / p99 ms | RSS kB | admission counted |")
    print("|---|---|---|---|---|---|")
    for name in args.floods.split(","):
        times, failed, lat, rss, counts, errs = run_one(name, args.samples)
        nc = ", ".join("%.1f / %.1f" % (pct(times[k], 50), pct(times[k], 99))
                       for k in ("plain", "tls", "page"))
        print("| %s | %s | %d | %.1f / %.1f | %d | %s |" % (
            name, nc, failed, pct(lat, 50), pct(lat, 99), rss,
            " ".join("%s=%d" % kv for kv in sorted(counts.items())) or "-"),
            flush=True)
        if errs:
            print("  chat errors: %r" % errs[:3], flush=True)


if __name__ == "__main__":
    main()
