#!/bin/sh
# Install the Debian packages named as arguments, only those missing.
# Used by `make run` and `make test`; needs root (or sudo) to install.
missing=""
for p in "$@"; do
	# Node.js and npm may come from outside Debian (a newer build on the
	# image); Debian's packages would conflict with it, so a working
	# command is enough.
	case $p in
	nodejs) command -v node >/dev/null 2>&1 && continue ;;
	npm) command -v npm >/dev/null 2>&1 && continue ;;
	esac
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
	    missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "installing:$missing"
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
# apt-get update may fail on one index while installs still work.
$SUDO apt-get update -o DPkg::Lock::Timeout=600 >/dev/null 2>&1 || true
$SUDO apt-get install -y -o DPkg::Lock::Timeout=600 $missing
