/*
 * admit.c: the per-address and per-user accounting of PROTOCOL.md 8:
 * how many connections each peer address holds (--max-per-ip), and a
 * token bucket of upgrades per address and per user (--reconnect-rate).
 * One static open-addressing table of VKWS_ADDR_TABLE entries, keyed by
 * the address (IPv4 as IPv4-mapped IPv6) or by a 128-bit keyed hash of a
 * uid, and looked up within VKWS_ADDR_PROBES entries: every operation is
 * O(1). The hash key is random per process, so a peer cannot choose
 * addresses that crowd one window. When a window is full anyway the key
 * is not tracked and is let through: this file may fail open, never shut
 * a peer out because of others. No I/O but one read of /dev/urandom at
 * start, no allocation, no sockets.
 */
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "core.h"

enum { E_FREE = 0, E_ADDR, E_USER };

struct ent {
	uint8_t key[16];
	int64_t t;		/* last refill of the bucket (monotonic ms) */
	int32_t tokens;		/* upgrades left, in thousandths */
	uint16_t conns;		/* open connections (addresses only) */
	uint8_t kind;		/* E_*; E_FREE entries were never used */
};

static struct ent tab[VKWS_ADDR_TABLE];
static uint64_t hkey[2];
static struct vkws_config *cfg;

void
vkws_admit_init(struct vkws_config *c)
{
	int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);

	cfg = c;
	if (fd < 0 || read(fd, hkey, sizeof(hkey)) != (ssize_t)sizeof(hkey)) {
		/* Weaker, but the table works: only crowding gets easier. */
		hkey[0] = (uint64_t)vkws_now_ms() ^ 0x9E3779B97F4A7C15ULL;
		hkey[1] = (uint64_t)(uint32_t)getpid() * 0xBF58476D1CE4E5B9ULL;
	}
	if (fd >= 0)
		close(fd);
}

size_t
vkws_admit_static_size(void)
{
	return sizeof(tab);
}

/* A 64-bit mix of n bytes under seed (splitmix64 finaliser per word). */
static uint64_t
mix(uint64_t seed, const uint8_t *p, size_t n)
{
	uint64_t h = seed ^ (uint64_t)n;
	size_t i;

	for (i = 0; i < n; i++) {
		h ^= p[i];
		h *= 0x100000001B3ULL;
		if ((i & 7) == 7 || i + 1 == n) {
			h ^= h >> 30;
			h *= 0xBF58476D1CE4E5B9ULL;
			h ^= h >> 27;
			h *= 0x94D049BB133111EBULL;
			h ^= h >> 31;
		}
	}
	return h;
}

/* Whether e may be taken by another key: it holds no connection and its
 * bucket is full again, so forgetting it changes nothing. */
static int
reusable(const struct ent *e, int64_t now)
{
	int64_t full = (int64_t)cfg->reconnect_burst * 1000;

	if (e->conns > 0)
		return 0;
	if (cfg->reconnect_rate == 0)
		return 1;
	return e->tokens + (now - e->t) * (int64_t)cfg->reconnect_rate >= full;
}

/* The entry of (kind, key), made if need be; VKWS_NO_SLOT if its window
 * has no room (the key goes untracked). */
static uint16_t
lookup(uint8_t kind, const uint8_t key[16], int64_t now)
{
	size_t h = (size_t)mix(hkey[0] + kind, key, 16), i, at = SIZE_MAX;
	struct ent *e;

	for (i = 0; i < VKWS_ADDR_PROBES; i++) {
		size_t k = (h + i) & (VKWS_ADDR_TABLE - 1);

		e = &tab[k];
		if (e->kind == E_FREE) {
			/* Keys are placed at the first free or reusable
			 * entry, so none lies past a never-used one. */
			if (at == SIZE_MAX)
				at = k;
			break;
		}
		if (e->kind == kind && memcmp(e->key, key, 16) == 0)
			return (uint16_t)k;
		if (at == SIZE_MAX && reusable(e, now))
			at = k;
	}
	if (at == SIZE_MAX)
		return VKWS_NO_SLOT;
	e = &tab[at];
	memcpy(e->key, key, 16);
	e->kind = kind;
	e->conns = 0;
	e->tokens = (int32_t)cfg->reconnect_burst * 1000;
	e->t = now;
	return (uint16_t)at;
}

/* Take one upgrade from e's bucket: 0, or -1 if it is empty. */
static int
bucket_take(struct ent *e, int64_t now)
{
	int64_t max = (int64_t)cfg->reconnect_burst * 1000;
	int64_t t = e->tokens + (now - e->t) * (int64_t)cfg->reconnect_rate;

	if (cfg->reconnect_rate == 0)
		return 0;
	e->t = now;
	e->tokens = (int32_t)(t > max ? max : t);
	if (e->tokens < 1000)
		return -1;
	e->tokens -= 1000;
	return 0;
}

uint16_t
vkws_admit_addr_add(const uint8_t ip[16], unsigned *before)
{
	uint16_t k;

	*before = 0;
	if (cfg->max_per_ip == 0 && cfg->reconnect_rate == 0)
		return VKWS_NO_SLOT;
	k = lookup(E_ADDR, ip, vkws_now_ms());
	if (k == VKWS_NO_SLOT)
		return k;
	*before = tab[k].conns;
	if (tab[k].conns < UINT16_MAX)
		tab[k].conns++;
	return k;
}

void
vkws_admit_addr_del(uint16_t k)
{
	if (k < VKWS_ADDR_TABLE && tab[k].conns > 0)
		tab[k].conns--;
}

int
vkws_admit_addr_upgrade(uint16_t k)
{
	if (k >= VKWS_ADDR_TABLE || cfg->reconnect_rate == 0)
		return 0;
	return bucket_take(&tab[k], vkws_now_ms());
}

int
vkws_admit_user(const char *uid, size_t n)
{
	uint8_t key[16];
	uint64_t a, b;
	int64_t now;
	uint16_t k;

	if (cfg->reconnect_rate == 0)
		return 0;
	a = mix(hkey[1], (const uint8_t *)uid, n);
	b = mix(hkey[1] ^ 0x5851F42D4C957F2DULL, (const uint8_t *)uid, n);
	memcpy(key, &a, 8);
	memcpy(key + 8, &b, 8);
	now = vkws_now_ms();
	if ((k = lookup(E_USER, key, now)) == VKWS_NO_SLOT)
		return 0;
	return bucket_take(&tab[k], now);
}
