/*
 * resp.h: the Redis serialization protocol (RESP2 and RESP3) as pure
 * functions over caller memory: no system calls, no globals, no logging,
 * no allocation. resp_parse() takes (pointer, length) and returns the
 * bytes of one whole reply, 0 for "need more", or a negative RESP_ERR_*;
 * the reply is described by a caller array of values that point into the
 * input (like jsmn's tokens). resp_enc_*() write a request (an array of
 * bulk strings) into a caller buffer.
 */
#ifndef RESP_H
#define RESP_H

#include <stddef.h>
#include <stdint.h>

/* Value types: the RESP type byte, so a value prints as it came. */
enum {
	RESP_SIMPLE = '+',	/* simple string: off, len */
	RESP_ERROR = '-',	/* simple error: off, len */
	RESP_INT = ':',		/* integer: i */
	RESP_BULK = '$',	/* bulk string: off, len */
	RESP_ARRAY = '*',	/* array: len elements follow */
	RESP_NULL = '_',	/* RESP3 null, and RESP2 $-1 and *-1 */
	RESP_BOOL = '#',	/* boolean: i is 0 or 1 */
	RESP_DOUBLE = ',',	/* double: its text at off, len */
	RESP_BIGNUM = '(',	/* big number: its digits at off, len */
	RESP_BLOBERR = '!',	/* bulk error: off, len */
	RESP_VERBATIM = '=',	/* verbatim string: off, len ("txt:...") */
	RESP_MAP = '%',		/* map: len values (2 per pair) follow */
	RESP_SET = '~',		/* set: len elements follow */
	RESP_PUSH = '>'		/* out-of-band push: len elements follow */
};

/* Errors: the connection's input is not RESP and must be dropped. */
enum {
	RESP_ERR_TYPE = -1,	/* unknown type byte */
	RESP_ERR_LINE = -2,	/* CR or LF inside a line, or no LF after CR */
	RESP_ERR_NUM = -3,	/* a length or integer that is no number */
	RESP_ERR_LEN = -4,	/* a length out of range */
	RESP_ERR_DEPTH = -5,	/* aggregates nested past RESP_MAX_DEPTH */
	RESP_ERR_MANY = -6,	/* more values than the caller's array */
	RESP_ERR_VALUE = -7,	/* a bad boolean, double, big number or verbatim */
	RESP_ERR_STREAM = -8	/* RESP3 streamed string or aggregate (?) */
};

/* Aggregates nested deeper than this are refused: Redis replies the
 * cluster reads nest 3 deep at most (a push of an array of strings). */
#define RESP_MAX_DEPTH 8
/* Largest string or aggregate length accepted: Redis's own
 * proto-max-bulk-len default (512 MiB). */
#define RESP_MAX_LEN ((uint64_t)512 * 1024 * 1024)

/*
 * One value. Aggregates are followed by their elements, depth first;
 * end is the index one past the value's last element, so a consumer
 * skips a whole subtree with i = v[i].end.
 */
struct resp_val {
	uint8_t type;		/* RESP_* */
	uint32_t len;		/* string bytes, or aggregate elements */
	uint32_t end;		/* index past this value and its elements */
	size_t off;		/* string bytes start at p + off */
	int64_t i;		/* RESP_INT, RESP_BOOL */
};

/*
 * Parse one reply from p[0..n). On success returns its length in bytes
 * and fills v[0..*nv) (at most max values); 0 if p holds only part of
 * one; a negative RESP_ERR_* if it is not RESP. RESP3 attributes (|) are
 * checked and dropped: the value they annotate is what v describes.
 */
long resp_parse(const uint8_t *p, size_t n, struct resp_val *v, size_t max,
    size_t *nv);

/* Whether v (a string type) equals the len bytes at s. */
int resp_eq(const uint8_t *p, const struct resp_val *v, const char *s,
    size_t len);

/*
 * A request encoder: an array of argc bulk strings in buf[0..cap).
 * Overflow is sticky: resp_enc_end() then returns -1 and nothing of the
 * request counts.
 */
struct resp_enc {
	uint8_t *buf;
	size_t cap;
	size_t len;
	unsigned left;		/* arguments still to come */
	int err;		/* out of room, or argc broken */
};

void resp_enc_begin(struct resp_enc *e, uint8_t *buf, size_t cap,
    unsigned argc);
void resp_enc_arg(struct resp_enc *e, const void *p, size_t n);
/* An argument made of two pieces: a then b. */
void resp_enc_arg2(struct resp_enc *e, const void *a, size_t an,
    const void *b, size_t bn);
void resp_enc_str(struct resp_enc *e, const char *s);	/* NUL-ended */
void resp_enc_u64(struct resp_enc *e, uint64_t x);
void resp_enc_i64(struct resp_enc *e, int64_t x);
/* The request's length, or -1 if it did not fit or argc was not met. */
long resp_enc_end(const struct resp_enc *e);

#endif
