/*
 * cluster_int.h: what the cluster files share between themselves, and
 * nothing else includes. cluster.c is the link to Redis (its requests,
 * replies and bus); cluster_lua.c holds the scripts it runs there;
 * cluster_api.c is the server API across nodes (calls gathered from
 * every node, held HTTP replies) on top of the link.
 */
#ifndef VKWS_CLUSTER_INT_H
#define VKWS_CLUSTER_INT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "resp.h"

struct conn;

/* ---- cluster_lua.c: the scripts, loaded at connect, run by EVALSHA -- */

enum { SC_REG, SC_BEAT, SC_DROP, SC_CHAT, SC_JOIN, SC_REJOIN, SC_LEAVE,
    SC_PRIV, SC_INFO, SC_LIST, SC_FORGET, SC_N };
extern const char *const vkws_cl_scripts[SC_N];

/* ---- cluster.c: the link, for cluster_api.c ------------------------- */

/* Room a request of n payload bytes asks of the link's output (its
 * may_send adds 256 more): its envelope, keys and bus header. */
#define VKWS_CL_REQ_ENV 1024

/* Whether a request may go to Redis now: the link serves and its output
 * has room for about need bytes. */
int vkws_cl_may_send(size_t need);
/* PUBLISH "T F0 F1 ...\nBODY" (type t, the nf fields f[i][0..fl[i]))
 * on the bus: 0, or -1 (nothing sent: it does not fit). */
int vkws_cl_publish(char t, const char *const f[], const size_t fl[],
    size_t nf, const char *body, size_t n);
/*
 * The requests of a call held by cluster_api.c as hid; each reply comes
 * back through the vkws_cl_*_done() of that file, named by hid. 0 if
 * sent, -1 if not (the link is down or full; nothing sent). Forget:
 * also -1 for the default room (every node answers it -4).
 */
int vkws_cl_req_history(const char *room, size_t rn, uint32_t limit,
    uint32_t hid);
int vkws_cl_req_info(struct conn *c, const char *room, size_t rn,
    uint32_t hid);
int vkws_cl_req_list(struct conn *c, uint32_t hid);
int vkws_cl_req_forget(struct conn *c, const char *room, size_t rn,
    uint32_t hid);
/* The join script for c (joinRoom by the server API): answered through
 * vkws_cl_join_answer() with hid, or (fn > 0) published to the node
 * from[0..fn) "ORIGIN ID". 0, or a VKWS_E* code (nothing sent). */
int vkws_cl_req_join(struct conn *c, const char *room, size_t rn,
    const char *from, size_t fn, uint32_t hid);

/* ---- cluster_api.c: the server API across nodes, for cluster.c ------ */

size_t vkws_cl_api_static_size(void);
/* The held calls past their deadline answered; *next lowered to the
 * nearest one left. */
void vkws_cl_held_timers(int64_t now, int64_t *next);
/* Bus messages: "Q ORIGIN ID TARGET\nBODY", a call to run here;
 * "R ORIGIN ID NODE\nREPLY", an answer to a call held here. */
void vkws_cl_api_request(const char *origin, size_t olen, const char *id,
    size_t idn, const char *target, size_t tn, const char *body, size_t n);
void vkws_cl_api_answer(const char *id, size_t idn, const char *from,
    size_t fn, const char *r, size_t n);
/* Replies of Redis to vkws_cl_req_*() (nv 0: an error reply). */
void vkws_cl_join_answer(uint32_t hid, const char *from, size_t fn,
    int code);
void vkws_cl_history_done(uint32_t hid, const uint8_t *base,
    const struct resp_val *v, size_t nv);
void vkws_cl_info_done(uint32_t hid, const char *room, size_t rn,
    const struct resp_val *v, size_t nv);
void vkws_cl_list_done(uint32_t hid, const uint8_t *base,
    const struct resp_val *v, size_t nv);
void vkws_cl_forget_done(uint32_t hid, const struct resp_val *v,
    size_t nv);

/* ---- Both: bus headers ---------------------------------------------- */

/* One field of a bus header: up to the next space (or newline). */
static inline int
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

/* A decimal of up to 19 digits; 0 if anything else. */
static inline uint64_t
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

#endif
