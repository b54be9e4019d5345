#!/bin/sh
# bench/loop_cost.sh VKWS [IDLE...]: what one echoed message costs the
# server in instructions (callgrind), with IDLE idle connections held
# open (default: 0 and 7000), next to bench/run's "echo 100x16 32B with
# 7000 idle conns" row, whose CPU time is noisy on a shared machine.
#
# For each IDLE: the server (VKWS, a PROFILE=bench build for more than
# 1,000 connections) starts under callgrind with instrumentation off;
# `wsload idle` opens IDLE connections to /echo and holds them; then
# instrumentation goes on for `wsload echo --conns 100 --inflight 16
# --size 32 --count 20000` and off again. Prints the user-space
# instructions (Ir) per message, the loop passes (calls of loop_pass) and
# messages per pass. Kernel time (poll() handing the kernel every watched
# descriptor) is not in Ir: bench/run's CPU figure has it.
# Needs valgrind and bench/build/wsload (bench/run builds it).
set -eu
bin=${1:?usage: bench/loop_cost.sh VKWS [IDLE...]}
shift
[ $# -gt 0 ] || set -- 0 7000
command -v valgrind >/dev/null || { echo "valgrind is not installed"; exit 2; }
. "$(dirname "$0")/lib.sh"

for idle in "$@"; do
	valgrind --tool=callgrind --instr-atstart=no \
	    --callgrind-out-file="$tmp/cg.%p" "$bin" --listen 127.0.0.1:0 \
	    --echo --max-per-ip 0 --reconnect-rate 0 --max-pending 8192 \
	    >"$tmp/out" 2>"$tmp/err" &
	srv=$!
	wait_port 600
	[ -n "$port" ] || { cat "$tmp/err"; exit 1; }
	fds0=$(ls /proc/$srv/fd | wc -l)
	if [ "$idle" -gt 0 ]; then
		"$W" idle --port "$port" --pid "$srv" --conns "$idle" \
		    --duration 600 >"$tmp/idle" 2>&1 &
		idler=$!
		wait_fds "$idle" 1800
	fi
	held=$(($(ls /proc/$srv/fd | wc -l) - fds0))
	callgrind_control -i on "$srv" >/dev/null 2>&1
	"$W" echo --port "$port" --conns 100 --inflight 16 --size 32 \
	    --count 20000 --duration 120 >"$tmp/echo"
	callgrind_control -d "$srv" >/dev/null 2>&1
	callgrind_control -i off "$srv" >/dev/null 2>&1
	msgs=$(sed -n 's/.* msgs=\([0-9]*\) .*/\1/p' "$tmp/echo")
	# The dump: total Ir from "summary:", loop_pass calls from the
	# "calls=" lines under "cfn=(ID)" (fn= or cfn= names ID once).
	f=$(ls -t "$tmp"/cg.* | head -1)
	ir=$(sed -n 's/^summary: \([0-9]*\).*/\1/p' "$f" | head -1)
	passes=$(awk '
	    /^c?fn=\([0-9]+\) loop_pass$/ {
	        match($0, /\([0-9]+\)/); id = substr($0, RSTART, RLENGTH) }
	    /^cfn=/ { match($0, /\([0-9]+\)/);
	        hit = substr($0, RSTART, RLENGTH) == id; next }
	    /^calls=/ { if (hit) { split($1, b, "="); n += b[2] } hit = 0 }
	    END { print n + 0 }' "$f")
	echo "idle=$idle held=$held msgs=$msgs ir=$ir" \
	    "ir_per_msg=$((ir / msgs)) passes=$passes" \
	    "msgs_per_pass=$(awk -v m="$msgs" -v p="$passes" \
	    'BEGIN { printf "%.1f", p ? m / p : 0 }')"
	[ -z "$idler" ] || { kill "$idler"; wait "$idler" 2>/dev/null || true; }
	idler=""
	kill "$srv"
	wait "$srv" 2>/dev/null || true
	srv=""
	rm -f "$tmp"/cg.*
done
