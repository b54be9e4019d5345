/*
 * resp.c: the Redis serialization protocol, RESP2 and RESP3. It parses
 * one reply at a time into a caller array of values that point into the
 * input, and encodes requests (arrays of bulk strings) into a caller
 * buffer. It never makes a system call, keeps no global state, logs
 * nothing and allocates nothing: every byte it reads or writes is in
 * memory the caller handed in with its length. A reply that has not
 * fully arrived is "need more" (0) and is parsed again from its start
 * once more bytes are in; the caller's buffer bounds how large a reply
 * may be.
 */

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "resp.h"

/* An open aggregate while its elements are parsed. */
struct frame {
	size_t tok;		/* its value in v (unused for attributes) */
	uint64_t left;		/* elements still to come */
	size_t base;		/* attributes: values to keep once it ends */
	int attr;		/* an attribute: dropped when complete */
};

/* Decimal digits of p[0..n) as an unsigned number; -1 if n is 0, a byte
 * is no digit or the value passes lim. */
static int
digits(const uint8_t *p, size_t n, uint64_t lim, uint64_t *out)
{
	uint64_t x = 0;
	size_t k;

	if (n == 0)
		return -1;
	for (k = 0; k < n; k++) {
		unsigned d = (unsigned)p[k] - '0';

		if (d > 9 || x > (lim - d) / 10)
			return -1;
		x = x * 10 + d;
	}
	*out = x;
	return 0;
}

/* A RESP integer: an optional sign, then digits, within int64_t. */
static int
parse_int(const uint8_t *p, size_t n, int64_t *out)
{
	uint64_t x;
	int neg = 0;

	if (n > 0 && (p[0] == '-' || p[0] == '+')) {
		neg = p[0] == '-';
		p++;
		n--;
	}
	if (digits(p, n, neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX,
	    &x) < 0)
		return RESP_ERR_NUM;
	if (neg)
		*out = x == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)x;
	else
		*out = (int64_t)x;
	return 0;
}

/* A length: digits up to RESP_MAX_LEN; "-1" gives -1 (RESP2 null) when
 * null_ok; "?" is a RESP3 stream, which the cluster never asks for. */
static int
parse_len(const uint8_t *p, size_t n, int null_ok, int64_t *out)
{
	uint64_t x;

	if (n == 1 && p[0] == '?')
		return RESP_ERR_STREAM;
	if (n == 2 && p[0] == '-' && p[1] == '1' && null_ok) {
		*out = -1;
		return 0;
	}
	if (n > 0 && p[0] == '-')
		return RESP_ERR_LEN;
	if (n > 10 || digits(p, n, UINT64_MAX, &x) < 0)
		return RESP_ERR_NUM;
	if (x > RESP_MAX_LEN)
		return RESP_ERR_LEN;
	*out = (int64_t)x;
	return 0;
}

/* RESP3 double: digits, sign, point, exponent, or inf / -inf / nan. */
static int
double_ok(const uint8_t *p, size_t n)
{
	size_t k;
	int digit = 0;

	if ((n == 3 && memcmp(p, "inf", 3) == 0) ||
	    (n == 4 && memcmp(p, "-inf", 4) == 0) ||
	    (n == 3 && memcmp(p, "nan", 3) == 0))
		return 1;
	for (k = 0; k < n; k++) {
		uint8_t c = p[k];

		if (c >= '0' && c <= '9')
			digit = 1;
		else if (c != '-' && c != '+' && c != '.' && c != 'e' &&
		    c != 'E')
			return 0;
	}
	return digit;
}

/* RESP3 big number: an optional minus, then at least one digit. */
static int
bignum_ok(const uint8_t *p, size_t n)
{
	size_t k = n > 0 && p[0] == '-' ? 1 : 0;

	if (k == n)
		return 0;
	for (; k < n; k++)
		if (p[k] < '0' || p[k] > '9')
			return 0;
	return 1;
}

/*
 * The line after the type byte at p[pos]: sets *le to the CR and returns
 * 1, 0 if its CRLF has not arrived, or RESP_ERR_LINE for a bare LF or a
 * CR not followed by LF (RESP lines end in CRLF and hold neither).
 */
static int
line_end(const uint8_t *p, size_t n, size_t pos, size_t *le)
{
	size_t k;

	for (k = pos + 1; k < n; k++) {
		if (p[k] == '\n')
			return RESP_ERR_LINE;
		if (p[k] == '\r') {
			if (k + 1 >= n)
				return 0;
			if (p[k + 1] != '\n')
				return RESP_ERR_LINE;
			*le = k;
			return 1;
		}
	}
	return 0;
}

/* Take value slot *nt of v; RESP_ERR_MANY if the array is full. */
static int
take(struct resp_val *v, size_t max, size_t *nt, uint8_t type)
{
	if (*nt >= max)
		return RESP_ERR_MANY;
	memset(&v[*nt], 0, sizeof v[*nt]);
	v[*nt].type = type;
	v[*nt].end = (uint32_t)(*nt + 1);
	(*nt)++;
	return 0;
}

/* A string value whose bytes follow a length line: $, ! and =. */
static int
bulk(const uint8_t *p, size_t n, size_t *pos, size_t le,
    struct resp_val *v, size_t max, size_t *nt)
{
	uint8_t t = p[*pos];
	int64_t len;
	size_t start = le + 2;
	int r = parse_len(p + *pos + 1, le - *pos - 1, t == RESP_BULK, &len);

	if (r < 0)
		return r;
	if (len < 0) {
		*pos = start;
		return take(v, max, nt, RESP_NULL) < 0 ? RESP_ERR_MANY : 1;
	}
	if (n - start < (size_t)len + 2)
		return 0;
	if (p[start + (size_t)len] != '\r' || p[start + (size_t)len + 1] != '\n')
		return RESP_ERR_LINE;
	/* RESP3 4.1: a verbatim string starts with a 3-byte format and ':'. */
	if (t == RESP_VERBATIM && (len < 4 || p[start + 3] != ':'))
		return RESP_ERR_VALUE;
	if ((r = take(v, max, nt, t)) < 0)
		return r;
	v[*nt - 1].off = start;
	v[*nt - 1].len = (uint32_t)len;
	*pos = start + (size_t)len + 2;
	return 1;
}

/* A value held on its line: +, -, :, _, #, , and (. */
static int
simple(const uint8_t *p, size_t pos, size_t le, struct resp_val *v,
    size_t max, size_t *nt)
{
	uint8_t t = p[pos];
	const uint8_t *s = p + pos + 1;
	size_t sn = le - pos - 1;
	int64_t x = 0;
	int r;

	switch (t) {
	case RESP_INT:
		if ((r = parse_int(s, sn, &x)) < 0)
			return r;
		break;
	case RESP_NULL:
		if (sn != 0)
			return RESP_ERR_VALUE;
		break;
	case RESP_BOOL:
		if (sn != 1 || (s[0] != 't' && s[0] != 'f'))
			return RESP_ERR_VALUE;
		x = s[0] == 't';
		break;
	case RESP_DOUBLE:
		if (!double_ok(s, sn))
			return RESP_ERR_VALUE;
		break;
	case RESP_BIGNUM:
		if (!bignum_ok(s, sn))
			return RESP_ERR_VALUE;
		break;
	default:
		break;
	}
	if ((r = take(v, max, nt, t)) < 0)
		return r;
	v[*nt - 1].off = pos + 1;
	v[*nt - 1].len = (uint32_t)sn;
	v[*nt - 1].i = x;
	return 1;
}

/*
 * An aggregate's header. Returns 1 if it is complete already (no
 * elements), 2 if it was pushed on st, else an error. Each element needs
 * a value slot, so a count past the caller's array is refused at once.
 */
static int
aggregate(const uint8_t *p, size_t pos, size_t le, struct resp_val *v,
    size_t max, size_t *nt, struct frame *st, size_t *depth)
{
	uint8_t t = p[pos];
	int attr = t == '|';
	int64_t cnt;
	uint64_t elems;
	int r = parse_len(p + pos + 1, le - pos - 1, t == RESP_ARRAY, &cnt);

	if (r < 0)
		return r;
	if (cnt < 0)
		return take(v, max, nt, RESP_NULL) < 0 ? RESP_ERR_MANY : 1;
	elems = (uint64_t)cnt * (t == RESP_MAP || attr ? 2u : 1u);
	if (elems + (attr ? 0u : 1u) > max - *nt)
		return RESP_ERR_MANY;
	if (!attr) {
		if ((r = take(v, max, nt, t)) < 0)
			return r;
		v[*nt - 1].len = (uint32_t)elems;
	}
	if (elems == 0)
		return attr ? 3 : 1;
	if (*depth >= RESP_MAX_DEPTH)
		return RESP_ERR_DEPTH;
	st[*depth].tok = *nt - 1;
	st[*depth].left = elems;
	st[*depth].base = *nt;
	st[*depth].attr = attr;
	(*depth)++;
	return 2;
}

long
resp_parse(const uint8_t *p, size_t n, struct resp_val *v, size_t max,
    size_t *nv)
{
	struct frame st[RESP_MAX_DEPTH];
	size_t pos = 0, nt = 0, depth = 0, le = 0;
	int r;

	for (;;) {
		uint8_t t;

		if (pos >= n)
			return 0;
		t = p[pos];
		if ((r = line_end(p, n, pos, &le)) <= 0)
			return r;
		switch (t) {
		case RESP_SIMPLE: case RESP_ERROR: case RESP_INT:
		case RESP_NULL: case RESP_BOOL: case RESP_DOUBLE:
		case RESP_BIGNUM:
			r = simple(p, pos, le, v, max, &nt);
			pos = le + 2;
			break;
		case RESP_BULK: case RESP_BLOBERR: case RESP_VERBATIM:
			r = bulk(p, n, &pos, le, v, max, &nt);
			break;
		case RESP_ARRAY: case RESP_MAP: case RESP_SET:
		case RESP_PUSH: case '|':
			r = aggregate(p, pos, le, v, max, &nt, st, &depth);
			pos = le + 2;
			break;
		default:
			return RESP_ERR_TYPE;
		}
		if (r <= 0)
			return r;
		if (r == 2 || r == 3)
			continue;	/* an aggregate opened, or an empty
					 * attribute: the value comes next */
		/* A value is complete: close every aggregate it completes.
		 * An attribute that ends annotates the value after it, so
		 * its values are dropped and that value is awaited. */
		for (;;) {
			struct frame *f;

			if (depth == 0) {
				*nv = nt;
				return (long)pos;
			}
			f = &st[depth - 1];
			if (--f->left > 0)
				break;
			depth--;
			if (f->attr) {
				nt = f->base;
				break;
			}
			v[f->tok].end = (uint32_t)nt;
		}
	}
}

int
resp_eq(const uint8_t *p, const struct resp_val *v, const char *s,
    size_t len)
{
	switch (v->type) {
	case RESP_SIMPLE: case RESP_ERROR: case RESP_BULK:
	case RESP_BLOBERR: case RESP_VERBATIM:
		return v->len == len && memcmp(p + v->off, s, len) == 0;
	default:
		return 0;
	}
}

/* ---- Requests ------------------------------------------------------- */

static void
put(struct resp_enc *e, const void *p, size_t n)
{
	if (e->err || e->cap - e->len < n) {
		e->err = 1;
		return;
	}
	if (n > 0)
		memcpy(e->buf + e->len, p, n);
	e->len += n;
}

/* "<c><decimal x>\r\n" */
static void
put_line(struct resp_enc *e, char c, uint64_t x)
{
	char tmp[24];
	size_t k = sizeof tmp;

	tmp[--k] = '\n';
	tmp[--k] = '\r';
	do {
		tmp[--k] = (char)('0' + x % 10);
		x /= 10;
	} while (x > 0);
	tmp[--k] = c;
	put(e, tmp + k, sizeof tmp - k);
}

void
resp_enc_begin(struct resp_enc *e, uint8_t *buf, size_t cap, unsigned argc)
{
	e->buf = buf;
	e->cap = cap;
	e->len = 0;
	e->left = argc;
	e->err = 0;
	put_line(e, '*', argc);
}

void
resp_enc_arg2(struct resp_enc *e, const void *a, size_t an, const void *b,
    size_t bn)
{
	if (e->left == 0) {
		e->err = 1;
		return;
	}
	e->left--;
	put_line(e, '$', (uint64_t)an + bn);
	put(e, a, an);
	put(e, b, bn);
	put(e, "\r\n", 2);
}

void
resp_enc_arg(struct resp_enc *e, const void *p, size_t n)
{
	resp_enc_arg2(e, p, n, "", 0);
}

void
resp_enc_str(struct resp_enc *e, const char *s)
{
	resp_enc_arg(e, s, strlen(s));
}

void
resp_enc_u64(struct resp_enc *e, uint64_t x)
{
	char tmp[24];
	size_t k = sizeof tmp;

	do {
		tmp[--k] = (char)('0' + x % 10);
		x /= 10;
	} while (x > 0);
	resp_enc_arg(e, tmp + k, sizeof tmp - k);
}

void
resp_enc_i64(struct resp_enc *e, int64_t x)
{
	char tmp[24];
	size_t k = sizeof tmp;
	uint64_t u = x < 0 ? (uint64_t)0 - (uint64_t)x : (uint64_t)x;

	do {
		tmp[--k] = (char)('0' + u % 10);
		u /= 10;
	} while (u > 0);
	if (x < 0)
		tmp[--k] = '-';
	resp_enc_arg(e, tmp + k, sizeof tmp - k);
}

long
resp_enc_end(const struct resp_enc *e)
{
	if (e->err || e->left != 0)
		return -1;
	return (long)e->len;
}
