/*
 * test_resp_cap.c: resp_parse() never writes past the caller's array
 * (issue 18: the mutant "resp-token-cap" survived tests/test_resp.c).
 * The array handed over has a canary element past max; every reply that
 * needs more than max values must be RESP_ERR_MANY with the canary
 * untouched, and one that fits exactly must parse.
 */
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "resp.h"

#define S(lit) (const uint8_t *)(lit), (sizeof(lit) - 1)

static struct resp_val v[8];

/* resp_parse() of s with room for max values; checks the canary v[max]. */
static long
parse(const uint8_t *s, size_t n, size_t max, size_t *nv)
{
	long r;

	memset(v, 0xA5, sizeof(v));
	*nv = 0;
	r = resp_parse(s, n, v, max, nv);
	CHECK_EQ(v[max].type, 0xA5);
	CHECK_EQ(v[max].len, 0xA5A5A5A5u);
	return r;
}

int
main(void)
{
	size_t nv;

	/* Scalars: one value each. */
	CHECK_EQ(parse(S(":1\r\n"), 0, &nv), RESP_ERR_MANY);
	CHECK_EQ(parse(S(":1\r\n"), 1, &nv), 4);
	CHECK_EQ(nv, 1);
	CHECK_EQ(parse(S("+OK\r\n"), 0, &nv), RESP_ERR_MANY);
	CHECK_EQ(parse(S("$2\r\nab\r\n"), 0, &nv), RESP_ERR_MANY);
	CHECK_EQ(parse(S("$-1\r\n"), 0, &nv), RESP_ERR_MANY);
	CHECK_EQ(parse(S("_\r\n"), 0, &nv), RESP_ERR_MANY);
	/* Aggregates: the header and each element. */
	CHECK_EQ(parse(S("*0\r\n"), 0, &nv), RESP_ERR_MANY);
	CHECK_EQ(parse(S("*-1\r\n"), 0, &nv), RESP_ERR_MANY);
	CHECK_EQ(parse(S("*2\r\n:1\r\n:2\r\n"), 2, &nv), RESP_ERR_MANY);
	CHECK_EQ(parse(S("*2\r\n:1\r\n:2\r\n"), 3, &nv), 12);
	CHECK_EQ(nv, 3);
	CHECK_EQ(parse(S("*1\r\n*1\r\n:1\r\n"), 2, &nv), RESP_ERR_MANY);
	CHECK_EQ(parse(S("*1\r\n*1\r\n:1\r\n"), 3, &nv), 12);
	CHECK_MAIN();
}
