/*
 * room.c: rooms, users, chat history and the vk.websocket C API of
 * vkws.h, on top of the core's connection table (core.h). Rooms and
 * their members are static tables with intrusive lists, users are hash
 * chains through the slots, history is one byte ring per room. Sending
 * goes through the core's queue functions; nothing here touches a socket
 * or allocates.
 */
#include <stdio.h>
#include <string.h>

#include "vkws.h"
#include "core.h"
#include "json.h"
#include "store.h"

static struct vkws_config *cfg;
/* Who watches membership changes (the cluster layer). */
static const struct vkws_room_obs *obs;

void
vkws_room_observe(const struct vkws_room_obs *o)
{
	obs = o;
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
	uint32_t b = hash(vkws_uid(c), c->uid_len) & (USER_BUCKETS - 1);

	c->user_next = user_head[b];
	user_head[b] = (uint16_t)vkws_slot_of(c);
}

static void
user_unlink(struct conn *c)
{
	uint32_t b = hash(vkws_uid(c), c->uid_len) & (USER_BUCKETS - 1);
	uint16_t *p = &user_head[b];

	while (*p != VKWS_NO_ROOM) {
		if (*p == vkws_slot_of(c)) {
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
		if (c->uid_len == n && memcmp(vkws_uid(c), uid, n) == 0 &&
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

/* A room's history ring is made of pool chunks, taken as it grows. */
#define HIST_CHUNKS (VKWS_HISTORY_BYTES / VKWS_CHUNK)
_Static_assert(VKWS_HISTORY_BYTES % VKWS_CHUNK == 0,
    "a history ring is whole chunks");

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
	uint64_t life;		/* which life of this name (store.h), 0 none */
	uint64_t seq;		/* seq of the last stored chat message */
	uint64_t dropped;	/* highest seq no longer kept, 0: none */
	/* First seq stored but not yet sent to the members (its ack waits
	 * for the sync, chat.c), 0: none. A join replays history only
	 * below it: the joiner, a member by then, gets those messages live
	 * with everyone else, so never twice. */
	uint64_t unsent;
	uint32_t h_off;		/* history ring: oldest entry */
	uint32_t h_len;		/* history ring: bytes used */
	uint32_t h_count;	/* history ring: entries */
	uint32_t h_cap;		/* history ring: bytes of its chunks */
	uint16_t h_chunk[HIST_CHUNKS];	/* pool chunks of the ring */
};

static struct room rooms[VKWS_MAX_ROOMS];
/* The life the next room created gets, and the largest life replay saw:
 * lives only grow, so a name's every life is told apart in the log. */
static uint64_t life_next = 1, life_max;
static uint16_t room_head[ROOM_BUCKETS];
static uint32_t mem_next[NODES], mem_prev[NODES];
/* Chunks all history rings hold (at most vkws_pool_history_max()). */
static size_t hist_chunks;
/* One encoded outgoing frame, queued to as many connections as need it. */
static char out_buf[VKWS_MAX_OUT];
/* Tokens to check a replayed chat frame: at most one per two bytes of
 * its userInfo, plus its own fields. */
#define REPLAY_TOKENS (32 + VKWS_USERINFO_MAX / 2)
static jsmntok_t rtok[REPLAY_TOKENS];

size_t
vkws_rooms_static_size(void)
{
	return sizeof(rooms) + sizeof(room_head) + sizeof(mem_next) +
	    sizeof(mem_prev) + sizeof(out_buf) +
	    sizeof(user_head) + sizeof(rtok);
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
	memset(rooms[i].h_chunk, 0xFF, sizeof(rooms[i].h_chunk));
	rooms[i].used = 1;
	rooms[i].name_len = (uint8_t)n;
	memcpy(rooms[i].name, name, n);
	rooms[i].head = NODE_NONE;
	rooms[i].created_at = vkws_wall_ms();
	rooms[i].life = life_next++;
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

/* Give r's history chunks back to the pool. */
static void
hist_release(struct room *r)
{
	size_t k;

	for (k = 0; k < r->h_cap / VKWS_CHUNK; k++) {
		vkws_chunk_put(r->h_chunk[k]);
		r->h_chunk[k] = VKWS_NONE16;
		hist_chunks--;
	}
	r->h_cap = r->h_off = r->h_len = r->h_count = 0;
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
	hist_release(r);
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
		if ((c->in_rooms & (1u << k)) && c->rooms[k] == room_index(r))
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
	uint32_t node = (uint32_t)(vkws_slot_of(c) * VKWS_ROOMS_PER_CONN +
	    (size_t)k);

	c->rooms[k] = (uint8_t)room_index(r);
	c->in_rooms |= (uint16_t)(1u << k);
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
	uint32_t node = (uint32_t)(vkws_slot_of(c) * VKWS_ROOMS_PER_CONN +
	    (size_t)k);

	if (mem_prev[node] != NODE_NONE)
		mem_next[mem_prev[node]] = mem_next[node];
	else
		r->head = mem_next[node];
	if (mem_next[node] != NODE_NONE)
		mem_prev[mem_next[node]] = mem_prev[node];
	c->in_rooms &= (uint16_t)~(1u << k);
	c->quiet &= (uint16_t)~(1u << k);
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
		json_out_str(o, vkws_uid(c), c->uid_len);
	else
		json_out_lit(o, "null");
	json_out_lit(o, ",\"userInfo\":");
	if (c->info_len > 0)
		json_out_raw(o, vkws_info(c), c->info_len);
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
	vkws_close_slow(c);
	return 0;
}

/*
 * A frame for many readers: written into pool chunks once, on first use,
 * and every reader's queue points at those chunks (pool.c). A reader whose
 * queue cannot take it is closed with 1013, as vkws_deliver() does.
 */
struct fan {
	struct vkws_q f;
	const char *p;
	size_t n;
	int made;		/* 0: not yet, 1: in the pool, -1: pool dry */
};

static void
fan_init(struct fan *fa, const char *p, size_t n)
{
	fa->p = p;
	fa->n = n;
	fa->made = 0;
}

/* 1 if queued for c, else 0; -1 in *dry if the pool had no room. */
static int
fan_deliver(struct fan *fa, struct conn *c)
{
	if (c->state != S_WS || c->close_sent)
		return 0;
	if (fa->made == 0)
		fa->made = vkws_tx_shared_make(&fa->f, WS_OP_TEXT, fa->p,
		    fa->n) == 0 ? 1 : -1;
	if (fa->made < 0)
		return 0;
	if (vkws_tx_shared(c, &fa->f, fa->n) == 0)
		return 1;
	vkws_close_slow(c);
	return 0;
}

/* Drop the sender's references: the chunks live on in the queues. */
static int
fan_done(struct fan *fa, int sent)
{
	if (fa->made > 0)
		vkws_q_free(&fa->f);
	return fa->made < 0 ? VKWS_ELIMIT : sent;
}

/* Queue p[0..n) to every member of r (want NULL) or to those want()
 * takes; returns the number delivered, or VKWS_ELIMIT if the pool could
 * not hold the frame. */
static int
room_send(struct room *r, const char *p, size_t n,
    int (*want)(uint32_t node, void *arg), void *arg)
{
	uint32_t node = r->head;
	struct fan fa;
	int sent = 0;

	fan_init(&fa, p, n);
	while (node != NODE_NONE) {
		uint32_t next = mem_next[node];
		if (want == NULL || want(node, arg))
			sent += fan_deliver(&fa, node_conn(node));
		node = next;
	}
	return fan_done(&fa, sent);
}

/* Encode user_join / user_leave of who in r into out_buf; 0 if it
 * does not fit. */
static size_t
member_note(struct room *r, const char *type, const struct conn *who)
{
	struct json_out o;

	out_room_head(&o, type, r);
	json_out_lit(&o, ",\"user\":");
	vkws_out_user(&o, who);
	json_out_lit(&o, ",\"timestamp\":");
	json_out_int(&o, vkws_wall_ms());
	json_out_lit(&o, "}");
	return json_out_ok(&o) ? o.n : 0;
}

/* user_join / user_leave to the members of r. */
static void
notify_member(struct room *r, const char *type, const struct conn *who)
{
	size_t n = member_note(r, type, who);

	if (n > 0)
		room_send(r, out_buf, n, NULL, NULL);
}

/*
 * PROTOCOL.md 8: user_join and user_leave of a connection that lived
 * less than VKWS_CHURN_MS are not sent, so a client reconnecting in a
 * loop does not flood its rooms. A young connection's join is told to
 * itself at once and to the others once it is old enough (or before its
 * first chat in the room); if it leaves first, nobody hears of either.
 */
static int
young(const struct conn *c)
{
	return vkws_now_ms() - c->t_open < VKWS_CHURN_MS;
}

/*
 * Tell the members of the room in c->rooms[k] that were there before c
 * that c joined. Members are linked newest first, so they are the ones
 * after c's entry; those that joined since found c in their user_list.
 */
static void
announce(struct conn *c, int k)
{
	struct room *r = &rooms[c->rooms[k]];
	size_t n = member_note(r, "user_join", c);
	uint32_t node = (uint32_t)(vkws_slot_of(c) * VKWS_ROOMS_PER_CONN +
	    (size_t)k);

	struct fan fa;

	c->quiet &= (uint16_t)~(1u << k);
	if (obs != NULL && obs->announced != NULL)
		obs->announced(c, r, node);
	if (n == 0)
		return;
	/* One frame for all of them, stored once (pool.c). */
	fan_init(&fa, out_buf, n);
	for (node = mem_next[node]; node != NODE_NONE; ) {
		uint32_t next = mem_next[node];
		(void)fan_deliver(&fa, node_conn(node));
		node = next;
	}
	(void)fan_done(&fa, 0);
}

void
vkws_room_announce(struct conn *c, const struct room *r)
{
	int k;

	for (k = 0; k < VKWS_ROOMS_PER_CONN && c->quiet != 0; k++)
		if ((c->quiet & (1u << k)) &&
		    (r == NULL || c->rooms[k] == room_index(r)))
			announce(c, k);
}

/* ---- History -------------------------------------------------------- */

/* Each entry in a room's ring: [u32 length][u64 seq][chat frame]. */
#define HENT 12

/* Copy p[0..n) into the ring of r at off (taken modulo its size). */
static void
ring_write(struct room *r, size_t off, const void *p, size_t n)
{
	const uint8_t *b = p;

	while (n > 0) {
		size_t o = off % r->h_cap, in = o % VKWS_CHUNK;
		size_t m = VKWS_CHUNK - in;

		if (m > n)
			m = n;
		memcpy(vkws_chunk_mem(r->h_chunk[o / VKWS_CHUNK]) + in, b, m);
		b += m;
		n -= m;
		off = o + m;
	}
}

static void
ring_read(const struct room *r, size_t off, void *p, size_t n)
{
	uint8_t *b = p;

	while (n > 0) {
		size_t o = off % r->h_cap, in = o % VKWS_CHUNK;
		size_t m = VKWS_CHUNK - in;

		if (m > n)
			m = n;
		memcpy(b, vkws_chunk_mem(r->h_chunk[o / VKWS_CHUNK]) + in, m);
		b += m;
		n -= m;
		off = o + m;
	}
}

static void
hist_drop_oldest(struct room *r)
{
	uint32_t len;
	uint64_t seq;

	ring_read(r, r->h_off, &len, 4);
	ring_read(r, r->h_off + 4, &seq, 8);
	r->h_off = (uint32_t)((r->h_off + HENT + len) % r->h_cap);
	r->h_len -= HENT + len;
	r->h_count--;
	r->dropped = seq;
}

/*
 * One more chunk for the ring of r, if the ring is not wrapped (so its
 * entries keep their offsets), is under VKWS_HISTORY_BYTES, and history
 * as a whole is under its share of the pool with the pool above its
 * low-water mark: traffic comes first. Returns whether it grew.
 */
static int
hist_grow(struct room *r)
{
	uint16_t k;

	if (r->h_count == 0)
		r->h_off = 0;
	if (r->h_cap >= VKWS_HISTORY_BYTES || r->h_off + r->h_len > r->h_cap ||
	    hist_chunks >= vkws_pool_history_max() || vkws_pool_low() ||
	    (k = vkws_chunk_get()) == VKWS_NONE16)
		return 0;
	r->h_chunk[r->h_cap / VKWS_CHUNK] = k;
	r->h_cap += VKWS_CHUNK;
	hist_chunks++;
	return 1;
}

/* Keep a chat frame as the newest history entry of r, dropping the
 * oldest ones past --history or the ring's size. A ring that cannot
 * grow (history's share of the pool is taken) keeps what fits. */
void
vkws_history_add(struct room *r, uint64_t seq, const char *p, size_t n)
{
	uint32_t len = (uint32_t)n;
	size_t tail;

	if (HENT + n > VKWS_HISTORY_BYTES || cfg->history == 0) {
		r->dropped = seq;
		return;
	}
	while (r->h_count > 0 && r->h_count >= cfg->history)
		hist_drop_oldest(r);
	while (r->h_len + HENT + n > r->h_cap && hist_grow(r))
		;
	while (r->h_count > 0 && r->h_len + HENT + n > r->h_cap)
		hist_drop_oldest(r);
	if (r->h_len + HENT + n > r->h_cap) {
		r->dropped = seq;
		return;
	}
	tail = r->h_off + r->h_len;
	ring_write(r, tail, &len, 4);
	ring_write(r, tail + 4, &seq, 8);
	ring_write(r, tail + HENT, p, n);
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
	size_t off = r->h_off, i, skip = 0, first = 1;
	uint32_t len;
	uint64_t seq;

	if (limit > 0 && r->h_count > limit)
		skip = r->h_count - limit;
	json_out_lit(o, "[");
	for (i = 0; i < r->h_count; i++) {
		ring_read(r, off, &len, 4);
		ring_read(r, off + 4, &seq, 8);
		if (i >= skip && seq > since && (r->unsent == 0 ||
		    seq < r->unsent) && o->n + len + 2 < o->cap) {
			if (!first)
				json_out_lit(o, ",");
			first = 0;
			ring_read(r, off + HENT, o->p + o->n, len);
			o->n += len;
		}
		off = (off + HENT + len) % r->h_cap;
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
	/* In a cluster (an observer watches) the join script counts
	 * maxClients over every node, as the cluster set it; this node's
	 * copy of the setting may be older. */
	if ((obs == NULL && r->members >= max) ||
	    c->nrooms >= VKWS_ROOMS_PER_CONN)
		return VKWS_ELIMIT;
	return 0;
}

/*
 * Join c to the room (checked by vkws_join_check), creating it if need
 * be: members, c included, get user_join; then c gets user_list and
 * history (since: seq > since, else the last --history messages).
 */
struct room *
vkws_join_member(struct conn *c, const char *name, size_t n)
{
	struct room *r = vkws_room_find(name, n);
	int k;

	if (r == NULL && (r = room_create(name, n)) == NULL)
		return NULL;
	for (k = 0; k < VKWS_ROOMS_PER_CONN; k++)
		if (!(c->in_rooms & (1u << k)))
			break;
	if (k == VKWS_ROOMS_PER_CONN)
		return NULL;
	member_link(c, r, k);
	if (young(c)) {
		size_t jn = member_note(r, "user_join", c);
		c->quiet |= (uint16_t)(1u << k);
		vkws_conn_timers(c);	/* its user_join is due then */
		if (jn > 0)
			(void)vkws_deliver(c, out_buf, jn);
	} else
		notify_member(r, "user_join", c);
	if (obs != NULL && obs->joined != NULL)
		obs->joined(c, r);
	return r;
}

void
vkws_join(struct conn *c, const char *name, size_t n, uint64_t since)
{
	struct room *r;
	struct json_out o;
	uint32_t node;
	size_t mark;
	int complete;

	if ((r = vkws_join_member(c, name, n)) == NULL)
		return;

	/* user_list: as many members as one frame holds; the rest are
	 * counted in "more" (README: limits). */
	out_room_head(&o, "user_list", r);
	json_out_lit(&o, ",\"users\":[");
	{
		unsigned more = 0;
		size_t cap = o.cap;

		/* Room for the closing fields. */
		o.cap = VKWS_USER_LIST_BYTES - 64;
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
		o.cap = cap;
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
	int k = member_entry(c, r), held;
	uint32_t mine;

	if (k < 0)
		return;
	mine = (uint32_t)(vkws_slot_of(c) * VKWS_ROOMS_PER_CONN + (size_t)k);
	held = (c->quiet & (1u << k)) != 0;
	if (held) {
		/* Held join (PROTOCOL.md 8): only those who joined since,
		 * and so saw c in their user_list, hear that it left. They
		 * are linked before c (newest first). */
		uint32_t me = (uint32_t)(vkws_slot_of(c) * VKWS_ROOMS_PER_CONN +
		    (size_t)k), node;
		size_t n = member_note(r, "user_leave", c);
		struct fan fa;

		fan_init(&fa, out_buf, n);
		for (node = r->head; n > 0 && node != me &&
		    node != NODE_NONE; ) {
			uint32_t next = mem_next[node];
			(void)fan_deliver(&fa, node_conn(node));
			node = next;
		}
		(void)fan_done(&fa, 0);
		member_unlink(c, r, k);
	} else {
		member_unlink(c, r, k);
		notify_member(r, "user_leave", c);
	}
	if (obs != NULL && obs->left != NULL)
		obs->left(c, r, mine, held);
	if (r->members == 0 && !r->persistent && !vkws_room_is_default(r))
		room_remove(r);
}

static int
leave_all(struct conn *c)
{
	int k, n = 0;

	for (k = 0; k < VKWS_ROOMS_PER_CONN; k++)
		if (c->in_rooms & (1u << k)) {
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
	if (obs != NULL && obs->user_added != NULL)
		obs->user_added(c);
}

/* A chat connection is going: leave every room, unindex the user. */
void
vkws_user_removed(struct conn *c)
{
	(void)leave_all(c);
	if (c->authed) {
		user_unlink(c);
		if (obs != NULL && obs->user_removed != NULL)
			obs->user_removed(c);
	}
}

/* ---- Chat ----------------------------------------------------------- */

/*
 * Encode c's chat content into r as the next message: stored in history
 * (and the log) and left in out_buf for vkws_chat_send(). Returns the
 * encoded length, or VKWS_ELIMIT / VKWS_ESTORE.
 */
int
vkws_chat_encode(const struct conn *c, struct room *r, const char *text,
    size_t n, const char **frame)
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
	if (vkws_store_chat(r->name, r->name_len, r->life, seq, o.p, o.n) < 0)
		return VKWS_ESTORE;
	r->seq = seq;
	if (r->unsent == 0)
		r->unsent = seq;
	vkws_history_add(r, seq, o.p, o.n);
	*frame = o.p;
	return (int)o.n;
}

int
vkws_chat_send(struct room *r, const char *p, size_t n)
{
	/* Every chat of r encoded before this send goes out in the same
	 * commit (or at once), before any join can run. */
	r->unsent = 0;
	return room_send(r, p, n, NULL, NULL);
}

uint64_t
vkws_room_life(const struct room *r)
{
	return r->life;
}

size_t
vkws_room_name(const struct room *r, char *out)
{
	memcpy(out, r->name, r->name_len);
	return r->name_len;
}

/* ---- For the cluster layer ------------------------------------------ */

int
vkws_room_send(struct room *r, const char *p, size_t n)
{
	return room_send(r, p, n, NULL, NULL);
}

int
vkws_room_send_if(struct room *r, const char *p, size_t n,
    int (*want)(uint32_t node, void *arg), void *arg)
{
	return room_send(r, p, n, want, arg);
}

uint32_t
vkws_member_node(const struct conn *c, const struct room *r)
{
	int k = member_entry(c, r);

	return k < 0 ? UINT32_MAX : (uint32_t)(vkws_slot_of(c) *
	    VKWS_ROOMS_PER_CONN + (size_t)k);
}

/* A chat message another node stored: r's seq moves on and the frame is
 * kept as local history. */
void
vkws_room_chat_seen(struct room *r, uint64_t seq, const char *p, size_t n)
{
	if (seq <= r->seq)
		return;
	r->seq = seq;
	vkws_history_add(r, seq, p, n);
}

/* Call fn for every room c is in. */
void
vkws_conn_rooms(struct conn *c, void (*fn)(struct conn *, struct room *))
{
	int k;

	for (k = 0; k < VKWS_ROOMS_PER_CONN; k++)
		if (c->in_rooms & (1u << k))
			fn(c, &rooms[c->rooms[k]]);
}

void
vkws_rooms_init(struct vkws_config *c)
{
	size_t i;

	cfg = c;
	for (i = 0; i < ROOM_BUCKETS; i++)
		room_head[i] = VKWS_NO_ROOM;
	for (i = 0; i < USER_BUCKETS; i++)
		user_head[i] = VKWS_NO_ROOM;
	if (cfg->default_room[0] != '\0') {
		struct room *r = room_create(cfg->default_room,
		    strlen(cfg->default_room));
		/* Its life comes from the log, or from vkws_restore_done()
		 * when the log has none for it. */
		if (r != NULL) {
			r->persistent = 0;
			r->life = 0;
		}
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
		out->user_id = vkws_uid(c);
		out->user_id_len = c->uid_len;
	}
	out->user_info = c->info_len ? vkws_info(c) : "{}";
	out->user_info_len = c->info_len ? c->info_len : 2;
	out->remote_addr = vkws_conn_addr(c);
	for (k = 0; k < VKWS_ROOMS_PER_CONN; k++)
		if (c->in_rooms & (1u << k)) {
			const struct room *r = &rooms[c->rooms[k]];
			out->rooms[out->nrooms] = r->name;
			out->room_lens[out->nrooms++] = r->name_len;
		}
	out->connected_at = vkws_wall_of(c->t_open);
	out->last_active_at = out->connected_at + (c->t_in - c->t_open);
	out->msgs_in = c->msgs_in;
	out->msgs_out = c->msgs_out;
	out->bytes_in = c->bytes_in;
	out->bytes_out = c->bytes_out;
	out->queued_bytes = c->tx.len;
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
	    r->persistent, r->life, r->created_at) < 0)
		return VKWS_ESTORE;
	if (obs != NULL && obs->room_set != NULL && obs->room_set(r) < 0)
		return VKWS_ESTORE;
	room_info(r, out);
	return 0;
}

void
vkws_room_settings(const struct room *r, uint32_t *max_clients,
    int *persistent)
{
	*max_clients = r->max_clients;
	*persistent = r->persistent;
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
		room_send(r, o.p, o.n, NULL, NULL);
	while ((node = r->head) != NODE_NONE) {
		struct conn *c = node_conn(node);
		member_unlink(c, r, (int)(node % VKWS_ROOMS_PER_CONN));
	}
	if (obs != NULL && obs->room_deleted != NULL)
		obs->room_deleted(r);
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
	struct fan fa;
	size_t s;
	int sent = 0;

	fan_init(&fa, data, dn);
	for (s = 0; s < vkws_slot_hi; s++) {
		struct conn *c = &vkws_conns[s];
		if (c->state == S_WS && c->authed)
			sent += fan_deliver(&fa, c);
	}
	return fan_done(&fa, sent);
}

int
vkws_broadcast_to_room(const char *room, size_t n, const char *data,
    size_t dn)
{
	struct room *r = vkws_room_find(room, n);

	if (r == NULL)
		return VKWS_ENOTFOUND;
	return room_send(r, data, dn, NULL, NULL);
}

int
vkws_broadcast_to_rooms(const char *const *names, const size_t *lens,
    size_t nrooms, const char *data, size_t dn)
{
	/* A pass mark per slot makes a client in several rooms get one
	 * copy without a set: the mark is this call's serial. */
	static uint32_t mark[VKWS_SLOTS];
	static uint32_t serial;
	struct fan fa;
	size_t i;
	int sent = 0, found = 0;

	fan_init(&fa, data, dn);
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
				sent += fan_deliver(&fa, &vkws_conns[s]);
			}
			node = next;
		}
	}
	sent = fan_done(&fa, sent);
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
	struct fan fa;
	int sent = 0, found = 0;

	fan_init(&fa, data, dn);
	while ((c = user_next(uid, un, &it)) != NULL) {
		found = 1;
		sent += fan_deliver(&fa, c);
		if (it == VKWS_NO_ROOM)
			break;
	}
	sent = fan_done(&fa, sent);
	return found ? sent : VKWS_ENOTFOUND;
}

static int
list_conns(vkws_client_fn *fn, void *arg, int active_only)
{
	static struct vkws_client ci;
	int64_t since = vkws_now_ms() - (int64_t)cfg->active_window * 1000;
	size_t s;
	int count = 0;

	for (s = 0; s < vkws_slot_hi; s++) {
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

/* Bytes of the UTF-8 character at p[0..n): 1 to 4, or 0 if p does not
 * start with a whole valid one. */
static size_t
utf8_char(const char *p, size_t n)
{
	uint8_t b = (uint8_t)p[0];
	uint32_t st = WS_UTF8_ACCEPT;
	size_t k = b < 0x80 ? 1 : b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : 2;

	if (k > n || ws_utf8_feed(&st, (const uint8_t *)p, k) != 0 ||
	    !ws_utf8_complete(st))
		return 0;
	return k;
}

/*
 * The reason as a NUL-terminated string for vkws_close(): UTF-8 as given
 * (PROTOCOL.md 7), cut at a character boundary within the 123 bytes a
 * close frame has for it. A control character or a byte that is not
 * UTF-8 becomes '?', so the frame is always valid.
 */
static const char *
reason_str(const char *reason, size_t rn)
{
	static char buf[WS_MAX_CONTROL - 2 + 1];
	size_t i = 0, o = 0, k;

	while (i < rn) {
		k = utf8_char(reason + i, rn - i);
		if (o + (k ? k : 1) > sizeof(buf) - 1)
			break;
		if (k == 0 || (k == 1 && ((uint8_t)reason[i] < 0x20 ||
		    reason[i] == 0x7F))) {
			buf[o++] = '?';
			i++;
			continue;
		}
		memcpy(buf + o, reason + i, k);
		o += k;
		i += k;
	}
	buf[o] = '\0';
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
	for (s = 0; s < vkws_slot_hi; s++) {
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
	/* The text takes a pool chunk: none free is a limit (-5). */
	if (vkws_info_set(c, json, jn) < 0)
		return VKWS_ELIMIT;
	return 0;
}

int
vkws_get_client_data(const char *cid, size_t cn, const char **json)
{
	const struct conn *c = by_id(cid, cn);

	if (c == NULL)
		return VKWS_ENOTFOUND;
	*json = c->info_len ? vkws_info(c) : "{}";
	return c->info_len ? (int)c->info_len : 2;
}

/* ---- Replay of the log (store.c) ------------------------------------ */

/*
 * Whether f[0..fn) is what vkws_chat_encode() writes for room and seq: a
 * JSON object in valid UTF-8 (json_parse checks it) with type "chat",
 * the room, the seq, a from object, a message string and a timestamp.
 * What fails is never served: it did not come from a writer of ours.
 */
static int
chat_valid(const char *room, size_t n, uint64_t seq, const char *f,
    size_t fn)
{
	struct json_doc d;
	int64_t v;
	int t;

	if (json_parse(&d, rtok, REPLAY_TOKENS, f, fn) < 0 ||
	    !json_is_object(&d, 0))
		return 0;
	if ((t = json_get(&d, 0, "type")) < 0 || !json_streq(&d, t, "chat"))
		return 0;
	if ((t = json_get(&d, 0, "room")) < 0 || !json_is_string(&d, t) ||
	    !json_streqn(&d, t, room, n))
		return 0;
	if ((t = json_get(&d, 0, "seq")) < 0 || json_int(&d, t, &v) < 0 ||
	    v <= 0 || (uint64_t)v != seq)
		return 0;
	if ((t = json_get(&d, 0, "from")) < 0 || !json_is_object(&d, t))
		return 0;
	if ((t = json_get(&d, 0, "message")) < 0 || !json_is_string(&d, t))
		return 0;
	return (t = json_get(&d, 0, "timestamp")) >= 0 &&
	    json_is_number(&d, t);
}

/* A room starts a new life: no history, seq from 0, created now (a
 * ROOM2 record of the life may say when). */
static void
room_restart(struct room *r, uint64_t life)
{
	r->created_at = vkws_wall_ms();
	r->h_off = 0;
	r->h_len = 0;
	r->h_count = 0;
	r->seq = 0;
	r->dropped = 0;
	r->life = life;
}

/*
 * The room a replayed record of the given life is for, created if need
 * be. A larger life than the room's starts it over; a smaller one is a
 * life that already ended (*rc 0, NULL: skip the record). NULL with *rc
 * -1: the room table is full.
 */
static struct room *
restore_get(const char *room, size_t n, uint64_t life, int *rc)
{
	struct room *r = vkws_room_find(room, n);

	*rc = 0;
	if (life > life_max)
		life_max = life;
	if (r == NULL) {
		if ((r = room_create(room, n)) == NULL)
			*rc = -1;
		else
			r->life = life;
		return r;
	}
	if (life < r->life)
		return NULL;
	if (life > r->life)
		room_restart(r, life);
	return r;
}

int
vkws_restore_room(const char *room, size_t n, uint32_t max_clients,
    int persistent, uint64_t seq, uint64_t life, int64_t created_at)
{
	int rc;
	struct room *r = restore_get(room, n, life, &rc);

	if (r == NULL)
		return rc;
	r->max_clients = max_clients <= cfg->max_conns ? max_clients : 0;
	r->persistent = persistent ? 1 : 0;
	if (created_at > 0)
		r->created_at = created_at;
	if (seq > r->seq) {
		/* Messages up to seq were stored but none of them after
		 * r->seq came back: history is not complete. */
		r->dropped = seq;
		r->seq = seq;
	}
	return 0;
}

int
vkws_restore_chat(const char *room, size_t n, uint64_t life, uint64_t seq,
    const char *frame, size_t fn)
{
	struct room *r;
	int rc;

	if (!chat_valid(room, n, seq, frame, fn))
		return VKWS_RESTORE_INVALID;
	if ((r = restore_get(room, n, life, &rc)) == NULL)
		return rc;
	if (seq <= r->seq)
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

	if (r == NULL)
		return 0;
	/* No members during replay. The default room always exists: it
	 * starts its next life here (vkws_restore_done() numbers it). */
	if (vkws_room_is_default(r))
		room_restart(r, 0);
	else
		room_remove_quiet(r);
	return 0;
}

/* After replay: rooms that are neither persistent nor the default one
 * lived only while they had members, and have none now: their lives
 * end here. A room of the same name made later has a larger life, and
 * the caller rewrites the log so that the ended life is not replayed
 * again either (as a DELETED record would). */
int
vkws_restore_done(void)
{
	size_t i;
	int fresh = 0;

	if (life_next <= life_max)
		life_next = life_max + 1;
	for (i = 0; i < VKWS_MAX_ROOMS; i++) {
		struct room *r = &rooms[i];
		if (!r->used)
			continue;
		if (!r->persistent && !vkws_room_is_default(r)) {
			room_remove_quiet(r);
			fresh++;
		} else if (r->life == 0) {
			r->life = life_next++;
			fresh++;
		}
	}
	return fresh;
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
			    r->seq, r->life, r->created_at, arg);
	}
}

/* Every kept history entry of the room, oldest first. */
void
vkws_history_each(const char *room, size_t n, vkws_store_chat_fn *fn,
    void *arg)
{
	const struct room *r = vkws_room_find(room, n);
	size_t off, i;

	if (r == NULL)
		return;
	off = r->h_off;
	for (i = 0; i < r->h_count; i++) {
		uint32_t len;
		uint64_t seq;
		ring_read(r, off, &len, 4);
		ring_read(r, off + 4, &seq, 8);
		ring_read(r, off + HENT, out_buf, len);
		fn(r->name, r->name_len, seq, out_buf, len, arg);
		off = (off + HENT + len) % r->h_cap;
	}
}
