/*
 * test_http.c: unit tests for http.c. Every request, valid or not, is
 * placed so that its last byte sits right before a PROT_NONE page, so a
 * read past the length the parser was given crashes the test at once. Each
 * one is also parsed at every truncation point: a prefix of a valid head
 * must ask for more bytes, and a malformed head must be refused exactly
 * from its first invalid byte on, never before and never later.
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "http.h"
#include "check.h"

/* A string literal as (pointer, length), so embedded NULs count. */
#define S(lit) (lit), (sizeof(lit) - 1)

/* The whole literal must parse as one head. */
#define CHECK_HEAD(lit) CHECK_EQ(parse(S(lit)), sizeof(lit) - 1)

/* The request struct is larger than the stack frame budget. */
static struct http_req R;

/* The first byte of the PROT_NONE page, and how much lies before it. */
static char *guard;
static size_t room;

static int
guard_init(void)
{
	long pg;
	size_t pgsz;
	char *m;
	int fd;

	/* /dev/zero, since MAP_ANONYMOUS is not in POSIX 2008. */
	pg = sysconf(_SC_PAGESIZE);
	if (pg <= 0 || (fd = open("/dev/zero", O_RDWR)) < 0)
		return -1;
	pgsz = (size_t)pg;
	room = 8 * pgsz;
	m = mmap(NULL, room + pgsz, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd,
	    0);
	close(fd);
	if (m == MAP_FAILED)
		return -1;
	guard = m + room;
	return mprotect(guard, pgsz, PROT_NONE);
}

/* Copy s so that it ends right at the guard page. */
static const char *
at_guard(const char *s, size_t n)
{
	char *p;

	if (n > room)
		return NULL;
	p = guard - n;
	memcpy(p, s, n);
	return p;
}

static int
parse(const char *s, size_t n)
{
	return http_parse(&R, at_guard(s, n), n);
}

/*
 * Parse every prefix of s[0..n). Prefixes shorter than first must give
 * HTTP_INCOMPLETE, the rest must give want. Returns how many did not.
 */
static int
prefixes(const char *s, size_t n, size_t first, int want)
{
	size_t k;
	int got, bad = 0;

	for (k = 0; k <= n; k++) {
		got = parse(s, k);
		if (got != (k < first ? HTTP_INCOMPLETE : want)) {
			if (bad++ == 0)
				fprintf(stderr, "prefix %zu of %zu: got %d\n",
				    k, n, got);
		}
	}
	return bad;
}

static int
streq(struct http_str s, const char *lit)
{
	return s.n == strlen(lit) && memcmp(s.p, lit, s.n) == 0;
}

/* The value of the first header named name, or "(none)". */
static struct http_str
hval(const char *name)
{
	const struct http_header *h;
	struct http_str none = { "(none)", 6 };

	h = http_header_get(&R, name);
	return h != NULL ? h->value : none;
}

static struct http_str
mk(const char *lit)
{
	struct http_str s;

	s.p = lit;
	s.n = strlen(lit);
	return s;
}

/* Like mk(), but ending at the guard page: no NUL to stop an over-read. */
static struct http_str
mkg(const char *lit)
{
	struct http_str s;

	s.n = strlen(lit);
	s.p = at_guard(lit, s.n);
	return s;
}

static void
test_browser_upgrade(void)
{
	static const char req[] =
	    "GET /ws?token=eyJhbGciOiJIUzI1NiJ9.eyJ1aWQiOiJhbGljZSJ9.c2ln"
	    "&room=general HTTP/1.1\r\n"
	    "Host: router.lan:8080\r\n"
	    "Connection: Upgrade\r\n"
	    "Pragma: no-cache\r\n"
	    "Cache-Control: no-cache\r\n"
	    "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 "
	    "(KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36\r\n"
	    "Upgrade: websocket\r\n"
	    "Origin: http://router.lan:8080\r\n"
	    "Sec-WebSocket-Version: 13\r\n"
	    "Accept-Encoding: gzip, deflate, br\r\n"
	    "Accept-Language: en-US,en;q=0.9,zh-CN;q=0.8\r\n"
	    "Cookie: a=1; b=2\r\n"
	    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
	    "Sec-WebSocket-Extensions: permessage-deflate; "
	    "client_max_window_bits\r\n"
	    "Sec-WebSocket-Protocol: chat, vkws.json\r\n"
	    "\r\n";
	size_t n = sizeof(req) - 1;

	CHECK_EQ(parse(req, n), n);
	CHECK(streq(R.method, "GET"));
	CHECK(streq(R.path, "/ws"));
	CHECK(streq(R.query, "token=eyJhbGciOiJIUzI1NiJ9.eyJ1aWQiOiJhbGljZSJ9"
	    ".c2ln&room=general"));
	CHECK_EQ(R.target.n, R.path.n + 1 + R.query.n);
	CHECK_EQ(R.minor, 1);
	CHECK_EQ(R.nheaders, 14);
	CHECK(streq(R.headers[0].name, "Host"));
	CHECK(streq(R.headers[0].value, "router.lan:8080"));
	CHECK(streq(hval("upgrade"), "websocket"));
	CHECK(streq(hval("SEC-WEBSOCKET-KEY"), "dGhlIHNhbXBsZSBub25jZQ=="));
	CHECK(streq(hval("sec-websocket-version"), "13"));
	CHECK(streq(hval("Accept-Language"), "en-US,en;q=0.9,zh-CN;q=0.8"));
	CHECK(http_list_has(hval("Connection"), "upgrade"));
	CHECK(http_list_has(hval("Sec-WebSocket-Protocol"), "vkws.json"));
	CHECK(!http_list_has(hval("Sec-WebSocket-Protocol"), "vkws"));
	CHECK(http_header_get(&R, "Authorization") == NULL);
	CHECK(http_header_get(&R, "Hos") == NULL);
	CHECK(http_header_get(&R, "Hostx") == NULL);
	/* The values point into the caller's buffer: no copies. */
	CHECK(R.method.p == guard - n);
	CHECK_EQ(prefixes(req, n, n, (int)n), 0);
}

static void
test_line_ends(void)
{
	static const char lf[] = "GET /healthz HTTP/1.1\nHost: a\nX: b \n\n";
	static const char mixed[] = "GET / HTTP/1.0\r\nHost: a\n\r\n";
	static const char lead[] = "\r\n\nGET / HTTP/1.1\r\n\r\n";

	CHECK_EQ(parse(S(lf)), sizeof(lf) - 1);
	CHECK_EQ(R.nheaders, 2);
	CHECK(streq(hval("host"), "a"));
	CHECK(streq(hval("x"), "b"));
	CHECK(streq(R.path, "/healthz"));
	CHECK_EQ(R.query.n, 0);
	CHECK_EQ(prefixes(S(lf), sizeof(lf) - 1,
	    (int)(sizeof(lf) - 1)), 0);

	CHECK_EQ(parse(S(mixed)), sizeof(mixed) - 1);
	CHECK_EQ(R.minor, 0);
	CHECK_EQ(prefixes(S(mixed), sizeof(mixed) - 1,
	    (int)(sizeof(mixed) - 1)), 0);

	/* RFC 9112 2.2: empty lines before the request line are skipped. */
	CHECK_EQ(parse(S(lead)), sizeof(lead) - 1);
	CHECK(streq(R.method, "GET"));
	CHECK_EQ(R.nheaders, 0);
	CHECK_EQ(prefixes(S(lead), sizeof(lead) - 1,
	    (int)(sizeof(lead) - 1)), 0);
}

static void
test_values(void)
{
	static const char req[] =
	    "get /a?b?c HTTP/1.9\r\n"
	    "X-Empty:\r\n"
	    "X-Blank: \t \r\n"
	    "X-Trim:\t  a b\t c \t\r\n"
	    "X-List: a, b,,c\r\n"
	    "X-Colon:x:y: z\r\n"
	    "X-Utf8: \xe4\xbd\xa0\xe5\xa5\xbd\r\n"
	    "x-dup: first\r\n"
	    "X-Dup: second\r\n"
	    "!#$%&'*+-.^_`|~09azAZ: token\r\n"
	    "\r\n";
	size_t n = sizeof(req) - 1;

	/* RFC 9110 9.1: methods are case-sensitive tokens; "get" parses. */
	CHECK_EQ(parse(req, n), n);
	CHECK(streq(R.method, "get"));
	CHECK(streq(R.path, "/a"));
	CHECK(streq(R.query, "b?c"));
	CHECK_EQ(R.minor, 9);
	CHECK_EQ(R.nheaders, 9);
	CHECK(streq(hval("X-Empty"), ""));
	CHECK(http_header_get(&R, "x-empty") != NULL);
	CHECK(streq(hval("X-Blank"), ""));
	CHECK(streq(hval("X-Trim"), "a b\t c"));
	CHECK(streq(hval("X-List"), "a, b,,c"));
	CHECK(streq(hval("X-Colon"), "x:y: z"));
	CHECK(streq(hval("X-Utf8"), "\xe4\xbd\xa0\xe5\xa5\xbd"));
	CHECK(streq(hval("X-DUP"), "first"));
	CHECK(streq(hval("!#$%&'*+-.^_`|~09azaz"), "token"));
	CHECK_EQ(prefixes(req, n, n, (int)n), 0);
}

static void
test_targets(void)
{
	CHECK_HEAD("GET /ws? HTTP/1.1\r\n\r\n");
	CHECK(streq(R.path, "/ws"));
	CHECK_EQ(R.query.n, 0);
	CHECK(R.query.p == R.target.p + R.target.n);
	CHECK_HEAD("GET / HTTP/1.1\r\n\r\n");
	CHECK(streq(R.target, "/"));
	CHECK(streq(R.path, "/"));
	CHECK_EQ(R.query.n, 0);
	CHECK_HEAD("GET /?token=a%2Bb HTTP/1.1\r\n\r\n");
	CHECK(streq(R.path, "/"));
	CHECK(streq(R.query, "token=a%2Bb"));
	CHECK_HEAD("M-SEARCH //x/../y HTTP/1.1\r\n\r\n");
	CHECK(streq(R.method, "M-SEARCH"));
	CHECK(streq(R.target, "//x/../y"));
}

/* What follows the head is the body or a first frame: never consumed. */
static void
test_body_follows(void)
{
	static const char post[] =
	    "POST /api HTTP/1.1\r\nContent-Length: 9\r\n\r\n"
	    "{\"a\":\0\r\n\r\n";
	static const char up[] =
	    "GET /echo HTTP/1.1\r\nUpgrade: websocket\r\n\r\n"
	    "\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58";
	static const char two[] =
	    "GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n";
	size_t head;

	head = sizeof("POST /api HTTP/1.1\r\nContent-Length: 9\r\n\r\n") - 1;
	CHECK_EQ(parse(S(post)), head);
	CHECK_EQ(R.nheaders, 1);
	CHECK_EQ(prefixes(S(post), head, (int)head), 0);

	head = sizeof("GET /echo HTTP/1.1\r\nUpgrade: websocket\r\n\r\n") - 1;
	CHECK_EQ(parse(S(up)), head);
	CHECK_EQ(prefixes(S(up), head, (int)head), 0);

	CHECK_EQ(parse(S(two)), 19);
	CHECK(streq(R.path, "/a"));
}

struct bad {
	const char *s;
	size_t n;
	size_t at;	/* offset of the first invalid byte */
};

/* The first byte of rest is the first invalid one. */
#define BADAT(ok, rest) { ok rest, sizeof(ok rest) - 1, sizeof(ok) - 1 }

static const struct bad bads[] = {
	/* Request line: RFC 9112 3. */
	BADAT("GET /", "\r\nHost: a\r\n\r\n"),		/* no version */
	BADAT("GET / ", "\r\n\r\n"),			/* no version */
	BADAT("GET / HTTP/", "2.0\r\n\r\n"),
	BADAT("GET / HTTP/1.1", "x\r\n\r\n"),
	BADAT("GET / HTTP/1.1", "0\r\n\r\n"),
	BADAT("GET / HTTP/1", "\r\n\r\n"),
	BADAT("GET / HTTP/1.", "x\r\n\r\n"),
	BADAT("GET / ", "http/1.1\r\n\r\n"),		/* RFC 9112 2.3 */
	BADAT("GET / HTT", "p/1.1\r\n\r\n"),
	BADAT("GET ", " / HTTP/1.1\r\n\r\n"),		/* double space */
	BADAT("GET / ", " HTTP/1.1\r\n\r\n"),
	BADAT("GET", "\t/ HTTP/1.1\r\n\r\n"),		/* tab */
	BADAT("GET /", "\tHTTP/1.1\r\n\r\n"),
	BADAT("GET / HTTP/1.1", " \r\n\r\n"),		/* trailing space */
	BADAT("", " GET / HTTP/1.1\r\n\r\n"),
	BADAT("", "/ HTTP/1.1\r\n\r\n"),		/* empty method */
	BADAT("GET", "\r\n\r\n"),
	BADAT("GE", "(T / HTTP/1.1\r\n\r\n"),		/* not a tchar */
	BADAT("GE", "\0T / HTTP/1.1\r\n\r\n"),
	BADAT("GET ", "http://a/ HTTP/1.1\r\n\r\n"),	/* absolute-form */
	BADAT("OPTIONS ", "* HTTP/1.1\r\n\r\n"),	/* asterisk-form */
	BADAT("CONNECT ", "a:443 HTTP/1.1\r\n\r\n"),	/* authority-form */
	BADAT("GET /a ", "b HTTP/1.1\r\n\r\n"),		/* space in target */
	BADAT("GET /a", "\0 HTTP/1.1\r\n\r\n"),
	BADAT("GET /a", "\x7f HTTP/1.1\r\n\r\n"),
	BADAT("GET /", "\xc3\xa9 HTTP/1.1\r\n\r\n"),
	BADAT("GET / HTTP/1.1\r", "Host: a\r\n\r\n"),	/* CR without LF */
	BADAT("\r", "GET / HTTP/1.1\r\n\r\n"),
	/* Field lines: RFC 9112 5 and RFC 9110 5.5. */
	BADAT("GET / HTTP/1.1\r\nX: a", "\x01" "b\r\n\r\n"),
	BADAT("GET / HTTP/1.1\r\nX: a", "\0b\r\n\r\n"),
	BADAT("GET / HTTP/1.1\r\nX: a", "\x7f\r\n\r\n"),
	BADAT("GET / HTTP/1.1\r\nX: ", "\x1b[0m\r\n\r\n"),
	BADAT("GET / HTTP/1.1\r\nX: a\r", "b\r\n\r\n"),	/* bare CR */
	BADAT("GET / HTTP/1.1\r\nX-", "\0: a\r\n\r\n"),
	BADAT("GET / HTTP/1.1\r\nHost", " : a\r\n\r\n"),	/* RFC 9112 5.1 */
	BADAT("GET / HTTP/1.1\r\nHost", "\t: a\r\n\r\n"),
	BADAT("GET / HTTP/1.1\r\nX: a\r\n", " b\r\n\r\n"),	/* obs-fold */
	BADAT("GET / HTTP/1.1\nX: a\n", "\tb\n\n"),
	BADAT("GET / HTTP/1.1\r\n", " Host: a\r\n\r\n"),	/* RFC 9112 2.2 */
	BADAT("GET / HTTP/1.1\r\nHost", "\r\n\r\n"),	/* no colon */
	BADAT("GET / HTTP/1.1\nA: b\nHost", "\n\n"),
	BADAT("GET / HTTP/1.1\r\n", ": a\r\n\r\n"),	/* empty name */
	BADAT("GET / HTTP/1.1\r\nX", "(Y: a\r\n\r\n"),
	BADAT("GET / HTTP/1.1\r\nX", "\xff: a\r\n\r\n"),
	BADAT("GET / HTTP/1.1\r\nA: b\r\n", "\x01\r\n\r\n"),
	BADAT("GET / HTTP/1.1\r\nA: b\r\n\r", "X\r\n"),
};

static void
test_malformed(void)
{
	size_t i;

	for (i = 0; i < sizeof(bads) / sizeof(bads[0]); i++) {
		const struct bad *b = &bads[i];

		if (parse(b->s, b->n) != HTTP_BAD)
			fprintf(stderr, "bads[%zu] not refused\n", i);
		CHECK_EQ(parse(b->s, b->n), HTTP_BAD);
		if (prefixes(b->s, b->n, b->at + 1, HTTP_BAD) != 0)
			fprintf(stderr, "bads[%zu]: wrong at a prefix\n", i);
		CHECK_EQ(prefixes(b->s, b->n, b->at + 1, HTTP_BAD), 0);
	}
}

/* A request with n header lines "X-NN: v"; returns its length. */
static size_t
many(char *buf, size_t cap, size_t n, size_t *last)
{
	size_t i, o;

	o = (size_t)snprintf(buf, cap, "GET / HTTP/1.1\r\n");
	for (i = 0; i < n; i++) {
		*last = o;
		o += (size_t)snprintf(buf + o, cap - o, "X-%02zu: v\r\n", i);
	}
	o += (size_t)snprintf(buf + o, cap - o, "\r\n");
	return o;
}

static void
test_too_many(void)
{
	static char buf[1024];
	size_t n, last = 0;

	n = many(buf, sizeof(buf), HTTP_MAX_HEADERS, &last);
	CHECK_EQ(parse(buf, n), n);
	CHECK_EQ(R.nheaders, HTTP_MAX_HEADERS);
	CHECK(streq(R.headers[HTTP_MAX_HEADERS - 1].name, "X-31"));
	CHECK_EQ(prefixes(buf, n, n, (int)n), 0);

	/* Refused once the line past the limit starts, not at its end. */
	n = many(buf, sizeof(buf), HTTP_MAX_HEADERS + 1, &last);
	CHECK_EQ(parse(buf, n), HTTP_TOO_MANY);
	CHECK_EQ(parse(buf, last + 1), HTTP_TOO_MANY);
	CHECK_EQ(parse(buf, last), HTTP_INCOMPLETE);
	CHECK_EQ(prefixes(buf, n, last + 1, HTTP_TOO_MANY), 0);

	/* A malformed line past the limit is still a 400. */
	memcpy(buf + last, " ", 1);
	CHECK_EQ(parse(buf, n), HTTP_BAD);

	CHECK_HEAD("GET / HTTP/1.1\r\n\r\n");
	CHECK_EQ(R.nheaders, 0);
}

static void
test_long_value(void)
{
	static char buf[8192];
	size_t n, v = 7000;

	n = (size_t)snprintf(buf, sizeof(buf), "GET / HTTP/1.1\r\nX: ");
	memset(buf + n, 'a', v);
	n += v;
	memcpy(buf + n, "\r\n\r\n", 4);
	n += 4;
	CHECK_EQ(parse(buf, n), n);
	CHECK_EQ(hval("x").n, v);
	CHECK_EQ(parse(buf, n - 1), HTTP_INCOMPLETE);
}

static void
test_str_ieq(void)
{
	CHECK(http_str_ieq(mk("Upgrade"), "upgrade"));
	CHECK(http_str_ieq(mk("WEBSOCKET"), "websocket"));
	CHECK(http_str_ieq(mk(""), ""));
	CHECK(!http_str_ieq(mk("Upgrade"), "upgrad"));
	CHECK(!http_str_ieq(mk("Upgrad"), "upgrade"));
	CHECK(!http_str_ieq(mk(""), "a"));
	CHECK(!http_str_ieq(mk("a"), ""));
	/* ASCII only: 0xC0 and 0xE0 differ by 0x20 but are not letters. */
	CHECK(!http_str_ieq(mk("\xc0"), "\xe0"));
	CHECK(!http_str_ieq(mk("["), "{"));
	{
		/* A NUL in the network bytes never matches the end of lit. */
		struct http_str s = { "ab\0", 3 };

		CHECK(!http_str_ieq(s, "ab"));
	}
}

static void
test_list_has(void)
{
	CHECK(http_list_has(mk("keep-alive, Upgrade"), "upgrade"));
	CHECK(http_list_has(mk("Upgrade,keep-alive"), "upgrade"));
	CHECK(http_list_has(mk("Upgrade,keep-alive"), "Keep-Alive"));
	CHECK(http_list_has(mk("upgrade"), "Upgrade"));
	CHECK(http_list_has(mk(",,\t upgrade\t ,"), "upgrade"));
	CHECK(http_list_has(mk("a,\tUPGRADE"), "upgrade"));
	CHECK(http_list_has(mk("a , b , c"), "b"));
	CHECK(http_list_has(mk("a , b , c"), "c"));
	CHECK(!http_list_has(mk("keep-alive"), "upgrade"));
	CHECK(!http_list_has(mk("upgrades"), "upgrade"));
	CHECK(!http_list_has(mk("up grade"), "upgrade"));
	CHECK(!http_list_has(mk("xupgrade, upgradex"), "upgrade"));
	CHECK(!http_list_has(mk(""), "upgrade"));
	CHECK(!http_list_has(mk(", ,"), "upgrade"));
	CHECK(!http_list_has(mk("a,,b"), ""));
	CHECK(!http_list_has(mk("upgrade"), "upgrade "));
	CHECK(http_list_has(mkg("a, upgrade\t"), "upgrade"));
	CHECK(!http_list_has(mkg("a, upgrad"), "upgrade"));
	CHECK(http_str_ieq(mkg("Upgrade"), "upgrade"));
}

static void
test_query_get(void)
{
	static const char jwt[] =
	    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
	    "eyJ1aWQiOiJhbGljZSIsImV4cCI6MTcwMDAwMDAwMH0."
	    "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";
	static const char jwtq[] =
	    "room=general&token=eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9%2E"
	    "eyJ1aWQiOiJhbGljZSIsImV4cCI6MTcwMDAwMDAwMH0%2e"
	    "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV%5FadQssw5c&x=1";
	char out[256];
	size_t jn = sizeof(jwt) - 1;

	CHECK_EQ(http_query_get(mk("token=abc"), "token", out, sizeof(out)),
	    3);
	CHECK_MEM(out, "abc", 3);
	CHECK_EQ(http_query_get(mk("a=1&token=x.y.z&b=2"), "token", out,
	    sizeof(out)), 5);
	CHECK_MEM(out, "x.y.z", 5);
	CHECK_EQ(http_query_get(mk(jwtq), "token", out, sizeof(out)), jn);
	CHECK_MEM(out, jwt, jn);
	CHECK_EQ(http_query_get(mk(jwtq), "room", out, sizeof(out)), 7);
	CHECK_MEM(out, "general", 7);

	/* Absent: wrong name, a prefix or extension of it, other case. */
	CHECK_EQ(http_query_get(mk(""), "token", out, sizeof(out)), -1);
	CHECK_EQ(http_query_get(mk("tok=1"), "token", out, sizeof(out)), -1);
	CHECK_EQ(http_query_get(mk("tokenx=1"), "token", out, sizeof(out)),
	    -1);
	CHECK_EQ(http_query_get(mk("Token=1"), "token", out, sizeof(out)),
	    -1);
	CHECK_EQ(http_query_get(mk("a=token&&b"), "token", out, sizeof(out)),
	    -1);
	CHECK_EQ(http_query_get(mk("=token"), "token", out, sizeof(out)), -1);
	CHECK_EQ(http_query_get(mk("=x&a=1"), "", out, sizeof(out)), -1);

	/* Present: empty values, the first of two, after empty items. */
	CHECK_EQ(http_query_get(mk("token="), "token", out, sizeof(out)), 0);
	CHECK_EQ(http_query_get(mk("token"), "token", out, sizeof(out)), 0);
	CHECK_EQ(http_query_get(mk("&&token=a&"), "token", out, sizeof(out)),
	    1);
	CHECK_EQ(http_query_get(mk("token=a&token=b"), "token", out,
	    sizeof(out)), 1);
	CHECK_EQ(out[0], 'a');
	CHECK_EQ(http_query_get(mk("token=a=b"), "token", out, sizeof(out)),
	    3);
	CHECK_MEM(out, "a=b", 3);

	/* Decoding: %XX either case, '+' as a space, %2B as a '+'. */
	CHECK_EQ(http_query_get(mk("v=%41%62%2b%2B+%20"), "v", out,
	    sizeof(out)), 6);
	CHECK_MEM(out, "Ab++  ", 6);
	CHECK_EQ(http_query_get(mk("v=%e4%BD%A0"), "v", out, sizeof(out)), 3);
	CHECK_MEM(out, "\xe4\xbd\xa0", 3);
	CHECK_EQ(http_query_get(mk("v=%00"), "v", out, sizeof(out)), 1);
	CHECK_EQ(out[0], 0);

	/* Malformed escapes: -2, but only in the value asked for. */
	CHECK_EQ(http_query_get(mk("v=%G1"), "v", out, sizeof(out)), -2);
	CHECK_EQ(http_query_get(mk("v=%1G"), "v", out, sizeof(out)), -2);
	CHECK_EQ(http_query_get(mk("v=%4"), "v", out, sizeof(out)), -2);
	CHECK_EQ(http_query_get(mk("v=%4&x=1"), "v", out, sizeof(out)), -2);
	CHECK_EQ(http_query_get(mk("v=a%"), "v", out, sizeof(out)), -2);
	CHECK_EQ(http_query_get(mk("v=%%41"), "v", out, sizeof(out)), -2);
	CHECK_EQ(http_query_get(mk("x=%G&v=ok"), "v", out, sizeof(out)), 2);
	CHECK_EQ(http_query_get(mkg("v=%4"), "v", out, sizeof(out)), -2);
	CHECK_EQ(http_query_get(mkg("v=%"), "v", out, sizeof(out)), -2);
	CHECK_EQ(http_query_get(mkg("v=%41"), "v", out, sizeof(out)), 1);
	CHECK_EQ(http_query_get(mkg("x=1&v"), "v", out, sizeof(out)), 0);
	CHECK_EQ(http_query_get(mkg("x=1&vv"), "v", out, sizeof(out)), -1);

	/* Capacity: exactly the decoded length fits, one less does not. */
	memset(out, '#', sizeof(out));
	CHECK_EQ(http_query_get(mk("v=a%2Bc"), "v", out, 3), 3);
	CHECK_MEM(out, "a+c#", 4);
	memset(out, '#', sizeof(out));
	CHECK_EQ(http_query_get(mk("v=a%2Bc"), "v", out, 2), -2);
	CHECK_EQ(out[2], '#');
	CHECK_EQ(http_query_get(mk(jwtq), "token", out, jn), jn);
	CHECK_EQ(http_query_get(mk(jwtq), "token", out, jn - 1), -2);
	CHECK_EQ(http_query_get(mk("v="), "v", NULL, 0), 0);
	CHECK_EQ(http_query_get(mk("v=a"), "v", NULL, 0), -2);
}

/* The query the parser split off is what http_query_get reads. */
static void
test_parse_then_query(void)
{
	char out[64];

	CHECK_HEAD("GET /ws?token=a%2Eb.c HTTP/1.1\r\n\r\n");
	CHECK_EQ(http_query_get(R.query, "token", out, sizeof(out)), 5);
	CHECK_MEM(out, "a.b.c", 5);
	CHECK_HEAD("GET /ws HTTP/1.1\r\n\r\n");
	CHECK_EQ(http_query_get(R.query, "token", out, sizeof(out)), -1);
}

/* A list header counts with all its lines (RFC 9110 5.3). */
static void
test_header_lines(void)
{
	CHECK_HEAD("GET /ws HTTP/1.1\r\nSec-WebSocket-Protocol: foo\r\n"
	    "Connection: keep-alive\r\nSec-WebSocket-Protocol: vkws.json\r\n"
	    "connection: Upgrade\r\nOrigin: a\r\norigin: b\r\n\r\n");
	CHECK(http_header_has(&R, "Sec-WebSocket-Protocol", "vkws.json"));
	CHECK(http_header_has(&R, "Sec-WebSocket-Protocol", "foo"));
	CHECK(!http_header_has(&R, "Sec-WebSocket-Protocol", "bar"));
	CHECK(http_header_has(&R, "Connection", "upgrade"));
	CHECK(http_header_has(&R, "Connection", "keep-alive"));
	CHECK(!http_header_has(&R, "Upgrade", "websocket"));
	CHECK_EQ(http_header_count(&R, "Origin"), 2);
	CHECK_EQ(http_header_count(&R, "Sec-WebSocket-Protocol"), 2);
	CHECK_EQ(http_header_count(&R, "Host"), 0);
}

int
main(void)
{
	if (guard_init() != 0) {
		perror("guard page");
		return 1;
	}
	test_browser_upgrade();
	test_line_ends();
	test_values();
	test_targets();
	test_body_follows();
	test_malformed();
	test_too_many();
	test_long_value();
	test_str_ieq();
	test_list_has();
	test_header_lines();
	test_query_get();
	test_parse_then_query();
	CHECK_MAIN();
}
