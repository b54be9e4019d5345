/*
 * cluster_lua.c: the Lua scripts of cluster mode (PROTOCOL.md 9), the
 * part of each cluster operation that must be atomic in Redis: a chat's
 * seq, history append and publish; a join's maxClients check; a node's
 * registration and a dead node's sweep; the reads of rooms across nodes.
 * cluster.c loads them (SCRIPT LOAD) and runs them by their SHA-1
 * (EVALSHA); their KEYS and ARGV are told above each one. This file is
 * text only: no code runs here, no I/O, no state.
 */
#include "cluster_int.h"

/*
 * Presence versions: every change of a room's members (a join, a leave,
 * a sweep) takes the next number of the room's "pv" (in :info), and its
 * bus message carries it. A node keeps the version of each of its
 * memberships (mpv[] in cluster.c), so it gives a user_join or
 * user_leave only to the members that joined before the change and so
 * did not see it in their user_list: what PROTOCOL.md 8 holds back
 * stays consistent on every node.
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
 * is not young), the node's old set, the join's marker (published
 * last, so the node knows which bus messages ran before the join and
 * which after; empty: none). Returns -5 (full) or {seq, complete,
 * members, pv, {member...}, {chat...}}; pv 0: a member already. */
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
"if ARGV[17] ~= '' then redis.call('PUBLISH', ARGV[7], ARGV[17]) end\n"
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

/* In the order of the SC_* numbers (cluster_int.h). */
const char *const vkws_cl_scripts[SC_N] = {
	lua_reg, lua_beat, lua_drop, lua_chat, lua_join, lua_rejoin,
	lua_leave, lua_priv, lua_info, lua_list, lua_forget
};

