#!/bin/sh
# Run an OpenWrt init script's procd functions outside OpenWrt, with the
# stand-ins beside this file for /lib/functions.sh and procd.sh, as
# /etc/rc.common would. Usage: run-init.sh INIT_SCRIPT UCI_DIR ACTION...
# (ACTION: start_service, service_triggers or reload_service; the last
# calls start, which is start_service here).
here=$(dirname "$0")
init=$1
export UCI_CONFIG_DIR=$2
shift 2
. "$here/functions.sh"
. "$here/procd.sh"
start() { start_service; }
. "$init"
for a in "$@"; do
	echo "== $a"
	"$a"
done
