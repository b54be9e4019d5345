/*
 * cluster.c: cluster mode on Redis (PROTOCOL.md 9). Several
 * nodes share one Redis: it holds each room's seq, history and members,
 * the users of every node and a heartbeat per node, and carries every
 * node's events on one pub/sub channel, NAME:bus. The link is two
 * non-blocking sockets in the core's loop (through hooks->poll_fds and
 * poll_ready): one for commands, pipelined, with a static FIFO of the
 * replies awaited and what to do with each; one subscribed to the bus.
 * What must be atomic (a chat's seq, history append and publish; a
 * join's maxClients check; a dead node's sweep) is a Lua script run with
 * EVALSHA. Requests and replies go through static buffers: when the
 * output is full, or the link is down, an operation answers -7 "cluster
 * unavailable" and nothing is acked that Redis did not take. The
 * scripts are in cluster_lua.c; the server API across nodes (calls
 * gathered from every node, held HTTP replies) is cluster_api.c, which
 * asks this file for its requests (cluster_int.h). This file never
 * blocks (but for a bounded flush at a clean stop), never allocates,
 * and touches connections only through the C API of room.c and the
 * core's queue functions.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>

#include <bearssl.h>

#include "vkws.h"
#include "core.h"
#include "json.h"
#include "resp.h"
#include "cluster.h"
#include "cluster_int.h"

/* The scripts (cluster_lua.c) by their SHA-1, hex, set at init. */
static char sha[SC_N][41];

/* ---- State ---------------------------------------------------------- */

static struct vkws_config *cfg;
static int on;			/* --redis given */
static int up;			/* both links serve */
static int ever_up;		/* for reconnects_total */
static int new_life = 1;	/* the first registration of this process */
static size_t name_len, node_len;
static char bus[VKWS_CLUSTER_NAME_MAX + 8];
static size_t bus_len;
static char users_key[VKWS_CLUSTER_NAME_MAX + 8];
static char nm_key[VKWS_CLUSTER_NAME_MAX + VKWS_NODE_ID_MAX + 8];
static char nu_key[VKWS_CLUSTER_NAME_MAX + VKWS_NODE_ID_MAX + 8];
static char no_key[VKWS_CLUSTER_NAME_MAX + VKWS_NODE_ID_MAX + 8];
/* The presence version (lua_join) of each membership of this node, by
 * its index (vkws_member_node()); 0: not known, such a member gets
 * every user_join and user_leave. */
static uint32_t mpv[VKWS_SLOTS * VKWS_ROOMS_PER_CONN];
static int drop_old;	/* after the registration: DROP what is left */
/* Memberships whose held-back user_join room.c told its members while
 * the link could not take it: published at the next registration
 * (reg_member()); until then the other nodes treat a leave of it as
 * one of a join never told. A bit per membership index. */
static uint8_t owed[(VKWS_SLOTS * VKWS_ROOMS_PER_CONN + 7) / 8];
/*
 * Join order (PROTOCOL.md 9): a join's reply comes on the command link
 * and the bus on the subscription link, and nothing orders one against
 * the other. The join script ends by publishing a marker "M NODE TAG\n":
 * the bus messages before it ran before the join (they are in the
 * reply's user_list and history), those after it ran after. A marker
 * read before its reply stops the subscription link there until the
 * reply is in (sub_held); a reply read before its marker leaves the new
 * member deaf to the bus until the marker (a bit per membership, and a
 * queue of the joins whose marker is awaited, in the order Redis ran
 * them). A full queue leaves a join without the bit: a chat that ran
 * before it may then reach the new member twice (same seq).
 */
static uint8_t deaf[(VKWS_SLOTS * VKWS_ROOMS_PER_CONN + 7) / 8];
struct deaf_ent {
	uint32_t tag, node;	/* the join's request, its membership */
};
static struct deaf_ent deaf_q[VKWS_CLUSTER_DEAF];
static size_t deaf_start, deaf_used;
static int sub_held;		/* the subscription link waits at a marker */
static uint32_t held_tag;	/* ... for the reply of this request */
static int sub_resume;		/* that reply came: read on */
static int64_t retry_at, beat_at;
static int64_t backoff = 250;	/* ms before the next connect, up to 1 s */
static size_t resync;		/* next slot to register again */
static int quiet;		/* the observers stay silent (the scripts
				 * did their part already) */
static int loaded;		/* scripts Redis took on this link */
static int broken;		/* a reply says the link must start over */
static int auth_told;		/* an AUTH refusal was logged (until up) */

/* One socket to Redis with its static buffers (sized apart: the
 * subscription link sends one short command). */
enum { L_DOWN = 0, L_CONNECTING, L_UP };
struct rlink {
	int fd;
	uint8_t state;		/* L_* */
	uint8_t subscribed;	/* sub: the bus confirmed */
	size_t olen, ilen;
	uint8_t *out, *in;
	size_t out_cap, in_cap;
};
static uint8_t cmd_out[VKWS_REDIS_OUT], cmd_in[VKWS_REDIS_IN];
static uint8_t sub_out[VKWS_REDIS_SUB_OUT], sub_in[VKWS_REDIS_IN];
/* fd is set to -1 at init. */
static struct rlink cmd = { .out = cmd_out, .in = cmd_in,
    .out_cap = sizeof(cmd_out), .in_cap = sizeof(cmd_in) };
static struct rlink sub = { .out = sub_out, .in = sub_in,
    .out_cap = sizeof(sub_out), .in_cap = sizeof(sub_in) };
/* Room a request of n payload bytes asks of the output (may_send adds
 * 256 more): its envelope, keys and bus header. */
_Static_assert(VKWS_MAX_OUT + VKWS_CL_REQ_ENV + 256 <= VKWS_REDIS_OUT,
    "a largest chat or forwarded API body is not refused for room");
_Static_assert(VKWS_REDIS_SUB_OUT >= 64 + VKWS_CLUSTER_NAME_MAX + 8 +
    32 + VKWS_REDIS_USER_MAX + VKWS_REDIS_PASS_MAX,
    "AUTH, SUBSCRIBE and the bus name fit");

/* What to do with a reply on the command link. */
enum { P_NONE = 0, P_CHAT, P_JOIN, P_PRIV, P_BEAT, P_HIST, P_LOAD, P_LEAVE,
    P_INFO, P_LIST, P_FORGET, P_AUTH };
#define PEND_ID_MAX (6 * VKWS_REQ_ID_MAX + 2)
struct pend {
	uint8_t kind;		/* P_* */
	uint8_t acked;		/* the chat's own bus copy acked it */
	uint8_t api;		/* a join by the server API: A_* */
	uint8_t room_len;
	uint8_t pub;		/* a join's script published its user_join */
	uint16_t slot;
	uint16_t id_len;
	uint32_t tag;		/* tag % VKWS_REDIS_PENDING is the index */
	uint32_t off;		/* pend_text: the id's JSON source, the room */
	uint32_t span;		/* pend_text bytes freed with this entry */
	uint64_t cid;		/* the connection's id, for reuse */
	uint32_t hid;		/* A_HELD: the held call's id */
};
/* Who a join answers: the chat client (its ack), an /api call held
 * here, or one that came from another node ("ORIGIN ID" in the id). */
enum { A_CHAT = 0, A_HELD, A_REMOTE };
static struct pend pend[VKWS_REDIS_PENDING];
static uint32_t p_first, p_next;	/* tags: oldest awaited, next */
/* The entries' texts, in their order: a FIFO of bytes that frees as the
 * replies come, so a typical short id costs its length, not the
 * longest id's. */
static char pend_text[VKWS_REDIS_PENDING_BYTES];
/* Leaves waiting for room in the output (see leave_drain()). */
static uint8_t leave_q[VKWS_LEAVE_BACKLOG];
static size_t leave_start, leave_used;
static int rereg;	/* register again: leaves were lost */
static size_t text_start, text_used;
_Static_assert(VKWS_REDIS_PENDING_BYTES >= PEND_ID_MAX + VKWS_ROOM_NAME_MAX,
    "one entry's text fits");

static struct resp_val vals[VKWS_REDIS_VALUES];
static struct resp_enc enc;
/* Frames built here (user_join, user_list, history, chat halves). */
static char frame[VKWS_MAX_OUT];
static char frame2[VKWS_MAX_OUT];
static char user_buf[VKWS_USERINFO_MAX + 256];

size_t
vkws_cluster_static_size(void)
{
	return sizeof(cmd) + sizeof(sub) + sizeof(cmd_out) +
	    sizeof(cmd_in) + sizeof(sub_out) + sizeof(sub_in) + sizeof(pend) +
	    sizeof(vals) + sizeof(leave_q) + sizeof(mpv) + sizeof(owed) +
	    sizeof(deaf) + sizeof(deaf_q) +
	    sizeof(pend_text) + vkws_cl_api_static_size() +
	    sizeof(frame) + sizeof(frame2) + sizeof(user_buf);
}

int
vkws_cluster_on(void)
{
	return on;
}

int
vkws_cluster_up(void)
{
	return up;
}

const char *
vkws_cluster_node(void)
{
	return cfg->node;
}

/* ---- Requests ------------------------------------------------------- */

static void
hex_sha1(const char *s, char out[41])
{
	static const char hex[] = "0123456789abcdef";
	br_sha1_context h;
	uint8_t d[20];
	size_t i;

	br_sha1_init(&h);
	br_sha1_update(&h, s, strlen(s));
	br_sha1_out(&h, d);
	for (i = 0; i < 20; i++) {
		out[2 * i] = hex[d[i] >> 4];
		out[2 * i + 1] = hex[d[i] & 15];
	}
	out[40] = '\0';
}

/* Start a command of argc arguments in the command link's output. */
static void
req_begin(unsigned argc)
{
	resp_enc_begin(&enc, cmd.out + cmd.olen, cmd.out_cap - cmd.olen,
	    argc);
}

/* EVALSHA script nkeys: then the keys and nargs arguments. */
static void
eval_begin(int script, unsigned nkeys, unsigned nargs)
{
	req_begin(3 + nkeys + nargs);
	resp_enc_str(&enc, "EVALSHA");
	resp_enc_arg(&enc, sha[script], 40);
	resp_enc_u64(&enc, nkeys);
}

/* Commit the request begun: it counts only if it fit whole and a
 * pending entry is free. Returns the entry, or NULL (nothing sent). */
static struct pend *
req_commit(int kind)
{
	long n = resp_enc_end(&enc);
	struct pend *p;

	if (n < 0 || p_next - p_first >= VKWS_REDIS_PENDING)
		return NULL;
	cmd.olen += (size_t)n;
	p = &pend[p_next % VKWS_REDIS_PENDING];
	memset(p, 0, sizeof(*p));
	p->kind = (uint8_t)kind;
	p->tag = p_next++;
	return p;
}

/* Whether an operation may go to Redis now: the link serves and its
 * output has room for a request of about need bytes. */
static int
may_send(size_t need)
{
	return up && cmd.out_cap - cmd.olen >= need + 256 &&
	    p_next - p_first < VKWS_REDIS_PENDING;
}

/* "{NAME:ROOM}:suffix" into out; its length. */
static size_t
room_key(char *out, const char *room, size_t rn, const char *suffix)
{
	size_t k = 0, sn = strlen(suffix);

	out[k++] = '{';
	memcpy(out + k, cfg->cluster, name_len);
	k += name_len;
	out[k++] = ':';
	memcpy(out + k, room, rn);
	k += rn;
	out[k++] = '}';
	memcpy(out + k, suffix, sn);
	return k + sn;
}

#define KEY_MAX (VKWS_CLUSTER_NAME_MAX + VKWS_ROOM_NAME_MAX + 16)
static char k_m[KEY_MAX], k_h[KEY_MAX], k_seq[KEY_MAX], k_info[KEY_MAX];
static size_t k_m_n, k_h_n, k_seq_n, k_info_n;

static void
room_keys(const char *room, size_t rn)
{
	k_m_n = room_key(k_m, room, rn, ":m");
	k_h_n = room_key(k_h, room, rn, ":h");
	k_seq_n = room_key(k_seq, room, rn, ":seq");
	k_info_n = room_key(k_info, room, rn, ":info");
}

static void
args_room_keys(void)
{
	resp_enc_arg(&enc, k_m, k_m_n);
	resp_enc_arg(&enc, k_h, k_h_n);
	resp_enc_arg(&enc, k_seq, k_seq_n);
	resp_enc_arg(&enc, k_info, k_info_n);
}

/* "ROOM\nCLIENTID": an entry of the node's membership set. */
static size_t
member_entry(char *out, const struct conn *c, const char *room, size_t rn)
{
	memcpy(out, room, rn);
	out[rn] = '\n';
	return rn + 1 + vkws_client_id(c, out + rn + 1);
}

/* The user object of c, in user_buf. */
static size_t
user_json(const struct conn *c)
{
	struct json_out o;

	json_out_init(&o, user_buf, sizeof(user_buf));
	vkws_out_user(&o, c);
	return json_out_ok(&o) ? o.n : 0;
}

/* A bus message "T F0 F1 ...\nBODY" (t[0..tn) the type, or nothing
 * where a script puts the head; the fields f[i][0..fl[i])) into frame2;
 * its length, 0 if it does not fit. */
static size_t
bus_put(const char *t, size_t tn, const char *const f[], const size_t fl[],
    size_t nf, const char *body, size_t n)
{
	size_t i, k = tn;

	for (i = 0; i < nf; i++)
		k += 1 + fl[i];
	if (k + 1 + n > sizeof(frame2))
		return 0;
	memcpy(frame2, t, tn);
	for (i = 0, k = tn; i < nf; i++) {
		frame2[k++] = ' ';
		memcpy(frame2 + k, f[i], fl[i]);
		k += fl[i];
	}
	frame2[k++] = '\n';
	memcpy(frame2 + k, body, n);
	return k + n;
}

/* {"type":TYPE,"room":R,"user":USER,"timestamp":T} into frame. */
static size_t
member_frame(const char *type, const struct conn *c, const char *room,
    size_t rn)
{
	struct json_out o;

	json_out_init(&o, frame, sizeof(frame));
	json_out_lit(&o, "{\"type\":\"");
	json_out_lit(&o, type);
	json_out_lit(&o, "\",\"room\":");
	json_out_str(&o, room, rn);
	json_out_lit(&o, ",\"user\":");
	vkws_out_user(&o, c);
	json_out_lit(&o, ",\"timestamp\":");
	json_out_int(&o, vkws_wall_ms());
	json_out_lit(&o, "}");
	return json_out_ok(&o) ? o.n : 0;
}

/* The bus message of c's user_join in room, split around its presence
 * version (the script puts it in): "J NODE " in jhead, " ROOM\n" and
 * the frame in frame2. Its length in frame2, 0 if it does not fit. */
static char jhead[VKWS_NODE_ID_MAX + 4];
static size_t jhead_len;

static size_t
join_msg(const struct conn *c, const char *room, size_t rn)
{
	size_t fn = member_frame("user_join", c, room, rn);

	if (fn == 0)
		return 0;
	jhead_len = (size_t)snprintf(jhead, sizeof(jhead), "J %s ", cfg->node);
	return bus_put("", 0, &room, &rn, 1, frame, fn);
}

/* PROTOCOL.md 8 (as room.c's young()): a join of c now is held back. */
static int
young(const struct conn *c)
{
	return vkws_now_ms() - c->t_open < VKWS_CHURN_MS;
}

/* The quiet bit of c's membership node (room.c holds its join back). */
static int
quiet_bit(const struct conn *c, uint32_t node)
{
	unsigned q = c->quiet;

	return node != UINT32_MAX &&
	    (q >> (node % VKWS_ROOMS_PER_CONN) & 1u) != 0;
}

/* A membership's bit in set (owed, deaf). */
static int
bit_get(const uint8_t *set, uint32_t node)
{
	return node != UINT32_MAX && (set[node / 8] >> (node % 8) & 1) != 0;
}

static void
bit_put(uint8_t *set, uint32_t node, int v)
{
	if (node == UINT32_MAX)
		return;
	if (v)
		set[node / 8] |= (uint8_t)(1u << (node % 8));
	else
		set[node / 8] &= (uint8_t)~(1u << (node % 8));
}

/* Whether the reply to request tag is still awaited. */
static int
awaited(uint32_t tag)
{
	return tag - p_first < p_next - p_first;
}

/* The membership node joined by request tag, its reply read before
 * its marker: deaf to the bus until the marker. */
static void
deaf_add(uint32_t tag, uint32_t node)
{
	struct deaf_ent *e;

	if (node == UINT32_MAX || deaf_used == VKWS_CLUSTER_DEAF)
		return;
	e = &deaf_q[(deaf_start + deaf_used++) % VKWS_CLUSTER_DEAF];
	e->tag = tag;
	e->node = node;
	bit_put(deaf, node, 1);
}

/* The marker of request tag: a join read before it stops the
 * subscription link until its reply; the members whose joins ran up to
 * it hear the bus (unless a later join of the same membership node
 * still waits for its own). */
static void
marker_seen(uint32_t tag)
{
	if (awaited(tag)) {
		sub_held = 1;
		held_tag = tag;
		return;
	}
	while (deaf_used > 0) {
		struct deaf_ent e = deaf_q[deaf_start];
		size_t i;
		int later = 0;

		if ((int32_t)(e.tag - tag) > 0)
			break;
		deaf_start = (deaf_start + 1) % VKWS_CLUSTER_DEAF;
		deaf_used--;
		for (i = 0; i < deaf_used; i++)
			if (deaf_q[(deaf_start + i) %
			    VKWS_CLUSTER_DEAF].node == e.node)
				later = 1;
		if (!later)
			bit_put(deaf, e.node, 0);
	}
}

/* Whether the other nodes have not been told of c's membership node
 * yet: its user_join is held back (PROTOCOL.md 8), or owed. */
static int
held_back(const struct conn *c, uint32_t node)
{
	return quiet_bit(c, node) || bit_get(owed, node);
}

static void obs_announced(struct conn *c, struct room *r, uint32_t node);

/* ---- Registration: what this node holds, told to Redis ---------------- */

static void
reg_user(const struct conn *c, int delta)
{
	char d[4];
	size_t dn = delta > 0 ? 1 : 2;

	memcpy(d, delta > 0 ? "1" : "-1", dn);
	req_begin(4);
	resp_enc_str(&enc, "HINCRBY");
	resp_enc_arg(&enc, users_key, strlen(users_key));
	resp_enc_arg(&enc, vkws_uid(c), c->uid_len);
	resp_enc_arg(&enc, d, dn);
	(void)req_commit(P_NONE);
	req_begin(4);
	resp_enc_str(&enc, "HINCRBY");
	resp_enc_arg(&enc, nu_key, strlen(nu_key));
	resp_enc_arg(&enc, vkws_uid(c), c->uid_len);
	resp_enc_arg(&enc, d, dn);
	(void)req_commit(P_NONE);
}

/* A membership registered again: Redis takes it out of the node's old
 * set; one Redis did not have is told to the others (unless its
 * user_join is still held back, PROTOCOL.md 8). */
static void
reg_member(struct conn *c, struct room *r)
{
	static char entry[VKWS_ROOM_NAME_MAX + VKWS_CLIENT_ID_MAX + 2];
	char cid[VKWS_CLIENT_ID_MAX];
	size_t rn, un = user_json(c), en, jn;
	char room[VKWS_ROOM_NAME_MAX];
	uint32_t node = vkws_member_node(c, r);

	rn = vkws_room_name(r, room);
	/* mpv[node] stays: after a reconnect check_up() forgot every
	 * version; after lost leaves Redis kept them. */
	if (un == 0 || (jn = join_msg(c, room, rn)) == 0)
		return;
	room_keys(room, rn);
	en = member_entry(entry, c, room, rn);
	eval_begin(SC_REJOIN, 2, 11);
	resp_enc_arg(&enc, k_m, k_m_n);
	resp_enc_arg(&enc, k_info, k_info_n);
	resp_enc_arg(&enc, cid, vkws_client_id(c, cid));
	resp_enc_arg(&enc, user_buf, un);
	resp_enc_arg(&enc, nm_key, strlen(nm_key));
	resp_enc_arg(&enc, entry, en);
	resp_enc_arg(&enc, no_key, strlen(no_key));
	resp_enc_arg(&enc, cfg->cluster, name_len);
	resp_enc_arg(&enc, room, rn);
	resp_enc_arg(&enc, bus, bus_len);
	resp_enc_arg(&enc, jhead, jhead_len);
	resp_enc_arg(&enc, frame2, jn);
	resp_enc_str(&enc, held_back(c, node) ? "0" : "1");
	(void)req_commit(P_NONE);
	if (bit_get(owed, node) && !quiet_bit(c, node))
		obs_announced(c, r, node);
}

static void script_common_args(void);

/* Register one more slot's user and memberships while the output has
 * room; called each pass after the link came up. Once every slot is
 * registered, what Redis still holds of this node's old memberships
 * leaves (DROP). */
static void
resync_step(void)
{
	while (up && resync < vkws_slot_hi && may_send(VKWS_MAX_OUT / 4)) {
		struct conn *c = &vkws_conns[resync++];

		if (c->state != S_WS || c->kind != K_CHAT || !c->authed)
			continue;
		reg_user(c, 1);
		vkws_conn_rooms(c, reg_member);
	}
	if (up && drop_old && resync >= vkws_slot_hi && may_send(1024)) {
		drop_old = 0;
		eval_begin(SC_DROP, 0, 3);
		resp_enc_arg(&enc, cfg->cluster, name_len);
		resp_enc_arg(&enc, cfg->node, node_len);
		resp_enc_str(&enc, cfg->default_room);
		(void)req_commit(P_NONE);
	}
}

static void
script_common_args(void)
{
	char ttl[24];
	int n = snprintf(ttl, sizeof(ttl), "%u", cfg->node_ttl * 1000u);

	resp_enc_arg(&enc, cfg->cluster, name_len);
	resp_enc_arg(&enc, cfg->node, node_len);
	resp_enc_arg(&enc, ttl, (size_t)n);
	resp_enc_str(&enc, cfg->default_room);
}

static void
beat(void)
{
	eval_begin(SC_BEAT, 0, 4);
	script_common_args();
	(void)req_commit(P_BEAT);
}

/* ---- Observers of room.c ---------------------------------------------- */

/* The join script for c in room (keys set by room_keys()): max is
 * the maxClients of a room without one, since the join's since. */
static int
join_args(struct conn *c, const char *room, size_t rn, uint64_t max,
    uint64_t since, int pub, int lists)
{
	static char entry[VKWS_ROOM_NAME_MAX + VKWS_CLIENT_ID_MAX + 2];
	char cid[VKWS_CLIENT_ID_MAX], mark[VKWS_NODE_ID_MAX + 16];
	size_t un, jn, en;
	int mn = 0;

	if ((un = user_json(c)) == 0 || (jn = join_msg(c, room, rn)) == 0)
		return -1;
	/* A join whose reply is read has a marker: its tag is the next
	 * one (the caller commits it at once). */
	if (lists)
		mn = snprintf(mark, sizeof(mark), "M %s %u\n", cfg->node,
		    (unsigned)p_next);
	room_keys(room, rn);
	en = member_entry(entry, c, room, rn);
	eval_begin(SC_JOIN, 4, 17);
	args_room_keys();
	resp_enc_arg(&enc, cid, vkws_client_id(c, cid));
	resp_enc_arg(&enc, user_buf, un);
	resp_enc_u64(&enc, max);
	resp_enc_u64(&enc, since);
	resp_enc_arg(&enc, nm_key, strlen(nm_key));
	resp_enc_arg(&enc, entry, en);
	resp_enc_arg(&enc, bus, bus_len);
	resp_enc_arg(&enc, jhead, jhead_len);
	resp_enc_arg(&enc, frame2, jn);
	/* Without lists (nobody reads the reply): no members, no history. */
	resp_enc_u64(&enc, lists ? VKWS_CLUSTER_LIST_MAX : 0);
	resp_enc_u64(&enc, lists ? VKWS_HISTORY_BYTES : 0);
	resp_enc_u64(&enc, lists ? VKWS_CLUSTER_LIST_BYTES : 0);
	resp_enc_arg(&enc, cfg->cluster, name_len);
	resp_enc_arg(&enc, room, rn);
	resp_enc_str(&enc, pub ? "1" : "0");
	resp_enc_arg(&enc, no_key, strlen(no_key));
	resp_enc_arg(&enc, mark, (size_t)mn);
	return 0;
}

static void
obs_joined(struct conn *c, struct room *r)
{
	size_t rn;
	char room[VKWS_ROOM_NAME_MAX];
	uint32_t node = vkws_member_node(c, r);

	if (node != UINT32_MAX)
		mpv[node] = 0;	/* join_done() sets it from Redis's reply */
	bit_put(owed, node, 0);
	bit_put(deaf, node, 0);	/* join_done() sets it if need be */
	rn = vkws_room_name(r, room);
	if (quiet || !c->authed)
		return;
	if (!may_send(VKWS_MAX_OUT / 4)) {
		rereg = up;	/* registered again when the output drains */
		return;
	}
	/* A join by the API or at auth: tell the others, no check. */
	if (join_args(c, room, rn, 1u << 30, 0, !held_back(c, node), 0) == 0)
		(void)req_commit(P_NONE);
}

/* A held user_join of c is told (PROTOCOL.md 8): to the other nodes'
 * members that joined before c did. */
static void
obs_announced(struct conn *c, struct room *r, uint32_t node)
{
	char room[VKWS_ROOM_NAME_MAX], head[VKWS_NODE_ID_MAX + 16];
	size_t rn = vkws_room_name(r, room), jn, hn;

	/* Owed until it went out; the link full or down: the next
	 * registration sends it (rereg, or the link coming back). */
	bit_put(owed, node, 1);
	if (!up || !may_send(VKWS_MAX_OUT / 4) ||
	    (jn = join_msg(c, room, rn)) == 0) {
		rereg = up;
		return;
	}
	hn = (size_t)snprintf(head, sizeof(head), "J %s %u", cfg->node,
	    (unsigned)mpv[node]);
	req_begin(3);
	resp_enc_str(&enc, "PUBLISH");
	resp_enc_arg(&enc, bus, bus_len);
	resp_enc_arg2(&enc, head, hn, frame2, jn);
	if (req_commit(P_NONE) == NULL) {
		rereg = up;
		return;
	}
	bit_put(owed, node, 0);
	vkws_count.cluster_published++;
}

/*
 * Leaves wait here when the link's output is busy (a node closing many
 * connections in one pass): records [room length][room][clientId
 * length][clientId][default][held][join version, 4 bytes], sent as the
 * output drains. If even this fills, the node registers itself again
 * (rereg): its memberships still in Redis that it no longer holds then
 * leave with user_leave (lua_reg, lua_drop), so none is lost.
 */

/* Encode the leave script's request (committed by the caller); pvj the
 * leaver's join version, hb whether its user_join was held back. */
static void
leave_begin(const char *room, size_t rn, const char *cid, size_t cn,
    int def, uint32_t pvj, int hb)
{
	static char entry[VKWS_ROOM_NAME_MAX + VKWS_CLIENT_ID_MAX + 2];
	char jv[24];
	int jn = snprintf(jv, sizeof(jv), "%u %d", (unsigned)pvj, hb ? 1 : 0);

	room_keys(room, rn);
	memcpy(entry, room, rn);
	entry[rn] = '\n';
	memcpy(entry + rn + 1, cid, cn);
	eval_begin(SC_LEAVE, 4, 10);
	args_room_keys();
	resp_enc_arg(&enc, cid, cn);
	resp_enc_arg(&enc, nm_key, strlen(nm_key));
	resp_enc_arg(&enc, entry, rn + 1 + cn);
	resp_enc_arg(&enc, bus, bus_len);
	resp_enc_arg(&enc, cfg->node, node_len);
	resp_enc_arg(&enc, room, rn);
	resp_enc_str(&enc, def ? "1" : "0");
	resp_enc_arg(&enc, jv, (size_t)jn);
	resp_enc_arg(&enc, cfg->cluster, name_len);
	resp_enc_arg(&enc, no_key, strlen(no_key));
}

static void
leave_q_byte(uint8_t b)
{
	leave_q[(leave_start + leave_used++) % sizeof(leave_q)] = b;
}

static uint8_t
leave_q_take(void)
{
	uint8_t b = leave_q[leave_start];

	leave_start = (leave_start + 1) % sizeof(leave_q);
	leave_used--;
	return b;
}

/* Send what waits while the output has room. */
static void
leave_drain(void)
{
	char room[VKWS_ROOM_NAME_MAX], cid[VKWS_CLIENT_ID_MAX];

	while (up && leave_used > 0 && may_send(1024)) {
		size_t rn = leave_q_take(), cn, k;
		uint32_t pvj = 0;
		int def, hb;

		for (k = 0; k < rn; k++)
			room[k] = (char)leave_q_take();
		cn = leave_q_take();
		for (k = 0; k < cn; k++)
			cid[k] = (char)leave_q_take();
		def = leave_q_take();
		hb = leave_q_take();
		for (k = 0; k < 4; k++)
			pvj = pvj << 8 | leave_q_take();
		leave_begin(room, rn, cid, cn, def, pvj, hb);
		(void)req_commit(P_NONE);
	}
}

static void
obs_left(struct conn *c, struct room *r, uint32_t node, int hb)
{
	char cid[VKWS_CLIENT_ID_MAX], room[VKWS_ROOM_NAME_MAX];
	size_t rn = vkws_room_name(r, room), cn, k;
	int def = vkws_room_is_default(r);
	uint32_t pvj = node != UINT32_MAX ? mpv[node] : 0;

	/* Never told to the other nodes: as a held-back join's leave. */
	hb = hb || bit_get(owed, node);
	bit_put(owed, node, 0);
	bit_put(deaf, node, 0);

	/* Down: the next registration drops what Redis still holds. */
	if (quiet || !c->authed || !up)
		return;
	cn = vkws_client_id(c, cid);
	if (leave_used == 0 && may_send(1024)) {
		leave_begin(room, rn, cid, cn, def, pvj, hb);
		(void)req_commit(P_NONE);
		return;
	}
	if (sizeof(leave_q) - leave_used < rn + cn + 8) {
		rereg = 1;
		return;
	}
	leave_q_byte((uint8_t)rn);
	for (k = 0; k < rn; k++)
		leave_q_byte((uint8_t)room[k]);
	leave_q_byte((uint8_t)cn);
	for (k = 0; k < cn; k++)
		leave_q_byte((uint8_t)cid[k]);
	leave_q_byte((uint8_t)def);
	leave_q_byte((uint8_t)(hb ? 1 : 0));
	for (k = 0; k < 4; k++)
		leave_q_byte((uint8_t)(pvj >> (24 - 8 * k)));
}

/* A user counted or uncounted; if the output is full the node
 * registers itself again later (rereg), so no count goes astray. */
static void
obs_user_added(struct conn *c)
{
	if (may_send(1024))
		reg_user(c, 1);
	else if (up)
		rereg = 1;
}

static void
obs_user_removed(struct conn *c)
{
	if (may_send(1024))
		reg_user(c, -1);
	else if (up)
		rereg = 1;
}

/* "NAME:rooms" into out (the rooms of the cluster); its length. */
static size_t
rooms_key(char *out)
{
	memcpy(out, cfg->cluster, name_len);
	memcpy(out + name_len, ":rooms", 6);
	return name_len + 6;
}

/* Which settings the createRoom call being run gave (api.c): only
 * those are written, as this node's copy of a setting another node
 * made may be old (PROTOCOL.md 7: a setting not given stays). */
static int given_max = 1, given_persistent = 1;

void
vkws_cluster_create_fields(int max, int persistent)
{
	given_max = max;
	given_persistent = persistent;
}

/* createRoom: maxClients and persistent for every node; the room is
 * one of the cluster's (createdAt: the first node's, kept). */
static int
obs_room_set(struct room *r)
{
	size_t rn;
	char room[VKWS_ROOM_NAME_MAX];
	uint32_t max;
	int persistent;

	rn = vkws_room_name(r, room);
	if (!may_send(1024))
		return -1;
	vkws_room_settings(r, &max, &persistent);
	room_keys(room, rn);
	req_begin(2 + (given_max ? 2u : 0u) + (given_persistent ? 2u : 0u) +
	    2);
	resp_enc_str(&enc, "HSET");
	resp_enc_arg(&enc, k_info, k_info_n);
	if (given_max) {
		resp_enc_str(&enc, "max");
		resp_enc_u64(&enc, max);
	}
	if (given_persistent) {
		resp_enc_str(&enc, "persistent");
		resp_enc_str(&enc, persistent ? "1" : "0");
	}
	/* pv is there already or counts from 0: HSET needs one field. */
	resp_enc_str(&enc, "name");
	resp_enc_arg(&enc, room, rn);
	given_max = given_persistent = 1;
	if (req_commit(P_NONE) == NULL)
		return -1;
	req_begin(4);
	resp_enc_str(&enc, "HSETNX");
	resp_enc_arg(&enc, k_info, k_info_n);
	resp_enc_str(&enc, "created");
	resp_enc_i64(&enc, vkws_wall_ms());
	(void)req_commit(P_NONE);
	req_begin(3);
	resp_enc_str(&enc, "SADD");
	resp_enc_arg(&enc, k_m, rooms_key(k_m));
	resp_enc_arg(&enc, room, rn);
	return req_commit(P_NONE) != NULL ? 0 : -1;
}

/* deleteRoom (run on every node): the room's keys go, so its seq starts
 * over (PROTOCOL.md 7). */
static void
obs_room_deleted(struct room *r)
{
	size_t rn;
	char room[VKWS_ROOM_NAME_MAX];

	rn = vkws_room_name(r, room);
	if (!may_send(1024))
		return;
	room_keys(room, rn);
	req_begin(5);
	resp_enc_str(&enc, "DEL");
	args_room_keys();
	(void)req_commit(P_NONE);
	req_begin(3);
	resp_enc_str(&enc, "SREM");
	resp_enc_arg(&enc, k_m, rooms_key(k_m));
	resp_enc_arg(&enc, room, rn);
	(void)req_commit(P_NONE);
}

static const struct vkws_room_obs observers = {
	.room_deleted = obs_room_deleted,
	.room_set = obs_room_set,
	.joined = obs_joined,
	.left = obs_left,
	.announced = obs_announced,
	.user_added = obs_user_added,
	.user_removed = obs_user_removed,
};

/* ---- Operations of the chat protocol ---------------------------------- */

/*
 * Commit the request begun for c: the entry keeps c (slot and id) and,
 * in pend_text, the request's id and the room. NULL (nothing sent) if
 * the request, the entry or the text does not fit.
 */
static struct pend *
req_commit_for(int kind, struct conn *c, const char *id, size_t idn,
    const char *room, size_t rn)
{
	size_t need = idn + rn, start, span;
	struct pend *p;

	if (idn > PEND_ID_MAX)
		return NULL;
	start = (text_start + text_used) % sizeof(pend_text);
	span = need;
	if (start + need > sizeof(pend_text)) {
		span += sizeof(pend_text) - start;	/* wrap: skip the end */
		start = 0;
	}
	if (text_used + span > sizeof(pend_text) ||
	    (p = req_commit(kind)) == NULL)
		return NULL;
	if (idn > 0)		/* id may be NULL when idn is 0 */
		memcpy(pend_text + start, id, idn);
	if (rn > 0)
		memcpy(pend_text + start + idn, room, rn);
	text_used += span;
	p->off = (uint32_t)start;
	p->span = (uint32_t)span;
	p->id_len = (uint16_t)idn;
	p->room_len = (uint8_t)rn;
	p->slot = (uint16_t)vkws_slot_of(c);
	p->cid = c->id;
	return p;
}

#define P_ID(p) (pend_text + (p)->off)
#define P_ROOM(p) (pend_text + (p)->off + (p)->id_len)

/* The oldest entry's reply has been acted on: its text goes. */
static void
pend_release(const struct pend *p)
{
	text_start = (text_start + p->span) % sizeof(pend_text);
	text_used -= p->span;
}

/* The connection a pending entry answers, if still the same one. */
static struct conn *
pend_conn(const struct pend *p)
{
	struct conn *c = &vkws_conns[p->slot];

	return c->state == S_WS && c->id == p->cid ? c : NULL;
}

static void
pend_ack(struct pend *p, int code)
{
	struct conn *c = pend_conn(p);

	if (c != NULL)
		vkws_chat_ack(c, P_ID(p), p->id_len, code, code == VKWS_ESTORE ?
		    "cluster unavailable" : NULL);
}

int
vkws_cluster_chat(struct conn *c, struct room *r, const char *text,
    size_t n, const char *id, size_t idn)
{
	struct json_out a, b;
	size_t rn, hn;
	char room[VKWS_ROOM_NAME_MAX];
	char hdr[VKWS_NODE_ID_MAX + 32];

	rn = vkws_room_name(r, room);
	json_out_init(&a, frame, sizeof(frame));
	json_out_lit(&a, "{\"type\":\"chat\",\"room\":");
	json_out_str(&a, room, rn);
	json_out_lit(&a, ",\"seq\":");
	json_out_init(&b, frame2, sizeof(frame2));
	json_out_lit(&b, ",\"from\":");
	vkws_out_user(&b, c);
	json_out_lit(&b, ",\"message\":");
	json_out_str(&b, text, n);
	json_out_lit(&b, ",\"timestamp\":");
	json_out_int(&b, vkws_wall_ms());
	json_out_lit(&b, "}");
	if (!json_out_ok(&a) || !json_out_ok(&b) || a.n + b.n + 24 >
	    VKWS_MAX_OUT)
		return VKWS_ELIMIT;
	if (!may_send(a.n + b.n + VKWS_CL_REQ_ENV))
		return VKWS_ESTORE;
	room_keys(room, rn);
	/* The bus header "C NODE TAG " SEQ " ROOM\n": TAG finds the
	 * pending entry, so the sender's ack goes before its own copy. */
	hn = (size_t)snprintf(hdr, sizeof(hdr), "C %s %u ", cfg->node,
	    (unsigned)p_next);
	eval_begin(SC_CHAT, 2, 6);
	resp_enc_arg(&enc, k_seq, k_seq_n);
	resp_enc_arg(&enc, k_h, k_h_n);
	resp_enc_arg(&enc, a.p, a.n);
	resp_enc_arg(&enc, b.p, b.n);
	resp_enc_u64(&enc, cfg->history);
	resp_enc_arg(&enc, bus, bus_len);
	resp_enc_arg(&enc, hdr, hn);
	{
		char tail[VKWS_ROOM_NAME_MAX + 2];
		tail[0] = ' ';
		memcpy(tail + 1, room, rn);
		tail[rn + 1] = '\n';
		resp_enc_arg(&enc, tail, rn + 2);
	}
	if (req_commit_for(P_CHAT, c, id, idn, "", 0) == NULL)
		return VKWS_ESTORE;
	vkws_count.cluster_published++;
	return 0;
}

/* Send the join script for c (maxClients over every node); *pp the
 * entry awaiting its reply. 0, or a VKWS_E* code (nothing sent). The
 * others hear of the join from the script unless c is young (then from
 * join_done() or obs_announced(), PROTOCOL.md 8). */
static int
join_send(struct conn *c, const char *room, size_t rn, uint64_t since,
    const char *id, size_t idn, struct pend **pp)
{
	int pub = !young(c);

	if (!may_send(VKWS_MAX_OUT / 4))
		return VKWS_ESTORE;
	if (join_args(c, room, rn, cfg->max_conns, since, pub, 1) < 0)
		return VKWS_ELIMIT;
	if ((*pp = req_commit_for(P_JOIN, c, id, idn, room, rn)) == NULL)
		return VKWS_ESTORE;
	(*pp)->pub = (uint8_t)pub;
	vkws_count.cluster_published++;
	return 0;
}

int
vkws_cluster_join(struct conn *c, const char *room, size_t rn,
    uint64_t since, const char *id, size_t idn)
{
	struct pend *p;

	return join_send(c, room, rn, since, id, idn, &p);
}

int
vkws_cl_req_join(struct conn *c, const char *room, size_t rn,
    const char *from, size_t fn, uint32_t hid)
{
	struct pend *p;
	int e;

	if ((e = join_send(c, room, rn, 0, from, fn, &p)) < 0)
		return e;
	p->api = fn > 0 ? A_REMOTE : A_HELD;
	p->hid = hid;
	return 0;
}

int
vkws_cluster_leave(struct conn *c, struct room *r, const char *id,
    size_t idn)
{
	char cid[VKWS_CLIENT_ID_MAX], room[VKWS_ROOM_NAME_MAX];
	size_t rn = vkws_room_name(r, room), cn = vkws_client_id(c, cid);
	uint32_t node = vkws_member_node(c, r);

	if (!may_send(1024))
		return VKWS_ESTORE;
	leave_begin(room, rn, cid, cn, vkws_room_is_default(r),
	    node != UINT32_MAX ? mpv[node] : 0, held_back(c, node));
	if (req_commit_for(P_LEAVE, c, id, idn, "", 0) == NULL)
		return VKWS_ESTORE;
	vkws_count.cluster_published++;
	quiet = 1;	/* the request is out: obs_left stays silent */
	vkws_leave(c, r);
	quiet = 0;
	return 0;
}

int
vkws_cluster_private(struct conn *c, const char *uid, size_t un,
    const char *fr, size_t fn, const char *id, size_t idn)
{
	const char *f[2] = { cfg->node, uid };
	size_t fl[2] = { node_len, un }, k;

	if (!may_send(fn + VKWS_CL_REQ_ENV))
		return VKWS_ESTORE;
	if ((k = bus_put("U", 1, f, fl, 2, fr, fn)) == 0)
		return VKWS_ELIMIT;
	eval_begin(SC_PRIV, 0, 4);
	resp_enc_arg(&enc, users_key, strlen(users_key));
	resp_enc_arg(&enc, uid, un);
	resp_enc_arg(&enc, bus, bus_len);
	resp_enc_arg(&enc, frame2, k);
	if (req_commit_for(P_PRIV, c, id, idn, "", 0) == NULL)
		return VKWS_ESTORE;
	vkws_count.cluster_published++;
	return 0;
}

/* ---- Requests of the server API (cluster_api.c) ----------------------- */

int
vkws_cl_may_send(size_t need)
{
	return may_send(need);
}

int
vkws_cl_publish(char t, const char *const f[], const size_t fl[],
    size_t nf, const char *body, size_t n)
{
	size_t k = bus_put(&t, 1, f, fl, nf, body, n);

	if (k == 0)
		return -1;
	req_begin(3);
	resp_enc_str(&enc, "PUBLISH");
	resp_enc_arg(&enc, bus, bus_len);
	resp_enc_arg(&enc, frame2, k);
	return req_commit(P_NONE) != NULL ? 0 : -1;
}

/* Commit the request begun for the held call hid. */
static int
held_req(int kind, struct conn *c, const char *room, size_t rn,
    uint32_t hid)
{
	struct pend *p = req_commit_for(kind, c, "", 0, room, rn);

	if (p == NULL)
		return -1;
	p->cid = hid;
	return 0;
}

int
vkws_cl_req_history(const char *room, size_t rn, uint32_t limit,
    uint32_t hid)
{
	struct pend *p;

	if (!may_send(1024))
		return -1;
	room_keys(room, rn);
	req_begin(4);
	resp_enc_str(&enc, "LRANGE");
	resp_enc_arg(&enc, k_h, k_h_n);
	resp_enc_i64(&enc, limit > 0 ? -(int64_t)limit : 0);
	resp_enc_str(&enc, "-1");
	if ((p = req_commit(P_HIST)) == NULL)
		return -1;
	p->cid = hid;
	return 0;
}

int
vkws_cl_req_info(struct conn *c, const char *room, size_t rn, uint32_t hid)
{
	if (!may_send(1024))
		return -1;
	room_keys(room, rn);
	eval_begin(SC_INFO, 2, 2);
	resp_enc_arg(&enc, k_m, k_m_n);
	resp_enc_arg(&enc, k_info, k_info_n);
	resp_enc_arg(&enc, cfg->cluster, name_len);
	resp_enc_arg(&enc, room, rn);
	return held_req(P_INFO, c, room, rn, hid);
}

int
vkws_cl_req_list(struct conn *c, uint32_t hid)
{
	if (!may_send(1024))
		return -1;
	eval_begin(SC_LIST, 0, 3);
	resp_enc_arg(&enc, cfg->cluster, name_len);
	resp_enc_u64(&enc, VKWS_CLUSTER_ROOMS_MAX);
	resp_enc_u64(&enc, VKWS_CLUSTER_LIST_BYTES);
	return held_req(P_LIST, c, "", 0, hid);
}

/* lua_forget: deleteRoom of a room that may be in Redis only. */
int
vkws_cl_req_forget(struct conn *c, const char *room, size_t rn,
    uint32_t hid)
{
	char rk[VKWS_CLUSTER_NAME_MAX + 8];

	if ((rn == strlen(cfg->default_room) &&
	    memcmp(room, cfg->default_room, rn) == 0) || !may_send(1024))
		return -1;	/* -4 from every node; or the nodes only */
	room_keys(room, rn);
	eval_begin(SC_FORGET, 5, 1);
	args_room_keys();
	resp_enc_arg(&enc, rk, rooms_key(rk));
	resp_enc_arg(&enc, room, rn);
	return held_req(P_FORGET, c, "", 0, hid);
}

/* ---- Replies ---------------------------------------------------------- */

/* The answer to a join: the chat client's ack, or the server API's
 * reply (to the call held here, or published to the node that asked). */
static void
join_answer(struct pend *p, int code)
{
	if (p->api == A_CHAT)
		pend_ack(p, code);
	else
		vkws_cl_join_answer(p->hid, P_ID(p), p->id_len, code);
}

/* A string value of a reply as (pointer, length). */
static const char *
val_str(const uint8_t *base, const struct resp_val *v, size_t *n)
{
	*n = v->len;
	return (const char *)base + v->off;
}

/*
 * {"type":TYPE,"room":ROOM,"KEY":[ and then the JSON values v[i..end)
 * (siblings, as Redis gave them) into frame through o, as many as fit
 * with tail bytes left for what follows them. Returns how many went
 * in; *cut is 1 if some did not.
 */
static uint32_t
list_frame(struct json_out *o, const char *type, const char *room,
    size_t rn, const char *key, const uint8_t *base,
    const struct resp_val *v, uint32_t i, uint32_t end, size_t tail,
    int *cut)
{
	uint32_t k;
	size_t sn;

	json_out_init(o, frame, sizeof(frame));
	json_out_lit(o, "{\"type\":\"");
	json_out_lit(o, type);
	json_out_lit(o, "\",\"room\":");
	json_out_str(o, room, rn);
	json_out_lit(o, ",\"");
	json_out_lit(o, key);
	json_out_lit(o, "\":[");
	*cut = 0;
	o->cap -= tail;
	for (k = 0; i < end; i = v[i].end, k++) {
		const char *s = val_str(base, &v[i], &sn);
		size_t mark = o->n;

		if (k > 0)
			json_out_lit(o, ",");
		json_out_raw(o, s, sn);
		if (!json_out_ok(o)) {
			o->n = mark;
			o->err = 0;
			*cut = 1;
			break;
		}
	}
	o->cap += tail;
	return k;
}

/*
 * A join Redis took: the ack, the local part (the room here, user_join
 * to this node's members), then user_list and history as Redis has
 * them. v: {seq, complete, members, pv, {member...}, {chat...}}.
 */
static void
join_done(struct pend *p, const uint8_t *base, const struct resp_val *v,
    size_t nv)
{
	struct conn *c = pend_conn(p);
	struct json_out o;
	uint32_t k, node;
	size_t total;
	int complete, cut;
	struct room *r;

	if (c == NULL) {
		join_answer(p, VKWS_ENOTFOUND);
		return;
	}
	if (nv >= 1 && v[0].type == RESP_INT) {
		join_answer(p, (int)v[0].i);	/* -5: full */
		return;
	}
	if (nv < 7 || v[0].type != RESP_ARRAY || v[0].len != 6 ||
	    v[4].type != RESP_INT || v[5].type != RESP_ARRAY ||
	    v[5].end >= nv || v[v[5].end].type != RESP_ARRAY) {
		join_answer(p, VKWS_ESTORE);
		return;
	}
	join_answer(p, 0);
	quiet = 1;
	r = vkws_join_member(c, P_ROOM(p), p->room_len);
	quiet = 0;
	node = r != NULL ? vkws_member_node(c, r) : UINT32_MAX;
	if (node != UINT32_MAX) {
		mpv[node] = (uint32_t)v[4].i;
		/* Young when sent, no longer now: the others hear of it
		 * here, as this node's members just did. */
		if (!p->pub && v[4].i != 0 && !held_back(c, node))
			obs_announced(c, r, node);
		/* Its marker not read yet: what the bus has before it is in
		 * the lists below. */
		if (!(sub_held && held_tag == p->tag))
			deaf_add(p->tag, node);
	}
	complete = v[2].i != 0;
	total = (size_t)v[3].i;
	k = list_frame(&o, "user_list", P_ROOM(p), p->room_len, "users", base,
	    v, 6, v[5].end, 64, &cut);
	json_out_lit(&o, "]");
	if (total > k) {
		json_out_lit(&o, ",\"more\":");
		json_out_uint(&o, total - k);
	}
	json_out_lit(&o, ",\"timestamp\":");
	json_out_int(&o, vkws_wall_ms());
	json_out_lit(&o, "}");
	if (json_out_ok(&o))
		(void)vkws_deliver(c, o.p, o.n);

	(void)list_frame(&o, "history", P_ROOM(p), p->room_len, "messages",
	    base, v, v[5].end + 1, v[v[5].end].end, 32, &cut);
	if (cut)
		complete = 0;
	json_out_lit(&o, complete ? "],\"complete\":true}" :
	    "],\"complete\":false}");
	if (json_out_ok(&o))
		(void)vkws_deliver(c, o.p, o.n);
}

/* Whether a Redis error is one of AUTH's: no password given, or the
 * wrong one. */
static int
auth_error(const char *s, size_t n)
{
	return (n >= 6 && memcmp(s, "NOAUTH", 6) == 0) ||
	    (n >= 9 && memcmp(s, "WRONGPASS", 9) == 0) ||
	    (n >= 20 && memcmp(s, "ERR invalid password", 20) == 0);
}

/* Log an error reply of Redis. One refusing the password is logged once
 * until the link is up, not at every attempt to connect. */
static void
link_error(const char *s, size_t n)
{
	if (auth_error(s, n)) {
		if (auth_told)
			return;
		auth_told = 1;
		vkws_log("redis: %.*s (%s)", (int)(n > 200 ? 200 : n), s,
		    cfg->redis_pass_len > 0 ? "--redis-user, "
		    "--redis-password-file" : "no --redis-password-file");
		return;
	}
	vkws_log("redis: %.*s", (int)(n > 200 ? 200 : n), s);
}

/* The reply to the oldest request awaited. */
static void
cmd_reply(const uint8_t *base, const struct resp_val *v, size_t nv)
{
	struct pend *p;
	int err;

	if (p_first == p_next)
		return;		/* nothing awaited: ignore */
	p = &pend[p_first++ % VKWS_REDIS_PENDING];
	err = v[0].type == RESP_ERROR || v[0].type == RESP_BLOBERR;
	if (err) {
		size_t n;
		const char *s = val_str(base, &v[0], &n);
		/* Scripts gone (SCRIPT FLUSH, a Redis still loading when
		 * they were sent), or AUTH refused: connect again, which
		 * loads them, later. */
		if (p->kind == P_LOAD || p->kind == P_AUTH ||
		    (n >= 8 && memcmp(s, "NOSCRIPT", 8) == 0))
			broken = 1;
		link_error(s, n);
	} else if (p->kind == P_LOAD)
		loaded++;
	switch (p->kind) {
	case P_CHAT:
		if (!p->acked)
			pend_ack(p, err || v[0].type != RESP_INT ?
			    VKWS_ESTORE : 0);
		break;
	case P_JOIN:
		if (err)
			join_answer(p, VKWS_ESTORE);
		else
			join_done(p, base, v, nv);
		break;
	case P_LEAVE:
		pend_ack(p, err ? VKWS_ESTORE : 0);
		break;
	case P_PRIV:
		pend_ack(p, err ? VKWS_ESTORE : v[0].type == RESP_INT &&
		    v[0].i == 1 ? 0 : VKWS_ENOTFOUND);
		break;
	case P_BEAT:
		if (v[0].type == RESP_INT)
			vkws_count.cluster_nodes = (uint64_t)v[0].i;
		break;
	case P_HIST:
		vkws_cl_history_done((uint32_t)p->cid, base, v, nv);
		break;
	case P_INFO:	/* an error reply: -7 */
		vkws_cl_info_done((uint32_t)p->cid, P_ROOM(p), p->room_len, v,
		    err ? 0 : nv);
		break;
	case P_LIST:
		vkws_cl_list_done((uint32_t)p->cid, base, v, err ? 0 : nv);
		break;
	case P_FORGET:
		vkws_cl_forget_done((uint32_t)p->cid, v, err ? 0 : nv);
		break;
	default:
		break;
	}
	pend_release(p);
	if (sub_held && !awaited(held_tag)) {
		sub_held = 0;
		sub_resume = 1;
	}
}

/* Members told of a presence change: those whose version is not known,
 * or above lo (0: any) and below hi (0: any). */
struct pv_range {
	uint32_t lo, hi;
};

static int
pv_want(uint32_t node, void *arg)
{
	const struct pv_range *w = arg;
	uint32_t m = mpv[node];

	if (bit_get(deaf, node))
		return 0;
	return m == 0 || ((w->lo == 0 || m > w->lo) &&
	    (w->hi == 0 || m < w->hi));
}

/* Members that hear the bus: all but those whose marker is awaited. */
static int
hearing(uint32_t node, void *arg)
{
	(void)arg;
	return !bit_get(deaf, node);
}

/*
 * A bus message: "C NODE TAG SEQ ROOM\n" chat, "J NODE PV ROOM\n"
 * user_join, "L NODE PVJ HELD PV ROOM\n" user_leave, "U NODE UID\n"
 * private, "M NODE TAG\n" a join's marker (see deaf[]); the frame
 * follows the newline and goes to this node's connections. A
 * user_join goes to the members that joined before it (the later ones
 * saw the joiner in their user_list); a user_leave to those that
 * joined before it and, if the leaver's user_join was held back
 * (PROTOCOL.md 8), after the leaver: only they knew of it.
 */
static void
bus_message(const char *s, size_t n)
{
	const char *nd, *a, *b, *pv, *room, *fr;
	size_t ndn, an, bn, pn, rn, off = 2, fn;
	struct pv_range w;
	int mine;
	struct room *r;

	if (n < 4 || s[1] != ' ' || field(s, n, &off, &nd, &ndn, ' ') < 0)
		return;
	vkws_count.cluster_received++;
	mine = ndn == node_len && memcmp(nd, cfg->node, ndn) == 0;
	switch (s[0]) {
	case 'C':
		if (field(s, n, &off, &a, &an, ' ') < 0 ||
		    field(s, n, &off, &b, &bn, ' ') < 0 ||
		    field(s, n, &off, &room, &rn, '\n') < 0)
			return;
		fr = s + off;
		fn = n - off;
		if (mine) {
			/* The sender's ack before its own copy: the script
			 * ran, so Redis took the message. */
			uint32_t tag = (uint32_t)dec(a, an);
			struct pend *p = &pend[tag % VKWS_REDIS_PENDING];
			if (p->tag == tag && p->kind == P_CHAT && !p->acked &&
			    tag - p_first < p_next - p_first) {
				pend_ack(p, 0);
				p->acked = 1;
			}
		}
		if ((r = vkws_room_find(room, rn)) != NULL) {
			vkws_room_chat_seen(r, dec(b, bn), fr, fn);
			if (deaf_used > 0)
				(void)vkws_room_send_if(r, fr, fn, hearing,
				    NULL);
			else
				(void)vkws_room_send(r, fr, fn);
		}
		break;
	case 'J':
		if (mine || field(s, n, &off, &a, &an, ' ') < 0 ||
		    field(s, n, &off, &room, &rn, '\n') < 0)
			return;
		w.lo = 0;
		w.hi = (uint32_t)dec(a, an);
		if ((r = vkws_room_find(room, rn)) != NULL)
			(void)vkws_room_send_if(r, s + off, n - off, pv_want, &w);
		break;
	case 'L':
		if (mine || field(s, n, &off, &a, &an, ' ') < 0 ||
		    field(s, n, &off, &b, &bn, ' ') < 0 ||
		    field(s, n, &off, &pv, &pn, ' ') < 0 ||
		    field(s, n, &off, &room, &rn, '\n') < 0)
			return;
		w.lo = bn == 1 && b[0] == '1' ? (uint32_t)dec(a, an) : 0;
		w.hi = (uint32_t)dec(pv, pn);
		if ((r = vkws_room_find(room, rn)) != NULL)
			(void)vkws_room_send_if(r, s + off, n - off, pv_want, &w);
		break;
	case 'M':
		if (mine && field(s, n, &off, &a, &an, '\n') == 0)
			marker_seen((uint32_t)dec(a, an));
		break;
	case 'U':
		if (field(s, n, &off, &a, &an, '\n') < 0)
			return;
		(void)vkws_send_to_user(a, an, s + off, n - off);
		break;
	case 'Q':
		if (field(s, n, &off, &a, &an, ' ') < 0 ||
		    field(s, n, &off, &b, &bn, '\n') < 0)
			return;
		vkws_cl_api_request(nd, ndn, a, an, b, bn, s + off, n - off);
		break;
	case 'R':
		if (!mine || field(s, n, &off, &a, &an, ' ') < 0 ||
		    field(s, n, &off, &b, &bn, '\n') < 0)
			return;
		vkws_cl_api_answer(a, an, b, bn, s + off, n - off);
		break;
	default:
		break;
	}
}

/* A reply or push on the subscription link. */
static void
sub_reply(const uint8_t *base, const struct resp_val *v, size_t nv)
{
	size_t n;
	const char *s;

	if (v[0].type == RESP_ERROR || v[0].type == RESP_BLOBERR) {
		s = val_str(base, &v[0], &n);
		link_error(s, n);	/* AUTH or SUBSCRIBE refused */
		broken = 1;
		return;
	}

	if ((v[0].type != RESP_ARRAY && v[0].type != RESP_PUSH) ||
	    v[0].len < 3 || nv < 4)
		return;
	if (resp_eq(base, &v[1], "message", 7) && v[3].type == RESP_BULK) {
		s = val_str(base, &v[3], &n);
		bus_message(s, n);
	} else if (resp_eq(base, &v[1], "subscribe", 9)) {
		sub.subscribed = 1;
	}
}

/* ---- The link ------------------------------------------------------- */

static void
link_close(struct rlink *l)
{
	if (l->fd >= 0)
		close(l->fd);
	l->fd = -1;
	l->state = L_DOWN;
	l->subscribed = 0;
	l->olen = l->ilen = 0;
}

/* Both links go: every reply awaited fails (-7), retry later. */
static void
link_down(const char *why)
{
	int was = up || cmd.state != L_DOWN || sub.state != L_DOWN;

	if (up)
		vkws_log("cluster: link to redis lost (%s)", why);
	link_close(&cmd);
	link_close(&sub);
	up = 0;
	vkws_count.cluster_up = 0;
	while (p_first != p_next) {
		struct pend *p = &pend[p_first++ % VKWS_REDIS_PENDING];
		if ((p->kind == P_CHAT && !p->acked) || p->kind == P_PRIV ||
		    p->kind == P_LEAVE)
			pend_ack(p, VKWS_ESTORE);
		else if (p->kind == P_JOIN)
			join_answer(p, VKWS_ESTORE);
	}
	text_start = text_used = 0;
	leave_start = leave_used = 0;
	sub_held = sub_resume = 0;
	deaf_start = deaf_used = 0;
	memset(deaf, 0, sizeof(deaf));
	loaded = broken = 0;
	rereg = 0;
	retry_at = vkws_now_ms() + (was ? backoff : 0);
	backoff = backoff * 2 > 1000 ? 1000 : backoff * 2;
}

static int
link_open(struct rlink *l)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	const char *a = cfg->redis;
	int fd;

	memset(&ss, 0, sizeof(ss));
	if (strncmp(a, "unix:", 5) == 0) {
		struct sockaddr_un *su = (struct sockaddr_un *)&ss;
		if (strlen(a + 5) >= sizeof(su->sun_path))
			return -1;
		su->sun_family = AF_UNIX;
		memcpy(su->sun_path, a + 5, strlen(a + 5) + 1);
		sl = sizeof(*su);
	} else {
		struct sockaddr_in *si = (struct sockaddr_in *)&ss;
		char host[64];
		const char *colon = strrchr(a, ':');
		size_t hn = colon != NULL ? (size_t)(colon - a) : 0;
		long port = colon != NULL ? strtol(colon + 1, NULL, 10) : 0;

		if (hn == 0 || hn >= sizeof(host) || port <= 0 || port > 65535)
			return -1;
		memcpy(host, a, hn);
		host[hn] = '\0';
		if (strcmp(host, "localhost") == 0)
			memcpy(host, "127.0.0.1", 10);
		si->sin_family = AF_INET;
		si->sin_port = htons((uint16_t)port);
		if (inet_pton(AF_INET, host, &si->sin_addr) != 1)
			return -1;
		sl = sizeof(*si);
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0);
	if (fd < 0)
		return -1;
	l->fd = fd;
	l->olen = l->ilen = 0;
	l->subscribed = 0;
	if (connect(fd, (struct sockaddr *)&ss, sl) == 0)
		l->state = L_UP;
	else if (errno == EINPROGRESS)
		l->state = L_CONNECTING;
	else {
		link_close(l);
		return -1;
	}
	return 0;
}

/* AUTH [user] password (--redis-user, --redis-password-file) in a
 * command begun with auth_argc() arguments. */
static unsigned
auth_argc(void)
{
	return cfg->redis_user[0] != '\0' ? 3 : 2;
}

static void
auth_args(void)
{
	resp_enc_str(&enc, "AUTH");
	if (cfg->redis_user[0] != '\0')
		resp_enc_str(&enc, cfg->redis_user);
	resp_enc_arg(&enc, cfg->redis_pass, cfg->redis_pass_len);
}

/* Open both links and queue what each says first: AUTH if a password
 * is set, then the scripts and the node's registration; the bus
 * subscription. */
static void
links_connect(void)
{
	int i;

	if (link_open(&cmd) < 0 || link_open(&sub) < 0) {
		link_down("connect");
		return;
	}
	sub.olen = 0;
	if (cfg->redis_pass_len > 0) {
		req_begin(auth_argc());
		auth_args();
		(void)req_commit(P_AUTH);
		resp_enc_begin(&enc, sub.out, sub.out_cap, auth_argc());
		auth_args();
		sub.olen = (size_t)resp_enc_end(&enc);
	}
	for (i = 0; i < SC_N; i++) {
		req_begin(3);
		resp_enc_str(&enc, "SCRIPT");
		resp_enc_str(&enc, "LOAD");
		resp_enc_str(&enc, vkws_cl_scripts[i]);
		(void)req_commit(P_LOAD);
	}
	eval_begin(SC_REG, 0, 5);
	script_common_args();
	resp_enc_str(&enc, new_life ? "1" : "0");
	(void)req_commit(P_BEAT);
	resp_enc_begin(&enc, sub.out + sub.olen, sub.out_cap - sub.olen, 2);
	resp_enc_str(&enc, "SUBSCRIBE");
	resp_enc_arg(&enc, bus, bus_len);
	sub.olen += (size_t)resp_enc_end(&enc);
}

static int
link_write(struct rlink *l)
{
	ssize_t w;

	while (l->olen > 0) {
		w = send(l->fd, l->out, l->olen, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 0;
			if (errno == EINTR)
				continue;
			return -1;
		}
		memmove(l->out, l->out + w, l->olen - (size_t)w);
		l->olen -= (size_t)w;
	}
	return 0;
}

#ifdef VKWS_TEST_HOOKS
/* Test builds only: while the file VKWS_TEST_PAUSE names holds "cmd" or
 * "sub", that link is not read, as if Redis's bytes were late on it. */
static int
test_paused(const struct rlink *l)
{
	const char *path = getenv("VKWS_TEST_PAUSE");
	char b[4];
	ssize_t n;
	int fd;

	if (path == NULL || (fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return 0;
	n = read(fd, b, sizeof(b));
	close(fd);
	return n >= 3 && memcmp(b, l == &cmd ? "cmd" : "sub", 3) == 0;
}
#else
#define test_paused(l) 0
#endif

/* Whether l's input is read now: not the subscription link while it
 * waits at a marker for its join's reply. */
static int
reading(const struct rlink *l)
{
	return !(l == &sub && sub_held) && !test_paused(l);
}

/* Act on every whole reply read (up to a marker that holds the
 * subscription link). */
static int
link_parse(struct rlink *l)
{
	size_t off = 0, nv;
	long n;

	while (off < l->ilen && reading(l)) {
		n = resp_parse(l->in + off, l->ilen - off, vals,
		    VKWS_REDIS_VALUES, &nv);
		if (n < 0)
			return -1;
		if (n == 0)
			break;
		if (l == &cmd)
			cmd_reply(l->in + off, vals, nv);
		else
			sub_reply(l->in + off, vals, nv);
		off += (size_t)n;
		if (broken)
			return -1;
		/* A reply may have taken the link down (never today, but
		 * state is checked again after every callback). */
		if (l->fd < 0)
			return 0;
	}
	memmove(l->in, l->in + off, l->ilen - off);
	l->ilen -= off;
	/* A reply larger than the whole buffer can never be read. */
	return l->ilen == l->in_cap ? -1 : 0;
}

/* Read what came and act on it. */
static int
link_read(struct rlink *l)
{
	ssize_t r;

	if (!reading(l))
		return 0;
	r = recv(l->fd, l->in + l->ilen, l->in_cap - l->ilen, 0);
	if (r == 0)
		return -1;
	if (r < 0)
		return errno == EAGAIN || errno == EINTR ? 0 : -1;
	l->ilen += (size_t)r;
	return link_parse(l);
}

static void
check_up(void)
{
	if (up || cmd.state != L_UP || sub.state != L_UP || !sub.subscribed ||
	    loaded < SC_N)
		return;
	up = 1;
	vkws_count.cluster_up = 1;
	if (ever_up)
		vkws_count.cluster_reconnects++;
	else
		vkws_log("cluster: node %s joined cluster %s", cfg->node,
		    cfg->cluster);
	ever_up = 1;
	auth_told = 0;
	new_life = 0;
	backoff = 250;
	resync = 0;
	/* Registered again (lua_reg): then DROP. Versions from before may
	 * not hold (a Redis that lost its data counts from 1 again). */
	drop_old = 1;
	memset(mpv, 0, sizeof(mpv));
	beat_at = vkws_now_ms() + (int64_t)cfg->node_ttl * 1000 / 3;
}

static struct rlink *polled[VKWS_EXTRA_FDS];

size_t
vkws_cluster_poll_fds(struct pollfd *p, size_t max, int64_t now,
    int64_t *next)
{
	struct rlink *ls[2] = { &cmd, &sub };
	size_t n = 0, i;

	if (!on || max < 2)
		return 0;
	if (cmd.state == L_DOWN && sub.state == L_DOWN && now >= retry_at)
		links_connect();
	vkws_cl_held_timers(now, next);
	leave_drain();
	if (up && rereg && leave_used == 0 && may_send(VKWS_MAX_OUT)) {
		/* Leaves were lost: this node's entries in Redis are dropped
		 * and written again from what it holds. */
		rereg = 0;
		eval_begin(SC_REG, 0, 5);
		script_common_args();
		resp_enc_str(&enc, "0");
		(void)req_commit(P_BEAT);
		resync = 0;
		drop_old = 1;
		vkws_count.cluster_reregistrations++;
	}
	if (up && now >= beat_at) {
		beat();
		beat_at = now + (int64_t)cfg->node_ttl * 1000 / 3;
	}
	resync_step();
	for (i = 0; i < 2; i++) {
		struct rlink *l = ls[i];
		if (l->state == L_UP && l->olen > 0 && link_write(l) < 0) {
			link_down("write");
			break;
		}
	}
	for (i = 0; i < 2; i++) {
		struct rlink *l = ls[i];
		if (l->state == L_DOWN)
			continue;
		p[n].fd = l->fd;
		p[n].events = (short)(l->state == L_CONNECTING ? POLLOUT :
		    (reading(l) ? POLLIN : 0) | (l->olen > 0 ? POLLOUT : 0));
#ifdef VKWS_TEST_HOOKS
		if (test_paused(l) && now + 20 < *next)
			*next = now + 20;	/* look at the file again */
#endif
		p[n].revents = 0;
		polled[n++] = l;
	}
	if (cmd.state == L_DOWN && retry_at < *next)
		*next = retry_at;
	if (up && beat_at < *next)
		*next = beat_at;
	return n;
}

void
vkws_cluster_poll_ready(const struct pollfd *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		struct rlink *l = polled[i];
		short ev = p[i].revents;

		if (l->fd != p[i].fd || ev == 0)
			continue;
		if (l->state == L_CONNECTING) {
			int err = 0;
			socklen_t el = sizeof(err);
			if (getsockopt(l->fd, SOL_SOCKET, SO_ERROR, &err,
			    &el) < 0 || err != 0) {
				link_down("connect");
				return;
			}
			l->state = L_UP;
			continue;
		}
		if ((ev & (POLLIN | POLLHUP | POLLERR)) && link_read(l) < 0) {
			link_down("read");
			return;
		}
		if ((ev & POLLOUT) && link_write(l) < 0) {
			link_down("write");
			return;
		}
	}
	/* A reply the subscription link waited for came: on with what it
	 * had read. */
	if (sub_resume) {
		sub_resume = 0;
		if (sub.state == L_UP && link_parse(&sub) < 0) {
			link_down("read");
			return;
		}
	}
	check_up();
}

/* ---- Start and stop --------------------------------------------------- */

/* n random bytes (zeros if /dev/urandom cannot be read). */
static void
random_bytes(uint8_t *b, size_t n)
{
	int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);

	memset(b, 0, n);
	if (fd >= 0) {
		(void)!read(fd, b, n);
		close(fd);
	}
}

static void
random_node(char *out)
{
	static const char hex[] = "0123456789abcdef";
	uint8_t b[4];
	size_t i;

	random_bytes(b, sizeof(b));
	for (i = 0; i < 4; i++) {
		out[2 * i] = hex[b[i] >> 4];
		out[2 * i + 1] = hex[b[i] & 15];
	}
	out[8] = '\0';
}

/* A cluster or node name: part of Redis keys and clientIds, so
 * [A-Za-z0-9_.-] only. */
static int
name_ok(const char *s)
{
	size_t i;

	for (i = 0; s[i] != '\0'; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' &&
		    s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9') ||
		    s[i] == '_' || s[i] == '.' || s[i] == '-'))
			return 0;
	return 1;
}

int
vkws_cluster_init(struct vkws_config *c)
{
	int i;

	cfg = c;
	if (c->redis[0] == '\0') {
		if (c->redis_user[0] == '\0' && c->redis_pass_file[0] == '\0')
			return 0;
		vkws_log("--redis-user and --redis-password-file go with "
		    "--redis");
		return -1;
	}
	if (c->redis_user[0] != '\0' && c->redis_pass_len == 0) {
		vkws_log("--redis-user needs --redis-password-file");
		return -1;
	}
	if (c->data_dir[0] != '\0') {
		vkws_log("--data-dir cannot go with --redis: Redis is the "
		    "store");
		return -1;
	}
	if (!name_ok(c->cluster) || !name_ok(c->node)) {
		vkws_log("--cluster and --node take [A-Za-z0-9_.-] only");
		return -1;
	}
	on = 1;
	cmd.fd = sub.fd = -1;
	if (c->cluster[0] == '\0')
		memcpy(c->cluster, "vkws", 5);
	if (c->node[0] == '\0')
		random_node(c->node);
	if (c->node_ttl == 0)
		c->node_ttl = VKWS_NODE_TTL;
	name_len = strlen(c->cluster);
	node_len = strlen(c->node);
	bus_len = (size_t)snprintf(bus, sizeof(bus), "%s:bus", c->cluster);
	(void)snprintf(users_key, sizeof(users_key), "%s:u", c->cluster);
	(void)snprintf(nm_key, sizeof(nm_key), "%s:nm:%s", c->cluster,
	    c->node);
	(void)snprintf(nu_key, sizeof(nu_key), "%s:nu:%s", c->cluster,
	    c->node);
	(void)snprintf(no_key, sizeof(no_key), "%s:no:%s", c->cluster,
	    c->node);
	for (i = 0; i < SC_N; i++)
		hex_sha1(vkws_cl_scripts[i], sha[i]);
	{
		/* A random start in the 44 bits of the counter (vkws.c),
		 * with room below the wrap for a long life. */
		uint8_t b[8];
		uint64_t seed = 0;
		random_bytes(b, sizeof(b));
		for (i = 0; i < 8; i++)
			seed = seed << 8 | b[i];
		vkws_client_id_prefix(c->node, node_len,
		    seed & ((UINT64_C(1) << 43) - 1));
	}
	vkws_room_observe(&observers);
	retry_at = 0;
	return 0;
}

/* A clean stop: the connections have left (their leaves are queued);
 * this node leaves the node set. The output is flushed for at most a
 * second: a stop never waits on Redis for longer. */
void
vkws_cluster_stop(void)
{
	int64_t end = vkws_now_ms() + 1000;

	if (!on || !up)
		return;
	/* What is left of this node leaves its rooms with user_leave. */
	eval_begin(SC_REG, 0, 5);
	script_common_args();
	resp_enc_str(&enc, "1");
	(void)req_commit(P_NONE);
	req_begin(3);
	resp_enc_str(&enc, "ZREM");
	{
		char k[VKWS_CLUSTER_NAME_MAX + 8];
		int kn = snprintf(k, sizeof(k), "%s:nodes", cfg->cluster);
		resp_enc_arg(&enc, k, (size_t)kn);
	}
	resp_enc_arg(&enc, cfg->node, node_len);
	(void)req_commit(P_NONE);
	while (cmd.olen > 0 && vkws_now_ms() < end) {
		struct pollfd p = { .fd = cmd.fd, .events = POLLOUT };
		if (poll(&p, 1, 100) < 0 || link_write(&cmd) < 0)
			break;
	}
	/* Wait for the replies, so Redis has run every request. */
	while (p_first != p_next && vkws_now_ms() < end) {
		struct pollfd p = { .fd = cmd.fd, .events = POLLIN };
		if (poll(&p, 1, 100) < 0 || (p.revents && link_read(&cmd) < 0))
			break;
	}
	link_close(&cmd);
	link_close(&sub);
}
