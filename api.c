/*
 * api.c: HTTP beside the WebSocket endpoints: /healthz, and the routing
 * of every other path. It reaches sockets only through the core's queue
 * functions (core.h). No allocation.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "core.h"
#include "json.h"

static struct vkws_config *cfg;

int
vkws_api_init(struct vkws_config *c)
{
	cfg = c;
	return vkws_chat_init(c);
}

void
vkws_api_stop(void)
{
}

size_t
vkws_api_static_size(void)
{
	return 0;
}

void
vkws_addr_set(struct conn *c, const struct sockaddr_storage *ss)
{
	char a[INET6_ADDRSTRLEN];
	unsigned port = 0;

	memset(c->ip, 0, sizeof(c->ip));
	a[0] = '\0';
	if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;
		memcpy(c->ip, &s6->sin6_addr, 16);
		inet_ntop(AF_INET6, &s6->sin6_addr, a, sizeof(a));
		port = ntohs(s6->sin6_port);
		snprintf(c->addr, sizeof(c->addr), "[%s]:%u", a, port);
	} else if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)ss;
		c->ip[10] = c->ip[11] = 0xFF;
		memcpy(c->ip + 12, &s4->sin_addr, 4);
		inet_ntop(AF_INET, &s4->sin_addr, a, sizeof(a));
		port = ntohs(s4->sin_port);
		snprintf(c->addr, sizeof(c->addr), "%s:%u", a, port);
	}
}

/* Paths served here and the one method each accepts. */
static const struct route {
	const char *path;
	const char *method;
} routes[] = {
	{ "/healthz", "GET" },
};

int
vkws_http_other(struct conn *c, const struct http_req *r,
    const uint8_t *body, size_t avail, size_t *used)
{
	static const char ok[] = "ok";
	const struct http_header *h = http_header_get(r, "Connection");
	int keep = r->minor >= 1 && !(h && http_list_has(h->value, "close"));
	size_t i;

	(void)body;
	(void)avail;
	*used = 0;
	vkws_count.http_requests++;
	for (i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
		const char *p = routes[i].path;
		if (r->path.n != strlen(p) || memcmp(r->path.p, p,
		    r->path.n) != 0)
			continue;
		if (r->method.n != strlen(routes[i].method) ||
		    memcmp(r->method.p, routes[i].method, r->method.n) != 0) {
			vkws_http_reply(c, 405, "Allow: GET\r\n", "text/plain",
			    "Method Not Allowed", 18, 0);
			return 0;
		}
		vkws_http_reply(c, 200, "Cache-Control: no-store\r\n",
		    "text/plain; charset=utf-8", ok, 2, keep);
		return keep;
	}
	vkws_http_reply(c, 404, NULL, "text/plain; charset=utf-8",
	    "Not Found", 9, keep);
	return keep;
}

void
vkws_after_pass(void)
{
	vkws_store_sync();
}

void
vkws_reload(void)
{
}

void
vkws_count_close(uint16_t code)
{
	static const uint16_t codes[8] = { 1000, 1001, 1002, 1007, 1008,
	    1009, 1013, 4001 };
	size_t i;

	for (i = 0; i < 8; i++)
		if (codes[i] == code)
			vkws_count.closes[i]++;
}
