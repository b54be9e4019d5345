/*
 * vkws.c: the core. One poll() loop over a static table of connection
 * slots: accept, HTTP request heads and routing, the WebSocket handshake,
 * frame reassembly, send queues, deadlines and the close handshake.
 *
 * Memory: every buffer is a static array sized in vkws.h; nothing here
 * allocates. A slot's receive buffer is touched only when a frame arrives
 * split across reads (whole frames are handled in the shared read buffer),
 * and its send queue only when the socket does not take a reply at once.
 *
 * Order of one loop pass: timers, the pollfd set rebuilt from state,
 * poll(), signals, accepts, reads (each of which may queue replies to
 * any connection), one flush per connection with queued bytes, and last
 * the slots whose socket is done are freed.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "vkws.h"
#include "core.h"
#include "http.h"
#include "json.h"
#include "store.h"
#include "ws_frame.h"

struct conn vkws_conns[VKWS_SLOTS];
static uint8_t rxbuf[VKWS_SLOTS][VKWS_RX_BUF];
static uint8_t txbuf[VKWS_SLOTS][VKWS_TX_BUF];
static char infobuf[VKWS_SLOTS][VKWS_USERINFO_MAX];
static uint8_t scratch[VKWS_SCRATCH];

/* One past the highest slot in use: accept takes the lowest free slot,
 * so the loop's scans stay as short as the busiest moment needs. */
static size_t slot_hi;
/* The monotonic time of this loop pass (ms): good enough for activity
 * stamps, and one clock read per pass instead of one per frame. */
static int64_t pass_now;

/* Slots with queued output, flushed once each at the end of a pass. */
static uint16_t dirty[VKWS_SLOTS];
static size_t ndirty;

static struct vkws_config *cfg;
static int listen_fd = -1;	/* plain */
static int tls_fd = -1;		/* TLS */
static int sig_pipe[2] = { -1, -1 };
static volatile sig_atomic_t sig_term, sig_hup;
void (*vkws_hup_hook)(void);
static int stopping;
static int64_t stop_deadline;
static int64_t accept_pause_until;
struct vkws_counts vkws_count;

static void conn_free(struct conn *c);
static void id_assign(struct conn *c);
static ssize_t sock_writev(struct conn *c, struct iovec *iov, int n);
static void ws_process(struct conn *c);

/* ---- Time and logging ----------------------------------------------- */

int64_t
vkws_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t
vkws_wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void
vkws_log(const char *fmt, ...)
{
	static char line[512];
	va_list ap;
	int n, m;

	n = snprintf(line, sizeof(line), "vkws: ");
	va_start(ap, fmt);
	m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	if (m < 0)
		return;
	n += m;
	if ((size_t)n > sizeof(line) - 2)
		n = (int)sizeof(line) - 2;
	line[n++] = '\n';
	(void)!write(STDERR_FILENO, line, (size_t)n);
}

/* ---- Slots and send queues ------------------------------------------ */

static size_t
slot_of(const struct conn *c)
{
	return (size_t)(c - vkws_conns);
}

size_t
vkws_tx_free(const struct conn *c)
{
	return VKWS_TX_BUF - VKWS_CLOSE_RESERVE - c->txlen;
}

static void
mark_dirty(struct conn *c)
{
	if (!c->dirty) {
		c->dirty = 1;
		dirty[ndirty++] = (uint16_t)slot_of(c);
	}
}

/* Append p[0..n) to the send ring; the caller has checked the room. */
static void
tx_put(struct conn *c, const void *p, size_t n)
{
	uint8_t *q = txbuf[slot_of(c)];
	size_t tail = (c->txoff + c->txlen) % VKWS_TX_BUF;
	size_t first = VKWS_TX_BUF - tail;

	if (n == 0)
		return;	/* p may be NULL */
	if (first > n)
		first = n;
	memcpy(q + tail, p, first);
	memcpy(q, (const uint8_t *)p + first, n - first);
	c->txlen += (uint32_t)n;
	if (c->txlen > vkws_count.queue_hwm)
		vkws_count.queue_hwm = c->txlen;
	mark_dirty(c);
}

/*
 * Queue a||b, but write it to the socket at once when nothing is queued
 * before it: an HTTP reply that goes out whole never touches the slot's
 * send queue, so an idle connection costs no queue page. The caller has
 * checked the room.
 */
static void
tx_write_through(struct conn *c, const void *a, size_t an, const void *b,
    size_t bn)
{
	size_t done = 0;

	if (c->txlen == 0 && !c->tls) {
		struct iovec iov[2];
		ssize_t r;

		iov[0].iov_base = (void *)(uintptr_t)a;
		iov[0].iov_len = an;
		iov[1].iov_base = (void *)(uintptr_t)b;
		iov[1].iov_len = bn;
		r = sock_writev(c, iov, bn > 0 ? 2 : 1);
		if (r > 0)
			done = (size_t)r;
	}
	if (done < an)
		tx_put(c, (const uint8_t *)a + done, an - done);
	done = done > an ? done - an : 0;
	if (done < bn)
		tx_put(c, (const uint8_t *)b + done, bn - done);
}

int
vkws_tx_raw(struct conn *c, const void *p, size_t n)
{
	if (n > vkws_tx_free(c))
		return -1;
	tx_put(c, p, n);
	return 0;
}

/* A data message of n payload bytes went out (or is queued). */
static void
count_out(struct conn *c, size_t n)
{
	c->msgs_out++;
	c->bytes_out += n;
	vkws_count.msgs_out++;
	vkws_count.bytes_out += n;
}

/*
 * Queue one frame whose payload is the concatenation of a[0..an) and
 * b[0..bn). Returns 0, or -1 if the queue cannot take it whole.
 */
int
vkws_tx_frame2(struct conn *c, int op, const void *a, size_t an,
    const void *b, size_t bn)
{
	uint8_t h[WS_MAX_HEADER];
	size_t hn = ws_header_build(h, 1, op, (uint64_t)(an + bn));

	if (c->state != S_WS || c->close_sent)
		return -1;
	if (hn + an + bn > vkws_tx_free(c))
		return -1;
	tx_put(c, h, hn);
	tx_put(c, a, an);
	tx_put(c, b, bn);
	if (op == WS_OP_TEXT || op == WS_OP_BINARY)
		count_out(c, an + bn);
	return 0;
}

int
vkws_tx_frame(struct conn *c, int op, const void *p, size_t n)
{
	return vkws_tx_frame2(c, op, p, n, NULL, 0);
}

/*
 * Start the closing handshake (RFC 6455 7.1.2): queue a close frame with
 * code and reason, stop sending data, and wait a bounded time for the
 * peer's close. The frame goes into the reserve kept for it, so even a
 * full queue can say why it is closed.
 */
void
vkws_close(struct conn *c, uint16_t code, const char *reason)
{
	uint8_t h[WS_MAX_HEADER], p[WS_MAX_CONTROL];
	size_t rn = reason ? strlen(reason) : 0, hn;

	if (c->state != S_WS || c->close_sent)
		return;
	if (rn > WS_MAX_CONTROL - 2)
		rn = WS_MAX_CONTROL - 2;
	p[0] = (uint8_t)(code >> 8);
	p[1] = (uint8_t)code;
	if (rn > 0)
		memcpy(p + 2, reason, rn);
	hn = ws_header_build(h, 1, WS_OP_CLOSE, rn + 2);
	tx_put(c, h, hn);
	tx_put(c, p, rn + 2);
	c->close_sent = 1;
	c->close_code = code;
	c->deadline = vkws_now_ms() + (int64_t)cfg->close_timeout * 1000;
	vkws_count_close(code);
	if (c->close_rcvd)
		vkws_linger(c);
}

/*
 * After the last bytes are queued: flush them, shut the write side, and
 * read until the peer's EOF (or the close deadline), so that a close frame
 * still in flight is not destroyed by a reset from unread input.
 */
void
vkws_linger(struct conn *c)
{
	if (c->state == S_LINGER || c->state == S_FREE)
		return;
	if (c->state == S_WS)
		vkws_ws_closed(c);
	c->state = S_LINGER;
	c->deadline = vkws_now_ms() + (int64_t)cfg->close_timeout * 1000;
	mark_dirty(c);
}

/* Fail the connection (RFC 6455 7.1.7) for a codec error. */
static void
ws_fail(struct conn *c, int err)
{
	uint16_t code = ws_err_close_code(err);

	vkws_count.protocol_errors++;
	if (!c->close_sent)
		vkws_close(c, code, code == WS_CLOSE_TOO_BIG ?
		    "message too big" : code == WS_CLOSE_BAD_DATA ?
		    "invalid utf-8" : "protocol error");
	vkws_linger(c);
}

/* ---- HTTP ----------------------------------------------------------- */

static const char *
status_text(int status)
{
	switch (status) {
	case 101: return "Switching Protocols";
	case 200: return "OK";
	case 304: return "Not Modified";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 411: return "Length Required";
	case 413: return "Content Too Large";
	case 426: return "Upgrade Required";
	case 431: return "Request Header Fields Too Large";
	case 503: return "Service Unavailable";
	default: return "Internal Server Error";
	}
}

/*
 * Queue an HTTP response. extra is zero or more whole header lines, each
 * ending in CRLF. keep: leave the connection open for the next request;
 * otherwise it lingers closed once the response is out.
 */
void
vkws_http_reply(struct conn *c, int status, const char *extra,
    const char *type, const void *body, size_t n, int keep)
{
	static char head[1024];
	struct json_out o;

	json_out_init(&o, head, sizeof(head));
	json_out_lit(&o, "HTTP/1.1 ");
	json_out_uint(&o, (uint64_t)status);
	json_out_lit(&o, " ");
	json_out_lit(&o, status_text(status));
	json_out_lit(&o, "\r\nServer: vkws\r\nContent-Length: ");
	json_out_uint(&o, n);
	if (type) {
		json_out_lit(&o, "\r\nContent-Type: ");
		json_out_lit(&o, type);
	}
	json_out_lit(&o, keep ? "\r\n" : "\r\nConnection: close\r\n");
	if (extra)
		json_out_lit(&o, extra);
	json_out_lit(&o, "\r\n");
	if (!json_out_ok(&o) || o.n + n > vkws_tx_free(c)) {
		vkws_log("response %d does not fit the send queue", status);
		vkws_linger(c);
		return;
	}
	tx_write_through(c, head, o.n, body, n);
	if (!keep)
		vkws_linger(c);
}

static void
http_error(struct conn *c, int status, const char *extra)
{
	const char *t = status_text(status);

	vkws_count.http_errors++;
	vkws_http_reply(c, status, extra, "text/plain; charset=utf-8", t,
	    strlen(t), 0);
}

static int
origin_allowed(const struct http_req *r)
{
	const struct http_header *h;
	size_t i;

	if (cfg->norigins == 0)
		return 1;
	/* Non-browser clients send no Origin (PROTOCOL.md 7). */
	if ((h = http_header_get(r, "Origin")) == NULL)
		return 1;
	for (i = 0; i < cfg->norigins; i++) {
		const char *o = cfg->origins[i];
		if (h->value.n == strlen(o) && memcmp(h->value.p, o,
		    h->value.n) == 0)
			return 1;
	}
	return 0;
}

/* Whether the upgrade may take a WebSocket slot; answers 503 if not. */
static int
upgrade_capacity(struct conn *c, int pending)
{
	static const char retry[] = "Retry-After: 5\r\n";
	unsigned same_ip = 0;
	size_t i;

	if (vkws_count.ws_open >= cfg->max_conns ||
	    (pending && vkws_count.ws_pending >= cfg->max_pending)) {
		vkws_count.refused_full++;
		http_error(c, 503, retry);
		return 0;
	}
	if (cfg->max_per_ip) {
		for (i = 0; i < slot_hi; i++) {
			const struct conn *o = &vkws_conns[i];
			if (o != c && o->state >= S_WS && o->state != S_LINGER
			    && memcmp(o->ip, c->ip, sizeof(c->ip)) == 0)
				same_ip++;
		}
		if (same_ip >= cfg->max_per_ip) {
			vkws_count.refused_full++;
			http_error(c, 503, retry);
			return 0;
		}
	}
	return 1;
}

/* RFC 6455 4.2.1 and 4.2.2: check the opening handshake and answer it. */
static void
http_upgrade(struct conn *c, const struct http_req *r, int kind)
{
	static char extra[256];
	const struct http_header *ver, *key, *proto;
	const struct http_header *up = http_header_get(r, "Upgrade");
	const struct http_header *conn = http_header_get(r, "Connection");
	char accept[WS_ACCEPT_LEN];
	struct json_out o;
	int pending;

	if (!http_str_ieq(r->method, "GET")) {
		http_error(c, 405, "Allow: GET\r\n");
		return;
	}
	if (up == NULL || conn == NULL || !http_list_has(up->value,
	    "websocket") || !http_list_has(conn->value, "upgrade")) {
		http_error(c, 426, "Upgrade: websocket\r\n"
		    "Sec-WebSocket-Version: 13\r\n");
		return;
	}
	ver = http_header_get(r, "Sec-WebSocket-Version");
	key = http_header_get(r, "Sec-WebSocket-Key");
	if (r->minor < 1 || http_header_get(r, "Host") == NULL ||
	    key == NULL || !ws_key_valid(key->value.p, key->value.n)) {
		http_error(c, 400, NULL);
		return;
	}
	/* RFC 6455 4.4: say which version the server speaks. */
	if (ver == NULL || ver->value.n != 2 || memcmp(ver->value.p, "13",
	    2) != 0) {
		http_error(c, 400, "Sec-WebSocket-Version: 13\r\n");
		return;
	}
	if (!origin_allowed(r)) {
		http_error(c, 403, NULL);
		return;
	}
	pending = kind == K_CHAT && !vkws_token_ok(r);
	if (!upgrade_capacity(c, pending))
		return;

	ws_accept_key(key->value.p, key->value.n, accept);
	json_out_init(&o, extra, sizeof(extra));
	json_out_lit(&o, "HTTP/1.1 101 Switching Protocols\r\n"
	    "Upgrade: websocket\r\nConnection: Upgrade\r\n"
	    "Sec-WebSocket-Accept: ");
	json_out_raw(&o, accept, sizeof(accept));
	json_out_lit(&o, "\r\n");
	proto = http_header_get(r, "Sec-WebSocket-Protocol");
	if (proto != NULL && http_list_has(proto->value, "vkws.json"))
		json_out_lit(&o, "Sec-WebSocket-Protocol: vkws.json\r\n");
	json_out_lit(&o, "\r\n");
	/* A 101 has no body, so no Content-Length: written by hand. */
	if (!json_out_ok(&o) || o.n > vkws_tx_free(c)) {
		vkws_linger(c);
		return;
	}
	tx_write_through(c, extra, o.n, NULL, 0);
	c->state = S_WS;
	c->kind = (uint8_t)kind;
	id_assign(c);
	c->t_open = c->t_in = vkws_now_ms();
	c->deadline = 0;
	memset(&c->rx, 0, sizeof(c->rx));
	vkws_count.ws_open++;
	vkws_count.upgrades++;
	if (kind == K_CHAT)
		vkws_ws_opened(c, r);
}

/* Route one complete request head. Returns 1 if the connection stays
 * an HTTP connection and may carry another request. */
static int
http_route(struct conn *c, const struct http_req *r, const uint8_t *body,
    size_t avail, size_t *body_used)
{
	struct http_str path = r->path;

	*body_used = 0;
	/* Paths compare byte for byte (RFC 3986 6.2.2.1: case matters). */
	if (path.n == 3 && memcmp(path.p, "/ws", 3) == 0) {
		http_upgrade(c, r, K_CHAT);
		return 0;
	}
	if (cfg->echo && path.n == 5 && memcmp(path.p, "/echo", 5) == 0) {
		http_upgrade(c, r, K_ECHO);
		return 0;
	}
	return vkws_http_other(c, r, body, avail, body_used);
}

/*
 * Read and route request heads. A head larger than VKWS_MAX_HEAD is 431;
 * bytes after the head stay in the buffer, as the first frames of an
 * upgraded connection or the next pipelined request.
 */
static void
http_heads(struct conn *c, uint8_t *b)
{
	static struct http_req req;

	while (c->state == S_HTTP && c->raw > 0) {
		size_t used = 0, rest;
		int n;

		/* The rest of an /api body goes to its reader (api.c). */
		if (c->body_need > 0) {
			used = vkws_http_body(c, b, c->raw);
			if (used == 0)
				return;
			memmove(b, b + used, c->raw - used);
			c->raw -= (uint32_t)used;
			continue;
		}
		/* One response at a time: a pipelined request waits until
		 * the queue can take the largest reply (see loop_pass). */
		if (vkws_tx_free(c) < VKWS_HTTP_REPLY_ROOM) {
			c->held = 1;
			return;
		}
		n = http_parse(&req, (const char *)b, c->raw);
		if (n == HTTP_INCOMPLETE) {
			if (c->raw >= VKWS_MAX_HEAD)
				http_error(c, 431, NULL);
			return;
		}
		if (n == HTTP_TOO_MANY || n > VKWS_MAX_HEAD) {
			http_error(c, 431, NULL);
			return;
		}
		if (n < 0) {
			http_error(c, 400, NULL);
			return;
		}
		c->requests++;
		rest = c->raw - (size_t)n;
		if (!http_route(c, &req, b + n, rest, &used) &&
		    c->state == S_HTTP)
			return;	/* waiting for a body */
		rest -= used;
		memmove(b, b + (size_t)n + used, rest);
		c->raw = (uint32_t)rest;
		if (c->state == S_HTTP)
			c->deadline = vkws_now_ms() +
			    (int64_t)cfg->handshake_timeout * 1000;
	}
}

/*
 * Handle the c->raw bytes at b: the slot's receive buffer, or the shared
 * read buffer when a read found the slot's empty. Only what is left over
 * (part of a head, or the first frames after an upgrade) is copied into
 * the slot, so a request that arrives whole never touches its pages.
 */
static void
http_input(struct conn *c, uint8_t *b)
{
	uint8_t *own = rxbuf[slot_of(c)];

	http_heads(c, b);
	if (c->state != S_HTTP && c->state != S_WS)
		return;
	if (b != own && c->raw > 0)
		memcpy(own, b, c->raw);
	if (c->state == S_WS && c->raw > 0)
		ws_process(c);
}

/* ---- WebSocket frames ----------------------------------------------- */

/*
 * Echo a message. A large one goes from the read buffer straight to the
 * socket when nothing is queued before it, and only what the socket does
 * not take is copied into the queue; small ones are queued, so that one
 * pass writes them all with one sendmsg. Echo stores nothing, so nothing
 * waits for a log sync.
 */
static int
echo_frame(struct conn *c, int op, const uint8_t *p, size_t n)
{
	uint8_t h[WS_MAX_HEADER];
	size_t hn;

	if (n < VKWS_DIRECT_MIN || c->txlen > 0 || c->tls)
		return vkws_tx_frame(c, op, p, n);
	hn = ws_header_build(h, 1, op, (uint64_t)n);
	if (hn + n > vkws_tx_free(c))
		return -1;
	tx_write_through(c, h, hn, p, n);
	count_out(c, n);
	return 0;
}

/* Deliver a whole message. */
static void
ws_message(struct conn *c, int op, uint8_t *p, size_t n)
{
	c->msgs_in++;
	c->bytes_in += n;
	vkws_count.msgs_in++;
	vkws_count.bytes_in += n;
	if (c->close_sent)
		return;	/* RFC 6455 7.1.2: data after our close is dropped */
	if (c->kind == K_ECHO) {
		if (echo_frame(c, op, p, n) != 0)
			vkws_close(c, WS_CLOSE_TRY_AGAIN, "send queue full");
		return;
	}
	vkws_ws_message(c, op, p, n);
}

/* The peer's close frame (RFC 6455 5.5.1). */
static void
ws_close_frame(struct conn *c, const uint8_t *p, size_t n)
{
	uint16_t code;
	int r = ws_close_parse(p, n, &code);

	c->close_rcvd = 1;
	if (r < 0) {
		ws_fail(c, r);
		return;
	}
	if (c->close_sent) {
		vkws_linger(c);
		return;
	}
	/* Echo the status code; an empty close gets an empty close. */
	if (code == WS_CLOSE_NO_STATUS) {
		uint8_t h[2] = { 0x88, 0 };
		tx_put(c, h, 2);
		c->close_sent = 1;
		vkws_count_close(WS_CLOSE_NO_STATUS);
		vkws_linger(c);
	} else
		vkws_close(c, code, NULL);
}

static void
ws_frame(struct conn *c, const struct ws_frame *f, uint8_t *p, size_t n)
{
	uint8_t *msg = rxbuf[slot_of(c)];
	int op, r;

	switch (f->opcode) {
	case WS_OP_PING:
		/* RFC 6455 5.5.3: a pong carries the ping's payload. */
		if (!c->close_sent)
			(void)vkws_tx_frame(c, WS_OP_PONG, p, n);
		c->pings++;
		return;
	case WS_OP_PONG:
		return;
	case WS_OP_CLOSE:
		ws_close_frame(c, p, n);
		return;
	default:
		break;
	}
	op = f->opcode == WS_OP_CONT ? c->rx.msg_opcode : f->opcode;
	if ((r = ws_rx_accept(&c->rx, f, p, n)) < 0) {
		ws_fail(c, r);
		return;
	}
	if (r == 1 && c->frag == 0) {
		ws_message(c, op, p, n);
		return;
	}
	/* A fragment: keep it behind the earlier ones, which always lie
	 * before the frame being read, so nothing unread is overwritten. */
	memmove(msg + c->frag, p, n);
	c->frag += (uint32_t)n;
	if (r == 1) {
		size_t len = c->frag;
		c->frag = 0;
		ws_message(c, op, msg, len);
	}
}

/*
 * Parse and handle every whole frame in p[0..n). Returns the bytes used;
 * stops early at a partial frame, or when the send queue could not take
 * the largest reply (the rest waits until the queue drains).
 */
static size_t
ws_input(struct conn *c, uint8_t *p, size_t n)
{
	size_t off = 0;

	while (off < n && (c->state == S_WS)) {
		struct ws_frame f;
		size_t pn;
		int r = ws_frame_parse(&f, p + off, n - off, 1, &c->rx,
		    VKWS_MAX_MSG);

		if (r == 0)
			break;
		if (r < 0) {
			ws_fail(c, r);
			return n;
		}
		if (f.payload_len > n - off - f.hdr_len)
			break;
		if (vkws_tx_free(c) < VKWS_REPLY_ROOM && !c->close_sent) {
			c->held = 1;
			break;
		}
		pn = (size_t)f.payload_len;
		ws_unmask(p + off + f.hdr_len, pn, f.mask, 0);
		ws_frame(c, &f, p + off + f.hdr_len, pn);
		off += f.hdr_len + pn;
		c->t_in = pass_now;
	}
	return off;
}

/* Handle what the receive buffer holds: [fragments][raw bytes]. */
static void
ws_process(struct conn *c)
{
	uint8_t *b = rxbuf[slot_of(c)] + c->frag;
	size_t used = ws_input(c, b, c->raw);

	if (c->state != S_WS) {
		c->raw = 0;
		return;
	}
	/* Fragments appended during ws_input() moved c->frag forward. */
	memmove(rxbuf[slot_of(c)] + c->frag, b + used, c->raw - used);
	c->raw -= (uint32_t)used;
}

/* ---- Socket I/O ----------------------------------------------------- */

/*
 * The transport: plain sockets here, BearSSL in tls.c. Above these two
 * functions only plaintext exists. Both return bytes moved, 0 for EOF
 * (read), or -1 with errno (EAGAIN: try after poll()).
 */
static ssize_t
sock_read(struct conn *c, void *p, size_t n)
{
	ssize_t r;

	if (c->tls)
		return vkws_tls_recv(c, p, n);
	do
		r = recv(c->fd, p, n, 0);
	while (r < 0 && errno == EINTR);
	return r;
}

static ssize_t
sock_writev(struct conn *c, struct iovec *iov, int n)
{
	struct msghdr m;
	ssize_t r;

	if (c->tls)
		return vkws_tls_send(c, iov, n);
	memset(&m, 0, sizeof(m));
	m.msg_iov = iov;
	m.msg_iovlen = (size_t)n;
	do
		r = sendmsg(c->fd, &m, MSG_NOSIGNAL);
	while (r < 0 && errno == EINTR);
	return r;
}

static void
conn_read(struct conn *c)
{
	uint8_t *b = rxbuf[slot_of(c)];
	size_t room;
	ssize_t r;

	if (c->state == S_LINGER) {
		/* Discard input until EOF. */
		r = sock_read(c, scratch, sizeof(scratch));
		if (r == 0 || (r < 0 && errno != EAGAIN))
			conn_free(c);
		return;
	}
	room = VKWS_RX_BUF - c->frag - c->raw;
	if (c->raw > 0) {
		/* Continue a partial head or frame where it lies. */
		r = sock_read(c, b + c->frag + c->raw, room);
	} else {
		/* Whole heads and frames are handled in the shared buffer;
		 * only a partial one is copied into the slot. */
		r = sock_read(c, scratch, room);
	}
	if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
		if (c->state == S_WS && !c->close_rcvd)
			vkws_count.closes_abnormal++;
		conn_free(c);
		return;
	}
	if (r < 0)
		return;
	if (c->state == S_HTTP) {
		int fresh = c->raw == 0;
		c->raw += (uint32_t)r;
		http_input(c, fresh ? scratch : b);
	} else if (c->raw > 0) {
		c->raw += (uint32_t)r;
		ws_process(c);
	} else {
		size_t used = ws_input(c, scratch, (size_t)r);
		if (c->state == S_WS && used < (size_t)r) {
			memcpy(b + c->frag, scratch + used, (size_t)r - used);
			c->raw = (uint32_t)((size_t)r - used);
		}
	}
}

/* Write what is queued, at most VKWS_WRITE_CAP bytes per pass. */
static void
conn_flush(struct conn *c)
{
	const uint8_t *q = txbuf[slot_of(c)];
	size_t budget = VKWS_WRITE_CAP;

	while (c->txlen > 0 && budget > 0) {
		struct iovec iov[2];
		size_t first = VKWS_TX_BUF - c->txoff;
		ssize_t r;

		if (first > c->txlen)
			first = c->txlen;
		if (first > budget)
			first = budget;
		iov[0].iov_base = (void *)(uintptr_t)(q + c->txoff);
		iov[0].iov_len = first;
		iov[1].iov_base = (void *)(uintptr_t)q;
		iov[1].iov_len = c->txlen - first;
		if (iov[1].iov_len > budget - first)
			iov[1].iov_len = budget - first;
		r = sock_writev(c, iov, iov[1].iov_len ? 2 : 1);
		if (r < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				conn_free(c);
			return;
		}
		c->txoff = (uint32_t)((c->txoff + (size_t)r) % VKWS_TX_BUF);
		c->txlen -= (uint32_t)r;
		budget -= (size_t)r;
	}
	if (c->txlen > 0)
		return;
	c->txoff = 0;
	if (c->tls) {
		/* Records the engine still holds, then close_notify. */
		if (c->state == S_LINGER && !c->shut)
			vkws_tls_close(c);
		if (vkws_tls_flush(c) != 0)
			return;
	}
	if (c->state == S_LINGER && !c->shut) {
		c->shut = 1;
		shutdown(c->fd, SHUT_WR);
	}
}

static void
conn_free(struct conn *c)
{
	if (c->state == S_FREE)
		return;
	if (c->state == S_WS)
		vkws_ws_closed(c);
	if (c->tls)
		vkws_tls_free(c);
	close(c->fd);
	c->fd = -1;
	c->state = S_FREE;
	vkws_count.conns--;
	while (slot_hi > 0 && vkws_conns[slot_hi - 1].state == S_FREE)
		slot_hi--;
}

/* ---- Accept --------------------------------------------------------- */

static void
conn_accept(int lfd, int tls)
{
	int i, fd, one = 1;

	for (i = 0; i < VKWS_ACCEPT_BURST; i++) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		struct conn *c = NULL;
		size_t s;

		for (s = 0; s < VKWS_SLOTS; s++)
			if (vkws_conns[s].state == S_FREE) {
				c = &vkws_conns[s];
				break;
			}
		if (c == NULL)
			return;
		fd = accept(lfd, (struct sockaddr *)&ss, &sl);
		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE ||
			    errno == ENOBUFS || errno == ENOMEM) {
				/* Out of descriptors: back off instead of
				 * spinning on a listener that stays readable. */
				vkws_count.accept_errors++;
				accept_pause_until = vkws_now_ms() +
				    VKWS_ACCEPT_BACKOFF_MS;
			}
			return;
		}
		if (fcntl(fd, F_SETFL, O_NONBLOCK) < 0 ||
		    fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) {
			close(fd);
			continue;
		}
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		memset(c, 0, sizeof(*c));
		memset(c->rooms, 0xFF, sizeof(c->rooms));
		c->user_next = VKWS_NO_ROOM;
		c->body_slot = VKWS_NO_ROOM;
		c->info = infobuf[s];
		c->fd = fd;
		c->state = S_HTTP;
		if (s + 1 > slot_hi)
			slot_hi = s + 1;
		c->deadline = vkws_now_ms() +
		    (int64_t)cfg->handshake_timeout * 1000;
		vkws_addr_set(c, &ss);
		if (tls && vkws_tls_accept(c) < 0) {
			/* The engine pool is full: refuse at once, so the
			 * plain listener is not affected. */
			vkws_count.refused_tls++;
			close(fd);
			c->state = S_FREE;
			c->fd = -1;
			continue;
		}
		vkws_count.conns++;
		vkws_count.accepted++;
	}
}

/* ---- Timers --------------------------------------------------------- */

/* Act on the deadlines of c that have passed; return the next one. */
static int64_t
conn_timer(struct conn *c, int64_t now)
{
	switch (c->state) {
	case S_HTTP:
		if (now >= c->deadline) {
			vkws_count.timeouts_handshake++;
			conn_free(c);
			return INT64_MAX;
		}
		return c->deadline;
	case S_LINGER:
		if (now >= c->deadline) {
			conn_free(c);
			return INT64_MAX;
		}
		return c->deadline;
	case S_WS:
		if (c->close_sent) {
			if (now >= c->deadline) {
				vkws_linger(c);
				return c->deadline;
			}
			return c->deadline;
		}
		if (now >= c->t_in + (int64_t)cfg->idle_timeout * 1000) {
			vkws_close(c, WS_CLOSE_IDLE, "idle timeout");
			return c->deadline;
		}
		{
			int64_t next = c->t_in +
			    (int64_t)cfg->idle_timeout * 1000;
			if (c->kind == K_CHAT) {
				int64_t t = vkws_ws_timer(c, now);
				if (c->close_sent || c->state != S_WS)
					return c->deadline;
				if (t < next)
					next = t;
			}
			return next;
		}
	default:
		return INT64_MAX;
	}
}

/* ---- Signals -------------------------------------------------------- */

static void
on_signal(int sig)
{
	int e = errno;

	if (sig == SIGHUP)
		sig_hup = 1;
	else
		sig_term = 1;
	(void)!write(sig_pipe[1], "", 1);
	errno = e;
}

static int
signals_init(void)
{
	struct sigaction sa;

	if (pipe(sig_pipe) < 0)
		return -1;
	fcntl(sig_pipe[0], F_SETFL, O_NONBLOCK);
	fcntl(sig_pipe[1], F_SETFL, O_NONBLOCK);
	fcntl(sig_pipe[0], F_SETFD, FD_CLOEXEC);
	fcntl(sig_pipe[1], F_SETFD, FD_CLOEXEC);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	return 0;
}

/* SIGTERM: stop accepting, close every WebSocket with 1001, flush. */
static void
begin_shutdown(void)
{
	size_t i;

	stopping = 1;
	stop_deadline = vkws_now_ms() + (int64_t)VKWS_SHUTDOWN_GRACE * 1000;
	if (listen_fd >= 0) {
		close(listen_fd);
		listen_fd = -1;
	}
	if (tls_fd >= 0) {
		close(tls_fd);
		tls_fd = -1;
	}
	vkws_log("shutting down");
	for (i = 0; i < slot_hi; i++) {
		struct conn *c = &vkws_conns[i];
		if (c->state == S_HTTP)
			conn_free(c);
		else if (c->state == S_WS) {
			if (c->kind == K_CHAT)
				vkws_ws_shutdown(c);
			vkws_close(c, WS_CLOSE_GOING_AWAY, "server shutdown");
		}
	}
}

/* ---- Listener ------------------------------------------------------- */

const char *
vkws_strerror(int code)
{
	switch (code) {
	case VKWS_OK: return "ok";
	case VKWS_EUNKNOWN: return "未知操作";
	case VKWS_EINVAL: return "invalid request";
	case VKWS_ENOTFOUND: return "not found";
	case VKWS_EPERM: return "not allowed";
	case VKWS_ELIMIT: return "limit reached";
	case VKWS_ERATE: return "rate limited";
	default: return "server error";
	}
}

int
vkws_addr_parse(const char *spec, struct sockaddr_storage *ss, unsigned *sl)
{
	const char *colon = strrchr(spec, ':');
	char host[VKWS_ADDR_MAX];
	size_t hn;
	long port;
	char *end;

	if (colon == NULL || (hn = (size_t)(colon - spec)) >= sizeof(host))
		return -1;
	memcpy(host, spec, hn);
	host[hn] = '\0';
	port = strtol(colon + 1, &end, 10);
	if (*end != '\0' || end == colon + 1 || port < 0 || port > 65535)
		return -1;
	memset(ss, 0, sizeof(*ss));
	if (hn >= 2 && host[0] == '[' && host[hn - 1] == ']') {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
		host[hn - 1] = '\0';
		if (inet_pton(AF_INET6, host + 1, &a->sin6_addr) != 1)
			return -1;
		a->sin6_family = AF_INET6;
		a->sin6_port = htons((uint16_t)port);
		*sl = sizeof(*a);
	} else {
		struct sockaddr_in *a = (struct sockaddr_in *)ss;
		if (inet_pton(AF_INET, host, &a->sin_addr) != 1)
			return -1;
		a->sin_family = AF_INET;
		a->sin_port = htons((uint16_t)port);
		*sl = sizeof(*a);
	}
	return 0;
}

static int
listen_open(const char *spec, char *shown, size_t shown_cap)
{
	struct sockaddr_storage ss;
	unsigned al;
	socklen_t sl;
	int fd, one = 1, v6;

	if (vkws_addr_parse(spec, &ss, &al) < 0)
		return -1;
	sl = (socklen_t)al;
	v6 = ss.ss_family == AF_INET6;
	fd = socket(ss.ss_family, SOCK_STREAM, 0);
	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, sl) < 0 || listen(fd, 512) < 0 ||
	    fcntl(fd, F_SETFL, O_NONBLOCK) < 0 ||
	    getsockname(fd, (struct sockaddr *)&ss, &sl) < 0) {
		close(fd);
		return -1;
	}
	fcntl(fd, F_SETFD, FD_CLOEXEC);
	if (v6) {
		char a[INET6_ADDRSTRLEN];
		const struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
		inet_ntop(AF_INET6, &s6->sin6_addr, a, sizeof(a));
		snprintf(shown, shown_cap, "[%s]:%u", a,
		    (unsigned)ntohs(s6->sin6_port));
	} else {
		char a[INET_ADDRSTRLEN];
		const struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
		inet_ntop(AF_INET, &s4->sin_addr, a, sizeof(a));
		snprintf(shown, shown_cap, "%s:%u", a,
		    (unsigned)ntohs(s4->sin_port));
	}
	return fd;
}

/* ---- The loop ------------------------------------------------------- */

/* pollfd entries: one per slot that waits for something, then the
 * self-pipe and the listeners, marked in pslot by these values. */
enum { P_SIGNAL = UINT16_MAX, P_LISTEN = UINT16_MAX - 1,
    P_LISTEN_TLS = UINT16_MAX - 2 };
static struct pollfd pfd[VKWS_SLOTS + 3];
static uint16_t pslot[VKWS_SLOTS + 3];

/* What c waits for: input only while its buffers can take it. */
static short
conn_events(const struct conn *c)
{
	short ev = 0;

	if (c->txlen > 0)
		ev |= POLLOUT;
	switch (c->state) {
	case S_HTTP:
		if (c->raw < VKWS_RX_BUF)
			ev |= POLLIN;
		break;
	case S_WS:
		if (vkws_tx_free(c) >= VKWS_REPLY_ROOM &&
		    c->frag + c->raw < VKWS_RX_BUF)
			ev |= POLLIN;
		break;
	case S_LINGER:
		ev |= POLLIN;
		break;
	default:
		break;
	}
	/* TLS turns the plaintext wishes into what the engine needs. */
	if (c->tls)
		return vkws_tls_events(c, ev);
	return ev;
}

static void
loop_pass(void)
{
	int64_t now = vkws_now_ms(), next = INT64_MAX;
	nfds_t n = 0, i;
	size_t s;
	int timeout, r;

	pass_now = now;

	for (s = 0; s < slot_hi; s++) {
		struct conn *c = &vkws_conns[s];
		int64_t t;
		short ev;

		if (c->state == S_FREE)
			continue;
		t = conn_timer(c, now);
		if (t < next)
			next = t;
		if (c->state == S_FREE)
			continue;
		/* Frames held back for lack of queue room go on once the
		 * queue has drained. */
		if (c->held && c->state == S_HTTP &&
		    vkws_tx_free(c) >= VKWS_HTTP_REPLY_ROOM) {
			c->held = 0;
			http_input(c, rxbuf[s]);
		} else if (c->held && c->state == S_WS &&
		    vkws_tx_free(c) >= VKWS_REPLY_ROOM) {
			c->held = 0;
			ws_process(c);
		}
		if (c->state == S_FREE)
			continue;
		if ((ev = conn_events(c)) == 0)
			continue;
		/* poll() cannot see plaintext BearSSL has already
		 * decrypted: such a slot is read without waiting. */
		c->ready = c->tls && (ev & POLLIN) && vkws_tls_pending(c);
		if (c->ready)
			next = now;
		pfd[n].fd = c->fd;
		pfd[n].events = ev;
		pfd[n].revents = 0;
		pslot[n++] = (uint16_t)s;
	}
	/* Flush what the timers queued before sleeping. */
	for (s = 0; s < ndirty; s++) {
		struct conn *c = &vkws_conns[dirty[s]];
		c->dirty = 0;
		if (c->state != S_FREE)
			conn_flush(c);
		/* A pipelined request held for this reply may go on now,
		 * without waiting for the socket to say anything. */
		if (c->held && c->state == S_HTTP &&
		    vkws_tx_free(c) >= VKWS_HTTP_REPLY_ROOM)
			next = now;
	}
	ndirty = 0;
	pfd[n].fd = sig_pipe[0];
	pfd[n].events = POLLIN;
	pfd[n].revents = 0;
	pslot[n++] = P_SIGNAL;
	/* The listeners are polled only while a slot is free. */
	if (vkws_count.conns < VKWS_SLOTS && now >= accept_pause_until) {
		if (listen_fd >= 0) {
			pfd[n].fd = listen_fd;
			pfd[n].events = POLLIN;
			pfd[n].revents = 0;
			pslot[n++] = P_LISTEN;
		}
		if (tls_fd >= 0) {
			pfd[n].fd = tls_fd;
			pfd[n].events = POLLIN;
			pfd[n].revents = 0;
			pslot[n++] = P_LISTEN_TLS;
		}
	} else if (accept_pause_until > now && accept_pause_until < next)
		next = accept_pause_until;
	if (stopping && stop_deadline < next)
		next = stop_deadline;

	if (next == INT64_MAX)
		timeout = -1;
	else if (next <= now)
		timeout = 0;
	else if (next - now > 60000)
		timeout = 60000;
	else
		timeout = (int)(next - now);
	r = poll(pfd, n, timeout);
	pass_now = vkws_now_ms();
	if (r < 0)
		return;	/* EINTR: the self-pipe says what came */

	for (i = 0; i < n; i++) {
		struct conn *c;

		if (pfd[i].revents == 0 && (pslot[i] >= VKWS_SLOTS ||
		    !vkws_conns[pslot[i]].ready))
			continue;
		if (pslot[i] == P_SIGNAL) {
			char drain[64];
			while (read(sig_pipe[0], drain, sizeof(drain)) > 0)
				;
			if (sig_term && !stopping)
				begin_shutdown();
			if (sig_hup) {
				sig_hup = 0;
				if (vkws_hup_hook != NULL)
					vkws_hup_hook();
				vkws_reload();
				/* A new certificate and key for new
				 * handshakes; open connections keep theirs. */
				if (tls_fd >= 0)
					vkws_tls_reload();
			}
			continue;
		}
		if (pslot[i] == P_LISTEN || pslot[i] == P_LISTEN_TLS) {
			if (!stopping)
				conn_accept(pfd[i].fd, pslot[i] == P_LISTEN_TLS);
			continue;
		}
		c = &vkws_conns[pslot[i]];
		if (c->state == S_FREE || c->fd != pfd[i].fd)
			continue;
		if ((pfd[i].revents & (POLLIN | POLLHUP | POLLERR)) ||
		    c->ready)
			conn_read(c);
		if (c->state != S_FREE && (pfd[i].revents & POLLOUT))
			mark_dirty(c);
	}
	vkws_after_pass();
	for (s = 0; s < ndirty; s++) {
		struct conn *c = &vkws_conns[dirty[s]];
		c->dirty = 0;
		if (c->state != S_FREE)
			conn_flush(c);
	}
	ndirty = 0;
}

void
vkws_config_default(struct vkws_config *c)
{
	memset(c, 0, sizeof(*c));
	memcpy(c->listen, "127.0.0.1:8080", sizeof("127.0.0.1:8080"));
	memcpy(c->default_room, "general", sizeof("general"));
	c->max_conns = VKWS_MAX_CONNS;
	c->max_pending = VKWS_MAX_PENDING;
	c->history = VKWS_HISTORY;
	c->rate = VKWS_RATE;
	c->rate_burst = 2 * VKWS_RATE;
	c->rate_grace = VKWS_RATE_GRACE;
	c->handshake_timeout = VKWS_HANDSHAKE_TIMEOUT;
	c->auth_timeout = VKWS_AUTH_TIMEOUT;
	c->ping_interval = VKWS_PING_INTERVAL;
	c->idle_timeout = VKWS_IDLE_TIMEOUT;
	c->close_timeout = VKWS_CLOSE_TIMEOUT;
	c->active_window = VKWS_ACTIVE_WINDOW;
}

/* Every slot needs a descriptor: lift the soft limit toward the hard one
 * so the table, not the default of 1024, is what bounds connections. */
static void
raise_fd_limit(void)
{
	struct rlimit rl;
	rlim_t want = VKWS_SLOTS + 64;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= want)
		return;
	rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want ?
	    want : rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
		vkws_log("cannot raise the descriptor limit");
}

/* After SIGTERM: whether a connection still has output to deliver or
 * waits for the peer's close. One that has shut its write side is done. */
static int
draining(void)
{
	size_t s;

	for (s = 0; s < slot_hi; s++) {
		const struct conn *c = &vkws_conns[s];
		if (c->state != S_FREE && !(c->state == S_LINGER && c->shut))
			return 1;
	}
	return 0;
}

int
vkws_serve(struct vkws_config *c)
{
	static char shown[VKWS_ADDR_MAX + 16], line[VKWS_ADDR_MAX + 32];
	int n;

	cfg = c;
	raise_fd_limit();
	/* A zeroed slot is S_FREE: the table is not written until used, so
	 * its pages cost nothing before then. */
	vkws_rooms_init();
	if (signals_init() < 0 || vkws_api_init(c) < 0)
		return 1;
	/* TLS material is loaded before anything listens: a bad file stops
	 * the server at start, never half-configured. */
	if (c->tls_listen[0] != '\0' && vkws_tls_init(c) < 0)
		return 1;
	if (vkws_store_open(c) < 0)
		return 1;
	vkws_budget(STDERR_FILENO);
	if (c->listen[0] != '\0') {
		listen_fd = listen_open(c->listen, shown, sizeof(shown));
		if (listen_fd < 0) {
			vkws_log("cannot listen on %s: %s", c->listen,
			    strerror(errno));
			return 1;
		}
		n = snprintf(line, sizeof(line), "listening on %s\n", shown);
		(void)!write(STDOUT_FILENO, line, (size_t)n);
	}
	if (c->tls_listen[0] != '\0') {
		tls_fd = listen_open(c->tls_listen, shown, sizeof(shown));
		if (tls_fd < 0) {
			vkws_log("cannot listen on %s: %s", c->tls_listen,
			    strerror(errno));
			return 1;
		}
		n = snprintf(line, sizeof(line), "listening on %s tls\n",
		    shown);
		(void)!write(STDOUT_FILENO, line, (size_t)n);
	}
	while (!stopping || (draining() && vkws_now_ms() < stop_deadline))
		loop_pass();
	vkws_api_stop();
	vkws_log("stopped");
	return 0;
}

void
vkws_budget(int fd)
{
	static char out[1024];
	size_t rooms_sz = vkws_rooms_static_size();
	size_t api_sz = vkws_api_static_size();
	size_t tls_sz = vkws_tls_static_size();
	size_t log_sz = vkws_store_static_size();
	size_t total = sizeof(vkws_conns) + sizeof(rxbuf) + sizeof(txbuf) +
	    sizeof(infobuf) + sizeof(scratch) + rooms_sz + api_sz + tls_sz +
	    log_sz;
	int n;

	n = snprintf(out, sizeof(out),
	    "static memory budget (bytes)\n"
	    "  connection slots   %9zu  (%d + %d spare) x %zu\n"
	    "  receive buffers    %9zu  %d x %d\n"
	    "  send queues        %9zu  %d x %d\n"
	    "  client data        %9zu  %d x %d\n"
	    "  shared read buffer %9zu\n"
	    "  rooms and history  %9zu  %d rooms\n"
	    "  requests and API   %9zu\n"
	    "  TLS engines        %9zu  %d x %zu, and the key pair\n"
	    "  log buffers        %9zu\n"
	    "  per connection     %9zu\n"
	    "  per TLS connection %9zu\n"
	    "  total              %9zu\n",
	    sizeof(vkws_conns), VKWS_MAX_CONNS, VKWS_SPARE_SLOTS,
	    sizeof(struct conn),
	    sizeof(rxbuf), VKWS_SLOTS, VKWS_RX_BUF,
	    sizeof(txbuf), VKWS_SLOTS, VKWS_TX_BUF,
	    sizeof(infobuf), VKWS_SLOTS, VKWS_USERINFO_MAX,
	    sizeof(scratch), rooms_sz, VKWS_MAX_ROOMS, api_sz,
	    tls_sz, VKWS_MAX_TLS_CONNS, vkws_tls_conn_size(), log_sz,
	    sizeof(struct conn) + VKWS_RX_BUF + VKWS_TX_BUF +
	    VKWS_USERINFO_MAX, vkws_tls_conn_size(), total);
	if (n > 0)
		(void)!write(fd, out, (size_t)n);
}

/* ---- Client ids ----------------------------------------------------- */

/*
 * A clientId is the hex of (counter << 16 | slot): the slot makes the
 * lookup O(1), the counter makes an id never name a later occupant of
 * the same slot.
 */
static uint64_t id_counter;

static void
id_assign(struct conn *c)
{
	c->id = (++id_counter << 16) | slot_of(c);
}

size_t
vkws_client_id(const struct conn *c, char *out)
{
	static const char hex[] = "0123456789abcdef";
	char tmp[16];
	uint64_t v = c->id;
	size_t n = 0, i;

	do {
		tmp[n++] = hex[v & 15];
		v >>= 4;
	} while (v != 0);
	for (i = 0; i < n; i++)
		out[i] = tmp[n - 1 - i];
	return n;
}

struct conn *
vkws_conn_by_id(const char *s, size_t n)
{
	uint64_t v = 0;
	size_t i, slot;
	struct conn *c;

	if (n == 0 || n > 16)
		return NULL;
	for (i = 0; i < n; i++) {
		int d;
		if (s[i] >= '0' && s[i] <= '9')
			d = s[i] - '0';
		else if (s[i] >= 'a' && s[i] <= 'f')
			d = s[i] - 'a' + 10;
		else
			return NULL;
		v = v << 4 | (uint64_t)d;
	}
	slot = (size_t)(v & 0xFFFF);
	if (slot >= VKWS_SLOTS)
		return NULL;
	c = &vkws_conns[slot];
	if (c->state != S_WS || c->id != v)
		return NULL;
	return c;
}

/* ---- Users ---------------------------------------------------------- */

/* Connections by user id: hash buckets chained through conn.user_next,
 * so a private message does not scan every connection or room. */
#define USER_BUCKETS 1024
_Static_assert((USER_BUCKETS & (USER_BUCKETS - 1)) == 0, "power of two");
static uint16_t user_head[USER_BUCKETS];

static uint32_t
hash(const char *p, size_t n)
{
	uint32_t h = 2166136261u;	/* FNV-1a */
	size_t i;

	for (i = 0; i < n; i++) {
		h ^= (uint8_t)p[i];
		h *= 16777619u;
	}
	return h;
}

static void
user_link(struct conn *c)
{
	uint32_t b = hash(c->uid, c->uid_len) & (USER_BUCKETS - 1);

	c->user_next = user_head[b];
	user_head[b] = (uint16_t)slot_of(c);
}

static void
user_unlink(struct conn *c)
{
	uint32_t b = hash(c->uid, c->uid_len) & (USER_BUCKETS - 1);
	uint16_t *p = &user_head[b];

	while (*p != VKWS_NO_ROOM) {
		if (*p == slot_of(c)) {
			*p = c->user_next;
			return;
		}
		p = &vkws_conns[*p].user_next;
	}
}

/* First connection of the user after slot 'after' in its bucket chain
 * (VKWS_NO_ROOM to start); NULL at the end. */
static struct conn *
user_next(const char *uid, size_t n, uint16_t *it)
{
	uint16_t s = *it == VKWS_NO_ROOM ?
	    user_head[hash(uid, n) & (USER_BUCKETS - 1)] :
	    vkws_conns[*it].user_next;

	for (; s != VKWS_NO_ROOM; s = vkws_conns[s].user_next) {
		struct conn *c = &vkws_conns[s];
		if (c->uid_len == n && memcmp(c->uid, uid, n) == 0 &&
		    c->state == S_WS && c->authed) {
			*it = s;
			return c;
		}
	}
	*it = VKWS_NO_ROOM;
	return NULL;
}

/* Whether uid has an authenticated connection. */
int
vkws_user_exists(const char *uid, size_t n)
{
	uint16_t it = VKWS_NO_ROOM;

	return user_next(uid, n, &it) != NULL;
}

/* ---- Rooms ---------------------------------------------------------- */

/*
 * A room's members are a doubly linked list of membership nodes; node
 * slot * VKWS_ROOMS_PER_CONN + k is entry k of the slot's room list. So a
 * room broadcast walks its members only, and leaving is O(1).
 */
#define NODES (VKWS_SLOTS * VKWS_ROOMS_PER_CONN)
#define NODE_NONE UINT32_MAX
#define ROOM_BUCKETS 512
_Static_assert((ROOM_BUCKETS & (ROOM_BUCKETS - 1)) == 0, "power of two");
_Static_assert(VKWS_MAX_ROOMS < VKWS_NO_ROOM, "room index fits 16 bits");
_Static_assert(VKWS_SLOTS < VKWS_NO_ROOM, "slot index fits 16 bits");

struct room {
	uint8_t used;
	uint8_t persistent;
	uint8_t name_len;
	char name[VKWS_ROOM_NAME_MAX];
	uint16_t hnext;		/* next room in the hash bucket */
	uint32_t members;
	uint32_t max_clients;	/* 0: the server's limit */
	uint32_t head;		/* first membership node */
	int64_t created_at;	/* wall ms */
	uint64_t seq;		/* seq of the last stored chat message */
	uint64_t dropped;	/* highest seq no longer kept, 0: none */
	uint32_t h_off;		/* history ring: oldest entry */
	uint32_t h_len;		/* history ring: bytes used */
	uint32_t h_count;	/* history ring: entries */
};

static struct room rooms[VKWS_MAX_ROOMS];
static uint16_t room_head[ROOM_BUCKETS];
static uint32_t mem_next[NODES], mem_prev[NODES];
static uint8_t hist[VKWS_MAX_ROOMS][VKWS_HISTORY_BYTES];
/* One encoded outgoing frame, queued to as many connections as need it. */
static char out_buf[VKWS_MAX_OUT];

size_t
vkws_rooms_static_size(void)
{
	return sizeof(rooms) + sizeof(room_head) + sizeof(mem_next) +
	    sizeof(mem_prev) + sizeof(hist) + sizeof(out_buf) +
	    sizeof(user_head);
}

static size_t
room_index(const struct room *r)
{
	return (size_t)(r - rooms);
}

static uint32_t
room_bucket(const char *name, size_t n)
{
	return hash(name, n) & (ROOM_BUCKETS - 1);
}

struct room *
vkws_room_find(const char *name, size_t n)
{
	uint16_t i = room_head[room_bucket(name, n)];

	for (; i != VKWS_NO_ROOM; i = rooms[i].hnext)
		if (rooms[i].name_len == n && memcmp(rooms[i].name, name,
		    n) == 0)
			return &rooms[i];
	return NULL;
}

int
vkws_room_name_ok(const char *name, size_t n)
{
	size_t i;

	if (n == 0 || n > VKWS_ROOM_NAME_MAX)
		return 0;
	for (i = 0; i < n; i++)
		if ((uint8_t)name[i] < 0x20 || name[i] == 0x7F)
			return 0;
	return 1;
}

static struct room *
room_create(const char *name, size_t n)
{
	size_t i;
	uint32_t b;

	if (!vkws_room_name_ok(name, n))
		return NULL;
	for (i = 0; i < VKWS_MAX_ROOMS; i++)
		if (!rooms[i].used)
			break;
	if (i == VKWS_MAX_ROOMS)
		return NULL;
	memset(&rooms[i], 0, sizeof(rooms[i]));
	rooms[i].used = 1;
	rooms[i].name_len = (uint8_t)n;
	memcpy(rooms[i].name, name, n);
	rooms[i].head = NODE_NONE;
	rooms[i].created_at = vkws_wall_ms();
	b = room_bucket(name, n);
	rooms[i].hnext = room_head[b];
	room_head[b] = (uint16_t)i;
	vkws_count.rooms++;
	return &rooms[i];
}

int
vkws_room_is_default(const struct room *r)
{
	size_t n = strlen(cfg->default_room);

	return n == r->name_len && memcmp(r->name, cfg->default_room, n) == 0;
}

/* Take r out of the table without a log record. */
static void
room_remove_quiet(struct room *r)
{
	uint16_t *p = &room_head[room_bucket(r->name, r->name_len)];

	while (*p != VKWS_NO_ROOM) {
		if (*p == room_index(r)) {
			*p = r->hnext;
			break;
		}
		p = &rooms[*p].hnext;
	}
	r->used = 0;
	vkws_count.rooms--;
}

/* Remove a room that has no members (or whose members were unlinked);
 * the log forgets it too, so its seq starts over (PROTOCOL.md 7). */
static void
room_remove(struct room *r)
{
	(void)vkws_store_room_deleted(r->name, r->name_len);
	room_remove_quiet(r);
}

/* Which entry of c's room list holds room r, or -1. */
static int
member_entry(const struct conn *c, const struct room *r)
{
	int k;

	for (k = 0; k < VKWS_ROOMS_PER_CONN; k++)
		if (c->rooms[k] == room_index(r))
			return k;
	return -1;
}

int
vkws_room_is_member(const struct conn *c, const struct room *r)
{
	return member_entry(c, r) >= 0;
}

static void
member_link(struct conn *c, struct room *r, int k)
{
	uint32_t node = (uint32_t)(slot_of(c) * VKWS_ROOMS_PER_CONN +
	    (size_t)k);

	c->rooms[k] = (uint16_t)room_index(r);
	c->nrooms++;
	mem_prev[node] = NODE_NONE;
	mem_next[node] = r->head;
	if (r->head != NODE_NONE)
		mem_prev[r->head] = node;
	r->head = node;
	r->members++;
}

static void
member_unlink(struct conn *c, struct room *r, int k)
{
	uint32_t node = (uint32_t)(slot_of(c) * VKWS_ROOMS_PER_CONN +
	    (size_t)k);

	if (mem_prev[node] != NODE_NONE)
		mem_next[mem_prev[node]] = mem_next[node];
	else
		r->head = mem_next[node];
	if (mem_next[node] != NODE_NONE)
		mem_prev[mem_next[node]] = mem_prev[node];
	c->rooms[k] = VKWS_NO_ROOM;
	c->nrooms--;
	r->members--;
}

static struct conn *
node_conn(uint32_t node)
{
	return &vkws_conns[node / VKWS_ROOMS_PER_CONN];
}

/* ---- Encoding ------------------------------------------------------- */

void
vkws_out_user(struct json_out *o, const struct conn *c)
{
	char id[VKWS_CLIENT_ID_MAX];

	json_out_lit(o, "{\"clientId\":\"");
	json_out_raw(o, id, vkws_client_id(c, id));
	json_out_lit(o, "\",\"userId\":");
	if (c->authed)
		json_out_str(o, c->uid, c->uid_len);
	else
		json_out_lit(o, "null");
	json_out_lit(o, ",\"userInfo\":");
	if (c->info_len > 0)
		json_out_raw(o, c->info, c->info_len);
	else
		json_out_lit(o, "{}");
	json_out_lit(o, "}");
}

/* {"type":TYPE,"room":R, ... : the start every room notification has. */
static void
out_room_head(struct json_out *o, const char *type, const struct room *r)
{
	json_out_init(o, out_buf, sizeof(out_buf));
	json_out_lit(o, "{\"type\":\"");
	json_out_lit(o, type);
	json_out_lit(o, "\",\"room\":");
	json_out_str(o, r->name, r->name_len);
}

/* Queue one encoded frame for c; a full queue closes c with 1013. */
int
vkws_deliver(struct conn *c, const char *p, size_t n)
{
	if (c->state != S_WS || c->close_sent)
		return 0;
	if (vkws_tx_frame(c, WS_OP_TEXT, p, n) == 0)
		return 1;
	vkws_count.dropped_slow++;
	vkws_close(c, WS_CLOSE_TRY_AGAIN, "send queue full");
	return 0;
}

/* Queue p[0..n) to every member of r; returns the number delivered. */
static int
room_send(struct room *r, const char *p, size_t n)
{
	uint32_t node = r->head;
	int sent = 0;

	while (node != NODE_NONE) {
		uint32_t next = mem_next[node];
		sent += vkws_deliver(node_conn(node), p, n);
		node = next;
	}
	return sent;
}

/* user_join / user_leave to the members of r. */
static void
notify_member(struct room *r, const char *type, const struct conn *who)
{
	struct json_out o;

	out_room_head(&o, type, r);
	json_out_lit(&o, ",\"user\":");
	vkws_out_user(&o, who);
	json_out_lit(&o, ",\"timestamp\":");
	json_out_int(&o, vkws_wall_ms());
	json_out_lit(&o, "}");
	if (json_out_ok(&o))
		room_send(r, o.p, o.n);
}

/* ---- History -------------------------------------------------------- */

/* Each entry in a room's ring: [u32 length][u64 seq][chat frame]. */
#define HENT 12

static void
ring_write(uint8_t *ring, size_t off, const void *p, size_t n)
{
	size_t first = VKWS_HISTORY_BYTES - off;

	if (first > n)
		first = n;
	memcpy(ring + off, p, first);
	memcpy(ring, (const uint8_t *)p + first, n - first);
}

static void
ring_read(const uint8_t *ring, size_t off, void *p, size_t n)
{
	size_t first = VKWS_HISTORY_BYTES - off;

	if (first > n)
		first = n;
	memcpy(p, ring + off, first);
	memcpy((uint8_t *)p + first, ring, n - first);
}

static void
hist_drop_oldest(struct room *r)
{
	uint8_t *ring = hist[room_index(r)];
	uint32_t len;
	uint64_t seq;

	ring_read(ring, r->h_off, &len, 4);
	ring_read(ring, (r->h_off + 4) % VKWS_HISTORY_BYTES, &seq, 8);
	r->h_off = (uint32_t)((r->h_off + HENT + len) % VKWS_HISTORY_BYTES);
	r->h_len -= HENT + len;
	r->h_count--;
	r->dropped = seq;
}

/* Keep a chat frame as the newest history entry of r, dropping the
 * oldest ones past --history or the ring's size. */
void
vkws_history_add(struct room *r, uint64_t seq, const char *p, size_t n)
{
	uint8_t *ring = hist[room_index(r)];
	uint32_t len = (uint32_t)n;
	size_t tail;

	if (HENT + n > VKWS_HISTORY_BYTES || cfg->history == 0) {
		r->dropped = seq;
		return;
	}
	while (r->h_count > 0 && (r->h_count >= cfg->history ||
	    r->h_len + HENT + n > VKWS_HISTORY_BYTES))
		hist_drop_oldest(r);
	tail = (r->h_off + r->h_len) % VKWS_HISTORY_BYTES;
	ring_write(ring, tail, &len, 4);
	ring_write(ring, (tail + 4) % VKWS_HISTORY_BYTES, &seq, 8);
	ring_write(ring, (tail + HENT) % VKWS_HISTORY_BYTES, p, n);
	r->h_len += (uint32_t)(HENT + n);
	r->h_count++;
}

/*
 * Write the kept messages of r with seq > since (all with since 0),
 * oldest first, as a JSON array into o, and return whether the answer is
 * complete: nothing the reader asked for has been dropped.
 */
int
vkws_history_write(const struct room *r, uint64_t since, size_t limit,
    struct json_out *o)
{
	const uint8_t *ring = hist[room_index(r)];
	size_t off = r->h_off, i, skip = 0, first = 1;
	uint32_t len;
	uint64_t seq;

	if (limit > 0 && r->h_count > limit)
		skip = r->h_count - limit;
	json_out_lit(o, "[");
	for (i = 0; i < r->h_count; i++) {
		ring_read(ring, off, &len, 4);
		ring_read(ring, (off + 4) % VKWS_HISTORY_BYTES, &seq, 8);
		if (i >= skip && seq > since && o->n + len + 2 < o->cap) {
			if (!first)
				json_out_lit(o, ",");
			first = 0;
			ring_read(ring, (off + HENT) % VKWS_HISTORY_BYTES,
			    o->p + o->n, len);
			o->n += len;
		}
		off = (off + HENT + len) % VKWS_HISTORY_BYTES;
	}
	json_out_lit(o, "]");
	return r->dropped <= since;
}

/* ---- Membership operations ------------------------------------------ */

/*
 * Whether c may join the room named name: 1 if already a member, 0 if
 * it may, else an error. *rp gets the room, or NULL if it would be
 * created.
 */
int
vkws_join_check(const struct conn *c, const char *name, size_t n,
    struct room **rp)
{
	struct room *r = vkws_room_find(name, n);
	uint32_t max;

	*rp = r;
	if (r == NULL) {
		if (cfg->no_auto_rooms || !vkws_room_name_ok(name, n) ||
		    vkws_count.rooms >= VKWS_MAX_ROOMS)
			return VKWS_ENOTFOUND;
		return c->nrooms >= VKWS_ROOMS_PER_CONN ? VKWS_ELIMIT : 0;
	}
	if (member_entry(c, r) >= 0)
		return 1;
	max = r->max_clients ? r->max_clients : cfg->max_conns;
	if (r->members >= max || c->nrooms >= VKWS_ROOMS_PER_CONN)
		return VKWS_ELIMIT;
	return 0;
}

/*
 * Join c to the room (checked by vkws_join_check), creating it if need
 * be: members, c included, get user_join; then c gets user_list and
 * history (since: seq > since, else the last --history messages).
 */
void
vkws_join(struct conn *c, const char *name, size_t n, uint64_t since)
{
	struct room *r = vkws_room_find(name, n);
	struct json_out o;
	uint32_t node;
	size_t mark;
	int k, complete;

	if (r == NULL && (r = room_create(name, n)) == NULL)
		return;
	for (k = 0; k < VKWS_ROOMS_PER_CONN; k++)
		if (c->rooms[k] == VKWS_NO_ROOM)
			break;
	if (k == VKWS_ROOMS_PER_CONN)
		return;
	member_link(c, r, k);
	notify_member(r, "user_join", c);

	/* user_list: as many members as one frame holds; the rest are
	 * counted in "more" (README: limits). */
	out_room_head(&o, "user_list", r);
	json_out_lit(&o, ",\"users\":[");
	o.cap -= 64;	/* room for the closing fields */
	{
		unsigned more = 0;
		for (node = r->head; node != NODE_NONE; node = mem_next[node]) {
			mark = o.n;
			if (more == 0) {
				if (node != r->head)
					json_out_lit(&o, ",");
				vkws_out_user(&o, node_conn(node));
			}
			if (more > 0 || !json_out_ok(&o)) {
				o.n = mark;
				o.err = 0;
				more++;
			}
		}
		o.cap += 64;
		json_out_lit(&o, "]");
		if (more > 0) {
			json_out_lit(&o, ",\"more\":");
			json_out_uint(&o, more);
		}
	}
	json_out_lit(&o, ",\"timestamp\":");
	json_out_int(&o, vkws_wall_ms());
	json_out_lit(&o, "}");
	if (json_out_ok(&o))
		(void)vkws_deliver(c, o.p, o.n);

	out_room_head(&o, "history", r);
	json_out_lit(&o, ",\"messages\":");
	o.cap -= 32;
	/* A since past the room's last seq was seen before the room started
	 * over (deleted, or emptied and removed): replay what it has. */
	if (since > r->seq)
		since = 0;
	complete = vkws_history_write(r, since, 0, &o);
	o.cap += 32;
	json_out_lit(&o, complete ? ",\"complete\":true}" :
	    ",\"complete\":false}");
	if (json_out_ok(&o))
		(void)vkws_deliver(c, o.p, o.n);
}

/* Whether c may leave the room: 0, VKWS_ENOTFOUND or VKWS_EPERM. */
int
vkws_leave_check(const struct conn *c, const char *name, size_t n,
    struct room **rp)
{
	struct room *r = vkws_room_find(name, n);

	*rp = r;
	if (r == NULL)
		return VKWS_ENOTFOUND;
	return member_entry(c, r) >= 0 ? 0 : VKWS_EPERM;
}

/* c leaves r: the remaining members get user_leave; a room that is
 * neither persistent nor the default one goes with its last member. */
void
vkws_leave(struct conn *c, struct room *r)
{
	int k = member_entry(c, r);

	if (k < 0)
		return;
	member_unlink(c, r, k);
	notify_member(r, "user_leave", c);
	if (r->members == 0 && !r->persistent && !vkws_room_is_default(r))
		room_remove(r);
}

static int
leave_all(struct conn *c)
{
	int k, n = 0;

	for (k = 0; k < VKWS_ROOMS_PER_CONN; k++)
		if (c->rooms[k] != VKWS_NO_ROOM) {
			vkws_leave(c, &rooms[c->rooms[k]]);
			n++;
		}
	return n;
}

/* A chat connection authenticated (first time): index its user. */
void
vkws_user_added(struct conn *c)
{
	user_link(c);
}

/* A chat connection is going: leave every room, unindex the user. */
void
vkws_user_removed(struct conn *c)
{
	(void)leave_all(c);
	if (c->authed)
		user_unlink(c);
}

/* ---- Chat ----------------------------------------------------------- */

/*
 * Encode c's chat content into r as the next message: stored in history
 * (and the log) and left in out_buf for vkws_chat_send(). Returns the
 * encoded length, or VKWS_ELIMIT / VKWS_ESTORE.
 */
int
vkws_chat_encode(const struct conn *c, struct room *r, const char *text,
    size_t n)
{
	struct json_out o;
	uint64_t seq = r->seq + 1;

	out_room_head(&o, "chat", r);
	json_out_lit(&o, ",\"seq\":");
	json_out_uint(&o, seq);
	json_out_lit(&o, ",\"from\":");
	vkws_out_user(&o, c);
	json_out_lit(&o, ",\"message\":");
	json_out_str(&o, text, n);
	json_out_lit(&o, ",\"timestamp\":");
	json_out_int(&o, vkws_wall_ms());
	json_out_lit(&o, "}");
	if (!json_out_ok(&o))
		return VKWS_ELIMIT;
	if (vkws_store_chat(r->name, r->name_len, seq, o.p, o.n) < 0)
		return VKWS_ESTORE;
	r->seq = seq;
	vkws_history_add(r, seq, o.p, o.n);
	return (int)o.n;
}

int
vkws_chat_send(struct room *r, size_t n)
{
	return room_send(r, out_buf, n);
}

void
vkws_rooms_init(void)
{
	size_t i;

	for (i = 0; i < ROOM_BUCKETS; i++)
		room_head[i] = VKWS_NO_ROOM;
	for (i = 0; i < USER_BUCKETS; i++)
		user_head[i] = VKWS_NO_ROOM;
	if (cfg->default_room[0] != '\0') {
		struct room *r = room_create(cfg->default_room,
		    strlen(cfg->default_room));
		if (r != NULL)
			r->persistent = 0;
	}
}

/* ---- The vk.websocket C API ----------------------------------------- */

static void
room_info(const struct room *r, struct vkws_room_info *out)
{
	if (out == NULL)
		return;
	out->name = r->name;
	out->name_len = r->name_len;
	out->clients = r->members;
	out->max_clients = r->max_clients;
	out->persistent = r->persistent;
	out->created_at = r->created_at;
}

static void
client_info(const struct conn *c, struct vkws_client *out)
{
	int k;

	memset(out, 0, sizeof(*out));
	out->client_id_len = vkws_client_id(c, out->client_id);
	if (c->authed) {
		out->user_id = c->uid;
		out->user_id_len = c->uid_len;
	}
	out->user_info = c->info_len ? c->info : "{}";
	out->user_info_len = c->info_len ? c->info_len : 2;
	out->remote_addr = c->addr;
	for (k = 0; k < VKWS_ROOMS_PER_CONN; k++)
		if (c->rooms[k] != VKWS_NO_ROOM) {
			const struct room *r = &rooms[c->rooms[k]];
			out->rooms[out->nrooms] = r->name;
			out->room_lens[out->nrooms++] = r->name_len;
		}
	out->connected_at = c->t_open_wall;
	out->last_active_at = c->t_open_wall + (c->t_in - c->t_open);
	out->msgs_in = c->msgs_in;
	out->msgs_out = c->msgs_out;
	out->bytes_in = c->bytes_in;
	out->bytes_out = c->bytes_out;
	out->queued_bytes = c->txlen;
	out->tls = c->tls;
	out->cipher = vkws_tls_cipher(c);
}

int
vkws_create_room(const char *room, size_t n, long max_clients,
    int persistent, struct vkws_room_info *out)
{
	struct room *r;

	if (!vkws_room_name_ok(room, n) ||
	    max_clients > (long)cfg->max_conns)
		return VKWS_EINVAL;
	if ((r = vkws_room_find(room, n)) == NULL &&
	    (r = room_create(room, n)) == NULL)
		return VKWS_ELIMIT;
	if (max_clients >= 0)
		r->max_clients = (uint32_t)max_clients;
	r->persistent = persistent ? 1 : 0;
	if (vkws_store_room(r->name, r->name_len, r->max_clients,
	    r->persistent) < 0)
		return VKWS_ESTORE;
	room_info(r, out);
	return 0;
}

int
vkws_get_room_info(const char *room, size_t n, struct vkws_room_info *out)
{
	const struct room *r = vkws_room_find(room, n);

	if (r == NULL)
		return VKWS_ENOTFOUND;
	room_info(r, out);
	return 0;
}

int
vkws_get_room_clients(const char *room, size_t n, vkws_client_fn *fn,
    void *arg)
{
	static struct vkws_client ci;
	const struct room *r = vkws_room_find(room, n);
	uint32_t node;
	int count = 0;

	if (r == NULL)
		return VKWS_ENOTFOUND;
	for (node = r->head; node != NODE_NONE; node = mem_next[node]) {
		client_info(node_conn(node), &ci);
		fn(&ci, arg);
		count++;
	}
	return count;
}

int
vkws_delete_room(const char *room, size_t n)
{
	struct room *r = vkws_room_find(room, n);
	struct json_out o;
	uint32_t node;

	if (r == NULL)
		return VKWS_ENOTFOUND;
	if (vkws_room_is_default(r))
		return VKWS_EPERM;
	out_room_head(&o, "room_deleted", r);
	json_out_lit(&o, "}");
	if (json_out_ok(&o))
		room_send(r, o.p, o.n);
	while ((node = r->head) != NODE_NONE) {
		struct conn *c = node_conn(node);
		member_unlink(c, r, (int)(node % VKWS_ROOMS_PER_CONN));
	}
	room_remove(r);
	return 0;
}

/* The connection a client id names, authenticated chat or not. */
static struct conn *
by_id(const char *cid, size_t cn)
{
	return vkws_conn_by_id(cid, cn);
}

int
vkws_join_room(const char *cid, size_t cn, const char *room, size_t n)
{
	struct conn *c = by_id(cid, cn);
	struct room *r;
	int e;

	if (c == NULL || !c->authed)
		return VKWS_ENOTFOUND;
	if (!vkws_room_name_ok(room, n))
		return VKWS_EINVAL;
	if ((e = vkws_join_check(c, room, n, &r)) < 0)
		return e;
	if (e == 0)
		vkws_join(c, room, n, 0);
	return 0;
}

int
vkws_leave_room(const char *cid, size_t cn, const char *room, size_t n)
{
	struct conn *c = by_id(cid, cn);
	struct room *r;
	int e;

	if (c == NULL)
		return VKWS_ENOTFOUND;
	if ((e = vkws_leave_check(c, room, n, &r)) < 0)
		return e;
	vkws_leave(c, r);
	return 0;
}

int
vkws_leave_all_rooms(const char *cid, size_t cn)
{
	struct conn *c = by_id(cid, cn);

	if (c == NULL)
		return VKWS_ENOTFOUND;
	return leave_all(c);
}

int
vkws_broadcast_to_all(const char *data, size_t dn)
{
	size_t s;
	int sent = 0;

	for (s = 0; s < slot_hi; s++) {
		struct conn *c = &vkws_conns[s];
		if (c->state == S_WS && c->authed)
			sent += vkws_deliver(c, data, dn);
	}
	return sent;
}

int
vkws_broadcast_to_room(const char *room, size_t n, const char *data,
    size_t dn)
{
	struct room *r = vkws_room_find(room, n);

	if (r == NULL)
		return VKWS_ENOTFOUND;
	return room_send(r, data, dn);
}

int
vkws_broadcast_to_rooms(const char *const *names, const size_t *lens,
    size_t nrooms, const char *data, size_t dn)
{
	/* A pass mark per slot makes a client in several rooms get one
	 * copy without a set: the mark is this call's serial. */
	static uint32_t mark[VKWS_SLOTS];
	static uint32_t serial;
	size_t i;
	int sent = 0, found = 0;

	/* cppcheck-suppress knownConditionTrueFalse ; it wraps in time */
	if (++serial == 0) {
		memset(mark, 0, sizeof(mark));
		serial = 1;
	}
	for (i = 0; i < nrooms; i++) {
		struct room *r = vkws_room_find(names[i], lens[i]);
		uint32_t node;

		if (r == NULL)
			continue;
		found = 1;
		for (node = r->head; node != NODE_NONE;) {
			uint32_t next = mem_next[node];
			size_t s = node / VKWS_ROOMS_PER_CONN;
			if (mark[s] != serial) {
				mark[s] = serial;
				sent += vkws_deliver(&vkws_conns[s], data, dn);
			}
			node = next;
		}
	}
	return found ? sent : VKWS_ENOTFOUND;
}

int
vkws_send_to_client(const char *cid, size_t cn, const char *data,
    size_t dn)
{
	struct conn *c = by_id(cid, cn);

	if (c == NULL || !c->authed)
		return VKWS_ENOTFOUND;
	if (dn + WS_MAX_HEADER > VKWS_TX_BUF - VKWS_CLOSE_RESERVE)
		return VKWS_ELIMIT;
	return vkws_deliver(c, data, dn) ? 0 : VKWS_ELIMIT;
}

int
vkws_send_to_user(const char *uid, size_t un, const char *data, size_t dn)
{
	uint16_t it = VKWS_NO_ROOM;
	struct conn *c;
	int sent = 0, found = 0;

	while ((c = user_next(uid, un, &it)) != NULL) {
		found = 1;
		sent += vkws_deliver(c, data, dn);
		if (it == VKWS_NO_ROOM)
			break;
	}
	return found ? sent : VKWS_ENOTFOUND;
}

static int
list_conns(vkws_client_fn *fn, void *arg, int active_only)
{
	static struct vkws_client ci;
	int64_t since = vkws_now_ms() - (int64_t)cfg->active_window * 1000;
	size_t s;
	int count = 0;

	for (s = 0; s < slot_hi; s++) {
		const struct conn *c = &vkws_conns[s];
		if (c->state != S_WS)
			continue;
		if (active_only && (!c->authed || c->t_in < since))
			continue;
		client_info(c, &ci);
		fn(&ci, arg);
		count++;
	}
	return count;
}

int
vkws_get_all_connections(vkws_client_fn *fn, void *arg)
{
	return list_conns(fn, arg, 0);
}

int
vkws_get_active_connections(vkws_client_fn *fn, void *arg)
{
	return list_conns(fn, arg, 1);
}

int
vkws_get_connection_info(const char *cid, size_t cn,
    struct vkws_client *out)
{
	const struct conn *c = by_id(cid, cn);

	if (c == NULL)
		return VKWS_ENOTFOUND;
	client_info(c, out);
	return 0;
}

int
vkws_list_rooms(vkws_room_fn *fn, void *arg)
{
	struct vkws_room_info ri;
	size_t i;
	int count = 0;

	for (i = 0; i < VKWS_MAX_ROOMS; i++)
		if (rooms[i].used) {
			room_info(&rooms[i], &ri);
			fn(&ri, arg);
			count++;
		}
	return count;
}

static int
close_code_ok(int code)
{
	return code == 1000 || (code >= 3000 && code <= 4999);
}

/* The reason as a NUL-terminated string of printable ASCII. */
static const char *
reason_str(const char *reason, size_t rn)
{
	static char buf[WS_MAX_CONTROL - 1];
	size_t i;

	if (rn >= sizeof(buf))
		rn = sizeof(buf) - 1;
	for (i = 0; i < rn; i++) {
		buf[i] = reason[i];
		if (buf[i] < 0x20 || buf[i] >= 0x7F)
			buf[i] = '?';
	}
	buf[rn] = '\0';
	return buf;
}

int
vkws_disconnect(const char *cid, size_t cn, int code, const char *reason,
    size_t rn)
{
	struct conn *c = by_id(cid, cn);

	if (!close_code_ok(code))
		return VKWS_EINVAL;
	if (c == NULL)
		return VKWS_ENOTFOUND;
	vkws_close(c, (uint16_t)code, reason_str(reason, rn));
	return 0;
}

int
vkws_disconnect_all(int code, const char *reason, size_t rn)
{
	const char *why;
	size_t s;
	int n = 0;

	if (!close_code_ok(code))
		return VKWS_EINVAL;
	why = reason_str(reason, rn);
	for (s = 0; s < slot_hi; s++) {
		struct conn *c = &vkws_conns[s];
		if (c->state == S_WS && !c->close_sent) {
			vkws_close(c, (uint16_t)code, why);
			n++;
		}
	}
	return n;
}

int
vkws_set_client_data(const char *cid, size_t cn, const char *json,
    size_t jn)
{
	struct conn *c = by_id(cid, cn);

	if (c == NULL)
		return VKWS_ENOTFOUND;
	if (jn > VKWS_USERINFO_MAX)
		return VKWS_ELIMIT;
	if (!vkws_json_is_object(json, jn))
		return VKWS_EINVAL;
	memcpy(c->info, json, jn);
	c->info_len = (uint16_t)jn;
	return 0;
}

int
vkws_get_client_data(const char *cid, size_t cn, const char **json)
{
	const struct conn *c = by_id(cid, cn);

	if (c == NULL)
		return VKWS_ENOTFOUND;
	*json = c->info_len ? c->info : "{}";
	return c->info_len ? (int)c->info_len : 2;
}

/* ---- Replay of the log (store.c) ------------------------------------ */

int
vkws_restore_room(const char *room, size_t n, uint32_t max_clients,
    int persistent, uint64_t seq)
{
	struct room *r = vkws_room_find(room, n);

	if (r == NULL && (r = room_create(room, n)) == NULL)
		return -1;
	r->max_clients = max_clients <= cfg->max_conns ? max_clients : 0;
	r->persistent = persistent ? 1 : 0;
	if (seq > r->seq) {
		/* Messages up to seq were stored but none of them after
		 * r->seq came back: history is not complete. */
		r->dropped = seq;
		r->seq = seq;
	}
	return 0;
}

int
vkws_restore_chat(const char *room, size_t n, uint64_t seq,
    const char *frame, size_t fn)
{
	struct room *r = vkws_room_find(room, n);

	if (r == NULL && (r = room_create(room, n)) == NULL)
		return -1;
	if (seq <= r->seq && r->h_count > 0)
		return 0;	/* already kept: a record written twice */
	/* The oldest message kept: those before it were dropped (by a
	 * compaction, or before the last restart). */
	if (r->h_count == 0 && seq > r->dropped + 1)
		r->dropped = seq - 1;
	r->seq = seq;
	vkws_history_add(r, seq, frame, fn);
	return 0;
}

int
vkws_restore_room_deleted(const char *room, size_t n)
{
	struct room *r = vkws_room_find(room, n);

	if (r != NULL && !vkws_room_is_default(r))
		room_remove_quiet(r);	/* no members during replay */
	return 0;
}

/* After replay: rooms that are neither persistent nor the default one
 * lived only while they had members, and have none now. */
void
vkws_restore_done(void)
{
	size_t i;

	for (i = 0; i < VKWS_MAX_ROOMS; i++)
		if (rooms[i].used && !rooms[i].persistent &&
		    !vkws_room_is_default(&rooms[i])) {
			room_remove_quiet(&rooms[i]);
		}
}

/* Every kept room, for compaction. */
void
vkws_room_each(vkws_store_room_fn *fn, void *arg)
{
	size_t i;

	for (i = 0; i < VKWS_MAX_ROOMS; i++) {
		const struct room *r = &rooms[i];
		if (r->used)
			fn(r->name, r->name_len, r->max_clients, r->persistent,
			    r->seq, arg);
	}
}

/* Every kept history entry of the room, oldest first. */
void
vkws_history_each(const char *room, size_t n, vkws_store_chat_fn *fn,
    void *arg)
{
	const struct room *r = vkws_room_find(room, n);
	const uint8_t *ring;
	size_t off, i;

	if (r == NULL)
		return;
	ring = hist[room_index(r)];
	off = r->h_off;
	for (i = 0; i < r->h_count; i++) {
		uint32_t len;
		uint64_t seq;
		ring_read(ring, off, &len, 4);
		ring_read(ring, (off + 4) % VKWS_HISTORY_BYTES, &seq, 8);
		ring_read(ring, (off + HENT) % VKWS_HISTORY_BYTES, out_buf,
		    len);
		fn(r->name, r->name_len, seq, out_buf, len, arg);
		off = (off + HENT + len) % VKWS_HISTORY_BYTES;
	}
}
