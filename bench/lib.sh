# bench/lib.sh: what the bench's shell scripts share, sourced by them.
# Sets W (bench/build/wsload, which bench/run builds) and tmp (a scratch
# dir); the caller keeps the server's and the idle holder's PIDs in srv
# and idler, and on exit both are stopped and tmp removed.
W=$(cd "$(dirname "$0")" && pwd)/build/wsload
[ -x "$W" ] || { echo "no $W: run bench/run --quick first"; exit 2; }
tmp=$(mktemp -d)
srv=""
idler=""
cleanup() {
	[ -z "$idler" ] || kill "$idler" 2>/dev/null || true
	[ -z "$srv" ] || kill "$srv" 2>/dev/null || true
	wait 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT

# wait_port TRIES: the port of the server's "listening on" line in
# $tmp/out into port, trying every 0.1 s; empty if it never came.
wait_port() {
	port=""
	for _ in $(seq "$1"); do
		port=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' \
		    "$tmp/out" 2>/dev/null || true)
		[ -z "$port" ] || return 0
		sleep 0.1
	done
}

# wait_fds N TRIES: until the server (srv) holds N descriptors more
# than fds0, trying every 0.1 s.
wait_fds() {
	for _ in $(seq "$2"); do
		[ $(($(ls /proc/$srv/fd | wc -l) - fds0)) -ge "$1" ] && return 0
		sleep 0.1
	done
}
