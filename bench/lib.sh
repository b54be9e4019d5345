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
