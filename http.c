/*
 * http.c: parse an HTTP/1.1 request head (RFC 9112) into a caller's
 * struct http_req, and the few string helpers the router needs (header
 * lookup, token lists, query parameters). It never copies the request,
 * never allocates, never does I/O and keeps no state between calls: a
 * caller that has read more bytes simply parses the buffer again. Every
 * byte the parser looks at is read through one bounds guard, peek().
 */
#include <limits.h>
#include <stddef.h>
#include <string.h>

#include "http.h"

/* Returned by peek() at the end of the input. */
#define END (-1)

/* A read position in the caller's bytes. */
struct cur {
	const unsigned char *p;
	size_t len;
	size_t off;
};

/*
 * The one bounds guard: every byte the parser inspects is fetched here, so
 * no read can pass p[len - 1]. Running out of bytes is never an error by
 * itself; it means the head is not complete yet.
 */
static int
peek(const struct cur *c)
{
	if (c->off >= c->len)
		return END;
	return c->p[c->off];
}

/* RFC 9110 5.6.2: tchar, the characters of a token (methods, names). */
static int
istchar(int b)
{
	static const char punct[] = "!#$%&'*+-.^_`|~";

	if ((b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z') ||
	    (b >= '0' && b <= '9'))
		return 1;
	/* The length leaves out the NUL, so a 0 byte is not a tchar. */
	return b > 0 && memchr(punct, b, sizeof(punct) - 1) != NULL;
}

/*
 * RFC 9110 5.5: field-vchar = VCHAR / obs-text, and SP or HTAB inside a
 * value. Every other control character, DEL included, is refused.
 */
static int
isvalch(int b)
{
	return b == ' ' || b == '\t' || (b > 0x20 && b != 0x7f);
}

static int
isblank_(int b)
{
	return b == ' ' || b == '\t';
}

/* ASCII only: tolower() would follow the locale. */
static int
lower(int b)
{
	return b >= 'A' && b <= 'Z' ? b - 'A' + 'a' : b;
}

/*
 * Consume one line end. RFC 9112 2.2 lets a recipient accept a bare LF; a
 * CR not followed by LF is refused rather than read as a space.
 */
static int
eol(struct cur *c)
{
	int b;

	b = peek(c);
	if (b == '\r') {
		c->off++;
		b = peek(c);
	}
	if (b == END)
		return HTTP_INCOMPLETE;
	if (b != '\n')
		return HTTP_BAD;
	c->off++;
	return 0;
}

static void
setstr(struct http_str *s, const struct cur *c, size_t start, size_t end)
{
	s->p = (const char *)c->p + start;
	s->n = end - start;
}

/* Split the request target at its first '?' into path and query. */
static void
split_target(struct http_req *r)
{
	const char *q;

	q = memchr(r->target.p, '?', r->target.n);
	if (q == NULL) {
		r->path = r->target;
		r->query.p = r->target.p + r->target.n;
		r->query.n = 0;
		return;
	}
	r->path.p = r->target.p;
	r->path.n = (size_t)(q - r->target.p);
	r->query.p = q + 1;
	r->query.n = r->target.n - r->path.n - 1;
}

/*
 * RFC 9112 3: request-line = method SP request-target SP HTTP-version,
 * with exactly one space between the parts (3 allows a server to be
 * lenient about whitespace; vkws is not, to keep one reading of a line).
 */
static int
reqline(struct cur *c, struct http_req *r)
{
	static const char ver[] = "HTTP/1.";
	size_t start, i;
	int b;

	/* RFC 9110 9.1: the method is a case-sensitive token. */
	start = c->off;
	while ((b = peek(c)) != END && istchar(b))
		c->off++;
	if (b == END)
		return HTTP_INCOMPLETE;
	if (c->off == start || b != ' ')
		return HTTP_BAD;
	setstr(&r->method, c, start, c->off);
	c->off++;

	/*
	 * RFC 9112 3.2.1: origin-form only. vkws is not a proxy, so the
	 * absolute-form, authority-form and asterisk-form are refused. The
	 * target is visible ASCII: RFC 3986 has no raw space, control or
	 * non-ASCII byte in a URI.
	 */
	start = c->off;
	b = peek(c);
	if (b == END)
		return HTTP_INCOMPLETE;
	if (b != '/')
		return HTTP_BAD;
	while ((b = peek(c)) != END && b > 0x20 && b < 0x7f)
		c->off++;
	if (b == END)
		return HTTP_INCOMPLETE;
	if (b != ' ')
		return HTTP_BAD;
	setstr(&r->target, c, start, c->off);
	split_target(r);
	c->off++;

	/* RFC 9112 2.3: the version is case-sensitive; only 1.x is spoken. */
	for (i = 0; i < sizeof(ver) - 1; i++) {
		if ((b = peek(c)) == END)
			return HTTP_INCOMPLETE;
		if (b != ver[i])
			return HTTP_BAD;
		c->off++;
	}
	if ((b = peek(c)) == END)
		return HTTP_INCOMPLETE;
	if (b < '0' || b > '9')
		return HTTP_BAD;
	r->minor = b - '0';
	c->off++;
	return eol(c);
}

/*
 * RFC 9112 5: field-line = field-name ":" OWS field-value OWS. The
 * caller has seen that the line is not empty and does not start with a
 * blank.
 */
static int
header(struct cur *c, struct http_header *h)
{
	size_t start, end;
	int b;

	start = c->off;
	while ((b = peek(c)) != END && istchar(b))
		c->off++;
	if (b == END)
		return HTTP_INCOMPLETE;
	/*
	 * RFC 9112 5.1: no whitespace between the name and the colon, which
	 * a server MUST answer with 400. A line end here is a line without
	 * a colon, and an empty name is no token.
	 */
	if (b != ':' || c->off == start)
		return HTTP_BAD;
	setstr(&h->name, c, start, c->off);
	c->off++;

	while ((b = peek(c)) != END && isblank_(b))
		c->off++;
	start = end = c->off;
	while ((b = peek(c)) != END && isvalch(b)) {
		c->off++;
		/* The trailing OWS is not part of the value. */
		if (!isblank_(b))
			end = c->off;
	}
	if (b == END)
		return HTTP_INCOMPLETE;
	if (b != '\r' && b != '\n')
		return HTTP_BAD;
	setstr(&h->value, c, start, end);
	return eol(c);
}

int
http_parse(struct http_req *r, const char *p, size_t len)
{
	struct cur c;
	int b, rc;

	c.p = (const unsigned char *)p;
	/* The head length is returned as an int; look no further. */
	c.len = len > INT_MAX ? INT_MAX : len;
	c.off = 0;
	r->nheaders = 0;

	/*
	 * RFC 9112 2.2: a server SHOULD ignore empty lines before the
	 * request line (some clients send a CRLF after a POST body).
	 */
	while ((b = peek(&c)) == '\r' || b == '\n')
		if ((rc = eol(&c)) < 0)
			return rc;
	if ((rc = reqline(&c, r)) < 0)
		return rc;

	for (;;) {
		if ((b = peek(&c)) == END)
			return HTTP_INCOMPLETE;
		if (b == '\r' || b == '\n') {
			/* The empty line that ends the head. */
			if ((rc = eol(&c)) < 0)
				return rc;
			return (int)c.off;
		}
		/*
		 * RFC 9112 5.2: obs-fold may be refused with 400; and 2.2:
		 * a blank before the first field line MUST be refused or
		 * skipped. Both are refused. Any other byte that cannot
		 * start a name (':' of an empty name, a control byte) is
		 * refused here too, before the line is counted.
		 */
		if (!istchar(b))
			return HTTP_BAD;
		if (r->nheaders == HTTP_MAX_HEADERS)
			return HTTP_TOO_MANY;
		if ((rc = header(&c, &r->headers[r->nheaders])) < 0)
			return rc;
		r->nheaders++;
	}
}

/* Exact equality of s and the NUL-terminated lit. */
static int
str_eq(struct http_str s, const char *lit)
{
	size_t i;

	for (i = 0; i < s.n; i++)
		if (lit[i] == '\0' || s.p[i] != lit[i])
			return 0;
	return lit[i] == '\0';
}

int
http_str_ieq(struct http_str s, const char *lit)
{
	size_t i;

	/* Walk lit only as far as s, so lit needs no strlen. */
	for (i = 0; i < s.n; i++) {
		if (lit[i] == '\0' ||
		    lower((unsigned char)s.p[i]) != lower((unsigned char)lit[i]))
			return 0;
	}
	return lit[i] == '\0';
}

const struct http_header *
http_header_get(const struct http_req *r, const char *name)
{
	size_t i;

	for (i = 0; i < r->nheaders; i++)
		if (http_str_ieq(r->headers[i].name, name))
			return &r->headers[i];
	return NULL;
}

size_t
http_header_count(const struct http_req *r, const char *name)
{
	size_t i, n = 0;

	for (i = 0; i < r->nheaders; i++)
		if (http_str_ieq(r->headers[i].name, name))
			n++;
	return n;
}

int
http_header_has(const struct http_req *r, const char *name, const char *tok)
{
	size_t i;

	for (i = 0; i < r->nheaders; i++)
		if (http_str_ieq(r->headers[i].name, name) &&
		    http_list_has(r->headers[i].value, tok))
			return 1;
	return 0;
}

int
http_list_has(struct http_str s, const char *tok)
{
	struct http_str item;
	const char *p, *end, *comma;

	/*
	 * RFC 9110 5.6.1: a recipient MUST accept empty list elements
	 * ("a,,b", ", a") and the OWS around each. An empty tok is never
	 * found, so an empty element cannot match it.
	 */
	if (tok[0] == '\0' || s.n == 0)
		return 0;
	p = s.p;
	end = s.p + s.n;
	for (;;) {
		comma = memchr(p, ',', (size_t)(end - p));
		item.p = p;
		item.n = (size_t)((comma != NULL ? comma : end) - p);
		while (item.n > 0 && isblank_((unsigned char)item.p[0])) {
			item.p++;
			item.n--;
		}
		while (item.n > 0 &&
		    isblank_((unsigned char)item.p[item.n - 1]))
			item.n--;
		if (http_str_ieq(item, tok))
			return 1;
		if (comma == NULL)
			return 0;
		p = comma + 1;
	}
}

static int
hexval(int b)
{
	if (b >= '0' && b <= '9')
		return b - '0';
	b = lower(b);
	if (b >= 'a' && b <= 'f')
		return b - 'a' + 10;
	return -1;
}

/*
 * Percent-decode v into out[0..cap) (RFC 3986 2.1). '+' becomes a space
 * as in application/x-www-form-urlencoded, which browsers use for query
 * strings; a JWT is base64url and carries no '+', and a literal '+' must
 * arrive as %2B. Returns the decoded length or -2.
 */
static int
decode(const char *v, size_t n, char *out, size_t cap)
{
	size_t i, o;
	int hi, lo;

	if (cap > INT_MAX)
		cap = INT_MAX;
	for (i = o = 0; i < n; i++) {
		if (o == cap)
			return -2;
		if (v[i] == '+') {
			out[o++] = ' ';
		} else if (v[i] != '%') {
			out[o++] = v[i];
		} else {
			if (n - i < 3)
				return -2;
			hi = hexval((unsigned char)v[i + 1]);
			lo = hexval((unsigned char)v[i + 2]);
			if (hi < 0 || lo < 0)
				return -2;
			out[o++] = (char)(hi << 4 | lo);
			i += 2;
		}
	}
	return (int)o;
}

int
http_query_get(struct http_str q, const char *name, char *out, size_t cap)
{
	struct http_str key;
	const char *p, *end, *amp, *eq, *iend;

	if (q.n == 0)
		return -1;
	p = q.p;
	end = q.p + q.n;
	for (;;) {
		amp = memchr(p, '&', (size_t)(end - p));
		iend = amp != NULL ? amp : end;
		eq = memchr(p, '=', (size_t)(iend - p));
		key.p = p;
		key.n = (size_t)((eq != NULL ? eq : iend) - p);
		/*
		 * Names are compared byte for byte, not decoded and not
		 * case-folded: vkws asks only for names it spells itself.
		 * The first match wins; "name" alone has an empty value.
		 */
		if (key.n > 0 && str_eq(key, name)) {
			if (eq == NULL)
				return 0;
			return decode(eq + 1, (size_t)(iend - eq - 1), out,
			    cap);
		}
		if (amp == NULL)
			return -1;
		p = amp + 1;
	}
}
