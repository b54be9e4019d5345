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
 * unavailable" and nothing is acked that Redis did not take. This file
 * never blocks (but for a bounded flush at a clean stop), never
 * allocates, and touches connections only through the C API of room.c
 * and the core's queue functions.
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

/* ---- Scripts ---------------------------------------------------------- */

/*
 * Presence versions: every change of a room's members (a join, a leave,
 * a sweep) takes the next number of the room's "pv" (in :info), and its
 * bus message carries it. A node keeps the version of each of its
 * memberships (mpv[] below), so it gives a user_join or user_leave only
 * to the members that joined before the change and so did not see it in
 * their user_list: what PROTOCOL.md 8 holds back stays consistent on
 * every node.
 *
 * A node's sweep: its memberships leave their rooms (with user_leave on
 * the bus when pub is true), its users are uncounted. Used for dead
 * nodes (BEAT), for this node's own earlier life (REG) and, through
 * drop(), for the memberships a node no longer holds after it
 * registered itself again (DROP). A room left empty, neither persistent
 * nor the default one, goes with its keys and its entry in NAME:rooms.
 * A user counted 0 here is skipped: Lua writes -0 for it, which HINCRBY
 * refuses, and the whole script would fail.
 */
#define LUA_SWEEP \
"local t = redis.call('TIME')\n" \
"local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n" \
"local function drop(n, set, d, pub, def)\n" \
"  for _, e in ipairs(redis.call('SMEMBERS', set)) do\n" \
"    local i = string.find(e, '\\n', 1, true)\n" \
"    local room, cid = string.sub(e, 1, i - 1), string.sub(e, i + 1)\n" \
"    local k = '{'..n..':'..room..'}'\n" \
"    local u = redis.call('HGET', k..':m', cid)\n" \
"    if u then\n" \
"      redis.call('HDEL', k..':m', cid)\n" \
"      local pv = redis.call('HINCRBY', k..':info', 'pv', 1)\n" \
"      if pub then redis.call('PUBLISH', n..':bus', 'L '..d..' 0 0 '..pv..\n" \
"        ' '..room..'\\n{\"type\":\"user_leave\",\"room\":'..\n" \
"        cjson.encode(room)..',\"user\":'..u..',\"timestamp\":'..now..'}')\n" \
"      end\n" \
"      if redis.call('HLEN', k..':m') == 0 and room ~= def and\n" \
"          redis.call('HGET', k..':info', 'persistent') ~= '1' then\n" \
"        redis.call('DEL', k..':h', k..':seq', k..':info')\n" \
"        redis.call('SREM', n..':rooms', room)\n" \
"      end\n" \
"    end\n" \
"  end\n" \
"  redis.call('DEL', set)\n" \
"end\n" \
"local function users(n, d)\n" \
"  local us = redis.call('HGETALL', n..':nu:'..d)\n" \
"  for i = 1, #us, 2 do\n" \
"    local c = tonumber(us[i+1])\n" \
"    if c ~= 0 and redis.call('HINCRBY', n..':u', us[i], -c) <= 0\n" \
"    then redis.call('HDEL', n..':u', us[i]) end\n" \
"  end\n" \
"  redis.call('DEL', n..':nu:'..d)\n" \
"end\n" \
"local function sweep(n, d, pub, def)\n" \
"  drop(n, n..':nm:'..d, d, pub, def)\n" \
"  drop(n, n..':no:'..d, d, pub, def)\n" \
"  users(n, d)\n" \
"end\n"

/* ARGV: name, node, ttl ms, default room, new life (1/0). A new life
 * sweeps the old one; otherwise (the link came back, or leaves were
 * lost) the memberships Redis holds move to NAME:no:NODE, the node
 * registers what it holds (REJOIN takes each out of that set again) and
 * DROP then removes the rest with user_leave. */
static const char lua_reg[] = LUA_SWEEP
"local n, me, ttl, def = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]\n"
"if ARGV[5] == '1' then sweep(n, me, true, def) else\n"
"  redis.call('SUNIONSTORE', n..':no:'..me, n..':no:'..me, n..':nm:'..me)\n"
"  redis.call('DEL', n..':nm:'..me)\n"
"  users(n, me)\n"
"end\n"
"if def ~= '' then redis.call('SADD', n..':rooms', def)\n"
"  redis.call('HSETNX', '{'..n..':'..def..'}:info', 'created', now) end\n"
"redis.call('ZADD', n..':nodes', now + ttl, me)\n"
"redis.call('SET', n..':node:'..me, now, 'PX', ttl)\n"
"return redis.call('ZCARD', n..':nodes')\n";

/* ARGV: name, node, ttl ms, default room. The heartbeat, then the sweep
 * of every node whose heartbeat ran out. Returns the live nodes. */
static const char lua_beat[] = LUA_SWEEP
"local n, me, ttl = ARGV[1], ARGV[2], tonumber(ARGV[3])\n"
"redis.call('ZADD', n..':nodes', now + ttl, me)\n"
"redis.call('SET', n..':node:'..me, now, 'PX', ttl)\n"
"for _, d in ipairs(redis.call('ZRANGEBYSCORE', n..':nodes', '-inf', now))\n"
"do sweep(n, d, true, ARGV[4]); redis.call('ZREM', n..':nodes', d) end\n"
"return redis.call('ZCARD', n..':nodes')\n";

/* ARGV: name, node, default room. After a registration: what is left
 * in NAME:no:NODE, memberships this node no longer holds, leaves. */
static const char lua_drop[] = LUA_SWEEP
"drop(ARGV[1], ARGV[1]..':no:'..ARGV[2], ARGV[2], true, ARGV[3])\n"
"return 0\n";

/* KEYS: seq, history. ARGV: frame before the seq, after it, --history,
 * bus, bus header before the seq, after it. One seq per room for the
 * whole cluster: counter, history and publish in one step. */
static const char lua_chat[] =
"local s = redis.call('INCR', KEYS[1])\n"
"local m = ARGV[1]..s..ARGV[2]\n"
"local h = tonumber(ARGV[3])\n"
"if h > 0 then redis.call('RPUSH', KEYS[2], m)\n"
"  redis.call('LTRIM', KEYS[2], -h, -1) end\n"
"redis.call('PUBLISH', ARGV[4], ARGV[5]..s..ARGV[6]..m)\n"
"return s\n";

/* KEYS: members, history, seq, info. ARGV: clientId, user, default
 * maxClients, since, node set, node set entry, bus, user_join message
 * before the presence version, after it, members cap, history bytes
 * cap, members bytes cap, cluster name, room, publish (1: the joiner
 * is not young), the node's old set. Returns -5 (full) or {seq,
 * complete, members, pv, {member...}, {chat...}}; pv 0: a member
 * already. */
static const char lua_join[] =
"local pv = 0\n"
"if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then\n"
"  local mx = tonumber(redis.call('HGET', KEYS[4], 'max') or '0')\n"
"  if mx == 0 then mx = tonumber(ARGV[3]) end\n"
"  if redis.call('HLEN', KEYS[1]) >= mx then return -5 end\n"
"  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])\n"
"  redis.call('SADD', ARGV[13]..':rooms', ARGV[14])\n"
"  local t = redis.call('TIME')\n"
"  redis.call('HSETNX', KEYS[4], 'created',\n"
"    tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))\n"
"  pv = redis.call('HINCRBY', KEYS[4], 'pv', 1)\n"
"  if ARGV[15] == '1' then\n"
"    redis.call('PUBLISH', ARGV[7], ARGV[8]..pv..ARGV[9]) end\n"
"end\n"
"redis.call('SADD', ARGV[5], ARGV[6])\n"
"redis.call('SREM', ARGV[16], ARGV[6])\n"
"local seq = tonumber(redis.call('GET', KEYS[3]) or '0')\n"
"local since = tonumber(ARGV[4])\n"
"if since > seq then since = 0 end\n"
"local h = redis.call('LRANGE', KEYS[2], 0, -1)\n"
"local first = seq - #h + 1\n"
"local from = since - first + 2\n"
"if from < 1 then from = 1 end\n"
"local complete = 0\n"
"if first <= since + 1 then complete = 1 end\n"
"local budget, lo = tonumber(ARGV[11]), #h + 1\n"
"while lo > from and budget >= #h[lo - 1] + 1 do\n"
"  budget = budget - #h[lo - 1] - 1; lo = lo - 1 end\n"
"if lo > from then complete = 0 end\n"
"local out = {}\n"
"for i = lo, #h do out[#out + 1] = h[i] end\n"
"local vals = redis.call('HVALS', KEYS[1])\n"
"local ms = {}\n"
"local mb = tonumber(ARGV[12])\n"
"for i = 1, math.min(#vals, tonumber(ARGV[10])) do\n"
"  if mb < #vals[i] + 1 then break end\n"
"  mb = mb - #vals[i] - 1; ms[i] = vals[i] end\n"
"return {seq, complete, #vals, pv, ms, out}\n";

/* KEYS: members, info. ARGV: clientId, user, node set, entry, old set,
 * cluster name, room, bus, user_join message before the presence
 * version, after it, publish (1/0). A membership registered again: if
 * Redis did not have it (joined while the link was down), the others
 * hear of it now. */
static const char lua_rejoin[] =
"redis.call('SADD', ARGV[3], ARGV[4])\n"
"redis.call('SREM', ARGV[5], ARGV[4])\n"
"redis.call('SADD', ARGV[6]..':rooms', ARGV[7])\n"
"local t = redis.call('TIME')\n"
"redis.call('HSETNX', KEYS[2], 'created',\n"
"  tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))\n"
"if redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) == 1 then\n"
"  local pv = redis.call('HINCRBY', KEYS[2], 'pv', 1)\n"
"  if ARGV[11] == '1' then\n"
"    redis.call('PUBLISH', ARGV[8], ARGV[9]..pv..ARGV[10]) end\n"
"end\n"
"return 0\n";

/* KEYS: members, history, seq, info. ARGV: clientId, node set, entry,
 * bus, node, room, whether the room is the default one, "PVJ HELD"
 * (the leaver's join version, and 1 if its user_join was held back),
 * cluster name, the node's old set. The user_leave frame is made here
 * from the member's entry, so a leave costs the link little (a node
 * closing many connections at once). */
static const char lua_leave[] =
"local u = redis.call('HGET', KEYS[1], ARGV[1])\n"
"redis.call('SREM', ARGV[2], ARGV[3])\n"
"redis.call('SREM', ARGV[10], ARGV[3])\n"
"if u then\n"
"  redis.call('HDEL', KEYS[1], ARGV[1])\n"
"  local pv = redis.call('HINCRBY', KEYS[4], 'pv', 1)\n"
"  local t = redis.call('TIME')\n"
"  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
"  redis.call('PUBLISH', ARGV[4], 'L '..ARGV[5]..' '..ARGV[8]..' '..pv..\n"
"    ' '..ARGV[6]..'\\n{\"type\":\"user_leave\",\"room\":'..\n"
"    cjson.encode(ARGV[6])..',\"user\":'..u..',\"timestamp\":'..now..'}')\n"
"  if redis.call('HLEN', KEYS[1]) == 0 and ARGV[7] == '0' and\n"
"      redis.call('HGET', KEYS[4], 'persistent') ~= '1' then\n"
"    redis.call('DEL', KEYS[2], KEYS[3], KEYS[4])\n"
"    redis.call('SREM', ARGV[9]..':rooms', ARGV[6]) end\n"
"end\n"
"return 0\n";

/* KEYS: members, info. ARGV: cluster name, room. getRoomInfo from
 * Redis: 0 if no node has the room, else {clients, maxClients,
 * persistent, createdAt}. */
static const char lua_info[] =
"if redis.call('SISMEMBER', ARGV[1]..':rooms', ARGV[2]) == 0 then\n"
"  return 0 end\n"
"local f = redis.call('HMGET', KEYS[2], 'max', 'persistent', 'created')\n"
"return {redis.call('HLEN', KEYS[1]), tonumber(f[1] or '0'),\n"
"  f[2] == '1' and 1 or 0, tonumber(f[3] or '0')}\n";

/* ARGV: cluster name, most entries, bytes. listRooms from Redis, in
 * name order: {rooms, "CLIENTS MAX PERSISTENT CREATED NAME"...}, fewer
 * entries than rooms when they would not fit. */
static const char lua_list[] =
"local n = ARGV[1]\n"
"local rs = redis.call('SMEMBERS', n..':rooms')\n"
"table.sort(rs)\n"
"local out, budget = {#rs}, tonumber(ARGV[3])\n"
"for i = 1, math.min(#rs, tonumber(ARGV[2])) do\n"
"  local k = '{'..n..':'..rs[i]..'}'\n"
"  local f = redis.call('HMGET', k..':info', 'max', 'persistent',\n"
"    'created')\n"
"  local e = redis.call('HLEN', k..':m')..' '..(f[1] or '0')..' '..\n"
"    (f[2] == '1' and 1 or 0)..' '..(f[3] or '0')..' '..rs[i]\n"
"  if budget < 2 * #e + 80 then break end\n"
"  budget = budget - 2 * #e - 80\n"
"  out[#out + 1] = e\n"
"end\n"
"return out\n";

/* KEYS: members, history, seq, info, NAME:rooms. ARGV: room. deleteRoom
 * in Redis: 1 if the cluster had the room. */
static const char lua_forget[] =
"if redis.call('SREM', KEYS[5], ARGV[1]) == 0 then return 0 end\n"
"redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4])\n"
"return 1\n";

/* ARGV: users hash, uid, bus, message. 1 if the user is on some node. */
static const char lua_priv[] =
"if tonumber(redis.call('HGET', ARGV[1], ARGV[2]) or '0') > 0 then\n"
"  redis.call('PUBLISH', ARGV[3], ARGV[4]) return 1 end\n"
"return 0\n";

enum { SC_REG, SC_BEAT, SC_DROP, SC_CHAT, SC_JOIN, SC_REJOIN, SC_LEAVE,
    SC_PRIV, SC_INFO, SC_LIST, SC_FORGET, SC_N };
static const char *const scripts[SC_N] = {
	lua_reg, lua_beat, lua_drop, lua_chat, lua_join, lua_rejoin,
	lua_leave, lua_priv, lua_info, lua_list, lua_forget
};
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
static int64_t retry_at, beat_at;
static int64_t backoff = 250;	/* ms before the next connect, up to 1 s */
static size_t resync;		/* next slot to register again */
static int quiet;		/* the observers stay silent (the scripts
				 * did their part already) */
static int loaded;		/* scripts Redis took on this link */
static int broken;		/* a reply says the link must start over */
/* The call another node sent that this node runs now (api_request):
 * "ORIGIN ID", and whether its answer comes later (deferred). */
static char rq_from[VKWS_NODE_ID_MAX + 16];
static size_t rq_from_len;
static int rq_deferred;

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
#define REQ_ENV 1024
_Static_assert(VKWS_MAX_OUT + REQ_ENV + 256 <= VKWS_REDIS_OUT,
    "a largest chat or forwarded API body is not refused for room");
_Static_assert(VKWS_REDIS_SUB_OUT >= 64 + VKWS_CLUSTER_NAME_MAX + 8,
    "SUBSCRIBE and the bus name fit");

/* What to do with a reply on the command link. */
enum { P_NONE = 0, P_CHAT, P_JOIN, P_PRIV, P_BEAT, P_HIST, P_LOAD, P_LEAVE,
    P_INFO, P_LIST, P_FORGET };
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

/* A server API call answered by other nodes: what came so far. */
enum { H_FORWARD, H_SUM, H_ANY, H_CONCAT };
struct held {
	uint8_t used;
	uint8_t mode;		/* H_*: how the answers combine */
	uint8_t keep;
	uint8_t any_ok;		/* some node answered code 0 */
	uint8_t own;		/* this node's own answer came */
	uint16_t slot;
	int fd;
	uint64_t requests;	/* the connection's count, for reuse */
	uint32_t id;
	unsigned expect, got;
	int64_t deadline;
	uint64_t sum;		/* delivered, or clients */
	size_t len;
	char buf[VKWS_API_OUT];	/* the combined reply so far */
};
static struct held held[VKWS_CLUSTER_HELD];
static uint32_t held_next;

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
	    sizeof(cmd_in) + sizeof(sub_out) + sizeof(sub_in) + sizeof(pend) + sizeof(vals) +
	    sizeof(leave_q) + sizeof(mpv) + sizeof(owed) +
	    sizeof(pend_text) +
	    sizeof(held) +
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
	size_t fn = member_frame("user_join", c, room, rn), k = 0;

	if (fn == 0 || 2 + rn + fn > sizeof(frame2))
		return 0;
	jhead_len = (size_t)snprintf(jhead, sizeof(jhead), "J %s ", cfg->node);
	frame2[k++] = ' ';
	memcpy(frame2 + k, room, rn);
	k += rn;
	frame2[k++] = '\n';
	memcpy(frame2 + k, frame, fn);
	return k + fn;
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

static int
owed_get(uint32_t node)
{
	return node != UINT32_MAX && (owed[node / 8] >> (node % 8) & 1) != 0;
}

static void
owed_put(uint32_t node, int v)
{
	if (node == UINT32_MAX)
		return;
	if (v)
		owed[node / 8] |= (uint8_t)(1u << (node % 8));
	else
		owed[node / 8] &= (uint8_t)~(1u << (node % 8));
}

/* Whether the other nodes have not been told of c's membership node
 * yet: its user_join is held back (PROTOCOL.md 8), or owed. */
static int
held_back(const struct conn *c, uint32_t node)
{
	return quiet_bit(c, node) || owed_get(node);
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
	if (owed_get(node) && !quiet_bit(c, node))
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
	char cid[VKWS_CLIENT_ID_MAX];
	size_t un, jn, en;

	if ((un = user_json(c)) == 0 || (jn = join_msg(c, room, rn)) == 0)
		return -1;
	room_keys(room, rn);
	en = member_entry(entry, c, room, rn);
	eval_begin(SC_JOIN, 4, 16);
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
	owed_put(node, 0);
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
	owed_put(node, 1);
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
	owed_put(node, 0);
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
	hb = hb || owed_get(node);
	owed_put(node, 0);

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
	if (!may_send(a.n + b.n + REQ_ENV))
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
vkws_cluster_api_join(struct conn *api, const char *cid, size_t cn,
    const char *room, size_t rn, int keep)
{
	struct conn *c = vkws_conn_by_id(cid, cn);
	struct held *h = NULL;
	struct room *r;
	struct pend *p;
	size_t i;
	int e;

	if (c == NULL || !c->authed)
		return VKWS_ENOTFOUND;
	if (!vkws_room_name_ok(room, rn))
		return VKWS_EINVAL;
	if ((e = vkws_join_check(c, room, rn, &r)) != 0)
		return e < 0 ? e : 0;	/* 1: a member already */
	if (api == NULL) {	/* for another node: answered on the bus */
		if (rq_from_len == 0)
			return VKWS_ESTORE;
		if ((e = join_send(c, room, rn, 0, rq_from, rq_from_len,
		    &p)) < 0)
			return e;
		p->api = A_REMOTE;
		rq_deferred = 1;
		return 1;
	}
	for (i = 0; i < VKWS_CLUSTER_HELD; i++)
		if (!held[i].used)
			h = &held[i];
	if (h == NULL)
		return VKWS_ESTORE;
	if ((e = join_send(c, room, rn, 0, "", 0, &p)) < 0)
		return e;
	p->api = A_HELD;
	p->hid = held_next;
	memset(h, 0, offsetof(struct held, buf));
	h->used = 1;
	h->mode = H_FORWARD;
	h->keep = (uint8_t)keep;
	h->slot = (uint16_t)vkws_slot_of(api);
	h->fd = api->fd;
	h->requests = api->requests;
	h->id = held_next++;
	h->expect = 1;
	/* The reply finishes it; the deadline only if the link dies. */
	h->deadline = vkws_now_ms() + VKWS_CLUSTER_WAIT_MS;
	return 1;
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
	size_t k = 0;

	if (!may_send(fn + REQ_ENV))
		return VKWS_ESTORE;
	if (3 + node_len + un + 1 + fn > sizeof(frame2))
		return VKWS_ELIMIT;
	frame2[k++] = 'U';
	frame2[k++] = ' ';
	memcpy(frame2 + k, cfg->node, node_len);
	k += node_len;
	frame2[k++] = ' ';
	memcpy(frame2 + k, uid, un);
	k += un;
	frame2[k++] = '\n';
	memcpy(frame2 + k, fr, fn);
	k += fn;
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

/* ---- Replies ---------------------------------------------------------- */

static uint64_t dec(const char *s, size_t n);
static void api_request(const char *origin, size_t olen, const char *id,
    size_t idn, const char *target, size_t tn, const char *body, size_t n);
static void api_answer_in(const char *id, size_t idn, const char *from,
    size_t fn, const char *r, size_t n);
static void history_done(const struct pend *p, const uint8_t *base,
    const struct resp_val *v, size_t nv);
static void info_done(const struct pend *p, const struct resp_val *v,
    size_t nv);
static void list_done(const struct pend *p, const uint8_t *base,
    const struct resp_val *v, size_t nv);
static void forget_done(const struct pend *p, const struct resp_val *v,
    size_t nv);
static void held_add(struct held *h, const char *r, size_t n);
static int held_commit_id(struct held *h, int kind, struct conn *c);
static void held_finish(struct held *h);
static void api_publish(const char *origin, size_t olen, const char *id,
    size_t idn, const char *out, size_t len);

/* The answer to a join: the chat client's ack, or the server API's
 * reply (to the call held here, or published to the node that asked). */
static void
join_answer(struct pend *p, int code)
{
	char out[96];
	const char *msg, *sp;
	struct json_out o;
	size_t i;

	if (p->api == A_CHAT) {
		pend_ack(p, code);
		return;
	}
	json_out_init(&o, out, sizeof(out));
	json_out_lit(&o, "{\"code\":");
	json_out_int(&o, code);
	if (code == 0) {
		json_out_lit(&o, ",\"data\":null}");
	} else {
		msg = code == VKWS_ESTORE ? "cluster unavailable" :
		    vkws_strerror(code);
		json_out_lit(&o, ",\"msg\":");
		json_out_str(&o, msg, strlen(msg));
		json_out_lit(&o, "}");
	}
	if (p->api == A_REMOTE) {
		sp = memchr(P_ID(p), ' ', p->id_len);
		if (sp != NULL)
			api_publish(P_ID(p), (size_t)(sp - P_ID(p)), sp + 1,
			    (size_t)(P_ID(p) + p->id_len - sp - 1), o.p, o.n);
		return;
	}
	for (i = 0; i < VKWS_CLUSTER_HELD; i++)
		if (held[i].used && held[i].id == p->hid) {
			held_add(&held[i], o.p, o.n);
			held_finish(&held[i]);
		}
}

/* A string value of a reply as (pointer, length). */
static const char *
val_str(const uint8_t *base, const struct resp_val *v, size_t *n)
{
	*n = v->len;
	return (const char *)base + v->off;
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
	uint32_t i, k, node;
	size_t sn, total;
	int complete;
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
	}
	complete = v[2].i != 0;
	total = (size_t)v[3].i;
	json_out_init(&o, frame, sizeof(frame));
	json_out_lit(&o, "{\"type\":\"user_list\",\"room\":");
	json_out_str(&o, P_ROOM(p), p->room_len);
	json_out_lit(&o, ",\"users\":[");
	o.cap -= 64;
	for (i = 6, k = 0; i < v[5].end; i = v[i].end, k++) {
		const char *s = val_str(base, &v[i], &sn);
		size_t mark = o.n;

		if (k > 0)
			json_out_lit(&o, ",");
		json_out_raw(&o, s, sn);
		if (!json_out_ok(&o)) {
			o.n = mark;
			o.err = 0;
			break;
		}
	}
	o.cap += 64;
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

	json_out_init(&o, frame, sizeof(frame));
	json_out_lit(&o, "{\"type\":\"history\",\"room\":");
	json_out_str(&o, P_ROOM(p), p->room_len);
	json_out_lit(&o, ",\"messages\":[");
	o.cap -= 32;
	for (i = v[5].end + 1, k = 0; i < v[v[5].end].end;
	    i = v[i].end, k++) {
		const char *s = val_str(base, &v[i], &sn);
		size_t mark = o.n;

		if (k > 0)
			json_out_lit(&o, ",");
		json_out_raw(&o, s, sn);
		if (!json_out_ok(&o)) {
			o.n = mark;
			o.err = 0;
			complete = 0;
			break;
		}
	}
	o.cap += 32;
	json_out_lit(&o, complete ? "],\"complete\":true}" :
	    "],\"complete\":false}");
	if (json_out_ok(&o))
		(void)vkws_deliver(c, o.p, o.n);
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
		vkws_log("redis: %.*s", (int)(n > 200 ? 200 : n), s);
		/* Scripts gone (SCRIPT FLUSH, a Redis still loading when
		 * they were sent): connect again, which loads them. */
		if (p->kind == P_LOAD || (n >= 8 && memcmp(s, "NOSCRIPT", 8) ==
		    0))
			broken = 1;
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
		history_done(p, base, v, nv);
		break;
	case P_INFO:	/* an error reply: -7 */
		info_done(p, v, err ? 0 : nv);
		break;
	case P_LIST:
		list_done(p, base, v, err ? 0 : nv);
		break;
	case P_FORGET:
		forget_done(p, v, err ? 0 : nv);
		break;
	default:
		break;
	}
	pend_release(p);
}

/* One field of a bus header: up to the next space (or newline). */
static int
field(const char *s, size_t n, size_t *off, const char **f, size_t *fn,
    char end)
{
	const char *e = memchr(s + *off, end, n - *off);

	if (e == NULL)
		return -1;
	*f = s + *off;
	*fn = (size_t)(e - *f);
	*off += *fn + 1;
	return 0;
}

static uint64_t
dec(const char *s, size_t n)
{
	uint64_t x = 0;
	size_t i;

	for (i = 0; i < n && i < 19; i++) {
		if (s[i] < '0' || s[i] > '9')
			return 0;
		x = x * 10 + (uint64_t)(s[i] - '0');
	}
	return x;
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

	return m == 0 || ((w->lo == 0 || m > w->lo) &&
	    (w->hi == 0 || m < w->hi));
}

/*
 * A bus message: "C NODE TAG SEQ ROOM\n" chat, "J NODE PV ROOM\n"
 * user_join, "L NODE PVJ HELD PV ROOM\n" user_leave, "U NODE UID\n"
 * private; the frame follows the newline and goes to this node's
 * connections. A user_join goes to the members that joined before it
 * (the later ones saw the joiner in their user_list); a user_leave to
 * those that joined before it and, if the leaver's user_join was held
 * back (PROTOCOL.md 8), after the leaver: only they knew of it.
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
	case 'U':
		if (field(s, n, &off, &a, &an, '\n') < 0)
			return;
		(void)vkws_send_to_user(a, an, s + off, n - off);
		break;
	case 'Q':
		if (field(s, n, &off, &a, &an, ' ') < 0 ||
		    field(s, n, &off, &b, &bn, '\n') < 0)
			return;
		api_request(nd, ndn, a, an, b, bn, s + off, n - off);
		break;
	case 'R':
		if (!mine || field(s, n, &off, &a, &an, ' ') < 0 ||
		    field(s, n, &off, &b, &bn, '\n') < 0)
			return;
		api_answer_in(a, an, b, bn, s + off, n - off);
		break;
	default:
		break;
	}
}


/* ---- The server API across nodes -------------------------------------- */

/* How a method's answers combine, and whether it goes to every node. */
static const struct {
	const char *name;
	uint8_t mode;
} api_modes[] = {
	{ "sendToClient", H_FORWARD }, { "disconnect", H_FORWARD },
	{ "setClientData", H_FORWARD }, { "getClientData", H_FORWARD },
	{ "joinRoom", H_FORWARD }, { "leaveRoom", H_FORWARD },
	{ "leaveAllRooms", H_FORWARD }, { "getConnectionInfo", H_FORWARD },
	{ "broadcastToAll", H_SUM }, { "broadcastToRoom", H_SUM },
	{ "broadcastToRooms", H_SUM }, { "sendToUser", H_SUM },
	{ "disconnectAll", H_SUM }, { "deleteRoom", H_ANY },
	{ "getAllConnections", H_CONCAT },
	{ "getActiveConnections", H_CONCAT },
	{ "getRoomClients", H_CONCAT },
};

/* The code of a reply {"code":N,...} (api.c writes code first). */
static int
reply_code(const char *r, size_t n)
{
	int64_t x = 0;
	size_t k = 8;
	int neg = 0;

	if (n < 10 || memcmp(r, "{\"code\":", 8) != 0)
		return VKWS_ESTORE;
	if (r[k] == '-') {
		neg = 1;
		k++;
	}
	while (k < n && r[k] >= '0' && r[k] <= '9' && x < 1000)
		x = x * 10 + (r[k++] - '0');
	return (int)(neg ? -x : x);
}

/* The number after the first "key": in r (our own encoding, where a
 * key's quotes cannot occur inside a string: they would be escaped). */
static uint64_t
reply_num(const char *r, size_t n, const char *key)
{
	size_t kn = strlen(key), k;

	for (k = 0; k + kn < n; k++)
		if (memcmp(r + k, key, kn) == 0) {
			uint64_t x = 0;
			size_t i = k + kn;
			while (i < n && i < k + kn + 19 && r[i] >= '0' &&
			    r[i] <= '9')
				x = x * 10 + (uint64_t)(r[i++] - '0');
			return x;
		}
	return 0;
}

/* Append p[0..n) to h's reply; 0, or -1 when it does not fit. */
static int
held_put(struct held *h, const char *p, size_t n)
{
	if (sizeof(h->buf) - h->len < n)
		return -1;
	memcpy(h->buf + h->len, p, n);
	h->len += n;
	return 0;
}

/* One node's answer r[0..n) to h. */
static void
held_add(struct held *h, const char *r, size_t n)
{
	int code = reply_code(r, n);
	const char *a, *e;

	h->got++;
	if (code != 0) {
		/* An error is the answer only if no node says 0: keep the
		 * first one while nothing else is kept. */
		if (!h->any_ok && h->len == 0)
			(void)held_put(h, r, n);
		return;
	}
	if (!h->any_ok)
		h->len = 0;
	switch (h->mode) {
	case H_FORWARD:
	case H_ANY:
		if (!h->any_ok)
			(void)held_put(h, r, n);
		break;
	case H_SUM:
		h->sum += reply_num(r, n, "\"delivered\":");
		break;
	case H_CONCAT:
		/* {"code":0,"data":[...]}: the elements inside [ ]. */
		a = memchr(r, '[', n);
		e = n >= 2 ? r + n - 2 : r;
		if (a == NULL || *e != ']' || e <= a + 1)
			break;
		if (h->len > 0)
			(void)held_put(h, ",", 1);
		(void)held_put(h, a + 1, (size_t)(e - a - 1));
		break;
	default:
		break;
	}
	h->any_ok = 1;
}

/* Answer h with what came, and free it. */
static void
held_finish(struct held *h)
{
	static char out[VKWS_API_OUT];
	struct conn *c = &vkws_conns[h->slot];
	struct json_out o;

	h->used = 0;
	/* A node died or stopped mid-call (README: Cluster): the answer
	 * is what the others said, counted here. */
	if (h->mode != H_FORWARD && h->got < h->expect)
		vkws_count.cluster_partial++;
	if (c->state != S_HTTP || c->fd != h->fd || c->requests != h->requests)
		return;		/* the client went away */
	json_out_init(&o, out, sizeof(out));
	if (h->len == 0 && (!h->any_ok || h->mode == H_FORWARD ||
	    h->mode == H_ANY)) {
		/* Nothing usable came: the node named is gone (-3), or the
		 * answers did not (-7). */
		json_out_lit(&o, h->mode == H_FORWARD && !h->any_ok ?
		    "{\"code\":-3,\"msg\":\"not found\"}" :
		    "{\"code\":-7,\"msg\":\"cluster unavailable\"}");
	} else if (!h->any_ok || h->mode == H_FORWARD || h->mode == H_ANY) {
		json_out_raw(&o, h->buf, h->len);
	} else if (h->mode == H_SUM) {
		json_out_lit(&o, "{\"code\":0,\"data\":{\"delivered\":");
		json_out_uint(&o, h->sum);
		json_out_lit(&o, "}}");
	} else {
		json_out_lit(&o, "{\"code\":0,\"data\":[");
		json_out_raw(&o, h->buf, h->len);
		json_out_lit(&o, "]}");
	}
	if (!json_out_ok(&o)) {
		json_out_init(&o, out, sizeof(out));
		json_out_lit(&o, "{\"code\":-5,\"msg\":\"reply too large\"}");
	}
	vkws_api_reply(c, o.p, o.n, h->keep);
}

static void
held_timers(int64_t now, int64_t *next)
{
	size_t i;

	for (i = 0; i < VKWS_CLUSTER_HELD; i++) {
		if (!held[i].used)
			continue;
		if (now >= held[i].deadline)
			held_finish(&held[i]);
		else if (held[i].deadline < *next)
			*next = held[i].deadline;
	}
}

/*
 * deleteRoom of a room that may be in Redis only (persistent, and no
 * node has it any more): its keys go here too, and the call counts it
 * as one more answer, 0 if Redis had the room (forget_done()).
 */
static void
forget(struct held *h, struct conn *c, const char *room, size_t rn)
{
	char rk[VKWS_CLUSTER_NAME_MAX + 8];

	if ((rn == strlen(cfg->default_room) &&
	    memcmp(room, cfg->default_room, rn) == 0) || !may_send(1024))
		return;		/* -4 from every node; or the nodes only */
	room_keys(room, rn);
	eval_begin(SC_FORGET, 5, 1);
	args_room_keys();
	resp_enc_arg(&enc, rk, rooms_key(rk));
	resp_enc_arg(&enc, room, rn);
	if (held_commit_id(h, P_FORGET, c))
		h->expect++;
}

int
vkws_cluster_api(struct conn *c, const char *method, const char *body,
    size_t n, const char *cid, size_t cn, const char *room, size_t rn,
    int keep)
{
	struct held *h = NULL;
	size_t i, k = 0, tn;
	const char *target = "*";
	int mode = -1;

	for (i = 0; i < sizeof(api_modes) / sizeof(api_modes[0]); i++)
		if (strcmp(api_modes[i].name, method) == 0)
			mode = api_modes[i].mode;
	if (mode < 0)
		return 0;
	if (mode == H_FORWARD) {
		/* "NODE-hex": this node's own, or one that names no node,
		 * is answered here. */
		const char *dash = cn > 0 ? memchr(cid, '-', cn) : NULL;
		if (dash == NULL || ((size_t)(dash - cid) == node_len &&
		    memcmp(cid, cfg->node, node_len) == 0))
			return 0;
		target = cid;
		tn = (size_t)(dash - cid);
	} else
		tn = 1;
	for (i = 0; i < VKWS_CLUSTER_HELD; i++)
		if (!held[i].used)
			h = &held[i];
	if (h == NULL || !may_send(n + REQ_ENV) ||
	    4 + node_len + 12 + tn + 1 + n > sizeof(frame2))
		return VKWS_ESTORE;
	/* "Q ORIGIN ID TARGET\n" and the call as it came. */
	k = (size_t)snprintf(frame2, sizeof(frame2), "Q %s %u ", cfg->node,
	    (unsigned)held_next);
	memcpy(frame2 + k, target, tn);
	k += tn;
	frame2[k++] = '\n';
	memcpy(frame2 + k, body, n);
	k += n;
	req_begin(3);
	resp_enc_str(&enc, "PUBLISH");
	resp_enc_arg(&enc, bus, bus_len);
	resp_enc_arg(&enc, frame2, k);
	if (req_commit(P_NONE) == NULL)
		return VKWS_ESTORE;
	vkws_count.cluster_published++;
	memset(h, 0, offsetof(struct held, buf));
	h->used = 1;
	h->mode = (uint8_t)mode;
	h->keep = (uint8_t)keep;
	h->slot = (uint16_t)vkws_slot_of(c);
	h->fd = c->fd;
	h->requests = c->requests;
	h->id = held_next++;
	h->expect = mode == H_FORWARD || vkws_count.cluster_nodes == 0 ? 1 :
	    (unsigned)vkws_count.cluster_nodes;
	h->deadline = vkws_now_ms() + VKWS_CLUSTER_WAIT_MS;
	if (strcmp(method, "deleteRoom") == 0 && rn > 0)
		forget(h, c, room, rn);
	return 1;
}

int
vkws_cluster_history(struct conn *c, const char *room, size_t rn,
    uint32_t limit, int here, int keep)
{
	struct held *h = NULL;
	struct pend *p;
	size_t i;

	for (i = 0; i < VKWS_CLUSTER_HELD; i++)
		if (!held[i].used)
			h = &held[i];
	if (h == NULL || !may_send(1024))
		return VKWS_ESTORE;
	room_keys(room, rn);
	req_begin(4);
	resp_enc_str(&enc, "LRANGE");
	resp_enc_arg(&enc, k_h, k_h_n);
	resp_enc_i64(&enc, limit > 0 ? -(int64_t)limit : 0);
	resp_enc_str(&enc, "-1");
	if ((p = req_commit(P_HIST)) == NULL)
		return VKWS_ESTORE;
	memset(h, 0, offsetof(struct held, buf));
	h->used = 1;
	h->mode = H_FORWARD;
	h->keep = (uint8_t)keep;
	h->any_ok = (uint8_t)here;	/* [] rather than -3 */
	h->slot = (uint16_t)vkws_slot_of(c);
	h->fd = c->fd;
	h->requests = c->requests;
	h->id = held_next++;
	h->expect = 1;
	/* The reply finishes it; the deadline only if the link dies. */
	h->deadline = vkws_now_ms() + VKWS_CLUSTER_WAIT_MS;
	p->cid = h->id;
	return 1;
}

/* A held call answered by one reply of Redis (c the /api connection):
 * a free entry set up, or NULL. */
static struct held *
held_one(struct conn *c, int keep)
{
	struct held *h = NULL;
	size_t i;

	for (i = 0; i < VKWS_CLUSTER_HELD; i++)
		if (!held[i].used)
			h = &held[i];
	if (h == NULL)
		return NULL;
	memset(h, 0, offsetof(struct held, buf));
	h->mode = H_FORWARD;
	h->keep = (uint8_t)keep;
	h->slot = (uint16_t)vkws_slot_of(c);
	h->fd = c->fd;
	h->requests = c->requests;
	h->expect = 1;
	h->any_ok = 1;	/* nothing by the deadline: -7, not -3 */
	/* The reply finishes it; the deadline only if the link dies. */
	h->deadline = vkws_now_ms() + VKWS_CLUSTER_WAIT_MS;
	return h;
}

/* Commit the request begun for h: its entry names h (and keeps the
 * room's name); 1, or VKWS_ESTORE (nothing sent, h stays free). */
static int
held_commit(struct held *h, int kind, struct conn *c, const char *room,
    size_t rn)
{
	struct pend *p = req_commit_for(kind, c, "", 0, room, rn);

	if (p == NULL)
		return VKWS_ESTORE;
	h->used = 1;
	h->id = held_next++;
	p->cid = h->id;
	return 1;
}

/* The same for a call held already (h used): 1 if sent, else 0. */
static int
held_commit_id(struct held *h, int kind, struct conn *c)
{
	struct pend *p = req_commit_for(kind, c, "", 0, "", 0);

	if (p == NULL)
		return 0;
	p->cid = h->id;
	return 1;
}

int
vkws_cluster_room_info(struct conn *c, const char *room, size_t rn,
    int keep)
{
	struct held *h = held_one(c, keep);

	if (h == NULL || !may_send(1024))
		return VKWS_ESTORE;
	room_keys(room, rn);
	eval_begin(SC_INFO, 2, 2);
	resp_enc_arg(&enc, k_m, k_m_n);
	resp_enc_arg(&enc, k_info, k_info_n);
	resp_enc_arg(&enc, cfg->cluster, name_len);
	resp_enc_arg(&enc, room, rn);
	return held_commit(h, P_INFO, c, room, rn);
}

int
vkws_cluster_list_rooms(struct conn *c, int keep)
{
	struct held *h = held_one(c, keep);

	if (h == NULL || !may_send(1024))
		return VKWS_ESTORE;
	eval_begin(SC_LIST, 0, 3);
	resp_enc_arg(&enc, cfg->cluster, name_len);
	resp_enc_u64(&enc, VKWS_CLUSTER_ROOMS_MAX);
	resp_enc_u64(&enc, VKWS_CLUSTER_LIST_BYTES);
	return held_commit(h, P_LIST, c, "", 0);
}

/* The held call a reply is for, or NULL (answered at its deadline). */
static struct held *
held_of(const struct pend *p)
{
	size_t i;

	for (i = 0; i < VKWS_CLUSTER_HELD; i++)
		if (held[i].used && held[i].id == p->cid)
			return &held[i];
	return NULL;
}

/* One room info object, as api.c writes it. */
static void
out_info(struct json_out *o, const char *room, size_t rn, uint64_t clients,
    uint64_t max, int persistent, int64_t created)
{
	json_out_lit(o, "{\"room\":");
	json_out_str(o, room, rn);
	json_out_lit(o, ",\"clients\":");
	json_out_uint(o, clients);
	json_out_lit(o, ",\"maxClients\":");
	json_out_uint(o, max);
	json_out_lit(o, ",\"persistent\":");
	json_out_lit(o, persistent ? "true" : "false");
	json_out_lit(o, ",\"createdAt\":");
	json_out_int(o, created);
	json_out_lit(o, "}");
}

/* lua_forget's answer: one more answer to the held deleteRoom. */
static void
forget_done(const struct pend *p, const struct resp_val *v, size_t nv)
{
	static const char ok[] = "{\"code\":0,\"data\":null}";
	static const char none[] = "{\"code\":-3,\"msg\":\"not found\"}";
	struct held *h = held_of(p);
	int had = nv == 1 && v[0].type == RESP_INT && v[0].i == 1;

	if (h == NULL)
		return;
	held_add(h, had ? ok : none, had ? sizeof(ok) - 1 : sizeof(none) - 1);
	if (h->got >= h->expect && h->own)
		held_finish(h);
}

/* lua_info's answer: {clients, max, persistent, created}, or 0. */
static void
info_done(const struct pend *p, const struct resp_val *v, size_t nv)
{
	struct held *h = held_of(p);
	struct json_out o;

	if (h == NULL)
		return;
	h->len = 0;
	if (nv == 1 && v[0].type == RESP_INT && v[0].i == 0)
		h->any_ok = 0;	/* no node has it: -3 */
	else if (nv == 5 && v[0].type == RESP_ARRAY && v[0].len == 4) {
		json_out_init(&o, h->buf, sizeof(h->buf));
		json_out_lit(&o, "{\"code\":0,\"data\":");
		out_info(&o, P_ROOM(p), p->room_len, (uint64_t)v[1].i,
		    (uint64_t)v[2].i, v[3].i != 0, v[4].i);
		json_out_lit(&o, "}");
		h->len = json_out_ok(&o) ? o.n : 0;
	}
	held_finish(h);
}

/* lua_list's answer: {rooms, "CLIENTS MAX PERSISTENT CREATED NAME"...};
 * fewer entries than rooms: too large a reply (-5, never cut). */
static void
list_done(const struct pend *p, const uint8_t *base,
    const struct resp_val *v, size_t nv)
{
	struct held *h = held_of(p);
	struct json_out o;
	uint32_t i, k;

	if (h == NULL)
		return;
	json_out_init(&o, h->buf, sizeof(h->buf));
	if (nv < 2 || v[0].type != RESP_ARRAY || v[1].type != RESP_INT) {
		h->len = 0;	/* -7 */
		held_finish(h);
		return;
	}
	json_out_lit(&o, "{\"code\":0,\"data\":[");
	for (i = 2, k = 0; i < v[0].end && i < nv; i = v[i].end, k++) {
		const char *e = (const char *)base + v[i].off, *f[4];
		size_t n = v[i].len, fl[4], off = 0, j;

		for (j = 0; j < 4; j++)
			if (field(e, n, &off, &f[j], &fl[j], ' ') < 0)
				break;
		if (j < 4 || v[i].type != RESP_BULK)
			continue;
		if (k > 0)
			json_out_lit(&o, ",");
		out_info(&o, e + off, n - off, dec(f[0], fl[0]), dec(f[1], fl[1]),
		    fl[2] == 1 && f[2][0] == '1', (int64_t)dec(f[3], fl[3]));
	}
	json_out_lit(&o, "]}");
	if (!json_out_ok(&o) || (uint64_t)v[1].i > k) {
		json_out_init(&o, h->buf, sizeof(h->buf));
		json_out_lit(&o, "{\"code\":-5,\"msg\":\"reply too large\"}");
	}
	h->len = o.n;
	held_finish(h);
}

/* LRANGE's answer for a held getRoomHistory. */
static void
history_done(const struct pend *p, const uint8_t *base,
    const struct resp_val *v, size_t nv)
{
	struct held *h = NULL;
	struct json_out o;
	uint32_t i, k;
	size_t i2;

	for (i2 = 0; i2 < VKWS_CLUSTER_HELD; i2++)
		if (held[i2].used && held[i2].id == p->cid)
			h = &held[i2];
	if (h == NULL || nv < 1 || v[0].type != RESP_ARRAY)
		return;		/* gone, or answered -7 at its deadline */
	if (v[0].len == 0 && !h->any_ok) {
		h->len = 0;	/* no such room anywhere */
		held_finish(h);
		return;
	}
	json_out_init(&o, h->buf, sizeof(h->buf));
	json_out_lit(&o, "{\"code\":0,\"data\":[");
	for (i = 1, k = 0; i < v[0].end; i = v[i].end, k++) {
		if (k > 0)
			json_out_lit(&o, ",");
		json_out_raw(&o, (const char *)base + v[i].off, v[i].len);
	}
	json_out_lit(&o, "]}");
	if (json_out_ok(&o)) {
		h->len = o.n;
		h->any_ok = 1;
	} else
		h->len = 0;
	held_finish(h);
}

/* Publish the answer out[0..len) "R ORIGIN ID NODE\nREPLY" to a call
 * another node sent. */
static void
api_publish(const char *origin, size_t olen, const char *id, size_t idn,
    const char *out, size_t len)
{
	size_t k = 0;

	if (olen + idn + node_len + 8 + len > sizeof(frame2) ||
	    !may_send(len + olen + 256))
		return;		/* the origin answers at its deadline */
	frame2[k++] = 'R';
	frame2[k++] = ' ';
	memcpy(frame2 + k, origin, olen);
	k += olen;
	frame2[k++] = ' ';
	memcpy(frame2 + k, id, idn);
	k += idn;
	frame2[k++] = ' ';
	memcpy(frame2 + k, cfg->node, node_len);
	k += node_len;
	frame2[k++] = '\n';
	memcpy(frame2 + k, out, len);
	k += len;
	req_begin(3);
	resp_enc_str(&enc, "PUBLISH");
	resp_enc_arg(&enc, bus, bus_len);
	resp_enc_arg(&enc, frame2, k);
	(void)req_commit(P_NONE);
}

/* "Q ORIGIN ID TARGET\nBODY": run it here if it is for this node, and
 * publish the answer, now or (a joinRoom: after Redis) later. */
static void
api_request(const char *origin, size_t olen, const char *id, size_t idn,
    const char *target, size_t tn, const char *body, size_t n)
{
	const char *out;
	size_t len;

	if (!(tn == 1 && target[0] == '*') && !(tn == node_len &&
	    memcmp(target, cfg->node, tn) == 0))
		return;
	rq_from_len = 0;
	if (olen + 1 + idn <= sizeof(rq_from)) {
		memcpy(rq_from, origin, olen);
		rq_from[olen] = ' ';
		memcpy(rq_from + olen + 1, id, idn);
		rq_from_len = olen + 1 + idn;
	}
	rq_deferred = 0;
	len = vkws_api_run(body, n, &out);
	rq_from_len = 0;
	if (!rq_deferred)
		api_publish(origin, olen, id, idn, out, len);
}

/* "R ORIGIN ID NODE\nREPLY" for a call this node holds. */
static void
api_answer_in(const char *id, size_t idn, const char *from, size_t fn,
    const char *r, size_t n)
{
	uint32_t want = (uint32_t)dec(id, idn);
	size_t i;

	for (i = 0; i < VKWS_CLUSTER_HELD; i++) {
		struct held *h = &held[i];
		if (!h->used || h->id != want)
			continue;
		held_add(h, r, n);
		if (fn == node_len && memcmp(from, cfg->node, fn) == 0)
			h->own = 1;
		/* The node count is a heartbeat old: a call to every node
		 * also waits for this node's own answer, which always comes. */
		if (h->got >= h->expect && (h->own || h->mode == H_FORWARD))
			held_finish(h);
		return;
	}
}

/* A reply or push on the subscription link. */
static void
sub_reply(const uint8_t *base, const struct resp_val *v, size_t nv)
{
	size_t n;
	const char *s;

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

/* Open both links and queue what each says first: the scripts and the
 * node's registration; the bus subscription. */
static void
links_connect(void)
{
	int i;

	if (link_open(&cmd) < 0 || link_open(&sub) < 0) {
		link_down("connect");
		return;
	}
	for (i = 0; i < SC_N; i++) {
		req_begin(3);
		resp_enc_str(&enc, "SCRIPT");
		resp_enc_str(&enc, "LOAD");
		resp_enc_str(&enc, scripts[i]);
		(void)req_commit(P_LOAD);
	}
	eval_begin(SC_REG, 0, 5);
	script_common_args();
	resp_enc_str(&enc, new_life ? "1" : "0");
	(void)req_commit(P_BEAT);
	resp_enc_begin(&enc, sub.out, sub.out_cap, 2);
	resp_enc_str(&enc, "SUBSCRIBE");
	resp_enc_arg(&enc, bus, bus_len);
	sub.olen = (size_t)resp_enc_end(&enc);
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

/* Read what came and act on every whole reply. */
static int
link_read(struct rlink *l)
{
	ssize_t r;
	size_t off = 0, nv;
	long n;

	r = recv(l->fd, l->in + l->ilen, l->in_cap - l->ilen, 0);
	if (r == 0)
		return -1;
	if (r < 0)
		return errno == EAGAIN || errno == EINTR ? 0 : -1;
	l->ilen += (size_t)r;
	while (off < l->ilen) {
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
	held_timers(now, next);
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
		    POLLIN | (l->olen > 0 ? POLLOUT : 0));
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
	if (c->redis[0] == '\0')
		return 0;
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
		hex_sha1(scripts[i], sha[i]);
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
