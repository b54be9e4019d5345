# Stand-in for OpenWrt's /lib/functions/procd.sh: each call prints what
# procd would be told, one line per call, the arguments of a command one
# per line after "command:" (so a test can compare them exactly).

procd_open_instance() { echo "open_instance $1"; }
procd_close_instance() { echo "close_instance"; }

procd_set_param() {	# name value...
	local p="$1"
	shift
	if [ "$p" = command ]; then
		echo "command:"
		for a in "$@"; do printf '\t%s\n' "$a"; done
	else
		echo "param $p $*"
	fi
}

procd_append_param() {	# name value...
	local p="$1"
	shift
	for a in "$@"; do printf '\t%s\n' "$a"; done
}

procd_add_reload_trigger() { echo "reload_trigger $*"; }
procd_send_signal() { echo "send_signal $*"; }
