/*
 * fuzz.h: what every fuzz target shares. A target is one function,
 * LLVMFuzzerTestOneInput(), built two ways: with clang's libFuzzer
 * (make fuzz), and with replay.c's main() under any compiler, which feeds
 * it each file of the committed corpus (make test, here and under qemu).
 * A target checks properties with FUZZ_CHECK, which aborts, so both
 * libFuzzer and the replay driver see a failed property as a crash.
 */
#ifndef VKWS_FUZZ_H
#define VKWS_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A property that must hold for every input; abort() so the fuzzer keeps
 * the input as a crash. */
#define FUZZ_CHECK(cond) do { \
	if (!(cond)) { \
		fprintf(stderr, "%s:%d: FUZZ_CHECK(%s) failed\n", \
		    __FILE__, __LINE__, #cond); \
		abort(); \
	} \
} while (0)

/* Largest input a target looks at; libFuzzer is told the same with
 * -max_len (fuzz/run.sh), and replay.c reads no more. */
#define FUZZ_MAX_INPUT 65536

#endif
