/*
 * conn.c: what arrives on a connection, above the transport. HTTP/1.1
 * request heads are read and routed (http.c parses them): /ws and /echo
 * get the RFC 6455 opening handshake or a refusal (400, 403, 405, 426,
 * 431, 503), any other path goes to the protocol layer's hooks. After
 * the upgrade, frames are parsed (ws_frame.c), reassembled and handed
 * up whole, pings answered, the peer's close echoed, and /echo streamed
 * back piece by piece.
 *
 * It never reads, writes or closes a socket, never owns a slot or a
 * buffer, and allocates nothing: the core (vkws.c) hands it the bytes a
 * read brought, lends it a receive buffer (vkws_rx_own()) and queues
 * what it answers (vkws_tx_put(), vkws_tx_write()).
 */
#include <string.h>

#include "vkws.h"
#include "core.h"
#include "http.h"
#include "json.h"
#include "ws_frame.h"

static struct vkws_config *cfg;
static const struct vkws_hooks *hooks;

static void ws_process(struct conn *c);

void
vkws_conn_init(struct vkws_config *c, const struct vkws_hooks *h)
{
	cfg = c;
	hooks = h;
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
	vkws_tx_write(c, head, o.n, body, n);
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
	/* Non-browser clients send no Origin (PROTOCOL.md 7). Two Origin
	 * lines are refused: a check of one would let the other through. */
	if ((h = http_header_get(r, "Origin")) == NULL)
		return 1;
	if (http_header_count(r, "Origin") > 1)
		return 0;
	for (i = 0; i < cfg->norigins; i++) {
		const char *o = cfg->origins[i];
		if (h->value.n == strlen(o) && memcmp(h->value.p, o,
		    h->value.n) == 0)
			return 1;
	}
	return 0;
}

/* Answer 503 with the header retry (VKWS_RETRY_AFTER()), counted under
 * counter. */
static void
refuse(struct conn *c, uint64_t *counter, const char *retry)
{
	(*counter)++;
	http_error(c, 503, retry);
}

/* RFC 6455 4.2.1 and 4.2.2: check the opening handshake and answer it. */
static void
http_upgrade(struct conn *c, const struct http_req *r, int kind)
{
	static char extra[256];
	const struct http_header *ver, *key;
	char accept[WS_ACCEPT_LEN];
	struct json_out o;

	if (!http_str_ieq(r->method, "GET")) {
		http_error(c, 405, "Allow: GET\r\n");
		return;
	}
	/* RFC 9110 5.3: the lines of a list header make one list. */
	if (!http_header_has(r, "Upgrade", "websocket") ||
	    !http_header_has(r, "Connection", "upgrade")) {
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
	/* The address's bucket first: a refused upgrade spends nothing of
	 * its user's. */
	/* A pool under its low-water mark takes no new WebSocket: its last
	 * chunks are for the connections already open. */
	if (vkws_count.proven >= cfg->max_conns || vkws_pool_low()) {
		refuse(c, &vkws_count.refused_full,
		    VKWS_RETRY_AFTER(VKWS_RETRY_FULL_S));
		return;
	}
	if (kind == K_CHAT && vkws_admit_addr_upgrade(c->addr_ent) < 0) {
		refuse(c, &vkws_count.refused_reconnect,
		    VKWS_RETRY_AFTER(VKWS_RETRY_RATE_S));
		return;
	}
	if (kind == K_CHAT && hooks->token_ok(r) < 0) {
		refuse(c, &vkws_count.refused_reconnect,
		    VKWS_RETRY_AFTER(VKWS_RETRY_RATE_S));
		return;
	}

	ws_accept_key(key->value.p, key->value.n, accept);
	json_out_init(&o, extra, sizeof(extra));
	json_out_lit(&o, "HTTP/1.1 101 Switching Protocols\r\n"
	    "Upgrade: websocket\r\nConnection: Upgrade\r\n"
	    "Sec-WebSocket-Accept: ");
	json_out_raw(&o, accept, sizeof(accept));
	json_out_lit(&o, "\r\n");
	if (http_header_has(r, "Sec-WebSocket-Protocol", "vkws.json"))
		json_out_lit(&o, "Sec-WebSocket-Protocol: vkws.json\r\n");
	json_out_lit(&o, "\r\n");
	/* A 101 has no body, so no Content-Length: written by hand. */
	if (!json_out_ok(&o) || o.n > vkws_tx_free(c)) {
		vkws_linger(c);
		return;
	}
	if (vkws_tx_write(c, extra, o.n, NULL, 0) < 0)
		return;
	c->state = S_WS;
	c->kind = (uint8_t)kind;
	vkws_client_id_assign(c);
	c->t_open = c->t_in = vkws_now_ms();
	c->deadline = 0;
	vkws_conn_timers(c);	/* the handshake deadline gives way */
	memset(&c->rx, 0, sizeof(c->rx));
	vkws_count.ws_open++;
	vkws_count.upgrades++;
	/* An /echo connection is proven at once (PROTOCOL.md 8); a chat
	 * one when it authenticates (vkws_conn_prove()). */
	if (kind == K_ECHO)
		(void)vkws_conn_prove(c);	/* room checked above */
	else
		hooks->ws_opened(c, r);
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
	return hooks->http_other(c, r, body, avail, body_used);
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
			used = hooks->http_body(c, b, c->raw);
			if (used == 0)
				return;
			memmove(b, b + used, c->raw - used);
			c->raw = (uint16_t)(c->raw - used);
			continue;
		}
		/* One response at a time: a pipelined request waits until
		 * the queue can take the largest reply (vkws.c, held_ready()). */
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
		/* Past its address's cap: told so, whatever it asked. */
		if (c->over_ip) {
			refuse(c, &vkws_count.refused_per_ip,
			    VKWS_RETRY_AFTER(VKWS_RETRY_FULL_S));
			return;
		}
		c->requests++;
		rest = c->raw - (size_t)n;
		if (!http_route(c, &req, b + n, rest, &used) &&
		    c->state == S_HTTP)
			return;	/* waiting for a body */
		rest -= used;
		memmove(b, b + (size_t)n + used, rest);
		c->raw = (uint16_t)rest;
		/*
		 * PROTOCOL.md 8: an HTTP connection lives for at most
		 * --http-max-requests requests (the last reply says
		 * Connection: close) and --handshake-timeout seconds from
		 * accept; requests never push that deadline back.
		 */
		if (c->requests >= cfg->http_max_requests &&
		    c->state != S_WS) {
			vkws_count.evicted_http_age++;
			vkws_linger(c);
			return;
		}
	}
}

/* Whether the request being answered on c may leave the connection
 * open (PROTOCOL.md 8: not past --http-max-requests). */
int
vkws_http_may_keep(const struct conn *c)
{
	return c->requests < cfg->http_max_requests;
}

/* No receive buffer is free for the rest of a split head or frame: the
 * server is out of memory for this connection (PROTOCOL.md: 503 before
 * the upgrade, 1013 after). */
static void
rx_exhausted(struct conn *c)
{
	static const char retry[] = VKWS_RETRY_AFTER(VKWS_RETRY_FULL_S);

	c->raw = 0;
	c->frag = 0;
	vkws_count.dropped_slow++;
	if (c->state == S_HTTP) {
		vkws_count.http_errors++;
		vkws_http_reply(c, 503, retry, "text/plain; charset=utf-8",
		    "Service Unavailable", 19, 0);
	} else if (c->state == S_WS) {
		vkws_close(c, WS_CLOSE_TRY_AGAIN, "server busy");
		vkws_linger(c);
	}
}

/*
 * Handle the c->raw bytes at b: the slot's receive buffer, or (shared)
 * the shared read buffer when a read found the slot's empty. Only what is
 * left over (part of a head, or the first frames after an upgrade) is
 * copied into a receive buffer of the pool, so a request that arrives
 * whole takes none.
 */
static void
http_input(struct conn *c, uint8_t *b, int shared)
{
	uint8_t *own;

	http_heads(c, b);
	if (c->state != S_HTTP && c->state != S_WS)
		return;
	if (c->raw > 0 && shared) {
		if ((own = vkws_rx_own(c)) == NULL) {
			rx_exhausted(c);
			return;
		}
		memcpy(own, b, c->raw);
	}
	if (c->state == S_WS && c->raw > 0)
		ws_process(c);
	vkws_rx_trim(c);
}

/* ---- WebSocket frames ----------------------------------------------- */

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
	hooks->ws_message(c, op, p, n);
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
		if (vkws_q_can_put(2))
			vkws_tx_put(c, h, 2, 1);
		c->close_sent = 1;
		vkws_count_close(WS_CLOSE_NO_STATUS);
		vkws_linger(c);
	} else
		vkws_close(c, code, NULL);
}

static void
ws_frame(struct conn *c, const struct ws_frame *f, uint8_t *p, size_t n)
{
	uint8_t *msg;
	int op, r;

	switch (f->opcode) {
	case WS_OP_PING:
		/* RFC 6455 5.5.3: a pong carries the ping's payload. */
		if (!c->close_sent)
			(void)vkws_tx_frame(c, WS_OP_PONG, p, n);
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
	if ((msg = vkws_rx_own(c)) == NULL) {
		rx_exhausted(c);
		return;
	}
	memmove(msg + c->frag, p, n);
	c->frag = (uint16_t)(c->frag + n);
	if (r == 1) {
		size_t len = c->frag;
		c->frag = 0;
		ws_message(c, op, msg, len);
	}
}

/*
 * /echo streams (RFC 6455 5.4): each piece of a data frame's payload is
 * checked (the UTF-8 of text, byte by byte), unmasked and sent on at once
 * as a frame of its own: the message's opcode on its first piece, then
 * continuations, FIN on the piece that ends the message. So a message of
 * any size passes through the receive buffer and the send queue without
 * being held whole, its echo has the same type and the same bytes, and a
 * bad byte fails the connection before the rest of its frame is sent.
 * A frame is cut rather than echoed under the length it announced, since
 * a frame whose payload is still to come could not be interrupted by a
 * pong or by our close. A piece of VKWS_DIRECT_MIN bytes or more goes
 * from the read buffer straight to the socket when nothing is queued
 * before it; only what the socket does not take is copied into the queue.
 * Echo stores nothing, so nothing waits for a log sync.
 */
static int
echo_piece(struct conn *c, uint8_t *p, size_t n)
{
	uint8_t h[WS_MAX_HEADER];
	struct ws_piece pc;
	size_t hn;
	int r;

	if ((r = ws_rx_payload(&c->rx, p, n, &pc)) < 0)
		return r;
	c->bytes_in += n;
	vkws_count.bytes_in += n;
	if (pc.fin) {
		c->msgs_in++;
		vkws_count.msgs_in++;
	}
	if (c->close_sent)
		return 0;	/* RFC 6455 7.1.2: data after our close is dropped */
	hn = ws_header_build(h, pc.fin, pc.opcode, (uint64_t)n);
	if (n >= VKWS_DIRECT_MIN && c->tx.len == 0 && !c->tls) {
		if (vkws_tx_write(c, h, hn, p, n) < 0)
			return 0;	/* the pool is dry: c is gone */
	} else if (!vkws_tx_room(c, hn + n)) {
		/* A slow reader while the pool is low, or no pool left. */
		vkws_close_slow(c);
		return 0;
	} else {
		vkws_tx_put(c, h, hn, 1);
		vkws_tx_put(c, p, n, 0);
	}
	c->bytes_out += n;
	vkws_count.bytes_out += n;
	if (pc.fin) {
		c->msgs_out++;
		vkws_count.msgs_out++;
	}
	return 0;
}

/*
 * Handle the frame f whose header starts p[0..n) if its payload is all
 * there and the send queue can take the largest reply to it. Returns the
 * bytes used (header and payload), or 0 to wait: for more bytes, or with
 * c->held set, for the queue to drain.
 */
static size_t
whole_frame(struct conn *c, const struct ws_frame *f, uint8_t *p, size_t n)
{
	size_t k;

	if (f->payload_len > n - f->hdr_len)
		return 0;
	if (vkws_tx_free(c) < VKWS_REPLY_ROOM && !c->close_sent) {
		c->held = 1;
		return 0;
	}
	k = (size_t)f->payload_len;
	ws_unmask(p + f->hdr_len, k, f->mask, 0);
	ws_frame(c, f, p + f->hdr_len, k);
	c->t_in = vkws_pass_now;
	return f->hdr_len + k;
}

/*
 * The /echo receive path: frame headers and control frames as in
 * ws_input(), data payloads in pieces through echo_piece(). A piece waits
 * in the receive buffer (c->held) while the send queue has less than
 * VKWS_REPLY_ROOM free, and conn_events() (vkws.c) asks for no input
 * meanwhile, so a client that does not read is not read either: nothing
 * is dropped and nothing is buffered past the slot's two buffers. No
 * message limit: a frame may be as long as RFC 6455 5.2 allows (2^63 - 1
 * bytes).
 */
static size_t
echo_input(struct conn *c, uint8_t *p, size_t n)
{
	size_t off = 0, k;
	struct ws_frame f;
	int r;

	while (c->state == S_WS) {
		if (c->rx.f_open) {
			k = n - off;
			if (k > c->rx.f_left)
				k = (size_t)c->rx.f_left;
			if (k == 0 && c->rx.f_left > 0)
				break;
			if (!c->close_sent) {
				size_t room = vkws_tx_free(c);
				if (room < VKWS_REPLY_ROOM) {
					c->held = 1;
					break;
				}
				if (k > room - WS_MAX_HEADER)
					k = room - WS_MAX_HEADER;
			}
			if ((r = echo_piece(c, p + off, k)) < 0) {
				ws_fail(c, r);
				return n;
			}
			off += k;
			c->t_in = vkws_pass_now;
			continue;
		}
		if (off == n)
			break;
		r = ws_frame_parse(&f, p + off, n - off, 1, &c->rx,
		    UINT64_MAX);
		if (r == 0)
			break;
		if (r < 0) {
			ws_fail(c, r);
			return n;
		}
		if ((f.opcode & 0x8u) == 0) {
			if ((r = ws_rx_begin(&c->rx, &f)) < 0) {
				ws_fail(c, r);
				return n;
			}
			off += f.hdr_len;
			continue;
		}
		/* A control frame is handled whole (at most 125 bytes). */
		if ((k = whole_frame(c, &f, p + off, n - off)) == 0)
			break;
		off += k;
	}
	return off;
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

	if (c->kind == K_ECHO)
		return echo_input(c, p, n);

	while (off < n && (c->state == S_WS)) {
		struct ws_frame f;
		size_t used;
		int r = ws_frame_parse(&f, p + off, n - off, 1, &c->rx,
		    VKWS_MAX_MSG);

		if (r == 0)
			break;
		if (r < 0) {
			ws_fail(c, r);
			return n;
		}
		if ((used = whole_frame(c, &f, p + off, n - off)) == 0)
			break;
		off += used;
	}
	return off;
}

/* Handle what the receive buffer holds: [fragments][raw bytes]. */
static void
ws_process(struct conn *c)
{
	uint8_t *own = vkws_rx_mem(c->rx_buf);
	uint8_t *b = own + c->frag;
	size_t used = ws_input(c, b, c->raw);

	if (c->state != S_WS) {
		c->raw = 0;
		vkws_rx_trim(c);
		return;
	}
	/* Fragments appended during ws_input() moved c->frag forward. */
	memmove(own + c->frag, b + used, c->raw - used);
	c->raw = (uint16_t)(c->raw - used);
	vkws_rx_trim(c);
}


/* ---- Input from the core ------------------------------------------- */

/*
 * n bytes were read for c into b: the shared read buffer when c->raw
 * was 0, else the end of c's receive buffer, after the c->raw bytes
 * waiting there. Whole heads and frames are handled where they lie;
 * only a partial one is copied into a receive buffer.
 */
void
vkws_conn_input(struct conn *c, uint8_t *b, size_t n)
{
	uint8_t *own;

	if (c->state == S_HTTP) {
		int fresh = c->raw == 0;
		c->raw = (uint16_t)(c->raw + n);
		http_input(c, fresh ? b : vkws_rx_mem(c->rx_buf), fresh);
	} else if (c->raw > 0) {
		c->raw = (uint16_t)(c->raw + n);
		ws_process(c);
	} else {
		size_t used = ws_input(c, b, n);
		if (c->state == S_WS && used < n) {
			if ((own = vkws_rx_own(c)) == NULL) {
				rx_exhausted(c);
				return;
			}
			memcpy(own + c->frag, b + used, n - used);
			c->raw = (uint16_t)(n - used);
		}
		vkws_rx_trim(c);
	}
}

/* Input held for send-queue room goes on (the core saw the room). */
void
vkws_conn_resume(struct conn *c)
{
	if (c->state == S_HTTP)
		http_input(c, vkws_rx_mem(c->rx_buf), 0);
	else
		ws_process(c);
}
