/*
 * chat.c: the chat protocol of PROTOCOL.md sections 2 and 3 on /ws
 * connections: authentication, requests and their acks, keepalive, the
 * rate limit. Written on top of the room and user operations of the core
 * (core.h); it reaches sockets only through the core's queues. With
 * --fsync batch a chat's ack waits, with its frame, in a static table
 * until the log sync of the loop pass (vkws_chat_commit). No allocation:
 * requests are parsed into one static token array.
 */
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "auth.h"
#include "cluster.h"
#include "core.h"
#include "json.h"

static struct vkws_config *cfg;
static uint64_t rng_state;

int
vkws_chat_init(struct vkws_config *c)
{
	int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);

	cfg = c;
	if (fd < 0 || read(fd, &rng_state, sizeof(rng_state)) !=
	    (ssize_t)sizeof(rng_state)) {
		vkws_log("cannot read /dev/urandom");
		if (fd >= 0)
			close(fd);
		return -1;
	}
	close(fd);
	rng_state |= 1;
	return 0;
}

/* ---- The chat protocol (PROTOCOL.md 2, 3) --------------------------- */

static jsmntok_t toks[VKWS_JSON_TOKENS];
/*
 * One reply: the longest is an auth success carrying an id written with
 * \uXXXX escapes (6 characters a byte), a user id escaped the same way,
 * the clientId and the fixed text around them.
 */
#define REPLY_MAX 1024
_Static_assert(REPLY_MAX >= 6 * VKWS_REQ_ID_MAX + 2 + 6 * VKWS_UID_MAX +
    2 + VKWS_CLIENT_ID_MAX + 128, "an auth reply fits reply_buf");
static char reply_buf[REPLY_MAX];
static char text_buf[VKWS_MAX_CHAT];
static char token_buf[VKWS_TOKEN_MAX];
static struct jwt_claims claims;

/* One parsed request: its document and the token of its "id", or -1. */
struct req {
	struct json_doc d;
	int id;
};

static void
send_text(struct conn *c, const struct json_out *o)
{
	if (json_out_ok(o))
		(void)vkws_deliver(c, o->p, o->n);
}

/* The source text of the request's id (a string with its quotes and
 * escapes), or 0 bytes without one. */
static size_t
id_raw(const struct req *q, const char **p)
{
	const jsmntok_t *t;
	int s;

	*p = NULL;
	if (q == NULL || q->id < 0)
		return 0;
	t = &q->d.tok[q->id];
	s = t->type == JSMN_STRING;
	*p = q->d.src + t->start - s;
	return (size_t)(t->end - t->start) + 2 * (size_t)s;
}

/* ,"id":ID for replies that carry the id in their own type. */
static void
out_id(struct json_out *o, const struct req *q)
{
	const char *id;
	size_t idn = id_raw(q, &id);

	if (idn == 0)
		return;
	json_out_lit(o, ",\"id\":");
	json_out_raw(o, id, idn);
}

/* The ack of a request whose id has the source text id[0..idn), or an
 * error for one without (idn 0); msg NULL for the code's usual text.
 * A request answered later (the cluster) gets it the same way. */
void
vkws_chat_ack(struct conn *c, const char *id, size_t idn, int code,
    const char *msg)
{
	struct json_out o;

	if (idn == 0 && code == 0)
		return;
	if (msg == NULL)
		msg = vkws_strerror(code);
	json_out_init(&o, reply_buf, sizeof(reply_buf));
	if (idn > 0) {
		json_out_lit(&o, "{\"type\":\"ack\",\"id\":");
		json_out_raw(&o, id, idn);
		json_out_lit(&o, ",\"code\":");
	} else
		json_out_lit(&o, "{\"type\":\"error\",\"code\":");
	json_out_int(&o, code);
	if (code != 0) {
		json_out_lit(&o, ",\"msg\":");
		json_out_str(&o, msg, strlen(msg));
	}
	json_out_lit(&o, "}");
	send_text(c, &o);
}

/* Cluster: an operation that could not go to Redis. */
static void
cluster_refused(struct conn *c, const struct req *q, int code)
{
	const char *id = NULL;
	size_t idn = id_raw(q, &id);

	vkws_chat_ack(c, id, idn, code, code == VKWS_ESTORE ?
	    "cluster unavailable" : NULL);
}

static void
reply(struct conn *c, const struct req *q, int code)
{
	const char *id;
	size_t idn = id_raw(q, &id);

	vkws_chat_ack(c, id, idn, code, NULL);
}

/* ---- Acks that wait for the log (--fsync batch) --------------------- */

/*
 * With --fsync batch a chat's ack says its message is on disk, so it
 * waits for the sync of the pass (vkws_chat_commit, from the loop's
 * after-pass hook, before any output of the pass is flushed), and so does
 * the chat frame to the room, which the sender must get after its ack.
 * Each waiting chat keeps its sender (slot and clientId serial, as the
 * slot may be reused), its room (name and life) and the id text and
 * frame in pend_buf. If the sync fails the sender gets -7 and the room
 * nothing; the message stays in memory and reaches the log with the
 * compaction that ends the broken state.
 */
struct pend {
	uint16_t slot;
	uint8_t room_len;
	char room[VKWS_ROOM_NAME_MAX];
	uint64_t conn_id;
	uint64_t life;
	uint32_t off;		/* pend_buf: the id text, then the frame */
	uint32_t id_len;
	uint32_t len;		/* frame bytes */
};
/* The longest id text: 6 bytes (\uXXXX) per byte, and its quotes. */
#define ID_RAW_MAX (6 * VKWS_REQ_ID_MAX + 2)
_Static_assert(VKWS_PENDING_BYTES >= VKWS_MAX_OUT + ID_RAW_MAX,
    "a largest chat always fits after a commit");
static struct pend pend[VKWS_PENDING_CHATS];
static char pend_buf[VKWS_PENDING_BYTES];
static size_t npend, pend_used;

size_t
vkws_chat_static_size(void)
{
	return sizeof(pend) + sizeof(pend_buf);
}

int
vkws_chat_commit(void)
{
	int ok = vkws_store_sync() == 0;
	size_t i;

	for (i = 0; i < npend; i++) {
		const struct pend *e = &pend[i];
		struct conn *c = &vkws_conns[e->slot];
		struct room *r;

		if (c->state == S_WS && c->id == e->conn_id)
			vkws_chat_ack(c, pend_buf + e->off, e->id_len, ok ? 0 :
			    VKWS_ESTORE, NULL);
		else
			c = NULL;
		if (!ok) {
			vkws_count.store_failures++;
			continue;
		}
		/* The room as it was: not deleted (and made again) since. */
		r = vkws_room_find(e->room, e->room_len);
		if (r != NULL && vkws_room_life(r) == e->life)
			(void)vkws_chat_send(r, pend_buf + e->off + e->id_len,
			    e->len);
	}
	npend = 0;
	pend_used = 0;
	return ok ? 0 : -1;
}

/* Keep c's chat (ack and frame) until the sync; the caller made room. */
static void
pend_add(const struct conn *c, const struct req *q, const struct room *r,
    const char *frame, size_t len)
{
	struct pend *e = &pend[npend++];
	const char *id;
	size_t idn = id_raw(q, &id);

	e->slot = (uint16_t)vkws_slot_of(c);
	e->conn_id = c->id;
	e->room_len = (uint8_t)vkws_room_name(r, e->room);
	e->life = vkws_room_life(r);
	e->off = (uint32_t)pend_used;
	e->id_len = (uint32_t)idn;
	e->len = (uint32_t)len;
	if (idn > 0)
		memcpy(pend_buf + pend_used, id, idn);
	memcpy(pend_buf + pend_used + idn, frame, len);
	pend_used += idn + len;
}

/* A string member of the request, unescaped into out[0..cap). Returns
 * the length, VKWS_ENOTFOUND if absent, VKWS_EINVAL if not a string or
 * too long. */
static int
get_str(const struct req *q, const char *key, char *out, size_t cap)
{
	int t = json_get(&q->d, 0, key), n;

	if (t < 0)
		return VKWS_ENOTFOUND;
	if (!json_is_string(&q->d, t))
		return VKWS_EINVAL;
	n = json_string(&q->d, t, out, cap);
	return n < 0 ? VKWS_EINVAL : n;
}

static void
send_auth_fail(struct conn *c, const struct req *q, int code)
{
	struct json_out o;

	json_out_init(&o, reply_buf, sizeof(reply_buf));
	json_out_lit(&o, "{\"type\":\"auth\"");
	out_id(&o, q);
	json_out_lit(&o, ",\"code\":");
	json_out_int(&o, code);
	json_out_lit(&o, ",\"msg\":");
	json_out_str(&o, code == VKWS_EUNKNOWN ? "认证失败" :
	    vkws_strerror(code), strlen(code == VKWS_EUNKNOWN ? "认证失败" :
	    vkws_strerror(code)));
	json_out_lit(&o, "}");
	send_text(c, &o);
}

/* Take the verified claims: first auth or a re-auth of the same uid. */
static void
auth_accept(struct conn *c, const struct req *q)
{
	struct json_out o;
	char id[VKWS_CLIENT_ID_MAX];
	int first = !c->authed;

	/* exp is wall-clock seconds; it is mapped once onto the monotonic
	 * clock the loop sleeps by, so the timer reads no wall clock. */
	c->exp = claims.has_exp ? vkws_now_ms() + (claims.exp * 1000 -
	    vkws_wall_ms()) : 0;
	/* A shorter exp, or the first ping: the loop files the new time. */
	vkws_conn_timers(c);
	/* userInfo takes pool memory; with none free the server is out of
	 * memory for this client (PROTOCOL.md: 1013). */
	if (vkws_info_set(c, claims.info, claims.info_len) < 0) {
		vkws_count.dropped_slow++;
		vkws_close(c, WS_CLOSE_TRY_AGAIN, "server busy");
		return;
	}
	/* Proven now (PROTOCOL.md 8): off the unproven budget, onto
	 * --max-conns, which may be full of proven ones. */
	if (first && vkws_conn_prove(c) < 0) {
		vkws_count.refused_full++;
		send_auth_fail(c, q, VKWS_ELIMIT);
		vkws_close(c, WS_CLOSE_TRY_AGAIN, "server full");
		return;
	}
	if (first && vkws_uid_set(c, claims.uid, claims.uid_len) < 0) {
		vkws_count.dropped_slow++;
		vkws_close(c, WS_CLOSE_TRY_AGAIN, "server busy");
		return;
	}
	if (first) {
		c->authed = 1;
		c->t_ping = vkws_now_ms() + (int64_t)cfg->ping_interval * 1000;
		if (vkws_count.ws_pending > 0)
			vkws_count.ws_pending--;
		vkws_user_added(c);
	}
	vkws_count.auth_ok++;
	json_out_init(&o, reply_buf, sizeof(reply_buf));
	json_out_lit(&o, "{\"type\":\"auth\"");
	out_id(&o, q);
	json_out_lit(&o, ",\"code\":0,\"msg\":\"连接成功\",\"clientId\":\"");
	json_out_raw(&o, id, vkws_client_id(c, id));
	json_out_lit(&o, "\",\"userId\":");
	json_out_str(&o, vkws_uid(c), c->uid_len);
	json_out_lit(&o, "}");
	send_text(c, &o);
	if (first && cfg->default_room[0] != '\0') {
		size_t n = strlen(cfg->default_room);
		struct room *r;
		if (vkws_join_check(c, cfg->default_room, n, &r) != 0)
			return;
		/* Cluster: through Redis while it serves; else
		 * here, registered with Redis when it is back. */
		if (!vkws_cluster_up() || vkws_cluster_join(c,
		    cfg->default_room, n, 0, NULL, 0) != 0)
			vkws_join(c, cfg->default_room, n, 0);
	}
}

/* Verify tok[0..n) for c: accept it, or answer the failure (and close
 * a connection that was not authenticated with 4001). */
static void
authenticate(struct conn *c, const struct req *q, const char *tok, size_t n)
{
	int r = jwt_verify(cfg->secret, cfg->secret_len, tok, n,
	    vkws_wall_ms() / 1000, &claims);

	if (r < 0 || cfg->secret_len == 0) {
		vkws_count.auth_failures++;
		send_auth_fail(c, q, VKWS_EUNKNOWN);
		if (!c->authed)
			vkws_close(c, WS_CLOSE_AUTH, "auth failed");
		return;
	}
	if (c->authed && (claims.uid_len != c->uid_len ||
	    memcmp(claims.uid, vkws_uid(c), c->uid_len) != 0)) {
		send_auth_fail(c, q, VKWS_EPERM);
		return;
	}
	/* PROTOCOL.md 8: a user reconnecting too fast. A ?token= was
	 * counted at the upgrade (vkws_token_ok()); an auth message is
	 * counted here, refused with -6 and closed 1013. */
	if (!c->authed && q != NULL &&
	    vkws_admit_user(claims.uid, claims.uid_len) < 0) {
		vkws_count.refused_reconnect++;
		send_auth_fail(c, q, VKWS_ERATE);
		vkws_close(c, WS_CLOSE_TRY_AGAIN, "reconnecting too fast");
		return;
	}
	auth_accept(c, q);
}

int
vkws_token_ok(const struct http_req *r)
{
	int n = http_query_get(r->query, "token", token_buf,
	    sizeof(token_buf));

	if (n <= 0 || cfg->secret_len == 0 || jwt_verify(cfg->secret,
	    cfg->secret_len, token_buf, (size_t)n, vkws_wall_ms() / 1000,
	    &claims) != 0)
		return 0;
	/* PROTOCOL.md 8: one user's reconnect rate, on the upgrade. */
	return vkws_admit_user(claims.uid, claims.uid_len) < 0 ?
	    VKWS_ERATE : 1;
}

void
vkws_ws_opened(struct conn *c, const struct http_req *r)
{
	int n;

	vkws_count.ws_pending++;
	c->rate_tokens = (int32_t)((int64_t)cfg->rate_burst * 1000);
	c->rate_t = c->t_open;
	c->rate_over_age = c->rate_last_age = VKWS_RATE_NONE;
	/* PROTOCOL.md 7: the upgrade completes either way; the token is
	 * answered like an auth message. */
	n = http_query_get(r->query, "token", token_buf, sizeof(token_buf));
	if (n >= 0 || n == -2)
		authenticate(c, NULL, token_buf, n > 0 ? (size_t)n : 0);
}

/* An age in ms (conn.rate_*_age) d ms later: saturated below
 * VKWS_RATE_NONE, which stays none. */
static uint32_t
age_add(uint32_t a, int64_t d)
{
	if (a == VKWS_RATE_NONE)
		return a;
	if (d >= (int64_t)(VKWS_RATE_NONE - 1 - a))
		return VKWS_RATE_NONE - 1;
	return a + (uint32_t)d;
}

/*
 * The token bucket of PROTOCOL.md 3: --rate messages a second, --rate-burst
 * at once. Returns 0 if the message may go on; otherwise answers -6 and,
 * after --rate-grace seconds of refusals in every second, closes 1008.
 */
static int
rate_check(struct conn *c, const struct req *q)
{
	int64_t now = vkws_now_ms(), max, t, d;

	if (cfg->rate == 0)
		return 0;
	max = (int64_t)cfg->rate_burst * 1000;
	if (max > INT32_MAX)	/* --rate-burst allows 1,000,000 */
		max = INT32_MAX;
	d = now - c->rate_t;
	t = c->rate_tokens + d * (int64_t)cfg->rate;
	c->rate_tokens = (int32_t)(t > max ? max : t);
	c->rate_t = now;
	c->rate_over_age = age_add(c->rate_over_age, d);
	c->rate_last_age = age_add(c->rate_last_age, d);
	if (c->rate_tokens >= 1000) {
		c->rate_tokens -= 1000;
		return 0;
	}
	vkws_count.rate_limited++;
	if (c->rate_over_age == VKWS_RATE_NONE || c->rate_last_age > 1000)
		c->rate_over_age = 0;
	c->rate_last_age = 0;
	reply(c, q, VKWS_ERATE);
	if (c->rate_over_age >= (uint64_t)cfg->rate_grace * 1000)
		vkws_close(c, WS_CLOSE_POLICY, "rate limit");
	return -1;
}

/* The room a request names, or the default room without "room". */
static int
req_room(const struct req *q, char *out, size_t cap)
{
	int n = get_str(q, "room", out, cap);

	if (n == VKWS_ENOTFOUND) {
		n = (int)strlen(cfg->default_room);
		if (n == 0)
			return VKWS_ENOTFOUND;
		memcpy(out, cfg->default_room, (size_t)n);
		return n;
	}
	if (n >= 0 && !vkws_room_name_ok(out, (size_t)n))
		return VKWS_EINVAL;
	return n;
}

static void
do_chat(struct conn *c, const struct req *q)
{
	static char room[VKWS_ROOM_NAME_MAX];
	struct room *r;
	const char *frame;
	int tn = get_str(q, "content", text_buf, sizeof(text_buf));
	int rn = req_room(q, room, sizeof(room)), len;

	if (tn < 0 || rn < 0) {
		reply(c, q, tn == VKWS_EINVAL || tn == VKWS_ENOTFOUND ||
		    rn == VKWS_EINVAL ? VKWS_EINVAL : rn);
		return;
	}
	if ((r = vkws_room_find(room, (size_t)rn)) == NULL) {
		reply(c, q, VKWS_ENOTFOUND);
		return;
	}
	if (!vkws_room_is_member(c, r)) {
		reply(c, q, VKWS_EPERM);
		return;
	}
	if (vkws_cluster_on()) {	/* Redis gives the seq */
		const char *id = NULL;
		size_t idn = id_raw(q, &id);
		vkws_room_announce(c, r);
		if ((len = vkws_cluster_chat(c, r, text_buf, (size_t)tn, id,
		    idn)) < 0)
			cluster_refused(c, q, len);
		return;
	}
	/* Room for one more waiting chat, whatever its size: else the
	 * ones before it are synced and sent first. */
	if (npend == VKWS_PENDING_CHATS || pend_used + ID_RAW_MAX +
	    VKWS_MAX_OUT > sizeof(pend_buf))
		(void)vkws_chat_commit();
	/* The others hear of a young sender's join (PROTOCOL.md 8) before
	 * its first chat; announced before the chat is encoded, since both
	 * are written into the room layer's one output buffer. */
	vkws_room_announce(c, r);
	if ((len = vkws_chat_encode(c, r, text_buf, (size_t)tn, &frame)) <
	    0) {
		if (len == VKWS_ESTORE)
			vkws_count.store_failures++;
		/* The chats before it in this pass were written whole: their
		 * acks go first, after the sync they wait for. */
		if (len == VKWS_ESTORE && npend > 0)
			(void)vkws_chat_commit();
		reply(c, q, len);
		return;
	}
	if (vkws_store_unsynced()) {
		pend_add(c, q, r, frame, (size_t)len);
		return;
	}
	/* PROTOCOL.md 7: the sender's own copy comes after its ack. */
	reply(c, q, 0);
	(void)vkws_chat_send(r, frame, (size_t)len);
}

static void
do_private(struct conn *c, const struct req *q)
{
	static char uid[VKWS_UID_MAX];
	static char frame[VKWS_MAX_OUT];
	struct json_out o;
	int un = get_str(q, "targetUserId", uid, sizeof(uid));
	int tn = get_str(q, "content", text_buf, sizeof(text_buf));

	if (un <= 0 || tn < 0) {
		reply(c, q, VKWS_EINVAL);
		return;
	}
	if (!vkws_cluster_on() && !vkws_user_exists(uid, (size_t)un)) {
		reply(c, q, VKWS_ENOTFOUND);
		return;
	}
	json_out_init(&o, frame, sizeof(frame));
	json_out_lit(&o, "{\"type\":\"private\",\"from\":");
	vkws_out_user(&o, c);
	json_out_lit(&o, ",\"message\":");
	json_out_str(&o, text_buf, (size_t)tn);
	json_out_lit(&o, ",\"timestamp\":");
	json_out_int(&o, vkws_wall_ms());
	json_out_lit(&o, "}");
	if (!json_out_ok(&o)) {
		reply(c, q, VKWS_ELIMIT);
		return;
	}
	if (vkws_cluster_on()) {	/* to every node */
		const char *id = NULL;
		size_t idn = id_raw(q, &id);
		int e = vkws_cluster_private(c, uid, (size_t)un, o.p, o.n, id,
		    idn);
		if (e < 0)
			cluster_refused(c, q, e);
		return;
	}
	reply(c, q, 0);
	(void)vkws_send_to_user(uid, (size_t)un, o.p, o.n);
}

static void
do_join(struct conn *c, const struct req *q)
{
	static char room[VKWS_ROOM_NAME_MAX];
	int n = get_str(q, "room", room, sizeof(room));
	int st = json_get(&q->d, 0, "since"), e;
	int64_t since = 0;
	struct room *r;

	if (n < 0 || !vkws_room_name_ok(room, (size_t)n) || (st >= 0 &&
	    (json_int(&q->d, st, &since) < 0 || since < 0))) {
		reply(c, q, VKWS_EINVAL);
		return;
	}
	if ((e = vkws_join_check(c, room, (size_t)n, &r)) < 0) {
		reply(c, q, e);
		return;
	}
	if (e == 0 && vkws_cluster_on()) {	/* through Redis */
		const char *id = NULL;
		size_t idn = id_raw(q, &id);
		if ((e = vkws_cluster_join(c, room, (size_t)n,
		    (uint64_t)since, id, idn)) < 0)
			cluster_refused(c, q, e);
		return;
	}
	reply(c, q, 0);
	if (e == 0)
		vkws_join(c, room, (size_t)n, (uint64_t)since);
}

static void
do_leave(struct conn *c, const struct req *q)
{
	static char room[VKWS_ROOM_NAME_MAX];
	int n = get_str(q, "room", room, sizeof(room)), e;
	struct room *r;

	if (n < 0 || !vkws_room_name_ok(room, (size_t)n)) {
		reply(c, q, VKWS_EINVAL);
		return;
	}
	if ((e = vkws_leave_check(c, room, (size_t)n, &r)) < 0) {
		reply(c, q, e);
		return;
	}
	if (vkws_cluster_on()) {	/* acked once Redis took it */
		const char *id = NULL;
		size_t idn = id_raw(q, &id);
		if ((e = vkws_cluster_leave(c, r, id, idn)) < 0)
			cluster_refused(c, q, e);
		return;
	}
	reply(c, q, 0);
	vkws_leave(c, r);
}

static void
do_auth(struct conn *c, const struct req *q)
{
	int n = get_str(q, "token", token_buf, sizeof(token_buf));

	authenticate(c, q, token_buf, n > 0 ? (size_t)n : 0);
}

/*
 * Whether the "id" of a request is usable: a number, or a string of at
 * most VKWS_REQ_ID_MAX bytes (PROTOCOL.md 3). Replies echo the id as its
 * source text, so a number is held to VKWS_REQ_ID_MAX characters too:
 * a longer one would not fit reply_buf and its request would go without
 * the one reply PROTOCOL.md 3 promises.
 */
static int
id_ok(const struct json_doc *d, int t)
{
	const char *raw;

	if (json_is_number(d, t))
		return json_raw(d, t, &raw) <= VKWS_REQ_ID_MAX;
	return json_is_string(d, t) && json_string(d, t, text_buf,
	    VKWS_REQ_ID_MAX) >= 0;
}

void
vkws_ws_message(struct conn *c, int op, const uint8_t *p, size_t n)
{
	static struct req q;
	int type;

	q.id = -1;
	/* PROTOCOL.md 7: a binary frame, a frame that is not a JSON object,
	 * or one without a string type is -2. --rate counts every data
	 * frame, valid or not: a flood of invalid ones is refused with -6
	 * and closed 1008 like any other. */
	if (op != WS_OP_TEXT || json_parse(&q.d, toks, VKWS_JSON_TOKENS,
	    (const char *)p, n) < 0 || !json_is_object(&q.d, 0)) {
		if (rate_check(c, NULL) == 0)
			reply(c, NULL, VKWS_EINVAL);
		return;
	}
	if ((q.id = json_get(&q.d, 0, "id")) >= 0 && !id_ok(&q.d, q.id)) {
		q.id = -1;
		if (rate_check(c, NULL) == 0)
			reply(c, NULL, VKWS_EINVAL);
		return;
	}
	if (rate_check(c, &q) < 0)
		return;
	type = json_get(&q.d, 0, "type");
	if (type < 0 || !json_is_string(&q.d, type)) {
		/* PROTOCOL.md 7: before authentication a JSON object that
		 * is not auth is -4, with a type or without. */
		reply(c, &q, c->authed ? VKWS_EINVAL : VKWS_EPERM);
		return;
	}
	if (json_streq(&q.d, type, "auth"))
		do_auth(c, &q);
	else if (!c->authed)
		reply(c, &q, VKWS_EPERM);
	else if (json_streq(&q.d, type, "chat"))
		do_chat(c, &q);
	else if (json_streq(&q.d, type, "private"))
		do_private(c, &q);
	else if (json_streq(&q.d, type, "join"))
		do_join(c, &q);
	else if (json_streq(&q.d, type, "leave"))
		do_leave(c, &q);
	else if (json_streq(&q.d, type, "ping")) {
		struct json_out o;
		json_out_init(&o, reply_buf, sizeof(reply_buf));
		json_out_lit(&o, "{\"type\":\"pong\"");
		out_id(&o, &q);
		json_out_lit(&o, "}");
		send_text(c, &o);
	} else if (json_streq(&q.d, type, "pong"))
		reply(c, &q, 0);
	else
		reply(c, &q, VKWS_EUNKNOWN);
}

void
vkws_ws_closed(struct conn *c)
{
	if (vkws_count.ws_open > 0)
		vkws_count.ws_open--;
	if (c->kind != K_CHAT)
		return;
	if (!c->authed && vkws_count.ws_pending > 0)
		vkws_count.ws_pending--;
	vkws_user_removed(c);
}

int64_t
vkws_ws_timer(struct conn *c, int64_t now)
{
	static const char ping[] = "{\"type\":\"ping\"}";
	int64_t next, exp_at;

	if (!c->authed) {
		next = c->t_open + (int64_t)cfg->auth_timeout * 1000;
		if (now >= next) {
			vkws_close(c, WS_CLOSE_AUTH, "auth timeout");
			return INT64_MAX;
		}
		return next;
	}
	if (c->exp != 0) {
		exp_at = c->exp;
		if (exp_at <= now) {
			vkws_close(c, WS_CLOSE_AUTH, "token expired");
			return INT64_MAX;
		}
	} else
		exp_at = INT64_MAX;
	if (cfg->ping_interval > 0 && now >= c->t_ping) {
		(void)vkws_deliver(c, ping, sizeof(ping) - 1);
		c->t_ping = now + (int64_t)cfg->ping_interval * 1000;
	}
	next = cfg->ping_interval > 0 ? c->t_ping : INT64_MAX;
	/* Joins held back while the connection was young (PROTOCOL.md 8). */
	if (c->quiet != 0) {
		if (now - c->t_open >= VKWS_CHURN_MS)
			vkws_room_announce(c, NULL);
		else if (c->t_open + VKWS_CHURN_MS < next)
			next = c->t_open + VKWS_CHURN_MS;
	}
	return exp_at < next ? exp_at : next;
}

/* xorshift64*: enough to spread reconnect times, seeded at start. */
static uint32_t
rng(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return (uint32_t)((rng_state * 2685821657736338717ULL) >> 32);
}

void
vkws_ws_shutdown(struct conn *c)
{
	struct json_out o;

	json_out_init(&o, reply_buf, sizeof(reply_buf));
	json_out_lit(&o, "{\"type\":\"server_shutdown\",\"reconnectIn\":");
	json_out_uint(&o, rng() % (VKWS_RECONNECT_SPREAD_MS + 1));
	json_out_lit(&o, "}");
	send_text(c, &o);
}

int
vkws_json_is_object(const char *json, size_t n)
{
	struct json_doc d;

	return json_parse(&d, toks, VKWS_JSON_TOKENS, json, n) == 0 &&
	    json_is_object(&d, 0);
}

