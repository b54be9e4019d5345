#!/bin/sh
# make size: what vkws costs on a device. For each build (host, static,
# small profile; armhf, arm64, mipsel and s390x in both profiles): the
# stripped binary size and the static memory budget (vkws --budget,
# under qemu for the cross builds);
# for the default host and armhf builds, each object's share of code and
# data; and every build's largest stack frames from -fstack-usage, which
# fails the run past STACK_MAX bytes (or on a dynamic frame: a VLA or
# alloca). Usage: tests/size.sh [STACK_MAX]
MAKE=${MAKE:-make}
STACK_MAX=${1:-1024}
rc=0
tmp=${TMPDIR:-/tmp}/vkws-size.$$
trap 'rm -f "$tmp"' EXIT

builds="build: build-static:STATIC=1 build-small:PROFILE=small
build-armhf:CROSS=armhf build-armhf-small:CROSS=armhf,PROFILE=small
build-arm64:CROSS=arm64 build-arm64-small:CROSS=arm64,PROFILE=small
build-mipsel:CROSS=mipsel build-mipsel-small:CROSS=mipsel,PROFILE=small
build-s390x:CROSS=s390x build-s390x-small:CROSS=s390x,PROFILE=small"

printf '%-20s %10s %12s %10s %10s %10s\n' build stripped "static total" \
    "per conn" "per TLS" "TLS engines"
for b in $builds; do
	dir=${b%%:*}
	args=$(echo "${b#*:}" | tr ',' ' ')
	run=""; strip=strip
	case $dir in
	*armhf*) run="qemu-arm -L /usr/arm-linux-gnueabihf"
		strip=arm-linux-gnueabihf-strip ;;
	*arm64*) run="qemu-aarch64 -L /usr/aarch64-linux-gnu"
		strip=aarch64-linux-gnu-strip ;;
	*mipsel*) run="qemu-mipsel -L /usr/mipsel-linux-gnu -E LD_LIBRARY_PATH=/usr/mipsel-linux-gnu/lib"
		strip=mipsel-linux-gnu-strip ;;
	*s390x*) run="qemu-s390x -L /usr/s390x-linux-gnu -E LD_LIBRARY_PATH=/usr/s390x-linux-gnu/lib"
		strip=s390x-linux-gnu-strip ;;
	esac
	if ! $MAKE -s -j2 $args O="$dir" STACK_MAX="$STACK_MAX" \
	    "$dir/vkws" >"$tmp" 2>&1; then
		echo "FAIL: make $args: $(tail -5 "$tmp")"
		rc=1
		continue
	fi
	$strip -o "$tmp" "$dir/vkws"
	s=$(wc -c <"$tmp")
	$run "$dir/vkws" --budget >"$tmp" 2>&1
	total=$(awk '$1 == "total" {print $2}' "$tmp")
	per=$(awk '$1 == "per" && $2 == "connection" {print $3}' "$tmp")
	ptls=$(awk '$1 == "per" && $2 == "TLS" {print $4}' "$tmp")
	tls=$(awk '$1 == "TLS" {print $3}' "$tmp")
	printf '%-20s %10s %12s %10s %10s %10s\n' "$dir" "$s" "$total" \
	    "$per" "$ptls" "$tls"
done

for dir in build build-armhf; do
	echo
	echo "== $dir: each object (bytes; bss holds the static tables)"
	SIZE=size
	[ "$dir" = build-armhf ] && SIZE=arm-linux-gnueabihf-size
	$SIZE "$dir"/*.o | awk 'NR == 1 { next }
	    { t += $1; d += $2; b += $3; n[NR] = $6; tx[NR] = $1;
	      dx[NR] = $2; bx[NR] = $3 }
	    END { printf "%-24s %8s %8s %10s %6s\n", "object", "text",
		  "data", "bss", "code%";
		  for (i in n) printf "%-24s %8d %8d %10d %5.1f%%\n", n[i],
		      tx[i], dx[i], bx[i], 100 * tx[i] / t;
		  printf "%-24s %8d %8d %10d\n", "total", t, d, b }'
done

echo
echo "== stack: largest frames per build (STACK_MAX=$STACK_MAX)"
for b in $builds; do
	dir=${b%%:*}
	ls "$dir"/*.su >/dev/null 2>&1 || continue
	cat "$dir"/*.su | sort -t"$(printf '\t')" -k2,2nr >"$tmp"
	echo "-- $dir"
	head -5 "$tmp" | awk -F'\t' '{printf "  %6d %-8s %s\n", $2, $3, $1}'
	over=$(awk -F'\t' -v max="$STACK_MAX" \
	    '$2 + 0 > max || $3 == "dynamic" {print $1 " " $2 " " $3}' "$tmp")
	if [ -n "$over" ]; then
		echo "FAIL: $dir: over $STACK_MAX or dynamic: $over"
		rc=1
	fi
done
[ "$rc" = 0 ] && echo "size: ok"
exit $rc
