/*
 * vkws.c: the core. One loop over a static table of connection slots:
 * accept and admission, the transport (plain sockets here, TLS in tls.c),
 * reads into the shared read buffer, send queues and their flush,
 * deadlines, signals, the listeners, and our side of the close handshake.
 * It waits through poller.c (epoll or poll()), which also keeps the
 * deadlines. What a read brought (HTTP heads, the upgrade, frames) is
 * handed to conn.c (vkws_conn_input()); this file never parses a request
 * or a frame.
 *
 * Memory: every buffer is a static array sized in vkws.h; nothing here
 * allocates. A slot's receive buffer is touched only when a frame arrives
 * split across reads (whole frames are handled in the shared read buffer),
 * and its send queue only when the socket does not take a reply at once.
 *
 * Order of one loop pass: the deadlines that are due (a heap), a flush,
 * then what each slot touched since the last wait now waits for is told
 * to the poller; the wait; held frames and TLS plaintext already
 * decrypted; reads (each of which may queue replies to any connection);
 * signals; accepts; one flush per connection with queued bytes. A pass
 * touches only slots with events, due deadlines, or bytes queued to
 * them, so idle connections cost it nothing.
 *
 * A slot is touched (put on the touched list) when it is read, written,
 * queued to or changes state; its interest is recomputed before the next
 * wait. A deadline that moves later (a frame came, so the idle timeout
 * is further away) is found lazily: the heap wakes the slot at the old
 * time, conn_timer() acts on nothing and returns the new one. A deadline
 * that may move earlier (a close, an upgrade, an auth, a join) makes the
 * slot due at once (vkws_conn_timers()), so conn_timer() runs for it in
 * the next pass and files the real time.
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
#include "poller.h"
#include "store.h"
#include "ws_frame.h"

struct conn vkws_conns[VKWS_SLOTS];
static uint8_t scratch[VKWS_SCRATCH];

/* One past the highest slot in use: accept takes the lowest free slot,
 * so the loop's scans stay as short as the busiest moment needs. */
size_t vkws_slot_hi;
/* The monotonic time of this loop pass (ms): good enough for activity
 * stamps, and one clock read per pass instead of one per frame. */
int64_t vkws_pass_now;

/* Slots with queued output, flushed once each at the end of a pass. */
static uint16_t dirty[VKWS_SLOTS];
static size_t ndirty;

/*
 * The loop's own state per slot, beside struct conn: marks, and the
 * lists they put a slot on (each slot at most once on each). Touched:
 * its interest is recomputed before the next wait. Ready: it has work
 * that needs no event (frames held for queue room that has come, TLS
 * plaintext inside the engine), done right after the wait.
 */
enum { L_TOUCHED = 1, L_READY = 2, L_SERVED = 4 };
static uint8_t lmark[VKWS_SLOTS];
static uint16_t touched[VKWS_SLOTS];
static size_t ntouched;
static uint16_t readyq[VKWS_SLOTS];
static size_t nready;
/* Free slots, a stack: accept takes the top in O(1). */
static uint16_t free_slots[VKWS_SLOTS];
static size_t nfree;

static struct vkws_config *cfg;
static int listen_fd = -1;	/* plain */
static int tls_fd = -1;		/* TLS */
static int sig_pipe[2] = { -1, -1 };
static volatile sig_atomic_t sig_term, sig_hup;
static int stopping;
static int64_t stop_deadline;
static int64_t accept_pause_until;
struct vkws_counts vkws_count;

static const struct vkws_hooks *hooks;

static void
touch(const struct conn *c)
{
	size_t s = vkws_slot_of(c);

	if (!(lmark[s] & L_TOUCHED)) {
		lmark[s] |= L_TOUCHED;
		touched[ntouched++] = (uint16_t)s;
	}
}

void
vkws_conn_timers(struct conn *c)
{
	vkws_timer_sooner(vkws_slot_of(c), vkws_pass_now);
}

static void conn_free(struct conn *c);
/* Not inlined: sanitizer builds give each inlined frame its own
 * redzones, and the caller would pass the stack frame ceiling. */
static void loop_pass(void) __attribute__((noinline));
static void conn_accept(int lfd, int tls) __attribute__((noinline));
static void conn_flush(struct conn *c) __attribute__((noinline));
static void conn_flush(struct conn *c);
static ssize_t sock_writev(struct conn *c, struct iovec *iov, int n);

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

int64_t
vkws_wall_of(int64_t t)
{
	return t + (vkws_wall_ms() - vkws_now_ms());
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

void
vkws_hooks_set(const struct vkws_hooks *h)
{
	hooks = h;
}

/* Count a close by code: the eight codes of PROTOCOL.md 5, 4002, and
 * any other. */
void
vkws_count_close(uint16_t code)
{
	static const uint16_t codes[9] = { 1000, 1001, 1002, 1007, 1008,
	    1009, 1013, 4001, 4002 };
	size_t i;

	for (i = 0; i < 9; i++)
		if (codes[i] == code) {
			vkws_count.closes[i]++;
			return;
		}
	vkws_count.closes[9]++;
}

/* ---- Admission: the unproven list (PROTOCOL.md 8) -------------------- */

/*
 * Every connection that has not shown who it is (an HTTP connection, a
 * TLS handshake, a chat WebSocket before its auth) is on this list,
 * oldest first, from accept until it is proven or freed. The list gives
 * the victim of an eviction in O(1), and its length is the share of the
 * table --max-pending bounds.
 */
static uint16_t up_head = VKWS_NO_SLOT, up_tail = VKWS_NO_SLOT;

static void
up_add(struct conn *c)
{
	uint16_t s = (uint16_t)vkws_slot_of(c);

	c->up_prev = up_tail;
	c->up_next = VKWS_NO_SLOT;
	if (up_tail != VKWS_NO_SLOT)
		vkws_conns[up_tail].up_next = s;
	else
		up_head = s;
	up_tail = s;
	c->unproven = 1;
	vkws_count.unproven++;
}

static void
up_del(struct conn *c)
{
	if (!c->unproven)
		return;
	if (c->up_prev != VKWS_NO_SLOT)
		vkws_conns[c->up_prev].up_next = c->up_next;
	else
		up_head = c->up_next;
	if (c->up_next != VKWS_NO_SLOT)
		vkws_conns[c->up_next].up_prev = c->up_prev;
	else
		up_tail = c->up_prev;
	c->unproven = 0;
	vkws_count.unproven--;
}

/* Count c as a proven WebSocket: off the unproven list, against
 * --max-conns. */
static void
prove(struct conn *c)
{
	up_del(c);
	vkws_tls_proven(c);
	if (!c->proven) {
		c->proven = 1;
		vkws_count.proven++;
	}
}

int
vkws_conn_prove(struct conn *c)
{
	if (c->proven)
		return 0;
	if (vkws_count.proven >= cfg->max_conns)
		return -1;
	prove(c);
	return 0;
}

/* A WebSocket leaves S_WS (to linger, or freed). */
static void
ws_left(struct conn *c)
{
	if (c->proven) {
		c->proven = 0;
		vkws_count.proven--;
	}
	hooks->ws_closed(c);
}

/*
 * Close c to make room for a newer connection: an HTTP connection is
 * dropped, a WebSocket is told 1013 (try again later) with what the
 * socket takes at once, then dropped: the slot is needed now.
 */
static void
evict(struct conn *c, uint64_t *counter)
{
	(*counter)++;
	if (c->state == S_WS && !c->close_sent) {
		vkws_close(c, WS_CLOSE_TRY_AGAIN, "server busy");
		conn_flush(c);
	}
	conn_free(c);
}

/* ---- Slots and send queues ------------------------------------------ */


static void
mark_dirty(struct conn *c)
{
	if (!c->dirty) {
		c->dirty = 1;
		dirty[ndirty++] = (uint16_t)vkws_slot_of(c);
	}
	touch(c);
}

static void
queued(struct conn *c)
{
	if (c->tx.len > vkws_count.queue_hwm)
		vkws_count.queue_hwm = c->tx.len;
	mark_dirty(c);
}

/* Append p[0..n) to the send queue; the caller has checked the room. */
void
vkws_tx_put(struct conn *c, const void *p, size_t n, int start)
{
	if (n == 0)
		return;	/* p may be NULL */
	(void)vkws_q_put(&c->tx, p, n, start);
	queued(c);
}

/* Bytes of a reply that could not be queued: the connection is
 * dropped rather than left with half a response or frame. */
static void
tx_lost(struct conn *c)
{
	vkws_count.dropped_slow++;
	vkws_q_free(&c->tx);
	conn_free(c);
}

/*
 * Queue a||b, but write it to the socket at once when nothing is queued
 * before it: a reply that goes out whole never touches the pool, so an
 * idle connection holds no chunk. Returns 0, or -1 if the rest did not
 * fit the pool (c is then freed).
 */
int
vkws_tx_write(struct conn *c, const void *a, size_t an, const void *b,
    size_t bn)
{
	size_t done = 0;

	if (c->tx.len == 0 && !c->tls) {
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
	if (done >= an + bn)
		return 0;
	if (!vkws_q_can_put(an + bn - done)) {
		tx_lost(c);
		return -1;
	}
	if (done < an)
		vkws_tx_put(c, (const uint8_t *)a + done, an - done, done == 0);
	done = done > an ? done - an : 0;
	if (done < bn)
		vkws_tx_put(c, (const uint8_t *)b + done, bn - done, 0);
	return 0;
}

int
vkws_tx_raw(struct conn *c, const void *p, size_t n)
{
	if (n > vkws_tx_free(c) || !vkws_q_can_put(n))
		return -1;
	vkws_tx_put(c, p, n, 1);
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
	if (!vkws_tx_room(c, hn + an + bn))
		return -1;
	vkws_tx_put(c, h, hn, 1);
	vkws_tx_put(c, a, an, 0);
	vkws_tx_put(c, b, bn, 0);
	if (op == WS_OP_TEXT || op == WS_OP_BINARY)
		count_out(c, an + bn);
	return 0;
}

int
vkws_tx_frame(struct conn *c, int op, const void *p, size_t n)
{
	return vkws_tx_frame2(c, op, p, n, NULL, 0);
}

/* Server frames are not masked (RFC 6455 5.1), so the header is the same
 * for every reader and is shared with the payload. */
int
vkws_tx_shared_make(struct vkws_q *f, int op, const void *p, size_t n)
{
	uint8_t h[WS_MAX_HEADER];
	size_t hn = ws_header_build(h, 1, op, (uint64_t)n);

	return vkws_q_shared(f, h, hn, p, n);
}

int
vkws_tx_shared(struct conn *c, const struct vkws_q *f, size_t n)
{
	if (c->state != S_WS || c->close_sent)
		return -1;
	if (!vkws_tx_fits(c, f->len) ||
	    (vkws_pool_low() && c->tx.len > VKWS_TX_SLOW))
		return -1;	/* as vkws_tx_room() */
	if (vkws_q_attach(&c->tx, f) < 0)
		return -1;
	queued(c);
	count_out(c, n);
	return 0;
}

const char *
vkws_info(const struct conn *c)
{
	if (c->info_chunk == VKWS_NONE16)
		return NULL;
	return (const char *)vkws_chunk_mem(c->info_chunk) + c->info_off;
}

const char *
vkws_uid(const struct conn *c)
{
	if (c->uid_chunk == VKWS_NONE16)
		return "";
	return (const char *)vkws_chunk_mem(c->uid_chunk) + c->uid_off;
}

/* The user id, like userInfo, is packed with other small texts: the
 * slot does not carry VKWS_UID_MAX bytes for every connection. */
int
vkws_uid_set(struct conn *c, const char *p, size_t n)
{
	uint16_t k = VKWS_NONE16, off = 0;

	if (n > VKWS_UID_MAX || (n > 0 && vkws_pool_blob(p, n, &k, &off) < 0))
		return -1;
	if (c->uid_chunk != VKWS_NONE16)
		vkws_chunk_put(c->uid_chunk);
	c->uid_chunk = k;
	c->uid_off = off;
	c->uid_len = (uint8_t)n;
	return 0;
}

/* userInfo is packed with other small texts into a shared chunk, so a
 * client's few bytes of data do not hold a whole chunk. */
int
vkws_info_set(struct conn *c, const char *p, size_t n)
{
	uint16_t k = VKWS_NONE16, off = 0;

	if (n > VKWS_USERINFO_MAX)
		return -1;
	/* "{}" is what a client without data shows: nothing to keep. */
	if (n == 2 && p[0] == '{' && p[1] == '}')
		n = 0;
	if (n > 0 && vkws_pool_blob(p, n, &k, &off) < 0)
		return -1;
	if (c->info_chunk != VKWS_NONE16)
		vkws_chunk_put(c->info_chunk);
	c->info_chunk = VKWS_NONE16;
	c->info_len = 0;
	if (n > 0) {
		c->info_chunk = k;
		c->info_off = off;
		c->info_len = (uint16_t)n;
	}
	return 0;
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
	if (!vkws_q_can_put(hn + rn + 2))
		vkws_q_drop_unsent(&c->tx);
	if (vkws_q_can_put(hn + rn + 2)) {
		vkws_tx_put(c, h, hn, 1);
		vkws_tx_put(c, p, rn + 2, 0);
	}
	c->close_sent = 1;
	c->close_code = code;
	c->deadline = vkws_now_ms() + (int64_t)cfg->close_timeout * 1000;
	touch(c);
	vkws_conn_timers(c);	/* the close deadline may come sooner */
	vkws_count_close(code);
	if (c->close_rcvd)
		vkws_linger(c);
}

/* A slow consumer (1013): what it has not begun to read goes back to
 * the pool at once, and the close frame follows a whole frame. */
void
vkws_close_slow(struct conn *c)
{
	if (c->state != S_WS || c->close_sent)
		return;
	vkws_count.dropped_slow++;
	vkws_q_drop_unsent(&c->tx);
	vkws_close(c, WS_CLOSE_TRY_AGAIN, "send queue full");
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
		ws_left(c);
	c->state = S_LINGER;
	c->deadline = vkws_now_ms() + (int64_t)cfg->close_timeout * 1000;
	mark_dirty(c);
	vkws_conn_timers(c);
}

/* ---- Receive buffers ---------------------------------------------- */

/*
 * The receive buffer of c, taken from the pool if it has none; NULL if
 * every buffer is taken. A connection holds one only while a head or a
 * frame is split across reads.
 */
uint8_t *
vkws_rx_own(struct conn *c)
{
	uint16_t s;

	if (c->rx_buf != VKWS_NONE16)
		return vkws_rx_mem(c->rx_buf);
	/* None free: the oldest unproven connection holding one gives it
	 * up, as it would give up its slot (PROTOCOL.md 8). */
	for (s = up_head; vkws_rx_free_count() == 0 && s != VKWS_NO_SLOT;) {
		struct conn *o = &vkws_conns[s];
		s = o->up_next;
		if (o != c && o->rx_buf != VKWS_NONE16)
			evict(o, &vkws_count.evicted_unproven);
	}
	if ((c->rx_buf = vkws_rx_get()) == VKWS_NONE16)
		return NULL;
	return vkws_rx_mem(c->rx_buf);
}

/* Give the receive buffer back once nothing waits in it. */
void
vkws_rx_trim(struct conn *c)
{
	if (c->rx_buf != VKWS_NONE16 && c->frag == 0 && c->raw == 0) {
		vkws_rx_put(c->rx_buf);
		c->rx_buf = VKWS_NONE16;
	}
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

	if (vkws_tls_engine(c))
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

	touch(c);	/* a write may change what it waits for */
	if (c->tls) {
		if (vkws_tls_engine(c))
			return vkws_tls_send(c, iov, n);
		errno = EPIPE;	/* nothing goes out once the engine is gone */
		return -1;
	}
	memset(&m, 0, sizeof(m));
	m.msg_iov = iov;
	m.msg_iovlen = (size_t)n;
	do
		r = sendmsg(c->fd, &m, MSG_NOSIGNAL);
	while (r < 0 && errno == EINTR);
	return r;
}

/*
 * PROTOCOL.md 8: a TLS connection takes an engine only once its first
 * record has come, so sockets that connect and send nothing hold none.
 * When every engine is busy, the oldest handshake in progress (else the
 * oldest unproven connection holding one) gives way. Returns 1 when c
 * has an engine, 0 to wait for bytes, -1 if c was closed.
 */
static int
tls_begin(struct conn *c)
{
	struct conn *v;
	uint8_t b;
	ssize_t r;
	int hs;

	do
		r = recv(c->fd, &b, 1, MSG_PEEK);
	while (r < 0 && errno == EINTR);
	if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
		conn_free(c);
		return -1;
	}
	if (r < 0)
		return 0;
	if (vkws_tls_accept(c) == 0)
		return 1;
	v = vkws_tls_victim(&hs);
	if (v != NULL && v != c) {
		evict(v, hs ? &vkws_count.evicted_tls :
		    &vkws_count.evicted_unproven);
		if (vkws_tls_accept(c) == 0)
			return 1;
	}
	vkws_count.refused_tls++;
	conn_free(c);
	return -1;
}

static void
conn_read(struct conn *c)
{
	uint8_t *b;
	size_t room;
	ssize_t r;

	touch(c);
	if (c->tls && !vkws_tls_engine(c) && c->state == S_HTTP &&
	    tls_begin(c) <= 0)
		return;
	if (c->state == S_LINGER) {
		/* Discard input until EOF. */
		r = sock_read(c, scratch, sizeof(scratch));
		if (r == 0 || (r < 0 && errno != EAGAIN))
			conn_free(c);
		return;
	}
	room = VKWS_RX_BUF - (size_t)c->frag - c->raw;
	if (c->raw > 0) {
		/* Continue a partial head or frame where it lies. */
		b = vkws_rx_mem(c->rx_buf) + c->frag + c->raw;
	} else {
		/* Whole heads and frames are handled in the shared buffer;
		 * only a partial one is copied into a receive buffer. */
		b = scratch;
	}
	r = sock_read(c, b, room);
	if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
		if (c->state == S_WS && !c->close_rcvd)
			vkws_count.closes_abnormal++;
		conn_free(c);
		return;
	}
	if (r < 0)
		return;
	vkws_conn_input(c, b, (size_t)r);
}

/* Write what is queued, at most VKWS_WRITE_CAP bytes per pass. */
#define FLUSH_IOV 16
static void
conn_flush(struct conn *c)
{
	size_t budget = VKWS_WRITE_CAP;

	c->tx_left = 0;
	while (c->tx.len > 0 && budget > 0) {
		struct iovec iov[FLUSH_IOV];
		int n = vkws_q_iov(&c->tx, iov, FLUSH_IOV, budget);
		ssize_t r = sock_writev(c, iov, n);

		if (r < 0) {
			size_t u;

			if (errno != EAGAIN && errno != EWOULDBLOCK) {
				conn_free(c);
				return;
			}
			/* The socket is full: what is left is the reader's
			 * backlog (what the pass's budget left is not). */
			u = c->tx.len / VKWS_TX_UNIT;
			c->tx_left = (uint16_t)(u > UINT16_MAX ? UINT16_MAX : u);
			return;
		}
		vkws_q_consume(&c->tx, (size_t)r);
		budget -= (size_t)r;
		if (r == 0)
			break;
	}
	if (c->tx.len > 0)
		return;
	if (vkws_tls_engine(c)) {
		/* Records the engine still holds, then close_notify. */
		if (c->state == S_LINGER && !c->shut)
			vkws_tls_close(c);
		if (vkws_tls_flush(c) != 0)
			return;
	}
	if (c->state == S_LINGER && !c->shut) {
		c->shut = 1;
		shutdown(c->fd, SHUT_WR);
		/* Our close_notify is out: what the peer still sends is
		 * read raw and dropped until its EOF, as over plain TCP,
		 * and the engine serves someone else meanwhile. */
		vkws_tls_free(c);
	}
}

static void
conn_free(struct conn *c)
{
	if (c->state == S_FREE)
		return;
	if (c->state == S_WS)
		ws_left(c);
	up_del(c);
	vkws_admit_addr_del(c->addr_ent);
	c->addr_ent = VKWS_NO_SLOT;
	vkws_tls_free(c);
	vkws_q_free(&c->tx);
	c->frag = c->raw = 0;
	vkws_rx_trim(c);
	(void)vkws_info_set(c, NULL, 0);
	(void)vkws_uid_set(c, NULL, 0);
	vkws_poller_gone(vkws_slot_of(c), c->fd);
	vkws_timer_set(vkws_slot_of(c), INT64_MAX);
	close(c->fd);
	c->fd = -1;
	c->state = S_FREE;
	free_slots[nfree++] = (uint16_t)vkws_slot_of(c);
	vkws_count.conns--;
	while (vkws_slot_hi > 0 && vkws_conns[vkws_slot_hi - 1].state == S_FREE)
		vkws_slot_hi--;
}

/* ---- Accept --------------------------------------------------------- */

/* The peer address as 16 bytes, IPv4 mapped to IPv6 (::ffff:a.b.c.d),
 * so both families count alike per address (PROTOCOL.md 8). */
static void
ip_of(const struct sockaddr_storage *ss, uint8_t ip[16])
{
	memset(ip, 0, 16);
	if (ss->ss_family == AF_INET6)
		memcpy(ip, &((const struct sockaddr_in6 *)ss)->sin6_addr, 16);
	else if (ss->ss_family == AF_INET) {
		ip[10] = ip[11] = 0xFF;
		memcpy(ip + 12, &((const struct sockaddr_in *)ss)->sin_addr, 4);
	}
}

/* Record the peer address of a new connection (IPv4 mapped to IPv6);
 * its text is made only when asked for (vkws_conn_addr()). */
static void
addr_set(struct conn *c, const struct sockaddr_storage *ss)
{
	memset(c->ip, 0, sizeof(c->ip));
	c->port = 0;
	c->v6 = ss->ss_family == AF_INET6;
	if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;
		memcpy(c->ip, &s6->sin6_addr, 16);
		c->port = ntohs(s6->sin6_port);
	} else if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)ss;
		c->ip[10] = c->ip[11] = 0xFF;
		memcpy(c->ip + 12, &s4->sin_addr, 4);
		c->port = ntohs(s4->sin_port);
	}
}

const char *
vkws_conn_addr(const struct conn *c)
{
	static char out[INET6_ADDRSTRLEN + 8];
	char a[INET6_ADDRSTRLEN];

	a[0] = '\0';
	if (c->v6) {
		inet_ntop(AF_INET6, c->ip, a, sizeof(a));
		snprintf(out, sizeof(out), "[%s]:%u", a, (unsigned)c->port);
	} else {
		inet_ntop(AF_INET, c->ip + 12, a, sizeof(a));
		snprintf(out, sizeof(out), "%s:%u", a, (unsigned)c->port);
	}
	return out;
}

/* The free slot accept takes next (the top of the stack), or NULL. */
static struct conn *
slot_free(void)
{
	return nfree > 0 ? &vkws_conns[free_slots[nfree - 1]] : NULL;
}

/*
 * Find room for a connection from the address of entry ent, which had
 * before connections already (PROTOCOL.md 8). Within its address's cap,
 * a newcomer always gets a slot: when the unproven share is full, or no
 * slot is free, the oldest unproven connection gives way. One past the
 * cap gets a slot only if one is free without evicting anyone (to be
 * answered 503); more are refused at accept. Returns the slot (the top
 * of the free stack), or NULL.
 */
static struct conn *
admit(unsigned before, int *over)
{
	struct conn *c = slot_free();

	*over = cfg->max_per_ip > 0 && before >= cfg->max_per_ip;
	if (*over) {
		if (before >= cfg->max_per_ip + VKWS_PER_IP_OVER ||
		    c == NULL || vkws_count.unproven >= cfg->max_pending)
			return NULL;
		return c;
	}
	if ((c == NULL || vkws_count.unproven >= cfg->max_pending) &&
	    up_head != VKWS_NO_SLOT) {
		/* The slot it frees goes on top of the stack. */
		evict(&vkws_conns[up_head], &vkws_count.evicted_unproven);
		c = slot_free();
	}
	return c;
}

static void
conn_accept(int lfd, int tls)
{
	int i, fd, one = 1;

	/* Static: this is inlined into the loop, whose frame is bounded. */
	static struct sockaddr_storage ss;
	static uint8_t ip[16];

	for (i = 0; i < VKWS_ACCEPT_BURST; i++) {
		socklen_t sl = sizeof(ss);
		struct conn *c;
		unsigned before;
		uint16_t ent;
		uint8_t d;
		int over;

		/* No free slot and no unproven one to give way: wait. */
		if (vkws_count.conns >= VKWS_SLOTS && up_head == VKWS_NO_SLOT)
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
		ip_of(&ss, ip);
		ent = vkws_admit_addr_add(ip, &before);
		if ((c = admit(before, &over)) == NULL) {
			vkws_count.refused_per_ip++;
			vkws_admit_addr_del(ent);
			close(fd);
			continue;
		}
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (cfg->sndbuf > 0) {
			int sb = (int)cfg->sndbuf;
			setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sb, sizeof(sb));
		}
		nfree--;	/* c is the top of the free stack */
		/* A slot freed by an eviction in this pass may still be on
		 * the flush list: keep its mark so it is not listed twice. */
		d = c->dirty;
		memset(c, 0, sizeof(*c));
		c->dirty = d;
		addr_set(c, &ss);
		c->user_next = VKWS_NO_ROOM;
		c->body_slot = VKWS_NO_ROOM;
		c->tx.head = c->tx.tail = VKWS_NONE16;
		c->rx_buf = c->info_chunk = c->uid_chunk = VKWS_NONE16;
		c->addr_ent = ent;
		c->over_ip = over != 0;
		c->fd = fd;
		c->state = S_HTTP;
		if (vkws_slot_of(c) + 1 > vkws_slot_hi)
			vkws_slot_hi = vkws_slot_of(c) + 1;
		c->deadline = vkws_now_ms() +
		    (int64_t)cfg->handshake_timeout * 1000;
		vkws_timer_set(vkws_slot_of(c), c->deadline);
		touch(c);
		/* A TLS engine waits for the first record (tls_begin()). */
		c->tls = tls != 0;
		c->tls_slot = VKWS_NO_SLOT;
		up_add(c);
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
			vkws_count.evicted_http_age++;
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
				int64_t t = hooks->ws_timer(c, now);
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
		vkws_poller_listen(listen_fd, VKWS_P_LISTEN, 0);
		close(listen_fd);
		listen_fd = -1;
	}
	if (tls_fd >= 0) {
		vkws_poller_listen(tls_fd, VKWS_P_LISTEN_TLS, 0);
		close(tls_fd);
		tls_fd = -1;
	}
	vkws_log("shutting down");
	for (i = 0; i < vkws_slot_hi; i++) {
		struct conn *c = &vkws_conns[i];
		if (c->state == S_HTTP)
			conn_free(c);
		else if (c->state == S_WS) {
			if (c->kind == K_CHAT)
				hooks->ws_shutdown(c);
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

/* What c waits for: input only while its buffers can take it. */
static short
conn_events(const struct conn *c)
{
	short ev = 0;

	if (c->tx.len > 0)
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
	if (vkws_tls_engine(c))
		return vkws_tls_events(c, ev);
	return ev;
}

/* Frames held back for lack of queue room may go on: the queue has
 * drained enough for the largest reply. */
static int
held_ready(const struct conn *c)
{
	if (!c->held || c->raw == 0)
		return 0;
	if (c->state == S_HTTP)
		return vkws_tx_free(c) >= VKWS_HTTP_REPLY_ROOM;
	return c->state == S_WS && vkws_tx_free(c) >= VKWS_REPLY_ROOM;
}

/*
 * Before the wait: tell the poller what each touched slot waits for
 * now (epoll_ctl only if that changed), and list the slots with work
 * that no event would announce. The list may grow while it is walked (a
 * slot the kernel refuses to watch is freed, and its room hears of it).
 */
static void
settle(void)
{
	size_t i;

	for (i = 0; i < ntouched; i++) {
		size_t s = touched[i];
		struct conn *c = &vkws_conns[s];
		short ev;

		lmark[s] &= (uint8_t)~L_TOUCHED;
		if (c->state == S_FREE)
			continue;
		ev = conn_events(c);
		if (vkws_poller_set(s, c->fd, ev) < 0) {
			vkws_log("cannot watch a connection: %s",
			    strerror(errno));
			conn_free(c);
			continue;
		}
		/* The poller cannot see plaintext BearSSL has already
		 * decrypted: such a slot is read without waiting. */
		if (!(lmark[s] & L_READY) && (held_ready(c) ||
		    (c->tls && (ev & POLLIN) && vkws_tls_pending(c)))) {
			lmark[s] |= L_READY;
			readyq[nready++] = (uint16_t)s;
		}
	}
	ntouched = 0;
}

/* After the wait: a slot of the ready list (see settle()). */
static void
serve_ready(struct conn *c)
{
	if (held_ready(c)) {
		c->held = 0;
		touch(c);
		vkws_conn_resume(c);
	}
	if (c->state != S_FREE && c->tls && (conn_events(c) & POLLIN) &&
	    vkws_tls_pending(c))
		conn_read(c);
}

static void
flush_dirty(void)
{
	size_t s;

	for (s = 0; s < ndirty; s++) {
		struct conn *c = &vkws_conns[dirty[s]];
		c->dirty = 0;
		if (c->state != S_FREE)
			conn_flush(c);
	}
	ndirty = 0;
}

/* The deadlines that passed. A slot woken early (its deadline moved
 * later) is acted on as not due and filed under its new time. */
static void
timers_due(int64_t now)
{
	int s;

	while ((s = vkws_timer_pop(now)) >= 0) {
		struct conn *c = &vkws_conns[s];
		int64_t t;

		if (c->state == S_FREE)
			continue;
		t = conn_timer(c, now);
		if (c->state == S_FREE)
			continue;
		/* Never due again in this pass: the loop must end. */
		vkws_timer_set((size_t)s, t > now ? t : now + 1);
		touch(c);
	}
}

static void
on_signals(void)
{
	char drain[64];
	size_t s;

	while (read(sig_pipe[0], drain, sizeof(drain)) > 0)
		;
	if (sig_term && !stopping)
		begin_shutdown();
	if (sig_hup) {
		sig_hup = 0;
		hooks->reload();
		/* A new certificate and key for new handshakes; open
		 * connections keep theirs. */
		if (tls_fd >= 0)
			vkws_tls_reload();
		/* New timeouts may be shorter: every deadline is looked at
		 * again (once, the only scan of the table a pass makes). */
		for (s = 0; s < vkws_slot_hi; s++)
			if (vkws_conns[s].state != S_FREE)
				vkws_timer_sooner(s, vkws_pass_now);
	}
}

static void
loop_pass(void)
{
	static struct pollfd xfd[VKWS_EXTRA_FDS];
	const struct vkws_ev *ev;
	int64_t now = vkws_now_ms(), next;
	size_t i, nx = 0;
	int k, n, timeout, on, sig = 0, lis = 0;

	vkws_pass_now = now;
	timers_due(now);
	/* Flush what the timers queued before sleeping, after the layers
	 * above had the sync their acks wait for. */
	hooks->after_pass();
	flush_dirty();
	settle();

	next = nready > 0 ? now : vkws_timer_next();
	/* The listeners are watched while a slot is free or held by an
	 * unproven connection that can give way (PROTOCOL.md 8). */
	on = (vkws_count.conns < VKWS_SLOTS || up_head != VKWS_NO_SLOT) &&
	    now >= accept_pause_until;
	if (listen_fd >= 0)
		vkws_poller_listen(listen_fd, VKWS_P_LISTEN, on);
	if (tls_fd >= 0)
		vkws_poller_listen(tls_fd, VKWS_P_LISTEN_TLS, on);
	if (!on && accept_pause_until > now && accept_pause_until < next)
		next = accept_pause_until;
	if (stopping && stop_deadline < next)
		next = stop_deadline;
	/* A layer's own descriptors (hooks->poll_fds), for this wait. */
	if (hooks->poll_fds != NULL)
		nx = hooks->poll_fds(xfd, VKWS_EXTRA_FDS, now, &next);

	if (next == INT64_MAX)
		timeout = -1;
	else if (next <= now)
		timeout = 0;
	else if (next - now > 60000)
		timeout = 60000;
	else
		timeout = (int)(next - now);
	n = vkws_poller_wait(xfd, nx, timeout, &ev);
	vkws_pass_now = vkws_now_ms();
	if (n < 0)
		return;	/* EINTR: the self-pipe says what came */

	if (hooks->poll_ready != NULL && nx > 0)
		hooks->poll_ready(xfd, nx);
	/* Work no event announces; such a slot is not read twice. */
	for (i = 0; i < nready; i++) {
		size_t s = readyq[i];
		lmark[s] = (uint8_t)((lmark[s] & ~L_READY) | L_SERVED);
		if (vkws_conns[s].state != S_FREE)
			serve_ready(&vkws_conns[s]);
	}
	for (k = 0; k < n; k++) {
		uint16_t s = ev[k].slot;
		short re = ev[k].revents;
		struct conn *c;

		if (s == VKWS_P_SIGNAL) {
			sig = 1;
			continue;
		}
		if (s == VKWS_P_LISTEN || s == VKWS_P_LISTEN_TLS) {
			lis |= s == VKWS_P_LISTEN ? 1 : 2;
			continue;
		}
		c = &vkws_conns[s];
		if (c->state == S_FREE)
			continue;
		if ((re & (POLLIN | POLLHUP | POLLERR)) &&
		    !(lmark[s] & L_SERVED))
			conn_read(c);
		if (c->state != S_FREE && (re & POLLOUT))
			mark_dirty(c);
	}
	for (i = 0; i < nready; i++)
		lmark[readyq[i]] &= (uint8_t)~L_SERVED;
	nready = 0;
	/* Signals and accepts after the reads, as the slots came first. */
	if (sig)
		on_signals();
	if ((lis & 1) && listen_fd >= 0 && !stopping)
		conn_accept(listen_fd, 0);
	if ((lis & 2) && tls_fd >= 0 && !stopping)
		conn_accept(tls_fd, 1);
	hooks->after_pass();
	flush_dirty();
}

void
vkws_config_default(struct vkws_config *c)
{
	memset(c, 0, sizeof(*c));
	memcpy(c->listen, "127.0.0.1:8080", sizeof("127.0.0.1:8080"));
	memcpy(c->default_room, "general", sizeof("general"));
	c->max_conns = VKWS_MAX_CONNS;
	c->pool_chunks = VKWS_POOL_CHUNKS;
	c->max_pending = VKWS_MAX_PENDING;
	c->max_per_ip = VKWS_MAX_PER_IP;
	c->http_max_requests = VKWS_HTTP_MAX_REQUESTS;
	c->reconnect_rate = VKWS_RECONNECT_RATE;
	c->reconnect_burst = VKWS_RECONNECT_BURST;
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

	for (s = 0; s < vkws_slot_hi; s++) {
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
	vkws_conn_init(c, hooks);
	raise_fd_limit();
	/* Every slot is free; slot 0 is taken first. */
	for (nfree = 0; nfree < VKWS_SLOTS; nfree++)
		free_slots[nfree] = (uint16_t)(VKWS_SLOTS - 1 - nfree);
	/* A zeroed slot is S_FREE: the table is not written until used, so
	 * its pages cost nothing before then. */
	vkws_pool_init(c->pool_chunks);
	vkws_rooms_init(c);
	vkws_admit_init(c);
	if (signals_init() < 0 || hooks->init(c) < 0)
		return 1;
	if (vkws_poller_init(sig_pipe[0]) < 0) {
		vkws_log("cannot start the %s poller: %s",
		    vkws_poller_name(), strerror(errno));
		return 1;
	}
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
	/* Cluster: the node's name, once it listens. */
	if (c->redis[0] != '\0') {
		n = snprintf(line, sizeof(line), "node %s\n", c->node);
		(void)!write(STDOUT_FILENO, line, (size_t)n);
	}
	while (!stopping || (draining() && vkws_now_ms() < stop_deadline))
		loop_pass();
	hooks->stop();
	vkws_log("stopped");
	return 0;
}

void
vkws_budget(int fd)
{
	static char out[1536];
	size_t rooms_sz = vkws_rooms_static_size();
	size_t api_sz = hooks->static_size();
	size_t tls_sz = vkws_tls_static_size();
	size_t log_sz = vkws_store_static_size();
	size_t pool_sz = vkws_pool_static_size();
	size_t admit_sz = vkws_admit_static_size();
	size_t loop_sz = vkws_poller_static_size() + sizeof(lmark) +
	    sizeof(touched) + sizeof(readyq) + sizeof(free_slots);
	size_t total = sizeof(vkws_conns) + sizeof(dirty) + sizeof(scratch) +
	    pool_sz + rooms_sz + api_sz + tls_sz + log_sz + admit_sz + loop_sz;
	int n;

	n = snprintf(out, sizeof(out),
	    "static memory budget (bytes)\n"
	    "  connection slots   %9zu  (%d + %d spare) x %zu\n"
	    "  chunk pool         %9zu  %d x %d: send queues, client data,"
	    " history\n"
	    "  queue segments     %9zu  %zu x 8\n"
	    "  receive buffers    %9zu  %d x %d, for split frames\n"
	    "  shared read buffer %9zu\n"
	    "  rooms              %9zu  %d rooms\n"
	    "  requests and API   %9zu\n"
	    "  TLS engines        %9zu  %d x %zu, and the key pair\n"
	    "  log buffers        %9zu\n"
	    "  addresses, users   %9zu  %d entries\n"
	    "  loop (%-5s)       %9zu  timer heap, lists, free slots\n"
	    "  per connection     %9zu  the slot (%zu), its flush-list entry"
	    " and the loop's per-slot\n"
	    "                                entries; queues and buffers come"
	    " from the pools\n"
	    "  backlog cap        %9d  per connection (slow past it); %d"
	    " under %d free chunks\n"
	    "  per TLS connection %9zu\n"
	    "  total              %9zu\n",
	    sizeof(vkws_conns), VKWS_MAX_CONNS, VKWS_SPARE_SLOTS,
	    sizeof(struct conn),
	    (size_t)VKWS_POOL_CHUNKS * VKWS_CHUNK, VKWS_POOL_CHUNKS,
	    VKWS_CHUNK,
	    (size_t)VKWS_POOL_SEGS * 8, (size_t)VKWS_POOL_SEGS,
	    (size_t)VKWS_RX_BUFS * VKWS_RX_BUF, VKWS_RX_BUFS, VKWS_RX_BUF,
	    sizeof(scratch), rooms_sz, VKWS_MAX_ROOMS, api_sz,
	    tls_sz, VKWS_MAX_TLS_CONNS, vkws_tls_conn_size(), log_sz,
	    admit_sz, VKWS_ADDR_TABLE, vkws_poller_name(), loop_sz,
	    sizeof(struct conn) + sizeof(dirty[0]) + loop_sz / VKWS_SLOTS,
	    sizeof(struct conn), VKWS_TX_BUF,
	    VKWS_TX_SLOW, VKWS_POOL_CHUNKS / VKWS_POOL_LOW_DIV,
	    vkws_tls_conn_size(), total);
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

void
vkws_client_id_assign(struct conn *c)
{
	/* 44 bits of counter: a clientId is at most 15 hex digits after a
	 * cluster node's "NODE-" (VKWS_CLIENT_ID_MAX). */
	c->id = ((++id_counter & ((UINT64_C(1) << 44) - 1)) << 16) |
	    vkws_slot_of(c);
}

/* "NODE-" before every clientId in a cluster. */
static const char *id_prefix;
static size_t id_prefix_len;

void
vkws_client_id_prefix(const char *p, size_t n, uint64_t seed)
{
	id_prefix = p;
	id_prefix_len = n;
	id_counter = seed;
}

size_t
vkws_client_id(const struct conn *c, char *out)
{
	static const char hex[] = "0123456789abcdef";
	char tmp[16];
	uint64_t v = c->id;
	size_t n = 0, i;

	if (id_prefix_len > 0) {
		memcpy(out, id_prefix, id_prefix_len);
		out[id_prefix_len] = '-';
		out += id_prefix_len + 1;
	}

	do {
		tmp[n++] = hex[v & 15];
		v >>= 4;
	} while (v != 0);
	for (i = 0; i < n; i++)
		out[i] = tmp[n - 1 - i];
	return n + (id_prefix_len > 0 ? id_prefix_len + 1 : 0);
}

struct conn *
vkws_conn_by_id(const char *s, size_t n)
{
	uint64_t v = 0;
	size_t i, slot;
	struct conn *c;

	if (id_prefix_len > 0) {
		if (n <= id_prefix_len + 1 ||
		    memcmp(s, id_prefix, id_prefix_len) != 0 ||
		    s[id_prefix_len] != '-')
			return NULL;
		s += id_prefix_len + 1;
		n -= id_prefix_len + 1;
	}
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
