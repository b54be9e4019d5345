# Stand-in for OpenWrt's /lib/functions.sh (UCI part), enough to run an
# init script outside OpenWrt (tests/test_packaging.py). As on OpenWrt, a
# UCI file is shell: `config TYPE NAME`, `option NAME VALUE` and
# `list NAME VALUE` are functions that store values in CONFIG_*
# variables; config_load sources $UCI_CONFIG_DIR/NAME.

CONFIG_SECTIONS=""
CONFIG_SECTION=""
_cfg_n=0

config() {	# type [name]
	local name="$2"
	if [ -z "$name" ]; then
		_cfg_n=$((_cfg_n + 1))
		name="cfg$_cfg_n"
	fi
	CONFIG_SECTION="$name"
	CONFIG_SECTIONS="$CONFIG_SECTIONS $name"
	eval "CONFIG_${name}_TYPE=\$1"
}

option() {	# name value
	eval "CONFIG_${CONFIG_SECTION}_$1=\$2"
}

list() {	# name value
	local n
	eval "n=\${CONFIG_${CONFIG_SECTION}_$1_ITEMS:-0}"
	n=$((n + 1))
	eval "CONFIG_${CONFIG_SECTION}_$1_ITEM$n=\$2"
	eval "CONFIG_${CONFIG_SECTION}_$1_ITEMS=$n"
}

config_load() {	# package: forget what an earlier load set
	unset $(set | sed -n 's/^\(CONFIG_[A-Za-z0-9_]*\)=.*/\1/p')
	CONFIG_SECTIONS=""
	_cfg_n=0
	. "${UCI_CONFIG_DIR:-/etc/config}/$1"
}

# Locals are prefixed: the caller's variable may be called v too.
config_get() {	# var section option [default]
	local _cg_v
	eval "_cg_v=\${CONFIG_$2_$3-}"
	[ -n "$_cg_v" ] || _cg_v="$4"
	eval "$1=\$_cg_v"
}

config_get_bool() {	# var section option [default]
	local _cb_v
	config_get _cb_v "$2" "$3" "$4"
	case "$_cb_v" in
	1|on|true|yes|enabled) _cb_v=1 ;;
	0|off|false|no|disabled) _cb_v=0 ;;
	*) _cb_v="$4" ;;
	esac
	eval "$1=\$_cb_v"
}

config_foreach() {	# function type
	local _cf_s _cf_t
	for _cf_s in $CONFIG_SECTIONS; do
		eval "_cf_t=\$CONFIG_${_cf_s}_TYPE"
		[ "$_cf_t" = "$2" ] && "$1" "$_cf_s"
	done
	return 0
}

config_list_foreach() {	# section option function
	local _cl_n _cl_i _cl_v
	eval "_cl_n=\${CONFIG_$1_$2_ITEMS:-0}"
	_cl_i=1
	while [ "$_cl_i" -le "$_cl_n" ]; do
		eval "_cl_v=\$CONFIG_$1_$2_ITEM$_cl_i"
		"$3" "$_cl_v"
		_cl_i=$((_cl_i + 1))
	done
}
