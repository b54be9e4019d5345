/*
 * lws_broadcast.c: a libwebsockets chat-room server, the bench's C peer
 * for the fanout workload. It speaks just enough of vkws's chat JSON
 * (PROTOCOL.md section 3) for bench/wsload fanout:
 *
 *   {"type":"join","room":R,"id"?:N}            ack if id
 *   {"type":"chat","room":R,"content":S,"id"?:N} ack if id, then to every
 *       member of R, sender included:
 *       {"type":"chat","room":R,"seq":N,"from":{...},"message":S,
 *        "timestamp":T}
 *
 * It skips what wsload does not measure: tokens are neither checked nor
 * decoded (userId is "u" and a connection number), there is no auth
 * reply, no user_join, user_list or history, no leave, no rate limit.
 * A chat is formatted once into a shared ring; each member's writable
 * callback sends the ring entries of its rooms in order, one per
 * callback. A member that falls a whole ring behind is closed.
 *
 *   lws_broadcast [--listen 127.0.0.1:0]
 */
#include <libwebsockets.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#define MAX_ROOMS 64		/* rooms at once; one bit each per member */
#define ROOM_NAME 64		/* bytes of a room name */
#define RING 4096		/* broadcast messages kept for slow members */
#define MAX_IN 65536		/* largest request */
#define DIRECT 64		/* replies queued for one connection */
#define REPLY_MAX 160		/* bytes of one ack */

struct room {
	char name[ROOM_NAME + 1];
	uint64_t seq;
};

struct entry {
	int room;
	size_t len;
	unsigned char *buf;	/* LWS_PRE bytes, then the payload */
};

struct pss {
	uint64_t rooms;		/* bit i: member of room i */
	uint64_t tail;		/* next ring entry to look at */
	unsigned id;
	char rx[MAX_IN + 1];
	size_t rxlen;
	unsigned nd, dhead;	/* direct replies queued */
	unsigned short dlen[DIRECT];
	unsigned char direct[DIRECT][LWS_PRE + REPLY_MAX];
};

static struct room rooms[MAX_ROOMS];
static struct entry ring[RING];
static uint64_t head;		/* ring entries written so far */
static unsigned nextid;
static struct lws_context *ctx;
static volatile int stop;

static void
on_term(int sig)
{
	(void)sig;
	stop = 1;
}

/* The string value of "key" in a JSON object, as written (escapes kept):
 * enough for the requests wsload sends. */
static int
jstr(const char *s, const char *key, const char **v, size_t *n)
{
	char pat[32];
	const char *p, *e;

	snprintf(pat, sizeof pat, "\"%s\":\"", key);
	if ((p = strstr(s, pat)) == NULL)
		return -1;
	p += strlen(pat);
	for (e = p; *e != '\0' && *e != '"'; e++)
		if (*e == '\\' && e[1] != '\0')
			e++;
	if (*e != '"')
		return -1;
	*v = p;
	*n = (size_t)(e - p);
	return 0;
}

static long long
jid(const char *s)
{
	const char *p = strstr(s, "\"id\":");

	return p != NULL ? strtoll(p + 5, NULL, 10) : -1;
}

static int
room_find(const char *name, size_t n, int create)
{
	int i, free_i = -1;

	if (n == 0 || n > ROOM_NAME)
		return -1;
	for (i = 0; i < MAX_ROOMS; i++) {
		if (rooms[i].name[0] == '\0') {
			if (free_i < 0)
				free_i = i;
		} else if (strlen(rooms[i].name) == n &&
		    memcmp(rooms[i].name, name, n) == 0) {
			return i;
		}
	}
	if (!create || free_i < 0)
		return -1;
	memcpy(rooms[free_i].name, name, n);
	rooms[free_i].name[n] = '\0';
	return free_i;
}

static void
reply(struct lws *wsi, struct pss *p, long long id, int code)
{
	unsigned k;

	if (id < 0 || p->nd == DIRECT)
		return;
	k = (p->dhead + p->nd++) % DIRECT;
	p->dlen[k] = (unsigned short)snprintf((char *)p->direct[k] + LWS_PRE,
	    REPLY_MAX, "{\"type\":\"ack\",\"id\":%lld,\"code\":%d}", id, code);
	lws_callback_on_writable(wsi);
}

static void
chat(struct lws *wsi, struct pss *p, int r, const char *msg, size_t mn)
{
	struct entry *e = &ring[head % RING];
	struct timeval tv;
	size_t cap = LWS_PRE + mn + 256 + ROOM_NAME;
	int n;

	gettimeofday(&tv, NULL);
	free(e->buf);
	if ((e->buf = malloc(cap)) == NULL) {
		e->len = 0;
		return;
	}
	n = snprintf((char *)e->buf + LWS_PRE, cap - LWS_PRE,
	    "{\"type\":\"chat\",\"room\":\"%s\",\"seq\":%llu,\"from\":"
	    "{\"clientId\":\"c%u\",\"userId\":\"u%u\",\"userInfo\":{}},"
	    "\"message\":\"%.*s\",\"timestamp\":%lld}", rooms[r].name,
	    (unsigned long long)++rooms[r].seq, p->id, p->id, (int)mn, msg,
	    (long long)tv.tv_sec * 1000 + tv.tv_usec / 1000);
	e->len = (size_t)n;
	e->room = r;
	head++;
	lws_callback_on_writable_all_protocol(ctx, lws_get_protocol(wsi));
}

static void
request(struct lws *wsi, struct pss *p)
{
	const char *type, *room, *content;
	size_t tn, rn, cn;
	long long id = jid(p->rx);
	int r;

	if (jstr(p->rx, "type", &type, &tn) < 0 ||
	    jstr(p->rx, "room", &room, &rn) < 0) {
		reply(wsi, p, id, -2);
		return;
	}
	if (tn == 4 && memcmp(type, "join", 4) == 0) {
		if ((r = room_find(room, rn, 1)) < 0) {
			reply(wsi, p, id, -5);
			return;
		}
		p->rooms |= 1ull << r;
		reply(wsi, p, id, 0);
	} else if (tn == 4 && memcmp(type, "chat", 4) == 0 &&
	    jstr(p->rx, "content", &content, &cn) == 0) {
		r = room_find(room, rn, 0);
		if (r < 0 || !(p->rooms & 1ull << r)) {
			reply(wsi, p, id, -4);
			return;
		}
		/* The ack comes before the sender's own copy. */
		reply(wsi, p, id, 0);
		chat(wsi, p, r, content, cn);
	} else {
		reply(wsi, p, id, -1);
	}
}

/* One write per callback: a direct reply first, else the next ring entry
 * for one of this member's rooms. */
static int
writable(struct lws *wsi, struct pss *p)
{
	if (p->nd > 0) {
		unsigned k = p->dhead;

		if (lws_write(wsi, p->direct[k] + LWS_PRE, p->dlen[k],
		    LWS_WRITE_TEXT) < p->dlen[k])
			return -1;
		p->dhead = (k + 1) % DIRECT;
		p->nd--;
		lws_callback_on_writable(wsi);
		return 0;
	}
	if (head - p->tail > RING)
		return -1;	/* fell a whole ring behind */
	while (p->tail < head) {
		struct entry *e = &ring[p->tail++ % RING];

		if (e->len == 0 || !(p->rooms & 1ull << e->room))
			continue;
		if (lws_write(wsi, e->buf + LWS_PRE, e->len, LWS_WRITE_TEXT) <
		    (int)e->len)
			return -1;
		if (p->tail < head)
			lws_callback_on_writable(wsi);
		break;
	}
	return 0;
}

static int
callback(struct lws *wsi, enum lws_callback_reasons reason, void *user,
    void *in, size_t len)
{
	struct pss *p = user;

	switch (reason) {
	case LWS_CALLBACK_ESTABLISHED:
		p->rooms = 0;
		p->tail = head;
		p->id = ++nextid;
		p->rxlen = p->nd = p->dhead = 0;
		break;
	case LWS_CALLBACK_RECEIVE:
		if (p->rxlen + len > MAX_IN)
			return -1;
		memcpy(p->rx + p->rxlen, in, len);
		p->rxlen += len;
		if (lws_is_final_fragment(wsi) &&
		    lws_remaining_packet_payload(wsi) == 0) {
			p->rx[p->rxlen] = '\0';
			request(wsi, p);
			p->rxlen = 0;
		}
		break;
	case LWS_CALLBACK_SERVER_WRITEABLE:
		if (writable(wsi, p) < 0)
			return -1;
		break;
	default:
		break;
	}
	return lws_callback_http_dummy(wsi, reason, user, in, len);
}

static const struct lws_protocols protocols[] = {
	{ "vkws.json", callback, sizeof(struct pss), 65536, 0, NULL, 0 },
	{ NULL, NULL, 0, 0, 0, NULL, 0 }
};

int
main(int argc, char **argv)
{
	struct lws_context_creation_info info;
	struct lws_vhost *vh;
	char host[64] = "127.0.0.1";
	int port = 0, i;

	for (i = 1; i < argc; i++) {
		const char *colon;

		if (strcmp(argv[i], "--listen") == 0 && i + 1 < argc &&
		    (colon = strrchr(argv[i + 1], ':')) != NULL &&
		    (size_t)(colon - argv[i + 1]) < sizeof host) {
			memcpy(host, argv[i + 1], (size_t)(colon - argv[i + 1]));
			host[colon - argv[i + 1]] = '\0';
			port = atoi(colon + 1);
			i++;
		} else {
			fprintf(stderr,
			    "usage: lws_broadcast [--listen ADDR:PORT]\n");
			return 2;
		}
	}
	signal(SIGTERM, on_term);
	signal(SIGINT, on_term);
	lws_set_log_level(LLL_ERR, NULL);
	memset(&info, 0, sizeof info);
	info.options = LWS_SERVER_OPTION_EXPLICIT_VHOSTS |
	    LWS_SERVER_OPTION_DISABLE_IPV6;
	info.port = port;
	info.iface = host;
	info.protocols = protocols;
	info.max_http_header_pool = 1024;
	info.timeout_secs = 30;
	if ((ctx = lws_create_context(&info)) == NULL ||
	    (vh = lws_create_vhost(ctx, &info)) == NULL) {
		fprintf(stderr, "lws_broadcast: cannot listen on %s:%d\n",
		    host, port);
		return 1;
	}
	printf("listening on %s:%d\n", host, lws_get_vhost_listen_port(vh));
	fflush(stdout);
	while (!stop && lws_service(ctx, 0) >= 0)
		;
	lws_context_destroy(ctx);
	return 0;
}
