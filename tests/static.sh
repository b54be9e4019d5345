#!/bin/sh
# Static checks on the tree and the built binaries. Prints "N passed,
# N failed"; run by tests/run (make test) after tests/cross.sh, and alone
# by make lint. Each check says what it protects:
#   builds     gcc and clang, every STYLE.md warning, -Werror
#   allocator  no binary imports an allocator, and none of our objects
#              references one or a libc call that allocates behind the
#              caller's back (stdio streams, getaddrinfo, qsort, opendir)
#   prefix     every global symbol we define carries a project prefix
#   stack      no function's frame passes STACK_MAX bytes, none is
#              dynamic (a VLA or alloca would show as "dynamic")
#   cppcheck   warning, style, performance, portability
#   clang-tidy bugprone, cert, clang-analyzer (.clang-tidy says which
#              checks are off and why)
#   pyflakes   the Python tests and bench scripts: no unused import, no
#              undefined or unused name
#   ct-equal   vkws_ct_equal (the JWT signature and API key compare)
#              has no branch, early return or data-dependent loop bound:
#              an early-exit compare answers the same, only slower for a
#              longer matching prefix, so no behaviour test can see it
#              (issue 18); tests/mutants/list holds the mutant it kills
# "sh tests/static.sh ct-equal" runs that source check alone.
# Binaries of the other builds (armhf, arm64, static, small) are checked
# when present; tests/cross.sh builds them first in make test.
MAKE=${MAKE:-make}
STACK_MAX=${STACK_MAX:-1024}
pass=0
fail=0
ok() { pass=$((pass + 1)); echo "ok: $*"; }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }
skip() { echo "skip: $*"; }
ALLOC='(malloc|calloc|realloc|free|strdup|strndup|reallocarray|posix_memalign|aligned_alloc|valloc|pvalloc|memalign|__libc_malloc|alloca|__alloca)(@.*)?$'
# libc calls that allocate inside: a FILE stream's buffer, address
# lookups, merge sort's scratch, directory streams, regex.
HIDDEN='(fopen|fopen64|fdopen|freopen|popen|tmpfile|open_memstream|fmemopen|asprintf|vasprintf|getline|getdelim|getaddrinfo|getnameinfo|gethostbyname|qsort|opendir|fdopendir|scandir|regcomp|setvbuf|strerror_l|wordexp|glob)(@.*)?$'
log=${TMPDIR:-/tmp}/vkws-static.$$
trap 'rm -f "$log"' EXIT

# ---- ct-equal: a constant-time compare, checked in its source --------
# The function's text, comments out; then: the pointers it reads through
# are volatile (the compiler may not stop early on its own), its one loop
# is "for (i = 0; i < n; i++)" (a bound on the length, never on the
# data), it has no if, ?:, &&, ||, while, switch, break, continue or goto,
# and one return, its last statement.
ct_equal() {
	body=$(awk '/^vkws_ct_equal\(/ { on = 1 } on { print } on && /^}/ { exit }' \
	    auth.c | sed 's,/\*.*\*/,,g')
	why=""
	[ -n "$body" ] || why="vkws_ct_equal not found in auth.c"
	code=$(printf '%s\n' "$body" | sed 's/"[^"]*"//g')
	[ -n "$why" ] || printf '%s\n' "$code" |
	    grep -q 'const volatile unsigned char \*x = a, \*y = b;' ||
	    why="the bytes are not read through volatile pointers"
	[ -n "$why" ] || [ "$(printf '%s\n' "$code" | grep -c 'for *(')" = 1 ] ||
	    why="not exactly one loop"
	[ -n "$why" ] || printf '%s\n' "$code" |
	    grep -Eq '^[[:space:]]*for \(i = 0; i < n; i\+\+\)$' ||
	    why="the loop is not for (i = 0; i < n; i++)"
	bad_tok=$(printf '%s\n' "$code" | grep -Eo \
	    '(\<(if|while|switch|break|continue|goto|do)\>|\?|&&|\|\|)' |
	    sort -u | tr '\n' ' ')
	[ -n "$why" ] || [ -z "$bad_tok" ] ||
	    why="branches or short-circuits: $bad_tok"
	[ -n "$why" ] || [ "$(printf '%s\n' "$code" | grep -c '\<return\>')" = 1 ] ||
	    why="more than one return"
	[ -n "$why" ] || printf '%s\n' "$code" | grep -v '^[[:space:]]*$' |
	    tail -2 | head -1 | grep -q '^[[:space:]]*return ' ||
	    why="the return is not the last statement"
	if [ -z "$why" ]; then
		ok "vkws_ct_equal: no branch, early return or data-dependent bound"
	else
		bad "vkws_ct_equal is not constant-time: $why"
	fi
}
if [ "$1" = ct-equal ]; then
	ct_equal
	echo "$pass passed, $fail failed"
	[ "$fail" = 0 ]
	exit
fi

# ---- builds ----------------------------------------------------------
if $MAKE -s build/vkws >"$log" 2>&1; then
	ok "gcc -Werror build (build/vkws)"
else
	bad "gcc build: $(tail -5 "$log")"
fi
# clang -Weverything over every server source, less two warnings that
# say nothing about the code: -Wpadded (struct layout is a memory choice
# made in vkws.h) and -Wdisabled-macro-expansion (glibc's sa_handler
# macro).
if command -v clang >/dev/null && clang -std=c11 -D_POSIX_C_SOURCE=200809L \
    -DJSMN_STRICT -DJSMN_PARENT_LINKS -I. -Weverything -Wno-padded \
    -Wno-disabled-macro-expansion -Werror -fsyntax-only *.c \
    >"$log" 2>&1; then
	ok "clang -Weverything -Werror (less -Wpadded)"
else
	bad "clang -Weverything: $(grep -m5 'error:' "$log")"
fi
# The same for the epoll half of poller.c (the run above, without
# VKWS_POLLER_EPOLL, sees the poll() half).
if command -v clang >/dev/null && clang -std=c11 -D_POSIX_C_SOURCE=200809L \
    -DVKWS_POLLER_EPOLL -I. -Weverything -Wno-padded \
    -Wno-disabled-macro-expansion -Werror -fsyntax-only poller.c \
    >"$log" 2>&1; then
	ok "clang -Weverything -Werror, poller.c with epoll"
else
	bad "clang -Weverything (epoll): $(grep -m5 'error:' "$log")"
fi

if command -v clang >/dev/null && $MAKE -s CC=clang O=build-clang \
    build-clang/vkws >"$log" 2>&1; then
	ok "clang -Werror build (build-clang/vkws)"
else
	bad "clang build: $(tail -5 "$log")"
fi

# ---- allocator, prefix, stack on every build present -----------------
nm_for() {	# the nm that reads this build's objects
	case $1 in
	*armhf*) command -v arm-linux-gnueabihf-nm || echo nm ;;
	*arm64*) command -v aarch64-linux-gnu-nm || echo nm ;;
	*) echo nm ;;
	esac
}
for dir in build build-clang build-armhf build-arm64 build-static \
    build-small build-poll; do
	bin=$dir/vkws
	if [ ! -x "$bin" ]; then
		case $dir in
		build|build-clang) bad "$bin missing" ;;
		*) skip "$bin not built (tests/cross.sh builds it)" ;;
		esac
		continue
	fi
	NM=$(nm_for "$dir")
	objs=$(ls "$dir"/*.o 2>/dev/null)
	# A dynamic binary: what it imports. A static one carries libc,
	# and glibc's malloc with it (stdio, strerror and the locale code
	# reference it), so there only our objects can be checked, below.
	if readelf -l "$bin" 2>/dev/null | grep -q INTERP; then
		a=$($NM -D --undefined-only "$bin" | awk '{print $NF}' |
		    grep -Ew "$ALLOC")
		if [ -z "$a" ]; then
			ok "$bin imports no allocator"
		else
			bad "$bin imports: $(echo $a)"
		fi
	else
		ok "$bin is static: libc's malloc is inside, checked on objects"
	fi
	# Our objects: no allocator, no libc call that allocates. main.o
	# runs once, before the loop, and may print with stdio.
	a=$(for o in $objs; do
		$NM -u "$o" | awk -v o="$o" '{print o ": " $NF}'
	done | grep -E ": $ALLOC|: $HIDDEN")
	if [ -z "$a" ]; then
		ok "$dir/*.o reference no allocator"
	else
		bad "$dir/*.o: $(echo $a)"
	fi
	# Every global symbol our objects define carries a project prefix;
	# main.o defines main and nothing else.
	s=$(for o in $objs; do
		case $o in */main.o) continue ;; esac
		$NM -g --defined-only "$o" | awk '{print $3}'
	done | grep -Ev '^(vkws_|ws_|http_|json_|jwt_|tls_|store_|resp_)')
	m=$($NM -g --defined-only "$dir/main.o" 2>/dev/null |
	    awk '{print $3}' | grep -v '^main$')
	if [ -z "$s$m" ]; then
		ok "$dir: exported symbols prefixed"
	else
		bad "$dir: unprefixed symbols: $(echo $s $m)"
	fi
	# -fstack-usage: "function<TAB>bytes<TAB>static|dynamic[,bounded]".
	su=$(ls "$dir"/*.su 2>/dev/null)
	if [ -z "$su" ]; then
		bad "$dir: no -fstack-usage files"
		continue
	fi
	s=$(cat $su | awk -F'\t' -v max="$STACK_MAX" \
	    '$2 + 0 > max || $3 == "dynamic" { print $1 " " $2 " " $3 }')
	hw=$(cat $su | sort -t"$(printf '\t')" -k2,2n | tail -1 |
	    awk -F'\t' '{print $2 " bytes in " $1}')
	if [ -z "$s" ]; then
		ok "$dir: stack frames <= $STACK_MAX (largest $hw)"
	else
		bad "$dir: stack frames over $STACK_MAX or dynamic: $s"
	fi
done

# ---- cppcheck --------------------------------------------------------
# Off, with reasons: variableScope asks to declare locals in inner
# blocks, where style(9) (STYLE.md) declares them at the top of the
# function. knownConditionTrueFalse in auth.c: cppcheck 2.10 assumes
# cap < 1 in jwt_sign() and calls "the payload fills the rest of the
# buffer" impossible; it is not (tests/test_jwt.c signs into short
# buffers).
if cppcheck -q -j2 --std=c11 \
    --enable=warning,style,performance,portability \
    --error-exitcode=1 --inline-suppr --suppress=missingIncludeSystem \
    --suppress=variableScope --suppress=knownConditionTrueFalse:auth.c \
    -D_POSIX_C_SOURCE=200809L -DJSMN_STRICT -DJSMN_PARENT_LINKS \
    -I. *.c fuzz/*.c >"$log" 2>&1 && cppcheck -q --std=c11 \
    --enable=warning,style,performance,portability \
    --error-exitcode=1 --inline-suppr --suppress=missingIncludeSystem \
    --suppress=variableScope -D_POSIX_C_SOURCE=200809L \
    -DVKWS_POLLER_EPOLL -I. poller.c >>"$log" 2>&1; then
	ok "cppcheck (poller.c twice: poll() and epoll)"
else
	bad "cppcheck: $(head -40 "$log")"
fi

# ---- pyflakes ---------------------------------------------------------
if /usr/bin/python3 -m pyflakes tests/*.py bench/*.py bench/run \
    >"$log" 2>&1; then
	ok "pyflakes"
else
	bad "pyflakes: $(head -40 "$log")"
fi

# ---- clang-tidy (checks in .clang-tidy) ------------------------------
# Two files at a time; each run reads the same .clang-tidy.
if ls *.c fuzz/*.c | xargs -P2 -I{} clang-tidy --quiet {} -- -std=c11 \
    -D_POSIX_C_SOURCE=200809L -DJSMN_STRICT -DJSMN_PARENT_LINKS -I. \
    >"$log" 2>&1 && clang-tidy --quiet poller.c -- -std=c11 \
    -D_POSIX_C_SOURCE=200809L -DVKWS_POLLER_EPOLL -I. >>"$log" 2>&1; then
	ok "clang-tidy"
else
	bad "clang-tidy: $(grep -E 'warning:|error:' "$log" | sort -u |
	    head -30)"
fi

ct_equal

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
