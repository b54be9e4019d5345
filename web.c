/*
 * web.c: the built-in chat page of PROTOCOL.md 1 (GET /). The files of
 * web/ are compiled into the binary by web/embed.sh (web.h); this file
 * answers GET and HEAD for them with the headers a browser needs to run
 * the page safely (a Content-Security-Policy that allows no inline script
 * or style, nosniff) and to cache it (ETag, If-None-Match, 304). It reads
 * no files and allocates nothing: the page is const data, the response
 * head is written into one static buffer and queued through the core.
 */
#include <string.h>

#include "core.h"
#include "json.h"
#include "web.h"

/*
 * The policy of the page. It loads its script, style sheet and icon from
 * this server only and talks to /ws only. CSP 3 lets 'self' match ws:
 * and wss: on the page's own host; older browsers need the host named,
 * so connect-src adds ws://HOST and wss://HOST when Host is well formed.
 */
static const char csp_head[] = "Content-Security-Policy: "
    "default-src 'none'; script-src 'self'; style-src 'self'; "
    "img-src 'self'; connect-src 'self'";
static const char csp_tail[] = "; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'\r\n";

/* The asset served at path, or NULL. */
static const struct vkws_web_asset *
asset_find(struct http_str path)
{
	size_t i;

	for (i = 0; i < vkws_web_nassets; i++) {
		const char *p = vkws_web_assets[i].path;
		if (path.n == strlen(p) && memcmp(path.p, p, path.n) == 0)
			return &vkws_web_assets[i];
	}
	return NULL;
}

static int
method_is(struct http_str m, const char *lit)
{
	/* RFC 9110 9.1: the method token is case-sensitive. */
	return m.n == strlen(lit) && memcmp(m.p, lit, m.n) == 0;
}

/*
 * Whether the If-None-Match list v names etag. RFC 9110 13.1.2: "*"
 * matches any current representation, and the comparison is weak, so a
 * W/ prefix is ignored. An entity tag may hold a comma, so the list is
 * walked tag by tag rather than split at commas.
 */
static int
etag_listed(struct http_str v, const char *etag)
{
	size_t en = strlen(etag), i = 0, end;

	while (i < v.n) {
		if (v.p[i] == ' ' || v.p[i] == '\t' || v.p[i] == ',') {
			i++;
			continue;
		}
		if (v.p[i] == '*')
			return 1;
		if (v.n - i >= 2 && v.p[i] == 'W' && v.p[i + 1] == '/')
			i += 2;
		if (i >= v.n || v.p[i] != '"')
			return 0;	/* malformed: serve the page */
		for (end = i + 1; end < v.n && v.p[end] != '"'; end++)
			;
		if (end >= v.n)
			return 0;
		if (end + 1 - i == en && memcmp(v.p + i, etag, en) == 0)
			return 1;
		i = end + 1;
	}
	return 0;
}

/* Whether Host is a plain host[:port] that may be written into the
 * policy: letters, digits, '.', '-', ':' and the brackets of an IPv6
 * literal, nothing that could end a source expression. */
static int
host_ok(const struct http_header *h)
{
	size_t i;

	if (h == NULL || h->value.n == 0 || h->value.n > VKWS_WEB_HOST_MAX)
		return 0;
	for (i = 0; i < h->value.n; i++) {
		char ch = h->value.p[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		    (ch >= '0' && ch <= '9') || ch == '.' || ch == '-' ||
		    ch == ':' || ch == '[' || ch == ']'))
			return 0;
	}
	return 1;
}

/* The head of a 200 (GET, HEAD) or 304 for a, into o. */
static void
head_write(struct json_out *o, const struct vkws_web_asset *a,
    const struct http_req *r, int status, int keep)
{
	const struct http_header *host = http_header_get(r, "Host");

	json_out_lit(o, status == 304 ? "HTTP/1.1 304 Not Modified\r\n" :
	    "HTTP/1.1 200 OK\r\n");
	json_out_lit(o, "Server: vkws\r\n");
	/* RFC 9110 8.6: a 304 carries no Content-Length unless it equals
	 * that of the 200; leave it out. */
	if (status != 304) {
		json_out_lit(o, "Content-Length: ");
		json_out_uint(o, a->len);
		json_out_lit(o, "\r\nContent-Type: ");
		json_out_lit(o, a->type);
		json_out_lit(o, "\r\n");
	}
	/* RFC 9110 15.4.5: a 304 sends the ETag and Cache-Control a 200
	 * would. no-cache: the URLs carry no version, so the browser asks
	 * again each time and gets a 304 while the binary is the same. */
	json_out_lit(o, "ETag: ");
	json_out_lit(o, a->etag);
	json_out_lit(o, "\r\nCache-Control: no-cache\r\n"
	    "X-Content-Type-Options: nosniff\r\n"
	    "Referrer-Policy: no-referrer\r\n"
	    "X-Frame-Options: DENY\r\n");
	json_out_lit(o, csp_head);
	if (host_ok(host)) {
		json_out_lit(o, " ws://");
		json_out_raw(o, host->value.p, host->value.n);
		json_out_lit(o, " wss://");
		json_out_raw(o, host->value.p, host->value.n);
	}
	json_out_lit(o, csp_tail);
	if (!keep)
		json_out_lit(o, "Connection: close\r\n");
	json_out_lit(o, "\r\n");
}

/*
 * Serve the page file r names. Returns whether the connection stays open
 * for another request (1 or 0), or VKWS_ENOTFOUND, with nothing queued,
 * when r's path is no file of the page.
 */
int
vkws_page_serve(struct conn *c, const struct http_req *r, int keep)
{
	static char head[VKWS_WEB_HEAD_MAX];
	const struct vkws_web_asset *a = asset_find(r->path);
	const struct http_header *inm;
	struct json_out o;
	int is_head, status = 200;
	size_t body;

	if (a == NULL)
		return VKWS_ENOTFOUND;
	is_head = method_is(r->method, "HEAD");
	if (!is_head && !method_is(r->method, "GET")) {
		vkws_http_reply(c, 405, "Allow: GET, HEAD\r\n",
		    "text/plain; charset=utf-8", "Method Not Allowed", 18, 0);
		return 0;
	}
	/* RFC 9110 13.1.2: If-None-Match on GET or HEAD that matches is
	 * answered 304 Not Modified. */
	inm = http_header_get(r, "If-None-Match");
	if (inm != NULL && etag_listed(inm->value, a->etag))
		status = 304;
	json_out_init(&o, head, sizeof(head));
	head_write(&o, a, r, status, keep);
	/* RFC 9110 9.3.2: HEAD gets the headers of GET without the body. */
	body = status == 200 && !is_head ? a->len : 0;
	if (!json_out_ok(&o) || o.n + body > vkws_tx_free(c)) {
		vkws_log("page %s does not fit the send queue", a->path);
		vkws_linger(c);
		return 0;
	}
	(void)vkws_tx_raw(c, head, o.n);
	if (body > 0)
		(void)vkws_tx_raw(c, a->body, body);
	if (!keep) {
		vkws_linger(c);
		return 0;
	}
	return 1;
}
