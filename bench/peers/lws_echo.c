/*
 * lws_echo.c: a libwebsockets echo server, the bench's C peer for the
 * echo, idle and connect workloads. Every path upgrades; each message
 * comes back whole with its opcode. Messages queue per connection (the
 * client keeps several in flight) and lws writes one per writable
 * callback, as its API asks. Reading pauses while a queue is long.
 *
 *   lws_echo [--listen 127.0.0.1:0]
 *
 * prints "listening on ADDR:PORT" once the vhost listens. It allocates
 * per message: it is a bench peer, not vkws.
 */
#include <libwebsockets.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_MSG (16u << 20)	/* largest message echoed */
#define QUEUE_PAUSE 256		/* queued messages before reading pauses */

struct msg {
	struct msg *next;
	size_t len;
	int binary;
	unsigned char buf[];	/* LWS_PRE bytes, then the payload */
};

struct pss {
	struct msg *head, *tail;
	int queued, paused;
	unsigned char *rx;	/* fragments of the message being read */
	size_t rxlen, rxcap;
};

static volatile int stop;

static void
on_term(int sig)
{
	(void)sig;
	stop = 1;
}

static int
enqueue(struct lws *wsi, struct pss *p, const void *in, size_t len)
{
	struct msg *m;

	if (p->rxlen + len > MAX_MSG)
		return -1;
	if (p->rxlen + len > p->rxcap) {
		unsigned char *n = realloc(p->rx, (p->rxlen + len) * 2);

		if (n == NULL)
			return -1;
		p->rx = n;
		p->rxcap = (p->rxlen + len) * 2;
	}
	memcpy(p->rx + p->rxlen, in, len);
	p->rxlen += len;
	if (!lws_is_final_fragment(wsi) || lws_remaining_packet_payload(wsi))
		return 0;
	m = malloc(sizeof *m + LWS_PRE + p->rxlen);
	if (m == NULL)
		return -1;
	m->next = NULL;
	m->len = p->rxlen;
	m->binary = lws_frame_is_binary(wsi);
	memcpy(m->buf + LWS_PRE, p->rx, p->rxlen);
	p->rxlen = 0;
	if (p->tail != NULL)
		p->tail->next = m;
	else
		p->head = m;
	p->tail = m;
	if (++p->queued >= QUEUE_PAUSE && !p->paused) {
		lws_rx_flow_control(wsi, 0);
		p->paused = 1;
	}
	lws_callback_on_writable(wsi);
	return 0;
}

static int
callback(struct lws *wsi, enum lws_callback_reasons reason, void *user,
    void *in, size_t len)
{
	struct pss *p = user;
	struct msg *m;

	switch (reason) {
	case LWS_CALLBACK_ESTABLISHED:
		memset(p, 0, sizeof *p);
		break;
	case LWS_CALLBACK_RECEIVE:
		if (enqueue(wsi, p, in, len) < 0)
			return -1;
		break;
	case LWS_CALLBACK_SERVER_WRITEABLE:
		if ((m = p->head) == NULL)
			break;
		if (lws_write(wsi, m->buf + LWS_PRE, m->len, m->binary ?
		    LWS_WRITE_BINARY : LWS_WRITE_TEXT) < (int)m->len)
			return -1;
		p->head = m->next;
		if (p->head == NULL)
			p->tail = NULL;
		free(m);
		p->queued--;
		if (p->paused && p->queued < QUEUE_PAUSE / 2) {
			lws_rx_flow_control(wsi, 1);
			p->paused = 0;
		}
		if (p->head != NULL)
			lws_callback_on_writable(wsi);
		break;
	case LWS_CALLBACK_CLOSED:
		while ((m = p->head) != NULL) {
			p->head = m->next;
			free(m);
		}
		free(p->rx);
		memset(p, 0, sizeof *p);
		break;
	default:
		break;
	}
	return lws_callback_http_dummy(wsi, reason, user, in, len);
}

static const struct lws_protocols protocols[] = {
	{ "echo", callback, sizeof(struct pss), 65536, 0, NULL, 0 },
	{ NULL, NULL, 0, 0, 0, NULL, 0 }
};

int
main(int argc, char **argv)
{
	struct lws_context_creation_info info;
	struct lws_context *ctx;
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
			fprintf(stderr, "usage: lws_echo [--listen ADDR:PORT]\n");
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
		fprintf(stderr, "lws_echo: cannot listen on %s:%d\n", host, port);
		return 1;
	}
	printf("listening on %s:%d\n", host, lws_get_vhost_listen_port(vh));
	fflush(stdout);
	while (!stop && lws_service(ctx, 0) >= 0)
		;
	lws_context_destroy(ctx);
	return 0;
}
