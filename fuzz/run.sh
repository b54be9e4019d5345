#!/bin/sh
# Run libFuzzer targets for a bounded time each, on a scratch copy of the
# committed corpus, and turn every crash into a regression input.
# Usage: fuzz/run.sh BUILD_DIR SECONDS TARGET...   (make fuzz calls it)
# With FUZZ_RUNS=N in the environment each target runs N inputs from a
# fixed seed instead, so the run is the same every time on the same
# binary: make test uses that (tests/run), make fuzz the time bound.
# FUZZ_OUT names the working corpus directory (default fuzz/out).
#
# Each target starts from fuzz/corpus/TARGET and writes what it finds to
# fuzz/out/TARGET (not committed: it grows without bound). A crash, leak
# or timeout file is copied to fuzz/corpus/TARGET/crash-<sha1>, so the
# replay driver runs it in every make test from then on, and the run
# fails. To fold new coverage into the committed seeds by hand:
#   build-fuzz/fuzz/fuzz_T -merge=1 fuzz/corpus/T fuzz/out/T
dir=$1
secs=$2
shift 2
found=0
for t in "$@"; do
	bin=$dir/fuzz/fuzz_$t
	out=${FUZZ_OUT:-fuzz/out}/$t
	mkdir -p "$out" fuzz/corpus/"$t"
	dict=""
	[ -f fuzz/"$t".dict ] && dict="-dict=fuzz/$t.dict"
	if [ -n "${FUZZ_RUNS:-}" ]; then
		bound="-runs=$FUZZ_RUNS -seed=1"
		echo "=== fuzz $t for $FUZZ_RUNS inputs"
	else
		bound="-max_total_time=$secs"
		echo "=== fuzz $t for ${secs}s"
	fi
	# -max_len as FUZZ_MAX_INPUT in fuzz.h; -rss_limit_mb leaves room
	# for vkws's static tables under ASan; -timeout catches a hang.
	"$bin" $bound -max_len=65536 -timeout=10 \
	    -rss_limit_mb=4096 -print_final_stats=1 \
	    -artifact_prefix="$out/" $dict "$out" fuzz/corpus/"$t" \
	    >"$out.log" 2>&1
	rc=$?
	tail -12 "$out.log"
	for a in "$out"/crash-* "$out"/leak-* "$out"/timeout-* \
	    "$out"/oom-* "$out"/slow-unit-*; do
		[ -f "$a" ] || continue
		sum=$(sha1sum "$a" | cut -c1-16)
		cp "$a" fuzz/corpus/"$t"/crash-"$sum"
		echo "FOUND: $a -> fuzz/corpus/$t/crash-$sum"
		rm -f "$a"
		found=$((found + 1))
	done
	if [ "$rc" != 0 ] && [ "$found" = 0 ]; then
		echo "FAIL: fuzz_$t exited $rc without an artifact"
		found=$((found + 1))
	fi
done
echo "fuzz: $found finding(s)"
[ "$found" = 0 ]
