#!/bin/sh
# bench/tls_handshakes.sh: TLS handshakes per second of vkws on this
# machine, and the static memory of its TLS engines. Not a test: it
# prints numbers and judges nothing.
#
#   bench/tls_handshakes.sh [SECONDS]      (default 5 per measurement)
#
# For an EC P-256 and an RSA 2048 certificate (made here with the openssl
# CLI in a temporary directory) it starts ./vkws (VKWS_BIN to override)
# on 127.0.0.1:0 with --tls-listen, and runs `openssl s_time` against it:
# -new (a full handshake per connection) and -reuse (session
# resumption). The client is one openssl process, pinned to another CPU
# than the server when taskset is there; with two cores each side has
# its own, and the client's crypto may be the limit: the last column
# (connections per CPU second the server used, from /proc/PID/stat) is
# what the server itself can do. Servers are stopped by PID.
set -eu

SECS=${1:-5}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${VKWS_BIN:-$ROOT/vkws}
[ -x "$BIN" ] || { echo "no server binary $BIN (make vkws)" >&2; exit 1; }
command -v openssl >/dev/null || { echo "openssl CLI missing" >&2; exit 1; }

DIR=$(mktemp -d)
PID=
cleanup() {
	if [ -n "$PID" ]; then
		kill "$PID" 2>/dev/null || true
		wait "$PID" 2>/dev/null || true
	fi
	rm -rf "$DIR"
}
trap cleanup EXIT INT TERM

SRV_PIN= CLI_PIN=
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
	SRV_PIN="taskset -c 0"
	CLI_PIN="taskset -c 1"
fi

cd "$DIR"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
    -out ec.key 2>/dev/null
openssl req -new -x509 -key ec.key -subj /CN=localhost -days 1 \
    -out ec.crt 2>/dev/null
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 \
    -out rsa.key 2>/dev/null
openssl req -new -x509 -key rsa.key -subj /CN=localhost -days 1 \
    -out rsa.crt 2>/dev/null

# The budget: the pool, and one engine (the pool over the engine count).
budget=$("$BIN" --budget)
pool=$(printf '%s\n' "$budget" | sed -n 's/^ *TLS engines *\([0-9]*\).*/\1/p')
echo "TLS static memory (vkws --budget): $pool bytes"

start() {	# start KIND: run the server, set PID and PORT
	mkfifo out.$1
	$SRV_PIN "$BIN" --listen '' --tls-listen 127.0.0.1:0 \
	    --cert "$1.crt" --key "$1.key" >out.$1 2>err.$1 &
	PID=$!
	PORT=$(timeout 10 sed -n 's/^listening on 127\.0\.0\.1:\([0-9]*\) tls$/\1/p;T;q' out.$1)
	[ -n "$PORT" ] || { echo "server did not start:" >&2; cat err.$1 >&2; exit 1; }
	# Keep draining stdout so the server never blocks on it.
	cat out.$1 >/dev/null &
}

stop() {
	kill "$PID"
	wait "$PID" || { echo "server exit code $?" >&2; exit 1; }
	PID=
}

cpu_ticks() {	# utime + stime of the server (clock ticks)
	awk '{ print $14 + $15 }' /proc/"$PID"/stat
}

measure() {	# measure MODE: "connections wall-seconds server-cpu-seconds"
	c0=$(cpu_ticks)
	t0=$(date +%s.%N)
	n=$($CLI_PIN openssl s_time -connect 127.0.0.1:"$PORT" "$1" \
	    -time "$SECS" 2>/dev/null |
	    sed -n 's/^\([0-9]*\) connections in [0-9]* real seconds.*/\1/p' |
	    tail -1)
	t1=$(date +%s.%N)
	c1=$(cpu_ticks)
	echo "${n:-0} $(awk "BEGIN { print $t1 - $t0 }") \
	    $(awk "BEGIN { print ($c1 - $c0) / $(getconf CLK_TCK) }")"
}

printf '%-5s %-7s %12s %12s %17s\n' key mode connections "per second" \
    "per server CPU s"
for kind in ec rsa; do
	start $kind
	for mode in -new -reuse; do
		set -- $(measure $mode)
		printf '%-5s %-7s %12s %12s %17s\n' $kind ${mode#-} "$1" \
		    "$(awk "BEGIN { printf \"%.0f\", $1 / $2 }")" \
		    "$(awk "BEGIN { if ($3 > 0) printf \"%.0f\", $1 / $3; else print \"n/a\" }")"
	done
	stop
done
