/*
 * cluster_api.c: the server API across the nodes of a cluster (README:
 * Cluster). A call that names a client of another node goes to that
 * node, one that concerns every client (broadcastToAll, disconnectAll,
 * getAllConnections, ...) to every node, on the bus as "Q ORIGIN ID
 * TARGET\nBODY"; each node runs it with api.c's vkws_api_run() and
 * publishes "R ORIGIN ID NODE\nREPLY". The HTTP reply is held here in a
 * static table until the answers came (summed, concatenated or the
 * first that says 0) or the deadline passed. The reads of Redis for the
 * server API (getRoomHistory, getRoomInfo, listRooms, deleteRoom of a
 * room only Redis has) are held the same way. This file never touches
 * a socket or Redis: it asks cluster.c's link for its requests and is
 * told their replies; it never allocates.
 */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "vkws.h"
#include "core.h"
#include "json.h"
#include "resp.h"
#include "cluster.h"
#include "cluster_int.h"

/* The call another node sent that this node runs now
 * (vkws_cl_api_request): "ORIGIN ID", and whether its answer comes
 * later (deferred). */
static char rq_from[VKWS_NODE_ID_MAX + 16];
static size_t rq_from_len;
static int rq_deferred;

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

size_t
vkws_cl_api_static_size(void)
{
	return sizeof(held);
}

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

void
vkws_cl_held_timers(int64_t now, int64_t *next)
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

/* A free entry, or NULL. */
static struct held *
held_free(void)
{
	struct held *h = NULL;
	size_t i;

	for (i = 0; i < VKWS_CLUSTER_HELD; i++)
		if (!held[i].used)
			h = &held[i];
	return h;
}

/* Set h up for a call of the /api connection c answered in mode; its
 * id is the next (the request naming it went out already). */
static void
held_start(struct held *h, struct conn *c, int mode, int keep)
{
	memset(h, 0, offsetof(struct held, buf));
	h->used = 1;
	h->mode = (uint8_t)mode;
	h->keep = (uint8_t)keep;
	h->slot = (uint16_t)vkws_slot_of(c);
	h->fd = c->fd;
	h->requests = c->requests;
	h->id = held_next++;
	h->expect = 1;
	/* A call to every node sets expect after; one answered by a
	 * reply of Redis: that reply finishes it, the deadline only if
	 * the link dies. */
	h->deadline = vkws_now_ms() + VKWS_CLUSTER_WAIT_MS;
}

/* The held call a reply is for, or NULL (answered at its deadline). */
static struct held *
held_of(uint32_t hid)
{
	size_t i;

	for (i = 0; i < VKWS_CLUSTER_HELD; i++)
		if (held[i].used && held[i].id == hid)
			return &held[i];
	return NULL;
}

/* Publish the answer out[0..len) "R ORIGIN ID NODE\nREPLY" to a call
 * another node sent. */
static void
api_publish(const char *origin, size_t olen, const char *id, size_t idn,
    const char *out, size_t len)
{
	const char *node = vkws_cluster_node();
	const char *f[3] = { origin, id, node };
	size_t fl[3] = { olen, idn, strlen(node) };

	if (olen + idn + fl[2] + 8 + len > VKWS_MAX_OUT ||
	    !vkws_cl_may_send(len + olen + 256))
		return;		/* the origin answers at its deadline */
	(void)vkws_cl_publish('R', f, fl, 3, out, len);
}

/*
 * deleteRoom of a room that may be in Redis only (persistent, and no
 * node has it any more): its keys go there too, and the call counts it
 * as one more answer, 0 if Redis had the room (vkws_cl_forget_done()).
 */
static void
forget(struct held *h, struct conn *c, const char *room, size_t rn)
{
	if (vkws_cl_req_forget(c, room, rn, h->id) == 0)
		h->expect++;
}

int
vkws_cluster_api(struct conn *c, const char *method, const char *body,
    size_t n, const char *cid, size_t cn, const char *room, size_t rn,
    int keep)
{
	const char *node = vkws_cluster_node(), *target = "*", *f[3];
	size_t i, tn, fl[3], node_len = strlen(node);
	char id[16];
	struct held *h;
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
		    memcmp(cid, node, node_len) == 0))
			return 0;
		target = cid;
		tn = (size_t)(dash - cid);
	} else
		tn = 1;
	h = held_free();
	if (h == NULL || !vkws_cl_may_send(n + VKWS_CL_REQ_ENV) ||
	    4 + node_len + 12 + tn + 1 + n > VKWS_MAX_OUT)
		return VKWS_ESTORE;
	/* "Q ORIGIN ID TARGET\n" and the call as it came. */
	f[0] = node;
	fl[0] = node_len;
	f[1] = id;
	fl[1] = (size_t)snprintf(id, sizeof(id), "%u", (unsigned)held_next);
	f[2] = target;
	fl[2] = tn;
	if (vkws_cl_publish('Q', f, fl, 3, body, n) < 0)
		return VKWS_ESTORE;
	vkws_count.cluster_published++;
	held_start(h, c, mode, keep);
	if (mode != H_FORWARD && vkws_count.cluster_nodes != 0)
		h->expect = (unsigned)vkws_count.cluster_nodes;
	if (strcmp(method, "deleteRoom") == 0 && rn > 0)
		forget(h, c, room, rn);
	return 1;
}

int
vkws_cluster_api_join(struct conn *api, const char *cid, size_t cn,
    const char *room, size_t rn, int keep)
{
	struct conn *c = vkws_conn_by_id(cid, cn);
	struct held *h;
	struct room *r;
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
		if ((e = vkws_cl_req_join(c, room, rn, rq_from, rq_from_len,
		    0)) < 0)
			return e;
		rq_deferred = 1;
		return 1;
	}
	if ((h = held_free()) == NULL)
		return VKWS_ESTORE;
	if ((e = vkws_cl_req_join(c, room, rn, "", 0, held_next)) < 0)
		return e;
	held_start(h, api, H_FORWARD, keep);
	return 1;
}

/* The answer code of a join the link sent for the server API: the
 * reply of the call held here (hid), or published to the node that
 * asked (from[0..fn) "ORIGIN ID"; fn 0: held here). */
void
vkws_cl_join_answer(uint32_t hid, const char *from, size_t fn, int code)
{
	char out[96];
	const char *msg, *sp;
	struct json_out o;
	struct held *h;

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
	if (fn > 0) {
		sp = memchr(from, ' ', fn);
		if (sp != NULL)
			api_publish(from, (size_t)(sp - from), sp + 1,
			    (size_t)(from + fn - sp - 1), o.p, o.n);
		return;
	}
	if ((h = held_of(hid)) != NULL) {
		held_add(h, o.p, o.n);
		held_finish(h);
	}
}

int
vkws_cluster_history(struct conn *c, const char *room, size_t rn,
    uint32_t limit, int here, int keep)
{
	struct held *h = held_free();

	if (h == NULL || vkws_cl_req_history(room, rn, limit, held_next) < 0)
		return VKWS_ESTORE;
	held_start(h, c, H_FORWARD, keep);
	h->any_ok = (uint8_t)here;	/* [] rather than -3 */
	return 1;
}

/* Set h up for a call of c answered by one reply of Redis, its
 * request sent: 1 (held). */
static int
held_read(struct held *h, struct conn *c, int keep)
{
	held_start(h, c, H_FORWARD, keep);
	h->any_ok = 1;	/* nothing by the deadline: -7, not -3 */
	return 1;
}

int
vkws_cluster_room_info(struct conn *c, const char *room, size_t rn,
    int keep)
{
	struct held *h = held_free();

	if (h == NULL || vkws_cl_req_info(c, room, rn, held_next) < 0)
		return VKWS_ESTORE;
	return held_read(h, c, keep);
}

int
vkws_cluster_list_rooms(struct conn *c, int keep)
{
	struct held *h = held_free();

	if (h == NULL || vkws_cl_req_list(c, held_next) < 0)
		return VKWS_ESTORE;
	return held_read(h, c, keep);
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
void
vkws_cl_forget_done(uint32_t hid, const struct resp_val *v, size_t nv)
{
	static const char ok[] = "{\"code\":0,\"data\":null}";
	static const char none[] = "{\"code\":-3,\"msg\":\"not found\"}";
	struct held *h = held_of(hid);
	int had = nv == 1 && v[0].type == RESP_INT && v[0].i == 1;

	if (h == NULL)
		return;
	held_add(h, had ? ok : none, had ? sizeof(ok) - 1 : sizeof(none) - 1);
	if (h->got >= h->expect && h->own)
		held_finish(h);
}

/* lua_info's answer: {clients, max, persistent, created}, or 0. */
void
vkws_cl_info_done(uint32_t hid, const char *room, size_t rn,
    const struct resp_val *v, size_t nv)
{
	struct held *h = held_of(hid);
	struct json_out o;

	if (h == NULL)
		return;
	h->len = 0;
	if (nv == 1 && v[0].type == RESP_INT && v[0].i == 0)
		h->any_ok = 0;	/* no node has it: -3 */
	else if (nv == 5 && v[0].type == RESP_ARRAY && v[0].len == 4) {
		json_out_init(&o, h->buf, sizeof(h->buf));
		json_out_lit(&o, "{\"code\":0,\"data\":");
		out_info(&o, room, rn, (uint64_t)v[1].i,
		    (uint64_t)v[2].i, v[3].i != 0, v[4].i);
		json_out_lit(&o, "}");
		h->len = json_out_ok(&o) ? o.n : 0;
	}
	held_finish(h);
}

/* lua_list's answer: {rooms, "CLIENTS MAX PERSISTENT CREATED NAME"...};
 * fewer entries than rooms: too large a reply (-5, never cut). */
void
vkws_cl_list_done(uint32_t hid, const uint8_t *base,
    const struct resp_val *v, size_t nv)
{
	struct held *h = held_of(hid);
	struct json_out o;
	uint32_t i, k, out = 0;

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
			continue;	/* not an entry of ours: left out */
		if (out++ > 0)
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
void
vkws_cl_history_done(uint32_t hid, const uint8_t *base,
    const struct resp_val *v, size_t nv)
{
	struct held *h = held_of(hid);
	struct json_out o;
	uint32_t i, k;

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

/* "Q ORIGIN ID TARGET\nBODY": run it here if it is for this node, and
 * publish the answer, now or (a joinRoom: after Redis) later. */
void
vkws_cl_api_request(const char *origin, size_t olen, const char *id,
    size_t idn, const char *target, size_t tn, const char *body, size_t n)
{
	const char *out, *node = vkws_cluster_node();
	size_t len, node_len = strlen(node);

	if (!(tn == 1 && target[0] == '*') && !(tn == node_len &&
	    memcmp(target, node, tn) == 0))
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
void
vkws_cl_api_answer(const char *id, size_t idn, const char *from, size_t fn,
    const char *r, size_t n)
{
	uint32_t want = (uint32_t)dec(id, idn);
	const char *node = vkws_cluster_node();
	size_t i;

	for (i = 0; i < VKWS_CLUSTER_HELD; i++) {
		struct held *h = &held[i];
		if (!h->used || h->id != want)
			continue;
		held_add(h, r, n);
		if (fn == strlen(node) && memcmp(from, node, fn) == 0)
			h->own = 1;
		/* The node count is a heartbeat old: a call to every node
		 * also waits for this node's own answer, which always comes. */
		if (h->got >= h->expect && (h->own || h->mode == H_FORWARD))
			held_finish(h);
		return;
	}
}
