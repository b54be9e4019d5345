/*
 * test_loopback.c: the /api loopback check (PROTOCOL.md 4) with peers
 * off loopback, which no integration test on 127.0.0.1 can be (issue 18).
 * Each address is stored as the core stores a peer (struct conn ip: an
 * IPv4 peer as ::ffff:a.b.c.d, an IPv6 one as is), then
 * vkws_is_loopback() decides; an IPv6 peer that is itself mapped
 * (::ffff:127.0.0.1, a dual-stack listener's IPv4 client) must be judged
 * like the IPv4 address. tests/test_api_remote.py checks the whole path
 * from real sockets in a network namespace.
 */
#include <arpa/inet.h>
#include <stdint.h>
#include <string.h>

#include "core.h"
#include "check.h"

/* vkws_is_loopback() of a peer at text address a (IPv4 or IPv6). */
static int
peer(const char *a)
{
	uint8_t ip[16];

	memset(ip, 0, sizeof(ip));
	if (inet_pton(AF_INET, a, ip + 12) == 1)
		ip[10] = ip[11] = 0xFF;
	else if (inet_pton(AF_INET6, a, ip) != 1)
		return -1;
	return vkws_is_loopback(ip);
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

	CHECK_MAIN();
}
