/*
 * test_resp.c: the RESP codec. Every vector is parsed whole, then every
 * prefix of it (each must be "need more", never an error or a value), and
 * it is placed against a PROT_NONE page so that any read past the length
 * crashes at once. Errors are checked at the byte that makes them.
 */
#define _DEFAULT_SOURCE 1	/* MAP_ANONYMOUS */
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "check.h"
#include "resp.h"

static uint8_t *page;		/* one readable page, then a PROT_NONE one */
static size_t pagesz;

/* Copy s[0..n) so it ends where the readable page ends. */
static const uint8_t *
fence(const void *s, size_t n)
{
	uint8_t *p = page + pagesz - n;

	memcpy(p, s, n);
	return p;
}

static struct resp_val v[64];
static size_t nv;

/* Whole: returns the parse result; every proper prefix needs more. */
static long
parse_all(const char *s, size_t n, size_t max)
{
	size_t k;
	long r;

	for (k = 0; k < n; k++) {
		r = resp_parse(fence(s, k), k, v, max, &nv);
		if (r != 0) {
			fprintf(stderr, "prefix %zu of %zu: %ld\n", k, n, r);
			return -100;
		}
	}
	return resp_parse(fence(s, n), n, v, max, &nv);
}

#define OK(lit, nvals) do { \
	CHECK_EQ(parse_all(lit, sizeof(lit) - 1, 64), (long)sizeof(lit) - 1); \
	CHECK_EQ(nv, nvals); \
} while (0)

/* An error, found when the first len bytes are in (and with all). */
#define BAD(lit, err) do { \
	CHECK_EQ(resp_parse(fence(lit, sizeof(lit) - 1), sizeof(lit) - 1, \
	    v, 64, &nv), err); \
} while (0)

static const uint8_t *base;

static void
test_scalars(void)
{
	const char s1[] = "+OK\r\n";

	OK("+OK\r\n", 1);
	base = page + pagesz - (sizeof s1 - 1);
	CHECK_EQ(v[0].type, RESP_SIMPLE);
	CHECK(resp_eq(base, &v[0], "OK", 2));
	CHECK(!resp_eq(base, &v[0], "OK!", 3));
	OK("-ERR unknown command 'X'\r\n", 1);
	CHECK_EQ(v[0].type, RESP_ERROR);
	CHECK_EQ(v[0].len, 23);
	OK(":0\r\n", 1);
	CHECK_EQ(v[0].i, 0);
	OK(":-42\r\n", 1);
	CHECK_EQ(v[0].i, -42);
	OK(":9223372036854775807\r\n", 1);
	CHECK_EQ(v[0].i, INT64_MAX);
	OK(":-9223372036854775808\r\n", 1);
	CHECK(v[0].i == INT64_MIN);
	BAD(":9223372036854775808\r\n", RESP_ERR_NUM);
	BAD(":\r\n", RESP_ERR_NUM);
	BAD(":1a\r\n", RESP_ERR_NUM);
	OK("$5\r\nhello\r\n", 1);
	CHECK_EQ(v[0].type, RESP_BULK);
	CHECK_EQ(v[0].off, 4);
	CHECK_EQ(v[0].len, 5);
	OK("$0\r\n\r\n", 1);
	CHECK_EQ(v[0].len, 0);
	/* Binary bytes, CR and LF included, are fine inside a bulk. */
	OK("$4\r\n\r\n\0\n\r\n", 1);
	OK("$-1\r\n", 1);
	CHECK_EQ(v[0].type, RESP_NULL);
	OK("*-1\r\n", 1);
	CHECK_EQ(v[0].type, RESP_NULL);
	OK("_\r\n", 1);
	OK("#t\r\n", 1);
	CHECK_EQ(v[0].i, 1);
	OK("#f\r\n", 1);
	CHECK_EQ(v[0].i, 0);
	BAD("#x\r\n", RESP_ERR_VALUE);
	OK(",1.23\r\n", 1);
	OK(",-inf\r\n", 1);
	OK(",1e10\r\n", 1);
	BAD(",abc\r\n", RESP_ERR_VALUE);
	BAD(",\r\n", RESP_ERR_VALUE);
	OK("(3492890328409238509324850943850943825024385\r\n", 1);
	OK("(-1\r\n", 1);
	BAD("(\r\n", RESP_ERR_VALUE);
	BAD("(1x\r\n", RESP_ERR_VALUE);
	OK("!21\r\nSYNTAX invalid syntax\r\n", 1);
	CHECK_EQ(v[0].type, RESP_BLOBERR);
	OK("=15\r\ntxt:Some string\r\n", 1);
	CHECK_EQ(v[0].type, RESP_VERBATIM);
	BAD("=3\r\ntxt\r\n", RESP_ERR_VALUE);
	BAD("=4\r\ntxt-\r\n", RESP_ERR_VALUE);
	BAD("_x\r\n", RESP_ERR_VALUE);
}

static void
test_aggregates(void)
{
	OK("*0\r\n", 1);
	CHECK_EQ(v[0].len, 0);
	CHECK_EQ(v[0].end, 1);
	OK("*2\r\n$3\r\nfoo\r\n:7\r\n", 3);
	CHECK_EQ(v[0].type, RESP_ARRAY);
	CHECK_EQ(v[0].len, 2);
	CHECK_EQ(v[0].end, 3);
	CHECK_EQ(v[1].type, RESP_BULK);
	CHECK_EQ(v[2].i, 7);
	/* A pub/sub message, as RESP2 and RESP3 deliver it. */
	OK("*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n", 4);
	OK(">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n", 4);
	CHECK_EQ(v[0].type, RESP_PUSH);
	/* Nested: end skips whole subtrees. */
	OK("*3\r\n*2\r\n:1\r\n:2\r\n*0\r\n+x\r\n", 6);
	CHECK_EQ(v[0].end, 6);
	CHECK_EQ(v[1].end, 4);
	CHECK_EQ(v[4].end, 5);
	CHECK_EQ(v[5].type, RESP_SIMPLE);
	/* Nulls inside arrays (EXEC, MGET). */
	OK("*3\r\n$-1\r\n*-1\r\n_\r\n", 4);
	CHECK_EQ(v[2].type, RESP_NULL);
	OK("%2\r\n+first\r\n:1\r\n+second\r\n:2\r\n", 5);
	CHECK_EQ(v[0].type, RESP_MAP);
	CHECK_EQ(v[0].len, 4);
	OK("~2\r\n+a\r\n+b\r\n", 3);
	OK("%0\r\n", 1);
	/* Attributes are dropped: what remains is the value they annotate. */
	OK("|1\r\n+key-popularity\r\n%2\r\n$1\r\na\r\n,0.19\r\n$1\r\nb\r\n"
	    ",0.05\r\n*2\r\n:2039123\r\n:9543892\r\n", 3);
	CHECK_EQ(v[0].type, RESP_ARRAY);
	CHECK_EQ(v[0].end, 3);
	CHECK_EQ(v[1].i, 2039123);
	OK("*2\r\n:1\r\n|1\r\n+ttl\r\n:3600\r\n:2\r\n", 3);
	CHECK_EQ(v[0].end, 3);
	CHECK_EQ(v[2].i, 2);
	OK("|0\r\n:5\r\n", 1);
	CHECK_EQ(v[0].i, 5);
}

static void
test_errors(void)
{
	uint8_t deep[64];
	size_t k;

	BAD("@x\r\n", RESP_ERR_TYPE);
	BAD("+a\rb\r\n", RESP_ERR_LINE);
	BAD("+a\nb\r\n", RESP_ERR_LINE);
	BAD("$3\r\nabcd\r\n", RESP_ERR_LINE);
	BAD("$-2\r\n", RESP_ERR_LEN);
	BAD("$x\r\n", RESP_ERR_NUM);
	BAD("$\r\n", RESP_ERR_NUM);
	BAD("$536870913\r\n", RESP_ERR_LEN);
	BAD("$99999999999\r\n", RESP_ERR_NUM);
	BAD("%-1\r\n", RESP_ERR_LEN);
	BAD("$?\r\n", RESP_ERR_STREAM);
	BAD("*?\r\n", RESP_ERR_STREAM);
	/* A count past the caller's array is refused before its elements. */
	BAD("*64\r\n", RESP_ERR_MANY);
	BAD("%32\r\n", RESP_ERR_MANY);
	CHECK_EQ(resp_parse(fence("*2\r\n:1\r\n:2\r\n", 12), 12, v, 2, &nv),
	    RESP_ERR_MANY);
	CHECK_EQ(resp_parse(fence("*2\r\n:1\r\n:2\r\n", 12), 12, v, 3, &nv),
	    12);
	/* Nesting stops at RESP_MAX_DEPTH open aggregates. */
	for (k = 0; k <= RESP_MAX_DEPTH; k++)
		memcpy(deep + 4 * k, "*1\r\n", 4);
	memcpy(deep + 4 * k, ":1\r\n", 4);
	CHECK_EQ(resp_parse(fence(deep, 4 * k + 4), 4 * k + 4, v, 64, &nv),
	    RESP_ERR_DEPTH);
	CHECK_EQ(resp_parse(fence(deep + 4, 4 * k), 4 * k, v, 64, &nv),
	    (long)(4 * k));
	/* Two replies in a row: one at a time. */
	CHECK_EQ(resp_parse(fence("+A\r\n:1\r\n", 8), 8, v, 64, &nv), 4);
}

static void
test_encode(void)
{
	uint8_t buf[64];
	struct resp_enc e;
	long n;

	resp_enc_begin(&e, buf, sizeof buf, 3);
	resp_enc_str(&e, "SET");
	resp_enc_arg(&e, "k", 1);
	resp_enc_i64(&e, -12);
	n = resp_enc_end(&e);
	CHECK_EQ(n, 29);
	CHECK_MEM(buf, "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$3\r\n-12\r\n", 29);
	/* The encoding parses back. */
	CHECK_EQ(resp_parse(fence(buf, (size_t)n), (size_t)n, v, 64, &nv), n);
	CHECK_EQ(nv, 4);
	resp_enc_begin(&e, buf, sizeof buf, 2);
	resp_enc_u64(&e, 18446744073709551615u);
	resp_enc_arg2(&e, "ab", 2, "cd", 2);
	n = resp_enc_end(&e);
	CHECK_MEM(buf, "*2\r\n$20\r\n18446744073709551615\r\n$4\r\nabcd\r\n",
	    (size_t)n);
	resp_enc_begin(&e, buf, sizeof buf, 1);
	resp_enc_u64(&e, 0);
	CHECK_EQ(resp_enc_end(&e), 11);
	/* Too few arguments, too many, and no room: -1. */
	resp_enc_begin(&e, buf, sizeof buf, 2);
	resp_enc_str(&e, "GET");
	CHECK_EQ(resp_enc_end(&e), -1);
	resp_enc_arg(&e, "a", 1);
	CHECK_EQ(resp_enc_end(&e), 20);
	resp_enc_arg(&e, "b", 1);
	CHECK_EQ(resp_enc_end(&e), -1);
	resp_enc_begin(&e, buf, 12, 1);
	resp_enc_str(&e, "PING");
	CHECK_EQ(resp_enc_end(&e), -1);
	resp_enc_begin(&e, buf, 14, 1);
	resp_enc_str(&e, "PING");
	CHECK_EQ(resp_enc_end(&e), 14);
}

int
main(void)
{
	pagesz = (size_t)sysconf(_SC_PAGESIZE);
	page = mmap(NULL, 2 * pagesz, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (page == MAP_FAILED || mprotect(page + pagesz, pagesz, PROT_NONE))
		return 2;
	test_scalars();
	test_aggregates();
	test_errors();
	test_encode();
	CHECK_MAIN();
}
