/*
 * test_admit.c: the address and user table of admit.c (PROTOCOL.md 8):
 * connection counts per address, reconnect buckets per address and per
 * user, one past each burst, and a full table failing open.
 */
#include <string.h>

#include "check.h"
#include "core.h"

static struct vkws_config cfg;

static void
ip_of(uint8_t ip[16], unsigned n)
{
	memset(ip, 0, 16);
	ip[10] = ip[11] = 0xFF;
	ip[12] = 10;
	ip[13] = (uint8_t)(n >> 16);
	ip[14] = (uint8_t)(n >> 8);
	ip[15] = (uint8_t)n;
}

/* Connections of one address are counted up and down; another address
 * has its own count. */
static void
test_counts(void)
{
	uint8_t a[16], b[16];
	uint16_t ka[5], kb;
	unsigned before, i;

	ip_of(a, 1);
	ip_of(b, 2);
	for (i = 0; i < 5; i++) {
		ka[i] = vkws_admit_addr_add(a, &before);
		CHECK(ka[i] != VKWS_NO_SLOT);
		CHECK_EQ(ka[i], ka[0]);
		CHECK_EQ(before, i);
	}
	kb = vkws_admit_addr_add(b, &before);
	CHECK(kb != VKWS_NO_SLOT && kb != ka[0]);
	CHECK_EQ(before, 0);
	for (i = 0; i < 5; i++)
		vkws_admit_addr_del(ka[i]);
	vkws_admit_addr_del(kb);
	(void)vkws_admit_addr_add(a, &before);
	CHECK_EQ(before, 0);
	vkws_admit_addr_del(ka[0]);
	/* Untracked connections are not counted down. */
	vkws_admit_addr_del(VKWS_NO_SLOT);
}

/* The burst passes, one more is refused; another key is not touched. */
static void
test_buckets(void)
{
	uint8_t a[16], b[16];
	uint16_t ka, kb;
	unsigned before, i;

	cfg.reconnect_rate = 1;
	cfg.reconnect_burst = 20;
	ip_of(a, 100);
	ip_of(b, 101);
	ka = vkws_admit_addr_add(a, &before);
	kb = vkws_admit_addr_add(b, &before);
	for (i = 0; i < 20; i++)
		CHECK_EQ(vkws_admit_addr_upgrade(ka), 0);
	CHECK_EQ(vkws_admit_addr_upgrade(ka), -1);
	CHECK_EQ(vkws_admit_addr_upgrade(kb), 0);
	for (i = 0; i < 20; i++)
		CHECK_EQ(vkws_admit_user("alice", 5), 0);
	CHECK_EQ(vkws_admit_user("alice", 5), -1);
	CHECK_EQ(vkws_admit_user("alicf", 5), 0);
	CHECK_EQ(vkws_admit_user("alice2", 6), 0);
	/* Off: never refused. */
	cfg.reconnect_rate = 0;
	CHECK_EQ(vkws_admit_user("alice", 5), 0);
	CHECK_EQ(vkws_admit_addr_upgrade(ka), 0);
	vkws_admit_addr_del(ka);
	vkws_admit_addr_del(kb);
}

/*
 * More addresses holding connections than the table has entries: some
 * are not tracked (VKWS_NO_SLOT: let through, never refused), those
 * tracked are counted right, and once they close their entries serve
 * new addresses again.
 */
static uint16_t keys[2 * VKWS_ADDR_TABLE];

static void
test_full_table_fails_open(void)
{
	unsigned before, i, untracked = 0, tracked = 0;
	uint8_t ip[16];

	cfg.reconnect_rate = 0;
	for (i = 0; i < 2 * VKWS_ADDR_TABLE; i++) {
		ip_of(ip, 1000 + i);
		keys[i] = vkws_admit_addr_add(ip, &before);
		if (keys[i] == VKWS_NO_SLOT)
			untracked++;
		else {
			tracked++;
			CHECK_EQ(before, 0);
		}
	}
	CHECK(untracked >= VKWS_ADDR_TABLE);
	CHECK(tracked > VKWS_ADDR_TABLE / 2);
	for (i = 0; i < 2 * VKWS_ADDR_TABLE; i++)
		vkws_admit_addr_del(keys[i]);
	ip_of(ip, 5);
	CHECK(vkws_admit_addr_add(ip, &before) != VKWS_NO_SLOT);
	CHECK_EQ(before, 0);
}

int
main(void)
{
	vkws_config_default(&cfg);
	cfg.max_per_ip = 64;
	vkws_admit_init(&cfg);
	test_counts();
	test_buckets();
	test_full_table_fails_open();
	CHECK_MAIN();
}
