#!/bin/sh
# make deps-cross: the cross toolchains (armhf, arm64, mipsel, s390x),
# qemu-user and those architectures' builds of BearSSL (Debian
# multiarch), plus libFuzzer's runtime for make fuzz. Installs only what
# is missing. The foreign architectures are added first so apt can see
# libbearssl-dev:armhf and the others; jsmn is a header only, shared by
# every architecture. apt-get update may fail on one
# foreign index (the armhf security index is sometimes mid-sync): deps.sh
# tolerates it, and the packages needed come from the main archive.
# Only the BearSSL libraries are taken from the foreign architectures:
# the cross compilers bring their own libc (libc6-dev-*-cross), and
# libc6-dev:armhf would have to match the host's patch level exactly.
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
missing=0
for p in "$@"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
	    missing=1
done
[ "$missing" = 0 ] && exit 0
for a in armhf arm64 mipsel s390x; do
	dpkg --print-foreign-architectures | grep -qx "$a" ||
	    $SUDO dpkg --add-architecture "$a"
done
exec sh "$(dirname "$0")/deps.sh" "$@"
