#!/usr/bin/python3
"""
store_bench.py: what the chat log (store.c) costs the disk.

For each --fsync mode, starts vkws with a fresh --data-dir under perf
(counting fdatasync and fsync calls), drives a steady chat load (CLIENTS
connections in the default room, RATE messages per second in all, each
one acked before the client sends its next), then reports:

  msgs/s        chat messages acked per second
  chat B        content bytes of the acked messages
  log B         bytes of log records appended for them (header, room
                name, seq and the whole chat frame each; compaction not
                counted)
  disk B        bytes the server dirtied for writeback (/proc/PID/io
                write_bytes: whole pages, counted again each time a synced
                page is written again)
  log/chat      log bytes per content byte (the format's overhead)
  disk/chat     disk bytes per content byte (write amplification)
  syncs/s       fdatasync + fsync calls per second
  ack ms        median and 99th percentile ack latency

Usage: bench/store_bench.py [--vkws PATH] [--duration S] [--rate N]
       [--clients N] [--size BYTES] [--modes batch,always,never]
       [--dir DIR]   (a directory on the disk to measure; default /tmp)

Standard library only (plus tests/wsraw.py); needs perf for the sync
count (without it, syncs/s is shown as "-").
"""

import argparse
import base64
import hashlib
import hmac
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests"))
import wsraw  # noqa: E402

SECRET = "store-bench-secret"


def token(uid):
    def b64u(b):
        return base64.urlsafe_b64encode(b).rstrip(b"=").decode()
    h = b64u(b'{"alg":"HS256","typ":"JWT"}')
    p = b64u(json.dumps({"uid": uid}).encode())
    s = hmac.new(SECRET.encode(), (h + "." + p).encode(),
                 hashlib.sha256).digest()
    return h + "." + p + "." + b64u(s)


def io_of(pid):
    out = {}
    with open("/proc/%d/io" % pid) as f:
        for line in f:
            k, v = line.split(":")
            out[k] = int(v)
    return out


def child_of(pid, deadline):
    """The first child of pid (the server under perf)."""
    while time.monotonic() < deadline:
        try:
            with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
                kids = f.read().split()
            if kids:
                return int(kids[0])
        except OSError:
            pass
        time.sleep(0.01)
    raise RuntimeError("no server process under perf")


def start(args, mode, data):
    argv = [args.vkws, "--listen", "127.0.0.1:0", "--secret", SECRET,
            "--data-dir", data, "--fsync", mode, "--rate", "100000",
            "--rate-burst", "1000000", "--history", "50"]
    perf_out = os.path.join(os.path.dirname(data), "perf.txt")
    perf = shutil.which("perf")
    if perf:
        argv = [perf, "stat", "-x,", "-o", perf_out, "-e",
                "syscalls:sys_enter_fdatasync,syscalls:sys_enter_fsync",
                "--"] + argv
    p = subprocess.Popen(argv, stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    line = p.stdout.readline().decode()
    m = re.match(r"listening on 127\.0\.0\.1:(\d+)", line)
    if not m:
        p.kill()
        raise RuntimeError("server did not start: %r" % line)
    pid = child_of(p.pid, time.monotonic() + 5) if perf else p.pid
    threading.Thread(target=lambda: p.stdout.read(), daemon=True).start()
    return p, pid, int(m.group(1)), perf_out if perf else None


def client(port, uid, rate, size, stop_at, out):
    import socket
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    c = wsraw.Conn(s, 10)
    c.handshake("127.0.0.1", "/ws?token=" + token(uid))
    n, chat_bytes, lat, frames, frame_bytes = 0, 0, [], 0, 0
    text = (uid + "-" + "x" * size)[:size]
    period = 1.0 / rate
    next_t = time.monotonic()
    while time.monotonic() < stop_at:
        now = time.monotonic()
        if now < next_t:
            time.sleep(next_t - now)
        next_t += period
        n += 1
        t0 = time.monotonic()
        c.send_text(json.dumps({"type": "chat", "content": text, "id": n}))
        while True:
            _, data, _ = c.recv_message(10)
            m = json.loads(data)
            if m.get("type") == "ack" and m.get("id") == n:
                break
            if m.get("type") == "chat" and \
                    m.get("from", {}).get("userId") == uid:
                frames += 1
                frame_bytes += len(data)
        if m.get("code") != 0:
            raise RuntimeError("ack %r" % m)
        lat.append(time.monotonic() - t0)
        chat_bytes += len(text.encode())
    c.close()
    out.append((n, chat_bytes, lat, frames, frame_bytes))


def perf_counts(path):
    total = 0
    try:
        with open(path) as f:
            for line in f:
                parts = line.strip().split(",")
                if len(parts) > 2 and "sys_enter_f" in parts[2]:
                    total += int(parts[0])
    except (OSError, ValueError):
        return None
    return total


def run_mode(args, mode):
    base = tempfile.mkdtemp(prefix="vkws-store-bench-", dir=args.dir)
    data = os.path.join(base, "data")
    try:
        p, pid, port, perf_out = start(args, mode, data)
        # Let the start's own writes (the new log) settle first.
        time.sleep(0.2)
        io0 = io_of(pid)
        t0 = time.monotonic()
        stop_at = t0 + args.duration
        out, threads = [], []
        for i in range(args.clients):
            t = threading.Thread(target=client, args=(
                port, "u%d" % i, args.rate / args.clients, args.size,
                stop_at, out))
            t.start()
            threads.append(t)
        for t in threads:
            t.join(args.duration + 30)
        elapsed = time.monotonic() - t0
        io1 = io_of(pid)
        os.kill(pid, signal.SIGTERM)
        p.wait(15)
        if len(out) != args.clients:
            raise RuntimeError("a client failed")
        msgs = sum(o[0] for o in out)
        chat = sum(o[1] for o in out)
        lat = sorted(x for o in out for x in o[2])
        # A chat record: header, name length, "general", seq, frame.
        frames = sum(o[3] for o in out)
        rec = 9 + 1 + len("general") + 8 + sum(o[4] for o in out) / max(
            1, frames)
        disk = io1["write_bytes"] - io0["write_bytes"]
        syncs = perf_counts(perf_out) if perf_out else None
        return {
            "mode": mode, "msgs": msgs / elapsed, "chat": chat,
            "log": int(rec * msgs), "disk": disk,
            "syncs": None if syncs is None else syncs / elapsed,
            "p50": lat[len(lat) // 2] * 1000,
            "p99": lat[min(len(lat) - 1, len(lat) * 99 // 100)] * 1000,
        }
    finally:
        shutil.rmtree(base, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("--vkws", default=os.path.join(ROOT, "vkws"))
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--rate", type=float, default=200.0)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--size", type=int, default=100)
    ap.add_argument("--modes", default="batch,always,never")
    ap.add_argument("--dir", default=None)
    args = ap.parse_args()
    print("load: %d clients, %.0f msgs/s in all, %d-byte messages, %.0f s"
          % (args.clients, args.rate, args.size, args.duration))
    print("| fsync | msgs/s | chat B | log B | disk B | log/chat | "
          "disk/chat | syncs/s | ack ms p50 / p99 |")
    print("|---|---|---|---|---|---|---|---|---|")
    for mode in args.modes.split(","):
        r = run_mode(args, mode)
        print("| %s | %.0f | %d | %d | %d | %.2f | %.2f | %s | %.2f / %.2f |"
              % (r["mode"], r["msgs"], r["chat"], r["log"], r["disk"],
                 r["log"] / max(1, r["chat"]), r["disk"] / max(1, r["chat"]),
                 "-" if r["syncs"] is None else "%.0f" % r["syncs"],
                 r["p50"], r["p99"]))


if __name__ == "__main__":
    main()
