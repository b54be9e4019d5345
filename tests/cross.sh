#!/bin/sh
# The builds beside the host one, each tested where it can run:
#   armhf, arm64   cross gcc; unit tests, fuzz corpus replay and the
#                  client smoke test (tests/test_smoke.py) under qemu-user
#   mipsel, s390x  the same (MIPS routers; s390x is big-endian, so the
#                  codec, the log format and JWT are checked for
#                  endianness by the same tests)
#   static         make STATIC=1; smoke test, and proof it is static
#   small          make PROFILE=small; unit tests, replay, smoke test
# Each prints its --budget, which must fit issue 14's targets (1.5 MiB
# small, 8 MiB default). binfmt is not assumed: cross binaries run as
# "qemu-arm -L /usr/arm-linux-gnueabihf BIN" (the -L prefix holds the ARM
# dynamic loader; qemu falls back to the host path for the multiarch
# libbearssl in /usr/lib/<triple>). For mipsel and s390x the guest's
# LD_LIBRARY_PATH also points at the cross libc: without it the cross
# ld.so loads the multiarch libc6:<arch> that libbearssl-dev:<arch>
# brought in, a different glibc build, and s390x aborts at start
# ("stack smashing detected", even for hello world).
# Prints "N passed, N failed" last.
# Usage: tests/cross.sh [VARIANT...]
#        (default: armhf arm64 mipsel s390x static small)
PY=${PYTHON:-/usr/bin/python3}
MAKE=${MAKE:-make}
pass=0
fail=0
add() { pass=$((pass + $1)); fail=$((fail + $2)); }
count_line() {	# "N passed, N failed" -> "N N"
	sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed.*/\1 \2/p' | tail -1
}
now() { date +%s; }

# Run one check program (under $run); add its counts.
unit() {
	out=$($run "$1" 2>&1); rc=$?
	set -- "$1" $(printf '%s\n' "$out" | count_line) 0 0
	p=$2; f=$3
	[ "$rc" = 0 ] || [ "$f" -gt 0 ] || f=1
	printf '  %s: %s passed, %s failed\n' "$1" "$p" "$f"
	[ "$f" = 0 ] || printf '%s\n' "$out" | tail -20
	add "$p" "$f"
}

# Issue 14: the static budget (vkws --budget "total") of the build in
# $1 (run under $2) is at most 1.5 MiB for PROFILE=small, 8 MiB for the
# default profile.
budget() {
	case $1 in
	*small*) max=1572864 ;;
	*) max=8388608 ;;
	esac
	total=$($2 "$1/vkws" --budget 2>&1 | awk '$1 == "total" {print $2}')
	if [ -n "$total" ] && [ "$total" -le "$max" ]; then
		echo "  ok: $1 static budget $total <= $max"
		add 1 0
	else
		echo "  FAIL: $1 static budget '$total' > $max"
		add 0 1
	fi
}

# The smoke test against $dir/vkws (through the qemu wrapper).
smoke() {
	log=$(mktemp)
	VKWS_BIN="$1" VKWS_HOST_BIN=./vkws "$PY" -m pytest -q -rs \
	    -p no:cacheprovider tests/test_smoke.py >"$log" 2>&1
	tail -8 "$log" | sed 's/^/  /'
	s=$(tail -1 "$log")
	p=$(printf '%s' "$s" | sed -n 's/^\([0-9][0-9]*\) passed.*/\1/p')
	f=$(printf '%s' "$s" | sed -n 's/.* \([0-9][0-9]*\) failed.*/\1/p;s/^\([0-9][0-9]*\) failed.*/\1/p' | head -1)
	e=$(printf '%s' "$s" | sed -n 's/.* \([0-9][0-9]*\) error.*/\1/p' | head -1)
	[ -n "$p" ] || p=0
	[ -n "$f" ] || f=0
	[ -n "$e" ] && f=$((f + e))
	[ "$p" -gt 0 ] || f=$((f + 1))
	add "$p" "$f"
	rm -f "$log"
}

# The host ./vkws mints the smoke test's tokens.
[ -x ./vkws ] || $MAKE -s vkws >/dev/null

variants=${*:-armhf arm64 mipsel s390x static small}
for v in $variants; do
	t0=$(now)
	run=""
	case $v in
	armhf)	args="CROSS=armhf"; dir=build-armhf
		run="qemu-arm -L /usr/arm-linux-gnueabihf" ;;
	arm64)	args="CROSS=arm64"; dir=build-arm64
		run="qemu-aarch64 -L /usr/aarch64-linux-gnu" ;;
	mipsel)	args="CROSS=mipsel"; dir=build-mipsel
		run="qemu-mipsel -L /usr/mipsel-linux-gnu -E LD_LIBRARY_PATH=/usr/mipsel-linux-gnu/lib" ;;
	s390x)	args="CROSS=s390x"; dir=build-s390x
		run="qemu-s390x -L /usr/s390x-linux-gnu -E LD_LIBRARY_PATH=/usr/s390x-linux-gnu/lib" ;;
	static)	args="STATIC=1"; dir=build-static ;;
	small)	args="PROFILE=small"; dir=build-small ;;
	*)	echo "unknown variant $v"; add 0 1; continue ;;
	esac
	echo "=== $v ($args, $dir)"
	mlog=${TMPDIR:-/tmp}/vkws-cross-$v.log
	if ! $MAKE -s -j2 $args >"$mlog" 2>&1; then
		tail -20 "$mlog"
		echo "FAIL: make $args"
		add 0 1
		continue
	fi
	rm -f "$mlog"
	t1=$(now)
	bin=$dir/vkws
	if [ -n "$run" ]; then
		# A wrapper the test fixtures can start like a binary: exec
		# keeps one PID, and qemu passes SIGTERM on and returns the
		# guest's exit status.
		printf '#!/bin/sh\nexec %s "$(dirname "$0")/vkws" "$@"\n' \
		    "$run" >"$dir/vkws-qemu"
		chmod +x "$dir/vkws-qemu"
		bin=$dir/vkws-qemu
	fi
	if [ "$v" = static ]; then
		if file -L "$dir/vkws" | grep -q 'statically linked' &&
		    [ -z "$(readelf -l "$dir/vkws" | grep INTERP)" ]; then
			echo "  ok: $dir/vkws is statically linked"
			add 1 0
		else
			echo "  FAIL: $dir/vkws is not static: $(file "$dir/vkws")"
			add 0 1
		fi
	fi
	$run "$dir/vkws" --budget 2>&1 | sed 's/^/  /'
	budget "$dir" "$run"
	if [ "$v" != static ]; then
		for t in "$dir"/tests/test_* "$dir"/fuzz/replay_*; do
			case $t in *.su) continue ;; esac
			[ -x "$t" ] && unit "$t"
		done
	fi
	t2=$(now)
	smoke "$bin"
	t3=$(now)
	echo "  time: build $((t1 - t0))s, unit $((t2 - t1))s, smoke $((t3 - t2))s"
done
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
