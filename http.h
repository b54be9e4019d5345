/*
 * http.h: HTTP/1.1 request heads, parsed without copies into caller
 * arrays, and the small helpers the router needs. No I/O, no allocation:
 * every string is a (pointer, length) into the caller's buffer.
 */
#ifndef VKWS_HTTP_H
#define VKWS_HTTP_H

#include <stddef.h>

/* Most header lines one request may carry; more is a 431. */
#define HTTP_MAX_HEADERS 32

struct http_str {
	const char *p;
	size_t n;
};

struct http_header {
	struct http_str name;
	struct http_str value;	/* leading and trailing blanks trimmed */
};

struct http_req {
	struct http_str method;
	struct http_str target;	/* as sent: path plus optional ?query */
	struct http_str path;	/* target up to '?' */
	struct http_str query;	/* after '?', empty if none */
	int minor;		/* HTTP/1.<minor> */
	size_t nheaders;
	struct http_header headers[HTTP_MAX_HEADERS];
};

enum {
	HTTP_INCOMPLETE = -2,	/* no blank line yet: read more */
	HTTP_BAD = -1,		/* malformed: 400 */
	HTTP_TOO_MANY = -3	/* more than HTTP_MAX_HEADERS lines: 431 */
};

/*
 * Parse a request head from p[0..len). Returns the length of the head
 * (through the blank line), so bytes after it are the body or a first
 * WebSocket frame; or HTTP_INCOMPLETE / HTTP_BAD / HTTP_TOO_MANY. Accepts
 * CRLF and bare LF line ends, rejects obsolete line folding, control
 * characters, a missing version or one other than HTTP/1.x, and a request
 * line with anything but single spaces.
 */
int http_parse(struct http_req *r, const char *p, size_t len);

/* The first header named name (ASCII case-insensitive), or NULL. */
const struct http_header *http_header_get(const struct http_req *r,
    const char *name);

/* How many header lines are named name. */
size_t http_header_count(const struct http_req *r, const char *name);

/*
 * Whether any line of the list header name holds the token tok (RFC 9110
 * 5.3: the lines of a list header combine into one list, so "foo" on one
 * line and "vkws.json" on the next offer both).
 */
int http_header_has(const struct http_req *r, const char *name,
    const char *tok);

/* ASCII case-insensitive equality of s and the NUL-terminated lit. */
int http_str_ieq(struct http_str s, const char *lit);

/*
 * Whether the comma-separated list s holds the token tok, compared ASCII
 * case-insensitively, blanks around items ignored
 * ("keep-alive, Upgrade" holds "upgrade").
 */
int http_list_has(struct http_str s, const char *tok);

/*
 * Find the query parameter name in q and percent-decode its value into
 * out[0..cap). Returns the decoded length, -1 if absent, -2 if malformed
 * or longer than cap.
 */
int http_query_get(struct http_str q, const char *name, char *out, size_t cap);

#endif
