#!/bin/sh
# bench/loop_ab.sh ROUNDS IDLE VKWS...: bench/run's "echo 100x16 32B with
# 7000 idle conns" row for several builds side by side, in turns (A B C
# A B C ...), so that each comparison is made under the same load of a
# shared machine. Each run: a fresh server pinned to CPU 0 with bench/run's
# flags, `wsload idle --conns IDLE` (0: none) until the server holds them,
# then `wsload echo --conns 100 --inflight 16 --size 32 --duration 5`
# pinned to CPU 1, with `perf stat` counting the server's poll() and
# epoll_wait() calls (the loop passes) when perf can. One line per run:
#   BUILD idle=N rate=MSGS/S cpu_us_per_msg=US passes=N msgs_per_pass=N
# Needs bench/build/wsload (bench/run builds it) and PROFILE=bench builds
# for IDLE past 1,000.
set -eu
[ $# -ge 3 ] || { echo "usage: bench/loop_ab.sh ROUNDS IDLE VKWS..."; exit 2; }
rounds=$1
idle=$2
shift 2
. "$(dirname "$0")/lib.sh"

r=0
while [ "$r" -lt "$rounds" ]; do
	r=$((r + 1))
	for bin in "$@"; do
		taskset -c 0 "$bin" --listen 127.0.0.1:0 --echo \
		    --max-per-ip 0 --reconnect-rate 0 --max-pending 8192 \
		    --rate 100000 --rate-burst 1000000 >"$tmp/out" 2>/dev/null &
		srv=$!
		wait_port 100
		[ -n "$port" ] || { echo "$bin did not start"; exit 1; }
		fds0=$(ls /proc/$srv/fd | wc -l)
		if [ "$idle" -gt 0 ]; then
			taskset -c 1 "$W" idle --port "$port" --pid "$srv" \
			    --conns "$idle" --duration 120 >/dev/null 2>&1 &
			idler=$!
			wait_fds "$idle" 600
		fi
		pf=""
		if command -v perf >/dev/null; then
			perf stat -x, -o "$tmp/perf" -e \
			    syscalls:sys_enter_poll,syscalls:sys_enter_epoll_wait \
			    -p "$srv" -- sleep 5.5 >/dev/null 2>&1 &
			pf=$!
		fi
		taskset -c 1 "$W" echo --port "$port" --conns 100 \
		    --inflight 16 --size 32 --duration 5 --pid "$srv" \
		    >"$tmp/echo" 2>&1 || true
		[ -z "$pf" ] || wait "$pf" || true
		msgs=$(sed -n 's/.* msgs=\([0-9]*\) .*/\1/p' "$tmp/echo")
		rate=$(sed -n 's/.* msgs_per_s=\([0-9]*\) .*/\1/p' "$tmp/echo")
		cpu=$(sed -n 's/.* cpu_us_per_msg=\([0-9.]*\) .*/\1/p' \
		    "$tmp/echo")
		passes=0
		[ -z "$pf" ] || passes=$(awk -F, '$1 ~ /^[0-9]+$/ { n += $1 }
		    END { print n + 0 }' "$tmp/perf" 2>/dev/null || echo 0)
		echo "$(basename "$bin") idle=$idle rate=${rate:-0}" \
		    "cpu_us_per_msg=${cpu:-?} passes=$passes" \
		    "msgs_per_pass=$(awk -v m="${msgs:-0}" -v p="$passes" \
		    'BEGIN { printf "%.0f", p ? m / p : 0 }')"
		if [ -n "$idler" ]; then
			kill "$idler" 2>/dev/null || true
			wait "$idler" 2>/dev/null || true
			idler=""
		fi
		kill "$srv"
		wait "$srv" 2>/dev/null || true
		srv=""
	done
done
