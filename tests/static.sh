#!/bin/sh
# Static checks on the tree and the built binary: no allocator imported,
# every exported symbol prefixed, a clean clang build with -Werror, and
# cppcheck / clang-tidy clean. Prints "N passed, N failed".
pass=0
fail=0
ok() { pass=$((pass + 1)); echo "ok: $*"; }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }
ALLOC='(malloc|calloc|realloc|free|strdup|strndup|reallocarray|posix_memalign|aligned_alloc|valloc|pvalloc|memalign)(@.*)?$'

# The server binary imports no allocator (nm -u lists undefined symbols).
a=$(nm -u vkws | grep -Ew "$ALLOC")
if [ -z "$a" ]; then ok "nm -u vkws: no allocator"; else bad "vkws imports: $a"; fi

# Every global symbol our objects define carries a project prefix.
bad_syms=$(for o in build/*.o; do
	[ "$o" = build/main.o ] && continue
	nm -g --defined-only "$o" | awk '{print $3}'
done | grep -Ev '^(vkws_|ws_|http_|json_|jwt_|tls_|store_)' )
if [ -z "$bad_syms" ]; then ok "exported symbols prefixed"; else
	bad "unprefixed symbols: $bad_syms"; fi

# clang with the same warnings and -Werror.
if command -v clang >/dev/null && make -s CC=clang O=build-clang \
    build-clang/vkws >/tmp/vkws-clang.log 2>&1; then
	ok "clang -Werror build"
else
	bad "clang build: $(tail -5 /tmp/vkws-clang.log)"
fi

# cppcheck: warning, style, performance, portability.
if cppcheck -q --std=c11 --enable=warning,style,performance,portability \
    --error-exitcode=1 --inline-suppr --suppress=missingIncludeSystem \
    -D_POSIX_C_SOURCE=200809L -DJSMN_STRICT -DJSMN_PARENT_LINKS \
    -I. *.c >/tmp/vkws-cppcheck.log 2>&1; then
	ok "cppcheck"
else
	bad "cppcheck: $(head -20 /tmp/vkws-cppcheck.log)"
fi

# clang-tidy: bugprone, cert, clang-analyzer.
if clang-tidy --quiet -checks='-*,bugprone-*,cert-*,clang-analyzer-*,-bugprone-easily-swappable-parameters,-cert-err33-c,-bugprone-reserved-identifier,-cert-dcl37-c,-cert-dcl51-cpp' \
    --warnings-as-errors='*' *.c -- -std=c11 -D_POSIX_C_SOURCE=200809L \
    -DJSMN_STRICT -DJSMN_PARENT_LINKS -I. >/tmp/vkws-tidy.log 2>&1; then
	ok "clang-tidy"
else
	bad "clang-tidy: $(grep -E 'warning|error' /tmp/vkws-tidy.log | head -20)"
fi

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
