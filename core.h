/*
 * core.h: what the layers inside the server share: the connection slot,
 * the send-queue primitives of the core, the counters behind /metrics,
 * and the hooks through which the core hands a connection's events to
 * the protocol layer (api.c). Not part of the public C API.
 */
#ifndef VKWS_CORE_H
#define VKWS_CORE_H

#include <poll.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "vkws.h"
#include "http.h"
#include "ws_frame.h"

/* Slot states. */
enum {
	S_FREE = 0,	/* unused */
	S_HTTP,		/* reading request heads (and /api bodies) */
	S_WS,		/* WebSocket open, or our close sent (close_sent) */
	S_LINGER	/* output flushed, then write side shut; reading to EOF */
};

/* What a WebSocket connection serves. */
enum { K_NONE = 0, K_CHAT, K_ECHO };

/* Room indexes a connection is in; VKWS_NO_ROOM marks a free entry. */
#define VKWS_NO_ROOM 0xFFFF
/* No chunk, segment or receive buffer (pool.c). */
#define VKWS_NONE16 0xFFFF

/* A queue of bytes in pool chunks: a list of segments (pool.c). */
struct vkws_q {
	uint16_t head, tail;	/* segments, VKWS_NONE16 if empty */
	uint32_t len;		/* bytes */
};
/* conn.rate_over_age: no refusal streak. */
#define VKWS_RATE_NONE UINT32_MAX
/* No slot (list ends) and no address table entry. */
#define VKWS_NO_SLOT 0xFFFF
/* The header line "Retry-After: S\r\n" of a constant S (vkws.h). */
#define VKWS_STR_(x) #x
#define VKWS_STR(x) VKWS_STR_(x)
#define VKWS_RETRY_AFTER(s) "Retry-After: " VKWS_STR(s) "\r\n"
_Static_assert(VKWS_ROOMS_PER_CONN <= 16,
    "conn.quiet and conn.in_rooms have a bit per room entry");

/*
 * A connection slot: one per connection, so every byte here is paid
 * VKWS_SLOTS times (aim: at most 256, see the assertion below). Fields
 * are ordered by size so the compiler pads only the end of the small
 * ones; what only one state needs is narrowed to its range or shares
 * its field. Times are int64 monotonic ms.
 */
struct conn {
	int fd;
	/* One bit each: the flags nothing takes the address of. */
	unsigned shut : 1;	/* write side shut down */
	unsigned close_sent : 1;	/* our close frame is queued */
	unsigned close_rcvd : 1;	/* the peer's close frame came */
	unsigned authed : 1;	/* a valid token was presented */
	unsigned tls : 1;	/* served over TLS */
	unsigned unproven : 1;	/* on the unproven list (admission) */
	unsigned proven : 1;	/* counted in vkws_count.proven */
	unsigned over_ip : 1;	/* past --max-per-ip: answered 503 */
	unsigned v6 : 1;	/* the peer came over IPv6 */
	unsigned held : 1;	/* frames wait for send-queue room */
	uint8_t state;		/* S_* */
	uint8_t kind;		/* K_* */
	uint8_t dirty;		/* on the flush list */
	uint8_t uid_len;	/* user id: packed in the pool (vkws_uid()) */
	uint8_t nrooms;		/* entries set in rooms[] */
	uint8_t requests;	/* HTTP requests on this connection */
	uint16_t tls_slot;	/* TLS engine of this connection */
	uint16_t close_code;	/* the code of our close frame */
	uint16_t quiet;		/* rooms[] entries whose user_join is held */
	uint16_t frag;		/* rxbuf: bytes of the open message ... */
	uint16_t raw;		/* ... then this many unparsed bytes */
	uint16_t rx_buf;	/* receive buffer, VKWS_NONE16 if none */
	uint16_t info_chunk;	/* userInfo chunk, VKWS_NONE16 if none */
	uint16_t info_off;	/* userInfo: its offset in the chunk */
	uint16_t info_len;
	uint16_t uid_chunk, uid_off;
	/* Admission (PROTOCOL.md 8): unproven connections are kept on an
	 * intrusive list, oldest first, for eviction. */
	uint16_t up_prev, up_next;	/* unproven list, VKWS_NO_SLOT ends */
	uint16_t addr_ent;	/* address table entry, VKWS_NO_SLOT: none */
	uint16_t port;		/* peer port */
	uint16_t body_slot;	/* /api body buffer, VKWS_NO_ROOM if none */
	uint16_t user_next;	/* next slot of the same user, or NONE */
	uint16_t in_rooms;	/* rooms[] entries set: bit k for rooms[k] */
	uint16_t tx_left;	/* what the last write left unsent when the
				 * socket took no more, in VKWS_TX_UNIT
				 * (rounded down, so a piece /echo sizes
				 * to vkws_tx_free() fits; saturating) */
	uint32_t body_need;	/* /api: Content-Length still to come */
	/* Rate limit: a token bucket in thousandths of a message; at most
	 * --rate-burst (1,000,000) x 1000, so 32 bits hold it. */
	int32_t rate_tokens;
	/* Its refusals, as ms before rate_t: the first of the streak
	 * (VKWS_RATE_NONE: none) and the last. Both saturate (past 49
	 * days); a streak lasts at most --rate-grace (a day), so the
	 * checks against 1 s and --rate-grace stay exact. */
	uint32_t rate_over_age, rate_last_age;
	struct vkws_q tx;	/* send queue (pool.c) */
	uint8_t ip[16];		/* peer address, IPv4 mapped to IPv6 */
	/* Room indexes (room.c), valid where in_rooms has the bit: 8 bits
	 * as VKWS_MAX_ROOMS <= 256. Entry k is node k of the slot in the
	 * room's member list, so entries keep their place (holes). */
	uint8_t rooms[VKWS_ROOMS_PER_CONN];
	struct ws_rx rx;	/* fragmentation and UTF-8 state */
	/* One timer, as no state needs two at once: the handshake deadline
	 * (S_HTTP), the next keepalive ping (S_WS, authenticated, before
	 * our close frame), the close deadline (after it) and the linger
	 * deadline (S_LINGER). */
	union {
		int64_t deadline;
		int64_t t_ping;
	};
	/* The upgrade time; its wall-clock time is derived when asked
	 * (vkws_wall_of()), so a clock stepped meanwhile (NTP on a router
	 * without an RTC) does not skew it. */
	int64_t t_open;		/* upgrade time (monotonic ms) */
	int64_t t_in;		/* last frame in (monotonic ms) */
	int64_t exp;		/* token expiry (monotonic ms), 0: none */
	int64_t rate_t;		/* last refill (monotonic ms) */
	uint64_t id;		/* clientId, unique in the process */
	uint64_t msgs_in, msgs_out, bytes_in, bytes_out;
};
_Static_assert(VKWS_HTTP_MAX_REQUESTS <= 255,
    "conn.requests counts up to --http-max-requests");
_Static_assert(VKWS_MAX_ROOMS <= 256, "a room index fits conn.rooms[]");
_Static_assert(VKWS_RX_BUF <= UINT16_MAX,
    "conn.frag and conn.raw count bytes of a receive buffer");
/* Issue 14: the fixed memory of a connection is its slot (aim: at most
 * 256 bytes); the pools hold everything else only while it is in use.
 * 224 on every build we make (x86-64, armhf, arm64, mipsel, s390x: the
 * int64 fields are 8-aligned on each), with 6 bytes of padding before
 * rx and 6 bits free: a field added here costs VKWS_SLOTS times its
 * size, so this fails unless it fits there or is paid for elsewhere. */
_Static_assert(sizeof(struct conn) <= 224, "a slot takes at most 224 bytes");

/* Process-wide counters, the source of /metrics and getStats. */
struct vkws_counts {
	uint64_t conns;		/* slots in use */
	uint64_t ws_open;	/* WebSocket connections (S_WS) */
	uint64_t ws_pending;	/* of those, chat ones not authenticated */
	uint64_t accepted, upgrades, refused_full, accept_errors;
	uint64_t http_requests, http_errors;
	uint64_t msgs_in, msgs_out, bytes_in, bytes_out;
	uint64_t refused_tls;	/* TLS engine pool full of proven ones */
	/* Admission (PROTOCOL.md 8). */
	uint64_t unproven;	/* connections on the unproven list */
	uint64_t proven;	/* authenticated chat and /echo WebSockets */
	uint64_t refused_per_ip, refused_reconnect;
	uint64_t evicted_unproven, evicted_http_age, evicted_tls;
	uint64_t protocol_errors, timeouts_handshake, closes_abnormal;
	uint64_t closes[10];	/* by code: see vkws_count_close() */
	uint64_t auth_ok, auth_failures, rate_limited, dropped_slow;
	uint64_t queue_hwm;	/* largest send queue seen (bytes) */
	uint64_t api_requests;
	uint64_t store_failures;
	uint64_t rooms;		/* rooms in the table */
	/* The cluster link (cluster.c). */
	uint64_t cluster_up, cluster_nodes, cluster_published,
	    cluster_received, cluster_reconnects,
	    cluster_reregistrations, cluster_partial;
};

extern struct conn vkws_conns[VKWS_SLOTS];
extern struct vkws_counts vkws_count;
/* One past the highest slot in use: scans of the table stop there. */
extern size_t vkws_slot_hi;

static inline size_t
vkws_slot_of(const struct conn *c)
{
	return (size_t)(c - vkws_conns);
}

/* Room a send queue must have before the next frame is read: one
 * largest echo of an incoming message. */
#define VKWS_REPLY_ROOM (VKWS_MAX_MSG + WS_MAX_HEADER)

/* ---- The pool (pool.c) ---------------------------------------------- */

/* Use the first n chunks of the pool (--pool-chunks). */
void vkws_pool_init(size_t n);
/* Copy p[0..n) (n <= VKWS_CHUNK) whole into a chunk shared with other
 * small texts; *k holds a reference (vkws_chunk_put() drops it). */
int vkws_pool_blob(const void *p, size_t n, uint16_t *k, uint16_t *off);
/* Chunks history may take in all. */
size_t vkws_pool_history_max(void);
/* A chunk with one reference and nothing written, or VKWS_NONE16. */
uint16_t vkws_chunk_get(void);
/* Drop a reference; the last one frees the chunk. */
void vkws_chunk_put(uint16_t k);
uint8_t *vkws_chunk_mem(uint16_t k);
/* Free chunks (or a quarter of the free segments, if fewer). */
size_t vkws_pool_free(void);
/* Whether the pool is under its low-water mark. */
int vkws_pool_low(void);
/* Whether n bytes can be queued anywhere now. */
int vkws_q_can_put(size_t n);
/* Append private bytes; start: they begin a frame. 0, or -1. */
int vkws_q_put(struct vkws_q *q, const void *p, size_t n, int start);
/* Write a||b once as a frame to share; 0, or -1 (pool dry). */
int vkws_q_shared(struct vkws_q *f, const void *a, size_t an,
    const void *b, size_t bn);
/* Point q at a shared frame (new segments, the same chunks). */
int vkws_q_attach(struct vkws_q *q, const struct vkws_q *f);
void vkws_q_free(struct vkws_q *q);
/* Fill up to max iovecs with the first budget bytes; returns count. */
int vkws_q_iov(const struct vkws_q *q, struct iovec *iov, int max,
    size_t budget);
void vkws_q_consume(struct vkws_q *q, size_t n);
/* Drop the frames not yet begun (a slow reader being closed). */
void vkws_q_drop_unsent(struct vkws_q *q);
/* Receive buffers of VKWS_RX_BUF bytes, for frames split across reads. */
uint16_t vkws_rx_get(void);
void vkws_rx_put(uint16_t k);
uint8_t *vkws_rx_mem(uint16_t k);
size_t vkws_rx_free_count(void);
struct vkws_pool_stats {
	size_t chunks, chunks_free, chunks_low;	/* low: fewest free seen */
	size_t segs, segs_free, rx, rx_free;
};
void vkws_pool_stats(struct vkws_pool_stats *s);
size_t vkws_pool_static_size(void);

/* ---- The core (vkws.c) ---------------------------------------------- */

int64_t vkws_now_ms(void);	/* monotonic */
int64_t vkws_wall_ms(void);	/* since the Unix epoch */
int64_t vkws_wall_of(int64_t t);	/* monotonic t on the wall clock now */

/* Bytes c's queue holds under its cap (VKWS_TX_BUF less the close
 * frame's reserve), 0 past it: input is read while a reply fits here
 * (backpressure), and an HTTP reply must fit. Inline, as is
 * vkws_tx_room() below: conn.c asks for every frame it reads. */
static inline size_t
vkws_tx_free(const struct conn *c)
{
	size_t cap = VKWS_TX_BUF - VKWS_CLOSE_RESERVE;

	return c->tx.len < cap ? cap - c->tx.len : 0;
}

/*
 * Whether a data frame of n bytes fits c's cap: the backlog its last
 * write left (c->tx_left) plus n. What a loop pass queued since that
 * write is not counted: the reader has had no chance to take it yet,
 * and a burst the server makes in one pass (Redis answering a pipeline
 * at once, the notices of many joins) must not make a reader slow. The
 * pool bounds such a burst (vkws_tx_room()).
 */
static inline int
vkws_tx_fits(const struct conn *c, size_t n)
{
	return (size_t)c->tx_left * VKWS_TX_UNIT + n <=
	    VKWS_TX_BUF - VKWS_CLOSE_RESERVE;
}
/* Queue raw bytes (HTTP); 0, or -1 if they do not fit whole. */
int vkws_tx_raw(struct conn *c, const void *p, size_t n);
/* Queue a frame with payload a||b; 0, or -1 if it does not fit whole or
 * the connection is closing. Counts data frames in msgs/bytes out. */
int vkws_tx_frame2(struct conn *c, int op, const void *a, size_t an,
    const void *b, size_t bn);
int vkws_tx_frame(struct conn *c, int op, const void *p, size_t n);
/* A text frame encoded once into the pool, for many queues. */
int vkws_tx_shared_make(struct vkws_q *f, int op, const void *p, size_t n);
/* Queue the shared frame f (payload n bytes) for c: 0, or -1 as
 * vkws_tx_frame(). */
int vkws_tx_shared(struct conn *c, const struct vkws_q *f, size_t n);
/* c's userInfo text (NULL if none) and setting it: 0, or -1 if the pool
 * has no chunk for it. n == 0 drops it. */
const char *vkws_info(const struct conn *c);
/* c's user id (uid_len bytes), and setting it: 0, or -1 (pool dry). */
const char *vkws_uid(const struct conn *c);
int vkws_uid_set(struct conn *c, const char *p, size_t n);
int vkws_info_set(struct conn *c, const char *p, size_t n);
/* A chat connection authenticated: it leaves the unproven list. Returns
 * 0, or -1 if --max-conns proven connections are open already. */
int vkws_conn_prove(struct conn *c);
/* A deadline of c may have moved earlier (a token's exp, the first
 * ping after auth, a held user_join): its timers run in the next loop
 * pass, which files the new time. A later deadline needs no call. */
void vkws_conn_timers(struct conn *c);
/* Reconnect buckets (admit.c): take one upgrade of user uid[0..n).
 * Returns 0, or -1 if the user is over --reconnect-rate. */
int vkws_admit_user(const char *uid, size_t n);
/* The address table (admit.c). At accept: the entry of ip (or
 * VKWS_NO_SLOT: not tracked) with one more connection, *before being the
 * connections it had. At close: one less. At an upgrade: take one from
 * the address's reconnect bucket: 0, or -1 if it is empty. */
void vkws_admit_init(struct vkws_config *c);
size_t vkws_admit_static_size(void);
uint16_t vkws_admit_addr_add(const uint8_t ip[16], unsigned *before);
void vkws_admit_addr_del(uint16_t ent);
int vkws_admit_addr_upgrade(uint16_t ent);
/* Close a slow consumer: 1013, its unsent frames dropped. */
void vkws_close_slow(struct conn *c);
/* Start the closing handshake with code and an ASCII reason. */
void vkws_close(struct conn *c, uint16_t code, const char *reason);
/* Flush, shut the write side and drop the connection at EOF. */
void vkws_linger(struct conn *c);
/* Whether the request being answered may leave c open for another
 * (--http-max-requests; conn.c, as is vkws_http_reply()). */
int vkws_http_may_keep(const struct conn *c);
/* Queue an HTTP response (see conn.c). */
void vkws_http_reply(struct conn *c, int status, const char *extra,
    const char *type, const void *body, size_t n, int keep);

/* c's peer as "ip:port" ("[ip]:port" over IPv6), NUL-terminated, in a
 * static buffer valid until the next call. */
const char *vkws_conn_addr(const struct conn *c);
/* Write c's clientId (at most VKWS_CLIENT_ID_MAX bytes, no NUL). */
size_t vkws_client_id(const struct conn *c, char *out);
/* The open WebSocket a clientId names, or NULL. */
struct conn *vkws_conn_by_id(const char *s, size_t n);
/* Cluster: clientIds become "PREFIX-hex", unique over every
 * node; p[0..n) is kept by reference and must live as long as the
 * process. The counter starts at seed (random), so a node restarted
 * under the same name never hands out an id of its earlier life. */
void vkws_client_id_prefix(const char *p, size_t n, uint64_t seed);

/* ---- Between the loop (vkws.c) and a connection's input (conn.c) ---- */
struct vkws_hooks;
/*
 * vkws.c reads and writes sockets; conn.c makes sense of what a read
 * brought (HTTP heads, the upgrade, frames) and answers through the
 * send queue. Only these cross between the two, besides the calls
 * above that the layers on top use as well.
 */

/* conn.c: at start, the configuration and the hooks of the layer above. */
void vkws_conn_init(struct vkws_config *c, const struct vkws_hooks *h);
/* conn.c: n bytes were read for c into b: the shared read buffer when
 * c->raw was 0, else the end of c's receive buffer. */
void vkws_conn_input(struct conn *c, uint8_t *b, size_t n);
/* conn.c: input held for send-queue room (c->held) goes on. */
void vkws_conn_resume(struct conn *c);
/* vkws.c: the monotonic time of this loop pass (ms), for activity
 * stamps: one clock read per pass instead of one per frame. */
extern int64_t vkws_pass_now;
/* Whether a data frame of n bytes may be queued for c: within its cap
 * (vkws_tx_fits()), and, while the pool is low, only for a reader with
 * at most VKWS_TX_SLOW queued. Inline: /echo asks for every piece it
 * sends on. */
static inline int
vkws_tx_room(const struct conn *c, size_t n)
{
	if (!vkws_tx_fits(c, n))
		return 0;
	if (vkws_pool_low() && c->tx.len > VKWS_TX_SLOW)
		return 0;
	return vkws_q_can_put(n);
}
/* vkws.c: append p[0..n) to c's queue (room checked by the caller);
 * start: the bytes begin a frame or a response. */
void vkws_tx_put(struct conn *c, const void *p, size_t n, int start);
/* vkws.c: queue a||b, written to the socket at once if nothing waits
 * before it. 0, or -1 if the rest did not fit the pool (c is freed). */
int vkws_tx_write(struct conn *c, const void *a, size_t an, const void *b,
    size_t bn);
/* vkws.c: count a close frame sent, by code (vkws_count.closes). */
void vkws_count_close(uint16_t code);
/* vkws.c: c's receive buffer, taken from the pool if it has none (an
 * unproven connection may give its up); NULL if none is free. */
uint8_t *vkws_rx_own(struct conn *c);
/* vkws.c: give c's receive buffer back once nothing waits in it. */
void vkws_rx_trim(struct conn *c);
/* vkws.c: give c, just upgraded, its clientId. */
void vkws_client_id_assign(struct conn *c);

/* ---- Rooms, users and history (room.c) -------------------------------- */

struct room;
struct json_out;
/* {"clientId":..,"userId":..,"userInfo":..} of c. */
void vkws_out_user(struct json_out *o, const struct conn *c);
/* Queue a text frame for c; a full queue closes c with 1013. Returns 1
 * if queued, else 0. */
int vkws_deliver(struct conn *c, const char *p, size_t n);
struct room *vkws_room_find(const char *name, size_t n);
int vkws_room_name_ok(const char *name, size_t n);
int vkws_room_is_member(const struct conn *c, const struct room *r);
int vkws_room_is_default(const struct room *r);
/* Join: check (1 already a member, 0 may join, else VKWS_E*), then do:
 * user_join to all members, user_list and history to c. */
int vkws_join_check(const struct conn *c, const char *name, size_t n,
    struct room **rp);
void vkws_join(struct conn *c, const char *name, size_t n, uint64_t since);
/* The first half of vkws_join: create, link, user_join to the members;
 * no user_list, no history. NULL if it could not. */
struct room *vkws_join_member(struct conn *c, const char *name, size_t n);
/* Leave: check (0, VKWS_ENOTFOUND, VKWS_EPERM), then do. */
int vkws_leave_check(const struct conn *c, const char *name, size_t n,
    struct room **rp);
void vkws_leave(struct conn *c, struct room *r);
/* Send the user_join held back while c was young (PROTOCOL.md 8) for
 * room r, or for every room with r NULL. */
void vkws_room_announce(struct conn *c, const struct room *r);
/* Chat: encode, store and keep as history (returns the length and sets
 * *frame, or VKWS_ELIMIT / VKWS_ESTORE), then send the frame to r. */
int vkws_chat_encode(const struct conn *c, struct room *r,
    const char *text, size_t n, const char **frame);
int vkws_chat_send(struct room *r, const char *p, size_t n);
/* The life of r (store.h): a room deleted and made again has another. */
uint64_t vkws_room_life(const struct room *r);
/* Copy r's name to out (VKWS_ROOM_NAME_MAX bytes); returns its length. */
size_t vkws_room_name(const struct room *r, char *out);
/* History of r as a JSON array; returns whether it is complete. */
int vkws_history_write(const struct room *r, uint64_t since, size_t limit,
    struct json_out *o);
void vkws_history_add(struct room *r, uint64_t seq, const char *p,
    size_t n);
void vkws_user_added(struct conn *c);
int vkws_user_exists(const char *uid, size_t n);
void vkws_user_removed(struct conn *c);
void vkws_rooms_init(struct vkws_config *c);

/* Cluster hook points. Observers of membership changes, each
 * called after room.c has done its local part; any may be NULL. */
struct vkws_room_obs {
	void (*joined)(struct conn *c, struct room *r);
	/* c left r; node: its membership's index (vkws_member_node(), as
	 * it was), held: its user_join had not been told yet (PROTOCOL.md
	 * 8, a young connection). */
	void (*left)(struct conn *c, struct room *r, uint32_t node, int held);
	/* A held user_join of c in r is told to the members now. */
	void (*announced)(struct conn *c, struct room *r, uint32_t node);
	void (*user_added)(struct conn *c);
	void (*user_removed)(struct conn *c);
	/* createRoom set maxClients and persistent: -1 answers -7. */
	int (*room_set)(struct room *r);
	/* deleteRoom removed r (its members are gone already). */
	void (*room_deleted)(struct room *r);
};
void vkws_room_settings(const struct room *r, uint32_t *max_clients,
    int *persistent);
void vkws_room_observe(const struct vkws_room_obs *o);
/* Queue p[0..n) to r's members on this node; returns how many. */
int vkws_room_send(struct room *r, const char *p, size_t n);
/* The same, to the members whose membership index want() accepts. */
int vkws_room_send_if(struct room *r, const char *p, size_t n,
    int (*want)(uint32_t node, void *arg), void *arg);
/* The index of c's membership of r (0 to VKWS_SLOTS *
 * VKWS_ROOMS_PER_CONN - 1), or UINT32_MAX if c is not a member. */
uint32_t vkws_member_node(const struct conn *c, const struct room *r);
/* A chat message of r stored by the cluster: seq and local history. */
void vkws_room_chat_seen(struct room *r, uint64_t seq, const char *p,
    size_t n);
void vkws_conn_rooms(struct conn *c,
    void (*fn)(struct conn *, struct room *));
size_t vkws_rooms_static_size(void);

/* ---- Storage (store.c) ---------------------------------------------- */

/* Each returns 0, or -1 if the record could not be written. Without
 * --data-dir they do nothing and succeed. */
int vkws_store_chat(const char *room, size_t n, uint64_t life, uint64_t seq,
    const char *frame, size_t fn);
int vkws_store_room(const char *room, size_t n, uint32_t max_clients,
    int persistent, uint64_t life, int64_t created_at);
int vkws_store_room_deleted(const char *room, size_t n);

/* Open --data-dir (if set) and replay the log into the room table.
 * Returns 0, or -1 with a log line if the server must not start. */
int vkws_store_open(struct vkws_config *c);
/* Once per pass, and whenever an ack cannot wait for the end of it: make
 * the records written so far durable (--fsync batch). Returns 0, or -1 if
 * the sync failed (what it should have covered is not known to be on
 * disk, and the log is broken until a compaction succeeds). */
int vkws_store_sync(void);
/* Once per pass, after the sync: compact the log when it is due, or to
 * end a broken state. */
void vkws_store_tick(void);
/* Whether records were written that wait for that sync: their acks must
 * wait too (--fsync batch only; always and never need no waiting). */
int vkws_store_unsynced(void);
/* At a clean stop: sync and close the log, whatever --fsync says. */
void vkws_store_close(void);
/* Replay: restore a room / a chat message (room.c). Each returns 0, -1
 * if the room table is full, or VKWS_RESTORE_INVALID for a record that
 * must not be served (store.c counts it and keeps the log aside). */
#define VKWS_RESTORE_INVALID (-2)
int vkws_restore_room(const char *room, size_t n, uint32_t max_clients,
    int persistent, uint64_t seq, uint64_t life, int64_t created_at);
int vkws_restore_chat(const char *room, size_t n, uint64_t life,
    uint64_t seq, const char *frame, size_t fn);
int vkws_restore_room_deleted(const char *room, size_t n);
/* After replay: drop the rooms that are not kept, give every kept room
 * without one a life. Returns how many rooms were dropped or got a life
 * (then the log must be rewritten before anything is appended). */
int vkws_restore_done(void);
/* Compaction: every kept room, then each room's kept history. */
typedef void vkws_store_room_fn(const char *room, size_t n,
    uint32_t max_clients, int persistent, uint64_t seq, uint64_t life,
    int64_t created_at, void *arg);
typedef void vkws_store_chat_fn(const char *room, size_t n, uint64_t seq,
    const char *frame, size_t fn, void *arg);
void vkws_room_each(vkws_store_room_fn *fn, void *arg);
void vkws_history_each(const char *room, size_t n, vkws_store_chat_fn *fn,
    void *arg);

/* ---- TLS (tls.c) ---------------------------------------------------- */
/*
 * The TLS transport: a static pool of VKWS_MAX_TLS_CONNS BearSSL server
 * engines. The core calls these for every connection with c->tls set;
 * above them only plaintext exists.
 */

/* Load --cert and --key (at start); -1 with a log line naming the file. */
int vkws_tls_init(struct vkws_config *c);
/* SIGHUP: load the pair again; on failure keep the old one. */
void vkws_tls_reload(void);
/* Take an engine for a connection whose first record has come; -1 if
 * the pool is full. */
int vkws_tls_accept(struct conn *c);
/* Whether c holds an engine (a TLS connection holds none before its
 * first record, nor once its close_notify is out). */
int vkws_tls_engine(const struct conn *c);
/* The connection whose engine gives way when the pool is full: the
 * oldest handshake in progress (*in_handshake set), else the oldest
 * unproven connection past its handshake; NULL if every engine serves
 * a proven connection. */
struct conn *vkws_tls_victim(int *in_handshake);
/* c is proven: its engine is no longer a victim. */
void vkws_tls_proven(struct conn *c);
/* Plaintext in: bytes read, 0 at EOF (or close_notify), -1 with errno
 * (EAGAIN: wait for poll()). */
ssize_t vkws_tls_recv(struct conn *c, void *p, size_t n);
/* Plaintext out: bytes taken, or -1 with errno (EAGAIN). Pushes what it
 * can of the records to the socket. */
ssize_t vkws_tls_send(struct conn *c, const struct iovec *iov, int n);
/* Push records still held: 0 when all are out, 1 if some wait for
 * POLLOUT, -1 on error. */
int vkws_tls_flush(struct conn *c);
/* Queue close_notify. */
void vkws_tls_close(struct conn *c);
/* Whether decrypted plaintext waits in the engine (poll() cannot see
 * it). */
int vkws_tls_pending(const struct conn *c);
/* The socket events the engine needs for the plaintext wishes ev. */
short vkws_tls_events(const struct conn *c, short ev);
/* Give the engine back. */
void vkws_tls_free(struct conn *c);
/* Static bytes of the pool, for --budget. */
size_t vkws_tls_static_size(void);
/* Bytes of one engine of the pool (part of vkws_tls_static_size()). */
size_t vkws_tls_conn_size(void);
/* The negotiated cipher suite of a TLS connection, or NULL. */
const char *vkws_tls_cipher(const struct conn *c);

/* ---- The layers above the core ------------------------------------- */

/*
 * The core knows the protocol layers (the chat protocol, the server API,
 * the page) only through this table: main.c hands vkws_api_hooks (api.c)
 * to vkws_hooks_set() before vkws_serve(), so every dependency points
 * down. Each hook is called from the loop, never from inside another.
 */
struct vkws_hooks {
	/* At start, after the room table and before anything listens;
	 * -1 stops the server. */
	int (*init)(struct vkws_config *c);
	/* At the end of a clean stop. */
	void (*stop)(void);
	/* Static bytes of the layer, for --budget. */
	size_t (*static_size)(void);
	/* Whether the upgrade request carries a valid ?token= (1: then
	 * the connection is not pending) or not (0); VKWS_ERATE if its
	 * user is over --reconnect-rate (the upgrade gets 503). */
	int (*token_ok)(const struct http_req *r);
	/* A chat WebSocket was opened by request r. */
	void (*ws_opened)(struct conn *c, const struct http_req *r);
	/* A whole message (text or binary) on a chat WebSocket. */
	void (*ws_message)(struct conn *c, int op, const uint8_t *p,
	    size_t n);
	/* A WebSocket leaves S_WS (any kind). */
	void (*ws_closed)(struct conn *c);
	/* Chat timers (auth deadline, keepalive, token expiry): act on
	 * those passed, return the next (monotonic ms). */
	int64_t (*ws_timer)(struct conn *c, int64_t now);
	/* SIGTERM: tell a chat client before its 1001. */
	void (*ws_shutdown)(struct conn *c);
	/* A request for any path but /ws and /echo. body[0..avail) is what
	 * has arrived after the head; set *used to the body bytes consumed.
	 * Returns 1 if the connection stays open for another request, 0
	 * otherwise (also while waiting for more of a body). */
	int (*http_other)(struct conn *c, const struct http_req *r,
	    const uint8_t *body, size_t avail, size_t *used);
	/* The rest of a body (c->body_need > 0): p[0..n) arrived after what
	 * http_other() took. Returns the bytes taken, at most body_need;
	 * once the body is whole the request is answered. */
	size_t (*http_body)(struct conn *c, const uint8_t *p, size_t n);
	/* Once per loop pass, after input and before output. */
	void (*after_pass)(void);
	/* SIGHUP (the core reloads the TLS pair itself). */
	void (*reload)(void);
	/* Descriptors a layer owns besides the connection table (the
	 * cluster link). Before poll(): act on the layer's timers
	 * that passed, fill at most max entries of p (fd, events) and lower
	 * *next to the layer's next deadline (monotonic ms); returns the
	 * entries filled. After poll(): the same entries with revents.
	 * Either may be NULL. */
	size_t (*poll_fds)(struct pollfd *p, size_t max, int64_t now,
	    int64_t *next);
	void (*poll_ready)(const struct pollfd *p, size_t n);
};

void vkws_hooks_set(const struct vkws_hooks *h);
extern const struct vkws_hooks vkws_api_hooks;	/* api.c */

/* ---- The protocol layer (api.c, chat.c, web.c) ------------------------ */

/* chat.c: the reply to a request answered later (the cluster, issue
 * 15); id[0..idn) is the request's id as JSON source, msg NULL for the
 * usual text of code. */
void vkws_chat_ack(struct conn *c, const char *id, size_t idn, int code,
    const char *msg);
/* chat.c: seed the generator behind reconnect spreads. */
int vkws_chat_init(struct vkws_config *c);
/* chat.c: sync the log (vkws_store_sync) and send the acks and chat
 * messages that waited for it: code 0 and the messages if it succeeded,
 * -7 and no message if not. Returns 0, or -1 if the sync failed. */
int vkws_chat_commit(void);
/* chat.c: static bytes of the acks waiting for the sync, for --budget. */
size_t vkws_chat_static_size(void);
/* Whether json[0..n) is one valid JSON object. */
int vkws_json_is_object(const char *json, size_t n);
/* Whether a peer address (IPv4 mapped to IPv6) is on loopback, where
 * /api answers without --api-remote (PROTOCOL.md 4); api.c. */
int vkws_is_loopback(const uint8_t ip[16]);
/* The chat hooks (chat.c), gathered into vkws_api_hooks by api.c. */
int vkws_token_ok(const struct http_req *r);
void vkws_ws_opened(struct conn *c, const struct http_req *r);
void vkws_ws_message(struct conn *c, int op, const uint8_t *p, size_t n);
void vkws_ws_closed(struct conn *c);
int64_t vkws_ws_timer(struct conn *c, int64_t now);
void vkws_ws_shutdown(struct conn *c);
/* web.c: serve the file of the built-in chat page that r names (GET,
 * HEAD; "/" is the page). Returns whether c stays open for another
 * request (1 or 0), or VKWS_ENOTFOUND, nothing queued, for a path that
 * is no file of the page. keep: whether the request allows keep-alive. */
int vkws_page_serve(struct conn *c, const struct http_req *r, int keep);

#endif
