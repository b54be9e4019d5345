# vkws: build, run and test. See README.md.
#
#   make            build ./vkws
#   make run        install build deps if missing, build, start on 127.0.0.1:8080
#   make test       install test deps if missing, build, run every test (asan too)
#   make asan       the test suite against an ASan+UBSan build
#   make lint       cppcheck and clang-tidy
#   make clean

CC      ?= cc
O       ?= build
PYTHON  ?= /usr/bin/python3

WARN = -Wall -Wextra -Wpedantic -Wconversion -Wsign-conversion -Wshadow \
       -Wstrict-prototypes -Wmissing-prototypes -Wcast-qual -Wformat=2 \
       -Wundef -Wvla -Wimplicit-fallthrough -fno-common \
       -Wframe-larger-than=1024 -Werror
CPPFLAGS += -D_POSIX_C_SOURCE=200809L -DJSMN_STRICT -DJSMN_PARENT_LINKS
CFLAGS  ?= -O2 -g
CFLAGS  += -std=c11 $(WARN)
LDLIBS  += -lbearssl

ifeq ($(SAN),1)
CFLAGS  += -fsanitize=address,undefined -fno-sanitize-recover=all \
           -fno-omit-frame-pointer
LDFLAGS += -fsanitize=address,undefined
endif

SRCS  := $(sort $(wildcard *.c))
HDRS  := $(wildcard *.h)
LIB   := $(filter-out main.c,$(SRCS))
LOBJS := $(LIB:%.c=$(O)/%.o)
TESTS := $(patsubst tests/%.c,$(O)/tests/%,$(wildcard tests/test_*.c))

.PHONY: all run test unit integration asan lint clean deps-build deps-test \
        check-alloc check-prefix

all: vkws

vkws: $(O)/vkws
	cp $< $@

$(O)/vkws: $(O)/main.o $(LOBJS)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(O)/%.o: %.c $(HDRS) | $(O)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

$(O)/tests/%: tests/%.c tests/check.h $(LOBJS) | $(O)
	$(CC) $(CPPFLAGS) $(CFLAGS) -I. $(LDFLAGS) -o $@ $< $(LOBJS) $(LDLIBS)

$(O):
	mkdir -p $(O)/tests

# Debian packages each step needs; installed only when missing.
BUILD_DEPS = gcc make libbearssl-dev libjsmn-dev
TEST_DEPS  = $(BUILD_DEPS) clang cppcheck clang-tidy python3-websockets \
             python3-pytest

deps-build:
	@sh tests/deps.sh $(BUILD_DEPS)

deps-test:
	@sh tests/deps.sh $(TEST_DEPS)

run: deps-build
	$(MAKE) all
	sh tests/run-demo.sh

# Unit tests, integration tests, then the same suite under sanitizers,
# static checks last. tests/run sums every runner's counts into one line.
test: deps-test
	$(MAKE) all $(TESTS)
	$(MAKE) O=build-asan SAN=1 build-asan/vkws \
	    $(patsubst $(O)/%,build-asan/%,$(TESTS))
	sh tests/run $(O) build-asan

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
	rm -rf build build-asan vkws tests/__pycache__ .pytest_cache
