/*
 * wsload.c: the load generator of vkws's bench. One thread, one epoll
 * loop, many client connections to a server on the loopback address.
 * Modes:
 *
 *   echo     C connections to /echo, K binary messages of S bytes in flight
 *            on each; round-trip time from a timestamp in the payload.
 *   tcp      the same over raw TCP, each message a 4-byte big-endian
 *            length and the payload (for bench/peers/tcp_echo).
 *   fanout   C subscribers join a room on /ws; one publisher sends chat
 *            messages, W in flight (or R per second); delivery latency
 *            from a timestamp in the content.
 *   idle     hold C connections open on /echo; the server's VmRSS growth
 *            per connection, from when the first tenth (at most
 *            IDLE_WARM) is open to when all are: what one more costs,
 *            without the code and buffers the first ones bring in.
 *   connect  C workers, each in a loop: connect, upgrade (and wait for the
 *            auth reply on /ws), close; connections per second.
 *
 * With --pid, the server's CPU time (utime + stime) over the measured
 * window is reported per message (per delivery in fanout, per connection
 * in idle and connect). Every run prints one summary line on stdout.
 *
 * This is a test tool, not the server: it allocates with malloc, uses
 * epoll and links BearSSL for SHA-1 (the upgrade check) and HMAC-SHA256
 * (tokens). Every loop is bounded in count and time, and it refuses any
 * address outside 127.0.0.0/8.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <bearssl.h>

/* ---- Limits --------------------------------------------------------- */

#define MAX_CONNS 100000	/* --conns ceiling */
#define MAX_DURATION 600.0	/* seconds, --duration and --warmup ceiling */
#define MAX_SIZE (16u << 20)	/* largest message we send (bytes) */
#define MAX_FRAME (64u << 20)	/* largest server frame we accept (bytes) */
#define SETUP_TIMEOUT_NS (30 * NS)	/* all connections open and joined */
#define SETTLE_QUIET_NS (300 * MS)	/* fanout: quiet this long after joins */
#define SETTLE_MAX_NS (15 * NS)		/* ... but no longer than this */
#define DRAIN_NS (2 * NS)	/* wait for in-flight replies after the run */
#define CLOSE_WAIT_NS (1 * NS)	/* wait for the server's close */
#define IDLE_SETTLE_NS (1 * NS)	/* idle: settle before reading VmRSS */
#define IDLE_WARM 64		/* idle: open before the first VmRSS */
#define AUTH_WAIT_NS (3 * NS)	/* connect: wait for the auth reply */
#define FANOUT_RING 65536u	/* fanout: messages tracked in flight */
#define JOIN_WINDOW 8		/* fanout: joins awaiting their ack */
#define READ_CHUNK 65536u	/* bytes per read() */
#define READS_PER_EVENT 8	/* reads per readiness event */
#define MAX_EVENTS 512		/* epoll events per wait */
#define MAX_LOOPS 2000000000ull	/* loop passes, a last-resort bound */

#define NS 1000000000ull
#define MS 1000000ull

enum mode { M_ECHO, M_TCP, M_FANOUT, M_IDLE, M_CONNECT };
static const char *const mode_names[] = { "echo", "tcp", "fanout", "idle",
    "connect" };

enum phase { P_SETUP, P_SETTLE, P_WARMUP, P_RUN, P_DRAIN, P_DONE };

enum cstate { C_FREE, C_CONNECTING, C_HANDSHAKE, C_OPEN, C_CLOSING };

enum role { R_DATA, R_SUB, R_PUB };

struct conn {
	int fd;
	enum cstate st;
	enum role role;
	int id;
	int out_armed;		/* EPOLLOUT registered */
	int joined;
	int authed;
	uint8_t *rx;
	size_t rxlen, rxcap;
	uint8_t *tx;
	size_t txoff, txlen, txcap;
	uint8_t *frag;		/* a fragmented message being rebuilt */
	size_t fraglen, fragcap;
	int fragop;
	char key[32];		/* Sec-WebSocket-Key sent */
	uint64_t t_start;	/* connect() time */
	uint64_t t_close;	/* close frame sent */
	int inflight;
};

struct hist {
	uint64_t n;
	uint64_t b[128 + 64 * 57];
};

static struct {
	enum mode mode;
	char host[64];
	int port;
	const char *path;
	int nconns;
	int inflight;
	size_t size;
	double duration, warmup;
	int pid;
	int port2, pid2;	/* fanout: a second node (cluster bench) */
	const char *secret;
	const char *room;
	int window;
	double rate;
	int batch;
	int verbose;

	int ep;
	struct conn *c;		/* nconns entries, + 1 publisher in fanout */
	int ntotal;
	struct sockaddr_in sa, sa2;
	enum phase phase;
	uint64_t t_begin, t_phase, t_meas, t_end, t_last_rx, t_next_pub;
	uint64_t t_progress;	/* last time a connection opened or died */
	uint64_t maxmsgs;	/* --count: end the run after this many */
	int cpu_ok;		/* cpu0 was read at the start of the window */
	int64_t cpu0, cpu1;	/* server CPU ticks at t_meas and t_end */
	int idle_open;		/* idle: connections open when RSS was read */
	int idle_warm;		/* ... and at the first read (-1: not yet) */
	uint64_t self0, self1;	/* our own CPU (us) at t_meas and t_end */
	long rss0, rss1;	/* server VmRSS (KiB) */

	int nopen, nstarted, nrefused, nfailed, njoined, nactive, nstalled;
	int join_next, joins_out;	/* fanout: next to join, joins unacked */
	uint64_t msgs, bytes, errors, refused, deliveries, sent, done;
	uint64_t pubseq;
	uint16_t *ring;		/* fanout: deliveries per message, by seq */
	uint8_t *payload;	/* echo: a message body template */
	char **tokens;
	struct hist h;
	uint64_t rng;
	const char *fatal;	/* reason the run stopped early */
	int unsupported;	/* the server lacks what this mode needs */
} g;

static volatile sig_atomic_t g_stop;

/* ---- Small helpers --------------------------------------------------- */

static uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * NS + (uint64_t)ts.tv_nsec;
}

static uint64_t
rnd(void)
{
	/* xorshift64*: masks need to be unpredictable to a proxy, not to an
	 * attacker; RFC 6455 5.3 asks for a fresh mask per frame. */
	g.rng ^= g.rng >> 12;
	g.rng ^= g.rng << 25;
	g.rng ^= g.rng >> 27;
	return g.rng * 2685821657736338717ull;
}

static void *
xrealloc(void *p, size_t n)
{
	p = realloc(p, n);
	if (p == NULL) {
		fprintf(stderr, "wsload: out of memory\n");
		exit(1);
	}
	return p;
}

static void
hist_add(struct hist *h, uint64_t v)
{
	unsigned i;

	if (v < 128) {
		i = (unsigned)v;
	} else {
		unsigned msb = 63u - (unsigned)__builtin_clzll(v);
		unsigned shift = msb - 6u;	/* v >> shift in [64, 127] */
		i = 128u + (shift - 1u) * 64u + (unsigned)((v >> shift) - 64u);
	}
	h->b[i]++;
	h->n++;
}

/* The value (ns) at quantile q, the middle of its bucket (< 1% error). */
static double
hist_q(const struct hist *h, double q)
{
	uint64_t want, acc = 0;
	unsigned i;

	if (h->n == 0)
		return 0;
	want = (uint64_t)(q * (double)h->n);
	if (want >= h->n)
		want = h->n - 1;
	for (i = 0; i < sizeof h->b / sizeof h->b[0]; i++) {
		acc += h->b[i];
		if (acc > want)
			break;
	}
	if (i < 128)
		return i;
	{
		unsigned shift = (i - 128u) / 64u + 1u;
		uint64_t m = (i - 128u) % 64u + 64u;
		return (double)(m << shift) + (double)(1ull << shift) / 2;
	}
}

static size_t
b64(char *out, const uint8_t *in, size_t n, int url)
{
	static const char std[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	static const char urls[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	const char *t = url ? urls : std;
	size_t i, o = 0;

	for (i = 0; i + 2 < n; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 |
		    in[i + 2];
		out[o++] = t[v >> 18 & 63];
		out[o++] = t[v >> 12 & 63];
		out[o++] = t[v >> 6 & 63];
		out[o++] = t[v & 63];
	}
	if (n - i == 1) {
		uint32_t v = (uint32_t)in[i] << 16;
		out[o++] = t[v >> 18 & 63];
		out[o++] = t[v >> 12 & 63];
		if (!url) {
			out[o++] = '=';
			out[o++] = '=';
		}
	} else if (n - i == 2) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
		out[o++] = t[v >> 18 & 63];
		out[o++] = t[v >> 12 & 63];
		out[o++] = t[v >> 6 & 63];
		if (!url)
			out[o++] = '=';
	}
	out[o] = '\0';
	return o;
}

/* An HS256 JWT with claim uid, signed with the secret. */
static char *
mint_token(const char *secret, const char *uid)
{
	static const char hdr[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
	char payload[160], *tok;
	size_t n, hn, pn;
	br_hmac_key_context kc;
	br_hmac_context hc;
	uint8_t mac[32];

	snprintf(payload, sizeof payload, "{\"uid\":\"%s\"}", uid);
	hn = strlen(hdr);
	pn = strlen(payload);
	tok = xrealloc(NULL, (hn + pn + 32) * 2 + 8);
	n = b64(tok, (const uint8_t *)hdr, hn, 1);
	tok[n++] = '.';
	n += b64(tok + n, (const uint8_t *)payload, pn, 1);
	br_hmac_key_init(&kc, &br_sha256_vtable, secret, strlen(secret));
	br_hmac_init(&hc, &kc, 0);
	br_hmac_update(&hc, tok, n);
	br_hmac_out(&hc, mac);
	tok[n++] = '.';
	b64(tok + n, mac, sizeof mac, 1);
	return tok;
}

static int64_t proc_cpu1(int pid);

/* utime + stime of the server (both nodes with --pid2), in clock ticks;
 * -1 if unreadable. */
static int64_t
proc_cpu(int pid)
{
	int64_t a = proc_cpu1(pid), b;

	if (a < 0 || pid != g.pid || g.pid2 <= 0)
		return a;
	b = proc_cpu1(g.pid2);
	return b < 0 ? -1 : a + b;
}

/* utime + stime of a process, in clock ticks; -1 if unreadable. */
static int64_t
proc_cpu1(int pid)
{
	char path[64], buf[1024], *p;
	unsigned long long ut = 0, st = 0;
	ssize_t n;
	int fd, i;

	if (pid <= 0)
		return -1;
	snprintf(path, sizeof path, "/proc/%d/stat", pid);
	if ((fd = open(path, O_RDONLY)) < 0)
		return -1;
	n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	/* The command name may hold spaces: count fields after its ')'. */
	if ((p = strrchr(buf, ')')) == NULL)
		return -1;
	p++;
	for (i = 3; i < 14 && p != NULL; i++)
		p = strchr(p + 1, ' ');
	if (p == NULL || sscanf(p, " %llu %llu", &ut, &st) != 2)
		return -1;
	return (int64_t)(ut + st);
}

/* This process's CPU time (user + system), in microseconds. */
static uint64_t
self_cpu_us(void)
{
	struct rusage ru;

	if (getrusage(RUSAGE_SELF, &ru) != 0)
		return 0;
	return (uint64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000u +
	    (uint64_t)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

/* VmRSS of a process in KiB; -1 if unreadable. */
static long
proc_rss(int pid)
{
	char path[64], line[256];
	long kib = -1;
	FILE *f;

	if (pid <= 0)
		return -1;
	snprintf(path, sizeof path, "/proc/%d/status", pid);
	if ((f = fopen(path, "r")) == NULL)
		return -1;
	while (fgets(line, sizeof line, f) != NULL)
		if (sscanf(line, "VmRSS: %ld", &kib) == 1)
			break;
	fclose(f);
	return kib;
}

/* ---- Connections ----------------------------------------------------- */

static void
arm(struct conn *c, int out)
{
	struct epoll_event ev;

	if (c->out_armed == out)
		return;
	ev.events = EPOLLIN | (out ? EPOLLOUT : 0u);
	ev.data.ptr = c;
	epoll_ctl(g.ep, EPOLL_CTL_MOD, c->fd, &ev);
	c->out_armed = out;
}

static void on_dead(struct conn *c);

static void
conn_drop(struct conn *c)
{
	if (c->st == C_FREE)
		return;
	epoll_ctl(g.ep, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	c->fd = -1;
	if (c->st == C_OPEN || c->st == C_CLOSING)
		g.nopen--;
	c->st = C_FREE;
	c->rxlen = c->txlen = c->txoff = c->fraglen = 0;
	c->inflight = 0;
	c->joined = c->authed = 0;
	g.nactive--;
	g.t_progress = now_ns();
	if (g.mode == M_FANOUT && g.phase < P_DRAIN && g.fatal == NULL)
		g.fatal = "a subscriber or the publisher was closed";
	on_dead(c);
}

/* Close without TIME_WAIT on our side: the server may not have closed. */
static void
conn_abort(struct conn *c)
{
	struct linger lg = { 1, 0 };

	if (c->st != C_FREE)
		setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
	conn_drop(c);
}

static void
tx_reserve(struct conn *c, size_t n)
{
	if (c->txoff > 0 && c->txoff == c->txlen)
		c->txoff = c->txlen = 0;
	if (c->txlen + n > c->txcap) {
		if (c->txoff > 0) {
			memmove(c->tx, c->tx + c->txoff, c->txlen - c->txoff);
			c->txlen -= c->txoff;
			c->txoff = 0;
		}
		if (c->txlen + n > c->txcap) {
			c->txcap = (c->txlen + n) * 2;
			c->tx = xrealloc(c->tx, c->txcap);
		}
	}
}

static void
tx_put(struct conn *c, const void *p, size_t n)
{
	tx_reserve(c, n);
	memcpy(c->tx + c->txlen, p, n);
	c->txlen += n;
}

/* Write what is queued; arm EPOLLOUT if the socket is full. */
static int
conn_flush(struct conn *c)
{
	while (c->txoff < c->txlen) {
		ssize_t n = write(c->fd, c->tx + c->txoff, c->txlen - c->txoff);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN) {
				arm(c, 1);
				return 0;
			}
			return -1;
		}
		c->txoff += (size_t)n;
	}
	c->txoff = c->txlen = 0;
	arm(c, 0);
	return 0;
}

/* Queue one masked client frame: RFC 6455 5.3, every client frame is
 * masked, with a fresh key. The payload is copied and masked here. */
static void
ws_send(struct conn *c, int op, const void *p, size_t n)
{
	uint8_t h[14], *d;
	size_t hn = 0, i;
	uint32_t m = (uint32_t)rnd();
	uint8_t mk[4];

	h[hn++] = (uint8_t)(0x80 | op);
	if (n < 126) {
		h[hn++] = (uint8_t)(0x80 | n);
	} else if (n < 65536) {
		h[hn++] = 0x80 | 126;
		h[hn++] = (uint8_t)(n >> 8);
		h[hn++] = (uint8_t)n;
	} else {
		h[hn++] = 0x80 | 127;
		for (i = 0; i < 8; i++)
			h[hn++] = (uint8_t)((uint64_t)n >> (56 - 8 * i));
	}
	memcpy(mk, &m, 4);
	memcpy(h + hn, mk, 4);
	hn += 4;
	tx_reserve(c, hn + n);
	memcpy(c->tx + c->txlen, h, hn);
	d = c->tx + c->txlen + hn;
	for (i = 0; i < n; i++)
		d[i] = ((const uint8_t *)p)[i] ^ mk[i & 3];
	c->txlen += hn + n;
}

static void
ws_close(struct conn *c, unsigned code)
{
	uint8_t b[2] = { (uint8_t)(code >> 8), (uint8_t)code };

	if (c->st != C_OPEN)
		return;
	ws_send(c, 0x8, b, 2);
	c->st = C_CLOSING;
	c->t_close = now_ns();
}

static void
conn_start(struct conn *c)
{
	struct epoll_event ev;
	int one = 1;

	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		g.nfailed++;
		g.errors++;
		if (g.verbose)
			perror("wsload: socket");
		return;
	}
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	c->st = C_CONNECTING;
	c->t_start = now_ns();
	g.nactive++;
	g.nstarted++;
	ev.events = EPOLLOUT | EPOLLIN;
	ev.data.ptr = c;
	c->out_armed = 1;
	/* --port2: every other subscriber goes to the second node. */
	if (epoll_ctl(g.ep, EPOLL_CTL_ADD, c->fd, &ev) < 0 ||
	    (connect(c->fd, (struct sockaddr *)(g.port2 > 0 &&
	    c->role == R_SUB && (c->id & 1) ? &g.sa2 : &g.sa),
	    sizeof g.sa) < 0 &&
	    errno != EINPROGRESS)) {
		if (g.verbose)
			perror("wsload: connect");
		g.nfailed++;
		g.errors++;
		conn_drop(c);
	}
}

static void
send_handshake(struct conn *c)
{
	uint8_t k[16];
	char req[8192];
	int n, i;

	for (i = 0; i < 16; i++)
		k[i] = (uint8_t)rnd();
	b64(c->key, k, 16, 0);
	if (c->role == R_SUB || c->role == R_PUB ||
	    (g.mode == M_CONNECT && g.secret != NULL))
		n = snprintf(req, sizeof req, "GET %s?token=%s HTTP/1.1\r\n",
		    g.path, g.tokens[c->id]);
	else
		n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\n", g.path);
	n += snprintf(req + n, sizeof req - (size_t)n,
	    "Host: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
	    "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n",
	    g.host, g.port, c->key);
	tx_put(c, req, (size_t)n);
	c->st = C_HANDSHAKE;
}

static void on_open(struct conn *c);
static void on_message(struct conn *c, int op, uint8_t *p, size_t n);

/* Returns 1 when the head was complete and valid, 0 for "need more",
 * -1 when the connection was dropped. */
static int
read_handshake(struct conn *c)
{
	static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
	uint8_t *end, sha[20];
	char want[32], *h, *a;
	size_t hl;
	int status = 0;
	br_sha1_context sc;

	end = memmem(c->rx, c->rxlen, "\r\n\r\n", 4);
	if (end == NULL) {
		if (c->rxlen > 16384) {
			g.errors++;
			g.nfailed++;
			conn_abort(c);
			return -1;
		}
		return 0;
	}
	hl = (size_t)(end - c->rx) + 4;
	h = xrealloc(NULL, hl + 1);
	memcpy(h, c->rx, hl);
	h[hl] = '\0';
	sscanf(h, "HTTP/1.%*c %d", &status);
	if (status != 101) {
		if (status == 503) {
			g.nrefused++;
		} else {
			g.nfailed++;
			g.errors++;
			if (status == 404 || status == 400 || status == 426)
				g.unsupported = status;
			if (g.verbose)
				fprintf(stderr, "wsload: upgrade got %d\n",
				    status);
		}
		free(h);
		conn_abort(c);
		return -1;
	}
	br_sha1_init(&sc);
	br_sha1_update(&sc, c->key, strlen(c->key));
	br_sha1_update(&sc, guid, sizeof guid - 1);
	br_sha1_out(&sc, sha);
	b64(want, sha, 20, 0);
	/* RFC 6455 4.1: the client MUST check Sec-WebSocket-Accept. */
	a = strcasestr(h, "\r\nSec-WebSocket-Accept:");
	if (a != NULL) {
		a += 23;
		while (*a == ' ' || *a == '\t')
			a++;
	}
	if (a == NULL || strncmp(a, want, strlen(want)) != 0) {
		fprintf(stderr, "wsload: bad Sec-WebSocket-Accept\n");
		free(h);
		g.nfailed++;
		g.errors++;
		conn_abort(c);
		return -1;
	}
	free(h);
	memmove(c->rx, c->rx + hl, c->rxlen - hl);
	c->rxlen -= hl;
	c->st = C_OPEN;
	g.nopen++;
	g.t_progress = now_ns();
	return 1;
}

/* Parse server frames in c->rx. Returns -1 if the connection was dropped. */
static int
read_frames(struct conn *c)
{
	size_t off = 0;

	while (c->st == C_OPEN || c->st == C_CLOSING) {
		uint8_t *p = c->rx + off, *pl;
		size_t av = c->rxlen - off, hn = 2, i;
		uint64_t n;
		int fin, op, masked;

		if (av < 2)
			break;
		fin = p[0] & 0x80;
		op = p[0] & 0x0f;
		masked = p[1] & 0x80;
		n = p[1] & 0x7f;
		if (p[0] & 0x70) {
			fprintf(stderr, "wsload: reserved bits set\n");
			goto bad;
		}
		if (n == 126) {
			if (av < 4)
				break;
			n = (uint64_t)p[2] << 8 | p[3];
			hn = 4;
		} else if (n == 127) {
			if (av < 10)
				break;
			n = 0;
			for (i = 0; i < 8; i++)
				n = n << 8 | p[2 + i];
			hn = 10;
		}
		if (n > MAX_FRAME) {
			fprintf(stderr, "wsload: frame of %" PRIu64 " bytes\n",
			    n);
			goto bad;
		}
		if (masked)
			hn += 4;
		if (av < hn + n)
			break;
		pl = p + hn;
		if (masked)
			for (i = 0; i < n; i++)
				pl[i] ^= p[hn - 4 + (i & 3)];
		off += hn + (size_t)n;
		if (op & 0x8) {
			/* RFC 6455 5.5: control frames are final, <= 125. */
			if (!fin || n > 125) {
				fprintf(stderr, "wsload: bad control frame\n");
				goto bad;
			}
			if (op == 0x9) {	/* ping: pong, same payload */
				ws_send(c, 0xA, pl, (size_t)n);
			} else if (op == 0x8) {
				unsigned code = n >= 2 ?
				    (unsigned)pl[0] << 8 | pl[1] : 1005;

				if (c->st == C_OPEN) {
					if (g.verbose || g.phase == P_RUN ||
					    g.mode == M_FANOUT)
						fprintf(stderr, "wsload: server "
						    "closed conn %d with %u\n",
						    c->id, code);
					if (g.phase != P_DONE &&
					    g.phase != P_DRAIN)
						g.errors++;
					ws_send(c, 0x8, pl, n >= 2 ? 2 : 0);
					c->st = C_CLOSING;
					c->t_close = now_ns();
				}
			}
			continue;
		}
		if (op == 0) {
			if (c->fragop == 0) {
				fprintf(stderr, "wsload: stray continuation\n");
				goto bad;
			}
			if (c->fraglen + n > MAX_FRAME)
				goto bad;
			if (c->fraglen + n > c->fragcap) {
				c->fragcap = (c->fraglen + (size_t)n) * 2;
				c->frag = xrealloc(c->frag, c->fragcap);
			}
			memcpy(c->frag + c->fraglen, pl, (size_t)n);
			c->fraglen += (size_t)n;
			if (fin) {
				int fop = c->fragop;
				size_t fl = c->fraglen;

				c->fragop = 0;
				c->fraglen = 0;
				on_message(c, fop, c->frag, fl);
			}
		} else if (op == 1 || op == 2) {
			if (c->fragop != 0) {
				fprintf(stderr, "wsload: interleaved message\n");
				goto bad;
			}
			if (fin) {
				on_message(c, op, pl, (size_t)n);
			} else {
				c->fragop = op;
				if (n > c->fragcap) {
					c->fragcap = (size_t)n * 2;
					c->frag = xrealloc(c->frag, c->fragcap);
				}
				memcpy(c->frag, pl, (size_t)n);
				c->fraglen = (size_t)n;
			}
		} else {
			fprintf(stderr, "wsload: unknown opcode %d\n", op);
			goto bad;
		}
		if (c->st == C_FREE)
			return -1;
	}
	if (off > 0) {
		memmove(c->rx, c->rx + off, c->rxlen - off);
		c->rxlen -= off;
	}
	return 0;
bad:
	g.errors++;
	conn_abort(c);
	return -1;
}

/* Raw mode: [4-byte big-endian length][payload] messages. */
static int
read_raw(struct conn *c)
{
	size_t off = 0;

	while (c->rxlen - off >= 4) {
		uint8_t *p = c->rx + off;
		uint32_t n = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
		    (uint32_t)p[2] << 8 | p[3];

		if (n > MAX_FRAME) {
			g.errors++;
			conn_abort(c);
			return -1;
		}
		if (c->rxlen - off < 4 + (size_t)n)
			break;
		off += 4 + n;
		on_message(c, 2, p + 4, n);
		if (c->st == C_FREE)
			return -1;
	}
	if (off > 0) {
		memmove(c->rx, c->rx + off, c->rxlen - off);
		c->rxlen -= off;
	}
	return 0;
}

static void
conn_readable(struct conn *c)
{
	int i;

	for (i = 0; i < READS_PER_EVENT && c->st != C_FREE; i++) {
		ssize_t n;

		if (c->rxcap - c->rxlen < READ_CHUNK) {
			c->rxcap = c->rxlen + READ_CHUNK * 2;
			c->rx = xrealloc(c->rx, c->rxcap);
		}
		n = read(c->fd, c->rx + c->rxlen, c->rxcap - c->rxlen);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		if (n <= 0) {
			/* EOF or reset: expected only after our close. */
			if (c->st != C_CLOSING && g.phase != P_DONE) {
				if (c->st == C_HANDSHAKE ||
				    c->st == C_CONNECTING)
					g.nfailed++;
				if (g.verbose)
					fprintf(stderr, "wsload: conn %d lost"
					    " (state %d)\n", c->id, c->st);
				g.errors++;
			}
			conn_drop(c);
			return;
		}
		g.t_last_rx = now_ns();
		c->rxlen += (size_t)n;
		if (c->st == C_HANDSHAKE) {
			int r = read_handshake(c);

			if (r < 0)
				return;
			if (r == 0)
				continue;
			on_open(c);
			if (c->st == C_FREE)
				return;
		}
		if (g.mode == M_TCP) {
			if (read_raw(c) < 0)
				return;
		} else if (read_frames(c) < 0) {
			return;
		}
		if ((size_t)n < READ_CHUNK)
			break;
	}
	if (c->st != C_FREE && conn_flush(c) < 0) {
		g.errors++;
		conn_drop(c);
	}
}

static void
conn_writable(struct conn *c)
{
	if (c->st == C_CONNECTING) {
		int err = 0;
		socklen_t l = sizeof err;

		getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
		if (err != 0) {
			if (g.verbose)
				fprintf(stderr, "wsload: connect: %s\n",
				    strerror(err));
			g.nfailed++;
			g.errors++;
			conn_drop(c);
			return;
		}
		if (g.mode == M_TCP) {
			c->st = C_OPEN;
			g.nopen++;
			on_open(c);
		} else {
			send_handshake(c);
		}
		if (c->st == C_FREE)
			return;
	}
	if (conn_flush(c) < 0) {
		g.errors++;
		conn_drop(c);
	}
}

/* ---- Mode logic ------------------------------------------------------ */

static void
echo_send(struct conn *c)
{
	uint64_t t = now_ns();

	memcpy(g.payload, &t, 8);
	if (g.mode == M_TCP) {
		uint8_t h[4] = { (uint8_t)(g.size >> 24), (uint8_t)(g.size >> 16),
		    (uint8_t)(g.size >> 8), (uint8_t)g.size };

		tx_put(c, h, 4);
		tx_put(c, g.payload, g.size);
	} else {
		ws_send(c, 0x2, g.payload, g.size);
	}
	c->inflight++;
	g.sent++;
}

static int
sending(void)
{
	return g.phase == P_WARMUP || g.phase == P_RUN;
}

/* Find "key": in a JSON text and return what follows the colon. */
static const char *
jval(const uint8_t *p, size_t n, const char *key, size_t *rest)
{
	char pat[40];
	const uint8_t *v;
	size_t kl = strlen(key);

	/* "key": built by hand: this runs for every frame received. */
	if (kl + 3 > sizeof pat)
		return NULL;
	pat[0] = '"';
	memcpy(pat + 1, key, kl);
	pat[kl + 1] = '"';
	pat[kl + 2] = ':';
	kl += 3;
	v = memmem(p, n, pat, kl);
	if (v == NULL)
		return NULL;
	v += kl;
	while (v < p + n && (*v == ' ' || *v == '\t'))
		v++;
	*rest = n - (size_t)(v - p);
	return (const char *)v;
}

static int
jis(const uint8_t *p, size_t n, const char *key, const char *str)
{
	size_t rest, sl = strlen(str);
	const char *v = jval(p, n, key, &rest);

	return v != NULL && rest >= sl + 2 && v[0] == '"' &&
	    memcmp(v + 1, str, sl) == 0 && v[sl + 1] == '"';
}

static long long
jnum(const uint8_t *p, size_t n, const char *key, long long dflt)
{
	size_t rest;
	const char *v = jval(p, n, key, &rest);
	char buf[24];
	size_t i;

	if (v == NULL || rest == 0)
		return dflt;
	for (i = 0; i < rest && i < sizeof buf - 1 &&
	    (v[i] == '-' || (v[i] >= '0' && v[i] <= '9')); i++)
		buf[i] = v[i];
	buf[i] = '\0';
	return i > 0 ? strtoll(buf, NULL, 10) : dflt;
}

static void
pub_send(struct conn *c)
{
	char buf[512 + 4096];
	char content[4096 + 64];
	uint64_t k = g.pubseq++;
	int n, m;

	/* The content carries "#<seq>:<ns>#" and is padded to --size. */
	m = snprintf(content, sizeof content, "#%" PRIu64 ":%" PRIu64 "#",
	    k, now_ns());
	while ((size_t)m < g.size && (size_t)m < sizeof content - 1)
		content[m++] = 'x';
	content[m] = '\0';
	n = snprintf(buf, sizeof buf, "{\"type\":\"chat\",\"room\":\"%s\","
	    "\"id\":%" PRIu64 ",\"content\":\"%s\"}", g.room, k + 100, content);
	ws_send(c, 0x1, buf, (size_t)n);
	g.sent++;
}

static void
fanout_pump(void)
{
	struct conn *pub = &g.c[g.nconns];
	uint64_t t = now_ns();
	int k;

	if (!sending() || pub->st != C_OPEN)
		return;
	for (k = 0; k < 100000; k++) {
		if (g.sent - g.done >= (uint64_t)g.window)
			break;
		if (g.rate > 0) {
			if (g.t_next_pub > t)
				break;
			g.t_next_pub += (uint64_t)(NS / g.rate);
		}
		pub_send(pub);
	}
	if (conn_flush(pub) < 0) {
		g.errors++;
		conn_drop(pub);
	}
}

static void
fanout_complete(uint64_t k)
{
	(void)k;
	g.done++;
}

/* Subscribers join a few at a time, in order: every join sends a
 * user_join to every member, and a burst of a thousand joins would fill
 * the members' send queues faster than one client thread reads them. */
static void
join_more(void)
{
	char j[160];
	int n = snprintf(j, sizeof j,
	    "{\"type\":\"join\",\"room\":\"%s\",\"id\":1}", g.room);

	while (g.joins_out < JOIN_WINDOW && g.join_next < g.ntotal) {
		struct conn *c = &g.c[g.join_next];

		if (c->st != C_OPEN)
			break;
		ws_send(c, 0x1, j, (size_t)n);
		g.join_next++;
		g.joins_out++;
		if (conn_flush(c) < 0) {
			g.errors++;
			conn_drop(c);
			return;
		}
	}
}

/* "K:TS#" at p[0..n): the message number and its send time. */
static int
parse_stamp(const char *p, size_t n, unsigned long long *k,
    unsigned long long *ts)
{
	unsigned long long v[2] = { 0, 0 };
	size_t i = 0;
	int f;

	for (f = 0; f < 2; f++) {
		size_t start = i;
		while (i < n && p[i] >= '0' && p[i] <= '9')
			v[f] = v[f] * 10 + (unsigned long long)(p[i++] - '0');
		if (i == start || i >= n || p[i] != (f == 0 ? ':' : '#'))
			return -1;
		i++;
	}
	*k = v[0];
	*ts = v[1];
	return 0;
}

static void
on_fanout_msg(struct conn *c, const uint8_t *p, size_t n)
{
	if (jis(p, n, "type", "chat")) {
		size_t rest;
		const char *m = jval(p, n, "message", &rest);
		unsigned long long k, ts;

		if (c->role == R_PUB)
			return;
		if (m == NULL || rest < 4 || m[0] != '"' || m[1] != '#' ||
		    parse_stamp(m + 2, rest - 2, &k, &ts) != 0)
			return;
		if (g.phase == P_RUN) {
			g.deliveries++;
			g.bytes += g.size;
			/* Frames of one read arrived together: the read's
			 * time serves them all, one clock read per read. */
			hist_add(&g.h, g.t_last_rx - ts);
		}
		if (++g.ring[k % FANOUT_RING] >= (unsigned)g.nconns) {
			g.ring[k % FANOUT_RING] = 0;
			fanout_complete(k);
		}
		return;
	}
	if (jis(p, n, "type", "ack")) {
		long long id = jnum(p, n, "id", -1);
		long long code = jnum(p, n, "code", 0);

		if (id == 1) {
			if (code != 0) {
				fprintf(stderr, "wsload: join refused: %.*s\n",
				    (int)n, p);
				g.fatal = "join refused";
				return;
			}
			if (!c->joined) {
				c->joined = 1;
				g.njoined++;
				g.joins_out--;
				join_more();
			}
		} else if (code != 0 && c->role == R_PUB && id >= 100) {
			/* A refused chat never arrives: free its window slot
			 * and forget partial counts (none: it was not sent). */
			g.refused++;
			g.done++;
			if (g.refused <= 3)
				fprintf(stderr, "wsload: chat refused: %.*s\n",
				    (int)(n > 200 ? 200 : n), p);
		}
		return;
	}
	if (jis(p, n, "type", "auth")) {
		if (jnum(p, n, "code", 0) != 0) {
			g.unsupported = 401;
			g.fatal = "auth failed (wrong --secret?)";
		} else {
			c->authed = 1;
		}
		return;
	}
	if (jis(p, n, "type", "error")) {
		if (!c->joined && jnum(p, n, "code", 0) == -4) {
			/* The server did not take the ?token= upgrade. */
			g.unsupported = 401;
			g.fatal = "not authenticated after ?token=";
			return;
		}
		g.errors++;
		if (g.errors <= 3)
			fprintf(stderr, "wsload: error: %.*s\n",
			    (int)(n > 200 ? 200 : n), p);
	}
}

static void
on_message(struct conn *c, int op, uint8_t *p, size_t n)
{
	switch (g.mode) {
	case M_ECHO:
	case M_TCP: {
		uint64_t t;

		if (n != g.size || (g.mode == M_ECHO && op != 2)) {
			fprintf(stderr, "wsload: echo of %zu bytes op %d, "
			    "sent %zu op 2\n", n, op, g.size);
			g.errors++;
			return;
		}
		memcpy(&t, p, 8);
		c->inflight--;
		if (g.phase == P_RUN) {
			g.msgs++;
			g.bytes += n;
			hist_add(&g.h, g.t_last_rx - t);
		}
		if (sending())
			echo_send(c);
		break;
	}
	case M_FANOUT:
		on_fanout_msg(c, p, n);
		break;
	case M_CONNECT:
		if (jis(p, n, "type", "auth")) {
			if (jnum(p, n, "code", 0) != 0) {
				g.unsupported = 401;
				g.fatal = "auth failed (wrong --secret?)";
				return;
			}
			if (g.phase == P_RUN) {
				g.msgs++;
				hist_add(&g.h, now_ns() - c->t_start);
			}
			ws_close(c, 1000);
		}
		break;
	case M_IDLE:
		break;
	}
}

static void
on_open(struct conn *c)
{
	switch (g.mode) {
	case M_ECHO:
	case M_TCP:
		break;	/* sending starts when every connection is open */
	case M_FANOUT:
		join_more();
		break;
	case M_CONNECT:
		if (g.secret == NULL) {
			if (g.phase == P_RUN) {
				g.msgs++;
				hist_add(&g.h, now_ns() - c->t_start);
			}
			ws_close(c, 1000);
		}
		break;
	case M_IDLE:
		break;
	}
}

static void
on_dead(struct conn *c)
{
	if (g.mode == M_CONNECT && sending() && !g_stop && !g.fatal)
		conn_start(c);
}

/* ---- Phases ---------------------------------------------------------- */

static void
start_sending(uint64_t t)
{
	int i, j;

	g.phase = g.warmup > 0 ? P_WARMUP : P_RUN;
	g.t_phase = t;
	g.t_meas = t + (uint64_t)(g.warmup * NS);
	g.t_end = g.t_meas + (uint64_t)(g.duration * NS);
	g.t_next_pub = t;
	if (g.phase == P_RUN) {
		g.cpu0 = proc_cpu(g.pid);
		g.cpu_ok = g.cpu0 >= 0;
		g.self0 = self_cpu_us();
	}
	if (g.mode == M_ECHO || g.mode == M_TCP) {
		for (i = 0; i < g.nconns; i++) {
			struct conn *c = &g.c[i];

			if (c->st != C_OPEN)
				continue;
			for (j = 0; j < g.inflight; j++)
				echo_send(c);
			if (conn_flush(c) < 0) {
				g.errors++;
				conn_drop(c);
			}
		}
	} else if (g.mode == M_CONNECT) {
		for (i = 0; i < g.nconns; i++)
			conn_start(&g.c[i]);
	}
}

/* idle: the connections open before VmRSS is first read. */
static int
idle_warm_n(void)
{
	return g.ntotal / 10 < IDLE_WARM ? g.ntotal / 10 : IDLE_WARM;
}

/* idle: VmRSS once the warm-up connections are open (all settled). */
static void
idle_warm_done(void)
{
	if (g.idle_warm >= 0 || g.nstarted < idle_warm_n() ||
	    g.nactive != g.nopen)
		return;
	g.rss0 = proc_rss(g.pid);
	g.idle_warm = g.nopen;
}

/* Idle and fanout open connections a batch at a time, so the server's
 * listen backlog never overflows. */
static void
open_more(void)
{
	int n = g.ntotal;

	if (g.mode == M_IDLE && g.idle_warm < 0)
		n = idle_warm_n();
	while (g.nstarted < n &&
	    g.nactive - g.nopen < g.batch)
		conn_start(&g.c[g.nstarted]);
}

static int
setup_done(void)
{
	int settled = g.nstarted >= g.ntotal && g.nactive == g.nopen;

	switch (g.mode) {
	case M_FANOUT:
		return g.njoined >= g.ntotal;
	default:
		return settled;
	}
}

static void
close_all(void)
{
	int i;

	for (i = 0; i < g.ntotal; i++) {
		struct conn *c = &g.c[i];

		if (c->st == C_OPEN) {
			if (g.mode == M_TCP) {
				conn_drop(c);
				continue;
			}
			ws_close(c, 1000);
			if (conn_flush(c) < 0)
				conn_abort(c);
		} else if (c->st == C_CONNECTING || c->st == C_HANDSHAKE) {
			conn_abort(c);
		}
	}
}

/* Advance the phase machine; returns the epoll timeout in ms. */
static int
tick(void)
{
	uint64_t t = now_ns(), next = t + 100 * MS;
	int i;

	if (g_stop && g.phase < P_DRAIN) {
		g.fatal = g.fatal ? g.fatal : "interrupted";
	}
	if (g.fatal && g.phase < P_DONE) {
		if (g.phase < P_RUN)
			g.t_meas = t;
		g.phase = P_DONE;
		g.t_phase = t;
		if (g.t_end == 0 || g.t_end > t)
			g.t_end = t;
		g.cpu1 = proc_cpu(g.pid);
		close_all();
	}
	switch (g.phase) {
	case P_SETUP:
		if (g.mode == M_IDLE)
			idle_warm_done();
		open_more();
		if (g.mode == M_FANOUT)
			join_more();
		if (g.mode == M_FANOUT && g.nfailed + g.nrefused > 0) {
			g.fatal = "a subscriber could not connect";
			break;
		}
		if (g.mode == M_IDLE && g.nstarted >= g.ntotal &&
		    t - g.t_progress > 3 * NS) {
			/* The server stopped accepting (its table is full and
			 * it leaves the rest in the listen backlog). */
			for (i = 0; i < g.ntotal; i++)
				if (g.c[i].st == C_CONNECTING ||
				    g.c[i].st == C_HANDSHAKE) {
					g.nstalled++;
					conn_abort(&g.c[i]);
				}
		}
		if (setup_done() && g.nopen == 0) {
			g.fatal = "no connection opened";
		} else if (setup_done()) {
			if (g.mode == M_FANOUT) {
				g.phase = P_SETTLE;
				g.t_phase = t;
				g.t_last_rx = t;
			} else if (g.mode == M_IDLE) {
				g.phase = P_RUN;
				g.t_phase = t;
				g.t_meas = t;
				g.t_end = t + IDLE_SETTLE_NS +
				    (uint64_t)(g.duration * NS);
			} else {
				start_sending(t);
			}
		} else if (t - g.t_begin > SETUP_TIMEOUT_NS) {
			fprintf(stderr, "wsload: setup timed out: %d of %d open,"
			    " %d joined\n", g.nopen, g.ntotal, g.njoined);
			g.fatal = "setup timeout";
		}
		break;
	case P_SETTLE:
		if (t - g.t_last_rx >= SETTLE_QUIET_NS ||
		    t - g.t_phase >= SETTLE_MAX_NS)
			start_sending(t);
		else
			next = g.t_last_rx + SETTLE_QUIET_NS;
		break;
	case P_WARMUP:
		if (t >= g.t_meas) {
			g.phase = P_RUN;
			g.cpu0 = proc_cpu(g.pid);
			g.cpu_ok = g.cpu0 >= 0;
			g.self0 = self_cpu_us();
		} else {
			next = g.t_meas;
		}
		break;
	case P_RUN:
		if (g.maxmsgs > 0 && g.msgs + g.deliveries >= g.maxmsgs &&
		    g.t_end > t)
			g.t_end = t;
		if (g.mode == M_IDLE && g.rss1 == 0 &&
		    t >= g.t_meas + IDLE_SETTLE_NS) {
			g.rss1 = proc_rss(g.pid);
			g.idle_open = g.nopen;
		}
		if (t >= g.t_end) {
			g.cpu1 = proc_cpu(g.pid);
			g.self1 = self_cpu_us();
			if (g.mode == M_IDLE && g.rss1 == 0) {
				g.rss1 = proc_rss(g.pid);
				g.idle_open = g.nopen;
			}
			g.phase = P_DRAIN;
			g.t_phase = t;
		} else {
			next = g.t_end;
		}
		break;
	case P_DRAIN: {
		int busy = 0;

		for (i = 0; i < g.ntotal && !busy; i++)
			if (g.c[i].inflight > 0)
				busy = 1;
		if (g.mode == M_FANOUT && g.sent > g.done)
			busy = 1;
		if (g.mode == M_CONNECT && g.nactive > 0)
			busy = 1;
		if (!busy || t - g.t_phase >= DRAIN_NS) {
			g.phase = P_DONE;
			g.t_phase = t;
			close_all();
		}
		break;
	}
	case P_DONE:
		break;
	}
	if (g.mode == M_FANOUT) {
		fanout_pump();
		if (g.rate > 0 && sending() && g.t_next_pub < next)
			next = g.t_next_pub;
	}
	/* Connect with --secret waits for the auth reply: a server that
	 * sends none does not support ?token=. */
	if (g.mode == M_CONNECT && g.secret != NULL && g.fatal == NULL) {
		for (i = 0; i < g.ntotal; i++)
			if (g.c[i].st == C_OPEN &&
			    t - g.c[i].t_start > AUTH_WAIT_NS) {
				g.unsupported = 401;
				g.fatal = "no auth reply to ?token=";
				break;
			}
	}
	/* Connections that sent a close and heard nothing back. */
	if (g.phase == P_DONE || g.mode == M_CONNECT) {
		for (i = 0; i < g.ntotal; i++)
			if (g.c[i].st == C_CLOSING &&
			    t - g.c[i].t_close > CLOSE_WAIT_NS)
				conn_abort(&g.c[i]);
	}
	if (next <= t)
		return 0;
	return (int)((next - t + MS - 1) / MS);
}

/* ---- Report ---------------------------------------------------------- */

static void
report(void)
{
	double secs = (double)(g.t_end - g.t_meas) / NS;
	double tck = (double)sysconf(_SC_CLK_TCK);
	double cpu_us = g.cpu_ok && g.cpu1 >= g.cpu0 ?
	    (double)(g.cpu1 - g.cpu0) * 1e6 / tck : -1;
	double p50 = hist_q(&g.h, 0.50) / 1e3, p99 = hist_q(&g.h, 0.99) / 1e3,
	    p999 = hist_q(&g.h, 0.999) / 1e3;
	char cpu[128] = "", cl[48] = "";

	if (secs <= 0)
		secs = 1e-9;
	/* Our own CPU share says whether wsload, not the server, was the
	 * limit. */
	if (g.self1 > g.self0)
		snprintf(cl, sizeof cl, " client_cpu_pct=%.1f",
		    (double)(g.self1 - g.self0) / 1e4 / secs);
	switch (g.mode) {
	case M_ECHO:
	case M_TCP:
		if (cpu_us >= 0)
			snprintf(cpu, sizeof cpu, " cpu_us_per_msg=%.2f "
			    "cpu_pct=%.1f", g.msgs ? cpu_us / (double)g.msgs : 0,
			    cpu_us / 1e4 / secs);
		printf("mode=%s conns=%d inflight=%d size=%zu msgs=%" PRIu64
		    " secs=%.2f msgs_per_s=%.0f mb_per_s=%.2f p50_us=%.1f "
		    "p99_us=%.1f p999_us=%.1f%s%s errors=%" PRIu64 "\n",
		    mode_names[g.mode], g.nconns, g.inflight, g.size, g.msgs,
		    secs, (double)g.msgs / secs, (double)g.bytes / secs / 1e6,
		    p50, p99, p999, cpu, cl, g.errors);
		break;
	case M_FANOUT:
		if (cpu_us >= 0)
			snprintf(cpu, sizeof cpu, " cpu_us_per_msg=%.2f "
			    "cpu_pct=%.1f", g.deliveries ?
			    cpu_us / (double)g.deliveries : 0,
			    cpu_us / 1e4 / secs);
		printf("mode=fanout conns=%d window=%d rate=%.0f size=%zu "
		    "msgs=%" PRIu64 " deliveries=%" PRIu64 " secs=%.2f "
		    "msgs_per_s=%.0f deliveries_per_s=%.0f mb_per_s=%.2f "
		    "p50_us=%.1f p99_us=%.1f p999_us=%.1f%s%s refused=%" PRIu64
		    " errors=%" PRIu64 "\n", g.nconns, g.window, g.rate, g.size,
		    g.deliveries / (uint64_t)g.nconns, g.deliveries, secs,
		    (double)g.deliveries / (double)g.nconns / secs,
		    (double)g.deliveries / secs, (double)g.bytes / secs / 1e6,
		    p50, p99, p999, cpu, cl, g.refused, g.errors);
		break;
	case M_IDLE: {
		long d = g.rss1 - g.rss0;
		int open = g.idle_open, more = open - g.idle_warm;

		if (cpu_us >= 0)
			snprintf(cpu, sizeof cpu, " cpu_us_per_conn=%.2f",
			    open ? cpu_us / open : 0);
		printf("mode=idle conns=%d open=%d warm=%d refused=%d failed=%d "
		    "stalled=%d rss_before_kib=%ld rss_after_kib=%ld "
		    "kib_per_conn=%.3f%s errors=%" PRIu64 "\n", g.nconns, open,
		    g.idle_warm, g.nrefused, g.nfailed, g.nstalled, g.rss0, g.rss1,
		    more > 0 && g.pid > 0 ? (double)d / more : 0, cpu, g.errors);
		break;
	}
	case M_CONNECT:
		if (cpu_us >= 0)
			snprintf(cpu, sizeof cpu, " cpu_us_per_conn=%.2f "
			    "cpu_pct=%.1f", g.msgs ? cpu_us / (double)g.msgs : 0,
			    cpu_us / 1e4 / secs);
		printf("mode=connect conns=%d path=%s auth=%d connects=%" PRIu64
		    " secs=%.2f connects_per_s=%.0f p50_us=%.1f p99_us=%.1f "
		    "p999_us=%.1f%s%s refused=%d errors=%" PRIu64 "\n", g.nconns,
		    g.path, g.secret != NULL, g.msgs, secs,
		    (double)g.msgs / secs, p50, p99, p999, cpu, cl, g.nrefused,
		    g.errors);
		break;
	}
	fflush(stdout);
}

/* ---- Command line ---------------------------------------------------- */

static void
usage(FILE *f)
{
	fprintf(f,
"usage: wsload MODE --port PORT [options]\n"
"\n"
"Modes:\n"
"  echo     C conns to /echo, K binary messages of S bytes in flight each;\n"
"           messages/s, MB/s (payload, one way), round-trip percentiles\n"
"  tcp      the same over raw TCP with 4-byte big-endian length prefixes\n"
"           (against bench/peers/tcp_echo)\n"
"  fanout   C subscribers join --room on /ws?token=JWT; one publisher sends\n"
"           chat messages of S bytes, W in flight (or --rate R per second);\n"
"           deliveries/s and delivery latency percentiles; needs --secret\n"
"  idle     open C conns to /echo and hold them; the server's VmRSS growth\n"
"           per connection from when C/10 (at most 64) are open to when all\n"
"           are; needs --pid\n"
"  connect  C workers each connect, upgrade (on /ws with --secret: wait for\n"
"           the auth reply) and close, in a loop; connections/s and the\n"
"           time from connect() to open (or auth)\n"
"\n"
"Options:\n"
"  --host H         server address, 127.0.0.0/8 only (127.0.0.1)\n"
"  --port P         server port (required)\n"
"  --path P         upgrade path (/echo; /ws for fanout and connect+secret)\n"
"  --conns C        connections, subscribers or workers (100)\n"
"  --inflight K     echo: messages in flight per connection (1)\n"
"  --size S         echo: payload bytes, >= 8 (32); fanout: content bytes (64)\n"
"  --duration S     measured seconds (5); idle: hold time after settling (2)\n"
"  --warmup S       seconds before measuring (0)\n"
"  --window W       fanout: messages in flight, i.e. not yet delivered to\n"
"                   every subscriber (16)\n"
"  --rate R         fanout: publish R messages per second (window still caps)\n"
"  --room R         fanout: room name (bench)\n"
"  --secret S       HS256 secret to mint tokens with (claim uid)\n"
"  --port2 P        fanout: every other subscriber connects to this port (a\n"
"                   second node of a cluster); the publisher stays on --port\n"
"  --pid2 PID       the second node's pid: its CPU time is added\n"
"  --pid PID        the server's pid: report its CPU time per message (and\n"
"                   VmRSS in idle mode) from /proc\n"
"  --batch N        connections being opened at once (256)\n"
"  --count N        end the measured window after N messages (deliveries,\n"
"                   connections); 0: no limit (0)\n"
"  --verbose        say why connections fail\n"
"  --help           this text\n"
"\n"
"Prints one line: mode=... key=value ... Exit 0 on success, 1 on errors,\n"
"2 on usage errors, 3 when the server lacks what the mode needs.\n");
}

static int
parse_args(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "host", required_argument, NULL, 'h' },
		{ "port", required_argument, NULL, 'p' },
		{ "path", required_argument, NULL, 'P' },
		{ "conns", required_argument, NULL, 'c' },
		{ "inflight", required_argument, NULL, 'k' },
		{ "size", required_argument, NULL, 's' },
		{ "duration", required_argument, NULL, 'd' },
		{ "warmup", required_argument, NULL, 'w' },
		{ "window", required_argument, NULL, 'W' },
		{ "rate", required_argument, NULL, 'r' },
		{ "room", required_argument, NULL, 'R' },
		{ "secret", required_argument, NULL, 'S' },
		{ "pid", required_argument, NULL, 'i' },
		{ "port2", required_argument, NULL, 'q' },
		{ "pid2", required_argument, NULL, 'j' },
		{ "batch", required_argument, NULL, 'b' },
		{ "count", required_argument, NULL, 'n' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'H' },
		{ NULL, 0, NULL, 0 }
	};
	int o, size_set = 0, dur_set = 0;
	long long v;
	char *end;

	snprintf(g.host, sizeof g.host, "127.0.0.1");
	g.nconns = 100;
	g.inflight = 1;
	g.size = 32;
	g.duration = 5;
	g.window = 16;
	g.room = "bench";
	g.batch = 256;
	if (argc < 2) {
		usage(stderr);
		return -1;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		usage(stdout);
		exit(0);
	}
	for (o = 0; o < 5; o++)
		if (strcmp(argv[1], mode_names[o]) == 0)
			break;
	if (o == 5) {
		fprintf(stderr, "wsload: unknown mode '%s'\n", argv[1]);
		return -1;
	}
	g.mode = (enum mode)o;
	optind = 2;
	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (o == 'H') {
			usage(stdout);
			exit(0);
		}
		if (o == 'v') {
			g.verbose = 1;
			continue;
		}
		if (o == '?')
			return -1;
		if (o == 'h') {
			snprintf(g.host, sizeof g.host, "%s", optarg);
			continue;
		}
		if (o == 'P') {
			g.path = optarg;
			continue;
		}
		if (o == 'R') {
			g.room = optarg;
			continue;
		}
		if (o == 'S') {
			g.secret = optarg;
			continue;
		}
		if (o == 'd' || o == 'w' || o == 'r') {
			double d = strtod(optarg, &end);

			if (*end != '\0' || !(d >= 0) || d > MAX_DURATION *
			    (o == 'r' ? 1e4 : 1)) {
				fprintf(stderr, "wsload: bad value '%s'\n",
				    optarg);
				return -1;
			}
			if (o == 'd') {
				g.duration = d;
				dur_set = 1;
			} else if (o == 'w') {
				g.warmup = d;
			} else {
				g.rate = d;
			}
			continue;
		}
		v = strtoll(optarg, &end, 10);
		if (*end != '\0' || v < 0 || v > 100000000) {
			fprintf(stderr, "wsload: bad number '%s'\n", optarg);
			return -1;
		}
		switch (o) {
		case 'p': g.port = (int)v; break;
		case 'c': g.nconns = (int)v; break;
		case 'k': g.inflight = (int)v; break;
		case 's': g.size = (size_t)v; size_set = 1; break;
		case 'W': g.window = (int)v; break;
		case 'i': g.pid = (int)v; break;
		case 'q': g.port2 = (int)v; break;
		case 'j': g.pid2 = (int)v; break;
		case 'b': g.batch = (int)v; break;
		case 'n': g.maxmsgs = (uint64_t)v; break;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "wsload: unexpected '%s'\n", argv[optind]);
		return -1;
	}
	if (g.port <= 0 || g.port > 65535) {
		fprintf(stderr, "wsload: --port is required\n");
		return -1;
	}
	if (g.nconns < 1 || g.nconns > MAX_CONNS || g.batch < 1) {
		fprintf(stderr, "wsload: --conns must be 1..%d\n", MAX_CONNS);
		return -1;
	}
	if (g.mode == M_FANOUT) {
		if (!size_set)
			g.size = 64;
		if (g.size < 24 || g.size > 4096) {
			fprintf(stderr, "wsload: fanout --size is 24..4096\n");
			return -1;
		}
		if (g.window < 1 || (unsigned)g.window >= FANOUT_RING) {
			fprintf(stderr, "wsload: --window is 1..%u\n",
			    FANOUT_RING - 1);
			return -1;
		}
		if (g.nconns > 65535) {
			fprintf(stderr, "wsload: fanout --conns <= 65535\n");
			return -1;
		}
	} else if (g.size < 8 || g.size > MAX_SIZE) {
		fprintf(stderr, "wsload: --size is 8..%u\n", MAX_SIZE);
		return -1;
	}
	if ((g.mode == M_ECHO || g.mode == M_TCP) &&
	    (g.inflight < 1 || g.inflight > 100000)) {
		fprintf(stderr, "wsload: --inflight is 1..100000\n");
		return -1;
	}
	if (g.mode == M_IDLE && !dur_set)
		g.duration = 2;
	if (g.mode == M_IDLE && g.pid <= 0) {
		fprintf(stderr, "wsload: idle needs --pid\n");
		return -1;
	}
	if (g.mode == M_FANOUT && g.secret == NULL) {
		fprintf(stderr, "wsload: fanout needs --secret (tokens)\n");
		return -1;
	}
	if (g.path == NULL)
		g.path = g.mode == M_FANOUT ||
		    (g.mode == M_CONNECT && g.secret != NULL) ? "/ws" : "/echo";
	if (g.path[0] != '/' || strpbrk(g.path, " \r\n?") != NULL) {
		fprintf(stderr, "wsload: bad --path\n");
		return -1;
	}
	if (strlen(g.room) > 64 || strpbrk(g.room, "\"\\") != NULL) {
		fprintf(stderr, "wsload: bad --room\n");
		return -1;
	}
	if (g.secret != NULL && strlen(g.secret) > 1024) {
		fprintf(stderr, "wsload: --secret too long\n");
		return -1;
	}
	if (strcmp(g.host, "localhost") == 0)
		snprintf(g.host, sizeof g.host, "127.0.0.1");
	g.sa.sin_family = AF_INET;
	g.sa.sin_port = htons((uint16_t)g.port);
	g.sa2 = g.sa;
	g.sa2.sin_port = htons((uint16_t)g.port2);
	if (inet_pton(AF_INET, g.host, &g.sa.sin_addr) != 1 ||
	    (ntohl(g.sa.sin_addr.s_addr) >> 24) != 127) {
		fprintf(stderr, "wsload: --host must be in 127.0.0.0/8\n");
		return -1;
	}
	return 0;
}

static void
on_signal(int sig)
{
	(void)sig;
	g_stop = 1;
}

static void
raise_nofile(int need)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return;
	if (rl.rlim_cur < (rlim_t)need + 64) {
		rl.rlim_cur = rl.rlim_max;
		if (rl.rlim_cur > (rlim_t)need + 64 &&
		    rl.rlim_max != RLIM_INFINITY)
			rl.rlim_cur = (rlim_t)need + 64;
		else if (rl.rlim_max == RLIM_INFINITY)
			rl.rlim_cur = (rlim_t)need + 64;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 &&
	    rl.rlim_cur < (rlim_t)need + 16)
		fprintf(stderr, "wsload: only %llu file descriptors for %d "
		    "connections\n", (unsigned long long)rl.rlim_cur, need);
}

int
main(int argc, char **argv)
{
	struct epoll_event *ev;
	uint64_t loops, hard_end;
	int i, rc;

	if (parse_args(argc, argv) < 0) {
		fprintf(stderr, "try: wsload --help\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	g.rng = (uint64_t)now_ns() ^ ((uint64_t)getpid() << 32) ^ 0x9e3779b97f4a7c15ull;
	for (i = 0; i < 8; i++)
		rnd();

	g.ntotal = g.nconns + (g.mode == M_FANOUT);
	raise_nofile(g.ntotal);
	g.c = calloc((size_t)g.ntotal, sizeof *g.c);
	ev = calloc(MAX_EVENTS, sizeof *ev);
	g.payload = calloc(1, g.size + 8);
	if (g.c == NULL || ev == NULL || g.payload == NULL) {
		fprintf(stderr, "wsload: out of memory\n");
		return 1;
	}
	for (i = 0; i < g.ntotal; i++) {
		g.c[i].fd = -1;
		g.c[i].id = i;
		g.c[i].role = g.mode != M_FANOUT ? R_DATA :
		    i < g.nconns ? R_SUB : R_PUB;
	}
	for (i = 8; (size_t)i < g.size; i++)
		g.payload[i] = (uint8_t)('a' + i % 26);
	if (g.secret != NULL) {
		int nt = g.mode == M_CONNECT ? g.nconns : g.ntotal;

		g.tokens = calloc((size_t)nt, sizeof *g.tokens);
		if (g.tokens == NULL)
			return 1;
		for (i = 0; i < nt; i++) {
			char uid[32];

			if (g.mode == M_FANOUT && i == g.nconns)
				snprintf(uid, sizeof uid, "pub");
			else
				snprintf(uid, sizeof uid, "u%d", i);
			g.tokens[i] = mint_token(g.secret, uid);
		}
	}
	if (g.mode == M_FANOUT) {
		g.ring = calloc(FANOUT_RING, sizeof *g.ring);
		if (g.ring == NULL)
			return 1;
	}
	if ((g.ep = epoll_create1(EPOLL_CLOEXEC)) < 0) {
		perror("wsload: epoll_create1");
		return 1;
	}
	if (g.mode == M_IDLE) {
		g.idle_warm = -1;
		g.cpu0 = proc_cpu(g.pid);
		g.cpu_ok = g.cpu0 >= 0;
	}
	g.phase = P_SETUP;
	g.t_begin = g.t_phase = g.t_progress = now_ns();
	if (g.mode == M_CONNECT) {
		g.nstarted = g.ntotal;	/* workers start in start_sending() */
		start_sending(g.t_begin);
	}
	hard_end = g.t_begin + SETUP_TIMEOUT_NS + SETTLE_MAX_NS +
	    (uint64_t)((g.warmup + g.duration) * NS) + IDLE_SETTLE_NS +
	    DRAIN_NS + 2 * CLOSE_WAIT_NS + 5 * NS;

	for (loops = 0; loops < MAX_LOOPS; loops++) {
		int n, timeout = tick();

		if (g.phase == P_DONE && g.nactive == 0)
			break;
		if (g.phase == P_DONE && now_ns() - g.t_phase > CLOSE_WAIT_NS +
		    100 * MS)
			break;
		if (now_ns() > hard_end) {
			fprintf(stderr, "wsload: hard time limit reached\n");
			g.fatal = g.fatal ? g.fatal : "time limit";
			break;
		}
		n = epoll_wait(g.ep, ev, MAX_EVENTS, timeout > 100 ? 100 :
		    timeout);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			perror("wsload: epoll_wait");
			break;
		}
		for (i = 0; i < n; i++) {
			struct conn *c = ev[i].data.ptr;

			if (c->st == C_FREE)
				continue;
			if (ev[i].events & (EPOLLOUT | EPOLLERR))
				conn_writable(c);
			if (c->st != C_FREE &&
			    ev[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
				conn_readable(c);
		}
	}
	for (i = 0; i < g.ntotal; i++)
		if (g.c[i].st != C_FREE)
			conn_abort(&g.c[i]);

	if (g.unsupported) {
		fprintf(stderr, "wsload: %s: the server does not support this "
		    "mode (%s %d)\n", mode_names[g.mode],
		    g.unsupported == 401 ? "auth" : "HTTP", g.unsupported);
		return 3;
	}
	if (g.fatal != NULL && strcmp(g.fatal, "interrupted") != 0) {
		fprintf(stderr, "wsload: stopped: %s\n", g.fatal);
		report();
		return 1;
	}
	report();
	rc = g.errors > 0 ? 1 : 0;
	if (g.mode == M_IDLE && g.idle_open == 0)
		rc = 1;
	return rc;
}
