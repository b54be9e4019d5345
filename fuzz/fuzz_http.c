/*
 * fuzz_http.c: the request-head parser and the helpers the router calls
 * on its result. The input is a request head as read from a socket.
 * Properties: http_parse() returns a length within the input, or one of
 * its three errors; parsing the same bytes one longer prefix at a time
 * never succeeds early with another length (a head is found at exactly
 * one place); every string it hands out lies inside the input; the query
 * helper never writes past its output, whatever the capacity; a
 * Sec-WebSocket-Key that passes ws_key_valid() gets a 28-byte accept key.
 */
#include <string.h>

#include "fuzz.h"
#include "http.h"
#include "ws_frame.h"

static const char *lo, *hi;

static void
check_str(struct http_str s)
{
	FUZZ_CHECK(s.n == 0 || (s.p >= lo && s.p + s.n <= hi));
}

/* The router's look-ups, as conn.c and chat.c make them. */
static void
lookups(const struct http_req *r)
{
	static const char *names[] = { "Host", "Upgrade", "Connection",
	    "Sec-WebSocket-Key", "Sec-WebSocket-Version", "Origin",
	    "Sec-WebSocket-Protocol", "Content-Length", "Authorization",
	    "Transfer-Encoding" };
	static const char *params[] = { "token", "since", "room", "" };
	const struct http_header *h;
	char out[64], accept[WS_ACCEPT_LEN];
	size_t i, cap;
	int n;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		h = http_header_get(r, names[i]);
		if (h == NULL)
			continue;
		FUZZ_CHECK(http_str_ieq(h->name, names[i]));
		(void)http_list_has(h->value, "upgrade");
		(void)http_list_has(h->value, "websocket");
		(void)http_list_has(h->value, "vkws.json");
		(void)http_list_has(h->value, "");
		if (i == 3 && ws_key_valid(h->value.p, h->value.n)) {
			FUZZ_CHECK(h->value.n == 24);
			ws_accept_key(h->value.p, h->value.n, accept);
			for (n = 0; n < WS_ACCEPT_LEN; n++)
				FUZZ_CHECK(accept[n] != '\0');
		}
	}
	for (i = 0; i < sizeof(params) / sizeof(params[0]); i++) {
		/* Every capacity up to the buffer; out[cap] is a canary. */
		for (cap = 0; cap < sizeof(out); cap += 7) {
			out[cap] = 'Z';
			n = http_query_get(r->query, params[i], out, cap);
			FUZZ_CHECK(n >= -2 && n <= (int)cap);
			FUZZ_CHECK(out[cap] == 'Z');
		}
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct http_req req, again;
	const char *p = (const char *)data;
	size_t i;
	int r, r2;

	if (size > FUZZ_MAX_INPUT)
		return 0;
	lo = p;
	hi = p + size;
	r = http_parse(&req, p, size);
	FUZZ_CHECK(r == HTTP_INCOMPLETE || r == HTTP_BAD ||
	    r == HTTP_TOO_MANY || (r > 0 && (size_t)r <= size));
	if (r <= 0)
		return 0;

	/* The head ends at r: every shorter prefix is incomplete, or was
	 * already refused for what it shows. Long heads are sampled (at
	 * most 256 prefixes) to keep each run linear. */
	for (i = 0; i < (size_t)r; i += 1 + (size_t)r / 256) {
		r2 = http_parse(&again, p, i);
		FUZZ_CHECK(r2 < 0);
	}
	FUZZ_CHECK(req.nheaders <= HTTP_MAX_HEADERS);
	check_str(req.method);
	check_str(req.target);
	check_str(req.path);
	check_str(req.query);
	FUZZ_CHECK(req.method.n > 0 && req.target.n > 0);
	for (i = 0; i < req.nheaders; i++) {
		check_str(req.headers[i].name);
		check_str(req.headers[i].value);
		FUZZ_CHECK(req.headers[i].name.n > 0);
	}
	lookups(&req);
	return 0;
}
