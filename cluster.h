/*
 * cluster.h: cluster mode on Redis (PROTOCOL.md 9). The link
 * to Redis is one more kind of descriptor in the core's loop (through
 * hooks->poll_fds / poll_ready); the chat protocol calls the functions
 * below where an operation needs the cluster. Without --redis they are
 * never called (vkws_cluster_on() is 0).
 */
#ifndef VKWS_CLUSTER_H
#define VKWS_CLUSTER_H

#include <poll.h>
#include <stddef.h>
#include <stdint.h>

#include "vkws.h"

struct conn;
struct room;

/* At start (api.c's init hook): -1 stops the server. */
int vkws_cluster_init(struct vkws_config *c);
/* At a clean stop: leave the cluster, flushing what the link holds. */
void vkws_cluster_stop(void);
size_t vkws_cluster_static_size(void);
int vkws_cluster_on(void);	/* --redis given */
int vkws_cluster_up(void);	/* the link serves */
/* The loop hooks (struct vkws_hooks). */
size_t vkws_cluster_poll_fds(struct pollfd *p, size_t max, int64_t now,
    int64_t *next);
void vkws_cluster_poll_ready(const struct pollfd *p, size_t n);

/*
 * Operations of the chat protocol that need the cluster. id[0..idn) is
 * the request's "id" as its JSON source text (idn 0: none); the reply
 * goes out through vkws_chat_ack() once Redis has answered. Each returns
 * 0 if the request went to Redis, or a VKWS_E* code answered already.
 */
int vkws_cluster_chat(struct conn *c, struct room *r, const char *text,
    size_t n, const char *id, size_t idn);
int vkws_cluster_join(struct conn *c, const char *room, size_t n,
    uint64_t since, const char *id, size_t idn);
int vkws_cluster_private(struct conn *c, const char *uid, size_t un,
    const char *frame, size_t fn, const char *id, size_t idn);

/* This node's ID. */
const char *vkws_cluster_node(void);
/*
 * The server API (api.c): a call by conn c (an /api request) of method
 * with body[0..n), clientId cid[0..cn) if it has one. Returns 1 if it
 * went to the nodes that must run it (answered later through
 * vkws_api_reply()), 0 if this node runs it alone, or a VKWS_E* code.
 */
int vkws_cluster_api(struct conn *c, const char *method, const char *body,
    size_t n, const char *cid, size_t cn, int keep);
/* getRoomHistory (api.c): the newest limit (0: all kept) messages of the
 * room from Redis; 1 if held, or a VKWS_E* code. here: the room exists
 * on this node (an empty history is then [] rather than -3). */
int vkws_cluster_history(struct conn *c, const char *room, size_t rn,
    uint32_t limit, int here, int keep);
/* api.c: run a call here only (for another node); its reply at *out. */
size_t vkws_api_run(const char *body, size_t n, const char **out);
/* api.c: answer a held call. */
void vkws_api_reply(struct conn *c, const char *json, size_t n, int keep);

#endif
