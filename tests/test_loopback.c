/*
 * test_loopback.c: the /api loopback check (PROTOCOL.md 4) with peers
 * off loopback, which no integration test on 127.0.0.1 can be (issue 18).
 * Each address goes through vkws_addr_set() as the kernel gives it
 * (sockaddr_in or sockaddr_in6), then vkws_is_loopback() decides; the
 * mapped form ::ffff:a.b.c.d must be judged like the IPv4 address.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "core.h"
#include "check.h"

static struct conn c;

/* vkws_is_loopback() of a peer at text address a (IPv4 or IPv6). */
static int
peer(const char *a)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

	memset(&ss, 0, sizeof(ss));
	memset(&c, 0xAB, sizeof(c));
	if (inet_pton(AF_INET, a, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons(40000);
	} else if (inet_pton(AF_INET6, a, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(40000);
	} else {
		return -1;
	}
	vkws_addr_set(&c, &ss);
	return vkws_is_loopback(c.ip);
}

int
main(void)
{
	/* On loopback: /api answers. */
	CHECK_EQ(peer("127.0.0.1"), 1);
	CHECK_EQ(peer("127.255.0.9"), 1);
	CHECK_EQ(peer("::1"), 1);
	CHECK_EQ(peer("::ffff:127.0.0.1"), 1);
	CHECK_EQ(peer("::ffff:127.1.2.3"), 1);

	/* Off loopback: 403 without --api-remote. */
	CHECK_EQ(peer("10.0.0.1"), 0);
	CHECK_EQ(peer("::ffff:10.0.0.1"), 0);
	CHECK_EQ(peer("fe80::1"), 0);
	CHECK_EQ(peer("192.168.1.1"), 0);
	CHECK_EQ(peer("0.0.0.0"), 0);
	CHECK_EQ(peer("128.0.0.1"), 0);
	CHECK_EQ(peer("126.0.0.1"), 0);
	CHECK_EQ(peer("::"), 0);
	CHECK_EQ(peer("::2"), 0);
	CHECK_EQ(peer("1::1"), 0);
	CHECK_EQ(peer("::127.0.0.1"), 0);	/* IPv4-compatible, deprecated */
	CHECK_EQ(peer("::fffe:127.0.0.1"), 0);
	CHECK_EQ(peer("64:ff9b::127.0.0.1"), 0);	/* NAT64, not local */
	CHECK_EQ(peer("2001:db8::1"), 0);

	/* The peer text the server logs is the address it judged. */
	CHECK_EQ(peer("10.0.0.1"), 0);
	CHECK(strcmp(c.addr, "10.0.0.1:40000") == 0);
	CHECK_EQ(peer("::1"), 1);
	CHECK(strcmp(c.addr, "[::1]:40000") == 0);
	CHECK_MAIN();
}
