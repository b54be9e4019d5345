#!/usr/bin/python3
"""
cluster_bench.py: what cluster mode (issue 15, --redis) costs and gives.

Starts Debian's redis-server on a free loopback port (no persistence)
and vkws nodes, and drives bench/wsload's fanout mode: SUBS subscribers
in one room, one publisher. Each scenario runs twice: at a fixed RATE
(messages per second; latency percentiles mean something only below
saturation) and flat out (a window of 16 messages in flight:
deliveries per second). Scenarios:

  single        one vkws, no Redis (the baseline)
  1 node        one vkws with --redis, every subscriber on it
  2 nodes       two vkws with --redis, subscribers split half and half
                (wsload --port2); the publisher is on the first node

Reported: deliveries/s, server CPU per delivery (both nodes summed; Redis
not counted, its CPU is shown apart), p50/p99 delivery latency. Then
"Redis per chat": one subscriber, 100 messages/s, the p50 latency of a
cluster node minus that of the single server.

Usage: bench/cluster_bench.py [--vkws PATH] [--subs N] [--rate R]
       [--duration S] [--out FILE]   (bench/run --cluster calls it)
Traffic stays on 127.0.0.1. Needs redis-server (apt-get install
redis-server) and a C compiler for wsload.
"""

import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
SECRET = "bench-secret"
TICK = os.sysconf("SC_CLK_TCK")


def log(msg):
    print("cluster_bench: " + msg, file=sys.stderr, flush=True)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def cpu_ticks(pid):
    with open("/proc/%d/stat" % pid) as f:
        rest = f.read().rsplit(")", 1)[1].split()
    return int(rest[11]) + int(rest[12])


def build_wsload():
    out = os.path.join(BENCH, "build", "wsload")
    src = os.path.join(BENCH, "wsload.c")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    if not os.path.exists(out) or os.path.getmtime(out) < \
            os.path.getmtime(src):
        subprocess.run(["cc", "-O2", "-o", out, src, "-lbearssl"],
                       check=True)
    return out


class Redis:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="vkws-bench-redis-")
        self.port = free_port()
        self.proc = subprocess.Popen(
            [shutil.which("redis-server") or "/usr/bin/redis-server",
             "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.dir],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        end = time.time() + 10
        while time.time() < end:
            try:
                with socket.create_connection(("127.0.0.1", self.port),
                                              0.5):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


class Node:
    def __init__(self, vkws, redis=None, name=None):
        cmd = [vkws, "--listen", "127.0.0.1:0", "--secret", SECRET,
               "--rate", "100000", "--rate-burst", "1000000",
               "--default-room", "", "--max-per-ip", "0",
               "--reconnect-rate", "0", "--max-pending", "1024"]
        if redis is not None:
            cmd += ["--redis", "127.0.0.1:%d" % redis.port, "--node", name]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True)
        line = self.proc.stdout.readline()
        m = re.match(r"listening on 127\.0\.0\.1:(\d+)", line)
        if not m:
            raise RuntimeError("vkws did not start: %r" % line)
        self.port = int(m.group(1))
        if redis is not None:
            self.proc.stdout.readline()     # node ID
            time.sleep(0.5)                 # the link comes up

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def fanout(wsload, nodes, subs, duration, rate=None, redis=None):
    cmd = [wsload, "fanout", "--conns", str(subs), "--size", "64",
           "--secret", SECRET, "--duration", str(duration), "--warmup",
           "1", "--port", str(nodes[0].port), "--pid",
           str(nodes[0].proc.pid)]
    if len(nodes) > 1:
        cmd += ["--port2", str(nodes[1].port), "--pid2",
                str(nodes[1].proc.pid)]
    cmd += ["--rate", str(rate), "--window", "1000"] if rate else \
        ["--window", "16"]
    r0 = cpu_ticks(redis.proc.pid) if redis else 0
    t0 = time.time()
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    wall = time.time() - t0
    r1 = cpu_ticks(redis.proc.pid) if redis else 0
    kv = {}
    for line in r.stdout.splitlines():
        if line.startswith("mode="):
            kv = dict(x.split("=", 1) for x in line.split() if "=" in x)
    if r.returncode != 0 or not kv:
        log("wsload failed: %s %s" % (r.stdout.strip()[-200:],
                                       r.stderr.strip()[-300:]))
        return None
    kv["redis_cpu_pct"] = "%.0f" % (100.0 * (r1 - r0) / TICK / wall) \
        if redis else "-"
    return kv


def scenario(vkws, wsload, kind, subs, duration, rate):
    redis = Redis() if kind != "single" else None
    nodes = []
    try:
        if kind == "single":
            nodes = [Node(vkws)]
        elif kind == "1 node":
            nodes = [Node(vkws, redis, "b1")]
        else:
            nodes = [Node(vkws, redis, "b1"), Node(vkws, redis, "b2")]
        fixed = fanout(wsload, nodes, subs, duration, rate, redis)
        flat = fanout(wsload, nodes, subs, duration, None, redis)
        return fixed, flat
    finally:
        for n in nodes:
            n.stop()
        if redis:
            redis.stop()


def g(kv, *keys):
    if kv is None:
        return "fail"
    for k in keys:
        if k in kv:
            return kv[k]
    return "-"


def ms(kv, key):
    """A latency of wsload's (us) in ms."""
    try:
        return "%.2f" % (float(kv[key]) / 1000)
    except (TypeError, KeyError, ValueError):
        return "fail"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vkws", default=os.path.join(ROOT, "vkws"))
    ap.add_argument("--subs", type=int, default=1000)
    ap.add_argument("--rate", type=int, default=50)
    ap.add_argument("--duration", type=float, default=5)
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    wsload = build_wsload()
    rows = []
    for kind in ("single", "1 node", "2 nodes"):
        log("%s: %d subscribers" % (kind, a.subs))
        fixed, flat = scenario(a.vkws, wsload, kind, a.subs, a.duration,
                               a.rate)
        rows.append((kind, fixed, flat))
    # Redis per chat: one subscriber, 100 msg/s.
    lat = {}
    for kind in ("single", "1 node"):
        fixed, _ = scenario(a.vkws, wsload, kind, 1, a.duration, 100)
        lat[kind] = fixed
    out = []
    out.append("## Cluster (issue 15): fanout to %d subscribers, 64 B "
               "messages" % a.subs)
    out.append("")
    out.append("| scenario | deliveries/s (flat out) | server CPU us/delivery "
               "| p50 / p99 ms at %d msg/s | deliveries/s at that rate "
               "| Redis CPU %% (flat out) |" % a.rate)
    out.append("|---|---|---|---|---|---|")
    for kind, fixed, flat in rows:
        out.append("| %s | %s | %s | %s / %s | %s | %s |" % (
            kind, g(flat, "deliveries_per_s"),
            g(flat, "cpu_us_per_msg"), ms(fixed, "p50_us"),
            ms(fixed, "p99_us"),
            g(fixed, "deliveries_per_s"), g(flat, "redis_cpu_pct")))
    out.append("")
    try:
        s1 = float(lat["single"]["p50_us"]) / 1000
        c1 = float(lat["1 node"]["p50_us"]) / 1000
        out.append("Redis per chat (one subscriber, 100 msg/s): p50 %.3f ms "
                   "single, %.3f ms cluster node: +%.3f ms." % (s1, c1,
                                                               c1 - s1))
    except (KeyError, TypeError, ValueError):
        out.append("Redis per chat: the run failed.")
    text = "\n".join(out) + "\n"
    print(text)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
