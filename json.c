/*
 * json.c: strict JSON reading and bounded JSON writing. jsmn, even built
 * JSMN_STRICT, accepts {"a"}, [1 2], trailing commas, 01 and bad UTF-8,
 * so a byte-level checker (check_doc) decides validity first and jsmn
 * only indexes a document already known to be RFC 8259 JSON. No
 * allocation, no I/O, no globals, no recursion; jsmn is compiled here
 * as static functions so no unprefixed symbol leaves this file.
 */
#define JSMN_STATIC
#include <jsmn.h>

#include <limits.h>
#include <stdint.h>
#include <string.h>

#include "json.h"

_Static_assert(JSON_MAX_DEPTH >= 1 && JSON_MAX_DEPTH <= 32,
    "the checker keeps one bit per level in a uint32_t");

/* What the checker expects next. */
enum {
	ST_VALUE,	/* a value: the root, after ':', after ',' in [] */
	ST_VALUE_OR_END,	/* just after '[': a value or ']' */
	ST_KEY,		/* after ',' in {}: a string */
	ST_KEY_OR_END,	/* just after '{': a string or '}' */
	ST_COLON,	/* after a key */
	ST_NEXT,	/* after a member or element: ',' or the closer */
	ST_DONE		/* the root value is complete: only whitespace */
};

/* RFC 8259 2: the four insignificant whitespace bytes. */
static int
is_ws(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static int
is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static int
hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Four hex digits at p (the caller checked they exist) into *u. */
static int
hex4(const unsigned char *p, uint32_t *u)
{
	int i, v;

	*u = 0;
	for (i = 0; i < 4; i++) {
		if ((v = hexval(p[i])) < 0)
			return -1;
		*u = *u << 4 | (uint32_t)v;
	}
	return 0;
}

/*
 * Length of the UTF-8 sequence at p[0..n), or 0 if it is not one that
 * RFC 3629 4 allows: no overlong forms (C0, C1, E0 80-9F, F0 80-8F), no
 * surrogates (ED A0-BF), nothing past U+10FFFF (F4 90-, F5-FF).
 */
static size_t
utf8_len(const unsigned char *p, size_t n)
{
	unsigned char c = p[0], lo = 0x80, hi = 0xbf;
	size_t len, i;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		len = 2;
	else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		if (c == 0xe0)
			lo = 0xa0;
		else if (c == 0xed)
			hi = 0x9f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		if (c == 0xf0)
			lo = 0x90;
		else if (c == 0xf4)
			hi = 0x8f;
	} else
		return 0;
	if (n < len || p[1] < lo || p[1] > hi)
		return 0;
	for (i = 2; i < len; i++)
		if (p[i] < 0x80 || p[i] > 0xbf)
			return 0;
	return len;
}

/*
 * Check the string whose opening quote is at s[*pos]; on success *pos is
 * just past the closing quote.
 */
static int
scan_string(const unsigned char *s, size_t n, size_t *pos)
{
	size_t i = *pos + 1, k;
	uint32_t u, lo;

	while (i < n) {
		if (s[i] == '"') {
			*pos = i + 1;
			return 0;
		}
		/* RFC 8259 7: control characters MUST be escaped. */
		if (s[i] < 0x20)
			return JSON_ERR_SYNTAX;
		if (s[i] >= 0x80) {
			if ((k = utf8_len(s + i, n - i)) == 0)
				return JSON_ERR_UTF8;
			i += k;
			continue;
		}
		if (s[i] != '\\') {
			i++;
			continue;
		}
		if (n - i < 2)
			return JSON_ERR_SYNTAX;
		switch (s[i + 1]) {
		case '"': case '\\': case '/': case 'b':
		case 'f': case 'n': case 'r': case 't':
			i += 2;
			continue;
		case 'u':
			break;
		default:
			return JSON_ERR_SYNTAX;
		}
		if (n - i < 6 || hex4(s + i + 2, &u) < 0)
			return JSON_ERR_SYNTAX;
		i += 6;
		/*
		 * RFC 8259 8.2: an unpaired surrogate decodes to no
		 * character; vkws only forwards valid UTF-8, so a low one
		 * alone, or a high one not followed by a low one, is refused.
		 */
		if (u >= 0xdc00 && u <= 0xdfff)
			return JSON_ERR_UTF8;
		if (u >= 0xd800 && u <= 0xdbff) {
			if (n - i < 6 || s[i] != '\\' || s[i + 1] != 'u' ||
			    hex4(s + i + 2, &lo) < 0 ||
			    lo < 0xdc00 || lo > 0xdfff)
				return JSON_ERR_UTF8;
			i += 6;
		}
	}
	return JSON_ERR_SYNTAX;
}

/*
 * RFC 8259 6: -? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?.
 * What may follow (a delimiter, not "01" or "1x") is the caller's check.
 */
static int
scan_number(const unsigned char *s, size_t n, size_t *pos)
{
	size_t i = *pos;

	if (i < n && s[i] == '-')
		i++;
	if (i >= n || !is_digit(s[i]))
		return JSON_ERR_SYNTAX;
	if (s[i] == '0')
		i++;
	else
		while (i < n && is_digit(s[i]))
			i++;
	if (i < n && s[i] == '.') {
		if (++i >= n || !is_digit(s[i]))
			return JSON_ERR_SYNTAX;
		while (i < n && is_digit(s[i]))
			i++;
	}
	if (i < n && (s[i] == 'e' || s[i] == 'E')) {
		if (++i < n && (s[i] == '+' || s[i] == '-'))
			i++;
		if (i >= n || !is_digit(s[i]))
			return JSON_ERR_SYNTAX;
		while (i < n && is_digit(s[i]))
			i++;
	}
	*pos = i;
	return 0;
}

static int
scan_literal(const unsigned char *s, size_t n, size_t *pos)
{
	static const char *const lits[] = { "true", "false", "null" };
	size_t i, k;

	for (i = 0; i < sizeof(lits) / sizeof(lits[0]); i++) {
		k = strlen(lits[i]);
		if (n - *pos >= k && memcmp(s + *pos, lits[i], k) == 0) {
			*pos += k;
			return 0;
		}
	}
	return JSON_ERR_SYNTAX;
}

/* Check one value starting at s[*pos] that is not a container. */
static int
scan_scalar(const unsigned char *s, size_t n, size_t *pos)
{
	unsigned char c = s[*pos];

	if (c == '"')
		return scan_string(s, n, pos);
	if (c == '-' || is_digit(c))
		return scan_number(s, n, pos);
	return scan_literal(s, n, pos);
}

/*
 * Decide whether s[0..n) is one RFC 8259 value and count the tokens jsmn
 * will make of it (one per value, one per key). A state machine with a
 * bit stack, so a hostile document costs no recursion.
 */
static int
check_doc(const unsigned char *s, size_t n, int *ntok)
{
	uint32_t isobj = 0;	/* bit k set: level k + 1 is an object */
	int depth = 0, st = ST_VALUE, count = 0, r;
	size_t i = 0;
	unsigned char c;

	for (;;) {
		while (i < n && is_ws(s[i]))
			i++;
		if (i == n)
			break;
		c = s[i];
		if (c == '}' || c == ']') {
			if (st != ST_NEXT && st != ST_KEY_OR_END &&
			    st != ST_VALUE_OR_END)
				return JSON_ERR_SYNTAX;
			if ((int)((isobj >> (depth - 1)) & 1) != (c == '}'))
				return JSON_ERR_SYNTAX;
			depth--;
			i++;
			st = depth > 0 ? ST_NEXT : ST_DONE;
			continue;
		}
		switch (st) {
		case ST_DONE:
			/* RFC 8259 2: a text is one value. */
			return JSON_ERR_SYNTAX;
		case ST_COLON:
			if (c != ':')
				return JSON_ERR_SYNTAX;
			i++;
			st = ST_VALUE;
			continue;
		case ST_NEXT:
			if (c != ',')
				return JSON_ERR_SYNTAX;
			i++;
			st = (isobj >> (depth - 1)) & 1 ? ST_KEY : ST_VALUE;
			continue;
		case ST_KEY:
		case ST_KEY_OR_END:
			/* RFC 8259 4: names are strings. */
			if (c != '"')
				return JSON_ERR_SYNTAX;
			if ((r = scan_string(s, n, &i)) < 0)
				return r;
			count++;
			st = ST_COLON;
			continue;
		default:
			break;
		}
		/* ST_VALUE or ST_VALUE_OR_END. */
		count++;
		if (c == '{' || c == '[') {
			if (depth == JSON_MAX_DEPTH)
				return JSON_ERR_DEPTH;
			if (c == '{')
				isobj |= (uint32_t)1 << depth;
			else
				isobj &= ~((uint32_t)1 << depth);
			depth++;
			i++;
			st = c == '{' ? ST_KEY_OR_END : ST_VALUE_OR_END;
			continue;
		}
		if ((r = scan_scalar(s, n, &i)) < 0)
			return r;
		st = depth > 0 ? ST_NEXT : ST_DONE;
	}
	if (st != ST_DONE)
		return JSON_ERR_SYNTAX;
	*ntok = count;
	return 0;
}

int
json_parse(struct json_doc *d, jsmntok_t *tok, unsigned cap,
    const char *s, size_t n)
{
	const unsigned char *u = (const unsigned char *)s;
	jsmn_parser p;
	size_t i = 0, e;
	int count, r;

	d->src = s;
	d->len = n;
	d->tok = tok;
	d->ntok = 0;
	/* jsmn keeps offsets and counts in int. */
	if (n >= (size_t)INT_MAX)
		return JSON_ERR_TOO_LONG;
	if ((r = check_doc(u, n, &count)) < 0)
		return r;
	if ((unsigned)count > cap)
		return JSON_ERR_TOO_MANY;
	while (is_ws(u[i]))
		i++;
	if (u[i] != '{' && u[i] != '[' && u[i] != '"') {
		/*
		 * A bare number or literal: jsmn's strict mode wants a
		 * delimiter after it, which a root value does not have.
		 */
		e = i;
		while (e < n && !is_ws(u[e]))
			e++;
		tok[0].type = JSMN_PRIMITIVE;
		tok[0].start = (int)i;
		tok[0].end = (int)e;
		tok[0].size = 0;
#ifdef JSMN_PARENT_LINKS
		tok[0].parent = -1;
#endif
		d->ntok = 1;
		return 0;
	}
	jsmn_init(&p);
	r = jsmn_parse(&p, s, n, tok, cap);
	/* The checker and jsmn must agree on a valid document. */
	if (r != count || p.pos != n)
		return JSON_ERR_SYNTAX;
	d->ntok = count;
	return 0;
}

static int
in_range(const struct json_doc *d, int i)
{
	return i >= 0 && i < d->ntok;
}

int
json_next(const struct json_doc *d, int i)
{
	int j, end;

	if (!in_range(d, i))
		return d->ntok;
	/* Tokens are in document order: the value's subtree is every
	 * following token that starts before the value ends. */
	end = d->tok[i].end;
	for (j = i + 1; j < d->ntok && d->tok[j].start < end; j++)
		;
	return j;
}

int
json_len(const struct json_doc *d, int i)
{
	if (!json_is_object(d, i) && !json_is_array(d, i))
		return -1;
	return d->tok[i].size;
}

static int
first_char(const struct json_doc *d, int i)
{
	return (unsigned char)d->src[d->tok[i].start];
}

int
json_is_object(const struct json_doc *d, int i)
{
	return in_range(d, i) && d->tok[i].type == JSMN_OBJECT;
}

int
json_is_array(const struct json_doc *d, int i)
{
	return in_range(d, i) && d->tok[i].type == JSMN_ARRAY;
}

int
json_is_string(const struct json_doc *d, int i)
{
	return in_range(d, i) && d->tok[i].type == JSMN_STRING;
}

int
json_is_number(const struct json_doc *d, int i)
{
	int c;

	if (!in_range(d, i) || d->tok[i].type != JSMN_PRIMITIVE)
		return 0;
	c = first_char(d, i);
	return c == '-' || is_digit((unsigned char)c);
}

int
json_is_bool(const struct json_doc *d, int i)
{
	int c;

	if (!in_range(d, i) || d->tok[i].type != JSMN_PRIMITIVE)
		return 0;
	c = first_char(d, i);
	return c == 't' || c == 'f';
}

int
json_is_null(const struct json_doc *d, int i)
{
	return in_range(d, i) && d->tok[i].type == JSMN_PRIMITIVE &&
	    first_char(d, i) == 'n';
}

int
json_bool(const struct json_doc *d, int i)
{
	if (!json_is_bool(d, i))
		return JSON_ERR_TYPE;
	return first_char(d, i) == 't';
}

/* Append code point cp to u as UTF-8; returns the byte count. */
static size_t
utf8_put(uint32_t cp, unsigned char u[4])
{
	if (cp < 0x80) {
		u[0] = (unsigned char)cp;
		return 1;
	}
	if (cp < 0x800) {
		u[0] = (unsigned char)(0xc0 | cp >> 6);
		u[1] = (unsigned char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		u[0] = (unsigned char)(0xe0 | cp >> 12);
		u[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
		u[2] = (unsigned char)(0x80 | (cp & 0x3f));
		return 3;
	}
	u[0] = (unsigned char)(0xf0 | cp >> 18);
	u[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3f));
	u[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
	u[3] = (unsigned char)(0x80 | (cp & 0x3f));
	return 4;
}

/*
 * Decode the next character of a string body that check_doc accepted,
 * starting at s[*i], into u; returns its length in bytes. Raw bytes go
 * one at a time, so UTF-8 passes through unchanged.
 */
static size_t
str_char(const unsigned char *s, size_t *i, unsigned char u[4])
{
	uint32_t cp, lo;
	size_t k = *i;

	if (s[k] != '\\') {
		u[0] = s[k];
		*i = k + 1;
		return 1;
	}
	*i = k + 2;
	switch (s[k + 1]) {
	case 'b': u[0] = '\b'; return 1;
	case 'f': u[0] = '\f'; return 1;
	case 'n': u[0] = '\n'; return 1;
	case 'r': u[0] = '\r'; return 1;
	case 't': u[0] = '\t'; return 1;
	case 'u': break;
	default: u[0] = s[k + 1]; return 1;	/* " \ / */
	}
	(void)hex4(s + k + 2, &cp);
	*i = k + 6;
	if (cp >= 0xd800 && cp <= 0xdbff) {
		/* The checker made sure a low surrogate follows. */
		(void)hex4(s + k + 8, &lo);
		cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
		*i = k + 12;
	}
	return utf8_put(cp, u);
}

int
json_string(const struct json_doc *d, int i, char *out, size_t cap)
{
	const unsigned char *s = (const unsigned char *)d->src;
	unsigned char u[4];
	size_t k, end, n = 0, m;

	if (!json_is_string(d, i))
		return JSON_ERR_TYPE;
	k = (size_t)d->tok[i].start;
	end = (size_t)d->tok[i].end;
	while (k < end) {
		m = str_char(s, &k, u);
		if (m > cap - n)
			return JSON_ERR_SPACE;
		memcpy(out + n, u, m);
		n += m;
	}
	return (int)n;
}

int
json_streqn(const struct json_doc *d, int i, const char *str, size_t n)
{
	const unsigned char *s = (const unsigned char *)d->src;
	unsigned char u[4];
	size_t k, end, off = 0, m;

	if (!json_is_string(d, i))
		return 0;
	k = (size_t)d->tok[i].start;
	end = (size_t)d->tok[i].end;
	/* Without a backslash the token is its own unescaped value. */
	if (memchr(s + k, '\\', end - k) == NULL)
		return end - k == n && (n == 0 || memcmp(s + k, str, n) == 0);
	while (k < end) {
		m = str_char(s, &k, u);
		if (m > n - off || memcmp(str + off, u, m) != 0)
			return 0;
		off += m;
	}
	return off == n;
}

int
json_streq(const struct json_doc *d, int i, const char *lit)
{
	return json_streqn(d, i, lit, strlen(lit));
}

int
json_get(const struct json_doc *d, int obj, const char *key)
{
	size_t kn = strlen(key);
	int m, k;

	if (!json_is_object(d, obj))
		return -1;
	k = obj + 1;
	for (m = 0; m < d->tok[obj].size && k + 1 < d->ntok; m++) {
		if (json_streqn(d, k, key, kn))
			return k + 1;
		k = json_next(d, k + 1);
	}
	return -1;
}

size_t
json_raw(const struct json_doc *d, int i, const char **p)
{
	size_t a, b;

	if (!in_range(d, i)) {
		*p = d->src;
		return 0;
	}
	a = (size_t)d->tok[i].start;
	b = (size_t)d->tok[i].end;
	/* jsmn's string tokens leave the quotes out. */
	if (d->tok[i].type == JSMN_STRING) {
		a--;
		b++;
	}
	*p = d->src + a;
	return b - a;
}

int
json_int(const struct json_doc *d, int i, int64_t *out)
{
	const char *s;
	size_t k, n;
	uint64_t v = 0, lim;
	int neg;

	if (!json_is_number(d, i))
		return JSON_ERR_TYPE;
	s = d->src + d->tok[i].start;
	n = (size_t)(d->tok[i].end - d->tok[i].start);
	neg = s[0] == '-';
	/* The magnitude of INT64_MIN is one more than INT64_MAX. */
	lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
	for (k = (size_t)neg; k < n; k++) {
		if (!is_digit((unsigned char)s[k]))
			return JSON_ERR_TYPE;
		if (v > (lim - (uint64_t)(s[k] - '0')) / 10)
			return JSON_ERR_RANGE;
		v = v * 10 + (uint64_t)(s[k] - '0');
	}
	if (neg)
		*out = v == 0 ? 0 : -(int64_t)(v - 1) - 1;
	else
		*out = (int64_t)v;
	return 0;
}

/* Past this magnitude json_int_trunc() gives JSON_ERR_RANGE. */
#define TRUNC_LIMIT 1000000000000000000ULL	/* 10^18 */
/* Exponents are clamped here: any larger one overflows or gives 0. */
#define EXP_CLAMP 100000

int
json_int_trunc(const struct json_doc *d, int i, int64_t *out)
{
	const char *s;
	size_t k, n, ip, id, nd;
	uint64_t v = 0;
	int64_t e = 0, want, pos;
	int neg, eneg = 0, nonzero = 0;
	char digits_at;

	if (!json_is_number(d, i))
		return JSON_ERR_TYPE;
	s = d->src + d->tok[i].start;
	n = (size_t)(d->tok[i].end - d->tok[i].start);
	neg = s[0] == '-';
	/* The checker vouched for the grammar; find its parts. */
	ip = (size_t)neg;
	for (k = ip; k < n && is_digit((unsigned char)s[k]); k++)
		nonzero |= s[k] != '0';
	id = k - ip;			/* integer digits */
	nd = id;			/* digits of int and fraction */
	if (k < n && s[k] == '.')
		for (k++; k < n && is_digit((unsigned char)s[k]); k++) {
			nonzero |= s[k] != '0';
			nd++;
		}
	if (k < n && (s[k] == 'e' || s[k] == 'E')) {
		k++;
		if (s[k] == '+' || s[k] == '-')
			eneg = s[k++] == '-';
		for (; k < n; k++)
			if (e < EXP_CLAMP)
				e = e * 10 + (s[k] - '0');
		if (eneg)
			e = -e;
	}
	if (!nonzero) {
		*out = 0;
		return 0;
	}
	/* The integer part is the first id + e digits, zeros past nd. */
	want = (int64_t)id + e;
	for (pos = 0; pos < want; pos++) {
		if ((size_t)pos < nd) {
			/* Skip the '.' between the two digit runs. */
			k = ip + (size_t)pos + ((size_t)pos >= id);
			digits_at = s[k];
		} else
			digits_at = '0';
		v = v * 10 + (uint64_t)(digits_at - '0');
		if (v >= TRUNC_LIMIT)
			return JSON_ERR_RANGE;
	}
	*out = neg ? -(int64_t)v : (int64_t)v;
	return 0;
}

void
json_out_init(struct json_out *o, char *buf, size_t cap)
{
	o->p = buf;
	o->cap = cap;
	o->n = 0;
	o->err = 0;
}

void
json_out_raw(struct json_out *o, const char *s, size_t n)
{
	if (o->err)
		return;
	if (n > o->cap - o->n) {
		o->err = JSON_ERR_SPACE;
		return;
	}
	if (n > 0)
		memcpy(o->p + o->n, s, n);
	o->n += n;
}

void
json_out_lit(struct json_out *o, const char *lit)
{
	json_out_raw(o, lit, strlen(lit));
}

/*
 * The escape for the character at u[0..left) into esc, its length (0 if
 * the byte goes out as is), and in *len how many input bytes it stands
 * for.
 */
static size_t
escape(const unsigned char *u, size_t left, char esc[6], size_t *len)
{
	static const char hex[] = "0123456789abcdef";

	*len = 1;
	esc[0] = '\\';
	switch (u[0]) {
	case '"': esc[1] = '"'; return 2;
	case '\\': esc[1] = '\\'; return 2;
	case '\b': esc[1] = 'b'; return 2;
	case '\f': esc[1] = 'f'; return 2;
	case '\n': esc[1] = 'n'; return 2;
	case '\r': esc[1] = 'r'; return 2;
	case '\t': esc[1] = 't'; return 2;
	default: break;
	}
	/* RFC 8259 7: control characters MUST be escaped. */
	if (u[0] < 0x20) {
		memcpy(esc + 1, "u00", 3);
		esc[4] = hex[u[0] >> 4];
		esc[5] = hex[u[0] & 0xf];
		return 6;
	}
	/* U+2028 and U+2029 end a line in JavaScript. */
	if (u[0] == 0xe2 && left >= 3 && u[1] == 0x80 &&
	    (u[2] == 0xa8 || u[2] == 0xa9)) {
		memcpy(esc + 1, u[2] == 0xa8 ? "u2028" : "u2029", 5);
		*len = 3;
		return 6;
	}
	return 0;
}

void
json_out_str(struct json_out *o, const char *s, size_t n)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0, run = 0, en, len;
	char esc[6];

	json_out_raw(o, "\"", 1);
	/* Copy runs of plain bytes whole; stop only for an escape. */
	while (i < n) {
		if ((en = escape(u + i, n - i, esc, &len)) == 0) {
			run++;
			i++;
			continue;
		}
		if (run > 0)
			json_out_raw(o, s + i - run, run);
		json_out_raw(o, esc, en);
		run = 0;
		i += len;
	}
	if (run > 0)
		json_out_raw(o, s + n - run, run);
	json_out_raw(o, "\"", 1);
}

void
json_out_uint(struct json_out *o, uint64_t v)
{
	char b[20];	/* UINT64_MAX has 20 digits */
	size_t k = sizeof(b);

	do {
		b[--k] = (char)('0' + v % 10);
		v /= 10;
	} while (v != 0);
	json_out_raw(o, b + k, sizeof(b) - k);
}

void
json_out_int(struct json_out *o, int64_t v)
{
	if (v < 0) {
		json_out_raw(o, "-", 1);
		/* Negate in unsigned arithmetic so INT64_MIN works. */
		json_out_uint(o, (uint64_t)0 - (uint64_t)v);
	} else
		json_out_uint(o, (uint64_t)v);
}

int
json_out_ok(const struct json_out *o)
{
	return o->err == 0;
}
