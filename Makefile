# vkws: build, run and test. See README.md.
#
#   make            build ./vkws
#   make run        install build deps if missing, build, start on 127.0.0.1:8080
#   make test       install test deps if missing, build, run every test (asan too)
#   make asan       the test suite against an ASan+UBSan build
#   make lint       cppcheck and clang-tidy
#   make mutants    the mutation check: every mutant of tests/mutants/list
#   make clean

CC      ?= cc
# Commands are shown as "CC target"; make V=1 shows them whole.
Q       := $(if $(filter 1,$(V)),,@)
O       ?= build
PYTHON  ?= /usr/bin/python3

WARN = -Wall -Wextra -Wpedantic -Wconversion -Wsign-conversion -Wshadow \
       -Wstrict-prototypes -Wmissing-prototypes -Wcast-qual -Wformat=2 \
       -Wundef -Wvla -Wimplicit-fallthrough -fno-common \
       -Wframe-larger-than=$(STACK_MAX) -Werror
CPPFLAGS += -D_POSIX_C_SOURCE=200809L -DJSMN_STRICT -DJSMN_PARENT_LINKS
CFLAGS  ?= -O2 -g
CFLAGS  += -std=c11 $(WARN)
LDLIBS  += -lbearssl

ifeq ($(SAN),1)
CFLAGS  += -fsanitize=address,undefined -fno-sanitize-recover=all \
           -fno-omit-frame-pointer
LDFLAGS += -fsanitize=address,undefined
endif

# ---- Embedded builds: CROSS, STATIC, PROFILE (issue 7) -----------------
# make CROSS=armhf | CROSS=arm64   Debian cross gcc, into build-armhf/ etc.
# make CROSS=mipsel | CROSS=s390x  MIPS routers; a big-endian CPU
# make STATIC=1                    fully static binary, build-static/
# make PROFILE=small               -DVKWS_PROFILE_SMALL (vkws.h), build-small/
# make PROFILE=bench               8192 slots for bench/run's idle load
# They combine (build-armhf-small-static/). A variant builds $(O)/vkws and
# its unit tests and never touches ./vkws, which stays the host build.
# Cross binaries run under qemu-user: $(QEMU) $(O)/vkws (binfmt is not
# assumed). STACK_MAX is the largest stack frame a function may have
# (bytes): gcc fails the build past it (-Wstack-usage), and `make size`
# reports every function's frame from the -fstack-usage files.
STACK_MAX ?= 1024
# Sanitizer builds put redzones around every local: their frames are not
# the ones a device runs, so the ceiling is checked on the others.
ifeq ($(SAN),1)
STACK_MAX := 4096
endif
ifneq ($(CROSS),)
ifeq ($(CROSS),armhf)
CROSS_TRIPLE := arm-linux-gnueabihf
QEMU := qemu-arm -L /usr/arm-linux-gnueabihf
# 32-bit ARM: 64-bit off_t and ino_t (stat() and readdir() fail with
# EOVERFLOW on a file system with large inode numbers, and a log may pass
# 2 GiB) and 64-bit time_t (a router still running in 2038; JWT exp goes
# to 9999). glibc 2.34+ supports both; on 64-bit targets they are no-ops.
CPPFLAGS += -D_FILE_OFFSET_BITS=64 -D_TIME_BITS=64
else ifeq ($(CROSS),arm64)
CROSS_TRIPLE := aarch64-linux-gnu
QEMU := qemu-aarch64 -L /usr/aarch64-linux-gnu
else ifeq ($(CROSS),mipsel)
# MIPS32 little-endian routers (MT7621 and friends): 32-bit, so the same
# large-file and 64-bit time_t flags as armhf.
CROSS_TRIPLE := mipsel-linux-gnu
QEMU := qemu-mipsel -L /usr/mipsel-linux-gnu -E LD_LIBRARY_PATH=/usr/mipsel-linux-gnu/lib
CPPFLAGS += -D_FILE_OFFSET_BITS=64 -D_TIME_BITS=64
else ifeq ($(CROSS),s390x)
# A big-endian 64-bit CPU: proves the codec, the log format and JWT are
# endian-safe (the unit tests and corpus replays run on it under qemu).
CROSS_TRIPLE := s390x-linux-gnu
QEMU := qemu-s390x -L /usr/s390x-linux-gnu -E LD_LIBRARY_PATH=/usr/s390x-linux-gnu/lib
else
$(error CROSS must be armhf, arm64, mipsel or s390x)
endif
ifeq ($(origin CC),default)
CC := $(CROSS_TRIPLE)-gcc
else ifeq ($(origin CC),file)
CC := $(CROSS_TRIPLE)-gcc
endif
endif
ifeq ($(PROFILE),small)
CPPFLAGS += -DVKWS_PROFILE_SMALL
else ifeq ($(PROFILE),bench)
CPPFLAGS += -DVKWS_PROFILE_BENCH
else ifneq ($(filter-out default,$(PROFILE)),)
$(error PROFILE must be small, bench or default)
endif
ifeq ($(STATIC),1)
LDFLAGS += -static
endif
# make POLLER=epoll | POLLER=poll   the loop's wait (poller.c): epoll is
# the default on Linux (every CROSS target is Linux too), poll() the
# portable one and the default elsewhere. The one that is not the
# default builds into its own directory (build-poll/); make test runs the
# integration suite against both.
POLLER_DEFAULT := $(if $(filter Linux,$(shell uname -s)),epoll,poll)
POLLER ?= $(POLLER_DEFAULT)
ifeq ($(POLLER),epoll)
CPPFLAGS += -DVKWS_POLLER_EPOLL
else ifneq ($(POLLER),poll)
$(error POLLER must be epoll or poll)
endif
VARIANT := $(if $(CROSS),-$(CROSS))$(if $(filter small bench,$(PROFILE)),-$(PROFILE))$(if $(filter 1,$(STATIC)),-static)$(if $(filter-out $(POLLER_DEFAULT),$(POLLER)),-$(POLLER))
ifeq ($(origin O),file)
O := build$(VARIANT)
endif
ifneq ($(VARIANT),)
ifneq ($(filter vkws all,$(MAKECMDGOALS)),)
$(error a CROSS/STATIC/PROFILE build goes to $(O)/vkws: run make without a goal, or make $(O)/vkws)
endif
.DEFAULT_GOAL := variant
endif
# gcc only: clang has no -Wstack-usage (its frames are checked by
# -Wframe-larger-than above and by `make size`).
ifeq ($(shell $(CC) --version 2>/dev/null | grep -c clang),0)
CFLAGS += -Wstack-usage=$(STACK_MAX)
endif
CFLAGS += -fstack-usage
# libFuzzer instrumentation of the library objects (make fuzz sets it).
ifeq ($(FUZZ),1)
CFLAGS  += -fsanitize=fuzzer-no-link,address,undefined \
           -fno-sanitize-recover=all -fno-omit-frame-pointer
LDFLAGS += -fsanitize=address,undefined
endif
# ---- end of the embedded-builds block ----------------------------------

SRCS  := $(sort $(wildcard *.c))
HDRS  := $(wildcard *.h)
LIB   := $(filter-out main.c,$(SRCS))
LOBJS := $(LIB:%.c=$(O)/%.o)
# The chat page, compiled in from web/ (see "The built-in chat page").
LOBJS += $(O)/web_assets.o
TESTS := $(patsubst tests/%.c,$(O)/tests/%,$(wildcard tests/test_*.c))
# Fuzz replay drivers (issue 7): each libFuzzer target built with this
# compiler and a main() that runs its committed corpus; built and run with
# the unit tests.
FUZZ_TARGETS ?= $(sort $(patsubst fuzz/fuzz_%.c,%,$(wildcard fuzz/fuzz_*.c)))
FUZZ_REPLAYS := $(FUZZ_TARGETS:%=$(O)/fuzz/replay_%)
TESTS += $(FUZZ_REPLAYS)

.PHONY: all run test unit integration asan lint clean deps-build deps-test \
        check-alloc check-prefix

all: vkws

# Copy then rename, so a running ./vkws does not make the build fail.
vkws: $(O)/vkws
	cp $< $@.tmp && mv -f $@.tmp $@

$(O)/vkws: $(O)/main.o $(LOBJS)
	@echo "  CC      $@"
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(O)/%.o: %.c $(HDRS) | $(O)
	@echo "  CC      $@"
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

$(O)/tests/%: tests/%.c tests/check.h $(LOBJS) | $(O)
	@echo "  CC      $@"
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) -I. $(LDFLAGS) -o $@ $< $(LOBJS) $(LDLIBS)

$(O):
	mkdir -p $(O)/tests

# Debian packages each step needs; installed only when missing.
BUILD_DEPS = gcc make libbearssl-dev libjsmn-dev
TEST_DEPS  = $(BUILD_DEPS) clang cppcheck clang-tidy python3-websockets \
             python3-pytest python3-pytest-xdist curl openssl chromium nodejs npm strace \
             iproute2 node-typescript redis-server pyflakes3 $(PKG_DEPS)
# make deb and its test (tests/test_packaging.py): dpkg-buildflags,
# lintian, systemd-analyze.
PKG_DEPS   = dpkg-dev lintian systemd

deps-build:
	@sh tests/deps.sh $(BUILD_DEPS)

deps-test:
	@sh tests/deps.sh $(TEST_DEPS)

run: deps-build
	$(MAKE) all
	sh tests/run-demo.sh

# Unit tests, integration tests, then the same suite under sanitizers
# and against the poll() backend (build-poll: the poller's unit test and
# the integration suite but its package, browser and Node tests; see
# tests/run), static checks last. tests/run sums every runner's counts
# into one line.
test: deps-test
	$(MAKE) all $(TESTS)
	$(MAKE) O=build-asan SAN=1 build-asan/vkws \
	    $(patsubst $(O)/%,build-asan/%,$(TESTS))
	$(MAKE) O=build-poll POLLER=poll build-poll/vkws \
	    build-poll/tests/test_poller
	sh tests/run $(O) build-asan build-poll

unit: all $(TESTS)
	@for t in $(TESTS); do echo "== $$t"; $$t || exit 1; done

integration: all
	VKWS_BIN=./vkws $(PYTHON) -m pytest -q tests

asan:
	$(MAKE) O=build-asan SAN=1 build-asan/vkws \
	    $(patsubst $(O)/%,build-asan/%,$(TESTS))
	sh tests/run build-asan

lint:
	sh tests/lint.sh

clean:
	rm -rf build build-asan build-poll vkws tests/__pycache__ .pytest_cache

# ---- Embedded-grade checks (issue 7): cross, fuzz, size ----------------

# What a CROSS/STATIC/PROFILE build makes by default (see the top).
variant: $(O)/vkws $(TESTS)

# Objects follow their flags: each build directory keeps the command line
# it was compiled with in $(O)/.flags, and a change rebuilds it (say the
# armhf LFS flags, or another STACK_MAX), so no object built one way is
# linked into a binary built another.
ifeq ($(filter clean clean-embedded,$(MAKECMDGOALS)),)
FLAGS_LINE := $(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) $(LDLIBS)
$(shell mkdir -p $(O)/tests $(O)/fuzz)
ifneq ($(FLAGS_LINE),$(shell cat $(O)/.flags 2>/dev/null))
$(shell printf '%s\n' '$(FLAGS_LINE)' >$(O)/.flags)
endif
$(LOBJS) $(O)/main.o $(TESTS): $(O)/.flags
endif

# The variant and fuzz build directories; make clean removes them too.
clean-embedded:
	rm -rf build-armhf* build-arm64* build-mipsel* build-s390x* \
	    build-static build-small* build-deb \
	    build-fuzz build-size fuzz/out
clean: clean-embedded

$(O)/fuzz/replay_%: fuzz/fuzz_%.c fuzz/replay.c fuzz/fuzz.h $(LOBJS) | $(O)
	@mkdir -p $(@D)
	@echo "  CC      $@"
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) -I. -DFUZZ_NAME='"$*"' $(LDFLAGS) -o $@ \
	    fuzz/replay.c $< $(LOBJS) $(LDLIBS)

$(O)/fuzz/fuzz_%: fuzz/fuzz_%.c fuzz/fuzz.h $(LOBJS) | $(O)
	@mkdir -p $(@D)
	@echo "  CC      $@"
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) -I. -fsanitize=fuzzer $(LDFLAGS) -o $@ \
	    $< $(LOBJS) $(LDLIBS)

# make fuzz [FUZZ_TIME=60] [FUZZ_TARGETS="frame http"]: each libFuzzer
# target for FUZZ_TIME seconds on a copy of its corpus (fuzz/out/, not
# committed); a crash is copied into fuzz/corpus/TARGET/ as a regression
# input and fails the run.
FUZZ_TIME ?= 60
FUZZ_O    ?= build-fuzz
fuzz:
	$(MAKE) O=$(FUZZ_O) CC=clang FUZZ=1 \
	    $(FUZZ_TARGETS:%=$(FUZZ_O)/fuzz/fuzz_%)
	sh fuzz/run.sh $(FUZZ_O) $(FUZZ_TIME) $(FUZZ_TARGETS)

# Replay the committed corpus through the host build (also part of make
# test, in both the normal and the sanitizer builds).
fuzz-replay: $(FUZZ_REPLAYS)
	@for t in $(FUZZ_REPLAYS); do $$t || exit 1; done

# Cross toolchains, qemu-user and the BearSSL libraries of each target
# (Debian multiarch); make test runs their unit tests and a smoke test
# under qemu, so it needs them.
CROSS_DEPS = gcc-arm-linux-gnueabihf gcc-aarch64-linux-gnu \
             gcc-mipsel-linux-gnu gcc-s390x-linux-gnu qemu-user \
             libbearssl-dev:armhf libbearssl-dev:arm64 \
             libbearssl-dev:mipsel libbearssl-dev:s390x libclang-rt-14-dev
deps-cross:
	@sh tests/deps-cross.sh $(CROSS_DEPS)

test: deps-cross

# ARM builds, their unit tests under qemu and a client smoke test against
# each ARM server; the static and small-profile builds too.
cross: deps-cross
	sh tests/cross.sh

# Stripped sizes, each object's share, the static budget of each profile
# and the per-function stack high-water against STACK_MAX.
size:
	sh tests/size.sh $(STACK_MAX)

.PHONY: variant fuzz fuzz-replay deps-cross cross size clean-embedded

# ---- Packages (issue 17) -----------------------------------------------
# make deb: build-deb/vkws_VERSION_ARCH.deb (packaging/debian/), from a
# build in build-deb/ with Debian's hardening flags (dpkg-buildflags,
# plus -z now). The man page's OPTIONS come from ./vkws --help. The
# OpenWrt package is a feed directory: packaging/openwrt/vkws/.
DEB_O := build-deb
deb: vkws
	CFLAGS="$$(dpkg-buildflags --get CFLAGS)" \
	CPPFLAGS="$$(dpkg-buildflags --get CPPFLAGS)" \
	LDFLAGS="$$(dpkg-buildflags --get LDFLAGS) -Wl,-z,now" \
	    $(MAKE) O=$(DEB_O) $(DEB_O)/vkws
	sh packaging/debian/build.sh $(DEB_O)/vkws ./vkws $(DEB_O)

# The flag table of README "Command line and config file", from ./vkws.
readme-flags: vkws
	@sh packaging/flags-md.sh ./vkws

.PHONY: deb readme-flags

# ---- The built-in chat page (issue 8) ----------------------------------
# web/embed.sh turns the files of web/ into byte arrays in
# $(O)/web_assets.c (POSIX sh, od, cksum, awk); web.c serves them at
# GET /, /app.js, /style.css, /favicon.svg and /vkws.js (issue 16).
WEB_FILES := web/index.html web/app.js web/style.css web/favicon.svg \
             web/vkws.js

# The client library (issue 16): web/vkws.js is the one source;
# clients/js/vkws.js, the npm package's copy (not in git; npm pack's
# prepack script makes it too), is refreshed from it here and checked
# byte for byte by tests/client/unit.test.mjs.
clients/js/vkws.js: web/vkws.js
	cp web/vkws.js $@

# Its unit tests (Node's test runner, a fake socket); tests/run runs
# them too. The tests against a real server are tests/test_client_js.py.
.PHONY: test-js
test-js: clients/js/vkws.js
	node --test tests/client/*.test.mjs

# Every build refreshes the package's copy of the library too; only in
# order (after |): npm pack's prepack copies it again, and its newer time
# must not make the next make (make deb in the tests) relink a binary
# that other tests are running.
$(O)/web_assets.c: web/embed.sh $(WEB_FILES) | $(O) clients/js/vkws.js
	sh web/embed.sh $(WEB_FILES) >$@.tmp && mv $@.tmp $@

$(O)/web_assets.o: $(O)/web_assets.c web.h vkws.h
	@echo "  CC      $@"
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) -I. -c -o $@ $<

# ---- The mutation check (issue 18) -------------------------------------
# make mutants [MUTANTS="jwt-* api-*"]: each mutant of tests/mutants/list
# (one changed line: a parser check, a limit, a security check, a log
# recovery path) built in a scratch copy of the tree and run against the
# fast test that must fail with it in; prints killed / SURVIVED / error
# per mutant and the score, and fails unless every one is killed. The
# working tree is never touched. make test runs the mutants marked
# "sample" (tests/run), under a minute.
mutants: deps-test
	$(PYTHON) tests/mutants/run $(MUTANTS)

.PHONY: mutants
