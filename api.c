/*
 * api.c: HTTP beside the WebSocket endpoints: the server API (POST /api,
 * PROTOCOL.md 4), /metrics, /healthz, the routing of every other path,
 * and SIGHUP. Every API method is a call into the vk.websocket C API of
 * vkws.h; nothing here touches a socket or another connection's state,
 * replies go through the core's queue functions (core.h).
 *
 * Memory: request bodies are read in place in the receive buffer when
 * they fit there, else into one of VKWS_API_BODIES static buffers; each
 * reply is encoded into one static buffer of VKWS_API_OUT bytes, and a
 * reply that does not fit is answered -5, never cut. No allocation.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "auth.h"
#include "cluster.h"
#include "core.h"
#include "json.h"
#include "store.h"

static struct vkws_config *cfg;
static int64_t t_start;		/* monotonic ms at start, for uptime */

/* An /api body too long for the receive buffer: owner is the slot that
 * reads into it. A buffer is taken while its owner is an HTTP slot that
 * names it in body_slot; conn_accept() clears body_slot, so a
 * connection that dies in the middle of a body frees its buffer too. */
struct body {
	uint16_t owner;
	uint8_t keep;		/* keep-alive after the reply */
	uint32_t len;		/* bytes read so far */
	char buf[VKWS_MAX_BODY];
};
static struct body bodies[VKWS_API_BODIES];
static jsmntok_t api_toks[VKWS_API_TOKENS];
static char api_out[VKWS_API_OUT];

static int
api_init(struct vkws_config *c)
{
	cfg = c;
	t_start = vkws_now_ms();
	if (vkws_cluster_init(c) < 0)
		return -1;
	return vkws_chat_init(c);
}

static void
api_stop(void)
{
	vkws_cluster_stop();
	vkws_store_close();
}

static size_t
api_static_size(void)
{
	return sizeof(bodies) + sizeof(api_toks) + sizeof(api_out) +
	    vkws_chat_static_size() +
	    vkws_cluster_static_size();	/* static either way */
}

/* Whether the peer is on loopback: 127.0.0.0/8 (IPv4-mapped) or ::1.
 * Not static: tests/test_loopback.c checks it with peers off loopback. */
int
vkws_is_loopback(const uint8_t ip[16])
{
	static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	    0xFF, 0xFF };
	static const uint8_t one[16] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	    0, 0, 0, 1 };

	if (memcmp(ip, mapped, 12) == 0)
		return ip[12] == 127;
	return memcmp(ip, one, 16) == 0;
}

/* ---- Request bodies ------------------------------------------------- */

/* What frames a request body (RFC 9112 6). */
enum {
	B_BAD = -1,	/* malformed or repeated Content-Length: 400 */
	B_CHUNKED = -2	/* Transfer-Encoding: 411, or 400 beside a length */
};

/*
 * The body length of r: its Content-Length, 0 without one (RFC 9112
 * 6.3: a request without either header has no body), or a B_* code.
 * Transfer-Encoding is not supported: the length must be known before
 * the body, to pick its buffer. A request with both headers is the
 * shape of request smuggling (RFC 9112 6.3 item 3) and is refused.
 */
static int64_t
body_length(const struct http_req *r, int *has_len)
{
	const struct http_header *te = http_header_get(r, "Transfer-Encoding");
	int64_t len = 0;
	size_t i, k, n = 0;

	*has_len = 0;
	for (i = 0; i < r->nheaders; i++) {
		const struct http_header *h = &r->headers[i];
		if (!http_str_ieq(h->name, "Content-Length"))
			continue;
		if (++n > 1 || h->value.n == 0 || h->value.n > 12)
			return B_BAD;
		for (k = 0; k < h->value.n; k++) {
			char ch = h->value.p[k];
			if (ch < '0' || ch > '9')
				return B_BAD;
			len = len * 10 + (ch - '0');
		}
		*has_len = 1;
	}
	if (te != NULL)
		return *has_len ? B_BAD : B_CHUNKED;
	return len;
}

/*
 * Skip a body the server does not read (the request was answered
 * without it): take what has arrived and let the core drop the rest as
 * it comes (body_need with no buffer). Returns whether the connection
 * may stay open: a body too long to be worth waiting for closes it.
 */
static int
skip_body(struct conn *c, int64_t len, size_t avail, size_t *used)
{
	if (len > VKWS_MAX_BODY)
		return 0;
	*used = (size_t)len < avail ? (size_t)len : avail;
	c->body_need = (uint32_t)((size_t)len - *used);
	c->body_slot = VKWS_NO_ROOM;
	return 1;
}

/* A free body buffer, or -1. */
static int
body_take(const struct conn *c)
{
	size_t i;

	for (i = 0; i < VKWS_API_BODIES; i++) {
		const struct conn *o = &vkws_conns[bodies[i].owner];
		if (o->state == S_HTTP && o->body_slot == i && o != c)
			continue;
		bodies[i].owner = (uint16_t)(c - vkws_conns);
		bodies[i].len = 0;
		return (int)i;
	}
	return -1;
}

/* ---- Replies -------------------------------------------------------- */

static const char json_type[] = "application/json; charset=utf-8";

/* The parameter a -2 is about, named in its msg. */
static const char *bad_param;
/* Cluster: the connection whose call api_call() runs (NULL
 * for a call another node sent), and whether the call went to other
 * nodes to be answered later (vkws_api_reply()). */
static struct conn *api_conn;
static int api_keep, api_held;

/*
 * What a call handed to the cluster came to: 1, it waits for other
 * nodes (the reply is held when a connection waits for it); a VKWS_E*
 * code (-7 is named "cluster unavailable"); 0, nothing left to wait for.
 * Returns e.
 */
static int
cluster_outcome(int e)
{
	if (e == 1)
		api_held = api_conn != NULL;
	else if (e < 0)
		bad_param = e == VKWS_ESTORE ? "cluster unavailable" : NULL;
	return e;
}
/* body_need while a call waits for other nodes: the connection reads no
 * further request until its answer is out. */
#define API_HELD UINT32_MAX

static int
bad(const char *name)
{
	bad_param = name;
	return VKWS_EINVAL;
}

/* ---- Parameters ----------------------------------------------------- */

/* One parsed request: the document and the index of its params object,
 * or -1 when it has none. */
struct call {
	struct json_doc d;
	int params;
};

/* The value of param name, or -1 if absent. */
static int
param(const struct call *q, const char *name)
{
	return q->params < 0 ? -1 : json_get(&q->d, q->params, name);
}

/* A string param unescaped into out[0..cap): its length, VKWS_EINVAL
 * if ill-typed or too long, VKWS_ENOTFOUND if absent and optional. */
static int
p_str(const struct call *q, const char *name, char *out, size_t cap,
    int required)
{
	int t = param(q, name), n;

	if (t < 0)
		return required ? bad(name) : VKWS_ENOTFOUND;
	if (!json_is_string(&q->d, t) || (n = json_string(&q->d, t, out,
	    cap)) < 0)
		return bad(name);
	return n;
}

/* A non-empty string param that must exist: clientId, userId. */
static int
p_id(const struct call *q, const char *name, char *out, size_t cap)
{
	int n = p_str(q, name, out, cap, 1);

	return n == 0 ? bad(name) : n;
}

static int
p_room(const struct call *q, char *out)
{
	int n = p_str(q, "room", out, VKWS_ROOM_NAME_MAX, 1);

	if (n >= 0 && !vkws_room_name_ok(out, (size_t)n))
		return bad("room");
	return n;
}

/* An integer param in [lo, hi] into *v; absent leaves *v alone and
 * returns VKWS_ENOTFOUND. */
static int
p_int(const struct call *q, const char *name, int64_t lo, int64_t hi,
    int64_t *v)
{
	int t = param(q, name);

	if (t < 0)
		return VKWS_ENOTFOUND;
	if (json_int(&q->d, t, v) < 0 || *v < lo || *v > hi)
		return bad(name);
	return 0;
}

/* The raw JSON text of param data: any value. */
static int
p_data(const struct call *q, const char **p, size_t *n)
{
	int t = param(q, "data");

	if (t < 0)
		return bad("data");
	*n = json_raw(&q->d, t, p);
	return 0;
}

/* ---- Output of rooms and connections --------------------------------- */

static void
out_bool(struct json_out *o, int v)
{
	json_out_lit(o, v ? "true" : "false");
}

static void
out_room(struct json_out *o, const struct vkws_room_info *ri)
{
	json_out_lit(o, "{\"room\":");
	json_out_str(o, ri->name, ri->name_len);
	json_out_lit(o, ",\"clients\":");
	json_out_uint(o, ri->clients);
	json_out_lit(o, ",\"maxClients\":");
	json_out_uint(o, ri->max_clients);
	json_out_lit(o, ",\"persistent\":");
	out_bool(o, ri->persistent);
	json_out_lit(o, ",\"createdAt\":");
	json_out_int(o, ri->created_at);
	json_out_lit(o, "}");
}

/* getConnectionInfo: PROTOCOL.md 4, and "cipher" over TLS. */
static void
out_client(struct json_out *o, const struct vkws_client *ci)
{
	unsigned k;

	json_out_lit(o, "{\"clientId\":");
	json_out_str(o, ci->client_id, ci->client_id_len);
	json_out_lit(o, ",\"userId\":");
	if (ci->user_id != NULL)
		json_out_str(o, ci->user_id, ci->user_id_len);
	else
		json_out_lit(o, "null");
	json_out_lit(o, ",\"userInfo\":");
	json_out_raw(o, ci->user_info, ci->user_info_len);
	json_out_lit(o, ",\"rooms\":[");
	for (k = 0; k < ci->nrooms; k++) {
		if (k > 0)
			json_out_lit(o, ",");
		json_out_str(o, ci->rooms[k], ci->room_lens[k]);
	}
	json_out_lit(o, "],\"remoteAddr\":");
	json_out_str(o, ci->remote_addr, strlen(ci->remote_addr));
	json_out_lit(o, ",\"connectedAt\":");
	json_out_int(o, ci->connected_at);
	json_out_lit(o, ",\"lastActiveAt\":");
	json_out_int(o, ci->last_active_at);
	json_out_lit(o, ",\"msgsIn\":");
	json_out_uint(o, ci->msgs_in);
	json_out_lit(o, ",\"msgsOut\":");
	json_out_uint(o, ci->msgs_out);
	json_out_lit(o, ",\"bytesIn\":");
	json_out_uint(o, ci->bytes_in);
	json_out_lit(o, ",\"bytesOut\":");
	json_out_uint(o, ci->bytes_out);
	json_out_lit(o, ",\"tls\":");
	out_bool(o, ci->tls);
	json_out_lit(o, ",\"queuedBytes\":");
	json_out_uint(o, ci->queued_bytes);
	if (vkws_cluster_on()) {
		json_out_lit(o, ",\"node\":");
		json_out_str(o, vkws_cluster_node(), strlen(vkws_cluster_node()));
	}
	if (ci->tls && ci->cipher != NULL) {
		json_out_lit(o, ",\"cipher\":");
		json_out_str(o, ci->cipher, strlen(ci->cipher));
	}
	json_out_lit(o, "}");
}

/* Listing callbacks: one array element each, comma-separated. */
struct list {
	struct json_out *o;
	unsigned n;
};

static void
list_client(const struct vkws_client *ci, void *arg)
{
	struct list *l = arg;

	if (l->n++ > 0)
		json_out_lit(l->o, ",");
	out_client(l->o, ci);
}

static void
list_room(const struct vkws_room_info *ri, void *arg)
{
	struct list *l = arg;

	if (l->n++ > 0)
		json_out_lit(l->o, ",");
	out_room(l->o, ri);
}

static void
out_delivered(struct json_out *o, int n)
{
	json_out_lit(o, "{\"delivered\":");
	json_out_int(o, n);
	json_out_lit(o, "}");
}

/* ---- Metrics -------------------------------------------------------- */

/* Gauges computed when asked for: the slot table by state. */
static uint64_t g_http, g_ws, g_authed, g_closing, g_uptime, g_bodies;
static struct vkws_store_stats g_store;
static uint64_t g_store_broken;
static uint64_t g_pool_free, g_pool_min, g_rx_free, g_segs_free;

/* /metrics and getStats, one table: getStats keys are these names
 * without the vkws_ prefix (PROTOCOL.md 7). */
static const struct metric {
	const char *name;
	const char *type;	/* Prometheus: counter or gauge */
	const char *help;
	const uint64_t *v;
} metrics[] = {
	{ "uptime_seconds", "gauge", "Seconds since the server started.",
	    &g_uptime },
	{ "connections", "gauge", "Connection slots in use.",
	    &vkws_count.conns },
	{ "connections_http", "gauge", "Connections reading HTTP requests.",
	    &g_http },
	{ "connections_websocket", "gauge", "Open WebSocket connections.",
	    &g_ws },
	{ "connections_pending", "gauge",
	    "Chat connections not yet authenticated.", &vkws_count.ws_pending },
	{ "connections_authenticated", "gauge",
	    "Authenticated chat connections.", &g_authed },
	{ "connections_closing", "gauge",
	    "Connections in their closing handshake or flushing out.",
	    &g_closing },
	{ "connections_accepted_total", "counter", "TCP connections accepted.",
	    &vkws_count.accepted },
	{ "upgrades_total", "counter", "WebSocket handshakes completed.",
	    &vkws_count.upgrades },
	{ "connections_unproven", "gauge",
	    "HTTP connections, TLS handshakes and chat connections not yet "
	    "authenticated (--max-pending).", &vkws_count.unproven },
	{ "connections_proven", "gauge",
	    "Authenticated chat and /echo connections (--max-conns).",
	    &vkws_count.proven },
	{ "accept_errors_total", "counter",
	    "accept() failures for lack of descriptors or memory.",
	    &vkws_count.accept_errors },
	{ "http_requests_total", "counter", "HTTP requests routed here.",
	    &vkws_count.http_requests },
	{ "http_errors_total", "counter", "HTTP requests refused by the core.",
	    &vkws_count.http_errors },
	{ "api_requests_total", "counter", "POST /api requests.",
	    &vkws_count.api_requests },
	{ "api_body_buffers_in_use", "gauge",
	    "Static /api body buffers taken.", &g_bodies },
	{ "rooms", "gauge", "Rooms in the table.", &vkws_count.rooms },
	{ "messages_in_total", "counter", "WebSocket data messages received.",
	    &vkws_count.msgs_in },
	{ "messages_out_total", "counter", "WebSocket data messages sent.",
	    &vkws_count.msgs_out },
	{ "bytes_in_total", "counter",
	    "Payload bytes of data messages received.", &vkws_count.bytes_in },
	{ "bytes_out_total", "counter",
	    "Payload bytes of data messages queued.", &vkws_count.bytes_out },
	{ "dropped_slow_total", "counter",
	    "Frames a full send queue could not take (slow consumers).",
	    &vkws_count.dropped_slow },
	{ "closes_normal_total", "counter", "Closes with code 1000.",
	    &vkws_count.closes[0] },
	{ "closes_going_away_total", "counter", "Closes with code 1001.",
	    &vkws_count.closes[1] },
	{ "closes_protocol_error_total", "counter", "Closes with code 1002.",
	    &vkws_count.closes[2] },
	{ "closes_bad_data_total", "counter", "Closes with code 1007.",
	    &vkws_count.closes[3] },
	{ "closes_policy_total", "counter", "Closes with code 1008.",
	    &vkws_count.closes[4] },
	{ "closes_too_big_total", "counter", "Closes with code 1009.",
	    &vkws_count.closes[5] },
	{ "closes_slow_consumer_total", "counter", "Closes with code 1013.",
	    &vkws_count.closes[6] },
	{ "closes_auth_total", "counter", "Closes with code 4001.",
	    &vkws_count.closes[7] },
	{ "closes_idle_total", "counter", "Closes with code 4002.",
	    &vkws_count.closes[8] },
	{ "closes_other_total", "counter",
	    "Closes with any other code (1005, application codes).",
	    &vkws_count.closes[9] },
	{ "closes_abnormal_total", "counter",
	    "WebSocket connections lost without a close frame.",
	    &vkws_count.closes_abnormal },
	{ "protocol_errors_total", "counter", "WebSocket protocol errors.",
	    &vkws_count.protocol_errors },
	{ "handshake_timeouts_total", "counter",
	    "HTTP connections dropped for a slow request.",
	    &vkws_count.timeouts_handshake },
	{ "queue_high_water_bytes", "gauge",
	    "Largest send queue seen (bytes).", &vkws_count.queue_hwm },
	{ "pool_chunks_free", "gauge",
	    "Free chunks of the memory pool (send queues, client data, "
	    "history).", &g_pool_free },
	{ "pool_chunks_free_min", "gauge",
	    "Fewest free chunks the pool has had.", &g_pool_min },
	{ "pool_segments_free", "gauge",
	    "Free queue segments of the memory pool.", &g_segs_free },
	{ "receive_buffers_free", "gauge",
	    "Free receive buffers for frames split across reads.", &g_rx_free },
	{ "auth_ok_total", "counter", "Successful authentications.",
	    &vkws_count.auth_ok },
	{ "auth_failures_total", "counter", "Failed authentications.",
	    &vkws_count.auth_failures },
	{ "rate_limited_total", "counter", "Requests refused by the rate limit.",
	    &vkws_count.rate_limited },
	{ "store_failures_total", "counter",
	    "Chat messages refused with -7: the log could not take them.",
	    &vkws_count.store_failures },
	{ "store_records_total", "counter", "Log records appended.",
	    &g_store.records },
	{ "store_bytes_total", "counter", "Bytes appended to the log.",
	    &g_store.bytes },
	{ "store_syncs_total", "counter", "fdatasync and fsync calls.",
	    &g_store.syncs },
	{ "store_compactions_total", "counter", "Log compactions.",
	    &g_store.compactions },
	{ "store_write_failures_total", "counter",
	    "Log writes and syncs that failed.", &g_store.failures },
	{ "store_log_bytes", "gauge", "Size of the log now.",
	    &g_store.log_bytes },
	{ "store_broken", "gauge", "1 while the log cannot be written.",
	    &g_store_broken },
	/* Cluster: 0 and unused without --redis. */
	{ "cluster_up", "gauge", "1 while the link to Redis serves.",
	    &vkws_count.cluster_up },
	{ "cluster_nodes", "gauge", "Live nodes of the cluster, this one "
	    "included.", &vkws_count.cluster_nodes },
	{ "cluster_published_total", "counter",
	    "Operations this node sent through Redis to the cluster.",
	    &vkws_count.cluster_published },
	{ "cluster_received_total", "counter",
	    "Cluster messages this node received from Redis.",
	    &vkws_count.cluster_received },
	{ "cluster_reconnects_total", "counter",
	    "Times the link to Redis came back after it was lost.",
	    &vkws_count.cluster_reconnects },
	{ "cluster_reregistrations_total", "counter",
	    "Times this node registered its connections with Redis again "
	    "after leaves or counts did not fit the link.",
	    &vkws_count.cluster_reregistrations },
	{ "cluster_partial_total", "counter",
	    "Calls to every node answered at their deadline without some "
	    "node's answer (it died or stopped mid-call).",
	    &vkws_count.cluster_partial },
};
#define NMETRICS (sizeof(metrics) / sizeof(metrics[0]))

/*
 * What admission did (PROTOCOL.md 8): counters with a "reason" label,
 * one entry per value, the entries of a family in a row and its HELP on
 * the first. /metrics writes vkws_NAME{reason="VALUE"}; getStats
 * flattens each to the key NAME_VALUE_total (evicted_total with reason
 * http_age is evicted_http_age_total).
 */
static const struct labelled {
	const char *name;	/* the family, without _total */
	const char *help;	/* on the first entry of a family */
	const char *reason;
	const uint64_t *v;
} labelled[] = {
	{ "evicted", "Connections closed to make room: the oldest unproven "
	    "one for a newcomer, an HTTP connection past its life or its "
	    "requests, a TLS handshake for a newer one.", "oldest_unproven",
	    &vkws_count.evicted_unproven },
	{ "evicted", NULL, "http_age", &vkws_count.evicted_http_age },
	{ "evicted", NULL, "tls_handshake", &vkws_count.evicted_tls },
	{ "refused", "Connections refused: --max-conns full of proven ones "
	    "(503), past --max-per-ip, over --reconnect-rate (503), every "
	    "TLS engine serving a proven connection.", "full",
	    &vkws_count.refused_full },
	{ "refused", NULL, "per_ip", &vkws_count.refused_per_ip },
	{ "refused", NULL, "reconnect_rate", &vkws_count.refused_reconnect },
	{ "refused", NULL, "tls", &vkws_count.refused_tls },
};
#define NLABELLED (sizeof(labelled) / sizeof(labelled[0]))

static void
gauges_update(void)
{
	size_t s;

	g_http = g_ws = g_authed = g_closing = g_bodies = 0;
	for (s = 0; s < VKWS_SLOTS; s++) {
		const struct conn *c = &vkws_conns[s];
		if (c->state == S_HTTP) {
			g_http++;
			if (c->body_slot != VKWS_NO_ROOM)
				g_bodies++;
		} else if (c->state == S_WS) {
			g_ws++;
			if (c->kind == K_CHAT && c->authed)
				g_authed++;
			if (c->close_sent)
				g_closing++;
		} else if (c->state == S_LINGER)
			g_closing++;
	}
	{
		struct vkws_pool_stats ps;
		vkws_pool_stats(&ps);
		g_pool_free = ps.chunks_free;
		g_pool_min = ps.chunks_low;
		g_rx_free = ps.rx_free;
		g_segs_free = ps.segs_free;
	}
	g_uptime = (uint64_t)(vkws_now_ms() - t_start) / 1000;
	vkws_store_get_stats(&g_store);
	g_store_broken = g_store.broken ? 1 : 0;
}

/* Prometheus text exposition format 0.0.4. */
static void
out_metrics(struct json_out *o)
{
	size_t i;

	gauges_update();
	for (i = 0; i < NMETRICS; i++) {
		const struct metric *m = &metrics[i];
		json_out_lit(o, "# HELP vkws_");
		json_out_lit(o, m->name);
		json_out_lit(o, " ");
		json_out_lit(o, m->help);
		json_out_lit(o, "\n# TYPE vkws_");
		json_out_lit(o, m->name);
		json_out_lit(o, " ");
		json_out_lit(o, m->type);
		json_out_lit(o, "\nvkws_");
		json_out_lit(o, m->name);
		json_out_lit(o, " ");
		json_out_uint(o, *m->v);
		json_out_lit(o, "\n");
	}
	for (i = 0; i < NLABELLED; i++) {
		const struct labelled *l = &labelled[i];
		if (l->help != NULL) {
			json_out_lit(o, "# HELP vkws_");
			json_out_lit(o, l->name);
			json_out_lit(o, "_total ");
			json_out_lit(o, l->help);
			json_out_lit(o, "\n# TYPE vkws_");
			json_out_lit(o, l->name);
			json_out_lit(o, "_total counter\n");
		}
		json_out_lit(o, "vkws_");
		json_out_lit(o, l->name);
		json_out_lit(o, "_total{reason=\"");
		json_out_lit(o, l->reason);
		json_out_lit(o, "\"} ");
		json_out_uint(o, *l->v);
		json_out_lit(o, "\n");
	}
}

/* ---- The methods of PROTOCOL.md 4 ------------------------------------- */

/* Each writes its data value to o and returns 0, or an error code. */
typedef int method_fn(const struct call *q, struct json_out *o);

static char s_room[VKWS_ROOM_NAME_MAX], s_cid[VKWS_CLIENT_ID_MAX];
static char s_uid[VKWS_UID_MAX], s_reason[VKWS_REASON_IN_MAX];
static char s_rooms[VKWS_MAX_ROOMS][VKWS_ROOM_NAME_MAX];
static const char *s_room_p[VKWS_MAX_ROOMS];
static size_t s_room_n[VKWS_MAX_ROOMS];

static int
m_create_room(const struct call *q, struct json_out *o)
{
	struct vkws_room_info ri;
	int64_t max = -1;
	int n, t, persistent = 0, e;

	if ((n = p_room(q, s_room)) < 0)
		return n;
	if ((e = p_int(q, "maxClients", 0, VKWS_MAX_CONNS, &max)) ==
	    VKWS_EINVAL)
		return e;
	/* PROTOCOL.md 7: without the field the current value stays. */
	if ((t = param(q, "persistent")) >= 0) {
		if ((persistent = json_bool(&q->d, t)) < 0)
			return bad("persistent");
	} else if (vkws_get_room_info(s_room, (size_t)n, &ri) == 0)
		persistent = ri.persistent;
	if (vkws_cluster_on())
		vkws_cluster_create_fields(max >= 0, t >= 0);
	if ((e = vkws_create_room(s_room, (size_t)n, (long)max, persistent,
	    &ri)) < 0)
		return e == VKWS_EINVAL ? bad("maxClients") : e;
	/* Cluster: the room as every node sees it, read after Redis took
	 * the settings (the link keeps the order), so code 0 means Redis
	 * has them. If that read cannot go out (every held call's place
	 * taken, the link full), -7: the settings may or may not be in
	 * Redis, and createRoom again is safe. */
	if (vkws_cluster_on() && api_conn != NULL)
		return cluster_outcome(vkws_cluster_room_info(api_conn,
		    s_room, (size_t)n, api_keep)) == 1 ? 0 : VKWS_ESTORE;
	out_room(o, &ri);
	return 0;
}

static int
m_get_room_info(const struct call *q, struct json_out *o)
{
	struct vkws_room_info ri;
	int n, e;

	if ((n = p_room(q, s_room)) < 0)
		return n;
	/* Cluster: clients, settings and createdAt are the cluster's, in
	 * Redis (PROTOCOL.md 9). */
	if (vkws_cluster_on() && api_conn != NULL) {
		e = cluster_outcome(vkws_cluster_room_info(api_conn, s_room,
		    (size_t)n, api_keep));
		if (e != 0)
			return e == 1 ? 0 : e;
	}
	if ((e = vkws_get_room_info(s_room, (size_t)n, &ri)) < 0)
		return e;
	out_room(o, &ri);
	return 0;
}

static int
m_get_room_clients(const struct call *q, struct json_out *o)
{
	struct list l = { o, 0 };
	int n, e;

	if ((n = p_room(q, s_room)) < 0)
		return n;
	json_out_lit(o, "[");
	if ((e = vkws_get_room_clients(s_room, (size_t)n, list_client,
	    &l)) < 0)
		return e;
	json_out_lit(o, "]");
	return 0;
}

static int
m_delete_room(const struct call *q, struct json_out *o)
{
	int n, e;

	if ((n = p_room(q, s_room)) < 0)
		return n;
	if ((e = vkws_delete_room(s_room, (size_t)n)) < 0)
		return e;
	json_out_lit(o, "null");
	return 0;
}

/* joinRoom and leaveRoom: the same params, the C API call differs. */
static int
m_room_member(const struct call *q, struct json_out *o,
    int (*fn)(const char *, size_t, const char *, size_t))
{
	int cn, n, e;

	if ((cn = p_id(q, "clientId", s_cid, sizeof(s_cid))) < 0)
		return cn;
	if ((n = p_room(q, s_room)) < 0)
		return n;
	if ((e = fn(s_cid, (size_t)cn, s_room, (size_t)n)) < 0)
		return e;
	json_out_lit(o, "null");
	return 0;
}

static int
m_join_room(const struct call *q, struct json_out *o)
{
	int cn, n, e;

	if (!vkws_cluster_on())
		return m_room_member(q, o, vkws_join_room);
	/* Cluster: maxClients counts every node, in Redis. */
	if ((cn = p_id(q, "clientId", s_cid, sizeof(s_cid))) < 0)
		return cn;
	if ((n = p_room(q, s_room)) < 0)
		return n;
	e = cluster_outcome(vkws_cluster_api_join(api_conn, s_cid, (size_t)cn,
	    s_room, (size_t)n, api_keep));
	if (e != 0)
		return e == 1 ? 0 : e;
	json_out_lit(o, "null");
	return 0;
}

static int
m_leave_room(const struct call *q, struct json_out *o)
{
	return m_room_member(q, o, vkws_leave_room);
}

static int
m_leave_all_rooms(const struct call *q, struct json_out *o)
{
	int cn, e;

	if ((cn = p_id(q, "clientId", s_cid, sizeof(s_cid))) < 0)
		return cn;
	if ((e = vkws_leave_all_rooms(s_cid, (size_t)cn)) < 0)
		return e;
	json_out_lit(o, "{\"left\":");
	json_out_int(o, e);
	json_out_lit(o, "}");
	return 0;
}

static int
m_broadcast_to_all(const struct call *q, struct json_out *o)
{
	const char *p;
	size_t n;
	int e;

	if ((e = p_data(q, &p, &n)) < 0)
		return e;
	/* -5: the pool could not hold the frame. */
	if ((e = vkws_broadcast_to_all(p, n)) < 0)
		return e;
	out_delivered(o, e);
	return 0;
}

static int
m_broadcast_to_room(const struct call *q, struct json_out *o)
{
	const char *p;
	size_t dn;
	int n, e;

	if ((n = p_room(q, s_room)) < 0)
		return n;
	if ((e = p_data(q, &p, &dn)) < 0)
		return e;
	if ((e = vkws_broadcast_to_room(s_room, (size_t)n, p, dn)) < 0)
		return e;
	out_delivered(o, e);
	return 0;
}

static int
m_broadcast_to_rooms(const struct call *q, struct json_out *o)
{
	const char *p;
	size_t dn, k = 0;
	int t = param(q, "rooms"), i, n, e;

	if (!json_is_array(&q->d, t) || (n = json_len(&q->d, t)) < 1 ||
	    n > VKWS_MAX_ROOMS)
		return bad("rooms");
	/* Elements follow the array token, each a single string token. */
	for (i = t + 1; k < (size_t)n; i = json_next(&q->d, i), k++) {
		int len;
		if (!json_is_string(&q->d, i) || (len = json_string(&q->d, i,
		    s_rooms[k], VKWS_ROOM_NAME_MAX)) < 0 ||
		    !vkws_room_name_ok(s_rooms[k], (size_t)len))
			return bad("rooms");
		s_room_p[k] = s_rooms[k];
		s_room_n[k] = (size_t)len;
	}
	if ((e = p_data(q, &p, &dn)) < 0)
		return e;
	if ((e = vkws_broadcast_to_rooms(s_room_p, s_room_n, k, p, dn)) < 0)
		return e;
	out_delivered(o, e);
	return 0;
}

static int
m_send_to_client(const struct call *q, struct json_out *o)
{
	const char *p;
	size_t dn;
	int cn, e;

	if ((cn = p_id(q, "clientId", s_cid, sizeof(s_cid))) < 0)
		return cn;
	if ((e = p_data(q, &p, &dn)) < 0)
		return e;
	if ((e = vkws_send_to_client(s_cid, (size_t)cn, p, dn)) < 0)
		return e;
	out_delivered(o, 1);
	return 0;
}

static int
m_send_to_user(const struct call *q, struct json_out *o)
{
	const char *p;
	size_t dn;
	int un, e;

	if ((un = p_id(q, "userId", s_uid, sizeof(s_uid))) < 0)
		return un;
	if ((e = p_data(q, &p, &dn)) < 0)
		return e;
	if ((e = vkws_send_to_user(s_uid, (size_t)un, p, dn)) < 0)
		return e;
	out_delivered(o, e);
	return 0;
}

/* getAllConnections and getActiveConnections: the same list, by the
 * C API call given. */
static int
m_list_conns(struct json_out *o, int (*fn)(vkws_client_fn *, void *))
{
	struct list l = { o, 0 };

	json_out_lit(o, "[");
	(void)fn(list_client, &l);
	json_out_lit(o, "]");
	return 0;
}

static int
m_get_all_connections(const struct call *q, struct json_out *o)
{
	(void)q;
	return m_list_conns(o, vkws_get_all_connections);
}

static int
m_get_active_connections(const struct call *q, struct json_out *o)
{
	(void)q;
	return m_list_conns(o, vkws_get_active_connections);
}

static int
m_get_connection_info(const struct call *q, struct json_out *o)
{
	static struct vkws_client ci;
	int cn, e;

	if ((cn = p_id(q, "clientId", s_cid, sizeof(s_cid))) < 0)
		return cn;
	if ((e = vkws_get_connection_info(s_cid, (size_t)cn, &ci)) < 0)
		return e;
	out_client(o, &ci);
	return 0;
}

/* code? and reason? of disconnect and disconnectAll. */
static int
close_params(const struct call *q, int64_t *code, int *rn)
{
	int e;

	*code = 1000;
	if ((e = p_int(q, "code", 0, 65535, code)) == VKWS_EINVAL)
		return e;
	/* PROTOCOL.md 7: 1000 or 3000-4999. */
	if (*code != 1000 && (*code < 3000 || *code > 4999))
		return bad("code");
	*rn = p_str(q, "reason", s_reason, sizeof(s_reason), 0);
	if (*rn == VKWS_ENOTFOUND)
		*rn = 0;
	return *rn < 0 ? *rn : 0;
}

static int
m_disconnect(const struct call *q, struct json_out *o)
{
	int64_t code;
	int cn, rn, e;

	if ((cn = p_id(q, "clientId", s_cid, sizeof(s_cid))) < 0)
		return cn;
	if ((e = close_params(q, &code, &rn)) < 0)
		return e;
	if ((e = vkws_disconnect(s_cid, (size_t)cn, (int)code, s_reason,
	    (size_t)rn)) < 0)
		return e;
	json_out_lit(o, "null");
	return 0;
}

static int
m_disconnect_all(const struct call *q, struct json_out *o)
{
	int64_t code;
	int rn, e;

	if ((e = close_params(q, &code, &rn)) < 0)
		return e;
	if ((e = vkws_disconnect_all((int)code, s_reason, (size_t)rn)) < 0)
		return e;
	json_out_lit(o, "{\"closed\":");
	json_out_int(o, e);
	json_out_lit(o, "}");
	return 0;
}

static int
m_set_client_data(const struct call *q, struct json_out *o)
{
	const char *p;
	size_t dn;
	int cn, e;

	if ((cn = p_id(q, "clientId", s_cid, sizeof(s_cid))) < 0)
		return cn;
	if ((e = p_data(q, &p, &dn)) < 0)
		return e;
	if (!json_is_object(&q->d, param(q, "data")) ||
	    dn > VKWS_USERINFO_MAX)
		return bad("data");
	if ((e = vkws_set_client_data(s_cid, (size_t)cn, p, dn)) < 0)
		return e == VKWS_EINVAL || e == VKWS_ELIMIT ? bad("data") : e;
	json_out_raw(o, p, dn);
	return 0;
}

static int
m_get_client_data(const struct call *q, struct json_out *o)
{
	const char *p;
	int cn, n;

	if ((cn = p_id(q, "clientId", s_cid, sizeof(s_cid))) < 0)
		return cn;
	if ((n = vkws_get_client_data(s_cid, (size_t)cn, &p)) < 0)
		return n;
	json_out_raw(o, p, (size_t)n);
	return 0;
}

static int
m_get_room_history(const struct call *q, struct json_out *o)
{
	const struct room *r;
	int64_t limit = -1;
	int n, e;

	if ((n = p_room(q, s_room)) < 0)
		return n;
	if ((e = p_int(q, "limit", 0, INT32_MAX, &limit)) == VKWS_EINVAL)
		return e;
	/* Cluster: the room's history is in Redis. */
	if (vkws_cluster_on() && api_conn != NULL && limit != 0) {
		e = cluster_outcome(vkws_cluster_history(api_conn, s_room,
		    (size_t)n, limit < 0 ? 0 : (uint32_t)limit,
		    vkws_room_find(s_room, (size_t)n) != NULL, api_keep));
		if (e != 0)
			return e == 1 ? 0 : e;
	}
	if ((r = vkws_room_find(s_room, (size_t)n)) == NULL)
		return VKWS_ENOTFOUND;
	/* PROTOCOL.md 7: the newest limit messages, oldest first. */
	if (limit == 0)
		json_out_lit(o, "[]");
	else
		(void)vkws_history_write(r, 0, limit < 0 ? 0 : (size_t)limit,
		    o);
	return 0;
}

static int
m_list_rooms(const struct call *q, struct json_out *o)
{
	struct list l = { o, 0 };
	int e;

	(void)q;
	/* Cluster: every node's rooms and those only Redis holds. */
	if (vkws_cluster_on() && api_conn != NULL) {
		e = cluster_outcome(vkws_cluster_list_rooms(api_conn,
		    api_keep));
		if (e != 0)
			return e == 1 ? 0 : e;
	}
	json_out_lit(o, "[");
	(void)vkws_list_rooms(list_room, &l);
	json_out_lit(o, "]");
	return 0;
}

static int
m_get_stats(const struct call *q, struct json_out *o)
{
	size_t i;

	(void)q;
	gauges_update();
	json_out_lit(o, "{");
	for (i = 0; i < NMETRICS; i++) {
		if (i > 0)
			json_out_lit(o, ",");
		json_out_lit(o, "\"");
		json_out_lit(o, metrics[i].name);
		json_out_lit(o, "\":");
		json_out_uint(o, *metrics[i].v);
	}
	for (i = 0; i < NLABELLED; i++) {
		json_out_lit(o, ",\"");
		json_out_lit(o, labelled[i].name);
		json_out_lit(o, "_");
		json_out_lit(o, labelled[i].reason);
		json_out_lit(o, "_total\":");
		json_out_uint(o, *labelled[i].v);
	}
	json_out_lit(o, "}");
	return 0;
}

static const struct method {
	const char *name;
	method_fn *fn;
} methods[] = {
	{ "createRoom", m_create_room },
	{ "getRoomInfo", m_get_room_info },
	{ "getRoomClients", m_get_room_clients },
	{ "deleteRoom", m_delete_room },
	{ "joinRoom", m_join_room },
	{ "leaveRoom", m_leave_room },
	{ "leaveAllRooms", m_leave_all_rooms },
	{ "broadcastToAll", m_broadcast_to_all },
	{ "broadcastToRoom", m_broadcast_to_room },
	{ "broadcastToRooms", m_broadcast_to_rooms },
	{ "sendToClient", m_send_to_client },
	{ "sendToUser", m_send_to_user },
	{ "getAllConnections", m_get_all_connections },
	{ "getActiveConnections", m_get_active_connections },
	{ "getConnectionInfo", m_get_connection_info },
	{ "disconnect", m_disconnect },
	{ "disconnectAll", m_disconnect_all },
	{ "setClientData", m_set_client_data },
	{ "getClientData", m_get_client_data },
	{ "getRoomHistory", m_get_room_history },
	{ "listRooms", m_list_rooms },
	{ "getStats", m_get_stats },
};

/* Run the call in body[0..n) and encode its reply; returns the reply's
 * length in api_out. */
static size_t
api_call(const char *body, size_t n)
{
	static struct call q;
	struct json_out o;
	const struct method *m = NULL;
	int t, e = VKWS_EINVAL;
	size_t i;

	bad_param = NULL;
	json_out_init(&o, api_out, sizeof(api_out));
	json_out_lit(&o, "{\"code\":0,\"data\":");
	/* PROTOCOL.md 7: a body that is not a JSON object with a string
	 * method is -2; params, when present, must be an object. */
	if ((t = json_parse(&q.d, api_toks, VKWS_API_TOKENS, body, n)) < 0 ||
	    !json_is_object(&q.d, 0)) {
		/* More values than the token table holds (PROFILE=small
		 * keeps a smaller one): a limit, not a bad request. */
		if (t == JSON_ERR_TOO_MANY)
			e = VKWS_ELIMIT;
		goto fail;
	}
	t = json_get(&q.d, 0, "method");
	if (!json_is_string(&q.d, t)) {
		e = bad("method");
		goto fail;
	}
	q.params = json_get(&q.d, 0, "params");
	if (q.params >= 0 && !json_is_object(&q.d, q.params)) {
		e = bad("params");
		goto fail;
	}
	for (i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
		if (json_streq(&q.d, t, methods[i].name))
			m = &methods[i];
	if (m == NULL) {
		e = VKWS_EUNKNOWN;
		goto fail;
	}
	/* Cluster: a call that reaches other nodes goes to them
	 * through Redis and is answered once they have (or -7). */
	if (vkws_cluster_on() && api_conn != NULL) {
		int cn = p_id(&q, "clientId", s_cid, sizeof(s_cid));
		int rn = param(&q, "room") >= 0 ? p_room(&q, s_room) : -1;
		e = cluster_outcome(vkws_cluster_api(api_conn, m->name, body,
		    n, s_cid, cn > 0 ? (size_t)cn : 0, s_room,
		    rn > 0 ? (size_t)rn : 0, api_keep));
		if (e == 1)
			return 0;
		if (e < 0)
			goto fail;
	}
	if ((e = m->fn(&q, &o)) < 0)
		goto fail;
	json_out_lit(&o, "}");
	if (json_out_ok(&o))
		return o.n;
	/* A reply larger than the buffer is refused whole, never cut. */
	e = VKWS_ELIMIT;
	bad_param = "reply too large";
fail:
	if (e == VKWS_ESTORE)
		vkws_count.store_failures++;
	json_out_init(&o, api_out, sizeof(api_out));
	json_out_lit(&o, "{\"code\":");
	json_out_int(&o, e);
	json_out_lit(&o, ",\"msg\":");
	if (e == VKWS_EINVAL && bad_param != NULL) {
		json_out_lit(&o, "\"invalid ");
		json_out_lit(&o, bad_param);
		json_out_lit(&o, "\"}");
	} else if (e == VKWS_ELIMIT && bad_param != NULL) {
		json_out_lit(&o, "\"reply too large\"}");
	} else if (e == VKWS_ESTORE && bad_param != NULL) {
		json_out_lit(&o, "\"cluster unavailable\"}");
	} else {
		json_out_str(&o, vkws_strerror(e), strlen(vkws_strerror(e)));
		json_out_lit(&o, "}");
	}
	return o.n;
}

/* Answer a whole /api body. A call that wrote to the log is answered
 * once what it wrote is on disk (--fsync batch): the sync is done here,
 * as the reply may go to the socket at once; if it fails the call
 * answers -7. */
static void
api_answer(struct conn *c, const char *body, size_t n, int keep)
{
	struct vkws_store_stats before, after;
	size_t len;

	vkws_store_get_stats(&before);
	api_conn = c;
	api_keep = keep;
	api_held = 0;
	len = api_call(body, n);
	api_conn = NULL;
	if (api_held) {		/* cluster: answered later */
		c->body_need = API_HELD;
		return;
	}
	vkws_store_get_stats(&after);
	if (vkws_store_unsynced() && vkws_chat_commit() < 0 &&
	    after.records != before.records) {
		struct json_out o;
		vkws_count.store_failures++;
		json_out_init(&o, api_out, sizeof(api_out));
		json_out_lit(&o, "{\"code\":");
		json_out_int(&o, VKWS_ESTORE);
		json_out_lit(&o, ",\"msg\":");
		json_out_str(&o, vkws_strerror(VKWS_ESTORE),
		    strlen(vkws_strerror(VKWS_ESTORE)));
		json_out_lit(&o, "}");
		len = o.n;
	}
	vkws_http_reply(c, 200, "Cache-Control: no-store\r\n", json_type,
	    api_out, len, keep);
}

/* Cluster: run a call another node sent, here only. */
size_t
vkws_api_run(const char *body, size_t n, const char **out)
{
	*out = api_out;
	return api_call(body, n);
}

/* Cluster: the answer to a call held for other nodes; the
 * connection then reads its next request. */
void
vkws_api_reply(struct conn *c, const char *json, size_t n, int keep)
{
	c->body_need = 0;
	vkws_http_reply(c, 200, "Cache-Control: no-store\r\n", json_type,
	    json, n, keep);
	c->held = 1;	/* the core looks at what came meanwhile */
}

/* ---- Routes --------------------------------------------------------- */

/* What each route handler gets: the request, the bytes after its head,
 * and whether the connection may carry another request. Returns whether
 * it stays open; sets *used to the body bytes taken. */
typedef int route_fn(struct conn *c, const struct http_req *r,
    const uint8_t *body, size_t avail, size_t *used, int keep);

/*
 * POST /api (PROTOCOL.md 4). Checks in this order: key configured
 * (403), peer on loopback unless --api-remote (403), the key (401),
 * body framing (400, 411, 413). Then the body is read, in place when it
 * has all arrived, else into a body buffer (503 when none is free).
 */
/*
 * Refuse an /api request before its body is read. The connection stays
 * open only if the body can be skipped: its length is known and it will
 * come (a client that asked for 100-continue may never send it).
 */
static int
refuse(struct conn *c, int status, const char *extra, const char *text,
    int64_t len, int expect, size_t avail, size_t *used, int keep)
{
	if (len < 0 || (expect && (size_t)len > avail) || !skip_body(c, len,
	    avail, used))
		keep = 0;
	vkws_http_reply(c, status, extra, "text/plain; charset=utf-8", text,
	    strlen(text), keep);
	return keep;
}

static int
route_api(struct conn *c, const struct http_req *r, const uint8_t *body,
    size_t avail, size_t *used, int keep)
{
	static const char scheme[] = "apikey";
	const struct http_header *h = http_header_get(r, "Authorization");
	const struct http_header *ex = http_header_get(r, "Expect");
	int expect = ex != NULL && http_str_ieq(ex->value, "100-continue");
	int has_len, ok = 0, b;
	int64_t len = body_length(r, &has_len);

	vkws_count.api_requests++;
	if (cfg->api_key_len == 0 || (!cfg->api_remote &&
	    !vkws_is_loopback(c->ip)))
		return refuse(c, 403, NULL, "Forbidden", len, expect, avail,
		    used, keep);
	/* RFC 7235 2.1: the scheme is case-insensitive; then blanks, then
	 * the key, compared in constant time. */
	if (h != NULL && h->value.n > sizeof(scheme) &&
	    http_str_ieq((struct http_str){ h->value.p, sizeof(scheme) - 1 },
	    scheme) && (h->value.p[6] == ' ' || h->value.p[6] == '\t')) {
		struct http_str k = { h->value.p + 7, h->value.n - 7 };
		while (k.n > 0 && (k.p[0] == ' ' || k.p[0] == '\t')) {
			k.p++;
			k.n--;
		}
		if (k.n == cfg->api_key_len)
			ok = vkws_ct_equal(k.p, cfg->api_key, k.n);
		else
			(void)vkws_ct_equal(cfg->api_key, cfg->api_key,
			    cfg->api_key_len);
	}
	if (!ok)
		return refuse(c, 401, "WWW-Authenticate: apikey\r\n",
		    "Unauthorized", len, expect, avail, used, keep);
	/* Without Content-Length the request has no body (RFC 9112 6.3),
	 * and a call needs one: 411, and the connection may go on.
	 * Transfer-Encoding: 411 too, but its body cannot be found. */
	if (len == B_BAD)
		return refuse(c, 400, NULL, "Bad Request", len, expect, avail,
		    used, keep);
	if (len == B_CHUNKED || !has_len)
		return refuse(c, 411, NULL, "Length Required", len, expect,
		    avail, used, keep);
	if (len > VKWS_MAX_BODY)
		return refuse(c, 413, NULL, "Content Too Large", len, expect,
		    avail, used, 0);
	if ((size_t)len <= avail) {
		*used = (size_t)len;
		api_answer(c, (const char *)body, (size_t)len, keep);
		return keep;
	}
	if ((b = body_take(c)) < 0) {
		vkws_http_reply(c, 503, VKWS_RETRY_AFTER(VKWS_RETRY_BODY_S),
		    "text/plain; charset=utf-8", "Service Unavailable", 19, 0);
		return 0;
	}
	/* RFC 9110 10.1.1: a client waiting for 100 may send the body. */
	if (expect && vkws_tx_raw(c, "HTTP/1.1 100 Continue\r\n\r\n",
	    25) != 0) {
		vkws_linger(c);
		return 0;
	}
	memcpy(bodies[b].buf, body, avail);
	bodies[b].len = (uint32_t)avail;
	bodies[b].keep = (uint8_t)keep;
	c->body_slot = (uint16_t)b;
	c->body_need = (uint32_t)((size_t)len - avail);
	*used = avail;
	return 1;
}

static size_t
http_body(struct conn *c, const uint8_t *p, size_t n)
{
	size_t k = n < c->body_need ? n : c->body_need;
	struct body *b;

	if (c->body_need == API_HELD)
		return 0;	/* a call waits for other nodes */
	c->body_need -= (uint32_t)k;
	if (c->body_slot == VKWS_NO_ROOM)
		return k;	/* a body being skipped */
	b = &bodies[c->body_slot];
	memcpy(b->buf + b->len, p, k);
	b->len += (uint32_t)k;
	if (c->body_need == 0) {
		c->body_slot = VKWS_NO_ROOM;
		api_answer(c, b->buf, b->len, b->keep);
	}
	return k;
}

static int
route_healthz(struct conn *c, const struct http_req *r, const uint8_t *body,
    size_t avail, size_t *used, int keep)
{
	(void)r;
	(void)body;
	(void)avail;
	(void)used;
	/* Cluster: 503 while the link to Redis is down. */
	if (vkws_cluster_on() && !vkws_cluster_up()) {
		vkws_http_reply(c, 503, "Cache-Control: no-store\r\n",
		    "text/plain; charset=utf-8", "cluster unavailable", 19,
		    keep);
		return keep;
	}
	vkws_http_reply(c, 200, "Cache-Control: no-store\r\n",
	    "text/plain; charset=utf-8", "ok", 2, keep);
	return keep;
}

static int
route_metrics(struct conn *c, const struct http_req *r, const uint8_t *body,
    size_t avail, size_t *used, int keep)
{
	struct json_out o;

	(void)r;
	(void)body;
	(void)avail;
	(void)used;
	json_out_init(&o, api_out, sizeof(api_out));
	out_metrics(&o);
	if (!json_out_ok(&o)) {
		vkws_http_reply(c, 500, NULL, "text/plain; charset=utf-8",
		    "metrics too large", 17, 0);
		return 0;
	}
	vkws_http_reply(c, 200, "Cache-Control: no-store\r\n",
	    "text/plain; version=0.0.4; charset=utf-8", o.p, o.n, keep);
	return keep;
}

/*
 * GET /: the built-in chat page, and the files it loads (/app.js, ...),
 * served by web.c from the binary. A path that is no file of the page
 * answers 404.
 */
static int
route_page(struct conn *c, const struct http_req *r, const uint8_t *body,
    size_t avail, size_t *used, int keep)
{
	int k;

	(void)body;
	(void)avail;
	(void)used;
	if ((k = vkws_page_serve(c, r, keep)) >= 0)
		return k;
	vkws_http_reply(c, 404, NULL, "text/plain; charset=utf-8",
	    "Not Found", 9, keep);
	return keep;
}

/* Paths served here and the one method each accepts (NULL: the route
 * checks it). A route that
 * reads its own body says so (route_api); the others have any body
 * skipped. */
static const struct route {
	const char *path;
	const char *method;
	const char *allow;	/* the 405 header */
	route_fn *fn;
	int reads_body;
} routes[] = {
	/* The page answers GET and HEAD for "/" as for its other files
	 * (web.c checks the method). */
	{ "/", NULL, NULL, route_page, 0 },
	{ "/healthz", "GET", "Allow: GET\r\n", route_healthz, 0 },
	{ "/metrics", "GET", "Allow: GET\r\n", route_metrics, 0 },
	{ "/api", "POST", "Allow: POST\r\n", route_api, 1 },
};

static int
http_other(struct conn *c, const struct http_req *r,
    const uint8_t *body, size_t avail, size_t *used)
{
	int keep = r->minor >= 1 && !http_header_has(r, "Connection",
	    "close") && vkws_http_may_keep(c);
	const struct route *rt = NULL;
	int has_len;
	int64_t len = body_length(r, &has_len);
	size_t i;

	*used = 0;
	vkws_count.http_requests++;
	for (i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
		if (r->path.n == strlen(routes[i].path) && memcmp(r->path.p,
		    routes[i].path, r->path.n) == 0)
			rt = &routes[i];
	if (rt != NULL && rt->method != NULL &&
	    !http_str_ieq(r->method, rt->method)) {
		vkws_http_reply(c, 405, rt->allow, "text/plain; charset=utf-8",
		    "Method Not Allowed", 18, 0);
		return 0;
	}
	if (rt != NULL && rt->reads_body)
		return rt->fn(c, r, body, avail, used, keep);
	/* A body nobody reads is skipped, so the next request is found;
	 * one whose length is not known ends the connection. */
	if (len < 0 || !skip_body(c, len, avail, used))
		keep = 0;
	if (rt != NULL)
		return rt->fn(c, r, body, avail, used, keep);
	/* Any other path may be a file of the page; the rest is 404. */
	return route_page(c, r, body, avail, used, keep);
}

/* Before the pass's output is flushed: the sync its acks wait for. */
static void
after_pass(void)
{
	(void)vkws_chat_commit();
	vkws_store_tick();
}

/* ---- SIGHUP --------------------------------------------------------- */

/*
 * Read a whole small file into out[0..cap) with one trailing newline
 * stripped; -1 if it cannot be read or does not fit.
 */
static int
read_small(const char *path, char *out, size_t cap, size_t *n)
{
	ssize_t r = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -1;
	*n = 0;
	while (*n < cap && (r = read(fd, out + *n, cap - *n)) > 0)
		*n += (size_t)r;
	close(fd);
	if (r < 0 || *n == cap)
		return -1;
	if (*n > 0 && out[*n - 1] == '\n')
		(*n)--;
	return 0;
}

/*
 * SIGHUP: read --secret-file and --api-key-file again and reload the
 * TLS pair. Connections stay: their tokens were checked when they came.
 * A file that cannot be read keeps the value in use.
 */
static void
reload(void)
{
	static char buf[VKWS_SECRET_MAX > VKWS_API_KEY_MAX ?
	    VKWS_SECRET_MAX : VKWS_API_KEY_MAX];
	size_t n;

	if (cfg->secret_file[0] != '\0') {
		if (read_small(cfg->secret_file, buf, sizeof(cfg->secret),
		    &n) == 0 && n > 0) {
			memcpy(cfg->secret, buf, n);
			cfg->secret_len = n;
			vkws_log("reloaded secret from %s", cfg->secret_file);
		} else
			vkws_log("cannot read secret file %s; keeping the "
			    "old secret", cfg->secret_file);
	}
	if (cfg->api_key_file[0] != '\0') {
		if (read_small(cfg->api_key_file, buf, sizeof(cfg->api_key),
		    &n) == 0 && n > 0) {
			memcpy(cfg->api_key, buf, n);
			cfg->api_key[n] = '\0';
			cfg->api_key_len = n;
			vkws_log("reloaded API key from %s", cfg->api_key_file);
		} else
			vkws_log("cannot read API key file %s; keeping the "
			    "old key", cfg->api_key_file);
	}
	memset(buf, 0, sizeof(buf));
}

const struct vkws_hooks vkws_api_hooks = {
	.init = api_init,
	.stop = api_stop,
	.static_size = api_static_size,
	.token_ok = vkws_token_ok,
	.ws_opened = vkws_ws_opened,
	.ws_message = vkws_ws_message,
	.ws_closed = vkws_ws_closed,
	.ws_timer = vkws_ws_timer,
	.ws_shutdown = vkws_ws_shutdown,
	.http_other = http_other,
	.http_body = http_body,
	.after_pass = after_pass,
	.reload = reload,
	.poll_fds = vkws_cluster_poll_fds,
	.poll_ready = vkws_cluster_poll_ready,
};
