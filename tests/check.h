/*
 * check.h: the unit-test harness. CHECK(cond) and CHECK_EQ(a, b) record a
 * pass or a failure (printing both values); CHECK_MAIN() ends a test
 * program with the line "N passed, N failed" and a matching exit code.
 */
#ifndef VKWS_CHECK_H
#define VKWS_CHECK_H

#include <stdio.h>
#include <string.h>

static int check_pass, check_fail;

#define CHECK(cond) do { \
	if (cond) { check_pass++; } else { check_fail++; \
		fprintf(stderr, "%s:%d: CHECK(%s) failed\n", \
		    __FILE__, __LINE__, #cond); } \
} while (0)

#define CHECK_EQ(a, b) do { \
	long long check_a_ = (long long)(a), check_b_ = (long long)(b); \
	if (check_a_ == check_b_) { check_pass++; } else { check_fail++; \
		fprintf(stderr, "%s:%d: %s == %s failed: %lld != %lld\n", \
		    __FILE__, __LINE__, #a, #b, check_a_, check_b_); } \
} while (0)

#define CHECK_MEM(a, b, n) do { \
	if (memcmp((a), (b), (n)) == 0) { check_pass++; } else { \
		check_fail++; fprintf(stderr, "%s:%d: memory %s != %s " \
		    "(%zu bytes)\n", __FILE__, __LINE__, #a, #b, \
		    (size_t)(n)); } \
} while (0)

#define CHECK_MAIN() do { \
	printf("%d passed, %d failed\n", check_pass, check_fail); \
	return check_fail ? 1 : 0; \
} while (0)

#endif
